//! `loadgen --scale SIZES`: how the archive's costs grow with its size. A
//! real `wormboxd`, a child process so that it can be killed with SIGKILL,
//! is filled through Ingest with 1 KiB records of random bytes (or
//! `--scale-record-bytes`, so that a larger ledger fits a disk) to each size
//! in turn (versions, counted from durable acks), and at each size the run
//! measures: the Ingest rate of those records over the fill's last `--duration-secs`
//! (so that measuring adds no versions); how long `wormboxd` takes to serve
//! again after `kill -9` right after the fill's last ack (its log replay);
//! GetObject of a random version (whole body) and HeadObject, p50 and p99
//! from one client; a ListObjectVersions page of 1,000 from a random key
//! marker; GetInclusionProof of a random ledger entry against the head's
//! checkpoint (each proof checked against the signed root), p50 and p99,
//! with the longest path;
//! the full `VerifyIntegrity` rate, with the data directory's cached pages
//! dropped first, against the disk's sequential read bandwidth measured in
//! the same run; and the retention report of the bucket (every version).
//!
//! Keys: one record in a hundred goes to one of 16 hot keys (tens of
//! thousands of versions each at the largest sizes), the rest spread over
//! 4 M keys.
//!
//! Invariant: every figure comes from this run's daemon and data directory,
//! which only grows from one size to the next; a size whose fill would not
//! fit the disk's free space (estimated from the bytes per version so far)
//! is not filled, and the table says so.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, IsTerminal as _, Read as _, Write as _};
use std::net::SocketAddr;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::{Semaphore, mpsc};
use wormbox_proto::{ArchiveClient, BearerAuth, v1};

use super::{Args, Histogram, end_progress, machine, ms, write_out};

const BUCKET: &str = "scale";
/// Versions sampled (uniformly, over the whole run) for the read phases.
const SAMPLES: usize = 20_000;
/// Reads of each kind per size.
const READS: usize = 2_000;
/// Listing pages per size.
const PAGES: usize = 200;
/// Keys the records other than the hot ones spread over.
const KEYS: u64 = 4_000_000;

type ComplianceClient = v1::compliance_client::ComplianceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerAuth>,
>;

/// The key of record `n`.
fn key(n: u64) -> String {
    if n.is_multiple_of(100) {
        format!("hot/{:02}", (n / 100) % 16)
    } else {
        format!("k/{:07}", (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % KEYS)
    }
}

/// A small, fast generator (xorshift64*): payloads and choices need no more.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// A uniform sample of the versions acknowledged so far: record number and
/// version id (reservoir sampling).
#[derive(Debug)]
struct Reservoir {
    seen: u64,
    kept: Vec<(u64, String)>,
    rng: Rng,
}

impl Reservoir {
    fn offer(&mut self, n: u64, version_id: String) {
        self.seen += 1;
        if self.kept.len() < SAMPLES {
            self.kept.push((n, version_id));
        } else {
            let slot = (self.rng.next() % self.seen) as usize;
            if slot < SAMPLES {
                self.kept[slot] = (n, version_id);
            }
        }
    }
}

/// `wormboxd` as a child process.
#[derive(Debug)]
struct Daemon {
    child: Child,
    addr: SocketAddr,
    /// The metrics listener (the daemon says where before the gRPC line).
    metrics: Option<SocketAddr>,
}

impl Daemon {
    /// Starts `wormboxd --config config` and waits until it says where it
    /// listens (after its archive is open).
    fn start(wormboxd: &Path, config: &Path) -> anyhow::Result<Daemon> {
        let mut child = Command::new(wormboxd)
            .arg("--config")
            .arg(config)
            .env("WORMBOX_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", wormboxd.display()))?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut metrics = None;
        let addr = loop {
            let line = lines.next().context("wormboxd ended before it listened")??;
            if let Some(addr) = line.strip_prefix("wormboxd metrics listening on ") {
                metrics = Some(addr.parse().context("wormboxd's metrics address")?);
            }
            if let Some(addr) = line.strip_prefix("wormboxd listening on ") {
                break addr.parse().context("wormboxd's address")?;
            }
        };
        // Read on, so that the daemon never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Daemon { child, addr, metrics })
    }

    /// The value of the sample `name` (no labels) in a scrape of the
    /// daemon's metrics.
    fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let addr = self.metrics.context("the daemon serves no metrics")?;
        let mut stream = std::net::TcpStream::connect(addr)?;
        write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .with_context(|| format!("no sample {name} in the daemon's metrics"))
    }

    /// The daemon's peak resident set since it started (`VmHWM`).
    fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .context("VmHWM in /proc/PID/status")?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()?;
        Ok(kib * 1024)
    }

    /// SIGKILL: nothing is flushed, closed or synced.
    fn kill_9(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM, and waits for a clean exit.
    fn stop(&mut self) -> anyhow::Result<()> {
        let pid = i32::try_from(self.child.id())?;
        // SAFETY: kill(2) with a pid this process started and has not reaped.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        let status = self.child.wait()?;
        anyhow::ensure!(status.success(), "wormboxd exited with {status}");
        Ok(())
    }

    async fn channel(&self) -> anyhow::Result<tonic::transport::Channel> {
        Ok(tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))?
            .tcp_nodelay(true)
            .connect()
            .await?)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Clients {
    archive: ArchiveClient,
    compliance: ComplianceClient,
}

async fn clients(daemon: &Daemon, credential: &str) -> anyhow::Result<Clients> {
    let auth = || BearerAuth::new(credential).context("credential shape");
    let archive = v1::archive_client::ArchiveClient::with_interceptor(daemon.channel().await?, auth()?)
        .max_decoding_message_size(64 << 20);
    let compliance = v1::compliance_client::ComplianceClient::with_interceptor(daemon.channel().await?, auth()?)
        .max_decoding_message_size(64 << 20);
    Ok(Clients { archive, compliance })
}

/// What an ingest phase did: records acknowledged, the time taken, and the
/// records acknowledged by each quarter second.
#[derive(Debug)]
struct Ingested {
    records: u64,
    took: Duration,
    ticks: Vec<u64>,
}

const TICK: Duration = Duration::from_millis(250);

impl Ingested {
    /// Records per second over the last `window` (all of it when shorter).
    fn rate_over_last(&self, window: Duration) -> f64 {
        let ticks = (window.as_millis() / TICK.as_millis()) as usize;
        if self.ticks.len() <= ticks {
            return self.records as f64 / self.took.as_secs_f64();
        }
        let from = self.ticks[self.ticks.len() - 1 - ticks];
        let last = *self.ticks.last().expect("more ticks than the window");
        (last - from) as f64 / (ticks as f64 * TICK.as_secs_f64())
    }
}

/// Ingests records `next..end` on `streams` streams of `window` records in
/// flight each; samples the acknowledged versions.
async fn ingest(
    daemon: &Daemon,
    credential: &str,
    next: &Arc<AtomicU64>,
    end: u64,
    args: &Args,
    sample: &Arc<Mutex<Reservoir>>,
) -> anyhow::Result<Ingested> {
    let started = Instant::now();
    let acked = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for s in 0..args.streams {
        let mut client = clients(daemon, credential).await?.archive;
        let (next, acked, sample) = (Arc::clone(next), Arc::clone(&acked), Arc::clone(sample));
        let (window, record_bytes) = (args.window, args.scale_record_bytes);
        handles.push(tokio::spawn(async move {
            let credits = Arc::new(Semaphore::new(window));
            let (tx, rx) = mpsc::channel::<v1::IngestRecord>(window);
            let producer = {
                let credits = Arc::clone(&credits);
                tokio::spawn(async move {
                    let mut rng = Rng(0x5CA1_AB1E ^ ((s as u64 + 1) << 32) ^ next.load(Ordering::Relaxed));
                    loop {
                        let Ok(permit) = credits.acquire().await else { break };
                        permit.forget();
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= end {
                            next.fetch_sub(1, Ordering::Relaxed);
                            break;
                        }
                        let mut data = vec![0; record_bytes];
                        rng.fill(&mut data);
                        let record = v1::IngestRecord {
                            sequence: n,
                            bucket: BUCKET.into(),
                            key: key(n),
                            data,
                            ..Default::default()
                        };
                        if tx.send(record).await.is_err() {
                            break;
                        }
                    }
                })
            };
            let mut acks = client.ingest(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
            while let Some(ack) = acks.message().await? {
                if let Some(error) = ack.error {
                    anyhow::bail!("record {} refused: {} {}", ack.sequence, error.reason, error.message);
                }
                sample.lock().expect("sample").offer(ack.sequence, ack.version_id);
                credits.add_permits(1);
                acked.fetch_add(1, Ordering::Relaxed);
            }
            producer.await?;
            anyhow::Ok(())
        }));
    }
    let ticks = Arc::new(Mutex::new(Vec::new()));
    let ticker = {
        let (acked, ticks) = (Arc::clone(&acked), Arc::clone(&ticks));
        let terminal = std::io::stderr().is_terminal();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.tick().await;
            loop {
                tick.tick().await;
                let done = acked.load(Ordering::Relaxed);
                let mut ticks = ticks.lock().expect("ticks");
                ticks.push(done);
                if terminal && ticks.len().is_multiple_of(4) {
                    let rate = done as f64 / started.elapsed().as_secs_f64();
                    eprint!("\r  ingest: {done:>11} records, {rate:>8.0} records/s");
                    let _ = std::io::stderr().flush();
                }
            }
        })
    };
    for handle in handles {
        handle.await??;
    }
    ticker.abort();
    end_progress();
    let records = acked.load(Ordering::Relaxed);
    let mut ticks = ticks.lock().expect("ticks").clone();
    ticks.push(records);
    Ok(Ingested { records, took: started.elapsed(), ticks })
}

/// GetObject (whole body) or HeadObject of `READS` random sampled versions,
/// one at a time.
async fn reads(
    archive: &mut ArchiveClient,
    sample: &[(u64, String)],
    get: bool,
    record_bytes: usize,
) -> anyhow::Result<Histogram> {
    let mut rng = Rng(0xDEC0_DE00 + u64::from(get));
    let mut latencies = Histogram::default();
    for _ in 0..READS {
        let (n, version_id) = &sample[rng.below(sample.len())];
        let at = Instant::now();
        if get {
            let request = v1::GetObjectRequest { bucket: BUCKET.into(), key: key(*n), version_id: version_id.clone() };
            let mut parts = archive.get_object(request).await?.into_inner();
            let mut bytes = 0;
            while let Some(part) = parts.message().await? {
                if let Some(v1::get_object_response::Part::Data(data)) = part.part {
                    bytes += data.len();
                }
            }
            anyhow::ensure!(bytes == record_bytes, "version {version_id} of record {n} read back {bytes} bytes");
        } else {
            let request = v1::HeadObjectRequest { bucket: BUCKET.into(), key: key(*n), version_id: version_id.clone() };
            let head = archive.head_object(request).await?.into_inner();
            anyhow::ensure!(head.version.is_some_and(|v| v.size == record_bytes as u64), "record {n}: {version_id}");
        }
        latencies.add(at.elapsed());
    }
    Ok(latencies)
}

/// GetInclusionProof of `READS` random ledger entries against the head's
/// checkpoint, one at a time, each checked against its signed root; and
/// the longest audit path, in hashes.
async fn proofs(compliance: &mut ComplianceClient) -> anyhow::Result<(Histogram, usize)> {
    let checkpoint = compliance.get_checkpoint(v1::GetCheckpointRequest::default()).await?.into_inner();
    let checkpoint = checkpoint.checkpoint.context("no checkpoint")?;
    let root = wormbox_model::Digest::from_slice(&checkpoint.tree_root).context("the checkpoint signs no root")?;
    let size = checkpoint.sequence;
    let mut rng = Rng(0x0000_0F00F);
    let mut latencies = Histogram::default();
    let mut longest = 0;
    for _ in 0..READS {
        let sequence = 1 + rng.below(usize::try_from(size)?) as u64;
        let request = v1::GetInclusionProofRequest { ledger_sequence: sequence, tree_size: size, ..Default::default() };
        let at = Instant::now();
        let proof = compliance.get_inclusion_proof(request).await?.into_inner();
        latencies.add(at.elapsed());
        let path: Vec<wormbox_model::Digest> = proof
            .path
            .iter()
            .map(|h| wormbox_model::Digest::from_slice(h).context("a path hash"))
            .collect::<Result<_, _>>()?;
        let leaf = wormbox_store::merkle::leaf_hash(&proof.entry);
        anyhow::ensure!(
            wormbox_store::merkle::verify_inclusion(sequence - 1, size, &leaf, &path, &root),
            "the proof of entry {sequence} does not verify"
        );
        longest = longest.max(path.len());
    }
    Ok((latencies, longest))
}

/// ListObjectVersions pages of 1,000 from the keys of random sampled versions.
async fn pages(archive: &mut ArchiveClient, sample: &[(u64, String)]) -> anyhow::Result<Histogram> {
    let mut rng = Rng(0x0005_CA1E);
    let mut latencies = Histogram::default();
    for _ in 0..PAGES {
        let (n, _) = &sample[rng.below(sample.len())];
        let request = v1::ListObjectVersionsRequest {
            bucket: BUCKET.into(),
            key_marker: key(*n),
            max_keys: 1000,
            ..Default::default()
        };
        let at = Instant::now();
        let page = archive.list_object_versions(request).await?.into_inner();
        latencies.add(at.elapsed());
        anyhow::ensure!(
            page.versions.len() == 1000 || !page.is_truncated,
            "a truncated page of {} versions",
            page.versions.len()
        );
    }
    Ok(latencies)
}

/// The disk's sequential read bandwidth, in MB/s: a file of `bytes` written
/// and synced, its cached pages dropped, read back in 1 MiB reads.
fn disk_read_mb_s(dir: &Path, bytes: usize) -> anyhow::Result<f64> {
    let path = dir.join("sequential-read.bin");
    let mut file = std::fs::File::create(&path)?;
    let mut block = vec![0u8; 1 << 20];
    let mut rng = Rng(0xD15C);
    for _ in 0..bytes / block.len() {
        rng.fill(&mut block);
        file.write_all(&block)?;
    }
    file.sync_data()?;
    drop(file);
    drop_cached(&path)?;
    let mut file = std::fs::File::open(&path)?;
    let at = Instant::now();
    let mut read = 0;
    loop {
        match file.read(&mut block)? {
            0 => break,
            n => read += n,
        }
    }
    let elapsed = at.elapsed();
    std::fs::remove_file(&path)?;
    Ok(read as f64 / elapsed.as_secs_f64() / 1e6)
}

/// Asks the kernel to drop `path`'s cached pages (they are clean: synced);
/// a file the engine removed meanwhile has none.
fn drop_cached(path: &Path) -> anyhow::Result<()> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    // SAFETY: posix_fadvise on a file descriptor this function owns.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    anyhow::ensure!(rc == 0, "posix_fadvise: {}", std::io::Error::from_raw_os_error(rc));
    Ok(())
}

/// Every regular file under `dir`, and the bytes they take on disk; files
/// the engine removes while they are listed are left out.
fn files(dir: &Path) -> anyhow::Result<(Vec<PathBuf>, u64)> {
    let gone = |err: &std::io::Error| err.kind() == std::io::ErrorKind::NotFound;
    let (mut found, mut bytes, mut pending) = (Vec::new(), 0, vec![dir.to_path_buf()]);
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let meta = match entry.and_then(|entry| Ok((entry.path(), entry.metadata()?))) {
                Ok(found) => found,
                Err(err) if gone(&err) => continue,
                Err(err) => return Err(err.into()),
            };
            let (path, meta) = meta;
            if meta.is_dir() {
                pending.push(path);
            } else if meta.is_file() {
                bytes += meta.blocks() * 512;
                found.push(path);
            }
        }
    }
    Ok((found, bytes))
}

/// Free bytes on the filesystem of `dir` (`df`).
fn free_bytes(dir: &Path) -> anyhow::Result<u64> {
    let out = Command::new("df").arg("-B1").arg("--output=avail").arg(dir).output()?;
    let text = String::from_utf8(out.stdout)?;
    text.lines().nth(1).context("df's answer")?.trim().parse().context("df's figure")
}

/// One size's figures.
#[derive(Debug, Default)]
struct Row {
    versions: u64,
    /// Set for the row of `--scale-then-wormboxd`: no fill, another binary.
    reopened: bool,
    fill: Duration,
    filled: u64,
    disk_bytes: u64,
    ingest: f64,
    get: Histogram,
    head: Histogram,
    list: Histogram,
    /// GetInclusionProof latencies, and the longest path in hashes.
    proofs: Histogram,
    proof_hashes: usize,
    open: Duration,
    /// The archive's log the open after `kill -9` replayed into the index
    /// (what the index had not flushed), as the daemon reports it.
    replayed_bytes: u64,
    /// How long verify took and the record bytes it checked; `None` when skipped.
    verify: Option<(Duration, u64)>,
    /// The daemon's peak resident set after verify (it was started after the fill).
    verify_rss: u64,
    /// How long the retention report took and its rows; `None` when skipped.
    report: Option<(Duration, u64)>,
}

impl Row {
    fn verify_mb_s(&self) -> Option<f64> {
        self.verify.map(|(took, bytes)| bytes as f64 / took.as_secs_f64() / 1e6)
    }
}

/// Whether `--scale-skip` names `phase`.
fn skip(args: &Args, phase: &str) -> bool {
    args.scale_skip.iter().any(|p| p == phase)
}

fn gb(bytes: u64) -> f64 {
    bytes as f64 / 1e9
}

/// Runs the scale measurement and returns its table, in Markdown.
pub(super) async fn run(args: &Args, sizes: &[u64]) -> anyhow::Result<String> {
    let wormboxd = match &args.wormboxd {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .map(|release| release.join("wormboxd"))
            .context("the load generator's directory")?,
    };
    anyhow::ensure!(
        wormboxd.is_file(),
        "{} is missing: build it first (`cargo build --release -p wormbox-server --bin wormboxd`) or name it \
         with --wormboxd",
        wormboxd.display()
    );
    if let Some(unknown) = args.scale_skip.iter().find(|p| !["verify", "report"].contains(&p.as_str())) {
        anyhow::bail!("--scale-skip takes `verify` and `report`, not `{unknown}`");
    }
    let scratch = tempfile::Builder::new().prefix("wormbox-scale-").tempdir_in(&args.dir)?;
    let data = scratch.path().join("data");
    let config = scratch.path().join("wormboxd.toml");
    std::fs::write(
        &config,
        format!(
            "[listen]\naddr = \"127.0.0.1:0\"\n[s3]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n[storage]\ndata_dir = {:?}\n\
             block_cache_mib = {}\nwrite_buffer_mib = {}\n[evidence]\nscrub_interval_seconds = 0\n",
            data.display().to_string(),
            args.block_cache_mib,
            args.write_buffer_mib
        ),
    )?;
    eprintln!("scale: measuring the disk's sequential read bandwidth ...");
    let disk_read = tokio::task::block_in_place(|| disk_read_mb_s(scratch.path(), 4 << 30))?;
    let mut daemon = Daemon::start(&wormboxd, &config)?;
    let credential = std::fs::read_to_string(data.join(wormbox_server::ADMIN_CREDENTIAL_FILE))?.trim().to_owned();
    let mut c = clients(&daemon, &credential).await?;
    c.archive.create_bucket(v1::CreateBucketRequest { bucket: BUCKET.into(), ..Default::default() }).await?;
    let versioning = v1::PutBucketVersioningRequest {
        bucket: BUCKET.into(),
        status: v1::VersioningStatus::Enabled as i32,
        ..Default::default()
    };
    c.archive.put_bucket_versioning(versioning).await?;

    let next = Arc::new(AtomicU64::new(0));
    let sample = Arc::new(Mutex::new(Reservoir { seen: 0, kept: Vec::new(), rng: Rng(0x5A4D_91E5) }));
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for &size in sizes {
        let versions = next.load(Ordering::Relaxed);
        if size <= versions {
            notes.push(format!("{size} versions: already past ({versions})"));
            continue;
        }
        // Room for the fill at the bytes per version so far (2 KB before
        // any), with a third more for compaction's transient copies.
        let (_, used) = files(&data)?;
        let per_version = if versions > 0 { used as f64 / versions as f64 } else { 2000.0 };
        let needed = ((size - versions) as f64 * per_version * 4.0 / 3.0) as u64;
        let free = free_bytes(scratch.path())?;
        if needed > free {
            notes.push(format!(
                "{size} versions: not filled; it needs about {:.1} GB ({per_version:.0} B a version so far, and a \
                 third more while compacting) and {:.1} GB are free",
                gb(needed),
                gb(free)
            ));
            break;
        }
        let mut row = Row { versions: size, ..Row::default() };
        eprintln!("scale: filling to {size} versions ...");
        let filled = ingest(&daemon, &credential, &next, size, args, &sample).await?;
        (row.fill, row.filled) = (filled.took, filled.records);
        row.ingest = filled.rate_over_last(Duration::from_secs(args.duration_secs));
        // Killed right after the fill's last durable ack: what the index's
        // memtables held is in the archive's log only, replayed at open.
        daemon.kill_9()?;
        (daemon, c) = open_timed(&wormboxd, &config, &credential, &mut row).await?;

        settle(args).await;
        eprintln!("scale: {size} versions: reads and listings ...");
        let kept = sample.lock().expect("sample").kept.clone();
        measure_reads(&mut c, &data, &kept, args, &mut row).await?;

        let (paths, disk_bytes) = files(&data)?;
        row.disk_bytes = disk_bytes;
        if !skip(args, "verify") {
            eprintln!("scale: {size} versions: verify ...");
            for path in &paths {
                drop_cached(path)?;
            }
            let at = Instant::now();
            let verified = c.compliance.verify_integrity(v1::VerifyIntegrityRequest::default()).await?.into_inner();
            anyhow::ensure!(verified.ok, "verify failed at {size} versions: {:?}", verified.divergences);
            row.verify = Some((at.elapsed(), verified.bytes_checked));
            // Restarted after the fill: its peak is the reads' and verify's.
            row.verify_rss = daemon.peak_rss_bytes()?;
        }

        if !skip(args, "report") {
            eprintln!("scale: {size} versions: retention report ...");
            let at = Instant::now();
            let request = v1::RetentionReportRequest { bucket: BUCKET.into(), ..Default::default() };
            let mut parts = c.compliance.retention_report(request).await?.into_inner();
            let mut rows = 0;
            while let Some(part) = parts.message().await? {
                if let Some(v1::retention_report_part::Part::Row(_)) = part.part {
                    rows += 1;
                }
            }
            row.report = Some((at.elapsed(), rows));
        }
        eprintln!(
            "scale: {size}: ingest {:.0}/s, get p99 {:.2} ms, open {:.1} s, verify {} MB/s, report {} s",
            row.ingest,
            ms(row.get.percentile(0.99)),
            row.open.as_secs_f64(),
            row.verify_mb_s().map_or("-".to_owned(), |r| format!("{r:.0}")),
            row.report.map_or("-".to_owned(), |(took, _)| format!("{:.1}", took.as_secs_f64())),
        );
        rows.push(row);
        // Written after each size: a run stopped during a long one keeps
        // the sizes it finished.
        write_out(args, &table(args, sizes, disk_read, &rows, &notes))?;
    }
    daemon.stop()?;
    if let (Some(then), Some(last)) = (&args.scale_then_wormboxd, rows.last()) {
        let mut row = Row { versions: last.versions, reopened: true, ..Row::default() };
        eprintln!("scale: opening the archive with {} ...", then.display());
        let (mut daemon, mut c) = open_timed(then, &config, &credential, &mut row).await?;
        settle(args).await;
        let kept = sample.lock().expect("sample").kept.clone();
        measure_reads(&mut c, &data, &kept, args, &mut row).await?;
        row.disk_bytes = files(&data)?.1;
        daemon.stop()?;
        notes.push(format!(
            "the last row (marked `then`): the archive of the row before, stopped cleanly and opened by {} (its \
             open, which upgrades the archive's format where that binary's is newer, took {:.1} s), then measured \
             the same way",
            then.display(),
            row.open.as_secs_f64()
        ));
        rows.push(row);
        write_out(args, &table(args, sizes, disk_read, &rows, &notes))?;
    }
    Ok(table(args, sizes, disk_read, &rows, &notes))
}

/// Starts `wormboxd` on the archive and records in `row` how long it took
/// to serve (the open: a replay after `kill -9`, an upgrade of the format)
/// and the log it replayed.
async fn open_timed(
    wormboxd: &Path,
    config: &Path,
    credential: &str,
    row: &mut Row,
) -> anyhow::Result<(Daemon, Clients)> {
    let at = Instant::now();
    let daemon = Daemon::start(wormboxd, config)?;
    let mut c = clients(&daemon, credential).await?;
    c.archive.get_bucket(v1::GetBucketRequest { bucket: BUCKET.into() }).await?;
    row.open = at.elapsed();
    // A build before the metrics (an A/B run) reports 0.
    row.replayed_bytes = daemon.metric("wormbox_engine_replayed_at_open_bytes").unwrap_or_else(|err| {
        eprintln!("scale: the log replayed at open is not known: {err:#}");
        0.0
    }) as u64;
    Ok((daemon, c))
}

/// `--scale-settle-secs`: a pause after an open, before the reads.
async fn settle(args: &Args) {
    if args.scale_settle_secs > 0 {
        eprintln!("scale: waiting {} s for the index to settle ...", args.scale_settle_secs);
        tokio::time::sleep(Duration::from_secs(args.scale_settle_secs)).await;
    }
}

/// GetObject, HeadObject, ListObjectVersions and GetInclusionProof, in
/// turn, with the archive's files out of the page cache first, so that two
/// opens (after a fill, after another binary's upgrade read it all) start
/// alike.
async fn measure_reads(
    c: &mut Clients,
    data: &Path,
    kept: &[(u64, String)],
    args: &Args,
    row: &mut Row,
) -> anyhow::Result<()> {
    for path in files(data)?.0 {
        drop_cached(&path)?;
    }
    row.get = reads(&mut c.archive, kept, true, args.scale_record_bytes).await?;
    row.head = reads(&mut c.archive, kept, false, args.scale_record_bytes).await?;
    row.list = pages(&mut c.archive, kept).await?;
    (row.proofs, row.proof_hashes) = proofs(&mut c.compliance).await?;
    Ok(())
}

fn table(args: &Args, sizes: &[u64], disk_read: f64, rows: &[Row], notes: &[String]) -> String {
    let sizes = sizes.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    let mut out = vec![
        format!("Machine: {}", machine()),
        format!("Data directory: {} (one archive, grown from size to size)", args.dir.display()),
        format!(
            "Command: `cargo build --release -p wormbox-server --bin wormboxd && cargo bench -p wormbox-benches \
             --bench loadgen -- --scale {sizes} --duration-secs {} --streams {} --window {} --block-cache-mib {} \
             --write-buffer-mib {}{}{}{}{}`",
            args.duration_secs,
            args.streams,
            args.window,
            args.block_cache_mib,
            args.write_buffer_mib,
            if args.scale_skip.is_empty() {
                String::new()
            } else {
                format!(" --scale-skip {}", args.scale_skip.join(","))
            },
            if args.scale_record_bytes == 1024 {
                String::new()
            } else {
                format!(" --scale-record-bytes {}", args.scale_record_bytes)
            },
            match args.scale_settle_secs {
                0 => String::new(),
                secs => format!(" --scale-settle-secs {secs}"),
            },
            args.scale_then_wormboxd.as_ref().map_or(String::new(), |then| format!(
                " --wormboxd {} --scale-then-wormboxd {}",
                args.wormboxd.as_ref().map_or("target/release/wormboxd".to_owned(), |w| w.display().to_string()),
                then.display()
            )),
        ),
        format!("Disk sequential read (4 GiB file, cache dropped, 1 MiB reads): {disk_read:.0} MB/s"),
        String::new(),
        format!(
            "| versions | fill: s (records/s) | on disk GB | Ingest {} B records/s | GetObject p50 / p99 ms | \
         HeadObject p50 / p99 ms | ListObjectVersions 1,000 p50 / p99 ms | GetInclusionProof p50 / p99 ms (path \
         hashes) | serving after kill -9 s (log replayed MB) | verify MB/s (of disk read); daemon peak GB | retention \
         report s (rows) |",
            args.scale_record_bytes
        ),
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |".to_owned(),
    ];
    for row in rows {
        let verify = match row.verify_mb_s() {
            Some(rate) => format!("{rate:.0} ({:.2}); {:.1}", rate / disk_read, gb(row.verify_rss)),
            None => "-".to_owned(),
        };
        let report = match row.report {
            Some((took, rows)) => format!("{:.1} ({rows})", took.as_secs_f64()),
            None => "-".to_owned(),
        };
        let pq = |h: &Histogram| format!("{:.2} / {:.2}", ms(h.percentile(0.5)), ms(h.percentile(0.99)));
        let (versions, fill, ingest) = if row.reopened {
            (format!("{} then", row.versions), "-".to_owned(), "-".to_owned())
        } else {
            (
                row.versions.to_string(),
                format!("{:.0} ({:.0})", row.fill.as_secs_f64(), row.filled as f64 / row.fill.as_secs_f64()),
                format!("{:.0}", row.ingest),
            )
        };
        out.push(format!(
            "| {versions} | {fill} | {:.1} | {ingest} | {} | {} | {} | {} ({}) | {:.1} ({:.0}) | {verify} | {report} |",
            gb(row.disk_bytes),
            pq(&row.get),
            pq(&row.head),
            pq(&row.list),
            pq(&row.proofs),
            row.proof_hashes,
            row.open.as_secs_f64(),
            row.replayed_bytes as f64 / 1e6,
        ));
    }
    let filled: Vec<&Row> = rows.iter().filter(|row| !row.reopened).collect();
    if let (Some(first), Some(last)) = (filled.first(), filled.last())
        && filled.len() > 1
    {
        let mut targets: BTreeMap<&str, String> = [
            (
                "Ingest at the largest size / at the smallest (target >= 0.85)",
                format!("{:.2}", last.ingest / first.ingest),
            ),
            (
                "GetObject p99 at the largest size / at the smallest (target <= 2)",
                format!("{:.2}", ms(last.get.percentile(0.99)) / ms(first.get.percentile(0.99)).max(1e-9)),
            ),
            (
                "serving after kill -9, the longest (target <= 10 s)",
                format!("{:.1} s", filled.iter().map(|r| r.open.as_secs_f64()).fold(0.0, f64::max)),
            ),
        ]
        .into_iter()
        .collect();
        if let Some(rate) = last.verify_mb_s() {
            targets.insert(
                "verify rate / disk sequential read, at the largest size (target >= 0.5)",
                format!("{:.2}", rate / disk_read),
            );
        }
        out.push(String::new());
        for (what, figure) in targets {
            out.push(format!("- {what}: {figure}"));
        }
    }
    if !notes.is_empty() {
        out.push(String::new());
        out.extend(notes.iter().map(|note| format!("- {note}")));
    }
    out.join("\n") + "\n"
}
