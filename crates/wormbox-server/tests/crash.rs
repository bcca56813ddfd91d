//! Crash safety of the real binary: records streamed through Ingest are
//! acknowledged only once durable, so after `kill -9` and a restart every
//! acknowledged record reads back with the same bytes, SHA-256 and version
//! id, and the ledger chain recomputes; spent codes stay spent; and a
//! replication rule killed at random points while it copies to a real S3
//! Object Lock engine (SeaweedFS) leaves every version with exactly one copy.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use wormbox_model::SystemClock;
use wormbox_proto::{ArchiveClient, BearerAuth, v1};
use wormbox_replica::{EntryKind, layout};
use wormbox_store::{Store, StoreOptions};
use wormbox_store_rocksdb::{RocksBackend, RocksOptions};
use wormbox_test_utils::s3_targets::S3Target;

struct Daemon {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Daemon {
    // A failing test must not leave a daemon behind (it would hold the test
    // harness's output pipe open).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_daemon(data_dir: &Path) -> Daemon {
    let mut args: Vec<std::ffi::OsString> = vec![
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--s3-listen".into(),
        "127.0.0.1:0".into(),
        "--metrics-listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
    ];
    args.push(data_dir.into());
    start_daemon_with(&args)
}

fn start_daemon_with(args: &[std::ffi::OsString]) -> Daemon {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wormboxd"))
        .args(args)
        .env("WORMBOX_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("wormboxd starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("wormboxd prints its address").expect("stdout is UTF-8");
        if let Some(addr) = line.strip_prefix("wormboxd listening on ") {
            break addr.parse().expect("a socket address");
        }
    };
    Daemon { child, addr }
}

async fn client(addr: SocketAddr, credential: &str) -> ArchiveClient {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    v1::archive_client::ArchiveClient::with_interceptor(channel, BearerAuth::new(credential).unwrap())
}

/// Up to 3.2 KiB, and every tenth record 140 KiB or more (a value segment
/// append on its own), so that the kill also lands among segment appends.
fn payload(n: u64) -> Vec<u8> {
    let repeat = if n.is_multiple_of(10) { 8800 } else { 1 } + (n % 200) as usize;
    format!("record {n:08} ").repeat(repeat).into_bytes()
}

#[test]
fn acknowledged_ingest_records_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let mut daemon = start_daemon(&data_dir);
    let credential = std::fs::read_to_string(data_dir.join(wormbox_server::ADMIN_CREDENTIAL_FILE)).unwrap();
    let credential = credential.trim().to_owned();
    let acked: Vec<v1::IngestAck> = runtime.block_on(async {
        let mut archive = client(daemon.addr, &credential).await;
        archive.create_bucket(v1::CreateBucketRequest { bucket: "crash".into(), ..Default::default() }).await.unwrap();
        archive
            .put_bucket_versioning(v1::PutBucketVersioningRequest {
                bucket: "crash".into(),
                status: v1::VersioningStatus::Enabled as i32,
                ..Default::default()
            })
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(64);
        let feeder = tokio::spawn(async move {
            for n in 0u64.. {
                let record = v1::IngestRecord {
                    sequence: n,
                    bucket: "crash".into(),
                    key: format!("rec/{:03}", n % 500),
                    data: payload(n),
                    ..Default::default()
                };
                if tx.send(record).await.is_err() {
                    return;
                }
            }
        });
        let mut acks = archive.ingest(ReceiverStream::new(rx)).await.unwrap().into_inner();
        let mut acked = Vec::new();
        // The stream ends with an error once the daemon is killed.
        while let Ok(Some(ack)) = acks.message().await {
            assert!(ack.error.is_none(), "{ack:?}");
            acked.push(ack);
            // Kill mid-stream, with records still in flight behind the acks.
            if acked.len() == 2000 {
                daemon.child.kill().unwrap();
            }
        }
        feeder.abort();
        acked
    });
    daemon.child.wait().unwrap();
    assert!(acked.len() >= 2000, "got {} acks before the kill", acked.len());

    let mut daemon = start_daemon(&data_dir);
    runtime.block_on(async {
        let mut archive = client(daemon.addr, &credential).await;
        for ack in &acked {
            let request = v1::GetObjectRequest {
                bucket: "crash".into(),
                key: format!("rec/{:03}", ack.sequence % 500),
                version_id: ack.version_id.clone(),
            };
            let mut stream = archive.get_object(request).await.unwrap().into_inner();
            let mut body = Vec::new();
            let mut metadata = None;
            while let Some(message) = stream.message().await.unwrap() {
                match message.part {
                    Some(v1::get_object_response::Part::Metadata(m)) => metadata = Some(m),
                    Some(v1::get_object_response::Part::Data(d)) => body.extend_from_slice(&d),
                    None => {}
                }
            }
            let metadata = metadata.unwrap();
            assert_eq!(body, payload(ack.sequence), "record {}", ack.sequence);
            assert_eq!(metadata.sha256, ack.sha256);
            assert_eq!(metadata.version_id, ack.version_id);
            assert_eq!(ring::digest::digest(&ring::digest::SHA256, &body).as_ref(), ack.sha256.as_slice());
        }
    });

    // SIGTERM is a clean shutdown.
    let status = Command::new("kill").args(["-TERM", &daemon.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(daemon.child.wait().unwrap().success(), "wormboxd exits cleanly on SIGTERM");

    // Everything the ledger attests holds after the kills, checked the way an
    // auditor would: read-only, with only the published public key.
    let public = std::fs::read_to_string(data_dir.join("checkpoint-signing.pub")).unwrap();
    let key_mode = std::fs::metadata(data_dir.join("checkpoint-signing.key")).unwrap().permissions().mode();
    assert_eq!(key_mode & 0o777, 0o600);
    let readonly = RocksBackend::open_read_only(&data_dir.join("db")).unwrap();
    let options = wormbox_store::evidence::VerifyOptions {
        public_key: Some(hex::decode(public.trim()).unwrap()),
        ..Default::default()
    };
    let report = wormbox_store::evidence::verify(&readonly, options).unwrap();
    assert!(report.is_ok(), "{}", report.summary());
    assert!(report.checkpoints_checked >= 1, "{}", report.summary());
    drop(readonly);

    let backend = RocksBackend::open(&data_dir.join("db"), &RocksOptions::for_tests()).unwrap();
    let store = Store::open(
        Arc::new(backend),
        Arc::new(SystemClock),
        StoreOptions { max_object_bytes: 1 << 30, ..StoreOptions::default() },
    )
    .unwrap();
    let summary = store.verify_ledger().expect("the ledger chain recomputes after a crash");
    let last = acked.iter().map(|a| a.ledger_sequence).max().unwrap();
    assert!(summary.entries >= last, "every acknowledged ledger entry is in the chain");
    let entries = store.ledger_entries(1).unwrap();
    for ack in &acked {
        let (entry, _) = &entries[(ack.ledger_sequence - 1) as usize];
        assert_eq!(entry.version.map(|v| v.to_string()), Some(ack.version_id.clone()));
        assert_eq!(entry.sha256.map(|d| d.0.to_vec()), Some(ack.sha256.clone()));
    }
}

/// One code, one operation, across `kill -9`: a spent code stays spent and a
/// lockout stays in force after the real binary restarts. Codes are computed
/// from the real clock, as the daemon judges them by it.
#[test]
fn spent_codes_and_lockouts_survive_kill_9() {
    use tonic_types::StatusExt as _;
    use wormbox_model::Clock as _;
    use wormbox_proto::MfaClient;
    use wormbox_token::{OtpParams, Seed, Totp};

    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let serial = "GAHT-KILL9-01";
    let totp = Totp::new(&Seed::new(b"12345678901234567890".to_vec()).unwrap(), OtpParams::default()).unwrap();
    let step_now = || totp.step_at(u64::try_from(SystemClock.now().0 / 1_000_000).unwrap()).unwrap();
    let code = |step: u64| format!("{serial} {}", totp.code_at_step(step).unwrap().expose());
    let reason = |status: tonic::Status| status.get_details_error_info().map(|i| i.reason).unwrap_or_default();
    let mfa_client = |addr: SocketAddr, credential: String| async move {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        let client: MfaClient =
            v1::mfa_client::MfaClient::with_interceptor(channel, BearerAuth::new(&credential).unwrap());
        client
    };
    let delete = |bucket: &str, version_id: &str, mfa: &str| v1::DeleteObjectRequest {
        bucket: bucket.into(),
        key: "k".into(),
        version_id: version_id.into(),
        mfa: mfa.into(),
        ..Default::default()
    };

    let mut daemon = start_daemon(&data_dir);
    let credential = std::fs::read_to_string(data_dir.join(wormbox_server::ADMIN_CREDENTIAL_FILE)).unwrap();
    let credential = credential.trim().to_owned();
    let key_file = data_dir.join(wormbox_server::MFA_MASTER_KEY_FILE);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);

    let (accepted, spare, target) = runtime.block_on(async {
        let mut mfa = mfa_client(daemon.addr, credential.clone()).await;
        let seed = v1::SeedEnrollment {
            serial: serial.into(),
            seed_hex: "3132333435363738393031323334353637383930".into(),
            ..Default::default()
        };
        let enroll = v1::EnrollDeviceRequest {
            source: Some(v1::enroll_device_request::Source::Seed(seed)),
            ..Default::default()
        };
        mfa.enroll_device(enroll).await.unwrap();
        // Two past consecutive codes activate; the current step stays usable.
        let now = step_now();
        let activate = v1::ActivateDeviceRequest {
            serial: serial.into(),
            first_code: code(now - 2).split(' ').nth(1).unwrap().into(),
            second_code: code(now - 1).split(' ').nth(1).unwrap().into(),
        };
        mfa.activate_device(activate).await.unwrap();
        let mut archive = client(daemon.addr, &credential).await;
        archive.create_bucket(v1::CreateBucketRequest { bucket: "kill9".into(), ..Default::default() }).await.unwrap();
        // MFA Delete on (with the current step's code): only then is a
        // delete's code judged.
        let on = v1::PutBucketVersioningRequest {
            bucket: "kill9".into(),
            status: v1::VersioningStatus::Enabled as i32,
            mfa_delete: v1::MfaDeleteStatus::Enabled as i32,
            mfa: code(now),
        };
        archive.put_bucket_versioning(on).await.unwrap();
        // Codes are judged only for deletes that would run, so every attempt
        // below names a version that exists.
        let mut versions = Vec::new();
        for bucket in ["kill9", "kill9", "kill9"] {
            let (tx, rx) = mpsc::channel(3);
            let header = v1::PutObjectHeader { bucket: bucket.into(), key: "k".into(), ..Default::default() };
            tx.send(v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Header(header)) }).await.unwrap();
            tx.send(v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Data(b"x".to_vec())) })
                .await
                .unwrap();
            let end = v1::PutObjectEnd { size: 1, ..Default::default() };
            tx.send(v1::PutObjectRequest { part: Some(v1::put_object_request::Part::End(end)) }).await.unwrap();
            drop(tx);
            versions.push(archive.put_object(ReceiverStream::new(rx)).await.unwrap().into_inner().version_id);
        }
        let accepted = code(step_now().max(now + 1));
        archive.delete_object(delete("kill9", &versions[0], &accepted)).await.unwrap();
        (accepted, versions[1].clone(), versions[2].clone())
    });
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();

    let mut daemon = start_daemon(&data_dir);
    runtime.block_on(async {
        let mut archive = client(daemon.addr, &credential).await;
        let replay = archive.delete_object(delete("kill9", &spare, &accepted)).await.unwrap_err();
        assert_eq!(reason(replay), "MFA_REPLAYED");
        // The replay was the first failure in a row; four wrong codes make five.
        for _ in 0..4 {
            let wrong = archive.delete_object(delete("kill9", &target, &format!("{serial} 000000"))).await.unwrap_err();
            assert_eq!(reason(wrong), "MFA_INVALID");
        }
    });
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();

    let mut daemon = start_daemon(&data_dir);
    runtime.block_on(async {
        let mut archive = client(daemon.addr, &credential).await;
        let fresh = code(step_now() + 1);
        let locked = archive.delete_object(delete("kill9", &target, &fresh)).await.unwrap_err();
        assert_eq!(reason(locked), "MFA_LOCKED_OUT");
    });
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
}

/// A small deterministic generator: the seed is printed, so a failure replays.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

const RECORDS: usize = 400;

#[test]
fn every_version_has_exactly_one_copy_after_kill_9_at_random_points() {
    let Some(target) = S3Target::start("seaweedfs") else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let replica = runtime.block_on(target.bucket("replica", true));
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = dir.path().join("wormboxd.toml");
    std::fs::write(
        &config,
        format!(
            "[listen]\naddr = \"127.0.0.1:0\"\n[s3]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n[storage]\ndata_dir = \"{}\"\n[log]\nfilter = \"warn\"\n\
             [[replication]]\nname = \"dr\"\nbucket = \"records\"\nendpoint = \"{}\"\ntarget_bucket = \"replica\"\n\
             evidence_retention_days = 400\n",
            data_dir.display(),
            target.endpoint
        ),
    )
    .unwrap();
    // The operator's way: the credential on standard input, sealed by wormboxd.
    let mut seal = Command::new(env!("CARGO_BIN_EXE_wormboxd"))
        .arg("--config")
        .arg(&config)
        .args(["replica-credential", "--rule", "dr"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(seal.stdin.take().unwrap(), "{}:{}", target.access, target.secret).unwrap();
    assert!(seal.wait().unwrap().success());
    let sealed = std::fs::read(data_dir.join("replica-dr.credential")).unwrap();
    assert!(!sealed.windows(target.secret.len()).any(|w| w == target.secret.as_bytes()), "sealed at rest");

    let seed = std::env::var("WORMBOX_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| wormbox_model::Clock::now(&wormbox_model::SystemClock).0 as u64);
    println!("seed {seed}");
    let mut random = Lcg(seed);
    let mut daemon = start_daemon_with(&["--config".into(), config.clone().into()]);
    let credential = std::fs::read_to_string(data_dir.join(wormbox_server::ADMIN_CREDENTIAL_FILE)).unwrap();
    let credential = credential.trim().to_owned();
    runtime.block_on(async {
        let mut archive = client(daemon.addr, &credential).await;
        archive.create_bucket(v1::CreateBucketRequest { bucket: "records".into(), object_lock: true }).await.unwrap();
        let records: Vec<v1::IngestRecord> = (0..RECORDS)
            .map(|n| v1::IngestRecord {
                sequence: n as u64,
                bucket: "records".into(),
                key: format!("r/{n:04}"),
                data: format!("record {n}").repeat(1 + n % 50).into_bytes(),
                ..Default::default()
            })
            .collect();
        let mut acks = archive.ingest(tokio_stream::iter(records)).await.unwrap().into_inner();
        let mut acked = 0;
        while let Some(ack) = acks.message().await.unwrap() {
            assert!(ack.error.is_none(), "{ack:?}");
            acked += 1;
        }
        assert_eq!(acked, RECORDS);
    });
    // Kill while it copies, at random points, and restart.
    for cycle in 0..4 {
        std::thread::sleep(Duration::from_millis(50 + random.below(400)));
        daemon.child.kill().unwrap();
        daemon.child.wait().unwrap();
        let page = runtime.block_on(replica.list_object_versions(Some("r/"), None, None, 1000)).unwrap();
        println!("killed in cycle {cycle} with {} copies made", page.versions().count());
        daemon = start_daemon_with(&["--config".into(), config.clone().into()]);
    }
    // Then let it finish (real time: the engine is real).
    let deadline = Instant::now() + Duration::from_secs(120);
    let copies = loop {
        let mut copies = std::collections::BTreeMap::<String, usize>::new();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let page = runtime
                .block_on(replica.list_object_versions(
                    Some("r/"),
                    key_marker.as_deref(),
                    version_marker.as_deref(),
                    1000,
                ))
                .unwrap();
            for entry in page.entries.iter().filter(|e| e.kind == EntryKind::Version) {
                *copies.entry(entry.key.clone()).or_default() += 1;
            }
            if !page.is_truncated {
                break;
            }
            key_marker = page.next_key_marker.clone();
            version_marker = page.next_version_id_marker.clone();
        }
        if copies.len() == RECORDS || Instant::now() > deadline {
            break copies;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(copies.len(), RECORDS, "every version reached the replica (seed {seed})");
    let twice: Vec<_> = copies.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "versions copied more than once (seed {seed}): {twice:?}");
    // And each copy says which version it is.
    let head = runtime.block_on(replica.head_object("r/0007", None)).unwrap();
    assert!(head.metadata.iter().any(|(n, _)| n == layout::META_VERSION));
    drop(daemon);
}
