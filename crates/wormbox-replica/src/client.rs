//! `S3Client`: the S3 calls the replicator makes on one bucket of an S3
//! Object Lock target (path-style addressing, SigV4 header auth), each a typed
//! request and a typed answer.
//!
//! Invariant: every request is signed with the time of the `Clock` it was
//! given and the exact path, query and headers sent; a refusal comes back as
//! `S3Error::Service` with the server's code, never as a success; the secret
//! key and object bytes appear in no error.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use wormbox_model::{Clock, Timestamp};

use crate::error::{S3Error, ServiceError};
use crate::sigv4::{self, Credentials};
use crate::transport::{self, Body, HttpClient, Problem};
use crate::types::{
    BucketLock, DefaultRetention, DeleteOutcome, EntryKind, LockMode, ObjectHead, PutObject, PutOutcome,
    RetentionPeriod, VersionEntry, VersionPage, Versioning, VersioningStatus, parse_date, wire_date,
};
use crate::xml::{self, Element, S3_NS};

/// The most of an error or XML answer read; S3's are a few KiB, a listing of
/// 1000 entries a few hundred.
const MAX_XML_BYTES: usize = 16 << 20;

/// Where and as whom the client talks.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// `http://host:port` or `https://host:port` (no path).
    pub endpoint: String,
    /// The SigV4 region (`us-east-1` for RGW and SeaweedFS unless configured).
    pub region: String,
    /// The bucket every call addresses.
    pub bucket: String,
    /// The access key and secret.
    pub credentials: Credentials,
    /// The CA certificates (PEM) an `https` endpoint's certificate must chain
    /// to; required for `https`, no system roots are used.
    pub ca_pem: Option<PathBuf>,
    /// The longest a request may wait for its answer's head (for a PutObject
    /// that includes sending the body), and for each chunk of a GetObject body.
    pub timeout: Duration,
}

/// A client for one bucket of an S3 target.
#[derive(Clone, Debug)]
pub struct S3Client {
    http: HttpClient,
    clock: Arc<dyn Clock>,
    scheme: String,
    /// `host[:port]`: the `Host` header, signed.
    authority: String,
    region: String,
    bucket: String,
    credentials: Credentials,
    timeout: Duration,
}

/// A request to send: method, key, query, headers, body.
struct Call<'a> {
    method: Method,
    key: Option<&'a str>,
    query: Vec<(&'static str, String)>,
    headers: Vec<(String, String)>,
    payload: Payload,
}

enum Payload {
    Empty,
    /// A small body in memory (XML): its SHA-256 is computed here.
    Bytes(Bytes),
    /// A body in memory sent as `UNSIGNED-PAYLOAD`: the signature covers
    /// the headers only, so a checksum header must vouch for the bytes.
    Unsigned(Bytes),
    /// A caller's stream with its declared length and digest.
    Stream {
        body: Body,
        problem: Problem,
        sha256_hex: String,
        len: u64,
    },
}

impl<'a> Call<'a> {
    fn new(method: Method, key: Option<&'a str>) -> Call<'a> {
        Call { method, key, query: Vec::new(), headers: Vec::new(), payload: Payload::Empty }
    }

    fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }

    fn version(self, version_id: Option<&str>) -> Self {
        match version_id {
            Some(v) => self.query("versionId", v),
            None => self,
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// An XML body, with the checksum headers servers accept in place of
    /// `Content-MD5` for the lock calls (ring has no MD5).
    fn xml(self, body: String) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
        let mut call = self
            .header("content-type", "application/xml")
            .header("x-amz-checksum-sha256", data_encoding::BASE64.encode(digest.as_ref()))
            .header("x-amz-sdk-checksum-algorithm", "SHA256");
        call.payload = Payload::Bytes(Bytes::from(body));
        call
    }
}

impl S3Client {
    /// A client for `config`, signing with `clock`'s time. Builds no
    /// connection yet; fails on an unusable endpoint or CA file.
    pub fn new(config: S3Config, clock: Arc<dyn Clock>) -> Result<S3Client, S3Error> {
        let uri: http::Uri =
            config.endpoint.parse().map_err(|e| S3Error::Config(format!("endpoint {:?}: {e}", config.endpoint)))?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s.to_owned(),
            _ => return Err(S3Error::Config(format!("endpoint {:?}: not http:// or https://", config.endpoint))),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| S3Error::Config(format!("endpoint {:?}: no host", config.endpoint)))?
            .as_str()
            .to_owned();
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() || authority.contains('@') {
            return Err(S3Error::Config(format!(
                "endpoint {:?}: only scheme, host and port (path-style addressing adds the bucket)",
                config.endpoint
            )));
        }
        if config.bucket.is_empty() || config.bucket.contains('/') {
            return Err(S3Error::Config(format!("bucket {:?} is not a bucket name", config.bucket)));
        }
        let http = transport::client(scheme == "https", config.ca_pem.as_deref())?;
        Ok(S3Client {
            http,
            clock,
            scheme,
            authority,
            region: config.region,
            bucket: config.bucket,
            credentials: config.credentials,
            timeout: config.timeout,
        })
    }

    /// The bucket this client addresses.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket, with Object Lock (and so versioning) if asked.
    pub async fn create_bucket(&self, object_lock_enabled: bool) -> Result<(), S3Error> {
        let mut call = Call::new(Method::PUT, None);
        if object_lock_enabled {
            call = call.header("x-amz-bucket-object-lock-enabled", "true");
        }
        if self.region != "us-east-1" {
            call.payload = Payload::Bytes(Bytes::from(format!(
                "<CreateBucketConfiguration xmlns=\"{S3_NS}\"><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                quick_xml::escape::escape(self.region.as_str())
            )));
        }
        self.send(call).await.map(drop)
    }

    /// The bucket's Object Lock configuration; `enabled: false` for a bucket
    /// without Object Lock.
    pub async fn bucket_lock_configuration(&self) -> Result<BucketLock, S3Error> {
        let root = match self.get_xml(Call::new(Method::GET, None).query("object-lock", "")).await {
            Ok(root) => root,
            Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => {
                return Ok(BucketLock { enabled: false, default_retention: None });
            }
            Err(e) => return Err(e),
        };
        let enabled = root.text_of("ObjectLockEnabled") == Some("Enabled");
        let default_retention = match root.child("Rule").and_then(|r| r.child("DefaultRetention")) {
            None => None,
            Some(d) => {
                let mode =
                    d.text_of("Mode").and_then(LockMode::parse).ok_or_else(|| unreadable("DefaultRetention Mode"))?;
                let number =
                    |name: &str| d.text_of(name).map(|t| t.trim().parse::<u32>().map_err(|_| unreadable(name)));
                let period = match (number("Days"), number("Years")) {
                    (Some(days), None) => RetentionPeriod::Days(days?),
                    (None, Some(years)) => RetentionPeriod::Years(years?),
                    _ => return Err(unreadable("DefaultRetention: one of Days or Years")),
                };
                Some(DefaultRetention { mode, period })
            }
        };
        Ok(BucketLock { enabled, default_retention })
    }

    /// Enables Object Lock on the bucket with `default` retention (or none).
    pub async fn put_object_lock_configuration(&self, default: Option<DefaultRetention>) -> Result<(), S3Error> {
        let rule = match default {
            None => String::new(),
            Some(DefaultRetention { mode, period }) => {
                let period = match period {
                    RetentionPeriod::Days(n) => format!("<Days>{n}</Days>"),
                    RetentionPeriod::Years(n) => format!("<Years>{n}</Years>"),
                };
                format!("<Rule><DefaultRetention><Mode>{}</Mode>{period}</DefaultRetention></Rule>", mode.as_str())
            }
        };
        let body = format!(
            "<ObjectLockConfiguration xmlns=\"{S3_NS}\"><ObjectLockEnabled>Enabled</ObjectLockEnabled>{rule}</ObjectLockConfiguration>"
        );
        self.send(Call::new(Method::PUT, None).query("object-lock", "").xml(body)).await.map(drop)
    }

    /// The bucket's versioning state and MFA Delete flag.
    pub async fn bucket_versioning(&self) -> Result<Versioning, S3Error> {
        let root = self.get_xml(Call::new(Method::GET, None).query("versioning", "")).await?;
        let status = match root.text_of("Status") {
            None | Some("") => VersioningStatus::Unversioned,
            Some("Enabled") => VersioningStatus::Enabled,
            Some("Suspended") => VersioningStatus::Suspended,
            Some(_) => return Err(unreadable("VersioningConfiguration Status")),
        };
        Ok(Versioning { status, mfa_delete: root.text_of("MfaDelete") == Some("Enabled") })
    }

    /// Turns versioning on or suspends it; `mfa_delete` also turns MFA Delete
    /// on or off, which S3 allows only with `mfa` (`x-amz-mfa`: the device
    /// serial, a space, the code).
    pub async fn put_bucket_versioning(
        &self,
        enabled: bool,
        mfa_delete: Option<bool>,
        mfa: Option<&str>,
    ) -> Result<(), S3Error> {
        let status = if enabled { "Enabled" } else { "Suspended" };
        let mfa_delete = match mfa_delete {
            None => "",
            Some(true) => "<MfaDelete>Enabled</MfaDelete>",
            Some(false) => "<MfaDelete>Disabled</MfaDelete>",
        };
        let body = format!(
            "<VersioningConfiguration xmlns=\"{S3_NS}\"><Status>{status}</Status>{mfa_delete}</VersioningConfiguration>"
        );
        let mut call = Call::new(Method::PUT, None).query("versioning", "");
        if let Some(mfa) = mfa {
            call = call.header("x-amz-mfa", mfa);
        }
        self.send(call.xml(body)).await.map(drop)
    }

    /// Uploads `body` (exactly `put.content_length` bytes whose SHA-256 is
    /// `put.sha256`) under `key`, streaming it. A body that turns out longer,
    /// shorter or different is cut off before its end (`S3Error::Body`): the
    /// server stores nothing.
    pub async fn put_object<S>(&self, key: &str, body: S, put: PutObject) -> Result<PutOutcome, S3Error>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let mut call = Call::new(Method::PUT, Some(check_key(key)?))
            .header("content-type", put.content_type.as_deref().unwrap_or("application/octet-stream"));
        for (name, value) in &put.metadata {
            let valid_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !valid_name {
                return Err(S3Error::Invalid(format!(
                    "metadata name {name:?}: letters, digits, '-', '_' and '.' only"
                )));
            }
            if !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
                return Err(S3Error::Invalid(format!("metadata {name:?}: the value must be printable ASCII")));
            }
            call = call.header(&format!("x-amz-meta-{}", name.to_ascii_lowercase()), value.trim());
        }
        if let Some((mode, until)) = put.lock {
            call = call
                .header("x-amz-object-lock-mode", mode.as_str())
                .header("x-amz-object-lock-retain-until-date", wire_date(until));
        }
        if put.legal_hold {
            call = call.header("x-amz-object-lock-legal-hold", "ON");
        }
        if put.checksum {
            call = call.header("x-amz-checksum-sha256", data_encoding::BASE64.encode(&put.sha256));
        }
        let (body, problem) = transport::checked_body(body, put.content_length, put.sha256);
        call.payload = Payload::Stream { body, problem, sha256_hex: hex::encode(put.sha256), len: put.content_length };
        Ok(put_outcome(self.send(call).await?.headers()))
    }

    /// Uploads `body` under `key` with its payload unsigned
    /// (`x-amz-content-sha256: UNSIGNED-PAYLOAD`, as AWS SDKs send over TLS,
    /// though they state the checksum in an aws-chunked trailer), the
    /// bytes vouched for by `checksum`, an `x-amz-checksum-*` header (name,
    /// base64 value) that the server checks. The load generator measures the
    /// S3 endpoint with it beside the signed-payload form `put_object` sends.
    pub async fn put_object_unsigned(
        &self,
        key: &str,
        body: Bytes,
        checksum: (&str, &str),
    ) -> Result<PutOutcome, S3Error> {
        let (name, value) = checksum;
        if !name.starts_with("x-amz-checksum-") {
            return Err(S3Error::Invalid(format!("{name}: not an x-amz-checksum-* header")));
        }
        let mut call = Call::new(Method::PUT, Some(check_key(key)?))
            .header("content-type", "application/octet-stream")
            .header(name, value);
        call.payload = Payload::Unsigned(body);
        Ok(put_outcome(self.send(call).await?.headers()))
    }

    /// Sets a version's retention (`bypass_governance` to shorten GOVERNANCE).
    pub async fn put_object_retention(
        &self,
        key: &str,
        version_id: Option<&str>,
        mode: LockMode,
        until: Timestamp,
        bypass_governance: bool,
    ) -> Result<(), S3Error> {
        let body = format!(
            "<Retention xmlns=\"{S3_NS}\"><Mode>{}</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>",
            mode.as_str(),
            wire_date(until)
        );
        let mut call = Call::new(Method::PUT, Some(check_key(key)?)).query("retention", "").version(version_id);
        if bypass_governance {
            call = call.header("x-amz-bypass-governance-retention", "true");
        }
        self.send(call.xml(body)).await.map(drop)
    }

    /// A version's retention, `None` if it has none.
    pub async fn get_object_retention(
        &self,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<(LockMode, Timestamp)>, S3Error> {
        let call = Call::new(Method::GET, Some(check_key(key)?)).query("retention", "").version(version_id);
        let root = match self.get_xml(call).await {
            Ok(root) => root,
            Err(e) if e.code() == Some("NoSuchObjectLockConfiguration") => return Ok(None),
            Err(e) => return Err(e),
        };
        match (root.text_of("Mode"), root.text_of("RetainUntilDate")) {
            (None, None) => Ok(None),
            (Some(mode), Some(until)) => Ok(Some((
                LockMode::parse(mode).ok_or_else(|| unreadable("Retention Mode"))?,
                parse_date(until).ok_or_else(|| unreadable("Retention RetainUntilDate"))?,
            ))),
            _ => Err(unreadable("Retention: Mode and RetainUntilDate")),
        }
    }

    /// Places (`on`) or removes a version's legal hold.
    pub async fn put_object_legal_hold(&self, key: &str, version_id: Option<&str>, on: bool) -> Result<(), S3Error> {
        let status = if on { "ON" } else { "OFF" };
        let body = format!("<LegalHold xmlns=\"{S3_NS}\"><Status>{status}</Status></LegalHold>");
        let call = Call::new(Method::PUT, Some(check_key(key)?)).query("legal-hold", "").version(version_id);
        self.send(call.xml(body)).await.map(drop)
    }

    /// Whether a version's legal hold is ON.
    pub async fn get_object_legal_hold(&self, key: &str, version_id: Option<&str>) -> Result<bool, S3Error> {
        let call = Call::new(Method::GET, Some(check_key(key)?)).query("legal-hold", "").version(version_id);
        match self.get_xml(call).await {
            Ok(root) => Ok(root.text_of("Status") == Some("ON")),
            Err(e) if e.code() == Some("NoSuchObjectLockConfiguration") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes a version (with `version_id`), or writes a delete marker
    /// (without). `mfa` is `x-amz-mfa`: the device serial, a space, the code.
    pub async fn delete_object(
        &self,
        key: &str,
        version_id: Option<&str>,
        mfa: Option<&str>,
    ) -> Result<DeleteOutcome, S3Error> {
        let mut call = Call::new(Method::DELETE, Some(check_key(key)?)).version(version_id);
        if let Some(mfa) = mfa {
            call = call.header("x-amz-mfa", mfa);
        }
        let response = self.send(call).await?;
        let headers = response.headers();
        Ok(DeleteOutcome {
            version_id: header(headers, "x-amz-version-id"),
            delete_marker: header(headers, "x-amz-delete-marker").is_some_and(|v| v.eq_ignore_ascii_case("true")),
        })
    }

    /// A version's head, with its lock, hold and stored checksum (asked for
    /// with `x-amz-checksum-mode: ENABLED`).
    pub async fn head_object(&self, key: &str, version_id: Option<&str>) -> Result<ObjectHead, S3Error> {
        let call =
            Call::new(Method::HEAD, Some(check_key(key)?)).version(version_id).header("x-amz-checksum-mode", "ENABLED");
        let response = self.send(call).await?;
        read_head(response.headers())
    }

    /// A version's head and its bytes, to read chunk by chunk.
    pub async fn get_object(&self, key: &str, version_id: Option<&str>) -> Result<ObjectBody, S3Error> {
        let call =
            Call::new(Method::GET, Some(check_key(key)?)).version(version_id).header("x-amz-checksum-mode", "ENABLED");
        let response = self.send(call).await?;
        let head = read_head(response.headers())?;
        Ok(ObjectBody { head, body: response.into_body(), timeout: self.timeout })
    }

    /// One page of the bucket's versions and delete markers under `prefix`,
    /// starting after (`key_marker`, `version_id_marker`).
    pub async fn list_object_versions(
        &self,
        prefix: Option<&str>,
        key_marker: Option<&str>,
        version_id_marker: Option<&str>,
        max_keys: u32,
    ) -> Result<VersionPage, S3Error> {
        let mut call = Call::new(Method::GET, None).query("versions", "").query("max-keys", max_keys.to_string());
        for (name, value) in [("prefix", prefix), ("key-marker", key_marker), ("version-id-marker", version_id_marker)]
        {
            if let Some(value) = value {
                call = call.query(name, value);
            }
        }
        let root = self.get_xml(call).await?;
        let mut entries = Vec::new();
        for child in &root.children {
            let kind = match child.name.as_str() {
                "Version" => EntryKind::Version,
                "DeleteMarker" => EntryKind::DeleteMarker,
                _ => continue,
            };
            entries.push(VersionEntry {
                kind,
                key: child.text_of("Key").ok_or_else(|| unreadable("Version Key"))?.to_owned(),
                version_id: child.text_of("VersionId").unwrap_or("null").to_owned(),
                is_latest: child.text_of("IsLatest") == Some("true"),
                size: match child.text_of("Size") {
                    Some(s) => s.trim().parse().map_err(|_| unreadable("Version Size"))?,
                    None => 0,
                },
                etag: child.text_of("ETag").unwrap_or_default().to_owned(),
                last_modified: child.text_of("LastModified").and_then(parse_date),
            });
        }
        let text = |name: &str| root.text_of(name).filter(|t| !t.is_empty()).map(str::to_owned);
        Ok(VersionPage {
            entries,
            is_truncated: root.text_of("IsTruncated") == Some("true"),
            next_key_marker: text("NextKeyMarker"),
            next_version_id_marker: text("NextVersionIdMarker"),
        })
    }

    async fn get_xml(&self, call: Call<'_>) -> Result<Element, S3Error> {
        let response = self.send(call).await?;
        let bytes = read_limited(response.into_body(), self.timeout).await?;
        xml::parse(&bytes)
    }

    /// Signs and sends `call`; an error status becomes `S3Error::Service`.
    async fn send(&self, call: Call<'_>) -> Result<Response<Incoming>, S3Error> {
        let path = sigv4::encode_path(&self.bucket, call.key);
        let query = sigv4::canonical_query(&call.query);
        let date = sigv4::amz_date(self.clock.now());
        let (body, payload_sha256, len, problem) = match call.payload {
            Payload::Empty => (transport::empty_body(), sigv4::sha256_hex(b""), 0, None),
            Payload::Bytes(bytes) => {
                let hash = sigv4::sha256_hex(&bytes);
                let len = bytes.len() as u64;
                (transport::full_body(bytes), hash, len, None)
            }
            Payload::Unsigned(bytes) => {
                let len = bytes.len() as u64;
                (transport::full_body(bytes), "UNSIGNED-PAYLOAD".to_owned(), len, None)
            }
            Payload::Stream { body, problem, sha256_hex, len } => (body, sha256_hex, len, Some(problem)),
        };
        let mut headers = call.headers;
        headers.push(("host".to_owned(), self.authority.clone()));
        headers.push(("x-amz-date".to_owned(), date.clone()));
        headers.push(("x-amz-content-sha256".to_owned(), payload_sha256.clone()));
        let signed = sigv4::Request {
            method: call.method.as_str(),
            path: &path,
            query: &query,
            headers: &headers,
            payload_sha256: &payload_sha256,
        };
        let authorization = sigv4::authorization(&self.credentials, &self.region, &date, &signed);
        let uri = if query.is_empty() {
            format!("{}://{}{path}", self.scheme, self.authority)
        } else {
            format!("{}://{}{path}?{query}", self.scheme, self.authority)
        };
        let mut request = Request::builder().method(call.method.clone()).uri(&uri);
        for (name, value) in &headers {
            let value = HeaderValue::from_str(value)
                .map_err(|_| S3Error::Invalid(format!("header {name}: not a valid header value")))?;
            request = request.header(name.as_str(), value);
        }
        if matches!(call.method, Method::PUT | Method::POST) || len > 0 {
            request = request.header(http::header::CONTENT_LENGTH, len);
        }
        let request = request
            .header(http::header::AUTHORIZATION, authorization)
            .body(body)
            .map_err(|e| S3Error::Invalid(format!("request: {e}")))?;
        let response = match tokio::time::timeout(self.timeout, self.http.request(request)).await {
            Err(_) => return Err(S3Error::Timeout(self.timeout)),
            Ok(Err(e)) => {
                let found = problem.and_then(|p| p.lock().unwrap_or_else(|p| p.into_inner()).take());
                return Err(match found {
                    Some(why) => S3Error::Body(why),
                    None => S3Error::Transport(chain(&e)),
                });
            }
            Ok(Ok(response)) => response,
        };
        if response.status().is_success() {
            return Ok(response);
        }
        Err(self.refusal(call.method, response).await)
    }

    async fn refusal(&self, method: Method, response: Response<Incoming>) -> S3Error {
        let status = response.status();
        let request_id = header(response.headers(), "x-amz-request-id");
        let fallback = |message: String| ServiceError {
            status: status.as_u16(),
            code: status_code_name(status).to_owned(),
            message,
            request_id: request_id.clone(),
        };
        if method == Method::HEAD {
            return S3Error::Service(Box::new(fallback(String::new())));
        }
        let body = match read_limited(response.into_body(), self.timeout).await {
            Ok(body) => body,
            Err(e) => return S3Error::Service(Box::new(fallback(format!("(error body unreadable: {e})")))),
        };
        let error = match xml::parse(&body) {
            Ok(root) if root.name == "Error" => ServiceError {
                status: status.as_u16(),
                code: root
                    .text_of("Code")
                    .filter(|c| !c.is_empty())
                    .map_or_else(|| status_code_name(status).to_owned(), str::to_owned),
                message: root.text_of("Message").unwrap_or_default().to_owned(),
                request_id: root.text_of("RequestId").filter(|r| !r.is_empty()).map(str::to_owned).or(request_id),
            },
            _ => fallback(String::new()),
        };
        S3Error::Service(Box::new(error))
    }
}

/// A GetObject answer: the head, then the body chunk by chunk.
#[derive(Debug)]
pub struct ObjectBody {
    /// The version's head.
    pub head: ObjectHead,
    body: Incoming,
    timeout: Duration,
}

impl ObjectBody {
    /// The next chunk of bytes, `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, S3Error> {
        loop {
            let frame = match tokio::time::timeout(self.timeout, self.body.frame()).await {
                Err(_) => return Err(S3Error::Timeout(self.timeout)),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(S3Error::Transport(chain(&e))),
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                return Ok(Some(data));
            }
        }
    }

    /// The body as a stream of chunks.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, S3Error>> + Send {
        futures::stream::unfold(self, |mut body| async move {
            match body.chunk().await {
                Ok(Some(data)) => Some((Ok(data), body)),
                Ok(None) => None,
                Err(e) => Some((Err(e), body)),
            }
        })
    }
}

fn read_head(headers: &HeaderMap) -> Result<ObjectHead, S3Error> {
    let size =
        header(headers, "content-length").map_or(Ok(0), |v| v.parse().map_err(|_| unreadable("Content-Length")))?;
    let mut metadata: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| {
            let meta = name.as_str().strip_prefix("x-amz-meta-")?;
            Some((meta.to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    metadata.sort();
    let lock = match (header(headers, "x-amz-object-lock-mode"), header(headers, "x-amz-object-lock-retain-until-date"))
    {
        (Some(mode), Some(until)) => Some((
            LockMode::parse(&mode).ok_or_else(|| unreadable("x-amz-object-lock-mode"))?,
            parse_date(&until).ok_or_else(|| unreadable("x-amz-object-lock-retain-until-date"))?,
        )),
        _ => None,
    };
    let checksum_sha256 = match header(headers, "x-amz-checksum-sha256") {
        None => None,
        Some(b64) => {
            let bytes =
                data_encoding::BASE64.decode(b64.as_bytes()).map_err(|_| unreadable("x-amz-checksum-sha256"))?;
            Some(<[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| unreadable("x-amz-checksum-sha256"))?)
        }
    };
    Ok(ObjectHead {
        size,
        etag: header(headers, "etag").unwrap_or_default(),
        version_id: header(headers, "x-amz-version-id"),
        content_type: header(headers, "content-type"),
        last_modified: header(headers, "last-modified").and_then(|d| parse_date(&d)),
        metadata,
        lock,
        legal_hold: header(headers, "x-amz-object-lock-legal-hold").is_some_and(|v| v.eq_ignore_ascii_case("ON")),
        checksum_sha256,
    })
}

/// What a PutObject's answer says of the version it wrote (S3 shows no
/// version id, or `null`, in an unversioned bucket).
fn put_outcome(headers: &HeaderMap) -> PutOutcome {
    PutOutcome {
        version_id: header(headers, "x-amz-version-id").filter(|v| v != "null"),
        etag: header(headers, "etag").unwrap_or_default(),
    }
}

fn header(headers: &HeaderMap, name: &'static str) -> Option<String> {
    headers.get(HeaderName::from_static(name)).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn read_limited(body: Incoming, timeout: Duration) -> Result<Bytes, S3Error> {
    match tokio::time::timeout(timeout, Limited::new(body, MAX_XML_BYTES).collect()).await {
        Err(_) => Err(S3Error::Timeout(timeout)),
        Ok(Err(e)) => Err(S3Error::Transport(format!("reading the answer: {e}"))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// A key S3 can address: 1 to 1024 bytes (UTF-8 by construction).
fn check_key(key: &str) -> Result<&str, S3Error> {
    if key.is_empty() || key.len() > 1024 {
        return Err(S3Error::Invalid(format!("an object key is 1 to 1024 bytes, not {}", key.len())));
    }
    Ok(key)
}

fn unreadable(what: &str) -> S3Error {
    S3Error::Xml(format!("{what} missing or unreadable"))
}

/// The code an error without an XML body gets (HEAD answers have none).
fn status_code_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        301 => "PermanentRedirect",
        304 => "NotModified",
        400 => "BadRequest",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        412 => "PreconditionFailed",
        416 => "InvalidRange",
        500 => "InternalError",
        501 => "NotImplemented",
        503 => "ServiceUnavailable",
        _ => "HttpError",
    }
}

/// An error and its sources, one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
