//! The stored tree against the ledger it is built over: roots and proofs
//! from a real store agree with a tree computed from nothing but the stored
//! entries, across groups, failed commits, restarts and a first open of an
//! archive written before the tree; and a rewritten node cannot pass.

use std::sync::Arc;

use wormbox_model::{BucketName, Clock, Digest, ManualClock, ObjectKey, Role, Timestamp, VersioningState};

use super::written_entry_probing;
use crate::backend::{Backend, Batch, Durability, Keyspace, MemBackend};
use crate::merkle::{self, Frontier};
use crate::{Actor, NewObject, Store, StoreError, StoreOptions, ledger, meta};

fn open(backend: &MemBackend) -> Store {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
    Store::open(Arc::new(backend.clone()), clock, StoreOptions::default()).unwrap()
}

fn actor() -> Actor {
    Actor { access_key: "WBOWNER00000000000".to_owned(), role: Role::Writer }
}

fn bucket() -> BucketName {
    BucketName::new("bucket").unwrap()
}

/// Writes `count` versions, 32 at a time so that groups hold several.
async fn write(store: &Store, count: usize, tag: &str) {
    for chunk in (0..count).collect::<Vec<_>>().chunks(32) {
        let mut puts = tokio::task::JoinSet::new();
        for i in chunk {
            let (store, key) = (store.clone(), ObjectKey::new(&format!("{tag}/{i}")).unwrap());
            let body = format!("body {i}").into_bytes();
            puts.spawn(async move { store.put_object(&actor(), bucket(), key, NewObject::default(), body).await });
        }
        while let Some(ack) = puts.join_next().await {
            ack.unwrap().unwrap();
        }
    }
}

async fn archive(entries_at_least: u64) -> (MemBackend, Store) {
    let backend = MemBackend::new();
    let store = open(&backend);
    store.create_bucket(&actor(), bucket()).await.unwrap();
    store.set_versioning(&actor(), bucket(), VersioningState::Enabled).await.unwrap();
    let (head, _) = store.ledger_head().unwrap();
    write(&store, entries_at_least.saturating_sub(head) as usize, "a").await;
    (backend, store)
}

/// The leaves as the ledger stores them, read straight from the backend.
fn leaves(backend: &MemBackend) -> Vec<Digest> {
    backend
        .scan(Keyspace::Ledger, b"", b"")
        .map(|item| {
            let (_, raw) = item.unwrap();
            merkle::leaf_hash(&raw[..raw.len() - 32])
        })
        .collect()
}

fn roots(leaves: &[Digest]) -> Vec<Digest> {
    let mut frontier = Frontier::default();
    let mut out = vec![frontier.root()];
    for leaf in leaves {
        frontier.push(*leaf, |_, _, _| {});
        out.push(frontier.root());
    }
    out
}

/// What a build of format 1 left: the ledger alone, no tree, format 1.
fn as_format_1(backend: &MemBackend) {
    let mut forget = Batch::new();
    for prefix in [&b"merkle-"[..]] {
        for item in backend.scan(Keyspace::Meta, prefix, prefix) {
            forget.delete(Keyspace::Meta, item.unwrap().0);
        }
    }
    let (key, value) = meta::format_entry(1);
    forget.put(Keyspace::Meta, key, value);
    backend.commit(&forget, Durability::Synced).unwrap();
}

/// The complete tiles of the tree over `leaves`, computed from nothing else.
fn tiles_of(leaves: &[Digest]) -> Vec<(u8, u64, Vec<Digest>)> {
    let (mut frontier, mut rows, mut out) = (Frontier::default(), super::TileRows::default(), Vec::new());
    for leaf in leaves {
        frontier.push(*leaf, |height, index, root| out.extend(rows.add(height, index, root)));
    }
    out.sort_by_key(|(level, index, _)| (*level, *index));
    out
}

/// The tiles stored, by level and index.
fn stored_tiles(backend: &MemBackend) -> Vec<(u8, u64, Vec<Digest>)> {
    backend
        .scan(Keyspace::Meta, b"merkle-tile/", b"merkle-tile/")
        .map(|item| {
            let (key, _) = item.unwrap();
            let (level, index) = (key[12], u64::from_be_bytes(key[13..21].try_into().unwrap()));
            (level, index, meta::load_merkle_tile(backend, level, index).unwrap().unwrap())
        })
        .collect()
}

/// Writes `value` under `key` in `space` behind the store's back (`None`
/// deletes it): an edit of the archive's files.
fn set_raw(backend: &MemBackend, space: Keyspace, key: Vec<u8>, value: Option<Vec<u8>>) {
    let mut batch = Batch::new();
    match value {
        Some(value) => batch.put(space, key, value),
        None => batch.delete(space, key),
    }
    backend.commit(&batch, Durability::Synced).unwrap();
}

fn set_tile(backend: &MemBackend, level: u8, index: u64, value: Option<Vec<u8>>) {
    let (key, _) = meta::merkle_tile_entry(level, index, &[Digest([0; 32]); 256]);
    set_raw(backend, Keyspace::Meta, key, value);
}

fn stored_nodes(backend: &MemBackend) -> usize {
    backend.scan(Keyspace::Meta, b"merkle-node/", b"merkle-node/").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_follows_the_ledger_across_groups_failed_commits_and_restarts() {
    let (backend, store) = archive(300).await;
    backend.fail_next_commit();
    let failed =
        store.put_object(&actor(), bucket(), ObjectKey::new("x").unwrap(), NewObject::default(), vec![1]).await;
    assert!(matches!(failed, Err(StoreError::Backend { .. })));
    write(&store, 20, "b").await;
    drop(store);
    let store = open(&backend);
    write(&store, 300, "c").await;

    let leaves = leaves(&backend);
    let roots = roots(&leaves);
    let head = leaves.len() as u64;
    assert_eq!(store.ledger_head().unwrap().0, head);
    for size in [0, 1, 2, 255, 256, 257, 300, 511, 512, 513, head] {
        assert_eq!(store.merkle_root(size).unwrap(), roots[size as usize], "size {size}");
    }
    // A node per complete 256 and 512 leaves, written as they completed.
    assert_eq!(stored_nodes(&backend), (head / 256 + head / 512) as usize);
    // A tile per complete 256 leaves, the one completed after the restart
    // from entries read back, the others from the leaves the writer held.
    assert_eq!(head / 256, 2);
    assert_eq!(stored_tiles(&backend), tiles_of(&leaves));
}

/// Level-1 and level-2 tiles complete after 65,536 entries: the writer
/// stores each tile as it completes, and its proofs read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_of_every_level_are_stored_as_they_complete_and_proofs_read_them() {
    let wanted = 65_536 + 3 * 256 + 7;
    let (backend, store) = archive(wanted).await;
    let leaves = leaves(&backend);
    let head = leaves.len() as u64;
    assert_eq!(head, wanted);
    let tiles = tiles_of(&leaves);
    assert_eq!(tiles.iter().filter(|(level, ..)| *level == 1).count(), 1);
    assert_eq!(stored_tiles(&backend), tiles);
    let roots = roots(&leaves);
    for sequence in [1, 256, 257, 40_000, 65_536, 65_537, head - 1, head] {
        let proof = store.inclusion_proof(sequence, head).unwrap();
        let leaf = merkle::leaf_hash(&proof.entry);
        assert!(merkle::verify_inclusion(sequence - 1, head, &leaf, &proof.path, &roots[head as usize]), "{sequence}");
    }
    // Proofs of an older tree, whose right edge is not the frontier's.
    for (sequence, size) in [(1, 65_536), (65_000, 65_600), (300, 66_000), (65_537, 65_793)] {
        let proof = store.inclusion_proof(sequence, size).unwrap();
        let leaf = merkle::leaf_hash(&proof.entry);
        assert!(merkle::verify_inclusion(sequence - 1, size, &leaf, &proof.path, &roots[size as usize]), "{sequence}");
    }
    let proof = store.consistency_proof(1_000, head).unwrap();
    assert!(merkle::verify_consistency(1_000, head, &roots[1_000], &roots[head as usize], &proof));
    let report = verify(&store);
    assert!(report.is_ok(), "{}", report.summary());
    assert_eq!(report.merkle_tiles_checked, tiles.len() as u64);
}

/// A rewritten tile cannot pass a proof; a missing one costs speed only
/// (the proof reads what the tile would have held); `verify` names both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_or_missing_tile_is_caught() {
    let (backend, store) = archive(600).await;
    let head = store.ledger_head().unwrap().0;
    let held = store.merkle_root(head).unwrap();
    let report = verify(&store);
    assert!(report.is_ok(), "{}", report.summary());
    assert_eq!(report.merkle_tiles_checked, 2);

    set_tile(&backend, 0, 1, None);
    let proof = store.inclusion_proof(300, head).unwrap();
    assert!(merkle::verify_inclusion(299, head, &merkle::leaf_hash(&proof.entry), &proof.path, &held));
    let mut forged = meta::load_merkle_tile(&backend, 0, 0).unwrap().unwrap();
    forged[4] = Digest([4; 32]);
    let (_, value) = meta::merkle_tile_entry(0, 0, &forged);
    set_tile(&backend, 0, 0, Some(value));
    let proof = store.inclusion_proof(1, head).unwrap();
    assert!(!merkle::verify_inclusion(0, head, &merkle::leaf_hash(&proof.entry), &proof.path, &held));

    let report = verify(&store);
    let said: Vec<String> = report.divergences.iter().map(|d| d.to_string()).collect();
    assert_eq!(report.divergence_count, 2, "{said:?}");
    assert!(said[0].contains("tile at level 0, index 0 is stored with other hashes"), "{said:?}");
    assert!(said[1].contains("tile at level 0, index 1, which this entry completes, is not stored"), "{said:?}");
    assert_eq!(report.divergences[1].sequence, Some(512));

    set_tile(&backend, 0, 1, Some(vec![1; 31]));
    let err = store.inclusion_proof(300, head).unwrap_err();
    assert!(err.to_string().contains("tile at level 0, index 1 is malformed"), "{err}");
}

/// An upgrade of an archive written before the format was recorded, cut
/// short after some of its batches: the next open upgrades it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_cut_short_runs_again_at_the_next_open() {
    let (backend, store) = archive(600).await;
    let (tiles, nodes) = (stored_tiles(&backend), stored_nodes(&backend));
    let node = meta::load_merkle_node(&backend, 8, 0).unwrap().unwrap();
    drop(store);
    as_format_1(&backend);
    let mut partial = Batch::new();
    partial.delete(Keyspace::Meta, b"format-version".to_vec());
    let (key, value) = meta::merkle_tile_entry(tiles[0].0, tiles[0].1, &tiles[0].2);
    partial.put(Keyspace::Meta, key, value);
    backend.commit(&partial, Durability::Synced).unwrap();
    set_node(&backend, 8, 0, Some(node.0.to_vec()));
    assert_eq!(crate::format::check(&backend).unwrap(), crate::format::FormatState::Unrecorded);
    // What is left must be what the verified ledger makes: a tile left
    // otherwise is not overwritten, the archive is not upgraded.
    let mut forged = tiles[1].2.clone();
    forged[9] = Digest([9; 32]);
    set_tile(&backend, 0, 1, Some(meta::merkle_tile_entry(0, 1, &forged).1));
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
    let err = Store::open(Arc::new(backend.clone()), clock, StoreOptions::default()).unwrap_err();
    assert!(err.to_string().contains("tile at level 0, index 1, stored otherwise"), "{err}");
    set_tile(&backend, 0, 1, None);
    let store = open(&backend);
    assert_eq!(crate::format::check(&backend).unwrap(), crate::format::FormatState::Recorded(3));
    assert_eq!((stored_tiles(&backend), stored_nodes(&backend)), (tiles, nodes));
    let report = verify(&store);
    assert!(report.is_ok(), "{}", report.summary());
}

/// An entry of the run the writer resumes in, changed while stopped: the
/// tile it completes is not stored (its leaves do not make the node the
/// frontier made), the entry's proof fails against the held root, and once
/// the entry is put back, `verify` names the missing tile and proofs verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tile_over_an_entry_changed_while_stopped_is_not_stored() {
    let (backend, store) = archive(200).await;
    drop(store);
    let at = ledger::ledger_key(100);
    let original = backend.get(Keyspace::Ledger, &at).unwrap().unwrap();
    let mut edited = original.clone();
    edited[22] ^= 1;
    let put = |raw: Vec<u8>| set_raw(&backend, Keyspace::Ledger, at.to_vec(), Some(raw));
    put(edited);
    let store = open(&backend);
    write(&store, 100, "after").await;
    let head = store.ledger_head().unwrap().0;
    assert!(head > 256);
    assert!(stored_tiles(&backend).is_empty());
    put(original);
    let leaves = leaves(&backend);
    let held = roots(&leaves)[head as usize];
    for sequence in [1, 100, 256, head] {
        let proof = store.inclusion_proof(sequence, head).unwrap();
        let leaf = merkle::leaf_hash(&proof.entry);
        assert!(merkle::verify_inclusion(sequence - 1, head, &leaf, &proof.path, &held), "{sequence}");
    }
    let report = verify(&store);
    let said: Vec<String> = report.divergences.iter().map(|d| d.to_string()).collect();
    assert_eq!(report.divergence_count, 1, "{said:?}");
    assert!(said[0].contains("tile at level 0, index 0, which this entry completes, is not stored"), "{said:?}");
}

/// An archive of format 2 (nodes, no tiles) gets its tiles at its first
/// open, each held to the nodes stored; one whose stored node the entries
/// do not make is not upgraded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_of_format_2_gets_its_tiles_at_its_first_open_if_its_nodes_hold() {
    let as_format_2 = |backend: &MemBackend| {
        let mut forget = Batch::new();
        for item in backend.scan(Keyspace::Meta, b"merkle-tile/", b"merkle-tile/") {
            forget.delete(Keyspace::Meta, item.unwrap().0);
        }
        let (key, value) = meta::format_entry(2);
        forget.put(Keyspace::Meta, key, value);
        backend.commit(&forget, Durability::Synced).unwrap();
    };
    let (backend, store) = archive(600).await;
    let tiles = stored_tiles(&backend);
    assert_eq!(tiles.len(), 2);
    drop(store);
    as_format_2(&backend);
    assert!(stored_tiles(&backend).is_empty());
    let store = open(&backend);
    assert_eq!(crate::format::check(&backend).unwrap(), crate::format::FormatState::Recorded(3));
    assert_eq!(stored_tiles(&backend), tiles);
    write(&store, 300, "after").await;
    assert_eq!(stored_tiles(&backend), tiles_of(&leaves(&backend)));
    drop(store);

    // Without the frontier every format-2 group wrote: not upgraded.
    as_format_2(&backend);
    let frontier = meta::load_merkle_frontier(&backend).unwrap().unwrap();
    let mut batch = Batch::new();
    batch.delete(Keyspace::Meta, meta::merkle_frontier_entry(&frontier).0);
    backend.commit(&batch, Durability::Synced).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
    let err = Store::open(Arc::new(backend.clone()), clock, StoreOptions::default()).unwrap_err();
    assert!(err.to_string().contains("frontier is missing"), "{err}");
    let mut batch = Batch::new();
    let (key, value) = meta::merkle_frontier_entry(&frontier);
    batch.put(Keyspace::Meta, key, value);
    backend.commit(&batch, Durability::Synced).unwrap();

    set_node(&backend, 8, 1, Some(vec![8; 32]));
    let before = backend.contents();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
    let err = Store::open(Arc::new(backend.clone()), clock, StoreOptions::default()).unwrap_err();
    assert!(err.to_string().contains("ledger entry 512 completes the Merkle tree node at height 8, index 1"), "{err}");
    assert_eq!(backend.contents(), before, "nothing is written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entry_s_inclusion_proof_and_every_consistency_proof_verifies_against_roots_a_client_holds() {
    let (backend, store) = archive(700).await;
    let leaves = leaves(&backend);
    let roots = roots(&leaves);
    let head = leaves.len() as u64;
    for size in [1, 255, 256, 300, 512, 600, head] {
        for sequence in 1..=size {
            let proof = store.inclusion_proof(sequence, size).unwrap();
            assert_eq!((proof.leaf_index, proof.tree_size), (sequence - 1, size));
            let leaf = merkle::leaf_hash(&proof.entry);
            assert_eq!(leaf, leaves[sequence as usize - 1]);
            assert!(
                merkle::verify_inclusion(proof.leaf_index, size, &leaf, &proof.path, &roots[size as usize]),
                "entry {sequence} in {size}"
            );
        }
    }
    for (first, second) in [(1, 2), (3, 7), (255, 256), (256, 257), (100, 600), (512, head), (head, head)] {
        let proof = store.consistency_proof(first, second).unwrap();
        assert!(
            merkle::verify_consistency(first, second, &roots[first as usize], &roots[second as usize], &proof),
            "{first} to {second}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_written_before_the_tree_gets_it_built_at_its_first_open() {
    let (backend, store) = archive(600).await;
    let head = store.ledger_head().unwrap().0;
    let root = store.merkle_root(head).unwrap();
    drop(store);
    as_format_1(&backend);
    assert_eq!(stored_nodes(&backend), 0);
    assert_eq!(meta::load_merkle_frontier(&backend).unwrap(), None);

    let store = open(&backend);
    assert_eq!(stored_nodes(&backend), (head / 256 + head / 512) as usize);
    assert_eq!(crate::format::check(&backend).unwrap(), crate::format::FormatState::Recorded(3));
    assert_eq!(stored_tiles(&backend), tiles_of(&leaves(&backend)));
    assert_eq!(store.merkle_root(head).unwrap(), root);
    write(&store, 10, "after").await;
    let leaves = leaves(&backend);
    assert_eq!(store.merkle_root(leaves.len() as u64).unwrap(), *roots(&leaves).last().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_node_or_entry_cannot_pass_a_proof_against_a_root_the_client_holds() {
    let (backend, store) = archive(600).await;
    let head = store.ledger_head().unwrap().0;
    let held = store.merkle_root(head).unwrap();

    // A node rewritten: every proof through it fails.
    let (key, _) = meta::merkle_node_entry(8, 0, &Digest([0; 32]));
    let mut forged = Batch::new();
    forged.put(Keyspace::Meta, key, vec![7; 32]);
    backend.commit(&forged, Durability::Synced).unwrap();
    let proof = store.inclusion_proof(300, head).unwrap();
    let leaf = merkle::leaf_hash(&proof.entry);
    assert!(!merkle::verify_inclusion(proof.leaf_index, head, &leaf, &proof.path, &held));
    // The root itself is read from the node above it, which is intact.
    assert_eq!(store.merkle_root(head).unwrap(), held);

    // An entry rewritten: its own proof fails, however its path is made.
    let (raw_key, mut raw) =
        (ledger::ledger_key(5), backend.get(Keyspace::Ledger, &ledger::ledger_key(5)).unwrap().unwrap());
    raw[20] ^= 1;
    let mut edit = Batch::new();
    edit.put(Keyspace::Ledger, raw_key.to_vec(), raw);
    backend.commit(&edit, Durability::Synced).unwrap();
    let proof = store.inclusion_proof(5, head).unwrap();
    assert!(!merkle::verify_inclusion(4, head, &merkle::leaf_hash(&proof.entry), &proof.path, &held));
}

#[tokio::test]
async fn proofs_of_trees_the_ledger_does_not_have_yet_are_refused() {
    let (_backend, store) = archive(10).await;
    let head = store.ledger_head().unwrap().0;
    let invalid = |r: Result<_, StoreError>| matches!(r, Err(StoreError::InvalidArgument(_)));
    assert!(invalid(store.merkle_root(head + 1).map(|_| ())));
    assert!(invalid(store.inclusion_proof(0, head).map(|_| ())));
    assert!(invalid(store.inclusion_proof(head, head - 1).map(|_| ())));
    assert!(invalid(store.inclusion_proof(1, head + 1).map(|_| ())));
    assert!(invalid(store.consistency_proof(5, 3).map(|_| ())));
    assert!(invalid(store.consistency_proof(1, head + 1).map(|_| ())));
}

fn verify(store: &Store) -> crate::evidence::IntegrityReport {
    store.verify_integrity(crate::evidence::VerifyOptions::default()).unwrap()
}

fn set_node(backend: &MemBackend, height: u32, index: u64, value: Option<Vec<u8>>) {
    let (key, _) = meta::merkle_node_entry(height, index, &Digest([0; 32]));
    set_raw(backend, Keyspace::Meta, key, value);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_recomputes_every_stored_node_and_names_a_rewritten_or_missing_one() {
    let (backend, store) = archive(800).await;
    let head = store.ledger_head().unwrap().0;
    let report = verify(&store);
    assert!(report.is_ok(), "{}", report.summary());
    assert_eq!(report.merkle_nodes_checked, head / 256 + head / 512);

    set_node(&backend, 9, 0, Some(vec![9; 32]));
    set_node(&backend, 8, 2, None);
    let report = verify(&store);
    assert_eq!(report.divergence_count, 2, "{}", report.summary());
    let said: Vec<String> = report.divergences.iter().map(|d| d.to_string()).collect();
    assert!(said[0].contains("height 9, index 0 is stored with another hash"), "{said:?}");
    assert!(said[1].contains("height 8, index 2, which this entry completes, is not stored"), "{said:?}");
    assert_eq!(report.divergences[0].sequence, Some(512));
    assert_eq!(report.divergences[1].sequence, Some(3 * 256));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_of_a_copy_written_before_the_tree_checks_the_rest_and_no_tree() {
    let (backend, store) = archive(300).await;
    as_format_1(&backend);
    let report = verify(&store);
    assert!(report.is_ok(), "{}", report.summary());
    assert_eq!(report.merkle_nodes_checked, 0);
}

/// In an archive of the tree's format, the first node is a node like any
/// other: taking it away does not turn the node checks off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_a_missing_first_node_and_a_rewritten_frontier() {
    let (backend, store) = archive(600).await;
    set_node(&backend, 8, 0, None);
    set_node(&backend, 8, 1, Some(vec![1; 32]));
    let report = verify(&store);
    let said: Vec<String> = report.divergences.iter().map(|d| d.to_string()).collect();
    assert!(
        said.iter().any(|d| d.contains("height 8, index 0, which this entry completes, is not stored")),
        "{said:?}"
    );
    assert!(said.iter().any(|d| d.contains("height 8, index 1 is stored with another hash")), "{said:?}");
    drop(store);

    let (backend, store) = archive(300).await;
    drop(store);
    let mut frontier = meta::load_merkle_frontier(&backend).unwrap().unwrap();
    let size = frontier.size();
    let mut peaks = frontier.peaks().to_vec();
    peaks[0].0[0] ^= 1;
    frontier = Frontier::from_peaks(size, peaks).unwrap();
    let (key, value) = meta::merkle_frontier_entry(&frontier);
    let mut batch = Batch::new();
    batch.put(Keyspace::Meta, key, value);
    backend.commit(&batch, Durability::Synced).unwrap();
    let report = crate::evidence::verify(&backend, crate::evidence::VerifyOptions::default()).unwrap();
    let said: Vec<String> = report.divergences.iter().map(|d| d.to_string()).collect();
    assert!(said.iter().any(|d| d.contains("stored Merkle frontier is not the tree")), "{said:?}");
}

/// Root cannot have the tree rebuilt over an edited ledger: a tree archive
/// whose frontier is gone does not open, and an archive of format 1 whose
/// ledger does not verify is not upgraded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_is_never_rebuilt_over_a_ledger_that_does_not_verify() {
    let (backend, store) = archive(40).await;
    drop(store);
    let mut batch = Batch::new();
    for item in backend.scan(Keyspace::Meta, b"merkle-", b"merkle-") {
        batch.delete(Keyspace::Meta, item.unwrap().0);
    }
    backend.commit(&batch, Durability::Synced).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
    let err = Store::open(Arc::new(backend.clone()), clock.clone(), StoreOptions::default()).unwrap_err();
    assert!(err.to_string().contains("frontier is missing"), "{err}");

    as_format_1(&backend);
    let at = ledger::ledger_key(30);
    let mut raw = backend.get(Keyspace::Ledger, &at).unwrap().unwrap();
    raw[22] ^= 1;
    let mut edit = Batch::new();
    edit.put(Keyspace::Ledger, at.to_vec(), raw);
    backend.commit(&edit, Durability::Synced).unwrap();
    let before = backend.contents();
    let err = Store::open(Arc::new(backend.clone()), clock, StoreOptions::default()).unwrap_err();
    assert!(err.to_string().contains("not upgraded: ledger entry 30 does not hash"), "{err}");
    assert_eq!(backend.contents(), before, "nothing is written");
}

/// Root with the signing key rewrites one entry of the past and everything
/// after it (chain hashes, ledger head, every tree node), then signs a new
/// checkpoint: the forgery is self-consistent, yet nothing links it to the
/// checkpoint a client kept from before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_history_re_signed_with_the_key_cannot_be_linked_to_a_checkpoint_kept_from_before() {
    let (signer, _) = crate::evidence::Ed25519Signer::generate().unwrap();
    let signer: Arc<dyn crate::evidence::Signer> = Arc::new(signer);
    let public_key = signer.public_key().to_vec();
    let backend = MemBackend::new();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
    let reopen = |backend: &MemBackend| {
        Store::open_signed(Arc::new(backend.clone()), clock.clone(), StoreOptions::default(), Some(signer.clone()))
            .unwrap()
    };
    let store = reopen(&backend);
    store.create_bucket(&actor(), bucket()).await.unwrap();
    write(&store, 600, "a").await;
    let kept = store.checkpoint().await.unwrap();
    assert!(kept.verify(&public_key));
    assert_eq!(kept.tree_root, Some(store.merkle_root(kept.sequence).unwrap()));
    write(&store, 100, "b").await;
    drop(store);

    // The forgery: entry 300's principal changed, the chain recomputed from
    // there, the tree's nodes dropped for the next open to rebuild them.
    let (head, _) = meta::load_ledger_head(&backend).unwrap();
    let mut previous = match backend.get(Keyspace::Ledger, &ledger::ledger_key(299)).unwrap() {
        Some(raw) => Digest::from_slice(&raw[raw.len() - 32..]).unwrap(),
        None => unreachable!(),
    };
    let mut rewrite = Batch::new();
    for sequence in 300..=head {
        let raw = backend.get(Keyspace::Ledger, &ledger::ledger_key(sequence)).unwrap().unwrap();
        let mut canonical = raw[..raw.len() - 32].to_vec();
        if sequence == 300 {
            canonical[22] ^= 1;
        }
        previous = ledger::chain_hash_over(&previous, &canonical);
        canonical.extend_from_slice(&previous.0);
        rewrite.put(Keyspace::Ledger, ledger::ledger_key(sequence).to_vec(), canonical);
    }
    let (key, value) = meta::ledger_head_entry(head, &previous);
    rewrite.put(Keyspace::Meta, key, value);
    for item in backend.scan(Keyspace::Meta, b"merkle-", b"merkle-") {
        rewrite.delete(Keyspace::Meta, item.unwrap().0);
    }
    // The checkpoints it stored before, which name the true history; and
    // the format set back, so the next open builds the tree afresh.
    for item in backend.scan(Keyspace::Checkpoints, b"", b"") {
        rewrite.delete(Keyspace::Checkpoints, item.unwrap().0);
    }
    backend.commit(&rewrite, Durability::Synced).unwrap();
    as_format_1(&backend);
    let store = reopen(&backend);
    let forged = store.checkpoint().await.unwrap();
    assert!(forged.verify(&public_key), "the key signs whatever root holds it");
    let alone = store.verify_integrity(crate::evidence::VerifyOptions::default()).unwrap();
    assert!(alone.is_ok(), "self-consistent: {}", alone.summary());

    // The appliance cannot prove that its new tree extends the kept one...
    let (old_root, new_root) = (kept.tree_root.unwrap(), forged.tree_root.unwrap());
    let proof = store.consistency_proof(kept.sequence, forged.sequence).unwrap();
    assert!(!merkle::verify_consistency(kept.sequence, forged.sequence, &old_root, &new_root, &proof));
    // ...nor that the rewritten entry is in the tree the client kept...
    let included = store.inclusion_proof(300, kept.sequence).unwrap();
    let leaf = merkle::leaf_hash(&included.entry);
    assert!(!merkle::verify_inclusion(299, kept.sequence, &leaf, &included.path, &old_root));
    // ...and a check given the kept checkpoint names the rewrite.
    let options = crate::evidence::VerifyOptions {
        public_key: Some(public_key.clone()),
        extra_checkpoints: vec![kept.clone()],
        ..crate::evidence::VerifyOptions::default()
    };
    let report = store.verify_integrity(options).unwrap();
    let said: Vec<String> = report.divergences.iter().map(|d| d.to_string()).collect();
    assert!(said.iter().any(|d| d.contains("the Merkle tree root differs")), "{said:?}");
    assert!(said.iter().any(|d| d.contains("the chain hash differs")), "{said:?}");
}

/// An entry edited while the appliance was stopped must not become part of
/// the next signed root: the writer resumes the tree from the frontier it
/// stored, not from entries read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_edited_while_stopped_is_not_taken_into_the_next_signed_root() {
    let (signer, _) = crate::evidence::Ed25519Signer::generate().unwrap();
    let signer: Arc<dyn crate::evidence::Signer> = Arc::new(signer);
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
    let reopen = |backend: &MemBackend| {
        Store::open_signed(Arc::new(backend.clone()), clock.clone(), StoreOptions::default(), Some(signer.clone()))
            .unwrap()
    };
    let backend = MemBackend::new();
    let store = reopen(&backend);
    store.create_bucket(&actor(), bucket()).await.unwrap();
    write(&store, 40, "a").await;
    let head = store.ledger_head().unwrap().0;
    drop(store);
    let at = ledger::ledger_key(head - 1);
    let original = backend.get(Keyspace::Ledger, &at).unwrap().unwrap();
    let mut edited = original.clone();
    edited[22] ^= 1;
    let put = |raw: Vec<u8>| set_raw(&backend, Keyspace::Ledger, at.to_vec(), Some(raw));
    put(edited);
    let store = reopen(&backend);
    write(&store, 5, "after").await;
    let signed = store.checkpoint().await.unwrap();
    drop(store);
    put(original);

    let store = reopen(&backend);
    let leaves = leaves(&backend);
    assert_eq!(signed.tree_root, Some(roots(&leaves)[signed.sequence as usize]), "the root signs the true entries");
    let options = crate::evidence::VerifyOptions {
        public_key: Some(signer.public_key().to_vec()),
        ..crate::evidence::VerifyOptions::default()
    };
    let report = store.verify_integrity(options).unwrap();
    assert!(report.is_ok(), "{}", report.summary());
}

#[tokio::test]
async fn a_frontier_ahead_of_the_ledger_refuses_to_open() {
    let (backend, store) = archive(10).await;
    drop(store);
    let mut frontier = meta::load_merkle_frontier(&backend).unwrap().unwrap();
    frontier.push(Digest([1; 32]), |_, _, _| {});
    let (key, value) = meta::merkle_frontier_entry(&frontier);
    let mut batch = Batch::new();
    batch.put(Keyspace::Meta, key, value);
    backend.commit(&batch, Durability::Synced).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
    let err = Store::open(Arc::new(backend.clone()), clock, StoreOptions::default()).unwrap_err();
    assert!(err.to_string().contains("the archive's files were changed"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_entry_that_wrote_a_version_is_found_among_others() {
    let (_backend, store) = archive(1).await;
    let mut written = Vec::new();
    for i in 0..300 {
        let key = ObjectKey::new(&format!("k{}", i % 7)).unwrap();
        let ack = store.put_object(&actor(), bucket(), key.clone(), NewObject::default(), vec![i as u8]).await.unwrap();
        written.push((key.clone(), ack.version_id, ack.ledger_sequence));
        if i % 50 == 0 {
            let marker = store.delete_object(&actor(), bucket(), key.clone(), None).await.unwrap();
            written.push((key, marker.version_id.unwrap(), marker.ledger_sequence.unwrap()));
        }
    }
    for (key, version_id, sequence) in &written {
        let wormbox_model::VersionSelector::Id(id) = wormbox_model::VersionSelector::parse(version_id).unwrap() else {
            unreachable!("versioned")
        };
        assert_eq!(store.written_entry(&bucket(), key, id).unwrap(), Some(*sequence), "{key} {version_id}");
        let other = ObjectKey::new("elsewhere").unwrap();
        assert_eq!(store.written_entry(&bucket(), &other, id).unwrap(), None);
    }
    let never = wormbox_model::VersionId::from_parts(1, 1);
    assert_eq!(store.written_entry(&bucket(), &ObjectKey::new("k1").unwrap(), never).unwrap(), None);
}

/// Entries cut from the end (and the head set back to match) are not
/// resumed from: the checkpoints that covered them say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_cut_short_behind_its_checkpoints_does_not_open_or_upgrade() {
    let (signer, _) = crate::evidence::Ed25519Signer::generate().unwrap();
    let signer: Arc<dyn crate::evidence::Signer> = Arc::new(signer);
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
    let open_signed = |backend: &MemBackend| {
        Store::open_signed(Arc::new(backend.clone()), clock.clone(), StoreOptions::default(), Some(signer.clone()))
    };
    let backend = MemBackend::new();
    let store = open_signed(&backend).unwrap();
    store.create_bucket(&actor(), bucket()).await.unwrap();
    write(&store, 30, "a").await;
    let signed = store.checkpoint().await.unwrap();
    drop(store);
    let keep = signed.sequence - 5;
    let kept = backend.get(Keyspace::Ledger, &ledger::ledger_key(keep)).unwrap().unwrap();
    let mut cut = Batch::new();
    for sequence in keep + 1..=signed.sequence {
        cut.delete(Keyspace::Ledger, ledger::ledger_key(sequence).to_vec());
    }
    let (key, value) = meta::ledger_head_entry(keep, &Digest::from_slice(&kept[kept.len() - 32..]).unwrap());
    cut.put(Keyspace::Meta, key, value);
    backend.commit(&cut, Durability::Synced).unwrap();
    let err = open_signed(&backend).unwrap_err();
    assert!(err.to_string().contains("past the ledger's recorded head"), "{err}");
    as_format_1(&backend);
    let err = open_signed(&backend).unwrap_err();
    assert!(err.to_string().contains("past the ledger's recorded head"), "{err}");
}

/// A tree archive whose format record was removed is not taken for one
/// written before the tree (which would rebuild its tree from its entries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_archive_without_its_format_record_does_not_open() {
    let (backend, store) = archive(10).await;
    drop(store);
    let mut batch = Batch::new();
    batch.delete(Keyspace::Meta, b"format-version".to_vec());
    backend.commit(&batch, Durability::Synced).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
    let err = Store::open(Arc::new(backend.clone()), clock, StoreOptions::default()).unwrap_err();
    assert!(err.to_string().contains("format record is gone"), "{err}");
}

/// Runs of entries that write no version (integrity records here; holds,
/// retention changes, restores in life) longer than a probe reads are
/// stepped over, forward and back; only a run longer than both ways is
/// refused, never answered wrongly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_s_entry_is_found_across_runs_of_other_entries_longer_than_a_probe() {
    let (backend, store) = archive(1).await;
    let report = crate::evidence::IntegrityReport::default();
    let mut written = Vec::new();
    for i in 0..40u32 {
        let key = ObjectKey::new(&format!("k{i}")).unwrap();
        let ack = store.put_object(&actor(), bucket(), key.clone(), NewObject::default(), vec![1]).await.unwrap();
        written.push((key, ack.version_id, ack.ledger_sequence));
        // Runs of 0 to 24 entries that write nothing.
        for _ in 0..(i * 7) % 25 {
            store.record_integrity(&actor(), &report).await.unwrap();
        }
    }
    let head = store.ledger_head().unwrap().0;
    for probe in [2, 3, 8, 64] {
        for (key, version_id, sequence) in &written {
            let wormbox_model::VersionSelector::Id(id) = wormbox_model::VersionSelector::parse(version_id).unwrap()
            else {
                unreachable!("versioned")
            };
            let found = written_entry_probing(&backend, (head, "bucket", key.as_str(), id), probe);
            match found {
                Ok(found) => assert_eq!(found, Some(*sequence), "probe {probe}: {key}"),
                // Refused only where a run is longer than a probe both ways.
                Err(StoreError::InvalidArgument(why)) => assert!(probe < 12, "probe {probe}: {why}"),
                Err(other) => panic!("{other}"),
            }
        }
        let never = wormbox_model::VersionId::from_parts(1, 1);
        assert!(!matches!(written_entry_probing(&backend, (head, "bucket", "k1", never), probe), Ok(Some(_))));
    }
}

/// The tiles (C2SP tlog-tiles) are the stored tree: every one of them is
/// recomputed from the entries and leads to the root; a partial tile is
/// the start of the full one and never changes; tiles past the ledger are
/// refused, and a changed tile does not check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_s_tiles_are_its_tree_in_the_tlog_tiles_layout() {
    use crate::tiles::{self, Tile};
    let (backend, store) = archive(600).await;
    let size = store.ledger_head().unwrap().0;
    let root = store.merkle_root(size).unwrap();
    assert_eq!(tiles::check(size, &root, &mut |t| store.tile(t).map_err(|e| e.to_string())), Ok(size));
    let bundles = Tile::of_tree(size).into_iter().filter(|t| matches!(t, Tile::Entries { .. }));
    let entries: Vec<Vec<u8>> = bundles
        .flat_map(|t| {
            tiles::unbundle(&store.tile(t).unwrap()).unwrap().into_iter().map(<[u8]>::to_vec).collect::<Vec<_>>()
        })
        .collect();
    let stored: Vec<Vec<u8>> = backend
        .scan(Keyspace::Ledger, b"", b"")
        .map(|item| ledger::split_stored(&item.unwrap().1).unwrap().0.to_vec())
        .collect();
    assert_eq!(entries, stored);
    let level_1 = Tile::Hashes { level: 1, index: 0, width: (size / 256) as u16 };
    assert_eq!(
        store.tile(level_1).unwrap(),
        [
            meta::load_merkle_node(&backend, 8, 0).unwrap().unwrap().0,
            meta::load_merkle_node(&backend, 8, 1).unwrap().unwrap().0
        ]
        .concat()
    );

    let tampered = Tile::Hashes { level: 0, index: 1, width: 256 };
    let err = tiles::check(size, &root, &mut |t| {
        let mut bytes = store.tile(t).map_err(|e| e.to_string())?;
        if t == tampered {
            bytes[40] ^= 1;
        }
        Ok(bytes)
    })
    .unwrap_err();
    assert!(err.contains("tile/0/001"), "{err}");
    let other_root = store.merkle_root(size - 1).unwrap();
    assert!(tiles::check(size, &other_root, &mut |t| store.tile(t).map_err(|e| e.to_string())).is_err());

    let partial = Tile::Hashes { level: 0, index: size / 256, width: (size % 256) as u16 };
    let bundle = Tile::Entries { index: size / 256, width: (size % 256) as u16 };
    let (before, bundle_before) = (store.tile(partial).unwrap(), store.tile(bundle).unwrap());
    let full = Tile::Hashes { level: 0, index: size / 256, width: 256 };
    let err = store.tile(full).unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument(_)), "{err}");
    write(&store, 300, "b").await;
    assert_eq!((store.tile(partial).unwrap(), store.tile(bundle).unwrap()), (before.clone(), bundle_before));
    assert!(store.tile(full).unwrap().starts_with(&before));
    for tile in [Tile::Hashes { level: 2, index: 0, width: 1 }, Tile::Entries { index: 9, width: 1 }] {
        assert!(matches!(store.tile(tile), Err(StoreError::InvalidArgument(_))), "{tile}");
    }
}
