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
//! DIR/proofs/NNNNNNNN.json  each version's inclusion proof (`wormbox
//!                       verify-proof`) against checkpoint.json
//! DIR/tlog/checkpoint   the checkpoint as a C2SP signed note
//! DIR/tlog/tile/...     the ledger's tree and entries up to it, C2SP
//!                       tlog-tiles, as a static tlog-tiles server serves them
//! DIR/.export-state.json present only while the export is incomplete
//! ```
//!
//! Exports of format v1 (before the Merkle tree) have no `proofs/` or
//! `tlog/` and still verify.
//!
//! Invariant: `verify` trusts nothing in the directory but the public key
//! (which the caller may supply independently): the checkpoint's signature
//! anchors the ledger (its chain head and its Merkle root), the ledger and
//! each version's own proof attest its SHA-256, each file is rehashed, and
//! every tile is recomputed from the entries up to the signed root.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wormbox_model::{Digest, Timestamp};
use wormbox_store::evidence::Checkpoint;
use wormbox_store::ledger::LedgerOp;
use wormbox_store::note;
use wormbox_store::tiles::{self, Tile};

use crate::audit::{AuditRecord, chain};
use crate::checkpoint::{CheckpointFile, parse_public_key};
use crate::proof::InclusionProofFile;
use crate::{ReportError, csv};

/// The manifest's format tag.
pub const FORMAT: &str = "wormbox-export-v2";
/// The tag of exports written before the Merkle tree (no proofs, no tiles).
pub const FORMAT_V1: &str = "wormbox-export-v1";
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
/// See the module docs.
pub const PROOFS: &str = "proofs";
/// See the module docs.
pub const TLOG: &str = "tlog";
/// See the module docs (relative to `TLOG`).
pub const TLOG_CHECKPOINT: &str = "checkpoint";

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

/// The file name of the `index`th version's inclusion proof.
pub fn proof_file(index: usize) -> String {
    format!("{PROOFS}/{index:08}.json")
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
    /// Versions whose inclusion proof verified against the checkpoint.
    pub proofs: u64,
    /// Tiles and entry bundles recomputed up to the signed root.
    pub tiles: u64,
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
    let signed = checkpoint.verify(&key);
    if !signed {
        check.problems.push(format!("{CHECKPOINT}: the signature does not verify with the public key"));
    }
    check.checkpoint = Some(file);

    let mut records = Vec::new();
    for (n, line) in read_text(&dir.join(LEDGER))?.lines().enumerate() {
        let record: AuditRecord =
            serde_json::from_str(line).map_err(|e| malformed(LEDGER, format!("line {}: {e}", n + 1)))?;
        records.push(record);
    }
    let mut anchored = signed;
    match chain(&records) {
        Ok((n, head)) => {
            check.ledger_entries = n;
            if n != checkpoint.sequence || head != checkpoint.head {
                anchored = false;
                check.problems.push(format!(
                    "{LEDGER} ends at entry {n} with head {}, the checkpoint says entry {} with head {}",
                    head.to_hex(),
                    checkpoint.sequence,
                    checkpoint.head.to_hex()
                ));
            }
        }
        Err(why) => {
            anchored = false;
            check.problems.push(format!("{LEDGER}: {why}"));
        }
    }

    let manifest: Manifest = serde_json::from_str(&read_text(&dir.join(MANIFEST_JSON))?)
        .map_err(|e| malformed(MANIFEST_JSON, e.to_string()))?;
    let proven = match manifest.format.as_str() {
        FORMAT => true,
        FORMAT_V1 => false,
        other => return Err(malformed(MANIFEST_JSON, format!("format `{other}` is neither {FORMAT} nor {FORMAT_V1}"))),
    };
    if read_text(&dir.join(MANIFEST_CSV))? != manifest.to_csv() {
        check.problems.push(format!("{MANIFEST_CSV} does not state the same entries as {MANIFEST_JSON}"));
    }
    // An export bound to a checkpoint that signs a Merkle root was written
    // with proofs: one that says otherwise was downgraded to skip them.
    let evidence_present = dir.join(PROOFS).exists() || dir.join(TLOG).exists();
    if !proven && (checkpoint.tree_root.is_some() || evidence_present) {
        check.problems.push(format!(
            "{MANIFEST_JSON} says {FORMAT_V1}, but the export is bound to a checkpoint of the Merkle tree or holds \
             {PROOFS}/ or {TLOG}/: an export of that checkpoint is {FORMAT}"
        ));
    }
    // The tiles are only read against a checkpoint that is signed and is
    // the end of the exported ledger: its size is then no one's claim but
    // the key's, and bounds the work.
    if proven && anchored {
        check_tiles(dir, &key, &checkpoint, &mut check);
    } else if proven {
        check
            .problems
            .push(format!("{TLOG}/ and {PROOFS}/ were not checked: the checkpoint does not anchor the ledger"));
    }
    let proofs = (proven && anchored).then_some((key.as_slice(), check.checkpoint.clone().expect("set above")));
    check_versions(dir, &manifest, &records, proofs, &mut check, progress)?;
    Ok(check)
}

/// Reads an untrusted file of at most `limit` bytes (a larger one, or one
/// that is not a regular file, is refused before it is read).
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() || meta.len() > limit {
        return Err(format!("it is not a regular file of at most {limit} bytes"));
    }
    std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))
}

/// The most bytes a proof file may take (a path of 64 hashes, an entry, a
/// checkpoint: a few KiB; anything near this is not one).
const MAX_PROOF_FILE: u64 = 1 << 20;

/// The tlog-tiles copy: its signed note names the checkpoint's tree, and
/// every tile and bundle up to it recomputes from the entries to its root.
fn check_tiles(dir: &Path, key: &[u8], checkpoint: &Checkpoint, check: &mut ExportCheck) {
    let tlog = dir.join(TLOG);
    let Some(root) = checkpoint.tree_root else {
        check.problems.push(format!("{CHECKPOINT} names no Merkle root: the export cannot hold proofs against it"));
        return;
    };
    let note = match read_bounded(&tlog.join(TLOG_CHECKPOINT), 64 << 10).map(String::from_utf8) {
        Ok(Ok(note)) => note,
        Ok(Err(_)) => return check.problems.push(format!("{TLOG}/{TLOG_CHECKPOINT} is not UTF-8")),
        Err(e) => return check.problems.push(format!("{TLOG}/{TLOG_CHECKPOINT}: {e}")),
    };
    match note::open(&note, key) {
        Ok(opened) if opened.size == checkpoint.sequence && opened.root == root => {}
        Ok(opened) => check.problems.push(format!(
            "{TLOG}/{TLOG_CHECKPOINT} signs the tree of {} entries with root {}, {CHECKPOINT} the tree of {} with \
             root {}",
            opened.size,
            opened.root.to_hex(),
            checkpoint.sequence,
            root.to_hex()
        )),
        Err(e) => check.problems.push(format!("{TLOG}/{TLOG_CHECKPOINT}: {e}")),
    }
    let mut read = 0u64;
    let result = tiles::check(checkpoint.sequence, &root, &mut |tile| {
        read += 1;
        read_bounded(&tlog.join(tile.to_string()), tiles::max_bytes(tile)).map_err(|e| format!("{tile}: {e}"))
    });
    match result {
        Ok(_) => check.tiles = read,
        Err(why) => check.problems.push(format!("{TLOG}/: {why}")),
    }
    // Nothing else: a file no tile path names is not part of the export.
    let mut expected: HashSet<PathBuf> =
        Tile::of_tree(checkpoint.sequence).iter().map(|t| tlog.join(t.to_string())).collect();
    expected.insert(tlog.join(TLOG_CHECKPOINT));
    let mut folders = vec![tlog.clone()];
    while let Some(folder) = folders.pop() {
        let Ok(listing) = std::fs::read_dir(&folder) else { continue };
        for item in listing.flatten() {
            let path = item.path();
            match item.file_type() {
                Ok(kind) if kind.is_dir() => folders.push(path),
                _ if expected.contains(&path) => {}
                _ => check.problems.push(format!("{} is not a tile of the checkpoint's tree", path.display())),
            }
        }
    }
}

/// Versions purged by the checkpoint, by (bucket, key, version id), with
/// the purging entry's sequence.
type Purged = HashMap<(String, String, String), u64>;

/// Checks the proof of `entry` (the `index`th): it verifies with `key`
/// against the export's checkpoint and the version's `bytes`, its entry
/// wrote this version of this key in this bucket, and no later entry up to
/// the checkpoint purged that version (a `null` version replaced since is
/// purged: its older bytes and genuine proof do not pass for the current).
fn check_proof(
    dir: &Path,
    (index, entry, bucket): (usize, &ManifestEntry, &str),
    (key, checkpoint, purged): (&[u8], &CheckpointFile, &Purged),
    bytes: &[u8],
) -> Result<(), String> {
    let name = proof_file(index);
    let text = read_bounded(&dir.join(&name), MAX_PROOF_FILE).map_err(|e| format!("{name}: {e}"))?;
    let proof: InclusionProofFile = serde_json::from_slice(&text).map_err(|e| format!("{name} is malformed: {e}"))?;
    if proof.checkpoint != *checkpoint {
        return Err(format!("{name} is against another checkpoint than {CHECKPOINT}"));
    }
    let checked = proof.check(key, Some(bytes)).map_err(|e| format!("{name} does not verify: {e}"))?;
    let written = &checked.entry;
    let same_version = entry.version_id == "null" || written.version.is_some_and(|v| v.to_string() == entry.version_id);
    if written.op != LedgerOp::VersionWritten || written.bucket != bucket || written.key != entry.key || !same_version {
        return Err(format!(
            "{name} proves ledger entry {} ({} of {}/{}), not the writing of this version",
            written.sequence,
            written.op.as_str(),
            written.bucket,
            written.key
        ));
    }
    let id = written.version.map(|v| v.to_string()).unwrap_or_default();
    if let Some(at) = purged.get(&(written.bucket.clone(), written.key.clone(), id)) {
        return Err(format!(
            "{name} proves a version that ledger entry {at} purged before the checkpoint: not what the key holds"
        ));
    }
    Ok(())
}

fn check_versions(
    dir: &Path,
    manifest: &Manifest,
    records: &[AuditRecord],
    proofs: Option<(&[u8], CheckpointFile)>,
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
    let purged: Purged = records
        .iter()
        .filter(|r| r.operation == LedgerOp::VersionPurged.as_str())
        .map(|r| ((r.bucket.clone(), r.key.clone(), r.version_id.clone()), r.sequence))
        .collect();
    let mut files = HashSet::new();
    let mut proof_files = HashSet::new();
    for (index, entry) in manifest.entries.iter().enumerate() {
        let name = format!("{} {}", entry.key, entry.version_id);
        files.insert(PathBuf::from(&entry.file));
        proof_files.insert(PathBuf::from(proof_file(index)));
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
        if let Some((key, checkpoint)) = &proofs {
            match check_proof(dir, (index, entry, &manifest.bucket), (*key, checkpoint, &purged), &bytes) {
                Ok(()) => check.proofs += 1,
                Err(why) => check.problems.push(format!("{name}: {why}")),
            }
        }
        check.versions += 1;
        check.bytes += bytes.len() as u64;
        read += bytes.len() as u64;
        progress(read, total);
    }
    let listed = [(OBJECTS, &files), (PROOFS, &proof_files)];
    for (folder, listed) in listed.into_iter().take(if proofs.is_some() { 2 } else { 1 }) {
        if let Ok(listing) = std::fs::read_dir(dir.join(folder)) {
            for item in listing.flatten() {
                let relative = PathBuf::from(folder).join(item.file_name());
                if !listed.contains(&relative) {
                    check.problems.push(format!("{} is not in the manifest", relative.display()));
                }
            }
        }
    }
    Ok(())
}
