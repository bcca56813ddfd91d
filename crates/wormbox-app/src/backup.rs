//! Backups (admins): the one backup slot, a signed checkpoint, then a copy
//! of the database staged for streaming with its manifest
//! (`wormbox_reports::backup`); the engine makes the copy (`ArchiveCopier`,
//! RocksDB's checkpoint and the value segments, in `wormbox-server`).
//!
//! Invariant: a refused backup signs nothing (the slot is taken before the
//! checkpoint). A staged copy costs as much disk as the archive, so one
//! backup runs at a time (a second is refused while the first holds its
//! slot), a backup whose client takes nothing for the send timeout ends, and
//! stopping the server ends every backup (`stop_backups`); each removes its
//! staged copy before it gives up the slot.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use wormbox_reports::CheckpointFile;
use wormbox_reports::backup::{self as manifest, BACKUP_FORMAT, BackupFile, BackupManifest};
use wormbox_store::backend::{Backend, BackendError};
use wormbox_store::evidence::{self, Checkpoint};
use wormbox_store::{Actor, StoreError};

use crate::{Access, App, AppError};

/// How the storage engine copies the archive for a backup.
pub trait ArchiveCopier: Send + Sync + std::fmt::Debug {
    /// Copies the whole archive, consistently, into the new directory `dir`
    /// and opens the copy read-only.
    fn copy_to(&self, dir: &Path) -> Result<Box<dyn Backend>, BackendError>;
}

/// Where, in the data directory, backups are staged while they stream; it is
/// emptied at every start.
pub const STAGING_DIR: &str = "backup-staging";

/// Why a backup or a restore failed; a restore that fails wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file could not be read or written.
    #[error("{what} `{path}`")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be copied.
    #[error("copying the database")]
    Copy(#[source] wormbox_store::backend::BackendError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The backup directory is incomplete or not what its manifest says.
    #[error("the backup in `{path}` is not intact: {why}")]
    Damaged {
        /// The backup directory.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The restore would be unsafe; nothing was written.
    #[error("restore refused: {0}")]
    Refused(String),
    /// Another backup holds the one slot; nothing was copied.
    #[error("another backup is running: one runs at a time, since each stages a full copy of the archive")]
    InProgress,
    /// The server is stopping; nothing was copied.
    #[error("the server is shutting down and takes no backup")]
    Stopping,
}

/// A file error, as a `BackupError` naming what was done to which path.
pub fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + use<> {
    let path = path.to_owned();
    move |source| BackupError::Io { what, path, source }
}

/// What the server takes backups of, one at a time.
#[derive(Debug)]
pub struct BackupSource {
    copier: Arc<dyn ArchiveCopier>,
    staging: PathBuf,
    next: AtomicU64,
    /// How long a client may leave a part untaken before its backup ends.
    send_timeout: Duration,
    /// `true` while a backup holds the slot: from its request until its
    /// staged copy is removed.
    busy: watch::Sender<bool>,
    /// Turns `true` when the server stops: running backups end, new ones are refused.
    stopping: watch::Sender<bool>,
}

/// The one backup slot, held from the request until the staged copy is
/// removed; dropping it lets the next backup run.
#[derive(Debug)]
pub struct BackupSlot {
    busy: watch::Sender<bool>,
}

impl Drop for BackupSlot {
    fn drop(&mut self) {
        self.busy.send_replace(false);
    }
}

impl BackupSource {
    /// Backups made by `copier`, staged under `data_dir`, each ended when its
    /// client takes nothing for `send_timeout`; removes what an earlier run
    /// left staged.
    pub fn new(
        copier: Arc<dyn ArchiveCopier>,
        data_dir: &Path,
        send_timeout: Duration,
    ) -> Result<BackupSource, BackupError> {
        let staging = data_dir.join(STAGING_DIR);
        match std::fs::remove_dir_all(&staging) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(BackupError::Io { what: "emptying", path: staging, source }),
        }
        Ok(BackupSource {
            copier,
            staging,
            next: AtomicU64::new(1),
            send_timeout,
            busy: watch::Sender::new(false),
            stopping: watch::Sender::new(false),
        })
    }

    /// Takes the one backup slot, or refuses: a second backup would stage a
    /// second full copy of the archive.
    pub fn take_slot(&self) -> Result<BackupSlot, BackupError> {
        if *self.stopping.borrow() {
            return Err(BackupError::Stopping);
        }
        if !self.busy.send_if_modified(|busy| !std::mem::replace(busy, true)) {
            return Err(BackupError::InProgress);
        }
        Ok(BackupSlot { busy: self.busy.clone() })
    }

    /// Ends every running backup (its staged copy removed, its stream cut
    /// off) and refuses new ones; returns once none holds the slot. A copy
    /// being made is finished first, then removed.
    pub async fn stop(&self) {
        self.stopping.send_replace(true);
        let mut busy = self.busy.subscribe();
        let _ = busy.wait_for(|busy| !*busy).await;
    }

    /// Copies the database (after `checkpoint` was signed and stored) and lists the copy. Blocks on
    /// file I/O: call from a blocking thread. The snapshot keeps `slot` until it is dropped.
    pub fn snapshot(
        &self,
        slot: BackupSlot,
        checkpoint: &Checkpoint,
        public_key: &[u8],
    ) -> Result<Snapshot, BackupError> {
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.staging)
                .map_err(io("creating", &self.staging))?;
        }
        let dir = self.staging.join(format!("{}-{}", std::process::id(), self.next.fetch_add(1, Ordering::Relaxed)));
        let mut snapshot = Snapshot {
            dir,
            manifest: None,
            send_timeout: self.send_timeout,
            stopping: self.stopping.subscribe(),
            _slot: slot,
        };
        // The copy's own head, read from the copy: entries committed after
        // the checkpoint was signed may be in it too.
        let copy = self.copier.copy_to(&snapshot.dir).map_err(BackupError::Copy)?;
        let store_format = wormbox_store::format::check(copy.as_ref())?.version();
        let (ledger_sequence, ledger_head) = evidence::ledger_head(copy.as_ref())?;
        drop(copy);
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&snapshot.dir).map_err(io("listing", &snapshot.dir))? {
            let entry = entry.map_err(io("listing", &snapshot.dir))?;
            let path = entry.file_name().to_string_lossy().into_owned();
            let (size, sha256) = manifest::hash_file(&entry.path())
                .map_err(|e| BackupError::Damaged { path: snapshot.dir.clone(), why: e.to_string() })?;
            files.push(BackupFile { path, size, sha256 });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let manifest = BackupManifest {
            format: BACKUP_FORMAT.to_owned(),
            store_format,
            ledger_sequence,
            ledger_head: ledger_head.to_hex(),
            checkpoint: CheckpointFile::new(checkpoint, public_key),
            public_key: hex::encode(public_key),
            files,
        };
        snapshot.manifest = Some(manifest);
        Ok(snapshot)
    }
}

/// A database copy staged for streaming; removed when dropped, whether the
/// stream finished, the client went away or stalled, or the server stopped.
#[derive(Debug)]
pub struct Snapshot {
    dir: PathBuf,
    manifest: Option<BackupManifest>,
    send_timeout: Duration,
    stopping: watch::Receiver<bool>,
    /// Given up after `Drop::drop` removed the copy, since fields drop after it.
    _slot: BackupSlot,
}

impl Snapshot {
    /// The staged copy.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its manifest.
    pub fn manifest(&self) -> &BackupManifest {
        self.manifest.as_ref().expect("a snapshot is returned only with its manifest")
    }

    /// How long the client may leave a part untaken before the stream ends.
    pub fn send_timeout(&self) -> Duration {
        self.send_timeout
    }

    /// Turns `true` when the server stops, which ends the stream.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.clone()
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove a staged backup");
        }
    }
}

impl App {
    /// Backup (admins): signs a checkpoint of the current head, then copies
    /// the database, which therefore holds it. The copy is removed when the
    /// returned snapshot is dropped. Refused while another backup runs.
    pub async fn backup(&self, actor: &Actor) -> Result<Snapshot, AppError> {
        self.authorize(actor, Access::Admin)?;
        // Before the checkpoint, so that a refused backup signs nothing.
        let slot = self.backups.take_slot()?;
        // The staged copy holds the log's segments again (the index's tables
        // are linked, not copied): a backup starts only when that fits above
        // the reserve. The ticket is not held while it copies: the disk is
        // read every second, and a held ticket would count what is already
        // copied twice.
        let log_bytes = self.store.engine_stats().iter().find(|(name, _)| *name == "log_file_bytes").map(|s| s.1);
        drop(self.store.check_space(log_bytes.unwrap_or(0))?);
        let checkpoint = self.store.checkpoint().await?;
        let backups = Arc::clone(&self.backups);
        let public_key = self.public_key().to_vec();
        let snapshot = tokio::task::spawn_blocking(move || backups.snapshot(slot, &checkpoint, &public_key))
            .await
            .map_err(|e| BackupError::Refused(format!("the backup task failed: {e}")))??;
        Ok(snapshot)
    }

    /// Whether a backup holds the slot now (its copy staged or streaming).
    pub fn backup_running(&self) -> bool {
        *self.backups.busy.borrow()
    }

    /// Ends running backups and refuses new ones, for shutdown: an unread
    /// backup stream would otherwise hold its connection, and so the server,
    /// open for ever.
    pub async fn stop_backups(&self) {
        self.backups.stop().await;
    }
}
