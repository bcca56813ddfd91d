//! Sync replication end to end: a `mode = "sync"` rule answers a covered
//! write only once the replica holds it, checked with the engine's own S3
//! API the moment the answer arrives; with the replica down, the write is
//! stored locally, the client is told `REPLICA_PENDING` within the rule's
//! `sync_timeout_ms`, and the replica catches up once it is back.
//!
//! The engines pick new ports at each start: the appliance and the test's
//! S3 client reach one through a TCP relay on a fixed loopback port, which
//! follows the engine across a restart.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tonic::Code;
use tonic_types::StatusExt;
use wormbox_model::SystemClock;
use wormbox_proto::{ArchiveClient, v1};
use wormbox_replica::{Credentials, EntryKind, S3Client, S3Config, layout};
use wormbox_server::config::ReplicationConfig;
use wormbox_test_utils::TestAppliance;
use wormbox_test_utils::s3_targets::S3Target;

use super::{delete, get, put, reason};

/// Forwards every connection to the engine's current S3 port.
struct Relay {
    addr: SocketAddr,
    upstream: Arc<Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

fn host_port(endpoint: &str) -> String {
    endpoint.strip_prefix("http://").unwrap().trim_end_matches('/').to_owned()
}

impl Relay {
    async fn to(endpoint: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = Arc::new(Mutex::new(host_port(endpoint)));
        let current = Arc::clone(&upstream);
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = current.lock().unwrap().clone();
                tokio::spawn(async move {
                    // An engine that is down: the connection is closed, as
                    // a refused one would be.
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay { addr, upstream, task }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn point_at(&self, endpoint: &str) {
        *self.upstream.lock().unwrap() = host_port(endpoint);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn client(target: &S3Target, endpoint: &str, bucket: &str) -> S3Client {
    let config = S3Config {
        endpoint: endpoint.to_owned(),
        region: "us-east-1".to_owned(),
        bucket: bucket.to_owned(),
        credentials: Credentials::new(target.access.clone(), target.secret.clone()),
        ca_pem: None,
        timeout: Duration::from_secs(60),
    };
    S3Client::new(config, Arc::new(SystemClock)).unwrap()
}

fn rule(endpoint: &str, target_bucket: &str, mode: &str, sync_timeout_ms: u64) -> ReplicationConfig {
    wormbox_test_utils::s3_targets::rule(endpoint, target_bucket, "trade/", mode, sync_timeout_ms)
}

/// An appliance with `rule`, its credential `credential`, and a bucket
/// `records` with Object Lock; returns it with an archive client.
async fn appliance(rule: ReplicationConfig, credential: String) -> (TestAppliance, ArchiveClient) {
    let app = wormbox_test_utils::s3_targets::appliance_with(rule, credential).await.unwrap();
    let mut archive = app.archive().await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: "records".into(), object_lock: true }).await.unwrap();
    (app, archive)
}

/// The replica's version of source version `version_id` of `key`, if it
/// holds one (one look, no waiting).
async fn held(replica: &S3Client, key: &str, version_id: &str) -> Option<String> {
    let page = replica.list_object_versions(Some(key), None, None, 1000).await.unwrap();
    for entry in page.versions().filter(|e| e.key == key) {
        let head = replica.head_object(key, Some(&entry.version_id)).await.unwrap();
        if head.metadata.iter().any(|(n, v)| n == layout::META_VERSION && v == version_id) {
            return Some(entry.version_id.clone());
        }
    }
    None
}

fn records(prefix: &str, count: u64, size: usize) -> Vec<v1::IngestRecord> {
    (0..count)
        .map(|n| v1::IngestRecord {
            sequence: n,
            bucket: "records".into(),
            key: format!("{prefix}{n:05}"),
            data: vec![(n % 251) as u8; size],
            ..Default::default()
        })
        .collect()
}

async fn ingest(archive: &mut ArchiveClient, records: Vec<v1::IngestRecord>) -> Vec<v1::IngestAck> {
    let mut acks = archive.ingest(tokio_stream::iter(records)).await.unwrap().into_inner();
    let mut out = Vec::new();
    while let Some(ack) = acks.message().await.unwrap() {
        out.push(ack);
    }
    out
}

async fn engine(target: &S3Target, command: &str) -> String {
    let (script, dir) = target.script();
    let (script, dir) = (script.to_owned(), dir.to_owned());
    let arg = command.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash").arg(&script).arg(&arg).arg(&dir).output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{command}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn scenario(name: &'static str, restart: bool) {
    let Some(target) = S3Target::start(name) else { return };
    target.bucket("replica", true).await;
    let relay = Relay::to(&target.endpoint).await;
    let replica = client(&target, &relay.endpoint(), "replica");
    // Short where the engine is stopped (the bound is then waited out);
    // RGW's first writes on a fresh one-node cluster can take seconds.
    let timeout_ms = if restart { 1500 } else { 30_000 };
    let credential = format!("{}:{}", target.access, target.secret);
    let (app, mut archive) = appliance(rule(&relay.endpoint(), "replica", "sync", timeout_ms), credential).await;

    // The answer comes once the replica lists the version: looked at once,
    // right after it, with no waiting.
    let first = put(&mut archive, "records", "trade/1.pdf", b"first record").await.unwrap();
    let copy = held(&replica, "trade/1.pdf", &first.version_id).await;
    let copy = copy.unwrap_or_else(|| panic!("{name}: acknowledged before the replica held it"));
    let acks = ingest(&mut archive, records("trade/batch/", 20, 1024)).await;
    for ack in &acks {
        assert_eq!(ack.error, None, "{name}");
        let key = format!("trade/batch/{:05}", ack.sequence);
        assert!(held(&replica, &key, &ack.version_id).await.is_some(), "{name}: {key} acknowledged before its copy");
    }
    // A legal hold reaches the replica version before it is answered.
    let mut compliance = app.compliance().await.unwrap();
    compliance
        .put_object_legal_hold(v1::PutObjectLegalHoldRequest {
            bucket: "records".into(),
            key: "trade/1.pdf".into(),
            version_id: first.version_id.clone(),
            case_id: "SEC-2026-7".into(),
            place: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(replica.get_object_legal_hold("trade/1.pdf", Some(&copy)).await.unwrap(), "{name}: the hold");
    // And a delete marker is the key's newest replica version when answered.
    let marker = delete(&mut archive, "records", "trade/1.pdf", "").await.unwrap();
    assert!(marker.delete_marker);
    let page = replica.list_object_versions(Some("trade/1.pdf"), None, None, 100).await.unwrap();
    let newest = page.entries.iter().find(|e| e.key == "trade/1.pdf" && e.is_latest).unwrap();
    assert_eq!(newest.kind, EntryKind::DeleteMarker, "{name}: {page:?}");

    if !restart {
        return;
    }
    // The engine stops: a covered write is stored, and its client is told
    // so within the bound; a write no sync rule covers is answered at once.
    engine(&target, "stop").await;
    let started = Instant::now();
    let pending = put(&mut archive, "records", "trade/2.pdf", b"second record").await.unwrap_err();
    let waited = started.elapsed();
    assert_eq!((pending.code(), reason(&pending).as_str()), (Code::Unavailable, "REPLICA_PENDING"), "{pending:?}");
    assert!(waited >= Duration::from_millis(timeout_ms), "{name}: answered after {waited:?}");
    assert!(waited < Duration::from_millis(timeout_ms + 3000), "{name}: answered after {waited:?}");
    assert!(pending.message().contains("stored locally"), "{}", pending.message());
    let info = pending.get_details_error_info().unwrap();
    let version = info.metadata["version_id"].clone();
    let (meta, body) = get(&mut archive, "records", "trade/2.pdf", &version).await.unwrap();
    assert_eq!((meta.version_id.as_str(), body.as_slice()), (version.as_str(), &b"second record"[..]));
    let started = Instant::now();
    put(&mut archive, "records", "mail/1.eml", b"not covered").await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(timeout_ms), "{name}: an uncovered write waited");

    // Back (on new ports): the replica catches up on its own.
    engine(&target, "start").await;
    let env = engine(&target, "env").await;
    let endpoint = env.lines().find_map(|l| l.strip_prefix("export AWS_ENDPOINT_URL=")).unwrap();
    relay.point_at(endpoint);
    let deadline = Instant::now() + Duration::from_secs(120);
    while held(&replica, "trade/2.pdf", &version).await.is_none() {
        assert!(Instant::now() < deadline, "{name}: the replica did not catch up");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let third = put(&mut archive, "records", "trade/3.pdf", b"third record").await.unwrap();
    assert!(held(&replica, "trade/3.pdf", &third.version_id).await.is_some(), "{name}: sync again once back");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_rule_answers_once_seaweedfs_holds_the_write_and_says_pending_while_it_is_down() {
    scenario("seaweedfs", true).await;
}

/// RGW here runs on memstore, which does not come back from a stop: the
/// ordering alone is checked on it.
#[tokio::test(flavor = "multi_thread")]
async fn a_sync_rule_answers_once_ceph_rgw_holds_the_write() {
    scenario("rgw", false).await;
}

/// A replica that never answers: every kind of covered write is stored and
/// readable, and answered `REPLICA_PENDING` (Ingest: in the record's ack,
/// with its version id) once the bound passes; nothing else waits.
#[tokio::test(flavor = "multi_thread")]
async fn covered_writes_to_a_replica_that_never_answers_are_stored_and_answered_pending() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let rule = rule(&format!("http://{closed}"), "replica", "sync", 300);
    let (app, mut archive) = appliance(rule, "AK:SECRET".into()).await;

    // While writes wait for the replica, they hold none of the receive
    // budget: a replica that is down cannot starve other writers.
    let waiting = {
        let mut archive = archive.clone();
        tokio::spawn(async move { put(&mut archive, "records", "trade/waiting.pdf", b"waits").await })
    };
    let budget = app.server().receive_budget().clone();
    let store = app.server().app().store().clone();
    let (bucket, key) = (
        wormbox_model::BucketName::new("records").unwrap(),
        wormbox_model::ObjectKey::new("trade/waiting.pdf").unwrap(),
    );
    while store.head_object(&bucket, &key, None).is_err() {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    // Stored: its budget returns at once, not when its 300 ms wait ends.
    let stored = std::time::Instant::now();
    while budget.in_use() != 0 && stored.elapsed() < std::time::Duration::from_millis(150) {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert_eq!(budget.in_use(), 0, "a write waiting for the replica holds no receive budget");
    assert!(!waiting.is_finished(), "and it is still waiting");
    assert_eq!(reason(&waiting.await.unwrap().unwrap_err()), "REPLICA_PENDING");
    let pending = put(&mut archive, "records", "trade/1.pdf", b"kept").await.unwrap_err();
    assert_eq!((pending.code(), reason(&pending).as_str()), (Code::Unavailable, "REPLICA_PENDING"));
    let info = pending.get_details_error_info().unwrap();
    assert_eq!(info.metadata["rule"], "dr");
    let version = info.metadata["version_id"].clone();
    assert_eq!(get(&mut archive, "records", "trade/1.pdf", &version).await.unwrap().1, b"kept");
    let sequence: u64 = info.metadata["ledger_sequence"].parse().unwrap();
    assert!(app.server().app().store().ledger_head().unwrap().0 >= sequence);

    let acks = ingest(&mut archive, records("trade/batch/", 5, 16)).await;
    assert_eq!(acks.len(), 5);
    for ack in &acks {
        assert_eq!(ack.error.as_ref().map(|e| e.reason.as_str()), Some("REPLICA_PENDING"), "{ack:?}");
        assert!(!ack.version_id.is_empty() && ack.ledger_sequence > 0, "a stored record says which: {ack:?}");
        let key = format!("trade/batch/{:05}", ack.sequence);
        let body = get(&mut archive, "records", &key, &ack.version_id).await.unwrap().1;
        assert_eq!(body, vec![(ack.sequence % 251) as u8; 16]);
    }

    let mut compliance = app.compliance().await.unwrap();
    let hold = v1::PutObjectLegalHoldRequest {
        bucket: "records".into(),
        key: "trade/1.pdf".into(),
        version_id: version.clone(),
        case_id: "SEC-2026-9".into(),
        place: true,
        ..Default::default()
    };
    let held = compliance.put_object_legal_hold(hold).await.unwrap_err();
    assert_eq!(reason(&held), "REPLICA_PENDING");
    let head =
        v1::HeadObjectRequest { bucket: "records".into(), key: "trade/1.pdf".into(), version_id: version.clone() };
    let head = archive.head_object(head).await.unwrap().into_inner().version.unwrap();
    assert!(!head.legal_holds.is_empty(), "the hold stands: {head:?}");

    let marker = delete(&mut archive, "records", "trade/1.pdf", "").await.unwrap_err();
    assert_eq!(reason(&marker), "REPLICA_PENDING");
    let latest = get(&mut archive, "records", "trade/1.pdf", "").await.unwrap_err();
    assert_eq!(reason(&latest), "DELETE_MARKER", "the marker stands");
    let many = v1::DeleteObjectsRequest {
        bucket: "records".into(),
        objects: vec![
            v1::ObjectIdentifier { key: "trade/batch/00000".into(), ..Default::default() },
            v1::ObjectIdentifier { key: "trade/batch/00001".into(), ..Default::default() },
        ],
        ..Default::default()
    };
    let markers = archive.delete_objects(many).await.unwrap_err();
    assert_eq!(reason(&markers), "REPLICA_PENDING");
    let gone = get(&mut archive, "records", "trade/batch/00001", "").await.unwrap_err();
    assert_eq!(reason(&gone), "DELETE_MARKER", "the markers stand");

    let started = Instant::now();
    put(&mut archive, "records", "mail/1.eml", b"not covered").await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(300), "an uncovered write does not wait");
}

/// A client that gives up while its write waits for the replica changes
/// nothing: the version is stored, once, and the appliance serves on.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_gives_up_waiting_for_the_replica_changes_nothing() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (_app, mut archive) =
        appliance(rule(&format!("http://{closed}"), "replica", "sync", 60_000), "AK:S".into()).await;
    let mut impatient = archive.clone();
    let gave_up =
        tokio::time::timeout(Duration::from_millis(500), put(&mut impatient, "records", "trade/1.pdf", b"kept")).await;
    assert!(gave_up.is_err(), "the answer waits for the replica");
    drop(impatient);
    let listed = super::versions(&mut archive, "records").await;
    assert_eq!(listed.versions.len(), 1, "stored once: {listed:?}");
    assert_eq!(get(&mut archive, "records", "trade/1.pdf", "").await.unwrap().1, b"kept");
    put(&mut archive, "records", "mail/1.eml", b"serving").await.unwrap();
}

/// A measurement: the time to ingest 5,000 records of 1 KiB with no rule,
/// with an async rule, with an async rule whose replica is down (the rule's
/// cost in the write path without the copying's CPU) and with a sync rule
/// (each at the default concurrency of 8), to SeaweedFS, alternating, in one
/// run: prints each time and the ratios. Real time on a shared machine; run by hand:
/// `cargo test -p wormbox-e2e sync_replication::ingest_rate -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, run by hand"]
async fn ingest_rate_with_a_sync_rule_against_an_async_rule() {
    const RECORDS: u64 = 5000;
    let Some(target) = S3Target::start("seaweedfs") else { return };
    let credential = format!("{}:{}", target.access, target.secret);
    let mut seconds = Vec::new();
    for mode in ["none", "async", "idle", "sync", "none", "async", "idle", "sync"] {
        let bucket = format!("replica-{mode}-{}", seconds.len());
        let (app, mut archive) = if mode == "idle" {
            // An async rule whose replica refuses connections: the rule is
            // there, its replicator waits in back-off and copies nothing.
            appliance(rule("http://127.0.0.1:1", &bucket, "async", 30_000), credential.clone()).await
        } else if mode == "none" {
            let app = TestAppliance::start().await.unwrap();
            let mut archive = app.archive().await.unwrap();
            archive
                .create_bucket(v1::CreateBucketRequest { bucket: "records".into(), object_lock: true })
                .await
                .unwrap();
            (app, archive)
        } else {
            target.bucket(&bucket, true).await;
            appliance(rule(&target.endpoint, &bucket, mode, 30_000), credential.clone()).await
        };
        let started = Instant::now();
        let acks = ingest(&mut archive, records("trade/load/", RECORDS, 1024)).await;
        let took = started.elapsed();
        assert!(acks.iter().all(|a| a.error.is_none()), "{mode}");
        // How long the replica then takes to hold everything.
        let head = app.server().app().store().ledger_head().unwrap().0;
        while !matches!(mode, "none" | "idle") && app.server().app().replication().statuses()[0].cursor < head {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let drained = started.elapsed();
        eprintln!(
            "{mode}: {RECORDS} x 1 KiB ingested in {:.2} s ({:.0} records/s); replica held all after {:.2} s",
            took.as_secs_f64(),
            RECORDS as f64 / took.as_secs_f64(),
            drained.as_secs_f64()
        );
        seconds.push((mode, took.as_secs_f64()));
    }
    let rate = |m: &str| {
        let runs: Vec<f64> = seconds.iter().filter(|(mode, _)| *mode == m).map(|(_, s)| *s).collect();
        runs.len() as f64 * RECORDS as f64 / runs.iter().sum::<f64>()
    };
    eprintln!(
        "ingest rate: none {:.0}/s, async rule {:.0}/s, async rule with its replica down {:.0}/s, sync rule {:.0}/s; \
         async/none {:.2}, idle/none {:.2}, sync/async {:.2}",
        rate("none"),
        rate("async"),
        rate("idle"),
        rate("sync"),
        rate("async") / rate("none"),
        rate("idle") / rate("none"),
        rate("sync") / rate("async")
    );
}

/// A measurement: the replication lag of an async rule (SeaweedFS, default
/// concurrency) while records of 1 KiB arrive at half the rate the replica
/// takes them. First the replicator's drain rate is measured (a burst of
/// 3,000 records, from ingest to the cursor reaching them), then records are
/// sent at half of it for `WORMBOX_LAG_SECONDS` (300), and every 100 ms the
/// lag is sampled: the age of the oldest acknowledged record past the
/// durable cursor (0 when none). Prints p50, p99 and the largest. Real time;
/// run by hand:
/// `cargo test -p wormbox-e2e sync_replication::replication_lag -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, run by hand"]
async fn replication_lag_at_half_the_replicated_rate() {
    let seconds: u64 = std::env::var("WORMBOX_LAG_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let Some(target) = S3Target::start("seaweedfs") else { return };
    target.bucket("replica", true).await;
    let credential = format!("{}:{}", target.access, target.secret);
    let (app, mut archive) = appliance(rule(&target.endpoint, "replica", "async", 30_000), credential).await;
    let cursor = || app.server().app().replication().statuses()[0].cursor;

    let started = Instant::now();
    ingest(&mut archive, records("trade/burst/", 3000, 1024)).await;
    let head = app.server().app().store().ledger_head().unwrap().0;
    while cursor() < head {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drain_rate = 3000.0 / started.elapsed().as_secs_f64();
    let rate = drain_rate / 2.0;
    eprintln!("drain rate {drain_rate:.0} records/s; sending at {rate:.0} records/s for {seconds} s");

    // The records, paced; each ack's ledger sequence with when it came.
    let count = (rate * seconds as f64) as u64;
    let begin = tokio::time::Instant::now();
    let paced = futures::stream::unfold(0u64, move |n| async move {
        if n >= count {
            return None;
        }
        tokio::time::sleep_until(begin + Duration::from_secs_f64(n as f64 / rate)).await;
        let record = v1::IngestRecord {
            sequence: n,
            bucket: "records".into(),
            key: format!("trade/paced/{n:07}"),
            data: vec![(n % 251) as u8; 1024],
            ..Default::default()
        };
        Some((record, n + 1))
    });
    let acked: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let mut stream = archive.ingest(paced).await.unwrap().into_inner();
    let sink = Arc::clone(&acked);
    let reader = tokio::spawn(async move {
        while let Some(ack) = stream.message().await.unwrap() {
            assert!(ack.error.is_none(), "{ack:?}");
            sink.lock().unwrap().push((ack.ledger_sequence, Instant::now()));
        }
    });
    let mut lags = Vec::new();
    let mut oldest = 0;
    while !reader.is_finished() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let through = cursor();
        let acked = acked.lock().unwrap();
        while oldest < acked.len() && acked[oldest].0 <= through {
            oldest += 1;
        }
        lags.push(acked.get(oldest).map_or(0.0, |(_, at)| at.elapsed().as_secs_f64()));
    }
    reader.await.unwrap();
    lags.sort_by(f64::total_cmp);
    let at = |q: f64| lags[((lags.len() - 1) as f64 * q) as usize];
    eprintln!(
        "{count} records over {:.0} s, {} samples: lag p50 {:.3} s, p99 {:.3} s, max {:.3} s",
        begin.elapsed().as_secs_f64(),
        lags.len(),
        at(0.5),
        at(0.99),
        lags.last().unwrap()
    );
}
