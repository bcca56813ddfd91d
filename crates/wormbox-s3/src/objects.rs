//! Object operations: PutObject (streamed), GetObject (ranges, conditional
//! headers), HeadObject, DeleteObject and DeleteObjects.
//!
//! Invariant (PutObject): the body passes to the store's upload in pieces of
//! at most `CHUNK_BYTES`, never whole; the version is published only after
//! the whole body arrived, exactly `Content-Length` bytes, every stated
//! digest matched (`Content-MD5`, `x-amz-checksum-*` in headers or in an
//! aws-chunked trailer, and s3s's check of `x-amz-content-sha256` and of
//! each signed chunk, which fails the stream) and the store checked the
//! SHA-256 it was given. Anything else drops the upload unpublished: nothing
//! is stored and no ledger entry is written. A body that stalls for
//! `S3Options::body_idle` ends the request the same way.
//!
//! The ETag is the MD5 of the bytes, computed while they stream and stored
//! with the version; a version written through gRPC has none, and S3 sees
//! `<first 16 bytes of its SHA-256 in hex>-1`: the multipart form, which
//! clients do not take for an MD5.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use wormbox_app::{AppError, DeleteObject, DeleteObjects, GetObject, PutObject};
use wormbox_model::{Digest, UserMetadata};
use wormbox_store::retention::{Retention, RetentionMode, S3_HOLD};
use wormbox_store::{CHUNK_BYTES, DeleteEntry, MAX_DELETE_ENTRIES, NewObject, StoreError, VersionInfo};

use crate::auth::caller;
use crate::convert::{Wormbox, bucket_name, from_timestamp, mfa, object_key, timestamp, version};
use crate::error::{app_error, custom, invalid};

/// A write's length: `Content-Length`, or for an aws-chunked body sent with
/// `Transfer-Encoding: chunked` (no `Content-Length`), its
/// `x-amz-decoded-content-length`.
pub(crate) fn body_length(content_length: Option<i64>, headers: &http::HeaderMap) -> S3Result<u64> {
    let decoded = || {
        headers.get("x-amz-decoded-content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok())
    };
    match content_length.or_else(decoded) {
        Some(n) if n >= 0 => Ok(n as u64),
        _ => Err(s3_error!(MissingContentLength, "You must provide the Content-Length HTTP header.")),
    }
}

/// How long a request body may send nothing before the request fails,
/// unless `S3Options::body_idle` says otherwise.
pub(crate) const BODY_IDLE: Duration = Duration::from_secs(60);

/// The S3 ETag of a version (without quotes).
pub(crate) fn etag_of(info: &VersionInfo) -> String {
    match &info.etag {
        Some(etag) => etag.clone(),
        None => format!("{}-1", hex::encode(&info.sha256.0[..16])),
    }
}

/// The `x-amz-version-id` S3 shows: none for the `null` version.
pub(crate) fn shown_version(id: &str) -> Option<String> {
    (id != "null").then(|| id.to_owned())
}

fn decode_b64(text: &str, len: usize, what: &str) -> S3Result<Vec<u8>> {
    match data_encoding::BASE64.decode(text.trim().as_bytes()) {
        Ok(bytes) if bytes.len() == len => Ok(bytes),
        _ => Err(s3_error!(InvalidDigest, "The {what} you specified is not valid.")),
    }
}

/// What a stream error from s3s's body means to the client.
fn body_error(err: &(dyn std::error::Error + Send + Sync)) -> S3Error {
    let text = err.to_string();
    if text.contains("Sha256Mismatch") {
        custom(
            "XAmzContentSHA256Mismatch",
            400,
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    } else if text.contains("SignatureMismatch") {
        s3_error!(SignatureDoesNotMatch, "A chunk's signature does not match.")
    } else {
        s3_error!(IncompleteBody, "The request body could not be read whole: {text}")
    }
}

/// The checksums a PutObject states (`x-amz-checksum-*`), checked at the end.
#[derive(Default)]
pub(crate) struct Stated {
    pub(crate) crc32: Option<String>,
    pub(crate) crc32c: Option<String>,
    pub(crate) crc64nvme: Option<String>,
    pub(crate) sha1: Option<String>,
    pub(crate) sha256: Option<String>,
    /// The header's SHA-256 went to the store as the write's expected
    /// digest: the store compares it with the SHA-256 it computes anyway, and
    /// refuses the write on a mismatch (`CHECKSUM_MISMATCH`, BadDigest), so
    /// the endpoint does not hash the body a second time for it.
    pub(crate) sha256_checked_by_store: bool,
}

impl Stated {
    fn hasher(&self, trailer: Option<&str>) -> s3s::checksum::ChecksumHasher {
        let named = |name: &str| trailer.is_some_and(|t| t.eq_ignore_ascii_case(name));
        let sha256 = (self.sha256.is_some() && !self.sha256_checked_by_store) || named("x-amz-checksum-sha256");
        s3s::checksum::ChecksumHasher {
            crc32: (self.crc32.is_some() || named("x-amz-checksum-crc32")).then(Default::default),
            crc32c: (self.crc32c.is_some() || named("x-amz-checksum-crc32c")).then(Default::default),
            crc64nvme: (self.crc64nvme.is_some() || named("x-amz-checksum-crc64nvme")).then(Default::default),
            sha1: (self.sha1.is_some() || named("x-amz-checksum-sha1")).then(Default::default),
            sha256: sha256.then(Default::default),
        }
    }

    /// Takes a trailer's value in place of a header's.
    fn with_trailers(mut self, trailers: Option<http::HeaderMap>) -> Stated {
        let Some(trailers) = trailers else { return self };
        let get = |name: &str| trailers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        self.crc32 = self.crc32.or_else(|| get("x-amz-checksum-crc32"));
        self.crc32c = self.crc32c.or_else(|| get("x-amz-checksum-crc32c"));
        self.crc64nvme = self.crc64nvme.or_else(|| get("x-amz-checksum-crc64nvme"));
        self.sha1 = self.sha1.or_else(|| get("x-amz-checksum-sha1"));
        self.sha256 = self.sha256.or_else(|| get("x-amz-checksum-sha256"));
        self
    }

    fn check(&self, computed: &Checksum) -> S3Result<()> {
        let pairs = [
            ("CRC32", &self.crc32, &computed.checksum_crc32),
            ("CRC32C", &self.crc32c, &computed.checksum_crc32c),
            ("CRC64NVME", &self.crc64nvme, &computed.checksum_crc64nvme),
            ("SHA1", &self.sha1, &computed.checksum_sha1),
            ("SHA256", &self.sha256, &computed.checksum_sha256),
        ];
        for (name, stated, computed) in pairs {
            if name == "SHA256" && computed.is_none() && self.sha256_checked_by_store {
                continue;
            }
            if let Some(stated) = stated
                && Some(stated.trim()) != computed.as_deref()
            {
                return Err(s3_error!(BadDigest, "The {name} you specified did not match the calculated checksum."));
            }
        }
        Ok(())
    }
}

/// Object Lock headers of a write: both mode and date, or neither.
pub(crate) fn lock_headers(
    mode: Option<&ObjectLockMode>,
    until: Option<&Timestamp>,
    hold: Option<&ObjectLockLegalHoldStatus>,
) -> S3Result<(Option<Retention>, Option<String>)> {
    let retention = match (mode, until) {
        (None, None) => None,
        (Some(mode), Some(until)) => {
            let mode = match mode.as_str() {
                ObjectLockMode::GOVERNANCE => RetentionMode::Governance,
                ObjectLockMode::COMPLIANCE => RetentionMode::Compliance,
                other => return Err(invalid(format!("Unknown wormbox-lock-mode: {other}"))),
            };
            Some(Retention { mode, until: from_timestamp(until)? })
        }
        _ => {
            return Err(invalid(
                "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied",
            ));
        }
    };
    let hold = match hold.map(ObjectLockLegalHoldStatus::as_str) {
        None | Some(ObjectLockLegalHoldStatus::OFF) => None,
        Some(ObjectLockLegalHoldStatus::ON) => Some(S3_HOLD.to_owned()),
        Some(other) => return Err(invalid(format!("Legal hold status '{other}' is neither ON nor OFF"))),
    };
    Ok((retention, hold))
}

/// User metadata (`x-amz-meta-*`), within the archive's limits.
pub(crate) fn user_metadata(metadata: Option<Metadata>) -> S3Result<UserMetadata> {
    let entries: BTreeMap<String, String> = metadata.unwrap_or_default().into_iter().collect();
    UserMetadata::new(entries).map_err(|why| custom("MetadataTooLarge", 400, why))
}

/// Where a received body goes: a version's upload or a multipart part.
pub(crate) trait Sink {
    /// Takes the next piece (at most `CHUNK_BYTES`).
    fn put(&mut self, data: Bytes) -> impl std::future::Future<Output = Result<(), AppError>> + Send;
}

impl Sink for wormbox_app::AppUpload {
    fn put(&mut self, data: Bytes) -> impl std::future::Future<Output = Result<(), AppError>> + Send {
        self.write(data)
    }
}

impl Sink for wormbox_app::multipart::PartWriter {
    fn put(&mut self, data: Bytes) -> impl std::future::Future<Output = Result<(), AppError>> + Send {
        self.write(data)
    }
}

/// Receives a body of exactly `size` bytes into `sink`, in pieces of at
/// most `CHUNK_BYTES`, and checks every digest it states (`md5`, `stated`
/// and an aws-chunked trailer's); returns the MD5 and the checksums as
/// stated. Any error leaves the sink to be dropped unfinished.
pub(crate) async fn receive(
    mut body: StreamingBlob,
    size: u64,
    md5: Option<Vec<u8>>,
    stated: Stated,
    trailer: Option<&str>,
    trailers: Option<s3s::TrailingHeaders>,
    sink: &mut impl Sink,
) -> S3Result<([u8; 16], Stated)> {
    let mut hasher = stated.hasher(trailer);
    let mut md5_hasher = Md5::default();
    // Allocated when a piece first needs gathering: a body in one piece never does.
    let mut buffer = Vec::new();
    let mut received = 0u64;
    loop {
        // A body that stalls fails in the server's `IdleBody`, which also
        // turns the answer into RequestTimeout.
        let next = body.next().await;
        let Some(piece) = next else { break };
        let piece = piece.map_err(|e| body_error(&*e))?;
        received += piece.len() as u64;
        if received > size {
            return Err(s3_error!(IncompleteBody, "The body is longer than its Content-Length."));
        }
        md5_hasher.update(&piece);
        hasher.update(&piece);
        let mut piece = piece;
        while !piece.is_empty() {
            // A piece that fills a chunk, or ends the body, goes on as it is
            // (the store copies it into its chunk; this saves the copy into
            // `buffer`); smaller ones gather in `buffer`, so that a body in
            // small pieces costs one blocking hop per chunk, not per piece.
            if buffer.is_empty() && (piece.len() >= CHUNK_BYTES || received == size) {
                let now = piece.split_to(piece.len().min(CHUNK_BYTES));
                sink.put(now).await.map_err(app_error)?;
                continue;
            }
            if buffer.capacity() == 0 {
                buffer.reserve_exact(CHUNK_BYTES.min(size as usize));
            }
            let room = CHUNK_BYTES - buffer.len();
            buffer.extend_from_slice(&piece.split_to(room.min(piece.len())));
            if buffer.len() == CHUNK_BYTES {
                let full = std::mem::take(&mut buffer);
                sink.put(Bytes::from(full)).await.map_err(app_error)?;
            }
        }
    }
    if received != size {
        return Err(s3_error!(
            IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header."
        ));
    }
    if !buffer.is_empty() {
        sink.put(Bytes::from(buffer)).await.map_err(app_error)?;
    }
    let md5_sum = md5_hasher.finalize();
    if let Some(md5) = md5
        && md5 != md5_sum
    {
        return Err(s3_error!(BadDigest, "The Content-MD5 you specified did not match what we received."));
    }
    let stated = stated.with_trailers(trailers.and_then(|t| t.take()));
    stated.check(&hasher.finalize())?;
    Ok((md5_sum, stated))
}

/// The digests a write's headers state, parsed: `Content-MD5` and the
/// `x-amz-checksum-*` values (SHA-256 also as the store's expected digest).
pub(crate) fn stated_digests(
    content_md5: Option<&str>,
    checksums: [Option<String>; 5],
) -> S3Result<(Option<Vec<u8>>, Option<Digest>, Stated)> {
    let md5 = content_md5.map(|t| decode_b64(t, 16, "Content-MD5")).transpose()?;
    let [crc32, crc32c, crc64nvme, sha1, sha256] = checksums;
    let expected = match sha256.as_deref() {
        Some(text) => Some(Digest::from_slice(&decode_b64(text, 32, "x-amz-checksum-sha256")?).expect("32 bytes")),
        None => None,
    };
    Ok((md5, expected, Stated { crc32, crc32c, crc64nvme, sha1, sha256, sha256_checked_by_store: false }))
}

pub(crate) async fn put_object(w: &Wormbox, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
    let actor = caller(&req)?;
    let trailer = req.headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let trailers = req.trailing_headers.clone();
    let size = body_length(req.input.content_length, &req.headers)?;
    let input = req.input;
    let bucket = bucket_name(&input.bucket)?;
    let key = object_key(&input.key)?;
    if size > w.options.max_object_bytes {
        return Err(s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed object size of {} bytes.",
            w.options.max_object_bytes
        ));
    }
    let (md5, expected_sha256, mut stated) = stated_digests(
        input.content_md5.as_deref(),
        [
            input.checksum_crc32.clone(),
            input.checksum_crc32c.clone(),
            input.checksum_crc64nvme.clone(),
            input.checksum_sha1.clone(),
            input.checksum_sha256.clone(),
        ],
    )?;
    let (retention, legal_hold) = lock_headers(
        input.object_lock_mode.as_ref(),
        input.object_lock_retain_until_date.as_ref(),
        input.object_lock_legal_hold_status.as_ref(),
    )?;
    stated.sha256_checked_by_store = expected_sha256.is_some();
    let object = NewObject {
        content_type: input.content_type.clone().unwrap_or_default(),
        user_metadata: user_metadata(input.metadata)?,
        expected_sha256,
        retention,
        legal_hold,
        ..NewObject::default()
    };
    let Some(body) = input.body else {
        return Err(s3_error!(MissingRequestBodyError, "The request has no body."));
    };
    let mut upload = w.app.begin_upload(&actor, PutObject { bucket, key, object }).map_err(app_error)?;
    let (md5_sum, stated) = receive(body, size, md5, stated, trailer.as_deref(), trailers, &mut upload).await?;
    let etag = hex::encode(md5_sum);
    upload.set_etag(etag.clone()).map_err(app_error)?;
    let ack = upload.finish(&actor, || {}).await.map_err(app_error)?;
    let output = PutObjectOutput {
        e_tag: Some(ETag::Strong(etag)),
        version_id: shown_version(&ack.version_id),
        checksum_crc32: stated.crc32,
        checksum_crc32c: stated.crc32c,
        checksum_crc64nvme: stated.crc64nvme,
        checksum_sha1: stated.sha1,
        checksum_sha256: stated.sha256,
        ..Default::default()
    };
    Ok(S3Response::new(output))
}

/// MD5, for ETags: on x86-64 the assembly compression function, since the
/// ETag's MD5 is the largest cost of a PutObject (benches/results).
#[derive(Default)]
pub(crate) struct Md5(md5::Md5);

impl Md5 {
    pub(crate) fn update(&mut self, data: &[u8]) {
        md5::Digest::update(&mut self.0, data);
    }

    pub(crate) fn finalize(self) -> [u8; 16] {
        md5::Digest::finalize(self.0).into()
    }
}

/// The conditional headers of a GET or HEAD, judged against `info`.
struct Conditions<'a> {
    if_match: Option<&'a ETagCondition>,
    if_none_match: Option<&'a ETagCondition>,
    if_modified_since: Option<&'a Timestamp>,
    if_unmodified_since: Option<&'a Timestamp>,
}

impl Conditions<'_> {
    fn judge(&self, info: &VersionInfo) -> S3Result<()> {
        let etag = etag_of(info);
        let matches = |c: &ETagCondition| match c {
            ETagCondition::Any => true,
            ETagCondition::ETag(e) => e.value() == etag,
        };
        // HTTP dates have whole seconds.
        let modified = info.created_at.as_micros().div_euclid(1_000_000);
        let secs = |t: &Timestamp| from_timestamp(t).map(|t| t.as_micros().div_euclid(1_000_000));
        if let Some(c) = self.if_match {
            if !matches(c) {
                return Err(s3_error!(
                    PreconditionFailed,
                    "At least one of the pre-conditions you specified did not hold"
                ));
            }
        } else if let Some(t) = self.if_unmodified_since
            && modified > secs(t)?
        {
            return Err(s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold"));
        }
        if let Some(c) = self.if_none_match {
            if matches(c) {
                return Err(S3Error::new(S3ErrorCode::NotModified));
            }
        } else if let Some(t) = self.if_modified_since
            && modified <= secs(t)?
        {
            return Err(S3Error::new(S3ErrorCode::NotModified));
        }
        Ok(())
    }
}

/// The lock state S3 shows on GET and HEAD.
fn lock_state(info: &VersionInfo) -> (Option<ObjectLockMode>, Option<Timestamp>, Option<ObjectLockLegalHoldStatus>) {
    let mode = info.retention.as_ref().map(|r| ObjectLockMode::from(r.mode.as_str().to_owned()));
    let until = info.retention.as_ref().map(|r| timestamp(r.until));
    // Shown while a hold is placed, as S3 shows only what is set.
    let hold =
        (!info.legal_holds.is_empty()).then(|| ObjectLockLegalHoldStatus::from_static(ObjectLockLegalHoldStatus::ON));
    (mode, until, hold)
}

fn metadata_of(info: &VersionInfo) -> Metadata {
    info.user_metadata.entries().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn content_type_of(info: &VersionInfo) -> Option<String> {
    (!info.content_type.is_empty()).then(|| info.content_type.clone())
}

pub(crate) async fn get_object(w: &Wormbox, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
    let actor = caller(&req)?;
    let checksum_mode =
        req.headers.get("x-amz-checksum-mode").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"ENABLED"));
    let input = req.input;
    let get = GetObject {
        bucket: bucket_name(&input.bucket)?,
        key: object_key(&input.key)?,
        version: version(input.version_id.as_deref())?,
    };
    if input.part_number.is_some() {
        return Err(s3_error!(NotImplemented, "GetObject by partNumber is not served."));
    }
    // Judged before the body is opened: a refused condition reads nothing.
    let info = w.app.head_object(&actor, &get).map_err(app_error)?;
    let conditions = Conditions {
        if_match: input.if_match.as_ref(),
        if_none_match: input.if_none_match.as_ref(),
        if_modified_since: input.if_modified_since.as_ref(),
        if_unmodified_since: input.if_unmodified_since.as_ref(),
    };
    conditions.judge(&info)?;
    let range = match &input.range {
        Some(range) => Some(
            range.check(info.size).map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable"))?,
        ),
        None => None,
    };
    // The version just judged, by its own id: a write in between changes nothing.
    let get = GetObject { version: version(Some(&info.version_id))?, ..get };
    let (info, body) = w.app.read_object(&actor, &get).await.map_err(app_error)?;
    let (start, end) = match &range {
        Some(r) => (r.start, r.end),
        None => (0, info.size),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::task::spawn_blocking(move || {
        let mut at = 0u64;
        for chunk in body {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(err) => {
                    let _ = tx.blocking_send(Err(std::io::Error::other(err.to_string())));
                    return;
                }
            };
            let (from, to) = (at, at + chunk.len() as u64);
            at = to;
            if to <= start {
                continue;
            }
            let lo = start.saturating_sub(from) as usize;
            let hi = (end.min(to) - from) as usize;
            if tx.blocking_send(Ok(Bytes::copy_from_slice(&chunk[lo..hi]))).is_err() || to >= end {
                return;
            }
        }
    });
    let (mode, until, hold) = lock_state(&info);
    let output = GetObjectOutput {
        body: Some(StreamingBlob::wrap(tokio_stream::wrappers::ReceiverStream::new(rx))),
        content_length: Some((end - start) as i64),
        content_range: range.as_ref().map(|r| format!("bytes {}-{}/{}", r.start, r.end.saturating_sub(1), info.size)),
        accept_ranges: Some("bytes".to_owned()),
        content_type: content_type_of(&info),
        e_tag: Some(ETag::Strong(etag_of(&info))),
        last_modified: Some(timestamp(info.created_at)),
        metadata: Some(metadata_of(&info)),
        version_id: shown_version(&info.version_id),
        object_lock_mode: mode,
        object_lock_retain_until_date: until,
        object_lock_legal_hold_status: hold,
        checksum_sha256: (checksum_mode && range.is_none()).then(|| data_encoding::BASE64.encode(&info.sha256.0)),
        ..Default::default()
    };
    Ok(S3Response::new(output))
}

pub(crate) async fn head_object(
    w: &Wormbox,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let actor = caller(&req)?;
    let checksum_mode =
        req.headers.get("x-amz-checksum-mode").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"ENABLED"));
    let input = req.input;
    let get = GetObject {
        bucket: bucket_name(&input.bucket)?,
        key: object_key(&input.key)?,
        version: version(input.version_id.as_deref())?,
    };
    let info = w.app.head_object(&actor, &get).map_err(app_error)?;
    let conditions = Conditions {
        if_match: input.if_match.as_ref(),
        if_none_match: input.if_none_match.as_ref(),
        if_modified_since: input.if_modified_since.as_ref(),
        if_unmodified_since: input.if_unmodified_since.as_ref(),
    };
    conditions.judge(&info)?;
    let (mode, until, hold) = lock_state(&info);
    let output = HeadObjectOutput {
        content_length: Some(info.size as i64),
        accept_ranges: Some("bytes".to_owned()),
        content_type: content_type_of(&info),
        e_tag: Some(ETag::Strong(etag_of(&info))),
        last_modified: Some(timestamp(info.created_at)),
        metadata: Some(metadata_of(&info)),
        version_id: shown_version(&info.version_id),
        object_lock_mode: mode,
        object_lock_retain_until_date: until,
        object_lock_legal_hold_status: hold,
        checksum_sha256: checksum_mode.then(|| data_encoding::BASE64.encode(&info.sha256.0)),
        ..Default::default()
    };
    Ok(S3Response::new(output))
}

pub(crate) async fn delete_object(
    w: &Wormbox,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let actor = caller(&req)?;
    let input = req.input;
    let delete = DeleteObject {
        bucket: bucket_name(&input.bucket)?,
        key: object_key(&input.key)?,
        version: version(input.version_id.as_deref())?,
        mfa: mfa(input.mfa.as_ref()),
        bypass_governance: input.bypass_governance_retention.unwrap_or(false),
    };
    match w.app.delete_object(&actor, delete).await {
        Ok(outcome) => Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: outcome.delete_marker.then_some(true),
            version_id: outcome.version_id.or(input.version_id),
            ..Default::default()
        })),
        // S3 answers a delete of what is not there with success: the
        // request's goal holds, and nothing was written.
        Err(AppError::Store(StoreError::NoSuchKey { .. } | StoreError::NoSuchVersion { .. })) => {
            Ok(S3Response::new(DeleteObjectOutput { version_id: input.version_id, ..Default::default() }))
        }
        Err(err) => Err(app_error(err)),
    }
}

pub(crate) async fn delete_objects(
    w: &Wormbox,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let actor = caller(&req)?;
    let input = req.input;
    let bucket = bucket_name(&input.bucket)?;
    let objects = input.delete.objects;
    if objects.is_empty() || objects.len() > MAX_DELETE_ENTRIES {
        return Err(s3_error!(MalformedXML, "A multi-object delete names 1 to {MAX_DELETE_ENTRIES} objects."));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let mut errors = Vec::new();
    let mut entries = Vec::new();
    for object in objects {
        let parsed = object_key(&object.key)
            .and_then(|key| Ok(DeleteEntry { key, version: version(object.version_id.as_deref())? }));
        match parsed {
            Ok(entry) => entries.push(entry),
            Err(err) => errors.push(Error {
                code: Some(err.code().as_str().to_owned()),
                key: Some(object.key),
                message: err.message().map(str::to_owned),
                version_id: object.version_id,
            }),
        }
    }
    let mut deleted = Vec::new();
    if !entries.is_empty() {
        let delete = DeleteObjects {
            bucket,
            entries,
            mfa: mfa(input.mfa.as_ref()),
            bypass_governance: input.bypass_governance_retention.unwrap_or(false),
        };
        let outcomes = w.app.delete_objects(&actor, delete).await.map_err(app_error)?;
        for outcome in outcomes {
            let key = outcome.entry.key.to_string();
            let asked = outcome.entry.version.map(|v| v.to_string());
            match outcome.result {
                Ok(done) => deleted.push(deleted_object(key, asked, done.delete_marker, done.version_id)),
                Err(StoreError::NoSuchKey { .. } | StoreError::NoSuchVersion { .. }) => {
                    deleted.push(DeletedObject { key: Some(key), version_id: asked, ..Default::default() })
                }
                Err(err) => {
                    let err = app_error(AppError::Store(err));
                    errors.push(Error {
                        code: Some(err.code().as_str().to_owned()),
                        key: Some(key),
                        message: err.message().map(str::to_owned),
                        version_id: asked,
                    });
                }
            }
        }
    }
    let output =
        DeleteObjectsOutput { deleted: (!quiet).then_some(deleted), errors: Some(errors), ..Default::default() };
    Ok(S3Response::new(output))
}

/// A `<Deleted>` entry as S3 writes it: `VersionId` is the version the
/// request named (none when it named none), and a delete marker, whether
/// the request wrote it or permanently deleted it by its id, is
/// `DeleteMarker` with its id in `DeleteMarkerVersionId`.
fn deleted_object(key: String, asked: Option<String>, marker: bool, version_id: Option<String>) -> DeletedObject {
    DeletedObject {
        key: Some(key),
        delete_marker: marker.then_some(true),
        delete_marker_version_id: if marker { version_id.or_else(|| asked.clone()) } else { None },
        version_id: asked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_amz_meta_headers_past_64_names_or_2_kib_are_metadata_too_large() {
        let headers = |n: usize, value: &str| Some((0..n).map(|i| (format!("m{i}"), value.to_owned())).collect());
        assert_eq!(user_metadata(headers(64, "v")).unwrap().entries().len(), 64);
        for (n, value) in [(65, ""), (1, &*"v".repeat(2048))] {
            let err = user_metadata(headers(n, value)).unwrap_err();
            assert_eq!(err.code().as_str(), "MetadataTooLarge", "{n}");
        }
    }

    #[test]
    fn the_etag_md5_is_rfc_1321s_whatever_the_pieces() {
        // RFC 1321, appendix A.5.
        let vectors: [(&[u8], &str); 4] = [
            (b"", "d41d8cd98f00b204e9800998ecf8427e"),
            (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
            (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in vectors {
            let mut md5 = Md5::default();
            md5.update(input);
            assert_eq!(hex::encode(md5.finalize()), want);
        }
        // Pieces across block boundaries give the sum of the whole.
        let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut whole = Md5::default();
        whole.update(&body);
        let whole = whole.finalize();
        for piece in [1, 63, 64, 65, 1000, 65536] {
            let mut md5 = Md5::default();
            body.chunks(piece).for_each(|c| md5.update(c));
            assert_eq!(md5.finalize(), whole, "pieces of {piece}");
        }
    }

    /// Records the pieces a body reaches the store in.
    #[derive(Default)]
    struct Pieces(Vec<Bytes>);

    impl Sink for Pieces {
        fn put(&mut self, data: Bytes) -> impl std::future::Future<Output = Result<(), AppError>> + Send {
            self.0.push(data);
            std::future::ready(Ok(()))
        }
    }

    async fn received(pieces: Vec<Bytes>) -> (Vec<Bytes>, [u8; 16]) {
        let size = pieces.iter().map(|p| p.len() as u64).sum();
        let body = StreamingBlob::wrap(futures::stream::iter(pieces.into_iter().map(Ok::<_, std::io::Error>)));
        let mut sink = Pieces::default();
        let (md5, _) = receive(body, size, None, Stated::default(), None, None, &mut sink).await.unwrap();
        (sink.0, md5)
    }

    #[tokio::test]
    async fn a_body_reaches_the_store_whole_in_chunks_and_a_last_piece_without_a_copy() {
        let body: Bytes = (0..(2 * CHUNK_BYTES + 100_000) as u32).map(|i| (i % 253) as u8).collect::<Vec<_>>().into();
        let mut whole = Md5::default();
        whole.update(&body);
        let whole = whole.finalize();
        for piece in [1000, 65536, CHUNK_BYTES, CHUNK_BYTES + 1, body.len()] {
            let pieces: Vec<Bytes> = body.chunks(piece).map(|c| body.slice_ref(c)).collect();
            let (stored, md5) = received(pieces).await;
            assert_eq!(md5, whole, "pieces of {piece}");
            assert!(stored.iter().all(|p| p.len() <= CHUNK_BYTES), "pieces of {piece}");
            assert_eq!(stored.concat(), body.to_vec(), "pieces of {piece}");
            // Small pieces gather: one blocking hop per chunk, not per piece.
            assert_eq!(stored.len(), 3, "pieces of {piece}: {:?}", stored.iter().map(Bytes::len).collect::<Vec<_>>());
        }
        // A body in one piece is passed on as it is.
        let small = body.slice(..65536);
        let (stored, _) = received(vec![small.clone()]).await;
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].as_ptr(), small.as_ptr(), "not copied");
    }

    #[test]
    fn a_sha256_left_to_the_store_is_not_hashed_here_but_a_trailers_is() {
        let stated = Stated { sha256: Some("x".into()), sha256_checked_by_store: true, ..Stated::default() };
        assert!(stated.hasher(None).sha256.is_none());
        assert!(stated.check(&stated.hasher(None).finalize()).is_ok());
        // A trailer is read after the body, so the endpoint checks it.
        assert!(stated.hasher(Some("x-amz-checksum-sha256")).sha256.is_some());
        let own = Stated { sha256: Some("x".into()), ..Stated::default() };
        assert_eq!(own.check(&own.hasher(None).finalize()).unwrap_err().code(), &S3ErrorCode::BadDigest);
    }

    #[test]
    fn a_deleted_marker_named_by_its_id_keeps_the_id_in_the_answer() {
        let id = "000SHTCRY7E600000000000000".to_owned();
        // A permanent delete of a delete marker by its id (boto3 reads `VersionId`).
        let purged = deleted_object("k".into(), Some(id.clone()), true, Some(id.clone()));
        assert_eq!(purged.version_id.as_deref(), Some(id.as_str()));
        assert_eq!((purged.delete_marker, purged.delete_marker_version_id.as_deref()), (Some(true), Some(id.as_str())));
        // A delete without an id writes a marker: no `VersionId`, the new marker's id.
        let written = deleted_object("k".into(), None, true, Some(id.clone()));
        assert_eq!(written.version_id, None);
        assert_eq!(written.delete_marker_version_id.as_deref(), Some(id.as_str()));
        // A version deleted by its id.
        let version = deleted_object("k".into(), Some(id.clone()), false, Some(id.clone()));
        assert_eq!((version.version_id.as_deref(), version.delete_marker), (Some(id.as_str()), None));
    }

    #[test]
    fn lock_headers_need_both_mode_and_date() {
        let mode = ObjectLockMode::from_static(ObjectLockMode::COMPLIANCE);
        let until = Timestamp::from(std::time::UNIX_EPOCH + Duration::from_secs(2_000_000_000));
        assert!(lock_headers(Some(&mode), None, None).is_err());
        assert!(lock_headers(None, Some(&until), None).is_err());
        let (retention, hold) = lock_headers(Some(&mode), Some(&until), None).unwrap();
        let retention = retention.unwrap();
        assert_eq!(retention.mode, RetentionMode::Compliance);
        assert_eq!(retention.until.as_micros(), 2_000_000_000_000_000);
        assert_eq!(hold, None);
        let on = ObjectLockLegalHoldStatus::from_static(ObjectLockLegalHoldStatus::ON);
        assert_eq!(lock_headers(None, None, Some(&on)).unwrap().1.as_deref(), Some(S3_HOLD));
        let bad = ObjectLockLegalHoldStatus::from("MAYBE".to_owned());
        assert!(lock_headers(None, None, Some(&bad)).is_err());
    }

    #[test]
    fn stated_checksums_are_compared_with_what_arrived() {
        let stated = Stated { crc32: Some(data_encoding::BASE64.encode(&[0, 0, 0, 0])), ..Stated::default() };
        let mut hasher = stated.hasher(None);
        hasher.update(b"hello");
        assert_eq!(stated.check(&hasher.finalize()).unwrap_err().code(), &S3ErrorCode::BadDigest);
        let mut crc = s3s::crypto::Crc32::default();
        s3s::crypto::Checksum::update(&mut crc, b"hello");
        let good = Stated {
            crc32: Some(data_encoding::BASE64.encode(s3s::crypto::Checksum::finalize(crc).as_ref())),
            ..Stated::default()
        };
        let mut hasher = good.hasher(None);
        hasher.update(b"hello");
        good.check(&hasher.finalize()).unwrap();
    }
}
