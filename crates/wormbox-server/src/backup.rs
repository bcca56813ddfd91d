//! Backups and restores of the appliance.
//!
//! A backup is taken by the running server (`Admin.Backup`,
//! `wormbox_app::backup`): it signs a checkpoint of the ledger, then copies
//! the database with RocksDB's checkpoint (consistent, and holding that
//! checkpoint; `RocksCopier` here), and streams the copy with a manifest of
//! sizes and SHA-256 (`wormbox_reports::backup`). Keys stay behind: the MFA
//! master key and the signing key are not in the database, so a backup holds
//! seeds only sealed under a key it does not contain.
//!
//! A restore (`wormboxd restore`) runs offline, into a new data directory.
//! Invariant: nothing is written to the target until the backup's files match
//! their manifest, its keys belong to the appliance that signed it, the whole
//! chain and every checkpoint verify, the MFA master key opens every sealed
//! seed, and no checkpoint the appliance already
//! published lies beyond the backup's end: a restore never rolls the archive,
//! and so retention, back. The target must not hold anything; it appears
//! whole (a rename) or not at all.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wormbox_app::backup::{ArchiveCopier, io};
pub use wormbox_app::backup::{BackupError, STAGING_DIR};

use wormbox_reports::CheckpointFile;
use wormbox_reports::backup::{BackupManifest, DB_DIR};
use wormbox_store::StoreError;
use wormbox_store::backend::{Backend, BackendError};
use wormbox_store::evidence::{self, Checkpoint, Ed25519Signer, Signer as _, VerifyOptions};
use wormbox_store_rocksdb::RocksBackend;

use crate::MFA_MASTER_KEY_FILE;
use crate::evidence::SIGNING_KEY_FILE;

/// Backups of the RocksDB archive: a RocksDB checkpoint plus a byte copy
/// of the value segments (`RocksBackend::copy_to`), opened read-only.
#[derive(Debug)]
pub struct RocksCopier(pub Arc<RocksBackend>);

impl ArchiveCopier for RocksCopier {
    fn copy_to(&self, dir: &Path) -> Result<Box<dyn Backend>, BackendError> {
        self.0.copy_to(dir)?;
        Ok(Box::new(RocksBackend::open_read_only(dir)?))
    }
}

/// What `restore` needs.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// The backup directory.
    pub from: PathBuf,
    /// The new data directory; must not exist or be empty.
    pub data_dir: PathBuf,
    /// Where the appliance's `mfa-master.key` and `checkpoint-signing.key` are
    /// kept (the escrow copy made after `wormboxd init`, or the old data directory).
    pub keys: PathBuf,
    /// Checkpoints the appliance published (auditors' copies from `wormbox checkpoint --out`,
    /// or later backups' `backup.json`); the backup must reach the newest of them.
    pub published: Vec<PathBuf>,
    /// Restore although no published checkpoint is given.
    pub without_published: bool,
}

/// What a restore restored.
#[derive(Debug)]
pub struct Restored {
    /// The ledger entry the restored archive ends at.
    pub ledger_sequence: u64,
    /// The backup's checkpoint.
    pub checkpoint: CheckpointFile,
    /// The newest published checkpoint it was checked against.
    pub newest_published: Option<u64>,
    /// MFA devices whose sealed seed the master key was checked to open.
    pub devices: usize,
    /// The integrity check's summary.
    pub summary: String,
}

/// Restores a backup; see the module doc for what is refused.
pub fn restore(options: &RestoreOptions) -> Result<Restored, BackupError> {
    let damaged = |why: String| BackupError::Damaged { path: options.from.clone(), why };
    let manifest = BackupManifest::read(&options.from).map_err(|e| damaged(format!("{e:#}")))?;
    if manifest.store_format > wormbox_store::format::FORMAT_VERSION {
        return Err(BackupError::Refused(format!(
            "the backup's archive format is version {}, newer than this build reads (up to {})",
            manifest.store_format,
            wormbox_store::format::FORMAT_VERSION
        )));
    }
    let problems = manifest.check_files(&options.from).map_err(|e| damaged(e.to_string()))?;
    if !problems.is_empty() {
        return Err(damaged(problems.join("; ")));
    }
    let public_key = hex::decode(&manifest.public_key).map_err(|_| damaged("public_key is not hex".into()))?;

    // The keys: they must be this appliance's, or nothing it signed verifies
    // and none of its sealed seeds opens.
    let signing_key = read_key(&options.keys.join(SIGNING_KEY_FILE))?;
    let signer = Ed25519Signer::from_pkcs8(&signing_key)
        .map_err(|e| BackupError::Refused(format!("{}: {e}", options.keys.join(SIGNING_KEY_FILE).display())))?;
    if signer.public_key() != public_key.as_slice() {
        return Err(BackupError::Refused(format!(
            "the signing key in {} is not the one that signed this backup (key {}, backup {})",
            options.keys.display(),
            evidence::key_id(signer.public_key()),
            evidence::key_id(&public_key)
        )));
    }
    let master_key = read_key(&options.keys.join(MFA_MASTER_KEY_FILE))?;

    let backup_checkpoint = manifest.checkpoint.checkpoint().map_err(damaged)?;
    let published = published_checkpoints(&options.published, &public_key, options.without_published)?;
    if let Some(checkpoint) = published.iter().find(|c| c.sequence > manifest.ledger_sequence) {
        return Err(BackupError::Refused(format!(
            "the appliance already published checkpoint {}, after this backup's last ledger entry {}: \
             restoring it would roll the archive and its retention back",
            checkpoint.sequence, manifest.ledger_sequence
        )));
    }
    let newest_published = published.iter().map(|c| c.sequence).max();

    let staged = Staging::new(&options.data_dir)?;
    let staging = staged.dir().to_owned();
    let db = staging.join("db");
    std::fs::create_dir(&db).map_err(io("creating", &db))?;
    for file in &manifest.files {
        let from = options.from.join(DB_DIR).join(&file.path);
        std::fs::copy(&from, db.join(&file.path)).map_err(io("copying", &from))?;
    }
    // Copied bytes are checked again: the backup could change while copied.
    let problems = manifest.check_files(&staging).map_err(|e| damaged(e.to_string()))?;
    if !problems.is_empty() {
        return Err(damaged(format!("changed while it was copied: {}", problems.join("; "))));
    }

    let backend = RocksBackend::open_read_only(&db).map_err(BackupError::Copy)?;
    let mut extra = published;
    extra.push(backup_checkpoint);
    let report = evidence::verify(
        &backend,
        VerifyOptions { public_key: Some(public_key.clone()), extra_checkpoints: extra, ..VerifyOptions::default() },
    )?;
    let (ledger_sequence, ledger_head) = evidence::ledger_head(&backend)?;
    let devices = check_master_key(&backend, &master_key, &options.keys.join(MFA_MASTER_KEY_FILE))?;
    drop(backend);
    if !report.is_ok() {
        return Err(BackupError::Refused(format!("the backup does not verify: {}", report.summary())));
    }
    if ledger_sequence != manifest.ledger_sequence || ledger_head.to_hex() != manifest.ledger_head {
        return Err(damaged(format!(
            "the copy ends at ledger entry {ledger_sequence} (head {}), the manifest says {} (head {})",
            ledger_head.to_hex(),
            manifest.ledger_sequence,
            manifest.ledger_head
        )));
    }

    write_key(&staging.join(SIGNING_KEY_FILE), &signing_key)?;
    write_key(&staging.join(MFA_MASTER_KEY_FILE), &master_key)?;
    staged.publish()?;
    Ok(Restored {
        ledger_sequence,
        checkpoint: manifest.checkpoint,
        newest_published,
        devices,
        summary: report.summary(),
    })
}

/// Checks that `master_key` opens every sealed seed in the backup: restoring
/// with another appliance's key would leave every MFA device unusable.
/// Returns how many devices were checked. The seeds are opened in memory and
/// dropped (wiped) at once.
fn check_master_key(backend: &RocksBackend, master_key: &[u8], path: &Path) -> Result<usize, BackupError> {
    use wormbox_store::backend::{Backend as _, Keyspace};
    let key = wormbox_mfa::MasterKey::from_bytes(master_key)
        .map_err(|e| BackupError::Refused(format!("{}: {e}", path.display())))?;
    let mut devices = 0;
    for entry in backend.scan(Keyspace::Devices, b"", b"") {
        let (_, raw) =
            entry.map_err(|e| BackupError::Store(StoreError::Backend { operation: "read", source: Arc::new(e) }))?;
        let record = wormbox_mfa::DeviceRecord::decode(&raw)
            .map_err(|e| BackupError::Refused(format!("a device record does not decode: {e}")))?;
        if key.open(&record.serial, &record.sealed_seed).is_err() {
            return Err(BackupError::Refused(format!(
                "{} does not open the seed of device {}: it is not this appliance's MFA master key",
                path.display(),
                record.serial
            )));
        }
        devices += 1;
    }
    Ok(devices)
}

/// Reads a published checkpoint: a checkpoint file (`wormbox checkpoint
/// --out`), or a backup's `backup.json`, whose checkpoint the appliance
/// published when it took that backup.
/// The checkpoints the appliance published (`paths`: auditors' copies or
/// later backups' manifests), each checked against its key; refused when
/// none is named unless `without` says none was ever kept.
pub(crate) fn published_checkpoints(
    paths: &[PathBuf],
    public_key: &[u8],
    without: bool,
) -> Result<Vec<Checkpoint>, BackupError> {
    let mut published = Vec::new();
    for path in paths {
        let file = read_published(path)?;
        let checkpoint = file.checkpoint().map_err(|why| BackupError::Refused(format!("{}: {why}", path.display())))?;
        if !checkpoint.verify(public_key) {
            return Err(BackupError::Refused(format!(
                "{} is not signed by this appliance's key {}",
                path.display(),
                evidence::key_id(public_key)
            )));
        }
        published.push(checkpoint);
    }
    if published.is_empty() && !without {
        return Err(BackupError::Refused(
            "name the newest checkpoint the appliance published (--published FILE: an auditor's copy from \
             `wormbox checkpoint --out`, or a later backup's backup.json), or say --no-published-checkpoint \
             when none was ever kept"
                .to_owned(),
        ));
    }
    Ok(published)
}

pub(crate) fn read_published(path: &Path) -> Result<CheckpointFile, BackupError> {
    let meta = std::fs::metadata(path).map_err(io("reading the published checkpoint", path))?;
    if meta.len() > 16 << 20 {
        return Err(BackupError::Refused(format!("{} is too large to be a checkpoint", path.display())));
    }
    let text = std::fs::read_to_string(path).map_err(io("reading the published checkpoint", path))?;
    if let Ok(file) = serde_json::from_str::<CheckpointFile>(&text) {
        return Ok(file);
    }
    match BackupManifest::parse(&text) {
        Ok(manifest) => Ok(manifest.checkpoint),
        Err(_) => Err(BackupError::Refused(format!(
            "{} is neither a checkpoint file nor a backup's backup.json",
            path.display()
        ))),
    }
}

/// A restore's new data directory, built beside its target (0700) and
/// renamed into place whole by `publish`; dropped before that, it is removed.
pub(crate) struct Staging {
    target: PathBuf,
    parent: PathBuf,
    dir: PathBuf,
    published: bool,
}

impl Staging {
    /// Refuses a target that holds anything, then makes the directory beside it.
    pub(crate) fn new(target: &Path) -> Result<Staging, BackupError> {
        refuse_used_target(target)?;
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = target.file_name().ok_or_else(|| BackupError::Refused("the data directory has no name".into()))?;
        let dir = parent.join(format!(".{}.restoring-{}", name.to_string_lossy(), std::process::id()));
        let staging = Staging { target: target.to_owned(), parent, dir, published: false };
        std::fs::create_dir_all(&staging.dir).map_err(io("creating", &staging.dir))?;
        std::fs::set_permissions(&staging.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io("securing", &staging.dir))?;
        Ok(staging)
    }

    /// The directory being built.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes it durable and renames it to the target (replacing an empty one).
    pub(crate) fn publish(mut self) -> Result<(), BackupError> {
        sync_dir(&self.dir)?;
        if self.target.exists() {
            std::fs::remove_dir(&self.target).map_err(io("replacing the empty", &self.target))?;
        }
        std::fs::rename(&self.dir, &self.target).map_err(io("moving the restored archive to", &self.target))?;
        self.published = true;
        sync_dir(&self.parent)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub(crate) fn refuse_used_target(dir: &Path) -> Result<(), BackupError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::Refused(format!(
                    "{} is not empty; a restore never writes over existing data",
                    dir.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("reading", dir)(e)),
    }
}

/// Reads a key file, refusing one that group or others may read.
pub(crate) fn read_key(path: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>, BackupError> {
    let meta = std::fs::metadata(path).map_err(io("reading the key", path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(BackupError::Refused(format!(
            "{} is readable by group or others (mode {:o}); keys must be 0600",
            path.display(),
            meta.permissions().mode() & 0o777
        )));
    }
    if meta.len() > 4096 {
        return Err(BackupError::Refused(format!("{} is too large to be a key", path.display())));
    }
    Ok(zeroize::Zeroizing::new(std::fs::read(path).map_err(io("reading the key", path))?))
}

pub(crate) fn write_key(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    crate::write_new_file(path, bytes, 0o600).map_err(io("writing the key", path))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io("syncing", dir))
}
