//! The ledger's Merkle tree and entries in the C2SP `tlog-tiles` layout
//! (<https://c2sp.org/tlog-tiles>): a tile at level `L` is up to 256
//! consecutive hashes of the tree at height `8·L` (level 0: the leaves), an
//! entry bundle the entries of one level-0 tile, each as a big-endian
//! `u16` length and the entry's canonical bytes. A client that holds a
//! signed checkpoint fetches the tiles a proof needs and nothing else, and
//! tools written for transparency logs read them as they are.
//!
//! Invariant: a tile's bytes depend only on its path, never on when it is
//! asked for: it is served only once the ledger holds every entry it
//! covers (a partial tile of width `W` is the first `W` hashes of the full
//! one), and its paths are parsed strictly (one spelling per tile), so a
//! cache or an export keyed by path never holds two versions of one tile.

use std::fmt;

use wormbox_model::Digest;

use crate::merkle::{self, Frontier};

/// Hashes in a full tile, entries in a full bundle.
pub const TILE_WIDTH: u64 = 256;

/// The tree levels a tile spans: `log2(TILE_WIDTH)`.
pub const TILE_HEIGHT: u32 = 8;

/// The largest entry a bundle can hold (its length is a `u16`).
pub const MAX_BUNDLED_ENTRY: usize = u16::MAX as usize;

/// One tile or entry bundle, as its path names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tile {
    /// `tile/<level>/<index>[.p/<width>]`: hashes at height `8·level`.
    Hashes {
        /// 0 for leaf hashes.
        level: u8,
        /// The tile's position in its level.
        index: u64,
        /// 1..=256; below 256 the tile is partial.
        width: u16,
    },
    /// `tile/entries/<index>[.p/<width>]`: the entries of level-0 tile `index`.
    Entries {
        /// The bundle's position.
        index: u64,
        /// 1..=256; below 256 the bundle is partial.
        width: u16,
    },
}

/// Why a path names no tile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{path}` is not a tlog-tiles path (tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]): {why}")]
pub struct TilePathError {
    path: String,
    why: &'static str,
}

impl Tile {
    /// Parses a path relative to the log's prefix, accepting only the
    /// spelling `Display` gives.
    pub fn parse(path: &str) -> Result<Tile, TilePathError> {
        let refuse = |why| TilePathError { path: path.chars().take(200).collect(), why };
        let rest = path.strip_prefix("tile/").ok_or_else(|| refuse("it does not start with `tile/`"))?;
        let (kind, rest) = rest.split_once('/').ok_or_else(|| refuse("it names no tile index"))?;
        let (index_part, width) = match rest.split_once(".p/") {
            Some((index, width)) => (index, parse_width(width).ok_or_else(|| refuse("the width is not 1 to 255"))?),
            None => (rest, TILE_WIDTH as u16),
        };
        let index = parse_index(index_part)
            .filter(|index| *index <= u64::MAX / TILE_WIDTH)
            .ok_or_else(|| refuse("the index is not in 3-digit groups, x-prefixed, of a tile a tree can have"))?;
        let tile = if kind == "entries" {
            Tile::Entries { index, width }
        } else {
            let level = parse_decimal(kind)
                .and_then(|l| u8::try_from(l).ok())
                .filter(|l| *l <= 63)
                .ok_or_else(|| refuse("the level is not 0 to 63"))?;
            Tile::Hashes { level, index, width }
        };
        // One spelling per tile: "x000/005" and "5" are not "005".
        if tile.to_string() != path {
            return Err(refuse("it is not written the one way the layout allows"));
        }
        Ok(tile)
    }

    /// The width: hashes (or entries) it holds.
    pub fn width(&self) -> u16 {
        match *self {
            Tile::Hashes { width, .. } | Tile::Entries { width, .. } => width,
        }
    }

    /// The level: that of the hashes it holds (0 for a bundle: one per leaf).
    pub fn level(&self) -> u8 {
        match *self {
            Tile::Hashes { level, .. } => level,
            Tile::Entries { .. } => 0,
        }
    }

    /// The position of its first hash (or entry) in its level (saturating:
    /// a tile past 2^64 hashes is in no tree, as `tree_size_needed` says).
    pub fn first(&self) -> u64 {
        self.index().saturating_mul(TILE_WIDTH)
    }

    fn index(&self) -> u64 {
        match *self {
            Tile::Hashes { index, .. } | Tile::Entries { index, .. } => index,
        }
    }

    /// The smallest tree that holds all of it (`None`: more than 2^64 leaves).
    pub fn tree_size_needed(&self) -> Option<u64> {
        let end = self.index().checked_mul(TILE_WIDTH)?.checked_add(u64::from(self.width()))?;
        let shift = u32::from(self.level()) * TILE_HEIGHT;
        if shift >= 64 {
            return None;
        }
        end.checked_mul(1u64 << shift)
    }

    /// Every tile and bundle the layout gives a tree of `size` leaves: the
    /// full ones and, per level, the partial one, if any, level by level.
    pub fn of_tree(size: u64) -> Vec<Tile> {
        let mut out = Vec::new();
        let mut level = 0u8;
        let mut hashes = size;
        while hashes > 0 {
            let (full, partial) = (hashes / TILE_WIDTH, (hashes % TILE_WIDTH) as u16);
            for index in 0..full {
                out.push(Tile::Hashes { level, index, width: TILE_WIDTH as u16 });
                if level == 0 {
                    out.push(Tile::Entries { index, width: TILE_WIDTH as u16 });
                }
            }
            if partial > 0 {
                out.push(Tile::Hashes { level, index: full, width: partial });
                if level == 0 {
                    out.push(Tile::Entries { index: full, width: partial });
                }
            }
            hashes /= TILE_WIDTH;
            level += 1;
        }
        out
    }
}

impl fmt::Display for Tile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Tile::Hashes { level, .. } => write!(f, "tile/{level}/")?,
            Tile::Entries { .. } => f.write_str("tile/entries/")?,
        }
        let index = self.index();
        let mut groups = Vec::new();
        let mut rest = index;
        loop {
            groups.push(rest % 1000);
            rest /= 1000;
            if rest == 0 {
                break;
            }
        }
        for (n, group) in groups.iter().rev().enumerate() {
            let prefix = if n + 1 < groups.len() { "x" } else { "" };
            let slash = if n + 1 < groups.len() { "/" } else { "" };
            write!(f, "{prefix}{group:03}{slash}")?;
        }
        let width = self.width();
        if u64::from(width) < TILE_WIDTH {
            write!(f, ".p/{width}")?;
        }
        Ok(())
    }
}

/// A decimal with no sign and no leading zero (but `0`).
fn parse_decimal(text: &str) -> Option<u64> {
    let canonical =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

fn parse_width(text: &str) -> Option<u16> {
    parse_decimal(text).filter(|w| (1..TILE_WIDTH).contains(w)).map(|w| w as u16)
}

/// `x001/x234/067`: 3-digit groups, all but the last prefixed with `x`.
fn parse_index(text: &str) -> Option<u64> {
    let groups: Vec<&str> = text.split('/').collect();
    let mut index: u64 = 0;
    for (n, group) in groups.iter().enumerate() {
        let digits = if n + 1 < groups.len() { group.strip_prefix('x')? } else { group };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        index = index.checked_mul(1000)?.checked_add(digits.parse::<u64>().ok()?)?;
    }
    Some(index)
}

/// An entry bundle of `entries`, each a canonical entry; `None` if one is
/// longer than a bundle can hold.
pub fn bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for entry in entries {
        let len = u16::try_from(entry.len()).ok()?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Some(out)
}

/// The entries of a bundle, in order; `None` if the bytes are not a
/// sequence of length-prefixed entries.
pub fn unbundle(mut bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*len));
        if rest.len() < len {
            return None;
        }
        let (entry, rest) = rest.split_at(len);
        out.push(entry);
        bytes = rest;
    }
    Some(out)
}

/// The most bytes a tile or bundle of `width` can hold: what a reader of
/// untrusted files checks before reading one.
pub fn max_bytes(tile: Tile) -> u64 {
    match tile {
        Tile::Hashes { width, .. } => u64::from(width) * 32,
        Tile::Entries { width, .. } => u64::from(width) * (2 + MAX_BUNDLED_ENTRY as u64),
    }
}

/// Checks every tile and bundle of the tree of `size` leaves, as `read`
/// gives them by path, against the signed `root`: each bundle's entries
/// hash to the leaves, every hash of every tile is recomputed from those
/// leaves, and the leaves make `root`. Holds the leaf hashes (32 bytes an
/// entry), not the entries; returns how many entries it read.
pub fn check(size: u64, root: &Digest, read: &mut dyn FnMut(Tile) -> Result<Vec<u8>, String>) -> Result<u64, String> {
    let tiles = Tile::of_tree(size);
    let mut level = Vec::new();
    for tile in tiles.iter().filter(|t| matches!(t, Tile::Entries { .. })) {
        let bytes = read(*tile)?;
        let bundle = unbundle(&bytes).ok_or_else(|| format!("{tile}: not a sequence of length-prefixed entries"))?;
        if bundle.len() != usize::from(tile.width()) {
            return Err(format!("{tile}: holds {} entries, not {}", bundle.len(), tile.width()));
        }
        level.extend(bundle.into_iter().map(merkle::leaf_hash));
    }
    let entries = level.len() as u64;
    let mut frontier = Frontier::default();
    for leaf in &level {
        frontier.push(*leaf, |_, _, _| {});
    }
    if frontier.root() != *root {
        return Err(format!("the entries do not make the signed root of the tree of {size} entries"));
    }
    for number in 0u8.. {
        if level.is_empty() {
            break;
        }
        for tile in tiles.iter().filter(|t| matches!(t, Tile::Hashes { level: l, .. } if *l == number)) {
            let first = tile.first() as usize;
            let expected: Vec<u8> = level[first..first + usize::from(tile.width())].iter().flat_map(|d| d.0).collect();
            if read(*tile)? != expected {
                return Err(format!("{tile}: its hashes are not the ones the entries make"));
            }
        }
        level = level.chunks_exact(TILE_WIDTH as usize).map(merkle::perfect_root).collect();
    }
    Ok(entries)
}

#[cfg(test)]
mod tests;
