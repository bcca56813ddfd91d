//! Validated names: buckets (S3 naming rules), object keys, access key ids,
//! roles and user metadata.
//!
//! Invariant: a value of these types always satisfies DESIGN.md's rules; the
//! only way to get one is through a constructor that checks them.

use std::collections::BTreeMap;
use std::fmt;

use crate::FreeText;

/// The longest object key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// The most user metadata a version may carry: the sum of key and value bytes.
pub const MAX_USER_METADATA_BYTES: usize = 2048;

/// The most user metadata entries a new version may carry. Each entry costs
/// the server a map slot and two strings however short it is on the wire,
/// so the count is bounded as well as the bytes; S3 clients, whose entries
/// are headers, cannot send many more (hyper reads at most 100 headers).
pub const MAX_USER_METADATA_ENTRIES: usize = 64;

/// A bucket name that follows S3's general-purpose bucket naming rules.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BucketName(String);

/// Why a string is not a valid bucket name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid bucket name `{name}`: {why}")]
pub struct ParseBucketNameError {
    /// The rejected name, truncated to 80 characters.
    pub name: String,
    /// The rule it breaks.
    pub why: &'static str,
}

impl BucketName {
    /// Validates `name` against S3's naming rules.
    pub fn new(name: &str) -> Result<BucketName, ParseBucketNameError> {
        let fail = |why| ParseBucketNameError { name: name.chars().take(80).collect(), why };
        if !(3..=63).contains(&name.len()) {
            return Err(fail("must be 3 to 63 characters long"));
        }
        if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-') {
            return Err(fail("may contain only lowercase letters, digits, dots and hyphens"));
        }
        let first = name.as_bytes()[0];
        let last = name.as_bytes()[name.len() - 1];
        if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
            return Err(fail("must begin and end with a letter or digit"));
        }
        if name.contains("..") {
            return Err(fail("must not contain two adjacent dots"));
        }
        if name.split('.').count() == 4 && name.split('.').all(|part| part.parse::<u8>().is_ok()) {
            return Err(fail("must not be formatted as an IP address"));
        }
        for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
            if name.starts_with(prefix) {
                return Err(fail("uses a reserved prefix"));
            }
        }
        for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
            if name.ends_with(suffix) {
                return Err(fail("uses a reserved suffix"));
            }
        }
        Ok(BucketName(name.to_owned()))
    }

    /// Returns the name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BucketName({:?})", self.0)
    }
}

/// An object key: any UTF-8 string of 1 to 1024 bytes, NUL and `/` included.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey(String);

/// Why a string is not a valid object key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseObjectKeyError {
    /// The key is empty.
    #[error("object key must not be empty")]
    Empty,
    /// The key is longer than `MAX_KEY_BYTES`.
    #[error("object key is {len} bytes, more than the limit of {MAX_KEY_BYTES}")]
    TooLong {
        /// The key's length in bytes.
        len: usize,
    },
}

impl ObjectKey {
    /// Validates `key`'s length; any UTF-8 content is allowed.
    pub fn new(key: &str) -> Result<ObjectKey, ParseObjectKeyError> {
        ObjectKey::check(key)?;
        Ok(ObjectKey(key.to_owned()))
    }

    /// Validates `key`'s length and keeps it, without a copy.
    pub fn from_string(key: String) -> Result<ObjectKey, ParseObjectKeyError> {
        ObjectKey::check(&key)?;
        Ok(ObjectKey(key))
    }

    fn check(key: &str) -> Result<(), ParseObjectKeyError> {
        match key.len() {
            0 => Err(ParseObjectKeyError::Empty),
            len if len > MAX_KEY_BYTES => Err(ParseObjectKeyError::TooLong { len }),
            _ => Ok(()),
        }
    }

    /// Returns the key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectKey({:?})", self.0)
    }
}

/// The public half of a credential: `AKID` in `Bearer AKID:SECRET`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct AccessKeyId(String);

impl AccessKeyId {
    /// Accepts 16 to 64 characters of `[A-Z0-9]`, the shape the appliance issues.
    pub fn new(id: &str) -> Option<AccessKeyId> {
        let ok = (16..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        ok.then(|| AccessKeyId(id.to_owned()))
    }

    /// Returns the id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccessKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a principal may do (DESIGN.md, Auth).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages principals and devices, and may do anything a writer does.
    Admin,
    /// Creates buckets, writes and reads objects.
    Writer,
    /// Reads objects and lists.
    Reader,
    /// Compliance officer: metadata, reports, audit and holds; never object bytes.
    Auditor,
}

impl Role {
    /// Returns the role's lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Writer => "writer",
            Role::Reader => "reader",
            Role::Auditor => "auditor",
        }
    }

    /// Parses a lowercase role name.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "admin" => Some(Role::Admin),
            "writer" => Some(Role::Writer),
            "reader" => Some(Role::Reader),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }
}

/// User metadata of a version: at most `MAX_USER_METADATA_BYTES` in all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserMetadata(BTreeMap<String, String>);

impl UserMetadata {
    /// Checks the limits of new metadata (at most `MAX_USER_METADATA_ENTRIES`
    /// entries and `MAX_USER_METADATA_BYTES`), and each name and value as
    /// free text (no name empty, no control character anywhere).
    pub fn new(entries: BTreeMap<String, String>) -> Result<UserMetadata, String> {
        if entries.len() > MAX_USER_METADATA_ENTRIES {
            return Err(UserMetadata::too_many_entries(entries.len()));
        }
        UserMetadata::stored(entries)
    }

    /// Checks metadata read back from storage or from a replica copy by the
    /// rules of every build that may have written it: the size limit and the
    /// free-text rules, not the entry count, which came later.
    pub fn stored(entries: BTreeMap<String, String>) -> Result<UserMetadata, String> {
        let total: usize = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
        if total > MAX_USER_METADATA_BYTES {
            return Err(format!("user metadata is {total} bytes, more than the limit of {MAX_USER_METADATA_BYTES}"));
        }
        for (name, value) in &entries {
            FreeText::MetadataName.check(name).map_err(|e| e.to_string())?;
            FreeText::MetadataValue.check(value).map_err(|e| e.to_string())?;
        }
        Ok(UserMetadata(entries))
    }

    /// Returns the entries in name order.
    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// The refusal of new metadata of `entries` entries, in the same words
    /// wherever it is refused (a front door may count entries it does not
    /// build).
    pub fn too_many_entries(entries: usize) -> String {
        format!("user metadata has {entries} entries, more than the limit of {MAX_USER_METADATA_ENTRIES}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for good in ["abc", "my-bucket", "my.bucket.2026", "a".repeat(63).as_str(), "0ab"] {
            assert!(BucketName::new(good).is_ok(), "{good} should be valid");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "My-Bucket",
            "-abc",
            "abc-",
            "a..b",
            "192.168.5.4",
            "xn--abc",
            "abc-s3alias",
            "a_b",
            "abc\0",
        ] {
            assert!(BucketName::new(bad).is_err(), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn object_keys_accept_any_utf8_up_to_1024_bytes() {
        assert!(ObjectKey::new("a\0b/c").is_ok());
        assert!(ObjectKey::new(&"é".repeat(512)).is_ok());
        assert_eq!(ObjectKey::new(""), Err(ParseObjectKeyError::Empty));
        assert_eq!(ObjectKey::new(&"x".repeat(1025)), Err(ParseObjectKeyError::TooLong { len: 1025 }));
    }

    #[test]
    fn user_metadata_over_2_kib_is_refused() {
        let mut entries = BTreeMap::new();
        entries.insert("k".to_owned(), "v".repeat(2047));
        assert!(UserMetadata::new(entries.clone()).is_ok());
        entries.insert("x".to_owned(), "y".to_owned());
        assert!(UserMetadata::new(entries).is_err());
    }

    #[test]
    fn new_user_metadata_holds_at_most_64_entries_and_stored_metadata_any_number() {
        let entries = |n: usize| (0..n).map(|i| (format!("k{i}"), String::new())).collect::<BTreeMap<_, _>>();
        assert!(UserMetadata::new(entries(64)).is_ok());
        assert_eq!(UserMetadata::new(entries(65)).unwrap_err(), UserMetadata::too_many_entries(65));
        // Written by a build before the count: still read back.
        assert_eq!(UserMetadata::stored(entries(300)).unwrap().entries().len(), 300);
        assert!(UserMetadata::stored(BTreeMap::from([("k".to_owned(), "v".repeat(2048))])).is_err());
    }

    #[test]
    fn user_metadata_is_free_text_checked_by_the_shared_function() {
        let one = |k: &str, v: &str| UserMetadata::new(BTreeMap::from([(k.to_owned(), v.to_owned())]));
        assert!(one("case", "SEC; lock-sha256 00").is_ok());
        assert_eq!(one("", "v").unwrap_err(), FreeText::MetadataName.check("").unwrap_err().to_string());
        assert_eq!(one("k", "a\nb").unwrap_err(), FreeText::MetadataValue.check("a\nb").unwrap_err().to_string());
        assert!(one("k\0", "v").is_err());
    }

    #[test]
    fn access_key_ids_have_the_issued_shape() {
        assert!(AccessKeyId::new("AKIA0123456789ABCDEF").is_some());
        assert!(AccessKeyId::new("short").is_none());
        assert!(AccessKeyId::new("akia0123456789abcdef").is_none());
    }
}
