//! How many refused attempts of one principal become ledger entries.
//!
//! Invariant: the ledger's growth from one principal's refusals is bounded:
//! at most `PER_WINDOW` itemised `refused`/`mfa-refused` entries per
//! principal per `WINDOW` of compliance time, plus one entry that counts the
//! rest of that window's refusals (written by the first group after the
//! window ends, or at a clean stop). Nothing is dropped silently: every
//! refusal is itemised or counted in such an entry, except with a commit
//! that failed, and the counts of a window still open when the process dies
//! (kill -9, power loss): at most one minute's, after its itemised ones.
//! Refusals of callers who may not attempt the operation at all
//! (`AccessDenied`) are no ledger entries: they are diagnostics, logged at
//! most `LOGGED_PER_WINDOW` times per principal per window.

use std::collections::BTreeMap;

use wormbox_model::Timestamp;

/// Itemised refusal entries per principal per window.
pub(crate) const PER_WINDOW: u32 = 20;
/// Logged role refusals per principal per window.
const LOGGED_PER_WINDOW: u32 = 5;
/// The window, in µs of compliance time.
pub(crate) const WINDOW_MICROS: i64 = 60 * 1_000_000;

/// One principal's refusals in the current window.
#[derive(Clone, Copy, Debug)]
struct Window {
    start: Timestamp,
    itemised: u32,
    counted: u64,
    denied: u32,
}

/// A finished window's refusals that were counted, not itemised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) principal: String,
    pub(crate) count: u64,
    pub(crate) from: Timestamp,
    pub(crate) to: Timestamp,
}

impl Tally {
    /// The counting entry's detail.
    pub(crate) fn detail(&self) -> String {
        format!(
            "{} further refused attempts between {} and {}, not itemised (more than {PER_WINDOW} in a minute)",
            self.count,
            self.from.to_rfc3339(),
            self.to.to_rfc3339()
        )
    }
}

/// The writer's per-principal refusal windows. Kept by the writer thread
/// beside its state, not in it: a group that writes nothing keeps its
/// count, and a failed commit loses only the entries it held.
#[derive(Debug, Default)]
pub(crate) struct RefusalBudget {
    windows: BTreeMap<String, Window>,
}

impl RefusalBudget {
    fn window(&mut self, principal: &str, now: Timestamp) -> &mut Window {
        self.windows.entry(principal.to_owned()).or_insert(Window { start: now, itemised: 0, counted: 0, denied: 0 })
    }

    /// Whether a refusal of `principal` at `now` is itemised; if not, it is counted.
    pub(crate) fn admit(&mut self, principal: &str, now: Timestamp) -> bool {
        let window = self.window(principal, now);
        if window.itemised < PER_WINDOW {
            window.itemised += 1;
            return true;
        }
        if window.counted == 0 {
            tracing::warn!(
                principal,
                "more than {PER_WINDOW} refused attempts in a minute: the rest of the minute's are counted in one ledger entry"
            );
        }
        window.counted += 1;
        false
    }

    /// Logs a refusal of a caller without the right, rate-limited.
    pub(crate) fn denied(&mut self, principal: &str, now: Timestamp, why: &dyn std::fmt::Display) {
        let window = self.window(principal, now);
        window.denied += 1;
        if window.denied <= LOGGED_PER_WINDOW {
            tracing::info!(principal, %why, "refused: the caller may not attempt this");
        } else if window.denied == LOGGED_PER_WINDOW + 1 {
            tracing::info!(principal, "further refusals of this caller's rights are not logged this minute");
        }
    }

    /// Whether any window is open.
    pub(crate) fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Ends the windows that are over at `now`, returning the counts to write.
    pub(crate) fn close(&mut self, now: Timestamp) -> Vec<Tally> {
        self.close_where(|window| now.0 >= window.start.0.saturating_add(WINDOW_MICROS), None)
    }

    /// Ends every window, at a clean stop: the counts end at `now`.
    pub(crate) fn close_all(&mut self, now: Timestamp) -> Vec<Tally> {
        self.close_where(|_| true, Some(now))
    }

    fn close_where(&mut self, over: impl Fn(&Window) -> bool, end: Option<Timestamp>) -> Vec<Tally> {
        let mut tallies = Vec::new();
        self.windows.retain(|principal, window| {
            let over = over(window);
            if over && window.counted > 0 {
                let full = Timestamp(window.start.0.saturating_add(WINDOW_MICROS));
                tallies.push(Tally {
                    principal: principal.clone(),
                    count: window.counted,
                    from: window.start,
                    to: end.map_or(full, |end| end.min(full)),
                });
            }
            !over
        });
        tallies
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_itemises_its_share_and_counts_the_rest() {
        let mut budget = RefusalBudget::default();
        let t0 = Timestamp(1_000_000_000);
        let admitted = (0..100).filter(|_| budget.admit("WBA", t0)).count();
        assert_eq!(admitted, PER_WINDOW as usize);
        assert!(budget.admit("WBB", t0), "each principal has its own window");
        assert!(budget.close(Timestamp(t0.0 + WINDOW_MICROS - 1)).is_empty());
        let tallies = budget.close(Timestamp(t0.0 + WINDOW_MICROS));
        assert_eq!(tallies.len(), 1);
        assert_eq!((tallies[0].principal.as_str(), tallies[0].count), ("WBA", 80));
        assert!(budget.is_empty(), "finished windows are forgotten");
        assert!(budget.admit("WBA", Timestamp(t0.0 + WINDOW_MICROS)), "a new window itemises again");
        for _ in 0..PER_WINDOW + 3 {
            budget.admit("WBA", Timestamp(t0.0 + WINDOW_MICROS + 1));
        }
        let stop = Timestamp(t0.0 + WINDOW_MICROS + 5);
        let tallies = budget.close_all(stop);
        assert_eq!((tallies[0].count, tallies[0].to), (4, stop), "a stop writes an open window's count");
        assert!(budget.is_empty());
    }
}
