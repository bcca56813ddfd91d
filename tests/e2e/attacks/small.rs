//! Issue 16, findings 8, 9 and 17, against a real server: a PSKC document
//! cannot buy CPU before the caller's role is judged, MFA Delete and a
//! Suspended bucket never meet (and a bucket an older build left so refuses
//! the writes that would destroy its `null` versions), and the refusals that
//! once left no trace are ledger entries.

use std::time::{Duration, Instant};

use tonic::Code;
use wormbox_proto::{ArchiveClient, v1};
use wormbox_store::backend::Keyspace;
use wormbox_test_utils::{TEST_EPOCH, TOKEN_SEED_BASE32, TestAppliance, tamper};

use super::{DAY_MICROS, STEP, key_id, token_for};
use crate::e2e::mfa::versioning;
use crate::e2e::{create_bucket, delete, get, put, put_end, reason};

async fn bucket(archive: &mut ArchiveClient, name: &str) -> v1::Bucket {
    let request = v1::GetBucketRequest { bucket: name.into() };
    archive.get_bucket(request).await.unwrap().into_inner().bucket.unwrap()
}

fn ledger(app: &TestAppliance) -> Vec<wormbox_store::ledger::LedgerEntry> {
    app.server().app().store().ledger_entries(1).unwrap().into_iter().map(|(e, _)| e).collect()
}

fn count(app: &TestAppliance, op: &str) -> usize {
    ledger(app).iter().filter(|e| e.op.as_str() == op).count()
}

/// RFC 6030 Figure 7 (a PBKDF2 passphrase, `qwerty`), asking for `iterations`.
fn pbkdf2_document(iterations: u32) -> String {
    format!(
        r##"<?xml version="1.0" encoding="UTF-8"?>
<pskc:KeyContainer xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc"
  xmlns:xenc11="http://www.w3.org/2009/xmlenc11#"
  xmlns:pkcs5="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#"
  xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Version="1.0">
  <pskc:EncryptionKey>
    <xenc11:DerivedKey>
      <xenc11:KeyDerivationMethod Algorithm="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2">
        <pkcs5:PBKDF2-params>
          <Salt><Specified>Ej7/PEpyEpw=</Specified></Salt>
          <IterationCount>{iterations}</IterationCount>
          <KeyLength>16</KeyLength>
          <PRF/>
        </pkcs5:PBKDF2-params>
      </xenc11:KeyDerivationMethod>
      <xenc:ReferenceList><xenc:DataReference URI="#ED"/></xenc:ReferenceList>
      <xenc11:MasterKeyName>My Password 1</xenc11:MasterKeyName>
    </xenc11:DerivedKey>
  </pskc:EncryptionKey>
  <pskc:MACMethod Algorithm="http://www.w3.org/2000/09/xmldsig#hmac-sha1">
    <pskc:MACKey>
      <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
      <xenc:CipherData>
        <xenc:CipherValue>2GTTnLwM3I4e5IO5FkufoOEiOhNj91fhKRQBtBJYluUDsPOLTfUvoU2dStyOwYZx</xenc:CipherValue>
      </xenc:CipherData>
    </pskc:MACKey>
  </pskc:MACMethod>
  <pskc:KeyPackage>
    <pskc:DeviceInfo>
      <pskc:Manufacturer>TokenVendorAcme</pskc:Manufacturer>
      <pskc:SerialNo>987654321</pskc:SerialNo>
    </pskc:DeviceInfo>
    <pskc:Key Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp" Id="123456">
      <pskc:AlgorithmParameters><pskc:ResponseFormat Length="8" Encoding="DECIMAL"/></pskc:AlgorithmParameters>
      <pskc:Data>
        <pskc:Secret>
          <pskc:EncryptedValue Id="ED">
            <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
            <xenc:CipherData>
              <xenc:CipherValue>oTvo+S22nsmS2Z/RtcoF8Hfh+jzMe0RkiafpoDpnoZTjPYZu6V+A4aEn032yCr4f</xenc:CipherValue>
            </xenc:CipherData>
          </pskc:EncryptedValue>
          <pskc:ValueMAC>LP6xMvjtypbfT9PdkJhBZ+D6O4w=</pskc:ValueMAC>
        </pskc:Secret>
      </pskc:Data>
    </pskc:Key>
  </pskc:KeyPackage>
</pskc:KeyContainer>"##
    )
}

/// Finding 8: readers sending a PSKC document that asks for 10 M PBKDF2
/// iterations (9.5 s of CPU each, on the async runtime, before the role
/// check) are refused for their role at once, and ListBuckets answers
/// meanwhile; an admin's such document is refused for its iteration count,
/// before any derivation.
#[tokio::test]
async fn a_pskc_document_cannot_buy_cpu_before_the_role_is_judged() {
    let app = TestAppliance::start().await.unwrap();
    let reader = app.principal("reader", v1::Role::Reader).await.unwrap();
    let heavy = v1::EnrollDeviceRequest {
        source: Some(v1::enroll_device_request::Source::Pskc(v1::PskcEnrollment {
            document: pbkdf2_document(10_000_000),
            passphrase: "qwerty".into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let as_reader = app.mfa_as(&reader).await.unwrap();
    let mut archive = app.archive_as(&reader).await.unwrap();

    let started = Instant::now();
    let attempts = (0..4).map(|_| {
        let mut client = as_reader.clone();
        let request = heavy.clone();
        async move { client.enroll_device(request).await }
    });
    let (refusals, listed) =
        tokio::join!(futures::future::join_all(attempts), archive.list_buckets(v1::ListBucketsRequest {}));
    let elapsed = started.elapsed();
    for refusal in refusals {
        let err = refusal.unwrap_err();
        assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "ACCESS_DENIED"));
    }
    listed.unwrap();
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}: the document was read before the role check");

    let mut as_admin = app.mfa_as(app.admin_credential()).await.unwrap();
    let started = Instant::now();
    let err = as_admin.enroll_device(heavy).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(reason(&err), "INVALID_ARGUMENT");
    assert!(err.message().contains("PBKDF2 iterations"), "{}", err.message());
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}: the key was derived");
    let devices = as_admin.list_devices(v1::ListDevicesRequest::default()).await.unwrap().into_inner();
    assert!(devices.devices.is_empty(), "{devices:?}");
}

/// A stolen admin key on a guarded appliance (an admin has an active
/// device): a PSKC document asking for the most PBKDF2 iterations accepted
/// was read, and its key derived, before the admin's own code was looked at,
/// so each call without a code (or with a malformed one) bought a second of
/// CPU. Now the missing or malformed code is refused first, at once, and the
/// refusal is still a ledger entry.
#[tokio::test]
async fn on_a_guarded_appliance_a_pskc_document_is_not_read_before_the_admins_code() {
    let app = TestAppliance::start().await.unwrap();
    let _token = token_for(&app, app.admin_credential(), "GAHT-SMALL-08G").await;
    let pskc = |mfa: &str| v1::EnrollDeviceRequest {
        source: Some(v1::enroll_device_request::Source::Pskc(v1::PskcEnrollment {
            document: pbkdf2_document(wormbox_token::pskc::MAX_PBKDF2_ITERATIONS),
            passphrase: "qwerty".into(),
            ..Default::default()
        })),
        mfa: mfa.to_owned(),
        ..Default::default()
    };
    let as_admin = app.mfa_as(app.admin_credential()).await.unwrap();
    let refused = count(&app, "mfa-refused");
    let started = Instant::now();
    let attempts = (0..4).map(|n| {
        let mut client = as_admin.clone();
        let request = pskc(if n % 2 == 0 { "" } else { "not-a-serial-and-code" });
        async move { (n, client.enroll_device(request).await) }
    });
    for (n, attempt) in futures::future::join_all(attempts).await {
        let err = attempt.unwrap_err();
        let expected = if n % 2 == 0 { "MFA_REQUIRED" } else { "MFA_INVALID" };
        assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, expected));
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}: the documents were read before the code");
    assert_eq!(count(&app, "mfa-refused"), refused + 4, "each refusal is a ledger entry");
    let devices = as_admin.clone().list_devices(v1::ListDevicesRequest::default()).await.unwrap().into_inner();
    assert_eq!(devices.devices.len(), 1, "{devices:?}");
}

/// Finding 9: while MFA Delete is on, Suspended is refused, without a code
/// and with one (VERSIONING_LOCKED, judged before the code, which stays
/// unspent); one request turns MFA Delete off and suspends, with that code.
#[tokio::test]
async fn suspended_is_refused_while_mfa_delete_is_on() {
    let app = TestAppliance::start().await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let token = token_for(&app, &owner, "GAHT-SMALL-009").await;
    let mut archive = app.archive_as(&owner).await.unwrap();
    create_bucket(&mut archive, "vault", v1::VersioningStatus::Enabled).await;
    let on = token.code(app.clock(), 0);
    archive.put_bucket_versioning(versioning("vault", v1::VersioningStatus::Enabled, Some(true), &on)).await.unwrap();
    app.clock().advance(Duration::from_secs(STEP));

    let code = token.code(app.clock(), 0);
    let accepted = count(&app, "mfa-accepted");
    let refused = count(&app, "refused");
    for mfa in ["", code.as_str()] {
        let request = versioning("vault", v1::VersioningStatus::Suspended, None, mfa);
        let err = archive.put_bucket_versioning(request).await.unwrap_err();
        assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "VERSIONING_LOCKED"), "{mfa:?}");
        assert!(err.message().contains("MFA Delete off"), "{}", err.message());
    }
    assert_eq!(count(&app, "mfa-accepted"), accepted, "a refused change spent the code");
    assert!(count(&app, "refused") > refused, "the refusals are not in the ledger");
    let kept = bucket(&mut archive, "vault").await;
    assert_eq!(kept.versioning, v1::VersioningStatus::Enabled as i32);
    assert_eq!(kept.mfa_delete, v1::MfaDeleteStatus::Enabled as i32);

    let request = versioning("vault", v1::VersioningStatus::Suspended, Some(false), &code);
    let done = archive.put_bucket_versioning(request).await.unwrap().into_inner().bucket.unwrap();
    assert_eq!(done.versioning, v1::VersioningStatus::Suspended as i32);
    assert_eq!(done.mfa_delete, v1::MfaDeleteStatus::Disabled as i32);
    assert_eq!(count(&app, "mfa-accepted"), accepted + 1);
}

/// Finding 9: a bucket an older build left Suspended with MFA Delete on (made
/// here by editing the stopped appliance's bucket record) refuses a writer's
/// PUT and plain DELETE that would replace its `null` version, with
/// MFA_REQUIRED and a ledger entry; the `null` version is untouched, and a
/// key without one is still written.
#[tokio::test]
async fn a_legacy_suspended_bucket_with_mfa_delete_refuses_replacing_writes() {
    let mut app = TestAppliance::start().await.unwrap();
    let writer = app.principal("writer", v1::Role::Writer).await.unwrap();
    let mut archive = app.archive().await.unwrap();
    create_bucket(&mut archive, "legacy", v1::VersioningStatus::Enabled).await;
    archive.put_bucket_versioning(versioning("legacy", v1::VersioningStatus::Suspended, None, "")).await.unwrap();
    let kept = put(&mut archive, "legacy", "kept", b"null version").await.unwrap();
    assert_eq!(kept.version_id, "null");

    app.stop().await.unwrap();
    tamper::edit(
        &app.data_dir().join("db"),
        Keyspace::Buckets,
        |k, _| k == b"legacy".as_slice(),
        |v| {
            // A bucket record without Object Lock ends with its MFA Delete,
            // Object Lock and default-retention bytes.
            let at = v.len() - 3;
            assert_eq!(&v[at..], &[0u8, 0, 0][..]);
            v[at] = 1;
        },
    )
    .unwrap();
    app.restart().await.unwrap();
    let mut as_writer = app.archive_as(&writer).await.unwrap();
    let legacy = bucket(&mut as_writer, "legacy").await;
    assert_eq!(legacy.versioning, v1::VersioningStatus::Suspended as i32);
    assert_eq!(legacy.mfa_delete, v1::MfaDeleteStatus::Enabled as i32);

    let refused = count(&app, "refused");
    let err = put(&mut as_writer, "legacy", "kept", b"overwritten").await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "MFA_REQUIRED"));
    let err = delete(&mut as_writer, "legacy", "kept", "").await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "MFA_REQUIRED"));
    assert!(count(&app, "refused") > refused, "the refusals are not in the ledger");
    assert!(ledger(&app).iter().any(|e| e.op.as_str() == "refused" && e.key == "kept"));
    assert_eq!(get(&mut as_writer, "legacy", "kept", "null").await.unwrap().1, b"null version");
    assert_eq!(get(&mut as_writer, "legacy", "kept", "").await.unwrap().1, b"null version");
    assert_eq!(put(&mut as_writer, "legacy", "fresh", b"x").await.unwrap().version_id, "null");
}

/// Finding 17: an admin enrolling a device for an owner who has an active
/// one, without the owner's code, is refused with MFA_REQUIRED and an
/// `mfa-refused` ledger entry naming the admin and the serial.
#[tokio::test]
async fn enrolling_without_the_owners_code_is_a_ledger_entry() {
    let app = TestAppliance::start().await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let _token = token_for(&app, &owner, "GAHT-SMALL-17A").await;
    let mut admin = app.mfa_as(app.admin_credential()).await.unwrap();
    let before = ledger(&app).len();
    let seed = v1::SeedEnrollment {
        serial: "GAHT-SMALL-17B".into(),
        seed_base32: TOKEN_SEED_BASE32.into(),
        step_seconds: STEP as u32,
        ..Default::default()
    };
    let request = v1::EnrollDeviceRequest {
        owner: key_id(&owner),
        source: Some(v1::enroll_device_request::Source::Seed(seed)),
        mfa: String::new(),
    };
    let err = admin.enroll_device(request).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "MFA_REQUIRED"));

    let entries = ledger(&app);
    let refusals: Vec<_> = entries[before..].iter().filter(|e| e.op.as_str() == "mfa-refused").collect();
    assert_eq!(refusals.len(), 1, "the refusal left no ledger entry");
    let refused = refusals[0];
    assert_eq!(refused.op.as_str(), "mfa-refused");
    assert_eq!(refused.principal, key_id(app.admin_credential()));
    assert!(refused.detail.contains("reason=missing"), "{}", refused.detail);
    assert!(refused.detail.contains("GAHT-SMALL-17B"), "{}", refused.detail);
    let listed = admin.list_devices(v1::ListDevicesRequest::default()).await.unwrap().into_inner();
    assert!(listed.devices.iter().all(|d| d.serial != "GAHT-SMALL-17B"));
}

/// Finding 17: PutObjectRetention to an instant already past, on a version
/// that retention protects, is a shortening: RETENTION_SHORTEN_DENIED (not a
/// generic INVALID_ARGUMENT) and a `refused` ledger entry, as for a future
/// but shorter date; the retention stands.
#[tokio::test]
async fn a_retain_until_already_past_is_a_refused_shortening() {
    let app = TestAppliance::start().await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let mut archive = app.archive_as(&owner).await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: "vault".into(), object_lock: true }).await.unwrap();
    let until = TEST_EPOCH.0 + DAY_MICROS;
    let retention =
        |mode: v1::RetentionMode, micros: i64| v1::Retention { mode: mode as i32, retain_until_unix_micros: micros };
    let header = v1::PutObjectHeader {
        bucket: "vault".into(),
        key: "trade".into(),
        retention: Some(retention(v1::RetentionMode::Compliance, until)),
        ..Default::default()
    };
    let messages = vec![
        v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Header(header)) },
        v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Data(b"trade".to_vec())) },
        put_end(b"trade"),
    ];
    let id = archive.put_object(tokio_stream::iter(messages)).await.unwrap().into_inner().version_id;

    let mut compliance = app.compliance_as(&owner).await.unwrap();
    for (mode, past) in [
        (v1::RetentionMode::Compliance, TEST_EPOCH.0 - DAY_MICROS),
        (v1::RetentionMode::Compliance, 1),
        (v1::RetentionMode::Governance, TEST_EPOCH.0 - 1),
    ] {
        let refused = count(&app, "refused");
        let request = v1::PutObjectRetentionRequest {
            bucket: "vault".into(),
            key: "trade".into(),
            version_id: id.clone(),
            retention: Some(retention(mode, past)),
            bypass_governance: false,
            mfa: String::new(),
        };
        let err = compliance.put_object_retention(request).await.unwrap_err();
        assert_eq!(
            (err.code(), reason(&err).as_str()),
            (Code::PermissionDenied, "RETENTION_SHORTEN_DENIED"),
            "{mode:?} until {past}: {}",
            err.message()
        );
        assert!(count(&app, "refused") > refused, "{mode:?} until {past}: no refused entry");
        let last = ledger(&app).into_iter().rev().find(|e| e.op.as_str() == "refused").unwrap();
        assert_eq!((last.key.as_str(), last.principal.as_str()), ("trade", key_id(&owner).as_str()));
    }
    let head = v1::HeadObjectRequest { bucket: "vault".into(), key: "trade".into(), version_id: id };
    let version = archive.head_object(head).await.unwrap().into_inner().version.unwrap();
    assert_eq!(version.retention.unwrap().retain_until_unix_micros, until);
}
