//! CopyObject within the appliance: a version's bytes read (checked chunk by
//! chunk, as GetObject reads them) and written as a new version, with the
//! source's content type and metadata (`COPY`) or the request's (`REPLACE`),
//! and the request's Object Lock headers (else the target bucket's default).
//!
//! Invariant: a copy is a read by the caller (who needs the read right on
//! the source) and a write by the caller (judged and ledgered as a
//! PutObject of the same bytes); the new version's SHA-256 is computed
//! from the bytes as they are written, and the copy is published only once
//! the whole source was read without error. The source is never changed.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use wormbox_app::{GetObject, PutObject};
use wormbox_store::NewObject;

use crate::auth::caller;
use crate::convert::{Wormbox, bucket_name, from_timestamp, object_key, timestamp, version};
use crate::error::app_error;
use crate::objects::{Md5, etag_of, lock_headers, shown_version, user_metadata};

fn etag_matches(condition: &ETagCondition, etag: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
    }
}

pub(crate) async fn copy_object(
    w: &Wormbox,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let actor = caller(&req)?;
    let input = req.input;
    let CopySource::Bucket { bucket: src_bucket, key: src_key, version_id: src_version } = &input.copy_source else {
        return Err(s3_error!(NotImplemented, "Copies from access points or outposts are not served."));
    };
    if src_key.is_empty() {
        return Err(s3_error!(InvalidArgument, "The copy source names no key."));
    }
    let source = GetObject {
        bucket: bucket_name(src_bucket)?,
        key: object_key(src_key)?,
        version: version(src_version.as_deref())?,
    };
    let bucket = bucket_name(&input.bucket)?;
    let key = object_key(&input.key)?;
    let replace = match input.metadata_directive.as_ref().map(MetadataDirective::as_str) {
        None | Some(MetadataDirective::COPY) => false,
        Some(MetadataDirective::REPLACE) => true,
        Some(other) => return Err(s3_error!(InvalidArgument, "Unknown metadata directive '{other}'.")),
    };
    let (retention, legal_hold) = lock_headers(
        input.object_lock_mode.as_ref(),
        input.object_lock_retain_until_date.as_ref(),
        input.object_lock_legal_hold_status.as_ref(),
    )?;
    let (info, body) = w.app.read_object(&actor, &source).await.map_err(app_error)?;
    // The copy-source conditions, judged against the version being read.
    let etag = etag_of(&info);
    let modified = info.created_at.as_micros().div_euclid(1_000_000);
    let secs = |t: &Timestamp| from_timestamp(t).map(|t| t.as_micros().div_euclid(1_000_000));
    let failed = || s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold");
    if let Some(c) = &input.copy_source_if_match
        && !etag_matches(c, &etag)
    {
        return Err(failed());
    }
    if let Some(c) = &input.copy_source_if_none_match
        && etag_matches(c, &etag)
    {
        return Err(failed());
    }
    if let Some(t) = &input.copy_source_if_unmodified_since
        && modified > secs(t)?
    {
        return Err(failed());
    }
    if let Some(t) = &input.copy_source_if_modified_since
        && modified <= secs(t)?
    {
        return Err(failed());
    }
    let same = source.bucket == bucket && source.key == key && src_version.is_none();
    if same && !replace && retention.is_none() && legal_hold.is_none() {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the \
             object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    let (content_type, user_metadata) = if replace {
        (input.content_type.clone().unwrap_or_default(), user_metadata(input.metadata)?)
    } else {
        (info.content_type.clone(), info.user_metadata.clone())
    };
    let object = NewObject { content_type, user_metadata, retention, legal_hold, ..NewObject::default() };
    let target = (bucket.clone(), key.clone());
    let mut upload = w.app.begin_upload(&actor, PutObject { bucket, key, object }).map_err(app_error)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let reader = tokio::task::spawn_blocking(move || {
        for chunk in body {
            let failed = chunk.is_err();
            if tx.blocking_send(chunk).is_err() || failed {
                return;
            }
        }
    });
    let mut md5 = Md5::default();
    while let Some(chunk) = rx.recv().await {
        let chunk = chunk.map_err(app_error)?;
        md5.update(&chunk);
        upload.write(chunk).await.map_err(app_error)?;
    }
    reader.await.map_err(|e| s3_error!(InternalError, "the copy's reader failed: {e}"))?;
    // The reader checks the whole version's SHA-256 at its end: a short or
    // altered read ends in an error above, never in a short copy.
    let copied = upload.size().map_err(app_error)?;
    if copied != info.size {
        return Err(s3_error!(InternalError, "the source was read short ({copied} of {} bytes)", info.size));
    }
    let new_etag = hex::encode(md5.finalize());
    upload.set_etag(new_etag.clone()).map_err(app_error)?;
    let ack = upload.finish(&actor, || {}).await.map_err(app_error)?;
    let written = GetObject { bucket: target.0, key: target.1, version: version(Some(&ack.version_id))? };
    let last_modified = w.app.head_object(&actor, &written).map(|v| timestamp(v.created_at)).ok();
    let result = CopyObjectResult { e_tag: Some(ETag::Strong(new_etag)), last_modified, ..Default::default() };
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(result),
        version_id: shown_version(&ack.version_id),
        copy_source_version_id: shown_version(&info.version_id),
        ..Default::default()
    }))
}
