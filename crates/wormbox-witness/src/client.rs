//! What the appliance sends a witness: an add-checkpoint request over HTTP,
//! and the answer read back: a cosignature that verifies under the key the
//! appliance was configured with, the size the witness holds (409), or its
//! refusal.
//!
//! Invariant: a cosignature is kept only if it verifies under the
//! configured witness key over the checkpoint sent; anything else the
//! witness says is reported, never stored as its cosignature.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::cosign::{Cosignature, CosignerKey};
use crate::protocol::{AddCheckpoint, parse_size};

/// How long one request may take.
const REQUEST_TIME: Duration = Duration::from_secs(30);
/// The most of an answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// What a witness answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// It cosigned.
    Cosigned(Cosignature),
    /// It holds a checkpoint of another size for this log (409 with a size).
    Conflict {
        /// The size it holds.
        size: u64,
    },
    /// It refused: 409 without a size (another root at its size), 422 (the
    /// proof did not link), 403, 404, 400 or another status.
    Refused {
        /// The HTTP status.
        status: u16,
        /// Its body, cut short.
        why: String,
    },
}

/// The witness could not be asked, or answered nonsense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessClientError {
    /// No answer (connection, timeout).
    #[error("the witness at {url} did not answer: {why}")]
    Unreachable {
        /// Where.
        url: String,
        /// Why.
        why: String,
    },
    /// A 200 without a valid cosignature of its key, or an unreadable answer.
    #[error("the witness at {url} answered without a valid cosignature of its key: {why}")]
    Malformed {
        /// Where.
        url: String,
        /// Why.
        why: String,
    },
}

/// One configured witness.
#[derive(Clone, Debug)]
pub struct WitnessClient {
    http: Client<HttpConnector, Full<Bytes>>,
    url: String,
    key: CosignerKey,
}

impl WitnessClient {
    /// A client of the witness at `url` (its submission prefix, `http://`)
    /// whose cosignatures verify under `key`.
    pub fn new(url: &str, key: CosignerKey) -> Result<WitnessClient, String> {
        let prefix = url.trim_end_matches('/');
        let uri: http::Uri = format!("{prefix}/add-checkpoint").parse().map_err(|_| format!("`{url}` is not a URL"))?;
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(format!("`{url}` carries credentials: a witness address has none"));
        }
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(format!("`{url}` is not an http:// address"));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        let http = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        Ok(WitnessClient { http, url: uri.to_string(), key })
    }

    /// The witness's key.
    pub fn key(&self) -> &CosignerKey {
        &self.key
    }

    /// Where requests go.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends `request` and reads the answer.
    pub async fn add_checkpoint(&self, request: &AddCheckpoint) -> Result<Submitted, WitnessClientError> {
        let unreachable = |why: String| WitnessClientError::Unreachable { url: self.url.clone(), why };
        let malformed = |why: String| WitnessClientError::Malformed { url: self.url.clone(), why };
        let http_request = http::Request::post(&self.url)
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(request.encode())))
            .map_err(|e| unreachable(e.to_string()))?;
        let asked = async {
            let response = self.http.request(http_request).await.map_err(|e| unreachable(e.to_string()))?;
            let status = response.status().as_u16();
            let size_answer = response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|t| t.as_bytes().starts_with(b"text/x.tlog.size"));
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| unreachable(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, WitnessClientError>((status, size_answer, body))
        };
        let (status, size_answer, body) = tokio::time::timeout(REQUEST_TIME, asked)
            .await
            .map_err(|_| unreachable(format!("no answer in {REQUEST_TIME:?}")))??;
        let text = String::from_utf8_lossy(&body);
        match status {
            200 => {
                let (note_text, _) = request
                    .checkpoint
                    .split_once("\n\n")
                    .ok_or_else(|| malformed("the checkpoint sent is not a signed note".to_owned()))?;
                self.key
                    .find(&format!("{note_text}\n"), &text)
                    .map(Submitted::Cosigned)
                    .ok_or_else(|| malformed("no line verifies under the configured key".to_owned()))
            }
            409 if size_answer => text
                .strip_suffix('\n')
                .and_then(parse_size)
                .map(|size| Submitted::Conflict { size })
                .ok_or_else(|| malformed("a 409 whose body is not a tree size".to_owned())),
            // Busy, down or slow: asked again, never taken for a judgement.
            408 | 429 | 500..=599 => Err(unreachable(format!("it answered HTTP {status}"))),
            // Its words are kept and printed: no control characters.
            status => {
                let why = text.trim().chars().take(300).map(|c| if c.is_control() { ' ' } else { c }).collect();
                Ok(Submitted::Refused { status, why })
            }
        }
    }
}
