//! Replication progress: how far each replication rule has copied the
//! ledger, and the replica's version id of each version it copied.
//!
//! Invariant: a rule's cursor only moves forward and never past the ledger
//! head, and it is written in the same atomic write as the version ids of
//! what it covers, so after a crash the cursor never claims a copy whose
//! replica id is lost. Only the appliance itself (`Actor::system`) records
//! progress; it is operational state, not evidence, so no ledger entry.
//!
//! The capacity tier (`ReleaseBytes`): only the appliance's own tier pass
//! (`Actor::system`, never a principal, admins included) releases a
//! version's local bytes, after it verified the replica copy; the same write
//! re-checks that the version still exists, is not released yet and that
//! the copy verified is the one recorded for the rule, removes the chunks,
//! records where the bytes live (meta `bytes-at/`) and ledgers it
//! (`bytes-released`, with the version's SHA-256). The version record is
//! never rewritten.

use wormbox_model::{BucketName, ObjectKey, VersionId};

use crate::backend::Keyspace;
use crate::ledger::LedgerOp;
use crate::meta::BytesAt;
use crate::writer::{EntryFields, Txn, WriterOp};
use crate::{Actor, StoreError, keys, meta, versions};

/// The longest replication rule name.
pub(crate) const MAX_RULE_NAME: usize = 64;

/// Checks a rule name: 1 to 64 of `a-z`, `0-9`, `-` and `_`, so that it is
/// a safe part of a meta key and of a replica object's name.
pub(crate) fn check_rule_name(rule: &str) -> Result<(), StoreError> {
    let fine = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if rule.is_empty() || rule.len() > MAX_RULE_NAME || !rule.chars().all(fine) {
        return Err(StoreError::InvalidArgument(format!(
            "a replication rule name is 1 to {MAX_RULE_NAME} of a-z, 0-9, `-` and `_`, not `{}`",
            rule.escape_debug()
        )));
    }
    Ok(())
}

/// One version or marker a rule copied, and its id on the replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replicated {
    /// The source bucket.
    pub bucket: BucketName,
    /// The key.
    pub key: ObjectKey,
    /// The source version's internal id.
    pub id: VersionId,
    /// The replica's version id.
    pub replica_id: String,
}

/// Moves `rule`'s cursor to `through` and records the replica ids of what it
/// copied up to there.
pub(crate) struct RecordReplication {
    pub(crate) rule: String,
    pub(crate) through: u64,
    pub(crate) copied: Vec<Replicated>,
}

impl WriterOp for RecordReplication {
    type Output = ();

    fn apply(self, txn: &mut Txn<'_>, actor: &Actor) -> Result<(), StoreError> {
        if actor.access_key != Actor::system().access_key {
            return Err(StoreError::AccessDenied("only the appliance records replication progress".to_owned()));
        }
        check_rule_name(&self.rule)?;
        let current = meta::load_replica_cursor(txn, &self.rule)?;
        if self.through < current || self.through > txn.state.ledger_sequence {
            return Err(StoreError::InvalidArgument(format!(
                "replication rule `{}` cannot move from entry {current} to {} (the ledger ends at {})",
                self.rule, self.through, txn.state.ledger_sequence
            )));
        }
        for copy in &self.copied {
            let version_key = keys::version_key(&copy.bucket, copy.key.as_str(), copy.id);
            let (key, value) = meta::replica_version_entry(&self.rule, &version_key, &copy.replica_id);
            txn.put(crate::backend::Keyspace::Meta, key, value);
        }
        let (key, value) = meta::replica_cursor_entry(&self.rule, self.through);
        txn.put(crate::backend::Keyspace::Meta, key, value);
        Ok(())
    }
}

/// Releases the local bytes of one version whose copy on `rule`'s replica
/// (`replica_id`) the caller verified. Answers the ledger sequence.
pub(crate) struct ReleaseBytes {
    pub(crate) rule: String,
    pub(crate) bucket: BucketName,
    pub(crate) key: ObjectKey,
    pub(crate) id: VersionId,
    pub(crate) replica_id: String,
}

impl WriterOp for ReleaseBytes {
    type Output = u64;

    fn apply(self, txn: &mut Txn<'_>, actor: &Actor) -> Result<u64, StoreError> {
        if actor.access_key != Actor::system().access_key {
            return Err(StoreError::AccessDenied(
                "only the appliance's tier pass releases a version's local bytes".to_owned(),
            ));
        }
        check_rule_name(&self.rule)?;
        let name = || format!("version {} of `{}/{}`", self.id, self.bucket, self.key);
        let record =
            versions::record(txn, &self.bucket, &self.key, self.id)?.ok_or_else(|| StoreError::NoSuchVersion {
                bucket: self.bucket.to_string(),
                key: self.key.to_string(),
                version: self.id.to_string(),
            })?;
        if record.is_delete_marker {
            return Err(StoreError::InvalidArgument(format!("{} is a delete marker: it has no bytes", name())));
        }
        let version_key = keys::version_key(&self.bucket, self.key.as_str(), self.id);
        if let Some(at) = meta::load_bytes_at(txn, &version_key)? {
            return Err(StoreError::InvalidArgument(format!(
                "the bytes of {} were already released (they live on rule `{}`'s replica)",
                name(),
                at.rule
            )));
        }
        match meta::load_replica_version(txn, &self.rule, &version_key)? {
            Some(recorded) if recorded == self.replica_id => {}
            Some(_) => {
                return Err(StoreError::InvalidArgument(format!(
                    "the replica copy verified is not the one rule `{}` recorded for {}",
                    self.rule,
                    name()
                )));
            }
            None => {
                return Err(StoreError::InvalidArgument(format!(
                    "rule `{}` has recorded no replica copy of {}: its bytes stay local",
                    self.rule,
                    name()
                )));
            }
        }
        let data =
            record.data.ok_or_else(|| StoreError::DataLoss { what: format!("{} has no data reference", name()) })?;
        for index in 0..data.chunks {
            txn.delete(Keyspace::Chunks, keys::chunk_key(data.upload, index));
        }
        let at = BytesAt { rule: self.rule.clone(), replica_id: self.replica_id.clone() };
        let (key, value) = meta::bytes_at_entry(&version_key, &at);
        txn.put(Keyspace::Meta, key, value);
        let fields = EntryFields {
            bucket: self.bucket.to_string(),
            key: self.key.to_string(),
            version: Some(self.id),
            sha256: Some(record.sha256),
            detail: format!("rule={} replica-version={} size={}", self.rule, self.replica_id, record.size),
            ..EntryFields::default()
        };
        Ok(txn.record(actor, LedgerOp::BytesReleased, fields))
    }
}
