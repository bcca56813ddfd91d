//! `wormbox checkpoint`: a signed checkpoint of the ledger, and the
//! checkpoint and public-key files the other evidence commands read and write.
//!
//! Invariant: a checkpoint file holds exactly what the appliance signed (its
//! sequence, head, time, signature and key id); reading one back checks its
//! shape before anything trusts it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use wormbox_proto::v1;
use wormbox_reports::CheckpointFile;
use wormbox_reports::checkpoint::parse_public_key;

use crate::commands::Context;
use crate::output::write_whole;

/// The file form of a checkpoint the appliance sent (hex and RFC 3339 beside the raw fields).
pub(crate) fn checkpoint_file(w: &v1::Checkpoint) -> CheckpointFile {
    CheckpointFile {
        sequence: w.sequence,
        head: hex::encode(&w.head),
        time_unix_micros: w.time_unix_micros,
        time: wormbox_model::Timestamp(w.time_unix_micros).to_rfc3339(),
        signature: hex::encode(&w.signature),
        key_id: w.key_id.clone(),
        tree_root: (!w.tree_root.is_empty()).then(|| hex::encode(&w.tree_root)),
    }
}

/// A kept checkpoint file, back in the form the appliance checks.
pub(crate) fn checkpoint_to_wire(file: &CheckpointFile) -> anyhow::Result<v1::Checkpoint> {
    let c = file.checkpoint().map_err(anyhow::Error::msg)?;
    Ok(v1::Checkpoint {
        sequence: c.sequence,
        head: c.head.0.to_vec(),
        time_unix_micros: c.time.0,
        signature: c.signature,
        key_id: file.key_id.clone(),
        tree_root: c.tree_root.map(|root| root.0.to_vec()).unwrap_or_default(),
    })
}

/// Reads a checkpoint file kept outside the appliance.
pub(crate) fn read_checkpoint_file(path: &Path) -> anyhow::Result<CheckpointFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading `{}`", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("`{}` is not a checkpoint file", path.display()))
}

/// Reads a public key file (hex), obtained independently of what it checks.
pub(crate) fn read_public_key(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading `{}`", path.display()))?;
    parse_public_key(&text).map_err(|e| anyhow::anyhow!("`{}`: {e}", path.display()))
}

#[derive(Debug, Args)]
pub(crate) struct CheckpointArgs {
    /// A stored checkpoint's ledger sequence; the current head when absent.
    #[arg(long, default_value_t = 0)]
    sequence: u64,
    /// Write the checkpoint (JSON) to this file, to keep outside the appliance.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write it as a C2SP signed note (tlog-checkpoint), which
    /// transparency-log tools and witnesses read; its verifier key is printed.
    #[arg(long)]
    note: Option<PathBuf>,
}

/// `wormbox checkpoint`.
pub(crate) async fn run(cx: &Context, args: CheckpointArgs) -> anyhow::Result<()> {
    let CheckpointArgs { sequence, out, note } = args;
    let reply = cx.clients.compliance().get_checkpoint(v1::GetCheckpointRequest { sequence }).await?.into_inner();
    if let Some(path) = note {
        if reply.note.is_empty() {
            anyhow::bail!("this checkpoint was signed before the ledger's Merkle tree: it has no signed-note form");
        }
        // Checked before it is kept: it must open under the key the appliance names.
        wormbox_store::note::open(&reply.note, &reply.public_key)?;
        write_whole(&path, reply.note.as_bytes())?;
        println!("signed note written to {} (verifier key {})", path.display(), reply.note_verifier_key);
    }
    let file = checkpoint_file(reply.checkpoint.as_ref().context("the appliance sent no checkpoint")?);
    let text = serde_json::to_string_pretty(&file)? + "\n";
    match out {
        Some(path) => {
            write_whole(&path, text.as_bytes())?;
            println!("checkpoint {} written to {}", file.sequence, path.display());
        }
        None if cx.json => print!("{text}"),
        None => println!("{}", file.describe()),
    }
    if !cx.json {
        for line in witness_lines(&reply) {
            println!("  {line}");
        }
    }
    Ok(())
}

/// What the witnesses said: who cosigned this checkpoint, and each
/// witness's newest cosigned checkpoint and refusal.
fn witness_lines(reply: &v1::GetCheckpointResponse) -> Vec<String> {
    let time = |seconds: u64| match i64::try_from(seconds).ok().and_then(|s| s.checked_mul(1_000_000)) {
        Some(micros) => wormbox_model::Timestamp(micros).to_rfc3339(),
        None => format!("{seconds} s after the epoch"),
    };
    let mut out: Vec<String> =
        reply.cosignatures.iter().map(|c| format!("cosigned by witness {} at {}", c.name, time(c.timestamp))).collect();
    for w in &reply.witnesses {
        let cosigned = match w.cosigned_sequence {
            0 => "has cosigned no checkpoint".to_owned(),
            sequence => format!("newest cosigned checkpoint at ledger entry {sequence}"),
        };
        let refused = match w.refused_sequence {
            0 => String::new(),
            sequence => {
                format!("; refused the checkpoint at {sequence} (HTTP {}: {})", w.refused_status, w.refused_why)
            }
        };
        let fork = match w.fork {
            false => String::new(),
            true => format!(
                "; REFUSED the checkpoint at {} as a FORK (HTTP {}: {}): it claims to have cosigned a history this \
                 ledger does not extend",
                w.fork_sequence, w.fork_status, w.fork_why
            ),
        };
        out.push(format!("witness {}: {cosigned}{refused}{fork}", w.name));
    }
    out
}
