//! `wormboxd restore --from-replica`: a lost appliance rebuilt, offline, into
//! a new data directory from its replicas alone (`wormbox_replica::restore`
//! reading, `wormbox_store::rebuild` writing), with its keys from escrow.
//!
//! Invariant: as for a restore from a backup (`backup.rs`), nothing appears
//! in the data directory unless the whole archive was rebuilt from ledger
//! ranges that chain into checkpoints signed with the escrowed key, every
//! version's bytes hash to what the ledger wrote, the result verifies, and
//! no checkpoint the appliance published lies beyond what the replicas
//! sealed (a restore never rolls the archive, and so retention, back). It
//! appears whole (a rename) or not at all. New principal secrets are written
//! once, to a 0600 file, and never logged.

use std::path::PathBuf;
use std::sync::Arc;

use wormbox_model::Clock;
use wormbox_replica::restore;
use wormbox_store::backend::Backend;
use wormbox_store::evidence::{self, Ed25519Signer, Signer, VerifyOptions};
use wormbox_store::rebuild::{Rebuild, Rekeyed};
use wormbox_store_rocksdb::{RocksBackend, RocksOptions};

use wormbox_app::backup::{BackupError, io};

use crate::backup::{self, Staging};
use crate::config::ReplicationConfig;
use crate::evidence::SIGNING_KEY_FILE;

/// The file a restore from replicas writes the principals' new secrets to.
pub const RESTORED_CREDENTIALS_FILE: &str = "restored.credentials";

/// Why a restore from replicas stopped; it wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaRestoreError {
    /// Refused, or a file could not be read or written (as for a backup).
    #[error(transparent)]
    Restore(#[from] BackupError),
    /// The replicas do not rebuild the archive.
    #[error("restore from replica: {0}")]
    Replica(#[from] restore::RestoreError),
}

impl From<wormbox_store::StoreError> for ReplicaRestoreError {
    fn from(err: wormbox_store::StoreError) -> ReplicaRestoreError {
        ReplicaRestoreError::Restore(BackupError::Store(err))
    }
}

/// What `restore_from_replica` needs.
#[derive(Clone, Debug)]
pub struct ReplicaRestoreOptions {
    /// The new data directory; must not exist or be empty.
    pub data_dir: PathBuf,
    /// The escrow copy of the appliance's `mfa-master.key`,
    /// `checkpoint-signing.key` and `replica-RULE.credential` files.
    pub keys: PathBuf,
    /// Checkpoints the appliance published; the replicas must reach the newest.
    pub published: Vec<PathBuf>,
    /// Restore although no published checkpoint is given.
    pub without_published: bool,
}

/// What a restore from replicas restored.
#[derive(Debug)]
pub struct RestoredFromReplica {
    /// The rule whose replica held the newest checkpoint.
    pub rule: String,
    /// The replayed ledger's end (that checkpoint).
    pub through: u64,
    /// The restored archive's last entry, after the restore's own.
    pub ledger_sequence: u64,
    /// Buckets, versions (and their bytes) and delete markers restored.
    pub buckets: usize,
    /// Versions restored.
    pub versions: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Delete markers restored.
    pub markers: usize,
    /// Principals given new secrets (in `RESTORED_CREDENTIALS_FILE`).
    pub principals: Vec<Rekeyed>,
    /// The newest published checkpoint it was checked against.
    pub newest_published: Option<u64>,
    /// The integrity check's summary.
    pub summary: String,
}

/// Restores the archive from the replicas of `rules`; see the module doc.
pub async fn restore_from_replica(
    rules: &[ReplicationConfig],
    options: &ReplicaRestoreOptions,
    clock: Arc<dyn Clock>,
) -> Result<RestoredFromReplica, ReplicaRestoreError> {
    if rules.is_empty() {
        return Err(ReplicaRestoreError::Restore(BackupError::Refused(
            "the configuration names no [[replication]] rule: a restore from replica reads the rules' replicas".into(),
        )));
    }
    let signing_key = backup::read_key(&options.keys.join(SIGNING_KEY_FILE))?;
    let signer = Ed25519Signer::from_pkcs8(&signing_key)
        .map_err(|e| BackupError::Refused(format!("{}: {e}", options.keys.join(SIGNING_KEY_FILE).display())))?;
    let public_key = signer.public_key().to_vec();
    let master_key = backup::read_key(&options.keys.join(crate::MFA_MASTER_KEY_FILE))?;
    let published = backup::published_checkpoints(&options.published, &public_key, options.without_published)?;
    let newest_published = published.iter().map(|c| c.sequence).max();
    let sources =
        crate::replication::restore_sources(rules, &options.keys).map_err(|e| BackupError::Refused(e.to_string()))?;

    let staged = Staging::new(&options.data_dir)?;
    let staging = staged.dir().to_owned();
    let db = staging.join("db");
    let backend: Arc<dyn Backend> =
        Arc::new(RocksBackend::open(&db, &RocksOptions::default()).map_err(BackupError::Copy)?);

    let rebuild_error = |e| ReplicaRestoreError::Replica(restore::RestoreError::Rebuild(e));
    let mut rebuild = Rebuild::new(Arc::clone(&backend), public_key.clone()).map_err(rebuild_error)?;
    rebuild.replicated_by(rules.iter().map(|r| r.name.clone()).collect());
    let replayed = restore::replay_ledger(&sources, &mut rebuild).await?;
    if let Some(published) = newest_published.filter(|p| *p > replayed.through) {
        return Err(ReplicaRestoreError::Restore(BackupError::Refused(format!(
            "the appliance published checkpoint {published}, after the newest one its replicas sealed ({}): \
             restoring would roll the archive and its retention back",
            replayed.through
        ))));
    }
    tracing::info!(rule = %replayed.rule, through = replayed.through, "replayed the replica's signed ledger");
    restore::copy_versions(&sources, &mut rebuild).await?;
    let rule = sources.iter().find(|s| s.rule.name == replayed.rule);
    let detail = format!(
        "restored from the replica of rule `{}`{}",
        replayed.rule,
        rule.map(|s| format!(" (bucket {})", s.rule.bucket)).unwrap_or_default()
    );
    let rebuilt = rebuild.finish(clock.now(), &detail, &signer).map_err(rebuild_error)?;
    drop(sources);
    drop(backend);

    let check = RocksBackend::open_read_only(&db).map_err(BackupError::Copy)?;
    let report = evidence::verify(&check, VerifyOptions { public_key: Some(public_key), ..VerifyOptions::default() })?;
    drop(check);
    if !report.is_ok() {
        let why = format!("the rebuilt archive does not verify: {}", report.summary());
        return Err(BackupError::Refused(why).into());
    }

    backup::write_key(&staging.join(SIGNING_KEY_FILE), &signing_key)?;
    backup::write_key(&staging.join(crate::MFA_MASTER_KEY_FILE), &master_key)?;
    for config in rules {
        let from = crate::replication::credential_file(&options.keys, &config.name);
        let sealed = std::fs::read(&from).map_err(io("reading the sealed credential", &from))?;
        backup::write_key(&crate::replication::credential_file(&staging, &config.name), &sealed)?;
    }
    let mut credentials = zeroize::Zeroizing::new(String::new());
    for p in &rebuilt.principals {
        credentials.push_str(&format!("{}:{} {} {}\n", p.access_key, p.secret, p.role.as_str(), p.name));
    }
    backup::write_key(&staging.join(RESTORED_CREDENTIALS_FILE), credentials.as_bytes())?;
    staged.publish()?;
    Ok(RestoredFromReplica {
        rule: replayed.rule,
        through: replayed.through,
        ledger_sequence: rebuilt.ledger_sequence,
        buckets: rebuilt.buckets,
        versions: rebuilt.versions,
        bytes: rebuilt.bytes,
        markers: rebuilt.markers,
        principals: rebuilt.principals,
        newest_published,
        summary: report.summary(),
    })
}
