//! Objects: writes (streamed and Ingest), reads, deletes and listings.
//!
//! Invariant: the role is checked before the store is touched; a legal hold
//! placed at write time needs the hold right; a delete marker destroys
//! nothing and never spends a code, while a permanent delete's code (the
//! bucket owner's) is spent only if the delete itself passed (`guard.rs`).
//!
//! A write a sync replication rule covers (a version, a delete marker, and
//! in `locks.rs` a retention or hold change) is answered only once the
//! replica holds it (`App::replicated`); the local write is durable first
//! and stands whatever the replica does.

use std::sync::Arc;

use wormbox_mfa::Operation;
use wormbox_model::{BucketName, ObjectKey, Role, VersionSelector};
use wormbox_store::{
    Actor, DeleteEntry, DeleteOutcome, EntryOutcome, Guarded, ListObjectsParams, ListVersionsParams, NewObject,
    ObjectsPage, StoreError, VersionInfo, VersionsPage, WriteAck,
};

use crate::ObjectBody;
use crate::guard::Guard;
use crate::{Access, App, AppError, AppUpload, MfaCode};

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
    pub(crate) fn authorize_lock_fields(&self, actor: &Actor, object: &NewObject) -> Result<(), AppError> {
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
        let sync = self
            .replication
            .is_sync(&request.bucket, request.key.as_str())
            .then(|| (Arc::clone(&self.replication), request.bucket.clone(), request.key.clone()));
        Ok(AppUpload::new(self.store.begin_upload(request.bucket, request.key, request.object)?, sync))
    }

    /// One Ingest record. `stored` is called once the record is stored
    /// locally (before a sync rule's wait for the replica): a front end
    /// returns the record's receive budget there.
    pub async fn ingest(&self, actor: &Actor, request: Ingest, stored: impl FnOnce()) -> Result<WriteAck, AppError> {
        let Ingest { put: PutObject { bucket, key, object }, data } = request;
        self.authorize(actor, Access::Write)?;
        self.authorize_lock_fields(actor, &object)?;
        if data.len() as u64 > self.max_ingest_record_bytes {
            return Err(StoreError::TooLarge { limit: self.max_ingest_record_bytes }.into());
        }
        let sync = self.replication.is_sync(&bucket, key.as_str()).then(|| (bucket.clone(), key.clone()));
        let ack = self.store.put_object(actor, bucket, key, object, data).await;
        stored();
        let ack = ack?;
        if let Some((bucket, key)) = sync {
            self.replicated(&bucket, &key, ack.ledger_sequence, "version", &ack.version_id).await?;
        }
        Ok(ack)
    }

    /// Waits until every sync rule covering `bucket`/`key` holds the write
    /// at ledger `sequence` (`Replication::confirm`); `what` ("version",
    /// "delete marker", ...) and `version_id` name it in a `ReplicaPending`.
    pub(crate) async fn replicated(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        sequence: u64,
        what: &str,
        version_id: &str,
    ) -> Result<(), AppError> {
        let name = || format!("{what} {version_id} of `{bucket}/{key}`");
        Ok(self.replication.confirm(bucket, key.as_str(), sequence, name, version_id).await?)
    }

    /// Waits for the replica as `replicated` does for a delete's outcome,
    /// when it wrote a delete marker.
    async fn marker_replicated(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        outcome: &DeleteOutcome,
    ) -> Result<(), AppError> {
        if let (true, Some(sequence)) = (outcome.delete_marker, outcome.ledger_sequence) {
            let id = outcome.version_id.as_deref().unwrap_or_default();
            self.replicated(bucket, key, sequence, "delete marker", id).await?;
        }
        Ok(())
    }

    /// GetObject: the version and a reader of its bytes (which reads the
    /// backend or a spool file: iterate it off the async runtime). A version
    /// whose bytes were released is read from its replica and checked whole
    /// first (`app/tier.rs`).
    pub async fn read_object(&self, actor: &Actor, request: &GetObject) -> Result<(VersionInfo, ObjectBody), AppError> {
        self.authorize(actor, Access::ReadData)?;
        let (info, reader) = self.store.read_object(&request.bucket, &request.key, request.version)?;
        let body = self.body_of(&info, reader).await?;
        Ok((info, body))
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
            let (b, k) = (bucket.clone(), key.clone());
            let outcome = self.store.delete_object_guarded(actor, bucket, key, version, None, bypass).await?;
            // A sync rule's replica holds the marker before it is answered
            // (a purge is not waited for: the replica keeps its copy anyway
            // unless the rule copies purges).
            if version.is_none() {
                self.marker_replicated(&b, &k, &outcome).await?;
            }
            return Ok(outcome);
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
        let b = bucket.clone();
        let outcomes = self
            .guarded(actor, Guard::BucketOwner(&bucket.clone()), mfa.as_ref(), operation, |_, code| async move {
                match code {
                    Some(code) => self.store.delete_objects_with_code(actor, bucket, entries, bypass, code).await,
                    None => Ok(Guarded::Done(self.store.delete_objects(actor, bucket, entries, bypass).await?)),
                }
            })
            .await?;
        // The markers a sync rule covers, newest first: once the newest is
        // confirmed the older ones of the same rule are too.
        let mut markers: Vec<_> = outcomes
            .iter()
            .filter(|o| o.entry.version.is_none())
            .filter_map(|o| o.result.as_ref().ok().map(|done| (&o.entry.key, done)))
            .filter(|(key, _)| self.replication.is_sync(&b, key.as_str()))
            .collect();
        markers.sort_by_key(|(_, done)| std::cmp::Reverse(done.ledger_sequence));
        for (key, done) in markers {
            self.marker_replicated(&b, key, done).await?;
        }
        Ok(outcomes)
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
