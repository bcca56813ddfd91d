//! Criterion benches of the write and read paths through public APIs: store
//! appends of 1 KiB and 64 KiB records on the in-memory and RocksDB
//! backends (64 concurrent callers, so group commit is exercised), verified
//! reads, and the hashing every write pays (SHA-256 of the body, the ledger's
//! chain hash). The load generator (`loadgen`) compares against raw RocksDB.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wormbox_model::{BucketName, Digest, ObjectKey, SystemClock, Timestamp, VersionId, VersioningState};
use wormbox_store::backend::{Backend, MemBackend};
use wormbox_store::ledger::{EntryFormat, GENESIS, LedgerEntry, LedgerOp};
use wormbox_store::{Actor, NewObject, Store, StoreOptions};
use wormbox_store_rocksdb::{RocksBackend, RocksOptions};

const CONCURRENT: usize = 64;

fn open(backend: Arc<dyn Backend>, runtime: &tokio::runtime::Runtime) -> (Store, BucketName) {
    let store = Store::open(backend, Arc::new(SystemClock), StoreOptions::default()).unwrap();
    let bucket = BucketName::new("bench").unwrap();
    runtime.block_on(async {
        store.create_bucket(&Actor::system(), bucket.clone()).await.unwrap();
        store.set_versioning(&Actor::system(), bucket.clone(), VersioningState::Enabled).await.unwrap();
    });
    (store, bucket)
}

fn appends(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let dir = tempfile::Builder::new().prefix("wormbox-bench-").tempdir_in("/var/tmp").unwrap();
    let rocks: Arc<dyn Backend> = Arc::new(RocksBackend::open(dir.path(), &RocksOptions::default()).unwrap());
    let engines = [("mem", open(Arc::new(MemBackend::new()), &runtime)), ("rocksdb", open(rocks, &runtime))];
    for size in [1024usize, 64 << 10] {
        let mut group = c.benchmark_group(format!("store/put_object/{}KiB", size / 1024));
        group.throughput(Throughput::Bytes((size * CONCURRENT) as u64));
        group.sample_size(20);
        let record = vec![0x5Au8; size];
        for (engine, (store, bucket)) in &engines {
            group.bench_function(BenchmarkId::new(*engine, format!("{CONCURRENT}-concurrent")), |b| {
                b.iter(|| {
                    runtime.block_on(async {
                        let mut tasks = Vec::with_capacity(CONCURRENT);
                        for n in 0..CONCURRENT {
                            let (store, bucket, record) = (store.clone(), bucket.clone(), record.clone());
                            let key = ObjectKey::new(&format!("key-{n}")).unwrap();
                            tasks.push(tokio::spawn(async move {
                                store
                                    .put_object(&Actor::system(), bucket, key, NewObject::default(), record)
                                    .await
                                    .unwrap()
                            }));
                        }
                        for task in tasks {
                            task.await.unwrap();
                        }
                    })
                })
            });
        }
        group.finish();
    }

    let (store, bucket) = &engines[0].1;
    let key = ObjectKey::new("key-0").unwrap();
    let mut group = c.benchmark_group("store/read_object/64KiB");
    group.throughput(Throughput::Bytes(64 << 10));
    group.bench_function("mem/latest", |b| {
        b.iter(|| {
            let (_, reader) = store.read_object(bucket, &key, None).unwrap();
            reader.map(|chunk| chunk.unwrap().len()).sum::<usize>()
        })
    });
    group.finish();
}

fn hashing(c: &mut Criterion) {
    let mut group = c.benchmark_group("hashing");
    for size in [1024usize, 64 << 10] {
        let data = vec![7u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("sha256", size), |b| {
            b.iter(|| ring::digest::digest(&ring::digest::SHA256, std::hint::black_box(&data)))
        });
    }
    let entry = LedgerEntry {
        format: EntryFormat::CURRENT,
        sequence: 1_000_000,
        time: Timestamp(1_795_737_600_000_000),
        op: LedgerOp::VersionWritten,
        principal: "WBAAAAAAAAAAAAAAAAAA".to_owned(),
        bucket: "records".to_owned(),
        key: "trades/2026/11/27/000123.json".to_owned(),
        version: Some(VersionId::from_parts(1_795_737_600_000_000, 7)),
        sha256: Some(Digest([9; 32])),
        record_sha256: Some(Digest([0xab; 32])),
        lock_sha256: None,
        detail: "size=1024".to_owned(),
    };
    group.throughput(Throughput::Elements(1));
    group.bench_function("ledger/chain_hash", |b| b.iter(|| std::hint::black_box(&entry).chain_hash(&GENESIS)));
    group.finish();
}

criterion_group!(benches, appends, hashing);
criterion_main!(benches);
