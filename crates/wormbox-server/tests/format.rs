//! Archives written by earlier builds still open: a database written before
//! the log became the archive's physical log (RocksDB's own write-ahead log
//! holding the last writes, value segments of bare values) opens under this
//! build, reads back every version and verifies, and takes new writes.
//!
//! The fixture under `tests/fixtures/format-wal/` was written by
//! `write_the_wal_format_fixture` at commit e7e67b0, the last build of that
//! format; running it again under a newer build would write the new format,
//! so it is ignored.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wormbox_model::{BucketName, ManualClock, ObjectKey, Timestamp, VersionSelector, VersioningState};
use wormbox_store::{Actor, NewObject, Store, StoreOptions};
use wormbox_store_rocksdb::{RocksBackend, RocksOptions};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-wal")
}

/// The fixture was written with values from 1 KiB in value segments
/// (`segment_min_bytes` and `segment_batch_min_bytes`, options of that
/// build), so that it holds some in a few kilobytes.
fn options() -> RocksOptions {
    RocksOptions::for_tests()
}

/// Record `n`'s bytes: small ones stay in RocksDB, from 1 KiB they went to a
/// value segment in the old format.
fn body(n: usize) -> Vec<u8> {
    let size = if n.is_multiple_of(3) { 3000 } else { 200 };
    format!("record {n:03} ").repeat(size / 11 + 1).into_bytes()[..size].to_vec()
}

fn bucket(name: &str) -> BucketName {
    BucketName::new(name).unwrap()
}

fn key(n: usize) -> ObjectKey {
    ObjectKey::new(&format!("records/{n:03}")).unwrap()
}

fn open(db: &Path) -> Store {
    let backend = RocksBackend::open(db, &options()).expect("the archive opens");
    let clock = Arc::new(ManualClock::new(Timestamp(1_780_000_000_000_000)));
    Store::open(Arc::new(backend), clock, StoreOptions::default()).expect("the store opens")
}

fn read(store: &Store, bucket: &BucketName, key: &ObjectKey, version: Option<VersionSelector>) -> Vec<u8> {
    let (_, reader) = store.read_object(bucket, key, version).unwrap();
    reader.map(|chunk| chunk.unwrap()).collect::<Vec<_>>().concat()
}

#[test]
#[ignore = "writes the fixture; run only by the build of the format it preserves"]
fn write_the_wal_format_fixture() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = fixture();
    let _ = std::fs::remove_dir_all(&db);
    let store = open(&db);
    let admin = Actor::system();
    runtime.block_on(async {
        store.create_bucket(&admin, bucket("kept")).await.unwrap();
        store.set_versioning(&admin, bucket("kept"), VersioningState::Enabled).await.unwrap();
        store.create_bucket(&admin, bucket("plain")).await.unwrap();
        for n in 0..12 {
            store.put_object(&admin, bucket("kept"), key(n), NewObject::default(), body(n)).await.unwrap();
        }
        // A second version of record 0, and a null version replaced in an
        // unversioned bucket (its old bytes are punched out).
        store.put_object(&admin, bucket("kept"), key(0), NewObject::default(), body(100)).await.unwrap();
        for n in [3, 6] {
            store.put_object(&admin, bucket("plain"), key(0), NewObject::default(), body(n)).await.unwrap();
        }
        store.delete_object(&admin, bucket("kept"), key(1), None).await.unwrap();
    });
    drop(store);
    // RocksDB does not flush at close: the last writes stay in its WAL, as a
    // crash leaves them.
    assert!(std::fs::read_dir(&db).unwrap().any(|e| e.unwrap().path().extension().is_some_and(|x| x == "log")));
}

#[test]
fn an_archive_written_with_rocksdb_s_write_ahead_log_opens_verifies_and_takes_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    std::fs::create_dir(&db).unwrap();
    for entry in std::fs::read_dir(fixture()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), db.join(entry.file_name())).unwrap();
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for round in 0..2 {
        let store = open(&db);
        let summary = store.verify_ledger().expect("the chain recomputes");
        assert!(summary.entries >= 18 + round, "{summary:?}");
        for n in 2..12 {
            assert_eq!(read(&store, &bucket("kept"), &key(n), None), body(n), "record {n}");
        }
        assert_eq!(read(&store, &bucket("kept"), &key(0), None), body(100));
        assert_eq!(read(&store, &bucket("plain"), &key(0), None), body(6));
        assert!(store.read_object(&bucket("kept"), &key(1), None).is_err(), "a delete marker hides record 1");
        let versions =
            store.list_versions(&bucket("kept"), &wormbox_store::ListVersionsParams::default()).unwrap().entries.len();
        assert_eq!(versions, 14 + round as usize, "13 versions and a delete marker, then one more");
        // New writes go to the new format beside the old.
        let admin = Actor::system();
        runtime.block_on(async {
            let put =
                store.put_object(&admin, bucket("kept"), key(200 + round as usize), NewObject::default(), body(3));
            put.await.unwrap();
        });
        drop(store);
        let backend = RocksBackend::open_read_only(&db).unwrap();
        let report = wormbox_store::evidence::verify(&backend, Default::default()).unwrap();
        assert!(report.is_ok(), "{}", report.summary());
        assert!(report.versions_checked >= 14 + round, "{}", report.summary());
    }
    // The log began when the index already held the archive: the log alone
    // cannot rebuild it, and says so instead of rebuilding part of it.
    let err = RocksBackend::rebuild_index(&db, &dir.path().join("rebuilt"), &options()).unwrap_err();
    assert!(err.to_string().contains("storage engine failed"), "{err}");
    let why = std::error::Error::source(&err).unwrap().to_string();
    assert!(why.contains("written by a build before the log"), "{why}");
    assert!(!dir.path().join("rebuilt").exists(), "nothing was made");
}
