//! The witness against real trees and real notes: it cosigns a log's
//! history as it grows, answers a stale client with its size, and refuses
//! a fork (another root at a size it cosigned, or a tree its proof does not
//! link) without moving its record.

use std::sync::Arc;

use wormbox_model::{Digest, ManualClock, Timestamp};
use wormbox_store::evidence::{Checkpoint, Ed25519Signer, Signer as _};
use wormbox_store::merkle::{self, Frontier, Subtrees};
use wormbox_store::note;

use super::*;
use crate::cosign::WitnessSigner;
use crate::protocol::AddCheckpoint;

struct Leaves(Vec<Digest>);

impl Subtrees for Leaves {
    type Error = std::convert::Infallible;
    fn perfect(&mut self, height: u32, index: u64) -> Result<Digest, Self::Error> {
        let (start, len) = ((index << height) as usize, 1usize << height);
        Ok(merkle::perfect_root(&self.0[start..start + len]))
    }
}

fn leaves(count: u64, fork_at: Option<u64>) -> Leaves {
    Leaves(
        (0..count)
            .map(|n| {
                let entry = if fork_at.is_some_and(|f| n >= f) { format!("forked {n}") } else { format!("entry {n}") };
                merkle::leaf_hash(entry.as_bytes())
            })
            .collect(),
    )
}

fn root(tree: &Leaves, size: u64) -> Digest {
    let mut frontier = Frontier::default();
    for leaf in &tree.0[..size as usize] {
        frontier.push(*leaf, |_, _, _| {});
    }
    frontier.root()
}

fn note_of(log: &Ed25519Signer, tree: &Leaves, size: u64) -> String {
    let checkpoint = Checkpoint::sign(log, size, Digest([0; 32]), Timestamp(0), root(tree, size));
    note::sign(log, &checkpoint).unwrap()
}

fn request(log: &Ed25519Signer, tree: &mut Leaves, old: u64, size: u64) -> Vec<u8> {
    let proof = merkle::consistency_proof(tree, old, size).unwrap().unwrap();
    AddCheckpoint { old_size: old, proof, checkpoint: note_of(log, tree, size) }.encode().into_bytes()
}

fn witness(dir: &Path, log: &Ed25519Signer) -> Witness {
    let signer = WitnessSigner::from_seed("witness.example/w1", &[3; 32]).unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
    Witness::open(signer, &[log.public_key().to_vec()], &dir.join("state"), clock).unwrap()
}

#[test]
fn the_witness_cosigns_a_growing_log_and_keeps_its_record_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Ed25519Signer::generate().unwrap();
    let w = witness(dir.path(), &log);
    let mut tree = leaves(1000, None);
    let reply = w.add_checkpoint(&request(&log, &mut tree, 0, 10));
    assert_eq!(reply.status, 200, "{reply:?}");
    let body = note_of(&log, &tree, 10);
    let (text, _) = body.split_once("\n\n").unwrap();
    let cosignature = w.signer().key().find(&format!("{text}\n"), &reply.body).unwrap();
    assert_eq!(cosignature.timestamp, 1_795_737_600);

    // A stale client learns the size; the right one is cosigned.
    let stale = w.add_checkpoint(&request(&log, &mut tree, 0, 300));
    assert_eq!((stale.status, stale.content_type, stale.body.as_str()), (409, "text/x.tlog.size", "10\n"));
    assert_eq!(w.add_checkpoint(&request(&log, &mut tree, 10, 300)).status, 200);
    assert_eq!(w.add_checkpoint(&request(&log, &mut tree, 300, 300)).status, 200, "the same checkpoint again");
    let origin = note::origin(log.public_key());
    assert_eq!(w.recorded()[&origin], (300, root(&tree, 300)));

    let recorded = w.recorded();
    drop(w);
    let reopened = witness(dir.path(), &log);
    assert_eq!(reopened.recorded(), recorded);
    assert_eq!(reopened.add_checkpoint(&request(&log, &mut tree, 300, 1000)).status, 200);
}

#[test]
fn a_forked_log_is_refused_and_the_record_does_not_move() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Ed25519Signer::generate().unwrap();
    let w = witness(dir.path(), &log);
    let mut tree = leaves(600, None);
    assert_eq!(w.add_checkpoint(&request(&log, &mut tree, 0, 300)).status, 200);
    let recorded = w.recorded();

    // History rewritten from entry 100 on, re-signed with the log's own key.
    let mut forked = leaves(600, Some(100));
    let same_size = w.add_checkpoint(&request(&log, &mut forked, 300, 300));
    assert_eq!(same_size.status, 409, "{same_size:?}");
    assert!(same_size.body.contains("forked"));
    let longer = w.add_checkpoint(&request(&log, &mut forked, 300, 600));
    assert_eq!(longer.status, 422, "{longer:?}");
    // A proof made for the true tree does not carry the fork's root either.
    let proof = merkle::consistency_proof(&mut tree, 300, 600).unwrap().unwrap();
    let mixed = AddCheckpoint { old_size: 300, proof, checkpoint: note_of(&log, &forked, 600) };
    assert_eq!(w.add_checkpoint(mixed.encode().as_bytes()).status, 422);
    assert_eq!(w.recorded(), recorded);
    drop(w);
    let w = witness(dir.path(), &log);
    assert_eq!(w.recorded(), recorded, "nothing recorded on disk either");
    assert_eq!(w.add_checkpoint(&request(&log, &mut tree, 300, 600)).status, 200, "the true history goes on");
}

#[test]
fn unknown_logs_bad_signatures_and_bad_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Ed25519Signer::generate().unwrap();
    let (stranger, _) = Ed25519Signer::generate().unwrap();
    let w = witness(dir.path(), &log);
    let mut tree = leaves(20, None);
    assert_eq!(w.add_checkpoint(&request(&stranger, &mut tree, 0, 10)).status, 404);
    let genuine = note_of(&log, &tree, 10);
    let forged = genuine.replacen("\n10\n", "\n11\n", 1);
    let forged = AddCheckpoint { old_size: 0, proof: vec![], checkpoint: forged };
    assert_eq!(w.add_checkpoint(forged.encode().as_bytes()).status, 403);
    let unsigned =
        AddCheckpoint { old_size: 0, proof: vec![], checkpoint: genuine.split("\n\n").next().unwrap().to_owned() };
    assert_eq!(w.add_checkpoint(unsigned.encode().as_bytes()).status, 400);
    assert_eq!(w.add_checkpoint(&request(&log, &mut tree, 0, 10)).status, 200);
    let backwards = AddCheckpoint { old_size: 11, proof: vec![], checkpoint: note_of(&log, &tree, 5) };
    assert_eq!(w.add_checkpoint(backwards.encode().as_bytes()).status, 400);
    assert_eq!(w.add_checkpoint(b"old 1\nnot a proof\n\n").status, 400);
    assert_eq!(w.recorded()[&note::origin(log.public_key())].0, 10);
}

#[test]
fn a_state_file_the_witness_did_not_write_stops_it_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Ed25519Signer::generate().unwrap();
    let root = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    for text in [
        "a 1\n".to_owned(),
        "a 01 AAAA\n".to_owned(),
        "a 1 AAAA\n".to_owned(),
        format!("a 1 {root} x\n"),
        format!("a 0 {root}\n"),
        format!("a 1 {root}\na 2 {root}\n"),
    ] {
        std::fs::write(dir.path().join("state"), &text).unwrap();
        let signer = WitnessSigner::from_seed("w", &[3; 32]).unwrap();
        let clock = Arc::new(ManualClock::new(Timestamp(0)));
        let err = Witness::open(signer, &[log.public_key().to_vec()], &dir.path().join("state"), clock).unwrap_err();
        assert!(matches!(err, WitnessError::Malformed { .. }), "{text:?}: {err}");
    }
}

#[test]
fn a_second_witness_process_on_the_same_state_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Ed25519Signer::generate().unwrap();
    let first = witness(dir.path(), &log);
    let signer = WitnessSigner::from_seed("witness.example/w1", &[3; 32]).unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp(0)));
    let err = Witness::open(signer, &[log.public_key().to_vec()], &dir.path().join("state"), clock).unwrap_err();
    assert!(matches!(err, WitnessError::InUse { .. }), "{err}");
    drop(first);
    witness(dir.path(), &log);
}
