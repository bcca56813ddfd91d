//! The Merkle tree over the ledger (RFC 9162 §2.1, the hashing of
//! Certificate Transparency): leaf `i` is ledger entry `i + 1`, hashed as
//! `SHA-256(0x00 || canonical bytes)`, and an interior node as
//! `SHA-256(0x01 || left || right)`. The tree of size `n` is the ledger's
//! first `n` entries, so a checkpoint at sequence `n` names the tree of size
//! `n`. It stands beside the hash chain, which stays and stays verified: the
//! chain proves order to whoever reads every entry, the tree proves one
//! entry, or that one tree extends another, in a logarithmic number of hashes.
//!
//! This file is pure: hashing, the `Frontier` the writer extends entry by
//! entry, proofs built from any `Subtrees` source, and their verification,
//! which is RFC 9162 §2.1.3.2 and §2.1.4.2 step by step, so that a verifier
//! that shares no code with this one agrees with it.
//!
//! Invariant: a proof is only ever computed from hashes of complete subtrees
//! (`Subtrees::perfect`), which never change once the ledger holds their
//! leaves: a proof for the tree of size `n` takes only subtrees within its
//! first `n` leaves, whichever later tile holds their hashes.

use wormbox_model::Digest;

/// Subtrees of at least this height (2^8 = 256 leaves, the height of a C2SP
/// tlog tile) are stored as they complete, and so is every complete tile
/// (`tree.rs`); lower subtrees are recomputed from a tile of leaves, or from
/// one run of the ledger's entries where no complete tile holds them.
pub const STORED_HEIGHT: u32 = 8;

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Digest {
    sha256(&[&[]])
}

/// The hash of a leaf: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Digest {
    sha256(&[&[0x00], entry])
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Digest, right: &Digest) -> Digest {
    sha256(&[&[0x01], &left.0, &right.0])
}

/// The root of leaves (or subtree roots) whose count is a power of two.
pub fn perfect_root(hashes: &[Digest]) -> Digest {
    assert!(hashes.len().is_power_of_two(), "a perfect subtree");
    let mut level = hashes.to_vec();
    while level.len() > 1 {
        level = level.chunks_exact(2).map(|pair| node_hash(&pair[0], &pair[1])).collect();
    }
    level[0]
}

fn sha256(parts: &[&[u8]]) -> Digest {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        ctx.update(part);
    }
    Digest::from_slice(ctx.finish().as_ref()).expect("SHA-256 yields 32 bytes")
}

/// The right edge of a tree: the roots of the perfect subtrees its size
/// decomposes into (one per set bit of the size, largest first). Enough to
/// extend the tree and to give its root, without any other node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    peaks: Vec<Digest>,
}

impl Frontier {
    /// The frontier of a tree of `size` leaves whose perfect subtrees,
    /// largest first, have the roots `peaks`; `None` if their count is not
    /// the number of set bits of `size`.
    pub fn from_peaks(size: u64, peaks: Vec<Digest>) -> Option<Frontier> {
        (peaks.len() == size.count_ones() as usize).then_some(Frontier { size, peaks })
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The roots of the perfect subtrees, largest first.
    pub fn peaks(&self) -> &[Digest] {
        &self.peaks
    }

    /// Appends a leaf. `completed` is told of every subtree the leaf
    /// completes (its height, its index among the subtrees of that height,
    /// and its root), lowest first, the leaf itself (height 0) included.
    pub fn push(&mut self, leaf: Digest, mut completed: impl FnMut(u32, u64, &Digest)) {
        let index = self.size;
        completed(0, index, &leaf);
        let mut node = leaf;
        let mut height = 0;
        // A carry per trailing set bit of the old size: the new leaf closes
        // the perfect subtree of each.
        while (index >> height) & 1 == 1 {
            let left = self.peaks.pop().expect("a set bit has its peak");
            node = node_hash(&left, &node);
            height += 1;
            completed(height, index >> height, &node);
        }
        self.peaks.push(node);
        self.size += 1;
    }

    /// The tree's root (RFC 9162 MTH): the peaks folded from the right.
    pub fn root(&self) -> Digest {
        let mut peaks = self.peaks.iter().rev();
        let Some(last) = peaks.next() else { return empty_root() };
        peaks.fold(*last, |right, left| node_hash(left, &right))
    }

    /// The peaks' heights and indices, largest first, for a tree of `size`.
    pub fn peak_positions(size: u64) -> impl Iterator<Item = (u32, u64)> {
        (0..64u32).rev().filter(move |h| size >> h & 1 == 1).map(move |h| (h, (size >> h) - 1))
    }
}

/// Where proofs take their hashes from: the root of the perfect subtree of
/// `height` at `index` (leaves `index * 2^height ..< (index + 1) * 2^height`),
/// which the caller only asks for when the tree holds all of its leaves.
pub trait Subtrees {
    /// Why a hash could not be had (the store's error).
    type Error;
    /// The root of that perfect subtree.
    fn perfect(&mut self, height: u32, index: u64) -> Result<Digest, Self::Error>;
}

/// Why a proof cannot be asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofRequestError {
    /// The leaf is not in the tree.
    #[error("leaf {index} is not in a tree of {size} leaves")]
    NoSuchLeaf {
        /// The leaf asked for.
        index: u64,
        /// The tree's size.
        size: u64,
    },
    /// The first tree is larger than the second.
    #[error("a tree of {first} leaves cannot be extended by one of {second}")]
    Shrinks {
        /// The earlier size.
        first: u64,
        /// The later size.
        second: u64,
    },
}

/// The root of the tree of `size` leaves (RFC 9162 MTH of the first `size`).
pub fn root<S: Subtrees>(source: &mut S, size: u64) -> Result<Digest, S::Error> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(source, 0, size)
}

/// MTH of leaves `start..end`, where `start` is a multiple of the largest
/// power of two not above `end - start` (true of every range RFC 9162's
/// recursions make from `0..n`: each starts at a multiple of the subtree
/// size it splits off), so the range is its perfect subtrees, largest
/// first, each aligned.
fn range_hash<S: Subtrees>(source: &mut S, start: u64, end: u64) -> Result<Digest, S::Error> {
    let size = end - start;
    if size.is_power_of_two() {
        let height = size.trailing_zeros();
        return source.perfect(height, start >> height);
    }
    let k = largest_power_below(size);
    let left = range_hash(source, start, start + k)?;
    let right = range_hash(source, start + k, end)?;
    Ok(node_hash(&left, &right))
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn largest_power_below(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The audit path of leaf `index` in the tree of `size` leaves (RFC 9162
/// §2.1.3.1 PATH), nearest the leaf first.
pub fn inclusion_proof<S: Subtrees>(
    source: &mut S,
    index: u64,
    size: u64,
) -> Result<Result<Vec<Digest>, ProofRequestError>, S::Error> {
    if index >= size {
        return Ok(Err(ProofRequestError::NoSuchLeaf { index, size }));
    }
    let mut proof = Vec::new();
    path(source, index, 0, size, &mut proof)?;
    Ok(Ok(proof))
}

/// PATH(m, D[start:end]), appended to `out` deepest first.
fn path<S: Subtrees>(source: &mut S, m: u64, start: u64, end: u64, out: &mut Vec<Digest>) -> Result<(), S::Error> {
    let n = end - start;
    if n == 1 {
        return Ok(());
    }
    let k = largest_power_below(n);
    if m < k {
        path(source, m, start, start + k, out)?;
        out.push(range_hash(source, start + k, end)?);
    } else {
        path(source, m - k, start + k, end, out)?;
        out.push(range_hash(source, start, start + k)?);
    }
    Ok(())
}

/// The proof that the tree of `second` leaves extends the tree of `first`
/// (RFC 9162 §2.1.4.1 PROOF); empty when `first` is 0 or equals `second`.
pub fn consistency_proof<S: Subtrees>(
    source: &mut S,
    first: u64,
    second: u64,
) -> Result<Result<Vec<Digest>, ProofRequestError>, S::Error> {
    if first > second {
        return Ok(Err(ProofRequestError::Shrinks { first, second }));
    }
    let mut proof = Vec::new();
    if first > 0 && first < second {
        subproof(source, first, 0, second, true, &mut proof)?;
    }
    Ok(Ok(proof))
}

/// SUBPROOF(m, D[start:end], whole), appended to `out` deepest first.
fn subproof<S: Subtrees>(
    source: &mut S,
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
    out: &mut Vec<Digest>,
) -> Result<(), S::Error> {
    let n = end - start;
    if m == n {
        if !whole {
            out.push(range_hash(source, start, end)?);
        }
        return Ok(());
    }
    let k = largest_power_below(n);
    if m <= k {
        subproof(source, m, start, start + k, whole, out)?;
        out.push(range_hash(source, start + k, end)?);
    } else {
        subproof(source, m - k, start + k, end, false, out)?;
        out.push(range_hash(source, start, start + k)?);
    }
    Ok(())
}

/// Whether `proof` shows leaf `index`, hashing to `leaf`, in the tree of
/// `size` leaves whose root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Digest, proof: &[Digest], root: &Digest) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// Whether `proof` shows that the tree of `second` leaves with root
/// `second_root` extends the tree of `first` leaves with root `first_root`
/// (RFC 9162 §2.1.4.2; the empty tree is extended by every tree).
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Digest,
    second_root: &Digest,
    proof: &[Digest],
) -> bool {
    if first > second {
        return false;
    }
    if first == second {
        return proof.is_empty() && first_root == second_root;
    }
    if first == 0 {
        return proof.is_empty() && *first_root == empty_root();
    }
    if proof.is_empty() {
        return false;
    }
    let mut path: Vec<Digest> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let (mut f, mut s) = (first - 1, second - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *first_root && sr == *second_root && s == 0
}

#[cfg(test)]
mod tests;
