//! Restoring an archive from its replicas alone (`wormboxd restore
//! --from-replica`): the signed ledger ranges and checkpoints under
//! `.wormbox/` are replayed into an empty archive (`wormbox_store::rebuild`),
//! then every version the replayed ledger holds is copied back from the
//! replica of the rule that covers it.
//!
//! Invariants:
//! - The ledger comes only from ranges that chain, entry by entry, into a
//!   checkpoint signed with the appliance's key; it ends at the newest such
//!   checkpoint. Entries after it were never sealed on the replica and are
//!   not restored (the caller says so, and refuses a published checkpoint
//!   beyond it).
//! - A version's bytes are taken only from a replica version whose
//!   `wormbox-version-id` names it, and only if they hash to the SHA-256 the
//!   ledger wrote; a version no replica holds stops the restore.
//! - Evidence objects are written once; should a replica hold more than one
//!   version of one (written by someone else), the oldest is read, and a
//!   forged one cannot verify anyway.

use std::sync::Arc;

use futures::StreamExt;
use wormbox_model::{Timestamp, UserMetadata};
use wormbox_reports::CheckpointFile;
use wormbox_store::rebuild::{LiveVersion, Rebuild, RebuildError};

use crate::layout::{self, META_CONTENT_TYPE, META_ETAG, META_VERSION, NO_CONTENT_TYPE};
use crate::rule::Rule;
use crate::target::{ReplicaHead, Target, TargetError};

/// One rule's replica, as the restore reads it.
#[derive(Clone)]
pub struct Source {
    /// The rule (what it covers).
    pub rule: Rule,
    /// Its replica.
    pub target: Arc<dyn Target>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("rule", &self.rule.name).finish()
    }
}

/// Why a restore from replicas stopped.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// A replica could not be read.
    #[error("replica of rule `{rule}`: {source}")]
    Target {
        /// The rule.
        rule: String,
        /// What failed.
        source: TargetError,
    },
    /// The replicas do not hold what a restore needs.
    #[error("{0}")]
    Evidence(String),
    /// What was read does not rebuild.
    #[error(transparent)]
    Rebuild(#[from] RebuildError),
}

/// What the ledger replay found.
#[derive(Clone, Debug)]
pub struct Replayed {
    /// The rule whose replica held the newest checkpoint, whose evidence was read.
    pub rule: String,
    /// That checkpoint's sequence: the restored ledger ends there.
    pub through: u64,
    /// When it was signed.
    pub signed_at: Timestamp,
    /// Signed checkpoints replayed.
    pub checkpoints: usize,
}

fn target_error(rule: &Rule) -> impl Fn(TargetError) -> RestoreError + '_ {
    move |source| RestoreError::Target { rule: rule.name.clone(), source }
}

/// Replays the ledger of the replica holding the newest signed checkpoint.
pub async fn replay_ledger(sources: &[Source], rebuild: &mut Rebuild) -> Result<Replayed, RestoreError> {
    let mut best: Option<(&Source, Vec<u64>)> = None;
    for source in sources {
        let names = source.target.keys(&format!("{}checkpoints/", layout::EVIDENCE_PREFIX)).await;
        let mut sequences: Vec<u64> =
            names.map_err(target_error(&source.rule))?.iter().filter_map(|n| layout::checkpoint_sequence(n)).collect();
        sequences.sort_unstable();
        sequences.dedup();
        if sequences.last() > best.as_ref().and_then(|(_, s)| s.last()) {
            best = Some((source, sequences));
        }
    }
    let Some((source, sequences)) = best else {
        return Err(RestoreError::Evidence(
            "no replica holds a signed checkpoint: nothing proves what the appliance held".to_owned(),
        ));
    };
    let mut replayed =
        Replayed { rule: source.rule.name.clone(), through: 0, signed_at: Timestamp::EPOCH, checkpoints: 0 };
    for sequence in sequences {
        if sequence > replayed.through {
            let name = layout::ledger_key(replayed.through + 1, sequence);
            let raw = read_evidence(source, &name).await?;
            let entries = layout::decode_range(&raw).map_err(|why| RestoreError::Evidence(format!("{name}: {why}")))?;
            for (entry, hash) in entries {
                rebuild.entry(&entry, &hash)?;
            }
        }
        let name = layout::checkpoint_key(sequence);
        let raw = read_evidence(source, &name).await?;
        let file: CheckpointFile =
            serde_json::from_slice(&raw).map_err(|e| RestoreError::Evidence(format!("{name}: {e}")))?;
        let checkpoint = file.checkpoint().map_err(|why| RestoreError::Evidence(format!("{name}: {why}")))?;
        if checkpoint.sequence != sequence {
            return Err(RestoreError::Evidence(format!("{name} holds checkpoint {}", checkpoint.sequence)));
        }
        replayed.signed_at = checkpoint.time;
        rebuild.checkpoint(checkpoint)?;
        replayed.through = sequence;
        replayed.checkpoints += 1;
    }
    Ok(replayed)
}

/// Copies back the bytes of every version the replayed ledger holds;
/// answers how many versions and bytes.
pub async fn copy_versions(sources: &[Source], rebuild: &mut Rebuild) -> Result<(u64, u64), RestoreError> {
    let (mut versions, mut bytes) = (0, 0);
    let mut listed: Option<(usize, String, Vec<ReplicaHead>)> = None;
    for wanted in rebuild.wanted() {
        let wanted_id = wanted.id.to_string();
        let mut found = None;
        for (at, source) in sources.iter().enumerate() {
            if !source.rule.covers(&wanted.bucket, &wanted.key) {
                continue;
            }
            let fresh = !matches!(&listed, Some((a, k, _)) if *a == at && *k == wanted.key);
            if fresh {
                let heads = source.target.versions_of(&wanted.key).await.map_err(target_error(&source.rule))?;
                listed = Some((at, wanted.key.clone(), heads));
            }
            let heads = listed.as_ref().map(|(_, _, h)| h.as_slice()).unwrap_or_default();
            let head = heads
                .iter()
                .find(|h| !h.is_delete_marker && h.metadata.iter().any(|(n, v)| n == META_VERSION && *v == wanted_id));
            if let Some(head) = head {
                found = Some((source, head.clone()));
                break;
            }
        }
        let Some((source, head)) = found else {
            return Err(RestoreError::Evidence(format!(
                "{}/{} version {wanted_id} is on no replica: no rule covers it, or its copy is gone",
                wanted.bucket, wanted.key
            )));
        };
        copy_one(source, &head, &wanted, rebuild).await?;
        versions += 1;
        bytes += wanted.size;
    }
    Ok((versions, bytes))
}

async fn copy_one(
    source: &Source,
    head: &ReplicaHead,
    wanted: &LiveVersion,
    rebuild: &mut Rebuild,
) -> Result<(), RestoreError> {
    let gone = || {
        RestoreError::Evidence(format!(
            "{}/{}: replica version {} vanished while it was read",
            wanted.bucket, wanted.key, head.version_id
        ))
    };
    let mut body =
        source.target.get(&wanted.key, &head.version_id).await.map_err(target_error(&source.rule))?.ok_or_else(gone)?;
    let mut sink = rebuild.bytes(wanted)?;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| RestoreError::Target {
            rule: source.rule.name.clone(),
            source: TargetError::Unavailable(e.to_string()),
        })?;
        sink.write(&chunk)?;
    }
    let metadata = layout::user_metadata_of(&head.metadata)
        .and_then(UserMetadata::stored)
        .map_err(|why| RestoreError::Evidence(format!("{}/{}: its metadata: {why}", wanted.bucket, wanted.key)))?;
    let no_type = head.metadata.iter().any(|(n, v)| n == META_CONTENT_TYPE && v == NO_CONTENT_TYPE);
    let content_type = if no_type { String::new() } else { head.content_type.clone() };
    let etag = head.metadata.iter().find(|(n, _)| n == META_ETAG).map(|(_, v)| v.clone());
    sink.finish(content_type, metadata, etag, &source.rule.name, &head.version_id)?;
    Ok(())
}

/// An evidence object's bytes: its oldest version (see the module doc).
async fn read_evidence(source: &Source, name: &str) -> Result<Vec<u8>, RestoreError> {
    let missing = || RestoreError::Evidence(format!("the replica of rule `{}` lacks {name}", source.rule.name));
    let heads = source.target.versions_of(name).await.map_err(target_error(&source.rule))?;
    let oldest = heads.iter().rev().find(|h| !h.is_delete_marker).ok_or_else(missing)?;
    let mut body =
        source.target.get(name, &oldest.version_id).await.map_err(target_error(&source.rule))?.ok_or_else(missing)?;
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| RestoreError::Target {
            rule: source.rule.name.clone(),
            source: TargetError::Unavailable(e.to_string()),
        })?;
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
