//! The appliance's metrics in the OpenMetrics text format, for a site's
//! Prometheus: counters the gRPC front door keeps as calls end, and figures
//! read from the archive at each scrape (`render`).
//!
//! Invariants:
//! - every label takes its values from a fixed set (the methods the
//!   appliance serves, the gRPC codes, the configured replication rules, the
//!   engine's own names), so no caller can grow the exposition;
//! - a scrape only reads, and what it asks of the writer (the clock's
//!   state) is bounded by `WRITER_WAIT`: a full write queue delays a scrape
//!   by that at most, and the figures it could not read are left out, not
//!   invented;
//! - no credential, secret, seed or code is ever a metric or a label.

pub(crate) mod listener;

use std::collections::HashMap;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};
use prost::Message;
use wormbox_app::App;
use wormbox_store::HistogramSnapshot;

use crate::grpc::budget::ReceiveBudget;

/// How long a scrape waits for the writer (the compliance clock's state is
/// read through it).
const WRITER_WAIT: Duration = Duration::from_secs(2);

/// The label of a call to a path the appliance does not serve.
const OTHER: &str = "other";

/// A gRPC call as counted: its service, method and outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    service: String,
    method: String,
    code: String,
}

/// The counters kept between scrapes, and what a scrape reads the rest from.
#[derive(Debug)]
pub struct Metrics {
    calls: Family<CallLabels, Counter>,
    /// `/package.Service/Method` of every method served, to its labels.
    methods: HashMap<String, (String, String)>,
    registry: Registry,
    /// The S3 listener's request counts, once it is started.
    s3: std::sync::OnceLock<std::sync::Arc<wormbox_s3::RequestCounts>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Metrics of an appliance (its figures are read from the `App` at each scrape).
    pub fn new() -> Metrics {
        let calls = Family::<CallLabels, Counter>::default();
        let mut registry = Registry::default();
        registry.register("wormbox_grpc_requests", "gRPC calls ended, by method and status code", calls.clone());
        let info = Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]);
        registry.register("wormbox_build", "The running build", info);
        Metrics { calls, methods: served_methods(), registry, s3: std::sync::OnceLock::new() }
    }

    /// Exports the S3 listener's request counts too.
    pub(crate) fn attach_s3(&self, counts: std::sync::Arc<wormbox_s3::RequestCounts>) {
        let _ = self.s3.set(counts);
    }

    /// Counts one gRPC call to `path` that ended with `code`.
    pub(crate) fn call_ended(&self, path: &str, code: tonic::Code) {
        let (service, method) = match self.methods.get(path) {
            Some((service, method)) => (service.clone(), method.clone()),
            None => (OTHER.to_owned(), OTHER.to_owned()),
        };
        self.calls.get_or_create(&CallLabels { service, method, code: format!("{code:?}") }).inc();
    }

    /// The exposition of every metric now.
    pub(crate) async fn render(&self, app: &App, budget: &ReceiveBudget) -> String {
        let snapshot = Snapshot::take(app, budget).await;
        let mut out = String::new();
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &snapshot.registry());
        if let Some(s3) = self.s3.get() {
            let _ = prometheus_client::encoding::text::encode_registry(&mut out, &s3_registry(&s3.snapshot()));
        }
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }
}

/// Every method of the appliance's services and of gRPC health and
/// reflection, from their descriptors.
fn served_methods() -> HashMap<String, (String, String)> {
    let sets: [&[u8]; 4] = [
        wormbox_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    let mut methods = HashMap::new();
    for set in sets {
        // Compiled in: a set that does not decode is a build defect, and
        // its methods are then counted as `other`.
        let Ok(set) = prost_types::FileDescriptorSet::decode(set) else { continue };
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for service in file.service {
                let service_name = format!("{package}.{}", service.name.unwrap_or_default());
                for method in service.method {
                    let method = method.name.unwrap_or_default();
                    methods.insert(format!("/{service_name}/{method}"), (service_name.clone(), method));
                }
            }
        }
    }
    methods
}

/// What a scrape read, before it is encoded (encoding is synchronous; the
/// reads are not).
struct Snapshot {
    stats: wormbox_store::CommitStats,
    histograms: wormbox_store::CommitHistograms,
    ledger_sequence: u64,
    queue: (usize, usize),
    receive: (usize, usize),
    engine_memory: Vec<(&'static str, u64)>,
    engine_stats: Vec<(&'static str, u64)>,
    disk: wormbox_store::DiskStatus,
    clock: Option<wormbox_store::ClockStatus>,
    checkpoint: Option<wormbox_store::evidence::Checkpoint>,
    replication: Vec<wormbox_replica::Status>,
    integrity: (u64, u64),
    mfa: wormbox_mfa::VerificationCounts,
    scrub: wormbox_app::ScrubState,
    backup_running: bool,
}

impl Snapshot {
    async fn take(app: &App, budget: &ReceiveBudget) -> Snapshot {
        let store = app.store().clone();
        let clock = match tokio::time::timeout(WRITER_WAIT, store.clock_status()).await {
            Ok(Ok(status)) => Some(status),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "metrics: the compliance clock could not be read");
                None
            }
            Err(_) => None,
        };
        let reader = store.clone();
        // Point reads and a statvfs: off the runtime's threads.
        let (checkpoint, disk, engine_memory, engine_stats) = tokio::task::spawn_blocking(move || {
            let checkpoint = reader.last_checkpoint().unwrap_or_else(|err| {
                tracing::warn!(error = %err, "metrics: the last checkpoint could not be read");
                None
            });
            (checkpoint, reader.disk_status(), reader.engine_memory(), reader.engine_stats())
        })
        .await
        .unwrap_or_else(|_| (None, store.disk_status(), Vec::new(), Vec::new()));
        let ledger_sequence = *store.ledger_watch().borrow();
        let capacity = store.queue_capacity();
        Snapshot {
            stats: store.commit_stats(),
            histograms: store.commit_histograms(),
            ledger_sequence,
            queue: (capacity.saturating_sub(store.queue_available()), capacity),
            receive: (budget.in_use(), budget.capacity()),
            engine_memory,
            engine_stats,
            disk,
            clock,
            checkpoint,
            replication: app.replication().statuses(),
            integrity: store.integrity_counts(),
            mfa: app.mfa_counts(),
            scrub: app.scrubs().state(),
            backup_running: app.backup_running(),
        }
    }

    fn registry(&self) -> Registry {
        let mut r = Registry::default();
        let gauge = |value: u64| {
            let g = Gauge::<i64>::default();
            g.set(i64::try_from(value).unwrap_or(i64::MAX));
            g
        };
        let counter = |value: u64| {
            let c = Counter::<u64>::default();
            c.inc_by(value);
            c
        };
        r.register("wormbox_ledger_sequence", "The newest durable ledger entry", gauge(self.ledger_sequence));
        r.register("wormbox_commit_groups", "Group commits that succeeded", counter(self.stats.groups));
        r.register("wormbox_commit_commands", "Commands those group commits carried", counter(self.stats.commands));
        r.register(
            "wormbox_ingest_versions",
            "New versions stored, from every front door",
            counter(self.stats.versions),
        );
        r.register_with_unit(
            "wormbox_ingest",
            "Bytes of the new versions stored",
            Unit::Bytes,
            counter(self.stats.version_bytes),
        );
        r.register(
            "wormbox_commit_group_size",
            "Commands per successful group commit",
            Histo(self.histograms.group_size.clone()),
        );
        r.register_with_unit(
            "wormbox_commit_sync",
            "Time each group commit's durable write took",
            Unit::Seconds,
            Histo(self.histograms.sync_seconds.clone()),
        );
        r.register_with_unit(
            "wormbox_commit_queue_wait",
            "Time each write request waited in the writer's queue before its group was applied",
            Unit::Seconds,
            Histo(self.histograms.queue_wait_seconds.clone()),
        );
        r.register_with_unit(
            "wormbox_commit_apply",
            "Time the writer took to apply each group (rules judged, ledger entries made) before its durable write",
            Unit::Seconds,
            Histo(self.histograms.apply_seconds.clone()),
        );
        r.register_with_unit(
            "wormbox_write_queue_in_use",
            "Bytes of the write queue taken by waiting and committing requests",
            Unit::Bytes,
            gauge(self.queue.0 as u64),
        );
        r.register_with_unit(
            "wormbox_write_queue_capacity",
            "The write queue's size",
            Unit::Bytes,
            gauge(self.queue.1 as u64),
        );
        r.register_with_unit(
            "wormbox_receive_budget_in_use",
            "Bytes of received, not yet stored, request messages (Ingest and PutObject)",
            Unit::Bytes,
            gauge(self.receive.0 as u64),
        );
        r.register_with_unit(
            "wormbox_receive_budget_capacity",
            "The receive budget's size",
            Unit::Bytes,
            gauge(self.receive.1 as u64),
        );
        let memory = Family::<Vec<(&'static str, &'static str)>, Gauge<i64>>::default();
        for (part, bytes) in &self.engine_memory {
            memory.get_or_create(&vec![("part", *part)]).set(i64::try_from(*bytes).unwrap_or(i64::MAX));
        }
        r.register_with_unit(
            "wormbox_engine_memory",
            "The storage engine's own accounting of what it holds",
            Unit::Bytes,
            memory,
        );
        for (name, value) in &self.engine_stats {
            let help = "The storage engine's own figure (see ARCHITECTURE.md, Metrics)";
            match name.strip_suffix("_total") {
                Some(counted) => r.register(format!("wormbox_engine_{counted}"), help, counter(*value)),
                None => r.register(format!("wormbox_engine_{name}"), help, gauge(*value)),
            }
        }
        if let Some(disk) = &self.disk.space {
            r.register_with_unit(
                "wormbox_disk_total",
                "Size of the data directory's filesystem",
                Unit::Bytes,
                gauge(disk.total),
            );
            r.register_with_unit(
                "wormbox_disk_free",
                "Free bytes of the data directory's filesystem",
                Unit::Bytes,
                gauge(disk.free),
            );
            r.register_with_unit(
                "wormbox_disk_available",
                "Bytes of the data directory's filesystem that the appliance's user may take",
                Unit::Bytes,
                gauge(disk.available),
            );
        }
        r.register_with_unit(
            "wormbox_disk_reserve",
            "Bytes of the data directory's filesystem kept free: new data is refused within it ([storage] reserve_bytes; 0: none)",
            Unit::Bytes,
            gauge(self.disk.reserve),
        );
        r.register(
            "wormbox_disk_writes_refused",
            "1 while new data is refused because the disk's available space is within the reserve (DISK_FULL)",
            gauge(u64::from(self.disk.refusing)),
        );
        r.register(
            "wormbox_disk_full_refusals",
            "Writes refused with DISK_FULL since the server started",
            counter(self.disk.refused),
        );
        r.register(
            "wormbox_writer_responsive",
            "1 when the archive's writer answered this scrape within 2 s (0: it is stuck or the write queue is full; \
             the clock and checkpoint-age figures are then missing)",
            gauge(u64::from(self.clock.is_some())),
        );
        if let Some(clock) = &self.clock {
            let held = clock.held_back.unwrap_or_default();
            r.register(
                "wormbox_clock_held_back",
                "1 while the compliance clock is behind the system clock (it catches up at its rate)",
                gauge(u64::from(clock.held_back.is_some())),
            );
            let seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
            seconds.set(held.as_secs_f64());
            r.register_with_unit(
                "wormbox_clock_held_back",
                "How far the compliance clock is behind the system clock",
                Unit::Seconds,
                seconds,
            );
        }
        if let Some(checkpoint) = &self.checkpoint {
            r.register(
                "wormbox_checkpoint_sequence",
                "The ledger entry the last signed checkpoint covers",
                gauge(checkpoint.sequence),
            );
            // Both times are the compliance clock's.
            if let Some(clock) = &self.clock {
                let age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
                age.set((clock.compliance.0 - checkpoint.time.0).max(0) as f64 / 1e6);
                r.register_with_unit(
                    "wormbox_checkpoint_age",
                    "Time since the last signed checkpoint, by the compliance clock",
                    Unit::Seconds,
                    age,
                );
            }
        }
        let lag = Family::<Vec<(&'static str, String)>, Gauge<i64>>::default();
        let copied = Family::<Vec<(&'static str, String)>, Counter>::default();
        let copied_bytes = Family::<Vec<(&'static str, String)>, Counter>::default();
        let failing = Family::<Vec<(&'static str, String)>, Gauge<i64>>::default();
        for status in &self.replication {
            let rule = vec![("rule", status.rule.clone())];
            lag.get_or_create(&rule).set(i64::try_from(status.head.saturating_sub(status.cursor)).unwrap_or(i64::MAX));
            copied.get_or_create(&rule).inc_by(status.versions);
            copied_bytes.get_or_create(&rule).inc_by(status.bytes);
            failing.get_or_create(&rule).set(i64::from(status.last_error.is_some()));
        }
        r.register("wormbox_replication_lag_entries", "Ledger entries the rule's replica has not caught up with", lag);
        r.register("wormbox_replication_versions", "Versions copied since the appliance started", copied);
        r.register_with_unit(
            "wormbox_replication_copied",
            "Bytes copied since the appliance started",
            Unit::Bytes,
            copied_bytes,
        );
        r.register("wormbox_replication_failing", "1 while the rule's last pass failed", failing);
        let integrity = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        integrity.get_or_create(&vec![("result", "passed")]).inc_by(self.integrity.0);
        integrity.get_or_create(&vec![("result", "failed")]).inc_by(self.integrity.1);
        r.register(
            "wormbox_integrity_verifications",
            "Integrity verifications recorded (scrub and on request), by result",
            integrity,
        );
        let mfa = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        let m = &self.mfa;
        for (outcome, n) in [
            ("accepted", m.accepted),
            ("invalid", m.invalid),
            ("replayed", m.replayed),
            ("locked_out", m.locked_out),
            ("unusable", m.unusable),
        ] {
            mfa.get_or_create(&vec![("outcome", outcome)]).inc_by(n);
        }
        r.register("wormbox_mfa_verifications", "MFA codes judged, by outcome", mfa);
        r.register("wormbox_mfa_lockouts", "MFA devices locked out after repeated wrong codes", counter(m.lockouts));
        let scrub = &self.scrub;
        r.register(
            "wormbox_scrub_running",
            "1 while a background integrity scrub runs",
            gauge(u64::from(scrub.running_since.is_some())),
        );
        r.register_with_unit(
            "wormbox_scrub_read",
            "Version bytes the running scrub has read so far",
            Unit::Bytes,
            gauge(scrub.bytes_read),
        );
        let runs = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        for (result, n) in [("ok", scrub.finished - scrub.failed), ("failed", scrub.failed), ("error", scrub.errors)] {
            runs.get_or_create(&vec![("result", result)]).inc_by(n);
        }
        r.register(
            "wormbox_scrub_runs",
            "Background integrity scrubs since the start, by result (failed: found divergences; error: could not run to its end)",
            runs,
        );
        if let Some(last) = &scrub.last {
            r.register(
                "wormbox_scrub_last_ok",
                "1 when the last finished scrub found everything as the ledger says",
                gauge(u64::from(last.ok)),
            );
            let at = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
            at.set(last.finished_at.as_micros() as f64 / 1e6);
            r.register_with_unit(
                "wormbox_scrub_last_end_timestamp",
                "When the last finished scrub ended, by the compliance clock (Unix seconds)",
                Unit::Seconds,
                at,
            );
        }
        r.register(
            "wormbox_backup_running",
            "1 while a backup holds its slot (its copy staged or streaming)",
            gauge(u64::from(self.backup_running)),
        );
        r
    }
}

/// `wormbox_s3_requests_total{operation, code}` (labels from fixed sets:
/// s3s's operation names or `other`, and HTTP status codes).
fn s3_registry(counts: &[(String, u16, u64)]) -> Registry {
    let mut r = Registry::default();
    let family = Family::<Vec<(&'static str, String)>, Counter>::default();
    for (operation, status, n) in counts {
        family.get_or_create(&vec![("operation", operation.clone()), ("code", status.to_string())]).inc_by(*n);
    }
    r.register("wormbox_s3_requests", "S3 requests answered, by operation and HTTP status code", family);
    r
}

/// A histogram read from the store, encoded as one.
#[derive(Debug)]
struct Histo(HistogramSnapshot);

impl TypedMetric for Histo {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histo {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let h = &self.0;
        let mut buckets: Vec<(f64, u64)> = h.bounds.iter().copied().zip(h.counts.iter().copied()).collect();
        buckets.push((f64::INFINITY, h.counts.last().copied().unwrap_or(0)));
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(h.sum, h.count(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_labelled_by_the_methods_served_and_anything_else_is_other() {
        let metrics = Metrics::new();
        metrics.call_ended("/wormbox.v1.Archive/PutObject", tonic::Code::Ok);
        metrics.call_ended("/grpc.health.v1.Health/Check", tonic::Code::Ok);
        // A caller naming paths of its own adds no series per path.
        for n in 0..100 {
            metrics.call_ended(&format!("/wormbox.v1.Archive/Made{n}"), tonic::Code::Unimplemented);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry).unwrap();
        assert!(
            text.contains(
                "wormbox_grpc_requests_total{service=\"wormbox.v1.Archive\",method=\"PutObject\",code=\"Ok\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains("service=\"grpc.health.v1.Health\",method=\"Check\""), "{text}");
        assert!(text.contains("{service=\"other\",method=\"other\",code=\"Unimplemented\"} 100\n"), "{text}");
        assert_eq!(text.matches("wormbox_grpc_requests_total{").count(), 3, "{text}");
        assert!(metrics.methods.contains_key("/wormbox.v1.Compliance/GetCheckpoint"));
        assert!(metrics.methods.contains_key("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"));
    }

    #[test]
    fn a_histogram_read_from_the_store_is_encoded_cumulatively_with_its_sum() {
        let snapshot = HistogramSnapshot { bounds: &[1.0, 4.0], counts: vec![2, 0, 1], sum: 7.5 };
        let mut registry = Registry::default();
        registry.register_with_unit("wormbox_test", "a test", Unit::Seconds, Histo(snapshot));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "# TYPE wormbox_test_seconds histogram",
            "wormbox_test_seconds_sum 7.5",
            "wormbox_test_seconds_count 3",
            "wormbox_test_seconds_bucket{le=\"1.0\"} 2",
            "wormbox_test_seconds_bucket{le=\"4.0\"} 2",
            "wormbox_test_seconds_bucket{le=\"+Inf\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
    }
}
