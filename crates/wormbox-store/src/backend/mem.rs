//! `MemBackend`: the whole contract on `BTreeMap`s behind one lock.
//!
//! It exists to prove the `Backend` contract is not shaped like RocksDB, and to
//! let upper crates test without an engine. Scans copy entries out in pages so
//! that no lock is held while a caller iterates.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::backend::{Backend, BackendError, Batch, BatchOp, DiskSpace, Durability, Entries, Keyspace};

type Space = BTreeMap<Vec<u8>, Vec<u8>>;

/// An in-memory backend. Clones share the same data, which stands in for
/// reopening a persisted store.
#[derive(Clone, Debug, Default)]
pub struct MemBackend {
    spaces: Arc<RwLock<BTreeMap<Keyspace, Space>>>,
    fail_next_commit: Arc<AtomicBool>,
    held: Arc<(std::sync::Mutex<Held>, std::sync::Condvar)>,
    reads: Arc<AtomicU64>,
    disk: Arc<std::sync::Mutex<Option<DiskSpace>>>,
}

/// Whether commits are held, and how many wait.
#[derive(Debug, Default)]
struct Held {
    on: bool,
    waiting: usize,
    /// Commits let through while held (`CommitGate::let_through`).
    passes: usize,
}

/// Holds every `MemBackend::commit` until dropped (see `hold_commits`).
#[cfg(any(test, feature = "testing"))]
#[derive(Debug)]
pub struct CommitGate {
    held: Arc<(std::sync::Mutex<Held>, std::sync::Condvar)>,
}

#[cfg(any(test, feature = "testing"))]
impl CommitGate {
    /// How many commits are waiting at the gate now.
    pub fn waiting(&self) -> usize {
        self.held.0.lock().unwrap_or_else(|p| p.into_inner()).waiting
    }

    /// Lets the next `n` commits through (those waiting first), and holds
    /// the ones after them.
    pub fn let_through(&self, n: usize) {
        self.held.0.lock().unwrap_or_else(|p| p.into_inner()).passes += n;
        self.held.1.notify_all();
    }
}

#[cfg(any(test, feature = "testing"))]
impl Drop for CommitGate {
    fn drop(&mut self) {
        let mut held = self.held.0.lock().unwrap_or_else(|p| p.into_inner());
        held.on = false;
        held.passes = 0;
        drop(held);
        self.held.1.notify_all();
    }
}

impl MemBackend {
    /// Returns an empty backend.
    pub fn new() -> MemBackend {
        MemBackend::default()
    }

    /// Makes the next `commit` fail with an I/O error and change nothing.
    #[cfg(any(test, feature = "testing"))]
    pub fn fail_next_commit(&self) {
        self.fail_next_commit.store(true, Ordering::SeqCst);
    }

    /// Replaces a stored value behind the store's back, to test corruption handling.
    #[cfg(any(test, feature = "testing"))]
    pub fn tamper(&self, space: Keyspace, key: &[u8], value: Vec<u8>) {
        let mut spaces = self.spaces.write().unwrap_or_else(|p| p.into_inner());
        spaces.entry(space).or_default().insert(key.to_vec(), value);
    }

    /// Makes every commit wait until the returned gate is dropped: a slow
    /// disk, for tests of what callers see while the writer is busy.
    #[cfg(any(test, feature = "testing"))]
    pub fn hold_commits(&self) -> CommitGate {
        let mut held = self.held.0.lock().unwrap_or_else(|p| p.into_inner());
        held.on = true;
        held.passes = 0;
        drop(held);
        CommitGate { held: Arc::clone(&self.held) }
    }

    /// How many `get`s were answered so far: lets a test see that the
    /// writer has started on a command.
    #[cfg(any(test, feature = "testing"))]
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }

    /// Makes `disk_space` answer `space` from now on (`None`: no filesystem,
    /// as by default), standing in for a disk that fills and empties.
    #[cfg(any(test, feature = "testing"))]
    pub fn set_disk_space(&self, space: Option<DiskSpace>) {
        *self.disk.lock().unwrap_or_else(|p| p.into_inner()) = space;
    }

    /// Returns a copy of everything stored, to assert that nothing changed.
    #[cfg(any(test, feature = "testing"))]
    pub fn contents(&self) -> BTreeMap<Keyspace, BTreeMap<Vec<u8>, Vec<u8>>> {
        self.spaces.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

const PAGE: usize = 256;

impl Backend for MemBackend {
    fn engine(&self) -> &'static str {
        "memory"
    }

    fn disk_space(&self) -> Option<DiskSpace> {
        *self.disk.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, space: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let spaces = self.spaces.read().unwrap_or_else(|p| p.into_inner());
        Ok(spaces.get(&space).and_then(|s| s.get(key)).cloned())
    }

    fn scan(&self, space: Keyspace, start: &[u8], prefix: &[u8]) -> Entries<'_> {
        let from = if start < prefix { prefix.to_vec() } else { start.to_vec() };
        Box::new(MemScan {
            backend: self.clone(),
            space,
            prefix: prefix.to_vec(),
            next: Bound::Included(from),
            page: Vec::new().into_iter(),
            done: false,
        })
    }

    fn commit(&self, batch: &Batch, _durability: Durability) -> Result<(), BackendError> {
        {
            let mut held = self.held.0.lock().unwrap_or_else(|p| p.into_inner());
            held.waiting += 1;
            while held.on && held.passes == 0 {
                held = self.held.1.wait(held).unwrap_or_else(|p| p.into_inner());
            }
            if held.on {
                held.passes -= 1;
            }
            held.waiting -= 1;
        }
        if self.fail_next_commit.swap(false, Ordering::SeqCst) {
            return Err(BackendError::Io(std::io::Error::other("injected commit failure")));
        }
        let mut spaces = self.spaces.write().unwrap_or_else(|p| p.into_inner());
        for op in batch.ops() {
            match op {
                BatchOp::Put { space, key, value } => {
                    spaces.entry(*space).or_default().insert(key.clone(), value.clone());
                }
                BatchOp::Delete { space, key } => {
                    spaces.entry(*space).or_default().remove(key);
                }
            }
        }
        Ok(())
    }
}

struct MemScan {
    backend: MemBackend,
    space: Keyspace,
    prefix: Vec<u8>,
    next: Bound<Vec<u8>>,
    page: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
    done: bool,
}

impl Iterator for MemScan {
    type Item = Result<(Vec<u8>, Vec<u8>), BackendError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(entry) = self.page.next() {
            return Some(Ok(entry));
        }
        if self.done {
            return None;
        }
        let spaces = self.backend.spaces.read().unwrap_or_else(|p| p.into_inner());
        let page: Vec<(Vec<u8>, Vec<u8>)> = spaces
            .get(&self.space)
            .map(|s| {
                s.range((self.next.clone(), Bound::Unbounded))
                    .take_while(|(k, _)| k.starts_with(&self.prefix))
                    .take(PAGE)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        drop(spaces);
        if page.len() < PAGE {
            self.done = true;
        }
        if let Some((last, _)) = page.last() {
            self.next = Bound::Excluded(last.clone());
        }
        self.page = page.into_iter();
        self.page.next().map(Ok)
    }
}
