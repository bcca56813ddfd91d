//! `wormboxd init`: the explicit first run of a packaged appliance. It creates
//! the data directory (0700), the MFA master key and the checkpoint signing
//! key (0600), the archive with its first admin (credential in
//! `admin.credential`, 0600), and the TLS material the config names: a CA and
//! a server certificate for the appliance's names and addresses (rcgen), or
//! the site's own certificate and key, checked and copied.
//!
//! Invariant: init never runs over an initialised appliance. It refuses a
//! non-empty data directory and existing TLS files before it creates anything,
//! and it generates every key in memory before it writes the first file, so a
//! refused or failed init leaves nothing half made behind.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use wormbox_model::Clock;
use wormbox_store::evidence::Signer as _;

use crate::{ServerError, WormboxdConfig};

/// The CA certificate `init` writes beside the server certificate; clients
/// trust the appliance with it (`wormbox --ca-cert`).
pub const CA_CERT_FILE: &str = "ca.pem";

/// How long generated certificates are valid: an air-gapped appliance should
/// not stop serving because a certificate nobody renewed has expired, and the
/// CA key is never kept, so nothing else can be issued under it.
const CERT_VALIDITY_DAYS: i64 = 3650;

/// What `init` does about TLS when the config has a `[tls]` section.
#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    /// DNS names and IP addresses clients use to reach the appliance; the
    /// generated certificate names them all (plus localhost and loopback).
    pub tls_names: Vec<String>,
    /// The site's own certificate chain and key (PEM) instead of generated ones.
    pub tls_import: Option<(PathBuf, PathBuf)>,
}

/// What `init` made.
#[derive(Debug)]
pub struct Initialised {
    /// The first admin's `AKID:SECRET`; shown once, also in `admin.credential`.
    pub admin_credential: String,
    /// The checkpoint public key, hex.
    pub public_key_hex: String,
    /// The TLS files written: certificate, key, and the CA when generated.
    pub tls: Option<TlsFiles>,
}

/// The TLS files `init` wrote.
#[derive(Debug)]
pub struct TlsFiles {
    /// Server certificate chain.
    pub cert: PathBuf,
    /// Server key (0600).
    pub key: PathBuf,
    /// The generated CA's certificate, absent when the site's own was imported.
    pub ca: Option<PathBuf>,
    /// The names and addresses the certificate covers (generated only).
    pub names: Vec<String>,
}

/// Returns whether `data_dir` holds an archive.
pub fn is_initialised(data_dir: &Path) -> bool {
    data_dir.join("db").join("CURRENT").exists()
}

/// Initialises the appliance `config` describes. See the module doc.
pub async fn init(
    config: &WormboxdConfig,
    clock: Arc<dyn Clock>,
    options: &InitOptions,
) -> Result<Initialised, ServerError> {
    config.validate()?;
    let data_dir = &config.storage.data_dir;
    refuse_if_used(data_dir)?;
    let tls = match &config.tls {
        Some(tls) => {
            for path in [&tls.cert, &tls.key] {
                if path.exists() {
                    return Err(ServerError::AlreadyInitialised {
                        path: path.clone(),
                        why: "the TLS file exists".to_owned(),
                    });
                }
            }
            Some(match &options.tls_import {
                Some((cert, key)) => import_tls(cert, key)?,
                None => generate_tls(&tls_names(config, &options.tls_names), clock.now())?,
            })
        }
        None if options.tls_import.is_some() || !options.tls_names.is_empty() => {
            return Err(crate::ConfigError::Invalid {
                key: "tls",
                why: "TLS names or files were given but the config has no [tls] section saying where they go"
                    .to_owned(),
            }
            .into());
        }
        None => None,
    };

    let opened = crate::open_archive(config, clock).await?;
    let admin_credential = opened.new_admin_credential.ok_or_else(|| ServerError::AlreadyInitialised {
        path: data_dir.clone(),
        why: "the archive already has an admin".to_owned(),
    })?;
    let public_key_hex = hex::encode(opened.signer.public_key());
    let tls = match (tls, &config.tls) {
        (Some(material), Some(paths)) => Some(material.write(&paths.cert, &paths.key)?),
        _ => None,
    };
    Ok(Initialised { admin_credential, public_key_hex, tls })
}

fn refuse_if_used(data_dir: &Path) -> Result<(), ServerError> {
    let used = match std::fs::read_dir(data_dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(source) => return Err(ServerError::DataDir { path: data_dir.to_owned(), source }),
    };
    if used {
        return Err(ServerError::AlreadyInitialised {
            path: data_dir.to_owned(),
            why: "the data directory is not empty".to_owned(),
        });
    }
    Ok(())
}

/// The certificate's names: what the operator gave, the listen address when
/// it is a specific one, and localhost, so that tools on the appliance itself
/// connect without a name of their own.
fn tls_names(config: &WormboxdConfig, given: &[String]) -> Vec<String> {
    let mut names: Vec<String> = given.iter().map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()).collect();
    // The addresses of every listener the certificate serves (gRPC, and S3
    // and the metrics, which use it too).
    for listen in [config.listen.addr.ip(), config.s3.listen.ip(), config.metrics.listen.ip()] {
        if !listen.is_unspecified() {
            names.push(listen.to_string());
        }
    }
    names.extend(["localhost".to_owned(), IpAddr::from([127, 0, 0, 1]).to_string(), "::1".to_owned()]);
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.to_ascii_lowercase()));
    names
}

struct TlsMaterial {
    cert_pem: String,
    key_pem: zeroize::Zeroizing<String>,
    ca_pem: Option<String>,
    names: Vec<String>,
}

fn tls_error(what: impl std::fmt::Display) -> ServerError {
    ServerError::Tls(what.to_string().into())
}

fn generate_tls(names: &[String], now: wormbox_model::Timestamp) -> Result<TlsMaterial, ServerError> {
    let not_before = time::OffsetDateTime::from_unix_timestamp(now.as_micros() / 1_000_000 - 86_400)
        .map_err(|e| tls_error(format!("the clock is out of range for a certificate: {e}")))?;
    let not_after = not_before + time::Duration::days(CERT_VALIDITY_DAYS);

    let ca_key = KeyPair::generate().map_err(tls_error)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name.push(DnType::OrganizationName, "Wormbox");
    ca.distinguished_name.push(DnType::CommonName, "Wormbox appliance CA");
    // It signs this one server certificate and nothing below it.
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_cert = ca.self_signed(&ca_key).map_err(tls_error)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().map_err(tls_error)?;
    let mut server = CertificateParams::new(names.to_vec()).map_err(|e| tls_error(format!("TLS names: {e}")))?;
    server.distinguished_name = DistinguishedName::new();
    server.distinguished_name.push(DnType::OrganizationName, "Wormbox");
    server.distinguished_name.push(DnType::CommonName, names.first().map(String::as_str).unwrap_or("wormbox"));
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.not_before = not_before;
    server.not_after = not_after;
    let cert = server.signed_by(&key, &issuer).map_err(tls_error)?;
    // The CA's key goes out of scope here, unwritten.
    Ok(TlsMaterial {
        cert_pem: cert.pem(),
        key_pem: zeroize::Zeroizing::new(key.serialize_pem()),
        ca_pem: Some(ca_cert.pem()),
        names: names.to_vec(),
    })
}

/// Reads the site's PEM files and checks what can be checked without a TLS
/// handshake: a certificate chain and exactly one private key.
fn import_tls(cert: &Path, key: &Path) -> Result<TlsMaterial, ServerError> {
    const MAX_PEM: u64 = 1 << 20;
    let read = |path: &Path| -> Result<String, ServerError> {
        let err = |why: String| tls_error(format!("{}: {why}", path.display()));
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if meta.len() > MAX_PEM {
            return Err(err(format!("larger than {MAX_PEM} bytes; not a PEM file")));
        }
        std::fs::read_to_string(path).map_err(|e| err(e.to_string()))
    };
    let cert_pem = read(cert)?;
    let key_pem = zeroize::Zeroizing::new(read(key)?);
    let blocks = pem::parse_many(&cert_pem).map_err(|e| tls_error(format!("{}: {e}", cert.display())))?;
    if blocks.is_empty() || blocks.iter().any(|b| b.tag() != "CERTIFICATE") {
        return Err(tls_error(format!("{}: expected one or more PEM CERTIFICATE blocks", cert.display())));
    }
    let keys = pem::parse_many(key_pem.as_str()).map_err(|e| tls_error(format!("{}: {e}", key.display())))?;
    let is_key = |tag: &str| matches!(tag, "PRIVATE KEY" | "EC PRIVATE KEY" | "RSA PRIVATE KEY");
    if keys.len() != 1 || !is_key(keys[0].tag()) {
        return Err(tls_error(format!("{}: expected exactly one PEM private key", key.display())));
    }
    Ok(TlsMaterial { cert_pem, key_pem, ca_pem: None, names: Vec::new() })
}

impl TlsMaterial {
    fn write(self, cert: &Path, key: &Path) -> Result<TlsFiles, ServerError> {
        for dir in [cert.parent(), key.parent()].into_iter().flatten() {
            if !dir.as_os_str().is_empty() {
                crate::create_private_dir(dir)?;
            }
        }
        write_new(key, self.key_pem.as_bytes(), 0o600)?;
        write_new(cert, self.cert_pem.as_bytes(), 0o644)?;
        let ca = match &self.ca_pem {
            Some(ca_pem) => {
                let path = cert.with_file_name(CA_CERT_FILE);
                write_new(&path, ca_pem.as_bytes(), 0o644)?;
                Some(path)
            }
            None => None,
        };
        Ok(TlsFiles { cert: cert.to_owned(), key: key.to_owned(), ca, names: self.names })
    }
}

fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), ServerError> {
    crate::write_new_file(path, contents, mode).map_err(|source| ServerError::DataDir { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use wormbox_model::{ManualClock, Timestamp};

    use super::*;
    use crate::config::TlsConfig;

    fn config(dir: &Path) -> WormboxdConfig {
        let mut config = WormboxdConfig::default();
        config.listen.addr = "127.0.0.1:0".parse().unwrap();
        config.metrics.listen = "127.0.0.1:0".parse().unwrap();
        config.storage.data_dir = dir.join("data");
        config.storage.write_buffer_mib = 4;
        config.storage.block_cache_mib = 8;
        config.tls = Some(TlsConfig { cert: dir.join("tls/cert.pem"), key: dir.join("tls/key.pem") });
        config
    }

    fn clock() -> Arc<dyn Clock> {
        Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)))
    }

    #[test]
    fn the_certificate_names_what_was_given_the_listen_address_and_loopback_once_each() {
        let mut config = WormboxdConfig::default();
        config.listen.addr = "10.0.0.5:7878".parse().unwrap();
        let names = tls_names(&config, &["archive.example.org".into(), " ".into(), "LOCALHOST".into()]);
        assert_eq!(names, ["archive.example.org", "LOCALHOST", "10.0.0.5", "127.0.0.1", "::1"]);
        config.listen.addr = "0.0.0.0:7878".parse().unwrap();
        assert!(!tls_names(&config, &[]).contains(&"0.0.0.0".to_owned()));
    }

    #[test]
    fn a_sites_own_pem_files_are_checked_before_use() {
        let dir = tempfile::tempdir().unwrap();
        let generated = generate_tls(&["site.example".into()], Timestamp(1_795_737_600_000_000)).unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, &generated.cert_pem).unwrap();
        std::fs::write(&key, generated.key_pem.as_bytes()).unwrap();
        let imported = import_tls(&cert, &key).unwrap();
        assert_eq!(imported.cert_pem, generated.cert_pem);
        assert!(imported.ca_pem.is_none());

        let refused = |cert: &Path, key: &Path| match import_tls(cert, key) {
            Err(e) => format!("{e:?}"),
            Ok(_) => panic!("accepted"),
        };
        // A key where the certificate goes, two keys, garbage, nothing at all.
        assert!(refused(&key, &key).contains("CERTIFICATE"));
        let two = dir.path().join("two.pem");
        std::fs::write(&two, format!("{}{}", generated.key_pem.as_str(), generated.key_pem.as_str())).unwrap();
        assert!(refused(&cert, &two).contains("exactly one"));
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n").unwrap();
        refused(&garbage, &key);
        assert!(refused(&dir.path().join("absent.pem"), &key).contains("absent.pem"));
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'A'; (1 << 20) + 1]).unwrap();
        assert!(refused(&big, &key).contains("not a PEM file"));
    }

    #[tokio::test]
    async fn init_refuses_existing_tls_files_and_names_without_a_tls_section_creating_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        std::fs::create_dir_all(dir.path().join("tls")).unwrap();
        std::fs::write(dir.path().join("tls/key.pem"), "site key").unwrap();
        let err = init(&config, clock(), &InitOptions::default()).await.unwrap_err();
        assert!(matches!(err, ServerError::AlreadyInitialised { .. }), "{err}");
        assert!(!config.storage.data_dir.exists(), "nothing was created");

        let mut plain = config.clone();
        plain.tls = None;
        let options = InitOptions { tls_names: vec!["x.example".into()], tls_import: None };
        let err = init(&plain, clock(), &options).await.unwrap_err();
        assert!(err.to_string().contains("tls"), "{err}");
        assert!(!config.storage.data_dir.exists(), "nothing was created");

        // Without TLS, init still makes the archive, its keys and admin.
        let done = init(&plain, clock(), &InitOptions::default()).await.unwrap();
        assert!(done.tls.is_none() && is_initialised(&plain.storage.data_dir));
    }

    #[tokio::test]
    async fn a_tls_appliance_started_before_init_creates_nothing_and_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let err = crate::start(&config, clock()).await.unwrap_err();
        assert!(format!("{err:?}").contains("run `wormboxd init` first"), "{err:?}");
        assert!(!config.storage.data_dir.exists());

        // After init it serves; a server key others may read is refused.
        init(&config, clock(), &InitOptions::default()).await.unwrap();
        let server = crate::start(&config, clock()).await.unwrap();
        server.stop().await.unwrap();
        let key = dir.path().join("tls/key.pem");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = crate::start(&config, clock()).await.unwrap_err();
        assert!(format!("{err:?}").contains("readable by others"), "{err:?}");
    }
}
