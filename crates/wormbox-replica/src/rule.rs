//! A replication rule: which versions go where, and how.
//!
//! Invariant: a rule is checked whole before its replicator starts (`check`):
//! a name that is safe in a meta key and an object name, a source bucket,
//! a retention for evidence objects and a concurrency of 1 to 64; the replica bucket itself is
//! checked against the rule when the replicator first reaches it.

use std::time::Duration;

use wormbox_model::BucketName;
use wormbox_store::retention::RetentionMode;

/// When a client's write is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// When it is stored locally; the replica follows (the backlog is the
    /// ledger itself, so a down replica loses nothing).
    #[default]
    Async,
    /// Only once the replica also holds it.
    Sync,
}

/// One `[[replication]]` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Its name: 1 to 64 of `a-z`, `0-9`, `-`, `_`.
    pub name: String,
    /// The source bucket.
    pub bucket: BucketName,
    /// Only keys under this prefix (empty: all).
    pub prefix: String,
    /// When writes are acknowledged.
    pub mode: Mode,
    /// A version with no retention of its own gets at least this on the
    /// replica, counted from its creation (`None`: the replica bucket's
    /// default alone).
    pub minimum_retention: Option<(RetentionMode, Duration)>,
    /// Whether permanent deletes (purges of expired versions) are copied;
    /// by default the replica keeps them until its own lifecycle.
    pub replicate_purges: bool,
    /// How long the replica keeps the signed checkpoints and ledger ranges
    /// (COMPLIANCE), counted from each checkpoint's signing.
    pub evidence_retention: Duration,
    /// How many ledger entries are copied at once (1 to `MAX_CONCURRENCY`;
    /// `DEFAULT_CONCURRENCY` in the config). Changes to one key still reach
    /// the replica in ledger order.
    pub concurrency: usize,
}

/// A rule that cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("replication rule `{rule}`: {why}")]
pub struct RuleError {
    /// The rule's name.
    pub rule: String,
    /// What is wrong.
    pub why: String,
}

/// The longest rule name.
pub const MAX_NAME: usize = 64;
/// The most ledger entries a rule copies at once.
pub const MAX_CONCURRENCY: usize = 64;
/// How many ledger entries a rule copies at once unless it says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 8;

impl Rule {
    /// Checks what can be checked without the replica.
    pub fn check(&self) -> Result<(), RuleError> {
        let fine = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        if self.name.is_empty() || self.name.len() > MAX_NAME || !self.name.chars().all(fine) {
            return Err(self.error(format!("the name is 1 to {MAX_NAME} of a-z, 0-9, `-` and `_`")));
        }
        if self.evidence_retention.is_zero() {
            return Err(self.error("evidence_retention_days must be at least 1".to_owned()));
        }
        if self.minimum_retention.is_some_and(|(_, d)| d.is_zero()) {
            return Err(self.error("minimum_retention_days must be at least 1 when set".to_owned()));
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(self.error(format!("concurrency must lie between 1 and {MAX_CONCURRENCY}")));
        }
        Ok(())
    }

    /// Whether a ledger entry about `bucket`/`key` is this rule's.
    pub fn covers(&self, bucket: &str, key: &str) -> bool {
        bucket == self.bucket.as_str() && key.starts_with(&self.prefix)
    }

    pub(crate) fn error(&self, why: String) -> RuleError {
        RuleError { rule: self.name.clone(), why }
    }
}
