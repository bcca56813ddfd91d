//! Object Lock rules on one version: retention changes and legal holds, and
//! the lock text and errors the object rules share.
//!
//! Invariant: a lock change is judged by `retention.rs` against the lock
//! record and the compliance clock as this same write sees them, and is
//! written with its `lock_sha256` in the ledger; releasing a hold needs the
//! code `Lowering::NeedsCode` asks for.

use wormbox_model::{BucketName, ObjectKey, VersionId, VersionSelector};

use crate::backend::Keyspace;
use crate::codec::{BucketRecord, LockRecord, VersionRecord};
use crate::evidence;
use crate::ledger::LedgerOp;
use crate::retention::{self, LegalHold, LockError, Override, Retention};
use crate::writer::{EntryFields, Guardable, Txn, WriterOp};
use crate::{Actor, Lowering, StoreError, external_id, keys, versions};

pub(super) fn lock_detail(lock: &LockRecord) -> String {
    let mut out = String::new();
    if let Some(r) = lock.retention {
        out.push_str(&format!("; retention {} until {}", r.mode.as_str(), r.until.to_rfc3339()));
    }
    for hold in &lock.holds {
        out.push_str(&format!("; hold {}", hold.case_id));
    }
    out
}

pub(super) fn lock_error(err: LockError, bucket: &BucketName, key: &ObjectKey, version: &str) -> StoreError {
    let (key, version) = (key.to_string(), version.to_owned());
    match err {
        LockError::InvalidDate => StoreError::InvalidArgument(err.to_string()),
        LockError::ShortenDenied(why) => StoreError::RetentionShortenDenied(why.to_owned()),
        LockError::MfaRequired => StoreError::MfaRequired { bucket: bucket.to_string() },
        LockError::Locked(..) => StoreError::ObjectLocked { key, version, why: err.to_string() },
        LockError::Held => StoreError::LegalHold { key, version },
    }
}

/// The version a lock command names, which must exist and not be a marker.
fn locked_target(
    txn: &Txn<'_>,
    bucket: &BucketName,
    key: &ObjectKey,
    version: &VersionSelector,
) -> Result<(BucketRecord, VersionRecord), StoreError> {
    let bucket_record = txn.bucket(bucket)?;
    if !bucket_record.object_lock {
        return Err(StoreError::InvalidArgument(format!("bucket `{bucket}` has no Object Lock")));
    }
    let record = versions::resolve(txn, bucket, key, version)?;
    if record.is_delete_marker {
        return Err(StoreError::VersionIsDeleteMarker { key: key.to_string(), version: version.to_string() });
    }
    Ok((bucket_record, record))
}

/// Sets, extends or (where governance allows) shortens or clears a
/// version's retention; answers the lock as written and its sequence.
#[derive(Clone, Debug)]
pub(crate) struct SetRetention {
    pub(crate) bucket: BucketName,
    pub(crate) key: ObjectKey,
    pub(crate) version: VersionSelector,
    pub(crate) retention: Option<Retention>,
    /// `bypass_governance` requested by a principal holding the right.
    pub(crate) bypass: bool,
    /// The serial of the device whose code is checked with it.
    pub(crate) mfa: Option<String>,
}

impl WriterOp for SetRetention {
    type Output = (LockRecord, u64);

    fn apply(self, txn: &mut Txn<'_>, actor: &Actor) -> Result<Self::Output, StoreError> {
        let set = self;
        // Checked here rather than by the caller so that the refusal is ledgered.
        if !matches!(actor.role, wormbox_model::Role::Admin | wormbox_model::Role::Writer) {
            return Err(StoreError::AccessDenied(format!("role `{}` may not change retention", actor.role.as_str())));
        }
        let (bucket_record, version) = locked_target(txn, &set.bucket, &set.key, &set.version)?;
        let mut lock = versions::lock(txn, &set.bucket, set.key.as_str(), version.id)?;
        let now = txn.tick();
        let with =
            Override { bypass: set.bypass, mfa_required: bucket_record.mfa_delete, mfa_verified: set.mfa.is_some() };
        let version_text = external_id(version.id, version.is_null);
        retention::judge_change(lock.retention, set.retention, now, with)
            .map_err(|e| lock_error(e, &set.bucket, &set.key, &version_text))?;
        let before = lock.retention;
        lock.retention = set.retention;
        let describe = |r: Option<Retention>| match r {
            Some(r) => format!("{} until {}", r.mode.as_str(), r.until.to_rfc3339()),
            None => "none".to_owned(),
        };
        let mut detail = format!("{} -> {}", describe(before), describe(lock.retention));
        if set.bypass {
            detail.push_str("; bypass requested");
        }
        if let Some(serial) = &set.mfa {
            detail.push_str(&format!("; mfa {serial}"));
        }
        let sequence =
            write_lock(txn, actor, (&set.bucket, &set.key, version.id), &lock, LedgerOp::RetentionChanged, detail);
        Ok((lock, sequence))
    }

    fn refusal(&self) -> Option<EntryFields> {
        Some(EntryFields::about(
            &self.bucket,
            self.key.as_str(),
            &format!("retention change of version {}", self.version),
        ))
    }
}

impl Guardable for SetRetention {
    fn without_code(&self) -> Option<Self> {
        Some(SetRetention { mfa: None, ..self.clone() })
    }
}

/// Writes a version's changed lock record and its ledger entry, which
/// attests the record as stored (`lock_sha256`).
fn write_lock(
    txn: &mut Txn<'_>,
    actor: &Actor,
    (bucket, key, id): (&BucketName, &ObjectKey, VersionId),
    lock: &LockRecord,
    op: LedgerOp,
    detail: String,
) -> u64 {
    let stored = lock.encode();
    let lock_sha256 = Some(evidence::sha256(&stored));
    txn.put(Keyspace::Locks, keys::version_key(bucket, key.as_str(), id), stored);
    let fields = EntryFields {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version: Some(id),
        lock_sha256,
        detail,
        ..EntryFields::default()
    };
    txn.record(actor, op, fields)
}

/// Places or releases a named legal hold; answers the lock and the ledger
/// sequence, `None` when nothing changed.
#[derive(Clone, Debug)]
pub(crate) struct SetHold {
    pub(crate) bucket: BucketName,
    pub(crate) key: ObjectKey,
    pub(crate) version: VersionSelector,
    pub(crate) case_id: String,
    pub(crate) place: bool,
    pub(crate) note: String,
    /// Whether a release may run (see `Lowering`).
    pub(crate) lowering: Lowering,
}

impl WriterOp for SetHold {
    type Output = (LockRecord, Option<u64>);

    fn apply(self, txn: &mut Txn<'_>, actor: &Actor) -> Result<Self::Output, StoreError> {
        let set = self;
        if !matches!(actor.role, wormbox_model::Role::Admin | wormbox_model::Role::Auditor) {
            return Err(StoreError::AccessDenied("only admins and auditors place or release legal holds".into()));
        }
        wormbox_model::FreeText::CaseId.check(&set.case_id)?;
        wormbox_model::FreeText::HoldNote.check(&set.note)?;
        let (_, version) = locked_target(txn, &set.bucket, &set.key, &set.version)?;
        let mut lock = versions::lock(txn, &set.bucket, set.key.as_str(), version.id)?;
        let existing = lock.holds.iter().position(|h| h.case_id == set.case_id);
        let op = match (set.place, existing) {
            // Placing an existing hold or releasing a missing one changes nothing.
            (true, Some(_)) | (false, None) => return Ok((lock, None)),
            (true, None) => {
                let placed_at = txn.tick();
                lock.holds.push(LegalHold {
                    case_id: set.case_id.clone(),
                    placed_by: actor.access_key.clone(),
                    placed_at,
                    note: set.note.clone(),
                });
                LedgerOp::HoldPlaced
            }
            (false, Some(_)) if set.lowering == Lowering::NeedsCode => {
                return Err(StoreError::NeedsAdminCode { what: format!("releasing legal hold `{}`", set.case_id) });
            }
            (false, Some(index)) => {
                lock.holds.remove(index);
                LedgerOp::HoldReleased
            }
        };
        let detail = format!("case {}", set.case_id);
        let sequence = write_lock(txn, actor, (&set.bucket, &set.key, version.id), &lock, op, detail);
        Ok((lock, Some(sequence)))
    }

    fn refusal(&self) -> Option<EntryFields> {
        Some(EntryFields::about(
            &self.bucket,
            self.key.as_str(),
            &format!("legal hold change of version {}", self.version),
        ))
    }
}

impl Guardable for SetHold {
    fn without_code(&self) -> Option<Self> {
        Some(SetHold { lowering: Lowering::NeedsCode, ..self.clone() })
    }
}
