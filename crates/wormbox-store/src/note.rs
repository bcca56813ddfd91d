//! Checkpoints as C2SP signed notes: the `tlog-checkpoint` body in the
//! `signed-note` envelope, which transparency-log tooling and witnesses
//! (C2SP `tlog-witness`) read:
//!
//! ```text
//! <origin>\n
//! <tree size, decimal>\n
//! <root hash, standard base64>\n
//! \n
//! — <key name> <base64(key hash (4 bytes) || Ed25519 signature (64 bytes))>\n
//! ```
//!
//! The signature covers the body, its last newline included. The key hash
//! is the first four bytes of `SHA-256(key name || 0x0A || 0x01 || public
//! key)` (0x01: Ed25519). The origin and the key name are the same,
//! `wormbox.invalid/<key id>`: one appliance key, one log; the `.invalid`
//! top-level domain (RFC 2606) says it names no host.
//!
//! Invariant: the appliance signs a note only for a size and root its writer
//! signed in a checkpoint; the note's message can never be one of the
//! checkpoint's own (those start with `wormbox checkpoint`, a note with its
//! origin, which does not).

use data_encoding::BASE64 as STANDARD;
use wormbox_model::Digest;

use crate::evidence::{Checkpoint, Signer, key_id};

/// Signed-note's algorithm byte for Ed25519.
const ED25519: u8 = 0x01;

/// A checkpoint read back from a signed note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteCheckpoint {
    /// The log's origin line.
    pub origin: String,
    /// The tree's size.
    pub size: u64,
    /// The tree's root.
    pub root: Digest,
}

/// Why a note does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the signed note {0}")]
pub struct NoteError(String);

fn refuse(why: impl Into<String>) -> NoteError {
    NoteError(why.into())
}

/// The origin line and key name of the log `public_key` signs.
pub fn origin(public_key: &[u8]) -> String {
    format!("wormbox.invalid/{}", key_id(public_key))
}

/// The signed-note key hash of an Ed25519 key named `name`.
pub fn key_hash(name: &str, public_key: &[u8]) -> [u8; 4] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(name.as_bytes());
    ctx.update(b"\n");
    ctx.update(&[ED25519]);
    ctx.update(public_key);
    let digest = ctx.finish();
    digest.as_ref()[..4].try_into().expect("4 bytes")
}

/// The verifier key in the form the Go `sumdb/note` package and
/// witnesses take: `<name>+<key hash, hex>+<base64(0x01 || public key)>`.
pub fn verifier_key(name: &str, public_key: &[u8]) -> String {
    let typed = [&[ED25519][..], public_key].concat();
    format!("{name}+{}+{}", hex::encode(key_hash(name, public_key)), STANDARD.encode(&typed))
}

/// The note's body: origin, size and root, one per line.
pub fn body(origin: &str, size: u64, root: &Digest) -> String {
    format!("{origin}\n{size}\n{}\n", STANDARD.encode(&root.0))
}

/// Signs `text` (a note's body, ending in a newline) as `name`.
pub fn sign_text(signer: &dyn Signer, name: &str, text: &str) -> String {
    let signature = signer.sign(text.as_bytes());
    let blob = [&key_hash(name, signer.public_key())[..], &signature].concat();
    format!("{text}\n\u{2014} {name} {}\n", STANDARD.encode(&blob))
}

/// `checkpoint` as a signed note, when it signs a Merkle root.
pub fn sign(signer: &dyn Signer, checkpoint: &Checkpoint) -> Option<String> {
    let root = checkpoint.tree_root?;
    let name = origin(signer.public_key());
    Some(sign_text(signer, &name, &body(&name, checkpoint.sequence, &root)))
}

/// Opens a checkpoint note: the signature line of `public_key`'s log must
/// verify over the body, and the body must be a `tlog-checkpoint` of that
/// origin. Other signature lines (a witness's cosignature) are left alone.
pub fn open(note: &str, public_key: &[u8]) -> Result<NoteCheckpoint, NoteError> {
    let name = origin(public_key);
    let (text, signatures) =
        note.split_once("\n\n").ok_or_else(|| refuse("has no blank line before its signatures"))?;
    let text = format!("{text}\n");
    let hash = key_hash(&name, public_key);
    let mut verified = false;
    for line in signatures.split_terminator('\n') {
        let rest = line.strip_prefix("\u{2014} ").ok_or_else(|| refuse("has a signature line without its dash"))?;
        let (line_name, blob) = rest.split_once(' ').ok_or_else(|| refuse("has a malformed signature line"))?;
        let blob = STANDARD.decode(blob.as_bytes()).map_err(|_| refuse("has a signature that is not base64"))?;
        if line_name != name || blob.len() != 4 + 64 || blob[..4] != hash {
            continue;
        }
        let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key);
        if key.verify(text.as_bytes(), &blob[4..]).is_err() {
            return Err(refuse(format!("is not signed by {name}")));
        }
        verified = true;
    }
    if !verified || !note.ends_with('\n') {
        return Err(refuse(format!("carries no signature of {name}")));
    }
    // Split on newlines only: a carriage return stays part of its line.
    let mut lines = text.split('\n');
    let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
        return Err(refuse("is not a checkpoint: it needs an origin, a size and a root"));
    };
    if origin != name {
        return Err(refuse(format!("is of log {origin}, not {name}")));
    }
    let size_ok =
        !size.is_empty() && (size == "0" || !size.starts_with('0')) && size.bytes().all(|b| b.is_ascii_digit());
    let size = size.parse::<u64>().ok().filter(|_| size_ok).ok_or_else(|| refuse("has a malformed tree size"))?;
    let root = STANDARD
        .decode(root.as_bytes())
        .ok()
        .and_then(|raw| Digest::from_slice(&raw))
        .ok_or_else(|| refuse("has a malformed root hash"))?;
    Ok(NoteCheckpoint { origin: origin.to_owned(), size, root })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::Ed25519Signer;

    /// A signer from a raw Ed25519 seed, as the Go vectors give keys.
    #[derive(Debug)]
    struct Seeded(ring::signature::Ed25519KeyPair);

    impl Signer for Seeded {
        fn public_key(&self) -> &[u8] {
            use ring::signature::KeyPair;
            self.0.public_key().as_ref()
        }
        fn sign(&self, message: &[u8]) -> Vec<u8> {
            self.0.sign(message).as_ref().to_vec()
        }
    }

    /// golang.org/x/mod/sumdb/note's own example, byte for byte: the key
    /// `PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz`.
    #[test]
    fn the_go_note_package_s_example_is_signed_byte_for_byte() {
        let seed = STANDARD.decode(b"AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz").unwrap();
        assert_eq!(seed[0], ED25519);
        let signer = Seeded(ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed[1..]).unwrap());
        let text =
            "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
        let want = format!(
            "{text}\n\u{2014} PeterNeumann \
             x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        );
        assert_eq!(sign_text(&signer, "PeterNeumann", text), want);
        assert_eq!(
            verifier_key("PeterNeumann", signer.public_key()),
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        );
    }

    #[test]
    fn a_checkpoint_note_opens_with_its_key_and_no_edit_survives() {
        let (signer, _) = Ed25519Signer::generate().unwrap();
        let checkpoint = Checkpoint::sign(&signer, 42, Digest([1; 32]), wormbox_model::Timestamp(7), Digest([9; 32]));
        let note = sign(&signer, &checkpoint).unwrap();
        let name = origin(signer.public_key());
        assert!(note.starts_with(&format!("{name}\n42\n{}\n\n\u{2014} {name} ", STANDARD.encode(&[9; 32]))), "{note}");
        assert_eq!(
            open(&note, signer.public_key()),
            Ok(NoteCheckpoint { origin: name.clone(), size: 42, root: Digest([9; 32]) })
        );
        // A witness's cosignature line beside it changes nothing.
        let cosigned = format!("{note}\u{2014} witness.example AAAA\n");
        assert!(open(&cosigned, signer.public_key()).is_ok());
        let (other, _) = Ed25519Signer::generate().unwrap();
        assert!(open(&note, other.public_key()).is_err());
        for (from, to) in [("\n42\n", "\n43\n"), ("\n42\n", "\n042\n"), (name.as_str(), "wormbox.invalid/x")] {
            let edited = note.replacen(from, to, 1);
            assert!(open(&edited, signer.public_key()).is_err(), "{edited}");
        }
        let mut root_edit = note.clone();
        let at = name.len() + 4;
        root_edit.replace_range(at..at + 1, if &note[at..at + 1] == "A" { "B" } else { "A" });
        assert!(open(&root_edit, signer.public_key()).is_err());
        assert!(open(note.trim_end(), signer.public_key()).is_err());
        let unrooted = Checkpoint { tree_root: None, ..checkpoint };
        assert_eq!(sign(&signer, &unrooted), None);
    }
}
