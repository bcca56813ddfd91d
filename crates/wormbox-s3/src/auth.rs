//! Who an S3 request is from: the secret its signature is checked with
//! (`Auth`, a principal's S3 secret opened by the application layer), then
//! the checks `s3s` leaves to us (`Access`): no anonymous request, the
//! configured region and service in a SigV4 credential scope, and SigV2's
//! date within 15 minutes of real time (s3s checks SigV4's). The caller, as
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
/// The longest a presigned URL may be valid (SigV4's 7 days, also applied
/// to SigV2's `Expires`, which S3 leaves unbounded).
pub(crate) const MAX_PRESIGNED: Duration = Duration::from_secs(7 * 24 * 3600);

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

    /// A SigV4 credential scope must name our region and `s3`.
    fn check_scope(&self, cx: &S3AccessContext<'_>) -> S3Result<()> {
        let scope = match cx.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
            Some(auth) if auth.starts_with("AWS4-") => {
                auth.split([' ', ',']).find_map(|part| part.trim().strip_prefix("Credential=")).map(str::to_owned)
            }
            Some(_) => None,
            None => query_value(cx.uri(), "X-Amz-Credential"),
        };
        let Some(scope) = scope else { return Ok(()) };
        // AKID/DATE/REGION/SERVICE/aws4_request
        let parts: Vec<&str> = scope.split('/').collect();
        let (region, service) = match parts.as_slice() {
            [.., region, service, "aws4_request"] => (*region, *service),
            _ => return Err(s3_error!(AuthorizationHeaderMalformed, "The credential scope is malformed.")),
        };
        if region != self.region {
            return Err(s3_error!(
                AuthorizationHeaderMalformed,
                "The authorization header is malformed; the region '{region}' is wrong; expecting '{}'",
                self.region
            ));
        }
        if service != "s3" {
            return Err(s3_error!(
                AuthorizationHeaderMalformed,
                "The authorization header is malformed; the service '{service}' is wrong; expecting 's3'"
            ));
        }
        Ok(())
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

/// A presigned URL is valid for at most `MAX_PRESIGNED` from `now_secs`
/// (Unix seconds): a leaked one does not open the archive for ever.
fn check_presigned_lifetime(uri: &http::Uri, now_secs: i64) -> S3Result<()> {
    let max = MAX_PRESIGNED.as_secs();
    if let Some(expires) = query_value(uri, "X-Amz-Expires") {
        match expires.parse::<u64>() {
            Ok(secs) if secs <= max => {}
            _ => {
                return Err(s3_error!(
                    AuthorizationQueryParametersError,
                    "X-Amz-Expires must be a number of seconds up to {max} (7 days)"
                ));
            }
        }
    }
    if query_value(uri, "Signature").is_some()
        && let Some(expires) = query_value(uri, "Expires")
    {
        match expires.parse::<i64>() {
            Ok(at) if at.saturating_sub(now_secs) <= max as i64 => {}
            _ => {
                return Err(s3_error!(
                    AccessDenied,
                    "A presigned URL may be valid for at most 7 days (Expires is too far ahead)"
                ));
            }
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(credentials) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "Anonymous access is not allowed: sign the request."));
        };
        let access_key = credentials.access_key.clone();
        self.check_scope(cx)?;
        self.check_v2_date(cx)?;
        check_presigned_lifetime(cx.uri(), self.clock.now().as_micros().div_euclid(1_000_000))?;
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
    fn a_presigned_url_lives_at_most_seven_days() {
        let now = 1_800_000_000;
        let ok = |q: &str| check_presigned_lifetime(&format!("/b/k?{q}").parse().unwrap(), now);
        assert!(ok("X-Amz-Expires=604800").is_ok());
        assert!(ok("X-Amz-Expires=604801").is_err());
        assert!(ok("X-Amz-Expires=-1").is_err());
        assert!(ok(&format!("Signature=x&Expires={}", now + 604_800)).is_ok());
        assert!(ok(&format!("Signature=x&Expires={}", now + 604_801)).is_err());
        assert!(ok("Signature=x&Expires=never").is_err());
        assert!(ok("versionId=1").is_ok());
    }

    #[test]
    fn a_query_value_is_decoded() {
        let uri: http::Uri = "/b/k?X-Amz-Credential=AK%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&x=1".parse().unwrap();
        assert_eq!(query_value(&uri, "X-Amz-Credential").unwrap(), "AK/20260101/us-east-1/s3/aws4_request");
        assert_eq!(query_value(&uri, "missing"), None);
    }
}
