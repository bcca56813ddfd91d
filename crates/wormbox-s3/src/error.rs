//! Application errors as S3 errors: the one place where `AppError` becomes
//! an S3 error code and HTTP status.
//!
//! Invariant: the mapping goes by `AppError::code`, the stable reason gRPC
//! also answers with, and the reason ends every message (`... (OBJECT_LOCKED)`),
//! so an S3 client sees why a protected version was not touched; S3's
//! `AccessDenied` covers every MFA and lock refusal, as S3 answers them.
//! Messages are the application layer's, which never carry a secret or a
//! code.

use http::{HeaderMap, HeaderValue};
use s3s::{S3Error, S3ErrorCode};
use wormbox_app::AppError;
use wormbox_store::StoreError;

/// `err` as S3 answers it.
pub(crate) fn app_error(err: AppError) -> S3Error {
    let reason = err.code();
    if reason == "DISK_FULL" {
        // S3 has no code for it; 507 is HTTP's (RFC 4918), as MinIO and
        // restic's REST server answer a full disk. Not retried by clients
        // as a 503 would be: waiting does not free space.
        let mut s3 = custom("InsufficientStorage", 507, format!("{err} ({reason})"));
        let mut headers = HeaderMap::new();
        headers.insert("x-wormbox-reason", HeaderValue::from_static(reason));
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
        s3.set_headers(headers);
        return s3;
    }
    let code = match (&err, reason) {
        (AppError::Store(StoreError::TooLarge { .. }), _) => S3ErrorCode::EntityTooLarge,
        (AppError::Store(StoreError::LatestIsDeleteMarker { .. }), _) => S3ErrorCode::NoSuchKey,
        (AppError::Store(StoreError::VersionIsDeleteMarker { .. }), _) => S3ErrorCode::MethodNotAllowed,
        (_, "NO_SUCH_BUCKET") => S3ErrorCode::NoSuchBucket,
        (_, "NO_SUCH_KEY") => S3ErrorCode::NoSuchKey,
        (_, "NO_SUCH_VERSION") => S3ErrorCode::NoSuchVersion,
        (_, "BUCKET_EXISTS") => S3ErrorCode::BucketAlreadyExists,
        (_, "BUCKET_NOT_EMPTY") => S3ErrorCode::BucketNotEmpty,
        (_, "INVALID_ARGUMENT") => S3ErrorCode::InvalidArgument,
        (_, "CHECKSUM_MISMATCH") => S3ErrorCode::BadDigest,
        (_, "VERSIONING_LOCKED") => S3ErrorCode::InvalidBucketState,
        (_, "NO_SUCH_UPLOAD") => S3ErrorCode::NoSuchUpload,
        (_, "INVALID_PART") => S3ErrorCode::InvalidPart,
        (_, "INVALID_PART_ORDER") => S3ErrorCode::InvalidPartOrder,
        (_, "ENTITY_TOO_SMALL") => S3ErrorCode::EntityTooSmall,
        (_, "UPLOAD_BUSY") => S3ErrorCode::OperationAborted,
        (
            _,
            "ACCESS_DENIED"
            | "MFA_REQUIRED"
            | "MFA_INVALID"
            | "MFA_REPLAYED"
            | "MFA_LOCKED_OUT"
            | "MFA_DEVICE_EXPIRED"
            | "OBJECT_LOCKED"
            | "LEGAL_HOLD"
            | "RETENTION_SHORTEN_DENIED",
        ) => S3ErrorCode::AccessDenied,
        (_, "UNAVAILABLE" | "REPLICA_UNAVAILABLE" | "REPLICA_PENDING") => S3ErrorCode::ServiceUnavailable,
        _ => S3ErrorCode::InternalError,
    };
    if matches!(reason, "DATA_LOSS" | "INTERNAL" | "REPLICA_COPY_DIFFERS") {
        tracing::error!(reason, error = &err as &dyn std::error::Error, "an S3 request failed");
    }
    let mut s3 = S3Error::with_message(code, format!("{err} ({reason})"));
    let mut headers = HeaderMap::new();
    // S3 names the marker a GET or HEAD ran into.
    if let AppError::Store(
        StoreError::LatestIsDeleteMarker { version, .. } | StoreError::VersionIsDeleteMarker { version, .. },
    ) = &err
    {
        headers.insert("x-amz-delete-marker", HeaderValue::from_static("true"));
        if let Ok(id) = HeaderValue::from_str(version) {
            headers.insert("x-amz-version-id", id);
        }
    }
    headers.insert("x-wormbox-reason", HeaderValue::from_static(reason));
    // `set_headers` replaces the response's headers, its content type included.
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    s3.set_headers(headers);
    s3
}

/// An `InvalidArgument` naming what is wrong with the request.
pub(crate) fn invalid(message: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, message.into())
}

/// An S3 error code s3s has no variant for, with its status.
pub(crate) fn custom(code: &str, status: u16, message: impl Into<String>) -> S3Error {
    let code: S3ErrorCode = code.parse().unwrap_or(S3ErrorCode::InternalError);
    let mut err = S3Error::with_message(code, message.into());
    if let Ok(status) = http::StatusCode::from_u16(status) {
        err.set_status_code(status);
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_and_mfa_refusals_are_access_denied_naming_the_reason() {
        let locked = AppError::Store(StoreError::ObjectLocked {
            key: "k".into(),
            version: "V".into(),
            why: "retained until 2030".into(),
        });
        let err = app_error(locked);
        assert_eq!(err.code(), &S3ErrorCode::AccessDenied);
        assert!(err.message().unwrap().ends_with("(OBJECT_LOCKED)"), "{:?}", err.message());
        let err = app_error(AppError::Store(StoreError::MfaRequired { bucket: "b".into() }));
        assert_eq!(err.code(), &S3ErrorCode::AccessDenied);
        assert!(err.message().unwrap().ends_with("(MFA_REQUIRED)"));
    }

    #[test]
    fn a_full_disk_is_507_insufficient_storage_naming_the_reason() {
        let err =
            app_error(AppError::Store(StoreError::DiskFull { bytes: 5 << 20, available: 10 << 20, reserve: 1 << 30 }));
        assert_eq!(err.code().as_str(), "InsufficientStorage");
        assert_eq!(err.status_code(), Some(http::StatusCode::INSUFFICIENT_STORAGE));
        assert!(err.message().unwrap().ends_with("(DISK_FULL)"), "{:?}", err.message());
        assert!(err.message().unwrap().contains("10.0 MiB available"), "{:?}", err.message());
    }

    #[test]
    fn a_missing_bucket_is_no_such_bucket() {
        let err = app_error(AppError::Store(StoreError::NoSuchBucket { bucket: "b".into() }));
        assert_eq!(err.code(), &S3ErrorCode::NoSuchBucket);
    }
}
