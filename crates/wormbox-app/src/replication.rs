//! Replication as operators see it: each rule's progress (`wormbox replica
//! status`) and its replica checked against the archive (`wormbox verify
//! --replica`).
//!
//! Invariant: both only read (the archive, the replicators' counters, the
//! replica) and are for admins and auditors only; the lag is the ledger's
//! own: entries after the rule's durable cursor, and the age, by the
//! compliance clock, of the oldest of them.

use std::time::Duration;

use wormbox_replica::verify::{self, VerifyReport};
use wormbox_replica::{Mode, ReplicaError};
use wormbox_store::{Actor, StoreError};

use crate::{Access, App, AppError};

/// One rule's replication, for `wormbox replica status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The rule's name.
    pub name: String,
    /// The source bucket.
    pub bucket: String,
    /// The key prefix (empty: all).
    pub prefix: String,
    /// The replica's endpoint.
    pub endpoint: String,
    /// The replica bucket.
    pub target_bucket: String,
    /// When writes are acknowledged.
    pub mode: Mode,
    /// The durable cursor: the replica holds what entries up to it ask.
    pub cursor: u64,
    /// The ledger's newest entry.
    pub ledger_head: u64,
    /// Ledger entries after the cursor.
    pub lag_entries: u64,
    /// How old the oldest entry after the cursor is (zero when caught up).
    pub lag: Duration,
    /// Versions copied since the appliance started.
    pub versions_copied: u64,
    /// Their bytes.
    pub bytes_copied: u64,
    /// Checkpoints (with their ledger ranges) copied since the start.
    pub checkpoints_copied: u64,
    /// Refusals of the replica replication went past, since the start.
    pub kept_by_replica: u64,
    /// The last error, until a pass succeeds.
    pub last_error: Option<String>,
    /// Bytes copied in the last minute.
    pub bytes_last_minute: u64,
    /// Versions copied in the last minute.
    pub versions_last_minute: u64,
}

fn replica_error(err: ReplicaError) -> AppError {
    match err {
        ReplicaError::Store(err) => AppError::Store(err),
        ReplicaError::Target(err) => AppError::Replica(err.to_string()),
        ReplicaError::Rule(err) => AppError::Internal(err.to_string()),
    }
}

impl App {
    /// Every rule's progress, in configuration order.
    pub async fn replication_status(&self, actor: &Actor) -> Result<Vec<ReplicaStatus>, AppError> {
        self.authorize(actor, Access::Audit)?;
        let statuses = self.replication.statuses();
        let (head, _) = self.store.ledger_head()?;
        let now = self.store.clock_status().await?.compliance;
        let mut out = Vec::new();
        for target in self.replication.targets() {
            let rule = &target.rule;
            let status = statuses.iter().find(|s| s.rule == rule.name).cloned().unwrap_or_default();
            let cursor = self.store.replica_cursor(&rule.name)?;
            let lag_entries = head.saturating_sub(cursor);
            let lag = match lag_entries {
                0 => Duration::ZERO,
                _ => {
                    let store = self.store.clone();
                    let oldest = tokio::task::spawn_blocking(move || store.ledger_iter(cursor + 1).next().transpose())
                        .await
                        .map_err(|e| StoreError::DataLoss { what: format!("reading the ledger failed: {e}") })??;
                    oldest.map_or(Duration::ZERO, |(entry, _)| {
                        Duration::from_micros(u64::try_from(now.0.saturating_sub(entry.time.0)).unwrap_or(0))
                    })
                }
            };
            let (bytes_last_minute, versions_last_minute) = status.last_minute();
            out.push(ReplicaStatus {
                name: rule.name.clone(),
                bucket: rule.bucket.to_string(),
                prefix: rule.prefix.clone(),
                endpoint: target.endpoint.clone(),
                target_bucket: target.target_bucket.clone(),
                mode: rule.mode,
                cursor,
                ledger_head: head,
                lag_entries,
                lag,
                versions_copied: status.versions,
                bytes_copied: status.bytes,
                checkpoints_copied: status.checkpoints,
                kept_by_replica: status.kept_by_replica,
                last_error: status.last_error,
                bytes_last_minute,
                versions_last_minute,
            });
        }
        Ok(out)
    }

    /// Checks rule `rule`'s replica against the archive, through its
    /// durable cursor, and names the first divergence (`VerifyReport`).
    pub async fn verify_replica(&self, actor: &Actor, rule: &str) -> Result<VerifyReport, AppError> {
        self.authorize(actor, Access::Audit)?;
        let target = self.replication.targets().into_iter().find(|t| t.rule.name == rule).ok_or_else(|| {
            StoreError::InvalidArgument(format!("this appliance has no replication rule named `{rule}`"))
        })?;
        verify::verify(&self.store, &target.rule, &target.client, self.public_key()).await.map_err(replica_error)
    }
}
