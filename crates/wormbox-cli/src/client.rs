//! The CLI's side of a connection: the gRPC clients over one channel with the
//! operator's bearer credential, and the `--mfa` source codes are read from.
//!
//! Invariant: a code is read from `--mfa` only by the command about to spend
//! it, right before its request, and only ever travels in that request; the
//! credential is read once, here, and never printed.

use std::path::Path;

use anyhow::{Context as _, bail};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use wormbox_proto::{AdminClient, ArchiveClient, BearerAuth, ComplianceClient, MfaClient, v1};

/// One channel to the appliance; each command takes the service clients it needs.
pub(crate) struct Clients {
    channel: tonic::transport::Channel,
    auth: BearerAuth,
}

impl Clients {
    pub(crate) fn archive(&self) -> ArchiveClient {
        v1::archive_client::ArchiveClient::with_interceptor(self.channel.clone(), self.auth.clone())
            .max_decoding_message_size(64 << 20)
    }
    pub(crate) fn admin(&self) -> AdminClient {
        v1::admin_client::AdminClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }
    pub(crate) fn compliance(&self) -> ComplianceClient {
        // An entry bundle of 256 large entries is over tonic's 4 MiB default.
        v1::compliance_client::ComplianceClient::with_interceptor(self.channel.clone(), self.auth.clone())
            .max_decoding_message_size(64 << 20)
    }
    pub(crate) fn mfa(&self) -> MfaClient {
        v1::mfa_client::MfaClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }
}

/// Where the appliance is and who is calling: the global flags `connect` reads.
pub(crate) struct Target<'a> {
    pub(crate) endpoint: &'a str,
    pub(crate) credential: Option<&'a str>,
    pub(crate) credential_file: Option<&'a Path>,
    pub(crate) ca_cert: Option<&'a Path>,
}

/// Reads the credential (the flag, else its file) and connects.
pub(crate) async fn connect(target: Target<'_>) -> anyhow::Result<Clients> {
    let credential = match (target.credential, target.credential_file) {
        (Some(credential), _) => credential.to_owned(),
        (None, Some(path)) => {
            std::fs::read_to_string(path).with_context(|| format!("reading credential file `{}`", path.display()))?
        }
        (None, None) => bail!("no credential: pass --credential, --credential-file or set WORMBOX_CREDENTIAL"),
    };
    let auth = BearerAuth::new(&credential).context("the credential must look like AKID:SECRET")?;
    let mut endpoint = Endpoint::from_shared(target.endpoint.to_owned()).context("parsing --endpoint")?;
    if let Some(ca) = target.ca_cert {
        let pem = std::fs::read(ca).with_context(|| format!("reading `{}`", ca.display()))?;
        endpoint = endpoint.tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))?;
    }
    let channel = endpoint.connect().await.with_context(|| format!("connecting to {}", target.endpoint))?;
    Ok(Clients { channel, auth })
}

/// The `--mfa` source, when one was given.
pub(crate) struct Mfa(pub(crate) Option<String>);

impl Mfa {
    /// Reads one code, right before the request that spends it.
    pub(crate) fn code(&self) -> anyhow::Result<String> {
        let spec = self.0.as_deref().context("this operation needs an MFA code: pass --mfa SOURCE")?;
        let code = wormbox_token::source::open(spec)?.read_code()?;
        Ok(code.to_header().to_string())
    }

    /// Reads one code when `--mfa` is given (empty otherwise): for the
    /// requests that need a code only on a guarded appliance or for some changes.
    pub(crate) fn optional_code(&self) -> anyhow::Result<String> {
        match self.0 {
            Some(_) => self.code(),
            None => Ok(String::new()),
        }
    }

    /// Reads two consecutive codes (waiting for the display to change) and the
    /// serial they belong to: the one named, or the token's own.
    pub(crate) fn pair(&self, serial: Option<String>) -> anyhow::Result<(String, String, String)> {
        let spec = self.0.as_deref().context("activation and resync read two consecutive codes: pass --mfa SOURCE")?;
        let (first, second) = wormbox_token::source::open(spec)?.read_pair()?;
        Ok((serial.unwrap_or(first.serial), first.code.expose().to_owned(), second.expose().to_owned()))
    }
}
