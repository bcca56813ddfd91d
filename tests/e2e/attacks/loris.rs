//! Attack: a slow loris on the receive budget. A message's share of
//! `[limits] receive_budget_bytes` is taken when its 5-byte gRPC frame header
//! arrives; a client with any valid key sent only frame headers announcing
//! large messages on a few PutObject and Ingest streams, and nothing more,
//! and held the budget for ever: every other client's uploads and records
//! waited behind them. Now a caller who may not write is refused before any
//! budget is taken, and an admitted message's body must arrive within
//! `[limits] message_receive_ms`, or its stream fails and its bytes return.

use std::time::{Duration, Instant};

use prost::Message as _;
use tonic::codegen::{Bytes, http};
use tonic::{Code, Status};
use wormbox_proto::v1;
use wormbox_server::{ReceiveBudget, WormboxdConfig};
use wormbox_test_utils::TestAppliance;

use crate::e2e::{create_bucket, put, put_messages, reason};

const BUCKET: &str = "loris";
/// The largest message; each attacking stream announces one this large.
const MESSAGE_BYTES: u32 = 1 << 20;
/// Room for two announced Ingest or PutObject messages (each charged a
/// little more than its length) but not for an IngestBatch message beside
/// them (charged its length and what 512 records could decode into), and
/// for an upload's chunk beside that one.
const BUDGET_BYTES: u64 = 9 << 19;
/// The deadline of an admitted message's body, short for the test.
const RECEIVE_MS: u64 = 300;
/// How long an honest call may take: a few deadlines, far below "for ever".
const HONEST_WITHIN: Duration = Duration::from_secs(10);

fn small_budget(config: &mut WormboxdConfig) {
    config.limits.max_ingest_record_bytes = u64::from(MESSAGE_BYTES) - (64 << 10);
    config.limits.max_message_bytes = MESSAGE_BYTES as usize;
    config.limits.receive_budget_bytes = BUDGET_BYTES;
    config.limits.message_receive_ms = RECEIVE_MS;
}

/// A raw HTTP/2 connection, which lets a stream send a frame header and stop.
struct Raw {
    addr: std::net::SocketAddr,
    client: h2::client::SendRequest<Bytes>,
    connection: tokio::task::JoinHandle<()>,
}

impl Raw {
    async fn connect(app: &TestAppliance) -> Raw {
        let addr = app.server().addr;
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        Raw { addr, client, connection }
    }

    /// Opens a call of `method` as `credential` whose only bytes are a frame
    /// header announcing a message of `announced` bytes.
    async fn announce(
        &self,
        method: &str,
        credential: &str,
        announced: u32,
    ) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
        let mut header = vec![0u8];
        header.extend_from_slice(&announced.to_be_bytes());
        self.send(method, credential, header).await
    }

    /// Opens a call of `method` as `credential` that sends `bytes` and stops.
    async fn send(
        &self,
        method: &str,
        credential: &str,
        bytes: Vec<u8>,
    ) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
        self.open(method, credential, bytes, false).await
    }

    /// A whole unary call of `method` as `credential` whose request is
    /// `frame`: the status it ends with, and how much the process's peak
    /// resident set grew meanwhile (the peak reset first: proc(5),
    /// clear_refs, so an earlier test's peak cannot hide this one's).
    async fn unary(&self, method: &str, credential: &str, frame: Vec<u8>) -> (Status, u64) {
        let ((_, status), grown) = self.call(method, credential, frame).await;
        (status, grown)
    }

    /// As `unary`, also returning the answer's body (its messages, framed).
    async fn call(&self, method: &str, credential: &str, frame: Vec<u8>) -> ((Vec<u8>, Status), u64) {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = peak_rss_bytes();
        let (response, _stream) = self.open(method, credential, frame, true).await;
        let answer = tokio::time::timeout(HONEST_WITHIN, grpc_answer(response)).await.expect("an answer");
        (answer, peak_rss_bytes().saturating_sub(before))
    }

    async fn open(
        &self,
        method: &str,
        credential: &str,
        bytes: Vec<u8>,
        end: bool,
    ) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
        let mut client = self.client.clone().ready().await.unwrap();
        // `Service/Method`, or a method of Archive.
        let path = if method.contains('/') { method.to_owned() } else { format!("Archive/{method}") };
        let request = http::Request::post(format!("http://{}/wormbox.v1.{path}", self.addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", format!("Bearer {credential}"))
            .body(())
            .unwrap();
        let (response, mut stream) = client.send_request(request, false).unwrap();
        // A caller refused on its headers alone (a role that may not write)
        // can find the server has already answered and closed the stream:
        // the answer is what the test reads, so a send that comes too late
        // is not an error here.
        if let Err(err) = stream.send_data(Bytes::from(bytes), end) {
            assert!(err.to_string().contains("inactive stream") || err.is_reset(), "{err}");
        }
        (response, stream)
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// The gRPC status a raw call ended with: from a trailers-only answer, or
/// from the trailers after the body.
async fn grpc_status(response: h2::client::ResponseFuture) -> Status {
    grpc_answer(response).await.1
}

/// The body of a raw call's answer (its messages, framed) and its status.
async fn grpc_answer(response: h2::client::ResponseFuture) -> (Vec<u8>, Status) {
    let response = response.await.expect("an answer");
    if let Some(status) = Status::from_header_map(response.headers()) {
        return (Vec::new(), status);
    }
    let mut body = response.into_body();
    let mut answer = Vec::new();
    while let Some(data) = body.data().await {
        let data = data.expect("the answer's body");
        let _ = body.flow_control().release_capacity(data.len());
        answer.extend_from_slice(&data);
    }
    let trailers = body.trailers().await.expect("trailers").expect("trailers with a status");
    (answer, Status::from_header_map(&trailers).expect("a grpc-status trailer"))
}

/// Waits, bounded, until none of the budget is in use.
async fn drained(budget: &ReceiveBudget) {
    let deadline = Instant::now() + HONEST_WITHIN;
    while budget.in_use() != 0 {
        assert!(Instant::now() < deadline, "{} bytes of the budget are still held", budget.in_use());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Streams that announce large messages and never send them are failed at
/// the message deadline, and give their bytes back: an honest upload
/// beside them completes within a few deadlines (it waited for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_loris_holds_the_receive_budget_only_until_the_message_deadline() {
    let app = TestAppliance::start_with(small_budget).await.unwrap();
    create_bucket(&mut app.archive().await.unwrap(), BUCKET, v1::VersioningStatus::Enabled).await;
    let writer = app.principal("loris", v1::Role::Writer).await.unwrap();
    let budget = app.server().receive_budget().clone();

    let raw = Raw::connect(&app).await;
    let mut attacks = Vec::new();
    for method in ["PutObject", "Ingest", "IngestBatch", "PutObject"] {
        attacks.push((method, raw.announce(method, &writer, MESSAGE_BYTES).await));
    }
    // The first two hold what the budget has for messages; the others wait,
    // the last behind the IngestBatch message though it would fit.
    let deadline = Instant::now() + HONEST_WITHIN;
    while budget.in_use() < 2 * MESSAGE_BYTES as usize {
        assert!(Instant::now() < deadline, "the announced messages were never admitted: {}", budget.in_use());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let mut honest = app.archive().await.unwrap();
    let started = Instant::now();
    let stored = tokio::time::timeout(HONEST_WITHIN, put(&mut honest, BUCKET, "honest", b"an honest record")).await;
    let stored = stored.expect("the honest upload waited behind the loris for ever").unwrap();
    assert_eq!(stored.size, 16);
    assert!(started.elapsed() < HONEST_WITHIN, "{:?}", started.elapsed());

    for (method, (response, _stream)) in attacks {
        let failed = tokio::time::timeout(HONEST_WITHIN, grpc_status(response))
            .await
            .unwrap_or_else(|_| panic!("the loris's {method} stream was never failed"));
        assert_eq!((failed.code(), reason(&failed).as_str()), (Code::DeadlineExceeded, "MESSAGE_DEADLINE"), "{method}");
    }
    drained(&budget).await;
    assert!(budget.peak() <= budget.capacity());
}

/// A principal who may not write (a reader, an auditor) is refused
/// PutObject, Ingest and IngestBatch before a byte of the budget is taken: its announced
/// message is never admitted, even for the deadline's length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_may_not_write_takes_no_receive_budget() {
    // The default, long, deadline: the refusal cannot be the deadline's.
    let app = TestAppliance::start().await.unwrap();
    let budget = app.server().receive_budget().clone();
    let max = u32::try_from(WormboxdConfig::default().limits.max_message_bytes).unwrap();
    let raw = Raw::connect(&app).await;
    for role in [v1::Role::Reader, v1::Role::Auditor] {
        let credential = app.principal(&format!("{role:?}").to_lowercase(), role).await.unwrap();
        for method in ["PutObject", "Ingest", "IngestBatch"] {
            let (response, _stream) = raw.announce(method, &credential, max).await;
            let answer = tokio::time::timeout(HONEST_WITHIN, grpc_status(response)).await;
            let refused = answer.unwrap_or_else(|_| panic!("{role:?}'s {method} waited for its message"));
            assert_eq!((refused.code(), reason(&refused).as_str()), (Code::PermissionDenied, "ACCESS_DENIED"));
            assert_eq!((budget.in_use(), budget.peak()), (0, 0), "{role:?}'s {method} took receive budget");
        }
    }
}

/// An upload holds a chunk of the budget from its header until it is
/// published: a PutObject that sends its header and then nothing, not even
/// a frame header, held that chunk for ever (enough of them starve every
/// upload and most of Ingest). Its next message must begin within the
/// deadline too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_stops_between_messages_gives_its_chunk_back_at_the_deadline() {
    let app = TestAppliance::start_with(small_budget).await.unwrap();
    create_bucket(&mut app.archive().await.unwrap(), BUCKET, v1::VersioningStatus::Enabled).await;
    let writer = app.principal("loris", v1::Role::Writer).await.unwrap();
    let budget = app.server().receive_budget().clone();
    let raw = Raw::connect(&app).await;
    let header = put_messages(BUCKET, "stalled", b"never sent", Vec::new()).remove(0).encode_to_vec();
    let (response, _stream) = raw.send("PutObject", &writer, framed(&header)).await;
    let deadline = Instant::now() + HONEST_WITHIN;
    while budget.in_use() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let failed = tokio::time::timeout(HONEST_WITHIN, grpc_status(response))
        .await
        .expect("the stalled upload was never failed: it holds its chunk for ever");
    assert_eq!((failed.code(), reason(&failed).as_str()), (Code::DeadlineExceeded, "MESSAGE_DEADLINE"));
    drained(&budget).await;
    assert!(budget.peak() >= wormbox_store::CHUNK_BYTES, "the upload had reserved its chunk: {}", budget.peak());
}

/// What one connection can hold is bounded by the calls it may have open:
/// the server announces `[limits] max_streams_per_connection` in its HTTP/2
/// settings (it announced none, so no limit, before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_may_open_only_max_streams_per_connection_calls() {
    let app = TestAppliance::start_with(|config| config.limits.max_streams_per_connection = 4).await.unwrap();
    let raw = Raw::connect(&app).await;
    let deadline = Instant::now() + HONEST_WITHIN;
    while raw.client.current_max_send_streams() != 4 {
        assert!(Instant::now() < deadline, "announced {}", raw.client.current_max_send_streams());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(WormboxdConfig::default().limits.max_streams_per_connection, 100);
}

/// `payload` as one gRPC message: uncompressed, its length big-endian.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Peak resident set of this process, from `/proc/self/status`.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// An empty record is two bytes on the wire and a struct of a few hundred
/// bytes decoded: a 4 MiB IngestBatch message of two million of them, taken
/// from the budget as 4 MiB, would have made the server build half a
/// gigabyte before counting them. The records beyond the limit are counted
/// as they are decoded, not kept: the message is refused for what it is,
/// and the server's memory barely moves.
#[tokio::test]
async fn an_ingest_batch_of_millions_of_empty_records_is_refused_without_building_them() {
    let app = TestAppliance::start().await.unwrap();
    let writer = app.principal("crafted", v1::Role::Writer).await.unwrap();
    let max = WormboxdConfig::default().limits.max_message_bytes;
    let records = (max - 16) / 2;
    let frame = framed(&[0x0a, 0x00].repeat(records));
    let raw = Raw::connect(&app).await;
    let (refused, grown) = raw.unary("IngestBatch", &writer, frame).await;
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::InvalidArgument, "INVALID_ARGUMENT"));
    assert!(refused.message().contains(&format!("{records} records")), "{}", refused.message());
    // Building the records took about 420 MB; other tests running beside
    // this one in the same process may add some.
    assert!(grown < 256 << 20, "refusing a {max}-byte message raised the peak resident set by {grown} bytes");
    let budget = app.server().receive_budget();
    assert_eq!(budget.in_use(), 0, "the refused message's bytes returned");
}

/// tonic decodes a unary request whole before its handler runs, and the
/// handlers authenticated the caller first thing: a 4 MiB DeleteObjects
/// request of two-byte empty entries with a wrong credential made the
/// server build about 100 MiB before refusing it (measured), and anyone who
/// could reach the port could send many at once. Now the credential is
/// checked from the headers before the body is read at all.
#[tokio::test]
async fn a_call_whose_credential_fails_is_refused_before_its_body_is_decoded() {
    let app = TestAppliance::start().await.unwrap();
    let budget = app.server().receive_budget().clone();
    let max = WormboxdConfig::default().limits.max_message_bytes;
    let frame = framed(&[0x12, 0x00].repeat((max - 16) / 2));
    let raw = Raw::connect(&app).await;
    let wrong = format!("{}x", app.admin_credential());
    for (what, credential) in [
        ("a wrong secret", wrong.as_str()),
        ("an unknown key", "AKNOBODY:secret"),
        ("a malformed credential", "nothing"),
    ] {
        // The answer may come, and the stream close, before the body is sent.
        let (refused, grown) = raw.unary("DeleteObjects", credential, frame.clone()).await;
        assert_eq!(refused.code(), Code::Unauthenticated, "{what}: {refused:?}");
        assert!(grown < 48 << 20, "{what}: refusing the call raised the peak resident set by {grown} bytes");
    }
    // Streams too: an unauthenticated Ingest or IngestBatch takes no budget.
    for method in ["Ingest", "IngestBatch", "PutObject"] {
        let (response, _stream) = raw.announce(method, "AKNOBODY:secret", 1 << 20).await;
        let refused = tokio::time::timeout(HONEST_WITHIN, grpc_status(response)).await.expect("an answer");
        assert_eq!(refused.code(), Code::Unauthenticated, "{method}");
        assert_eq!((budget.in_use(), budget.peak()), (0, 0), "an unauthenticated {method} took receive budget");
    }
}

/// The same request with a valid credential, of any role: tonic decodes it
/// before the handler can judge the role or count the entries. Entries past
/// the 1000 a request may name are counted as they are decoded, not built.
#[tokio::test]
async fn a_delete_objects_request_of_millions_of_entries_is_refused_without_building_them() {
    let app = TestAppliance::start().await.unwrap();
    let reader = app.principal("crafted", v1::Role::Reader).await.unwrap();
    let max = WormboxdConfig::default().limits.max_message_bytes;
    let entries = (max - 16) / 2;
    let mut payload = vec![0x0a, BUCKET.len() as u8];
    payload.extend_from_slice(BUCKET.as_bytes());
    payload.extend_from_slice(&[0x12, 0x00].repeat(entries));
    let raw = Raw::connect(&app).await;
    let (refused, grown) = raw.unary("DeleteObjects", &reader, framed(&payload)).await;
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains(&format!("not {entries}")), "{}", refused.message());
    assert!(grown < 48 << 20, "refusing the request raised the peak resident set by {grown} bytes");
}

/// An AuditLog request's kinds, any number of empty strings: an auditor's
/// (or an admin's) 4 MiB request would have built two million of them
/// before the filter was read. Kinds past the 64 a request may name are
/// counted as they are decoded, not built.
#[tokio::test]
async fn an_audit_log_request_of_millions_of_kinds_is_refused_without_building_them() {
    let app = TestAppliance::start().await.unwrap();
    let auditor = app.principal("crafted", v1::Role::Auditor).await.unwrap();
    let max = WormboxdConfig::default().limits.max_message_bytes;
    let kinds = (max - 16) / 2;
    let raw = Raw::connect(&app).await;
    let (refused, grown) = raw.unary("Compliance/AuditLog", &auditor, framed(&[0x32, 0x00].repeat(kinds))).await;
    assert!(grown < 48 << 20, "refusing the request raised the peak resident set by {grown} bytes");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains(&format!("names {kinds} kinds")), "{}", refused.message());
}

/// User metadata is a map: each entry a distinct name costs the server a
/// map slot and two strings however short it is on the wire, so a writer's
/// 4 MiB Ingest record of half a million one-entry names raised the peak
/// resident set by about 89 MiB before the record was refused for its size
/// (measured). Names past the 64 a version may carry are counted as they
/// are decoded, not built, in an Ingest record, an IngestBatch record and a
/// PutObject header alike.
#[tokio::test]
async fn a_record_of_millions_of_metadata_names_is_refused_without_building_them() {
    let app = TestAppliance::start().await.unwrap();
    let writer = app.principal("crafted", v1::Role::Writer).await.unwrap();
    let max = WormboxdConfig::default().limits.max_message_bytes;
    // `tag` entries of distinct names, each 9 bytes on the wire.
    let names = (max - 1024) / 9;
    let metadata = |tag: u8| -> Vec<u8> {
        (0..names).flat_map(|i| [vec![tag << 3 | 2, 7, 0x0a, 5], format!("{i:05x}").into_bytes()].concat()).collect()
    };
    let record = [vec![0x12, 6], b"loris1".to_vec(), vec![0x1a, 1, b'k'], metadata(6)].concat();
    let refusal = format!("user metadata has {names} entries, more than the limit of 64");
    let raw = Raw::connect(&app).await;

    let ((answer, status), grown) = raw.call("Ingest", &writer, framed(&record)).await;
    assert!(grown < 48 << 20, "refusing the record raised the peak resident set by {grown} bytes");
    assert_eq!(status.code(), Code::Ok, "{status:?}");
    let ack = v1::IngestAck::decode(&answer[5..]).unwrap();
    let error = ack.error.expect("the record is refused");
    assert_eq!((error.reason.as_str(), error.message.as_str()), ("INVALID_ARGUMENT", refusal.as_str()));

    let batch = [vec![0x0a], encoded_len(record.len()), record.clone()].concat();
    let ((answer, status), grown) = raw.call("IngestBatch", &writer, framed(&batch)).await;
    assert!(grown < 48 << 20, "refusing the batch raised the peak resident set by {grown} bytes");
    assert_eq!(status.code(), Code::Ok, "{status:?}");
    let acks = v1::IngestBatchResponse::decode(&answer[5..]).unwrap().acks;
    assert_eq!(acks[0].error.as_ref().map(|e| e.message.as_str()), Some(refusal.as_str()));

    let header = [vec![0x0a, 6], b"loris1".to_vec(), vec![0x12, 1, b'k'], metadata(4)].concat();
    let request = [vec![0x0a], encoded_len(header.len()), header].concat();
    let (refused, grown) = raw.unary("PutObject", &writer, framed(&request)).await;
    assert!(grown < 48 << 20, "refusing the header raised the peak resident set by {grown} bytes");
    assert_eq!((refused.code(), refused.message()), (Code::InvalidArgument, refusal.as_str()));
    assert_eq!(app.server().receive_budget().in_use(), 0, "the refused messages' bytes returned");
}

/// A two-byte metadata name costs the server a map slot and two strings,
/// a hundred bytes or more, and a version may have 64: an IngestBatch
/// message of 512 records of 64 such names, 200 KiB on the wire, raised the
/// resident set by 7.2 MiB while the receive budget counted 200 KiB
/// (measured). Now a message may carry at most 1,024 names over all its
/// records, its records are counted what they hold, and decoding stops at
/// the record that passes the limit: the message is refused whole.
#[tokio::test]
async fn an_ingest_batch_of_many_short_metadata_names_is_refused_whole_and_counted_before() {
    let app = TestAppliance::start().await.unwrap();
    create_bucket(&mut app.archive().await.unwrap(), BUCKET, v1::VersioningStatus::Enabled).await;
    let writer = app.principal("crafted", v1::Role::Writer).await.unwrap();
    let record = |n: usize| v1::IngestRecord {
        bucket: BUCKET.into(),
        key: format!("names/{n}"),
        data: vec![1],
        user_metadata: (0..64).map(|i| (format!("{i:02}"), String::new())).collect(),
        ..Default::default()
    };
    let raw = Raw::connect(&app).await;
    let batch = v1::IngestBatchRequest::new((0..512).map(record).collect());
    let ((_, status), _) = raw.call("IngestBatch", &writer, framed(&batch.encode_to_vec())).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("more than 1024 user metadata names"), "{}", status.message());
    let mut client = app.archive().await.unwrap();
    let list = v1::ListObjectsRequest { bucket: BUCKET.into(), prefix: "names/".into(), ..Default::default() };
    assert!(client.list_objects(list.clone()).await.unwrap().into_inner().objects.is_empty(), "none was stored");

    // Sixteen such records are within the limit, and are stored.
    let batch = v1::IngestBatchRequest::new((0..16).map(record).collect());
    let ((answer, status), _) = raw.call("IngestBatch", &writer, framed(&batch.encode_to_vec())).await;
    assert_eq!(status.code(), Code::Ok, "{status:?}");
    let acks = v1::IngestBatchResponse::decode(&answer[5..]).unwrap().acks;
    assert!(acks.len() == 16 && acks.iter().all(|ack| ack.error.is_none()), "{acks:?}");
    assert_eq!(client.list_objects(list).await.unwrap().into_inner().objects.len(), 16);
    let budget = app.server().receive_budget();
    assert!(budget.peak() >= 16 * 64 * wormbox_proto::METADATA_ENTRY_HELD_BYTES, "{}", budget.peak());
    assert_eq!(budget.in_use(), 0);
}

/// A length as a protobuf varint.
fn encoded_len(len: usize) -> Vec<u8> {
    let mut varint = Vec::new();
    prost::encoding::encode_varint(len as u64, &mut varint);
    varint
}
