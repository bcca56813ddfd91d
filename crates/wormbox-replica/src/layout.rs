//! How the replica is laid out: the same keys as the source, two metadata
//! entries that tie each replica version to its source (and those that
//! carry what S3 headers cannot: metadata, a missing content type, the S3
//! ETag), and the evidence under `.wormbox/`.
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
/// The metadata entry holding the user metadata that cannot travel as S3
/// headers of its own (names other than lower-case `a-z0-9-_.`, values other
/// than printable ASCII, names starting `wormbox-`): base64 of a JSON object.
pub const META_OTHER: &str = "wormbox-metadata";
/// The metadata entry saying the source version has no content type
/// (value `NO_CONTENT_TYPE`): S3 engines answer a default for an object
/// written without one, which a restore must not take for the source's.
pub const META_CONTENT_TYPE: &str = "wormbox-content-type";
/// `META_CONTENT_TYPE`'s value.
pub const NO_CONTENT_TYPE: &str = "none";
/// The metadata entry holding the S3 ETag stored with the source version
/// (present only when it has one): the replica's own ETag is the engine's,
/// which a restore must not take for the source's.
pub const META_ETAG: &str = "wormbox-etag";
/// The prefix of everything the replica holds beside copies of versions.
pub const EVIDENCE_PREFIX: &str = ".wormbox/";

/// A version's user metadata as the replica's `x-amz-meta-*` entries: each
/// name and value as it is when S3 can carry it, the rest in `META_OTHER`,
/// so that every byte of it reaches the replica.
pub fn replica_metadata(user: &std::collections::BTreeMap<String, String>) -> Vec<(String, String)> {
    let plain_name = |n: &str| {
        !n.is_empty()
            && !n.starts_with("wormbox-")
            && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
    };
    let plain_value = |v: &str| v.bytes().all(|b| (0x20..0x7f).contains(&b)) && v.trim() == v;
    let mut out = Vec::new();
    let mut other = serde_json::Map::new();
    for (name, value) in user {
        if plain_name(name) && plain_value(value) {
            out.push((name.clone(), value.clone()));
        } else {
            other.insert(name.clone(), serde_json::Value::String(value.clone()));
        }
    }
    if !other.is_empty() {
        let json = serde_json::Value::Object(other).to_string();
        out.push((META_OTHER.to_owned(), data_encoding::BASE64.encode(json.as_bytes())));
    }
    out
}

/// The user metadata a replica version carries back (`replica_metadata`
/// read backwards): its plain entries and those in `META_OTHER`, without
/// the appliance's own `wormbox-*` entries.
pub fn user_metadata_of(replica: &[(String, String)]) -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut out = std::collections::BTreeMap::new();
    for (name, value) in replica {
        if name == META_OTHER {
            let json =
                data_encoding::BASE64.decode(value.as_bytes()).map_err(|_| format!("`{META_OTHER}` is not base64"))?;
            let other: std::collections::BTreeMap<String, String> =
                serde_json::from_slice(&json).map_err(|_| format!("`{META_OTHER}` is not a JSON object of strings"))?;
            out.extend(other);
        } else if !name.starts_with("wormbox-") {
            out.insert(name.clone(), value.clone());
        }
    }
    Ok(out)
}

/// The sequence a checkpoint object's name holds, if it is one.
pub fn checkpoint_sequence(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(EVIDENCE_PREFIX)?.strip_prefix("checkpoints/")?.strip_suffix(".json")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name and value reaches the replica: plain ones as their own
    /// entries, the rest (which S3 headers cannot carry) in one encoded entry.
    #[test]
    fn user_metadata_that_s3_headers_cannot_carry_travels_encoded() {
        let user: std::collections::BTreeMap<String, String> = [
            ("department", "records"),
            ("Owner", "ALICE"),
            ("naïve name", "ok"),
            ("plain", "café"),
            ("wormbox-version-id", "forged"),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
        let out = replica_metadata(&user);
        assert_eq!(out[0], ("department".to_owned(), "records".to_owned()));
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[1].0, META_OTHER);
        let json = data_encoding::BASE64.decode(out[1].1.as_bytes()).unwrap();
        let other: std::collections::BTreeMap<String, String> = serde_json::from_slice(&json).unwrap();
        assert_eq!(other.len(), 4);
        assert_eq!(other["wormbox-version-id"], "forged", "a user's entry never poses as the appliance's own");
        assert_eq!(other["plain"], "café");
        let mut replica = out.clone();
        replica.push((META_VERSION.to_owned(), "the appliance's own".to_owned()));
        assert_eq!(user_metadata_of(&replica).unwrap(), user, "it reads back as it was");
    }

    #[test]
    fn checkpoint_names_read_back() {
        assert_eq!(checkpoint_sequence(&checkpoint_key(42)), Some(42));
        assert_eq!(checkpoint_sequence(".wormbox/checkpoints/42.json"), None);
        assert_eq!(checkpoint_sequence(&ledger_key(1, 42)), None);
    }

    #[test]
    fn a_ledger_range_reads_back_as_written() {
        assert_eq!(decode_range(&encode_range(&[])).unwrap().len(), 0);
        assert!(decode_range(&[0, 0, 0, 9, 1]).is_err(), "a truncated range is an error");
    }
}
