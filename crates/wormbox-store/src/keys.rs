//! Key encodings for the `Versions`, `Nulls` and `Chunks` keyspaces.
//!
//! Invariant: the encoding is order-preserving and prefix-free per key.
//! `bucket 0x00 esc(key) 0x00 0x01 !version_id`: bucket names hold no NUL, so a
//! bucket's range never meets another's; in `esc`, NUL becomes `0x00 0xFF`, so
//! the terminator `0x00 0x01` sorts below any continuation and one key's range
//! never runs into a longer key's. Version ids are stored inverted (bitwise
//! NOT), so a key's versions scan newest first.

use wormbox_model::{BucketName, VersionId};

const ESCAPED_NUL: [u8; 2] = [0x00, 0xFF];
const TERMINATOR: [u8; 2] = [0x00, 0x01];

/// Returns the prefix of every `Versions` and `Nulls` key of `bucket`.
pub(crate) fn bucket_prefix(bucket: &BucketName) -> Vec<u8> {
    let mut out = Vec::with_capacity(bucket.as_str().len() + 1);
    out.extend_from_slice(bucket.as_str().as_bytes());
    out.push(0);
    out
}

/// Appends `text` escaped, without a terminator: a prefix of the encoding of
/// every key that starts with `text`.
pub(crate) fn push_escaped(out: &mut Vec<u8>, text: &str) {
    for &byte in text.as_bytes() {
        if byte == 0 {
            out.extend_from_slice(&ESCAPED_NUL);
        } else {
            out.push(byte);
        }
    }
}

/// Returns the encoding of (`bucket`, `key`) shared by its versions and its null pointer.
pub(crate) fn object_prefix(bucket: &BucketName, key: &str) -> Vec<u8> {
    let mut out = bucket_prefix(bucket);
    push_escaped(&mut out, key);
    out.extend_from_slice(&TERMINATOR);
    out
}

/// Returns the `Versions` key of one version.
pub(crate) fn version_key(bucket: &BucketName, key: &str, id: VersionId) -> Vec<u8> {
    version_key_of(bucket.as_str(), key, id)
}

/// `version_key` for a bucket name as a ledger entry spells it: the integrity
/// check looks versions up by what the ledger says, valid name or not.
pub(crate) fn version_key_of(bucket: &str, key: &str, id: VersionId) -> Vec<u8> {
    let mut out = Vec::with_capacity(bucket.len() + key.len() + 19);
    out.extend_from_slice(bucket.as_bytes());
    out.push(0);
    push_escaped(&mut out, key);
    out.extend_from_slice(&TERMINATOR);
    out.extend_from_slice(&(!id.as_u128()).to_be_bytes());
    out
}

/// Returns a key greater than every version of (`bucket`, `key`) and smaller
/// than the next key's versions.
pub(crate) fn after_object(bucket: &BucketName, key: &str) -> Vec<u8> {
    let mut out = object_prefix(bucket, key);
    out.extend_from_slice(&[0xFF; 17]);
    out
}

/// Returns a key greater than every version of every key that starts with
/// `prefix`. UTF-8 never contains `0xFF`, so nothing sorts between.
pub(crate) fn after_prefix(bucket: &BucketName, prefix: &str) -> Vec<u8> {
    let mut out = bucket_prefix(bucket);
    push_escaped(&mut out, prefix);
    out.push(0xFF);
    out
}

/// Splits a `Versions` key of `bucket` into the object key and version id.
pub(crate) fn decode_version_key(bucket_prefix_len: usize, raw: &[u8]) -> Option<(String, VersionId)> {
    let rest = raw.get(bucket_prefix_len..)?;
    if rest.len() < 18 {
        return None;
    }
    let (escaped, id_bytes) = rest.split_at(rest.len() - 16);
    let body = escaped.strip_suffix(&TERMINATOR)?;
    let mut key = Vec::with_capacity(body.len());
    let mut idx = 0;
    while idx < body.len() {
        if body[idx] == 0 {
            if body.get(idx + 1) != Some(&0xFF) {
                return None;
            }
            key.push(0);
            idx += 2;
        } else {
            key.push(body[idx]);
            idx += 1;
        }
    }
    let inverted = u128::from_be_bytes(id_bytes.try_into().ok()?);
    Some((String::from_utf8(key).ok()?, VersionId::from_u128(!inverted)))
}

/// Returns the `Chunks` key of chunk `index` of `upload`.
pub(crate) fn chunk_key(upload: u128, index: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(20);
    out.extend_from_slice(&upload.to_be_bytes());
    out.extend_from_slice(&index.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket() -> BucketName {
        BucketName::new("bkt").unwrap()
    }

    #[test]
    fn encoding_keeps_key_byte_order_and_newest_first() {
        let b = bucket();
        let keys = ["", "\0", "\0\0", "\0a", "a", "a\0", "a\0b", "a/", "a/b", "ab", "b", "é"];
        let older = VersionId::from_parts(1, 0);
        let newer = VersionId::from_parts(2, 0);
        let mut encoded = Vec::new();
        for key in keys.iter().skip(1) {
            encoded.push(version_key(&b, key, newer));
            encoded.push(version_key(&b, key, older));
        }
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(encoded, sorted, "encoded order must be key order, then newest first");
    }

    #[test]
    fn one_keys_range_never_contains_another_key() {
        let b = bucket();
        for (short, long) in [("a", "a\0"), ("a", "ab"), ("a\0", "a\0\0"), ("a", "a\u{1}")] {
            let low = object_prefix(&b, short);
            let high = after_object(&b, short);
            let other = version_key(&b, long, VersionId::from_parts(5, 5));
            assert!(!(other >= low && other < high), "{long:?} inside range of {short:?}");
        }
    }

    #[test]
    fn buckets_do_not_share_ranges() {
        let abc = BucketName::new("abc").unwrap();
        let abcd = BucketName::new("abcd").unwrap();
        assert!(!version_key(&abcd, "k", VersionId::from_parts(1, 1)).starts_with(&bucket_prefix(&abc)));
    }

    #[test]
    fn version_keys_decode() {
        let b = bucket();
        for key in ["x", "a\0b", "\0", "dir/file", &"z".repeat(1024)] {
            let id = VersionId::from_parts(42, 7);
            let raw = version_key(&b, key, id);
            assert_eq!(decode_version_key(bucket_prefix(&b).len(), &raw), Some((key.to_owned(), id)));
        }
        assert_eq!(decode_version_key(4, b"bkt\0short"), None);
    }

    #[test]
    fn after_prefix_is_past_every_key_with_that_prefix() {
        let b = bucket();
        let bound = after_prefix(&b, "a/");
        assert!(version_key(&b, "a/\u{10FFFF}", VersionId::from_u128(0)) < bound);
        assert!(version_key(&b, "a0", VersionId::from_u128(u128::MAX)) > bound);
    }
}
