//! Segment files on disk: every `chunks` value is written once, to the log
//! in segment files, bytes no commit recorded are cut off at open, purged
//! bytes are punched out (`tests/log.rs`: also when a crash interrupted the punch), and a
//! backup copy keeps every value its references point at.

mod support;

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use wormbox_store::backend::{Backend, BackendError, Batch, Durability, Keyspace};
use wormbox_store_rocksdb::{RocksBackend, RocksOptions};

use crate::support::segment_files;

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

/// Where `needle` starts in `dir`'s segment files, if it is there.
fn find_in_segments(dir: &Path, needle: &[u8]) -> Option<(PathBuf, usize)> {
    segment_files(dir).into_iter().find_map(|path| {
        let bytes = std::fs::read(&path).unwrap();
        bytes.windows(needle.len()).position(|w| w == needle).map(|at| (path, at))
    })
}

/// Whether `needle` is in any of RocksDB's own files in `dir` (tables, blob
/// files, its write-ahead log).
fn in_rocksdb_files(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sst" || e == "blob" || e == "log"))
        .any(|p| std::fs::read(p).unwrap().windows(needle.len()).any(|w| w == needle))
}

#[test]
fn every_value_is_written_once_to_the_log_and_never_to_rocksdb() {
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
    let lone = value(10, 64 << 10);
    put(&backend, b"lone", lone.clone(), Durability::Synced);
    backend.flush_index().unwrap();
    for v in large.iter().chain([&small, &lone]) {
        assert!(find_in_segments(dir.path(), v).is_some(), "a value is in the log");
        assert!(!in_rocksdb_files(dir.path(), v), "and nowhere else");
    }
    for (n, v) in large.iter().enumerate() {
        assert_eq!(backend.get(Keyspace::Chunks, &[b'L', n as u8]).unwrap().as_ref(), Some(v));
    }
    assert_eq!(backend.get(Keyspace::Chunks, b"small").unwrap(), Some(small));
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
    // What a crash in a frame's write leaves (`tests/log.rs` tears real
    // frames at every kind of place): blocks never written (zeros past the
    // last frame), and a segment file created for a frame never written.
    OpenOptions::new().append(true).open(&files[0]).unwrap().write_all(&[0; 30_000]).unwrap();
    std::fs::write(dir.path().join("values-00000000000000aa.seg"), b"").unwrap();

    let backend = open(dir.path());
    assert_eq!(std::fs::metadata(&files[0]).unwrap().len(), committed);
    assert_eq!(segment_files(dir.path()), files, "the unrecorded segment file is removed");
    assert_eq!(backend.get(Keyspace::Chunks, b"kept").unwrap(), Some(value(3, 200_000)));
    // Writing goes on in a new segment.
    put(&backend, b"next", value(6, 200_000), Durability::Synced);
    assert_eq!(segment_files(dir.path()).len(), 2);
    assert_eq!(backend.get(Keyspace::Chunks, b"next").unwrap(), Some(value(6, 200_000)));
    drop(backend);

    // Bytes that are no frame and no torn write are damage, not a tail to
    // cut: the open refuses and leaves them.
    let last = segment_files(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    OpenOptions::new().append(true).open(&last).unwrap().write_all(&value(4, 30_000)).unwrap();
    let err = RocksBackend::open(dir.path(), &RocksOptions::for_tests()).unwrap_err();
    assert!(matches!(err, BackendError::Corruption { space: Some(Keyspace::Chunks), .. }), "{err:?}");
    assert_eq!(std::fs::metadata(&last).unwrap().len(), len + 30_000);
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

/// A byte of a value changed in the log (a failing disk, an editor of the
/// stopped appliance): reading that value is `Corruption` of `chunks`, as
/// RocksDB reports a damaged block, never the changed bytes; the other
/// values still read.
#[test]
fn a_value_whose_bytes_changed_in_the_log_reads_as_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let backend = open(dir.path());
    put(&backend, b"a", value(15, 5000), Durability::Synced);
    put(&backend, b"b", value(16, 5000), Durability::Synced);
    let (path, at) = find_in_segments(dir.path(), &value(15, 5000)).unwrap();
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[0], at as u64 + 100).unwrap();
    let damaged = |err: &BackendError| matches!(err, BackendError::Corruption { space: Some(Keyspace::Chunks), .. });
    let err = backend.get(Keyspace::Chunks, b"a").unwrap_err();
    assert!(damaged(&err), "{err:?}");
    assert_eq!(backend.get(Keyspace::Chunks, b"b").unwrap(), Some(value(16, 5000)));
    let scanned: Vec<_> = backend.scan(Keyspace::Chunks, b"", b"").collect();
    assert!(scanned[0].as_ref().is_err_and(damaged), "{:?}", scanned[0].as_ref().map(|(k, _)| k));
    drop(backend);
    let read_only = RocksBackend::open_read_only(dir.path()).unwrap();
    assert!(read_only.get(Keyspace::Chunks, b"a").unwrap_err().to_string().contains("corruption"));
}

/// The active segment reserves blocks ahead of its frames (so that a
/// frame's sync does not also journal their allocation); the blocks a
/// stopped appliance reserved and never wrote go back at the next open.
#[test]
fn blocks_reserved_ahead_of_the_log_are_given_back_at_open() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().unwrap();
    let backend = open(dir.path());
    put(&backend, b"k", value(17, 1000), Durability::Synced);
    let file = segment_files(dir.path()).remove(0);
    let meta = std::fs::metadata(&file).unwrap();
    let reserved = meta.blocks() * 512;
    if reserved < 1 << 20 {
        eprintln!("skipped: this filesystem reserves no blocks ahead ({reserved} bytes allocated)");
        return;
    }
    drop(backend);
    let backend = open(dir.path());
    let meta = std::fs::metadata(&file).unwrap();
    assert!(meta.blocks() * 512 <= 64 << 10, "{} bytes still allocated for {}", meta.blocks() * 512, meta.len());
    assert_eq!(backend.get(Keyspace::Chunks, b"k").unwrap(), Some(value(17, 1000)));
}
