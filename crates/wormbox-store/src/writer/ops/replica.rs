//! Replication progress: how far each replication rule has copied the
//! ledger, and the replica's version id of each version it copied.
//!
//! Invariant: a rule's cursor only moves forward and never past the ledger
//! head, and it is written in the same atomic write as the version ids of
//! what it covers, so after a crash the cursor never claims a copy whose
//! replica id is lost. Only the appliance itself (`Actor::system`) records
//! progress; it is operational state, not evidence, so no ledger entry.

use wormbox_model::{BucketName, ObjectKey, VersionId};

use crate::writer::{Txn, WriterOp};
use crate::{Actor, StoreError, keys, meta};

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
