//! The retention report (S3 Inventory is the model): one row per version and
//! delete marker, a summary, and its renderings.
//!
//! Invariant: a row's status is judged with the same `Retention::protects_at`
//! and hold list that enforcement uses, at the compliance-clock time stated
//! in the header; the report states the checkpoints it was computed between.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wormbox_model::{BucketName, ObjectKey, Timestamp};
use wormbox_store::{ListVersionsParams, Store, StoreError, VersionInfo};

use crate::checkpoint::CheckpointFile;
use crate::{ReportError, csv};

// The page is part of this report (its only user), so it is a child module
// and not a sibling the report and the page would both import.
mod html;

const DAY_MICROS: i64 = 86_400_000_000;

/// What protects a version now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Retention in force (holds may apply too).
    Protected,
    /// A legal hold, and no retention in force.
    Held,
    /// Retention has passed and no hold applies: may be purged.
    Expired,
    /// Never had retention, and no hold: may be purged.
    Unprotected,
    /// A delete marker.
    Marker,
}

impl Status {
    /// The stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Protected => "protected",
            Status::Held => "held",
            Status::Expired => "expired",
            Status::Unprotected => "unprotected",
            Status::Marker => "marker",
        }
    }

    /// The status with this name.
    pub fn from_name(name: &str) -> Option<Status> {
        [Status::Protected, Status::Held, Status::Expired, Status::Unprotected, Status::Marker]
            .into_iter()
            .find(|s| s.as_str() == name)
    }

    /// Judges a version at `now`, as enforcement does.
    pub fn of(info: &VersionInfo, now: Timestamp) -> Status {
        if info.is_delete_marker {
            Status::Marker
        } else if info.retention.is_some_and(|r| r.protects_at(now)) {
            Status::Protected
        } else if !info.legal_holds.is_empty() {
            Status::Held
        } else if info.retention.is_some() {
            Status::Expired
        } else {
            Status::Unprotected
        }
    }
}

/// One version or delete marker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// The bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
    /// The version id clients use (`null` or 26 characters).
    pub version_id: String,
    /// Whether it is the key's newest.
    pub is_latest: bool,
    /// Whether it is a delete marker.
    pub is_delete_marker: bool,
    /// Size in bytes.
    pub size: u64,
    /// When it was written, by the compliance clock (µs since the epoch).
    pub created_unix_micros: i64,
    /// SHA-256 of the bytes in hex (empty for markers).
    pub sha256: String,
    /// `GOVERNANCE`, `COMPLIANCE`, or empty.
    pub mode: String,
    /// When retention ends (µs since the epoch), if there is retention.
    pub retain_until_unix_micros: Option<i64>,
    /// Case ids of the legal holds in place.
    pub legal_holds: Vec<String>,
    /// What protects it now.
    pub status: Status,
    /// Where its bytes live: `local`, or `replica:<rule>` once the capacity
    /// tier released them locally; empty for a delete marker.
    #[serde(default)]
    pub bytes_location: String,
}

/// `Row::bytes_location` of bytes kept locally.
pub const LOCAL: &str = "local";

impl Row {
    /// The row of a version, judged at `now`.
    pub fn of(bucket: &str, info: &VersionInfo, now: Timestamp) -> Row {
        Row {
            bucket: bucket.to_owned(),
            key: info.key.clone(),
            version_id: info.version_id.clone(),
            is_latest: info.is_latest,
            is_delete_marker: info.is_delete_marker,
            size: info.size,
            created_unix_micros: info.created_at.0,
            sha256: if info.is_delete_marker { String::new() } else { info.sha256.to_hex() },
            mode: info.retention.map(|r| r.mode.as_str().to_owned()).unwrap_or_default(),
            retain_until_unix_micros: info.retention.map(|r| r.until.0),
            legal_holds: info.legal_holds.iter().map(|h| h.case_id.clone()).collect(),
            status: Status::of(info, now),
            bytes_location: if info.is_delete_marker { String::new() } else { LOCAL.to_owned() },
        }
    }
}

/// What a report was computed at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportHeader {
    /// The bucket, or empty for all.
    pub bucket: String,
    /// The key prefix, or empty.
    pub prefix: String,
    /// The compliance-clock time statuses are judged at.
    pub now_unix_micros: i64,
    /// Rows in the report.
    pub total_rows: u64,
    /// The checkpoint signed before the first row was read.
    pub checkpoint: CheckpointFile,
    /// The appliance's public key, hex.
    pub public_key: String,
}

/// Versions and bytes of one bucket under one mode.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Total {
    /// The bucket.
    pub bucket: String,
    /// `governance`, `compliance` or `none` (the proto's words; rows keep
    /// S3 Inventory's upper-case `GOVERNANCE`/`COMPLIANCE`).
    pub mode: String,
    /// Versions (markers excluded).
    pub versions: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// The report's summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Per bucket and mode.
    pub totals: Vec<Total>,
    /// Versions whose retention is in force (holds may apply too).
    #[serde(default)]
    pub protected: u64,
    /// Versions a legal hold keeps, with no retention in force.
    #[serde(default)]
    pub held: u64,
    /// Bytes of the versions under retention or hold.
    #[serde(default)]
    pub bytes_protected: u64,
    /// Versions whose retention ends within 30 days of `now`.
    pub expiring_30_days: u64,
    /// ... within 90 days.
    pub expiring_90_days: u64,
    /// ... within 365 days.
    pub expiring_365_days: u64,
    /// Versions held, per case id.
    pub holds: BTreeMap<String, u64>,
    /// Delete markers.
    pub delete_markers: u64,
    /// Versions whose retention has passed and that no hold keeps: purgeable.
    pub expired: u64,
    /// Versions that never had retention and no hold: purgeable.
    pub unprotected: u64,
    /// Versions whose retention ends in each month (`YYYY-MM`), from `now` on.
    pub expirations: BTreeMap<String, u64>,
    /// The checkpoint signed after the last row was read.
    pub checkpoint: Option<CheckpointFile>,
}

/// Builds a `Summary` row by row.
#[derive(Debug)]
pub struct SummaryBuilder {
    now: Timestamp,
    totals: BTreeMap<(String, String), (u64, u64)>,
    summary: Summary,
}

impl SummaryBuilder {
    /// Starts a summary judged at `now`.
    pub fn new(now: Timestamp) -> SummaryBuilder {
        SummaryBuilder { now, totals: BTreeMap::new(), summary: Summary::default() }
    }

    /// Counts one row.
    pub fn add(&mut self, row: &Row) {
        let s = &mut self.summary;
        if row.is_delete_marker {
            s.delete_markers += 1;
            return;
        }
        let mode = if row.mode.is_empty() { "none".to_owned() } else { row.mode.to_ascii_lowercase() };
        let total = self.totals.entry((row.bucket.clone(), mode)).or_default();
        total.0 += 1;
        total.1 += row.size;
        for case in &row.legal_holds {
            *s.holds.entry(case.clone()).or_default() += 1;
        }
        match row.status {
            Status::Protected => s.protected += 1,
            Status::Held => s.held += 1,
            Status::Expired => s.expired += 1,
            Status::Unprotected => s.unprotected += 1,
            Status::Marker => {}
        }
        if matches!(row.status, Status::Protected | Status::Held) {
            s.bytes_protected += row.size;
        }
        if let Some(until) = row.retain_until_unix_micros.filter(|u| *u > self.now.0) {
            let left = until - self.now.0;
            s.expiring_30_days += u64::from(left <= 30 * DAY_MICROS);
            s.expiring_90_days += u64::from(left <= 90 * DAY_MICROS);
            s.expiring_365_days += u64::from(left <= 365 * DAY_MICROS);
            let month = Timestamp(until).to_rfc3339()[..7].to_owned();
            *s.expirations.entry(month).or_default() += 1;
        }
    }

    /// The summary, with the checkpoint signed after the last row.
    pub fn finish(mut self, checkpoint: Option<CheckpointFile>) -> Summary {
        self.summary.totals = self
            .totals
            .into_iter()
            .map(|((bucket, mode), (versions, bytes))| Total { bucket, mode, versions, bytes })
            .collect();
        self.summary.checkpoint = checkpoint;
        self.summary
    }
}

/// The buckets a report covers, by name.
pub fn buckets(store: &Store, bucket: &str) -> Result<Vec<BucketName>, ReportError> {
    if bucket.is_empty() {
        return Ok(store.buckets()?.into_iter().map(|b| b.name).collect());
    }
    let name =
        BucketName::new(bucket).map_err(|e| wormbox_store::StoreError::InvalidArgument(format!("bucket name: {e}")))?;
    store.bucket(&name)?;
    Ok(vec![name])
}

/// Calls `each` with every row of `buckets` under `prefix`, in listing order,
/// reading from the store page by page (memory does not grow with the archive).
pub fn for_each_row(
    store: &Store,
    buckets: &[BucketName],
    prefix: &str,
    now: Timestamp,
    mut each: impl FnMut(Row) -> bool,
) -> Result<(), ReportError> {
    for bucket in buckets {
        let mut params = ListVersionsParams { prefix: prefix.to_owned(), ..ListVersionsParams::default() };
        loop {
            let page = store.list_versions(bucket, &params)?;
            for info in &page.entries {
                let mut row = Row::of(bucket.as_str(), info, now);
                if !info.is_delete_marker {
                    let key = ObjectKey::new(&info.key).map_err(|_| StoreError::DataLoss {
                        what: format!("a listed key of bucket `{bucket}` is not a valid key"),
                    })?;
                    if let Some(at) = store.bytes_at(bucket, &key, info.id)? {
                        row.bytes_location = format!("replica:{}", at.rule);
                    }
                }
                if !each(row) {
                    return Ok(());
                }
            }
            if !page.is_truncated {
                break;
            }
            params.key_marker = page.next_key_marker;
            params.version_id_marker = page.next_version_id_marker;
        }
    }
    Ok(())
}

/// The CSV header row.
pub const CSV_COLUMNS: [&str; 16] = [
    "bucket",
    "key",
    "version_id",
    "is_latest",
    "is_delete_marker",
    "size",
    "created",
    "sha256",
    "retention_mode",
    "retain_until",
    "legal_holds",
    "status",
    "checkpoint_sequence",
    "checkpoint_head",
    "checkpoint_signature",
    "bytes_location",
];

fn time_text(micros: i64) -> String {
    Timestamp(micros).to_rfc3339()
}

/// The report as CSV (RFC 4180, nothing but records): a row per version
/// after the header. The checkpoint read before the first row (sequence,
/// head, signature) repeats on every row, so any extract still names what it
/// came from; the summary and the closing checkpoint are in the JSON form.
pub fn to_csv(header: &ReportHeader, rows: &[Row]) -> String {
    let mut out = String::new();
    csv::record(&mut out, &CSV_COLUMNS);
    let seq = header.checkpoint.sequence.to_string();
    for row in rows {
        csv::record(
            &mut out,
            &[
                row.bucket.clone(),
                row.key.clone(),
                row.version_id.clone(),
                row.is_latest.to_string(),
                row.is_delete_marker.to_string(),
                row.size.to_string(),
                time_text(row.created_unix_micros),
                row.sha256.clone(),
                row.mode.clone(),
                row.retain_until_unix_micros.map(time_text).unwrap_or_default(),
                row.legal_holds.join(";"),
                row.status.as_str().to_owned(),
                seq.clone(),
                header.checkpoint.head.clone(),
                header.checkpoint.signature.clone(),
                row.bytes_location.clone(),
            ],
        );
    }
    out
}

/// The report as one JSON document: header, rows, summary.
pub fn to_json(header: &ReportHeader, rows: &[Row], summary: &Summary) -> String {
    let doc = serde_json::json!({
        "format": "wormbox-retention-report-v1",
        "header": header,
        "now": time_text(header.now_unix_micros),
        "rows": rows,
        "summary": summary,
    });
    let mut text = serde_json::to_string_pretty(&doc).expect("report values serialise");
    text.push('\n');
    text
}

/// The report as a self-contained HTML page (no external assets).
pub fn to_html(header: &ReportHeader, rows: &[Row], summary: &Summary) -> String {
    html::retention_page(header, rows, summary)
}

/// Names the checkpoints a report was computed between.
pub fn checkpoint_span(header: &ReportHeader, summary: &Summary) -> String {
    match &summary.checkpoint {
        Some(after) if after.sequence != header.checkpoint.sequence => format!(
            "checkpoints {} (before) and {} (after; the ledger moved while the report was read)",
            header.checkpoint.describe(),
            after.describe()
        ),
        _ => format!("checkpoint {}", header.checkpoint.describe()),
    }
}
