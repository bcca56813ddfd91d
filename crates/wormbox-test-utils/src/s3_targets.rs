//! Dev-only: a real S3 Object Lock engine (SeaweedFS, or Ceph RGW) started
//! in a temp dir by `scripts/s3-targets/`, for tests of replication and of
//! the S3 client.
//!
//! Invariant: an engine that is not installed is skipped with a printed
//! reason only while `WORMBOX_S3_TARGETS_REQUIRED` is unset (CI sets it:
//! then it fails); a started engine is stopped when its `S3Target` drops,
//! whether the test passed or failed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use wormbox_model::{Clock, SystemClock};
use wormbox_replica::{Credentials, S3Client, S3Config};
use wormbox_server::config::ReplicationConfig;

use crate::TestAppliance;

/// A running engine; stopped on drop.
#[derive(Debug)]
pub struct S3Target {
    /// `seaweedfs` or `rgw`.
    pub engine: &'static str,
    script: PathBuf,
    dir: tempfile::TempDir,
    /// The S3 user (RGW), for `radosgw-admin mfa create`.
    pub uid: Option<String>,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The S3 access key.
    pub access: String,
    /// Its secret.
    pub secret: String,
}

impl Drop for S3Target {
    fn drop(&mut self) {
        let status = Command::new("bash").arg(&self.script).arg("stop").arg(self.dir.path()).status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("{}: stop failed: {status:?}", self.engine);
        }
    }
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/s3-targets")
}

/// Where `scripts/s3-targets/lib.sh` keeps the tools it installs.
fn tools_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("WORMBOX_S3_TOOLS") {
        return dir;
    }
    let cache = var("WORMBOX_BUILD_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("wormbox")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/wormbox")))
        .unwrap_or_else(|| PathBuf::from("/nonexistent"));
    cache.join("s3-targets")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

impl S3Target {
    /// Starts `engine` (`seaweedfs`, or `rgw` on memstore), or says why it
    /// cannot and returns `None` (see the module's invariant).
    pub fn start(engine: &'static str) -> Option<S3Target> {
        // Memstore: no restart is needed by these tests, and it starts faster.
        Self::start_on(engine, &["--memstore"])
    }

    /// Starts `engine` so that its data survives [`S3Target::stop`] then
    /// [`S3Target::start_again`] (`rgw` on bluestore; SeaweedFS always keeps
    /// it), or says why it cannot and returns `None`.
    pub fn start_restartable(engine: &'static str) -> Option<S3Target> {
        Self::start_on(engine, &[])
    }

    fn start_on(engine: &'static str, rgw_args: &[&str]) -> Option<S3Target> {
        let (script, installed, args): (&str, bool, &[&str]) = match engine {
            "seaweedfs" => ("seaweedfs.sh", tools_dir().join("bin/weed").is_file(), &[]),
            _ => ("rgw.sh", on_path("ceph-mon") && on_path("radosgw"), rgw_args),
        };
        let script = scripts().join(script);
        let missing = if !script.is_file() {
            Some(format!("{} is missing", script.display()))
        } else if !installed {
            Some(format!("{engine} is not installed (scripts/s3-targets/install.sh installs it)"))
        } else {
            None
        };
        if let Some(why) = missing {
            let required = std::env::var_os("WORMBOX_S3_TARGETS_REQUIRED").is_some_and(|v| !v.is_empty());
            assert!(!required, "WORMBOX_S3_TARGETS_REQUIRED is set but {why}");
            println!("SKIPPED: the {engine} tests did not run: {why}");
            eprintln!("SKIPPED: the {engine} tests did not run: {why}");
            return None;
        }
        let dir = tempfile::Builder::new().prefix(&format!("wormbox-s3-{engine}-")).tempdir().expect("a temp dir");
        let mut target = S3Target {
            engine,
            script,
            dir,
            uid: None,
            endpoint: String::new(),
            access: String::new(),
            secret: String::new(),
        };
        target.run_start(args, None);
        Some(target)
    }

    /// Runs the script's `start` (with the S3 endpoint on `port` if given),
    /// then reads the endpoint and keys it exports.
    fn run_start(&mut self, args: &[&str], port: Option<&str>) {
        let started = std::time::Instant::now();
        let mut start = Command::new("bash");
        start.arg(&self.script).arg("start").arg(self.dir.path()).args(args);
        if let Some(port) = port {
            start.env("S3T_S3_PORT", port);
        }
        let output = start.output().expect("bash");
        assert!(
            output.status.success(),
            "{} did not start: {}{}",
            self.engine,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!("{} started in {:.1} s", self.engine, started.elapsed().as_secs_f64());
        let env = Command::new("bash").arg(&self.script).arg("env").arg(self.dir.path()).output().expect("bash");
        assert!(env.status.success(), "{}", String::from_utf8_lossy(&env.stderr));
        for line in String::from_utf8_lossy(&env.stdout).lines() {
            let Some((name, value)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) else { continue };
            match name {
                "AWS_ENDPOINT_URL" => self.endpoint = value.to_owned(),
                "AWS_ACCESS_KEY_ID" => self.access = value.to_owned(),
                "AWS_SECRET_ACCESS_KEY" => self.secret = value.to_owned(),
                "WORMBOX_S3_RGW_UID" => self.uid = Some(value.to_owned()),
                _ => {}
            }
        }
        assert!(!self.endpoint.is_empty() && !self.access.is_empty() && !self.secret.is_empty());
    }

    /// Stops the engine (every daemon of it); returns once none runs. Its
    /// data stays in its directory for [`S3Target::start_again`].
    pub fn stop(&self) {
        let started = std::time::Instant::now();
        let output = Command::new("bash").arg(&self.script).arg("stop").arg(self.dir.path()).output().expect("bash");
        assert!(
            output.status.success(),
            "{} did not stop: {}{}",
            self.engine,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!("{} stopped in {:.1} s", self.engine, started.elapsed().as_secs_f64());
    }

    /// Starts a target stopped by [`S3Target::stop`] again on the same
    /// directory and the same endpoint (a client configured before the stop
    /// reaches it again), with what it held. A target from
    /// [`S3Target::start`] on RGW (memstore) cannot: its data went at stop.
    pub fn start_again(&mut self) {
        let endpoint = self.endpoint.clone();
        let port = endpoint.rsplit(':').next().expect("http://HOST:PORT").to_owned();
        self.run_start(&[], Some(&port));
        assert_eq!(self.endpoint, endpoint, "{}: restarted on the same endpoint", self.engine);
    }

    /// The engine's `radosgw-admin`-style helper script and its directory,
    /// for tests that drive the engine itself.
    pub fn script(&self) -> (&Path, &Path) {
        (&self.script, self.dir.path())
    }

    /// The engine's S3 user as `ACCESS_KEY:SECRET`, as a replication rule's
    /// credential is sealed.
    pub fn credential(&self) -> String {
        format!("{}:{}", self.access, self.secret)
    }

    /// A client of `bucket` as the engine's S3 user.
    pub fn client(&self, bucket: &str) -> S3Client {
        self.client_at(bucket, &self.secret, Arc::new(SystemClock))
    }

    /// A client of `bucket` with `secret` and requests signed at `clock`'s time.
    pub fn client_at(&self, bucket: &str, secret: &str, clock: Arc<dyn Clock>) -> S3Client {
        let config = S3Config {
            endpoint: self.endpoint.clone(),
            region: "us-east-1".to_owned(),
            bucket: bucket.to_owned(),
            credentials: Credentials::new(self.access.clone(), secret.to_owned()),
            ca_pem: None,
            timeout: Duration::from_secs(60),
        };
        S3Client::new(config, clock).expect("a valid client configuration")
    }

    /// A new bucket (with Object Lock when `locked`).
    pub async fn bucket(&self, name: &str, locked: bool) -> S3Client {
        let client = self.client(name);
        client.create_bucket(locked).await.unwrap_or_else(|e| panic!("{}: create {name}: {e}", self.engine));
        client
    }
}

/// A TOTP device of an RGW user (`radosgw-admin mfa create`): once MFA Delete
/// is on, RGW wants one of its codes in `x-amz-mfa` for a versioned DELETE.
/// Its codes are judged by the real time, and each is accepted once.
pub struct MfaDevice {
    serial: String,
    totp: wormbox_token::Totp,
}

impl std::fmt::Debug for MfaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaDevice").field("serial", &self.serial).finish_non_exhaustive()
    }
}

impl MfaDevice {
    /// The `x-amz-mfa` value, `SERIAL CODE`, of the 30 s step `offset` steps
    /// from the real now.
    pub fn header(&self, offset: i64) -> String {
        let now = u64::try_from(SystemClock.now().0 / 1_000_000).expect("after 1970");
        let step = self.totp.step_at(now).expect("after T0").checked_add_signed(offset).expect("a step after T0");
        let code = self.totp.code_at_step(step).expect("step in range");
        format!("{} {}", self.serial, code.expose())
    }
}

impl S3Target {
    /// Creates a TOTP device (RFC 6238, SHA-1, 6 digits, 30 s) with `seed`
    /// for the engine's S3 user, through `rgw.sh admin` (RGW only).
    pub fn mfa_device(&self, serial: &str, seed: &[u8]) -> MfaDevice {
        assert_eq!(self.engine, "rgw", "only RGW has MFA Delete");
        let seed_hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
        let admin = Command::new("bash")
            .arg(&self.script)
            .arg("admin")
            .arg(self.dir.path())
            .args(["mfa", "create", &format!("--uid={}", self.uid.as_deref().unwrap_or("wormbox"))])
            .arg(format!("--totp-serial={serial}"))
            .arg(format!("--totp-seed={seed_hex}"))
            .output()
            .expect("bash");
        assert!(admin.status.success(), "mfa create: {}", String::from_utf8_lossy(&admin.stderr));
        let seed = wormbox_token::Seed::new(seed.to_vec()).expect("a valid seed");
        let totp = wormbox_token::Totp::new(&seed, wormbox_token::OtpParams::default()).expect("default parameters");
        MfaDevice { serial: serial.to_owned(), totp }
    }

    /// Turns versioning and MFA Delete on for `client`'s bucket with
    /// `device`'s current code, and checks that it reads back on.
    pub async fn enable_mfa_delete(&self, client: &S3Client, device: &MfaDevice) {
        client
            .put_bucket_versioning(true, Some(true), Some(&device.header(0)))
            .await
            .unwrap_or_else(|e| panic!("{}: enable MFA Delete: {e}", self.engine));
        let versioning = client.bucket_versioning().await.unwrap_or_else(|e| panic!("{}: {e}", self.engine));
        assert!(versioning.mfa_delete, "{}: MFA Delete reads back on", self.engine);
    }
}

/// Replication rule `dr`: bucket `records` (keys under `prefix`) to
/// `target_bucket` at `endpoint`, in `mode` (`async` or `sync`).
pub fn rule(endpoint: &str, target_bucket: &str, prefix: &str, mode: &str, sync_timeout_ms: u64) -> ReplicationConfig {
    ReplicationConfig {
        name: "dr".into(),
        bucket: "records".into(),
        prefix: prefix.to_owned(),
        endpoint: endpoint.to_owned(),
        region: "us-east-1".into(),
        target_bucket: target_bucket.to_owned(),
        ca_file: None,
        mode: mode.to_owned(),
        sync_timeout_ms,
        minimum_retention_days: None,
        replicate_purges: false,
        evidence_retention_days: 400,
        tier_after_days: None,
        concurrency: wormbox_replica::DEFAULT_CONCURRENCY,
    }
}

/// An appliance running `rule`, its `credential` sealed as the operator
/// would (`wormboxd replica-credential`).
pub async fn appliance_with(rule: ReplicationConfig, credential: String) -> anyhow::Result<TestAppliance> {
    TestAppliance::start_with(move |config| {
        wormbox_server::replication::seal_credential(&config.storage.data_dir, &rule.name, &credential)
            .expect("the credential seals");
        config.replication.push(rule);
    })
    .await
}

/// An appliance with an async rule `dr` copying bucket `records` to
/// `target`'s bucket `replica`.
pub async fn appliance_replicating_to(target: &S3Target) -> anyhow::Result<TestAppliance> {
    appliance_with(rule(&target.endpoint, "replica", "", "async", 30_000), target.credential()).await
}
