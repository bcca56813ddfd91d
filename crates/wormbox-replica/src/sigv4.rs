//! AWS Signature Version 4 for S3 (`AWS4-HMAC-SHA256`, header-based): the
//! credentials, the URI encoding of paths and queries, and the signature.
//!
//! Invariant: the secret key never leaves `Credentials` (its `Debug` shows the
//! access key only; nothing formats it); the path and query a request is
//! signed with are the exact bytes sent, because both come from `encode_path`
//! and `canonical_query` here.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use ring::{digest, hmac};
use wormbox_model::Timestamp;

/// An S3 access key and its secret.
#[derive(Clone)]
pub struct Credentials {
    access_key: String,
    secret_key: String,
}

impl Credentials {
    /// Credentials from an access key id and its secret.
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Credentials {
        Credentials { access_key: access_key.into(), secret_key: secret_key.into() }
    }

    /// The access key id (not secret: it names the key in every request).
    pub fn access_key(&self) -> &str {
        &self.access_key
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("access_key", &self.access_key).field("secret_key", &"<redacted>").finish()
    }
}

/// SigV4's URI encoding: everything but `A-Z a-z 0-9 - _ . ~` as `%XX`.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Encodes one path segment or query name/value as SigV4 wants it.
pub(crate) fn uri_encode(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// The path-style path of a bucket, or of a key in it: each segment encoded,
/// `/` kept (S3 signs the path as sent, without normalising `.` or `//`).
pub(crate) fn encode_path(bucket: &str, key: Option<&str>) -> String {
    let mut path = String::with_capacity(bucket.len() + key.map_or(0, str::len) * 3 + 2);
    path.push('/');
    path.push_str(&uri_encode(bucket));
    if let Some(key) = key {
        path.push('/');
        let segments: Vec<String> = key.split('/').map(uri_encode).collect();
        path.push_str(&segments.join("/"));
    }
    path
}

/// The canonical query string: names and values encoded, sorted; also the
/// query sent, so the two cannot differ.
pub(crate) fn canonical_query(params: &[(&str, String)]) -> String {
    let mut pairs: Vec<(String, String)> = params.iter().map(|(k, v)| (uri_encode(k), uri_encode(v))).collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// `YYYYMMDDTHHMMSSZ` of a timestamp (whole seconds).
pub(crate) fn amz_date(at: Timestamp) -> String {
    let rfc = at.to_rfc3339();
    // "2013-05-24T00:00:00.000000Z": the date and time fields without separators.
    let mut out: String = rfc[..19].chars().filter(|c| *c != '-' && *c != ':').collect();
    out.push('Z');
    out
}

/// Lowercase hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, bytes))
}

/// What a request is signed over.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    /// As `encode_path` made it.
    pub(crate) path: &'a str,
    /// As `canonical_query` made it.
    pub(crate) query: &'a str,
    /// Every header sent, names lowercase; `host`, `x-amz-date` and
    /// `x-amz-content-sha256` among them.
    pub(crate) headers: &'a [(String, String)],
    /// Hex SHA-256 of the body (the `x-amz-content-sha256` value).
    pub(crate) payload_sha256: &'a str,
}

/// The `Authorization` header value for `request` at `amz_date`.
pub(crate) fn authorization(creds: &Credentials, region: &str, amz_date: &str, request: &Request<'_>) -> String {
    let mut headers: Vec<(String, String)> =
        request.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), collapse_spaces(v))).collect();
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut canonical_headers = String::new();
    let mut signed: Vec<&str> = Vec::new();
    for (name, value) in &headers {
        if signed.last() == Some(&name.as_str()) {
            // A repeated header is one line, its values comma-separated.
            canonical_headers.pop();
            canonical_headers.push(',');
        } else {
            canonical_headers.push_str(name);
            canonical_headers.push(':');
            signed.push(name);
        }
        canonical_headers.push_str(value);
        canonical_headers.push('\n');
    }
    let signed_headers = signed.join(";");
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        request.method, request.path, request.query, request.payload_sha256
    );
    let day = &amz_date[..8];
    let scope = format!("{day}/{region}/s3/aws4_request");
    let string_to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()));
    let signing_key = [day, region, "s3", "aws4_request"]
        .iter()
        .fold(format!("AWS4{}", creds.secret_key).into_bytes(), |key, part| hmac_sha256(&key, part.as_bytes()));
    let signature = hex::encode(hmac_sha256(&signing_key, string_to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope},SignedHeaders={signed_headers},Signature={signature}",
        creds.access_key
    )
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data).as_ref().to_vec()
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn example_creds() -> Credentials {
        Credentials::new("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    }

    /// The GET Object example of the SigV4 header-auth page of the S3 API
    /// reference ("Example: GET Object", a range of `/test.txt`).
    #[test]
    fn the_published_get_object_example_signs_to_the_published_signature() {
        let at = Timestamp::parse_rfc3339("2013-05-24T00:00:00Z").unwrap();
        let date = amz_date(at);
        assert_eq!(date, "20130524T000000Z");
        let headers = vec![
            ("Host".to_owned(), "examplebucket.s3.amazonaws.com".to_owned()),
            ("Range".to_owned(), "bytes=0-9".to_owned()),
            ("x-amz-content-sha256".to_owned(), EMPTY_SHA256.to_owned()),
            ("x-amz-date".to_owned(), date.clone()),
        ];
        let request =
            Request { method: "GET", path: "/test.txt", query: "", headers: &headers, payload_sha256: EMPTY_SHA256 };
        assert_eq!(
            authorization(&example_creds(), "us-east-1", &date, &request),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn paths_and_queries_are_encoded_as_sigv4_wants() {
        assert_eq!(encode_path("b", Some("a b/c+d%e/ü/~x.y_z-")), "/b/a%20b/c%2Bd%25e/%C3%BC/~x.y_z-");
        assert_eq!(encode_path("b", Some("/lead//double/")), "/b//lead//double/");
        assert_eq!(encode_path("b", None), "/b");
        assert_eq!(
            canonical_query(&[("versionId", "a+b/c".to_owned()), ("retention", String::new())]),
            "retention=&versionId=a%2Bb%2Fc"
        );
        assert_eq!(canonical_query(&[("prefix", "J".to_owned()), ("max-keys", "2".to_owned())]), "max-keys=2&prefix=J");
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        let text = format!("{:?}", example_creds());
        assert!(text.contains("AKIAIOSFODNN7EXAMPLE"));
        assert!(!text.contains("wJalrXUtnFEMI"), "{text}");
    }

    #[test]
    fn the_date_has_whole_seconds() {
        let at = Timestamp::parse_rfc3339("2030-12-31T23:59:58.999999Z").unwrap();
        assert_eq!(amz_date(at), "20301231T235958Z");
    }
}
