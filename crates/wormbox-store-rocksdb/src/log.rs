//! The archive's log: each commit is one frame, appended to the active
//! segment file and synced before RocksDB (the index, written without its
//! own write-ahead log) is told of it. A frame holds the whole batch: the
//! group's ledger entries, version records and the bytes of its versions,
//! which the index then points at instead of holding them.
//!
//! Invariants:
//! - a frame names its own place (segment, offset), so a frame found
//!   anywhere else (a copied file, a stale tail) is not taken for the next;
//! - its checksum (CRC32C) covers the header and every op but the bytes of
//!   `chunks` values, which carry a checksum each: the bytes of a purged
//!   version can then be punched out of a frame (once a later frame, or a
//!   later op of the same one, deleted or replaced the value, and that frame
//!   is durable) without making the frame unreadable; a replay tells such a
//!   value from a torn one by the later op (see `RocksBackend::replay`);
//! - decoding is strict: a frame is whole and valid, or it is not a frame,
//!   and what lies there is told apart (`Tail`): the log's end, what a
//!   crash leaves of an unsynced write (cut off at open), or damage (the
//!   open refuses, since acknowledged frames may follow).

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use wormbox_store::backend::{BackendError, Batch, BatchOp, Keyspace};

use crate::crc32c;

const MAGIC: [u8; 4] = *b"WBL1";
/// The largest body a frame may have: far above any group the writer's
/// queue (256 MiB) lets through, so that a damaged or crafted length is not
/// taken for a frame, nor allocated.
const MAX_BODY: usize = 1 << 30;
/// The page a torn write loses whole.
const PAGE: u64 = 4096;
/// Magic, body length, segment, offset, op count, checksum.
pub(crate) const HEADER: usize = 4 + 4 + 8 + 8 + 4 + 4;

const PUT: u8 = 1;
const DELETE: u8 = 2;
/// A put of a `chunks` value, whose bytes have a checksum of their own.
const PUT_VALUE: u8 = 3;
/// The log's first frame: whether the index already held changes when the
/// log began (a database written before the log), so that a rebuild knows
/// whether the log alone holds everything.
const BASE: u8 = 4;

/// A place in the log: a segment file and a byte offset in it. Ordered as
/// the log is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
}

impl Position {
    pub(crate) fn encode(self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&self.segment.to_be_bytes());
        out[8..].copy_from_slice(&self.offset.to_be_bytes());
        out
    }

    pub(crate) fn decode(raw: &[u8]) -> Result<Position, BackendError> {
        let raw: [u8; 16] = raw.try_into().map_err(|_| corrupt("a recorded log position is malformed"))?;
        Ok(Position {
            segment: u64::from_be_bytes(raw[..8].try_into().expect("8 bytes")),
            offset: u64::from_be_bytes(raw[8..].try_into().expect("8 bytes")),
        })
    }
}

fn corrupt(why: &str) -> BackendError {
    BackendError::Corruption { space: Some(Keyspace::Chunks), source: why.into() }
}

/// The bytes a `chunks` value is preceded by in its frame: its length and
/// its checksum.
pub(crate) const VALUE_HEAD: usize = 8;

/// Whether `value`, read from a frame with the `head` before it, is whole:
/// its length and checksum are the ones its frame recorded.
pub(crate) fn value_is_whole(head: [u8; VALUE_HEAD], value: &[u8]) -> bool {
    let len = u32::from_be_bytes(head[..4].try_into().expect("4 bytes"));
    let crc = u32::from_be_bytes(head[4..].try_into().expect("4 bytes"));
    len as usize == value.len() && crc32c::extend(0, value) == crc
}

fn space_code(space: Keyspace) -> u8 {
    Keyspace::ALL.iter().position(|s| *s == space).expect("every keyspace is in ALL") as u8
}

fn too_large() -> BackendError {
    BackendError::Engine("a commit of more than 1 GiB cannot be one log frame".into())
}

/// The length of `batch`'s frame.
pub(crate) fn frame_len(batch: &Batch) -> Result<usize, BackendError> {
    let body: usize = batch
        .ops()
        .iter()
        .map(|op| match op {
            BatchOp::Put { space: Keyspace::Chunks, key, value } => 2 + 4 + key.len() + 4 + 4 + value.len(),
            BatchOp::Put { key, value, .. } => 2 + 4 + key.len() + 4 + value.len(),
            BatchOp::Delete { key, .. } => 2 + 4 + key.len(),
        })
        .sum();
    if body > MAX_BODY {
        return Err(too_large());
    }
    Ok(HEADER + body)
}

fn len32(bytes: &[u8]) -> Result<[u8; 4], BackendError> {
    u32::try_from(bytes.len()).map(u32::to_be_bytes).map_err(|_| too_large())
}

/// `batch` as the frame at `at`, with its ops located as `Frame::parse`
/// would find them (the commit builds the index's changes from it without
/// parsing it again).
pub(crate) fn encode(batch: &Batch, at: Position) -> Result<Frame, BackendError> {
    let len = frame_len(batch)?;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&MAGIC);
    // `frame_len` checked that the body's length fits.
    out.extend_from_slice(&((len - HEADER) as u32).to_be_bytes());
    out.extend_from_slice(&at.segment.to_be_bytes());
    out.extend_from_slice(&at.offset.to_be_bytes());
    out.extend_from_slice(&u32::try_from(batch.ops().len()).map_err(|_| too_large())?.to_be_bytes());
    let mut crc = crc32c::extend(0, &out);
    out.extend_from_slice(&[0; 4]);
    let mut covered = out.len();
    let mut ops = Vec::with_capacity(batch.ops().len());
    let put = |out: &mut Vec<u8>, bytes: &[u8]| {
        let at = out.len();
        out.extend_from_slice(bytes);
        at..out.len()
    };
    for op in batch.ops() {
        match op {
            BatchOp::Put { space: Keyspace::Chunks, key, value } => {
                out.extend_from_slice(&[PUT_VALUE, space_code(Keyspace::Chunks)]);
                out.extend_from_slice(&len32(key)?);
                let key = put(&mut out, key);
                out.extend_from_slice(&len32(value)?);
                out.extend_from_slice(&crc32c::extend(0, value).to_be_bytes());
                crc = crc32c::extend(crc, &out[covered..]);
                let value = put(&mut out, value);
                covered = out.len();
                ops.push(Op::Put { space: Keyspace::Chunks, key, value });
            }
            BatchOp::Put { space, key, value } => {
                out.extend_from_slice(&[PUT, space_code(*space)]);
                out.extend_from_slice(&len32(key)?);
                let key = put(&mut out, key);
                out.extend_from_slice(&len32(value)?);
                let value = put(&mut out, value);
                ops.push(Op::Put { space: *space, key, value });
            }
            BatchOp::Delete { space, key } => {
                out.extend_from_slice(&[DELETE, space_code(*space)]);
                out.extend_from_slice(&len32(key)?);
                let key = put(&mut out, key);
                ops.push(Op::Delete { space: *space, key });
            }
        }
    }
    crc = crc32c::extend(crc, &out[covered..]);
    out[HEADER - 4..HEADER].copy_from_slice(&crc.to_be_bytes());
    debug_assert_eq!(out.len(), len);
    Ok(Frame { at, bytes: out, ops, damaged: Vec::new() })
}

/// One change in a frame, as ranges of the frame's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Put {
        space: Keyspace,
        key: Range<usize>,
        value: Range<usize>,
    },
    Delete {
        space: Keyspace,
        key: Range<usize>,
    },
    /// The log's first frame (see `BASE`); no change to the index.
    Base {
        index_held_changes: bool,
    },
}

/// The log's first frame, at `at`.
pub(crate) fn encode_base(at: Position, index_held_changes: bool) -> Frame {
    let mut out = Vec::with_capacity(HEADER + 7);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&7u32.to_be_bytes());
    out.extend_from_slice(&at.segment.to_be_bytes());
    out.extend_from_slice(&at.offset.to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&[BASE, 0]);
    out.extend_from_slice(&1u32.to_be_bytes());
    out.push(u8::from(index_held_changes));
    let crc = crc32c::extend(crc32c::extend(0, &out[..HEADER - 4]), &out[HEADER..]);
    out[HEADER - 4..HEADER].copy_from_slice(&crc.to_be_bytes());
    Frame { at, bytes: out, ops: vec![Op::Base { index_held_changes }], damaged: Vec::new() }
}

/// A whole, valid frame.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) at: Position,
    pub(crate) bytes: Vec<u8>,
    pub(crate) ops: Vec<Op>,
    /// The ops (by index) whose value's bytes fail their own checksum:
    /// punched, or torn; checked only when parsing was asked to.
    pub(crate) damaged: Vec<usize>,
}

impl Frame {
    /// Where the next frame starts.
    pub(crate) fn end(&self) -> Position {
        Position { segment: self.at.segment, offset: self.at.offset + self.bytes.len() as u64 }
    }

    /// Parses `bytes` as the frame at `at`; `None` when they are not a
    /// whole, valid frame there. Each `chunks` value's own checksum is
    /// checked too, and the ops whose value fails it are listed in `damaged`
    /// (they do not make the frame invalid).
    pub(crate) fn parse(bytes: Vec<u8>, at: Position) -> Option<Frame> {
        let header = bytes.get(..HEADER)?;
        let u32_at = |at: usize| u32::from_be_bytes(header[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_be_bytes(header[at..at + 8].try_into().expect("8 bytes"));
        if header[..4] != MAGIC
            || u32_at(4) as usize != bytes.len() - HEADER
            || u64_at(8) != at.segment
            || u64_at(16) != at.offset
        {
            return None;
        }
        let count = u32_at(24) as usize;
        let stored_crc = u32_at(28);
        let mut crc = crc32c::extend(0, &header[..HEADER - 4]);
        let mut ops = Vec::with_capacity(count.min(bytes.len() / 6));
        let mut damaged = Vec::new();
        let mut pos = HEADER;
        let mut covered = HEADER;
        let take = |pos: &mut usize, n: usize| -> Option<Range<usize>> {
            let range = *pos..pos.checked_add(n)?;
            (range.end <= bytes.len()).then(|| {
                *pos = range.end;
                range
            })
        };
        let take_u32 = |pos: &mut usize| -> Option<u32> {
            let range = take(pos, 4)?;
            Some(u32::from_be_bytes(bytes[range].try_into().expect("4 bytes")))
        };
        for _ in 0..count {
            let head = take(&mut pos, 2)?;
            let (tag, code) = (bytes[head.start], bytes[head.start + 1]);
            let space = *Keyspace::ALL.get(code as usize)?;
            let key_len = take_u32(&mut pos)? as usize;
            let key = take(&mut pos, key_len)?;
            match tag {
                PUT => {
                    let value_len = take_u32(&mut pos)? as usize;
                    let value = take(&mut pos, value_len)?;
                    ops.push(Op::Put { space, key, value });
                }
                PUT_VALUE if space == Keyspace::Chunks => {
                    let value_len = take_u32(&mut pos)? as usize;
                    let value_crc = take_u32(&mut pos)?;
                    crc = crc32c::extend(crc, &bytes[covered..pos]);
                    let value = take(&mut pos, value_len)?;
                    covered = pos;
                    if crc32c::extend(0, &bytes[value.clone()]) != value_crc {
                        damaged.push(ops.len());
                    }
                    ops.push(Op::Put { space, key, value });
                }
                DELETE => ops.push(Op::Delete { space, key }),
                BASE if key.len() == 1 && bytes[key.start] <= 1 => {
                    ops.push(Op::Base { index_held_changes: bytes[key.start] == 1 })
                }
                _ => return None,
            }
        }
        crc = crc32c::extend(crc, &bytes[covered..pos]);
        (pos == bytes.len() && crc == stored_crc).then_some(Frame { at, bytes, ops, damaged })
    }

    /// Reads the frame at `at` from `file`: `Ok(None)` when none starts
    /// there (the end of the log, or a torn or foreign tail).
    pub(crate) fn read(file: &File, at: Position) -> std::io::Result<Option<Frame>> {
        let mut header = [0u8; HEADER];
        if !read_fully(file, &mut header, at.offset)? || header[..4] != MAGIC {
            return Ok(None);
        }
        let body = u32::from_be_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
        let available = file.metadata()?.len().saturating_sub(at.offset + HEADER as u64);
        if body > MAX_BODY || body as u64 > available {
            return Ok(None);
        }
        let mut bytes = vec![0u8; HEADER + body];
        bytes[..HEADER].copy_from_slice(&header);
        if !read_fully(file, &mut bytes[HEADER..], at.offset + HEADER as u64)? {
            return Ok(None);
        }
        Ok(Frame::parse(bytes, at))
    }
}

/// What lies at `at`, where no whole frame starts, up to the end of `file`
/// (`len` bytes).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Nothing: the log ends cleanly.
    End,
    /// Only zeros: blocks never written (a write whose pages a crash lost,
    /// or a file left a byte long by `release_past_end`); nothing was
    /// acknowledged there.
    Zeros,
    /// What a crash leaves of a write that was never synced (and so never
    /// acknowledged): less than a header, or a frame whose own header runs
    /// to or past the file's end (cut short).
    Torn,
    /// Bytes that are no frame, followed by more: a frame synced and later
    /// damaged, after which acknowledged frames may follow.
    Damaged,
}

impl Tail {
    pub(crate) fn at(file: &File, at: Position, len: u64) -> std::io::Result<Tail> {
        if at.offset >= len {
            return Ok(Tail::End);
        }
        let mut buf = vec![0u8; 1 << 16];
        let mut offset = at.offset;
        let mut zeros = true;
        while offset < len {
            let n = (len - offset).min(buf.len() as u64) as usize;
            file.read_exact_at(&mut buf[..n], offset)?;
            if buf[..n].iter().any(|b| *b != 0) {
                zeros = false;
                break;
            }
            offset += n as u64;
        }
        if zeros {
            return Ok(Tail::Zeros);
        }
        if len - at.offset < HEADER as u64 {
            // Not even a header: no frame can follow in it.
            return Ok(Tail::Torn);
        }
        let mut header = [0u8; HEADER];
        file.read_exact_at(&mut header, at.offset)?;
        let u64_at = |i: usize| u64::from_be_bytes(header[i..i + 8].try_into().expect("8 bytes"));
        if header[..4] == MAGIC && u64_at(8) == at.segment && u64_at(16) == at.offset {
            let body = u64::from(u32::from_be_bytes(header[4..8].try_into().expect("4 bytes")));
            if body <= MAX_BODY as u64 && at.offset + HEADER as u64 + body >= len {
                return Ok(Tail::Torn);
            }
        }
        Ok(Tail::Damaged)
    }
}

impl Frame {
    /// Whether the bytes of op `index`'s value look never written: all zeros
    /// over some page, as a torn write leaves them (a flipped bit does not).
    pub(crate) fn value_looks_unwritten(&self, index: usize) -> bool {
        let Some(Op::Put { value, .. }) = self.ops.get(index) else { return false };
        let start = self.at.offset + value.start as u64;
        let end = self.at.offset + value.end as u64;
        let mut piece = start;
        while piece < end {
            let piece_end = (piece / PAGE + 1) * PAGE;
            let piece_end = piece_end.min(end);
            let local = (piece - self.at.offset) as usize..(piece_end - self.at.offset) as usize;
            if self.bytes[local].iter().all(|b| *b == 0) {
                return true;
            }
            piece = piece_end;
        }
        false
    }
}

/// Fills `buf` from `offset`; `false` when the file ends first.
fn read_fully(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<bool> {
    match file.read_exact_at(buf, offset) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Batch {
        let mut batch = Batch::new();
        batch.put(Keyspace::Ledger, b"seq".to_vec(), b"entry".to_vec());
        batch.put(Keyspace::Chunks, b"chunk".to_vec(), vec![7; 300]);
        batch.delete(Keyspace::Locks, b"lock".to_vec());
        batch.put(Keyspace::Meta, b"head".to_vec(), Vec::new());
        batch
    }

    const AT: Position = Position { segment: 3, offset: 4096 };

    /// What follows the last whole frame tells a crash's leftovers (cut
    /// off at open) from damage (refused): zeros, a header whose frame runs
    /// past the end, less than a header; anything else is damage.
    #[test]
    fn the_bytes_after_the_last_frame_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("values-0000000000000003.seg");
        let first = Position { segment: 3, offset: 0 };
        let frame = encode(&batch(), first).unwrap().bytes;
        let next = Position { segment: 3, offset: frame.len() as u64 };
        let second = encode(&batch(), next).unwrap().bytes;
        let tail_after = |rest: &[u8]| {
            std::fs::write(&path, [frame.as_slice(), rest].concat()).unwrap();
            let file = File::open(&path).unwrap();
            Tail::at(&file, next, (frame.len() + rest.len()) as u64).unwrap()
        };
        assert_eq!(tail_after(b""), Tail::End);
        assert_eq!(tail_after(&[0; 5000]), Tail::Zeros);
        assert_eq!(tail_after(&second[..HEADER - 1]), Tail::Torn);
        assert_eq!(tail_after(&second[..second.len() - 1]), Tail::Torn);
        let mut flipped = second.clone();
        flipped[HEADER + 3] ^= 1;
        assert_eq!(tail_after(&[flipped.as_slice(), &[7; 100]].concat()), Tail::Damaged, "a frame with more after it");
        assert_eq!(tail_after(&[1; 100]), Tail::Damaged, "bytes that are no frame");
        // A header naming another place is not this frame's, cut short.
        let elsewhere = encode(&batch(), first).unwrap().bytes;
        assert_eq!(tail_after(&elsewhere[..elsewhere.len() - 1]), Tail::Damaged);
    }

    #[test]
    fn the_log_s_first_frame_says_whether_the_index_held_changes_before_it() {
        for held in [false, true] {
            let encoded = encode_base(AT, held);
            let frame = Frame::parse(encoded.bytes, AT).expect("valid");
            assert_eq!(frame.ops, [Op::Base { index_held_changes: held }]);
            assert_eq!(frame.ops, encoded.ops);
        }
        let mut bad = encode_base(AT, true).bytes;
        *bad.last_mut().unwrap() = 2;
        assert!(Frame::parse(bad, AT).is_none());
    }

    #[test]
    fn a_frame_reads_back_as_the_batch_it_was_written_from() {
        let encoded = encode(&batch(), AT).unwrap();
        assert_eq!(encoded.bytes.len(), frame_len(&batch()).unwrap());
        let frame = Frame::parse(encoded.bytes.clone(), AT).expect("valid");
        assert_eq!(frame.ops, encoded.ops, "the encoder locates the ops where parsing finds them");
        let ops: Vec<BatchOp> = frame
            .ops
            .iter()
            .map(|op| match op {
                Op::Put { space, key, value } => BatchOp::Put {
                    space: *space,
                    key: frame.bytes[key.clone()].to_vec(),
                    value: frame.bytes[value.clone()].to_vec(),
                },
                Op::Delete { space, key } => BatchOp::Delete { space: *space, key: frame.bytes[key.clone()].to_vec() },
                Op::Base { .. } => unreachable!("a batch's frame holds no base"),
            })
            .collect();
        assert_eq!(ops, batch().ops());
        assert_eq!(frame.end(), Position { segment: 3, offset: 4096 + frame.bytes.len() as u64 });
    }

    /// Every byte of a frame matters: a flipped bit anywhere, a frame
    /// claimed for another place, or any shorter prefix is not a frame,
    /// except in a `chunks` value's bytes, which the frame names as damaged
    /// (a punched value reads so too).
    #[test]
    fn a_frame_with_any_byte_changed_or_cut_short_is_not_a_frame() {
        let bytes = encode(&batch(), AT).unwrap().bytes;
        let value_at = bytes.windows(300).position(|w| w == [7; 300]).unwrap();
        for at in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[at] ^= 0x10;
            let in_value = (value_at..value_at + 300).contains(&at);
            match Frame::parse(changed, AT) {
                Some(frame) => assert!(in_value && frame.damaged == [1], "byte {at}"),
                None => assert!(!in_value, "byte {at}"),
            }
            assert!(Frame::parse(bytes[..at].to_vec(), AT).is_none(), "cut at {at}");
        }
        assert!(Frame::parse(bytes.clone(), Position { segment: 3, offset: 0 }).is_none());
        assert!(Frame::parse(bytes.clone(), Position { segment: 4, offset: 4096 }).is_none());
        let mut punched = bytes.clone();
        punched[value_at..value_at + 300].fill(0);
        let frame = Frame::parse(punched, AT).expect("the frame is whole without its value's bytes");
        assert_eq!((frame.ops.len(), frame.damaged.as_slice()), (4, [1].as_slice()), "the value is named");
        assert!(Frame::parse(bytes.clone(), AT).unwrap().damaged.is_empty());
    }
}
