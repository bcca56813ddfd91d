//! Rights before codes (issue 16, findings 6, 15, 18 and 19), against a real
//! server: a caller who may not do an operation cannot spend or charge the
//! owner's token, only a bucket's owner changes its versioning or MFA Delete,
//! a locked or held version is refused before its code is spent, and a
//! missing code gets one answer, MFA_REQUIRED, on every call.

use std::time::Duration;

use tonic::Code;
use wormbox_proto::{ArchiveClient, v1};
use wormbox_test_utils::{TEST_EPOCH, TestAppliance};

use super::{DAY_MICROS, STEP, token_for};
use crate::e2e::mfa::versioning;
use crate::e2e::{put_end, reason};

fn retention(mode: v1::RetentionMode, until_micros: i64) -> v1::Retention {
    v1::Retention { mode: mode as i32, retain_until_unix_micros: until_micros }
}

/// Writes one version of `key` and returns its id.
async fn put(archive: &mut ArchiveClient, bucket: &str, key: &str, retention: Option<v1::Retention>) -> String {
    let header = v1::PutObjectHeader { bucket: bucket.into(), key: key.into(), retention, ..Default::default() };
    let data = format!("record {key}").into_bytes();
    let messages = vec![
        v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Header(header)) },
        v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Data(data.clone())) },
        put_end(&data),
    ];
    archive.put_object(tokio_stream::iter(messages)).await.unwrap().into_inner().version_id
}

fn purge(bucket: &str, key: &str, version_id: &str, mfa: &str) -> v1::DeleteObjectRequest {
    v1::DeleteObjectRequest {
        bucket: bucket.into(),
        key: key.into(),
        version_id: version_id.into(),
        mfa: mfa.into(),
        ..Default::default()
    }
}

/// A device as an admin lists it.
async fn device(app: &TestAppliance, serial: &str) -> v1::MfaDevice {
    let mut admin = app.mfa_as(app.admin_credential()).await.unwrap();
    let listed = admin.list_devices(v1::ListDevicesRequest::default()).await.unwrap().into_inner();
    listed.devices.into_iter().find(|d| d.serial == serial).expect("the device is listed")
}

fn ledger(app: &TestAppliance) -> Vec<wormbox_store::ledger::LedgerEntry> {
    app.server().app().store().ledger_entries(1).unwrap().into_iter().map(|(e, _)| e).collect()
}

fn count(app: &TestAppliance, op: &str) -> usize {
    ledger(app).iter().filter(|e| e.op.as_str() == op).count()
}

/// Finding 6: a reader sends five wrong codes naming the owner's token to
/// PutObjectRetention with bypass. Each is refused for the role before the
/// code is looked at, so the token is charged no failure, is not locked out,
/// and the owner's next code works.
#[tokio::test]
async fn a_caller_without_the_right_cannot_lock_the_owners_token_out() {
    let app = TestAppliance::start().await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let reader = app.principal("reader", v1::Role::Reader).await.unwrap();
    let token = token_for(&app, &owner, "GAHT-AUTH-006").await;
    let mut archive = app.archive_as(&owner).await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: "vault".into(), object_lock: true }).await.unwrap();
    let until = TEST_EPOCH.0 + DAY_MICROS;
    let memo = put(&mut archive, "vault", "memo", Some(retention(v1::RetentionMode::Governance, until))).await;
    let scratch = put(&mut archive, "vault", "scratch", None).await;
    let on = token.code(app.clock(), 0);
    archive.put_bucket_versioning(versioning("vault", v1::VersioningStatus::Enabled, Some(true), &on)).await.unwrap();
    app.clock().advance(Duration::from_secs(STEP));

    // Wrong codes, all different from the one the token shows now.
    let shown: u32 = token.code(app.clock(), 0).split(' ').nth(1).unwrap().parse().unwrap();
    let mut as_reader = app.compliance_as(&reader).await.unwrap();
    for attempt in 1..=5u32 {
        let request = v1::PutObjectRetentionRequest {
            bucket: "vault".into(),
            key: "memo".into(),
            version_id: memo.clone(),
            retention: None,
            bypass_governance: true,
            mfa: format!("{} {:06}", token.serial, (shown + attempt) % 1_000_000),
        };
        let err = as_reader.put_object_retention(request).await.unwrap_err();
        assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "ACCESS_DENIED"), "attempt {attempt}");
    }

    let listed = device(&app, &token.serial).await;
    assert_eq!(listed.state, v1::MfaDeviceState::Active as i32);
    assert_eq!((listed.failures, listed.locked_until_unix_seconds), (0, 0), "the owner's token was charged");
    assert!(
        ledger(&app).iter().all(|e| !(e.op.as_str() == "mfa-refused" && e.key == token.serial)),
        "the reader's codes reached the authority"
    );
    // The retention stands, and the owner's code works at once.
    let head = v1::HeadObjectRequest { bucket: "vault".into(), key: "memo".into(), version_id: memo.clone() };
    let kept = archive.head_object(head).await.unwrap().into_inner().version.unwrap();
    assert_eq!(kept.retention.unwrap().retain_until_unix_micros, until);
    let right = token.code(app.clock(), 0);
    let gone = archive.delete_object(purge("vault", "scratch", &scratch, &right)).await.unwrap().into_inner();
    assert_eq!(gone.version_id, scratch);
}

/// Finding 15: admin B cannot change admin A's bucket's versioning or MFA
/// Delete; the refusal names ownership (not "owner or an admin"), and the
/// bucket is unchanged. The owner still can.
#[tokio::test]
async fn only_the_owner_changes_versioning_or_mfa_delete_not_another_admin() {
    let app = TestAppliance::start().await.unwrap();
    let admin_a = app.principal("admin-a", v1::Role::Admin).await.unwrap();
    let mut as_a = app.archive_as(&admin_a).await.unwrap();
    as_a.create_bucket(v1::CreateBucketRequest { bucket: "a-records".into(), ..Default::default() }).await.unwrap();
    as_a.put_bucket_versioning(versioning("a-records", v1::VersioningStatus::Enabled, None, "")).await.unwrap();

    // Admin B is the first admin, who does not own the bucket.
    let mut as_b = app.archive().await.unwrap();
    for request in [
        versioning("a-records", v1::VersioningStatus::Suspended, None, ""),
        versioning("a-records", v1::VersioningStatus::Enabled, Some(true), ""),
    ] {
        let err = as_b.put_bucket_versioning(request).await.unwrap_err();
        assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "ACCESS_DENIED"));
        assert!(err.message().contains("only the owner"), "{}", err.message());
        assert!(!err.message().contains("or an admin"), "{}", err.message());
    }
    let bucket = as_b
        .get_bucket(v1::GetBucketRequest { bucket: "a-records".into() })
        .await
        .unwrap()
        .into_inner()
        .bucket
        .unwrap();
    assert_eq!(bucket.versioning, v1::VersioningStatus::Enabled as i32);
    assert_eq!(bucket.mfa_delete, v1::MfaDeleteStatus::Disabled as i32);
    let suspended =
        as_a.put_bucket_versioning(versioning("a-records", v1::VersioningStatus::Suspended, None, "")).await;
    assert_eq!(suspended.unwrap().into_inner().bucket.unwrap().versioning, v1::VersioningStatus::Suspended as i32);
}

/// Finding 18: on an MFA Delete bucket, purging a COMPLIANCE version or a
/// held one answers OBJECT_LOCKED or LEGAL_HOLD, without a code as with one,
/// and a shortening with a code answers RETENTION_SHORTEN_DENIED; the code
/// is not spent by any of them and then works for a purge that runs.
#[tokio::test]
async fn a_locked_or_held_version_is_refused_before_the_code_is_spent() {
    let app = TestAppliance::start().await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let token = token_for(&app, &owner, "GAHT-AUTH-018").await;
    let mut archive = app.archive_as(&owner).await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: "vault".into(), object_lock: true }).await.unwrap();
    let until = TEST_EPOCH.0 + DAY_MICROS;
    let trade = put(&mut archive, "vault", "trade", Some(retention(v1::RetentionMode::Compliance, until))).await;
    let held = put(&mut archive, "vault", "held", None).await;
    let scratch = put(&mut archive, "vault", "scratch", None).await;
    let hold = v1::PutObjectLegalHoldRequest {
        bucket: "vault".into(),
        key: "held".into(),
        version_id: held.clone(),
        case_id: "SEC-2026-18".into(),
        place: true,
        note: String::new(),
        mfa: String::new(),
    };
    app.compliance().await.unwrap().put_object_legal_hold(hold).await.unwrap();
    let on = token.code(app.clock(), 0);
    archive.put_bucket_versioning(versioning("vault", v1::VersioningStatus::Enabled, Some(true), &on)).await.unwrap();
    app.clock().advance(Duration::from_secs(STEP));

    // Without a code, the lock and the hold answer, not the missing code.
    let err = archive.delete_object(purge("vault", "trade", &trade, "")).await.unwrap_err();
    assert_eq!(reason(&err), "OBJECT_LOCKED");
    let err = archive.delete_object(purge("vault", "held", &held, "")).await.unwrap_err();
    assert_eq!(reason(&err), "LEGAL_HOLD");

    // With a valid code: the same answers, and the code stays unspent.
    let code = token.code(app.clock(), 0);
    let accepted = count(&app, "mfa-accepted");
    let err = archive.delete_object(purge("vault", "trade", &trade, &code)).await.unwrap_err();
    assert_eq!(reason(&err), "OBJECT_LOCKED");
    let err = archive.delete_object(purge("vault", "held", &held, &code)).await.unwrap_err();
    assert_eq!(reason(&err), "LEGAL_HOLD");
    let shorten = v1::PutObjectRetentionRequest {
        bucket: "vault".into(),
        key: "trade".into(),
        version_id: trade.clone(),
        retention: Some(retention(v1::RetentionMode::Compliance, TEST_EPOCH.0 + DAY_MICROS / 2)),
        bypass_governance: false,
        mfa: code.clone(),
    };
    let err = app.compliance_as(&owner).await.unwrap().put_object_retention(shorten).await.unwrap_err();
    assert_eq!(reason(&err), "RETENTION_SHORTEN_DENIED");
    assert_eq!(count(&app, "mfa-accepted"), accepted, "a refused operation spent the code");
    assert_eq!(device(&app, &token.serial).await.failures, 0);

    // The same code then works for a purge that runs, once.
    let gone = archive.delete_object(purge("vault", "scratch", &scratch, &code)).await.unwrap().into_inner();
    assert_eq!(gone.version_id, scratch);
    assert_eq!(count(&app, "mfa-accepted"), accepted + 1);
    for (key, version_id) in [("trade", &trade), ("held", &held)] {
        let head = v1::HeadObjectRequest { bucket: "vault".into(), key: key.into(), version_id: version_id.clone() };
        archive.head_object(head).await.unwrap();
    }
}

/// Finding 19: a missing code answers MFA_REQUIRED on AcceptClockForward
/// and DeactivateDevice, as on DeleteObject, and is never logged as a
/// malformed code; the device stays active until a code is given.
#[tokio::test]
async fn a_missing_code_is_mfa_required_everywhere() {
    let app = TestAppliance::start().await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let token = token_for(&app, &owner, "GAHT-AUTH-019").await;

    let mut admin = app.admin().await.unwrap();
    let err = admin.accept_clock_forward(v1::AcceptClockForwardRequest { mfa: String::new() }).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "MFA_REQUIRED"));
    for credential in [owner.as_str(), app.admin_credential()] {
        let request = v1::DeactivateDeviceRequest { serial: token.serial.clone(), mfa: String::new() };
        let err = app.mfa_as(credential).await.unwrap().deactivate_device(request).await.unwrap_err();
        assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "MFA_REQUIRED"));
    }
    assert_eq!(device(&app, &token.serial).await.state, v1::MfaDeviceState::Active as i32);

    // The archive's answer to a missing code is the same.
    let mut archive = app.archive_as(&owner).await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: "plain".into(), ..Default::default() }).await.unwrap();
    let on = token.code(app.clock(), 0);
    archive.put_bucket_versioning(versioning("plain", v1::VersioningStatus::Enabled, Some(true), &on)).await.unwrap();
    let id = put(&mut archive, "plain", "k", None).await;
    let err = archive.delete_object(purge("plain", "k", &id, "")).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "MFA_REQUIRED"));
    assert!(ledger(&app).iter().all(|e| !e.detail.contains("malformed")), "a missing code was logged as malformed");

    // With a code, the owner deactivates the device.
    app.clock().advance(Duration::from_secs(STEP));
    let request = v1::DeactivateDeviceRequest { serial: token.serial.clone(), mfa: token.code(app.clock(), 0) };
    let deactivated = app.mfa_as(&owner).await.unwrap().deactivate_device(request).await.unwrap().into_inner();
    assert_eq!(deactivated.device.unwrap().state, v1::MfaDeviceState::Deactivated as i32);
}

/// Finding 7: refusals cannot grow the ledger without bound. A reader's 500
/// attempts (retention changes and purges it may not do) write nothing; the
/// owner's 100 purges with malformed codes are itemised up to the minute's
/// budget, and the rest of the minute is one entry that counts them.
#[tokio::test]
async fn refusals_grow_the_ledger_by_a_bounded_amount() {
    let app = TestAppliance::start().await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let reader = app.principal("reader", v1::Role::Reader).await.unwrap();
    let token = token_for(&app, &owner, "GAHT-AUTH-007").await;
    let mut archive = app.archive_as(&owner).await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: "vault".into(), object_lock: true }).await.unwrap();
    let memo = put(&mut archive, "vault", "memo", None).await;
    let on = token.code(app.clock(), 0);
    archive.put_bucket_versioning(versioning("vault", v1::VersioningStatus::Enabled, Some(true), &on)).await.unwrap();

    let before = ledger(&app).len();
    let mut as_reader = app.compliance_as(&reader).await.unwrap();
    let mut reader_archive = app.archive_as(&reader).await.unwrap();
    for attempt in 0..250i64 {
        let request = v1::PutObjectRetentionRequest {
            bucket: "vault".into(),
            key: "memo".into(),
            version_id: memo.clone(),
            retention: Some(retention(v1::RetentionMode::Compliance, TEST_EPOCH.0 + (attempt + 1) * DAY_MICROS)),
            ..Default::default()
        };
        let err = as_reader.put_object_retention(request).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        let err = reader_archive.delete_object(purge("vault", "memo", &memo, "garbage")).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
    }
    assert_eq!(ledger(&app).len(), before, "a caller who may not attempt it writes nothing");

    for _ in 0..100 {
        let err = archive.delete_object(purge("vault", "memo", &memo, "garbage")).await.unwrap_err();
        assert_eq!(reason(&err), "MFA_INVALID");
    }
    let grown = ledger(&app).len() - before;
    assert!((1..=20).contains(&grown), "the owner's refusals are itemised up to a budget: {grown}");
    app.clock().advance(Duration::from_secs(61));
    let err = archive.delete_object(purge("vault", "memo", &memo, "garbage")).await.unwrap_err();
    assert_eq!(reason(&err), "MFA_INVALID");
    let entries = ledger(&app);
    let tally = &entries[before + grown];
    assert_eq!(tally.op.as_str(), "refused");
    assert!(tally.detail.starts_with(&format!("{} further refused attempts", 100 - grown)), "{}", tally.detail);
    assert_eq!(entries.len(), before + grown + 2, "the count, then the new minute's first refusal");
}

/// Review of issue 16: nobody but a token's owner can charge it failures
/// with codes an operation does not need or that are not theirs to give.
/// Another writer extends retention on the owner's MFA Delete bucket with
/// the owner's serial and wrong codes (an extension needs no code, so the
/// code is not judged); a stolen admin key tries to resync and to
/// deactivate the owner's token with wrong codes (only the owner resyncs;
/// an admin's deactivation code is judged as one of the admin's own). After
/// more than five of each the owner's token has no failure and its next
/// code works.
#[tokio::test]
async fn nobody_but_the_owner_can_charge_the_owners_token_a_failure() {
    let app = TestAppliance::start().await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let other = app.principal("other", v1::Role::Writer).await.unwrap();
    let token = token_for(&app, &owner, "GAHT-AUTH-LOCK").await;
    let mut archive = app.archive_as(&owner).await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: "vault".into(), object_lock: true }).await.unwrap();
    let memo =
        put(&mut archive, "vault", "memo", Some(retention(v1::RetentionMode::Governance, TEST_EPOCH.0 + DAY_MICROS)))
            .await;
    let scratch = put(&mut archive, "vault", "scratch", None).await;
    let on = token.code(app.clock(), 0);
    archive.put_bucket_versioning(versioning("vault", v1::VersioningStatus::Enabled, Some(true), &on)).await.unwrap();
    app.clock().advance(Duration::from_secs(STEP));
    let wrong = format!("{} 000000", token.serial);

    let mut as_other = app.compliance_as(&other).await.unwrap();
    for day in 2..=8i64 {
        let request = v1::PutObjectRetentionRequest {
            bucket: "vault".into(),
            key: "memo".into(),
            version_id: memo.clone(),
            retention: Some(retention(v1::RetentionMode::Governance, TEST_EPOCH.0 + day * DAY_MICROS)),
            mfa: wrong.clone(),
            ..Default::default()
        };
        as_other.put_object_retention(request).await.expect("an extension needs no code and runs");
    }
    let mut stolen = app.mfa_as(app.admin_credential()).await.unwrap();
    for _ in 0..6 {
        let resync = v1::ResyncDeviceRequest {
            serial: token.serial.clone(),
            first_code: "000000".into(),
            second_code: "000001".into(),
        };
        assert_eq!(reason(&stolen.resync_device(resync).await.unwrap_err()), "MFA_INVALID");
        let deactivate = v1::DeactivateDeviceRequest { serial: token.serial.clone(), mfa: wrong.clone() };
        assert_eq!(reason(&stolen.deactivate_device(deactivate).await.unwrap_err()), "MFA_INVALID");
    }

    let listed = device(&app, &token.serial).await;
    assert_eq!(listed.state, v1::MfaDeviceState::Active as i32);
    assert_eq!((listed.failures, listed.locked_until_unix_seconds), (0, 0), "the owner's token was charged");
    let right = token.code(app.clock(), 0);
    let gone = archive.delete_object(purge("vault", "scratch", &scratch, &right)).await.unwrap().into_inner();
    assert_eq!(gone.version_id, scratch);
}
