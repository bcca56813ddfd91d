//! A rebuild from the ledger alone gives back the archive it describes:
//! buckets, versions, markers, `null` versions, locks, holds and
//! principals, and the rebuilt archive verifies; a ledger or a copy that is
//! not what was signed stops it.

use std::sync::Arc;
use std::time::Duration;

use wormbox_model::{
    BucketName, Clock, ManualClock, ObjectKey, Role, Timestamp, UserMetadata, VersionSelector, VersioningState,
};

use super::{Rebuild, RebuildError};
use crate::backend::{Backend, MemBackend};
use crate::evidence::{Ed25519Signer, Signer, VerifyOptions};
use crate::retention::{DefaultRetention, Retention, RetentionMode, RetentionPeriod};
use crate::{Actor, ListVersionsParams, NewObject, Store, StoreOptions, VersionInfo};

const DAY: i64 = 86_400_000_000;

struct Source {
    store: Store,
    clock: Arc<ManualClock>,
    signer: Arc<Ed25519Signer>,
}

fn key(k: &str) -> ObjectKey {
    ObjectKey::new(k).unwrap()
}

/// An archive that has seen most of what the ledger can say.
async fn source() -> Source {
    let clock = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let (signer, _) = Ed25519Signer::generate().unwrap();
    let signer = Arc::new(signer);
    let dyn_signer: Arc<dyn Signer> = signer.clone();
    let options = StoreOptions { checkpoint_every: u64::MAX, ..StoreOptions::default() };
    let store = Store::open_signed(Arc::new(MemBackend::new()), dyn_clock, options, Some(dyn_signer)).unwrap();
    let admin = Actor::system();
    let writer_key = store.create_principal(&admin, "ingest app", Role::Writer).await.unwrap().access_key;
    let auditor_key = store.create_principal_with_bypass(&admin, "auditor one", Role::Auditor, false).await.unwrap();
    let gone = store.create_principal(&admin, "left", Role::Writer).await.unwrap().access_key;
    store.revoke_principal(&admin, &gone).await.unwrap();
    let writer = Actor { access_key: writer_key, role: Role::Writer };
    let auditor = Actor { access_key: auditor_key.access_key, role: Role::Auditor };
    let tick = || clock.advance(Duration::from_millis(3));

    // A locked bucket with a default retention, a hold, an extension.
    let locked = BucketName::new("records").unwrap();
    store.create_bucket_with_lock(&writer, locked.clone(), true).await.unwrap();
    let default = DefaultRetention { mode: RetentionMode::Governance, period: RetentionPeriod::Days(30) };
    store.configure_object_lock(&writer, locked.clone(), Some(default)).await.unwrap();
    for (k, body) in [("a/1", &b"first"[..]), ("a/1", b"second"), ("b/2", b""), ("c/3", &[7u8; 3 << 20][..])] {
        tick();
        let mut metadata = std::collections::BTreeMap::new();
        metadata.insert("department".to_owned(), format!("dept {k}"));
        let object = NewObject {
            content_type: "text/plain".to_owned(),
            user_metadata: UserMetadata::new(metadata).unwrap(),
            ..NewObject::default()
        };
        store.put_object(&writer, locked.clone(), key(k), object, body.to_vec()).await.unwrap();
    }
    tick();
    let until = Timestamp(clock.now().0 + 400 * DAY);
    let object = NewObject {
        retention: Some(Retention { mode: RetentionMode::Compliance, until }),
        legal_hold: Some("case; with a semicolon".to_owned()),
        etag: Some("0e8c7d3b0d4a1b6c5e2f9a8b7c6d5e4f-2".to_owned()),
        ..NewObject::default()
    };
    store.put_object(&writer, locked.clone(), key("held"), object, b"held".to_vec()).await.unwrap();
    tick();
    let held = store.head_object(&locked, &key("held"), None).unwrap().id;
    let extended = Some(Retention { mode: RetentionMode::Compliance, until: Timestamp(until.0 + DAY) });
    store
        .set_retention(&writer, locked.clone(), key("held"), VersionSelector::Id(held), extended, false, None)
        .await
        .unwrap();
    let a1 = VersionSelector::Id(store.head_object(&locked, &key("a/1"), None).unwrap().id);
    for case in ["case-2", "case-3"] {
        tick();
        store.set_legal_hold(&auditor, locked.clone(), key("a/1"), a1, case.into(), true, String::new()).await.unwrap();
    }
    tick();
    store
        .set_legal_hold(&auditor, locked.clone(), key("a/1"), a1, "case-2".into(), false, String::new())
        .await
        .unwrap();
    tick();
    store.delete_object(&writer, locked.clone(), key("b/2"), None).await.unwrap();

    // An unversioned bucket whose `null` version is replaced, then a
    // suspended one with a null marker, and a bucket created and deleted.
    let plain = BucketName::new("scratch").unwrap();
    store.create_bucket(&writer, plain.clone()).await.unwrap();
    for body in [&b"one"[..], b"two"] {
        tick();
        store.put_object(&writer, plain.clone(), key("n"), NewObject::default(), body.to_vec()).await.unwrap();
    }
    let suspended = BucketName::new("suspended").unwrap();
    store.create_bucket(&writer, suspended.clone()).await.unwrap();
    store.set_versioning(&writer, suspended.clone(), VersioningState::Enabled).await.unwrap();
    tick();
    store.put_object(&writer, suspended.clone(), key("k"), NewObject::default(), b"kept".to_vec()).await.unwrap();
    let purged =
        store.put_object(&writer, suspended.clone(), key("p"), NewObject::default(), b"p".to_vec()).await.unwrap();
    store.set_versioning(&writer, suspended.clone(), VersioningState::Suspended).await.unwrap();
    tick();
    store.delete_object(&writer, suspended.clone(), key("k"), None).await.unwrap();
    let selector = VersionSelector::parse(&purged.version_id).unwrap();
    store.delete_object(&writer, suspended.clone(), key("p"), Some(selector)).await.unwrap();
    let temporary = BucketName::new("temporary").unwrap();
    store.create_bucket(&writer, temporary.clone()).await.unwrap();
    store.delete_bucket(&writer, temporary).await.unwrap();
    store.checkpoint().await.unwrap();
    Source { store, clock, signer }
}

fn every_version(store: &Store) -> Vec<VersionInfo> {
    let mut out = Vec::new();
    for bucket in store.buckets().unwrap() {
        let name = bucket.name.clone();
        let page = store.list_versions(&name, &ListVersionsParams::default()).unwrap();
        for v in page.entries {
            match store.read_version(&name, &key(&v.key), v.id) {
                Ok(info) => out.push(info),
                Err(_) => out.push(v),
            }
        }
    }
    out
}

/// Feeds the source's ledger and checkpoint to a rebuild, and each wanted
/// version's bytes from the source.
fn rebuild_from(source: &Source, target: Arc<dyn Backend>) -> Result<super::Rebuilt, RebuildError> {
    let mut rebuild = Rebuild::new(target, source.signer.public_key().to_vec())?;
    for (entry, hash) in source.store.ledger_entries(1).unwrap() {
        rebuild.entry(&entry, &hash)?;
    }
    let checkpoint = source.store.checkpoint_at(rebuild.sequence()).unwrap().unwrap();
    rebuild.checkpoint(checkpoint)?;
    for wanted in rebuild.wanted() {
        let bucket = BucketName::new(&wanted.bucket).unwrap();
        let (info, reader) = source.store.read_version_object(&bucket, &key(&wanted.key), wanted.id).unwrap();
        let mut bytes = rebuild.bytes(&wanted)?;
        for chunk in reader {
            bytes.write(&chunk.unwrap())?;
        }
        bytes.finish(info.content_type, info.user_metadata, info.etag, "source", &format!("copy-{}", wanted.id))?;
    }
    rebuild.finish(source.clock.now(), "a test", &*source.signer)
}

#[tokio::test]
async fn a_rebuilt_archive_holds_what_the_ledger_says_and_verifies() {
    let source = source().await;
    let target = MemBackend::new();
    let rebuilt = rebuild_from(&source, Arc::new(target.clone())).unwrap();
    assert_eq!(rebuilt.buckets, 3);
    assert_eq!(rebuilt.principals.len(), 2, "the revoked principal gets no secret: {:?}", rebuilt.principals);

    let clock: Arc<dyn Clock> = source.clock.clone();
    let signer: Arc<dyn Signer> = source.signer.clone();
    let restored = Store::open_signed(Arc::new(target), clock, StoreOptions::default(), Some(signer)).unwrap();
    let report = restored
        .verify_integrity(VerifyOptions {
            public_key: Some(source.signer.public_key().to_vec()),
            ..VerifyOptions::default()
        })
        .unwrap();
    assert!(report.is_ok(), "{}", report.summary());

    let (before, after) = (every_version(&source.store), every_version(&restored));
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(
            (&b.key, &b.version_id, b.is_latest, b.is_delete_marker),
            (&a.key, &a.version_id, a.is_latest, a.is_delete_marker)
        );
        assert_eq!(
            (b.size, b.sha256, &b.content_type, &b.user_metadata, &b.etag),
            (a.size, a.sha256, &a.content_type, &a.user_metadata, &a.etag)
        );
        assert_eq!(b.retention, a.retention, "{}: retention is replayed exactly", b.key);
        let cases = |v: &VersionInfo| v.legal_holds.iter().map(|h| h.case_id.clone()).collect::<Vec<_>>();
        assert_eq!(cases(b), cases(a), "{}", b.key);
    }
    let held = after.iter().find(|v| v.key == "held").unwrap();
    assert_eq!(held.legal_holds[0].case_id, "case; with a semicolon");
    assert_eq!(held.etag.as_deref(), Some("0e8c7d3b0d4a1b6c5e2f9a8b7c6d5e4f-2"), "the S3 ETag comes back");
    let bucket = |s: &Store, n: &str| s.bucket(&BucketName::new(n).unwrap()).unwrap();
    for name in ["records", "scratch", "suspended"] {
        assert_eq!(bucket(&source.store, name), bucket(&restored, name));
    }
    assert!(restored.bucket(&BucketName::new("temporary").unwrap()).is_err());

    // The restored principals sign in with their new secrets.
    for p in &rebuilt.principals {
        assert!(restored.authenticate(&p.access_key, &p.secret).unwrap().is_some(), "{}", p.name);
    }
    // New versions get ids beyond every id the ledger names.
    let writer = rebuilt.principals.iter().find(|p| p.role == Role::Writer).unwrap();
    let actor = Actor { access_key: writer.access_key.clone(), role: Role::Writer };
    let scratch = BucketName::new("scratch").unwrap();
    let ack =
        restored.put_object(&actor, scratch.clone(), key("n"), NewObject::default(), b"three".to_vec()).await.unwrap();
    assert!(ack.ledger_sequence > rebuilt.ledger_sequence);
    let (_, reader) = restored.read_object(&scratch, &key("n"), None).unwrap();
    assert_eq!(reader.collect::<Result<Vec<_>, _>>().unwrap().concat(), b"three");
}

#[tokio::test]
async fn an_altered_entry_or_copy_stops_the_rebuild() {
    let source = source().await;
    let entries = source.store.ledger_entries(1).unwrap();

    // An entry whose text was changed no longer hashes to its chain hash.
    let mut rebuild = Rebuild::new(Arc::new(MemBackend::new()), source.signer.public_key().to_vec()).unwrap();
    let (mut first, hash) = entries[0].clone();
    first.detail.push('!');
    assert!(matches!(rebuild.entry(&first, &hash), Err(RebuildError::Chain { sequence: 1, .. })));

    // A gap.
    let mut rebuild = Rebuild::new(Arc::new(MemBackend::new()), source.signer.public_key().to_vec()).unwrap();
    assert!(matches!(rebuild.entry(&entries[1].0, &entries[1].1), Err(RebuildError::Chain { .. })));

    // A copy with other bytes.
    let mut rebuild = Rebuild::new(Arc::new(MemBackend::new()), source.signer.public_key().to_vec()).unwrap();
    for (entry, hash) in &entries {
        rebuild.entry(entry, hash).unwrap();
    }
    let wanted = rebuild.wanted();
    let first = wanted.iter().find(|w| w.size > 0).unwrap().clone();
    let mut bytes = rebuild.bytes(&first).unwrap();
    bytes.write(&vec![b'x'; first.size as usize]).unwrap();
    let err = bytes.finish(String::new(), UserMetadata::default(), None, "nowhere", "1").unwrap_err();
    assert!(err.to_string().contains("SHA-256"), "{err}");

    // A checkpoint of another key, and finishing without every version's bytes.
    let (other, _) = Ed25519Signer::generate().unwrap();
    let mut forged = source.store.checkpoint_at(rebuild.sequence()).unwrap().unwrap();
    forged.signature = other.sign(&forged.signed_message());
    assert!(matches!(rebuild.checkpoint(forged), Err(RebuildError::Checkpoint { .. })));
    rebuild.checkpoint(source.store.checkpoint_at(rebuild.sequence()).unwrap().unwrap()).unwrap();
    let err = rebuild.finish(source.clock.now(), "a test", &*source.signer).unwrap_err();
    assert!(matches!(err, RebuildError::Copy { .. }), "{err}");
}

#[tokio::test]
async fn a_rebuild_refuses_a_target_that_holds_anything() {
    let source = source().await;
    let used = MemBackend::new();
    let clock: Arc<dyn Clock> = source.clock.clone();
    let store = Store::open(Arc::new(used.clone()), clock, StoreOptions::default()).unwrap();
    store.create_bucket(&Actor::system(), BucketName::new("there").unwrap()).await.unwrap();
    drop(store);
    assert!(Rebuild::new(Arc::new(used), source.signer.public_key().to_vec()).is_err());
}
