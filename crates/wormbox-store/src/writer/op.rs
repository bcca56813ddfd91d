//! The writer's protocol: each operation is a type implementing `WriterOp`,
//! with its own typed reply, so a new operation is one new type in its
//! subject's file under `ops/` and its caller awaits exactly what it returns.
//!
//! Invariant: the writer sees every operation through `Queued` only, and
//! answers it through `Answer` only after its group's commit: a reply is
//! sent once, with the operation's own result when the commit succeeded and
//! an error when it did not, so no caller is ever told of a change that is
//! not stored. An operation that a code may guard (`Guardable`) is judged as
//! a trial before the code is (`guarded`, DESIGN.md invariant 9).

use tokio::sync::oneshot;

use super::ops::device::run_device_update;
use super::{EntryFields, Txn};
use crate::{Actor, CodeCheck, Guarded, StoreError};

/// One operation of the writer, applied to its group's transaction.
pub(crate) trait WriterOp: Send + 'static {
    /// What the caller is answered once the group is durable.
    type Output: Send + 'static;

    /// Checks the operation's rules against `txn` and writes its changes and
    /// ledger entries there; on an error the caller rolls `txn` back.
    fn apply(self, txn: &mut Txn<'_>, actor: &Actor) -> Result<Self::Output, StoreError>;

    /// What it weighs in the write queue and in a group beyond the request
    /// floor: the bytes it carries inline.
    fn weight(&self) -> usize {
        0
    }

    /// The staged upload it would publish, as (upload, chunks): the writer's
    /// to discard if the publish is refused or its commit fails.
    fn staged(&self) -> Option<(u128, u32)> {
        None
    }

    /// The size of the new version it publishes, if it publishes one
    /// (counted once its group is durable: `Store::commit_stats`).
    fn new_version_bytes(&self) -> Option<u64> {
        None
    }

    /// What the ledger says of a refused attempt, for an operation on
    /// protected state; `None` when a refusal of it is not evidence.
    fn refusal(&self) -> Option<EntryFields> {
        None
    }
}

/// An operation an MFA code may guard.
pub(crate) trait Guardable: WriterOp + Clone {
    /// The operation as it runs with no code, for one that may not need it
    /// (an extension of retention, a delete on a bucket without MFA Delete).
    fn without_code(&self) -> Option<Self> {
        None
    }

    /// Whether, judged as if its code were good, it would run nothing that
    /// needs the code: then it runs as judged and the code is neither judged
    /// nor spent.
    fn spends_no_code(_judged: &Self::Output) -> bool {
        false
    }
}

/// `op` guarded by `code`; answers `Guarded::CodeRefused` with the
/// authority's verdict when the code is refused.
pub(crate) struct GuardedBy<Op, V> {
    pub(crate) op: Op,
    pub(crate) code: CodeCheck<V>,
}

impl<Op: Guardable, V: Send + 'static> WriterOp for GuardedBy<Op, V> {
    type Output = Guarded<Op::Output, V>;

    fn apply(self, txn: &mut Txn<'_>, actor: &Actor) -> Result<Self::Output, StoreError> {
        guarded(txn, actor, self.op, self.code)
    }

    fn weight(&self) -> usize {
        self.op.weight()
    }

    fn staged(&self) -> Option<(u128, u32)> {
        self.op.staged()
    }

    fn refusal(&self) -> Option<EntryFields> {
        self.op.refusal()
    }
}

/// Runs `op` guarded by `code`, in the order DESIGN.md's invariant 9 asks
/// for. The operation is judged first, as if the code were good (it names
/// `code.serial`): a refusal of the role, the ownership, a lock or a hold
/// spends no code, charges no device a failure and is ledgered as any
/// refusal. Only then does the authority judge the code, and the operation
/// runs only if it accepted, in the same atomic write that spends the code:
/// nothing can change between the judgement and the run.
fn guarded<Op: Guardable, V>(
    txn: &mut Txn<'_>,
    actor: &Actor,
    op: Op,
    code: CodeCheck<V>,
) -> Result<Guarded<Op::Output, V>, StoreError> {
    txn.trial_refusals.clear();
    let judged = judge(txn, actor, op.clone())?;
    // Refusals of a multi-object delete's entries, which a refused code must
    // not erase from the ledger.
    let entry_refusals = std::mem::take(&mut txn.trial_refusals);
    if Op::spends_no_code(&judged) {
        return op.apply(txn, actor).map(Guarded::Done);
    }
    // A code is judged only for an operation that needs one: a change that
    // runs as well without it runs without it, so no caller can charge
    // someone's device a failure with a code the operation did not need.
    if let Some(plain) = op.without_code()
        && judge(txn, actor, plain.clone()).is_ok()
    {
        return plain.apply(txn, actor).map(Guarded::Done);
    }
    let CodeCheck { serial, update } = code;
    let (_, accepted, verdict) = run_device_update(txn, actor, vec![serial], update)?;
    if !accepted {
        for (op, fields) in entry_refusals {
            txn.record_refusal(actor, op, fields);
        }
        return Ok(Guarded::CodeRefused(verdict));
    }
    op.apply(txn, actor).map(Guarded::Done)
}

/// Applies `op` as a trial and rolls it back: its outcome, and nothing else
/// (a trial's refusals spend no refusal budget).
fn judge<Op: WriterOp>(txn: &mut Txn<'_>, actor: &Actor, op: Op) -> Result<Op::Output, StoreError> {
    let savepoint = txn.savepoint();
    txn.trial = true;
    let judged = op.apply(txn, actor);
    txn.trial = false;
    txn.rollback(savepoint);
    judged
}

/// An operation in the queue, its type erased.
pub(crate) trait Queued: Send {
    fn weight(&self) -> usize;
    fn staged(&self) -> Option<(u128, u32)>;
    fn new_version_bytes(&self) -> Option<u64>;
    fn refusal(&self) -> Option<EntryFields>;
    /// Applies the operation; its answer waits for the group's commit.
    fn run(self: Box<Self>, txn: &mut Txn<'_>, actor: &Actor) -> Box<dyn Answer>;
}

/// An applied operation's result, waiting for its group's commit.
pub(crate) trait Answer: Send {
    /// The operation's own error, if it failed.
    fn error(&self) -> Option<&StoreError>;
    /// Answers the caller. `failure` is the group's commit error; with
    /// `judged_on_lost_state`, even a refusal was judged on state that was
    /// never stored, so the caller is told of the failure instead.
    fn send(self: Box<Self>, failure: Option<StoreError>, judged_on_lost_state: bool);
}

/// An operation and where its typed reply goes.
pub(crate) struct Pending<Op: WriterOp> {
    pub(crate) op: Op,
    pub(crate) reply: oneshot::Sender<Result<Op::Output, StoreError>>,
}

impl<Op: WriterOp> Queued for Pending<Op> {
    fn weight(&self) -> usize {
        self.op.weight()
    }

    fn staged(&self) -> Option<(u128, u32)> {
        self.op.staged()
    }

    fn new_version_bytes(&self) -> Option<u64> {
        self.op.new_version_bytes()
    }

    fn refusal(&self) -> Option<EntryFields> {
        self.op.refusal()
    }

    fn run(self: Box<Self>, txn: &mut Txn<'_>, actor: &Actor) -> Box<dyn Answer> {
        let Pending { op, reply } = *self;
        Box::new(Answered { reply, result: op.apply(txn, actor) })
    }
}

struct Answered<T> {
    reply: oneshot::Sender<Result<T, StoreError>>,
    result: Result<T, StoreError>,
}

impl<T: Send> Answer for Answered<T> {
    fn error(&self) -> Option<&StoreError> {
        self.result.as_ref().err()
    }

    fn send(self: Box<Self>, failure: Option<StoreError>, judged_on_lost_state: bool) {
        let result = match failure {
            None => self.result,
            Some(failed) if judged_on_lost_state => Err(failed),
            Some(failed) => self.result.and_then(|_| Err(failed)),
        };
        // The caller may be gone; the operation's fate is in the store.
        let _ = self.reply.send(result);
    }
}
