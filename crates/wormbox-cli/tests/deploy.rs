//! A packaged appliance's life through its real entry points: `init` with a
//! generated TLS CA, the CLI over TLS, `wormbox admin backup`, and restores
//! that are refused (an outdated backup, an occupied target, a damaged
//! backup, keys of another appliance) or that bring back an archive which
//! verifies and still enforces its retention. Backups hold no seed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::Value;
use wormbox_model::ManualClock;
use wormbox_server::WormboxdConfig;
use wormbox_server::backup::{BackupError, RestoreOptions};
use wormbox_server::config::TlsConfig;
use wormbox_server::init::InitOptions;
use wormbox_test_utils::TEST_EPOCH;

struct Cli {
    endpoint: String,
    ca: PathBuf,
    credential: String,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Output {
        tokio::task::block_in_place(|| {
            Command::new(env!("CARGO_BIN_EXE_wormbox"))
                .args(["--endpoint", &self.endpoint, "--ca-cert", self.ca.to_str().unwrap()])
                .args(args)
                .env("WORMBOX_CREDENTIAL", &self.credential)
                .output()
                .expect("wormbox runs")
        })
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn config_in(dir: &Path, data: &str) -> WormboxdConfig {
    let mut config = WormboxdConfig::default();
    config.listen.addr = "127.0.0.1:0".parse().unwrap();
    config.s3.listen = "127.0.0.1:0".parse().unwrap();
    config.metrics.listen = "127.0.0.1:0".parse().unwrap();
    config.storage.data_dir = dir.join(data);
    config.storage.write_buffer_mib = 4;
    config.storage.block_cache_mib = 8;
    config.tls =
        Some(TlsConfig { cert: dir.join(data).join("tls/server.pem"), key: dir.join(data).join("tls/server.key") });
    config
}

fn restore(from: &Path, data_dir: &Path, keys: &Path, published: &[&Path]) -> Result<String, BackupError> {
    wormbox_server::backup::restore(&RestoreOptions {
        from: from.to_owned(),
        data_dir: data_dir.to_owned(),
        keys: keys.to_owned(),
        published: published.iter().map(|p| p.to_path_buf()).collect(),
        without_published: false,
    })
    .map(|r| r.summary)
}

fn all_bytes_under(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            bytes.extend(all_bytes_under(&path));
        } else {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    bytes
}

#[tokio::test(flavor = "multi_thread")]
async fn init_serves_tls_and_a_backup_restores_only_when_safe() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let clock = Arc::new(ManualClock::new(TEST_EPOCH));
    let config = config_in(dir, "data");

    // init: everything made, with strict modes; a second init is refused.
    let options = InitOptions { tls_names: vec!["archive.example.test".into(), "10.1.2.3".into()], tls_import: None };
    let done = wormbox_server::init::init(&config, clock.clone(), &options).await.unwrap();
    let data = &config.storage.data_dir;
    assert_eq!(mode(data), 0o700);
    for secret in ["mfa-master.key", "checkpoint-signing.key", "admin.credential", "tls/server.key"] {
        assert_eq!(mode(&data.join(secret)), 0o600, "{secret}");
    }
    assert_eq!(mode(&data.join("tls/server.pem")), 0o644);
    let ca = done.tls.as_ref().unwrap().ca.clone().unwrap();
    assert_eq!(ca, data.join("tls/ca.pem"));
    assert!(done.tls.as_ref().unwrap().names.contains(&"archive.example.test".to_owned()));
    assert_eq!(std::fs::read_to_string(data.join("admin.credential")).unwrap().trim(), done.admin_credential);
    let again = wormbox_server::init::init(&config, clock.clone(), &options).await.unwrap_err();
    assert!(again.to_string().contains("refusing to initialise"), "{again}");

    // Serving with TLS; the CLI trusts the generated CA by name.
    let server = wormbox_server::start(&config, clock.clone()).await.unwrap();
    assert!(server.new_admin_credential.is_none(), "init made the admin");
    let cli = Cli {
        endpoint: format!("https://localhost:{}", server.addr.port()),
        ca: ca.clone(),
        credential: done.admin_credential.clone(),
    };
    // The certificate also carries the names given to init.
    let pem = std::fs::read(&ca).unwrap();
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&pem))
        .domain_name("archive.example.test");
    let channel = tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{}", server.addr.port()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap();
    cli.ok(&["bucket", "create", "vault", "--object-lock", "--default-retention", "compliance:365d"]);
    let body = dir.join("record.txt");
    std::fs::write(&body, b"trade 1: 100 @ 42\n").unwrap();
    let first = cli.json(&["put", "vault", "trades/1", body.to_str().unwrap()]);
    let first_id = first["version_id"].as_str().unwrap().to_owned();
    // An MFA device: its seed must appear in no backup.
    let seed = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    cli.ok(&["mfa", "enroll", "--serial", "GALT12345678", "--seed-base32", seed]);

    let backup1 = dir.join("backup-1");
    let made = cli.json(&["admin", "backup", "--out", backup1.to_str().unwrap()]);
    assert!(made["files"].as_u64().unwrap() > 0, "{made}");
    assert!(backup1.join("backup.json").exists() && backup1.join("db/CURRENT").exists());
    // It holds secret hashes and sealed seeds: private to whoever took it.
    assert_eq!((mode(&backup1), mode(&backup1.join("db")), mode(&backup1.join("db/CURRENT"))), (0o700, 0o700, 0o600));
    let everything = all_bytes_under(&backup1);
    let raw_seed = data_encoding::BASE32_NOPAD.decode(seed.as_bytes()).unwrap();
    for needle in [seed.as_bytes(), raw_seed.as_slice()] {
        assert!(!everything.windows(needle.len()).any(|w| w == needle), "the backup holds the seed");
    }
    for key in ["mfa-master.key", "checkpoint-signing.key", "admin.credential"] {
        let secret = std::fs::read(data.join(key)).unwrap();
        assert!(!everything.windows(secret.len()).any(|w| w == secret.as_slice()), "the backup holds {key}");
    }
    // The staged copy is gone once streamed.
    let staging = data.join(wormbox_server::backup::STAGING_DIR);
    assert!(std::fs::read_dir(&staging).map(|mut d| d.next().is_none()).unwrap_or(true));

    // More records, a checkpoint an auditor keeps, and a second backup.
    std::fs::write(&body, b"trade 2: 5 @ 43\n").unwrap();
    cli.ok(&["put", "vault", "trades/2", body.to_str().unwrap()]);
    // A large record, kept in a value segment file beside RocksDB.
    let scan = dir.join("scan.bin");
    let scan_bytes: Vec<u8> = (0..512 * 1024u32).map(|n| (n % 251) as u8).collect();
    std::fs::write(&scan, &scan_bytes).unwrap();
    cli.ok(&["put", "vault", "scans/1", scan.to_str().unwrap()]);
    let published = dir.join("auditor-checkpoint.json");
    cli.ok(&["checkpoint", "--out", published.to_str().unwrap()]);
    let backup2 = dir.join("backup-2");
    cli.ok(&["admin", "backup", "--out", backup2.to_str().unwrap()]);
    let segment_of = |backup: &Path| {
        std::fs::read_dir(backup.join("db"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "seg"))
            .expect("the backup holds the value segment")
    };
    segment_of(&backup2);
    // A backup never goes into a directory with something in it.
    let refused = cli.run(&["admin", "backup", "--out", backup2.to_str().unwrap()]);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("not empty"));
    server.stop().await.unwrap();

    // Refused: the first backup is older than what the appliance published.
    let target = dir.join("restored");
    let err = restore(&backup1, &target, data, &[&published]).unwrap_err().to_string();
    assert!(err.contains("roll the archive and its retention back"), "{err}");
    // ... and so is the second backup's own checkpoint.
    let err = restore(&backup1, &target, data, &[&backup2.join("backup.json")]).unwrap_err().to_string();
    assert!(err.contains("roll the archive and its retention back"), "{err}");
    // A published checkpoint that is not a checkpoint, or signed by another key, is refused.
    let err = restore(&backup2, &target, data, &[&body]).unwrap_err().to_string();
    assert!(err.contains("neither a checkpoint file nor"), "{err}");
    let mut forged: Value = serde_json::from_str(&std::fs::read_to_string(&published).unwrap()).unwrap();
    forged["sequence"] = Value::from(1);
    let forged_path = dir.join("forged.json");
    std::fs::write(&forged_path, forged.to_string()).unwrap();
    let err = restore(&backup2, &target, data, &[&forged_path]).unwrap_err().to_string();
    assert!(err.contains("is not signed by this appliance's key"), "{err}");
    // Refused: over existing data.
    let err = restore(&backup2, data, data, &[&published]).unwrap_err().to_string();
    assert!(err.contains("is not empty"), "{err}");
    // Refused: no published checkpoint named.
    let err = restore(&backup2, &target, data, &[]).unwrap_err().to_string();
    assert!(err.contains("--published"), "{err}");
    // Refused: keys of another appliance.
    let other = dir.join("other");
    wormbox_server::init::init(&config_in(dir, "other"), clock.clone(), &InitOptions::default()).await.unwrap();
    let err = restore(&backup2, &target, &other, &[&published]).unwrap_err().to_string();
    assert!(err.contains("is not the one that signed this backup"), "{err}");
    // Refused: the right signing key with another appliance's MFA master key.
    let mixed = dir.join("mixed-keys");
    std::fs::create_dir(&mixed).unwrap();
    std::fs::copy(data.join("checkpoint-signing.key"), mixed.join("checkpoint-signing.key")).unwrap();
    std::fs::copy(other.join("mfa-master.key"), mixed.join("mfa-master.key")).unwrap();
    let err = restore(&backup2, &target, &mixed, &[&published]).unwrap_err().to_string();
    assert!(err.contains("does not open the seed of device GALT12345678"), "{err}");
    // Refused: a damaged copy (one byte of one table file flipped).
    let damaged = dir.join("damaged");
    copy_dir(&backup2, &damaged);
    let table = std::fs::read_dir(damaged.join("db"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sst"))
        .unwrap();
    let mut bytes = std::fs::read(&table).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&table, bytes).unwrap();
    let err = restore(&damaged, &target, data, &[&published]).unwrap_err().to_string();
    assert!(err.contains("not intact") && err.contains(".sst has"), "{err}");
    // ... and one byte of the value segment.
    copy_dir(&backup2, &damaged);
    let segment = segment_of(&damaged);
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&segment, bytes).unwrap();
    let err = restore(&damaged, &target, data, &[&published]).unwrap_err().to_string();
    assert!(err.contains("not intact") && err.contains(".seg has"), "{err}");
    // Refused: an unfinished backup (no manifest).
    std::fs::remove_file(damaged.join("backup.json")).unwrap();
    let err = restore(&damaged, &target, data, &[&published]).unwrap_err().to_string();
    assert!(err.contains("not intact"), "{err}");
    assert!(!target.exists(), "a refused restore writes nothing");

    // The second backup restores, verifies, and the archive keeps its rules.
    let summary = restore(&backup2, &target, data, &[&published]).unwrap();
    assert!(summary.ends_with("no divergence"), "{summary}");
    assert_eq!(mode(&target), 0o700);
    assert_eq!(mode(&target.join("mfa-master.key")), 0o600);
    let mut restored_config = config.clone();
    restored_config.storage.data_dir = target.clone();
    let server = wormbox_server::start(&restored_config, clock.clone()).await.unwrap();
    assert!(server.new_admin_credential.is_none(), "the restored archive has its admin");
    let cli = Cli { endpoint: format!("https://localhost:{}", server.addr.port()), ..cli };
    let out = dir.join("got.txt");
    cli.ok(&["get", "vault", "trades/2", "--output", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), b"trade 2: 5 @ 43\n");
    cli.ok(&["get", "vault", "scans/1", "--output", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), scan_bytes, "the large record came back from its segment");
    let locked = cli.run(&["rm", "vault", "trades/1", "--version-id", &first_id]);
    assert!(!locked.status.success(), "retention survived the restore");
    assert!(
        String::from_utf8_lossy(&locked.stderr).contains("OBJECT_LOCKED"),
        "{}",
        String::from_utf8_lossy(&locked.stderr)
    );
    let verified = cli.json(&["verify", "--checkpoint", published.to_str().unwrap()]);
    assert_eq!(verified["ok"], Value::Bool(true), "{verified}");
    assert_eq!(cli.json(&["mfa", "list"]).as_array().map(Vec::len), Some(1), "devices came back");
    server.stop().await.unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let dest = to.join(path.file_name().unwrap());
        if path.is_dir() { copy_dir(&path, &dest) } else { std::fs::copy(&path, &dest).map(|_| ()).unwrap() }
    }
}
