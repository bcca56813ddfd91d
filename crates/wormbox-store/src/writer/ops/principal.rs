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
use crate::writer::{EntryFields, Guardable, Txn, WriterOp};

/// Creates an access key; answers its ledger sequence.
#[derive(Clone)]
pub(crate) struct CreatePrincipal {
    pub(crate) access_key: String,
    pub(crate) record: Box<PrincipalRecord>,
}

impl WriterOp for CreatePrincipal {
    type Output = u64;

    fn apply(self, txn: &mut Txn<'_>, actor: &Actor) -> Result<u64, StoreError> {
        let CreatePrincipal { access_key, record } = self;
        let mut record = *record;
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
        Ok(txn.record(actor, LedgerOp::PrincipalCreated, fields))
    }
}

impl Guardable for CreatePrincipal {}

/// Revokes an access key for good; answers the ledger sequence, `None`
/// when it was revoked already.
#[derive(Clone)]
pub(crate) struct RevokePrincipal {
    pub(crate) access_key: String,
}

impl WriterOp for RevokePrincipal {
    type Output = Option<u64>;

    fn apply(self, txn: &mut Txn<'_>, actor: &Actor) -> Result<Option<u64>, StoreError> {
        let access_key = self.access_key;
        if access_key == actor.access_key {
            return Err(StoreError::AccessDenied("a principal cannot revoke its own key".to_owned()));
        }
        let raw = txn
            .get(Keyspace::Principals, access_key.as_bytes())?
            .ok_or_else(|| StoreError::NoSuchPrincipal(access_key.clone()))?;
        let mut record = PrincipalRecord::decode(&raw)?;
        if record.revoked_at.is_some() {
            return Ok(None);
        }
        record.revoked_at = Some(txn.tick());
        txn.put(Keyspace::Principals, access_key.as_bytes().to_vec(), record.encode());
        let fields = EntryFields { key: access_key, ..EntryFields::default() };
        Ok(Some(txn.record(actor, LedgerOp::PrincipalRevoked, fields)))
    }
}

impl Guardable for RevokePrincipal {}
