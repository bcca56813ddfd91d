//! What the integrity check holds in memory per version of the archive,
//! counted by an allocator: the walk keeps one small entry per version (a
//! salted 128-bit tag, the writing entry's sequence and the digests it
//! attests, and the same for its lock record), never the version's names, so a check of 50 M versions fits
//! the appliance's memory. Before, names were kept three times, about 450
//! bytes a version (4.6 GB at 10 M versions).

#[path = "../../wormbox-proto/tests/support/counting_alloc.rs"]
mod counting_alloc;

use std::sync::Arc;

use wormbox_model::{BucketName, Clock, ManualClock, ObjectKey, Role, Timestamp};
use wormbox_store::backend::MemBackend;
use wormbox_store::evidence::VerifyOptions;
use wormbox_store::retention::{Retention, RetentionMode};
use wormbox_store::{Actor, NewObject, Store, StoreOptions};

const VERSIONS: usize = 20_000;

/// The most the check may hold per version under retention, at its peak (a
/// map growing holds its old and new tables at once). Names kept, it was
/// about 570 without retention.
const MOST_BYTES_PER_VERSION: usize = 384;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_integrity_check_holds_a_small_entry_per_version_not_its_names() {
    let backend = MemBackend::new();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
    let store = Store::open(Arc::new(backend), clock, StoreOptions::default()).unwrap();
    let actor = Actor { access_key: "WBOWNER00000000000".to_owned(), role: Role::Admin };
    // Long names, as real archives have: what was kept per name shows.
    let bucket = BucketName::new("customer-statements-archive").unwrap();
    store.create_bucket_with_lock(&actor, bucket.clone(), true).await.unwrap();
    // Every version under retention, as in a WORM archive: the check also
    // tracks each one's lock record.
    let until = Timestamp(1_795_737_600_000_000 + 86_400_000_000 * 365);
    let retention = Retention { mode: RetentionMode::Compliance, until };
    for batch in 0..VERSIONS / 500 {
        let mut puts = tokio::task::JoinSet::new();
        for n in 0..500 {
            let (store, actor, bucket) = (store.clone(), actor.clone(), bucket.clone());
            let key = ObjectKey::new(&format!("statements/2026/12/account-{:08}.pdf", batch * 500 + n)).unwrap();
            let object = NewObject { retention: Some(retention), ..NewObject::default() };
            puts.spawn(async move { store.put_object(&actor, bucket, key, object, vec![1; 16]).await });
        }
        while let Some(put) = puts.join_next().await {
            put.unwrap().unwrap();
        }
    }

    let (report, peak) = tokio::task::block_in_place(|| {
        counting_alloc::peak_of(|| store.verify_integrity(VerifyOptions::default()).unwrap())
    });
    assert!(report.is_ok(), "{}", report.summary());
    assert_eq!(report.versions_checked, VERSIONS as u64);
    let per_version = peak / VERSIONS;
    assert!(
        per_version <= MOST_BYTES_PER_VERSION,
        "the check held {peak} bytes at its peak for {VERSIONS} versions: {per_version} a version, more than \
         {MOST_BYTES_PER_VERSION}"
    );
}
