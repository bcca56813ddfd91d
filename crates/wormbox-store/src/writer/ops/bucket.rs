//! Bucket rules: create, delete, versioning and MFA Delete, Object Lock
//! configuration and default retention.
//!
//! Invariant: only a bucket's owner (or an admin, where S3 lets one) changes
//! it; a bucket with Object Lock stays versioned, for good; a bucket is
//! deleted only when it holds no version; a default retention is lowered only
//! with the code `Lowering::NeedsCode` asks for, judged against the record the
//! same write replaces.

use wormbox_model::{BucketName, VersioningState};

use crate::backend::Keyspace;
use crate::codec::BucketRecord;
use crate::keys;
use crate::ledger::LedgerOp;
use crate::retention::{self, DefaultRetention};
use crate::view::View;
use crate::writer::{EntryFields, Guardable, Txn, WriterOp, bucket_info};
use crate::{Actor, BucketInfo, Lowering, StoreError, VersioningChange};

fn require_owner(actor: &Actor, bucket: &BucketName, record: &BucketRecord) -> Result<(), StoreError> {
    if actor.role == wormbox_model::Role::Admin || actor.access_key == record.owner {
        Ok(())
    } else {
        Err(StoreError::AccessDenied(format!("only the owner of bucket `{bucket}` or an admin may do this")))
    }
}

/// Creates a bucket; with `object_lock` its versioning is Enabled for good.
pub(crate) struct CreateBucket {
    pub(crate) bucket: BucketName,
    pub(crate) object_lock: bool,
}

impl WriterOp for CreateBucket {
    type Output = (BucketInfo, u64);

    fn apply(self, txn: &mut Txn<'_>, actor: &Actor) -> Result<Self::Output, StoreError> {
        let CreateBucket { bucket, object_lock } = self;
        if txn.get(Keyspace::Buckets, bucket.as_str().as_bytes())?.is_some() {
            return Err(StoreError::BucketExists { bucket: bucket.to_string() });
        }
        let record = BucketRecord {
            owner: actor.access_key.clone(),
            // Object Lock forces versioning on, for good.
            versioning: if object_lock { VersioningState::Enabled } else { VersioningState::Unversioned },
            created_at: txn.tick(),
            mfa_delete: false,
            object_lock,
            default_retention: None,
        };
        txn.put(Keyspace::Buckets, bucket.as_str().as_bytes().to_vec(), record.encode());
        let detail = if object_lock { "object-lock on".to_owned() } else { String::new() };
        let fields = EntryFields { bucket: bucket.to_string(), detail, ..EntryFields::default() };
        let sequence = txn.record(actor, LedgerOp::BucketCreated, fields);
        Ok((bucket_info(bucket, &record), sequence))
    }
}

/// Deletes a bucket that holds no version.
pub(crate) struct DeleteBucket {
    pub(crate) bucket: BucketName,
}

impl WriterOp for DeleteBucket {
    type Output = u64;

    fn apply(self, txn: &mut Txn<'_>, actor: &Actor) -> Result<u64, StoreError> {
        let bucket = &self.bucket;
        let record = txn.bucket(bucket)?;
        require_owner(actor, bucket, &record)?;
        if txn.any_with_prefix(Keyspace::Versions, &keys::bucket_prefix(bucket))? {
            return Err(StoreError::BucketNotEmpty { bucket: bucket.to_string() });
        }
        txn.delete(Keyspace::Buckets, bucket.as_str().as_bytes().to_vec());
        let fields = EntryFields { bucket: bucket.to_string(), ..EntryFields::default() };
        Ok(txn.record(actor, LedgerOp::BucketDeleted, fields))
    }

    fn refusal(&self) -> Option<EntryFields> {
        Some(EntryFields::about(&self.bucket, "", "bucket delete"))
    }
}

/// Changes a bucket's versioning or MFA Delete; answers the bucket and the
/// ledger sequence, `None` when nothing changed.
#[derive(Clone)]
pub(crate) struct SetVersioning {
    pub(crate) bucket: BucketName,
    pub(crate) change: VersioningChange,
}

impl WriterOp for SetVersioning {
    type Output = (BucketInfo, Option<u64>);

    fn apply(self, txn: &mut Txn<'_>, actor: &Actor) -> Result<Self::Output, StoreError> {
        let SetVersioning { bucket, change } = self;
        let mut record = txn.bucket(&bucket)?;
        // The owner alone, as in S3: an admin key is not the owner's consent to
        // weaken (or strengthen) the owner's bucket.
        if actor.access_key != record.owner {
            return Err(StoreError::AccessDenied(format!(
                "only the owner of bucket `{bucket}` changes its versioning or MFA Delete, admins included"
            )));
        }
        let state = change.state.unwrap_or(record.versioning);
        let mfa_delete = change.mfa_delete.unwrap_or(record.mfa_delete);
        if record.object_lock && state != VersioningState::Enabled {
            return Err(StoreError::VersioningLocked { bucket: bucket.to_string() });
        }
        if !record.versioning.may_become(state) {
            return Err(StoreError::InvalidArgument(format!(
                "a bucket that has been versioned cannot return to {}",
                state.as_str()
            )));
        }
        if mfa_delete && state == VersioningState::Unversioned {
            return Err(StoreError::InvalidArgument("MFA Delete needs versioning Enabled or Suspended".to_owned()));
        }
        // Refused before any code is asked for: no code makes it allowed. A
        // request that turns MFA Delete off may suspend, with the code that
        // turning it off needs.
        if mfa_delete && state == VersioningState::Suspended {
            return Err(StoreError::SuspendedWithMfaDelete { bucket: bucket.to_string() });
        }
        if record.versioning == state && record.mfa_delete == mfa_delete {
            return Ok((bucket_info(bucket, &record), None));
        }
        // While MFA Delete is on, and to turn it on or off, a spent code is required.
        if (record.mfa_delete || mfa_delete) && change.mfa.is_none() {
            return Err(StoreError::MfaRequired { bucket: bucket.to_string() });
        }
        let mut detail = format!("{} -> {}", record.versioning.as_str(), state.as_str());
        if mfa_delete != record.mfa_delete {
            detail.push_str(if mfa_delete { "; mfa-delete on" } else { "; mfa-delete off" });
        }
        if let Some(serial) = &change.mfa {
            detail.push_str(&format!("; mfa {serial}"));
        }
        record.versioning = state;
        record.mfa_delete = mfa_delete;
        txn.put(Keyspace::Buckets, bucket.as_str().as_bytes().to_vec(), record.encode());
        let fields = EntryFields { bucket: bucket.to_string(), detail, ..EntryFields::default() };
        let sequence = txn.record(actor, LedgerOp::VersioningChanged, fields);
        Ok((bucket_info(bucket, &record), Some(sequence)))
    }

    fn refusal(&self) -> Option<EntryFields> {
        Some(EntryFields::about(&self.bucket, "", "versioning change"))
    }
}

impl Guardable for SetVersioning {
    fn without_code(&self) -> Option<Self> {
        Some(SetVersioning {
            bucket: self.bucket.clone(),
            change: VersioningChange { mfa: None, ..self.change.clone() },
        })
    }
}

/// Turns Object Lock on and sets or clears the default retention.
#[derive(Clone)]
pub(crate) struct ConfigureObjectLock {
    pub(crate) bucket: BucketName,
    pub(crate) default: Option<DefaultRetention>,
    pub(crate) lowering: Lowering,
}

impl WriterOp for ConfigureObjectLock {
    type Output = (BucketInfo, u64);

    fn apply(self, txn: &mut Txn<'_>, actor: &Actor) -> Result<Self::Output, StoreError> {
        let ConfigureObjectLock { bucket, default, lowering } = self;
        let mut record = txn.bucket(&bucket)?;
        require_owner(actor, &bucket, &record)?;
        if !record.object_lock && record.versioning != VersioningState::Enabled {
            return Err(StoreError::InvalidArgument(
                "Object Lock can be turned on only for a bucket whose versioning is Enabled".to_owned(),
            ));
        }
        if let Some(d) = default {
            d.validate().map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        }
        // Judged here, against the default this same write replaces, so that a
        // change racing another cannot lower what it did not see.
        if lowering == Lowering::NeedsCode && retention::default_lowered(record.default_retention, default) {
            return Err(StoreError::NeedsAdminCode {
                what: format!("clearing or shortening the default retention of bucket `{bucket}`"),
            });
        }
        let detail = match default {
            Some(d) => format!("object-lock on; default {} {:?}", d.mode.as_str(), d.period),
            None => "object-lock on; no default retention".to_owned(),
        };
        record.object_lock = true;
        record.default_retention = default;
        txn.put(Keyspace::Buckets, bucket.as_str().as_bytes().to_vec(), record.encode());
        let fields = EntryFields { bucket: bucket.to_string(), detail, ..EntryFields::default() };
        let sequence = txn.record(actor, LedgerOp::ObjectLockChanged, fields);
        Ok((bucket_info(bucket, &record), sequence))
    }

    fn refusal(&self) -> Option<EntryFields> {
        Some(EntryFields::about(&self.bucket, "", "object lock change"))
    }
}

impl Guardable for ConfigureObjectLock {
    fn without_code(&self) -> Option<Self> {
        Some(ConfigureObjectLock { lowering: Lowering::NeedsCode, ..self.clone() })
    }
}
