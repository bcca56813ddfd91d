//! The audit trail: which ledger entries an auditor asked for, and the
//! entries as records in CSV and JSON lines.
//!
//! Invariant: an `AuditRecord` carries every field the chain hashes, so a
//! list of records from 1 to n can be rehashed without the appliance and
//! compared with a signed checkpoint (`chain`).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use wormbox_model::{Digest, Timestamp, VersionId};
use wormbox_store::ledger::{AuditKind, ChainBreak, ChainWalker, EntryFormat, LedgerEntry, LedgerOp};

use crate::csv;

/// Which entries an audit asks for; empty fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Entries at or after this compliance-clock time.
    pub since: Option<Timestamp>,
    /// Entries at or before this time.
    pub until: Option<Timestamp>,
    /// Only this bucket.
    pub bucket: String,
    /// Only keys starting with this.
    pub key_prefix: String,
    /// Only this principal's entries.
    pub principal: String,
    /// Only these kinds.
    pub kinds: HashSet<AuditKind>,
    /// Entries from this sequence on.
    pub from_sequence: u64,
    /// Entries up to this sequence.
    pub to_sequence: Option<u64>,
}

impl AuditFilter {
    /// Parses kind names, naming the first unknown one.
    pub fn kinds_from_names<S: AsRef<str>>(names: &[S]) -> Result<HashSet<AuditKind>, String> {
        names
            .iter()
            .map(|n| {
                AuditKind::from_name(n.as_ref()).ok_or_else(|| {
                    let known: Vec<&str> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
                    format!("unknown audit kind `{}`; known: {}", n.as_ref(), known.join(", "))
                })
            })
            .collect()
    }

    /// Whether `entry` is asked for.
    pub fn matches(&self, entry: &LedgerEntry) -> bool {
        self.since.is_none_or(|t| entry.time >= t)
            && self.until.is_none_or(|t| entry.time <= t)
            && (self.bucket.is_empty() || entry.bucket == self.bucket)
            && entry.key.starts_with(&self.key_prefix)
            && (self.principal.is_empty() || entry.principal == self.principal)
            && (self.kinds.is_empty() || self.kinds.contains(&entry.op.kind()))
            && entry.sequence >= self.from_sequence
            && self.to_sequence.is_none_or(|n| entry.sequence <= n)
    }

    /// Whether no entry after `sequence` can match (the stream may end).
    pub fn is_past(&self, sequence: u64) -> bool {
        self.to_sequence.is_some_and(|n| sequence > n)
    }
}

/// A ledger entry as an auditor reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Position in the chain.
    pub sequence: u64,
    /// Compliance-clock time, µs since the epoch.
    pub time_unix_micros: i64,
    /// The same in RFC 3339 (informative).
    pub time: String,
    /// The operation's stable name.
    pub operation: String,
    /// Its audit kind (informative).
    pub kind: String,
    /// Who.
    pub principal: String,
    /// The bucket, or empty.
    pub bucket: String,
    /// The object key (or principal or device), or empty.
    pub key: String,
    /// The internal version id, or empty.
    pub version_id: String,
    /// The version's SHA-256 in hex, or empty.
    pub sha256: String,
    /// What happened (free text; never read as evidence).
    pub detail: String,
    /// The chain hash after this entry, hex.
    pub hash: String,
    /// The entry's stored format (1: attestations were text at the end of
    /// `detail`; 2: they are the fields below). Records exported before the
    /// field existed are format 1.
    #[serde(default = "format1")]
    pub format: u8,
    /// The SHA-256 of the version record the entry wrote, hex, or empty.
    #[serde(default)]
    pub record_sha256: String,
    /// The SHA-256 of the lock record (retention, holds) the entry wrote, hex, or empty.
    #[serde(default)]
    pub lock_sha256: String,
}

fn format1() -> u8 {
    EntryFormat::V1.code()
}

impl AuditRecord {
    /// The record of a stored entry and its chain hash.
    pub fn new(entry: &LedgerEntry, hash: &Digest) -> AuditRecord {
        AuditRecord {
            sequence: entry.sequence,
            time_unix_micros: entry.time.0,
            time: entry.time.to_rfc3339(),
            operation: entry.op.as_str().to_owned(),
            kind: entry.op.kind().as_str().to_owned(),
            principal: entry.principal.clone(),
            bucket: entry.bucket.clone(),
            key: entry.key.clone(),
            version_id: entry.version.map(|v| v.to_string()).unwrap_or_default(),
            sha256: entry.sha256.map(|d| d.to_hex()).unwrap_or_default(),
            detail: entry.detail.clone(),
            hash: hash.to_hex(),
            format: entry.format.code(),
            record_sha256: entry.record_sha256.map(|d| d.to_hex()).unwrap_or_default(),
            lock_sha256: entry.lock_sha256.map(|d| d.to_hex()).unwrap_or_default(),
        }
    }

    /// The ledger entry and its claimed hash, or why the fields do not decode.
    pub fn entry(&self) -> Result<(LedgerEntry, Digest), String> {
        let op = LedgerOp::from_name(&self.operation)
            .ok_or_else(|| format!("entry {}: unknown operation `{}`", self.sequence, self.operation))?;
        let digest = |text: &str, what: &str| {
            hex::decode(text)
                .ok()
                .and_then(|b| Digest::from_slice(&b))
                .ok_or_else(|| format!("entry {}: {what} is not 64 hex digits", self.sequence))
        };
        let version = match self.version_id.as_str() {
            "" => None,
            text => Some(VersionId::parse(text).map_err(|e| format!("entry {}: {e}", self.sequence))?),
        };
        let optional = |text: &str, what: &str| match text {
            "" => Ok(None),
            text => digest(text, what).map(Some),
        };
        let format = EntryFormat::from_code(self.format)
            .ok_or_else(|| format!("entry {}: unknown entry format {}", self.sequence, self.format))?;
        let record_sha256 = optional(&self.record_sha256, "record_sha256")?;
        let lock_sha256 = optional(&self.lock_sha256, "lock_sha256")?;
        if format == EntryFormat::V1 && (record_sha256.is_some() || lock_sha256.is_some()) {
            return Err(format!("entry {}: a format-1 entry has no typed attestations", self.sequence));
        }
        let entry = LedgerEntry {
            format,
            sequence: self.sequence,
            time: Timestamp(self.time_unix_micros),
            op,
            principal: self.principal.clone(),
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            version,
            sha256: optional(&self.sha256, "sha256")?,
            record_sha256,
            lock_sha256,
            detail: self.detail.clone(),
        };
        Ok((entry, digest(&self.hash, "hash")?))
    }
}

/// Rehashes records that start at entry 1 and follow each other; returns the
/// last hash, or the first record that does not chain.
pub fn chain(records: &[AuditRecord]) -> Result<(u64, Digest), String> {
    let mut walker = ChainWalker::new();
    for record in records {
        let (entry, claimed) = record.entry()?;
        walker.follow(walker.expected(), &entry, &claimed).map_err(|broken| match broken {
            ChainBreak::Missing { expected, found } => format!("entry {expected} is missing (found {found})"),
            ChainBreak::Altered { sequence } => format!("entry {sequence} does not hash to its chain hash: altered"),
        })?;
    }
    Ok(walker.walked())
}

/// The CSV header of audit records (the columns after `hash` were added
/// with ledger entry format 2, last so that older readers keep their places).
pub const CSV_COLUMNS: [&str; 15] = [
    "sequence",
    "time",
    "time_unix_micros",
    "operation",
    "kind",
    "principal",
    "bucket",
    "key",
    "version_id",
    "sha256",
    "detail",
    "hash",
    "format",
    "record_sha256",
    "lock_sha256",
];

/// Appends the CSV header.
pub fn csv_header(out: &mut String) {
    csv::record(out, &CSV_COLUMNS);
}

/// Appends one record as CSV.
pub fn csv_record(out: &mut String, r: &AuditRecord) {
    csv::record(
        out,
        &[
            r.sequence.to_string(),
            r.time.clone(),
            r.time_unix_micros.to_string(),
            r.operation.clone(),
            r.kind.clone(),
            r.principal.clone(),
            r.bucket.clone(),
            r.key.clone(),
            r.version_id.clone(),
            r.sha256.clone(),
            r.detail.clone(),
            r.hash.clone(),
            r.format.to_string(),
            r.record_sha256.clone(),
            r.lock_sha256.clone(),
        ],
    );
}

/// One record as a JSON line.
pub fn json_line(r: &AuditRecord) -> String {
    serde_json::to_string(r).expect("audit records serialise")
}

#[cfg(test)]
mod tests {
    use wormbox_store::ledger::GENESIS;

    use super::*;

    fn entry(sequence: u64, op: LedgerOp, bucket: &str, key: &str, principal: &str) -> LedgerEntry {
        LedgerEntry {
            format: EntryFormat::CURRENT,
            sequence,
            time: Timestamp(sequence as i64 * 1_000_000),
            op,
            principal: principal.to_owned(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version: Some(VersionId::from_parts(sequence, 0)),
            sha256: Some(Digest([sequence as u8; 32])),
            record_sha256: (op == LedgerOp::VersionWritten).then_some(Digest([0x40 + sequence as u8; 32])),
            lock_sha256: (op == LedgerOp::RetentionChanged).then_some(Digest([0x80 + sequence as u8; 32])),
            detail: format!("detail, with \"quotes\" {sequence}"),
        }
    }

    fn records() -> Vec<AuditRecord> {
        let mut head = GENESIS;
        let entries = [
            entry(1, LedgerOp::BucketCreated, "b", "", "A"),
            entry(2, LedgerOp::VersionWritten, "b", "logs/1", "A"),
            entry(3, LedgerOp::RetentionChanged, "b", "logs/1", "B"),
            entry(4, LedgerOp::Refused, "c", "x", "B"),
        ];
        entries
            .iter()
            .map(|e| {
                head = e.chain_hash(&head);
                AuditRecord::new(e, &head)
            })
            .collect()
    }

    #[test]
    fn filters_combine() {
        let all: Vec<LedgerEntry> = records().iter().map(|r| r.entry().unwrap().0).collect();
        let pick = |f: &AuditFilter| all.iter().filter(|e| f.matches(e)).map(|e| e.sequence).collect::<Vec<_>>();
        assert_eq!(pick(&AuditFilter::default()), [1, 2, 3, 4]);
        assert_eq!(pick(&AuditFilter { bucket: "b".into(), key_prefix: "logs/".into(), ..Default::default() }), [2, 3]);
        assert_eq!(pick(&AuditFilter { principal: "B".into(), ..Default::default() }), [3, 4]);
        let kinds = AuditFilter::kinds_from_names(&["retention", "refused"]).unwrap();
        assert_eq!(pick(&AuditFilter { kinds, ..Default::default() }), [3, 4]);
        let window =
            AuditFilter { since: Some(Timestamp(2_000_000)), until: Some(Timestamp(3_000_000)), ..Default::default() };
        assert_eq!(pick(&window), [2, 3]);
        assert_eq!(pick(&AuditFilter { from_sequence: 2, to_sequence: Some(3), ..Default::default() }), [2, 3]);
        assert!(AuditFilter::kinds_from_names(&["writes", "nope"]).unwrap_err().contains("`nope`"));
    }

    #[test]
    fn records_round_trip_through_json_and_rehash() {
        let records = records();
        let lines: Vec<String> = records.iter().map(json_line).collect();
        let back: Vec<AuditRecord> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(back, records);
        let (n, head) = chain(&back).unwrap();
        assert_eq!((n, head.to_hex()), (4, records[3].hash.clone()));
        let mut altered = back.clone();
        altered[1].detail.push('!');
        assert!(chain(&altered).unwrap_err().contains("entry 2"));
        let mut altered = back.clone();
        altered[2].lock_sha256 = "00".repeat(32);
        assert!(chain(&altered).unwrap_err().contains("entry 3"));
        let mut gap = back;
        gap.remove(2);
        assert!(chain(&gap).unwrap_err().contains("entry 3 is missing"));
    }

    #[test]
    fn csv_has_a_row_per_record_and_quotes_details() {
        let mut out = String::new();
        csv_header(&mut out);
        for r in &records() {
            csv_record(&mut out, r);
        }
        let parsed = csv::parse(&out).unwrap();
        assert_eq!(parsed.len(), 5);
        assert_eq!(parsed[0], CSV_COLUMNS);
        assert_eq!(parsed[2][10], "detail, with \"quotes\" 2");
        // The lock digest a retention change attests has its own column.
        assert_eq!((parsed[3][12].as_str(), parsed[3][14].as_str()), ("2", "83".repeat(32).as_str()));
    }

    #[test]
    fn format1_records_exported_before_typed_attestations_still_rehash() {
        let old = LedgerEntry {
            format: EntryFormat::V1,
            record_sha256: None,
            lock_sha256: None,
            detail: format!("case SEC; lock-sha256 {}", "ab".repeat(32)),
            ..entry(1, LedgerOp::HoldPlaced, "b", "k", "A")
        };
        let hash = old.chain_hash(&GENESIS);
        let mut line: serde_json::Value = serde_json::from_str(&json_line(&AuditRecord::new(&old, &hash))).unwrap();
        // What an export written before format 2 holds: none of the new fields.
        for field in ["format", "record_sha256", "lock_sha256"] {
            line.as_object_mut().unwrap().remove(field);
        }
        let record: AuditRecord = serde_json::from_value(line).unwrap();
        assert_eq!(record.format, 1);
        assert_eq!(chain(std::slice::from_ref(&record)).unwrap(), (1, hash));
        // A format-1 entry cannot be given typed attestations after the fact.
        let mut dressed = record;
        dressed.lock_sha256 = "ab".repeat(32);
        assert!(dressed.entry().unwrap_err().contains("format-1"));
    }
}
