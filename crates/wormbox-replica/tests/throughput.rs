//! A measurement, run by hand (`cargo test -p wormbox-replica --test
//! throughput -- --ignored --nocapture`): the replicator copying N small
//! versions to a real engine, against a plain S3 client writing the same
//! objects with the same headers at the same concurrency (one at a time), in
//! the same run. It prints both rates and their ratio; the issue asks the
//! replicator for at least 80 % of the plain client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wormbox_model::{BucketName, Clock, ManualClock, ObjectKey, Role, Timestamp};
use wormbox_replica::{LockMode, PutObject, Replicator, Rule};
use wormbox_store::backend::MemBackend;
use wormbox_store::evidence::{Ed25519Signer, Signer};
use wormbox_store::retention::{Retention, RetentionMode};
use wormbox_store::{Actor, NewObject, Store, StoreOptions};
use wormbox_test_utils::s3_targets::S3Target;

const VERSIONS: usize = 500;
const SIZE: usize = 1024;

fn engine_run(engine: &'static str) {
    let Some(target) = S3Target::start(engine) else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let body = vec![b'x'; SIZE];
        // Retention well in the engine's future (it judges by real time).
        let until = Timestamp(wormbox_model::SystemClock.now().0 + 400 * 86_400_000_000);

        // The plain client: the same objects, headers and concurrency.
        let plain = target.bucket("plain", true).await;
        let started = Instant::now();
        for n in 0..VERSIONS {
            let put = PutObject {
                metadata: vec![("wormbox-version-id".into(), format!("{n}")), ("wormbox-ledger-sequence".into(), format!("{n}"))],
                lock: Some((LockMode::Compliance, until)),
                checksum: true,
                ..PutObject::new(SIZE as u64, sha256(&body))
            };
            let once = futures::stream::once(std::future::ready(Ok::<_, std::io::Error>(Bytes::from(body.clone()))));
            plain.put_object(&format!("k/{n:05}"), once, put).await.unwrap();
        }
        let plain_secs = started.elapsed().as_secs_f64();

        // The replicator, from an archive holding the same versions.
        target.bucket("replica", true).await;
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
        let rule = Rule {
            name: "bench".into(),
            bucket,
            prefix: String::new(),
            mode: wormbox_replica::Mode::Async,
            minimum_retention: None,
            replicate_purges: false,
            evidence_retention: Duration::from_secs(86_400),
        };
        let mut replicator = Replicator::new(store.clone(), rule, target.client("replica"), public_key).unwrap();
        replicator.check_target().await.unwrap();
        let started = Instant::now();
        replicator.catch_up().await.unwrap();
        let replica_secs = started.elapsed().as_secs_f64();

        let plain_rate = VERSIONS as f64 / plain_secs;
        let replica_rate = VERSIONS as f64 / replica_secs;
        println!(
            "{engine}: {VERSIONS} x {SIZE} B, one at a time: plain S3 client {plain_rate:.0}/s, replicator {replica_rate:.0}/s, ratio {:.2}",
            replica_rate / plain_rate
        );
    });
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
