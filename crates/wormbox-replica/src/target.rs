//! What the replicator needs of a replica: an S3 Object Lock bucket, seen
//! through the few calls replication makes (`Target`), with the answers it
//! must tell apart: a definite refusal, which retrying cannot change, and
//! an outage, which it can.
//!
//! Invariant: a `Target` never reports success for a write it did not see
//! acknowledged; a timeout or a dropped connection is `Unavailable`, and the
//! write is then in doubt (it may have happened), so the replicator looks it
//! up before writing it again.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;
use wormbox_model::Timestamp;
use wormbox_store::retention::RetentionMode;

/// A body streamed to the replica, chunk by chunk.
pub type Body = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// A boxed future, for the trait's calls.
pub type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, TargetError>> + Send + 'a>>;

/// Why a call to the replica failed.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// The replica answered no (its lock, its permissions, a missing bucket):
    /// the same call would be refused again.
    #[error("the replica refused: {code}: {message}")]
    Refused {
        /// S3's error code (`AccessDenied`, `NoSuchBucket`, ...).
        code: String,
        /// What it said.
        message: String,
    },
    /// No answer, or a failure on its side: retried with back-off. A write
    /// that failed so is in doubt.
    #[error("the replica is unavailable: {0}")]
    Unavailable(String),
}

/// How the replica bucket is configured, read at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketState {
    /// Object Lock is enabled on the bucket.
    pub object_lock: bool,
    /// Its default retention, as (mode, days), if any.
    pub default_retention: Option<(RetentionMode, u32)>,
    /// Versioning is Enabled.
    pub versioned: bool,
}

/// A lock to put on a replica version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lock {
    /// The mode.
    pub mode: RetentionMode,
    /// Retained until.
    pub until: Timestamp,
}

/// One object to write.
#[derive(Debug)]
pub struct PutSpec {
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its bytes.
    pub sha256: [u8; 32],
    /// Its content type (empty: none).
    pub content_type: String,
    /// User metadata (`x-amz-meta-NAME`), names in lower case.
    pub metadata: Vec<(String, String)>,
    /// Its Object Lock retention.
    pub lock: Option<Lock>,
    /// Legal hold on.
    pub legal_hold: bool,
}

/// A replica version as the replicator sees it when it checks one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaHead {
    /// Its version id.
    pub version_id: String,
    /// It is a delete marker (which has no metadata, lock or hold).
    pub is_delete_marker: bool,
    /// Its size.
    pub size: u64,
    /// Its content type (empty: none sent).
    pub content_type: String,
    /// User metadata, names in lower case.
    pub metadata: Vec<(String, String)>,
    /// Its retention.
    pub lock: Option<Lock>,
    /// Legal hold on.
    pub legal_hold: bool,
}

/// An S3 Object Lock bucket that holds a replica.
pub trait Target: Send + Sync + 'static {
    /// The bucket's Object Lock and versioning configuration.
    fn bucket_state(&self) -> Call<'_, BucketState>;

    /// Writes a new version of `key`; returns its version id.
    fn put(&self, key: &str, body: Body, spec: PutSpec) -> Call<'_, String>;

    /// The versions and delete markers of exactly `key` (not its prefix),
    /// newest first, with their metadata: to find a write that is in doubt.
    fn versions_of(&self, key: &str) -> Call<'_, Vec<ReplicaHead>>;

    /// Every key under `prefix` that has a version or a marker, in key
    /// order: to find the evidence a restore reads.
    fn keys(&self, prefix: &str) -> Call<'_, Vec<String>>;

    /// One version's head, or `None` when it does not exist.
    fn head(&self, key: &str, version_id: &str) -> Call<'_, Option<ReplicaHead>>;

    /// Sets a version's retention (extensions; the replica refuses shortening).
    fn set_retention(&self, key: &str, version_id: &str, lock: Lock) -> Call<'_, ()>;

    /// Turns a version's legal hold on or off.
    fn set_legal_hold(&self, key: &str, version_id: &str, on: bool) -> Call<'_, ()>;

    /// Writes a delete marker for `key`; returns the marker's version id.
    fn delete_marker(&self, key: &str) -> Call<'_, String>;

    /// Removes one version for good (the replica's lock may refuse).
    fn delete_version(&self, key: &str, version_id: &str) -> Call<'_, ()>;

    /// One version's bytes, streamed, or `None` when it does not exist (or
    /// is a delete marker): to verify a copy by hashing what the replica
    /// holds, without keeping it in memory.
    fn get(&self, key: &str, version_id: &str) -> Call<'_, Option<Body>>;
}

/// A shared target is a target: the replicator, a tier pass and a restore
/// can hold the same one.
impl<T: Target + ?Sized> Target for std::sync::Arc<T> {
    fn bucket_state(&self) -> Call<'_, BucketState> {
        (**self).bucket_state()
    }
    fn put(&self, key: &str, body: Body, spec: PutSpec) -> Call<'_, String> {
        (**self).put(key, body, spec)
    }
    fn versions_of(&self, key: &str) -> Call<'_, Vec<ReplicaHead>> {
        (**self).versions_of(key)
    }
    fn keys(&self, prefix: &str) -> Call<'_, Vec<String>> {
        (**self).keys(prefix)
    }
    fn head(&self, key: &str, version_id: &str) -> Call<'_, Option<ReplicaHead>> {
        (**self).head(key, version_id)
    }
    fn set_retention(&self, key: &str, version_id: &str, lock: Lock) -> Call<'_, ()> {
        (**self).set_retention(key, version_id, lock)
    }
    fn set_legal_hold(&self, key: &str, version_id: &str, on: bool) -> Call<'_, ()> {
        (**self).set_legal_hold(key, version_id, on)
    }
    fn delete_marker(&self, key: &str) -> Call<'_, String> {
        (**self).delete_marker(key)
    }
    fn delete_version(&self, key: &str, version_id: &str) -> Call<'_, ()> {
        (**self).delete_version(key, version_id)
    }
    fn get(&self, key: &str, version_id: &str) -> Call<'_, Option<Body>> {
        (**self).get(key, version_id)
    }
}
