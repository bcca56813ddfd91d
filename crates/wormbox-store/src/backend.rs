//! The implementor API: what a storage engine provides to `Store`.
//!
//! Invariant: only `Store` calls a `Backend`, and only its single writer thread
//! commits batches that touch published versions. The contract is deliberately
//! small (get, ordered scan, atomic commit) so that it is not shaped like any
//! one engine; `MemBackend` is the second implementation that proves it.

mod mem;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

#[cfg(any(test, feature = "testing"))]
pub use mem::CommitGate;
pub use mem::MemBackend;

use std::fmt;

/// The fixed set of keyspaces. A backend maps each to its own notion (a
/// RocksDB column family, a `BTreeMap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Keyspace {
    /// Small singletons: the compliance clock's high-water mark.
    Meta,
    /// Bucket records, by name.
    Buckets,
    /// Principal records, by access key id.
    Principals,
    /// Version records, by bucket, key and inverted version id (newest first).
    Versions,
    /// The `null` version of each key that has one, by bucket and key.
    Nulls,
    /// Version bytes in chunks, by upload id and chunk index.
    Chunks,
    /// Uploads whose chunks are written but whose version is not yet published.
    Staging,
    /// The hash-chained ledger, by sequence number.
    Ledger,
    /// MFA devices, by serial; the values belong to the MFA authority.
    Devices,
    /// Object Lock state (retention, legal holds) of versions, by the same
    /// key as the version: the version record itself is never rewritten.
    Locks,
    /// Signed checkpoints of the ledger, by sequence number.
    Checkpoints,
}

impl Keyspace {
    /// Every keyspace, in a fixed order.
    pub const ALL: [Keyspace; 11] = [
        Keyspace::Meta,
        Keyspace::Buckets,
        Keyspace::Principals,
        Keyspace::Versions,
        Keyspace::Nulls,
        Keyspace::Chunks,
        Keyspace::Staging,
        Keyspace::Ledger,
        Keyspace::Devices,
        Keyspace::Locks,
        Keyspace::Checkpoints,
    ];

    /// A stable name, usable as a column family name.
    pub fn name(self) -> &'static str {
        match self {
            Keyspace::Meta => "meta",
            Keyspace::Buckets => "buckets",
            Keyspace::Principals => "principals",
            Keyspace::Versions => "versions",
            Keyspace::Nulls => "nulls",
            Keyspace::Chunks => "chunks",
            Keyspace::Staging => "staging",
            Keyspace::Ledger => "ledger",
            Keyspace::Devices => "devices",
            Keyspace::Locks => "locks",
            Keyspace::Checkpoints => "checkpoints",
        }
    }
}

/// One change in a `Batch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOp {
    /// Sets `key` to `value`.
    Put {
        /// The keyspace.
        space: Keyspace,
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Removes `key`; removing a missing key is not an error.
    Delete {
        /// The keyspace.
        space: Keyspace,
        /// The key.
        key: Vec<u8>,
    },
}

/// Changes that a backend applies all together or not at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<BatchOp>,
}

impl Batch {
    /// Returns an empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Adds a put.
    pub fn put(&mut self, space: Keyspace, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push(BatchOp::Put { space, key, value });
    }

    /// Adds a delete.
    pub fn delete(&mut self, space: Keyspace, key: Vec<u8>) {
        self.ops.push(BatchOp::Delete { space, key });
    }

    /// Returns the changes in the order they were added; later ones win.
    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// Returns whether the batch holds no change.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Whether `commit` must make the batch durable before it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Durable on return (synced). Every acknowledgement rests on this.
    Synced,
    /// Durable by the next `Synced` commit; used for chunks of an upload that
    /// is not yet published.
    Buffered,
}

/// Entries in key order, as returned by `Backend::scan`.
pub type Entries<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>), BackendError>> + Send + 'a>;

/// What a storage engine provides.
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// Short engine name, for logs.
    fn engine(&self) -> &'static str;

    /// Returns the value stored under `key`, if any.
    fn get(&self, space: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;

    /// Returns the entries whose key starts with `prefix` and is at least
    /// `start`, in byte order of their keys.
    fn scan(&self, space: Keyspace, start: &[u8], prefix: &[u8]) -> Entries<'_>;

    /// Applies every change of `batch` atomically, or none of them.
    fn commit(&self, batch: &Batch, durability: Durability) -> Result<(), BackendError>;

    /// The engine's own accounting of the memory it holds, by name, in
    /// bytes (for the load generator and diagnostics); none by default.
    fn memory_report(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// The engine's own figures of its health, by a stable snake_case name
    /// (work it is behind on, stalls since it opened, bytes on disk), for
    /// the metrics endpoint; none by default.
    fn engine_stats(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// The space of the filesystem the engine's files are on, read now;
    /// `None` when it has none (in memory) or the filesystem did not say.
    fn disk_space(&self) -> Option<DiskSpace> {
        None
    }
}

/// A filesystem's size and free space, in bytes (as `statvfs` gives them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskSpace {
    /// Its size.
    pub total: u64,
    /// Free blocks, those kept for the superuser included.
    pub free: u64,
    /// Free blocks an unprivileged process may use: what the reserve is
    /// judged by, so that root's own reserve is never counted as room.
    pub available: u64,
}

/// A storage engine's failure, with engine detail boxed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The engine's I/O failed.
    #[error("storage engine I/O failed")]
    Io(#[source] std::io::Error),
    /// The engine found stored data damaged (a block failing its checksum, a
    /// value segment shorter than recorded): a lasting loss, unlike `Io`.
    #[error("storage engine reported corruption{}", .space.map(|s| format!(" in {}", s.name())).unwrap_or_default())]
    Corruption {
        /// Where, when the failed operation was within one keyspace.
        space: Option<Keyspace>,
        /// The engine's report.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Any other engine failure.
    #[error("storage engine failed")]
    Engine(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Returns the smallest key greater than every key that starts with `prefix`,
/// or `None` when no such key exists (the prefix is all `0xFF`).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_successor_bounds_the_prefix() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_successor(b""), None);
    }
}
