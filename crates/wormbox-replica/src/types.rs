//! What the S3 client takes and returns: lock modes, retention, versioning,
//! object heads, listings.
//!
//! Invariant: plain data, no IO; a retain-until date is a
//! `wormbox_model::Timestamp` and goes on the wire rounded up to the whole
//! second (`wire_date`), never earlier than asked, so a replica's retention
//! is at least the source's.

use wormbox_model::Timestamp;

/// An Object Lock retention mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockMode {
    /// No one can shorten or remove it, not even the root account.
    Compliance,
    /// A caller with `s3:BypassGovernanceRetention` may shorten or remove it.
    Governance,
}

impl LockMode {
    /// The wire name (`COMPLIANCE`, `GOVERNANCE`).
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Compliance => "COMPLIANCE",
            LockMode::Governance => "GOVERNANCE",
        }
    }

    /// Reads a wire name.
    pub fn parse(text: &str) -> Option<LockMode> {
        match text {
            "COMPLIANCE" => Some(LockMode::Compliance),
            "GOVERNANCE" => Some(LockMode::Governance),
            _ => None,
        }
    }
}

/// A bucket's default retention period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetentionPeriod {
    /// Days.
    Days(u32),
    /// Years.
    Years(u32),
}

/// A bucket's default retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultRetention {
    /// Its mode.
    pub mode: LockMode,
    /// Its period.
    pub period: RetentionPeriod,
}

/// A bucket's Object Lock configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketLock {
    /// Whether Object Lock is enabled (false: the bucket has none, the server
    /// answered `ObjectLockConfigurationNotFoundError`).
    pub enabled: bool,
    /// The default retention new versions get, if any.
    pub default_retention: Option<DefaultRetention>,
}

/// A bucket's versioning state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersioningStatus {
    /// Never versioned.
    Unversioned,
    /// Versioned.
    Enabled,
    /// Versioning suspended.
    Suspended,
}

/// A bucket's versioning configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Versioning {
    /// Versioning.
    pub status: VersioningStatus,
    /// Whether MFA Delete is on (as the server reports it: SeaweedFS accepts
    /// it and reports it off).
    pub mfa_delete: bool,
}

/// What to send with a PutObject besides its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutObject {
    /// The exact number of bytes the body stream yields.
    pub content_length: u64,
    /// The SHA-256 of those bytes: signed as `x-amz-content-sha256` and
    /// checked as the body streams.
    pub sha256: [u8; 32],
    /// `Content-Type`; `application/octet-stream` when `None`.
    pub content_type: Option<String>,
    /// User metadata, sent as `x-amz-meta-NAME: VALUE` (names are
    /// case-insensitive on the wire; values printable ASCII).
    pub metadata: Vec<(String, String)>,
    /// Object Lock mode and retain-until date.
    pub lock: Option<(LockMode, Timestamp)>,
    /// Legal hold ON.
    pub legal_hold: bool,
    /// Also send `x-amz-checksum-sha256` (the server may store and verify it).
    pub checksum: bool,
}

impl PutObject {
    /// A plain PutObject of `content_length` bytes with digest `sha256`.
    pub fn new(content_length: u64, sha256: [u8; 32]) -> PutObject {
        PutObject {
            content_length,
            sha256,
            content_type: None,
            metadata: Vec::new(),
            lock: None,
            legal_hold: false,
            checksum: false,
        }
    }
}

/// What a PutObject created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutOutcome {
    /// The new version's id (`None` on an unversioned bucket).
    pub version_id: Option<String>,
    /// Its ETag, quotes included, as the server sent it.
    pub etag: String,
}

/// What a DeleteObject did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// The version deleted, or the delete marker created.
    pub version_id: Option<String>,
    /// Whether a delete marker was created (or deleted).
    pub delete_marker: bool,
}

/// An object version's head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectHead {
    /// Size in bytes.
    pub size: u64,
    /// ETag, quotes included.
    pub etag: String,
    /// Version id, if the bucket is versioned.
    pub version_id: Option<String>,
    /// `Content-Type`, if sent.
    pub content_type: Option<String>,
    /// `Last-Modified`, if sent and readable.
    pub last_modified: Option<Timestamp>,
    /// User metadata (`x-amz-meta-*`), names lowercase, sorted by name.
    pub metadata: Vec<(String, String)>,
    /// Object Lock mode and retain-until date, if set.
    pub lock: Option<(LockMode, Timestamp)>,
    /// Legal hold ON.
    pub legal_hold: bool,
    /// The stored `x-amz-checksum-sha256`, if the server returns one.
    pub checksum_sha256: Option<[u8; 32]>,
}

/// Whether a listed entry is a version or a delete marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A version with bytes.
    Version,
    /// A delete marker.
    DeleteMarker,
}

/// One entry of ListObjectVersions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionEntry {
    /// Version or delete marker.
    pub kind: EntryKind,
    /// The key.
    pub key: String,
    /// The version id (`null` for the null version).
    pub version_id: String,
    /// Whether it is the key's current version.
    pub is_latest: bool,
    /// Size (0 for a delete marker).
    pub size: u64,
    /// ETag (empty for a delete marker).
    pub etag: String,
    /// Last modified.
    pub last_modified: Option<Timestamp>,
}

/// One page of ListObjectVersions, in the server's order (versions and
/// delete markers interleaved, by key then newest first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionPage {
    /// The entries, as listed.
    pub entries: Vec<VersionEntry>,
    /// Whether more follow.
    pub is_truncated: bool,
    /// Where the next page starts: the key marker...
    pub next_key_marker: Option<String>,
    /// ...and the version id marker.
    pub next_version_id_marker: Option<String>,
}

impl VersionPage {
    /// The versions with bytes, in order.
    pub fn versions(&self) -> impl Iterator<Item = &VersionEntry> {
        self.entries.iter().filter(|e| e.kind == EntryKind::Version)
    }

    /// The delete markers, in order.
    pub fn delete_markers(&self) -> impl Iterator<Item = &VersionEntry> {
        self.entries.iter().filter(|e| e.kind == EntryKind::DeleteMarker)
    }
}

/// A retain-until date as S3 wants it (ISO 8601 with milliseconds, `Z`),
/// rounded up to the whole second.
pub(crate) fn wire_date(at: Timestamp) -> String {
    let up =
        Timestamp(at.0.div_euclid(1_000_000).saturating_add(i64::from(at.0.rem_euclid(1_000_000) != 0)) * 1_000_000);
    let rfc = up.to_rfc3339();
    // "2030-01-01T00:00:00.000000Z" -> "2030-01-01T00:00:00.000Z"
    format!("{}.000Z", &rfc[..19])
}

/// Reads a date S3 sent: RFC 3339 with or without fractional seconds (more
/// than microseconds are cut), or an RFC 1123 HTTP date.
pub(crate) fn parse_date(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Some(t) = Timestamp::parse_rfc3339(text) {
        return Some(t);
    }
    if let Some((head, rest)) = text.split_once('.') {
        // Nanoseconds: keep six digits.
        let digits: String = rest.chars().take_while(char::is_ascii_digit).take(6).collect();
        let tail = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        if tail == "Z" && !digits.is_empty() {
            return Timestamp::parse_rfc3339(&format!("{head}.{digits}Z"));
        }
        if tail == "+00:00" || tail == "+0000" {
            return Timestamp::parse_rfc3339(&format!("{head}.{digits}Z"));
        }
    }
    if let Some(head) = text.strip_suffix("+00:00") {
        return Timestamp::parse_rfc3339(&format!("{head}Z"));
    }
    let system = httpdate::parse_http_date(text).ok()?;
    let since = system.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(Timestamp(i64::try_from(since.as_micros()).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retain_until_dates_round_up_to_the_second_and_parse_in_every_form() {
        let t = Timestamp::parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
        assert_eq!(wire_date(t), "2030-01-01T00:00:00.000Z");
        assert_eq!(wire_date(Timestamp(t.0 + 1)), "2030-01-01T00:00:01.000Z");
        assert_eq!(wire_date(Timestamp(t.0 - 1)), "2030-01-01T00:00:00.000Z");
        for text in [
            "2030-01-01T00:00:00Z",
            "2030-01-01T00:00:00.000Z",
            "2030-01-01T00:00:00.000000000Z",
            "2030-01-01T00:00:00+00:00",
            "Tue, 01 Jan 2030 00:00:00 GMT",
        ] {
            assert_eq!(parse_date(text), Some(t), "{text}");
        }
        assert_eq!(parse_date("2030-01-01T00:00:00.123456789Z"), Some(Timestamp(t.0 + 123_456)));
        assert_eq!(parse_date("soon"), None);
    }
}
