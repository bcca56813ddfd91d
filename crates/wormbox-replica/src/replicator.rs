//! The replicator: follows the ledger from its rule's durable cursor and
//! makes the replica hold what the ledger says the source holds.
//!
//! Invariants:
//! - The cursor (`Store::record_replication`) moves past an entry only once
//!   the replica acknowledged what the entry asks and every earlier entry is
//!   done too (a contiguous prefix of the ledger), and it is written with the
//!   replica ids of exactly the copies of that prefix.
//! - Up to the rule's `concurrency` (N) entries are copied at once, taken in
//!   ledger order: an entry that is not yet part of the done prefix counts
//!   against N even once its copy is done, and at most `RECORD_EVERY` copies
//!   of the prefix go unrecorded. So a crash leaves at most
//!   `RECORD_EVERY + N` copies past the durable cursor that may have been
//!   made, the first ones in ledger order, which are then in doubt.
//! - A write in doubt (the first `RECORD_EVERY + N` copies after a start,
//!   or after a failed pass) is looked up before it is made again: a version
//!   by its `wormbox-version-id` metadata, a marker as the key's newest
//!   replica version, evidence by its fixed name. So each source version has
//!   exactly one replica version.
//! - Changes to one key keep ledger order: an entry starts only once every
//!   earlier entry of the same key is done. Lock changes are applied as the
//!   source's current lock, which makes them safe to repeat.
//! - A failed copy stops new ones; those in flight finish, the done prefix is
//!   recorded, and the pass fails: the next one starts from the cursor with
//!   its writes in doubt.
//! - Nothing here blocks local ingest: the backlog is the ledger itself, and
//!   a replica that is down is retried with back-off.
//! - Each signed checkpoint is copied after the ledger range it closes is
//!   wholly replicated (every entry up to it done), both under COMPLIANCE
//!   retention, so the replica alone proves the ledger.
//! - The cursor a replicator publishes (`Handle::cursor`, a watch) is only
//!   ever the durable one, sent after `Store::record_replication` returned:
//!   a sync rule's writer that sees it reach its write's ledger sequence
//!   knows the replica holds the write.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::watch;
use wormbox_model::{BucketName, Clock, Digest, ObjectKey, SystemClock, Timestamp, VersionId};
use wormbox_reports::CheckpointFile;
use wormbox_store::evidence::Checkpoint;
use wormbox_store::ledger::{LedgerEntry, LedgerOp};
use wormbox_store::retention::RetentionMode;
use wormbox_store::{Replicated, Store, StoreError, VersionInfo};

use crate::layout::{self, META_SEQUENCE, META_VERSION};
use crate::rule::{Rule, RuleError};
use crate::target::{Body, Lock, PutSpec, Target, TargetError};

/// How many copies the cursor covers at most between two records; with the
/// rule's concurrency, how many writes are in doubt after a crash or a
/// failed call.
const RECORD_EVERY: usize = 32;
/// How many ledger entries are read at a time.
const READ_AHEAD: usize = 256;
/// The longest wait between retries of a replica that is down.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How many chunks of a body are read ahead of the replica.
const BODY_AHEAD: usize = 2;

/// Why replication cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The replica failed or refused.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The rule cannot run against this replica.
    #[error(transparent)]
    Rule(#[from] RuleError),
}

/// What a rule's replication has done, for `wormbox replica status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// The rule.
    pub rule: String,
    /// The last ledger entry the replica holds what it asks.
    pub cursor: u64,
    /// The ledger's newest entry, when last looked at.
    pub head: u64,
    /// Versions copied since the start.
    pub versions: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Checkpoints (with their ledger ranges) copied since the start.
    pub checkpoints: u64,
    /// The last error, until a pass succeeds.
    pub last_error: Option<String>,
    /// Refusals of the replica that replication went past (a lock it keeps
    /// longer than the source, a purge it refuses), since the start.
    pub kept_by_replica: u64,
    /// Copies per second of the last minute (`Status::last_minute`).
    pub recent: Recent,
}

impl Status {
    /// Bytes and versions copied in the last 60 seconds, as the
    /// replicator's clock counts them: the throughput, at one-second grain.
    pub fn last_minute(&self) -> (u64, u64) {
        self.recent.sum()
    }
}

/// Copies per second over the last minute: sixty one-second slots, so its
/// size is fixed whatever the rate.
#[derive(Clone)]
pub struct Recent {
    clock: Arc<dyn Clock>,
    /// Per slot: the second it counts (monotonic), bytes, versions.
    slots: [(u64, u64, u64); 60],
}

impl Recent {
    /// An empty window read by `clock` (its monotonic time).
    pub fn new(clock: Arc<dyn Clock>) -> Recent {
        Recent { clock, slots: [(u64::MAX, 0, 0); 60] }
    }

    fn add(&mut self, bytes: u64) {
        let second = self.clock.monotonic().as_secs();
        let slot = &mut self.slots[(second % 60) as usize];
        if slot.0 != second {
            *slot = (second, 0, 0);
        }
        slot.1 += bytes;
        slot.2 += 1;
    }

    fn sum(&self) -> (u64, u64) {
        let now = self.clock.monotonic().as_secs();
        self.slots
            .iter()
            .filter(|(second, _, _)| *second <= now && now - second < 60)
            .fold((0, 0), |(b, v), (_, bytes, versions)| (b + bytes, v + versions))
    }
}

impl Default for Recent {
    fn default() -> Recent {
        Recent::new(Arc::new(SystemClock))
    }
}

impl std::fmt::Debug for Recent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (bytes, versions) = self.sum();
        f.debug_struct("Recent").field("bytes", &bytes).field("versions", &versions).finish()
    }
}

impl PartialEq for Recent {
    fn eq(&self, other: &Recent) -> bool {
        self.slots == other.slots
    }
}

impl Eq for Recent {}

/// A running replicator.
#[derive(Debug)]
pub struct Handle {
    status: Arc<Mutex<Status>>,
    cursor: watch::Receiver<u64>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// What it has done so far.
    pub fn status(&self) -> Status {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The rule's durable cursor, as it moves: the ledger sequence through
    /// which the replica holds what the ledger asks. Changes only after the
    /// store recorded it; a closed watch means the replicator stopped.
    pub fn cursor(&self) -> watch::Receiver<u64> {
        self.cursor.clone()
    }

    /// Stops it after the call in progress; its progress is durable.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Follows the ledger for one rule.
pub struct Replicator<T: Target> {
    store: Store,
    rule: Rule,
    target: Arc<T>,
    public_key: Vec<u8>,
    status: Arc<Mutex<Status>>,
    /// The durable cursor, published for sync rules' writers.
    cursor: watch::Sender<u64>,
    /// Writes still to be looked up before they are made, counted down in
    /// ledger order as copies start.
    in_doubt: AtomicUsize,
    /// The newest checkpoint the replica holds (with its ledger range), once known.
    last_checkpoint: Mutex<Option<u64>>,
    /// Whether the replica bucket was found fit for the rule.
    checked: bool,
}

impl<T: Target> std::fmt::Debug for Replicator<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator").field("rule", &self.rule.name).finish_non_exhaustive()
    }
}

impl<T: Target> Replicator<T> {
    /// A replicator of `rule` from `store` to `target`; `public_key` verifies
    /// the checkpoints it copies.
    pub fn new(store: Store, rule: Rule, target: T, public_key: Vec<u8>) -> Result<Replicator<T>, ReplicaError> {
        rule.check()?;
        let cursor = store.replica_cursor(&rule.name)?;
        let status = Status { rule: rule.name.clone(), cursor, ..Status::default() };
        let in_doubt = AtomicUsize::new(doubt_window(&rule));
        Ok(Replicator {
            store,
            rule,
            target: Arc::new(target),
            public_key,
            status: Arc::new(Mutex::new(status)),
            cursor: watch::Sender::new(cursor),
            in_doubt,
            last_checkpoint: Mutex::new(None),
            checked: false,
        })
    }

    /// Counts the throughput (`Status::last_minute`) by `clock` rather
    /// than the system's.
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Replicator<T> {
        self.set(|s| s.recent = Recent::new(clock));
        self
    }

    /// Checks the replica bucket against the rule: a bucket without Object
    /// Lock or versioning, or whose default retention is shorter than the
    /// rule's minimum, is refused. `Unavailable` when the replica cannot be
    /// asked now; the replicator then checks it when it first reaches it.
    pub async fn check_target(&mut self) -> Result<(), ReplicaError> {
        let state = self.target.bucket_state().await?;
        if !state.object_lock {
            return Err(self
                .rule
                .error("the replica bucket has no Object Lock: it could not keep what it holds".into())
                .into());
        }
        if !state.versioned {
            return Err(self.rule.error("the replica bucket's versioning is not Enabled".into()).into());
        }
        if let (Some((_, minimum)), Some((_, days))) = (self.rule.minimum_retention, state.default_retention)
            && Duration::from_secs(u64::from(days) * 86_400) < minimum
        {
            let why = format!(
                "the replica bucket's default retention ({days} days) is shorter than the rule's minimum ({} days)",
                minimum.as_secs() / 86_400
            );
            return Err(self.rule.error(why).into());
        }
        self.checked = true;
        Ok(())
    }

    /// Runs until stopped: catches up, then waits for new ledger entries;
    /// after a failure, retries with back-off, its writes in doubt.
    pub fn spawn(mut self) -> Handle {
        let (stop, mut stopped) = watch::channel(false);
        let status = Arc::clone(&self.status);
        let cursor = self.cursor.subscribe();
        let task = tokio::spawn(async move {
            let mut commits = self.store.ledger_watch();
            let mut backoff = Duration::from_millis(250);
            loop {
                if *stopped.borrow() {
                    return;
                }
                let waited = match self.catch_up().await {
                    Ok(()) => {
                        backoff = Duration::from_millis(250);
                        self.set(|s| s.last_error = None);
                        tokio::select! {
                            changed = commits.changed() => changed.is_ok(),
                            _ = stopped.changed() => false,
                        }
                    }
                    Err(err) => {
                        tracing::warn!(rule = %self.rule.name, error = %err, retry_in_ms = backoff.as_millis() as u64, "replication failed; retrying");
                        self.set(|s| s.last_error = Some(err.to_string()));
                        let wait = backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        tokio::select! {
                            () = tokio::time::sleep(wait) => true,
                            _ = stopped.changed() => false,
                        }
                    }
                };
                if !waited {
                    return;
                }
            }
        });
        Handle { status, cursor, stop, task }
    }

    /// Copies everything from the cursor to the ledger head as it is now.
    /// After a failure, the next pass looks up its first writes first.
    pub async fn catch_up(&mut self) -> Result<(), ReplicaError> {
        let result = self.pass().await;
        if result.is_err() {
            // Any write made or in flight past the recorded cursor may have
            // happened.
            self.in_doubt.store(doubt_window(&self.rule), Ordering::SeqCst);
        }
        result
    }

    async fn pass(&mut self) -> Result<(), ReplicaError> {
        if !self.checked {
            self.check_target().await?;
        }
        let (head, _) = self.store.ledger_head()?;
        let mut cursor = self.store.replica_cursor(&self.rule.name)?;
        self.set(|s| (s.head, s.cursor) = (head, cursor));
        if self.lock_checkpoint().is_none() {
            let held = self.newest_checkpoint_held(cursor).await?;
            *self.lock_checkpoint() = Some(held);
        }
        self.copy_checkpoints_through(cursor).await?;
        while cursor < head {
            let entries = self.read_ledger(cursor + 1, head).await?;
            cursor = self.copy_entries(cursor, entries).await?;
        }
        // A checkpoint signed at the head after its entry was copied.
        self.copy_checkpoints_through(cursor).await?;
        Ok(())
    }

    /// Copies `entries` (those right after `cursor`), up to the rule's
    /// concurrency at once, and records the done prefix; returns the new
    /// cursor, or the first failure once the prefix is recorded.
    async fn copy_entries(&self, mut cursor: u64, entries: Vec<(LedgerEntry, Digest)>) -> Result<u64, ReplicaError> {
        let start = cursor;
        let mut flight = FuturesUnordered::new();
        // Entries started and not yet part of the done prefix, by sequence.
        let mut open: BTreeMap<u64, Open> = BTreeMap::new();
        let mut copied = Vec::new();
        let mut unrecorded = 0;
        let mut failure = None;
        // A checkpoint closes here: nothing starts until all before it is done.
        let mut barrier = None;
        let mut entries = entries.into_iter().map(|(entry, _)| entry).peekable();
        loop {
            // The done prefix: the cursor moves over it.
            while let Some(mut first) = open.first_entry() {
                let Some(done) = first.get_mut().done.take() else { break };
                let (sequence, slot) = first.remove_entry();
                cursor = sequence;
                unrecorded += usize::from(slot.copy);
                copied.extend(done);
            }
            if unrecorded >= RECORD_EVERY {
                self.record(cursor, std::mem::take(&mut copied)).await?;
                unrecorded = 0;
            }
            if failure.is_none()
                && let Some(through) = barrier
                && open.is_empty()
            {
                match self.copy_checkpoints_through(through).await {
                    Ok(()) => barrier = None,
                    Err(err) => failure = Some(err),
                }
            }
            // Start what may start, in ledger order.
            while failure.is_none() && barrier.is_none() {
                let Some(entry) = entries.peek() else { break };
                let work = self.work_of(entry);
                if let Some(work) = &work {
                    let started = open.values().filter(|o| o.key.is_some()).count();
                    let same_key = open.values().any(|o| o.done.is_none() && o.key.as_deref() == Some(&work.key));
                    if started >= self.rule.concurrency.max(1) || same_key {
                        break;
                    }
                }
                let Some(entry) = entries.next() else { break };
                let sequence = entry.sequence;
                match work {
                    None => {
                        open.insert(sequence, Open { key: None, copy: false, done: Some(None) });
                    }
                    Some(work) => {
                        let doubt = work.copy && self.take_doubt();
                        open.insert(sequence, Open { key: Some(work.key), copy: work.copy, done: None });
                        flight.push(self.copy_entry(entry, doubt));
                    }
                }
                match self.store.checkpoint_at(sequence) {
                    Ok(Some(_)) => barrier = Some(sequence),
                    Ok(None) => {}
                    Err(err) => failure = Some(err.into()),
                }
            }
            if flight.is_empty() {
                // Nothing in flight: what is open is done (a barrier to
                // settle next round) or failed.
                if failure.is_some() || (entries.peek().is_none() && barrier.is_none()) {
                    break;
                }
                continue;
            }
            let Some((sequence, result)) = flight.next().await else { continue };
            match result {
                Ok(done) => {
                    if let Some(slot) = open.get_mut(&sequence) {
                        slot.done = Some(done);
                    }
                }
                Err(err) => {
                    failure.get_or_insert(err);
                }
            }
        }
        // Settle what finished, record the prefix, then report a failure.
        while let Some(mut first) = open.first_entry() {
            let Some(done) = first.get_mut().done.take() else { break };
            cursor = first.remove_entry().0;
            copied.extend(done);
        }
        if cursor > start || !copied.is_empty() {
            self.record(cursor, copied).await?;
        }
        match failure {
            Some(err) => Err(err),
            None => Ok(cursor),
        }
    }

    /// What copying `entry` involves: `None` when it asks nothing of the
    /// replica (another bucket, an op not replicated).
    fn work_of(&self, entry: &LedgerEntry) -> Option<Work> {
        if !self.rule.covers(&entry.bucket, &entry.key) || entry.version.is_none() {
            return None;
        }
        let copy = match entry.op {
            LedgerOp::VersionWritten | LedgerOp::MarkerWritten => true,
            LedgerOp::RetentionChanged | LedgerOp::HoldPlaced | LedgerOp::HoldReleased => false,
            LedgerOp::VersionPurged if self.rule.replicate_purges => false,
            _ => return None,
        };
        Some(Work { key: entry.key.clone(), copy })
    }

    async fn copy_entry(&self, entry: LedgerEntry, doubt: bool) -> (u64, Result<Option<Replicated>, ReplicaError>) {
        let sequence = entry.sequence;
        (sequence, self.apply(&entry, doubt).await)
    }

    async fn record(&self, through: u64, copied: Vec<Replicated>) -> Result<(), ReplicaError> {
        self.store.record_replication(&self.rule.name, through, copied).await?;
        self.set(|s| s.cursor = through);
        // Durable now: the writers waiting for it may be answered.
        self.cursor.send_if_modified(|c| {
            let moved = through > *c;
            *c = (*c).max(through);
            moved
        });
        Ok(())
    }

    /// The next entries from `from`, at most `READ_AHEAD` and none past `head`.
    async fn read_ledger(&self, from: u64, head: u64) -> Result<Vec<(LedgerEntry, Digest)>, ReplicaError> {
        self.read_range(from, (head - from + 1).min(READ_AHEAD as u64)).await
    }

    /// `count` ledger entries from `from`, read on a blocking thread.
    async fn read_range(&self, from: u64, count: u64) -> Result<Vec<(LedgerEntry, Digest)>, ReplicaError> {
        let store = self.store.clone();
        let take = usize::try_from(count).unwrap_or(usize::MAX);
        let entries =
            tokio::task::spawn_blocking(move || store.ledger_iter(from).take(take).collect::<Result<Vec<_>, _>>())
                .await
                .map_err(|e| StoreError::DataLoss { what: format!("reading the ledger failed: {e}") })??;
        Ok(entries)
    }

    /// Makes the replica hold what `entry` asks (looking a write in doubt up
    /// first); returns the copy it made.
    async fn apply(&self, entry: &LedgerEntry, doubt: bool) -> Result<Option<Replicated>, ReplicaError> {
        if !self.rule.covers(&entry.bucket, &entry.key) {
            return Ok(None);
        }
        let (Ok(bucket), Ok(key), Some(id)) =
            (BucketName::new(&entry.bucket), ObjectKey::new(&entry.key), entry.version)
        else {
            return Ok(None);
        };
        match entry.op {
            LedgerOp::VersionWritten => self.copy_version(entry.sequence, bucket, key, id, doubt).await,
            LedgerOp::MarkerWritten => self.copy_marker(bucket, key, id, doubt).await,
            LedgerOp::RetentionChanged | LedgerOp::HoldPlaced | LedgerOp::HoldReleased => {
                self.sync_lock(&bucket, &key, id).await?;
                Ok(None)
            }
            LedgerOp::VersionPurged if self.rule.replicate_purges => {
                self.copy_purge(&bucket, &key, id).await?;
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    async fn copy_version(
        &self,
        sequence: u64,
        bucket: BucketName,
        key: ObjectKey,
        id: VersionId,
        doubt: bool,
    ) -> Result<Option<Replicated>, ReplicaError> {
        let store = self.store.clone();
        let (b, k) = (bucket.clone(), key.clone());
        let opened = tokio::task::spawn_blocking(move || store.read_version_object(&b, &k, id))
            .await
            .map_err(|e| StoreError::DataLoss { what: format!("reading a version failed: {e}") })?;
        let (info, reader) = match opened {
            Ok(found) => found,
            // Purged since (an expired version of an unversioned bucket):
            // nothing is left to copy.
            Err(StoreError::NoSuchVersion { .. } | StoreError::VersionIsDeleteMarker { .. }) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let wanted = id.to_string();
        if doubt {
            let held = self.target.versions_of(key.as_str()).await?;
            let found = held.into_iter().find(|h| h.metadata.iter().any(|(n, v)| n == META_VERSION && *v == wanted));
            if let Some(found) = found {
                // The copy was made before a crash or a lost answer; its lock
                // may have missed a change made since.
                self.sync_lock_of(key.as_str(), &found.version_id, &info).await?;
                return Ok(Some(Replicated { bucket, key, id, replica_id: found.version_id }));
            }
        }
        let mut metadata = layout::replica_metadata(info.user_metadata.entries());
        metadata.push((META_VERSION.to_owned(), wanted));
        metadata.push((META_SEQUENCE.to_owned(), sequence.to_string()));
        if info.content_type.is_empty() {
            metadata.push((layout::META_CONTENT_TYPE.to_owned(), layout::NO_CONTENT_TYPE.to_owned()));
        }
        if let Some(etag) = &info.etag {
            metadata.push((layout::META_ETAG.to_owned(), etag.clone()));
        }
        let spec = PutSpec {
            size: info.size,
            sha256: info.sha256.0,
            content_type: info.content_type.clone(),
            metadata,
            lock: self.replica_lock(&info),
            legal_hold: !info.legal_holds.is_empty(),
        };
        let body = body_of(reader);
        let put = self.target.put(key.as_str(), body, spec).await;
        let replica_id = put?;
        self.set(|s| {
            s.versions += 1;
            s.bytes += info.size;
            s.recent.add(info.size);
        });
        Ok(Some(Replicated { bucket, key, id, replica_id }))
    }

    async fn copy_marker(
        &self,
        bucket: BucketName,
        key: ObjectKey,
        id: VersionId,
        doubt: bool,
    ) -> Result<Option<Replicated>, ReplicaError> {
        if doubt {
            let held = self.target.versions_of(key.as_str()).await?;
            // A marker has no metadata: one that is the key's newest replica
            // version is this one's copy, or makes another pointless.
            if let Some(newest) = held.into_iter().next().filter(|h| h.is_delete_marker) {
                return Ok(Some(Replicated { bucket, key, id, replica_id: newest.version_id }));
            }
        }
        let marker = self.target.delete_marker(key.as_str()).await;
        let replica_id = marker?;
        Ok(Some(Replicated { bucket, key, id, replica_id }))
    }

    /// Gives the replica version of `id` the source's current lock and hold.
    async fn sync_lock(&self, bucket: &BucketName, key: &ObjectKey, id: VersionId) -> Result<(), ReplicaError> {
        let Some(replica_id) = self.store.replica_version(&self.rule.name, bucket, key, id)? else {
            tracing::warn!(rule = %self.rule.name, %bucket, %key, version = %id, "a lock change of a version the replica does not hold");
            return Ok(());
        };
        let info = match self.store.read_version(bucket, key, id) {
            Ok(info) => info,
            Err(StoreError::NoSuchVersion { .. } | StoreError::VersionIsDeleteMarker { .. }) => return Ok(()),
            Err(err) => return Err(err.into()),
        };
        self.sync_lock_of(key.as_str(), &replica_id, &info).await
    }

    async fn sync_lock_of(&self, key: &str, replica_id: &str, info: &VersionInfo) -> Result<(), ReplicaError> {
        if let Some(lock) = self.replica_lock(info) {
            let set = self.target.set_retention(key, replica_id, lock).await;
            self.kept_by_replica(set, key, "retention")?;
        }
        let hold = self.target.set_legal_hold(key, replica_id, !info.legal_holds.is_empty()).await;
        self.kept_by_replica(hold, key, "legal hold")
    }

    async fn copy_purge(&self, bucket: &BucketName, key: &ObjectKey, id: VersionId) -> Result<(), ReplicaError> {
        let Some(replica_id) = self.store.replica_version(&self.rule.name, bucket, key, id)? else { return Ok(()) };
        let deleted = self.target.delete_version(key.as_str(), &replica_id).await;
        self.kept_by_replica(deleted, key.as_str(), "purge")
    }

    /// A replica that refuses a change keeps what it has (a longer lock, a
    /// version it still protects): replication goes on past it.
    fn kept_by_replica(&self, result: Result<(), TargetError>, key: &str, what: &str) -> Result<(), ReplicaError> {
        match result {
            Ok(()) => Ok(()),
            Err(TargetError::Refused { code, message }) => {
                tracing::info!(rule = %self.rule.name, key, what, code, message, "the replica kept what it holds");
                self.set(|s| s.kept_by_replica += 1);
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The lock a replica version gets: the source's own retention, or the
    /// rule's minimum counted from its creation.
    fn replica_lock(&self, info: &VersionInfo) -> Option<Lock> {
        replica_lock(&self.rule, info)
    }

    /// Whether the next write, in ledger order, is in doubt (and so looked
    /// up first).
    fn take_doubt(&self) -> bool {
        self.in_doubt.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }

    fn lock_checkpoint(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.last_checkpoint.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The newest checkpoint at or before `cursor` whose copy the replica
    /// holds (0 when none): the ledger ranges after it are still to copy.
    async fn newest_checkpoint_held(&self, cursor: u64) -> Result<u64, ReplicaError> {
        let checkpoints = self.store.checkpoints_between(0, cursor)?;
        for checkpoint in checkpoints.iter().rev() {
            let name = layout::checkpoint_key(checkpoint.sequence);
            if !self.target.versions_of(&name).await?.is_empty() {
                return Ok(checkpoint.sequence);
            }
        }
        Ok(0)
    }

    /// Copies every checkpoint signed after the last one copied and at or
    /// before `through`, each after the ledger range it closes.
    async fn copy_checkpoints_through(&self, through: u64) -> Result<(), ReplicaError> {
        let last = self.lock_checkpoint().unwrap_or(0);
        if through <= last {
            return Ok(());
        }
        for checkpoint in self.store.checkpoints_between(last, through)? {
            self.copy_checkpoint(&checkpoint).await?;
        }
        Ok(())
    }

    async fn copy_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), ReplicaError> {
        let first = self.lock_checkpoint().unwrap_or(0) + 1;
        let last = checkpoint.sequence;
        let days = self.rule.evidence_retention;
        let until = Timestamp(checkpoint.time.0.saturating_add(i64::try_from(days.as_micros()).unwrap_or(i64::MAX)));
        let lock = Some(Lock { mode: RetentionMode::Compliance, until });
        if first <= last {
            let entries = self.read_range(first, last - first + 1).await?;
            self.put_evidence(&layout::ledger_key(first, last), layout::encode_range(&entries), lock).await?;
        }
        let file = CheckpointFile::new(checkpoint, &self.public_key);
        let json = serde_json::to_vec_pretty(&file)
            .map_err(|e| StoreError::DataLoss { what: format!("a checkpoint cannot be written as JSON: {e}") })?;
        self.put_evidence(&layout::checkpoint_key(last), json, lock).await?;
        *self.lock_checkpoint() = Some(last);
        self.set(|s| s.checkpoints += 1);
        Ok(())
    }

    /// Writes an evidence object once: its name says what it holds, so one
    /// already there is this one.
    async fn put_evidence(&self, name: &str, bytes: Vec<u8>, lock: Option<Lock>) -> Result<(), ReplicaError> {
        if !self.target.versions_of(name).await?.is_empty() {
            return Ok(());
        }
        let digest = ring_sha256(&bytes);
        let spec = PutSpec {
            size: bytes.len() as u64,
            sha256: digest,
            content_type: "application/octet-stream".to_owned(),
            metadata: Vec::new(),
            lock,
            legal_hold: false,
        };
        let body: Body = Box::pin(futures::stream::once(std::future::ready(Ok(Bytes::from(bytes)))));
        self.target.put(name, body, spec).await?;
        Ok(())
    }

    fn set(&self, change: impl FnOnce(&mut Status)) {
        change(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// What one started ledger entry is waiting on.
struct Open {
    /// The replica key it changes (`None`: it asks nothing of the replica).
    key: Option<String>,
    /// Whether it writes a new replica version (a version or a marker).
    copy: bool,
    /// Its outcome, once done: the copy it made, if any.
    done: Option<Option<Replicated>>,
}

/// What a ledger entry asks of the replica.
struct Work {
    key: String,
    copy: bool,
}

/// How many writes are in doubt after a start or a failure: those the
/// recorded cursor may not cover (`RECORD_EVERY`) and those in flight.
fn doubt_window(rule: &Rule) -> usize {
    RECORD_EVERY + rule.concurrency.max(1)
}

/// The lock a replica version of `info` gets under `rule`: the source's own
/// retention, or the rule's minimum counted from its creation.
pub(crate) fn replica_lock(rule: &Rule, info: &VersionInfo) -> Option<Lock> {
    if let Some(r) = info.retention {
        return Some(Lock { mode: r.mode, until: r.until });
    }
    let (mode, minimum) = rule.minimum_retention?;
    let micros = i64::try_from(minimum.as_micros()).unwrap_or(i64::MAX);
    Some(Lock { mode, until: Timestamp(info.created_at.0.saturating_add(micros)) })
}

/// A version's bytes as a stream, read on a blocking thread a few chunks
/// ahead of the replica; each chunk is checked by the reader as it goes.
fn body_of(reader: wormbox_store::ObjectReader) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel(BODY_AHEAD);
    tokio::task::spawn_blocking(move || {
        for chunk in reader {
            let item = chunk.map(Bytes::from).map_err(std::io::Error::other);
            let failed = item.is_err();
            // The replica stopped reading (a failed write): stop too.
            if tx.blocking_send(item).is_err() || failed {
                break;
            }
        }
    });
    Box::pin(tokio_stream_of(rx))
}

fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn ring_sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}
