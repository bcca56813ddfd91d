//! `App`: the operations the RPCs expose, in domain types, with the role
//! checks of DESIGN.md.
//!
//! Invariant: every operation checks the caller's role before touching the
//! store; bucket ownership is checked by the store inside the same atomic
//! write as the change. Rights are judged before codes (DESIGN.md invariant
//! 9): a store operation that carries an MFA code hands it to the store as a
//! `CodeCheck`, which the writer runs only after the operation itself passed
//! every rule that needs no code (role, ownership, retention, holds), and
//! the operation runs in the same atomic write that spends the code. The
//! other guarded calls check the caller's role before the authority sees
//! the code. A missing code is `MFA_REQUIRED` everywhere.
//!
//! A stolen admin key alone cannot lower protection: once an admin has an
//! active device (`Authority::admin_guarded`), minting or revoking an admin,
//! granting the bypass right, releasing a legal hold and clearing or
//! shortening a bucket's default retention need a code from one of the
//! caller's own active devices (device enrolment and activation are ruled
//! by the authority).

use std::sync::Arc;

use wormbox_mfa::{Authority, CodeVerdict, DeviceInfo, Enrollment, MfaError, Operation};
use wormbox_model::{BucketName, ObjectKey, Role, VersionSelector, VersioningState};
use wormbox_store::evidence::{Checkpoint, Ed25519Signer, IntegrityReport, Signer, VerifyOptions};
use wormbox_store::retention::{DefaultRetention, Retention};
use wormbox_store::{
    Actor, BucketInfo, ClockStatus, CodeCheck, DeleteEntry, DeleteOutcome, EntryOutcome, Guarded, HoldChange,
    ListObjectsParams, ListVersionsParams, LockRecord, Lowering, NewObject, NewPrincipal, ObjectReader, ObjectsPage,
    PrincipalRecord, Store, StoreError, Upload, VersionInfo, VersioningChange, VersionsPage, WriteAck,
};

use crate::backup::{BackupError, BackupSource, Snapshot};

/// What an operation needs the caller to be allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Bucket and object metadata, listings: every role.
    Metadata,
    /// Object bytes: everyone but auditors.
    ReadData,
    /// Creating buckets, writing versions and markers, deletes.
    Write,
    /// Principals.
    Admin,
    /// Evidence: integrity checks, the audit trail, reports (admins and auditors).
    Audit,
}

impl Access {
    fn allows(self, role: Role) -> bool {
        match self {
            Access::Metadata => true,
            Access::ReadData => role != Role::Auditor,
            Access::Write => matches!(role, Role::Admin | Role::Writer),
            Access::Admin => role == Role::Admin,
            Access::Audit => matches!(role, Role::Admin | Role::Auditor),
        }
    }
}

/// The application layer behind the gRPC services.
#[derive(Clone, Debug)]
pub struct App {
    store: Store,
    mfa: Authority,
    signer: Arc<Ed25519Signer>,
    max_ingest_record_bytes: u64,
    backups: Arc<BackupSource>,
}

impl App {
    /// Wraps a store and the MFA authority over it.
    pub fn new(
        store: Store,
        mfa: Authority,
        signer: Arc<Ed25519Signer>,
        max_ingest_record_bytes: u64,
        backups: BackupSource,
    ) -> App {
        App { store, mfa, signer, max_ingest_record_bytes, backups: Arc::new(backups) }
    }

    /// Backup (admins): signs a checkpoint of the current head, then copies
    /// the database, which therefore holds it. The copy is removed when the
    /// returned snapshot is dropped. Refused while another backup runs.
    pub async fn backup(&self, actor: &Actor) -> Result<Snapshot, BackupError> {
        self.authorize(actor, Access::Admin)?;
        // Before the checkpoint, so that a refused backup signs nothing.
        let slot = self.backups.take_slot()?;
        let checkpoint = self.store.checkpoint().await?;
        let backups = Arc::clone(&self.backups);
        let public_key = self.signer.public_key().to_vec();
        tokio::task::spawn_blocking(move || backups.snapshot(slot, &checkpoint, &public_key))
            .await
            .map_err(|e| BackupError::Refused(format!("the backup task failed: {e}")))?
    }

    /// Ends running backups and refuses new ones, for shutdown: an unread
    /// backup stream would otherwise hold its connection, and so the server,
    /// open for ever.
    pub async fn stop_backups(&self) {
        self.backups.stop().await;
    }

    /// The appliance's checkpoint public key (raw Ed25519, 32 bytes).
    pub fn public_key(&self) -> &[u8] {
        self.signer.public_key()
    }

    /// GetCheckpoint: of the current head (signed now unless one exists), or
    /// the stored one at `sequence`.
    pub async fn checkpoint(&self, actor: &Actor, sequence: u64) -> Result<Checkpoint, StoreError> {
        self.authorize(actor, Access::Metadata)?;
        if sequence == 0 {
            return self.store.checkpoint().await;
        }
        self.store
            .checkpoint_at(sequence)?
            .ok_or_else(|| StoreError::InvalidArgument(format!("no checkpoint was signed at ledger entry {sequence}")))
    }

    /// VerifyIntegrity: checks everything and records the result in the ledger.
    pub async fn verify_integrity(
        &self,
        actor: &Actor,
        from_checkpoint: Option<u64>,
        extra_checkpoints: Vec<Checkpoint>,
    ) -> Result<(IntegrityReport, u64), StoreError> {
        self.authorize(actor, Access::Audit)?;
        let store = self.store.clone();
        let public_key = self.public_key().to_vec();
        let report = tokio::task::spawn_blocking(move || {
            let options = VerifyOptions {
                public_key: Some(public_key),
                from_checkpoint,
                extra_checkpoints,
                ..VerifyOptions::default()
            };
            store.verify_integrity(options)
        })
        .await
        .map_err(|e| StoreError::DataLoss { what: format!("the integrity check stopped: {e}") })??;
        let sequence = self.store.record_integrity(actor, &report).await?;
        Ok((report, sequence))
    }

    /// Returns the store, for start-up and shutdown.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Checks a credential (constant-time secret comparison in the store).
    pub fn authenticate(&self, access_key: &str, secret: &str) -> Result<Option<Actor>, StoreError> {
        self.store.authenticate(access_key, secret)
    }

    /// Refuses `actor` unless its role allows `access`.
    pub fn authorize(&self, actor: &Actor, access: Access) -> Result<(), StoreError> {
        if access.allows(actor.role) {
            Ok(())
        } else {
            Err(StoreError::AccessDenied(format!("role `{}` may not do this", actor.role.as_str())))
        }
    }

    /// The largest record Ingest accepts.
    pub fn max_ingest_record_bytes(&self) -> u64 {
        self.max_ingest_record_bytes
    }

    /// CreateBucket.
    pub async fn create_bucket(
        &self,
        actor: &Actor,
        bucket: BucketName,
        object_lock: bool,
    ) -> Result<(BucketInfo, u64), StoreError> {
        self.authorize(actor, Access::Write)?;
        self.store.create_bucket_with_lock(actor, bucket, object_lock).await
    }

    /// GetBucket.
    pub fn bucket(&self, actor: &Actor, bucket: &BucketName) -> Result<BucketInfo, StoreError> {
        self.authorize(actor, Access::Metadata)?;
        self.store.bucket(bucket)
    }

    /// ListBuckets.
    pub fn buckets(&self, actor: &Actor) -> Result<Vec<BucketInfo>, StoreError> {
        self.authorize(actor, Access::Metadata)?;
        self.store.buckets()
    }

    /// DeleteBucket.
    pub async fn delete_bucket(&self, actor: &Actor, bucket: BucketName) -> Result<u64, StoreError> {
        self.authorize(actor, Access::Write)?;
        self.store.delete_bucket(actor, bucket).await
    }

    /// PutBucketVersioning, with MFA Delete and its code.
    pub async fn set_versioning(
        &self,
        actor: &Actor,
        bucket: BucketName,
        state: VersioningState,
        mfa_delete: Option<bool>,
        mfa: Option<&str>,
    ) -> Result<(BucketInfo, Option<u64>), MfaError> {
        self.authorize(actor, Access::Write)?;
        let change = VersioningChange { state: Some(state), mfa_delete, mfa: None };
        let Some(mfa) = mfa else {
            return Ok(self.store.configure_versioning(actor, bucket, change).await?);
        };
        let owner = self.store.bucket(&bucket)?.owner;
        let what = match mfa_delete {
            Some(on) => format!("put-bucket-versioning status={} mfa-delete={on}", state.as_str()),
            None => format!("put-bucket-versioning status={}", state.as_str()),
        };
        let op = Operation { bucket: bucket.to_string(), what };
        let (check, verdict) = self.mfa.check_code(&owner, mfa, &op);
        match self.store.configure_versioning_with_code(actor, bucket, change, check).await? {
            Guarded::Done(done) => Ok(done),
            Guarded::CodeRefused => Err(verdict.refusal()),
        }
    }

    /// A legal hold placed at write time needs the hold right (admins; auditors cannot write).
    fn authorize_lock_fields(&self, actor: &Actor, object: &NewObject) -> Result<(), StoreError> {
        if object.legal_hold.is_some() && actor.role != Role::Admin {
            return Err(StoreError::AccessDenied("only admins and auditors place legal holds".into()));
        }
        Ok(())
    }

    /// PutObject, streamed.
    pub fn begin_upload(
        &self,
        actor: &Actor,
        bucket: BucketName,
        key: ObjectKey,
        object: NewObject,
    ) -> Result<Upload, StoreError> {
        self.authorize(actor, Access::Write)?;
        self.authorize_lock_fields(actor, &object)?;
        self.store.begin_upload(bucket, key, object)
    }

    /// One Ingest record.
    pub async fn ingest(
        &self,
        actor: &Actor,
        bucket: BucketName,
        key: ObjectKey,
        object: NewObject,
        data: Vec<u8>,
    ) -> Result<WriteAck, StoreError> {
        self.authorize(actor, Access::Write)?;
        self.authorize_lock_fields(actor, &object)?;
        if data.len() as u64 > self.max_ingest_record_bytes {
            return Err(StoreError::TooLarge { limit: self.max_ingest_record_bytes });
        }
        self.store.put_object(actor, bucket, key, object, data).await
    }

    /// GetObject.
    pub fn read_object(
        &self,
        actor: &Actor,
        bucket: &BucketName,
        key: &ObjectKey,
        version: Option<VersionSelector>,
    ) -> Result<(VersionInfo, ObjectReader), StoreError> {
        self.authorize(actor, Access::ReadData)?;
        self.store.read_object(bucket, key, version)
    }

    /// HeadObject.
    pub fn head_object(
        &self,
        actor: &Actor,
        bucket: &BucketName,
        key: &ObjectKey,
        version: Option<VersionSelector>,
    ) -> Result<VersionInfo, StoreError> {
        self.authorize(actor, Access::Metadata)?;
        self.store.head_object(bucket, key, version)
    }

    /// DeleteObject.
    pub async fn delete_object(
        &self,
        actor: &Actor,
        bucket: BucketName,
        key: ObjectKey,
        version: Option<VersionSelector>,
        mfa: Option<&str>,
        bypass_governance: bool,
    ) -> Result<DeleteOutcome, MfaError> {
        self.authorize(actor, Access::Write)?;
        let bypass = self.may_bypass(actor, bypass_governance)?;
        // A delete marker destroys nothing and never spends a code.
        let (Some(mfa), Some(selector)) = (mfa, version) else {
            return Ok(self.store.delete_object_guarded(actor, bucket, key, version, None, bypass).await?);
        };
        let owner = self.store.bucket(&bucket)?.owner;
        let what = format!("delete-version key={key} version={}", selector_text(&selector));
        let op = Operation { bucket: bucket.to_string(), what };
        let (check, verdict) = self.mfa.check_code(&owner, mfa, &op);
        match self.store.delete_object_with_code(actor, bucket, key, selector, bypass, check).await? {
            Guarded::Done(outcome) => Ok(outcome),
            Guarded::CodeRefused => Err(verdict.refusal()),
        }
    }

    /// DeleteObjects: up to 1000 deletes in one bucket, each answered on its
    /// own, with one code for all of its permanent deletes. The role is
    /// checked first; the writer then judges every entry, and the code (the
    /// bucket owner's, as for DeleteObject) only if one permanent delete
    /// passed; a refused code fails the whole request.
    pub async fn delete_objects(
        &self,
        actor: &Actor,
        bucket: BucketName,
        entries: Vec<DeleteEntry>,
        mfa: Option<&str>,
        bypass_governance: bool,
    ) -> Result<Vec<EntryOutcome>, MfaError> {
        self.authorize(actor, Access::Write)?;
        let bypass = self.may_bypass(actor, bypass_governance)?;
        let purges = entries.iter().filter(|e| e.version.is_some()).count();
        // Markers destroy nothing: a request of markers only spends no code.
        let Some(mfa) = mfa.filter(|_| purges > 0) else {
            return Ok(self.store.delete_objects(actor, bucket, entries, bypass).await?);
        };
        let owner = self.store.bucket(&bucket)?.owner;
        let what = format!("delete-objects entries={} versions={purges}", entries.len());
        let op = Operation { bucket: bucket.to_string(), what };
        let (check, verdict) = self.mfa.check_code(&owner, mfa, &op);
        match self.store.delete_objects_with_code(actor, bucket, entries, bypass, check).await? {
            Guarded::Done(each) => Ok(each),
            Guarded::CodeRefused => Err(verdict.refusal()),
        }
    }

    /// PutObjectRetention. A code, when given, is judged against the bucket
    /// owner's devices by the writer, after the change itself.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_retention(
        &self,
        actor: &Actor,
        bucket: BucketName,
        key: ObjectKey,
        version: Option<VersionSelector>,
        retention: Option<Retention>,
        bypass_governance: bool,
        mfa: Option<&str>,
    ) -> Result<(LockRecord, Option<u64>), MfaError> {
        // The role is checked by the store, inside the writer, so that a
        // refused attempt is in the ledger; it is checked there before the
        // code, so that no caller without the right can charge the owner's
        // device a failure.
        let version = self.resolve(&bucket, &key, version)?;
        let bypass = self.may_bypass(actor, bypass_governance)?;
        let Some(mfa) = mfa else {
            return Ok(self.store.set_retention(actor, bucket, key, version, retention, bypass, None).await?);
        };
        let owner = self.store.bucket(&bucket)?.owner;
        let what = format!("put-object-retention key={key} version={}", selector_text(&version));
        let op = Operation { bucket: bucket.to_string(), what };
        let (check, verdict) = self.mfa.check_code(&owner, mfa, &op);
        match self.store.set_retention_with_code(actor, bucket, key, version, retention, bypass, check).await? {
            Guarded::Done(done) => Ok(done),
            Guarded::CodeRefused => Err(verdict.refusal()),
        }
    }

    /// PutObjectLegalHold: admins and auditors (compliance officers) only;
    /// the store checks the role, so a refused attempt is in the ledger. A
    /// release on a guarded appliance needs a code from one of the caller's
    /// own devices, judged after the release itself.
    #[allow(clippy::too_many_arguments)] // PutObjectLegalHold's fields, one by one
    pub async fn set_legal_hold(
        &self,
        actor: &Actor,
        bucket: BucketName,
        key: ObjectKey,
        version: Option<VersionSelector>,
        case_id: String,
        place: bool,
        note: String,
        mfa: Option<&str>,
    ) -> Result<(LockRecord, Option<u64>), MfaError> {
        let version = self.resolve(&bucket, &key, version)?;
        let (lowering, code) = if place {
            (Lowering::Allowed, None)
        } else {
            let what = format!("release-legal-hold key={key} version={} case={case_id:?}", selector_text(&version));
            self.admin_code(actor, mfa, &Operation { bucket: bucket.to_string(), what })?
        };
        let hold = HoldChange { bucket, key, version, case_id, place, note };
        let (code, verdict) = code.unzip();
        match self.store.change_legal_hold(actor, hold, lowering, code).await? {
            Guarded::Done(done) => Ok(done),
            Guarded::CodeRefused => Err(refused(verdict)),
        }
    }

    /// PutBucketDefaultRetention (turns Object Lock on). Clearing or
    /// shortening the default on a guarded appliance needs a code from one
    /// of the caller's own devices; the writer judges whether it does.
    pub async fn set_default_retention(
        &self,
        actor: &Actor,
        bucket: BucketName,
        default: Option<DefaultRetention>,
        mfa: Option<&str>,
    ) -> Result<(BucketInfo, u64), MfaError> {
        self.authorize(actor, Access::Write)?;
        let what = "put-bucket-default-retention".to_owned();
        let (lowering, code) = self.admin_code(actor, mfa, &Operation { bucket: bucket.to_string(), what })?;
        let (code, verdict) = code.unzip();
        match self.store.change_object_lock(actor, bucket, default, lowering, code).await? {
            Guarded::Done(done) => Ok(done),
            Guarded::CodeRefused => Err(refused(verdict)),
        }
    }

    /// The code of an administrative change that could lower protection:
    /// the request's, as a code of one of the caller's own devices, for the
    /// writer to judge after the change; without one, the change may lower
    /// nothing once the appliance is guarded.
    fn admin_code(
        &self,
        actor: &Actor,
        mfa: Option<&str>,
        operation: &Operation,
    ) -> Result<(Lowering, Option<(CodeCheck, CodeVerdict)>), MfaError> {
        match mfa {
            Some(mfa) => Ok((Lowering::Allowed, Some(self.mfa.check_code(&actor.access_key, mfa, operation)))),
            None if self.mfa.admin_guarded()? => Ok((Lowering::NeedsCode, None)),
            None => Ok((Lowering::Allowed, None)),
        }
    }

    /// For a change that mints or removes administrative power (an admin, or
    /// the bypass right): the code of one of the caller's own devices, to be
    /// judged after the change, or none while the appliance is not guarded.
    async fn power_code(
        &self,
        actor: &Actor,
        mfa: Option<&str>,
        operation: &Operation,
    ) -> Result<Option<(CodeCheck, CodeVerdict)>, MfaError> {
        match self.admin_code(actor, mfa, operation)? {
            (_, Some(code)) => Ok(Some(code)),
            (Lowering::Allowed, None) => Ok(None),
            (Lowering::NeedsCode, None) => {
                let why = "an admin has an active MFA device: this change needs a code from one of your own active \
                           MFA devices";
                Err(self.mfa.missing_code(actor, operation, why).await)
            }
        }
    }

    /// Whether a request overrides GOVERNANCE retention: it asked to, and the
    /// caller holds the bypass right (read only when asked, off the hot path).
    fn may_bypass(&self, actor: &Actor, requested: bool) -> Result<bool, StoreError> {
        Ok(requested && self.store.has_bypass_right(&actor.access_key)?)
    }

    /// The version a lock request names: the given one, or the latest.
    fn resolve(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        version: Option<VersionSelector>,
    ) -> Result<VersionSelector, StoreError> {
        match version {
            Some(selector) => Ok(selector),
            None => {
                let latest = self.store.head_object(bucket, key, None)?;
                VersionSelector::parse(&latest.version_id).map_err(|e| StoreError::InvalidArgument(e.to_string()))
            }
        }
    }

    /// GetClock.
    pub async fn clock_status(&self, actor: &Actor) -> Result<ClockStatus, StoreError> {
        self.authorize(actor, Access::Metadata)?;
        self.store.clock_status().await
    }

    /// AcceptClockForward: an admin, with a code from the admin's own device.
    pub async fn accept_clock_forward(&self, actor: &Actor, mfa: Option<&str>) -> Result<(ClockStatus, u64), MfaError> {
        self.authorize(actor, Access::Admin)?;
        let op = Operation { bucket: String::new(), what: "accept-clock-forward".to_owned() };
        let Some(mfa) = mfa else {
            let why = "accepting a clock jump needs a code from one of your own active MFA devices";
            return Err(self.mfa.missing_code(actor, &op, why).await);
        };
        let (check, verdict) = self.mfa.check_code(&actor.access_key, mfa, &op);
        match self.store.accept_clock_forward_with_code(actor, check).await? {
            Guarded::Done(done) => Ok(done),
            Guarded::CodeRefused => Err(verdict.refusal()),
        }
    }

    /// EnrollDevice's first check, before the request's seeds or PSKC
    /// document are read: whether the caller may enrol devices at all.
    pub fn may_enroll_devices(&self, actor: &Actor) -> Result<(), MfaError> {
        Authority::may_enroll(actor)
    }

    /// EnrollDevice; the authority checks the admin role and the guard code.
    pub async fn enroll_devices(
        &self,
        actor: &Actor,
        owner: &str,
        devices: Vec<Enrollment>,
        mfa: Option<&str>,
    ) -> Result<Vec<DeviceInfo>, MfaError> {
        self.mfa.enroll(actor, owner, devices, mfa).await
    }

    /// ActivateDevice.
    pub async fn activate_device(
        &self,
        actor: &Actor,
        serial: &str,
        first: &str,
        second: &str,
    ) -> Result<DeviceInfo, MfaError> {
        self.mfa.activate(actor, serial, first, second).await
    }

    /// ResyncDevice.
    pub async fn resync_device(
        &self,
        actor: &Actor,
        serial: &str,
        first: &str,
        second: &str,
    ) -> Result<DeviceInfo, MfaError> {
        self.mfa.resync(actor, serial, first, second).await
    }

    /// DeactivateDevice; the authority checks the caller's right, then the code.
    pub async fn deactivate_device(
        &self,
        actor: &Actor,
        serial: &str,
        mfa: Option<&str>,
    ) -> Result<DeviceInfo, MfaError> {
        self.mfa.deactivate(actor, serial, mfa).await
    }

    /// ListDevices: admins and auditors see every device, others their own.
    pub fn devices(&self, actor: &Actor, owner: Option<&str>) -> Result<Vec<DeviceInfo>, MfaError> {
        self.authorize(actor, Access::Metadata)?;
        let owner = match actor.role {
            Role::Admin | Role::Auditor => owner,
            _ if owner.is_none_or(|o| o == actor.access_key) => Some(actor.access_key.as_str()),
            _ => return Err(MfaError::AccessDenied("only admins and auditors list other principals' devices".into())),
        };
        self.mfa.list(owner)
    }

    /// ListObjectVersions.
    pub fn list_versions(
        &self,
        actor: &Actor,
        bucket: &BucketName,
        params: &ListVersionsParams,
    ) -> Result<VersionsPage, StoreError> {
        self.authorize(actor, Access::Metadata)?;
        self.store.list_versions(bucket, params)
    }

    /// ListObjects.
    pub fn list_objects(
        &self,
        actor: &Actor,
        bucket: &BucketName,
        params: &ListObjectsParams,
    ) -> Result<ObjectsPage, StoreError> {
        self.authorize(actor, Access::Metadata)?;
        self.store.list_objects(bucket, params)
    }

    /// CreatePrincipal. An admin or a holder of the bypass right is minted
    /// on a guarded appliance only with a code from one of the caller's own
    /// devices, judged after the creation itself.
    pub async fn create_principal(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        bypass_governance: bool,
        mfa: Option<&str>,
    ) -> Result<NewPrincipal, MfaError> {
        self.authorize(actor, Access::Admin)?;
        let code = if role == Role::Admin || bypass_governance {
            let bypass = if bypass_governance { " bypass-governance" } else { "" };
            let what = format!("create-principal role={}{bypass}", role.as_str());
            self.power_code(actor, mfa, &Operation { bucket: String::new(), what }).await?
        } else {
            None
        };
        let (code, verdict) = code.unzip();
        match self.store.create_principal_checked(actor, name, role, bypass_governance, code).await? {
            Guarded::Done(done) => Ok(done),
            Guarded::CodeRefused => Err(refused(verdict)),
        }
    }

    /// ListPrincipals.
    pub fn principals(&self, actor: &Actor) -> Result<Vec<(String, PrincipalRecord)>, StoreError> {
        self.authorize(actor, Access::Admin)?;
        self.store.principals()
    }

    /// RevokePrincipal. Revoking an admin on a guarded appliance needs a
    /// code from one of the caller's own devices: a stolen key must not
    /// remove the admins who hold tokens.
    pub async fn revoke_principal(
        &self,
        actor: &Actor,
        access_key: &str,
        mfa: Option<&str>,
    ) -> Result<Option<u64>, MfaError> {
        self.authorize(actor, Access::Admin)?;
        let target = self.store.principal(access_key)?;
        let code = match target {
            Some(record) if record.role == Role::Admin && record.revoked_at.is_none() => {
                let what = format!("revoke-principal {access_key} role=admin");
                self.power_code(actor, mfa, &Operation { bucket: String::new(), what }).await?
            }
            _ => None,
        };
        let (code, verdict) = code.unzip();
        match self.store.revoke_principal_checked(actor, access_key, code).await? {
            Guarded::Done(done) => Ok(done),
            Guarded::CodeRefused => Err(refused(verdict)),
        }
    }
}

/// The authority's refusal of a code the store judged after the change.
fn refused(verdict: Option<CodeVerdict>) -> MfaError {
    verdict.map_or(MfaError::Corrupt, CodeVerdict::refusal)
}

fn selector_text(selector: &VersionSelector) -> String {
    match selector {
        VersionSelector::Null => "null".to_owned(),
        VersionSelector::Id(id) => id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_design_md_says() {
        use Access::*;
        let table = [
            (Role::Admin, [true, true, true, true]),
            (Role::Writer, [true, true, true, false]),
            (Role::Reader, [true, true, false, false]),
            (Role::Auditor, [true, false, false, false]),
        ];
        for (role, expected) in table {
            let got = [Metadata, ReadData, Write, Admin].map(|access| access.allows(role));
            assert_eq!(got, expected, "{role:?}");
        }
    }
}
