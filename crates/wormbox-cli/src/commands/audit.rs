//! `wormbox audit`: the audit trail, ledger entries filtered on the
//! appliance, as text, CSV or JSON lines; also how the export reads the trail.
//!
//! Invariant: every field the appliance hashed is kept in the record, so a
//! list of records rehashes to a checkpoint off the appliance.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use wormbox_proto::v1;
use wormbox_reports::audit::{self, AuditRecord};

use crate::client::Clients;
use crate::commands::Context;
use crate::output::write_out;

/// The filters of `wormbox audit`.
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Entries at or after this time (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    since: Option<String>,
    /// Entries at or before this time.
    #[arg(long)]
    until: Option<String>,
    #[arg(long, default_value = "")]
    bucket: String,
    /// Key prefix.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Access key id (or `system`).
    #[arg(long, default_value = "")]
    principal: String,
    /// writes, markers, purges, retention, configuration, mfa, refused, integrity; repeatable.
    #[arg(long = "kind")]
    kinds: Vec<String>,
    /// First ledger sequence.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Last ledger sequence.
    #[arg(long, default_value_t = 0)]
    to: u64,
    /// CSV instead of text (--json gives JSON lines).
    #[arg(long)]
    csv: bool,
    /// Write to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn parse_time(text: &str) -> anyhow::Result<i64> {
    wormbox_model::Timestamp::parse_rfc3339(text)
        .map(|t| t.0)
        .with_context(|| format!("`{text}` is not an RFC 3339 time or a YYYY-MM-DD date"))
}

fn record_of(e: &v1::AuditEntry) -> AuditRecord {
    AuditRecord {
        sequence: e.sequence,
        time_unix_micros: e.time_unix_micros,
        time: wormbox_model::Timestamp(e.time_unix_micros).to_rfc3339(),
        operation: e.operation.clone(),
        kind: e.kind.clone(),
        principal: e.principal.clone(),
        bucket: e.bucket.clone(),
        key: e.key.clone(),
        version_id: e.version_id.clone(),
        sha256: hex::encode(&e.sha256),
        detail: e.detail.clone(),
        hash: hex::encode(&e.hash),
        // A server from before typed attestations sends no format: its entries are format 1.
        format: u8::try_from(e.format).unwrap_or(u8::MAX).max(1),
        record_sha256: hex::encode(&e.record_sha256),
        lock_sha256: hex::encode(&e.lock_sha256),
    }
}

pub(crate) async fn audit_records(clients: &Clients, request: v1::AuditLogRequest) -> anyhow::Result<Vec<AuditRecord>> {
    let mut stream = clients.compliance().audit_log(request).await?.into_inner();
    let mut out = Vec::new();
    let progress = crate::output::Progress::items("ledger entries", None);
    while let Some(entry) = stream.message().await? {
        out.push(record_of(&entry));
        progress.step(1);
    }
    progress.finish();
    Ok(out)
}

/// `wormbox audit`.
pub(crate) async fn run(cx: &Context, args: AuditArgs) -> anyhow::Result<()> {
    let request = v1::AuditLogRequest {
        since_unix_micros: args.since.as_deref().map(parse_time).transpose()?.unwrap_or(0),
        until_unix_micros: args.until.as_deref().map(parse_time).transpose()?.unwrap_or(0),
        bucket: args.bucket,
        key_prefix: args.prefix,
        principal: args.principal,
        kinds: args.kinds,
        from_sequence: args.from,
        to_sequence: args.to,
        ..Default::default()
    };
    let records = audit_records(&cx.clients, request).await?;
    let mut out = String::new();
    if args.csv {
        audit::csv_header(&mut out);
    }
    for r in &records {
        if args.csv {
            audit::csv_record(&mut out, r);
        } else if cx.json {
            out.push_str(&audit::json_line(r));
            out.push('\n');
        } else {
            let version = if r.version_id.is_empty() { String::new() } else { format!(" {}", r.version_id) };
            // The typed attestations, after the free text, as format-1 entries
            // showed them inside it.
            let mut attested = String::new();
            for (name, digest) in [("lock-sha256", &r.lock_sha256), ("record-sha256", &r.record_sha256)] {
                if !digest.is_empty() {
                    attested.push_str(&format!(" [{name} {digest}]"));
                }
            }
            out.push_str(&format!(
                "{:>8}  {}  {:<20} {:<22} {}/{}{}  {}{}\n",
                r.sequence,
                r.time,
                r.operation,
                r.principal,
                r.bucket,
                r.key.escape_debug(),
                version,
                r.detail.escape_debug(),
                attested
            ));
        }
    }
    write_out(args.out.as_deref(), &out)
}
