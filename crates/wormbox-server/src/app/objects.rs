//! Objects: writes (streamed and Ingest), reads, deletes and listings.
//!
//! Invariant: the role is checked before the store is touched; a legal hold
//! placed at write time needs the hold right; a delete marker destroys
//! nothing and never spends a code, while a permanent delete's code (the
//! bucket owner's) is spent only if the delete itself passed (`guard.rs`).

use wormbox_mfa::Operation;
use wormbox_model::{BucketName, ObjectKey, Role, VersionSelector};
use wormbox_store::{
    Actor, DeleteEntry, DeleteOutcome, EntryOutcome, Guarded, ListObjectsParams, ListVersionsParams, NewObject,
    ObjectReader, ObjectsPage, StoreError, VersionInfo, VersionsPage, WriteAck,
};

use crate::app::guard::Guard;
use crate::app::{Access, App, AppError, AppUpload, MfaCode};

/// PutObject (streamed: the body goes to the returned upload) and one
/// Ingest record (the body is `data`).
#[derive(Clone, Debug)]
pub struct PutObject {
    /// The bucket.
    pub bucket: BucketName,
    /// The key.
    pub key: ObjectKey,
    /// Content type, user metadata, stated digest, retention and legal hold.
    pub object: NewObject,
}

/// One Ingest record: a whole object in one message.
#[derive(Clone, Debug)]
pub struct Ingest {
    /// Where and what, as for PutObject.
    pub put: PutObject,
    /// The body, at most `App::max_ingest_record_bytes`.
    pub data: Vec<u8>,
}

/// GetObject and HeadObject.
#[derive(Clone, Debug)]
pub struct GetObject {
    /// The bucket.
    pub bucket: BucketName,
    /// The key.
    pub key: ObjectKey,
    /// The version; `None` is the latest.
    pub version: Option<VersionSelector>,
}

/// DeleteObject.
#[derive(Clone, Debug)]
pub struct DeleteObject {
    /// The bucket.
    pub bucket: BucketName,
    /// The key.
    pub key: ObjectKey,
    /// The version to remove for good; `None` writes a delete marker.
    pub version: Option<VersionSelector>,
    /// `SERIAL CODE` of one of the bucket owner's devices.
    pub mfa: Option<MfaCode>,
    /// Whether the request overrides GOVERNANCE retention (honoured only
    /// for a caller holding the bypass right).
    pub bypass_governance: bool,
}

/// DeleteObjects: up to `MAX_DELETE_ENTRIES` deletes in one bucket.
#[derive(Clone, Debug)]
pub struct DeleteObjects {
    /// The bucket.
    pub bucket: BucketName,
    /// The deletes, each answered on its own.
    pub entries: Vec<DeleteEntry>,
    /// One code for all of the request's permanent deletes.
    pub mfa: Option<MfaCode>,
    /// As for `DeleteObject`.
    pub bypass_governance: bool,
}

/// ListObjectVersions.
#[derive(Clone, Debug)]
pub struct ListObjectVersions {
    /// The bucket.
    pub bucket: BucketName,
    /// Prefix, delimiter, markers and page size.
    pub params: ListVersionsParams,
}

/// ListObjects.
#[derive(Clone, Debug)]
pub struct ListObjects {
    /// The bucket.
    pub bucket: BucketName,
    /// Prefix, delimiter, start and page size.
    pub params: ListObjectsParams,
}

impl App {
    /// A legal hold placed at write time needs the hold right (admins; auditors cannot write).
    fn authorize_lock_fields(&self, actor: &Actor, object: &NewObject) -> Result<(), AppError> {
        if object.legal_hold.is_some() && actor.role != Role::Admin {
            let why = "only admins place a legal hold with a write (auditors place holds with PutObjectLegalHold)";
            return Err(self.denied(actor, "admin", why.to_owned(), StoreError::AccessDenied));
        }
        Ok(())
    }

    /// PutObject, streamed: the body goes to the upload, which `finish`
    /// publishes as `actor`.
    pub fn begin_upload(&self, actor: &Actor, request: PutObject) -> Result<AppUpload, AppError> {
        self.authorize(actor, Access::Write)?;
        self.authorize_lock_fields(actor, &request.object)?;
        Ok(AppUpload::new(self.store.begin_upload(request.bucket, request.key, request.object)?))
    }

    /// One Ingest record.
    pub async fn ingest(&self, actor: &Actor, request: Ingest) -> Result<WriteAck, AppError> {
        let Ingest { put: PutObject { bucket, key, object }, data } = request;
        self.authorize(actor, Access::Write)?;
        self.authorize_lock_fields(actor, &object)?;
        if data.len() as u64 > self.max_ingest_record_bytes {
            return Err(StoreError::TooLarge { limit: self.max_ingest_record_bytes }.into());
        }
        Ok(self.store.put_object(actor, bucket, key, object, data).await?)
    }

    /// GetObject: the version and a reader of its bytes (which reads the
    /// backend: iterate it off the async runtime).
    pub fn read_object(&self, actor: &Actor, request: &GetObject) -> Result<(VersionInfo, ObjectReader), AppError> {
        self.authorize(actor, Access::ReadData)?;
        Ok(self.store.read_object(&request.bucket, &request.key, request.version)?)
    }

    /// HeadObject.
    pub fn head_object(&self, actor: &Actor, request: &GetObject) -> Result<VersionInfo, AppError> {
        self.authorize(actor, Access::Metadata)?;
        Ok(self.store.head_object(&request.bucket, &request.key, request.version)?)
    }

    /// DeleteObject.
    pub async fn delete_object(&self, actor: &Actor, request: DeleteObject) -> Result<DeleteOutcome, AppError> {
        let DeleteObject { bucket, key, version, mfa, bypass_governance } = request;
        self.authorize(actor, Access::Write)?;
        let bypass = self.may_bypass(actor, bypass_governance)?;
        // A delete marker destroys nothing and never spends a code.
        let (Some(mfa), Some(selector)) = (mfa, version) else {
            return Ok(self.store.delete_object_guarded(actor, bucket, key, version, None, bypass).await?);
        };
        let what = format!("delete-version key={key} version={selector}");
        let operation = Operation { bucket: bucket.to_string(), what };
        self.guarded(actor, Guard::BucketOwner(&bucket.clone()), Some(&mfa), operation, |_, code| async move {
            match code {
                Some(code) => self.store.delete_object_with_code(actor, bucket, key, selector, bypass, code).await,
                None => Ok(Guarded::Done(
                    self.store.delete_object_guarded(actor, bucket, key, Some(selector), None, bypass).await?,
                )),
            }
        })
        .await
    }

    /// DeleteObjects: each entry answered on its own, with one code for all
    /// of its permanent deletes. The role is checked first; the writer then
    /// judges every entry, and the code (the bucket owner's, as for
    /// DeleteObject) only if one permanent delete passed; a refused code
    /// fails the whole request.
    pub async fn delete_objects(&self, actor: &Actor, request: DeleteObjects) -> Result<Vec<EntryOutcome>, AppError> {
        let DeleteObjects { bucket, entries, mfa, bypass_governance } = request;
        self.authorize(actor, Access::Write)?;
        let bypass = self.may_bypass(actor, bypass_governance)?;
        let purges = entries.iter().filter(|e| e.version.is_some()).count();
        // Markers destroy nothing: a request of markers only spends no code.
        let mfa = mfa.filter(|_| purges > 0);
        let what = format!("delete-objects entries={} versions={purges}", entries.len());
        let operation = Operation { bucket: bucket.to_string(), what };
        self.guarded(actor, Guard::BucketOwner(&bucket.clone()), mfa.as_ref(), operation, |_, code| async move {
            match code {
                Some(code) => self.store.delete_objects_with_code(actor, bucket, entries, bypass, code).await,
                None => Ok(Guarded::Done(self.store.delete_objects(actor, bucket, entries, bypass).await?)),
            }
        })
        .await
    }

    /// ListObjectVersions. Scans: call it off the async runtime.
    pub fn list_versions(&self, actor: &Actor, request: &ListObjectVersions) -> Result<VersionsPage, AppError> {
        self.authorize(actor, Access::Metadata)?;
        Ok(self.store.list_versions(&request.bucket, &request.params)?)
    }

    /// ListObjects. Scans: call it off the async runtime.
    pub fn list_objects(&self, actor: &Actor, request: &ListObjects) -> Result<ObjectsPage, AppError> {
        self.authorize(actor, Access::Metadata)?;
        Ok(self.store.list_objects(&request.bucket, &request.params)?)
    }
}
