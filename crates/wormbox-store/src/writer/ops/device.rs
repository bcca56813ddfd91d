//! MFA device rules: the authority's decision function run inside the writer.
//!
//! Invariant: a device's read, the authority's decision and its write happen
//! in one command, so no two decisions on one device interleave; codes are
//! judged by the system clock (the token's), and refused codes are ledgered
//! within the refusal budget.

use crate::backend::Keyspace;
use crate::ledger::LedgerOp;
use crate::view::View;
use crate::writer::{EntryFields, Txn, WriterOp};
use crate::{Actor, DeviceUpdate, StoreError};

/// Runs the authority's decision on the records of `serials` and writes
/// what it returns; answers the last ledger sequence written and the
/// authority's own answer.
pub(crate) struct UpdateDevices<T> {
    pub(crate) serials: Vec<String>,
    pub(crate) update: DeviceUpdate<T>,
}

impl<T: Send + 'static> WriterOp for UpdateDevices<T> {
    type Output = (Option<u64>, T);

    fn apply(self, txn: &mut Txn<'_>, actor: &Actor) -> Result<Self::Output, StoreError> {
        let (last, _, answer) = run_device_update(txn, actor, self.serials, self.update)?;
        Ok((last, answer))
    }
}

/// Runs the authority's decision and writes what it returns; returns the
/// last ledger sequence written, whether it accepted a code, and its answer.
pub(crate) fn run_device_update<T>(
    txn: &mut Txn<'_>,
    actor: &Actor,
    serials: Vec<String>,
    update: DeviceUpdate<T>,
) -> Result<(Option<u64>, bool, T), StoreError> {
    let mut current = Vec::with_capacity(serials.len());
    for serial in &serials {
        current.push(txn.get(Keyspace::Devices, serial.as_bytes())?);
    }
    txn.tick();
    // TOTP codes follow the token's clock, which is real time: the system
    // clock, not the (possibly held-back) compliance clock. Replay safety
    // does not depend on it: spent steps are tracked per device.
    let now = txn.clock.now();
    let mut last = None;
    let mut accepted = false;
    let (changes, answer) = (update.0)(current, now);
    for change in changes {
        accepted |= change.op == LedgerOp::MfaAccepted;
        if let Some(record) = change.record {
            txn.put(Keyspace::Devices, change.serial.as_bytes().to_vec(), record);
        }
        let fields =
            EntryFields { bucket: change.bucket, key: change.serial, detail: change.detail, ..EntryFields::default() };
        if change.op == LedgerOp::MfaRefused {
            last = txn.record_refusal(actor, change.op, fields).or(last);
        } else {
            last = Some(txn.record(actor, change.op, fields));
        }
    }
    Ok((last, accepted, answer))
}
