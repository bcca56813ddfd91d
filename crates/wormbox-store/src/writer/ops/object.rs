//! Object rules: writing a version (inline or a staged upload), deleting an
//! object (a marker, or a permanent delete by version id), a multi-object
//! delete, and the purge and `null`-version replacement they share.
//!
//! Invariant: a version record is inserted once and never rewritten; the only
//! removals are a permanent delete by version id (judged against retention,
//! holds and MFA Delete in the same write) and the `null`-version replacement
//! of unversioned and suspended buckets, each a `version-purged` entry; a
//! staged upload is published only while staged and whole.

use wormbox_model::{BucketName, Digest, ObjectKey, VersionSelector, VersioningState};

use super::lock::{lock_detail, lock_error};
use crate::backend::Keyspace;
use crate::codec::{self, BucketRecord, DataRef, LockRecord, VersionRecord};
use crate::evidence;
use crate::ledger::LedgerOp;
use crate::retention::{self, LegalHold, Override};
use crate::view::View;
use crate::writer::{EntryFields, Guardable, Txn, WriterOp, fails_the_store};
use crate::{
    Actor, CHUNK_BYTES, DeleteEntry, DeleteOutcome, EntryOutcome, MAX_DELETE_ENTRIES, NewObject, StoreError, WriteAck,
    external_id, keys, versions,
};

/// Removes one version or marker for good, with its chunks and null pointer.
fn purge(
    txn: &mut Txn<'_>,
    actor: &Actor,
    bucket: &BucketName,
    key: &ObjectKey,
    record: &VersionRecord,
    why: &str,
) -> u64 {
    txn.delete(Keyspace::Versions, keys::version_key(bucket, key.as_str(), record.id));
    txn.delete(Keyspace::Locks, keys::version_key(bucket, key.as_str(), record.id));
    // A tiered version's location goes with it (none is there otherwise).
    txn.delete(Keyspace::Meta, crate::meta::bytes_at_delete_key(&keys::version_key(bucket, key.as_str(), record.id)));
    if let Some(data) = record.data {
        for index in 0..data.chunks {
            txn.delete(Keyspace::Chunks, keys::chunk_key(data.upload, index));
        }
    }
    if record.is_null {
        txn.delete(Keyspace::Nulls, keys::object_prefix(bucket, key.as_str()));
    }
    let fields = EntryFields {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version: Some(record.id),
        sha256: (!record.is_delete_marker).then_some(record.sha256),
        detail: why.to_owned(),
        ..EntryFields::default()
    };
    txn.record(actor, LedgerOp::VersionPurged, fields)
}

/// Writes a new version or marker record; ids are unique, so an existing key
/// means a broken invariant, and nothing is overwritten.
fn insert_version(
    txn: &mut Txn<'_>,
    bucket: &BucketName,
    key: &ObjectKey,
    record: &VersionRecord,
) -> Result<Vec<u8>, StoreError> {
    // Not looked up first: ids only grow (`Txn::new_version_id`), and
    // `Store::open` refuses a clock mark behind the newest id in the ledger.
    let version_key = keys::version_key(bucket, key.as_str(), record.id);
    let stored = record.encode();
    txn.put(Keyspace::Versions, version_key, stored.clone());
    if record.is_null {
        txn.put(Keyspace::Nulls, keys::object_prefix(bucket, key.as_str()), record.id.to_bytes().to_vec());
    }
    Ok(stored)
}

/// While MFA Delete is on, destroying a version needs a code. A bucket can
/// no longer be Suspended then, but one that an older build left so would
/// let every write replace its `null` versions with none: such writes are
/// refused instead (a write carries no code).
fn guard_null_replacement(record: &BucketRecord, bucket: &BucketName, key: &ObjectKey) -> Result<(), StoreError> {
    if record.mfa_delete {
        return Err(StoreError::NullVersionNeedsMfa { bucket: bucket.to_string(), key: key.to_string() });
    }
    Ok(())
}

/// The bytes of a new version.
#[derive(Debug)]
pub(crate) enum VersionData {
    /// Small bodies travel with the operation and are written in the same batch.
    Inline(Vec<u8>),
    /// Large bodies were written as chunks of an upload beforehand.
    Staged { upload: u128, chunks: u32 },
}

/// Writes a new version (or replaces the `null` version).
#[derive(Debug)]
pub(crate) struct PutVersion {
    pub(crate) bucket: BucketName,
    pub(crate) key: ObjectKey,
    pub(crate) object: NewObject,
    pub(crate) sha256: Digest,
    pub(crate) size: u64,
    pub(crate) data: VersionData,
}

impl WriterOp for PutVersion {
    type Output = WriteAck;

    fn apply(self, txn: &mut Txn<'_>, actor: &Actor) -> Result<WriteAck, StoreError> {
        put_version(txn, actor, self)
    }

    fn weight(&self) -> usize {
        match &self.data {
            VersionData::Inline(data) => data.len(),
            VersionData::Staged { .. } => 0,
        }
    }

    fn staged(&self) -> Option<(u128, u32)> {
        match self.data {
            VersionData::Staged { upload, chunks } => Some((upload, chunks)),
            VersionData::Inline(_) => None,
        }
    }

    fn new_version_bytes(&self) -> Option<u64> {
        Some(self.size)
    }

    // Writes are the hot path: they build no refusal entry up front, and
    // the one refusal of them that is evidence (replacing a protected
    // `null` version) is described from its error (`refused_write`).
}

fn put_version(txn: &mut Txn<'_>, actor: &Actor, put: PutVersion) -> Result<WriteAck, StoreError> {
    let bucket_record = txn.bucket(&put.bucket)?;
    let asks_lock = put.object.retention.is_some() || put.object.legal_hold.is_some();
    if asks_lock && !bucket_record.object_lock {
        return Err(StoreError::InvalidArgument(format!(
            "bucket `{}` has no Object Lock: retention and legal holds need it",
            put.bucket
        )));
    }
    let now = txn.tick();
    if let Some(r) = put.object.retention {
        retention::check_date(r.until, now).map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
    }
    let lock_retention =
        put.object.retention.or_else(|| bucket_record.default_retention.map(|d| d.retention_from(now)));
    if let VersionData::Staged { upload, chunks } = &put.data {
        check_staged(txn, *upload, *chunks, put.size)?;
    }
    let is_null = bucket_record.versioning != VersioningState::Enabled;
    if is_null && let Some(old) = versions::null_version(txn, &put.bucket, &put.key)? {
        guard_null_replacement(&bucket_record, &put.bucket, &put.key)?;
        purge(txn, actor, &put.bucket, &put.key, &old, "replaced by a new null version");
    }
    let id = txn.new_version_id();
    let data = match put.data {
        VersionData::Inline(bytes) if bytes.is_empty() => DataRef { upload: id.as_u128(), chunks: 0 },
        VersionData::Inline(bytes) => {
            let chunk = codec::encode_chunk_with_digest(&put.sha256, &bytes);
            txn.put(Keyspace::Chunks, keys::chunk_key(id.as_u128(), 0), chunk);
            DataRef { upload: id.as_u128(), chunks: 1 }
        }
        VersionData::Staged { upload, chunks } => {
            txn.delete(Keyspace::Staging, upload.to_be_bytes().to_vec());
            DataRef { upload, chunks }
        }
    };
    let record = VersionRecord {
        id,
        is_null,
        is_delete_marker: false,
        size: put.size,
        sha256: put.sha256,
        content_type: put.object.content_type,
        user_metadata: put.object.user_metadata,
        created_at: txn.state.last_time,
        creator: actor.access_key.clone(),
        data: Some(data),
        etag: put.object.etag,
    };
    let stored = insert_version(txn, &put.bucket, &put.key, &record)?;
    let mut detail = format!("size={}", put.size);
    let mut lock_sha256 = None;
    if lock_retention.is_some() || put.object.legal_hold.is_some() {
        let holds: Vec<LegalHold> = put
            .object
            .legal_hold
            .iter()
            .map(|case_id| LegalHold {
                case_id: case_id.clone(),
                placed_by: actor.access_key.clone(),
                placed_at: now,
                note: String::new(),
            })
            .collect();
        let lock = LockRecord { retention: lock_retention, holds };
        detail.push_str(&lock_detail(&lock));
        let lock = lock.encode();
        lock_sha256 = Some(evidence::sha256(&lock));
        txn.put(Keyspace::Locks, keys::version_key(&put.bucket, put.key.as_str(), id), lock);
    }
    let fields = EntryFields {
        bucket: put.bucket.to_string(),
        key: put.key.to_string(),
        version: Some(id),
        sha256: Some(put.sha256),
        record_sha256: Some(evidence::sha256(&stored)),
        lock_sha256,
        detail,
    };
    let ledger_sequence = txn.record(actor, LedgerOp::VersionWritten, fields);
    Ok(WriteAck { id, version_id: external_id(id, is_null), sha256: put.sha256, size: put.size, ledger_sequence })
}

/// Discards an upload abandoned before its publish was queued (its `Upload`
/// dropped: a client gone, an error, a cancelled request), unless it is no
/// longer staged. No ledger entry: nothing published changes.
pub(crate) struct DiscardUpload {
    pub(crate) upload: u128,
    pub(crate) chunks: u32,
}

impl WriterOp for DiscardUpload {
    type Output = ();

    fn apply(self, txn: &mut Txn<'_>, _actor: &Actor) -> Result<(), StoreError> {
        txn.discard_staged(self.upload, self.chunks);
        Ok(())
    }
}

/// A staged upload's chunks were written outside the writer: it is published
/// only while it is still staged and every chunk is there at the length the
/// upload wrote, so that no version can name bytes that are gone. Lengths
/// come from the chunks' framing; their digests are checked on every read.
fn check_staged(txn: &Txn<'_>, upload: u128, chunks: u32, size: u64) -> Result<(), StoreError> {
    let refuse = |why: String| StoreError::DataLoss { what: format!("the upload was not published: {why}") };
    if txn.get(Keyspace::Staging, &upload.to_be_bytes())?.is_none() {
        return Err(refuse("it is no longer staged".to_owned()));
    }
    let full = CHUNK_BYTES as u64;
    let before_last = u64::from(chunks.saturating_sub(1)) * full;
    if chunks == 0 || size <= before_last || size - before_last > full {
        return Err(refuse(format!("{size} bytes do not make {chunks} chunks")));
    }
    for index in 0..chunks {
        let expected = if index + 1 == chunks { size - before_last } else { full };
        let raw = txn
            .get(Keyspace::Chunks, &keys::chunk_key(upload, index))?
            .ok_or_else(|| refuse(format!("chunk {index} of {chunks} is missing")))?;
        let len = codec::chunk_len(&raw).map_err(|_| refuse(format!("chunk {index} of {chunks} is malformed")))?;
        if len as u64 != expected {
            return Err(refuse(format!("chunk {index} of {chunks} holds {len} bytes, not {expected}")));
        }
    }
    Ok(())
}

/// Deletes an object: a delete marker, or with a version a permanent delete
/// judged against retention, holds and MFA Delete.
#[derive(Clone, Debug)]
pub(crate) struct DeleteObject {
    pub(crate) bucket: BucketName,
    pub(crate) key: ObjectKey,
    pub(crate) version: Option<VersionSelector>,
    /// The serial of the device whose code is checked with it.
    pub(crate) mfa: Option<String>,
    pub(crate) bypass: bool,
}

impl WriterOp for DeleteObject {
    type Output = DeleteOutcome;

    fn apply(self, txn: &mut Txn<'_>, actor: &Actor) -> Result<DeleteOutcome, StoreError> {
        delete_object(txn, actor, &self.bucket, &self.key, self.version, self.mfa, self.bypass)
    }

    fn refusal(&self) -> Option<EntryFields> {
        let version = self.version.as_ref()?;
        Some(EntryFields::about(&self.bucket, self.key.as_str(), &format!("permanent delete of version {version}")))
    }
}

impl Guardable for DeleteObject {
    fn without_code(&self) -> Option<Self> {
        Some(DeleteObject { mfa: None, ..self.clone() })
    }
}

fn delete_object(
    txn: &mut Txn<'_>,
    actor: &Actor,
    bucket: &BucketName,
    key: &ObjectKey,
    version: Option<VersionSelector>,
    mfa: Option<String>,
    bypass: bool,
) -> Result<DeleteOutcome, StoreError> {
    let bucket_record = txn.bucket(bucket)?;
    if let Some(selector) = version {
        let record = versions::resolve(txn, bucket, key, &selector)?;
        // Judged here, in the same atomic write as the purge: no change of
        // retention, hold or clock can slip in between.
        let lock = versions::lock(txn, bucket, key.as_str(), record.id)?;
        let with = Override { bypass, mfa_required: bucket_record.mfa_delete, mfa_verified: mfa.is_some() };
        let now = txn.tick();
        retention::judge_purge(lock.retention, lock.holds.len(), now, with)
            .map_err(|e| lock_error(e, bucket, key, &external_id(record.id, record.is_null)))?;
        // Asked only once everything that needs no code has let the purge
        // through: a locked or held version answers so, with or without a code.
        if bucket_record.mfa_delete && mfa.is_none() {
            return Err(StoreError::MfaRequired { bucket: bucket.to_string() });
        }
        let mut why = "permanent delete by version id".to_owned();
        if let Some(serial) = &mfa {
            why.push_str(&format!("; mfa {serial}"));
        }
        if bypass && lock.retention.is_some_and(|r| r.protects_at(now)) {
            why.push_str("; governance bypassed");
        }
        let sequence = purge(txn, actor, bucket, key, &record, &why);
        return Ok(DeleteOutcome {
            version_id: Some(external_id(record.id, record.is_null)),
            delete_marker: record.is_delete_marker,
            ledger_sequence: Some(sequence),
        });
    }
    match bucket_record.versioning {
        VersioningState::Unversioned => match versions::null_version(txn, bucket, key)? {
            Some(record) => {
                guard_null_replacement(&bucket_record, bucket, key)?;
                let sequence = purge(txn, actor, bucket, key, &record, "delete in an unversioned bucket");
                Ok(DeleteOutcome { version_id: None, delete_marker: false, ledger_sequence: Some(sequence) })
            }
            None => Ok(DeleteOutcome { version_id: None, delete_marker: false, ledger_sequence: None }),
        },
        VersioningState::Enabled | VersioningState::Suspended => {
            let is_null = bucket_record.versioning == VersioningState::Suspended;
            if is_null && let Some(old) = versions::null_version(txn, bucket, key)? {
                guard_null_replacement(&bucket_record, bucket, key)?;
                purge(txn, actor, bucket, key, &old, "replaced by a null delete marker");
            }
            let id = txn.new_version_id();
            let record = VersionRecord {
                id,
                is_null,
                is_delete_marker: true,
                size: 0,
                sha256: Digest([0; 32]),
                content_type: String::new(),
                user_metadata: Default::default(),
                created_at: txn.state.last_time,
                creator: actor.access_key.clone(),
                data: None,
                etag: None,
            };
            let stored = insert_version(txn, bucket, key, &record)?;
            let fields = EntryFields {
                bucket: bucket.to_string(),
                key: key.to_string(),
                version: Some(id),
                record_sha256: Some(evidence::sha256(&stored)),
                ..EntryFields::default()
            };
            let sequence = txn.record(actor, LedgerOp::MarkerWritten, fields);
            Ok(DeleteOutcome {
                version_id: Some(external_id(id, is_null)),
                delete_marker: true,
                ledger_sequence: Some(sequence),
            })
        }
    }
}

/// A multi-object delete: `mfa` and `bypass` cover every entry. Each entry
/// is judged and run as `DeleteObject` would, in request order, each with
/// its own savepoint, so that an entry refused (a lock, a hold, a missing
/// version or code) is rolled back and ledgered as the same single delete
/// would be while the others go on. A missing bucket, bad input or a
/// failure of the store itself fails the whole operation, and the group
/// rolls all of it back.
#[derive(Clone, Debug)]
pub(crate) struct DeleteObjects {
    pub(crate) bucket: BucketName,
    pub(crate) entries: Vec<DeleteEntry>,
    pub(crate) mfa: Option<String>,
    pub(crate) bypass: bool,
}

impl WriterOp for DeleteObjects {
    /// Each entry's outcome, in request order.
    type Output = Vec<EntryOutcome>;

    fn apply(self, txn: &mut Txn<'_>, actor: &Actor) -> Result<Vec<EntryOutcome>, StoreError> {
        if self.entries.is_empty() || self.entries.len() > MAX_DELETE_ENTRIES {
            return Err(StoreError::InvalidArgument(format!(
                "a multi-object delete names 1 to {MAX_DELETE_ENTRIES} objects, not {}",
                self.entries.len()
            )));
        }
        txn.bucket(&self.bucket)?;
        let DeleteObjects { bucket, entries, mfa, bypass } = self;
        let mut each = Vec::with_capacity(entries.len());
        for entry in entries {
            let single = DeleteObject {
                bucket: bucket.clone(),
                key: entry.key.clone(),
                version: entry.version,
                mfa: mfa.clone(),
                bypass,
            };
            let attempt = single.refusal();
            let savepoint = txn.savepoint();
            let result = match single.apply(txn, actor) {
                Err(err) if fails_the_store(&err) => return Err(err),
                result => result,
            };
            if let Err(err) = &result {
                txn.rollback(savepoint);
                txn.note_refusal(actor, attempt, err);
            }
            each.push(EntryOutcome { entry, result });
        }
        Ok(each)
    }

    /// Each entry weighs what a single delete's request does (a key is at
    /// most the floor), so that multi-object requests let neither the queue
    /// nor a group hold a thousand times more deletes.
    fn weight(&self) -> usize {
        self.entries.len() * crate::writer::REQUEST_FLOOR
    }
}

impl Guardable for DeleteObjects {
    /// None of its permanent deletes passed.
    fn spends_no_code(judged: &Vec<EntryOutcome>) -> bool {
        !judged.iter().any(|e| e.entry.version.is_some() && e.result.is_ok())
    }
}
