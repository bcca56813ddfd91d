//! What decoded Ingest records really hold in memory, counted by an
//! allocator, against what the server's receive budget counts for them
//! (`IngestRecord::held_bytes`) and admits before decoding
//! (`held_bytes_bound`): for the shapes that cost most per byte on the wire
//! (empty records with every field set, a metadata name in each record,
//! the most names a message may carry), decoded and then converted the way
//! the server converts them (the key kept, the metadata map sorted into the
//! version's), the peak stays within the count.
//!
//! The allocator counts per thread, so tests running beside each other do
//! not disturb each other's figures, and charges each allocation as glibc's
//! malloc does (16-byte steps, 8 bytes of header, 32 at least), so rounding
//! is counted.

use std::collections::{BTreeMap, HashMap};

use prost::Message as _;
use wormbox_model::{MAX_USER_METADATA_ENTRIES, ObjectKey, UserMetadata};
use wormbox_proto::v1::{IngestBatchRequest, IngestRecord, Retention};
use wormbox_proto::{MAX_BATCH_METADATA_ENTRIES, MAX_BATCH_RECORDS, Metered, held_bytes_bound};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::peak_of;

/// A record with every field set and as short as it can be, and `names`
/// distinct metadata names of two bytes with empty values.
fn record(names: usize) -> IngestRecord {
    IngestRecord {
        sequence: 1,
        bucket: "b".into(),
        key: "k".into(),
        data: vec![1],
        content_type: "t".into(),
        user_metadata: (0..names).map(|n| (format!("{:02x}", n % 256), String::new())).collect(),
        expected_sha256: vec![2],
        retention: Some(Retention::default()),
        skipped_metadata: 0,
    }
}

/// What the server keeps of a record once it has converted it for the
/// store: the record without its key and metadata, which moved into these.
struct Converted {
    _record: IngestRecord,
    _key: ObjectKey,
    _metadata: UserMetadata,
}

fn convert(mut record: IngestRecord) -> Converted {
    let key = ObjectKey::from_string(std::mem::take(&mut record.key)).unwrap();
    let metadata: HashMap<_, _> = std::mem::take(&mut record.user_metadata);
    let metadata = UserMetadata::new(metadata.into_iter().collect::<BTreeMap<_, _>>()).unwrap();
    Converted { _record: record, _key: key, _metadata: metadata }
}

/// Decodes `wire` as one IngestBatch message and converts each record in
/// turn, keeping all of them, as the server's queue does until they are
/// stored; checks the peak against the records' counts and the admission's.
fn check_batch(records: Vec<IngestRecord>) {
    let wire = IngestBatchRequest::new(records).encode_to_vec();
    let ((held, converted), peak) = peak_of(|| {
        let batch = IngestBatchRequest::decode(&wire[..]).unwrap();
        assert!(!batch.too_many_names());
        let held: usize = batch.records.iter().map(IngestRecord::held_bytes).sum();
        let converted: Vec<_> = batch.records.into_iter().map(convert).collect();
        (held, converted)
    });
    let bound = held_bytes_bound(Metered::Batch, wire.len());
    assert!(peak <= held, "{} records: {peak} bytes at the peak, counted {held}", converted.len());
    assert!(held <= bound, "{} records: counted {held}, admitted at {bound}", converted.len());
}

#[test]
fn empty_records_with_every_field_set_hold_no_more_than_they_are_counted() {
    check_batch((0..MAX_BATCH_RECORDS).map(|_| record(0)).collect());
}

#[test]
fn records_of_one_metadata_name_hold_no_more_than_they_are_counted() {
    check_batch((0..MAX_BATCH_RECORDS).map(|_| record(1)).collect());
    check_batch((0..MAX_BATCH_RECORDS).map(|_| record(2)).collect());
}

#[test]
fn the_most_metadata_names_a_message_carries_hold_no_more_than_they_are_counted() {
    let full = MAX_BATCH_METADATA_ENTRIES / MAX_USER_METADATA_ENTRIES;
    check_batch((0..full).map(|_| record(MAX_USER_METADATA_ENTRIES)).collect());
    check_batch((0..MAX_BATCH_METADATA_ENTRIES / 4).map(|_| record(4)).collect());
    check_batch((0..MAX_BATCH_METADATA_ENTRIES / 9).map(|_| record(9)).collect());
}

#[test]
fn one_ingest_record_holds_no_more_than_its_admission() {
    for names in [0, 1, 7, 8, 33, MAX_USER_METADATA_ENTRIES] {
        let wire = record(names).encode_to_vec();
        let ((held, _converted), peak) = peak_of(|| {
            let record = IngestRecord::decode(&wire[..]).unwrap();
            let held = record.held_bytes();
            (held, convert(record))
        });
        let bound = held_bytes_bound(Metered::Record, wire.len());
        assert!(peak <= held, "{names} names: {peak} bytes at the peak, counted {held}");
        assert!(held <= bound, "{names} names: counted {held}, admitted at {bound}");
    }
}

#[test]
fn a_message_past_the_names_limit_is_not_read_further() {
    // Two records of 64 names more than the limit allows, then a thousand
    // empty ones: decoding keeps the record that crosses the limit and
    // counts, without decoding, every one after it.
    let over = MAX_BATCH_METADATA_ENTRIES / MAX_USER_METADATA_ENTRIES + 1;
    let mut records: Vec<_> = (0..over).map(|_| record(MAX_USER_METADATA_ENTRIES)).collect();
    records.extend((0..1000).map(|_| IngestRecord::default()));
    let wire = IngestBatchRequest::new(records).encode_to_vec();
    let (batch, peak) = peak_of(|| IngestBatchRequest::decode(&wire[..]).unwrap());
    assert!(batch.too_many_names());
    assert_eq!((batch.records.len(), batch.sent()), (over, over + 1000));
    let bound = held_bytes_bound(Metered::Batch, wire.len());
    assert!(peak <= bound, "{peak} bytes at the peak, admitted at {bound}");
}
