//! Every gRPC call is named and counted: it gets a request id, recorded in
//! its tracing span (so every log line of the call carries it) and returned
//! in its response metadata as `x-request-id`; and it is counted by method
//! and status code when it ends (`wormbox_grpc_requests_total`).
//!
//! Invariant: a call is counted once: from the `grpc-status` of a
//! trailers-only answer (a refusal before the handler ran), else from its
//! trailers; a call dropped before it answered, or whose response body is
//! dropped before its trailers (the client went away, a deadline), counts
//! as `Cancelled`, one whose body fails or ends without trailers as
//! `Unknown`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http_body::{Frame, SizeHint};
use tonic::Code;
use tonic::body::Body;
use tonic::codegen::{Bytes, Service, http};
use tonic::server::NamedService;

use crate::metrics::Metrics;

/// `inner`, its calls counted.
#[derive(Clone, Debug)]
pub(crate) struct Counted<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> Counted<S> {
    pub(crate) fn new(inner: S, metrics: Arc<Metrics>) -> Counted<S> {
        Counted { inner, metrics }
    }
}

impl<S: NamedService> NamedService for Counted<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Counted<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<http::Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // Made before the call runs: dropped unanswered, it counts `Cancelled`.
        let mut call =
            Ending { path: request.uri().path().to_owned(), metrics: Arc::clone(&self.metrics), counted: false };
        let id = request_id();
        let response = self.inner.call(request);
        Box::pin(async move {
            // Polled inside the call's span (tonic enters it around each
            // poll), before the handler first runs.
            tracing::Span::current().record("request_id", id.as_str());
            let mut response = match response.await {
                Ok(response) => response,
                Err(err) => {
                    call.end(Code::Unknown);
                    return Err(err);
                }
            };
            if let Ok(value) = http::HeaderValue::from_str(&id) {
                response.headers_mut().insert(REQUEST_ID, value);
            }
            if let Some(code) = status_of(response.headers()) {
                call.end(code);
                return Ok(response);
            }
            if http_body::Body::is_end_stream(response.body()) {
                // No status and no body to carry trailers: not a gRPC answer.
                call.end(Code::Unknown);
                return Ok(response);
            }
            Ok(response.map(|body| Body::new(CountedBody { inner: body, call })))
        })
    }
}

/// The response header naming the call, as in its log lines.
const REQUEST_ID: &str = "x-request-id";

/// A new request id: 16 hex digits, a random half fixed at start (ids of
/// two runs differ) and a counting half (ids of one run never repeat).
fn request_id() -> String {
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 4];
        // Without randomness the ids are still unique within the run.
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
        u32::from_be_bytes(bytes)
    });
    format!("{prefix:08x}{:08x}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// The code in a `grpc-status` header or trailer.
fn status_of(headers: &http::HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
    Some(Code::from_i32(value))
}

/// A call whose outcome is not counted yet.
#[derive(Debug)]
struct Ending {
    path: String,
    metrics: Arc<Metrics>,
    counted: bool,
}

impl Ending {
    fn end(&mut self, code: Code) {
        if !self.counted {
            self.counted = true;
            self.metrics.call_ended(&self.path, code);
        }
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        self.end(Code::Cancelled);
    }
}

/// A response body that counts its call at its trailers.
#[derive(Debug)]
struct CountedBody {
    inner: Body,
    call: Ending,
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.call.end(status_of(trailers).unwrap_or(Code::Unknown));
                }
            }
            Poll::Ready(Some(Err(_))) => this.call.end(Code::Unknown),
            // Ended without trailers: not a gRPC answer.
            Poll::Ready(None) => this.call.end(Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
