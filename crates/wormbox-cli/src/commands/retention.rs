//! `wormbox retention get|set`: a version's Object Lock retention.
//!
//! Invariant: `none` is the only way to ask for removal; anything else must
//! parse as MODE:UNTIL before a request is sent. A code is read only when
//! `--mfa` is given (the appliance says when one is needed).

use clap::Subcommand;
use serde_json::Value;
use wormbox_proto::v1;

use crate::commands::{Context, VersionArgs};
use crate::output::retention_json;
use crate::parse::parse_retention;

#[derive(Debug, Subcommand)]
pub(crate) enum RetentionCommand {
    /// Show a version's retention (the latest version without --version-id).
    Get {
        #[command(flatten)]
        version: VersionArgs,
    },
    /// Set MODE:UNTIL (e.g. governance:2030-06-30), or `none` to remove.
    Set {
        #[command(flatten)]
        version: VersionArgs,
        retention: String,
        /// Override GOVERNANCE retention (needs the bypass right; --mfa with MFA Delete on).
        #[arg(long)]
        bypass_governance: bool,
    },
}

pub(crate) async fn run(cx: &Context, command: RetentionCommand) -> anyhow::Result<()> {
    let mut compliance = cx.clients.compliance();
    let retention = match command {
        RetentionCommand::Get { version: VersionArgs { bucket, key, version_id } } => {
            let request = v1::GetObjectRetentionRequest { bucket, key, version_id: version_id.unwrap_or_default() };
            compliance.get_object_retention(request).await?.into_inner().retention
        }
        RetentionCommand::Set { version: VersionArgs { bucket, key, version_id }, retention, bypass_governance } => {
            let retention = if retention == "none" { None } else { Some(parse_retention(&retention)?) };
            let mfa = cx.mfa.optional_code()?;
            let request = v1::PutObjectRetentionRequest {
                bucket,
                key,
                version_id: version_id.unwrap_or_default(),
                retention,
                bypass_governance,
                mfa,
            };
            compliance.put_object_retention(request).await?.into_inner().retention
        }
    };
    let value = retention.as_ref().map_or(Value::Null, retention_json);
    let text = retention.as_ref().map_or("no retention".to_owned(), |r| {
        format!(
            "{} until {}",
            value["mode"].as_str().unwrap_or_default(),
            wormbox_model::Timestamp(r.retain_until_unix_micros)
        )
    });
    cx.print(value, text);
    Ok(())
}
