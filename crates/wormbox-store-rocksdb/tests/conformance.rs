//! Runs the shared `Backend` contract against `RocksBackend`.

use std::sync::Arc;

use wormbox_store::backend::Backend;
use wormbox_store_rocksdb::{RocksBackend, RocksOptions};

#[test]
fn rocks_backend_meets_the_backend_contract() {
    wormbox_store::backend::conformance::run_all(&|dir| {
        Arc::new(RocksBackend::open(dir, &RocksOptions::for_tests()).expect("rocksdb opens")) as Arc<dyn Backend>
    });
}

#[test]
fn a_second_open_of_a_live_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = RocksBackend::open(dir.path(), &RocksOptions::for_tests()).unwrap();
    assert!(RocksBackend::open(dir.path(), &RocksOptions::for_tests()).is_err());
}

#[test]
fn the_engine_reports_the_memory_it_holds() {
    use wormbox_store::backend::{Batch, Durability, Keyspace};
    let dir = tempfile::tempdir().unwrap();
    let backend = RocksBackend::open(dir.path(), &RocksOptions::for_tests()).unwrap();
    let mut batch = Batch::new();
    for n in 0u32..256 {
        batch.put(Keyspace::Ledger, n.to_be_bytes().to_vec(), vec![7; 1024]);
    }
    backend.commit(&batch, Durability::Synced).unwrap();
    let report: std::collections::HashMap<&str, u64> = backend.memory_report().into_iter().collect();
    assert!(report["memtables"] >= 256 * 1024, "{report:?}");
    // Memtables are charged to the block cache, as pinned entries.
    assert!(report["block cache pinned"] > 0, "{report:?}");
    assert!(report["block cache"] >= report["block cache pinned"], "{report:?}");
    assert!(report.contains_key("table readers outside the cache"), "{report:?}");
    // What the engine holds on disk is not memory: it is among its stats.
    assert!(!report.keys().any(|name| name.contains("disk")), "{report:?}");
    let stats: std::collections::HashMap<&str, u64> = backend.engine_stats().into_iter().collect();
    assert!(stats.contains_key("table_file_bytes") && stats.contains_key("log_file_bytes"), "{stats:?}");
    assert!(stats["log_file_bytes"] >= 256 * 1024, "the batch's values are in the log: {stats:?}");
}
