//! Compliance clock rules: reading it, and an admin accepting a jump forward
//! of the system clock at once.
//!
//! Invariant: the compliance clock is advanced only by the writer (`Txn::tick`)
//! and never goes back; a jump is accepted only by an admin, only when there is
//! one to accept (judged before any code is spent), and is a `clock-accepted`
//! entry naming the code's device.

use wormbox_model::Timestamp;

use crate::ledger::LedgerOp;
use crate::writer::{EntryFields, Guardable, Txn, WriterOp};
use crate::{Actor, ClockStatus, StoreError};

/// The clocks as `txn` sees them, the system clock reading `system`.
fn clock_status(txn: &Txn<'_>, system: Timestamp, compliance: Timestamp) -> ClockStatus {
    let clock = &txn.state.compliance;
    ClockStatus {
        system,
        compliance,
        held_back: clock.held_back(system),
        catch_up_per_year: clock.policy().catch_up_per_year,
        caught_up_at: clock.caught_up_at(system),
    }
}

/// An admin accepts a forward jump of the system clock at once; `mfa` is
/// the serial of the device whose code is checked with it.
#[derive(Clone)]
pub(crate) struct AcceptClockForward {
    pub(crate) mfa: String,
}

impl WriterOp for AcceptClockForward {
    type Output = (ClockStatus, u64);

    fn apply(self, txn: &mut Txn<'_>, actor: &Actor) -> Result<Self::Output, StoreError> {
        let mfa = self.mfa;
        if actor.role != wormbox_model::Role::Admin {
            return Err(StoreError::AccessDenied("only an admin accepts the clock forward".into()));
        }
        let system = txn.clock.now();
        txn.tick();
        // Judged before any code is spent (`guarded`): nothing to accept
        // is a refusal, not an accepted code.
        if txn.state.compliance.held_back(system).is_none() {
            return Err(StoreError::InvalidArgument(
                "the compliance clock is not behind the system clock: there is no jump to accept".into(),
            ));
        }
        let (from, to) = txn.state.compliance.accept_forward(system, txn.clock.monotonic());
        let now = txn.tick();
        let detail = format!("compliance clock {} -> {}; mfa {mfa}", from.to_rfc3339(), to.to_rfc3339());
        let sequence = txn.record(actor, LedgerOp::ClockAccepted, EntryFields { detail, ..EntryFields::default() });
        Ok((clock_status(txn, system, now), sequence))
    }
}

impl Guardable for AcceptClockForward {}

/// Reads both clocks, as the writer sees them.
pub(crate) struct ReadClock;

impl WriterOp for ReadClock {
    type Output = ClockStatus;

    fn apply(self, txn: &mut Txn<'_>, _actor: &Actor) -> Result<ClockStatus, StoreError> {
        let system = txn.clock.now();
        let compliance = txn.tick();
        Ok(clock_status(txn, system, compliance))
    }
}
