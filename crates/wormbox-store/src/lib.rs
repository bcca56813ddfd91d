//! The archive's rules: versioned write-once buckets, the hash-chained ledger,
//! the compliance clock's high-water mark, and the group-commit writer, over
//! any engine that implements `backend::Backend`.
//!
//! # Model
//! A bucket holds objects; an object is a key with versions, newest first. A
//! version (or delete marker) is written once and never modified; the only
//! removal is `Store::delete_object` with a version id (a permanent delete,
//! recorded in the ledger; `Store::delete_objects` runs many at once, each
//! judged and recorded as one), and the replacement of a `null` version that S3
//! semantics prescribe for unversioned and suspended buckets.
//!
//! # Write path
//! Every state change is a command sent to one writer thread. It drains the
//! queue, applies each command's rules against the stored state plus the
//! changes of the commands before it, writes all of them and their ledger
//! entries as one batch with one WAL sync, and only then answers each caller.
//! A command that breaks a rule is answered with its error and contributes
//! nothing to the batch. No acknowledgement precedes durability.
//!
//! # Adding an engine
//! Implement `backend::Backend` in a new crate `wormbox-store-<engine>` and run
//! `backend::conformance::run_all` from its tests (feature `conformance`).
#![deny(missing_docs)]

pub mod backend;
mod codec;
pub mod evidence;
pub mod format;
mod keys;
pub mod ledger;
mod listing;
pub mod merkle;
mod meta;
pub mod note;
pub mod rebuild;
pub mod retention;
mod space;
mod stats;
mod store;
pub mod tiles;
mod tree;
mod versions;
mod view;
mod writer;

use std::sync::Arc;

pub use codec::{DecodeError, LockRecord, PrincipalRecord};
pub use listing::{ListObjectsParams, ListVersionsParams, MAX_KEYS, ObjectsPage, VersionsPage};
pub use meta::{BytesAt, WitnessRefusal};
pub use space::{DiskStatus, SpaceTicket};
pub use stats::{CommitHistograms, HistogramSnapshot};
pub use store::{
    CommitStats, InclusionProof, MAX_ENTRIES_PER_READ, MAX_ETAG_BYTES, ObjectReader, Store, StoreOptions, Upload,
    WitnessState, check_etag,
};
use wormbox_model::{
    BucketName, Digest, ObjectKey, Role, Timestamp, UserMetadata, VersionId, VersionSelector, VersioningState,
};
pub use writer::{Replicated, WitnessOutcome, check_witness_name};

use crate::backend::BackendError;

/// Bytes per stored chunk; an object larger than this is streamed in chunks,
/// so memory use does not grow with its size.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Who asks: an authenticated principal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The access key id, or `system` for the appliance itself.
    pub access_key: String,
    /// The principal's role.
    pub role: Role,
}

impl Actor {
    /// The appliance acting on its own behalf (first start).
    pub fn system() -> Actor {
        Actor { access_key: "system".to_owned(), role: Role::Admin }
    }
}

/// A bucket as callers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketInfo {
    /// The name.
    pub name: BucketName,
    /// The owner's access key id.
    pub owner: String,
    /// The versioning state.
    pub versioning: VersioningState,
    /// When it was created.
    pub created_at: Timestamp,
    /// Whether MFA Delete is on.
    pub mfa_delete: bool,
    /// Whether Object Lock is on.
    pub object_lock: bool,
    /// The default retention of new versions.
    pub default_retention: Option<retention::DefaultRetention>,
}

/// The clocks as the writer sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockStatus {
    /// The system clock.
    pub system: Timestamp,
    /// The compliance clock (what retention is judged by).
    pub compliance: Timestamp,
    /// How far the compliance clock is behind the system clock, when it is
    /// (it catches up at `catch_up_per_year`).
    pub held_back: Option<std::time::Duration>,
    /// Compliance time gained on top of real time per 365 days of real time
    /// while behind.
    pub catch_up_per_year: std::time::Duration,
    /// When, by a system clock keeping real time, the compliance clock will
    /// have caught up; `None` when it has, or never will on its own.
    pub caught_up_at: Option<Timestamp>,
}

/// A change of a bucket's versioning configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersioningChange {
    /// The new versioning state, if it changes.
    pub state: Option<VersioningState>,
    /// MFA Delete on or off, if it changes.
    pub mfa_delete: Option<bool>,
    /// The serial of the device whose code the MFA authority accepted (and
    /// spent) for this change.
    pub mfa: Option<String>,
}

/// What an MFA-authority update writes for one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceChange {
    /// The device serial (the record's key, and the ledger entry's key).
    pub serial: String,
    /// The new record, or `None` to leave it as it is.
    pub record: Option<Vec<u8>>,
    /// The ledger entry's operation.
    pub op: ledger::LedgerOp,
    /// The bucket the guarded operation concerns, or empty.
    pub bucket: String,
    /// What happened (never a seed or a code).
    pub detail: String,
}

/// The MFA authority's decision function, run inside the writer: given the
/// current records of the named serials (in order) and the system-clock
/// time, returns what to write and the authority's own answer (`T`), which
/// the store hands back to the caller once the changes are durable. It must
/// not block.
pub struct DeviceUpdate<T = ()>(pub Box<DeviceFn<T>>);

/// The function inside a `DeviceUpdate`.
pub type DeviceFn<T> = dyn FnOnce(Vec<Option<Vec<u8>>>, Timestamp) -> (Vec<DeviceChange>, T) + Send;

impl<T> std::fmt::Debug for DeviceUpdate<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceUpdate(..)")
    }
}

/// An MFA code for the writer to judge with the operation it guards
/// (`Store::delete_object_with_code` and its siblings). The writer judges
/// the operation first, as if the code were good, and runs `update` only
/// if that passes, so a refused operation spends no code and charges no
/// device a failure (DESIGN.md invariant 9); the operation then runs only
/// if `update` accepted the code, in the same atomic write that spends it.
/// `V` is the authority's verdict, returned with `Guarded::CodeRefused`.
#[derive(Debug)]
pub struct CodeCheck<V = ()> {
    /// The device the code names: the record `update` is given, and the
    /// serial the operation's ledger entry names when the code is accepted.
    pub serial: String,
    /// The authority's decision; it accepts the code by returning a change
    /// with `LedgerOp::MfaAccepted`.
    pub update: DeviceUpdate<V>,
}

/// A legal hold to place or release on one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldChange {
    /// The bucket.
    pub bucket: BucketName,
    /// The key.
    pub key: ObjectKey,
    /// The version.
    pub version: VersionSelector,
    /// The hold's case id.
    pub case_id: String,
    /// Places it (true) or releases it (false).
    pub place: bool,
    /// A note kept with a placed hold.
    pub note: String,
}

/// Whether a change that lowers protection (releasing a legal hold,
/// clearing or shortening a bucket's default retention) may run. The
/// application layer decides, from whether the appliance's administration
/// is guarded and whether the request carries a code (ARCHITECTURE.md,
/// "MFA-protected administration"); the writer judges, in the same atomic
/// write as the change, whether the change lowers anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lowering {
    /// It may: the appliance is not guarded yet, or a code is checked with it.
    Allowed,
    /// It is refused with `StoreError::NeedsAdminCode`.
    NeedsCode,
}

/// What became of an operation guarded by a `CodeCheck<V>`. A refused
/// operation is an error, as without a code.
#[derive(Debug)]
pub enum Guarded<T, V = ()> {
    /// The operation ran: with its code accepted and spent, or without it
    /// where it needed none.
    Done(T),
    /// The operation would have run, but the authority refused the code: its
    /// verdict `V` (ledger entry, counted failure) is durable, nothing else
    /// changed.
    CodeRefused(V),
}

/// A version or delete marker as callers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    /// The object key.
    pub key: String,
    /// The internal id, which orders versions even when shown as `null`.
    pub id: VersionId,
    /// The id clients use: `null` or the id's 26 characters.
    pub version_id: String,
    /// Whether this is the key's newest version or marker.
    pub is_latest: bool,
    /// Whether this is a delete marker.
    pub is_delete_marker: bool,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the bytes.
    pub sha256: Digest,
    /// Content type.
    pub content_type: String,
    /// User metadata.
    pub user_metadata: UserMetadata,
    /// When it was written, by the compliance clock.
    pub created_at: Timestamp,
    /// The writer's access key id.
    pub creator: String,
    /// Object Lock retention, if any was set (it may have expired).
    pub retention: Option<retention::Retention>,
    /// Legal holds in place.
    pub legal_holds: Vec<retention::LegalHold>,
    /// The S3 ETag the S3 front door stored with the version (without
    /// quotes); `None` for versions other front doors wrote, and markers.
    pub etag: Option<String>,
}

/// The attributes of a new version other than its bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewObject {
    /// Content type; at most 256 bytes.
    pub content_type: String,
    /// User metadata.
    pub user_metadata: UserMetadata,
    /// If set, the bytes must hash to this or nothing is stored.
    pub expected_sha256: Option<Digest>,
    /// Explicit retention; the bucket's default applies when absent.
    pub retention: Option<retention::Retention>,
    /// A legal hold to place at once, by case id.
    pub legal_hold: Option<String>,
    /// The S3 ETag as the S3 front door computed it, without quotes (the
    /// hex MD5 of the bytes, or `<hex md5 of the part md5s>-<parts>`); see
    /// `check_etag`. `None` for writes of other front doors. The store does
    /// not check it against the bytes: the SHA-256 is the evidence, the ETag
    /// metadata the front door vouches for.
    pub etag: Option<String>,
}

/// What a durable write returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteAck {
    /// The internal id.
    pub id: VersionId,
    /// The id clients use (`null` in unversioned and suspended buckets).
    pub version_id: String,
    /// SHA-256 of the stored bytes.
    pub sha256: Digest,
    /// Size in bytes.
    pub size: u64,
    /// The ledger entry that records the write.
    pub ledger_sequence: u64,
}

/// What a delete did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// The marker written, or the version removed; `None` when nothing changed.
    pub version_id: Option<String>,
    /// Whether a marker was written, or the removed version was a marker.
    pub delete_marker: bool,
    /// The ledger entry of the change; `None` when nothing changed.
    pub ledger_sequence: Option<u64>,
}

/// The most entries one multi-object delete may name, as in S3.
pub const MAX_DELETE_ENTRIES: usize = 1000;

/// One entry of a multi-object delete (`Store::delete_objects`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeleteEntry {
    /// The object key.
    pub key: ObjectKey,
    /// The version to remove for good; `None` deletes as a plain delete
    /// does (a delete marker in a versioned bucket, which needs no code).
    pub version: Option<VersionSelector>,
}

/// What became of one entry of a multi-object delete.
#[derive(Debug)]
pub struct EntryOutcome {
    /// The entry, as requested.
    pub entry: DeleteEntry,
    /// What the delete did, or why it was refused (as a single delete of
    /// the entry would have been; a refusal of protected state is ledgered).
    pub result: Result<DeleteOutcome, StoreError>,
}

/// A newly created principal; the secret is shown once and never stored
/// (nor printed: `Debug` leaves it out).
pub struct NewPrincipal {
    /// The access key id.
    pub access_key: String,
    /// The secret.
    pub secret: String,
    /// The ledger entry of the creation.
    pub ledger_sequence: u64,
}

impl std::fmt::Debug for NewPrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPrincipal")
            .field("access_key", &self.access_key)
            .field("secret", &"<redacted>")
            .field("ledger_sequence", &self.ledger_sequence)
            .finish()
    }
}

/// A principal's S3 secret as the application layer sealed it (under the
/// appliance's master key, bound to the access key): opaque to the store,
/// which keeps it as given and never puts it in a ledger entry, a listing
/// or a log line. `Debug` shows its length only.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret(Vec<u8>);

impl SealedSecret {
    /// Wraps sealed bytes.
    pub fn new(bytes: Vec<u8>) -> SealedSecret {
        SealedSecret(bytes)
    }

    /// The sealed bytes, to open.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedSecret(<{} bytes>)", self.0.len())
    }
}

/// A principal drawn but not yet stored (`Store::prepare_principal`): its
/// access key is known, so that what is bound to it (a sealed S3 secret)
/// can be made before the one write that creates it. `Debug` shows its
/// access key only, never the secret.
pub struct PreparedPrincipal {
    access_key: String,
    secret: String,
    record: Box<PrincipalRecord>,
}

impl std::fmt::Debug for PreparedPrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedPrincipal").field("access_key", &self.access_key).finish_non_exhaustive()
    }
}

impl PreparedPrincipal {
    /// The access key id it will have.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }
}

/// The result of recomputing the ledger chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerSummary {
    /// How many entries were checked.
    pub entries: u64,
    /// The last hash.
    pub head: Digest,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The bucket does not exist.
    #[error("bucket `{bucket}` does not exist")]
    NoSuchBucket {
        /// The bucket.
        bucket: String,
    },
    /// A bucket with that name exists.
    #[error("bucket `{bucket}` already exists")]
    BucketExists {
        /// The bucket.
        bucket: String,
    },
    /// The bucket still holds versions or markers.
    #[error("bucket `{bucket}` still holds versions or delete markers")]
    BucketNotEmpty {
        /// The bucket.
        bucket: String,
    },
    /// The key has no versions.
    #[error("object `{key}` does not exist in bucket `{bucket}`")]
    NoSuchKey {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// The key has no version with that id.
    #[error("object `{key}` has no version `{version}`")]
    NoSuchVersion {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The requested version id.
        version: String,
    },
    /// The key's latest version is a delete marker (S3's 404 with a marker flag).
    #[error("the latest version of `{key}` is delete marker `{version}`")]
    LatestIsDeleteMarker {
        /// The key.
        key: String,
        /// The marker's version id.
        version: String,
    },
    /// The named version is a delete marker, which has no data (S3's 405).
    #[error("version `{version}` of `{key}` is a delete marker")]
    VersionIsDeleteMarker {
        /// The key.
        key: String,
        /// The marker's version id.
        version: String,
    },
    /// The request breaks a rule of the API.
    #[error("{0}")]
    InvalidArgument(String),
    /// The bytes do not hash to the expected SHA-256; nothing was stored.
    #[error("body has SHA-256 {actual}, expected {expected}")]
    ChecksumMismatch {
        /// What the client said.
        expected: Digest,
        /// What arrived.
        actual: Digest,
    },
    /// The object exceeds the configured size limit; nothing was stored.
    #[error("object exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The archive's disk is at its reserve: new data is refused before any
    /// of it is written, until space is freed (reads, deletes, retention and
    /// holds go on).
    #[error(
        "storing {} more would leave the archive's disk less than its reserve of {} ({} available): new data is refused until space is freed (reads, deletes, retention and legal holds still work)",
        space::bytes_text(*bytes),
        space::bytes_text(*reserve),
        space::bytes_text(*available)
    )]
    DiskFull {
        /// The bytes refused.
        bytes: u64,
        /// Bytes available, less those admitted and not yet written.
        available: u64,
        /// The reserve kept free.
        reserve: u64,
    },
    /// The principal may not do this.
    #[error("{0}")]
    AccessDenied(String),
    /// Retention protects the version.
    #[error("version `{version}` of `{key}` is locked: {why}")]
    ObjectLocked {
        /// The key.
        key: String,
        /// The version id.
        version: String,
        /// Mode and date.
        why: String,
    },
    /// A legal hold protects the version.
    #[error("version `{version}` of `{key}` is under legal hold")]
    LegalHold {
        /// The key.
        key: String,
        /// The version id.
        version: String,
    },
    /// A retention change the mode or the caller's rights do not allow.
    #[error("{0}")]
    RetentionShortenDenied(String),
    /// Versioning cannot be suspended on an Object Lock bucket.
    #[error("bucket `{bucket}` has Object Lock: versioning stays Enabled")]
    VersioningLocked {
        /// The bucket.
        bucket: String,
    },
    /// MFA Delete is on and the request carries no accepted code.
    #[error("bucket `{bucket}` has MFA Delete on: this operation needs a code from the owner's MFA device")]
    MfaRequired {
        /// The bucket.
        bucket: String,
    },
    /// The change lowers protection on a guarded appliance and carries no
    /// code from one of the caller's own active MFA devices.
    #[error("{what} lowers protection: it needs a code from one of your own active MFA devices (`mfa`)")]
    NeedsAdminCode {
        /// What the change would have done.
        what: String,
    },
    /// While MFA Delete is on a bucket cannot be Suspended: a Suspended
    /// bucket's writes replace `null` versions, with no code.
    #[error(
        "bucket `{bucket}` cannot be Suspended with MFA Delete on (a write would replace its `null` versions \
         without a code): to suspend, turn MFA Delete off in the same request, with a code; to turn MFA Delete \
         on, enable versioning in the same request"
    )]
    SuspendedWithMfaDelete {
        /// The bucket.
        bucket: String,
    },
    /// A write would replace the `null` version of a bucket that an older
    /// build left Suspended with MFA Delete on: destroying a version there
    /// needs a code, which a write cannot carry.
    #[error(
        "bucket `{bucket}` is Suspended with MFA Delete on: this would replace the `null` version of `{key}`, \
         which only a permanent delete with an MFA code may remove; the bucket's owner can enable versioning \
         (with a code)"
    )]
    NullVersionNeedsMfa {
        /// The bucket.
        bucket: String,
        /// The key whose `null` version would be replaced.
        key: String,
    },
    /// No principal has that access key id.
    #[error("principal `{0}` does not exist")]
    NoSuchPrincipal(String),
    /// Stored data failed verification; it is not returned.
    #[error("stored data failed verification: {what}")]
    DataLoss {
        /// What failed.
        what: String,
    },
    /// The storage engine failed; nothing of the operation was kept.
    #[error("storage engine failed during {operation}")]
    Backend {
        /// What the store was doing.
        operation: &'static str,
        /// The engine's error, shared by every request of a failed batch.
        #[source]
        source: Arc<BackendError>,
    },
    /// The archive was written by a newer build; nothing was read or written.
    #[error(
        "the archive's on-disk format is version {found}, newer than this build reads (up to {supported}): \
         run the wormboxd that wrote it, or a newer one"
    )]
    FormatTooNew {
        /// The archive's format.
        found: u32,
        /// The newest this build reads.
        supported: u32,
    },
    /// The archive's format is older than any this build still opens.
    #[error(
        "the archive's on-disk format is version {found}, older than this build opens (from {oldest}): \
         upgrade it with an intermediate release first"
    )]
    FormatTooOld {
        /// The archive's format.
        found: u32,
        /// The oldest this build opens.
        oldest: u32,
    },
    /// The writer thread has stopped; the store accepts no more changes.
    #[error("the store's writer has stopped")]
    WriterStopped,
}

impl StoreError {
    pub(crate) fn backend(operation: &'static str, source: BackendError) -> StoreError {
        StoreError::Backend { operation, source: Arc::new(source) }
    }
}

impl From<wormbox_model::FreeTextError> for StoreError {
    fn from(err: wormbox_model::FreeTextError) -> StoreError {
        StoreError::InvalidArgument(err.to_string())
    }
}

impl From<DecodeError> for StoreError {
    fn from(err: DecodeError) -> StoreError {
        StoreError::DataLoss { what: err.to_string() }
    }
}

/// Returns the id clients see for a version.
pub(crate) fn external_id(id: VersionId, is_null: bool) -> String {
    if is_null { "null".to_owned() } else { id.to_string() }
}

#[cfg(test)]
mod tests;
