//! Object Lock per version: Get/PutObjectRetention and
//! Get/PutObjectLegalHold.
//!
//! S3's legal hold is one flag; Wormbox's holds are named by case. The S3
//! flag is the hold of case `s3-legal-hold` (`S3_HOLD`): ON places it, OFF
//! releases it (with `x-amz-mfa` when the appliance requires a code for a
//! release). GetObjectLegalHold answers ON while any hold is placed, since a
//! version under another case's hold is just as protected.
//!
//! Invariant: every change is the `App` call gRPC's Compliance service
//! makes, judged in the writer (role, retention rules, codes) and ledgered
//! there; a malformed request is refused before it.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use wormbox_app::{GetBucket, GetObject, PutObjectLegalHold, PutObjectRetention};
use wormbox_model::{BucketName, ObjectKey, VersionSelector};
use wormbox_store::Actor;
use wormbox_store::retention::{Retention, RetentionMode, S3_HOLD};

use crate::auth::caller;
use crate::convert::{Wormbox, bucket_name, from_timestamp, mfa, object_key, timestamp, version};
use crate::error::app_error;

fn header_mfa<T>(req: &S3Request<T>) -> Option<wormbox_app::MfaCode> {
    mfa(req.headers.get("x-amz-mfa").and_then(|v| v.to_str().ok()).map(str::to_owned).as_ref())
}

/// S3 refuses lock requests on a bucket without Object Lock as a bad request.
fn require_lock(w: &Wormbox, actor: &Actor, bucket: &BucketName) -> S3Result<()> {
    let info = w.app.bucket(actor, &GetBucket { bucket: bucket.clone() }).map_err(app_error)?;
    if !info.object_lock {
        return Err(s3_error!(InvalidRequest, "Bucket is missing Object Lock Configuration"));
    }
    Ok(())
}

fn target(bucket: &str, key: &str, id: Option<&str>) -> S3Result<(BucketName, ObjectKey, Option<VersionSelector>)> {
    Ok((bucket_name(bucket)?, object_key(key)?, version(id)?))
}

pub(crate) async fn get_object_retention(
    w: &Wormbox,
    req: S3Request<GetObjectRetentionInput>,
) -> S3Result<S3Response<GetObjectRetentionOutput>> {
    let actor = caller(&req)?;
    let input = req.input;
    let (bucket, key, version) = target(&input.bucket, &input.key, input.version_id.as_deref())?;
    require_lock(w, &actor, &bucket)?;
    let info = w.app.head_object(&actor, &GetObject { bucket, key, version }).map_err(app_error)?;
    let Some(retention) = info.retention else {
        return Err(s3_error!(
            NoSuchObjectLockConfiguration,
            "The specified object does not have a ObjectLock configuration"
        ));
    };
    let retention = ObjectLockRetention {
        mode: Some(ObjectLockRetentionMode::from(retention.mode.as_str().to_owned())),
        retain_until_date: Some(timestamp(retention.until)),
    };
    Ok(S3Response::new(GetObjectRetentionOutput { retention: Some(retention) }))
}

pub(crate) async fn put_object_retention(
    w: &Wormbox,
    req: S3Request<PutObjectRetentionInput>,
) -> S3Result<S3Response<PutObjectRetentionOutput>> {
    let actor = caller(&req)?;
    let code = header_mfa(&req);
    let input = req.input;
    let (bucket, key, version) = target(&input.bucket, &input.key, input.version_id.as_deref())?;
    let retention = match input.retention {
        None | Some(ObjectLockRetention { mode: None, retain_until_date: None }) => None,
        Some(ObjectLockRetention { mode: Some(mode), retain_until_date: Some(until) }) => {
            let mode = match mode.as_str() {
                ObjectLockRetentionMode::GOVERNANCE => RetentionMode::Governance,
                ObjectLockRetentionMode::COMPLIANCE => RetentionMode::Compliance,
                other => return Err(s3_error!(MalformedXML, "Unknown retention mode '{other}'.")),
            };
            Some(Retention { mode, until: from_timestamp(&until)? })
        }
        Some(_) => return Err(s3_error!(MalformedXML, "Retention needs both Mode and RetainUntilDate.")),
    };
    require_lock(w, &actor, &bucket)?;
    let set = PutObjectRetention {
        bucket,
        key,
        version,
        retention,
        bypass_governance: input.bypass_governance_retention.unwrap_or(false),
        mfa: code,
    };
    w.app.set_retention(&actor, set).await.map_err(app_error)?;
    Ok(S3Response::new(PutObjectRetentionOutput::default()))
}

pub(crate) async fn get_object_legal_hold(
    w: &Wormbox,
    req: S3Request<GetObjectLegalHoldInput>,
) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
    let actor = caller(&req)?;
    let input = req.input;
    let (bucket, key, version) = target(&input.bucket, &input.key, input.version_id.as_deref())?;
    require_lock(w, &actor, &bucket)?;
    let info = w.app.head_object(&actor, &GetObject { bucket, key, version }).map_err(app_error)?;
    let status =
        if info.legal_holds.is_empty() { ObjectLockLegalHoldStatus::OFF } else { ObjectLockLegalHoldStatus::ON };
    let hold = ObjectLockLegalHold { status: Some(ObjectLockLegalHoldStatus::from_static(status)) };
    Ok(S3Response::new(GetObjectLegalHoldOutput { legal_hold: Some(hold) }))
}

pub(crate) async fn put_object_legal_hold(
    w: &Wormbox,
    req: S3Request<PutObjectLegalHoldInput>,
) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
    let actor = caller(&req)?;
    let code = header_mfa(&req);
    let input = req.input;
    let (bucket, key, version) = target(&input.bucket, &input.key, input.version_id.as_deref())?;
    let place = match input.legal_hold.and_then(|h| h.status).as_ref().map(ObjectLockLegalHoldStatus::as_str) {
        Some(ObjectLockLegalHoldStatus::ON) => true,
        Some(ObjectLockLegalHoldStatus::OFF) => false,
        // As S3: a status it does not know makes the document malformed.
        Some(other) => return Err(s3_error!(MalformedXML, "Legal hold status '{other}' is neither ON nor OFF")),
        None => return Err(s3_error!(MalformedXML, "LegalHold needs a Status.")),
    };
    require_lock(w, &actor, &bucket)?;
    let hold = PutObjectLegalHold {
        bucket,
        key,
        version,
        case_id: S3_HOLD.to_owned(),
        place,
        note: if place { "placed through the S3 API".to_owned() } else { String::new() },
        mfa: code,
    };
    w.app.set_legal_hold(&actor, hold).await.map_err(app_error)?;
    Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
}
