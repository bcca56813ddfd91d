//! `AppError`: the one error every application-layer operation returns.
//!
//! Invariant: `code()` is the stable reason a client sees (gRPC's ErrorInfo
//! reason, DESIGN.md's list), decided here once for every front end; each
//! front end maps an `AppError` to its wire form in one place (gRPC:
//! `grpc/status.rs`). The matches have no catch-all arm, so a new variant of
//! a wrapped error does not compile until its reason is decided. A store
//! error is always `Store`, never hidden inside `Mfa` or `Backup`, so that
//! it has one reason wherever it came from.

use wormbox_mfa::MfaError;
use wormbox_store::StoreError;
use wormbox_store::backend::BackendError;

use crate::backup::BackupError;
use crate::multipart::MultipartError;
use crate::replicas::ReplicaPending;

/// Why an operation of `App` failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(StoreError),
    /// The MFA authority refused or failed (never `MfaError::Store`).
    #[error(transparent)]
    Mfa(MfaError),
    /// A backup was refused or failed (never `BackupError::Store`).
    #[error(transparent)]
    Backup(BackupError),
    /// The replica could not be read (it did not answer, or refused the
    /// rule's credential): nothing about the replica was concluded.
    #[error("the replica could not be read: {0}")]
    Replica(String),
    /// The credential is missing, malformed, unknown, revoked or wrong: one
    /// answer for all, so that a caller learns nothing about which.
    #[error("missing or invalid credential")]
    Unauthenticated,
    /// The write is stored locally and durable, but a sync replication
    /// rule's replica did not confirm it in time (it catches up later).
    #[error(transparent)]
    ReplicaPending(ReplicaPending),
    /// A multipart upload call was refused.
    #[error(transparent)]
    Multipart(MultipartError),
    /// A task of this layer failed (a panicked blocking thread, an upload
    /// lost to a cancelled write); the message is what the client is told.
    #[error("{0}")]
    Internal(String),
    /// A released version's replica copy (the capacity tier) does not hold
    /// the bytes the ledger attests: nothing of it was sent.
    #[error(
        "the replica copy of version {version_id} of `{key}` (rule `{rule}`, replica version {replica_id}) does not \
         match the archive's SHA-256 and size; nothing was sent"
    )]
    ReplicaCopyDiffers {
        /// The key.
        key: String,
        /// The version.
        version_id: String,
        /// The rule whose replica holds it.
        rule: String,
        /// The replica's version id.
        replica_id: String,
    },
    /// A released version's replica (the capacity tier) cannot be read now.
    #[error(
        "version {version_id} of `{key}` is held by replication rule `{rule}`'s replica, which cannot be read now: {why}"
    )]
    ReplicaUnavailable {
        /// The key.
        key: String,
        /// The version.
        version_id: String,
        /// The rule.
        rule: String,
        /// What happened.
        why: String,
    },
}

impl AppError {
    /// The stable reason: DESIGN.md's ErrorInfo reasons, and `DATA_LOSS`,
    /// `UNAVAILABLE` and `INTERNAL` for failures that carry no reason on the
    /// gRPC wire (their status code says it).
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Store(err) => store_code(err),
            AppError::Mfa(err) => mfa_code(err),
            AppError::Backup(err) => backup_code(err),
            AppError::Replica(_) => "UNAVAILABLE",
            AppError::Unauthenticated => "ACCESS_DENIED",
            AppError::ReplicaPending(_) => "REPLICA_PENDING",
            AppError::Internal(_) => "INTERNAL",
            AppError::Multipart(err) => match err {
                MultipartError::NoSuchUpload => "NO_SUCH_UPLOAD",
                MultipartError::InvalidPart(_) => "INVALID_PART",
                MultipartError::InvalidPartOrder => "INVALID_PART_ORDER",
                MultipartError::EntityTooSmall(_) => "ENTITY_TOO_SMALL",
                MultipartError::Limit(_) => "INVALID_ARGUMENT",
                MultipartError::Busy => "UPLOAD_BUSY",
            },
            AppError::ReplicaCopyDiffers { .. } => "REPLICA_COPY_DIFFERS",
            AppError::ReplicaUnavailable { .. } => "REPLICA_UNAVAILABLE",
        }
    }
}

fn store_code(err: &StoreError) -> &'static str {
    match err {
        StoreError::NoSuchBucket { .. } => "NO_SUCH_BUCKET",
        StoreError::BucketExists { .. } => "BUCKET_EXISTS",
        StoreError::BucketNotEmpty { .. } => "BUCKET_NOT_EMPTY",
        StoreError::NoSuchKey { .. } => "NO_SUCH_KEY",
        StoreError::NoSuchVersion { .. } => "NO_SUCH_VERSION",
        StoreError::LatestIsDeleteMarker { .. } | StoreError::VersionIsDeleteMarker { .. } => "DELETE_MARKER",
        StoreError::InvalidArgument(_) | StoreError::TooLarge { .. } | StoreError::NoSuchPrincipal(_) => {
            "INVALID_ARGUMENT"
        }
        StoreError::ChecksumMismatch { .. } => "CHECKSUM_MISMATCH",
        StoreError::DiskFull { .. } => "DISK_FULL",
        StoreError::AccessDenied(_) => "ACCESS_DENIED",
        StoreError::MfaRequired { .. } | StoreError::NullVersionNeedsMfa { .. } | StoreError::NeedsAdminCode { .. } => {
            "MFA_REQUIRED"
        }
        StoreError::ObjectLocked { .. } => "OBJECT_LOCKED",
        StoreError::LegalHold { .. } => "LEGAL_HOLD",
        StoreError::RetentionShortenDenied(_) => "RETENTION_SHORTEN_DENIED",
        StoreError::VersioningLocked { .. } | StoreError::SuspendedWithMfaDelete { .. } => "VERSIONING_LOCKED",
        StoreError::DataLoss { .. } => "DATA_LOSS",
        // Damaged stored data is lost, not unavailable: a retry cannot
        // bring it back, and the client must be told which it is.
        StoreError::Backend { source, .. } if matches!(**source, BackendError::Corruption { .. }) => "DATA_LOSS",
        StoreError::Backend { .. }
        | StoreError::WriterStopped
        | StoreError::FormatTooNew { .. }
        | StoreError::FormatTooOld { .. } => "UNAVAILABLE",
    }
}

fn mfa_code(err: &MfaError) -> &'static str {
    match err {
        MfaError::Invalid => "MFA_INVALID",
        MfaError::Replayed => "MFA_REPLAYED",
        MfaError::LockedOut { .. } => "MFA_LOCKED_OUT",
        MfaError::Required(_) => "MFA_REQUIRED",
        MfaError::Expired(_) => "MFA_DEVICE_EXPIRED",
        MfaError::InvalidArgument(_) | MfaError::Pskc(_) | MfaError::DuplicateSerial(_) => "INVALID_ARGUMENT",
        MfaError::AccessDenied(_) => "ACCESS_DENIED",
        MfaError::Store(store) => store_code(store),
        MfaError::KeyFile(_) | MfaError::Sealing | MfaError::Corrupt => "INTERNAL",
    }
}

fn backup_code(err: &BackupError) -> &'static str {
    match err {
        BackupError::Store(store) => store_code(store),
        BackupError::InProgress => "BACKUP_IN_PROGRESS",
        BackupError::Stopping => "UNAVAILABLE",
        BackupError::Io { .. } | BackupError::Copy(_) | BackupError::Damaged { .. } | BackupError::Refused(_) => {
            "INTERNAL"
        }
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> AppError {
        AppError::Store(err)
    }
}

impl From<MultipartError> for AppError {
    fn from(err: MultipartError) -> AppError {
        AppError::Multipart(err)
    }
}

impl From<ReplicaPending> for AppError {
    fn from(err: ReplicaPending) -> AppError {
        AppError::ReplicaPending(err)
    }
}

impl From<MfaError> for AppError {
    fn from(err: MfaError) -> AppError {
        match err {
            MfaError::Store(store) => AppError::Store(store),
            other => AppError::Mfa(other),
        }
    }
}

impl From<BackupError> for AppError {
    fn from(err: BackupError) -> AppError {
        match err {
            BackupError::Store(store) => AppError::Store(store),
            other => AppError::Backup(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_error_has_one_reason_wherever_it_came_from() {
        let missing = || StoreError::NoSuchBucket { bucket: "b".into() };
        for err in [
            AppError::from(missing()),
            AppError::from(MfaError::Store(missing())),
            AppError::from(BackupError::Store(missing())),
        ] {
            assert!(matches!(err, AppError::Store(StoreError::NoSuchBucket { .. })), "{err:?}");
            assert_eq!(err.code(), "NO_SUCH_BUCKET");
        }
    }
}
