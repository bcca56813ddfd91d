//! Rebuilding an archive from its signed ledger alone, with each version's
//! bytes, content type, user metadata and S3 ETag from a copy held elsewhere
//! (the replica): what `wormboxd restore --from-replica` writes into an empty
//! data directory.
//!
//! The ledger is replayed entry by entry into the state it describes:
//! buckets (creation, versioning, MFA Delete, Object Lock and its default),
//! versions and delete markers (`null` ones replaced as the writer did),
//! purges, retention and legal holds, principals. What the ledger does not
//! hold is not invented: a principal comes back with its access key, name,
//! role and bypass right but a new secret (secrets are kept only as salted
//! hashes); MFA devices are not restored (their seeds never leave the
//! appliance) and are enrolled again, nor are S3 secrets (sealed under the
//! master key, never in the ledger), which are issued again; a legal hold's note is not in the
//! ledger and comes back empty.
//!
//! Invariants:
//! - Nothing is taken that the chain does not vouch for: entries must follow
//!   one another without a gap and hash to their stored chain hashes, and
//!   every checkpoint given must cover exactly the chain fed so far.
//! - The records written are a function of the ledger and the replica's
//!   copy, not byte copies of the lost ones, so each restored version gets a
//!   `version-restored` entry attesting its new record and lock record; its
//!   bytes must have the SHA-256 the version was written with, or the
//!   restore stops. Retention is never shortened: dates are replayed exactly
//!   as the ledger states them.
//! - Every version the replayed ledger holds gets its bytes, or `finish`
//!   refuses: a restored archive never names bytes it does not have.

use std::collections::BTreeMap;
use std::sync::Arc;

use ring::rand::SecureRandom;
use wormbox_model::{BucketName, Digest, Role, Timestamp, UserMetadata, VersionId, VersioningState};

use crate::backend::{Backend, Batch, Durability, Keyspace};
use crate::codec::{self, BucketRecord, DataRef, LockRecord, PrincipalRecord, VersionRecord};
use crate::evidence::{self, Checkpoint, Signer};
use crate::ledger::{self, EntryFormat, LedgerEntry, LedgerOp};
use crate::merkle::{self, Frontier};
use crate::retention::{DefaultRetention, LegalHold, Retention, RetentionMode, RetentionPeriod};
use crate::{CHUNK_BYTES, StoreError, keys, meta};

/// Why a rebuild stopped. Nothing it wrote is an archive until `finish`
/// returned; the caller discards the directory.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The ledger given is not one unbroken chain.
    #[error("the ledger does not chain at entry {sequence}: {why}")]
    Chain {
        /// The entry.
        sequence: u64,
        /// What is wrong.
        why: String,
    },
    /// An entry cannot be applied to the state the entries before it built.
    #[error("ledger entry {sequence} ({op}) cannot be replayed: {why}")]
    Replay {
        /// The entry.
        sequence: u64,
        /// Its operation.
        op: &'static str,
        /// What is wrong.
        why: String,
    },
    /// A checkpoint does not sign the chain as replayed.
    #[error("checkpoint {sequence}: {why}")]
    Checkpoint {
        /// Its sequence.
        sequence: u64,
        /// What is wrong.
        why: String,
    },
    /// A version's copy is not what the ledger wrote.
    #[error("{bucket}/{key} version {version}: {why}")]
    Copy {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The version id.
        version: String,
        /// What is wrong.
        why: String,
    },
    /// The target is not empty, or the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

type VersionKey = (String, String, u128);

/// A version or marker the replayed ledger holds.
#[derive(Clone, Debug)]
struct Replayed {
    is_null: bool,
    marker: bool,
    sha256: Digest,
    size: u64,
    created_at: Timestamp,
    creator: String,
    lock: Option<LockRecord>,
    /// Set once its bytes were written.
    copied: Option<Copied>,
}

/// Where a version's bytes came back from, and what came with them.
#[derive(Clone, Debug, Default)]
struct Copied {
    content_type: String,
    user_metadata: UserMetadata,
    etag: Option<String>,
    chunks: u32,
    /// The replication rule whose replica held them, and its version id there.
    rule: String,
    replica_id: String,
}

/// A version whose bytes the caller must supply (`Rebuild::bytes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveVersion {
    /// Its bucket.
    pub bucket: String,
    /// Its key.
    pub key: String,
    /// Its internal id.
    pub id: VersionId,
    /// Its size, as the ledger wrote it.
    pub size: u64,
    /// Its SHA-256, as the ledger wrote it.
    pub sha256: Digest,
}

#[derive(Clone, Debug)]
struct Principal {
    name: String,
    role: Role,
    bypass: bool,
    created_at: Timestamp,
    revoked_at: Option<Timestamp>,
}

/// A principal given a new secret by the restore.
#[derive(Clone, Debug)]
pub struct Rekeyed {
    /// The access key id, as before.
    pub access_key: String,
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The new secret, shown once.
    pub secret: String,
}

/// What `finish` wrote.
#[derive(Debug)]
pub struct Rebuilt {
    /// The entry the replayed ledger ended at (the newest checkpoint given).
    pub replayed_through: u64,
    /// The restored archive's last entry (after the restore's own entries).
    pub ledger_sequence: u64,
    /// Buckets restored.
    pub buckets: usize,
    /// Versions restored with their bytes.
    pub versions: usize,
    /// Delete markers restored.
    pub markers: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Principals that are not revoked, with their new secrets.
    pub principals: Vec<Rekeyed>,
    /// The checkpoint signed over the restored ledger.
    pub checkpoint: Checkpoint,
}

/// A rebuild in progress over an empty backend.
pub struct Rebuild {
    backend: Arc<dyn Backend>,
    public_key: Vec<u8>,
    sequence: u64,
    head: Digest,
    last_time: Timestamp,
    newest_id: Option<VersionId>,
    buckets: BTreeMap<String, BucketRecord>,
    principals: BTreeMap<String, Principal>,
    versions: BTreeMap<VersionKey, Replayed>,
    /// The `null` version of each key that has one.
    nulls: BTreeMap<(String, String), u128>,
    checkpoints: Vec<Checkpoint>,
    /// Replication rules whose replicas hold everything restored.
    rules: Vec<String>,
    batch: Batch,
    /// The ledger's Merkle tree over the entries taken and appended.
    tree: Frontier,
    /// Its tiles not yet complete.
    tiles: crate::tree::TileRows,
}

impl std::fmt::Debug for Rebuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rebuild").field("sequence", &self.sequence).field("versions", &self.versions.len()).finish()
    }
}

impl std::fmt::Debug for VersionBytes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionBytes").field("version", &self.version).field("size", &self.size).finish()
    }
}

/// Ledger entries are written in batches of this many.
const BATCH_ENTRIES: usize = 1024;

impl Rebuild {
    /// Starts a rebuild into `backend`, which must hold nothing; checkpoints
    /// must be signed by `public_key`.
    pub fn new(backend: Arc<dyn Backend>, public_key: Vec<u8>) -> Result<Rebuild, RebuildError> {
        for space in Keyspace::ALL {
            if backend.scan(space, b"", b"").next().is_some() {
                return Err(StoreError::InvalidArgument(format!(
                    "the target archive is not empty (its {} hold data)",
                    space.name()
                ))
                .into());
            }
        }
        Ok(Rebuild {
            backend,
            public_key,
            sequence: 0,
            head: ledger::GENESIS,
            last_time: Timestamp::EPOCH,
            newest_id: None,
            buckets: BTreeMap::new(),
            principals: BTreeMap::new(),
            versions: BTreeMap::new(),
            nulls: BTreeMap::new(),
            checkpoints: Vec::new(),
            rules: Vec::new(),
            batch: Batch::new(),
            tree: Frontier::default(),
            tiles: crate::tree::TileRows::default(),
        })
    }

    /// The last entry replayed.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Takes the next ledger entry, with the chain hash it was stored with.
    pub fn entry(&mut self, entry: &LedgerEntry, stored: &Digest) -> Result<(), RebuildError> {
        let chain = |why: String| RebuildError::Chain { sequence: entry.sequence, why };
        if entry.sequence != self.sequence + 1 {
            return Err(chain(format!("expected entry {}", self.sequence + 1)));
        }
        let hash = entry.chain_hash(&self.head);
        if hash != *stored {
            return Err(chain("the entry does not hash to its stored chain hash".to_owned()));
        }
        self.replay(entry).map_err(|why| RebuildError::Replay {
            sequence: entry.sequence,
            op: entry.op.as_str(),
            why,
        })?;
        self.store_entry(entry, &hash);
        self.sequence = entry.sequence;
        self.head = hash;
        self.last_time = self.last_time.max(entry.time);
        if let Some(id) = entry.version {
            self.newest_id = Some(self.newest_id.map_or(id, |n| n.max(id)));
        }
        if self.batch.ops().len() >= BATCH_ENTRIES {
            self.flush()?;
        }
        Ok(())
    }

    /// Takes a signed checkpoint, which must cover exactly the entries taken so far.
    pub fn checkpoint(&mut self, checkpoint: Checkpoint) -> Result<(), RebuildError> {
        let refuse = |why: &str| RebuildError::Checkpoint { sequence: checkpoint.sequence, why: why.to_owned() };
        if !checkpoint.verify(&self.public_key) {
            return Err(refuse("its signature is not the appliance's"));
        }
        if checkpoint.sequence != self.sequence {
            return Err(refuse(&format!(
                "it covers entry {}, the ledger replayed ends at {}",
                checkpoint.sequence, self.sequence
            )));
        }
        if checkpoint.head != self.head {
            return Err(refuse("its chain hash differs from the ledger's"));
        }
        if checkpoint.tree_root.is_some_and(|root| root != self.tree.root()) {
            return Err(refuse("its Merkle tree root differs from the ledger's"));
        }
        self.checkpoints.push(checkpoint);
        Ok(())
    }

    /// The versions (not markers) whose bytes are still to be written, in key order.
    pub fn wanted(&self) -> Vec<LiveVersion> {
        self.versions
            .iter()
            .filter(|(_, v)| !v.marker && v.copied.is_none())
            .map(|((bucket, key, id), v)| LiveVersion {
                bucket: bucket.clone(),
                key: key.clone(),
                id: VersionId::from_u128(*id),
                size: v.size,
                sha256: v.sha256,
            })
            .collect()
    }

    /// Names the replication rules whose replicas the archive is restored
    /// from: the restored archive records them as replicated through its
    /// end, so that their replicators go on from there and copy nothing twice.
    pub fn replicated_by(&mut self, rules: Vec<String>) {
        self.rules = rules;
    }

    /// Starts writing one version's bytes.
    pub fn bytes(&mut self, version: &LiveVersion) -> Result<VersionBytes<'_>, RebuildError> {
        self.flush()?;
        Ok(VersionBytes {
            rebuild: self,
            version: version.clone(),
            buffer: Vec::with_capacity(CHUNK_BYTES.min(usize::try_from(version.size).unwrap_or(CHUNK_BYTES))),
            chunks: 0,
            size: 0,
            hasher: ring::digest::Context::new(&ring::digest::SHA256),
        })
    }

    /// Writes the state, the restore's own entries (`detail` says from
    /// where) and a new signed checkpoint; `now` is the compliance time of
    /// the restore, never taken earlier than the replayed ledger's end.
    pub fn finish(mut self, now: Timestamp, detail: &str, signer: &dyn Signer) -> Result<Rebuilt, RebuildError> {
        let Some(last) = self.checkpoints.last() else {
            return Err(StoreError::InvalidArgument("no signed checkpoint covers the ledger given".to_owned()).into());
        };
        if last.sequence != self.sequence {
            return Err(RebuildError::Checkpoint {
                sequence: self.sequence,
                why: format!("the ledger given runs past the newest checkpoint ({})", last.sequence),
            });
        }
        if signer.public_key() != self.public_key.as_slice() {
            return Err(StoreError::InvalidArgument("the signing key is not the appliance's".to_owned()).into());
        }
        let replayed_through = self.sequence;
        if let Some(((bucket, key, id), _)) = self.versions.iter().find(|(_, v)| !v.marker && v.copied.is_none()) {
            return Err(RebuildError::Copy {
                bucket: bucket.clone(),
                key: key.clone(),
                version: VersionId::from_u128(*id).to_string(),
                why: "no copy of its bytes was found".to_owned(),
            });
        }
        let now = now.max(self.last_time);
        let mut rebuilt = Rebuilt {
            replayed_through,
            ledger_sequence: 0,
            buckets: self.buckets.len(),
            versions: 0,
            markers: 0,
            bytes: 0,
            principals: Vec::new(),
            checkpoint: last.clone(),
        };
        for (name, record) in &self.buckets {
            self.batch.put(Keyspace::Buckets, name.as_bytes().to_vec(), record.encode());
        }
        let versions = std::mem::take(&mut self.versions);
        for ((bucket, key, id), v) in versions {
            let id = VersionId::from_u128(id);
            let bucket_name = BucketName::new(&bucket).map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
            let copied = v.copied.clone().unwrap_or_default();
            let record = VersionRecord {
                id,
                is_null: v.is_null,
                is_delete_marker: v.marker,
                size: v.size,
                sha256: v.sha256,
                content_type: copied.content_type.clone(),
                user_metadata: copied.user_metadata.clone(),
                created_at: v.created_at,
                creator: v.creator.clone(),
                data: (!v.marker).then_some(DataRef { upload: id.as_u128(), chunks: copied.chunks }),
                etag: copied.etag.clone(),
            };
            let stored = record.encode();
            let version_key = keys::version_key(&bucket_name, &key, id);
            self.batch.put(Keyspace::Versions, version_key.clone(), stored.clone());
            if v.is_null {
                self.batch.put(Keyspace::Nulls, keys::object_prefix(&bucket_name, &key), id.to_bytes().to_vec());
            }
            let lock_sha256 = v.lock.as_ref().map(|lock| {
                let stored = lock.encode();
                let digest = evidence::sha256(&stored);
                self.batch.put(Keyspace::Locks, version_key.clone(), stored);
                digest
            });
            if v.marker {
                rebuilt.markers += 1;
            } else {
                rebuilt.versions += 1;
                rebuilt.bytes += v.size;
            }
            if !v.marker {
                let (key, value) = meta::replica_version_entry(&copied.rule, &version_key, &copied.replica_id);
                self.batch.put(Keyspace::Meta, key, value);
            }
            let what = if v.marker {
                "delete marker".to_owned()
            } else {
                format!("bytes from the replica of rule `{}`, its version {}", copied.rule, copied.replica_id)
            };
            self.append(LedgerEntry {
                format: EntryFormat::CURRENT,
                sequence: 0,
                time: now,
                op: LedgerOp::VersionRestored,
                principal: "system".to_owned(),
                bucket,
                key,
                version: Some(id),
                sha256: (!v.marker).then_some(v.sha256),
                record_sha256: Some(evidence::sha256(&stored)),
                lock_sha256,
                detail: format!("restored: {what}; records rebuilt from the ledger"),
            })?;
        }
        let rng = ring::rand::SystemRandom::new();
        for (access_key, p) in std::mem::take(&mut self.principals) {
            let mut salt = [0u8; 16];
            rng.fill(&mut salt).map_err(|_| StoreError::DataLoss { what: "no randomness".to_owned() })?;
            let secret = crate::store::random_base32(&rng, 40)?;
            let record = PrincipalRecord {
                name: p.name.clone(),
                role: p.role,
                salt,
                secret_hash: crate::store::secret_hash(&salt, &secret),
                created_at: p.created_at,
                revoked_at: p.revoked_at,
                bypass_governance: p.bypass,
            };
            self.batch.put(Keyspace::Principals, access_key.as_bytes().to_vec(), record.encode());
            if p.revoked_at.is_none() {
                rebuilt.principals.push(Rekeyed { access_key, name: p.name, role: p.role, secret });
            }
        }
        let summary = format!(
            "{detail}; replayed through signed checkpoint {replayed_through}; {} buckets, {} versions ({} bytes), \
             {} delete markers; {} principals given new secrets; MFA devices are enrolled again",
            rebuilt.buckets,
            rebuilt.versions,
            rebuilt.bytes,
            rebuilt.markers,
            rebuilt.principals.len()
        );
        self.append(LedgerEntry {
            format: EntryFormat::CURRENT,
            sequence: 0,
            time: now,
            op: LedgerOp::ArchiveRestored,
            principal: "system".to_owned(),
            bucket: String::new(),
            key: String::new(),
            version: None,
            sha256: None,
            record_sha256: None,
            lock_sha256: None,
            detail: summary,
        })?;
        for c in &self.checkpoints {
            self.batch.put(Keyspace::Checkpoints, evidence::checkpoint_key(c.sequence).to_vec(), c.encode());
        }
        let checkpoint = Checkpoint::sign(signer, self.sequence, self.head, now, self.tree.root());
        self.batch.put(
            Keyspace::Checkpoints,
            evidence::checkpoint_key(checkpoint.sequence).to_vec(),
            checkpoint.encode(),
        );
        // The next version id must lie beyond every id the ledger names.
        let (mut mark_time, mut mark_sequence) = (now, 0);
        if let Some(newest) = self.newest_id {
            let newest_micros = i64::try_from(newest.micros()).unwrap_or(i64::MAX);
            if newest_micros >= mark_time.0 {
                mark_time = Timestamp(newest_micros);
                mark_sequence = (newest.as_u128() as u64).saturating_add(1);
            }
        }
        for (key, value) in [
            meta::clock_entry(mark_time, mark_sequence),
            meta::ledger_head_entry(self.sequence, &self.head),
            meta::merkle_frontier_entry(&self.tree),
            meta::last_checkpoint_entry(checkpoint.sequence),
            meta::format_entry(crate::format::FORMAT_VERSION),
        ] {
            self.batch.put(Keyspace::Meta, key, value);
        }
        for rule in &self.rules {
            let (key, value) = meta::replica_cursor_entry(rule, self.sequence);
            self.batch.put(Keyspace::Meta, key, value);
        }
        self.flush()?;
        rebuilt.ledger_sequence = self.sequence;
        rebuilt.checkpoint = checkpoint;
        Ok(rebuilt)
    }

    fn append(&mut self, mut entry: LedgerEntry) -> Result<(), RebuildError> {
        entry.sequence = self.sequence + 1;
        let hash = entry.chain_hash(&self.head);
        self.store_entry(&entry, &hash);
        self.sequence = entry.sequence;
        self.head = hash;
        if self.batch.ops().len() >= BATCH_ENTRIES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes an entry and the Merkle subtrees and tiles it completes, as the writer does.
    fn store_entry(&mut self, entry: &LedgerEntry, hash: &Digest) {
        let stored = entry.encode_stored(hash);
        let (batch, tiles) = (&mut self.batch, &mut self.tiles);
        let (canonical, _) = ledger::split_stored(&stored).expect("an encoded entry holds its hash");
        self.tree.push(merkle::leaf_hash(canonical), |height, index, root| {
            if height >= merkle::STORED_HEIGHT {
                let (key, value) = meta::merkle_node_entry(height, index, root);
                batch.put(Keyspace::Meta, key, value);
            }
            if let Some((level, index, hashes)) = tiles.add(height, index, root) {
                let (key, value) = meta::merkle_tile_entry(level, index, &hashes);
                batch.put(Keyspace::Meta, key, value);
            }
        });
        self.batch.put(Keyspace::Ledger, ledger::ledger_key(entry.sequence).to_vec(), stored);
    }

    fn flush(&mut self) -> Result<(), RebuildError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.backend
            .commit(&batch, Durability::Synced)
            .map_err(|e| StoreError::backend("writing the rebuilt archive", e))?;
        Ok(())
    }

    fn replay(&mut self, entry: &LedgerEntry) -> Result<(), String> {
        match entry.op {
            LedgerOp::BucketCreated => {
                if self.buckets.contains_key(&entry.bucket) {
                    return Err("the bucket exists".to_owned());
                }
                let object_lock = entry.detail.starts_with("object-lock on");
                let record = BucketRecord {
                    owner: entry.principal.clone(),
                    versioning: if object_lock { VersioningState::Enabled } else { VersioningState::Unversioned },
                    created_at: entry.time,
                    mfa_delete: false,
                    object_lock,
                    default_retention: None,
                };
                self.buckets.insert(entry.bucket.clone(), record);
            }
            LedgerOp::BucketDeleted => {
                self.buckets.remove(&entry.bucket).ok_or("no such bucket")?;
                if self.versions.keys().any(|(b, _, _)| *b == entry.bucket) {
                    return Err("the bucket still holds versions".to_owned());
                }
            }
            LedgerOp::VersioningChanged => {
                let record = self.buckets.get_mut(&entry.bucket).ok_or("no such bucket")?;
                let (_, after) = entry.detail.split_once(" -> ").ok_or("no `A -> B` in the detail")?;
                let state = after.split(';').next().unwrap_or_default().trim();
                record.versioning = versioning_state(state).ok_or_else(|| format!("unknown state `{state}`"))?;
                if entry.detail.contains("; mfa-delete on") {
                    record.mfa_delete = true;
                } else if entry.detail.contains("; mfa-delete off") {
                    record.mfa_delete = false;
                }
            }
            LedgerOp::ObjectLockChanged => {
                let record = self.buckets.get_mut(&entry.bucket).ok_or("no such bucket")?;
                record.object_lock = true;
                record.default_retention = match entry.detail.split_once("; default ") {
                    Some((_, default)) => Some(default_retention(default)?),
                    None => None,
                };
            }
            LedgerOp::VersionWritten | LedgerOp::MarkerWritten => {
                let marker = entry.op == LedgerOp::MarkerWritten;
                let bucket = self.buckets.get(&entry.bucket).ok_or("no such bucket")?;
                let id = entry.version.ok_or("no version id")?;
                let is_null = match bucket.versioning {
                    VersioningState::Enabled => false,
                    VersioningState::Suspended => true,
                    // An unversioned bucket never writes markers.
                    VersioningState::Unversioned if marker => return Err("a marker in an unversioned bucket".into()),
                    VersioningState::Unversioned => true,
                };
                // The writer purges the `null` version it replaces in an
                // entry of its own, before this one.
                if is_null && self.nulls.insert((entry.bucket.clone(), entry.key.clone()), id.as_u128()).is_some() {
                    return Err("a null version that no entry purged is replaced".to_owned());
                }
                let (size, lock) =
                    if marker { (0, None) } else { written_detail(&entry.detail, &entry.principal, entry.time)? };
                let sha256 = if marker { Digest([0; 32]) } else { entry.sha256.ok_or("no SHA-256")? };
                let replayed = Replayed {
                    is_null,
                    marker,
                    sha256,
                    size,
                    created_at: entry.time,
                    creator: entry.principal.clone(),
                    lock,
                    copied: None,
                };
                let key = (entry.bucket.clone(), entry.key.clone(), id.as_u128());
                if self.versions.insert(key, replayed).is_some() {
                    return Err("the version id was written before".to_owned());
                }
            }
            LedgerOp::VersionPurged => {
                let id = entry.version.ok_or("no version id")?;
                let purged = self
                    .versions
                    .remove(&(entry.bucket.clone(), entry.key.clone(), id.as_u128()))
                    .ok_or("no such version")?;
                if purged.is_null {
                    self.nulls.remove(&(entry.bucket.clone(), entry.key.clone()));
                }
            }
            LedgerOp::RetentionChanged => {
                let version = self.version_mut(entry)?;
                let (_, after) = entry.detail.split_once(" -> ").ok_or("no `A -> B` in the detail")?;
                let after = after.split("; ").next().unwrap_or_default();
                let retention = if after == "none" { None } else { Some(retention(after)?) };
                version.lock.get_or_insert_with(LockRecord::default).retention = retention;
            }
            LedgerOp::HoldPlaced => {
                let (principal, time) = (entry.principal.clone(), entry.time);
                let case_id = entry.detail.strip_prefix("case ").ok_or("no case id in the detail")?.to_owned();
                let lock = self.version_mut(entry)?.lock.get_or_insert_with(LockRecord::default);
                if lock.holds.iter().any(|h| h.case_id == case_id) {
                    return Err(format!("hold `{case_id}` is in place already"));
                }
                lock.holds.push(LegalHold { case_id, placed_by: principal, placed_at: time, note: String::new() });
            }
            LedgerOp::HoldReleased => {
                let case_id = entry.detail.strip_prefix("case ").ok_or("no case id in the detail")?.to_owned();
                let lock = self.version_mut(entry)?.lock.get_or_insert_with(LockRecord::default);
                let before = lock.holds.len();
                lock.holds.retain(|h| h.case_id != case_id);
                if lock.holds.len() == before {
                    return Err(format!("hold `{case_id}` is not in place"));
                }
            }
            LedgerOp::PrincipalCreated => {
                let (name, role, bypass) = principal_detail(&entry.detail)?;
                let principal = Principal { name, role, bypass, created_at: entry.time, revoked_at: None };
                if self.principals.insert(entry.key.clone(), principal).is_some() {
                    return Err("the access key exists".to_owned());
                }
            }
            LedgerOp::PrincipalRevoked => {
                let principal = self.principals.get_mut(&entry.key).ok_or("no such principal")?;
                principal.revoked_at = Some(entry.time);
            }
            LedgerOp::VersionRestored => {
                // An archive restored before: its records were rebuilt then
                // from what the ledger already says, and are rebuilt again.
                let id = entry.version.ok_or("no version id")?;
                let key = (entry.bucket.clone(), entry.key.clone(), id.as_u128());
                let version = self.versions.get(&key).ok_or("no such version")?;
                if !version.marker && entry.sha256 != Some(version.sha256) {
                    return Err("restored with other bytes than it was written with".to_owned());
                }
            }
            // The tier released the local bytes to a replica: the restore
            // copies them back, so the version is local again.
            LedgerOp::BytesReleased => {
                let version = self.version_mut(entry)?;
                if entry.sha256 != Some(version.sha256) {
                    return Err("released with another SHA-256 than it was written with".to_owned());
                }
            }
            // MFA devices and S3 secrets are not restored (seeds and sealed
            // secrets are not in the ledger and never leave the appliance:
            // S3 keys are issued again); refusals, clock and integrity
            // entries change no state a restore rebuilds.
            LedgerOp::S3KeyCreated
            | LedgerOp::S3KeyRevoked
            | LedgerOp::MfaEnrolled
            | LedgerOp::MfaActivated
            | LedgerOp::MfaResynced
            | LedgerOp::MfaAccepted
            | LedgerOp::MfaRefused
            | LedgerOp::MfaDeactivated
            | LedgerOp::Refused
            | LedgerOp::ClockHeldBack
            | LedgerOp::ClockAccepted
            | LedgerOp::ClockCaughtUp
            | LedgerOp::IntegrityVerified
            | LedgerOp::IntegrityFailed
            | LedgerOp::ArchiveRestored => {}
        }
        Ok(())
    }

    fn version_mut(&mut self, entry: &LedgerEntry) -> Result<&mut Replayed, String> {
        let id = entry.version.ok_or("no version id")?;
        let version =
            self.versions.get_mut(&(entry.bucket.clone(), entry.key.clone(), id.as_u128())).ok_or("no such version")?;
        if version.marker {
            return Err("a delete marker has no lock".to_owned());
        }
        Ok(version)
    }
}

/// One version's bytes on their way into the rebuilt archive, in chunks as
/// the store keeps them, hashed as they pass.
pub struct VersionBytes<'a> {
    rebuild: &'a mut Rebuild,
    version: LiveVersion,
    buffer: Vec<u8>,
    chunks: u32,
    size: u64,
    hasher: ring::digest::Context,
}

impl VersionBytes<'_> {
    /// Takes the next bytes.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), RebuildError> {
        self.size += data.len() as u64;
        if self.size > self.version.size {
            return Err(self.refuse(format!("the copy is longer than the {} bytes written", self.version.size)));
        }
        self.hasher.update(data);
        while !data.is_empty() {
            let take = (CHUNK_BYTES - self.buffer.len()).min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buffer.len() == CHUNK_BYTES {
                self.put_chunk()?;
            }
        }
        Ok(())
    }

    /// Checks the whole copy against the ledger and records its content
    /// type, its user metadata, its S3 ETag (if it had one; one that fails
    /// `check_etag` is refused) and where it came from: the replica of
    /// `rule`, its version `replica_id`.
    pub fn finish(
        mut self,
        content_type: String,
        user_metadata: UserMetadata,
        etag: Option<String>,
        rule: &str,
        replica_id: &str,
    ) -> Result<(), RebuildError> {
        if self.size != self.version.size {
            return Err(
                self.refuse(format!("the copy holds {} bytes, the ledger wrote {}", self.size, self.version.size))
            );
        }
        if let Some(Err(why)) = etag.as_deref().map(crate::check_etag) {
            return Err(self.refuse(format!("the copy's ETag is refused: {why}")));
        }
        let digest = Digest::from_slice(self.hasher.clone().finish().as_ref()).expect("SHA-256 yields 32 bytes");
        if digest != self.version.sha256 {
            return Err(self.refuse("the copy's SHA-256 differs from the one the ledger wrote".to_owned()));
        }
        if !self.buffer.is_empty() {
            self.put_chunk()?;
        }
        let v = &self.version;
        let replayed = self
            .rebuild
            .versions
            .get_mut(&(v.bucket.clone(), v.key.clone(), v.id.as_u128()))
            .ok_or_else(|| StoreError::InvalidArgument("no such version in the replayed ledger".to_owned()))?;
        replayed.copied = Some(Copied {
            content_type,
            user_metadata,
            etag,
            chunks: self.chunks,
            rule: rule.to_owned(),
            replica_id: replica_id.to_owned(),
        });
        Ok(())
    }

    fn put_chunk(&mut self) -> Result<(), RebuildError> {
        let mut batch = Batch::new();
        let chunk = codec::encode_chunk(&self.buffer);
        batch.put(Keyspace::Chunks, keys::chunk_key(self.version.id.as_u128(), self.chunks), chunk);
        self.rebuild
            .backend
            .commit(&batch, Durability::Buffered)
            .map_err(|e| StoreError::backend("writing a restored version's bytes", e))?;
        self.buffer.clear();
        self.chunks += 1;
        Ok(())
    }

    fn refuse(&self, why: String) -> RebuildError {
        RebuildError::Copy {
            bucket: self.version.bucket.clone(),
            key: self.version.key.clone(),
            version: self.version.id.to_string(),
            why,
        }
    }
}

fn versioning_state(text: &str) -> Option<VersioningState> {
    [VersioningState::Unversioned, VersioningState::Enabled, VersioningState::Suspended]
        .into_iter()
        .find(|s| s.as_str() == text)
}

fn mode(text: &str) -> Result<RetentionMode, String> {
    [RetentionMode::Governance, RetentionMode::Compliance]
        .into_iter()
        .find(|m| m.as_str() == text)
        .ok_or_else(|| format!("unknown retention mode `{text}`"))
}

/// `MODE until RFC3339`, as the writer describes a retention.
fn retention(text: &str) -> Result<Retention, String> {
    let (m, until) = text.split_once(" until ").ok_or_else(|| format!("`{text}` is not `MODE until DATE`"))?;
    let until = Timestamp::parse_rfc3339(until).ok_or_else(|| format!("`{until}` is not a date"))?;
    Ok(Retention { mode: mode(m)?, until })
}

/// `MODE Days(N)` or `MODE Years(N)`, as the writer describes a default.
fn default_retention(text: &str) -> Result<DefaultRetention, String> {
    let bad = || format!("`{text}` is not a default retention");
    let (m, period) = text.split_once(' ').ok_or_else(bad)?;
    let number = |inner: &str| inner.strip_suffix(')').and_then(|n| n.parse::<u32>().ok());
    let period = if let Some(n) = period.strip_prefix("Days(").and_then(number) {
        RetentionPeriod::Days(n)
    } else if let Some(n) = period.strip_prefix("Years(").and_then(number) {
        RetentionPeriod::Years(n)
    } else {
        return Err(bad());
    };
    Ok(DefaultRetention { mode: mode(m)?, period })
}

/// A written version's detail: `size=N[; retention MODE until DATE][; hold CASE]`
/// (a write places at most one hold, and its case id is last).
fn written_detail(detail: &str, principal: &str, time: Timestamp) -> Result<(u64, Option<LockRecord>), String> {
    let (head, hold) = match detail.split_once("; hold ") {
        Some((head, case)) => (head, Some(case)),
        None => (detail, None),
    };
    let (size, retention_text) = match head.split_once("; retention ") {
        Some((size, r)) => (size, Some(r)),
        None => (head, None),
    };
    let size = size.strip_prefix("size=").and_then(|n| n.parse().ok()).ok_or("no `size=N` in the detail")?;
    let retention = retention_text.map(retention).transpose()?;
    let holds: Vec<LegalHold> = hold
        .map(|case| LegalHold {
            case_id: case.to_owned(),
            placed_by: principal.to_owned(),
            placed_at: time,
            note: String::new(),
        })
        .into_iter()
        .collect();
    let lock = (retention.is_some() || !holds.is_empty()).then_some(LockRecord { retention, holds });
    Ok((size, lock))
}

/// `name=NAME role=ROLE[ bypass-governance]`.
fn principal_detail(detail: &str) -> Result<(String, Role, bool), String> {
    let (rest, bypass) = match detail.strip_suffix(" bypass-governance") {
        Some(rest) => (rest, true),
        None => (detail, false),
    };
    let (name, role) = rest.rsplit_once(" role=").ok_or("no `role=` in the detail")?;
    let name = name.strip_prefix("name=").ok_or("no `name=` in the detail")?;
    let role = Role::parse(role).ok_or_else(|| format!("unknown role `{role}`"))?;
    Ok((name.to_owned(), role, bypass))
}

#[cfg(test)]
mod tests;
