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

/// The venv `scripts/s3-clients/install.sh` makes (with `cryptography`),
/// found by the script's rule; `None` (a skip, said so) where it is not
/// installed, unless the run requires it.
fn verifier_python() -> Option<std::path::PathBuf> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let venv = var("WORMBOX_S3_CLIENTS").map(std::path::PathBuf::from).unwrap_or_else(|| {
        let cache = var("WORMBOX_BUILD_CACHE").map(std::path::PathBuf::from).unwrap_or_else(|| {
            let base = var("XDG_CACHE_HOME").map(std::path::PathBuf::from).unwrap_or_else(|| {
                std::path::PathBuf::from(var("HOME").unwrap_or_else(|| "/root".into())).join(".cache")
            });
            base.join("wormbox")
        });
        cache.join("s3-clients-venv")
    });
    let python = venv.join("bin/python");
    let ready = python.exists()
        && Command::new(&python).args(["-c", "import cryptography"]).status().is_ok_and(|s| s.success());
    if ready {
        return Some(python);
    }
    let why = format!("{} with `cryptography` is missing (run scripts/s3-clients/install.sh)", python.display());
    assert!(var("WORMBOX_S3_CLIENTS_REQUIRED").is_none(), "WORMBOX_S3_CLIENTS_REQUIRED is set but {why}");
    println!("SKIPPED: the independent proof verifier did not run: {why}");
    None
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
    assert!(check.contains("3 versions") && check.contains("3 inclusion proofs"), "{check}");
    // Each version's proof also verifies alone, offline, with its bytes.
    let (proof_0, proof_1) = (export.join("proofs/00000000.json"), export.join("proofs/00000001.json"));
    let alone = ok(&run(&[
        "verify-proof",
        path(&proof_1),
        "--public-key",
        path(&key),
        "--bytes",
        path(&export.join("objects/00000001")),
    ]));
    assert!(alone.contains("the bytes given match"), "{alone}");
    // Another version's proof in its place is caught, and so is a changed tile.
    let kept_proof = std::fs::read(&proof_0).unwrap();
    std::fs::copy(&proof_1, &proof_0).unwrap();
    let swapped = failed(&run(&["verify-export", path(&export), "--public-key", path(&key)]));
    assert!(swapped.contains("proofs/00000000.json"), "{swapped}");
    std::fs::write(&proof_0, &kept_proof).unwrap();
    let mut tile = export.join("tlog/tile/0");
    while tile.is_dir() {
        tile = std::fs::read_dir(&tile).unwrap().next().unwrap().unwrap().path();
    }
    let kept_tile = std::fs::read(&tile).unwrap();
    let mut changed = kept_tile.clone();
    changed[5] ^= 1;
    std::fs::write(&tile, &changed).unwrap();
    let caught = failed(&run(&["verify-export", path(&export), "--public-key", path(&key)]));
    assert!(caught.contains("tlog/") && caught.contains("tile/0/"), "{caught}");
    std::fs::write(&tile, &kept_tile).unwrap();
    // Claiming the format before proofs, to skip them, is caught; so is a
    // file among the tiles that no tile path names.
    let manifest_file = export.join("manifest.json");
    let kept_manifest = std::fs::read_to_string(&manifest_file).unwrap();
    std::fs::write(&manifest_file, kept_manifest.replace("wormbox-export-v2", "wormbox-export-v1")).unwrap();
    let downgraded = failed(&run(&["verify-export", path(&export), "--public-key", path(&key)]));
    assert!(downgraded.contains("says wormbox-export-v1"), "{downgraded}");
    std::fs::write(&manifest_file, &kept_manifest).unwrap();
    std::fs::write(export.join("tlog/tile/stray"), b"x").unwrap();
    let stray = failed(&run(&["verify-export", path(&export), "--public-key", path(&key)]));
    assert!(stray.contains("is not a tile of the checkpoint's tree"), "{stray}");
    std::fs::remove_file(export.join("tlog/tile/stray")).unwrap();
    ok(&run(&["verify-export", path(&export), "--public-key", path(&key)]));
    let note = std::fs::read_to_string(export.join("tlog/checkpoint")).unwrap();
    assert!(note.starts_with("wormbox.invalid/"), "{note}");
    // The independent verifier checks every version's proof with its bytes.
    if let Some(python) = verifier_python() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/verify_proof.py");
        for n in 0..3 {
            let (proof, object) = (export.join(format!("proofs/{n:08}.json")), export.join(format!("objects/{n:08}")));
            let said = ok(&Command::new(&python)
                .arg(&script)
                .args([path(&proof), "--public-key", path(&key), "--bytes", path(&object)])
                .output()
                .unwrap());
            assert!(said.contains("the bytes match its SHA-256"), "{said}");
        }
    }
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

/// A regulator checks one record without trusting the appliance: a proof
/// against a checkpoint kept outside, checked offline with a key obtained
/// elsewhere, and the record's bytes; every edit of the proof file is caught,
/// and a later tree is shown to extend the kept one.
#[tokio::test(flavor = "multi_thread")]
async fn merkle_proofs_through_the_cli_verify_offline_and_catch_every_edit() {
    let app = TestAppliance::start().await.unwrap();
    let dir = app.temp_dir();
    let (endpoint, admin) = (app.endpoint(), app.admin_credential().to_owned());
    let run = |args: &[&str]| tokio::task::block_in_place(|| wormbox(&endpoint, &admin, args));
    let file = |name: &str| dir.join(name);

    ok(&run(&["bucket", "create", "vault", "--object-lock"]));
    let body = file("trade.csv");
    std::fs::write(&body, b"id,qty\n1,100\n").unwrap();
    let put: Value = serde_json::from_str(&ok(&run(&["--json", "put", "vault", "trades/1.csv", path(&body)]))).unwrap();
    let version = put["version_id"].as_str().unwrap().to_owned();
    for i in 2..6 {
        ok(&run(&["put", "vault", &format!("trades/{i}.csv"), path(&body)]));
    }
    let (held, key, note) = (file("held.json"), file("appliance.pub"), file("held.note"));
    let said = ok(&run(&["checkpoint", "--out", path(&held), "--note", path(&note)]));
    assert!(said.contains("verifier key wormbox.invalid/"), "{said}");
    ok(&run(&["admin", "pubkey", "--out", path(&key)]));
    // The note is the same statement as the JSON: its size and root.
    let held_doc: Value = serde_json::from_str(&std::fs::read_to_string(&held).unwrap()).unwrap();
    let note_text = std::fs::read_to_string(&note).unwrap();
    let mut lines = note_text.lines();
    assert!(lines.next().unwrap().starts_with("wormbox.invalid/"), "{note_text}");
    assert_eq!(lines.next().unwrap(), held_doc["sequence"].to_string(), "{note_text}");
    let root = data_encoding::BASE64.decode(lines.next().unwrap().as_bytes()).unwrap();
    assert_eq!(hex::encode(root), held_doc["tree_root"].as_str().unwrap());

    let proof = file("proof.json");
    let said = ok(&run(&[
        "prove",
        "vault",
        "trades/1.csv",
        "--version-id",
        &version,
        "--checkpoint",
        path(&held),
        "--out",
        path(&proof),
    ]));
    assert!(said.contains("version-written vault/trades/1.csv"), "{said}");
    // Offline: the proof alone, the key kept, and the bytes.
    let check = ok(&run(&["verify-proof", path(&proof), "--public-key", path(&key), "--bytes", path(&body)]));
    assert!(check.starts_with("ok: ledger entry"), "{check}");
    assert!(check.contains("the bytes given match its SHA-256"), "{check}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&proof).unwrap()).unwrap();
    assert_eq!(doc["described"]["sha256"], put["sha256"]);
    assert_eq!(doc["ledger_sequence"], put["ledger_sequence"]);

    // Every edit is caught: the path, the entry (with its description made
    // to agree or not), the bytes, the checkpoint's root, the key.
    let edited = |name: &str, edit: &dyn Fn(&mut Value)| {
        let mut doc = doc.clone();
        edit(&mut doc);
        let out = file(name);
        std::fs::write(&out, serde_json::to_vec(&doc).unwrap()).unwrap();
        failed(&run(&["verify-proof", path(&out), "--public-key", path(&key)]))
    };
    let flip = |hex: &str| {
        let mut bytes = hex::decode(hex).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        hex::encode(bytes)
    };
    let said = edited("path.json", &|d| d["path"][0] = flip(d["path"][0].as_str().unwrap()).into());
    assert!(said.contains("does not lead from entry"), "{said}");
    let said = edited("entry.json", &|d| d["entry"] = flip(d["entry"].as_str().unwrap()).into());
    assert!(said.contains("does not verify"), "{said}");
    let said = edited("described.json", &|d| d["described"]["key"] = "trades/9.csv".into());
    assert!(said.contains("description of the entry is not what its bytes say"), "{said}");
    let said = edited("root.json", &|d| d["checkpoint"]["tree_root"] = "00".repeat(32).into());
    assert!(said.contains("not signed by this key"), "{said}");
    let said = edited("size.json", &|d| d["tree_size"] = 99.into());
    assert!(said.contains("the checkpoint signs one of"), "{said}");
    let other = file("other-bytes");
    std::fs::write(&other, b"id,qty\n1,900\n").unwrap();
    let said = failed(&run(&["verify-proof", path(&proof), "--public-key", path(&key), "--bytes", path(&other)]));
    assert!(said.contains("the bytes given have SHA-256"), "{said}");
    let other_key = file("other.pub");
    std::fs::write(&other_key, "ab".repeat(32)).unwrap();
    let said = failed(&run(&["verify-proof", path(&proof), "--public-key", path(&other_key)]));
    assert!(said.contains("not signed by this key"), "{said}");

    // By ledger sequence, against the head's checkpoint.
    let by_sequence = file("by-sequence.json");
    ok(&run(&["prove", "--ledger-sequence", "1", "--out", path(&by_sequence)]));
    ok(&run(&["verify-proof", path(&by_sequence), "--public-key", path(&key)]));

    // Later trees extend the kept one.
    ok(&run(&["put", "vault", "trades/7.csv", path(&body)]));
    let extends = ok(&run(&["verify-consistency", path(&held), "--public-key", path(&key)]));
    assert!(extends.contains("nothing before was rewritten"), "{extends}");
    let later = file("later.json");
    ok(&run(&["checkpoint", "--out", path(&later)]));
    let proof_file = file("consistency.json");
    ok(&run(&[
        "verify-consistency",
        path(&held),
        path(&later),
        "--public-key",
        path(&key),
        "--out",
        path(&proof_file),
    ]));
    let mut forged: Value = serde_json::from_str(&std::fs::read_to_string(&later).unwrap()).unwrap();
    forged["tree_root"] = "11".repeat(32).into();
    std::fs::write(&later, serde_json::to_vec(&forged).unwrap()).unwrap();
    let said = failed(&run(&["verify-consistency", path(&held), path(&later), "--public-key", path(&key)]));
    assert!(said.contains("not signed by this key"), "{said}");
    // A kept checkpoint the appliance never signed is not proved against.
    let mut unsigned: Value = serde_json::from_str(&std::fs::read_to_string(&held).unwrap()).unwrap();
    unsigned["signature"] = "00".repeat(64).into();
    let unsigned_file = file("unsigned.json");
    std::fs::write(&unsigned_file, serde_json::to_vec(&unsigned).unwrap()).unwrap();
    let said = failed(&run(&[
        "prove",
        "vault",
        "trades/1.csv",
        "--version-id",
        &version,
        "--checkpoint",
        path(&unsigned_file),
        "--out",
        path(&file("x.json")),
    ]));
    assert!(said.contains("not the one in your file"), "{said}");

    // The independent verifier (Python, no code shared) agrees, both ways.
    if let Some(python) = verifier_python() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/verify_proof.py");
        let python_check = |args: &[&str]| {
            Command::new(&python).arg(&script).args(args).args(["--public-key", path(&key)]).output().unwrap()
        };
        let said = ok(&python_check(&[path(&proof), "--bytes", path(&body)]));
        assert!(said.contains("the bytes match its SHA-256"), "{said}");
        ok(&python_check(&[path(&by_sequence)]));
        ok(&python_check(&["--consistency", path(&proof_file)]));
        for (refused, why) in [
            (file("path.json"), "does not lead from entry"),
            (file("entry.json"), "refused"),
            (file("described.json"), "description of the entry"),
            (file("root.json"), "not signed by this key"),
            (file("size.json"), "the checkpoint signs one of"),
        ] {
            let said = failed(&python_check(&[path(&refused)]));
            assert!(said.contains(why), "{}: {said}", refused.display());
        }
        let said = failed(&python_check(&[path(&proof), "--bytes", path(&other)]));
        assert!(said.contains("do not have the SHA-256"), "{said}");
        let said = ok(&python_check(&["--note", path(&note)]));
        assert!(said.contains(&format!("of {} entries", held_doc["sequence"])), "{said}");
        let edited_note = file("edited.note");
        let size = held_doc["sequence"].to_string();
        std::fs::write(&edited_note, note_text.replacen(&format!("\n{size}\n"), &format!("\n{}\n", size + "0"), 1))
            .unwrap();
        let said = failed(&python_check(&["--note", path(&edited_note)]));
        assert!(said.contains("not signed by"), "{said}");
    }

    // Proofs show the ledger: admins and auditors only.
    let writer = ok(&run(&["--json", "principal", "create", "app", "--role", "writer"]));
    let writer: Value = serde_json::from_str(&writer).unwrap();
    let writer = writer["credential"].as_str().unwrap().to_owned();
    let as_writer = tokio::task::block_in_place(|| {
        wormbox(&endpoint, &writer, &["prove", "--ledger-sequence", "1", "--out", path(&file("w.json"))])
    });
    assert!(failed(&as_writer).contains("ACCESS_DENIED"));
}

/// `wormbox witness init` and `wormbox witness serve`, as a site runs them
/// on another machine: the appliance configured with the printed verifier
/// key sends its checkpoints there, and `wormbox checkpoint` shows the
/// cosignature, also in the signed note it writes.
#[tokio::test(flavor = "multi_thread")]
async fn a_witness_run_with_the_cli_cosigns_the_appliance_s_checkpoints() {
    use std::io::BufRead as _;
    use std::os::unix::fs::PermissionsExt as _;
    let mut app = TestAppliance::start().await.unwrap();
    let dir = app.temp_dir();
    let admin = app.admin_credential().to_owned();
    let endpoint = app.endpoint();
    let run = |args: &[&str]| tokio::task::block_in_place(|| wormbox(&endpoint, &admin, args));
    let appliance_key = dir.join("appliance.pub");
    ok(&run(&["admin", "pubkey", "--out", path(&appliance_key)]));
    let witness_key = dir.join("witness.key");
    let init = ok(&run(&["--json", "witness", "init", "--name", "witness.test/cli", "--key-file", path(&witness_key)]));
    let vkey = serde_json::from_str::<Value>(&init).unwrap()["verifier_key"].as_str().unwrap().to_owned();
    assert!(vkey.starts_with("witness.test/cli+"), "{vkey}");
    assert_eq!(std::fs::metadata(&witness_key).unwrap().permissions().mode() & 0o777, 0o600);
    let secret = std::fs::read_to_string(&witness_key).unwrap();
    // PRIVATE+KEY+<name>+<id>+<seed>: the seed's base64 may hold a `+`.
    let seed = secret.trim().splitn(5, '+').nth(4).unwrap();
    assert!(seed.len() > 40 && !init.contains(seed), "the secret is not printed");
    let again = failed(&run(&["witness", "init", "--name", "w", "--key-file", path(&witness_key)]));
    assert!(again.contains("never overwritten"), "{again}");

    let state = dir.join("witness.state");
    /// Kills the witness however the test ends.
    struct Serving(std::process::Child);
    impl Drop for Serving {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut serving = Serving(
        Command::new(env!("CARGO_BIN_EXE_wormbox"))
            .args(["witness", "serve", "--key-file", path(&witness_key), "--log-key", path(&appliance_key)])
            .args(["--state", path(&state), "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    // Kept open to the end: the witness's stdout is not closed under it.
    let mut banner = std::io::BufReader::new(serving.0.stdout.take().unwrap());
    banner.read_line(&mut first).unwrap();
    let url = first.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(first.contains(&vkey) && url.starts_with("http://127.0.0.1:"), "{first}");

    let config = wormbox_server::config::WitnessConfig { key: vkey.clone(), url };
    app.restart_with(|c| c.witness = vec![config]).await.unwrap();
    let endpoint = app.endpoint();
    let run = |args: &[&str]| tokio::task::block_in_place(|| wormbox(&endpoint, &admin, args));
    ok(&run(&["bucket", "create", "vault"]));
    let body = dir.join("record");
    std::fs::write(&body, b"kept").unwrap();
    ok(&run(&["put", "vault", "a", path(&body)]));
    let shown = ok(&run(&["checkpoint"]));
    let mut shown_after = shown.clone();
    for _ in 0..300 {
        if shown_after.contains("cosigned by witness witness.test/cli") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        shown_after = ok(&run(&["checkpoint"]));
    }
    assert!(shown_after.contains("cosigned by witness witness.test/cli"), "{shown_after}");
    assert!(
        shown_after.contains("witness witness.test/cli: newest cosigned checkpoint at ledger entry"),
        "{shown_after}"
    );
    let note_file = dir.join("cp.note");
    ok(&run(&["checkpoint", "--note", path(&note_file)]));
    let note = std::fs::read_to_string(&note_file).unwrap();
    assert_eq!(note.matches("\n\u{2014} ").count(), 2, "the appliance's signature and the witness's: {note}");
    assert!(note.contains("\u{2014} witness.test/cli "), "{note}");
    // The independent verifier checks the witness's cosignature too.
    if let Some(python) = verifier_python() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/verify_proof.py");
        let check = |note: &Path| {
            Command::new(&python)
                .arg(&script)
                .args(["--note", path(note), "--public-key", path(&appliance_key), "--witness", &vkey])
                .output()
                .unwrap()
        };
        assert!(ok(&check(&note_file)).contains("cosigned by witness.test/cli"));
        let uncosigned = dir.join("uncosigned.note");
        let own_line_only: String =
            note.lines().filter(|l| !l.contains("witness.test/cli")).map(|l| format!("{l}\n")).collect();
        std::fs::write(&uncosigned, own_line_only).unwrap();
        assert!(failed(&check(&uncosigned)).contains("no valid cosignature of witness witness.test/cli"));
    }
    assert!(serving.0.try_wait().unwrap().is_none(), "the witness is still serving");
    drop(serving);
    drop(banner);
    let recorded = std::fs::read_to_string(&state).unwrap();
    assert!(recorded.lines().any(|l| l.starts_with("wormbox.invalid/")), "{recorded}");
}
