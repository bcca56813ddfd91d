//! What the appliance's witnesses said of its checkpoints: each
//! cosignature, kept under its checkpoint; each witness's last refusal
//! (cleared by its next cosignature); and the first refusal of each that
//! said the ledger forked.
//!
//! Invariant: only the appliance itself (`Actor::system`) records them, a
//! cosignature only of a checkpoint the archive holds and never older than
//! the newest one recorded for its witness; the first fork refusal
//! (`WitnessRefusal::is_fork`) is never replaced or cleared, so `verify`
//! keeps reporting it. They are evidence about the ledger, not changes to the
//! archive, so no ledger entry (one would move the head each time and ask
//! for another checkpoint).

use crate::backend::Keyspace;
use crate::meta::{self, WitnessRefusal};
use crate::view::View;
use crate::writer::{Txn, WriterOp};
use crate::{Actor, StoreError};

/// The longest witness name, and the longest refusal text kept.
pub(crate) const MAX_WITNESS_NAME: usize = 200;
const MAX_WHY: usize = 500;
const MAX_LINE: usize = 1024;

/// Checks a witness name: 1 to 200 printable ASCII characters, no space or
/// `+` (a signed-note key name, and a safe part of a meta key and of what is
/// printed). The witness crate reads verifier keys by the same rule.
pub fn check_witness_name(name: &str) -> Result<(), StoreError> {
    let fine = |c: char| c.is_ascii_graphic() && c != '+';
    if name.is_empty() || name.len() > MAX_WITNESS_NAME || !name.chars().all(fine) {
        return Err(StoreError::InvalidArgument(format!(
            "a witness name is 1 to {MAX_WITNESS_NAME} printable ASCII characters without spaces or `+`, not `{}`",
            name.escape_debug()
        )));
    }
    Ok(())
}

/// What a witness said of the checkpoint at a sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WitnessOutcome {
    /// It cosigned: the signature line (verified by the caller under the
    /// witness's configured key) and its timestamp.
    Cosigned {
        /// The note signature line, with its newline.
        line: String,
        /// The cosignature's timestamp (POSIX seconds).
        timestamp: u64,
    },
    /// It refused, with this HTTP status and text.
    Refused {
        /// The status (409 and 422 say the ledger forked).
        status: u16,
        /// What it said.
        why: String,
    },
}

pub(crate) struct RecordWitness {
    pub(crate) witness: String,
    pub(crate) sequence: u64,
    pub(crate) outcome: WitnessOutcome,
}

impl WriterOp for RecordWitness {
    type Output = ();

    fn apply(self, txn: &mut Txn<'_>, actor: &Actor) -> Result<(), StoreError> {
        if actor.access_key != Actor::system().access_key {
            return Err(StoreError::AccessDenied("only the appliance records what its witnesses said".to_owned()));
        }
        check_witness_name(&self.witness)?;
        let stored = View::get(txn, Keyspace::Checkpoints, &crate::evidence::checkpoint_key(self.sequence))?;
        if stored.is_none() {
            return Err(StoreError::InvalidArgument(format!(
                "no checkpoint was signed at ledger entry {}",
                self.sequence
            )));
        }
        match self.outcome {
            WitnessOutcome::Cosigned { line, timestamp } => {
                let prefix = format!("\u{2014} {} ", self.witness);
                if line.len() > MAX_LINE || !line.starts_with(&prefix) || !line.ends_with('\n') {
                    return Err(StoreError::InvalidArgument("not a cosignature line of this witness".to_owned()));
                }
                if let Some((last, _)) = meta::load_witness_last(txn, &self.witness)?
                    && last > self.sequence
                {
                    return Err(StoreError::InvalidArgument(format!(
                        "witness {} already cosigned the checkpoint at {last}, after {}",
                        self.witness, self.sequence
                    )));
                }
                let (key, value) = meta::witness_cosignature_entry(self.sequence, &self.witness, &line);
                txn.put(Keyspace::Meta, key, value);
                let (key, value) = meta::witness_last_entry(&self.witness, self.sequence, timestamp);
                txn.put(Keyspace::Meta, key, value);
                // The last refusal is answered by this cosignature; a fork
                // record (its own key) stays.
                if meta::scan_witness_refusals_in(txn, &self.witness)?.is_some() {
                    txn.delete(Keyspace::Meta, meta::witness_refusal_key(&self.witness));
                }
            }
            WitnessOutcome::Refused { status, why } => {
                let refusal = WitnessRefusal {
                    witness: self.witness,
                    sequence: self.sequence,
                    status,
                    why: why.chars().take(MAX_WHY).collect(),
                    time: txn.tick(),
                };
                // The first fork is kept as it was first seen: a later
                // refusal never replaces that evidence.
                if refusal.is_fork() && meta::load_witness_fork(txn, &refusal.witness)?.is_none() {
                    let (key, value) = meta::witness_fork_entry(&refusal);
                    txn.put(Keyspace::Meta, key, value);
                }
                let (key, value) = meta::witness_refusal_entry(&refusal);
                txn.put(Keyspace::Meta, key, value);
            }
        }
        Ok(())
    }
}
