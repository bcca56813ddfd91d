//! `wormbox bucket`: create, show, list and delete buckets, and set their
//! versioning, MFA Delete and default retention.
//!
//! Invariant: `--default-retention` at creation is refused without
//! `--object-lock` before anything is created; a code is read from `--mfa`
//! only when it is given (the appliance says when one is needed).

use anyhow::bail;
use clap::Subcommand;
use serde_json::{Value, json};
use wormbox_proto::v1;

use crate::commands::Context;
use crate::output::mode_name;
use crate::parse::parse_default_retention;

#[derive(Debug, Subcommand)]
pub(crate) enum BucketCommand {
    /// Create a bucket; --object-lock makes it WORM (versioning Enabled for good).
    Create {
        bucket: String,
        #[arg(long)]
        object_lock: bool,
        /// Default retention of new versions: MODE:Nd or MODE:Ny (e.g. compliance:7y); needs --object-lock.
        #[arg(long)]
        default_retention: Option<String>,
    },
    /// Set or clear (`none`) the default retention; turns Object Lock on for an Enabled bucket.
    /// Clearing or shortening it needs --mfa from your own device once an admin has an active device.
    DefaultRetention {
        bucket: String,
        /// MODE:Nd, MODE:Ny or `none`.
        retention: String,
    },
    Get {
        bucket: String,
    },
    List,
    Delete {
        bucket: String,
    },
    /// Set versioning: enabled or suspended; MFA Delete on or off (owner
    /// only). While MFA Delete is on, and to change it, --mfa gives the code.
    Versioning {
        bucket: String,
        status: String,
        #[arg(long)]
        mfa_delete: Option<String>,
    },
}

pub(crate) async fn run(cx: &Context, command: BucketCommand) -> anyhow::Result<()> {
    let mut archive = cx.clients.archive();
    match command {
        BucketCommand::Create { bucket, object_lock, default_retention } => {
            let default = default_retention.as_deref().map(parse_default_retention).transpose()?;
            if default.is_some() && !object_lock {
                bail!("--default-retention needs --object-lock");
            }
            let request = v1::CreateBucketRequest { bucket: bucket.clone(), object_lock };
            let mut created = archive.create_bucket(request).await?.into_inner().bucket.unwrap_or_default();
            if let Some(default_retention) = default {
                let request = v1::PutBucketDefaultRetentionRequest {
                    bucket,
                    default_retention: Some(default_retention),
                    mfa: String::new(),
                };
                let reply = cx.clients.compliance().put_bucket_default_retention(request).await?.into_inner();
                created = reply.bucket.unwrap_or_default();
            }
            let bucket = created;
            cx.print(bucket_json(&bucket), format!("created bucket {}", bucket.name));
        }
        BucketCommand::DefaultRetention { bucket, retention } => {
            let default_retention = if retention == "none" { None } else { Some(parse_default_retention(&retention)?) };
            let mfa = cx.mfa.optional_code()?;
            let request = v1::PutBucketDefaultRetentionRequest { bucket, default_retention, mfa };
            let reply = cx.clients.compliance().put_bucket_default_retention(request).await?.into_inner();
            let bucket = reply.bucket.unwrap_or_default();
            cx.print(bucket_json(&bucket), format!("{} object_lock=on", bucket.name));
        }
        BucketCommand::Get { bucket } => {
            let reply = archive.get_bucket(v1::GetBucketRequest { bucket }).await?.into_inner();
            let bucket = reply.bucket.unwrap_or_default();
            let text = format!(
                "{}  versioning={}  mfa_delete={}  owner={}",
                bucket.name,
                versioning_name(bucket.versioning),
                mfa_delete_name(bucket.mfa_delete),
                bucket.owner
            );
            cx.print(bucket_json(&bucket), text);
        }
        BucketCommand::List => {
            let reply = archive.list_buckets(v1::ListBucketsRequest {}).await?.into_inner();
            let text = reply
                .buckets
                .iter()
                .map(|b| format!("{}  {}", b.name, versioning_name(b.versioning)))
                .collect::<Vec<_>>()
                .join("\n");
            cx.print(Value::Array(reply.buckets.iter().map(bucket_json).collect()), text);
        }
        BucketCommand::Delete { bucket } => {
            let reply = archive.delete_bucket(v1::DeleteBucketRequest { bucket: bucket.clone() }).await?;
            let sequence = reply.into_inner().ledger_sequence;
            cx.print(json!({"deleted": bucket, "ledger_sequence": sequence}), format!("deleted bucket {bucket}"));
        }
        BucketCommand::Versioning { bucket, status, mfa_delete } => {
            let status = match status.to_ascii_lowercase().as_str() {
                "enabled" => v1::VersioningStatus::Enabled,
                "suspended" => v1::VersioningStatus::Suspended,
                other => bail!("versioning status must be `enabled` or `suspended`, not `{other}`"),
            };
            let mfa_delete = match mfa_delete.as_deref() {
                None => v1::MfaDeleteStatus::Unspecified,
                Some("on" | "enabled") => v1::MfaDeleteStatus::Enabled,
                Some("off" | "disabled") => v1::MfaDeleteStatus::Disabled,
                Some(other) => bail!("--mfa-delete must be `on` or `off`, not `{other}`"),
            };
            let mfa = cx.mfa.optional_code()?;
            let request =
                v1::PutBucketVersioningRequest { bucket, status: status as i32, mfa_delete: mfa_delete as i32, mfa };
            let reply = archive.put_bucket_versioning(request).await?.into_inner();
            let bucket = reply.bucket.unwrap_or_default();
            let text = format!(
                "{} versioning={} mfa_delete={}",
                bucket.name,
                versioning_name(bucket.versioning),
                mfa_delete_name(bucket.mfa_delete)
            );
            cx.print(bucket_json(&bucket), text);
        }
    }
    Ok(())
}

fn versioning_name(status: i32) -> &'static str {
    match v1::VersioningStatus::try_from(status) {
        Ok(v1::VersioningStatus::Enabled) => "Enabled",
        Ok(v1::VersioningStatus::Suspended) => "Suspended",
        Ok(v1::VersioningStatus::Unversioned) => "Unversioned",
        _ => "Unknown",
    }
}
fn mfa_delete_name(status: i32) -> &'static str {
    match v1::MfaDeleteStatus::try_from(status) {
        Ok(v1::MfaDeleteStatus::Enabled) => "Enabled",
        _ => "Disabled",
    }
}

fn bucket_json(bucket: &v1::Bucket) -> Value {
    json!({
        "name": bucket.name,
        "owner": bucket.owner,
        "versioning": versioning_name(bucket.versioning),
        "mfa_delete": mfa_delete_name(bucket.mfa_delete),
        "object_lock": bucket.object_lock,
        "default_retention": bucket.default_retention.as_ref().map(|d| json!({
            "mode": mode_name(d.mode), "days": d.days, "years": d.years,
        })),
        "created_at": wormbox_model::Timestamp(bucket.created_at_unix_micros).to_rfc3339(),
    })
}
