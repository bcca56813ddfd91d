//! Ed25519 cosignatures (C2SP `tlog-cosignature`, `cosignature/v1`): a note
//! signature line `— <name> base64(key id || timestamp || signature)` over
//! `cosignature/v1\ntime <timestamp>\n` and the checkpoint's body; the key
//! id is `SHA-256(name || "\n" || 0x04 || public key)[:4]`, and a cosigner
//! is named by its verifier key `<name>+<key id, hex>+base64(0x04 || key)`.
//!
//! Invariant: a cosignature is accepted only under the name and key the
//! caller configured, over the exact body it names; a line of any other key
//! is ignored, never trusted.

use data_encoding::BASE64 as STANDARD;

/// The signature type byte of Ed25519 cosignatures.
const COSIGNATURE_V1: u8 = 0x04;

/// A cosigner as the appliance and verifiers configure it: its name and
/// its Ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignerKey {
    /// The key name (a schema-less URL, by convention).
    pub name: String,
    /// The raw 32-byte Ed25519 public key.
    pub public_key: [u8; 32],
}

/// A cosignature read back and verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosignature {
    /// The cosigner's name.
    pub name: String,
    /// When it cosigned (POSIX seconds, its own clock).
    pub timestamp: u64,
    /// The whole signature line, with its newline, as it goes under a note.
    pub line: String,
}

impl CosignerKey {
    /// Reads a verifier key `<name>+<key id>+<base64(0x04 || key)>`.
    pub fn parse(vkey: &str) -> Result<CosignerKey, String> {
        let vkey = vkey.trim();
        // The name holds no `+`; the base64 key may.
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("a witness key is `<name>+<key id>+<base64 key>`".to_owned());
        };
        check_name(name)?;
        let raw = STANDARD.decode(key.as_bytes()).map_err(|_| "the witness key is not base64".to_owned())?;
        let public_key: [u8; 32] = match raw.split_first() {
            Some((&COSIGNATURE_V1, rest)) => rest.try_into().map_err(|_| "the witness key is not 32 bytes")?,
            _ => return Err("the witness key is not an Ed25519 cosignature/v1 key (type 0x04)".to_owned()),
        };
        let parsed = CosignerKey { name: name.to_owned(), public_key };
        if !hex::encode(parsed.key_id()).eq_ignore_ascii_case(id) {
            return Err(format!("the witness key's id `{id}` is not the one its name and key make"));
        }
        Ok(parsed)
    }

    /// The key id: `SHA-256(name || "\n" || 0x04 || key)[:4]`.
    pub fn key_id(&self) -> [u8; 4] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(self.name.as_bytes());
        ctx.update(b"\n");
        ctx.update(&[COSIGNATURE_V1]);
        ctx.update(&self.public_key);
        ctx.finish().as_ref()[..4].try_into().expect("4 bytes")
    }

    /// The verifier key, as `parse` reads it.
    pub fn vkey(&self) -> String {
        let typed = [&[COSIGNATURE_V1][..], &self.public_key].concat();
        format!("{}+{}+{}", self.name, hex::encode(self.key_id()), STANDARD.encode(&typed))
    }

    /// The cosignature of this key among a note's signature `lines` over
    /// `body` (the note's text, ending in a newline), if one verifies.
    pub fn find(&self, body: &str, lines: &str) -> Option<Cosignature> {
        let prefix = format!("\u{2014} {} ", self.name);
        lines.lines().find_map(|line| {
            let blob = STANDARD.decode(line.strip_prefix(&prefix)?.as_bytes()).ok()?;
            if blob.len() != 4 + 8 + 64 || blob[..4] != self.key_id() {
                return None;
            }
            let timestamp = u64::from_be_bytes(blob[4..12].try_into().expect("8 bytes"));
            // tlog-cosignature: a timestamp never exceeds 2^63 - 1.
            if timestamp > i64::MAX as u64 {
                return None;
            }
            let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &self.public_key);
            key.verify(signed_message(timestamp, body).as_bytes(), &blob[12..]).ok()?;
            Some(Cosignature { name: self.name.clone(), timestamp, line: format!("{line}\n") })
        })
    }
}

/// The timestamp a cosignature line carries (unverified: for display of a
/// line verified before).
pub fn timestamp_of(line: &str) -> Option<u64> {
    let blob = STANDARD.decode(line.trim_end().rsplit(' ').next()?.as_bytes()).ok()?;
    Some(u64::from_be_bytes(blob.get(4..12)?.try_into().ok()?))
}

/// A witness's key name, by the rule the appliance stores names by
/// (`wormbox_store::check_witness_name`).
fn check_name(name: &str) -> Result<(), String> {
    wormbox_store::check_witness_name(name).map_err(|e| e.to_string())
}

/// The message a cosignature signs.
fn signed_message(timestamp: u64, body: &str) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{body}")
}

/// A witness's own key: it cosigns.
pub struct WitnessSigner {
    name: String,
    pair: ring::signature::Ed25519KeyPair,
}

impl std::fmt::Debug for WitnessSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WitnessSigner({})", self.name)
    }
}

impl WitnessSigner {
    /// The signer named `name` with the Ed25519 key of `seed` (32 bytes).
    pub fn from_seed(name: &str, seed: &[u8]) -> Result<WitnessSigner, String> {
        check_name(name)?;
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| "a witness key is a 32-byte Ed25519 seed".to_owned())?;
        Ok(WitnessSigner { name: name.to_owned(), pair })
    }

    /// A new random seed.
    pub fn generate_seed() -> Result<[u8; 32], String> {
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| "no randomness for a witness key".to_owned())?;
        Ok(seed)
    }

    /// Its name and public key.
    pub fn key(&self) -> CosignerKey {
        use ring::signature::KeyPair;
        let public_key = self.pair.public_key().as_ref().try_into().expect("Ed25519 keys are 32 bytes");
        CosignerKey { name: self.name.clone(), public_key }
    }

    /// The cosignature line over `body` at `timestamp`.
    pub fn cosign(&self, body: &str, timestamp: u64) -> String {
        let signature = self.pair.sign(signed_message(timestamp, body).as_bytes());
        let blob = [&self.key().key_id()[..], &timestamp.to_be_bytes()[..], signature.as_ref()].concat();
        format!("\u{2014} {} {}\n", self.name, STANDARD.encode(&blob))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cosignature_verifies_under_its_key_only_and_over_its_body_only() {
        let signer = WitnessSigner::from_seed("witness.example/w1", &[7; 32]).unwrap();
        let key = signer.key();
        assert_eq!(CosignerKey::parse(&key.vkey()), Ok(key.clone()));
        let body = "wormbox.invalid/abc\n42\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let line = signer.cosign(body, 1_700_000_000);
        let found = key.find(body, &line).unwrap();
        assert_eq!((found.timestamp, found.line.as_str()), (1_700_000_000, line.as_str()));
        assert_eq!(key.find(&body.replace("42", "43"), &line), None);
        let other = WitnessSigner::from_seed("witness.example/w1", &[8; 32]).unwrap().key();
        assert_eq!(other.find(body, &line), None);
        let renamed = CosignerKey { name: "witness.example/w2".to_owned(), ..key.clone() };
        assert_eq!(renamed.find(body, &line), None);
        // The timestamp is signed: moving it breaks the signature.
        let mut blob = STANDARD.decode(line.trim_end().rsplit(' ').next().unwrap().as_bytes()).unwrap();
        blob[11] ^= 1;
        let moved = format!("\u{2014} witness.example/w1 {}\n", STANDARD.encode(&blob));
        assert_eq!(key.find(body, &moved), None);
    }

    #[test]
    fn a_verifier_key_whose_base64_holds_a_plus_reads_back() {
        let with_plus = (0u8..=255)
            .map(|n| WitnessSigner::from_seed("w.example/x", &[n; 32]).unwrap().key())
            .find(|k| k.vkey().matches('+').count() > 2)
            .expect("some key's base64 holds a `+`");
        assert_eq!(CosignerKey::parse(&with_plus.vkey()), Ok(with_plus));
    }

    #[test]
    fn verifier_keys_are_checked_whole() {
        let key = WitnessSigner::from_seed("w", &[1; 32]).unwrap().key();
        let vkey = key.vkey();
        let wrong_type =
            format!("w+{}+{}", hex::encode(key.key_id()), STANDARD.encode(&[&[1u8][..], &[1; 32]].concat()));
        let bad: Vec<String> = vec![
            String::new(),
            "w+00000000".to_owned(),
            vkey.replace("w+", "v+"),
            vkey.replacen('+', "+0", 1),
            wrong_type,
        ];
        for bad in bad {
            assert!(CosignerKey::parse(&bad).is_err(), "{bad}");
        }
    }
}
