//! How the replica is laid out: the same keys as the source, two metadata
//! entries that tie each replica version to its source, and the evidence
//! under `.wormbox/`.
//!
//! Invariant: every name here is fixed by what it holds (a checkpoint's
//! sequence, a ledger range's bounds), so a write in doubt is found again by
//! its name or its metadata, never written twice.

use wormbox_model::Digest;
use wormbox_store::ledger::LedgerEntry;

/// The metadata entry naming a replica version's source version id.
pub const META_VERSION: &str = "wormbox-version-id";
/// The metadata entry naming the ledger entry that wrote the source version.
pub const META_SEQUENCE: &str = "wormbox-ledger-sequence";
/// The prefix of everything the replica holds beside copies of versions.
pub const EVIDENCE_PREFIX: &str = ".wormbox/";

/// The object holding the signed checkpoint at `sequence` (JSON, as the
/// `wormbox checkpoint` command writes it).
pub fn checkpoint_key(sequence: u64) -> String {
    format!("{EVIDENCE_PREFIX}checkpoints/{sequence:020}.json")
}

/// The object holding the ledger entries `first..=last` (`encode_range`).
pub fn ledger_key(first: u64, last: u64) -> String {
    format!("{EVIDENCE_PREFIX}ledger/{first:020}-{last:020}")
}

/// A ledger range as stored on the replica: for each entry, its stored form
/// (canonical bytes, then its chain hash) after a 4-byte big-endian length.
pub fn encode_range(entries: &[(LedgerEntry, Digest)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (entry, hash) in entries {
        let stored = entry.encode_stored(hash);
        out.extend_from_slice(&u32::try_from(stored.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(&stored);
    }
    out
}

/// Reads back what `encode_range` wrote.
pub fn decode_range(mut raw: &[u8]) -> Result<Vec<(LedgerEntry, Digest)>, String> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        let (len, rest) = raw.split_at_checked(4).ok_or("a ledger range ends inside a length")?;
        let len = u32::from_be_bytes(len.try_into().map_err(|_| "a malformed length")?) as usize;
        let (stored, rest) = rest.split_at_checked(len).ok_or("a ledger range ends inside an entry")?;
        out.push(LedgerEntry::decode_stored(stored).map_err(|e| e.to_string())?);
        raw = rest;
    }
    Ok(out)
}
