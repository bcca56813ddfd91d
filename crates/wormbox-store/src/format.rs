//! The archive's on-disk format version, kept in the `meta` keyspace.
//!
//! Invariant: a binary never opens an archive whose format is newer than the
//! newest it knows (it would misread records it cannot decode, or write ones
//! an older reader rejects); it opens every older format. Records carry their
//! own format byte as well; this number covers the layout as a whole (key
//! encodings, keyspaces, meta entries), so that an upgrade that changes them
//! can be told apart before anything is read.

use crate::backend::{Backend, Batch, Durability, Keyspace};
use crate::{StoreError, meta};

/// The format this build writes, and the newest it reads.
///
/// 1: the layout of every archive written before the version was recorded
/// (archives without the meta entry are this format).
/// 2: the ledger's Merkle tree (`tree.rs`: meta `merkle-frontier`, written
/// with every group, and `merkle-node/...`), and checkpoints that sign its
/// root. A build of format 1 would append entries without the tree and
/// rewrite a stored checkpoint it cannot decode, so it must not open one.
/// A format-1 archive is upgraded at its first open by this build, once its
/// ledger is verified (`tree::upgrade`).
/// 3: the tree's complete tiles (meta `merkle-tile/...`, `tree.rs`), which
/// proofs read instead of one node per level. A build of format 2 would
/// append entries without the tiles their proofs and `verify` expect. A
/// format-2 archive gets its tiles built at its first open by this build,
/// after its ledger verified and with every stored node held to it.
pub const FORMAT_VERSION: u32 = 3;

/// The oldest format this build opens.
pub const OLDEST_FORMAT_VERSION: u32 = 1;

/// What an archive's recorded format means for this build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatState {
    /// Nothing was ever written: a new archive.
    Empty,
    /// Written before the format was recorded; that layout is version 1.
    Unrecorded,
    /// The recorded version, which this build opens.
    Recorded(u32),
}

/// Reads the archive's format and refuses one this build cannot open.
pub fn check(backend: &dyn Backend) -> Result<FormatState, StoreError> {
    match meta::load_format(backend)? {
        Some(found) => {
            if found > FORMAT_VERSION {
                return Err(StoreError::FormatTooNew { found, supported: FORMAT_VERSION });
            }
            if found < OLDEST_FORMAT_VERSION {
                return Err(StoreError::FormatTooOld { found, oldest: OLDEST_FORMAT_VERSION });
            }
            Ok(FormatState::Recorded(found))
        }
        None => Ok(if meta::ever_written(backend)? { FormatState::Unrecorded } else { FormatState::Empty }),
    }
}

/// Checks the format and records the current one for a new archive; runs
/// at open, before the writer starts, so nothing else writes meanwhile. An
/// older archive keeps its recorded format until its upgrade
/// (`tree::open_tree`) records the new one with what it wrote.
pub(crate) fn check_and_record(backend: &dyn Backend) -> Result<FormatState, StoreError> {
    let state = check(backend)?;
    if state == FormatState::Empty {
        let mut batch = Batch::default();
        let (key, value) = meta::format_entry(FORMAT_VERSION);
        batch.put(Keyspace::Meta, key, value);
        backend.commit(&batch, Durability::Synced).map_err(|e| StoreError::backend("recording the format", e))?;
    }
    Ok(state)
}

impl FormatState {
    /// The format the archive is in: 1 when unrecorded, the current one when new.
    pub fn version(self) -> u32 {
        match self {
            FormatState::Empty => FORMAT_VERSION,
            FormatState::Unrecorded => 1,
            FormatState::Recorded(version) => version,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wormbox_model::ManualClock;

    use super::*;
    use crate::backend::MemBackend;
    use crate::{Store, StoreOptions};

    fn open(backend: &Arc<MemBackend>) -> Result<Store, StoreError> {
        let clock = Arc::new(ManualClock::new(wormbox_model::Timestamp(1_795_737_600_000_000)));
        Store::open(backend.clone(), clock, StoreOptions::default())
    }

    fn set_format(backend: &MemBackend, version: u32) {
        let mut batch = Batch::default();
        batch.put(Keyspace::Meta, meta::FORMAT.to_vec(), version.to_be_bytes().to_vec());
        backend.commit(&batch, Durability::Synced).unwrap();
    }

    #[test]
    fn a_new_archive_records_the_current_format() {
        let backend = Arc::new(MemBackend::default());
        assert_eq!(check(&*backend).unwrap(), FormatState::Empty);
        drop(open(&backend).unwrap());
        assert_eq!(check(&*backend).unwrap(), FormatState::Recorded(FORMAT_VERSION));
    }

    #[tokio::test]
    async fn an_archive_from_before_the_format_was_recorded_opens_as_version_1() {
        let backend = Arc::new(MemBackend::default());
        let store = open(&backend).unwrap();
        store.bootstrap_admin().await.unwrap();
        drop(store);
        // What an older build left behind: data, but no format entry (and
        // none of what format 2 added).
        let mut batch = Batch::default();
        batch.delete(Keyspace::Meta, meta::FORMAT.to_vec());
        for prefix in [&b"merkle-"[..]] {
            for item in backend.scan(Keyspace::Meta, prefix, prefix) {
                batch.delete(Keyspace::Meta, item.unwrap().0);
            }
        }
        backend.commit(&batch, Durability::Synced).unwrap();
        assert_eq!(check(&*backend).unwrap(), FormatState::Unrecorded);
        let store = open(&backend).unwrap();
        assert!(store.bootstrap_admin().await.unwrap().is_none(), "the old archive's admin is still there");
        drop(store);
        // Read as version 1, then upgraded (its ledger verified, its tree built).
        assert_eq!(check(&*backend).unwrap(), FormatState::Recorded(FORMAT_VERSION));
    }

    #[tokio::test]
    async fn a_newer_format_is_refused_and_left_untouched() {
        let backend = Arc::new(MemBackend::default());
        let store = open(&backend).unwrap();
        store.bootstrap_admin().await.unwrap();
        drop(store);
        set_format(&backend, FORMAT_VERSION + 1);
        let before = backend.contents();
        let err = open(&backend).unwrap_err();
        assert!(
            matches!(err, StoreError::FormatTooNew { found, supported } if found == FORMAT_VERSION + 1 && supported == FORMAT_VERSION)
        );
        let message = err.to_string();
        assert!(message.contains(&format!("version {}", FORMAT_VERSION + 1)) && message.contains("newer"), "{message}");
        assert_eq!(backend.contents(), before, "a refused open writes nothing");
    }

    #[test]
    fn a_format_older_than_any_supported_or_malformed_is_refused() {
        let backend = MemBackend::default();
        set_format(&backend, 0);
        assert!(matches!(check(&backend), Err(StoreError::FormatTooOld { found: 0, .. })));
        let mut batch = Batch::default();
        batch.put(Keyspace::Meta, meta::FORMAT.to_vec(), vec![1, 2]);
        backend.commit(&batch, Durability::Synced).unwrap();
        assert!(matches!(check(&backend), Err(StoreError::DataLoss { .. })));
    }
}
