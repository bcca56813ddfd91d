//! The writer's operations, one file per subject: each is a type
//! implementing `WriterOp` (`op.rs`): what it checks, what it writes, what
//! its ledger entry says and what it answers. `writer.rs` keeps the group,
//! the transaction and the run loop; `op.rs` the protocol and the
//! MFA-guarded trial.
//!
//! Invariant: a rule reads and writes only through the writer's `Txn`, so it
//! sees the changes of earlier commands in its group and of the group being
//! committed, and every change it makes is in the same atomic write as its
//! ledger entry; a rule that fails leaves its changes to be rolled back by
//! the caller (the group, or `guarded`'s and `DeleteObjects`' savepoints).

pub(super) mod bucket;
pub(super) mod checkpoint;
pub(super) mod clock;
pub(super) mod device;
pub(super) mod lock;
pub(super) mod object;
pub(super) mod principal;
pub(crate) mod replica;
pub(crate) mod witness;
