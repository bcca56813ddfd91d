//! The replicator's own rules, against an in-memory replica that keeps S3
//! Object Lock's few rules (no shortening of COMPLIANCE retention, no delete
//! of a locked or held version) and can lose answers on demand: what a real
//! engine cannot be made to do at a chosen point. The real engines (Ceph
//! RGW, SeaweedFS) are driven end to end by the e2e suite.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use wormbox_model::{BucketName, Clock, ManualClock, ObjectKey, Role, Timestamp, VersionSelector};
use wormbox_replica::layout::{self, META_SEQUENCE, META_VERSION};
use wormbox_replica::target::Call;
use wormbox_replica::{
    Body, BucketState, DivergenceKind, Lock, PutSpec, ReplicaHead, Replicator, Rule, Target, TargetError,
};
use wormbox_store::backend::MemBackend;
use wormbox_store::evidence::{Ed25519Signer, Signer};
use wormbox_store::retention::{Retention, RetentionMode};
use wormbox_store::{Actor, NewObject, Store, StoreOptions};

#[derive(Clone, Debug)]
struct Held {
    head: ReplicaHead,
    bytes: Vec<u8>,
}

/// An S3 Object Lock bucket in memory. `lose_answers` makes the next N
/// writes happen and then answer `Unavailable`, as a timeout does;
/// `lose_answer_of` does so once for a put of a given key. Puts take
/// `put_delay`, and the first put of a key in `slow_once` that much longer;
/// `max_in_flight` is the most puts it saw at once.
#[derive(Default)]
struct MemTarget {
    objects: Mutex<BTreeMap<String, Vec<Held>>>,
    next_id: AtomicU32,
    lose_answers: AtomicUsize,
    down: std::sync::atomic::AtomicBool,
    puts: AtomicUsize,
    put_delay: Mutex<Duration>,
    slow_once: Mutex<std::collections::HashMap<String, Duration>>,
    lose_answer_of: Mutex<std::collections::HashSet<String>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// Counts a put in flight until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl MemTarget {
    fn versions(&self, key: &str) -> Vec<Held> {
        self.objects.lock().unwrap().get(key).cloned().unwrap_or_default()
    }

    fn all(&self) -> BTreeMap<String, Vec<Held>> {
        self.objects.lock().unwrap().clone()
    }

    fn id(&self) -> String {
        format!("r{}", self.next_id.fetch_add(1, Ordering::SeqCst))
    }

    fn answer<T>(&self, value: T) -> Result<T, TargetError> {
        let lost = self.lose_answers.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if lost { Err(TargetError::Unavailable("the answer was lost".into())) } else { Ok(value) }
    }

    fn up(&self) -> Result<(), TargetError> {
        if self.down.load(Ordering::SeqCst) {
            Err(TargetError::Unavailable("connection refused".into()))
        } else {
            Ok(())
        }
    }

    fn with<T>(
        &self,
        key: &str,
        version_id: &str,
        f: impl FnOnce(&mut Held) -> Result<T, TargetError>,
    ) -> Result<T, TargetError> {
        let mut objects = self.objects.lock().unwrap();
        let held = objects
            .get_mut(key)
            .and_then(|v| v.iter_mut().find(|h| h.head.version_id == version_id))
            .ok_or(TargetError::Refused { code: "NoSuchVersion".into(), message: key.into() })?;
        f(held)
    }
}

fn refused(code: &str) -> TargetError {
    TargetError::Refused { code: code.into(), message: String::new() }
}

impl Target for MemTarget {
    fn bucket_state(&self) -> Call<'_, BucketState> {
        Box::pin(async move {
            self.up()?;
            Ok(BucketState { object_lock: true, default_retention: None, versioned: true })
        })
    }

    fn put(&self, key: &str, mut body: Body, spec: PutSpec) -> Call<'_, String> {
        let key = key.to_owned();
        Box::pin(async move {
            self.up()?;
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            let _counted = InFlight(&self.in_flight);
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            let slow = self.slow_once.lock().unwrap().remove(&key).unwrap_or_default();
            let delay = *self.put_delay.lock().unwrap() + slow;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = body.next().await {
                bytes.extend_from_slice(&chunk.map_err(|e| TargetError::Unavailable(e.to_string()))?);
            }
            let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
            assert_eq!(digest.as_ref(), spec.sha256, "the body matches its stated SHA-256");
            assert_eq!(bytes.len() as u64, spec.size);
            let version_id = self.id();
            let head = ReplicaHead {
                version_id: version_id.clone(),
                is_delete_marker: false,
                size: spec.size,
                content_type: spec.content_type,
                metadata: spec.metadata,
                lock: spec.lock,
                legal_hold: spec.legal_hold,
            };
            self.objects.lock().unwrap().entry(key.clone()).or_default().insert(0, Held { head, bytes });
            self.puts.fetch_add(1, Ordering::SeqCst);
            if self.lose_answer_of.lock().unwrap().remove(&key) {
                return Err(TargetError::Unavailable("the answer was lost".into()));
            }
            self.answer(version_id)
        })
    }

    fn versions_of(&self, key: &str) -> Call<'_, Vec<ReplicaHead>> {
        let key = key.to_owned();
        Box::pin(async move {
            self.up()?;
            Ok(self.versions(&key).into_iter().map(|h| h.head).collect())
        })
    }

    fn keys(&self, prefix: &str) -> Call<'_, Vec<String>> {
        let keys: Vec<String> =
            self.objects.lock().unwrap().keys().filter(|k| k.starts_with(prefix)).cloned().collect();
        Box::pin(async move {
            self.up()?;
            Ok(keys)
        })
    }

    fn head(&self, key: &str, version_id: &str) -> Call<'_, Option<ReplicaHead>> {
        let found = self.versions(key).into_iter().find(|h| h.head.version_id == version_id).map(|h| h.head);
        Box::pin(async move {
            self.up()?;
            Ok(found)
        })
    }

    fn set_retention(&self, key: &str, version_id: &str, lock: Lock) -> Call<'_, ()> {
        let res = self.up().and_then(|()| {
            self.with(key, version_id, |held| {
                if let Some(old) = held.head.lock
                    && old.mode == RetentionMode::Compliance
                    && (lock.until < old.until || lock.mode != RetentionMode::Compliance)
                {
                    return Err(refused("AccessDenied"));
                }
                held.head.lock = Some(lock);
                Ok(())
            })
        });
        Box::pin(async move { res })
    }

    fn set_legal_hold(&self, key: &str, version_id: &str, on: bool) -> Call<'_, ()> {
        let res = self.up().and_then(|()| {
            self.with(key, version_id, |held| {
                held.head.legal_hold = on;
                Ok(())
            })
        });
        Box::pin(async move { res })
    }

    fn delete_marker(&self, key: &str) -> Call<'_, String> {
        let key = key.to_owned();
        Box::pin(async move {
            self.up()?;
            let version_id = self.id();
            let head = ReplicaHead {
                version_id: version_id.clone(),
                is_delete_marker: true,
                size: 0,
                content_type: String::new(),
                metadata: Vec::new(),
                lock: None,
                legal_hold: false,
            };
            self.objects.lock().unwrap().entry(key).or_default().insert(0, Held { head, bytes: Vec::new() });
            self.answer(version_id)
        })
    }

    fn get(&self, key: &str, version_id: &str) -> Call<'_, Option<Body>> {
        let found =
            self.versions(key).into_iter().find(|h| h.head.version_id == version_id && !h.head.is_delete_marker);
        Box::pin(async move {
            self.up()?;
            // In small chunks, as a real replica streams them.
            Ok(found.map(|held| {
                let chunks: Vec<_> = held.bytes.chunks(3).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
                Box::pin(futures::stream::iter(chunks)) as Body
            }))
        })
    }

    fn delete_version(&self, key: &str, version_id: &str) -> Call<'_, ()> {
        let res = self.up().and_then(|()| {
            let mut objects = self.objects.lock().unwrap();
            let versions = objects.get_mut(key).ok_or(refused("NoSuchKey"))?;
            let at = versions.iter().position(|h| h.head.version_id == version_id).ok_or(refused("NoSuchVersion"))?;
            let head = &versions[at].head;
            if head.legal_hold || head.lock.is_some() {
                return Err(refused("AccessDenied"));
            }
            versions.remove(at);
            Ok(())
        });
        Box::pin(async move { res })
    }
}

/// Lets a test keep a handle on the target it hands the replicator.
struct Shared(Arc<MemTarget>);

impl Target for Shared {
    fn bucket_state(&self) -> Call<'_, BucketState> {
        self.0.bucket_state()
    }
    fn put(&self, key: &str, body: Body, spec: PutSpec) -> Call<'_, String> {
        self.0.put(key, body, spec)
    }
    fn versions_of(&self, key: &str) -> Call<'_, Vec<ReplicaHead>> {
        self.0.versions_of(key)
    }
    fn keys(&self, prefix: &str) -> Call<'_, Vec<String>> {
        self.0.keys(prefix)
    }
    fn head(&self, key: &str, version_id: &str) -> Call<'_, Option<ReplicaHead>> {
        self.0.head(key, version_id)
    }
    fn set_retention(&self, key: &str, version_id: &str, lock: Lock) -> Call<'_, ()> {
        self.0.set_retention(key, version_id, lock)
    }
    fn set_legal_hold(&self, key: &str, version_id: &str, on: bool) -> Call<'_, ()> {
        self.0.set_legal_hold(key, version_id, on)
    }
    fn delete_marker(&self, key: &str) -> Call<'_, String> {
        self.0.delete_marker(key)
    }
    fn delete_version(&self, key: &str, version_id: &str) -> Call<'_, ()> {
        self.0.delete_version(key, version_id)
    }
    fn get(&self, key: &str, version_id: &str) -> Call<'_, Option<Body>> {
        self.0.get(key, version_id)
    }
}

const DAY: Duration = Duration::from_secs(86_400);

struct World {
    store: Store,
    clock: Arc<ManualClock>,
    signer: Arc<Ed25519Signer>,
    public_key: Vec<u8>,
    writer: Actor,
    auditor: Actor,
    bucket: BucketName,
}

async fn world() -> World {
    let clock = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
    let (signer, _) = Ed25519Signer::generate().unwrap();
    let signer = Arc::new(signer);
    let public_key = signer.public_key().to_vec();
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let dyn_signer: Arc<dyn Signer> = signer.clone();
    let store =
        Store::open_signed(Arc::new(MemBackend::new()), dyn_clock, StoreOptions::default(), Some(dyn_signer)).unwrap();
    let writer = Actor { access_key: "WBWRITER".into(), role: Role::Writer };
    let auditor = Actor { access_key: "WBAUDITOR".into(), role: Role::Auditor };
    let bucket = BucketName::new("records").unwrap();
    store.create_bucket_with_lock(&writer, bucket.clone(), true).await.unwrap();
    World { store, clock, signer, public_key, writer, auditor, bucket }
}

impl World {
    async fn put(&self, key: &str, body: &[u8], days: Option<u64>) -> wormbox_store::WriteAck {
        self.clock.advance(Duration::from_micros(1));
        let retention = days.map(|d| Retention {
            mode: RetentionMode::Compliance,
            until: Timestamp(self.clock.now().0 + i64::try_from((DAY * d as u32).as_micros()).unwrap()),
        });
        let object = NewObject { retention, ..NewObject::default() };
        let key = ObjectKey::new(key).unwrap();
        self.store.put_object(&self.writer, self.bucket.clone(), key, object, body.to_vec()).await.unwrap()
    }

    fn rule(&self, name: &str) -> Rule {
        Rule {
            name: name.into(),
            bucket: self.bucket.clone(),
            prefix: String::new(),
            mode: wormbox_replica::Mode::Async,
            minimum_retention: None,
            replicate_purges: false,
            evidence_retention: DAY * 3650,
            concurrency: wormbox_replica::DEFAULT_CONCURRENCY,
        }
    }

    fn replicator(&self, name: &str, target: &Arc<MemTarget>) -> Replicator<Shared> {
        Replicator::new(self.store.clone(), self.rule(name), Shared(Arc::clone(target)), self.public_key.clone())
            .unwrap()
    }
}

fn meta<'a>(head: &'a ReplicaHead, name: &str) -> Option<&'a str> {
    head.metadata.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// A replica made by a replicator, for `verify`: two versions of `a.pdf`
/// (the first locked, the second held) under a marker, a larger `b.bin`,
/// and two checkpoints with their ledger ranges.
/// The S3 ETag `verified_world`'s `b.bin` was written with.
const B_ETAG: &str = "0e8c7d3b0d4a1b6c5e2f9a8b7c6d5e4f-2";

async fn verified_world() -> (World, Arc<MemTarget>) {
    let w = world().await;
    let target = Arc::new(MemTarget::default());
    w.put("a.pdf", b"first", Some(30)).await;
    let b = w.put("a.pdf", b"second", None).await;
    let key = ObjectKey::new("a.pdf").unwrap();
    w.store
        .set_legal_hold(
            &w.auditor,
            w.bucket.clone(),
            key.clone(),
            VersionSelector::Id(b.id),
            "case-1".into(),
            true,
            String::new(),
        )
        .await
        .unwrap();
    w.store.checkpoint().await.unwrap();
    w.store.delete_object(&w.writer, w.bucket.clone(), key, None).await.unwrap();
    // Written by the S3 front door: with its ETag.
    w.clock.advance(Duration::from_micros(1));
    let until = Timestamp(w.clock.now().0 + i64::try_from(DAY.as_micros()).unwrap());
    let object = NewObject {
        retention: Some(Retention { mode: RetentionMode::Compliance, until }),
        etag: Some(B_ETAG.to_owned()),
        ..NewObject::default()
    };
    let b_bin = ObjectKey::new("b.bin").unwrap();
    w.store.put_object(&w.writer, w.bucket.clone(), b_bin, object, vec![7u8; 10_000]).await.unwrap();
    w.store.checkpoint().await.unwrap();
    w.replicator("dr", &target).catch_up().await.unwrap();
    (w, target)
}

async fn verify_replica(w: &World, target: &Arc<MemTarget>) -> wormbox_replica::VerifyReport {
    wormbox_replica::verify::verify(&w.store, &w.rule("dr"), &Shared(Arc::clone(target)), &w.public_key).await.unwrap()
}

/// Changes the replica behind the replicator's back (as the cluster's own
/// admin tools can): `edit` gets the versions of `key`, newest first.
fn behind_its_back(target: &MemTarget, key: &str, edit: impl FnOnce(&mut Vec<Held>)) {
    edit(target.objects.lock().unwrap().get_mut(key).unwrap());
}

fn divergence(report: &wormbox_replica::VerifyReport) -> &wormbox_replica::Divergence {
    report.divergence.as_ref().unwrap_or_else(|| panic!("a divergence is named: {report:?}"))
}

/// A replica the replicator made verifies: every version re-hashed, every
/// marker, checkpoint and ledger range checked.
#[tokio::test]
async fn a_faithful_replica_verifies() {
    let (w, target) = verified_world().await;
    let report = verify_replica(&w, &target).await;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.cursor, w.store.ledger_head().unwrap().0);
    assert_eq!((report.versions_checked, report.markers_checked), (3, 1), "{report:?}");
    assert_eq!((report.checkpoints_checked, report.ledger_ranges_checked), (2, 2), "{report:?}");
    assert!(report.bytes_read > 10_000 + 11, "the bytes were read back: {report:?}");
}

/// A version removed from the replica is named, by key and version.
#[tokio::test]
async fn a_missing_version_is_named() {
    let (w, target) = verified_world().await;
    behind_its_back(&target, "b.bin", Vec::clear);
    let report = verify_replica(&w, &target).await;
    let d = divergence(&report);
    let head = w.store.head_object(&w.bucket, &ObjectKey::new("b.bin").unwrap(), None).unwrap();
    assert_eq!(
        (d.kind, d.key.as_str(), d.version_id.as_str()),
        (DivergenceKind::MissingVersion, "b.bin", head.version_id.as_str())
    );
}

/// A copy whose bytes were changed (same size) is caught by re-hashing.
#[tokio::test]
async fn an_edited_replica_object_is_named() {
    let (w, target) = verified_world().await;
    behind_its_back(&target, "b.bin", |v| v[0].bytes[5_000] = 8);
    let report = verify_replica(&w, &target).await;
    let d = divergence(&report);
    assert_eq!((d.kind, d.key.as_str()), (DivergenceKind::Content, "b.bin"), "{d}");
    assert!(d.what.contains("SHA-256"), "{d}");
}

/// A copy whose lock is shorter than the source's, or weaker (GOVERNANCE
/// for COMPLIANCE), is named.
#[tokio::test]
async fn a_shorter_or_weaker_retention_is_named() {
    let (w, target) = verified_world().await;
    let original = target.versions("a.pdf")[2].head.lock.unwrap();
    behind_its_back(&target, "a.pdf", |v| {
        v[2].head.lock = Some(Lock { until: Timestamp(original.until.0 - 1), ..original })
    });
    let d = divergence(&verify_replica(&w, &target).await).clone();
    assert_eq!((d.kind, d.key.as_str()), (DivergenceKind::Retention, "a.pdf"), "{d}");
    behind_its_back(&target, "a.pdf", |v| v[2].head.lock = Some(Lock { mode: RetentionMode::Governance, ..original }));
    let d = divergence(&verify_replica(&w, &target).await).clone();
    assert_eq!(d.kind, DivergenceKind::Retention, "{d}");
    // Longer than the source's is at least the source's.
    behind_its_back(&target, "a.pdf", |v| {
        v[2].head.lock = Some(Lock { until: Timestamp(original.until.0 + 1), ..original })
    });
    assert!(verify_replica(&w, &target).await.is_ok());
}

/// A copy whose legal hold is off while the source's is placed is named.
#[tokio::test]
async fn a_missing_hold_is_named() {
    let (w, target) = verified_world().await;
    assert!(target.versions("a.pdf")[1].head.legal_hold);
    behind_its_back(&target, "a.pdf", |v| v[1].head.legal_hold = false);
    let d = divergence(&verify_replica(&w, &target).await).clone();
    assert_eq!((d.kind, d.key.as_str()), (DivergenceKind::LegalHold, "a.pdf"), "{d}");
}

/// A removed delete marker is named.
#[tokio::test]
async fn a_missing_marker_is_named() {
    let (w, target) = verified_world().await;
    behind_its_back(&target, "a.pdf", |v| {
        v.remove(0);
    });
    let d = divergence(&verify_replica(&w, &target).await).clone();
    assert_eq!((d.kind, d.key.as_str()), (DivergenceKind::MissingMarker, "a.pdf"), "{d}");
}

/// A checkpoint removed from the replica is named; so is one whose
/// signature does not verify.
#[tokio::test]
async fn a_missing_or_forged_checkpoint_is_named() {
    let (w, target) = verified_world().await;
    let last = w.store.ledger_head().unwrap().0;
    let checkpoints = w.store.checkpoints_between(0, last).unwrap();
    let name = layout::checkpoint_key(checkpoints[1].sequence);
    let original = target.versions(&name);
    behind_its_back(&target, &name, Vec::clear);
    let d = divergence(&verify_replica(&w, &target).await).clone();
    assert_eq!((d.kind, d.key.as_str()), (DivergenceKind::MissingCheckpoint, name.as_str()), "{d}");

    let mut forged = original.clone();
    let mut file: serde_json::Value = serde_json::from_slice(&forged[0].bytes).unwrap();
    let signature = file["signature"].as_str().unwrap().to_owned();
    let flipped = if signature.starts_with('0') { "1" } else { "0" };
    file["signature"] = serde_json::Value::String(format!("{flipped}{}", &signature[1..]));
    forged[0].bytes = serde_json::to_vec(&file).unwrap();
    behind_its_back(&target, &name, |v| *v = forged);
    let d = divergence(&verify_replica(&w, &target).await).clone();
    assert_eq!((d.kind, d.key.as_str()), (DivergenceKind::Checkpoint, name.as_str()), "{d}");
    assert!(d.what.contains("signature"), "{d}");
}

/// A ledger range with one entry altered (its stored chain hash kept) no
/// longer chains: the entry is named; a range removed is named too.
#[tokio::test]
async fn a_ledger_range_with_one_entry_altered_is_named() {
    let (w, target) = verified_world().await;
    let last = w.store.ledger_head().unwrap().0;
    let checkpoints = w.store.checkpoints_between(0, last).unwrap();
    let name = layout::ledger_key(checkpoints[0].sequence + 1, checkpoints[1].sequence);
    let original = target.versions(&name);
    let mut entries = layout::decode_range(&original[0].bytes).unwrap();
    let altered = entries[1].0.sequence;
    entries[1].0.principal = "WBSOMEONEELSE".into();
    behind_its_back(&target, &name, |v| v[0].bytes = layout::encode_range(&entries));
    let d = divergence(&verify_replica(&w, &target).await).clone();
    assert_eq!((d.kind, d.key.as_str()), (DivergenceKind::LedgerRange, name.as_str()), "{d}");
    assert!(d.what.contains(&format!("entry {altered} ")), "{d}");

    behind_its_back(&target, &name, Vec::clear);
    let d = divergence(&verify_replica(&w, &target).await).clone();
    assert_eq!((d.kind, d.key.as_str()), (DivergenceKind::MissingLedgerRange, name.as_str()), "{d}");
}

/// The throughput a status reports is what was copied in the last minute
/// of the replicator's clock.
#[tokio::test]
async fn the_status_counts_the_last_minutes_copies() {
    let w = world().await;
    let target = Arc::new(MemTarget::default());
    w.put("k1", b"12345", None).await;
    w.put("k2", b"123", None).await;
    let clock: Arc<dyn Clock> = w.clock.clone();
    let handle = w.replicator("dr", &target).with_clock(clock).spawn();
    let head = w.store.ledger_head().unwrap().0;
    for _ in 0..200 {
        if handle.status().cursor >= head {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = handle.status();
    assert_eq!(status.last_minute(), (8, 2), "{status:?}");
    w.clock.advance(Duration::from_secs(61));
    assert_eq!(handle.status().last_minute(), (0, 0), "a minute later nothing is recent");
    assert_eq!((handle.status().versions, handle.status().bytes), (2, 8), "the totals stay");
    handle.stop().await;
}

/// Every version is copied with its bytes, its lock and metadata tying it
/// to its source; a marker as a marker; lock changes as the source's
/// current lock; and the signed checkpoint with the ledger range it closes.
#[tokio::test]
async fn the_replica_holds_every_version_with_its_lock_markers_and_the_signed_ledger() {
    let w = world().await;
    let target = Arc::new(MemTarget::default());
    let a = w.put("a.pdf", b"first", Some(30)).await;
    let b = w.put("a.pdf", b"second", None).await;
    w.store.delete_object(&w.writer, w.bucket.clone(), ObjectKey::new("a.pdf").unwrap(), None).await.unwrap();
    let key = ObjectKey::new("a.pdf").unwrap();
    w.store
        .set_legal_hold(
            &w.auditor,
            w.bucket.clone(),
            key.clone(),
            VersionSelector::Id(b.id),
            "case-1".into(),
            true,
            String::new(),
        )
        .await
        .unwrap();
    let longer = Retention { mode: RetentionMode::Compliance, until: Timestamp(w.clock.now().0 + 90 * 86_400_000_000) };
    w.store
        .set_retention(&w.writer, w.bucket.clone(), key.clone(), VersionSelector::Id(a.id), Some(longer), false, None)
        .await
        .unwrap();
    let checkpoint = w.store.checkpoint().await.unwrap();

    let mut replicator = w.replicator("dr", &target);
    replicator.catch_up().await.unwrap();

    let held = target.versions("a.pdf");
    assert_eq!(held.len(), 3, "two versions and a marker: {held:?}");
    assert!(held[0].head.is_delete_marker, "the marker is the newest");
    let (second, first) = (&held[1], &held[2]);
    assert_eq!((first.bytes.as_slice(), second.bytes.as_slice()), (&b"first"[..], &b"second"[..]));
    assert_eq!(meta(&first.head, META_VERSION), Some(a.id.to_string().as_str()));
    assert_eq!(meta(&first.head, META_SEQUENCE), Some(a.ledger_sequence.to_string().as_str()));
    assert_eq!(
        first.head.lock,
        Some(Lock { mode: RetentionMode::Compliance, until: longer.until }),
        "the extension followed"
    );
    assert!(second.head.legal_hold && second.head.lock.is_none(), "the hold followed; no retention of its own");
    assert_eq!(
        w.store.replica_version("dr", &w.bucket, &key, a.id).unwrap().as_deref(),
        Some(first.head.version_id.as_str()),
        "the copy's replica id is recorded"
    );

    let range = target.versions(&layout::ledger_key(1, checkpoint.sequence));
    assert_eq!(range.len(), 1, "the ledger range the checkpoint closes is on the replica");
    let entries = layout::decode_range(&range[0].bytes).unwrap();
    assert_eq!(entries.len() as u64, checkpoint.sequence);
    assert_eq!(entries.last().unwrap().1, checkpoint.head, "and it ends at the checkpoint's head");
    let cp = target.versions(&layout::checkpoint_key(checkpoint.sequence));
    assert_eq!(cp.len(), 1, "the signed checkpoint is on the replica");
    assert_eq!(cp[0].head.lock.unwrap().mode, RetentionMode::Compliance, "under COMPLIANCE retention");
    assert_eq!(w.store.replica_cursor("dr").unwrap(), w.store.ledger_head().unwrap().0, "caught up");
    // A restarted replicator of a rule that is caught up copies nothing.
    let puts = target.puts.load(Ordering::SeqCst);
    w.replicator("dr", &target).catch_up().await.unwrap();
    assert_eq!(target.puts.load(Ordering::SeqCst), puts, "nothing is copied twice");
}

/// A write whose answer is lost (it happened; the replicator could not
/// know) is looked up before it is made again: one replica version per
/// source version. The same holds for a marker.
#[tokio::test]
async fn a_write_whose_answer_was_lost_is_found_not_repeated() {
    let w = world().await;
    let target = Arc::new(MemTarget::default());
    let mut replicator = w.replicator("dr", &target);
    w.put("k", b"one", Some(1)).await;
    replicator.catch_up().await.unwrap();
    w.put("k", b"two", Some(1)).await;
    w.store.delete_object(&w.writer, w.bucket.clone(), ObjectKey::new("k").unwrap(), None).await.unwrap();
    target.lose_answers.store(1, Ordering::SeqCst);
    assert!(replicator.catch_up().await.is_err(), "the lost answer fails the pass");
    replicator.catch_up().await.unwrap();
    let held = target.versions("k");
    assert_eq!(held.iter().filter(|h| !h.head.is_delete_marker).count(), 2, "each version once: {held:?}");
    target.lose_answers.store(0, Ordering::SeqCst);
    assert_eq!(held.iter().filter(|h| h.head.is_delete_marker).count(), 1, "the marker once");
    assert_eq!(w.store.replica_cursor("dr").unwrap(), w.store.ledger_head().unwrap().0);
}

/// A restart that lost the cursor's last moves (copies made, progress not
/// recorded) finds the copies by their metadata: here a second rule to the
/// same replica, whose cursor starts at 0, makes none of them again.
#[tokio::test]
async fn copies_made_before_a_crash_are_found_by_their_metadata() {
    let w = world().await;
    let target = Arc::new(MemTarget::default());
    for n in 0..5 {
        w.put(&format!("k{n}"), format!("body {n}").as_bytes(), Some(1)).await;
    }
    w.replicator("first", &target).catch_up().await.unwrap();
    let before = target.all();
    w.replicator("after-crash", &target).catch_up().await.unwrap();
    assert_eq!(target.all().len(), before.len());
    for (key, versions) in target.all() {
        assert_eq!(versions.len(), before[&key].len(), "`{key}` was not written again");
    }
    for n in 0..5 {
        let key = ObjectKey::new(&format!("k{n}")).unwrap();
        let head = w.store.head_object(&w.bucket, &key, None).unwrap();
        assert_eq!(
            w.store.replica_version("after-crash", &w.bucket, &key, head.id).unwrap(),
            w.store.replica_version("first", &w.bucket, &key, head.id).unwrap(),
            "the found copy is recorded"
        );
    }
}

/// A replica that is down holds nothing back locally and loses nothing:
/// writes go on, the cursor stays, and the backlog drains once it is back.
#[tokio::test]
async fn a_replica_that_is_down_loses_nothing_and_the_backlog_drains() {
    let w = world().await;
    let target = Arc::new(MemTarget::default());
    let mut replicator = w.replicator("dr", &target);
    replicator.catch_up().await.unwrap();
    let before = w.store.replica_cursor("dr").unwrap();
    target.down.store(true, Ordering::SeqCst);
    for n in 0..40 {
        w.put(&format!("k{n}"), b"x", None).await;
    }
    assert!(replicator.catch_up().await.is_err());
    assert_eq!(w.store.replica_cursor("dr").unwrap(), before, "nothing is claimed while it is down");
    target.down.store(false, Ordering::SeqCst);
    replicator.catch_up().await.unwrap();
    assert_eq!(target.all().len(), 40, "every write reached the replica once it was back");
    assert!(target.all().values().all(|v| v.len() == 1));
}

/// A purge the replica refuses (its copy is under the rule's minimum
/// retention, which the source version never had) is kept by the replica,
/// which holds at least what the source held, and replication goes on.
#[tokio::test]
async fn a_purge_the_replica_refuses_is_kept_there_and_replication_goes_on() {
    let w = world().await;
    let target = Arc::new(MemTarget::default());
    let v = w.put("k", b"x", None).await;
    let rule =
        Rule { minimum_retention: Some((RetentionMode::Compliance, DAY)), replicate_purges: true, ..w.rule("dr") };
    let mut replicator =
        Replicator::new(w.store.clone(), rule, Shared(Arc::clone(&target)), w.public_key.clone()).unwrap();
    replicator.catch_up().await.unwrap();
    let copy = target.versions("k")[0].head.clone();
    assert_eq!(copy.lock.map(|l| l.mode), Some(RetentionMode::Compliance), "the minimum retention applies");
    let key = ObjectKey::new("k").unwrap();
    w.store.delete_object(&w.writer, w.bucket.clone(), key, Some(VersionSelector::Id(v.id))).await.unwrap();
    w.put("after", b"y", None).await;
    let handle = replicator.spawn();
    let head = w.store.ledger_head().unwrap().0;
    for _ in 0..200 {
        if handle.status().cursor >= head {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = handle.status();
    handle.stop().await;
    assert_eq!(status.cursor, head, "replication went on: {status:?}");
    assert_eq!(status.kept_by_replica, 1, "the refused purge is counted");
    assert_eq!(target.versions("k").len(), 1, "the replica kept its copy");
    assert_eq!(target.versions("after").len(), 1);
}

/// A writer cannot make the replicator take one version's copy for
/// another's: user metadata named like the appliance's own
/// (`wormbox-version-id`, claiming an earlier version) travels encoded, so a
/// lookup of a write in doubt finds the true copy.
#[tokio::test]
async fn user_metadata_cannot_pose_as_a_copys_source_version() {
    let w = world().await;
    let target = Arc::new(MemTarget::default());
    let real = w.put("k", b"real", None).await;
    w.clock.advance(Duration::from_micros(1));
    let forged = [(META_VERSION.to_owned(), real.id.to_string())].into_iter().collect();
    let object = NewObject { user_metadata: wormbox_model::UserMetadata::new(forged).unwrap(), ..NewObject::default() };
    let key = ObjectKey::new("k").unwrap();
    w.store.put_object(&w.writer, w.bucket.clone(), key.clone(), object, b"forger".to_vec()).await.unwrap();
    w.replicator("first", &target).catch_up().await.unwrap();
    // A rule whose writes are in doubt (a restart) looks the copies up.
    w.replicator("after-crash", &target).catch_up().await.unwrap();
    let true_copy = w.store.replica_version("first", &w.bucket, &key, real.id).unwrap().unwrap();
    assert_eq!(
        w.store.replica_version("after-crash", &w.bucket, &key, real.id).unwrap(),
        Some(true_copy.clone()),
        "the forged claim was not taken for the copy"
    );
    let held = target.versions("k");
    let copy = held.iter().find(|h| h.head.version_id == true_copy).unwrap();
    assert_eq!(copy.bytes, b"real");
}

/// The cursor a sync rule's writers wait on (`Handle::cursor`) reaches a
/// write only once the replica holds it and the store recorded it: not while
/// the replica is down, and at once when it is back; a replicator started
/// later publishes the durable cursor it starts from.
#[tokio::test]
async fn the_published_cursor_reaches_a_write_only_once_the_replica_holds_it() {
    let w = world().await;
    let target = Arc::new(MemTarget::default());
    target.down.store(true, Ordering::SeqCst);
    let handle = w.replicator("dr", &target).spawn();
    let mut cursor = handle.cursor();
    let ack = w.put("k", b"x", None).await;
    let reached = |c: &u64| *c >= ack.ledger_sequence;
    let waited = tokio::time::timeout(Duration::from_millis(300), cursor.wait_for(reached)).await.is_err();
    assert!(waited, "a replica that is down holds nothing, so the cursor stays");
    assert!(target.versions("k").is_empty());
    target.down.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(10), cursor.wait_for(reached)).await.unwrap().unwrap();
    assert_eq!(target.versions("k").len(), 1, "the replica held the write when the cursor said so");
    assert!(w.store.replica_cursor("dr").unwrap() >= ack.ledger_sequence, "and the store had recorded it");
    handle.stop().await;
    let again = w.replicator("dr", &target).spawn();
    assert_eq!(*again.cursor().borrow(), w.store.replica_cursor("dr").unwrap());
    again.stop().await;
}

/// The replica alone rebuilds the archive: the signed ledger ranges replay
/// into an empty store, every version comes back byte for byte with its
/// content type, metadata, S3 ETag, lock and holds, and the rebuilt archive
/// verifies.
/// Entries after the newest checkpoint on the replica are not restored.
#[tokio::test]
async fn the_replica_alone_rebuilds_the_archive_through_its_newest_checkpoint() {
    use wormbox_replica::restore::{self, Source};
    use wormbox_store::evidence::VerifyOptions;
    use wormbox_store::rebuild::Rebuild;

    let (w, target) = verified_world().await;
    let etag_of = |key: &str| {
        target.versions(key).iter().map(|h| meta(&h.head, layout::META_ETAG).map(str::to_owned)).collect::<Vec<_>>()
    };
    assert_eq!(etag_of("b.bin"), [Some(B_ETAG.to_owned())], "the copy carries the ETag");
    assert!(etag_of("a.pdf").iter().all(Option::is_none), "and only a copy of a version with one");
    let through = w.store.ledger_head().unwrap().0;
    // Written after the last checkpoint: copied, but never sealed on the replica.
    w.put("late.txt", b"late", None).await;
    w.replicator("dr", &target).catch_up().await.unwrap();

    let sources = vec![Source { rule: w.rule("dr"), target: target.clone() as Arc<dyn Target> }];
    let backend = MemBackend::new();
    let mut rebuild = Rebuild::new(Arc::new(backend.clone()), w.public_key.clone()).unwrap();
    rebuild.replicated_by(vec!["dr".into()]);
    let replayed = restore::replay_ledger(&sources, &mut rebuild).await.unwrap();
    assert_eq!((replayed.through, replayed.checkpoints), (through, 2));
    let (versions, bytes) = restore::copy_versions(&sources, &mut rebuild).await.unwrap();
    assert_eq!((versions, bytes), (3, 5 + 6 + 10_000));
    let rebuilt = rebuild.finish(w.clock.now(), "restored from replica rule `dr`", &*w.signer).unwrap();
    assert_eq!(rebuilt.replayed_through, through);

    let clock: Arc<dyn Clock> = w.clock.clone();
    let restored = Store::open(Arc::new(backend), clock, StoreOptions::default()).unwrap();
    let report = restored
        .verify_integrity(VerifyOptions { public_key: Some(w.public_key.clone()), ..VerifyOptions::default() })
        .unwrap();
    assert!(report.is_ok(), "{}", report.summary());
    let params = wormbox_store::ListVersionsParams::default();
    let listed = |s: &Store| {
        s.list_versions(&w.bucket, &params)
            .unwrap()
            .entries
            .into_iter()
            .map(|v| (v.key, v.version_id, v.is_delete_marker, v.sha256))
            .collect::<Vec<_>>()
    };
    let mut before = listed(&w.store);
    before.retain(|(key, ..)| key != "late.txt");
    assert_eq!(listed(&restored), before);
    let a = ObjectKey::new("a.pdf").unwrap();
    for v in w.store.list_versions(&w.bucket, &params).unwrap().entries.iter().filter(|v| v.key != "late.txt") {
        if v.is_delete_marker {
            continue;
        }
        let key = ObjectKey::new(&v.key).unwrap();
        let (old, reader) = w.store.read_version_object(&w.bucket, &key, v.id).unwrap();
        let (new, again) = restored.read_version_object(&w.bucket, &key, v.id).unwrap();
        let read = |r: wormbox_store::ObjectReader| r.collect::<Result<Vec<_>, _>>().unwrap().concat();
        assert_eq!(read(reader), read(again));
        assert_eq!(
            (&old.content_type, &old.user_metadata, old.retention, &old.etag),
            (&new.content_type, &new.user_metadata, new.retention, &new.etag)
        );
        assert_eq!(new.etag.is_some(), v.key == "b.bin", "{key}");
        let cases =
            |i: &wormbox_store::VersionInfo| i.legal_holds.iter().map(|h| h.case_id.clone()).collect::<Vec<_>>();
        assert_eq!(cases(&old), cases(&new), "{key}");
    }
    assert!(restored.head_object(&w.bucket, &a, None).is_err(), "the marker is the latest again");

    // The restored archive's replicator goes on where the replica is: it
    // copies no version again, only the restore's own ledger range and
    // checkpoint.
    assert_eq!(restored.replica_cursor("dr").unwrap(), rebuilt.ledger_sequence);
    let puts = target.puts.load(Ordering::SeqCst);
    let mut replicator =
        Replicator::new(restored.clone(), w.rule("dr"), Shared(Arc::clone(&target)), w.public_key.clone()).unwrap();
    replicator.catch_up().await.unwrap();
    assert_eq!(target.puts.load(Ordering::SeqCst) - puts, 2);
    let report = wormbox_replica::verify::verify(&restored, &w.rule("dr"), &Shared(Arc::clone(&target)), &w.public_key)
        .await
        .unwrap();
    assert!(report.is_ok(), "the replica verifies against the restored archive: {report:?}");
}

/// The capacity tier releases the local bytes of versions older than its
/// threshold whose copy verifies, and of no other: not a young one, not one
/// whose copy was edited behind its back (named in the report), not one
/// another rule has yet to copy; markers have no bytes to release.
#[tokio::test]
async fn the_tier_releases_only_old_versions_whose_copy_verifies() {
    let (w, target) = verified_world().await;
    let after = DAY * 30;
    let rule = w.rule("dr");
    let pass = |others: Vec<Rule>| {
        let (store, rule, replica) = (w.store.clone(), rule.clone(), Shared(Arc::clone(&target)));
        async move { wormbox_replica::tier::pass(&store, &rule, &replica, after, &others).await.unwrap() }
    };
    let young = pass(vec![rule.clone()]).await;
    assert_eq!((young.examined, young.released), (4, 0), "nothing is 30 days old: {young:?}");
    w.clock.advance(DAY * 31);
    behind_its_back(&target, "b.bin", |v| v[0].bytes[5_000] = 8);
    let waiting = pass(vec![rule.clone(), w.rule("second")]).await;
    assert_eq!(waiting.released, 0, "rule `second` has not copied them yet: {waiting:?}");

    let report = pass(vec![rule.clone()]).await;
    assert_eq!((report.released, report.bytes_released), (2, 11), "both versions of a.pdf: {report:?}");
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert_eq!((report.refused[0].kind, report.refused[0].key.as_str()), (DivergenceKind::Content, "b.bin"));
    let key = |k: &str| ObjectKey::new(k).unwrap();
    let versions = w.store.list_versions(&w.bucket, &Default::default()).unwrap().entries;
    for info in versions.iter().filter(|i| !i.is_delete_marker) {
        let at = w.store.bytes_at(&w.bucket, &key(&info.key), info.id).unwrap();
        assert_eq!(at.is_some(), info.key == "a.pdf", "{}: {at:?}", info.key);
    }
    let again = pass(vec![rule.clone()]).await;
    assert_eq!(again.released, 0, "{again:?}");
}

/// Source versions with exactly one replica version each (markers aside).
fn one_copy_each(target: &MemTarget, keys: &[String]) {
    for key in keys {
        let copies = target.versions(key).iter().filter(|h| !h.head.is_delete_marker).count();
        assert_eq!(copies, 1, "`{key}` has exactly one replica version");
    }
}

async fn many_keys(w: &World, n: usize) -> (Vec<String>, Vec<wormbox_store::WriteAck>) {
    let mut keys = Vec::new();
    let mut acks = Vec::new();
    for i in 0..n {
        let key = format!("k{i:03}");
        acks.push(w.put(&key, format!("body {i}").as_bytes(), Some(1)).await);
        keys.push(key);
    }
    (keys, acks)
}

/// Copies of different keys overlap, up to the rule's concurrency and no
/// further; at concurrency 1 they go one at a time.
#[tokio::test]
async fn copies_of_many_keys_overlap_up_to_the_rules_concurrency() {
    let w = world().await;
    let (keys, _) = many_keys(&w, 40).await;
    for (concurrency, rule) in [(8, "eight"), (1, "one")] {
        let target = Arc::new(MemTarget::default());
        *target.put_delay.lock().unwrap() = Duration::from_millis(20);
        let rule = Rule { concurrency, ..w.rule(rule) };
        let mut replicator =
            Replicator::new(w.store.clone(), rule.clone(), Shared(Arc::clone(&target)), w.public_key.clone()).unwrap();
        replicator.catch_up().await.unwrap();
        assert_eq!(
            target.max_in_flight.load(Ordering::SeqCst),
            concurrency,
            "at most {concurrency} at once, and that many"
        );
        one_copy_each(&target, &keys);
        assert_eq!(w.store.replica_cursor(&rule.name).unwrap(), w.store.ledger_head().unwrap().0);
    }
    let zero = Rule { concurrency: 0, ..w.rule("zero") };
    assert!(Replicator::new(w.store.clone(), zero, MemTarget::default(), w.public_key.clone()).is_err());
    let many = Rule { concurrency: 65, ..w.rule("many") };
    assert!(Replicator::new(w.store.clone(), many, MemTarget::default(), w.public_key.clone()).is_err());
}

/// Two versions of one key reach the replica in ledger order even when the
/// first one's put is slow and other keys are copied meanwhile; a hold on
/// the first is applied after its copy.
#[tokio::test]
async fn versions_of_one_key_reach_the_replica_in_ledger_order_when_the_first_is_slow() {
    let w = world().await;
    let target = Arc::new(MemTarget::default());
    target.slow_once.lock().unwrap().insert("k".into(), Duration::from_millis(300));
    let first = w.put("k", b"one", None).await;
    w.put("k", b"two", None).await;
    let (keys, _) = many_keys(&w, 10).await;
    w.store
        .set_legal_hold(
            &w.auditor,
            w.bucket.clone(),
            ObjectKey::new("k").unwrap(),
            VersionSelector::Id(first.id),
            "case-1".into(),
            true,
            String::new(),
        )
        .await
        .unwrap();
    w.replicator("dr", &target).catch_up().await.unwrap();
    let held = target.versions("k");
    let bodies: Vec<_> = held.iter().map(|h| h.bytes.as_slice()).collect();
    assert_eq!(bodies, [&b"two"[..], &b"one"[..]], "the newest replica version is the newest source version");
    assert!(held[1].head.legal_hold && !held[0].head.legal_hold, "the hold is on the first version's copy");
    assert!(target.max_in_flight.load(Ordering::SeqCst) > 1, "other keys were copied meanwhile");
    one_copy_each(&target, &keys);
}

/// A put that fails in the middle of a concurrent batch (it happened; its
/// answer was lost) fails the pass after the others finish; the retry
/// looks its writes up: exactly one replica version per source version.
#[tokio::test]
async fn a_failure_in_a_concurrent_batch_leaves_one_copy_per_version_after_the_retry() {
    let w = world().await;
    let target = Arc::new(MemTarget::default());
    *target.put_delay.lock().unwrap() = Duration::from_millis(5);
    let (keys, acks) = many_keys(&w, 60).await;
    target.lose_answer_of.lock().unwrap().insert("k020".into());
    let mut replicator = w.replicator("dr", &target);
    assert!(replicator.catch_up().await.is_err(), "the lost answer fails the pass");
    let cursor = w.store.replica_cursor("dr").unwrap();
    assert!(cursor < acks[20].ledger_sequence, "the cursor stops before the failed copy");
    assert!(cursor >= acks[19].ledger_sequence - 8, "and the done prefix before it is recorded: {cursor}");
    replicator.catch_up().await.unwrap();
    one_copy_each(&target, &keys);
    assert_eq!(w.store.replica_cursor("dr").unwrap(), w.store.ledger_head().unwrap().0);
    for (key, ack) in keys.iter().zip(&acks) {
        let key = ObjectKey::new(key).unwrap();
        let recorded = w.store.replica_version("dr", &w.bucket, &key, ack.id).unwrap();
        assert_eq!(recorded, Some(target.versions(key.as_str())[0].head.version_id.clone()), "{key}");
    }
}

/// A pass cut off with copies in flight (a crash: nothing after the last
/// record is known) leaves, after a restart, exactly one replica version
/// per source version. The sharpest case: the copy that would complete a
/// record (the 32nd) is slow, so 31 copies before it and the 7 after it
/// are made and unrecorded when the pass is cut.
#[tokio::test]
async fn a_pass_cut_off_with_copies_in_flight_leaves_one_copy_each_after_a_restart() {
    let w = world().await;
    let target = Arc::new(MemTarget::default());
    let (keys, _) = many_keys(&w, 120).await;
    target.slow_once.lock().unwrap().insert("k031".into(), Duration::from_millis(500));
    let mut replicator = w.replicator("dr", &target);
    let cut = tokio::time::timeout(Duration::from_millis(200), replicator.catch_up()).await;
    assert!(cut.is_err(), "the pass was cut with the slow copy in flight");
    assert_eq!(w.store.replica_cursor("dr").unwrap(), 0, "nothing was recorded");
    assert_eq!(target.puts.load(Ordering::SeqCst), 31 + 7, "the copies before and after the slow one were made");
    *target.put_delay.lock().unwrap() = Duration::from_millis(3);
    for cut in [15, 40] {
        let mut replicator = w.replicator("dr", &target);
        let _ = tokio::time::timeout(Duration::from_millis(cut), replicator.catch_up()).await;
    }
    w.replicator("dr", &target).catch_up().await.unwrap();
    one_copy_each(&target, &keys);
}

/// The cursor, durable and published, never passes an entry whose copy is
/// not done: while the first version's put is slow, neither reaches it,
/// and at most the rule's concurrency of copies are made past it.
#[tokio::test]
async fn the_cursor_never_passes_an_entry_that_is_not_done() {
    let w = world().await;
    let target = Arc::new(MemTarget::default());
    target.slow_once.lock().unwrap().insert("k000".into(), Duration::from_millis(400));
    let (keys, acks) = many_keys(&w, 40).await;
    let handle = w.replicator("dr", &target).spawn();
    let published = handle.cursor();
    let head = w.store.ledger_head().unwrap().0;
    let mut saw_slow = false;
    for _ in 0..1000 {
        let durable = w.store.replica_cursor("dr").unwrap();
        let sent = *published.borrow();
        assert!(sent <= durable, "only the durable cursor is published");
        for (key, ack) in keys.iter().zip(&acks) {
            if ack.ledger_sequence <= durable {
                assert_eq!(target.versions(key).len(), 1, "`{key}` is covered by the cursor, so copied");
            }
        }
        if target.versions("k000").is_empty() {
            saw_slow = true;
            assert!(durable < acks[0].ledger_sequence, "the cursor waits for the slow copy");
            assert!(target.puts.load(Ordering::SeqCst) < 8, "no more than the concurrency is copied past it");
        }
        if durable >= head {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(saw_slow, "the slow copy was seen pending");
    assert_eq!(w.store.replica_cursor("dr").unwrap(), head);
    handle.stop().await;
    one_copy_each(&target, &keys);
}
