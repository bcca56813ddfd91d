//! Store write and read paths on the in-memory backend, through the public
//! API: group-commit puts of 1 KiB records and verified reads. The RocksDB
//! comparison against raw RocksDB is the hot-path issue's work.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wormbox_model::{BucketName, ObjectKey, SystemClock, VersioningState};
use wormbox_store::backend::MemBackend;
use wormbox_store::{Actor, NewObject, Store, StoreOptions};

fn store_benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let store = Store::open(
        Arc::new(MemBackend::new()),
        Arc::new(SystemClock),
        StoreOptions { max_object_bytes: 1 << 30, ..StoreOptions::default() },
    )
    .unwrap();
    let actor = Actor::system();
    let bucket = BucketName::new("bench").unwrap();
    runtime.block_on(async {
        store.create_bucket(&actor, bucket.clone()).await.unwrap();
        store.set_versioning(&actor, bucket.clone(), VersioningState::Enabled).await.unwrap();
    });
    let record = vec![0x5Au8; 1024];
    let key = ObjectKey::new("bench/key").unwrap();

    let mut group = c.benchmark_group("store/put_object/1KiB");
    group.throughput(Throughput::Elements(64));
    group.bench_function("mem/64-concurrent", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut tasks = Vec::with_capacity(64);
                for _ in 0..64 {
                    let (store, actor, bucket, key, record) =
                        (store.clone(), actor.clone(), bucket.clone(), key.clone(), record.clone());
                    tasks.push(tokio::spawn(async move {
                        store.put_object(&actor, bucket, key, NewObject::default(), record).await.unwrap()
                    }));
                }
                for task in tasks {
                    task.await.unwrap();
                }
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("store/read_object/1KiB");
    group.throughput(Throughput::Bytes(1024));
    group.bench_function("mem/latest", |b| {
        b.iter(|| {
            let (_, reader) = store.read_object(&bucket, &key, None).unwrap();
            reader.map(|chunk| chunk.unwrap().len()).sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, store_benches);
criterion_main!(benches);
