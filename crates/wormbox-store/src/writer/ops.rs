//! The writer's rules, one file per subject: what each command checks, what
//! it writes and what its ledger entry says. `writer.rs` dispatches each
//! `Command` to one function here (`apply`) and keeps the group, the
//! transaction, the run loop and the MFA-guarded trial (`guarded`).
//!
//! Invariant: a rule reads and writes only through the writer's `Txn`, so it
//! sees the changes of earlier commands in its group and of the group being
//! committed, and every change it makes is in the same atomic write as its
//! ledger entry; a rule that fails leaves its changes to be rolled back by
//! the caller (the group, or `guarded`'s and `delete_objects`' savepoints).

pub(super) mod bucket;
pub(super) mod checkpoint;
pub(super) mod clock;
pub(super) mod device;
pub(super) mod lock;
pub(super) mod object;
pub(super) mod principal;
