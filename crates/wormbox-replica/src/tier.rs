//! The capacity tier: a rule with `tier_after_days` releases the local bytes
//! of versions older than that (by the compliance clock) whose replica copy
//! the replicator recorded, so an appliance holds more than its disk.
//!
//! Invariant: local bytes are released only after the replica copy was
//! verified in this pass (read back whole: size and SHA-256 equal to the
//! version record, which the ledger attests; a lock at least the source's;
//! the same legal hold), and only by the appliance itself (`Actor::system`,
//! through `Store::release_bytes`, whose write re-checks that the version
//! exists, is still local, and that the copy verified is the one recorded).
//! A copy that does not verify keeps its version's bytes local and is
//! named in the pass's report and a warning; a replica that does not answer
//! ends the pass with nothing released after it. Reads of a released
//! version are the server's (`wormbox-app`'s `tier.rs`), checked the same way before a
//! byte is sent.

use std::time::Duration;

use wormbox_model::{BucketName, ObjectKey, VersionId};
use wormbox_store::{Actor, Store, StoreError, VersionInfo};

use crate::replicator::ReplicaError;
use crate::rule::Rule;
use crate::target::Target;
use crate::verify::{self, Divergence};

/// How many recorded copies are read from the store at a time.
const PAGE: usize = 256;

/// What one tiering pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TierReport {
    /// Recorded copies looked at (delete markers included).
    pub examined: u64,
    /// Versions whose local bytes this pass released.
    pub released: u64,
    /// Their bytes.
    pub bytes_released: u64,
    /// Copies that did not verify: their versions' bytes stay local.
    pub refused: Vec<Divergence>,
}

/// One pass of rule `rule`'s tier over every copy its replicator recorded:
/// releases the local bytes of each version at least `after` old (by the
/// compliance clock) whose copy verifies now. A version that another of
/// `others` (the appliance's other rules) covers but has not copied yet
/// keeps its bytes: that rule's replicator still reads them.
pub async fn pass<T: Target + ?Sized>(
    store: &Store,
    rule: &Rule,
    target: &T,
    after: Duration,
    others: &[Rule],
) -> Result<TierReport, ReplicaError> {
    let now = store.clock_status().await?.compliance;
    let old_enough = |info: &VersionInfo| {
        let age = now.0.saturating_sub(info.created_at.0);
        u128::try_from(age).unwrap_or(0) >= after.as_micros()
    };
    let mut report = TierReport::default();
    let mut from: Option<(BucketName, ObjectKey, VersionId)> = None;
    loop {
        let (s, name, start) = (store.clone(), rule.name.clone(), from.clone());
        let page = tokio::task::spawn_blocking(move || {
            s.replica_copies(&name, start.as_ref().map(|(b, k, id)| (b, k, *id)), PAGE)
        })
        .await
        .map_err(|e| StoreError::DataLoss { what: format!("reading the recorded copies failed: {e}") })??;
        let Some((b, k, id, _)) = page.last() else { break };
        from = Some((b.clone(), k.clone(), *id));
        let full = page.len() == PAGE;
        for (bucket, key, id, replica_id) in page {
            report.examined += 1;
            let info = match store.read_version(&bucket, &key, id) {
                Ok(info) => info,
                // A marker has no bytes; a purged version none left.
                Err(
                    StoreError::VersionIsDeleteMarker { .. }
                    | StoreError::NoSuchVersion { .. }
                    | StoreError::NoSuchBucket { .. },
                ) => continue,
                Err(err) => return Err(err.into()),
            };
            if info.size == 0 || !old_enough(&info) || store.bytes_at(&bucket, &key, id)?.is_some() {
                continue;
            }
            let mut uncopied = false;
            for other in others.iter().filter(|o| o.name != rule.name && o.covers(bucket.as_str(), key.as_str())) {
                uncopied |= store.replica_version(&other.name, &bucket, &key, id)?.is_none();
            }
            if uncopied {
                continue;
            }
            if let Some(divergence) = verify::verify_version(store, rule, target, (&bucket, &key, id), &info).await? {
                tracing::warn!(
                    rule = %rule.name,
                    %divergence,
                    "a replica copy did not verify: the version's bytes stay local"
                );
                report.refused.push(divergence);
                continue;
            }
            match store.release_bytes(&Actor::system(), &rule.name, bucket, key, id, replica_id).await {
                Ok(_) => {
                    report.released += 1;
                    report.bytes_released += info.size;
                }
                // Purged, or released by a concurrent pass, since it was read.
                Err(StoreError::NoSuchVersion { .. } | StoreError::InvalidArgument(_)) => {}
                Err(err) => return Err(err.into()),
            }
        }
        if !full {
            break;
        }
    }
    Ok(report)
}
