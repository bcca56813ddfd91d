//! `wormbox replica status` and `wormbox verify --replica RULE` through the
//! binary, against an appliance replicating to a real SeaweedFS: the status
//! as a table and as JSON, a faithful replica verified, and a replica
//! version deleted behind Wormbox's back named with a non-zero exit.

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use wormbox_test_utils::s3_targets::S3Target;

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

#[tokio::test(flavor = "multi_thread")]
async fn replica_status_and_verify_replica_through_the_cli() {
    let Some(target) = S3Target::start("seaweedfs") else { return };
    let replica = target.bucket("replica", true).await;
    let app = wormbox_test_utils::s3_targets::appliance_replicating_to(&target).await.unwrap();
    let (endpoint, admin) = (app.endpoint(), app.admin_credential().to_owned());
    let run = |args: &[&str]| tokio::task::block_in_place(|| wormbox(&endpoint, &admin, args));

    ok(&run(&["bucket", "create", "records", "--object-lock"]));
    let body = app.temp_dir().join("plain.txt");
    std::fs::write(&body, b"an unlocked record").unwrap();
    ok(&run(&["put", "records", "plain.txt", body.to_str().unwrap()]));
    ok(&run(&["checkpoint"]));

    let mut status = Value::Null;
    for _ in 0..600 {
        status = serde_json::from_str(&ok(&run(&["--json", "replica", "status"]))).unwrap();
        if status[0]["lag_entries"] == 0 && status[0]["checkpoints_copied"].as_u64() >= Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status[0]["name"], "dr", "{status}");
    assert_eq!((&status[0]["lag_entries"], &status[0]["lag_seconds"]), (&Value::from(0), &Value::from(0)), "{status}");
    assert_eq!((&status[0]["versions_copied"], &status[0]["mode"]), (&Value::from(1), &Value::from("async")));
    assert_eq!(status[0]["last_error"], Value::Null);
    let table = ok(&run(&["replica", "status"]));
    assert!(table.starts_with("RULE") && table.lines().nth(1).unwrap().starts_with("dr "), "{table}");
    assert!(table.contains("records") && table.contains("/replica"), "{table}");

    let verified = ok(&run(&["verify", "--replica", "dr"]));
    assert!(verified.starts_with("OK: ") && verified.contains("1 versions"), "{verified}");
    let report: Value = serde_json::from_str(&ok(&run(&["--json", "verify", "--replica", "dr"]))).unwrap();
    assert_eq!((&report["ok"], &report["versions_checked"]), (&Value::Bool(true), &Value::from(1)), "{report}");

    // The unlocked copy deleted with the replica's own S3 API.
    let page = replica.list_object_versions(Some("plain.txt"), None, None, 10).await.unwrap();
    let copy = page.entries[0].version_id.clone();
    replica.delete_object("plain.txt", Some(&copy), None).await.unwrap();
    let named = failed(&run(&["verify", "--replica", "dr"]));
    assert!(named.contains("DIVERGENCE missing-version: `plain.txt`"), "{named}");
    assert!(named.contains(&copy), "the copy is named: {named}");
    let unknown = failed(&run(&["verify", "--replica", "nope"]));
    assert!(unknown.contains("InvalidArgument") && unknown.contains("nope"), "{unknown}");
}
