//! `wormbox`: the operator CLI. It speaks gRPC, so it has no way around the
//! archive's rules. The one exception, `verify --data-dir`, opens a stopped
//! appliance's files read-only to check them; `verify-export` reads an export.

mod backup;
mod evidence;

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic_types::StatusExt;
use wormbox_proto::{AdminClient, ArchiveClient, BearerAuth, ComplianceClient, MfaClient, v1};

/// Operate a Wormbox archive over gRPC.
#[derive(Debug, Parser)]
#[command(name = "wormbox", version)]
struct Cli {
    /// The appliance's address.
    #[arg(long, env = "WORMBOX_ENDPOINT", default_value = "http://127.0.0.1:7878", global = true)]
    endpoint: String,
    /// Credential `AKID:SECRET`.
    #[arg(long, env = "WORMBOX_CREDENTIAL", hide_env_values = true, global = true)]
    credential: Option<String>,
    /// File holding the credential (e.g. wormbox-data/admin.credential).
    #[arg(long, global = true)]
    credential_file: Option<PathBuf>,
    /// CA certificate (PEM) to trust for an https endpoint.
    #[arg(long, global = true)]
    ca_cert: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Where MFA codes come from: serial:PATH[#SERIAL] (a token on a serial
    /// line), prompt[:SERIAL] (ask on the terminal) or literal:SERIAL CODE [CODE2].
    #[arg(long, env = "WORMBOX_MFA", hide_env_values = true, global = true)]
    mfa: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Buckets.
    #[command(subcommand)]
    Bucket(BucketCommand),
    /// Store a file (or stdin with `-`) as a new version.
    Put {
        bucket: String,
        key: String,
        /// File to upload; `-` or absent for stdin.
        file: Option<PathBuf>,
        #[arg(long, default_value = "application/octet-stream")]
        content_type: String,
        /// User metadata `NAME=VALUE`, repeatable.
        #[arg(long = "meta")]
        metadata: Vec<String>,
        /// Expected SHA-256 (hex); the appliance stores nothing on mismatch.
        #[arg(long)]
        sha256: Option<String>,
        /// Retention MODE:UNTIL, e.g. compliance:2033-01-01 (Object Lock buckets).
        #[arg(long)]
        retention: Option<String>,
        /// Place this legal hold (case id) at once (admin).
        #[arg(long)]
        legal_hold: Option<String>,
    },
    /// Fetch a version's bytes to a file or stdout.
    Get {
        bucket: String,
        key: String,
        #[arg(long)]
        version_id: Option<String>,
        /// Output file; stdout when absent.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Show a version's metadata.
    Head {
        bucket: String,
        key: String,
        #[arg(long)]
        version_id: Option<String>,
    },
    /// Write a delete marker, or with --version-id remove that version for
    /// good (with --mfa when the bucket has MFA Delete on).
    Rm {
        bucket: String,
        key: String,
        #[arg(long)]
        version_id: Option<String>,
        /// Purge a version under GOVERNANCE retention (needs the bypass right).
        #[arg(long)]
        bypass_governance: bool,
    },
    /// Delete up to 1000 objects or versions of one bucket in one request
    /// (S3's DeleteObjects), with one code (--mfa) for all of its permanent
    /// deletes. Each entry is answered on its own; exits non-zero if any was
    /// refused.
    DeleteObjects {
        bucket: String,
        /// Keys to delete: a delete marker each (no code needed).
        keys: Vec<String>,
        /// A version to remove for good, as KEY VERSION_ID; repeatable.
        #[arg(long = "version", num_args = 2, value_names = ["KEY", "VERSION_ID"])]
        versions: Vec<String>,
        /// Entries from a JSON file (`-` for stdin) in the shape of
        /// `aws s3api delete-objects --delete`:
        /// {"Objects": [{"Key": "k", "VersionId": "..."}], "Quiet": false}.
        #[arg(long)]
        from_json: Option<PathBuf>,
        /// Print only the entries that were refused.
        #[arg(long)]
        quiet: bool,
        /// Purge versions under GOVERNANCE retention (needs the bypass right).
        #[arg(long)]
        bypass_governance: bool,
    },
    /// Object Lock retention of a version.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Legal holds on a version (admins and auditors).
    #[command(subcommand)]
    Hold(HoldCommand),
    /// List versions and delete markers.
    Versions {
        bucket: String,
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long, default_value = "")]
        delimiter: String,
        #[arg(long, default_value = "")]
        key_marker: String,
        #[arg(long, default_value = "")]
        version_id_marker: String,
        #[arg(long, default_value_t = 1000)]
        max_keys: u32,
    },
    /// List objects (latest versions that are not delete markers).
    Ls {
        bucket: String,
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long, default_value = "")]
        delimiter: String,
        #[arg(long, default_value = "")]
        start_after: String,
        #[arg(long, default_value_t = 1000)]
        max_keys: u32,
    },
    /// Principals (admin only).
    #[command(subcommand)]
    Principal(PrincipalCommand),
    /// MFA devices.
    #[command(subcommand)]
    Mfa(MfaCommand),
    /// The compliance clock.
    #[command(subcommand)]
    Clock(ClockCommand),
    /// Appliance keys.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// A signed checkpoint of the ledger (the current head, or a stored one).
    Checkpoint {
        /// A stored checkpoint's ledger sequence; the current head when absent.
        #[arg(long, default_value_t = 0)]
        sequence: u64,
        /// Write the checkpoint (JSON) to this file, to keep outside the appliance.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Recompute the ledger chain, check every checkpoint and re-hash every
    /// version; exits non-zero on any divergence. With --data-dir, offline on
    /// a stopped appliance's data directory (or a copy).
    Verify {
        /// A stopped appliance's data directory, opened read-only.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The appliance's public key (hex), obtained independently: offline
        /// it checks the signatures (default DATA_DIR/checkpoint-signing.pub);
        /// online the appliance must be signing with it.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// A checkpoint file kept outside the appliance; repeatable.
        #[arg(long = "checkpoint")]
        checkpoints: Vec<PathBuf>,
        /// Trust the chain up to this stored checkpoint and recompute from there.
        #[arg(long)]
        from_checkpoint: Option<u64>,
    },
    /// The audit trail: ledger entries, filtered (admins and auditors).
    Audit(evidence::AuditArgs),
    /// Reports for compliance officers.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Export a bucket's versions, manifest, audit trail, checkpoint and
    /// public key to a directory a regulator can verify offline. Resumes an
    /// interrupted export into the same directory; refuses any other non-empty one.
    Export {
        #[arg(long)]
        bucket: String,
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify an export directory without the appliance.
    VerifyExport {
        dir: PathBuf,
        /// The appliance's public key (hex), obtained independently of the export.
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Print (or write) the appliance's checkpoint public key, hex.
    Pubkey {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Copy the whole archive into a new directory (a consistent copy and a
    /// signed checkpoint; no keys), for `wormboxd restore`.
    Backup {
        /// The directory to create (or an empty one).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// Every version and delete marker with its retention, holds and status,
    /// and a summary, bound to signed checkpoints.
    Retention {
        /// Only this bucket; every bucket when absent.
        #[arg(long, default_value = "")]
        bucket: String,
        #[arg(long, default_value = "")]
        prefix: String,
        /// csv, json or html.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Output file; stdout when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ClockCommand {
    /// Show the system and compliance clocks, and how a gap between them closes.
    Show,
    /// Accept a forward jump of the system clock at once, instead of letting the
    /// compliance clock catch up at its rate (admin, --mfa from your own device).
    AcceptForward,
}

#[derive(Debug, Subcommand)]
enum RetentionCommand {
    /// Show a version's retention (the latest version without --version-id).
    Get {
        bucket: String,
        key: String,
        #[arg(long)]
        version_id: Option<String>,
    },
    /// Set MODE:UNTIL (e.g. governance:2030-06-30), or `none` to remove.
    Set {
        bucket: String,
        key: String,
        retention: String,
        #[arg(long)]
        version_id: Option<String>,
        /// Override GOVERNANCE retention (needs the bypass right; --mfa with MFA Delete on).
        #[arg(long)]
        bypass_governance: bool,
    },
}

#[derive(Debug, Subcommand)]
enum HoldCommand {
    /// Place a legal hold.
    Place {
        bucket: String,
        key: String,
        #[arg(long)]
        version_id: Option<String>,
        /// Case id; S3's single hold when absent.
        #[arg(long, default_value = "")]
        case: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Release a legal hold (--mfa from your own device once an admin has an active device).
    Release {
        bucket: String,
        key: String,
        #[arg(long)]
        version_id: Option<String>,
        #[arg(long, default_value = "")]
        case: String,
    },
    /// List a version's legal holds.
    List {
        bucket: String,
        key: String,
        #[arg(long)]
        version_id: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum MfaCommand {
    /// Enrol a device (admin): from a seed or a PSKC file. It stays pending
    /// until its owner activates it (within [mfa] pending_hours). Once an
    /// admin has an active device, --mfa must give a code from one of your
    /// own; before that, when the owner has an active device, from it.
    Enroll {
        /// Device serial (from the seed or PSKC file if absent there).
        #[arg(long)]
        serial: Option<String>,
        /// Owner's access key id; the caller when absent.
        #[arg(long, default_value = "")]
        owner: String,
        /// Seed in base32.
        #[arg(long, env = "WORMBOX_MFA_SEED_BASE32", hide_env_values = true)]
        seed_base32: Option<String>,
        /// Seed in hex.
        #[arg(long, env = "WORMBOX_MFA_SEED_HEX", hide_env_values = true)]
        seed_hex: Option<String>,
        /// A PSKC (RFC 6030) file as the vendor shipped it.
        #[arg(long)]
        pskc: Option<PathBuf>,
        /// The PSKC file's pre-shared AES-128 key, in hex.
        #[arg(long, env = "WORMBOX_PSKC_KEY", hide_env_values = true)]
        pskc_key_hex: Option<String>,
        /// The PSKC file's passphrase.
        #[arg(long, env = "WORMBOX_PSKC_PASSPHRASE", hide_env_values = true)]
        pskc_passphrase: Option<String>,
        /// SHA1, SHA256 or SHA512.
        #[arg(long, default_value = "SHA1")]
        alg: String,
        #[arg(long, default_value_t = 6)]
        digits: u32,
        /// Time step in seconds.
        #[arg(long, default_value_t = 30)]
        step: u32,
        /// T0 in unix seconds.
        #[arg(long, default_value_t = 0)]
        t0: u64,
    },
    /// Activate a pending device with two consecutive codes read from --mfa.
    Activate {
        /// The device; the token's own serial when absent.
        #[arg(long)]
        serial: Option<String>,
    },
    /// Resynchronise a drifted device with two consecutive codes read from --mfa.
    Resync {
        #[arg(long)]
        serial: Option<String>,
    },
    /// List devices (never seeds).
    List {
        #[arg(long, default_value = "")]
        owner: String,
    },
    /// Deactivate a device for good; --mfa gives a code from the owner's devices.
    Deactivate {
        #[arg(long)]
        serial: String,
    },
}

#[derive(Debug, Subcommand)]
enum BucketCommand {
    /// Create a bucket; --object-lock makes it WORM (versioning Enabled for good).
    Create {
        bucket: String,
        #[arg(long)]
        object_lock: bool,
        /// Default retention of new versions: MODE:Nd or MODE:Ny (e.g. compliance:7y); needs --object-lock.
        #[arg(long)]
        default_retention: Option<String>,
    },
    /// Set or clear (`none`) the default retention; turns Object Lock on for an Enabled bucket.
    /// Clearing or shortening it needs --mfa from your own device once an admin has an active device.
    DefaultRetention {
        bucket: String,
        /// MODE:Nd, MODE:Ny or `none`.
        retention: String,
    },
    Get {
        bucket: String,
    },
    List,
    Delete {
        bucket: String,
    },
    /// Set versioning: enabled or suspended; MFA Delete on or off (owner
    /// only). While MFA Delete is on, and to change it, --mfa gives the code.
    Versioning {
        bucket: String,
        status: String,
        #[arg(long)]
        mfa_delete: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum PrincipalCommand {
    /// Create a principal; its secret is printed once. An admin or the bypass
    /// right needs --mfa from your own device once an admin has an active device.
    Create {
        name: String,
        /// admin, writer, reader or auditor.
        #[arg(long)]
        role: String,
        /// Grant the right to override GOVERNANCE retention.
        #[arg(long)]
        bypass_governance: bool,
    },
    List,
    /// Revoke a principal's key; an admin's needs --mfa from your own device
    /// once an admin has an active device.
    Revoke {
        access_key_id: String,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            match err.downcast_ref::<tonic::Status>() {
                Some(status) => {
                    let reason = status.get_details_error_info().map(|i| i.reason).unwrap_or_default();
                    eprintln!("error: {:?} {reason}: {}", status.code(), status.message());
                }
                None => eprintln!("error: {err:#}"),
            }
            std::process::ExitCode::FAILURE
        }
    }
}

struct Clients {
    channel: tonic::transport::Channel,
    auth: BearerAuth,
}

impl Clients {
    fn archive(&self) -> ArchiveClient {
        v1::archive_client::ArchiveClient::with_interceptor(self.channel.clone(), self.auth.clone())
            .max_decoding_message_size(64 << 20)
    }
    fn admin(&self) -> AdminClient {
        v1::admin_client::AdminClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }
    fn compliance(&self) -> ComplianceClient {
        v1::compliance_client::ComplianceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }
    fn mfa(&self) -> MfaClient {
        v1::mfa_client::MfaClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }
}

/// Reads one code from `--mfa` when it is given (empty otherwise): for the
/// requests that need a code only on a guarded appliance or for some changes.
fn optional_code(spec: Option<&str>) -> anyhow::Result<String> {
    match spec {
        Some(_) => mfa_code(spec),
        None => Ok(String::new()),
    }
}

/// Reads one code from `--mfa`, right before the request that spends it.
/// The entries and quiet flag of a JSON file in the shape `aws s3api
/// delete-objects --delete` takes.
fn read_delete_json(path: &std::path::Path) -> anyhow::Result<(Vec<v1::ObjectIdentifier>, bool)> {
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading the entries from stdin")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading `{}`", path.display()))?
    };
    let document: Value = serde_json::from_str(&text).context("the entries are not JSON")?;
    let shape = "expected {\"Objects\": [{\"Key\": \"...\", \"VersionId\": \"...\"}], \"Quiet\": false}";
    let listed = document.get("Objects").and_then(Value::as_array).context(shape)?;
    let mut objects = Vec::with_capacity(listed.len());
    for object in listed {
        let key = object.get("Key").and_then(Value::as_str).context(shape)?;
        let version_id = match object.get("VersionId") {
            None | Some(Value::Null) => "",
            Some(v) => v.as_str().context(shape)?,
        };
        objects.push(v1::ObjectIdentifier { key: key.to_owned(), version_id: version_id.to_owned() });
    }
    let quiet = document.get("Quiet").and_then(Value::as_bool).unwrap_or(false);
    Ok((objects, quiet))
}

fn mfa_code(spec: Option<&str>) -> anyhow::Result<String> {
    let spec = spec.context("this operation needs an MFA code: pass --mfa SOURCE")?;
    let code = wormbox_token::source::open(spec)?.read_code()?;
    Ok(code.to_header().to_string())
}

/// Reads two consecutive codes (waiting for the display to change) and the
/// serial they belong to: the one named, or the token's own.
fn read_pair(spec: Option<&str>, serial: Option<String>) -> anyhow::Result<(String, String, String)> {
    let spec = spec.context("activation and resync read two consecutive codes: pass --mfa SOURCE")?;
    let (first, second) = wormbox_token::source::open(spec)?.read_pair()?;
    Ok((serial.unwrap_or(first.serial), first.code.expose().to_owned(), second.expose().to_owned()))
}

fn device_json(d: &v1::MfaDevice) -> Value {
    let state = match v1::MfaDeviceState::try_from(d.state) {
        Ok(v1::MfaDeviceState::Pending) => "pending",
        Ok(v1::MfaDeviceState::Active) => "active",
        Ok(v1::MfaDeviceState::Deactivated) => "deactivated",
        Ok(v1::MfaDeviceState::Expired) => "expired",
        _ => "unknown",
    };
    let alg = match v1::OtpAlgorithm::try_from(d.algorithm) {
        Ok(v1::OtpAlgorithm::Sha256) => "SHA256",
        Ok(v1::OtpAlgorithm::Sha512) => "SHA512",
        _ => "SHA1",
    };
    json!({
        "serial": d.serial, "owner": d.owner, "state": state, "algorithm": alg, "digits": d.digits,
        "step_seconds": d.step_seconds, "t0": d.t0_unix_seconds, "drift_steps": d.drift_steps,
        "failures": d.failures, "locked_until_unix_seconds": d.locked_until_unix_seconds,
    })
}

fn device_line(d: &v1::MfaDevice) -> String {
    let v = device_json(d);
    format!(
        "{}  {}  owner={}  {} {} digits / {} s  drift={} steps{}",
        d.serial,
        v["state"].as_str().unwrap_or_default(),
        d.owner,
        v["algorithm"].as_str().unwrap_or_default(),
        d.digits,
        d.step_seconds,
        d.drift_steps,
        if d.locked_until_unix_seconds > 0 {
            format!("  locked until {}", d.locked_until_unix_seconds)
        } else {
            String::new()
        }
    )
}

async fn connect(cli: &Cli) -> anyhow::Result<Clients> {
    let credential = match (&cli.credential, &cli.credential_file) {
        (Some(credential), _) => credential.clone(),
        (None, Some(path)) => {
            std::fs::read_to_string(path).with_context(|| format!("reading credential file `{}`", path.display()))?
        }
        (None, None) => bail!("no credential: pass --credential, --credential-file or set WORMBOX_CREDENTIAL"),
    };
    let auth = BearerAuth::new(&credential).context("the credential must look like AKID:SECRET")?;
    let mut endpoint = Endpoint::from_shared(cli.endpoint.clone()).context("parsing --endpoint")?;
    if let Some(ca) = &cli.ca_cert {
        let pem = std::fs::read(ca).with_context(|| format!("reading `{}`", ca.display()))?;
        endpoint = endpoint.tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))?;
    }
    let channel = endpoint.connect().await.with_context(|| format!("connecting to {}", cli.endpoint))?;
    Ok(Clients { channel, auth })
}

fn print(json_mode: bool, value: Value, text: String) {
    if json_mode {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

fn versioning_name(status: i32) -> &'static str {
    match v1::VersioningStatus::try_from(status) {
        Ok(v1::VersioningStatus::Enabled) => "Enabled",
        Ok(v1::VersioningStatus::Suspended) => "Suspended",
        Ok(v1::VersioningStatus::Unversioned) => "Unversioned",
        _ => "Unknown",
    }
}

fn parse_mode(text: &str) -> anyhow::Result<v1::RetentionMode> {
    match text.to_ascii_lowercase().as_str() {
        "governance" => Ok(v1::RetentionMode::Governance),
        "compliance" => Ok(v1::RetentionMode::Compliance),
        other => bail!("retention mode must be governance or compliance, not `{other}`"),
    }
}

/// `MODE:UNTIL`, UNTIL an RFC 3339 instant or a UTC date.
fn parse_retention(text: &str) -> anyhow::Result<v1::Retention> {
    let (mode, until) = text.split_once(':').context("retention is MODE:UNTIL, e.g. compliance:2033-01-01")?;
    let until = wormbox_model::Timestamp::parse_rfc3339(until)
        .with_context(|| format!("`{until}` is not a date (YYYY-MM-DD) or an RFC 3339 instant"))?;
    Ok(v1::Retention { mode: parse_mode(mode)? as i32, retain_until_unix_micros: until.as_micros() })
}

/// `MODE:Nd` or `MODE:Ny`.
fn parse_default_retention(text: &str) -> anyhow::Result<v1::DefaultRetention> {
    let (mode, period) = text.split_once(':').context("default retention is MODE:Nd or MODE:Ny, e.g. compliance:7y")?;
    let bad = || anyhow::anyhow!("`{period}` is not a period like 30d or 7y");
    let (number, unit) = period.split_at(period.len().saturating_sub(1));
    let n: u32 = number.parse().map_err(|_| bad())?;
    let (days, years) = match unit {
        "d" => (n, 0),
        "y" => (0, n),
        _ => return Err(bad()),
    };
    Ok(v1::DefaultRetention { mode: parse_mode(mode)? as i32, days, years })
}

fn mode_name(mode: i32) -> &'static str {
    match v1::RetentionMode::try_from(mode) {
        Ok(v1::RetentionMode::Governance) => "GOVERNANCE",
        Ok(v1::RetentionMode::Compliance) => "COMPLIANCE",
        _ => "UNKNOWN",
    }
}

fn retention_json(r: &v1::Retention) -> Value {
    json!({"mode": mode_name(r.mode), "retain_until": wormbox_model::Timestamp(r.retain_until_unix_micros).to_rfc3339()})
}

fn hold_json(h: &v1::LegalHold) -> Value {
    json!({
        "case_id": h.case_id,
        "placed_by": h.placed_by,
        "placed_at": wormbox_model::Timestamp(h.placed_at_unix_micros).to_rfc3339(),
        "note": h.note,
    })
}

fn mfa_delete_name(status: i32) -> &'static str {
    match v1::MfaDeleteStatus::try_from(status) {
        Ok(v1::MfaDeleteStatus::Enabled) => "Enabled",
        _ => "Disabled",
    }
}

fn bucket_json(bucket: &v1::Bucket) -> Value {
    json!({
        "name": bucket.name,
        "owner": bucket.owner,
        "versioning": versioning_name(bucket.versioning),
        "mfa_delete": mfa_delete_name(bucket.mfa_delete),
        "object_lock": bucket.object_lock,
        "default_retention": bucket.default_retention.as_ref().map(|d| json!({
            "mode": mode_name(d.mode), "days": d.days, "years": d.years,
        })),
        "created_at": wormbox_model::Timestamp(bucket.created_at_unix_micros).to_rfc3339(),
    })
}

fn version_json(version: &v1::ObjectVersion) -> Value {
    json!({
        "key": version.key,
        "version_id": version.version_id,
        "is_latest": version.is_latest,
        "is_delete_marker": version.is_delete_marker,
        "size": version.size,
        "sha256": hex::encode(&version.sha256),
        "content_type": version.content_type,
        "user_metadata": version.user_metadata,
        "created_at": wormbox_model::Timestamp(version.created_at_unix_micros).to_rfc3339(),
        "creator": version.creator,
        "retention": version.retention.as_ref().map(retention_json),
        "legal_holds": version.legal_holds.iter().map(hold_json).collect::<Vec<_>>(),
    })
}

fn version_line(version: &v1::ObjectVersion) -> String {
    format!(
        "{}  {}  {:>12}  {}{}  {}",
        wormbox_model::Timestamp(version.created_at_unix_micros).to_rfc3339(),
        version.version_id,
        version.size,
        if version.is_latest { "latest " } else { "       " },
        if version.is_delete_marker { "marker" } else { "      " },
        version.key.escape_debug()
    )
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // Offline commands need no appliance and no credential.
    match &cli.command {
        Command::Verify { data_dir: Some(dir), public_key, checkpoints, from_checkpoint } => {
            return evidence::verify_offline(dir, public_key.as_deref(), checkpoints, *from_checkpoint, cli.json);
        }
        Command::VerifyExport { dir, public_key } => {
            return evidence::verify_export(dir, public_key.as_deref(), cli.json);
        }
        _ => {}
    }
    let clients = connect(&cli).await?;
    let json_mode = cli.json;
    let mfa_spec = cli.mfa.clone();
    let mfa_spec = mfa_spec.as_deref();
    match cli.command {
        Command::Bucket(command) => {
            let mut archive = clients.archive();
            match command {
                BucketCommand::Create { bucket, object_lock, default_retention } => {
                    let default = default_retention.as_deref().map(parse_default_retention).transpose()?;
                    if default.is_some() && !object_lock {
                        bail!("--default-retention needs --object-lock");
                    }
                    let request = v1::CreateBucketRequest { bucket: bucket.clone(), object_lock };
                    let mut created = archive.create_bucket(request).await?.into_inner().bucket.unwrap_or_default();
                    if let Some(default_retention) = default {
                        let request = v1::PutBucketDefaultRetentionRequest {
                            bucket,
                            default_retention: Some(default_retention),
                            mfa: String::new(),
                        };
                        let reply = clients.compliance().put_bucket_default_retention(request).await?.into_inner();
                        created = reply.bucket.unwrap_or_default();
                    }
                    let bucket = created;
                    print(json_mode, bucket_json(&bucket), format!("created bucket {}", bucket.name));
                }
                BucketCommand::DefaultRetention { bucket, retention } => {
                    let default_retention =
                        if retention == "none" { None } else { Some(parse_default_retention(&retention)?) };
                    let mfa = optional_code(mfa_spec)?;
                    let request = v1::PutBucketDefaultRetentionRequest { bucket, default_retention, mfa };
                    let reply = clients.compliance().put_bucket_default_retention(request).await?.into_inner();
                    let bucket = reply.bucket.unwrap_or_default();
                    print(json_mode, bucket_json(&bucket), format!("{} object_lock=on", bucket.name));
                }
                BucketCommand::Get { bucket } => {
                    let reply = archive.get_bucket(v1::GetBucketRequest { bucket }).await?.into_inner();
                    let bucket = reply.bucket.unwrap_or_default();
                    let text = format!(
                        "{}  versioning={}  mfa_delete={}  owner={}",
                        bucket.name,
                        versioning_name(bucket.versioning),
                        mfa_delete_name(bucket.mfa_delete),
                        bucket.owner
                    );
                    print(json_mode, bucket_json(&bucket), text);
                }
                BucketCommand::List => {
                    let reply = archive.list_buckets(v1::ListBucketsRequest {}).await?.into_inner();
                    let text = reply
                        .buckets
                        .iter()
                        .map(|b| format!("{}  {}", b.name, versioning_name(b.versioning)))
                        .collect::<Vec<_>>()
                        .join("\n");
                    print(json_mode, Value::Array(reply.buckets.iter().map(bucket_json).collect()), text);
                }
                BucketCommand::Delete { bucket } => {
                    let reply = archive.delete_bucket(v1::DeleteBucketRequest { bucket: bucket.clone() }).await?;
                    let sequence = reply.into_inner().ledger_sequence;
                    print(
                        json_mode,
                        json!({"deleted": bucket, "ledger_sequence": sequence}),
                        format!("deleted bucket {bucket}"),
                    );
                }
                BucketCommand::Versioning { bucket, status, mfa_delete } => {
                    let status = match status.to_ascii_lowercase().as_str() {
                        "enabled" => v1::VersioningStatus::Enabled,
                        "suspended" => v1::VersioningStatus::Suspended,
                        other => bail!("versioning status must be `enabled` or `suspended`, not `{other}`"),
                    };
                    let mfa_delete = match mfa_delete.as_deref() {
                        None => v1::MfaDeleteStatus::Unspecified,
                        Some("on" | "enabled") => v1::MfaDeleteStatus::Enabled,
                        Some("off" | "disabled") => v1::MfaDeleteStatus::Disabled,
                        Some(other) => bail!("--mfa-delete must be `on` or `off`, not `{other}`"),
                    };
                    let mfa = match mfa_spec {
                        Some(_) => mfa_code(mfa_spec)?,
                        None => String::new(),
                    };
                    let request = v1::PutBucketVersioningRequest {
                        bucket,
                        status: status as i32,
                        mfa_delete: mfa_delete as i32,
                        mfa,
                    };
                    let reply = archive.put_bucket_versioning(request).await?.into_inner();
                    let bucket = reply.bucket.unwrap_or_default();
                    let text = format!(
                        "{} versioning={} mfa_delete={}",
                        bucket.name,
                        versioning_name(bucket.versioning),
                        mfa_delete_name(bucket.mfa_delete)
                    );
                    print(json_mode, bucket_json(&bucket), text);
                }
            }
        }
        Command::Put { bucket, key, file, content_type, metadata, sha256, retention, legal_hold } => {
            let retention = retention.as_deref().map(parse_retention).transpose()?;
            let mut user_metadata = std::collections::HashMap::new();
            for entry in metadata {
                let (name, value) = entry.split_once('=').context("--meta takes NAME=VALUE")?;
                user_metadata.insert(name.to_owned(), value.to_owned());
            }
            let expected_sha256 = match sha256 {
                Some(hex_digest) => hex::decode(hex_digest.trim()).context("--sha256 must be hex")?,
                None => Vec::new(),
            };
            let header = v1::PutObjectHeader {
                bucket,
                key: key.clone(),
                content_type,
                user_metadata,
                expected_sha256,
                retention,
                legal_hold: legal_hold.unwrap_or_default(),
            };
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let source = file.filter(|f| f.as_os_str() != "-");
            let reader = std::thread::spawn(move || -> anyhow::Result<()> {
                let mut input: Box<dyn Read> = match &source {
                    Some(path) => {
                        Box::new(std::fs::File::open(path).with_context(|| format!("opening `{}`", path.display()))?)
                    }
                    None => Box::new(std::io::stdin()),
                };
                let header = v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Header(header)) };
                if tx.blocking_send(header).is_err() {
                    return Ok(());
                }
                let mut buffer = vec![0u8; 1 << 20];
                let mut size = 0u64;
                let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
                loop {
                    // A read error returns before the end message: the
                    // appliance then stores nothing of what was sent.
                    let n = input.read(&mut buffer).context("reading input")?;
                    if n == 0 {
                        break;
                    }
                    size += n as u64;
                    hasher.update(&buffer[..n]);
                    let data =
                        v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Data(buffer[..n].to_vec())) };
                    if tx.blocking_send(data).is_err() {
                        return Ok(());
                    }
                }
                let end = v1::PutObjectEnd { size, sha256: hasher.finish().as_ref().to_vec() };
                let _ = tx.blocking_send(v1::PutObjectRequest { part: Some(v1::put_object_request::Part::End(end)) });
                Ok(())
            });
            let res = clients.archive().put_object(tokio_stream::wrappers::ReceiverStream::new(rx)).await;
            reader.join().map_err(|_| anyhow::anyhow!("input reader panicked"))??;
            let reply = res?.into_inner();
            let value = json!({
                "key": key,
                "version_id": reply.version_id,
                "sha256": hex::encode(&reply.sha256),
                "size": reply.size,
                "ledger_sequence": reply.ledger_sequence,
            });
            let text = format!("{}  {}  sha256={}", reply.version_id, reply.size, hex::encode(&reply.sha256));
            print(json_mode, value, text);
        }
        Command::Get { bucket, key, version_id, output } => {
            let request = v1::GetObjectRequest { bucket, key, version_id: version_id.unwrap_or_default() };
            let mut stream = clients.archive().get_object(request).await?.into_inner();
            let mut sink: Box<dyn Write> = match &output {
                Some(path) => {
                    Box::new(std::fs::File::create(path).with_context(|| format!("creating `{}`", path.display()))?)
                }
                None => Box::new(std::io::stdout().lock()),
            };
            while let Some(message) = stream.message().await? {
                if let Some(v1::get_object_response::Part::Data(data)) = message.part {
                    sink.write_all(&data).context("writing output")?;
                }
            }
            sink.flush().context("writing output")?;
        }
        Command::Head { bucket, key, version_id } => {
            let request = v1::HeadObjectRequest { bucket, key, version_id: version_id.unwrap_or_default() };
            let version = clients.archive().head_object(request).await?.into_inner().version.unwrap_or_default();
            let text = format!("{}\nsha256={}", version_line(&version), hex::encode(&version.sha256));
            print(json_mode, version_json(&version), text);
        }
        Command::Rm { bucket, key, version_id, bypass_governance } => {
            // A marker destroys nothing: no code is read or spent for it.
            let mfa = match (&version_id, mfa_spec) {
                (Some(_), Some(_)) => mfa_code(mfa_spec)?,
                _ => String::new(),
            };
            let request = v1::DeleteObjectRequest {
                bucket,
                key,
                version_id: version_id.unwrap_or_default(),
                mfa,
                bypass_governance,
            };
            let reply = clients.archive().delete_object(request).await?.into_inner();
            let value = json!({
                "version_id": reply.version_id,
                "delete_marker": reply.delete_marker,
                "ledger_sequence": reply.ledger_sequence,
            });
            let text = match (reply.delete_marker, reply.version_id.is_empty()) {
                (_, true) => "nothing to delete".to_owned(),
                (true, false) => format!("delete marker {}", reply.version_id),
                (false, false) => format!("removed version {}", reply.version_id),
            };
            print(json_mode, value, text);
        }
        Command::DeleteObjects { bucket, keys, versions, from_json, quiet, bypass_governance } => {
            let mut objects: Vec<v1::ObjectIdentifier> =
                keys.into_iter().map(|key| v1::ObjectIdentifier { key, version_id: String::new() }).collect();
            for pair in versions.chunks(2) {
                if let [key, version_id] = pair {
                    objects.push(v1::ObjectIdentifier { key: key.clone(), version_id: version_id.clone() });
                }
            }
            let mut quiet = quiet;
            if let Some(path) = from_json {
                let (listed, json_quiet) = read_delete_json(&path)?;
                objects.extend(listed);
                quiet |= json_quiet;
            }
            // Markers destroy nothing: a code is read only for permanent deletes.
            let mfa = match mfa_spec {
                Some(_) if objects.iter().any(|o| !o.version_id.is_empty()) => mfa_code(mfa_spec)?,
                _ => String::new(),
            };
            let total = objects.len();
            let request = v1::DeleteObjectsRequest { bucket, objects, mfa, bypass_governance, quiet };
            let reply = clients.archive().delete_objects(request).await?.into_inner();
            let value = json!({
                "deleted": reply.deleted.iter().map(|d| json!({
                    "key": d.key,
                    "version_id": d.version_id,
                    "delete_marker": d.delete_marker,
                    "delete_marker_version_id": d.delete_marker_version_id,
                    "ledger_sequence": d.ledger_sequence,
                })).collect::<Vec<_>>(),
                "errors": reply.errors.iter().map(|e| json!({
                    "key": e.key,
                    "version_id": e.version_id,
                    "reason": e.reason,
                    "message": e.message,
                })).collect::<Vec<_>>(),
            });
            let mut lines: Vec<String> = reply
                .deleted
                .iter()
                .map(|d| match (d.version_id.is_empty(), d.delete_marker) {
                    (true, true) => format!("{}: delete marker {}", d.key, d.delete_marker_version_id),
                    (true, false) if d.ledger_sequence == 0 => format!("{}: nothing to delete", d.key),
                    (true, false) => format!("{}: removed", d.key),
                    (false, _) => format!("{}: removed version {}", d.key, d.version_id),
                })
                .collect();
            for e in &reply.errors {
                let version =
                    if e.version_id.is_empty() { String::new() } else { format!(" version {}", e.version_id) };
                lines.push(format!("{}{version}: refused {}: {}", e.key, e.reason, e.message));
            }
            // Quiet and all deleted: nothing to say, as S3 answers.
            if json_mode || !lines.is_empty() {
                print(json_mode, value, lines.join("\n"));
            }
            if !reply.errors.is_empty() {
                bail!("{} of {total} deletes were refused", reply.errors.len());
            }
        }
        Command::Versions { bucket, prefix, delimiter, key_marker, version_id_marker, max_keys } => {
            let request =
                v1::ListObjectVersionsRequest { bucket, prefix, delimiter, key_marker, version_id_marker, max_keys };
            let page = clients.archive().list_object_versions(request).await?.into_inner();
            let mut all: Vec<&v1::ObjectVersion> = page.versions.iter().chain(&page.delete_markers).collect();
            all.sort_by(|a, b| a.key.cmp(&b.key).then(b.version_id.cmp(&a.version_id)));
            let mut lines: Vec<String> = page.common_prefixes.iter().map(|p| format!("PREFIX {p}")).collect();
            lines.extend(all.iter().map(|v| version_line(v)));
            if page.is_truncated {
                lines.push(format!(
                    "(more: --key-marker {:?} --version-id-marker {})",
                    page.next_key_marker, page.next_version_id_marker
                ));
            }
            let value = json!({
                "versions": page.versions.iter().map(version_json).collect::<Vec<_>>(),
                "delete_markers": page.delete_markers.iter().map(version_json).collect::<Vec<_>>(),
                "common_prefixes": page.common_prefixes,
                "is_truncated": page.is_truncated,
                "next_key_marker": page.next_key_marker,
                "next_version_id_marker": page.next_version_id_marker,
            });
            print(json_mode, value, lines.join("\n"));
        }
        Command::Ls { bucket, prefix, delimiter, start_after, max_keys } => {
            let request =
                v1::ListObjectsRequest { bucket, prefix, delimiter, start_after, max_keys, ..Default::default() };
            let page = clients.archive().list_objects(request).await?.into_inner();
            let mut lines: Vec<String> = page.common_prefixes.iter().map(|p| format!("PREFIX {p}")).collect();
            lines.extend(page.objects.iter().map(version_line));
            if page.is_truncated {
                lines.push(format!("(more: --start-after {:?})", page.next_continuation_token));
            }
            let value = json!({
                "objects": page.objects.iter().map(version_json).collect::<Vec<_>>(),
                "common_prefixes": page.common_prefixes,
                "is_truncated": page.is_truncated,
                "next_continuation_token": page.next_continuation_token,
            });
            print(json_mode, value, lines.join("\n"));
        }
        Command::Mfa(command) => mfa_command(&clients, command, mfa_spec, json_mode).await?,
        Command::Admin(AdminCommand::Pubkey { out }) => evidence::checkpoint(&clients, 0, out, true, json_mode).await?,
        Command::Admin(AdminCommand::Backup { out }) => backup::backup(&clients, &out, json_mode).await?,
        Command::Checkpoint { sequence, out } => {
            evidence::checkpoint(&clients, sequence, out, false, json_mode).await?
        }
        Command::Verify { data_dir: _, public_key, checkpoints, from_checkpoint } => {
            evidence::verify_online(&clients, public_key.as_deref(), &checkpoints, from_checkpoint, json_mode).await?
        }
        Command::Audit(args) => evidence::audit(&clients, args, json_mode).await?,
        Command::Report(ReportCommand::Retention { bucket, prefix, format, out }) => {
            evidence::retention_report(&clients, bucket, prefix, &format, out).await?
        }
        Command::Export { bucket, prefix, out } => evidence::export(&clients, bucket, prefix, &out).await?,
        Command::VerifyExport { dir, public_key } => evidence::verify_export(&dir, public_key.as_deref(), json_mode)?,
        Command::Clock(command) => {
            let mut admin = clients.admin();
            match command {
                ClockCommand::Show => {
                    let reply = admin.get_clock(v1::GetClockRequest {}).await?.into_inner();
                    let system = wormbox_model::Timestamp(reply.system_unix_micros);
                    let compliance = wormbox_model::Timestamp(reply.compliance_unix_micros);
                    let caught_up = (reply.caught_up_unix_micros != 0)
                        .then(|| wormbox_model::Timestamp(reply.caught_up_unix_micros).to_rfc3339());
                    let value = json!({
                        "system": system.to_rfc3339(),
                        "compliance": compliance.to_rfc3339(),
                        "held_back_seconds": reply.held_back_seconds,
                        "catch_up_seconds_per_year": reply.catch_up_seconds_per_year,
                        "caught_up_at": caught_up,
                    });
                    let mut text = format!("system      {system}\ncompliance  {compliance}");
                    if reply.held_back_seconds > 0 {
                        let by =
                            caught_up.map_or_else(|| "never on its own".to_owned(), |t| format!("caught up by {t}"));
                        text.push_str(&format!(
                            "\nthe compliance clock is {} s behind; it catches up at {} days per year ({by}); \
                             `wormbox clock accept-forward` accepts the whole jump at once",
                            reply.held_back_seconds,
                            reply.catch_up_seconds_per_year / 86_400
                        ));
                    }
                    print(json_mode, value, text);
                }
                ClockCommand::AcceptForward => {
                    let request = v1::AcceptClockForwardRequest { mfa: mfa_code(mfa_spec)? };
                    let reply = admin.accept_clock_forward(request).await?.into_inner();
                    let compliance = wormbox_model::Timestamp(reply.compliance_unix_micros);
                    let value =
                        json!({"compliance": compliance.to_rfc3339(), "ledger_sequence": reply.ledger_sequence});
                    print(json_mode, value, format!("compliance clock now {compliance}"));
                }
            }
        }
        Command::Retention(command) => {
            let mut compliance = clients.compliance();
            let retention = match command {
                RetentionCommand::Get { bucket, key, version_id } => {
                    let request =
                        v1::GetObjectRetentionRequest { bucket, key, version_id: version_id.unwrap_or_default() };
                    compliance.get_object_retention(request).await?.into_inner().retention
                }
                RetentionCommand::Set { bucket, key, retention, version_id, bypass_governance } => {
                    let retention = if retention == "none" { None } else { Some(parse_retention(&retention)?) };
                    let mfa = match mfa_spec {
                        Some(_) => mfa_code(mfa_spec)?,
                        None => String::new(),
                    };
                    let request = v1::PutObjectRetentionRequest {
                        bucket,
                        key,
                        version_id: version_id.unwrap_or_default(),
                        retention,
                        bypass_governance,
                        mfa,
                    };
                    compliance.put_object_retention(request).await?.into_inner().retention
                }
            };
            let value = retention.as_ref().map_or(Value::Null, retention_json);
            let text = retention.as_ref().map_or("no retention".to_owned(), |r| {
                format!(
                    "{} until {}",
                    value["mode"].as_str().unwrap_or_default(),
                    wormbox_model::Timestamp(r.retain_until_unix_micros)
                )
            });
            print(json_mode, value, text);
        }
        Command::Hold(command) => {
            let mut compliance = clients.compliance();
            let holds = match command {
                HoldCommand::Place { bucket, key, version_id, case, note } => {
                    let version_id = version_id.unwrap_or_default();
                    let request = v1::PutObjectLegalHoldRequest {
                        bucket,
                        key,
                        version_id,
                        case_id: case,
                        place: true,
                        note,
                        mfa: String::new(),
                    };
                    compliance.put_object_legal_hold(request).await?.into_inner().legal_holds
                }
                HoldCommand::Release { bucket, key, version_id, case } => {
                    let version_id = version_id.unwrap_or_default();
                    let request = v1::PutObjectLegalHoldRequest {
                        bucket,
                        key,
                        version_id,
                        case_id: case,
                        place: false,
                        note: String::new(),
                        mfa: optional_code(mfa_spec)?,
                    };
                    compliance.put_object_legal_hold(request).await?.into_inner().legal_holds
                }
                HoldCommand::List { bucket, key, version_id } => {
                    let request =
                        v1::GetObjectLegalHoldRequest { bucket, key, version_id: version_id.unwrap_or_default() };
                    compliance.get_object_legal_hold(request).await?.into_inner().legal_holds
                }
            };
            let value = Value::Array(holds.iter().map(hold_json).collect());
            let text = holds
                .iter()
                .map(|h| {
                    format!("{}  by {}  {}", h.case_id, h.placed_by, wormbox_model::Timestamp(h.placed_at_unix_micros))
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(json_mode, value, if text.is_empty() { "no legal holds".to_owned() } else { text });
        }
        Command::Principal(command) => {
            let mut admin = clients.admin();
            match command {
                PrincipalCommand::Create { name, role, bypass_governance } => {
                    let role = match role.as_str() {
                        "admin" => v1::Role::Admin,
                        "writer" => v1::Role::Writer,
                        "reader" => v1::Role::Reader,
                        "auditor" => v1::Role::Auditor,
                        other => bail!("role must be admin, writer, reader or auditor, not `{other}`"),
                    };
                    let mfa = optional_code(mfa_spec)?;
                    let request = v1::CreatePrincipalRequest { name, role: role as i32, bypass_governance, mfa };
                    let reply = admin.create_principal(request).await?;
                    let reply = reply.into_inner();
                    let principal = reply.principal.unwrap_or_default();
                    let credential = format!("{}:{}", principal.access_key_id, reply.secret);
                    let value = json!({"access_key_id": principal.access_key_id, "credential": credential});
                    print(json_mode, value, format!("credential (shown once): {credential}"));
                }
                PrincipalCommand::List => {
                    let reply = admin.list_principals(v1::ListPrincipalsRequest {}).await?.into_inner();
                    let role_name = |role: i32| match v1::Role::try_from(role) {
                        Ok(v1::Role::Admin) => "admin",
                        Ok(v1::Role::Writer) => "writer",
                        Ok(v1::Role::Reader) => "reader",
                        Ok(v1::Role::Auditor) => "auditor",
                        _ => "unknown",
                    };
                    let text = reply
                        .principals
                        .iter()
                        .map(|p| {
                            let state = if p.revoked { "revoked" } else { "active" };
                            format!("{}  {:8}  {:7}  {}", p.access_key_id, role_name(p.role), state, p.name)
                        })
                        .collect::<Vec<_>>()
                        .join("\n");
                    let value = Value::Array(
                        reply
                            .principals
                            .iter()
                            .map(|p| {
                                json!({"access_key_id": p.access_key_id, "name": p.name, "role": role_name(p.role), "revoked": p.revoked})
                            })
                            .collect(),
                    );
                    print(json_mode, value, text);
                }
                PrincipalCommand::Revoke { access_key_id } => {
                    let reply = admin
                        .revoke_principal(v1::RevokePrincipalRequest {
                            access_key_id: access_key_id.clone(),
                            mfa: optional_code(mfa_spec)?,
                        })
                        .await?
                        .into_inner();
                    let value = json!({"revoked": access_key_id, "ledger_sequence": reply.ledger_sequence});
                    print(json_mode, value, format!("revoked {access_key_id}"));
                }
            }
        }
    }
    Ok(())
}

async fn mfa_command(
    clients: &Clients,
    command: MfaCommand,
    spec: Option<&str>,
    json_mode: bool,
) -> anyhow::Result<()> {
    let mut mfa = clients.mfa();
    let show = |devices: &[v1::MfaDevice], verb: &str| {
        let text = devices.iter().map(|d| format!("{verb}{}", device_line(d))).collect::<Vec<_>>().join("\n");
        print(json_mode, Value::Array(devices.iter().map(device_json).collect()), text);
    };
    match command {
        MfaCommand::Enroll {
            serial,
            owner,
            seed_base32,
            seed_hex,
            pskc,
            pskc_key_hex,
            pskc_passphrase,
            alg,
            digits,
            step,
            t0,
        } => {
            let source = if let Some(path) = pskc {
                let document =
                    std::fs::read_to_string(&path).with_context(|| format!("reading `{}`", path.display()))?;
                let pre_shared_key = match pskc_key_hex {
                    Some(hex_key) => hex::decode(hex_key.trim()).context("--pskc-key-hex must be hex")?,
                    None => Vec::new(),
                };
                v1::enroll_device_request::Source::Pskc(v1::PskcEnrollment {
                    document,
                    pre_shared_key,
                    passphrase: pskc_passphrase.unwrap_or_default(),
                })
            } else {
                let algorithm = match alg.to_ascii_uppercase().as_str() {
                    "SHA1" => v1::OtpAlgorithm::Sha1,
                    "SHA256" => v1::OtpAlgorithm::Sha256,
                    "SHA512" => v1::OtpAlgorithm::Sha512,
                    other => bail!("--alg must be SHA1, SHA256 or SHA512, not `{other}`"),
                };
                v1::enroll_device_request::Source::Seed(v1::SeedEnrollment {
                    serial: serial.context("--serial is needed with a seed")?,
                    seed_base32: seed_base32.unwrap_or_default(),
                    seed_hex: seed_hex.unwrap_or_default(),
                    algorithm: algorithm as i32,
                    digits,
                    step_seconds: step,
                    t0_unix_seconds: t0,
                })
            };
            let guard = match spec {
                Some(_) => mfa_code(spec)?,
                None => String::new(),
            };
            let request = v1::EnrollDeviceRequest { owner, source: Some(source), mfa: guard };
            let reply = mfa.enroll_device(request).await?.into_inner();
            show(&reply.devices, "enrolled (pending activation): ");
        }
        MfaCommand::Activate { serial } => {
            let (serial, first_code, second_code) = read_pair(spec, serial)?;
            let request = v1::ActivateDeviceRequest { serial, first_code, second_code };
            show(&[mfa.activate_device(request).await?.into_inner().device.unwrap_or_default()], "activated: ");
        }
        MfaCommand::Resync { serial } => {
            let (serial, first_code, second_code) = read_pair(spec, serial)?;
            let request = v1::ResyncDeviceRequest { serial, first_code, second_code };
            show(&[mfa.resync_device(request).await?.into_inner().device.unwrap_or_default()], "resynchronised: ");
        }
        MfaCommand::List { owner } => {
            let reply = mfa.list_devices(v1::ListDevicesRequest { owner }).await?.into_inner();
            show(&reply.devices, "");
        }
        MfaCommand::Deactivate { serial } => {
            let request = v1::DeactivateDeviceRequest { serial, mfa: mfa_code(spec)? };
            let device = mfa.deactivate_device(request).await?.into_inner().device.unwrap_or_default();
            show(&[device], "deactivated: ");
        }
    }
    Ok(())
}
