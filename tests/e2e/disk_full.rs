//! A full disk, on a small ext4 filesystem of the test's own (a loop-mounted
//! image, created and removed by the test): at the reserve, new data is
//! refused with `RESOURCE_EXHAUSTED`/`DISK_FULL` before any of it is
//! written, the health service says writes are NOT_SERVING, reads, listings,
//! verification and deletes go on, and writes resume by themselves when
//! space returns, whether the archive's own deletes or another process
//! freed it. With no reserve, the filesystem's own ENOSPC fails the write
//! and corrupts nothing: every acknowledged version reads back whole and
//! the archive verifies, before and after a restart.
//!
//! Mounting needs root (and a container that allows it): elsewhere the
//! tests say they skipped; under CI, which runs as root, a mount that fails
//! is a failure.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
use wormbox_proto::{ArchiveClient, v1};
use wormbox_test_utils::TestAppliance;

use super::{create_bucket, get, put, reason};

/// An ext4 filesystem in an image file, mounted for one test.
struct SmallDisk {
    // Removed, with the image, after `drop` unmounted it.
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

impl SmallDisk {
    /// Mounts a fresh `mib` MiB ext4 filesystem with no blocks kept for
    /// root, or says why it cannot (`None`) where the test is not root.
    fn mount(mib: u64) -> Option<SmallDisk> {
        let dir = tempfile::Builder::new().prefix("wormbox-disk-").tempdir_in("/var/tmp").unwrap();
        let image = dir.path().join("disk.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        std::fs::File::create(&image).unwrap().set_len(mib << 20).unwrap();
        let made = run("mkfs.ext4", &["-q", "-F", "-m", "0", image.to_str().unwrap()]);
        let mounted =
            made.and_then(|()| run("mount", &["-o", "loop", image.to_str().unwrap(), mount.to_str().unwrap()]));
        match mounted {
            Ok(()) => Some(SmallDisk { _dir: dir, mount }),
            Err(why) if std::env::var_os("CI").is_some() => panic!("CI runs as root and must mount: {why}"),
            Err(why) => {
                let who = if is_root() { "this container forbids it" } else { "it needs root" };
                eprintln!("skipped: no loop-mounted filesystem here ({who}: {why})");
                None
            }
        }
    }

    /// Bytes an unprivileged process may still take.
    fn available(&self) -> u64 {
        let out = Command::new("df").args(["--output=avail", "-B1"]).arg(&self.mount).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines().nth(1).and_then(|l| l.trim().parse().ok()).expect("df prints the space available")
    }

    /// Another process takes all but `leave` bytes of the free space, in
    /// files of its own: one allocated at once, then written to until the
    /// space left is `leave` or the filesystem refuses.
    fn fill_leaving(&self, leave: u64) -> Vec<PathBuf> {
        use std::io::Write;
        let bulk = self.mount.join("outside-filler");
        let take = self.available().saturating_sub(leave + (2 << 20));
        if take > 0 {
            run("fallocate", &["-l", &take.to_string(), bulk.to_str().unwrap()]).unwrap();
        } else {
            std::fs::File::create(&bulk).unwrap();
        }
        let rest = self.mount.join("outside-filler-rest");
        let mut file = std::fs::File::create(&rest).unwrap();
        while self.available() > leave {
            if file.write_all(&[0u8; 64 << 10]).and_then(|()| file.sync_data()).is_err() {
                break;
            }
        }
        vec![bulk, rest]
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a test that failed may still hold files open in it.
        let _ = run("umount", &["-l", self.mount.to_str().unwrap()]);
    }
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!("{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim())),
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

async fn write_health(appliance: &TestAppliance) -> i32 {
    let channel = tonic::transport::Endpoint::from_shared(appliance.endpoint()).unwrap().connect().await.unwrap();
    let request = HealthCheckRequest { service: "wormbox.v1.Archive.write".into() };
    HealthClient::new(channel).check(request).await.unwrap().into_inner().status
}

/// Waits (real time: the server reads its disk every second) until writes'
/// health is `want`.
async fn health_becomes(appliance: &TestAppliance, want: ServingStatus) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = write_health(appliance).await;
        if status == want as i32 {
            return;
        }
        assert!(Instant::now() < deadline, "writes' health stayed {status}, not {want:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn versions_of(client: &mut ArchiveClient, bucket: &str) -> Vec<v1::ObjectVersion> {
    let mut all = Vec::new();
    let (mut key_marker, mut version_id_marker) = (String::new(), String::new());
    loop {
        let request = v1::ListObjectVersionsRequest {
            bucket: bucket.into(),
            key_marker: key_marker.clone(),
            version_id_marker: version_id_marker.clone(),
            ..Default::default()
        };
        let page = client.list_object_versions(request).await.unwrap().into_inner();
        all.extend(page.versions);
        if !page.is_truncated {
            return all;
        }
        (key_marker, version_id_marker) = (page.next_key_marker, page.next_version_id_marker);
    }
}

async fn verify(appliance: &TestAppliance) -> v1::VerifyIntegrityResponse {
    let mut compliance = appliance.compliance().await.unwrap();
    let report = compliance.verify_integrity(v1::VerifyIntegrityRequest::default()).await.unwrap().into_inner();
    assert!(report.ok, "{report:?}");
    report
}

fn body(n: usize) -> Vec<u8> {
    let mut data = vec![0u8; 64 << 10];
    data[..8].copy_from_slice(&(n as u64).to_be_bytes());
    data
}

fn scraped(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(appliance: &TestAppliance) -> String {
    let addr = appliance.server().metrics_addr.expect("metrics are on by default");
    let out = Command::new("curl").args(["-sf", &format!("http://{addr}/metrics")]).output().unwrap();
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn at_the_reserve_new_data_is_refused_the_rest_goes_on_and_writes_resume_when_space_returns() {
    let Some(disk) = SmallDisk::mount(128) else { return };
    const RESERVE: u64 = 32 << 20;
    let data_dir = disk.mount.join("data");
    let mut appliance = TestAppliance::start_with(|config| {
        config.storage.data_dir = data_dir.clone();
        config.storage.reserve_bytes = Some(RESERVE);
    })
    .await
    .unwrap();
    assert_eq!(write_health(&appliance).await, ServingStatus::Serving as i32);
    let mut client = appliance.archive().await.unwrap();
    create_bucket(&mut client, "full", v1::VersioningStatus::Enabled).await;

    // Ingest until the reserve refuses: each record is acknowledged or
    // refused alone.
    let key = |n: usize| format!("k{:03}", n % 200);
    let mut acked = Vec::new();
    let mut refused = None;
    while refused.is_none() {
        assert!(acked.len() < 4000, "128 MiB took 4000 versions of 64 KiB without a refusal");
        let start = acked.len();
        let records: Vec<_> = (start..start + 50)
            .map(|n| v1::IngestRecord {
                sequence: n as u64,
                bucket: "full".into(),
                key: key(n),
                data: body(n),
                ..Default::default()
            })
            .collect();
        let mut acks = client.ingest(tokio_stream::iter(records)).await.unwrap().into_inner();
        while let Some(ack) = acks.message().await.unwrap() {
            let n = ack.sequence as usize;
            match ack.error {
                None => acked.push((key(n), ack.version_id, n)),
                Some(error) => {
                    refused.get_or_insert(error);
                }
            }
        }
    }
    let refused = refused.unwrap();
    assert_eq!(refused.reason, "DISK_FULL");
    assert!(refused.message.contains("reserve of 32.0 MiB"), "{}", refused.message);
    assert!(acked.len() > 500, "only {} versions before the reserve", acked.len());
    // Refused before any of it was written: the reserve is still free.
    assert!(disk.available() > RESERVE * 3 / 4, "{} bytes left", disk.available());
    // The record refused was 64 KiB: a smaller one may still fit above the
    // reserve, so writes' health may still say SERVING (by design: it says
    // whether even an empty write is refused). Another process takes that
    // last gap (until the deletes below); now it must say NOT_SERVING,
    // whatever size the gap was, and every kind of new data is refused.
    let gap = disk.fill_leaving(RESERVE * 7 / 8);
    health_becomes(&appliance, ServingStatus::NotServing).await;
    let metrics = scrape(&appliance).await;
    assert_eq!(scraped(&metrics, "wormbox_disk_writes_refused"), Some(1.0), "{metrics}");
    assert_eq!(scraped(&metrics, "wormbox_disk_reserve_bytes"), Some(RESERVE as f64));
    assert!(scraped(&metrics, "wormbox_disk_full_refusals_total").unwrap() >= 1.0);

    // A PutObject is refused the same way, an S3 PUT with 507, and a
    // backup, whose staged copy would take the reserve; a new bucket and a
    // new principal are not new data and are taken.
    let refusal = put(&mut client, "full", "unary", &body(1)).await.unwrap_err();
    assert_eq!(refusal.code(), tonic::Code::ResourceExhausted, "{refusal:?}");
    assert_eq!(reason(&refusal), "DISK_FULL");
    create_bucket(&mut client, "still-configurable", v1::VersioningStatus::Enabled).await;
    let (access, secret) = appliance.s3_principal("s3-writer", v1::Role::Writer).await.unwrap();
    let s3 = appliance.s3_client("full", &access, &secret);
    let data = bytes::Bytes::from(body(2));
    let sha256 = data_encoding::BASE64.encode(ring::digest::digest(&ring::digest::SHA256, &data).as_ref());
    let err = s3.put_object_unsigned("via-s3", data, ("x-amz-checksum-sha256", &sha256)).await.unwrap_err();
    let wormbox_replica::S3Error::Service(err) = err else { panic!("{err:?}") };
    assert_eq!((err.status, err.code.as_str()), (507, "InsufficientStorage"), "{err:?}");
    let mut admin = appliance.admin().await.unwrap();
    let refused = match admin.backup(v1::BackupRequest {}).await {
        Err(status) => status,
        Ok(stream) => stream.into_inner().message().await.expect_err("a backup on a full disk"),
    };
    assert_eq!(reason(&refused), "DISK_FULL", "{refused:?}");

    // Reads, listings and verification go on, and nothing acknowledged is missing.
    for (key, version, n) in acked.iter().step_by(97) {
        let (_, got) = get(&mut client, "full", key, version).await.unwrap();
        assert!(got == body(*n), "version {version} of {key} reads back whole");
    }
    assert_eq!(versions_of(&mut client, "full").await.len(), acked.len());
    assert_eq!(verify(&appliance).await.versions_checked, acked.len() as u64);

    // Deletes free space; the next write is taken without anyone telling the server.
    for file in gap {
        std::fs::remove_file(file).unwrap();
    }
    for (key, version, _) in acked.drain(..acked.len() / 2) {
        let request = v1::DeleteObjectRequest { bucket: "full".into(), key, version_id: version, ..Default::default() };
        client.delete_object(request).await.unwrap();
    }
    let n = 10_000;
    let ack = put(&mut client, "full", "after-deletes", &body(n)).await.expect("space returned");
    acked.push(("after-deletes".into(), ack.version_id, n));
    health_becomes(&appliance, ServingStatus::Serving).await;

    // Another process takes the space: seen within a second, without a write.
    let filler = disk.fill_leaving(RESERVE / 2);
    health_becomes(&appliance, ServingStatus::NotServing).await;
    let refused = put(&mut client, "full", "while-filled", &body(1)).await.unwrap_err();
    assert_eq!(reason(&refused), "DISK_FULL");
    filler.iter().for_each(|f| std::fs::remove_file(f).unwrap());
    health_becomes(&appliance, ServingStatus::Serving).await;
    put(&mut client, "full", "after-filler", &body(2)).await.expect("space returned");

    // And after a restart everything acknowledged is there.
    appliance.restart().await.unwrap();
    let mut client = appliance.archive().await.unwrap();
    assert_eq!(versions_of(&mut client, "full").await.len(), acked.len() + 1);
    for (key, version, n) in acked.iter().step_by(41) {
        let (_, got) = get(&mut client, "full", key, version).await.unwrap();
        assert!(got == body(*n), "version {version} of {key} reads back whole after a restart");
    }
    verify(&appliance).await;
    drop(client);
    appliance.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_reserve_a_disk_another_process_filled_fails_the_write_and_corrupts_nothing() {
    let Some(disk) = SmallDisk::mount(96) else { return };
    let data_dir = disk.mount.join("data");
    let mut appliance = TestAppliance::start_with(|config| {
        config.storage.data_dir = data_dir.clone();
        config.storage.reserve_bytes = Some(0);
    })
    .await
    .unwrap();
    let mut client = appliance.archive().await.unwrap();
    create_bucket(&mut client, "enospc", v1::VersioningStatus::Enabled).await;
    let mut acked = Vec::new();
    for n in 0..20 {
        let ack = put(&mut client, "enospc", &format!("before{n}"), &body(n)).await.unwrap();
        acked.push((format!("before{n}"), ack.version_id, n));
    }
    let filler = disk.fill_leaving(0);

    // Blocks reserved ahead of the log take some writes; then the disk refuses.
    let failure = loop {
        assert!(acked.len() < 2000, "a full disk took 2000 more versions");
        let n = acked.len();
        match put(&mut client, "enospc", &format!("during{n}"), &body(n)).await {
            Ok(ack) => acked.push((format!("during{n}"), ack.version_id, n)),
            Err(status) => break status,
        }
    };
    assert_ne!(reason(&failure), "DISK_FULL", "no reserve: the filesystem refused, not the guard");
    assert!(acked.len() >= 20);
    assert_eq!(failure.code(), tonic::Code::Unavailable, "{failure:?}");
    // The server keeps serving reads.
    for (key, version, n) in &acked {
        let (_, got) = get(&mut client, "enospc", key, version).await.unwrap();
        assert!(got == body(*n), "version {version} of {key} reads back whole on a full disk");
    }

    filler.iter().for_each(|f| std::fs::remove_file(f).unwrap());
    // The failed commit cut its bytes off again: once the space is back
    // the next write lands, without a restart.
    let n = acked.len();
    let ack = put(&mut client, "enospc", "after", &body(n)).await.expect("writes once the space is back");
    acked.push(("after".into(), ack.version_id, n));
    drop(client);
    appliance.restart().await.unwrap();
    let mut client = appliance.archive().await.unwrap();
    let n = acked.len();
    let ack = put(&mut client, "enospc", "after-restart", &body(n)).await.expect("writes after a restart");
    acked.push(("after-restart".into(), ack.version_id, n));
    for (key, version, n) in &acked {
        let (_, got) = get(&mut client, "enospc", key, version).await.unwrap();
        assert!(got == body(*n), "version {version} of {key} reads back whole after a restart");
    }
    verify(&appliance).await;
    drop(client);
    appliance.stop().await.unwrap();
}
