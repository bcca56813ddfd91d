//! `Backend` on RocksDB.
//!
//! Each `Keyspace` maps to one column family. Version bytes live in the
//! `chunks` family with blob files enabled, so large values are written to
//! blob files rather than rewritten by every compaction. A `Synced` commit is
//! a WriteBatch written with `sync = true`, which also makes every earlier
//! `Buffered` write durable, since they share one WAL. This crate holds no
//! archive rules; they live in `wormbox-store`.

use std::path::Path;

use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DB, DBCompressionType, Direction, IteratorMode, Options, ReadOptions,
    WriteBatch, WriteOptions,
};
use wormbox_store::backend::{Backend, BackendError, Batch, BatchOp, Durability, Entries, Keyspace, prefix_successor};

/// Tuning knobs of the RocksDB backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RocksOptions {
    /// Values at least this large in `chunks` go to blob files.
    pub min_blob_bytes: u64,
    /// Size of each memtable, in bytes. All memtables together are held to
    /// four times this, charged to the block cache (see `open_db`).
    pub write_buffer_bytes: usize,
    /// Block cache size for data, index and filter blocks, in bytes.
    pub block_cache_bytes: usize,
}

impl Default for RocksOptions {
    fn default() -> RocksOptions {
        RocksOptions { min_blob_bytes: 4096, write_buffer_bytes: 64 << 20, block_cache_bytes: 128 << 20 }
    }
}

impl RocksOptions {
    /// Small buffers, for tests that open many stores.
    pub fn for_tests() -> RocksOptions {
        RocksOptions { min_blob_bytes: 4096, write_buffer_bytes: 4 << 20, block_cache_bytes: 8 << 20 }
    }
}

/// The archive's backend on an embedded RocksDB.
#[derive(Debug)]
pub struct RocksBackend {
    db: DB,
}

impl RocksBackend {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path, options: &RocksOptions) -> Result<RocksBackend, BackendError> {
        Ok(RocksBackend { db: open_db(dir, options)? })
    }

    /// Opens the database in `dir` for reading only, as offline verification
    /// of a stopped appliance (or a copy) does: nothing is created, recovered
    /// into new files or compacted, and every commit fails.
    pub fn open_read_only(dir: &Path) -> Result<RocksBackend, BackendError> {
        let existing = DB::list_cf(&Options::default(), dir).map_err(engine)?;
        let families: Vec<&str> =
            Keyspace::ALL.iter().map(|space| space.name()).filter(|name| existing.iter().any(|e| e == name)).collect();
        let db = DB::open_cf_for_read_only(&Options::default(), dir, families, false).map_err(engine)?;
        Ok(RocksBackend { db })
    }

    /// Writes a consistent copy of the database into `dir`, which must not
    /// exist yet: RocksDB's checkpoint (files hard-linked where the filesystem
    /// allows, the memtables flushed first), for backups.
    pub fn copy_to(&self, dir: &Path) -> Result<(), BackendError> {
        rocksdb::checkpoint::Checkpoint::new(&self.db).and_then(|c| c.create_checkpoint(dir)).map_err(engine)
    }

    fn family(&self, space: Keyspace) -> Result<&rocksdb::ColumnFamily, BackendError> {
        family(&self.db, space)
    }
}

fn family(db: &DB, space: Keyspace) -> Result<&rocksdb::ColumnFamily, BackendError> {
    db.cf_handle(space.name()).ok_or_else(|| BackendError::Corruption {
        space,
        source: format!("column family `{}` is missing", space.name()).into(),
    })
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
    DB::open_cf_descriptors(&db_options, dir, families).map_err(engine)
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

fn engine(err: rocksdb::Error) -> BackendError {
    match err.kind() {
        rocksdb::ErrorKind::IOError => BackendError::Io(std::io::Error::other(err.into_string())),
        _ => BackendError::Engine(Box::new(err)),
    }
}

impl Backend for RocksBackend {
    fn engine(&self) -> &'static str {
        "rocksdb"
    }

    fn get(&self, space: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        let family = self.family(space)?;
        self.db.get_cf(family, key).map_err(engine)
    }

    fn scan(&self, space: Keyspace, start: &[u8], prefix: &[u8]) -> Entries<'_> {
        let family = match self.family(space) {
            Ok(family) => family,
            Err(err) => return Box::new(std::iter::once(Err(err))),
        };
        let from = if start < prefix { prefix } else { start };
        let mut read = ReadOptions::default();
        if let Some(end) = prefix_successor(prefix) {
            read.set_iterate_upper_bound(end);
        }
        let prefix = prefix.to_vec();
        let iter = self.db.iterator_cf_opt(family, read, IteratorMode::From(from, Direction::Forward));
        Box::new(iter.map(|entry| entry.map(|(k, v)| (k.into_vec(), v.into_vec())).map_err(engine)).take_while(
            move |entry| match entry {
                Ok((k, _)) => k.starts_with(&prefix),
                // An engine error ends the scan by being yielded, not swallowed.
                Err(_) => true,
            },
        ))
    }

    fn commit(&self, batch: &Batch, durability: Durability) -> Result<(), BackendError> {
        let mut write = WriteBatch::with_capacity_bytes(batch_bytes(batch.ops().iter().map(|op| match op {
            BatchOp::Put { key, value, .. } => key.len() + value.len(),
            BatchOp::Delete { key, .. } => key.len(),
        })));
        for op in batch.ops() {
            match op {
                BatchOp::Put { space, key, value } => write.put_cf(self.family(*space)?, key, value),
                BatchOp::Delete { space, key } => write.delete_cf(self.family(*space)?, key),
            }
        }
        let mut options = WriteOptions::default();
        options.set_sync(durability == Durability::Synced);
        self.db.write_opt(write, &options).map_err(engine)
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
