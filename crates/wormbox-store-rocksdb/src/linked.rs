//! The RocksDB library linked into this binary must be the version the
//! bindings were generated from. scripts/dev.sh links one prebuilt
//! `librocksdb.a` (scripts/rocksdb-lib.sh) into every profile; a stale or
//! foreign library would still link as long as the C symbols match, and then
//! run with structure layouts and defaults the bindings do not describe.
//! RocksDB writes its own compiled-in version into every OPTIONS file it
//! persists when a database opens read-write, so the newest one says which
//! library really ran; a store is not opened on a mismatch.

use std::path::Path;

use wormbox_store::backend::BackendError;

/// `MAJOR.MINOR.PATCH` of the headers the bindings were generated from
/// (build.rs reads it from librocksdb-sys's `rocksdb/version.h`).
pub(crate) const BINDINGS_VERSION: &str = env!("WORMBOX_ROCKSDB_BINDINGS_VERSION");

/// The `rocksdb_version` the newest `OPTIONS-<number>` file in `dir` records,
/// or `None` when there is no such file or line.
pub(crate) fn written_version(dir: &Path) -> std::io::Result<Option<String>> {
    let mut newest: Option<(u64, std::path::PathBuf)> = None;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(number) = name.to_str().and_then(|n| n.strip_prefix("OPTIONS-")).and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if newest.as_ref().is_none_or(|(seen, _)| number > *seen) {
            newest = Some((number, entry.path()));
        }
    }
    let Some((_, path)) = newest else { return Ok(None) };
    Ok(options_version(&std::fs::read_to_string(path)?))
}

fn options_version(options_file: &str) -> Option<String> {
    options_file.lines().find_map(|line| line.trim().strip_prefix("rocksdb_version=")).map(|v| v.trim().to_owned())
}

/// Refuses a database just opened read-write in `dir` by a RocksDB library of
/// another version than [`BINDINGS_VERSION`].
pub(crate) fn check(dir: &Path) -> Result<(), BackendError> {
    let written = written_version(dir).map_err(|err| {
        BackendError::Io(std::io::Error::new(
            err.kind(),
            format!("reading RocksDB's OPTIONS file in {}: {err}", dir.display()),
        ))
    })?;
    match written {
        Some(version) if version == BINDINGS_VERSION => Ok(()),
        Some(version) => Err(mismatch(&version)),
        None => Err(mismatch("unknown (no OPTIONS file written at open)")),
    }
}

fn mismatch(linked: &str) -> BackendError {
    BackendError::Engine(
        format!(
            "the linked RocksDB library is {linked}, but this binary's bindings are for {BINDINGS_VERSION}: \
             rebuild with the library scripts/rocksdb-lib.sh makes for this source (or without ROCKSDB_LIB_DIR)"
        )
        .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_line_is_read_from_the_version_section() {
        let text = "# comment\n[Version]\n  rocksdb_version=11.8.1\n  options_file_version=1.1\n";
        assert_eq!(options_version(text).as_deref(), Some("11.8.1"));
        assert_eq!(options_version("[Version]\n  options_file_version=1.1\n"), None);
    }

    #[test]
    fn the_newest_options_file_wins_and_a_mismatch_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(written_version(dir.path()).unwrap(), None);
        assert!(check(dir.path()).is_err(), "no OPTIONS file: the library is unknown");
        std::fs::write(dir.path().join("OPTIONS-000007"), format!("[Version]\n  rocksdb_version={BINDINGS_VERSION}\n"))
            .unwrap();
        check(dir.path()).unwrap();
        std::fs::write(dir.path().join("OPTIONS-000012"), "[Version]\n  rocksdb_version=1.2.3\n").unwrap();
        std::fs::write(dir.path().join("OPTIONS-000009.dbtmp"), format!("rocksdb_version={BINDINGS_VERSION}\n"))
            .unwrap();
        assert_eq!(written_version(dir.path()).unwrap().as_deref(), Some("1.2.3"));
        let err = check(dir.path()).unwrap_err().to_string();
        assert_eq!(err, "storage engine failed");
        let BackendError::Engine(source) = check(dir.path()).unwrap_err() else { panic!("not an engine error") };
        assert!(source.to_string().contains("1.2.3"), "{source}");
        assert!(source.to_string().contains(BINDINGS_VERSION), "{source}");
    }

    /// The library this test binary links (scripts/dev.sh: the prebuilt
    /// one) is the version of the headers the bindings came from.
    #[test]
    fn the_linked_library_is_the_bindings_version() {
        let dir = tempfile::tempdir().unwrap();
        let backend = crate::RocksBackend::open(dir.path(), &crate::RocksOptions::for_tests()).unwrap();
        drop(backend);
        assert_eq!(written_version(dir.path()).unwrap().as_deref(), Some(BINDINGS_VERSION));
    }
}
