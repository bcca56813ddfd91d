//! The capacity tier beside the replicators: each rule with `tier_after_days` runs
//! its tier pass (`wormbox_replica::tier::pass`) beside its replicator, every
//! `TIER_EVERY` and on demand (`Replication::tier_now`), and a released
//! version's bytes are read back from the rule's replica (`spool`).
//!
//! Invariant: a released version's bytes are spooled whole from the replica
//! into a file under `<data_dir>/tier-spool/` (unlinked at once, so nothing
//! outlives its reader, and memory does not grow with the version) while
//! they are hashed; the caller compares size and SHA-256 with the version
//! record, which the ledger attests, before it sends a single byte
//! (`app/tier.rs`). A replica that does not answer is `Unavailable`, a copy
//! it does not have `Missing`: never mistaken for each other. A copy longer
//! than the version is `Missing` as soon as it passes the version's size,
//! so a replica that streams without end cannot fill the data directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use wormbox_model::Digest;
use wormbox_replica::{Target, TargetError};
use wormbox_store::BytesAt;

/// How often a rule's tier pass runs on its own.
pub(crate) const TIER_EVERY: Duration = Duration::from_secs(3600);

/// Where released versions' bytes are spooled, under the data directory.
pub const SPOOL_DIR: &str = "tier-spool";

/// Why a released version's bytes could not be read from its replica.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The replica did not answer (or the rule is not configured any more).
    #[error("replication rule `{rule}`'s replica cannot be read now: {why}")]
    Unavailable {
        /// The rule.
        rule: String,
        /// What happened.
        why: String,
    },
    /// The replica has no such version, or refuses it.
    #[error("replication rule `{rule}`'s replica has no readable version {replica_id}: {why}")]
    Missing {
        /// The rule.
        rule: String,
        /// The replica's version id.
        replica_id: String,
        /// What it said.
        why: String,
    },
    /// The spool file could not be written.
    #[error("spooling a replica's bytes under {path}: {source}")]
    Io {
        /// The spool directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// A released version's bytes, spooled: the file (rewound), their size
/// and SHA-256 as read.
#[derive(Debug)]
pub struct Spooled {
    /// The bytes, from the start; the file has no name left.
    pub file: std::fs::File,
    /// How many bytes the replica sent.
    pub size: u64,
    /// Their SHA-256.
    pub sha256: Digest,
}

/// Empties the spool directory left by an earlier run (files unlinked at
/// once leave nothing but those of a crash between create and unlink).
pub fn clear_spool(data_dir: &Path) {
    let dir = data_dir.join(SPOOL_DIR);
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

static SPOOLED: AtomicU64 = AtomicU64::new(0);

/// Reads `at`'s replica version of `key` through `client` (the client of
/// `at`'s rule, `None` when no such rule is configured) into a spool file
/// under `data_dir`, hashing it as it streams.
pub async fn spool(
    client: Option<&dyn Target>,
    data_dir: &Path,
    at: &BytesAt,
    key: &str,
    size_written: u64,
) -> Result<Spooled, SpoolError> {
    let rule = at.rule.clone();
    let Some(client) = client else {
        return Err(SpoolError::Unavailable { rule, why: "this appliance has no such replication rule now".into() });
    };
    let body = match client.get(key, &at.replica_id).await {
        Ok(Some(body)) => body,
        Ok(None) => {
            let why = "no such version (or it is a delete marker)".to_owned();
            return Err(SpoolError::Missing { rule, replica_id: at.replica_id.clone(), why });
        }
        Err(TargetError::Refused { code, message }) => {
            let why = format!("{code}: {message}");
            return Err(SpoolError::Missing { rule, replica_id: at.replica_id.clone(), why });
        }
        Err(TargetError::Unavailable(why)) => return Err(SpoolError::Unavailable { rule, why }),
    };
    let dir = data_dir.join(SPOOL_DIR);
    let io = |source| SpoolError::Io { path: dir.clone(), source };
    tokio::fs::create_dir_all(&dir).await.map_err(io)?;
    let name = dir.join(format!("{}-{}", std::process::id(), SPOOLED.fetch_add(1, Ordering::Relaxed)));
    let mut file =
        tokio::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&name).await.map_err(io)?;
    tokio::fs::remove_file(&name).await.map_err(io)?;
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    let mut size = 0u64;
    let mut body = body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| SpoolError::Unavailable { rule: rule.clone(), why: e.to_string() })?;
        size += chunk.len() as u64;
        if size > size_written {
            let why = format!("the copy is longer than the {size_written} bytes written");
            return Err(SpoolError::Missing { rule, replica_id: at.replica_id.clone(), why });
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    let mut file = file.into_std().await;
    std::io::Seek::rewind(&mut file).map_err(io)?;
    let sha256 = Digest::from_slice(hasher.finish().as_ref()).expect("SHA-256 yields 32 bytes");
    Ok(Spooled { file, size, sha256 })
}

#[cfg(test)]
mod tests {
    use wormbox_replica::target::Call;
    use wormbox_replica::{Body, BucketState, Lock, PutSpec, ReplicaHead};

    use super::*;

    /// A replica whose one copy streams `chunks` of 1 KiB without end (or
    /// `Some(n)` of them): what a lying or broken cluster could serve.
    struct Streaming(Option<usize>);

    impl Target for Streaming {
        fn get(&self, _: &str, _: &str) -> Call<'_, Option<Body>> {
            let chunk = || Ok(vec![b'x'; 1024].into());
            let body: Body = match self.0 {
                Some(n) => Box::pin(futures::stream::iter((0..n).map(move |_| chunk()))),
                None => Box::pin(futures::stream::repeat_with(chunk)),
            };
            Box::pin(async move { Ok(Some(body)) })
        }
        fn bucket_state(&self) -> Call<'_, BucketState> {
            unreachable!("the spool only reads")
        }
        fn put(&self, _: &str, _: Body, _: PutSpec) -> Call<'_, String> {
            unreachable!("the spool only reads")
        }
        fn versions_of(&self, _: &str) -> Call<'_, Vec<ReplicaHead>> {
            unreachable!("the spool only reads")
        }
        fn keys(&self, _: &str) -> Call<'_, Vec<String>> {
            unreachable!("the spool only reads")
        }
        fn head(&self, _: &str, _: &str) -> Call<'_, Option<ReplicaHead>> {
            unreachable!("the spool only reads")
        }
        fn set_retention(&self, _: &str, _: &str, _: Lock) -> Call<'_, ()> {
            unreachable!("the spool only reads")
        }
        fn set_legal_hold(&self, _: &str, _: &str, _: bool) -> Call<'_, ()> {
            unreachable!("the spool only reads")
        }
        fn delete_marker(&self, _: &str) -> Call<'_, String> {
            unreachable!("the spool only reads")
        }
        fn delete_version(&self, _: &str, _: &str) -> Call<'_, ()> {
            unreachable!("the spool only reads")
        }
    }

    /// A copy that streams past the version's size stops the spool there,
    /// as a missing copy, and leaves nothing on disk; one of the right size
    /// is spooled whole.
    #[tokio::test]
    async fn a_replica_that_streams_without_end_cannot_fill_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let at = BytesAt { rule: "dr".into(), replica_id: "v1".into() };
        let endless = spool(Some(&Streaming(None)), dir.path(), &at, "k", 4096).await;
        assert!(
            matches!(&endless, Err(SpoolError::Missing { why, .. }) if why.contains("longer than the 4096 bytes")),
            "{endless:?}"
        );
        let whole = spool(Some(&Streaming(Some(4))), dir.path(), &at, "k", 4096).await.unwrap();
        assert_eq!(whole.size, 4096);
        let left: Vec<_> = std::fs::read_dir(dir.path().join(SPOOL_DIR)).unwrap().collect();
        assert!(left.is_empty(), "spool files are unlinked at once: {left:?}");
    }
}
