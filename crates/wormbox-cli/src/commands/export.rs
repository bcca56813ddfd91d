//! `wormbox export` and `wormbox verify-export`: a bucket's versions,
//! manifest, audit trail, checkpoint and public key in a directory a regulator
//! can verify offline, and that verification.
//!
//! Invariant: an export writes each file whole (temporary name, synced,
//! renamed), so an interrupted export resumes without trusting a half-written
//! file, and it refuses any other non-empty directory; `verify-export` only
//! reads the directory.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::json;
use wormbox_proto::v1;
use wormbox_reports::CheckpointFile;
use wormbox_reports::audit;
use wormbox_reports::export::{self, Manifest, ManifestEntry};
use wormbox_store::tiles::Tile;

use crate::client::Clients;
use crate::commands::Context;
use crate::commands::audit::audit_records;
use crate::commands::checkpoint::{checkpoint_file, read_public_key};
use crate::commands::proof::inclusion_file;
use crate::output::{Progress, mode_name, print, write_whole};

#[derive(serde::Serialize, serde::Deserialize)]
struct ExportState {
    bucket: String,
    prefix: String,
}

async fn list_versions(clients: &Clients, bucket: &str, prefix: &str) -> anyhow::Result<Vec<ManifestEntry>> {
    let mut archive = clients.archive();
    let (mut key_marker, mut version_id_marker) = (String::new(), String::new());
    let mut entries = Vec::new();
    loop {
        let request = v1::ListObjectVersionsRequest {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            key_marker: key_marker.clone(),
            version_id_marker: version_id_marker.clone(),
            max_keys: 1000,
            ..Default::default()
        };
        let page = archive.list_object_versions(request).await?.into_inner();
        for v in page.versions.iter().filter(|v| !v.is_delete_marker) {
            let retention = v.retention.as_ref();
            entries.push(ManifestEntry {
                file: export::object_file(entries.len()),
                key: v.key.clone(),
                version_id: v.version_id.clone(),
                is_latest: v.is_latest,
                sha256: hex::encode(&v.sha256),
                size: v.size,
                created_unix_micros: v.created_at_unix_micros,
                retention_mode: retention.map(|r| mode_name(r.mode).to_owned()).unwrap_or_default(),
                retain_until_unix_micros: retention.map(|r| r.retain_until_unix_micros),
                legal_holds: v.legal_holds.iter().map(|h| h.case_id.clone()).collect(),
            });
        }
        if !page.is_truncated {
            return Ok(entries);
        }
        key_marker = page.next_key_marker;
        version_id_marker = page.next_version_id_marker;
    }
}

fn file_matches(path: &Path, entry: &ManifestEntry) -> bool {
    std::fs::read(path).is_ok_and(|bytes| {
        bytes.len() as u64 == entry.size
            && hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref()) == entry.sha256
    })
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    #[arg(long)]
    bucket: String,
    #[arg(long, default_value = "")]
    prefix: String,
    #[arg(long)]
    out: PathBuf,
}

/// `wormbox export`.
pub(crate) async fn run(cx: &Context, args: ExportArgs) -> anyhow::Result<()> {
    let ExportArgs { bucket, prefix, out } = args;
    let (clients, out) = (&cx.clients, out.as_path());
    let state_path = out.join(export::STATE);
    let empty = match std::fs::read_dir(out) {
        Ok(mut listing) => listing.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(e).with_context(|| format!("reading `{}`", out.display())),
    };
    let resuming = !empty;
    if resuming {
        let state: ExportState =
            std::fs::read_to_string(&state_path).ok().and_then(|t| serde_json::from_str(&t).ok()).with_context(
                || format!("`{}` is not empty and holds no unfinished export: refusing to overwrite it", out.display()),
            )?;
        if state.bucket != bucket || state.prefix != prefix {
            bail!(
                "`{}` holds an unfinished export of bucket `{}` prefix `{}`: resume it with the same arguments",
                out.display(),
                state.bucket,
                state.prefix
            );
        }
    }
    let manifest = if resuming {
        let text = std::fs::read_to_string(out.join(export::MANIFEST_JSON))
            .context("reading the unfinished export's manifest")?;
        let mut manifest =
            serde_json::from_str::<Manifest>(&text).context("the unfinished export's manifest is malformed")?;
        // Begun by an earlier build: it is finished with proofs and tiles,
        // so it says the format that has them.
        if manifest.format != export::FORMAT {
            manifest.format = export::FORMAT.to_owned();
            write_whole(&out.join(export::MANIFEST_JSON), manifest.to_json().as_bytes())?;
        }
        manifest
    } else {
        std::fs::create_dir_all(out.join(export::OBJECTS)).with_context(|| format!("creating `{}`", out.display()))?;
        write_whole(
            &state_path,
            serde_json::to_string(&ExportState { bucket: bucket.clone(), prefix: prefix.clone() })?.as_bytes(),
        )?;
        let entries = list_versions(clients, &bucket, &prefix).await?;
        let manifest =
            Manifest { format: export::FORMAT.to_owned(), bucket: bucket.clone(), prefix: prefix.clone(), entries };
        write_whole(&out.join(export::MANIFEST_JSON), manifest.to_json().as_bytes())?;
        manifest
    };
    let total_bytes: u64 = manifest.entries.iter().map(|e| e.size).sum();
    let progress = Progress::bytes("exporting", Some(total_bytes));
    let mut archive = clients.archive();
    let mut fetched = 0usize;
    for entry in &manifest.entries {
        let path = out.join(&entry.file);
        if resuming && file_matches(&path, entry) {
            progress.step(entry.size);
            continue;
        }
        let request = v1::GetObjectRequest {
            bucket: bucket.clone(),
            key: entry.key.clone(),
            version_id: entry.version_id.clone(),
        };
        let mut stream = archive
            .get_object(request)
            .await
            .with_context(|| format!("fetching {} {} (purged since the export started?)", entry.key, entry.version_id))?
            .into_inner();
        let mut bytes = Vec::with_capacity(entry.size as usize);
        while let Some(message) = stream.message().await? {
            if let Some(v1::get_object_response::Part::Data(data)) = message.part {
                progress.step(data.len() as u64);
                bytes.extend_from_slice(&data);
            }
        }
        write_whole(&path, &bytes)?;
        if !file_matches(&path, entry) {
            bail!("{} {}: the bytes received do not match the listed SHA-256", entry.key, entry.version_id);
        }
        fetched += 1;
    }
    progress.finish();
    // The checkpoint comes after the listing, so it covers every listed write.
    let reply = clients.compliance().get_checkpoint(v1::GetCheckpointRequest { sequence: 0 }).await?.into_inner();
    let checkpoint = checkpoint_file(reply.checkpoint.as_ref().context("the appliance sent no checkpoint")?);
    let request = v1::AuditLogRequest { from_sequence: 1, to_sequence: checkpoint.sequence, ..Default::default() };
    let records = audit_records(clients, request).await?;
    let keys: HashSet<&str> = manifest.entries.iter().map(|e| e.key.as_str()).collect();
    let mut ledger = String::new();
    let mut trail = String::new();
    audit::csv_header(&mut trail);
    for r in &records {
        ledger.push_str(&audit::json_line(r));
        ledger.push('\n');
        if r.bucket == bucket && keys.contains(r.key.as_str()) {
            audit::csv_record(&mut trail, r);
        }
    }
    write_whole(&out.join(export::LEDGER), ledger.as_bytes())?;
    write_whole(&out.join(export::AUDIT_CSV), trail.as_bytes())?;
    write_whole(&out.join(export::MANIFEST_CSV), manifest.to_csv().as_bytes())?;
    write_whole(&out.join(export::PUBLIC_KEY), format!("{}\n", hex::encode(&reply.public_key)).as_bytes())?;
    write_whole(&out.join(export::CHECKPOINT), (serde_json::to_string_pretty(&checkpoint)? + "\n").as_bytes())?;
    let tiles = write_evidence(clients, out, &manifest, (&checkpoint, &reply))
        .await
        .context("writing the proofs and tiles of the export")?;
    std::fs::remove_file(&state_path).context("marking the export complete")?;
    println!(
        "exported {} versions ({} bytes, {} fetched now) of bucket {} to {}, each with its inclusion proof, and the \
         ledger's tree in {tiles} tiles, bound to {}",
        manifest.entries.len(),
        total_bytes,
        fetched,
        bucket,
        out.display(),
        checkpoint.describe()
    );
    Ok(())
}

/// Writes each version's inclusion proof against the export's checkpoint
/// and the ledger's tree up to it as tlog-tiles (with the checkpoint as a
/// signed note); returns how many tiles. Both are written anew each time,
/// since a resumed export may be bound to a later checkpoint.
async fn write_evidence(
    clients: &Clients,
    out: &Path,
    manifest: &Manifest,
    (checkpoint, reply): (&CheckpointFile, &v1::GetCheckpointResponse),
) -> anyhow::Result<usize> {
    if reply.note.is_empty() {
        bail!(
            "the checkpoint of the ledger's head was signed before the ledger's Merkle tree, so no proof leads to it: \
             export again once the ledger has moved on"
        );
    }
    for folder in [export::PROOFS, export::TLOG] {
        match std::fs::remove_dir_all(out.join(folder)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("clearing `{folder}`"));
            }
            _ => {}
        }
    }
    std::fs::create_dir_all(out.join(export::PROOFS))?;
    let progress = Progress::items("proving", Some(manifest.entries.len() as u64));
    let mut compliance = clients.compliance();
    for (index, entry) in manifest.entries.iter().enumerate() {
        let request = v1::GetInclusionProofRequest {
            bucket: manifest.bucket.clone(),
            key: entry.key.clone(),
            version_id: entry.version_id.clone(),
            tree_size: checkpoint.sequence,
            ..Default::default()
        };
        let proof = compliance
            .get_inclusion_proof(request)
            .await
            .with_context(|| format!("proving {} {}", entry.key, entry.version_id))?
            .into_inner();
        let bytes = std::fs::read(out.join(&entry.file))?;
        let file = inclusion_file(&proof, checkpoint.clone(), &reply.public_key, Some(&bytes))
            .with_context(|| format!("{} {}", entry.key, entry.version_id))?;
        write_whole(&out.join(export::proof_file(index)), (serde_json::to_string_pretty(&file)? + "\n").as_bytes())?;
        progress.step(1);
    }
    progress.finish();
    let tlog = out.join(export::TLOG);
    std::fs::create_dir_all(&tlog)?;
    write_whole(&tlog.join(export::TLOG_CHECKPOINT), reply.note.as_bytes())?;
    let tiles = Tile::of_tree(checkpoint.sequence);
    let progress = Progress::items("copying the ledger's tiles", Some(tiles.len() as u64));
    for tile in &tiles {
        let path = tile.to_string();
        let data = compliance.get_tile(v1::GetTileRequest { path: path.clone() }).await?.into_inner().data;
        let file = tlog.join(&path);
        std::fs::create_dir_all(file.parent().expect("a tile path has folders"))?;
        write_whole(&file, &data)?;
        progress.step(1);
    }
    progress.finish();
    Ok(tiles.len())
}

#[derive(Debug, Args)]
pub(crate) struct VerifyExportArgs {
    dir: PathBuf,
    /// The appliance's public key (hex), obtained independently of the export.
    #[arg(long)]
    public_key: Option<PathBuf>,
}

/// `wormbox verify-export`.
pub(crate) fn verify(args: &VerifyExportArgs, json_mode: bool) -> anyhow::Result<()> {
    let (dir, public_key) = (args.dir.as_path(), args.public_key.as_deref());
    let key = public_key.map(read_public_key).transpose()?;
    let progress = Progress::bytes("verifying the export", None);
    let check = export::verify_with_progress(dir, key.as_deref(), &mut |done, total| {
        progress.set_total(total);
        progress.reach(done);
    })?;
    progress.finish();
    let bound = check.checkpoint.as_ref().map(CheckpointFile::describe).unwrap_or_default();
    let value = json!({
        "ok": check.is_ok(),
        "versions": check.versions,
        "bytes": check.bytes,
        "proofs": check.proofs,
        "tiles": check.tiles,
        "ledger_entries": check.ledger_entries,
        "checkpoint": check.checkpoint,
        "problems": check.problems,
    });
    let mut text = format!(
        "{} versions ({} bytes, {} inclusion proofs) and {} ledger entries ({} tiles) checked against {bound}",
        check.versions, check.bytes, check.proofs, check.ledger_entries, check.tiles
    );
    if key.is_none() {
        text.push_str("\n  note: the public key was read from the export; pass --public-key with a copy obtained from the appliance independently");
    }
    for problem in &check.problems {
        text.push_str(&format!("\n  problem: {problem}"));
    }
    print(json_mode, value, text);
    if !check.is_ok() {
        bail!("the export does not verify: {} problem(s)", check.problems.len());
    }
    Ok(())
}
