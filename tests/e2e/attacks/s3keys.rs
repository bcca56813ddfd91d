//! S3 secrets (issue 19, first step), against a real server: only admins
//! give or revoke them; once an admin has an active device, a stolen admin
//! key alone gives none to an admin (power), though it may to a writer; the
//! secret is returned once and is in no later answer, no ledger entry and
//! nowhere on disk in clear; and a sealed secret moved to another access key
//! does not open.

use std::path::Path;
use std::time::Duration;

use tonic::Code;
use wormbox_proto::v1;
use wormbox_store::backend::Keyspace;
use wormbox_test_utils::{TestAppliance, tamper};

use super::{STEP, key_id, token_for};
use crate::e2e::reason;

fn ledger_ops(app: &TestAppliance) -> Vec<String> {
    let entries = app.server().app().store().ledger_entries(1).unwrap();
    entries.into_iter().map(|(e, _)| e.op.as_str().to_owned()).collect()
}

fn count(app: &TestAppliance, op: &str) -> usize {
    ledger_ops(app).iter().filter(|o| *o == op).count()
}

fn create(access_key: &str, mfa: &str) -> v1::CreateS3KeyRequest {
    v1::CreateS3KeyRequest { access_key_id: access_key.into(), mfa: mfa.into() }
}

fn revoke(access_key: &str) -> v1::RevokeS3KeyRequest {
    v1::RevokeS3KeyRequest { access_key_id: access_key.into() }
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A writer and an auditor can neither give nor revoke an S3 key, their own
/// included, nor create a principal with one; nothing changes.
#[tokio::test]
async fn writers_and_auditors_cannot_create_or_revoke_s3_keys() {
    let app = TestAppliance::start().await.unwrap();
    let writer = app.principal("app", v1::Role::Writer).await.unwrap();
    let auditor = app.principal("officer", v1::Role::Auditor).await.unwrap();
    let mut admin = app.admin().await.unwrap();
    admin.create_s3_key(create(&key_id(&writer), "")).await.unwrap();
    let head = app.server().app().store().ledger_head().unwrap().0;

    for credential in [&writer, &auditor] {
        let mut caller = app.admin_as(credential).await.unwrap();
        for target in [key_id(credential), key_id(app.admin_credential()), key_id(&writer)] {
            let err = caller.create_s3_key(create(&target, "")).await.unwrap_err();
            assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "ACCESS_DENIED"), "{err:?}");
            let err = caller.revoke_s3_key(revoke(&target)).await.unwrap_err();
            assert_eq!(reason(&err), "ACCESS_DENIED", "{err:?}");
        }
        let with_s3 = v1::CreatePrincipalRequest {
            name: "m".into(),
            role: v1::Role::Writer as i32,
            s3: true,
            ..Default::default()
        };
        assert_eq!(reason(&caller.create_principal(with_s3).await.unwrap_err()), "ACCESS_DENIED");
    }
    assert_eq!(app.server().app().store().ledger_head().unwrap().0, head, "nothing changed");
    assert!(app.server().app().s3_secret(&key_id(&writer)).unwrap().is_some(), "the writer's key stands");
}

/// With an active admin device, a stolen admin key without a code gives no
/// S3 key to an admin (its own, another's, or a new admin's): MFA_REQUIRED,
/// ledgered as refused attempts; it may give one to a writer. With a code
/// the admin gives one to an admin.
#[tokio::test]
async fn a_stolen_admin_key_mints_no_s3_key_for_an_admin() {
    let app = TestAppliance::start().await.unwrap();
    let second = app.principal("second-admin", v1::Role::Admin).await.unwrap();
    let writer = app.principal("app", v1::Role::Writer).await.unwrap();
    let admin_key = key_id(app.admin_credential());
    let token = token_for(&app, app.admin_credential(), "GAHT-S3-0001").await;
    let mut stolen = app.admin().await.unwrap();
    let refused_before = count(&app, "mfa-refused");

    for target in [admin_key.as_str(), &key_id(&second)] {
        let err = stolen.create_s3_key(create(target, "")).await.unwrap_err();
        assert_eq!(reason(&err), "MFA_REQUIRED", "{err:?}");
    }
    let new_admin =
        v1::CreatePrincipalRequest { name: "m".into(), role: v1::Role::Admin as i32, s3: true, ..Default::default() };
    assert_eq!(reason(&stolen.create_principal(new_admin).await.unwrap_err()), "MFA_REQUIRED");
    assert_eq!(count(&app, "mfa-refused") - refused_before, 3, "each attempt is a ledger entry");
    assert_eq!(count(&app, "s3-key-created"), 0);
    assert!(app.server().app().s3_secret(&admin_key).unwrap().is_none());

    // A writer's key carries no power: no code is asked.
    let made = stolen.create_s3_key(create(&key_id(&writer), "")).await.unwrap().into_inner();
    assert_eq!((made.access_key_id.as_str(), made.secret.len()), (key_id(&writer).as_str(), 40));

    // The admin with the token gives one to an admin.
    app.clock().advance(Duration::from_secs(STEP));
    let made = stolen.create_s3_key(create(&admin_key, &token.code(app.clock(), 0))).await.unwrap().into_inner();
    let (actor, secret) = app.server().app().s3_secret(&admin_key).unwrap().unwrap();
    assert_eq!((actor.access_key.as_str(), secret.as_str()), (admin_key.as_str(), made.secret.as_str()));
    // Revoking only lowers access: no code.
    assert!(stolen.revoke_s3_key(revoke(&admin_key)).await.unwrap().into_inner().ledger_sequence > 0);
    assert!(app.server().app().s3_secret(&admin_key).unwrap().is_none());
}

/// The S3 secret is answered once, by its creation: not by ListPrincipals,
/// not in the audit log, and not in clear anywhere in the data directory
/// once flushed into table files; revoking the principal stops it.
#[tokio::test]
async fn an_s3_secret_is_returned_once_and_kept_only_sealed() {
    let mut app = TestAppliance::start().await.unwrap();
    let mut admin = app.admin().await.unwrap();
    let request = v1::CreatePrincipalRequest {
        name: "backup-app".into(),
        role: v1::Role::Writer as i32,
        s3: true,
        ..Default::default()
    };
    let created = admin.create_principal(request).await.unwrap().into_inner();
    let access_key = created.principal.unwrap().access_key_id;
    let secret = created.s3_secret;
    assert_eq!(secret.len(), 40);
    assert_ne!(secret, created.secret, "the S3 secret is not the bearer secret");
    let other = admin.create_principal(v1::CreatePrincipalRequest {
        name: "plain".into(),
        role: v1::Role::Reader as i32,
        ..Default::default()
    });
    assert!(other.await.unwrap().into_inner().s3_secret.is_empty(), "no S3 secret unless asked");

    let listed = admin.list_principals(v1::ListPrincipalsRequest {}).await.unwrap().into_inner();
    let row = listed.principals.iter().find(|p| p.access_key_id == access_key).unwrap();
    assert!(row.has_s3_key);
    assert!(!format!("{listed:?}").contains(&secret));
    let mut compliance = app.compliance().await.unwrap();
    let mut log = compliance.audit_log(v1::AuditLogRequest::default()).await.unwrap().into_inner();
    let mut entries = Vec::new();
    while let Some(entry) = log.message().await.unwrap() {
        entries.push(entry);
    }
    let created_entry = entries.iter().find(|e| e.operation == "s3-key-created").unwrap();
    assert_eq!((created_entry.key.as_str(), created_entry.kind.as_str()), (access_key.as_str(), "configuration"));
    assert!(!format!("{entries:?}").contains(&secret));
    drop((admin, compliance));

    // Through a restart (the log replayed into table files) and at rest.
    app.restart().await.unwrap();
    let (_, served) = app.server().app().s3_secret(&access_key).unwrap().unwrap();
    assert_eq!(served.as_str(), secret);
    app.stop().await.unwrap();
    for file in files(app.data_dir()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(!tamper::contains(&bytes, secret.as_bytes()), "{} holds the S3 secret in clear", file.display());
    }
    app.restart().await.unwrap();

    // Revoking the principal stops its S3 key at once.
    let mut admin = app.admin().await.unwrap();
    let gone = v1::RevokePrincipalRequest { access_key_id: access_key.clone(), mfa: String::new() };
    admin.revoke_principal(gone).await.unwrap();
    assert!(app.server().app().s3_secret(&access_key).unwrap().is_none());
}

/// Someone with the disk copies one principal's sealed secret onto another
/// principal's access key: it does not open there (it is sealed for its own
/// key), so the other key gets no secret it could sign with.
#[tokio::test]
async fn a_sealed_secret_moved_to_another_key_does_not_open() {
    let mut app = TestAppliance::start().await.unwrap();
    let victim = key_id(&app.principal("victim", v1::Role::Admin).await.unwrap());
    let thief = key_id(&app.principal("thief", v1::Role::Reader).await.unwrap());
    let mut admin = app.admin().await.unwrap();
    let victims = admin.create_s3_key(create(&victim, "")).await.unwrap().into_inner().secret;
    admin.create_s3_key(create(&thief, "")).await.unwrap();
    drop(admin);
    app.stop().await.unwrap();

    let db = app.data_dir().join("db");
    let sealed = {
        let backend = tamper::read_only(&db).unwrap();
        let found =
            backend.scan(Keyspace::Meta, b"", b"").map(Result::unwrap).find(|(k, _)| k.ends_with(victim.as_bytes()));
        found.expect("the victim's sealed secret is stored").1
    };
    assert!(!tamper::contains(&sealed, victims.as_bytes()), "sealed, not in clear");
    tamper::edit(&db, Keyspace::Meta, |k, _| k.ends_with(thief.as_bytes()), |v| *v = sealed.clone()).unwrap();
    app.restart().await.unwrap();

    let moved = app.server().app().s3_secret(&thief);
    assert!(moved.is_err(), "a secret sealed for another key does not open: {:?}", moved.map(|o| o.is_some()));
    let (_, own) = app.server().app().s3_secret(&victim).unwrap().unwrap();
    assert_eq!(own.as_str(), victims, "where it belongs, it opens");
}
