//! Replication survives `kill -9`: the real binary, a replication rule to a
//! real S3 Object Lock engine (SeaweedFS), killed at random points while it
//! copies and restarted; in the end every version has exactly one copy.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wormbox_proto::{ArchiveClient, BearerAuth, v1};
use wormbox_replica::{EntryKind, layout};
use wormbox_test_utils::s3_targets::S3Target;

struct Daemon {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_daemon(config: &Path) -> Daemon {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wormboxd"))
        .arg("--config")
        .arg(config)
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
            "[listen]\naddr = \"127.0.0.1:0\"\n[storage]\ndata_dir = \"{}\"\n[log]\nfilter = \"warn\"\n\
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
    let mut daemon = start_daemon(&config);
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
        daemon = start_daemon(&config);
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
