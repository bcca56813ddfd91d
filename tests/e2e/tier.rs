//! The capacity tier end to end against SeaweedFS and Ceph RGW: a rule with
//! `tier_after_days` releases the local bytes of versions older than that
//! (by the compliance clock, a `ManualClock` advanced past it) once their
//! replica copy verifies; GetObject still answers the same bytes, read
//! through the replica; integrity verification passes and reads them
//! there; the retention report says where each version's bytes live; a
//! replica copy that differs from the ledger is refused on read
//! (DATA_LOSS, `REPLICA_COPY_DIFFERS`) and named by verification; a replica
//! that is down answers UNAVAILABLE (`REPLICA_UNAVAILABLE`).

use std::time::Duration;

use tonic::Code;
use wormbox_proto::v1;
use wormbox_replica::PutObject;
use wormbox_store::{Actor, Replicated};
use wormbox_test_utils::s3_targets::{S3Target, appliance_with, rule};
use wormbox_test_utils::{TEST_EPOCH, TestAppliance};

use super::reason;
use super::replication::{put, replicated};

const DAY_MICROS: i64 = 24 * 3600 * 1_000_000;

#[tokio::test(flavor = "multi_thread")]
async fn tiered_versions_are_read_through_the_replica_and_checked_on_seaweedfs() {
    scenario("seaweedfs").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tiered_versions_are_read_through_the_replica_and_checked_on_ceph_rgw() {
    scenario("rgw").await;
}

async fn get(archive: &mut wormbox_proto::ArchiveClient, key: &str) -> Result<Vec<u8>, tonic::Status> {
    let request = v1::GetObjectRequest { bucket: "records".into(), key: key.into(), ..Default::default() };
    let mut stream = archive.get_object(request).await?.into_inner();
    let mut out = Vec::new();
    while let Some(message) = stream.message().await? {
        if let Some(v1::get_object_response::Part::Data(data)) = message.part {
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// Whether any value segment file of the appliance holds `needle`.
fn in_segments(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().any(|entry| {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            in_segments(&path, needle)
        } else if name.starts_with("values-") && name.ends_with(".seg") {
            wormbox_test_utils::tamper::contains(&std::fs::read(&path).unwrap(), needle)
        } else {
            false
        }
    })
}

async fn locations(app: &TestAppliance) -> Vec<(String, String)> {
    let mut compliance = app.compliance().await.unwrap();
    let request = v1::RetentionReportRequest { bucket: "records".into(), prefix: String::new() };
    let mut stream = compliance.retention_report(request).await.unwrap().into_inner();
    let mut out = Vec::new();
    while let Some(part) = stream.message().await.unwrap() {
        if let Some(v1::retention_report_part::Part::Row(row)) = part.part {
            out.push((row.key, row.bytes_location));
        }
    }
    out.sort();
    out
}

async fn scenario(engine: &'static str) {
    let Some(target) = S3Target::start(engine) else { return };
    let replica = target.bucket("replica", true).await;
    let mut config = rule(&target.endpoint, "replica", "", "async", 30_000);
    config.tier_after_days = Some(30);
    let app = appliance_with(config, target.credential()).await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let mut archive = app.archive_as(&owner).await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: "records".into(), object_lock: true }).await.unwrap();
    // Retention in the real future: the engines judge it by real time.
    let locked = v1::Retention {
        mode: v1::RetentionMode::Compliance as i32,
        retain_until_unix_micros: TEST_EPOCH.0 + 400 * DAY_MICROS,
    };
    // Two chunks and a bit: a staged upload, spooled back whole.
    let big: Vec<u8> = (0..(2 << 20) + 12_345).map(|i| (i % 251) as u8).collect();
    let old_locked = put(&mut archive, "trade/locked.bin", &big, Some(locked)).await;
    let old_plain = put(&mut archive, "trade/plain.txt", b"an unlocked record", None).await;
    replicated(&app, 0).await;
    let store = app.server().app().store().clone();
    let replication = app.server().app().replication();

    let report = replication.tier_now(&store, "dr").await.unwrap();
    assert_eq!(report.released, 0, "nothing is 30 days old yet: {report:?}");

    app.clock().advance(Duration::from_secs(31 * 86_400));
    let young = put(&mut archive, "trade/young.txt", b"a young record!", None).await;
    replicated(&app, 0).await;
    let needle = &big[1 << 20..(1 << 20) + 65_536];
    assert!(in_segments(app.data_dir(), needle), "the big version's chunks are in value segments");
    let report = replication.tier_now(&store, "dr").await.unwrap();
    assert_eq!((report.released, report.refused.len()), (2, 0), "{report:?}");
    assert!(!in_segments(app.data_dir(), needle), "their bytes were punched out of the segment files");
    assert_eq!(report.bytes_released, big.len() as u64 + 18);
    let again = replication.tier_now(&store, "dr").await.unwrap();
    assert_eq!(again.released, 0, "a released version is not released again: {again:?}");

    // The local bytes are gone; the record and its ledger entry stand.
    let records = wormbox_model::BucketName::new("records").unwrap();
    let key = |k: &str| wormbox_model::ObjectKey::new(k).unwrap();
    let id = |v: &v1::PutObjectResponse| wormbox_model::VersionId::parse(&v.version_id).unwrap();
    for (k, v) in [("trade/locked.bin", &old_locked), ("trade/plain.txt", &old_plain)] {
        let at = store.bytes_at(&records, &key(k), id(v)).unwrap().expect("released");
        assert_eq!(at.rule, "dr");
        let (_, reader) = store.read_object(&records, &key(k), None).unwrap();
        assert!(reader.released().is_some(), "{k}: its bytes are no longer local");
    }
    let ops: Vec<_> = store.ledger_entries(1).unwrap().into_iter().map(|(e, _)| e.op.as_str()).collect();
    assert_eq!(ops.iter().filter(|op| **op == "bytes-released").count(), 2, "{ops:?}");

    // Read through the replica, byte for byte.
    assert_eq!(get(&mut archive, "trade/locked.bin").await.unwrap(), big);
    assert_eq!(get(&mut archive, "trade/plain.txt").await.unwrap(), b"an unlocked record");
    assert_eq!(get(&mut archive, "trade/young.txt").await.unwrap(), b"a young record!");

    // Verification reads them there, and passes.
    let mut compliance = app.compliance().await.unwrap();
    let verified = compliance.verify_integrity(v1::VerifyIntegrityRequest::default()).await.unwrap().into_inner();
    assert!(verified.ok, "{verified:?}");
    assert_eq!((verified.released_checked, verified.released_unchecked), (2, 0), "{verified:?}");

    // The report says where the bytes live.
    assert_eq!(
        locations(&app).await,
        [
            ("trade/locked.bin".to_owned(), "replica:dr".to_owned()),
            ("trade/plain.txt".to_owned(), "replica:dr".to_owned()),
            ("trade/young.txt".to_owned(), "local".to_owned()),
        ]
    );

    // A copy that differs from the ledger. The engines' lock and versioning
    // keep a stored version's bytes from being edited through S3, so the
    // edit is made the other way round: another replica version of the same
    // key (same size, other bytes) is put with the replica's credential, and
    // the appliance's record of where `young`'s bytes live is pointed at it
    // through the store (as the system actor, as if the location had been
    // edited), without the tier pass's verification.
    let other = b"a forged record".to_vec();
    assert_eq!(other.len(), b"a young record!".len());
    let sha: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &other).as_ref().try_into().unwrap();
    let body = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(other.clone()))]);
    let forged = replica
        .put_object("trade/young.txt", body, PutObject::new(other.len() as u64, sha))
        .await
        .unwrap()
        .version_id
        .unwrap();
    let young_id = wormbox_model::VersionId::parse(&young.version_id).unwrap();
    let cursor = store.replica_cursor("dr").unwrap();
    let copy =
        Replicated { bucket: records.clone(), key: key("trade/young.txt"), id: young_id, replica_id: forged.clone() };
    store.record_replication("dr", cursor, vec![copy]).await.unwrap();
    store
        .release_bytes(&Actor::system(), "dr", records.clone(), key("trade/young.txt"), young_id, forged.clone())
        .await
        .unwrap();
    let refused = get(&mut archive, "trade/young.txt").await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::DataLoss, "REPLICA_COPY_DIFFERS"), "{refused:?}");
    assert!(refused.message().contains(&forged), "the replica version is named: {}", refused.message());
    let verified = compliance.verify_integrity(v1::VerifyIntegrityRequest::default()).await.unwrap().into_inner();
    assert!(!verified.ok, "{verified:?}");
    let first = &verified.divergences[0].what;
    assert!(first.contains("replica copy of records/trade/young.txt") && first.contains(&forged), "{first}");

    // A permanent delete of a released version takes its location too.
    let delete = v1::DeleteObjectRequest {
        bucket: "records".into(),
        key: "trade/plain.txt".into(),
        version_id: old_plain.version_id.clone(),
        ..Default::default()
    };
    archive.delete_object(delete).await.unwrap();
    assert_eq!(store.bytes_at(&records, &key("trade/plain.txt"), id(&old_plain)).unwrap(), None);

    // A replica that is down: UNAVAILABLE, with a reason, and nothing sent.
    drop(target);
    let down = get(&mut archive, "trade/locked.bin").await.unwrap_err();
    assert_eq!((down.code(), reason(&down).as_str()), (Code::Unavailable, "REPLICA_UNAVAILABLE"), "{down:?}");
    // Verification counts what it could not read there as not checked, never as checked.
    let verified = compliance.verify_integrity(v1::VerifyIntegrityRequest::default()).await.unwrap().into_inner();
    assert_eq!((verified.released_checked, verified.released_unchecked), (0, 2), "{verified:?}");
}
