//! Evidence rules: signing a checkpoint on demand and recording an integrity
//! check's result.
//!
//! Invariant: a checkpoint is signed inside the writer, in the write whose
//! head it covers, and never twice for the same head (`Txn::checkpoint`); an
//! integrity result is a ledger entry like any other change.

use crate::evidence::Checkpoint;
use crate::ledger::LedgerOp;
use crate::writer::{EntryFields, Txn, WriterOp};
use crate::{Actor, StoreError};

/// Signs a checkpoint of the current head, unless one exists.
pub(crate) struct SignCheckpoint;

impl WriterOp for SignCheckpoint {
    type Output = Checkpoint;

    fn apply(self, txn: &mut Txn<'_>, _actor: &Actor) -> Result<Checkpoint, StoreError> {
        txn.checkpoint()
            .ok_or_else(|| StoreError::InvalidArgument("this store has no checkpoint signing key".to_owned()))
    }
}

/// Records an integrity check's result.
pub(crate) struct RecordIntegrity {
    pub(crate) ok: bool,
    pub(crate) detail: String,
}

impl WriterOp for RecordIntegrity {
    type Output = u64;

    fn apply(self, txn: &mut Txn<'_>, actor: &Actor) -> Result<u64, StoreError> {
        let op = if self.ok { LedgerOp::IntegrityVerified } else { LedgerOp::IntegrityFailed };
        let fields = EntryFields { detail: self.detail, ..EntryFields::default() };
        Ok(txn.record(actor, op, fields))
    }
}
