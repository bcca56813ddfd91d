//! The replica as operators see it, end to end against SeaweedFS and Ceph RGW:
//! `Admin.GetReplicationStatus` (a rule's cursor, lag and counts) and
//! `Compliance.VerifyReplica` (the replica checked against the archive),
//! both for admins and auditors only, and a replica version deleted behind
//! Wormbox's back with the engine's own S3 API named by the verification.

use tonic::Code;
use wormbox_proto::{AdminClient, BearerAuth, v1};
use wormbox_replica::{EntryKind, layout};
use wormbox_test_utils::s3_targets::S3Target;
use wormbox_test_utils::{TEST_EPOCH, TestAppliance};

use super::replication::{put, replicated};

const DAY_MICROS: i64 = 24 * 3600 * 1_000_000;

async fn appliance(target: &S3Target) -> TestAppliance {
    wormbox_test_utils::s3_targets::appliance_replicating_to(target).await.unwrap()
}

async fn admin_as(app: &TestAppliance, credential: &str) -> AdminClient {
    let channel = tonic::transport::Endpoint::from_shared(app.endpoint()).unwrap().connect().await.unwrap();
    v1::admin_client::AdminClient::with_interceptor(channel, BearerAuth::new(credential).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn replica_status_and_verify_name_a_replica_version_deleted_behind_wormboxs_back_on_seaweedfs() {
    scenario("seaweedfs").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replica_status_and_verify_name_a_replica_version_deleted_behind_wormboxs_back_on_ceph_rgw() {
    scenario("rgw").await;
}

async fn scenario(engine: &'static str) {
    let Some(target) = S3Target::start(engine) else { return };
    let replica = target.bucket("replica", true).await;
    let app = appliance(&target).await;
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let reader = app.principal("reader", v1::Role::Reader).await.unwrap();
    let auditor = app.principal("officer", v1::Role::Auditor).await.unwrap();
    let mut archive = app.archive_as(&owner).await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: "records".into(), object_lock: true }).await.unwrap();
    let locked = v1::Retention {
        mode: v1::RetentionMode::Compliance as i32,
        retain_until_unix_micros: TEST_EPOCH.0 + 400 * DAY_MICROS,
    };
    put(&mut archive, "trade/locked.pdf", b"a locked record", Some(locked)).await;
    // No retention of its own and no rule minimum: its copy is unlocked.
    let plain = put(&mut archive, "trade/plain.txt", b"an unlocked record", None).await;
    let mut compliance = app.compliance_as(&auditor).await.unwrap();
    compliance.get_checkpoint(v1::GetCheckpointRequest::default()).await.unwrap();
    replicated(&app, 1).await;

    // The status, for an auditor.
    let head = app.server().app().store().ledger_head().unwrap().0;
    let status = admin_as(&app, &auditor)
        .await
        .get_replication_status(v1::GetReplicationStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.rules.len(), 1, "{status:?}");
    let rule = &status.rules[0];
    assert_eq!((rule.name.as_str(), rule.bucket.as_str(), rule.prefix.as_str()), ("dr", "records", ""));
    assert_eq!((rule.endpoint.as_str(), rule.target_bucket.as_str()), (target.endpoint.as_str(), "replica"));
    assert_eq!(rule.mode, v1::ReplicationMode::Async as i32);
    assert_eq!((rule.cursor, rule.ledger_head, rule.lag_entries, rule.lag_seconds), (head, head, 0, 0), "{rule:?}");
    let bytes = (b"a locked record".len() + b"an unlocked record".len()) as u64;
    assert_eq!((rule.versions_copied, rule.bytes_copied), (2, bytes), "{rule:?}");
    assert!(rule.checkpoints_copied >= 1, "{rule:?}");
    assert_eq!((rule.versions_last_minute, rule.bytes_last_minute), (2, bytes), "copied within the minute: {rule:?}");
    assert_eq!(rule.last_error, "");
    // Writers and readers are refused both calls; an unknown rule is named.
    for credential in [&owner, &reader] {
        let refused = admin_as(&app, credential).await.get_replication_status(v1::GetReplicationStatusRequest {}).await;
        assert_eq!(refused.unwrap_err().code(), Code::PermissionDenied);
        let mut their_compliance = app.compliance_as(credential).await.unwrap();
        let refused = their_compliance.verify_replica(v1::VerifyReplicaRequest { rule: "dr".into() }).await;
        assert_eq!(refused.unwrap_err().code(), Code::PermissionDenied);
    }
    let unknown = compliance.verify_replica(v1::VerifyReplicaRequest { rule: "nope".into() }).await.unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument, "{unknown:?}");

    // A faithful replica verifies.
    let report = compliance.verify_replica(v1::VerifyReplicaRequest { rule: "dr".into() }).await.unwrap().into_inner();
    assert!(report.ok, "{report:?}");
    assert_eq!((report.versions_checked, report.cursor), (2, head), "{report:?}");
    assert!(report.checkpoints_checked >= 1 && report.ledger_ranges_checked >= 1, "{report:?}");
    assert!(report.bytes_read >= bytes, "the bytes were read back: {report:?}");

    // Someone with the replica's credential deletes the unlocked copy.
    let page = replica.list_object_versions(Some("trade/plain.txt"), None, None, 100).await.unwrap();
    let copy = page.entries.iter().find(|e| e.kind == EntryKind::Version).unwrap().version_id.clone();
    let head_of_copy = replica.head_object("trade/plain.txt", Some(&copy)).await.unwrap();
    assert!(head_of_copy.metadata.iter().any(|(n, v)| n == layout::META_VERSION && *v == plain.version_id));
    replica.delete_object("trade/plain.txt", Some(&copy), None).await.unwrap();

    let report = compliance.verify_replica(v1::VerifyReplicaRequest { rule: "dr".into() }).await.unwrap().into_inner();
    assert!(!report.ok, "{report:?}");
    let divergence = report.divergence.unwrap();
    assert_eq!(divergence.kind, "missing-version", "{divergence:?}");
    assert_eq!(
        (divergence.key.as_str(), divergence.version_id.as_str()),
        ("trade/plain.txt", plain.version_id.as_str())
    );
    assert_eq!(divergence.replica_version_id, copy, "the recorded copy is named");
}
