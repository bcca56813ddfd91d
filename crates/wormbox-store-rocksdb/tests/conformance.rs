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
