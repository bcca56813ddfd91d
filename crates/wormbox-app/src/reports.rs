//! Reports for compliance officers: the audit trail (ledger entries a
//! filter selects) and the retention report (one row per version, framed
//! by signed checkpoints), as streams of domain values any front end maps.
//!
//! Invariant: both read the archive page by page on a blocking thread into a
//! bounded channel, so a slow reader holds back the producer, never the
//! server's memory, and a reader that goes away stops it at the next item;
//! neither runs on the async runtime. Only auditors and admins read them.

use tokio::sync::mpsc;
use wormbox_model::Digest;
use wormbox_reports::audit::AuditFilter;
use wormbox_reports::retention::{self, SummaryBuilder};
use wormbox_reports::{CheckpointFile, ReportError, ReportHeader, Row, Summary};
use wormbox_store::Actor;
use wormbox_store::evidence::Checkpoint;
use wormbox_store::ledger::LedgerEntry;

use crate::{Access, App, AppError, GetCheckpoint};

/// The audit trail: each selected ledger entry with its chain hash, in
/// ledger order; an error ends it.
pub type AuditEntries = mpsc::Receiver<Result<(LedgerEntry, Digest), AppError>>;

/// How many items a report stream holds ahead of its reader.
const STREAM_AHEAD: usize = 64;

/// RetentionReport.
#[derive(Clone, Debug, Default)]
pub struct RetentionReport {
    /// One bucket, or empty for every bucket.
    pub bucket: String,
    /// Only keys under this prefix.
    pub prefix: String,
}

/// A retention report under way: its header (with the checkpoint signed
/// before the first row), then its parts as they are read.
#[derive(Debug)]
pub struct RetentionReportStream {
    /// What the report covers, when it was made and the checkpoint before it.
    pub header: ReportHeader,
    /// The checkpoint signed before the first row.
    pub before: Checkpoint,
    /// The appliance's public key, which verifies both checkpoints.
    pub public_key: Vec<u8>,
    /// Every row, then the summary (with the checkpoint signed after the
    /// last row); an error ends it.
    pub parts: mpsc::Receiver<Result<ReportPart, AppError>>,
}

/// One part of a retention report after its header.
#[derive(Debug)]
pub enum ReportPart {
    /// One version or delete marker.
    Row(Box<Row>),
    /// The totals, and the checkpoint signed after the last row.
    Summary(Box<Summary>),
}

impl From<ReportError> for AppError {
    fn from(err: ReportError) -> AppError {
        match err {
            ReportError::Store(store) => AppError::Store(store),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl App {
    /// AuditLog: the ledger entries `filter` selects, each with its chain
    /// hash, in ledger order.
    pub fn audit_log(&self, actor: &Actor, filter: AuditFilter) -> Result<AuditEntries, AppError> {
        self.authorize(actor, Access::Audit)?;
        let store = self.store.clone();
        let (tx, rx) = mpsc::channel(STREAM_AHEAD);
        tokio::task::spawn_blocking(move || {
            for item in store.ledger_iter(filter.from_sequence) {
                let message = match item {
                    Ok((entry, _)) if filter.is_past(entry.sequence) => break,
                    Ok((entry, _)) if !filter.matches(&entry) => continue,
                    Ok(found) => Ok(found),
                    Err(e) => Err(AppError::from(e)),
                };
                let failed = message.is_err();
                // The reader went away, or an error ends the stream.
                if tx.blocking_send(message).is_err() || failed {
                    break;
                }
            }
        });
        Ok(rx)
    }

    /// RetentionReport: a checkpoint is signed before the first row is read
    /// and another after the last, so the report proves the state it shows
    /// lies between the two.
    pub async fn retention_report(
        &self,
        actor: &Actor,
        request: RetentionReport,
    ) -> Result<RetentionReportStream, AppError> {
        self.authorize(actor, Access::Audit)?;
        let RetentionReport { bucket, prefix } = request;
        let (store, named) = (self.store.clone(), bucket.clone());
        let buckets = run_blocking(move || retention::buckets(&store, &named)).await??;
        let public_key = self.public_key().to_vec();
        let before = self.checkpoint(actor, GetCheckpoint::default()).await?;
        let now = self.store.clock_status().await?.compliance;
        let (store, counted, under) = (self.store.clone(), buckets.clone(), prefix.clone());
        let total_rows = run_blocking(move || {
            let mut total_rows = 0u64;
            retention::for_each_row(&store, &counted, &under, now, |_| {
                total_rows += 1;
                true
            })
            .map(|()| total_rows)
        })
        .await??;
        let header = ReportHeader {
            bucket,
            prefix: prefix.clone(),
            now_unix_micros: now.0,
            total_rows,
            checkpoint: CheckpointFile::new(&before, &public_key),
            public_key: hex::encode(&public_key),
        };
        let (tx, parts) = mpsc::channel(STREAM_AHEAD);
        let (store, key) = (self.store.clone(), public_key.clone());
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let mut summary = SummaryBuilder::new(now);
            let mut open = true;
            let res = retention::for_each_row(&store, &buckets, &prefix, now, |row| {
                summary.add(&row);
                open = tx.blocking_send(Ok(ReportPart::Row(Box::new(row)))).is_ok();
                open
            });
            if !open {
                return;
            }
            let last = res.map_err(AppError::from).and_then(|()| {
                let after = runtime.block_on(store.checkpoint())?;
                let summary = summary.finish(Some(CheckpointFile::new(&after, &key)));
                Ok(ReportPart::Summary(Box::new(summary)))
            });
            let _ = tx.blocking_send(last);
        });
        Ok(RetentionReportStream { header, before, public_key, parts })
    }
}

/// Runs `work` on a blocking thread.
async fn run_blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, AppError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| AppError::Internal(format!("a blocking task failed: {e}")))
}
