//! MFA-protected administration (issue 16, findings 2, 3, 4 and 16), against
//! a real server: once an admin has an active device, a stolen admin key
//! alone mints no admin, no bypass right and no device, accepts no clock
//! jump, releases no legal hold and lowers no bucket default; and a device
//! enrolled for someone is usable only when that owner activates it, in
//! time, before choosing another.

use std::time::Duration;

use tonic::Code;
use wormbox_model::Timestamp;
use wormbox_proto::v1;
use wormbox_test_utils::{TEST_EPOCH, TOKEN_SEED_BASE32, TestAppliance};

use super::{DAY_MICROS, STEP, key_id, token_for};
use crate::e2e::mfa::versioning;
use crate::e2e::reason;

fn ledger_ops(app: &TestAppliance) -> Vec<String> {
    let entries = app.server().app().store().ledger_entries(1).unwrap();
    entries.into_iter().map(|(e, _)| e.op.as_str().to_owned()).collect()
}

fn enroll(owner: &str, serial: &str, mfa: &str) -> v1::EnrollDeviceRequest {
    let seed = v1::SeedEnrollment {
        serial: serial.into(),
        seed_base32: TOKEN_SEED_BASE32.into(),
        step_seconds: STEP as u32,
        ..Default::default()
    };
    v1::EnrollDeviceRequest {
        owner: owner.into(),
        source: Some(v1::enroll_device_request::Source::Seed(seed)),
        mfa: mfa.into(),
    }
}

fn principal(name: &str, role: v1::Role, bypass: bool, mfa: &str) -> v1::CreatePrincipalRequest {
    v1::CreatePrincipalRequest {
        name: name.into(),
        role: role as i32,
        bypass_governance: bypass,
        mfa: mfa.into(),
        ..Default::default()
    }
}

/// The code `offset` steps from now of a simulated token, digits only:
/// every test token shares one seed, so this is also the code of any device
/// enrolled with `TOKEN_SEED_BASE32`.
fn digits(token: &wormbox_test_utils::SimToken, app: &TestAppliance, offset: i64) -> String {
    token.code(app.clock(), offset).split(' ').nth(1).unwrap().to_owned()
}

/// Findings 2 and 4: the admin holds a token; someone holding only the
/// admin's key tries to mint an admin or the bypass right, to give itself a
/// device with a seed it knows, to revoke the admin and to accept a clock
/// jump of ten years. Every attempt is MFA_REQUIRED, changes nothing and is
/// in the ledger; the admin with the token does each.
#[tokio::test]
async fn a_stolen_admin_key_mints_no_power_no_device_and_accepts_no_jump() {
    let app = TestAppliance::start().await.unwrap();
    let second = app.principal("second-admin", v1::Role::Admin).await.unwrap();
    let admin_key = key_id(app.admin_credential());
    let token = token_for(&app, app.admin_credential(), "GAHT-ADMIN-101").await;
    let mut stolen = app.admin().await.unwrap();
    let mut stolen_mfa = app.mfa_as(app.admin_credential()).await.unwrap();
    let principals_before = stolen.list_principals(v1::ListPrincipalsRequest {}).await.unwrap().into_inner();

    let refusals_before = ledger_ops(&app).iter().filter(|op| *op == "mfa-refused").count();
    for request in [
        principal("mallory", v1::Role::Admin, false, ""),
        principal("mallory", v1::Role::Writer, true, ""),
        principal("mallory", v1::Role::Auditor, true, ""),
    ] {
        let err = stolen.create_principal(request).await.unwrap_err();
        assert_eq!(reason(&err), "MFA_REQUIRED", "{err:?}");
    }
    for owner in [admin_key.as_str(), ""] {
        let err = stolen_mfa.enroll_device(enroll(owner, "GAHT-MALLORY-1", "")).await.unwrap_err();
        assert_eq!(reason(&err), "MFA_REQUIRED", "{err:?}");
    }
    let revoke = v1::RevokePrincipalRequest { access_key_id: key_id(&second), mfa: String::new() };
    assert_eq!(reason(&stolen.revoke_principal(revoke).await.unwrap_err()), "MFA_REQUIRED");
    app.clock().set(Timestamp(TEST_EPOCH.0 + 3653 * DAY_MICROS));
    let accept = v1::AcceptClockForwardRequest { mfa: String::new() };
    assert_eq!(reason(&stolen.accept_clock_forward(accept).await.unwrap_err()), "MFA_REQUIRED");
    // Another admin's key cannot lend its own (absent) device either.
    let mut second_admin = app.mfa_as(&second).await.unwrap();
    let with_admins_code = format!("GAHT-ADMIN-101 {}", digits(&token, &app, 0));
    let err = second_admin.enroll_device(enroll("", "GAHT-MALLORY-2", &with_admins_code)).await.unwrap_err();
    assert_eq!(reason(&err), "MFA_INVALID", "a code is judged as one of the caller's own devices");

    // Nothing changed, and every attempt is evidence.
    let principals_after = stolen.list_principals(v1::ListPrincipalsRequest {}).await.unwrap().into_inner();
    assert_eq!(principals_after, principals_before);
    let devices = stolen_mfa.list_devices(v1::ListDevicesRequest::default()).await.unwrap().into_inner().devices;
    assert_eq!(devices.iter().map(|d| d.serial.as_str()).collect::<Vec<_>>(), ["GAHT-ADMIN-101"]);
    let clock = stolen.get_clock(v1::GetClockRequest {}).await.unwrap().into_inner();
    assert!(clock.held_back_seconds > 9 * 365 * 24 * 3600, "{clock:?}");
    let refusals = ledger_ops(&app).iter().filter(|op| *op == "mfa-refused").count() - refusals_before;
    assert!(refusals >= 7, "each attempt without a code is a ledger entry ({refusals})");

    // The admin with the token does each, one fresh code per change.
    app.clock().set(Timestamp(TEST_EPOCH.0 + 3 * STEP as i64 * 1_000_000));
    let code = || {
        app.clock().advance(Duration::from_secs(STEP));
        token.code(app.clock(), 0)
    };
    let created = stolen.create_principal(principal("auditor", v1::Role::Auditor, true, &code())).await.unwrap();
    assert!(created.into_inner().principal.unwrap().bypass_governance);
    stolen.create_principal(principal("third-admin", v1::Role::Admin, false, &code())).await.unwrap();
    let revoke = v1::RevokePrincipalRequest { access_key_id: key_id(&second), mfa: code() };
    assert!(stolen.revoke_principal(revoke).await.unwrap().into_inner().ledger_sequence > 0);
    stolen_mfa.enroll_device(enroll("", "GAHT-ADMIN-102", &code())).await.unwrap();
    // A writer, a reader: no power minted, no code asked.
    stolen.create_principal(principal("clerk", v1::Role::Writer, false, "")).await.unwrap();
}

/// Finding 3: while the owner has no device, a stolen admin key enrols one
/// with a seed it knows. The owner later activates a real token and turns
/// MFA Delete on. The planted device cannot be activated by the admin, is
/// expired by the owner's activation, and its codes purge nothing. A
/// device left pending past `[mfa] pending_hours` expires.
#[tokio::test]
async fn a_pending_device_is_no_back_door() {
    let app = TestAppliance::start().await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let owner_key = key_id(&owner);
    let mut admin_mfa = app.mfa_as(app.admin_credential()).await.unwrap();
    admin_mfa.enroll_device(enroll(&owner_key, "GAHT-PLANTED-1", "")).await.unwrap();
    app.clock().advance(Duration::from_secs(STEP));
    let token = token_for(&app, &owner, "GAHT-OWNER-001").await;

    let mut archive = app.archive_as(&owner).await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: "vault".into(), ..Default::default() }).await.unwrap();
    let on = token.code(app.clock(), 0);
    archive.put_bucket_versioning(versioning("vault", v1::VersioningStatus::Enabled, Some(true), &on)).await.unwrap();
    let header = v1::PutObjectHeader { bucket: "vault".into(), key: "memo".into(), ..Default::default() };
    let messages = vec![
        v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Header(header)) },
        v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Data(b"record".to_vec())) },
    ];
    let version_id = archive.put_object(tokio_stream::iter(messages)).await.unwrap().into_inner().version_id;
    app.clock().advance(Duration::from_secs(STEP));

    // The admin who planted it cannot activate it, nor can the owner now.
    let activate = |first: String, second: String| v1::ActivateDeviceRequest {
        serial: "GAHT-PLANTED-1".into(),
        first_code: first,
        second_code: second,
    };
    let err = admin_mfa.activate_device(activate(digits(&token, &app, 0), digits(&token, &app, 1))).await;
    assert_eq!(reason(&err.unwrap_err()), "MFA_INVALID");
    let mut owner_mfa = app.mfa_as(&owner).await.unwrap();
    let err = owner_mfa.activate_device(activate(digits(&token, &app, 2), digits(&token, &app, 3))).await;
    assert_eq!(reason(&err.unwrap_err()), "MFA_INVALID");
    let listed = admin_mfa.list_devices(v1::ListDevicesRequest::default()).await.unwrap().into_inner().devices;
    let planted = listed.iter().find(|d| d.serial == "GAHT-PLANTED-1").unwrap();
    assert_eq!(planted.state, v1::MfaDeviceState::Expired as i32);
    // Its codes purge nothing.
    let purge = v1::DeleteObjectRequest {
        bucket: "vault".into(),
        key: "memo".into(),
        version_id: version_id.clone(),
        mfa: format!("GAHT-PLANTED-1 {}", digits(&token, &app, 0)),
        ..Default::default()
    };
    assert_eq!(reason(&archive.delete_object(purge).await.unwrap_err()), "MFA_INVALID");
    let head = v1::HeadObjectRequest { bucket: "vault".into(), key: "memo".into(), version_id };
    archive.head_object(head).await.unwrap();

    // A device nobody activates within the pending time expires.
    let code = token.code(app.clock(), 0);
    admin_mfa.enroll_device(enroll(&owner_key, "GAHT-SPARE-001", &code)).await.unwrap();
    app.clock().advance(Duration::from_secs(24 * 3600 + STEP));
    let late = v1::ActivateDeviceRequest {
        serial: "GAHT-SPARE-001".into(),
        first_code: digits(&token, &app, 0),
        second_code: digits(&token, &app, 1),
    };
    let err = owner_mfa.activate_device(late).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "MFA_DEVICE_EXPIRED"), "{err:?}");
}

/// Finding 16: on an Object Lock bucket with MFA Delete on, a stolen admin
/// key (and an auditor's key) with no code releases no legal hold and
/// clears, shortens or weakens no default retention; raising it needs no
/// code; the admin with the token releases the hold.
#[tokio::test]
async fn a_stolen_key_releases_no_hold_and_lowers_no_default() {
    let app = TestAppliance::start().await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let auditor = app.principal("auditor", v1::Role::Auditor).await.unwrap();
    let owner_token = token_for(&app, &owner, "GAHT-OWNER-016").await;
    let token = token_for(&app, app.admin_credential(), "GAHT-ADMIN-016").await;

    let mut archive = app.archive_as(&owner).await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: "vault".into(), object_lock: true }).await.unwrap();
    let on = owner_token.code(app.clock(), 0);
    archive.put_bucket_versioning(versioning("vault", v1::VersioningStatus::Enabled, Some(true), &on)).await.unwrap();
    let default = |mode: v1::RetentionMode, days: u32| v1::DefaultRetention { mode: mode as i32, days, years: 0 };
    let set_default = |d: Option<v1::DefaultRetention>, mfa: &str| v1::PutBucketDefaultRetentionRequest {
        bucket: "vault".into(),
        default_retention: d,
        mfa: mfa.into(),
    };
    let mut as_owner = app.compliance_as(&owner).await.unwrap();
    as_owner
        .put_bucket_default_retention(set_default(Some(default(v1::RetentionMode::Compliance, 30)), ""))
        .await
        .unwrap();
    let header = v1::PutObjectHeader { bucket: "vault".into(), key: "memo".into(), ..Default::default() };
    let messages = vec![
        v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Header(header)) },
        v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Data(b"record".to_vec())) },
    ];
    let version_id = archive.put_object(tokio_stream::iter(messages)).await.unwrap().into_inner().version_id;
    let hold = |place: bool, mfa: &str| v1::PutObjectLegalHoldRequest {
        bucket: "vault".into(),
        key: "memo".into(),
        version_id: version_id.clone(),
        case_id: "SEC-2026-16".into(),
        place,
        note: String::new(),
        mfa: mfa.into(),
    };
    let mut as_auditor = app.compliance_as(&auditor).await.unwrap();
    as_auditor.put_object_legal_hold(hold(true, "")).await.unwrap();

    let mut stolen = app.compliance().await.unwrap();
    let refused_before = ledger_ops(&app).iter().filter(|op| *op == "refused").count();
    for caller in [&mut stolen, &mut as_auditor] {
        let err = caller.put_object_legal_hold(hold(false, "")).await.unwrap_err();
        assert_eq!(reason(&err), "MFA_REQUIRED", "{err:?}");
    }
    for lower in
        [None, Some(default(v1::RetentionMode::Compliance, 1)), Some(default(v1::RetentionMode::Governance, 30))]
    {
        for caller in [&mut stolen, &mut as_owner] {
            let err = caller.put_bucket_default_retention(set_default(lower, "")).await.unwrap_err();
            assert_eq!(reason(&err), "MFA_REQUIRED", "{lower:?}: {err:?}");
        }
    }
    let refused = ledger_ops(&app).iter().filter(|op| *op == "refused").count() - refused_before;
    assert_eq!(refused, 8, "each refusal is a ledger entry");
    let get =
        v1::GetObjectLegalHoldRequest { bucket: "vault".into(), key: "memo".into(), version_id: version_id.clone() };
    assert_eq!(stolen.get_object_legal_hold(get.clone()).await.unwrap().into_inner().legal_holds.len(), 1);
    let bucket = app.archive().await.unwrap().get_bucket(v1::GetBucketRequest { bucket: "vault".into() }).await;
    let kept = bucket.unwrap().into_inner().bucket.unwrap().default_retention.unwrap();
    assert_eq!((kept.mode, kept.days), (v1::RetentionMode::Compliance as i32, 30));

    // Raising protection needs no code; lowering with the caller's own code works.
    stolen
        .put_bucket_default_retention(set_default(Some(default(v1::RetentionMode::Compliance, 60)), ""))
        .await
        .unwrap();
    app.clock().advance(Duration::from_secs(STEP));
    let code = token.code(app.clock(), 0);
    stolen.put_object_legal_hold(hold(false, &code)).await.unwrap();
    assert!(stolen.get_object_legal_hold(get).await.unwrap().into_inner().legal_holds.is_empty());
    let owner_code = owner_token.code(app.clock(), 0);
    as_owner.put_bucket_default_retention(set_default(None, &owner_code)).await.unwrap();
}

/// Finding 18 for the clock: accepting a jump when the compliance clock is
/// not behind is refused before the code is looked at, so the code stays
/// usable for an operation that runs.
#[tokio::test]
async fn accepting_no_jump_spends_no_code() {
    let app = TestAppliance::start().await.unwrap();
    let token = token_for(&app, app.admin_credential(), "GAHT-ADMIN-018").await;
    let mut admin = app.admin().await.unwrap();
    let code = token.code(app.clock(), 0);
    let accept = v1::AcceptClockForwardRequest { mfa: code.clone() };
    let err = admin.accept_clock_forward(accept).await.unwrap_err();
    assert_eq!(reason(&err), "INVALID_ARGUMENT", "{err:?}");
    let created = admin.create_principal(principal("second-admin", v1::Role::Admin, false, &code)).await;
    assert!(created.is_ok(), "the code was not spent: {created:?}");
}
