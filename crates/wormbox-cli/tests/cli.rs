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

/// S3 secrets through the CLI: `principal create --s3` and `principal
/// s3-key create|revoke` print a secret once; `principal list` says who has
/// one and never shows it.
#[tokio::test(flavor = "multi_thread")]
async fn s3_keys_through_the_cli_are_shown_once() {
    let appliance = TestAppliance::start().await.unwrap();
    let run = |args: Vec<&str>| {
        let appliance = &appliance;
        tokio::task::block_in_place(|| wormbox(appliance, &args, None))
    };

    let created = json(&run(vec!["--json", "principal", "create", "backup-app", "--role", "writer", "--s3"]));
    let key = created["access_key_id"].as_str().unwrap().to_owned();
    let first = created["s3_secret_access_key"].as_str().unwrap().to_owned();
    assert_eq!(first.len(), 40);
    let listed = json(&run(vec!["--json", "principal", "list"]));
    let row = listed.as_array().unwrap().iter().find(|p| p["access_key_id"] == key.as_str()).unwrap().clone();
    assert_eq!(row["has_s3_key"], true);
    assert!(!listed.to_string().contains(&first), "the list never shows an S3 secret");

    let again = run(vec!["principal", "s3-key", "create", &key]);
    assert!(!again.status.success(), "one at a time");
    assert!(String::from_utf8_lossy(&again.stderr).contains("revoke it first"));
    let revoked = json(&run(vec!["--json", "principal", "s3-key", "revoke", &key]));
    assert!(revoked["ledger_sequence"].as_u64().unwrap() > 0);
    let listed = json(&run(vec!["--json", "principal", "list"]));
    assert!(listed.as_array().unwrap().iter().any(|p| p["access_key_id"] == key.as_str() && p["has_s3_key"] == false));

    let out = run(vec!["principal", "s3-key", "create", &key]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("S3 access key id: {key}")) && text.contains("(shown once)"), "{text}");
    assert!(!text.contains(&first), "a new secret, not the revoked one");
}

/// MFA Delete through the CLI, with codes read from a simulated token on a
/// real pseudo-terminal (`--mfa serial:PATH#SERIAL`).
#[tokio::test(flavor = "multi_thread")]
async fn mfa_delete_through_the_cli_with_a_token_on_a_serial_line() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    let appliance = TestAppliance::start().await.unwrap();
    let token = wormbox_test_utils::SimToken::start(
        appliance.shared_clock(),
        "GAHT12345678",
        30,
        wormbox_tokensim::Fault::None,
        0,
    )
    .unwrap();
    let source = token.source();
    let run = |args: Vec<&str>| {
        let appliance = &appliance;
        tokio::task::block_in_place(|| wormbox(appliance, &args, None))
    };
    let step = || appliance.clock().advance(Duration::from_secs(30));

    let enrolled = json(&run(vec![
        "--json",
        "mfa",
        "enroll",
        "--serial",
        "GAHT12345678",
        "--seed-base32",
        wormbox_test_utils::TOKEN_SEED_BASE32,
    ]));
    assert_eq!(enrolled[0]["state"], "pending");
    assert!(!enrolled.to_string().contains(wormbox_test_utils::TOKEN_SEED_BASE32));

    // Activation reads two consecutive codes: the CLI waits for the display
    // to change while the test moves time, one virtual second per 100 ms.
    let moving = Arc::new(AtomicBool::new(true));
    let mover = {
        let (clock, moving) = (appliance.shared_clock(), Arc::clone(&moving));
        std::thread::spawn(move || {
            while moving.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                clock.advance(Duration::from_secs(1));
            }
        })
    };
    let activated = run(vec!["--json", "--mfa", &source, "mfa", "activate"]);
    moving.store(false, Ordering::SeqCst);
    mover.join().unwrap();
    assert_eq!(json(&activated)[0]["state"], "active");
    step();
    step();

    json(&run(vec!["--json", "bucket", "create", "boto"]));
    json(&run(vec!["--json", "bucket", "versioning", "boto", "enabled"]));
    let file = appliance.temp_dir().join("v.txt");
    std::fs::write(&file, b"v").unwrap();
    let v1 = json(&run(vec!["--json", "put", "boto", "k", file.to_str().unwrap()]));
    let v2 = json(&run(vec!["--json", "put", "boto", "k", file.to_str().unwrap()]));
    let on =
        json(&run(vec!["--json", "--mfa", &source, "bucket", "versioning", "boto", "enabled", "--mfa-delete", "on"]));
    assert_eq!(on["mfa_delete"], "Enabled");

    let v2_id = v2["version_id"].as_str().unwrap();
    let refused = run(vec!["rm", "boto", "k", "--version-id", v2_id]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("MFA_REQUIRED"));
    // A marker needs no code and reads none.
    let marker = json(&run(vec!["--json", "--mfa", "serial:/nonexistent#X", "rm", "boto", "k"]));
    assert_eq!(marker["delete_marker"], true);
    step();
    let gone = json(&run(vec!["--json", "--mfa", &source, "rm", "boto", "k", "--version-id", v2_id]));
    assert_eq!(gone["version_id"], v2["version_id"]);
    // Within the same step the token shows the same code: it is spent.
    let v1_id = v1["version_id"].as_str().unwrap();
    let replayed = run(vec!["--mfa", &source, "rm", "boto", "k", "--version-id", v1_id]);
    assert!(String::from_utf8_lossy(&replayed.stderr).contains("MFA_REPLAYED"));
    // A token that is not plugged in is a clear client error.
    let missing = run(vec!["--mfa", "serial:/nonexistent/tty", "rm", "boto", "k", "--version-id", v1_id]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot open token"));

    step();
    let off =
        json(&run(vec!["--json", "--mfa", &source, "bucket", "versioning", "boto", "enabled", "--mfa-delete", "off"]));
    assert_eq!(off["mfa_delete"], "Disabled");
    json(&run(vec!["--json", "bucket", "versioning", "boto", "suspended"]));
    let listed = json(&run(vec!["--json", "mfa", "list"]));
    assert_eq!(listed[0]["serial"], "GAHT12345678");
    assert_eq!(listed[0]["state"], "active");
}

/// `delete-objects`: versions given as `--version KEY ID` pairs and keys as
/// markers in one request, or S3's JSON shape on stdin; a refused entry is
/// reported with its reason and makes the command exit non-zero.
#[tokio::test(flavor = "multi_thread")]
async fn delete_objects_through_the_cli() {
    let appliance = TestAppliance::start().await.unwrap();
    let run = |args: Vec<&str>, stdin: Option<&[u8]>| {
        let appliance = &appliance;
        tokio::task::block_in_place(|| wormbox(appliance, &args, stdin))
    };
    json(&run(vec!["--json", "bucket", "create", "records"], None));
    json(&run(vec!["--json", "bucket", "versioning", "records", "enabled"], None));
    let v1 = json(&run(vec!["--json", "put", "records", "k", "-"], Some(b"1")));
    let v2 = json(&run(vec!["--json", "put", "records", "k", "-"], Some(b"2")));
    let (v1, v2) = (v1["version_id"].as_str().unwrap(), v2["version_id"].as_str().unwrap());

    let reply = json(&run(
        vec!["--json", "delete-objects", "records", "other", "--version", "k", v1, "--version", "k", v2],
        None,
    ));
    let deleted = reply["deleted"].as_array().unwrap();
    assert_eq!((deleted.len(), reply["errors"].as_array().unwrap().len()), (3, 0));
    assert_eq!((deleted[0]["key"].as_str(), deleted[0]["delete_marker"].as_bool()), (Some("other"), Some(true)));
    assert_eq!(deleted[1]["version_id"], v1);
    assert_eq!(deleted[2]["version_id"], v2);

    let document = format!(r#"{{"Objects": [{{"Key": "k", "VersionId": "{v1}"}}], "Quiet": true}}"#);
    let refused = run(vec!["delete-objects", "records", "--from-json", "-"], Some(document.as_bytes()));
    assert!(!refused.status.success());
    let stdout = String::from_utf8_lossy(&refused.stdout);
    assert!(stdout.contains("NO_SUCH_VERSION") && stdout.contains(v1), "{stdout}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("1 of 1 deletes were refused"));
}

/// Runs `wormbox ARGS` with a terminal for its output (util-linux's
/// `script` gives it a pseudo-terminal 120 columns wide) and returns what
/// the terminal showed, or `None` where `script` is missing.
fn on_a_terminal(appliance: &TestAppliance, args: &[&str]) -> Option<String> {
    let command = format!("stty cols 120 rows 40; {} {}", env!("CARGO_BIN_EXE_wormbox"), args.join(" "));
    let out = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("WORMBOX_ENDPOINT", appliance.endpoint())
        .env("WORMBOX_CREDENTIAL", appliance.admin_credential())
        .env("TERM", "xterm-256color")
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(out) => {
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "CI has util-linux's script: {e}");
            eprintln!("skipped: no `script` to give the CLI a terminal ({e})");
            None
        }
    }
}

/// On a terminal, moving bytes draws a bar with the amount, the rate and the
/// time left; with `--quiet`, or when stderr is not a terminal, nothing.
#[tokio::test(flavor = "multi_thread")]
async fn progress_bars_are_drawn_on_a_terminal_only_and_never_with_quiet() {
    let appliance = TestAppliance::start().await.unwrap();
    let dir = appliance.temp_dir();
    let file = dir.join("big.bin");
    std::fs::write(&file, vec![7u8; 24 << 20]).unwrap();
    let (file, copy) = (file.to_str().unwrap().to_owned(), dir.join("copy.bin").to_str().unwrap().to_owned());
    tokio::task::block_in_place(|| {
        assert!(wormbox(&appliance, &["bucket", "create", "big"], None).status.success());
        let Some(shown) = on_a_terminal(&appliance, &["put", "big", "blob", &file]) else { return };
        assert!(shown.contains("storing") && shown.contains("24.00 MiB/24.00 MiB"), "{shown}");
        assert!(shown.contains("MiB/s") && shown.contains("left"), "the rate and the time left: {shown}");
        let shown = on_a_terminal(&appliance, &["get", "big", "blob", "-o", &copy]).unwrap();
        assert!(shown.contains("fetching") && shown.contains("24.00 MiB/24.00 MiB"), "{shown}");
        assert_eq!(std::fs::read(&copy).unwrap().len(), 24 << 20);
        let quiet = on_a_terminal(&appliance, &["--quiet", "get", "big", "blob", "-o", &copy]).unwrap();
        assert!(!quiet.contains("fetching") && !quiet.contains("MiB"), "{quiet}");
        // Not a terminal: stderr stays empty, stdout holds only the answer.
        let piped = wormbox(&appliance, &["put", "big", "blob", &file], None);
        assert!(piped.status.success());
        assert!(piped.stderr.is_empty(), "{}", String::from_utf8_lossy(&piped.stderr));
    });
}

/// `wormbox status` shows the appliance on one screen, to admins and
/// auditors only: the disk and its reserve, the ledger and its checkpoint,
/// the clock, the scrub's last result, MFA lockouts.
#[tokio::test(flavor = "multi_thread")]
async fn status_shows_the_appliance_on_one_screen() {
    let appliance = TestAppliance::start_with(|config| config.evidence.scrub_interval_seconds = 1).await.unwrap();
    let writer = appliance.principal("writer-1", wormbox_proto::v1::Role::Writer).await.unwrap();
    let auditor = appliance.principal("auditor-1", wormbox_proto::v1::Role::Auditor).await.unwrap();
    tokio::task::block_in_place(|| {
        assert!(wormbox(&appliance, &["checkpoint"], None).status.success());
        // The scrub runs every second of real time: wait for one to finish.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            let status = json(&wormbox(&appliance, &["--json", "status"], None));
            if status["scrub"]["last"].is_object() {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "no scrub finished: {status}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
        assert!(status["disk"]["total_bytes"].as_u64().unwrap() > 0, "{status}");
        assert!(status["disk"]["reserve_bytes"].as_u64().unwrap() > 0, "{status}");
        assert_eq!(status["disk"]["writes_refused"], false);
        assert!(status["ledger_sequence"].as_u64().unwrap() >= status["last_checkpoint"]["sequence"].as_u64().unwrap());
        assert_eq!(status["writer_responsive"], true);
        assert_eq!(status["clock"]["held_back_seconds"], 0);
        assert_eq!(status["scrub"]["interval_seconds"], 1);
        assert_eq!(status["scrub"]["last"]["ok"], true, "{status}");
        assert_eq!((status["devices_locked_out"].as_u64(), status["lockouts"].as_u64()), (Some(0), Some(0)));
        let out = wormbox(&appliance, &["status"], None);
        let text = String::from_utf8_lossy(&out.stdout);
        for line in ["disk ", "ledger ", "clock ", "scrub ", "replication  no rules", "mfa "] {
            assert!(text.lines().any(|l| l.starts_with(line)), "no `{line}` line in:\n{text}");
        }
        assert!(text.contains("new data taken") && text.contains("last ended") && text.contains(": ok"), "{text}");

        let as_role = |credential: &str| {
            Command::new(env!("CARGO_BIN_EXE_wormbox"))
                .args(["status"])
                .env("WORMBOX_ENDPOINT", appliance.endpoint())
                .env("WORMBOX_CREDENTIAL", credential)
                .output()
                .unwrap()
        };
        assert!(as_role(&auditor).status.success());
        let refused = as_role(&writer);
        assert!(!refused.status.success());
        assert!(String::from_utf8_lossy(&refused.stderr).contains("ACCESS_DENIED"));
    });
}
