//! The tree against RFC 6962/9162's reference vectors (the Certificate
//! Transparency test leaves, roots and proofs), and every proof of every
//! tree up to 70 leaves against an independent naive computation, mangled
//! proofs included.

use std::convert::Infallible;

use super::*;

fn h(hex: &str) -> Digest {
    Digest::from_slice(&hex::decode(hex).unwrap()).unwrap()
}

/// The Certificate Transparency test leaves.
fn ct_leaves() -> Vec<Digest> {
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
        .iter()
        .map(|x| leaf_hash(&hex::decode(x).unwrap()))
        .collect()
}

const CT_ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// Perfect subtrees computed straight from the leaves, by the definition.
struct Leaves(Vec<Digest>);

impl Subtrees for Leaves {
    type Error = Infallible;
    fn perfect(&mut self, height: u32, index: u64) -> Result<Digest, Infallible> {
        let width = 1usize << height;
        let start = index as usize * width;
        Ok(naive_root(&self.0[start..start + width]))
    }
}

/// RFC 9162's MTH, recursively, with nothing shared with the code under test
/// but the two hash functions.
fn naive_root(leaves: &[Digest]) -> Digest {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
            node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
        }
    }
}

fn many(n: usize) -> Vec<Digest> {
    (0..n).map(|i| leaf_hash(format!("entry {i}").as_bytes())).collect()
}

#[test]
fn roots_match_the_reference_roots_for_every_size_to_eight() {
    let leaves = ct_leaves();
    let mut frontier = Frontier::default();
    assert_eq!(frontier.root(), h(CT_ROOTS[0]));
    for (n, leaf) in leaves.iter().enumerate() {
        frontier.push(*leaf, |_, _, _| {});
        assert_eq!(frontier.root(), h(CT_ROOTS[n + 1]), "frontier, size {}", n + 1);
        let mut source = Leaves(leaves.clone());
        assert_eq!(root(&mut source, n as u64 + 1).unwrap(), h(CT_ROOTS[n + 1]), "subtrees, size {}", n + 1);
    }
}

#[test]
fn proofs_match_the_reference_proofs() {
    let mut source = Leaves(ct_leaves());
    let inclusion: [(u64, u64, [&str; 3]); 2] = [
        (
            0,
            8,
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            [
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];
    for (index, size, want) in inclusion {
        let got = inclusion_proof(&mut source, index, size).unwrap().unwrap();
        assert_eq!(got, want.map(h).to_vec(), "inclusion of {index} in {size}");
        assert!(verify_inclusion(index, size, &source.0[index as usize], &got, &h(CT_ROOTS[size as usize])));
    }
    let consistency: [(u64, u64, &[&str]); 2] = [
        (
            2,
            8,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];
    for (first, second, want) in consistency {
        let got = consistency_proof(&mut source, first, second).unwrap().unwrap();
        assert_eq!(got, want.iter().map(|x| h(x)).collect::<Vec<_>>(), "consistency {first} to {second}");
        let (a, b) = (h(CT_ROOTS[first as usize]), h(CT_ROOTS[second as usize]));
        assert!(verify_consistency(first, second, &a, &b, &got));
    }
}

#[test]
fn every_inclusion_proof_of_every_tree_to_seventy_verifies_and_no_mangled_one_does() {
    let leaves = many(70);
    let mut source = Leaves(leaves.clone());
    for size in 1..=70u64 {
        let root = naive_root(&leaves[..size as usize]);
        for index in 0..size {
            let leaf = leaves[index as usize];
            let proof = inclusion_proof(&mut source, index, size).unwrap().unwrap();
            assert!(verify_inclusion(index, size, &leaf, &proof, &root), "{index} in {size}");
            // Another leaf, another index, another root.
            assert!(!verify_inclusion(index, size, &leaves[(index as usize + 1) % 70], &proof, &root));
            if size > 1 {
                assert!(!verify_inclusion((index + 1) % size, size, &leaf, &proof, &root), "{index} in {size}");
            }
            // (A proof may also pass for another size with the same shape:
            // the size is bound to the root by the signed checkpoint.)
            assert!(!verify_inclusion(index, size, &leaf, &proof, &leaves[0]) || size == 1 && index == 0);
            // A hash flipped, one dropped, one added.
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i].0[7] ^= 1;
                assert!(!verify_inclusion(index, size, &leaf, &bad, &root));
            }
            if !proof.is_empty() {
                assert!(!verify_inclusion(index, size, &leaf, &proof[..proof.len() - 1], &root));
            }
            let mut longer = proof.clone();
            longer.push(leaves[3]);
            assert!(!verify_inclusion(index, size, &leaf, &longer, &root));
        }
        assert_eq!(
            inclusion_proof(&mut source, size, size).unwrap(),
            Err(ProofRequestError::NoSuchLeaf { index: size, size })
        );
    }
}

#[test]
fn every_consistency_proof_between_trees_to_seventy_verifies_and_no_mangled_one_does() {
    let leaves = many(70);
    let mut source = Leaves(leaves.clone());
    let roots: Vec<Digest> = (0..=70).map(|n| naive_root(&leaves[..n])).collect();
    for second in 0..=70u64 {
        for first in 0..=second {
            let (a, b) = (&roots[first as usize], &roots[second as usize]);
            let proof = consistency_proof(&mut source, first, second).unwrap().unwrap();
            assert!(verify_consistency(first, second, a, b, &proof), "{first} to {second}");
            if first == second || first == 0 {
                assert!(proof.is_empty());
                continue;
            }
            // A rewritten history: the first tree's root is not this one.
            assert!(!verify_consistency(first, second, &roots[first as usize - 1], b, &proof));
            assert!(!verify_consistency(first, second, a, &roots[second as usize - 1], &proof));
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i].0[3] ^= 0x80;
                assert!(!verify_consistency(first, second, a, b, &bad), "{first} to {second}, hash {i}");
            }
            assert!(!verify_consistency(first, second, a, b, &proof[..proof.len() - 1]));
            let mut longer = proof.clone();
            longer.push(leaves[0]);
            assert!(!verify_consistency(first, second, a, b, &longer));
        }
    }
    assert_eq!(consistency_proof(&mut source, 5, 3).unwrap(), Err(ProofRequestError::Shrinks { first: 5, second: 3 }));
    assert!(!verify_consistency(8, 6, &roots[8], &roots[6], &[]));
    assert!(!verify_consistency(0, 8, &roots[1], &roots[8], &[]));
}

#[test]
fn the_frontier_reports_every_subtree_a_leaf_completes_and_can_be_rebuilt_from_its_peaks() {
    let leaves = many(600);
    let mut frontier = Frontier::default();
    let mut completed = Vec::new();
    for (i, leaf) in leaves.iter().enumerate() {
        frontier.push(*leaf, |height, index, hash| completed.push((height, index, *hash)));
        let size = i as u64 + 1;
        assert_eq!(frontier.root(), naive_root(&leaves[..=i]), "size {size}");
        // The peaks are exactly the completed subtrees at the peak positions.
        let peaks: Vec<Digest> = Frontier::peak_positions(size)
            .map(|(height, index)| {
                completed.iter().rev().find(|(h, x, _)| *h == height && *x == index).expect("reported").2
            })
            .collect();
        assert_eq!(Frontier::from_peaks(size, peaks).as_ref(), Some(&frontier));
    }
    // Every subtree reported is the perfect subtree it names, each once.
    let mut source = Leaves(leaves.clone());
    for (height, index, hash) in &completed {
        assert_eq!(source.perfect(*height, *index).unwrap(), *hash, "height {height} index {index}");
    }
    let expected: usize = (0..10).map(|h| 600 >> h).sum();
    assert_eq!(completed.len(), expected);
    assert_eq!(Frontier::from_peaks(600, vec![]), None);
}
