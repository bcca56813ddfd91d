//! Histograms of the group commit (its size and how long its sync took),
//! kept in atomics: the committer records without a lock and a reader (the
//! metrics endpoint) takes a snapshot without stopping it.
//!
//! Invariant: a histogram's bucket bounds are fixed when it is made, and
//! every count only grows, so successive snapshots never go backwards.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the group-size buckets, in commands.
pub(crate) const GROUP_SIZE_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// Upper bounds of the sync-time buckets, in seconds (100 µs to 2.5 s).
pub(crate) const SYNC_SECONDS_BOUNDS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Counts of observations by bucket, with their sum.
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// One per bound, then one for everything above the last.
    counts: Box<[AtomicU64]>,
    /// The sum, in units of `1 / scale`.
    sum: AtomicU64,
    scale: f64,
}

impl Histogram {
    /// A histogram whose values are summed in units of `1 / scale` (1e9 for
    /// seconds kept as nanoseconds, 1 for counts).
    pub(crate) fn new(bounds: &'static [f64], scale: f64) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            scale,
        }
    }

    pub(crate) fn observe(&self, value: f64) {
        let bucket = self.bounds.iter().position(|bound| value <= *bound).unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add((value * self.scale).round() as u64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            counts: self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
            sum: self.sum.load(Ordering::Relaxed) as f64 / self.scale,
        }
    }
}

/// A histogram as read at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    /// The buckets' upper bounds (inclusive), ascending.
    pub bounds: &'static [f64],
    /// Observations in each bucket (not cumulative), one more than `bounds`:
    /// the last counts those above every bound.
    pub counts: Vec<u64>,
    /// The sum of every observation.
    pub sum: f64,
}

impl HistogramSnapshot {
    /// Every observation.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The group commit's histograms since the store opened
/// (`Store::commit_histograms`).
#[derive(Clone, Debug, PartialEq)]
pub struct CommitHistograms {
    /// Commands per successful group commit.
    pub group_size: HistogramSnapshot,
    /// Seconds each group's durable write (`Backend::commit`) took, failed
    /// ones included.
    pub sync_seconds: HistogramSnapshot,
    /// Seconds each request waited in the writer's queue before its group
    /// began applying it (the write queue's own wait for room not included).
    pub queue_wait_seconds: HistogramSnapshot,
    /// Seconds the writer took to apply each group (its rules judged, its
    /// ledger entries made), before the durable write.
    pub apply_seconds: HistogramSnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::new(SYNC_SECONDS_BOUNDS, 1e9);
        h.observe(0.00005);
        h.observe(0.0001);
        h.observe(0.003);
        h.observe(60.0);
        let s = h.snapshot();
        assert_eq!(s.counts[0], 2, "the bound is inclusive");
        assert_eq!(s.counts[5], 1, "0.003 s is in the 5 ms bucket");
        assert_eq!(s.counts[SYNC_SECONDS_BOUNDS.len()], 1, "above every bound");
        assert_eq!(s.count(), 4);
        assert!((s.sum - 60.00315).abs() < 1e-6, "{}", s.sum);
    }
}
