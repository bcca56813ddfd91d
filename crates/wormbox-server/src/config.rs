//! `WormboxdConfig`: the one TOML file that configures `wormboxd`.
//!
//! Invariant: unknown keys are errors, never silently ignored; every default is
//! a named function, and `deploy/config/wormboxd.toml` states each of them
//! (a test keeps the two equal).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown keys included).
    #[error("parsing config `{path}`")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause, naming the offending key.
        #[source]
        source: toml::de::Error,
    },
    /// A value breaks a rule.
    #[error("config key `{key}`: {why}")]
    Invalid {
        /// The offending key.
        key: &'static str,
        /// The rule.
        why: String,
    },
}

/// The whole configuration of `wormboxd`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WormboxdConfig {
    /// Where to listen.
    #[serde(default)]
    pub listen: ListenConfig,
    /// Where and how data is stored.
    #[serde(default)]
    pub storage: StorageConfig,
    /// The S3 endpoint.
    #[serde(default)]
    pub s3: S3Config,
    /// The metrics endpoint (Prometheus/OpenMetrics text).
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Size limits on requests.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// TLS; required when listening beyond loopback.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// MFA code verification.
    #[serde(default)]
    pub mfa: MfaConfig,
    /// The compliance clock.
    #[serde(default)]
    pub clock: ClockConfig,
    /// Signed checkpoints and the background integrity scrub.
    #[serde(default)]
    pub evidence: EvidenceConfig,
    /// Backups streamed by `Admin.Backup`.
    #[serde(default)]
    pub backup: BackupConfig,
    /// Replication rules: each keeps a duplicate copy of a bucket in an S3
    /// Object Lock bucket.
    #[serde(default)]
    pub replication: Vec<ReplicationConfig>,
    /// Witnesses: each is sent every new checkpoint with a consistency proof
    /// (C2SP tlog-witness) and cosigns it only if it extends the last one
    /// it saw.
    #[serde(default)]
    pub witness: Vec<WitnessConfig>,
}

/// One `[[witness]]`: a party, on another machine, that cosigns the
/// ledger's checkpoints after checking they extend the ones before.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// Its verifier key, `<name>+<key id>+<base64(0x04 || key)>`, as
    /// `wormbox witness init` prints it: only cosignatures that verify under
    /// it are kept.
    pub key: String,
    /// Its address (the tlog-witness submission prefix), `http://host:port`.
    pub url: String,
}

/// One `[[replication]]` rule. Its S3 credential is not here: it is sealed
/// under the master key in the data directory (`wormboxd replica-credential`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReplicationConfig {
    /// The rule's name: 1 to 64 of a-z, 0-9, `-`, `_`.
    pub name: String,
    /// The source bucket.
    pub bucket: String,
    /// Only keys under this prefix.
    #[serde(default)]
    pub prefix: String,
    /// The replica's S3 endpoint, `http://` (loopback only) or `https://`.
    pub endpoint: String,
    /// The region signatures name.
    #[serde(default = "default_replica_region")]
    pub region: String,
    /// The replica bucket (Object Lock enabled, versioned).
    pub target_bucket: String,
    /// A PEM file of the CA that signs the endpoint's certificate, if not a public one.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// `async` (the default): acknowledged when stored locally; `sync`: only
    /// once the replica holds it too.
    #[serde(default = "default_replica_mode")]
    pub mode: String,
    /// Sync mode: how long a write waits for the replica before its client
    /// is told `REPLICA_PENDING` (stored locally, replica copy not yet
    /// confirmed), in milliseconds.
    #[serde(default = "default_sync_timeout_ms")]
    pub sync_timeout_ms: u64,
    /// A version without retention of its own gets COMPLIANCE retention for
    /// this many days on the replica (counted from its creation).
    #[serde(default)]
    pub minimum_retention_days: Option<u32>,
    /// Whether permanent deletes of expired versions are copied.
    #[serde(default)]
    pub replicate_purges: bool,
    /// How long the replica keeps checkpoints and ledger ranges (COMPLIANCE).
    #[serde(default = "default_evidence_retention_days")]
    pub evidence_retention_days: u32,
    /// The capacity tier (off by default): a version older than this many
    /// days (by the compliance clock) whose replica copy verifies has its
    /// local bytes released; reads then come from the replica, checked
    /// against the ledger's SHA-256 first.
    #[serde(default)]
    pub tier_after_days: Option<u32>,
    /// How many ledger entries are copied to the replica at once (1 to 64);
    /// changes to one key still arrive in ledger order.
    #[serde(default = "default_replica_concurrency")]
    pub concurrency: usize,
}

impl WitnessConfig {
    /// The client of this witness: its key and address, checked.
    pub fn client(&self) -> Result<wormbox_witness::WitnessClient, ConfigError> {
        let key = wormbox_witness::CosignerKey::parse(&self.key)
            .map_err(|why| ConfigError::Invalid { key: "witness.key", why })?;
        wormbox_witness::WitnessClient::new(&self.url, key)
            .map_err(|why| ConfigError::Invalid { key: "witness.url", why })
    }
}

/// The longest `tier_after_days`: a hundred years.
pub const MAX_TIER_AFTER_DAYS: u32 = 36_525;

fn default_replica_region() -> String {
    "us-east-1".to_owned()
}

fn default_replica_mode() -> String {
    "async".to_owned()
}

fn default_replica_concurrency() -> usize {
    wormbox_replica::DEFAULT_CONCURRENCY
}

fn default_sync_timeout_ms() -> u64 {
    30_000
}

/// The longest `sync_timeout_ms`: a client call that waits longer is better
/// told the write is pending.
pub const MAX_SYNC_TIMEOUT_MS: u64 = 600_000;

fn default_evidence_retention_days() -> u32 {
    // Ten years and a leap day or three: the longest common record-keeping period.
    3653
}

/// `[backup]`: how long a backup waits for its client.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// A backup whose client takes nothing for this many seconds ends, and
    /// its staged copy is removed.
    #[serde(default = "default_backup_send_timeout_seconds")]
    pub send_timeout_seconds: u64,
}

impl Default for BackupConfig {
    fn default() -> BackupConfig {
        BackupConfig { send_timeout_seconds: default_backup_send_timeout_seconds() }
    }
}

fn default_backup_send_timeout_seconds() -> u64 {
    60
}

/// `[evidence]`: when checkpoints are signed and how the scrub runs.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EvidenceConfig {
    /// A checkpoint is signed whenever this many ledger entries were written since the last.
    #[serde(default = "default_checkpoint_every_entries")]
    pub checkpoint_every_entries: u64,
    /// ... and at most this many seconds after an entry, when fewer were written.
    #[serde(default = "default_checkpoint_interval_seconds")]
    pub checkpoint_interval_seconds: u64,
    /// Seconds between the starts of two background integrity scrubs; 0 turns the scrub off.
    #[serde(default = "default_scrub_interval_seconds")]
    pub scrub_interval_seconds: u64,
    /// The most version bytes per second a scrub reads; 0 for no limit.
    #[serde(default = "default_scrub_bytes_per_second")]
    pub scrub_bytes_per_second: u64,
}

impl Default for EvidenceConfig {
    fn default() -> EvidenceConfig {
        EvidenceConfig {
            checkpoint_every_entries: default_checkpoint_every_entries(),
            checkpoint_interval_seconds: default_checkpoint_interval_seconds(),
            scrub_interval_seconds: default_scrub_interval_seconds(),
            scrub_bytes_per_second: default_scrub_bytes_per_second(),
        }
    }
}

fn default_checkpoint_every_entries() -> u64 {
    1000
}
fn default_checkpoint_interval_seconds() -> u64 {
    60
}
fn default_scrub_interval_seconds() -> u64 {
    86_400
}
fn default_scrub_bytes_per_second() -> u64 {
    64 << 20
}

/// `[clock]`: how the compliance clock catches up with a system clock ahead
/// of it (as NetApp SnapLock's ComplianceClock: a week per year by default).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClockConfig {
    /// Days of compliance time gained on top of real time per 365 days of
    /// running while the system clock is ahead (0: only an admin's
    /// accept-forward closes a gap).
    #[serde(default = "default_clock_catch_up_days_per_year")]
    pub catch_up_days_per_year: u32,
    /// A forward jump of the system clock larger than this many seconds is
    /// logged and written to the ledger (once per jump); smaller ones are
    /// caught up silently.
    #[serde(default = "default_clock_tolerance")]
    pub tolerance_seconds: u64,
    /// Retired (the compliance clock no longer follows a jump at a rate of
    /// its own): still read so configs of earlier releases start, and
    /// ignored with a warning.
    #[serde(default)]
    pub max_rate_ms_per_s: Option<u64>,
}

impl Default for ClockConfig {
    fn default() -> ClockConfig {
        ClockConfig {
            catch_up_days_per_year: default_clock_catch_up_days_per_year(),
            tolerance_seconds: default_clock_tolerance(),
            max_rate_ms_per_s: None,
        }
    }
}

impl ClockConfig {
    /// The store's clock policy.
    pub fn policy(&self) -> wormbox_model::ClockPolicy {
        wormbox_model::ClockPolicy {
            catch_up_per_year: std::time::Duration::from_secs(u64::from(self.catch_up_days_per_year) * 86_400),
            report_after: std::time::Duration::from_secs(self.tolerance_seconds),
        }
    }
}

fn default_clock_catch_up_days_per_year() -> u32 {
    7
}
fn default_clock_tolerance() -> u64 {
    60
}

/// `[mfa]`: how codes are judged (DESIGN.md, MFA).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MfaConfig {
    /// Steps accepted either side of the token's tracked drift.
    #[serde(default = "default_mfa_window_steps")]
    pub window_steps: u64,
    /// How far activation and resync search for two consecutive codes, in hours either side.
    #[serde(default = "default_mfa_search_hours")]
    pub search_hours: u64,
    /// Failures in a row that lock a device out.
    #[serde(default = "default_mfa_max_failures")]
    pub max_failures: u32,
    /// The first lockout, in seconds; each further one doubles.
    #[serde(default = "default_mfa_lockout_seconds")]
    pub lockout_seconds: u64,
    /// The longest lockout, in seconds.
    #[serde(default = "default_mfa_max_lockout_seconds")]
    pub max_lockout_seconds: u64,
    /// How long an enrolled device may wait for its owner to activate it, in
    /// hours; it expires after that.
    #[serde(default = "default_mfa_pending_hours")]
    pub pending_hours: u64,
}

impl MfaConfig {
    /// The authority's policy.
    pub fn policy(&self) -> wormbox_mfa::Policy {
        wormbox_mfa::Policy {
            window: self.window_steps,
            search_secs: self.search_hours * 3600,
            max_failures: self.max_failures,
            lockout_base_secs: self.lockout_seconds,
            lockout_max_secs: self.max_lockout_seconds,
            pending_secs: self.pending_hours * 3600,
        }
    }
}

impl Default for MfaConfig {
    fn default() -> MfaConfig {
        MfaConfig {
            window_steps: default_mfa_window_steps(),
            search_hours: default_mfa_search_hours(),
            max_failures: default_mfa_max_failures(),
            lockout_seconds: default_mfa_lockout_seconds(),
            max_lockout_seconds: default_mfa_max_lockout_seconds(),
            pending_hours: default_mfa_pending_hours(),
        }
    }
}

fn default_mfa_window_steps() -> u64 {
    1
}
fn default_mfa_search_hours() -> u64 {
    24
}
fn default_mfa_max_failures() -> u32 {
    5
}
fn default_mfa_lockout_seconds() -> u64 {
    60
}
fn default_mfa_max_lockout_seconds() -> u64 {
    24 * 3600
}
fn default_mfa_pending_hours() -> u64 {
    24
}

/// `[listen]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// Address and port of the gRPC listener.
    #[serde(default = "default_addr")]
    pub addr: SocketAddr,
}

/// `[s3]`: the S3 endpoint, beside gRPC, over the same archive.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Whether the S3 endpoint is served.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Address and port of the S3 listener; beyond loopback it needs `[tls]`
    /// (the same certificate as gRPC's).
    #[serde(default = "default_s3_addr")]
    pub listen: SocketAddr,
    /// The region clients sign for.
    #[serde(default = "default_s3_region")]
    pub region: String,
    /// The domain of virtual-host-style addressing (`BUCKET.DOMAIN`); path
    /// style is always served.
    #[serde(default)]
    pub domain: Option<String>,
    /// Multipart uploads neither completed nor aborted are removed after
    /// this many hours (by the compliance clock).
    #[serde(default = "default_multipart_expiry_hours")]
    pub multipart_expiry_hours: u64,
    /// How long a connection may take to send a request's head, in
    /// milliseconds; then it is closed.
    #[serde(default = "default_s3_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// How long a request body may send nothing, in milliseconds; then the
    /// request fails and nothing of it is stored.
    #[serde(default = "default_s3_body_idle_ms")]
    pub body_idle_ms: u64,
    /// Connections served at once from one client address (an IPv4
    /// address, or an IPv6 /64), of the listener's 512.
    #[serde(default = "default_s3_max_connections_per_address")]
    pub max_connections_per_address: usize,
}

impl Default for S3Config {
    fn default() -> S3Config {
        S3Config {
            enabled: true,
            listen: default_s3_addr(),
            region: default_s3_region(),
            domain: None,
            multipart_expiry_hours: default_multipart_expiry_hours(),
            header_timeout_ms: default_s3_header_timeout_ms(),
            body_idle_ms: default_s3_body_idle_ms(),
            max_connections_per_address: default_s3_max_connections_per_address(),
        }
    }
}

/// `[metrics]`: `GET /metrics` in the OpenMetrics text format, on a port of
/// its own.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Whether the metrics are served.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Address and port of the metrics listener. On loopback anyone on the
    /// machine may scrape; beyond it the listener needs `[tls]` (gRPC's
    /// certificate) and a bearer credential of the auditor or admin role.
    #[serde(default = "default_metrics_addr")]
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> MetricsConfig {
        MetricsConfig { enabled: true, listen: default_metrics_addr() }
    }
}

fn default_metrics_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9878))
}

fn default_true() -> bool {
    true
}
fn default_s3_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7880))
}
fn default_multipart_expiry_hours() -> u64 {
    7 * 24
}
fn default_s3_region() -> String {
    wormbox_s3::DEFAULT_REGION.to_owned()
}
fn default_s3_header_timeout_ms() -> u64 {
    wormbox_s3::DEFAULT_HEADER_TIMEOUT.as_millis() as u64
}
fn default_s3_max_connections_per_address() -> usize {
    wormbox_s3::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS
}
fn default_s3_body_idle_ms() -> u64 {
    wormbox_s3::DEFAULT_BODY_IDLE.as_millis() as u64
}

/// `[storage]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory of the archive, its keys and the admin credential.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The storage engine; production engines only.
    #[serde(default)]
    pub engine: Engine,
    /// RocksDB memtable size, in MiB.
    #[serde(default = "default_write_buffer_mib")]
    pub write_buffer_mib: usize,
    /// RocksDB block cache size, in MiB.
    #[serde(default = "default_block_cache_mib")]
    pub block_cache_mib: usize,
    /// Free bytes kept on the data directory's filesystem: new data is
    /// refused (`DISK_FULL`) once less would be left. Unset: 1 GiB, or 2 %
    /// of the filesystem when that is less; 0: no reserve.
    #[serde(default)]
    pub reserve_bytes: Option<u64>,
}

/// The storage engines `wormboxd` can run on. The in-memory test engine is
/// deliberately absent.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Embedded RocksDB.
    #[default]
    Rocksdb,
}

/// `[limits]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// The largest object PutObject accepts, in bytes.
    #[serde(default = "default_max_object_bytes")]
    pub max_object_bytes: u64,
    /// The largest record Ingest accepts, in bytes.
    #[serde(default = "default_max_ingest_record_bytes")]
    pub max_ingest_record_bytes: u64,
    /// The largest gRPC message accepted, in bytes.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// The most bytes of Ingest records and PutObject data received and not
    /// yet answered, across all streams; beyond it clients wait.
    #[serde(default = "default_receive_budget_bytes")]
    pub receive_budget_bytes: u64,
    /// How long, in milliseconds, an Ingest or PutObject message's body may
    /// take to arrive once its share of the receive budget is admitted;
    /// then the stream fails and the share returns.
    #[serde(default = "default_message_receive_ms")]
    pub message_receive_ms: u64,
    /// The most concurrent HTTP/2 streams (calls) one connection may open.
    #[serde(default = "default_max_streams_per_connection")]
    pub max_streams_per_connection: u32,
}

/// `[tls]`: PEM files; secrets are referenced by path, never inline.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// `[log]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter, overridden by `WORMBOX_LOG`.
    #[serde(default = "default_log_filter")]
    pub filter: String,
    /// `text` for people, `json` (one object per line) for a log collector.
    #[serde(default)]
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with the request's span (its method and
    /// request id) in each.
    Json,
}

fn default_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7878))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./wormbox-data")
}
fn default_write_buffer_mib() -> usize {
    64
}
fn default_block_cache_mib() -> usize {
    128
}
/// S3's limit on one PUT, which the replicator writes each version with.
const MAX_SINGLE_PUT_BYTES: u64 = 5 << 30;

fn default_max_object_bytes() -> u64 {
    5 << 30
}
fn default_max_ingest_record_bytes() -> u64 {
    1 << 20
}
fn default_max_message_bytes() -> usize {
    4 << 20
}
/// The store's write queue bound: what waits to be queued is bounded alike.
fn default_receive_budget_bytes() -> u64 {
    256 << 20
}
/// Time for a 4 MiB message at about 140 KB/s: slow links pass, a client
/// that announces a message and stalls holds its share for no longer.
fn default_message_receive_ms() -> u64 {
    30_000
}
fn default_max_streams_per_connection() -> u32 {
    100
}
fn default_log_filter() -> String {
    "info".to_owned()
}

impl Default for ListenConfig {
    fn default() -> ListenConfig {
        ListenConfig { addr: default_addr() }
    }
}

impl Default for StorageConfig {
    fn default() -> StorageConfig {
        StorageConfig {
            data_dir: default_data_dir(),
            engine: Engine::default(),
            write_buffer_mib: default_write_buffer_mib(),
            block_cache_mib: default_block_cache_mib(),
            reserve_bytes: None,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig {
            max_object_bytes: default_max_object_bytes(),
            max_ingest_record_bytes: default_max_ingest_record_bytes(),
            max_message_bytes: default_max_message_bytes(),
            receive_budget_bytes: default_receive_budget_bytes(),
            message_receive_ms: default_message_receive_ms(),
            max_streams_per_connection: default_max_streams_per_connection(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig { filter: default_log_filter(), format: LogFormat::Text }
    }
}

impl WormboxdConfig {
    /// Reads and parses `path`; call `validate` next.
    pub fn load(path: &Path) -> Result<WormboxdConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        WormboxdConfig::parse(&text).map_err(|source| ConfigError::Parse { path: path.to_owned(), source })
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<WormboxdConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// Checks the rules that the schema cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, why: &str| Err(ConfigError::Invalid { key, why: why.to_owned() });
        if !self.listen.addr.ip().is_loopback() && self.tls.is_none() {
            return invalid("listen.addr", "listening beyond loopback requires a [tls] section");
        }
        if self.s3.enabled && !self.s3.listen.ip().is_loopback() && self.tls.is_none() {
            return invalid("s3.listen", "listening beyond loopback requires a [tls] section");
        }
        if self.s3.enabled && self.s3.listen == self.listen.addr && self.s3.listen.port() != 0 {
            return invalid("s3.listen", "must differ from listen.addr (gRPC)");
        }
        if self.metrics.enabled && !self.metrics.listen.ip().is_loopback() && self.tls.is_none() {
            return invalid("metrics.listen", "listening beyond loopback requires a [tls] section");
        }
        let taken = [Some(self.listen.addr), self.s3.enabled.then_some(self.s3.listen)];
        if self.metrics.enabled && self.metrics.listen.port() != 0 && taken.contains(&Some(self.metrics.listen)) {
            return invalid("metrics.listen", "must differ from listen.addr (gRPC) and s3.listen");
        }
        let region_ok = !self.s3.region.is_empty()
            && self.s3.region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return invalid("s3.region", "must be lowercase letters, digits and dashes (for example us-east-1)");
        }
        if let Some(domain) = &self.s3.domain
            && (domain.is_empty() || domain.contains(['/', ':', ' ']))
        {
            return invalid("s3.domain", "must be a host name without a port, like s3.archive.example");
        }
        if !(1..=3_600_000).contains(&self.s3.header_timeout_ms) {
            return invalid("s3.header_timeout_ms", "must be 1 to 3600000 (an hour)");
        }
        if !(1..=3_600_000).contains(&self.s3.body_idle_ms) {
            return invalid("s3.body_idle_ms", "must be 1 to 3600000 (an hour)");
        }
        if !(1..=wormbox_s3::MAX_CONNECTIONS).contains(&self.s3.max_connections_per_address) {
            return invalid("s3.max_connections_per_address", "must be 1 to 512, the listener's connections");
        }
        if self.limits.max_object_bytes == 0 {
            return invalid("limits.max_object_bytes", "must be at least 1");
        }
        if self.limits.max_ingest_record_bytes == 0 {
            return invalid("limits.max_ingest_record_bytes", "must be at least 1");
        }
        if self.limits.max_message_bytes < (64 << 10) || self.limits.max_message_bytes > (64 << 20) {
            return invalid("limits.max_message_bytes", "must lie between 64 KiB and 64 MiB");
        }
        if self.limits.max_ingest_record_bytes + (16 << 10) > self.limits.max_message_bytes as u64 {
            return invalid(
                "limits.max_ingest_record_bytes",
                "must leave 16 KiB of room below limits.max_message_bytes for the record's other fields",
            );
        }
        let largest_charge = crate::ReceiveBudget::charge_of_largest(self.limits.max_message_bytes);
        let least_budget = largest_charge as u64 + wormbox_store::CHUNK_BYTES as u64;
        if !(least_budget..=(1 << 40)).contains(&self.limits.receive_budget_bytes) {
            return invalid(
                "limits.receive_budget_bytes",
                "must lie between 1 TiB and the charge of a message of limits.max_message_bytes (its bytes and what \
                 an IngestBatch message of that size may decode into, about 2.4 MiB more) beside an upload's 1 MiB chunk",
            );
        }
        if !(1..=3_600_000).contains(&self.limits.message_receive_ms) {
            return invalid("limits.message_receive_ms", "must lie between 1 and 3600000 (an hour)");
        }
        if self.limits.max_streams_per_connection == 0 {
            return invalid("limits.max_streams_per_connection", "must be at least 1");
        }
        if self.storage.write_buffer_mib == 0 || self.storage.block_cache_mib == 0 {
            return invalid("storage", "write_buffer_mib and block_cache_mib must be at least 1");
        }
        let mut names = std::collections::HashSet::new();
        for rule in &self.replication {
            if !names.insert(rule.name.as_str()) {
                return invalid("replication.name", "each rule needs a name of its own");
            }
            let plain = rule.endpoint.strip_prefix("http://");
            let loopback = plain.and_then(|rest| rest.split(['/', ':']).next()).is_some_and(|host| {
                host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
            });
            if plain.is_some() && !loopback && !rule.endpoint.starts_with("http://[::1]") {
                return invalid("replication.endpoint", "a replica beyond loopback is reached over https:// only");
            }
            if !rule.endpoint.starts_with("https://") && plain.is_none() {
                return invalid("replication.endpoint", "must start with https:// (or http:// on loopback)");
            }
            if !matches!(rule.mode.as_str(), "async" | "sync") {
                return invalid("replication.mode", "must be `async` or `sync`");
            }
            if !(1..=MAX_SYNC_TIMEOUT_MS).contains(&rule.sync_timeout_ms) {
                return invalid("replication.sync_timeout_ms", "must lie between 1 and 600000 (ten minutes)");
            }
            if !(1..=wormbox_replica::MAX_CONCURRENCY).contains(&rule.concurrency) {
                return invalid("replication.concurrency", "must lie between 1 and 64");
            }
            if rule.evidence_retention_days == 0 || rule.minimum_retention_days == Some(0) {
                return invalid("replication", "retention days must be at least 1");
            }
            if rule.tier_after_days.is_some_and(|d| !(1..=MAX_TIER_AFTER_DAYS).contains(&d)) {
                return invalid("replication.tier_after_days", "must lie between 1 and 36525 (a hundred years)");
            }
        }
        // The replicator writes each version in one PUT, which S3 (and RGW,
        // SeaweedFS) caps at 5 GiB: a larger version could never be copied.
        if !self.replication.is_empty() && self.limits.max_object_bytes > MAX_SINGLE_PUT_BYTES {
            return invalid(
                "limits.max_object_bytes",
                "must be at most 5 GiB (5368709120) while a [[replication]] rule copies versions: \
                 a replica takes each version in one PUT, which S3 caps at 5 GiB",
            );
        }
        if self.mfa.window_steps > 10 {
            return invalid("mfa.window_steps", "must be at most 10: a wide window makes codes guessable");
        }
        if !(1..=168).contains(&self.mfa.search_hours) {
            return invalid("mfa.search_hours", "must lie between 1 and 168");
        }
        if !(1..=100).contains(&self.mfa.max_failures) {
            return invalid("mfa.max_failures", "must lie between 1 and 100");
        }
        if !(1..=720).contains(&self.mfa.pending_hours) {
            return invalid("mfa.pending_hours", "must lie between 1 and 720");
        }
        if self.mfa.lockout_seconds == 0 || self.mfa.max_lockout_seconds < self.mfa.lockout_seconds {
            return invalid("mfa.lockout_seconds", "must be at least 1 and at most mfa.max_lockout_seconds");
        }
        if self.clock.catch_up_days_per_year > 365 {
            return invalid("clock.catch_up_days_per_year", "must be at most 365 (twice real time while behind)");
        }
        if self.evidence.checkpoint_every_entries == 0 {
            return invalid("evidence.checkpoint_every_entries", "must be at least 1");
        }
        if !(1..=86_400).contains(&self.evidence.checkpoint_interval_seconds) {
            return invalid("evidence.checkpoint_interval_seconds", "must lie between 1 and 86400");
        }
        if !(1..=3600).contains(&self.clock.tolerance_seconds) {
            return invalid("clock.tolerance_seconds", "must lie between 1 and 3600");
        }
        if !(1..=86_400).contains(&self.backup.send_timeout_seconds) {
            return invalid("backup.send_timeout_seconds", "must lie between 1 and 86400");
        }
        if self.storage.data_dir.as_os_str().is_empty() {
            return invalid("storage.data_dir", "must not be empty");
        }
        let mut names = std::collections::HashSet::new();
        for witness in &self.witness {
            let client = witness.client()?;
            if !names.insert(client.key().name.clone()) {
                return invalid("witness.key", "two [[witness]] entries have the same name");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/config/wormboxd.toml");

    #[test]
    fn shipped_config_loads_validates_and_matches_the_defaults() {
        let shipped = WormboxdConfig::load(Path::new(SHIPPED)).expect("deploy/config/wormboxd.toml must load");
        shipped.validate().expect("deploy/config/wormboxd.toml must validate");
        assert_eq!(shipped, WormboxdConfig::default());
    }

    #[test]
    fn the_packaged_config_differs_from_the_defaults_only_where_it_says() {
        const PACKAGED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/debian/wormboxd.toml");
        let packaged = WormboxdConfig::load(Path::new(PACKAGED)).expect("deploy/debian/wormboxd.toml must load");
        packaged.validate().expect("deploy/debian/wormboxd.toml must validate");
        let mut expected = WormboxdConfig::default();
        expected.listen.addr = "0.0.0.0:7878".parse().unwrap();
        expected.s3.listen = "0.0.0.0:7880".parse().unwrap();
        expected.storage.data_dir = "/var/lib/wormbox".into();
        // TLS on, with the files `wormboxd init` writes in the state directory.
        expected.tls = Some(TlsConfig {
            cert: "/var/lib/wormbox/tls/server.pem".into(),
            key: "/var/lib/wormbox/tls/server.key".into(),
        });
        assert_eq!(packaged, expected);
    }

    #[test]
    fn an_empty_file_means_the_defaults() {
        assert_eq!(WormboxdConfig::parse("").unwrap(), WormboxdConfig::default());
        WormboxdConfig::default().validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        for text in ["[listen]\naddres = \"127.0.0.1:1\"\n", "[storage]\nengine = \"memory\"\n", "[nonsense]\n"] {
            let err = WormboxdConfig::parse(text).unwrap_err().to_string();
            assert!(!err.is_empty());
        }
        let err = WormboxdConfig::parse("[listen]\naddres = \"127.0.0.1:1\"\n").unwrap_err().to_string();
        assert!(err.contains("addres"), "{err}");
    }

    /// A replica is reached over https, or plain http only on loopback; each
    /// rule has a name of its own, a known mode and retention days.
    #[test]
    fn replication_rules_are_validated() {
        let rule = |name: &str, endpoint: &str| -> WormboxdConfig {
            let text = format!(
                "[[replication]]\nname = \"{name}\"\nbucket = \"records\"\nendpoint = \"{endpoint}\"\ntarget_bucket = \"copy\"\n"
            );
            WormboxdConfig::parse(&text).unwrap()
        };
        rule("dr", "http://127.0.0.1:7480").validate().unwrap();
        rule("dr", "http://localhost:7480").validate().unwrap();
        rule("dr", "https://rgw.example:443").validate().unwrap();
        for endpoint in ["http://10.0.0.5:7480", "http://rgw.example", "ftp://127.0.0.1", "127.0.0.1:7480"] {
            let err = rule("dr", endpoint).validate().unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { key: "replication.endpoint", .. }), "{endpoint}: {err:?}");
        }
        let mut twice = rule("dr", "http://127.0.0.1:1");
        twice.replication.push(twice.replication[0].clone());
        assert!(matches!(twice.validate(), Err(ConfigError::Invalid { key: "replication.name", .. })));
        let mut zero = rule("dr", "http://127.0.0.1:1");
        zero.replication[0].evidence_retention_days = 0;
        assert!(zero.validate().is_err());
        let mut mode = rule("dr", "http://127.0.0.1:1");
        mode.replication[0].mode = "eventually".into();
        assert!(matches!(mode.validate(), Err(ConfigError::Invalid { key: "replication.mode", .. })));
        let unknown = WormboxdConfig::parse(
            "[[replication]]\nname = \"dr\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:1\"\ntarget_bucket = \"c\"\nsecret = \"x\"\n",
        );
        assert!(unknown.is_err(), "a secret in the config file is an unknown key: credentials are sealed apart");
        let mut large = rule("dr", "http://127.0.0.1:1");
        large.limits.max_object_bytes = (5 << 30) + 1;
        let err = large.validate().unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "limits.max_object_bytes", .. }), "{err:?}");
        large.replication.clear();
        large.validate().unwrap();
    }

    #[test]
    fn rules_the_schema_cannot_express_are_validated() {
        let mut config = WormboxdConfig::default();
        config.listen.addr = "0.0.0.0:7878".parse().unwrap();
        assert!(matches!(config.validate(), Err(ConfigError::Invalid { key: "listen.addr", .. })));
        config.tls = Some(TlsConfig { cert: "c.pem".into(), key: "k.pem".into() });
        config.validate().unwrap();
        let mut config = WormboxdConfig::default();
        config.limits.max_ingest_record_bytes = 4 << 20;
        assert!(config.validate().is_err());
        let mut config = WormboxdConfig::default();
        config.limits.max_object_bytes = 0;
        assert!(config.validate().is_err());
        let mut config = WormboxdConfig::default();
        config.mfa.window_steps = 50;
        assert!(matches!(config.validate(), Err(ConfigError::Invalid { key: "mfa.window_steps", .. })));
        let mut config = WormboxdConfig::default();
        config.mfa.lockout_seconds = 0;
        assert!(config.validate().is_err());
        let mut config = WormboxdConfig::default();
        config.limits.receive_budget_bytes = (5 << 20) - 1;
        assert!(matches!(config.validate(), Err(ConfigError::Invalid { key: "limits.receive_budget_bytes", .. })));
        let mut config = WormboxdConfig::default();
        config.backup.send_timeout_seconds = 0;
        assert!(matches!(config.validate(), Err(ConfigError::Invalid { key: "backup.send_timeout_seconds", .. })));
        let mut config = WormboxdConfig::default();
        config.clock.catch_up_days_per_year = 366;
        assert!(matches!(config.validate(), Err(ConfigError::Invalid { key: "clock.catch_up_days_per_year", .. })));
        config.clock.catch_up_days_per_year = 0;
        config.validate().unwrap();
        config.clock.tolerance_seconds = 0;
        assert!(matches!(config.validate(), Err(ConfigError::Invalid { key: "clock.tolerance_seconds", .. })));
        let mut config = WormboxdConfig::default();
        config.s3.header_timeout_ms = 0;
        assert!(matches!(config.validate(), Err(ConfigError::Invalid { key: "s3.header_timeout_ms", .. })));
        let mut config = WormboxdConfig::default();
        config.s3.body_idle_ms = 3_600_001;
        assert!(matches!(config.validate(), Err(ConfigError::Invalid { key: "s3.body_idle_ms", .. })));
        let mut config = WormboxdConfig::default();
        config.s3.max_connections_per_address = 0;
        assert!(matches!(config.validate(), Err(ConfigError::Invalid { key: "s3.max_connections_per_address", .. })));
        let mut config = WormboxdConfig::default();
        config.metrics.listen = config.s3.listen;
        assert!(matches!(config.validate(), Err(ConfigError::Invalid { key: "metrics.listen", .. })));
        config.metrics.listen = config.listen.addr;
        assert!(matches!(config.validate(), Err(ConfigError::Invalid { key: "metrics.listen", .. })));
        config.metrics.enabled = false;
        config.validate().unwrap();
        let mut config = WormboxdConfig::default();
        config.metrics.listen = "0.0.0.0:9878".parse().unwrap();
        assert!(matches!(config.validate(), Err(ConfigError::Invalid { key: "metrics.listen", .. })));
        config.tls = Some(TlsConfig { cert: "c.pem".into(), key: "k.pem".into() });
        config.validate().unwrap();
    }

    #[test]
    fn the_clock_catches_up_a_week_per_year_and_an_earlier_release_config_still_loads() {
        let policy = WormboxdConfig::default().clock.policy();
        assert_eq!(policy.catch_up_per_year, std::time::Duration::from_secs(7 * 86_400));
        assert_eq!(policy.report_after, std::time::Duration::from_secs(60));
        let old = WormboxdConfig::parse("[clock]\nmax_rate_ms_per_s = 1000\ntolerance_seconds = 60\n").unwrap();
        old.validate().unwrap();
        assert_eq!(old.clock.max_rate_ms_per_s, Some(1000));
        assert_eq!(old.clock.policy(), policy);
    }

    const RULE: &str = "[[replication]]\nname = \"dr\"\nbucket = \"records\"\nendpoint = \"http://127.0.0.1:8333\"\ntarget_bucket = \"replica\"\n";

    #[test]
    fn a_sync_rule_is_accepted_with_a_bounded_wait_that_defaults_to_30_seconds() {
        let config = WormboxdConfig::parse(&format!("{RULE}mode = \"sync\"\n")).unwrap();
        config.validate().unwrap();
        assert_eq!((config.replication[0].mode.as_str(), config.replication[0].sync_timeout_ms), ("sync", 30_000));
        let config = WormboxdConfig::parse(&format!("{RULE}mode = \"sync\"\nsync_timeout_ms = 1500\n")).unwrap();
        config.validate().unwrap();
        assert_eq!(config.replication[0].sync_timeout_ms, 1500);
        for bad in [0, MAX_SYNC_TIMEOUT_MS + 1] {
            let text = format!("{RULE}mode = \"sync\"\nsync_timeout_ms = {bad}\n");
            let err = WormboxdConfig::parse(&text).unwrap().validate().unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { key: "replication.sync_timeout_ms", .. }), "{err}");
        }
        let err = WormboxdConfig::parse(&format!("{RULE}mode = \"Sync\"\n")).unwrap().validate().unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "replication.mode", .. }), "{err}");
        assert!(WormboxdConfig::parse(&format!("{RULE}sync_timeout = 5\n")).is_err(), "a misspelt key is refused");
    }

    #[test]
    fn the_capacity_tier_is_off_by_default_and_its_days_are_bounded() {
        let config = WormboxdConfig::parse(RULE).unwrap();
        config.validate().unwrap();
        assert_eq!(config.replication[0].tier_after_days, None);
        let config = WormboxdConfig::parse(&format!("{RULE}tier_after_days = 90\n")).unwrap();
        config.validate().unwrap();
        assert_eq!(config.replication[0].tier_after_days, Some(90));
        for bad in [0, MAX_TIER_AFTER_DAYS + 1] {
            let text = format!("{RULE}tier_after_days = {bad}\n");
            let err = WormboxdConfig::parse(&text).unwrap().validate().unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { key: "replication.tier_after_days", .. }), "{err}");
        }
        assert!(WormboxdConfig::parse(&format!("{RULE}tier_after_days = -1\n")).is_err());
    }

    #[test]
    fn a_rules_concurrency_defaults_to_8_and_lies_between_1_and_64() {
        let config = WormboxdConfig::parse(RULE).unwrap();
        config.validate().unwrap();
        assert_eq!(config.replication[0].concurrency, 8);
        for good in [1, 64] {
            let config = WormboxdConfig::parse(&format!("{RULE}concurrency = {good}\n")).unwrap();
            config.validate().unwrap();
            assert_eq!(config.replication[0].concurrency, good);
        }
        for bad in [0, 65] {
            let err = WormboxdConfig::parse(&format!("{RULE}concurrency = {bad}\n")).unwrap().validate().unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { key: "replication.concurrency", .. }), "{err}");
        }
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = WormboxdConfig::load(Path::new("/nonexistent/wormboxd.toml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/wormboxd.toml"));
    }
}
