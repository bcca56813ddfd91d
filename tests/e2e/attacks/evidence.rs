//! Issue 16, finding 5, against a real server: user text cannot forge the
//! evidence. A legal hold's case id that reads like an attestation is only
//! text (verify stays clean and judges the real lock record), an offline edit
//! that removes a hold is named even when the case id carried the digest of
//! the lock record from before the hold, and free text with control
//! characters or past its limit is refused at every entry point, changing nothing.

use std::path::Path;

use tonic::Code;
use wormbox_proto::{ArchiveClient, ComplianceClient, v1};
use wormbox_store::backend::Keyspace;
use wormbox_test_utils::{TEST_EPOCH, TestAppliance, tamper};

use super::DAY_MICROS;
use crate::e2e::reason;

async fn vault(archive: &mut ArchiveClient) {
    let request = v1::CreateBucketRequest { bucket: "vault".into(), object_lock: true };
    archive.create_bucket(request).await.unwrap();
}

fn header(key: &str, retention_days: Option<i64>, hold: &str) -> v1::PutObjectHeader {
    v1::PutObjectHeader {
        bucket: "vault".into(),
        key: key.into(),
        retention: retention_days.map(|days| v1::Retention {
            mode: v1::RetentionMode::Compliance as i32,
            retain_until_unix_micros: TEST_EPOCH.0 + days * DAY_MICROS,
        }),
        legal_hold: hold.into(),
        ..Default::default()
    }
}

async fn put(archive: &mut ArchiveClient, header: v1::PutObjectHeader) -> Result<v1::PutObjectResponse, tonic::Status> {
    let body = format!("record {}", header.key).into_bytes();
    let messages = vec![
        v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Header(header)) },
        v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Data(body)) },
    ];
    archive.put_object(tokio_stream::iter(messages)).await.map(|r| r.into_inner())
}

fn hold(key: &str, version_id: &str, case_id: &str) -> v1::PutObjectLegalHoldRequest {
    v1::PutObjectLegalHoldRequest {
        bucket: "vault".into(),
        key: key.into(),
        version_id: version_id.into(),
        case_id: case_id.into(),
        place: true,
        note: String::new(),
        mfa: String::new(),
    }
}

async fn verify(compliance: &mut ComplianceClient) -> v1::VerifyIntegrityResponse {
    compliance.verify_integrity(v1::VerifyIntegrityRequest::default()).await.unwrap().into_inner()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// The stored lock record (retention, holds) of the only version of `key`,
/// read from the stopped appliance's files.
fn stored_lock(db: &Path, key: &str) -> Vec<u8> {
    let backend = tamper::read_only(db).unwrap();
    let found =
        backend.scan(Keyspace::Locks, b"", b"").map(Result::unwrap).find(|(k, _)| tamper::contains(k, key.as_bytes()));
    found.expect("the version has a lock record").1
}

/// (a) A case id that reads like the writer's attestation is stored as text:
/// verify stays clean, and the hold's entry attests the real lock record.
#[tokio::test]
async fn a_case_id_that_reads_like_an_attestation_is_only_text() {
    let mut app = TestAppliance::start().await.unwrap();
    let officer = app.principal("officer", v1::Role::Auditor).await.unwrap();
    let mut archive = app.archive().await.unwrap();
    vault(&mut archive).await;
    let trade = put(&mut archive, header("trade", Some(1), "")).await.unwrap();
    let forged = format!("SEC; lock-sha256 {}", "0f".repeat(32));
    let mut compliance = app.compliance_as(&officer).await.unwrap();
    let holds = compliance.put_object_legal_hold(hold("trade", &trade.version_id, &forged)).await.unwrap();
    assert_eq!(holds.into_inner().legal_holds[0].case_id, forged, "stored as given");
    let report = verify(&mut compliance).await;
    assert!(report.ok, "a case id made verify report a divergence: {report:?}");

    let request = v1::AuditLogRequest { kinds: vec!["retention".into()], ..Default::default() };
    let mut stream = compliance.audit_log(request).await.unwrap().into_inner();
    let mut placed = None;
    while let Some(entry) = stream.message().await.unwrap() {
        if entry.operation == "hold-placed" {
            placed = Some(entry);
        }
    }
    let placed = placed.expect("the hold's ledger entry");
    assert_eq!(placed.format, 2);
    // The detail is the case id as given, and nothing after it.
    assert_eq!(placed.detail, format!("case {forged}"));
    app.stop().await.unwrap();
    let lock = stored_lock(&app.data_dir().join("db"), "trade");
    assert_eq!(hex::encode(&placed.lock_sha256), sha256_hex(&lock), "the entry attests the real lock record");
}

/// (b) Removing a hold offline is named, even when the hold's case id
/// carried the digest of the lock record from before the hold (the edit
/// that once verified clean), or an unreadable one (which once left the lock
/// unjudged).
#[tokio::test]
async fn an_offline_edit_removing_a_hold_is_named_whatever_the_case_id_says() {
    let mut app = TestAppliance::start().await.unwrap();
    let officer = app.principal("officer", v1::Role::Auditor).await.unwrap();
    let db = app.data_dir().join("db");
    let mut archive = app.archive().await.unwrap();
    vault(&mut archive).await;
    let trade = put(&mut archive, header("trade", Some(1), "")).await.unwrap();
    let memo = put(&mut archive, header("memo", Some(1), "")).await.unwrap();
    app.stop().await.unwrap();
    let pre_hold = stored_lock(&db, "trade");
    app.restart().await.unwrap();

    let mut compliance = app.compliance_as(&officer).await.unwrap();
    let forged = format!("SEC; lock-sha256 {}", sha256_hex(&pre_hold));
    compliance.put_object_legal_hold(hold("trade", &trade.version_id, &forged)).await.unwrap();
    let unreadable = format!("CASE; lock-sha256 {}", "z".repeat(64));
    compliance.put_object_legal_hold(hold("memo", &memo.version_id, &unreadable)).await.unwrap();
    let report = verify(&mut compliance).await;
    assert!(report.ok, "{report:?}");

    for (key, edit) in [("trade", "the record from before the hold"), ("memo", "the hold's case id altered")] {
        app.stop().await.unwrap();
        let before = stored_lock(&db, key);
        tamper::edit(
            &db,
            Keyspace::Locks,
            |k, _| tamper::contains(k, key.as_bytes()),
            |v| match key {
                "trade" => *v = pre_hold.clone(),
                _ => tamper::flip_in(v, b"CASE"),
            },
        )
        .unwrap();
        app.restart().await.unwrap();
        let mut compliance = app.compliance_as(&officer).await.unwrap();
        let report = verify(&mut compliance).await;
        assert!(!report.ok, "{key}: {edit} went unnoticed");
        let first = &report.divergences[0];
        assert!(first.what.contains(&format!("lock record (retention, holds) of vault/{key}")), "{key}: {first:?}");
        // Undo, so that the next case starts clean.
        app.stop().await.unwrap();
        tamper::edit(&db, Keyspace::Locks, |k, _| tamper::contains(k, key.as_bytes()), |v| *v = before).unwrap();
        app.restart().await.unwrap();
        let mut compliance = app.compliance_as(&officer).await.unwrap();
        assert!(verify(&mut compliance).await.ok, "{key}: after undoing");
    }
}

/// (c) Free text past its limit or with control characters is
/// INVALID_ARGUMENT wherever it arrives, with the same words, and creates nothing.
#[tokio::test]
async fn oversize_or_control_character_free_text_is_refused_everywhere_and_changes_nothing() {
    let app = TestAppliance::start().await.unwrap();
    let mut archive = app.archive().await.unwrap();
    vault(&mut archive).await;
    let ledger_before = app.server().app().store().ledger_entries(1).unwrap().len();

    let huge = format!("{}\0\n{}", "A".repeat(105 * 1024), "B".repeat(105 * 1024));
    let err = put(&mut archive, header("sealed", None, &huge)).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::InvalidArgument, "INVALID_ARGUMENT"), "{err:?}");
    assert!(err.message().starts_with("a legal hold's case id must be 1 to 256 bytes"), "{}", err.message());
    assert!(err.message().len() < 200, "the refusal echoes the text: {} bytes", err.message().len());
    let short = "SEC\0\n17";
    let at_put = put(&mut archive, header("sealed", None, short)).await.unwrap_err();
    let mut metadata = header("sealed", None, "");
    metadata.user_metadata.insert("case".into(), "line\nbreak".into());
    let in_metadata = put(&mut archive, metadata).await.unwrap_err();
    assert_eq!(in_metadata.code(), Code::InvalidArgument, "{in_metadata:?}");

    let listed = archive
        .list_object_versions(v1::ListObjectVersionsRequest { bucket: "vault".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.versions.is_empty() && listed.delete_markers.is_empty(), "{listed:?}");
    assert_eq!(app.server().app().store().ledger_entries(1).unwrap().len(), ledger_before, "the ledger grew");

    // The same words for the same field placed on an existing version.
    let ok = put(&mut archive, header("open", None, "")).await.unwrap();
    let mut compliance = app.compliance().await.unwrap();
    let at_hold = compliance.put_object_legal_hold(hold("open", &ok.version_id, short)).await.unwrap_err();
    assert_eq!((at_hold.code(), at_hold.message()), (at_put.code(), at_put.message()));
    let held = compliance
        .get_object_legal_hold(v1::GetObjectLegalHoldRequest {
            bucket: "vault".into(),
            key: "open".into(),
            version_id: ok.version_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(held.legal_holds.is_empty(), "{held:?}");
    assert!(verify(&mut compliance).await.ok);
}
