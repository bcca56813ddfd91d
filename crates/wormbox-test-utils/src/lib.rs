//! Dev-only: a whole appliance in one call, for tests and benches.
//!
//! Invariant: each `TestAppliance` owns its world: a temp data dir, a real
//! RocksDB backend, a listener on 127.0.0.1 port 0 bound before serving, and a
//! `ManualClock`; nothing is shared between tests and no test sleeps.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use tonic::transport::{Channel, Endpoint};
use wormbox_model::{Clock, ManualClock, Timestamp};
use wormbox_proto::{AdminClient, ArchiveClient, BearerAuth, ComplianceClient, MfaClient, v1};
use wormbox_server::{RunningServer, WormboxdConfig};

pub use tempfile::TempDir;

pub mod s3_targets;

/// 2026-11-27T00:00:00Z, the start of every test clock.
pub const TEST_EPOCH: Timestamp = Timestamp(1_795_737_600_000_000);

/// A running appliance for one test.
#[derive(Debug)]
pub struct TestAppliance {
    dir: TempDir,
    config: WormboxdConfig,
    clock: Arc<ManualClock>,
    server: Option<RunningServer>,
    admin_credential: String,
}

impl TestAppliance {
    /// Starts an appliance with default limits.
    pub async fn start() -> anyhow::Result<TestAppliance> {
        TestAppliance::start_with(|_| {}).await
    }

    /// Starts an appliance after `adjust` has changed its config.
    pub async fn start_with(adjust: impl FnOnce(&mut WormboxdConfig)) -> anyhow::Result<TestAppliance> {
        let dir = tempfile::Builder::new().prefix("wormbox-test-").tempdir().context("creating temp dir")?;
        let mut config = WormboxdConfig::default();
        config.listen.addr = "127.0.0.1:0".parse().expect("valid address");
        config.s3.listen = "127.0.0.1:0".parse().expect("valid address");
        config.metrics.listen = "127.0.0.1:0".parse().expect("valid address");
        config.storage.data_dir = dir.path().join("data");
        config.storage.write_buffer_mib = 4;
        config.storage.block_cache_mib = 8;
        adjust(&mut config);
        let clock = Arc::new(ManualClock::new(TEST_EPOCH));
        let server = wormbox_server::start(&config, clock.clone()).await.context("starting wormboxd")?;
        let admin_credential = server.new_admin_credential.clone().context("first start creates an admin")?;
        Ok(TestAppliance { dir, config, clock, server: Some(server), admin_credential })
    }

    /// Stops the server and starts it again on the same data (and a new port).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if let Some(server) = self.server.take() {
            server.stop().await.context("stopping wormboxd")?;
        }
        let server = wormbox_server::start(&self.config, self.clock.clone()).await.context("restarting wormboxd")?;
        anyhow::ensure!(server.new_admin_credential.is_none(), "a restart must not create a new admin");
        self.server = Some(server);
        Ok(())
    }

    /// Changes the config (`adjust`), then restarts on the same data.
    pub async fn restart_with(&mut self, adjust: impl FnOnce(&mut WormboxdConfig)) -> anyhow::Result<()> {
        adjust(&mut self.config);
        self.restart().await
    }

    /// A second appliance on a copy of this one's data, taken while it was
    /// stopped (it is restarted): the same signing key and admin, the same
    /// history up to now, and its own from here on (a fork, or a restored
    /// backup). Its clock starts where this one's is.
    pub async fn fork(&mut self) -> anyhow::Result<TestAppliance> {
        self.stop().await?;
        let dir = tempfile::Builder::new().prefix("wormbox-fork-").tempdir().context("creating temp dir")?;
        let copy = dir.path().join("data");
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(&self.config.storage.data_dir)
            .arg(&copy)
            .status()
            .context("copying the data directory")?;
        anyhow::ensure!(copied.success(), "cp -a failed");
        self.restart().await?;
        let mut config = self.config.clone();
        config.storage.data_dir = copy;
        let clock = Arc::new(ManualClock::new(self.clock.now()));
        let server = wormbox_server::start(&config, clock.clone()).await.context("starting the fork")?;
        let admin_credential = self.admin_credential.clone();
        Ok(TestAppliance { dir, config, clock, server: Some(server), admin_credential })
    }

    /// The server's `http://` endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server().addr)
    }

    /// The S3 endpoint's `http://` URL.
    pub fn s3_endpoint(&self) -> String {
        format!("http://{}", self.server().s3_addr.expect("the S3 endpoint is enabled"))
    }

    /// The running server.
    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("the server runs between start and drop")
    }

    /// The clock shared with the server.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// The clock shared with the server, to hand to a simulated token.
    pub fn shared_clock(&self) -> Arc<ManualClock> {
        Arc::clone(&self.clock)
    }

    /// The appliance's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.config.storage.data_dir
    }

    /// The temp dir that holds everything of this test.
    pub fn temp_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// The first admin's `AKID:SECRET`.
    pub fn admin_credential(&self) -> &str {
        &self.admin_credential
    }

    async fn channel(&self) -> anyhow::Result<Channel> {
        Endpoint::from_shared(self.endpoint())?.connect().await.context("connecting to wormboxd")
    }

    /// An Archive client authenticated as the first admin.
    pub async fn archive(&self) -> anyhow::Result<ArchiveClient> {
        self.archive_as(&self.admin_credential).await
    }

    /// An Archive client with the given credential.
    pub async fn archive_as(&self, credential: &str) -> anyhow::Result<ArchiveClient> {
        let auth = BearerAuth::new(credential).context("credential shape")?;
        Ok(v1::archive_client::ArchiveClient::with_interceptor(self.channel().await?, auth)
            .max_decoding_message_size(64 << 20))
    }

    /// An Admin client authenticated as the first admin.
    pub async fn admin(&self) -> anyhow::Result<AdminClient> {
        self.admin_as(&self.admin_credential).await
    }

    /// An Admin client with the given credential.
    pub async fn admin_as(&self, credential: &str) -> anyhow::Result<AdminClient> {
        let auth = BearerAuth::new(credential).context("credential shape")?;
        Ok(v1::admin_client::AdminClient::with_interceptor(self.channel().await?, auth))
    }

    /// A Compliance client with the admin credential.
    pub async fn compliance(&self) -> anyhow::Result<ComplianceClient> {
        self.compliance_as(&self.admin_credential).await
    }

    /// A Compliance client with the given credential.
    pub async fn compliance_as(&self, credential: &str) -> anyhow::Result<ComplianceClient> {
        let auth = BearerAuth::new(credential).context("credential shape")?;
        Ok(v1::compliance_client::ComplianceClient::with_interceptor(self.channel().await?, auth))
    }

    /// Stops the server, leaving its data directory for offline inspection;
    /// `restart` starts it again.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(server) = self.server.take() {
            server.stop().await.context("stopping wormboxd")?;
        }
        Ok(())
    }

    /// An Mfa client with the given credential.
    pub async fn mfa_as(&self, credential: &str) -> anyhow::Result<MfaClient> {
        let auth = BearerAuth::new(credential).context("credential shape")?;
        Ok(v1::mfa_client::MfaClient::with_interceptor(self.channel().await?, auth))
    }

    /// Creates a principal with `role` and returns its `AKID:SECRET`.
    pub async fn principal(&self, name: &str, role: v1::Role) -> anyhow::Result<String> {
        let created = self
            .admin()
            .await?
            .create_principal(v1::CreatePrincipalRequest {
                name: name.to_owned(),
                role: role as i32,
                ..Default::default()
            })
            .await?
            .into_inner();
        let principal = created.principal.context("principal in response")?;
        Ok(format!("{}:{}", principal.access_key_id, created.secret))
    }

    /// Creates a principal with an S3 secret; returns its S3 access key id
    /// and secret access key.
    pub async fn s3_principal(&self, name: &str, role: v1::Role) -> anyhow::Result<(String, String)> {
        let created = self
            .admin()
            .await?
            .create_principal(v1::CreatePrincipalRequest {
                name: name.to_owned(),
                role: role as i32,
                s3: true,
                ..Default::default()
            })
            .await?
            .into_inner();
        let principal = created.principal.context("principal in response")?;
        Ok((principal.access_key_id, created.s3_secret))
    }

    /// A client of bucket `bucket` on this appliance's S3 endpoint, signing
    /// as `access`/`secret` with the real time (S3 checks request dates
    /// against it).
    pub fn s3_client(&self, bucket: &str, access: &str, secret: &str) -> wormbox_replica::S3Client {
        let config = wormbox_replica::S3Config {
            endpoint: self.s3_endpoint(),
            region: "us-east-1".to_owned(),
            bucket: bucket.to_owned(),
            credentials: wormbox_replica::Credentials::new(access, secret),
            ca_pem: None,
            timeout: std::time::Duration::from_secs(60),
        };
        wormbox_replica::S3Client::new(config, Arc::new(wormbox_model::SystemClock)).expect("a valid client")
    }
}

/// The seed of every simulated test token: RFC 6238's SHA-1 seed.
pub const TOKEN_SEED: &[u8] = b"12345678901234567890";

/// The same seed in base32, as an operator would type it.
pub const TOKEN_SEED_BASE32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// Reads a test's `ManualClock`, so that a simulated token and the appliance
/// share one time that the test moves.
#[derive(Debug)]
pub struct ClockTime(pub Arc<ManualClock>);

impl wormbox_tokensim::TimeSource for ClockTime {
    fn unix_millis(&self) -> i64 {
        self.0.now().0 / 1000
    }
}

/// A simulated token served on a real pseudo-terminal by a background thread,
/// reading the test's clock.
#[derive(Debug)]
pub struct SimToken {
    /// The terminal path a client opens (`serial:PATH`).
    pub path: String,
    /// The token's serial.
    pub serial: String,
    /// A generator with the token's seed and parameters, to compute codes.
    pub totp: wormbox_token::Totp,
}

impl SimToken {
    /// Starts a token with `TOKEN_SEED`, `step_secs` steps, `fault`, and its
    /// clock `clock_offset_secs` off the test clock.
    pub fn start(
        clock: Arc<ManualClock>,
        serial: &str,
        step_secs: u64,
        fault: wormbox_tokensim::Fault,
        clock_offset_secs: i64,
    ) -> anyhow::Result<SimToken> {
        let params = wormbox_token::OtpParams { step_secs, ..wormbox_token::OtpParams::default() };
        let seed = wormbox_token::Seed::new(TOKEN_SEED.to_vec())?;
        let totp = wormbox_token::Totp::new(&seed, params)?;
        let config = wormbox_tokensim::TokenConfig {
            serial: serial.to_owned(),
            seed,
            params,
            clock_offset_secs,
            drift_ppm: 0,
            fault,
        };
        let mut token = wormbox_tokensim::Token::new(config, Box::new(ClockTime(clock)))?;
        let pty = wormbox_tokensim::Pty::open()?;
        let path = pty.path().to_owned();
        std::thread::spawn(move || pty.serve(&mut token));
        Ok(SimToken { path, serial: serial.to_owned(), totp })
    }

    /// The `--mfa` source naming this token.
    pub fn source(&self) -> String {
        format!("serial:{}#{}", self.path, self.serial)
    }

    /// `SERIAL CODE` for the step `offset` steps from `clock`'s now.
    pub fn code(&self, clock: &ManualClock, offset: i64) -> String {
        let now = u64::try_from(clock.now().0 / 1_000_000).unwrap_or(0);
        let step = self.totp.step_at(now).unwrap_or(0) as i64 + offset;
        let code = self.totp.code_at_step(u64::try_from(step).unwrap_or(0)).expect("step in range");
        format!("{} {}", self.serial, code.expose())
    }
}

/// A test-only tool that edits a stopped appliance's RocksDB directly, as
/// someone with access to the disk would: the integrity checks must name
/// each edit. Never part of a shipped binary.
pub mod tamper {
    use std::path::Path;

    use anyhow::Context as _;
    use wormbox_store::backend::{Backend, Batch, Durability, Keyspace};
    use wormbox_store_rocksdb::{RocksBackend, RocksOptions};

    /// Edits the first value of `space` for which `pick(key, value)` holds;
    /// returns its key. `db` is the appliance's `<data dir>/db`.
    pub fn edit(
        db: &Path,
        space: Keyspace,
        pick: impl Fn(&[u8], &[u8]) -> bool,
        change: impl FnOnce(&mut Vec<u8>),
    ) -> anyhow::Result<Vec<u8>> {
        let backend =
            RocksBackend::open(db, &RocksOptions::for_tests()).context("opening the stopped appliance's db")?;
        let mut found = None;
        for item in backend.scan(space, b"", b"") {
            let (key, value) = item?;
            if pick(&key, &value) {
                found = Some((key, value));
                break;
            }
        }
        let (key, mut value) = found.context("no value matched")?;
        change(&mut value);
        let mut batch = Batch::new();
        batch.put(space, key.clone(), value);
        backend.commit(&batch, Durability::Synced)?;
        Ok(key)
    }

    /// Opens a stopped appliance's db read-only, as offline verification does.
    pub fn read_only(db: &Path) -> anyhow::Result<Box<dyn Backend>> {
        Ok(Box::new(RocksBackend::open_read_only(db).context("opening the stopped appliance's db read-only")?))
    }

    /// Flips one bit of the first occurrence of `needle` in `value`.
    pub fn flip_in(value: &mut [u8], needle: &[u8]) {
        let at = value.windows(needle.len()).position(|w| w == needle).expect("the needle is in the value");
        value[at] ^= 0x01;
    }

    /// Whether `value` contains `needle`.
    pub fn contains(value: &[u8], needle: &[u8]) -> bool {
        value.windows(needle.len()).any(|w| w == needle)
    }
}
