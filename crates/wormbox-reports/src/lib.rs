//! Evidence a compliance officer hands a regulator, in forms people and
//! machines can read: the retention report (rows and summary as CSV, JSON and
//! a self-contained HTML page), the audit trail (CSV and JSON lines), and the
//! export directory with its offline verification, and the backup
//! directory's manifest.
//!
//! Invariant: every report and export names the signed checkpoint it was
//! computed at, and everything here is computed from the same stored state
//! that enforcement reads (`Store`), or checked from files alone with nothing
//! but the appliance's public key.
#![deny(missing_docs)]

pub mod audit;
pub mod backup;
pub mod checkpoint;
pub mod export;
pub mod proof;
pub mod retention;

mod csv;

pub use checkpoint::CheckpointFile;
pub use retention::{ReportHeader, Row, Status, Summary};

/// Why a report, an export or its verification failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] wormbox_store::StoreError),
    /// A file could not be read or written.
    #[error("{what} `{path}`")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file's contents are not what this format says.
    #[error("`{path}` is malformed: {why}")]
    Malformed {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        why: String,
    },
}
