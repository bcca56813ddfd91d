//! The hash-chained ledger: one entry per state change, written in the same
//! atomic batch as the change.
//!
//! Canonical bytes of an entry (all integers big-endian, `str` is a u32 length
//! then UTF-8 bytes), format 2, the one written:
//!
//! ```text
//! format u8 = 2 | sequence u64 | time i64 (compliance-clock µs) | operation u8
//! | principal str | bucket str | key str
//! | has_version u8 (0|1) [version id u128] | has_sha256 u8 (0|1) [sha256 32 bytes]
//! | has_record_sha256 u8 (0|1) [32 bytes] | has_lock_sha256 u8 (0|1) [32 bytes]
//! | detail str
//! ```
//!
//! Format 1 (written before attestations were typed) is the same without the
//! two attestation fields; its writer appended them to `detail` as text
//! (`; lock-sha256 HEX; record-sha256 HEX`, last), after user text such as a
//! case id. Every format ever written is still decoded, into the same
//! `LedgerEntry`, which remembers its format so that `canonical` gives back
//! exactly the bytes that were stored and hashed.
//!
//! `h_n = SHA-256(h_{n-1} || canonical bytes of entry n)`, with `h_0` 32 zero
//! bytes and the first entry numbered 1. The stored value is the canonical bytes
//! followed by `h_n`.
//!
//! Invariant: entries are only appended; sequence numbers have no gaps. What
//! an entry attests (a record's digest) is never read out of user text: a
//! typed field in format 2, and in format 1 only the writer's token at the
//! very end of `detail`.

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
    /// The system clock jumped forward: the compliance clock is behind it and
    /// catches up at its bounded rate (not followed at once).
    ClockHeldBack,
    /// An admin, with an MFA code, accepted the system clock's time.
    ClockAccepted,
    /// The compliance clock caught up, on its own, with a reported jump.
    ClockCaughtUp,
    /// An integrity check (scrub) found everything as the ledger says.
    IntegrityVerified,
    /// An integrity check found a divergence; the detail names the first.
    IntegrityFailed,
    /// A version's local bytes were released after its replica copy was
    /// verified: its bytes live on the replica named in the detail, and every
    /// read checks them against the entry's SHA-256.
    BytesReleased,
    /// The archive was rebuilt from its replica (`wormboxd restore
    /// --from-replica`): a version's records were written again from the
    /// ledger and the replica's copy, and this entry attests them. Its
    /// SHA-256 is the one the version was written with.
    VersionRestored,
    /// The archive was rebuilt from its replica; the detail says from where
    /// and through which signed checkpoint.
    ArchiveRestored,
    /// A principal was given an S3 secret (the entry's key is its access
    /// key; the secret, sealed or not, is never in the entry).
    S3KeyCreated,
    /// A principal's S3 secret was revoked.
    S3KeyRevoked,
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
            LedgerOp::ClockCaughtUp => 24,
            LedgerOp::BytesReleased => 25,
            LedgerOp::VersionRestored => 26,
            LedgerOp::ArchiveRestored => 27,
            LedgerOp::S3KeyCreated => 28,
            LedgerOp::S3KeyRevoked => 29,
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
            24 => LedgerOp::ClockCaughtUp,
            25 => LedgerOp::BytesReleased,
            26 => LedgerOp::VersionRestored,
            27 => LedgerOp::ArchiveRestored,
            28 => LedgerOp::S3KeyCreated,
            29 => LedgerOp::S3KeyRevoked,
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
            LedgerOp::ClockCaughtUp => "clock-caught-up",
            LedgerOp::BytesReleased => "bytes-released",
            LedgerOp::VersionRestored => "version-restored",
            LedgerOp::ArchiveRestored => "archive-restored",
            LedgerOp::S3KeyCreated => "s3-key-created",
            LedgerOp::S3KeyRevoked => "s3-key-revoked",
        }
    }

    /// Every operation, in code order.
    pub const ALL: [LedgerOp; 29] = [
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
        LedgerOp::ClockCaughtUp,
        LedgerOp::BytesReleased,
        LedgerOp::VersionRestored,
        LedgerOp::ArchiveRestored,
        LedgerOp::S3KeyCreated,
        LedgerOp::S3KeyRevoked,
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
            | LedgerOp::S3KeyCreated
            | LedgerOp::S3KeyRevoked
            | LedgerOp::ClockHeldBack
            | LedgerOp::ClockAccepted
            | LedgerOp::ClockCaughtUp
            | LedgerOp::ArchiveRestored => AuditKind::Configuration,
            LedgerOp::VersionRestored => AuditKind::Writes,
            LedgerOp::MfaEnrolled
            | LedgerOp::MfaActivated
            | LedgerOp::MfaResynced
            | LedgerOp::MfaAccepted
            | LedgerOp::MfaDeactivated => AuditKind::Mfa,
            LedgerOp::MfaRefused | LedgerOp::Refused => AuditKind::Refused,
            LedgerOp::IntegrityVerified | LedgerOp::IntegrityFailed | LedgerOp::BytesReleased => AuditKind::Integrity,
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
    /// Integrity checks, and local bytes released once their replica copy
    /// was verified.
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

/// The formats a ledger entry has been stored in: the first byte of its
/// canonical bytes. New formats get new codes; none is ever dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryFormat {
    /// Before typed attestations: record and lock digests were text at the
    /// end of `detail`.
    V1,
    /// Record and lock digests are typed fields.
    V2,
}

impl EntryFormat {
    /// The format this build writes.
    pub const CURRENT: EntryFormat = EntryFormat::V2;

    /// The stored format byte.
    pub fn code(self) -> u8 {
        match self {
            EntryFormat::V1 => 1,
            EntryFormat::V2 => 2,
        }
    }

    /// The format stored as `code`.
    pub fn from_code(code: u8) -> Option<EntryFormat> {
        match code {
            1 => Some(EntryFormat::V1),
            2 => Some(EntryFormat::V2),
            _ => None,
        }
    }
}

/// One ledger entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The format it is (or will be) stored in; `EntryFormat::CURRENT` for
    /// every entry written now.
    pub format: EntryFormat,
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
    /// The SHA-256 of the version record (metadata) this entry wrote. Always
    /// `None` in a format-1 entry (see `attestations`).
    pub record_sha256: Option<Digest>,
    /// The SHA-256 of the lock record (retention, holds) this entry wrote;
    /// `None` when it wrote none. Always `None` in a format-1 entry.
    pub lock_sha256: Option<Digest>,
    /// Free text (never secrets, never evidence): for example the new
    /// versioning state or a hold's case id.
    pub detail: String,
}

/// What an entry attests about the records it wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attestations {
    /// The SHA-256 of the stored version record.
    pub record_sha256: Option<Digest>,
    /// The SHA-256 of the stored lock record.
    pub lock_sha256: Option<Digest>,
}

/// A format-1 entry whose detail names an attestation that is not the
/// writer's well-formed token at its very end: never taken as attesting anything.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("its detail names `{token}` but does not end with a well-formed one (64 lowercase hex digits)")]
pub struct MalformedAttestation {
    /// The token named.
    pub token: &'static str,
}

/// Format 1's text attestations, as its writer appended them.
const LEGACY_RECORD: &str = "; record-sha256 ";
const LEGACY_LOCK: &str = "; lock-sha256 ";

/// Splits `token` and exactly 64 lowercase hex digits off the very end of `text`.
fn strip_attestation<'a>(text: &'a str, token: &str) -> Option<(&'a str, Digest)> {
    let cut = text.len().checked_sub(token.len() + 64)?;
    let (rest, tail) = text.split_at_checked(cut)?;
    let digits = tail.strip_prefix(token)?;
    if !digits.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let bytes = hex::decode(digits).ok()?;
    Some((rest, Digest::from_slice(&bytes)?))
}

impl LedgerEntry {
    /// Returns the canonical bytes that the chain hashes, in the entry's format.
    pub fn canonical(&self) -> Vec<u8> {
        let mut w = Writer::with_format(self.format.code());
        w.u64(self.sequence).i64(self.time.0).u8(self.op.code());
        w.str(&self.principal).str(&self.bucket).str(&self.key);
        match self.version {
            Some(id) => w.u8(1).u128(id.as_u128()),
            None => w.u8(0),
        };
        let mut digest = |d: Option<Digest>| {
            match d {
                Some(digest) => w.u8(1).raw(&digest.0),
                None => w.u8(0),
            };
        };
        digest(self.sha256);
        if self.format >= EntryFormat::V2 {
            digest(self.record_sha256);
            digest(self.lock_sha256);
        }
        w.str(&self.detail);
        w.finish()
    }

    /// Returns `h_n` given `h_{n-1}`.
    pub fn chain_hash(&self, previous: &Digest) -> Digest {
        chain_hash_over(previous, &self.canonical())
    }

    /// Returns the stored value: canonical bytes, then `hash`.
    pub fn encode_stored(&self, hash: &Digest) -> Vec<u8> {
        let mut out = self.canonical();
        out.extend_from_slice(&hash.0);
        out
    }

    /// Splits a stored value into the entry and the hash stored with it.
    /// Every format ever written decodes (the migration chain: each older
    /// format into the current struct, its format kept).
    pub fn decode_stored(raw: &[u8]) -> Result<(LedgerEntry, Digest), DecodeError> {
        let (body, hash) = split_stored(raw).ok_or(DecodeError { what: "ledger" })?;
        Ok((LedgerEntry::decode_canonical(body)?, hash))
    }

    /// Decodes an entry from its canonical bytes alone: what a Merkle leaf
    /// of the ledger's tree covers (`merkle.rs`), and a proof carries.
    pub fn decode_canonical(body: &[u8]) -> Result<LedgerEntry, DecodeError> {
        let bad = || DecodeError { what: "ledger" };
        let (code, mut r) = Reader::with_format(body, "ledger")?;
        let format = EntryFormat::from_code(code).ok_or_else(bad)?;
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
        let mut digest = || match r.u8()? {
            0 => Ok(None),
            1 => Ok(Some(r.digest()?)),
            _ => Err(bad()),
        };
        let sha256 = digest()?;
        let (record_sha256, lock_sha256) = match format {
            EntryFormat::V1 => (None, None),
            EntryFormat::V2 => (digest()?, digest()?),
        };
        let detail = r.string()?;
        r.end()?;
        let entry = LedgerEntry {
            format,
            sequence,
            time,
            op,
            principal,
            bucket,
            key,
            version,
            sha256,
            record_sha256,
            lock_sha256,
            detail,
        };
        Ok(entry)
    }

    /// What this entry attests: its typed fields; for a format-1 entry, the
    /// writer's text tokens, read strictly from the very end of `detail`
    /// (user text, such as a case id, comes before them and is never read).
    /// A format-1 entry of an operation that attests, with no token at all,
    /// predates attestation and attests nothing; one whose detail names a
    /// token that is not well-formed where the writer put it is malformed.
    pub fn attestations(&self) -> Result<Attestations, MalformedAttestation> {
        if self.format >= EntryFormat::V2 {
            return Ok(Attestations { record_sha256: self.record_sha256, lock_sha256: self.lock_sha256 });
        }
        let mut found = Attestations::default();
        let mut rest = self.detail.as_str();
        let lock_after = match self.op {
            LedgerOp::VersionWritten | LedgerOp::MarkerWritten => {
                match strip_attestation(rest, LEGACY_RECORD) {
                    Some((before, digest)) => {
                        found.record_sha256 = Some(digest);
                        rest = before;
                    }
                    None if rest.contains("record-sha256") => {
                        return Err(MalformedAttestation { token: "record-sha256" });
                    }
                    // Before attestation: its lock record cannot be judged either.
                    None => return Ok(found),
                }
                self.op == LedgerOp::VersionWritten
            }
            LedgerOp::RetentionChanged | LedgerOp::HoldPlaced | LedgerOp::HoldReleased => true,
            _ => false,
        };
        if lock_after {
            match strip_attestation(rest, LEGACY_LOCK) {
                Some((_, digest)) => found.lock_sha256 = Some(digest),
                None if rest.contains("lock-sha256") => {
                    return Err(MalformedAttestation { token: "lock-sha256" });
                }
                None => {}
            }
        }
        Ok(found)
    }
}

/// Follows the hash chain one entry at a time from genesis: the one walker
/// behind integrity verification (`evidence`), `Store::verify_ledger` and the
/// audit report's offline check of exported records.
#[derive(Clone, Debug)]
pub struct ChainWalker {
    next: u64,
    head: Digest,
    /// The entry before `next` could not be read: what the next one chains
    /// from is unknown, so it is not rehashed.
    head_known: bool,
}

/// What chaining one entry found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Rehashed; the stored hash matches.
    Intact,
    /// Rehashed; the stored hash differs: the entry or its hash was altered.
    Altered,
    /// Not rehashed: trusted, or what it chains from is unknown.
    Unchecked,
}

/// Where a strict walk (`ChainWalker::follow`) stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainBreak {
    /// The entry found is not the one expected next (one is missing, or out of place).
    Missing {
        /// The sequence expected.
        expected: u64,
        /// The sequence found instead.
        found: u64,
    },
    /// Entry `sequence` does not hash to its stored chain hash.
    Altered {
        /// The altered entry.
        sequence: u64,
    },
}

impl Default for ChainWalker {
    fn default() -> Self {
        ChainWalker { next: 1, head: GENESIS, head_known: true }
    }
}

impl ChainWalker {
    /// A walk from genesis.
    pub fn new() -> ChainWalker {
        ChainWalker::default()
    }

    /// The sequence expected next.
    pub fn expected(&self) -> u64 {
        self.next
    }

    /// The last entry walked (0 for none) and the hash after it.
    pub fn walked(&self) -> (u64, Digest) {
        (self.next - 1, self.head)
    }

    /// Whether the hash after the last entry walked is the stored one of a
    /// readable entry (false after an unreadable or missing one).
    pub fn head_known(&self) -> bool {
        self.head_known
    }

    /// Goes on at `sequence` (a walk that reads entries one by one).
    pub fn seek(&mut self, sequence: u64) {
        self.next = sequence;
    }

    /// The entry before the next one could not be read: the next is not rehashed.
    pub fn lose_head(&mut self) {
        self.head_known = false;
    }

    /// An entry is stored under `at`: moves on past it, and returns the
    /// sequence that was expected when `at` is not it.
    pub fn arrive(&mut self, at: u64) -> Option<u64> {
        let expected = self.next;
        self.next = at + 1;
        (at != expected).then_some(expected)
    }

    /// Chains `entry`, stored with hash `stored`, after the last one, rehashing
    /// it when `rehash` and what it chains from is known. Carries on from the
    /// stored hash, so that each altered entry is named once, not every entry
    /// after it.
    pub fn link(&mut self, entry: &LedgerEntry, stored: &Digest, rehash: bool) -> Link {
        let chained = std::mem::replace(&mut self.head_known, true);
        let link = match rehash && chained {
            true if entry.chain_hash(&self.head) == *stored => Link::Intact,
            true => Link::Altered,
            false => Link::Unchecked,
        };
        self.head = *stored;
        link
    }

    /// `arrive` and `link` for a walk that stops at the first break: `entry`,
    /// stored under `at`, must be the one expected next, name itself so, and
    /// hash to `stored`.
    pub fn follow(&mut self, at: u64, entry: &LedgerEntry, stored: &Digest) -> Result<(), ChainBreak> {
        let expected = self.next;
        if let Some(expected) = self.arrive(at) {
            return Err(ChainBreak::Missing { expected, found: at });
        }
        if entry.sequence != expected {
            return Err(ChainBreak::Missing { expected, found: entry.sequence });
        }
        match self.link(entry, stored, true) {
            Link::Altered => Err(ChainBreak::Altered { sequence: expected }),
            Link::Intact | Link::Unchecked => Ok(()),
        }
    }
}

/// A stored entry's canonical bytes (what the chain hash and the Merkle
/// leaf cover) and its chain hash; `None` when it is too short to hold one.
pub(crate) fn split_stored(raw: &[u8]) -> Option<(&[u8], Digest)> {
    let (canonical, hash) = raw.split_at(raw.len().checked_sub(32)?);
    Some((canonical, Digest::from_slice(hash).expect("32 bytes")))
}

/// `h_n` from `h_{n-1}` and entry `n`'s canonical bytes.
pub(crate) fn chain_hash_over(previous: &Digest, canonical: &[u8]) -> Digest {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&previous.0);
    ctx.update(canonical);
    Digest::from_slice(ctx.finish().as_ref()).expect("SHA-256 yields 32 bytes")
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
            format: EntryFormat::CURRENT,
            sequence,
            time: Timestamp(1_000),
            op: LedgerOp::VersionWritten,
            principal: "AKID".to_owned(),
            bucket: "b".to_owned(),
            key: "k\0x".to_owned(),
            version: Some(VersionId::from_parts(1, 2)),
            sha256: Some(Digest([3; 32])),
            record_sha256: Some(Digest([4; 32])),
            lock_sha256: Some(Digest([5; 32])),
            detail: String::new(),
        }
    }

    /// A format-1 entry byte by byte, as the build before typed attestations
    /// stored it (not through `Writer`, so that a change to the encoder
    /// cannot change what this test expects).
    fn format1_stored(op: LedgerOp, detail: &str, previous: &Digest) -> (Vec<u8>, Digest) {
        let mut body = vec![1u8];
        body.extend_from_slice(&9u64.to_be_bytes());
        body.extend_from_slice(&1_000i64.to_be_bytes());
        body.push(op.code());
        for text in ["WBOFFICER0000000000", "vault", "a"] {
            body.extend_from_slice(&(text.len() as u32).to_be_bytes());
            body.extend_from_slice(text.as_bytes());
        }
        body.push(1);
        body.extend_from_slice(&7u128.to_be_bytes());
        body.push(0);
        body.extend_from_slice(&(detail.len() as u32).to_be_bytes());
        body.extend_from_slice(detail.as_bytes());
        let mut input = previous.0.to_vec();
        input.extend_from_slice(&body);
        let hash = Digest::from_slice(ring::digest::digest(&ring::digest::SHA256, &input).as_ref()).unwrap();
        let mut stored = body;
        stored.extend_from_slice(&hash.0);
        (stored, hash)
    }

    #[test]
    fn stored_entries_round_trip_with_their_hash() {
        let e = entry(1);
        let hash = e.chain_hash(&GENESIS);
        assert_eq!(LedgerEntry::decode_stored(&e.encode_stored(&hash)), Ok((e, hash)));
    }

    #[test]
    fn a_format1_entry_still_decodes_hashes_as_stored_and_chains_into_format2() {
        let real = "0a".repeat(32);
        let forged = "0b".repeat(32);
        let detail = format!("case SEC; lock-sha256 {forged}; lock-sha256 {real}");
        let previous = Digest([9; 32]);
        let (stored, hash) = format1_stored(LedgerOp::HoldPlaced, &detail, &previous);
        let (old, stored_hash) = LedgerEntry::decode_stored(&stored).unwrap();
        assert_eq!(stored_hash, hash);
        assert_eq!(old.format, EntryFormat::V1);
        assert_eq!(
            (old.op, old.detail.as_str(), old.version),
            (LedgerOp::HoldPlaced, detail.as_str(), Some(VersionId::from_u128(7)))
        );
        // Hashed over what was stored, byte for byte.
        assert_eq!(old.encode_stored(&hash), stored);
        assert_eq!(old.chain_hash(&previous), hash);
        // Only the writer's token at the very end attests; the case id's copy is text.
        let attested = old.attestations().unwrap();
        assert_eq!(attested.lock_sha256, Some(Digest([0x0a; 32])));
        assert_eq!(attested.record_sha256, None);
        // The next entry, written now, chains from it in format 2.
        let mut next = entry(10);
        next.detail = format!("case X; lock-sha256 {forged}");
        let next_hash = next.chain_hash(&hash);
        let raw = next.encode_stored(&next_hash);
        assert_eq!(raw[0], 2);
        let (back, back_hash) = LedgerEntry::decode_stored(&raw).unwrap();
        assert_eq!((back.clone(), back_hash), (next, next_hash));
        assert_eq!(back.attestations().unwrap().lock_sha256, Some(Digest([5; 32])), "format 2 never reads detail");
    }

    #[test]
    fn format1_text_attestations_are_read_strictly() {
        let digest = "0c".repeat(32);
        let attest = |op, detail: String| {
            let (stored, _) = format1_stored(op, &detail, &GENESIS);
            LedgerEntry::decode_stored(&stored).unwrap().0.attestations()
        };
        let d = Some(Digest([0x0c; 32]));
        let both =
            attest(LedgerOp::VersionWritten, format!("size=3; hold A; lock-sha256 {digest}; record-sha256 {digest}"));
        assert_eq!(both, Ok(Attestations { record_sha256: d, lock_sha256: d }));
        let record_only = attest(LedgerOp::MarkerWritten, format!("; record-sha256 {digest}"));
        assert_eq!(record_only, Ok(Attestations { record_sha256: d, lock_sha256: None }));
        // Written before attestation existed: attests nothing.
        assert_eq!(attest(LedgerOp::HoldPlaced, "case SEC".to_owned()), Ok(Attestations::default()));
        assert_eq!(attest(LedgerOp::VersionWritten, "size=3".to_owned()), Ok(Attestations::default()));
        // Anything else that names a token is malformed, never "attests nothing".
        for (op, detail) in [
            (LedgerOp::HoldPlaced, format!("case SEC; lock-sha256 {}", "z".repeat(64))),
            (LedgerOp::HoldPlaced, format!("case SEC; lock-sha256 {}", digest.to_uppercase())),
            (LedgerOp::HoldPlaced, format!("case SEC; lock-sha256 {digest}0")),
            (LedgerOp::HoldPlaced, format!("case SEC; lock-sha256 {digest} ")),
            (LedgerOp::RetentionChanged, format!("none -> none; lock-sha256 {}", &digest[..63])),
            (LedgerOp::VersionWritten, format!("size=3; record-sha256 {digest}x")),
            (LedgerOp::VersionWritten, format!("size=3; lock-sha256 zz; record-sha256 {digest}")),
        ] {
            assert!(attest(op, detail.clone()).is_err(), "{detail}");
        }
    }

    #[test]
    fn an_unknown_entry_format_does_not_decode() {
        let e = entry(1);
        let mut raw = e.encode_stored(&e.chain_hash(&GENESIS));
        raw[0] = 3;
        assert!(LedgerEntry::decode_stored(&raw).is_err());
        raw[0] = 0;
        assert!(LedgerEntry::decode_stored(&raw).is_err());
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
        let mut changed = base.clone();
        changed.lock_sha256 = Some(Digest([6; 32]));
        assert_ne!(h, changed.chain_hash(&GENESIS));
        let mut changed = base.clone();
        changed.record_sha256 = None;
        assert_ne!(h, changed.chain_hash(&GENESIS));
        let mut changed = base.clone();
        changed.format = EntryFormat::V1;
        changed.record_sha256 = None;
        changed.lock_sha256 = None;
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
        let newest = LedgerOp::ALL.iter().map(|op| op.code()).max().unwrap_or(0);
        assert_eq!(LedgerOp::from_code(newest + 1), None);
    }
}
