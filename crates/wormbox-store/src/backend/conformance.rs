//! The contract every `Backend` must meet, written once and run per engine
//! (`MemBackend` in this crate's tests, `RocksBackend` in its crate's tests).
//!
//! `run_all(open)` takes a function that opens the engine in a directory; the
//! suite calls it again on the same directory to check persistence, after the
//! previous instance (and every store built on it) has been dropped.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wormbox_model::{BucketName, ManualClock, ObjectKey, Role, Timestamp, VersionSelector, VersioningState};

use crate::backend::{Backend, Batch, Durability, Keyspace};
use crate::{Actor, CHUNK_BYTES, NewObject, Store, StoreError, StoreOptions};

/// Opens an engine in a directory.
pub type Open<'a> = &'a dyn Fn(&Path) -> Arc<dyn Backend>;

type Case = fn(Open<'_>, &Path);

/// Runs every case of the contract, each in a fresh directory.
pub fn run_all(open: Open<'_>) {
    let cases: [(&str, Case); 9] = [
        ("round_trip", round_trip),
        ("batches_are_atomic_and_later_ops_win", batches_are_atomic_and_later_ops_win),
        ("scans_are_ordered_and_bounded", scans_are_ordered_and_bounded),
        ("keyspaces_are_separate", keyspaces_are_separate),
        ("concurrent_commits_all_land", concurrent_commits_all_land),
        ("data_survives_reopen", data_survives_reopen),
        ("chunk_values_of_any_size", chunk_values_of_any_size),
        ("store_versioning_survives_reopen", store_versioning_survives_reopen),
        ("store_streams_large_objects_in_chunks", store_streams_large_objects_in_chunks),
    ];
    for (name, case) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        eprintln!("conformance: {name}");
        case(open, dir.path());
    }
}

fn put(backend: &dyn Backend, space: Keyspace, key: &[u8], value: &[u8]) {
    let mut batch = Batch::new();
    batch.put(space, key.to_vec(), value.to_vec());
    backend.commit(&batch, Durability::Synced).expect("commit");
}

fn keys(backend: &dyn Backend, space: Keyspace, start: &[u8], prefix: &[u8]) -> Vec<Vec<u8>> {
    backend.scan(space, start, prefix).map(|e| e.expect("scan").0).collect()
}

fn round_trip(open: Open<'_>, dir: &Path) {
    let backend = open(dir);
    assert_eq!(backend.get(Keyspace::Meta, b"k").unwrap(), None);
    put(&*backend, Keyspace::Meta, b"k", b"v");
    assert_eq!(backend.get(Keyspace::Meta, b"k").unwrap(), Some(b"v".to_vec()));
    put(&*backend, Keyspace::Meta, b"empty", b"");
    assert_eq!(backend.get(Keyspace::Meta, b"empty").unwrap(), Some(Vec::new()));
    let mut batch = Batch::new();
    batch.delete(Keyspace::Meta, b"k".to_vec());
    batch.delete(Keyspace::Meta, b"never-there".to_vec());
    backend.commit(&batch, Durability::Buffered).unwrap();
    assert_eq!(backend.get(Keyspace::Meta, b"k").unwrap(), None);
}

fn batches_are_atomic_and_later_ops_win(open: Open<'_>, dir: &Path) {
    let backend = open(dir);
    let mut batch = Batch::new();
    batch.put(Keyspace::Versions, b"a".to_vec(), b"1".to_vec());
    batch.put(Keyspace::Versions, b"b".to_vec(), b"2".to_vec());
    batch.delete(Keyspace::Versions, b"a".to_vec());
    batch.put(Keyspace::Ledger, b"c".to_vec(), b"3".to_vec());
    batch.put(Keyspace::Ledger, b"c".to_vec(), b"4".to_vec());
    backend.commit(&batch, Durability::Synced).unwrap();
    assert_eq!(backend.get(Keyspace::Versions, b"a").unwrap(), None);
    assert_eq!(backend.get(Keyspace::Versions, b"b").unwrap(), Some(b"2".to_vec()));
    assert_eq!(backend.get(Keyspace::Ledger, b"c").unwrap(), Some(b"4".to_vec()));
}

fn scans_are_ordered_and_bounded(open: Open<'_>, dir: &Path) {
    let backend = open(dir);
    let all: Vec<&[u8]> = vec![b"", b"\x00", b"a", b"a\x00", b"a\x00\xff", b"a\x01", b"ab", b"b", b"\xff", b"\xff\xff"];
    let mut batch = Batch::new();
    for key in all.iter().rev() {
        batch.put(Keyspace::Versions, key.to_vec(), key.to_vec());
    }
    backend.commit(&batch, Durability::Synced).unwrap();
    let expected: Vec<Vec<u8>> = all.iter().map(|k| k.to_vec()).collect();
    assert_eq!(keys(&*backend, Keyspace::Versions, b"", b""), expected);
    assert_eq!(
        keys(&*backend, Keyspace::Versions, b"", b"a"),
        vec![b"a".to_vec(), b"a\x00".to_vec(), b"a\x00\xff".to_vec(), b"a\x01".to_vec(), b"ab".to_vec()]
    );
    assert_eq!(keys(&*backend, Keyspace::Versions, b"a\x01", b"a"), vec![b"a\x01".to_vec(), b"ab".to_vec()]);
    assert_eq!(keys(&*backend, Keyspace::Versions, b"zz", b"a"), Vec::<Vec<u8>>::new());
    assert_eq!(keys(&*backend, Keyspace::Versions, b"", b"\xff"), vec![b"\xff".to_vec(), b"\xff\xff".to_vec()]);
    let values: Vec<Vec<u8>> = backend.scan(Keyspace::Versions, b"b", b"b").map(|e| e.unwrap().1).collect();
    assert_eq!(values, vec![b"b".to_vec()]);
    // More entries than any internal page size, in order.
    let mut batch = Batch::new();
    for n in 0u32..1000 {
        batch.put(Keyspace::Chunks, n.to_be_bytes().to_vec(), Vec::new());
    }
    backend.commit(&batch, Durability::Buffered).unwrap();
    let scanned = keys(&*backend, Keyspace::Chunks, b"", b"");
    assert_eq!(scanned.len(), 1000);
    assert!(scanned.windows(2).all(|w| w[0] < w[1]));
}

fn keyspaces_are_separate(open: Open<'_>, dir: &Path) {
    let backend = open(dir);
    for (n, space) in Keyspace::ALL.iter().enumerate() {
        put(&*backend, *space, b"same", &[n as u8]);
    }
    for (n, space) in Keyspace::ALL.iter().enumerate() {
        assert_eq!(backend.get(*space, b"same").unwrap(), Some(vec![n as u8]));
        assert_eq!(keys(&*backend, *space, b"", b"").len(), 1);
    }
}

fn concurrent_commits_all_land(open: Open<'_>, dir: &Path) {
    let backend = open(dir);
    std::thread::scope(|scope| {
        for thread in 0u8..8 {
            let backend = &backend;
            scope.spawn(move || {
                for n in 0u8..50 {
                    put(&**backend, Keyspace::Ledger, &[thread, n], &[n]);
                }
            });
        }
    });
    assert_eq!(keys(&*backend, Keyspace::Ledger, b"", b"").len(), 400);
}

fn data_survives_reopen(open: Open<'_>, dir: &Path) {
    let backend = open(dir);
    put(&*backend, Keyspace::Buckets, b"durable", b"yes");
    drop(backend);
    let backend = open(dir);
    assert_eq!(backend.get(Keyspace::Buckets, b"durable").unwrap(), Some(b"yes".to_vec()));
}

/// `Chunks` values of every size an engine might store differently (a
/// RocksDB blob, a value segment), overwritten across those sizes, deleted,
/// written concurrently, scanned and reopened, read back exactly.
fn chunk_values_of_any_size(open: Open<'_>, dir: &Path) {
    let value = |seed: usize, size: usize| -> Vec<u8> { (0..size).map(|i| (i * 7 + seed) as u8).collect() };
    let key = |n: u8| vec![b'k', n];
    let sizes = [0, 1, 4095, 4096, 16383, 16384, 65536, 300_000];
    let mut expected = std::collections::BTreeMap::new();
    let backend = open(dir);
    let mut batch = Batch::new();
    for (n, size) in sizes.iter().enumerate() {
        batch.put(Keyspace::Chunks, key(n as u8), value(n, *size));
        expected.insert(key(n as u8), value(n, *size));
    }
    backend.commit(&batch, Durability::Synced).unwrap();
    let mut batch = Batch::new();
    let changes: [(u8, Option<Vec<u8>>); 8] = [
        (6, Some(value(60, 10))),
        (1, Some(value(11, 70_000))),
        (7, Some(value(70, 20_000))),
        (7, Some(value(71, 30_000))),
        (5, None),
        (2, None),
        (8, Some(value(80, 50_000))),
        (8, None),
    ];
    for (n, change) in changes {
        match change {
            Some(v) => {
                batch.put(Keyspace::Chunks, key(n), v.clone());
                expected.insert(key(n), v);
            }
            None => {
                batch.delete(Keyspace::Chunks, key(n));
                expected.remove(&key(n));
            }
        }
    }
    backend.commit(&batch, Durability::Buffered).unwrap();
    put(&*backend, Keyspace::Meta, b"sync", b"");
    std::thread::scope(|scope| {
        for thread in 0u8..4 {
            let backend = &backend;
            scope.spawn(move || {
                for n in 0..10u8 {
                    let mut batch = Batch::new();
                    batch.put(Keyspace::Chunks, vec![b'c', thread, n], value(usize::from(n), 17_000 + usize::from(n)));
                    let durability = if n % 2 == 0 { Durability::Synced } else { Durability::Buffered };
                    backend.commit(&batch, durability).unwrap();
                }
            });
        }
    });
    put(&*backend, Keyspace::Meta, b"sync", b"");
    for thread in 0u8..4 {
        for n in 0..10u8 {
            expected.insert(vec![b'c', thread, n], value(usize::from(n), 17_000 + usize::from(n)));
        }
    }
    let check = |backend: &dyn Backend| {
        for (k, v) in &expected {
            assert_eq!(backend.get(Keyspace::Chunks, k).unwrap().as_ref(), Some(v), "key {k:?}");
        }
        for gone in [key(2), key(5), key(8)] {
            assert_eq!(backend.get(Keyspace::Chunks, &gone).unwrap(), None);
        }
        let all: Vec<(Vec<u8>, Vec<u8>)> = backend.scan(Keyspace::Chunks, b"", b"").map(Result::unwrap).collect();
        let want: Vec<(Vec<u8>, Vec<u8>)> = expected.clone().into_iter().collect();
        assert!(all == want, "a scan returns every value once, in key order");
        let from: Vec<Vec<u8>> = keys(backend, Keyspace::Chunks, &key(4), b"k");
        assert_eq!(from, vec![key(4), key(6), key(7)]);
    };
    check(&*backend);
    drop(backend);
    let backend = open(dir);
    check(&*backend);
    let mut batch = Batch::new();
    for k in expected.keys() {
        batch.delete(Keyspace::Chunks, k.clone());
    }
    backend.commit(&batch, Durability::Synced).unwrap();
    assert!(keys(&*backend, Keyspace::Chunks, b"", b"").is_empty());
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().expect("runtime")
}

fn writer() -> Actor {
    Actor { access_key: "WBTESTWRITER000000".to_owned(), role: Role::Writer }
}

fn open_store(backend: Arc<dyn Backend>, clock: &Arc<ManualClock>) -> Store {
    let clock: Arc<dyn wormbox_model::Clock> = clock.clone();
    Store::open(backend, clock, StoreOptions { max_object_bytes: 64 << 20, ..StoreOptions::default() })
        .expect("store opens")
}

fn store_versioning_survives_reopen(open: Open<'_>, dir: &Path) {
    let rt = runtime();
    let clock = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
    let bucket = BucketName::new("records").unwrap();
    let key = ObjectKey::new("a\0b/c").unwrap();
    let actor = writer();
    let store = open_store(open(dir), &clock);
    let (v1, v2, marker) = rt.block_on(async {
        store.create_bucket(&actor, bucket.clone()).await.unwrap();
        store.set_versioning(&actor, bucket.clone(), VersioningState::Enabled).await.unwrap();
        let v1 = store.put_object(&actor, bucket.clone(), key.clone(), NewObject::default(), b"one".to_vec()).await;
        let v2 = store.put_object(&actor, bucket.clone(), key.clone(), NewObject::default(), b"two".to_vec()).await;
        let marker = store.delete_object(&actor, bucket.clone(), key.clone(), None).await.unwrap();
        (v1.unwrap(), v2.unwrap(), marker)
    });
    assert!(v1.id < v2.id);
    let ledger = store.verify_ledger().unwrap();
    drop(store);

    // The clock going back must not produce ids older than stored ones.
    clock.set(Timestamp(1_000_000));
    let store = open_store(open(dir), &clock);
    assert_eq!(store.verify_ledger().unwrap(), ledger);
    assert!(matches!(
        store.head_object(&bucket, &key, None),
        Err(StoreError::LatestIsDeleteMarker { version, .. }) if Some(&version) == marker.version_id.as_ref()
    ));
    let (_, reader) = store.read_object(&bucket, &key, Some(VersionSelector::Id(v1.id))).unwrap();
    assert_eq!(reader.collect::<Result<Vec<_>, _>>().unwrap().concat(), b"one");
    let v3 = rt
        .block_on(store.put_object(&actor, bucket.clone(), key.clone(), NewObject::default(), b"three".to_vec()))
        .unwrap();
    assert!(v3.id > v2.id, "ids keep growing after the clock went back");
    assert_eq!(store.head_object(&bucket, &key, None).unwrap().id, v3.id);
    assert_eq!(store.verify_ledger().unwrap().entries, ledger.entries + 1);
}

fn store_streams_large_objects_in_chunks(open: Open<'_>, dir: &Path) {
    let rt = runtime();
    let clock = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
    let bucket = BucketName::new("large").unwrap();
    let key = ObjectKey::new("big.bin").unwrap();
    let actor = writer();
    let body: Vec<u8> = (0..CHUNK_BYTES * 5 / 2).map(|n| (n % 251) as u8).collect();
    let store = open_store(open(dir), &clock);
    let ack = rt.block_on(async {
        store.create_bucket(&actor, bucket.clone()).await.unwrap();
        let mut upload = store.begin_upload(bucket.clone(), key.clone(), NewObject::default()).unwrap();
        for piece in body.chunks(300_000) {
            upload.write(piece).unwrap();
        }
        upload.finish(&actor).await.unwrap()
    });
    assert_eq!(ack.size, body.len() as u64);
    drop(store);
    clock.advance(Duration::from_secs(1));
    let store = open_store(open(dir), &clock);
    let (info, reader) = store.read_object(&bucket, &key, None).unwrap();
    assert_eq!(info.sha256, ack.sha256);
    let chunks = reader.collect::<Result<Vec<_>, _>>().unwrap();
    assert_eq!(chunks.len(), 3);
    assert!(chunks.iter().all(|c| c.len() <= CHUNK_BYTES));
    assert_eq!(chunks.concat(), body);
    // An abandoned upload leaves no chunks behind.
    let before = keys(store.backend(), Keyspace::Chunks, b"", b"").len();
    let mut upload = store.begin_upload(bucket.clone(), key.clone(), NewObject::default()).unwrap();
    upload.write(&body).unwrap();
    drop(upload);
    // The writer discards it, in queue order: any later answer is a barrier.
    rt.block_on(store.clock_status()).unwrap();
    assert_eq!(keys(store.backend(), Keyspace::Chunks, b"", b"").len(), before);
    assert!(keys(store.backend(), Keyspace::Staging, b"", b"").is_empty());
}
