//! Attacks: clients that cancel or reset their calls. Whatever the point of
//! the cancel, every version the archive lists is whole (its bytes hash to
//! what was sent), every acknowledged version stays readable, and the
//! archive verifies, online and offline, before and after a restart: a
//! publish already queued belongs to the writer, not the client, and a body
//! is published only when the client said it ended (PutObject's end message).
//!
//! The cause of the cut-off versions (issue 16, finding 1's second half):
//! dropping a call mid-body makes hyper's client reset the stream with
//! `RST_STREAM(CANCEL)`, which tonic's server decoder reads as the clean end
//! of a request stream; a `RST_STREAM(NO_ERROR)` is read so by hyper itself.
//! The handler then published the whole messages that had arrived.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use prost::Message as _;
use tokio::sync::oneshot;
use tonic::codegen::{Bytes, http};
use wormbox_proto::{ArchiveClient, v1};
use wormbox_server::evidence::PUBLIC_KEY_FILE;
use wormbox_store::Store;
use wormbox_store::evidence::VerifyOptions;
use wormbox_test_utils::{TestAppliance, tamper};

use super::storage::{backup_when_free, staged, wait_until};
use crate::e2e::{create_bucket, get, put, put_messages, sha256, versions};

/// Runs of the attack, each a fresh upload: bounded, at 3 MiB apiece.
const RUNS: usize = 30;
/// Three whole chunks and a piece, so the server also writes a chunk in `finish`.
const BODY_BYTES: usize = (3 << 20) + 4099;
/// Most turns of the runtime spent waiting for a cancel point; past it the
/// run lets its call finish.
const SPIN_LIMIT: u32 = 200_000;

/// Where a run drops its call, once the transport took the last message.
#[derive(Clone, Copy, Debug)]
enum Cancel {
    /// As soon as the server's write queue holds a request: the publish is
    /// queued and not yet answered, the window a cancelled client used to
    /// turn into a version whose chunks were discarded.
    WhenQueued,
    /// After this many turns of the runtime: while the last bytes travel,
    /// chunks are written or the digest is checked.
    AfterTurns(u32),
}

fn cancel_for(run: usize) -> Cancel {
    if run.is_multiple_of(3) { Cancel::WhenQueued } else { Cancel::AfterTurns(u32::try_from(run).unwrap_or(0) * 40) }
}

fn body(run: usize) -> Vec<u8> {
    (0..BODY_BYTES).map(|n| (n.wrapping_mul(31).wrapping_add(run * 7) % 251) as u8).collect()
}

/// The request stream of a put, which says on `ended` when the transport has
/// taken its last message: the earliest point this attack cancels at.
fn signalling_end(
    messages: Vec<v1::PutObjectRequest>,
    ended: oneshot::Sender<()>,
) -> impl futures::stream::Stream<Item = v1::PutObjectRequest> + Send + 'static {
    futures::stream::unfold((messages.into_iter(), Some(ended)), |(mut rest, mut ended)| async move {
        match rest.next() {
            Some(message) => Some((message, (rest, ended))),
            None => {
                if let Some(ended) = ended.take() {
                    let _ = ended.send(());
                }
                None
            }
        }
    })
}

/// Completes at the run's cancel point. The server runs beside this test
/// with no clock to advance, so it waits by turns of the runtime, bounded.
async fn cancel_point(cancel: Cancel, ended: oneshot::Receiver<()>, store: &Store) {
    // A call that failed before its last message drops the sender: go on.
    let _ = ended.await;
    match cancel {
        Cancel::WhenQueued => {
            // The server cannot have queued this publish yet: it sees the
            // stream's end only after the transport took the last message.
            let idle = store.queue_available();
            for _ in 0..SPIN_LIMIT {
                if store.queue_available() < idle {
                    return;
                }
                tokio::task::yield_now().await;
            }
            std::future::pending::<()>().await;
        }
        Cancel::AfterTurns(turns) => {
            for _ in 0..turns {
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Checks every version listed in `bucket` against what was sent under its
/// key; returns how many there are.
async fn check_every_version(client: &mut ArchiveClient, bucket: &str, sent: &HashMap<String, Vec<u8>>) -> usize {
    let listed = versions(client, bucket).await;
    assert!(!listed.is_truncated, "one page holds every run");
    assert!(listed.delete_markers.is_empty());
    for version in &listed.versions {
        let expected = sent.get(&version.key).unwrap_or_else(|| panic!("{} was never sent", version.key));
        assert_eq!(&version.sha256, expected, "{} {} is listed with another digest", version.key, version.version_id);
        let (meta, bytes) = get(client, bucket, &version.key, &version.version_id).await.unwrap_or_else(|status| {
            panic!("{} {} is listed but unreadable: {status}", version.key, version.version_id)
        });
        assert_eq!(meta.size, bytes.len() as u64);
        assert_eq!(&sha256(&bytes), expected, "{} {} is not what was sent", version.key, version.version_id);
    }
    listed.versions.len()
}

/// Checks that every acknowledged version is listed and reads back whole.
async fn check_acknowledged(client: &mut ArchiveClient, bucket: &str, acknowledged: &[Acknowledged]) {
    for ack in acknowledged {
        let (_, bytes) = get(client, bucket, &ack.key, &ack.version_id)
            .await
            .unwrap_or_else(|status| panic!("acknowledged {} {} is unreadable: {status}", ack.key, ack.version_id));
        assert_eq!(sha256(&bytes), ack.sha256, "acknowledged {} {} is not what was sent", ack.key, ack.version_id);
    }
}

async fn verify(appliance: &TestAppliance) {
    let mut compliance = appliance.compliance().await.unwrap();
    let report = compliance.verify_integrity(v1::VerifyIntegrityRequest::default()).await.unwrap().into_inner();
    assert!(report.ok, "{report:?}");
}

/// `wormbox verify --data-dir` on the stopped appliance: the same check, on
/// its files, with the public key it wrote beside them.
fn verify_offline(appliance: &TestAppliance) {
    let key = std::fs::read_to_string(appliance.data_dir().join(PUBLIC_KEY_FILE)).unwrap();
    let options = VerifyOptions { public_key: Some(hex::decode(key.trim()).unwrap()), ..Default::default() };
    let backend = tamper::read_only(&appliance.data_dir().join("db")).unwrap();
    let report = wormbox_store::evidence::verify(&*backend, options).unwrap();
    assert!(report.is_ok(), "{}", report.summary());
    assert!(report.versions_checked > 0 && report.checkpoints_unchecked == 0, "{}", report.summary());
}

/// A version the server acknowledged, with the digest of what was sent.
#[derive(Clone, Debug)]
struct Acknowledged {
    key: String,
    version_id: String,
    sha256: Vec<u8>,
}

/// Finding 1, second half: a run cancelled after its last message was taken
/// by the transport was listed with a digest other than that of the bytes
/// sent (every run of the test before the fix: the first run cancelled by
/// turns, run 1, already did). The client's drop reset the stream, which the
/// server read as the end of the body and published what had arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_cancelled_after_its_last_message_leaves_only_whole_versions() {
    let mut appliance = TestAppliance::start().await.unwrap();
    let mut client = appliance.archive().await.unwrap();
    create_bucket(&mut client, "cancel", v1::VersioningStatus::Enabled).await;
    let store = appliance.server().app().store();
    let mut sent = HashMap::new();
    let mut acknowledged = Vec::new();
    let mut cancelled = 0;
    for run in 0..RUNS {
        let key = format!("run/{run:02}");
        let data = body(run);
        sent.insert(key.clone(), sha256(&data));
        let (ended_tx, ended) = oneshot::channel();
        let request = signalling_end(put_messages("cancel", &key, &data, Vec::new()), ended_tx);
        tokio::select! {
            res = client.put_object(request) => {
                let ack = res.unwrap_or_else(|status| panic!("run {run} failed uncancelled: {status}")).into_inner();
                acknowledged.push(Acknowledged { key, version_id: ack.version_id, sha256: sha256(&data) });
            }
            () = cancel_point(cancel_for(run), ended, store) => cancelled += 1,
        }
    }
    assert!(cancelled > 0, "no run was cancelled: the attack tried nothing");

    // Answers come in queue order: once this put is acknowledged, every
    // publish a cancelled call had queued is committed or refused.
    let barrier = b"barrier".to_vec();
    sent.insert("barrier".to_owned(), sha256(&barrier));
    put(&mut client, "cancel", "barrier", &barrier).await.unwrap();
    let before = check_every_version(&mut client, "cancel", &sent).await;
    check_acknowledged(&mut client, "cancel", &acknowledged).await;
    verify(&appliance).await;

    // A restart discards what is still staged and nothing that is published.
    appliance.restart().await.unwrap();
    let mut client = appliance.archive().await.unwrap();
    assert!(check_every_version(&mut client, "cancel", &sent).await >= before, "a restart lost a version");
    check_acknowledged(&mut client, "cancel", &acknowledged).await;
    verify(&appliance).await;
}

/// One gRPC message as it travels: a compression flag, its length, its bytes.
fn grpc_frame(message: &v1::PutObjectRequest) -> Bytes {
    let encoded = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(encoded.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&encoded);
    Bytes::from(frame)
}

/// Sends `messages` as a PutObject on a raw HTTP/2 stream, then resets the
/// stream with `reason` instead of ending it, as a dropped call, a proxy or
/// a crafted client does.
async fn put_then_reset(appliance: &TestAppliance, messages: &[v1::PutObjectRequest], reason: h2::Reason) {
    let addr = appliance.server().addr;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let mut ping_pong = connection.ping_pong().expect("a new connection hands out its ping");
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::post(format!("http://{addr}/wormbox.v1.Archive/PutObject"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {}", appliance.admin_credential()))
        .body(())
        .unwrap();
    let (response, mut stream) = client.send_request(request, false).unwrap();
    for message in messages {
        stream.send_data(grpc_frame(message), false).unwrap();
    }
    // The server reads a connection in order: once a ping sent after the
    // frames (the second: the first may leave beside them) is answered, the
    // server holds them all, and a reset cannot discard any in transit.
    for _ in 0..2 {
        ping_pong.ping(h2::Ping::opaque()).await.unwrap();
    }
    stream.send_reset(reason);
    ping_pong.ping(h2::Ping::opaque()).await.unwrap();
    drop((response, stream, client, ping_pong));
    connection.abort();
}

/// Finding 1, second half, without timing: whole messages of a body, then a
/// reset. `CANCEL` (what a cancelled client sends) reached the handler as the
/// end of the stream through tonic and published the messages that had
/// arrived; now a reset is an error. `NO_ERROR` is read as the end of the
/// body by hyper itself: a client that declared its body (here the header's
/// digest) still gets nothing cut off stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_reset_after_whole_messages_publishes_nothing() {
    let appliance = TestAppliance::start().await.unwrap();
    let mut client = appliance.archive().await.unwrap();
    create_bucket(&mut client, "reset", v1::VersioningStatus::Enabled).await;
    // Two whole data messages of a longer body, well inside the first
    // HTTP/2 window, so the server receives every frame before the reset.
    let data: Vec<u8> = (0..48_000u32).map(|n| (n % 251) as u8).collect();
    let first = v1::put_object_request::Part::Data(data[..20_000].to_vec());
    let second = v1::put_object_request::Part::Data(data[20_000..40_000].to_vec());
    for (reason, declared) in [(h2::Reason::CANCEL, Vec::new()), (h2::Reason::NO_ERROR, sha256(&data))] {
        let header = put_messages("reset", "cut", &data, declared).remove(0);
        let sent = [
            header,
            v1::PutObjectRequest { part: Some(first.clone()) },
            v1::PutObjectRequest { part: Some(second.clone()) },
        ];
        put_then_reset(&appliance, &sent, reason).await;
        // Answers come in queue order: a publish the reset queued is
        // committed by the time this one is acknowledged.
        put(&mut client, "reset", "barrier", b"barrier").await.unwrap();
        let listed = versions(&mut client, "reset").await;
        let cut: Vec<u64> = listed.versions.iter().filter(|v| v.key == "cut").map(|v| v.size).collect();
        assert!(cut.is_empty(), "a put reset with {reason:?} published a cut-off body of {cut:?} bytes");
    }
    verify(&appliance).await;
}

// ---- fault injection: every streaming call, cancelled at seeded points ----

/// Runs of the fault injection, each one call of a streaming RPC: twenty
/// per RPC.
const FAULT_RUNS: usize = 140;
/// Backups are whole copies of the archive: a few are enough.
const MAX_BACKUP_RUNS: usize = 8;
/// A cancel point never reached.
const NEVER: usize = usize::MAX;

/// SplitMix64: the same seed, the same cancel points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Where a call is dropped: once `messages` messages have moved (taken by
/// the transport from a request stream, or received from a response
/// stream), after `turns` more turns of the runtime. Between the two, the
/// handler is somewhere among its await points: reading the stream, writing
/// chunks, queueing the publish, awaiting the writer, staging a backup.
#[derive(Clone, Copy, Debug)]
struct Point {
    messages: usize,
    turns: u32,
}

impl Point {
    fn draw(rng: &mut Rng, most_messages: usize) -> Point {
        // Turns on a rough log scale: as many points just after a message
        // as far from it.
        let most_turns = [1, 8, 64, 600][rng.below(4)];
        // One call in five runs to its end, so that some of every kind are
        // acknowledged (and big versions are read back in many messages).
        let messages = if rng.below(5) == 0 { NEVER } else { rng.below(most_messages + 1) };
        Point { messages, turns: u32::try_from(rng.below(most_turns)).unwrap_or(0) }
    }

    async fn reached(self, moved: &AtomicUsize) {
        if self.messages == NEVER {
            std::future::pending::<()>().await;
        }
        let mut spins = 0;
        while moved.load(Ordering::Acquire) < self.messages {
            spins += 1;
            if spins > SPIN_LIMIT {
                // Never reached: let the call finish.
                std::future::pending::<()>().await;
            }
            tokio::task::yield_now().await;
        }
        for _ in 0..self.turns {
            tokio::task::yield_now().await;
        }
    }
}

/// Runs `call` until it finishes or `point` is reached, whichever is first;
/// returns whether it was cancelled.
async fn cancelled_at(point: Point, moved: &AtomicUsize, call: impl Future<Output = ()>) -> bool {
    tokio::select! {
        () = call => false,
        () = point.reached(moved) => true,
    }
}

/// A stream that counts the messages the transport takes from it.
fn counted<T: Send + 'static>(
    items: Vec<T>,
    moved: &Arc<AtomicUsize>,
) -> impl futures::stream::Stream<Item = T> + Send + 'static {
    let moved = Arc::clone(moved);
    futures::stream::iter(items).inspect(move |_| {
        moved.fetch_add(1, Ordering::AcqRel);
    })
}

/// Counts a message received and, as a client working on each message
/// would, lets the cancel point be looked at before the next one (the
/// messages of a stream often arrive together, and are decoded without a
/// pause).
async fn received(moved: &AtomicUsize) {
    moved.fetch_add(1, Ordering::AcqRel);
    tokio::task::yield_now().await;
}

/// Bytes that differ by run and position.
fn payload(rng: &mut Rng, len: usize) -> Vec<u8> {
    let salt = rng.next();
    (0..len).map(|n| (salt.wrapping_add(n as u64).wrapping_mul(0x9E37_79B9) >> 24) as u8).collect()
}

/// Records an Ingest or IngestBatch ack of one of `records` (indexed by its
/// sequence), after checking it names the digest of what was sent.
fn acknowledge(acknowledged: &Mutex<Vec<Acknowledged>>, records: &[(String, Vec<u8>)], ack: v1::IngestAck) {
    assert!(ack.error.is_none(), "{ack:?}");
    let (key, data) = &records[usize::try_from(ack.sequence).unwrap()];
    let sha256 = sha256(data);
    assert_eq!(ack.sha256, sha256);
    acknowledged.lock().unwrap().push(Acknowledged { key: key.clone(), version_id: ack.version_id, sha256 });
}

/// What every run shares: the appliance, what was sent under each key, and
/// what was acknowledged.
struct Faults {
    appliance: TestAppliance,
    rng: Rng,
    sent: HashMap<String, Vec<u8>>,
    acknowledged: Arc<Mutex<Vec<Acknowledged>>>,
    cancelled: HashMap<&'static str, usize>,
    backups: usize,
}

impl Faults {
    async fn put_object(&mut self, run: usize) {
        let key = format!("put/{run:03}");
        let len = match self.rng.below(4) {
            0 => self.rng.below(4096),
            1 => (1 << 20) + self.rng.below(4096),
            _ => (2 << 20) + self.rng.below(1 << 20),
        };
        let data = payload(&mut self.rng, len);
        self.sent.insert(key.clone(), sha256(&data));
        let messages = put_messages("faults", &key, &data, Vec::new());
        let point = Point::draw(&mut self.rng, messages.len());
        let moved = Arc::new(AtomicUsize::new(0));
        let mut client = self.appliance.archive().await.unwrap();
        let acknowledged = Arc::clone(&self.acknowledged);
        let request = counted(messages, &moved);
        let call = async move {
            let ack = client.put_object(request).await.expect("an uncancelled put succeeds").into_inner();
            acknowledged.lock().unwrap().push(Acknowledged { key, version_id: ack.version_id, sha256: sha256(&data) });
        };
        self.count("PutObject", cancelled_at(point, &moved, call).await);
    }

    async fn ingest(&mut self, run: usize) {
        let records: Vec<(String, Vec<u8>)> = (0..1 + self.rng.below(8))
            .map(|i| {
                let len = self.rng.below(32 << 10);
                (format!("ingest/{run:03}/{i}"), payload(&mut self.rng, len))
            })
            .collect();
        for (key, data) in &records {
            self.sent.insert(key.clone(), sha256(data));
        }
        let wire: Vec<v1::IngestRecord> = records
            .iter()
            .enumerate()
            .map(|(i, (key, data))| v1::IngestRecord {
                sequence: i as u64,
                bucket: "faults".into(),
                key: key.clone(),
                data: data.clone(),
                ..Default::default()
            })
            .collect();
        // Records taken and acks received both count.
        let point = Point::draw(&mut self.rng, 2 * records.len());
        let moved = Arc::new(AtomicUsize::new(0));
        let mut client = self.appliance.archive().await.unwrap();
        let acknowledged = Arc::clone(&self.acknowledged);
        let request = counted(wire, &moved);
        let call = {
            let moved = Arc::clone(&moved);
            async move {
                let mut acks = client.ingest(request).await.expect("an uncancelled ingest starts").into_inner();
                while let Some(ack) = acks.message().await.expect("an uncancelled ingest answers") {
                    received(&moved).await;
                    acknowledge(&acknowledged, &records, ack);
                }
            }
        };
        self.count("Ingest", cancelled_at(point, &moved, call).await);
    }

    /// Records in one to three IngestBatch messages of one to four records.
    async fn ingest_batch(&mut self, run: usize) {
        let mut messages = Vec::new();
        let mut records: Vec<(String, Vec<u8>)> = Vec::new();
        for m in 0..1 + self.rng.below(3) {
            let mut batch = Vec::new();
            for i in 0..1 + self.rng.below(4) {
                let key = format!("batch/{run:03}/{m}-{i}");
                let len = self.rng.below(16 << 10);
                let data = payload(&mut self.rng, len);
                self.sent.insert(key.clone(), sha256(&data));
                batch.push(v1::IngestRecord {
                    sequence: records.len() as u64,
                    bucket: "faults".into(),
                    key: key.clone(),
                    data: data.clone(),
                    ..Default::default()
                });
                records.push((key, data));
            }
            messages.push(v1::IngestBatchRequest::new(batch));
        }
        // Messages taken and answers received both count.
        let point = Point::draw(&mut self.rng, 2 * messages.len());
        let moved = Arc::new(AtomicUsize::new(0));
        let mut client = self.appliance.archive().await.unwrap();
        let acknowledged = Arc::clone(&self.acknowledged);
        let request = counted(messages, &moved);
        let call = {
            let moved = Arc::clone(&moved);
            async move {
                let mut answers = client.ingest_batch(request).await.expect("an uncancelled batch starts").into_inner();
                while let Some(answer) = answers.message().await.expect("an uncancelled batch answers") {
                    received(&moved).await;
                    for ack in answer.acks {
                        acknowledge(&acknowledged, &records, ack);
                    }
                }
            }
        };
        self.count("IngestBatch", cancelled_at(point, &moved, call).await);
    }

    async fn get_object(&mut self) {
        let Some(target) = ({
            let acknowledged = self.acknowledged.lock().unwrap();
            (!acknowledged.is_empty()).then(|| acknowledged[self.rng.below(acknowledged.len())].clone())
        }) else {
            return;
        };
        let point = Point::draw(&mut self.rng, 5);
        let moved = Arc::new(AtomicUsize::new(0));
        let mut client = self.appliance.archive().await.unwrap();
        let call = {
            let moved = Arc::clone(&moved);
            async move {
                let request = v1::GetObjectRequest {
                    bucket: "faults".into(),
                    key: target.key.clone(),
                    version_id: target.version_id.clone(),
                };
                let mut stream =
                    client.get_object(request).await.expect("an acknowledged version is found").into_inner();
                let mut bytes = Vec::new();
                while let Some(message) = stream.message().await.expect("an acknowledged version reads whole") {
                    received(&moved).await;
                    if let Some(v1::get_object_response::Part::Data(data)) = message.part {
                        bytes.extend_from_slice(&data);
                    }
                }
                assert_eq!(sha256(&bytes), target.sha256, "{} {} read back other bytes", target.key, target.version_id);
            }
        };
        self.count("GetObject", cancelled_at(point, &moved, call).await);
    }

    async fn audit_log(&mut self) {
        let point = Point::draw(&mut self.rng, 24);
        let moved = Arc::new(AtomicUsize::new(0));
        let mut compliance = self.appliance.compliance().await.unwrap();
        let call = {
            let moved = Arc::clone(&moved);
            async move {
                let request = v1::AuditLogRequest::default();
                let mut stream = compliance.audit_log(request).await.expect("the admin may read the log").into_inner();
                while stream.message().await.expect("the log reads whole").is_some() {
                    received(&moved).await;
                }
            }
        };
        self.count("AuditLog", cancelled_at(point, &moved, call).await);
    }

    async fn retention_report(&mut self) {
        let point = Point::draw(&mut self.rng, 12);
        let moved = Arc::new(AtomicUsize::new(0));
        let mut compliance = self.appliance.compliance().await.unwrap();
        let call = {
            let moved = Arc::clone(&moved);
            async move {
                let request = v1::RetentionReportRequest::default();
                let mut stream =
                    compliance.retention_report(request).await.expect("the admin may read the report").into_inner();
                while stream.message().await.expect("the report reads whole").is_some() {
                    received(&moved).await;
                }
            }
        };
        self.count("RetentionReport", cancelled_at(point, &moved, call).await);
    }

    async fn backup(&mut self) {
        if self.backups == MAX_BACKUP_RUNS {
            return;
        }
        self.backups += 1;
        let point = Point::draw(&mut self.rng, 12);
        let moved = Arc::new(AtomicUsize::new(0));
        let appliance = &self.appliance;
        let call = {
            let moved = Arc::clone(&moved);
            async move {
                // The backup a cancelled run left may hold the slot a moment longer.
                let mut stream = backup_when_free(appliance).await;
                let mut manifest = false;
                while let Some(chunk) = stream.message().await.expect("an uncancelled backup streams whole") {
                    received(&moved).await;
                    manifest |= matches!(chunk.part, Some(v1::backup_chunk::Part::ManifestJson(_)));
                }
                assert!(manifest, "an uncancelled backup ends with its manifest");
            }
        };
        let cancelled = cancelled_at(point, &moved, call).await;
        self.count("Backup", cancelled);
    }

    fn count(&mut self, rpc: &'static str, cancelled: bool) {
        *self.cancelled.entry(rpc).or_default() += usize::from(cancelled);
    }
}

/// The cancellation fault injection of issue 16: each run makes one call of
/// a streaming RPC (PutObject, Ingest, IngestBatch, GetObject, AuditLog,
/// RetentionReport, Backup) and drops it at a point drawn from a seeded generator (set
/// `WORMBOX_CANCEL_SEED` to replay or vary). Afterwards every acknowledged
/// version reads back whole, every listed version is whole, no backup copy
/// is left staged and a new backup runs, VerifyIntegrity is clean, the
/// offline verify of the stopped appliance passes, and all of it again
/// after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_streaming_call_cancelled_at_seeded_points_leaves_a_verifying_archive() {
    let started = Instant::now();
    let seed = std::env::var("WORMBOX_CANCEL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5EED_0016);
    eprintln!("cancellation fault injection: WORMBOX_CANCEL_SEED={seed}");
    let appliance = TestAppliance::start().await.unwrap();
    let mut client = appliance.archive().await.unwrap();
    create_bucket(&mut client, "faults", v1::VersioningStatus::Enabled).await;
    let mut faults = Faults {
        appliance,
        rng: Rng(seed),
        sent: HashMap::new(),
        acknowledged: Arc::new(Mutex::new(Vec::new())),
        cancelled: HashMap::new(),
        backups: 0,
    };
    for run in 0..FAULT_RUNS {
        // In turn, so that each RPC meets many cancel points.
        match run % 7 {
            0 => faults.put_object(run).await,
            1 => faults.ingest(run).await,
            2 => faults.ingest_batch(run).await,
            3 => faults.get_object().await,
            4 => faults.audit_log().await,
            5 => faults.retention_report().await,
            _ => faults.backup().await,
        }
    }
    let Faults { mut appliance, sent, acknowledged, cancelled, .. } = faults;
    let acknowledged = acknowledged.lock().unwrap().clone();
    eprintln!("cancelled per RPC: {cancelled:?}; {} versions acknowledged", acknowledged.len());
    for rpc in ["PutObject", "Ingest", "IngestBatch", "GetObject", "AuditLog", "RetentionReport", "Backup"] {
        assert!(cancelled.get(rpc).copied().unwrap_or(0) > 0, "no {rpc} was cancelled: seed {seed} tried nothing");
    }

    // Answers come in queue order: after this put, every publish a
    // cancelled call had queued is committed or refused.
    let mut sent = sent;
    sent.insert("barrier".to_owned(), sha256(b"barrier"));
    put(&mut client, "faults", "barrier", b"barrier").await.unwrap();
    let listed = check_every_version(&mut client, "faults", &sent).await;
    check_acknowledged(&mut client, "faults", &acknowledged).await;
    verify(&appliance).await;
    // A cancelled backup leaves no copy behind, and the next one runs whole.
    wait_until("every cancelled backup's copy is removed", || staged(&appliance) == 0).await;
    let mut backup = backup_when_free(&appliance).await;
    let mut manifest = false;
    while let Some(chunk) = backup.message().await.unwrap() {
        manifest |= matches!(chunk.part, Some(v1::backup_chunk::Part::ManifestJson(_)));
    }
    assert!(manifest, "a backup after the cancelled ones streams to its manifest");
    wait_until("the finished backup's copy is removed", || staged(&appliance) == 0).await;
    drop((client, backup));

    appliance.stop().await.unwrap();
    verify_offline(&appliance);
    appliance.restart().await.unwrap();
    let mut client = appliance.archive().await.unwrap();
    assert_eq!(check_every_version(&mut client, "faults", &sent).await, listed, "a restart changed the versions");
    check_acknowledged(&mut client, "faults", &acknowledged).await;
    verify(&appliance).await;
    assert!(started.elapsed() < Duration::from_secs(60), "bounded: took {:?}", started.elapsed());
}
