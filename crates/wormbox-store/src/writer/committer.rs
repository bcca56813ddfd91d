//! The second half of the writer: commits applied groups, in order, while the
//! first half applies the next group. A lone request that finds this thread
//! idle is committed by the writer's thread with the same code (`commit`):
//! there is nothing to overlap, and the hand-over would cost a wake-up.
//!
//! Invariant: a group is answered only after its batch is durable, and groups
//! are committed in the order they were applied. A group is applied against
//! the groups still in flight before it (`InFlight`), so when a commit fails,
//! every later group of the same epoch was judged on state that never became
//! durable: the committer fails those too, without writing them, and hands
//! the applier the state from before the failed group, from which it carries
//! on in a new epoch. Nothing is acknowledged that is not stored, and the
//! ledger has no gaps. The staged uploads a failed group would have published
//! are discarded here before it is answered: their callers handed them over.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use super::{Answer, WriterState};
use crate::StoreError;
use crate::backend::{Backend, BackendError, Batch, BatchOp, Durability, Keyspace};
use crate::stats::{GROUP_SIZE_BOUNDS, Histogram, SYNC_SECONDS_BOUNDS};

/// A group's batch between its apply and its commit: readable by the groups
/// applied after it, until it is in the backend.
#[derive(Debug)]
pub(super) struct InFlight {
    pub(super) epoch: u64,
    /// Sorted by keyspace and key, each key once (built from the group's
    /// ordered overlay), so lookups are binary searches.
    batch: Batch,
}

impl InFlight {
    pub(super) fn new(epoch: u64, batch: Batch) -> InFlight {
        debug_assert!(
            batch.ops().windows(2).all(|w| op_key(&w[0]) < op_key(&w[1])),
            "an in-flight batch is sorted and holds each key once"
        );
        InFlight { epoch, batch }
    }

    /// `Some(Some(value))` for a put, `Some(None)` for a delete, `None` when
    /// this batch does not touch the key.
    pub(super) fn lookup(&self, space: Keyspace, key: &[u8]) -> Option<Option<&[u8]>> {
        let ops = self.batch.ops();
        let at = ops.binary_search_by(|op| op_key(op).cmp(&(space, key))).ok()?;
        Some(op_value(&ops[at]))
    }

    /// The keys this batch touches in `space` that start with `prefix`.
    pub(super) fn keys_with_prefix<'a>(&'a self, space: Keyspace, prefix: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
        let ops = self.batch.ops();
        let from = ops.partition_point(|op| op_key(op) < (space, prefix));
        ops[from..].iter().map(op_key).take_while(move |(s, k)| *s == space && k.starts_with(prefix)).map(|(_, k)| k)
    }
}

fn op_key(op: &BatchOp) -> (Keyspace, &[u8]) {
    match op {
        BatchOp::Put { space, key, .. } | BatchOp::Delete { space, key } => (*space, key.as_slice()),
    }
}

fn op_value(op: &BatchOp) -> Option<&[u8]> {
    match op {
        BatchOp::Put { value, .. } => Some(value.as_slice()),
        BatchOp::Delete { .. } => None,
    }
}

/// The groups applied but not yet committed, oldest first.
pub(super) type InFlightList = Arc<Mutex<Vec<Arc<InFlight>>>>;

/// One applied group, ready to commit.
pub(super) struct Job {
    /// `None` when the group changed nothing (every command failed or only
    /// read): it is still answered in order, after the groups before it.
    pub(super) batch: Option<Arc<InFlight>>,
    pub(super) epoch: u64,
    pub(super) replies: Vec<Box<dyn Answer>>,
    pub(super) queue_shares: Vec<tokio::sync::OwnedSemaphorePermit>,
    /// The staged uploads its publishes name (upload, chunks).
    pub(super) staged: Vec<(u128, u32)>,
    /// New versions it publishes, and their bytes.
    pub(super) versions: (u64, u64),
    /// The ledger's newest sequence once this group is stored.
    pub(super) ledger_after: u64,
    /// The applier's state before this group: where it resumes if this
    /// group's commit fails.
    pub(super) state_before: WriterState,
}

/// Sent back when a commit failed: the applier resumes from `state` in a
/// new epoch.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) epoch: u64,
    pub(super) state: WriterState,
}

/// Running totals of what was committed, for `Store::commit_stats`, and
/// the newest durable ledger sequence, for followers (`Store::ledger_watch`).
#[derive(Debug)]
pub(crate) struct CommitCounters {
    pub(crate) groups: AtomicU64,
    pub(crate) commands: AtomicU64,
    /// Versions published, and their bytes (from every front door).
    pub(crate) versions: AtomicU64,
    pub(crate) version_bytes: AtomicU64,
    /// Integrity verifications recorded (`Store::record_integrity`).
    pub(crate) integrity_passed: AtomicU64,
    pub(crate) integrity_failed: AtomicU64,
    pub(crate) group_size: Histogram,
    pub(crate) sync_seconds: Histogram,
    pub(crate) queue_wait_seconds: Histogram,
    pub(crate) apply_seconds: Histogram,
    pub(crate) ledger: tokio::sync::watch::Sender<u64>,
}

impl CommitCounters {
    pub(crate) fn new(ledger_sequence: u64) -> CommitCounters {
        CommitCounters {
            groups: AtomicU64::new(0),
            commands: AtomicU64::new(0),
            versions: AtomicU64::new(0),
            version_bytes: AtomicU64::new(0),
            integrity_passed: AtomicU64::new(0),
            integrity_failed: AtomicU64::new(0),
            group_size: Histogram::new(GROUP_SIZE_BOUNDS, 1.0),
            sync_seconds: Histogram::new(SYNC_SECONDS_BOUNDS, 1e9),
            queue_wait_seconds: Histogram::new(SYNC_SECONDS_BOUNDS, 1e9),
            apply_seconds: Histogram::new(SYNC_SECONDS_BOUNDS, 1e9),
            ledger: tokio::sync::watch::Sender::new(ledger_sequence),
        }
    }
}

/// The epoch whose commit failed, and why: its later groups fail too.
type Poisoned = Option<(u64, Arc<BackendError>)>;

/// Commits jobs in order: on its own thread, or on the writer's when that
/// thread is idle (`Committer::idle`). Clones share their state; the two
/// threads never commit at once, since the writer commits only while every
/// job it sent is done, and sends nothing meanwhile.
#[derive(Clone)]
pub(super) struct Committer {
    pub(super) backend: Arc<dyn Backend>,
    pub(super) in_flight: InFlightList,
    pub(super) counters: Arc<CommitCounters>,
    pub(super) failures: Sender<Failure>,
    pub(super) poisoned: Arc<Mutex<Poisoned>>,
    /// Jobs this committer's thread has finished (answered and all).
    pub(super) done: Arc<AtomicU64>,
}

impl Committer {
    pub(super) fn run(self, jobs: Receiver<Job>) {
        while let Ok(job) = jobs.recv() {
            self.commit(job);
            // Last: from here the writer may commit on its own thread.
            self.done.fetch_add(1, Ordering::Release);
        }
        tracing::debug!("store committer stopped");
    }

    /// Whether every one of `sent` jobs handed to the thread is done, so
    /// that it waits for the next and a job may be committed elsewhere.
    pub(super) fn idle(&self, sent: u64) -> bool {
        self.done.load(Ordering::Acquire) == sent
    }

    /// Commits one job and answers its callers.
    pub(super) fn commit(&self, job: Job) {
        let mut poisoned = self.poisoned.lock().unwrap_or_else(|p| p.into_inner());
        let failed = match &*poisoned {
            Some((epoch, err)) if *epoch == job.epoch => Some(Arc::clone(err)),
            _ => None,
        };
        // A group of a failed epoch was judged on state that is not
        // stored: even its refusals may be wrong, so all of it fails.
        let judged_on_lost_state = failed.is_some();
        let result = match (&job.batch, failed) {
            (_, Some(err)) => Err(err),
            (None, None) => Ok(()),
            (Some(in_flight), None) => {
                let started = std::time::Instant::now();
                let committed = self.backend.commit(&in_flight.batch, Durability::Synced);
                self.counters.sync_seconds.observe(started.elapsed().as_secs_f64());
                if committed.is_ok() {
                    self.counters.groups.fetch_add(1, Ordering::Relaxed);
                    self.counters.commands.fetch_add(job.replies.len() as u64, Ordering::Relaxed);
                    self.counters.group_size.observe(job.replies.len() as f64);
                    self.counters.versions.fetch_add(job.versions.0, Ordering::Relaxed);
                    self.counters.version_bytes.fetch_add(job.versions.1, Ordering::Relaxed);
                    // Successful commits come in order: the sequence only
                    // grows. A checkpoint signed with no new entry wakes
                    // followers too: the replicator copies checkpoints.
                    let signed = in_flight
                        .batch
                        .ops()
                        .iter()
                        .any(|op| matches!(op, BatchOp::Put { space: Keyspace::Checkpoints, .. }));
                    self.counters.ledger.send_if_modified(|seen| {
                        let newer = job.ledger_after > *seen;
                        *seen = (*seen).max(job.ledger_after);
                        newer || signed
                    });
                }
                committed.map_err(|err| {
                    tracing::error!(error = &err as &dyn std::error::Error, "group commit failed");
                    let err = Arc::new(err);
                    *poisoned = Some((job.epoch, Arc::clone(&err)));
                    let _ = self.failures.send(Failure { epoch: job.epoch, state: job.state_before.clone() });
                    err
                })
            }
        };
        drop(poisoned);
        // Removed only now: a later group that looked for this batch's
        // keys found them here or, from now on, in the backend.
        if let Some(in_flight) = &job.batch {
            self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).retain(|b| !Arc::ptr_eq(b, in_flight));
        }
        // Nothing of a failed group was published: its staged uploads are
        // still the writer's to discard, and no later command names them.
        if result.is_err() {
            for &(upload, chunks) in &job.staged {
                self.discard_unpublished(upload, chunks);
            }
        }
        // The shares go back after the commit and before the answers: the
        // queue bounds what waits plus what is being written.
        drop(job.queue_shares);
        for answer in job.replies {
            let failure = result
                .as_ref()
                .err()
                .map(|err| StoreError::Backend { operation: "group commit", source: Arc::clone(err) });
            answer.send(failure, judged_on_lost_state);
        }
    }

    /// Discards an upload whose publish failed with its group, if it is still
    /// staged; failing that, the next open discards it.
    fn discard_unpublished(&self, upload: u128, chunks: u32) {
        let res = self.backend.get(Keyspace::Staging, &upload.to_be_bytes()).and_then(|staged| match staged {
            Some(_) => super::discard_upload(&*self.backend, upload, chunks),
            None => Ok(()),
        });
        if let Err(err) = res {
            tracing::warn!(error = &err as &dyn std::error::Error, "discarding an upload whose publish failed");
        }
    }
}
