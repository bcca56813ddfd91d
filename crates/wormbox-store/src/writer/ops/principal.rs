//! Principal rules: creating an access key and revoking one; giving an
//! access key an S3 secret and revoking it.
//!
//! Invariant: an access key is created once (never overwritten) and its role
//! and bypass right are fixed at creation; revoking is for good, idempotent,
//! and never of the caller's own key. An access key has at most one S3
//! secret at a time, given only by an admin to a principal that is not
//! revoked, and removed (ledgered) in the same write that revokes the
//! principal; the sealed secret is stored as the caller sealed it and is in
//! no ledger entry.

use wormbox_model::Role;

use crate::backend::Keyspace;
use crate::codec::PrincipalRecord;
use crate::ledger::LedgerOp;
use crate::view::View;
use crate::writer::{EntryFields, Guardable, Txn, WriterOp};
use crate::{Actor, SealedSecret, StoreError, meta};

/// Creates an access key; answers its ledger sequence.
#[derive(Clone)]
pub(crate) struct CreatePrincipal {
    pub(crate) access_key: String,
    pub(crate) record: Box<PrincipalRecord>,
    /// Its S3 secret, sealed, given in the same write (`SetS3Key`).
    pub(crate) s3: Option<SealedSecret>,
}

impl WriterOp for CreatePrincipal {
    type Output = u64;

    fn apply(self, txn: &mut Txn<'_>, actor: &Actor) -> Result<u64, StoreError> {
        let CreatePrincipal { access_key, record, s3 } = self;
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
        let fields = EntryFields { key: access_key.clone(), detail, ..EntryFields::default() };
        let sequence = txn.record(actor, LedgerOp::PrincipalCreated, fields);
        if let Some(sealed) = s3 {
            SetS3Key { access_key, sealed: Some(sealed) }.apply(txn, actor)?;
        }
        Ok(sequence)
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
        let fields = EntryFields { key: access_key.clone(), ..EntryFields::default() };
        let sequence = txn.record(actor, LedgerOp::PrincipalRevoked, fields);
        // Its S3 secret goes with it, in the same write: no secret of a
        // revoked principal stays at rest.
        if meta::load_s3_key(txn, &access_key)?.is_some() {
            txn.delete(Keyspace::Meta, meta::s3_key_delete_key(&access_key));
            let fields = EntryFields { key: access_key, ..EntryFields::default() };
            txn.record(actor, LedgerOp::S3KeyRevoked, fields);
        }
        Ok(Some(sequence))
    }
}

impl Guardable for RevokePrincipal {}

/// Gives an access key its S3 secret (`sealed`), or revokes it (`None`);
/// answers the ledger sequence, `None` when there was no secret to revoke.
///
/// Only admins may. Giving one to a principal that has one already is
/// refused (revoke it first), so that no secret is ever replaced unseen;
/// revoking is idempotent. Revoking the principal itself removes the
/// secret in the same write (`RevokePrincipal`).
#[derive(Clone)]
pub(crate) struct SetS3Key {
    pub(crate) access_key: String,
    pub(crate) sealed: Option<SealedSecret>,
}

impl WriterOp for SetS3Key {
    type Output = Option<u64>;

    fn apply(self, txn: &mut Txn<'_>, actor: &Actor) -> Result<Option<u64>, StoreError> {
        let SetS3Key { access_key, sealed } = self;
        if actor.role != Role::Admin {
            return Err(StoreError::AccessDenied("only admins create or revoke S3 keys".to_owned()));
        }
        let raw = txn
            .get(Keyspace::Principals, access_key.as_bytes())?
            .ok_or_else(|| StoreError::NoSuchPrincipal(access_key.clone()))?;
        let record = PrincipalRecord::decode(&raw)?;
        let existing = meta::load_s3_key(txn, &access_key)?;
        let Some(sealed) = sealed else {
            if existing.is_none() {
                return Ok(None);
            }
            txn.delete(Keyspace::Meta, meta::s3_key_delete_key(&access_key));
            let fields = EntryFields { key: access_key, ..EntryFields::default() };
            return Ok(Some(txn.record(actor, LedgerOp::S3KeyRevoked, fields)));
        };
        if record.revoked_at.is_some() {
            return Err(StoreError::InvalidArgument(format!("principal `{access_key}` is revoked")));
        }
        if existing.is_some() {
            return Err(StoreError::InvalidArgument(format!(
                "principal `{access_key}` has an S3 key already: revoke it first"
            )));
        }
        if sealed.as_bytes().is_empty() {
            return Err(StoreError::InvalidArgument("an S3 secret cannot be empty".to_owned()));
        }
        let (key, value) = meta::s3_key_entry(&access_key, sealed.as_bytes());
        txn.put(Keyspace::Meta, key, value);
        // The role says whether the key carries power (and so needed a code
        // on a guarded appliance); the secret, sealed or not, is never here.
        let detail = format!(
            "role={}{}",
            record.role.as_str(),
            if record.bypass_governance { " bypass-governance" } else { "" }
        );
        let fields = EntryFields { key: access_key, detail, ..EntryFields::default() };
        Ok(Some(txn.record(actor, LedgerOp::S3KeyCreated, fields)))
    }
}

impl Guardable for SetS3Key {}
