//! `Backend` on RocksDB, with the archive's own log.
//!
//! Every commit is one frame appended to the log (`log.rs`, in segment
//! files, `segments.rs`) and synced; only then are its changes written to
//! RocksDB, which is the index: written without its own write-ahead log,
//! flushed in the background (all families at once, `atomic_flush`), and
//! recording with every frame's changes the log position it holds
//! everything before (`segments::COVERED`, in the `log` family, whose
//! presence also makes builds from before the log refuse the database).
//! At open, the frames past that position are replayed into the index. The bytes of versions (`chunks`
//! values) stay in the log; the index holds a 21-byte reference to each.
//! So a record's bytes are written to disk once, and RocksDB's write-ahead
//! log, its checksums and the compaction of those bytes are gone from the
//! hot path. Each `Keyspace` maps to one column family. This crate holds no
//! archive rules; they live in `wormbox-store`.
//!
//! Invariants: no change is in the index before its frame is durable; the
//! index's recorded position never passes the log's durable end; a commit
//! that fails after its frame was written fails every later one, so the
//! index never runs ahead of or apart from the log (a restart replays it).

mod cpu;
mod crc32c;
mod linked;
mod log;
mod overlay;
mod segments;

use std::collections::HashMap;
use std::iter::Peekable;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, Direction, FlushOptions,
    IteratorMode, Options, ReadOptions, ReadTier, WriteBatch, WriteOptions,
};
use wormbox_store::backend::{
    Backend, BackendError, Batch, DiskSpace, Durability, Entries, Keyspace, prefix_successor,
};

use crate::log::{Frame, Op, Position};
use crate::overlay::Overlay;
use crate::segments::{Appender, Segments, ValueRef};

/// Sets glibc malloc up for RocksDB, which allocates its memtables and
/// block cache through the C library's malloc (a Rust global allocator
/// such as jemalloc serves only Rust's allocations: measured at 5–6 MiB
/// live during sustained ingest, while RocksDB held hundreds). Call it at the
/// start of `main`, before any thread starts. A fixed 1 MiB mmap threshold
/// returns each freed memtable arena block (1/8 of a memtable) to the system
/// at once, instead of letting glibc's sliding threshold keep it in a heap
/// that only grows; two arenas stop RocksDB's threads from each growing one.
/// Measured over 10 minutes of 1 KiB Ingest: the resident set's per-minute
/// peaks drifted from 367 to 443 MiB after the block cache had filled, and
/// held within 345–391 MiB with these settings
/// (benches/results/2026-11-27-segments.md).
pub fn tune_system_allocator() {
    // SAFETY: mallopt only sets glibc malloc parameters; it touches no
    // memory of ours, and these values are in range.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Tuning knobs of the RocksDB backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RocksOptions {
    /// Values at least this large in `chunks` go to blob files (only
    /// archives written before the log have `chunks` values in RocksDB).
    pub min_blob_bytes: u64,
    /// A log segment file is closed once it holds this many bytes.
    pub segment_file_bytes: u64,
    /// Size of each memtable, in bytes. All memtables together are held to
    /// four times this, charged to the block cache (see `open_db`); the log
    /// a crash leaves to replay is held to sixteen times this.
    pub write_buffer_bytes: usize,
    /// Block cache size for data, index and filter blocks, in bytes.
    pub block_cache_bytes: usize,
}

impl Default for RocksOptions {
    fn default() -> RocksOptions {
        RocksOptions {
            min_blob_bytes: 4096,
            segment_file_bytes: 256 << 20,
            write_buffer_bytes: 64 << 20,
            block_cache_bytes: 128 << 20,
        }
    }
}

impl RocksOptions {
    /// Small buffers (and segment files, so tests cross into a second
    /// one), for tests that open many stores.
    pub fn for_tests() -> RocksOptions {
        RocksOptions {
            segment_file_bytes: 4 << 20,
            write_buffer_bytes: 4 << 20,
            block_cache_bytes: 8 << 20,
            ..RocksOptions::default()
        }
    }
}

/// The archive's backend on an embedded RocksDB.
#[derive(Debug)]
pub struct RocksBackend {
    db: DB,
    /// `None` for a database from before value segments opened read-only.
    segments: Option<Segments>,
    read_only: bool,
    /// The `chunks` family may hold values (written before the log): reads
    /// look there first, and writes over a key clear it.
    legacy_chunks: bool,
    /// Some punch is recorded and not yet done.
    punches_pending: AtomicBool,
    /// A commit failed after its frame was (or may have been) written: the
    /// index no longer follows the log, so nothing more is written until a
    /// restart replays it.
    broken: AtomicBool,
    /// Log bytes written since the index was last asked to flush, and the
    /// bound past which it is asked again, so that the log a crash leaves
    /// to replay stays bounded even when the index grows slowly (large
    /// records add little to it).
    unflushed: AtomicU64,
    replay_bound: u64,
    /// Read-only: the changes of the log's frames past the index.
    overlay: Option<Overlay>,
    /// The frames, and their bytes, the last open replayed into the index.
    replayed: (AtomicU64, AtomicU64),
}

impl RocksBackend {
    /// Opens (creating if needed) the database in `dir`, refusing it when the
    /// linked RocksDB library is not the bindings' version. The log's frames
    /// past the position the index recorded are replayed into it; bytes past
    /// the last whole frame (a commit that never landed) are cut off, segment
    /// files no commit recorded are removed, and punches a crash interrupted
    /// are finished. A database written before the log (its last writes in
    /// RocksDB's own write-ahead log) is recovered by RocksDB, flushed, and
    /// goes on in the log.
    pub fn open(dir: &Path, options: &RocksOptions) -> Result<RocksBackend, BackendError> {
        RocksBackend::open_with(dir, options, |_| {})
    }

    /// `open`, telling `replayed` how many frames it replayed.
    fn open_with(dir: &Path, options: &RocksOptions, replayed: impl FnOnce(u64)) -> Result<RocksBackend, BackendError> {
        cpu::check()?;
        let db = open_db(dir, options)?;
        linked::check(dir)?;
        let legacy_chunks = db.iterator_cf(family(&db, Keyspace::Chunks)?, IteratorMode::Start).next().is_some();
        let backend = RocksBackend {
            db,
            segments: Some(Segments::new(dir, options.segment_file_bytes, 0)),
            read_only: false,
            legacy_chunks,
            punches_pending: AtomicBool::new(true),
            broken: AtomicBool::new(false),
            unflushed: AtomicU64::new(0),
            replay_bound: replay_bound(options),
            overlay: None,
            replayed: Default::default(),
        };
        let segments = backend.segments.as_ref().expect("just set");
        if let Some(first) = backend.log_start()? {
            segments.set_log_start(first);
            let frames = backend.replay(segments)?;
            replayed(frames);
            if frames > 0 {
                tracing::info!(frames, "replayed the log's frames the index did not hold");
                backend.flush(true)?;
            }
        } else {
            backend.start_log(segments, dir)?;
        }
        let last_id = recover_segments(&backend.db, dir)?;
        segments.lock().set_last_id(last_id);
        backend.finish_punches_or_log(&mut segments.lock());
        Ok(backend)
    }

    /// Opens the database in `dir` for reading only, as offline verification
    /// of a stopped appliance (or a copy) does: nothing is created, recovered
    /// into new files or compacted, and every commit fails. The log's frames
    /// the index does not hold yet (the appliance was killed) are read into
    /// memory above it, so the archive reads as the appliance will serve it.
    pub fn open_read_only(dir: &Path) -> Result<RocksBackend, BackendError> {
        cpu::check()?;
        let existing = DB::list_cf(&Options::default(), dir).map_err(engine)?;
        let families: Vec<&str> = Keyspace::ALL
            .iter()
            .map(|space| space.name())
            .chain([segments::REFS, segments::SEGMENTS, segments::LOG])
            .filter(|name| existing.iter().any(|e| e == name))
            .collect();
        let with_segments = families.contains(&segments::REFS);
        let db = DB::open_cf_for_read_only(&Options::default(), dir, families, false).map_err(engine)?;
        let legacy_chunks = db.iterator_cf(family(&db, Keyspace::Chunks)?, IteratorMode::Start).next().is_some();
        let mut backend = RocksBackend {
            db,
            segments: with_segments.then(|| Segments::new(dir, u64::MAX, 0)),
            read_only: true,
            legacy_chunks,
            punches_pending: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            unflushed: AtomicU64::new(0),
            replay_bound: u64::MAX,
            overlay: None,
            replayed: Default::default(),
        };
        if let Some(segments) = &backend.segments
            && let Some(first) = backend.log_start()?
        {
            segments.set_log_start(first);
            let mut overlay = Overlay::default();
            let frames = backend.replay_with(segments, |frame| {
                overlay.apply(&frame, legacy_chunks);
                Ok(())
            })?;
            if frames > 0 {
                tracing::info!(frames, "read the log's frames the index does not hold yet");
                backend.overlay = Some(overlay);
            }
        }
        Ok(backend)
    }

    /// Rebuilds the index of the stopped archive in `dir` from its log alone,
    /// into `into`, which must not exist: the segment files are linked there
    /// (hard links: the bytes are not copied), all but the last, which is
    /// copied, since the replay cuts off a torn tail there and a refused
    /// rebuild must leave the archive's own log as it found it; then every
    /// frame, from the log's first on, is replayed into a new index beside
    /// them. `dir`'s index is not opened (it may be what is damaged); the
    /// only change to its files is that bytes of versions purged by frames
    /// in the log are punched out, as the appliance's own open would.
    /// Refused while the archive is open, and for an archive whose log began
    /// when its index already held changes (written before the log: the log
    /// does not hold them). Returns how many frames were replayed.
    pub fn rebuild_index(dir: &Path, into: &Path, options: &RocksOptions) -> Result<u64, BackendError> {
        cpu::check()?;
        let _stopped = lock_stopped(dir)?;
        let files = Segments::list(dir)?;
        let not_whole = |why: String| BackendError::Engine(why.into());
        let Some((first, path)) = files.first() else {
            return Err(not_whole(format!("{} holds no log to rebuild the index from", dir.display())));
        };
        // Where the log begins: the first segment whose first frame is the
        // log's first (segments before it hold bare values).
        let mut base = None;
        for (id, path) in &files {
            let file = std::fs::File::open(path).map_err(|e| segments::io("opening", path, e))?;
            let at = Position { segment: *id, offset: 0 };
            let frame = Frame::read(&file, at).map_err(|e| segments::io("reading", path, e))?;
            if let Some([Op::Base { index_held_changes }]) = frame.as_ref().map(|f| f.ops.as_slice()) {
                base = Some((*id, *index_held_changes));
                break;
            }
        }
        match base {
            Some((id, false)) if id == *first => {}
            Some(_) => {
                return Err(not_whole(format!(
                    "the log in {} began when the index already held the archive's earlier writes (it was written by a build before the log), so the log alone cannot rebuild it; restore a backup instead",
                    dir.display()
                )));
            }
            None => {
                return Err(not_whole(format!(
                    "{} does not begin with the log's first frame, so the log alone cannot rebuild the index; restore a backup instead",
                    path.display()
                )));
            }
        }
        let at = Position { segment: *first, offset: 0 };
        std::fs::create_dir(into).map_err(|e| segments::io("creating", into, e))?;
        let (last, _) = files.last().expect("there is a first file");
        for (id, path) in &files {
            let name = path.file_name().expect("a listed file has a name");
            if id == last {
                let copy = into.join(name);
                std::fs::copy(path, &copy).map_err(|e| segments::io("copying", path, e))?;
                std::fs::File::open(&copy).and_then(|f| f.sync_all()).map_err(|e| segments::io("syncing", &copy, e))?;
            } else {
                std::fs::hard_link(path, into.join(name)).map_err(|e| segments::io("linking", path, e))?;
            }
        }
        {
            let db = open_db(into, options)?;
            let family = internal_family(&db, segments::LOG)?;
            let mut write = WriteBatch::default();
            write.put_cf(family, segments::LOG_START, first.to_be_bytes());
            write.put_cf(family, segments::COVERED, at.encode());
            let mut sync = WriteOptions::default();
            sync.set_sync(true);
            db.write_opt(write, &sync).map_err(engine)?;
        }
        let mut frames = 0;
        let rebuilt = RocksBackend::open_with(into, options, |frames_replayed| frames = frames_replayed)?;
        rebuilt.flush_index()?;
        Ok(frames)
    }

    /// Writes a consistent copy of the database into `dir`, which must not
    /// exist yet: RocksDB's checkpoint (files hard-linked where the filesystem
    /// allows, the index flushed first, so it holds every frame written so
    /// far) and a copy of the segment files, for backups. No bytes are
    /// punched out of the segments while they are copied, so every reference
    /// in the checkpoint finds its bytes; frames past the checkpoint's
    /// recorded position are replayed, and bytes past them cut off, when the
    /// copy is opened.
    pub fn copy_to(&self, dir: &Path) -> Result<(), BackendError> {
        {
            let _gate = self.segments.as_ref().map(Segments::gate);
            rocksdb::checkpoint::Checkpoint::new(&self.db).and_then(|c| c.create_checkpoint(dir)).map_err(engine)?;
            if let Some(segments) = &self.segments {
                segments.copy_files(dir)?;
            }
        }
        if let Some(segments) = &self.segments
            && !self.read_only
        {
            self.finish_punches_or_log(&mut segments.lock());
        }
        Ok(())
    }

    /// Flushes the index (every family at once), so that an open after a
    /// crash replays nothing written so far.
    pub fn flush_index(&self) -> Result<(), BackendError> {
        if self.read_only {
            return Ok(());
        }
        self.flush(true)
    }

    fn family(&self, space: Keyspace) -> Result<&ColumnFamily, BackendError> {
        family(&self.db, space)
    }

    fn internal(&self, name: &str) -> Result<&ColumnFamily, BackendError> {
        internal_family(&self.db, name)
    }

    /// Flushes every family's memtables as one (atomic flush), waiting for
    /// it or only asking for it.
    fn flush(&self, wait: bool) -> Result<(), BackendError> {
        let mut options = FlushOptions::default();
        options.set_wait(wait);
        let families: Vec<&ColumnFamily> = Keyspace::ALL
            .iter()
            .filter_map(|space| self.family(*space).ok())
            .chain(
                [segments::REFS, segments::SEGMENTS, segments::LOG].iter().filter_map(|name| self.internal(name).ok()),
            )
            .collect();
        self.db.flush_cfs_opt(&families, &options).map_err(engine)
    }

    /// Starts the log in a database that has none (new, or written before
    /// the log): the first log segment is numbered after every value segment,
    /// and everything RocksDB's own write-ahead log holds is flushed into
    /// tables, since from now on writes do not go to it.
    /// Its first frame says whether the index held changes already, so
    /// that a rebuild from the log alone knows whether it can be done.
    fn start_log(&self, segments: &Segments, dir: &Path) -> Result<u64, BackendError> {
        let last_id = recover_segments(&self.db, dir)?;
        let held_changes = last_id > 0
            || Keyspace::ALL.iter().any(|space| {
                self.family(*space).is_ok_and(|cf| self.db.iterator_cf(cf, IteratorMode::Start).next().is_some())
            });
        let family = self.internal(segments::LOG)?;
        let first = Position { segment: last_id + 1, offset: 0 };
        let mut write = WriteBatch::default();
        write.put_cf(family, segments::LOG_START, first.segment.to_be_bytes());
        write.put_cf(family, segments::COVERED, first.encode());
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(write, &options).map_err(engine)?;
        self.flush(true)?;
        segments.set_log_start(first.segment);
        let mut appender = segments.lock();
        appender.set_last_id(last_id);
        let base = log::encode_base(first, held_changes);
        self.append_frame(segments, &mut appender, base.bytes.len(), |at| {
            debug_assert_eq!(at, first);
            Ok(base)
        })?;
        Ok(first.segment)
    }

    /// The first segment written as a log, if the log has started.
    fn log_start(&self) -> Result<Option<u64>, BackendError> {
        // A database from before the log, opened read-only, has no such family.
        let Some(family) = self.db.cf_handle(segments::LOG) else { return Ok(None) };
        let raw = self.db.get_cf(family, segments::LOG_START).map_err(engine)?;
        raw.map(|raw| {
            <[u8; 8]>::try_from(raw.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| segments::corrupt("the log's first segment is recorded malformed".into()))
        })
        .transpose()
    }

    /// The position up to which the index holds every frame, as recorded
    /// with the last frame's changes (`persisted`: as flushed to its tables).
    fn covered(&self, persisted: bool) -> Result<Position, BackendError> {
        let mut read = ReadOptions::default();
        if persisted {
            // Without a write-ahead log, this reads the tables only.
            read.set_read_tier(ReadTier::Persisted);
        }
        let raw = self
            .db
            .get_cf_opt(self.internal(segments::LOG)?, segments::COVERED, &read)
            .map_err(engine_in(Keyspace::Chunks))?
            .ok_or_else(|| segments::corrupt("the index records no log position".into()))?;
        Position::decode(&raw)
    }

    /// Reads the log's whole frames from the index's recorded position on,
    /// in order, handing each to `each`, up to the log's end. Returns whether
    /// the log ends cleanly after its last frame (`false`: a torn write
    /// follows it, which is left for `reconcile` to cut off). Bytes that are
    /// no frame but are not a torn tail (more bytes, or later files, follow)
    /// are damage: that is an error, and nothing is cut off, since frames
    /// after it may hold acknowledged writes.
    fn frames_past_index(
        &self,
        segments: &Segments,
        mut each: impl FnMut(Frame) -> Result<(), BackendError>,
    ) -> Result<bool, BackendError> {
        let mut at = self.covered(false)?;
        let files: Vec<(u64, std::path::PathBuf)> =
            Segments::list(segments.dir())?.into_iter().filter(|(id, _)| *id >= at.segment).collect();
        for (n, (id, path)) in files.iter().enumerate() {
            if *id > at.segment {
                at = Position { segment: *id, offset: 0 };
            }
            let read_err = |e| segments::io("reading", path, e);
            let Some(file) = segments.open_file(*id)? else { continue };
            let len = file.metadata().map_err(read_err)?.len();
            loop {
                if let Some(frame) = Frame::read(&file, at).map_err(read_err)? {
                    at = frame.end();
                    each(frame)?;
                    continue;
                }
                let last_file = n + 1 == files.len();
                match log::Tail::at(&file, at, len).map_err(read_err)? {
                    // The log goes on in the next file.
                    log::Tail::End => break,
                    // Nothing was written there; in the last file, the
                    // write of a frame whose pages a crash lost.
                    log::Tail::Zeros if last_file => return Ok(false),
                    log::Tail::Zeros => break,
                    log::Tail::Torn => {
                        for (later, path) in &files[n + 1..] {
                            if std::fs::metadata(path).map_err(read_err)?.len() > 0 {
                                return Err(segments::corrupt(format!(
                                    "the log's frame at {} in segment {id} is torn, yet segment {later} follows it",
                                    at.offset
                                )));
                            }
                        }
                        return Ok(false);
                    }
                    log::Tail::Damaged => {
                        return Err(segments::corrupt(format!(
                            "the log is damaged at {} in segment {id}: the bytes there are no frame and {} more follow, which may hold acknowledged writes; nothing was cut off",
                            at.offset,
                            len - at.offset
                        )));
                    }
                }
            }
        }
        Ok(true)
    }

    /// Replays the frames past the index's recorded position into it, and
    /// returns how many; the frames are synced first, since the index is
    /// about to record them (a frame written by a commit whose sync never
    /// happened, or failed, may still be only in the page cache). A `chunks`
    /// value failing its own checksum is one whose bytes were punched out
    /// after a later op (durable before the punch) deleted or replaced it;
    /// if no later op did, it is damaged: in the log's last frame with
    /// nothing after it, where its bytes look never written (a page of
    /// zeros), that frame was torn by a crash before its sync (never
    /// acknowledged) and is not replayed; otherwise the frame was synced,
    /// and its damage is left for `verify` to report against the version's
    /// SHA-256.
    fn replay(&self, segments: &Segments) -> Result<u64, BackendError> {
        let covered = self.covered(false)?;
        for (id, path) in Segments::list(segments.dir())? {
            if id >= covered.segment {
                let synced = std::fs::File::open(&path).and_then(|file| file.sync_data());
                synced.map_err(|e| segments::io("syncing", &path, e))?;
            }
        }
        let frames = self.replay_with(segments, |frame| {
            let end = frame.end();
            // A frame lies within one segment file.
            self.replayed.1.fetch_add(end.offset - frame.at.offset, Ordering::Relaxed);
            let (write, punches) = self.index_changes(&frame, &[(end.segment, end.offset)])?;
            self.write_index(write)?;
            if !punches.is_empty() {
                self.punches_pending.store(true, Ordering::Release);
            }
            Ok(())
        })?;
        self.replayed.0.store(frames, Ordering::Relaxed);
        Ok(frames)
    }

    /// `replay`, handing each frame to `apply` in order.
    fn replay_with(
        &self,
        segments: &Segments,
        mut apply: impl FnMut(Frame) -> Result<(), BackendError>,
    ) -> Result<u64, BackendError> {
        let mut unsettled: HashMap<Vec<u8>, Position> = HashMap::new();
        let mut pending: Option<Frame> = None;
        let mut frames = 0;
        let mut apply = |frame: Frame| -> Result<(), BackendError> {
            frames += 1;
            apply(frame)
        };
        let clean_end = self.frames_past_index(segments, |frame| {
            for (index, op) in frame.ops.iter().enumerate() {
                let (Op::Put { space: Keyspace::Chunks, key, .. } | Op::Delete { space: Keyspace::Chunks, key }) = op
                else {
                    continue;
                };
                unsettled.remove(&frame.bytes[key.clone()]);
                if frame.damaged.contains(&index) {
                    unsettled.insert(frame.bytes[key.clone()].to_vec(), frame.at);
                }
            }
            match pending.replace(frame) {
                Some(previous) => apply(previous),
                None => Ok(()),
            }
        })?;
        if let Some(last) = pending {
            let torn = last.damaged.iter().all(|index| last.value_looks_unwritten(*index));
            if clean_end && torn && unsettled.values().any(|at| *at == last.at) {
                tracing::warn!(
                    segment = last.at.segment,
                    offset = last.at.offset,
                    "the log's last frame was torn by a crash before it was synced; it was never acknowledged and is cut off"
                );
                unsettled.retain(|_, at| *at != last.at);
            } else {
                apply(last)?;
            }
        }
        for at in unsettled.values() {
            tracing::error!(
                segment = at.segment,
                offset = at.offset,
                "a version's bytes in the log fail their checksum; verify reports the versions concerned"
            );
        }
        Ok(frames)
    }

    /// The reference stored for `key`, as the changes being built have
    /// changed it so far.
    fn current_ref(
        &self,
        changed: &HashMap<&[u8], Option<ValueRef>>,
        key: &[u8],
    ) -> Result<Option<ValueRef>, BackendError> {
        match changed.get(key) {
            Some(current) => Ok(*current),
            None => {
                match self.db.get_pinned_cf(self.internal(segments::REFS)?, key).map_err(engine_in(Keyspace::Chunks))? {
                    Some(raw) => ValueRef::decode(&raw).map(Some),
                    None => Ok(None),
                }
            }
        }
    }

    /// The index's changes for `frame`: its changes, with each `chunks`
    /// value as a reference into the frame; the segments' new `ends`; the
    /// position now covered; and a punch recorded for every reference it
    /// replaces or deletes (also returned). The same at commit and at replay,
    /// where the index is as it was when the frame was committed.
    fn index_changes(&self, frame: &Frame, ends: &[(u64, u64)]) -> Result<(WriteBatch, Vec<ValueRef>), BackendError> {
        let chunks = self.family(Keyspace::Chunks)?;
        let refs = self.internal(segments::REFS)?;
        let recorded = self.internal(segments::SEGMENTS)?;
        let mut write = WriteBatch::with_capacity_bytes(frame.bytes.len().min(1 << 20));
        let mut changed: HashMap<&[u8], Option<ValueRef>> = HashMap::new();
        let mut punches = Vec::new();
        let bytes = &frame.bytes;
        for op in &frame.ops {
            match op {
                Op::Put { space: Keyspace::Chunks, key, value } => {
                    let key = &bytes[key.clone()];
                    punches.extend(self.current_ref(&changed, key)?);
                    let r = ValueRef {
                        segment: frame.at.segment,
                        offset: frame.at.offset + value.start as u64,
                        len: value.len() as u32,
                    };
                    if self.legacy_chunks {
                        write.delete_cf(chunks, key);
                    }
                    write.put_cf(refs, key, r.encode());
                    changed.insert(key, Some(r));
                }
                Op::Delete { space: Keyspace::Chunks, key } => {
                    let key = &bytes[key.clone()];
                    punches.extend(self.current_ref(&changed, key)?);
                    if self.legacy_chunks {
                        write.delete_cf(chunks, key);
                    }
                    write.delete_cf(refs, key);
                    changed.insert(key, None);
                }
                Op::Put { space, key, value } => {
                    write.put_cf(self.family(*space)?, &bytes[key.clone()], &bytes[value.clone()])
                }
                Op::Delete { space, key } => write.delete_cf(self.family(*space)?, &bytes[key.clone()]),
                Op::Base { .. } => {}
            }
        }
        for (id, end) in ends {
            write.put_cf(recorded, segments::end_key(*id), end.to_be_bytes());
        }
        write.put_cf(self.internal(segments::LOG)?, segments::COVERED, frame.end().encode());
        for r in &punches {
            write.put_cf(recorded, segments::punch_key(*r), []);
        }
        Ok((write, punches))
    }

    /// Writes changes to the index, without RocksDB's write-ahead log: the
    /// log is the record of them.
    fn write_index(&self, write: WriteBatch) -> Result<(), BackendError> {
        let mut options = WriteOptions::default();
        options.disable_wal(true);
        self.db.write_opt(write, &options).map_err(engine)
    }

    /// Appends `batch`'s frame, syncs it, then writes its changes to the
    /// index; `broken` from the first failure after the frame's bytes may
    /// be on disk.
    fn append(&self, segments: &Segments, appender: &mut Appender, batch: &Batch) -> Result<u64, BackendError> {
        if self.broken.load(Ordering::Acquire) {
            return Err(BackendError::Engine(
                "an earlier commit failed after its log frame was written; restart to replay the log into the index"
                    .into(),
            ));
        }
        let len = log::frame_len(batch)?;
        self.append_frame(segments, appender, len, |at| log::encode(batch, at))
    }

    /// Appends the frame `encode` makes for its place (`len` bytes), syncs
    /// it, then writes its changes to the index.
    fn append_frame(
        &self,
        segments: &Segments,
        appender: &mut Appender,
        len: usize,
        encode: impl FnOnce(Position) -> Result<Frame, BackendError>,
    ) -> Result<u64, BackendError> {
        let at = segments.place(appender, len)?;
        let frame = encode(at)?;
        if let Err((err, tail_unknown)) = segments.write_frame(appender, at, &frame.bytes) {
            self.broken.store(tail_unknown, Ordering::Release);
            return Err(err);
        }
        let indexed = (|| {
            segments.start_writeback(appender);
            let ends = segments.unsynced_ends(appender);
            let (write, punches) = self.index_changes(&frame, &ends)?;
            let synced = segments.sync(appender)?;
            debug_assert_eq!(synced, ends);
            self.write_index(write)?;
            Ok(punches)
        })();
        match indexed {
            Ok(punches) => {
                if !punches.is_empty() {
                    self.punches_pending.store(true, Ordering::Release);
                }
                Ok(len as u64)
            }
            Err(err) => {
                self.broken.store(true, Ordering::Release);
                Err(err)
            }
        }
    }

    /// Punches out the bytes of every recorded punch, then forgets them.
    /// Called with the appender held, after the frame recording the punch
    /// was synced, so that the op that freed the bytes is durable first (a
    /// replay needs it to tell punched bytes from torn ones).
    fn finish_punches(&self, _appender: &mut Appender) -> Result<(), BackendError> {
        let Some(segments) = &self.segments else { return Ok(()) };
        if !self.punches_pending.load(Ordering::Acquire) {
            return Ok(());
        }
        // A backup is copying the files: it finishes them when it is done.
        let Some(_gate) = segments.try_gate() else { return Ok(()) };
        let family = self.internal(segments::SEGMENTS)?;
        let prefix = segments::punch_prefix();
        let mut keys = Vec::new();
        let mut refs = Vec::new();
        for entry in self.raw_scan(family, Keyspace::Chunks, &prefix, &prefix) {
            let (key, _) = entry?;
            refs.push(segments::decode_punch(&key)?);
            keys.push(key);
        }
        segments.punch(&refs)?;
        if !keys.is_empty() {
            let mut done = WriteBatch::default();
            for key in keys {
                done.delete_cf(family, key);
            }
            // Not in the log: a punch forgotten by a crash is only punched again.
            self.write_index(done)?;
        }
        self.punches_pending.store(false, Ordering::Release);
        Ok(())
    }

    /// `finish_punches` after a commit that has landed: a failure to punch
    /// does not undo the commit; the punches stay recorded and are tried
    /// again at the next commit and at the next open.
    fn finish_punches_or_log(&self, appender: &mut Appender) {
        if let Err(err) = self.finish_punches(appender) {
            tracing::warn!(error = %err, "freeing purged value bytes failed; will retry");
        }
    }

    /// Reads the value `r` points at for `key`. When its bytes fail their
    /// checksum, the reference is looked up again: a value deleted since it
    /// was looked up had its bytes punched out, and is gone, not damaged.
    fn read_value(&self, segments: &Segments, key: &[u8], r: ValueRef) -> Result<Option<Vec<u8>>, BackendError> {
        match segments.read(r) {
            Err(damaged @ BackendError::Corruption { .. }) if !self.read_only => {
                let now = self.lookup(segments::REFS, self.internal(segments::REFS)?, Keyspace::Chunks, key)?;
                match now.map(|raw| ValueRef::decode(&raw)).transpose()? {
                    None => Ok(None),
                    Some(now) if now != r => segments.read(now).map(Some),
                    Some(_) => Err(damaged),
                }
            }
            read => read.map(Some),
        }
    }

    /// Reads `key` from the family named `name` (through the overlay of a
    /// read-only open), which holds (part of) `space`.
    fn lookup(
        &self,
        name: &str,
        family: &ColumnFamily,
        space: Keyspace,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, BackendError> {
        if let Some(changed) = self.overlay.as_ref().and_then(|o| o.get(name, key)) {
            return Ok(changed);
        }
        self.db.get_cf(family, key).map_err(engine_in(space))
    }

    /// `raw_scan` through the overlay of a read-only open.
    fn family_scan<'a>(
        &'a self,
        name: &str,
        family: &'a ColumnFamily,
        space: Keyspace,
        start: &[u8],
        prefix: &[u8],
    ) -> Entries<'a> {
        let base = self.raw_scan(family, space, start, prefix);
        match &self.overlay {
            Some(overlay) => overlay.over(name, base, start, prefix),
            None => base,
        }
    }

    /// Scans `family`, which holds (part of) `space`: a damaged block is
    /// reported as corruption of that keyspace.
    fn raw_scan<'a>(&'a self, family: &'a ColumnFamily, space: Keyspace, start: &[u8], prefix: &[u8]) -> Entries<'a> {
        let from = if start < prefix { prefix } else { start };
        let mut read = ReadOptions::default();
        if let Some(end) = prefix_successor(prefix) {
            read.set_iterate_upper_bound(end);
        }
        let prefix = prefix.to_vec();
        let iter = self.db.iterator_cf_opt(family, read, IteratorMode::From(from, Direction::Forward));
        let failed = engine_in(space);
        Box::new(iter.map(move |entry| entry.map(|(k, v)| (k.into_vec(), v.into_vec())).map_err(&failed)).take_while(
            move |entry| match entry {
                Ok((k, _)) => k.starts_with(&prefix),
                // An engine error ends the scan by being yielded, not swallowed.
                Err(_) => true,
            },
        ))
    }
}

/// Reconciles the segment files in `dir` with the ends the database
/// recorded (see `RocksBackend::open`) and returns the highest segment id.
fn recover_segments(db: &DB, dir: &Path) -> Result<u64, BackendError> {
    let family = internal_family(db, segments::SEGMENTS)?;
    let prefix = segments::end_prefix();
    let mut ends = HashMap::new();
    for entry in db.prefix_iterator_cf(family, prefix) {
        let (key, value) = entry.map_err(engine_in(Keyspace::Chunks))?;
        if !key.starts_with(&prefix) {
            break;
        }
        let (id, end) = segments::decode_end(&key, &value)?;
        ends.insert(id, end);
    }
    segments::reconcile(dir, &ends)
}

/// `chunks` as one keyspace: entries of the family and of the value
/// segments' references, merged in key order (a key in both is one left
/// behind by a small value over a large one, and the family's wins, as in
/// `get`).
struct MergedChunks<'a> {
    small: Peekable<Entries<'a>>,
    large: Peekable<Entries<'a>>,
    backend: &'a RocksBackend,
    segments: &'a Segments,
}

impl Iterator for MergedChunks<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>), BackendError>;

    fn next(&mut self) -> Option<Self::Item> {
        let order = match (self.small.peek(), self.large.peek()) {
            (None, None) => return None,
            (Some(Err(_)), _) | (Some(_), None) => std::cmp::Ordering::Less,
            (_, Some(Err(_))) | (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(Ok((small, _))), Some(Ok((large, _)))) => small.cmp(large),
        };
        match order {
            std::cmp::Ordering::Less => return self.small.next(),
            std::cmp::Ordering::Equal => {
                self.large.next();
                return self.small.next();
            }
            std::cmp::Ordering::Greater => {}
        }
        loop {
            let (key, raw) = match self.large.next()? {
                Ok(entry) => entry,
                Err(err) => return Some(Err(err)),
            };
            let read = ValueRef::decode(&raw).and_then(|r| self.backend.read_value(self.segments, &key, r));
            match read {
                Ok(Some(value)) => return Some(Ok((key, value))),
                // Deleted (and punched) since the scan passed it.
                Ok(None) => continue,
                Err(err) => return Some(Err(err)),
            }
        }
    }
}

fn family(db: &DB, space: Keyspace) -> Result<&ColumnFamily, BackendError> {
    db.cf_handle(space.name()).ok_or_else(|| BackendError::Corruption {
        space: Some(space),
        source: format!("column family `{}` is missing", space.name()).into(),
    })
}

fn internal_family<'a>(db: &'a DB, name: &str) -> Result<&'a ColumnFamily, BackendError> {
    db.cf_handle(name).ok_or_else(|| segments::corrupt(format!("column family `{name}` is missing")))
}

/// Opens the database with the archive's options: one column family per
/// keyspace, blob files for `chunks`, LZ4 elsewhere.
fn open_db(dir: &Path, options: &RocksOptions) -> Result<DB, BackendError> {
    let mut db_options = Options::default();
    db_options.create_if_missing(true);
    db_options.create_missing_column_families(true);
    // One WAL fsync per group commit is the durability contract; the
    // manifest and WAL directory are synced by RocksDB on creation.
    db_options.set_use_fsync(false);
    // Table files are written and compacted with O_DIRECT: through the page
    // cache, the kernel's copy of every flushed and compacted byte cost as
    // much CPU as the WAL's (each about 14 % of a 1 KiB Ingest run's
    // samples), on a machine whose two cores the front doors also need.
    // Measured: 1 KiB Ingest 76–81k records/s before, 88–91k after. The
    // reads of requests still go through the page cache (compaction reads
    // its inputs with O_DIRECT too). Recycling WAL files (overwriting in
    // place, which syncs faster than appending) measured no difference.
    // Only where the filesystem takes O_DIRECT (tmpfs before Linux 6.6, some
    // network and older ZFS filesystems do not): RocksDB would otherwise
    // fail its first flush and stop taking writes.
    db_options.set_use_direct_io_for_flush_and_compaction(direct_io_supported(dir));
    db_options.set_max_background_jobs(2);
    // One memory budget, so that the resident set does not grow with the
    // archive: the memtables of all families (four memtables' worth in all,
    // flushed when it is used up; writers never stall on it) are charged to
    // the same cache as data, index and filter blocks. Without this, index
    // and filter blocks live outside any cache, one set per table file.
    let memtables = options.write_buffer_bytes.saturating_mul(4);
    let cache = rocksdb::Cache::new_lru_cache(options.block_cache_bytes.saturating_add(memtables));
    let budget = rocksdb::WriteBufferManager::new_write_buffer_manager_with_cache(memtables, false, cache.clone());
    db_options.set_write_buffer_manager(&budget);
    // Writes do not go to RocksDB's write-ahead log (the archive's log is
    // the record), so a flush must persist every family at once: the
    // position the index covers is in one family, the changes in the others.
    db_options.set_atomic_flush(true);
    // RocksDB's own write-ahead log now only holds what a database written
    // before the log had in it, until the first open flushes it; bounded
    // all the same, as it was (a family written by every commit but too
    // small to fill its memtable pinned every log file since its last
    // flush: 16.9 s to open after a kill -9 at 10 M versions, 0.4 s with it).
    db_options.set_max_total_wal_size(memtables as u64);
    let families = Keyspace::ALL.iter().map(|space| {
        let mut cf = Options::default();
        cf.set_write_buffer_size(options.write_buffer_bytes);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        // Every write looks up keys that do not exist yet (a null pointer, a
        // lock); a bloom filter answers those without reading a block.
        table.set_bloom_filter(10.0, false);
        // Index and filters in the cache, partitioned so that only the
        // partitions in use are loaded, kept ahead of data blocks (high
        // priority) but not pinned: pinned blocks are outside the cache's
        // limit, and one top level per table file grows with the archive
        // (measured: ≈ 15 MiB a minute of sustained ingest).
        table.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
        table.set_partition_filters(true);
        table.set_cache_index_and_filter_blocks(true);
        table.set_cache_index_and_filter_blocks_with_high_priority(true);
        table.set_pin_top_level_index_and_filter(false);
        table.set_pin_l0_filter_and_index_blocks_in_cache(false);
        cf.set_block_based_table_factory(&table);
        if *space == Keyspace::Chunks {
            cf.set_enable_blob_files(true);
            cf.set_min_blob_size(options.min_blob_bytes);
            cf.set_blob_compression_type(DBCompressionType::None);
            cf.set_compression_type(DBCompressionType::None);
        } else {
            cf.set_compression_type(DBCompressionType::Lz4);
        }
        ColumnFamilyDescriptor::new(space.name(), cf)
    });
    // Value segments' references and ends: small, point-read, LZ4.
    let internal = [segments::REFS, segments::SEGMENTS, segments::LOG].map(|name| {
        let mut cf = Options::default();
        cf.set_write_buffer_size(options.write_buffer_bytes);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);
        cf.set_block_based_table_factory(&table);
        cf.set_compression_type(DBCompressionType::Lz4);
        ColumnFamilyDescriptor::new(name, cf)
    });
    DB::open_cf_descriptors(&db_options, dir, families.chain(internal)).map_err(engine)
}

/// Log bytes after which the index is asked to flush: sixteen memtables'
/// worth (1 GiB at the defaults, about 1.5 s to replay here). A frame holds
/// about two and a half times the bytes its changes take in the index (a
/// record's bytes stay in the log), so the memtables alone would let the
/// log grow without bound for large records; a bound of four memtables
/// flushed every family every two seconds of 1 KiB ingest, and cost 8 % of
/// the sustained rate (benches/results/2026-12-04-log.md).
fn replay_bound(options: &RocksOptions) -> u64 {
    (options.write_buffer_bytes as u64).saturating_mul(16).max(1 << 20)
}

/// Holds RocksDB's lock on the database in `dir` (its `LOCK` file, locked
/// with `fcntl` as RocksDB locks it), so that nothing opens it meanwhile;
/// an error when it is open (the appliance is running).
fn lock_stopped(dir: &Path) -> Result<std::fs::File, BackendError> {
    use std::os::fd::AsRawFd as _;
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| segments::io("opening", &path, e))?;
    // SAFETY: an all-zero `flock` is a valid value of the plain C struct.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: fcntl reads the `flock` we own for the duration of the call.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) } != 0 {
        return Err(BackendError::Engine(
            format!("the archive in {} is open (is wormboxd running?); stop it first", dir.display()).into(),
        ));
    }
    Ok(file)
}

/// Whether files in `dir` (created if missing) can be written with
/// O_DIRECT: one aligned block, written to a probe file that is removed.
/// A probe a crash left is removed first, and the probe is created anew,
/// never followed as a link: whoever could plant a link by that name in the
/// data directory gets no file elsewhere truncated or written.
fn direct_io_supported(dir: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt as _;
    const BLOCK: usize = 4096;
    if std::fs::create_dir_all(dir).is_err() {
        return false;
    }
    let probe = dir.join(".direct-io-probe");
    let _ = std::fs::remove_file(&probe);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_DIRECT | libc::O_NOFOLLOW)
        .open(&probe)
        .and_then(|file| {
            // O_DIRECT needs a buffer aligned to the block: carve one out of
            // a buffer a block larger.
            let buffer = vec![0u8; 2 * BLOCK];
            let start = buffer.as_ptr().align_offset(BLOCK);
            std::os::unix::fs::FileExt::write_all_at(&file, &buffer[start..start + BLOCK], 0)
        });
    let _ = std::fs::remove_file(&probe);
    written.is_ok()
}

/// Raw RocksDB with exactly the backend's options, for measuring the store
/// against the engine under it in the same run (the load generator's
/// baseline). It holds no archive rules and writes no ledger.
pub mod baseline {
    use std::path::Path;

    use rocksdb::{DB, WriteBatch, WriteOptions};
    use wormbox_store::backend::{BackendError, Keyspace};

    use crate::{RocksOptions, engine, family, open_db};

    /// A database opened with the archive's options.
    #[derive(Debug)]
    pub struct RawRocks {
        db: DB,
    }

    impl RawRocks {
        /// Opens (creating) a database in `dir`.
        pub fn open(dir: &Path, options: &RocksOptions) -> Result<RawRocks, BackendError> {
            crate::cpu::check()?;
            Ok(RawRocks { db: open_db(dir, options)? })
        }

        /// Writes `entries` into the `chunks` family as one WriteBatch,
        /// synced to the WAL when `sync`.
        pub fn write<'a>(
            &self,
            entries: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
            sync: bool,
        ) -> Result<(), BackendError> {
            let family = family(&self.db, Keyspace::Chunks)?;
            let entries: Vec<_> = entries.into_iter().collect();
            let mut batch =
                WriteBatch::with_capacity_bytes(super::batch_bytes(entries.iter().map(|(k, v)| k.len() + v.len())));
            for (key, value) in entries {
                batch.put_cf(family, key, value);
            }
            let mut options = WriteOptions::default();
            options.set_sync(sync);
            self.db.write_opt(batch, &options).map_err(engine)
        }
    }
}

/// A WriteBatch's size for entries of these key + value lengths (a 12-byte
/// header; per entry a tag, a family id and two lengths, at most 16 bytes),
/// so that building a group's batch does not copy it over and over as it grows.
fn batch_bytes(entries: impl Iterator<Item = usize>) -> usize {
    12 + entries.map(|bytes| bytes + 16).sum::<usize>()
}

/// Maps an engine error. A damaged table block, WAL or manifest is
/// `Corruption`: the data is lost, and retrying or restarting does not bring
/// it back, so callers must not take it for an unavailable disk.
fn engine(err: rocksdb::Error) -> BackendError {
    match err.kind() {
        rocksdb::ErrorKind::IOError => BackendError::Io(std::io::Error::other(err.into_string())),
        rocksdb::ErrorKind::Corruption => BackendError::Corruption { space: None, source: Box::new(err) },
        _ => BackendError::Engine(Box::new(err)),
    }
}

/// `engine`, for an operation within `space`, so that a corruption names it.
fn engine_in(space: Keyspace) -> impl Fn(rocksdb::Error) -> BackendError + Send + Sync + 'static {
    move |err| match engine(err) {
        BackendError::Corruption { space: None, source } => BackendError::Corruption { space: Some(space), source },
        other => other,
    }
}

impl Backend for RocksBackend {
    fn engine(&self) -> &'static str {
        "rocksdb"
    }

    fn get(&self, space: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        let Some(segments) = self.segments.as_ref().filter(|_| space == Keyspace::Chunks) else {
            return self.lookup(space.name(), self.family(space)?, space, key);
        };
        if self.legacy_chunks
            && let Some(value) = self.lookup(space.name(), self.family(space)?, space, key)?
        {
            return Ok(Some(value));
        }
        match self.lookup(segments::REFS, self.internal(segments::REFS)?, Keyspace::Chunks, key)? {
            Some(raw) => self.read_value(segments, key, ValueRef::decode(&raw)?),
            None => Ok(None),
        }
    }

    fn scan(&self, space: Keyspace, start: &[u8], prefix: &[u8]) -> Entries<'_> {
        let families = self.family(space).and_then(|family| match &self.segments {
            Some(segments) if space == Keyspace::Chunks => {
                Ok((family, Some((self.internal(segments::REFS)?, segments))))
            }
            _ => Ok((family, None)),
        });
        match families {
            Err(err) => Box::new(std::iter::once(Err(err))),
            Ok((family, None)) => self.family_scan(space.name(), family, space, start, prefix),
            Ok((family, Some((refs, segments)))) => Box::new(MergedChunks {
                small: self.family_scan(space.name(), family, space, start, prefix).peekable(),
                large: self.family_scan(segments::REFS, refs, space, start, prefix).peekable(),
                backend: self,
                segments,
            }),
        }
    }

    /// Every commit is synced, `Buffered` ones too: the index may be flushed
    /// at any moment, and must never hold a change whose frame is not durable.
    fn commit(&self, batch: &Batch, _durability: Durability) -> Result<(), BackendError> {
        let Some(segments) = self.segments.as_ref().filter(|_| !self.read_only) else {
            return Err(BackendError::Engine("the database was opened read-only".into()));
        };
        let mut appender = segments.lock();
        let written = self.append(segments, &mut appender, batch)?;
        if self.unflushed.fetch_add(written, Ordering::Relaxed) + written >= self.replay_bound {
            self.unflushed.store(0, Ordering::Relaxed);
            if let Err(err) = self.flush(false) {
                tracing::warn!(error = %err, "asking the index to flush failed; will ask again");
            }
        }
        if self.punches_pending.load(Ordering::Acquire) {
            self.finish_punches_or_log(&mut appender);
        }
        Ok(())
    }

    fn memory_report(&self) -> Vec<(&'static str, u64)> {
        // Per family, summed; the cache is shared by the families.
        let sum = |property: &str| -> u64 {
            Keyspace::ALL
                .iter()
                .filter_map(|space| self.family(*space).ok())
                .filter_map(|cf| self.db.property_int_value_cf(cf, property).ok().flatten())
                .sum()
        };
        // Asked of one of the archive's families: the default family has a
        // cache of its own, which the archive does not use.
        let cache = |property: &str| -> u64 {
            self.family(Keyspace::Versions)
                .ok()
                .and_then(|cf| self.db.property_int_value_cf(cf, property).ok().flatten())
                .unwrap_or(0)
        };
        vec![
            ("memtables", sum("rocksdb.cur-size-all-mem-tables")),
            ("table readers outside the cache", sum("rocksdb.estimate-table-readers-mem")),
            ("block cache", cache("rocksdb.block-cache-usage")),
            ("block cache pinned", cache("rocksdb.block-cache-pinned-usage")),
        ]
    }

    fn disk_space(&self) -> Option<DiskSpace> {
        statvfs(self.db.path())
    }

    fn engine_stats(&self) -> Vec<(&'static str, u64)> {
        let families = || Keyspace::ALL.iter().filter_map(|space| self.family(*space).ok());
        let sum = |property: &str| -> u64 {
            families().filter_map(|cf| self.db.property_int_value_cf(cf, property).ok().flatten()).sum()
        };
        // The stall counters exist only as text ("…, total-delays: 3,
        // total-stops: 0, …"), per family and for the database.
        let stalls = |field: &str| -> u64 {
            let cf_stats = families()
                .filter_map(|cf| self.db.property_value_cf(cf, "rocksdb.cf-write-stall-stats").ok().flatten());
            let db_stats = self.db.property_value("rocksdb.db-write-stall-stats").ok().flatten();
            cf_stats.chain(db_stats).map(|text| stall_field(&text, field)).sum()
        };
        let mut stats = vec![
            ("pending_compaction_bytes", sum("rocksdb.estimate-pending-compaction-bytes")),
            (
                "running_compactions",
                self.db.property_int_value("rocksdb.num-running-compactions").ok().flatten().unwrap_or(0),
            ),
            ("running_flushes", self.db.property_int_value("rocksdb.num-running-flushes").ok().flatten().unwrap_or(0)),
            ("write_stopped", self.db.property_int_value("rocksdb.is-write-stopped").ok().flatten().unwrap_or(0)),
            ("write_delays_total", stalls("total-delays")),
            ("write_stops_total", stalls("total-stops")),
            ("table_file_bytes", sum("rocksdb.live-sst-files-size")),
            ("replayed_at_open_frames", self.replayed.0.load(Ordering::Relaxed)),
            ("replayed_at_open_bytes", self.replayed.1.load(Ordering::Relaxed)),
        ];
        if let Some(segments) = &self.segments {
            let (len, allocated) = segments.disk_usage();
            // Punched ranges (purged versions' bytes) take no blocks; the
            // active file's blocks reserved ahead count as allocated.
            stats.push(("log_file_bytes", len));
            stats.push(("log_allocated_bytes", allocated));
        }
        stats
    }
}

/// The number after `field: ` in a RocksDB write-stall report, 0 if absent.
/// The filesystem `dir` is on, by `statvfs`; `None` when it does not say.
fn statvfs(dir: &Path) -> Option<DiskSpace> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated and `stat` is written by the call
    // before it is read, which happens only when the call succeeded.
    let stat = unsafe {
        if libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) != 0 {
            return None;
        }
        stat.assume_init()
    };
    let block = stat.f_frsize as u64;
    Some(DiskSpace {
        total: stat.f_blocks as u64 * block,
        free: stat.f_bfree as u64 * block,
        available: stat.f_bavail as u64 * block,
    })
}

fn stall_field(text: &str, field: &str) -> u64 {
    let Some(at) = text.find(&format!("{field}: ")) else { return 0 };
    let rest = &text[at + field.len() + 2..];
    rest.split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stall_counts_are_read_from_rocksdb_text_reports() {
        let text = "Write Stall (count): cf-l0-file-count-limit-delays-with-ongoing-compaction: 0, \
                    memtable-limit-delays: 2, total-delays: 17, total-stops: 3, ";
        assert_eq!(stall_field(text, "total-delays"), 17);
        assert_eq!(stall_field(text, "total-stops"), 3);
        assert_eq!(stall_field(text, "total-nothing"), 0);
        assert_eq!(stall_field("", "total-stops"), 0);
    }

    /// 1 KiB that names its record, so that it is found in a table file and
    /// in no other record.
    fn record(n: u32) -> Vec<u8> {
        format!("record {n:04} ").repeat(90).into_bytes()[..1024].to_vec()
    }

    /// 1 KiB no compressor shrinks, different for each `n`.
    fn noise(n: u32) -> Vec<u8> {
        let mut state = u64::from(n + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (0..1024)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    }

    fn table_files(dir: &Path) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sst"))
            .collect()
    }

    /// A byte flipped inside a table file's data block, as a failing disk or
    /// an editor of the stopped appliance leaves it: every read of that block
    /// is `Corruption` of its keyspace (not an I/O error that a retry might
    /// cure), a scan stops there with it, and the other blocks still read.
    #[test]
    fn table_files_are_written_with_o_direct_where_the_filesystem_takes_it() {
        let dir = tempfile::tempdir().unwrap();
        // ext4, xfs, btrfs and (from Linux 6.6) tmpfs take it; ZFS before
        // 2.3 and some network filesystems do not.
        let supported = direct_io_supported(dir.path());
        assert!(!dir.path().join(".direct-io-probe").exists(), "the probe leaves nothing behind");
        let backend = RocksBackend::open(dir.path(), &RocksOptions::for_tests()).unwrap();
        let mut batch = Batch::new();
        batch.put(Keyspace::Chunks, b"k".to_vec(), record(1));
        backend.commit(&batch, Durability::Synced).unwrap();
        backend.db.flush_cf(backend.family(Keyspace::Chunks).unwrap()).unwrap();
        assert_eq!(backend.get(Keyspace::Chunks, b"k").unwrap(), Some(record(1)));
        let options = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("OPTIONS-")))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .expect("an OPTIONS file");
        assert!(options.contains(&format!("use_direct_io_for_flush_and_compaction={supported}")), "{supported}");
        // Where no file can be made with O_DIRECT, the probe says so.
        let not_a_dir = dir.path().join("CURRENT").join("sub");
        assert!(!direct_io_supported(&not_a_dir));
        // A link planted under the probe's name is removed, not followed:
        // the file it names is neither truncated nor written.
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, b"keep").unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join(".direct-io-probe")).unwrap();
        assert_eq!(direct_io_supported(dir.path()), supported);
        assert_eq!(std::fs::read(&elsewhere).unwrap(), b"keep");
        assert!(std::fs::symlink_metadata(dir.path().join(".direct-io-probe")).is_err());
    }

    /// Log bytes past `at`: what an open would replay if the index had
    /// flushed up to there.
    fn log_bytes_past(dir: &Path, at: Position) -> u64 {
        Segments::list(dir)
            .unwrap()
            .into_iter()
            .filter(|(id, _)| *id >= at.segment)
            .map(|(id, path)| {
                let len = std::fs::metadata(path).unwrap().len();
                if id == at.segment { len.saturating_sub(at.offset) } else { len }
            })
            .sum()
    }

    /// The log a crash leaves to replay (past the position the flushed index
    /// holds) stays within its bound, whether commits fill the index (small
    /// records: ledger entries and version records in its memtables) or
    /// hardly touch it (large records, whose bytes stay in the log: the
    /// index would take gigabytes of them to fill a memtable).
    #[test]
    fn the_log_left_to_replay_stays_within_its_bound() {
        let options = RocksOptions { write_buffer_bytes: 1 << 20, ..RocksOptions::for_tests() };
        let budget = replay_bound(&options);
        for (space, per_commit, value_bytes) in [(Keyspace::Ledger, 256u32, 1024), (Keyspace::Chunks, 4, 256 << 10)] {
            let dir = tempfile::tempdir().unwrap();
            let backend = RocksBackend::open(dir.path(), &options).unwrap();
            let mut most = 0;
            // 24 MiB in commits of 256 KiB, or 96 MiB in commits of 1 MiB,
            // each also writing the head.
            for commit in 0..96u32 {
                let mut batch = Batch::new();
                for n in 0..per_commit {
                    let mut value = record(n);
                    value.resize(value_bytes, b'.');
                    batch.put(space, (commit * per_commit + n).to_be_bytes().to_vec(), value);
                }
                batch.put(Keyspace::Meta, b"head".to_vec(), commit.to_be_bytes().to_vec());
                backend.commit(&batch, Durability::Synced).unwrap();
                if commit % 8 == 7 {
                    backend.db.wait_for_compact(&rocksdb::WaitForCompactOptions::default()).unwrap();
                    most = most.max(log_bytes_past(dir.path(), backend.covered(true).unwrap()));
                }
            }
            assert!(most <= 2 * budget, "{space:?}: {most} bytes of log to replay, the bound is {budget}");
            drop(backend);
            let backend = RocksBackend::open(dir.path(), &options).unwrap();
            assert_eq!(backend.get(Keyspace::Meta, b"head").unwrap(), Some(95u32.to_be_bytes().to_vec()));
            let last = 96 * per_commit - 1;
            let mut value = record(per_commit - 1);
            value.resize(value_bytes, b'.');
            assert_eq!(backend.get(space, &last.to_be_bytes()).unwrap(), Some(value));
        }
    }

    #[test]
    fn a_damaged_table_block_reads_as_corruption_of_its_keyspace() {
        let dir = tempfile::tempdir().unwrap();
        let backend = RocksBackend::open(dir.path(), &RocksOptions::for_tests()).unwrap();
        let mut batch = Batch::new();
        for n in 0..64 {
            batch.put(Keyspace::Ledger, u32::to_be_bytes(n).to_vec(), noise(n));
        }
        backend.commit(&batch, Durability::Synced).unwrap();
        // Closing flushes the index into a table file.
        drop(backend);
        let needle = noise(20);
        let mut flipped = 0;
        for path in table_files(dir.path()) {
            let mut bytes = std::fs::read(&path).unwrap();
            if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle.as_slice()) {
                bytes[at + 512] ^= 0x01;
                std::fs::write(&path, &bytes).unwrap();
                flipped += 1;
            }
        }
        assert_eq!(flipped, 1, "record 20 is in one table file");

        let damaged =
            |err: &BackendError| matches!(err, BackendError::Corruption { space: Some(Keyspace::Ledger), .. });
        let backend = RocksBackend::open(dir.path(), &RocksOptions::for_tests()).unwrap();
        let err = backend.get(Keyspace::Ledger, &20u32.to_be_bytes()).unwrap_err();
        assert!(damaged(&err), "{err:?}");
        assert!(err.to_string().contains("ledger"), "{err}");
        let scanned: Vec<_> = backend.scan(Keyspace::Ledger, b"", b"").collect();
        assert!(scanned.len() <= 21, "the scan stops at the damaged block");
        assert!(scanned.last().is_some_and(|last| last.as_ref().is_err_and(damaged)), "{scanned:?}");
        assert_eq!(backend.get(Keyspace::Ledger, &63u32.to_be_bytes()).unwrap(), Some(noise(63)));
        drop(backend);

        let read_only = RocksBackend::open_read_only(dir.path()).unwrap();
        let err = read_only.get(Keyspace::Ledger, &20u32.to_be_bytes()).unwrap_err();
        assert!(damaged(&err), "{err:?}");
        assert_eq!(read_only.get(Keyspace::Ledger, &63u32.to_be_bytes()).unwrap(), Some(noise(63)));
    }
}
