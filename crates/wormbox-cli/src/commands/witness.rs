//! `wormbox witness init` and `wormbox witness serve`: a minimal witness
//! (C2SP tlog-witness) a site runs on another machine, so that a ledger
//! rewritten on the appliance, even re-signed with its own key, is refused
//! by a party the appliance's administrators do not control.
//!
//! Invariant: the witness's secret key is written once, mode 0600, and
//! never printed; only its verifier key (name and public key) is.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use data_encoding::BASE64;
use serde_json::json;
use wormbox_witness::{Witness, WitnessSigner};

use crate::commands::checkpoint::read_public_key;
use crate::output::print;

/// The prefix of a witness secret key file (as Go's `sumdb/note` names
/// secret keys): `PRIVATE+KEY+<name>+<key id>+<base64(0x04 || seed)>`.
const SECRET_PREFIX: &str = "PRIVATE+KEY+";

#[derive(Debug, Subcommand)]
pub(crate) enum WitnessCommand {
    /// Create a witness key (mode 0600) and print its verifier key, the
    /// line an appliance's `[[witness]] key` takes.
    Init(InitArgs),
    /// Serve add-checkpoint (C2SP tlog-witness) over HTTP for the appliances
    /// whose public keys are given, recording each one's last cosigned
    /// checkpoint in the state file; runs until interrupted.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The witness's name (a schema-less URL by convention, e.g.
    /// `witness.example.org/w1`).
    #[arg(long)]
    name: String,
    /// Where to write the secret key; refused if it exists.
    #[arg(long)]
    key_file: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The secret key `wormbox witness init` wrote.
    #[arg(long)]
    key_file: PathBuf,
    /// An appliance's public key file (hex, `wormbox admin pubkey --out`),
    /// obtained from it directly; repeat for each appliance witnessed.
    #[arg(long = "log-key", required = true)]
    log_keys: Vec<PathBuf>,
    /// The state file: per appliance, the last checkpoint cosigned.
    #[arg(long)]
    state: PathBuf,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:7380")]
    listen: std::net::SocketAddr,
}

pub(crate) async fn run(command: WitnessCommand, json_mode: bool) -> anyhow::Result<()> {
    match command {
        WitnessCommand::Init(args) => init(&args, json_mode),
        WitnessCommand::Serve(args) => serve(&args).await,
    }
}

fn init(args: &InitArgs, json_mode: bool) -> anyhow::Result<()> {
    let seed = WitnessSigner::generate_seed().map_err(anyhow::Error::msg)?;
    let signer = WitnessSigner::from_seed(&args.name, &seed).map_err(anyhow::Error::msg)?;
    let key = signer.key();
    let secret = secret_text(&signer, &seed);
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&args.key_file).with_context(
            || format!("creating `{}` (an existing key is never overwritten)", args.key_file.display()),
        )?;
    file.write_all(secret.as_bytes()).and_then(|()| file.sync_all())?;
    let vkey = key.vkey();
    let text = format!(
        "witness key written to {} (keep it secret)\nverifier key, for the appliance's [[witness]] key:\n{vkey}",
        args.key_file.display()
    );
    print(json_mode, json!({"name": key.name, "verifier_key": vkey}), text);
    Ok(())
}

/// The secret key file's text.
fn secret_text(signer: &WitnessSigner, seed: &[u8; 32]) -> String {
    let key = signer.key();
    let typed = BASE64.encode(&[&[0x04u8][..], &seed[..]].concat());
    format!("{SECRET_PREFIX}{}+{}+{typed}\n", key.name, hex::encode(key.key_id()))
}

/// Reads a secret key file `init` wrote.
fn read_secret(path: &Path) -> anyhow::Result<WitnessSigner> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).with_context(|| format!("reading `{}`", path.display()))?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!("`{}` is readable by group or others (mode {:o}); it must be 0600", path.display(), mode & 0o777);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading `{}`", path.display()))?;
    let malformed = || anyhow::anyhow!("`{}` is not a witness key `wormbox witness init` wrote", path.display());
    let rest = text.trim().strip_prefix(SECRET_PREFIX).ok_or_else(malformed)?;
    // The name holds no `+`; the base64 seed may.
    let mut parts = rest.splitn(3, '+');
    let (Some(name), Some(id), Some(seed)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed());
    };
    let seed = BASE64.decode(seed.as_bytes()).map_err(|_| malformed())?;
    let Some((&0x04, seed)) = seed.split_first() else { return Err(malformed()) };
    let signer = WitnessSigner::from_seed(name, seed).map_err(|_| malformed())?;
    if hex::encode(signer.key().key_id()) != id {
        return Err(malformed());
    }
    Ok(signer)
}

async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let signer = read_secret(&args.key_file)?;
    let logs = args.log_keys.iter().map(|path| read_public_key(path)).collect::<anyhow::Result<Vec<_>>>()?;
    let clock: Arc<dyn wormbox_model::Clock> = Arc::new(wormbox_model::SystemClock);
    let witness = Witness::open(signer, &logs, &args.state, clock)?;
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let vkey = witness.signer().key().vkey();
    // Printed once listening, for the operator (and a test) to read, in
    // one write: nothing is written to stdout after it.
    let mut banner = format!("witness {vkey} listening on http://{}\n", listener.local_addr()?);
    for log in &logs {
        banner.push_str(&format!("  witnessing {}\n", wormbox_store::note::origin(log)));
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(banner.as_bytes()).and_then(|()| stdout.flush())?;
    drop(stdout);
    let interrupted = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    wormbox_witness::server::serve(listener, Arc::new(witness), interrupted).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn every_secret_key_file_reads_back_as_the_same_key_and_loose_modes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        for n in 0u8..=255 {
            let signer = WitnessSigner::from_seed("witness.example/w1", &[n; 32]).unwrap();
            std::fs::write(&path, secret_text(&signer, &[n; 32])).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            assert_eq!(read_secret(&path).unwrap().key(), signer.key(), "seed {n}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(read_secret(&path).unwrap_err().to_string().contains("0600"));
    }
}
