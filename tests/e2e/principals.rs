//! Principals through the Admin API: created with a secret shown once,
//! listed without secrets, revoked for good.

use std::os::unix::fs::PermissionsExt;

use tonic::Code;
use wormbox_proto::v1;
use wormbox_test_utils::TestAppliance;

use crate::e2e::reason;

#[tokio::test]
async fn the_first_admin_credential_is_private_and_made_once() {
    let mut appliance = TestAppliance::start().await.unwrap();
    let path = appliance.data_dir().join(wormbox_server::ADMIN_CREDENTIAL_FILE);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), appliance.admin_credential());
    appliance.restart().await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), appliance.admin_credential());
}

#[tokio::test]
async fn principals_are_listed_without_secrets_and_revocation_is_immediate() {
    let appliance = TestAppliance::start().await.unwrap();
    let credential = appliance.principal("ingest-app", v1::Role::Writer).await.unwrap();
    let (akid, secret) = credential.split_once(':').unwrap();
    let mut admin = appliance.admin().await.unwrap();
    let listed = admin.list_principals(v1::ListPrincipalsRequest {}).await.unwrap().into_inner();
    let debug = format!("{listed:?}");
    assert!(!debug.contains(secret));
    let entry = listed.principals.iter().find(|p| p.access_key_id == akid).unwrap();
    assert_eq!((entry.name.as_str(), entry.role, entry.revoked), ("ingest-app", v1::Role::Writer as i32, false));

    let mut writer = appliance.archive_as(&credential).await.unwrap();
    writer.list_buckets(v1::ListBucketsRequest {}).await.unwrap();
    let mut not_admin = v1::admin_client::AdminClient::with_interceptor(
        tonic::transport::Endpoint::from_shared(appliance.endpoint()).unwrap().connect().await.unwrap(),
        wormbox_proto::BearerAuth::new(&credential).unwrap(),
    );
    let err = not_admin.list_principals(v1::ListPrincipalsRequest {}).await.unwrap_err();
    assert_eq!(reason(&err), "ACCESS_DENIED");

    let revoked = admin
        .revoke_principal(v1::RevokePrincipalRequest { access_key_id: akid.into(), mfa: String::new() })
        .await
        .unwrap();
    assert!(revoked.into_inner().ledger_sequence > 0);
    let err = writer.list_buckets(v1::ListBucketsRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = admin
        .create_principal(v1::CreatePrincipalRequest {
            name: "x".into(),
            role: v1::Role::Unspecified as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "INVALID_ARGUMENT");
}
