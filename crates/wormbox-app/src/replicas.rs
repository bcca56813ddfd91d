//! The running replication rules as the application layer sees them
//! (`Replication`): each rule's target and status, the sync rules' wait for
//! their replica (`confirm`), released bytes read back (`spool`), and the
//! tier passes. `wormbox-server` starts the rules and builds it.
//!
//! Invariant: a write a sync rule covers is answered only once the rule's
//! durable cursor (`Handle::cursor`) has reached the write's ledger
//! sequence, i.e. the replica holds it (`Replication::confirm`). The wait
//! awaits a watch under a deadline and holds no thread; the local write is
//! already durable and cannot be undone, so a replica that does not confirm
//! in time gives `ReplicaPending` (the write stands, replication goes on),
//! and a caller that gives up waiting changes nothing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use wormbox_model::BucketName;
use wormbox_replica::{Handle, ReplicaError, Rule, S3Client, Status, TierReport};
use wormbox_store::evidence::ReplicaBytes;
use wormbox_store::{BytesAt, Store, StoreError};

use crate::spool as tier;

/// A write stored locally, durably, whose replica copy a sync rule did not
/// confirm in time: the write stands (WORM: it cannot be undone) and the
/// replica catches up later; the caller reads it back rather than write it
/// again.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{what} is stored locally and durable (ledger entry {sequence}) and cannot be undone, but its replica copy \
     (sync replication rule `{rule}`) is not yet confirmed after {timeout_ms} ms; replication goes on: read it \
     back rather than write it again"
)]
pub struct ReplicaPending {
    /// What was written: "version V", "delete marker V", ...
    pub what: String,
    /// Its version id (a marker's own id for a marker).
    pub version_id: String,
    /// Its ledger entry.
    pub sequence: u64,
    /// The sync rule that did not confirm it.
    pub rule: String,
    /// How long it waited (the rule's `sync_timeout_ms`).
    pub timeout_ms: u64,
}

/// A sync rule as its writers wait on it.
#[derive(Debug)]
struct SyncRule {
    rule: Rule,
    timeout: Duration,
    cursor: watch::Receiver<u64>,
}

/// The running replicators.
#[derive(Debug, Default)]
pub struct Replication {
    handles: Mutex<Vec<Handle>>,
    sync: Vec<SyncRule>,
    targets: Mutex<Vec<RuleTarget>>,
    /// The data directory, for the tier's spool files.
    data_dir: PathBuf,
    /// The tier passes' timers.
    tiers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// One tier pass at a time.
    tiering: tokio::sync::Mutex<()>,
}

/// A rule as `replica status` and `verify --replica` see it: where it
/// copies to, and a client of its replica to read it back with.
#[derive(Clone, Debug)]
pub struct RuleTarget {
    /// The rule.
    pub rule: Rule,
    /// The replica's endpoint.
    pub endpoint: String,
    /// The replica bucket.
    pub target_bucket: String,
    /// A client of the replica bucket (the rule's own credential).
    pub client: S3Client,
    /// The capacity tier: versions this old release their local bytes.
    pub tier_after: Option<Duration>,
}

impl Replication {
    /// No rules: nothing is replicated (released bytes of an earlier
    /// configuration's rules are unavailable).
    pub fn none(data_dir: &Path) -> Replication {
        Replication { data_dir: data_dir.to_owned(), ..Replication::default() }
    }

    /// The started rules: each replicator's `handles`, each rule's target, in
    /// configuration order, and for each sync rule its bound; starts the
    /// tier passes of the rules that have one.
    pub fn new(
        store: &Store,
        data_dir: &Path,
        handles: Vec<Handle>,
        targets: Vec<RuleTarget>,
        sync_timeouts: Vec<Option<Duration>>,
    ) -> Arc<Replication> {
        let sync = targets
            .iter()
            .zip(&handles)
            .zip(sync_timeouts)
            .filter_map(|((target, handle), timeout)| {
                timeout.map(|timeout| SyncRule { rule: target.rule.clone(), timeout, cursor: handle.cursor() })
            })
            .collect();
        let replication = Arc::new(Replication {
            handles: Mutex::new(handles),
            sync,
            targets: Mutex::new(targets),
            data_dir: data_dir.to_owned(),
            ..Replication::default()
        });
        replication.spawn_tiers(store);
        replication
    }

    /// Whether a sync rule covers `bucket`/`key`: its writes wait for the replica.
    pub fn is_sync(&self, bucket: &BucketName, key: &str) -> bool {
        self.sync.iter().any(|s| s.rule.covers(bucket.as_str(), key))
    }

    /// Returns once every sync rule covering `bucket`/`key` holds the write
    /// recorded at ledger `sequence`, or `ReplicaPending` naming the first
    /// rule that did not within its `sync_timeout_ms` (from this call). `what`
    /// and `version_id` say what was written, for the error. Awaits the
    /// rules' cursor watches: no thread is held, and dropping the future
    /// (a cancelled caller) changes nothing.
    pub async fn confirm(
        &self,
        bucket: &BucketName,
        key: &str,
        sequence: u64,
        what: impl FnOnce() -> String,
        version_id: &str,
    ) -> Result<(), ReplicaPending> {
        let start = tokio::time::Instant::now();
        for sync in self.sync.iter().filter(|s| s.rule.covers(bucket.as_str(), key)) {
            let mut cursor = sync.cursor.clone();
            let reached = tokio::time::timeout_at(start + sync.timeout, cursor.wait_for(|c| *c >= sequence)).await;
            // A closed watch: the replicator stopped (the appliance is
            // stopping); the copy is not confirmed.
            if !matches!(reached, Ok(Ok(_))) {
                return Err(ReplicaPending {
                    what: what(),
                    version_id: version_id.to_owned(),
                    sequence,
                    rule: sync.rule.name.clone(),
                    timeout_ms: u64::try_from(sync.timeout.as_millis()).unwrap_or(u64::MAX),
                });
            }
        }
        Ok(())
    }

    /// Each rule's status, in configuration order.
    pub fn statuses(&self) -> Vec<Status> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner()).iter().map(Handle::status).collect()
    }

    /// Each rule with its replica, in configuration order.
    pub fn targets(&self) -> Vec<RuleTarget> {
        self.targets.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Rule `rule` with its replica, if it is configured.
    pub fn target(&self, rule: &str) -> Option<RuleTarget> {
        self.targets.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|t| t.rule.name == rule).cloned()
    }

    /// Reads a released version's bytes (`at`, of `key`) from its rule's
    /// replica into a spool file, hashing them (`tier::spool`).
    pub async fn spool(&self, at: &BytesAt, key: &str, size_written: u64) -> Result<tier::Spooled, tier::SpoolError> {
        let target = self.target(&at.rule);
        let client = target.as_ref().map(|t| &t.client as &dyn wormbox_replica::Target);
        tier::spool(client, &self.data_dir, at, key, size_written).await
    }

    /// A reader of released versions' bytes for integrity verification
    /// (`VerifyOptions::replica`), which runs on a blocking thread: each
    /// read is spooled through the runtime `handle`.
    pub fn replica_reader(
        self: Arc<Self>,
        handle: tokio::runtime::Handle,
    ) -> impl FnMut(&BytesAt, &str, &str, u64) -> ReplicaBytes + Send + 'static {
        move |at: &BytesAt, _bucket: &str, key: &str, size: u64| match handle.block_on(self.spool(at, key, size)) {
            Ok(spooled) => ReplicaBytes::Bytes(Box::new(spooled.file)),
            Err(tier::SpoolError::Missing { why, .. }) => ReplicaBytes::Missing(why),
            Err(err) => ReplicaBytes::Unavailable(err.to_string()),
        }
    }

    /// Runs rule `rule`'s tier pass now (it also runs every hour on its
    /// own); one pass at a time.
    pub async fn tier_now(&self, store: &Store, rule: &str) -> Result<TierReport, ReplicaError> {
        let target = self
            .target(rule)
            .ok_or_else(|| ReplicaError::Store(StoreError::InvalidArgument(format!("no replication rule `{rule}`"))))?;
        let Some(after) = target.tier_after else {
            return Err(ReplicaError::Store(StoreError::InvalidArgument(format!(
                "replication rule `{rule}` has no tier_after_days"
            ))));
        };
        let others: Vec<Rule> = self.targets().into_iter().map(|t| t.rule).collect();
        let _one = self.tiering.lock().await;
        let report = wormbox_replica::tier::pass(store, &target.rule, &target.client, after, &others).await?;
        if report.released > 0 || !report.refused.is_empty() {
            tracing::info!(
                rule,
                released = report.released,
                bytes = report.bytes_released,
                refused = report.refused.len(),
                "tier pass"
            );
        }
        Ok(report)
    }

    /// Starts the tier passes' timers (`tier::TIER_EVERY`).
    fn spawn_tiers(self: &Arc<Self>, store: &Store) {
        let rules: Vec<String> =
            self.targets().into_iter().filter(|t| t.tier_after.is_some()).map(|t| t.rule.name).collect();
        let mut tiers = self.tiers.lock().unwrap_or_else(|p| p.into_inner());
        for rule in rules {
            let (me, store) = (Arc::downgrade(self), store.clone());
            tiers.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(tier::TIER_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(me) = me.upgrade() else { return };
                    if let Err(err) = me.tier_now(&store, &rule).await {
                        tracing::warn!(rule, error = &err as &dyn std::error::Error, "a tier pass stopped");
                    }
                }
            }));
        }
    }

    /// Stops every replicator; their progress is durable.
    pub async fn stop(&self) {
        for tier in std::mem::take(&mut *self.tiers.lock().unwrap_or_else(|p| p.into_inner())) {
            // Each release is one atomic write: a pass stopped between two
            // leaves every version either released or local.
            tier.abort();
        }
        let handles = std::mem::take(&mut *self.handles.lock().unwrap_or_else(|p| p.into_inner()));
        for handle in handles {
            handle.stop().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wormbox_replica::Mode;

    fn rule(prefix: &str) -> Rule {
        Rule {
            name: "dr".into(),
            bucket: BucketName::new("records").unwrap(),
            prefix: prefix.into(),
            mode: Mode::Sync,
            minimum_retention: None,
            replicate_purges: false,
            evidence_retention: Duration::from_secs(86_400),
            concurrency: wormbox_replica::DEFAULT_CONCURRENCY,
        }
    }

    /// A replication with one sync rule over `records/trade/`, whose cursor
    /// the test moves.
    fn sync(timeout: Duration) -> (Replication, watch::Sender<u64>) {
        let (tx, cursor) = watch::channel(3);
        let sync = vec![SyncRule { rule: rule("trade/"), timeout, cursor }];
        (Replication { sync, ..Replication::default() }, tx)
    }

    fn records() -> BucketName {
        BucketName::new("records").unwrap()
    }

    #[tokio::test]
    async fn a_covered_write_is_confirmed_once_the_cursor_reaches_it() {
        let (replication, cursor) = sync(Duration::from_secs(30));
        let replication = Arc::new(replication);
        assert!(replication.is_sync(&records(), "trade/1") && !replication.is_sync(&records(), "mail/1"));
        let waiting = {
            let replication = Arc::clone(&replication);
            tokio::spawn(async move { replication.confirm(&records(), "trade/1", 5, || "v".into(), "V").await })
        };
        cursor.send(4).unwrap();
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the cursor has not reached the write");
        cursor.send(5).unwrap();
        waiting.await.unwrap().unwrap();
        // Already reached, or not covered: no wait at all.
        replication.confirm(&records(), "trade/2", 5, || "v".into(), "V").await.unwrap();
        replication.confirm(&records(), "mail/1", 99, || "v".into(), "V").await.unwrap();
        replication.confirm(&BucketName::new("other").unwrap(), "trade/1", 99, || "v".into(), "V").await.unwrap();
    }

    #[tokio::test]
    async fn a_cursor_that_does_not_reach_the_write_gives_replica_pending_after_the_timeout() {
        let (replication, _cursor) = sync(Duration::from_millis(80));
        let start = std::time::Instant::now();
        let pending = replication.confirm(&records(), "trade/1", 5, || "version V".into(), "V").await.unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(80), "it waited its bound");
        assert_eq!(
            pending,
            ReplicaPending {
                what: "version V".into(),
                version_id: "V".into(),
                sequence: 5,
                rule: "dr".into(),
                timeout_ms: 80
            }
        );
        let message = pending.to_string();
        assert!(message.contains("stored locally") && message.contains("not yet confirmed"), "{message}");
    }

    #[tokio::test]
    async fn a_stopped_replicator_confirms_nothing_and_says_so_at_once() {
        let (replication, cursor) = sync(Duration::from_secs(30));
        drop(cursor);
        let start = std::time::Instant::now();
        let pending = replication.confirm(&records(), "trade/1", 5, || "v".into(), "V").await.unwrap_err();
        assert_eq!(pending.rule, "dr");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_waiting_leaves_the_rule_as_it_was() {
        let (replication, cursor) = sync(Duration::from_secs(30));
        let gave_up = tokio::time::timeout(
            Duration::from_millis(20),
            replication.confirm(&records(), "trade/1", 5, || "v".into(), "V"),
        )
        .await;
        assert!(gave_up.is_err());
        cursor.send(5).unwrap();
        replication.confirm(&records(), "trade/1", 5, || "v".into(), "V").await.unwrap();
    }
}
