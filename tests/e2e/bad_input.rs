//! Bad input gets a clear status and reason, changes nothing, and the server
//! keeps serving.

use tonic::Code;
use wormbox_proto::v1::{self, VersioningStatus};
use wormbox_test_utils::TestAppliance;

use crate::e2e::{create_bucket, get, put, put_end, put_messages, reason, sha256, versions};

async fn assert_still_serving(appliance: &TestAppliance) {
    let mut client = appliance.archive().await.unwrap();
    let ack = put(&mut client, "target", "after", b"still serving").await.unwrap();
    assert_eq!(get(&mut client, "target", "after", &ack.version_id).await.unwrap().1, b"still serving");
}

#[tokio::test]
async fn credentials_are_required_and_checked() {
    let appliance = TestAppliance::start().await.unwrap();
    let mut client = appliance.archive().await.unwrap();
    create_bucket(&mut client, "target", VersioningStatus::Enabled).await;
    let (akid, _) = appliance.admin_credential().split_once(':').unwrap();
    for credential in [format!("{akid}:wrong-secret"), "WBNOSUCHKEY0000000000:x".to_owned(), "garbage:".to_owned()] {
        let mut bad = appliance.archive_as(&credential).await.unwrap();
        let err = bad.list_buckets(v1::ListBucketsRequest {}).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
        assert_eq!(reason(&err), "ACCESS_DENIED");
        assert!(!err.message().contains("wrong-secret"));
    }
    let channel = tonic::transport::Endpoint::from_shared(appliance.endpoint()).unwrap().connect().await.unwrap();
    let mut anonymous = v1::archive_client::ArchiveClient::new(channel);
    let err = anonymous.list_buckets(v1::ListBucketsRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_still_serving(&appliance).await;
}

#[tokio::test]
async fn names_keys_metadata_and_version_ids_are_validated() {
    let appliance = TestAppliance::start().await.unwrap();
    let mut client = appliance.archive().await.unwrap();
    create_bucket(&mut client, "target", VersioningStatus::Enabled).await;
    for name in ["UPPER", "a", "bad_name", "192.168.0.1"] {
        let err = client
            .create_bucket(v1::CreateBucketRequest { bucket: name.into(), ..Default::default() })
            .await
            .unwrap_err();
        assert_eq!((err.code(), reason(&err)), (Code::InvalidArgument, "INVALID_ARGUMENT".to_owned()), "{name}");
    }
    let long_key = "k".repeat(1025);
    for key in ["", long_key.as_str()] {
        let err = put(&mut client, "target", key, b"x").await.unwrap_err();
        assert_eq!(reason(&err), "INVALID_ARGUMENT");
    }
    // A 1024-byte key with NUL and slashes is fine.
    let odd_key = format!("a\0b/{}", "z".repeat(1020));
    let ack = put(&mut client, "target", &odd_key, b"odd").await.unwrap();
    assert_eq!(get(&mut client, "target", &odd_key, &ack.version_id).await.unwrap().1, b"odd");

    let mut header = put_messages("target", "meta", b"x", Vec::new());
    if let Some(v1::put_object_request::Part::Header(h)) = &mut header[0].part {
        h.user_metadata.insert("big".into(), "v".repeat(2100));
    }
    let err = client.put_object(tokio_stream::iter(header)).await.unwrap_err();
    assert_eq!(reason(&err), "INVALID_ARGUMENT");
    // At most 64 names, however short.
    for (names, stored) in [(64, true), (65, false)] {
        let mut header = put_messages("target", "names", b"x", Vec::new());
        if let Some(v1::put_object_request::Part::Header(h)) = &mut header[0].part {
            h.user_metadata = (0..names).map(|i| (format!("m{i}"), String::new())).collect();
        }
        let put = client.put_object(tokio_stream::iter(header)).await;
        match put {
            Ok(_) => assert!(stored, "{names} names were stored"),
            Err(err) => {
                assert!(!stored, "{names} names: {err:?}");
                assert_eq!(reason(&err), "INVALID_ARGUMENT");
                assert!(err.message().contains("more than the limit of 64"), "{}", err.message());
            }
        }
    }

    let err =
        client.put_object(tokio_stream::iter(put_messages("target", "k", b"x", vec![1, 2, 3]))).await.unwrap_err();
    assert_eq!(reason(&err), "INVALID_ARGUMENT");

    for version in ["not-an-id", "ZZZZZZZZZZZZZZZZZZZZZZZZZZ"] {
        let err = get(&mut client, "target", "meta", version).await.unwrap_err();
        assert_eq!(reason(&err), "INVALID_ARGUMENT", "{version}");
    }
    let err = get(&mut client, "no-such-bucket", "k", "").await.unwrap_err();
    assert_eq!((err.code(), reason(&err)), (Code::NotFound, "NO_SUCH_BUCKET".to_owned()));
    let err = get(&mut client, "target", "no-such-key", "").await.unwrap_err();
    assert_eq!((err.code(), reason(&err)), (Code::NotFound, "NO_SUCH_KEY".to_owned()));
    let unknown = "0000000000000000000000000A";
    let err = get(&mut client, "target", &odd_key, unknown).await.unwrap_err();
    assert_eq!(reason(&err), "NO_SUCH_VERSION");
    assert_eq!(versions(&mut client, "target").await.versions.len(), 2, "only the valid puts landed");
    assert_still_serving(&appliance).await;
}

#[tokio::test]
async fn a_wrong_checksum_stores_nothing() {
    let appliance = TestAppliance::start().await.unwrap();
    let mut client = appliance.archive().await.unwrap();
    create_bucket(&mut client, "target", VersioningStatus::Enabled).await;
    let (before, _) = appliance.server().app().store().ledger_head().unwrap();
    let body = vec![9u8; (2 << 20) + 5];
    let wrong = sha256(b"something else");
    let err = client.put_object(tokio_stream::iter(put_messages("target", "k", &body, wrong))).await.unwrap_err();
    assert_eq!(reason(&err), "CHECKSUM_MISMATCH");
    let right = sha256(&body);
    let ack = client.put_object(tokio_stream::iter(put_messages("target", "k2", &body, right))).await.unwrap();
    assert_eq!(ack.into_inner().sha256, sha256(&body));
    let listed = versions(&mut client, "target").await;
    assert_eq!(listed.versions.iter().map(|v| v.key.as_str()).collect::<Vec<_>>(), vec!["k2"]);
    assert_eq!(appliance.server().app().store().ledger_head().unwrap().0, before + 1);
}

#[tokio::test]
async fn oversize_objects_records_and_messages_are_refused() {
    let appliance = TestAppliance::start_with(|config| {
        config.limits.max_object_bytes = 1 << 20;
        config.limits.max_ingest_record_bytes = 1024;
        config.limits.max_message_bytes = 512 << 10;
    })
    .await
    .unwrap();
    let mut client = appliance.archive().await.unwrap();
    create_bucket(&mut client, "target", VersioningStatus::Enabled).await;
    let err = put(&mut client, "target", "big", &vec![0; (1 << 20) + 1]).await.unwrap_err();
    assert_eq!(reason(&err), "INVALID_ARGUMENT");
    put(&mut client, "target", "exact", &vec![0; 1 << 20]).await.unwrap();

    let record =
        v1::IngestRecord { bucket: "target".into(), key: "r".into(), data: vec![0; 1025], ..Default::default() };
    let mut acks = client.ingest(tokio_stream::iter(vec![record])).await.unwrap().into_inner();
    let ack = acks.message().await.unwrap().unwrap();
    assert_eq!(ack.error.map(|e| e.reason), Some("INVALID_ARGUMENT".to_owned()));

    // One gRPC message above the limit: refused by the transport.
    let mut messages = put_messages("target", "huge-message", b"", Vec::new());
    messages.insert(1, v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Data(vec![0; 600 << 10])) });
    let err = client.put_object(tokio_stream::iter(messages)).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "tonic refuses a message above max_decoding_message_size");
    let keys: Vec<String> = versions(&mut client, "target").await.versions.into_iter().map(|v| v.key).collect();
    assert_eq!(keys, vec!["exact"]);
    assert_still_serving(&appliance).await;
}

#[tokio::test]
async fn malformed_and_truncated_put_streams_store_nothing() {
    let appliance = TestAppliance::start().await.unwrap();
    let mut client = appliance.archive().await.unwrap();
    create_bucket(&mut client, "target", VersioningStatus::Enabled).await;
    let data_first = vec![v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Data(vec![1])) }];
    let mut two_headers = put_messages("target", "k", b"x", Vec::new());
    two_headers.insert(2, two_headers[0].clone());
    let empty_part = vec![put_messages("target", "k", b"", Vec::new()).remove(0), v1::PutObjectRequest { part: None }];
    // The body's end is the client's word, checked against what arrived.
    let mut no_end = put_messages("target", "k", b"body", Vec::new());
    no_end.pop();
    let mut data_after_end = put_messages("target", "k", b"body", Vec::new());
    data_after_end.push(data_after_end[1].clone());
    let mut two_ends = put_messages("target", "k", b"body", Vec::new());
    two_ends.push(put_end(b""));
    let mut longer = put_messages("target", "k", b"body", Vec::new());
    *longer.last_mut().unwrap() = put_end(b"body and more");
    let mut short_digest = put_messages("target", "k", b"body", Vec::new());
    if let Some(v1::put_object_request::Part::End(end)) = &mut short_digest.last_mut().unwrap().part {
        end.sha256.truncate(31);
    }
    for messages in [Vec::new(), data_first, two_headers, empty_part, data_after_end, two_ends, longer, short_digest] {
        let err = client.put_object(tokio_stream::iter(messages)).await.unwrap_err();
        assert_eq!(reason(&err), "INVALID_ARGUMENT", "{err:?}");
    }
    let mut other_bytes = put_messages("target", "k", b"body", Vec::new());
    if let Some(v1::put_object_request::Part::End(end)) = &mut other_bytes.last_mut().unwrap().part {
        end.sha256 = sha256(b"bod");
    }
    let err = client.put_object(tokio_stream::iter(other_bytes)).await.unwrap_err();
    assert_eq!(reason(&err), "CHECKSUM_MISMATCH", "{err:?}");
    assert!(versions(&mut client, "target").await.versions.is_empty());

    // DESIGN.md's PutObject has no end message: a stream that ends cleanly
    // without one is taken whole. A digest given up front binds the body.
    let keyed = |messages: &mut Vec<v1::PutObjectRequest>, key: &str| {
        if let Some(v1::put_object_request::Part::Header(header)) = &mut messages[0].part {
            header.key = key.into();
        }
    };
    keyed(&mut no_end, "no-end");
    client.put_object(tokio_stream::iter(no_end)).await.unwrap();
    let mut digest_first = put_messages("target", "digest-first", b"body", sha256(b"body"));
    digest_first.pop();
    client.put_object(tokio_stream::iter(digest_first)).await.unwrap();
    let mut cut_short = put_messages("target", "cut-short", b"body", sha256(b"body and more"));
    cut_short.pop();
    let err = client.put_object(tokio_stream::iter(cut_short)).await.unwrap_err();
    assert_eq!(reason(&err), "CHECKSUM_MISMATCH", "{err:?}");
    let keys: Vec<String> = versions(&mut client, "target").await.versions.into_iter().map(|v| v.key).collect();
    assert_eq!(keys, vec!["digest-first", "no-end"]);

    // A client that goes away mid-stream: nothing is published, no chunk is left.
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    for message in put_messages("target", "cut", &vec![5u8; 3 << 20], Vec::new()).into_iter().take(6) {
        tx.send(message).await.unwrap();
    }
    let mut cut_client = appliance.archive().await.unwrap();
    let call =
        tokio::spawn(async move { cut_client.put_object(tokio_stream::wrappers::ReceiverStream::new(rx)).await });
    tokio::task::yield_now().await;
    call.abort();
    let _ = call.await;
    drop(tx);
    assert_eq!(versions(&mut client, "target").await.versions.len(), 2, "the cut stream stored nothing");
    assert_still_serving(&appliance).await;
}

#[tokio::test]
async fn roles_limit_what_a_key_can_do() {
    let appliance = TestAppliance::start().await.unwrap();
    let mut admin = appliance.archive().await.unwrap();
    create_bucket(&mut admin, "target", VersioningStatus::Enabled).await;
    let ack = put(&mut admin, "target", "doc", b"secret bytes").await.unwrap();

    let reader = appliance.principal("reader", v1::Role::Reader).await.unwrap();
    let mut reader = appliance.archive_as(&reader).await.unwrap();
    assert_eq!(get(&mut reader, "target", "doc", "").await.unwrap().1, b"secret bytes");
    let err = put(&mut reader, "target", "doc", b"x").await.unwrap_err();
    assert_eq!((err.code(), reason(&err)), (Code::PermissionDenied, "ACCESS_DENIED".to_owned()));

    let auditor = appliance.principal("auditor", v1::Role::Auditor).await.unwrap();
    let mut auditor = appliance.archive_as(&auditor).await.unwrap();
    let err = get(&mut auditor, "target", "doc", "").await.unwrap_err();
    assert_eq!(reason(&err), "ACCESS_DENIED", "auditors see metadata, never bytes");
    let head = auditor
        .head_object(v1::HeadObjectRequest { bucket: "target".into(), key: "doc".into(), version_id: ack.version_id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(head.version.unwrap().sha256, sha256(b"secret bytes"));

    let writer = appliance.principal("writer", v1::Role::Writer).await.unwrap();
    let mut writer = appliance.archive_as(&writer).await.unwrap();
    put(&mut writer, "target", "doc", b"new version").await.unwrap();
    let err = writer
        .put_bucket_versioning(v1::PutBucketVersioningRequest {
            bucket: "target".into(),
            status: VersioningStatus::Suspended as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "ACCESS_DENIED", "only the owner changes versioning");
}
