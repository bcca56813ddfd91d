//! Issue 16, finding 20, against a real server: on an MFA Delete bucket one
//! code covers a whole DeleteObjects request (no longer one code, and one
//! 30 s step, per version), is spent once and never again, and every
//! permanent delete in it is still judged and ledgered on its own: a locked
//! version answers OBJECT_LOCKED for itself while the others go.

use std::time::Duration;

use tonic::Code;
use wormbox_proto::{ArchiveClient, v1};
use wormbox_test_utils::{SimToken, TEST_EPOCH, TestAppliance};

use super::{DAY_MICROS, STEP, token_for};
use crate::e2e::mfa::versioning;
use crate::e2e::reason;

/// Writes one version of `key`, with `retention` if given, and returns its id.
async fn put(archive: &mut ArchiveClient, bucket: &str, key: &str, retention: Option<v1::Retention>) -> String {
    let header = v1::PutObjectHeader { bucket: bucket.into(), key: key.into(), retention, ..Default::default() };
    let messages = vec![
        v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Header(header)) },
        v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Data(format!("record {key}").into_bytes())) },
    ];
    archive.put_object(tokio_stream::iter(messages)).await.unwrap().into_inner().version_id
}

fn object(key: &str, version_id: &str) -> v1::ObjectIdentifier {
    v1::ObjectIdentifier { key: key.into(), version_id: version_id.into() }
}

fn delete_objects(bucket: &str, objects: Vec<v1::ObjectIdentifier>, mfa: &str) -> v1::DeleteObjectsRequest {
    v1::DeleteObjectsRequest { bucket: bucket.into(), objects, mfa: mfa.into(), ..Default::default() }
}

fn ledger(app: &TestAppliance) -> Vec<wormbox_store::ledger::LedgerEntry> {
    app.server().app().store().ledger_entries(1).unwrap().into_iter().map(|(e, _)| e).collect()
}

fn count(app: &TestAppliance, op: &str) -> usize {
    ledger(app).iter().filter(|e| e.op.as_str() == op).count()
}

/// The owner's bucket `name` (with Object Lock if asked) with MFA Delete on,
/// and the owner's token, its code for that change spent.
async fn mfa_bucket(app: &TestAppliance, owner: &str, name: &str, object_lock: bool, serial: &str) -> SimToken {
    let token = token_for(app, owner, serial).await;
    let mut archive = app.archive_as(owner).await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: name.into(), object_lock }).await.unwrap();
    let on = token.code(app.clock(), 0);
    archive.put_bucket_versioning(versioning(name, v1::VersioningStatus::Enabled, Some(true), &on)).await.unwrap();
    app.clock().advance(Duration::from_secs(STEP));
    token
}

/// Five versions purged with one code, each its own ledger entry; the same
/// code on a second request is a replay, refused whole with nothing deleted.
#[tokio::test]
async fn one_code_purges_five_versions_and_cannot_be_replayed() {
    let app = TestAppliance::start().await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let token = mfa_bucket(&app, &owner, "records", false, "GAHT-MULTI-020").await;
    let mut archive = app.archive_as(&owner).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(put(&mut archive, "records", "trade", None).await);
    }

    let code = token.code(app.clock(), 0);
    let (accepted, purged) = (count(&app, "mfa-accepted"), count(&app, "version-purged"));
    let objects = ids.iter().map(|id| object("trade", id)).collect();
    let reply = archive.delete_objects(delete_objects("records", objects, &code)).await.unwrap().into_inner();
    assert!(reply.errors.is_empty(), "{:?}", reply.errors);
    assert_eq!(reply.deleted.iter().map(|d| d.version_id.clone()).collect::<Vec<_>>(), ids);
    assert!(reply.deleted.iter().all(|d| d.key == "trade" && !d.delete_marker && d.ledger_sequence > 0));
    assert_eq!(count(&app, "mfa-accepted"), accepted + 1, "one code for the request");
    let purges: Vec<_> = ledger(&app).into_iter().filter(|e| e.op.as_str() == "version-purged").collect();
    assert_eq!(purges.len(), purged + 5, "each purge is its own ledger entry");
    for id in &ids {
        let entry = purges.iter().find(|e| e.version.is_some_and(|v| &v.to_string() == id));
        assert!(entry.is_some_and(|e| e.detail.contains(&token.serial)), "purge of {id} is not ledgered with its code");
    }
    let listed = archive
        .list_object_versions(v1::ListObjectVersionsRequest { bucket: "records".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.versions.is_empty() && listed.delete_markers.is_empty());

    // The same code again: a replay, refused for the whole request.
    let kept = put(&mut archive, "records", "trade", None).await;
    let again = delete_objects("records", vec![object("trade", &kept), object("other", "")], &code);
    let err = archive.delete_objects(again).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "MFA_REPLAYED"));
    let head = v1::HeadObjectRequest { bucket: "records".into(), key: "trade".into(), version_id: kept.clone() };
    archive.head_object(head).await.unwrap();
    let head = v1::HeadObjectRequest { bucket: "records".into(), key: "other".into(), version_id: String::new() };
    assert_eq!(archive.head_object(head).await.unwrap_err().code(), Code::NotFound, "a marker of a refused request");
    assert_eq!(count(&app, "mfa-accepted"), accepted + 1);
    app.server().app().store().verify_ledger().unwrap();
}

/// A COMPLIANCE-locked version among free ones: OBJECT_LOCKED for that one
/// (a refused entry in the ledger, the version intact), the others purged
/// with the one code. A request whose only purge is locked spends no code.
#[tokio::test]
async fn a_locked_version_is_refused_on_its_own_and_the_others_are_purged() {
    let app = TestAppliance::start().await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let token = mfa_bucket(&app, &owner, "vault", true, "GAHT-MULTI-LOCK").await;
    let mut archive = app.archive_as(&owner).await.unwrap();
    let until = TEST_EPOCH.0 + DAY_MICROS;
    let compliance = v1::Retention { mode: v1::RetentionMode::Compliance as i32, retain_until_unix_micros: until };
    let first = put(&mut archive, "vault", "memo", None).await;
    let locked = put(&mut archive, "vault", "trade", Some(compliance)).await;
    let second = put(&mut archive, "vault", "memo", None).await;

    // Its only purge locked: answered, ledgered, and the code left unspent.
    let code = token.code(app.clock(), 0);
    let (accepted, refused) = (count(&app, "mfa-accepted"), count(&app, "refused"));
    let mut only_locked = delete_objects("vault", vec![object("trade", &locked)], &code);
    only_locked.quiet = true;
    let reply = archive.delete_objects(only_locked).await.unwrap().into_inner();
    assert!(reply.deleted.is_empty());
    assert_eq!(reply.errors.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(), ["OBJECT_LOCKED"]);
    assert_eq!(count(&app, "mfa-accepted"), accepted, "a request that purged nothing spent the code");

    // The mix, with that same code.
    let objects = vec![object("memo", &first), object("trade", &locked), object("memo", &second)];
    let reply = archive.delete_objects(delete_objects("vault", objects, &code)).await.unwrap().into_inner();
    assert_eq!(reply.deleted.iter().map(|d| d.version_id.as_str()).collect::<Vec<_>>(), [&first, &second]);
    let [error] = reply.errors.as_slice() else { panic!("one refused entry: {:?}", reply.errors) };
    assert_eq!(
        (error.key.as_str(), error.version_id.as_str(), error.reason.as_str()),
        ("trade", &*locked, "OBJECT_LOCKED")
    );
    assert_eq!(count(&app, "mfa-accepted"), accepted + 1);
    let refusals: Vec<_> = ledger(&app).into_iter().filter(|e| e.op.as_str() == "refused").skip(refused).collect();
    assert_eq!(refusals.len(), 2, "each locked attempt is a refused entry");
    assert!(refusals.iter().all(|e| e.key == "trade" && e.detail.contains(&locked)));
    let head = v1::HeadObjectRequest { bucket: "vault".into(), key: "trade".into(), version_id: locked.clone() };
    let kept = archive.head_object(head).await.unwrap().into_inner().version.unwrap();
    assert_eq!(kept.retention.unwrap().retain_until_unix_micros, until);
}

/// Bad input is refused whole with INVALID_ARGUMENT and a caller without the
/// right with ACCESS_DENIED, before the code is looked at: nothing changes,
/// the token is charged nothing, and the code then works.
#[tokio::test]
async fn bad_requests_change_nothing_and_leave_the_code_unspent() {
    let app = TestAppliance::start().await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let reader = app.principal("reader", v1::Role::Reader).await.unwrap();
    let token = mfa_bucket(&app, &owner, "records", false, "GAHT-MULTI-BAD").await;
    let mut archive = app.archive_as(&owner).await.unwrap();
    let id = put(&mut archive, "records", "trade", None).await;
    let code = token.code(app.clock(), 0);
    let head = app.server().app().store().ledger_head().unwrap();

    let too_many = (0..=1000).map(|i| object(&format!("k{i}"), "")).collect();
    let bad_key = vec![object("trade", &id), object("", "")];
    let bad_version = vec![object("trade", &id), object("trade", "not-a-version")];
    for objects in [Vec::new(), too_many, bad_key, bad_version] {
        let err = archive.delete_objects(delete_objects("records", objects, &code)).await.unwrap_err();
        assert_eq!((err.code(), reason(&err).as_str()), (Code::InvalidArgument, "INVALID_ARGUMENT"));
    }
    let mut as_reader = app.archive_as(&reader).await.unwrap();
    let err = as_reader.delete_objects(delete_objects("records", vec![object("trade", &id)], &code)).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "ACCESS_DENIED"));
    assert_eq!(app.server().app().store().ledger_head().unwrap(), head, "a refused request changed the archive");

    let reply = archive.delete_objects(delete_objects("records", vec![object("trade", &id)], &code)).await.unwrap();
    assert_eq!(reply.into_inner().deleted[0].version_id, id);
}

/// Review of issue 16: a multi-object delete of locked versions and one
/// free version with a wrong code fails as a whole, and each lock that held
/// is still a `refused` ledger entry, as a single delete's would be.
#[tokio::test]
async fn a_refused_code_keeps_the_locks_that_held_in_the_ledger() {
    let app = TestAppliance::start().await.unwrap();
    let owner = app.principal("owner", v1::Role::Writer).await.unwrap();
    let token = mfa_bucket(&app, &owner, "vault", true, "GAHT-MULTI-REF").await;
    let mut archive = app.archive_as(&owner).await.unwrap();
    let locked = v1::Retention {
        mode: v1::RetentionMode::Compliance as i32,
        retain_until_unix_micros: TEST_EPOCH.0 + DAY_MICROS,
    };
    let mut objects = Vec::new();
    for key in ["l1", "l2", "l3"] {
        let id = put(&mut archive, "vault", key, Some(locked)).await;
        objects.push(object(key, &id));
    }
    let free = put(&mut archive, "vault", "free", None).await;
    objects.push(object("free", &free));
    let refused_before = count(&app, "refused");
    let wrong = format!("{} 000000", token.serial);
    let err = archive.delete_objects(delete_objects("vault", objects, &wrong)).await.unwrap_err();
    assert_eq!(reason(&err), "MFA_INVALID");
    assert_eq!(count(&app, "refused"), refused_before + 3, "each lock that held is a ledger entry");
}
