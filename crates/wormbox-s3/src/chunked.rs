//! A guard on aws-chunked request bodies (`STREAMING-*` payloads): s3s
//! buffers each chunk whole before it checks the chunk's signature, and the
//! chunk's size is the client's to say (up to 4 GiB), so every chunk header
//! is read here first, as the bytes pass, and a body that announces a chunk
//! above `MAX_CHUNK_BYTES` (or a header line longer than any well-formed
//! one) fails before s3s sees the chunk.
//!
//! Invariant: the guard passes every byte through unchanged and in order;
//! it only ends the body with an error. What one request can make the
//! server hold for a chunk is bounded by `MAX_CHUNK_BYTES`.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The largest aws-chunked chunk accepted. AWS SDKs send 64 KiB; the S3
/// documentation allows at least 8 KiB and gives no maximum.
pub(crate) const MAX_CHUNK_BYTES: u64 = 16 << 20;
/// The longest chunk header line: the size in hex, `;chunk-signature=` and
/// 64 hex digits, with room to spare.
const MAX_HEADER_LINE: usize = 256;

/// Where the scanner is in the framing.
#[derive(Debug)]
enum State {
    /// Reading a chunk header line (bytes so far).
    Header(Vec<u8>),
    /// Skipping this many bytes of chunk data and its CRLF.
    Data(u64),
    /// After the last (empty) chunk: trailers, passed as they are.
    Trailers,
}

/// Why a chunked body was cut off.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChunkError {
    /// A chunk announced more than `MAX_CHUNK_BYTES`.
    #[error("an aws-chunked chunk announces {0} bytes; at most {MAX_CHUNK_BYTES} are accepted")]
    TooLarge(u64),
    /// A chunk header that is not one.
    #[error("a malformed aws-chunked chunk header")]
    Malformed,
    /// The body underneath failed (or stalled).
    #[error("reading the request body: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// `inner`, its aws-chunked framing checked as it passes.
#[derive(Debug)]
pub(crate) struct ChunkGuard<B> {
    inner: B,
    state: State,
    failed: bool,
}

impl<B> ChunkGuard<B> {
    pub(crate) fn new(inner: B) -> ChunkGuard<B> {
        ChunkGuard { inner, state: State::Header(Vec::new()), failed: false }
    }
}

/// Advances `state` over `bytes`.
fn scan(state: &mut State, mut bytes: &[u8]) -> Result<(), ChunkError> {
    while !bytes.is_empty() {
        match state {
            State::Trailers => return Ok(()),
            State::Data(left) => {
                let take = (*left).min(bytes.len() as u64);
                *left -= take;
                bytes = &bytes[take as usize..];
                if *left == 0 {
                    *state = State::Header(Vec::new());
                }
            }
            State::Header(line) => {
                let end = bytes.iter().position(|&b| b == b'\n');
                let (part, rest) = match end {
                    Some(i) => (&bytes[..=i], &bytes[i + 1..]),
                    None => (bytes, &[][..]),
                };
                line.extend_from_slice(part);
                if line.len() > MAX_HEADER_LINE {
                    return Err(ChunkError::Malformed);
                }
                bytes = rest;
                if end.is_none() {
                    return Ok(());
                }
                let text = std::str::from_utf8(line).map_err(|_| ChunkError::Malformed)?;
                let size_hex = text.trim_end_matches(['\r', '\n']).split(';').next().unwrap_or_default().trim();
                let size = u64::from_str_radix(size_hex, 16).map_err(|_| ChunkError::Malformed)?;
                if size > MAX_CHUNK_BYTES {
                    return Err(ChunkError::TooLarge(size));
                }
                // The data, then its CRLF.
                *state = if size == 0 { State::Trailers } else { State::Data(size + 2) };
            }
        }
    }
    Ok(())
}

impl<B> Body for ChunkGuard<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = ChunkError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, ChunkError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        let frame = match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(err)) => return Poll::Ready(Some(Err(ChunkError::Body(err.into())))),
            Some(Ok(frame)) => frame,
        };
        if let Some(data) = frame.data_ref() {
            let this = &mut *self;
            if let Err(err) = scan(&mut this.state, data) {
                this.failed = true;
                return Poll::Ready(Some(Err(err)));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(pieces: &[&[u8]]) -> Result<(), ChunkError> {
        let mut state = State::Header(Vec::new());
        for piece in pieces {
            scan(&mut state, piece)?;
        }
        Ok(())
    }

    #[test]
    fn well_formed_chunks_pass_however_they_are_split() {
        let sig = "chunk-signature=".to_owned() + &"a".repeat(64);
        let body = format!("5;{sig}\r\nhello\r\n3;{sig}\r\nabc\r\n0;{sig}\r\n\r\n");
        let bytes = body.as_bytes();
        scan_all(&[bytes]).unwrap();
        for cut in 1..bytes.len() {
            scan_all(&[&bytes[..cut], &bytes[cut..]]).unwrap();
        }
        scan_all(&[b"4\r\nwxyz\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"]).unwrap();
    }

    #[test]
    fn a_huge_chunk_or_a_garbage_header_is_refused_before_its_data() {
        let huge = format!("{:x};chunk-signature=00\r\n", MAX_CHUNK_BYTES + 1);
        assert!(matches!(scan_all(&[huge.as_bytes()]), Err(ChunkError::TooLarge(_))));
        assert!(matches!(scan_all(&[b"zz;x\r\n"]), Err(ChunkError::Malformed)));
        assert!(matches!(scan_all(&[&[b'1'; 300]]), Err(ChunkError::Malformed)));
        assert!(matches!(scan_all(&[b"ffffffff\r\n"]), Err(ChunkError::TooLarge(_))));
    }
}
