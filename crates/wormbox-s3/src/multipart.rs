//! Multipart uploads: CreateMultipartUpload, UploadPart,
//! CompleteMultipartUpload, AbortMultipartUpload, ListParts and
//! ListMultipartUploads, over `wormbox_app::multipart`.
//!
//! Invariant: a part is received like a PutObject body (exact length, every
//! stated digest checked, `receive`) and kept only once synced; the
//! completed object is one version with its own SHA-256, written once, whose
//! ETag is S3's multipart form: the MD5 of the parts' binary MD5s, `-N`.
//! A complete that takes longer than a moment (`ANSWER_WHOLE_WITHIN`)
//! answers then and keeps the connection alive with s3s's whitespace while
//! the parts are copied into the version, so a client's read timeout does
//! not abandon a large one; a quicker one answers whole, with its version
//! id, which only a header can carry.

use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use wormbox_app::PutObject;
use wormbox_app::multipart::{CompleteMultipart, CompletedPart as AppPart, MAX_PART_NUMBER};
use wormbox_store::NewObject;

use crate::auth::caller;
use crate::convert::{Wormbox, blocking, bucket_name, object_key, timestamp};
use crate::error::app_error;
use crate::objects::{Md5, body_length, lock_headers, receive, shown_version, stated_digests, user_metadata};

/// S3's largest part.
const MAX_PART_BYTES: u64 = 5 << 30;

/// How long a complete may take and still answer whole, with its version
/// id; far below any client's read timeout.
const ANSWER_WHOLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// A complete under way (s3s's type for a kept-alive answer).
type Completing =
    std::pin::Pin<Box<dyn std::future::Future<Output = S3Result<CompleteMultipartUploadOutput>> + Send + 'static>>;

pub(crate) async fn create_multipart_upload(
    w: &Wormbox,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let actor = caller(&req)?;
    let input = req.input;
    let bucket = bucket_name(&input.bucket)?;
    let key = object_key(&input.key)?;
    let (retention, legal_hold) = lock_headers(
        input.object_lock_mode.as_ref(),
        input.object_lock_retain_until_date.as_ref(),
        input.object_lock_legal_hold_status.as_ref(),
    )?;
    let object = NewObject {
        content_type: input.content_type.clone().unwrap_or_default(),
        user_metadata: user_metadata(input.metadata)?,
        retention,
        legal_hold,
        ..NewObject::default()
    };
    let put = PutObject { bucket: bucket.clone(), key: key.clone(), object };
    let upload_id = w.app.create_multipart(&actor, put).await.map_err(app_error)?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(bucket.to_string()),
        key: Some(key.to_string()),
        upload_id: Some(upload_id),
        ..Default::default()
    }))
}

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| s3_error!(InvalidArgument, "Part number must be an integer between 1 and {MAX_PART_NUMBER}"))
}

pub(crate) async fn upload_part(
    w: &Wormbox,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let actor = caller(&req)?;
    let trailer = req.headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let trailers = req.trailing_headers.clone();
    let size = body_length(req.input.content_length, &req.headers)?;
    let input = req.input;
    let bucket = bucket_name(&input.bucket)?;
    let key = object_key(&input.key)?;
    let number = part_number(input.part_number)?;
    let limit = MAX_PART_BYTES.min(w.options.max_object_bytes);
    if size > limit {
        return Err(s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed part size of {limit} bytes."
        ));
    }
    let (md5, _, stated) = stated_digests(
        input.content_md5.as_deref(),
        [
            input.checksum_crc32.clone(),
            input.checksum_crc32c.clone(),
            input.checksum_crc64nvme.clone(),
            input.checksum_sha1.clone(),
            input.checksum_sha256.clone(),
        ],
    )?;
    let Some(body) = input.body else {
        return Err(s3_error!(MissingRequestBodyError, "The request has no body."));
    };
    let mut part = w.app.upload_part(&actor, &bucket, &key, &input.upload_id, number).await.map_err(app_error)?;
    let (md5_sum, stated) = receive(body, size, md5, stated, trailer.as_deref(), trailers, &mut part).await?;
    let etag = hex::encode(md5_sum);
    part.finish(etag.clone()).await.map_err(app_error)?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(ETag::Strong(etag)),
        checksum_crc32: stated.crc32,
        checksum_crc32c: stated.crc32c,
        checksum_crc64nvme: stated.crc64nvme,
        checksum_sha1: stated.sha1,
        checksum_sha256: stated.sha256,
        ..Default::default()
    }))
}

/// The multipart ETag of `parts`: MD5 of their binary MD5s, then `-N`.
fn multipart_etag(parts: &[AppPart]) -> S3Result<String> {
    let mut md5 = Md5::default();
    for part in parts {
        match hex::decode(&part.etag) {
            Ok(raw) if raw.len() == 16 => md5.update(&raw),
            _ => return Err(s3_error!(InvalidPart, "Part {} has no ETag this endpoint gave.", part.number)),
        }
    }
    Ok(format!("{}-{}", hex::encode(md5.finalize()), parts.len()))
}

pub(crate) async fn complete_multipart_upload(
    w: &Wormbox,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let actor = caller(&req)?;
    let input = req.input;
    let bucket = bucket_name(&input.bucket)?;
    let key = object_key(&input.key)?;
    let listed = input.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
    if listed.is_empty() {
        return Err(s3_error!(MalformedXML, "The request names no parts."));
    }
    let mut parts = Vec::with_capacity(listed.len());
    for part in listed {
        let number = part_number(part.part_number.unwrap_or(0))?;
        let etag = part.e_tag.as_ref().map(|e| e.value().trim_matches('"').to_ascii_lowercase()).unwrap_or_default();
        parts.push(AppPart { number, etag });
    }
    let etag = multipart_etag(&parts)?;
    let complete = CompleteMultipart {
        bucket: bucket.clone(),
        key: key.clone(),
        upload_id: input.upload_id,
        parts,
        etag: etag.clone(),
    };
    let app = Arc::clone(&w.app);
    // Copying the parts takes as long as writing the object: a slow one's
    // answer is sent early and finished when the version is stored.
    let future = async move {
        let ack = app.complete_multipart(&actor, complete).await.map_err(app_error)?;
        Ok(CompleteMultipartUploadOutput {
            bucket: Some(bucket.to_string()),
            key: Some(key.to_string()),
            e_tag: Some(ETag::Strong(etag)),
            version_id: shown_version(&ack.version_id),
            location: Some(format!("/{bucket}/{key}")),
            ..Default::default()
        })
    };
    let mut future: Completing = Box::pin(future);
    // A complete done within a moment answers whole, its version id in
    // `x-amz-version-id`: a header, which a kept-alive answer has already
    // sent without it.
    if let Ok(done) = tokio::time::timeout(ANSWER_WHOLE_WITHIN, &mut future).await {
        return done.map(S3Response::new);
    }
    Ok(S3Response::new(CompleteMultipartUploadOutput { future: Some(future), ..Default::default() }))
}

pub(crate) async fn abort_multipart_upload(
    w: &Wormbox,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let actor = caller(&req)?;
    let input = req.input;
    let bucket = bucket_name(&input.bucket)?;
    let key = object_key(&input.key)?;
    w.app.abort_multipart(&actor, &bucket, &key, &input.upload_id).await.map_err(app_error)?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub(crate) async fn list_parts(w: &Wormbox, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
    let actor = caller(&req)?;
    let input = req.input;
    let bucket = bucket_name(&input.bucket)?;
    let key = object_key(&input.key)?;
    let marker = input.part_number_marker.and_then(|m| u32::try_from(m).ok()).unwrap_or(0);
    let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
    let app = Arc::clone(&w.app);
    let (b, k, id) = (bucket.clone(), key.clone(), input.upload_id.clone());
    let who = actor.clone();
    let all = blocking(move || app.list_parts(&who, &b, &k, &id)).await?;
    let after: Vec<_> = all.into_iter().filter(|p| p.number > marker).collect();
    let is_truncated = after.len() > max;
    let page: Vec<_> = after.into_iter().take(max).collect();
    let next = if is_truncated { page.last().map(|p| p.number as i32) } else { None };
    let initiator = Initiator { id: Some(actor.access_key.clone()), display_name: Some(actor.access_key.clone()) };
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(bucket.to_string()),
        key: Some(key.to_string()),
        upload_id: Some(input.upload_id),
        part_number_marker: Some(marker as i32),
        next_part_number_marker: next,
        max_parts: Some(max as i32),
        is_truncated: Some(is_truncated),
        initiator: Some(initiator),
        parts: Some(
            page.into_iter()
                .map(|p| Part {
                    part_number: Some(p.number as i32),
                    size: Some(p.size as i64),
                    e_tag: Some(ETag::Strong(p.etag)),
                    last_modified: Some(timestamp(p.modified)),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

pub(crate) async fn list_multipart_uploads(
    w: &Wormbox,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let actor = caller(&req)?;
    let input = req.input;
    let bucket = bucket_name(&input.bucket)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let id_marker = input.upload_id_marker.clone().unwrap_or_default();
    let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
    let app = Arc::clone(&w.app);
    let b = bucket.clone();
    let all = blocking(move || app.list_multipart_uploads(&actor, &b)).await?;
    let after: Vec<_> = all
        .into_iter()
        .filter(|u| u.key.starts_with(&prefix))
        .filter(|u| {
            (u.key.as_str(), u.upload_id.as_str()) > (key_marker.as_str(), id_marker.as_str()) || key_marker.is_empty()
        })
        .collect();
    let is_truncated = after.len() > max;
    let page: Vec<_> = after.into_iter().take(max).collect();
    let (next_key, next_id) = match (is_truncated, page.last()) {
        (true, Some(last)) => (Some(last.key.clone()), Some(last.upload_id.clone())),
        _ => (None, None),
    };
    let uploads = page
        .into_iter()
        .map(|u| MultipartUpload {
            key: Some(u.key),
            upload_id: Some(u.upload_id),
            initiated: Some(timestamp(u.created)),
            initiator: Some(Initiator { id: Some(u.initiator.clone()), display_name: Some(u.initiator.clone()) }),
            owner: Some(Owner { id: Some(u.initiator.clone()), display_name: Some(u.initiator) }),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(bucket.to_string()),
        prefix: input.prefix,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        next_key_marker: next_key,
        next_upload_id_marker: next_id,
        max_uploads: Some(max as i32),
        is_truncated: Some(is_truncated),
        uploads: Some(uploads),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_multipart_etag_is_the_md5_of_the_part_md5s() {
        // Two parts, "a" and "b": MD5("a") and MD5("b"), concatenated, hashed.
        let a = "0cc175b9c0f1b6a831c399e269772661";
        let b = "92eb5ffee6ae2fec3ad71c777531578f";
        let parts = [AppPart { number: 1, etag: a.into() }, AppPart { number: 2, etag: b.into() }];
        let mut md5 = Md5::default();
        md5.update(&hex::decode(a).unwrap());
        md5.update(&hex::decode(b).unwrap());
        assert_eq!(multipart_etag(&parts).unwrap(), format!("{}-2", hex::encode(md5.finalize())));
        let bad = [AppPart { number: 1, etag: "nothex".into() }];
        assert!(multipart_etag(&bad).is_err());
    }
}
