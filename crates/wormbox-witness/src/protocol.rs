//! The `add-checkpoint` request of C2SP `tlog-witness`: an `old <size>`
//! line, the consistency proof from that size, one base64 hash a line (at
//! most 63), an empty line, then the checkpoint as a signed note.
//!
//! Invariant: a body is read only if it is written the one way the protocol
//! allows (decimal sizes without leading zeros, 32-byte hashes, every line
//! ending in a newline); anything else is a bad request, never guessed at.

use data_encoding::BASE64 as STANDARD;
use wormbox_model::Digest;

/// The most proof lines a request may carry.
pub const MAX_PROOF_LINES: usize = 63;

/// The most bytes of a request body a witness reads.
pub const MAX_BODY: usize = 64 * 1024;

/// One add-checkpoint request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the checkpoint the client believes the witness holds.
    pub old_size: u64,
    /// The consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Digest>,
    /// The checkpoint, a signed note (body, empty line, signature lines).
    pub checkpoint: String,
}

impl AddCheckpoint {
    /// The request body.
    pub fn encode(&self) -> String {
        let mut out = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            out.push_str(&STANDARD.encode(&hash.0));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Reads a request body.
    pub fn parse(body: &[u8]) -> Result<AddCheckpoint, String> {
        if body.len() > MAX_BODY {
            return Err(format!("the request is over {MAX_BODY} bytes"));
        }
        let text = std::str::from_utf8(body).map_err(|_| "the request is not UTF-8".to_owned())?;
        let (first, mut rest) = text.split_once('\n').ok_or_else(|| "the request has no old size line".to_owned())?;
        let size = first.strip_prefix("old ").ok_or_else(|| "the first line is not `old <size>`".to_owned())?;
        let old_size = parse_size(size).ok_or_else(|| format!("`{size}` is not a tree size"))?;
        let mut proof = Vec::new();
        loop {
            let (line, after) =
                rest.split_once('\n').ok_or_else(|| "the proof ends without an empty line".to_owned())?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(format!("more than {MAX_PROOF_LINES} proof lines"));
            }
            let hash = STANDARD
                .decode(line.as_bytes())
                .ok()
                .and_then(|raw| Digest::from_slice(&raw))
                .ok_or_else(|| "a proof line is not a base64 SHA-256 hash".to_owned())?;
            proof.push(hash);
        }
        Ok(AddCheckpoint { old_size, proof, checkpoint: rest.to_owned() })
    }
}

/// A decimal size without sign or leading zeros (`0` alone).
pub fn parse_size(text: &str) -> Option<u64> {
    let canonical =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_read_back_as_written_and_nothing_else_is_read() {
        let request = AddCheckpoint {
            old_size: 20_852_014,
            proof: vec![Digest([1; 32]), Digest([2; 32])],
            checkpoint: "origin\n5\nroot\n\n\u{2014} origin sig\n".to_owned(),
        };
        let body = request.encode();
        assert!(body.starts_with("old 20852014\nAQEB"), "{body}");
        assert_eq!(AddCheckpoint::parse(body.as_bytes()), Ok(request.clone()));
        let empty = AddCheckpoint { old_size: 0, proof: vec![], ..request };
        assert!(empty.encode().starts_with("old 0\n\norigin\n"));
        assert_eq!(AddCheckpoint::parse(empty.encode().as_bytes()), Ok(empty));
        let too_many = format!("old 1\n{}\nx\n", vec![STANDARD.encode(&[0; 32]); 64].join("\n"));
        for bad in [
            "".to_owned(),
            "old 01\n\nx".to_owned(),
            "old -1\n\nx".to_owned(),
            "old 1".to_owned(),
            "new 1\n\nx".to_owned(),
            "old 1\nAAAA\n\nx".to_owned(),
            "old 1\nnot base64!\n\nx".to_owned(),
            "old 1\n".to_owned(),
            too_many,
            format!("old 1\n\n{}", "x".repeat(MAX_BODY)),
        ] {
            assert!(AddCheckpoint::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
