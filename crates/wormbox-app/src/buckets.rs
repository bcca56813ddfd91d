//! Buckets: create, read, list, delete, and versioning with MFA Delete.
//!
//! Invariant: the role is checked here, ownership by the store inside the
//! same atomic write as the change; a versioning change that carries a code
//! spends it only if the change itself passed (`guard.rs`).

use wormbox_mfa::Operation;
use wormbox_model::{BucketName, VersioningState};
use wormbox_store::{Actor, BucketInfo, Guarded, VersioningChange};

use crate::guard::Guard;
use crate::{Access, App, AppError, MfaCode};

/// CreateBucket.
#[derive(Clone, Debug)]
pub struct CreateBucket {
    /// The new bucket.
    pub bucket: BucketName,
    /// Whether Object Lock is on from the start (versioning Enabled, for good).
    pub object_lock: bool,
}

/// GetBucket.
#[derive(Clone, Debug)]
pub struct GetBucket {
    /// The bucket.
    pub bucket: BucketName,
}

/// DeleteBucket.
#[derive(Clone, Debug)]
pub struct DeleteBucket {
    /// The bucket, which must be empty.
    pub bucket: BucketName,
}

/// PutBucketVersioning.
#[derive(Clone, Debug)]
pub struct PutBucketVersioning {
    /// The bucket.
    pub bucket: BucketName,
    /// The new state.
    pub state: VersioningState,
    /// MFA Delete on or off; `None` leaves it as it is.
    pub mfa_delete: Option<bool>,
    /// `SERIAL CODE` of one of the bucket owner's devices.
    pub mfa: Option<MfaCode>,
}

impl App {
    /// CreateBucket.
    pub async fn create_bucket(&self, actor: &Actor, request: CreateBucket) -> Result<(BucketInfo, u64), AppError> {
        self.authorize(actor, Access::Write)?;
        Ok(self.store.create_bucket_with_lock(actor, request.bucket, request.object_lock).await?)
    }

    /// GetBucket.
    pub fn bucket(&self, actor: &Actor, request: &GetBucket) -> Result<BucketInfo, AppError> {
        self.authorize(actor, Access::Metadata)?;
        Ok(self.store.bucket(&request.bucket)?)
    }

    /// ListBuckets. Scans: call it off the async runtime.
    pub fn buckets(&self, actor: &Actor) -> Result<Vec<BucketInfo>, AppError> {
        self.authorize(actor, Access::Metadata)?;
        Ok(self.store.buckets()?)
    }

    /// DeleteBucket.
    pub async fn delete_bucket(&self, actor: &Actor, request: DeleteBucket) -> Result<u64, AppError> {
        self.authorize(actor, Access::Write)?;
        Ok(self.store.delete_bucket(actor, request.bucket).await?)
    }

    /// PutBucketVersioning, with MFA Delete and its code (the bucket owner's).
    pub async fn set_versioning(
        &self,
        actor: &Actor,
        request: PutBucketVersioning,
    ) -> Result<(BucketInfo, Option<u64>), AppError> {
        self.authorize(actor, Access::Write)?;
        let PutBucketVersioning { bucket, state, mfa_delete, mfa } = request;
        let change = VersioningChange { state: Some(state), mfa_delete, mfa: None };
        let what = match mfa_delete {
            Some(on) => format!("put-bucket-versioning status={} mfa-delete={on}", state.as_str()),
            None => format!("put-bucket-versioning status={}", state.as_str()),
        };
        let operation = Operation { bucket: bucket.to_string(), what };
        self.guarded(actor, Guard::BucketOwner(&bucket.clone()), mfa.as_ref(), operation, |_, code| async move {
            match code {
                None => Ok(Guarded::Done(self.store.configure_versioning(actor, bucket, change).await?)),
                Some(code) => self.store.configure_versioning_with_code(actor, bucket, change, code).await,
            }
        })
        .await
    }
}
