//! The metrics listener (`[metrics] listen`): `GET /metrics` over HTTP/1.1,
//! on its own port, apart from gRPC and S3.
//!
//! Invariants:
//! - on loopback it answers anyone who can reach it, as node exporters do
//!   (issue 21 decides so, beside DESIGN.md's rule that every gRPC call
//!   carries a credential); beyond loopback it runs only over TLS (the
//!   configuration refuses it otherwise) and answers only a bearer
//!   credential of the `auditor` or `admin` role, every other caller getting
//!   the same 401 or 403 with no metric in it;
//! - what a caller can hold is bounded: `MAX_CONNECTIONS` in all and
//!   `PER_ADDRESS` from one client address (an IPv6 /64 is one), each for at most `CONNECTION_TIME`
//!   (TLS handshake included), one request per connection; scrapes wait
//!   their turn (one at a time) rather than pile up reads of the archive;
//! - nothing outlives `stop` or a drop: connections still open after the
//!   drain are cut, so the archive can be reopened at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore, watch};
use tokio::task::JoinHandle;
use wormbox_app::{Access, App, Credentials};

use crate::grpc::budget::ReceiveBudget;
use crate::metrics::Metrics;

/// Connections served at once; a scraper needs one.
const MAX_CONNECTIONS: usize = 32;
/// Connections at once from one client address (an IPv4 address or an
/// IPv6 /64, counted as the S3 listener counts them).
const PER_ADDRESS: usize = 4;
/// How long a connection may last, handshake, request and answer included.
const CONNECTION_TIME: Duration = Duration::from_secs(30);
/// How long a connection may take to send a request's head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stop waits for scrapes in flight.
const DRAIN: Duration = Duration::from_secs(5);
/// The OpenMetrics text format (Prometheus negotiates it and reads it).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A running metrics listener.
#[derive(Debug)]
pub(crate) struct MetricsServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl MetricsServer {
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and lets scrapes in flight finish (at most `DRAIN`).
    pub(crate) async fn stop(mut self) {
        self.stop.send_replace(true);
        let _ = (&mut self.task).await;
    }
}

impl Drop for MetricsServer {
    // The accept loop owns the connections' tasks: aborting it aborts them.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What each request is answered from.
struct Served {
    metrics: Arc<Metrics>,
    app: Arc<App>,
    budget: ReceiveBudget,
    /// Whether a caller must present an auditor's or admin's credential.
    credential_required: bool,
    /// One scrape at a time.
    scrape: Mutex<()>,
}

/// Serves the metrics on `listener`, over TLS when `tls` is given.
pub(crate) fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    metrics: Arc<Metrics>,
    app: Arc<App>,
    budget: ReceiveBudget,
) -> std::io::Result<MetricsServer> {
    let addr = listener.local_addr()?;
    let served = Arc::new(Served {
        metrics,
        app,
        budget,
        credential_required: !addr.ip().is_loopback(),
        scrape: Mutex::new(()),
    });
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, tls, served, stopped));
    Ok(MetricsServer { addr, stop, task })
}

async fn stopping(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    served: Arc<Served>,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let per_address = Arc::new(wormbox_s3::PerAddress::new(PER_ADDRESS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // Dropped with this loop (at the end, or when the task is aborted):
    // every connection still open is aborted with it.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit { Ok(p) => p, Err(_) => break },
            _ = stopping(&mut stopped) => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "the metrics listener could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopping(&mut stopped) => break,
        };
        while connections.try_join_next().is_some() {}
        let Some(address_slot) = per_address.enter(peer.ip()) else {
            tracing::debug!(%peer, "a metrics connection refused: its address holds the most it may");
            continue;
        };
        let (served, tls, watcher) = (Arc::clone(&served), tls.clone(), graceful.watcher());
        connections.spawn(async move {
            let _slots = (permit, address_slot);
            let handler = hyper::service::service_fn(move |request: Request<Incoming>| {
                let served = Arc::clone(&served);
                async move { Ok::<_, std::convert::Infallible>(answer(&served, &request).await) }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).keep_alive(false).max_headers(64);
            let serving = async {
                match tls {
                    None => watcher.watch(http.serve_connection(TokioIo::new(tcp), handler)).await,
                    Some(tls) => match tls.accept(tcp).await {
                        Ok(stream) => watcher.watch(http.serve_connection(TokioIo::new(stream), handler)).await,
                        Err(err) => {
                            tracing::debug!(%peer, error = %err, "a metrics TLS handshake failed");
                            Ok(())
                        }
                    },
                }
            };
            match tokio::time::timeout(CONNECTION_TIME, serving).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::debug!(%peer, error = %err, "a metrics connection ended with an error"),
                Err(_) => tracing::debug!(%peer, "a metrics connection was cut after {CONNECTION_TIME:?}"),
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("metrics scrapes still running after {DRAIN:?} were cut off by shutdown");
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8".parse().expect("valid"));
    response
}

async fn answer(served: &Served, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "not found: the metrics are at /metrics\n");
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        response.headers_mut().insert(hyper::header::ALLOW, "GET, HEAD".parse().expect("valid"));
        return response;
    }
    if served.credential_required
        && let Err(refused) = authorized(served, request)
    {
        return refused.answer();
    }
    let body = {
        let _turn = served.scrape.lock().await;
        served.metrics.render(&served.app, &served.budget).await
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, CONTENT_TYPE.parse().expect("valid"));
    response.headers_mut().insert(hyper::header::CACHE_CONTROL, "no-store".parse().expect("valid"));
    response
}

/// Why a caller beyond loopback is not answered.
enum Refused {
    /// No credential, or one that does not authenticate.
    Unauthenticated,
    /// A principal whose role may not read the metrics.
    Forbidden,
}

impl Refused {
    fn answer(self) -> Response<Full<Bytes>> {
        match self {
            Refused::Unauthenticated => {
                let mut response =
                    plain(StatusCode::UNAUTHORIZED, "a bearer credential of the auditor or admin role is required\n");
                response.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, "Bearer".parse().expect("valid"));
                response
            }
            Refused::Forbidden => plain(StatusCode::FORBIDDEN, "the metrics need the auditor or admin role\n"),
        }
    }
}

/// Whether the caller holds an auditor's or admin's credential; the same
/// 401 for every credential that does not authenticate (unknown, revoked,
/// wrong secret, malformed), as gRPC answers.
fn authorized(served: &Served, request: &Request<Incoming>) -> Result<(), Refused> {
    let header = request.headers().get(hyper::header::AUTHORIZATION).ok_or(Refused::Unauthenticated)?;
    let header = header.to_str().map_err(|_| Refused::Unauthenticated)?;
    let credential = header.strip_prefix("Bearer ").ok_or(Refused::Unauthenticated)?;
    let (access_key, secret) = credential.split_once(':').ok_or(Refused::Unauthenticated)?;
    let actor =
        served.app.authenticate(Credentials::Bearer { access_key, secret }).map_err(|_| Refused::Unauthenticated)?;
    served.app.authorize(&actor, Access::Audit).map_err(|_| Refused::Forbidden)
}
