//! Evidence: signed checkpoints and the integrity check.
//!
//! Invariant: an integrity check's result is recorded in the ledger by the
//! caller who asked for it; the check itself runs on a blocking thread.

use wormbox_store::evidence::{Checkpoint, IntegrityReport, VerifyOptions};
use wormbox_store::{Actor, StoreError};

use crate::{Access, App, AppError};

/// GetCheckpoint.
#[derive(Clone, Copy, Debug, Default)]
pub struct GetCheckpoint {
    /// The ledger entry of a stored checkpoint; 0 is the current head's.
    pub sequence: u64,
}

/// VerifyIntegrity.
#[derive(Clone, Debug, Default)]
pub struct VerifyIntegrity {
    /// Start the ledger walk at the checkpoint signed at this entry.
    pub from_checkpoint: Option<u64>,
    /// Checkpoints the caller kept, to be matched against the ledger.
    pub extra_checkpoints: Vec<Checkpoint>,
}

impl App {
    /// GetCheckpoint: of the current head (signed now unless one exists), or
    /// the stored one at `sequence`.
    pub async fn checkpoint(&self, actor: &Actor, request: GetCheckpoint) -> Result<Checkpoint, AppError> {
        self.authorize(actor, Access::Metadata)?;
        let sequence = request.sequence;
        if sequence == 0 {
            return Ok(self.store.checkpoint().await?);
        }
        let stored = self.store.checkpoint_at(sequence)?;
        Ok(stored.ok_or_else(|| {
            StoreError::InvalidArgument(format!("no checkpoint was signed at ledger entry {sequence}"))
        })?)
    }

    /// VerifyIntegrity: checks everything and records the result in the ledger.
    pub async fn verify_integrity(
        &self,
        actor: &Actor,
        request: VerifyIntegrity,
    ) -> Result<(IntegrityReport, u64), AppError> {
        self.authorize(actor, Access::Audit)?;
        let VerifyIntegrity { from_checkpoint, extra_checkpoints } = request;
        let store = self.store.clone();
        let public_key = self.public_key().to_vec();
        // Released versions are checked through their replica, like GetObject reads them.
        let mut replica = std::sync::Arc::clone(&self.replication).replica_reader(tokio::runtime::Handle::current());
        let report = tokio::task::spawn_blocking(move || {
            let options = VerifyOptions {
                replica: Some(&mut replica),
                public_key: Some(public_key),
                from_checkpoint,
                extra_checkpoints,
                ..VerifyOptions::default()
            };
            store.verify_integrity(options)
        })
        .await
        .map_err(|e| StoreError::DataLoss { what: format!("the integrity check stopped: {e}") })??;
        let sequence = self.store.record_integrity(actor, &report).await?;
        Ok((report, sequence))
    }
}
