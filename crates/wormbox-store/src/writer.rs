//! The single writer: group commit of every state change.
//!
//! Invariant: this thread and its committer (`committer.rs`) are the only
//! writers of published state. This thread applies each queued command's
//! rules against stored state plus the pending changes of earlier commands in
//! the same group and of the group still being committed (`Txn`); the
//! committer writes the whole group and its ledger entries in one batch with
//! one WAL sync, while this thread applies the next group, and answers
//! callers only after that sync. A command that fails is rolled back out of
//! the group; a failed commit fails every command of its group and of the
//! groups applied on top of it, and advances nothing.
//!
//! Object Lock, MFA Delete and ownership are judged here, against the state
//! the same batch changes; a refused attempt on protected state leaves a
//! `refused` ledger entry. Time comes from the compliance clock, which this
//! thread alone advances (never back; catching up with a system clock ahead
//! of it at a bounded rate over real running time), and persists with every
//! group that writes, at least every `CLOCK_MARK_EVERY` of compliance time
//! while groups come (the checkpoint timer sends one a minute), and at a
//! clean stop: what is not persisted is lost like downtime, never gained.
//!
//! A staged upload (chunks written before its publish was queued) is the
//! writer's from the moment its publish is queued, since the caller may be
//! gone by then: it is published only when every chunk is there at the
//! length the upload wrote, and a refused or failed publish is discarded
//! here, never by the caller.
//!
//! Each operation is a type in `ops/` (one file per subject) implementing
//! `WriterOp` (`op.rs`, with the guarded trial); this file keeps what every
//! operation shares: the group, the transaction and the refusal plumbing.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, TryRecvError};

use wormbox_model::{BucketName, Clock, ClockEvent, ComplianceClock, Digest, Timestamp, VersionId};

use crate::backend::{Backend, BackendError, Batch, Durability, Keyspace};
use crate::codec::BucketRecord;
use crate::evidence::{self, Checkpoint, Signer};
use crate::ledger::{self, LedgerEntry, LedgerOp};
use crate::view::View;
use crate::{Actor, BucketInfo, StoreError};
use crate::{keys, meta};
pub(crate) use committer::CommitCounters;
use committer::{Committer, InFlight, InFlightList, Job};
pub(crate) use op::{Answer, Guardable, GuardedBy, Pending, Queued, WriterOp};
pub(crate) use ops::bucket::{ConfigureObjectLock, CreateBucket, DeleteBucket, SetVersioning};
pub(crate) use ops::checkpoint::{RecordIntegrity, SignCheckpoint};
pub(crate) use ops::clock::{AcceptClockForward, ReadClock};
pub(crate) use ops::device::UpdateDevices;
pub(crate) use ops::lock::{SetHold, SetRetention};
pub(crate) use ops::object::{DeleteObject, DeleteObjects, DiscardUpload, PutVersion, VersionData};
pub(crate) use ops::principal::{CreatePrincipal, RevokePrincipal, SetS3Key};
pub use ops::replica::Replicated;
pub(crate) use ops::replica::{RecordReplication, ReleaseBytes, check_rule_name};
pub(crate) use ops::witness::RecordWitness;
pub use ops::witness::WitnessOutcome;
pub use ops::witness::check_witness_name;
#[cfg(test)]
pub(crate) use refusals::PER_WINDOW as REFUSALS_PER_WINDOW;
use refusals::RefusalBudget;

mod committer;
mod op;
mod ops;
mod refusals;

/// Most commands in one group commit.
const MAX_GROUP: usize = 1024;
/// Most inline bytes in one group commit; beyond it the group is cut.
const MAX_GROUP_BYTES: usize = 64 << 20;

/// A group that writes nothing else still persists the compliance clock when
/// it moved this far (µs) since the last mark: a restart resumes from the
/// mark, so the time since is lost like downtime.
const CLOCK_MARK_EVERY: i64 = 10_000_000;

/// How the writer signs checkpoints: with `signer`, whenever `every` entries
/// were written since the last one (and on demand).
#[derive(Clone, Debug)]
pub(crate) struct Signing {
    pub(crate) signer: Arc<dyn Signer>,
    pub(crate) every: u64,
}

/// One queued operation: `op` is a `Pending` of some `WriterOp`.
pub(crate) struct Request {
    pub(crate) actor: Actor,
    pub(crate) op: Box<dyn Queued>,
    /// Its share of the write queue; the writer returns it after the group
    /// commits. `None` only for the discard of an abandoned upload, which
    /// frees room rather than taking it and is sent from a `drop`.
    pub(crate) queued: Option<tokio::sync::OwnedSemaphorePermit>,
    /// When it was handed to the writer (for the queue-wait histogram).
    pub(crate) sent_at: std::time::Instant,
}

/// What the writer carries from one group to the next.
#[derive(Clone, Debug)]
pub(crate) struct WriterState {
    pub(crate) last_time: Timestamp,
    pub(crate) last_sequence: u64,
    pub(crate) ledger_sequence: u64,
    pub(crate) ledger_head: Digest,
    /// The time retention is judged by (rate-limited, never backwards); it
    /// also knows whether the current forward jump is already in the ledger.
    pub(crate) compliance: ComplianceClock,
    /// The sequence of the newest signed checkpoint.
    pub(crate) last_checkpoint: Option<u64>,
    /// The right edge of the ledger's Merkle tree, `ledger_sequence` leaves.
    pub(crate) tree: crate::merkle::Frontier,
}

pub(crate) fn run(
    backend: Arc<dyn Backend>,
    clock: Arc<dyn Clock>,
    signing: Option<Signing>,
    mut state: WriterState,
    rx: Receiver<Request>,
    counters: Arc<CommitCounters>,
    recent: crate::tree::RecentHashes,
) {
    let in_flight: InFlightList = Arc::default();
    let (failures_tx, failures) = mpsc::channel();
    // A rendezvous: at most one group is committed while the next is applied.
    let (jobs, jobs_rx) = mpsc::sync_channel::<Job>(0);
    let committer = Committer {
        backend: Arc::clone(&backend),
        in_flight: Arc::clone(&in_flight),
        counters: Arc::clone(&counters),
        failures: failures_tx,
        poisoned: Arc::default(),
        done: Arc::default(),
    };
    // The writer's own handle, for a lone request the committer's thread
    // is idle for; and how many jobs that thread was sent.
    let inline = committer.clone();
    let mut sent = 0u64;
    let committer =
        match std::thread::Builder::new().name("wormbox-commit".to_owned()).spawn(move || committer.run(jobs_rx)) {
            Ok(thread) => thread,
            Err(err) => {
                // Callers see `WriterStopped` when their replies are dropped.
                tracing::error!(error = &err as &dyn std::error::Error, "cannot start the store committer");
                return;
            }
        };
    let refusals = std::cell::RefCell::new(RefusalBudget::default());
    let recent_hashes = std::cell::RefCell::new(recent);
    let mut epoch = 0u64;
    let last_state = loop {
        let Ok(first) = rx.recv() else { break Some(state) };
        let applying = std::time::Instant::now();
        counters.queue_wait_seconds.observe(first.sent_at.elapsed().as_secs_f64());
        resume_after_failures(&failures, &mut state, &mut epoch);
        let layers = layers_of(&in_flight, epoch);
        let txn = Txn::new(
            backend.as_ref(),
            clock.as_ref(),
            signing.as_ref(),
            state.clone(),
            layers,
            &refusals,
            &recent_hashes,
        );
        let mut group = Group::new(txn);
        group.apply(first);
        // What queued meanwhile joins this group. While the committer syncs
        // the group before, requests queue up and become the next group, so
        // groups grow with the disk's sync time.
        while !group.is_full() {
            match rx.try_recv() {
                Ok(request) => {
                    counters.queue_wait_seconds.observe(request.sent_at.elapsed().as_secs_f64());
                    group.apply(request);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let (job, new_state) = group.finish(epoch, state);
        counters.apply_seconds.observe(applying.elapsed().as_secs_f64());
        if let Some(batch) = &job.batch {
            in_flight.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::clone(batch));
        }
        // A lone request with the committer's thread idle (one client, or a
        // quiet moment) is committed here: handing it over would cost a
        // thread wake-up and overlap nothing, since nothing else waits.
        // A group of more goes to the committer, so that the next group is
        // applied while it syncs.
        if job.replies.len() <= 1 && inline.idle(sent) {
            inline.commit(job);
        } else {
            if jobs.send(job).is_err() {
                tracing::error!("the store committer stopped; the writer stops");
                break None;
            }
            sent += 1;
        }
        state = new_state;
    };
    // A clean stop persists the compliance clock's last reading, so the next
    // start is behind the system clock by the downtime alone.
    if let Some(mut state) = last_state {
        resume_after_failures(&failures, &mut state, &mut epoch);
        let layers = layers_of(&in_flight, epoch);
        let mut txn =
            Txn::new(backend.as_ref(), clock.as_ref(), None, state.clone(), layers, &refusals, &recent_hashes);
        txn.tick();
        // Refusals counted in windows still open are written now, not lost.
        txn.close_refusal_windows_at_stop();
        if txn.clock_moved || !txn.is_empty() {
            let (batch, after) = txn.into_batch();
            let txn_ledger = after.ledger_sequence;
            let batch = Arc::new(InFlight::new(epoch, batch));
            in_flight.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::clone(&batch));
            let job = Job {
                batch: Some(batch),
                epoch,
                replies: Vec::new(),
                queue_shares: Vec::new(),
                staged: Vec::new(),
                versions: (0, 0),
                ledger_after: txn_ledger,
                state_before: state,
            };
            let _ = jobs.send(job);
        }
    }
    drop(jobs);
    let _ = committer.join();
    tracing::debug!("store writer stopped");
}

/// A failed commit took its epoch's later groups with it: carry on from the
/// state before it, in a new epoch.
fn resume_after_failures(failures: &Receiver<committer::Failure>, state: &mut WriterState, epoch: &mut u64) {
    while let Ok(failure) = failures.try_recv() {
        if failure.epoch == *epoch {
            *state = failure.state;
            *epoch += 1;
        }
    }
}

/// The groups of `epoch` still being committed, oldest first.
fn layers_of(in_flight: &InFlightList, epoch: u64) -> Vec<Arc<InFlight>> {
    in_flight.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|b| b.epoch == epoch).cloned().collect()
}

/// One group being applied.
struct Group<'a> {
    txn: Txn<'a>,
    replies: Vec<Box<dyn Answer>>,
    queue_shares: Vec<tokio::sync::OwnedSemaphorePermit>,
    bytes: usize,
    /// The staged uploads its publishes name (upload, chunks): the committer
    /// discards them if the group's commit fails.
    staged: Vec<(u128, u32)>,
    /// New versions it publishes, and their bytes.
    versions: (u64, u64),
}

impl<'a> Group<'a> {
    fn new(mut txn: Txn<'a>) -> Group<'a> {
        txn.note_clock_jump();
        txn.close_refusal_windows();
        Group { txn, replies: Vec::new(), queue_shares: Vec::new(), bytes: 0, staged: Vec::new(), versions: (0, 0) }
    }

    fn is_full(&self) -> bool {
        self.replies.len() >= MAX_GROUP || self.bytes >= MAX_GROUP_BYTES
    }

    /// Applies one operation; one that fails is rolled back out of the group.
    fn apply(&mut self, request: Request) {
        let Request { actor, op, queued, .. } = request;
        self.bytes += op.weight();
        self.queue_shares.extend(queued);
        let txn = &mut self.txn;
        let savepoint = txn.savepoint();
        let attempt = op.refusal();
        let staged = op.staged();
        let version = op.new_version_bytes();
        let answer = op.run(txn, &actor);
        if answer.error().is_none()
            && let Some(bytes) = version
        {
            self.versions = (self.versions.0 + 1, self.versions.1 + bytes);
        }
        if let Some(err) = answer.error() {
            txn.rollback(savepoint);
            txn.note_refusal(&actor, attempt, err);
            // The caller handed its chunks over with the publish and may be
            // gone: a refused publish is discarded here, in this group's commit.
            if let Some((upload, chunks)) = staged {
                txn.discard_staged(upload, chunks);
            }
        }
        self.staged.extend(staged);
        self.replies.push(answer);
    }

    /// The group as a job for the committer, and the state after it.
    fn finish(mut self, epoch: u64, state_before: WriterState) -> (Job, WriterState) {
        // Periodic checkpoints ride in the batch they cover.
        if let Some(signing) = self.txn.signing {
            let since = self.txn.state.ledger_sequence - self.txn.state.last_checkpoint.unwrap_or(0);
            if since >= signing.every.max(1) {
                self.txn.checkpoint();
            }
        }
        // An otherwise empty group still persists a clock that moved far.
        let mark_due = self.txn.clock_moved
            && self.txn.state.last_time.0.saturating_sub(state_before.last_time.0) >= CLOCK_MARK_EVERY;
        let (batch, new_state) = if self.txn.is_empty() && !mark_due {
            (None, state_before.clone())
        } else {
            let (batch, new_state) = self.txn.into_batch();
            (Some(Arc::new(InFlight::new(epoch, batch))), new_state)
        };
        let job = Job {
            batch,
            epoch,
            replies: self.replies,
            queue_shares: self.queue_shares,
            staged: self.staged,
            versions: self.versions,
            ledger_after: new_state.ledger_sequence,
            state_before,
        };
        (job, new_state)
    }
}

/// The keys of a staged upload: its chunks, then its staging marker.
fn staged_keys(upload: u128, chunks: u32) -> impl Iterator<Item = (Keyspace, Vec<u8>)> {
    (0..chunks)
        .map(move |index| (Keyspace::Chunks, keys::chunk_key(upload, index)))
        .chain(std::iter::once((Keyspace::Staging, upload.to_be_bytes().to_vec())))
}

/// Deletes a staged upload outside any group: by the committer after the
/// publish's commit failed.
pub(crate) fn discard_upload(backend: &dyn Backend, upload: u128, chunks: u32) -> Result<(), BackendError> {
    let mut batch = Batch::new();
    for (space, key) in staged_keys(upload, chunks) {
        batch.delete(space, key);
    }
    backend.commit(&batch, Durability::Buffered)
}

/// What a request counts against the write queue, at least: keys, metadata,
/// the reply and the group's per-command state.
pub(crate) const REQUEST_FLOOR: usize = 1024;

/// A request's share of the write queue: its weight, at least the floor.
pub(crate) fn queue_cost(op: &impl WriterOp) -> usize {
    op.weight().max(REQUEST_FLOOR)
}

type SpaceKey = (Keyspace, Vec<u8>);

/// Pending changes of one group, layered over the groups still being
/// committed and then the backend.
pub(crate) struct Txn<'a> {
    backend: &'a dyn Backend,
    clock: &'a dyn Clock,
    signing: Option<&'a Signing>,
    /// Groups applied before this one and not yet known to be in the
    /// backend, oldest first.
    layers: Vec<Arc<InFlight>>,
    /// The last bucket record read, as the group sees it; dropped whenever
    /// the group changes a bucket or rolls back.
    bucket_cache: std::cell::RefCell<Option<(BucketName, BucketRecord)>>,
    overlay: BTreeMap<SpaceKey, Option<Vec<u8>>>,
    undo: Vec<(SpaceKey, Option<Option<Vec<u8>>>)>,
    state: WriterState,
    clock_moved: bool,
    refusals: &'a std::cell::RefCell<RefusalBudget>,
    /// The hashes recorded last at each tile level, for the tiles they complete.
    recent_hashes: &'a std::cell::RefCell<crate::tree::RecentHashes>,
    /// Set while a guarded command is judged as a trial, which is rolled
    /// back: its refusals must not spend the principal's budget.
    trial: bool,
    /// The refusals a trial recorded (and rolled back), for `guarded` to
    /// write when a refused code ends the request.
    trial_refusals: Vec<(LedgerOp, EntryFields)>,
}

/// The value as this group sees it: its own changes, then the groups
/// before it that are still being committed (newest first), then the backend.
impl View for Txn<'_> {
    fn get(&self, space: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(pending) = self.overlay.get(&(space, key.to_vec())) {
            return Ok(pending.clone());
        }
        if let Some(pending) = self.layers.iter().rev().find_map(|layer| layer.lookup(space, key)) {
            return Ok(pending.map(<[u8]>::to_vec));
        }
        View::get(self.backend, space, key)
    }
}

struct Savepoint {
    undo_len: usize,
    state: WriterState,
    clock_moved: bool,
}

impl<'a> Txn<'a> {
    fn new(
        backend: &'a dyn Backend,
        clock: &'a dyn Clock,
        signing: Option<&'a Signing>,
        state: WriterState,
        layers: Vec<Arc<InFlight>>,
        refusals: &'a std::cell::RefCell<RefusalBudget>,
        recent_hashes: &'a std::cell::RefCell<crate::tree::RecentHashes>,
    ) -> Txn<'a> {
        Txn {
            backend,
            clock,
            signing,
            layers,
            bucket_cache: std::cell::RefCell::new(None),
            overlay: BTreeMap::new(),
            undo: Vec::new(),
            state,
            clock_moved: false,
            refusals,
            recent_hashes,
            trial: false,
            trial_refusals: Vec::new(),
        }
    }

    /// Signs a checkpoint of the head as it stands in this group, or returns
    /// the one already signed at this sequence.
    fn checkpoint(&mut self) -> Option<Checkpoint> {
        let signing = self.signing?;
        let sequence = self.state.ledger_sequence;
        if self.state.last_checkpoint == Some(sequence)
            && let Ok(Some(raw)) = self.get(Keyspace::Checkpoints, &evidence::checkpoint_key(sequence))
            && let Ok(existing) = Checkpoint::decode(&raw)
        {
            return Some(existing);
        }
        let time = self.tick();
        debug_assert_eq!(self.state.tree.size(), sequence);
        let checkpoint =
            Checkpoint::sign(signing.signer.as_ref(), sequence, self.state.ledger_head, time, self.state.tree.root());
        self.put(Keyspace::Checkpoints, evidence::checkpoint_key(sequence).to_vec(), checkpoint.encode());
        let (key, value) = meta::last_checkpoint_entry(sequence);
        self.put(Keyspace::Meta, key, value);
        self.state.last_checkpoint = Some(sequence);
        Some(checkpoint)
    }

    fn savepoint(&self) -> Savepoint {
        Savepoint { undo_len: self.undo.len(), state: self.state.clone(), clock_moved: self.clock_moved }
    }

    fn rollback(&mut self, savepoint: Savepoint) {
        self.bucket_cache.get_mut().take();
        while self.undo.len() > savepoint.undo_len {
            let Some((space_key, previous)) = self.undo.pop() else { break };
            match previous {
                Some(value) => self.overlay.insert(space_key, value),
                None => self.overlay.remove(&space_key),
            };
        }
        self.state = savepoint.state;
        self.clock_moved = savepoint.clock_moved;
    }

    fn is_empty(&self) -> bool {
        self.overlay.is_empty()
    }

    /// The group's changes in key order, each key once (later groups look
    /// keys up in it while it is committed), and the state after it.
    fn into_batch(mut self) -> (Batch, WriterState) {
        if self.clock_moved {
            let (key, clock) = meta::clock_entry(self.state.last_time, self.state.last_sequence);
            self.overlay.insert((Keyspace::Meta, key), Some(clock));
        }
        let (key, head) = meta::ledger_head_entry(self.state.ledger_sequence, &self.state.ledger_head);
        self.overlay.insert((Keyspace::Meta, key), Some(head));
        let (key, frontier) = meta::merkle_frontier_entry(&self.state.tree);
        self.overlay.insert((Keyspace::Meta, key), Some(frontier));
        let mut batch = Batch::new();
        for ((space, key), value) in self.overlay {
            match value {
                Some(value) => batch.put(space, key, value),
                None => batch.delete(space, key),
            }
        }
        (batch, self.state)
    }

    fn set(&mut self, space: Keyspace, key: Vec<u8>, value: Option<Vec<u8>>) {
        if space == Keyspace::Buckets {
            self.bucket_cache.get_mut().take();
        }
        let space_key = (space, key);
        let previous = self.overlay.insert(space_key.clone(), value);
        self.undo.push((space_key, previous));
    }

    fn put(&mut self, space: Keyspace, key: Vec<u8>, value: Vec<u8>) {
        self.set(space, key, Some(value));
    }

    fn delete(&mut self, space: Keyspace, key: Vec<u8>) {
        self.set(space, key, None);
    }

    /// Discards a staged upload whose publish this group refused (or whose
    /// caller abandoned it before publishing), unless it is no longer staged: then it was published or discarded already, and
    /// its chunks are not this command's to delete.
    fn discard_staged(&mut self, upload: u128, chunks: u32) {
        match self.get(Keyspace::Staging, &upload.to_be_bytes()) {
            Ok(Some(_)) => {
                for (space, key) in staged_keys(upload, chunks) {
                    self.delete(space, key);
                }
            }
            Ok(None) => {}
            // Left staged, the upload is discarded at the next open.
            Err(err) => {
                tracing::warn!(error = &err as &dyn std::error::Error, "cannot discard a refused upload");
            }
        }
    }

    /// Returns whether any live key starts with `prefix`, counting pending changes.
    fn any_with_prefix(&self, space: Keyspace, prefix: &[u8]) -> Result<bool, StoreError> {
        let pending_live = self
            .overlay
            .range((Bound::Included((space, prefix.to_vec())), Bound::Unbounded))
            .take_while(|((s, k), _)| *s == space && k.starts_with(prefix))
            .any(|(_, value)| value.is_some());
        if pending_live {
            return Ok(true);
        }
        // A key an in-flight group touched is live as the newest layer says.
        for layer in &self.layers {
            for key in layer.keys_with_prefix(space, prefix) {
                if self.get(space, key)?.is_some() {
                    return Ok(true);
                }
            }
        }
        for entry in self.backend.scan(space, prefix, prefix) {
            let (key, _) = entry.map_err(|e| StoreError::backend("scan", e))?;
            let shadowed = self.overlay.contains_key(&(space, key.clone()))
                || self.layers.iter().any(|layer| layer.lookup(space, &key).is_some());
            if !shadowed {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Returns the compliance-clock time: never earlier than any time issued before.
    fn tick(&mut self) -> Timestamp {
        let now = self.state.compliance.observe(self.clock.now(), self.clock.monotonic());
        if now > self.state.last_time {
            self.state.last_time = now;
            self.state.last_sequence = 0;
            self.clock_moved = true;
        }
        self.state.last_time
    }

    /// A forward jump of the system clock beyond the policy's `report_after`
    /// is not followed at once but caught up at the bounded rate; the first
    /// group that sees it records it, once per jump, and the one that sees
    /// the gap closed records that.
    fn note_clock_jump(&mut self) {
        let (system, mono) = (self.clock.now(), self.clock.monotonic());
        self.tick();
        let compliance = self.state.compliance.current();
        let (detail, op) = match self.state.compliance.report(system, mono) {
            None => return,
            Some(ClockEvent::HeldBack(ahead)) => {
                let per_year = self.state.compliance.policy().catch_up_per_year;
                let until = self.state.compliance.caught_up_at(system);
                tracing::warn!(
                    ahead_secs = ahead.as_secs(),
                    catch_up_secs_per_year = per_year.as_secs(),
                    caught_up_at = until.map(Timestamp::to_rfc3339),
                    "the system clock jumped ahead of the compliance clock; caught up at the bounded rate, or at once by an admin's accept-forward"
                );
                let until = until.map_or_else(|| "never on its own".to_owned(), |t| format!("by {}", t.to_rfc3339()));
                let detail = format!(
                    "system clock {} is {} s ahead of the compliance clock {}; held back, catching up at {} s per year ({until})",
                    system.to_rfc3339(),
                    ahead.as_secs(),
                    compliance.to_rfc3339(),
                    per_year.as_secs(),
                );
                (detail, LedgerOp::ClockHeldBack)
            }
            Some(ClockEvent::CaughtUp) => {
                tracing::info!("the compliance clock caught up with the system clock");
                let detail = format!("compliance clock {} caught up with the system clock", compliance.to_rfc3339());
                (detail, LedgerOp::ClockCaughtUp)
            }
        };
        self.record(&Actor::system(), op, EntryFields { detail, ..EntryFields::default() });
    }

    /// Returns a version id greater than every id issued before.
    fn new_version_id(&mut self) -> VersionId {
        let time = self.tick();
        let micros = u64::try_from(time.0).unwrap_or(0);
        let id = VersionId::from_parts(micros, self.state.last_sequence);
        self.state.last_sequence += 1;
        self.clock_moved = true;
        id
    }

    /// Accounts for an operation that failed with `err`, after its
    /// rollback. A refused attempt on protected state is itself evidence
    /// (`attempt`, or what the error says of a refused write); a caller who
    /// may not attempt it at all is a diagnostic only, so that no principal
    /// can grow the ledger by asking.
    fn note_refusal(&mut self, actor: &Actor, attempt: Option<EntryFields>, err: &StoreError) {
        if let StoreError::AccessDenied(_) = err {
            let now = self.tick();
            self.refusals.borrow_mut().denied(&actor.access_key, now, err);
        } else if let Some(mut fields) = attempt.or_else(|| refused_write(err)).filter(|_| is_refusal(err)) {
            fields.detail = format!("{}: {err}", fields.detail);
            self.record_refusal(actor, LedgerOp::Refused, fields);
        }
    }

    /// Records a refused attempt (`refused`, `mfa-refused`) within its
    /// principal's budget (`refusals.rs`); returns its sequence, or `None`
    /// when it was counted instead.
    fn record_refusal(&mut self, actor: &Actor, op: LedgerOp, fields: EntryFields) -> Option<u64> {
        if self.trial {
            self.trial_refusals.push((op, fields.clone()));
        }
        let now = self.tick();
        let admitted = self.trial || self.refusals.borrow_mut().admit(&actor.access_key, now);
        admitted.then(|| self.record(actor, op, fields))
    }

    /// Writes the count of every finished refusal window's attempts that
    /// were not itemised.
    fn close_refusal_windows(&mut self) {
        if self.refusals.borrow().is_empty() {
            return;
        }
        let now = self.tick();
        let tallies = self.refusals.borrow_mut().close(now);
        for tally in tallies {
            let fields = EntryFields { detail: tally.detail(), ..EntryFields::default() };
            self.record_as(tally.principal, LedgerOp::Refused, fields);
        }
    }

    /// At a clean stop: writes the counts of every window, over or not.
    fn close_refusal_windows_at_stop(&mut self) {
        let now = self.tick();
        let tallies = self.refusals.borrow_mut().close_all(now);
        for tally in tallies {
            let fields = EntryFields { detail: tally.detail(), ..EntryFields::default() };
            self.record_as(tally.principal, LedgerOp::Refused, fields);
        }
    }

    fn record(&mut self, actor: &Actor, op: LedgerOp, fields: EntryFields) -> u64 {
        self.record_as(actor.access_key.clone(), op, fields)
    }

    fn record_as(&mut self, principal: String, op: LedgerOp, fields: EntryFields) -> u64 {
        let sequence = self.state.ledger_sequence + 1;
        let entry = LedgerEntry {
            format: ledger::EntryFormat::CURRENT,
            sequence,
            time: self.tick(),
            op,
            principal,
            bucket: fields.bucket,
            key: fields.key,
            version: fields.version,
            sha256: fields.sha256,
            record_sha256: fields.record_sha256,
            lock_sha256: fields.lock_sha256,
            detail: fields.detail,
        };
        let mut stored = entry.canonical();
        let hash = ledger::chain_hash_over(&self.state.ledger_head, &stored);
        // The subtrees this entry completes, from `merkle::STORED_HEIGHT`
        // up, are stored with it (at most one per height, rarely any), and
        // so is every tile it completes (one in 256 entries, more rarely two).
        let mut nodes = Vec::new();
        let leaf = crate::merkle::leaf_hash(&stored);
        self.state.tree.push(leaf, |height, index, root| {
            if height >= crate::merkle::STORED_HEIGHT {
                nodes.push((height, index, *root));
            }
        });
        let mut recent = self.recent_hashes.borrow_mut();
        recent.record(0, sequence - 1, &leaf);
        nodes.iter().for_each(|(height, index, root)| recent.record(*height, *index, root));
        drop(recent);
        for (height, index, root) in &nodes {
            let (key, value) = meta::merkle_node_entry(*height, *index, root);
            self.put(Keyspace::Meta, key, value);
        }
        stored.extend_from_slice(&hash.0);
        self.put(Keyspace::Ledger, ledger::ledger_key(sequence).to_vec(), stored);
        self.state.ledger_sequence = sequence;
        self.state.ledger_head = hash;
        for (height, index, root) in
            nodes.iter().filter(|(height, ..)| height.is_multiple_of(crate::tiles::TILE_HEIGHT))
        {
            let tile = (u8::try_from(height / crate::tiles::TILE_HEIGHT - 1).expect("heights below 64"), *index);
            let recent = self.recent_hashes;
            let hashes = crate::tree::completed_tile(self, &recent.borrow(), tile, root);
            match hashes {
                Ok(hashes) => {
                    let (key, value) = meta::merkle_tile_entry(tile.0, tile.1, &hashes);
                    self.put(Keyspace::Meta, key, value);
                }
                Err(why) => tracing::error!(
                    level = tile.0,
                    index = tile.1,
                    why,
                    "a tile of the ledger's Merkle tree is not stored; run `wormbox verify`"
                ),
            }
        }
        sequence
    }

    fn bucket(&self, bucket: &BucketName) -> Result<BucketRecord, StoreError> {
        if let Some((name, record)) = &*self.bucket_cache.borrow()
            && name == bucket
        {
            return Ok(record.clone());
        }
        let raw = self
            .get(Keyspace::Buckets, bucket.as_str().as_bytes())?
            .ok_or_else(|| StoreError::NoSuchBucket { bucket: bucket.to_string() })?;
        let record = BucketRecord::decode(&raw)?;
        *self.bucket_cache.borrow_mut() = Some((bucket.clone(), record.clone()));
        Ok(record)
    }
}

#[derive(Clone, Default)]
pub(crate) struct EntryFields {
    bucket: String,
    key: String,
    version: Option<VersionId>,
    sha256: Option<Digest>,
    /// The SHA-256 of the version record written (`evidence::sha256` of its stored bytes).
    record_sha256: Option<Digest>,
    /// The SHA-256 of the lock record written.
    lock_sha256: Option<Digest>,
    detail: String,
}

impl EntryFields {
    /// An entry about `key` of `bucket` (empty for the bucket itself).
    fn about(bucket: &BucketName, key: &str, detail: &str) -> EntryFields {
        EntryFields {
            bucket: bucket.to_string(),
            key: key.to_owned(),
            detail: detail.to_owned(),
            ..EntryFields::default()
        }
    }
}

pub(crate) fn bucket_info(name: BucketName, record: &BucketRecord) -> BucketInfo {
    BucketInfo {
        name,
        owner: record.owner.clone(),
        versioning: record.versioning,
        created_at: record.created_at,
        mfa_delete: record.mfa_delete,
        object_lock: record.object_lock,
        default_retention: record.default_retention,
    }
}

/// Errors of the store rather than of one request's entry: a multi-object
/// delete stops at them.
fn fails_the_store(err: &StoreError) -> bool {
    matches!(
        err,
        StoreError::Backend { .. }
            | StoreError::WriterStopped
            | StoreError::FormatTooNew { .. }
            | StoreError::FormatTooOld { .. }
    )
}

/// Errors that refuse an attempt on protected state (recorded in the ledger).
fn is_refusal(err: &StoreError) -> bool {
    matches!(
        err,
        StoreError::ObjectLocked { .. }
            | StoreError::LegalHold { .. }
            | StoreError::RetentionShortenDenied(_)
            | StoreError::VersioningLocked { .. }
            | StoreError::SuspendedWithMfaDelete { .. }
            | StoreError::MfaRequired { .. }
            | StoreError::NeedsAdminCode { .. }
            | StoreError::NullVersionNeedsMfa { .. }
            | StoreError::BucketNotEmpty { .. }
    )
}

/// What a refused write's ledger entry says, from its error: writes are the
/// hot path, so they build no entry up front, and only this refusal of them
/// is recorded.
fn refused_write(err: &StoreError) -> Option<EntryFields> {
    match err {
        StoreError::NullVersionNeedsMfa { bucket, key } => Some(EntryFields {
            bucket: bucket.clone(),
            key: key.clone(),
            detail: "replacement of the null version".to_owned(),
            ..EntryFields::default()
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use wormbox_model::{ClockPolicy, ManualClock, ObjectKey, VersioningState};

    use super::*;
    use crate::backend::MemBackend;
    use crate::ledger::GENESIS;
    use crate::{NewObject, VersioningChange};

    fn fresh_state(clock: &dyn Clock) -> WriterState {
        WriterState {
            last_time: Timestamp::EPOCH,
            last_sequence: 0,
            ledger_sequence: 0,
            ledger_head: GENESIS,
            compliance: ComplianceClock::resume(None, clock.now(), clock.monotonic(), ClockPolicy::default()),
            last_checkpoint: None,
            tree: crate::merkle::Frontier::default(),
        }
    }

    fn put(bucket: &BucketName, body: &[u8]) -> PutVersion {
        let digest = ring::digest::digest(&ring::digest::SHA256, body);
        PutVersion {
            bucket: bucket.clone(),
            key: ObjectKey::new("k").unwrap(),
            object: NewObject::default(),
            sha256: Digest::from_slice(digest.as_ref()).unwrap(),
            size: body.len() as u64,
            data: VersionData::Inline(body.to_vec()),
        }
    }

    fn versioning(bucket: &BucketName, state: VersioningState) -> SetVersioning {
        SetVersioning {
            bucket: bucket.clone(),
            change: VersioningChange { state: Some(state), ..VersioningChange::default() },
        }
    }

    /// Operations of one group see each other's bucket changes, although the
    /// group keeps the bucket record it last read.
    #[test]
    fn a_command_sees_a_bucket_change_made_before_it_in_the_same_group() {
        let backend = MemBackend::new();
        let clock = ManualClock::new(Timestamp(1_795_737_600_000_000));
        let actor = Actor::system();
        let bucket = BucketName::new("bucket").unwrap();
        let (refusals, recent_hashes) = (std::cell::RefCell::default(), std::cell::RefCell::default());
        let mut txn = Txn::new(&backend, &clock, None, fresh_state(&clock), Vec::new(), &refusals, &recent_hashes);
        CreateBucket { bucket: bucket.clone(), object_lock: false }.apply(&mut txn, &actor).unwrap();
        versioning(&bucket, VersioningState::Enabled).apply(&mut txn, &actor).unwrap();
        let versioned = put(&bucket, b"a").apply(&mut txn, &actor).unwrap();
        assert_ne!(versioned.version_id, "null");
        versioning(&bucket, VersioningState::Suspended).apply(&mut txn, &actor).unwrap();
        let null = put(&bucket, b"b").apply(&mut txn, &actor).unwrap();
        assert_eq!(null.version_id, "null", "the put after the suspension in its group wrote a null version");
    }
}
