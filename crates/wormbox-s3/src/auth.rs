//! Who an S3 request is from: the secret its signature is checked with
//! (`Auth`, a principal's S3 secret opened by the application layer), then
//! the checks `s3s` leaves to us (`Access`): no anonymous request, the
//! configured region and service in a SigV4 credential scope, SigV2's
//! date within 15 minutes of real time (s3s checks SigV4's), every
//! `x-amz-*` header under a SigV4 signature, and no presigned URL valid for
//! more than seven days. The caller, as
//! an `Actor`, is put into the request for the handlers (`caller`).
//!
//! Invariant: every refusal here happens before any handler runs, so a
//! refused caller writes nothing, not even a ledger entry; an unknown key,
//! a revoked principal and one without an S3 secret get the same answer
//! (`InvalidAccessKeyId`). Secrets are never logged or returned.

use std::sync::Arc;
use std::time::Duration;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Request, S3Result, s3_error};
use wormbox_app::App;
use wormbox_model::Clock;
use wormbox_store::Actor;

use crate::error::app_error;

/// How far a request's date may be from real time (S3's 15 minutes).
pub(crate) const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// The secret a request's signature is checked with.
pub(crate) struct Auth {
    app: Arc<App>,
}

impl Auth {
    pub(crate) fn new(app: Arc<App>) -> Auth {
        Auth { app }
    }
}

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.app.s3_secret(access_key) {
            Ok(Some((_, secret))) => Ok(SecretKey::from(secret.as_str())),
            Ok(None) => Err(unknown_key()),
            Err(err) => Err(app_error(err)),
        }
    }
}

fn unknown_key() -> s3s::S3Error {
    s3_error!(InvalidAccessKeyId, "The AWS access key Id you provided does not exist in our records.")
}

/// A SigV4 credential scope (header or presigned query) must name `region`
/// and `s3`. The listener checks it before s3s reads anything (s3s would
/// answer another service `NotImplemented`, and read an `sts` body whole),
/// `Access` again after the signature.
pub(crate) fn check_scope(headers: &http::HeaderMap, uri: &http::Uri, region: &str) -> S3Result<()> {
    let header = match headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some(auth) if auth.starts_with("AWS4-") => {
            auth.split([' ', ',']).find_map(|part| part.trim().strip_prefix("Credential=")).map(str::to_owned)
        }
        _ => None,
    };
    // Both, when a request carries both: s3s checks a presigned signature
    // first, so the header's scope alone would not be the one verified.
    for scope in header.into_iter().chain(query_value(uri, "X-Amz-Credential")) {
        // AKID/DATE/REGION/SERVICE/aws4_request
        let parts: Vec<&str> = scope.split('/').collect();
        let (scoped_region, service) = match parts.as_slice() {
            [.., scoped_region, service, "aws4_request"] => (*scoped_region, *service),
            _ => return Err(s3_error!(AuthorizationHeaderMalformed, "The credential scope is malformed.")),
        };
        if scoped_region != region {
            return Err(s3_error!(
                AuthorizationHeaderMalformed,
                "The authorization header is malformed; the region '{scoped_region}' is wrong; expecting '{region}'"
            ));
        }
        if service != "s3" {
            return Err(s3_error!(
                AuthorizationHeaderMalformed,
                "The authorization header is malformed; the service '{service}' is wrong; expecting 's3'"
            ));
        }
    }
    Ok(())
}

/// Headers named `x-amz-*` a SigV4 client may leave unsigned (AWS's SDK
/// for JavaScript does this one).
const UNSIGNABLE_AMZ_HEADERS: [&str; 1] = ["x-amz-user-agent"];

/// A SigV4 header signature must cover every `x-amz-*` header sent, as S3
/// requires: s3s checks only the headers the client chose to sign, so an
/// `x-amz-mfa`, `x-amz-bypass-governance-retention` or
/// `x-amz-object-lock-*` added to a captured request would pass with its
/// signature (SigV2 signs every `x-amz-*` header by construction).
pub(crate) fn check_signed_amz_headers(headers: &http::HeaderMap) -> S3Result<()> {
    let Some(auth) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return Ok(()) };
    if !auth.starts_with("AWS4-") {
        return Ok(());
    }
    let signed: Vec<&str> = auth
        .split([' ', ','])
        .find_map(|part| part.trim().strip_prefix("SignedHeaders="))
        .map(|list| list.split(';').collect())
        .unwrap_or_default();
    let unsigned = headers
        .keys()
        .map(http::HeaderName::as_str)
        .find(|name| name.starts_with("x-amz-") && !UNSIGNABLE_AMZ_HEADERS.contains(name) && !signed.contains(name));
    match unsigned {
        Some(name) => {
            Err(s3_error!(AccessDenied, "There were headers present in the request which were not signed: {name}"))
        }
        None => Ok(()),
    }
}

/// The longest a presigned URL may be valid (S3's seven days for SigV4;
/// SigV2's too, here).
pub(crate) const MAX_PRESIGNED_EXPIRY_SECS: u64 = 7 * 24 * 3600;

/// A SigV4 presigned URL may be valid for at most seven days, as in S3
/// (s3s takes any `X-Amz-Expires` up to 136 years: a leaked URL would
/// sign for its principal for ever).
pub(crate) fn check_presigned_expiry(uri: &http::Uri) -> S3Result<()> {
    let Some(expires) = query_value(uri, "X-Amz-Expires") else { return Ok(()) };
    match expires.parse::<u64>() {
        Ok(secs) if (1..=MAX_PRESIGNED_EXPIRY_SECS).contains(&secs) => Ok(()),
        _ => Err(s3_error!(
            AuthorizationQueryParametersError,
            "X-Amz-Expires must be a number of seconds from 1 to {MAX_PRESIGNED_EXPIRY_SECS} (seven days)"
        )),
    }
}

/// The checks after the signature: region, SigV2's date, the caller.
pub(crate) struct Access {
    app: Arc<App>,
    region: String,
    clock: Arc<dyn Clock>,
}

impl Access {
    pub(crate) fn new(app: Arc<App>, region: String, clock: Arc<dyn Clock>) -> Access {
        Access { app, region, clock }
    }

    /// SigV2 presigned URLs (`Expires`, seconds since the epoch, and
    /// `Signature` in the query): at most seven days ahead of real time, as
    /// SigV4's (s3s checks only that they have not expired).
    fn check_v2_expiry(&self, cx: &S3AccessContext<'_>) -> S3Result<()> {
        let uri = cx.uri();
        if cx.headers().contains_key(http::header::AUTHORIZATION) || query_value(uri, "Signature").is_none() {
            return Ok(());
        }
        let Some(expires) = query_value(uri, "Expires") else { return Ok(()) };
        let now_secs = self.clock.now().as_micros().div_euclid(1_000_000);
        let latest = now_secs.saturating_add(MAX_PRESIGNED_EXPIRY_SECS as i64);
        match expires.parse::<i64>() {
            Ok(at) if at <= latest => Ok(()),
            _ => Err(s3_error!(
                AuthorizationQueryParametersError,
                "Expires must be at most {MAX_PRESIGNED_EXPIRY_SECS} seconds (seven days) from now"
            )),
        }
    }

    /// SigV2 header signatures: the date they sign must be within
    /// `MAX_SKEW` of real time, as for SigV4 (s3s checks only SigV4's).
    fn check_v2_date(&self, cx: &S3AccessContext<'_>) -> S3Result<()> {
        let headers = cx.headers();
        let v2 = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|auth| auth.starts_with("AWS "));
        if !v2 {
            return Ok(());
        }
        let date = headers
            .get("x-amz-date")
            .or_else(|| headers.get(http::header::DATE))
            .and_then(|v| v.to_str().ok())
            .and_then(|text| httpdate::parse_http_date(text).ok());
        let Some(date) = date else {
            return Err(s3_error!(AccessDenied, "AWS authentication requires a valid Date or x-amz-date header"));
        };
        let signed = date.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0);
        let now = self.clock.now().as_micros();
        if signed.abs_diff(now) > MAX_SKEW.as_micros() as u64 {
            return Err(s3_error!(
                RequestTimeTooSkewed,
                "The difference between the request time and the current time is too large."
            ));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        // Named for the request counts whatever the check decides.
        let operation = cx.s3_op().name().to_owned();
        if let Some(slot) = cx.extensions_mut().get::<crate::requests::OperationSlot>() {
            slot.set(&operation);
        }
        let Some(credentials) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "Anonymous access is not allowed: sign the request."));
        };
        let access_key = credentials.access_key.clone();
        check_scope(cx.headers(), cx.uri(), &self.region)?;
        check_signed_amz_headers(cx.headers())?;
        self.check_v2_date(cx)?;
        self.check_v2_expiry(cx)?;
        let actor = match self.app.s3_actor(&access_key) {
            Ok(Some(actor)) => actor,
            Ok(None) => return Err(unknown_key()),
            Err(err) => return Err(app_error(err)),
        };
        cx.extensions_mut().insert(Caller(actor));
        Ok(())
    }
}

/// The principal a request is from, put into the request by `Access`.
#[derive(Clone, Debug)]
struct Caller(Actor);

/// The caller of a request `Access` let through.
pub(crate) fn caller<T>(req: &S3Request<T>) -> S3Result<Actor> {
    match req.extensions.get::<Caller>() {
        Some(Caller(actor)) => Ok(actor.clone()),
        // Unreachable while `Access` is installed; refuse rather than guess.
        None => Err(s3_error!(AccessDenied, "The request was not authenticated.")),
    }
}

/// The value of query parameter `name`, percent-decoded.
fn query_value(uri: &http::Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_value_is_decoded() {
        let uri: http::Uri = "/b/k?X-Amz-Credential=AK%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&x=1".parse().unwrap();
        assert_eq!(query_value(&uri, "X-Amz-Credential").unwrap(), "AK/20260101/us-east-1/s3/aws4_request");
        assert_eq!(query_value(&uri, "missing"), None);
    }

    #[test]
    fn a_scope_of_another_region_or_any_other_service_is_malformed() {
        let header = |scope: &str| {
            let mut headers = http::HeaderMap::new();
            let value = format!("AWS4-HMAC-SHA256 Credential=AK/{scope}/aws4_request,SignedHeaders=host,Signature=00");
            headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
            headers
        };
        let root: http::Uri = "/".parse().unwrap();
        check_scope(&header("20260101/us-east-1/s3"), &root, "us-east-1").unwrap();
        for scope in ["20260101/eu-west-1/s3", "20260101/us-east-1/sts", "20260101/us-east-1/iam"] {
            let err = check_scope(&header(scope), &root, "us-east-1").unwrap_err();
            assert_eq!(err.code(), &s3s::S3ErrorCode::AuthorizationHeaderMalformed, "{scope}");
        }
        let presigned: http::Uri =
            "/b/k?X-Amz-Credential=AK%2F20260101%2Fus-east-1%2Fiam%2Faws4_request".parse().unwrap();
        let err = check_scope(&http::HeaderMap::new(), &presigned, "us-east-1").unwrap_err();
        assert_eq!(err.code(), &s3s::S3ErrorCode::AuthorizationHeaderMalformed);
        // A good header does not cover a bad presigned scope beside it.
        let err = check_scope(&header("20260101/us-east-1/s3"), &presigned, "us-east-1").unwrap_err();
        assert_eq!(err.code(), &s3s::S3ErrorCode::AuthorizationHeaderMalformed);
        // SigV2 and anonymous requests carry no scope.
        check_scope(&http::HeaderMap::new(), &root, "us-east-1").unwrap();
    }

    #[test]
    fn every_amz_header_of_a_sigv4_request_is_signed() {
        let request = |signed: &str, extra: &[&str]| {
            let mut headers = http::HeaderMap::new();
            let value = format!(
                "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/s3/aws4_request, SignedHeaders={signed}, Signature=00"
            );
            headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
            for name in ["host", "x-amz-date", "x-amz-content-sha256"].iter().chain(extra) {
                headers.insert(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), "v".parse().unwrap());
            }
            headers
        };
        let base = "host;x-amz-content-sha256;x-amz-date";
        check_signed_amz_headers(&request(base, &[])).unwrap();
        check_signed_amz_headers(&request(base, &["x-amz-user-agent", "content-type"])).unwrap();
        check_signed_amz_headers(&request(&format!("{base};x-amz-mfa"), &["x-amz-mfa"])).unwrap();
        let err = check_signed_amz_headers(&request(base, &["x-amz-mfa"])).unwrap_err();
        assert_eq!(err.code(), &s3s::S3ErrorCode::AccessDenied);
        assert!(err.message().unwrap().ends_with("x-amz-mfa"));
        // SigV2 signs every x-amz-* header itself.
        let mut v2 = http::HeaderMap::new();
        v2.insert(http::header::AUTHORIZATION, "AWS AK:c2ln".parse().unwrap());
        v2.insert("x-amz-mfa", "v".parse().unwrap());
        check_signed_amz_headers(&v2).unwrap();
    }

    #[test]
    fn a_presigned_url_is_valid_for_at_most_seven_days() {
        let uri = |expires: &str| format!("/b/k?X-Amz-Expires={expires}&X-Amz-Signature=00").parse().unwrap();
        check_presigned_expiry(&uri("604800")).unwrap();
        check_presigned_expiry(&"/b/k".parse().unwrap()).unwrap();
        for expires in ["604801", "4294967295", "0", "-1", "soon"] {
            let err = check_presigned_expiry(&uri(expires)).unwrap_err();
            assert_eq!(err.code(), &s3s::S3ErrorCode::AuthorizationQueryParametersError, "{expires}");
        }
    }
}
