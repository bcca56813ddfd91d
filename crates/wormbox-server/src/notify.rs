//! systemd's service notification protocol (`sd_notify`, the unit's
//! `Type=notify` and `WatchdogSec=`): `READY=1` once the archive is open and
//! every listener bound, `STATUS=` lines an operator sees in `systemctl
//! status`, `WATCHDOG=1` while the archive's writer answers, `STOPPING=1`
//! when shutdown begins, and `EXTEND_TIMEOUT_USEC=` while the archive
//! opens: the first open by a newer build upgrades the archive's format
//! after verifying its whole ledger (86 s at 50 M entries on 2 cores), which
//! systemd's start timeout would otherwise cut off, and a restart would
//! begin again.
//!
//! Invariants:
//! - without `$NOTIFY_SOCKET` nothing is sent, and a send that fails is
//!   logged, never fatal: notification is advice to the service manager;
//! - the watchdog is fed only after the writer answered a request within
//!   half the watchdog's period: a wedged writer (a stuck disk) stops the
//!   feeding, so systemd restarts a service that accepts calls but stores
//!   nothing, instead of leaving it up.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use wormbox_store::Store;

/// Where the service manager listens, and its watchdog period.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From the environment systemd sets: `NOTIFY_SOCKET` (a path, or
    /// `@name` in the abstract namespace), `WATCHDOG_USEC` and
    /// `WATCHDOG_PID` (the watchdog is this process's only if the PID is
    /// its own or unset).
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let address = address(&path)?;
            match UnixDatagram::unbound() {
                Ok(socket) => Some((socket, address)),
                Err(err) => {
                    tracing::warn!(error = %err, "no socket for systemd's notifications");
                    None
                }
            }
        });
        let ours = std::env::var("WATCHDOG_PID").map_or(true, |pid| pid.trim() == std::process::id().to_string());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|usec| usec.trim().parse::<u64>().ok())
            .filter(|usec| *usec > 0 && ours)
            .map(Duration::from_micros);
        Notifier { socket, watchdog }
    }

    /// Whether a service manager listens.
    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends `state` (newline-separated `KEY=VALUE` assignments).
    pub fn send(&self, state: &str) {
        if let Some((socket, address)) = &self.socket
            && let Err(err) = socket.send_to_addr(state.as_bytes(), address)
        {
            tracing::warn!(error = %err, "a notification to systemd failed");
        }
    }

    /// Asks for more start time (`EXTEND_TIMEOUT_USEC`, 60 s at a time,
    /// every 20 s, from a thread of its own: the open blocks its task) until
    /// the returned guard is dropped, once the archive is open.
    pub fn extend_start(self: &std::sync::Arc<Self>) -> StartExtension {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let notifier = std::sync::Arc::clone(self);
        let thread = self.enabled().then(|| {
            std::thread::spawn(move || {
                loop {
                    notifier.send(
                        "EXTEND_TIMEOUT_USEC=60000000\nSTATUS=opening the archive (the first open by a newer build \
                         upgrades its format after verifying the whole ledger)",
                    );
                    match stopped.recv_timeout(Duration::from_secs(20)) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        // Dropped: the archive is open (or its open failed).
                        Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            })
        });
        StartExtension { stop: Some(stop), thread }
    }

    /// Feeds the watchdog while `store`'s writer answers, and says how the
    /// archive stands every time (or every 30 s without a watchdog), until
    /// the task is aborted.
    pub async fn keep_alive(&self, store: Store) {
        if !self.enabled() {
            return std::future::pending().await;
        }
        let every = self.watchdog.map_or(Duration::from_secs(30), |period| period / 2);
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let answered = tokio::time::timeout(every, store.clock_status()).await;
            let status = status_line(&store);
            match answered {
                Ok(Ok(_)) if self.watchdog.is_some() => self.send(&format!("WATCHDOG=1\n{status}")),
                Ok(Ok(_)) => self.send(&status),
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "the writer failed to answer: systemd's watchdog is not fed");
                    self.send(&format!("STATUS=the archive's writer fails: {err}"));
                }
                Err(_) => {
                    tracing::warn!(after = ?every, "the writer did not answer: systemd's watchdog is not fed");
                    self.send("STATUS=the archive's writer does not answer");
                }
            }
        }
    }
}

/// Held while the archive opens; dropping it stops asking for start time.
#[derive(Debug)]
pub struct StartExtension {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for StartExtension {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `STATUS=` for `systemctl status`: the ledger's sequence and the data
/// directory's free space, and whether new data is refused for want of it.
pub fn status_line(store: &Store) -> String {
    let sequence = *store.ledger_watch().borrow();
    let disk = store.disk_status();
    let serving = if disk.refusing { "serving reads; new data refused (disk within its reserve)" } else { "serving" };
    match disk.space {
        Some(space) => format!(
            "STATUS={serving}; ledger sequence {sequence}; data disk {:.1} GiB free of {:.1} GiB",
            space.available as f64 / f64::from(1u32 << 30),
            space.total as f64 / f64::from(1u32 << 30)
        ),
        None => format!("STATUS={serving}; ledger sequence {sequence}"),
    }
}

/// The socket address `NOTIFY_SOCKET` names.
fn address(path: &std::ffi::OsStr) -> Option<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_bytes();
    let parsed = match bytes.strip_prefix(b"@") {
        Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name),
        None => std::os::unix::net::SocketAddr::from_pathname(path),
    };
    parsed.map_err(|err| tracing::warn!(error = %err, "NOTIFY_SOCKET is not a socket address")).ok()
}
