//! The S3 front door end to end: one appliance's replicator (the project's
//! own S3 client, written against Ceph RGW and SeaweedFS) keeps its
//! duplicate copy on a second appliance's S3 endpoint, which must hold every
//! version with its lock, hold and metadata, every marker and the signed
//! ledger, and pass `verify --replica` (everything read back); the second
//! appliance's own ledger records each S3 write as the gRPC write it is.

use std::time::Duration;

use wormbox_proto::v1;
use wormbox_replica::{EntryKind, LockMode};
use wormbox_test_utils::TestAppliance;
use wormbox_test_utils::s3_targets::{appliance_with, rule};

use super::replication::{put, replicated, retention};

#[tokio::test(flavor = "multi_thread")]
async fn one_appliance_keeps_its_duplicate_copy_on_another_ones_s3_endpoint() {
    // B, the replica: an Object Lock bucket made over S3 by a principal with
    // an S3 key (an admin: S3 legal holds are placed with the hold right).
    let b = TestAppliance::start().await.unwrap();
    let (access, secret) = b.s3_principal("replicator", v1::Role::Admin).await.unwrap();
    let replica = b.s3_client("replica", &access, &secret);
    replica.create_bucket(true).await.unwrap();
    let lock = replica.bucket_lock_configuration().await.unwrap();
    assert!(lock.enabled, "{lock:?}");

    // A, the source, replicating to B's S3 endpoint.
    let a = appliance_with(rule(&b.s3_endpoint(), "replica", "", "async", 30_000), format!("{access}:{secret}"))
        .await
        .unwrap();
    let owner = a.principal("owner", v1::Role::Writer).await.unwrap();
    let auditor = a.principal("officer", v1::Role::Auditor).await.unwrap();
    let mut archive = a.archive_as(&owner).await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: "records".into(), object_lock: true }).await.unwrap();
    let first = put(&mut archive, "trade/1.pdf", b"first record", Some(retention(400))).await;
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i| (i % 251) as u8).collect();
    let second = put(&mut archive, "trade/2.bin", &big, None).await;
    a.compliance_as(&auditor)
        .await
        .unwrap()
        .put_object_legal_hold(v1::PutObjectLegalHoldRequest {
            bucket: "records".into(),
            key: "trade/2.bin".into(),
            version_id: second.version_id.clone(),
            case_id: "SEC-2026-7".into(),
            place: true,
            ..Default::default()
        })
        .await
        .unwrap();
    archive
        .delete_object(v1::DeleteObjectRequest {
            bucket: "records".into(),
            key: "trade/1.pdf".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut compliance = a.compliance_as(&auditor).await.unwrap();
    compliance.get_checkpoint(v1::GetCheckpointRequest::default()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(120), replicated(&a, 1)).await.unwrap();
    let status = a.server().app().replication().statuses().remove(0);
    assert_eq!(status.last_error, None);

    // A reads everything back from B and finds it whole.
    let report = compliance.verify_replica(v1::VerifyReplicaRequest { rule: "dr".into() }).await.unwrap().into_inner();
    assert!(report.ok, "{report:?}");
    assert_eq!((report.versions_checked, report.markers_checked), (2, 1), "{report:?}");
    assert!(report.checkpoints_checked >= 1 && report.ledger_ranges_checked >= 1, "{report:?}");

    // B holds them under its own rules: the lock, the hold, the marker.
    let page = replica.list_object_versions(Some("trade/"), None, None, 100).await.unwrap();
    assert_eq!(page.versions().count(), 2, "{page:?}");
    assert_eq!(page.delete_markers().count(), 1, "{page:?}");
    let copy = page.entries.iter().find(|e| e.kind == EntryKind::Version && e.key == "trade/1.pdf").unwrap();
    let head = replica.head_object("trade/1.pdf", Some(&copy.version_id)).await.unwrap();
    assert_eq!(head.lock.map(|(m, _)| m), Some(LockMode::Compliance));
    let source = head.metadata.iter().find(|(n, _)| n == wormbox_replica::layout::META_VERSION).unwrap();
    assert_eq!(source.1, first.version_id, "the copy names its source version");
    let held = page.entries.iter().find(|e| e.kind == EntryKind::Version && e.key == "trade/2.bin").unwrap();
    assert!(replica.get_object_legal_hold("trade/2.bin", Some(&held.version_id)).await.unwrap());
    let refused = replica.delete_object("trade/1.pdf", Some(&copy.version_id), None).await.unwrap_err();
    assert_eq!(refused.status(), Some(403), "B refuses to destroy the locked copy: {refused}");

    // B's own ledger has each S3 write as its principal's, and verifies.
    let mut b_compliance = b.compliance().await.unwrap();
    let integrity = b_compliance.verify_integrity(v1::VerifyIntegrityRequest::default()).await.unwrap().into_inner();
    assert!(integrity.ok, "{integrity:?}");
    let store = b.server().app().store().clone();
    let entries = store.ledger_entries(1).unwrap();
    let writes: Vec<_> = entries.iter().map(|(e, _)| e).filter(|e| e.op.as_str() == "version-written").collect();
    assert!(writes.len() >= 2 + 2, "two versions and at least one checkpoint and ledger range: {}", writes.len());
    assert!(writes.iter().all(|e| e.principal == access), "every S3 write is the S3 principal's");
    // The hold came with its copy (the PUT's hold header, in the
    // version-written entry) or after it (PutObjectLegalHold, hold-placed),
    // whichever A's replicator met first.
    let hold = format!("; hold {}", wormbox_store::retention::S3_HOLD);
    assert!(entries.iter().any(|(e, _)| e.principal == access
        && e.key == "trade/2.bin"
        && (e.op.as_str() == "hold-placed" || (e.op.as_str() == "version-written" && e.detail.contains(&hold)))));
}

/// CRC32C (Castagnoli), bit by bit: the test's own, not the server's.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

/// What the AWS SDKs send over TLS: `UNSIGNED-PAYLOAD`, the body vouched for
/// by an `x-amz-checksum-*` header. A right checksum stores the version with
/// its MD5 ETag; a wrong CRC32C or SHA-256 is BadDigest and stores nothing
/// (the SHA-256 is checked by the store itself, against the one it computes).
#[tokio::test(flavor = "multi_thread")]
async fn an_unsigned_payload_is_stored_only_when_its_checksum_header_holds() {
    let b = TestAppliance::start().await.unwrap();
    let (access, secret) = b.s3_principal("sdk", v1::Role::Writer).await.unwrap();
    let client = b.s3_client("records", &access, &secret);
    // Object Lock turns versioning on: both good writes stay as versions.
    client.create_bucket(true).await.unwrap();
    let body = bytes::Bytes::from_static(b"123456789");
    assert_eq!(crc32c(&body), 0xE306_9283, "the check value of CRC-32C");
    let b64 = |bytes: &[u8]| data_encoding::BASE64.encode(bytes);
    let right = b64(&crc32c(&body).to_be_bytes());
    let wrong = b64(&crc32c(b"123456780").to_be_bytes());
    let wrong_sha256 = b64(&[7u8; 32]);
    for (name, value) in [("x-amz-checksum-crc32c", &wrong), ("x-amz-checksum-sha256", &wrong_sha256)] {
        let err = client.put_object_unsigned("k", body.clone(), (name, value)).await.unwrap_err();
        let wormbox_replica::S3Error::Service(err) = err else { panic!("{name}: {err:?}") };
        assert_eq!((err.status, err.code.as_str()), (400, "BadDigest"), "{name}: {err:?}");
    }
    let page = client.list_object_versions(None, None, None, 100).await.unwrap();
    assert_eq!(page.entries.len(), 0, "a refused body stores nothing: {page:?}");

    let stored = client.put_object_unsigned("k", body.clone(), ("x-amz-checksum-crc32c", &right)).await.unwrap();
    // RFC 1321's MD5 of "123456789".
    assert_eq!(stored.etag.trim_matches('"'), "25f9e794323b453885f5181f1b624d0b");
    let sha256 = b64(ring::digest::digest(&ring::digest::SHA256, &body).as_ref());
    client.put_object_unsigned("k", body.clone(), ("x-amz-checksum-sha256", &sha256)).await.unwrap();
    let page = client.list_object_versions(None, None, None, 100).await.unwrap();
    assert_eq!(page.versions().count(), 2, "{page:?}");
}
