//! A measurement, run by hand (`cargo test -p wormbox-replica --test
//! throughput -- --ignored --nocapture --test-threads 1`): the replicator
//! copying small versions to a real engine, against a plain S3 client
//! writing the same objects with the same headers at the same concurrency
//! (1, then 8 requests at a time), in the same run. It prints both rates and their ratio; the issue asks the
//! replicator for at least 80 % of the plain client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use wormbox_model::{BucketName, Clock, ManualClock, ObjectKey, Role, Timestamp};
use wormbox_replica::{LockMode, PutObject, Replicator, Rule};
use wormbox_store::backend::MemBackend;
use wormbox_store::evidence::{Ed25519Signer, Signer};
use wormbox_store::retention::{Retention, RetentionMode};
use wormbox_store::{Actor, NewObject, Store, StoreOptions};
use wormbox_test_utils::s3_targets::S3Target;

const VERSIONS: usize = 1000;
const SIZE: usize = 1024;

fn engine_run(engine: &'static str) {
    let Some(target) = S3Target::start(engine) else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let body = vec![b'x'; SIZE];
        // Retention well in the engine's future (it judges by real time).
        let until = Timestamp(wormbox_model::SystemClock.now().0 + 400 * 86_400_000_000);

        // An archive holding the versions the replicator copies.
        let clock = Arc::new(ManualClock::new(Timestamp(wormbox_model::SystemClock.now().0)));
        let (signer, _) = Ed25519Signer::generate().unwrap();
        let public_key = signer.public_key().to_vec();
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let options = StoreOptions { checkpoint_every: u64::MAX, ..StoreOptions::default() };
        let store = Store::open_signed(Arc::new(MemBackend::new()), dyn_clock, options, Some(Arc::new(signer))).unwrap();
        let writer = Actor { access_key: "WBWRITER".into(), role: Role::Writer };
        let bucket = BucketName::new("records").unwrap();
        store.create_bucket_with_lock(&writer, bucket.clone(), true).await.unwrap();
        for n in 0..VERSIONS {
            clock.advance(Duration::from_micros(1));
            let retention = Some(Retention { mode: RetentionMode::Compliance, until });
            let object = NewObject { retention, ..NewObject::default() };
            let key = ObjectKey::new(&format!("k/{n:05}")).unwrap();
            store.put_object(&writer, bucket.clone(), key, object, body.clone()).await.unwrap();
        }

        for concurrency in [1, 8, 1, 8] {
            // The plain client: the same objects, headers and concurrency.
            let plain = target.bucket(&format!("plain-{concurrency}-{}", uniq()), true).await;
            let replica = format!("replica-{concurrency}-{}", uniq());
            let warm = target.bucket(&replica, true).await;
            // A new bucket's first writes make the engine allocate its
            // storage (SeaweedFS grows volumes): not what is measured.
            for client in [&plain, &warm] {
                futures::stream::iter(0..32)
                    .map(|n| {
                        let put = PutObject::new(SIZE as u64, sha256(&body));
                        let once = futures::stream::once(std::future::ready(Ok::<_, std::io::Error>(Bytes::from(
                            body.clone(),
                        ))));
                        async move { client.put_object(&format!("warm/{n}"), once, put).await.unwrap() }
                    })
                    .buffer_unordered(8)
                    .collect::<Vec<_>>()
                    .await;
            }
            let (started, cpu) = (Instant::now(), Cpu::now());
            futures::stream::iter(0..VERSIONS)
                .map(|n| {
                    let (plain, body) = (&plain, &body);
                    async move {
                        let put = PutObject {
                            metadata: vec![
                                ("wormbox-version-id".into(), format!("{n}")),
                                ("wormbox-ledger-sequence".into(), format!("{n}")),
                            ],
                            lock: Some((LockMode::Compliance, until)),
                            checksum: true,
                            ..PutObject::new(SIZE as u64, sha256(body))
                        };
                        let once = futures::stream::once(std::future::ready(Ok::<_, std::io::Error>(Bytes::from(
                            body.clone(),
                        ))));
                        plain.put_object(&format!("k/{n:05}"), once, put).await.unwrap();
                    }
                })
                .buffer_unordered(concurrency)
                .collect::<Vec<()>>()
                .await;
            let plain_secs = started.elapsed().as_secs_f64();
            let plain_cpu = cpu.since();

            // The replicator at the same concurrency, to a bucket of its own.
            let rule = Rule {
                name: format!("bench-{concurrency}-{}", uniq()),
                bucket: bucket.clone(),
                prefix: String::new(),
                mode: wormbox_replica::Mode::Async,
                minimum_retention: None,
                replicate_purges: false,
                evidence_retention: Duration::from_secs(86_400),
                concurrency,
            };
            let mut replicator =
                Replicator::new(store.clone(), rule, target.client(&replica), public_key.clone()).unwrap();
            replicator.check_target().await.unwrap();
            let (started, cpu) = (Instant::now(), Cpu::now());
            replicator.catch_up().await.unwrap();
            let replica_secs = started.elapsed().as_secs_f64();
            let replica_cpu = cpu.since();

            let plain_rate = VERSIONS as f64 / plain_secs;
            let replica_rate = VERSIONS as f64 / replica_secs;
            println!(
                "{engine}: {VERSIONS} x {SIZE} B, concurrency {concurrency}: plain S3 client {plain_rate:.0}/s, replicator {replica_rate:.0}/s, ratio {:.2}; \
                 this process's CPU per object {:.2} ms vs {:.2} ms, machine busy {:.0} % vs {:.0} %",
                replica_rate / plain_rate,
                plain_cpu.0 * 1000.0 / VERSIONS as f64,
                replica_cpu.0 * 1000.0 / VERSIONS as f64,
                plain_cpu.1 * 100.0,
                replica_cpu.1 * 100.0,
            );
        }
    });
}

/// A unique suffix (the time in microseconds), so repeated rounds use
/// fresh buckets and rules.
fn uniq() -> u128 {
    wormbox_model::SystemClock.now().0 as u128
}

/// This process's CPU time and the machine's busy and total ticks (from
/// `/proc`), to tell what a phase cost in CPU and whether the machine was
/// saturated.
struct Cpu {
    process: f64,
    busy: u64,
    total: u64,
}

impl Cpu {
    fn now() -> Cpu {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
        let fields: Vec<u64> = after.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
        // utime and stime, fields 14 and 15 of the whole line, in ticks of 1/100 s.
        let process = fields.get(11).zip(fields.get(12)).map_or(0.0, |(u, s)| (u + s) as f64 / 100.0);
        let machine = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let ticks: Vec<u64> =
            machine.lines().next().unwrap_or("").split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
        let total = ticks.iter().sum();
        let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
        Cpu { process, busy: total - idle, total }
    }

    /// CPU seconds of this process, and the machine's busy share, since `self`.
    fn since(&self) -> (f64, f64) {
        let now = Cpu::now();
        let share = (now.busy - self.busy) as f64 / (now.total - self.total).max(1) as f64;
        (now.process - self.process, share)
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

#[test]
#[ignore = "a measurement, run by hand"]
fn replication_against_a_plain_client_on_seaweedfs() {
    engine_run("seaweedfs");
}

#[test]
#[ignore = "a measurement, run by hand"]
fn replication_against_a_plain_client_on_ceph_rgw() {
    engine_run("rgw");
}
