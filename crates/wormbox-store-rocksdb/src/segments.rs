//! Segment files: append-only files beside RocksDB holding the log (one
//! frame per commit, see `log.rs`), and, in archives written before the log,
//! bare values, with a 21-byte reference in RocksDB where each value is.
//!
//! Invariants, kept by `RocksBackend::commit` and `RocksBackend::open`:
//! - a frame is synced (`sync_data`) before RocksDB is written any change
//!   it holds, and so before any reference into it;
//! - each segment's committed end is recorded with the changes of the frame
//!   that reaches it, so bytes past it were never acknowledged and are cut
//!   off at open (after the log is replayed into the index);
//! - a deleted or replaced reference's bytes are punched out of the file
//!   right after the frame that freed them is synced and its changes are in
//!   the index (the punch is recorded there, and finished at a later commit
//!   or at open if a crash came first); a replay that meets such a value
//!   (its bytes fail their own checksum) finds the freeing op later in the
//!   log, since it was durable before the punch (see `RocksBackend::replay`).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use wormbox_store::backend::{BackendError, Keyspace};

use crate::log::{self, Position};

/// Column family: `chunks` key → `ValueRef` of a value kept in a segment.
pub(crate) const REFS: &str = "chunk-refs";
/// Column family: per segment its committed end (`e` + id), and punches
/// not yet done (`p` + reference).
pub(crate) const SEGMENTS: &str = "value-segments";
/// Column family of the log: the first segment written as a log (`l`) and
/// the log position the index holds everything before (`c`). Its presence
/// also keeps builds from before the log out: RocksDB refuses to open a
/// database with a family the opener does not name, so such a build cannot
/// write beside the log or serve without replaying it.
pub(crate) const LOG: &str = "log";

const END: u8 = b'e';
const PUNCH: u8 = b'p';
/// The first segment holding log frames; those before it (written by
/// builds before the log) hold bare values.
pub(crate) const LOG_START: &[u8] = b"l";
/// The log position up to which the index holds every frame's changes,
/// written with each frame's changes.
pub(crate) const COVERED: &[u8] = b"c";
const REF_TAG: u8 = 1;
const REF_BYTES: usize = 21;

/// Where a value's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ValueRef {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

impl ValueRef {
    pub(crate) fn encode(self) -> [u8; REF_BYTES] {
        let mut out = [0; REF_BYTES];
        out[0] = REF_TAG;
        out[1..9].copy_from_slice(&self.segment.to_be_bytes());
        out[9..17].copy_from_slice(&self.offset.to_be_bytes());
        out[17..21].copy_from_slice(&self.len.to_be_bytes());
        out
    }

    pub(crate) fn decode(raw: &[u8]) -> Result<ValueRef, BackendError> {
        if raw.len() != REF_BYTES || raw[0] != REF_TAG {
            return Err(corrupt(format!("a value reference of {} bytes is malformed", raw.len())));
        }
        let u64_at = |at: usize| u64::from_be_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
        Ok(ValueRef {
            segment: u64_at(1),
            offset: u64_at(9),
            len: u32::from_be_bytes(raw[17..21].try_into().expect("4 bytes")),
        })
    }

    fn end(self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

/// The key recording segment `id`'s committed end.
pub(crate) fn end_key(id: u64) -> [u8; 9] {
    let mut key = [END; 9];
    key[1..].copy_from_slice(&id.to_be_bytes());
    key
}

/// The key recording a punch of `r` not yet done.
pub(crate) fn punch_key(r: ValueRef) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + REF_BYTES);
    key.push(PUNCH);
    key.extend_from_slice(&r.encode());
    key
}

pub(crate) fn punch_prefix() -> [u8; 1] {
    [PUNCH]
}

pub(crate) fn end_prefix() -> [u8; 1] {
    [END]
}

pub(crate) fn decode_end(key: &[u8], value: &[u8]) -> Result<(u64, u64), BackendError> {
    match (key.get(1..).map(<[u8; 8]>::try_from), <[u8; 8]>::try_from(value)) {
        (Some(Ok(id)), Ok(end)) if key.len() == 9 => Ok((u64::from_be_bytes(id), u64::from_be_bytes(end))),
        _ => Err(corrupt("a segment's recorded end is malformed".into())),
    }
}

pub(crate) fn decode_punch(key: &[u8]) -> Result<ValueRef, BackendError> {
    ValueRef::decode(key.get(1..).unwrap_or_default())
}

fn file_name(id: u64) -> String {
    format!("values-{id:016x}.seg")
}

/// Parses a segment file's name; RocksDB ignores files it does not name.
pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("values-")?.strip_suffix(".seg")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

pub(crate) fn corrupt(why: String) -> BackendError {
    BackendError::Corruption { space: Some(Keyspace::Chunks), source: why.into() }
}

pub(crate) fn io(what: &str, path: &Path, err: std::io::Error) -> BackendError {
    BackendError::Io(std::io::Error::new(err.kind(), format!("{what} {}: {err}", path.display())))
}

/// Makes the segment files in `dir` agree with the committed `ends` (id →
/// end) the database recorded: files no commit recorded are removed, bytes
/// past a recorded end are cut off; a file shorter than its end, or missing,
/// is corruption. Returns the highest segment id in use.
pub(crate) fn reconcile(dir: &Path, ends: &HashMap<u64, u64>) -> Result<u64, BackendError> {
    let mut last_id = ends.keys().copied().max().unwrap_or(0);
    let mut changed = false;
    let files = Segments::list(dir)?;
    for (id, path) in &files {
        let Some(&end) = ends.get(id) else {
            // Created by a commit that never landed: nothing refers to it.
            std::fs::remove_file(path).map_err(|e| io("removing", path, e))?;
            changed = true;
            continue;
        };
        let file = OpenOptions::new().write(true).open(path).map_err(|e| io("opening", path, e))?;
        let len = file.metadata().map_err(|e| io("reading", path, e))?.len();
        if len < end {
            return Err(corrupt(format!(
                "value segment {} holds {len} bytes but {end} were committed",
                path.display()
            )));
        }
        if len > end {
            file.set_len(end).map_err(|e| io("truncating", path, e))?;
            file.sync_all().map_err(|e| io("syncing", path, e))?;
            changed = true;
        }
        // Blocks reserved past the end for frames that never came (the
        // segment was active when the appliance stopped) go back to the
        // filesystem.
        release_past_end(&file, end);
        last_id = last_id.max(*id);
    }
    if let Some(missing) = ends.keys().find(|id| !files.iter().any(|(f, _)| f == *id)) {
        return Err(corrupt(format!("value segment {missing} is recorded but its file is missing")));
    }
    if changed {
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("syncing", dir, e))?;
    }
    Ok(last_id)
}

/// The segment being appended to.
#[derive(Debug)]
struct Active {
    id: u64,
    file: File,
    end: u64,
    /// Blocks are reserved up to here (see `reserve`).
    reserved: u64,
}

/// Appending state, held for a whole commit (see `RocksBackend::commit`).
#[derive(Debug)]
pub(crate) struct Appender {
    active: Option<Active>,
    /// Full segments appended to since the last `sync`, not yet synced.
    sealed: Vec<Active>,
    next_id: u64,
    /// Segments appended to since the last `sync`: id, and the range of
    /// bytes written.
    touched: Vec<(u64, std::ops::Range<u64>)>,
}

impl Appender {
    /// Numbers the next segment after `last_id` (the highest in use).
    pub(crate) fn set_last_id(&mut self, last_id: u64) {
        self.next_id = self.next_id.max(last_id + 1);
    }
}

/// The segment files of one database directory.
#[derive(Debug)]
pub(crate) struct Segments {
    dir: PathBuf,
    file_bytes: u64,
    appender: Mutex<Appender>,
    readers: RwLock<HashMap<u64, Arc<File>>>,
    /// Held while punching, and by a backup while it copies the files, so
    /// that a copy never loses bytes its own references point at.
    punch_gate: Mutex<()>,
    /// The first segment holding log frames (`u64::MAX`: none).
    log_start: std::sync::atomic::AtomicU64,
}

impl Segments {
    /// Segments in `dir`, the next one numbered after `last_id`.
    pub(crate) fn new(dir: &Path, file_bytes: u64, last_id: u64) -> Segments {
        Segments {
            dir: dir.to_owned(),
            file_bytes: file_bytes.max(1),
            appender: Mutex::new(Appender {
                active: None,
                sealed: Vec::new(),
                next_id: last_id + 1,
                touched: Vec::new(),
            }),
            readers: RwLock::new(HashMap::new()),
            punch_gate: Mutex::new(()),
            log_start: std::sync::atomic::AtomicU64::new(u64::MAX),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segment files' lengths and the bytes of disk they take, summed
    /// (a file that vanishes meanwhile counts nothing).
    pub(crate) fn disk_usage(&self) -> (u64, u64) {
        use std::os::unix::fs::MetadataExt;
        let Ok(files) = Segments::list(&self.dir) else { return (0, 0) };
        files
            .iter()
            .filter_map(|(_, path)| std::fs::metadata(path).ok())
            .fold((0, 0), |(len, allocated), m| (len + m.len(), allocated + m.blocks() * 512))
    }

    pub(crate) fn path(&self, id: u64) -> PathBuf {
        self.dir.join(file_name(id))
    }

    /// Every segment file in the directory, by id.
    pub(crate) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, BackendError> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io("listing", dir, e))? {
            let entry = entry.map_err(|e| io("listing", dir, e))?;
            if let Some(id) = entry.file_name().to_str().and_then(parse_file_name) {
                found.push((id, entry.path()));
            }
        }
        found.sort();
        Ok(found)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Appender> {
        self.appender.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn gate(&self) -> MutexGuard<'_, ()> {
        self.punch_gate.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn try_gate(&self) -> Option<MutexGuard<'_, ()>> {
        match self.punch_gate.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Where a frame of `len` bytes goes: the end of the active segment,
    /// or the start of a new one when it would not fit (a frame is never
    /// split across files).
    pub(crate) fn place(&self, appender: &mut Appender, len: usize) -> Result<Position, BackendError> {
        if appender.active.as_ref().is_none_or(|a| a.end > 0 && a.end + len as u64 > self.file_bytes) {
            self.start_segment(appender)?;
        }
        let active = appender.active.as_ref().expect("a segment was just started");
        Ok(Position { segment: active.id, offset: active.end })
    }

    /// Writes `frame` at `at` (from `place`), not yet synced. When the write
    /// fails (a full disk), what it wrote is cut off again, so the next
    /// frame follows the last whole one; `Err(_, true)` when even that
    /// failed and the file's tail is unknown.
    pub(crate) fn write_frame(
        &self,
        appender: &mut Appender,
        at: Position,
        frame: &[u8],
    ) -> Result<(), (BackendError, bool)> {
        let active = appender.active.as_mut().expect("placed in the active segment");
        debug_assert_eq!((active.id, active.end), (at.segment, at.offset));
        let path = self.dir.join(file_name(active.id));
        reserve(active, at.offset + frame.len() as u64, self.file_bytes);
        if let Err(e) = active.file.write_all_at(frame, at.offset) {
            let cut = active.file.set_len(at.offset);
            return Err((io("writing", &path, e), cut.is_err()));
        }
        active.end = at.offset + frame.len() as u64;
        match appender.touched.last_mut() {
            Some((id, written)) if *id == at.segment => written.end = active.end,
            _ => appender.touched.push((at.segment, at.offset..active.end)),
        }
        Ok(())
    }

    /// Opens segment `id` for reading frames from it, if it exists.
    pub(crate) fn open_file(&self, id: u64) -> Result<Option<File>, BackendError> {
        let path = self.path(id);
        match File::open(&path) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("opening", &path, e)),
        }
    }

    fn start_segment(&self, appender: &mut Appender) -> Result<(), BackendError> {
        // The full segment's bytes are synced by `sync`, which still has it
        // in `touched`: the new file only changes where appends go.
        let id = appender.next_id;
        let path = self.path(id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io("creating", &path, e))?;
        // Taken even if the directory's sync fails: the file exists.
        appender.next_id = id + 1;
        // The file's name must survive a crash as surely as its bytes.
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| io("syncing", &self.dir, e))?;
        if let Some(old) = appender.active.replace(Active { id, file, end: 0, reserved: 0 }) {
            appender.sealed.push(old);
        }
        Ok(())
    }

    /// The segments written since the last `sync` and where each now ends,
    /// as `sync` will return them.
    pub(crate) fn unsynced_ends(&self, appender: &Appender) -> Vec<(u64, u64)> {
        appender.touched.iter().map(|(id, range)| (*id, range.end)).collect()
    }

    /// Asks the kernel to start writing the active segment's unsynced bytes
    /// to disk now, without waiting: the work done before `sync` (the
    /// index's changes) then overlaps the disk's, and `sync` waits less.
    pub(crate) fn start_writeback(&self, appender: &Appender) {
        use std::os::fd::AsRawFd;
        let Some(active) = &appender.active else { return };
        let Some((_, range)) = appender.touched.iter().find(|(id, _)| *id == active.id) else { return };
        // SAFETY: sync_file_range takes a file descriptor this `File` owns
        // and plain integers; it touches no memory of ours. Advice only: a
        // failure is seen, if it matters, by the `fdatasync` that follows.
        unsafe {
            libc::sync_file_range(
                active.file.as_raw_fd(),
                range.start as libc::off64_t,
                (range.end - range.start) as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }

    /// Syncs every segment appended to since the last call and returns their
    /// new committed ends, for the WriteBatch that references them.
    pub(crate) fn sync(&self, appender: &mut Appender) -> Result<Vec<(u64, u64)>, BackendError> {
        let touched = std::mem::take(&mut appender.touched);
        let written = |id: u64| touched.iter().find(|(touched, _)| *touched == id).map(|(_, range)| range.clone());
        for sealed in appender.sealed.drain(..) {
            sealed.file.sync_data().map_err(|e| io("syncing", &self.path(sealed.id), e))?;
            if let Some(range) = written(sealed.id) {
                drop_cached(&sealed.file, range);
            }
        }
        if let Some(active) = &appender.active
            && let Some(range) = written(active.id)
        {
            active.file.sync_data().map_err(|e| io("syncing", &self.path(active.id), e))?;
            drop_cached(&active.file, range);
        }
        Ok(touched.into_iter().map(|(id, range)| (id, range.end)).collect())
    }

    /// Numbers the first segment written as a log (see `LOG_START`): a
    /// value in it or a later one is checked against its frame's checksum
    /// when read.
    pub(crate) fn set_log_start(&self, id: u64) {
        self.log_start.store(id, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reads the bytes `r` points at. A value in the log is checked against
    /// the length and checksum its frame recorded before it, so damaged
    /// bytes are reported as lost, as RocksDB reports a damaged block.
    pub(crate) fn read(&self, r: ValueRef) -> Result<Vec<u8>, BackendError> {
        let file = self.reader(r.segment)?;
        let short = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                corrupt(format!("segment {} ends before the {} bytes at {}", r.segment, r.len, r.offset))
            }
            _ => io("reading", &self.path(r.segment), e),
        };
        let mut buf = vec![0; r.len as usize];
        file.read_exact_at(&mut buf, r.offset).map_err(short)?;
        if r.segment >= self.log_start.load(std::sync::atomic::Ordering::Relaxed) {
            let mut head = [0; log::VALUE_HEAD];
            let at = r.offset.checked_sub(log::VALUE_HEAD as u64).ok_or_else(|| {
                corrupt(format!("a reference into segment {} points before its first frame", r.segment))
            })?;
            file.read_exact_at(&mut head, at).map_err(short)?;
            if !log::value_is_whole(head, &buf) {
                return Err(corrupt(format!(
                    "the {} bytes at {} in segment {} fail their checksum",
                    r.len, r.offset, r.segment
                )));
            }
        }
        Ok(buf)
    }

    fn reader(&self, id: u64) -> Result<Arc<File>, BackendError> {
        if let Some(file) = self.readers.read().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return Ok(file.clone());
        }
        let path = self.path(id);
        let file = match File::open(&path) {
            Ok(file) => Arc::new(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(corrupt(format!("segment file {} is missing", path.display())));
            }
            Err(e) => return Err(io("opening", &path, e)),
        };
        self.readers.write().unwrap_or_else(|p| p.into_inner()).insert(id, file.clone());
        Ok(file)
    }

    /// Frees the bytes of `refs` (which nothing references any more) and
    /// syncs that, so purged bytes do not come back after a crash.
    pub(crate) fn punch(&self, refs: &[ValueRef]) -> Result<(), BackendError> {
        let mut by_segment: HashMap<u64, Vec<ValueRef>> = HashMap::new();
        for r in refs {
            by_segment.entry(r.segment).or_default().push(*r);
        }
        for (id, refs) in by_segment {
            let path = self.path(id);
            let file = match OpenOptions::new().write(true).open(&path) {
                Ok(file) => file,
                // Nothing left to free.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("opening", &path, e)),
            };
            for r in refs {
                punch_hole(&file, r).map_err(|e| io("freeing bytes in", &path, e))?;
            }
            file.sync_data().map_err(|e| io("syncing", &path, e))?;
        }
        Ok(())
    }

    /// Copies every segment file into `to` (bytes, not links: a later punch
    /// must not reach into the copy).
    pub(crate) fn copy_files(&self, to: &Path) -> Result<(), BackendError> {
        for (id, path) in Segments::list(&self.dir)? {
            let target = to.join(file_name(id));
            std::fs::copy(&path, &target).map_err(|e| io("copying", &path, e))?;
        }
        Ok(())
    }
}

/// How far ahead of the log's end blocks are reserved.
const RESERVE_BYTES: u64 = 8 << 20;

/// Reserves blocks (without writing them or changing the file's size) up to
/// `RESERVE_BYTES` past `end`, within the segment's size, whenever `end`
/// passes what is reserved: a frame's `fdatasync` then does not also have to
/// journal the allocation of the blocks it wrote, as RocksDB preallocates
/// its write-ahead log (measured: one client's 1 KiB PutObject, see
/// benches/results/2026-12-04-log.md). Best effort: where the filesystem
/// cannot reserve, frames allocate as they are written.
fn reserve(active: &mut Active, end: u64, file_bytes: u64) {
    use std::os::fd::AsRawFd;
    if end <= active.reserved {
        return;
    }
    let to = (end + RESERVE_BYTES).min(file_bytes.max(end));
    // SAFETY: fallocate takes a file descriptor this `File` owns and plain
    // integers; it touches no memory of ours.
    let rc = unsafe {
        libc::fallocate(
            active.file.as_raw_fd(),
            libc::FALLOC_FL_KEEP_SIZE,
            active.reserved as libc::off_t,
            (to - active.reserved) as libc::off_t,
        )
    };
    // Where it failed, frames allocate as they go; not asked again.
    active.reserved = if rc == 0 { to } else { u64::MAX };
}

/// Drops the pages of `range`, written and synced, from the page cache
/// (advice only: nothing changes on disk or for a reader, who reads them
/// back from disk: a GetObject of a record just archived, a replication
/// rule's copy of it, a replay after a crash). Most records are not read
/// back soon after they are archived, and a log written through a cache
/// that keeps every page grows that cache with every byte: each new page is
/// one the kernel must find and, on a virtual machine, often one the host
/// must back first. Measured on a 2-core VM
/// (benches/results/2026-12-04-sustained.md): a buffered write into new
/// pages ran at 240 MB/s, into pages given back this way at 925 MB/s, and
/// the kernel's copy into new pages was a third of the CPU of 64 KiB Ingest.
///
/// Whole pages only, from the one the range starts in: the page the log's
/// end is in stays, since the next frame's write into it would otherwise
/// read it back from disk first, and is dropped with the next range.
fn drop_cached(file: &File, range: std::ops::Range<u64>) {
    use std::os::fd::AsRawFd;
    let page = page_size();
    let (start, end) = (range.start / page * page, range.end / page * page);
    let len = end.saturating_sub(start);
    if len == 0 {
        return;
    }
    // SAFETY: posix_fadvise takes a file descriptor this `File` owns and
    // plain integers; it touches no memory of ours.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), start as libc::off_t, len as libc::off_t, libc::POSIX_FADV_DONTNEED);
    }
}

/// The kernel's page size (4 KiB on x86_64; 16 or 64 KiB on some ARM
/// kernels).
fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the running system.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

/// Gives back the blocks reserved past `end`, the file's size (best effort:
/// a file left one byte long by a crash in between is cut at the next open).
/// Linux frees blocks past the end when a file shrinks; a punch there is
/// ignored by ext4.
fn release_past_end(file: &File, end: u64) {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(meta) = file.metadata() else { return };
    if meta.blocks() * 512 <= end.next_multiple_of(meta.blksize().max(512)) {
        return;
    }
    if file.set_len(end + 1).is_ok() {
        let _ = file.set_len(end);
    }
}

/// Frees `r`'s bytes: a hole where the filesystem can punch one, zeros
/// written over them where it cannot. Either way they read back as zeros.
fn punch_hole(file: &File, r: ValueRef) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (offset, len) = (r.offset as libc::off_t, libc::off_t::from(r.len));
    // SAFETY: fallocate takes a file descriptor this `File` owns and plain
    // integers; it touches no memory of ours.
    let rc = unsafe {
        libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, offset, len)
    };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EOPNOTSUPP) {
        return Err(err);
    }
    let zeros = vec![0u8; 1 << 16];
    let mut at = r.offset;
    while at < r.end() {
        let n = (r.end() - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    /// Whether each page of `file`'s first `pages` pages is in the page cache.
    fn resident(file: &File, pages: usize) -> Vec<bool> {
        let len = pages * page_size() as usize;
        let mut flags = vec![0u8; pages];
        // SAFETY: a read-only shared mapping of a file this test owns, never
        // dereferenced (mincore only reports on it), unmapped before return;
        // `flags` holds one byte per page of it.
        unsafe {
            let at = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0);
            assert_ne!(at, libc::MAP_FAILED);
            assert_eq!(libc::mincore(at, len, flags.as_mut_ptr()), 0);
            libc::munmap(at, len);
        }
        flags.iter().map(|f| f & 1 == 1).collect()
    }

    /// A synced frame's pages leave the page cache, so the log does not
    /// grow it with every byte archived; the page the log ends in stays
    /// (the next frame writes into it) until a later frame fills it.
    #[test]
    fn synced_frames_leave_the_page_cache_but_the_page_the_log_ends_in_stays() {
        let dir = tempfile::tempdir().unwrap();
        let mut fs = std::mem::MaybeUninit::<libc::statfs>::uninit();
        let path = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: statfs fills the struct it is given from a path we own.
        assert_eq!(unsafe { libc::statfs(path.as_ptr(), fs.as_mut_ptr()) }, 0);
        // SAFETY: statfs returned 0, so it filled the struct.
        if unsafe { fs.assume_init() }.f_type == libc::TMPFS_MAGIC {
            eprintln!("skipped: {} is on tmpfs, whose pages are the file itself", dir.path().display());
            return;
        }
        let page = page_size() as usize;
        let segments = Segments::new(dir.path(), 64 << 20, 0);
        let mut appender = segments.lock();
        let mut append = |len: usize| {
            let at = segments.place(&mut appender, len).unwrap();
            segments.write_frame(&mut appender, at, &vec![0xA5; len]).unwrap();
            let written = resident(&File::open(segments.path(at.segment)).unwrap(), 8);
            segments.sync(&mut appender).unwrap();
            (written, resident(&File::open(segments.path(at.segment)).unwrap(), 8))
        };
        let (written, synced) = append(5 * page + 100);
        if written[..6] != [true; 6] {
            // Some filesystems (network, FUSE, ZFS) do not keep written pages
            // in this cache at all: nothing to drop there.
            eprintln!("skipped: {} does not cache written pages ({written:?})", dir.path().display());
            return;
        }
        assert_eq!(synced[..6], [false, false, false, false, false, true]);
        let (_, synced) = append(page);
        assert_eq!(synced[..7], [false, false, false, false, false, false, true], "the next frame drops the last page");
    }
}
