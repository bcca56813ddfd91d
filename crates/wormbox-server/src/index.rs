//! `wormboxd rebuild-index`: the archive's index (RocksDB) rebuilt from its
//! log alone, for when the index is damaged or lost while the log is whole.
//!
//! Invariant: the data directory's `db` is replaced only by an index that
//! verifies (every ledger entry, checkpoint signature and version's bytes,
//! with the appliance's public key when it is there) and that reaches every
//! checkpoint the appliance published (`--published`: an auditor's copy, a
//! backup's `backup.json`), so a log cut short (root removing its last
//! frames and the checkpoints in them) is refused rather than rebuilt into
//! an archive rolled back; the replaced index is kept beside it; a refused
//! rebuild changes nothing but leaves its work in `db.rebuilt` for
//! inspection.

use std::path::{Path, PathBuf};

use wormbox_store::StoreError;
use wormbox_store::backend::BackendError;
use wormbox_store::evidence::{self, IntegrityReport, VerifyOptions};
use wormbox_store_rocksdb::{RocksBackend, RocksOptions};

use crate::evidence::PUBLIC_KEY_FILE;

/// Where the data directory keeps its index and log.
const DB_DIR: &str = "db";
/// Where a rebuild puts the new index before it verifies.
pub const REBUILT_DIR: &str = "db.rebuilt";

/// What a rebuild did.
#[derive(Debug)]
pub struct Rebuilt {
    /// Log frames replayed into the new index.
    pub frames: u64,
    /// The new index's verification.
    pub report: IntegrityReport,
    /// Where the replaced index (with links to the same log) was kept.
    pub replaced: PathBuf,
}

/// Why a rebuild did not replace the index.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The log could not be replayed, or is not one a rebuild can use.
    #[error("rebuilding the index from the log failed")]
    Backend(#[from] BackendError),
    /// The new index could not be verified.
    #[error("verifying the rebuilt index failed")]
    Verify(#[from] StoreError),
    /// The new index does not verify.
    #[error("the rebuilt index does not verify ({summary}); it is left in {} and the archive is unchanged", .left.display())]
    Refused {
        /// The verification's summary.
        summary: String,
        /// Where the rebuilt index was left.
        left: PathBuf,
    },
    /// The published checkpoints named cannot be used, or none was named
    /// and `--no-published-checkpoint` was not said.
    #[error("{0}")]
    Published(String),
    /// A file operation failed.
    #[error("{what} {}", .path.display())]
    Io {
        /// What was done.
        what: &'static str,
        /// To which path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The checkpoints the appliance published, which a rebuilt index must reach.
#[derive(Clone, Debug, Default)]
pub struct Published {
    /// Checkpoint files (`wormbox checkpoint --out`) or backups' `backup.json`.
    pub paths: Vec<PathBuf>,
    /// Rebuild although no published checkpoint is at hand.
    pub none_kept: bool,
}

/// Rebuilds the index of the stopped appliance in `data_dir` from its log,
/// verifies it (against `published` too), and puts it in place of the old
/// one, which is kept as `db.replaced-<now_secs>`.
pub fn rebuild_index(
    data_dir: &Path,
    options: &RocksOptions,
    now_secs: u64,
    published: &Published,
) -> Result<Rebuilt, RebuildError> {
    let db = data_dir.join(DB_DIR);
    let rebuilt = data_dir.join(REBUILT_DIR);
    if rebuilt.exists() {
        return Err(RebuildError::Io {
            what: "an earlier rebuild's work is in the way (remove it to rebuild again):",
            path: rebuilt,
            source: std::io::ErrorKind::AlreadyExists.into(),
        });
    }
    // Read before anything is written: a refusal leaves no work behind.
    let public_key = read_public_key(data_dir)?;
    let published = match (&public_key, published.paths.is_empty()) {
        (None, false) => {
            return Err(RebuildError::Published(format!(
                "{} is missing: published checkpoints cannot be checked without the appliance's public key; put it back from a backup (its checkpoint-signing.pub) or from the public_key of an auditor's checkpoint file you trust",
                data_dir.join(PUBLIC_KEY_FILE).display()
            )));
        }
        (None, true) => crate::backup::published_checkpoints(&[], &[], published.none_kept),
        (Some(key), _) => crate::backup::published_checkpoints(&published.paths, key, published.none_kept),
    }
    .map_err(|e| RebuildError::Published(e.to_string()))?;
    let frames = RocksBackend::rebuild_index(&db, &rebuilt, options)?;
    let report = {
        let backend = RocksBackend::open_read_only(&rebuilt)?;
        let options = VerifyOptions { public_key, extra_checkpoints: published, ..VerifyOptions::default() };
        evidence::verify(&backend, options)?
    };
    if !report.is_ok() {
        return Err(RebuildError::Refused { summary: report.summary(), left: rebuilt });
    }
    let replaced = data_dir.join(format!("{DB_DIR}.replaced-{now_secs}"));
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| RebuildError::Io { what, path, source }
    };
    std::fs::rename(&db, &replaced).map_err(io("moving aside", &db))?;
    std::fs::rename(&rebuilt, &db).map_err(io("moving into place", &rebuilt))?;
    std::fs::File::open(data_dir).and_then(|dir| dir.sync_all()).map_err(io("syncing", data_dir))?;
    Ok(Rebuilt { frames, report, replaced })
}

/// The appliance's public key from the data directory, if it is there.
fn read_public_key(data_dir: &Path) -> Result<Option<Vec<u8>>, RebuildError> {
    match std::fs::read_to_string(data_dir.join(PUBLIC_KEY_FILE)) {
        Ok(text) => Ok(Some(hex::decode(text.trim()).map_err(|e| RebuildError::Io {
            what: "reading the public key",
            path: data_dir.join(PUBLIC_KEY_FILE),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RebuildError::Io { what: "reading", path: data_dir.join(PUBLIC_KEY_FILE), source }),
    }
}
