//! Backups (admins): a signed checkpoint, then a copy of the database.
//!
//! Invariant: a refused backup signs nothing (the slot is taken before the
//! checkpoint), and shutdown ends running backups (`stop_backups`).

use std::sync::Arc;

use wormbox_store::Actor;

use crate::app::{Access, App, AppError};
use crate::backup::{BackupError, Snapshot};

impl App {
    /// Backup (admins): signs a checkpoint of the current head, then copies
    /// the database, which therefore holds it. The copy is removed when the
    /// returned snapshot is dropped. Refused while another backup runs.
    pub async fn backup(&self, actor: &Actor) -> Result<Snapshot, AppError> {
        self.authorize(actor, Access::Admin)?;
        // Before the checkpoint, so that a refused backup signs nothing.
        let slot = self.backups.take_slot()?;
        let checkpoint = self.store.checkpoint().await?;
        let backups = Arc::clone(&self.backups);
        let public_key = self.public_key().to_vec();
        let snapshot = tokio::task::spawn_blocking(move || backups.snapshot(slot, &checkpoint, &public_key))
            .await
            .map_err(|e| BackupError::Refused(format!("the backup task failed: {e}")))??;
        Ok(snapshot)
    }

    /// Ends running backups and refuses new ones, for shutdown: an unread
    /// backup stream would otherwise hold its connection, and so the server,
    /// open for ever.
    pub async fn stop_backups(&self) {
        self.backups.stop().await;
    }
}
