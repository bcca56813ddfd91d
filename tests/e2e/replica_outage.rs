//! A replica that fails under a running appliance, end to end against real
//! engines: SeaweedFS and Ceph RGW stopped during ingest and started again
//! on the same endpoint, and an RGW replica bucket with MFA Delete on.
//!
//! Invariant: a replica that is down never blocks async ingest nor loses an
//! acknowledged write (each ends on the replica exactly once, with its
//! bytes, once the engine is back), and a replica bucket's MFA Delete never
//! stops replication nor is weakened by it (Wormbox never holds its token).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use wormbox_proto::{ArchiveClient, v1};
use wormbox_replica::{EntryKind, S3Client, layout};
use wormbox_test_utils::TestAppliance;
use wormbox_test_utils::s3_targets::{S3Target, appliance_replicating_to};

use super::replication::{put, replicated, retention};

/// How long an acknowledgement may take while the replica is down: async
/// ingest does not wait for it, so anything near this bound is a stall.
const ACK_BOUND: Duration = Duration::from_secs(5);

/// A version the appliance acknowledged: key, its version id, its bytes.
struct Acked {
    key: String,
    version_id: String,
    data: Vec<u8>,
}

async fn ingest(archive: &mut ArchiveClient, key: &str, data: Vec<u8>, locked: bool) -> Acked {
    let retention = locked.then(|| retention(400));
    let started = Instant::now();
    let response = tokio::time::timeout(ACK_BOUND, put(archive, key, &data, retention))
        .await
        .unwrap_or_else(|_| panic!("the put of {key} was not acknowledged within {ACK_BOUND:?}"));
    assert!(!response.version_id.is_empty(), "{key}: acknowledged with a version id");
    eprintln!("{key} acknowledged in {} ms", started.elapsed().as_millis());
    Acked { key: key.to_owned(), version_id: response.version_id, data }
}

async fn read_all(client: &S3Client, key: &str, version: &str) -> Vec<u8> {
    let mut body = client.get_object(key, Some(version)).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = body.chunk().await.unwrap() {
        out.extend_from_slice(&chunk);
    }
    out
}

/// The replica's versions under `prefix`, grouped by the Wormbox version
/// id their metadata names: source version id to its copies' version ids.
async fn copies(replica: &S3Client, prefix: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let page = replica.list_object_versions(Some(prefix), None, None, 1000).await.unwrap();
    assert!(!page.is_truncated, "one page holds them all");
    let mut by_source: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for version in page.entries.iter().filter(|e| e.kind == EntryKind::Version) {
        let head = replica.head_object(&version.key, Some(&version.version_id)).await.unwrap();
        let source = head.metadata.iter().find(|(n, _)| n == layout::META_VERSION).expect("the metadata").1.clone();
        by_source.entry(source).or_default().push((version.key.clone(), version.version_id.clone()));
    }
    by_source
}

/// Polls (real time: the replica is a real engine) until `done` holds for
/// the rule's status, or panics after `bound`.
async fn until(app: &TestAppliance, bound: Duration, what: &str, done: impl Fn(&wormbox_replica::Status) -> bool) {
    let started = Instant::now();
    loop {
        let status = app.server().app().replication().statuses().remove(0);
        if done(&status) {
            eprintln!("{what} after {} ms", started.elapsed().as_millis());
            return;
        }
        assert!(started.elapsed() < bound, "not {what} within {bound:?}: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn outage(engine: &'static str) {
    let Some(mut target) = S3Target::start_restartable(engine) else { return };
    let replica = target.bucket("replica", true).await;
    let app = appliance_replicating_to(&target).await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let auditor = app.principal("officer", v1::Role::Auditor).await.unwrap();
    let mut archive = app.archive_as(&owner).await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: "records".into(), object_lock: true }).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..3 {
        acked.push(
            ingest(&mut archive, &format!("trade/{}.pdf", i % 2), format!("before {i}").into_bytes(), i == 0).await,
        );
    }
    replicated(&app, 0).await;

    // The engine goes down; ingest goes on, each write acknowledged at once.
    target.stop();
    for i in 0..6 {
        let data = format!("during the outage {i}").repeat(i + 1).into_bytes();
        acked.push(ingest(&mut archive, &format!("trade/{}.pdf", i % 3), data, i % 2 == 0).await);
    }
    // A checkpoint is signed meanwhile: the replica gets it, with the
    // ledger range it closes, once it is back.
    let copied = app.server().app().replication().statuses().remove(0).checkpoints;
    let mut compliance = app.compliance_as(&auditor).await.unwrap();
    compliance.get_checkpoint(v1::GetCheckpointRequest::default()).await.unwrap();
    let head = app.server().app().store().ledger_head().unwrap().0;
    // The status says so: the replicator's first try after these writes
    // fails at once (nothing listens), and it names the failure.
    until(&app, Duration::from_secs(30), "the outage shows", |s| s.last_error.is_some() && s.head >= head).await;
    let status = app.server().app().replication().statuses().remove(0);
    assert!(status.cursor < status.head, "{engine}: lag while the replica is down: {status:?}");
    eprintln!("{engine}: while down: {status:?}");

    // Back on the same endpoint with what it held: the backlog drains. The
    // back-off doubles from 250 ms to 30 s, so the next try comes within
    // about as long again as the outage lasted (well under the bound).
    target.start_again();
    let back = Instant::now();
    until(&app, Duration::from_secs(90), "the lag drained", |s| s.cursor >= head && s.last_error.is_none()).await;
    eprintln!("{engine}: drained {} ms after the restart", back.elapsed().as_millis());
    replicated(&app, copied + 1).await;

    // Every acknowledged version is on the replica exactly once, with its bytes.
    let by_source = copies(&replica, "trade/").await;
    assert_eq!(by_source.len(), acked.len(), "{engine}: one source per acknowledged write: {:?}", by_source.keys());
    for write in &acked {
        let held = by_source.get(&write.version_id).unwrap_or_else(|| panic!("{engine}: {} lost", write.version_id));
        assert_eq!(held.len(), 1, "{engine}: {} copied once: {held:?}", write.version_id);
        let (key, copy) = &held[0];
        assert_eq!(key, &write.key, "{engine}: under its key");
        assert_eq!(read_all(&replica, key, copy).await, write.data, "{engine}: {key} {copy}: its bytes");
    }
    let report = compliance.verify_replica(v1::VerifyReplicaRequest { rule: "dr".into() }).await.unwrap().into_inner();
    assert!(report.ok, "{engine}: {report:?}");
    assert_eq!(report.versions_checked, acked.len() as u64, "{engine}: {report:?}");
}

/// SeaweedFS stopped during ingest, then started again: no write waited
/// for it, none was lost, none was copied twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_seaweedfs_replica_stopped_during_ingest_blocks_no_write_and_loses_none() {
    outage("seaweedfs").await;
}

/// Ceph RGW (bluestore, so its data survives) stopped during ingest, then
/// started again: no write waited for it, none was lost, none was copied twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_ceph_rgw_replica_stopped_during_ingest_blocks_no_write_and_loses_none() {
    outage("rgw").await;
}

/// RGW's MFA Delete on the replica bucket guards it against whoever holds
/// the replication credential; replication itself never deletes a version,
/// so it reaches everything without the token (the appliance has no way to
/// send one), and the bucket keeps refusing a versioned DELETE without it.
#[tokio::test(flavor = "multi_thread")]
async fn replication_to_rgw_with_mfa_delete_never_needs_the_token_and_the_replica_keeps_refusing() {
    let Some(target) = S3Target::start("rgw") else { return };
    let replica = target.bucket("replica", true).await;
    let seed: Vec<u8> = (0..20u8).map(|i| i.wrapping_mul(53).wrapping_add(7)).collect();
    let device = target.mfa_device("replica-mfa-delete", &seed);
    target.enable_mfa_delete(&replica, &device).await;

    let app = appliance_replicating_to(&target).await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let auditor = app.principal("officer", v1::Role::Auditor).await.unwrap();
    let mut archive = app.archive_as(&owner).await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: "records".into(), object_lock: true }).await.unwrap();
    let locked = ingest(&mut archive, "trade/1.pdf", b"locked record".to_vec(), true).await;
    let held = ingest(&mut archive, "trade/1.pdf", b"held record".to_vec(), false).await;
    let plain = ingest(&mut archive, "trade/2.pdf", b"plain record".to_vec(), false).await;
    let mut compliance = app.compliance_as(&auditor).await.unwrap();
    compliance
        .put_object_legal_hold(v1::PutObjectLegalHoldRequest {
            bucket: "records".into(),
            key: "trade/1.pdf".into(),
            version_id: held.version_id.clone(),
            case_id: "SEC-2026-7".into(),
            place: true,
            ..Default::default()
        })
        .await
        .unwrap();
    app.compliance_as(&owner)
        .await
        .unwrap()
        .put_object_retention(v1::PutObjectRetentionRequest {
            bucket: "records".into(),
            key: "trade/1.pdf".into(),
            version_id: locked.version_id.clone(),
            retention: Some(retention(800)),
            ..Default::default()
        })
        .await
        .unwrap();
    let copied = app.server().app().replication().statuses().remove(0).checkpoints;
    let checkpoint = compliance.get_checkpoint(v1::GetCheckpointRequest::default()).await.unwrap().into_inner();
    let sequence = checkpoint.checkpoint.unwrap().sequence;
    // The marker comes after the checkpoint: a checkpoint signed while the
    // replicator is idle is copied with the next ledger entry.
    archive
        .delete_object(v1::DeleteObjectRequest {
            bucket: "records".into(),
            key: "trade/1.pdf".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    replicated(&app, copied + 1).await;

    // Everything arrived, nothing was refused or gone past.
    let status = app.server().app().replication().statuses().remove(0);
    assert_eq!((status.last_error.as_deref(), status.kept_by_replica), (None, 0), "{status:?}");
    let by_source = copies(&replica, "trade/").await;
    let copy = |write: &Acked| {
        let held = &by_source[&write.version_id];
        assert_eq!(held.len(), 1, "{} copied once: {held:?}", write.version_id);
        held[0].1.clone()
    };
    let (locked_copy, held_copy, plain_copy) = (copy(&locked), copy(&held), copy(&plain));
    assert_eq!(by_source.len(), 3, "{:?}", by_source.keys());
    assert!(replica.get_object_legal_hold("trade/1.pdf", Some(&held_copy)).await.unwrap(), "the hold");
    let (_, until) = replica.get_object_retention("trade/1.pdf", Some(&locked_copy)).await.unwrap().unwrap();
    assert!(until.0 >= retention(800).retain_until_unix_micros, "the extension");
    let page = replica.list_object_versions(Some("trade/1.pdf"), None, None, 100).await.unwrap();
    assert_eq!(page.delete_markers().count(), 1, "the marker");
    replica.head_object(&layout::checkpoint_key(sequence), None).await.unwrap();
    let report = compliance.verify_replica(v1::VerifyReplicaRequest { rule: "dr".into() }).await.unwrap().into_inner();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.versions_checked, 3, "{report:?}");

    // The bucket's MFA Delete still holds: the unlocked, unheld copy is
    // refused to a versioned DELETE without a code (with the replication
    // credential, as a thief of it would try), and only a code frees it.
    assert!(replica.bucket_versioning().await.unwrap().mfa_delete, "MFA Delete is still on");
    let refused = replica.delete_object("trade/2.pdf", Some(&plain_copy), None).await.unwrap_err();
    assert_eq!((refused.status(), refused.code()), (Some(403), Some("AccessDenied")), "{refused}");
    assert!(copies(&replica, "trade/2.pdf").await.contains_key(&plain.version_id), "the copy is still there");
    let deleted = replica.delete_object("trade/2.pdf", Some(&plain_copy), Some(&device.header(1))).await.unwrap();
    assert_eq!(deleted.version_id.as_deref(), Some(plain_copy.as_str()), "a code is what it asked for");
}
