//! Tries to get edits past the integrity check: stored bytes, version
//! metadata, lock records, ledger entries, checkpoints and truncation, each
//! made directly in the backend as someone with disk access would.

use std::sync::Arc;
use std::time::Duration;

use wormbox_model::{BucketName, Clock, ManualClock, ObjectKey, Role, Timestamp, VersionSelector, VersioningState};

use super::*;
use crate::backend::{Batch, Durability, MemBackend};
use crate::codec::LockRecord;
use crate::ledger::EntryFormat;
use crate::retention::{Retention, RetentionMode};
use crate::{Actor, NewObject, Store, StoreOptions};

struct World {
    store: Store,
    backend: MemBackend,
    clock: Arc<ManualClock>,
    signer: Arc<Ed25519Signer>,
    actor: Actor,
    bucket: BucketName,
}

async fn world(checkpoint_every: u64) -> World {
    let backend = MemBackend::new();
    let clock = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
    let (signer, _) = Ed25519Signer::generate().unwrap();
    let signer = Arc::new(signer);
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let options = StoreOptions { checkpoint_every, ..StoreOptions::default() };
    let dyn_signer: Arc<dyn Signer> = signer.clone();
    let store = Store::open_signed(Arc::new(backend.clone()), dyn_clock, options, Some(dyn_signer)).unwrap();
    let actor = Actor { access_key: "WBOWNER00000000000".to_owned(), role: Role::Admin };
    let bucket = BucketName::new("bucket").unwrap();
    store.create_bucket_with_lock(&actor, bucket.clone(), true).await.unwrap();
    World { store, backend, clock, signer, actor, bucket }
}

impl World {
    async fn put(&self, k: &str, body: &[u8], retention: Option<Retention>) -> crate::WriteAck {
        self.clock.advance(Duration::from_secs(1));
        let object = NewObject { retention, ..NewObject::default() };
        self.store.put_object(&self.actor, self.bucket.clone(), key(k), object, body.to_vec()).await.unwrap()
    }

    fn verify(&self) -> IntegrityReport {
        let options = VerifyOptions { public_key: Some(self.signer.public_key().to_vec()), ..VerifyOptions::default() };
        self.store.verify_integrity(options).unwrap()
    }

    /// Rewrites one stored value, as an editor of the database files would.
    fn poke(&self, space: Keyspace, raw_key: &[u8], edit: impl FnOnce(&mut Vec<u8>)) {
        let mut value = self.backend.get(space, raw_key).unwrap().expect("the value to edit exists");
        edit(&mut value);
        let mut batch = Batch::new();
        batch.put(space, raw_key.to_vec(), value);
        self.backend.commit(&batch, Durability::Synced).unwrap();
    }

    fn version_key(&self, k: &str, ack: &crate::WriteAck) -> Vec<u8> {
        crate::keys::version_key(&self.bucket, k, ack.id)
    }
}

fn key(k: &str) -> ObjectKey {
    ObjectKey::new(k).unwrap()
}

fn first(report: &IntegrityReport) -> String {
    assert!(!report.is_ok(), "the edit went unnoticed: {}", report.summary());
    report.first().unwrap().to_string()
}

async fn archive() -> (World, crate::WriteAck, crate::WriteAck) {
    let w = world(4).await;
    let until = Timestamp(w.clock.now().0 + 86_400_000_000 * 365);
    let a = w.put("records/a.txt", b"first record", Some(Retention { mode: RetentionMode::Compliance, until })).await;
    let b = w.put("records/b.bin", &vec![7u8; 3000], None).await;
    w.store.delete_object(&w.actor, w.bucket.clone(), key("records/b.bin"), None).await.unwrap();
    (w, a, b)
}

#[tokio::test]
async fn an_untouched_archive_verifies_with_signed_checkpoints() {
    let (w, _, _) = archive().await;
    let checkpoint = w.store.checkpoint().await.unwrap();
    assert!(checkpoint.verify(w.signer.public_key()));
    let report = w.verify();
    assert!(report.is_ok(), "{}", report.summary());
    assert_eq!(report.versions_checked, 2);
    assert_eq!(report.markers_checked, 1);
    assert_eq!(report.bytes_checked, 12 + 3000);
    assert_eq!(report.unattested, 0);
    assert_eq!(report.ledger_entries, checkpoint.sequence);
    assert_eq!(report.head, checkpoint.head);
    // Signed every 4 entries: the fourth entry's checkpoint is the one asked for.
    assert_eq!(report.checkpoints_checked, 1, "{}", report.summary());
    // On demand again without new entries: the same checkpoint.
    assert_eq!(w.store.checkpoint().await.unwrap(), checkpoint);
}

#[tokio::test]
async fn edited_bytes_are_named_with_the_entry_that_wrote_them() {
    let (w, _, b) = archive().await;
    let raw = w.store.version_record(&w.bucket, &key("records/b.bin"), b.id).unwrap().unwrap();
    let chunk = crate::keys::chunk_key(raw.data.unwrap().upload, 0);
    w.poke(Keyspace::Chunks, &chunk, |v| {
        let last = v.len() - 1;
        v[last] ^= 1;
    });
    let report = w.verify();
    let text = first(&report);
    assert_eq!(report.divergence_count, 1, "{}", report.summary());
    assert_eq!(report.first().unwrap().sequence, Some(b.ledger_sequence));
    assert!(text.contains("bytes of bucket/records/b.bin"), "{text}");
}

#[tokio::test]
async fn edited_metadata_is_named() {
    let (w, a, _) = archive().await;
    // The SHA-256 is left alone: only the content type and creator change.
    let mut record = w.store.version_record(&w.bucket, &key("records/a.txt"), a.id).unwrap().unwrap();
    record.content_type = "text/forged".to_owned();
    w.poke(Keyspace::Versions, &w.version_key("records/a.txt", &a), |v| *v = record.encode());
    let report = w.verify();
    let text = first(&report);
    assert_eq!(report.divergence_count, 1, "{}", report.summary());
    assert_eq!(report.first().unwrap().sequence, Some(a.ledger_sequence));
    assert!(text.contains("metadata record of bucket/records/a.txt"), "{text}");
}

/// The S3 ETag is in the attested record: adding one, or changing one, on
/// disk is caught like any edit of the version's metadata.
#[tokio::test]
async fn an_edited_or_added_etag_is_named() {
    let (w, a, _) = archive().await;
    w.clock.advance(Duration::from_secs(1));
    let object = NewObject { etag: Some("0123456789abcdef0123456789abcdef".to_owned()), ..NewObject::default() };
    let tagged = w.store.put_object(&w.actor, w.bucket.clone(), key("records/c.txt"), object, b"c".to_vec()).await;
    let tagged = tagged.unwrap();
    assert!(w.verify().is_ok(), "{}", w.verify().summary());
    for (k, ack) in [("records/a.txt", &a), ("records/c.txt", &tagged)] {
        let mut record = w.store.version_record(&w.bucket, &key(k), ack.id).unwrap().unwrap();
        let original = record.encode();
        record.etag = Some("ffffffffffffffffffffffffffffffff-3".to_owned());
        w.poke(Keyspace::Versions, &w.version_key(k, ack), |v| *v = record.encode());
        let report = w.verify();
        let text = first(&report);
        assert_eq!(report.first().unwrap().sequence, Some(ack.ledger_sequence), "{text}");
        assert!(text.contains(&format!("metadata record of bucket/{k}")), "{text}");
        w.poke(Keyspace::Versions, &w.version_key(k, ack), |v| *v = original);
    }
}

#[tokio::test]
async fn a_shortened_retention_written_to_disk_is_named() {
    let (w, a, _) = archive().await;
    let mut lock = crate::versions::lock(w.store.backend(), &w.bucket, "records/a.txt", a.id).unwrap();
    lock.retention = Some(Retention { mode: RetentionMode::Governance, until: w.clock.now() });
    w.poke(Keyspace::Locks, &w.version_key("records/a.txt", &a), |v| *v = lock.encode());
    let text = first(&w.verify());
    assert!(text.contains("lock record (retention, holds) of bucket/records/a.txt"), "{text}");
}

#[tokio::test]
async fn an_edited_ledger_entry_is_named_by_sequence() {
    let (w, a, _) = archive().await;
    w.poke(Keyspace::Ledger, &ledger::ledger_key(a.ledger_sequence), |v| {
        // The principal's first byte, well inside the canonical bytes.
        let at = 1 + 8 + 8 + 1 + 4;
        v[at] ^= 0x20;
    });
    let report = w.verify();
    assert_eq!(report.first().unwrap().sequence, Some(a.ledger_sequence), "{}", report.summary());
    assert!(first(&report).contains("does not hash to its stored chain hash"));
}

#[tokio::test]
async fn a_version_deleted_outside_the_ledger_is_named() {
    let (w, a, _) = archive().await;
    let mut batch = Batch::new();
    batch.delete(Keyspace::Versions, w.version_key("records/a.txt", &a));
    batch.delete(Keyspace::Locks, w.version_key("records/a.txt", &a));
    w.backend.commit(&batch, Durability::Synced).unwrap();
    let report = w.verify();
    assert_eq!(report.first().unwrap().sequence, Some(a.ledger_sequence));
    assert!(first(&report).contains("missing from the store"), "{}", report.summary());
    // The walk keeps no names: the one it gives is read back from the ledger.
    assert!(first(&report).contains(&format!("bucket/records/a.txt {}", a.id)), "{}", report.summary());
}

#[tokio::test]
async fn a_forged_checkpoint_signature_is_detected() {
    let (w, _, _) = archive().await;
    let mut checkpoint = w.store.checkpoint().await.unwrap();
    checkpoint.signature[0] ^= 1;
    let mut batch = Batch::new();
    batch.put(Keyspace::Checkpoints, checkpoint_key(checkpoint.sequence).to_vec(), checkpoint.encode());
    w.backend.commit(&batch, Durability::Synced).unwrap();
    let text = first(&w.verify());
    assert!(text.contains("invalid signature"), "{text}");
    // A checkpoint signed by another key is no better.
    let (other, _) = Ed25519Signer::generate().unwrap();
    let good = w.store.checkpoint_at(checkpoint.sequence).unwrap().unwrap();
    assert!(!good.verify(other.public_key()));
}

#[tokio::test]
async fn a_truncated_ledger_is_detected_by_a_later_checkpoint() {
    let (w, _, _) = archive().await;
    let checkpoint = w.store.checkpoint().await.unwrap();
    let entries = w.store.ledger_entries(1).unwrap();
    // Cut the last two entries and make the head consistent with the cut.
    let keep = checkpoint.sequence - 2;
    let (_, kept_hash) = entries[keep as usize - 1].clone();
    let mut batch = Batch::new();
    for n in keep + 1..=checkpoint.sequence {
        batch.delete(Keyspace::Ledger, ledger::ledger_key(n).to_vec());
    }
    let head = codec::Writer::new().u64(keep).raw(&kept_hash.0).finish();
    batch.put(Keyspace::Meta, crate::meta::LEDGER_HEAD.to_vec(), head);
    w.backend.commit(&batch, Durability::Synced).unwrap();
    let report = w.verify();
    let all: Vec<String> = report.divergences.iter().map(ToString::to_string).collect();
    assert!(all.iter().any(|d| d.contains("truncated")), "{all:?}");
}

#[tokio::test]
async fn an_auditors_own_checkpoint_catches_a_rewritten_history() {
    let (w, _, _) = archive().await;
    let held = w.store.checkpoint().await.unwrap();
    // Someone rewrites the whole chain consistently (and drops the stored
    // checkpoints): only a checkpoint held outside the appliance catches it.
    let entries = w.store.ledger_entries(1).unwrap();
    let mut batch = Batch::new();
    let mut head = GENESIS;
    let mut tree = crate::merkle::Frontier::default();
    assert!(entries.len() < 256, "no stored tree node to rewrite as well");
    for (mut entry, _) in entries {
        entry.detail.push_str(" (rewritten)");
        head = entry.chain_hash(&head);
        tree.push(crate::merkle::leaf_hash(&entry.canonical()), |_, _, _| {});
        batch.put(Keyspace::Ledger, ledger::ledger_key(entry.sequence).to_vec(), entry.encode_stored(&head));
    }
    for c in w.store.checkpoints().unwrap() {
        batch.delete(Keyspace::Checkpoints, checkpoint_key(c.sequence).to_vec());
    }
    batch.put(
        Keyspace::Meta,
        crate::meta::LEDGER_HEAD.to_vec(),
        codec::Writer::new().u64(held.sequence).raw(&head.0).finish(),
    );
    w.backend.commit(&batch, Durability::Synced).unwrap();
    // The Merkle frontier the writer stored still names the true history...
    let report = w.verify();
    assert!(first(&report).contains("stored Merkle frontier is not the tree"), "{}", report.summary());
    // ...so the rewriter rewrites it too.
    let (key, value) = crate::meta::merkle_frontier_entry(&tree);
    let mut batch = Batch::new();
    batch.put(Keyspace::Meta, key, value);
    w.backend.commit(&batch, Durability::Synced).unwrap();
    // The record attestations still hold, so without the held checkpoint it looks fine...
    assert!(w.verify().is_ok());
    let options = VerifyOptions {
        public_key: Some(w.signer.public_key().to_vec()),
        extra_checkpoints: vec![held.clone()],
        ..VerifyOptions::default()
    };
    let report = w.store.verify_integrity(options).unwrap();
    assert_eq!(report.first().unwrap().sequence, Some(held.sequence));
    assert!(first(&report).contains("differs from the checkpoint"));
}

#[tokio::test]
async fn verifying_from_a_checkpoint_rehashes_only_what_follows() {
    let (w, _, _) = archive().await;
    let checkpoint = w.store.checkpoint().await.unwrap();
    w.put("records/c.txt", b"later", None).await;
    let options = VerifyOptions {
        public_key: Some(w.signer.public_key().to_vec()),
        from_checkpoint: Some(checkpoint.sequence),
        ..VerifyOptions::default()
    };
    let report = w.store.verify_integrity(options).unwrap();
    assert!(report.is_ok(), "{}", report.summary());
    assert_eq!(report.entries_hashed, report.ledger_entries - checkpoint.sequence);
    let missing = VerifyOptions { from_checkpoint: Some(checkpoint.sequence), ..VerifyOptions::default() };
    assert!(matches!(w.store.verify_integrity(missing), Err(StoreError::InvalidArgument(_))));
}

#[tokio::test]
async fn verification_beside_live_writes_and_purges_reports_nothing() {
    let w = world(1000).await;
    w.store.set_versioning(&w.actor, w.bucket.clone(), VersioningState::Enabled).await.unwrap();
    let store = w.store.clone();
    let (actor, bucket) = (w.actor.clone(), w.bucket.clone());
    let writes = tokio::spawn(async move {
        for n in 0..300u32 {
            let k = key(&format!("k{}", n % 7));
            let ack =
                store.put_object(&actor, bucket.clone(), k.clone(), NewObject::default(), vec![n as u8; 100]).await;
            if n % 3 == 0 {
                let version = VersionSelector::Id(ack.unwrap().id);
                store.delete_object(&actor, bucket.clone(), k, Some(version)).await.unwrap();
            }
        }
    });
    let mut checks = 0;
    while !writes.is_finished() {
        let report = w.verify();
        assert!(report.is_ok(), "{}", report.summary());
        checks += 1;
        tokio::task::yield_now().await;
    }
    writes.await.unwrap();
    assert!(w.verify().is_ok());
    assert!(checks > 0);
}

#[tokio::test]
async fn scrub_results_are_ledgered() {
    let (w, _, _) = archive().await;
    let report = w.verify();
    let n = w.store.record_integrity(&Actor::system(), &report).await.unwrap();
    let (entry, _) = w.store.ledger_entries(n).unwrap().remove(0);
    assert_eq!(entry.op, LedgerOp::IntegrityVerified);
    assert!(entry.detail.contains("no divergence"), "{}", entry.detail);
    assert!(w.verify().is_ok());
}

/// The store's backend with some stored values damaged, as a table block
/// that fails its checksum: reading one fails with `Corruption`, and a scan
/// stops at the first it meets, as RocksDB's iterator does.
#[derive(Debug)]
struct Damaged {
    inner: MemBackend,
    space: Keyspace,
    keys: Vec<Vec<u8>>,
}

fn corruption(space: Keyspace) -> BackendError {
    BackendError::Corruption { space: Some(space), source: "block checksum mismatch in 000012.sst".into() }
}

impl Backend for Damaged {
    fn engine(&self) -> &'static str {
        "damaged"
    }

    fn get(&self, space: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        if space == self.space && self.keys.iter().any(|k| k.as_slice() == key) {
            return Err(corruption(space));
        }
        self.inner.get(space, key)
    }

    fn scan(&self, space: Keyspace, start: &[u8], prefix: &[u8]) -> crate::backend::Entries<'_> {
        let entries = self.inner.scan(space, start, prefix);
        if space != self.space {
            return entries;
        }
        let mut stopped = false;
        Box::new(entries.map_while(move |item| {
            if stopped {
                return None;
            }
            match item {
                Ok((key, _)) if self.keys.contains(&key) => {
                    stopped = true;
                    Some(Err(corruption(space)))
                }
                other => Some(other),
            }
        }))
    }

    fn commit(&self, batch: &Batch, durability: Durability) -> Result<(), BackendError> {
        self.inner.commit(batch, durability)
    }
}

impl World {
    /// Verifies with the values under `keys` in `space` damaged.
    fn verify_damaged(&self, space: Keyspace, keys: Vec<Vec<u8>>) -> IntegrityReport {
        let backend = Damaged { inner: self.backend.clone(), space, keys };
        let options = VerifyOptions { public_key: Some(self.signer.public_key().to_vec()), ..VerifyOptions::default() };
        verify(&backend, options).expect("damage is a divergence, not a failed check")
    }
}

#[tokio::test]
async fn a_damaged_chunk_is_named_with_its_version_and_the_rest_is_checked() {
    let (w, _, b) = archive().await;
    let raw = w.store.version_record(&w.bucket, &key("records/b.bin"), b.id).unwrap().unwrap();
    let chunk = crate::keys::chunk_key(raw.data.unwrap().upload, 0);
    let report = w.verify_damaged(Keyspace::Chunks, vec![chunk]);
    let text = first(&report);
    assert_eq!(report.divergence_count, 1, "{}", report.summary());
    assert_eq!(report.first().unwrap().sequence, Some(b.ledger_sequence));
    assert!(text.contains("chunk 0 of bucket/records/b.bin version") && text.contains("could not be read"), "{text}");
    assert!(text.contains("000012.sst"), "the engine's account of the damage is kept: {text}");
    // Every version was visited; the other one's bytes were read whole.
    assert_eq!(report.versions_checked, 2);
    assert_eq!(report.markers_checked, 1);
    assert_eq!(report.bytes_checked, 12);
}

#[tokio::test]
async fn a_damaged_ledger_entry_is_named_and_the_chain_is_checked_on_after_it() {
    let (w, a, _) = archive().await;
    let (head, _) = w.store.ledger_head().unwrap();
    // The entry before the first write: it writes no version of its own.
    let damaged = a.ledger_sequence - 1;
    let report = w.verify_damaged(Keyspace::Ledger, vec![ledger::ledger_key(damaged).to_vec()]);
    let text = first(&report);
    assert_eq!(report.first().unwrap().sequence, Some(damaged));
    assert!(text.contains("could not be read"), "{text}");
    // Nothing else is named: not the next entry's chain, not its versions.
    assert!(report.divergences.iter().all(|d| d.sequence == Some(damaged)), "{}", report.summary());
    assert_eq!(report.ledger_entries, head - 1);
    assert_eq!(report.versions_checked, 2);
    assert_eq!(report.markers_checked, 1);
}

#[tokio::test]
async fn a_damaged_version_record_is_named_and_the_scan_goes_on_after_it() {
    let (w, a, _) = archive().await;
    let report = w.verify_damaged(Keyspace::Versions, vec![w.version_key("records/a.txt", &a)]);
    assert_eq!(report.divergence_count, 2, "{}", report.summary());
    let stretch = &report.divergences[0];
    assert_eq!(stretch.sequence, None);
    assert!(stretch.what.contains("version records from the first before bucket/records/b.bin"), "{stretch}");
    let version = &report.divergences[1];
    assert_eq!(version.sequence, Some(a.ledger_sequence));
    assert!(version.what.contains("the record of bucket/records/a.txt version"), "{version}");
    assert!(version.what.contains("could not be read"), "{version}");
    // The versions after the damaged one were checked, bytes and all.
    assert_eq!(report.versions_checked, 1);
    assert_eq!(report.markers_checked, 1);
    assert_eq!(report.bytes_checked, 3000);
}

#[test]
fn the_checkpoint_message_is_domain_separated_and_binds_every_field() {
    let (signer, pkcs8) = Ed25519Signer::generate().unwrap();
    let again = Ed25519Signer::from_pkcs8(&pkcs8).unwrap();
    assert_eq!(signer.public_key(), again.public_key());
    let head = Digest([9; 32]);
    let message = Checkpoint::message(5, &head, Timestamp(77), None);
    assert!(message.starts_with(CHECKPOINT_CONTEXT));
    let c = Checkpoint { sequence: 5, head, time: Timestamp(77), signature: signer.sign(&message), tree_root: None };
    assert!(c.verify(signer.public_key()));
    let rooted = Checkpoint::sign(&signer, 5, head, Timestamp(77), Digest([3; 32]));
    assert!(rooted.signed_message().starts_with(CHECKPOINT_CONTEXT_V2));
    assert!(rooted.verify(signer.public_key()));
    for changed in [
        Checkpoint { sequence: 6, ..c.clone() },
        Checkpoint { head: Digest([8; 32]), ..c.clone() },
        Checkpoint { time: Timestamp(78), ..c.clone() },
        // A root added to a checkpoint signed without one, or taken away,
        // or another root: none verifies.
        Checkpoint { tree_root: Some(Digest([3; 32])), ..c.clone() },
        Checkpoint { tree_root: None, ..rooted.clone() },
        Checkpoint { tree_root: Some(Digest([4; 32])), ..rooted.clone() },
        Checkpoint { sequence: 6, ..rooted.clone() },
    ] {
        assert!(!changed.verify(signer.public_key()));
    }
    assert_eq!(Checkpoint::decode(&c.encode()), Ok(c));
    assert_eq!(Checkpoint::decode(&rooted.encode()), Ok(rooted.clone()));
    let mut trailing = rooted.encode();
    trailing.push(0);
    assert!(Checkpoint::decode(&trailing).is_err());
    assert!(Ed25519Signer::from_pkcs8(b"not a key").is_err());
    assert_eq!(key_id(signer.public_key()).len(), 16);
}

/// The archive `format1-archive.txt` describes, as the build before typed
/// attestations left it, opened by this build.
fn format1_archive() -> (Store, MemBackend, Arc<ManualClock>) {
    let backend = MemBackend::new();
    let mut batch = Batch::new();
    for line in include_str!("format1-archive.txt").lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let mut fields = line.split(' ');
        let mut next = || fields.next().unwrap();
        let (name, raw_key, value) = (next(), next(), next());
        let space = Keyspace::ALL.into_iter().find(|s| s.name() == name).unwrap();
        batch.put(space, hex::decode(raw_key).unwrap(), hex::decode(value).unwrap());
    }
    backend.commit(&batch, Durability::Synced).unwrap();
    // A few seconds after it was written: no clock jump to hold back.
    let clock = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000 + 10_000_000)));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let store = Store::open(Arc::new(backend.clone()), dyn_clock, StoreOptions::default()).unwrap();
    (store, backend, clock)
}

fn format1_version(store: &Store, k: &str) -> VersionId {
    let entries = store.ledger_entries(1).unwrap();
    let written = entries.iter().find(|(e, _)| e.op == LedgerOp::VersionWritten && e.key == k).unwrap();
    written.0.version.unwrap()
}

fn lock_key(k: &str, id: VersionId) -> Vec<u8> {
    crate::keys::version_key(&BucketName::new("vault").unwrap(), k, id)
}

fn officer() -> Actor {
    Actor { access_key: "WBOFFICER0000000000".to_owned(), role: Role::Auditor }
}

#[tokio::test]
async fn a_ledger_of_format1_entries_still_verifies_and_chains_on_in_format2() {
    let (store, backend, clock) = format1_archive();
    let old = store.ledger_entries(1).unwrap();
    assert_eq!(old.len(), 7);
    assert!(old.iter().all(|(e, _)| e.format == EntryFormat::V1));
    // The case ids that fooled the old reader (entries 3, 5 and 6) are text;
    // only the writer's token at the end attests.
    let report = store.verify_integrity(VerifyOptions::default()).unwrap();
    assert!(report.is_ok(), "{}", report.summary());
    assert_eq!((report.versions_checked, report.markers_checked, report.unattested), (3, 1, 0));

    // This build appends format-2 entries to the same chain.
    let b = format1_version(&store, "b");
    let lock_b = backend.get(Keyspace::Locks, &lock_key("b", b)).unwrap().unwrap();
    let forged = format!("SEC; lock-sha256 {}", sha256(&lock_b).to_hex());
    clock.advance(Duration::from_secs(1));
    let vault = BucketName::new("vault").unwrap();
    let (_, placed) = store
        .set_legal_hold(&officer(), vault.clone(), key("b"), VersionSelector::Id(b), forged, true, String::new())
        .await
        .unwrap();
    let admin = Actor { access_key: "WBADMIN000000000000".to_owned(), role: Role::Admin };
    store.put_object(&admin, vault, key("d"), NewObject::default(), b"later".to_vec()).await.unwrap();
    let all = store.ledger_entries(1).unwrap();
    let new: Vec<&LedgerEntry> = all[7..].iter().map(|(e, _)| e).collect();
    assert!(new.iter().all(|e| e.format == EntryFormat::V2), "{new:?}");
    let hold = new.iter().find(|e| Some(e.sequence) == placed).unwrap();
    let lock_now = backend.get(Keyspace::Locks, &lock_key("b", b)).unwrap().unwrap();
    assert_eq!(hold.lock_sha256, Some(sha256(&lock_now)));
    let report = store.verify_integrity(VerifyOptions::default()).unwrap();
    assert!(report.is_ok(), "{}", report.summary());
    assert_eq!(report.entries_hashed, 9);
    store.verify_ledger().unwrap();

    // Releasing a hold offline is named, on either side of the format change.
    let mut batch = Batch::new();
    batch.put(Keyspace::Locks, lock_key("b", b), lock_b);
    backend.commit(&batch, Durability::Synced).unwrap();
    let report = store.verify_integrity(VerifyOptions::default()).unwrap();
    assert_eq!(report.first().unwrap().sequence, placed, "{}", report.summary());
    assert!(first(&report).contains("lock record (retention, holds) of vault/b"), "{}", first(&report));
}

#[tokio::test]
async fn a_format1_hold_whose_case_id_carries_the_pre_hold_digest_cannot_hide_its_removal() {
    let (store, backend, _) = format1_archive();
    // Entry 3 placed a hold on `a` with the digest of a's lock record before
    // the hold in its case id; put that record back, as an offline editor would.
    let a = format1_version(&store, "a");
    let held = LockRecord::decode(&backend.get(Keyspace::Locks, &lock_key("a", a)).unwrap().unwrap()).unwrap();
    assert_eq!(held.holds.len(), 1);
    let pre_hold = LockRecord { retention: held.retention, holds: Vec::new() }.encode();
    let case_id = &held.holds[0].case_id;
    assert!(case_id.ends_with(&sha256(&pre_hold).to_hex()), "the fixture's forged case id: {case_id}");
    let mut batch = Batch::new();
    batch.put(Keyspace::Locks, lock_key("a", a), pre_hold);
    backend.commit(&batch, Durability::Synced).unwrap();
    let report = store.verify_integrity(VerifyOptions::default()).unwrap();
    assert_eq!(report.first().unwrap().sequence, Some(3), "{}", report.summary());
    assert!(first(&report).contains("lock record (retention, holds) of vault/a"), "{}", first(&report));

    // Entry 5's case id ended in `lock-sha256 zzz...`, which once left b's lock
    // unjudged: deleting b's lock record (its only hold) is named too.
    let (store, backend, _) = format1_archive();
    let b = format1_version(&store, "b");
    let mut batch = Batch::new();
    batch.delete(Keyspace::Locks, lock_key("b", b));
    backend.commit(&batch, Durability::Synced).unwrap();
    let report = store.verify_integrity(VerifyOptions::default()).unwrap();
    assert_eq!(report.first().unwrap().sequence, Some(5), "{}", report.summary());
    assert!(first(&report).contains("lock record (retention, holds) of vault/b"), "{}", first(&report));
}

/// Rewrites the whole chain consistently after `edit`, as someone who can
/// recompute hashes would (no checkpoint is stored in these archives).
fn rewrite_ledger(store: &Store, backend: &MemBackend, mut edit: impl FnMut(&mut LedgerEntry)) {
    let mut batch = Batch::new();
    let mut head = GENESIS;
    let mut last = 0;
    for (mut entry, _) in store.ledger_entries(1).unwrap() {
        edit(&mut entry);
        head = entry.chain_hash(&head);
        last = entry.sequence;
        batch.put(Keyspace::Ledger, ledger::ledger_key(entry.sequence).to_vec(), entry.encode_stored(&head));
    }
    batch.put(Keyspace::Meta, crate::meta::LEDGER_HEAD.to_vec(), codec::Writer::new().u64(last).raw(&head.0).finish());
    backend.commit(&batch, Durability::Synced).unwrap();
}

#[tokio::test]
async fn a_malformed_or_missing_attestation_is_a_divergence_never_a_pass() {
    // Format 1: the writer's token at the end made unreadable.
    let (store, backend, _) = format1_archive();
    rewrite_ledger(&store, &backend, |e| {
        if e.sequence == 5 {
            let cut = e.detail.len() - 64;
            e.detail.replace_range(cut.., &"z".repeat(64));
        }
    });
    let report = store.verify_integrity(VerifyOptions::default()).unwrap();
    assert_eq!(report.first().unwrap().sequence, Some(5), "{}", report.summary());
    assert!(first(&report).contains("attestation is malformed"), "{}", first(&report));

    // Format 2: entries stripped of their attestations.
    let (w, a, b) = archive().await;
    rewrite_ledger(&w.store, &w.backend, |e| {
        if e.sequence == a.ledger_sequence {
            e.lock_sha256 = None;
        }
        if e.sequence == b.ledger_sequence {
            e.record_sha256 = None;
        }
    });
    let report = w.store.verify_integrity(VerifyOptions::default()).unwrap();
    let all: Vec<String> = report.divergences.iter().map(ToString::to_string).collect();
    assert!(
        all.iter().any(|d| d.contains("has a lock record (retention, holds) that no ledger entry wrote")),
        "{all:?}"
    );
    let unattested =
        format!("ledger entry {}: the entry does not attest the version record it wrote", b.ledger_sequence);
    assert!(all.contains(&unattested), "{all:?}");

    // A format-1 entry after a format-2 one: no writer does that.
    let (w, _, b) = archive().await;
    rewrite_ledger(&w.store, &w.backend, |e| {
        if e.sequence == b.ledger_sequence {
            e.format = EntryFormat::V1;
            e.record_sha256 = None;
        }
    });
    let report = w.store.verify_integrity(VerifyOptions::default()).unwrap();
    assert_eq!(report.first().unwrap().sequence, Some(b.ledger_sequence), "{}", report.summary());
    assert!(first(&report).contains("format 1 after one in format 2"), "{}", first(&report));
}

/// A checkpoint signed when no entry is new wakes the ledger's followers
/// too: the replicator copies checkpoints, and one signed while it is idle
/// would otherwise wait for the next write to reach the replica.
#[tokio::test]
async fn a_checkpoint_signed_without_new_entries_wakes_followers() {
    let w = world(u64::MAX).await;
    w.put("a", b"a record", None).await;
    let mut watch = w.store.ledger_watch();
    watch.borrow_and_update();
    let (head, _) = w.store.ledger_head().unwrap();
    let checkpoint = w.store.checkpoint().await.unwrap();
    assert_eq!(checkpoint.sequence, head, "no entry was added");
    assert!(watch.has_changed().unwrap(), "a follower is woken by the signing");
    assert_eq!(*watch.borrow_and_update(), head);
    // Asking again signs nothing new, and wakes no one.
    w.store.checkpoint().await.unwrap();
    assert!(!watch.has_changed().unwrap());
}

/// A backend that counts chunk reads, to watch the check's read-ahead.
#[derive(Debug)]
struct CountingChunks {
    inner: MemBackend,
    reads: std::sync::atomic::AtomicU64,
}

impl CountingChunks {
    fn reads(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Backend for CountingChunks {
    fn engine(&self) -> &'static str {
        "counting"
    }

    fn get(&self, space: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        if space == Keyspace::Chunks {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.get(space, key)
    }

    fn scan(&self, space: Keyspace, start: &[u8], prefix: &[u8]) -> crate::backend::Entries<'_> {
        self.inner.scan(space, start, prefix)
    }

    fn commit(&self, batch: &Batch, durability: Durability) -> Result<(), BackendError> {
        self.inner.commit(batch, durability)
    }
}

#[tokio::test]
async fn the_read_ahead_reads_the_chunks_of_versions_the_check_has_not_met_and_stops_with_it() {
    let w = world(0).await;
    let mut seventh = None;
    for n in 0..40 {
        let ack = w.put(&format!("k{n:02}"), format!("body {n}").as_bytes(), None).await;
        if n == 7 {
            seventh = Some(ack);
        }
    }
    let counting = CountingChunks { inner: w.backend.clone(), reads: Default::default() };
    // The check meets no version: the read-ahead reads all forty first
    // chunks anyway, ahead of it.
    let read = super::read_ahead::with_read_ahead(&counting, |_| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while counting.reads() < 40 {
            assert!(std::time::Instant::now() < deadline, "the read-ahead read {} chunks", counting.reads());
            std::thread::sleep(Duration::from_millis(1));
        }
        counting.reads()
    });
    assert_eq!(read, 40);
    // A check that ends at once ends the read-ahead too, its queue full or not.
    let started = std::time::Instant::now();
    super::read_ahead::with_read_ahead(&counting, |_| ());
    assert!(started.elapsed() < Duration::from_secs(10));

    // The whole check with it reads every chunk itself as well, and its
    // verdict is the same.
    let before = counting.reads();
    let report = verify(&counting, VerifyOptions::default()).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.versions_checked, 40);
    assert!(counting.reads() >= before + 40, "{} chunk reads", counting.reads() - before);
    let raw = w.store.version_record(&w.bucket, &key("k07"), seventh.unwrap().id).unwrap().unwrap();
    let chunk = crate::keys::chunk_key(raw.data.unwrap().upload, 0);
    w.poke(Keyspace::Chunks, &chunk, |value| *value.last_mut().unwrap() ^= 1);
    let report = verify(&counting, VerifyOptions::default()).unwrap();
    assert_eq!(report.divergence_count, 1, "{report:?}");
}

#[tokio::test]
async fn an_edited_ledger_head_is_named_by_what_differs() {
    let (w, _, _) = archive().await;
    let (sequence, _) = w.store.ledger_head().unwrap();
    // Its hash edited, its sequence kept (a format byte, the sequence, the
    // hash): the message gives the two hashes, never the same sequence twice.
    w.poke(Keyspace::Meta, crate::meta::LEDGER_HEAD, |v| v[9] ^= 1);
    let text = first(&w.verify());
    assert!(text.contains(&format!("is not the chain's hash at entry {sequence}")), "{text}");
    assert!(!text.contains(&format!("({sequence}) is not the end of the chain ({sequence})")), "{text}");
    // Its sequence moved back: the message gives the two sequences.
    w.poke(Keyspace::Meta, crate::meta::LEDGER_HEAD, |v| {
        v[9] ^= 1;
        v[1..9].copy_from_slice(&(sequence - 1).to_be_bytes());
    });
    let text = first(&w.verify());
    assert!(text.contains(&format!("({}) is not the end of the chain ({sequence})", sequence - 1)), "{text}");
}

/// What witnesses said is recorded by the appliance alone; the first fork
/// refusal stays whatever follows, and is a divergence of `verify` and the
/// scrub (which ask for it) but not of a restore's or a rebuild's check.
#[tokio::test]
async fn a_witness_s_fork_refusal_stays_and_only_verify_reports_it() {
    use crate::WitnessOutcome;
    let w = world(1000).await;
    w.put("a", b"one", None).await;
    let first = w.store.checkpoint().await.unwrap().sequence;
    let cosigned = WitnessOutcome::Cosigned { line: "\u{2014} w.example/1 AAAA\n".to_owned(), timestamp: 7 };
    w.store.record_witness("w.example/1", first, cosigned.clone()).await.unwrap();
    let not_this_witness = WitnessOutcome::Cosigned { line: "\u{2014} other AAAA\n".to_owned(), timestamp: 7 };
    assert!(w.store.record_witness("w.example/1", first, not_this_witness).await.is_err());
    assert!(w.store.record_witness("w 1", first, cosigned.clone()).await.is_err(), "names have no spaces");
    let refused = WitnessOutcome::Refused { status: 404, why: "unknown log".to_owned() };
    assert!(w.store.record_witness("w.example/1", first + 100, refused).await.is_err(), "no checkpoint there");

    w.put("b", b"two", None).await;
    let second = w.store.checkpoint().await.unwrap().sequence;
    let fork = WitnessOutcome::Refused { status: 422, why: "the proof does not link".to_owned() };
    w.store.record_witness("w.example/1", second, fork).await.unwrap();
    let busy = WitnessOutcome::Refused { status: 403, why: "not a log it follows".to_owned() };
    w.store.record_witness("w.example/1", second, busy).await.unwrap();
    w.put("c", b"three", None).await;
    let third = w.store.checkpoint().await.unwrap().sequence;
    let later = WitnessOutcome::Cosigned { line: "\u{2014} w.example/1 BBBB\n".to_owned(), timestamp: 8 };
    w.store.record_witness("w.example/1", third, later).await.unwrap();
    assert!(w.store.record_witness("w.example/1", first, cosigned).await.is_err(), "never older than the newest");

    let state = w.store.witnesses().unwrap();
    assert_eq!(state.len(), 1);
    assert_eq!(state[0].cosigned, Some((third, 8)));
    assert_eq!(state[0].refusal, None, "the last refusal is answered by the next cosignature");
    let kept = state[0].fork.as_ref().expect("the fork stays");
    assert_eq!((kept.sequence, kept.status), (second, 422));

    assert!(w.verify().is_ok(), "a restore's or rebuild's check does not count a witness's claim");
    let options = VerifyOptions {
        public_key: Some(w.signer.public_key().to_vec()),
        witness_forks: true,
        ..VerifyOptions::default()
    };
    let report = w.store.verify_integrity(options).unwrap();
    assert_eq!(report.divergence_count, 1, "{}", report.summary());
    assert!(report.first().unwrap().what.contains("witness w.example/1 refused"), "{:?}", report.first());
}
