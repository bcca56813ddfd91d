//! The `wormbox` binary against a real appliance: the operator's round trip
//! (bucket, versioning, put from a file and stdin, versions, get, rm) and its
//! JSON output.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use wormbox_test_utils::TestAppliance;

fn wormbox(appliance: &TestAppliance, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wormbox"))
        .args(args)
        .env("WORMBOX_ENDPOINT", appliance.endpoint())
        .env("WORMBOX_CREDENTIAL", appliance.admin_credential())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wormbox runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn json(output: &Output) -> Value {
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_round_trip_through_the_cli() {
    let appliance = TestAppliance::start().await.unwrap();
    let dir = appliance.temp_dir();
    let file = dir.join("trade.txt");
    std::fs::write(&file, b"trade 1").unwrap();
    let run = |args: Vec<&str>, stdin: Option<&[u8]>| {
        let appliance = &appliance;
        tokio::task::block_in_place(|| wormbox(appliance, &args, stdin))
    };

    assert_eq!(json(&run(vec!["--json", "bucket", "create", "records"], None))["name"], "records");
    let bucket = json(&run(vec!["--json", "bucket", "versioning", "records", "enabled"], None));
    assert_eq!(bucket["versioning"], "Enabled");
    let v1 = json(&run(vec!["--json", "put", "records", "trade/1", file.to_str().unwrap()], None));
    let v2 = json(&run(vec!["--json", "put", "records", "trade/1", "-", "--meta", "desk=fx"], Some(b"trade 2")));
    assert_eq!(v1["size"], 7);
    assert_ne!(v1["version_id"], v2["version_id"]);

    let listed = json(&run(vec!["--json", "versions", "records"], None));
    let ids: Vec<&Value> = listed["versions"].as_array().unwrap().iter().map(|v| &v["version_id"]).collect();
    assert_eq!(ids, vec![&v2["version_id"], &v1["version_id"]]);

    let out = run(vec!["get", "records", "trade/1", "--version-id", v1["version_id"].as_str().unwrap()], None);
    assert!(out.status.success());
    assert_eq!(out.stdout, b"trade 1");
    let head = json(&run(vec!["--json", "head", "records", "trade/1"], None));
    assert_eq!(head["user_metadata"]["desk"], "fx");

    let marker = json(&run(vec!["--json", "rm", "records", "trade/1"], None));
    assert_eq!(marker["delete_marker"], true);
    let out = run(vec!["get", "records", "trade/1"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DELETE_MARKER"), "{}", String::from_utf8_lossy(&out.stderr));

    let wrong = run(vec!["put", "records", "x", "-", "--sha256", &"00".repeat(32)], Some(b"data"));
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("CHECKSUM_MISMATCH"));

    let created = json(&run(vec!["--json", "principal", "create", "auditor-1", "--role", "auditor"], None));
    let listed = json(&run(vec!["--json", "principal", "list"], None));
    assert!(listed.as_array().unwrap().iter().any(|p| p["access_key_id"] == created["access_key_id"]));
    assert!(!listed.to_string().contains(created["credential"].as_str().unwrap().split(':').nth(1).unwrap()));
}
