//! Version ids: 128-bit values shown as 26 characters of Crockford base32.
//!
//! Invariant: the string order of ids equals their numeric order, which is
//! creation order: the high 64 bits are compliance-clock microseconds, the low
//! 64 bits a sequence that the single writer makes unique within a microsecond.

use std::fmt;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The identity of one version, unique in the archive and ordered by creation.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VersionId(u128);

/// Why a string is not a version id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a version id")]
pub struct ParseVersionIdError(pub String);

impl VersionId {
    /// Builds an id from a creation time in microseconds and a sequence number.
    pub fn from_parts(micros: u64, sequence: u64) -> VersionId {
        VersionId((u128::from(micros) << 64) | u128::from(sequence))
    }

    /// Returns the raw 128-bit value.
    pub fn as_u128(self) -> u128 {
        self.0
    }

    /// Builds an id from its raw value.
    pub fn from_u128(raw: u128) -> VersionId {
        VersionId(raw)
    }

    /// Returns the creation time in microseconds, as encoded in the id.
    pub fn micros(self) -> u64 {
        (self.0 >> 64) as u64
    }

    /// Returns the big-endian bytes of the id.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// Parses 26 characters of Crockford base32 (upper or lower case).
    pub fn parse(text: &str) -> Result<VersionId, ParseVersionIdError> {
        let err = || ParseVersionIdError(text.chars().take(40).collect());
        if text.len() != 26 {
            return Err(err());
        }
        let mut value: u128 = 0;
        for (idx, ch) in text.bytes().enumerate() {
            let digit = ALPHABET.iter().position(|&a| a == ch.to_ascii_uppercase()).ok_or_else(err)? as u128;
            // 26 digits carry 130 bits; the first holds only the top 3 of 128.
            if idx == 0 && digit > 7 {
                return Err(err());
            }
            value = (value << 5) | digit;
        }
        Ok(VersionId(value))
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; 26];
        let mut value = self.0;
        for slot in out.iter_mut().rev() {
            *slot = ALPHABET[(value & 31) as usize];
            value >>= 5;
        }
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VersionId({self})")
    }
}

/// A version as a client names it: an id, or `null`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VersionSelector {
    /// The `null` version written while the bucket was unversioned or suspended.
    Null,
    /// A version with an id.
    Id(VersionId),
}

impl VersionSelector {
    /// Parses `null` or a version id.
    pub fn parse(text: &str) -> Result<VersionSelector, ParseVersionIdError> {
        if text == "null" { Ok(VersionSelector::Null) } else { VersionId::parse(text).map(VersionSelector::Id) }
    }
}

/// As clients write it: `null`, or the version's id (what `parse` reads back).
impl fmt::Display for VersionSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionSelector::Null => f.write_str("null"),
            VersionSelector::Id(id) => fmt::Display::fmt(id, f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_26_chars() {
        for raw in [0u128, 1, u128::MAX, 0x0123_4567_89AB_CDEF_0011_2233_4455_6677] {
            let id = VersionId::from_u128(raw);
            let text = id.to_string();
            assert_eq!(text.len(), 26);
            assert_eq!(VersionId::parse(&text), Ok(id));
            assert_eq!(VersionId::parse(&text.to_lowercase()), Ok(id));
        }
    }

    #[test]
    fn string_order_is_creation_order() {
        let ids = [
            VersionId::from_parts(1, 0),
            VersionId::from_parts(1, 1),
            VersionId::from_parts(1, u64::MAX),
            VersionId::from_parts(2, 0),
            VersionId::from_parts(1_795_737_600_000_000, 7),
        ];
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].to_string() < pair[1].to_string());
        }
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in [
            "",
            "null",
            "ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
            "0000000000000000000000000U",
            "80000000000000000000000000",
            "abc",
        ] {
            assert!(VersionId::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(VersionSelector::parse("null"), Ok(VersionSelector::Null));
        let id = VersionSelector::Id(VersionId::from_parts(7, 3));
        assert_eq!(VersionSelector::parse(&id.to_string()), Ok(id));
        assert_eq!(VersionSelector::Null.to_string(), "null");
    }
}
