//! `wormbox admin pubkey|backup`: the appliance's checkpoint public key, and
//! a backup of the whole archive (received by `backup.rs`).
//!
//! Invariant: the public key is printed or written as the appliance sent it;
//! no private key ever leaves the appliance through these commands.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;
use wormbox_proto::v1;
use wormbox_store::evidence::key_id;

use crate::commands::{Context, backup};
use crate::output::write_whole;

#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Print (or write) the appliance's checkpoint public key, hex.
    Pubkey {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Copy the whole archive into a new directory (a consistent copy and a
    /// signed checkpoint; no keys), for `wormboxd restore`.
    Backup {
        /// The directory to create (or an empty one).
        #[arg(long)]
        out: PathBuf,
    },
}

pub(crate) async fn run(cx: &Context, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Pubkey { out } => pubkey(cx, out).await,
        AdminCommand::Backup { out } => backup::backup(cx, &out).await,
    }
}

/// `wormbox admin pubkey`: the key of the current checkpoint, hex.
async fn pubkey(cx: &Context, out: Option<PathBuf>) -> anyhow::Result<()> {
    let reply = cx.clients.compliance().get_checkpoint(v1::GetCheckpointRequest { sequence: 0 }).await?.into_inner();
    let public = hex::encode(&reply.public_key);
    match out {
        Some(path) => write_whole(&path, format!("{public}\n").as_bytes()),
        None => {
            cx.print(json!({"public_key": public, "key_id": key_id(&reply.public_key)}), public);
            Ok(())
        }
    }
}
