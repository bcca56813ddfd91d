//! Object Lock through the API, attacked with a valid admin credential and
//! no token: every attempt to destroy or unprotect a locked version is
//! refused, the data stays intact, and each attempt is in the ledger.

use std::time::Duration;

use wormbox_proto::{ComplianceClient, v1};
use wormbox_test_utils::{TEST_EPOCH, TestAppliance};

use super::{get, put_end, reason};

const DAY_MICROS: i64 = 24 * 3600 * 1_000_000;

async fn compliance_as(app: &TestAppliance, credential: &str) -> ComplianceClient {
    let channel = tonic::transport::Endpoint::from_shared(app.endpoint()).unwrap().connect().await.unwrap();
    v1::compliance_client::ComplianceClient::with_interceptor(
        channel,
        wormbox_proto::BearerAuth::new(credential).unwrap(),
    )
}

fn retention(mode: v1::RetentionMode, days: i64) -> v1::Retention {
    v1::Retention { mode: mode as i32, retain_until_unix_micros: TEST_EPOCH.0 + days * DAY_MICROS }
}

async fn put_locked(
    archive: &mut wormbox_proto::ArchiveClient,
    key: &str,
    retention: Option<v1::Retention>,
    hold: &str,
) -> Result<v1::PutObjectResponse, tonic::Status> {
    let header = v1::PutObjectHeader {
        bucket: "vault".into(),
        key: key.into(),
        retention,
        legal_hold: hold.into(),
        ..Default::default()
    };
    let data = format!("record {key}").into_bytes();
    let messages = vec![
        v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Header(header)) },
        v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Data(data.clone())) },
        put_end(&data),
    ];
    archive.put_object(tokio_stream::iter(messages)).await.map(|r| r.into_inner())
}

fn set_retention(
    key: &str,
    version_id: &str,
    retention: Option<v1::Retention>,
    bypass: bool,
) -> v1::PutObjectRetentionRequest {
    v1::PutObjectRetentionRequest {
        bucket: "vault".into(),
        key: key.into(),
        version_id: version_id.into(),
        retention,
        bypass_governance: bypass,
        mfa: String::new(),
    }
}

fn purge(key: &str, version_id: &str, bypass: bool) -> v1::DeleteObjectRequest {
    v1::DeleteObjectRequest {
        bucket: "vault".into(),
        key: key.into(),
        version_id: version_id.into(),
        bypass_governance: bypass,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_stolen_admin_key_cannot_destroy_or_unprotect_locked_versions() {
    let app = TestAppliance::start().await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let auditor = app.principal("officer", v1::Role::Auditor).await.unwrap();
    let mut archive = app.archive_as(&owner).await.unwrap();
    let created = archive
        .create_bucket(v1::CreateBucketRequest { bucket: "vault".into(), object_lock: true })
        .await
        .unwrap()
        .into_inner()
        .bucket
        .unwrap();
    assert!(created.object_lock);
    assert_eq!(created.versioning, v1::VersioningStatus::Enabled as i32);

    let locked =
        put_locked(&mut archive, "trade", Some(retention(v1::RetentionMode::Compliance, 1)), "").await.unwrap();
    let held = put_locked(&mut archive, "held", None, "").await.unwrap();
    let mut officer = compliance_as(&app, &auditor).await;
    let hold = v1::PutObjectLegalHoldRequest {
        bucket: "vault".into(),
        key: "held".into(),
        version_id: held.version_id.clone(),
        case_id: "SEC-2026-17".into(),
        place: true,
        note: "subpoena".into(),
        mfa: String::new(),
    };
    let holds = officer.put_object_legal_hold(hold.clone()).await.unwrap().into_inner().legal_holds;
    assert_eq!(holds[0].case_id, "SEC-2026-17");

    // The attacker: an admin credential, no MFA token.
    let mut admin = app.archive().await.unwrap();
    let mut admin_compliance = compliance_as(&app, app.admin_credential()).await;
    let mut refused = 0;
    for (request, want) in [
        (purge("trade", &locked.version_id, false), "OBJECT_LOCKED"),
        (purge("trade", &locked.version_id, true), "OBJECT_LOCKED"),
        (purge("held", &held.version_id, true), "LEGAL_HOLD"),
    ] {
        let err = admin.delete_object(request).await.unwrap_err();
        assert_eq!(reason(&err), want);
        refused += 1;
    }
    for (retention, bypass) in [
        (
            Some(v1::Retention {
                mode: v1::RetentionMode::Compliance as i32,
                retain_until_unix_micros: TEST_EPOCH.0 + DAY_MICROS / 2,
            }),
            true,
        ),
        (Some(self::retention(v1::RetentionMode::Governance, 1)), true),
        (None, true),
    ] {
        let err = admin_compliance
            .put_object_retention(set_retention("trade", &locked.version_id, retention, bypass))
            .await
            .unwrap_err();
        assert_eq!(reason(&err), "RETENTION_SHORTEN_DENIED");
        refused += 1;
    }
    // A writer cannot release a hold; versioning stays Enabled; the bucket stays.
    let mut as_owner = compliance_as(&app, &owner).await;
    let release = v1::PutObjectLegalHoldRequest { place: false, ..hold.clone() };
    // (Callers who may not attempt an operation at all are answered, not ledgered.)
    assert_eq!(reason(&as_owner.put_object_legal_hold(release.clone()).await.unwrap_err()), "ACCESS_DENIED");
    let suspend = v1::PutBucketVersioningRequest {
        bucket: "vault".into(),
        status: v1::VersioningStatus::Suspended as i32,
        ..Default::default()
    };
    assert_eq!(reason(&admin.put_bucket_versioning(suspend.clone()).await.unwrap_err()), "ACCESS_DENIED");
    assert_eq!(reason(&archive.put_bucket_versioning(suspend).await.unwrap_err()), "VERSIONING_LOCKED");
    refused += 1;
    let drop_bucket = admin.delete_bucket(v1::DeleteBucketRequest { bucket: "vault".into() }).await.unwrap_err();
    assert_eq!(reason(&drop_bucket), "BUCKET_NOT_EMPTY");
    refused += 1;

    // Data intact, and every refused attempt of an entitled caller is in the ledger.
    assert_eq!(get(&mut admin, "vault", "trade", &locked.version_id).await.unwrap().1, b"record trade");
    let entries = app.server().app().store().ledger_entries(1).unwrap();
    let refusals = entries.iter().filter(|(e, _)| e.op.as_str() == "refused").count();
    assert!(refusals >= refused, "{refusals} refusals in the ledger, {refused} attempts");
    assert!(entries.iter().any(|(e, _)| e.op.as_str() == "hold-placed" && e.detail.contains("SEC-2026-17")));
    assert!(entries.iter().any(|(e, _)| e.op.as_str() == "refused" && e.detail.starts_with("bucket delete")));

    // Extending is allowed; after retain-until passes, the purge goes through.
    let extend = set_retention("trade", &locked.version_id, Some(retention(v1::RetentionMode::Compliance, 2)), false);
    as_owner.put_object_retention(extend).await.unwrap();
    app.clock().advance(Duration::from_secs(2 * 24 * 3600 + 1));
    admin.delete_object(purge("trade", &locked.version_id, false)).await.unwrap();
    // The hold outlives any retention; the officer releases it, then it can go.
    assert_eq!(reason(&admin.delete_object(purge("held", &held.version_id, false)).await.unwrap_err()), "LEGAL_HOLD");
    officer.put_object_legal_hold(release).await.unwrap();
    admin.delete_object(purge("held", &held.version_id, false)).await.unwrap();
}

#[tokio::test]
async fn governance_retention_yields_only_to_the_bypass_right() {
    let app = TestAppliance::start().await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let mut admin_api = app.admin().await.unwrap();
    let created = admin_api
        .create_principal(v1::CreatePrincipalRequest {
            name: "records-manager".into(),
            role: v1::Role::Writer as i32,
            bypass_governance: true,
            mfa: String::new(),
            s3: false,
        })
        .await
        .unwrap()
        .into_inner();
    let manager = format!("{}:{}", created.principal.unwrap().access_key_id, created.secret);
    let mut archive = app.archive_as(&owner).await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: "vault".into(), object_lock: true }).await.unwrap();
    // Default retention is stamped into new versions that carry none.
    let default = v1::DefaultRetention { mode: v1::RetentionMode::Governance as i32, days: 30, years: 0 };
    let mut compliance = compliance_as(&app, &owner).await;
    let bucket = compliance
        .put_bucket_default_retention(v1::PutBucketDefaultRetentionRequest {
            bucket: "vault".into(),
            default_retention: Some(default),
            mfa: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .bucket
        .unwrap();
    assert_eq!(bucket.default_retention.unwrap().days, 30);
    let written = put_locked(&mut archive, "memo", None, "").await.unwrap();
    let head = archive
        .head_object(v1::HeadObjectRequest { bucket: "vault".into(), key: "memo".into(), version_id: String::new() })
        .await
        .unwrap()
        .into_inner()
        .version
        .unwrap();
    let stamped = head.retention.unwrap();
    assert_eq!(stamped.mode, v1::RetentionMode::Governance as i32);
    assert_eq!(stamped.retain_until_unix_micros, head.created_at_unix_micros + 30 * DAY_MICROS);

    // Without the right, or without asking for bypass: refused.
    let shorten =
        |bypass| set_retention("memo", &written.version_id, Some(retention(v1::RetentionMode::Governance, 1)), bypass);
    assert_eq!(reason(&compliance.put_object_retention(shorten(true)).await.unwrap_err()), "RETENTION_SHORTEN_DENIED");
    let mut as_manager = compliance_as(&app, &manager).await;
    assert_eq!(reason(&as_manager.put_object_retention(shorten(false)).await.unwrap_err()), "RETENTION_SHORTEN_DENIED");
    as_manager.put_object_retention(shorten(true)).await.unwrap();
    let mut manager_archive = app.archive_as(&manager).await.unwrap();
    assert_eq!(
        reason(&manager_archive.delete_object(purge("memo", &written.version_id, false)).await.unwrap_err()),
        "OBJECT_LOCKED"
    );
    manager_archive.delete_object(purge("memo", &written.version_id, true)).await.unwrap();

    // Ingest records carry retention too.
    let record = v1::IngestRecord {
        sequence: 1,
        bucket: "vault".into(),
        key: "ingested".into(),
        data: b"r".to_vec(),
        retention: Some(retention(v1::RetentionMode::Compliance, 3)),
        ..Default::default()
    };
    let mut acks = archive.ingest(tokio_stream::iter(vec![record])).await.unwrap().into_inner();
    let ack = acks.message().await.unwrap().unwrap();
    assert!(ack.error.is_none(), "{ack:?}");
    let head = archive
        .head_object(v1::HeadObjectRequest {
            bucket: "vault".into(),
            key: "ingested".into(),
            version_id: ack.version_id,
        })
        .await
        .unwrap()
        .into_inner()
        .version
        .unwrap();
    assert_eq!(head.retention, Some(retention(v1::RetentionMode::Compliance, 3)));

    // Retention and holds need an Object Lock bucket; writers cannot place holds at write.
    let mut plain = app.archive_as(&owner).await.unwrap();
    plain.create_bucket(v1::CreateBucketRequest { bucket: "plain".into(), object_lock: false }).await.unwrap();
    let header = v1::PutObjectHeader {
        bucket: "plain".into(),
        key: "k".into(),
        retention: Some(retention(v1::RetentionMode::Compliance, 1)),
        ..Default::default()
    };
    let messages = vec![v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Header(header)) }];
    assert_eq!(reason(&plain.put_object(tokio_stream::iter(messages)).await.unwrap_err()), "INVALID_ARGUMENT");
    assert_eq!(reason(&put_locked(&mut archive, "x", None, "case").await.unwrap_err()), "ACCESS_DENIED");
}

/// The clock attack: jump the system clock ten years, restart, try to purge.
#[tokio::test]
async fn a_forward_clock_jump_does_not_expire_retention_until_an_admin_accepts_it() {
    use wormbox_test_utils::SimToken;
    use wormbox_tokensim::Fault;

    let mut app = TestAppliance::start().await.unwrap();
    // The admin's own token, enrolled and activated.
    let token = SimToken::start(app.shared_clock(), "GAHT-ADMIN-01", 30, Fault::None, 0).unwrap();
    let mut mfa = app.mfa_as(app.admin_credential()).await.unwrap();
    let seed = v1::SeedEnrollment {
        serial: token.serial.clone(),
        seed_base32: wormbox_test_utils::TOKEN_SEED_BASE32.into(),
        ..Default::default()
    };
    mfa.enroll_device(v1::EnrollDeviceRequest {
        source: Some(v1::enroll_device_request::Source::Seed(seed)),
        ..Default::default()
    })
    .await
    .unwrap();
    let clock = app.shared_clock();
    let code = |offset| token.code(&clock, offset).split(' ').nth(1).unwrap().to_owned();
    mfa.activate_device(v1::ActivateDeviceRequest {
        serial: token.serial.clone(),
        first_code: code(0),
        second_code: code(1),
    })
    .await
    .unwrap();

    let mut archive = app.archive().await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: "vault".into(), object_lock: true }).await.unwrap();
    let locked = put_locked(&mut archive, "k", Some(retention(v1::RetentionMode::Compliance, 1)), "").await.unwrap();

    // Set back a year, then forward ten years: retention stands.
    app.clock().set(wormbox_model::Timestamp(TEST_EPOCH.0 - 365 * DAY_MICROS));
    assert_eq!(
        reason(&archive.delete_object(purge("k", &locked.version_id, false)).await.unwrap_err()),
        "OBJECT_LOCKED"
    );
    app.clock().set(wormbox_model::Timestamp(TEST_EPOCH.0 + 3653 * DAY_MICROS));
    assert_eq!(
        reason(&archive.delete_object(purge("k", &locked.version_id, false)).await.unwrap_err()),
        "OBJECT_LOCKED"
    );
    let mut admin = app.admin().await.unwrap();
    let clock = admin.get_clock(v1::GetClockRequest {}).await.unwrap().into_inner();
    assert!(clock.held_back_seconds > 9 * 365 * 24 * 3600, "{clock:?}");

    // A restart after the jump keeps the persisted compliance clock.
    app.restart().await.unwrap();
    let mut archive = app.archive().await.unwrap();
    assert_eq!(
        reason(&archive.delete_object(purge("k", &locked.version_id, false)).await.unwrap_err()),
        "OBJECT_LOCKED"
    );

    // A stolen admin key without the token cannot accept the jump.
    let mut admin = app.admin().await.unwrap();
    let err = admin.accept_clock_forward(v1::AcceptClockForwardRequest { mfa: String::new() }).await.unwrap_err();
    assert_eq!(reason(&err), "MFA_REQUIRED");
    let with_code = format!("{} {}", token.serial, code(0));
    let accepted = admin.accept_clock_forward(v1::AcceptClockForwardRequest { mfa: with_code }).await.unwrap();
    assert!(accepted.into_inner().compliance_unix_micros >= TEST_EPOCH.0 + 3653 * DAY_MICROS);
    archive.delete_object(purge("k", &locked.version_id, false)).await.unwrap();
    let entries = app.server().app().store().ledger_entries(1).unwrap();
    assert!(entries.iter().any(|(e, _)| e.op.as_str() == "clock-held-back"));
    assert!(entries.iter().any(|(e, _)| e.op.as_str() == "clock-accepted"));
}

/// The remaining attacks: overwrite a locked version, hide it behind a
/// marker, purge it at the instant it expires, or change it as a reader.
#[tokio::test]
async fn overwriting_hiding_racing_expiry_and_readers_change_nothing() {
    let app = TestAppliance::start().await.unwrap();
    let reader = app.principal("reader", v1::Role::Reader).await.unwrap();
    let mut admin = app.archive().await.unwrap();
    admin.create_bucket(v1::CreateBucketRequest { bucket: "vault".into(), object_lock: true }).await.unwrap();
    let locked = put_locked(&mut admin, "k", Some(retention(v1::RetentionMode::Compliance, 1)), "").await.unwrap();
    // "Overwriting" writes a new version; a marker hides but destroys nothing.
    let newer = put_locked(&mut admin, "k", None, "").await.unwrap();
    assert_ne!(newer.version_id, locked.version_id);
    let marker = admin
        .delete_object(v1::DeleteObjectRequest { bucket: "vault".into(), key: "k".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(marker.delete_marker);
    let (meta, body) = get(&mut admin, "vault", "k", &locked.version_id).await.unwrap();
    assert_eq!(body, b"record k");
    assert_eq!(meta.retention.unwrap().mode, v1::RetentionMode::Compliance as i32);
    // A reader's attempt to change retention is refused; it may not attempt
    // it at all, so it is a diagnostic, not a ledger entry (issue 16, finding 7).
    let mut as_reader = compliance_as(&app, &reader).await;
    let extend = set_retention("k", &locked.version_id, Some(retention(v1::RetentionMode::Compliance, 2)), false);
    let before = app.server().app().store().ledger_entries(1).unwrap().len();
    assert_eq!(reason(&as_reader.put_object_retention(extend).await.unwrap_err()), "ACCESS_DENIED");
    assert_eq!(app.server().app().store().ledger_entries(1).unwrap().len(), before);
    // One microsecond before retain-until the purge is refused; at it, it goes.
    app.clock().advance(Duration::from_micros((DAY_MICROS - 1) as u64));
    assert_eq!(reason(&admin.delete_object(purge("k", &locked.version_id, false)).await.unwrap_err()), "OBJECT_LOCKED");
    app.clock().advance(Duration::from_micros(1));
    admin.delete_object(purge("k", &locked.version_id, false)).await.unwrap();
}
