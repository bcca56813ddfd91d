//! Principal rules: creating an access key and revoking one.
//!
//! Invariant: an access key is created once (never overwritten) and its role
//! and bypass right are fixed at creation; revoking is for good, idempotent,
//! and never of the caller's own key.

use crate::Actor;
use crate::StoreError;
use crate::backend::Keyspace;
use crate::codec::PrincipalRecord;
use crate::ledger::LedgerOp;
use crate::view::View;
use crate::writer::{EntryFields, Outcome, Txn};

pub(crate) fn create_principal(
    txn: &mut Txn<'_>,
    actor: &Actor,
    access_key: String,
    mut record: PrincipalRecord,
) -> Result<Outcome, StoreError> {
    if txn.get(Keyspace::Principals, access_key.as_bytes())?.is_some() {
        return Err(StoreError::InvalidArgument(format!("access key `{access_key}` exists")));
    }
    record.created_at = txn.tick();
    let detail = format!(
        "name={} role={}{}",
        record.name,
        record.role.as_str(),
        if record.bypass_governance { " bypass-governance" } else { "" }
    );
    txn.put(Keyspace::Principals, access_key.as_bytes().to_vec(), record.encode());
    let fields = EntryFields { key: access_key, detail, ..EntryFields::default() };
    Ok(Outcome::Sequence(Some(txn.record(actor, LedgerOp::PrincipalCreated, fields))))
}

pub(crate) fn revoke_principal(txn: &mut Txn<'_>, actor: &Actor, access_key: String) -> Result<Outcome, StoreError> {
    if access_key == actor.access_key {
        return Err(StoreError::AccessDenied("a principal cannot revoke its own key".to_owned()));
    }
    let raw = txn
        .get(Keyspace::Principals, access_key.as_bytes())?
        .ok_or_else(|| StoreError::NoSuchPrincipal(access_key.clone()))?;
    let mut record = PrincipalRecord::decode(&raw)?;
    if record.revoked_at.is_some() {
        return Ok(Outcome::Sequence(None));
    }
    record.revoked_at = Some(txn.tick());
    txn.put(Keyspace::Principals, access_key.as_bytes().to_vec(), record.encode());
    let fields = EntryFields { key: access_key, ..EntryFields::default() };
    Ok(Outcome::Sequence(Some(txn.record(actor, LedgerOp::PrincipalRevoked, fields))))
}
