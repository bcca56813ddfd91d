//! `App`: the application layer every front end calls (gRPC in
//! `wormbox-server`'s `grpc/`, S3 in `wormbox-s3`), in domain types only: one request struct
//! per operation in, one `AppError` out, with the role checks of DESIGN.md.
//! A file per subject: `buckets`, `objects`, `locks`, `principals`,
//! `devices`, `clock`, `evidence`, `reports`, `backup`, `replication`, `tier`
//! (reading versions whose bytes were released to a replica); `credentials`
//! (identity), `guard` (the MFA preamble), `upload` (streamed writes),
//! `refusals` (the log of role refusals) and `error`.
//!
//! Invariant: no wire type reaches this module (a tidy test keeps the wire
//! crates' names out of its files). Every operation checks the caller's role
//! before touching the store (a refusal is logged, rate-limited per
//! principal, and is no ledger entry); bucket ownership is checked by the store
//! inside the same atomic write as the change. Rights are judged before
//! codes (DESIGN.md invariant 9, `guard.rs`).
//!
//! A stolen admin key alone cannot lower protection: once an admin has an
//! active device (`Authority::admin_guarded`), minting or revoking an admin,
//! granting the bypass right, giving an admin or a bypass holder an S3 secret, releasing a legal hold and clearing or
//! shortening a bucket's default retention need a code from one of the
//! caller's own active devices (device enrolment and activation are ruled
//! by the authority).

pub mod backup;
mod buckets;
mod clock;
mod credentials;
mod devices;
mod error;
mod evidence;
mod guard;
mod locks;
pub mod multipart;
mod objects;
mod principals;
mod refusals;
mod replicas;
mod replication;
mod reports;
pub mod spool;
mod status;
mod tier;
mod upload;

use std::sync::Arc;

use wormbox_mfa::Authority;
use wormbox_model::{BucketName, Clock, ObjectKey, Role, VersionSelector};
use wormbox_store::evidence::{Ed25519Signer, Signer};
use wormbox_store::{Actor, Store, StoreError};

use crate::backup::BackupSource;
use crate::multipart::MultipartUploads;
use crate::refusals::RefusalLog;

pub use self::buckets::{CreateBucket, DeleteBucket, GetBucket, PutBucketVersioning};
pub use self::clock::AcceptClockForward;
pub use self::credentials::Credentials;
pub use self::devices::{DeactivateDevice, DeviceCodes, EnrollDevices, ListDevices};
pub use self::error::AppError;
pub use self::evidence::{GetCheckpoint, GetConsistencyProof, GetInclusionProof, ProofOf, VerifyIntegrity};
pub use self::guard::MfaCode;
pub use self::locks::{PutBucketDefaultRetention, PutObjectLegalHold, PutObjectRetention};
pub use self::objects::{DeleteObject, DeleteObjects, GetObject, Ingest, ListObjectVersions, ListObjects, PutObject};
pub use self::principals::{
    CreatePrincipal, CreateS3Key, CreatedPrincipal, ListedPrincipal, NewS3Key, RevokePrincipal, RevokeS3Key,
};
pub use self::replicas::{ReplicaPending, Replication, RuleTarget};
pub use self::replication::ReplicaStatus;
pub use self::reports::{AuditEntries, ReportPart, RetentionReport, RetentionReportStream};
pub use self::status::{ApplianceStatus, ScrubResult, ScrubState, Scrubs};
pub use self::tier::ObjectBody;
pub use self::upload::AppUpload;

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

    /// What the access is, for the refusal log.
    fn name(self) -> &'static str {
        match self {
            Access::Metadata => "metadata",
            Access::ReadData => "read-data",
            Access::Write => "write",
            Access::Admin => "admin",
            Access::Audit => "audit",
        }
    }
}

/// The application layer behind the front ends.
#[derive(Clone, Debug)]
pub struct App {
    store: Store,
    mfa: Authority,
    signer: Arc<Ed25519Signer>,
    max_ingest_record_bytes: u64,
    backups: Arc<BackupSource>,
    replication: Arc<Replication>,
    refusals: Arc<RefusalLog>,
    multipart: Option<Arc<MultipartUploads>>,
    scrubs: Arc<Scrubs>,
    started: std::time::Instant,
    clock: Arc<dyn Clock>,
}

impl App {
    /// Wraps a store and the MFA authority over it; `clock` paces the log
    /// of role refusals.
    pub fn new(
        store: Store,
        mfa: Authority,
        signer: Arc<Ed25519Signer>,
        max_ingest_record_bytes: u64,
        backups: BackupSource,
        replication: Arc<Replication>,
        clock: Arc<dyn Clock>,
    ) -> App {
        let refusals = Arc::new(RefusalLog::new(Arc::clone(&clock)));
        App {
            store,
            mfa,
            signer,
            max_ingest_record_bytes,
            backups: Arc::new(backups),
            replication,
            refusals,
            multipart: None,
            scrubs: Arc::new(Scrubs::new(std::time::Duration::ZERO)),
            started: status::started(),
            clock,
        }
    }

    /// Scrubs start every `interval` (what `status` reports; the server runs them).
    pub fn with_scrub_interval(mut self, interval: std::time::Duration) -> App {
        self.scrubs = Arc::new(Scrubs::new(interval));
        self
    }

    /// Keeps S3 multipart uploads in `uploads` (without, those calls fail).
    pub fn with_multipart(mut self, uploads: MultipartUploads) -> App {
        self.multipart = Some(Arc::new(uploads));
        self
    }

    /// The running replication rules.
    pub fn replication(&self) -> &Replication {
        &self.replication
    }

    /// MFA codes judged since start, by outcome (for the metrics).
    pub fn mfa_counts(&self) -> wormbox_mfa::VerificationCounts {
        self.mfa.counts()
    }

    /// The appliance's checkpoint public key (raw Ed25519, 32 bytes).
    pub fn public_key(&self) -> &[u8] {
        self.signer.public_key()
    }

    /// `checkpoint`, which the store signed, as a C2SP signed note (None
    /// for one signed before the Merkle tree); with the note's verifier key.
    pub fn checkpoint_note(&self, checkpoint: &wormbox_store::evidence::Checkpoint) -> Option<(String, String)> {
        // Only what this key signed: a record planted in the files by
        // someone without the key is not turned into a signed note.
        if !checkpoint.verify(self.public_key()) {
            tracing::error!(sequence = checkpoint.sequence, "a stored checkpoint's signature is not this appliance's");
            return None;
        }
        let note = wormbox_store::note::sign(self.signer.as_ref(), checkpoint)?;
        let name = wormbox_store::note::origin(self.public_key());
        Some((note, wormbox_store::note::verifier_key(&name, self.public_key())))
    }

    /// Returns the store, for start-up and shutdown.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Refuses `actor` unless its role allows `access`; a refusal is
    /// logged, rate-limited per principal.
    pub fn authorize(&self, actor: &Actor, access: Access) -> Result<(), AppError> {
        if access.allows(actor.role) {
            Ok(())
        } else {
            let why = format!("role `{}` may not do this", actor.role.as_str());
            self.refusals.refused(&actor.access_key, access.name(), &why);
            Err(StoreError::AccessDenied(why).into())
        }
    }

    /// Logs, rate-limited per principal, a refusal of `actor` for its role
    /// decided here rather than by `authorize`, and returns it.
    fn denied<E: Into<AppError>>(
        &self,
        actor: &Actor,
        needs: &str,
        why: String,
        err: impl FnOnce(String) -> E,
    ) -> AppError {
        self.refusals.refused(&actor.access_key, needs, &why);
        err(why).into()
    }

    /// The largest record Ingest accepts.
    pub fn max_ingest_record_bytes(&self) -> u64 {
        self.max_ingest_record_bytes
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
