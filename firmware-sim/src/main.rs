//! `tokensim`: a simulated Gemalto-style TOTP token on a pseudo-terminal.
//!
//! It prints the terminal's path (and links it where `--link` says), then
//! answers the line protocol until killed or until `--fault unplug-after:N`
//! hangs up. The seed never leaves except through `--export-pskc`, encrypted.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use wormbox_token::pskc::{self, PskcKey};
use wormbox_token::{Algorithm, OtpParams, Seed};
use wormbox_tokensim::{Fault, Pty, Token, TokenConfig, WallClock};
use zeroize::Zeroizing;

#[derive(Debug, Parser)]
#[command(name = "tokensim", version, about = "A simulated TOTP display token on a pseudo-terminal")]
struct Args {
    /// Serial number the token reports.
    #[arg(long, default_value = "GAHT00000001")]
    serial: String,
    /// Seed in base32.
    #[arg(long, group = "seed", env = "TOKENSIM_SEED_BASE32", hide_env_values = true)]
    seed_base32: Option<String>,
    /// Seed in hex.
    #[arg(long, group = "seed", env = "TOKENSIM_SEED_HEX", hide_env_values = true)]
    seed_hex: Option<String>,
    /// Seed from a PSKC file (its first key, or the one with --serial).
    #[arg(long, group = "seed")]
    pskc: Option<PathBuf>,
    /// Pre-shared AES-128 key of the PSKC file, in hex.
    #[arg(long, env = "TOKENSIM_PSKC_KEY", hide_env_values = true)]
    pskc_key_hex: Option<String>,
    /// Passphrase of the PSKC file.
    #[arg(long, env = "TOKENSIM_PSKC_PASSPHRASE", hide_env_values = true)]
    pskc_passphrase: Option<String>,
    /// HMAC algorithm: SHA1, SHA256, SHA512.
    #[arg(long, default_value = "SHA1")]
    alg: Algorithm,
    /// Code length, 6 to 8.
    #[arg(long, default_value_t = 6)]
    digits: u8,
    /// Time step in seconds.
    #[arg(long, default_value_t = 30)]
    step: u64,
    /// T0, unix seconds.
    #[arg(long, default_value_t = 0)]
    t0: u64,
    /// How far the token's clock is off (seconds; negative is behind).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    clock_offset_secs: i64,
    /// How fast the token's clock drifts, in parts per million.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    drift_ppm: i64,
    /// Misbehave: silent, garbage, slow:MS, battery, unplug-after:N.
    #[arg(long, default_value = "none")]
    fault: Fault,
    /// Also make this path a symlink to the terminal.
    #[arg(long)]
    link: Option<PathBuf>,
    /// Write the seed as a PSKC file encrypted under --export-key-hex, then exit.
    #[arg(long, requires = "export_key_hex")]
    export_pskc: Option<PathBuf>,
    /// Pre-shared AES-128 key (32 hex digits) for --export-pskc.
    #[arg(long, env = "TOKENSIM_EXPORT_KEY", hide_env_values = true)]
    export_key_hex: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut params = OtpParams { algorithm: args.alg, digits: args.digits, step_secs: args.step, t0: args.t0 };
    let seed = if let Some(text) = &args.seed_base32 {
        Seed::from_base32(text)?
    } else if let Some(text) = &args.seed_hex {
        Seed::from_hex(text)?
    } else if let Some(file) = &args.pskc {
        let xml = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let key = match (&args.pskc_key_hex, &args.pskc_passphrase) {
            (Some(hex), _) => Some(PskcKey::PreShared(Zeroizing::new(
                data_encoding::HEXLOWER_PERMISSIVE.decode(hex.as_bytes()).context("--pskc-key-hex is not hex")?,
            ))),
            (None, Some(pass)) => Some(PskcKey::Passphrase(Zeroizing::new(pass.clone()))),
            (None, None) => None,
        };
        let entries = pskc::parse(&xml, key.as_ref())?;
        let entry = entries
            .iter()
            .find(|e| e.serial.as_deref() == Some(args.serial.as_str()))
            .or(entries.first())
            .context("the PSKC file holds no key")?;
        params = entry.otp_params();
        Seed::new(entry.secret.to_vec())?
    } else {
        bail!("give the seed with --seed-base32, --seed-hex or --pskc");
    };

    if let Some(out) = &args.export_pskc {
        let hex = args.export_key_hex.as_deref().unwrap_or_default();
        let key: [u8; 16] = data_encoding::HEXLOWER_PERMISSIVE
            .decode(hex.as_bytes())
            .ok()
            .and_then(|k| k.try_into().ok())
            .context("--export-key-hex must be 32 hex digits (AES-128)")?;
        let xml = pskc::write_encrypted(&args.serial, "Wormbox", &seed, params, &key, &ring::rand::SystemRandom::new())
            .map_err(|_| anyhow::anyhow!("no randomness for the PSKC IVs"))?;
        std::fs::write(out, xml).with_context(|| format!("writing {}", out.display()))?;
        println!("tokensim: wrote {} for serial {}", out.display(), args.serial);
        return Ok(());
    }

    let config = TokenConfig {
        serial: args.serial.clone(),
        seed,
        params,
        clock_offset_secs: args.clock_offset_secs,
        drift_ppm: args.drift_ppm,
        fault: args.fault,
    };
    let mut token = Token::new(config, Box::new(WallClock))?;
    let pty = Pty::open()?;
    if let Some(link) = &args.link {
        let _ = std::fs::remove_file(link);
        std::os::unix::fs::symlink(pty.path(), link).with_context(|| format!("linking {}", link.display()))?;
    }
    println!("tokensim: serial {} on {}", args.serial, pty.path());
    std::io::stdout().flush()?;
    pty.serve(&mut token)?;
    println!("tokensim: unplugged");
    Ok(())
}
