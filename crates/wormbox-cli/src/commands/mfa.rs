//! `wormbox mfa enroll|activate|resync|list|deactivate`: MFA devices, and
//! their text and JSON shapes.
//!
//! Invariant: a seed goes only into the enrol request; what is printed about a
//! device never includes it (the appliance never sends one back).

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use wormbox_proto::v1;

use crate::commands::Context;

#[derive(Debug, Subcommand)]
pub(crate) enum MfaCommand {
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

pub(crate) async fn run(cx: &Context, command: MfaCommand) -> anyhow::Result<()> {
    let mut mfa = cx.clients.mfa();
    let show = |devices: &[v1::MfaDevice], verb: &str| {
        let text = devices.iter().map(|d| format!("{verb}{}", device_line(d))).collect::<Vec<_>>().join("\n");
        cx.print(Value::Array(devices.iter().map(device_json).collect()), text);
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
            let guard = cx.mfa.optional_code()?;
            let request = v1::EnrollDeviceRequest { owner, source: Some(source), mfa: guard };
            let reply = mfa.enroll_device(request).await?.into_inner();
            show(&reply.devices, "enrolled (pending activation): ");
        }
        MfaCommand::Activate { serial } => {
            let (serial, first_code, second_code) = cx.mfa.pair(serial)?;
            let request = v1::ActivateDeviceRequest { serial, first_code, second_code };
            show(&[mfa.activate_device(request).await?.into_inner().device.unwrap_or_default()], "activated: ");
        }
        MfaCommand::Resync { serial } => {
            let (serial, first_code, second_code) = cx.mfa.pair(serial)?;
            let request = v1::ResyncDeviceRequest { serial, first_code, second_code };
            show(&[mfa.resync_device(request).await?.into_inner().device.unwrap_or_default()], "resynchronised: ");
        }
        MfaCommand::List { owner } => {
            let reply = mfa.list_devices(v1::ListDevicesRequest { owner }).await?.into_inner();
            show(&reply.devices, "");
        }
        MfaCommand::Deactivate { serial } => {
            let request = v1::DeactivateDeviceRequest { serial, mfa: cx.mfa.code()? };
            let device = mfa.deactivate_device(request).await?.into_inner().device.unwrap_or_default();
            show(&[device], "deactivated: ");
        }
    }
    Ok(())
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
