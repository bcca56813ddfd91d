//! The on-disk record formats: bucket, principal, version and chunk records,
//! and the compliance clock's mark.
//!
//! Invariant: every value starts with a format byte; readers accept every
//! format ever written, writers emit only the newest. Integers are big-endian,
//! strings and byte strings are length-prefixed (u32). A record that fails to
//! decode is reported as corruption, never guessed at.

use std::collections::BTreeMap;

use wormbox_model::{Digest, Role, Timestamp, UserMetadata, VersionId, VersioningState};

use crate::retention::{DefaultRetention, LegalHold, Retention, RetentionMode, RetentionPeriod};

const FORMAT_V1: u8 = 1;
/// A version record with an S3 ETag: format 1's fields, then the ETag.
/// Records without one are still written in format 1, byte for byte as
/// before, so the ETag changes nothing for versions other front doors write.
const VERSION_WITH_ETAG: u8 = 2;

/// A record that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored {what} record is malformed")]
pub struct DecodeError {
    /// Which kind of record.
    pub what: &'static str,
}

pub(crate) struct Writer(Vec<u8>);

impl Writer {
    /// Room for a typical record (version, lock, ledger entry), so that
    /// encoding one on the write path does not grow the buffer step by step.
    pub(crate) fn new() -> Writer {
        Writer::with_capacity(256)
    }
    pub(crate) fn with_capacity(bytes: usize) -> Writer {
        let mut buffer = Vec::with_capacity(bytes.max(1));
        buffer.push(FORMAT_V1);
        Writer(buffer)
    }
    /// A writer for a record kind that has moved past format 1 (its own
    /// format byte first): the ledger entry.
    pub(crate) fn with_format(format: u8) -> Writer {
        let mut buffer = Vec::with_capacity(256);
        buffer.push(format);
        Writer(buffer)
    }
    pub(crate) fn u8(&mut self, v: u8) -> &mut Writer {
        self.0.push(v);
        self
    }
    pub(crate) fn u32(&mut self, v: u32) -> &mut Writer {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn u64(&mut self, v: u64) -> &mut Writer {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn i64(&mut self, v: i64) -> &mut Writer {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn u128(&mut self, v: u128) -> &mut Writer {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn raw(&mut self, v: &[u8]) -> &mut Writer {
        self.0.extend_from_slice(v);
        self
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) -> &mut Writer {
        // Lengths are bounded far below 4 GiB by validation (keys, metadata, names).
        self.u32(v.len() as u32).raw(v)
    }
    pub(crate) fn str(&mut self, v: &str) -> &mut Writer {
        self.bytes(v.as_bytes())
    }
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(raw: &'a [u8], what: &'static str) -> Result<Reader<'a>, DecodeError> {
        match raw.split_first() {
            Some((&FORMAT_V1, rest)) => Ok(Reader { rest, what }),
            _ => Err(DecodeError { what }),
        }
    }
    /// The format byte of a record kind with more than one format, and a
    /// reader of the rest; the caller picks the decoder by the format.
    pub(crate) fn with_format(raw: &'a [u8], what: &'static str) -> Result<(u8, Reader<'a>), DecodeError> {
        match raw.split_first() {
            Some((&format, rest)) => Ok((format, Reader { rest, what })),
            None => Err(DecodeError { what }),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError { what: self.what });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let what = self.what;
        self.take(N)?.try_into().map_err(|_| DecodeError { what })
    }
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    pub(crate) fn u128(&mut self) -> Result<u128, DecodeError> {
        Ok(u128::from_be_bytes(self.array()?))
    }
    pub(crate) fn digest(&mut self) -> Result<Digest, DecodeError> {
        Ok(Digest(self.array()?))
    }
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }
    pub(crate) fn string(&mut self) -> Result<String, DecodeError> {
        let what = self.what;
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| DecodeError { what })
    }
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }
    /// Whether nothing is left to read.
    pub(crate) fn at_end(&self) -> bool {
        self.rest.is_empty()
    }
    pub(crate) fn end(&self) -> Result<(), DecodeError> {
        if self.rest.is_empty() { Ok(()) } else { Err(DecodeError { what: self.what }) }
    }
}

/// A bucket as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BucketRecord {
    /// The access key id of the principal that created it.
    pub owner: String,
    /// Its versioning state.
    pub versioning: VersioningState,
    /// When it was created, by the compliance clock.
    pub created_at: Timestamp,
    /// Whether MFA Delete is on.
    pub mfa_delete: bool,
    /// Whether Object Lock is on (irreversible).
    pub object_lock: bool,
    /// Retention stamped into new versions that carry none.
    pub default_retention: Option<DefaultRetention>,
}

impl BucketRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let state = match self.versioning {
            VersioningState::Unversioned => 0,
            VersioningState::Enabled => 1,
            VersioningState::Suspended => 2,
        };
        let mut w = Writer::new();
        w.str(&self.owner).u8(state).i64(self.created_at.0).u8(u8::from(self.mfa_delete));
        w.u8(u8::from(self.object_lock));
        match self.default_retention {
            None => w.u8(0),
            Some(d) => {
                let (kind, amount) = match d.period {
                    RetentionPeriod::Days(n) => (1, n),
                    RetentionPeriod::Years(n) => (2, n),
                };
                w.u8(kind).u8(mode_code(d.mode)).u32(amount)
            }
        };
        w.finish()
    }

    pub(crate) fn decode(raw: &[u8]) -> Result<BucketRecord, DecodeError> {
        let mut r = Reader::new(raw, "bucket")?;
        let owner = r.string()?;
        let versioning = match r.u8()? {
            0 => VersioningState::Unversioned,
            1 => VersioningState::Enabled,
            2 => VersioningState::Suspended,
            _ => return Err(DecodeError { what: "bucket" }),
        };
        let created_at = Timestamp(r.i64()?);
        let mfa_delete = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(DecodeError { what: "bucket" }),
        };
        let object_lock = r.u8()? == 1;
        let default_retention = match r.u8()? {
            0 => None,
            kind @ (1 | 2) => {
                let mode = mode_from(r.u8()?).ok_or(DecodeError { what: "bucket" })?;
                let amount = r.u32()?;
                let period = if kind == 1 { RetentionPeriod::Days(amount) } else { RetentionPeriod::Years(amount) };
                Some(DefaultRetention { mode, period })
            }
            _ => return Err(DecodeError { what: "bucket" }),
        };
        r.end()?;
        Ok(BucketRecord { owner, versioning, created_at, mfa_delete, object_lock, default_retention })
    }
}

fn mode_code(mode: RetentionMode) -> u8 {
    match mode {
        RetentionMode::Governance => 1,
        RetentionMode::Compliance => 2,
    }
}

fn mode_from(code: u8) -> Option<RetentionMode> {
    match code {
        1 => Some(RetentionMode::Governance),
        2 => Some(RetentionMode::Compliance),
        _ => None,
    }
}

/// A version's Object Lock state, kept beside the (immutable) version record
/// and changed only by the writer under the rules of `retention`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockRecord {
    /// Retention, if any was ever set (it may have expired).
    pub retention: Option<Retention>,
    /// The legal holds in place, by case id.
    pub holds: Vec<LegalHold>,
}

impl LockRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self.retention {
            None => w.u8(0),
            Some(r) => w.u8(mode_code(r.mode)).i64(r.until.0),
        };
        w.u32(self.holds.len() as u32);
        for hold in &self.holds {
            w.str(&hold.case_id).str(&hold.placed_by).i64(hold.placed_at.0).str(&hold.note);
        }
        w.finish()
    }

    pub(crate) fn decode(raw: &[u8]) -> Result<LockRecord, DecodeError> {
        let bad = || DecodeError { what: "lock" };
        let mut r = Reader::new(raw, "lock")?;
        let retention = match r.u8()? {
            0 => None,
            code => Some(Retention { mode: mode_from(code).ok_or_else(bad)?, until: Timestamp(r.i64()?) }),
        };
        let n = r.u32()?;
        let mut holds = Vec::new();
        for _ in 0..n {
            holds.push(LegalHold {
                case_id: r.string()?,
                placed_by: r.string()?,
                placed_at: Timestamp(r.i64()?),
                note: r.string()?,
            });
        }
        r.end()?;
        Ok(LockRecord { retention, holds })
    }
}

/// A principal as stored: the secret only as a salted hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrincipalRecord {
    /// A human name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Random salt of the secret hash.
    pub salt: [u8; 16],
    /// HMAC-SHA-256 of the secret keyed by the salt.
    pub secret_hash: [u8; 32],
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// May override GOVERNANCE retention.
    pub bypass_governance: bool,
}

impl PrincipalRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.str(&self.name).str(self.role.as_str()).raw(&self.salt).raw(&self.secret_hash);
        w.i64(self.created_at.0);
        match self.revoked_at {
            Some(at) => w.u8(1).i64(at.0),
            None => w.u8(0),
        };
        w.u8(u8::from(self.bypass_governance));
        w.finish()
    }

    pub(crate) fn decode(raw: &[u8]) -> Result<PrincipalRecord, DecodeError> {
        let bad = || DecodeError { what: "principal" };
        let mut r = Reader::new(raw, "principal")?;
        let name = r.string()?;
        let role = Role::parse(&r.string()?).ok_or_else(bad)?;
        let salt = r.array()?;
        let secret_hash = r.array()?;
        let created_at = Timestamp(r.i64()?);
        let revoked_at = match r.u8()? {
            0 => None,
            1 => Some(Timestamp(r.i64()?)),
            _ => return Err(bad()),
        };
        let bypass_governance = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(bad()),
        };
        r.end()?;
        Ok(PrincipalRecord { name, role, salt, secret_hash, created_at, revoked_at, bypass_governance })
    }
}

/// Where a version's bytes are: `chunks` chunks under `upload` in `Chunks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DataRef {
    /// The upload id that keys the chunks.
    pub upload: u128,
    /// How many chunks there are.
    pub chunks: u32,
}

/// A version or delete marker as stored. Never rewritten once published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VersionRecord {
    /// The internal id; it orders the version even when it is shown as `null`.
    pub id: VersionId,
    /// Whether clients name this version `null`.
    pub is_null: bool,
    /// Whether this is a delete marker.
    pub is_delete_marker: bool,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the bytes.
    pub sha256: Digest,
    /// Content type given at upload.
    pub content_type: String,
    /// User metadata given at upload.
    pub user_metadata: UserMetadata,
    /// When it was written, by the compliance clock.
    pub created_at: Timestamp,
    /// The access key id of the writer.
    pub creator: String,
    /// Where the bytes are; `None` for delete markers.
    pub data: Option<DataRef>,
    /// The S3 ETag the S3 front door gave (`NewObject::etag`).
    pub etag: Option<String>,
}

impl VersionRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = if self.etag.is_some() { Writer::with_format(VERSION_WITH_ETAG) } else { Writer::new() };
        w.u128(self.id.as_u128());
        w.u8(u8::from(self.is_null) | (u8::from(self.is_delete_marker) << 1));
        w.u64(self.size).raw(&self.sha256.0).str(&self.content_type);
        w.u32(self.user_metadata.entries().len() as u32);
        for (name, value) in self.user_metadata.entries() {
            w.str(name).str(value);
        }
        w.i64(self.created_at.0).str(&self.creator);
        match self.data {
            Some(data) => w.u8(1).u128(data.upload).u32(data.chunks),
            None => w.u8(0),
        };
        if let Some(etag) = &self.etag {
            w.str(etag);
        }
        w.finish()
    }

    pub(crate) fn decode(raw: &[u8]) -> Result<VersionRecord, DecodeError> {
        let bad = || DecodeError { what: "version" };
        let (format, mut r) = Reader::with_format(raw, "version")?;
        if format != FORMAT_V1 && format != VERSION_WITH_ETAG {
            return Err(bad());
        }
        let id = VersionId::from_u128(r.u128()?);
        let flags = r.u8()?;
        let size = r.u64()?;
        let sha256 = r.digest()?;
        let content_type = r.string()?;
        let n_meta = r.u32()?;
        let mut entries = BTreeMap::new();
        for _ in 0..n_meta {
            let name = r.string()?;
            entries.insert(name, r.string()?);
        }
        let user_metadata = UserMetadata::stored(entries).map_err(|_| bad())?;
        let created_at = Timestamp(r.i64()?);
        let creator = r.string()?;
        let data = match r.u8()? {
            0 => None,
            1 => Some(DataRef { upload: r.u128()?, chunks: r.u32()? }),
            _ => return Err(bad()),
        };
        let etag = if format == VERSION_WITH_ETAG {
            let etag = r.string()?;
            // Stored only once checked; anything else is corruption.
            crate::check_etag(&etag).map_err(|_| bad())?;
            Some(etag)
        } else {
            None
        };
        r.end()?;
        Ok(VersionRecord {
            id,
            is_null: flags & 1 != 0,
            is_delete_marker: flags & 2 != 0,
            size,
            sha256,
            content_type,
            user_metadata,
            created_at,
            creator,
            data,
            etag,
        })
    }
}

/// Encodes a chunk: its own SHA-256, so a reader can refuse a corrupt chunk
/// before sending any of it, then the bytes.
pub(crate) fn encode_chunk(data: &[u8]) -> Vec<u8> {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    encode_chunk_with_digest(&Digest::from_slice(digest.as_ref()).expect("SHA-256 yields 32 bytes"), data)
}

/// Encodes a chunk whose SHA-256 the store computed from these same bytes:
/// an inline version is one chunk, so its digest is the version's, which
/// was computed before the command was queued (off the writer thread).
pub(crate) fn encode_chunk_with_digest(digest: &Digest, data: &[u8]) -> Vec<u8> {
    #[cfg(not(wormbox_bench_unhashed))]
    debug_assert_eq!(
        digest.0,
        ring::digest::digest(&ring::digest::SHA256, data).as_ref(),
        "a chunk's digest is of its own bytes"
    );
    let mut w = Writer::with_capacity(1 + digest.0.len() + data.len());
    w.raw(&digest.0).raw(data);
    w.finish()
}

/// Decodes a chunk and checks it against its own digest.
pub(crate) fn decode_chunk(raw: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut r = Reader::new(raw, "chunk")?;
    let expected = r.digest()?;
    let data = r.rest();
    let actual = ring::digest::digest(&ring::digest::SHA256, data);
    if actual.as_ref() != expected.0 {
        return Err(DecodeError { what: "chunk" });
    }
    Ok(data.to_vec())
}

/// The length of a chunk's bytes, from its framing alone (no hashing): what
/// the writer checks of a staged upload before publishing it.
pub(crate) fn chunk_len(raw: &[u8]) -> Result<usize, DecodeError> {
    let mut r = Reader::new(raw, "chunk")?;
    r.digest()?;
    Ok(r.rest().len())
}

/// The compliance clock's high-water mark and the last version-id sequence.
pub(crate) fn encode_clock(last: Timestamp, sequence: u64) -> Vec<u8> {
    Writer::new().i64(last.0).u64(sequence).finish()
}

pub(crate) fn decode_clock(raw: &[u8]) -> Result<(Timestamp, u64), DecodeError> {
    let mut r = Reader::new(raw, "clock")?;
    let res = (Timestamp(r.i64()?), r.u64()?);
    r.end()?;
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_records_round_trip() {
        let mut meta = BTreeMap::new();
        meta.insert("case".to_owned(), "42".to_owned());
        let record = VersionRecord {
            id: VersionId::from_parts(9, 1),
            is_null: true,
            is_delete_marker: false,
            size: 5,
            sha256: Digest([7; 32]),
            content_type: "text/plain".to_owned(),
            user_metadata: UserMetadata::new(meta).unwrap(),
            created_at: Timestamp(99),
            creator: "AKID".to_owned(),
            data: Some(DataRef { upload: 3, chunks: 1 }),
            etag: None,
        };
        assert_eq!(VersionRecord::decode(&record.encode()), Ok(record.clone()));
        let tagged = VersionRecord { etag: Some("0e8c7d3b0d4a1b6c5e2f9a8b7c6d5e4f-2".to_owned()), ..record };
        let raw = tagged.encode();
        assert_eq!(raw[0], VERSION_WITH_ETAG);
        assert_eq!(VersionRecord::decode(&raw), Ok(tagged));
    }

    /// A version record without an ETag is written exactly as before the
    /// ETag existed (format 1), so archives and their attestations are
    /// unchanged; one with an ETag is format 1's bytes, then the ETag.
    #[test]
    fn a_version_record_without_an_etag_keeps_format_1_byte_for_byte() {
        let record = VersionRecord {
            id: VersionId::from_u128(0x0102),
            is_null: false,
            is_delete_marker: false,
            size: 5,
            sha256: Digest([7; 32]),
            content_type: "t".to_owned(),
            user_metadata: UserMetadata::default(),
            created_at: Timestamp(99),
            creator: "AK".to_owned(),
            data: Some(DataRef { upload: 3, chunks: 1 }),
            etag: None,
        };
        let mut format1 = vec![1u8];
        format1.extend_from_slice(&0x0102u128.to_be_bytes());
        format1.push(0);
        format1.extend_from_slice(&5u64.to_be_bytes());
        format1.extend_from_slice(&[7; 32]);
        format1.extend_from_slice(&[0, 0, 0, 1, b't', 0, 0, 0, 0]);
        format1.extend_from_slice(&99i64.to_be_bytes());
        format1.extend_from_slice(&[0, 0, 0, 2, b'A', b'K', 1]);
        format1.extend_from_slice(&3u128.to_be_bytes());
        format1.extend_from_slice(&1u32.to_be_bytes());
        assert_eq!(record.encode(), format1);
        assert_eq!(VersionRecord::decode(&format1), Ok(record.clone()));

        let tagged = VersionRecord { etag: Some("ab-2".to_owned()), ..record };
        let mut format2 = format1.clone();
        format2[0] = VERSION_WITH_ETAG;
        format2.extend_from_slice(&[0, 0, 0, 4, b'a', b'b', b'-', b'2']);
        assert_eq!(tagged.encode(), format2);

        // Format 1 with trailing bytes, format 2 without its ETag or with a
        // malformed one, and an unknown format are corruption.
        let mut trailing = format1.clone();
        trailing.push(0);
        assert!(VersionRecord::decode(&trailing).is_err());
        let mut missing = format1.clone();
        missing[0] = VERSION_WITH_ETAG;
        assert!(VersionRecord::decode(&missing).is_err());
        let mut quoted = format1.clone();
        quoted[0] = VERSION_WITH_ETAG;
        quoted.extend_from_slice(&[0, 0, 0, 4, b'"', b'a', b'b', b'"']);
        assert!(VersionRecord::decode(&quoted).is_err());
        let mut future = format2;
        future[0] = 3;
        assert!(VersionRecord::decode(&future).is_err());
    }

    #[test]
    fn truncated_or_unknown_format_records_are_rejected() {
        let record = BucketRecord {
            owner: "o".to_owned(),
            versioning: VersioningState::Suspended,
            created_at: Timestamp(1),
            mfa_delete: true,
            object_lock: true,
            default_retention: Some(DefaultRetention {
                mode: RetentionMode::Compliance,
                period: RetentionPeriod::Years(7),
            }),
        };
        let raw = record.encode();
        assert_eq!(BucketRecord::decode(&raw), Ok(record));
        assert!(BucketRecord::decode(&raw[..raw.len() - 1]).is_err());
        let mut future = raw.clone();
        future[0] = 99;
        assert!(BucketRecord::decode(&future).is_err());
        let mut trailing = raw;
        trailing.push(0);
        assert!(BucketRecord::decode(&trailing).is_err());
    }

    #[test]
    fn chunks_detect_a_flipped_bit() {
        let mut raw = encode_chunk(b"hello");
        assert_eq!(decode_chunk(&raw).unwrap(), b"hello");
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert!(decode_chunk(&raw).is_err());
    }
}
