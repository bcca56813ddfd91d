//! `wormbox report retention`: the compliance officer's retention report,
//! received from the appliance and written as CSV, JSON or HTML.
//!
//! Invariant: a report is written only once its summary arrived; a stream that
//! ends before it is an error, not a shorter report.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use wormbox_proto::v1;
use wormbox_reports::retention::{self, Total};
use wormbox_reports::{ReportHeader, Row, Status, Summary};

use crate::commands::Context;
use crate::commands::checkpoint::checkpoint_file;
use crate::output::{Progress, write_out};

fn summary_of(s: v1::RetentionSummary) -> Summary {
    Summary {
        totals: s
            .totals
            .into_iter()
            .map(|t| Total { bucket: t.bucket, mode: t.mode, versions: t.versions, bytes: t.bytes })
            .collect(),
        protected: s.protected,
        held: s.held,
        bytes_protected: s.bytes_protected,
        expiring_30_days: s.expiring_30_days,
        expiring_90_days: s.expiring_90_days,
        expiring_365_days: s.expiring_365_days,
        holds: s.holds.into_iter().map(|c| (c.case_id, c.versions)).collect(),
        delete_markers: s.delete_markers,
        expired: s.expired,
        unprotected: s.unprotected,
        expirations: s.expirations.into_iter().map(|m| (m.month, m.versions)).collect(),
        checkpoint: s.checkpoint.as_ref().map(checkpoint_file),
    }
}

fn row_of(r: v1::RetentionRow) -> anyhow::Result<Row> {
    let mode = match v1::RetentionMode::try_from(r.mode) {
        Ok(v1::RetentionMode::Governance) => "GOVERNANCE",
        Ok(v1::RetentionMode::Compliance) => "COMPLIANCE",
        _ => "",
    };
    Ok(Row {
        status: Status::from_name(&r.status).with_context(|| format!("unknown status `{}`", r.status))?,
        bucket: r.bucket,
        key: r.key,
        version_id: r.version_id,
        is_latest: r.is_latest,
        is_delete_marker: r.is_delete_marker,
        size: r.size,
        created_unix_micros: r.created_unix_micros,
        sha256: hex::encode(&r.sha256),
        mode: mode.to_owned(),
        retain_until_unix_micros: (r.retain_until_unix_micros != 0).then_some(r.retain_until_unix_micros),
        legal_holds: r.legal_holds,
        bytes_location: r.bytes_location,
    })
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReportCommand {
    /// Every version and delete marker with its retention, holds and status,
    /// and a summary, bound to signed checkpoints.
    Retention {
        /// Only this bucket; every bucket when absent.
        #[arg(long, default_value = "")]
        bucket: String,
        #[arg(long, default_value = "")]
        prefix: String,
        /// csv, json or html.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Output file; stdout when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `wormbox report retention`.
pub(crate) async fn run(cx: &Context, command: ReportCommand) -> anyhow::Result<()> {
    let ReportCommand::Retention { bucket, prefix, format, out } = command;
    let format = format.as_str();
    if !["csv", "json", "html"].contains(&format) {
        bail!("--format must be csv, json or html, not `{format}`");
    }
    let request = v1::RetentionReportRequest { bucket, prefix };
    let mut stream = cx.clients.compliance().retention_report(request).await?.into_inner();
    let (mut header, mut rows, mut summary, mut progress) = (None, Vec::new(), None, None);
    while let Some(part) = stream.message().await? {
        match part.part {
            Some(v1::retention_report_part::Part::Header(h)) => {
                progress = Some(Progress::items("report rows", Some(h.total_rows)));
                header = Some(ReportHeader {
                    bucket: h.bucket,
                    prefix: h.prefix,
                    now_unix_micros: h.now_unix_micros,
                    total_rows: h.total_rows,
                    checkpoint: checkpoint_file(&h.checkpoint.context("the report header has no checkpoint")?),
                    public_key: hex::encode(&h.public_key),
                });
            }
            Some(v1::retention_report_part::Part::Row(r)) => {
                rows.push(row_of(r)?);
                if let Some(p) = progress.as_ref() {
                    p.step(1);
                }
            }
            Some(v1::retention_report_part::Part::Summary(s)) => summary = Some(summary_of(s)),
            None => bail!("the appliance sent an empty report part"),
        }
    }
    if let Some(p) = &progress {
        p.finish();
    }
    let header = header.context("the report has no header")?;
    let mut summary = summary.context("the report ended before its summary: it is incomplete")?;
    // Figured from the rows, which every appliance sends: an older one's
    // summary lacks them (proto3 would say 0, "nothing protected").
    let protected = |r: &&Row| matches!(r.status, Status::Protected | Status::Held);
    summary.protected = rows.iter().filter(|r| r.status == Status::Protected).count() as u64;
    summary.held = rows.iter().filter(|r| r.status == Status::Held).count() as u64;
    summary.bytes_protected = rows.iter().filter(protected).map(|r| r.size).sum();
    let text = match format {
        "csv" => retention::to_csv(&header, &rows),
        "json" => retention::to_json(&header, &rows, &summary),
        _ => retention::to_html(&header, &rows, &summary),
    };
    write_out(out.as_deref(), &text)?;
    if let Some(path) = &out {
        eprintln!(
            "{} rows written to {}; {}",
            rows.len(),
            path.display(),
            retention::checkpoint_span(&header, &summary)
        );
    }
    Ok(())
}
