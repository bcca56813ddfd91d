//! The S3 client against real Object Lock engines: SeaweedFS and Ceph RGW,
//! each started once for this binary by `scripts/s3-targets/` in a temp dir,
//! every scenario in a bucket of its own.
//!
//! Invariant: a target whose engine is not installed is skipped with a
//! printed reason only while `WORMBOX_S3_TARGETS_REQUIRED` is unset (CI sets
//! it: then it fails); a started target is stopped when its test ends, passed
//! or failed (`Target`'s Drop).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use wormbox_model::{Clock, ManualClock, SystemClock};
use wormbox_replica::{
    BucketLock, DefaultRetention, EntryKind, LockMode, PutObject, RetentionPeriod, S3Client, S3Error, VersioningStatus,
};

const DAY: Duration = Duration::from_secs(24 * 3600);

use wormbox_test_utils::s3_targets::S3Target as Target;

fn start(engine: &'static str) -> Option<Target> {
    Target::start(engine)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().try_into().unwrap()
}

fn once(bytes: Vec<u8>) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures::stream::iter([Ok(Bytes::from(bytes))])
}

async fn put_small(client: &S3Client, key: &str, bytes: &[u8]) -> Option<String> {
    let put = PutObject::new(bytes.len() as u64, sha256(bytes));
    client.put_object(key, once(bytes.to_vec()), put).await.unwrap_or_else(|e| panic!("put {key:?}: {e}")).version_id
}

async fn read_all(client: &S3Client, key: &str, version: Option<&str>) -> Vec<u8> {
    let mut body = client.get_object(key, version).await.unwrap_or_else(|e| panic!("get {key:?}: {e}"));
    let mut out = Vec::new();
    while let Some(chunk) = body.chunk().await.unwrap() {
        out.extend_from_slice(&chunk);
    }
    out
}

fn code(result: Result<impl std::fmt::Debug, S3Error>) -> String {
    match result {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(e) => e.code().unwrap_or_else(|| panic!("expected a service error, got {e}")).to_owned(),
    }
}

fn run(engine: &'static str) {
    let Some(target) = start(engine) else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        signing(&target).await;
        bucket_configuration(&target).await;
        locked_version(&target).await;
        pagination(&target).await;
        odd_keys(&target).await;
        streamed_body(&target).await;
        if engine == "rgw" {
            mfa_delete(&target).await;
        }
    });
}

#[test]
fn seaweedfs() {
    run("seaweedfs");
}

#[test]
fn rgw() {
    run("rgw");
}

/// A signed request is accepted; the same with a wrong secret is refused
/// with the server's code, and the secret shows in no error.
async fn signing(t: &Target) {
    let client = t.bucket("signing", false).await;
    client.bucket_versioning().await.unwrap();
    let wrong = t.client_at("signing", "not-the-secret-at-all-0123456789", Arc::new(SystemClock));
    let error = wrong.bucket_versioning().await.unwrap_err();
    let service = error.service().unwrap_or_else(|| panic!("{}: {error}", t.engine));
    assert_eq!(service.status, 403, "{}: {error}", t.engine);
    assert!(["SignatureDoesNotMatch", "AccessDenied"].contains(&service.code.as_str()), "{}: {error}", t.engine);
    assert!(!format!("{error} {error:?} {wrong:?}").contains(&t.secret));
    println!("{}: a wrong secret: {error}", t.engine);
    // Requests are signed with the clock's time, not the system's: an hour
    // ahead is outside the 15 minutes S3 allows.
    let ahead = ManualClock::new(SystemClock.now().saturating_add(Duration::from_secs(3600)));
    let skewed = t.client_at("signing", &t.secret, Arc::new(ahead));
    let error = skewed.bucket_versioning().await.unwrap_err();
    assert_eq!(error.code(), Some("RequestTimeTooSkewed"), "{}: {error}", t.engine);
}

/// Object Lock and versioning of a locked and an unlocked bucket.
async fn bucket_configuration(t: &Target) {
    let locked = t.bucket("lock-config", true).await;
    assert_eq!(
        locked.bucket_lock_configuration().await.unwrap(),
        BucketLock { enabled: true, default_retention: None }
    );
    let default = DefaultRetention { mode: LockMode::Compliance, period: RetentionPeriod::Days(1) };
    locked.put_object_lock_configuration(Some(default)).await.unwrap_or_else(|e| panic!("{}: {e}", t.engine));
    assert_eq!(
        locked.bucket_lock_configuration().await.unwrap(),
        BucketLock { enabled: true, default_retention: Some(default) }
    );
    let versioning = locked.bucket_versioning().await.unwrap();
    assert_eq!(versioning.status, VersioningStatus::Enabled, "{}", t.engine);
    assert!(!versioning.mfa_delete);

    let plain = t.bucket("no-lock", false).await;
    assert_eq!(
        plain.bucket_lock_configuration().await.unwrap(),
        BucketLock { enabled: false, default_retention: None }
    );
    assert_eq!(plain.bucket_versioning().await.unwrap().status, VersioningStatus::Unversioned, "{}", t.engine);
}

/// A version put with COMPLIANCE retention, a legal hold, metadata and a
/// checksum shows all of it, cannot be deleted, can be extended but not
/// shortened, loses its hold on request, and hides behind a delete marker.
async fn locked_version(t: &Target) {
    let client = t.bucket("locked-version", true).await;
    let now = SystemClock.now();
    let until = now.saturating_add(DAY);
    let bytes = b"a record kept under COMPLIANCE".to_vec();
    let put = PutObject {
        content_type: Some("text/plain".to_owned()),
        metadata: vec![
            ("Wormbox-Version".to_owned(), "01JABCDEF".to_owned()),
            ("wormbox-seq".to_owned(), "42".to_owned()),
        ],
        lock: Some((LockMode::Compliance, until)),
        legal_hold: true,
        checksum: true,
        ..PutObject::new(bytes.len() as u64, sha256(&bytes))
    };
    let key = "records/2026/a.txt";
    let outcome =
        client.put_object(key, once(bytes.clone()), put).await.unwrap_or_else(|e| panic!("{}: {e}", t.engine));
    let version = outcome.version_id.clone().expect("a versioned bucket names the version");
    assert!(!outcome.etag.is_empty());

    let head = client.head_object(key, Some(&version)).await.unwrap();
    assert_eq!(head.size, bytes.len() as u64);
    assert_eq!(head.version_id.as_deref(), Some(version.as_str()));
    assert_eq!(head.etag, outcome.etag);
    assert_eq!(head.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        head.metadata,
        [("wormbox-seq".to_owned(), "42".to_owned()), ("wormbox-version".to_owned(), "01JABCDEF".to_owned())],
        "{}",
        t.engine
    );
    let (mode, read_until) = head.lock.unwrap_or_else(|| panic!("{}: no lock in the head", t.engine));
    assert_eq!(mode, LockMode::Compliance);
    // Sent rounded up to the second: never earlier than asked.
    assert!(read_until >= until && read_until.0 - until.0 < 1_000_000, "{}: {read_until} for {until}", t.engine);
    assert!(head.legal_hold, "{}", t.engine);
    match head.checksum_sha256 {
        Some(sum) => assert_eq!(sum, sha256(&bytes), "{}", t.engine),
        None => println!("{}: HEAD returned no x-amz-checksum-sha256", t.engine),
    }
    assert_eq!(read_all(&client, key, Some(&version)).await, bytes);
    assert_eq!(
        client.get_object_retention(key, Some(&version)).await.unwrap(),
        Some((LockMode::Compliance, read_until))
    );
    assert!(client.get_object_legal_hold(key, Some(&version)).await.unwrap());

    assert_eq!(code(client.delete_object(key, Some(&version), None).await), "AccessDenied", "{}", t.engine);

    let later = now.saturating_add(2 * DAY);
    client.put_object_retention(key, Some(&version), LockMode::Compliance, later, false).await.unwrap();
    let (_, extended) = client.get_object_retention(key, Some(&version)).await.unwrap().unwrap();
    assert!(extended >= later && extended.0 - later.0 < 1_000_000, "{}: {extended}", t.engine);
    let sooner = now.saturating_add(Duration::from_secs(3600));
    let refused = client.put_object_retention(key, Some(&version), LockMode::Compliance, sooner, false).await;
    assert_eq!(code(refused), "AccessDenied", "{}", t.engine);
    let refused = client.put_object_retention(key, Some(&version), LockMode::Governance, later, true).await;
    assert_eq!(code(refused), "AccessDenied", "{}: COMPLIANCE cannot become GOVERNANCE", t.engine);
    assert_eq!(client.get_object_retention(key, Some(&version)).await.unwrap().unwrap().1, extended);

    client.put_object_legal_hold(key, Some(&version), false).await.unwrap();
    assert!(!client.get_object_legal_hold(key, Some(&version)).await.unwrap(), "{}", t.engine);
    assert!(!client.head_object(key, Some(&version)).await.unwrap().legal_hold);
    // Retention still holds it.
    assert_eq!(code(client.delete_object(key, Some(&version), None).await), "AccessDenied", "{}", t.engine);

    let marker = client.delete_object(key, None, None).await.unwrap();
    assert!(marker.delete_marker, "{}: {marker:?}", t.engine);
    let marker_id = marker.version_id.expect("a delete marker has a version id");
    assert_ne!(marker_id, version);
    let missing = client.head_object(key, None).await.unwrap_err();
    assert_eq!(missing.status(), Some(404), "{}: {missing}", t.engine);
    assert_eq!(read_all(&client, key, Some(&version)).await, bytes, "the version stays behind its marker");
    let page = client.list_object_versions(Some("records/"), None, None, 100).await.unwrap();
    let listed: Vec<_> = page.entries.iter().map(|e| (e.kind, e.version_id.as_str(), e.is_latest)).collect();
    assert_eq!(
        listed,
        [(EntryKind::DeleteMarker, marker_id.as_str(), true), (EntryKind::Version, version.as_str(), false)],
        "{}",
        t.engine
    );
    let listed_version = page.versions().next().unwrap();
    assert_eq!((listed_version.size, listed_version.etag.as_str()), (bytes.len() as u64, outcome.etag.as_str()));
    assert!(listed_version.last_modified.is_some_and(|at| at.0 > now.0 - 600_000_000));
    assert_eq!(page.delete_markers().count(), 1);
}

/// Three versions of one key read one per page, newest first, each page
/// naming where the next starts.
async fn pagination(t: &Target) {
    let client = t.bucket("pages", true).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(put_small(&client, "paged", format!("version {n}").as_bytes()).await.unwrap());
    }
    put_small(&client, "paged-other", b"not under the prefix").await;
    ids.reverse();
    let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
    let mut seen = Vec::new();
    for page_number in 0.. {
        assert!(page_number < 10, "{}: pagination does not end", t.engine);
        let page = client
            .list_object_versions(Some("paged"), key_marker.as_deref(), version_marker.as_deref(), 1)
            .await
            .unwrap();
        assert!(page.entries.len() <= 1, "{}: max-keys 1 gave {:?}", t.engine, page.entries);
        seen.extend(page.entries.iter().map(|e| (e.key.clone(), e.version_id.clone(), e.is_latest)));
        if !page.is_truncated {
            break;
        }
        key_marker = page.next_key_marker;
        version_marker = page.next_version_id_marker;
        assert!(key_marker.is_some(), "{}: a truncated page names the next key", t.engine);
    }
    let mut expected: Vec<_> = ids.iter().enumerate().map(|(i, id)| ("paged".to_owned(), id.clone(), i == 0)).collect();
    expected.push(("paged-other".to_owned(), seen.last().unwrap().1.clone(), true));
    assert_eq!(seen, expected, "{}", t.engine);
}

/// Keys with spaces, `+`, `%`, `&`, unicode and doubled slashes round-trip
/// through PUT, HEAD, GET and the listing.
async fn odd_keys(t: &Target) {
    let client = t.bucket("odd-keys", true).await;
    let keys = [
        "odd/with space",
        "odd/plus+sign",
        "odd/percent%20literal",
        "odd/amp&lt<gt>\"quote'",
        "odd/ünïcødé/日本語/🦀",
        "odd/trailing space ",
        "odd/~tilde.dot_dash-",
        "odd/slash//double",
        "odd/query?x=1#frag;semi:colon,comma=eq",
    ];
    for key in keys {
        let bytes = format!("bytes of {key}").into_bytes();
        let version = put_small(&client, key, &bytes).await;
        let head = client
            .head_object(key, version.as_deref())
            .await
            .unwrap_or_else(|e| panic!("{}: head {key:?}: {e}", t.engine));
        assert_eq!(head.size, bytes.len() as u64, "{}: {key:?}", t.engine);
        assert_eq!(read_all(&client, key, version.as_deref()).await, bytes, "{}: {key:?}", t.engine);
    }
    let page = client.list_object_versions(Some("odd/"), None, None, 1000).await.unwrap();
    let mut listed: Vec<_> = page.entries.iter().map(|e| e.key.as_str()).collect();
    // SeaweedFS stores keys as filer paths: `//` becomes `/` (AWS and RGW
    // keep the key as sent), so `a//b` and `a/b` are one object there.
    let stored = |key: &str| if t.engine == "seaweedfs" { key.replace("//", "/") } else { key.to_owned() };
    let expected_keys: Vec<String> = keys.iter().map(|k| stored(k)).collect();
    let mut expected: Vec<&str> = expected_keys.iter().map(String::as_str).collect();
    listed.sort_unstable();
    expected.sort_unstable();
    assert_eq!(listed, expected, "{}", t.engine);
}

/// A 3 MiB body streamed in 64 KiB chunks reads back byte for byte; one
/// whose bytes differ from the declared SHA-256 is cut off and stores nothing.
async fn streamed_body(t: &Target) {
    let client = t.bucket("streamed", true).await;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..3 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let digest = sha256(&bytes);
    let chunks: Vec<Bytes> = bytes.chunks(64 << 10).map(Bytes::copy_from_slice).collect();
    let stream = |chunks: Vec<Bytes>| futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    let put = PutObject { checksum: true, ..PutObject::new(bytes.len() as u64, digest) };
    let version = client.put_object("big", stream(chunks.clone()), put.clone()).await.unwrap().version_id;
    let body = client.get_object("big", version.as_deref()).await.unwrap();
    assert_eq!(body.head.size, bytes.len() as u64);
    let mut read = Vec::with_capacity(bytes.len());
    let mut chunks_read = std::pin::pin!(body.into_stream());
    while let Some(chunk) = chunks_read.next().await {
        read.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(read.len(), bytes.len(), "{}", t.engine);
    assert_eq!(sha256(&read), digest, "{}", t.engine);

    let mut tampered = chunks;
    let last = tampered.len() - 1;
    tampered[last] = Bytes::from(vec![0u8; 64 << 10]);
    let error = client.put_object("tampered", stream(tampered), put.clone()).await.unwrap_err();
    assert!(matches!(error, S3Error::Body(_)), "{}: {error}", t.engine);
    let error =
        client.put_object("tampered", stream(vec![Bytes::from(bytes[..1000].to_vec())]), put).await.unwrap_err();
    assert!(matches!(error, S3Error::Body(_)), "{}: {error}", t.engine);
    let page = client.list_object_versions(Some("tampered"), None, None, 10).await.unwrap();
    assert!(page.entries.is_empty(), "{}: a cut-off upload stored {:?}", t.engine, page.entries);
}

/// RGW enforces MFA Delete: with it on, a versioned DELETE needs `x-amz-mfa`
/// with a valid, unused code; the client sends it as S3 wants.
async fn mfa_delete(t: &Target) {
    let seed: Vec<u8> = (0..20u8).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect();
    let device = t.mfa_device("replica-test-totp", &seed);
    let client = t.bucket("mfa-delete", false).await;
    t.enable_mfa_delete(&client, &device).await;
    let version = put_small(&client, "k", b"guarded").await.unwrap();
    assert_eq!(code(client.delete_object("k", Some(&version), None).await), "AccessDenied");
    assert_eq!(code(client.delete_object("k", Some(&version), Some(&device.header(-120))).await), "AccessDenied");
    // The next step's code: inside the device's window and not used yet
    // (RGW accepts each code once).
    let deleted = client.delete_object("k", Some(&version), Some(&device.header(1))).await.unwrap();
    assert_eq!(deleted.version_id.as_deref(), Some(version.as_str()));
    assert!(client.list_object_versions(None, None, None, 10).await.unwrap().entries.is_empty());
}
