//! Evidence: signed checkpoints of the ledger, and the integrity check that
//! recomputes everything the ledger attests.
//!
//! A checkpoint signs `(sequence, head hash, compliance-clock time)` with the
//! appliance's Ed25519 key; the signed message is
//! `CHECKPOINT_CONTEXT | sequence u64 | head 32 bytes | time i64` (big-endian).
//!
//! Every entry that writes a version record or a lock record (retention and
//! holds) carries the SHA-256 of the stored record bytes in its detail
//! (`; record-sha256 HEX`, `; lock-sha256 HEX`), so the integrity check can
//! tell an edited record from an edited ledger from edited bytes.
//!
//! Invariant: verification only reads. It works over any `Backend`, so the
//! same code checks a running store and a stopped appliance's copy, and it
//! never trusts a stored value it has not recomputed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use wormbox_model::{Digest, Timestamp, VersionId};

use crate::backend::{Backend, Keyspace};
use crate::codec::{self, Reader, VersionRecord};
use crate::ledger::{self, GENESIS, LedgerEntry, LedgerOp};
use crate::{DecodeError, StoreError, external_id};

/// Domain separation: a checkpoint signature cannot be replayed as any other
/// signed message.
pub const CHECKPOINT_CONTEXT: &[u8] = b"wormbox checkpoint v1\n";

/// The detail token that attests a version record's bytes.
pub(crate) const RECORD_TOKEN: &str = "; record-sha256 ";
/// The detail token that attests a lock record's bytes (absent: no lock record).
pub(crate) const LOCK_TOKEN: &str = "; lock-sha256 ";

/// Most divergences a report lists; the count goes on.
const MAX_LISTED: usize = 100;

/// What signs checkpoints: the appliance's Ed25519 key.
pub trait Signer: Send + Sync + fmt::Debug {
    /// The raw 32-byte Ed25519 public key.
    fn public_key(&self) -> &[u8];
    /// Signs `message`.
    fn sign(&self, message: &[u8]) -> Vec<u8>;
}

/// An Ed25519 key pair held in memory (ring), loaded from PKCS#8.
pub struct Ed25519Signer {
    pair: ring::signature::Ed25519KeyPair,
}

impl fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ed25519Signer({})", key_id(self.public_key()))
    }
}

impl Ed25519Signer {
    /// A new random key pair and its PKCS#8 document (the secret to keep).
    pub fn generate() -> Result<(Ed25519Signer, Vec<u8>), StoreError> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| StoreError::DataLoss { what: "no randomness for a signing key".to_owned() })?;
        let signer = Ed25519Signer::from_pkcs8(pkcs8.as_ref())?;
        Ok((signer, pkcs8.as_ref().to_vec()))
    }

    /// Loads a key pair from its PKCS#8 document.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Ed25519Signer, StoreError> {
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|_| StoreError::InvalidArgument("the signing key is not an Ed25519 PKCS#8 document".to_owned()))?;
        Ok(Ed25519Signer { pair })
    }
}

impl Signer for Ed25519Signer {
    fn public_key(&self) -> &[u8] {
        use ring::signature::KeyPair;
        self.pair.public_key().as_ref()
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

/// A signed statement that the ledger had `head` at `sequence` at `time`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last ledger entry covered (0 for an empty ledger).
    pub sequence: u64,
    /// `h_sequence`.
    pub head: Digest,
    /// Compliance-clock time of signing.
    pub time: Timestamp,
    /// Ed25519 signature of `message()`.
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// The bytes the signature covers.
    pub fn message(sequence: u64, head: &Digest, time: Timestamp) -> Vec<u8> {
        let mut out = CHECKPOINT_CONTEXT.to_vec();
        out.extend_from_slice(&sequence.to_be_bytes());
        out.extend_from_slice(&head.0);
        out.extend_from_slice(&time.0.to_be_bytes());
        out
    }

    /// Whether the signature is `public_key`'s over this checkpoint.
    pub fn verify(&self, public_key: &[u8]) -> bool {
        let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key);
        key.verify(&Checkpoint::message(self.sequence, &self.head, self.time), &self.signature).is_ok()
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        codec::Writer::new().u64(self.sequence).raw(&self.head.0).i64(self.time.0).bytes(&self.signature).finish()
    }

    pub(crate) fn decode(raw: &[u8]) -> Result<Checkpoint, DecodeError> {
        let mut r = Reader::new(raw, "checkpoint")?;
        let sequence = r.u64()?;
        let head = r.digest()?;
        let time = Timestamp(r.i64()?);
        let signature = r.bytes()?.to_vec();
        r.end()?;
        Ok(Checkpoint { sequence, head, time, signature })
    }
}

/// A short, stable name of a public key: the first 8 bytes of its SHA-256, in hex.
pub fn key_id(public_key: &[u8]) -> String {
    hex_digest(public_key)[..16].to_owned()
}

/// The `Checkpoints` keyspace key of a checkpoint at `sequence`.
pub(crate) fn checkpoint_key(sequence: u64) -> [u8; 8] {
    sequence.to_be_bytes()
}

pub(crate) fn sha256(data: &[u8]) -> Digest {
    Digest::from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref()).expect("SHA-256 yields 32 bytes")
}

fn hex_digest(data: &[u8]) -> String {
    sha256(data).to_hex()
}

/// Appends the attestation of a stored record's bytes to a ledger detail.
pub(crate) fn attest(detail: &mut String, token: &str, stored: &[u8]) {
    detail.push_str(token);
    detail.push_str(&hex_digest(stored));
}

fn attested(detail: &str, token: &str) -> Option<Digest> {
    let start = detail.find(token)? + token.len();
    let text = detail.get(start..start + 64)?;
    let bytes = hex::decode(text).ok()?;
    Digest::from_slice(&bytes)
}

/// How to verify.
#[derive(Default)]
pub struct VerifyOptions<'a> {
    /// The appliance's public key; without it signatures are counted as unchecked.
    pub public_key: Option<Vec<u8>>,
    /// Trust the chain up to this stored checkpoint (after checking its
    /// signature and that the stored hash there matches it) and recompute from it.
    pub from_checkpoint: Option<u64>,
    /// Checkpoints held outside the appliance (an auditor's copy): checked like stored ones.
    pub extra_checkpoints: Vec<Checkpoint>,
    /// Called with the total of version bytes read so far; a scrub sleeps in
    /// it to hold its rate, a CLI draws progress.
    pub pace: Option<&'a mut dyn FnMut(u64)>,
}

impl fmt::Debug for VerifyOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("from_checkpoint", &self.from_checkpoint)
            .field("extra_checkpoints", &self.extra_checkpoints.len())
            .finish_non_exhaustive()
    }
}

/// One thing that is not as the ledger says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The ledger entry concerned, when there is one.
    pub sequence: Option<u64>,
    /// What differs, in words.
    pub what: String,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sequence {
            Some(n) => write!(f, "ledger entry {n}: {}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

/// What an integrity check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntegrityReport {
    /// Ledger entries read.
    pub ledger_entries: u64,
    /// Entries whose chain hash was recomputed.
    pub entries_hashed: u64,
    /// The last entry's hash as recomputed.
    pub head: Digest,
    /// Checkpoints whose signature and head were checked.
    pub checkpoints_checked: u64,
    /// Checkpoints not checked for want of a public key.
    pub checkpoints_unchecked: u64,
    /// Versions (not markers) whose bytes were re-read and hashed.
    pub versions_checked: u64,
    /// Delete markers checked against the ledger.
    pub markers_checked: u64,
    /// Version bytes re-read.
    pub bytes_checked: u64,
    /// Records written before attestation existed (bytes still checked).
    pub unattested: u64,
    /// The first divergences found, in the order found (at most 100).
    pub divergences: Vec<Divergence>,
    /// How many divergences there are in all.
    pub divergence_count: u64,
}

impl Default for IntegrityReport {
    fn default() -> IntegrityReport {
        IntegrityReport {
            ledger_entries: 0,
            entries_hashed: 0,
            head: GENESIS,
            checkpoints_checked: 0,
            checkpoints_unchecked: 0,
            versions_checked: 0,
            markers_checked: 0,
            bytes_checked: 0,
            unattested: 0,
            divergences: Vec::new(),
            divergence_count: 0,
        }
    }
}

impl IntegrityReport {
    /// Whether nothing diverged.
    pub fn is_ok(&self) -> bool {
        self.divergence_count == 0
    }

    /// The first divergence.
    pub fn first(&self) -> Option<&Divergence> {
        self.divergences.first()
    }

    fn diverge(&mut self, sequence: Option<u64>, what: String) {
        self.divergence_count += 1;
        if self.divergences.len() < MAX_LISTED {
            self.divergences.push(Divergence { sequence, what });
        }
    }

    /// One line for logs and the ledger.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{} ledger entries ({} rehashed), head {}, {} checkpoints, {} versions ({} bytes), {} markers",
            self.ledger_entries,
            self.entries_hashed,
            self.head.to_hex(),
            self.checkpoints_checked,
            self.versions_checked,
            self.bytes_checked,
            self.markers_checked
        );
        if self.checkpoints_unchecked > 0 {
            out.push_str(&format!(", {} checkpoints unchecked (no public key)", self.checkpoints_unchecked));
        }
        if self.unattested > 0 {
            out.push_str(&format!(", {} records predate attestation", self.unattested));
        }
        match self.first() {
            None => out.push_str(": no divergence"),
            Some(first) => out.push_str(&format!(": {} divergence(s), first: {first}", self.divergence_count)),
        }
        out
    }
}

type VersionKey = (String, String, u128);

/// What the ledger says about one version.
#[derive(Clone, Debug)]
struct Written {
    sequence: u64,
    marker: bool,
    sha256: Option<Digest>,
    record: Option<Digest>,
}

/// The ledger as walked so far.
struct Walk<'a> {
    backend: &'a dyn Backend,
    next: u64,
    head: Digest,
    trust_until: u64,
    written: HashMap<VersionKey, Written>,
    locks: HashMap<VersionKey, (u64, Option<Digest>)>,
    purged: HashSet<VersionKey>,
    hashes_at: BTreeMap<u64, Digest>,
    wanted: HashSet<u64>,
}

impl<'a> Walk<'a> {
    /// Reads every entry not read yet.
    fn catch_up(&mut self, report: &mut IntegrityReport) -> Result<(), StoreError> {
        let start = ledger::ledger_key(self.next);
        for item in self.backend.scan(Keyspace::Ledger, &start, b"") {
            let (key, raw) = item.map_err(|e| StoreError::backend("reading the ledger", e))?;
            let expected = self.next;
            let Ok(key) = <[u8; 8]>::try_from(key.as_slice()) else {
                report.diverge(None, format!("a ledger key of {} bytes is not a sequence number", key.len()));
                continue;
            };
            let at = u64::from_be_bytes(key);
            if at != expected {
                report.diverge(Some(expected), format!("missing: the ledger jumps from {} to {at}", expected - 1));
            }
            self.next = at + 1;
            report.ledger_entries += 1;
            let (entry, stored) = match LedgerEntry::decode_stored(&raw) {
                Ok(decoded) => decoded,
                Err(_) => {
                    report.diverge(Some(at), "the stored entry does not decode".to_owned());
                    continue;
                }
            };
            if entry.sequence != at {
                report.diverge(Some(at), format!("the entry names itself sequence {}", entry.sequence));
            }
            if at > self.trust_until {
                let computed = entry.chain_hash(&self.head);
                report.entries_hashed += 1;
                if computed != stored {
                    report.diverge(
                        Some(at),
                        format!(
                            "the entry ({} of {}/{}) does not hash to its stored chain hash: entry or hash altered",
                            entry.op.as_str(),
                            entry.bucket,
                            entry.key
                        ),
                    );
                }
            }
            // Carry on from the stored hash so that each altered entry is
            // named once, not every entry after it.
            self.head = stored;
            if self.wanted.contains(&at) {
                self.hashes_at.insert(at, stored);
            }
            self.note(&entry);
        }
        Ok(())
    }

    fn note(&mut self, entry: &LedgerEntry) {
        let Some(id) = entry.version else { return };
        let key = (entry.bucket.clone(), entry.key.clone(), id.as_u128());
        match entry.op {
            LedgerOp::VersionWritten | LedgerOp::MarkerWritten => {
                let record = attested(&entry.detail, RECORD_TOKEN);
                let written = Written {
                    sequence: entry.sequence,
                    marker: entry.op == LedgerOp::MarkerWritten,
                    sha256: entry.sha256,
                    record,
                };
                match (record, attested(&entry.detail, LOCK_TOKEN)) {
                    (_, Some(lock)) => {
                        self.locks.insert(key.clone(), (entry.sequence, Some(lock)));
                    }
                    // Written before attestation: its lock record cannot be judged.
                    (None, None) => {
                        self.locks.insert(key.clone(), (entry.sequence, None));
                    }
                    (Some(_), None) => {}
                }
                self.purged.remove(&key);
                self.written.insert(key, written);
            }
            LedgerOp::RetentionChanged | LedgerOp::HoldPlaced | LedgerOp::HoldReleased => {
                self.locks.insert(key, (entry.sequence, attested(&entry.detail, LOCK_TOKEN)));
            }
            LedgerOp::VersionPurged => {
                self.written.remove(&key);
                self.locks.remove(&key);
                self.purged.insert(key);
            }
            _ => {}
        }
    }
}

/// The sequence and hash of the newest ledger entry `backend` records, as
/// read from it (a stopped appliance's files, a backup).
pub fn ledger_head(backend: &dyn Backend) -> Result<(u64, Digest), StoreError> {
    match backend.get(Keyspace::Meta, crate::writer::META_HEAD) {
        Ok(Some(raw)) => crate::store::decode_head(&raw),
        Ok(None) => Ok((0, GENESIS)),
        Err(e) => Err(StoreError::backend("reading the ledger head", e)),
    }
}

/// Verifies everything the ledger attests over `backend`: the chain, every
/// checkpoint, every version record, its bytes and its lock record. Only reads.
pub fn verify(backend: &dyn Backend, mut options: VerifyOptions<'_>) -> Result<IntegrityReport, StoreError> {
    // A newer layout could be misread as divergences: refuse it instead.
    crate::format::check(backend)?;
    let mut report = IntegrityReport::default();
    let mut checkpoints = read_checkpoints(backend, &mut report)?;
    checkpoints.append(&mut options.extra_checkpoints);
    let mut walk = Walk {
        backend,
        next: 1,
        head: GENESIS,
        trust_until: 0,
        written: HashMap::new(),
        locks: HashMap::new(),
        purged: HashSet::new(),
        hashes_at: BTreeMap::new(),
        wanted: checkpoints.iter().map(|c| c.sequence).collect(),
    };
    if let Some(from) = options.from_checkpoint {
        let anchor = checkpoints
            .iter()
            .find(|c| c.sequence == from)
            .ok_or_else(|| StoreError::InvalidArgument(format!("no checkpoint at ledger sequence {from}")))?;
        match &options.public_key {
            Some(key) if anchor.verify(key) => walk.trust_until = from,
            Some(_) => report.diverge(Some(from), "the starting checkpoint's signature is invalid".to_owned()),
            None => {
                return Err(StoreError::InvalidArgument(
                    "starting from a checkpoint needs the public key to check it".to_owned(),
                ));
            }
        }
    }
    walk.catch_up(&mut report)?;
    check_versions(backend, &mut walk, &mut report, &mut options.pace)?;
    check_lock_orphans(backend, &mut walk, &mut report)?;
    // Heads and checkpoints last, after the tail written meanwhile was read.
    walk.catch_up(&mut report)?;
    let (head_sequence, head) = ledger_head(backend)?;
    if head_sequence > walk.next - 1 {
        walk.catch_up(&mut report)?;
    }
    let end = walk.next - 1;
    if head_sequence != end || head != walk.head {
        report.diverge(
            Some(head_sequence),
            format!("the recorded ledger head ({head_sequence}) is not the end of the chain ({end})"),
        );
    }
    for checkpoint in &checkpoints {
        check_checkpoint(checkpoint, &walk, end, options.public_key.as_deref(), &mut report);
    }
    report.head = walk.head;
    Ok(report)
}

fn read_checkpoints(backend: &dyn Backend, report: &mut IntegrityReport) -> Result<Vec<Checkpoint>, StoreError> {
    let mut out = Vec::new();
    for item in backend.scan(Keyspace::Checkpoints, b"", b"") {
        let (key, raw) = item.map_err(|e| StoreError::backend("reading checkpoints", e))?;
        match Checkpoint::decode(&raw) {
            Ok(c) if key == checkpoint_key(c.sequence) => out.push(c),
            Ok(c) => report.diverge(Some(c.sequence), "a checkpoint is stored under another sequence".to_owned()),
            Err(_) => report.diverge(None, "a stored checkpoint does not decode".to_owned()),
        }
    }
    Ok(out)
}

fn check_checkpoint(c: &Checkpoint, walk: &Walk<'_>, end: u64, key: Option<&[u8]>, report: &mut IntegrityReport) {
    let when = c.time.to_rfc3339();
    match key {
        Some(key) if !c.verify(key) => {
            report.diverge(Some(c.sequence), format!("the checkpoint signed at {when} has an invalid signature"));
            return;
        }
        Some(_) => report.checkpoints_checked += 1,
        None => report.checkpoints_unchecked += 1,
    }
    if c.sequence > end {
        report.diverge(
            Some(c.sequence),
            format!(
                "the checkpoint signed at {when} covers entry {} but the ledger ends at {end}: truncated",
                c.sequence
            ),
        );
        return;
    }
    let at = if c.sequence == 0 { Some(GENESIS) } else { walk.hashes_at.get(&c.sequence).copied() };
    if at != Some(c.head) {
        report.diverge(Some(c.sequence), format!("the chain hash differs from the checkpoint signed at {when}"));
    }
}

fn check_versions(
    backend: &dyn Backend,
    walk: &mut Walk<'_>,
    report: &mut IntegrityReport,
    pace: &mut Option<&mut dyn FnMut(u64)>,
) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    for item in backend.scan(Keyspace::Versions, b"", b"") {
        let (raw_key, raw) = item.map_err(|e| StoreError::backend("reading versions", e))?;
        let Some((bucket, key, id)) = split_version_key(&raw_key) else {
            report.diverge(None, "a version is stored under a malformed key".to_owned());
            continue;
        };
        let vkey = (bucket.clone(), key.clone(), id.as_u128());
        let name = format!("{bucket}/{key} version {}", id);
        let record = match VersionRecord::decode(&raw) {
            Ok(record) => record,
            Err(_) => {
                report.diverge(None, format!("the record of {name} does not decode"));
                continue;
            }
        };
        let name = format!("{bucket}/{key} version {}", external_id(record.id, record.is_null));
        if !walk.written.contains_key(&vkey) {
            walk.catch_up(report)?;
        }
        let Some(written) = walk.written.get(&vkey).cloned() else {
            report.diverge(None, format!("{name} is stored but no ledger entry wrote it"));
            continue;
        };
        seen.insert(vkey.clone());
        // Judged on a scratch report: a version purged while it was being
        // read is not a divergence.
        let mut found = IntegrityReport::default();
        let n = Some(written.sequence);
        if record.id.as_u128() != id.as_u128() {
            found.diverge(n, format!("the record of {name} names version {}", record.id));
        }
        match written.record {
            Some(expected) if expected != sha256(&raw) => {
                found.diverge(n, format!("the metadata record of {name} differs from the one this entry wrote"));
            }
            Some(_) => {}
            None => report.unattested += 1,
        }
        if written.marker != record.is_delete_marker {
            found.diverge(n, format!("{name} changed between version and delete marker"));
        }
        if record.is_delete_marker {
            report.markers_checked += 1;
        } else {
            if written.sha256 != Some(record.sha256) {
                found.diverge(n, format!("the SHA-256 in the record of {name} differs from this entry's"));
            }
            found.bytes_checked = report.bytes_checked;
            check_bytes(backend, &record, &name, written.sha256, n, &mut found, pace)?;
            report.versions_checked += 1;
            report.bytes_checked = found.bytes_checked;
        }
        if !found.is_ok() {
            walk.catch_up(report)?;
            if walk.purged.contains(&vkey) {
                continue;
            }
            report.divergence_count += found.divergence_count;
            for d in found.divergences {
                if report.divergences.len() < MAX_LISTED {
                    report.divergences.push(d);
                }
            }
        }
        check_lock(backend, walk, &raw_key, &vkey, &name, report)?;
    }
    let mut missing: Vec<(VersionKey, Written)> =
        walk.written.iter().filter(|(k, _)| !seen.contains(*k)).map(|(k, w)| (k.clone(), w.clone())).collect();
    if !missing.is_empty() {
        walk.catch_up(report)?;
    }
    missing.sort_by_key(|(_, w)| w.sequence);
    for ((bucket, key, id), written) in missing {
        // Purged after the scan passed it: not a divergence.
        if walk.purged.contains(&(bucket.clone(), key.clone(), id)) {
            continue;
        }
        let what = if written.marker { "delete marker" } else { "version" };
        let id = VersionId::from_u128(id);
        report.diverge(
            Some(written.sequence),
            format!("{what} {bucket}/{key} {id} written here is missing from the store, and no entry purged it"),
        );
    }
    Ok(())
}

fn check_bytes(
    backend: &dyn Backend,
    record: &VersionRecord,
    name: &str,
    ledger_sha: Option<Digest>,
    n: Option<u64>,
    report: &mut IntegrityReport,
    pace: &mut Option<&mut dyn FnMut(u64)>,
) -> Result<(), StoreError> {
    let Some(data) = record.data else {
        report.diverge(n, format!("{name} has no reference to its bytes"));
        return Ok(());
    };
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    let mut size = 0u64;
    for index in 0..data.chunks {
        let raw = backend
            .get(Keyspace::Chunks, &crate::keys::chunk_key(data.upload, index))
            .map_err(|e| StoreError::backend("reading a chunk", e))?;
        let Some(raw) = raw else {
            report.diverge(n, format!("chunk {index} of {name} is missing"));
            return Ok(());
        };
        // The chunk's own digest is not trusted here: the version's SHA-256
        // over the payload is what the ledger attests.
        let payload = raw.get(1 + 32..).unwrap_or_default();
        hasher.update(payload);
        size += payload.len() as u64;
        report.bytes_checked += payload.len() as u64;
        if let Some(pace) = pace.as_mut() {
            pace(report.bytes_checked);
        }
    }
    let actual = Digest::from_slice(hasher.finish().as_ref()).expect("SHA-256 yields 32 bytes");
    let expected = ledger_sha.unwrap_or(record.sha256);
    if actual != expected || size != record.size {
        report.diverge(
            n,
            format!(
                "the bytes of {name} ({size} bytes) hash to {}, the ledger says {} ({} bytes)",
                actual.to_hex(),
                expected.to_hex(),
                record.size
            ),
        );
    }
    Ok(())
}

fn check_lock(
    backend: &dyn Backend,
    walk: &mut Walk<'_>,
    raw_key: &[u8],
    vkey: &VersionKey,
    name: &str,
    report: &mut IntegrityReport,
) -> Result<(), StoreError> {
    let read = |backend: &dyn Backend| {
        backend.get(Keyspace::Locks, raw_key).map_err(|e| StoreError::backend("reading a lock record", e))
    };
    let matches = |stored: &Option<Vec<u8>>, walk: &Walk<'_>| match (walk.locks.get(vkey), stored) {
        (None, None) => true,
        (Some((_, None)), _) => true,
        (Some((_, Some(expected))), Some(raw)) => *expected == sha256(raw),
        _ => false,
    };
    let mut stored = read(backend)?;
    if !matches(&stored, walk) {
        // A retention or hold change may have landed after the walk: read on.
        walk.catch_up(report)?;
        stored = read(backend)?;
    }
    if !matches(&stored, walk) {
        let n = walk.locks.get(vkey).map(|(n, _)| *n);
        let what = match (&stored, n) {
            (None, _) => format!("the lock record (retention, holds) of {name} is missing"),
            (Some(_), None) => format!("{name} has a lock record (retention, holds) that no ledger entry wrote"),
            (Some(_), Some(_)) => format!("the lock record (retention, holds) of {name} differs from this entry's"),
        };
        report.diverge(n, what);
    }
    Ok(())
}

fn check_lock_orphans(
    backend: &dyn Backend,
    walk: &mut Walk<'_>,
    report: &mut IntegrityReport,
) -> Result<(), StoreError> {
    for item in backend.scan(Keyspace::Locks, b"", b"") {
        let (raw_key, _) = item.map_err(|e| StoreError::backend("reading lock records", e))?;
        if backend.get(Keyspace::Versions, &raw_key).map_err(|e| StoreError::backend("reading versions", e))?.is_none()
        {
            walk.catch_up(report)?;
            let orphan = match split_version_key(&raw_key) {
                Some((bucket, key, id)) => {
                    if walk.purged.contains(&(bucket.clone(), key.clone(), id.as_u128())) {
                        continue;
                    }
                    format!("a lock record for {bucket}/{key} version {id}, which does not exist")
                }
                None => "a lock record under a malformed key".to_owned(),
            };
            report.diverge(None, orphan);
        }
    }
    Ok(())
}

fn split_version_key(raw: &[u8]) -> Option<(String, String, VersionId)> {
    let nul = raw.iter().position(|&b| b == 0)?;
    let bucket = std::str::from_utf8(&raw[..nul]).ok()?.to_owned();
    let (key, id) = crate::keys::decode_version_key(nul + 1, raw)?;
    Some((bucket, key, id))
}

#[cfg(test)]
mod tests;
