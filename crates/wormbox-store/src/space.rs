//! The reserve of free disk below which new object data is refused.
//!
//! Invariant: the bytes of a new version (a PutObject or Ingest record, a
//! chunk of a streamed upload, a multipart part) are taken only while the
//! archive's filesystem keeps more than the reserve available after them,
//! judged before any of them is written; otherwise they are refused
//! (`StoreError::DiskFull`) and nothing is written. Everything else goes on
//! below the reserve: reads, listings, reports, verification, and the
//! changes a full archive still owes, whose ledger entries are small
//! (deletes, which free space; retention, holds, principals, devices,
//! checkpoints, the clock): the reserve is the room they use.
//!
//! Bytes admitted are held by a `SpaceTicket` until they are written (or
//! given up): every judgement subtracts the bytes admitted and not yet
//! written, and those written since the filesystem was last read, from what
//! that reading said, so writers racing each other and a queue of inline
//! writes are counted before they reach the disk. (A backup's staged copy
//! and a spooled read are admitted, not held: they copy for a long time
//! while the disk is read every second, and would be counted twice.) The filesystem is read again once an eighth of the
//! reserve was written since the last reading, whenever the guard would
//! refuse, and when asked (`Store::disk_status`, which the server's health
//! loop calls every second), so writes resume by themselves once space
//! returns, and space another process takes is seen within a second. A
//! reading that fails keeps the last one; a filesystem that says it has no
//! size is no filesystem. A reserve of 0 turns the guard off: the
//! filesystem's own ENOSPC then fails the group commit, which changes
//! nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::StoreError;
use crate::backend::{Backend, DiskSpace};

/// The reserve when none is configured: 1 GiB, or 2 % of the filesystem
/// when that is less (a small filesystem is not refused from its start).
const DEFAULT_RESERVE: u64 = 1 << 30;
/// What one admitted write is counted beyond its bytes: its version record,
/// ledger entry, log frame and index entries.
const PER_WRITE: u64 = 4096;

/// What the guard saw at its last reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskStatus {
    /// The filesystem, if the backend has one.
    pub space: Option<DiskSpace>,
    /// The reserve in force (0: no guard).
    pub reserve: u64,
    /// Whether new data is refused now (even a write of no bytes would be).
    pub refusing: bool,
    /// Bytes admitted and not yet written.
    pub in_flight: u64,
    /// Writes refused for want of space since the store opened.
    pub refused: u64,
}

/// The guard: the configured reserve and the last reading.
#[derive(Debug)]
pub(crate) struct SpaceGuard {
    configured: Option<u64>,
    reading: Arc<Mutex<Reading>>,
    refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Reading {
    /// `None` before the first reading, or when the backend has no filesystem.
    space: Option<DiskSpace>,
    taken: bool,
    /// Bytes admitted and not yet written (tickets alive).
    in_flight: u64,
    /// Bytes written since `space` was read (tickets dropped since).
    written: u64,
    refusing: bool,
}

impl Reading {
    fn take(&mut self, backend: &dyn Backend) {
        match backend.disk_space() {
            Some(space) if space.total > 0 => self.space = Some(space),
            // A failed reading keeps the last: the guard does not open on it.
            _ if self.space.is_some() => {}
            _ => self.space = None,
        }
        self.taken = true;
        self.written = 0;
    }

    /// What is left after what was admitted or written since the reading.
    fn left(&self, space: &DiskSpace) -> u64 {
        space.available.saturating_sub(self.in_flight).saturating_sub(self.written)
    }
}

/// Bytes admitted against the reserve and not yet written: dropped once
/// they are (or will never be), they count as written until the next
/// reading of the filesystem.
#[derive(Debug)]
#[must_use = "the bytes count as admitted only while the ticket lives"]
pub struct SpaceTicket {
    reading: Option<Arc<Mutex<Reading>>>,
    cost: u64,
}

impl SpaceTicket {
    /// A ticket that holds nothing (the guard is off, or no filesystem).
    fn none() -> SpaceTicket {
        SpaceTicket { reading: None, cost: 0 }
    }
}

impl Drop for SpaceTicket {
    fn drop(&mut self) {
        if let Some(reading) = self.reading.take() {
            let mut reading = reading.lock().unwrap_or_else(|p| p.into_inner());
            reading.in_flight = reading.in_flight.saturating_sub(self.cost);
            reading.written = reading.written.saturating_add(self.cost);
        }
    }
}

impl SpaceGuard {
    /// A guard keeping `reserve` bytes free (`None`: the default).
    pub(crate) fn new(reserve: Option<u64>) -> SpaceGuard {
        SpaceGuard { configured: reserve, reading: Arc::default(), refused: AtomicU64::new(0) }
    }

    fn reserve(&self, space: &DiskSpace) -> u64 {
        self.configured.unwrap_or_else(|| DEFAULT_RESERVE.min(space.total / 50))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reading> {
        self.reading.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits `bytes` of new object data, or refuses them, before any is
    /// written; the ticket holds them until they are.
    pub(crate) fn admit(&self, backend: &dyn Backend, bytes: u64) -> Result<SpaceTicket, StoreError> {
        if self.configured == Some(0) {
            return Ok(SpaceTicket::none());
        }
        let cost = bytes.saturating_add(PER_WRITE);
        let mut reading = self.lock();
        let mut fresh = false;
        let stale = |r: &Reading, space: &DiskSpace| r.written > (self.reserve(space) / 8).max(PER_WRITE);
        if !reading.taken || reading.refusing || reading.space.is_some_and(|s| stale(&reading, &s)) {
            reading.take(backend);
            fresh = true;
        }
        loop {
            // No filesystem to judge by: nothing to keep.
            let Some(space) = reading.space else { return Ok(SpaceTicket::none()) };
            let reserve = self.reserve(&space);
            let left = reading.left(&space);
            if left.saturating_sub(cost) > reserve && left > cost {
                reading.in_flight += cost;
                reading.refusing = false;
                return Ok(SpaceTicket { reading: Some(Arc::clone(&self.reading)), cost });
            }
            if !fresh {
                reading.take(backend);
                fresh = true;
                continue;
            }
            // Refusing for everything only when even an empty write would be.
            reading.refusing = left.saturating_sub(PER_WRITE) <= reserve;
            drop(reading);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::DiskFull { bytes, available: left, reserve });
        }
    }

    /// Reads the filesystem again and says what the guard now sees: new data
    /// is refused while even a write of no bytes would leave no more than
    /// the reserve, as `admit` judges it.
    pub(crate) fn status(&self, backend: &dyn Backend) -> DiskStatus {
        let mut reading = self.lock();
        reading.take(backend);
        let space = reading.space;
        let reserve = match (self.configured, space) {
            (Some(0), _) => 0,
            (_, Some(space)) => self.reserve(&space),
            (configured, None) => configured.unwrap_or(0),
        };
        reading.refusing = reserve > 0 && space.is_some_and(|s| reading.left(&s).saturating_sub(PER_WRITE) <= reserve);
        DiskStatus {
            space,
            reserve,
            refusing: reading.refusing,
            in_flight: reading.in_flight,
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

/// `bytes` for a person: `1.5 GiB`, `812.0 MiB`, `512 bytes`.
pub(crate) fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::MemBackend;

    fn space(available: u64) -> Option<DiskSpace> {
        Some(DiskSpace { total: 100 << 30, free: available, available })
    }

    #[test]
    fn bytes_are_admitted_only_while_the_reserve_stays_free_after_them() {
        let backend = MemBackend::new();
        let guard = SpaceGuard::new(Some(100 << 20));
        backend.set_disk_space(space(200 << 20));
        let err = guard.admit(&backend, 150 << 20).unwrap_err();
        assert!(
            matches!(err, StoreError::DiskFull { bytes, reserve, .. } if bytes == 150 << 20 && reserve == 100 << 20),
            "{err:?}"
        );
        assert!(!guard.status(&backend).refusing, "a smaller write still fits");
        let queued = guard.admit(&backend, 90 << 20).unwrap();
        // Admitted and not yet written: counted against the next writer.
        assert!(guard.admit(&backend, 10 << 20).is_err());
        assert_eq!(guard.status(&backend).in_flight, (90 << 20) + PER_WRITE);
        drop(queued);
        backend.set_disk_space(space(110 << 20));
        assert!(guard.admit(&backend, 10 << 20).is_err());
        backend.set_disk_space(space(100 << 20));
        let status = guard.status(&backend);
        assert!(status.refusing);
        assert_eq!((status.refused, status.in_flight), (3, 0));
        // Space returned: the next write is admitted without being told.
        backend.set_disk_space(space(101 << 20));
        drop(guard.admit(&backend, 1).unwrap());
        assert!(!guard.status(&backend).refusing);
    }

    #[test]
    fn space_another_process_takes_is_seen_after_an_eighth_of_the_reserve_is_written() {
        let backend = MemBackend::new();
        let guard = SpaceGuard::new(Some(80 << 20));
        backend.set_disk_space(space(1 << 30));
        drop(guard.admit(&backend, 1).unwrap());
        backend.set_disk_space(space(10 << 20));
        // Less than an eighth of the reserve written since the reading: not read again.
        drop(guard.admit(&backend, 9 << 20).unwrap());
        drop(guard.admit(&backend, 2 << 20).unwrap());
        assert!(matches!(guard.admit(&backend, 1), Err(StoreError::DiskFull { .. })));
    }

    #[test]
    fn a_failed_reading_keeps_the_last_and_a_filesystem_of_no_size_is_none() {
        let backend = MemBackend::new();
        let guard = SpaceGuard::new(Some(10 << 20));
        backend.set_disk_space(space(5 << 20));
        assert!(guard.status(&backend).refusing);
        backend.set_disk_space(None);
        assert!(guard.admit(&backend, 1).is_err(), "the guard does not open when statvfs fails");
        let fresh = SpaceGuard::new(None);
        backend.set_disk_space(Some(DiskSpace { total: 0, free: 0, available: 0 }));
        drop(fresh.admit(&backend, 1 << 20).unwrap());
        assert!(!fresh.status(&backend).refusing);
    }

    #[test]
    fn the_default_reserve_is_a_gibibyte_or_two_percent() {
        let backend = MemBackend::new();
        let guard = SpaceGuard::new(None);
        backend.set_disk_space(Some(DiskSpace { total: 1 << 40, free: 2 << 30, available: 2 << 30 }));
        assert_eq!(guard.status(&backend).reserve, 1 << 30);
        backend.set_disk_space(Some(DiskSpace { total: 10 << 30, free: 1 << 30, available: 1 << 30 }));
        let status = guard.status(&backend);
        assert_eq!(status.reserve, (10 << 30) / 50);
        assert!(!status.refusing);
    }

    #[test]
    fn a_reserve_of_zero_and_a_backend_without_a_filesystem_admit_everything() {
        let backend = MemBackend::new();
        let off = SpaceGuard::new(Some(0));
        backend.set_disk_space(space(0));
        drop(off.admit(&backend, 1 << 30).unwrap());
        assert!(!off.status(&backend).refusing);
        let guard = SpaceGuard::new(None);
        backend.set_disk_space(None);
        drop(guard.admit(&backend, u64::MAX).unwrap());
        let nothing = DiskStatus { space: None, reserve: 0, refusing: false, in_flight: 0, refused: 0 };
        assert_eq!(guard.status(&backend), nothing);
    }

    #[test]
    fn sizes_read_as_a_person_says_them() {
        assert_eq!(bytes_text(512), "512 bytes");
        assert_eq!(bytes_text(1536), "1.5 KiB");
        assert_eq!(bytes_text(1 << 30), "1.0 GiB");
    }
}
