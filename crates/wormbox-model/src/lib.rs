//! The archive's vocabulary: bucket names, object keys, version ids, digests,
//! principals, versioning states and time.
//!
//! Invariant: no IO, no async, no wire or storage formats. Every value type
//! here validates on construction, so a `BucketName` or `ObjectKey` that exists
//! is one the archive accepts.
#![deny(missing_docs)]

mod clock;
mod names;
mod text;
mod version_id;

pub use clock::{Clock, ClockEvent, ClockPolicy, ComplianceClock, ManualClock, SystemClock, Timestamp};
pub use names::{
    AccessKeyId, BucketName, MAX_KEY_BYTES, MAX_USER_METADATA_BYTES, MAX_USER_METADATA_ENTRIES, ObjectKey,
    ParseBucketNameError, ParseObjectKeyError, Role, UserMetadata,
};
pub use text::{FreeText, FreeTextError, FreeTextProblem};
pub use version_id::{ParseVersionIdError, VersionId, VersionSelector};

use std::fmt;

/// A SHA-256 digest of a version's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Returns the digest as lowercase hex.
    pub fn to_hex(&self) -> String {
        // Every write formats one or two digests into its ledger entry: a
        // table lookup, not a `format!` per byte.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xF)]));
        }
        out
    }

    /// Builds a digest from exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Digest> {
        <[u8; 32]>::try_from(bytes).ok().map(Digest)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A bucket's versioning state (DESIGN.md): Unversioned → Enabled ⇄ Suspended,
/// never back to Unversioned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VersioningState {
    /// Never versioned: PUT and DELETE act on the `null` version.
    Unversioned,
    /// Every PUT and DELETE creates a new version with a new id.
    Enabled,
    /// PUT and DELETE replace the `null` version; older versions stay.
    Suspended,
}

impl VersioningState {
    /// Returns whether a bucket in this state may move to `next`.
    pub fn may_become(self, next: VersioningState) -> bool {
        match (self, next) {
            (_, VersioningState::Unversioned) => self == VersioningState::Unversioned,
            _ => true,
        }
    }

    /// Returns the state's name as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            VersioningState::Unversioned => "Unversioned",
            VersioningState::Enabled => "Enabled",
            VersioningState::Suspended => "Suspended",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioning_never_returns_to_unversioned() {
        use VersioningState::*;
        assert!(Unversioned.may_become(Enabled));
        assert!(Unversioned.may_become(Suspended));
        assert!(Unversioned.may_become(Unversioned));
        assert!(Enabled.may_become(Suspended));
        assert!(Suspended.may_become(Enabled));
        assert!(!Enabled.may_become(Unversioned));
        assert!(!Suspended.may_become(Unversioned));
    }

    #[test]
    fn digest_hex_is_lowercase_and_64_chars() {
        let digest = Digest([0xAB; 32]);
        assert_eq!(digest.to_hex().len(), 64);
        assert!(digest.to_hex().starts_with("abab"));
        assert_eq!(Digest::from_slice(&[1; 31]), None);
    }
}
