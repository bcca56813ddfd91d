//! The request messages with a repeated field a client can fill with
//! millions of empty entries, decoded by hand rather than generated: a
//! generated decoder builds a struct for every entry before the server can
//! count them, and an empty entry is two bytes on the wire but a struct of
//! tens to hundreds of bytes in memory, so a 4 MiB message of them cost
//! 50 to 500 MiB to refuse. `IngestBatchRequest.records` (at most
//! `MAX_BATCH_RECORDS`), `DeleteObjectsRequest.objects` (at most
//! `MAX_DELETE_OBJECTS`), `AuditLogRequest.kinds` (at most
//! `MAX_AUDIT_KINDS`), and the user metadata of `IngestRecord` and
//! `PutObjectHeader` (at most `MAX_USER_METADATA_ENTRIES` names; an
//! IngestBatch message at most `MAX_BATCH_METADATA_ENTRIES` in all).
//!
//! Invariant: decoding keeps at most the limit of entries of a message; the
//! entries beyond it are counted as they are read and never kept (a
//! repeated message field's are skipped unread; a metadata entry is decoded
//! into its name and value, which are dropped at once), so refusing an
//! oversized message costs about its bytes. What a kept entry costs in
//! memory beyond its bytes is bounded too, and told to the server's receive
//! budget before the message is read (`held_bytes_bound`) and after it is
//! decoded (`IngestRecord::held_bytes`). Encoding is
//! exactly the generated form, so any protobuf client speaks it; a unit test
//! checks each type's fields against the descriptor of `archive.proto`.

use std::collections::HashMap;

use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};
use wormbox_model::MAX_USER_METADATA_ENTRIES;

use crate::v1::{ObjectIdentifier, Retention};

/// Encodes `value` under `tag` unless it is the default, as proto3 does.
fn encode_if<T: Default + PartialEq>(value: &T, encode: impl FnOnce()) {
    if *value != T::default() {
        encode();
    }
}

/// `len` unless `value` is the default.
fn len_if<T: Default + PartialEq>(value: &T, len: impl FnOnce() -> usize) -> usize {
    if *value != T::default() { len() } else { 0 }
}

/// Skips an entry of a repeated message field past its limit, counting it
/// in `skipped`; refuses a wire type the field cannot have, as generated
/// code would.
fn skip_counted(
    skipped: &mut usize,
    wire_type: WireType,
    tag: u32,
    buf: &mut impl Buf,
    ctx: DecodeContext,
) -> Result<(), prost::DecodeError> {
    encoding::check_wire_type(WireType::LengthDelimited, wire_type)?;
    *skipped += 1;
    encoding::skip_field(wire_type, tag, buf, ctx)
}

/// User metadata as the wire carries it: a `map<string, string>`.
type Metadata = HashMap<String, String>;

/// The most user metadata names one IngestBatch message may carry, over all
/// its records: a record's names cost far more in memory than on the wire,
/// and the server counts what a message may cost before it reads it.
pub const MAX_BATCH_METADATA_ENTRIES: usize = 1024;

/// What a decoded record holds in memory beyond its bytes on the wire, at
/// most, apart from its metadata: its struct, the rounding of its
/// allocations and its conversion for the store (at most about 1.2 KiB with
/// one metadata name, `tests/held_bytes.rs`), and the task that ingests it
/// until it is stored (2.5 KiB in a debug build; the server checks it fits).
pub const RECORD_HELD_BYTES: usize = 4096;

/// What one kept metadata name holds beyond its name's and value's bytes,
/// at most: its slot in the decoded map (half empty at worst), the rounding
/// of its two allocations, and its node share in the version's sorted map
/// (measured: `tests/held_bytes.rs`).
pub const METADATA_ENTRY_HELD_BYTES: usize = 320;

/// The fewest bytes a metadata entry takes on the wire: its tag and length
/// (an empty name and value).
const MIN_ENTRY_WIRE_BYTES: usize = 2;

/// The fewest bytes a record of an IngestBatch message takes on the wire.
const MIN_RECORD_WIRE_BYTES: usize = 2;

/// What a message of `wire` bytes on the wire may hold in memory once
/// decoded and until it is answered, at most: its bytes and what decoding and
/// ingesting build from them. The receive budget takes this much when the
/// message's frame header arrives, before a byte of it is decoded, and
/// returns what it does not hold once it is (`IngestRecord::held_bytes`).
pub fn held_bytes_bound(message: Metered, wire: usize) -> usize {
    let (records, names) = match message {
        Metered::Record => (1, MAX_USER_METADATA_ENTRIES),
        Metered::Batch => (
            (wire / MIN_RECORD_WIRE_BYTES).min(MAX_BATCH_RECORDS),
            // The record that crosses the limit is kept whole.
            MAX_BATCH_METADATA_ENTRIES + MAX_USER_METADATA_ENTRIES,
        ),
    };
    let names = names.min(wire / MIN_ENTRY_WIRE_BYTES);
    wire + records * RECORD_HELD_BYTES + names * METADATA_ENTRY_HELD_BYTES
}

/// The shapes of metered request messages, for `held_bytes_bound`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metered {
    /// One record or its like: an Ingest message, or a PutObject message
    /// (a header, with metadata, or a piece of the body).
    Record,
    /// An IngestBatch message.
    Batch,
}

/// One entry of a `map<string, string>` field, as the wire carries it.
#[derive(Clone, PartialEq, prost::Message)]
struct MetadataEntry {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}

/// Merges one entry of a metadata map field: kept when its name is already
/// there (the later value wins, as generated code has it) or the map has
/// room for one more name; otherwise counted in `skipped` and dropped, so
/// the map holds at most `MAX_USER_METADATA_ENTRIES` names.
fn merge_metadata(
    map: &mut Metadata,
    skipped: &mut usize,
    wire_type: WireType,
    buf: &mut impl Buf,
    ctx: DecodeContext,
) -> Result<(), prost::DecodeError> {
    let mut entry = MetadataEntry::default();
    encoding::message::merge(wire_type, &mut entry, buf, ctx)?;
    if map.len() < MAX_USER_METADATA_ENTRIES || map.contains_key(&entry.name) {
        map.insert(entry.name, entry.value);
    } else {
        *skipped += 1;
    }
    Ok(())
}

fn encode_metadata(tag: u32, map: &Metadata, buf: &mut impl BufMut) {
    use encoding::string;
    encoding::hash_map::encode(string::encode, string::encoded_len, string::encode, string::encoded_len, tag, map, buf);
}

fn metadata_len(tag: u32, map: &Metadata) -> usize {
    use encoding::string;
    encoding::hash_map::encoded_len(string::encoded_len, string::encoded_len, tag, map)
}

/// One record of an Ingest stream or an IngestBatch message.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IngestRecord {
    /// Chosen by the client and echoed in the ack.
    pub sequence: u64,
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// The record's bytes.
    pub data: Vec<u8>,
    /// The content type.
    pub content_type: String,
    /// User metadata (after decoding, at most `MAX_USER_METADATA_ENTRIES`
    /// names).
    pub user_metadata: Metadata,
    /// If set (32 bytes), the data must hash to it or nothing is stored.
    pub expected_sha256: Vec<u8>,
    /// Object Lock buckets only; the bucket's default applies when absent.
    pub retention: Option<Retention>,
    /// Set by decoding, never encoded: metadata entries the record held
    /// beyond `MAX_USER_METADATA_ENTRIES` names, skipped.
    pub skipped_metadata: usize,
}

impl IngestRecord {
    /// What this decoded record holds in memory until it is stored, at most
    /// (see `RECORD_HELD_BYTES`).
    pub fn held_bytes(&self) -> usize {
        use prost::Message as _;
        self.encoded_len() + RECORD_HELD_BYTES + self.user_metadata.len() * METADATA_ENTRY_HELD_BYTES
    }
}

impl prost::Message for IngestRecord {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encode_if(&self.sequence, || encoding::uint64::encode(1, &self.sequence, buf));
        encode_if(&self.bucket, || encoding::string::encode(2, &self.bucket, buf));
        encode_if(&self.key, || encoding::string::encode(3, &self.key, buf));
        encode_if(&self.data, || encoding::bytes::encode(4, &self.data, buf));
        encode_if(&self.content_type, || encoding::string::encode(5, &self.content_type, buf));
        encode_metadata(6, &self.user_metadata, buf);
        encode_if(&self.expected_sha256, || encoding::bytes::encode(7, &self.expected_sha256, buf));
        if let Some(retention) = &self.retention {
            encoding::message::encode(8, retention, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        match tag {
            1 => encoding::uint64::merge(wire_type, &mut self.sequence, buf, ctx),
            2 => encoding::string::merge(wire_type, &mut self.bucket, buf, ctx),
            3 => encoding::string::merge(wire_type, &mut self.key, buf, ctx),
            4 => encoding::bytes::merge(wire_type, &mut self.data, buf, ctx),
            5 => encoding::string::merge(wire_type, &mut self.content_type, buf, ctx),
            6 => merge_metadata(&mut self.user_metadata, &mut self.skipped_metadata, wire_type, buf, ctx),
            7 => encoding::bytes::merge(wire_type, &mut self.expected_sha256, buf, ctx),
            8 => encoding::message::merge(wire_type, self.retention.get_or_insert_with(Default::default), buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        len_if(&self.sequence, || encoding::uint64::encoded_len(1, &self.sequence))
            + len_if(&self.bucket, || encoding::string::encoded_len(2, &self.bucket))
            + len_if(&self.key, || encoding::string::encoded_len(3, &self.key))
            + len_if(&self.data, || encoding::bytes::encoded_len(4, &self.data))
            + len_if(&self.content_type, || encoding::string::encoded_len(5, &self.content_type))
            + metadata_len(6, &self.user_metadata)
            + len_if(&self.expected_sha256, || encoding::bytes::encoded_len(7, &self.expected_sha256))
            + self.retention.as_ref().map_or(0, |r| encoding::message::encoded_len(8, r))
    }

    fn clear(&mut self) {
        *self = IngestRecord::default();
    }
}

/// The first message of a PutObject stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PutObjectHeader {
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// The content type.
    pub content_type: String,
    /// At most 2 KiB of names and values together (after decoding, at most
    /// `MAX_USER_METADATA_ENTRIES` names).
    pub user_metadata: Metadata,
    /// If set (32 bytes), the body must hash to it or nothing is stored.
    pub expected_sha256: Vec<u8>,
    /// Object Lock buckets only; the bucket's default applies when absent.
    pub retention: Option<Retention>,
    /// Places this legal hold (case id) at once; admin only.
    pub legal_hold: String,
    /// Set by decoding, never encoded: metadata entries the header held
    /// beyond `MAX_USER_METADATA_ENTRIES` names, skipped.
    pub skipped_metadata: usize,
}

impl prost::Message for PutObjectHeader {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encode_if(&self.bucket, || encoding::string::encode(1, &self.bucket, buf));
        encode_if(&self.key, || encoding::string::encode(2, &self.key, buf));
        encode_if(&self.content_type, || encoding::string::encode(3, &self.content_type, buf));
        encode_metadata(4, &self.user_metadata, buf);
        encode_if(&self.expected_sha256, || encoding::bytes::encode(5, &self.expected_sha256, buf));
        if let Some(retention) = &self.retention {
            encoding::message::encode(6, retention, buf);
        }
        encode_if(&self.legal_hold, || encoding::string::encode(7, &self.legal_hold, buf));
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        match tag {
            1 => encoding::string::merge(wire_type, &mut self.bucket, buf, ctx),
            2 => encoding::string::merge(wire_type, &mut self.key, buf, ctx),
            3 => encoding::string::merge(wire_type, &mut self.content_type, buf, ctx),
            4 => merge_metadata(&mut self.user_metadata, &mut self.skipped_metadata, wire_type, buf, ctx),
            5 => encoding::bytes::merge(wire_type, &mut self.expected_sha256, buf, ctx),
            6 => encoding::message::merge(wire_type, self.retention.get_or_insert_with(Default::default), buf, ctx),
            7 => encoding::string::merge(wire_type, &mut self.legal_hold, buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        len_if(&self.bucket, || encoding::string::encoded_len(1, &self.bucket))
            + len_if(&self.key, || encoding::string::encoded_len(2, &self.key))
            + len_if(&self.content_type, || encoding::string::encoded_len(3, &self.content_type))
            + metadata_len(4, &self.user_metadata)
            + len_if(&self.expected_sha256, || encoding::bytes::encoded_len(5, &self.expected_sha256))
            + self.retention.as_ref().map_or(0, |r| encoding::message::encoded_len(6, r))
            + len_if(&self.legal_hold, || encoding::string::encoded_len(7, &self.legal_hold))
    }

    fn clear(&mut self) {
        *self = PutObjectHeader::default();
    }
}

/// The most records one IngestBatch message may hold.
pub const MAX_BATCH_RECORDS: usize = 512;

/// One IngestBatch message: up to `MAX_BATCH_RECORDS` records.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IngestBatchRequest {
    /// The records, in order (after decoding, at most `MAX_BATCH_RECORDS`).
    pub records: Vec<IngestRecord>,
    /// Records the decoded message held beyond `MAX_BATCH_RECORDS`, or
    /// after its metadata names passed `MAX_BATCH_METADATA_ENTRIES`, skipped.
    skipped: usize,
    /// Metadata names kept in the records kept (a record's names beyond
    /// its own limit are skipped, and refuse that record only).
    names: usize,
}

impl IngestBatchRequest {
    /// A message of `records`.
    pub fn new(records: Vec<IngestRecord>) -> IngestBatchRequest {
        IngestBatchRequest { records, skipped: 0, names: 0 }
    }

    /// How many records the message held: those kept and those skipped
    /// beyond `MAX_BATCH_RECORDS`.
    pub fn sent(&self) -> usize {
        self.records.len() + self.skipped
    }

    /// Whether the message's records carry more than
    /// `MAX_BATCH_METADATA_ENTRIES` metadata names in all. Decoding stops
    /// keeping records at the one that passes the limit.
    pub fn too_many_names(&self) -> bool {
        self.names > MAX_BATCH_METADATA_ENTRIES
    }
}

impl prost::Message for IngestBatchRequest {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encoding::message::encode_repeated(1, &self.records, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        match tag {
            1 if self.records.len() < MAX_BATCH_RECORDS && !self.too_many_names() => {
                encoding::message::merge_repeated(wire_type, &mut self.records, buf, ctx)?;
                let record = self.records.last().expect("just merged");
                self.names += record.user_metadata.len();
                Ok(())
            }
            1 => skip_counted(&mut self.skipped, wire_type, tag, buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        encoding::message::encoded_len_repeated(1, &self.records)
    }

    fn clear(&mut self) {
        self.records.clear();
        self.skipped = 0;
        self.names = 0;
    }
}

/// The most entries one DeleteObjects request may name (S3's limit).
pub const MAX_DELETE_OBJECTS: usize = 1000;

/// A DeleteObjects request: up to `MAX_DELETE_OBJECTS` entries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeleteObjectsRequest {
    /// The bucket.
    pub bucket: String,
    /// The entries (after decoding, at most `MAX_DELETE_OBJECTS`).
    pub objects: Vec<ObjectIdentifier>,
    /// `SERIAL CODE`, covering every permanent delete of the request.
    pub mfa: String,
    /// Purge versions under GOVERNANCE retention (needs the bypass right).
    pub bypass_governance: bool,
    /// Answer only the entries that failed.
    pub quiet: bool,
    /// Set by decoding, never encoded: entries the message held beyond
    /// `MAX_DELETE_OBJECTS`, skipped.
    pub skipped_objects: usize,
}

impl DeleteObjectsRequest {
    /// How many entries the request named: those kept and those skipped.
    pub fn named(&self) -> usize {
        self.objects.len() + self.skipped_objects
    }
}

impl prost::Message for DeleteObjectsRequest {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encode_if(&self.bucket, || encoding::string::encode(1, &self.bucket, buf));
        encoding::message::encode_repeated(2, &self.objects, buf);
        encode_if(&self.mfa, || encoding::string::encode(3, &self.mfa, buf));
        encode_if(&self.bypass_governance, || encoding::bool::encode(4, &self.bypass_governance, buf));
        encode_if(&self.quiet, || encoding::bool::encode(5, &self.quiet, buf));
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        match tag {
            1 => encoding::string::merge(wire_type, &mut self.bucket, buf, ctx),
            2 if self.objects.len() < MAX_DELETE_OBJECTS => {
                encoding::message::merge_repeated(wire_type, &mut self.objects, buf, ctx)
            }
            2 => skip_counted(&mut self.skipped_objects, wire_type, tag, buf, ctx),
            3 => encoding::string::merge(wire_type, &mut self.mfa, buf, ctx),
            4 => encoding::bool::merge(wire_type, &mut self.bypass_governance, buf, ctx),
            5 => encoding::bool::merge(wire_type, &mut self.quiet, buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        len_if(&self.bucket, || encoding::string::encoded_len(1, &self.bucket))
            + encoding::message::encoded_len_repeated(2, &self.objects)
            + len_if(&self.mfa, || encoding::string::encoded_len(3, &self.mfa))
            + len_if(&self.bypass_governance, || encoding::bool::encoded_len(4, &self.bypass_governance))
            + len_if(&self.quiet, || encoding::bool::encoded_len(5, &self.quiet))
    }

    fn clear(&mut self) {
        *self = DeleteObjectsRequest::default();
    }
}

/// The most kinds one AuditLog request may name (there are eight; a
/// client may repeat them).
pub const MAX_AUDIT_KINDS: usize = 64;

/// An AuditLog request: its filter, with up to `MAX_AUDIT_KINDS` kinds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditLogRequest {
    /// Compliance-clock bounds, inclusive; 0 for none.
    pub since_unix_micros: i64,
    /// Compliance-clock bounds, inclusive; 0 for none.
    pub until_unix_micros: i64,
    /// Only this bucket's entries; empty for all.
    pub bucket: String,
    /// Only keys under this prefix; empty for all.
    pub key_prefix: String,
    /// An access key id, or `system`; empty for all.
    pub principal: String,
    /// Any of writes, markers, purges, retention, configuration, mfa,
    /// refused, integrity; empty for all (after decoding, at most
    /// `MAX_AUDIT_KINDS`).
    pub kinds: Vec<String>,
    /// Sequence bounds, inclusive; 0 for none.
    pub from_sequence: u64,
    /// Sequence bounds, inclusive; 0 for none.
    pub to_sequence: u64,
    /// Set by decoding, never encoded: kinds the request named beyond
    /// `MAX_AUDIT_KINDS`, skipped.
    pub skipped_kinds: usize,
}

impl prost::Message for AuditLogRequest {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encode_if(&self.since_unix_micros, || encoding::int64::encode(1, &self.since_unix_micros, buf));
        encode_if(&self.until_unix_micros, || encoding::int64::encode(2, &self.until_unix_micros, buf));
        encode_if(&self.bucket, || encoding::string::encode(3, &self.bucket, buf));
        encode_if(&self.key_prefix, || encoding::string::encode(4, &self.key_prefix, buf));
        encode_if(&self.principal, || encoding::string::encode(5, &self.principal, buf));
        encoding::string::encode_repeated(6, &self.kinds, buf);
        encode_if(&self.from_sequence, || encoding::uint64::encode(7, &self.from_sequence, buf));
        encode_if(&self.to_sequence, || encoding::uint64::encode(8, &self.to_sequence, buf));
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        match tag {
            1 => encoding::int64::merge(wire_type, &mut self.since_unix_micros, buf, ctx),
            2 => encoding::int64::merge(wire_type, &mut self.until_unix_micros, buf, ctx),
            3 => encoding::string::merge(wire_type, &mut self.bucket, buf, ctx),
            4 => encoding::string::merge(wire_type, &mut self.key_prefix, buf, ctx),
            5 => encoding::string::merge(wire_type, &mut self.principal, buf, ctx),
            6 if self.kinds.len() < MAX_AUDIT_KINDS => {
                encoding::string::merge_repeated(wire_type, &mut self.kinds, buf, ctx)
            }
            6 => skip_counted(&mut self.skipped_kinds, wire_type, tag, buf, ctx),
            7 => encoding::uint64::merge(wire_type, &mut self.from_sequence, buf, ctx),
            8 => encoding::uint64::merge(wire_type, &mut self.to_sequence, buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        len_if(&self.since_unix_micros, || encoding::int64::encoded_len(1, &self.since_unix_micros))
            + len_if(&self.until_unix_micros, || encoding::int64::encoded_len(2, &self.until_unix_micros))
            + len_if(&self.bucket, || encoding::string::encoded_len(3, &self.bucket))
            + len_if(&self.key_prefix, || encoding::string::encoded_len(4, &self.key_prefix))
            + len_if(&self.principal, || encoding::string::encoded_len(5, &self.principal))
            + encoding::string::encoded_len_repeated(6, &self.kinds)
            + len_if(&self.from_sequence, || encoding::uint64::encoded_len(7, &self.from_sequence))
            + len_if(&self.to_sequence, || encoding::uint64::encoded_len(8, &self.to_sequence))
    }

    fn clear(&mut self) {
        *self = AuditLogRequest::default();
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn record(n: u64) -> IngestRecord {
        IngestRecord {
            sequence: n,
            bucket: "b".into(),
            key: format!("k{n}"),
            data: vec![n as u8; 3],
            ..Default::default()
        }
    }

    /// The generated type the hand-written one stands in for: field 1,
    /// repeated `IngestRecord`, as `archive.proto` declares it.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Generated {
        #[prost(message, repeated, tag = "1")]
        records: Vec<IngestRecord>,
    }

    #[test]
    fn it_encodes_and_decodes_as_the_generated_type_would() {
        let records: Vec<_> = (0..7).map(record).collect();
        let ours = IngestBatchRequest::new(records.clone()).encode_to_vec();
        let theirs = Generated { records: records.clone() }.encode_to_vec();
        assert_eq!(ours, theirs);
        let decoded = IngestBatchRequest::decode(&theirs[..]).unwrap();
        assert_eq!((decoded.sent(), decoded.records), (7, records));
        // An unknown field is skipped, as generated code skips it.
        let mut with_unknown = theirs.clone();
        with_unknown.extend_from_slice(&[0x10, 0x2a]);
        assert_eq!(IngestBatchRequest::decode(&with_unknown[..]).unwrap().sent(), 7);
    }

    fn declared(name: &str) -> Vec<(String, i32, String)> {
        let set = prost_types::FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET).unwrap();
        let message = set
            .file
            .iter()
            .flat_map(|file| &file.message_type)
            .find(|message| message.name() == name)
            .unwrap_or_else(|| panic!("archive.proto declares {name}"));
        let kind = |f: &prost_types::FieldDescriptorProto| format!("{:?}{}", f.r#type(), f.type_name());
        message.field.iter().map(|f| (f.name().to_owned(), f.number(), kind(f))).collect()
    }

    #[test]
    fn the_proto_declares_exactly_the_fields_decoded_here() {
        // Each message: its fields' names, numbers and types.
        type Field = (&'static str, i32, &'static str);
        let decoded_here: [(&str, &[Field]); 5] = [
            (
                "IngestRecord",
                &[
                    ("sequence", 1, "Uint64"),
                    ("bucket", 2, "String"),
                    ("key", 3, "String"),
                    ("data", 4, "Bytes"),
                    ("content_type", 5, "String"),
                    ("user_metadata", 6, "Message.wormbox.v1.IngestRecord.UserMetadataEntry"),
                    ("expected_sha256", 7, "Bytes"),
                    ("retention", 8, "Message.wormbox.v1.Retention"),
                ],
            ),
            (
                "PutObjectHeader",
                &[
                    ("bucket", 1, "String"),
                    ("key", 2, "String"),
                    ("content_type", 3, "String"),
                    ("user_metadata", 4, "Message.wormbox.v1.PutObjectHeader.UserMetadataEntry"),
                    ("expected_sha256", 5, "Bytes"),
                    ("retention", 6, "Message.wormbox.v1.Retention"),
                    ("legal_hold", 7, "String"),
                ],
            ),
            ("IngestBatchRequest", &[("records", 1, "Message.wormbox.v1.IngestRecord")]),
            (
                "DeleteObjectsRequest",
                &[
                    ("bucket", 1, "String"),
                    ("objects", 2, "Message.wormbox.v1.ObjectIdentifier"),
                    ("mfa", 3, "String"),
                    ("bypass_governance", 4, "Bool"),
                    ("quiet", 5, "Bool"),
                ],
            ),
            (
                "AuditLogRequest",
                &[
                    ("since_unix_micros", 1, "Int64"),
                    ("until_unix_micros", 2, "Int64"),
                    ("bucket", 3, "String"),
                    ("key_prefix", 4, "String"),
                    ("principal", 5, "String"),
                    ("kinds", 6, "String"),
                    ("from_sequence", 7, "Uint64"),
                    ("to_sequence", 8, "Uint64"),
                ],
            ),
        ];
        for (name, fields) in decoded_here {
            let fields: Vec<_> = fields.iter().map(|(n, t, k)| (n.to_string(), *t, k.to_string())).collect();
            assert_eq!(declared(name), fields, "{name}: update bounded.rs with the proto");
        }
    }

    /// The generated type `AuditLogRequest` stands in for.
    #[derive(Clone, PartialEq, prost::Message)]
    struct GeneratedAudit {
        #[prost(int64, tag = "1")]
        since_unix_micros: i64,
        #[prost(int64, tag = "2")]
        until_unix_micros: i64,
        #[prost(string, tag = "3")]
        bucket: String,
        #[prost(string, tag = "4")]
        key_prefix: String,
        #[prost(string, tag = "5")]
        principal: String,
        #[prost(string, repeated, tag = "6")]
        kinds: Vec<String>,
        #[prost(uint64, tag = "7")]
        from_sequence: u64,
        #[prost(uint64, tag = "8")]
        to_sequence: u64,
    }

    #[test]
    fn audit_log_encodes_and_decodes_as_the_generated_type_would() {
        for (n, kinds) in [(0i64, vec![]), (-5, vec!["writes".to_owned(), String::new(), "mfa".to_owned()])] {
            let theirs = GeneratedAudit {
                since_unix_micros: n,
                until_unix_micros: n * 7,
                bucket: if n == 0 { String::new() } else { "b".into() },
                key_prefix: "p/".into(),
                principal: String::new(),
                kinds: kinds.clone(),
                from_sequence: n.unsigned_abs(),
                to_sequence: 9,
            };
            let ours = AuditLogRequest::decode(&theirs.encode_to_vec()[..]).unwrap();
            assert_eq!(ours.kinds, kinds);
            assert_eq!(ours.encode_to_vec(), theirs.encode_to_vec());
            assert_eq!(ours.encoded_len(), theirs.encoded_len());
        }
        let mut many = [0x32, 0x00].repeat(1_000_000);
        many.extend_from_slice(&[0x40, 0x07]);
        let decoded = AuditLogRequest::decode(&many[..]).unwrap();
        assert_eq!((decoded.kinds.len(), decoded.skipped_kinds), (MAX_AUDIT_KINDS, 1_000_000 - MAX_AUDIT_KINDS));
        assert_eq!(decoded.to_sequence, 7);
    }

    /// The generated type `DeleteObjectsRequest` stands in for.
    #[derive(Clone, PartialEq, prost::Message)]
    struct GeneratedDelete {
        #[prost(string, tag = "1")]
        bucket: String,
        #[prost(message, repeated, tag = "2")]
        objects: Vec<ObjectIdentifier>,
        #[prost(string, tag = "3")]
        mfa: String,
        #[prost(bool, tag = "4")]
        bypass_governance: bool,
        #[prost(bool, tag = "5")]
        quiet: bool,
    }

    #[test]
    fn delete_objects_encodes_and_decodes_as_the_generated_type_would() {
        let objects: Vec<_> = (0..5)
            .map(|n| ObjectIdentifier {
                key: format!("k{n}"),
                version_id: if n % 2 == 0 { String::new() } else { "v".into() },
            })
            .collect();
        for (mfa, bypass, quiet) in [("", false, false), ("SERIAL 123456", true, true)] {
            let ours = DeleteObjectsRequest {
                bucket: "b".into(),
                objects: objects.clone(),
                mfa: mfa.into(),
                bypass_governance: bypass,
                quiet,
                ..Default::default()
            };
            let theirs = GeneratedDelete {
                bucket: "b".into(),
                objects: objects.clone(),
                mfa: mfa.into(),
                bypass_governance: bypass,
                quiet,
            };
            assert_eq!(ours.encode_to_vec(), theirs.encode_to_vec());
            assert_eq!(ours.encoded_len(), theirs.encoded_len());
            assert_eq!(DeleteObjectsRequest::decode(&theirs.encode_to_vec()[..]).unwrap(), ours);
        }
        // Past the limit: counted, not kept; the other fields still read.
        let mut many = [0x12, 0x00].repeat(1_000_000);
        many.extend_from_slice(&[0x0a, 0x01, b'b', 0x28, 0x01]);
        let decoded = DeleteObjectsRequest::decode(&many[..]).unwrap();
        assert_eq!((decoded.objects.len(), decoded.named()), (MAX_DELETE_OBJECTS, 1_000_000));
        assert!(decoded.objects.capacity() <= 2 * MAX_DELETE_OBJECTS);
        assert_eq!((decoded.bucket.as_str(), decoded.quiet), ("b", true));
    }

    /// The generated type `IngestRecord` stands in for.
    #[derive(Clone, PartialEq, prost::Message)]
    struct GeneratedRecord {
        #[prost(uint64, tag = "1")]
        sequence: u64,
        #[prost(string, tag = "2")]
        bucket: String,
        #[prost(string, tag = "3")]
        key: String,
        #[prost(bytes = "vec", tag = "4")]
        data: Vec<u8>,
        #[prost(string, tag = "5")]
        content_type: String,
        #[prost(map = "string, string", tag = "6")]
        user_metadata: Metadata,
        #[prost(bytes = "vec", tag = "7")]
        expected_sha256: Vec<u8>,
        #[prost(message, optional, tag = "8")]
        retention: Option<Retention>,
    }

    /// The generated type `PutObjectHeader` stands in for.
    #[derive(Clone, PartialEq, prost::Message)]
    struct GeneratedHeader {
        #[prost(string, tag = "1")]
        bucket: String,
        #[prost(string, tag = "2")]
        key: String,
        #[prost(string, tag = "3")]
        content_type: String,
        #[prost(map = "string, string", tag = "4")]
        user_metadata: Metadata,
        #[prost(bytes = "vec", tag = "5")]
        expected_sha256: Vec<u8>,
        #[prost(message, optional, tag = "6")]
        retention: Option<Retention>,
        #[prost(string, tag = "7")]
        legal_hold: String,
    }

    /// Metadata of one entry (encoding order of several would follow each
    /// map's own hasher), or none.
    fn one_entry(n: usize) -> Metadata {
        (0..n.min(1)).map(|i| (format!("case{i}"), "SEC-17".to_owned())).collect()
    }

    #[test]
    fn ingest_records_encode_and_decode_as_the_generated_type_would() {
        for n in [0u64, 1, 300] {
            let retention = (n > 0).then_some(Retention { mode: 2, retain_until_unix_micros: 7 * n as i64 });
            let theirs = GeneratedRecord {
                sequence: n,
                bucket: "b".into(),
                key: if n == 0 { String::new() } else { format!("k{n}") },
                data: vec![n as u8; n as usize],
                content_type: "text/plain".into(),
                user_metadata: one_entry(n as usize),
                expected_sha256: vec![9; 32 * n.min(1) as usize],
                retention,
            };
            let ours = IngestRecord::decode(&theirs.encode_to_vec()[..]).unwrap();
            assert_eq!(ours.encode_to_vec(), theirs.encode_to_vec());
            assert_eq!(ours.encoded_len(), theirs.encoded_len());
            assert_eq!((ours.sequence, ours.retention, ours.user_metadata), (n, retention, one_entry(n as usize)));
        }
    }

    #[test]
    fn put_object_headers_encode_and_decode_as_the_generated_type_would() {
        for n in [0usize, 1] {
            let theirs = GeneratedHeader {
                bucket: "b".into(),
                key: "k".into(),
                content_type: String::new(),
                user_metadata: one_entry(n),
                expected_sha256: vec![1; 32 * n],
                retention: (n > 0).then_some(Retention { mode: 1, retain_until_unix_micros: 5 }),
                legal_hold: if n > 0 { "case".into() } else { String::new() },
            };
            let ours = PutObjectHeader::decode(&theirs.encode_to_vec()[..]).unwrap();
            assert_eq!(ours.encode_to_vec(), theirs.encode_to_vec());
            assert_eq!(ours.encoded_len(), theirs.encoded_len());
            assert_eq!((ours.user_metadata, ours.legal_hold), (theirs.user_metadata, theirs.legal_hold));
        }
    }

    /// `n` metadata entries, each a distinct name of its own, under `tag`:
    /// about six bytes each on the wire.
    fn metadata_entries(tag: u8, n: usize) -> Vec<u8> {
        let mut wire = Vec::new();
        for i in 0..n {
            let name = format!("{i:x}");
            wire.extend_from_slice(&[(tag << 3) | 2, name.len() as u8 + 2, 0x0a, name.len() as u8]);
            wire.extend_from_slice(name.as_bytes());
        }
        wire
    }

    #[test]
    fn metadata_names_beyond_the_limit_are_counted_not_kept() {
        let mut record = metadata_entries(6, 500_000);
        // A name already kept is still replaced (the later value wins), and
        // fields after the metadata are read.
        record.extend_from_slice(&[0x32, 0x07, 0x0a, 0x01, b'0', 0x12, 0x02, b'v', b'2', 0x08, 0x05]);
        let decoded = IngestRecord::decode(&record[..]).unwrap();
        assert_eq!(decoded.user_metadata.len(), MAX_USER_METADATA_ENTRIES);
        assert_eq!(decoded.skipped_metadata, 500_000 - MAX_USER_METADATA_ENTRIES);
        assert_eq!((decoded.user_metadata["0"].as_str(), decoded.sequence), ("v2", 5));
        assert_eq!(decoded.encode_to_vec().len(), decoded.encoded_len());

        let header = PutObjectHeader::decode(&metadata_entries(4, 65)[..]).unwrap();
        assert_eq!((header.user_metadata.len(), header.skipped_metadata), (MAX_USER_METADATA_ENTRIES, 1));
        // Repeating one name a million times keeps one entry and skips none.
        let same = [0x22, 0x05, 0x0a, 0x01, b'a', 0x12, 0x00].repeat(1_000_000);
        let header = PutObjectHeader::decode(&same[..]).unwrap();
        assert_eq!((header.user_metadata.len(), header.skipped_metadata), (1, 0));
        // A metadata field of another wire type is refused (generated map code
        // does not look at the wire type; this is stricter, never looser).
        assert!(PutObjectHeader::decode(&[0x20, 0x01][..]).is_err());
    }

    #[test]
    fn records_beyond_the_limit_are_counted_not_kept() {
        // Two bytes each on the wire: an empty record.
        let many = [0x0a, 0x00].repeat(1_000_000);
        let decoded = IngestBatchRequest::decode(&many[..]).unwrap();
        assert_eq!(decoded.records.len(), MAX_BATCH_RECORDS);
        assert!(decoded.records.capacity() <= 2 * MAX_BATCH_RECORDS, "{}", decoded.records.capacity());
        assert_eq!(decoded.sent(), 1_000_000);
        // A field 1 of another wire type is refused, as generated code refuses it.
        let mut wrong = [0x0a, 0x00].repeat(MAX_BATCH_RECORDS);
        wrong.extend_from_slice(&[0x08, 0x01]);
        assert!(IngestBatchRequest::decode(&wrong[..]).is_err());
    }
}
