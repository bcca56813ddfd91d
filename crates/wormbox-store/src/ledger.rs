//! The hash-chained ledger: one entry per state change, written in the same
//! atomic batch as the change.
//!
//! Canonical bytes of an entry (all integers big-endian, `str` is a u32 length
//! then UTF-8 bytes):
//!
//! ```text
//! format u8 = 1 | sequence u64 | time i64 (compliance-clock µs) | operation u8
//! | principal str | bucket str | key str
//! | has_version u8 (0|1) [version id u128] | has_sha256 u8 (0|1) [sha256 32 bytes]
//! | detail str
//! ```
//!
//! `h_n = SHA-256(h_{n-1} || canonical bytes of entry n)`, with `h_0` 32 zero
//! bytes and the first entry numbered 1. The stored value is the canonical bytes
//! followed by `h_n`.
//!
//! Invariant: entries are only appended; sequence numbers have no gaps.

use wormbox_model::{Digest, Timestamp, VersionId};

use crate::codec::{DecodeError, Reader, Writer};

/// The hash before the first entry.
pub const GENESIS: Digest = Digest([0; 32]);

/// What a ledger entry records. Codes are stable; new operations get new codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LedgerOp {
    /// A bucket was created.
    BucketCreated,
    /// An empty bucket was deleted.
    BucketDeleted,
    /// A bucket's versioning state changed.
    VersioningChanged,
    /// A version was written.
    VersionWritten,
    /// A delete marker was written.
    MarkerWritten,
    /// A version or marker was permanently removed.
    VersionPurged,
    /// A principal was created.
    PrincipalCreated,
    /// A principal was revoked.
    PrincipalRevoked,
    /// An MFA device was enrolled (pending activation).
    MfaEnrolled,
    /// An MFA device was activated with two consecutive codes.
    MfaActivated,
    /// An MFA device was resynchronised with two consecutive codes.
    MfaResynced,
    /// An MFA code was accepted for the operation named in the detail.
    MfaAccepted,
    /// An MFA code or activation was refused (invalid, replayed, locked out).
    MfaRefused,
    /// An MFA device was deactivated.
    MfaDeactivated,
    /// A version's retention was set, extended, shortened or removed.
    RetentionChanged,
    /// A legal hold was placed on a version.
    HoldPlaced,
    /// A legal hold was released.
    HoldReleased,
    /// A bucket's Object Lock configuration changed.
    ObjectLockChanged,
    /// An attempt refused by Object Lock, MFA Delete or ownership.
    Refused,
    /// The system clock jumped forward beyond the compliance clock's slew and
    /// was not followed.
    ClockHeldBack,
    /// An admin, with an MFA code, accepted the system clock's time.
    ClockAccepted,
    /// An integrity check (scrub) found everything as the ledger says.
    IntegrityVerified,
    /// An integrity check found a divergence; the detail names the first.
    IntegrityFailed,
}

impl LedgerOp {
    fn code(self) -> u8 {
        match self {
            LedgerOp::BucketCreated => 1,
            LedgerOp::BucketDeleted => 2,
            LedgerOp::VersioningChanged => 3,
            LedgerOp::VersionWritten => 4,
            LedgerOp::MarkerWritten => 5,
            LedgerOp::VersionPurged => 6,
            LedgerOp::PrincipalCreated => 7,
            LedgerOp::PrincipalRevoked => 8,
            LedgerOp::MfaEnrolled => 9,
            LedgerOp::MfaActivated => 10,
            LedgerOp::MfaResynced => 11,
            LedgerOp::MfaAccepted => 12,
            LedgerOp::MfaRefused => 13,
            LedgerOp::MfaDeactivated => 14,
            LedgerOp::RetentionChanged => 15,
            LedgerOp::HoldPlaced => 16,
            LedgerOp::HoldReleased => 17,
            LedgerOp::ObjectLockChanged => 18,
            LedgerOp::Refused => 19,
            LedgerOp::ClockHeldBack => 20,
            LedgerOp::ClockAccepted => 21,
            LedgerOp::IntegrityVerified => 22,
            LedgerOp::IntegrityFailed => 23,
        }
    }

    fn from_code(code: u8) -> Option<LedgerOp> {
        Some(match code {
            1 => LedgerOp::BucketCreated,
            2 => LedgerOp::BucketDeleted,
            3 => LedgerOp::VersioningChanged,
            4 => LedgerOp::VersionWritten,
            5 => LedgerOp::MarkerWritten,
            6 => LedgerOp::VersionPurged,
            7 => LedgerOp::PrincipalCreated,
            8 => LedgerOp::PrincipalRevoked,
            9 => LedgerOp::MfaEnrolled,
            10 => LedgerOp::MfaActivated,
            11 => LedgerOp::MfaResynced,
            12 => LedgerOp::MfaAccepted,
            13 => LedgerOp::MfaRefused,
            14 => LedgerOp::MfaDeactivated,
            15 => LedgerOp::RetentionChanged,
            16 => LedgerOp::HoldPlaced,
            17 => LedgerOp::HoldReleased,
            18 => LedgerOp::ObjectLockChanged,
            19 => LedgerOp::Refused,
            20 => LedgerOp::ClockHeldBack,
            21 => LedgerOp::ClockAccepted,
            22 => LedgerOp::IntegrityVerified,
            23 => LedgerOp::IntegrityFailed,
            _ => return None,
        })
    }

    /// Returns a stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerOp::BucketCreated => "bucket-created",
            LedgerOp::BucketDeleted => "bucket-deleted",
            LedgerOp::VersioningChanged => "versioning-changed",
            LedgerOp::VersionWritten => "version-written",
            LedgerOp::MarkerWritten => "marker-written",
            LedgerOp::VersionPurged => "version-purged",
            LedgerOp::PrincipalCreated => "principal-created",
            LedgerOp::PrincipalRevoked => "principal-revoked",
            LedgerOp::MfaEnrolled => "mfa-enrolled",
            LedgerOp::MfaActivated => "mfa-activated",
            LedgerOp::MfaResynced => "mfa-resynced",
            LedgerOp::MfaAccepted => "mfa-accepted",
            LedgerOp::MfaRefused => "mfa-refused",
            LedgerOp::MfaDeactivated => "mfa-deactivated",
            LedgerOp::RetentionChanged => "retention-changed",
            LedgerOp::HoldPlaced => "hold-placed",
            LedgerOp::HoldReleased => "hold-released",
            LedgerOp::ObjectLockChanged => "object-lock-changed",
            LedgerOp::Refused => "refused",
            LedgerOp::ClockHeldBack => "clock-held-back",
            LedgerOp::ClockAccepted => "clock-accepted",
            LedgerOp::IntegrityVerified => "integrity-verified",
            LedgerOp::IntegrityFailed => "integrity-failed",
        }
    }

    /// Every operation, in code order.
    pub const ALL: [LedgerOp; 23] = [
        LedgerOp::BucketCreated,
        LedgerOp::BucketDeleted,
        LedgerOp::VersioningChanged,
        LedgerOp::VersionWritten,
        LedgerOp::MarkerWritten,
        LedgerOp::VersionPurged,
        LedgerOp::PrincipalCreated,
        LedgerOp::PrincipalRevoked,
        LedgerOp::MfaEnrolled,
        LedgerOp::MfaActivated,
        LedgerOp::MfaResynced,
        LedgerOp::MfaAccepted,
        LedgerOp::MfaRefused,
        LedgerOp::MfaDeactivated,
        LedgerOp::RetentionChanged,
        LedgerOp::HoldPlaced,
        LedgerOp::HoldReleased,
        LedgerOp::ObjectLockChanged,
        LedgerOp::Refused,
        LedgerOp::ClockHeldBack,
        LedgerOp::ClockAccepted,
        LedgerOp::IntegrityVerified,
        LedgerOp::IntegrityFailed,
    ];

    /// The operation with this stable name.
    pub fn from_name(name: &str) -> Option<LedgerOp> {
        LedgerOp::ALL.into_iter().find(|op| op.as_str() == name)
    }

    /// The audit kind this operation belongs to (the `AuditLog` filter).
    pub fn kind(self) -> AuditKind {
        match self {
            LedgerOp::VersionWritten => AuditKind::Writes,
            LedgerOp::MarkerWritten => AuditKind::Markers,
            LedgerOp::VersionPurged => AuditKind::Purges,
            LedgerOp::RetentionChanged | LedgerOp::HoldPlaced | LedgerOp::HoldReleased => AuditKind::Retention,
            LedgerOp::BucketCreated
            | LedgerOp::BucketDeleted
            | LedgerOp::VersioningChanged
            | LedgerOp::ObjectLockChanged
            | LedgerOp::PrincipalCreated
            | LedgerOp::PrincipalRevoked
            | LedgerOp::ClockHeldBack
            | LedgerOp::ClockAccepted => AuditKind::Configuration,
            LedgerOp::MfaEnrolled
            | LedgerOp::MfaActivated
            | LedgerOp::MfaResynced
            | LedgerOp::MfaAccepted
            | LedgerOp::MfaDeactivated => AuditKind::Mfa,
            LedgerOp::MfaRefused | LedgerOp::Refused => AuditKind::Refused,
            LedgerOp::IntegrityVerified | LedgerOp::IntegrityFailed => AuditKind::Integrity,
        }
    }
}

/// Groups of ledger operations an auditor filters by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditKind {
    /// Versions written.
    Writes,
    /// Delete markers written.
    Markers,
    /// Permanent deletes.
    Purges,
    /// Retention set or changed, holds placed or released.
    Retention,
    /// Buckets, versioning, Object Lock configuration, principals, the clock.
    Configuration,
    /// MFA devices enrolled, activated, resynced, codes accepted, devices deactivated.
    Mfa,
    /// Attempts refused (Object Lock, MFA Delete, ownership, MFA codes).
    Refused,
    /// Integrity checks.
    Integrity,
}

impl AuditKind {
    /// Every kind.
    pub const ALL: [AuditKind; 8] = [
        AuditKind::Writes,
        AuditKind::Markers,
        AuditKind::Purges,
        AuditKind::Retention,
        AuditKind::Configuration,
        AuditKind::Mfa,
        AuditKind::Refused,
        AuditKind::Integrity,
    ];

    /// A stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Writes => "writes",
            AuditKind::Markers => "markers",
            AuditKind::Purges => "purges",
            AuditKind::Retention => "retention",
            AuditKind::Configuration => "configuration",
            AuditKind::Mfa => "mfa",
            AuditKind::Refused => "refused",
            AuditKind::Integrity => "integrity",
        }
    }

    /// The kind with this name.
    pub fn from_name(name: &str) -> Option<AuditKind> {
        AuditKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One ledger entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Position in the chain, from 1.
    pub sequence: u64,
    /// Compliance-clock time of the change.
    pub time: Timestamp,
    /// What happened.
    pub op: LedgerOp,
    /// The access key id that caused it (`system` for the appliance itself).
    pub principal: String,
    /// The bucket concerned, or empty.
    pub bucket: String,
    /// The object key, or the principal concerned, or empty.
    pub key: String,
    /// The version concerned.
    pub version: Option<VersionId>,
    /// The version's SHA-256.
    pub sha256: Option<Digest>,
    /// Free text (never secrets): for example the new versioning state.
    pub detail: String,
}

impl LedgerEntry {
    /// Returns the canonical bytes that the chain hashes.
    pub fn canonical(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.sequence).i64(self.time.0).u8(self.op.code());
        w.str(&self.principal).str(&self.bucket).str(&self.key);
        match self.version {
            Some(id) => w.u8(1).u128(id.as_u128()),
            None => w.u8(0),
        };
        match self.sha256 {
            Some(digest) => w.u8(1).raw(&digest.0),
            None => w.u8(0),
        };
        w.str(&self.detail);
        w.finish()
    }

    /// Returns `h_n` given `h_{n-1}`.
    pub fn chain_hash(&self, previous: &Digest) -> Digest {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&previous.0);
        ctx.update(&self.canonical());
        Digest::from_slice(ctx.finish().as_ref()).expect("SHA-256 yields 32 bytes")
    }

    /// Returns the stored value: canonical bytes, then `hash`.
    pub(crate) fn encode_stored(&self, hash: &Digest) -> Vec<u8> {
        let mut out = self.canonical();
        out.extend_from_slice(&hash.0);
        out
    }

    /// Splits a stored value into the entry and the hash stored with it.
    pub fn decode_stored(raw: &[u8]) -> Result<(LedgerEntry, Digest), DecodeError> {
        let bad = || DecodeError { what: "ledger" };
        if raw.len() < 32 {
            return Err(bad());
        }
        let (body, hash) = raw.split_at(raw.len() - 32);
        let mut r = Reader::new(body, "ledger")?;
        let sequence = r.u64()?;
        let time = Timestamp(r.i64()?);
        let op = LedgerOp::from_code(r.u8()?).ok_or_else(bad)?;
        let principal = r.string()?;
        let bucket = r.string()?;
        let key = r.string()?;
        let version = match r.u8()? {
            0 => None,
            1 => Some(VersionId::from_u128(r.u128()?)),
            _ => return Err(bad()),
        };
        let sha256 = match r.u8()? {
            0 => None,
            1 => Some(r.digest()?),
            _ => return Err(bad()),
        };
        let detail = r.string()?;
        r.end()?;
        let entry = LedgerEntry { sequence, time, op, principal, bucket, key, version, sha256, detail };
        Ok((entry, Digest::from_slice(hash).ok_or_else(bad)?))
    }
}

/// The `Ledger` keyspace key of entry `sequence`.
pub(crate) fn ledger_key(sequence: u64) -> [u8; 8] {
    sequence.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sequence: u64) -> LedgerEntry {
        LedgerEntry {
            sequence,
            time: Timestamp(1_000),
            op: LedgerOp::VersionWritten,
            principal: "AKID".to_owned(),
            bucket: "b".to_owned(),
            key: "k\0x".to_owned(),
            version: Some(VersionId::from_parts(1, 2)),
            sha256: Some(Digest([3; 32])),
            detail: String::new(),
        }
    }

    #[test]
    fn stored_entries_round_trip_with_their_hash() {
        let e = entry(1);
        let hash = e.chain_hash(&GENESIS);
        assert_eq!(LedgerEntry::decode_stored(&e.encode_stored(&hash)), Ok((e, hash)));
    }

    #[test]
    fn the_chain_hash_commits_to_every_field_and_the_previous_hash() {
        let base = entry(1);
        let h = base.chain_hash(&GENESIS);
        assert_ne!(h, base.chain_hash(&Digest([1; 32])));
        let mut changed = base.clone();
        changed.key = "k\0y".to_owned();
        assert_ne!(h, changed.chain_hash(&GENESIS));
        let mut changed = base.clone();
        changed.sha256 = None;
        assert_ne!(h, changed.chain_hash(&GENESIS));
        let mut changed = base;
        changed.time = Timestamp(1_001);
        assert_ne!(h, changed.chain_hash(&GENESIS));
    }

    #[test]
    fn the_hash_is_sha256_of_previous_then_canonical_bytes() {
        let e = entry(1);
        let mut input = GENESIS.0.to_vec();
        input.extend_from_slice(&e.canonical());
        let expected = ring::digest::digest(&ring::digest::SHA256, &input);
        assert_eq!(e.chain_hash(&GENESIS).0, expected.as_ref());
    }

    #[test]
    fn every_operation_has_a_unique_code_name_and_kind() {
        let mut codes = std::collections::HashSet::new();
        for op in LedgerOp::ALL {
            assert!(codes.insert(op.code()));
            assert_eq!(LedgerOp::from_code(op.code()), Some(op));
            assert_eq!(LedgerOp::from_name(op.as_str()), Some(op));
            assert_eq!(AuditKind::from_name(op.kind().as_str()), Some(op.kind()));
        }
        assert_eq!(LedgerOp::from_code(0), None);
        assert_eq!(LedgerOp::from_code(LedgerOp::ALL.len() as u8 + 1), None);
    }
}
