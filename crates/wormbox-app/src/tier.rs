//! Reading versions whose local bytes were released (the capacity tier):
//! GetObject and integrity verification read them through the rule's
//! replica (`Replication::spool`).
//!
//! Invariant: a released version's bytes are sent only after all of them
//! were read from the replica and their size and SHA-256 equal the version
//! record's, which its ledger entry attests; otherwise the reader answers
//! `REPLICA_COPY_DIFFERS` (DATA_LOSS, logged, naming the replica version)
//! or, when the replica does not answer, `REPLICA_UNAVAILABLE`, and not a
//! byte is sent. Bodies are spooled to a file, never held in memory.

use std::io::Read;

use wormbox_store::{CHUNK_BYTES, ObjectReader, VersionInfo};

use crate::spool::SpoolError;
use crate::{App, AppError};

/// A version's bytes as GetObject sends them: read locally (each chunk
/// checked), or from a replica copy already checked whole.
#[derive(Debug)]
pub enum ObjectBody {
    /// The local chunks.
    Local(Box<ObjectReader>),
    /// A released version's bytes, spooled and checked.
    Replica {
        /// The spool file, from the start.
        file: std::fs::File,
        /// Bytes left to send.
        left: u64,
    },
}

impl Iterator for ObjectBody {
    type Item = Result<Vec<u8>, AppError>;

    /// Blocks (reads the backend or the spool file): iterate it off the
    /// async runtime.
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            ObjectBody::Local(reader) => reader.next().map(|r| r.map_err(AppError::from)),
            ObjectBody::Replica { file, left } => {
                if *left == 0 {
                    return None;
                }
                let want = usize::try_from((*left).min(CHUNK_BYTES as u64)).unwrap_or(CHUNK_BYTES);
                let mut chunk = vec![0u8; want];
                match file.read_exact(&mut chunk) {
                    Ok(()) => {
                        *left -= want as u64;
                        Some(Ok(chunk))
                    }
                    Err(err) => {
                        *left = 0;
                        Some(Err(AppError::Internal(format!("reading a spooled replica copy: {err}"))))
                    }
                }
            }
        }
    }
}

impl App {
    /// The bytes of a version `reader` opened: itself when they are local,
    /// else read from the replica its location names and checked whole
    /// against the version record before any is sent.
    pub(crate) async fn body_of(&self, info: &VersionInfo, reader: ObjectReader) -> Result<ObjectBody, AppError> {
        let Some(at) = reader.released().cloned() else { return Ok(ObjectBody::Local(Box::new(reader))) };
        let (key, version_id) = (info.key.clone(), info.version_id.clone());
        // The spool file takes room under the data directory while the read
        // lasts: a read is spooled only when it fits above the reserve. As a
        // backup's copy, it is admitted, not held: the disk is read every
        // second, and a held ticket would count what is spooled twice.
        drop(self.store.check_space(reader.expected_size())?);
        let spooled = self.replication.spool(&at, &key, reader.expected_size()).await.map_err(|err| match err {
            SpoolError::Unavailable { why, .. } => AppError::ReplicaUnavailable {
                key: key.clone(),
                version_id: version_id.clone(),
                rule: at.rule.clone(),
                why,
            },
            // No copy where the location says: lost like differing bytes.
            SpoolError::Missing { why, .. } => {
                tracing::error!(rule = %at.rule, replica_version = %at.replica_id, key = %key, %why,
                    "a released version's replica copy is missing");
                AppError::ReplicaCopyDiffers {
                    key: key.clone(),
                    version_id: version_id.clone(),
                    rule: at.rule.clone(),
                    replica_id: at.replica_id.clone(),
                }
            }
            SpoolError::Io { .. } => AppError::Internal(err.to_string()),
        })?;
        if spooled.size != reader.expected_size() || spooled.sha256 != reader.expected_sha256() {
            tracing::error!(
                rule = %at.rule,
                replica_version = %at.replica_id,
                key = %key,
                version = %version_id,
                replica_sha256 = %spooled.sha256.to_hex(),
                ledger_sha256 = %reader.expected_sha256().to_hex(),
                "a released version's replica copy differs from the ledger: refused"
            );
            return Err(AppError::ReplicaCopyDiffers {
                key,
                version_id,
                rule: at.rule.clone(),
                replica_id: at.replica_id,
            });
        }
        Ok(ObjectBody::Replica { file: spooled.file, left: spooled.size })
    }
}
