//! `wormbox hold place|release|list`: legal holds on a version.
//!
//! Invariant: placing a hold never reads a code; releasing one reads a code
//! from `--mfa` when it is given.

use clap::Subcommand;
use serde_json::Value;
use wormbox_proto::v1;

use crate::commands::{Context, VersionArgs};
use crate::output::hold_json;

#[derive(Debug, Subcommand)]
pub(crate) enum HoldCommand {
    /// Place a legal hold.
    Place {
        #[command(flatten)]
        version: VersionArgs,
        /// Case id; S3's single hold when absent.
        #[arg(long, default_value = "")]
        case: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Release a legal hold (--mfa from your own device once an admin has an active device).
    Release {
        #[command(flatten)]
        version: VersionArgs,
        #[arg(long, default_value = "")]
        case: String,
    },
    /// List a version's legal holds.
    List {
        #[command(flatten)]
        version: VersionArgs,
    },
}

pub(crate) async fn run(cx: &Context, command: HoldCommand) -> anyhow::Result<()> {
    let mut compliance = cx.clients.compliance();
    let holds = match command {
        HoldCommand::Place { version, case, note } => {
            let request = v1::PutObjectLegalHoldRequest { case_id: case, place: true, note, ..on_version(version) };
            compliance.put_object_legal_hold(request).await?.into_inner().legal_holds
        }
        HoldCommand::Release { version, case } => {
            let mfa = cx.mfa.optional_code()?;
            let request = v1::PutObjectLegalHoldRequest { case_id: case, place: false, mfa, ..on_version(version) };
            compliance.put_object_legal_hold(request).await?.into_inner().legal_holds
        }
        HoldCommand::List { version: VersionArgs { bucket, key, version_id } } => {
            let request = v1::GetObjectLegalHoldRequest { bucket, key, version_id: version_id.unwrap_or_default() };
            compliance.get_object_legal_hold(request).await?.into_inner().legal_holds
        }
    };
    let value = Value::Array(holds.iter().map(hold_json).collect());
    let text = holds
        .iter()
        .map(|h| format!("{}  by {}  {}", h.case_id, h.placed_by, wormbox_model::Timestamp(h.placed_at_unix_micros)))
        .collect::<Vec<_>>()
        .join("\n");
    cx.print(value, if text.is_empty() { "no legal holds".to_owned() } else { text });
    Ok(())
}

/// A hold request for `version`, the rest of it empty: no note and no code.
fn on_version(version: VersionArgs) -> v1::PutObjectLegalHoldRequest {
    let VersionArgs { bucket, key, version_id } = version;
    v1::PutObjectLegalHoldRequest { bucket, key, version_id: version_id.unwrap_or_default(), ..Default::default() }
}
