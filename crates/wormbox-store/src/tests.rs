//! The versioning rules of DESIGN.md, cell by cell, on `MemBackend`, plus the
//! write path's failure cases and the shared conformance suite.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wormbox_model::{
    BucketName, Clock, Digest, ManualClock, ObjectKey, Role, Timestamp, VersionSelector, VersioningState,
};

use crate::backend::{Backend, Batch, Durability, Keyspace, MemBackend};
use crate::evidence::VerifyOptions;
use crate::ledger::LedgerOp;
use crate::{Actor, ListObjectsParams, ListVersionsParams, NewObject, Store, StoreError, StoreOptions};

const LIMIT: u64 = 3 << 20;

struct World {
    store: Store,
    backend: MemBackend,
    clock: Arc<ManualClock>,
    actor: Actor,
    bucket: BucketName,
}

async fn world(state: VersioningState) -> World {
    world_with(state, StoreOptions { max_object_bytes: LIMIT, ..StoreOptions::default() }).await
}

async fn world_with(state: VersioningState, options: StoreOptions) -> World {
    let backend = MemBackend::new();
    let clock = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let store = Store::open(Arc::new(backend.clone()), dyn_clock, options).unwrap();
    let actor = Actor { access_key: "WBOWNER00000000000".to_owned(), role: Role::Writer };
    let bucket = BucketName::new("bucket").unwrap();
    store.create_bucket(&actor, bucket.clone()).await.unwrap();
    if state != VersioningState::Unversioned {
        store.set_versioning(&actor, bucket.clone(), VersioningState::Enabled).await.unwrap();
        store.set_versioning(&actor, bucket.clone(), state).await.unwrap();
    }
    World { store, backend, clock, actor, bucket }
}

fn key(k: &str) -> ObjectKey {
    ObjectKey::new(k).unwrap()
}

impl World {
    async fn put(&self, k: &str, body: &[u8]) -> crate::WriteAck {
        self.clock.advance(Duration::from_micros(1));
        self.store
            .put_object(&self.actor, self.bucket.clone(), key(k), NewObject::default(), body.to_vec())
            .await
            .unwrap()
    }

    async fn delete(&self, k: &str, version: Option<&str>) -> Result<crate::DeleteOutcome, StoreError> {
        let version = version.map(|v| VersionSelector::parse(v).unwrap());
        self.store.delete_object(&self.actor, self.bucket.clone(), key(k), version).await
    }

    fn get(&self, k: &str, version: Option<&str>) -> Result<Vec<u8>, StoreError> {
        let version = version.map(|v| VersionSelector::parse(v).unwrap());
        let (_, reader) = self.store.read_object(&self.bucket, &key(k), version)?;
        Ok(reader.collect::<Result<Vec<_>, _>>()?.concat())
    }

    fn versions(&self) -> Vec<(String, String, bool, bool)> {
        let page = self.store.list_versions(&self.bucket, &ListVersionsParams::default()).unwrap();
        page.entries.into_iter().map(|v| (v.key, v.version_id, v.is_latest, v.is_delete_marker)).collect()
    }
}

// ---- unversioned column ----

#[tokio::test]
async fn unversioned_get_of_a_missing_key_is_no_such_key() {
    let w = world(VersioningState::Unversioned).await;
    assert!(matches!(w.get("nope", None), Err(StoreError::NoSuchKey { .. })));
}

#[tokio::test]
async fn unversioned_put_overwrites_the_null_version() {
    let w = world(VersioningState::Unversioned).await;
    assert_eq!(w.put("k", b"one").await.version_id, "null");
    assert_eq!(w.put("k", b"two").await.version_id, "null");
    assert_eq!(w.get("k", None).unwrap(), b"two");
    assert_eq!(w.get("k", Some("null")).unwrap(), b"two");
    assert_eq!(w.versions(), vec![("k".into(), "null".into(), true, false)]);
    // The replaced version's chunk is gone with it.
    assert_eq!(w.backend.scan(Keyspace::Chunks, b"", b"").count(), 1);
}

#[tokio::test]
async fn unversioned_delete_removes_the_object() {
    let w = world(VersioningState::Unversioned).await;
    w.put("k", b"one").await;
    let outcome = w.delete("k", None).await.unwrap();
    assert!(!outcome.delete_marker);
    assert!(matches!(w.get("k", None), Err(StoreError::NoSuchKey { .. })));
    assert!(w.versions().is_empty());
    // Deleting what is not there changes nothing and is not an error (as in S3).
    let (sequence, _) = w.store.ledger_head().unwrap();
    assert_eq!(w.delete("k", None).await.unwrap().ledger_sequence, None);
    assert_eq!(w.store.ledger_head().unwrap().0, sequence);
}

#[tokio::test]
async fn unversioned_delete_of_the_null_version_by_id() {
    let w = world(VersioningState::Unversioned).await;
    w.put("k", b"one").await;
    assert_eq!(w.delete("k", Some("null")).await.unwrap().version_id.as_deref(), Some("null"));
    assert!(w.versions().is_empty());
}

// ---- versioned column ----

#[tokio::test]
async fn enabled_put_creates_new_versions_and_get_returns_latest_or_by_id() {
    let w = world(VersioningState::Enabled).await;
    let v1 = w.put("k", b"one").await;
    let v2 = w.put("k", b"two").await;
    assert_ne!(v1.version_id, v2.version_id);
    assert_eq!(v1.version_id.len(), 26);
    assert!(v1.version_id < v2.version_id);
    assert_eq!(w.get("k", None).unwrap(), b"two");
    assert_eq!(w.get("k", Some(&v1.version_id)).unwrap(), b"one");
    let head = w.store.head_object(&w.bucket, &key("k"), Some(VersionSelector::parse(&v1.version_id).unwrap()));
    assert!(!head.unwrap().is_latest);
    assert_eq!(
        w.versions(),
        vec![("k".into(), v2.version_id.clone(), true, false), ("k".into(), v1.version_id.clone(), false, false)]
    );
}

#[tokio::test]
async fn enabled_delete_writes_a_marker_and_get_says_so() {
    let w = world(VersioningState::Enabled).await;
    let v1 = w.put("k", b"one").await;
    let marker = w.delete("k", None).await.unwrap();
    assert!(marker.delete_marker);
    let marker_id = marker.version_id.unwrap();
    assert!(matches!(w.get("k", None), Err(StoreError::LatestIsDeleteMarker { version, .. }) if version == marker_id));
    assert!(matches!(w.get("k", Some(&marker_id)), Err(StoreError::VersionIsDeleteMarker { .. })));
    assert_eq!(w.get("k", Some(&v1.version_id)).unwrap(), b"one");
    let listed = w.store.list_objects(&w.bucket, &ListObjectsParams::default()).unwrap();
    assert!(listed.objects.is_empty(), "a key whose latest is a marker is not listed");
}

#[tokio::test]
async fn unknown_and_malformed_version_ids() {
    let w = world(VersioningState::Enabled).await;
    let v1 = w.put("k", b"one").await;
    let unknown = wormbox_model::VersionId::from_parts(1, 1).to_string();
    assert!(matches!(w.get("k", Some(&unknown)), Err(StoreError::NoSuchVersion { .. })));
    assert!(matches!(w.delete("k", Some(&unknown)).await, Err(StoreError::NoSuchVersion { .. })));
    assert!(matches!(w.get("k", Some("null")), Err(StoreError::NoSuchVersion { .. })));
    assert!(matches!(w.get("other", Some(&v1.version_id)), Err(StoreError::NoSuchVersion { .. })));
}

#[tokio::test]
async fn permanent_delete_by_id_makes_the_previous_version_latest() {
    let w = world(VersioningState::Enabled).await;
    let v1 = w.put("k", b"one").await;
    let v2 = w.put("k", b"two").await;
    let outcome = w.delete("k", Some(&v2.version_id)).await.unwrap();
    assert_eq!(outcome.version_id.as_deref(), Some(v2.version_id.as_str()));
    assert_eq!(w.get("k", None).unwrap(), b"one");
    assert_eq!(w.versions(), vec![("k".into(), v1.version_id.clone(), true, false)]);
    assert!(matches!(w.get("k", Some(&v2.version_id)), Err(StoreError::NoSuchVersion { .. })));
}

#[tokio::test]
async fn stacked_delete_markers_peel_off_one_by_one() {
    let w = world(VersioningState::Enabled).await;
    w.put("k", b"one").await;
    w.clock.advance(Duration::from_micros(1));
    let m1 = w.delete("k", None).await.unwrap().version_id.unwrap();
    w.clock.advance(Duration::from_micros(1));
    let m2 = w.delete("k", None).await.unwrap().version_id.unwrap();
    assert_eq!(w.versions().iter().filter(|v| v.3).count(), 2);
    assert!(w.delete("k", Some(&m2)).await.unwrap().delete_marker);
    assert!(matches!(w.get("k", None), Err(StoreError::LatestIsDeleteMarker { version, .. }) if version == m1));
    w.delete("k", Some(&m1)).await.unwrap();
    assert_eq!(w.get("k", None).unwrap(), b"one");
}

#[tokio::test]
async fn suspended_put_replaces_only_the_null_version() {
    let w = world(VersioningState::Enabled).await;
    let v1 = w.put("k", b"one").await;
    w.store.set_versioning(&w.actor, w.bucket.clone(), VersioningState::Suspended).await.unwrap();
    assert_eq!(w.put("k", b"two").await.version_id, "null");
    assert_eq!(w.put("k", b"three").await.version_id, "null");
    assert_eq!(w.get("k", None).unwrap(), b"three");
    assert_eq!(w.get("k", Some(&v1.version_id)).unwrap(), b"one");
    assert_eq!(
        w.versions(),
        vec![("k".into(), "null".into(), true, false), ("k".into(), v1.version_id.clone(), false, false)]
    );
}

#[tokio::test]
async fn suspended_delete_writes_a_null_marker_replacing_the_null_version() {
    let w = world(VersioningState::Suspended).await;
    w.put("k", b"one").await;
    let outcome = w.delete("k", None).await.unwrap();
    assert_eq!(outcome.version_id.as_deref(), Some("null"));
    assert!(outcome.delete_marker);
    assert_eq!(w.versions(), vec![("k".into(), "null".into(), true, true)]);
    assert!(matches!(w.get("k", None), Err(StoreError::LatestIsDeleteMarker { .. })));
    assert!(matches!(w.get("k", Some("null")), Err(StoreError::VersionIsDeleteMarker { .. })));
    // Re-enabling and writing stacks a new version above the null marker.
    w.store.set_versioning(&w.actor, w.bucket.clone(), VersioningState::Enabled).await.unwrap();
    let v = w.put("k", b"again").await;
    assert_eq!(w.versions()[0].1, v.version_id);
}

/// A follower of the ledger knows versions by the internal id its entries
/// name, `null` versions included, which `head_object` answers only as `null`.
#[tokio::test]
async fn a_follower_of_the_ledger_reads_the_null_version_by_its_internal_id() {
    let w = world(VersioningState::Enabled).await;
    let v1 = w.put("k", b"one").await;
    w.store.set_versioning(&w.actor, w.bucket.clone(), VersioningState::Suspended).await.unwrap();
    let null = w.put("k", b"two").await;
    let entries = w.store.ledger_entries(null.ledger_sequence).unwrap();
    let named = entries[0].0.version.expect("the write names its version");
    assert_eq!(named, null.id);

    let by_selector = w.store.head_object(&w.bucket, &key("k"), Some(VersionSelector::Id(named)));
    assert!(matches!(by_selector, Err(StoreError::NoSuchVersion { .. })), "{by_selector:?}");
    let info = w.store.read_version(&w.bucket, &key("k"), named).unwrap();
    assert_eq!((info.id, info.version_id.as_str(), info.is_latest), (named, "null", true));
    assert_eq!(info, w.store.head_object(&w.bucket, &key("k"), Some(VersionSelector::Null)).unwrap());
    let older = w.store.read_version(&w.bucket, &key("k"), v1.id).unwrap();
    assert_eq!((older.version_id, older.is_latest), (v1.version_id, false));

    // Once a delete marker is the null version, it answers as a marker.
    w.delete("k", None).await.unwrap();
    let marker = w.store.ledger_head().unwrap().0;
    let marker = w.store.ledger_entries(marker).unwrap()[0].0.version.unwrap();
    let err = w.store.read_version(&w.bucket, &key("k"), marker).unwrap_err();
    assert!(matches!(err, StoreError::VersionIsDeleteMarker { ref version, .. } if version == "null"), "{err:?}");
    let err = w.store.read_version(&w.bucket, &key("k"), named).unwrap_err();
    assert!(matches!(err, StoreError::NoSuchVersion { .. }), "the replaced null version is gone: {err:?}");
}

#[tokio::test]
async fn versioning_never_returns_to_unversioned_and_only_the_owner_changes_it() {
    let w = world(VersioningState::Enabled).await;
    let back = w.store.set_versioning(&w.actor, w.bucket.clone(), VersioningState::Unversioned).await;
    assert!(matches!(back, Err(StoreError::InvalidArgument(_))));
    let stranger = Actor { access_key: "WBSTRANGER00000000".to_owned(), role: Role::Writer };
    let res = w.store.set_versioning(&stranger, w.bucket.clone(), VersioningState::Suspended).await;
    assert!(matches!(res, Err(StoreError::AccessDenied(_))));
    // An admin key is not the owner's consent either.
    let admin = Actor { access_key: "WBADMIN00000000000".to_owned(), role: Role::Admin };
    let res = w.store.set_versioning(&admin, w.bucket.clone(), VersioningState::Suspended).await;
    assert!(matches!(&res, Err(StoreError::AccessDenied(why)) if why.contains("only the owner")), "{res:?}");
    assert_eq!(w.store.bucket(&w.bucket).unwrap().versioning, VersioningState::Enabled);
    w.store.set_versioning(&w.actor, w.bucket.clone(), VersioningState::Suspended).await.unwrap();
    assert_eq!(w.store.bucket(&w.bucket).unwrap().versioning, VersioningState::Suspended);
}

// ---- buckets ----

#[tokio::test]
async fn buckets_are_unique_and_deleted_only_when_empty() {
    let w = world(VersioningState::Enabled).await;
    let again = w.store.create_bucket(&w.actor, w.bucket.clone()).await;
    assert!(matches!(again, Err(StoreError::BucketExists { .. })));
    let v = w.put("k", b"x").await;
    let marker = w.delete("k", None).await.unwrap().version_id.unwrap();
    let res = w.store.delete_bucket(&w.actor, w.bucket.clone()).await;
    assert!(matches!(res, Err(StoreError::BucketNotEmpty { .. })));
    w.delete("k", Some(&v.version_id)).await.unwrap();
    let res = w.store.delete_bucket(&w.actor, w.bucket.clone()).await;
    assert!(matches!(res, Err(StoreError::BucketNotEmpty { .. })), "a lone delete marker keeps the bucket");
    w.delete("k", Some(&marker)).await.unwrap();
    w.store.delete_bucket(&w.actor, w.bucket.clone()).await.unwrap();
    assert!(matches!(w.store.bucket(&w.bucket), Err(StoreError::NoSuchBucket { .. })));
    let put = w.store.put_object(&w.actor, w.bucket.clone(), key("k"), NewObject::default(), vec![1]).await;
    assert!(matches!(put, Err(StoreError::NoSuchBucket { .. })));
}

// ---- listing ----

#[tokio::test]
async fn listing_pages_across_a_key_with_more_than_1000_versions() {
    let w = world(VersioningState::Enabled).await;
    let mut expected = Vec::new();
    for key_name in ["a", "b\0", "b\0x"] {
        let n = if key_name == "a" { 1003 } else { 2 };
        let mut ids = Vec::new();
        for i in 0..n {
            ids.push(w.put(key_name, format!("{i}").as_bytes()).await.version_id);
        }
        ids.reverse();
        expected.extend(ids.into_iter().map(|id| (key_name.to_owned(), id)));
    }
    let mut seen = Vec::new();
    let mut latest = 0;
    let mut params = ListVersionsParams { max_keys: 1000, ..ListVersionsParams::default() };
    let mut pages = 0;
    loop {
        let page = w.store.list_versions(&w.bucket, &params).unwrap();
        assert!(page.entries.len() <= 1000);
        latest += page.entries.iter().filter(|v| v.is_latest).count();
        seen.extend(page.entries.iter().map(|v| (v.key.clone(), v.version_id.clone())));
        pages += 1;
        if !page.is_truncated {
            break;
        }
        params.key_marker = page.next_key_marker;
        params.version_id_marker = page.next_version_id_marker;
    }
    assert_eq!(pages, 2);
    assert_eq!(seen, expected);
    assert_eq!(latest, 3, "exactly one latest per key, even across pages");
}

#[tokio::test]
async fn paging_versions_goes_on_after_the_null_version_ending_a_page_is_deleted() {
    // What a client emptying a bucket does: list a page, delete what it
    // listed, ask for the next page from the marker.
    let w = world(VersioningState::Unversioned).await;
    w.put("a", b"null").await;
    w.store.set_versioning(&w.actor, w.bucket.clone(), VersioningState::Enabled).await.unwrap();
    let b = w.put("b", b"one").await.version_id;
    let params = ListVersionsParams { max_keys: 1, ..ListVersionsParams::default() };
    let page = w.store.list_versions(&w.bucket, &params).unwrap();
    assert_eq!(page.entries[0].version_id, "null");
    assert!(page.is_truncated);
    w.delete("a", Some("null")).await.unwrap();
    let params = ListVersionsParams {
        key_marker: page.next_key_marker,
        version_id_marker: page.next_version_id_marker,
        ..params
    };
    let next = w.store.list_versions(&w.bucket, &params).unwrap();
    assert_eq!(next.entries.iter().map(|v| v.version_id.clone()).collect::<Vec<_>>(), vec![b]);
}

#[tokio::test]
async fn listing_with_prefix_delimiter_and_small_pages() {
    let w = world(VersioningState::Enabled).await;
    for k in ["a/1", "a/2", "a/b/3", "b", "c/1", "d"] {
        w.put(k, b"x").await;
    }
    let params = ListVersionsParams { delimiter: Some("/".into()), ..ListVersionsParams::default() };
    let page = w.store.list_versions(&w.bucket, &params).unwrap();
    assert_eq!(page.common_prefixes, vec!["a/", "c/"]);
    assert_eq!(page.entries.iter().map(|v| v.key.as_str()).collect::<Vec<_>>(), vec!["b", "d"]);

    let params = ListVersionsParams { prefix: "a/".into(), delimiter: Some("/".into()), ..Default::default() };
    let page = w.store.list_versions(&w.bucket, &params).unwrap();
    assert_eq!(page.common_prefixes, vec!["a/b/"]);
    assert_eq!(page.entries.len(), 2);

    // Pages of one: every entry and prefix exactly once.
    let mut params = ListObjectsParams { delimiter: Some("/".into()), max_keys: 1, ..Default::default() };
    let mut seen = Vec::new();
    loop {
        let page = w.store.list_objects(&w.bucket, &params).unwrap();
        seen.extend(page.common_prefixes.iter().cloned());
        seen.extend(page.objects.iter().map(|o| o.key.clone()));
        if !page.is_truncated {
            break;
        }
        params.start_after = page.next_start_after;
    }
    assert_eq!(seen, vec!["a/", "b", "c/", "d"]);

    let mut params = ListVersionsParams { delimiter: Some("/".into()), max_keys: 1, ..Default::default() };
    let mut seen = Vec::new();
    loop {
        let page = w.store.list_versions(&w.bucket, &params).unwrap();
        seen.extend(page.common_prefixes.iter().cloned());
        seen.extend(page.entries.iter().map(|o| o.key.clone()));
        if !page.is_truncated {
            break;
        }
        params.key_marker = page.next_key_marker;
        params.version_id_marker = page.next_version_id_marker;
    }
    assert_eq!(seen, vec!["a/", "b", "c/", "d"]);
}

#[tokio::test]
async fn list_objects_hides_prefixes_whose_keys_are_all_deleted() {
    let w = world(VersioningState::Enabled).await;
    for k in ["a/1", "a/2", "b", "c/1", "c/2"] {
        w.put(k, b"x").await;
    }
    for k in ["a/1", "a/2", "c/1"] {
        w.delete(k, None).await.unwrap();
    }
    let params = ListObjectsParams { delimiter: Some("/".into()), max_keys: 1, ..Default::default() };
    let page = w.store.list_objects(&w.bucket, &params).unwrap();
    assert_eq!((page.common_prefixes.clone(), page.objects.len()), (vec![], 1), "a/ holds only markers");
    assert_eq!(page.objects[0].key, "b");
    assert!(page.is_truncated);
    let params = ListObjectsParams { start_after: page.next_start_after, ..params };
    let page = w.store.list_objects(&w.bucket, &params).unwrap();
    assert_eq!(page.common_prefixes, vec!["c/"], "c/2 is still visible");
    assert!(!page.is_truncated);
}

// ---- the write path ----

/// Issue 16, finding 12: one ListObjects page over a bucket of delete
/// markers read the whole bucket. Now each call examines a bounded number of
/// keys, and may answer fewer objects than asked (even none) with a
/// continuation; paging on lists every visible entry exactly once.
#[tokio::test]
async fn list_objects_over_many_delete_markers_scans_a_bounded_number_of_keys_per_call() {
    const SCAN: usize = 8;
    let options = StoreOptions { max_object_bytes: LIMIT, list_scan_keys: SCAN, ..StoreOptions::default() };
    let w = world_with(VersioningState::Enabled, options).await;
    let deleted: Vec<String> = (0..40)
        .map(|n| format!("d{n:03}"))
        .chain(std::iter::once("p/".to_owned()))
        .chain((0..20).map(|n| format!("p/{n:03}")))
        .chain((0..20).map(|n| format!("q/{n:03}")))
        .collect();
    for k in deleted.iter().map(String::as_str).chain(["a", "e", "p/zz", "z"]) {
        w.put(k, b"x").await;
    }
    for k in &deleted {
        w.delete(k, None).await.unwrap();
    }
    let keys = deleted.len() + 4;

    // The first page ends after a bounded scan, with a continuation.
    let page = w.store.list_objects(&w.bucket, &ListObjectsParams::default()).unwrap();
    assert_eq!(page.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["a"]);
    assert!(page.is_truncated && page.next_start_after.is_some(), "{page:?}");

    let cases: [(Option<&str>, usize, &[&str]); 4] = [
        (None, 0, &["a", "e", "p/zz", "z"]),
        (None, 1, &["a", "e", "p/zz", "z"]),
        (Some("/"), 0, &["a", "e", "p/", "z"]),
        (Some("/"), 1, &["a", "e", "p/", "z"]),
    ];
    for (delimiter, max_keys, expected) in cases {
        let mut params =
            ListObjectsParams { delimiter: delimiter.map(str::to_owned), max_keys, ..ListObjectsParams::default() };
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = w.store.list_objects(&w.bucket, &params).unwrap();
            pages += 1;
            assert!(pages <= keys + 1, "paging must make progress ({delimiter:?}, {max_keys})");
            seen.extend(page.common_prefixes.iter().cloned());
            seen.extend(page.objects.iter().map(|o| o.key.clone()));
            if !page.is_truncated {
                break;
            }
            params.start_after = page.next_start_after;
        }
        assert_eq!(seen, expected, "delimiter {delimiter:?}, max_keys {max_keys}");
        // At most one key past the bound per page (a key that is its own
        // common prefix is never where a page stops).
        assert!(pages >= keys.div_ceil(SCAN + 1), "{pages} pages for {keys} keys");
    }
}

#[tokio::test]
async fn concurrent_writes_in_one_microsecond_get_unique_ordered_ids() {
    let w = world(VersioningState::Enabled).await;
    let mut tasks = Vec::new();
    for n in 0..200 {
        let store = w.store.clone();
        let actor = w.actor.clone();
        let bucket = w.bucket.clone();
        tasks.push(tokio::spawn(async move {
            store.put_object(&actor, bucket, key("same"), NewObject::default(), vec![n as u8]).await.unwrap()
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().id);
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 200);
    assert_eq!(w.store.verify_ledger().unwrap().entries, 2 + 200);
}

#[tokio::test]
async fn a_clock_set_back_never_yields_older_ids_or_times() {
    let w = world(VersioningState::Enabled).await;
    let v1 = w.put("k", b"1").await;
    w.clock.set(Timestamp(0));
    let v2 = w.store.put_object(&w.actor, w.bucket.clone(), key("k"), NewObject::default(), vec![2]).await.unwrap();
    assert!(v2.id > v1.id);
    let entries = w.store.ledger_entries(1).unwrap();
    assert!(entries.windows(2).all(|e| e[0].0.time <= e[1].0.time));
}

#[tokio::test]
async fn checksum_mismatch_stores_nothing() {
    let w = world(VersioningState::Enabled).await;
    let (sequence, _) = w.store.ledger_head().unwrap();
    let object = NewObject { expected_sha256: Some(Digest([0; 32])), ..NewObject::default() };
    let res = w.store.put_object(&w.actor, w.bucket.clone(), key("k"), object.clone(), b"data".to_vec()).await;
    assert!(matches!(res, Err(StoreError::ChecksumMismatch { .. })));
    let mut upload = w.store.begin_upload(w.bucket.clone(), key("k"), object).unwrap();
    upload.write(&vec![7; crate::CHUNK_BYTES + 10]).unwrap();
    assert!(matches!(upload.finish(&w.actor).await, Err(StoreError::ChecksumMismatch { .. })));
    assert_eq!(w.store.ledger_head().unwrap().0, sequence);
    assert!(w.versions().is_empty());
    assert_eq!(w.backend.scan(Keyspace::Chunks, b"", b"").count(), 0);
}

/// The S3 front door's ETag is stored with the version and read back by
/// head and both listings; other writes and markers carry none.
#[tokio::test]
async fn an_etag_given_with_a_put_or_an_upload_reads_back() {
    let w = world(VersioningState::Enabled).await;
    let single = "5d41402abc4b2a76b9719d911017c592";
    let object = NewObject { etag: Some(single.to_owned()), ..NewObject::default() };
    w.store.put_object(&w.actor, w.bucket.clone(), key("put"), object, b"hello".to_vec()).await.unwrap();
    w.put("plain", b"no etag").await;
    let multi = "0e8c7d3b0d4a1b6c5e2f9a8b7c6d5e4f-10000";
    let mut upload = w.store.begin_upload(w.bucket.clone(), key("upload"), NewObject::default()).unwrap();
    upload.write(&vec![7; crate::CHUNK_BYTES + 10]).unwrap();
    upload.set_etag(multi.to_owned()).unwrap();
    upload.finish(&w.actor).await.unwrap();
    w.delete("gone", None).await.unwrap();

    let head = |k: &str| w.store.head_object(&w.bucket, &key(k), None).unwrap().etag;
    assert_eq!(head("put").as_deref(), Some(single));
    assert_eq!(head("upload").as_deref(), Some(multi));
    assert_eq!(head("plain"), None);
    let listed = w.store.list_objects(&w.bucket, &ListObjectsParams::default()).unwrap();
    let etags: Vec<_> = listed.objects.iter().map(|v| (v.key.as_str(), v.etag.as_deref())).collect();
    assert_eq!(etags, [("plain", None), ("put", Some(single)), ("upload", Some(multi))]);
    let versions = w.store.list_versions(&w.bucket, &ListVersionsParams::default()).unwrap();
    let marker = versions.entries.iter().find(|v| v.is_delete_marker).unwrap();
    assert_eq!(marker.etag, None);
    assert_eq!(versions.entries.iter().filter(|v| v.etag.is_some()).count(), 2);
    let report = w.store.verify_integrity(VerifyOptions::default()).unwrap();
    assert!(report.is_ok(), "{}", report.summary());
}

/// An ETag that is not lower-case hex (with at most a `-<parts>` suffix),
/// or longer than 64 bytes, is refused wherever it is given, and nothing is
/// stored.
#[tokio::test]
async fn a_malformed_etag_is_refused_and_stores_nothing() {
    let w = world(VersioningState::Enabled).await;
    let (sequence, _) = w.store.ledger_head().unwrap();
    let too_long = "a".repeat(65);
    let bad = ["", "\"abc\"", "ABC", "abc-", "-12", "abc-1-2", "abc-x1", "abc 1", "g1", "abc\n", too_long.as_str()];
    for etag in bad {
        let object = NewObject { etag: Some(etag.to_owned()), ..NewObject::default() };
        let res = w.store.put_object(&w.actor, w.bucket.clone(), key("k"), object.clone(), b"x".to_vec()).await;
        assert!(matches!(res, Err(StoreError::InvalidArgument(_))), "{etag:?}: {res:?}");
        let res = w.store.begin_upload(w.bucket.clone(), key("k"), object);
        assert!(matches!(res, Err(StoreError::InvalidArgument(_))), "{etag:?}: {res:?}");
    }
    assert_eq!(w.store.ledger_head().unwrap().0, sequence);
    assert!(w.versions().is_empty());

    // Refused by an upload, it leaves the upload as it was.
    let mut upload = w.store.begin_upload(w.bucket.clone(), key("k"), NewObject::default()).unwrap();
    upload.write(b"body").unwrap();
    for etag in bad {
        assert!(matches!(upload.set_etag(etag.to_owned()), Err(StoreError::InvalidArgument(_))), "{etag:?}");
    }
    upload.finish(&w.actor).await.unwrap();
    assert_eq!(w.store.head_object(&w.bucket, &key("k"), None).unwrap().etag, None);

    for good in ["a".repeat(64), "0".to_owned(), format!("{}-1", "f".repeat(32))] {
        assert!(crate::check_etag(&good).is_ok(), "{good}");
    }
}

#[tokio::test]
async fn oversize_objects_are_refused() {
    let w = world(VersioningState::Enabled).await;
    let res = w
        .store
        .put_object(&w.actor, w.bucket.clone(), key("k"), NewObject::default(), vec![0; LIMIT as usize + 1])
        .await;
    assert!(matches!(res, Err(StoreError::TooLarge { .. })));
    let mut upload = w.store.begin_upload(w.bucket.clone(), key("k"), NewObject::default()).unwrap();
    upload.write(&vec![0; LIMIT as usize]).unwrap();
    assert!(matches!(upload.write(&[0]), Err(StoreError::TooLarge { .. })));
}

/// At the disk's reserve every way of adding object data is refused before
/// it writes anything; deletes and lock changes go on; writes resume when
/// space returns.
#[tokio::test]
async fn at_the_disk_reserve_new_data_is_refused_before_anything_is_written() {
    use crate::backend::DiskSpace;
    let space = |available: u64| Some(DiskSpace { total: 100 << 30, free: available, available });
    let options = StoreOptions { max_object_bytes: LIMIT, reserve_bytes: Some(64 << 20), ..StoreOptions::default() };
    let w = world_with(VersioningState::Enabled, options).await;
    w.backend.set_disk_space(space(1 << 30));
    let kept = w.put("kept", b"before the disk filled").await;
    // A streamed upload that has written a chunk when the disk fills.
    let mut upload = w.store.begin_upload(w.bucket.clone(), key("big"), NewObject::default()).unwrap();
    upload.write(&vec![1; crate::CHUNK_BYTES]).unwrap();
    w.backend.set_disk_space(space(64 << 20));
    // Seen at the next reading: the server's disk watch reads every second.
    assert!(w.store.disk_status().refusing);
    let before = w.backend.contents();

    let full =
        |res: Result<_, StoreError>| matches!(res, Err(StoreError::DiskFull { reserve, .. }) if reserve == 64 << 20);
    let put = w.store.put_object(&w.actor, w.bucket.clone(), key("k"), NewObject::default(), b"x".to_vec()).await;
    assert!(full(put.map(|_| ())));
    assert!(full(w.store.begin_upload(w.bucket.clone(), key("k"), NewObject::default()).map(|_| ())));
    assert!(full(upload.write(&vec![2; crate::CHUNK_BYTES])));
    // A refused write leaves the upload unusable, not short of what it counted.
    assert!(matches!(upload.write(b"x"), Err(StoreError::InvalidArgument(_))));
    assert!(full(w.store.check_space(0).map(drop)));
    assert_eq!(w.backend.contents(), before, "nothing of a refused write is stored");
    assert_eq!(w.store.disk_status().refused, 4);
    // The refused upload is discarded whole.
    assert!(upload.finish(&w.actor).await.is_err());
    assert!(w.store.head_object(&w.bucket, &key("big"), None).is_err());

    // What frees space goes on, delete markers and bucket changes too.
    let id = VersionSelector::parse(&kept.version_id).unwrap();
    w.store.delete_object(&w.actor, w.bucket.clone(), key("kept"), None).await.unwrap();
    w.store.delete_object(&w.actor, w.bucket.clone(), key("kept"), Some(id)).await.unwrap();
    w.store.create_bucket(&w.actor, BucketName::new("another").unwrap()).await.unwrap();

    w.backend.set_disk_space(space(65 << 20));
    assert!(!w.store.disk_status().refusing);
    w.put("k", b"after space returned").await;
}

#[tokio::test]
async fn a_failed_commit_acknowledges_nothing_and_advances_nothing() {
    let w = world(VersioningState::Enabled).await;
    let before = w.store.verify_ledger().unwrap();
    w.backend.fail_next_commit();
    let res = w.store.put_object(&w.actor, w.bucket.clone(), key("k"), NewObject::default(), b"x".to_vec()).await;
    assert!(matches!(res, Err(StoreError::Backend { .. })));
    assert_eq!(w.store.verify_ledger().unwrap(), before);
    assert!(w.versions().is_empty());
    let ack = w.put("k", b"y").await;
    assert_eq!(ack.ledger_sequence, before.entries + 1, "sequence numbers have no gaps");
    assert_eq!(w.store.verify_ledger().unwrap().entries, before.entries + 1);
}

/// Commits failing among many concurrent writes take down exactly their
/// own group: every acknowledged write is stored and ledgered, no refused one
/// is, and the chain has no gaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_commits_among_concurrent_writes_acknowledge_exactly_what_is_stored() {
    let w = world(VersioningState::Enabled).await;
    let (mut acked, mut failed) = (0, 0);
    for round in 0..20 {
        let mut tasks = Vec::new();
        for n in 0..64 {
            let (store, actor, bucket) = (w.store.clone(), w.actor.clone(), w.bucket.clone());
            tasks.push(tokio::spawn(async move {
                let body = format!("{round}/{n}").into_bytes();
                store.put_object(&actor, bucket, key(&format!("k{n}")), NewObject::default(), body).await
            }));
            if n == 20 {
                w.backend.fail_next_commit();
            }
        }
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => acked += 1,
                Err(StoreError::Backend { .. }) => failed += 1,
                Err(other) => panic!("unexpected {other}"),
            }
        }
    }
    assert!(failed > 0, "the injected failures must have hit");
    let listed = w.store.list_versions(&w.bucket, &ListVersionsParams::default()).unwrap();
    let mut stored = listed.entries.len();
    let mut marker = listed.next_key_marker.clone();
    let mut version_marker = listed.next_version_id_marker.clone();
    while marker.is_some() {
        let params = ListVersionsParams {
            key_marker: marker.clone(),
            version_id_marker: version_marker.clone(),
            ..ListVersionsParams::default()
        };
        let page = w.store.list_versions(&w.bucket, &params).unwrap();
        stored += page.entries.len();
        marker = page.next_key_marker;
        version_marker = page.next_version_id_marker;
    }
    let summary = w.store.verify_ledger().unwrap();
    let written = w
        .store
        .ledger_entries(1)
        .unwrap()
        .iter()
        .filter(|(e, _)| e.op == crate::ledger::LedgerOp::VersionWritten)
        .count();
    assert_eq!(written, stored, "every stored version has its entry and no entry lacks its version");
    assert_eq!(stored, acked, "exactly the acknowledged writes are stored");
    assert_eq!(summary.entries, w.store.ledger_head().unwrap().0);
    // The archive carries on.
    let ack = w.put("after", b"ok").await;
    assert_eq!(ack.ledger_sequence, summary.entries + 1);
}

#[tokio::test]
async fn a_rule_broken_inside_a_group_leaves_the_rest_of_the_group_intact() {
    let w = world(VersioningState::Enabled).await;
    let missing = BucketName::new("missing").unwrap();
    let good = w.store.put_object(&w.actor, w.bucket.clone(), key("a"), NewObject::default(), vec![1]);
    let bad = w.store.put_object(&w.actor, missing, key("a"), NewObject::default(), vec![2]);
    let good2 = w.store.put_object(&w.actor, w.bucket.clone(), key("b"), NewObject::default(), vec![3]);
    let (good, bad, good2) = tokio::join!(good, bad, good2);
    assert!(good.is_ok() && good2.is_ok());
    assert!(matches!(bad, Err(StoreError::NoSuchBucket { .. })));
    let summary = w.store.verify_ledger().unwrap();
    assert_eq!(summary.entries, 4);
}

#[tokio::test]
async fn tampering_is_detected_by_ledger_and_reads() {
    let w = world(VersioningState::Enabled).await;
    let ack = w.put("k", b"original").await;
    // A flipped chunk byte: the read fails instead of returning the bytes.
    let (_, raw) = w.backend.scan(Keyspace::Chunks, b"", b"").next().unwrap().unwrap();
    let mut bad = raw.clone();
    *bad.last_mut().unwrap() ^= 1;
    let chunk_key = w.backend.scan(Keyspace::Chunks, b"", b"").next().unwrap().unwrap().0;
    w.backend.tamper(Keyspace::Chunks, &chunk_key, bad);
    assert!(matches!(w.get("k", None), Err(StoreError::DataLoss { .. })));
    w.backend.tamper(Keyspace::Chunks, &chunk_key, raw);
    assert_eq!(w.get("k", Some(&ack.version_id)).unwrap(), b"original");
    // A rewritten ledger entry breaks the chain at that entry.
    let (raw_key, raw_entry) = w.backend.scan(Keyspace::Ledger, b"", b"").nth(1).unwrap().unwrap();
    let mut forged = raw_entry;
    forged[12] ^= 1;
    w.backend.tamper(Keyspace::Ledger, &raw_key, forged);
    assert!(matches!(w.store.verify_ledger(), Err(StoreError::DataLoss { what }) if what.contains("entry 2")));
}

#[tokio::test]
async fn credentials_are_checked_and_revocation_takes_effect() {
    let w = world(VersioningState::Enabled).await;
    let admin = w.store.bootstrap_admin().await.unwrap().unwrap();
    assert!(w.store.bootstrap_admin().await.unwrap().is_none(), "only on first start");
    let actor = w.store.authenticate(&admin.access_key, &admin.secret).unwrap().unwrap();
    assert_eq!(actor.role, Role::Admin);
    assert!(w.store.authenticate(&admin.access_key, "wrong").unwrap().is_none());
    assert!(w.store.authenticate("WBNOSUCHKEY0000000000", &admin.secret).unwrap().is_none());
    let reader = w.store.create_principal(&actor, "reader", Role::Reader).await.unwrap();
    assert!(w.store.authenticate(&reader.access_key, &reader.secret).unwrap().is_some());
    w.store.revoke_principal(&actor, &reader.access_key).await.unwrap();
    assert!(w.store.authenticate(&reader.access_key, &reader.secret).unwrap().is_none());
    let own = w.store.revoke_principal(&actor, &admin.access_key).await;
    assert!(matches!(own, Err(StoreError::AccessDenied(_))));
    // Secrets are stored only as salted hashes.
    let stored: Vec<u8> = w.backend.scan(Keyspace::Principals, b"", b"").flat_map(|e| e.unwrap().1).collect();
    assert!(!stored.windows(reader.secret.len()).any(|win| win == reader.secret.as_bytes()));
}

/// Every byte the store holds, in every keyspace but the meta keyspace
/// (where a sealed S3 secret lives) when `skip_meta`.
fn all_stored_bytes(backend: &MemBackend, skip_meta: bool) -> Vec<u8> {
    let spaces = Keyspace::ALL.into_iter().filter(|space| !(skip_meta && *space == Keyspace::Meta));
    spaces.flat_map(|space| backend.scan(space, b"", b"").flat_map(|e| e.unwrap().1).collect::<Vec<u8>>()).collect()
}

#[tokio::test]
async fn s3_keys_are_an_admins_to_give_once_and_revoked_keys_are_not_served() {
    use crate::{Guarded, SealedSecret};
    let w = world(VersioningState::Enabled).await;
    let admin = w.store.bootstrap_admin().await.unwrap().unwrap();
    let admin = w.store.authenticate(&admin.access_key, &admin.secret).unwrap().unwrap();
    let writer = w.store.create_principal(&admin, "app", Role::Writer).await.unwrap().access_key;
    let blob = b"SEALED-BLOB-0123456789-never-in-the-ledger".to_vec();
    let create = |actor: &Actor, key: &str| {
        let (store, actor, key, sealed) =
            (w.store.clone(), actor.clone(), key.to_owned(), SealedSecret::new(blob.clone()));
        async move { store.create_s3_key_checked::<()>(&actor, &key, sealed, None).await }
    };
    let head = w.store.ledger_head().unwrap().0;

    // Non-admins may neither give nor revoke one, their own included.
    for role in [Role::Writer, Role::Reader, Role::Auditor] {
        let caller = Actor { access_key: writer.clone(), role };
        assert!(matches!(create(&caller, &writer).await, Err(StoreError::AccessDenied(_))), "{role:?}");
        assert!(matches!(w.store.revoke_s3_key(&caller, &writer).await, Err(StoreError::AccessDenied(_))));
    }
    assert_eq!(w.store.ledger_head().unwrap().0, head, "refused callers leave no entry");
    assert!(matches!(create(&admin, "WBNOSUCHKEY0000000000").await, Err(StoreError::NoSuchPrincipal(_))));
    assert!(w.store.s3_key(&writer).unwrap().is_none(), "no key yet");

    // An admin gives one; it is ledgered without the blob, and served.
    let Guarded::Done(created) = create(&admin, &writer).await.unwrap() else { panic!("no code was asked") };
    let (entry, _) = w.store.ledger_entries(created).unwrap().remove(0);
    assert_eq!(
        (entry.op, entry.key.as_str(), entry.detail.as_str()),
        (LedgerOp::S3KeyCreated, &*writer, "role=writer")
    );
    let (actor, sealed) = w.store.s3_key(&writer).unwrap().unwrap();
    assert_eq!((actor.access_key.as_str(), actor.role, sealed.as_bytes()), (&*writer, Role::Writer, &blob[..]));
    assert!(w.store.has_s3_key(&writer).unwrap());
    assert!(!format!("{sealed:?}").contains("SEALED"), "Debug shows no byte of it");
    let elsewhere = all_stored_bytes(&w.backend, true);
    assert!(!elsewhere.windows(blob.len()).any(|win| win == blob), "only the meta entry holds the blob");

    // A second one is refused: revoke first.
    let again = create(&admin, &writer).await;
    assert!(matches!(again, Err(StoreError::InvalidArgument(ref m)) if m.contains("revoke it first")), "{again:?}");

    // Revoking removes it, is ledgered once, and is idempotent.
    let revoked = w.store.revoke_s3_key(&admin, &writer).await.unwrap().unwrap();
    assert_eq!(w.store.ledger_entries(revoked).unwrap()[0].0.op, LedgerOp::S3KeyRevoked);
    assert!(w.store.revoke_s3_key(&admin, &writer).await.unwrap().is_none());
    assert!(w.store.s3_key(&writer).unwrap().is_none() && !w.store.has_s3_key(&writer).unwrap());
    let everywhere = all_stored_bytes(&w.backend, false);
    assert!(!everywhere.windows(blob.len()).any(|win| win == blob), "a revoked blob is gone");

    // A revoked principal's key is not served, and it gets no new one.
    assert!(matches!(create(&admin, &writer).await.unwrap(), Guarded::Done(_)));
    let before = w.store.ledger_head().unwrap().0;
    w.store.revoke_principal(&admin, &writer).await.unwrap();
    assert!(w.store.s3_key(&writer).unwrap().is_none(), "revoking the principal stops its S3 key");
    // In the same write its sealed secret goes too, ledgered as such: no
    // secret of a revoked principal stays at rest.
    assert!(!w.store.has_s3_key(&writer).unwrap(), "revoking the principal removes its S3 key");
    let ops: Vec<_> = w.store.ledger_entries(before + 1).unwrap().into_iter().map(|(e, _)| e.op).collect();
    assert_eq!(ops, [LedgerOp::PrincipalRevoked, LedgerOp::S3KeyRevoked]);
    assert!(w.store.revoke_s3_key(&admin, &writer).await.unwrap().is_none(), "nothing left to revoke");
    assert!(matches!(create(&admin, &writer).await, Err(StoreError::InvalidArgument(_))));
}

#[tokio::test]
async fn a_principal_created_with_an_s3_key_gets_both_in_one_write() {
    use crate::{Guarded, SealedSecret};
    let w = world(VersioningState::Enabled).await;
    let admin = Actor::system();
    let prepared = w.store.prepare_principal("app", Role::Writer, false).unwrap();
    let access_key = prepared.access_key().to_owned();
    let sealed = SealedSecret::new(format!("sealed-for-{access_key}").into_bytes());
    let done = w.store.create_prepared_principal_checked::<()>(&admin, prepared, Some(sealed.clone()), None);
    let Guarded::Done(new) = done.await.unwrap() else { panic!("no code was asked") };
    assert_eq!(new.access_key, access_key);
    let ops: Vec<_> = w.store.ledger_entries(new.ledger_sequence).unwrap().into_iter().map(|(e, _)| e.op).collect();
    assert_eq!(ops, [LedgerOp::PrincipalCreated, LedgerOp::S3KeyCreated]);
    assert_eq!(w.store.s3_key(&access_key).unwrap().unwrap().1, sealed);

    // A writer cannot mint one through a creation either: nothing is stored.
    let writer = Actor { access_key: access_key.clone(), role: Role::Writer };
    let prepared = w.store.prepare_principal("other", Role::Reader, false).unwrap();
    let other = prepared.access_key().to_owned();
    let refused = w.store.create_prepared_principal_checked::<()>(&writer, prepared, Some(sealed), None).await;
    assert!(matches!(refused, Err(StoreError::AccessDenied(_))));
    assert!(w.store.principal(&other).unwrap().is_none());
}

#[test]
fn mem_backend_meets_the_backend_contract() {
    let opened: Mutex<HashMap<PathBuf, MemBackend>> = Mutex::new(HashMap::new());
    crate::backend::conformance::run_all(&|dir| {
        let mut opened = opened.lock().unwrap();
        Arc::new(opened.entry(dir.to_path_buf()).or_default().clone()) as Arc<dyn Backend>
    });
}

fn mfa_on() -> crate::VersioningChange {
    crate::VersioningChange { mfa_delete: Some(true), mfa: Some("DEV123456".to_owned()), ..Default::default() }
}

#[tokio::test]
async fn mfa_delete_needs_a_spent_code_to_change_and_to_purge() {
    let w = world(VersioningState::Enabled).await;
    let ack = w.put("k", b"v1").await;
    let change = |c: crate::VersioningChange| w.store.configure_versioning(&w.actor, w.bucket.clone(), c);

    // Turning it on needs a code, and only the owner may, admin included.
    let no_code = crate::VersioningChange { mfa_delete: Some(true), ..Default::default() };
    assert!(matches!(change(no_code).await, Err(StoreError::MfaRequired { .. })));
    let admin = Actor { access_key: "WBADMIN00000000000".to_owned(), role: Role::Admin };
    let by_admin = w.store.configure_versioning(&admin, w.bucket.clone(), mfa_on()).await;
    assert!(matches!(by_admin, Err(StoreError::AccessDenied(_))));
    let (info, seq) = change(mfa_on()).await.unwrap();
    assert!(info.mfa_delete && seq.is_some());
    assert!(w.store.bucket(&w.bucket).unwrap().mfa_delete);

    // Permanent deletes and versioning changes now need one; markers never do.
    // Suspending is refused outright (see the test below).
    assert!(matches!(w.delete("k", Some(&ack.version_id)).await, Err(StoreError::MfaRequired { .. })));
    let suspend = crate::VersioningChange { state: Some(VersioningState::Suspended), ..Default::default() };
    assert!(matches!(change(suspend.clone()).await, Err(StoreError::SuspendedWithMfaDelete { .. })));
    assert!(matches!(
        w.store.set_versioning(&admin, w.bucket.clone(), VersioningState::Suspended).await,
        Err(StoreError::AccessDenied(_))
    ));
    let marker = w.delete("k", None).await.unwrap();
    assert!(marker.delete_marker);
    assert!(matches!(
        w.delete("k", Some(marker.version_id.as_deref().unwrap())).await,
        Err(StoreError::MfaRequired { .. })
    ));
    assert_eq!(w.get("k", Some(&ack.version_id)).unwrap(), b"v1");

    let purged = w
        .store
        .delete_object_guarded(
            &w.actor,
            w.bucket.clone(),
            key("k"),
            VersionSelector::parse(&ack.version_id).ok(),
            Some("DEV123456".into()),
            false,
        )
        .await
        .unwrap();
    assert_eq!(purged.version_id.as_deref(), Some(ack.version_id.as_str()));
    let entries = w.store.ledger_entries(1).unwrap();
    assert!(
        entries
            .iter()
            .any(|(e, _)| e.detail.contains("mfa DEV123456") && e.op == crate::ledger::LedgerOp::VersionPurged)
    );

    // Turning it off needs a code too; then versioning changes are free again.
    let off_no_code = crate::VersioningChange { mfa_delete: Some(false), ..Default::default() };
    assert!(matches!(change(off_no_code).await, Err(StoreError::MfaRequired { .. })));
    let off = crate::VersioningChange { mfa_delete: Some(false), mfa: Some("DEV123456".into()), ..Default::default() };
    assert!(!change(off).await.unwrap().0.mfa_delete);
    change(suspend).await.unwrap();
}

/// Issue 16, finding 9: a Suspended bucket's writes replace `null` versions
/// with no code, so while MFA Delete is on it cannot be Suspended, code or
/// not (refused before the code is asked for, and ledgered); one request may
/// turn MFA Delete off and suspend, with a code.
#[tokio::test]
async fn suspended_is_refused_while_mfa_delete_is_on() {
    use crate::ledger::LedgerOp;

    let w = world(VersioningState::Enabled).await;
    let change = |c: crate::VersioningChange| w.store.configure_versioning(&w.actor, w.bucket.clone(), c);
    let refused = || w.store.ledger_entries(1).unwrap().into_iter().filter(|(e, _)| e.op == LedgerOp::Refused).count();
    change(mfa_on()).await.unwrap();
    let code = Some("DEV123456".to_owned());
    let suspend = crate::VersioningChange { state: Some(VersioningState::Suspended), ..Default::default() };
    let suspend_with_code = crate::VersioningChange { mfa: code.clone(), ..suspend.clone() };
    let before = refused();
    for attempt in [suspend, suspend_with_code] {
        let err = change(attempt).await.unwrap_err();
        assert!(matches!(err, StoreError::SuspendedWithMfaDelete { .. }), "{err}");
    }
    assert_eq!(refused(), before + 2, "each refusal is a ledger entry");
    let info = w.store.bucket(&w.bucket).unwrap();
    assert_eq!((info.versioning, info.mfa_delete), (VersioningState::Enabled, true));

    // Through the guarded path the code is never looked at.
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&asked);
    let check = crate::CodeCheck {
        serial: "DEV123456".to_owned(),
        update: crate::DeviceUpdate(Box::new(move |_, _| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let serial = "DEV123456".to_owned();
            let op = LedgerOp::MfaAccepted;
            (vec![crate::DeviceChange { serial, record: None, op, bucket: String::new(), detail: String::new() }], ())
        })),
    };
    let suspend = crate::VersioningChange { state: Some(VersioningState::Suspended), ..Default::default() };
    let err = w.store.configure_versioning_with_code(&w.actor, w.bucket.clone(), suspend, check).await.unwrap_err();
    assert!(matches!(err, StoreError::SuspendedWithMfaDelete { .. }), "{err}");
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 0, "the code was judged for a refused change");

    // MFA Delete off and Suspended in one request, with a code.
    let off_and_suspend =
        crate::VersioningChange { state: Some(VersioningState::Suspended), mfa_delete: Some(false), mfa: code };
    let (info, sequence) = change(off_and_suspend).await.unwrap();
    assert_eq!((info.versioning, info.mfa_delete, sequence.is_some()), (VersioningState::Suspended, false, true));
    // Nor can MFA Delete be turned on while Suspended, unless versioning is enabled with it.
    let err = change(mfa_on()).await.unwrap_err();
    assert!(matches!(err, StoreError::SuspendedWithMfaDelete { .. }), "{err}");
    let on_and_enable = crate::VersioningChange { state: Some(VersioningState::Enabled), ..mfa_on() };
    let (info, _) = change(on_and_enable).await.unwrap();
    assert_eq!((info.versioning, info.mfa_delete), (VersioningState::Enabled, true));
}

/// Issue 16, finding 9: a bucket an older build left Suspended with MFA
/// Delete on refuses every write that would replace a `null` version (a PUT,
/// a plain DELETE), with a ledger entry; writes that replace nothing still
/// go through, and the owner's way out (enabling versioning) works.
#[tokio::test]
async fn a_legacy_suspended_bucket_with_mfa_delete_refuses_replacing_writes() {
    use crate::codec::BucketRecord;
    use crate::ledger::LedgerOp;

    let w = world(VersioningState::Suspended).await;
    let kept = w.put("kept", b"null version").await;
    assert_eq!(kept.version_id, "null");
    // What an older build allowed: MFA Delete turned on while Suspended.
    let name = w.bucket.as_str().as_bytes().to_vec();
    let mut record = BucketRecord::decode(&w.backend.get(Keyspace::Buckets, &name).unwrap().unwrap()).unwrap();
    record.mfa_delete = true;
    let mut batch = Batch::new();
    batch.put(Keyspace::Buckets, name, record.encode());
    w.backend.commit(&batch, Durability::Synced).unwrap();
    let info = w.store.bucket(&w.bucket).unwrap();
    assert_eq!((info.versioning, info.mfa_delete), (VersioningState::Suspended, true));

    let (head, _) = w.store.ledger_head().unwrap();
    let put = w.store.put_object(&w.actor, w.bucket.clone(), key("kept"), NewObject::default(), b"over".to_vec());
    let err = put.await.unwrap_err();
    assert!(matches!(&err, StoreError::NullVersionNeedsMfa { key, .. } if key == "kept"), "{err}");
    let err = w.delete("kept", None).await.unwrap_err();
    assert!(matches!(err, StoreError::NullVersionNeedsMfa { .. }), "{err}");
    assert_eq!(w.get("kept", None).unwrap(), b"null version");
    assert_eq!(w.get("kept", Some("null")).unwrap(), b"null version");
    let entries = w.store.ledger_entries(head + 1).unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    for (entry, _) in &entries {
        assert_eq!((entry.op, entry.key.as_str()), (LedgerOp::Refused, "kept"));
        assert!(entry.detail.contains("null version"), "{}", entry.detail);
    }

    // A key with no null version loses nothing: its first write and marker go through.
    assert_eq!(w.put("fresh", b"x").await.version_id, "null");
    assert!(w.delete("other", None).await.unwrap().delete_marker);
    // Enabling versioning (with a code) ends it: writes make new versions again.
    let enable = crate::VersioningChange {
        state: Some(VersioningState::Enabled),
        mfa: Some("DEV123456".to_owned()),
        ..Default::default()
    };
    w.store.configure_versioning(&w.actor, w.bucket.clone(), enable).await.unwrap();
    assert_ne!(w.put("kept", b"new").await.version_id, "null");
    assert_eq!(w.get("kept", Some("null")).unwrap(), b"null version");
}

#[tokio::test]
async fn mfa_delete_cannot_be_on_for_an_unversioned_bucket() {
    let w = world(VersioningState::Unversioned).await;
    let err = w.store.configure_versioning(&w.actor, w.bucket.clone(), mfa_on()).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument(_)), "{err}");
    let with_state = crate::VersioningChange { state: Some(VersioningState::Enabled), ..mfa_on() };
    assert!(w.store.configure_versioning(&w.actor, w.bucket.clone(), with_state).await.unwrap().0.mfa_delete);
}

#[tokio::test]
async fn device_updates_see_earlier_updates_of_the_same_group_and_are_ledgered() {
    let w = world(VersioningState::Enabled).await;
    let serial = "DEV123456".to_owned();
    // Each update increments a counter; run many at once so some share a group.
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let store = w.store.clone();
        let actor = w.actor.clone();
        let serial = serial.clone();
        let key = serial.clone();
        tasks.push(tokio::spawn(async move {
            let update = crate::DeviceUpdate(Box::new(move |current: Vec<Option<Vec<u8>>>, _now| {
                let n = current[0].as_ref().map_or(0, |r| u32::from_be_bytes(r[..4].try_into().unwrap()));
                let change = crate::DeviceChange {
                    serial: key,
                    record: Some((n + 1).to_be_bytes().to_vec()),
                    op: crate::ledger::LedgerOp::MfaAccepted,
                    bucket: String::new(),
                    detail: "test".into(),
                };
                (vec![change], ())
            }));
            store.update_devices(&actor, vec![serial], update).await.unwrap()
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap().0.is_some());
    }
    assert_eq!(w.store.device(&serial).unwrap(), Some(50u32.to_be_bytes().to_vec()));
    assert_eq!(w.store.devices().unwrap().len(), 1);
    let accepted = w.store.ledger_entries(1).unwrap().into_iter().filter(|(e, _)| e.key == serial).count();
    assert_eq!(accepted, 50);
    w.store.verify_ledger().unwrap();
}

mod object_lock {
    //! Object Lock in the writer: stamping, purge refusals judged in the same
    //! write, retention changes, holds, and the ledger's record of refusals.

    use super::*;
    use crate::ledger::LedgerOp;
    use crate::retention::{DefaultRetention, Retention, RetentionMode, RetentionPeriod};

    const DAY: i64 = 24 * 3600 * 1_000_000;

    async fn lock_world() -> World {
        let w = world(VersioningState::Unversioned).await;
        let bucket = BucketName::new("locked").unwrap();
        let (info, _) = w.store.create_bucket_with_lock(&w.actor, bucket.clone(), true).await.unwrap();
        assert!(info.object_lock);
        assert_eq!(info.versioning, VersioningState::Enabled);
        World { bucket, ..w }
    }

    fn now(w: &World) -> Timestamp {
        w.clock.now()
    }

    async fn put_with(w: &World, k: &str, retention: Option<Retention>, hold: Option<&str>) -> crate::WriteAck {
        w.clock.advance(Duration::from_micros(1));
        let object = NewObject { retention, legal_hold: hold.map(str::to_owned), ..NewObject::default() };
        w.store.put_object(&w.actor, w.bucket.clone(), key(k), object, b"record".to_vec()).await.unwrap()
    }

    fn ledger_ops(w: &World) -> Vec<LedgerOp> {
        w.store.ledger_entries(1).unwrap().into_iter().map(|(e, _)| e.op).collect()
    }

    fn officer() -> Actor {
        Actor { access_key: "WBOFFICER000000000".to_owned(), role: Role::Auditor }
    }

    fn sel(ack: &crate::WriteAck) -> VersionSelector {
        VersionSelector::parse(&ack.version_id).unwrap()
    }

    /// Issue 16, finding 7: refusals cannot grow the ledger without bound. A
    /// caller without the right writes no entry at all; an entitled caller's
    /// refusals are itemised up to a budget per minute, and the rest of the
    /// minute's are one entry that counts them.
    #[tokio::test]
    async fn refusals_grow_the_ledger_by_a_bounded_amount() {
        let w = lock_world().await;
        let until = Timestamp(now(&w).0 + 2 * DAY);
        let ack = put_with(&w, "k", Some(Retention { mode: RetentionMode::Compliance, until }), None).await;
        let entries = || w.store.ledger_entries(1).unwrap().len();
        let before = entries();
        let reader = Actor { access_key: "WBREADER0000000000".to_owned(), role: Role::Reader };
        for _ in 0..200 {
            let retention = Some(Retention { mode: RetentionMode::Compliance, until: Timestamp(until.0 + DAY) });
            let err = w
                .store
                .set_retention(&reader, w.bucket.clone(), key("k"), sel(&ack), retention, false, None)
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::AccessDenied(_)), "{err}");
        }
        assert_eq!(entries(), before, "a caller who may not attempt it writes nothing");
        for _ in 0..200 {
            let err = w.delete("k", Some(&ack.version_id)).await.unwrap_err();
            assert!(matches!(err, StoreError::ObjectLocked { .. }), "{err}");
        }
        let budget = crate::writer::REFUSALS_PER_WINDOW as usize;
        assert_eq!(entries(), before + budget, "the first {budget} of a minute are itemised");
        // The next group after the minute writes one entry counting the rest.
        w.clock.advance(Duration::from_secs(61));
        let _ = w.delete("k", Some(&ack.version_id)).await.unwrap_err();
        let all = w.store.ledger_entries(1).unwrap();
        let tally = &all[before + budget].0;
        assert_eq!((tally.op, tally.principal.as_str()), (LedgerOp::Refused, w.actor.access_key.as_str()));
        assert!(tally.detail.starts_with(&format!("{} further refused attempts", 200 - budget)), "{}", tally.detail);
        assert_eq!(all.len(), before + budget + 2, "the count, then the new minute's first refusal");
    }

    #[tokio::test]
    async fn compliance_retention_refuses_every_purge_until_it_expires() {
        let w = lock_world().await;
        let until = Timestamp(now(&w).0 + 2 * DAY);
        let ack = put_with(&w, "k", Some(Retention { mode: RetentionMode::Compliance, until }), None).await;
        let admin = Actor { access_key: "WBADMIN00000000000".to_owned(), role: Role::Admin };
        for (actor, bypass, mfa) in [(&w.actor, false, None), (&admin, true, Some("DEV1".to_owned()))] {
            let err = w
                .store
                .delete_object_guarded(actor, w.bucket.clone(), key("k"), Some(sel(&ack)), mfa, bypass)
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::ObjectLocked { .. }), "{err}");
        }
        // Shorten, remove, downgrade: all refused, by anyone.
        for retention in [
            Some(Retention { mode: RetentionMode::Compliance, until: Timestamp(until.0 - DAY) }),
            None,
            Some(Retention { mode: RetentionMode::Governance, until }),
        ] {
            let err = w
                .store
                .set_retention(&admin, w.bucket.clone(), key("k"), sel(&ack), retention, true, Some("D".into()))
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::RetentionShortenDenied(_)), "{err}");
        }
        // Every refusal is in the ledger; the bytes are intact.
        assert_eq!(ledger_ops(&w).iter().filter(|op| **op == LedgerOp::Refused).count(), 5);
        assert_eq!(w.get("k", Some(&ack.version_id)).unwrap(), b"record");
        // Extending works (the same date counts).
        let same = Some(Retention { mode: RetentionMode::Compliance, until });
        w.store.set_retention(&w.actor, w.bucket.clone(), key("k"), sel(&ack), same, false, None).await.unwrap();
        // Once the compliance clock passes retain-until, a purge goes through.
        w.clock.advance(Duration::from_secs(2 * 24 * 3600));
        w.store
            .delete_object_guarded(&w.actor, w.bucket.clone(), key("k"), Some(sel(&ack)), None, false)
            .await
            .unwrap();
        w.store.verify_ledger().unwrap();
    }

    #[tokio::test]
    async fn governance_yields_only_to_bypass_and_holds_to_nothing() {
        let w = lock_world().await;
        let until = Timestamp(now(&w).0 + DAY);
        let ack = put_with(&w, "g", Some(Retention { mode: RetentionMode::Governance, until }), Some("case-7")).await;
        let head = w.store.head_object(&w.bucket, &key("g"), None).unwrap();
        assert_eq!(head.retention.unwrap().mode, RetentionMode::Governance);
        assert_eq!(head.legal_holds[0].case_id, "case-7");
        let purge = |bypass: bool| {
            w.store.delete_object_guarded(&w.actor, w.bucket.clone(), key("g"), Some(sel(&ack)), None, bypass)
        };
        assert!(matches!(purge(true).await, Err(StoreError::LegalHold { .. })), "bypass never lifts a hold");
        // A writer cannot release it; the attempt is in the ledger.
        let by_writer = w
            .store
            .set_legal_hold(&w.actor, w.bucket.clone(), key("g"), sel(&ack), "case-7".into(), false, String::new())
            .await;
        assert!(matches!(by_writer, Err(StoreError::AccessDenied(_))));
        let (lock, seq) = w
            .store
            .set_legal_hold(&officer(), w.bucket.clone(), key("g"), sel(&ack), "case-7".into(), false, String::new())
            .await
            .unwrap();
        assert!(lock.holds.is_empty() && seq.is_some());
        assert!(matches!(purge(false).await, Err(StoreError::ObjectLocked { .. })));
        purge(true).await.unwrap();
        let ops = ledger_ops(&w);
        assert!(ops.contains(&LedgerOp::HoldReleased) && ops.contains(&LedgerOp::VersionPurged));
    }

    #[tokio::test]
    async fn default_retention_is_stamped_in_the_same_write_and_never_rewritten() {
        let w = lock_world().await;
        let default = DefaultRetention { mode: RetentionMode::Compliance, period: RetentionPeriod::Days(30) };
        w.store.configure_object_lock(&w.actor, w.bucket.clone(), Some(default)).await.unwrap();
        let stamped = put_with(&w, "d", None, None).await;
        let head = w.store.head_object(&w.bucket, &key("d"), Some(sel(&stamped))).unwrap();
        assert_eq!(head.retention, Some(default.retention_from(head.created_at)));
        // An explicit setting overrides the default.
        let until = Timestamp(now(&w).0 + 400 * DAY);
        let explicit = put_with(&w, "d", Some(Retention { mode: RetentionMode::Governance, until }), None).await;
        let head = w.store.head_object(&w.bucket, &key("d"), Some(sel(&explicit))).unwrap();
        assert_eq!(head.retention.unwrap().until, until);
        // Changing the default leaves existing versions as they are.
        w.store.configure_object_lock(&w.actor, w.bucket.clone(), None).await.unwrap();
        let again = w.store.head_object(&w.bucket, &key("d"), Some(sel(&stamped))).unwrap();
        assert_eq!(again.retention, Some(default.retention_from(again.created_at)));
        // Locks protect versions, not keys: new versions and markers are written.
        put_with(&w, "d", None, None).await;
        assert!(w.delete("d", None).await.unwrap().delete_marker);
        let listed = w.store.list_versions(&w.bucket, &ListVersionsParams::default()).unwrap();
        assert!(listed.entries.iter().any(|v| v.retention.is_some()));
    }

    /// Issue 16, finding 5: a hold id given with the write skipped every
    /// check (a 210 KB id with NUL and newline was stored); the store now
    /// checks it, and a hold's case id and note, with the one shared function.
    #[tokio::test]
    async fn free_text_is_checked_by_the_store_for_every_caller_and_changes_nothing() {
        let w = lock_world().await;
        let before = ledger_ops(&w).len();
        let huge = format!("{}\0\n", "x".repeat(210 * 1024));
        for (hold, content_type) in [(Some(huge.as_str()), ""), (Some("SEC\0"), ""), (None, "text/plain\r\nX: y")] {
            let object = NewObject {
                legal_hold: hold.map(str::to_owned),
                content_type: content_type.into(),
                ..NewObject::default()
            };
            let err = w.store.put_object(&w.actor, w.bucket.clone(), key("k"), object.clone(), b"x".to_vec()).await;
            assert!(matches!(err, Err(StoreError::InvalidArgument(_))), "{err:?}");
            assert!(matches!(
                w.store.begin_upload(w.bucket.clone(), key("k"), object),
                Err(StoreError::InvalidArgument(_))
            ));
        }
        assert!(w.store.list_versions(&w.bucket, &ListVersionsParams::default()).unwrap().entries.is_empty());
        assert_eq!(ledger_ops(&w).len(), before, "a refused write left a ledger entry");

        let ack = put_with(&w, "k", None, None).await;
        let before = ledger_ops(&w).len();
        for (case_id, note) in [("SEC\n17", ""), ("", ""), ("SEC-17", "a\u{1b}[2J"), ("SEC-17", &*"n".repeat(1025))] {
            let err = w
                .store
                .set_legal_hold(&officer(), w.bucket.clone(), key("k"), sel(&ack), case_id.into(), true, note.into())
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::InvalidArgument(_)), "{err}");
        }
        // One text for one field, whichever way it came in.
        let at_put = NewObject { legal_hold: Some("SEC\n17".into()), ..NewObject::default() };
        let at_put = w.store.put_object(&w.actor, w.bucket.clone(), key("k"), at_put, b"x".to_vec()).await.unwrap_err();
        let at_hold = w
            .store
            .set_legal_hold(&officer(), w.bucket.clone(), key("k"), sel(&ack), "SEC\n17".into(), true, String::new())
            .await
            .unwrap_err();
        assert_eq!(at_put.to_string(), at_hold.to_string());
        assert_eq!(ledger_ops(&w).len(), before);
        assert!(w.store.head_object(&w.bucket, &key("k"), Some(sel(&ack))).unwrap().legal_holds.is_empty());
    }

    #[tokio::test]
    async fn object_lock_pins_versioning_and_needs_it() {
        let w = lock_world().await;
        let err = w.store.set_versioning(&w.actor, w.bucket.clone(), VersioningState::Suspended).await.unwrap_err();
        assert!(matches!(err, StoreError::VersioningLocked { .. }));
        assert!(ledger_ops(&w).contains(&LedgerOp::Refused));
        // Retention and holds need an Object Lock bucket; turning it on needs Enabled versioning.
        let plain = world(VersioningState::Suspended).await;
        let object = NewObject { legal_hold: Some("c".into()), ..NewObject::default() };
        let err = plain.store.put_object(&plain.actor, plain.bucket.clone(), key("x"), object, b"x".to_vec()).await;
        assert!(matches!(err, Err(StoreError::InvalidArgument(_))));
        let err = plain.store.configure_object_lock(&plain.actor, plain.bucket.clone(), None).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidArgument(_)));
        plain.store.set_versioning(&plain.actor, plain.bucket.clone(), VersioningState::Enabled).await.unwrap();
        let (info, _) = plain.store.configure_object_lock(&plain.actor, plain.bucket.clone(), None).await.unwrap();
        assert!(info.object_lock);
        // A retain-until in the past or beyond 100 years is refused at write.
        let past = Some(Retention { mode: RetentionMode::Governance, until: Timestamp(now(&w).0 - 1) });
        let object = NewObject { retention: past, ..NewObject::default() };
        let err = w.store.put_object(&w.actor, w.bucket.clone(), key("p"), object, b"x".to_vec()).await;
        assert!(matches!(err, Err(StoreError::InvalidArgument(_))));
    }

    /// DESIGN.md invariant 9: the authority judges a code only for an
    /// operation that passed every rule needing none, and the operation runs
    /// only with the code accepted, in the write that spends it.
    #[tokio::test]
    async fn a_code_is_judged_only_after_the_operation_it_guards() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        let w = lock_world().await;
        // With MFA Delete on, a permanent delete needs its code (without, a code is not judged).
        w.store.configure_versioning(&w.actor, w.bucket.clone(), super::mfa_on()).await.unwrap();
        let until = Timestamp(now(&w).0 + DAY);
        let locked = put_with(&w, "c", Some(Retention { mode: RetentionMode::Compliance, until }), None).await;
        let free = put_with(&w, "f", None, None).await;
        let asked = Arc::new(AtomicUsize::new(0));
        let check = |accept: bool| {
            let asked = Arc::clone(&asked);
            crate::CodeCheck {
                serial: "DEV123456".to_owned(),
                update: crate::DeviceUpdate(Box::new(move |_, _| {
                    asked.fetch_add(1, Ordering::SeqCst);
                    let op = if accept { LedgerOp::MfaAccepted } else { LedgerOp::MfaRefused };
                    let serial = "DEV123456".to_owned();
                    (
                        vec![crate::DeviceChange {
                            serial,
                            record: None,
                            op,
                            bucket: String::new(),
                            detail: String::new(),
                        }],
                        (),
                    )
                })),
            }
        };

        // Refused for its own sake: answered as without a code, the authority never asked.
        let err = w
            .store
            .delete_object_with_code(&w.actor, w.bucket.clone(), key("c"), sel(&locked), false, check(true))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::ObjectLocked { .. }), "{err}");
        let shorter = Some(Retention { mode: RetentionMode::Compliance, until: Timestamp(until.0 - 1) });
        let err = w
            .store
            .set_retention_with_code(&w.actor, w.bucket.clone(), key("c"), sel(&locked), shorter, false, check(true))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::RetentionShortenDenied(_)), "{err}");
        assert_eq!(asked.load(Ordering::SeqCst), 0);

        // Allowed, code refused: the authority's verdict is kept, the version too.
        let refused = w
            .store
            .delete_object_with_code(&w.actor, w.bucket.clone(), key("f"), sel(&free), false, check(false))
            .await
            .unwrap();
        assert!(matches!(refused, crate::Guarded::CodeRefused(())));
        assert_eq!(w.get("f", Some(&free.version_id)).unwrap(), b"record");

        // Allowed, code accepted: spent and purged in one write, in that order.
        let done = w
            .store
            .delete_object_with_code(&w.actor, w.bucket.clone(), key("f"), sel(&free), false, check(true))
            .await
            .unwrap();
        assert!(matches!(&done, crate::Guarded::Done(o) if o.version_id.as_deref() == Some(free.version_id.as_str())));
        assert_eq!(asked.load(Ordering::SeqCst), 2);
        let ops = ledger_ops(&w);
        assert_eq!(&ops[ops.len() - 2..], &[LedgerOp::MfaAccepted, LedgerOp::VersionPurged]);
        assert_eq!(ops.iter().filter(|op| **op == LedgerOp::MfaRefused).count(), 1);
        assert_eq!(ops.iter().filter(|op| **op == LedgerOp::Refused).count(), 2);
        w.store.verify_ledger().unwrap();
    }

    /// Issue 16, finding 17: a retain-until already past, on a version that
    /// retention still protects, is a shortening: refused as one
    /// (`RetentionShortenDenied`) and ledgered, not a silent invalid argument.
    #[tokio::test]
    async fn a_past_retain_until_on_a_protected_version_is_a_refused_shortening() {
        let w = lock_world().await;
        let until = Timestamp(now(&w).0 + DAY);
        let locked = put_with(&w, "c", Some(Retention { mode: RetentionMode::Compliance, until }), None).await;
        let refused = || ledger_ops(&w).iter().filter(|op| **op == LedgerOp::Refused).count();
        let before = refused();
        for past in [Timestamp(now(&w).0 - DAY), Timestamp(now(&w).0 - 1)] {
            for mode in [RetentionMode::Compliance, RetentionMode::Governance] {
                let requested = Some(Retention { mode, until: past });
                let err = w
                    .store
                    .set_retention(&w.actor, w.bucket.clone(), key("c"), sel(&locked), requested, false, None)
                    .await
                    .unwrap_err();
                assert!(matches!(err, StoreError::RetentionShortenDenied(_)), "{err}");
            }
        }
        assert_eq!(refused(), before + 4, "each attempt is a refused entry");
        let head = w.store.head_object(&w.bucket, &key("c"), Some(sel(&locked))).unwrap();
        assert_eq!(head.retention.map(|r| r.until), Some(until));
        // On an unprotected version a past date is merely invalid, and nothing is ledgered.
        let free = put_with(&w, "f", None, None).await;
        let past = Some(Retention { mode: RetentionMode::Governance, until: Timestamp(now(&w).0 - DAY) });
        let err = w
            .store
            .set_retention(&w.actor, w.bucket.clone(), key("f"), sel(&free), past, false, None)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidArgument(_)), "{err}");
        assert_eq!(refused(), before + 4);
    }

    #[tokio::test]
    async fn a_purge_racing_a_hold_sees_one_consistent_state() {
        let w = lock_world().await;
        let officer = officer();
        for round in 0..20 {
            let k = format!("race-{round}");
            let ack = put_with(&w, &k, None, None).await;
            let hold =
                w.store.set_legal_hold(&officer, w.bucket.clone(), key(&k), sel(&ack), "c".into(), true, String::new());
            let purge =
                w.store.delete_object_guarded(&w.actor, w.bucket.clone(), key(&k), Some(sel(&ack)), None, false);
            let (hold, purge) = tokio::join!(hold, purge);
            match (hold, purge) {
                // The hold came first: the purge was refused, the version is there.
                (Ok(_), Err(StoreError::LegalHold { .. })) => assert!(w.get(&k, Some(&ack.version_id)).is_ok()),
                // The purge came first: the hold finds no version.
                (Err(StoreError::NoSuchVersion { .. }), Ok(_)) => assert!(w.get(&k, Some(&ack.version_id)).is_err()),
                other => panic!("inconsistent outcome {other:?}"),
            }
        }
    }
}

mod multi_delete {
    //! Issue 16, finding 20: a multi-object delete, one code for the whole
    //! request, every permanent delete still judged and ledgered one by one.

    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::ledger::LedgerOp;
    use crate::retention::{Retention, RetentionMode};
    use crate::{CodeCheck, DeleteEntry, DeviceChange, DeviceUpdate, Guarded};

    const DAY: i64 = 24 * 3600 * 1_000_000;
    const SERIAL: &str = "DEV123456";

    /// An Object Lock bucket with MFA Delete on.
    async fn mfa_world() -> World {
        let w = world(VersioningState::Unversioned).await;
        let bucket = BucketName::new("vault").unwrap();
        w.store.create_bucket_with_lock(&w.actor, bucket.clone(), true).await.unwrap();
        w.store.configure_versioning(&w.actor, bucket.clone(), mfa_on()).await.unwrap();
        World { bucket, ..w }
    }

    /// Writes a version and returns its id.
    async fn put_with(w: &World, k: &str, retention: Option<Retention>, hold: Option<&str>) -> String {
        w.clock.advance(Duration::from_micros(1));
        let object = NewObject { retention, legal_hold: hold.map(str::to_owned), ..NewObject::default() };
        w.store.put_object(&w.actor, w.bucket.clone(), key(k), object, b"record".to_vec()).await.unwrap().version_id
    }

    fn entry(k: &str, version: Option<&str>) -> DeleteEntry {
        DeleteEntry { key: key(k), version: version.map(|v| VersionSelector::parse(v).unwrap()) }
    }

    fn count(w: &World, op: LedgerOp) -> usize {
        w.store.ledger_entries(1).unwrap().into_iter().filter(|(e, _)| e.op == op).count()
    }

    /// A code the authority accepts (or refuses), counting how often it is asked.
    fn code(asked: &Arc<AtomicUsize>, accept: bool) -> CodeCheck {
        let asked = Arc::clone(asked);
        CodeCheck {
            serial: SERIAL.to_owned(),
            update: DeviceUpdate(Box::new(move |_, _| {
                asked.fetch_add(1, Ordering::SeqCst);
                let op = if accept { LedgerOp::MfaAccepted } else { LedgerOp::MfaRefused };
                let serial = SERIAL.to_owned();
                (vec![DeviceChange { serial, record: None, op, bucket: String::new(), detail: String::new() }], ())
            })),
        }
    }

    #[tokio::test]
    async fn one_code_purges_many_versions_each_ledgered_as_one_delete() {
        let w = mfa_world().await;
        let mut versions = Vec::new();
        for _ in 0..5 {
            versions.push(put_with(&w, "k", None, None).await);
        }
        let mut entries: Vec<DeleteEntry> = versions.iter().map(|v| entry("k", Some(v))).collect();
        // Named twice, answered once; a marker needs no code and rides along.
        entries.push(entry("k", Some(&versions[0])));
        entries.push(entry("other", None));
        let asked = Arc::new(AtomicUsize::new(0));
        let purged_before = count(&w, LedgerOp::VersionPurged);
        let done = w
            .store
            .delete_objects_with_code(&w.actor, w.bucket.clone(), entries, false, code(&asked, true))
            .await
            .unwrap();
        let Guarded::Done(each) = done else { panic!("the code was accepted") };
        assert_eq!(each.len(), 6, "the duplicate is answered once");
        for (outcome, version) in each.iter().zip(&versions) {
            let deleted = outcome.result.as_ref().unwrap();
            assert_eq!(outcome.entry, entry("k", Some(version)));
            assert_eq!(deleted.version_id.as_ref(), Some(version));
            assert!(!deleted.delete_marker && deleted.ledger_sequence.is_some());
        }
        assert!(each[5].result.as_ref().unwrap().delete_marker);
        assert_eq!(asked.load(Ordering::SeqCst), 1, "one code for the whole request");
        assert_eq!(count(&w, LedgerOp::MfaAccepted), 1);
        let purges: Vec<_> = w
            .store
            .ledger_entries(1)
            .unwrap()
            .into_iter()
            .map(|(e, _)| e)
            .filter(|e| e.op == LedgerOp::VersionPurged)
            .collect();
        assert_eq!(purges.len(), purged_before + 5, "each purge is its own entry");
        assert!(purges.iter().all(|e| e.detail.contains(&format!("mfa {SERIAL}")) && e.version.is_some()));
        assert_eq!(count(&w, LedgerOp::MarkerWritten), 1);
        for version in &versions {
            let gone = w.get("k", Some(version));
            assert!(matches!(gone, Err(StoreError::NoSuchVersion { .. })), "{gone:?}");
        }
        w.store.verify_ledger().unwrap();
    }

    #[tokio::test]
    async fn a_refused_entry_does_not_stop_the_others() {
        let w = mfa_world().await;
        let until = Timestamp(w.clock.now().0 + DAY);
        let first = put_with(&w, "a", None, None).await;
        let locked = put_with(&w, "locked", Some(Retention { mode: RetentionMode::Compliance, until }), None).await;
        let held = put_with(&w, "held", None, Some("SEC-20")).await;
        let last = put_with(&w, "b", None, None).await;
        let missing = wormbox_model::VersionId::from_parts(1, 0).to_string();
        let entries = vec![
            entry("a", Some(&first)),
            entry("locked", Some(&locked)),
            entry("held", Some(&held)),
            entry("a", Some(&missing)),
            entry("b", Some(&last)),
        ];
        let refused_before = count(&w, LedgerOp::Refused);
        let asked = Arc::new(AtomicUsize::new(0));
        let done = w
            .store
            .delete_objects_with_code(&w.actor, w.bucket.clone(), entries, false, code(&asked, true))
            .await
            .unwrap();
        let Guarded::Done(each) = done else { panic!("the code was accepted") };
        assert!(each[0].result.is_ok() && each[4].result.is_ok());
        assert!(matches!(each[1].result, Err(StoreError::ObjectLocked { .. })), "{:?}", each[1].result);
        assert!(matches!(each[2].result, Err(StoreError::LegalHold { .. })), "{:?}", each[2].result);
        assert!(matches!(each[3].result, Err(StoreError::NoSuchVersion { .. })), "{:?}", each[3].result);
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        // The lock and the hold are refusals of protected state, ledgered as
        // single deletes' are; the protected versions are intact.
        let refusals: Vec<_> = w
            .store
            .ledger_entries(1)
            .unwrap()
            .into_iter()
            .map(|(e, _)| e)
            .filter(|e| e.op == LedgerOp::Refused)
            .skip(refused_before)
            .collect();
        assert_eq!(refusals.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["locked", "held"]);
        assert!(refusals.iter().all(|e| e.detail.starts_with("permanent delete of version")));
        assert!(w.get("locked", Some(&locked)).is_ok());
        assert!(w.get("held", Some(&held)).is_ok());
        assert!(w.get("a", Some(&first)).is_err() && w.get("b", Some(&last)).is_err());
        w.store.verify_ledger().unwrap();
    }

    #[tokio::test]
    async fn a_request_whose_purges_are_all_refused_spends_no_code() {
        let w = mfa_world().await;
        let until = Timestamp(w.clock.now().0 + DAY);
        let locked = put_with(&w, "locked", Some(Retention { mode: RetentionMode::Compliance, until }), None).await;
        let held = put_with(&w, "held", None, Some("SEC-20")).await;
        let free = put_with(&w, "free", None, None).await;
        let asked = Arc::new(AtomicUsize::new(0));

        // Every permanent delete refused: the rest runs, the code is never judged.
        let entries = vec![entry("locked", Some(&locked)), entry("held", Some(&held)), entry("m", None)];
        let done = w
            .store
            .delete_objects_with_code(&w.actor, w.bucket.clone(), entries, false, code(&asked, true))
            .await
            .unwrap();
        let Guarded::Done(each) = done else { panic!("nothing asked for the code") };
        assert!(matches!(each[0].result, Err(StoreError::ObjectLocked { .. })));
        assert!(matches!(each[1].result, Err(StoreError::LegalHold { .. })));
        assert!(each[2].result.as_ref().unwrap().delete_marker);
        assert_eq!(asked.load(Ordering::SeqCst), 0, "the code was judged for a request that purged nothing");
        assert_eq!(count(&w, LedgerOp::MfaAccepted), 0);

        // A refused code: the verdict only, not even the marker.
        let markers = count(&w, LedgerOp::MarkerWritten);
        let entries = vec![entry("free", Some(&free)), entry("m", None)];
        let refused = w
            .store
            .delete_objects_with_code(&w.actor, w.bucket.clone(), entries, false, code(&asked, false))
            .await
            .unwrap();
        assert!(matches!(refused, Guarded::CodeRefused(())));
        assert_eq!((count(&w, LedgerOp::MfaRefused), count(&w, LedgerOp::MarkerWritten)), (1, markers));
        assert!(w.get("free", Some(&free)).is_ok());

        // No code: each permanent delete says why, the lock before the code.
        let entries = vec![entry("free", Some(&free)), entry("locked", Some(&locked))];
        let each = w.store.delete_objects(&w.actor, w.bucket.clone(), entries, false).await.unwrap();
        assert!(matches!(each[0].result, Err(StoreError::MfaRequired { .. })));
        assert!(matches!(each[1].result, Err(StoreError::ObjectLocked { .. })));
        assert!(w.get("free", Some(&free)).is_ok());
    }

    #[tokio::test]
    async fn bad_input_is_refused_whole_and_changes_nothing() {
        let w = mfa_world().await;
        let free = put_with(&w, "free", None, None).await;
        let head = w.store.ledger_head().unwrap();
        let asked = Arc::new(AtomicUsize::new(0));
        let too_many: Vec<DeleteEntry> =
            (0..=crate::MAX_DELETE_ENTRIES).map(|i| entry(&format!("k{i}"), None)).collect();
        for entries in [Vec::new(), too_many] {
            let err = w
                .store
                .delete_objects_with_code(&w.actor, w.bucket.clone(), entries, false, code(&asked, true))
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::InvalidArgument(_)), "{err}");
        }
        // Exactly the limit is allowed (markers, no code needed).
        let full: Vec<DeleteEntry> = (0..crate::MAX_DELETE_ENTRIES).map(|i| entry(&format!("k{i}"), None)).collect();
        let missing = BucketName::new("missing").unwrap();
        let err = w.store.delete_objects(&w.actor, missing, full.clone(), false).await.unwrap_err();
        assert!(matches!(err, StoreError::NoSuchBucket { .. }), "{err}");
        assert_eq!(w.store.ledger_head().unwrap(), head, "a refused request wrote nothing");
        assert_eq!(asked.load(Ordering::SeqCst), 0);
        assert!(w.get("free", Some(&free)).is_ok());
        let each = w.store.delete_objects(&w.actor, w.bucket.clone(), full, false).await.unwrap();
        assert!(each.iter().all(|e| e.result.as_ref().is_ok_and(|o| o.delete_marker)));
    }
}

mod compliance_clock {
    //! Retention judged by the compliance clock under clock attacks: set
    //! back a year, jumped forward ten years, restarted after the jump.

    use super::*;
    use crate::ledger::LedgerOp;
    use crate::retention::{Retention, RetentionMode};

    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn moving_the_system_clock_cannot_expire_retention() {
        let w = world(VersioningState::Unversioned).await;
        let bucket = BucketName::new("locked").unwrap();
        w.store.create_bucket_with_lock(&w.actor, bucket.clone(), true).await.unwrap();
        let start = w.clock.now();
        let until = start.saturating_add(Duration::from_secs(24 * 3600));
        let object =
            NewObject { retention: Some(Retention { mode: RetentionMode::Compliance, until }), ..NewObject::default() };
        let ack = w.store.put_object(&w.actor, bucket.clone(), key("k"), object, b"x".to_vec()).await.unwrap();
        let purge = |store: &Store| {
            let store = store.clone();
            let (actor, bucket, id) = (w.actor.clone(), bucket.clone(), ack.version_id.clone());
            async move { store.delete_object(&actor, bucket, key("k"), Some(VersionSelector::parse(&id).unwrap())).await }
        };

        // Set back a year: nothing changes.
        w.clock.set(Timestamp(start.0 - YEAR.as_micros() as i64));
        assert!(matches!(purge(&w.store).await, Err(StoreError::ObjectLocked { .. })));
        // Ten years forward: not followed, so the version stays locked.
        w.clock.set(start.saturating_add(10 * YEAR));
        assert!(matches!(purge(&w.store).await, Err(StoreError::ObjectLocked { .. })));
        let status = w.store.clock_status().await.unwrap();
        assert!(status.held_back.is_some());
        assert!(status.compliance < until, "{status:?}");
        let held = |store: &Store| {
            store.ledger_entries(1).unwrap().iter().filter(|(e, _)| e.op == LedgerOp::ClockHeldBack).count()
        };
        assert_eq!(held(&w.store), 1, "recorded once per episode");

        // Restart after the jump: the persisted clock wins.
        let dyn_clock: Arc<dyn Clock> = w.clock.clone();
        let options = StoreOptions { max_object_bytes: LIMIT, ..StoreOptions::default() };
        let reopened = Store::open(Arc::new(w.backend.clone()), dyn_clock, options).unwrap();
        assert!(matches!(purge(&reopened).await, Err(StoreError::ObjectLocked { .. })));
        assert!(reopened.clock_status().await.unwrap().compliance < until);

        // Only an admin (whose MFA code the caller spent) accepts the jump.
        let err = reopened.accept_clock_forward(&w.actor, "DEV1".into()).await.unwrap_err();
        assert!(matches!(err, StoreError::AccessDenied(_)));
        let admin = Actor { access_key: "WBADMIN00000000000".to_owned(), role: Role::Admin };
        let (status, _) = reopened.accept_clock_forward(&admin, "DEV1".into()).await.unwrap();
        assert!(status.compliance >= start.saturating_add(10 * YEAR));
        purge(&reopened).await.unwrap();
        let entries = reopened.ledger_entries(1).unwrap();
        assert!(entries.iter().any(|(e, _)| e.op == LedgerOp::ClockAccepted && e.detail.contains("mfa DEV1")));
        assert!(entries.windows(2).all(|e| e[0].0.time <= e[1].0.time), "ledger times never go back");
        reopened.verify_ledger().unwrap();
    }

    fn open(backend: &MemBackend, clock: &Arc<ManualClock>) -> Store {
        let clock: Arc<dyn Clock> = clock.clone();
        Store::open(Arc::new(backend.clone()), clock, StoreOptions::default()).unwrap()
    }

    /// What the default policy lets the compliance clock gain on real time over `running`.
    fn allowance(running: Duration) -> Duration {
        let policy = wormbox_model::ClockPolicy::default();
        let year = wormbox_model::ClockPolicy::YEAR.as_micros();
        Duration::from_micros(u64::try_from(running.as_micros() * policy.catch_up_per_year.as_micros() / year).unwrap())
    }

    fn mark(backend: &MemBackend) -> Timestamp {
        let raw = backend.get(Keyspace::Meta, crate::meta::CLOCK).unwrap().unwrap();
        crate::codec::decode_clock(&raw).unwrap().0
    }

    /// Issue 16, finding 14: each restart used to let a held-back clock walk
    /// forward by the whole tolerance again (+60 s a restart). Now a restart
    /// grants nothing: the clock gains only its rate over real running time.
    #[tokio::test]
    async fn restarts_with_the_system_clock_ten_years_ahead_gain_only_the_rate_over_running_time() {
        let World { store, backend, clock, .. } = world(VersioningState::Unversioned).await;
        let real_start = clock.now();
        clock.set(real_start.saturating_add(10 * YEAR));
        let status = store.clock_status().await.unwrap();
        assert!(status.held_back.unwrap() > 9 * YEAR, "{status:?}");
        let mut store = Some(store);
        let mut running = Duration::ZERO;
        for _ in 0..6 {
            // A minute of running, then a restart (no downtime).
            clock.advance(Duration::from_secs(60));
            running += Duration::from_secs(60);
            drop(store.take());
            let reopened = open(&backend, &clock);
            let status = reopened.clock_status().await.unwrap();
            let real = real_start.saturating_add(running);
            let gained = Duration::from_micros(u64::try_from(status.compliance.0 - real.0).unwrap());
            assert!(gained <= allowance(running), "gained {gained:?} over {running:?} of running");
            assert!(status.held_back.unwrap() > 9 * YEAR);
            store = Some(reopened);
        }
        // Restarting with no running time at all gains nothing.
        let before = store.as_ref().unwrap().clock_status().await.unwrap().compliance;
        for _ in 0..5 {
            drop(store.take());
            store = Some(open(&backend, &clock));
        }
        let store = store.unwrap();
        assert_eq!(store.clock_status().await.unwrap().compliance, before);
        let held = store.ledger_entries(1).unwrap().iter().filter(|(e, _)| e.op == LedgerOp::ClockHeldBack).count();
        assert!(held >= 1, "the jump is in the ledger");
        store.verify_ledger().unwrap();
    }

    /// A maintenance window (stopped an hour, system clock right) used to
    /// hold the clock back until an admin accepted it. Now the clock catches
    /// up on its own at a week per year: an hour in about 52 hours.
    #[tokio::test]
    async fn a_maintenance_window_closes_on_its_own_and_idle_time_before_it_is_not_lost() {
        let World { store, backend, clock, .. } = world(VersioningState::Unversioned).await;
        // A day with nothing written: the next group persists the clock
        // anyway, and so does a clean stop.
        clock.advance(Duration::from_secs(24 * 3600));
        let status = store.clock_status().await.unwrap();
        assert_eq!(mark(&backend), status.compliance, "an idle clock is persisted");
        clock.advance(Duration::from_secs(5));
        drop(store);
        let stopped_at = clock.now();
        assert_eq!(mark(&backend), stopped_at, "a clean stop persists the clock");

        // Stopped for an hour: behind by exactly the downtime.
        clock.advance(HOUR);
        let store = open(&backend, &clock);
        let status = store.clock_status().await.unwrap();
        assert_eq!(status.compliance, stopped_at, "downtime earns nothing");
        assert_eq!(status.held_back, Some(HOUR));
        assert_eq!(status.catch_up_per_year, Duration::from_secs(7 * 24 * 3600));
        // 3600 s at 7/365 of real time.
        let to_catch_up = Duration::from_micros(187_714_285_715);
        assert_eq!(status.caught_up_at, Some(status.system.saturating_add(to_catch_up)));
        // A day later it is a day's allowance (about 28 min) closer.
        let day = Duration::from_secs(24 * 3600);
        clock.advance(day);
        let status = store.clock_status().await.unwrap();
        assert_eq!(status.held_back, Some(HOUR - allowance(day)));
        // At the time it named, it has caught up, with no admin.
        clock.advance(to_catch_up - day - Duration::from_micros(1));
        assert!(store.clock_status().await.unwrap().held_back.is_some(), "no faster");
        clock.advance(Duration::from_micros(1));
        let status = store.clock_status().await.unwrap();
        assert_eq!(status.held_back, None, "{status:?}");
        assert_eq!(status.compliance, status.system);
        let ops: Vec<LedgerOp> = store.ledger_entries(1).unwrap().iter().map(|(e, _)| e.op).collect();
        assert_eq!(ops.iter().filter(|op| **op == LedgerOp::ClockHeldBack).count(), 1, "{ops:?}");
        assert_eq!(ops.last(), Some(&LedgerOp::ClockCaughtUp), "{ops:?}");
        assert!(!ops.contains(&LedgerOp::ClockAccepted));
        store.verify_ledger().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_writer_makes_callers_wait_before_queueing_and_the_queue_never_exceeds_its_bytes() {
    let backend = MemBackend::new();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
    // Room for four 16 KiB records, waiting or being written.
    let options = StoreOptions { queue_bytes: 64 << 10, ..StoreOptions::default() };
    let store = Store::open(Arc::new(backend.clone()), clock, options).unwrap();
    let actor = Actor { access_key: "WBOWNER00000000000".to_owned(), role: Role::Writer };
    let bucket = BucketName::new("bucket").unwrap();
    store.create_bucket(&actor, bucket.clone()).await.unwrap();
    assert_eq!(store.queue_available(), 64 << 10);

    let gate = backend.hold_commits();
    let mut tasks = Vec::new();
    for n in 0..12 {
        let (store, actor, bucket) = (store.clone(), actor.clone(), bucket.clone());
        tasks.push(tokio::spawn(async move {
            store.put_object(&actor, bucket, key(&format!("k{n}")), NewObject::default(), vec![n as u8; 16 << 10]).await
        }));
    }
    // While the disk holds the writer, four records fill the queue and the
    // other eight wait outside it, holding nothing of it.
    // (Real time, bounded: the tasks run on other threads; no clock to advance.)
    for _ in 0..10_000 {
        if store.queue_available() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(store.queue_available(), 0, "the queue filled");
    assert_eq!(tasks.iter().filter(|t| t.is_finished()).count(), 0, "nothing is acknowledged before its commit");
    drop(gate);
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(store.queue_available(), 64 << 10, "every share came back");
    let listed = store.list_versions(&bucket, &ListVersionsParams::default()).unwrap();
    assert_eq!(listed.entries.len(), 12);
}

/// Waits (real time, bounded) until `ready`: the writer and committer run on
/// their own threads, with no clock to advance.
async fn wait_until(what: &str, ready: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Puts `keys` so that they make one group being committed on the
/// committer's thread, held at `gate`, and returns their tasks once the
/// writer is free to apply the next group. A lone request finding the
/// committer idle is committed on the writer's own thread, so a put of a
/// blocker (into the bucket `blockers`, which the caller created) goes
/// first and holds the writer while `keys` queue behind it.
async fn held_on_the_committer(
    w: &World,
    gate: &crate::backend::CommitGate,
    keys: [&'static str; 2],
) -> Vec<tokio::task::JoinHandle<Result<crate::WriteAck, StoreError>>> {
    let spawn_put = |bucket: &BucketName, k: &'static str| {
        let (store, actor, bucket) = (w.store.clone(), w.actor.clone(), bucket.clone());
        tokio::spawn(async move { store.put_object(&actor, bucket, key(k), NewObject::default(), vec![1]).await })
    };
    let available = w.store.queue_available();
    let blocker = spawn_put(&BucketName::new("blockers").unwrap(), "blocker");
    wait_until("the blocker is being committed by the writer", || gate.waiting() == 1).await;
    let group: Vec<_> = keys.into_iter().map(|k| spawn_put(&w.bucket, k)).collect();
    // Both queued: each took its share of the write queue, and sends its
    // request in the same poll, without an await; the pause covers a thread
    // pre-empted between the two (real threads, no clock to advance).
    wait_until("the group is queued", || w.store.queue_available() <= available - 3 * crate::writer::REQUEST_FLOOR)
        .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    gate.let_through(1);
    // Answered: its commit is past the gate, and the writer goes on to the group.
    blocker.await.unwrap().unwrap();
    wait_until("the group is being committed", || gate.waiting() == 1).await;
    group
}

/// The next group is applied while the one before it is being committed;
/// it must see that group's changes, or it would judge stale state (here:
/// delete a bucket whose first versions are on their way to the disk).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_sees_the_changes_of_the_group_still_being_committed() {
    let w = world(VersioningState::Enabled).await;
    w.store.create_bucket(&w.actor, BucketName::new("blockers").unwrap()).await.unwrap();
    let gate = w.backend.hold_commits();
    let puts = held_on_the_committer(&w, &gate, ["a", "b"]).await;
    let reads = w.backend.reads();
    let delete = {
        let (store, actor, bucket) = (w.store.clone(), w.actor.clone(), w.bucket.clone());
        tokio::spawn(async move { store.delete_bucket(&actor, bucket).await })
    };
    wait_until("the writer applies the delete", || w.backend.reads() > reads).await;
    assert!(!delete.is_finished(), "nothing is answered before the commit before it");
    drop(gate);
    for put in puts {
        put.await.unwrap().unwrap();
    }
    let deleted = delete.await.unwrap();
    assert!(matches!(deleted, Err(StoreError::BucketNotEmpty { .. })), "got {deleted:?}");
    assert_eq!(w.versions().len(), 2);
    w.store.bucket(&w.bucket).unwrap();
}

/// A group applied on top of one whose commit then fails was judged on
/// state that never became durable: it fails too, even though its own
/// commit would succeed, and the writer carries on from before both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_fails_the_group_applied_on_top_of_it() {
    let w = world(VersioningState::Enabled).await;
    w.store.create_bucket(&w.actor, BucketName::new("blockers").unwrap()).await.unwrap();
    let gate = w.backend.hold_commits();
    let first = held_on_the_committer(&w, &gate, ["a", "b"]).await;
    let before = w.store.verify_ledger().unwrap();
    let reads = w.backend.reads();
    let second = {
        let (store, actor, bucket) = (w.store.clone(), w.actor.clone(), w.bucket.clone());
        tokio::spawn(async move { store.put_object(&actor, bucket, key("c"), NewObject::default(), vec![1]).await })
    };
    wait_until("the writer applies the second put", || w.backend.reads() > reads).await;
    w.backend.fail_next_commit();
    drop(gate);
    for (name, task) in first.into_iter().map(|t| ("first", t)).chain([("second", second)]) {
        let res = task.await.unwrap();
        assert!(matches!(res, Err(StoreError::Backend { .. })), "{name}: {res:?}");
    }
    assert_eq!(w.store.verify_ledger().unwrap(), before, "nothing of either group is stored");
    assert!(w.versions().is_empty());
    let stats = w.store.commit_stats();
    let ack = w.put("d", b"d").await;
    assert_eq!(ack.ledger_sequence, before.entries + 1, "sequence numbers have no gaps");
    w.store.verify_ledger().unwrap();
    let after = w.store.commit_stats();
    assert_eq!((after.groups - stats.groups, after.commands - stats.commands), (1, 1), "failed groups are not counted");
}

/// A lone request that finds the committer idle is committed on the
/// writer's own thread (no hand-over), and is answered only once durable
/// like any other: held at the disk, it is not answered, and a request
/// queued meanwhile is not applied until the commit is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_request_is_committed_by_the_writer_and_answered_only_once_durable() {
    let w = world(VersioningState::Enabled).await;
    let gate = w.backend.hold_commits();
    let put = {
        let (store, actor, bucket) = (w.store.clone(), w.actor.clone(), w.bucket.clone());
        tokio::spawn(async move { store.put_object(&actor, bucket, key("a"), NewObject::default(), vec![1]).await })
    };
    wait_until("the put is being committed", || gate.waiting() == 1).await;
    let reads = w.backend.reads();
    let available = w.store.queue_available();
    let delete = {
        let (store, actor, bucket) = (w.store.clone(), w.actor.clone(), w.bucket.clone());
        tokio::spawn(async move { store.delete_bucket(&actor, bucket).await })
    };
    wait_until("the delete is queued", || w.store.queue_available() < available).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!put.is_finished(), "not answered before it is durable");
    assert_eq!(w.backend.reads(), reads, "the writer, committing, applies nothing else");
    drop(gate);
    put.await.unwrap().unwrap();
    assert!(matches!(delete.await.unwrap(), Err(StoreError::BucketNotEmpty { .. })));
}

/// The writer does not look each new version id up before using it: an
/// archive whose clock mark fell behind the newest id its ledger names
/// (edited, or restored from mismatched parts) is refused at open, before
/// a new version could overwrite an old one.
#[tokio::test]
async fn an_archive_whose_clock_mark_would_reissue_a_version_id_is_refused() {
    let w = world(VersioningState::Enabled).await;
    let ack = w.put("k", b"kept").await;
    let World { store, backend, clock, .. } = w;
    drop(store);
    let reopen = || {
        let clock: Arc<dyn Clock> = clock.clone();
        Store::open(Arc::new(backend.clone()), clock, StoreOptions::default())
    };
    let mark = backend.get(Keyspace::Meta, crate::meta::CLOCK).unwrap().unwrap();
    drop(reopen().expect("an untouched archive opens"));
    let (time, _) = crate::codec::decode_clock(&mark).unwrap();
    backend.tamper(Keyspace::Meta, crate::meta::CLOCK, crate::codec::encode_clock(time, 0));
    match reopen() {
        Err(StoreError::DataLoss { what }) => assert!(what.contains(&ack.id.to_string()), "{what}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    backend.tamper(Keyspace::Meta, crate::meta::CLOCK, mark);
    let store = reopen().expect("the right mark opens again");
    let again = store
        .put_object(
            &Actor::system(),
            BucketName::new("bucket").unwrap(),
            key("k"),
            NewObject::default(),
            b"new".to_vec(),
        )
        .await
        .unwrap();
    assert!(again.id > ack.id);
}

// ---- cancelled and refused publishes ----

/// Three whole chunks, the most `world` accepts: `finish` writes no chunk of
/// its own and goes straight to the write queue.
fn staged_body() -> Vec<u8> {
    (0..LIMIT as usize).map(|n| (n % 251) as u8).collect()
}

/// The id of the one upload staged in `backend`.
fn staged_upload_id(backend: &MemBackend) -> u128 {
    let mut staged = backend.scan(Keyspace::Staging, b"", b"");
    let (marker, _) = staged.next().expect("an upload is staged").unwrap();
    assert!(staged.next().is_none(), "one upload is staged");
    u128::from_be_bytes(marker.as_slice().try_into().unwrap())
}

/// Cancels `finish` as a client that goes away (or a deadline) does, at the
/// point the race lives: its publish is queued and not yet answered. Commits
/// are held while it is polled once, so no answer can have come; `while_queued`
/// runs then. The gate opens before the future is dropped, so an `Upload` that
/// discards its chunks on drop does so instead of waiting at the gate.
fn cancel_after_queueing(w: &World, upload: crate::Upload, while_queued: impl FnOnce()) {
    let gate = w.backend.hold_commits();
    let mut finish = Box::pin(upload.finish(&w.actor));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(std::future::Future::poll(finish.as_mut(), &mut cx).is_pending(), "no answer before the commit");
    while_queued();
    drop(gate);
    drop(finish);
}

/// A publish cancelled after it was queued is the writer's: the caller's
/// `Upload` is dropped while the writer publishes, and must not take the
/// chunks with it. The version is whole, the archive verifies, and a
/// restart (which discards what is still staged) keeps it so.
#[tokio::test]
async fn a_publish_cancelled_after_it_was_queued_is_published_whole() {
    let w = world(VersioningState::Enabled).await;
    let body = staged_body();
    let mut upload = w.store.begin_upload(w.bucket.clone(), key("k"), NewObject::default()).unwrap();
    upload.write(&body).unwrap();
    cancel_after_queueing(&w, upload, || {});
    // Answers come in queue order: once a later write is acknowledged, the
    // cancelled publish was committed or refused.
    w.put("after", b"barrier").await;
    assert!(w.get("k", None).unwrap() == body, "the publish handed to the writer is whole");
    assert_eq!(w.backend.scan(Keyspace::Staging, b"", b"").count(), 0, "nothing is left staged");
    let report = w.store.verify_integrity(VerifyOptions::default()).unwrap();
    assert!(report.is_ok(), "{report:?}");

    let World { store, backend, clock, bucket, .. } = w;
    drop(store);
    let clock: Arc<dyn Clock> = clock;
    let reopened = Store::open(Arc::new(backend), clock, StoreOptions::default()).unwrap();
    let (_, reader) = reopened.read_object(&bucket, &key("k"), None).unwrap();
    assert!(reader.collect::<Result<Vec<_>, _>>().unwrap().concat() == body, "and stays so after a restart");
    let report = reopened.verify_integrity(VerifyOptions::default()).unwrap();
    assert!(report.is_ok(), "{report:?}");
}

/// An upload dropped before its publish (a client gone mid-stream) leaves
/// nothing behind: the writer discards its chunks and staging marker, in
/// queue order, and nothing reaches the ledger.
#[tokio::test]
async fn an_upload_dropped_before_its_publish_is_discarded_by_the_writer() {
    let w = world(VersioningState::Enabled).await;
    let mut upload = w.store.begin_upload(w.bucket.clone(), key("k"), NewObject::default()).unwrap();
    upload.write(&staged_body()).unwrap();
    let id = staged_upload_id(&w.backend);
    let own_chunks = || w.backend.scan(Keyspace::Chunks, &id.to_be_bytes(), &id.to_be_bytes()).count();
    assert_eq!(own_chunks(), 3);
    let gate = w.backend.hold_commits();
    drop(upload);
    assert_eq!(own_chunks(), 3, "the drop itself deletes nothing: the discard is the writer's, in a commit");
    drop(gate);
    let (sequence, _) = w.store.ledger_head().unwrap();
    // Answers come in queue order: once a later write is acknowledged, the
    // discard queued before it is committed.
    w.put("after", b"barrier").await;
    assert_eq!(w.backend.scan(Keyspace::Staging, b"", b"").count(), 0, "nothing is left staged");
    assert_eq!(own_chunks(), 0, "the abandoned upload's chunks are gone");
    assert_eq!(w.store.ledger_head().unwrap().0, sequence + 1, "only the barrier write is in the ledger");
    let report = w.store.verify_integrity(VerifyOptions::default()).unwrap();
    assert!(report.is_ok(), "{report:?}");
}

/// The writer publishes a staged upload only whole: with a chunk gone it
/// refuses, publishes nothing, writes no ledger entry, and discards what is
/// left of the upload itself (its caller handed it over).
#[tokio::test]
async fn a_publish_whose_staged_chunk_is_missing_is_refused_and_discarded() {
    let w = world(VersioningState::Enabled).await;
    let (sequence, _) = w.store.ledger_head().unwrap();
    let mut upload = w.store.begin_upload(w.bucket.clone(), key("k"), NewObject::default()).unwrap();
    upload.write(&vec![7; 2 * crate::CHUNK_BYTES + 10]).unwrap();
    let mut batch = Batch::new();
    batch.delete(Keyspace::Chunks, crate::keys::chunk_key(staged_upload_id(&w.backend), 1));
    w.backend.commit(&batch, Durability::Buffered).unwrap();
    match upload.finish(&w.actor).await {
        Err(StoreError::DataLoss { what }) => assert!(what.contains("chunk 1 of 3 is missing"), "{what}"),
        other => panic!("expected the publish refused, got {other:?}"),
    }
    assert!(w.versions().is_empty(), "nothing is published");
    assert_eq!(w.store.ledger_head().unwrap().0, sequence, "nothing is in the ledger");
    assert_eq!(w.backend.scan(Keyspace::Chunks, b"", b"").count(), 0, "the writer discarded the other chunks");
    assert_eq!(w.backend.scan(Keyspace::Staging, b"", b"").count(), 0, "and the staging marker");
    let report = w.store.verify_integrity(VerifyOptions::default()).unwrap();
    assert!(report.is_ok(), "{report:?}");
}

/// A publish whose group commit fails is answered only after the writer
/// discarded the chunks handed to it: the caller no longer may.
#[tokio::test]
async fn a_publish_whose_commit_fails_leaves_nothing_staged() {
    let w = world(VersioningState::Enabled).await;
    let mut upload = w.store.begin_upload(w.bucket.clone(), key("k"), NewObject::default()).unwrap();
    upload.write(&staged_body()).unwrap();
    w.backend.fail_next_commit();
    let res = upload.finish(&w.actor).await;
    assert!(matches!(res, Err(StoreError::Backend { .. })), "{res:?}");
    assert!(w.versions().is_empty());
    assert_eq!(w.backend.scan(Keyspace::Chunks, b"", b"").count(), 0);
    assert_eq!(w.backend.scan(Keyspace::Staging, b"", b"").count(), 0);
}

/// A crash after the publish was queued and before its commit leaves the
/// upload staged with no caller to discard it: the next open does, and the
/// archive verifies.
#[tokio::test]
async fn an_upload_queued_but_never_committed_is_discarded_at_the_next_open() {
    let w = world(VersioningState::Enabled).await;
    let mut upload = w.store.begin_upload(w.bucket.clone(), key("k"), NewObject::default()).unwrap();
    upload.write(&staged_body()).unwrap();
    let mut at_crash = None;
    cancel_after_queueing(&w, upload, || at_crash = Some(w.backend.contents()));
    // What the disk held at that moment, opened as a restart would.
    let disk = MemBackend::new();
    let mut batch = Batch::new();
    for (space, entries) in at_crash.unwrap() {
        for (k, v) in entries {
            batch.put(space, k, v);
        }
    }
    disk.commit(&batch, Durability::Synced).unwrap();
    assert_eq!(disk.scan(Keyspace::Staging, b"", b"").count(), 1, "the crash left the upload staged");
    let clock: Arc<dyn Clock> = w.clock.clone();
    let reopened = Store::open(Arc::new(disk.clone()), clock, StoreOptions::default()).unwrap();
    assert_eq!(disk.scan(Keyspace::Staging, b"", b"").count(), 0);
    assert_eq!(disk.scan(Keyspace::Chunks, b"", b"").count(), 0);
    assert!(matches!(reopened.read_object(&w.bucket, &key("k"), None), Err(StoreError::NoSuchKey { .. })));
    let report = reopened.verify_integrity(VerifyOptions::default()).unwrap();
    assert!(report.is_ok(), "{report:?}");
}

// ---- replication progress ----

/// A rule's cursor moves forward only, never past the ledger head, and is
/// written with the replica ids of what it covers; it survives a restart and
/// writes nothing to the ledger.
#[tokio::test]
async fn a_replication_cursor_moves_forward_with_the_replica_ids_it_covers() {
    let w = world(VersioningState::Enabled).await;
    let mut watch = w.store.ledger_watch();
    let before = *watch.borrow_and_update();
    let ack = w.put("k", b"body").await;
    let (head, _) = w.store.ledger_head().unwrap();
    assert!(watch.has_changed().unwrap(), "a follower is woken by a commit");
    assert_eq!((before, *watch.borrow()), (ack.ledger_sequence - 1, head), "and sees the durable head");
    assert_eq!(w.store.replica_cursor("dr").unwrap(), 0, "a new rule starts at the beginning");
    let copied = crate::Replicated { bucket: w.bucket.clone(), key: key("k"), id: ack.id, replica_id: "r-1".into() };
    w.store.record_replication("dr", ack.ledger_sequence, vec![copied]).await.unwrap();
    assert_eq!(w.store.replica_cursor("dr").unwrap(), ack.ledger_sequence);
    assert_eq!(w.store.replica_version("dr", &w.bucket, &key("k"), ack.id).unwrap().as_deref(), Some("r-1"));
    assert_eq!(w.store.replica_version("other", &w.bucket, &key("k"), ack.id).unwrap(), None, "per rule");
    assert_eq!(w.store.ledger_head().unwrap().0, head, "progress is not evidence: no ledger entry");

    let back = w.store.record_replication("dr", ack.ledger_sequence - 1, Vec::new()).await;
    assert!(matches!(back, Err(StoreError::InvalidArgument(_))), "{back:?}");
    let ahead = w.store.record_replication("dr", head + 1, Vec::new()).await;
    assert!(matches!(ahead, Err(StoreError::InvalidArgument(_))), "{ahead:?}");
    for bad in ["", "Upper", "a/b", "a\0b", &"x".repeat(65)] {
        assert!(w.store.replica_cursor(bad).is_err(), "rule name {bad:?} is refused");
    }
    assert_eq!(w.store.replica_cursor("dr").unwrap(), ack.ledger_sequence, "refusals changed nothing");

    let World { store, backend, clock, bucket, .. } = w;
    drop(store);
    let clock: Arc<dyn Clock> = clock;
    let reopened = Store::open(Arc::new(backend), clock, StoreOptions::default()).unwrap();
    assert_eq!(reopened.replica_cursor("dr").unwrap(), ack.ledger_sequence, "the cursor is durable");
    assert_eq!(reopened.replica_version("dr", &bucket, &key("k"), ack.id).unwrap().as_deref(), Some("r-1"));
}

/// Only the appliance itself records replication progress.
#[tokio::test]
async fn only_the_appliance_records_replication_progress() {
    let w = world(VersioningState::Enabled).await;
    let admin = Actor { access_key: "WBADMIN".to_owned(), role: Role::Admin };
    let op = crate::writer::RecordReplication { rule: "dr".into(), through: 1, copied: Vec::new() };
    let res = w.store.submit(&admin, op).await;
    assert!(matches!(res, Err(StoreError::AccessDenied(_))), "{res:?}");
    assert_eq!(w.store.replica_cursor("dr").unwrap(), 0);
}

/// A follower of the ledger reads a version's bytes by its internal id, the
/// `null` version included, even after a newer `null` replaced nothing else.
#[tokio::test]
async fn a_follower_reads_a_null_version_by_its_internal_id() {
    let w = world(VersioningState::Suspended).await;
    let ack = w.put("k", b"null body").await;
    assert_eq!(ack.version_id, "null");
    let (info, reader) = w.store.read_version_object(&w.bucket, &key("k"), ack.id).unwrap();
    assert_eq!(info.id, ack.id);
    assert_eq!(reader.collect::<Result<Vec<_>, _>>().unwrap().concat(), b"null body");
}

// ---- the capacity tier (`ReleaseBytes`) ----

/// A version with a recorded replica copy `r-1` of rule `dr`.
async fn replicated(w: &World, k: &str, body: &[u8]) -> crate::WriteAck {
    let ack = w.put(k, body).await;
    let copied = crate::Replicated { bucket: w.bucket.clone(), key: key(k), id: ack.id, replica_id: "r-1".into() };
    w.store.record_replication("dr", ack.ledger_sequence, vec![copied]).await.unwrap();
    ack
}

/// Releasing a version's bytes removes its chunks, records where they
/// live, writes a `bytes-released` entry with the version's SHA-256, and
/// leaves the version record as it was; the reader then says where the
/// bytes are and yields none.
#[tokio::test]
async fn releasing_bytes_removes_the_chunks_and_keeps_the_record() {
    let w = world(VersioningState::Enabled).await;
    let body = vec![7u8; 3 * crate::CHUNK_BYTES / 2];
    let ack = replicated(&w, "k", &body).await;
    let record_key = crate::keys::version_key(&w.bucket, "k", ack.id);
    let record_before = w.backend.get(Keyspace::Versions, &record_key).unwrap();
    assert_eq!(w.backend.scan(Keyspace::Chunks, b"", b"").count(), 1, "an inline put is one chunk");
    let sequence =
        w.store.release_bytes(&Actor::system(), "dr", w.bucket.clone(), key("k"), ack.id, "r-1".into()).await.unwrap();
    assert_eq!(w.backend.scan(Keyspace::Chunks, b"", b"").count(), 0, "the local bytes are gone");
    assert_eq!(w.backend.get(Keyspace::Versions, &record_key).unwrap(), record_before, "the record is unchanged");
    let at = w.store.bytes_at(&w.bucket, &key("k"), ack.id).unwrap().unwrap();
    assert_eq!((at.rule.as_str(), at.replica_id.as_str()), ("dr", "r-1"));
    let entries = w.store.ledger_entries(sequence).unwrap();
    let (entry, _) = &entries[0];
    assert_eq!(entry.op, crate::ledger::LedgerOp::BytesReleased);
    assert_eq!((entry.version, entry.sha256), (Some(ack.id), Some(ack.sha256)));
    assert_eq!(entry.principal, Actor::system().access_key);

    let (info, mut reader) = w.store.read_object(&w.bucket, &key("k"), None).unwrap();
    assert_eq!(info.size, body.len() as u64);
    assert_eq!(reader.released(), Some(&at));
    assert_eq!((reader.expected_sha256(), reader.expected_size()), (ack.sha256, body.len() as u64));
    assert!(matches!(reader.next(), Some(Err(StoreError::DataLoss { .. }))), "no silent empty body");
    assert!(reader.next().is_none());

    // Verification without a replica reader counts it as not checked, and
    // finds no divergence; with one, it hashes what the replica holds.
    let report = w.store.verify_integrity(VerifyOptions::default()).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!((report.released_checked, report.released_unchecked), (0, 1));
    let good = body.clone();
    let written = body.len() as u64;
    let mut replica = move |at: &crate::BytesAt, bucket: &str, k: &str, size: u64| {
        assert_eq!((at.replica_id.as_str(), bucket, k, size), ("r-1", "bucket", "k", written));
        crate::evidence::ReplicaBytes::Bytes(Box::new(std::io::Cursor::new(good.clone())))
    };
    let report =
        w.store.verify_integrity(VerifyOptions { replica: Some(&mut replica), ..VerifyOptions::default() }).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.released_checked, 1);
    let mut edited = |_: &crate::BytesAt, _: &str, _: &str, _: u64| {
        crate::evidence::ReplicaBytes::Bytes(Box::new(std::io::Cursor::new(b"edited".to_vec())))
    };
    let report =
        w.store.verify_integrity(VerifyOptions { replica: Some(&mut edited), ..VerifyOptions::default() }).unwrap();
    let first = report.first().unwrap().to_string();
    assert!(first.contains("replica copy of bucket/k") && first.contains("r-1"), "{first}");

    // A purge takes the location with the version.
    let purged = w.store.delete_object(&w.actor, w.bucket.clone(), key("k"), Some(VersionSelector::Id(ack.id))).await;
    purged.unwrap();
    assert_eq!(w.store.bytes_at(&w.bucket, &key("k"), ack.id).unwrap(), None);
    assert_eq!(w.backend.scan(Keyspace::Meta, b"bytes-at/", b"bytes-at/").count(), 0);
}

/// Only the appliance's tier pass releases bytes, and only of a version
/// whose recorded replica copy is the one verified, once.
#[tokio::test]
async fn releasing_bytes_is_refused_unless_the_system_releases_a_recorded_copy_once() {
    let w = world(VersioningState::Enabled).await;
    let ack = replicated(&w, "k", b"body").await;
    let release = |actor: Actor, rule: &'static str, id, replica: &'static str| {
        let store = w.store.clone();
        let bucket = w.bucket.clone();
        async move { store.release_bytes(&actor, rule, bucket, key("k"), id, replica.into()).await }
    };
    let admin = Actor { access_key: "WBADMIN".to_owned(), role: Role::Admin };
    let res = release(admin, "dr", ack.id, "r-1").await;
    assert!(matches!(res, Err(StoreError::AccessDenied(_))), "an admin key cannot release bytes: {res:?}");
    let res = release(w.actor.clone(), "dr", ack.id, "r-1").await;
    assert!(matches!(res, Err(StoreError::AccessDenied(_))), "{res:?}");
    let res = release(Actor::system(), "other", ack.id, "r-1").await;
    assert!(matches!(res, Err(StoreError::InvalidArgument(_))), "no copy recorded for that rule: {res:?}");
    let res = release(Actor::system(), "dr", ack.id, "r-2").await;
    assert!(matches!(res, Err(StoreError::InvalidArgument(_))), "not the recorded copy: {res:?}");
    let unreplicated = w.put("k", b"newer").await;
    let res = release(Actor::system(), "dr", unreplicated.id, "r-1").await;
    assert!(matches!(res, Err(StoreError::InvalidArgument(_))), "no copy recorded: {res:?}");
    assert_eq!(w.backend.scan(Keyspace::Chunks, b"", b"").count(), 2, "refusals changed nothing");
    let head = w.store.ledger_head().unwrap().0;

    release(Actor::system(), "dr", ack.id, "r-1").await.unwrap();
    let res = release(Actor::system(), "dr", ack.id, "r-1").await;
    assert!(matches!(res, Err(StoreError::InvalidArgument(_))), "already released: {res:?}");
    assert_eq!(w.store.ledger_head().unwrap().0, head + 1, "one entry for one release");
    let (_, reader) = w.store.read_object(&w.bucket, &key("k"), None).unwrap();
    assert!(reader.released().is_none(), "the newer version's bytes are local");
    assert_eq!(reader.collect::<Result<Vec<_>, _>>().unwrap().concat(), b"newer");

    // Where the bytes live is durable, and the ledger still verifies.
    let World { store, backend, clock, bucket, .. } = w;
    drop(store);
    let clock: Arc<dyn Clock> = clock;
    let reopened = Store::open(Arc::new(backend), clock, StoreOptions::default()).unwrap();
    let at = reopened.bytes_at(&bucket, &key("k"), ack.id).unwrap().expect("still released");
    assert_eq!(at.replica_id, "r-1");
    let (_, reader) = reopened.read_version_object(&bucket, &key("k"), ack.id).unwrap();
    assert_eq!(reader.released(), Some(&at));
    reopened.verify_ledger().unwrap();
}

/// Bytes marked as released without a ledger entry that released them, or
/// chunks removed behind the writer's back, are divergences.
#[tokio::test]
async fn a_release_the_ledger_does_not_know_is_a_divergence() {
    let w = world(VersioningState::Enabled).await;
    let ack = replicated(&w, "k", b"body").await;
    let version_key = crate::keys::version_key(&w.bucket, "k", ack.id);
    let at = crate::BytesAt { rule: "dr".into(), replica_id: "r-1".into() };
    let (k, v) = crate::meta::bytes_at_entry(&version_key, &at);
    let mut batch = Batch::new();
    batch.put(Keyspace::Meta, k, v);
    w.backend.commit(&batch, Durability::Synced).unwrap();
    let report = w.store.verify_integrity(VerifyOptions::default()).unwrap();
    let first = report.first().unwrap().to_string();
    assert!(first.contains("no ledger entry released them"), "{first}");
}

/// A new principal's secret is shown once, to its caller, and never printed
/// by `Debug` (a log line of the value would leak it).
#[tokio::test]
async fn a_new_principals_secret_is_not_in_its_debug_output() {
    let w = world(VersioningState::Enabled).await;
    let created = w.store.create_principal(&Actor::system(), "app", Role::Writer).await.unwrap();
    let printed = format!("{created:?}");
    assert!(printed.contains(&created.access_key), "{printed}");
    assert!(!printed.contains(&created.secret), "{printed}");
}
