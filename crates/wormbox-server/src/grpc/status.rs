//! The one place where application errors become gRPC statuses.
//!
//! Invariant: each `AppError` maps to a stable code, with its reason
//! (`AppError::code`, DESIGN.md's list) as the `google.rpc.ErrorInfo`
//! reason; the matches have no catch-all arm, so a new variant does not
//! compile until its gRPC code is decided here. Clients get a terse message;
//! logs get the full chain, and failures that are not the client's (lost or
//! unavailable storage, a failed authority or backup) carry no ErrorInfo.
//! `REPLICA_PENDING` is UNAVAILABLE with ErrorInfo: the write happened and
//! the client must be able to tell it from one that did not. A released
//! version (the capacity tier) whose replica copy differs from the ledger
//! is DATA_LOSS with `REPLICA_COPY_DIFFERS`; whose replica does not answer,
//! UNAVAILABLE with `REPLICA_UNAVAILABLE`; both name the rule.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use wormbox_mfa::MfaError;
use wormbox_store::StoreError;
use wormbox_store::backend::BackendError;

use wormbox_app::AppError;
use wormbox_app::backup::BackupError;

/// Builds a status with an ErrorInfo `reason` in the Wormbox domain.
fn with_metadata(code: Code, reason: &str, message: impl Into<String>, metadata: HashMap<String, String>) -> Status {
    let details = ErrorDetails::with_error_info(reason, wormbox_proto::ERROR_DOMAIN, metadata);
    Status::with_error_details(code, message, details)
}

/// An invalid request field.
pub(crate) fn invalid(message: impl Into<String>) -> Status {
    status(StoreError::InvalidArgument(message.into()))
}

/// An Ingest or PutObject stream that kept receive budget waiting past
/// `[limits] message_receive_ms` (`what` says for what: a message's body, an
/// upload's next message): the client's doing, so it carries a reason
/// (`MESSAGE_DEADLINE`).
pub(crate) fn message_deadline(what: &str, millis: u128) -> Status {
    with_metadata(
        Code::DeadlineExceeded,
        "MESSAGE_DEADLINE",
        format!(
            "{what} within {millis} ms ([limits] message_receive_ms): the call is failed and its share of the \
             receive budget returned"
        ),
        HashMap::from([("message_receive_ms".to_owned(), millis.to_string())]),
    )
}

/// Maps an application error (or a store, MFA or backup error on its way
/// to being one); every variant is decided here.
pub(crate) fn status(err: impl Into<AppError>) -> Status {
    let err = err.into();
    let reason = err.code();
    let message = err.to_string();
    let decided = match &err {
        AppError::Store(store) => from_store(store),
        AppError::Mfa(mfa) => from_mfa(mfa),
        AppError::Backup(backup) => from_backup(backup),
        AppError::Replica(_) => return Status::unavailable(message),
        AppError::Unauthenticated => Ok((Code::Unauthenticated, HashMap::new())),
        // Unavailable (the replica), yet with a reason: the client must tell
        // it from a write that did not happen, and must not write it again.
        AppError::ReplicaPending(pending) => Ok((
            Code::Unavailable,
            HashMap::from([
                ("version_id".to_owned(), pending.version_id.clone()),
                ("ledger_sequence".to_owned(), pending.sequence.to_string()),
                ("rule".to_owned(), pending.rule.clone()),
                ("sync_timeout_ms".to_owned(), pending.timeout_ms.to_string()),
            ]),
        )),
        AppError::Internal(_) => return Status::internal(message),
        // Lost, not unavailable: the replica holds other bytes than the
        // ledger attests, and a retry will not change that.
        AppError::ReplicaCopyDiffers { rule, replica_id, .. } => Ok((
            Code::DataLoss,
            HashMap::from([("rule".to_owned(), rule.clone()), ("replica_version_id".to_owned(), replica_id.clone())]),
        )),
        // No gRPC call makes multipart uploads (an S3 front door's).
        AppError::Multipart(_) => Ok((Code::FailedPrecondition, HashMap::new())),
        AppError::ReplicaUnavailable { rule, .. } => {
            Ok((Code::Unavailable, HashMap::from([("rule".to_owned(), rule.clone())])))
        }
    };
    match decided {
        Ok((code, metadata)) => with_metadata(code, reason, message, metadata),
        Err(status) => status,
    }
}

/// A gRPC code and ErrorInfo metadata, or a whole status without ErrorInfo.
type Decided = Result<(Code, HashMap<String, String>), Status>;

fn from_store(err: &StoreError) -> Decided {
    let code = match err {
        StoreError::NoSuchBucket { .. }
        | StoreError::NoSuchKey { .. }
        | StoreError::NoSuchVersion { .. }
        | StoreError::NoSuchPrincipal(_) => Code::NotFound,
        StoreError::BucketExists { .. } => Code::AlreadyExists,
        StoreError::LatestIsDeleteMarker { version, .. } => return Ok((Code::NotFound, marker_metadata(version))),
        StoreError::VersionIsDeleteMarker { version, .. } => {
            return Ok((Code::FailedPrecondition, marker_metadata(version)));
        }
        StoreError::BucketNotEmpty { .. }
        | StoreError::VersioningLocked { .. }
        | StoreError::SuspendedWithMfaDelete { .. } => Code::FailedPrecondition,
        StoreError::InvalidArgument(_) | StoreError::TooLarge { .. } | StoreError::ChecksumMismatch { .. } => {
            Code::InvalidArgument
        }
        StoreError::DiskFull { .. } => Code::ResourceExhausted,
        StoreError::AccessDenied(_)
        | StoreError::MfaRequired { .. }
        | StoreError::NullVersionNeedsMfa { .. }
        | StoreError::NeedsAdminCode { .. }
        | StoreError::ObjectLocked { .. }
        | StoreError::LegalHold { .. }
        | StoreError::RetentionShortenDenied(_) => Code::PermissionDenied,
        StoreError::DataLoss { .. } => {
            log(err);
            return Err(Status::data_loss("stored data failed verification; nothing corrupt was returned"));
        }
        // Damaged stored data is lost, not unavailable: a retry cannot
        // bring it back, and the client must be told which it is.
        StoreError::Backend { source, .. } if matches!(**source, BackendError::Corruption { .. }) => {
            log(err);
            return Err(Status::data_loss("stored data is damaged and cannot be read; nothing corrupt was returned"));
        }
        // The server checks the format at start; seeing it here means the
        // files changed under a running server.
        StoreError::Backend { .. }
        | StoreError::WriterStopped
        | StoreError::FormatTooNew { .. }
        | StoreError::FormatTooOld { .. } => {
            log(err);
            return Err(Status::unavailable("storage unavailable"));
        }
    };
    Ok((code, HashMap::new()))
}

/// A backup refused while another backup runs or the server stops is said
/// as such; the rest is an internal failure whose detail goes to the log only.
fn from_backup(err: &BackupError) -> Decided {
    match err {
        BackupError::Store(store) => from_store(store),
        BackupError::InProgress => Ok((Code::FailedPrecondition, HashMap::new())),
        BackupError::Stopping => Err(Status::unavailable(err.to_string())),
        BackupError::Io { .. } | BackupError::Copy(_) | BackupError::Damaged { .. } | BackupError::Refused(_) => {
            tracing::error!(error = %err, "backup failed");
            Err(Status::internal("the backup could not be taken; see the server log"))
        }
    }
}

/// The messages come from `MfaError`, which never holds a code or a seed.
fn from_mfa(err: &MfaError) -> Decided {
    let code = match err {
        MfaError::Invalid | MfaError::Replayed | MfaError::Required(_) | MfaError::AccessDenied(_) => {
            Code::PermissionDenied
        }
        MfaError::LockedOut { until } => {
            let metadata = HashMap::from([("locked_until_unix_seconds".to_owned(), until.to_string())]);
            return Ok((Code::PermissionDenied, metadata));
        }
        MfaError::Expired(_) => Code::FailedPrecondition,
        MfaError::InvalidArgument(_) | MfaError::Pskc(_) => Code::InvalidArgument,
        MfaError::DuplicateSerial(_) => Code::AlreadyExists,
        MfaError::Store(store) => return from_store(store),
        MfaError::KeyFile(_) | MfaError::Sealing | MfaError::Corrupt => {
            tracing::error!(error = err as &dyn std::error::Error, "MFA authority failed");
            return Err(Status::internal("the MFA authority failed; see the server log"));
        }
    };
    Ok((code, HashMap::new()))
}

/// Returns the ErrorInfo reason of a status, for per-record Ingest errors.
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
        let latest = status(StoreError::LatestIsDeleteMarker { key: "k".into(), version: "V".into() });
        assert_eq!(latest.code(), Code::NotFound);
        let info = latest.get_details_error_info().unwrap();
        assert_eq!(info.reason, "DELETE_MARKER");
        assert_eq!(info.domain, "wormbox.v1");
        assert_eq!(info.metadata.get("version_id").map(String::as_str), Some("V"));
        let by_id = status(StoreError::VersionIsDeleteMarker { key: "k".into(), version: "V".into() });
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
        let lost = status(damaged);
        assert_eq!(lost.code(), Code::DataLoss);
        assert!(!lost.message().contains("000012"), "{lost:?}");
        let io = StoreError::Backend {
            operation: "reading a chunk",
            source: std::sync::Arc::new(BackendError::Io(std::io::Error::other("disk gone"))),
        };
        assert_eq!(status(io).code(), Code::Unavailable);
    }

    #[test]
    fn storage_failures_do_not_leak_details() {
        let lost = status(StoreError::DataLoss { what: "chunk 3 of upload 1234".into() });
        assert_eq!(lost.code(), Code::DataLoss);
        assert!(!lost.message().contains("1234"));
    }

    #[test]
    fn reasons_and_codes_are_those_clients_know() {
        let cases = [
            (status(AppError::Unauthenticated), Code::Unauthenticated, "ACCESS_DENIED"),
            (status(MfaError::Replayed), Code::PermissionDenied, "MFA_REPLAYED"),
            (status(MfaError::DuplicateSerial("S".into())), Code::AlreadyExists, "INVALID_ARGUMENT"),
            (status(StoreError::NoSuchPrincipal("P".into())), Code::NotFound, "INVALID_ARGUMENT"),
            (
                status(MfaError::Store(StoreError::NoSuchBucket { bucket: "b".into() })),
                Code::NotFound,
                "NO_SUCH_BUCKET",
            ),
            (status(BackupError::InProgress), Code::FailedPrecondition, "BACKUP_IN_PROGRESS"),
        ];
        for (status, code, reason) in cases {
            assert_eq!((status.code(), reason_of(&status).as_str()), (code, reason), "{status:?}");
        }
        assert_eq!(status(AppError::Unauthenticated).message(), "missing or invalid credential");
        let locked = status(MfaError::LockedOut { until: 42 });
        let info = locked.get_details_error_info().unwrap();
        assert_eq!(info.metadata.get("locked_until_unix_seconds").map(String::as_str), Some("42"));
        assert_eq!(status(BackupError::Stopping).code(), Code::Unavailable);
        let pending = status(wormbox_app::ReplicaPending {
            what: "version V".into(),
            version_id: "V".into(),
            sequence: 7,
            rule: "dr".into(),
            timeout_ms: 1500,
        });
        assert_eq!((pending.code(), reason_of(&pending).as_str()), (Code::Unavailable, "REPLICA_PENDING"));
        let info = pending.get_details_error_info().unwrap();
        assert_eq!(info.metadata.get("version_id").map(String::as_str), Some("V"));
        assert_eq!(info.metadata.get("ledger_sequence").map(String::as_str), Some("7"));
        assert!(pending.message().contains("stored locally") && pending.message().contains("not yet confirmed"));
        let late = message_deadline("a message's body did not arrive", 300);
        assert_eq!((late.code(), reason_of(&late).as_str()), (Code::DeadlineExceeded, "MESSAGE_DEADLINE"));
    }
}
