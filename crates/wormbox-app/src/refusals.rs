//! Diagnostics of callers the application layer refuses for their role
//! (ACCESS_DENIED decided here, before the store): such a caller may not
//! attempt the operation at all, so, as in the writer (`writer/refusals.rs`
//! in wormbox-store), the refusal is logged and is no ledger entry.
//!
//! Invariant: the log's growth from one principal's refusals is bounded: at
//! most `LOGGED_PER_WINDOW` lines per principal per `WINDOW` of the clock's
//! time, plus one line counting the rest when the next window opens; a
//! clock set back ends the window, so it cannot silence the log. A line names the principal (its access key id), what the operation
//! needed and why it was refused, never a secret or a code; the gRPC method
//! is the enclosing `grpc` span's. Windows are kept for principals that
//! authenticated, and forgotten once over, so memory stays bounded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use wormbox_model::{Clock, Timestamp};

/// Logged refusals per principal per window.
const LOGGED_PER_WINDOW: u32 = 5;
/// The window, in µs.
const WINDOW_MICROS: i64 = 60 * 1_000_000;

/// One principal's refusals in the current window.
#[derive(Clone, Copy, Debug)]
struct Window {
    start: Timestamp,
    logged: u32,
    unlogged: u64,
}

/// The application layer's role refusals, logged rate-limited per principal.
#[derive(Debug)]
pub(crate) struct RefusalLog {
    clock: Arc<dyn Clock>,
    windows: Mutex<HashMap<String, Window>>,
}

impl RefusalLog {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> RefusalLog {
        RefusalLog { clock, windows: Mutex::new(HashMap::new()) }
    }

    /// Records that `principal` was refused an operation needing `needs`,
    /// for `why`; logs it unless this principal's window has logged its
    /// share. Returns whether it was logged.
    pub(crate) fn refused(&self, principal: &str, needs: &str, why: &str) -> bool {
        let now = self.clock.now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let over = |window: &Window| now.0 < window.start.0 || now.0 >= window.start.0.saturating_add(WINDOW_MICROS);
        if windows.get(principal).is_some_and(over) {
            let ended = windows.remove(principal).expect("present");
            if ended.unlogged > 0 {
                tracing::info!(
                    principal,
                    count = ended.unlogged,
                    "further refusals of this caller's rights were not logged in the last minute"
                );
            }
        }
        if !windows.contains_key(principal) {
            // Forget every other window that is over (their counts were
            // said when they reached the limit).
            windows.retain(|_, window| !over(window));
        }
        let window = windows.entry(principal.to_owned()).or_insert(Window { start: now, logged: 0, unlogged: 0 });
        if window.logged < LOGGED_PER_WINDOW {
            window.logged += 1;
            tracing::warn!(principal, needs, why, "refused: the caller's role may not attempt this");
            if window.logged == LOGGED_PER_WINDOW {
                tracing::warn!(principal, "further refusals of this caller's rights are not logged this minute");
            }
            true
        } else {
            window.unlogged += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    use wormbox_model::ManualClock;

    #[test]
    fn each_principal_logs_its_share_per_window_and_the_rest_is_counted() {
        let clock = Arc::new(ManualClock::new(Timestamp(1_000_000_000)));
        let log = RefusalLog::new(clock.clone());
        let logged = (0..100).filter(|_| log.refused("WBA", "write", "role `reader` may not do this")).count();
        assert_eq!(logged, LOGGED_PER_WINDOW as usize);
        assert!(log.refused("WBB", "admin", "role `writer` may not do this"), "each principal has its own window");
        clock.advance(Duration::from_micros(WINDOW_MICROS as u64 - 1));
        assert!(!log.refused("WBA", "write", "again"), "the window is not over");
        assert_eq!(log.windows.lock().unwrap()["WBA"].unlogged, 96);
        clock.advance(Duration::from_micros(1));
        assert!(log.refused("WBA", "write", "again"), "a new window logs again");
        {
            let windows = log.windows.lock().unwrap();
            assert_eq!(windows.len(), 1, "finished windows are forgotten");
            assert_eq!((windows["WBA"].logged, windows["WBA"].unlogged), (1, 0));
        }
        for _ in 0..LOGGED_PER_WINDOW {
            log.refused("WBA", "write", "again");
        }
        clock.set(Timestamp(1_000_000_000));
        assert!(log.refused("WBA", "write", "again"), "a clock set back cannot silence the log");
    }
}
