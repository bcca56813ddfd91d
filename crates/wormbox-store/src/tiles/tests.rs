//! Tile paths as the C2SP tlog-tiles layout spells them, the tiles a tree
//! of a given size has, and entry bundles, against the specification's
//! own examples.

use super::*;

#[test]
fn paths_are_written_and_read_as_the_layout_gives_them() {
    let cases = [
        (Tile::Hashes { level: 0, index: 1_234_067, width: 256 }, "tile/0/x001/x234/067"),
        (Tile::Hashes { level: 2, index: 0, width: 1 }, "tile/2/000.p/1"),
        (Tile::Hashes { level: 1, index: 999, width: 255 }, "tile/1/999.p/255"),
        (Tile::Hashes { level: 0, index: 1000, width: 256 }, "tile/0/x001/000"),
        (Tile::Entries { index: 5, width: 112 }, "tile/entries/005.p/112"),
        (Tile::Entries { index: 1_000_000, width: 256 }, "tile/entries/x001/x000/000"),
    ];
    let last = Tile::Hashes { level: 0, index: u64::MAX / 256, width: 256 };
    assert_eq!(Tile::parse("tile/0/x072/x057/x594/x037/x927/935"), Ok(last));
    assert_eq!(last.tree_size_needed(), None, "in no tree: 2^64 leaves do not fit a u64");
    for (tile, path) in cases {
        assert_eq!(tile.to_string(), path);
        assert_eq!(Tile::parse(path), Ok(tile), "{path}");
    }
}

#[test]
fn any_other_spelling_of_a_tile_is_refused() {
    for path in [
        "",
        "tile/0/5",
        "tile/0/0005",
        "tile/0/x000/005",
        "tile/0/001/002",
        "tile/0/x1/002",
        "tile/00/005",
        "tile/64/005",
        "tile/-1/005",
        "tile/0/005.p/0",
        "tile/0/005.p/256",
        "tile/0/005.p/07",
        "tile/0/005.p/",
        "tile/0/005/",
        "/tile/0/005",
        "tile/0/x018/x446/x744/x073/x709/x551/616",
        "tile/entries/005.p/1/extra",
        // 2^56: its first hash would be past 2^64.
        "tile/0/x072/x057/x594/x037/x927/936",
        "tile/entries",
        "tile/entry/005",
        "checkpoint",
        "tile/0/../005",
    ] {
        assert!(Tile::parse(path).is_err(), "{path:?} was accepted");
    }
}

/// The example of the specification: a tree of 70,000 leaves.
#[test]
fn a_tree_is_the_tiles_the_specification_lists_for_it() {
    let tiles = Tile::of_tree(70_000);
    let count = |level: u8, width: u16| {
        tiles.iter().filter(|t| matches!(t, Tile::Hashes { .. }) && t.level() == level && t.width() == width).count()
    };
    assert_eq!(count(0, 256), 273);
    assert_eq!(count(0, 112), 1);
    assert_eq!(count(1, 256), 1);
    assert_eq!(count(1, 17), 1);
    assert_eq!(count(2, 1), 1);
    assert_eq!(tiles.iter().filter(|t| matches!(t, Tile::Entries { .. })).count(), 274);
    assert_eq!(tiles.len(), 273 + 1 + 1 + 1 + 1 + 274);
    assert_eq!(
        Tile::of_tree(256),
        vec![
            Tile::Hashes { level: 0, index: 0, width: 256 },
            Tile::Entries { index: 0, width: 256 },
            Tile::Hashes { level: 1, index: 0, width: 1 }
        ]
    );
    assert!(Tile::of_tree(0).is_empty());
    for tile in Tile::of_tree(70_000) {
        assert!(tile.tree_size_needed().unwrap() <= 70_000, "{tile}");
    }
}

#[test]
fn a_tile_needs_the_tree_that_holds_its_last_hash() {
    assert_eq!(Tile::Hashes { level: 0, index: 0, width: 3 }.tree_size_needed(), Some(3));
    assert_eq!(Tile::Hashes { level: 1, index: 1, width: 2 }.tree_size_needed(), Some(258 * 256));
    assert_eq!(Tile::Entries { index: 2, width: 256 }.tree_size_needed(), Some(768));
    assert_eq!(Tile::Hashes { level: 8, index: 0, width: 1 }.tree_size_needed(), None);
    assert_eq!(Tile::Hashes { level: 7, index: 1, width: 1 }.tree_size_needed(), None);
    assert_eq!(Tile::Hashes { level: 0, index: u64::MAX / 256, width: 256 }.tree_size_needed(), None);
}

#[test]
fn bundles_hold_length_prefixed_entries() {
    let entries: [&[u8]; 3] = [b"a", b"", &[7u8; 300]];
    let bytes = bundle(entries).unwrap();
    assert_eq!(&bytes[..3], &[0, 1, b'a']);
    assert_eq!(unbundle(&bytes).unwrap(), entries.to_vec());
    assert_eq!(unbundle(&bytes[..bytes.len() - 1]), None);
    assert_eq!(unbundle(&[0]), None);
    assert_eq!(bundle([&vec![0u8; MAX_BUNDLED_ENTRY + 1][..]]), None);
}
