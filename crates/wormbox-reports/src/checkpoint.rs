//! The checkpoint as people and files carry it: JSON with hex fields.
//!
//! Invariant: `CheckpointFile` holds exactly the signed fields plus
//! descriptive ones (`time`, `key_id`) that verification ignores, so a
//! checkpoint that round-trips through a file verifies the same.

use serde::{Deserialize, Serialize};
use wormbox_model::{Digest, Timestamp};
use wormbox_store::evidence::{self, Checkpoint};

/// A checkpoint in JSON form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointFile {
    /// The last ledger entry covered.
    pub sequence: u64,
    /// The chain hash there, in hex.
    pub head: String,
    /// Compliance-clock time of signing, µs since the epoch.
    pub time_unix_micros: i64,
    /// The same time in RFC 3339 (informative).
    pub time: String,
    /// The Ed25519 signature, in hex.
    pub signature: String,
    /// Which key signed it: `evidence::key_id` of the public key.
    pub key_id: String,
    /// The root of the ledger's Merkle tree of `sequence` entries, in hex
    /// (signed); absent from checkpoints signed before the tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree_root: Option<String>,
}

impl CheckpointFile {
    /// The file form of `checkpoint`, signed by `public_key`.
    pub fn new(checkpoint: &Checkpoint, public_key: &[u8]) -> CheckpointFile {
        CheckpointFile {
            sequence: checkpoint.sequence,
            head: checkpoint.head.to_hex(),
            time_unix_micros: checkpoint.time.0,
            time: checkpoint.time.to_rfc3339(),
            signature: hex::encode(&checkpoint.signature),
            key_id: evidence::key_id(public_key),
            tree_root: checkpoint.tree_root.map(|root| root.to_hex()),
        }
    }

    /// The checkpoint, or why the hex fields do not decode.
    pub fn checkpoint(&self) -> Result<Checkpoint, String> {
        let head = hex::decode(&self.head)
            .ok()
            .and_then(|b| Digest::from_slice(&b))
            .ok_or_else(|| "head is not 64 hex digits".to_owned())?;
        let signature = hex::decode(&self.signature).map_err(|_| "signature is not hex".to_owned())?;
        let tree_root = match &self.tree_root {
            Some(root) => Some(
                hex::decode(root)
                    .ok()
                    .and_then(|b| Digest::from_slice(&b))
                    .ok_or_else(|| "tree_root is not 64 hex digits".to_owned())?,
            ),
            None => None,
        };
        Ok(Checkpoint { sequence: self.sequence, head, time: Timestamp(self.time_unix_micros), signature, tree_root })
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        format!(
            "ledger entry {} head {} signed {} by key {} (signature {})",
            self.sequence, self.head, self.time, self.key_id, self.signature
        )
    }
}

/// Parses a public key file: 64 hex digits (whitespace around ignored).
pub fn parse_public_key(text: &str) -> Result<Vec<u8>, String> {
    let bytes = hex::decode(text.trim()).map_err(|_| "the public key is not hex".to_owned())?;
    if bytes.len() != 32 {
        return Err(format!("an Ed25519 public key has 32 bytes, this one {}", bytes.len()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use wormbox_store::evidence::{Ed25519Signer, Signer};

    use super::*;

    #[test]
    fn a_checkpoint_verifies_after_a_round_trip_through_json() {
        let (signer, _) = Ed25519Signer::generate().unwrap();
        let head = Digest([4; 32]);
        let c = Checkpoint::sign(&signer, 9, head, Timestamp(1_700_000_000_000_000), Digest([5; 32]));
        let file = CheckpointFile::new(&c, signer.public_key());
        let text = serde_json::to_string_pretty(&file).unwrap();
        assert!(text.contains(&format!("\"tree_root\": \"{}\"", "05".repeat(32))), "{text}");
        let back: CheckpointFile = serde_json::from_str(&text).unwrap();
        assert_eq!(back.checkpoint().unwrap(), c);
        assert!(back.checkpoint().unwrap().verify(signer.public_key()));
        // A file of a checkpoint signed before the tree has no root, and still verifies.
        let message = Checkpoint::message(9, &head, c.time, None);
        let old = Checkpoint { tree_root: None, signature: signer.sign(&message), ..c.clone() };
        let text = serde_json::to_string(&CheckpointFile::new(&old, signer.public_key())).unwrap();
        assert!(!text.contains("tree_root"), "{text}");
        let back: CheckpointFile = serde_json::from_str(&text).unwrap();
        assert!(back.checkpoint().unwrap().verify(signer.public_key()));
        // The root is signed: another root, or none, does not verify.
        let mut other_root = CheckpointFile::new(&c, signer.public_key());
        other_root.tree_root = Some("06".repeat(32));
        assert!(!other_root.checkpoint().unwrap().verify(signer.public_key()));
        other_root.tree_root = None;
        assert!(!other_root.checkpoint().unwrap().verify(signer.public_key()));
        other_root.tree_root = Some("zz".to_owned());
        assert!(other_root.checkpoint().is_err());
        let back: CheckpointFile = serde_json::from_str(&serde_json::to_string(&file).unwrap()).unwrap();
        let key = parse_public_key(&format!(" {}\n", hex::encode(signer.public_key()))).unwrap();
        assert_eq!(key, signer.public_key());
        assert!(parse_public_key("abcd").is_err());
        let mut forged = back.clone();
        forged.sequence += 1;
        assert!(!forged.checkpoint().unwrap().verify(signer.public_key()));
    }
}
