//! `AppUpload`: a streamed upload as async front ends hold it. Its backend
//! work (chunk writes, the seal of the last chunk) runs on blocking threads
//! inside, so an async caller has only async methods to call and cannot
//! block the runtime with it; bytes that stay in memory (an object smaller
//! than a chunk, at most 64 KiB a call) are taken in place, since taking
//! them does no IO.
//!
//! Invariant (ARCHITECTURE.md, PutObject): only the writer discards an
//! upload's chunks; dropping one unpublished hands the writer its discard (a
//! queue send, which does not block). While a write runs, the upload is on
//! the blocking thread: a caller cancelled then leaves it to be dropped
//! there, and this handle is spent (every later call fails). Nothing here
//! hands a publish over but `finish`. An upload a sync replication rule
//! covers is answered once the replica holds it (`Replication::confirm`),
//! after the publish, which stands whatever the replica does.

use std::sync::Arc;

use wormbox_model::{BucketName, Digest, ObjectKey};
use wormbox_store::{Actor, StoreError, Upload, WriteAck};

use crate::AppError;
use crate::replicas::Replication;

/// Where a sync rule's upload waits for its replica copy.
type SyncWait = (Arc<Replication>, BucketName, ObjectKey);

/// An upload in progress, handed out by `App::begin_upload`.
#[derive(Debug)]
pub struct AppUpload(Option<Upload>, Option<SyncWait>);

const LOST: &str = "the upload was lost";

/// The most bytes one `write` takes on the caller's thread (hashing them
/// there takes some tens of microseconds); larger writes go to a blocking
/// thread even while the object still fits in memory.
const IN_PLACE_BYTES: usize = 64 << 10;

impl AppUpload {
    pub(crate) fn new(upload: Upload, sync: Option<SyncWait>) -> AppUpload {
        AppUpload(Some(upload), sync)
    }

    /// Appends bytes; full chunks go to the backend (not yet synced, not yet
    /// visible). Any owned bytes (a `Vec`, or a front door's `Bytes` passed
    /// on as received).
    ///
    /// Bytes of an object smaller than a chunk stay in memory until the
    /// publish (which carries them inline), so they are taken on the
    /// caller's thread, up to `IN_PLACE_BYTES` a call: a small PutObject
    /// then makes no trip to a blocking thread and back.
    pub async fn write(&mut self, data: impl AsRef<[u8]> + Send + 'static) -> Result<(), AppError> {
        let len = data.as_ref().len();
        if len <= IN_PLACE_BYTES && self.get()?.writes_in_memory(len) {
            let upload = self.0.as_mut().ok_or_else(|| AppError::Internal(LOST.to_owned()))?;
            return Ok(upload.write(data.as_ref())?);
        }
        self.run(move |upload| upload.write(data.as_ref())).await
    }

    /// The bytes received so far.
    pub fn size(&self) -> Result<u64, AppError> {
        Ok(self.get()?.size())
    }

    /// The SHA-256 of the bytes received so far, for a digest the client
    /// states after the body.
    pub fn sha256(&self) -> Result<Digest, AppError> {
        Ok(self.get()?.sha256())
    }

    /// Sets the S3 ETag stored with the version (`NewObject::etag`), which
    /// a front door computing it while the bytes pass knows only at the
    /// end: call it before `finish`. A malformed one is refused
    /// (`InvalidArgument`) and changes nothing. Does not block.
    pub fn set_etag(&mut self, etag: String) -> Result<(), AppError> {
        Ok(self.0.as_mut().ok_or_else(|| AppError::Internal(LOST.to_owned()))?.set_etag(etag)?)
    }

    /// Checks the digest and publishes the version durably, as `actor`. The
    /// last partial chunk is written on a blocking thread first; on any
    /// error nothing is published and the chunks are discarded. Cancelled
    /// after the publish was queued, the version may still be published,
    /// whole. `stored` is called once the publish is answered (stored or
    /// refused), before a sync rule's wait: a front end returns what it
    /// reserved for the upload there, so that a wait for the replica holds
    /// none of it. Under a sync rule it then waits for the replica's copy:
    /// `ReplicaPending` if not confirmed in time (the version stands).
    pub async fn finish(mut self, actor: &Actor, stored: impl FnOnce()) -> Result<WriteAck, AppError> {
        if self.get()?.needs_seal() {
            self.run(Upload::seal).await?;
        }
        let upload = self.0.take().ok_or_else(|| AppError::Internal(LOST.to_owned()))?;
        let ack = upload.finish(actor).await;
        stored();
        let ack = ack?;
        if let Some((replication, bucket, key)) = self.1.take() {
            let what = || format!("version {} of `{bucket}/{key}`", ack.version_id);
            replication.confirm(&bucket, key.as_str(), ack.ledger_sequence, what, &ack.version_id).await?;
        }
        Ok(ack)
    }

    /// Runs `work` on the upload, on a blocking thread.
    async fn run<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut Upload) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, AppError> {
        let mut upload = self.0.take().ok_or_else(|| AppError::Internal(LOST.to_owned()))?;
        let (upload, res) = tokio::task::spawn_blocking(move || {
            let res = work(&mut upload);
            (upload, res)
        })
        .await
        .map_err(|e| AppError::Internal(format!("a blocking task failed: {e}")))?;
        self.0 = Some(upload);
        Ok(res?)
    }

    fn get(&self) -> Result<&Upload, AppError> {
        self.0.as_ref().ok_or_else(|| AppError::Internal(LOST.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use wormbox_model::{Clock, ManualClock, Role, Timestamp};
    use wormbox_store::backend::MemBackend;
    use wormbox_store::{NewObject, Store, StoreOptions};

    use super::*;

    /// The S3 front door learns the ETag only when the body has passed: set
    /// then, it is stored with the version; a malformed one is refused and
    /// the upload goes on unharmed.
    #[tokio::test]
    async fn an_etag_set_before_finish_is_stored_and_a_malformed_one_refused() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
        let store = Store::open(Arc::new(MemBackend::new()), clock, StoreOptions::default()).unwrap();
        let actor = Actor { access_key: "WBOWNER00000000000".to_owned(), role: Role::Writer };
        let bucket = BucketName::new("bucket").unwrap();
        store.create_bucket(&actor, bucket.clone()).await.unwrap();
        let key = ObjectKey::new("k").unwrap();
        let upload = store.begin_upload(bucket.clone(), key.clone(), NewObject::default()).unwrap();
        let mut upload = AppUpload::new(upload, None);
        upload.write(b"hello".to_vec()).await.unwrap();
        let refused = upload.set_etag("\"5d41402abc4b2a76b9719d911017c592\"".to_owned());
        assert!(matches!(refused, Err(AppError::Store(StoreError::InvalidArgument(_)))), "{refused:?}");
        upload.set_etag("5d41402abc4b2a76b9719d911017c592".to_owned()).unwrap();
        upload.finish(&actor, || ()).await.unwrap();
        let head = store.head_object(&bucket, &key, None).unwrap();
        assert_eq!(head.etag.as_deref(), Some("5d41402abc4b2a76b9719d911017c592"));
    }

    /// A small object's bytes stay in memory until the publish carries
    /// them, so a small PutObject is taken and published with no trip to a
    /// blocking thread: here it completes while the runtime's only blocking
    /// thread is held, where a write that fills a chunk waits for it.
    #[test]
    fn a_small_upload_is_published_without_a_blocking_thread() {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().max_blocking_threads(1).build().unwrap();
        runtime.block_on(async {
            let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp(1_795_737_600_000_000)));
            let store = Store::open(Arc::new(MemBackend::new()), clock, StoreOptions::default()).unwrap();
            let actor = Actor { access_key: "WBOWNER00000000000".to_owned(), role: Role::Writer };
            let bucket = BucketName::new("bucket").unwrap();
            store.create_bucket(&actor, bucket.clone()).await.unwrap();
            let begin = |key: &str| {
                let upload = store.begin_upload(bucket.clone(), ObjectKey::new(key).unwrap(), NewObject::default());
                AppUpload::new(upload.unwrap(), None)
            };
            let (release, held) = std::sync::mpsc::channel::<()>();
            let busy = tokio::task::spawn_blocking(move || held.recv());

            // Bounded, so that a regression fails instead of hanging.
            let small = async {
                let mut small = begin("small");
                small.write(vec![7u8; 40 << 10]).await.unwrap();
                small.write(vec![8u8; 24 << 10]).await.unwrap();
                small.finish(&actor, || ()).await.unwrap()
            };
            let ack = tokio::time::timeout(std::time::Duration::from_secs(30), small)
                .await
                .expect("a small upload waited for a blocking thread");
            assert_eq!(ack.size, 64 << 10);

            let mut big = begin("big");
            {
                let write = big.write(vec![1u8; wormbox_store::CHUNK_BYTES]);
                futures::pin_mut!(write);
                for _ in 0..100 {
                    assert!(futures::poll!(&mut write).is_pending(), "a chunk write waits for a blocking thread");
                    tokio::task::yield_now().await;
                }
                release.send(()).unwrap();
                write.await.unwrap();
            }
            busy.await.unwrap().unwrap();
            assert_eq!(big.finish(&actor, || ()).await.unwrap().size, wormbox_store::CHUNK_BYTES as u64);
        });
    }
}
