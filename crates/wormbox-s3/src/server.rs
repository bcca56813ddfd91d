//! The S3 listener: HTTP/1.1 (over TLS when configured) in front of the
//! `s3s` service, with a wrapper that names each request
//! (`x-amz-request-id`) and refuses what is never served before its body
//! is read (browser form uploads, which s3s would buffer whole; a SigV4
//! credential scope of another region or service; a presigned URL valid
//! for more than seven days).
//!
//! Invariant: at most `MAX_CONNECTIONS` connections are served at once (an
//! accept waits for a free one), at most
//! `S3Options::max_connections_per_address` of them from one client address,
//! an IPv4 address or an IPv6 /64 (more are closed as soon as accepted, so
//! one host cannot hold every slot); a connection must send its request head
//! within `S3Options::header_timeout`, and no request body, whatever
//! operation reads it, may stall for longer than `S3Options::body_idle`;
//! `S3Server::stop` stops accepting, lets requests in flight finish for at
//! most `DRAIN` and then closes what is left.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use s3s::service::S3Service;
use s3s::{S3ErrorCode, s3_error};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::chunked::ChunkGuard;

use crate::S3Options;
use crate::requests::{OperationSlot, RequestCounts};

/// Connections served at once.
pub(crate) const MAX_CONNECTIONS: usize = 512;
/// Connections served at once from one client address, unless
/// `S3Options::max_connections_per_address` says otherwise: far more than
/// an S3 client opens (boto3 and the AWS CLI 10, rclone 4 transfers and 8
/// checkers, the Java SDK 50), an eighth of all slots.
pub(crate) const MAX_CONNECTIONS_PER_ADDRESS: usize = 64;
/// How long a connection may take to send a request's head, unless
/// `S3Options::header_timeout` says otherwise.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `stop` lets requests in flight finish.
const DRAIN: Duration = Duration::from_secs(10);

/// A running S3 listener.
#[derive(Debug)]
pub struct S3Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    requests: Arc<RequestCounts>,
}

impl S3Server {
    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The requests answered so far, by operation and status code.
    pub fn requests(&self) -> &Arc<RequestCounts> {
        &self.requests
    }

    /// Stops accepting, lets requests in flight finish (at most `DRAIN`),
    /// then closes every connection.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

/// Serves `service` on `listener`, over TLS when `tls` is given, with the
/// region and timeouts of `options`.
pub fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    service: S3Service,
    options: &S3Options,
) -> std::io::Result<S3Server> {
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let requests = Arc::new(RequestCounts::default());
    let setup = Setup {
        region: options.region.clone(),
        header_timeout: options.header_timeout,
        body_idle: options.body_idle,
        requests: Arc::clone(&requests),
    };
    let per_address = Arc::new(PerAddress::new(options.max_connections_per_address));
    let task = tokio::spawn(accept_loop(listener, tls, service, Arc::new(setup), per_address, stopped));
    Ok(S3Server { addr, stop, task, requests })
}

/// What every connection is served with.
struct Setup {
    region: String,
    header_timeout: Duration,
    body_idle: Duration,
    requests: Arc<RequestCounts>,
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    service: S3Service,
    setup: Arc<Setup>,
    per_address: Arc<PerAddress>,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let ids = Arc::new(RequestIds::new());
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit { Ok(p) => p, Err(_) => break },
            _ = stopping(&mut stopped) => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %err, "the S3 listener could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopping(&mut stopped) => break,
        };
        let Some(address_slot) = per_address.enter(peer.ip()) else {
            tracing::debug!(%peer, limit = per_address.limit, "an S3 connection refused: its address holds the most it may");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (service, ids, watcher) = (service.clone(), Arc::clone(&ids), graceful.watcher());
        let (tls, setup) = (tls.clone(), Arc::clone(&setup));
        tokio::spawn(async move {
            let _permit = (permit, address_slot);
            let header_timeout = setup.header_timeout;
            let handler = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (service, ids, setup) = (service.clone(), Arc::clone(&ids), Arc::clone(&setup));
                async move { Ok::<_, s3s::HttpError>(handle(&service, &ids, &setup, req).await) }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(header_timeout).keep_alive(true).max_headers(200);
            let result = match tls {
                None => watcher.watch(http.serve_connection(TokioIo::new(tcp), handler)).await,
                Some(tls) => match tokio::time::timeout(header_timeout, tls.accept(tcp)).await {
                    Ok(Ok(stream)) => watcher.watch(http.serve_connection(TokioIo::new(stream), handler)).await,
                    Ok(Err(err)) => {
                        tracing::debug!(%peer, error = %err, "an S3 TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
            };
            if let Err(err) = result {
                tracing::debug!(%peer, error = %err, "an S3 connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("S3 requests still running after {DRAIN:?} were cut off by shutdown");
    }
}

/// Connections open per client address (an IPv4 address or an IPv6 /64);
/// the metrics listener counts its connections with it too.
#[derive(Debug)]
pub struct PerAddress {
    limit: usize,
    open: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
}

impl PerAddress {
    /// At most `limit` connections per client address.
    pub fn new(limit: usize) -> PerAddress {
        PerAddress { limit, open: std::sync::Mutex::default() }
    }

    /// A slot for one more connection from `ip`, or `None` when its client
    /// address holds `limit` already.
    pub fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let ip = client_address(ip);
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(ip).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot { map: Arc::clone(self), ip })
    }
}

/// What connections are counted by: an IPv4 address (also when it arrives
/// IPv4-mapped), or an IPv6 address's /64, since one IPv6 host commonly has
/// a whole /64 to pick source addresses from.
fn client_address(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

/// One connection's place in `PerAddress`, given back when dropped.
#[derive(Debug)]
pub struct AddressSlot {
    map: Arc<PerAddress>,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.map.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Returns once `stopped` turns true (or its sender is gone).
async fn stopping(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Request ids: a counter from a random start, so that ids of different
/// runs do not repeat each other's.
struct RequestIds {
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> RequestIds {
        use std::hash::BuildHasher;
        let start = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        RequestIds { next: AtomicU64::new(start) }
    }

    fn next(&self) -> String {
        format!("{:016X}", self.next.fetch_add(1, Ordering::Relaxed))
    }
}

async fn handle(service: &S3Service, ids: &RequestIds, setup: &Setup, req: Request<Incoming>) -> Response<s3s::Body> {
    let id = ids.next();
    let span = tracing::info_span!("s3", request_id = %id, method = %req.method(), path = %req.uri().path());
    let _enter = span.enter();
    let stalled = Arc::new(AtomicBool::new(false));
    let operation = OperationSlot::default();
    // Counted when this ends, however it ends: a request whose client went
    // away (or that shutdown cut off) counts as 499.
    let mut answered = Answered { counts: &setup.requests, operation: operation.clone(), status: None };
    let mut req = req;
    req.extensions_mut().insert(operation);
    let mut response = match refuse_early(&req, &setup.region) {
        Some(err) => err,
        None => {
            let body = |inner| IdleBody { inner, idle: setup.body_idle, timer: None, stalled: Arc::clone(&stalled) };
            // An aws-chunked body's chunk headers are checked as they pass
            // (`chunked.rs`: no chunk above `MAX_CHUNK_BYTES` is buffered).
            let streaming = req
                .headers()
                .get("x-amz-content-sha256")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("STREAMING-"));
            let req = match streaming {
                true => req.map(|inner| s3s::Body::http_body(ChunkGuard::new(body(inner)))),
                false => req.map(|inner| s3s::Body::http_body(body(inner))),
            };
            match service.call(req).await {
                Ok(response) => response,
                Err(err) => {
                    tracing::warn!(error = ?err, "an S3 response could not be built");
                    error_response(s3_error!(InternalError, "The response could not be built."))
                }
            }
        }
    };
    // Whatever the operation made of its failed body (s3s answers a failed
    // XML body InternalError), the client stalled.
    if stalled.load(Ordering::Relaxed) {
        response = error_response(crate::error::custom(
            "RequestTimeout",
            400,
            "Your socket connection to the server was not read from or written to within the timeout period.",
        ));
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-amz-request-id", value);
    }
    answered.status = Some(response.status().as_u16());
    response
}

/// Counts its request once, when dropped: with the answer's status, or 499
/// (nginx's "client closed request") when the handler never finished.
struct Answered<'a> {
    counts: &'a RequestCounts,
    operation: OperationSlot,
    status: Option<u16>,
}

impl Drop for Answered<'_> {
    fn drop(&mut self) {
        self.counts.add(&self.operation.name(), self.status.unwrap_or(499));
    }
}

/// What is refused before the request reaches s3s, which would read it.
fn refuse_early(req: &Request<Incoming>, region: &str) -> Option<Response<s3s::Body>> {
    let signed = crate::auth::check_scope(req.headers(), req.uri(), region)
        .and_then(|()| crate::auth::check_presigned_expiry(req.uri()));
    if let Err(err) = signed {
        return Some(error_response(err));
    }
    let form = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    if req.method() == http::Method::POST && form {
        let err = s3s::S3Error::with_message(
            S3ErrorCode::NotImplemented,
            "Browser form uploads (POST Object) are not served.",
        );
        return Some(error_response(err));
    }
    None
}

fn error_response(err: s3s::S3Error) -> Response<s3s::Body> {
    err.to_http_response().unwrap_or_else(|_| {
        let mut response = Response::new(s3s::Body::empty());
        *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        response
    })
}

/// A request body that fails once it has sent nothing for `idle` while it
/// is being read, whatever reads it: PutObject's stream and the XML bodies
/// s3s collects itself (which have no deadline of their own). `stalled`
/// tells `handle`, which then answers RequestTimeout.
struct IdleBody {
    inner: Incoming,
    idle: Duration,
    /// Runs while a read waits; a frame stops it.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    stalled: Arc<AtomicBool>,
}

impl hyper::body::Body for IdleBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.timer = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.stalled.store(true, Ordering::Relaxed);
                        Poll::Ready(Some(Err(format!("the request body sent nothing for {idle:?}").into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_holds_at_most_its_share_and_gets_it_back() {
        let map = Arc::new(PerAddress::new(MAX_CONNECTIONS_PER_ADDRESS));
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap());
        let held: Vec<_> = (0..MAX_CONNECTIONS_PER_ADDRESS).map(|_| map.enter(a).unwrap()).collect();
        assert!(map.enter(a).is_none(), "one more from a full address");
        assert!(map.enter("::ffff:192.0.2.1".parse().unwrap()).is_none(), "the same address, IPv4-mapped");
        let other = map.enter(b).expect("another address is not counted with it");
        drop(held);
        assert!(map.enter(a).is_some(), "closed connections give their slots back");
        drop(other);
        assert!(map.open.lock().unwrap().is_empty(), "no address is remembered once it holds none");
    }

    #[test]
    fn an_ipv6_host_is_counted_by_its_64() {
        let map = Arc::new(PerAddress::new(2));
        let _one = map.enter("2001:db8:1:2::1".parse().unwrap()).unwrap();
        let _two = map.enter("2001:db8:1:2:ffff::9".parse().unwrap()).unwrap();
        assert!(map.enter("2001:db8:1:2:abcd::7".parse().unwrap()).is_none(), "a third address of the same /64");
        assert!(map.enter("2001:db8:1:3::1".parse().unwrap()).is_some(), "the next /64 is another client");
    }
}
