//! Evidence: signed checkpoints, Merkle proofs against them, and the
//! integrity check.
//!
//! Invariants: an integrity check's result is recorded in the ledger by the
//! caller who asked for it; the check itself runs on a blocking thread. A
//! proof is only ever given with the stored signed checkpoint whose tree it
//! leads to, never against an unsigned size, and is checked against that
//! root before it leaves; asking for one signs and writes nothing.

use wormbox_model::{BucketName, Digest, ObjectKey, VersionSelector};
use wormbox_store::evidence::{Checkpoint, IntegrityReport, VerifyOptions};
use wormbox_store::{Actor, InclusionProof, StoreError};

use crate::{Access, App, AppError};

/// GetCheckpoint.
#[derive(Clone, Copy, Debug, Default)]
pub struct GetCheckpoint {
    /// The ledger entry of a stored checkpoint; 0 is the current head's.
    pub sequence: u64,
}

/// VerifyIntegrity.
#[derive(Clone, Debug, Default)]
pub struct VerifyIntegrity {
    /// Start the ledger walk at the checkpoint signed at this entry.
    pub from_checkpoint: Option<u64>,
    /// Checkpoints the caller kept, to be matched against the ledger.
    pub extra_checkpoints: Vec<Checkpoint>,
}

/// GetInclusionProof: what to prove, in the tree of which checkpoint.
#[derive(Clone, Debug)]
pub struct GetInclusionProof {
    /// The entry to prove.
    pub of: ProofOf,
    /// The sequence of a stored signed checkpoint; 0 is the newest one.
    pub tree_size: u64,
}

/// The ledger entry a proof is of.
#[derive(Clone, Debug)]
pub enum ProofOf {
    /// The entry that wrote this version or delete marker.
    Version {
        /// Its bucket.
        bucket: BucketName,
        /// Its key.
        key: ObjectKey,
        /// Its id (`null`: the key's current `null` version).
        version: VersionSelector,
    },
    /// The entry with this sequence.
    Entry(u64),
}

/// GetConsistencyProof: between the trees of two signed checkpoints.
#[derive(Clone, Copy, Debug, Default)]
pub struct GetConsistencyProof {
    /// The earlier checkpoint's sequence.
    pub old_size: u64,
    /// The later one's; 0 is the newest one.
    pub new_size: u64,
}

impl App {
    /// The signed checkpoint a proof is given against: the stored one at
    /// `size`, or the newest for 0 (a read: the proofs sign nothing; a
    /// caller who wants the head's asks GetCheckpoint first); it must sign a
    /// Merkle root.
    fn proof_checkpoint(&self, size: u64) -> Result<(Checkpoint, Digest), AppError> {
        let stored = match size {
            0 => self.store.last_checkpoint()?,
            size => self.store.checkpoint_at(size)?,
        };
        let checkpoint = stored.ok_or_else(|| {
            StoreError::InvalidArgument(match size {
                0 => "no checkpoint is signed yet: ask for one (GetCheckpoint) first".to_owned(),
                size => format!("no checkpoint was signed at ledger entry {size}: a proof is given against one"),
            })
        })?;
        let Some(root) = checkpoint.tree_root else {
            return Err(StoreError::InvalidArgument(format!(
                "the checkpoint at ledger entry {} was signed before the ledger's Merkle tree and names no root; \
                 ask against a later one",
                checkpoint.sequence
            ))
            .into());
        };
        Ok((checkpoint, root))
    }

    /// GetInclusionProof: an entry's audit path to a signed checkpoint's root.
    pub async fn inclusion_proof(
        &self,
        actor: &Actor,
        request: GetInclusionProof,
    ) -> Result<(InclusionProof, Checkpoint), AppError> {
        self.authorize(actor, Access::Audit)?;
        let (checkpoint, root) = self.proof_checkpoint(request.tree_size)?;
        let store = self.store.clone();
        let size = checkpoint.sequence;
        let proof = tokio::task::spawn_blocking(move || {
            let sequence = match request.of {
                ProofOf::Entry(sequence) => sequence,
                ProofOf::Version { bucket, key, version } => {
                    let id = match version {
                        VersionSelector::Id(id) => id,
                        VersionSelector::Null => store.head_object(&bucket, &key, Some(VersionSelector::Null))?.id,
                    };
                    let written = store.written_entry(&bucket, &key, id)?.ok_or_else(|| StoreError::NoSuchVersion {
                        bucket: bucket.to_string(),
                        key: key.to_string(),
                        version: version.to_string(),
                    })?;
                    if written > size {
                        return Err(StoreError::InvalidArgument(format!(
                            "the version was written at ledger entry {written}, after the checkpoint at {size}; \
                             ask against a later checkpoint"
                        )));
                    }
                    written
                }
            };
            let proof = store.inclusion_proof(sequence, size)?;
            // A damaged or rewritten stored node is named here, not left for
            // the caller's check to fail on.
            let leaf = wormbox_store::merkle::leaf_hash(&proof.entry);
            if !wormbox_store::merkle::verify_inclusion(proof.leaf_index, size, &leaf, &proof.path, &root) {
                return Err(StoreError::DataLoss {
                    what: format!(
                        "the stored Merkle tree does not lead from ledger entry {sequence} to the root the checkpoint \
                         at {size} signs: run `wormbox verify`"
                    ),
                });
            }
            Ok(proof)
        })
        .await
        .map_err(|e| StoreError::DataLoss { what: format!("the proof stopped: {e}") })??;
        Ok((proof, checkpoint))
    }

    /// GetEntries: ledger entries `start..end` as stored bytes (sequence,
    /// canonical bytes, chain hash), at most `MAX_ENTRIES_PER_READ`.
    pub async fn entries(&self, actor: &Actor, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>, Digest)>, AppError> {
        self.authorize(actor, Access::Audit)?;
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || store.entry_bytes(start, end))
            .await
            .map_err(|e| StoreError::DataLoss { what: format!("reading entries stopped: {e}") })??)
    }

    /// GetTile: a tile or entry bundle of the ledger's tree, by its
    /// tlog-tiles path.
    pub async fn tile(&self, actor: &Actor, path: &str) -> Result<Vec<u8>, AppError> {
        self.authorize(actor, Access::Audit)?;
        let tile = wormbox_store::tiles::Tile::parse(path).map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || store.tile(tile))
            .await
            .map_err(|e| StoreError::DataLoss { what: format!("reading a tile stopped: {e}") })??)
    }

    /// GetConsistencyProof: the proof that the later checkpoint's tree
    /// extends the earlier one's, with both checkpoints.
    pub async fn consistency_proof(
        &self,
        actor: &Actor,
        request: GetConsistencyProof,
    ) -> Result<(Vec<Digest>, Checkpoint, Checkpoint), AppError> {
        self.authorize(actor, Access::Audit)?;
        if request.old_size == 0 {
            return Err(StoreError::InvalidArgument("old_size names the earlier checkpoint's sequence".into()).into());
        }
        let (old, old_root) = self.proof_checkpoint(request.old_size)?;
        let (new, new_root) = self.proof_checkpoint(request.new_size)?;
        let store = self.store.clone();
        let (first, second) = (old.sequence, new.sequence);
        let roots = (old_root, new_root);
        let proof = tokio::task::spawn_blocking(move || {
            let proof = store.consistency_proof(first, second)?;
            if !wormbox_store::merkle::verify_consistency(first, second, &roots.0, &roots.1, &proof) {
                return Err(StoreError::DataLoss {
                    what: format!(
                        "the stored Merkle tree does not link the roots signed at {first} and {second}: run `wormbox \
                         verify`"
                    ),
                });
            }
            Ok(proof)
        })
        .await
        .map_err(|e| StoreError::DataLoss { what: format!("the proof stopped: {e}") })??;
        Ok((proof, old, new))
    }

    /// GetCheckpoint: of the current head (signed now unless one exists), or
    /// the stored one at `sequence`.
    pub async fn checkpoint(&self, actor: &Actor, request: GetCheckpoint) -> Result<Checkpoint, AppError> {
        self.authorize(actor, Access::Metadata)?;
        let sequence = request.sequence;
        if sequence == 0 {
            return Ok(self.store.checkpoint().await?);
        }
        let stored = self.store.checkpoint_at(sequence)?;
        Ok(stored.ok_or_else(|| {
            StoreError::InvalidArgument(format!("no checkpoint was signed at ledger entry {sequence}"))
        })?)
    }

    /// VerifyIntegrity: checks everything and records the result in the ledger.
    pub async fn verify_integrity(
        &self,
        actor: &Actor,
        request: VerifyIntegrity,
    ) -> Result<(IntegrityReport, u64), AppError> {
        self.authorize(actor, Access::Audit)?;
        let VerifyIntegrity { from_checkpoint, extra_checkpoints } = request;
        let store = self.store.clone();
        let public_key = self.public_key().to_vec();
        // Released versions are checked through their replica, like GetObject reads them.
        let mut replica = std::sync::Arc::clone(&self.replication).replica_reader(tokio::runtime::Handle::current());
        let report = tokio::task::spawn_blocking(move || {
            let options = VerifyOptions {
                witness_forks: true,
                replica: Some(&mut replica),
                public_key: Some(public_key),
                from_checkpoint,
                extra_checkpoints,
                ..VerifyOptions::default()
            };
            store.verify_integrity(options)
        })
        .await
        .map_err(|e| StoreError::DataLoss { what: format!("the integrity check stopped: {e}") })??;
        let sequence = self.store.record_integrity(actor, &report).await?;
        Ok((report, sequence))
    }
}
