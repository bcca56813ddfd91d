//! MFA Delete end to end: a simulated token on a real pseudo-terminal, codes
//! read through the `serial:` source, and the appliance's rules tried from
//! every side (wrong owner, replay, restart, lockout, faults, drift).

use std::time::Duration;

use tonic::Code;
use wormbox_proto::{MfaClient, v1};
use wormbox_test_utils::{SimToken, TOKEN_SEED_BASE32, TestAppliance};
use wormbox_token::source::{SerialToken, SourceError, TokenSource};
use wormbox_tokensim::Fault;

use super::{create_bucket, delete, put, reason};

const STEP: u64 = 30;

/// Enrols and activates `serial` for the principal of `credential`, with two
/// consecutive codes computed for the appliance's current step.
async fn enroll_and_activate(app: &TestAppliance, token: &SimToken, owner_credential: &str) -> MfaClient {
    let owner = owner_credential.split(':').next().unwrap().to_owned();
    let mut admin_mfa = app.mfa_as(app.admin_credential()).await.unwrap();
    let request = v1::EnrollDeviceRequest {
        owner,
        source: Some(v1::enroll_device_request::Source::Seed(v1::SeedEnrollment {
            serial: token.serial.clone(),
            seed_base32: TOKEN_SEED_BASE32.into(),
            step_seconds: STEP as u32,
            ..Default::default()
        })),
        mfa: String::new(),
    };
    let enrolled = admin_mfa.enroll_device(request).await.unwrap().into_inner();
    assert_eq!(enrolled.devices[0].state, v1::MfaDeviceState::Pending as i32);
    let code = |offset| token.code(app.clock(), offset).split(' ').nth(1).unwrap().to_owned();
    let mut owner_mfa = app.mfa_as(owner_credential).await.unwrap();
    let activated = owner_mfa
        .activate_device(v1::ActivateDeviceRequest {
            serial: token.serial.clone(),
            first_code: code(0),
            second_code: code(1),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(activated.device.unwrap().state, v1::MfaDeviceState::Active as i32);
    // Both activation codes are spent; the next usable code is two steps on.
    app.clock().advance(Duration::from_secs(2 * STEP));
    owner_mfa
}

/// Reads the token's current code through the serial line, as the CLI does.
fn read_code(token: &SimToken) -> String {
    let mut source = SerialToken::open(&token.path, Some(&token.serial)).unwrap();
    source.read_code().unwrap().to_header().to_string()
}

pub(crate) fn versioning(
    bucket: &str,
    status: v1::VersioningStatus,
    mfa_delete: Option<bool>,
    mfa: &str,
) -> v1::PutBucketVersioningRequest {
    v1::PutBucketVersioningRequest {
        bucket: bucket.into(),
        status: status as i32,
        mfa_delete: match mfa_delete {
            None => v1::MfaDeleteStatus::Unspecified,
            Some(true) => v1::MfaDeleteStatus::Enabled,
            Some(false) => v1::MfaDeleteStatus::Disabled,
        } as i32,
        mfa: mfa.into(),
    }
}

fn delete_version(bucket: &str, key: &str, version_id: &str, mfa: &str) -> v1::DeleteObjectRequest {
    v1::DeleteObjectRequest {
        bucket: bucket.into(),
        key: key.into(),
        version_id: version_id.into(),
        mfa: mfa.into(),
        ..Default::default()
    }
}

/// The 2010 boto sequence, with a token on a pseudo-terminal.
#[tokio::test]
async fn the_boto_sequence_with_a_token_on_a_serial_line() {
    let app = TestAppliance::start().await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let token = SimToken::start(app.shared_clock(), "GAHT12345678", STEP, Fault::None, 0).unwrap();
    enroll_and_activate(&app, &token, &owner).await;
    let mut s3 = app.archive_as(&owner).await.unwrap();

    create_bucket(&mut s3, "boto", v1::VersioningStatus::Enabled).await;
    let v1_id = put(&mut s3, "boto", "k", b"first").await.unwrap().version_id;
    let v2_id = put(&mut s3, "boto", "k", b"second").await.unwrap().version_id;
    let listed = s3
        .list_object_versions(v1::ListObjectVersionsRequest { bucket: "boto".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.versions.len(), 2);
    let marker = delete(&mut s3, "boto", "k", "").await.unwrap();
    assert!(marker.delete_marker);
    delete(&mut s3, "boto", "k", &v1_id).await.unwrap();

    // MFA Delete on, with a code read from the token.
    let code = read_code(&token);
    let on = s3.put_bucket_versioning(versioning("boto", v1::VersioningStatus::Enabled, Some(true), &code)).await;
    let bucket = on.unwrap().into_inner().bucket.unwrap();
    assert_eq!(bucket.mfa_delete, v1::MfaDeleteStatus::Enabled as i32);

    // Without a code: refused, and v2 is still there.
    let refused = s3.delete_object(delete_version("boto", "k", &v2_id, "")).await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::PermissionDenied, "MFA_REQUIRED"));
    let head = v1::HeadObjectRequest { bucket: "boto".into(), key: "k".into(), version_id: v2_id.clone() };
    s3.head_object(head.clone()).await.unwrap();

    // With a fresh code: gone. The same code again: refused.
    app.clock().advance(Duration::from_secs(STEP));
    let code = read_code(&token);
    let gone = s3.delete_object(delete_version("boto", "k", &v2_id, &code)).await.unwrap().into_inner();
    assert_eq!(gone.version_id, v2_id);
    assert_eq!(reason(&s3.head_object(head).await.unwrap_err()), "NO_SUCH_VERSION");
    let marker_id = marker.version_id.clone();
    let reused = s3.delete_object(delete_version("boto", "k", &marker_id, &code)).await.unwrap_err();
    assert_eq!(reason(&reused), "MFA_REPLAYED");

    // A delete marker never needs a code.
    let another = delete(&mut s3, "boto", "k", "").await.unwrap();
    assert!(another.delete_marker);

    // Suspending is refused while MFA Delete is on; disabling needs a code.
    let suspend = s3.put_bucket_versioning(versioning("boto", v1::VersioningStatus::Suspended, None, "")).await;
    assert_eq!(reason(&suspend.unwrap_err()), "VERSIONING_LOCKED");
    app.clock().advance(Duration::from_secs(STEP));
    let code = read_code(&token);
    let off = s3.put_bucket_versioning(versioning("boto", v1::VersioningStatus::Enabled, Some(false), &code)).await;
    assert_eq!(off.unwrap().into_inner().bucket.unwrap().mfa_delete, v1::MfaDeleteStatus::Disabled as i32);
    s3.put_bucket_versioning(versioning("boto", v1::VersioningStatus::Suspended, None, "")).await.unwrap();

    // The ledger names every MFA event and never a code.
    let entries = app.server().app().store().ledger_entries(1).unwrap();
    let ops: Vec<&str> = entries.iter().map(|(e, _)| e.op.as_str()).collect();
    for op in ["mfa-enrolled", "mfa-activated", "mfa-accepted", "mfa-refused"] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }
    let last_code = code.split(' ').nth(1).unwrap();
    assert!(entries.iter().all(|(e, _)| !e.detail.contains(last_code)));
}

#[tokio::test]
async fn another_principals_token_is_refused_and_codes_survive_restart_spent() {
    let mut app = TestAppliance::start().await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let thief = app.principal("thief", v1::Role::Writer).await.unwrap();
    let owners_token = SimToken::start(app.shared_clock(), "GAHT-OWNER-01", STEP, Fault::None, 0).unwrap();
    let thiefs_token = SimToken::start(app.shared_clock(), "GAHT-THIEF-01", STEP, Fault::None, 0).unwrap();
    enroll_and_activate(&app, &owners_token, &owner).await;
    enroll_and_activate(&app, &thiefs_token, &thief).await;
    let mut s3 = app.archive_as(&owner).await.unwrap();
    create_bucket(&mut s3, "vault", v1::VersioningStatus::Enabled).await;
    let id = put(&mut s3, "vault", "k", b"kept").await.unwrap().version_id;
    let code = owners_token.code(app.clock(), 0);
    s3.put_bucket_versioning(versioning("vault", v1::VersioningStatus::Enabled, Some(true), &code)).await.unwrap();

    // A thief with a stolen admin key and their own token cannot delete.
    let mut as_admin = app.archive().await.unwrap();
    app.clock().advance(Duration::from_secs(STEP));
    let theirs = thiefs_token.code(app.clock(), 0);
    let err = as_admin.delete_object(delete_version("vault", "k", &id, &theirs)).await.unwrap_err();
    assert_eq!(reason(&err), "MFA_INVALID");
    let err = as_admin.delete_object(delete_version("vault", "k", &id, "")).await.unwrap_err();
    assert_eq!(reason(&err), "MFA_REQUIRED");
    // Only the owner may switch MFA Delete off, even with the owner's code.
    let code = owners_token.code(app.clock(), 0);
    let err = as_admin
        .put_bucket_versioning(versioning("vault", v1::VersioningStatus::Enabled, Some(false), &code))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "ACCESS_DENIED");
    // The refusal came before the code was looked at: it is still the owner's to use.
    let on = s3.put_bucket_versioning(versioning("vault", v1::VersioningStatus::Enabled, Some(true), &code)).await;
    assert_eq!(on.unwrap().into_inner().bucket.unwrap().mfa_delete, v1::MfaDeleteStatus::Enabled as i32);

    // Accept a code, restart, replay it.
    app.clock().advance(Duration::from_secs(STEP));
    let code = owners_token.code(app.clock(), 0);
    let mut archive = app.archive_as(&owner).await.unwrap();
    archive.delete_object(delete_version("vault", "k", &id, &code)).await.unwrap();
    app.restart().await.unwrap();
    let mut archive = app.archive_as(&owner).await.unwrap();
    let err = archive
        .put_bucket_versioning(versioning("vault", v1::VersioningStatus::Suspended, Some(false), &code))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "MFA_REPLAYED");
    // Errors never carry the code.
    assert!(!err.message().contains(code.split(' ').nth(1).unwrap()));
}

#[tokio::test]
async fn lockout_after_five_failures_survives_restart() {
    let mut app = TestAppliance::start().await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let token = SimToken::start(app.shared_clock(), "GAHT-LOCK-001", STEP, Fault::None, 0).unwrap();
    enroll_and_activate(&app, &token, &owner).await;
    let mut s3 = app.archive_as(&owner).await.unwrap();
    create_bucket(&mut s3, "locked", v1::VersioningStatus::Enabled).await;
    // With MFA Delete on, a permanent delete's code is judged (without it, ignored).
    let on = token.code(app.clock(), 0);
    s3.put_bucket_versioning(versioning("locked", v1::VersioningStatus::Enabled, Some(true), &on)).await.unwrap();
    app.clock().advance(Duration::from_secs(STEP));
    let id = put(&mut s3, "locked", "k", b"x").await.unwrap().version_id;
    for _ in 0..5 {
        let err = s3.delete_object(delete_version("locked", "k", &id, "GAHT-LOCK-001 000000")).await.unwrap_err();
        assert_eq!(reason(&err), "MFA_INVALID");
    }
    app.restart().await.unwrap();
    let mut s3 = app.archive_as(&owner).await.unwrap();
    let right = token.code(app.clock(), 0);
    let err = s3.delete_object(delete_version("locked", "k", &id, &right)).await.unwrap_err();
    assert_eq!(reason(&err), "MFA_LOCKED_OUT");
    app.clock().advance(Duration::from_secs(61));
    let right = token.code(app.clock(), 0);
    s3.delete_object(delete_version("locked", "k", &id, &right)).await.unwrap();
}

#[tokio::test]
async fn token_faults_give_clear_errors_and_spend_nothing() {
    let app = TestAppliance::start().await.unwrap();
    for (serial, fault, check) in [
        (
            "GAHT-FAULT-01",
            Fault::Garbage,
            (|e: &SourceError| matches!(e, SourceError::Garbage(_))) as fn(&SourceError) -> bool,
        ),
        ("GAHT-FAULT-02", Fault::Silent, |e| matches!(e, SourceError::Timeout(_))),
        ("GAHT-FAULT-03", Fault::Battery, |e| matches!(e, SourceError::Token { status: 503, .. })),
        ("GAHT-FAULT-04", Fault::UnplugAfter(2), |e| matches!(e, SourceError::Closed)),
    ] {
        let token = SimToken::start(app.shared_clock(), serial, STEP, fault, 0).unwrap();
        let path = token.path.clone();
        let serial = serial.to_owned();
        let err = tokio::task::spawn_blocking(move || {
            SerialToken::open(&path, Some(&serial)).and_then(|mut t| t.read_code()).unwrap_err()
        })
        .await
        .unwrap();
        assert!(check(&err), "{fault:?}: {err}");
        assert!(!err.to_string().is_empty());
    }
    // Nothing reached the appliance: no device has a failure or a ledger entry.
    let entries = app.server().app().store().ledger_entries(1).unwrap();
    assert!(entries.iter().all(|(e, _)| !e.op.as_str().starts_with("mfa")));
}

#[tokio::test]
async fn drift_is_fixed_by_resync() {
    let app = TestAppliance::start().await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let honest = SimToken::start(app.shared_clock(), "GAHT-DRIFT-01", STEP, Fault::None, 0).unwrap();
    let mut mfa = enroll_and_activate(&app, &honest, &owner).await;
    // The same device, now running 10 minutes fast.
    let fast = SimToken::start(app.shared_clock(), "GAHT-DRIFT-01", STEP, Fault::None, 600).unwrap();
    let mut s3 = app.archive_as(&owner).await.unwrap();
    create_bucket(&mut s3, "drift", v1::VersioningStatus::Enabled).await;
    // With MFA Delete on, a permanent delete's code is judged (without it, ignored).
    let on = honest.code(app.clock(), 0);
    s3.put_bucket_versioning(versioning("drift", v1::VersioningStatus::Enabled, Some(true), &on)).await.unwrap();
    app.clock().advance(Duration::from_secs(STEP));
    let id = put(&mut s3, "drift", "k", b"x").await.unwrap().version_id;
    let code = read_code(&fast);
    let err = s3.delete_object(delete_version("drift", "k", &id, &code)).await.unwrap_err();
    assert_eq!(reason(&err), "MFA_INVALID");

    let path = fast.path.clone();
    let clock = app.shared_clock();
    // Read two consecutive codes while the test moves time one step.
    let reader = tokio::task::spawn_blocking(move || SerialToken::open(&path, None).unwrap().read_pair());
    let mover = tokio::spawn(async move {
        // One virtual second per 100 ms: the reader, polling every second,
        // sees each step and so reads two consecutive codes.
        for _ in 0..120 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            clock.advance(Duration::from_secs(1));
        }
    });
    let (first, second) = reader.await.unwrap().unwrap();
    mover.abort();
    let device = mfa
        .resync_device(v1::ResyncDeviceRequest {
            serial: first.serial.clone(),
            first_code: first.code.expose().into(),
            second_code: second.expose().into(),
        })
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap();
    assert!((19..=21).contains(&device.drift_steps), "drift {}", device.drift_steps);
    app.clock().advance(Duration::from_secs(2 * STEP));
    let code = read_code(&fast);
    s3.delete_object(delete_version("drift", "k", &id, &code)).await.unwrap();
}

#[tokio::test]
async fn listing_devices_never_shows_seeds_and_respects_roles() {
    let app = TestAppliance::start().await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let other = app.principal("other", v1::Role::Writer).await.unwrap();
    let token = SimToken::start(app.shared_clock(), "GAHT-LIST-001", STEP, Fault::None, 0).unwrap();
    enroll_and_activate(&app, &token, &owner).await;
    let mut as_other = app.mfa_as(&other).await.unwrap();
    let mine = as_other.list_devices(v1::ListDevicesRequest::default()).await.unwrap().into_inner();
    assert!(mine.devices.is_empty());
    let owner_id = owner.split(':').next().unwrap().to_owned();
    let err = as_other.list_devices(v1::ListDevicesRequest { owner: owner_id }).await.unwrap_err();
    assert_eq!(reason(&err), "ACCESS_DENIED");
    let mut admin = app.mfa_as(app.admin_credential()).await.unwrap();
    let all = admin.list_devices(v1::ListDevicesRequest::default()).await.unwrap().into_inner();
    assert_eq!(all.devices.len(), 1);
    let text = format!("{all:?}");
    assert!(!text.contains(TOKEN_SEED_BASE32) && !text.contains("1234567890"));
    // Writers cannot enrol; bad seeds and bad PSKC documents enrol nothing.
    let mut as_owner = app.mfa_as(&owner).await.unwrap();
    let seed = |serial: &str, seed: &str| v1::EnrollDeviceRequest {
        source: Some(v1::enroll_device_request::Source::Seed(v1::SeedEnrollment {
            serial: serial.into(),
            seed_base32: seed.into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let err = as_owner.enroll_device(seed("GAHT-WRITER-01", TOKEN_SEED_BASE32)).await.unwrap_err();
    assert_eq!(reason(&err), "ACCESS_DENIED");
    let err = admin.enroll_device(seed("GAHT-BADSEED-1", "not base32!")).await.unwrap_err();
    assert_eq!(reason(&err), "INVALID_ARGUMENT");
    assert!(!err.message().contains("not base32!"));
    let pskc = v1::EnrollDeviceRequest {
        source: Some(v1::enroll_device_request::Source::Pskc(v1::PskcEnrollment {
            document: "<KeyContainer".into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    assert_eq!(reason(&admin.enroll_device(pskc).await.unwrap_err()), "INVALID_ARGUMENT");
    let err = admin.enroll_device(seed("GAHT-LIST-001", TOKEN_SEED_BASE32)).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let all = admin.list_devices(v1::ListDevicesRequest::default()).await.unwrap().into_inner();
    assert_eq!(all.devices.len(), 1);
}
