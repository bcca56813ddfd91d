//! Merkle proofs as people and files carry them (`wormbox prove`,
//! `wormbox verify-proof`): JSON with hex fields, checked offline.
//!
//! An inclusion proof file holds a ledger entry's canonical bytes (the
//! Merkle leaf is `SHA-256(0x00 || entry)`, RFC 9162 §2.1.1), its audit path
//! and the signed checkpoint whose tree root the path leads to; a
//! consistency proof file, two checkpoints and the path between their trees.
//!
//! Invariant: a check trusts nothing in a file that it does not recompute:
//! the leaf from the entry's bytes, the root from the path, the checkpoint's
//! signature under a public key obtained elsewhere, the entry's fields by
//! decoding its bytes (the descriptive fields must agree with them), and a
//! version's bytes by hashing them.

use serde::{Deserialize, Serialize};
use wormbox_model::Digest;
use wormbox_store::evidence::Checkpoint;
use wormbox_store::ledger::LedgerEntry;
use wormbox_store::merkle;

use crate::checkpoint::CheckpointFile;

/// The `format` of an inclusion proof file.
pub const INCLUSION_FORMAT: &str = "wormbox-inclusion-proof/1";
/// The `format` of a consistency proof file.
pub const CONSISTENCY_FORMAT: &str = "wormbox-consistency-proof/1";

/// A ledger entry's inclusion in the tree of a signed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProofFile {
    /// `INCLUSION_FORMAT`.
    pub format: String,
    /// The entry's sequence; its leaf index is one less.
    pub ledger_sequence: u64,
    /// The tree's size: the checkpoint's sequence.
    pub tree_size: u64,
    /// The entry's canonical bytes, in hex.
    pub entry: String,
    /// The audit path, nearest the leaf first, each 32 bytes in hex.
    pub path: Vec<String>,
    /// The signed checkpoint.
    pub checkpoint: CheckpointFile,
    /// What the entry says, for people (checked against `entry`).
    pub described: EntryDescription,
}

/// The fields of an entry people look for, as decoded from its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryDescription {
    /// The operation (`version-written`, ...).
    pub op: String,
    /// Compliance-clock time, RFC 3339.
    pub time: String,
    /// Who did it.
    pub principal: String,
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// The version's internal id, if the entry names one.
    pub version_id: Option<String>,
    /// The SHA-256 of the version's bytes, if the entry names one, in hex.
    pub sha256: Option<String>,
}

impl EntryDescription {
    /// The description of `entry`.
    pub fn of(entry: &LedgerEntry) -> EntryDescription {
        EntryDescription {
            op: entry.op.as_str().to_owned(),
            time: entry.time.to_rfc3339(),
            principal: entry.principal.clone(),
            bucket: entry.bucket.clone(),
            key: entry.key.clone(),
            version_id: entry.version.map(|v| v.to_string()),
            sha256: entry.sha256.map(|d| d.to_hex()),
        }
    }
}

/// What a checked inclusion proof shows.
#[derive(Clone, Debug)]
pub struct InclusionCheck {
    /// The entry, decoded from the bytes the proof covers.
    pub entry: LedgerEntry,
    /// The checkpoint whose signed root the entry leads to.
    pub checkpoint: Checkpoint,
    /// Whether bytes were given and hash to the entry's SHA-256.
    pub bytes_checked: bool,
}

impl InclusionProofFile {
    /// Checks the proof under `public_key` and, when given, `bytes` against
    /// the entry's SHA-256.
    pub fn check(&self, public_key: &[u8], bytes: Option<&[u8]>) -> Result<InclusionCheck, String> {
        if self.format != INCLUSION_FORMAT {
            return Err(format!("not an inclusion proof of this format (`{}`)", self.format));
        }
        let (checkpoint, root) = signed_root(&self.checkpoint, public_key)?;
        if self.tree_size != checkpoint.sequence {
            return Err(format!(
                "the proof is for a tree of {} entries, the checkpoint signs one of {}",
                self.tree_size, checkpoint.sequence
            ));
        }
        let raw = hex::decode(&self.entry).map_err(|_| "the entry is not hex".to_owned())?;
        let entry = LedgerEntry::decode_canonical(&raw).map_err(|_| "the entry's bytes do not decode".to_owned())?;
        if entry.sequence != self.ledger_sequence || self.ledger_sequence == 0 {
            return Err(format!("the entry is number {}, the proof says {}", entry.sequence, self.ledger_sequence));
        }
        if EntryDescription::of(&entry) != self.described {
            return Err("the file's description of the entry is not what its bytes say".to_owned());
        }
        let path = digests(&self.path)?;
        let leaf = merkle::leaf_hash(&raw);
        if !merkle::verify_inclusion(self.ledger_sequence - 1, self.tree_size, &leaf, &path, &root) {
            return Err(format!(
                "the path does not lead from entry {} to the signed root of the tree of {} entries",
                self.ledger_sequence, self.tree_size
            ));
        }
        let bytes_checked = match bytes {
            None => false,
            Some(bytes) => {
                let sha256 = entry.sha256.ok_or_else(|| "the entry names no version bytes to compare".to_owned())?;
                let got = ring::digest::digest(&ring::digest::SHA256, bytes);
                if got.as_ref() != sha256.0.as_slice() {
                    return Err(format!(
                        "the bytes given have SHA-256 {}, the entry says {}",
                        hex::encode(got.as_ref()),
                        sha256.to_hex()
                    ));
                }
                true
            }
        };
        Ok(InclusionCheck { entry, checkpoint, bytes_checked })
    }
}

/// The proof that one signed tree extends another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProofFile {
    /// `CONSISTENCY_FORMAT`.
    pub format: String,
    /// The earlier checkpoint.
    pub old: CheckpointFile,
    /// The later checkpoint.
    pub new: CheckpointFile,
    /// The path, each 32 bytes in hex.
    pub path: Vec<String>,
}

impl ConsistencyProofFile {
    /// Checks both signatures under `public_key` and the path between the
    /// two signed roots; returns the two checkpoints.
    pub fn check(&self, public_key: &[u8]) -> Result<(Checkpoint, Checkpoint), String> {
        if self.format != CONSISTENCY_FORMAT {
            return Err(format!("not a consistency proof of this format (`{}`)", self.format));
        }
        let (old, old_root) = signed_root(&self.old, public_key)?;
        let (new, new_root) = signed_root(&self.new, public_key)?;
        let path = digests(&self.path)?;
        if !merkle::verify_consistency(old.sequence, new.sequence, &old_root, &new_root, &path) {
            return Err(format!(
                "the tree of {} entries does not extend the tree of {}: the ledger was rewritten between them",
                new.sequence, old.sequence
            ));
        }
        Ok((old, new))
    }
}

/// A checkpoint file's checkpoint, signed by `public_key`, and its root.
fn signed_root(file: &CheckpointFile, public_key: &[u8]) -> Result<(Checkpoint, Digest), String> {
    let checkpoint = file.checkpoint()?;
    if !checkpoint.verify(public_key) {
        return Err(format!("the checkpoint at ledger entry {} is not signed by this key", checkpoint.sequence));
    }
    let root = checkpoint.tree_root.ok_or_else(|| {
        format!("the checkpoint at ledger entry {} was signed before the Merkle tree and names no root", file.sequence)
    })?;
    Ok((checkpoint, root))
}

fn digests(hexes: &[String]) -> Result<Vec<Digest>, String> {
    hexes
        .iter()
        .map(|h| hex::decode(h).ok().and_then(|b| Digest::from_slice(&b)).ok_or_else(|| format!("`{h}` is not a hash")))
        .collect()
}
