//! Evidence: signed checkpoints of the ledger, and the integrity check that
//! recomputes everything the ledger attests.
//!
//! A checkpoint signs `(sequence, head hash, compliance-clock time, Merkle
//! root)` with the appliance's Ed25519 key; the signed message is
//! `CHECKPOINT_CONTEXT_V2 | sequence u64 | head 32 bytes | time i64 | root 32
//! bytes` (big-endian), the root being that of the ledger's Merkle tree of
//! `sequence` entries (`merkle.rs`). Checkpoints signed before the tree
//! existed have no root and sign `CHECKPOINT_CONTEXT | sequence | head |
//! time`; both verify, and neither can be turned into the other (a root
//! added or removed changes the message).
//!
//! Every entry that writes a version record or a lock record (retention and
//! holds) carries the SHA-256 of the stored record bytes in typed fields of
//! the hashed entry (`record_sha256`, `lock_sha256`; in entries of format 1,
//! the writer's text token at the very end of the detail), so the integrity
//! check can tell an edited record from an edited ledger from edited bytes.
//! No user text (a case id, a note) is ever read as an attestation.
//!
//! Invariant: verification only reads. It works over any `Backend`, so the
//! same code checks a running store and a stopped appliance's copy, and it
//! never trusts a stored value it has not recomputed.
//!
//! A version whose local bytes were released (the capacity tier, a
//! `bytes-released` entry) is checked through its replica: `VerifyOptions::
//! replica` reads the bytes the location names, and they are hashed against
//! the ledger like local ones; a copy whose bytes differ is a divergence
//! naming the replica object. Without a reader (offline), such versions are
//! counted as not checked, never as checked.
//!
//! Invariant: stored data the engine reports damaged (a table block failing
//! its checksum) is a divergence naming what could not be read (the ledger
//! entry, the version, or the key range of the stretch), and the check goes
//! on with the rest; only other engine failures (I/O) stop it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use wormbox_model::{Digest, Timestamp, VersionId};

use crate::backend::{Backend, BackendError, Keyspace};
use crate::codec::{self, Reader, VersionRecord};
use crate::ledger::{self, ChainWalker, EntryFormat, GENESIS, LedgerEntry, LedgerOp, Link};
use crate::merkle::{self, Frontier};
use crate::{DecodeError, StoreError, external_id, meta};

mod read_ahead;

/// Domain separation: a checkpoint signature cannot be replayed as any other
/// signed message.
pub const CHECKPOINT_CONTEXT: &[u8] = b"wormbox checkpoint v1\n";

/// Domain separation of checkpoints that sign the Merkle root too.
pub const CHECKPOINT_CONTEXT_V2: &[u8] = b"wormbox checkpoint v2\n";

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
    /// Ed25519 signature of `signed_message()`.
    pub signature: Vec<u8>,
    /// The root of the ledger's Merkle tree of `sequence` entries; `None`
    /// in checkpoints signed before the tree existed.
    pub tree_root: Option<Digest>,
}

impl Checkpoint {
    /// The bytes the signature covers: with the tree's root when there is
    /// one (`CHECKPOINT_CONTEXT_V2`), else as signed before the tree.
    pub fn message(sequence: u64, head: &Digest, time: Timestamp, tree_root: Option<&Digest>) -> Vec<u8> {
        let context = if tree_root.is_some() { CHECKPOINT_CONTEXT_V2 } else { CHECKPOINT_CONTEXT };
        let mut out = context.to_vec();
        out.extend_from_slice(&sequence.to_be_bytes());
        out.extend_from_slice(&head.0);
        out.extend_from_slice(&time.0.to_be_bytes());
        if let Some(root) = tree_root {
            out.extend_from_slice(&root.0);
        }
        out
    }

    /// A checkpoint of `sequence` entries signed by `signer`.
    pub fn sign(signer: &dyn Signer, sequence: u64, head: Digest, time: Timestamp, tree_root: Digest) -> Checkpoint {
        let signature = signer.sign(&Checkpoint::message(sequence, &head, time, Some(&tree_root)));
        Checkpoint { sequence, head, time, signature, tree_root: Some(tree_root) }
    }

    /// The bytes this checkpoint's signature covers.
    pub fn signed_message(&self) -> Vec<u8> {
        Checkpoint::message(self.sequence, &self.head, self.time, self.tree_root.as_ref())
    }

    /// Whether the signature is `public_key`'s over this checkpoint.
    pub fn verify(&self, public_key: &[u8]) -> bool {
        let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key);
        key.verify(&self.signed_message(), &self.signature).is_ok()
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = codec::Writer::new();
        w.u64(self.sequence).raw(&self.head.0).i64(self.time.0).bytes(&self.signature);
        if let Some(root) = &self.tree_root {
            w.raw(&root.0);
        }
        w.finish()
    }

    pub(crate) fn decode(raw: &[u8]) -> Result<Checkpoint, DecodeError> {
        let mut r = Reader::new(raw, "checkpoint")?;
        let sequence = r.u64()?;
        let head = r.digest()?;
        let time = Timestamp(r.i64()?);
        let signature = r.bytes()?.to_vec();
        // Written since the tree: the root last.
        let tree_root = if r.at_end() { None } else { Some(r.digest()?) };
        r.end()?;
        Ok(Checkpoint { sequence, head, time, signature, tree_root })
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

/// A released version's bytes as the replica holds them, for the check.
pub enum ReplicaBytes {
    /// Its bytes as stored there (not yet checked: the check hashes them).
    Bytes(Box<dyn std::io::Read + Send>),
    /// The replica has no such object, or refuses it: a divergence.
    Missing(String),
    /// The replica did not answer: the version is counted as not checked.
    Unavailable(String),
}

impl fmt::Debug for ReplicaBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplicaBytes::Bytes(_) => f.write_str("Bytes(..)"),
            ReplicaBytes::Missing(why) => f.debug_tuple("Missing").field(why).finish(),
            ReplicaBytes::Unavailable(why) => f.debug_tuple("Unavailable").field(why).finish(),
        }
    }
}

/// Reads a released version's bytes from the replica its location names:
/// `(location, bucket, key, size written)`; a copy longer than the size
/// written is `Missing` (a replica cannot make the reader spool without end).
pub type ReplicaReader<'a> = &'a mut dyn FnMut(&crate::BytesAt, &str, &str, u64) -> ReplicaBytes;

/// How to verify.
#[derive(Default)]
pub struct VerifyOptions<'a> {
    /// Reads the bytes of versions released to a replica (the capacity
    /// tier); without it they are counted in `released_unchecked`.
    pub replica: Option<ReplicaReader<'a>>,
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
    /// Report the witnesses' fork refusals as divergences (`verify` and the
    /// scrub do); restores and index rebuilds, which check that the files
    /// make the signed ledger, do not: a witness's claim, which an attacker
    /// on the network path can forge, must not make an archive
    /// unrestorable.
    pub witness_forks: bool,
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
    /// Versions whose bytes were released to a replica and checked there.
    pub released_checked: u64,
    /// Versions whose bytes were released to a replica that could not be
    /// read (offline, or the replica did not answer): not checked.
    pub released_unchecked: u64,
    /// Stored nodes of the ledger's Merkle tree recomputed from the entries
    /// and found equal (what proofs read where no stored tile holds it).
    pub merkle_nodes_checked: u64,
    /// Stored tiles of the ledger's Merkle tree (256 hashes each) recomputed
    /// from the entries and found equal.
    pub merkle_tiles_checked: u64,
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
            released_checked: 0,
            released_unchecked: 0,
            merkle_nodes_checked: 0,
            merkle_tiles_checked: 0,
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
        if self.released_checked > 0 {
            out.push_str(&format!(", {} versions read from a replica", self.released_checked));
        }
        if self.released_unchecked > 0 {
            out.push_str(&format!(", {} versions on a replica not checked", self.released_unchecked));
        }
        if self.merkle_nodes_checked > 0 {
            out.push_str(&format!(", {} Merkle tree nodes", self.merkle_nodes_checked));
        }
        if self.merkle_tiles_checked > 0 {
            out.push_str(&format!(", {} Merkle tree tiles", self.merkle_tiles_checked));
        }
        match self.first() {
            None => out.push_str(": no divergence"),
            Some(first) => out.push_str(&format!(": {} divergence(s), first: {first}", self.divergence_count)),
        }
        out
    }
}

/// Names a version in the walk's maps: the first 128 bits of SHA-256 over a
/// salt drawn for this check and the version's stored key. A version's names
/// are not kept: the walk holds one entry per version of the archive, and
/// names (two strings each, in three maps) made it about 450 bytes a version,
/// 4.6 GB at 10 M versions. Where a message needs the name, it is read back
/// from the ledger entry by sequence. The salt keeps anyone who can choose
/// keys from choosing two that collide.
type VersionTag = u128;

/// What the ledger says about one version.
#[derive(Clone, Debug)]
struct Written {
    sequence: u64,
    marker: bool,
    /// Whether the check has met the version's stored record (or named it
    /// unreadable).
    seen: bool,
    sha256: Option<Digest>,
    record: Option<Digest>,
}

/// The ledger as walked so far.
struct Walk<'a> {
    backend: &'a dyn Backend,
    /// Where the chain is, and whether the next entry can be rehashed.
    chain: ChainWalker,
    /// Entries that could not be read, to say so where a checkpoint covers one.
    unreadable: HashSet<u64>,
    trust_until: u64,
    /// Salts the version tags (`VersionTag`).
    salt: [u8; 16],
    written: HashMap<VersionTag, Written>,
    locks: HashMap<VersionTag, (u64, Option<Digest>)>,
    /// Versions whose local bytes a `bytes-released` entry released: its
    /// sequence and the SHA-256 it names.
    released: HashMap<VersionTag, (u64, Option<Digest>)>,
    purged: HashSet<VersionTag>,
    hashes_at: BTreeMap<u64, Digest>,
    wanted: HashSet<u64>,
    /// The newest entry format met so far: this build never writes an older
    /// one after a newer one.
    newest_format: EntryFormat,
    /// The ledger's Merkle tree as rebuilt from the entries walked, to
    /// check each stored node as its subtree completes and each signed
    /// root; `None` where it cannot be (after an entry missing or
    /// unreadable, which the chain reports).
    tree: Option<Frontier>,
    /// Whether the archive stores the tree's nodes (one written before the
    /// tree and not opened since has none: nothing to compare).
    tree_stored: bool,
    /// The rebuilt tree's tiles not yet complete, and whether the archive
    /// stores its tiles (format 3 on).
    tiles: crate::tree::TileRows,
    tiles_stored: bool,
    /// The rebuilt tree's root at each checkpoint's sequence.
    roots_at: HashMap<u64, Digest>,
}

impl<'a> Walk<'a> {
    /// The tag of the version stored under `raw_key` (`keys::version_key`).
    fn tag(&self, raw_key: &[u8]) -> VersionTag {
        let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
        hash.update(&self.salt);
        hash.update(raw_key);
        let digest = hash.finish();
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest.as_ref()[..16]);
        u128::from_be_bytes(first)
    }

    /// The stored key of the version tagged `tag` that the entry at
    /// `sequence` wrote, read back from the ledger; `None` when that entry
    /// cannot be read now, or no longer names that version (it was changed
    /// after the walk checked it): a key is never taken on the ledger's word
    /// alone.
    fn version_key_at(&self, sequence: u64, tag: VersionTag) -> Result<Option<Vec<u8>>, StoreError> {
        let raw = match self.backend.get(Keyspace::Ledger, &ledger::ledger_key(sequence)) {
            Ok(Some(raw)) => raw,
            Ok(None) => return Ok(None),
            Err(err) if is_damage(&err) => return Ok(None),
            Err(err) => return Err(StoreError::backend("reading the ledger", err)),
        };
        let Ok((entry, _)) = LedgerEntry::decode_stored(&raw) else { return Ok(None) };
        if entry.sequence != sequence {
            return Ok(None);
        }
        let key = entry.version.map(|id| crate::keys::version_key_of(&entry.bucket, &entry.key, id));
        Ok(key.filter(|key| self.tag(key) == tag))
    }

    /// Reads every entry not read yet, stepping over damaged ones.
    fn catch_up(&mut self, report: &mut IntegrityReport) -> Result<(), StoreError> {
        let backend = self.backend;
        loop {
            let start = ledger::ledger_key(self.chain.expected());
            let mut damaged = false;
            for item in backend.scan(Keyspace::Ledger, &start, b"") {
                match item {
                    Ok((key, raw)) => self.take(&key, &raw, report),
                    Err(err) if is_damage(&err) => {
                        damaged = true;
                        break;
                    }
                    Err(err) => return Err(StoreError::backend("reading the ledger", err)),
                }
            }
            if !damaged {
                return Ok(());
            }
            self.step_over(report)?;
        }
    }

    /// A scan stopped at damage at or after `next`. Sequence numbers are
    /// dense, so each entry is read by itself up to the recorded head: an
    /// unreadable one is named, and the first readable one is taken, for the
    /// scan to go on after it. Always moves `next` forward.
    fn step_over(&mut self, report: &mut IntegrityReport) -> Result<(), StoreError> {
        let end = ledger_head(self.backend).map(|(n, _)| n).unwrap_or(0).max(self.chain.expected());
        let mut at = self.chain.expected();
        while at <= end {
            let key = ledger::ledger_key(at);
            match self.backend.get(Keyspace::Ledger, &key) {
                Ok(Some(raw)) => {
                    self.chain.seek(at);
                    self.take(&key, &raw, report);
                    return Ok(());
                }
                Ok(None) => {
                    report.diverge(Some(at), "missing: no entry is stored under this sequence".to_owned());
                    self.chain.lose_head();
                }
                Err(err) if is_damage(&err) => {
                    report.diverge(Some(at), format!("the entry could not be read: {}", damage(&err)));
                    self.unreadable.insert(at);
                    self.chain.lose_head();
                }
                Err(err) => return Err(StoreError::backend("reading the ledger", err)),
            }
            at += 1;
        }
        self.chain.seek(at);
        Ok(())
    }

    /// Takes one stored entry into the walk.
    fn take(&mut self, key: &[u8], raw: &[u8], report: &mut IntegrityReport) {
        let Ok(key) = <[u8; 8]>::try_from(key) else {
            report.diverge(None, format!("a ledger key of {} bytes is not a sequence number", key.len()));
            return;
        };
        let at = u64::from_be_bytes(key);
        if let Some(expected) = self.chain.arrive(at) {
            report.diverge(Some(expected), format!("missing: the ledger jumps from {} to {at}", expected - 1));
        }
        report.ledger_entries += 1;
        let (entry, stored) = match LedgerEntry::decode_stored(raw) {
            Ok(decoded) => decoded,
            Err(_) => {
                report.diverge(Some(at), "the stored entry does not decode".to_owned());
                return;
            }
        };
        if entry.sequence != at {
            report.diverge(Some(at), format!("the entry names itself sequence {}", entry.sequence));
        }
        let link = self.chain.link(&entry, &stored, at > self.trust_until);
        if link != Link::Unchecked {
            report.entries_hashed += 1;
        }
        if link == Link::Altered {
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
        if self.wanted.contains(&at) {
            self.hashes_at.insert(at, stored);
        }
        if entry.format < self.newest_format {
            report.diverge(
                Some(at),
                format!(
                    "the entry is stored in format {} after one in format {}, which no writer does",
                    entry.format.code(),
                    self.newest_format.code()
                ),
            );
        }
        self.newest_format = self.newest_format.max(entry.format);
        if at > self.trust_until {
            self.grow_tree(at, raw, report);
        }
        self.note(&entry, report);
    }

    /// Adds entry `at` to the rebuilt tree and compares the stored node of
    /// every subtree it completes, from `merkle::STORED_HEIGHT` up.
    fn grow_tree(&mut self, at: u64, raw: &[u8], report: &mut IntegrityReport) {
        let Some(tree) = self.tree.as_mut() else { return };
        let leaf = crate::tree::leaf_of_stored(raw).filter(|_| tree.size() + 1 == at);
        let Some(leaf) = leaf else {
            self.tree = None;
            return;
        };
        let (mut completed, mut tiles) = (Vec::new(), Vec::new());
        tree.push(leaf, |height, index, root| {
            if height >= merkle::STORED_HEIGHT {
                completed.push((height, index, *root));
            }
            tiles.extend(self.tiles.add(height, index, root));
        });
        if self.wanted.contains(&at) {
            self.roots_at.insert(at, tree.root());
        }
        if !self.tree_stored {
            return;
        }
        for (height, index, root) in completed {
            let node = format!("the Merkle tree node at height {height}, index {index}");
            match meta::load_merkle_node(self.backend, height, index) {
                Ok(Some(stored)) if stored == root => report.merkle_nodes_checked += 1,
                Ok(Some(_)) => report.diverge(
                    Some(at),
                    format!(
                        "{node} is stored with another hash than the ledger's entries make: proofs through it fail"
                    ),
                ),
                Ok(None) => report.diverge(Some(at), format!("{node}, which this entry completes, is not stored")),
                Err(err) => report.diverge(Some(at), format!("{node} could not be read: {err}")),
            }
        }
        for (level, index, hashes) in tiles.into_iter().filter(|_| self.tiles_stored) {
            let tile = format!("the Merkle tree tile at level {level}, index {index}");
            match meta::load_merkle_tile(self.backend, level, index) {
                Ok(Some(stored)) if stored == hashes => report.merkle_tiles_checked += 1,
                Ok(Some(_)) => report.diverge(
                    Some(at),
                    format!(
                        "{tile} is stored with other hashes than the ledger's entries make: proofs through it fail"
                    ),
                ),
                Ok(None) => report.diverge(Some(at), format!("{tile}, which this entry completes, is not stored")),
                Err(err) => report.diverge(Some(at), format!("{tile} could not be read: {err}")),
            }
        }
    }

    fn note(&mut self, entry: &LedgerEntry, report: &mut IntegrityReport) {
        let Some(id) = entry.version else { return };
        let key = self.tag(&crate::keys::version_key_of(&entry.bucket, &entry.key, id));
        let writes_lock =
            matches!(entry.op, LedgerOp::RetentionChanged | LedgerOp::HoldPlaced | LedgerOp::HoldReleased);
        let writes_version =
            matches!(entry.op, LedgerOp::VersionWritten | LedgerOp::MarkerWritten | LedgerOp::VersionRestored);
        let attested = if writes_lock || writes_version {
            match entry.attestations() {
                Ok(attested) => attested,
                // A divergence in itself; what it would attest is not taken.
                Err(malformed) => {
                    report.diverge(Some(entry.sequence), format!("the entry's attestation is malformed: {malformed}"));
                    ledger::Attestations::default()
                }
            }
        } else {
            ledger::Attestations::default()
        };
        // This build attests every record it writes: a current-format entry
        // without the attestation its operation carries was not written by it.
        if entry.format >= EntryFormat::V2 {
            if writes_version && attested.record_sha256.is_none() {
                report.diverge(Some(entry.sequence), "the entry does not attest the version record it wrote".into());
            }
            if writes_lock && attested.lock_sha256.is_none() {
                report.diverge(Some(entry.sequence), "the entry does not attest the lock record it wrote".into());
            }
        }
        match entry.op {
            LedgerOp::VersionWritten | LedgerOp::MarkerWritten => {
                let written = Written {
                    sequence: entry.sequence,
                    marker: entry.op == LedgerOp::MarkerWritten,
                    // Met before (a second entry writing the same version): stays met.
                    seen: self.written.get(&key).is_some_and(|w| w.seen),
                    sha256: entry.sha256,
                    record: attested.record_sha256,
                };
                match (attested.record_sha256, attested.lock_sha256) {
                    (_, Some(lock)) => {
                        self.locks.insert(key, (entry.sequence, Some(lock)));
                    }
                    // Written before attestation (format 1 only): its lock record cannot be judged.
                    (None, None) => {
                        self.locks.insert(key, (entry.sequence, None));
                    }
                    (Some(_), None) => {}
                }
                self.purged.remove(&key);
                self.written.insert(key, written);
            }
            LedgerOp::RetentionChanged | LedgerOp::HoldPlaced | LedgerOp::HoldReleased => {
                self.locks.insert(key, (entry.sequence, attested.lock_sha256));
            }
            // A restore rebuilt the records of a version the ledger wrote,
            // with the bytes it was written with.
            LedgerOp::VersionRestored => {
                let Some(written) = self.written.get_mut(&key) else {
                    report.diverge(Some(entry.sequence), "the entry restores a version no entry wrote".to_owned());
                    return;
                };
                if !written.marker && entry.sha256 != written.sha256 {
                    report.diverge(
                        Some(entry.sequence),
                        format!("the entry restores other bytes than entry {} wrote", written.sequence),
                    );
                }
                written.record = attested.record_sha256;
                // Restored bytes are local again, whatever the tier had released.
                self.released.remove(&key);
                match attested.lock_sha256 {
                    Some(lock) => self.locks.insert(key, (entry.sequence, Some(lock))),
                    None => self.locks.remove(&key),
                };
            }
            LedgerOp::VersionPurged => {
                self.written.remove(&key);
                self.locks.remove(&key);
                self.released.remove(&key);
                self.purged.insert(key);
            }
            LedgerOp::BytesReleased => {
                self.released.insert(key, (entry.sequence, entry.sha256));
            }
            _ => {}
        }
    }
}

/// The tree a check rebuilds (from the start or, trusting a checkpoint at
/// `trust_until`, from the stored nodes at that size, held to the root that
/// checkpoint signs), and whether the archive stores the tree: every archive
/// of format 2 on does, and then any node missing is named (tiles: format 3). An archive of
/// format 1 (written before the tree, not opened since) has none; its roots
/// are still rebuilt and checked against any checkpoint that signs one.
fn tree_to_check(
    backend: &dyn Backend,
    format: u32,
    trust_until: u64,
    anchor_root: Option<Digest>,
    report: &mut IntegrityReport,
) -> (Option<Frontier>, bool) {
    let stored = format >= 2;
    if trust_until == 0 {
        return (Some(Frontier::default()), stored);
    }
    match crate::tree::load_frontier(backend, trust_until) {
        Ok(None) if !stored && anchor_root.is_none() => (None, false),
        Ok(Some(tree)) => {
            if anchor_root.is_some_and(|root| root != tree.root()) {
                report.diverge(
                    Some(trust_until),
                    "the stored Merkle tree at the starting checkpoint is not the tree it signs".to_owned(),
                );
            }
            (Some(tree), stored)
        }
        Ok(None) => {
            report.diverge(
                Some(trust_until),
                "the stored Merkle tree at the starting checkpoint is missing nodes; the tree after it is not checked"
                    .to_owned(),
            );
            (None, stored)
        }
        Err(err) => {
            report.diverge(
                Some(trust_until),
                format!("the stored Merkle tree at the starting checkpoint could not be read ({err}); the tree after it is not checked"),
            );
            (None, stored)
        }
    }
}

/// The sequence and hash of the newest ledger entry `backend` records, as
/// read from it (a stopped appliance's files, a backup).
pub fn ledger_head(backend: &dyn Backend) -> Result<(u64, Digest), StoreError> {
    crate::meta::load_ledger_head(backend)
}

/// Verifies everything the ledger attests over `backend`: the chain, every
/// checkpoint, every version record, its bytes and its lock record. Only reads.
pub fn verify(backend: &dyn Backend, mut options: VerifyOptions<'_>) -> Result<IntegrityReport, StoreError> {
    let mut report = IntegrityReport::default();
    // A newer layout could be misread as divergences: refuse it instead.
    let format = match crate::format::check(backend) {
        Ok(state) => state.version(),
        Err(StoreError::Backend { source, .. }) if is_damage(&source) => {
            report.diverge(
                None,
                format!(
                    "the archive's format version could not be read ({}); the rest is read as format {}",
                    damage(&source),
                    crate::format::FORMAT_VERSION
                ),
            );
            crate::format::FORMAT_VERSION
        }
        Err(err) => return Err(err),
    };
    let mut checkpoints = read_checkpoints(backend, &mut report)?;
    checkpoints.append(&mut options.extra_checkpoints);
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| StoreError::DataLoss { what: "no randomness".to_owned() })?;
    let mut walk = Walk {
        backend,
        chain: ChainWalker::new(),
        unreadable: HashSet::new(),
        trust_until: 0,
        salt,
        written: HashMap::new(),
        locks: HashMap::new(),
        released: HashMap::new(),
        purged: HashSet::new(),
        hashes_at: BTreeMap::new(),
        wanted: checkpoints.iter().map(|c| c.sequence).collect(),
        newest_format: EntryFormat::V1,
        tree: None,
        tree_stored: false,
        tiles: crate::tree::TileRows::default(),
        tiles_stored: format >= 3,
        roots_at: HashMap::new(),
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
    let anchor_root = checkpoints.iter().find(|c| c.sequence == walk.trust_until && walk.trust_until > 0);
    let anchor_root = anchor_root.and_then(|c| c.tree_root);
    (walk.tree, walk.tree_stored) = tree_to_check(backend, format, walk.trust_until, anchor_root, &mut report);
    walk.catch_up(&mut report)?;
    let mut reading = Reading { pace: options.pace.take(), replica: options.replica.take() };
    check_versions(backend, &mut walk, &mut report, &mut reading)?;
    check_lock_orphans(backend, &mut walk, &mut report)?;
    // Heads and checkpoints last, after the tail written meanwhile was read.
    walk.catch_up(&mut report)?;
    match ledger_head(backend) {
        Ok((head_sequence, head)) => {
            if head_sequence > walk.chain.walked().0 {
                walk.catch_up(&mut report)?;
            }
            let (end, walked_head) = walk.chain.walked();
            // After unreadable last entries, only where the chain ends is known.
            // Each message names what differs: the two sequences, or at the
            // same sequence the two hashes.
            if head_sequence != end {
                report.diverge(
                    Some(head_sequence),
                    format!("the recorded ledger head ({head_sequence}) is not the end of the chain ({end})"),
                );
            } else if head != walked_head && walk.chain.head_known() {
                report.diverge(
                    Some(head_sequence),
                    format!(
                        "the recorded ledger head's hash ({}) is not the chain's hash at entry {end} ({})",
                        head.to_hex(),
                        walked_head.to_hex()
                    ),
                );
            }
        }
        Err(StoreError::Backend { source, .. }) if is_damage(&source) => {
            report.diverge(None, format!("the recorded ledger head could not be read: {}", damage(&source)));
        }
        Err(err) => return Err(err),
    }
    check_frontier(backend, &walk, &mut report);
    let (end, walked_head) = walk.chain.walked();
    for checkpoint in &checkpoints {
        check_checkpoint(checkpoint, &walk, end, options.public_key.as_deref(), &mut report);
    }
    if options.witness_forks {
        check_witnesses(backend, &mut report);
    }
    report.head = walked_head;
    Ok(report)
}

/// A witness that refused a checkpoint because it does not extend what the
/// witness cosigned before has seen another history of this ledger: the
/// archive cannot vouch for itself against that, so it is a divergence.
fn check_witnesses(backend: &dyn Backend, report: &mut IntegrityReport) {
    match meta::scan_witness_forks(backend) {
        Ok(forks) => {
            for refusal in &forks {
                report.diverge(
                    Some(refusal.sequence),
                    format!(
                        "witness {} refused the checkpoint at ledger entry {} (HTTP {}: {}): it claims to have \
                         cosigned a history this ledger does not extend, so the ledger forked or was rewritten \
                         (ask the witness for the checkpoint it holds, and compare)",
                        refusal.witness, refusal.sequence, refusal.status, refusal.why
                    ),
                );
            }
        }
        Err(err) => report.diverge(None, format!("the witnesses' refusals could not be read: {err}")),
    }
}

/// The frontier the writer resumes from, against the tree the entries make:
/// one that differs would have the next checkpoint sign a root the ledger
/// does not make. (One further on than the walk was written meanwhile.)
fn check_frontier(backend: &dyn Backend, walk: &Walk<'_>, report: &mut IntegrityReport) {
    let Some(tree) = walk.tree.as_ref().filter(|_| walk.tree_stored) else { return };
    match meta::load_merkle_frontier(backend) {
        Ok(Some(stored)) if stored.size() == tree.size() && stored != *tree => report.diverge(
            Some(tree.size()),
            "the stored Merkle frontier is not the tree the ledger's entries make: the next checkpoint would sign a \
             root they do not make"
                .to_owned(),
        ),
        Ok(Some(_)) => {}
        Ok(None) if tree.size() == 0 => {}
        Ok(None) => report.diverge(None, "the ledger's Merkle frontier is not stored".to_owned()),
        Err(err) => report.diverge(None, format!("the ledger's Merkle frontier could not be read: {err}")),
    }
}

fn read_checkpoints(backend: &dyn Backend, report: &mut IntegrityReport) -> Result<Vec<Checkpoint>, StoreError> {
    let mut out: Vec<Checkpoint> = Vec::new();
    for item in backend.scan(Keyspace::Checkpoints, b"", b"") {
        let (key, raw) = match item {
            Ok(entry) => entry,
            // Checkpoints are few: those read are checked, the rest named as a range.
            Err(err) if is_damage(&err) => {
                let after = match out.last() {
                    Some(last) => format!("after the one at entry {}", last.sequence),
                    None => "from the first".to_owned(),
                };
                report.diverge(None, format!("the stored checkpoints {after} could not be read: {}", damage(&err)));
                break;
            }
            Err(err) => return Err(StoreError::backend("reading checkpoints", err)),
        };
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
    if walk.unreadable.contains(&c.sequence) {
        report.diverge(Some(c.sequence), format!("the entry the checkpoint signed at {when} covers could not be read"));
        return;
    }
    let at = if c.sequence == 0 { Some(GENESIS) } else { walk.hashes_at.get(&c.sequence).copied() };
    if at != Some(c.head) {
        report.diverge(Some(c.sequence), format!("the chain hash differs from the checkpoint signed at {when}"));
    }
    // A root the walk could not rebuild (a trusted prefix without stored
    // nodes, or after a gap the chain reports) is left unchecked.
    let root = if c.sequence == 0 { Some(merkle::empty_root()) } else { walk.roots_at.get(&c.sequence).copied() };
    if let (Some(signed), Some(rebuilt)) = (c.tree_root, root)
        && signed != rebuilt
    {
        report.diverge(
            Some(c.sequence),
            format!("the Merkle tree root differs from the checkpoint signed at {when}: the ledger was rewritten"),
        );
    }
}

/// Whether a read failed on stored data the engine found damaged (a table
/// block failing its checksum): a divergence to name and step over. Any other
/// failure (I/O) stops the check, since it says nothing about the archive.
fn is_damage(err: &BackendError) -> bool {
    matches!(err, BackendError::Corruption { .. })
}

/// The engine's own account of damage (for RocksDB, the table file and the
/// offset of the block), so that the operator can find it.
fn damage(err: &BackendError) -> String {
    match err {
        BackendError::Corruption { source, .. } => format!("the storage engine reports damage: {source}"),
        other => other.to_string(),
    }
}

/// How version bytes are read: the pace of the check, and the replica of
/// released versions.
struct Reading<'a> {
    pace: Option<&'a mut dyn FnMut(u64)>,
    replica: Option<ReplicaReader<'a>>,
}

fn check_versions(
    backend: &dyn Backend,
    walk: &mut Walk<'_>,
    report: &mut IntegrityReport,
    pace: &mut Reading<'_>,
) -> Result<(), StoreError> {
    read_ahead::with_read_ahead(backend, |progress| check_versions_read_ahead(backend, walk, report, pace, progress))
}

/// `check_versions`, telling `progress` of each version its scan meets.
fn check_versions_read_ahead(
    backend: &dyn Backend,
    walk: &mut Walk<'_>,
    report: &mut IntegrityReport,
    pace: &mut Reading<'_>,
    progress: &read_ahead::Progress,
) -> Result<(), StoreError> {
    let mut start: Vec<u8> = Vec::new();
    loop {
        let mut last: Option<Vec<u8>> = None;
        let mut damaged = None;
        for item in backend.scan(Keyspace::Versions, &start, b"") {
            let (raw_key, raw) = match item {
                Ok(entry) => entry,
                Err(err) if is_damage(&err) => {
                    damaged = Some(err);
                    break;
                }
                Err(err) => return Err(StoreError::backend("reading versions", err)),
            };
            progress.advance();
            check_version(backend, walk, report, pace, &raw_key, &raw)?;
            last = Some(raw_key);
        }
        let Some(err) = damaged else { break };
        // Go on after the damaged stretch, from the next version the ledger
        // wrote that can be read; those in the stretch are named one by one.
        // The scan has met every version before `after`: only those it has
        // not met can lie beyond it.
        let after = last.unwrap_or(start);
        let unmet = walk.written.iter().filter(|(_, w)| !w.seen).map(|(t, w)| (w.sequence, *t)).collect();
        let candidates = version_keys_at(walk, unmet)?;
        let resume = next_readable(backend, Keyspace::Versions, candidates, &after, "reading versions")?;
        unreadable_range(report, "version records", &after, resume.at.as_deref(), &err);
        for (raw_key, err) in resume.unreadable {
            let Some((bucket, key, id)) = split_version_key(&raw_key) else { continue };
            let tag = walk.tag(&raw_key);
            let written = walk.written.get_mut(&tag);
            let sequence = written.as_ref().map(|w| w.sequence);
            if let Some(written) = written {
                written.seen = true;
            }
            report.diverge(
                sequence,
                format!("the record of {bucket}/{key} version {id} could not be read: {}", damage(&err)),
            );
        }
        match resume.at {
            Some(next) => start = next,
            None => break,
        }
    }
    let mut missing: Vec<(VersionTag, Written)> =
        walk.written.iter().filter(|(_, w)| !w.seen).map(|(k, w)| (*k, w.clone())).collect();
    if !missing.is_empty() {
        walk.catch_up(report)?;
    }
    missing.sort_by_key(|(_, w)| w.sequence);
    for (tag, written) in missing {
        // Purged after the scan passed it: not a divergence.
        if walk.purged.contains(&tag) || walk.written.get(&tag).is_some_and(|w| w.seen) {
            continue;
        }
        let what = if written.marker { "delete marker" } else { "version" };
        let Some(raw_key) = walk.version_key_at(written.sequence, tag)? else {
            report.diverge(
                Some(written.sequence),
                format!(
                    "the {what} written here could not be looked up: this entry can no longer be read as the check \
                     read it"
                ),
            );
            continue;
        };
        // Not met by the scan, which damage or a write behind it may have
        // kept from it: read it by itself before calling it missing.
        match backend.get(Keyspace::Versions, &raw_key) {
            Ok(Some(raw)) => {
                check_version(backend, walk, report, pace, &raw_key, &raw)?;
                continue;
            }
            Ok(None) => {}
            Err(err) if is_damage(&err) => {
                report.diverge(
                    Some(written.sequence),
                    format!("the record of {} could not be read: {}", describe_key(&raw_key), damage(&err)),
                );
                continue;
            }
            Err(err) => return Err(StoreError::backend("reading versions", err)),
        }
        let name = match split_version_key(&raw_key) {
            Some((bucket, key, id)) => format!("{bucket}/{key} {id}"),
            None => describe_key(&raw_key),
        };
        report.diverge(
            Some(written.sequence),
            format!("{what} {name} written here is missing from the store, and no entry purged it"),
        );
    }
    Ok(())
}

/// The stored keys of the versions the ledger entries at `sequences` name,
/// read back from the ledger (the walk keeps tags, not names). For the
/// rare paths that need names in bulk: resuming after damage.
fn version_keys_at(walk: &Walk<'_>, mut sequences: Vec<(u64, VersionTag)>) -> Result<Vec<Vec<u8>>, StoreError> {
    // In ledger order, which is the order its keys are stored in.
    sequences.sort_unstable();
    sequences.dedup();
    let mut keys = Vec::with_capacity(sequences.len());
    for (sequence, tag) in sequences {
        if let Some(key) = walk.version_key_at(sequence, tag)? {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// Checks one stored version record against the ledger: metadata, bytes and lock record.
fn check_version(
    backend: &dyn Backend,
    walk: &mut Walk<'_>,
    report: &mut IntegrityReport,
    pace: &mut Reading<'_>,
    raw_key: &[u8],
    raw: &[u8],
) -> Result<(), StoreError> {
    let Some((bucket, key, id)) = split_version_key(raw_key) else {
        report.diverge(None, "a version is stored under a malformed key".to_owned());
        return Ok(());
    };
    let vkey = walk.tag(raw_key);
    let name = format!("{bucket}/{key} version {}", id);
    let record = match VersionRecord::decode(raw) {
        Ok(record) => record,
        Err(_) => {
            report.diverge(None, format!("the record of {name} does not decode"));
            return Ok(());
        }
    };
    let name = format!("{bucket}/{key} version {}", external_id(record.id, record.is_null));
    if !walk.written.contains_key(&vkey) {
        walk.catch_up(report)?;
    }
    let Some(written) = walk.written.get_mut(&vkey) else {
        report.diverge(None, format!("{name} is stored but no ledger entry wrote it"));
        return Ok(());
    };
    written.seen = true;
    let written = written.clone();
    // Judged on a scratch report: a version purged while it was being
    // read is not a divergence.
    let mut found = IntegrityReport::default();
    let n = Some(written.sequence);
    if record.id.as_u128() != id.as_u128() {
        found.diverge(n, format!("the record of {name} names version {}", record.id));
    }
    match written.record {
        Some(expected) if expected != sha256(raw) => {
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
        let at = crate::meta::load_bytes_at(backend, raw_key);
        let at = match at {
            Ok(at) => at,
            Err(StoreError::Backend { source, .. }) if is_damage(&source) => {
                found.diverge(n, format!("where the bytes of {name} live could not be read: {}", damage(&source)));
                None
            }
            Err(err) => return Err(err),
        };
        match at {
            None => check_bytes(backend, &record, &name, written.sha256, n, &mut found, &mut pace.pace)?,
            Some(at) => {
                if !walk.released.contains_key(&vkey) {
                    walk.catch_up(report)?;
                }
                match walk.released.get(&vkey).copied() {
                    None => found.diverge(
                        n,
                        format!(
                            "the bytes of {name} are marked as living on rule `{}`'s replica, but no ledger entry released them",
                            at.rule
                        ),
                    ),
                    Some((released, sha)) if sha != written.sha256 => found.diverge(
                        Some(released),
                        format!("the SHA-256 this entry released {name} with differs from the one that wrote it"),
                    ),
                    Some((released, _)) => {
                        let checked = check_replica_bytes(
                            &record,
                            &name,
                            (&bucket, &key),
                            &at,
                            written.sha256,
                            Some(released),
                            &mut found,
                            pace,
                        )?;
                        if checked {
                            report.released_checked += 1;
                        } else {
                            report.released_unchecked += 1;
                        }
                    }
                }
            }
        }
        report.versions_checked += 1;
        report.bytes_checked = found.bytes_checked;
    }
    if !found.is_ok() {
        walk.catch_up(report)?;
        if walk.purged.contains(&vkey) {
            return Ok(());
        }
        report.divergence_count += found.divergence_count;
        for d in found.divergences {
            if report.divergences.len() < MAX_LISTED {
                report.divergences.push(d);
            }
        }
    }
    check_lock(backend, walk, raw_key, vkey, &name, report)
}

/// Where a scan goes on after a damaged stretch.
struct Resume {
    /// The first key the ledger names past the stretch that can be read;
    /// `None` when there is none.
    at: Option<Vec<u8>>,
    /// The keys the ledger names in the stretch, which could not be read.
    unreadable: Vec<(Vec<u8>, BackendError)>,
}

/// After a scan of `space` stopped at damage past `after`: reads the
/// `candidates` (keys the ledger names) beyond `after` one by one, in key
/// order, up to the first that can be read.
fn next_readable(
    backend: &dyn Backend,
    space: Keyspace,
    mut candidates: Vec<Vec<u8>>,
    after: &[u8],
    operation: &'static str,
) -> Result<Resume, StoreError> {
    candidates.retain(|key| key.as_slice() > after);
    candidates.sort_unstable();
    candidates.dedup();
    let mut unreadable = Vec::new();
    for key in candidates {
        match backend.get(space, &key) {
            Ok(Some(_)) => return Ok(Resume { at: Some(key), unreadable }),
            // Missing: named with the rest of what the scan did not meet.
            Ok(None) => {}
            Err(err) if is_damage(&err) => unreadable.push((key, err)),
            Err(err) => return Err(StoreError::backend(operation, err)),
        }
    }
    Ok(Resume { at: None, unreadable })
}

/// Names a stretch of `what` that a scan could not read, by the readable keys around it.
fn unreadable_range(report: &mut IntegrityReport, what: &str, after: &[u8], until: Option<&[u8]>, err: &BackendError) {
    let from = if after.is_empty() { "from the first".to_owned() } else { format!("after {}", describe_key(after)) };
    let to = match until {
        Some(key) => format!("before {}", describe_key(key)),
        None => "to the last".to_owned(),
    };
    report.diverge(None, format!("the {what} {from} {to} could not be read: {}", damage(err)));
}

fn describe_key(raw: &[u8]) -> String {
    match split_version_key(raw) {
        Some((bucket, key, id)) => format!("{bucket}/{key} version {id}"),
        None => format!("key {}", hex::encode(raw)),
    }
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
        let raw = match backend.get(Keyspace::Chunks, &crate::keys::chunk_key(data.upload, index)) {
            Ok(raw) => raw,
            Err(err) if is_damage(&err) => {
                report.diverge(n, format!("chunk {index} of {name} could not be read: {}", damage(&err)));
                return Ok(());
            }
            Err(err) => return Err(StoreError::backend("reading a chunk", err)),
        };
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

/// Hashes a released version's bytes as its replica holds them; returns
/// whether they could be read at all (a replica that does not answer, or no
/// reader: not checked, and no divergence).
#[allow(clippy::too_many_arguments)] // `check_bytes`'s, and where the bytes live
fn check_replica_bytes(
    record: &VersionRecord,
    name: &str,
    (bucket, key): (&str, &str),
    at: &crate::BytesAt,
    ledger_sha: Option<Digest>,
    n: Option<u64>,
    report: &mut IntegrityReport,
    reading: &mut Reading<'_>,
) -> Result<bool, StoreError> {
    let Some(replica) = reading.replica.as_mut() else { return Ok(false) };
    let copy = format!("the replica copy of {name} (rule `{}`, replica version {})", at.rule, at.replica_id);
    let mut bytes = match replica(at, bucket, key, record.size) {
        ReplicaBytes::Bytes(bytes) => bytes,
        ReplicaBytes::Missing(why) => {
            report.diverge(n, format!("{copy} cannot be read: {why}"));
            return Ok(true);
        }
        ReplicaBytes::Unavailable(why) => {
            tracing::warn!(rule = %at.rule, %why, "a released version was not checked: its replica does not answer");
            return Ok(false);
        }
    };
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    let mut size = 0u64;
    let mut buffer = vec![0u8; crate::CHUNK_BYTES];
    loop {
        let read = match std::io::Read::read(&mut bytes, &mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                tracing::warn!(rule = %at.rule, %err, "a released version was not checked: reading its replica failed");
                return Ok(false);
            }
        };
        hasher.update(&buffer[..read]);
        size += read as u64;
        report.bytes_checked += read as u64;
        if let Some(pace) = reading.pace.as_mut() {
            pace(report.bytes_checked);
        }
    }
    let actual = Digest::from_slice(hasher.finish().as_ref()).expect("SHA-256 yields 32 bytes");
    let expected = ledger_sha.unwrap_or(record.sha256);
    if actual != expected || size != record.size {
        report.diverge(
            n,
            format!(
                "{copy} ({size} bytes) hashes to {}, the ledger says {} ({} bytes)",
                actual.to_hex(),
                expected.to_hex(),
                record.size
            ),
        );
    }
    Ok(true)
}

fn check_lock(
    backend: &dyn Backend,
    walk: &mut Walk<'_>,
    raw_key: &[u8],
    vkey: VersionTag,
    name: &str,
    report: &mut IntegrityReport,
) -> Result<(), StoreError> {
    // `None`: damaged, and named here.
    let read = |backend: &dyn Backend, walk: &Walk<'_>, report: &mut IntegrityReport| match backend
        .get(Keyspace::Locks, raw_key)
    {
        Ok(stored) => Ok(Some(stored)),
        Err(err) if is_damage(&err) => {
            report.diverge(
                walk.locks.get(&vkey).map(|(n, _)| *n),
                format!("the lock record (retention, holds) of {name} could not be read: {}", damage(&err)),
            );
            Ok(None)
        }
        Err(err) => Err(StoreError::backend("reading a lock record", err)),
    };
    let matches = |stored: &Option<Vec<u8>>, walk: &Walk<'_>| match (walk.locks.get(&vkey), stored) {
        (None, None) => true,
        (Some((_, None)), _) => true,
        (Some((_, Some(expected))), Some(raw)) => *expected == sha256(raw),
        _ => false,
    };
    let Some(mut stored) = read(backend, walk, report)? else { return Ok(()) };
    if !matches(&stored, walk) {
        // A retention or hold change may have landed after the walk: read on.
        walk.catch_up(report)?;
        let Some(again) = read(backend, walk, report)? else { return Ok(()) };
        stored = again;
    }
    if !matches(&stored, walk) {
        let n = walk.locks.get(&vkey).map(|(n, _)| *n);
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
    let mut start: Vec<u8> = Vec::new();
    loop {
        let mut last: Option<Vec<u8>> = None;
        let mut damaged = None;
        for item in backend.scan(Keyspace::Locks, &start, b"") {
            let raw_key = match item {
                Ok((raw_key, _)) => raw_key,
                Err(err) if is_damage(&err) => {
                    damaged = Some(err);
                    break;
                }
                Err(err) => return Err(StoreError::backend("reading lock records", err)),
            };
            check_lock_orphan(backend, walk, report, &raw_key)?;
            last = Some(raw_key);
        }
        let Some(err) = damaged else { return Ok(()) };
        // The lock records of versions in the stretch are named where their
        // versions are checked; here only the stretch, and on after it.
        let after = last.unwrap_or(start);
        let locks = walk.locks.iter().map(|(t, (n, _))| (*n, *t));
        let sequences = locks.chain(walk.written.iter().map(|(t, w)| (w.sequence, *t)));
        let candidates = version_keys_at(walk, sequences.collect())?;
        let resume = next_readable(backend, Keyspace::Locks, candidates, &after, "reading lock records")?;
        unreadable_range(report, "lock records", &after, resume.at.as_deref(), &err);
        match resume.at {
            Some(next) => start = next,
            None => return Ok(()),
        }
    }
}

fn check_lock_orphan(
    backend: &dyn Backend,
    walk: &mut Walk<'_>,
    report: &mut IntegrityReport,
    raw_key: &[u8],
) -> Result<(), StoreError> {
    match backend.get(Keyspace::Versions, raw_key) {
        Ok(Some(_)) => return Ok(()),
        Ok(None) => {}
        // Its version's record is damaged: named where versions are checked.
        Err(err) if is_damage(&err) => return Ok(()),
        Err(err) => return Err(StoreError::backend("reading versions", err)),
    }
    walk.catch_up(report)?;
    let orphan = match split_version_key(raw_key) {
        Some((bucket, key, id)) => {
            if walk.purged.contains(&walk.tag(raw_key)) {
                return Ok(());
            }
            format!("a lock record for {bucket}/{key} version {id}, which does not exist")
        }
        None => "a lock record under a malformed key".to_owned(),
    };
    report.diverge(None, orphan);
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
