//! Attack: clients that flood Ingest, IngestBatch and PutObject with large messages on
//! many streams at once (issue 16, finding 11: 8 Ingest streams of 1 MiB
//! records took the server to 1.5 GiB). The server holds at most its receive
//! budget of their bytes: the clients wait, held back by HTTP/2 flow control,
//! every record and upload still completes, and streams that go away,
//! cancelled or not reading their acknowledgements, give their share back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use wormbox_proto::{ArchiveClient, Metered, held_bytes_bound, v1};
use wormbox_server::{ReceiveBudget, WormboxdConfig};
use wormbox_store::{Actor, DeviceUpdate, Store};
use wormbox_test_utils::TestAppliance;

use crate::e2e::{create_bucket, put_messages, sha256};

const BUCKET: &str = "flood";
/// Each record's data; a record on the wire is a few dozen bytes more.
const RECORD_BYTES: usize = 512 << 10;
/// Nine records and a bit: room for an upload's 1 MiB chunk beside the
/// charge of a 1 MiB IngestBatch message (its bytes and what 512 records and
/// 1,088 metadata names could decode into, `held_bytes_bound`).
const BUDGET_BYTES: usize = (5 << 20) - (64 << 10);
/// Streams flooding at once, each on its own connection (and so its own
/// HTTP/2 connection window).
const STREAMS: usize = 8;
/// Records each stream sends.
const RECORDS: usize = 32;
/// Records a stream's transport may have taken from the client without the
/// server having admitted them: one being encoded, one queued for the HTTP/2
/// send window, one partly sent, and the 1 MiB receive window of its
/// connection (35 in all were taken when this was written, of the 45 allowed).
const SLACK_PER_STREAM: usize = 3 + (1 << 20) / RECORD_BYTES;
/// How long the server may take to return a cancelled stream's budget.
const SETTLE: Duration = Duration::from_secs(60);

fn small_budget(config: &mut WormboxdConfig) {
    config.limits.max_ingest_record_bytes = RECORD_BYTES as u64;
    config.limits.max_message_bytes = 1 << 20;
    config.limits.receive_budget_bytes = BUDGET_BYTES as u64;
}

/// Records taken from the clients' request streams by their transports.
#[derive(Default)]
struct Tally {
    pulled: AtomicUsize,
}

/// `count` records (or without end) for stream `stream`; each one the
/// transport takes is counted when it takes it.
fn records(
    stream: usize,
    count: Option<usize>,
    tally: Arc<Tally>,
) -> impl futures::stream::Stream<Item = v1::IngestRecord> + Send + 'static {
    let data = vec![stream as u8; RECORD_BYTES];
    let numbers = (0..).take_while(move |n| count.is_none_or(|count| *n < count));
    futures::stream::iter(numbers).map(move |n: usize| {
        tally.pulled.fetch_add(1, Ordering::SeqCst);
        v1::IngestRecord {
            sequence: n as u64,
            bucket: BUCKET.to_owned(),
            key: format!("s{stream}/r{n:04}"),
            data: data.clone(),
            ..Default::default()
        }
    })
}

/// Sends `count` records on a new stream and reads every acknowledgement.
async fn flood(mut client: ArchiveClient, stream: usize, count: Option<usize>, tally: Arc<Tally>) -> usize {
    let mut acks = client.ingest(records(stream, count, Arc::clone(&tally))).await.expect("ingest").into_inner();
    let mut stored = 0;
    while let Some(ack) = acks.message().await.expect("acknowledgement") {
        assert!(ack.error.is_none(), "record {} of stream {stream}: {:?}", ack.sequence, ack.error);
        stored += 1;
    }
    stored
}

/// Waits, bounded, until `done` holds of the server's budget.
async fn settle(budget: &ReceiveBudget, what: &str, done: impl Fn(&ReceiveBudget) -> bool) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    while !done(budget) {
        assert!(tokio::time::Instant::now() < deadline, "{what}: {} bytes still in use", budget.in_use());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Holds the archive's writer thread until the returned sender is dropped or
/// sent to: nothing is stored meanwhile, so every record received stays
/// unanswered, the case a slow disk makes.
async fn hold_writer(store: &Store) -> std::sync::mpsc::Sender<()> {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (held, holding) = tokio::sync::oneshot::channel();
    let store = store.clone();
    let update = DeviceUpdate(Box::new(move |_, _| {
        let _ = held.send(());
        let _ = released.recv();
        (Vec::new(), ())
    }));
    tokio::spawn(async move { store.update_devices(&Actor::system(), Vec::new(), update).await });
    holding.await.unwrap();
    release
}

/// Waits until the clients' transports take no more records: until none
/// was taken for a while, or all were.
async fn quiet(tally: &Tally, all: usize) -> usize {
    let mut last = usize::MAX;
    let mut still = 0;
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let pulled = tally.pulled.load(Ordering::SeqCst);
        if pulled == all {
            return pulled;
        }
        still = if pulled == last { still + 1 } else { 0 };
        if still == 20 {
            return pulled;
        }
        last = pulled;
        assert!(tokio::time::Instant::now() < deadline, "the clients never settled");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_flood_of_ingest_streams_waits_within_the_receive_budget() {
    let app = TestAppliance::start_with(small_budget).await.unwrap();
    create_bucket(&mut app.archive().await.unwrap(), BUCKET, v1::VersioningStatus::Enabled).await;
    let budget = app.server().receive_budget().clone();
    let release = hold_writer(app.server().app().store()).await;
    let tally = Arc::new(Tally::default());
    let mut streams = Vec::new();
    for stream in 0..STREAMS {
        let client = app.archive().await.unwrap();
        streams.push(tokio::spawn(flood(client, stream, Some(RECORDS), Arc::clone(&tally))));
    }

    // Nothing is stored, and the clients are held back: before the budget,
    // the server took up to 512 records of every stream off the wire, all
    // 256 of them here.
    let taken = quiet(&tally, STREAMS * RECORDS).await;
    let admitted = BUDGET_BYTES / RECORD_BYTES;
    assert!(
        taken <= admitted + STREAMS * SLACK_PER_STREAM,
        "the clients' transports took {taken} records while none was stored; the budget admits {admitted}, \
         and the transports may hold {SLACK_PER_STREAM} per stream"
    );
    assert!(budget.in_use() <= budget.capacity(), "{} of {}", budget.in_use(), budget.capacity());
    // Full: another record's charge does not fit.
    let next = held_bytes_bound(Metered::Record, RECORD_BYTES);
    assert!(budget.in_use() + next > budget.capacity(), "the budget is full: {}", budget.in_use());

    release.send(()).unwrap();
    for stream in streams {
        assert_eq!(stream.await.unwrap(), RECORDS, "every record is stored, however long it waited");
    }
    assert!(budget.peak() <= budget.capacity(), "peak {} of {}", budget.peak(), budget.capacity());
    assert_eq!(budget.in_use(), 0, "every record was answered, so its bytes came back");
}

/// A TCP relay to the appliance whose connections the test can cut, as a
/// client that dies or loses its network would.
struct Relay {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(app: &TestAppliance) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = app.server().addr;
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                connections.spawn(async move {
                    let mut upstream = tokio::net::TcpStream::connect(server).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
        Relay { addr, task }
    }

    async fn archive(&self, app: &TestAppliance) -> ArchiveClient {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.unwrap();
        let auth = wormbox_proto::BearerAuth::new(app.admin_credential()).unwrap();
        v1::archive_client::ArchiveClient::with_interceptor(channel, auth)
    }

    /// Closes every connection at once, mid-message for some.
    async fn cut(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

#[tokio::test]
async fn streams_cut_off_or_never_reading_their_acknowledgements_give_the_budget_back() {
    let app = TestAppliance::start_with(small_budget).await.unwrap();
    create_bucket(&mut app.archive().await.unwrap(), BUCKET, v1::VersioningStatus::Enabled).await;
    let budget = app.server().receive_budget().clone();

    // Endless floods through a relay, cut off once they fill the budget.
    let relay = Relay::start(&app).await;
    let tally = Arc::new(Tally::default());
    let mut endless = Vec::new();
    for stream in 0..4 {
        let mut client = relay.archive(&app).await;
        let records = records(stream, None, Arc::clone(&tally));
        endless.push(tokio::spawn(async move {
            let mut acks = client.ingest(records).await?.into_inner();
            while acks.message().await?.is_some() {}
            Ok::<_, tonic::Status>(())
        }));
    }
    settle(&budget, "filling", |b| b.in_use() > b.capacity() / 2).await;
    relay.cut().await;
    for stream in endless {
        assert!(stream.await.unwrap().is_err(), "a stream cut off ends in an error");
    }
    settle(&budget, "after the streams were cut off", |b| b.in_use() == 0).await;

    // A client that sends four budgets' worth and never reads an
    // acknowledgement: its records are still stored, and their bytes return.
    let mut client = app.archive().await.unwrap();
    let count = 4 * BUDGET_BYTES / RECORD_BYTES;
    let acks = client.ingest(records(9, Some(count), Arc::new(Tally::default()))).await.unwrap().into_inner();
    let list = v1::ListObjectsRequest { bucket: BUCKET.to_owned(), prefix: "s9/".to_owned(), ..Default::default() };
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let listed = client.list_objects(list.clone()).await.unwrap().into_inner().objects.len();
        if listed == count && budget.in_use() == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{listed} of {count} stored, {} bytes in use", budget.in_use());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(acks);
    assert!(budget.peak() <= budget.capacity());
}

#[tokio::test]
async fn a_flood_of_uploads_beside_ingest_completes_within_the_receive_budget() {
    let app = TestAppliance::start_with(small_budget).await.unwrap();
    create_bucket(&mut app.archive().await.unwrap(), BUCKET, v1::VersioningStatus::Enabled).await;
    let tally = Arc::new(Tally::default());
    // Three chunks and a piece each: every upload buffers a partial chunk,
    // and the budget has room for two uploads' chunks at once.
    let body: Vec<u8> = (0..(3 << 20) + 4099).map(|n: usize| (n % 251) as u8).collect();
    let mut tasks = Vec::new();
    for upload in 0..6 {
        let mut client = app.archive().await.unwrap();
        let messages = put_messages(BUCKET, &format!("u/{upload}"), &body, sha256(&body));
        tasks.push(tokio::spawn(async move {
            let response = client.put_object(tokio_stream::iter(messages)).await.expect("upload").into_inner();
            usize::try_from(response.size).unwrap()
        }));
    }
    let mut streams = Vec::new();
    for stream in 0..2 {
        let client = app.archive().await.unwrap();
        streams.push(tokio::spawn(flood(client, stream, Some(RECORDS), Arc::clone(&tally))));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), body.len());
    }
    for stream in streams {
        assert_eq!(stream.await.unwrap(), RECORDS);
    }
    let budget = app.server().receive_budget();
    assert!(budget.peak() <= budget.capacity(), "peak {} of {}", budget.peak(), budget.capacity());
    assert_eq!(budget.in_use(), 0);
}

/// `count` IngestBatch messages of `per_message` records of `bytes` bytes
/// each, counted as the transport takes them.
fn batches(
    stream: usize,
    count: usize,
    per_message: usize,
    bytes: usize,
    tally: Arc<Tally>,
) -> impl futures::stream::Stream<Item = v1::IngestBatchRequest> + Send + 'static {
    let data = vec![stream as u8; bytes];
    futures::stream::iter(0..count).map(move |n| {
        tally.pulled.fetch_add(1, Ordering::SeqCst);
        let records = (0..per_message)
            .map(|r| v1::IngestRecord {
                sequence: (n * per_message + r) as u64,
                bucket: BUCKET.to_owned(),
                key: format!("b{stream}/m{n:04}/r{r}"),
                data: data.clone(),
                ..Default::default()
            })
            .collect();
        v1::IngestBatchRequest::new(records)
    })
}

#[tokio::test]
async fn a_flood_of_ingest_batches_waits_within_the_receive_budget() {
    let app = TestAppliance::start_with(small_budget).await.unwrap();
    create_bucket(&mut app.archive().await.unwrap(), BUCKET, v1::VersioningStatus::Enabled).await;
    let budget = app.server().receive_budget().clone();
    let release = hold_writer(app.server().app().store()).await;
    let tally = Arc::new(Tally::default());
    // Messages of three records of 256 KiB: three quarters of the 1 MiB
    // message limit, each admitted at what 512 records could hold and then
    // holding what its three do, so the budget admits three, not four.
    let (messages, per_message, bytes) = (12, 3, 256 << 10);
    let mut streams = Vec::new();
    for stream in 0..4 {
        let mut client = app.archive().await.unwrap();
        let input = batches(stream, messages, per_message, bytes, Arc::clone(&tally));
        streams.push(tokio::spawn(async move {
            let mut responses = client.ingest_batch(input).await.expect("ingest batch").into_inner();
            let mut stored = 0;
            while let Some(response) = responses.message().await.expect("answer") {
                assert!(response.acks.iter().all(|ack| ack.error.is_none()), "{:?}", response.acks);
                stored += response.acks.len();
            }
            stored
        }));
    }
    quiet(&tally, 4 * messages).await;
    assert!(budget.in_use() <= budget.capacity(), "{} of {}", budget.in_use(), budget.capacity());
    let next = held_bytes_bound(Metered::Batch, per_message * bytes);
    assert!(budget.in_use() + next > budget.capacity(), "the budget is full: {}", budget.in_use());
    assert!(budget.in_use() >= 3 * per_message * bytes, "three messages were admitted: {}", budget.in_use());
    release.send(()).unwrap();
    for stream in streams {
        assert_eq!(stream.await.unwrap(), messages * per_message, "every record is stored");
    }
    assert!(budget.peak() <= budget.capacity(), "peak {} of {}", budget.peak(), budget.capacity());
    assert_eq!(budget.in_use(), 0, "every record was answered, so its bytes came back");
}

#[tokio::test]
async fn empty_ingest_batches_from_a_client_that_never_reads_its_answers_are_not_taken_without_end() {
    let app = TestAppliance::start().await.unwrap();
    create_bucket(&mut app.archive().await.unwrap(), BUCKET, v1::VersioningStatus::Enabled).await;
    // An empty message stores nothing and takes no budget, but its answer
    // waits for the client: the server reads no further than the stream's
    // in-flight bound, and HTTP/2 flow control holds the client back. Five
    // bytes each on the wire: the server's 1 MiB receive window holds about
    // 200,000, and this client takes answers into a 64 KiB window only.
    let all = 1_000_000;
    let tally = Arc::new(Tally::default());
    let mut client = small_window_client(&app).await;
    let responses = client.ingest_batch(batches(0, all, 0, 0, Arc::clone(&tally))).await.unwrap().into_inner();
    let taken = quiet(&tally, all).await;
    assert!(taken < all / 2, "the transport took {taken} of {all} empty messages whose answers nobody reads");
    drop(responses);
    // The server serves on.
    let mut client = app.archive().await.unwrap();
    let input = batches(1, 1, 2, 10, Arc::new(Tally::default()));
    let mut responses = client.ingest_batch(input).await.unwrap().into_inner();
    let response = responses.message().await.unwrap().expect("an answer");
    assert_eq!(response.acks.len(), 2);
    assert!(response.acks.iter().all(|ack| ack.error.is_none()));
}

/// A client that takes answers into a 64 KiB HTTP/2 window only.
async fn small_window_client(app: &TestAppliance) -> ArchiveClient {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.server().addr))
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    let auth = wormbox_proto::BearerAuth::new(app.admin_credential()).unwrap();
    v1::archive_client::ArchiveClient::with_interceptor(channel, auth)
}

#[tokio::test]
async fn refused_ingest_batches_whose_answers_are_never_read_hold_few_answers() {
    let app = TestAppliance::start().await.unwrap();
    // Records with no bucket are refused at once, without the writer, each
    // with an error ack: a message of 512 of them costs the client about
    // 60 KB and the server an answer of about 40 KB. Two answers wait for a
    // client that does not read, not 512 (which Ingest's one-ack answers
    // allowed), so the server stops reading after a handful of messages.
    let all = 2_000;
    let tally = Arc::new(Tally::default());
    let data = vec![7u8; 100];
    let messages = futures::stream::iter(0..all).map({
        let tally = Arc::clone(&tally);
        move |n: usize| {
            tally.pulled.fetch_add(1, Ordering::SeqCst);
            let records = (0..wormbox_proto::MAX_BATCH_RECORDS)
                .map(|r| v1::IngestRecord {
                    sequence: (n * 512 + r) as u64,
                    key: "k".to_owned(),
                    data: data.clone(),
                    ..Default::default()
                })
                .collect();
            v1::IngestBatchRequest::new(records)
        }
    });
    let mut client = small_window_client(&app).await;
    let responses = client.ingest_batch(messages).await.unwrap().into_inner();
    let taken = quiet(&tally, all).await;
    assert!(taken < 200, "the transport took {taken} messages of refused records whose answers nobody reads");
    drop(responses);
}
