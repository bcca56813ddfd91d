//! End-to-end tests, one module per area, and the helpers they share.

/// Versioning semantics through the Archive API.
mod archive;
/// Attacks that once worked, each kept as a regression test.
mod attacks;
/// Malformed, oversize and unauthorized requests: clear errors, nothing changed.
mod bad_input;
/// Backups through the Admin API, and restores refused.
mod deploy;
/// A full disk: the reserve refuses new data, the rest goes on, nothing is lost.
mod disk_full;
/// Checkpoints, integrity, audit trail, reports; edits to a stopped appliance.
mod evidence;
/// The metrics endpoint: a scrape after traffic, and who may scrape.
mod metrics;
/// MFA Delete with a simulated token on a pseudo-terminal.
mod mfa;
/// Object Lock attacked with an admin key and no token.
mod object_lock;
/// Principals and roles through the Admin API.
mod principals;
/// The replica's status and its verification against the archive.
mod replica_ops;
/// A replica that goes down during ingest, or guards itself with MFA Delete.
mod replica_outage;
/// Disaster recovery: an appliance rebuilt from its replicas alone.
mod replica_restore;
/// Replication to real S3 Object Lock engines.
mod replication;
/// The S3 front door, driven by the replicator's own S3 client.
mod s3;
/// Real S3 clients (boto3, the AWS CLI, boto 2.49.0's own tests, rclone) against the S3 endpoint.
mod s3_clients;
/// Health, reflection and the shape of the served API.
mod service;
/// Sync replication: the answer waits for the replica, within a bound.
mod sync_replication;
/// Repository rules: file headers, dependency edges, the shipped config.
mod tidy;
/// The capacity tier: local bytes released, reads through the replica, checked.
mod tier;
/// Witnesses cosign checkpoints and refuse a forked ledger.
mod witness;

use tonic::Status;
use tonic_types::StatusExt;
use wormbox_proto::{ArchiveClient, v1};

/// Returns the ErrorInfo reason of a status.
pub(crate) fn reason(status: &Status) -> String {
    status.get_details_error_info().map(|info| info.reason).unwrap_or_default()
}

pub(crate) async fn create_bucket(client: &mut ArchiveClient, bucket: &str, versioning: v1::VersioningStatus) {
    client
        .create_bucket(v1::CreateBucketRequest { bucket: bucket.to_owned(), ..Default::default() })
        .await
        .expect("create bucket");
    if versioning != v1::VersioningStatus::Unversioned {
        client
            .put_bucket_versioning(v1::PutBucketVersioningRequest {
                bucket: bucket.to_owned(),
                status: versioning as i32,
                ..Default::default()
            })
            .await
            .expect("set versioning");
    }
}

pub(crate) fn put_messages(
    bucket: &str,
    key: &str,
    data: &[u8],
    expected_sha256: Vec<u8>,
) -> Vec<v1::PutObjectRequest> {
    let header = v1::PutObjectHeader {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        content_type: "application/octet-stream".to_owned(),
        expected_sha256,
        ..Default::default()
    };
    let mut messages = vec![v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Header(header)) }];
    for chunk in data.chunks(256 << 10) {
        messages.push(v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Data(chunk.to_vec())) });
    }
    messages.push(put_end(data));
    messages
}

/// The end message of a put of `data`: its size and SHA-256.
pub(crate) fn put_end(data: &[u8]) -> v1::PutObjectRequest {
    let end = v1::PutObjectEnd { size: data.len() as u64, sha256: sha256(data) };
    v1::PutObjectRequest { part: Some(v1::put_object_request::Part::End(end)) }
}

pub(crate) async fn put(
    client: &mut ArchiveClient,
    bucket: &str,
    key: &str,
    data: &[u8],
) -> Result<v1::PutObjectResponse, Status> {
    let messages = put_messages(bucket, key, data, Vec::new());
    client.put_object(tokio_stream::iter(messages)).await.map(|r| r.into_inner())
}

pub(crate) async fn get(
    client: &mut ArchiveClient,
    bucket: &str,
    key: &str,
    version_id: &str,
) -> Result<(v1::ObjectVersion, Vec<u8>), Status> {
    let request =
        v1::GetObjectRequest { bucket: bucket.to_owned(), key: key.to_owned(), version_id: version_id.to_owned() };
    let mut stream = client.get_object(request).await?.into_inner();
    let mut metadata = None;
    let mut body = Vec::new();
    while let Some(message) = stream.message().await? {
        match message.part {
            Some(v1::get_object_response::Part::Metadata(m)) => metadata = Some(m),
            Some(v1::get_object_response::Part::Data(d)) => body.extend_from_slice(&d),
            None => {}
        }
    }
    Ok((metadata.expect("metadata comes first"), body))
}

pub(crate) async fn delete(
    client: &mut ArchiveClient,
    bucket: &str,
    key: &str,
    version_id: &str,
) -> Result<v1::DeleteObjectResponse, Status> {
    let request = v1::DeleteObjectRequest {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        version_id: version_id.to_owned(),
        ..Default::default()
    };
    client.delete_object(request).await.map(|r| r.into_inner())
}

pub(crate) async fn versions(client: &mut ArchiveClient, bucket: &str) -> v1::ListObjectVersionsResponse {
    let request = v1::ListObjectVersionsRequest { bucket: bucket.to_owned(), ..Default::default() };
    client.list_object_versions(request).await.expect("list versions").into_inner()
}

pub(crate) fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().to_vec()
}
