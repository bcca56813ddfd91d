//! Conversions between wire messages and domain types that involve the
//! store's types (so they cannot live in `wormbox-proto`).
//!
//! Invariant: every field coming off the wire is validated here or in the
//! model's constructors; a bad field is `INVALID_ARGUMENT` and nothing runs.

use std::collections::{BTreeMap, HashMap};

use tonic::Status;
use wormbox_mfa::{DeviceInfo, DeviceState};
use wormbox_model::{BucketName, Digest, ObjectKey, UserMetadata, VersionSelector};
use wormbox_proto::v1;
use wormbox_store::retention::{DefaultRetention, LegalHold, Retention, RetentionMode, RetentionPeriod};
use wormbox_store::{BucketInfo, NewObject, VersionInfo};
use wormbox_token::Algorithm;

use crate::grpc::status::invalid;

pub(crate) fn bucket_name(name: &str) -> Result<BucketName, Status> {
    BucketName::new(name).map_err(|e| invalid(e.to_string()))
}

pub(crate) fn object_key(key: &str) -> Result<ObjectKey, Status> {
    ObjectKey::new(key).map_err(|e| invalid(e.to_string()))
}

pub(crate) fn version_selector(version_id: &str) -> Result<Option<VersionSelector>, Status> {
    if version_id.is_empty() {
        return Ok(None);
    }
    VersionSelector::parse(version_id).map(Some).map_err(|e| invalid(e.to_string()))
}

pub(crate) fn new_object(
    content_type: String,
    user_metadata: HashMap<String, String>,
    expected_sha256: &[u8],
    retention_wire: Option<v1::Retention>,
    legal_hold: String,
) -> Result<NewObject, Status> {
    let expected_sha256 = match expected_sha256.len() {
        0 => None,
        _ => Some(Digest::from_slice(expected_sha256).ok_or_else(|| invalid("expected_sha256 must be 32 bytes"))?),
    };
    let user_metadata = UserMetadata::new(user_metadata.into_iter().collect::<BTreeMap<_, _>>()).map_err(invalid)?;
    Ok(NewObject {
        content_type,
        user_metadata,
        expected_sha256,
        retention: retention(retention_wire)?,
        legal_hold: optional(legal_hold),
    })
}

pub(crate) fn bucket(info: &BucketInfo) -> v1::Bucket {
    v1::Bucket {
        name: info.name.to_string(),
        owner: info.owner.clone(),
        versioning: wormbox_proto::versioning_to_wire(info.versioning) as i32,
        created_at_unix_micros: info.created_at.as_micros(),
        mfa_delete: if info.mfa_delete { v1::MfaDeleteStatus::Enabled } else { v1::MfaDeleteStatus::Disabled } as i32,
        object_lock: info.object_lock,
        default_retention: info.default_retention.map(|d| {
            let (days, years) = match d.period {
                RetentionPeriod::Days(n) => (n, 0),
                RetentionPeriod::Years(n) => (0, n),
            };
            v1::DefaultRetention { mode: mode_to_wire(d.mode) as i32, days, years }
        }),
    }
}

/// `UNSPECIFIED` leaves MFA Delete as it is.
pub(crate) fn mfa_delete(status: i32) -> Result<Option<bool>, Status> {
    match v1::MfaDeleteStatus::try_from(status) {
        Ok(v1::MfaDeleteStatus::Unspecified) => Ok(None),
        Ok(v1::MfaDeleteStatus::Enabled) => Ok(Some(true)),
        Ok(v1::MfaDeleteStatus::Disabled) => Ok(Some(false)),
        Err(_) => Err(invalid("mfa_delete must be ENABLED or DISABLED")),
    }
}

/// An empty `mfa` field means none; anything else goes to the authority as is
/// (it parses strictly and answers MFA_INVALID for any malformed string).
pub(crate) fn mfa(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

pub(crate) fn otp_algorithm(value: i32) -> Result<Algorithm, Status> {
    match v1::OtpAlgorithm::try_from(value) {
        Ok(v1::OtpAlgorithm::Unspecified | v1::OtpAlgorithm::Sha1) => Ok(Algorithm::Sha1),
        Ok(v1::OtpAlgorithm::Sha256) => Ok(Algorithm::Sha256),
        Ok(v1::OtpAlgorithm::Sha512) => Ok(Algorithm::Sha512),
        Err(_) => Err(invalid("unknown OTP algorithm")),
    }
}

pub(crate) fn device(info: &DeviceInfo) -> v1::MfaDevice {
    v1::MfaDevice {
        serial: info.serial.clone(),
        owner: info.owner.clone(),
        algorithm: match info.params.algorithm {
            Algorithm::Sha1 => v1::OtpAlgorithm::Sha1,
            Algorithm::Sha256 => v1::OtpAlgorithm::Sha256,
            Algorithm::Sha512 => v1::OtpAlgorithm::Sha512,
        } as i32,
        digits: u32::from(info.params.digits),
        step_seconds: u32::try_from(info.params.step_secs).unwrap_or(u32::MAX),
        t0_unix_seconds: info.params.t0,
        state: match info.state {
            DeviceState::Pending => v1::MfaDeviceState::Pending,
            DeviceState::Active => v1::MfaDeviceState::Active,
            DeviceState::Deactivated => v1::MfaDeviceState::Deactivated,
        } as i32,
        drift_steps: info.drift_steps,
        failures: info.failures,
        locked_until_unix_seconds: info.locked_until,
        created_at_unix_micros: info.created_at.as_micros(),
    }
}

pub(crate) fn version(info: &VersionInfo) -> v1::ObjectVersion {
    v1::ObjectVersion {
        key: info.key.clone(),
        version_id: info.version_id.clone(),
        is_latest: info.is_latest,
        is_delete_marker: info.is_delete_marker,
        size: info.size,
        sha256: if info.is_delete_marker { Vec::new() } else { info.sha256.0.to_vec() },
        content_type: info.content_type.clone(),
        user_metadata: info.user_metadata.entries().iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        created_at_unix_micros: info.created_at.as_micros(),
        creator: info.creator.clone(),
        retention: info.retention.map(retention_to_wire),
        legal_holds: holds_to_wire(&info.legal_holds),
    }
}

pub(crate) fn retention_to_wire(r: Retention) -> v1::Retention {
    v1::Retention { mode: mode_to_wire(r.mode) as i32, retain_until_unix_micros: r.until.as_micros() }
}

fn mode_to_wire(mode: RetentionMode) -> v1::RetentionMode {
    match mode {
        RetentionMode::Governance => v1::RetentionMode::Governance,
        RetentionMode::Compliance => v1::RetentionMode::Compliance,
    }
}

fn mode_from_wire(mode: i32) -> Result<RetentionMode, Status> {
    match v1::RetentionMode::try_from(mode) {
        Ok(v1::RetentionMode::Governance) => Ok(RetentionMode::Governance),
        Ok(v1::RetentionMode::Compliance) => Ok(RetentionMode::Compliance),
        _ => Err(invalid("retention mode must be GOVERNANCE or COMPLIANCE")),
    }
}

/// An absent message means no retention; a present one must be complete.
pub(crate) fn retention(wire: Option<v1::Retention>) -> Result<Option<Retention>, Status> {
    wire.map(|r| {
        Ok(Retention { mode: mode_from_wire(r.mode)?, until: wormbox_model::Timestamp(r.retain_until_unix_micros) })
    })
    .transpose()
}

pub(crate) fn default_retention(wire: Option<v1::DefaultRetention>) -> Result<Option<DefaultRetention>, Status> {
    let Some(d) = wire else { return Ok(None) };
    let period = match (d.days, d.years) {
        (days, 0) if days > 0 => RetentionPeriod::Days(days),
        (0, years) if years > 0 => RetentionPeriod::Years(years),
        _ => return Err(invalid("a default retention gives exactly one of days and years")),
    };
    Ok(Some(DefaultRetention { mode: mode_from_wire(d.mode)?, period }))
}

pub(crate) fn holds_to_wire(holds: &[LegalHold]) -> Vec<v1::LegalHold> {
    holds
        .iter()
        .map(|h| v1::LegalHold {
            case_id: h.case_id.clone(),
            placed_by: h.placed_by.clone(),
            placed_at_unix_micros: h.placed_at.as_micros(),
            note: h.note.clone(),
        })
        .collect()
}

/// Empty strings on the wire mean "not given".
pub(crate) fn optional(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}
