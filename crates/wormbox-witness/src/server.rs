//! The witness's HTTP service (`wormbox witness serve`): `POST
//! /add-checkpoint` as C2SP `tlog-witness` gives it, and `GET /` saying
//! what it is.
//!
//! Invariant: no request can hold the witness: bodies are read up to
//! `protocol::MAX_BODY` within a deadline, connections are bounded in
//! number and time, and a judgement (which syncs the state file) runs off
//! the async threads.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::protocol::MAX_BODY;
use crate::witness::{Reply, Witness};

/// Connections served at once.
const MAX_CONNECTIONS: usize = 64;
/// How long a client has to send its headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one connection may last.
const CONNECTION_TIME: Duration = Duration::from_secs(60);

/// Serves `witness` on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, witness: Arc<Witness>, shutdown: impl std::future::Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "the witness could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        let witness = Arc::clone(&witness);
        connections.spawn(async move {
            let _permit = permit;
            let handler = hyper::service::service_fn(move |request: Request<Incoming>| {
                let witness = Arc::clone(&witness);
                async move { Ok::<_, std::convert::Infallible>(answer(witness, request).await) }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).max_headers(64);
            match tokio::time::timeout(CONNECTION_TIME, http.serve_connection(TokioIo::new(tcp), handler)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::debug!(%peer, error = %err, "a witness connection ended with an error"),
                Err(_) => tracing::debug!(%peer, "a witness connection was cut after {CONNECTION_TIME:?}"),
            }
        });
    }
}

async fn answer(witness: Arc<Witness>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = match (request.method(), request.uri().path()) {
        (&Method::POST, "/add-checkpoint") => {
            let body = Limited::new(request.into_body(), MAX_BODY);
            match tokio::time::timeout(HEADER_TIMEOUT, body.collect()).await {
                Ok(Ok(body)) => {
                    let body = body.to_bytes();
                    tokio::task::spawn_blocking(move || witness.add_checkpoint(&body))
                        .await
                        .unwrap_or_else(|_| text(500, "the witness stopped judging the request"))
                }
                Ok(Err(_)) => text(413, format!("a request body is at most {MAX_BODY} bytes")),
                Err(_) => text(408, "the request body did not arrive in time"),
            }
        }
        (&Method::GET, "/") => {
            text(200, format!("a Wormbox witness (C2SP tlog-witness): {}", witness.signer().key().vkey()))
        }
        (_, "/add-checkpoint") => text(405, "add-checkpoint is a POST"),
        _ => text(404, "not a witness endpoint"),
    };
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(reply.content_type));
    response
}

fn text(status: u16, body: impl Into<String>) -> Reply {
    Reply { status, content_type: "text/plain; charset=utf-8", body: body.into() + "\n" }
}
