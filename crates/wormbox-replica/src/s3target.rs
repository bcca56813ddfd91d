//! `S3Client` as the replicator's `Target`: the S3 calls replication makes,
//! and which of S3's answers are refusals (the same call would be refused
//! again) rather than outages.
//!
//! Invariant: only a definite answer of the server is `Refused` (a 4xx other
//! than a timeout or a throttle); everything else, including a request that
//! may have reached the server, is `Unavailable`, so the write is in doubt.

use futures::StreamExt;
use wormbox_store::retention::RetentionMode;

use crate::client::S3Client;
use crate::error::S3Error;
use crate::target::{Body, BucketState, Call, Lock, PutSpec, ReplicaHead, Target, TargetError};
use crate::types::{EntryKind, LockMode, PutObject, RetentionPeriod, VersioningStatus};

/// The most versions of one key looked through for a write in doubt.
const MAX_VERSIONS_SEARCHED: usize = 1000;

fn target_error(err: S3Error) -> TargetError {
    match (&err, err.service()) {
        (_, Some(service)) if (400..500).contains(&service.status) && !matches!(service.status, 408 | 429) => {
            TargetError::Refused { code: service.code.clone(), message: service.message.clone() }
        }
        // Nothing was sent: the same request would be refused again.
        (S3Error::Invalid(why) | S3Error::Config(why), _) => {
            TargetError::Refused { code: "InvalidRequest".to_owned(), message: why.clone() }
        }
        _ => TargetError::Unavailable(err.to_string()),
    }
}

fn mode_of(mode: LockMode) -> RetentionMode {
    match mode {
        LockMode::Compliance => RetentionMode::Compliance,
        LockMode::Governance => RetentionMode::Governance,
    }
}

fn lock_mode(mode: RetentionMode) -> LockMode {
    match mode {
        RetentionMode::Compliance => LockMode::Compliance,
        RetentionMode::Governance => LockMode::Governance,
    }
}

impl S3Client {
    async fn replica_head(&self, key: &str, version_id: &str) -> Result<Option<ReplicaHead>, TargetError> {
        match self.head_object(key, Some(version_id)).await {
            Ok(head) => Ok(Some(ReplicaHead {
                version_id: head.version_id.unwrap_or_else(|| version_id.to_owned()),
                is_delete_marker: false,
                size: head.size,
                content_type: head.content_type.unwrap_or_default(),
                metadata: head.metadata,
                lock: head.lock.map(|(mode, until)| Lock { mode: mode_of(mode), until }),
                legal_hold: head.legal_hold,
            })),
            Err(err) if err.status() == Some(404) => Ok(None),
            // A HEAD of a delete marker answers 405 Method Not Allowed.
            Err(err) if err.status() == Some(405) => Ok(None),
            Err(err) => Err(target_error(err)),
        }
    }
}

impl Target for S3Client {
    fn bucket_state(&self) -> Call<'_, BucketState> {
        Box::pin(async move {
            let lock = self.bucket_lock_configuration().await.map_err(target_error)?;
            let versioning = self.bucket_versioning().await.map_err(target_error)?;
            let default_retention = lock.default_retention.map(|d| {
                let days = match d.period {
                    RetentionPeriod::Days(days) => days,
                    RetentionPeriod::Years(years) => years.saturating_mul(365),
                };
                (mode_of(d.mode), days)
            });
            Ok(BucketState {
                object_lock: lock.enabled,
                default_retention,
                versioned: versioning.status == VersioningStatus::Enabled,
            })
        })
    }

    fn put(&self, key: &str, body: Body, spec: PutSpec) -> Call<'_, String> {
        let key = key.to_owned();
        Box::pin(async move {
            let put = PutObject {
                content_length: spec.size,
                sha256: spec.sha256,
                content_type: (!spec.content_type.is_empty()).then_some(spec.content_type),
                metadata: spec.metadata,
                lock: spec.lock.map(|l| (lock_mode(l.mode), l.until)),
                legal_hold: spec.legal_hold,
                checksum: true,
            };
            let outcome = self.put_object(&key, body, put).await.map_err(target_error)?;
            outcome.version_id.ok_or_else(|| TargetError::Refused {
                code: "NotVersioned".to_owned(),
                message: "the replica bucket gave the new object no version id".to_owned(),
            })
        })
    }

    fn versions_of(&self, key: &str) -> Call<'_, Vec<ReplicaHead>> {
        let key = key.to_owned();
        Box::pin(async move {
            let mut out = Vec::new();
            let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
            loop {
                let page = self
                    .list_object_versions(Some(&key), key_marker.as_deref(), version_marker.as_deref(), 1000)
                    .await
                    .map_err(target_error)?;
                for entry in page.entries.iter().filter(|e| e.key == key) {
                    let head = match entry.kind {
                        EntryKind::DeleteMarker => Some(ReplicaHead {
                            version_id: entry.version_id.clone(),
                            is_delete_marker: true,
                            size: 0,
                            content_type: String::new(),
                            metadata: Vec::new(),
                            lock: None,
                            legal_hold: false,
                        }),
                        EntryKind::Version => self.replica_head(&key, &entry.version_id).await?,
                    };
                    out.extend(head);
                }
                // Keys after `key` under the same prefix sort after it: done.
                let past = page.entries.last().is_some_and(|e| e.key.as_str() > key.as_str());
                if !page.is_truncated || past || out.len() >= MAX_VERSIONS_SEARCHED {
                    return Ok(out);
                }
                key_marker = page.next_key_marker.clone();
                version_marker = page.next_version_id_marker.clone();
            }
        })
    }

    fn keys(&self, prefix: &str) -> Call<'_, Vec<String>> {
        let prefix = prefix.to_owned();
        Box::pin(async move {
            let mut out: Vec<String> = Vec::new();
            let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
            loop {
                let page = self
                    .list_object_versions(Some(&prefix), key_marker.as_deref(), version_marker.as_deref(), 1000)
                    .await
                    .map_err(target_error)?;
                for entry in &page.entries {
                    if out.last() != Some(&entry.key) {
                        out.push(entry.key.clone());
                    }
                }
                if !page.is_truncated {
                    return Ok(out);
                }
                key_marker = page.next_key_marker.clone();
                version_marker = page.next_version_id_marker.clone();
            }
        })
    }

    fn head(&self, key: &str, version_id: &str) -> Call<'_, Option<ReplicaHead>> {
        let (key, version_id) = (key.to_owned(), version_id.to_owned());
        Box::pin(async move { self.replica_head(&key, &version_id).await })
    }

    fn set_retention(&self, key: &str, version_id: &str, lock: Lock) -> Call<'_, ()> {
        let (key, version_id) = (key.to_owned(), version_id.to_owned());
        Box::pin(async move {
            self.put_object_retention(&key, Some(&version_id), lock_mode(lock.mode), lock.until, false)
                .await
                .map_err(target_error)
        })
    }

    fn set_legal_hold(&self, key: &str, version_id: &str, on: bool) -> Call<'_, ()> {
        let (key, version_id) = (key.to_owned(), version_id.to_owned());
        Box::pin(async move { self.put_object_legal_hold(&key, Some(&version_id), on).await.map_err(target_error) })
    }

    fn delete_marker(&self, key: &str) -> Call<'_, String> {
        let key = key.to_owned();
        Box::pin(async move {
            let outcome = self.delete_object(&key, None, None).await.map_err(target_error)?;
            outcome.version_id.ok_or_else(|| TargetError::Refused {
                code: "NotVersioned".to_owned(),
                message: "the replica bucket gave the delete marker no version id".to_owned(),
            })
        })
    }

    fn get(&self, key: &str, version_id: &str) -> Call<'_, Option<Body>> {
        let (key, version_id) = (key.to_owned(), version_id.to_owned());
        Box::pin(async move {
            match self.get_object(&key, Some(&version_id)).await {
                Ok(object) => {
                    let stream = object.into_stream().map(|chunk| chunk.map_err(std::io::Error::other));
                    Ok(Some(Box::pin(stream) as Body))
                }
                // 404: no such version; 405: a delete marker.
                Err(err) if matches!(err.status(), Some(404 | 405)) => Ok(None),
                Err(err) => Err(target_error(err)),
            }
        })
    }

    fn delete_version(&self, key: &str, version_id: &str) -> Call<'_, ()> {
        let (key, version_id) = (key.to_owned(), version_id.to_owned());
        Box::pin(
            async move { self.delete_object(&key, Some(&version_id), None).await.map(|_| ()).map_err(target_error) },
        )
    }
}
