//! Bucket operations: ListBuckets, CreateBucket (with
//! `x-amz-bucket-object-lock-enabled`), HeadBucket, DeleteBucket,
//! GetBucketLocation, Get/PutBucketVersioning (Status and MfaDelete, with
//! `x-amz-mfa`) and Get/PutObjectLockConfiguration (the default retention).
//!
//! Invariant: a versioning or Object Lock change is the same `App` call as
//! gRPC's, judged (owner, MFA Delete, lowering a default) in the writer; a
//! request body that does not say what S3 requires it to say is refused
//! before that call (`MalformedXML`), so it changes and records nothing.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use wormbox_app::{CreateBucket, DeleteBucket, GetBucket, PutBucketDefaultRetention, PutBucketVersioning};
use wormbox_model::VersioningState;
use wormbox_store::StoreError;
use wormbox_store::retention::{DefaultRetention as WormDefault, RetentionMode, RetentionPeriod};

use crate::auth::caller;
use crate::convert::{Wormbox, blocking, bucket_name, mfa, timestamp};
use crate::error::app_error;

pub(crate) async fn list_buckets(
    w: &Wormbox,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let actor = caller(&req)?;
    let app = std::sync::Arc::clone(&w.app);
    let owner = Owner { id: Some(actor.access_key.clone()), display_name: Some(actor.access_key.clone()) };
    let buckets = blocking(move || app.buckets(&actor)).await?;
    let buckets = buckets
        .into_iter()
        .map(|b| Bucket {
            name: Some(b.name.to_string()),
            creation_date: Some(timestamp(b.created_at)),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput { buckets: Some(buckets), owner: Some(owner), ..Default::default() }))
}

pub(crate) async fn create_bucket(
    w: &Wormbox,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let actor = caller(&req)?;
    let input = req.input;
    let constraint = input
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
        .map(|c| c.as_str().to_owned())
        .unwrap_or_default();
    if !constraint.is_empty() && constraint != w.options.region {
        return Err(s3_error!(
            InvalidLocationConstraint,
            "This endpoint serves region '{}', not '{constraint}'.",
            w.options.region
        ));
    }
    let bucket = bucket_name(&input.bucket)?;
    let object_lock = input.object_lock_enabled_for_bucket.unwrap_or(false);
    let create = CreateBucket { bucket: bucket.clone(), object_lock };
    match w.app.create_bucket(&actor, create).await {
        Ok(_) => Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{bucket}")) })),
        Err(wormbox_app::AppError::Store(StoreError::BucketExists { .. })) => {
            // Whose it is decides S3's answer; the caller may see it (HeadBucket would tell).
            match w.app.bucket(&actor, &GetBucket { bucket: bucket.clone() }) {
                // S3's us-east-1 answers its owner's repeated request with
                // success; the bucket stays as it is, so asking for another
                // Object Lock setting is still refused.
                Ok(info)
                    if info.owner == actor.access_key
                        && w.options.region == "us-east-1"
                        && info.object_lock == object_lock =>
                {
                    Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{bucket}")) }))
                }
                Ok(info) if info.owner == actor.access_key => Err(s3_error!(
                    BucketAlreadyOwnedByYou,
                    "Your previous request to create the named bucket succeeded and you already own it."
                )),
                _ => Err(s3_error!(BucketAlreadyExists, "The requested bucket name is not available.")),
            }
        }
        Err(err) => Err(app_error(err)),
    }
}

pub(crate) async fn head_bucket(
    w: &Wormbox,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    let actor = caller(&req)?;
    let bucket = bucket_name(&req.input.bucket)?;
    w.app.bucket(&actor, &GetBucket { bucket }).map_err(app_error)?;
    Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(w.options.region.clone()), ..Default::default() }))
}

pub(crate) async fn delete_bucket(
    w: &Wormbox,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let actor = caller(&req)?;
    let bucket = bucket_name(&req.input.bucket)?;
    w.app.delete_bucket(&actor, DeleteBucket { bucket }).await.map_err(app_error)?;
    Ok(S3Response::new(DeleteBucketOutput::default()))
}

pub(crate) async fn get_bucket_location(
    w: &Wormbox,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let actor = caller(&req)?;
    let bucket = bucket_name(&req.input.bucket)?;
    w.app.bucket(&actor, &GetBucket { bucket }).map_err(app_error)?;
    // us-east-1 is S3's empty constraint.
    let location_constraint =
        (w.options.region != "us-east-1").then(|| BucketLocationConstraint::from(w.options.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput { location_constraint }))
}

pub(crate) async fn get_bucket_versioning(
    w: &Wormbox,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let actor = caller(&req)?;
    let bucket = bucket_name(&req.input.bucket)?;
    let info = w.app.bucket(&actor, &GetBucket { bucket }).map_err(app_error)?;
    let status = match info.versioning {
        VersioningState::Unversioned => None,
        VersioningState::Enabled => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::ENABLED)),
        VersioningState::Suspended => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::SUSPENDED)),
    };
    // As S3: MfaDelete is shown once versioning was ever configured.
    let mfa_delete = (info.mfa_delete || status.is_some()).then(|| {
        MFADeleteStatus::from_static(if info.mfa_delete { MFADeleteStatus::ENABLED } else { MFADeleteStatus::DISABLED })
    });
    Ok(S3Response::new(GetBucketVersioningOutput { status, mfa_delete }))
}

pub(crate) async fn put_bucket_versioning(
    w: &Wormbox,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let actor = caller(&req)?;
    let input = req.input;
    let bucket = bucket_name(&input.bucket)?;
    let config = input.versioning_configuration;
    let state = match config.status.as_ref().map(BucketVersioningStatus::as_str) {
        Some(BucketVersioningStatus::ENABLED) => VersioningState::Enabled,
        Some(BucketVersioningStatus::SUSPENDED) => VersioningState::Suspended,
        Some(other) => {
            return Err(s3_error!(
                IllegalVersioningConfigurationException,
                "The versioning status '{other}' is neither Enabled nor Suspended."
            ));
        }
        None => {
            return Err(s3_error!(
                IllegalVersioningConfigurationException,
                "The versioning configuration names no Status."
            ));
        }
    };
    let mfa_delete = match config.mfa_delete.as_ref().map(MFADelete::as_str) {
        Some(MFADelete::ENABLED) => Some(true),
        Some(MFADelete::DISABLED) => Some(false),
        Some(other) => return Err(s3_error!(MalformedXML, "MfaDelete '{other}' is neither Enabled nor Disabled.")),
        None => None,
    };
    let change = PutBucketVersioning { bucket, state, mfa_delete, mfa: mfa(input.mfa.as_ref()) };
    w.app.set_versioning(&actor, change).await.map_err(app_error)?;
    Ok(S3Response::new(PutBucketVersioningOutput::default()))
}

pub(crate) async fn get_object_lock_configuration(
    w: &Wormbox,
    req: S3Request<GetObjectLockConfigurationInput>,
) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
    let actor = caller(&req)?;
    let bucket = bucket_name(&req.input.bucket)?;
    let info = w.app.bucket(&actor, &GetBucket { bucket }).map_err(app_error)?;
    if !info.object_lock {
        return Err(s3_error!(
            ObjectLockConfigurationNotFoundError,
            "Object Lock configuration does not exist for this bucket"
        ));
    }
    let rule = info.default_retention.map(|d| {
        let (days, years) = match d.period {
            RetentionPeriod::Days(n) => (i32::try_from(n).ok(), None),
            RetentionPeriod::Years(n) => (None, i32::try_from(n).ok()),
        };
        ObjectLockRule {
            default_retention: Some(s3s::dto::DefaultRetention {
                mode: Some(ObjectLockRetentionMode::from(d.mode.as_str().to_owned())),
                days,
                years,
            }),
        }
    });
    let config = ObjectLockConfiguration {
        object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
        rule,
    };
    Ok(S3Response::new(GetObjectLockConfigurationOutput { object_lock_configuration: Some(config) }))
}

pub(crate) async fn put_object_lock_configuration(
    w: &Wormbox,
    req: S3Request<PutObjectLockConfigurationInput>,
) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
    let actor = caller(&req)?;
    let code = mfa(req.headers.get("x-amz-mfa").and_then(|v| v.to_str().ok()).map(str::to_owned).as_ref());
    let input = req.input;
    let bucket = bucket_name(&input.bucket)?;
    let Some(config) = input.object_lock_configuration else {
        return Err(s3_error!(MalformedXML, "The request names no ObjectLockConfiguration."));
    };
    if config.object_lock_enabled.as_ref().map(ObjectLockEnabled::as_str) != Some(ObjectLockEnabled::ENABLED) {
        return Err(s3_error!(MalformedXML, "ObjectLockEnabled must be Enabled."));
    }
    let default = match config.rule.and_then(|r| r.default_retention) {
        None => None,
        Some(d) => Some(default_retention(&d)?),
    };
    let change = PutBucketDefaultRetention { bucket: bucket.clone(), default, mfa: code };
    if let Err(err) = w.app.set_default_retention(&actor, change).await {
        // S3 answers a bucket that cannot take Object Lock yet with a
        // conflict, not a bad request; the writer judged and recorded it.
        if err.code() == "INVALID_ARGUMENT"
            && let Ok(info) = w.app.bucket(&actor, &GetBucket { bucket })
            && lock_needs_versioning(info.object_lock, info.versioning)
        {
            return Err(s3_error!(
                InvalidBucketState,
                "Object Lock can be turned on only for a bucket whose versioning is Enabled ({})",
                err.code()
            ));
        }
        return Err(app_error(err));
    }
    Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
}

/// Whether a bucket must have versioning Enabled before it takes Object Lock.
fn lock_needs_versioning(object_lock: bool, versioning: VersioningState) -> bool {
    !object_lock && versioning != VersioningState::Enabled
}

/// A bucket's default retention: a mode and exactly one positive period.
fn default_retention(d: &s3s::dto::DefaultRetention) -> S3Result<WormDefault> {
    let mode = match d.mode.as_ref().map(ObjectLockRetentionMode::as_str) {
        Some(ObjectLockRetentionMode::GOVERNANCE) => RetentionMode::Governance,
        Some(ObjectLockRetentionMode::COMPLIANCE) => RetentionMode::Compliance,
        _ => return Err(s3_error!(MalformedXML, "DefaultRetention needs Mode GOVERNANCE or COMPLIANCE.")),
    };
    let period = match (d.days, d.years) {
        (Some(days), None) if days > 0 => RetentionPeriod::Days(days as u32),
        (None, Some(years)) if years > 0 => RetentionPeriod::Years(years as u32),
        (Some(_), Some(_)) => return Err(s3_error!(MalformedXML, "DefaultRetention names both Days and Years.")),
        _ => {
            return Err(crate::error::custom(
                "InvalidRetentionPeriod",
                400,
                "DefaultRetention needs a positive number of Days or Years.",
            ));
        }
    };
    let default = WormDefault { mode, period };
    default.validate().map_err(|e| s3_error!(InvalidArgument, "{e}"))?;
    Ok(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bucket_without_lock_and_enabled_versioning_is_in_the_wrong_state() {
        assert!(lock_needs_versioning(false, VersioningState::Unversioned));
        assert!(lock_needs_versioning(false, VersioningState::Suspended));
        assert!(!lock_needs_versioning(false, VersioningState::Enabled));
        assert!(!lock_needs_versioning(true, VersioningState::Enabled));
    }
}
