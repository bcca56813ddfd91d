//! Replication end to end: a real appliance with a `[[replication]]` rule
//! copying to a real S3 Object Lock engine (SeaweedFS, and Ceph RGW),
//! started by `scripts/s3-targets/`; the replica is then read and attacked
//! with the engine's own S3 API.

use std::time::Duration;

use wormbox_proto::v1;
use wormbox_replica::{EntryKind, LockMode, S3Client, layout};
use wormbox_test_utils::s3_targets::{S3Target, appliance_replicating_to};
use wormbox_test_utils::{TEST_EPOCH, TestAppliance};

use super::put_end;

const DAY_MICROS: i64 = 24 * 3600 * 1_000_000;

/// Retention far enough past the test clock's epoch to be in the engine's
/// future too (it judges dates by the real time).
pub(super) fn retention(days: i64) -> v1::Retention {
    v1::Retention {
        mode: v1::RetentionMode::Compliance as i32,
        retain_until_unix_micros: TEST_EPOCH.0 + days * DAY_MICROS,
    }
}

/// Waits (real time: the replica is a real engine) until the rule's cursor
/// reaches the ledger head and at least `checkpoints` were copied.
pub(super) async fn replicated(app: &TestAppliance, checkpoints: u64) {
    let store = app.server().app().store().clone();
    for _ in 0..600 {
        let head = store.ledger_head().unwrap().0;
        // Every checkpoint signed so far, not only `checkpoints` of them: one
        // was copied before the caller signed its own.
        let signed = store.checkpoints().unwrap().len() as u64;
        let status = app.server().app().replication().statuses().remove(0);
        if status.cursor >= head && status.checkpoints >= checkpoints.max(signed) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("replication did not catch up: {:?}", app.server().app().replication().statuses());
}

pub(super) async fn put(
    archive: &mut wormbox_proto::ArchiveClient,
    key: &str,
    data: &[u8],
    retention: Option<v1::Retention>,
) -> v1::PutObjectResponse {
    let header = v1::PutObjectHeader { bucket: "records".into(), key: key.into(), retention, ..Default::default() };
    let messages = vec![
        v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Header(header)) },
        v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Data(data.to_vec())) },
        put_end(data),
    ];
    archive.put_object(tokio_stream::iter(messages)).await.unwrap().into_inner()
}

async fn read_all(client: &S3Client, key: &str, version: &str) -> Vec<u8> {
    let mut body = client.get_object(key, Some(version)).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = body.chunk().await.unwrap() {
        out.extend_from_slice(&chunk);
    }
    out
}

async fn scenario(engine: &'static str) {
    let Some(target) = S3Target::start(engine) else { return };
    let replica = target.bucket("replica", true).await;
    let app = appliance_replicating_to(&target).await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let auditor = app.principal("officer", v1::Role::Auditor).await.unwrap();
    let mut archive = app.archive_as(&owner).await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: "records".into(), object_lock: true }).await.unwrap();
    let first = put(&mut archive, "trade/1.pdf", b"first record", Some(retention(400))).await;
    let second = put(&mut archive, "trade/1.pdf", b"second record", None).await;
    replicated(&app, 0).await;

    // Every version is on the replica, with its bytes and its lock, tied to its source.
    let page = replica.list_object_versions(Some("trade/"), None, None, 100).await.unwrap();
    let versions: Vec<_> = page.entries.iter().filter(|e| e.kind == EntryKind::Version).collect();
    assert_eq!(versions.len(), 2, "{engine}: {page:?}");
    let mut by_source = std::collections::BTreeMap::new();
    for v in &versions {
        let head = replica.head_object(&v.key, Some(&v.version_id)).await.unwrap();
        let source = head.metadata.iter().find(|(n, _)| n == layout::META_VERSION).unwrap().1.clone();
        by_source.insert(source, (v.version_id.clone(), head));
    }
    let (first_copy, first_head) = &by_source[&first.version_id];
    assert_eq!(first_head.lock.map(|(m, _)| m), Some(LockMode::Compliance), "{engine}: the lock travelled");
    assert!(first_head.lock.unwrap().1.0 >= TEST_EPOCH.0 + 400 * DAY_MICROS, "{engine}: at least as long");
    assert_eq!(read_all(&replica, "trade/1.pdf", first_copy).await, b"first record");
    let (second_copy, _) = &by_source[&second.version_id];
    assert_eq!(read_all(&replica, "trade/1.pdf", second_copy).await, b"second record");

    // The replica itself refuses to destroy the locked copy.
    let refused = replica.delete_object("trade/1.pdf", Some(first_copy), None).await.unwrap_err();
    assert_eq!(refused.status(), Some(403), "{engine}: {refused}");

    // A hold and an extension made on the source reach the copy.
    let mut compliance = app.compliance_as(&auditor).await.unwrap();
    compliance
        .put_object_legal_hold(v1::PutObjectLegalHoldRequest {
            bucket: "records".into(),
            key: "trade/1.pdf".into(),
            version_id: second.version_id.clone(),
            case_id: "SEC-2026-1".into(),
            place: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut owner_compliance = app.compliance_as(&owner).await.unwrap();
    owner_compliance
        .put_object_retention(v1::PutObjectRetentionRequest {
            bucket: "records".into(),
            key: "trade/1.pdf".into(),
            version_id: first.version_id.clone(),
            retention: Some(retention(800)),
            ..Default::default()
        })
        .await
        .unwrap();
    // A delete marker is copied as a marker.
    archive
        .delete_object(v1::DeleteObjectRequest {
            bucket: "records".into(),
            key: "trade/1.pdf".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // And the signed ledger with its checkpoint.
    let checkpoint = compliance.get_checkpoint(v1::GetCheckpointRequest::default()).await.unwrap().into_inner();
    let sequence = checkpoint.checkpoint.unwrap().sequence;
    replicated(&app, 1).await;

    assert!(replica.get_object_legal_hold("trade/1.pdf", Some(second_copy)).await.unwrap(), "{engine}: the hold");
    let (_, until) = replica.get_object_retention("trade/1.pdf", Some(first_copy)).await.unwrap().unwrap();
    assert!(until.0 >= TEST_EPOCH.0 + 800 * DAY_MICROS, "{engine}: the extension");
    let page = replica.list_object_versions(Some("trade/"), None, None, 100).await.unwrap();
    assert_eq!(page.delete_markers().count(), 1, "{engine}: the marker");
    assert_eq!(page.versions().count(), 2, "{engine}: nothing copied twice");
    let cp = replica.head_object(&layout::checkpoint_key(sequence), None).await.unwrap();
    assert_eq!(cp.lock.map(|(m, _)| m), Some(LockMode::Compliance), "{engine}: the checkpoint is locked");
    // The ledger ranges cover every entry from the first, without a gap,
    // up to the checkpoint.
    let ranges = replica.list_object_versions(Some(".wormbox/ledger/"), None, None, 100).await.unwrap();
    let mut next = 1;
    for range in ranges.versions() {
        let bounds = range.key.strip_prefix(".wormbox/ledger/").unwrap();
        let (first, last) = bounds.split_once('-').unwrap();
        assert_eq!(first.parse::<u64>().unwrap(), next, "{engine}: ranges are contiguous: {}", range.key);
        next = last.parse::<u64>().unwrap() + 1;
    }
    assert_eq!(next, sequence + 1, "{engine}: the last range ends at the checkpoint");
    let status = app.server().app().replication().statuses().remove(0);
    assert_eq!(status.last_error, None, "{engine}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_version_its_lock_markers_and_the_signed_ledger_reach_seaweedfs() {
    scenario("seaweedfs").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_version_its_lock_markers_and_the_signed_ledger_reach_ceph_rgw() {
    scenario("rgw").await;
}

/// A replica bucket without Object Lock could not keep what it is given:
/// the appliance refuses to start with the rule, naming it.
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_bucket_without_object_lock_is_refused_at_start() {
    let Some(target) = S3Target::start("seaweedfs") else { return };
    target.bucket("replica", false).await;
    let started = appliance_replicating_to(&target).await;
    let err = format!("{:#}", started.unwrap_err());
    assert!(err.contains("`dr`") && err.contains("Object Lock"), "{err}");
}
