//! Seeds at rest: AES-256-GCM under a master key file only the service user
//! can read.
//!
//! Invariant: a seed is stored only sealed, bound to its device serial (the
//! serial is the AEAD's associated data, so a sealed seed moved to another
//! device record fails to open). The master key file is created once with
//! mode 0600 and never rewritten; a file readable by group or others is
//! refused.
//!
//! Other secrets the appliance must be able to use itself (a replica's S3
//! credential; S3 secrets of principals next) are sealed under the same key
//! with `seal_secret`, bound to what they are for: their associated data
//! starts with another prefix than a seed's, so neither opens as the other.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use wormbox_token::Seed;
use zeroize::Zeroizing;

use crate::MfaError;

const KEY_LEN: usize = 32;
const AAD_PREFIX: &[u8] = b"wormbox-mfa-seed-v1\0";
const SECRET_AAD_PREFIX: &[u8] = b"wormbox-secret-v1\0";

/// The key that seals every seed.
pub struct MasterKey {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Opens the key file at `path`, creating it (0600, fresh random bytes,
    /// synced) when it does not exist. Returns the key and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(MasterKey, bool), MfaError> {
        let io_err = |what: &str, err: std::io::Error| MfaError::KeyFile(format!("{what} {}: {err}", path.display()));
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(mut file) => {
                let rng = SystemRandom::new();
                let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
                rng.fill(bytes.as_mut()).map_err(|_| MfaError::KeyFile("no system randomness".into()))?;
                file.write_all(bytes.as_ref()).map_err(|e| io_err("writing", e))?;
                file.sync_all().map_err(|e| io_err("syncing", e))?;
                if let Some(dir) = path.parent() {
                    fs::File::open(dir)
                        .and_then(|d| d.sync_all())
                        .map_err(|e| io_err("syncing the directory of", e))?;
                }
                Ok((MasterKey::from_bytes(bytes.as_ref())?, true))
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                let mut file = fs::File::open(path).map_err(|e| io_err("opening", e))?;
                let mode = file.metadata().map_err(|e| io_err("inspecting", e))?.permissions().mode();
                if mode & 0o077 != 0 {
                    return Err(MfaError::KeyFile(format!(
                        "{} is readable by group or others (mode {:o}); it must be 0600",
                        path.display(),
                        mode & 0o777
                    )));
                }
                let mut bytes = Zeroizing::new(Vec::with_capacity(KEY_LEN + 1));
                Read::by_ref(&mut file)
                    .take(KEY_LEN as u64 + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| io_err("reading", e))?;
                if bytes.len() != KEY_LEN {
                    return Err(MfaError::KeyFile(format!("{} is not a {KEY_LEN}-byte key", path.display())));
                }
                Ok((MasterKey::from_bytes(&bytes)?, false))
            }
            Err(err) => Err(io_err("creating", err)),
        }
    }

    /// A key from raw bytes (tests and restore).
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, MfaError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| MfaError::KeyFile("bad key length".into()))?;
        Ok(MasterKey { key: LessSafeKey::new(unbound), rng: SystemRandom::new() })
    }

    /// Seals `seed` for device `serial`: nonce || ciphertext || tag.
    pub fn seal(&self, serial: &str, seed: &Seed) -> Result<Vec<u8>, MfaError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| MfaError::KeyFile("no system randomness".into()))?;
        let mut buf = seed.expose().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad(serial)), &mut buf)
            .map_err(|_| MfaError::Sealing)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Opens a sealed seed of device `serial`.
    pub fn open(&self, serial: &str, sealed: &[u8]) -> Result<Seed, MfaError> {
        let plain = self.open_with(aad(serial), sealed)?;
        Seed::new(plain.to_vec()).map_err(|_| MfaError::Sealing)
    }

    /// Seals `secret` for `purpose` (say `replica:dr`): nonce || ciphertext || tag.
    pub fn seal_secret(&self, purpose: &str, secret: &[u8]) -> Result<Vec<u8>, MfaError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| MfaError::KeyFile("no system randomness".into()))?;
        let mut buf = secret.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(secret_aad(purpose)), &mut buf)
            .map_err(|_| MfaError::Sealing)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Opens what `seal_secret` sealed for `purpose`.
    pub fn open_secret(&self, purpose: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, MfaError> {
        self.open_with(secret_aad(purpose), sealed)
    }

    fn open_with(&self, aad: Vec<u8>, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, MfaError> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(MfaError::Sealing);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| MfaError::Sealing)?;
        let mut buf = Zeroizing::new(body.to_vec());
        let len = self.key.open_in_place(nonce, Aad::from(aad), &mut buf).map_err(|_| MfaError::Sealing)?.len();
        buf.truncate(len);
        Ok(buf)
    }
}

fn secret_aad(purpose: &str) -> Vec<u8> {
    let mut aad = SECRET_AAD_PREFIX.to_vec();
    aad.extend_from_slice(purpose.as_bytes());
    aad
}

fn aad(serial: &str) -> Vec<u8> {
    let mut aad = AAD_PREFIX.to_vec();
    aad.extend_from_slice(serial.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_once_with_mode_0600_and_seeds_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mfa-master.key");
        let (key, created) = MasterKey::load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let seed = Seed::new(b"12345678901234567890".to_vec()).unwrap();
        let sealed = key.seal("GAHT12345678", &seed).unwrap();
        assert!(!sealed.windows(8).any(|w| w == b"12345678"), "sealed bytes must not contain the seed");
        let (again, created) = MasterKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(again.open("GAHT12345678", &sealed).unwrap(), seed);
        // Bound to the serial, and tamper-evident.
        assert!(again.open("GAHT87654321", &sealed).is_err());
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert!(again.open("GAHT12345678", &tampered).is_err());
        assert!(again.open("GAHT12345678", &sealed[..10]).is_err());
        // Another key cannot open it.
        let other = MasterKey::from_bytes(&[9; 32]).unwrap();
        assert!(other.open("GAHT12345678", &sealed).is_err());
    }

    /// A secret is bound to its purpose, and neither a seed nor a secret
    /// opens as the other, even under the same label.
    #[test]
    fn secrets_are_bound_to_their_purpose_and_never_open_as_seeds() {
        let key = MasterKey::from_bytes(&[7; 32]).unwrap();
        let secret = b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let sealed = key.seal_secret("replica:dr", secret).unwrap();
        assert!(!sealed.windows(8).any(|w| w == &secret[..8]), "sealed bytes must not contain the secret");
        assert_eq!(key.open_secret("replica:dr", &sealed).unwrap().as_slice(), secret);
        assert!(key.open_secret("replica:other", &sealed).is_err(), "bound to its purpose");
        assert!(key.open("replica:dr", &sealed).is_err(), "a secret is not a seed");
        let seed = key.seal("replica:dr", &Seed::new(secret.to_vec()).unwrap()).unwrap();
        assert!(key.open_secret("replica:dr", &seed).is_err(), "a seed is not a secret");
        assert!(MasterKey::from_bytes(&[8; 32]).unwrap().open_secret("replica:dr", &sealed).is_err());
    }

    #[test]
    fn a_loose_or_damaged_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        MasterKey::load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(MasterKey::load_or_create(&path).unwrap_err().to_string().contains("0600"));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, b"short").unwrap();
        assert!(MasterKey::load_or_create(&path).unwrap_err().to_string().contains("32-byte"));
    }
}
