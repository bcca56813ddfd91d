//! The ledger's Merkle tree (`merkle.rs`) as the archive keeps it: the root
//! of every complete subtree of at least `merkle::STORED_HEIGHT` is a `meta`
//! entry, and so is every complete tile (C2SP tlog-tiles: the 256 hashes at
//! height `8 * level` under one node, leaves at level 0), both written in
//! the same group as the ledger entry that completes them. A proof makes at
//! most two reads per tile level (the leaf's tile, and the run at the tree's
//! right edge) and recomputes the subtrees within what it read: a stored
//! tile, or where no complete tile holds them, one run of up to 256 entries
//! (level 0) or stored nodes. The frontier the writer extends is stored with
//! the ledger head by every group and read back at open, so a start
//! rebuilds nothing and never takes the tree from entries read back (an
//! edited entry is not laundered into the next signed root; the hashes the
//! writer resumes its tiles with are taken only if they make the frontier).
//! An archive of an older format gets what it lacks built once at its first
//! open (the format's upgrade), only after its whole ledger verified.
//!
//! Invariant: a stored node or tile is only ever written for a subtree whose
//! leaves are all in the ledger, by the group that wrote the last of them
//! (or by the one-time build, from the verified ledger), and never with
//! other bytes than the first time (an upgrade cut short and run again
//! writes the same).

use std::collections::BTreeMap;

use wormbox_model::{Digest, VersionId};

use crate::backend::{Backend, Batch, Durability, Keyspace};
use crate::format::FormatState;
use crate::ledger::{LedgerEntry, LedgerOp};
use crate::merkle::{self, Frontier, STORED_HEIGHT, Subtrees};
use crate::tiles::{TILE_HEIGHT, TILE_WIDTH};
use crate::{StoreError, ledger, meta};

/// Hashes (nodes, and 256 per tile) written per batch by the upgrade.
const BUILD_BATCH_NODES: usize = 4096;

/// A tile's level and index.
type TileAt = (u8, u64);

/// The tree of up to `size` leaves as stored under `backend` (whose ledger
/// has `head` entries), for one proof or root. Per level, at most two
/// reads: a complete tile (256 hashes, `meta.rs`) serves every subtree within it;
/// a run of fewer than 256 hashes at the tree's right edge (or a tile not
/// stored) is read as one run of entries (level 0) or of stored nodes, once.
/// The right edge of the tree of exactly the stored frontier's size is the
/// frontier's peaks.
pub(crate) struct StoredTree<'a> {
    backend: &'a dyn Backend,
    size: u64,
    head: u64,
    /// Only stored nodes and entries, never a tile or the frontier: what
    /// rebuilds the frontier from the stored tree.
    nodes_only: bool,
    tiles: Vec<(TileAt, Option<Vec<Digest>>)>,
    runs: Vec<(TileAt, Vec<Digest>)>,
    frontier: Option<Option<Frontier>>,
}

impl<'a> StoredTree<'a> {
    /// The tree under `backend`, whose ledger has `head` entries, asked only
    /// about subtrees of its first `size`.
    pub(crate) fn new(backend: &'a dyn Backend, size: u64, head: u64) -> StoredTree<'a> {
        StoredTree { backend, size, head, nodes_only: false, tiles: Vec::new(), runs: Vec::new(), frontier: None }
    }

    /// A tile, if the ledger holds all of it and it is stored; never one
    /// past the ledger's head (nothing written there is the tree's).
    fn tile(&mut self, level: u8, index: u64) -> Result<Option<&[Digest]>, StoreError> {
        let needed = crate::tiles::Tile::Hashes { level, index, width: TILE_WIDTH as u16 }.tree_size_needed();
        if self.nodes_only || needed.is_none_or(|needed| needed > self.head) {
            return Ok(None);
        }
        let at = match self.tiles.iter().position(|(at, _)| *at == (level, index)) {
            Some(at) => at,
            None => {
                let tile = meta::load_merkle_tile(self.backend, level, index)?;
                self.tiles.push(((level, index), tile));
                self.tiles.len() - 1
            }
        };
        Ok(self.tiles[at].1.as_deref())
    }

    /// The stored frontier's peak of `height`, `index`, if the frontier is
    /// of this tree's size and has a peak there.
    fn peak(&mut self, height: u32, index: u64) -> Result<Option<Digest>, StoreError> {
        if self.nodes_only {
            return Ok(None);
        }
        let Some(at) = Frontier::peak_positions(self.size).position(|peak| peak == (height, index)) else {
            return Ok(None);
        };
        if self.frontier.is_none() {
            self.frontier = Some(meta::load_merkle_frontier(self.backend)?.filter(|f| f.size() == self.size));
        }
        Ok(self.frontier.as_ref().and_then(Option::as_ref).map(|frontier| frontier.peaks()[at]))
    }

    /// The hashes of tile `index` of `level` that the tree of `size` holds
    /// (all 256, or the right edge's fewer), read as one run: leaf hashes of
    /// the entries at level 0, stored nodes above.
    fn run(&mut self, level: u8, index: u64) -> Result<&[Digest], StoreError> {
        if let Some(at) = self.runs.iter().position(|(at, _)| *at == (level, index)) {
            return Ok(&self.runs[at].1);
        }
        let height = u32::from(level) * TILE_HEIGHT;
        let first = index * TILE_WIDTH;
        let count = TILE_WIDTH.min((self.size >> height).saturating_sub(first));
        let run = if level == 0 {
            leaf_hashes(self.backend, first, count)?
        } else {
            node_run(self.backend, height, first, count)?
        };
        self.runs.push(((level, index), run));
        Ok(&self.runs.last().expect("just pushed").1)
    }
}

impl Subtrees for StoredTree<'_> {
    type Error = StoreError;

    fn perfect(&mut self, height: u32, index: u64) -> Result<Digest, StoreError> {
        if self.nodes_only && height >= STORED_HEIGHT {
            return meta::load_merkle_node(self.backend, height, index)?.ok_or_else(|| StoreError::DataLoss {
                what: format!("the ledger's Merkle tree has no stored node at height {height}, index {index}"),
            });
        }
        let level = u8::try_from(height / TILE_HEIGHT).expect("heights below 64");
        let within = height % TILE_HEIGHT;
        let first = index << within;
        let (tile, offset) = (first / TILE_WIDTH, (first % TILE_WIDTH) as usize);
        let span = offset..offset + (1 << within);
        if let Some(row) = self.tile(level, tile)? {
            return Ok(merkle::perfect_root(&row[span]));
        }
        if let Some(peak) = self.peak(height, index)? {
            return Ok(peak);
        }
        let run = self.run(level, tile)?;
        run.get(span).map(merkle::perfect_root).ok_or_else(|| StoreError::DataLoss {
            what: format!(
                "the ledger's Merkle tree lacks hash {} at height {}",
                tile * TILE_WIDTH + run.len() as u64,
                u32::from(level) * TILE_HEIGHT
            ),
        })
    }
}

/// The `count` stored nodes of `height` from index `first` on, read as one
/// run of adjacent keys.
fn node_run(backend: &dyn Backend, height: u32, first: u64, count: u64) -> Result<Vec<Digest>, StoreError> {
    let mut out = Vec::with_capacity(count as usize);
    let (start, prefix) = meta::merkle_node_run(height, first);
    for item in backend.scan(Keyspace::Meta, &start, &prefix).take(count as usize) {
        let (key, value) = item.map_err(|e| StoreError::backend("reading the Merkle tree", e))?;
        let index = first + out.len() as u64;
        let node = meta::merkle_node_entry(height, index, &Digest([0; 32])).0;
        let Some(digest) = Digest::from_slice(&value).filter(|_| key == node) else {
            return Err(StoreError::DataLoss {
                what: format!("the ledger's Merkle tree has no stored node at height {height}, index {index}"),
            });
        };
        out.push(digest);
    }
    if (out.len() as u64) < count {
        let index = first + out.len() as u64;
        return Err(StoreError::DataLoss {
            what: format!("the ledger's Merkle tree has no stored node at height {height}, index {index}"),
        });
    }
    Ok(out)
}

/// Complete tiles, from the subtrees a `Frontier` tells of as it grows (a
/// subtree whose height is a multiple of `TILE_HEIGHT` is one hash of its
/// level's row); a row that does not begin at a tile's first hash (a tree
/// resumed from a stored frontier) completes no tile.
#[derive(Debug, Default)]
pub(crate) struct TileRows {
    rows: Vec<Vec<Digest>>,
}

impl TileRows {
    /// Takes one completed subtree; the tile it completes, if any: its
    /// level, index and 256 hashes.
    pub(crate) fn add(&mut self, height: u32, index: u64, root: &Digest) -> Option<(u8, u64, Vec<Digest>)> {
        if !height.is_multiple_of(TILE_HEIGHT) {
            return None;
        }
        let level = (height / TILE_HEIGHT) as usize;
        if self.rows.len() <= level {
            self.rows.resize_with(level + 1, Vec::new);
        }
        let row = &mut self.rows[level];
        let position = index % TILE_WIDTH;
        if position != row.len() as u64 {
            row.clear();
            if position != 0 {
                return None;
            }
        }
        row.push(*root);
        let level = u8::try_from(level).expect("heights below 64");
        (row.len() as u64 == TILE_WIDTH).then(|| (level, index / TILE_WIDTH, std::mem::take(row)))
    }
}

/// The hashes the writer recorded last at each tile level (leaves at level
/// 0, the roots of tiles below above), 256 per level by index, so that a
/// tile is stored as it completes without reading anything back. A slot
/// holds the hash last recorded at its index: an index given back by a
/// rollback or a failed commit is recorded again before its tile can
/// complete. Filled at open with the runs the writer resumes in.
#[derive(Debug, Default)]
pub(crate) struct RecentHashes {
    levels: Vec<Vec<Option<(u64, Digest)>>>,
}

impl RecentHashes {
    /// Records the root of a completed subtree, if its height is a tile level's.
    pub(crate) fn record(&mut self, height: u32, index: u64, hash: &Digest) {
        if !height.is_multiple_of(TILE_HEIGHT) {
            return;
        }
        let level = (height / TILE_HEIGHT) as usize;
        if self.levels.len() <= level {
            self.levels.resize_with(level + 1, || vec![None; TILE_WIDTH as usize]);
        }
        self.levels[level][(index % TILE_WIDTH) as usize] = Some((index, *hash));
    }

    fn get(&self, level: u8, index: u64) -> Option<Digest> {
        let slot = self.levels.get(usize::from(level))?[(index % TILE_WIDTH) as usize];
        slot.filter(|(at, _)| *at == index).map(|(_, hash)| hash)
    }
}

/// The hashes of the runs the tree of `frontier` ends in, per tile level,
/// for the writer to resume with: the leaves of up to 255 entries and up to
/// 255 stored nodes per level above. A run that cannot be read whole or
/// does not make the peaks the frontier holds (an entry changed or removed
/// while stopped) is left out: its tile will not be stored, and `verify`
/// names the entry.
pub(crate) fn recent_hashes(backend: &dyn Backend, frontier: &Frontier) -> Result<RecentHashes, StoreError> {
    let size = frontier.size();
    let mut recent = RecentHashes::default();
    let peaks: Vec<((u32, u64), Digest)> =
        Frontier::peak_positions(size).zip(frontier.peaks().iter().copied()).collect();
    for level in 0..u8::try_from(64 / TILE_HEIGHT).expect("eight levels") {
        let height = u32::from(level) * TILE_HEIGHT;
        let held = size >> height;
        if held == 0 {
            break;
        }
        let first = held - held % TILE_WIDTH;
        let count = held - first;
        let run = if level == 0 { leaf_hashes(backend, first, count) } else { node_run(backend, height, first, count) };
        // A damaged run is `verify`'s to name, not a reason not to open.
        let run = match run {
            Ok(run) => run,
            Err(StoreError::DataLoss { what }) => {
                tracing::error!(level, what, "the tile the ledger ends in will not be stored; run `wormbox verify`");
                continue;
            }
            Err(err) => return Err(err),
        };
        // The run's peaks, largest first, against the frontier's of these heights.
        let (mut made, mut at) = (Vec::new(), 0usize);
        for within in (0..TILE_HEIGHT).rev() {
            let width = 1usize << within;
            if count as usize & width != 0 {
                made.push(merkle::perfect_root(&run[at..at + width]));
                at += width;
            }
        }
        let held_peaks: Vec<Digest> =
            peaks.iter().filter(|((h, _), _)| h / TILE_HEIGHT == u32::from(level)).map(|(_, peak)| *peak).collect();
        if made != held_peaks {
            tracing::error!(
                level,
                "the ledger's last entries or Merkle tree nodes do not make the stored frontier (changed while \
                 stopped?): the tile they are in will not be stored; run `wormbox verify`"
            );
            continue;
        }
        for (offset, hash) in run.iter().enumerate() {
            recent.record(height, first + offset as u64, hash);
        }
    }
    Ok(recent)
}

/// The hashes of tile `index` of `level`, which the writer's group has just
/// completed (its node of height `8 * level + 8` is `root`), from `recent`;
/// from `view` only for hashes a rollback of more than 256 of them took
/// from `recent`, or that `recent_hashes` left out at open. An error (stored nothing) if a hash cannot be had or they
/// do not make `root`.
pub(crate) fn completed_tile(
    view: &dyn crate::view::View,
    recent: &RecentHashes,
    (level, index): (u8, u64),
    root: &Digest,
) -> Result<Vec<Digest>, String> {
    let first = index * TILE_WIDTH;
    let mut hashes = Vec::with_capacity(TILE_WIDTH as usize);
    let mut read_back = false;
    for at in first..first + TILE_WIDTH {
        let hash = match recent.get(level, at) {
            Some(hash) => Some(hash),
            None => {
                read_back = true;
                None
            }
        };
        let hash = match hash {
            Some(hash) => Some(hash),
            None if level == 0 => view
                .get(Keyspace::Ledger, &ledger::ledger_key(at + 1))
                .map_err(|e| format!("reading ledger entry {}: {e}", at + 1))?
                .and_then(|raw| leaf_of_stored(&raw)),
            None => meta::load_merkle_node(view, u32::from(level) * TILE_HEIGHT, at)
                .map_err(|e| format!("reading a Merkle tree node: {e}"))?,
        };
        hashes.push(hash.ok_or_else(|| format!("hash {at} of the tile is missing"))?);
    }
    // Hashes all from `recent` are the ones the frontier was built from
    // (recorded as it took them, or checked against it at open), so they
    // make `root`; hashing them again cost 1.3 % of 1 KiB ingest's CPU.
    if read_back && merkle::perfect_root(&hashes) != *root {
        return Err("its hashes do not make the node above it".to_owned());
    }
    debug_assert_eq!(merkle::perfect_root(&hashes), *root, "the writer's recent hashes make the node");
    Ok(hashes)
}

/// The leaf hash of a stored ledger entry (canonical bytes, then the chain
/// hash): the Merkle leaf covers exactly the bytes the chain hash covers.
pub(crate) fn leaf_of_stored(raw: &[u8]) -> Option<Digest> {
    ledger::split_stored(raw).map(|(canonical, _)| merkle::leaf_hash(canonical))
}

/// The leaf hashes of the `count` ledger entries after the first `first`.
pub(crate) fn leaf_hashes(backend: &dyn Backend, first: u64, count: u64) -> Result<Vec<Digest>, StoreError> {
    let mut out = Vec::with_capacity(count as usize);
    let start = ledger::ledger_key(first + 1);
    for item in backend.scan(Keyspace::Ledger, &start, b"").take(count as usize) {
        let (key, raw) = item.map_err(|e| StoreError::backend("reading the ledger", e))?;
        let sequence = first + 1 + out.len() as u64;
        if key != ledger::ledger_key(sequence) {
            return Err(StoreError::DataLoss { what: format!("ledger entry {sequence} is missing") });
        }
        let leaf = leaf_of_stored(&raw)
            .ok_or_else(|| StoreError::DataLoss { what: format!("ledger entry {sequence} is truncated") })?;
        out.push(leaf);
    }
    if (out.len() as u64) < count {
        return Err(StoreError::DataLoss { what: format!("ledger entry {} is missing", first + 1 + out.len() as u64) });
    }
    Ok(out)
}

/// The frontier of the tree of the ledger's first `size` entries, from the
/// stored nodes alone (never a tile or the stored frontier) and at most 255
/// entries; `None` if a node it needs was never stored (an archive written
/// before the tree).
pub(crate) fn load_frontier(backend: &dyn Backend, size: u64) -> Result<Option<Frontier>, StoreError> {
    let mut tree = StoredTree { nodes_only: true, ..StoredTree::new(backend, size, size) };
    let mut peaks = Vec::new();
    for (height, index) in Frontier::peak_positions(size) {
        if height >= STORED_HEIGHT && meta::load_merkle_node(backend, height, index)?.is_none() {
            return Ok(None);
        }
        peaks.push(tree.perfect(height, index)?);
    }
    Ok(Frontier::from_peaks(size, peaks))
}

/// The frontier the writer resumes at open, for a ledger of `head` entries:
/// the one stored with the head; for a new archive, the empty tree; for an
/// archive of an older format, the tree built or checked once by `upgrade`.
/// `signed_heads` gives the chain hash each stored checkpoint signs, by
/// sequence (read only for an upgrade).
pub(crate) fn open_tree(
    backend: &dyn Backend,
    format: FormatState,
    head: (u64, Digest),
    signed_heads: &dyn Fn() -> Result<BTreeMap<u64, Digest>, StoreError>,
) -> Result<Frontier, StoreError> {
    let size = head.0;
    // The frontier is written only with the format (a group of the writer,
    // an upgrade's last batch): an upgrade cut short leaves none.
    if format == FormatState::Unrecorded && meta::load_merkle_frontier(backend)?.is_some() {
        return Err(StoreError::DataLoss {
            what: "the archive holds a Merkle tree but its format record is gone: the archive's files were changed; \
                   run `wormbox verify --data-dir` and restore from a backup"
                .to_owned(),
        });
    }
    if format.version() < crate::format::FORMAT_VERSION {
        return upgrade(backend, format.version(), head, &signed_heads()?);
    }
    match meta::load_merkle_frontier(backend)? {
        Some(frontier) if frontier.size() == size => Ok(frontier),
        None if size == 0 => Ok(Frontier::default()),
        // Never rebuilt from entries read back here: an entry edited offline
        // (and the chain recomputed after it) would be signed into the next
        // root. Only an upgrade, which verifies the ledger first, builds it.
        Some(frontier) => Err(StoreError::DataLoss {
            what: format!(
                "the ledger's Merkle tree covers {} entries but the ledger has {size}: the archive's files were \
                 changed; run `wormbox verify --data-dir` and restore from a backup",
                frontier.size()
            ),
        }),
        None => Err(StoreError::DataLoss {
            what:
                "the ledger's Merkle tree frontier is missing: the archive's files were changed; run `wormbox verify \
                   --data-dir` and restore from a backup"
                    .to_owned(),
        }),
    }
}

/// Upgrades an archive of format 1 or 2: verifies its whole ledger (every
/// entry in sequence, chaining from genesis to the recorded head, and every
/// stored checkpoint's head on the way), builds the tree over it and its
/// tiles, holding every node and tile already stored to it (format 2, or an
/// upgrade cut short) and storing those missing (format 1: nodes and tiles;
/// format 2: tiles), and records the new format in one last batch (a crash
/// before it upgrades again, writing nothing other than it wrote). A ledger that does not verify is not upgraded, and the
/// archive does not open: a root signed over it would vouch for the edit.
fn upgrade(
    backend: &dyn Backend,
    from: u32,
    (size, head): (u64, Digest),
    checkpoints: &BTreeMap<u64, Digest>,
) -> Result<Frontier, StoreError> {
    let to = crate::format::FORMAT_VERSION;
    tracing::info!(
        entries = size,
        from,
        to,
        "upgrading the archive's format: verifying the ledger and building its Merkle tree's tiles"
    );
    let started = std::time::Instant::now();
    let refuse = |sequence: u64, why: &str| StoreError::DataLoss {
        what: format!(
            "the archive was not upgraded: ledger entry {sequence} {why}; run `wormbox verify --data-dir` and restore \
             from a backup"
        ),
    };
    let mut frontier = Frontier::default();
    let mut rows = TileRows::default();
    let mut chain = ledger::GENESIS;
    let mut batch = Batch::new();
    let mut pending = 0;
    let mut node_differs = None;
    for item in backend.scan(Keyspace::Ledger, &ledger::ledger_key(1), b"") {
        let (key, raw) = item.map_err(|e| StoreError::backend("reading the ledger", e))?;
        let sequence = frontier.size() + 1;
        if sequence > size {
            return Err(refuse(sequence, "lies beyond the recorded head"));
        }
        if key != ledger::ledger_key(sequence) {
            return Err(refuse(sequence, "is missing"));
        }
        let (canonical, stored) = ledger::split_stored(&raw).ok_or_else(|| refuse(sequence, "is truncated"))?;
        chain = ledger::chain_hash_over(&chain, canonical);
        if chain != stored {
            return Err(refuse(sequence, "does not hash to its stored chain hash"));
        }
        if checkpoints.get(&sequence).is_some_and(|signed| *signed != chain) {
            return Err(refuse(sequence, "is not what the checkpoint signed there names"));
        }
        let mut completed = Vec::new();
        frontier.push(merkle::leaf_hash(canonical), |height, index, root| {
            if let Some(tile) = rows.add(height, index, root) {
                completed.push(tile);
            }
            // A node already stored (format 2, or an upgrade cut short)
            // must be the one the verified ledger makes; format 1 stores the
            // ones it lacks.
            if height >= STORED_HEIGHT && node_differs.is_none() {
                match meta::load_merkle_node(backend, height, index) {
                    Ok(Some(stored)) if stored == *root => {}
                    Ok(None) if from < 2 => {
                        let (key, value) = meta::merkle_node_entry(height, index, root);
                        batch.put(Keyspace::Meta, key, value);
                        pending += 1;
                    }
                    Ok(_) => node_differs = Some(Ok((height, index))),
                    Err(err) => node_differs = Some(Err(err)),
                }
            }
        });
        match node_differs.take() {
            None => {}
            Some(Ok((height, index))) => {
                return Err(refuse(
                    sequence,
                    &format!(
                        "completes the Merkle tree node at height {height}, index {index}, stored otherwise or not at all"
                    ),
                ));
            }
            Some(Err(err)) => return Err(err),
        }
        for (level, index, hashes) in completed {
            match meta::load_merkle_tile(backend, level, index)? {
                Some(stored) if stored == hashes => {}
                Some(_) => {
                    return Err(refuse(
                        sequence,
                        &format!("completes the Merkle tree tile at level {level}, index {index}, stored otherwise"),
                    ));
                }
                None => {
                    let (key, value) = meta::merkle_tile_entry(level, index, &hashes);
                    batch.put(Keyspace::Meta, key, value);
                    pending += TILE_WIDTH as usize;
                }
            }
        }
        if pending >= BUILD_BATCH_NODES {
            commit(backend, std::mem::take(&mut batch))?;
            pending = 0;
        }
    }
    if frontier.size() != size {
        return Err(refuse(frontier.size() + 1, "is missing: the ledger ends before its recorded head"));
    }
    if chain != head {
        return Err(refuse(size, "does not hash to the recorded ledger head"));
    }
    // A tree stored before (format 2, or a build that kept one without
    // recording its format) must be the one the verified ledger makes; an
    // archive of format 2 always stored its frontier.
    match meta::load_merkle_frontier(backend)? {
        Some(stored) if stored != frontier => {
            return Err(refuse(size, "ends a ledger whose stored Merkle tree it does not make"));
        }
        None if from >= 2 && size > 0 => {
            return Err(refuse(size, "ends a ledger whose stored Merkle tree frontier is missing"));
        }
        _ => {}
    }
    for (key, value) in [meta::merkle_frontier_entry(&frontier), meta::format_entry(crate::format::FORMAT_VERSION)] {
        batch.put(Keyspace::Meta, key, value);
    }
    commit(backend, batch)?;
    tracing::info!(entries = size, seconds = started.elapsed().as_secs_f64(), to, "the archive's format is upgraded");
    Ok(frontier)
}

/// The most entries a probe of `written_entry` reads each way looking for
/// an entry that writes a version: the bound on a lookup's work.
const MAX_PROBE_ENTRIES: u64 = 4096;

/// The sequence of the entry that wrote version `id` (a version or a delete
/// marker) of `bucket`/`key`, among the first `head` entries. Ids are issued
/// in ledger order, so the entries that write versions carry increasing ids:
/// a binary search over sequences, each probe reading up to
/// `MAX_PROBE_ENTRIES` forward, then as many back, to the nearest such entry.
/// A lookup whose probe lands in a longer run of entries that write no
/// version is refused (the caller asks by ledger sequence instead).
pub(crate) fn written_entry(
    backend: &dyn Backend,
    head: u64,
    bucket: &str,
    key: &str,
    id: VersionId,
) -> Result<Option<u64>, StoreError> {
    written_entry_probing(backend, (head, bucket, key, id), MAX_PROBE_ENTRIES)
}

/// `written_entry`, with probes of `probe` entries each way.
fn written_entry_probing(
    backend: &dyn Backend,
    (head, bucket, key, id): (u64, &str, &str, VersionId),
    probe: u64,
) -> Result<Option<u64>, StoreError> {
    // Invariants: every writing entry before `low` has a smaller id, and
    // the first writing entry at or after `high` is `candidate` (none at
    // first). When `low` meets `high`, `candidate` is the first writing
    // entry whose id is not smaller: the version's, if it is its id.
    let end = head + 1;
    let (mut low, mut high, mut candidate) = (1, end, None);
    while low < high {
        let mid = low + (high - low) / 2;
        let ahead = high.min(mid.saturating_add(probe));
        match written_in(backend, mid, ahead, Direction::Forward)? {
            Some((sequence, found)) if found < id => low = sequence + 1,
            Some(first) => (high, candidate) = (mid, Some(first)),
            // None in mid..high: the first one from mid is the one from high.
            None if ahead == high => high = mid,
            None => {
                let behind = low.max(mid.saturating_sub(probe));
                match written_in(backend, behind, mid, Direction::Back)? {
                    Some((sequence, found)) if found >= id => (high, candidate) = (sequence, Some((sequence, found))),
                    // None from just after it to `ahead`.
                    Some(_) => low = ahead,
                    // None from `low` to `ahead`.
                    None if behind == low => low = ahead,
                    None => {
                        return Err(StoreError::InvalidArgument(format!(
                            "more than {} ledger entries around entry {mid} write no version, so the version's \
                             entry is not looked up there: ask for it by its ledger sequence (its write's \
                             acknowledgement names it)",
                            2 * probe
                        )));
                    }
                }
            }
        }
    }
    let Some((sequence, found)) = candidate else { return Ok(None) };
    if found != id {
        return Ok(None);
    }
    let raw = backend
        .get(Keyspace::Ledger, &ledger::ledger_key(sequence))
        .map_err(|e| StoreError::backend("reading the ledger", e))?
        .ok_or_else(|| StoreError::DataLoss { what: format!("ledger entry {sequence} is missing") })?;
    let (entry, _) = LedgerEntry::decode_stored(&raw)?;
    Ok((entry.bucket == bucket && entry.key == key).then_some(sequence))
}

enum Direction {
    Forward,
    Back,
}

/// The nearest entry in `from..until` that wrote a version or a delete
/// marker (the first going forward, the last going back), with its id.
fn written_in(
    backend: &dyn Backend,
    from: u64,
    until: u64,
    direction: Direction,
) -> Result<Option<(u64, VersionId)>, StoreError> {
    let mut last = None;
    if from >= until {
        return Ok(None);
    }
    for item in backend.scan(Keyspace::Ledger, &ledger::ledger_key(from), b"") {
        let (_, raw) = item.map_err(|e| StoreError::backend("reading the ledger", e))?;
        let (entry, _) = LedgerEntry::decode_stored(&raw)?;
        if entry.sequence >= until {
            break;
        }
        let writes = matches!(entry.op, LedgerOp::VersionWritten | LedgerOp::MarkerWritten);
        if let Some(id) = entry.version.filter(|_| writes) {
            match direction {
                Direction::Forward => return Ok(Some((entry.sequence, id))),
                Direction::Back => last = Some((entry.sequence, id)),
            }
        }
    }
    Ok(last)
}

fn commit(backend: &dyn Backend, batch: Batch) -> Result<(), StoreError> {
    if batch.ops().is_empty() {
        return Ok(());
    }
    backend.commit(&batch, Durability::Synced).map_err(|e| StoreError::backend("storing the Merkle tree", e))
}

#[cfg(test)]
mod tests;
