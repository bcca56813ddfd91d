//! The one place where domain errors become gRPC statuses.
//!
//! Invariant: each error maps to a stable code and `google.rpc.ErrorInfo`
//! reason from DESIGN.md's list; the match has no catch-all arm, so a new
//! variant does not compile until its mapping is decided here. Clients get a
//! terse message; logs get the full chain.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use wormbox_mfa::MfaError;
use wormbox_store::StoreError;
use wormbox_store::backend::BackendError;

/// Builds a status with an ErrorInfo `reason` in the Wormbox domain.
pub(crate) fn with_reason(code: Code, reason: &str, message: impl Into<String>) -> Status {
    with_metadata(code, reason, message, HashMap::new())
}

fn with_metadata(code: Code, reason: &str, message: impl Into<String>, metadata: HashMap<String, String>) -> Status {
    let details = ErrorDetails::with_error_info(reason, wormbox_proto::ERROR_DOMAIN, metadata);
    Status::with_error_details(code, message, details)
}

/// An invalid request field.
pub(crate) fn invalid(message: impl Into<String>) -> Status {
    with_reason(Code::InvalidArgument, "INVALID_ARGUMENT", message)
}

/// Maps a store error; every variant is decided here.
pub(crate) fn from_store(err: &StoreError) -> Status {
    let message = err.to_string();
    match err {
        StoreError::NoSuchBucket { .. } => with_reason(Code::NotFound, "NO_SUCH_BUCKET", message),
        StoreError::BucketExists { .. } => with_reason(Code::AlreadyExists, "BUCKET_EXISTS", message),
        StoreError::BucketNotEmpty { .. } => with_reason(Code::FailedPrecondition, "BUCKET_NOT_EMPTY", message),
        StoreError::NoSuchKey { .. } => with_reason(Code::NotFound, "NO_SUCH_KEY", message),
        StoreError::NoSuchVersion { .. } => with_reason(Code::NotFound, "NO_SUCH_VERSION", message),
        StoreError::LatestIsDeleteMarker { version, .. } => {
            with_metadata(Code::NotFound, "DELETE_MARKER", message, marker_metadata(version))
        }
        StoreError::VersionIsDeleteMarker { version, .. } => {
            with_metadata(Code::FailedPrecondition, "DELETE_MARKER", message, marker_metadata(version))
        }
        StoreError::InvalidArgument(_) | StoreError::TooLarge { .. } => {
            with_reason(Code::InvalidArgument, "INVALID_ARGUMENT", message)
        }
        StoreError::ChecksumMismatch { .. } => with_reason(Code::InvalidArgument, "CHECKSUM_MISMATCH", message),
        StoreError::AccessDenied(_) => with_reason(Code::PermissionDenied, "ACCESS_DENIED", message),
        StoreError::NoSuchPrincipal(_) => with_reason(Code::NotFound, "INVALID_ARGUMENT", message),
        StoreError::MfaRequired { .. } | StoreError::NullVersionNeedsMfa { .. } | StoreError::NeedsAdminCode { .. } => {
            with_reason(Code::PermissionDenied, "MFA_REQUIRED", message)
        }
        StoreError::ObjectLocked { .. } => with_reason(Code::PermissionDenied, "OBJECT_LOCKED", message),
        StoreError::LegalHold { .. } => with_reason(Code::PermissionDenied, "LEGAL_HOLD", message),
        StoreError::RetentionShortenDenied(_) => {
            with_reason(Code::PermissionDenied, "RETENTION_SHORTEN_DENIED", message)
        }
        StoreError::VersioningLocked { .. } | StoreError::SuspendedWithMfaDelete { .. } => {
            with_reason(Code::FailedPrecondition, "VERSIONING_LOCKED", message)
        }
        StoreError::DataLoss { .. } => {
            log(err);
            Status::data_loss("stored data failed verification; nothing corrupt was returned")
        }
        // Damaged stored data is lost, not unavailable: a retry cannot
        // bring it back, and the client must be told which it is.
        StoreError::Backend { source, .. } if matches!(**source, BackendError::Corruption { .. }) => {
            log(err);
            Status::data_loss("stored data is damaged and cannot be read; nothing corrupt was returned")
        }
        // The server checks the format at start; seeing it here means the
        // files changed under a running server.
        StoreError::Backend { .. }
        | StoreError::WriterStopped
        | StoreError::FormatTooNew { .. }
        | StoreError::FormatTooOld { .. } => {
            log(err);
            Status::unavailable("storage unavailable")
        }
    }
}

/// Maps a backup failure: role and store errors as everywhere, a refusal
/// while another backup runs or the server stops as such, the rest as an
/// internal failure whose detail goes to the log only.
pub(crate) fn from_backup(err: &crate::backup::BackupError) -> Status {
    match err {
        crate::backup::BackupError::Store(e) => from_store(e),
        crate::backup::BackupError::InProgress => {
            with_reason(Code::FailedPrecondition, "BACKUP_IN_PROGRESS", err.to_string())
        }
        crate::backup::BackupError::Stopping => Status::unavailable(err.to_string()),
        other => {
            tracing::error!(error = %other, "backup failed");
            Status::internal("the backup could not be taken; see the server log")
        }
    }
}

/// Maps an MFA authority error; every variant is decided here. The messages
/// come from `MfaError`, which never holds a code or a seed.
pub(crate) fn from_mfa(err: &MfaError) -> Status {
    let message = err.to_string();
    match err {
        MfaError::Invalid => with_reason(Code::PermissionDenied, "MFA_INVALID", message),
        MfaError::Replayed => with_reason(Code::PermissionDenied, "MFA_REPLAYED", message),
        MfaError::LockedOut { until } => with_metadata(
            Code::PermissionDenied,
            "MFA_LOCKED_OUT",
            message,
            HashMap::from([("locked_until_unix_seconds".to_owned(), until.to_string())]),
        ),
        MfaError::Required(_) => with_reason(Code::PermissionDenied, "MFA_REQUIRED", message),
        MfaError::Expired(_) => with_reason(Code::FailedPrecondition, "MFA_DEVICE_EXPIRED", message),
        MfaError::InvalidArgument(_) | MfaError::Pskc(_) => {
            with_reason(Code::InvalidArgument, "INVALID_ARGUMENT", message)
        }
        MfaError::DuplicateSerial(_) => with_reason(Code::AlreadyExists, "INVALID_ARGUMENT", message),
        MfaError::AccessDenied(_) => with_reason(Code::PermissionDenied, "ACCESS_DENIED", message),
        MfaError::Store(store) => from_store(store),
        MfaError::KeyFile(_) | MfaError::Sealing | MfaError::Corrupt => {
            tracing::error!(error = err as &dyn std::error::Error, "MFA authority failed");
            Status::internal("the MFA authority failed; see the server log")
        }
    }
}

/// Returns the ErrorInfo reason of a store error, for per-record Ingest errors.
pub(crate) fn reason_of(status: &Status) -> String {
    status.get_details_error_info().map(|info| info.reason).unwrap_or_else(|| format!("{:?}", status.code()))
}

fn marker_metadata(version: &str) -> HashMap<String, String> {
    HashMap::from([("version_id".to_owned(), version.to_owned()), ("delete_marker".to_owned(), "true".to_owned())])
}

fn log(err: &StoreError) {
    tracing::error!(error = err as &dyn std::error::Error, "request failed in storage");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_map_to_not_found_or_failed_precondition_with_their_id() {
        let latest = from_store(&StoreError::LatestIsDeleteMarker { key: "k".into(), version: "V".into() });
        assert_eq!(latest.code(), Code::NotFound);
        let info = latest.get_details_error_info().unwrap();
        assert_eq!(info.reason, "DELETE_MARKER");
        assert_eq!(info.domain, "wormbox.v1");
        assert_eq!(info.metadata.get("version_id").map(String::as_str), Some("V"));
        let by_id = from_store(&StoreError::VersionIsDeleteMarker { key: "k".into(), version: "V".into() });
        assert_eq!(by_id.code(), Code::FailedPrecondition);
        assert_eq!(reason_of(&by_id), "DELETE_MARKER");
    }

    #[test]
    fn damaged_storage_is_data_loss_and_other_engine_failures_are_unavailable() {
        let damaged = StoreError::Backend {
            operation: "reading a chunk",
            source: std::sync::Arc::new(BackendError::Corruption {
                space: Some(wormbox_store::backend::Keyspace::Chunks),
                source: "block checksum mismatch in /srv/db/000012.sst".into(),
            }),
        };
        let status = from_store(&damaged);
        assert_eq!(status.code(), Code::DataLoss);
        assert!(!status.message().contains("000012"), "{status:?}");
        let io = StoreError::Backend {
            operation: "reading a chunk",
            source: std::sync::Arc::new(BackendError::Io(std::io::Error::other("disk gone"))),
        };
        assert_eq!(from_store(&io).code(), Code::Unavailable);
    }

    #[test]
    fn storage_failures_do_not_leak_details() {
        let status = from_store(&StoreError::DataLoss { what: "chunk 3 of upload 1234".into() });
        assert_eq!(status.code(), Code::DataLoss);
        assert!(!status.message().contains("1234"));
    }
}
