//! Disaster recovery end to end against SeaweedFS and Ceph RGW: an
//! appliance with two rules (two buckets, each to its own replica bucket)
//! is lost; `wormboxd restore --from-replica`, with the keys and sealed
//! credentials from escrow and an auditor's published checkpoint, rebuilds
//! it from the replicas alone onto a new data directory; the restored
//! appliance serves every version byte for byte with its lock and holds,
//! keeps the purge and the marker, verifies, and refuses to destroy a
//! locked version. A published checkpoint beyond what the replicas sealed
//! is refused (a restore never rolls the archive back).

use std::sync::Arc;

use tonic::Code;
use wormbox_proto::{BearerAuth, v1};
use wormbox_reports::CheckpointFile;
use wormbox_server::replica_restore::{RESTORED_CREDENTIALS_FILE, ReplicaRestoreOptions, restore_from_replica};
use wormbox_test_utils::s3_targets::{S3Target, rule};

use super::replication::{put, retention};

#[tokio::test(flavor = "multi_thread")]
async fn an_appliance_lost_is_restored_from_its_seaweedfs_replicas() {
    scenario("seaweedfs").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_appliance_lost_is_restored_from_its_ceph_rgw_replicas() {
    scenario("rgw").await;
}

async fn scenario(engine: &'static str) {
    let Some(target) = S3Target::start(engine) else { return };
    target.bucket("replica", true).await;
    target.bucket("replica-scratch", true).await;
    let records = rule(&target.endpoint, "replica", "", "async", 30_000);
    let mut scratch = rule(&target.endpoint, "replica-scratch", "", "async", 30_000);
    scratch.name = "scratch".into();
    scratch.bucket = "scratch".into();
    scratch.replicate_purges = true;
    let rules = vec![records.clone(), scratch.clone()];
    let credential = target.credential();
    let app = {
        let scratch = scratch.clone();
        let credential = credential.clone();
        wormbox_test_utils::TestAppliance::start_with(move |config| {
            for rule in [&records, &scratch] {
                wormbox_server::replication::seal_credential(&config.storage.data_dir, &rule.name, &credential)
                    .unwrap();
                config.replication.push(rule.clone());
            }
        })
        .await
        .unwrap()
    };

    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let auditor = app.principal("officer", v1::Role::Auditor).await.unwrap();
    let mut archive = app.archive_as(&owner).await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: "records".into(), object_lock: true }).await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: "scratch".into(), object_lock: false }).await.unwrap();
    archive
        .put_bucket_versioning(v1::PutBucketVersioningRequest {
            bucket: "scratch".into(),
            status: v1::VersioningStatus::Enabled as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    let locked = put(&mut archive, "trade/1.pdf", b"a locked record", Some(retention(400))).await;
    let held = put(&mut archive, "trade/2.pdf", b"a held record", None).await;
    let mut compliance = app.compliance_as(&auditor).await.unwrap();
    compliance
        .put_object_legal_hold(v1::PutObjectLegalHoldRequest {
            bucket: "records".into(),
            key: "trade/2.pdf".into(),
            version_id: held.version_id.clone(),
            case_id: "SEC-2026-7".into(),
            place: true,
            ..Default::default()
        })
        .await
        .unwrap();
    put(&mut archive, "trade/3.pdf", b"soon hidden", None).await;
    archive
        .delete_object(v1::DeleteObjectRequest {
            bucket: "records".into(),
            key: "trade/3.pdf".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let scratch_put = |key: &'static str, body: &'static [u8]| {
        let header = v1::PutObjectHeader { bucket: "scratch".into(), key: key.into(), ..Default::default() };
        vec![
            v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Header(header)) },
            v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Data(body.to_vec())) },
            super::put_end(body),
        ]
    };
    let gone = archive.put_object(tokio_stream::iter(scratch_put("tmp.bin", b"purged later"))).await.unwrap();
    archive.put_object(tokio_stream::iter(scratch_put("tmp.bin", b"kept"))).await.unwrap();
    archive
        .delete_object(v1::DeleteObjectRequest {
            bucket: "scratch".into(),
            key: "tmp.bin".into(),
            version_id: gone.into_inner().version_id,
            ..Default::default()
        })
        .await
        .unwrap();
    let checkpoint = compliance.get_checkpoint(v1::GetCheckpointRequest::default()).await.unwrap().into_inner();
    let sealed = checkpoint.checkpoint.unwrap().sequence;
    let store = app.server().app().store().clone();
    for _ in 0..1200 {
        let statuses = app.server().app().replication().statuses();
        if statuses.iter().all(|s| s.checkpoints >= 1 && s.cursor >= sealed) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let public_key = app.server().app().public_key().to_vec();
    let published = store.checkpoint_at(sealed).unwrap().unwrap();

    // The escrow: keys and sealed credentials, and an auditor's checkpoint.
    let dir = app.temp_dir();
    let keys = dir.join("escrow");
    std::fs::create_dir(&keys).unwrap();
    for file in ["mfa-master.key", "checkpoint-signing.key", "replica-dr.credential", "replica-scratch.credential"] {
        std::fs::copy(app.data_dir().join(file), keys.join(file)).unwrap();
    }
    let auditors_copy = dir.join("published.json");
    std::fs::write(&auditors_copy, serde_json::to_vec(&CheckpointFile::new(&published, &public_key)).unwrap()).unwrap();
    let mut app = app;
    app.stop().await.unwrap();

    // A checkpoint the appliance published beyond what the replicas sealed
    // is refused, and nothing is written.
    let options = |data: &str, published: Vec<std::path::PathBuf>| ReplicaRestoreOptions {
        data_dir: dir.join(data),
        keys: keys.clone(),
        published,
        without_published: false,
    };
    let clock: Arc<dyn wormbox_model::Clock> = app.shared_clock();
    let mut later = published.clone();
    later.sequence += 1;
    let later_file = dir.join("later.json");
    let signed_later = {
        let key = std::fs::read(keys.join("checkpoint-signing.key")).unwrap();
        let signer = wormbox_store::evidence::Ed25519Signer::from_pkcs8(&key).unwrap();
        use wormbox_store::evidence::Signer as _;
        later.signature = signer.sign(&later.signed_message());
        later
    };
    std::fs::write(&later_file, serde_json::to_vec(&CheckpointFile::new(&signed_later, &public_key)).unwrap()).unwrap();
    let err = restore_from_replica(&rules, &options("refused", vec![later_file]), clock.clone()).await.unwrap_err();
    assert!(err.to_string().contains("roll the archive"), "{engine}: {err}");
    assert!(!dir.join("refused").exists(), "{engine}: a refused restore writes nothing");

    let restored =
        restore_from_replica(&rules, &options("restored", vec![auditors_copy]), clock.clone()).await.unwrap();
    assert_eq!(restored.through, sealed, "{engine}");
    assert_eq!((restored.buckets, restored.versions, restored.markers), (2, 4, 1), "{engine}: {restored:?}");

    // The restored appliance serves, with the principals' new secrets.
    let data = dir.join("restored");
    let credentials = std::fs::read_to_string(data.join(RESTORED_CREDENTIALS_FILE)).unwrap();
    let credential_of = |name: &str| {
        credentials.lines().find(|l| l.ends_with(&format!(" {name}"))).unwrap().split(' ').next().unwrap().to_owned()
    };
    let mut config = app_config(&data, &rules);
    config.listen.addr = "127.0.0.1:0".parse().unwrap();
    let server = wormbox_server::start(&config, clock.clone()).await.unwrap();
    assert!(server.new_admin_credential.is_none(), "{engine}: the restored admin comes back, no new one");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr)).unwrap();
    let channel = channel.connect().await.unwrap();
    let owner = BearerAuth::new(&credential_of("owner")).unwrap();
    let mut archive = v1::archive_client::ArchiveClient::with_interceptor(channel.clone(), owner);
    for (key, body) in [("trade/1.pdf", &b"a locked record"[..]), ("trade/2.pdf", b"a held record")] {
        let request = v1::GetObjectRequest { bucket: "records".into(), key: key.into(), ..Default::default() };
        let mut stream = archive.get_object(request).await.unwrap().into_inner();
        let mut bytes = Vec::new();
        while let Some(message) = stream.message().await.unwrap() {
            if let Some(v1::get_object_response::Part::Data(data)) = message.part {
                bytes.extend_from_slice(&data);
            }
        }
        assert_eq!(bytes, body, "{engine}: {key}");
    }
    let request = v1::GetObjectRequest { bucket: "records".into(), key: "trade/3.pdf".into(), ..Default::default() };
    assert_eq!(archive.get_object(request).await.unwrap_err().code(), Code::NotFound, "{engine}: the marker");
    let versions = archive
        .list_object_versions(v1::ListObjectVersionsRequest { bucket: "scratch".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(versions.versions.len(), 1, "{engine}: the purge stays a purge: {versions:?}");
    // The lock and the hold came back, and the locked version stays locked.
    let refused = archive
        .delete_object(v1::DeleteObjectRequest {
            bucket: "records".into(),
            key: "trade/1.pdf".into(),
            version_id: locked.version_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{engine}: {refused:?}");
    assert!(refused.message().contains("COMPLIANCE retention"), "{engine}: {refused:?}");
    let auditor = BearerAuth::new(&credential_of("officer")).unwrap();
    let mut compliance = v1::compliance_client::ComplianceClient::with_interceptor(channel, auditor);
    let hold = compliance
        .get_object_legal_hold(v1::GetObjectLegalHoldRequest {
            bucket: "records".into(),
            key: "trade/2.pdf".into(),
            version_id: held.version_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(hold.legal_holds.iter().any(|h| h.case_id == "SEC-2026-7"), "{engine}: {hold:?}");
    // It verifies, and the replica verifies against it.
    let report = compliance.verify_integrity(v1::VerifyIntegrityRequest::default()).await.unwrap().into_inner();
    assert!(report.ok, "{engine}: {report:?}");
    let replica = compliance.verify_replica(v1::VerifyReplicaRequest { rule: "dr".into() }).await.unwrap();
    assert!(replica.into_inner().ok, "{engine}: the replica verifies against the restored archive");
    server.stop().await.unwrap();
}

fn app_config(
    data: &std::path::Path,
    rules: &[wormbox_server::config::ReplicationConfig],
) -> wormbox_server::config::WormboxdConfig {
    let mut config = wormbox_server::config::WormboxdConfig::default();
    config.storage.data_dir = data.to_owned();
    config.storage.write_buffer_mib = 4;
    config.storage.block_cache_mib = 8;
    config.replication = rules.to_vec();
    config.s3.listen = "127.0.0.1:0".parse().unwrap();
    config.metrics.listen = "127.0.0.1:0".parse().unwrap();
    config
}
