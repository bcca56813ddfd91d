//! `wormbox replica status`: each replication rule's replica, durable
//! cursor, lag, what it copied and its last error (admins and auditors).
//! `wormbox verify --replica RULE` lives with `verify`.
//!
//! Invariant: only reads; the figures are the appliance's own, printed as
//! given (the lag in seconds is the age of the oldest ledger entry the
//! replica does not hold yet, by the compliance clock).

use clap::Subcommand;
use serde_json::{Value, json};
use wormbox_proto::v1;

use crate::commands::Context;

#[derive(Debug, Subcommand)]
pub(crate) enum ReplicaCommand {
    /// Each rule: source and replica, mode, cursor and ledger head, lag in
    /// entries and seconds, versions, bytes and checkpoints copied since the
    /// appliance started, throughput over the last minute, last error.
    Status,
}

fn mode_name(mode: i32) -> &'static str {
    match v1::ReplicationMode::try_from(mode) {
        Ok(v1::ReplicationMode::Async) => "async",
        Ok(v1::ReplicationMode::Sync) => "sync",
        _ => "unknown",
    }
}

pub(crate) fn rule_json(r: &v1::ReplicationRuleStatus) -> Value {
    json!({
        "name": r.name,
        "bucket": r.bucket,
        "prefix": r.prefix,
        "endpoint": r.endpoint,
        "target_bucket": r.target_bucket,
        "mode": mode_name(r.mode),
        "cursor": r.cursor,
        "ledger_head": r.ledger_head,
        "lag_entries": r.lag_entries,
        "lag_seconds": r.lag_seconds,
        "versions_copied": r.versions_copied,
        "bytes_copied": r.bytes_copied,
        "checkpoints_copied": r.checkpoints_copied,
        "kept_by_replica": r.kept_by_replica,
        "bytes_last_minute": r.bytes_last_minute,
        "versions_last_minute": r.versions_last_minute,
        "last_error": (!r.last_error.is_empty()).then_some(&r.last_error),
    })
}

fn rule_text(r: &v1::ReplicationRuleStatus) -> String {
    let source = if r.prefix.is_empty() { r.bucket.clone() } else { format!("{}/{}", r.bucket, r.prefix) };
    format!(
        "{:<16} {:<24} {:<40} {:<5} {:>10} {:>10} {:>9} {:>8} {:>10} {:>14} {:>6} {:>5} {:>10}  {}",
        r.name,
        source,
        format!("{}/{}", r.endpoint.trim_end_matches('/'), r.target_bucket),
        mode_name(r.mode),
        r.cursor,
        r.ledger_head,
        r.lag_entries,
        r.lag_seconds,
        r.versions_copied,
        r.bytes_copied,
        r.checkpoints_copied,
        r.kept_by_replica,
        r.bytes_last_minute / 60,
        if r.last_error.is_empty() { "-" } else { r.last_error.as_str() },
    )
}

pub(crate) async fn run(cx: &Context, command: ReplicaCommand) -> anyhow::Result<()> {
    match command {
        ReplicaCommand::Status => {
            let reply =
                cx.clients.admin().get_replication_status(v1::GetReplicationStatusRequest {}).await?.into_inner();
            let text = if reply.rules.is_empty() {
                "no replication rules are configured".to_owned()
            } else {
                let header = format!(
                    "{:<16} {:<24} {:<40} {:<5} {:>10} {:>10} {:>9} {:>8} {:>10} {:>14} {:>6} {:>5} {:>10}  {}",
                    "RULE",
                    "SOURCE",
                    "REPLICA",
                    "MODE",
                    "CURSOR",
                    "HEAD",
                    "LAG",
                    "LAG_S",
                    "VERSIONS",
                    "BYTES",
                    "CKPTS",
                    "KEPT",
                    "B/S(1MIN)",
                    "LAST ERROR"
                );
                std::iter::once(header).chain(reply.rules.iter().map(rule_text)).collect::<Vec<_>>().join("\n")
            };
            cx.print(Value::Array(reply.rules.iter().map(rule_json).collect()), text);
        }
    }
    Ok(())
}
