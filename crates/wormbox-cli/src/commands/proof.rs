//! `wormbox prove`, `wormbox verify-proof` and `wormbox verify-consistency`:
//! Merkle proofs of the ledger (RFC 9162) against signed checkpoints.
//!
//! Invariant: what a proof is checked against is what the caller kept (a
//! checkpoint file, a public key obtained elsewhere), never what the
//! appliance sends beside the proof: a proof asked for against a kept
//! checkpoint is refused unless the appliance's checkpoint at that size is
//! the same signed statement.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::json;
use wormbox_proto::v1;
use wormbox_reports::CheckpointFile;
use wormbox_reports::proof::{
    CONSISTENCY_FORMAT, ConsistencyProofFile, EntryDescription, INCLUSION_FORMAT, InclusionProofFile,
};
use wormbox_store::ledger::LedgerEntry;

use crate::commands::Context;
use crate::commands::checkpoint::{checkpoint_file, read_checkpoint_file, read_public_key};
use crate::output::{print, write_whole};

#[derive(Debug, Args)]
pub(crate) struct ProveArgs {
    /// The version's bucket (or give --ledger-sequence instead).
    bucket: Option<String>,
    /// The version's key.
    key: Option<String>,
    /// The version (or delete marker) whose writing entry to prove; `null`
    /// for the key's null version.
    #[arg(long)]
    version_id: Option<String>,
    /// Prove the ledger entry with this sequence instead of a version's.
    #[arg(long, conflicts_with_all = ["bucket", "key", "version_id"])]
    ledger_sequence: Option<u64>,
    /// A checkpoint file you kept: the proof leads to its signed root (by
    /// default, to a checkpoint of the current head, signed now if needed).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// The appliance's public key (hex), obtained independently, to check
    /// the proof with before it is written (by default the key the
    /// appliance sends).
    #[arg(long)]
    public_key: Option<PathBuf>,
    /// Where to write the proof (JSON).
    #[arg(long)]
    out: PathBuf,
}

/// `wormbox prove`: asks the appliance for an inclusion proof and writes it.
pub(crate) async fn prove(cx: &Context, args: ProveArgs) -> anyhow::Result<()> {
    let kept = args.checkpoint.as_deref().map(read_checkpoint_file).transpose()?;
    let key = args.public_key.as_deref().map(read_public_key).transpose()?;
    let tree_size = match &kept {
        Some(kept) => kept.sequence,
        // The head's checkpoint, as `wormbox checkpoint` gets it.
        None => {
            let head = cx.clients.compliance().get_checkpoint(v1::GetCheckpointRequest { sequence: 0 }).await?;
            head.into_inner().checkpoint.context("the appliance sent no checkpoint")?.sequence
        }
    };
    let mut request = v1::GetInclusionProofRequest { tree_size, ..Default::default() };
    match (args.ledger_sequence, args.bucket, args.key, args.version_id) {
        (Some(sequence), ..) => request.ledger_sequence = sequence,
        (None, Some(bucket), Some(key), Some(version_id)) => {
            (request.bucket, request.key, request.version_id) = (bucket, key, version_id);
        }
        _ => bail!("name a version (BUCKET KEY --version-id ID) or --ledger-sequence N"),
    }
    let reply = cx.clients.compliance().get_inclusion_proof(request).await?.into_inner();
    let sent = checkpoint_file(reply.checkpoint.as_ref().context("the appliance sent no checkpoint")?);
    let checkpoint = match kept {
        Some(kept) if kept.checkpoint() != sent.checkpoint() => bail!(
            "the appliance's checkpoint at ledger entry {} is not the one in your file: it signed another statement",
            kept.sequence
        ),
        Some(kept) => kept,
        None => sent,
    };
    let key = key.unwrap_or_else(|| reply.public_key.clone());
    let file = inclusion_file(&reply, checkpoint, &key, None)?;
    write_whole(&args.out, (serde_json::to_string_pretty(&file)? + "\n").as_bytes())?;
    let text = format!(
        "proof of ledger entry {} ({} {}/{}) in the tree of {} entries written to {}",
        file.ledger_sequence,
        file.described.op,
        file.described.bucket,
        file.described.key,
        file.tree_size,
        args.out.display()
    );
    print(cx.json, json!({"ledger_sequence": file.ledger_sequence, "tree_size": file.tree_size}), text);
    Ok(())
}

/// The proof file of a GetInclusionProof reply against `checkpoint`,
/// checked as a verifier will check it (with the version's `bytes` when
/// given) before anyone writes it.
pub(crate) fn inclusion_file(
    reply: &v1::GetInclusionProofResponse,
    checkpoint: CheckpointFile,
    key: &[u8],
    bytes: Option<&[u8]>,
) -> anyhow::Result<InclusionProofFile> {
    let entry =
        LedgerEntry::decode_canonical(&reply.entry).context("the appliance sent an entry that does not decode")?;
    let file = InclusionProofFile {
        format: INCLUSION_FORMAT.to_owned(),
        ledger_sequence: reply.ledger_sequence,
        tree_size: checkpoint.sequence,
        entry: hex::encode(&reply.entry),
        path: reply.path.iter().map(hex::encode).collect(),
        checkpoint,
        described: EntryDescription::of(&entry),
    };
    file.check(key, bytes).map_err(|e| anyhow::anyhow!("the appliance's proof does not verify: {e}"))?;
    Ok(file)
}

#[derive(Debug, Args)]
pub(crate) struct VerifyProofArgs {
    /// The proof file (`wormbox prove --out`).
    proof: PathBuf,
    /// The appliance's public key (hex), obtained independently.
    #[arg(long)]
    public_key: PathBuf,
    /// The version's bytes (e.g. from an export or `wormbox get`), checked
    /// against the SHA-256 the entry records.
    #[arg(long)]
    bytes: Option<PathBuf>,
}

/// `wormbox verify-proof`: offline, no appliance needed.
pub(crate) fn verify_proof(args: &VerifyProofArgs, json_mode: bool) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.proof).with_context(|| format!("reading `{}`", args.proof.display()))?;
    let file: InclusionProofFile =
        serde_json::from_str(&text).with_context(|| format!("`{}` is not a proof file", args.proof.display()))?;
    let key = read_public_key(&args.public_key)?;
    let bytes = match &args.bytes {
        Some(path) => Some(std::fs::read(path).with_context(|| format!("reading `{}`", path.display()))?),
        None => None,
    };
    let check = file.check(&key, bytes.as_deref()).map_err(|e| anyhow::anyhow!("the proof does not verify: {e}"))?;
    let key_id = wormbox_store::evidence::key_id(&key);
    let d = &file.described;
    let bytes_said = if check.bytes_checked { "; the bytes given match its SHA-256" } else { "" };
    let text = format!(
        "ok: ledger entry {} ({} of {}/{}{}, {}) is in the ledger's tree of {} entries signed at {} by key {}{bytes_said}",
        file.ledger_sequence,
        d.op,
        d.bucket,
        d.key,
        d.version_id.as_deref().map(|v| format!(" version {v}")).unwrap_or_default(),
        d.time,
        file.tree_size,
        check.checkpoint.time.to_rfc3339(),
        key_id,
    );
    let value = json!({
        "ok": true,
        "ledger_sequence": file.ledger_sequence,
        "tree_size": file.tree_size,
        "op": d.op,
        "bucket": d.bucket,
        "key": d.key,
        "version_id": d.version_id,
        "sha256": d.sha256,
        "bytes_checked": check.bytes_checked,
    });
    print(json_mode, value, text);
    Ok(())
}

#[derive(Debug, Args)]
pub(crate) struct VerifyConsistencyArgs {
    /// The earlier checkpoint file you kept.
    old: PathBuf,
    /// The later checkpoint file you kept; a checkpoint of the current head
    /// when absent.
    new: Option<PathBuf>,
    /// The appliance's public key (hex), obtained independently.
    #[arg(long)]
    public_key: PathBuf,
    /// Also write the proof (JSON) here, with the later checkpoint (keep
    /// it: the next check starts from it); written whatever the check
    /// finds, so a refused proof is kept as evidence.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `wormbox verify-consistency`: that the appliance's later tree extends the
/// earlier one, as the caller's checkpoints sign them.
pub(crate) async fn verify_consistency(cx: &Context, args: VerifyConsistencyArgs) -> anyhow::Result<()> {
    let key = read_public_key(&args.public_key)?;
    let old = read_checkpoint_file(&args.old)?;
    let kept_new = args.new.as_deref().map(read_checkpoint_file).transpose()?;
    let new_size = match &kept_new {
        Some(kept) => kept.sequence,
        // The head's checkpoint, as `wormbox checkpoint` gets it.
        None => {
            let head = cx.clients.compliance().get_checkpoint(v1::GetCheckpointRequest { sequence: 0 }).await?;
            head.into_inner().checkpoint.context("the appliance sent no checkpoint")?.sequence
        }
    };
    let request = v1::GetConsistencyProofRequest { old_size: old.sequence, new_size };
    let reply = cx.clients.compliance().get_consistency_proof(request).await?.into_inner();
    let new = match kept_new {
        Some(kept) => kept,
        None => checkpoint_file(&reply.new.context("the appliance sent no checkpoint")?),
    };
    let file = ConsistencyProofFile {
        format: CONSISTENCY_FORMAT.to_owned(),
        old,
        new,
        path: reply.path.iter().map(hex::encode).collect(),
    };
    let written = match &args.out {
        Some(out) => {
            write_whole(out, (serde_json::to_string_pretty(&file)? + "\n").as_bytes())?;
            format!(" (the proof and both checkpoints are in {})", out.display())
        }
        None => String::new(),
    };
    let (old, new) = file.check(&key).map_err(|e| anyhow::anyhow!("not consistent: {e}{written}"))?;
    let root = new.tree_root.map(|r| r.to_hex()).unwrap_or_default();
    let text = if new.sequence == old.sequence {
        format!(
            "ok: the appliance's newest checkpoint is the one you kept ({} entries): there is nothing newer to \
             compare{written}",
            old.sequence
        )
    } else {
        format!(
            "ok: the ledger's tree of {} entries (signed {}, root {root}) extends the tree of {} entries (signed {}): \
             nothing before was rewritten{written}",
            new.sequence,
            new.time.to_rfc3339(),
            old.sequence,
            old.time.to_rfc3339()
        )
    };
    let value = json!({"ok": true, "old_size": old.sequence, "new_size": new.sequence, "new_root": root});
    print(cx.json, value, text);
    Ok(())
}
