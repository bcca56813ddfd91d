//! A regulator's download: the export directory's layout, its manifest, and
//! its verification from the files alone.
//!
//! ```text
//! DIR/manifest.json     format, bucket, prefix, one entry per version
//! DIR/manifest.csv      the same entries as CSV
//! DIR/objects/NNNNNNNN  each version's bytes, named by its manifest position
//! DIR/ledger.jsonl      every ledger entry from 1 to the checkpoint (AuditRecord)
//! DIR/audit.csv         the entries about the exported keys, for reading
//! DIR/checkpoint.json   the signed checkpoint the export is bound to
//! DIR/public-key.hex    the appliance's Ed25519 public key
//! DIR/.export-state.json present only while the export is incomplete
//! ```
//!
//! Invariant: `verify` trusts nothing in the directory but the public key
//! (which the caller may supply independently): the checkpoint's signature
//! anchors the ledger, the ledger attests each version's SHA-256, and each
//! file is rehashed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wormbox_model::{Digest, Timestamp};
use wormbox_store::ledger::LedgerOp;

use crate::audit::{AuditRecord, chain};
use crate::checkpoint::{CheckpointFile, parse_public_key};
use crate::{ReportError, csv};

/// The manifest's format tag.
pub const FORMAT: &str = "wormbox-export-v1";
/// File names in the export directory.
pub const MANIFEST_JSON: &str = "manifest.json";
/// See the module docs.
pub const MANIFEST_CSV: &str = "manifest.csv";
/// See the module docs.
pub const OBJECTS: &str = "objects";
/// See the module docs.
pub const LEDGER: &str = "ledger.jsonl";
/// See the module docs.
pub const AUDIT_CSV: &str = "audit.csv";
/// See the module docs.
pub const CHECKPOINT: &str = "checkpoint.json";
/// See the module docs.
pub const PUBLIC_KEY: &str = "public-key.hex";
/// See the module docs.
pub const STATE: &str = ".export-state.json";

/// One exported version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// The file under `objects/`.
    pub file: String,
    /// The object key.
    pub key: String,
    /// The version id clients use.
    pub version_id: String,
    /// Whether it was the key's newest when listed.
    pub is_latest: bool,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was written (compliance clock), µs since the epoch.
    pub created_unix_micros: i64,
    /// `GOVERNANCE`, `COMPLIANCE` or empty.
    pub retention_mode: String,
    /// When retention ends, µs since the epoch, if any.
    pub retain_until_unix_micros: Option<i64>,
    /// Case ids of legal holds.
    pub legal_holds: Vec<String>,
}

/// The manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `FORMAT`.
    pub format: String,
    /// The bucket exported.
    pub bucket: String,
    /// The key prefix, or empty.
    pub prefix: String,
    /// The versions, in listing order.
    pub entries: Vec<ManifestEntry>,
}

impl Manifest {
    /// The manifest as CSV.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        csv::record(
            &mut out,
            &[
                "bucket",
                "file",
                "key",
                "version_id",
                "is_latest",
                "sha256",
                "size",
                "created",
                "retention_mode",
                "retain_until",
                "legal_holds",
            ],
        );
        for e in &self.entries {
            csv::record(
                &mut out,
                &[
                    self.bucket.clone(),
                    e.file.clone(),
                    e.key.clone(),
                    e.version_id.clone(),
                    e.is_latest.to_string(),
                    e.sha256.clone(),
                    e.size.to_string(),
                    Timestamp(e.created_unix_micros).to_rfc3339(),
                    e.retention_mode.clone(),
                    e.retain_until_unix_micros.map(|t| Timestamp(t).to_rfc3339()).unwrap_or_default(),
                    e.legal_holds.join(";"),
                ],
            );
        }
        out
    }

    /// The manifest as pretty JSON.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("manifests serialise");
        text.push('\n');
        text
    }
}

/// The file name of the `index`th version.
pub fn object_file(index: usize) -> String {
    format!("{OBJECTS}/{index:08}")
}

/// What `verify` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportCheck {
    /// The checkpoint the export is bound to.
    pub checkpoint: Option<CheckpointFile>,
    /// Ledger entries rehashed.
    pub ledger_entries: u64,
    /// Versions whose bytes were rehashed.
    pub versions: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Everything that is not as it should be; empty when the export verifies.
    pub problems: Vec<String>,
}

impl ExportCheck {
    /// Whether the export verifies.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn read_text(path: &Path) -> Result<String, ReportError> {
    std::fs::read_to_string(path).map_err(|source| ReportError::Io { what: "reading", path: path.to_owned(), source })
}

/// Verifies an export directory from its files alone; `public_key`, when
/// given, is used instead of the directory's copy (and must match it).
pub fn verify(dir: &Path, public_key: Option<&[u8]>) -> Result<ExportCheck, ReportError> {
    verify_with_progress(dir, public_key, &mut |_, _| {})
}

/// `verify`, calling `progress` with the version bytes re-hashed so far and
/// the manifest's total after each version file.
pub fn verify_with_progress(
    dir: &Path,
    public_key: Option<&[u8]>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ExportCheck, ReportError> {
    let mut check = ExportCheck::default();
    let malformed = |name: &str, why: String| ReportError::Malformed { path: dir.join(name), why };
    if dir.join(STATE).exists() {
        check.problems.push("the export is incomplete: run the export again to resume it".to_owned());
    }
    let stored_key = parse_public_key(&read_text(&dir.join(PUBLIC_KEY))?).map_err(|e| malformed(PUBLIC_KEY, e))?;
    let key = match public_key {
        Some(key) if key != stored_key => {
            check.problems.push(format!("{PUBLIC_KEY} is not the public key given to verify with"));
            key.to_vec()
        }
        Some(key) => key.to_vec(),
        None => stored_key,
    };
    let file: CheckpointFile =
        serde_json::from_str(&read_text(&dir.join(CHECKPOINT))?).map_err(|e| malformed(CHECKPOINT, e.to_string()))?;
    let checkpoint = file.checkpoint().map_err(|e| malformed(CHECKPOINT, e))?;
    if !checkpoint.verify(&key) {
        check.problems.push(format!("{CHECKPOINT}: the signature does not verify with the public key"));
    }
    check.checkpoint = Some(file);

    let mut records = Vec::new();
    for (n, line) in read_text(&dir.join(LEDGER))?.lines().enumerate() {
        let record: AuditRecord =
            serde_json::from_str(line).map_err(|e| malformed(LEDGER, format!("line {}: {e}", n + 1)))?;
        records.push(record);
    }
    match chain(&records) {
        Ok((n, head)) => {
            check.ledger_entries = n;
            if n != checkpoint.sequence || head != checkpoint.head {
                check.problems.push(format!(
                    "{LEDGER} ends at entry {n} with head {}, the checkpoint says entry {} with head {}",
                    head.to_hex(),
                    checkpoint.sequence,
                    checkpoint.head.to_hex()
                ));
            }
        }
        Err(why) => check.problems.push(format!("{LEDGER}: {why}")),
    }

    let manifest: Manifest = serde_json::from_str(&read_text(&dir.join(MANIFEST_JSON))?)
        .map_err(|e| malformed(MANIFEST_JSON, e.to_string()))?;
    if manifest.format != FORMAT {
        return Err(malformed(MANIFEST_JSON, format!("format `{}` is not {FORMAT}", manifest.format)));
    }
    if read_text(&dir.join(MANIFEST_CSV))? != manifest.to_csv() {
        check.problems.push(format!("{MANIFEST_CSV} does not state the same entries as {MANIFEST_JSON}"));
    }
    check_versions(dir, &manifest, &records, &mut check, progress)?;
    Ok(check)
}

fn check_versions(
    dir: &Path,
    manifest: &Manifest,
    records: &[AuditRecord],
    check: &mut ExportCheck,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), ReportError> {
    let total: u64 = manifest.entries.iter().map(|e| e.size).sum();
    let mut read = 0u64;
    // What the ledger says was written, by (key, version, sha256).
    let mut written: HashMap<(String, String), Vec<(String, String)>> = HashMap::new();
    for r in records.iter().filter(|r| r.bucket == manifest.bucket) {
        if r.operation == LedgerOp::VersionWritten.as_str() {
            written.entry((r.key.clone(), r.sha256.clone())).or_default().push((r.version_id.clone(), r.time.clone()));
        }
    }
    let mut files = HashSet::new();
    for entry in &manifest.entries {
        let name = format!("{} {}", entry.key, entry.version_id);
        files.insert(PathBuf::from(&entry.file));
        if !entry.file.starts_with(&format!("{OBJECTS}/")) || entry.file.contains("..") {
            check.problems.push(format!("{name}: file `{}` is outside {OBJECTS}/", entry.file));
            continue;
        }
        let attested = written
            .get(&(entry.key.clone(), entry.sha256.clone()))
            .is_some_and(|ids| entry.version_id == "null" || ids.iter().any(|(id, _)| *id == entry.version_id));
        if !attested {
            check.problems.push(format!("{name}: no ledger entry wrote this version with SHA-256 {}", entry.sha256));
        }
        let path = dir.join(&entry.file);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                check.problems.push(format!("{name}: cannot read {}: {e}", entry.file));
                continue;
            }
        };
        let digest = Digest::from_slice(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref())
            .expect("SHA-256 yields 32 bytes");
        if digest.to_hex() != entry.sha256 || bytes.len() as u64 != entry.size {
            check.problems.push(format!(
                "{name}: {} ({} bytes) hashes to {}, the manifest says {} ({} bytes)",
                entry.file,
                bytes.len(),
                digest.to_hex(),
                entry.sha256,
                entry.size
            ));
        }
        check.versions += 1;
        check.bytes += bytes.len() as u64;
        read += bytes.len() as u64;
        progress(read, total);
    }
    let objects = dir.join(OBJECTS);
    if let Ok(listing) = std::fs::read_dir(&objects) {
        for item in listing.flatten() {
            let relative = PathBuf::from(OBJECTS).join(item.file_name());
            if !files.contains(&relative) {
                check.problems.push(format!("{} is not in the manifest", relative.display()));
            }
        }
    }
    Ok(())
}
