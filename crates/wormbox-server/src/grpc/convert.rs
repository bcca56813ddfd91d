//! Conversions between wire messages and domain types that involve the
//! store's types (so they cannot live in `wormbox-proto`).
//!
//! Invariant: every field coming off the wire is validated here or in the
//! model's constructors; a bad field is `INVALID_ARGUMENT` and nothing runs.

use std::collections::{BTreeMap, HashMap};

use tonic::Status;
use wormbox_mfa::{DeviceInfo, DeviceState};
use wormbox_model::{BucketName, Digest, FreeText, ObjectKey, UserMetadata, VersionSelector};
use wormbox_proto::v1;
use wormbox_reports::audit::AuditFilter;
use wormbox_reports::{CheckpointFile, Row, Summary};
use wormbox_store::evidence::{Checkpoint, IntegrityReport};
use wormbox_store::ledger::LedgerEntry;
use wormbox_store::retention::{DefaultRetention, LegalHold, Retention, RetentionMode, RetentionPeriod};
use wormbox_store::{BucketInfo, NewObject, VersionInfo};
use wormbox_token::Algorithm;

use crate::grpc::status::invalid;
use wormbox_app::MfaCode;

pub(crate) fn bucket_name(name: &str) -> Result<BucketName, Status> {
    BucketName::new(name).map_err(|e| invalid(e.to_string()))
}

pub(crate) fn object_key(key: &str) -> Result<ObjectKey, Status> {
    ObjectKey::new(key).map_err(|e| invalid(e.to_string()))
}

/// `object_key`, keeping the request's string: an Ingest record's key is
/// counted once in the receive budget.
pub(crate) fn object_key_owned(key: String) -> Result<ObjectKey, Status> {
    ObjectKey::from_string(key).map_err(|e| invalid(e.to_string()))
}

pub(crate) fn version_selector(version_id: &str) -> Result<Option<VersionSelector>, Status> {
    if version_id.is_empty() {
        return Ok(None);
    }
    VersionSelector::parse(version_id).map(Some).map_err(|e| invalid(e.to_string()))
}

/// A SHA-256 the client states; `what` names the field in the error.
pub(crate) fn digest(bytes: &[u8], what: &str) -> Result<Digest, Status> {
    Digest::from_slice(bytes).ok_or_else(|| invalid(format!("{what} must be 32 bytes")))
}

/// User metadata as decoded: its entries, and how many it held past the
/// most a version may carry (`bounded.rs` counts those, never builds them).
pub(crate) fn user_metadata(entries: HashMap<String, String>, skipped: usize) -> Result<UserMetadata, Status> {
    if skipped > 0 {
        return Err(invalid(UserMetadata::too_many_entries(entries.len() + skipped)));
    }
    UserMetadata::new(entries.into_iter().collect::<BTreeMap<_, _>>()).map_err(invalid)
}

pub(crate) fn new_object(
    content_type: String,
    user_metadata: UserMetadata,
    expected_sha256: &[u8],
    retention_wire: Option<v1::Retention>,
    legal_hold: String,
) -> Result<NewObject, Status> {
    let expected_sha256 = match expected_sha256.len() {
        0 => None,
        _ => Some(digest(expected_sha256, "expected_sha256")?),
    };
    // The same checks as the store's and the writer's (one function, one text).
    FreeText::ContentType.check(&content_type).map_err(|e| invalid(e.to_string()))?;
    let legal_hold = optional(legal_hold);
    if let Some(case_id) = &legal_hold {
        FreeText::CaseId.check(case_id).map_err(|e| invalid(e.to_string()))?;
    }
    Ok(NewObject {
        content_type,
        user_metadata,
        expected_sha256,
        retention: retention(retention_wire)?,
        legal_hold,
        etag: None,
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
pub(crate) fn mfa(text: &str) -> Option<MfaCode> {
    (!text.is_empty()).then(|| MfaCode::new(text))
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
            DeviceState::Expired => v1::MfaDeviceState::Expired,
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

pub(crate) fn checkpoint_to_wire(c: &Checkpoint, public_key: &[u8]) -> v1::Checkpoint {
    v1::Checkpoint {
        sequence: c.sequence,
        head: c.head.0.to_vec(),
        time_unix_micros: c.time.0,
        signature: c.signature.clone(),
        key_id: wormbox_store::evidence::key_id(public_key),
        tree_root: c.tree_root.map(|root| root.0.to_vec()).unwrap_or_default(),
    }
}

pub(crate) fn checkpoint_from_wire(w: v1::Checkpoint) -> Result<Checkpoint, Status> {
    let head = Digest::from_slice(&w.head).ok_or_else(|| invalid("a checkpoint's head has 32 bytes"))?;
    if w.signature.len() != 64 {
        return Err(invalid("a checkpoint's Ed25519 signature has 64 bytes"));
    }
    let tree_root = match w.tree_root.len() {
        0 => None,
        _ => Some(Digest::from_slice(&w.tree_root).ok_or_else(|| invalid("a checkpoint's tree root has 32 bytes"))?),
    };
    Ok(Checkpoint {
        sequence: w.sequence,
        head,
        time: wormbox_model::Timestamp(w.time_unix_micros),
        signature: w.signature,
        tree_root,
    })
}

pub(crate) fn checkpoint_file_to_wire(c: &CheckpointFile) -> Result<v1::Checkpoint, Status> {
    let checkpoint = c.checkpoint().map_err(invalid)?;
    Ok(v1::Checkpoint {
        sequence: checkpoint.sequence,
        head: checkpoint.head.0.to_vec(),
        time_unix_micros: checkpoint.time.0,
        signature: checkpoint.signature,
        key_id: c.key_id.clone(),
        tree_root: checkpoint.tree_root.map(|root| root.0.to_vec()).unwrap_or_default(),
    })
}

pub(crate) fn integrity_to_wire(r: &IntegrityReport, ledger_sequence: u64) -> v1::VerifyIntegrityResponse {
    v1::VerifyIntegrityResponse {
        ok: r.is_ok(),
        ledger_entries: r.ledger_entries,
        entries_hashed: r.entries_hashed,
        head: r.head.0.to_vec(),
        checkpoints_checked: r.checkpoints_checked,
        versions_checked: r.versions_checked,
        markers_checked: r.markers_checked,
        bytes_checked: r.bytes_checked,
        unattested: r.unattested,
        released_checked: r.released_checked,
        released_unchecked: r.released_unchecked,
        merkle_nodes_checked: r.merkle_nodes_checked,
        merkle_tiles_checked: r.merkle_tiles_checked,
        divergence_count: r.divergence_count,
        divergences: r
            .divergences
            .iter()
            .map(|d| v1::Divergence { sequence: d.sequence.unwrap_or(0), what: d.what.clone() })
            .collect(),
        ledger_sequence,
    }
}

pub(crate) fn audit_filter(r: v1::AuditLogRequest) -> Result<AuditFilter, Status> {
    // Kinds past the limit were counted, not kept, when the request was decoded.
    if r.skipped_kinds > 0 {
        return Err(invalid(format!(
            "AuditLog names {} kinds, at most {} are accepted",
            r.kinds.len() + r.skipped_kinds,
            wormbox_proto::MAX_AUDIT_KINDS
        )));
    }
    let time = |t: i64| (t != 0).then_some(wormbox_model::Timestamp(t));
    Ok(AuditFilter {
        since: time(r.since_unix_micros),
        until: time(r.until_unix_micros),
        bucket: r.bucket,
        key_prefix: r.key_prefix,
        principal: r.principal,
        kinds: AuditFilter::kinds_from_names(&r.kinds).map_err(invalid)?,
        from_sequence: r.from_sequence,
        to_sequence: (r.to_sequence != 0).then_some(r.to_sequence),
    })
}

pub(crate) fn audit_entry(entry: &LedgerEntry, hash: &Digest) -> v1::AuditEntry {
    v1::AuditEntry {
        sequence: entry.sequence,
        time_unix_micros: entry.time.0,
        operation: entry.op.as_str().to_owned(),
        kind: entry.op.kind().as_str().to_owned(),
        principal: entry.principal.clone(),
        bucket: entry.bucket.clone(),
        key: entry.key.clone(),
        version_id: entry.version.map(|v| v.to_string()).unwrap_or_default(),
        sha256: entry.sha256.map(|d| d.0.to_vec()).unwrap_or_default(),
        detail: entry.detail.clone(),
        hash: hash.0.to_vec(),
        format: u32::from(entry.format.code()),
        record_sha256: entry.record_sha256.map(|d| d.0.to_vec()).unwrap_or_default(),
        lock_sha256: entry.lock_sha256.map(|d| d.0.to_vec()).unwrap_or_default(),
    }
}

pub(crate) fn report_row(row: &Row) -> v1::RetentionRow {
    let mode = match row.mode.as_str() {
        "GOVERNANCE" => v1::RetentionMode::Governance,
        "COMPLIANCE" => v1::RetentionMode::Compliance,
        _ => v1::RetentionMode::Unspecified,
    };
    v1::RetentionRow {
        bucket: row.bucket.clone(),
        key: row.key.clone(),
        version_id: row.version_id.clone(),
        is_latest: row.is_latest,
        is_delete_marker: row.is_delete_marker,
        size: row.size,
        created_unix_micros: row.created_unix_micros,
        sha256: hex::decode(&row.sha256).unwrap_or_default(),
        mode: mode as i32,
        retain_until_unix_micros: row.retain_until_unix_micros.unwrap_or(0),
        legal_holds: row.legal_holds.clone(),
        status: row.status.as_str().to_owned(),
        bytes_location: row.bytes_location.clone(),
    }
}

pub(crate) fn report_summary(s: &Summary) -> Result<v1::RetentionSummary, Status> {
    let counts = |m: &BTreeMap<String, u64>| m.iter().map(|(k, v)| (k.clone(), *v)).collect::<Vec<_>>();
    Ok(v1::RetentionSummary {
        totals: s
            .totals
            .iter()
            .map(|t| v1::RetentionTotal {
                bucket: t.bucket.clone(),
                mode: t.mode.clone(),
                versions: t.versions,
                bytes: t.bytes,
            })
            .collect(),
        expiring_30_days: s.expiring_30_days,
        expiring_90_days: s.expiring_90_days,
        expiring_365_days: s.expiring_365_days,
        holds: counts(&s.holds).into_iter().map(|(case_id, versions)| v1::CaseCount { case_id, versions }).collect(),
        delete_markers: s.delete_markers,
        expired: s.expired,
        unprotected: s.unprotected,
        expirations: counts(&s.expirations)
            .into_iter()
            .map(|(month, versions)| v1::MonthCount { month, versions })
            .collect(),
        checkpoint: s.checkpoint.as_ref().map(checkpoint_file_to_wire).transpose()?,
        protected: s.protected,
        held: s.held,
        bytes_protected: s.bytes_protected,
    })
}

pub(crate) fn replica_status_to_wire(s: &wormbox_app::ReplicaStatus) -> v1::ReplicationRuleStatus {
    let mode = match s.mode {
        wormbox_replica::Mode::Async => v1::ReplicationMode::Async,
        wormbox_replica::Mode::Sync => v1::ReplicationMode::Sync,
    };
    v1::ReplicationRuleStatus {
        name: s.name.clone(),
        bucket: s.bucket.clone(),
        prefix: s.prefix.clone(),
        endpoint: s.endpoint.clone(),
        target_bucket: s.target_bucket.clone(),
        mode: mode as i32,
        cursor: s.cursor,
        ledger_head: s.ledger_head,
        lag_entries: s.lag_entries,
        lag_seconds: s.lag.as_secs(),
        versions_copied: s.versions_copied,
        bytes_copied: s.bytes_copied,
        checkpoints_copied: s.checkpoints_copied,
        kept_by_replica: s.kept_by_replica,
        last_error: s.last_error.clone().unwrap_or_default(),
        bytes_last_minute: s.bytes_last_minute,
        versions_last_minute: s.versions_last_minute,
    }
}

pub(crate) fn replica_report_to_wire(r: &wormbox_replica::VerifyReport) -> v1::VerifyReplicaResponse {
    v1::VerifyReplicaResponse {
        ok: r.is_ok(),
        rule: r.rule.clone(),
        cursor: r.cursor,
        versions_checked: r.versions_checked,
        markers_checked: r.markers_checked,
        bytes_read: r.bytes_read,
        checkpoints_checked: r.checkpoints_checked,
        ledger_ranges_checked: r.ledger_ranges_checked,
        divergence: r.divergence.as_ref().map(|d| v1::ReplicaDivergence {
            kind: d.kind.as_str().to_owned(),
            key: d.key.clone(),
            version_id: d.version_id.clone(),
            replica_version_id: d.replica_version_id.clone(),
            what: d.what.clone(),
        }),
    }
}

/// The compliance clock's state on the wire (GetClock, and in GetStatus).
pub(crate) fn clock_to_wire(clock: &wormbox_store::ClockStatus) -> v1::GetClockResponse {
    v1::GetClockResponse {
        system_unix_micros: clock.system.as_micros(),
        compliance_unix_micros: clock.compliance.as_micros(),
        held_back_seconds: clock.held_back.map_or(0, |d| d.as_secs()),
        catch_up_seconds_per_year: clock.catch_up_per_year.as_secs(),
        caught_up_unix_micros: clock.caught_up_at.map_or(0, |t| t.as_micros()),
    }
}

/// `wormbox status`'s figures on the wire.
pub(crate) fn appliance_status_to_wire(s: &wormbox_app::ApplianceStatus, public_key: &[u8]) -> v1::GetStatusResponse {
    let scrub = &s.scrub;
    v1::GetStatusResponse {
        version: s.version.to_owned(),
        uptime_seconds: s.uptime.as_secs(),
        disk: Some(v1::DiskStatus {
            total_bytes: s.disk.space.map_or(0, |d| d.total),
            available_bytes: s.disk.space.map_or(0, |d| d.available),
            reserve_bytes: s.disk.reserve,
            writes_refused: s.disk.refusing,
        }),
        ledger_sequence: s.ledger_sequence,
        last_checkpoint: s.last_checkpoint.as_ref().map(|c| checkpoint_to_wire(c, public_key)),
        clock: s.clock.as_ref().map(clock_to_wire),
        writer_responsive: s.writer_responsive,
        scrub: Some(v1::ScrubStatus {
            interval_seconds: s.scrub_interval.as_secs(),
            running_since_unix_micros: scrub.running_since.map_or(0, |t| t.as_micros()),
            bytes_read: scrub.bytes_read,
            finished: scrub.finished,
            failed: scrub.failed,
            errors: scrub.errors,
            last: scrub.last.as_ref().map(|l| v1::ScrubResult {
                finished_unix_micros: l.finished_at.as_micros(),
                ok: l.ok,
                summary: l.summary.clone(),
                versions_checked: l.versions_checked,
                divergences: l.divergences,
                ledger_sequence: l.ledger_sequence,
            }),
        }),
        replication: s.replication.iter().map(replica_status_to_wire).collect(),
        devices_locked_out: s.devices_locked_out,
        lockouts: s.lockouts,
    }
}

/// What the archive recorded of a witness, as GetCheckpoint sends it.
pub(crate) fn witness_to_wire(w: wormbox_store::WitnessState) -> v1::WitnessStatus {
    let (cosigned_sequence, cosigned_timestamp) = w.cosigned.unwrap_or_default();
    let mut out = v1::WitnessStatus { name: w.name, cosigned_sequence, cosigned_timestamp, ..Default::default() };
    if let Some(refusal) = w.refusal {
        (out.refused_sequence, out.refused_status, out.refused_why) =
            (refusal.sequence, u32::from(refusal.status), refusal.why);
    }
    if let Some(fork) = w.fork {
        out.fork = true;
        (out.fork_sequence, out.fork_status, out.fork_why) = (fork.sequence, u32::from(fork.status), fork.why);
    }
    out
}
