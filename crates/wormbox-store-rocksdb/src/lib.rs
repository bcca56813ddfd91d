//! `Backend` on RocksDB.
//!
//! Each `Keyspace` maps to one column family. Small version bytes live in
//! the `chunks` family (blob files from `min_blob_bytes`, so they are not
//! rewritten by every compaction); values from `segment_min_bytes` are
//! written once to value segments (`segments`) when a batch holds at least
//! `segment_batch_min_bytes` of them, and `chunks` reads and scans see both
//! as one keyspace. A `Synced` commit is a WriteBatch written with
//! `sync = true`, which also makes every earlier `Buffered` write durable,
//! since they share one WAL; segment bytes are synced before any WriteBatch
//! that references them. This crate holds no archive rules; they live in
//! `wormbox-store`.

mod cpu;
mod linked;
mod segments;

use std::collections::HashMap;
use std::iter::Peekable;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, Direction, IteratorMode, Options,
    ReadOptions, WriteBatch, WriteOptions,
};
use wormbox_store::backend::{Backend, BackendError, Batch, BatchOp, Durability, Entries, Keyspace, prefix_successor};

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
    /// Values at least this large in `chunks` go to blob files.
    pub min_blob_bytes: u64,
    /// Values at least this large in `chunks` go to value segments instead:
    /// written once, not to the WAL and again to a blob file.
    pub segment_min_bytes: usize,
    /// ... when a batch holds at least this many bytes of such values. A
    /// segment costs a second sync in the commit: a lone 64 KiB record is
    /// acknowledged sooner from the WAL (measured: one client's PutObject),
    /// while a group of them is written faster once, to a segment.
    pub segment_batch_min_bytes: usize,
    /// A value segment file is closed once it holds this many bytes.
    pub segment_file_bytes: u64,
    /// Size of each memtable, in bytes. All memtables together are held to
    /// four times this, charged to the block cache (see `open_db`).
    pub write_buffer_bytes: usize,
    /// Block cache size for data, index and filter blocks, in bytes.
    pub block_cache_bytes: usize,
}

impl Default for RocksOptions {
    fn default() -> RocksOptions {
        RocksOptions {
            min_blob_bytes: 4096,
            segment_min_bytes: 16 << 10,
            segment_batch_min_bytes: 128 << 10,
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
    segment_min_bytes: usize,
    segment_batch_min_bytes: usize,
    read_only: bool,
    /// Some punch is recorded and not yet done.
    punches_pending: AtomicBool,
}

impl RocksBackend {
    /// Opens (creating if needed) the database in `dir`, refusing it when the
    /// linked RocksDB library is not the bindings' version. Value segment bytes
    /// past their recorded end (appended by a commit that never landed) are
    /// cut off, segment files no commit recorded are removed, and punches a
    /// crash interrupted are finished.
    pub fn open(dir: &Path, options: &RocksOptions) -> Result<RocksBackend, BackendError> {
        cpu::check()?;
        let db = open_db(dir, options)?;
        linked::check(dir)?;
        let last_id = recover_segments(&db, dir)?;
        let backend = RocksBackend {
            db,
            segments: Some(Segments::new(dir, options.segment_file_bytes, last_id)),
            segment_min_bytes: options.segment_min_bytes.max(1),
            segment_batch_min_bytes: options.segment_batch_min_bytes,
            read_only: false,
            punches_pending: AtomicBool::new(true),
        };
        let segments = backend.segments.as_ref().expect("just set");
        backend.finish_punches_or_log(&mut segments.lock());
        Ok(backend)
    }

    /// Opens the database in `dir` for reading only, as offline verification
    /// of a stopped appliance (or a copy) does: nothing is created, recovered
    /// into new files or compacted, and every commit fails.
    pub fn open_read_only(dir: &Path) -> Result<RocksBackend, BackendError> {
        cpu::check()?;
        let existing = DB::list_cf(&Options::default(), dir).map_err(engine)?;
        let families: Vec<&str> = Keyspace::ALL
            .iter()
            .map(|space| space.name())
            .chain([segments::REFS, segments::SEGMENTS])
            .filter(|name| existing.iter().any(|e| e == name))
            .collect();
        let with_segments = families.contains(&segments::REFS);
        let db = DB::open_cf_for_read_only(&Options::default(), dir, families, false).map_err(engine)?;
        Ok(RocksBackend {
            db,
            segments: with_segments.then(|| Segments::new(dir, u64::MAX, 0)),
            segment_min_bytes: usize::MAX,
            segment_batch_min_bytes: usize::MAX,
            read_only: true,
            punches_pending: AtomicBool::new(false),
        })
    }

    /// Writes a consistent copy of the database into `dir`, which must not
    /// exist yet: RocksDB's checkpoint (files hard-linked where the filesystem
    /// allows, the memtables flushed first) and a copy of the value segment
    /// files, for backups. No bytes are punched out of the segments while
    /// they are copied, so every reference in the checkpoint finds its bytes;
    /// bytes past the checkpoint's recorded ends are cut off when the copy
    /// is opened.
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

    fn family(&self, space: Keyspace) -> Result<&ColumnFamily, BackendError> {
        family(&self.db, space)
    }

    fn internal(&self, name: &str) -> Result<&ColumnFamily, BackendError> {
        internal_family(&self.db, name)
    }

    /// The reference stored for `key`, as `commit` has changed it so far.
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

    /// Punches out the bytes of every recorded punch, then forgets them.
    /// Called with the appender held, so that no commit recording a punch
    /// can slip in between the WAL sync (which makes every recorded punch's
    /// delete durable) and the scan.
    fn finish_punches(&self, _appender: &mut Appender) -> Result<(), BackendError> {
        let Some(segments) = &self.segments else { return Ok(()) };
        if !self.punches_pending.load(Ordering::Acquire) {
            return Ok(());
        }
        // A backup is copying the files: it finishes them when it is done.
        let Some(_gate) = segments.try_gate() else { return Ok(()) };
        self.db.flush_wal(true).map_err(engine)?;
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
        let mut done = WriteBatch::default();
        for key in keys {
            done.delete_cf(family, key);
        }
        // Not synced: a punch forgotten by a crash is only punched again.
        self.db.write(done).map_err(engine)?;
        self.punches_pending.store(false, Ordering::Release);
        Ok(())
    }

    /// `finish_punches` after a commit that has landed: a failure to punch
    /// does not undo the commit; the punches stay recorded and are tried
    /// again at the next synced commit and at the next open.
    fn finish_punches_or_log(&self, appender: &mut Appender) {
        if let Err(err) = self.finish_punches(appender) {
            tracing::warn!(error = %err, "freeing purged value bytes failed; will retry");
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

    /// Writes `batch` as it is (no segment values in it).
    fn write_plain(&self, batch: &Batch, sync: bool) -> Result<(), BackendError> {
        let mut write = WriteBatch::with_capacity_bytes(batch_bytes(batch.ops().iter().map(op_bytes)));
        for op in batch.ops() {
            match op {
                BatchOp::Put { space, key, value } => write.put_cf(self.family(*space)?, key, value),
                BatchOp::Delete { space, key } => write.delete_cf(self.family(*space)?, key),
            }
        }
        self.write(write, sync)
    }

    fn write(&self, write: WriteBatch, sync: bool) -> Result<(), BackendError> {
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        self.db.write_opt(write, &options).map_err(engine)
    }

    /// Writes `batch` with its large `chunks` values (when `append`)
    /// appended to segments and synced first, their references and the
    /// segments' new ends in the WriteBatch, and the bytes of references it
    /// replaces or deletes recorded for punching.
    fn write_with_segments(
        &self,
        segments: &Segments,
        batch: &Batch,
        sync: bool,
        append: bool,
    ) -> Result<(), BackendError> {
        let mut appender = segments.lock();
        let chunks = self.family(Keyspace::Chunks)?;
        let refs = self.internal(segments::REFS)?;
        let ends = self.internal(segments::SEGMENTS)?;
        let mut write = WriteBatch::with_capacity_bytes(batch_bytes(batch.ops().iter().map(|op| match op {
            BatchOp::Put { space: Keyspace::Chunks, key, value } if append && value.len() >= self.segment_min_bytes => {
                key.len() * 2 + 21
            }
            op => op_bytes(op),
        })));
        let mut changed: HashMap<&[u8], Option<ValueRef>> = HashMap::new();
        let mut punches = Vec::new();
        for op in batch.ops() {
            match op {
                BatchOp::Put { space: Keyspace::Chunks, key, value }
                    if append && value.len() >= self.segment_min_bytes =>
                {
                    punches.extend(self.current_ref(&changed, key)?);
                    let r = segments.append(&mut appender, value)?;
                    write.delete_cf(chunks, key);
                    write.put_cf(refs, key, r.encode());
                    changed.insert(key, Some(r));
                }
                BatchOp::Delete { space: Keyspace::Chunks, key } => {
                    punches.extend(self.current_ref(&changed, key)?);
                    write.delete_cf(chunks, key);
                    write.delete_cf(refs, key);
                    changed.insert(key, None);
                }
                BatchOp::Put { space, key, value } => write.put_cf(self.family(*space)?, key, value),
                BatchOp::Delete { space, key } => write.delete_cf(self.family(*space)?, key),
            }
        }
        for (id, end) in segments.sync(&mut appender)? {
            write.put_cf(ends, segments::end_key(id), end.to_be_bytes());
        }
        for r in &punches {
            write.put_cf(ends, segments::punch_key(*r), []);
        }
        self.write(write, sync)?;
        if !punches.is_empty() {
            self.punches_pending.store(true, Ordering::Release);
        }
        if sync {
            self.finish_punches_or_log(&mut appender);
        }
        Ok(())
    }
}

fn op_bytes(op: &BatchOp) -> usize {
    match op {
        BatchOp::Put { key, value, .. } => key.len() + value.len(),
        BatchOp::Delete { key, .. } => key.len(),
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
        let segments = self.segments;
        self.large.next().map(|entry| entry.and_then(|(key, raw)| Ok((key, segments.read(ValueRef::decode(&raw)?)?))))
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
    // The write-ahead log to replay after a crash is bounded by the same
    // budget: once its files hold more than the memtables may, the families
    // whose unflushed writes keep the oldest file alive are flushed. Without
    // this, a family written by every commit but too small to fill its
    // memtable (`meta`) pins every log file since its last flush, and the
    // open after a kill -9 replays gigabytes (RocksDB's default bound is
    // four times all families' memtables: 14 families × 2 × 64 MiB × 4).
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
    let internal = [segments::REFS, segments::SEGMENTS].map(|name| {
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
        let value = self.db.get_cf(self.family(space)?, key).map_err(engine_in(space))?;
        let Some(segments) = self.segments.as_ref().filter(|_| space == Keyspace::Chunks && value.is_none()) else {
            return Ok(value);
        };
        match self.db.get_pinned_cf(self.internal(segments::REFS)?, key).map_err(engine_in(Keyspace::Chunks))? {
            Some(raw) => segments.read(ValueRef::decode(&raw)?).map(Some),
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
            Ok((family, None)) => self.raw_scan(family, space, start, prefix),
            Ok((family, Some((refs, segments)))) => Box::new(MergedChunks {
                small: self.raw_scan(family, space, start, prefix).peekable(),
                large: self.raw_scan(refs, space, start, prefix).peekable(),
                segments,
            }),
        }
    }

    fn commit(&self, batch: &Batch, durability: Durability) -> Result<(), BackendError> {
        if self.read_only {
            return Err(BackendError::Engine("the database was opened read-only".into()));
        }
        let sync = durability == Durability::Synced;
        let (mut large_bytes, mut deletes) = (0, false);
        for op in batch.ops() {
            match op {
                BatchOp::Put { space: Keyspace::Chunks, value, .. } if value.len() >= self.segment_min_bytes => {
                    large_bytes += value.len();
                }
                BatchOp::Delete { space: Keyspace::Chunks, .. } => deletes = true,
                _ => {}
            }
        }
        let append = large_bytes > 0 && large_bytes >= self.segment_batch_min_bytes;
        match &self.segments {
            Some(segments) if append || deletes => self.write_with_segments(segments, batch, sync, append),
            segments => {
                self.write_plain(batch, sync)?;
                if let Some(segments) = segments
                    && sync
                    && self.punches_pending.load(Ordering::Acquire)
                {
                    self.finish_punches_or_log(&mut segments.lock());
                }
                Ok(())
            }
        }
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
            ("table files on disk", sum("rocksdb.live-sst-files-size")),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 KiB that names its record, so that it is found in a table file and
    /// in no other record.
    fn record(n: u32) -> Vec<u8> {
        format!("record {n:04} ").repeat(90).into_bytes()[..1024].to_vec()
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

    /// The log a crash leaves to replay is held to the memtable budget even
    /// while a family is written by every commit but never fills its
    /// memtable (the store's `meta`, where the ledger head lives): that
    /// family is flushed when the log outgrows the budget, instead of
    /// keeping every log file since its last flush (RocksDB's default
    /// bound, four times all families' memtables, is 56 times one).
    #[test]
    fn the_write_ahead_log_stays_within_the_memtable_budget() {
        let dir = tempfile::tempdir().unwrap();
        let options = RocksOptions { write_buffer_bytes: 1 << 20, ..RocksOptions::for_tests() };
        let backend = RocksBackend::open(dir.path(), &options).unwrap();
        let wal_bytes = || -> u64 {
            std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
                .sum()
        };
        let mut most = 0;
        // 24 MiB in commits of 256 KiB, each also writing the head.
        for commit in 0..96u32 {
            let mut batch = Batch::new();
            for n in 0..256u32 {
                batch.put(Keyspace::Ledger, (commit * 256 + n).to_be_bytes().to_vec(), record(n));
            }
            batch.put(Keyspace::Meta, b"head".to_vec(), commit.to_be_bytes().to_vec());
            backend.commit(&batch, Durability::Synced).unwrap();
            if commit % 8 == 7 {
                backend.db.wait_for_compact(&rocksdb::WaitForCompactOptions::default()).unwrap();
                most = most.max(wal_bytes());
            }
        }
        let budget = 4 * options.write_buffer_bytes as u64;
        assert!(most <= 2 * budget, "the write-ahead log reached {most} bytes, the memtable budget is {budget}");
        drop(backend);
        let backend = RocksBackend::open(dir.path(), &options).unwrap();
        assert_eq!(backend.get(Keyspace::Meta, b"head").unwrap(), Some(95u32.to_be_bytes().to_vec()));
        assert_eq!(backend.get(Keyspace::Ledger, &(95 * 256u32 + 255).to_be_bytes()).unwrap(), Some(record(255)));
    }

    #[test]
    fn a_damaged_table_block_reads_as_corruption_of_its_keyspace() {
        let dir = tempfile::tempdir().unwrap();
        let backend = RocksBackend::open(dir.path(), &RocksOptions::for_tests()).unwrap();
        let mut batch = Batch::new();
        for n in 0..64 {
            batch.put(Keyspace::Chunks, u32::to_be_bytes(n).to_vec(), record(n));
        }
        backend.commit(&batch, Durability::Synced).unwrap();
        drop(backend);
        // Opening replays the WAL into a table file.
        drop(RocksBackend::open(dir.path(), &RocksOptions::for_tests()).unwrap());
        let needle = record(20);
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
            |err: &BackendError| matches!(err, BackendError::Corruption { space: Some(Keyspace::Chunks), .. });
        let backend = RocksBackend::open(dir.path(), &RocksOptions::for_tests()).unwrap();
        let err = backend.get(Keyspace::Chunks, &20u32.to_be_bytes()).unwrap_err();
        assert!(damaged(&err), "{err:?}");
        assert!(err.to_string().contains("chunks"), "{err}");
        let scanned: Vec<_> = backend.scan(Keyspace::Chunks, b"", b"").collect();
        assert!(scanned.len() <= 21, "the scan stops at the damaged block");
        assert!(scanned.last().is_some_and(|last| last.as_ref().is_err_and(damaged)), "{scanned:?}");
        assert_eq!(backend.get(Keyspace::Chunks, &63u32.to_be_bytes()).unwrap(), Some(record(63)));
        drop(backend);

        let read_only = RocksBackend::open_read_only(dir.path()).unwrap();
        let err = read_only.get(Keyspace::Chunks, &20u32.to_be_bytes()).unwrap_err();
        assert!(damaged(&err), "{err:?}");
        assert_eq!(read_only.get(Keyspace::Chunks, &63u32.to_be_bytes()).unwrap(), Some(record(63)));
    }
}
