//! How the appliance stands, on one screen (`Admin.GetStatus`, `wormbox
//! status`): build, uptime, disk and its reserve, ledger, last checkpoint,
//! compliance clock, scrub, replication and MFA lockouts; and the scrub's
//! progress, which the server's scrub task reports to `Scrubs`.
//!
//! Invariant: only admins and auditors read it, and it names no secret,
//! seed or code: devices locked out are counted, not named. Every figure is
//! read when asked (the scrub's as last reported), none is invented: a
//! scrub that has not finished since the start says so.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use wormbox_model::Timestamp;
use wormbox_store::evidence::{Checkpoint, IntegrityReport};
use wormbox_store::{Actor, ClockStatus, DiskStatus};

use crate::{Access, App, AppError, ReplicaStatus};

/// The scrub's runs since the start, as the server's scrub task reports them.
#[derive(Debug)]
pub struct Scrubs {
    interval: Duration,
    state: Mutex<ScrubState>,
}

/// What `Scrubs` knows now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubState {
    /// When the running scrub began (compliance clock), if one runs.
    pub running_since: Option<Timestamp>,
    /// Version bytes the running scrub has read so far.
    pub bytes_read: u64,
    /// Scrubs that ran to their end since the start, and those that found a divergence.
    pub finished: u64,
    /// ... of which found divergences.
    pub failed: u64,
    /// Scrubs that could not run to their end (the store failed under them).
    pub errors: u64,
    /// The last scrub that ran to its end.
    pub last: Option<ScrubResult>,
}

/// One finished scrub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrubResult {
    /// When it ended (compliance clock).
    pub finished_at: Timestamp,
    /// Whether everything matched the signed ledger.
    pub ok: bool,
    /// What it checked and found, in a line.
    pub summary: String,
    /// Versions re-hashed.
    pub versions_checked: u64,
    /// Divergences found.
    pub divergences: u64,
    /// The ledger entry that recorded the result.
    pub ledger_sequence: u64,
}

impl Scrubs {
    /// Scrubs that start every `interval` (zero: turned off).
    pub fn new(interval: Duration) -> Scrubs {
        Scrubs { interval, state: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ScrubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A scrub begins at `now`.
    pub fn begin(&self, now: Timestamp) {
        let mut state = self.lock();
        state.running_since = Some(now);
        state.bytes_read = 0;
    }

    /// The running scrub has read `bytes` in all.
    pub fn read(&self, bytes: u64) {
        self.lock().bytes_read = bytes;
    }

    /// The running scrub ended at `now` with `report`, recorded at `ledger_sequence`.
    pub fn finish(&self, now: Timestamp, report: &IntegrityReport, ledger_sequence: u64) {
        let mut state = self.lock();
        state.running_since = None;
        state.finished += 1;
        state.failed += u64::from(!report.is_ok());
        state.last = Some(ScrubResult {
            finished_at: now,
            ok: report.is_ok(),
            summary: report.summary(),
            versions_checked: report.versions_checked,
            divergences: report.divergence_count,
            ledger_sequence,
        });
    }

    /// The running scrub could not run to its end.
    pub fn abandon(&self) {
        let mut state = self.lock();
        state.running_since = None;
        state.errors += 1;
    }

    /// What is known now.
    pub fn state(&self) -> ScrubState {
        self.lock().clone()
    }

    /// How often scrubs start (zero: turned off).
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

/// The appliance on one screen.
#[derive(Clone, Debug)]
pub struct ApplianceStatus {
    /// The running build.
    pub version: &'static str,
    /// Since this process started.
    pub uptime: Duration,
    /// The data directory's filesystem and its reserve.
    pub disk: DiskStatus,
    /// The newest durable ledger entry.
    pub ledger_sequence: u64,
    /// The newest signed checkpoint.
    pub last_checkpoint: Option<Checkpoint>,
    /// Whether the writer answered within `WRITER_WAIT`; when it did not
    /// (a stuck disk, a full write queue) the clock and replication are
    /// missing, not invented.
    pub writer_responsive: bool,
    /// The compliance clock.
    pub clock: Option<ClockStatus>,
    /// How often scrubs start (zero: turned off), and their runs.
    pub scrub_interval: Duration,
    /// The scrub's runs since the start.
    pub scrub: ScrubState,
    /// Each replication rule's progress.
    pub replication: Vec<ReplicaStatus>,
    /// MFA devices locked out now, after repeated wrong codes.
    pub devices_locked_out: u64,
    /// Lockouts begun since the start.
    pub lockouts: u64,
}

impl App {
    /// The scrub's runs, for the scrub task to report to.
    pub fn scrubs(&self) -> &std::sync::Arc<Scrubs> {
        &self.scrubs
    }

    /// GetStatus: admins and auditors. Answers even when the writer does
    /// not (when an operator most needs it), without what only it knows.
    pub async fn status(&self, actor: &Actor) -> Result<ApplianceStatus, AppError> {
        self.authorize(actor, Access::Audit)?;
        let clock = tokio::time::timeout(WRITER_WAIT, self.store.clock_status()).await.ok().transpose()?;
        let replication = match clock {
            Some(_) => tokio::time::timeout(WRITER_WAIT, self.replication_status(actor)).await.ok().transpose()?,
            None => None,
        };
        let writer_responsive = clock.is_some() && replication.is_some();
        let (store, mfa) = (self.store.clone(), self.mfa.clone());
        let now_seconds = u64::try_from(self.clock.now().as_micros() / 1_000_000).unwrap_or(0);
        // Point reads, a statvfs and the device list: off the runtime's threads.
        let (disk, last_checkpoint, devices) =
            tokio::task::spawn_blocking(move || (store.disk_status(), store.last_checkpoint(), mfa.list(None)))
                .await
                .map_err(|e| AppError::Internal(format!("a blocking task failed: {e}")))?;
        let devices_locked_out = devices?.iter().filter(|d| d.locked_until > now_seconds).count() as u64;
        Ok(ApplianceStatus {
            version: env!("CARGO_PKG_VERSION"),
            uptime: self.started.elapsed(),
            disk,
            ledger_sequence: *self.store.ledger_watch().borrow(),
            last_checkpoint: last_checkpoint?,
            writer_responsive,
            clock,
            scrub_interval: self.scrubs.interval(),
            scrub: self.scrubs.state(),
            replication: replication.unwrap_or_default(),
            devices_locked_out,
            lockouts: self.mfa.counts().lockouts,
        })
    }
}

/// How long `status` waits for the writer (the clock, replication lag).
const WRITER_WAIT: Duration = Duration::from_secs(2);

/// When the process started, for the uptime.
pub(crate) fn started() -> Instant {
    Instant::now()
}
