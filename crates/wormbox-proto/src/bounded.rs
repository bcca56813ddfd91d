//! The request messages with a repeated field a client can fill with
//! millions of empty entries, decoded by hand rather than generated: a
//! generated decoder builds a struct for every entry before the server can
//! count them, and an empty entry is two bytes on the wire but a struct of
//! tens to hundreds of bytes in memory, so a 4 MiB message of them cost
//! 50 to 500 MiB to refuse. `IngestBatchRequest.records` (at most
//! `MAX_BATCH_RECORDS`), `DeleteObjectsRequest.objects` (at most
//! `MAX_DELETE_OBJECTS`) and `AuditLogRequest.kinds` (at most
//! `MAX_AUDIT_KINDS`).
//!
//! Invariant: decoding keeps at most the limit of entries of a message; the
//! entries beyond it are skipped as they are read, counted but never
//! allocated, so refusing an oversized message costs its bytes. Encoding is
//! exactly the generated form, so any protobuf client speaks it; a unit test
//! checks each type's fields against the descriptor of `archive.proto`.

use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};

use crate::v1::{IngestRecord, ObjectIdentifier};

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

/// The most records one IngestBatch message may hold.
pub const MAX_BATCH_RECORDS: usize = 512;

/// One IngestBatch message: up to `MAX_BATCH_RECORDS` records.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IngestBatchRequest {
    /// The records, in order (after decoding, at most `MAX_BATCH_RECORDS`).
    pub records: Vec<IngestRecord>,
    /// Records the decoded message held beyond `MAX_BATCH_RECORDS`, skipped.
    skipped: usize,
}

impl IngestBatchRequest {
    /// A message of `records`.
    pub fn new(records: Vec<IngestRecord>) -> IngestBatchRequest {
        IngestBatchRequest { records, skipped: 0 }
    }

    /// How many records the message held: those kept and those skipped
    /// beyond `MAX_BATCH_RECORDS`.
    pub fn sent(&self) -> usize {
        self.records.len() + self.skipped
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
            1 if self.records.len() < MAX_BATCH_RECORDS => {
                encoding::message::merge_repeated(wire_type, &mut self.records, buf, ctx)
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
        let decoded_here: [(&str, &[Field]); 3] = [
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
