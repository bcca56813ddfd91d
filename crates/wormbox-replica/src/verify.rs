//! `verify --replica`: checks a rule's replica against the archive and names
//! the first divergence.
//!
//! Invariants:
//! - It only reads, the archive and the replica alike: a verification
//!   changes nothing on either side and records nothing.
//! - It checks what the rule's durable cursor covers (ledger entries
//!   `1..=cursor`): every version of the rule's bucket and prefix written
//!   there and still held by the source is on the replica (the recorded
//!   replica version, else the one whose `wormbox-version-id` names it),
//!   with the same size and SHA-256 (recomputed from the replica's bytes,
//!   streamed: RGW keeps no checksum to trust), a lock at least the
//!   source's (same mode or COMPLIANCE over GOVERNANCE; until no earlier)
//!   and the same legal hold state; every delete marker is there; every
//!   checkpoint signed at or before the cursor is there, verifies under the
//!   appliance's key and is the appliance's own; and the ledger ranges
//!   between them, contiguous from entry 1, decode and chain (from
//!   `GENESIS`) to each checkpoint's head.
//! - Memory is bounded whatever the sizes: bytes are hashed as they stream
//!   and a ledger range is decoded entry by entry as it arrives; the store's
//!   scans run on blocking threads.

use bytes::{Buf, BytesMut};
use futures::StreamExt;
use wormbox_model::{BucketName, Digest, ObjectKey, VersionId};
use wormbox_reports::CheckpointFile;
use wormbox_store::evidence::Checkpoint;
use wormbox_store::ledger::{ChainBreak, ChainWalker, LedgerEntry, LedgerOp};
use wormbox_store::retention::RetentionMode;
use wormbox_store::{Store, StoreError, VersionInfo};

use crate::layout::{self, META_VERSION};
use crate::replicator::{ReplicaError, replica_lock};
use crate::rule::Rule;
use crate::target::{Body, Lock, ReplicaHead, Target, TargetError};

/// How many ledger entries are read at a time.
const READ_AHEAD: u64 = 256;
/// The largest checkpoint file read (they are a few hundred bytes).
const MAX_CHECKPOINT_BYTES: usize = 64 << 10;

/// What kind of divergence verification found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DivergenceKind {
    /// A version the cursor covers is not on the replica.
    MissingVersion,
    /// A replica version's size, bytes or source differ from the source version's.
    Content,
    /// A replica version's lock is weaker or shorter than the source's.
    Retention,
    /// A replica version's legal hold differs from the source's.
    LegalHold,
    /// A delete marker the cursor covers is not on the replica.
    MissingMarker,
    /// A checkpoint the cursor covers is not on the replica.
    MissingCheckpoint,
    /// A checkpoint on the replica is unreadable, not signed by the
    /// appliance's key, or not the appliance's own.
    Checkpoint,
    /// A ledger range is not on the replica.
    MissingLedgerRange,
    /// A ledger range is unreadable, has a gap, or does not chain to its checkpoint.
    LedgerRange,
}

impl DivergenceKind {
    /// Its stable name, for reports and the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            DivergenceKind::MissingVersion => "missing-version",
            DivergenceKind::Content => "content",
            DivergenceKind::Retention => "retention",
            DivergenceKind::LegalHold => "legal-hold",
            DivergenceKind::MissingMarker => "missing-marker",
            DivergenceKind::MissingCheckpoint => "missing-checkpoint",
            DivergenceKind::Checkpoint => "checkpoint",
            DivergenceKind::MissingLedgerRange => "missing-ledger-range",
            DivergenceKind::LedgerRange => "ledger-range",
        }
    }
}

/// The first way the replica differs from the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// What kind.
    pub kind: DivergenceKind,
    /// The replica key (a version's key, or an evidence object's name).
    pub key: String,
    /// The source version id (empty for evidence).
    pub version_id: String,
    /// The replica version id examined (empty when none was found).
    pub replica_version_id: String,
    /// What differs, in words.
    pub what: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: `{}`", self.kind.as_str(), self.key)?;
        if !self.version_id.is_empty() {
            write!(f, " version {}", self.version_id)?;
        }
        if !self.replica_version_id.is_empty() {
            write!(f, " (replica version {})", self.replica_version_id)?;
        }
        write!(f, ": {}", self.what)
    }
}

/// What a verification checked, and the first divergence it found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// The rule.
    pub rule: String,
    /// The cursor verified through.
    pub cursor: u64,
    /// Versions checked (bytes, lock, hold).
    pub versions_checked: u64,
    /// Delete markers checked.
    pub markers_checked: u64,
    /// Bytes read from the replica (versions and evidence).
    pub bytes_read: u64,
    /// Checkpoints checked.
    pub checkpoints_checked: u64,
    /// Ledger ranges checked.
    pub ledger_ranges_checked: u64,
    /// The first divergence, if any (verification stops there).
    pub divergence: Option<Divergence>,
}

impl VerifyReport {
    /// Whether the replica holds what the cursor covers.
    pub fn is_ok(&self) -> bool {
        self.divergence.is_none()
    }
}

/// Verifies `rule`'s replica, reached through `target`, against `store`;
/// `public_key` is the appliance's checkpoint key. Errors are failures to
/// read (the store, or a replica that does not answer), not divergences.
pub async fn verify<T: Target + ?Sized>(
    store: &Store,
    rule: &Rule,
    target: &T,
    public_key: &[u8],
) -> Result<VerifyReport, ReplicaError> {
    let cursor = store.replica_cursor(&rule.name)?;
    let mut report = VerifyReport { rule: rule.name.clone(), cursor, ..VerifyReport::default() };
    let mut v = Verifier { store, rule, target, report: &mut report };
    let found = match v.versions(cursor).await? {
        Some(d) => Some(d),
        None => v.evidence(cursor, public_key).await?,
    };
    report.divergence = found;
    Ok(report)
}

/// Checks one source version's recorded replica copy as `verify` does
/// (size, bytes, lock, hold, the version it names): the capacity tier's
/// check before it releases the version's local bytes. `Ok(None)`: the copy
/// holds what the archive does.
pub async fn verify_version<T: Target + ?Sized>(
    store: &Store,
    rule: &Rule,
    target: &T,
    (bucket, key, id): (&BucketName, &ObjectKey, VersionId),
    info: &VersionInfo,
) -> Result<Option<Divergence>, ReplicaError> {
    let mut report = VerifyReport::default();
    Verifier { store, rule, target, report: &mut report }.version(bucket, key, id, info).await
}

struct Verifier<'a, T: Target + ?Sized> {
    store: &'a Store,
    rule: &'a Rule,
    target: &'a T,
    report: &'a mut VerifyReport,
}

fn diverged(kind: DivergenceKind, key: &str, version: &str, replica: &str, what: String) -> Option<Divergence> {
    Some(Divergence {
        kind,
        key: key.to_owned(),
        version_id: version.to_owned(),
        replica_version_id: replica.to_owned(),
        what,
    })
}

fn read_failed(e: tokio::task::JoinError) -> StoreError {
    StoreError::DataLoss { what: format!("reading the archive failed: {e}") }
}

/// How strong a retention mode is: COMPLIANCE keeps more than GOVERNANCE.
fn strength(mode: RetentionMode) -> u8 {
    match mode {
        RetentionMode::Governance => 1,
        RetentionMode::Compliance => 2,
    }
}

impl<T: Target + ?Sized> Verifier<'_, T> {
    /// Every version and marker the ledger wrote through `cursor`.
    async fn versions(&mut self, cursor: u64) -> Result<Option<Divergence>, ReplicaError> {
        let mut from = 1;
        while from <= cursor {
            let count = (cursor - from + 1).min(READ_AHEAD);
            let store = self.store.clone();
            let entries = tokio::task::spawn_blocking(move || {
                store.ledger_iter(from).take(count as usize).collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(read_failed)??;
            if entries.is_empty() {
                break;
            }
            for (entry, _) in &entries {
                if let Some(found) = self.entry(entry).await? {
                    return Ok(Some(found));
                }
                from = entry.sequence + 1;
            }
        }
        Ok(None)
    }

    async fn entry(&mut self, entry: &LedgerEntry) -> Result<Option<Divergence>, ReplicaError> {
        if !matches!(entry.op, LedgerOp::VersionWritten | LedgerOp::MarkerWritten)
            || !self.rule.covers(&entry.bucket, &entry.key)
        {
            return Ok(None);
        }
        let (Ok(bucket), Ok(key), Some(id)) =
            (BucketName::new(&entry.bucket), ObjectKey::new(&entry.key), entry.version)
        else {
            return Ok(None);
        };
        match self.store.read_version(&bucket, &key, id) {
            Ok(info) => self.version(&bucket, &key, id, &info).await,
            Err(StoreError::VersionIsDeleteMarker { .. }) => self.marker(&bucket, &key, id).await,
            // Purged since: the replica may keep it or not (`replicate_purges`).
            Err(StoreError::NoSuchVersion { .. } | StoreError::NoSuchBucket { .. }) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// The replica version of source version `id`: the recorded one, else
    /// the one whose metadata names it.
    async fn find(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        id: VersionId,
    ) -> Result<Option<ReplicaHead>, ReplicaError> {
        if let Some(replica_id) = self.store.replica_version(&self.rule.name, bucket, key, id)? {
            return Ok(self.target.head(key.as_str(), &replica_id).await?);
        }
        let wanted = id.to_string();
        let held = self.target.versions_of(key.as_str()).await?;
        Ok(held.into_iter().find(|h| h.metadata.iter().any(|(n, v)| n == META_VERSION && *v == wanted)))
    }

    async fn version(
        &mut self,
        bucket: &BucketName,
        key: &ObjectKey,
        id: VersionId,
        info: &VersionInfo,
    ) -> Result<Option<Divergence>, ReplicaError> {
        let (k, source) = (key.as_str(), id.to_string());
        let recorded = self.store.replica_version(&self.rule.name, bucket, key, id)?.unwrap_or_default();
        let Some(head) = self.find(bucket, key, id).await? else {
            let what = "the replica holds no version of it".to_owned();
            return Ok(diverged(DivergenceKind::MissingVersion, k, &source, &recorded, what));
        };
        let rid = head.version_id.clone();
        let named = head.metadata.iter().find(|(n, _)| n == META_VERSION).map(|(_, v)| v.as_str());
        if named != Some(source.as_str()) {
            let what = format!("it names source version {}", named.unwrap_or("(none)"));
            return Ok(diverged(DivergenceKind::Content, k, &source, &rid, what));
        }
        if head.size != info.size {
            let what = format!("size {} on the replica, {} in the archive", head.size, info.size);
            return Ok(diverged(DivergenceKind::Content, k, &source, &rid, what));
        }
        let Some(body) = self.target.get(k, &rid).await? else {
            let what = "the replica version cannot be read".to_owned();
            return Ok(diverged(DivergenceKind::MissingVersion, k, &source, &rid, what));
        };
        let (size, sha256) = self.hash(body).await?;
        if size != info.size || sha256 != info.sha256 {
            let what = format!(
                "its bytes differ: {size} bytes with SHA-256 {} on the replica, {} bytes with SHA-256 {} in the archive",
                sha256.to_hex(),
                info.size,
                info.sha256.to_hex()
            );
            return Ok(diverged(DivergenceKind::Content, k, &source, &rid, what));
        }
        if let Some(wanted) = replica_lock(self.rule, info) {
            let weaker = |held: Lock| strength(held.mode) < strength(wanted.mode) || held.until < wanted.until;
            match head.lock {
                Some(held) if !weaker(held) => {}
                held => {
                    let shown = |l: Option<Lock>| {
                        l.map_or("none".to_owned(), |l| format!("{} until {}", l.mode.as_str(), l.until))
                    };
                    let what =
                        format!("retention {} on the replica, at least {} wanted", shown(held), shown(Some(wanted)));
                    return Ok(diverged(DivergenceKind::Retention, k, &source, &rid, what));
                }
            }
        }
        let hold = !info.legal_holds.is_empty();
        if head.legal_hold != hold {
            let onoff = |on: bool| if on { "ON" } else { "OFF" };
            let what = format!("legal hold {} on the replica, {} in the archive", onoff(head.legal_hold), onoff(hold));
            return Ok(diverged(DivergenceKind::LegalHold, k, &source, &rid, what));
        }
        self.report.versions_checked += 1;
        Ok(None)
    }

    async fn marker(
        &mut self,
        bucket: &BucketName,
        key: &ObjectKey,
        id: VersionId,
    ) -> Result<Option<Divergence>, ReplicaError> {
        let (k, source) = (key.as_str(), id.to_string());
        let recorded = self.store.replica_version(&self.rule.name, bucket, key, id)?;
        let held = self.target.versions_of(k).await?;
        // A marker has no metadata: without a recorded id, any marker of the key stands for it.
        let present = held.iter().any(|h| h.is_delete_marker && recorded.as_ref().is_none_or(|r| *r == h.version_id));
        if !present {
            let what = "the replica holds no such delete marker".to_owned();
            return Ok(diverged(DivergenceKind::MissingMarker, k, &source, &recorded.unwrap_or_default(), what));
        }
        self.report.markers_checked += 1;
        Ok(None)
    }

    /// Streams `body`, counting and hashing it.
    async fn hash(&mut self, mut body: Body) -> Result<(u64, Digest), ReplicaError> {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| TargetError::Unavailable(format!("reading from the replica: {e}")))?;
            size += chunk.len() as u64;
            context.update(&chunk);
        }
        self.report.bytes_read += size;
        let mut digest = [0; 32];
        digest.copy_from_slice(context.finish().as_ref());
        Ok((size, Digest(digest)))
    }

    /// The newest non-marker version of an evidence object, if any.
    async fn evidence_version(&self, name: &str) -> Result<Option<String>, ReplicaError> {
        let held = self.target.versions_of(name).await?;
        Ok(held.into_iter().find(|h| !h.is_delete_marker).map(|h| h.version_id))
    }

    /// Every checkpoint at or before `cursor`, each after the ledger range it closes.
    async fn evidence(&mut self, cursor: u64, public_key: &[u8]) -> Result<Option<Divergence>, ReplicaError> {
        let store = self.store.clone();
        let checkpoints =
            tokio::task::spawn_blocking(move || store.checkpoints_between(0, cursor)).await.map_err(read_failed)??;
        let mut walker = ChainWalker::new();
        for checkpoint in &checkpoints {
            let (first, last) = (walker.expected(), checkpoint.sequence);
            if first <= last
                && let Some(found) = self.range(first, last, &mut walker, checkpoint).await?
            {
                return Ok(Some(found));
            }
            if let Some(found) = self.checkpoint(checkpoint, public_key).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    async fn range(
        &mut self,
        first: u64,
        last: u64,
        walker: &mut ChainWalker,
        checkpoint: &Checkpoint,
    ) -> Result<Option<Divergence>, ReplicaError> {
        let name = layout::ledger_key(first, last);
        let bad = |rid: &str, what: String| diverged(DivergenceKind::LedgerRange, &name, "", rid, what);
        let Some(rid) = self.evidence_version(&name).await? else {
            let what = format!("the ledger entries {first} to {last} are not on the replica");
            return Ok(diverged(DivergenceKind::MissingLedgerRange, &name, "", "", what));
        };
        let Some(mut body) = self.target.get(&name, &rid).await? else {
            return Ok(diverged(DivergenceKind::MissingLedgerRange, &name, "", &rid, "it cannot be read".to_owned()));
        };
        // Entries are decoded as they arrive: one entry and one chunk in memory.
        let mut buffer = BytesMut::new();
        let mut ended = false;
        loop {
            while buffer.len() >= 4 {
                let len = u32::from_be_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]) as usize;
                if buffer.len() < 4 + len {
                    break;
                }
                buffer.advance(4);
                let stored = buffer.split_to(len);
                let (entry, hash) = match LedgerEntry::decode_stored(&stored) {
                    Ok(decoded) => decoded,
                    Err(e) => return Ok(bad(&rid, format!("an entry does not decode: {e}"))),
                };
                let at = entry.sequence;
                if at > last {
                    return Ok(bad(&rid, format!("it holds entry {at}, past its end")));
                }
                match walker.follow(at, &entry, &hash) {
                    Ok(()) => {}
                    Err(ChainBreak::Missing { expected, found }) => {
                        return Ok(bad(&rid, format!("entry {expected} is missing (entry {found} follows)")));
                    }
                    Err(ChainBreak::Altered { sequence }) => {
                        return Ok(bad(
                            &rid,
                            format!("entry {sequence} does not hash to its chain hash: it was altered"),
                        ));
                    }
                }
            }
            if ended {
                break;
            }
            match body.next().await {
                Some(chunk) => {
                    let chunk =
                        chunk.map_err(|e| TargetError::Unavailable(format!("reading from the replica: {e}")))?;
                    self.report.bytes_read += chunk.len() as u64;
                    buffer.extend_from_slice(&chunk);
                }
                None => ended = true,
            }
        }
        if !buffer.is_empty() {
            return Ok(bad(&rid, "it ends inside an entry".to_owned()));
        }
        let (walked, head) = walker.walked();
        if walked != last {
            return Ok(bad(&rid, format!("it ends at entry {walked}, not {last}")));
        }
        if head != checkpoint.head {
            let what = format!(
                "it chains to {} at entry {last}, the checkpoint signs {}",
                head.to_hex(),
                checkpoint.head.to_hex()
            );
            return Ok(bad(&rid, what));
        }
        self.report.ledger_ranges_checked += 1;
        Ok(None)
    }

    async fn checkpoint(
        &mut self,
        checkpoint: &Checkpoint,
        public_key: &[u8],
    ) -> Result<Option<Divergence>, ReplicaError> {
        let name = layout::checkpoint_key(checkpoint.sequence);
        let bad = |rid: &str, what: String| diverged(DivergenceKind::Checkpoint, &name, "", rid, what);
        let missing = |rid: &str| {
            let what = format!("the checkpoint signed at ledger entry {} is not on the replica", checkpoint.sequence);
            diverged(DivergenceKind::MissingCheckpoint, &name, "", rid, what)
        };
        let Some(rid) = self.evidence_version(&name).await? else { return Ok(missing("")) };
        let Some(mut body) = self.target.get(&name, &rid).await? else { return Ok(missing(&rid)) };
        let mut raw = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| TargetError::Unavailable(format!("reading from the replica: {e}")))?;
            self.report.bytes_read += chunk.len() as u64;
            raw.extend_from_slice(&chunk);
            if raw.len() > MAX_CHECKPOINT_BYTES {
                return Ok(bad(&rid, format!("it is larger than {MAX_CHECKPOINT_BYTES} bytes")));
            }
        }
        let held = match serde_json::from_slice::<CheckpointFile>(&raw)
            .map_err(|e| e.to_string())
            .and_then(|f| f.checkpoint())
        {
            Ok(held) => held,
            Err(e) => return Ok(bad(&rid, format!("it does not read as a checkpoint file: {e}"))),
        };
        if !held.verify(public_key) {
            return Ok(bad(&rid, "its signature does not verify under the appliance's public key".to_owned()));
        }
        if held != *checkpoint {
            let what = format!(
                "it signs entry {} head {}, the appliance's checkpoint entry {} head {}",
                held.sequence,
                held.head.to_hex(),
                checkpoint.sequence,
                checkpoint.head.to_hex()
            );
            return Ok(bad(&rid, what));
        }
        self.report.checkpoints_checked += 1;
        Ok(None)
    }
}
