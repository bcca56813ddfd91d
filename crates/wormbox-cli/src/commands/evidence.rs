//! The compliance officer's commands: checkpoints, integrity verification
//! (online, or offline on a stopped appliance's files), the audit trail,
//! the retention report, and the regulator's export and its verification.
//!
//! Each command's clap arguments stand beside its function here; the
//! `--help` text of each top-level command is its variant's in `main.rs`.
//!
//! Invariant: offline commands only read: `verify --data-dir` opens RocksDB
//! read-only, `verify-export` reads the export directory; an export writes
//! each file whole (temporary name, synced, renamed) so that an interrupted
//! export resumes without trusting a half-written file.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use wormbox_proto::v1;
use wormbox_reports::audit::{self, AuditRecord};
use wormbox_reports::checkpoint::parse_public_key;
use wormbox_reports::export::{self, Manifest, ManifestEntry};
use wormbox_reports::retention::{self, Total};
use wormbox_reports::{CheckpointFile, ReportHeader, Row, Status, Summary};
use wormbox_store::evidence::{self, IntegrityReport, VerifyOptions};

use crate::client::Clients;
use crate::commands::Context;
use crate::output::{mode_name, print, write_out, write_whole};

/// A progress line on stderr, drawn only on a terminal; a total of 0 means
/// unknown, and only the count is shown.
pub(crate) struct Progress {
    what: &'static str,
    total: u64,
    done: u64,
    shown: std::time::Instant,
    draw: bool,
}

impl Progress {
    pub(crate) fn new(what: &'static str, total: u64) -> Progress {
        Progress { what, total, done: 0, shown: std::time::Instant::now(), draw: std::io::stderr().is_terminal() }
    }

    pub(crate) fn step(&mut self, by: u64) {
        self.done += by;
        if self.draw && (self.shown.elapsed().as_millis() >= 100 || self.done == self.total) {
            self.shown = std::time::Instant::now();
            let width = 30u64;
            match (self.done.min(self.total) * width).checked_div(self.total) {
                Some(filled) => {
                    let bar: String = (0..width).map(|n| if n < filled { '#' } else { ' ' }).collect();
                    eprint!("\r[{bar}] {}/{} {}", self.done, self.total, self.what);
                }
                None => eprint!("\r{} {}", self.done, self.what),
            }
            let _ = std::io::stderr().flush();
        }
    }

    pub(crate) fn finish(&self) {
        if self.draw {
            eprintln!();
        }
    }
}

pub(crate) fn checkpoint_file(w: &v1::Checkpoint) -> CheckpointFile {
    CheckpointFile {
        sequence: w.sequence,
        head: hex::encode(&w.head),
        time_unix_micros: w.time_unix_micros,
        time: wormbox_model::Timestamp(w.time_unix_micros).to_rfc3339(),
        signature: hex::encode(&w.signature),
        key_id: w.key_id.clone(),
    }
}

fn checkpoint_to_wire(file: &CheckpointFile) -> anyhow::Result<v1::Checkpoint> {
    let c = file.checkpoint().map_err(anyhow::Error::msg)?;
    Ok(v1::Checkpoint {
        sequence: c.sequence,
        head: c.head.0.to_vec(),
        time_unix_micros: c.time.0,
        signature: c.signature,
        key_id: file.key_id.clone(),
    })
}

fn read_checkpoint_file(path: &Path) -> anyhow::Result<CheckpointFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading `{}`", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("`{}` is not a checkpoint file", path.display()))
}

fn read_public_key(path: &Path) -> anyhow::Result<Vec<u8>> {
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
}

/// `wormbox checkpoint`.
pub(crate) async fn checkpoint(cx: &Context, args: CheckpointArgs) -> anyhow::Result<()> {
    let CheckpointArgs { sequence, out } = args;
    let reply = cx.clients.compliance().get_checkpoint(v1::GetCheckpointRequest { sequence }).await?.into_inner();
    let file = checkpoint_file(&reply.checkpoint.context("the appliance sent no checkpoint")?);
    let text = serde_json::to_string_pretty(&file)? + "\n";
    match out {
        Some(path) => {
            write_whole(&path, text.as_bytes())?;
            println!("checkpoint {} written to {}", file.sequence, path.display());
        }
        None if cx.json => print!("{text}"),
        None => println!("{}", file.describe()),
    }
    Ok(())
}

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
    pub(crate) public_key: Option<PathBuf>,
    /// A checkpoint file kept outside the appliance; repeatable.
    #[arg(long = "checkpoint")]
    pub(crate) checkpoints: Vec<PathBuf>,
    /// Trust the chain up to this stored checkpoint and recompute from there.
    #[arg(long)]
    pub(crate) from_checkpoint: Option<u64>,
}

/// `wormbox verify --data-dir DIR`: on a stopped appliance's files, read-only.
pub(crate) fn verify_offline(data_dir: &Path, args: &VerifyArgs, json_mode: bool) -> anyhow::Result<()> {
    let VerifyArgs { data_dir: _, public_key, checkpoints, from_checkpoint } = args;
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
    let mut progress = Progress::new("bytes re-read", 0);
    let mut pace = |bytes: u64| progress.step(bytes - progress.done);
    let options =
        VerifyOptions { public_key: Some(key.clone()), from_checkpoint, extra_checkpoints, pace: Some(&mut pace) };
    let report = evidence::verify(&backend, options)?;
    progress.finish();
    let source = match public_key {
        Some(_) => String::new(),
        None => "; the key was read from the data directory: pass --public-key with a copy kept elsewhere to rule out a replaced key".to_owned(),
    };
    finish_verify(&report, json_mode, &format!(" (offline, key {}{source})", evidence::key_id(&key)))
}

/// `wormbox verify`: on the running appliance.
pub(crate) async fn verify_online(cx: &Context, args: VerifyArgs) -> anyhow::Result<()> {
    let VerifyArgs { data_dir: _, public_key, checkpoints, from_checkpoint } = args;
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
    let r = clients.compliance().verify_integrity(request).await?.into_inner();
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
        divergences: r
            .divergences
            .into_iter()
            .map(|d| evidence::Divergence { sequence: (d.sequence != 0).then_some(d.sequence), what: d.what })
            .collect(),
        divergence_count: r.divergence_count,
    };
    finish_verify(&report, cx.json, &format!(" (recorded as ledger entry {})", r.ledger_sequence))
}

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

async fn audit_records(clients: &Clients, request: v1::AuditLogRequest) -> anyhow::Result<Vec<AuditRecord>> {
    let mut stream = clients.compliance().audit_log(request).await?.into_inner();
    let mut out = Vec::new();
    while let Some(entry) = stream.message().await? {
        out.push(record_of(&entry));
    }
    Ok(out)
}

/// `wormbox audit`.
pub(crate) async fn audit(cx: &Context, args: AuditArgs) -> anyhow::Result<()> {
    let request = v1::AuditLogRequest {
        since_unix_micros: args.since.as_deref().map(parse_time).transpose()?.unwrap_or(0),
        until_unix_micros: args.until.as_deref().map(parse_time).transpose()?.unwrap_or(0),
        bucket: args.bucket,
        key_prefix: args.prefix,
        principal: args.principal,
        kinds: args.kinds,
        from_sequence: args.from,
        to_sequence: args.to,
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

fn summary_of(s: v1::RetentionSummary) -> Summary {
    Summary {
        totals: s
            .totals
            .into_iter()
            .map(|t| Total { bucket: t.bucket, mode: t.mode, versions: t.versions, bytes: t.bytes })
            .collect(),
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
pub(crate) async fn report(cx: &Context, command: ReportCommand) -> anyhow::Result<()> {
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
                progress = Some(Progress::new("rows", h.total_rows));
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
                if let Some(p) = progress.as_mut() {
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
    let summary = summary.context("the report ended before its summary: it is incomplete")?;
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

#[derive(serde::Serialize, serde::Deserialize)]
struct ExportState {
    bucket: String,
    prefix: String,
}

async fn list_versions(clients: &Clients, bucket: &str, prefix: &str) -> anyhow::Result<Vec<ManifestEntry>> {
    let mut archive = clients.archive();
    let (mut key_marker, mut version_id_marker) = (String::new(), String::new());
    let mut entries = Vec::new();
    loop {
        let request = v1::ListObjectVersionsRequest {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            key_marker: key_marker.clone(),
            version_id_marker: version_id_marker.clone(),
            max_keys: 1000,
            ..Default::default()
        };
        let page = archive.list_object_versions(request).await?.into_inner();
        for v in page.versions.iter().filter(|v| !v.is_delete_marker) {
            let retention = v.retention.as_ref();
            entries.push(ManifestEntry {
                file: export::object_file(entries.len()),
                key: v.key.clone(),
                version_id: v.version_id.clone(),
                is_latest: v.is_latest,
                sha256: hex::encode(&v.sha256),
                size: v.size,
                created_unix_micros: v.created_at_unix_micros,
                retention_mode: retention.map(|r| mode_name(r.mode).to_owned()).unwrap_or_default(),
                retain_until_unix_micros: retention.map(|r| r.retain_until_unix_micros),
                legal_holds: v.legal_holds.iter().map(|h| h.case_id.clone()).collect(),
            });
        }
        if !page.is_truncated {
            return Ok(entries);
        }
        key_marker = page.next_key_marker;
        version_id_marker = page.next_version_id_marker;
    }
}

fn file_matches(path: &Path, entry: &ManifestEntry) -> bool {
    std::fs::read(path).is_ok_and(|bytes| {
        bytes.len() as u64 == entry.size
            && hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref()) == entry.sha256
    })
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    #[arg(long)]
    bucket: String,
    #[arg(long, default_value = "")]
    prefix: String,
    #[arg(long)]
    out: PathBuf,
}

/// `wormbox export`.
pub(crate) async fn export(cx: &Context, args: ExportArgs) -> anyhow::Result<()> {
    let ExportArgs { bucket, prefix, out } = args;
    let (clients, out) = (&cx.clients, out.as_path());
    let state_path = out.join(export::STATE);
    let empty = match std::fs::read_dir(out) {
        Ok(mut listing) => listing.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(e).with_context(|| format!("reading `{}`", out.display())),
    };
    let resuming = !empty;
    if resuming {
        let state: ExportState =
            std::fs::read_to_string(&state_path).ok().and_then(|t| serde_json::from_str(&t).ok()).with_context(
                || format!("`{}` is not empty and holds no unfinished export: refusing to overwrite it", out.display()),
            )?;
        if state.bucket != bucket || state.prefix != prefix {
            bail!(
                "`{}` holds an unfinished export of bucket `{}` prefix `{}`: resume it with the same arguments",
                out.display(),
                state.bucket,
                state.prefix
            );
        }
    }
    let manifest = if resuming {
        let text = std::fs::read_to_string(out.join(export::MANIFEST_JSON))
            .context("reading the unfinished export's manifest")?;
        serde_json::from_str::<Manifest>(&text).context("the unfinished export's manifest is malformed")?
    } else {
        std::fs::create_dir_all(out.join(export::OBJECTS)).with_context(|| format!("creating `{}`", out.display()))?;
        write_whole(
            &state_path,
            serde_json::to_string(&ExportState { bucket: bucket.clone(), prefix: prefix.clone() })?.as_bytes(),
        )?;
        let entries = list_versions(clients, &bucket, &prefix).await?;
        let manifest =
            Manifest { format: export::FORMAT.to_owned(), bucket: bucket.clone(), prefix: prefix.clone(), entries };
        write_whole(&out.join(export::MANIFEST_JSON), manifest.to_json().as_bytes())?;
        manifest
    };
    let total_bytes: u64 = manifest.entries.iter().map(|e| e.size).sum();
    let mut progress = Progress::new("bytes exported", total_bytes);
    let mut archive = clients.archive();
    let mut fetched = 0usize;
    for entry in &manifest.entries {
        let path = out.join(&entry.file);
        if resuming && file_matches(&path, entry) {
            progress.step(entry.size);
            continue;
        }
        let request = v1::GetObjectRequest {
            bucket: bucket.clone(),
            key: entry.key.clone(),
            version_id: entry.version_id.clone(),
        };
        let mut stream = archive
            .get_object(request)
            .await
            .with_context(|| format!("fetching {} {} (purged since the export started?)", entry.key, entry.version_id))?
            .into_inner();
        let mut bytes = Vec::with_capacity(entry.size as usize);
        while let Some(message) = stream.message().await? {
            if let Some(v1::get_object_response::Part::Data(data)) = message.part {
                progress.step(data.len() as u64);
                bytes.extend_from_slice(&data);
            }
        }
        write_whole(&path, &bytes)?;
        if !file_matches(&path, entry) {
            bail!("{} {}: the bytes received do not match the listed SHA-256", entry.key, entry.version_id);
        }
        fetched += 1;
    }
    progress.finish();
    // The checkpoint comes after the listing, so it covers every listed write.
    let reply = clients.compliance().get_checkpoint(v1::GetCheckpointRequest { sequence: 0 }).await?.into_inner();
    let checkpoint = checkpoint_file(&reply.checkpoint.context("the appliance sent no checkpoint")?);
    let request = v1::AuditLogRequest { from_sequence: 1, to_sequence: checkpoint.sequence, ..Default::default() };
    let records = audit_records(clients, request).await?;
    let keys: HashSet<&str> = manifest.entries.iter().map(|e| e.key.as_str()).collect();
    let mut ledger = String::new();
    let mut trail = String::new();
    audit::csv_header(&mut trail);
    for r in &records {
        ledger.push_str(&audit::json_line(r));
        ledger.push('\n');
        if r.bucket == bucket && keys.contains(r.key.as_str()) {
            audit::csv_record(&mut trail, r);
        }
    }
    write_whole(&out.join(export::LEDGER), ledger.as_bytes())?;
    write_whole(&out.join(export::AUDIT_CSV), trail.as_bytes())?;
    write_whole(&out.join(export::MANIFEST_CSV), manifest.to_csv().as_bytes())?;
    write_whole(&out.join(export::PUBLIC_KEY), format!("{}\n", hex::encode(&reply.public_key)).as_bytes())?;
    write_whole(&out.join(export::CHECKPOINT), (serde_json::to_string_pretty(&checkpoint)? + "\n").as_bytes())?;
    std::fs::remove_file(&state_path).context("marking the export complete")?;
    println!(
        "exported {} versions ({} bytes, {} fetched now) of bucket {} to {}, bound to {}",
        manifest.entries.len(),
        total_bytes,
        fetched,
        bucket,
        out.display(),
        checkpoint.describe()
    );
    Ok(())
}

#[derive(Debug, Args)]
pub(crate) struct VerifyExportArgs {
    dir: PathBuf,
    /// The appliance's public key (hex), obtained independently of the export.
    #[arg(long)]
    public_key: Option<PathBuf>,
}

/// `wormbox verify-export`.
pub(crate) fn verify_export(args: &VerifyExportArgs, json_mode: bool) -> anyhow::Result<()> {
    let (dir, public_key) = (args.dir.as_path(), args.public_key.as_deref());
    let key = public_key.map(read_public_key).transpose()?;
    let check = export::verify(dir, key.as_deref())?;
    let bound = check.checkpoint.as_ref().map(CheckpointFile::describe).unwrap_or_default();
    let value = json!({
        "ok": check.is_ok(),
        "versions": check.versions,
        "bytes": check.bytes,
        "ledger_entries": check.ledger_entries,
        "checkpoint": check.checkpoint,
        "problems": check.problems,
    });
    let mut text = format!(
        "{} versions ({} bytes) and {} ledger entries checked against {bound}",
        check.versions, check.bytes, check.ledger_entries
    );
    if key.is_none() {
        text.push_str("\n  note: the public key was read from the export; pass --public-key with a copy obtained from the appliance independently");
    }
    for problem in &check.problems {
        text.push_str(&format!("\n  problem: {problem}"));
    }
    print(json_mode, value, text);
    if !check.is_ok() {
        bail!("the export does not verify: {} problem(s)", check.problems.len());
    }
    Ok(())
}
