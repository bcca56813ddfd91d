//! Value segments on disk: large `chunks` values are written once to
//! segment files, bytes no commit recorded are cut off at open, purged bytes
//! are punched out (also when a crash interrupted the punch), and a backup
//! copy keeps every value its references point at.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use wormbox_store::backend::{Backend, BackendError, Batch, Durability, Keyspace};
use wormbox_store_rocksdb::{RocksBackend, RocksOptions};

fn open(dir: &Path) -> RocksBackend {
    RocksBackend::open(dir, &RocksOptions::for_tests()).expect("rocksdb opens")
}

/// A value that cannot be mistaken for zeros or for another value (no
/// period, no zero byte).
fn value(seed: u8, size: usize) -> Vec<u8> {
    let mut state = (u64::from(seed) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8 | 1
        })
        .collect()
}

fn put(backend: &RocksBackend, key: &[u8], value: Vec<u8>, durability: Durability) {
    let mut batch = Batch::new();
    batch.put(Keyspace::Chunks, key.to_vec(), value);
    backend.commit(&batch, durability).unwrap();
}

fn delete(backend: &RocksBackend, key: &[u8], durability: Durability) {
    let mut batch = Batch::new();
    batch.delete(Keyspace::Chunks, key.to_vec());
    backend.commit(&batch, durability).unwrap();
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

/// Where `needle` starts in `dir`'s segment files, if it is there.
fn find_in_segments(dir: &Path, needle: &[u8]) -> Option<(PathBuf, usize)> {
    segment_files(dir).into_iter().find_map(|path| {
        let bytes = std::fs::read(&path).unwrap();
        bytes.windows(needle.len()).position(|w| w == needle).map(|at| (path, at))
    })
}

#[test]
fn a_group_of_large_values_is_written_once_to_a_segment_and_small_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let backend = open(dir.path());
    let large: Vec<Vec<u8>> = (0..4).map(|n| value(n, 64 << 10)).collect();
    let small = value(9, 1 << 10);
    let mut batch = Batch::new();
    for (n, v) in large.iter().enumerate() {
        batch.put(Keyspace::Chunks, vec![b'L', n as u8], v.clone());
    }
    batch.put(Keyspace::Chunks, b"small".to_vec(), small.clone());
    backend.commit(&batch, Durability::Synced).unwrap();
    for v in &large {
        assert!(find_in_segments(dir.path(), v).is_some(), "a large value of the group is in a segment");
    }
    assert!(find_in_segments(dir.path(), &small).is_none(), "the small value stays in RocksDB");
    // Not in the WAL as well: its bytes are on disk once.
    let in_logs = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .any(|p| std::fs::read(p).unwrap().windows(large[0].len()).any(|w| w == large[0]));
    assert!(!in_logs, "a segment value is not written to the WAL");
    for (n, v) in large.iter().enumerate() {
        assert_eq!(backend.get(Keyspace::Chunks, &[b'L', n as u8]).unwrap().as_ref(), Some(v));
    }
    assert_eq!(backend.get(Keyspace::Chunks, b"small").unwrap(), Some(small));

    // A lone 64 KiB value is under `segment_batch_min_bytes`: one WAL sync
    // acknowledges it sooner than a segment sync and a WAL sync.
    let lone = value(10, 64 << 10);
    put(&backend, b"lone", lone.clone(), Durability::Synced);
    assert!(find_in_segments(dir.path(), &lone).is_none());
    assert_eq!(backend.get(Keyspace::Chunks, b"lone").unwrap(), Some(lone));
}

#[test]
fn a_full_segment_is_closed_and_the_next_one_started() {
    let dir = tempfile::tempdir().unwrap();
    let backend = open(dir.path());
    // The tests' segment files close at 4 MiB.
    for n in 0..10u8 {
        put(&backend, &[n], value(n, 1 << 20), if n % 3 == 0 { Durability::Buffered } else { Durability::Synced });
    }
    assert!(segment_files(dir.path()).len() >= 3, "{:?}", segment_files(dir.path()));
    drop(backend);
    let backend = open(dir.path());
    for n in 0..10u8 {
        assert_eq!(backend.get(Keyspace::Chunks, &[n]).unwrap(), Some(value(n, 1 << 20)));
    }
}

#[test]
fn bytes_no_commit_recorded_are_cut_off_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let backend = open(dir.path());
    put(&backend, b"kept", value(3, 200_000), Durability::Synced);
    drop(backend);
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1);
    let committed = std::fs::metadata(&files[0]).unwrap().len();
    // What a crash between a segment append and its commit leaves: bytes
    // past the recorded end, and a segment file no commit mentions.
    let torn = value(4, 30_000);
    OpenOptions::new().append(true).open(&files[0]).unwrap().write_all(&torn).unwrap();
    std::fs::write(dir.path().join("values-00000000000000aa.seg"), value(5, 100)).unwrap();

    let backend = open(dir.path());
    assert_eq!(std::fs::metadata(&files[0]).unwrap().len(), committed);
    assert_eq!(segment_files(dir.path()), files, "the unrecorded segment file is removed");
    assert_eq!(backend.get(Keyspace::Chunks, b"kept").unwrap(), Some(value(3, 200_000)));
    // Writing goes on in a new segment.
    put(&backend, b"next", value(6, 200_000), Durability::Synced);
    assert_eq!(segment_files(dir.path()).len(), 2);
    assert_eq!(backend.get(Keyspace::Chunks, b"next").unwrap(), Some(value(6, 200_000)));
}

#[test]
fn a_segment_that_lost_committed_bytes_is_reported_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let backend = open(dir.path());
    put(&backend, b"k", value(7, 200_000), Durability::Synced);
    drop(backend);
    let file = segment_files(dir.path()).remove(0);
    OpenOptions::new().write(true).open(&file).unwrap().set_len(1000).unwrap();
    let err = RocksBackend::open(dir.path(), &RocksOptions::for_tests()).unwrap_err();
    assert!(matches!(err, BackendError::Corruption { space: Some(Keyspace::Chunks), .. }), "{err:?}");

    std::fs::remove_file(&file).unwrap();
    let err = RocksBackend::open(dir.path(), &RocksOptions::for_tests()).unwrap_err();
    assert!(format!("{:?}", err).contains("missing"), "{err:?}");
}

#[test]
fn deleted_values_are_punched_out_of_their_segment() {
    let dir = tempfile::tempdir().unwrap();
    let backend = open(dir.path());
    let doomed = value(8, 200_000);
    let kept = value(9, 200_000);
    put(&backend, b"doomed", doomed.clone(), Durability::Synced);
    put(&backend, b"kept", kept.clone(), Durability::Synced);
    let (file, at) = find_in_segments(dir.path(), &doomed).unwrap();
    delete(&backend, b"doomed", Durability::Synced);
    let mut gone = vec![1u8; doomed.len()];
    std::fs::File::open(&file).unwrap().read_exact_at(&mut gone, at as u64).unwrap();
    assert!(gone.iter().all(|b| *b == 0), "purged bytes read back as zeros");
    assert_eq!(backend.get(Keyspace::Chunks, b"doomed").unwrap(), None);
    assert_eq!(backend.get(Keyspace::Chunks, b"kept").unwrap(), Some(kept.clone()));
    // Overwriting a large value frees the old bytes too.
    put(&backend, b"kept", value(10, 150_000), Durability::Synced);
    assert!(find_in_segments(dir.path(), &kept).is_none());
}

#[test]
fn a_punch_interrupted_by_a_crash_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let backend = open(dir.path());
    let doomed = value(11, 200_000);
    put(&backend, b"doomed", doomed.clone(), Durability::Synced);
    // A buffered delete is not durable yet, so its bytes are not punched
    // until a synced commit: stopping here is a crash between the two.
    delete(&backend, b"doomed", Durability::Buffered);
    assert!(find_in_segments(dir.path(), &doomed).is_some());
    drop(backend);
    let backend = open(dir.path());
    assert!(find_in_segments(dir.path(), &doomed).is_none(), "the recorded punch is done at open");
    assert_eq!(backend.get(Keyspace::Chunks, b"doomed").unwrap(), None);
}

#[test]
fn a_copy_keeps_every_value_its_references_point_at() {
    let dir = tempfile::tempdir().unwrap();
    let backend = open(dir.path());
    put(&backend, b"a", value(12, 300_000), Durability::Synced);
    put(&backend, b"b", value(13, 300_000), Durability::Synced);
    let copy = dir.path().join("copy");
    backend.copy_to(&copy).unwrap();
    // Purged after the copy: gone here, still in the copy.
    delete(&backend, b"a", Durability::Synced);
    put(&backend, b"c", value(14, 300_000), Durability::Synced);
    assert_eq!(backend.get(Keyspace::Chunks, b"a").unwrap(), None);

    let read_only = RocksBackend::open_read_only(&copy).unwrap();
    assert_eq!(read_only.get(Keyspace::Chunks, b"a").unwrap(), Some(value(12, 300_000)));
    let scanned: Vec<Vec<u8>> = read_only.scan(Keyspace::Chunks, b"", b"").map(|e| e.unwrap().0).collect();
    assert_eq!(scanned, vec![b"a".to_vec(), b"b".to_vec()]);
    assert!(read_only.commit(&Batch::new(), Durability::Synced).is_err(), "a read-only copy refuses commits");
    drop(read_only);
    let copy = open(&copy);
    assert_eq!(copy.get(Keyspace::Chunks, b"a").unwrap(), Some(value(12, 300_000)));
    assert_eq!(copy.get(Keyspace::Chunks, b"b").unwrap(), Some(value(13, 300_000)));
    assert_eq!(copy.get(Keyspace::Chunks, b"c").unwrap(), None);
}
