//! The compliance officer's commands through the `wormbox` binary: reports in
//! each format, the audit trail, checkpoints, an export verified without the
//! appliance (and caught when altered), and offline verification of a
//! stopped appliance's files, untouched and edited.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use wormbox_store::backend::Keyspace;
use wormbox_test_utils::{TestAppliance, tamper};

fn wormbox(endpoint: &str, credential: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wormbox"))
        .args(args)
        .env("WORMBOX_ENDPOINT", endpoint)
        .env("WORMBOX_CREDENTIAL", credential)
        .output()
        .expect("wormbox runs")
}

fn ok(output: &Output) -> String {
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn failed(output: &Output) -> String {
    assert!(!output.status.success(), "stdout: {}", String::from_utf8_lossy(&output.stdout));
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_audit_export_and_offline_verification_through_the_cli() {
    let mut app = TestAppliance::start().await.unwrap();
    let dir = app.temp_dir();
    let (endpoint, admin) = (app.endpoint(), app.admin_credential().to_owned());
    let run = |args: &[&str]| tokio::task::block_in_place(|| wormbox(&endpoint, &admin, args));

    ok(&run(&["bucket", "create", "vault", "--object-lock", "--default-retention", "compliance:30d"]));
    let body = dir.join("trade.csv");
    std::fs::write(&body, b"id,qty\n1,100\n").unwrap();
    ok(&run(&["put", "vault", "trades/1.csv", path(&body)]));
    ok(&run(&["put", "vault", "trades/2.csv", path(&body), "--legal-hold", "SEC-17"]));
    ok(&run(&["put", "vault", "mail/1.eml", path(&body), "--retention", "governance:2030-01-01"]));

    // Reports in each format, bound to a checkpoint.
    for format in ["csv", "json", "html"] {
        let out = dir.join(format!("report.{format}"));
        ok(&run(&["report", "retention", "--bucket", "vault", "--format", format, "--out", path(&out)]));
        let text = std::fs::read_to_string(&out).unwrap();
        match format {
            "csv" => {
                assert!(text.starts_with("bucket,key,version_id,"), "{text}");
                assert_eq!(text.lines().count(), 1 + 3, "header and three rows: {text}");
                assert!(text.contains(",SEC-17,protected,"), "{text}");
                let mut last = text.lines().last().unwrap().rsplit(',');
                assert_eq!(last.next(), Some("local"), "the last column says where the bytes live: {text}");
                let signature = last.next().unwrap();
                assert_eq!(signature.len(), 128, "every row names the checkpoint's signature");
            }
            "json" => {
                let doc: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(doc["rows"].as_array().unwrap().len(), 3);
                assert_eq!(doc["summary"]["holds"]["SEC-17"], 1);
                assert_eq!(doc["header"]["checkpoint"]["signature"].as_str().unwrap().len(), 128);
            }
            _ => {
                assert!(text.starts_with("<!DOCTYPE html>"));
                assert!(text.contains("<svg") && text.contains("SEC-17"));
            }
        }
    }
    let bad = failed(&run(&["report", "retention", "--format", "pdf"]));
    assert!(bad.contains("csv, json or html"), "{bad}");

    // The audit trail as CSV and JSON lines.
    let csv = ok(&run(&["audit", "--bucket", "vault", "--kind", "writes", "--csv"]));
    assert_eq!(csv.lines().count(), 1 + 3, "{csv}");
    ok(&run(&["hold", "place", "vault", "trades/1.csv", "--case", "FINRA-9"]));
    let lines = ok(&run(&["--json", "audit", "--kind", "retention"]));
    let entries: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(entries.len(), 1, "{lines}");
    assert_eq!(
        (entries[0]["kind"].as_str(), entries[0]["operation"].as_str()),
        (Some("retention"), Some("hold-placed"))
    );
    let holds = ok(&run(&["--json", "audit", "--prefix", "trades/2"]));
    assert!(holds.lines().all(|l| serde_json::from_str::<Value>(l).unwrap()["key"] == "trades/2.csv"));

    // A checkpoint and the public key, kept outside the appliance.
    let held = dir.join("checkpoint.json");
    let key = dir.join("appliance.pub");
    ok(&run(&["checkpoint", "--out", path(&held)]));
    ok(&run(&["admin", "pubkey", "--out", path(&key)]));
    assert!(ok(&run(&["verify", "--checkpoint", path(&held), "--public-key", path(&key)])).contains("no divergence"));

    // Export, verify offline, catch a flipped byte, refuse to overwrite, resume.
    let export = dir.join("export");
    ok(&run(&["export", "--bucket", "vault", "--out", path(&export)]));
    let check = ok(&run(&["verify-export", path(&export), "--public-key", path(&key)]));
    assert!(check.contains("3 versions"), "{check}");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(export.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["entries"].as_array().unwrap().len(), 3);
    let first_file = export.join("objects/00000000");
    let mut bytes = std::fs::read(&first_file).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&first_file, &bytes).unwrap();
    let caught = failed(&run(&["verify-export", path(&export)]));
    assert!(caught.contains("objects/00000000"), "{caught}");
    let refused = failed(&run(&["export", "--bucket", "vault", "--out", path(&export)]));
    assert!(refused.contains("refusing to overwrite"), "{refused}");
    // An interrupted export (state file present, an object missing) resumes.
    std::fs::write(export.join(".export-state.json"), r#"{"bucket":"vault","prefix":""}"#).unwrap();
    std::fs::remove_file(&first_file).unwrap();
    let incomplete = failed(&run(&["verify-export", path(&export)]));
    assert!(incomplete.contains("incomplete"), "{incomplete}");
    let resumed = ok(&run(&["export", "--bucket", "vault", "--out", path(&export)]));
    assert!(resumed.contains("1 fetched now"), "{resumed}");
    ok(&run(&["verify-export", path(&export), "--public-key", path(&key)]));
    let other_key = dir.join("other.pub");
    std::fs::write(&other_key, "ab".repeat(32)).unwrap();
    let wrong_key = failed(&run(&["verify-export", path(&export), "--public-key", path(&other_key)]));
    assert!(wrong_key.contains("signature does not verify"), "{wrong_key}");
    let not_ours = failed(&run(&["verify", "--public-key", path(&other_key)]));
    assert!(not_ours.contains("cannot be trusted"), "{not_ours}");

    // An auditor reads reports, not bytes.
    let auditor = ok(&run(&["--json", "principal", "create", "officer", "--role", "auditor"]));
    let auditor: Value = serde_json::from_str(&auditor).unwrap();
    let auditor = auditor["credential"].as_str().unwrap().to_owned();
    let as_auditor = |args: &[&str]| tokio::task::block_in_place(|| wormbox(&endpoint, &auditor, args));
    ok(&as_auditor(&["report", "retention", "--format", "csv"]));
    ok(&as_auditor(&["verify"]));
    assert!(failed(&as_auditor(&["get", "vault", "trades/1.csv"])).contains("ACCESS_DENIED"));

    // Offline, on the stopped appliance: untouched, then with an edited value.
    app.stop().await.unwrap();
    let data = app.data_dir().to_owned();
    let copy = dir.join("data-copy");
    assert!(Command::new("cp").args(["-a", path(&data), path(&copy)]).status().unwrap().success());
    let offline =
        ok(&run(&["verify", "--data-dir", path(&data), "--public-key", path(&key), "--checkpoint", path(&held)]));
    assert!(offline.contains("no divergence"), "{offline}");
    tamper::edit(
        &data.join("db"),
        Keyspace::Chunks,
        |_, v| tamper::contains(v, b"1,100"),
        |v| tamper::flip_in(v, b"1,100"),
    )
    .unwrap();
    let named = failed(&run(&["verify", "--data-dir", path(&data), "--public-key", path(&key)]));
    assert!(named.contains("bytes of vault/"), "{named}");
    let copy_ok = ok(&run(&["verify", "--data-dir", path(&copy), "--public-key", path(&key)]));
    assert!(copy_ok.contains("no divergence"), "{copy_ok}");
    let wrong = failed(&run(&["verify", "--data-dir", path(&copy), "--public-key", path(&other_key)]));
    assert!(wrong.contains("invalid signature"), "{wrong}");
}
