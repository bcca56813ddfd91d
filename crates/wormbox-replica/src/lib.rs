//! `wormbox-replica`: the duplicate copy. A replicator per rule follows the
//! ledger and keeps an S3 Object Lock bucket (Ceph RGW, in production)
//! holding every version of its source bucket with its lock, every delete
//! marker, and the signed ledger itself, so the replica alone proves what
//! the appliance held (SEC 17a-4(f)'s duplicate copy, stored apart).
//!
//! Invariant: replication only reads the archive and writes the replica, and
//! records its progress through the store's writer (`Store::record_replication`);
//! it never changes a version, a lock or the ledger; the tier releases local
//! bytes only through `Store::release_bytes`, after verifying the copy. Its layers: `rule`
//! (what goes where), `target` (what it needs of a replica), `layout` (how
//! the replica is named), `replicator` (the follower), `verify` (the
//! replica checked against the archive, read-only), `tier` (the capacity
//! tier: local bytes released once their copy verified), `restore` (an
//! archive rebuilt from its replicas, into an empty store), `s3target` (the S3
//! client as a `Target`), and the S3 client it
//! reaches a replica with (`S3Client`: `client`, `sigv4`, `transport`,
//! `types`, `xml`, `error`; time only through a `Clock`, the secret key in no
//! `Debug`, error or log line). No wire crate of the appliance's own front
//! doors, and no storage engine, is reached from here.

pub mod layout;
pub mod replicator;
pub mod restore;
pub mod rule;
mod s3target;
pub mod target;
pub mod tier;
pub mod verify;

mod client;
mod error;
mod sigv4;
mod transport;
mod types;
mod xml;

pub use client::{ObjectBody, S3Client, S3Config};
pub use error::{S3Error, ServiceError};
pub use replicator::{Handle, Recent, ReplicaError, Replicator, Status};
pub use rule::{DEFAULT_CONCURRENCY, MAX_CONCURRENCY, Mode, Rule, RuleError};
pub use sigv4::Credentials;
pub use target::{Body, BucketState, Lock, PutSpec, ReplicaHead, Target, TargetError};
pub use tier::TierReport;
pub use types::{
    BucketLock, DefaultRetention, DeleteOutcome, EntryKind, LockMode, ObjectHead, PutObject, PutOutcome,
    RetentionPeriod, VersionEntry, VersionPage, Versioning, VersioningStatus,
};
pub use verify::{Divergence, DivergenceKind, VerifyReport};
