//! The receive budget: one bound, in bytes, on the memory the server holds
//! for what it has taken off the wire for Ingest, IngestBatch and PutObject
//! and not yet answered, across all streams (`[limits]
//! receive_budget_bytes`): the messages' bytes and what decoding them builds.
//!
//! Invariant: a message is admitted (its charge taken from the budget) when
//! the last byte of its 5-byte gRPC frame header arrives, and before that
//! byte reaches tonic, which would then reserve room for the whole message
//! and read its body. The charge is the most a message of that length may
//! hold once decoded (`wormbox_proto::held_bytes_bound`: a metadata name of
//! two bytes on the wire becomes a map entry of a hundred or more), and the
//! handler returns at once what the decoded message does not hold
//! (`IngestRecord::held_bytes`), so no memory is taken before it is counted
//! and no waiting is done while holding it. Until then nothing more of that stream is read, so HTTP/2
//! flow control holds the client back: a flooding client waits, memory does
//! not grow. Each admitted message leaves a ticket, in order, for its
//! handler, which holds it until the message is answered (an Ingest record
//! stored; each record of an IngestBatch message its own share, until it is
//! stored; PutObject bytes written into the upload); a stream that ends,
//! however it ends, drops its tickets and so returns its bytes.
//!
//! An admitted message's body must arrive within the receive deadline
//! (`[limits] message_receive_ms`), counted from its admission: while the
//! stream waits on its client past it, the stream fails (DEADLINE_EXCEEDED)
//! and the message's bytes return. Without it, a client with any valid key
//! could announce large messages on a few streams, send nothing more, and
//! hold the whole budget for ever (a slow loris). The handler reads on
//! without pause while a message is incomplete, so the time counted is the
//! client's. Callers who may not write are refused before their stream is
//! read at all (`archive.rs`), so they take no budget.
//!
//! A PutObject holds a chunk of the budget from its header on (below), so
//! after its first message its client must also begin each next message
//! (complete its frame header) within the deadline, counted while the
//! handler waits on the stream; an Ingest or IngestBatch stream holds
//! nothing between messages and may idle.
//!
//! An upload also keeps up to one chunk (`CHUNK_BYTES`) in memory between
//! messages, so each PutObject reserves a chunk of the budget before it reads
//! its first data message and holds it until the upload is published or
//! dropped. No holder of budget waits for more while it holds it, except an
//! upload's reservation, and reservations together never take more than the
//! budget less the largest message's charge: a message can always be
//! admitted once the messages before it are answered, so the budget cannot
//! deadlock.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http_body::Frame;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::{Bytes, Service, http};
use tonic::server::NamedService;
use wormbox_proto::{Metered as Shape, held_bytes_bound};

/// The methods whose request messages are metered, and their messages' shapes.
const METERED: [(&str, Shape); 3] = [
    ("/wormbox.v1.Archive/Ingest", Shape::Record),
    ("/wormbox.v1.Archive/IngestBatch", Shape::Batch),
    (PUT_OBJECT, Shape::Record),
];
/// The method whose stream holds budget between messages (its upload's chunk).
const PUT_OBJECT: &str = "/wormbox.v1.Archive/PutObject";

/// A gRPC frame header: a compression flag and a big-endian `u32` length.
const HEADER_BYTES: usize = 5;

/// The global receive budget. Cheap to clone; clones share one budget.
#[derive(Clone, Debug)]
pub struct ReceiveBudget {
    semaphore: Arc<Semaphore>,
    capacity: usize,
    /// The share uploads' chunk reservations may hold: the budget less the
    /// largest message's charge.
    uploads: Arc<Semaphore>,
    max_message_bytes: usize,
    /// The charge of the largest message of any metered method.
    largest_charge: usize,
    /// How long an admitted message's body may take to arrive.
    receive_deadline: Duration,
    /// The most bytes ever admitted at once, for tests and telemetry.
    peak: Arc<AtomicUsize>,
}

/// An upload's reservation of one chunk of the budget.
#[derive(Debug)]
pub(crate) struct ChunkReservation {
    _share: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

impl ReceiveBudget {
    /// A budget of `capacity` bytes (clamped to what a semaphore can count)
    /// for messages of at most `max_message_bytes`, each of whose bodies
    /// must arrive within `receive_deadline` of its admission.
    pub fn new(capacity: usize, max_message_bytes: usize, receive_deadline: Duration) -> ReceiveBudget {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        let largest_charge = ReceiveBudget::charge_of_largest(max_message_bytes);
        ReceiveBudget {
            semaphore: Arc::new(Semaphore::new(capacity)),
            capacity,
            uploads: Arc::new(Semaphore::new(capacity.saturating_sub(largest_charge))),
            max_message_bytes,
            largest_charge,
            receive_deadline,
            peak: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The budget of `request`'s stream; an error when the service was built
    /// without it (nothing would bound its memory).
    pub(crate) fn of<T>(request: &tonic::Request<T>) -> Result<ReceiveBudget, Status> {
        request
            .extensions()
            .get::<ReceiveBudget>()
            .cloned()
            .ok_or_else(|| Status::internal("the receive budget is not set up"))
    }

    /// The charge of the largest message any metered method accepts, when
    /// the largest is `max_message_bytes`: an IngestBatch message's.
    pub fn charge_of_largest(max_message_bytes: usize) -> usize {
        METERED.iter().map(|(_, shape)| held_bytes_bound(*shape, max_message_bytes)).max().unwrap_or(0)
    }

    /// Waits for, and takes, one chunk of the budget for an upload's buffer.
    pub(crate) async fn reserve_chunk(&self) -> Result<ChunkReservation, Status> {
        let chunk = wormbox_store::CHUNK_BYTES;
        let stopping = |_| Status::unavailable("the server is stopping");
        if chunk > self.capacity.saturating_sub(self.largest_charge) {
            return Err(Status::resource_exhausted(format!(
                "the receive budget, {} bytes ([limits] receive_budget_bytes), leaves no room for an upload's \
                 {chunk}-byte chunk beside the largest message's charge, {} bytes",
                self.capacity, self.largest_charge
            )));
        }
        let permits = u32::try_from(chunk).unwrap_or(u32::MAX);
        let share = Arc::clone(&self.uploads).acquire_many_owned(permits).await.map_err(stopping)?;
        let bytes = Arc::clone(&self.semaphore).acquire_many_owned(permits).await.map_err(stopping)?;
        self.admitted();
        Ok(ChunkReservation { _share: share, _bytes: bytes })
    }

    /// The budget, in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes admitted and not yet returned.
    pub fn in_use(&self) -> usize {
        self.capacity - self.semaphore.available_permits()
    }

    /// The most bytes that were ever admitted at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    fn admitted(&self) {
        self.peak.fetch_max(self.in_use(), Ordering::Relaxed);
    }
}

/// The bytes admitted for one stream's messages, oldest first: one ticket per
/// message, taken by the handler as it receives that message.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tickets(Arc<Mutex<VecDeque<OwnedSemaphorePermit>>>);

impl Tickets {
    /// The tickets of `request`'s stream; an error when the service was built
    /// without the budget (nothing would bound its memory).
    pub(crate) fn of<T>(request: &tonic::Request<T>) -> Result<Tickets, Status> {
        request
            .extensions()
            .get::<Tickets>()
            .cloned()
            .ok_or_else(|| Status::internal("the receive budget is not set up"))
    }

    /// The ticket of the message just received.
    pub(crate) fn take(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
            .ok_or_else(|| Status::internal("a message arrived without its receive budget"))
    }

    fn push(&self, permit: OwnedSemaphorePermit) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push_back(permit);
    }

    /// Returns the bytes of every message not yet taken by the handler, for
    /// a stream that failed: none of them will be.
    fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// A service whose Ingest and PutObject request bodies are metered.
#[derive(Clone, Debug)]
pub(crate) struct Metered<S> {
    inner: S,
    budget: ReceiveBudget,
}

impl<S> Metered<S> {
    /// Meters `inner`'s streams against `budget`; a message above the
    /// budget's largest message is refused, as tonic would, before it is admitted.
    pub(crate) fn new(inner: S, budget: ReceiveBudget) -> Metered<S> {
        Metered { inner, budget }
    }
}

impl<S: NamedService> NamedService for Metered<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Metered<S>
where
    S: Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path();
        if let Some(&(_, shape)) = METERED.iter().find(|(metered, _)| *metered == path) {
            let holds_between = path == PUT_OBJECT;
            let tickets = Tickets::default();
            request.extensions_mut().insert(tickets.clone());
            request.extensions_mut().insert(self.budget.clone());
            let budget = self.budget.clone();
            request = request.map(|body| {
                let mut metered = MeteredBody::new(body, budget, tickets);
                metered.holds_between = holds_between;
                metered.shape = Some(shape);
                Body::new(metered)
            });
        }
        self.inner.call(request)
    }
}

type Acquire = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// A request body that passes bytes on only as far as the budget admits.
struct MeteredBody {
    inner: Body,
    budget: ReceiveBudget,
    tickets: Tickets,
    /// Bytes read from `inner` and not yet parsed or passed on.
    rest: Bytes,
    /// The first four bytes of the header being read.
    header: [u8; HEADER_BYTES - 1],
    header_have: usize,
    /// Body bytes of the current message still to pass.
    body_left: usize,
    /// The message whose header completes at the next byte is admitted.
    admitted: bool,
    acquiring: Option<Acquire>,
    /// When the admitted message still arriving must have arrived.
    deadline: Option<Pin<Box<Sleep>>>,
    /// The handler holds budget between messages once the first has
    /// arrived (PutObject's upload chunk): the next must begin in time.
    holds_between: bool,
    /// The shape of the stream's messages, which sets what each is charged
    /// (`held_bytes_bound`); without one, a message is charged its length.
    shape: Option<Shape>,
    /// Messages admitted so far.
    messages: u64,
    /// When the next message's frame header must have arrived, started
    /// when the handler first waits for it.
    idle: Option<Pin<Box<Sleep>>>,
    failed: bool,
}

impl MeteredBody {
    fn new(inner: Body, budget: ReceiveBudget, tickets: Tickets) -> MeteredBody {
        MeteredBody {
            inner,
            budget,
            tickets,
            rest: Bytes::new(),
            header: [0; HEADER_BYTES - 1],
            header_have: 0,
            body_left: 0,
            admitted: false,
            acquiring: None,
            deadline: None,
            holds_between: false,
            shape: None,
            messages: 0,
            idle: None,
            failed: false,
        }
    }

    /// Takes from `rest` the bytes that may pass now: up to, not including,
    /// the byte that completes a header not yet admitted, whose message
    /// length is then returned.
    fn parse(&mut self) -> (Bytes, Option<usize>) {
        let data = std::mem::take(&mut self.rest);
        let mut at = 0;
        while at < data.len() {
            if self.body_left > 0 {
                let n = self.body_left.min(data.len() - at);
                self.body_left -= n;
                at += n;
            } else if self.header_have < HEADER_BYTES - 1 {
                self.header[self.header_have] = data[at];
                self.header_have += 1;
                at += 1;
            } else if self.admitted {
                self.body_left = self.pending_length(data[at]);
                self.header_have = 0;
                self.admitted = false;
                at += 1;
            } else {
                let len = self.pending_length(data[at]);
                self.rest = data.slice(at..);
                return (data.slice(..at), Some(len));
            }
        }
        (data, None)
    }

    fn pending_length(&self, last: u8) -> usize {
        u32::from_be_bytes([self.header[1], self.header[2], self.header[3], last]) as usize
    }

    /// Whether an admitted message has not wholly passed yet.
    fn receiving(&self) -> bool {
        self.admitted || self.body_left > 0
    }

    /// Fails the stream: its messages not yet taken return their bytes.
    fn fail(&mut self, status: Status) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.failed = true;
        self.acquiring = None;
        self.deadline = None;
        self.idle = None;
        self.tickets.clear();
        Poll::Ready(Some(Err(status)))
    }

    fn late(&self, what: &str) -> Status {
        crate::grpc::status::message_deadline(what, self.budget.receive_deadline.as_millis())
    }

    /// Whether the stream waits on its client past a deadline: an admitted
    /// message's body, or the next message of a stream that holds budget
    /// between messages. Called only when the client has sent nothing more.
    fn poll_late(&mut self, cx: &mut Context<'_>) -> Option<Status> {
        if self.receiving() {
            let deadline = self.deadline.as_mut()?;
            return deadline.as_mut().poll(cx).is_ready().then(|| self.late("a message's body did not arrive"));
        }
        if !self.holds_between || self.messages == 0 || self.acquiring.is_some() {
            return None;
        }
        let wait = self.budget.receive_deadline;
        let idle = self.idle.get_or_insert_with(|| Box::pin(tokio::time::sleep(wait)));
        idle.as_mut().poll(cx).is_ready().then(|| self.late("an upload's next message did not begin"))
    }

    /// Starts admitting a message of `len` bytes, or refuses it.
    fn admit(&mut self, len: usize) -> Result<(), Status> {
        if len > self.budget.max_message_bytes {
            return Err(Status::out_of_range(format!(
                "a message of {len} bytes is larger than the largest accepted, {} bytes ([limits] max_message_bytes)",
                self.budget.max_message_bytes
            )));
        }
        let charge = self.shape.map_or(len, |shape| held_bytes_bound(shape, len));
        if charge > self.budget.capacity {
            return Err(Status::resource_exhausted(format!(
                "a message of {len} bytes, which may hold {charge} bytes once decoded, is larger than the \
                 server's whole receive budget, {} bytes ([limits] receive_budget_bytes)",
                self.budget.capacity
            )));
        }
        // At most the capacity, which a semaphore counts in a u32.
        let permits = u32::try_from(charge).unwrap_or(u32::MAX);
        self.acquiring = Some(Box::pin(Arc::clone(&self.budget.semaphore).acquire_many_owned(permits)));
        Ok(())
    }
}

impl http_body::Body for MeteredBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        loop {
            if let Some(acquiring) = this.acquiring.as_mut() {
                let Ok(permit) = ready!(acquiring.as_mut().poll(cx)) else {
                    return this.fail(Status::unavailable("the server is stopping"));
                };
                this.acquiring = None;
                this.tickets.push(permit);
                this.budget.admitted();
                this.admitted = true;
                this.messages += 1;
                this.idle = None;
                // Counted from here: a wait for the budget is the server's.
                this.deadline = Some(Box::pin(tokio::time::sleep(this.budget.receive_deadline)));
            }
            if !this.rest.is_empty() {
                let (ready, pending) = this.parse();
                if !this.receiving() {
                    this.deadline = None;
                }
                if let Some(len) = pending
                    && let Err(status) = this.admit(len)
                {
                    return this.fail(status);
                }
                // Passed on before waiting for the next message's bytes: the
                // message they end may be what frees them.
                if !ready.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(ready))));
                }
                continue;
            }
            let polled = Pin::new(&mut this.inner).poll_frame(cx);
            if polled.is_pending()
                && let Some(late) = this.poll_late(cx)
            {
                return this.fail(late);
            }
            match ready!(polled) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.rest = data,
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                other => return Poll::Ready(other),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || (self.rest.is_empty() && self.acquiring.is_none() && self.inner.is_end_stream())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use http_body::Body as _;

    /// A deadline no test here reaches.
    const LONG: Duration = Duration::from_secs(3600);

    /// A request body that yields these chunks.
    struct Chunks(VecDeque<Vec<u8>>);

    impl http_body::Body for Chunks {
        type Data = Bytes;
        type Error = Status;

        fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
            Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(Bytes::from(chunk)))))
        }
    }

    /// A request body that yields these chunks, then waits for ever: a
    /// client that stopped sending.
    struct Stalls(VecDeque<Vec<u8>>);

    impl http_body::Body for Stalls {
        type Data = Bytes;
        type Error = Status;

        fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
            match self.0.pop_front() {
                Some(chunk) => Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk))))),
                None => Poll::Pending,
            }
        }
    }

    fn body(chunks: Vec<Vec<u8>>) -> Body {
        Body::new(Chunks(chunks.into()))
    }

    fn message(len: usize, fill: u8) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out.extend(std::iter::repeat_n(fill, len));
        out
    }

    async fn next(body: &mut MeteredBody) -> Option<Result<Bytes, Status>> {
        std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx))
            .await
            .map(|frame| frame.map(|f| f.into_data().expect("data")))
    }

    /// Whether the body has bytes to give without waiting.
    fn ready(body: &mut MeteredBody) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        Pin::new(&mut *body).poll_frame(&mut cx).is_ready()
    }

    #[tokio::test]
    async fn bytes_pass_only_as_far_as_the_budget_admits_and_come_back_with_the_tickets() {
        let budget = ReceiveBudget::new(100, 1000, LONG);
        let tickets = Tickets::default();
        // Two messages of 60 bytes, the second header split across chunks.
        let mut wire = message(60, 1);
        let second = message(60, 2);
        wire.extend_from_slice(&second[..4]);
        let mut body = MeteredBody::new(body(vec![wire, second[4..].to_vec()]), budget.clone(), tickets.clone());
        let mut passed = Vec::new();
        while passed.len() < 65 + 4 {
            passed.extend_from_slice(&next(&mut body).await.unwrap().unwrap());
        }
        assert_eq!(passed.len(), 65 + 4, "the first message and four bytes of the next header pass");
        assert_eq!(budget.in_use(), 60);
        // The second message's header cannot complete: 60 + 60 > 100.
        assert!(!ready(&mut body));
        let first = tickets.take().unwrap();
        assert_eq!(first.num_permits(), 60);
        drop(first);
        let mut rest = Vec::new();
        while let Some(chunk) = next(&mut body).await {
            rest.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(rest, second[4..]);
        assert_eq!(tickets.take().unwrap().num_permits(), 60);
        assert_eq!((budget.in_use(), budget.peak()), (0, 60));
    }

    #[tokio::test]
    async fn a_message_whose_body_stalls_past_the_deadline_fails_the_stream_and_returns_its_bytes() {
        let budget = ReceiveBudget::new(100, 1000, Duration::from_millis(50));
        let tickets = Tickets::default();
        // A frame header announcing 60 bytes, and 10 of them.
        let announced = message(60, 7)[..HEADER_BYTES + 10].to_vec();
        let stalled = Body::new(Stalls(vec![announced].into()));
        let mut body = MeteredBody::new(stalled, budget.clone(), tickets.clone());
        let started = tokio::time::Instant::now();
        let mut passed = 0;
        let err = loop {
            match tokio::time::timeout(Duration::from_secs(10), next(&mut body)).await.expect("never failed") {
                Some(Ok(bytes)) => passed += bytes.len(),
                Some(Err(err)) => break err,
                None => panic!("the stream ended instead of failing"),
            }
        };
        assert_eq!(passed, HEADER_BYTES + 10);
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(err.code(), tonic::Code::DeadlineExceeded);
        assert_eq!(crate::grpc::status::reason_of(&err), "MESSAGE_DEADLINE");
        assert!(err.message().contains("message_receive_ms"), "{}", err.message());
        assert_eq!(budget.in_use(), 0, "the failed stream's message returned its bytes");
        assert!(next(&mut body).await.is_none());
        assert!(tickets.take().is_err());
    }

    #[tokio::test]
    async fn the_deadline_holds_a_message_only_until_it_has_arrived() {
        let budget = ReceiveBudget::new(100, 1000, Duration::from_millis(20));
        let tickets = Tickets::default();
        let stalled = Body::new(Stalls(vec![message(30, 1)].into()));
        let mut body = MeteredBody::new(stalled, budget.clone(), tickets.clone());
        let mut passed = 0;
        while passed < HEADER_BYTES + 30 {
            passed += next(&mut body).await.unwrap().unwrap().len();
        }
        // A stream idle between messages holds no admitted bytes in
        // transit: it is not failed, however long it waits.
        let idle = tokio::time::timeout(Duration::from_millis(100), next(&mut body)).await;
        assert!(idle.is_err(), "{idle:?}");
        assert_eq!(tickets.take().unwrap().num_permits(), 30);

        // ... unless it holds budget between messages (PutObject's upload
        // chunk): then the next message must begin in time.
        let stalled = Body::new(Stalls(vec![message(30, 1), vec![0, 0]].into()));
        let mut body = MeteredBody::new(stalled, budget.clone(), Tickets::default());
        body.holds_between = true;
        let mut passed = 0;
        let err = loop {
            match tokio::time::timeout(Duration::from_secs(10), next(&mut body)).await.expect("never failed") {
                Some(Ok(bytes)) => passed += bytes.len(),
                Some(Err(err)) => break err,
                None => panic!("the stream ended instead of failing"),
            }
        };
        assert_eq!(passed, HEADER_BYTES + 30 + 2, "a partial frame header does not restart the wait");
        assert_eq!(err.code(), tonic::Code::DeadlineExceeded);
        assert!(err.message().contains("next message"), "{}", err.message());
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn a_message_larger_than_the_budget_is_refused_with_a_clear_error() {
        let budget = ReceiveBudget::new(100, 1000, LONG);
        let mut body = MeteredBody::new(body(vec![message(101, 0)]), budget.clone(), Tickets::default());
        let err = next(&mut body).await.unwrap().unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.message().contains("receive_budget_bytes"), "{}", err.message());
        assert!(next(&mut body).await.is_none());
        assert_eq!(budget.in_use(), 0);

        let small = ReceiveBudget::new(100, 40, LONG);
        let mut body = MeteredBody::new(self::body(vec![message(50, 0)]), small, Tickets::default());
        assert_eq!(next(&mut body).await.unwrap().unwrap_err().code(), tonic::Code::OutOfRange);
    }

    #[tokio::test]
    async fn a_message_is_admitted_at_what_its_shape_may_hold_once_decoded() {
        let charge = held_bytes_bound(Shape::Batch, 60);
        assert!(charge > 60 + 30 * wormbox_proto::RECORD_HELD_BYTES, "{charge}");
        let budget = ReceiveBudget::new(charge + 10, 1000, LONG);
        let tickets = Tickets::default();
        let mut body = MeteredBody::new(body(vec![message(60, 0), message(10, 0)]), budget.clone(), tickets.clone());
        body.shape = Some(Shape::Batch);
        let mut passed = 0;
        while passed < HEADER_BYTES + 60 + HEADER_BYTES - 1 {
            passed += next(&mut body).await.unwrap().unwrap().len();
        }
        assert_eq!(budget.in_use(), charge);
        // The next message's charge does not fit until the handler returns
        // what the first does not hold.
        assert!(!ready(&mut body));
        let mut first = tickets.take().unwrap();
        drop(first.split(charge - 60).unwrap());
        assert!(next(&mut body).await.unwrap().is_ok());
        assert_eq!(budget.in_use(), 60 + held_bytes_bound(Shape::Batch, 10));

        drop((first, tickets.take().unwrap()));
        assert_eq!(budget.in_use(), 0);

        // A message whose charge exceeds the whole budget is refused, though
        // its bytes alone would fit.
        let small = ReceiveBudget::new(charge - 1, 1000, LONG);
        let mut body = MeteredBody::new(self::body(vec![message(60, 0)]), small.clone(), Tickets::default());
        body.shape = Some(Shape::Batch);
        let err = next(&mut body).await.unwrap().unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.message().contains("once decoded"), "{}", err.message());
        assert_eq!(small.in_use(), 0);
    }

    #[tokio::test]
    async fn a_dropped_stream_returns_its_budget() {
        let budget = ReceiveBudget::new(100, 1000, LONG);
        let tickets = Tickets::default();
        let mut body = MeteredBody::new(body(vec![message(30, 0), message(30, 0)]), budget.clone(), tickets);
        while let Some(chunk) = next(&mut body).await {
            chunk.unwrap();
        }
        // Both messages were read and never answered.
        assert_eq!(budget.in_use(), 60);
        drop(body);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn upload_reservations_leave_room_for_a_message() {
        let chunk = wormbox_store::CHUNK_BYTES;
        // Room for two chunks beside the charge of a message of one chunk.
        let largest = ReceiveBudget::charge_of_largest(chunk);
        let budget = ReceiveBudget::new(2 * chunk + largest, chunk, LONG);
        let first = budget.reserve_chunk().await.unwrap();
        let second = budget.reserve_chunk().await.unwrap();
        assert_eq!(budget.in_use(), 2 * chunk);
        let mut third = std::pin::pin!(budget.reserve_chunk());
        assert!(futures::poll!(third.as_mut()).is_pending(), "a third would leave no room for a message");
        // ... which is still admitted.
        let tickets = Tickets::default();
        let mut body = MeteredBody::new(body(vec![message(chunk, 0)]), budget.clone(), tickets.clone());
        while let Some(part) = next(&mut body).await {
            part.unwrap();
        }
        assert_eq!(budget.in_use(), 3 * chunk, "a message without a shape is charged its length");
        drop((first, tickets.take().unwrap()));
        let _third = third.await.unwrap();
        drop(second);
        assert_eq!(budget.in_use(), chunk);

        let err = ReceiveBudget::new(chunk + largest - 1, chunk, LONG).reserve_chunk().await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    }
}
