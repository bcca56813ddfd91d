//! Criterion bench of what a verifier of the ledger's Merkle proofs pays,
//! offline: an inclusion proof and a consistency proof (RFC 9162 §2.1.3.2,
//! §2.1.4.2) checked at tree sizes up to a billion entries, and the size of
//! each proof. The work depends only on the sizes (a path is walked whole
//! whether or not it leads to the root), so the proofs' hashes are stand-ins.

use criterion::{Criterion, criterion_group, criterion_main};
use wormbox_model::Digest;
use wormbox_store::merkle::{self, Subtrees};

/// Stand-in subtree roots: what a proof of these sizes carries, not a tree.
struct StandIns;

impl Subtrees for StandIns {
    type Error = std::convert::Infallible;
    fn perfect(&mut self, height: u32, index: u64) -> Result<Digest, Self::Error> {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&index.to_be_bytes());
        bytes[8] = height as u8;
        Ok(Digest(bytes))
    }
}

const SIZES: [u64; 4] = [1_000_000, 10_000_000, 50_000_000, 1_000_000_000];

fn inclusion(c: &mut Criterion) {
    let mut group = c.benchmark_group("merkle/verify_inclusion");
    for size in SIZES {
        let index = size / 3;
        let path = merkle::inclusion_proof(&mut StandIns, index, size).unwrap().unwrap();
        let leaf = merkle::leaf_hash(b"an entry of about 200 bytes");
        let root = Digest([7; 32]);
        println!("inclusion proof in a tree of {size}: {} hashes, {} bytes", path.len(), path.len() * 32);
        group.bench_function(format!("{size}"), |b| {
            b.iter(|| merkle::verify_inclusion(index, size, &leaf, &path, &root))
        });
    }
    group.finish();
}

fn consistency(c: &mut Criterion) {
    let mut group = c.benchmark_group("merkle/verify_consistency");
    for size in SIZES {
        let old = size / 2 + 12_345;
        let proof = merkle::consistency_proof(&mut StandIns, old, size).unwrap().unwrap();
        let (old_root, new_root) = (Digest([1; 32]), Digest([2; 32]));
        println!("consistency proof from {old} to {size}: {} hashes, {} bytes", proof.len(), proof.len() * 32);
        group.bench_function(format!("{size}"), |b| {
            b.iter(|| merkle::verify_consistency(old, size, &old_root, &new_root, &proof))
        });
    }
    group.finish();
}

criterion_group!(benches, inclusion, consistency);
criterion_main!(benches);
