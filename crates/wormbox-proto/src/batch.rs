//! `wormbox.v1.IngestBatchRequest`, decoded by hand rather than generated:
//! a generated decoder would build a struct for every record in a message
//! before the server could count them, and an empty record is two bytes on
//! the wire but a struct of a few hundred bytes in memory, so a 4 MiB
//! message of empty records would cost about half a gigabyte to refuse.
//!
//! Invariant: decoding keeps at most `MAX_BATCH_RECORDS` records of a
//! message; the records beyond them are skipped as they are read, counted
//! but never allocated, so refusing an oversized message costs its bytes.
//! Encoding is exactly the generated form (field 1, repeated
//! `IngestRecord`), so any protobuf client speaks it.

use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};

use crate::v1::IngestRecord;

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
            1 => {
                encoding::check_wire_type(WireType::LengthDelimited, wire_type)?;
                self.skipped += 1;
                encoding::skip_field(wire_type, tag, buf, ctx)
            }
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

    #[test]
    fn the_proto_declares_exactly_the_fields_decoded_here() {
        let set = prost_types::FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET).unwrap();
        let message = set
            .file
            .iter()
            .flat_map(|file| &file.message_type)
            .find(|message| message.name() == "IngestBatchRequest")
            .expect("archive.proto declares IngestBatchRequest");
        let fields: Vec<_> = message.field.iter().map(|f| (f.name(), f.number(), f.type_name())).collect();
        assert_eq!(fields, [("records", 1, ".wormbox.v1.IngestRecord")], "update batch.rs with the proto");
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
