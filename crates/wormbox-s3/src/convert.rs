//! What every operation shares: `Wormbox` (the application layer and the
//! endpoint's options) and the conversions of S3's request fields into the
//! archive's types, each refusing what does not parse with S3's code for it.

use std::sync::Arc;

use s3s::dto::Timestamp;
use s3s::{S3Result, s3_error};
use wormbox_app::{App, AppError, MfaCode};
use wormbox_model::{BucketName, ObjectKey, Timestamp as WormTime, VersionSelector};

use crate::S3Options;
use crate::error::app_error;

/// The S3 operations over the application layer.
pub(crate) struct Wormbox {
    pub(crate) app: Arc<App>,
    pub(crate) options: S3Options,
}

impl Wormbox {
    pub(crate) fn new(app: Arc<App>, options: S3Options) -> Wormbox {
        Wormbox { app, options }
    }
}

/// A bucket name from a request (s3s checked S3's naming rules already).
pub(crate) fn bucket_name(name: &str) -> S3Result<BucketName> {
    BucketName::new(name).map_err(|e| s3_error!(InvalidBucketName, "{e}"))
}

/// An object key from a request.
pub(crate) fn object_key(key: &str) -> S3Result<ObjectKey> {
    ObjectKey::new(key).map_err(|e| match key.len() {
        n if n > 1024 => s3_error!(KeyTooLongError, "{e}"),
        _ => s3_error!(InvalidArgument, "{e}"),
    })
}

/// A `versionId` parameter: absent or empty is the latest.
pub(crate) fn version(id: Option<&str>) -> S3Result<Option<VersionSelector>> {
    match id {
        None | Some("") => Ok(None),
        Some(id) => {
            VersionSelector::parse(id).map(Some).map_err(|_| s3_error!(InvalidArgument, "Invalid version id specified"))
        }
    }
}

/// An `x-amz-mfa` header (`SERIAL CODE`), passed on as the client wrote it:
/// the MFA authority parses it strictly.
pub(crate) fn mfa(header: Option<&String>) -> Option<MfaCode> {
    header.map(|text| MfaCode::new(text.trim()))
}

/// A compliance-clock time as S3 shows it.
pub(crate) fn timestamp(at: WormTime) -> Timestamp {
    let micros = u64::try_from(at.as_micros()).unwrap_or(0);
    Timestamp::from(std::time::UNIX_EPOCH + std::time::Duration::from_micros(micros))
}

/// An S3 time as the archive keeps it (microseconds since the epoch).
pub(crate) fn from_timestamp(at: &Timestamp) -> S3Result<WormTime> {
    let offset = time::OffsetDateTime::from(at.clone());
    let micros = offset.unix_timestamp_nanos() / 1000;
    i64::try_from(micros).map(WormTime).map_err(|_| s3_error!(InvalidArgument, "The date is out of range."))
}

/// Runs `work` (a scan) on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> S3Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(app_error),
        Err(err) => Err(s3_error!(InternalError, "a blocking task failed: {err}")),
    }
}
