//! Evidence rules: signing a checkpoint on demand and recording an integrity
//! check's result.
//!
//! Invariant: a checkpoint is signed inside the writer, in the write whose
//! head it covers, and never twice for the same head (`Txn::checkpoint`); an
//! integrity result is a ledger entry like any other change.

use crate::Actor;
use crate::StoreError;
use crate::ledger::LedgerOp;
use crate::writer::{EntryFields, Outcome, Txn};

pub(crate) fn sign_checkpoint(txn: &mut Txn<'_>) -> Result<Outcome, StoreError> {
    match txn.checkpoint() {
        Some(checkpoint) => Ok(Outcome::Checkpoint(checkpoint)),
        None => Err(StoreError::InvalidArgument("this store has no checkpoint signing key".to_owned())),
    }
}

pub(crate) fn record_integrity(
    txn: &mut Txn<'_>,
    actor: &Actor,
    ok: bool,
    detail: String,
) -> Result<Outcome, StoreError> {
    let op = if ok { LedgerOp::IntegrityVerified } else { LedgerOp::IntegrityFailed };
    let fields = EntryFields { detail, ..EntryFields::default() };
    Ok(Outcome::Sequence(Some(txn.record(actor, op, fields))))
}
