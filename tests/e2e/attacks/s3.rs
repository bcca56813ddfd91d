//! The S3 front door (issue 19) attacked as gRPC was: it must inherit every
//! rule of "Trust". Each test speaks raw HTTP/1.1 to a real `wormboxd`
//! (signing with SigV4 or SigV2 here, so it can also sign wrongly, skew a
//! date, name another region or service, cut a body off or stall), checks
//! the answer S3 gives (code and status), and that a refused request grew
//! no ledger and stored nothing, while the server goes on serving.
//!
//! Request dates are real time (`SystemClock`): the endpoint judges skew
//! against the network's clock, not the compliance clock.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use ring::{digest, hmac};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wormbox_model::{Clock, SystemClock, Timestamp};
use wormbox_proto::v1;
use wormbox_test_utils::TestAppliance;

use super::{STEP, token_for};
use crate::e2e::{create_bucket, put, reason};

const BUCKET: &str = "vault";
/// How long any answer may take in these tests (the refusals are immediate).
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

// --- A raw S3 client -------------------------------------------------------

/// A request before it is signed: path and query exactly as sent (the query
/// in canonical order, `name=value`, so it is also what SigV4 signs).
#[derive(Clone, Debug)]
struct Req {
    method: &'static str,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// `x-amz-content-sha256` to send in place of the body's hash.
    payload: Option<String>,
    /// Headers sent outside the signature (as if added to a captured request).
    unsigned: Vec<(String, String)>,
}

impl Req {
    fn new(method: &'static str, path: &str) -> Req {
        Req {
            method,
            path: path.to_owned(),
            query: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
            payload: None,
            unsigned: Vec::new(),
        }
    }

    fn query(mut self, query: &str) -> Req {
        self.query = query.to_owned();
        self
    }

    fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    fn unsigned(mut self, name: &str, value: &str) -> Req {
        self.unsigned.push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Req {
        self.body = body.into();
        self
    }

    fn payload(mut self, payload: &str) -> Req {
        self.payload = Some(payload.to_owned());
        self
    }

    fn target(&self) -> String {
        if self.query.is_empty() { self.path.clone() } else { format!("{}?{}", self.path, self.query) }
    }
}

/// How a request is signed.
#[derive(Clone, Debug)]
enum Sign {
    Anonymous,
    V4 { access_key: String, secret: String, region: String, service: String, skew: i64 },
    V2 { access_key: String, secret: String, skew: i64 },
}

impl Sign {
    fn v4(access_key: &str, secret: &str) -> Sign {
        Sign::V4 {
            access_key: access_key.into(),
            secret: secret.into(),
            region: "us-east-1".into(),
            service: "s3".into(),
            skew: 0,
        }
    }

    fn v2(access_key: &str, secret: &str) -> Sign {
        Sign::V2 { access_key: access_key.into(), secret: secret.into(), skew: 0 }
    }

    fn skewed(mut self, seconds: i64) -> Sign {
        match &mut self {
            Sign::V4 { skew, .. } | Sign::V2 { skew, .. } => *skew = seconds,
            Sign::Anonymous => {}
        }
        self
    }

    fn scope(mut self, new_region: &str, new_service: &str) -> Sign {
        if let Sign::V4 { region, service, .. } = &mut self {
            *region = new_region.into();
            *service = new_service.into();
        }
        self
    }

    /// The headers that sign `req` sent to `host` (with its own headers).
    fn headers(&self, req: &Req, host: &str) -> Vec<(String, String)> {
        let mut headers = req.headers.clone();
        headers.push(("host".into(), host.into()));
        match self {
            Sign::Anonymous => headers,
            Sign::V4 { access_key, secret, region, service, skew } => {
                let date = amz_date(*skew);
                let payload = req.payload.clone().unwrap_or_else(|| sha256_hex(&req.body));
                headers.push(("x-amz-date".into(), date.clone()));
                headers.push(("x-amz-content-sha256".into(), payload.clone()));
                headers.sort();
                let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{}\n", v.trim())).collect();
                let signed = headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
                let canonical =
                    format!("{}\n{}\n{}\n{canonical_headers}\n{signed}\n{payload}", req.method, req.path, req.query);
                let day = &date[..8];
                let scope = format!("{day}/{region}/{service}/aws4_request");
                let to_sign = format!("AWS4-HMAC-SHA256\n{date}\n{scope}\n{}", sha256_hex(canonical.as_bytes()));
                let key = [day, region, service, "aws4_request"]
                    .iter()
                    .fold(format!("AWS4{secret}").into_bytes(), |key, part| hmac256(&key, part.as_bytes()));
                let signature = hex::encode(hmac256(&key, to_sign.as_bytes()));
                headers.push((
                    "authorization".into(),
                    format!(
                        "AWS4-HMAC-SHA256 Credential={access_key}/{scope},SignedHeaders={signed},Signature={signature}"
                    ),
                ));
                headers
            }
            Sign::V2 { access_key, secret, skew } => {
                let date = http_date(*skew);
                headers.push(("date".into(), date.clone()));
                let get =
                    |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
                let mut amz: Vec<&(String, String)> = headers.iter().filter(|(k, _)| k.starts_with("x-amz-")).collect();
                amz.sort();
                let amz: String = amz.iter().map(|(k, v)| format!("{k}:{}\n", v.trim())).collect();
                let to_sign = format!(
                    "{}\n{}\n{}\n{date}\n{amz}{}",
                    req.method,
                    get("content-md5"),
                    get("content-type"),
                    req.target()
                );
                let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
                let signature = data_encoding::BASE64.encode(hmac::sign(&key, to_sign.as_bytes()).as_ref());
                headers.push(("authorization".into(), format!("AWS {access_key}:{signature}")));
                headers
            }
        }
    }
}

/// Real time (the endpoint's clock for request dates), `skew` seconds away.
fn shifted(skew: i64) -> Timestamp {
    Timestamp(SystemClock.now().as_micros() + skew * 1_000_000)
}

/// SigV4's `YYYYMMDDTHHMMSSZ`, `skew` seconds from now.
fn amz_date(skew: i64) -> String {
    let rfc = shifted(skew).to_rfc3339();
    let mut out: String = rfc[..19].chars().filter(|c| *c != '-' && *c != ':').collect();
    out.push('Z');
    out
}

/// An HTTP date (SigV2's `Date`), `skew` seconds from now.
fn http_date(skew: i64) -> String {
    let micros = u64::try_from(shifted(skew).as_micros()).unwrap();
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_micros(micros))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, bytes))
}

fn sha256_b64(bytes: &[u8]) -> String {
    data_encoding::BASE64.encode(digest::digest(&digest::SHA256, bytes).as_ref())
}

fn hmac256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data).as_ref().to_vec()
}

/// An answer as read off the wire.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The S3 error code of the body (`<Code>`), or empty.
    fn code(&self) -> &str {
        let Some(start) = self.body.find("<Code>") else { return "" };
        let rest = &self.body[start + 6..];
        &rest[..rest.find("</Code>").unwrap_or(0)]
    }

    fn message(&self) -> &str {
        let Some(start) = self.body.find("<Message>") else { return "" };
        let rest = &self.body[start + 9..];
        &rest[..rest.find("</Message>").unwrap_or(0)]
    }

    /// Everything the client saw: status line, headers and body.
    fn text(&self) -> String {
        format!("{} {:?} {}", self.status, self.headers, self.body)
    }
}

/// The S3 endpoint of a running appliance.
struct Endpoint {
    addr: SocketAddr,
}

impl Endpoint {
    fn of(app: &TestAppliance) -> Endpoint {
        let url = app.s3_endpoint();
        Endpoint { addr: url.trim_start_matches("http://").parse().unwrap() }
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The request head of `req` signed by `sign`, announcing `length` bytes.
    fn head(&self, req: &Req, sign: &Sign, length: u64) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target());
        for (name, value) in sign.headers(req, &self.host()).into_iter().chain(req.unsigned.clone()) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("content-length: {length}\r\nconnection: close\r\n\r\n"));
        head.into_bytes()
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    /// Sends `req` whole and reads the answer.
    async fn send(&self, req: &Req, sign: &Sign) -> Reply {
        let mut tcp = self.connect().await;
        tcp.write_all(&self.head(req, sign, req.body.len() as u64)).await.unwrap();
        tcp.write_all(&req.body).await.unwrap();
        read_reply(&mut tcp, req.method == "HEAD").await.expect("an answer")
    }
}

/// Reads one answer until the server closes the connection; `None` when
/// it closed (or reset) without one.
async fn read_reply(tcp: &mut TcpStream, head_only: bool) -> Option<Reply> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
            Err(_) => panic!("no answer within {ANSWER_WITHIN:?}: {}", String::from_utf8_lossy(&raw)),
        }
    }
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if chunked && !head_only {
        body = dechunk(&body);
    }
    Some(Reply { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&raw[..line_end]);
        let Ok(size) = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16) else { break };
        raw = &raw[line_end + 2..];
        if size == 0 || raw.len() < size {
            break;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[(size + 2).min(raw.len())..];
    }
    out
}

// --- The appliance side ----------------------------------------------------

/// A principal with both a gRPC credential and an S3 key.
struct Principal {
    credential: String,
    access_key: String,
    secret: String,
}

impl Principal {
    fn v4(&self) -> Sign {
        Sign::v4(&self.access_key, &self.secret)
    }
}

async fn s3_principal(app: &TestAppliance, name: &str, role: v1::Role) -> Principal {
    let request = v1::CreatePrincipalRequest { name: name.into(), role: role as i32, s3: true, ..Default::default() };
    let created = app.admin().await.unwrap().create_principal(request).await.unwrap().into_inner();
    let access_key = created.principal.unwrap().access_key_id;
    Principal { credential: format!("{access_key}:{}", created.secret), access_key, secret: created.s3_secret }
}

/// The ledger's length.
fn ledger_head(app: &TestAppliance) -> u64 {
    app.server().app().store().ledger_head().unwrap().0
}

fn ledger(app: &TestAppliance) -> Vec<wormbox_store::ledger::LedgerEntry> {
    app.server().app().store().ledger_entries(1).unwrap().into_iter().map(|(e, _)| e).collect()
}

/// Every version and delete marker of `bucket` (key, version id), and the
/// bucket names: what "nothing was stored" is checked against.
async fn stored(app: &TestAppliance, bucket: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut archive = app.archive().await.unwrap();
    let request = v1::ListObjectVersionsRequest { bucket: bucket.into(), ..Default::default() };
    let listed = archive.list_object_versions(request).await.unwrap().into_inner();
    let versions = listed.versions.iter().chain(&listed.delete_markers).map(|v| (v.key.clone(), v.version_id.clone()));
    let buckets = archive.list_buckets(v1::ListBucketsRequest {}).await.unwrap().into_inner().buckets;
    (versions.collect(), buckets.into_iter().map(|b| b.name).collect())
}

/// A versioned bucket of `owner` with one object `memo`; its version id.
async fn vault(app: &TestAppliance, owner: &Principal) -> String {
    let mut archive = app.archive_as(&owner.credential).await.unwrap();
    create_bucket(&mut archive, BUCKET, v1::VersioningStatus::Enabled).await;
    put(&mut archive, BUCKET, "memo", b"the memo").await.unwrap().version_id
}

/// `vault` with Object Lock, so that lock requests reach the writer's judgement.
async fn locked_vault(app: &TestAppliance, owner: &Principal) -> String {
    let mut archive = app.archive_as(&owner.credential).await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: BUCKET.into(), object_lock: true }).await.unwrap();
    put(&mut archive, BUCKET, "memo", b"the memo").await.unwrap().version_id
}

/// A good PutObject of `key` by `who`: the server still serves.
async fn put_ok(s3: &Endpoint, who: &Principal, key: &str) {
    let reply = s3.send(&Req::new("PUT", &format!("/{BUCKET}/{key}")).body("whole"), &who.v4()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[track_caller]
fn assert_refused(reply: &Reply, status: u16, code: &str) {
    assert_eq!((reply.status, reply.code()), (status, code), "{}", reply.text());
}

// --- The attacks -----------------------------------------------------------

/// Unsigned requests of every served kind, reads and writes, bodies or not,
/// are AccessDenied before anything runs: no ledger entry, nothing stored,
/// no bucket made.
#[tokio::test]
async fn anonymous_requests_of_every_kind_are_refused_and_write_nothing() {
    let app = TestAppliance::start().await.unwrap();
    let owner = s3_principal(&app, "app", v1::Role::Writer).await;
    let memo = vault(&app, &owner).await;
    let s3 = Endpoint::of(&app);
    let (head, before) = (ledger_head(&app), stored(&app, BUCKET).await);

    let versioning = "<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>";
    let lock = "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>";
    let retention =
        "<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>2099-01-01T00:00:00Z</RetainUntilDate></Retention>";
    let hold = "<LegalHold><Status>ON</Status></LegalHold>";
    let delete = format!("<Delete><Object><Key>memo</Key><VersionId>{memo}</VersionId></Object></Delete>");
    let object = format!("/{BUCKET}/memo");
    let bucket = format!("/{BUCKET}");
    let version = format!("versionId={memo}");
    let requests = [
        Req::new("GET", "/"),
        Req::new("PUT", "/newbucket"),
        Req::new("HEAD", &bucket),
        Req::new("DELETE", &bucket),
        Req::new("GET", &bucket).query("location="),
        Req::new("GET", &bucket).query("versioning="),
        Req::new("PUT", &bucket).query("versioning=").body(versioning),
        Req::new("GET", &bucket).query("object-lock="),
        Req::new("PUT", &bucket).query("object-lock=").body(lock),
        Req::new("GET", &bucket),
        Req::new("GET", &bucket).query("list-type=2"),
        Req::new("GET", &bucket).query("versions="),
        Req::new("POST", &bucket).query("delete=").body(delete),
        Req::new("PUT", &object).body("forged"),
        Req::new("PUT", &format!("/{BUCKET}/new")).body("forged"),
        Req::new("GET", &object),
        Req::new("GET", &object).query(&version),
        Req::new("HEAD", &object),
        Req::new("DELETE", &object),
        Req::new("DELETE", &object).query(&version),
        Req::new("GET", &object).query("retention="),
        Req::new("PUT", &object).query(&format!("retention=&{version}")).body(retention),
        Req::new("GET", &object).query("legal-hold="),
        Req::new("PUT", &object).query(&format!("legal-hold=&{version}")).body(hold),
    ];
    for req in &requests {
        let reply = s3.send(req, &Sign::Anonymous).await;
        if req.method == "HEAD" {
            assert_eq!(reply.status, 403, "{req:?}: {}", reply.text());
        } else {
            assert_eq!((reply.status, reply.code()), (403, "AccessDenied"), "{req:?}: {}", reply.text());
        }
    }
    assert_eq!(ledger_head(&app), head, "an anonymous request writes no ledger entry");
    assert_eq!(stored(&app, BUCKET).await, before, "nothing stored, no bucket made");
    put_ok(&s3, &owner, "after").await;
}

/// A wrong signature is SignatureDoesNotMatch; an unknown key, a revoked
/// principal's key and a principal whose S3 key was revoked all get the
/// same InvalidAccessKeyId; nothing is written for any.
#[tokio::test]
async fn wrong_signatures_and_dead_keys_are_refused_alike_and_write_nothing() {
    let app = TestAppliance::start().await.unwrap();
    let owner = s3_principal(&app, "app", v1::Role::Writer).await;
    let revoked = s3_principal(&app, "gone", v1::Role::Writer).await;
    let keyless = s3_principal(&app, "keyless", v1::Role::Writer).await;
    vault(&app, &owner).await;
    let mut admin = app.admin().await.unwrap();
    let gone = v1::RevokePrincipalRequest { access_key_id: revoked.access_key.clone(), mfa: String::new() };
    admin.revoke_principal(gone).await.unwrap();
    admin.revoke_s3_key(v1::RevokeS3KeyRequest { access_key_id: keyless.access_key.clone() }).await.unwrap();
    let s3 = Endpoint::of(&app);
    let (head, before) = (ledger_head(&app), stored(&app, BUCKET).await);

    let write = Req::new("PUT", &format!("/{BUCKET}/forged")).body("forged");
    let read = Req::new("GET", &format!("/{BUCKET}/memo"));
    for req in [&write, &read] {
        let wrong = Sign::v4(&owner.access_key, "a-wrong-secret-of-forty-characters-00000");
        assert_refused(&s3.send(req, &wrong).await, 403, "SignatureDoesNotMatch");
        let wrong_v2 = Sign::v2(&owner.access_key, "a-wrong-secret-of-forty-characters-00000");
        assert_refused(&s3.send(req, &wrong_v2).await, 403, "SignatureDoesNotMatch");

        let mut answers = Vec::new();
        for (key, secret) in [
            ("AKNOSUCHKEY000000000", owner.secret.as_str()),
            (revoked.access_key.as_str(), revoked.secret.as_str()),
            (keyless.access_key.as_str(), keyless.secret.as_str()),
        ] {
            for sign in [Sign::v4(key, secret), Sign::v2(key, secret)] {
                let reply = s3.send(req, &sign).await;
                assert_refused(&reply, 403, "InvalidAccessKeyId");
                answers.push(reply.message().to_owned());
            }
        }
        answers.dedup();
        assert_eq!(answers.len(), 1, "one answer for every dead key: {answers:?}");
    }
    assert_eq!(ledger_head(&app), head, "a refused caller writes no ledger entry");
    assert_eq!(stored(&app, BUCKET).await, before);
    put_ok(&s3, &owner, "after").await;
}

/// `req` as a SigV4 presigned URL valid for `expires` seconds from `skew`
/// seconds from now (only `host` signed, the payload unsigned).
fn presigned(req: &Req, host: &str, who: &Principal, expires: u64, skew: i64) -> Req {
    presigned_for(req, host, who, expires, skew, "us-east-1")
}

/// `presigned`, for `region`.
fn presigned_for(req: &Req, host: &str, who: &Principal, expires: u64, skew: i64, region: &str) -> Req {
    let date = amz_date(skew);
    let scope = format!("{}/{region}/s3/aws4_request", &date[..8]);
    let query = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}%2F{}&X-Amz-Date={date}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host",
        who.access_key,
        scope.replace('/', "%2F")
    );
    let canonical = format!("{}\n{}\n{query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD", req.method, req.path);
    let to_sign = format!("AWS4-HMAC-SHA256\n{date}\n{scope}\n{}", sha256_hex(canonical.as_bytes()));
    let key =
        scope.split('/').fold(format!("AWS4{}", who.secret).into_bytes(), |key, part| hmac256(&key, part.as_bytes()));
    let signature = hex::encode(hmac256(&key, to_sign.as_bytes()));
    req.clone().query(&format!("{query}&X-Amz-Signature={signature}"))
}

/// `req` as a SigV2 presigned URL (as boto 2's `generate_url` makes) that
/// expires `expires_in` seconds from now.
fn presigned_v2(req: &Req, who: &Principal, expires_in: i64) -> Req {
    let expires = shifted(expires_in).as_micros() / 1_000_000;
    let to_sign = format!("{}\n\n\n{expires}\n{}", req.method, req.path);
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, who.secret.as_bytes());
    let signature = data_encoding::BASE64.encode(hmac::sign(&key, to_sign.as_bytes()).as_ref());
    let signature = signature.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
    req.clone().query(&format!("AWSAccessKeyId={}&Expires={expires}&Signature={signature}", who.access_key))
}

/// A SigV4 presigned URL is valid for at most seven days, as in S3 (s3s
/// took any X-Amz-Expires, up to 136 years: a leaked URL would have signed
/// for its principal for ever), and so is a SigV2 one (whose `Expires` s3s
/// took up to any date): a longer one is AuthorizationQueryParametersError
/// and writes nothing; an expired one is AccessDenied; a shorter one works.
#[tokio::test]
async fn a_presigned_url_is_valid_for_at_most_seven_days() {
    let app = TestAppliance::start().await.unwrap();
    let owner = s3_principal(&app, "app", v1::Role::Writer).await;
    vault(&app, &owner).await;
    let s3 = Endpoint::of(&app);
    let (head, before) = (ledger_head(&app), stored(&app, BUCKET).await);

    let write = Req::new("PUT", &format!("/{BUCKET}/forged")).body("forged");
    let read = Req::new("GET", &format!("/{BUCKET}/memo"));
    for req in [&write, &read] {
        for expires in [7 * 24 * 3600 + 1, 10 * 365 * 24 * 3600, u64::from(u32::MAX)] {
            let reply = s3.send(&presigned(req, &s3.host(), &owner, expires, 0), &Sign::Anonymous).await;
            assert_refused(&reply, 400, "AuthorizationQueryParametersError");
        }
        let expired = presigned(req, &s3.host(), &owner, 60, -20 * 60);
        assert_refused(&s3.send(&expired, &Sign::Anonymous).await, 403, "AccessDenied");
    }
    assert_eq!(ledger_head(&app), head, "a refused URL writes no ledger entry");
    assert_eq!(stored(&app, BUCKET).await, before, "and stores nothing");

    let week = s3.send(&presigned(&read, &s3.host(), &owner, 7 * 24 * 3600, 0), &Sign::Anonymous).await;
    assert_eq!((week.status, week.body.as_str()), (200, "the memo"), "{}", week.text());

    // SigV2's presigned URLs name their expiry as a time: seven days ahead at most.
    for req in [&write, &read] {
        for expires_in in [8 * 24 * 3600, 50 * 365 * 24 * 3600] {
            let reply = s3.send(&presigned_v2(req, &owner, expires_in), &Sign::Anonymous).await;
            assert_refused(&reply, 400, "AuthorizationQueryParametersError");
        }
        assert_refused(&s3.send(&presigned_v2(req, &owner, -60), &Sign::Anonymous).await, 403, "AccessDenied");
    }
    assert_eq!(ledger_head(&app), head, "a refused URL writes no ledger entry");
    assert_eq!(stored(&app, BUCKET).await, before, "and stores nothing");
    let day = s3.send(&presigned_v2(&read, &owner, 24 * 3600), &Sign::Anonymous).await;
    assert_eq!((day.status, day.body.as_str()), (200, "the memo"), "{}", day.text());
}

/// SigV4 and SigV2 dates more than 15 minutes off real time are
/// RequestTimeTooSkewed; a credential scope of another region, or of any
/// service but `s3` (`sts` included, which s3s would read a body for), is
/// AuthorizationHeaderMalformed. The same requests signed correctly pass.
#[tokio::test]
async fn skewed_dates_and_foreign_scopes_are_refused_before_anything_is_written() {
    let app = TestAppliance::start().await.unwrap();
    let owner = s3_principal(&app, "app", v1::Role::Writer).await;
    vault(&app, &owner).await;
    let s3 = Endpoint::of(&app);
    let (head, before) = (ledger_head(&app), stored(&app, BUCKET).await);

    let write = Req::new("PUT", &format!("/{BUCKET}/forged")).body("forged");
    let list = Req::new("GET", "/");
    let v4 = owner.v4();
    let v2 = Sign::v2(&owner.access_key, &owner.secret);
    for req in [&write, &list] {
        for skew in [-20 * 60, 20 * 60] {
            assert_refused(&s3.send(req, &v4.clone().skewed(skew)).await, 403, "RequestTimeTooSkewed");
            assert_refused(&s3.send(req, &v2.clone().skewed(skew)).await, 403, "RequestTimeTooSkewed");
        }
        for (region, service) in [("eu-west-1", "s3"), ("us-east-1", "sts"), ("us-east-1", "iam"), ("us-east-1", "s3x")]
        {
            let reply = s3.send(req, &v4.clone().scope(region, service)).await;
            assert_refused(&reply, 400, "AuthorizationHeaderMalformed");
        }
    }
    // A presigned URL for another region hides behind no good header.
    for req in [&write, &list] {
        let other = presigned_for(req, &s3.host(), &owner, 600, 0, "eu-west-1");
        assert_refused(&s3.send(&other, &Sign::Anonymous).await, 400, "AuthorizationHeaderMalformed");
        assert_refused(&s3.send(&other, &v4).await, 400, "AuthorizationHeaderMalformed");
    }
    assert_eq!(ledger_head(&app), head, "a refused caller writes no ledger entry");
    assert_eq!(stored(&app, BUCKET).await, before);

    // Within the window, both signatures are good.
    assert_eq!(s3.send(&list, &v4.clone().skewed(-10 * 60)).await.status, 200);
    let reply = s3.send(&list, &v2.clone().skewed(10 * 60)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    put_ok(&s3, &owner, "after").await;
}

/// A reader's and an auditor's S3 keys sign well but cannot write: no
/// PutObject, DeleteObject (marker or purge), DeleteObjects, CreateBucket,
/// DeleteBucket, versioning, Object Lock configuration, retention, nor (the
/// reader) a legal hold; AccessDenied, no ledger entry, nothing stored, a
/// refusal logged. The reader still reads; the auditor reads no bytes.
#[tokio::test]
async fn readers_and_auditors_cannot_write_through_s3() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(wormbox_server::telemetry::filter("info"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = TestAppliance::start().await.unwrap();
    let owner = s3_principal(&app, "app", v1::Role::Writer).await;
    let reader = s3_principal(&app, "reader", v1::Role::Reader).await;
    let auditor = s3_principal(&app, "auditor", v1::Role::Auditor).await;
    let memo = locked_vault(&app, &owner).await;
    let s3 = Endpoint::of(&app);
    let (head, before) = (ledger_head(&app), stored(&app, BUCKET).await);

    let object = format!("/{BUCKET}/memo");
    let version = format!("versionId={memo}");
    let retention =
        "<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>2099-01-01T00:00:00Z</RetainUntilDate></Retention>";
    let delete = format!("<Delete><Object><Key>memo</Key><VersionId>{memo}</VersionId></Object></Delete>");
    let versioning = "<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>";
    let lock = "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention>\
                <Mode>COMPLIANCE</Mode><Days>1</Days></DefaultRetention></Rule></ObjectLockConfiguration>";
    let writes = [
        Req::new("PUT", &object).body("forged"),
        Req::new("PUT", &format!("/{BUCKET}/new")).body("forged"),
        Req::new("DELETE", &object),
        Req::new("DELETE", &object).query(&version),
        Req::new("PUT", "/newbucket"),
        Req::new("PUT", &object).query(&format!("retention=&{version}")).body(retention),
        Req::new("DELETE", &format!("/{BUCKET}")),
        Req::new("PUT", &format!("/{BUCKET}")).query("versioning=").body(versioning),
        Req::new("PUT", &format!("/{BUCKET}")).query("object-lock=").body(lock),
    ];
    // An auditor may place a legal hold (it writes nothing else); a reader may not.
    let hold = Req::new("PUT", &object)
        .query(&format!("legal-hold=&{version}"))
        .body("<LegalHold><Status>ON</Status></LegalHold>");
    for who in [&reader, &auditor] {
        let reader_only = (who.access_key == reader.access_key).then_some(&hold);
        for req in writes.iter().chain(reader_only) {
            let reply = s3.send(req, &who.v4()).await;
            assert_eq!((reply.status, reply.code()), (403, "AccessDenied"), "{req:?}: {}", reply.text());
        }
        // A multi-object delete answers per key, each AccessDenied.
        let reply =
            s3.send(&Req::new("POST", &format!("/{BUCKET}")).query("delete=").body(delete.clone()), &who.v4()).await;
        assert!(reply.status == 403 || reply.body.contains("<Code>AccessDenied</Code>"), "{}", reply.text());
        assert!(!reply.body.contains("<Deleted>"), "{}", reply.text());
    }
    assert_eq!(ledger_head(&app), head, "a caller who may not write writes nothing");
    assert_eq!(stored(&app, BUCKET).await, before);
    let read = s3.send(&Req::new("GET", &object), &reader.v4()).await;
    assert_eq!((read.status, read.body.as_str()), (200, "the memo"), "{}", read.text());
    // An auditor reads metadata, never object bytes.
    assert_refused(&s3.send(&Req::new("GET", &object), &auditor.v4()).await, 403, "AccessDenied");
    assert_eq!(s3.send(&Req::new("HEAD", &object), &auditor.v4()).await.status, 200);
    // Each refusal is logged (rate-limited per principal), naming the caller.
    let text = logs.text();
    for who in [&reader, &auditor] {
        let line = text.lines().find(|l| l.contains("refused: the caller's role") && l.contains(&who.access_key));
        assert!(line.is_some(), "no refusal of {} logged:\n{text}", who.access_key);
    }
}

/// A SigV4 signature covers every `x-amz-*` header sent: one added outside
/// it (to a captured request, replayed within its 15 minutes) is
/// AccessDenied, whatever it would do: lock the object until 2099, bypass
/// governance retention, carry an MFA code. The same headers signed pass.
#[tokio::test]
async fn an_unsigned_amz_header_is_refused() {
    let app = TestAppliance::start().await.unwrap();
    let owner = s3_principal(&app, "app", v1::Role::Writer).await;
    let memo = locked_vault(&app, &owner).await;
    let s3 = Endpoint::of(&app);
    let (head, before) = (ledger_head(&app), stored(&app, BUCKET).await);

    let object = format!("/{BUCKET}/memo");
    let lock = |req: Req, sign: bool| {
        let pairs =
            [("x-amz-object-lock-mode", "COMPLIANCE"), ("x-amz-object-lock-retain-until-date", "2099-01-01T00:00:00Z")];
        pairs.iter().fold(req, |req, (k, v)| if sign { req.header(k, v) } else { req.unsigned(k, v) })
    };
    let replays = [
        lock(Req::new("PUT", &object).body("replayed"), false),
        Req::new("DELETE", &object)
            .query(&format!("versionId={memo}"))
            .unsigned("x-amz-bypass-governance-retention", "true"),
        Req::new("DELETE", &object).query(&format!("versionId={memo}")).unsigned("x-amz-mfa", "SERIAL 123456"),
        Req::new("PUT", &object).body("replayed").unsigned("x-amz-meta-note", "added"),
    ];
    for req in &replays {
        let reply = s3.send(req, &owner.v4()).await;
        assert_eq!((reply.status, reply.code()), (403, "AccessDenied"), "{req:?}: {}", reply.text());
        assert!(reply.message().contains("not signed"), "{}", reply.text());
    }
    assert_eq!(ledger_head(&app), head, "no ledger entry");
    assert_eq!(stored(&app, BUCKET).await, before, "nothing stored, nothing locked");

    let signed = s3.send(&lock(Req::new("PUT", &object).body("signed"), true), &owner.v4()).await;
    assert_eq!(signed.status, 200, "{}", signed.text());
    let ua = Req::new("GET", "/").unsigned("x-amz-user-agent", "aws-sdk-js/3");
    assert_eq!(s3.send(&ua, &owner.v4()).await.status, 200, "the one header an SDK leaves unsigned");
}

/// A body that does not match its `x-amz-content-sha256`, `Content-MD5`,
/// `x-amz-checksum-sha256` or `x-amz-checksum-crc32` is refused with S3's
/// code; no version is published and no ledger entry written.
#[tokio::test]
async fn bodies_that_do_not_match_their_digests_store_nothing() {
    let app = TestAppliance::start().await.unwrap();
    let owner = s3_principal(&app, "app", v1::Role::Writer).await;
    vault(&app, &owner).await;
    let s3 = Endpoint::of(&app);
    let (head, before) = (ledger_head(&app), stored(&app, BUCKET).await);

    let body = vec![b'x'; 300 << 10];
    let other = b"other bytes";
    let put = || Req::new("PUT", &format!("/{BUCKET}/digest")).body(body.clone());
    let md5_of_other = data_encoding::BASE64.encode(&[7u8; 16]);
    let cases = [
        (put().payload(&sha256_hex(other)), 400, "XAmzContentSHA256Mismatch"),
        (put().header("content-md5", &md5_of_other), 400, "BadDigest"),
        (put().header("x-amz-checksum-sha256", &sha256_b64(other)), 400, "BadDigest"),
        (put().header("x-amz-checksum-crc32", "AAAAAA=="), 400, "BadDigest"),
        (put().payload("UNSIGNED-PAYLOAD").header("x-amz-checksum-sha256", &sha256_b64(other)), 400, "BadDigest"),
    ];
    for (req, status, code) in &cases {
        assert_refused(&s3.send(req, &owner.v4()).await, *status, code);
        assert_eq!(ledger_head(&app), head, "{code}: no ledger entry");
        assert_eq!(stored(&app, BUCKET).await, before, "{code}: nothing stored");
    }
    let good = put().header("x-amz-checksum-sha256", &sha256_b64(&body));
    assert_eq!(s3.send(&good, &owner.v4()).await.status, 200, "the same body with its own digest is stored");
}

/// A body shorter than its Content-Length whose client then half-closes,
/// and a client that disconnects mid-body (signed or unsigned payload):
/// nothing stored, no ledger entry, and the server goes on serving.
#[tokio::test]
async fn cut_off_bodies_store_nothing_and_the_server_keeps_serving() {
    let app = TestAppliance::start().await.unwrap();
    let owner = s3_principal(&app, "app", v1::Role::Writer).await;
    vault(&app, &owner).await;
    let s3 = Endpoint::of(&app);
    let (head, before) = (ledger_head(&app), stored(&app, BUCKET).await);

    let whole = vec![b'y'; 1 << 20];
    let signed = Req::new("PUT", &format!("/{BUCKET}/cut")).body(whole.clone());
    let unsigned = signed.clone().payload("UNSIGNED-PAYLOAD");
    for req in [&signed, &unsigned] {
        // Shorter, then half-closed: an error or a closed connection, never a 200.
        let mut tcp = s3.connect().await;
        tcp.write_all(&s3.head(req, &owner.v4(), whole.len() as u64)).await.unwrap();
        tcp.write_all(&whole[..whole.len() / 3]).await.unwrap();
        tcp.shutdown().await.unwrap();
        if let Some(reply) = read_reply(&mut tcp, false).await {
            assert_ne!(reply.status, 200, "{}", reply.text());
        }

        // Disconnected mid-body.
        let mut tcp = s3.connect().await;
        tcp.write_all(&s3.head(req, &owner.v4(), whole.len() as u64)).await.unwrap();
        tcp.write_all(&whole[..whole.len() / 2]).await.unwrap();
        drop(tcp);
    }
    // Let the server see the disconnects, then serve the next upload.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ledger_head(&app), head, "a cut-off body writes no ledger entry");
    assert_eq!(stored(&app, BUCKET).await, before, "and stores nothing");
    put_ok(&s3, &owner, "after").await;
}

/// With `[limits] max_object_bytes` small, a PutObject announcing more is
/// EntityTooLarge at once, before any of its body is sent.
#[tokio::test]
async fn an_object_above_the_limit_is_refused_before_its_body_is_read() {
    let app = TestAppliance::start_with(|config| config.limits.max_object_bytes = 4096).await.unwrap();
    let owner = s3_principal(&app, "app", v1::Role::Writer).await;
    vault(&app, &owner).await;
    let s3 = Endpoint::of(&app);
    let (head, before) = (ledger_head(&app), stored(&app, BUCKET).await);

    let hash = sha256_hex(b"a body never sent");
    for (announced, payload) in [(4097u64, "UNSIGNED-PAYLOAD"), (10 << 30, "UNSIGNED-PAYLOAD"), (4097, hash.as_str())] {
        let req = Req::new("PUT", &format!("/{BUCKET}/big")).payload(payload);
        let mut tcp = s3.connect().await;
        let started = Instant::now();
        tcp.write_all(&s3.head(&req, &owner.v4(), announced)).await.unwrap();
        // No body is sent: the answer cannot wait for it.
        let reply = read_reply(&mut tcp, false).await.expect("an answer");
        assert_refused(&reply, 400, "EntityTooLarge");
        assert!(started.elapsed() < Duration::from_secs(5), "answered before the body: {:?}", started.elapsed());
    }
    assert_eq!(ledger_head(&app), head);
    assert_eq!(stored(&app, BUCKET).await, before);
    let fits = Req::new("PUT", &format!("/{BUCKET}/fits")).body(vec![b'z'; 4096]);
    assert_eq!(s3.send(&fits, &owner.v4()).await.status, 200);
}

/// An `aws-chunked` body (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) of `chunks`,
/// each signed after the one before, starting from the seed signature of
/// `head`'s Authorization; `forge` alters the bytes of one chunk after
/// it was signed.
fn aws_chunked(head: &[u8], secret: &str, chunks: &[&[u8]], forge: Option<usize>) -> Vec<u8> {
    let head = String::from_utf8_lossy(head);
    let field = |name: &str| {
        let line = head.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_once(": ").unwrap().1.to_owned()
    };
    let date = field("x-amz-date");
    let authorization = field("authorization");
    let mut previous = authorization.rsplit("Signature=").next().unwrap().to_owned();
    let credential = authorization.split("Credential=").nth(1).unwrap().split(',').next().unwrap();
    let scope = credential.split_once('/').unwrap().1.to_owned();
    let parts: Vec<&str> = scope.split('/').collect();
    let key = parts[..4].iter().fold(format!("AWS4{secret}").into_bytes(), |key, part| hmac256(&key, part.as_bytes()));
    let mut body = Vec::new();
    let last: &[u8] = b"";
    for (i, chunk) in chunks.iter().chain([&last]).enumerate() {
        let to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{date}\n{scope}\n{previous}\n{}\n{}",
            sha256_hex(b""),
            sha256_hex(chunk)
        );
        previous = hex::encode(hmac256(&key, to_sign.as_bytes()));
        let mut sent = chunk.to_vec();
        if forge == Some(i) {
            sent[0] ^= 1;
        }
        body.extend_from_slice(format!("{:x};chunk-signature={previous}\r\n", sent.len()).as_bytes());
        body.extend_from_slice(&sent);
        body.extend_from_slice(b"\r\n");
    }
    body
}

/// A chunked-signature upload whose second chunk was altered after signing
/// is SignatureDoesNotMatch and stores nothing; the same upload unaltered
/// is stored.
#[tokio::test]
async fn a_chunked_upload_with_a_forged_chunk_stores_nothing() {
    let app = TestAppliance::start().await.unwrap();
    let owner = s3_principal(&app, "app", v1::Role::Writer).await;
    vault(&app, &owner).await;
    let s3 = Endpoint::of(&app);
    let (head, before) = (ledger_head(&app), stored(&app, BUCKET).await);

    let (first, second) = (vec![b'a'; 64 << 10], vec![b'b'; 100]);
    let chunks: [&[u8]; 2] = [&first, &second];
    let decoded = (first.len() + second.len()).to_string();
    let req = Req::new("PUT", &format!("/{BUCKET}/chunked"))
        .header("content-encoding", "aws-chunked")
        .header("x-amz-decoded-content-length", &decoded)
        .payload("STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
    let send = |forge: Option<usize>| {
        let (s3, req, owner) = (&s3, &req, &owner);
        async move {
            let sign = owner.v4();
            let probe = s3.head(req, &sign, 0);
            let body = aws_chunked(&probe, &owner.secret, &chunks, forge);
            let mut tcp = s3.connect().await;
            // The head is signed without Content-Length, so it may be built again with it.
            let head = String::from_utf8(probe)
                .unwrap()
                .replace("content-length: 0", &format!("content-length: {}", body.len()));
            tcp.write_all(head.as_bytes()).await.unwrap();
            tcp.write_all(&body).await.unwrap();
            read_reply(&mut tcp, false).await.expect("an answer")
        }
    };
    for forged in [0, 1] {
        assert_refused(&send(Some(forged)).await, 403, "SignatureDoesNotMatch");
        assert_eq!(ledger_head(&app), head, "a forged chunk writes no ledger entry");
        assert_eq!(stored(&app, BUCKET).await, before, "and stores nothing");
    }
    let good = send(None).await;
    assert_eq!(good.status, 200, "{}", good.text());
    let read = s3.send(&Req::new("GET", &format!("/{BUCKET}/chunked")), &owner.v4()).await;
    assert_eq!(read.body.len(), first.len() + second.len());
}

/// A browser form upload (POST multipart/form-data), signed or not, is
/// refused at once, before its body arrives: it is never buffered.
#[tokio::test]
async fn a_browser_form_upload_is_refused_unread() {
    let app = TestAppliance::start().await.unwrap();
    let owner = s3_principal(&app, "app", v1::Role::Writer).await;
    vault(&app, &owner).await;
    let s3 = Endpoint::of(&app);
    let (head, before) = (ledger_head(&app), stored(&app, BUCKET).await);

    let form = Req::new("POST", &format!("/{BUCKET}")).header("content-type", "multipart/form-data; boundary=xyz");
    for sign in [Sign::Anonymous, owner.v4()] {
        let mut tcp = s3.connect().await;
        let started = Instant::now();
        tcp.write_all(&s3.head(&form.clone().payload("UNSIGNED-PAYLOAD"), &sign, 100 << 20)).await.unwrap();
        tcp.write_all(b"--xyz\r\ncontent-disposition: form-data; name=\"key\"\r\n\r\nforged\r\n").await.unwrap();
        let reply = read_reply(&mut tcp, false).await.expect("an answer");
        assert_eq!(reply.status / 100, 5, "{}", reply.text());
        assert_eq!(reply.code(), "NotImplemented", "{}", reply.text());
        assert!(started.elapsed() < Duration::from_secs(5), "answered before the body: {:?}", started.elapsed());
    }
    assert_eq!(ledger_head(&app), head);
    assert_eq!(stored(&app, BUCKET).await, before);
}

/// With `[s3] header_timeout_ms` and `body_idle_ms` short: a client that
/// sends its headers slowly is disconnected, one that stalls mid-body gets
/// RequestTimeout and stores nothing; the server goes on serving.
#[tokio::test]
async fn a_slow_client_is_cut_off_within_the_timeouts() {
    let app = TestAppliance::start_with(|config| {
        config.s3.header_timeout_ms = 500;
        config.s3.body_idle_ms = 500;
    })
    .await
    .unwrap();
    let owner = s3_principal(&app, "app", v1::Role::Writer).await;
    vault(&app, &owner).await;
    let s3 = Endpoint::of(&app);
    let (head, before) = (ledger_head(&app), stored(&app, BUCKET).await);

    // Headers that never end: the connection is closed without an answer
    // (or with 408), well before the default 30 s.
    let mut tcp = s3.connect().await;
    let started = Instant::now();
    tcp.write_all(format!("PUT /{BUCKET}/slow HTTP/1.1\r\nhost: {}\r\n", s3.host()).as_bytes()).await.unwrap();
    let mut trickle = tokio::time::interval(Duration::from_millis(100));
    let mut closed = false;
    for i in 0..100 {
        trickle.tick().await;
        if tcp.write_all(format!("x-slow-{i}: a\r\n").as_bytes()).await.is_err() {
            closed = true;
            break;
        }
    }
    if !closed {
        let reply = read_reply(&mut tcp, false).await;
        assert!(reply.as_ref().is_none_or(|r| r.status == 408), "{reply:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(8), "cut off after {:?}", started.elapsed());

    // A body that stalls after a tenth.
    let whole = vec![b's'; 100 << 10];
    for req in [
        Req::new("PUT", &format!("/{BUCKET}/stall")).body(whole.clone()),
        Req::new("PUT", &format!("/{BUCKET}/stall")).body(whole.clone()).payload("UNSIGNED-PAYLOAD"),
    ] {
        let mut tcp = s3.connect().await;
        tcp.write_all(&s3.head(&req, &owner.v4(), whole.len() as u64)).await.unwrap();
        tcp.write_all(&whole[..whole.len() / 10]).await.unwrap();
        let started = Instant::now();
        let reply = read_reply(&mut tcp, false).await;
        assert!(started.elapsed() < Duration::from_secs(8), "cut off after {:?}", started.elapsed());
        if let Some(reply) = reply {
            assert_refused(&reply, 400, "RequestTimeout");
        }
    }
    assert_eq!(ledger_head(&app), head, "a stalled client writes no ledger entry");
    assert_eq!(stored(&app, BUCKET).await, before, "and stores nothing");
    put_ok(&s3, &owner, "after").await;
}

/// With `[s3] header_timeout_ms` short: a connection that sends nothing, and
/// a kept-alive connection that sends nothing after its first request, are
/// closed (each holds one of the listener's connection slots while open).
#[tokio::test]
async fn idle_connections_are_closed_within_the_header_timeout() {
    let app = TestAppliance::start_with(|config| config.s3.header_timeout_ms = 500).await.unwrap();
    let owner = s3_principal(&app, "app", v1::Role::Writer).await;
    vault(&app, &owner).await;
    let s3 = Endpoint::of(&app);

    let mut silent = s3.connect().await;
    let started = Instant::now();
    let reply = read_reply(&mut silent, false).await;
    assert!(reply.as_ref().is_none_or(|r| r.status == 408), "{reply:?}");
    assert!(started.elapsed() < Duration::from_secs(8), "closed after {:?}", started.elapsed());

    // One request kept alive, then silence.
    let mut kept = s3.connect().await;
    let req = Req::new("GET", "/");
    let head = String::from_utf8(s3.head(&req, &owner.v4(), 0)).unwrap().replace("connection: close\r\n", "");
    kept.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(ANSWER_WITHIN, kept.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => panic!("a kept-alive idle connection stayed open for {ANSWER_WITHIN:?}"),
        }
    }
    assert!(seen.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&seen));
    assert!(started.elapsed() < Duration::from_secs(8), "closed after {:?}", started.elapsed());
}

/// One host cannot hold every connection slot: once it has 64 open (`[s3]
/// max_connections_per_address`, by default), its next connection is closed
/// at once, without waiting for the header timeout, while another address
/// is still served; the slots come back as its connections close.
#[tokio::test]
async fn one_address_cannot_hold_every_connection_slot() {
    let app = TestAppliance::start().await.unwrap();
    let s3 = Endpoint::of(&app);
    let anonymous = Req::new("GET", "/");
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(s3.connect().await);
    }
    // Accepted in the order they arrived, so after the 64.
    let mut extra = s3.connect().await;
    let started = Instant::now();
    assert!(read_reply(&mut extra, false).await.is_none(), "the 65th connection is closed unanswered");
    assert!(started.elapsed() < Duration::from_secs(10), "closed after {:?}", started.elapsed());

    // Another loopback address is served (anonymous: refused, but answered).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = socket.connect(s3.addr).await.unwrap();
    other.write_all(&s3.head(&anonymous, &Sign::Anonymous, 0)).await.unwrap();
    assert_refused(&read_reply(&mut other, false).await.expect("an answer"), 403, "AccessDenied");

    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut tcp = s3.connect().await;
        tcp.write_all(&s3.head(&anonymous, &Sign::Anonymous, 0)).await.unwrap();
        if let Some(reply) = read_reply(&mut tcp, false).await {
            assert_refused(&reply, 403, "AccessDenied");
            break;
        }
        assert!(Instant::now() < deadline, "the address's slots did not come back");
        // The server frees a slot when it reads the close: real sockets, no clock to advance.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// With `[s3] body_idle_ms` short, XML bodies (which s3s collects itself,
/// and which had no deadline: any key, a reader's too, held a connection
/// slot for ever with one) that stall are RequestTimeout; nothing changes.
#[tokio::test]
async fn a_stalled_xml_body_is_cut_off_within_the_body_timeout() {
    let app = TestAppliance::start_with(|config| config.s3.body_idle_ms = 500).await.unwrap();
    let owner = s3_principal(&app, "app", v1::Role::Writer).await;
    let reader = s3_principal(&app, "reader", v1::Role::Reader).await;
    let memo = vault(&app, &owner).await;
    let s3 = Endpoint::of(&app);
    let (head, before) = (ledger_head(&app), stored(&app, BUCKET).await);

    let versioning = "<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>";
    let delete = format!("<Delete><Object><Key>memo</Key><VersionId>{memo}</VersionId></Object></Delete>");
    let bucket = format!("/{BUCKET}");
    for who in [&owner, &reader] {
        for req in [
            Req::new("PUT", &bucket).query("versioning=").body(versioning).payload("UNSIGNED-PAYLOAD"),
            Req::new("POST", &bucket).query("delete=").body(delete.clone()),
        ] {
            let mut tcp = s3.connect().await;
            tcp.write_all(&s3.head(&req, &who.v4(), req.body.len() as u64)).await.unwrap();
            tcp.write_all(&req.body[..10]).await.unwrap();
            let started = Instant::now();
            let reply = read_reply(&mut tcp, false).await;
            assert!(started.elapsed() < Duration::from_secs(8), "cut off after {:?}", started.elapsed());
            if let Some(reply) = reply {
                assert_refused(&reply, 400, "RequestTimeout");
            }
        }
    }
    assert_eq!(ledger_head(&app), head, "a stalled request writes no ledger entry");
    assert_eq!(stored(&app, BUCKET).await, before, "and changes nothing");
    put_ok(&s3, &owner, "after").await;
}

/// A buffer the server's logs go to while a test runs.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// `code` stands alone in `text` (not inside a longer run of digits).
fn has_code(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(at, _)| {
        let before = text[..at].chars().next_back().is_some_and(|c| c.is_ascii_digit());
        let after = text[at + code.len()..].chars().next().is_some_and(|c| c.is_ascii_digit());
        !before && !after
    })
}

/// A permanent delete with a wrong `x-amz-mfa` code (SigV4, and SigV2 as the
/// seed's boto signs; DeleteObject and DeleteObjects) is AccessDenied naming
/// MFA_INVALID; the code is in no
/// answer and in no log line, even with every log level on (`[log] filter`
/// `trace`, and asking for `s3s=trace`: s3s logs whole requests at debug).
#[tokio::test]
async fn a_wrong_mfa_code_is_refused_and_never_echoed_or_logged() {
    for spec in ["trace", "info,s3s=trace"] {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(wormbox_server::telemetry::filter(spec))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let app = TestAppliance::start().await.unwrap();
        let owner = s3_principal(&app, "app", v1::Role::Writer).await;
        let memo = vault(&app, &owner).await;
        let serial = "GAHT-S3-MFA1";
        let token = token_for(&app, &owner.credential, serial).await;
        let on = v1::PutBucketVersioningRequest {
            bucket: BUCKET.into(),
            status: v1::VersioningStatus::Enabled as i32,
            mfa_delete: v1::MfaDeleteStatus::Enabled as i32,
            mfa: token.code(app.clock(), 0),
        };
        app.archive_as(&owner.credential).await.unwrap().put_bucket_versioning(on).await.unwrap();
        app.clock().advance(Duration::from_secs(STEP));
        let s3 = Endpoint::of(&app);

        // Ten steps ahead: a well-formed code of this token, not valid now.
        let wrong = token.code(app.clock(), 10);
        let code = wrong.split(' ').nth(1).unwrap().to_owned();
        let purge = Req::new("DELETE", &format!("/{BUCKET}/memo"))
            .query(&format!("versionId={memo}"))
            .header("x-amz-mfa", &wrong);
        for sign in [owner.v4(), Sign::v2(&owner.access_key, &owner.secret)] {
            let reply = s3.send(&purge, &sign).await;
            assert_refused(&reply, 403, "AccessDenied");
            assert!(reply.message().contains("MFA_INVALID"), "{}", reply.text());
            assert!(!has_code(&reply.text(), &code), "the answer echoes the code: {}", reply.text());
        }
        // The same code on a multi-object delete: every key refused, nothing purged.
        let delete = format!("<Delete><Object><Key>memo</Key><VersionId>{memo}</VersionId></Object></Delete>");
        let many = Req::new("POST", &format!("/{BUCKET}")).query("delete=").header("x-amz-mfa", &wrong).body(delete);
        let reply = s3.send(&many, &owner.v4()).await;
        assert!(reply.body.contains("AccessDenied") && reply.body.contains("MFA_INVALID"), "{}", reply.text());
        assert!(!reply.body.contains("<Deleted>"), "{}", reply.text());
        assert!(!has_code(&reply.text(), &code), "the answer echoes the code: {}", reply.text());
        assert!(stored(&app, BUCKET).await.0.contains(&("memo".to_owned(), memo.clone())), "the version stands");
        let text = logs.text();
        assert!(text.contains("wormbox") || text.contains("s3"), "the logs were captured ({spec})");
        assert!(!text.contains(&wrong), "{spec}: the logs hold `SERIAL CODE`");
        assert!(!has_code(&text, &code), "{spec}: the logs hold the code");
    }
}

/// A permanent delete without a code on an MFA Delete bucket is
/// AccessDenied (MFA_REQUIRED) through S3, and ledgered exactly as the same
/// attempt through gRPC is: one entry of the same kind, principal, bucket and
/// detail.
#[tokio::test]
async fn a_permanent_delete_without_a_code_is_ledgered_as_grpc_ledgers_it() {
    let app = TestAppliance::start().await.unwrap();
    let owner = s3_principal(&app, "app", v1::Role::Writer).await;
    let mut archive = app.archive_as(&owner.credential).await.unwrap();
    create_bucket(&mut archive, BUCKET, v1::VersioningStatus::Enabled).await;
    let first = put(&mut archive, BUCKET, "memo", b"one").await.unwrap().version_id;
    let second = put(&mut archive, BUCKET, "memo", b"two").await.unwrap().version_id;
    let token = token_for(&app, &owner.credential, "GAHT-S3-MFA2").await;
    let on = v1::PutBucketVersioningRequest {
        bucket: BUCKET.into(),
        status: v1::VersioningStatus::Enabled as i32,
        mfa_delete: v1::MfaDeleteStatus::Enabled as i32,
        mfa: token.code(app.clock(), 0),
    };
    archive.put_bucket_versioning(on).await.unwrap();
    let s3 = Endpoint::of(&app);

    let head = ledger_head(&app);
    let grpc = v1::DeleteObjectRequest {
        bucket: BUCKET.into(),
        key: "memo".into(),
        version_id: first.clone(),
        ..Default::default()
    };
    assert_eq!(reason(&archive.delete_object(grpc).await.unwrap_err()), "MFA_REQUIRED");
    assert_eq!(ledger_head(&app), head + 1, "gRPC ledgers the attempt");
    let reply = s3
        .send(&Req::new("DELETE", &format!("/{BUCKET}/memo")).query(&format!("versionId={second}")), &owner.v4())
        .await;
    assert_refused(&reply, 403, "AccessDenied");
    assert!(reply.message().contains("MFA_REQUIRED"), "{}", reply.text());
    assert_eq!(ledger_head(&app), head + 2, "S3 ledgers the attempt");

    let entries = ledger(&app);
    let (by_grpc, by_s3) = (&entries[entries.len() - 2], &entries[entries.len() - 1]);
    assert_eq!(by_grpc.op.as_str(), "refused", "{by_grpc:?}");
    let same = |e: &wormbox_store::ledger::LedgerEntry| {
        let detail = e.detail.replace(&first, "V").replace(&second, "V");
        (e.op.as_str().to_owned(), e.principal.clone(), e.bucket.clone(), e.key.clone(), detail)
    };
    assert_eq!(same(by_s3), same(by_grpc), "the same entry, but for the version");
    assert_eq!(by_s3.principal, owner.access_key);
    assert_eq!(stored(&app, BUCKET).await.0.len(), 2, "both versions stand");
}

/// GET and HEAD of a key whose latest is a delete marker answer 404
/// NoSuchKey, and of the marker by version id 405 MethodNotAllowed; both
/// with `x-amz-delete-marker: true`, as S3 does.
#[tokio::test]
async fn delete_markers_answer_as_s3_does() {
    let app = TestAppliance::start().await.unwrap();
    let owner = s3_principal(&app, "app", v1::Role::Writer).await;
    vault(&app, &owner).await;
    let s3 = Endpoint::of(&app);
    let object = format!("/{BUCKET}/memo");

    let deleted = s3.send(&Req::new("DELETE", &object), &owner.v4()).await;
    assert_eq!((deleted.status, deleted.header("x-amz-delete-marker")), (204, Some("true")), "{}", deleted.text());
    let marker = deleted.header("x-amz-version-id").expect("the marker's version id").to_owned();

    let latest = s3.send(&Req::new("GET", &object), &owner.v4()).await;
    assert_refused(&latest, 404, "NoSuchKey");
    assert_eq!(latest.header("x-amz-delete-marker"), Some("true"), "{}", latest.text());
    let head = s3.send(&Req::new("HEAD", &object), &owner.v4()).await;
    assert_eq!((head.status, head.header("x-amz-delete-marker")), (404, Some("true")), "{}", head.text());

    let by_id = Req::new("GET", &object).query(&format!("versionId={marker}"));
    let reply = s3.send(&by_id, &owner.v4()).await;
    assert_refused(&reply, 405, "MethodNotAllowed");
    assert_eq!(reply.header("x-amz-delete-marker"), Some("true"), "{}", reply.text());
    assert_eq!(reply.header("x-amz-version-id"), Some(marker.as_str()));
    let head = s3.send(&Req::new("HEAD", &object).query(&format!("versionId={marker}")), &owner.v4()).await;
    assert_eq!((head.status, head.header("x-amz-delete-marker")), (405, Some("true")), "{}", head.text());
}
