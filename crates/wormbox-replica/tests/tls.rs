//! The S3 client over TLS: it trusts exactly the CA file it is given. A
//! local TLS listener with a certificate made here answers a canned
//! GetBucketVersioning (this tests the transport, not S3; the S3 semantics
//! are proven against real engines in `s3_targets.rs`).
//!
//! Invariant: an `https` endpoint is reached only through a certificate that
//! chains to the configured CA file; no CA file, an empty one or another CA
//! means no request is sent.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wormbox_model::SystemClock;
use wormbox_replica::{Credentials, S3Client, S3Config, S3Error, VersioningStatus};

const ANSWER: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>Enabled</Status></VersioningConfiguration>";

/// Serves TLS on a loopback port; returns the port and the request heads it saw.
async fn serve(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                log.lock().unwrap().push(String::from_utf8_lossy(&head).into_owned());
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{ANSWER}",
                    ANSWER.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, seen)
}

fn certificate() -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    (made.cert.pem(), made.cert.der().clone(), key)
}

fn client(endpoint: String, ca: Option<&Path>) -> Result<S3Client, S3Error> {
    let config = S3Config {
        endpoint,
        region: "us-east-1".to_owned(),
        bucket: "records".to_owned(),
        credentials: Credentials::new("AKIDTLS", "tls-secret-never-shown"),
        ca_pem: ca.map(Path::to_path_buf),
        timeout: Duration::from_secs(10),
    };
    S3Client::new(config, Arc::new(SystemClock))
}

#[tokio::test]
async fn https_reaches_a_server_whose_certificate_chains_to_the_ca_file_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, der, key) = certificate();
    let (port, seen) = serve(der, key).await;
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pem).unwrap();

    for host in ["localhost", "127.0.0.1"] {
        let good = client(format!("https://{host}:{port}"), Some(&ca)).unwrap();
        let versioning = good.bucket_versioning().await.unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(versioning.status, VersioningStatus::Enabled);
    }
    let heads = seen.lock().unwrap().clone();
    assert_eq!(heads.len(), 2);
    assert!(heads[0].starts_with("GET /records?versioning= HTTP/1.1\r\n"), "{}", heads[0]);
    assert!(heads[0].contains(&format!("host: localhost:{port}\r\n")), "{}", heads[0]);
    assert!(heads[0].contains("authorization: AWS4-HMAC-SHA256 Credential=AKIDTLS/"), "{}", heads[0]);
    assert!(!heads.concat().contains("tls-secret-never-shown"));

    // Another CA: the handshake fails, nothing is asked.
    let (other_pem, _, _) = certificate();
    let other = dir.path().join("other.pem");
    std::fs::write(&other, other_pem).unwrap();
    let error =
        client(format!("https://localhost:{port}"), Some(&other)).unwrap().bucket_versioning().await.unwrap_err();
    assert!(matches!(&error, S3Error::Transport(text) if text.contains("certificate")), "{error}");
    assert_eq!(seen.lock().unwrap().len(), 2, "no request went out");

    // No CA file, an empty one, a missing one: refused at construction.
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    for ca in [None, Some(empty.as_path()), Some(dir.path().join("absent.pem").as_path())] {
        let error = client(format!("https://localhost:{port}"), ca).unwrap_err();
        assert!(matches!(error, S3Error::Config(_)), "{ca:?}: {error}");
    }
    let debug = format!("{:?}", client(format!("https://localhost:{port}"), Some(&ca)).unwrap());
    assert!(!debug.contains("tls-secret-never-shown"), "{debug}");
}

#[test]
fn endpoints_other_than_scheme_host_and_port_are_refused() {
    for endpoint in ["ftp://host", "host:9000", "http://host:9000/prefix", "http://user:pw@host", "http://host/?x=1"] {
        let error = client(endpoint.to_owned(), None).unwrap_err();
        assert!(matches!(error, S3Error::Config(_)), "{endpoint}: {error}");
    }
}
