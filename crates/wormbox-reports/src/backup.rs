//! The backup directory: `db/` (a consistent copy of the appliance's database)
//! and `backup.json`, which names the copy's files with their sizes and
//! SHA-256, the ledger entry the copy ends at, and the checkpoint signed just
//! before it was taken. `wormbox admin backup` writes it; `wormboxd restore`
//! checks it before anything else.
//!
//! Invariant: `check_files` accepts a directory only when `db/` holds exactly
//! the listed files, each with its listed size and SHA-256, and every name is
//! a plain file name, so a backup can neither lose, gain nor swap a file, nor
//! make a restore write outside its target.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ReportError;
use crate::checkpoint::CheckpointFile;

/// The name of the manifest in a backup directory.
pub const MANIFEST_FILE: &str = "backup.json";
/// The directory of the database copy in a backup directory.
pub const DB_DIR: &str = "db";
/// What `format` says in a backup this build writes and reads.
pub const BACKUP_FORMAT: &str = "wormbox-backup-1";
/// The largest manifest read (a database has thousands of files, not millions).
const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// `backup.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupManifest {
    /// Always `BACKUP_FORMAT`.
    pub format: String,
    /// The archive's on-disk format (`wormbox_store::format`).
    pub store_format: u32,
    /// The ledger entry the copy ends at.
    pub ledger_sequence: u64,
    /// The chain hash there, hex.
    pub ledger_head: String,
    /// The checkpoint signed for the backup, before the copy was taken; the
    /// copy holds it and every entry it covers.
    pub checkpoint: CheckpointFile,
    /// The appliance's checkpoint public key, hex.
    pub public_key: String,
    /// Every file of `db/`, in name order.
    pub files: Vec<BackupFile>,
}

/// One file of the database copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupFile {
    /// A plain file name.
    pub path: String,
    /// Its size, in bytes.
    pub size: u64,
    /// Hex SHA-256 of its contents.
    pub sha256: String,
}

/// Returns whether `name` may name a file of a backup: a plain name of
/// letters, digits, `.`, `_` and `-`, not `.` or `..`. RocksDB names all its
/// files so.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl BackupManifest {
    /// Reads `dir/backup.json`.
    pub fn read(dir: &Path) -> Result<BackupManifest, ReportError> {
        let path = dir.join(MANIFEST_FILE);
        let io = |source| ReportError::Io { what: "reading the backup manifest", path: path.clone(), source };
        let mut text = String::new();
        std::fs::File::open(&path)
            .and_then(|f| f.take(MAX_MANIFEST_BYTES + 1).read_to_string(&mut text))
            .map_err(io)?;
        BackupManifest::parse(&text).map_err(|why| ReportError::Malformed { path, why })
    }

    /// Parses and checks the manifest's own rules.
    pub fn parse(text: &str) -> Result<BackupManifest, String> {
        if text.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(format!("larger than {MAX_MANIFEST_BYTES} bytes"));
        }
        let manifest: BackupManifest = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if manifest.format != BACKUP_FORMAT {
            return Err(format!("format `{}`, this build reads `{BACKUP_FORMAT}`", manifest.format));
        }
        let mut previous: Option<&str> = None;
        for file in &manifest.files {
            if !is_plain_file_name(&file.path) {
                return Err(format!("`{}` is not a plain file name", file.path));
            }
            if previous.is_some_and(|p| p >= file.path.as_str()) {
                return Err(format!("`{}` is out of order or listed twice", file.path));
            }
            if file.sha256.len() != 64 || !file.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("`{}` has no 64-digit SHA-256", file.path));
            }
            previous = Some(&file.path);
        }
        if manifest.ledger_head.len() != 64 || !manifest.ledger_head.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("ledger_head is not 64 hex digits".to_owned());
        }
        if manifest.files.is_empty() {
            return Err("lists no file".to_owned());
        }
        if manifest.checkpoint.sequence > manifest.ledger_sequence {
            return Err("its checkpoint is past the ledger entry the copy ends at".to_owned());
        }
        Ok(manifest)
    }

    /// Checks `dir/db` against the manifest; returns the problems found (none: intact).
    pub fn check_files(&self, dir: &Path) -> Result<Vec<String>, ReportError> {
        let db = dir.join(DB_DIR);
        let io = |path: PathBuf| move |source| ReportError::Io { what: "reading the backup", path, source };
        let mut problems = Vec::new();
        let mut present = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(&db).map_err(io(db.clone()))? {
            let entry = entry.map_err(io(db.clone()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !entry.file_type().map_err(io(entry.path()))?.is_file() {
                problems.push(format!("db/{name} is not a regular file"));
            }
            present.insert(name);
        }
        for file in &self.files {
            if !present.remove(&file.path) {
                problems.push(format!("db/{} is missing", file.path));
                continue;
            }
            let path = db.join(&file.path);
            let (size, sha256) = hash_file(&path)?;
            if size != file.size || sha256 != file.sha256 {
                problems.push(format!(
                    "db/{} has {size} bytes with SHA-256 {sha256}; the manifest says {} bytes with {}",
                    file.path, file.size, file.sha256
                ));
            }
        }
        problems.extend(present.into_iter().map(|name| format!("db/{name} is not in the manifest")));
        Ok(problems)
    }
}

/// Returns a file's size and hex SHA-256, reading it in 1 MiB pieces.
pub fn hash_file(path: &Path) -> Result<(u64, String), ReportError> {
    let io = |source| ReportError::Io { what: "reading", path: path.to_owned(), source };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        context.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(context.finish())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(dir: &Path, files: &[(&str, &[u8])]) -> BackupManifest {
        std::fs::create_dir_all(dir.join(DB_DIR)).unwrap();
        let mut listed = Vec::new();
        for (name, bytes) in files {
            std::fs::write(dir.join(DB_DIR).join(name), bytes).unwrap();
            let (size, sha256) = hash_file(&dir.join(DB_DIR).join(name)).unwrap();
            listed.push(BackupFile { path: (*name).to_owned(), size, sha256 });
        }
        BackupManifest {
            format: BACKUP_FORMAT.to_owned(),
            store_format: 1,
            ledger_sequence: 9,
            ledger_head: "00".repeat(32),
            checkpoint: CheckpointFile {
                sequence: 9,
                head: "00".repeat(32),
                time_unix_micros: 0,
                time: String::new(),
                signature: "00".repeat(64),
                key_id: String::new(),
                tree_root: None,
            },
            public_key: "00".repeat(32),
            files: listed,
        }
    }

    #[test]
    fn an_intact_backup_has_no_problems_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest(dir.path(), &[("000001.sst", b"one"), ("CURRENT", b"MANIFEST-1\n")]);
        assert!(m.check_files(dir.path()).unwrap().is_empty());
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(BackupManifest::parse(&text).unwrap(), m);
    }

    #[test]
    fn a_changed_missing_or_extra_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest(dir.path(), &[("000001.sst", b"one"), ("000002.sst", b"two"), ("CURRENT", b"x")]);
        std::fs::write(dir.path().join("db/000001.sst"), b"ONE").unwrap();
        std::fs::remove_file(dir.path().join("db/000002.sst")).unwrap();
        std::fs::write(dir.path().join("db/stray.log"), b"?").unwrap();
        let problems = m.check_files(dir.path()).unwrap().join("\n");
        assert!(problems.contains("db/000001.sst has 3 bytes"), "{problems}");
        assert!(problems.contains("db/000002.sst is missing"), "{problems}");
        assert!(problems.contains("db/stray.log is not in the manifest"), "{problems}");
    }

    #[test]
    fn manifests_that_break_the_rules_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = manifest(dir.path(), &[("a", b"1"), ("b", b"2")]);
        let with = |edit: &dyn Fn(&mut BackupManifest)| {
            let mut m = good.clone();
            edit(&mut m);
            BackupManifest::parse(&serde_json::to_string(&m).unwrap()).unwrap_err()
        };
        assert!(with(&|m| m.files[0].path = "../etc/passwd".to_owned()).contains("plain file name"));
        assert!(with(&|m| m.files[0].path = "sub/file".to_owned()).contains("plain file name"));
        assert!(with(&|m| m.files[1].path = "a".to_owned()).contains("listed twice"));
        assert!(with(&|m| m.files[0].sha256 = "zz".to_owned()).contains("SHA-256"));
        assert!(with(&|m| m.format = "wormbox-backup-9".to_owned()).contains("wormbox-backup-9"));
        assert!(with(&|m| m.files.clear()).contains("no file"));
        assert!(with(&|m| m.checkpoint.sequence = 10).contains("past"));
        assert!(BackupManifest::parse("{\"format\":").is_err());
        assert!(
            BackupManifest::parse(&serde_json::to_string(&good).unwrap().replace("\"files\"", "\"extra\":1,\"files\""))
                .is_err()
        );
    }
}
