//! Object Lock: a version's retention and legal holds, a bucket's default
//! retention.
//!
//! Invariant: the store judges every rule (role, retention, holds) inside
//! the writer, so a refused attempt is in the ledger; a code, when given, is
//! judged after the change itself (`guard.rs`). Releasing a hold and
//! clearing or shortening a default on a guarded appliance need a code from
//! one of the caller's own devices.

use wormbox_mfa::Operation;
use wormbox_model::{BucketName, ObjectKey, VersionSelector};
use wormbox_store::retention::{DefaultRetention, Retention};
use wormbox_store::{Actor, BucketInfo, Guarded, HoldChange, LockRecord};

use crate::guard::Guard;
use crate::{Access, App, AppError, MfaCode};

/// PutObjectRetention.
#[derive(Clone, Debug)]
pub struct PutObjectRetention {
    /// The bucket.
    pub bucket: BucketName,
    /// The key.
    pub key: ObjectKey,
    /// The version; `None` is the latest.
    pub version: Option<VersionSelector>,
    /// The new retention; `None` removes it (GOVERNANCE, with the bypass right).
    pub retention: Option<Retention>,
    /// Whether the request overrides GOVERNANCE retention (honoured only
    /// for a caller holding the bypass right).
    pub bypass_governance: bool,
    /// `SERIAL CODE` of one of the bucket owner's devices.
    pub mfa: Option<MfaCode>,
}

/// PutObjectLegalHold.
#[derive(Clone, Debug)]
pub struct PutObjectLegalHold {
    /// The bucket.
    pub bucket: BucketName,
    /// The key.
    pub key: ObjectKey,
    /// The version; `None` is the latest.
    pub version: Option<VersionSelector>,
    /// The hold's case id (S3's single hold is `retention::S3_HOLD`).
    pub case_id: String,
    /// Place (`true`) or release.
    pub place: bool,
    /// Free text for the ledger.
    pub note: String,
    /// `SERIAL CODE` of one of the caller's own devices (for a release).
    pub mfa: Option<MfaCode>,
}

/// PutBucketDefaultRetention (turns Object Lock on).
#[derive(Clone, Debug)]
pub struct PutBucketDefaultRetention {
    /// The bucket.
    pub bucket: BucketName,
    /// The default of new versions; `None` clears it.
    pub default: Option<DefaultRetention>,
    /// `SERIAL CODE` of one of the caller's own devices (to lower the default).
    pub mfa: Option<MfaCode>,
}

impl App {
    /// PutObjectRetention. A code, when given, is judged against the bucket
    /// owner's devices by the writer, after the change itself.
    pub async fn set_retention(
        &self,
        actor: &Actor,
        request: PutObjectRetention,
    ) -> Result<(LockRecord, Option<u64>), AppError> {
        let PutObjectRetention { bucket, key, version, retention, bypass_governance, mfa } = request;
        // The role is checked by the store, inside the writer, so that a
        // refused attempt is in the ledger; it is checked there before the
        // code, so that no caller without the right can charge the owner's
        // device a failure.
        let version = self.resolve(&bucket, &key, version)?;
        let bypass = self.may_bypass(actor, bypass_governance)?;
        let what = format!("put-object-retention key={key} version={version}");
        let operation = Operation { bucket: bucket.to_string(), what };
        let (b, k) = (bucket.clone(), key.clone());
        let done = self
            .guarded(actor, Guard::BucketOwner(&bucket.clone()), mfa.as_ref(), operation, |_, code| async move {
                match code {
                    None => Ok(Guarded::Done(
                        self.store.set_retention(actor, bucket, key, version, retention, bypass, None).await?,
                    )),
                    Some(code) => {
                        self.store.set_retention_with_code(actor, bucket, key, version, retention, bypass, code).await
                    }
                }
            })
            .await?;
        self.lock_replicated(&b, &k, done.1, "the retention of version", &version.to_string()).await?;
        Ok(done)
    }

    /// A lock change a sync rule covers is answered once the replica
    /// version carries it (`App::replicated`).
    async fn lock_replicated(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        sequence: Option<u64>,
        what: &str,
        version: &str,
    ) -> Result<(), AppError> {
        match sequence {
            Some(sequence) if self.replication.is_sync(bucket, key.as_str()) => {
                self.replicated(bucket, key, sequence, what, version).await
            }
            _ => Ok(()),
        }
    }

    /// PutObjectLegalHold: admins and auditors (compliance officers) only;
    /// the store checks the role, so a refused attempt is in the ledger. A
    /// release on a guarded appliance needs a code from one of the caller's
    /// own devices, judged after the release itself.
    pub async fn set_legal_hold(
        &self,
        actor: &Actor,
        request: PutObjectLegalHold,
    ) -> Result<(LockRecord, Option<u64>), AppError> {
        let PutObjectLegalHold { bucket, key, version, case_id, place, note, mfa } = request;
        let version = self.resolve(&bucket, &key, version)?;
        let what = format!("release-legal-hold key={key} version={version} case={case_id:?}");
        let operation = Operation { bucket: bucket.to_string(), what };
        // Placing a hold raises protection: it takes no code.
        let guard = if place { Guard::Unguarded } else { Guard::Lowering };
        let (b, k) = (bucket.clone(), key.clone());
        let hold = HoldChange { bucket, key, version, case_id, place, note };
        let done = self
            .guarded(actor, guard, mfa.as_ref(), operation, |lowering, code| {
                self.store.change_legal_hold(actor, hold, lowering, code)
            })
            .await?;
        self.lock_replicated(&b, &k, done.1, "the legal hold of version", &version.to_string()).await?;
        Ok(done)
    }

    /// PutBucketDefaultRetention (turns Object Lock on). Clearing or
    /// shortening the default on a guarded appliance needs a code from one
    /// of the caller's own devices; the writer judges whether it does.
    pub async fn set_default_retention(
        &self,
        actor: &Actor,
        request: PutBucketDefaultRetention,
    ) -> Result<(BucketInfo, u64), AppError> {
        let PutBucketDefaultRetention { bucket, default, mfa } = request;
        self.authorize(actor, Access::Write)?;
        let operation = Operation { bucket: bucket.to_string(), what: "put-bucket-default-retention".to_owned() };
        self.guarded(actor, Guard::Lowering, mfa.as_ref(), operation, |lowering, code| {
            self.store.change_object_lock(actor, bucket, default, lowering, code)
        })
        .await
    }
}
