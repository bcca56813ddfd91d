//! The metrics endpoint of a real appliance: a scrape after traffic shows
//! it (versions, bytes, calls by method and code, the ledger, the group
//! commit), in the OpenMetrics text format; beyond loopback only an
//! auditor's or admin's credential over TLS reads it, scraped with curl;
//! `deploy/monitoring/`'s alert rules and dashboard name only metrics a real
//! appliance exports, and Prometheus's own `promtool` accepts and tests them.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use wormbox_model::{Clock, ManualClock, Timestamp};
use wormbox_proto::v1;
use wormbox_server::WormboxdConfig;
use wormbox_server::config::TlsConfig;
use wormbox_test_utils::s3_targets::{S3Target, appliance_replicating_to};
use wormbox_test_utils::{TEST_EPOCH, TestAppliance};

use super::{create_bucket, put};

/// `GET path` over plain HTTP/1.1: the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to the metrics listener");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).expect("a text answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    (status, head.to_owned(), body.to_owned())
}

async fn scrape(addr: SocketAddr) -> String {
    let (status, head, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/openmetrics-text"), "{head}");
    assert!(body.ends_with("# EOF\n"), "an OpenMetrics exposition ends with # EOF");
    body
}

/// The value of the sample `series` (a name, with its labels as printed).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn must(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scrape_after_traffic_shows_it_and_names_only_what_the_appliance_serves() {
    let app = TestAppliance::start().await.unwrap();
    let addr = app.server().metrics_addr.expect("metrics are on by default");
    assert!(addr.ip().is_loopback());
    let before = scrape(addr).await;
    let versions = must(&before, "wormbox_ingest_versions_total");
    let bytes = must(&before, "wormbox_ingest_bytes_total");
    let ledger = must(&before, "wormbox_ledger_sequence");
    let groups = must(&before, "wormbox_commit_group_size_count");

    let mut client = app.archive().await.unwrap();
    create_bucket(&mut client, "metered", v1::VersioningStatus::Enabled).await;
    for (i, size) in [1000usize, 1001, 1002].into_iter().enumerate() {
        put(&mut client, "metered", &format!("k{i}"), &vec![7u8; size]).await.unwrap();
    }
    // A caller whose credential does not authenticate is counted too.
    let mut stranger = app.archive_as("AKIDNOBODYATALL00000:wrong").await.unwrap();
    stranger.list_objects(v1::ListObjectsRequest { bucket: "metered".into(), ..Default::default() }).await.unwrap_err();
    // S3 requests, by operation and status; one whose signature is wrong
    // reached no operation.
    let (access, secret) = app.s3_principal("s3-metered", v1::Role::Writer).await.unwrap();
    let body = bytes::Bytes::from_static(b"via s3");
    let sha256 = data_encoding::BASE64.encode(ring::digest::digest(&ring::digest::SHA256, &body).as_ref());
    let s3 = app.s3_client("metered", &access, &secret);
    s3.put_object_unsigned("s3-key", body.clone(), ("x-amz-checksum-sha256", &sha256)).await.unwrap();
    let forged = app.s3_client("metered", &access, "not-the-secret");
    forged.put_object_unsigned("s3-key", body, ("x-amz-checksum-sha256", &sha256)).await.unwrap_err();

    let after = scrape(addr).await;
    assert_eq!(must(&after, "wormbox_ingest_versions_total") - versions, 4.0, "three over gRPC, one over S3");
    assert_eq!(must(&after, "wormbox_ingest_bytes_total") - bytes, 3009.0);
    assert!(must(&after, "wormbox_ledger_sequence") >= ledger + 5.0, "a bucket, its versioning, three versions");
    assert!(must(&after, "wormbox_commit_group_size_count") >= groups + 5.0);
    assert!(must(&after, "wormbox_commit_sync_seconds_count") >= must(&after, "wormbox_commit_group_size_count"));
    assert!(must(&after, "wormbox_commit_apply_seconds_count") >= must(&after, "wormbox_commit_group_size_count"));
    assert!(
        must(&after, "wormbox_commit_queue_wait_seconds_count") >= must(&after, "wormbox_commit_group_size_count"),
        "every request of every group waited in the queue, if only for an instant"
    );
    let archive = |method: &str, code: &str| {
        format!("wormbox_grpc_requests_total{{service=\"wormbox.v1.Archive\",method=\"{method}\",code=\"{code}\"}}")
    };
    assert_eq!(must(&after, &archive("PutObject", "Ok")), 3.0);
    assert_eq!(must(&after, &archive("ListObjects", "Unauthenticated")), 1.0);
    assert_eq!(must(&after, "wormbox_s3_requests_total{operation=\"PutObject\",code=\"200\"}"), 1.0);
    assert!(must(&after, "wormbox_s3_requests_total{operation=\"other\",code=\"403\"}") >= 1.0);
    assert!(value(&after, &archive("ListObjects", "Ok")).is_none());
    assert!(must(&after, "wormbox_disk_total_bytes") > 0.0);
    assert!(must(&after, "wormbox_disk_available_bytes") <= must(&after, "wormbox_disk_total_bytes"));
    assert_eq!(must(&after, "wormbox_clock_held_back"), 0.0);
    assert!(must(&after, "wormbox_write_queue_capacity_bytes") > 0.0);
    assert!(must(&after, "wormbox_engine_log_file_bytes") >= 3003.0, "the versions' bytes are in the log");
    assert!(value(&after, "wormbox_engine_pending_compaction_bytes").is_some());
    assert!(value(&after, "wormbox_engine_write_stops_total").is_some());
    assert!(value(&after, "wormbox_engine_memory_bytes{part=\"memtables\"}").is_some());
    assert_eq!(must(&after, "wormbox_disk_writes_refused"), 0.0);
    assert!(must(&after, "wormbox_disk_reserve_bytes") > 0.0);
    assert_eq!(must(&after, "wormbox_backup_running"), 0.0);
    assert_eq!(must(&after, "wormbox_scrub_running"), 0.0);
    assert_eq!(must(&after, "wormbox_scrub_runs_total{result=\"failed\"}"), 0.0);
    // Every sample is the appliance's own, and no label value is a secret.
    for line in after.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.starts_with("wormbox_"), "{line}");
    }
    assert!(!after.contains(app.admin_credential().split(':').nth(1).unwrap()));

    // Nothing but /metrics is served; the listener keeps serving after it.
    assert_eq!(get(addr, "/").await.0, 404);
    assert_eq!(get(addr, "/metrics/../debug").await.0, 404);
    scrape(addr).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_metrics_follow_a_checkpoint_and_a_clock_held_back() {
    let app = TestAppliance::start().await.unwrap();
    let addr = app.server().metrics_addr.unwrap();
    let mut compliance = app.compliance().await.unwrap();
    let signed = compliance
        .get_checkpoint(v1::GetCheckpointRequest { sequence: 0 })
        .await
        .unwrap()
        .into_inner()
        .checkpoint
        .unwrap();
    let text = scrape(addr).await;
    assert_eq!(must(&text, "wormbox_checkpoint_sequence"), signed.sequence as f64);
    assert!(must(&text, "wormbox_checkpoint_age_seconds") < 1.0, "{text}");
    assert_eq!(must(&text, "wormbox_mfa_verifications_total{outcome=\"accepted\"}"), 0.0);
    app.clock().advance(Duration::from_secs(90));
    let text = scrape(addr).await;
    let age = must(&text, "wormbox_checkpoint_age_seconds");
    assert!((90.0..91.0).contains(&age), "{age}");
    compliance.verify_integrity(v1::VerifyIntegrityRequest::default()).await.unwrap();
    let text = scrape(addr).await;
    assert_eq!(must(&text, "wormbox_integrity_verifications_total{result=\"passed\"}"), 1.0);
    assert_eq!(must(&text, "wormbox_integrity_verifications_total{result=\"failed\"}"), 0.0);
    assert_eq!(must(&text, "wormbox_clock_held_back"), 0.0);
    // The system clock set ten years ahead: the compliance clock holds back.
    app.clock().set(Timestamp(app.clock().now().0 + 3653 * 86_400_000_000));
    let text = scrape(addr).await;
    assert_eq!(must(&text, "wormbox_clock_held_back"), 1.0);
    assert!(must(&text, "wormbox_clock_held_back_seconds") > 9.0 * 365.0 * 86_400.0, "{text}");
}

/// `curl` against the listener over TLS: the HTTP status and the body.
fn curl(ca: &Path, port: u16, credential: Option<&str>) -> (String, String) {
    let mut command = Command::new("curl");
    command.args(["--silent", "--show-error", "--cacert"]).arg(ca).args(["--write-out", "\n%{http_code}"]);
    if let Some(credential) = credential {
        command.arg("--header").arg(format!("Authorization: Bearer {credential}"));
    }
    command.arg(format!("https://localhost:{port}/metrics"));
    let output = tokio::task::block_in_place(|| command.output()).expect("curl runs (scripts/dev.sh installs it)");
    let text = String::from_utf8(output.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_loopback_only_an_auditor_or_admin_reads_the_metrics_and_only_over_tls() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let mut config = WormboxdConfig::default();
    config.listen.addr = "127.0.0.1:0".parse().unwrap();
    config.s3.listen = "127.0.0.1:0".parse().unwrap();
    config.metrics.listen = "0.0.0.0:0".parse().unwrap();
    config.storage.data_dir = data.clone();
    config.storage.write_buffer_mib = 4;
    config.storage.block_cache_mib = 8;
    let refused = config.validate().unwrap_err().to_string();
    assert!(refused.contains("metrics.listen"), "no TLS, no metrics beyond loopback: {refused}");
    config.tls = Some(TlsConfig { cert: data.join("tls/server.pem"), key: data.join("tls/server.key") });
    let clock = Arc::new(ManualClock::new(TEST_EPOCH));
    let options = wormbox_server::init::InitOptions { tls_names: Vec::new(), tls_import: None };
    let done = wormbox_server::init::init(&config, clock.clone(), &options).await.unwrap();
    let ca = done.tls.unwrap().ca.unwrap();
    let server = wormbox_server::start(&config, clock).await.unwrap();
    let port = server.metrics_addr.unwrap().port();

    let pem = std::fs::read(&ca).unwrap();
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&pem))
        .domain_name("localhost");
    let channel = tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{}", server.addr.port()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let auth = wormbox_proto::BearerAuth::new(&done.admin_credential).unwrap();
    let mut admin = v1::admin_client::AdminClient::with_interceptor(channel, auth);
    let mut credential = Vec::new();
    for (name, role) in [("monitoring", v1::Role::Auditor), ("ingest", v1::Role::Writer)] {
        let request = v1::CreatePrincipalRequest { name: name.into(), role: role as i32, ..Default::default() };
        let created = admin.create_principal(request).await.unwrap().into_inner();
        credential.push(format!("{}:{}", created.principal.unwrap().access_key_id, created.secret));
    }
    let [auditor, writer] = <[String; 2]>::try_from(credential).unwrap();

    let (status, body) = curl(&ca, port, None);
    assert_eq!(status, "401", "{body}");
    assert!(!body.contains("wormbox_"), "{body}");
    let (status, body) = curl(&ca, port, Some(&writer));
    assert_eq!(status, "403", "{body}");
    assert!(!body.contains("wormbox_"), "{body}");
    let wrong = format!("{}:{}", auditor.split(':').next().unwrap(), "not-the-secret");
    assert_eq!(curl(&ca, port, Some(&wrong)).0, "401");
    assert_eq!(curl(&ca, port, Some("malformed")).0, "401");
    let (status, body) = curl(&ca, port, Some(&auditor));
    assert_eq!(status, "200", "{body}");
    assert!(body.contains("wormbox_ledger_sequence "), "{body}");
    assert!(!body.contains(auditor.split(':').nth(1).unwrap()));
    let (status, body) = curl(&ca, port, Some(&done.admin_credential));
    assert_eq!(status, "200", "{body}");

    // Plain HTTP to the TLS listener gets nothing.
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    assert!(!String::from_utf8_lossy(&raw).contains("wormbox_"));
    server.stop().await.unwrap();
}

/// The names PromQL sees in an exposition: each sample's.
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// Every `wormbox_…` name in `text`.
fn named_metrics(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("wormbox_") {
        let name: String =
            text[at..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
        names.insert(name);
    }
    names
}

/// promtool: as `scripts/monitoring/install.sh` unpacked it (and
/// `scripts/dev.sh` names it in `WORMBOX_PROMTOOL`), else on the PATH.
fn promtool(args: &[&str], dir: &Path) {
    let unpacked = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .map(|cache| cache.join("wormbox/prometheus/root/usr/bin/promtool"))
        .filter(|path| path.is_file());
    let program = std::env::var_os("WORMBOX_PROMTOOL")
        .map(std::path::PathBuf::from)
        .or(unpacked)
        .unwrap_or_else(|| "promtool".into());
    let output = tokio::task::block_in_place(|| Command::new(&program).args(args).current_dir(dir).output())
        .expect("promtool runs (scripts/monitoring/install.sh unpacks Debian's)");
    assert!(
        output.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_alert_rules_and_the_dashboard_name_only_exported_metrics_and_promtool_accepts_them() {
    // A replication rule, so that its per-rule metrics are exported too.
    let Some(target) = S3Target::start("seaweedfs") else { return };
    let _replica = target.bucket("replica", true).await;
    let app = appliance_replicating_to(&target).await.unwrap();
    // A call (so calls are counted) that signs a checkpoint (so its figures are there).
    let mut compliance = app.compliance().await.unwrap();
    compliance.get_checkpoint(v1::GetCheckpointRequest { sequence: 0 }).await.unwrap();
    let exported = sample_names(&scrape(app.server().metrics_addr.unwrap()).await);
    assert!(exported.contains("wormbox_replication_lag_entries"), "{exported:?}");

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("deploy/monitoring");
    let rules = std::fs::read_to_string(dir.join("wormbox-alerts.yml")).unwrap();
    let dashboard = std::fs::read_to_string(dir.join("wormbox-dashboard.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let expressions: Vec<String> = parsed["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|panel| panel["targets"].as_array().expect("each panel has targets").clone())
        .map(|target| target["expr"].as_str().expect("each target has an expression").to_owned())
        .collect();
    assert!(expressions.len() >= 20, "{expressions:?}");
    for text in [&rules, &dashboard] {
        let named = named_metrics(text);
        assert!(named.len() >= 10, "{named:?}");
        for name in named {
            assert!(exported.contains(&name), "{name} is not exported; exported: {exported:?}");
        }
    }

    // promtool checks the rules, runs their unit tests, and parses every
    // dashboard expression (as recording rules of a scratch file).
    promtool(&["check", "rules", "wormbox-alerts.yml"], &dir);
    promtool(&["test", "rules", "wormbox-alerts.test.yml"], &dir);
    let scratch = tempfile::tempdir().unwrap();
    let mut recorded = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in expressions.iter().enumerate() {
        recorded.push_str(&format!(
            "      - record: dashboard_panel_{i}\n        expr: {}\n",
            serde_json::to_string(expr).unwrap()
        ));
    }
    std::fs::write(scratch.path().join("dashboard.yml"), recorded).unwrap();
    promtool(&["check", "rules", "dashboard.yml"], scratch.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_cannot_hold_every_connection_of_the_metrics_listener() {
    let app = TestAppliance::start().await.unwrap();
    let addr = app.server().metrics_addr.unwrap();
    // Four connections that send nothing: the most one address may hold.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // Let the listener take all four before the fifth arrives.
    scrape_refused(addr).await;
    drop(idle);
    // Given back as they close: the next scrape is served.
    for attempt in 0.. {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw).await;
        if String::from_utf8_lossy(&raw).contains("wormbox_ledger_sequence") {
            break;
        }
        assert!(attempt < 100, "the listener did not serve again after the idle connections closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fifth connection from the same address is closed unanswered.
async fn scrape_refused(addr: SocketAddr) {
    for attempt in 0.. {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        let mut raw = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw)).await;
        if read.is_ok() && raw.is_empty() {
            return;
        }
        // The idle connections may not all be accepted yet.
        assert!(attempt < 50, "a fifth connection from one address was served: {}", String::from_utf8_lossy(&raw));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
