//! Real S3 clients against a real wormboxd: boto3 and the AWS CLI running a
//! records application's flows (tests/s3-clients/), boto 2.49.0's own
//! versioning and MFA Delete tests from its source distribution, unmodified,
//! and rclone copying a directory tree into a versioned bucket and back. Each
//! client is a child process from the venv scripts/s3-clients/install.sh
//! makes; the test owns the appliance's ManualClock and the bucket owner's
//! simulated token and answers the client's questions (a fresh `SERIAL CODE`,
//! the appliance's time) over the line protocol of tests/s3-clients/driver.py.
//!
//! Invariant: a missing client is skipped with a printed reason only while
//! `WORMBOX_S3_CLIENTS_REQUIRED` is unset (CI sets it: then it fails); after
//! every client run the archive verifies through gRPC and the ledger holds
//! the client's writes as the entry kinds gRPC writes produce, under the
//! principal's own access key.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use wormbox_model::{Clock, ManualClock};
use wormbox_proto::v1;
use wormbox_test_utils::{SimToken, TOKEN_SEED_BASE32, TestAppliance};
use wormbox_tokensim::Fault;

use super::{create_bucket, put, versions};

/// The simulated token's time step, in seconds.
const STEP: u64 = 30;
/// boto 2's version, as install.sh names its tests' directory.
const BOTO2: &str = "2.49.0";

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The venv install.sh makes, found by the same rule as the script.
fn venv() -> PathBuf {
    if let Some(dir) = env_nonempty("WORMBOX_S3_CLIENTS") {
        return dir.into();
    }
    let cache = env_nonempty("WORMBOX_BUILD_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        let base = env_nonempty("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env_nonempty("HOME").unwrap_or_else(|| "/root".into())).join(".cache"));
        base.join("wormbox")
    });
    cache.join("s3-clients-venv")
}

/// `path` when it exists; otherwise the skip (or, when required, the
/// failure) saying what is missing.
fn installed(client: &str, path: PathBuf) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    let why = format!("{} is missing (run scripts/s3-clients/install.sh)", path.display());
    let required = env_nonempty("WORMBOX_S3_CLIENTS_REQUIRED").is_some();
    assert!(!required, "WORMBOX_S3_CLIENTS_REQUIRED is set but {why}");
    println!("SKIPPED: the {client} conformance run did not run: {why}");
    eprintln!("SKIPPED: the {client} conformance run did not run: {why}");
    None
}

/// `name` on `PATH`.
fn on_path(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file()).unwrap_or_else(|| name.into())
}

/// The scripts' directory.
fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("s3-clients")
}

/// A principal with an S3 key, created through gRPC.
struct S3Principal {
    /// `AKID:SECRET` for gRPC.
    credential: String,
    /// The S3 access key id: the principal's own access key id.
    key_id: String,
    /// The S3 secret access key.
    secret: String,
}

async fn s3_principal(app: &TestAppliance, name: &str, role: v1::Role) -> S3Principal {
    let request = v1::CreatePrincipalRequest { name: name.into(), role: role as i32, s3: true, ..Default::default() };
    let created = app.admin().await.unwrap().create_principal(request).await.unwrap().into_inner();
    let principal = created.principal.unwrap();
    assert!(principal.has_s3_key, "{principal:?}");
    S3Principal {
        credential: format!("{}:{}", principal.access_key_id, created.secret),
        key_id: principal.access_key_id,
        secret: created.s3_secret,
    }
}

/// A token enrolled for `owner` and activated by it; the clock is then moved
/// past both activation codes.
async fn token_for(app: &TestAppliance, owner: &S3Principal, serial: &str) -> SimToken {
    let token = SimToken::start(app.shared_clock(), serial, STEP, Fault::None, 0).unwrap();
    let seed = v1::SeedEnrollment {
        serial: serial.into(),
        seed_base32: TOKEN_SEED_BASE32.into(),
        step_seconds: STEP as u32,
        ..Default::default()
    };
    let enroll = v1::EnrollDeviceRequest {
        owner: owner.key_id.clone(),
        source: Some(v1::enroll_device_request::Source::Seed(seed)),
        mfa: String::new(),
    };
    app.mfa_as(app.admin_credential()).await.unwrap().enroll_device(enroll).await.unwrap();
    let code = |offset| token.code(app.clock(), offset).split(' ').nth(1).unwrap().to_owned();
    let activate = v1::ActivateDeviceRequest { serial: serial.into(), first_code: code(0), second_code: code(1) };
    app.mfa_as(&owner.credential).await.unwrap().activate_device(activate).await.unwrap();
    app.clock().advance(Duration::from_secs(2 * STEP));
    token
}

/// A command with the client environment: the endpoint, `owner`'s S3 keys,
/// region us-east-1, path-style addressing, and no AWS settings of the
/// machine's (its profile, CA bundle, credentials file).
fn client_command(program: &Path, app: &TestAppliance, owner: &S3Principal, dir: &Path) -> Command {
    // A hung client fails the test instead of hanging CI.
    let mut command = Command::new("timeout");
    command.args(["--kill-after=10", "900"]).arg(program);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("AWS_") || name.starts_with("BOTO") || name.starts_with("RCLONE_") {
            command.env_remove(name.as_ref());
        }
    }
    let aws_config = dir.join("aws-config");
    std::fs::write(&aws_config, "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n").unwrap();
    command
        .env("S3_ENDPOINT", app.s3_endpoint())
        .env("AWS_ACCESS_KEY_ID", &owner.key_id)
        .env("AWS_SECRET_ACCESS_KEY", &owner.secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", &aws_config)
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-aws-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("PYTHONPATH", scripts())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(dir);
    command
}

/// Runs `command` to its end, answering its driver questions with `clock`
/// and `token`; prints its output (captured by the harness) and panics with
/// it unless it exits 0.
fn drive(what: &str, clock: &ManualClock, token: Option<&SimToken>, mut command: Command) {
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap_or_else(|err| panic!("{what}: cannot start {command:?}: {err}"));
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut output = String::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        // A question may follow text the client printed without a newline
        // (pytest -v's test name).
        let Some(at) = line.find("WORMBOX? ") else {
            output.push_str(&line);
            output.push('\n');
            continue;
        };
        let question = &line[at + "WORMBOX? ".len()..];
        output.push_str(&line[..at]);
        output.push_str("(asked the test: ");
        output.push_str(question);
        output.push_str(")\n");
        let answer = match question.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["CODE"] => {
                // One step on: a code is accepted once per step.
                clock.advance(Duration::from_secs(STEP));
                token.unwrap_or_else(|| panic!("{what} asked for a code but has no token")).code(clock, 0)
            }
            ["NOW"] => (clock.now().0 / 1_000_000).to_string(),
            ["ADVANCE", secs] => {
                clock.advance(Duration::from_secs(secs.parse().unwrap()));
                "OK".into()
            }
            _ => panic!("{what} asked {question:?}"),
        };
        writeln!(stdin, "{answer}").unwrap();
        stdin.flush().unwrap();
    }
    drop(stdin);
    let status = child.wait().unwrap();
    let errors = errors.join().unwrap();
    println!("--- {what} stdout\n{output}--- {what} stderr\n{errors}---");
    assert!(status.success(), "{what} failed ({status}):\n{output}\n{errors}");
}

fn ledger(app: &TestAppliance) -> Vec<wormbox_store::ledger::LedgerEntry> {
    app.server().app().store().ledger_entries(1).unwrap().into_iter().map(|(e, _)| e).collect()
}

/// The archive verifies through gRPC, and each of `ops` is in the ledger
/// under `principal`'s access key (in `bucket` unless it is empty).
async fn check_evidence(app: &TestAppliance, principal: &str, bucket: &str, ops: &[&str]) {
    let mut compliance = app.compliance().await.unwrap();
    let report = compliance.verify_integrity(v1::VerifyIntegrityRequest::default()).await.unwrap().into_inner();
    assert!(report.ok, "{report:?}");
    let entries = ledger(app);
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for entry in &entries {
        if entry.principal == principal && (bucket.is_empty() || entry.bucket == bucket) {
            *seen.entry(entry.op.as_str()).or_default() += 1;
        }
    }
    for op in ops {
        assert!(seen.contains_key(op), "no {op} entry by {principal} in {bucket:?}: {seen:?}");
    }
}

/// A version written through gRPC by the same principal into `bucket` is
/// ledgered as the S3 writes were: same entry kind, same principal.
async fn grpc_write_matches(app: &TestAppliance, owner: &S3Principal, bucket: &str) {
    let mut archive = app.archive_as(&owner.credential).await.unwrap();
    let written = put(&mut archive, bucket, "written-through-grpc", b"grpc").await.unwrap();
    let entries = ledger(app);
    let grpc = entries.iter().find(|e| e.key == "written-through-grpc" && e.bucket == bucket).expect("gRPC entry");
    assert_eq!(grpc.version.map(|v| v.to_string()), Some(written.version_id.clone()));
    let s3 = entries
        .iter()
        .find(|e| e.bucket == bucket && e.key != "written-through-grpc" && e.op.as_str() == grpc.op.as_str())
        .unwrap_or_else(|| panic!("no S3 write of kind {} in {bucket}", grpc.op.as_str()));
    assert_eq!((s3.op.as_str(), s3.principal.as_str()), (grpc.op.as_str(), owner.key_id.as_str()));
}

/// The appliance, the bucket owner (a writer) with a token, and a second
/// principal that may place legal holds (an auditor), both with S3 keys.
async fn setup(serial: &str) -> (TestAppliance, S3Principal, S3Principal, SimToken) {
    let app = TestAppliance::start().await.unwrap();
    let owner = s3_principal(&app, "records-app", v1::Role::Writer).await;
    let holder = s3_principal(&app, "records-officer", v1::Role::Auditor).await;
    let token = token_for(&app, &owner, serial).await;
    (app, owner, holder, token)
}

/// boto3: the flows of a records application (tests/s3-clients/boto3_flows.py).
#[tokio::test(flavor = "multi_thread")]
async fn boto3_runs_a_records_applications_flows() {
    let Some(python) = installed("boto3", venv().join("bin/python")) else { return };
    let (app, owner, holder, token) = setup("S3C-BOTO3").await;
    let dir = app.temp_dir();
    let mut command = client_command(&python, &app, &owner, &dir);
    command
        .arg(scripts().join("boto3_flows.py"))
        .env("HOLDER_ACCESS_KEY_ID", &holder.key_id)
        .env("HOLDER_SECRET_ACCESS_KEY", &holder.secret);
    tokio::task::block_in_place(|| drive("boto3", app.clock(), Some(&token), command));
    let bucket = "records-boto3";
    let owner_ops = [
        "bucket-created",
        "object-lock-changed",
        "version-written",
        "marker-written",
        "retention-changed",
        "versioning-changed",
        "mfa-accepted",
        "version-purged",
        "refused",
    ];
    check_evidence(&app, &owner.key_id, bucket, &owner_ops).await;
    check_evidence(&app, &holder.key_id, bucket, &["hold-placed", "hold-released"]).await;
    grpc_write_matches(&app, &owner, bucket).await;
}

/// The AWS CLI: the same flows as `aws s3api` command lines with `--mfa`,
/// and `aws s3 cp` of a file both ways (tests/s3-clients/aws_flows.py).
#[tokio::test(flavor = "multi_thread")]
async fn the_aws_cli_runs_a_records_applications_flows() {
    let Some(python) = installed("AWS CLI", venv().join("bin/python")) else { return };
    let Some(aws) = installed("AWS CLI", venv().join("bin/aws")) else { return };
    let (app, owner, holder, token) = setup("S3C-AWSCLI").await;
    let dir = app.temp_dir();
    let mut command = client_command(&python, &app, &owner, &dir);
    command
        .arg(scripts().join("aws_flows.py"))
        .env("WORMBOX_AWS", &aws)
        .env("HOLDER_ACCESS_KEY_ID", &holder.key_id)
        .env("HOLDER_SECRET_ACCESS_KEY", &holder.secret);
    tokio::task::block_in_place(|| drive("aws CLI", app.clock(), Some(&token), command));
    let bucket = "records-awscli";
    let owner_ops = [
        "bucket-created",
        "object-lock-changed",
        "version-written",
        "marker-written",
        "retention-changed",
        "versioning-changed",
        "mfa-accepted",
        "version-purged",
        "refused",
    ];
    check_evidence(&app, &owner.key_id, bucket, &owner_ops).await;
    check_evidence(&app, &holder.key_id, bucket, &["hold-placed", "hold-released"]).await;
    grpc_write_matches(&app, &owner, bucket).await;
}

/// boto 2.49.0, the seed's own client: its own `test_versioning.py` and
/// `test_mfa.py`, unmodified, with pytest and tests/s3-clients/boto2_shim.py
/// (Python 3 compatibility, `raw_input` reading the token, the port).
#[tokio::test(flavor = "multi_thread")]
async fn boto2_passes_its_own_versioning_and_mfa_tests() {
    let Some(python) = installed("boto 2", venv().join("bin/python")) else { return };
    let Some(tests) = installed("boto 2", venv().join(format!("boto-{BOTO2}-tests/tests/integration/s3"))) else {
        return;
    };
    let (app, owner, _, token) = setup("S3C-BOTO2").await;
    let dir = app.temp_dir();
    let boto_config = dir.join("boto.cfg");
    let config = format!(
        "[Credentials]\naws_access_key_id = {}\naws_secret_access_key = {}\n\n\
         [Boto]\nis_secure = False\nnum_retries = 0\nhttp_socket_timeout = 30\n\n\
         [s3]\nhost = 127.0.0.1\ncalling_format = boto.s3.connection.OrdinaryCallingFormat\n",
        owner.key_id, owner.secret
    );
    std::fs::write(&boto_config, config).unwrap();
    let port = app.server().s3_addr.unwrap().port();
    let mut command = client_command(&python, &app, &owner, &dir);
    command
        .args(["-m", "pytest", "-p", "boto2_shim", "-p", "no:cacheprovider", "-s", "-v"])
        .arg(tests.join("test_versioning.py"))
        .arg(tests.join("test_mfa.py"))
        .env("BOTO_CONFIG", &boto_config)
        .env("S3_PORT", port.to_string())
        .env("MFA_SERIAL", &token.serial);
    tokio::task::block_in_place(|| drive("boto 2", app.clock(), Some(&token), command));
    // Both test classes delete their buckets; what they did stays in the ledger.
    let ops = [
        "bucket-created",
        "versioning-changed",
        "version-written",
        "marker-written",
        "mfa-accepted",
        "version-purged",
        "refused",
        "bucket-deleted",
    ];
    check_evidence(&app, &owner.key_id, "", &ops).await;
}

/// A directory tree of `files` (relative path, bytes), written under `root`.
fn write_tree(root: &Path, files: &[(String, Vec<u8>)]) {
    for (path, bytes) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

/// Every file under `root`, by relative path.
fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let relative = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// `len` bytes that differ from file to file (a xorshift stream).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// rclone (Debian's): `copy` of a directory tree into a versioned bucket, a
/// changed file copied again (a second version), and the tree copied back,
/// byte for byte.
#[tokio::test(flavor = "multi_thread")]
async fn rclone_copies_a_tree_into_a_versioned_bucket_and_back() {
    let Some(rclone) = installed("rclone", on_path("rclone")) else { return };
    let app = TestAppliance::start().await.unwrap();
    let owner = s3_principal(&app, "backup", v1::Role::Writer).await;
    let bucket = "backups-rclone";
    let mut archive = app.archive_as(&owner.credential).await.unwrap();
    create_bucket(&mut archive, bucket, v1::VersioningStatus::Enabled).await;
    let dir = app.temp_dir();
    let config = dir.join("rclone.conf");
    let remote = format!(
        "[wormbox]\ntype = s3\nprovider = Other\naccess_key_id = {}\nsecret_access_key = {}\n\
         endpoint = {}\nregion = us-east-1\nforce_path_style = true\nno_check_bucket = true\n",
        owner.key_id,
        owner.secret,
        app.s3_endpoint()
    );
    std::fs::write(&config, remote).unwrap();
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("README.txt".into(), b"nightly backup\n".to_vec()),
        ("empty".into(), Vec::new()),
        ("etc/app/config.toml".into(), b"[app]\nname = \"records\"\n".to_vec()),
        ("data/2026/11/ledger.bin".into(), noise(1, 300_000)),
        ("data/2026/12/ledger.bin".into(), noise(2, 6 << 20)),
        ("data/name with spaces & symbols+=.txt".into(), b"odd names\n".to_vec()),
    ];
    let source = dir.join("source");
    write_tree(&source, &files);
    let rclone_run = |args: &[&str]| {
        let mut command = client_command(&rclone, &app, &owner, &dir);
        command.arg("--config").arg(&config).args(["--retries", "1", "--low-level-retries", "1"]).args(args);
        drive("rclone", app.clock(), None, command);
    };
    let target = format!("wormbox:{bucket}/tree");
    let source_arg = source.to_string_lossy().into_owned();
    tokio::task::block_in_place(|| rclone_run(&["copy", &source_arg, &target]));
    // A changed file: a second version of the same key.
    files[3].1 = noise(3, 300_000);
    write_tree(&source, &files[3..4]);
    tokio::task::block_in_place(|| rclone_run(&["copy", &source_arg, &target]));
    let back = dir.join("back");
    let back_arg = back.to_string_lossy().into_owned();
    tokio::task::block_in_place(|| rclone_run(&["copy", &target, &back_arg]));
    let expected: BTreeMap<String, Vec<u8>> = files.into_iter().collect();
    let got = read_tree(&back);
    assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    for (path, bytes) in &expected {
        assert!(got[path] == *bytes, "{path} came back different");
    }
    let listed = versions(&mut archive, bucket).await;
    let changed: Vec<_> = listed.versions.iter().filter(|v| v.key == "tree/data/2026/11/ledger.bin").collect();
    assert_eq!(changed.len(), 2, "the changed file has two versions: {listed:?}");
    check_evidence(&app, &owner.key_id, bucket, &["version-written"]).await;
    grpc_write_matches(&app, &owner, bucket).await;
}
