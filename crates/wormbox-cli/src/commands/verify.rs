//! `wormbox verify`: recompute the ledger chain, check every checkpoint and
//! re-hash every version, on the running appliance or, with `--data-dir`,
//! offline on a stopped appliance's files; with `--replica RULE`, check that
//! rule's replica against the archive (on the appliance, which reads it).
//!
//! Invariant: the offline check opens RocksDB read-only and never writes; any
//! divergence (of the archive, or of a replica) makes the command exit
//! non-zero, whichever way it ran.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::json;
use wormbox_proto::v1;
use wormbox_store::evidence::{self, IntegrityReport, VerifyOptions};

use crate::commands::Context;
use crate::commands::checkpoint::{checkpoint_to_wire, read_checkpoint_file, read_public_key};
use crate::output::{Progress, print};

fn report_json(r: &IntegrityReport) -> serde_json::Value {
    json!({
        "ok": r.is_ok(),
        "ledger_entries": r.ledger_entries,
        "entries_hashed": r.entries_hashed,
        "head": r.head.to_hex(),
        "checkpoints_checked": r.checkpoints_checked,
        "versions_checked": r.versions_checked,
        "markers_checked": r.markers_checked,
        "bytes_checked": r.bytes_checked,
        "unattested": r.unattested,
        "released_checked": r.released_checked,
        "released_unchecked": r.released_unchecked,
        "merkle_nodes_checked": r.merkle_nodes_checked,
        "merkle_tiles_checked": r.merkle_tiles_checked,
        "divergence_count": r.divergence_count,
        "divergences": r.divergences.iter().map(|d| json!({"sequence": d.sequence, "what": d.what})).collect::<Vec<_>>(),
    })
}

fn finish_verify(report: &IntegrityReport, json_mode: bool, extra: &str) -> anyhow::Result<()> {
    let mut text = format!("{}{extra}", report.summary());
    for d in report.divergences.iter().skip(1) {
        text.push_str(&format!("\n  also: {d}"));
    }
    print(json_mode, report_json(report), text);
    if !report.is_ok() {
        bail!("integrity verification found {} divergence(s)", report.divergence_count);
    }
    Ok(())
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// A stopped appliance's data directory, opened read-only.
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// The appliance's public key (hex), obtained independently: offline
    /// it checks the signatures (default DATA_DIR/checkpoint-signing.pub);
    /// online the appliance must be signing with it.
    #[arg(long)]
    public_key: Option<PathBuf>,
    /// A checkpoint file kept outside the appliance; repeatable.
    #[arg(long = "checkpoint")]
    checkpoints: Vec<PathBuf>,
    /// Trust the chain up to this stored checkpoint and recompute from there.
    #[arg(long)]
    from_checkpoint: Option<u64>,
    /// Check this replication rule's replica against the archive instead:
    /// every version it covers re-read and hashed, its lock and hold, every
    /// marker, checkpoint and ledger range (admins and auditors).
    #[arg(long, conflicts_with_all = ["data_dir", "checkpoints", "from_checkpoint", "public_key"])]
    pub(crate) replica: Option<String>,
}

/// `wormbox verify --data-dir DIR`: on a stopped appliance's files, read-only.
pub(crate) fn offline(data_dir: &Path, args: &VerifyArgs, json_mode: bool) -> anyhow::Result<()> {
    let VerifyArgs { data_dir: _, public_key, checkpoints, from_checkpoint, replica: _ } = args;
    let (public_key, from_checkpoint) = (public_key.as_deref(), *from_checkpoint);
    let db = if data_dir.join("db").is_dir() { data_dir.join("db") } else { data_dir.to_owned() };
    let key_path = public_key.map(Path::to_owned).unwrap_or_else(|| data_dir.join("checkpoint-signing.pub"));
    let key = read_public_key(&key_path)?;
    let extra_checkpoints = checkpoints
        .iter()
        .map(|p| read_checkpoint_file(p)?.checkpoint().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let backend = wormbox_store_rocksdb::RocksBackend::open_read_only(&db)
        .with_context(|| format!("opening `{}` read-only (is the appliance stopped?)", db.display()))?;
    let progress = Progress::bytes("verifying: versions re-read", None);
    let mut pace = |bytes: u64| progress.reach(bytes);
    let options =
        // No replica is reached offline: released versions are counted as not checked.
        VerifyOptions {
            witness_forks: true,
            public_key: Some(key.clone()),
            from_checkpoint,
            extra_checkpoints,
            pace: Some(&mut pace),
            replica: None,
        };
    let report = evidence::verify(&backend, options)?;
    progress.finish();
    let source = match public_key {
        Some(_) => String::new(),
        None => "; the key was read from the data directory: pass --public-key with a copy kept elsewhere to rule out a replaced key".to_owned(),
    };
    finish_verify(&report, json_mode, &format!(" (offline, key {}{source})", evidence::key_id(&key)))
}

/// `wormbox verify`: on the running appliance.
pub(crate) async fn online(cx: &Context, args: VerifyArgs) -> anyhow::Result<()> {
    let VerifyArgs { data_dir: _, public_key, checkpoints, from_checkpoint, replica } = args;
    if let Some(rule) = replica {
        return verify_replica(cx, rule).await;
    }
    let clients = &cx.clients;
    // The appliance checks with its own key; a key kept elsewhere must be that key.
    if let Some(path) = public_key {
        let kept = read_public_key(&path)?;
        let reply = clients.compliance().get_checkpoint(v1::GetCheckpointRequest { sequence: 0 }).await?.into_inner();
        if reply.public_key != kept {
            bail!(
                "the appliance signs with key {}, not the key in `{}` ({}): its checkpoints cannot be trusted as yours",
                evidence::key_id(&reply.public_key),
                path.display(),
                evidence::key_id(&kept)
            );
        }
    }
    let checkpoints =
        checkpoints.iter().map(|p| checkpoint_to_wire(&read_checkpoint_file(p)?)).collect::<anyhow::Result<_>>()?;
    let request = v1::VerifyIntegrityRequest { from_checkpoint: from_checkpoint.unwrap_or(0), checkpoints };
    // The appliance re-reads every version; the client sees only the time.
    let waiting = Progress::waiting("verifying on the appliance");
    let r = clients.compliance().verify_integrity(request).await?.into_inner();
    waiting.finish();
    let report = IntegrityReport {
        ledger_entries: r.ledger_entries,
        entries_hashed: r.entries_hashed,
        head: wormbox_model::Digest::from_slice(&r.head).unwrap_or(wormbox_store::ledger::GENESIS),
        checkpoints_checked: r.checkpoints_checked,
        checkpoints_unchecked: 0,
        versions_checked: r.versions_checked,
        markers_checked: r.markers_checked,
        bytes_checked: r.bytes_checked,
        unattested: r.unattested,
        released_checked: r.released_checked,
        released_unchecked: r.released_unchecked,
        merkle_nodes_checked: r.merkle_nodes_checked,
        merkle_tiles_checked: r.merkle_tiles_checked,
        divergences: r
            .divergences
            .into_iter()
            .map(|d| evidence::Divergence { sequence: (d.sequence != 0).then_some(d.sequence), what: d.what })
            .collect(),
        divergence_count: r.divergence_count,
    };
    finish_verify(&report, cx.json, &format!(" (recorded as ledger entry {})", r.ledger_sequence))
}

/// `wormbox verify --replica RULE`: the rule's replica against the archive.
async fn verify_replica(cx: &Context, rule: String) -> anyhow::Result<()> {
    let r = cx.clients.compliance().verify_replica(v1::VerifyReplicaRequest { rule }).await?.into_inner();
    let divergence = r.divergence.as_ref().map(|d| {
        json!({"kind": d.kind, "key": d.key, "version_id": d.version_id, "replica_version_id": d.replica_version_id, "what": d.what})
    });
    let value = json!({
        "ok": r.ok,
        "rule": r.rule,
        "cursor": r.cursor,
        "versions_checked": r.versions_checked,
        "markers_checked": r.markers_checked,
        "bytes_read": r.bytes_read,
        "checkpoints_checked": r.checkpoints_checked,
        "ledger_ranges_checked": r.ledger_ranges_checked,
        "divergence": divergence,
    });
    let checked = format!(
        "replica of rule `{}` through ledger entry {}: {} versions ({} bytes read), {} delete markers, {} checkpoints, {} ledger ranges checked",
        r.rule,
        r.cursor,
        r.versions_checked,
        r.bytes_read,
        r.markers_checked,
        r.checkpoints_checked,
        r.ledger_ranges_checked
    );
    let text = match &r.divergence {
        None => format!("OK: {checked}"),
        Some(d) => {
            let mut at = format!("`{}`", d.key);
            if !d.version_id.is_empty() {
                at.push_str(&format!(" version {}", d.version_id));
            }
            if !d.replica_version_id.is_empty() {
                at.push_str(&format!(" (replica version {})", d.replica_version_id));
            }
            format!("DIVERGENCE {}: {at}: {}\n(before it: {checked})", d.kind, d.what)
        }
    };
    cx.print(value, text);
    if let Some(d) = r.divergence {
        bail!("the replica diverges from the archive: {} at `{}`", d.kind, d.key);
    }
    Ok(())
}
