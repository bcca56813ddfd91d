//! The seed scenario and the suspended-bucket `null` cases, over gRPC.

use tonic::Code;
use wormbox_proto::v1::{self, VersioningStatus};
use wormbox_test_utils::TestAppliance;

use crate::e2e::{create_bucket, delete, get, put, reason, sha256, versions};

#[tokio::test]
async fn seed_scenario_put_put_get_list_delete_purge() {
    let appliance = TestAppliance::start().await.unwrap();
    let mut client = appliance.archive().await.unwrap();
    create_bucket(&mut client, "records", VersioningStatus::Enabled).await;

    let v1 = put(&mut client, "records", "trade/0001", b"first").await.unwrap();
    appliance.clock().advance(std::time::Duration::from_millis(1));
    let v2 = put(&mut client, "records", "trade/0001", b"second").await.unwrap();
    assert_eq!(v1.sha256, sha256(b"first"));
    assert!(v1.version_id < v2.version_id, "ids sort by creation time");
    assert!(v2.ledger_sequence > v1.ledger_sequence);

    assert_eq!(get(&mut client, "records", "trade/0001", &v1.version_id).await.unwrap().1, b"first");
    let (meta, body) = get(&mut client, "records", "trade/0001", &v2.version_id).await.unwrap();
    assert_eq!(body, b"second");
    assert!(meta.is_latest);
    assert_eq!(meta.sha256, sha256(b"second"));

    let listed = versions(&mut client, "records").await;
    let ids: Vec<_> = listed.versions.iter().map(|v| (v.version_id.clone(), v.is_latest)).collect();
    assert_eq!(ids, vec![(v2.version_id.clone(), true), (v1.version_id.clone(), false)]);

    let marker = delete(&mut client, "records", "trade/0001", "").await.unwrap();
    assert!(marker.delete_marker);
    let err = get(&mut client, "records", "trade/0001", "").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(reason(&err), "DELETE_MARKER");
    let err = get(&mut client, "records", "trade/0001", &marker.version_id).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "DELETE_MARKER");

    let purged = delete(&mut client, "records", "trade/0001", &v1.version_id).await.unwrap();
    assert_eq!(purged.version_id, v1.version_id);
    assert_eq!(get(&mut client, "records", "trade/0001", &v2.version_id).await.unwrap().1, b"second");
    let err = get(&mut client, "records", "trade/0001", &v1.version_id).await.unwrap_err();
    assert_eq!(reason(&err), "NO_SUCH_VERSION");
    let listed = versions(&mut client, "records").await;
    assert_eq!(listed.versions.len(), 1);
    assert_eq!(listed.delete_markers.len(), 1);
    assert!(listed.delete_markers[0].is_latest);

    // Everything is still there, byte for byte, after a restart.
    let mut appliance = appliance;
    appliance.restart().await.unwrap();
    let mut client = appliance.archive().await.unwrap();
    assert_eq!(get(&mut client, "records", "trade/0001", &v2.version_id).await.unwrap().1, b"second");
    let summary = appliance.server().app().store().verify_ledger().unwrap();
    assert_eq!(summary.entries, appliance.server().app().store().ledger_head().unwrap().0);
}

#[tokio::test]
async fn suspended_bucket_null_versions() {
    let appliance = TestAppliance::start().await.unwrap();
    let mut client = appliance.archive().await.unwrap();
    create_bucket(&mut client, "suspended", VersioningStatus::Enabled).await;
    let kept = put(&mut client, "suspended", "k", b"versioned").await.unwrap();
    client
        .put_bucket_versioning(v1::PutBucketVersioningRequest {
            bucket: "suspended".into(),
            status: VersioningStatus::Suspended as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    let n1 = put(&mut client, "suspended", "k", b"null one").await.unwrap();
    let n2 = put(&mut client, "suspended", "k", b"null two").await.unwrap();
    assert_eq!((n1.version_id.as_str(), n2.version_id.as_str()), ("null", "null"));
    assert_eq!(get(&mut client, "suspended", "k", "null").await.unwrap().1, b"null two");
    assert_eq!(get(&mut client, "suspended", "k", &kept.version_id).await.unwrap().1, b"versioned");
    assert_eq!(versions(&mut client, "suspended").await.versions.len(), 2);

    let marker = delete(&mut client, "suspended", "k", "").await.unwrap();
    assert_eq!(marker.version_id, "null");
    assert!(marker.delete_marker);
    let listed = versions(&mut client, "suspended").await;
    assert_eq!(listed.versions.len(), 1, "the null version was replaced by the null marker");
    assert_eq!(listed.delete_markers[0].version_id, "null");
    let err = get(&mut client, "suspended", "k", "").await.unwrap_err();
    assert_eq!(reason(&err), "DELETE_MARKER");

    // Removing the null marker by id brings the versioned object back.
    delete(&mut client, "suspended", "k", "null").await.unwrap();
    assert_eq!(get(&mut client, "suspended", "k", "").await.unwrap().1, b"versioned");

    let back = client
        .put_bucket_versioning(v1::PutBucketVersioningRequest {
            bucket: "suspended".into(),
            status: VersioningStatus::Unversioned as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&back), "INVALID_ARGUMENT");
}

#[tokio::test]
async fn ingest_acks_every_record_once_durable_and_reports_bad_ones_alone() {
    let appliance = TestAppliance::start().await.unwrap();
    let mut client = appliance.archive().await.unwrap();
    create_bucket(&mut client, "stream", VersioningStatus::Enabled).await;
    let mut records = Vec::new();
    for n in 0..300u64 {
        let bucket = if n == 150 { "missing-bucket" } else { "stream" };
        records.push(v1::IngestRecord {
            sequence: n,
            bucket: bucket.to_owned(),
            key: format!("rec/{n:05}"),
            data: format!("record {n}").into_bytes(),
            ..Default::default()
        });
    }
    let mut acks = client.ingest(tokio_stream::iter(records)).await.unwrap().into_inner();
    let mut seen = Vec::new();
    while let Some(ack) = acks.message().await.unwrap() {
        seen.push(ack);
    }
    assert_eq!(seen.len(), 300);
    assert!(seen.iter().enumerate().all(|(n, ack)| ack.sequence == n as u64), "acks come in order");
    assert_eq!(seen[150].error.as_ref().map(|e| e.reason.as_str()), Some("NO_SUCH_BUCKET"));
    let ok: Vec<_> = seen.iter().filter(|a| a.error.is_none()).collect();
    assert_eq!(ok.len(), 299);
    let mut ledger: Vec<u64> = ok.iter().map(|a| a.ledger_sequence).collect();
    ledger.dedup();
    assert_eq!(ledger.len(), 299, "one ledger entry per record");
    let (meta, body) = get(&mut client, "stream", "rec/00042", &seen[42].version_id).await.unwrap();
    assert_eq!(body, b"record 42");
    assert_eq!(meta.sha256, seen[42].sha256);
}

#[tokio::test]
async fn ingest_batch_acks_every_record_of_every_message_in_order_and_reports_bad_ones_alone() {
    let appliance = TestAppliance::start().await.unwrap();
    let mut client = appliance.archive().await.unwrap();
    create_bucket(&mut client, "stream", VersioningStatus::Enabled).await;
    let record = |n: u64| v1::IngestRecord {
        sequence: n,
        bucket: if n == 150 { "missing-bucket" } else { "stream" }.to_owned(),
        key: if n == 151 { String::new() } else { format!("rec/{n:05}") },
        data: format!("record {n}").into_bytes(),
        ..Default::default()
    };
    // An empty message is answered with no acks, in its turn.
    let sizes = [100, 0, 1, 199, 512];
    let mut messages = Vec::new();
    let mut next = 0;
    for size in sizes {
        messages.push(v1::IngestBatchRequest::new((next..next + size).map(record).collect()));
        next += size;
    }
    let mut responses = client.ingest_batch(tokio_stream::iter(messages)).await.unwrap().into_inner();
    let mut seen = Vec::new();
    let mut answered = Vec::new();
    while let Some(response) = responses.message().await.unwrap() {
        answered.push(response.acks.len() as u64);
        seen.extend(response.acks);
    }
    assert_eq!(answered, sizes, "one answer per message, in order, one ack per record");
    assert!(seen.iter().enumerate().all(|(n, ack)| ack.sequence == n as u64), "acks come in order");
    assert_eq!(seen[150].error.as_ref().map(|e| e.reason.as_str()), Some("NO_SUCH_BUCKET"));
    assert_eq!(seen[151].error.as_ref().map(|e| e.reason.as_str()), Some("INVALID_ARGUMENT"));
    let ok: Vec<_> = seen.iter().filter(|a| a.error.is_none()).collect();
    assert_eq!(ok.len(), seen.len() - 2);
    let mut ledger: Vec<u64> = ok.iter().map(|a| a.ledger_sequence).collect();
    ledger.sort_unstable();
    ledger.dedup();
    assert_eq!(ledger.len(), ok.len(), "one ledger entry per record");
    for n in [0, 99, 100, 101, 149, 152, 811] {
        let (meta, body) = get(&mut client, "stream", &format!("rec/{n:05}"), &seen[n].version_id).await.unwrap();
        assert_eq!(body, format!("record {n}").into_bytes());
        assert_eq!(meta.sha256, seen[n].sha256);
    }
}

#[tokio::test]
async fn an_ingest_batch_message_over_512_records_stores_none_of_them_and_ends_the_stream() {
    let appliance = TestAppliance::start().await.unwrap();
    let mut client = appliance.archive().await.unwrap();
    create_bucket(&mut client, "stream", VersioningStatus::Enabled).await;
    let record = |n: u64| v1::IngestRecord {
        sequence: n,
        bucket: "stream".to_owned(),
        key: format!("rec/{n:05}"),
        data: vec![1; 10],
        ..Default::default()
    };
    let messages = vec![
        v1::IngestBatchRequest::new((0..3).map(record).collect()),
        v1::IngestBatchRequest::new((3..516).map(record).collect()),
        v1::IngestBatchRequest::new((516..520).map(record).collect()),
    ];
    let mut responses = client.ingest_batch(tokio_stream::iter(messages)).await.unwrap().into_inner();
    let first = responses.message().await.unwrap().expect("the message before is answered");
    assert_eq!(first.acks.len(), 3);
    assert!(first.acks.iter().all(|ack| ack.error.is_none()));
    let refused = responses.message().await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::InvalidArgument, "INVALID_ARGUMENT"));
    assert!(refused.message().contains("513 records"), "{}", refused.message());
    let listed = client
        .list_objects(v1::ListObjectsRequest { bucket: "stream".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let keys: Vec<_> = listed.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["rec/00000", "rec/00001", "rec/00002"], "nothing of the refused message, nor after it");
}

#[tokio::test]
async fn large_objects_stream_in_and_out_and_list_objects_pages() {
    let appliance = TestAppliance::start().await.unwrap();
    let mut client = appliance.archive().await.unwrap();
    create_bucket(&mut client, "big", VersioningStatus::Unversioned).await;
    let body: Vec<u8> = (0..(3 << 20) + 17).map(|n: u32| (n % 253) as u8).collect();
    let ack = put(&mut client, "big", "blob.bin", &body).await.unwrap();
    assert_eq!(ack.version_id, "null");
    assert_eq!(ack.size, body.len() as u64);
    assert_eq!(get(&mut client, "big", "blob.bin", "").await.unwrap().1, body);
    for key in ["a/1", "a/2", "b", "c/d/e"] {
        put(&mut client, "big", key, b"x").await.unwrap();
    }
    let mut token = String::new();
    let mut seen = Vec::new();
    loop {
        let page = client
            .list_objects(v1::ListObjectsRequest {
                bucket: "big".into(),
                delimiter: "/".into(),
                continuation_token: token.clone(),
                max_keys: 2,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.common_prefixes.clone());
        seen.extend(page.objects.iter().map(|o| o.key.clone()));
        if !page.is_truncated {
            break;
        }
        token = page.next_continuation_token;
    }
    seen.sort();
    assert_eq!(seen, vec!["a/", "b", "blob.bin", "c/"]);
}
