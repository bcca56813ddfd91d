//! `wormbox admin backup --out DIR`: receives the appliance's backup stream
//! into a new directory (`db/` and `backup.json`, see
//! `wormbox_reports::backup`).
//!
//! Invariant: `backup.json` is written last, and only when every file arrived
//! whole with the size and SHA-256 the server announced and the manifest
//! lists exactly the files received; a directory without it is an unfinished
//! backup, which `wormboxd restore` refuses. File names from the server are
//! plain names or the backup is abandoned, so nothing is written outside DIR.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context as _, bail};
use serde_json::json;
use wormbox_proto::v1;
use wormbox_reports::backup::{BackupManifest, DB_DIR, MANIFEST_FILE, is_plain_file_name};

use crate::commands::Context;
use crate::output::write_whole;

struct Receiving {
    name: String,
    size: u64,
    sha256: String,
    written: u64,
    context: ring::digest::Context,
    file: std::fs::File,
}

impl Receiving {
    fn finish(self) -> anyhow::Result<()> {
        let sha256 = hex::encode(self.context.finish());
        if self.written != self.size || sha256 != self.sha256 {
            bail!(
                "db/{} arrived with {} bytes and SHA-256 {sha256}, announced {} bytes and {}",
                self.name,
                self.written,
                self.size,
                self.sha256
            );
        }
        self.file.sync_all().with_context(|| format!("syncing db/{}", self.name))
    }
}

/// Runs the backup into `out`, which must not exist or be empty.
pub(crate) async fn backup(cx: &Context, out: &Path) -> anyhow::Result<()> {
    if let Ok(mut entries) = std::fs::read_dir(out)
        && entries.next().is_some()
    {
        bail!("{} is not empty; a backup goes into a new directory", out.display());
    }
    // The copy holds principals' secret hashes and sealed seeds: private to
    // whoever takes it (0700 directories, 0600 files).
    let db = out.join(DB_DIR);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&db)
        .with_context(|| format!("creating {}", db.display()))?;
    std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("securing {}", out.display()))?;
    let mut stream = cx.clients.admin().backup(v1::BackupRequest {}).await?.into_inner();
    // The total is known only from the manifest, which comes last.
    let progress = crate::output::Progress::bytes("backing up", None);
    let mut current: Option<Receiving> = None;
    let mut received = Vec::new();
    let mut bytes = 0u64;
    let manifest = loop {
        let Some(chunk) = stream.message().await? else {
            bail!("the backup stream ended before its manifest: {} holds an unfinished backup", out.display());
        };
        match chunk.part {
            Some(v1::backup_chunk::Part::File(file)) => {
                if let Some(done) = current.take() {
                    done.finish()?;
                }
                if !is_plain_file_name(&file.path) || received.contains(&file.path) {
                    bail!("the server sent a file named `{}`; backup abandoned", file.path.escape_debug());
                }
                let path = db.join(&file.path);
                let handle = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                received.push(file.path.clone());
                current = Some(Receiving {
                    name: file.path,
                    size: file.size,
                    sha256: file.sha256,
                    written: 0,
                    context: ring::digest::Context::new(&ring::digest::SHA256),
                    file: handle,
                });
            }
            Some(v1::backup_chunk::Part::Data(data)) => {
                let Some(file) = current.as_mut() else { bail!("the server sent data before a file") };
                file.written += data.len() as u64;
                if file.written > file.size {
                    bail!("db/{} is longer than announced", file.name);
                }
                file.context.update(&data);
                file.file.write_all(&data).with_context(|| format!("writing db/{}", file.name))?;
                bytes += data.len() as u64;
                progress.reach(bytes);
            }
            Some(v1::backup_chunk::Part::ManifestJson(text)) => {
                if let Some(done) = current.take() {
                    done.finish()?;
                }
                break BackupManifest::parse(&text).map_err(|why| anyhow::anyhow!("the backup manifest: {why}"))?;
            }
            None => bail!("the server sent an empty backup part"),
        }
    };
    received.sort();
    let listed: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    if listed != received.iter().map(String::as_str).collect::<Vec<_>>() {
        bail!("the manifest does not list exactly the files received");
    }
    // Re-read from disk: what restore will check is what is there now.
    let problems = manifest.check_files(out)?;
    if !problems.is_empty() {
        bail!("the files written do not match the manifest: {}", problems.join("; "));
    }
    std::fs::File::open(&db).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", db.display()))?;
    let text = serde_json::to_string_pretty(&manifest)?;
    write_whole(&out.join(MANIFEST_FILE), format!("{text}\n").as_bytes())?;
    std::fs::File::open(out).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", out.display()))?;
    cx.print(
        json!({
            "dir": out.display().to_string(),
            "ledger_sequence": manifest.ledger_sequence,
            "checkpoint": manifest.checkpoint,
            "files": manifest.files.len(),
            "bytes": bytes,
        }),
        format!(
            "backup in {}: ledger entries 1..{}, {} files, {bytes} bytes; checkpoint {} (key {})",
            out.display(),
            manifest.ledger_sequence,
            manifest.files.len(),
            manifest.checkpoint.sequence,
            manifest.checkpoint.key_id
        ),
    );
    Ok(())
}
