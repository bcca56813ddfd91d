//! The client's HTTP/1.1 transport: a pooled hyper client over plain TCP or
//! TLS (rustls on ring, trusting only the site's CA file), and the request
//! bodies: empty, small in memory, or a caller's stream checked as it goes.
//!
//! Invariant: a streamed body is sent only as far as it matches what was
//! signed for it: its last chunk is held back unless the byte count equals
//! the declared `Content-Length` and the SHA-256 equals the declared digest,
//! so a server never receives a complete body whose bytes differ from the
//! digest the caller vouched for.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use http::Uri;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use ring::digest;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::S3Error;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A request body, whatever its source.
pub(crate) type Body = UnsyncBoxBody<Bytes, BoxError>;
pub(crate) type HttpClient = hyper_util::client::legacy::Client<Connector, Body>;

/// Builds the pooled client; `ca_pem` is required for `https` endpoints.
pub(crate) fn client(https: bool, ca_pem: Option<&std::path::Path>) -> Result<HttpClient, S3Error> {
    let tls = match (https, ca_pem) {
        (false, _) => None,
        (true, None) => return Err(S3Error::Config("an https endpoint needs a CA file (ca_pem)".into())),
        (true, Some(path)) => Some(tls_connector(path)?),
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let connector = Connector { http, tls };
    Ok(hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector))
}

fn tls_connector(path: &std::path::Path) -> Result<TlsConnector, S3Error> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| S3Error::Config(format!("CA file {}: {e}", path.display())))?;
    for cert in certs {
        let cert = cert.map_err(|e| S3Error::Config(format!("CA file {}: {e}", path.display())))?;
        roots.add(cert).map_err(|e| S3Error::Config(format!("CA file {}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(S3Error::Config(format!("CA file {} holds no certificate", path.display())));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| S3Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Connects TCP, then TLS for `https` URIs.
#[derive(Clone)]
pub(crate) struct Connector {
    http: HttpConnector,
    tls: Option<TlsConnector>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").field("tls", &self.tls.is_some()).finish()
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Conn>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = if uri.scheme_str() == Some("https") { self.tls.clone() } else { None };
        let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
        let connecting = self.http.call(uri);
        Box::pin(async move {
            let tcp = connecting.await?.into_inner();
            match tls {
                None => Ok(TokioIo::new(Conn::Plain(tcp))),
                Some(tls) => {
                    let name = ServerName::try_from(host)?;
                    Ok(TokioIo::new(Conn::Tls(Box::new(tls.connect(name, tcp).await?))))
                }
            }
        })
    }
}

/// A connection to the server, plain or TLS.
#[derive(Debug)]
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

pub(crate) fn empty_body() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

pub(crate) fn full_body(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}

/// What a checked stream found wrong, read after a failed request.
pub(crate) type Problem = Arc<Mutex<Option<String>>>;

/// A caller's stream as a body that must be `len` bytes with SHA-256 `sha256`.
pub(crate) fn checked_body<S>(stream: S, len: u64, sha256: [u8; 32]) -> (Body, Problem)
where
    S: Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
{
    let problem: Problem = Arc::default();
    let checked = Checked {
        inner: Box::pin(stream),
        expected_len: len,
        expected_sha256: sha256,
        sent: 0,
        hasher: Some(digest::Context::new(&digest::SHA256)),
        problem: problem.clone(),
    };
    let frames = futures::StreamExt::map(checked, |chunk| chunk.map(Frame::data));
    (StreamBody::new(frames).boxed_unsync(), problem)
}

struct Checked {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>,
    expected_len: u64,
    expected_sha256: [u8; 32],
    sent: u64,
    /// `None` once the body is complete and checked.
    hasher: Option<digest::Context>,
    problem: Problem,
}

impl Checked {
    fn fail(&mut self, why: String) -> Poll<Option<Result<Bytes, BoxError>>> {
        self.hasher = None;
        *self.problem.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
        Poll::Ready(Some(Err(why.into())))
    }
}

impl Stream for Checked {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(hasher) = this.hasher.as_mut() else { return Poll::Ready(None) };
        match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Err(e))) => this.fail(format!("the body's source failed: {e}")),
            Poll::Ready(None) if this.sent == this.expected_len => {
                // Only an empty body gets here: a longer one's hasher is taken with its last chunk.
                let done = hasher.clone().finish();
                if done.as_ref() != this.expected_sha256 {
                    return this.fail("the body's SHA-256 differs from the one declared".to_owned());
                }
                this.hasher = None;
                Poll::Ready(None)
            }
            Poll::Ready(None) => {
                let (sent, expected) = (this.sent, this.expected_len);
                this.fail(format!("the body ended after {sent} of its {expected} bytes"))
            }
            Poll::Ready(Some(Ok(chunk))) => {
                let total = this.sent + chunk.len() as u64;
                if total > this.expected_len {
                    let expected = this.expected_len;
                    return this.fail(format!("the body is longer than its {expected} bytes"));
                }
                hasher.update(&chunk);
                this.sent = total;
                if total == this.expected_len {
                    let Some(done) = this.hasher.take() else { return Poll::Ready(None) };
                    if done.finish().as_ref() != this.expected_sha256 {
                        // Held back: the server sees a short body and stores nothing.
                        return this.fail("the body's SHA-256 differs from the one declared".to_owned());
                    }
                }
                Poll::Ready(Some(Ok(chunk)))
            }
        }
    }
}
