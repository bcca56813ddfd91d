//! Read-ahead for the integrity check. The check meets versions in key order
//! and reads each one's chunks, which are keyed by upload and so lie in no
//! order of the versions': one point read after another, each waiting on
//! the disk, ran the check at about 35 MB/s of 1 KiB records with a cold
//! cache (the load generator's `--scale`), a small part of what the disk
//! reads. Here one thread scans the versions a little ahead of the check
//! and `READERS` threads read their first chunks, so the disk has a queue
//! and the check finds what it reads in the engine's caches.
//!
//! Invariant: the read-ahead only warms caches. What it reads is dropped,
//! errors included, and the check reads and judges every byte itself, so
//! the read-ahead can change how fast a verdict comes, never the verdict.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use crate::backend::{Backend, Keyspace};
use crate::codec::VersionRecord;
use crate::keys::chunk_key;

/// Chunk reads in flight at once: a virtio or NVMe disk serves random reads
/// several times faster with a queue than one at a time.
const READERS: usize = 8;

/// How far ahead of the check, in versions, the read-ahead may go: far
/// enough to keep the readers busy, near enough that what they read is
/// still cached when the check comes to it.
const LOOKAHEAD: u64 = 1024;

/// Chunks of one version read ahead: the check reads a large version's
/// chunks in order itself, which the engine and the disk do well already.
const CHUNKS_PER_VERSION: u32 = 2;

/// How far the check has come: versions its scan met.
#[derive(Debug, Default)]
pub(super) struct Progress {
    checked: AtomicU64,
    done: AtomicBool,
}

impl Progress {
    /// The check met one more version.
    pub(super) fn advance(&self) {
        self.checked.fetch_add(1, Ordering::Release);
    }
}

/// Runs `check`, which reports its progress through the `Progress` it is
/// given, with the read-ahead beside it; returns what `check` returned once
/// every read-ahead thread has stopped.
pub(super) fn with_read_ahead<R>(backend: &dyn Backend, check: impl FnOnce(&Progress) -> R) -> R {
    let progress = Progress::default();
    let (keys, queue) = mpsc::sync_channel::<Vec<u8>>(LOOKAHEAD as usize);
    let queue = Mutex::new(queue);
    std::thread::scope(|scope| {
        for _ in 0..READERS {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(key) = next else { return };
                    // Once the check is done, the queue is only drained, so
                    // that the scanner is never left blocked on it.
                    if !progress.done.load(Ordering::Acquire) {
                        let _ = backend.get(Keyspace::Chunks, &key);
                    }
                }
            });
        }
        scope.spawn(|| scan_ahead(backend, &progress, keys));
        let out = check(&progress);
        progress.done.store(true, Ordering::Release);
        out
    })
}

/// Scans the versions, at most `LOOKAHEAD` ahead of the check, and queues
/// the keys of their first chunks; stops when the check is done.
fn scan_ahead(backend: &dyn Backend, progress: &Progress, keys: mpsc::SyncSender<Vec<u8>>) {
    for (at, item) in (0u64..).zip(backend.scan(Keyspace::Versions, b"", b"")) {
        while at >= progress.checked.load(Ordering::Acquire) + LOOKAHEAD {
            if progress.done.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        if progress.done.load(Ordering::Acquire) {
            return;
        }
        let Ok((_, raw)) = item else { return };
        let Some(data) = VersionRecord::decode(&raw).ok().and_then(|record| record.data) else { continue };
        for index in 0..data.chunks.min(CHUNKS_PER_VERSION) {
            if keys.send(chunk_key(data.upload, index)).is_err() {
                return;
            }
        }
    }
}
