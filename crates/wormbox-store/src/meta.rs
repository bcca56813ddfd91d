//! The `meta` keyspace: every key the archive keeps there, and how each value
//! is read and written.
//!
//! Invariant: no other file names a meta key or decodes a meta value, so an
//! entry's layout is defined once. A new entry (a replication cursor, a Merkle
//! frontier) is one key here with one `load_*` and one `*_entry` function.
//! Loads read through a `View` (the backend, or the writer's transaction);
//! `*_entry` returns the key and value to write, for whichever batch holds it.

use wormbox_model::{Digest, Timestamp};

use crate::StoreError;
use crate::backend::Keyspace;
use crate::codec::{self, Reader, Writer};
use crate::ledger::GENESIS;
use crate::merkle::Frontier;
use crate::view::View;

/// The compliance clock's high-water mark and the last version-id sequence.
pub(crate) const CLOCK: &[u8] = b"clock";
/// The newest ledger entry's sequence and chain hash.
pub(crate) const LEDGER_HEAD: &[u8] = b"ledger-head";
/// The sequence of the last signed checkpoint.
pub(crate) const LAST_CHECKPOINT: &[u8] = b"last-checkpoint";
/// The on-disk format version (`format.rs`).
pub(crate) const FORMAT: &[u8] = b"format-version";
/// Per replication rule (the name follows): the ledger sequence replicated through.
const REPLICA_CURSOR: &[u8] = b"replica-cursor/";
/// Per replication rule and version (`rule`, 0, the version's key follow):
/// the replica's version id of that version or marker.
const REPLICA_VERSION: &[u8] = b"replica-version/";
/// Per version whose local bytes were released (the version's key follows):
/// where they live now, the rule and the replica's version id.
const BYTES_AT: &[u8] = b"bytes-at/";
/// Per access key (the key follows): the principal's S3 secret, sealed by
/// the application layer under the appliance's master key. To the store it
/// is an opaque blob: it never decodes, logs or ledgers it.
const S3_KEY: &[u8] = b"s3-key/";
/// The right edge of the ledger's Merkle tree (`merkle::Frontier`): its
/// size and peaks, written with the ledger head by every group, so that a
/// start resumes the tree from what the writer stored, never from ledger
/// entries read back (which an edit of the files could have changed).
const MERKLE_FRONTIER: &[u8] = b"merkle-frontier";
/// Per complete subtree of the ledger's Merkle tree at least
/// `merkle::STORED_HEIGHT` high (its height, one byte, and its index, eight,
/// follow): its root. Written in the group whose entry completes it.
const MERKLE_NODE: &[u8] = b"merkle-node/";
/// Per complete tile of the ledger's Merkle tree (C2SP tlog-tiles: the 256
/// hashes at height `8 * level` under one node of height `8 * level + 8`;
/// the level, one byte, and the tile's index, eight, follow): its 8,192
/// bytes, written in the group whose entry completes the tile (format 3).
const MERKLE_TILE: &[u8] = b"merkle-tile/";
/// Per checkpoint and witness (the checkpoint's sequence, eight bytes, and
/// the witness's name follow): the witness's cosignature line.
const WITNESS_COSIGNATURE: &[u8] = b"witness-cosignature/";
/// Per witness (its name follows): the sequence of the newest checkpoint it
/// cosigned and its timestamp.
const WITNESS_LAST: &[u8] = b"witness-last/";
/// Per witness (its name follows): its last refusal, cleared by its next
/// cosignature.
const WITNESS_REFUSAL: &[u8] = b"witness-refusal/";
/// Per witness (its name follows): the first refusal that said the ledger
/// forked; never replaced or cleared.
const WITNESS_FORK: &[u8] = b"witness-fork/";

fn load(view: &(impl View + ?Sized), key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    view.get(Keyspace::Meta, key)
}

/// The persisted clock mark and version-id sequence, if any commit wrote one.
pub(crate) fn load_clock(view: &(impl View + ?Sized)) -> Result<Option<(Timestamp, u64)>, StoreError> {
    load(view, CLOCK)?.map(|raw| codec::decode_clock(&raw).map_err(StoreError::from)).transpose()
}

/// The key and value that persist the clock mark.
pub(crate) fn clock_entry(time: Timestamp, sequence: u64) -> (Vec<u8>, Vec<u8>) {
    (CLOCK.to_vec(), codec::encode_clock(time, sequence))
}

/// The sequence and hash of the newest ledger entry; genesis when none was written.
pub(crate) fn load_ledger_head(view: &(impl View + ?Sized)) -> Result<(u64, Digest), StoreError> {
    match load(view, LEDGER_HEAD)? {
        Some(raw) => decode_ledger_head(&raw),
        None => Ok((0, GENESIS)),
    }
}

fn decode_ledger_head(raw: &[u8]) -> Result<(u64, Digest), StoreError> {
    let mut r = Reader::new(raw, "ledger head")?;
    let sequence = r.u64()?;
    let head = r.digest()?;
    r.end()?;
    Ok((sequence, head))
}

/// The key and value that record the ledger head.
pub(crate) fn ledger_head_entry(sequence: u64, head: &Digest) -> (Vec<u8>, Vec<u8>) {
    (LEDGER_HEAD.to_vec(), Writer::new().u64(sequence).raw(&head.0).finish())
}

/// The sequence of the last signed checkpoint, if one was signed.
pub(crate) fn load_last_checkpoint(view: &(impl View + ?Sized)) -> Result<Option<u64>, StoreError> {
    Ok(load_fixed(view, LAST_CHECKPOINT, "the last checkpoint mark is malformed")?.map(u64::from_be_bytes))
}

/// A fixed-width value, or data loss named by `malformed`.
fn load_fixed<const N: usize>(
    view: &(impl View + ?Sized),
    key: &[u8],
    malformed: &str,
) -> Result<Option<[u8; N]>, StoreError> {
    load(view, key)?
        .map(|raw| <[u8; N]>::try_from(raw.as_slice()).map_err(|_| StoreError::DataLoss { what: malformed.to_owned() }))
        .transpose()
}

/// The key and value that record the last signed checkpoint.
pub(crate) fn last_checkpoint_entry(sequence: u64) -> (Vec<u8>, Vec<u8>) {
    (LAST_CHECKPOINT.to_vec(), sequence.to_be_bytes().to_vec())
}

/// The stored frontier of the ledger's Merkle tree, if one was written.
pub(crate) fn load_merkle_frontier(view: &(impl View + ?Sized)) -> Result<Option<Frontier>, StoreError> {
    let Some(raw) = load(view, MERKLE_FRONTIER)? else { return Ok(None) };
    let malformed = || StoreError::DataLoss { what: "the stored Merkle tree frontier is malformed".to_owned() };
    let mut r = Reader::new(&raw, "merkle frontier").map_err(|_| malformed())?;
    let size = r.u64().map_err(|_| malformed())?;
    let peaks = (0..size.count_ones()).map(|_| r.digest()).collect::<Result<Vec<_>, _>>().map_err(|_| malformed())?;
    r.end().map_err(|_| malformed())?;
    Frontier::from_peaks(size, peaks).ok_or_else(malformed).map(Some)
}

/// The key and value that store the frontier of the ledger's Merkle tree.
pub(crate) fn merkle_frontier_entry(frontier: &Frontier) -> (Vec<u8>, Vec<u8>) {
    let mut w = Writer::with_capacity(8 + 32 * frontier.peaks().len());
    w.u64(frontier.size());
    for peak in frontier.peaks() {
        w.raw(&peak.0);
    }
    (MERKLE_FRONTIER.to_vec(), w.finish())
}

fn merkle_node_key(height: u32, index: u64) -> Vec<u8> {
    let height = u8::try_from(height).expect("a tree of at most 2^64 leaves");
    [MERKLE_NODE, &[height], &index.to_be_bytes()].concat()
}

/// Where a scan of the stored nodes of `height` from `first` on starts, and
/// the prefix it stays within.
pub(crate) fn merkle_node_run(height: u32, first: u64) -> (Vec<u8>, Vec<u8>) {
    let start = merkle_node_key(height, first);
    let prefix = start[..MERKLE_NODE.len() + 1].to_vec();
    (start, prefix)
}

/// The stored root of the Merkle subtree of `height` at `index`, if stored.
pub(crate) fn load_merkle_node(
    view: &(impl View + ?Sized),
    height: u32,
    index: u64,
) -> Result<Option<Digest>, StoreError> {
    Ok(load_fixed::<32>(view, &merkle_node_key(height, index), "a stored Merkle tree node is malformed")?.map(Digest))
}

/// The key and value that store the root of a complete Merkle subtree.
pub(crate) fn merkle_node_entry(height: u32, index: u64, root: &Digest) -> (Vec<u8>, Vec<u8>) {
    (merkle_node_key(height, index), root.0.to_vec())
}

fn merkle_tile_key(level: u8, index: u64) -> Vec<u8> {
    [MERKLE_TILE, &[level], &index.to_be_bytes()].concat()
}

/// The stored tile of the Merkle tree at `level` and `index`, if stored: its
/// 256 hashes, leftmost first.
pub(crate) fn load_merkle_tile(
    view: &(impl View + ?Sized),
    level: u8,
    index: u64,
) -> Result<Option<Vec<Digest>>, StoreError> {
    let Some(raw) = load(view, &merkle_tile_key(level, index))? else { return Ok(None) };
    if raw.len() != crate::tiles::TILE_WIDTH as usize * 32 {
        return Err(StoreError::DataLoss {
            what: format!("the stored Merkle tree tile at level {level}, index {index} is malformed"),
        });
    }
    Ok(Some(raw.chunks_exact(32).map(|h| Digest::from_slice(h).expect("32 bytes")).collect()))
}

/// The key and value that store a complete tile of the Merkle tree.
pub(crate) fn merkle_tile_entry(level: u8, index: u64, hashes: &[Digest]) -> (Vec<u8>, Vec<u8>) {
    debug_assert_eq!(hashes.len() as u64, crate::tiles::TILE_WIDTH);
    (merkle_tile_key(level, index), hashes.iter().flat_map(|h| h.0).collect())
}

/// The recorded format version, if one was recorded.
pub(crate) fn load_format(view: &(impl View + ?Sized)) -> Result<Option<u32>, StoreError> {
    Ok(load_fixed(view, FORMAT, "the archive's format version is malformed")?.map(u32::from_be_bytes))
}

/// The key and value that record the format version.
pub(crate) fn format_entry(version: u32) -> (Vec<u8>, Vec<u8>) {
    (FORMAT.to_vec(), version.to_be_bytes().to_vec())
}

fn replica_cursor_key(rule: &str) -> Vec<u8> {
    [REPLICA_CURSOR, rule.as_bytes()].concat()
}

fn replica_version_key(rule: &str, version_key: &[u8]) -> Vec<u8> {
    [REPLICA_VERSION, rule.as_bytes(), &[0], version_key].concat()
}

/// The ledger sequence replication rule `rule` has replicated through (0: none).
pub(crate) fn load_replica_cursor(view: &(impl View + ?Sized), rule: &str) -> Result<u64, StoreError> {
    let malformed = "a replication cursor is malformed";
    Ok(load_fixed(view, &replica_cursor_key(rule), malformed)?.map_or(0, u64::from_be_bytes))
}

/// The key and value that record `rule`'s cursor.
pub(crate) fn replica_cursor_entry(rule: &str, through: u64) -> (Vec<u8>, Vec<u8>) {
    (replica_cursor_key(rule), through.to_be_bytes().to_vec())
}

/// The replica's version id of the version stored under `version_key`, if
/// `rule` replicated it.
pub(crate) fn load_replica_version(
    view: &(impl View + ?Sized),
    rule: &str,
    version_key: &[u8],
) -> Result<Option<String>, StoreError> {
    load(view, &replica_version_key(rule, version_key))?
        .map(|raw| {
            String::from_utf8(raw)
                .map_err(|_| StoreError::DataLoss { what: "a replica version id is not UTF-8".to_owned() })
        })
        .transpose()
}

/// The key and value that record the replica's version id of a version.
pub(crate) fn replica_version_entry(rule: &str, version_key: &[u8], replica_id: &str) -> (Vec<u8>, Vec<u8>) {
    (replica_version_key(rule, version_key), replica_id.as_bytes().to_vec())
}

/// The recorded replica copies of `rule`, in key order, after the version
/// key `after` (empty: from the first): `(version key, replica id)`, at most
/// `limit` of them.
pub(crate) fn scan_replica_versions(
    backend: &dyn crate::backend::Backend,
    rule: &str,
    after: &[u8],
    limit: usize,
) -> Result<Vec<(Vec<u8>, String)>, StoreError> {
    let prefix = [REPLICA_VERSION, rule.as_bytes(), &[0]].concat();
    let start = if after.is_empty() { prefix.clone() } else { [prefix.as_slice(), after, &[0]].concat() };
    let mut out = Vec::new();
    for item in backend.scan(Keyspace::Meta, &start, &prefix) {
        let (key, raw) = item.map_err(|e| StoreError::backend("reading replica copies", e))?;
        let id = String::from_utf8(raw)
            .map_err(|_| StoreError::DataLoss { what: "a replica version id is not UTF-8".to_owned() })?;
        out.push((key[prefix.len()..].to_vec(), id));
        if out.len() == limit {
            break;
        }
    }
    Ok(out)
}

/// Where a version's bytes live when they are no longer local: the rule and
/// the replica's version id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BytesAt {
    /// The replication rule whose replica holds them.
    pub rule: String,
    /// The replica's version id.
    pub replica_id: String,
}

fn bytes_at_key(version_key: &[u8]) -> Vec<u8> {
    [BYTES_AT, version_key].concat()
}

/// Where the bytes of the version stored under `version_key` live, if they
/// were released locally (`None`: they are local).
pub(crate) fn load_bytes_at(view: &(impl View + ?Sized), version_key: &[u8]) -> Result<Option<BytesAt>, StoreError> {
    load(view, &bytes_at_key(version_key))?
        .map(|raw| {
            let mut r = Reader::new(&raw, "bytes location")?;
            let rule = r.string()?;
            let replica_id = r.string()?;
            r.end()?;
            Ok(BytesAt { rule, replica_id })
        })
        .transpose()
}

/// The key and value that record where a released version's bytes live.
pub(crate) fn bytes_at_entry(version_key: &[u8], at: &BytesAt) -> (Vec<u8>, Vec<u8>) {
    (bytes_at_key(version_key), Writer::new().str(&at.rule).str(&at.replica_id).finish())
}

/// The key of a version's bytes location, to remove with the version.
pub(crate) fn bytes_at_delete_key(version_key: &[u8]) -> Vec<u8> {
    bytes_at_key(version_key)
}

fn s3_key_key(access_key: &str) -> Vec<u8> {
    [S3_KEY, access_key.as_bytes()].concat()
}

/// The sealed S3 secret of `access_key`, if it has one.
pub(crate) fn load_s3_key(view: &(impl View + ?Sized), access_key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    load(view, &s3_key_key(access_key))
}

/// The key and value that record `access_key`'s sealed S3 secret.
pub(crate) fn s3_key_entry(access_key: &str, sealed: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (s3_key_key(access_key), sealed.to_vec())
}

/// The key of `access_key`'s sealed S3 secret, to remove when it is revoked.
pub(crate) fn s3_key_delete_key(access_key: &str) -> Vec<u8> {
    s3_key_key(access_key)
}

/// Whether any commit ever wrote: every archive has a clock mark or a ledger
/// head after its first.
pub(crate) fn ever_written(view: &(impl View + ?Sized)) -> Result<bool, StoreError> {
    Ok(load(view, CLOCK)?.is_some() || load(view, LEDGER_HEAD)?.is_some())
}

/// A witness's cosignature line of the checkpoint at `sequence`, keyed so
/// that one checkpoint's cosignatures are one prefix.
pub(crate) fn witness_cosignature_entry(sequence: u64, witness: &str, line: &str) -> (Vec<u8>, Vec<u8>) {
    ([WITNESS_COSIGNATURE, &sequence.to_be_bytes(), witness.as_bytes()].concat(), line.as_bytes().to_vec())
}

/// The cosignature lines of the checkpoint at `sequence`, by witness name.
pub(crate) fn scan_witness_cosignatures(
    backend: &dyn crate::backend::Backend,
    sequence: u64,
) -> Result<Vec<(String, String)>, StoreError> {
    let prefix = [WITNESS_COSIGNATURE, &sequence.to_be_bytes()].concat();
    let malformed = || StoreError::DataLoss { what: "a stored witness cosignature is malformed".to_owned() };
    let mut out = Vec::new();
    for item in backend.scan(Keyspace::Meta, &prefix, &prefix) {
        let (key, raw) = item.map_err(|e| StoreError::backend("reading witness cosignatures", e))?;
        let name = String::from_utf8(key[prefix.len()..].to_vec()).map_err(|_| malformed())?;
        out.push((name, String::from_utf8(raw).map_err(|_| malformed())?));
    }
    Ok(out)
}

/// The newest checkpoint `witness` cosigned: its sequence and the
/// cosignature's timestamp.
pub(crate) fn load_witness_last(view: &(impl View + ?Sized), witness: &str) -> Result<Option<(u64, u64)>, StoreError> {
    let raw = load_fixed::<16>(view, &[WITNESS_LAST, witness.as_bytes()].concat(), "a witness record is malformed")?;
    Ok(raw.map(|raw| {
        let (sequence, timestamp) = raw.split_at(8);
        (
            u64::from_be_bytes(sequence.try_into().expect("8 bytes")),
            u64::from_be_bytes(timestamp.try_into().expect("8 bytes")),
        )
    }))
}

/// Every witness's newest cosigned checkpoint: name, sequence, timestamp.
pub(crate) fn scan_witness_last(backend: &dyn crate::backend::Backend) -> Result<Vec<(String, u64, u64)>, StoreError> {
    let malformed = || StoreError::DataLoss { what: "a witness record is malformed".to_owned() };
    let mut out = Vec::new();
    for item in backend.scan(Keyspace::Meta, WITNESS_LAST, WITNESS_LAST) {
        let (key, raw) = item.map_err(|e| StoreError::backend("reading witness records", e))?;
        let name = String::from_utf8(key[WITNESS_LAST.len()..].to_vec()).map_err(|_| malformed())?;
        let raw: [u8; 16] = raw.try_into().map_err(|_| malformed())?;
        let (sequence, timestamp) = raw.split_at(8);
        let sequence = u64::from_be_bytes(sequence.try_into().expect("8 bytes"));
        out.push((name, sequence, u64::from_be_bytes(timestamp.try_into().expect("8 bytes"))));
    }
    Ok(out)
}

/// The key and value that record the newest checkpoint `witness` cosigned.
pub(crate) fn witness_last_entry(witness: &str, sequence: u64, timestamp: u64) -> (Vec<u8>, Vec<u8>) {
    ([WITNESS_LAST, witness.as_bytes()].concat(), [sequence.to_be_bytes(), timestamp.to_be_bytes()].concat())
}

/// A witness's refusal as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessRefusal {
    /// The witness's name.
    pub witness: String,
    /// The checkpoint it refused.
    pub sequence: u64,
    /// The HTTP status it answered.
    pub status: u16,
    /// What it said, or what the appliance saw.
    pub why: String,
    /// When (compliance clock).
    pub time: Timestamp,
}

impl WitnessRefusal {
    /// Whether the refusal says the ledger forked: the witness holds another
    /// root at a size it cosigned (409), a proof did not link (422), or it
    /// holds a larger tree than the ledger's newest checkpoint.
    pub fn is_fork(&self) -> bool {
        matches!(self.status, 409 | 422)
    }
}

/// The key of `witness`'s last refusal.
pub(crate) fn witness_refusal_key(witness: &str) -> Vec<u8> {
    [WITNESS_REFUSAL, witness.as_bytes()].concat()
}

fn encode_witness_refusal(refusal: &WitnessRefusal) -> Vec<u8> {
    let mut w = Writer::new();
    w.u64(refusal.sequence).u32(u32::from(refusal.status)).i64(refusal.time.0).str(&refusal.why);
    w.finish()
}

/// The key and value that record a witness's last refusal.
pub(crate) fn witness_refusal_entry(refusal: &WitnessRefusal) -> (Vec<u8>, Vec<u8>) {
    (witness_refusal_key(&refusal.witness), encode_witness_refusal(refusal))
}

/// The key and value that record a witness's first fork refusal.
pub(crate) fn witness_fork_entry(refusal: &WitnessRefusal) -> (Vec<u8>, Vec<u8>) {
    ([WITNESS_FORK, refusal.witness.as_bytes()].concat(), encode_witness_refusal(refusal))
}

/// `witness`'s first fork refusal, if one is recorded.
pub(crate) fn load_witness_fork(
    view: &(impl View + ?Sized),
    witness: &str,
) -> Result<Option<WitnessRefusal>, StoreError> {
    load(view, &[WITNESS_FORK, witness.as_bytes()].concat())?
        .map(|raw| decode_witness_refusal(witness.to_owned(), &raw))
        .transpose()
}

/// Every witness's first fork refusal.
pub(crate) fn scan_witness_forks(backend: &dyn crate::backend::Backend) -> Result<Vec<WitnessRefusal>, StoreError> {
    scan_refusals(backend, WITNESS_FORK)
}

fn decode_witness_refusal(witness: String, raw: &[u8]) -> Result<WitnessRefusal, StoreError> {
    let malformed = || StoreError::DataLoss { what: "a stored witness refusal is malformed".to_owned() };
    let mut r = Reader::new(raw, "witness refusal").map_err(|_| malformed())?;
    let (sequence, status, time, why) = (
        r.u64().map_err(|_| malformed())?,
        r.u32().map_err(|_| malformed())?,
        r.i64().map_err(|_| malformed())?,
        r.string().map_err(|_| malformed())?,
    );
    r.end().map_err(|_| malformed())?;
    let status = u16::try_from(status).map_err(|_| malformed())?;
    Ok(WitnessRefusal { witness, sequence, status, why, time: Timestamp(time) })
}

/// `witness`'s last refusal, if one is recorded.
pub(crate) fn scan_witness_refusals_in(
    view: &(impl View + ?Sized),
    witness: &str,
) -> Result<Option<WitnessRefusal>, StoreError> {
    load(view, &witness_refusal_key(witness))?.map(|raw| decode_witness_refusal(witness.to_owned(), &raw)).transpose()
}

/// Every witness's last refusal, by name.
pub(crate) fn scan_witness_refusals(backend: &dyn crate::backend::Backend) -> Result<Vec<WitnessRefusal>, StoreError> {
    scan_refusals(backend, WITNESS_REFUSAL)
}

fn scan_refusals(backend: &dyn crate::backend::Backend, prefix: &[u8]) -> Result<Vec<WitnessRefusal>, StoreError> {
    let malformed = || StoreError::DataLoss { what: "a stored witness refusal is malformed".to_owned() };
    let mut out = Vec::new();
    for item in backend.scan(Keyspace::Meta, prefix, prefix) {
        let (key, raw) = item.map_err(|e| StoreError::backend("reading witness refusals", e))?;
        let witness = String::from_utf8(key[prefix.len()..].to_vec()).map_err(|_| malformed())?;
        out.push(decode_witness_refusal(witness, &raw)?);
    }
    Ok(out)
}
