//! Golden files of the retention report in each format, on a small fixed
//! archive (a manual clock makes ids and times fixed; the checkpoint's
//! signature is a fixed stand-in). Regenerate with `UPDATE_EXPECT=1`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wormbox_model::{BucketName, Clock, ManualClock, ObjectKey, Role, Timestamp, VersioningState};
use wormbox_reports::retention::{self, SummaryBuilder};
use wormbox_reports::{CheckpointFile, ReportHeader, Row, Status};
use wormbox_store::backend::MemBackend;
use wormbox_store::retention::{Retention, RetentionMode};
use wormbox_store::{Actor, NewObject, Store, StoreOptions};

const DAY: Duration = Duration::from_secs(86_400);

async fn archive() -> (Store, Arc<ManualClock>) {
    // 2026-11-27T00:00:00Z
    let clock = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let store = Store::open(Arc::new(MemBackend::new()), dyn_clock, StoreOptions::default()).unwrap();
    let admin = Actor { access_key: "WBADMIN00000000000".to_owned(), role: Role::Admin };
    let ledger = BucketName::new("ledger-2026").unwrap();
    let scratch = BucketName::new("scratch").unwrap();
    store.create_bucket_with_lock(&admin, ledger.clone(), true).await.unwrap();
    store.create_bucket(&admin, scratch.clone()).await.unwrap();
    store.set_versioning(&admin, scratch.clone(), VersioningState::Enabled).await.unwrap();
    let now = clock.now();
    let put = |bucket: &BucketName, key: &str, body: &str, retention: Option<Retention>, hold: Option<&str>| {
        let object = NewObject {
            retention,
            legal_hold: hold.map(str::to_owned),
            content_type: "text/plain".into(),
            ..NewObject::default()
        };
        let (store, admin, bucket) = (store.clone(), admin.clone(), bucket.clone());
        let (key, body) = (ObjectKey::new(key).unwrap(), body.as_bytes().to_vec());
        clock.advance(Duration::from_secs(60));
        async move { store.put_object(&admin, bucket, key, object, body).await.unwrap() }
    };
    let until = |days: u64| Timestamp(now.0 + (days * 86_400 * 1_000_000) as i64);
    let compliance = |days| Some(Retention { mode: RetentionMode::Compliance, until: until(days) });
    let governance = |days| Some(Retention { mode: RetentionMode::Governance, until: until(days) });
    put(&ledger, "trades/2026-11-26.csv", "id,qty\n1,100\n", compliance(2555), None).await;
    put(&ledger, "trades/2026-11-27.csv", "id,qty\n2,50\n", compliance(20), None).await;
    put(&ledger, "mail/0001.eml", "From: a@example.com\n", governance(60), Some("SEC-2026-17")).await;
    put(&ledger, "mail/0002.eml", "From: \"b, c\" <b@example.com>\n", governance(2), Some("SEC-2026-17")).await;
    put(&ledger, "mail/0003.eml", "From: d@example.com\n", None, Some("FINRA-88")).await;
    put(&scratch, "=cmd|' /C calc'!A0", "formula in a key", None, None).await;
    put(&scratch, "tmp/<b>note</b>.txt", "v1", None, None).await;
    put(&scratch, "tmp/<b>note</b>.txt", "v2", None, None).await;
    store.delete_object(&admin, scratch.clone(), ObjectKey::new("tmp/<b>note</b>.txt").unwrap(), None).await.unwrap();
    // Five days later: the 2-day governance retention has passed.
    clock.advance(5 * DAY);
    (store, clock)
}

fn checkpoint(sequence: u64) -> CheckpointFile {
    CheckpointFile {
        sequence,
        head: "ab".repeat(32),
        time_unix_micros: 1_796_169_600_000_000,
        time: Timestamp(1_796_169_600_000_000).to_rfc3339(),
        signature: "5e".repeat(64),
        key_id: "0123456789abcdef".to_owned(),
        tree_root: None,
    }
}

async fn report() -> (ReportHeader, Vec<Row>, retention::Summary) {
    let (store, clock) = archive().await;
    let now = clock.now();
    let buckets = retention::buckets(&store, "").unwrap();
    let mut rows = Vec::new();
    retention::for_each_row(&store, &buckets, "", now, |row| {
        rows.push(row);
        true
    })
    .unwrap();
    let mut summary = SummaryBuilder::new(now);
    for row in &rows {
        summary.add(row);
    }
    let header = ReportHeader {
        bucket: String::new(),
        prefix: String::new(),
        now_unix_micros: now.0,
        total_rows: rows.len() as u64,
        checkpoint: checkpoint(12),
        public_key: "cd".repeat(32),
    };
    (header, rows, summary.finish(Some(checkpoint(12))))
}

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} differs from the golden file; if the change is intended, rerun with UPDATE_EXPECT=1\n{actual}",
        path.display()
    );
}

#[tokio::test]
async fn the_report_matches_its_golden_files_in_every_format() {
    let (header, rows, summary) = report().await;
    golden("retention.csv", &retention::to_csv(&header, &rows));
    golden("retention.json", &retention::to_json(&header, &rows, &summary));
    golden("retention.html", &retention::to_html(&header, &rows, &summary));
}

#[tokio::test]
async fn statuses_and_summary_follow_enforcement() {
    let (_, rows, summary) = report().await;
    let status = |key: &str| rows.iter().find(|r| r.key == key && !r.is_delete_marker).unwrap().status;
    assert_eq!(status("trades/2026-11-26.csv"), Status::Protected);
    assert_eq!(status("mail/0001.eml"), Status::Protected);
    // Retention passed but the hold keeps it.
    assert_eq!(status("mail/0002.eml"), Status::Held);
    assert_eq!(status("mail/0003.eml"), Status::Held);
    assert_eq!(status("=cmd|' /C calc'!A0"), Status::Unprotected);
    assert_eq!(rows.iter().filter(|r| r.status == Status::Marker).count(), 1);
    assert_eq!(summary.delete_markers, 1);
    assert_eq!(summary.holds.get("SEC-2026-17"), Some(&2));
    assert_eq!(summary.holds.get("FINRA-88"), Some(&1));
    // 20-day compliance (15 days left) and 60-day governance (55 left).
    assert_eq!((summary.expiring_30_days, summary.expiring_90_days, summary.expiring_365_days), (1, 2, 2));
    assert_eq!(summary.unprotected, 3);
    assert_eq!(summary.expired, 0);
    assert_eq!(summary.expirations.values().sum::<u64>(), 3);
    let ledger_compliance =
        summary.totals.iter().find(|t| t.bucket == "ledger-2026" && t.mode == "compliance").unwrap();
    assert_eq!(ledger_compliance.versions, 2);
}

#[tokio::test]
async fn the_html_page_is_self_contained_and_escapes_archive_values() {
    let (header, rows, summary) = report().await;
    let html = retention::to_html(&header, &rows, &summary);
    assert!(html.starts_with("<!DOCTYPE html>"));
    for external in ["src=", "href=", "<link", "<script", "@import", "url("] {
        assert!(!html.contains(external), "the page must not load anything ({external})");
    }
    assert!(html.contains("tmp/&lt;b&gt;note&lt;/b&gt;.txt"));
    assert!(!html.contains("<b>note</b>"));
    assert_eq!(html.matches("<svg").count(), 2);
    assert!(html.contains(&header.checkpoint.signature), "the page names the checkpoint's signature");
    let csv = retention::to_csv(&header, &rows);
    // A key that looks like a spreadsheet formula is defused.
    assert!(csv.contains(",\"'=cmd|' /C calc'!A0\","), "{csv}");
}

/// Headless Chromium, if the machine has it: CI installs
/// `chromium-headless-shell`; elsewhere the tests say they skipped.
fn chromium() -> Option<&'static str> {
    let browser = ["chromium-headless-shell", "chromium"]
        .into_iter()
        .find(|b| std::process::Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()));
    if browser.is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI must install chromium-headless-shell");
        eprintln!("skipped: no headless Chromium on this machine");
    }
    browser
}

/// Opens `html` in `browser` with a window `width` pixels wide and returns
/// the DOM after load, and the browser's log.
fn open_in(browser: &str, html: &str, width: u32) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, html).unwrap();
    let output = std::process::Command::new(browser)
        // No sandbox as root in CI; nothing in the background reaches for a
        // network the machine does not have.
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--window-size={width},1000"))
        .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{log}");
    (String::from_utf8_lossy(&output.stdout).into_owned(), log)
}

/// The page opens in headless Chromium without errors: a browser parses it,
/// draws both charts, and logs no console message, refused load or failure.
#[tokio::test]
async fn the_html_page_opens_in_headless_chromium_without_errors() {
    let Some(browser) = chromium() else { return };
    let (header, rows, summary) = report().await;
    let (dom, log) = open_in(browser, &retention::to_html(&header, &rows, &summary), 1280);
    assert!(dom.contains("<h1>Retention report: all buckets</h1>"), "{dom}");
    assert_eq!(dom.matches("<svg").count(), 2, "{dom}");
    assert_eq!(dom.matches("<rect").count(), summary.expirations.len() + summary.holds.len());
    for bad in ["CONSOLE", "Uncaught", "Refused", "Failed to load", "Content Security Policy"] {
        assert!(!log.contains(bad), "Chromium reported `{bad}`:\n{log}");
    }
}

/// The figures a compliance officer looks for first come first, grouped,
/// with modes in the proto's lower case; a digest is abbreviated with the
/// whole in its tooltip; every page printed names the checkpoint.
#[tokio::test]
async fn the_page_leads_with_what_is_protected_and_formats_its_figures() {
    let (header, rows, mut summary) = report().await;
    assert_eq!((summary.protected, summary.held, summary.expired + summary.unprotected), (3, 2, 3));
    let protected_bytes: u64 =
        rows.iter().filter(|r| matches!(r.status, Status::Protected | Status::Held)).map(|r| r.size).sum();
    assert_eq!(summary.bytes_protected, protected_bytes);
    summary.bytes_protected = 1_234_567_890;
    let html = retention::to_html(&header, &rows, &summary);
    let first = html.find("Versions under retention").unwrap();
    assert!(first < html.find("<h2>").unwrap(), "the protection figures open the page");
    assert!(html.contains("1,234,567,890 bytes (1.1 GiB)"), "{html}");
    assert!(!html.contains(">COMPLIANCE<") && !html.contains(">NONE<"), "modes are lower case");
    assert!(html.contains("<td>compliance</td>") && html.contains("<td>none</td>"));
    let sha = &rows.iter().find(|r| !r.sha256.is_empty()).unwrap().sha256;
    assert!(html.contains(&format!("<code title=\"{sha}\">{}…</code>", &sha[..12])));
    assert!(html.contains("@page") && html.contains("counter(pages)"));
    assert!(html.contains(&format!("checkpoint {} signed", header.checkpoint.sequence)));
    assert!(retention::to_csv(&header, &rows).contains(sha.as_str()), "the CSV keeps whole digests");
}

/// At 1280 and 1920 pixels no element of the page reaches past the
/// window's right edge, with the longest values the archive allows (keys of
/// 1,024 characters without a space, 63-character bucket names, many holds).
/// The page itself runs no script (its policy forbids it): a copy without
/// the policy, with a measuring script appended, is what the test opens.
#[tokio::test]
async fn the_html_page_fits_1280_pixels_in_headless_chromium() {
    let Some(browser) = chromium() else { return };
    let (header, mut rows, summary) = report().await;
    let mut long = rows.iter().find(|r| r.status == Status::Held).unwrap().clone();
    long.bucket = "b".repeat(63);
    long.key = "k".repeat(1024);
    long.legal_holds = (0..12).map(|n| format!("CASE-{n:04}-{}", "x".repeat(40))).collect();
    long.bytes_location = format!("replica:{}", "r".repeat(64));
    long.size = u64::MAX;
    rows.push(long);
    let html = retention::to_html(&header, &rows, &summary);
    let policy = html.lines().find(|l| l.contains("Content-Security-Policy")).unwrap();
    let measure = "<script>\n\
        const w = document.documentElement.clientWidth;\n\
        const over = [];\n\
        for (const el of document.querySelectorAll('body *')) {\n\
          const r = el.getBoundingClientRect();\n\
          if (r.right > w + 0.5) over.push(el.tagName + ' ' + Math.round(r.right) + ' ' + (el.textContent || '').slice(0, 40));\n\
        }\n\
        if (document.documentElement.scrollWidth > w) over.push('page ' + document.documentElement.scrollWidth);\n\
        document.body.setAttribute('data-width', String(w));\n\
        document.body.setAttribute('data-overflow', over.length ? over.join(' | ') : 'none');\n\
        </script>\n</body>";
    let measured = html.replace(policy, "").replace("</body>", measure);
    for width in [1280, 1920] {
        let (dom, _) = open_in(browser, &measured, width);
        assert!(dom.contains("data-width=\""), "the measuring script did not run:\n{dom}");
        assert!(dom.contains("data-overflow=\"none\""), "at {width} px: {}", attribute(&dom, "data-overflow"));
    }
}

fn attribute<'a>(dom: &'a str, name: &str) -> &'a str {
    let start = dom.find(&format!("{name}=\"")).map(|i| i + name.len() + 2).unwrap_or(0);
    &dom[start..start + dom[start..].find('"').unwrap_or(0)]
}
