//! `Store`: the user API of the archive.
//!
//! Invariant: reads go straight to the backend; every change goes through the
//! writer thread (`writer.rs`), except the chunks of an upload that is not yet
//! published, which nothing can see until the writer publishes them. Only the
//! writer (or the next open, if the writer stopped first) discards those
//! chunks: when it refuses their publish, when the publish's commit fails, or
//! when their `Upload` is dropped unpublished and hands them over to discard.

use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};

use ring::rand::SecureRandom;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use wormbox_model::{
    AccessKeyId, BucketName, Clock, ClockPolicy, ComplianceClock, Digest, ObjectKey, Role, Timestamp, VersionId,
    VersionSelector, VersioningState,
};

use crate::backend::{Backend, Batch, Durability, Keyspace};
use crate::codec::{self, BucketRecord, LockRecord, PrincipalRecord, VersionRecord};
use crate::evidence::{self, Checkpoint, IntegrityReport, Signer, VerifyOptions};
use crate::ledger::{self, ChainBreak, ChainWalker, LedgerEntry};
use crate::meta::BytesAt;
use crate::retention::{DefaultRetention, Retention};
use crate::view::View;
use crate::writer::{
    self, AcceptClockForward, ConfigureObjectLock, CreateBucket, CreatePrincipal, DeleteBucket, DeleteObject,
    DeleteObjects, DiscardUpload, Guardable, GuardedBy, Pending, PutVersion, ReadClock, RecordIntegrity,
    RecordReplication, RecordWitness, ReleaseBytes, Replicated, Request, RevokePrincipal, SetHold, SetRetention,
    SetS3Key, SetVersioning, SignCheckpoint, UpdateDevices, VersionData, WitnessOutcome, WriterOp, WriterState,
};
use crate::{
    Actor, BucketInfo, CHUNK_BYTES, ClockStatus, CodeCheck, DeleteEntry, DeleteOutcome, DeviceUpdate, EntryOutcome,
    Guarded, HoldChange, LedgerSummary, Lowering, MAX_DELETE_ENTRIES, NewObject, NewPrincipal, PreparedPrincipal,
    SealedSecret, StoreError, VersionInfo, VersioningChange, WriteAck, external_id,
};
use crate::{keys, meta, versions};

/// Limits the store enforces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// The largest object, in bytes.
    pub max_object_bytes: u64,
    /// How the compliance clock catches up with a system clock ahead of it.
    pub clock: ClockPolicy,
    /// With a signer, a checkpoint is signed whenever this many ledger
    /// entries were written since the last one.
    pub checkpoint_every: u64,
    /// The most bytes of requests waiting for, or in, a group commit (each
    /// request counts its inline bytes, at least `writer::REQUEST_FLOOR`).
    /// A caller beyond it waits before queueing: back-pressure that reaches
    /// gRPC clients, and a bound on the memory queued writes hold.
    pub queue_bytes: usize,
    /// The most keys one ListObjects call examines (`Store::list_objects`):
    /// a bound on the work of one page however many delete markers the
    /// bucket holds.
    pub list_scan_keys: usize,
    /// The free disk kept for the changes a full archive still owes: new
    /// object data is refused once less would be left (`space.rs`). `None`:
    /// 1 GiB, or 2 % of the filesystem when that is less; `Some(0)`: none.
    pub reserve_bytes: Option<u64>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_object_bytes: 5 << 30,
            clock: ClockPolicy::default(),
            checkpoint_every: 1000,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            list_scan_keys: DEFAULT_LIST_SCAN_KEYS,
            reserve_bytes: None,
        }
    }
}

/// Four of the writer's largest groups: enough that the next groups are
/// always queued while one commits, small enough to bound memory.
const DEFAULT_QUEUE_BYTES: usize = 256 << 20;

/// Ten full pages: a page's scan costs milliseconds, and a bucket of
/// markers still lists at ten thousand keys per call.
const DEFAULT_LIST_SCAN_KEYS: usize = 10 * crate::listing::MAX_KEYS;

/// The most ledger entries one `Store::entry_bytes` call returns.
pub const MAX_ENTRIES_PER_READ: u64 = 1000;

/// A ledger entry's place in the ledger's Merkle tree, with what proves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// The leaf's index: the entry's sequence minus one.
    pub leaf_index: u64,
    /// The size of the tree the path leads to the root of.
    pub tree_size: u64,
    /// The entry's canonical bytes (`ledger.rs`): the leaf is their hash.
    pub entry: Vec<u8>,
    /// The audit path, nearest the leaf first (RFC 9162 §2.1.3).
    pub path: Vec<Digest>,
}

/// What the archive recorded of one witness (`Store::witnesses`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessState {
    /// Its name.
    pub name: String,
    /// The newest checkpoint it cosigned: sequence and cosignature timestamp.
    pub cosigned: Option<(u64, u64)>,
    /// Its last refusal (cleared by its next cosignature).
    pub refusal: Option<crate::WitnessRefusal>,
    /// Its first refusal that said the ledger forked (never cleared).
    pub fork: Option<crate::WitnessRefusal>,
}

impl WitnessState {
    fn named(name: String) -> WitnessState {
        WitnessState { name, cosigned: None, refusal: None, fork: None }
    }
}

/// Totals of the group commits since the store opened (`Store::commit_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Group commits that succeeded.
    pub groups: u64,
    /// Commands they carried (each answered after its group's commit).
    pub commands: u64,
    /// New versions among them (from every front door).
    pub versions: u64,
    /// Those versions' bytes.
    pub version_bytes: u64,
}

/// The archive. Cheap to clone; clones share one writer.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    backend: Arc<dyn Backend>,
    options: StoreOptions,
    writer: Mutex<Option<Sender<Request>>>,
    queue: Arc<Semaphore>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    counters: Arc<writer::CommitCounters>,
    rng: ring::rand::SystemRandom,
    space: crate::space::SpaceGuard,
}

impl Drop for Inner {
    // Closing the queue stops the writer after it has answered everything
    // queued; joining makes the backend's last reference go with the store.
    fn drop(&mut self) {
        self.writer.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = self.writer_thread.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

/// The semaphore's limit (and a `u32` for `acquire_many`).
const MAX_PERMITS: usize = 1 << 31;

/// Where the writer's answer to a queued command arrives.
type Answer<T> = oneshot::Receiver<Result<T, StoreError>>;

impl Inner {
    /// The write queue's size in semaphore permits: at least one request.
    fn queue_capacity(options: &StoreOptions) -> usize {
        options.queue_bytes.clamp(writer::REQUEST_FLOOR, MAX_PERMITS)
    }
}

impl Store {
    /// Opens the archive on `backend`: recovers the clock and ledger head,
    /// discards uploads that never published, and starts the writer thread.
    pub fn open(backend: Arc<dyn Backend>, clock: Arc<dyn Clock>, options: StoreOptions) -> Result<Store, StoreError> {
        Store::open_signed(backend, clock, options, None)
    }

    /// `open`, signing checkpoints of the ledger with `signer`.
    pub fn open_signed(
        backend: Arc<dyn Backend>,
        clock: Arc<dyn Clock>,
        options: StoreOptions,
        signer: Option<Arc<dyn Signer>>,
    ) -> Result<Store, StoreError> {
        let format_state = crate::format::check_and_record(&*backend)?;
        let (persisted, last_sequence) = match meta::load_clock(&*backend)? {
            Some((time, sequence)) => (Some(time), sequence),
            None => (None, 0),
        };
        // A new archive starts its compliance clock at the system clock; an
        // existing one resumes from its persisted value, never earlier.
        let compliance = ComplianceClock::resume(persisted, clock.now(), clock.monotonic(), options.clock);
        let last_time = persisted.unwrap_or(Timestamp::EPOCH);
        let (ledger_sequence, ledger_head) = meta::load_ledger_head(&*backend)?;
        check_next_version_id(&*backend, ledger_sequence, last_time, last_sequence)?;
        discard_unpublished_uploads(&*backend)?;
        let last_checkpoint = meta::load_last_checkpoint(&*backend)?;
        let signing = signer.map(|signer| writer::Signing { signer, every: options.checkpoint_every });
        let signed_heads = || -> Result<std::collections::BTreeMap<u64, Digest>, StoreError> {
            let mut heads = std::collections::BTreeMap::new();
            for item in backend.scan(Keyspace::Checkpoints, b"", b"") {
                let (_, raw) = item.map_err(|e| StoreError::backend("reading checkpoints", e))?;
                let checkpoint = Checkpoint::decode(&raw)?;
                heads.insert(checkpoint.sequence, checkpoint.head);
            }
            Ok(heads)
        };
        // A checkpoint past the head means entries were cut (and the head set
        // back): never resumed from, since the writer would sign over them.
        let past_head = backend.scan(Keyspace::Checkpoints, &evidence::checkpoint_key(ledger_sequence + 1), b"").next();
        if past_head.is_some() || last_checkpoint.is_some_and(|last| last > ledger_sequence) {
            return Err(StoreError::DataLoss {
                what: format!(
                    "a checkpoint covers entries past the ledger's recorded head ({ledger_sequence}): entries were \
                     removed; run `wormbox verify --data-dir` and restore from a backup"
                ),
            });
        }
        let tree = crate::tree::open_tree(&*backend, format_state, (ledger_sequence, ledger_head), &signed_heads)?;
        let recent_hashes = crate::tree::recent_hashes(&*backend, &tree)?;
        let format = crate::format::FORMAT_VERSION;
        let state =
            WriterState { last_checkpoint, last_time, last_sequence, ledger_sequence, ledger_head, compliance, tree };
        let (tx, rx) = mpsc::channel();
        let writer_backend = Arc::clone(&backend);
        let counters = Arc::new(writer::CommitCounters::new(ledger_sequence));
        let writer_counters = Arc::clone(&counters);
        let writer_thread = std::thread::Builder::new()
            .name("wormbox-writer".to_owned())
            .spawn(move || writer::run(writer_backend, clock, signing, state, rx, writer_counters, recent_hashes))
            .map_err(|e| StoreError::backend("starting the writer", crate::backend::BackendError::Io(e)))?;
        tracing::info!(engine = backend.engine(), format, ledger_sequence, "store opened");
        #[cfg(wormbox_bench_unhashed)]
        tracing::error!("this build does not hash versions (wormbox_bench_unhashed): for benchmarks only");
        let queue = Arc::new(Semaphore::new(Inner::queue_capacity(&options)));
        Ok(Store {
            inner: Arc::new(Inner {
                backend,
                space: crate::space::SpaceGuard::new(options.reserve_bytes),
                options,
                writer: Mutex::new(Some(tx)),
                queue,
                writer_thread: Mutex::new(Some(writer_thread)),
                counters,
                rng: ring::rand::SystemRandom::new(),
            }),
        })
    }

    /// Returns the options in force.
    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// Admits `bytes` of new data against the disk's reserve, before any of
    /// them is written (`DiskFull` otherwise); keep the ticket until they
    /// are written, or given up. The store's own writes of new data ask
    /// here; so does whatever else the appliance writes under the data
    /// directory for clients (S3's multipart parts, a backup's staged copy,
    /// a spooled read of a released version).
    pub fn check_space(&self, bytes: u64) -> Result<crate::SpaceTicket, StoreError> {
        self.inner.space.admit(self.inner.backend.as_ref(), bytes)
    }

    /// Reads the disk again and says whether new data is refused: for the
    /// health service, the metrics and status. Call it now and then (the
    /// server does every second) so that space another process took or
    /// freed is seen without a write.
    pub fn disk_status(&self) -> crate::DiskStatus {
        self.inner.space.status(self.inner.backend.as_ref())
    }

    /// Queues `op` and awaits its reply, which comes once its group is durable.
    pub(crate) async fn submit<Op: WriterOp>(&self, actor: &Actor, op: Op) -> Result<Op::Output, StoreError> {
        let permit = self.reserve(writer::queue_cost(&op)).await?;
        let answer = self.hand_over(actor, op, Some(permit))?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Waits for room in the write queue for an operation of `cost` bytes
    /// (`writer::queue_cost`). Cancelled here, the caller has handed nothing
    /// to the writer.
    async fn reserve(&self, cost: usize) -> Result<OwnedSemaphorePermit, StoreError> {
        // Waits here, before queueing, while the queue is full; the permit
        // travels with the request and is returned when the writer drops it,
        // after its group committed.
        let cost = cost.clamp(1, Inner::queue_capacity(&self.inner.options));
        Arc::clone(&self.inner.queue)
            .acquire_many_owned(u32::try_from(cost).unwrap_or(u32::MAX))
            .await
            .map_err(|_| StoreError::WriterStopped)
    }

    /// Queues `op`; from here on the writer owns it and applies it whether
    /// or not anyone awaits the answer. Not async: no cancellation can fall
    /// between the hand-over and what the caller records about it.
    fn hand_over<Op: WriterOp>(
        &self,
        actor: &Actor,
        op: Op,
        queued: Option<OwnedSemaphorePermit>,
    ) -> Result<Answer<Op::Output>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            actor: actor.clone(),
            op: Box::new(Pending { op, reply }),
            queued,
            sent_at: std::time::Instant::now(),
        };
        // A refused send drops the operation unapplied: nothing was handed over.
        self.inner
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .ok_or(StoreError::WriterStopped)?
            .send(request)
            .map_err(|_| StoreError::WriterStopped)?;
        Ok(answer)
    }

    /// Submits `op`, guarded by `code` when there is one.
    async fn submit_maybe_guarded<Op: Guardable, V: Send + 'static>(
        &self,
        actor: &Actor,
        op: Op,
        code: Option<CodeCheck<V>>,
    ) -> Result<Guarded<Op::Output, V>, StoreError> {
        match code {
            Some(code) => self.submit(actor, GuardedBy { op, code }).await,
            None => Ok(Guarded::Done(self.submit(actor, op).await?)),
        }
    }

    /// How many group commits succeeded since the store opened, and how many
    /// commands they carried: their ratio is the mean group size.
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            groups: self.inner.counters.groups.load(std::sync::atomic::Ordering::Relaxed),
            commands: self.inner.counters.commands.load(std::sync::atomic::Ordering::Relaxed),
            versions: self.inner.counters.versions.load(std::sync::atomic::Ordering::Relaxed),
            version_bytes: self.inner.counters.version_bytes.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// The group commit's size and sync-time histograms since the store opened.
    pub fn commit_histograms(&self) -> crate::CommitHistograms {
        crate::CommitHistograms {
            group_size: self.inner.counters.group_size.snapshot(),
            sync_seconds: self.inner.counters.sync_seconds.snapshot(),
            queue_wait_seconds: self.inner.counters.queue_wait_seconds.snapshot(),
            apply_seconds: self.inner.counters.apply_seconds.snapshot(),
        }
    }

    /// The newest durable ledger sequence, changing as groups commit: a
    /// follower of the ledger (the replicator) waits on it for new entries.
    pub fn ledger_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.counters.ledger.subscribe()
    }

    /// The storage engine's own accounting of the memory it holds
    /// (`Backend::memory_report`).
    pub fn engine_memory(&self) -> Vec<(&'static str, u64)> {
        self.inner.backend.memory_report()
    }

    /// The storage engine's figures of its health (`Backend::engine_stats`).
    pub fn engine_stats(&self) -> Vec<(&'static str, u64)> {
        self.inner.backend.engine_stats()
    }

    /// Bytes of the write queue not taken by waiting or committing requests
    /// (`StoreOptions::queue_bytes` when idle).
    pub fn queue_available(&self) -> usize {
        self.inner.queue.available_permits()
    }

    /// The write queue's size in bytes (`StoreOptions::queue_bytes`, at
    /// least one request's worth).
    pub fn queue_capacity(&self) -> usize {
        Inner::queue_capacity(&self.inner.options)
    }

    // ---- buckets ----

    /// Creates an unversioned bucket owned by `actor`.
    pub async fn create_bucket(&self, actor: &Actor, bucket: BucketName) -> Result<(BucketInfo, u64), StoreError> {
        self.create_bucket_with_lock(actor, bucket, false).await
    }

    /// Creates a bucket; with `object_lock` its versioning is Enabled for good.
    pub async fn create_bucket_with_lock(
        &self,
        actor: &Actor,
        bucket: BucketName,
        object_lock: bool,
    ) -> Result<(BucketInfo, u64), StoreError> {
        self.submit(actor, CreateBucket { bucket, object_lock }).await
    }

    /// Deletes an empty bucket; only its owner or an admin may.
    pub async fn delete_bucket(&self, actor: &Actor, bucket: BucketName) -> Result<u64, StoreError> {
        self.submit(actor, DeleteBucket { bucket }).await
    }

    /// Changes a bucket's versioning state; only its owner may, admins
    /// included. Returns the ledger entry, or `None` when the state was
    /// already `state`.
    pub async fn set_versioning(
        &self,
        actor: &Actor,
        bucket: BucketName,
        state: VersioningState,
    ) -> Result<(BucketInfo, Option<u64>), StoreError> {
        self.configure_versioning(actor, bucket, VersioningChange { state: Some(state), ..VersioningChange::default() })
            .await
    }

    /// Changes versioning and MFA Delete together. The MFA rules are judged
    /// in the writer against the bucket's current state, so a request cannot
    /// slip past MFA Delete being turned on concurrently: while it is on (and
    /// to turn it on or off) `change.mfa` must name the device whose code
    /// the MFA authority has already accepted and spent.
    pub async fn configure_versioning(
        &self,
        actor: &Actor,
        bucket: BucketName,
        change: VersioningChange,
    ) -> Result<(BucketInfo, Option<u64>), StoreError> {
        self.submit(actor, SetVersioning { bucket, change }).await
    }

    /// `configure_versioning` with a code that the writer hands to the MFA
    /// authority only once the change itself is allowed (`CodeCheck`).
    pub async fn configure_versioning_with_code<V: Send + 'static>(
        &self,
        actor: &Actor,
        bucket: BucketName,
        change: VersioningChange,
        code: CodeCheck<V>,
    ) -> Result<Guarded<(BucketInfo, Option<u64>), V>, StoreError> {
        let change = VersioningChange { mfa: Some(code.serial.clone()), ..change };
        self.submit(actor, GuardedBy { op: SetVersioning { bucket, change }, code }).await
    }

    // ---- the compliance clock ----

    /// The system and compliance clocks, how far the compliance clock is
    /// behind, its catch-up rate and when it will have caught up.
    pub async fn clock_status(&self) -> Result<ClockStatus, StoreError> {
        self.submit(&Actor::system(), ReadClock).await
    }

    /// Moves the compliance clock forward to the system clock at once (never
    /// back), instead of letting it catch up at its rate:
    /// admin only, after the caller had the MFA authority spend a code of the
    /// admin's own device (`mfa` names it). A ledger entry records both times.
    pub async fn accept_clock_forward(&self, actor: &Actor, mfa: String) -> Result<(ClockStatus, u64), StoreError> {
        self.submit(actor, AcceptClockForward { mfa }).await
    }

    /// `accept_clock_forward` with the code of one of the admin's own devices,
    /// judged by the writer after the acceptance itself (`CodeCheck`): a
    /// refused acceptance (no admin, no jump) spends no code.
    pub async fn accept_clock_forward_with_code<V: Send + 'static>(
        &self,
        actor: &Actor,
        code: CodeCheck<V>,
    ) -> Result<Guarded<(ClockStatus, u64), V>, StoreError> {
        let op = AcceptClockForward { mfa: code.serial.clone() };
        self.submit(actor, GuardedBy { op, code }).await
    }

    // ---- Object Lock ----

    /// Turns Object Lock on (irreversibly; versioning must be Enabled) and
    /// sets the default retention of new versions (`None` clears it).
    /// Existing versions keep theirs.
    pub async fn configure_object_lock(
        &self,
        actor: &Actor,
        bucket: BucketName,
        default: Option<DefaultRetention>,
    ) -> Result<(BucketInfo, u64), StoreError> {
        self.submit(actor, ConfigureObjectLock { bucket, default, lowering: Lowering::Allowed }).await
    }

    /// `configure_object_lock` as the application layer calls it: a change
    /// that clears or shortens the default is refused unless `lowering`
    /// allows it, and `code`, when given, is judged after the change itself
    /// (`CodeCheck`).
    pub async fn change_object_lock<V: Send + 'static>(
        &self,
        actor: &Actor,
        bucket: BucketName,
        default: Option<DefaultRetention>,
        lowering: Lowering,
        code: Option<CodeCheck<V>>,
    ) -> Result<Guarded<(BucketInfo, u64), V>, StoreError> {
        self.submit_maybe_guarded(actor, ConfigureObjectLock { bucket, default, lowering }, code).await
    }

    /// Sets, extends, shortens or removes a version's retention under the
    /// rules of `retention::judge_change`. `bypass` means the request set
    /// `bypass_governance` and the caller holds the bypass right; `mfa` names
    /// the device whose code the authority spent. A refusal is a ledger entry.
    #[allow(clippy::too_many_arguments)] // one argument per field of S3's PutObjectRetention, as the tests call it
    pub async fn set_retention(
        &self,
        actor: &Actor,
        bucket: BucketName,
        key: ObjectKey,
        version: VersionSelector,
        retention: Option<Retention>,
        bypass: bool,
        mfa: Option<String>,
    ) -> Result<(LockRecord, Option<u64>), StoreError> {
        let set = SetRetention { bucket, key, version, retention, bypass, mfa };
        let (lock, sequence) = self.submit(actor, set).await?;
        Ok((lock, Some(sequence)))
    }

    /// `set_retention` with a code that the writer hands to the MFA authority
    /// only once the change itself is allowed (`CodeCheck`).
    #[allow(clippy::too_many_arguments)] // `set_retention`'s fields, and the code
    pub async fn set_retention_with_code<V: Send + 'static>(
        &self,
        actor: &Actor,
        bucket: BucketName,
        key: ObjectKey,
        version: VersionSelector,
        retention: Option<Retention>,
        bypass: bool,
        code: CodeCheck<V>,
    ) -> Result<Guarded<(LockRecord, Option<u64>), V>, StoreError> {
        let mfa = Some(code.serial.clone());
        let op = SetRetention { bucket, key, version, retention, bypass, mfa };
        Ok(match self.submit(actor, GuardedBy { op, code }).await? {
            Guarded::Done((lock, sequence)) => Guarded::Done((lock, Some(sequence))),
            Guarded::CodeRefused(verdict) => Guarded::CodeRefused(verdict),
        })
    }

    /// Places (`place`) or releases the legal hold `case_id` on a version:
    /// admins and auditors only (a refusal is a ledger entry); the bucket must
    /// have Object Lock. Placing a present hold or releasing an absent one is a no-op.
    #[allow(clippy::too_many_arguments)] // the fields of `HoldChange`, one by one, for tests; `change_legal_hold` takes it whole
    pub async fn set_legal_hold(
        &self,
        actor: &Actor,
        bucket: BucketName,
        key: ObjectKey,
        version: VersionSelector,
        case_id: String,
        place: bool,
        note: String,
    ) -> Result<(LockRecord, Option<u64>), StoreError> {
        self.submit(actor, SetHold { bucket, key, version, case_id, place, note, lowering: Lowering::Allowed }).await
    }

    /// `set_legal_hold` as the application layer calls it: a release is
    /// refused unless `lowering` allows it, and `code`, when given, is
    /// judged after the change itself (`CodeCheck`).
    pub async fn change_legal_hold<V: Send + 'static>(
        &self,
        actor: &Actor,
        hold: HoldChange,
        lowering: Lowering,
        code: Option<CodeCheck<V>>,
    ) -> Result<Guarded<(LockRecord, Option<u64>), V>, StoreError> {
        let HoldChange { bucket, key, version, case_id, place, note } = hold;
        let op = SetHold { bucket, key, version, case_id, place, note, lowering };
        self.submit_maybe_guarded(actor, op, code).await
    }

    // ---- MFA devices (opaque records owned by the MFA authority) ----

    /// Applies `update` to the records of `serials` inside the writer, so that
    /// reading, deciding and writing cannot interleave with another update:
    /// of two concurrent requests with the same code, exactly one sees the
    /// step unspent. The changes and their ledger entries are durable before
    /// this returns; returns the last ledger sequence written and what
    /// `update` answered.
    pub async fn update_devices<T: Send + 'static>(
        &self,
        actor: &Actor,
        serials: Vec<String>,
        update: DeviceUpdate<T>,
    ) -> Result<(Option<u64>, T), StoreError> {
        self.submit(actor, UpdateDevices { serials, update }).await
    }

    /// Returns a device record as committed.
    pub fn device(&self, serial: &str) -> Result<Option<Vec<u8>>, StoreError> {
        View::get(self.backend(), Keyspace::Devices, serial.as_bytes())
    }

    /// Returns every device record, by serial.
    pub fn devices(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.inner.backend.scan(Keyspace::Devices, b"", b"") {
            let (serial, raw) = entry.map_err(|e| StoreError::backend("listing devices", e))?;
            let serial = String::from_utf8(serial)
                .map_err(|_| StoreError::DataLoss { what: "stored device serial is not UTF-8".to_owned() })?;
            out.push((serial, raw));
        }
        Ok(out)
    }

    /// Returns one bucket.
    pub fn bucket(&self, bucket: &BucketName) -> Result<BucketInfo, StoreError> {
        let raw = View::get(self.backend(), Keyspace::Buckets, bucket.as_str().as_bytes())?
            .ok_or_else(|| StoreError::NoSuchBucket { bucket: bucket.to_string() })?;
        Ok(crate::writer::bucket_info(bucket.clone(), &BucketRecord::decode(&raw)?))
    }

    /// Returns every bucket, by name.
    pub fn buckets(&self) -> Result<Vec<BucketInfo>, StoreError> {
        let mut out = Vec::new();
        for entry in self.inner.backend.scan(Keyspace::Buckets, b"", b"") {
            let (name, raw) = entry.map_err(|e| StoreError::backend("listing buckets", e))?;
            let name = std::str::from_utf8(&name)
                .ok()
                .and_then(|n| BucketName::new(n).ok())
                .ok_or_else(|| StoreError::DataLoss { what: "stored bucket name is invalid".to_owned() })?;
            out.push(crate::writer::bucket_info(name, &BucketRecord::decode(&raw)?));
        }
        Ok(out)
    }

    // ---- objects ----

    /// Stores `data` as a new version, durably, in one group commit.
    pub async fn put_object(
        &self,
        actor: &Actor,
        bucket: BucketName,
        key: ObjectKey,
        object: NewObject,
        data: Vec<u8>,
    ) -> Result<WriteAck, StoreError> {
        self.check_object(&object, data.len() as u64)?;
        // Held until the group that writes the bytes answered.
        let _space = self.check_space(data.len() as u64)?;
        let sha256 = sha256(&data);
        check_digest(&object, sha256)?;
        let size = data.len() as u64;
        let put = PutVersion { bucket, key, object, sha256, size, data: VersionData::Inline(data) };
        self.publish(actor, put).await
    }

    /// Starts a streamed upload of a new version; bytes are kept in chunks as
    /// they arrive, so memory does not grow with the object.
    pub fn begin_upload(&self, bucket: BucketName, key: ObjectKey, object: NewObject) -> Result<Upload, StoreError> {
        self.check_object(&object, 0)?;
        drop(self.check_space(0)?);
        let mut id = [0u8; 16];
        self.inner.rng.fill(&mut id).map_err(|_| StoreError::DataLoss { what: "no randomness".to_owned() })?;
        Ok(Upload {
            store: self.clone(),
            upload: u128::from_be_bytes(id),
            bucket,
            key,
            object,
            hasher: ring::digest::Context::new(&ring::digest::SHA256),
            buffer: Vec::new(),
            size: 0,
            chunks: 0,
            handed_over: false,
            failed: false,
            space: None,
        })
    }

    async fn publish(&self, actor: &Actor, put: PutVersion) -> Result<WriteAck, StoreError> {
        self.submit(actor, put).await
    }

    /// The largest version the store accepts.
    pub fn max_object_bytes(&self) -> u64 {
        self.inner.options.max_object_bytes
    }

    /// Refuses the attributes of a new version the store would refuse at
    /// its write (free text, ETag), before any byte of it is taken: a front
    /// door that collects the bytes first (S3's multipart upload) asks here.
    pub fn check_new_object(&self, object: &NewObject) -> Result<(), StoreError> {
        self.check_object(object, 0)
    }

    fn check_object(&self, object: &NewObject, size: u64) -> Result<(), StoreError> {
        // The same checks as at the wire (`FreeText`), for every caller.
        wormbox_model::FreeText::ContentType.check(&object.content_type)?;
        if let Some(case_id) = &object.legal_hold {
            wormbox_model::FreeText::CaseId.check(case_id)?;
        }
        if let Some(etag) = &object.etag {
            check_etag(etag)?;
        }
        if size > self.inner.options.max_object_bytes {
            return Err(StoreError::TooLarge { limit: self.inner.options.max_object_bytes });
        }
        Ok(())
    }

    /// Deletes per DESIGN.md's table: with a version id, removes that version
    /// for good; without, writes a delete marker (or removes the `null`
    /// version of an unversioned bucket).
    pub async fn delete_object(
        &self,
        actor: &Actor,
        bucket: BucketName,
        key: ObjectKey,
        version: Option<VersionSelector>,
    ) -> Result<DeleteOutcome, StoreError> {
        self.delete_object_guarded(actor, bucket, key, version, None, false).await
    }

    /// `delete_object` for guarded purges. `mfa` names the device whose code
    /// the MFA authority accepted (a permanent delete in a bucket with MFA
    /// Delete on is refused, `MfaRequired`, without one); `bypass` means the
    /// request set `bypass_governance` and the caller holds the bypass right:
    /// a version under GOVERNANCE retention is purged only so, while
    /// COMPLIANCE retention and legal holds refuse whatever the request says.
    /// All of it is judged inside the writer.
    pub async fn delete_object_guarded(
        &self,
        actor: &Actor,
        bucket: BucketName,
        key: ObjectKey,
        version: Option<VersionSelector>,
        mfa: Option<String>,
        bypass: bool,
    ) -> Result<DeleteOutcome, StoreError> {
        self.submit(actor, DeleteObject { bucket, key, version, mfa, bypass }).await
    }

    /// A permanent delete of `version` with a code that the writer hands to
    /// the MFA authority only once retention and holds let the purge through
    /// (`CodeCheck`); `bypass` as for `delete_object_guarded`.
    pub async fn delete_object_with_code<V: Send + 'static>(
        &self,
        actor: &Actor,
        bucket: BucketName,
        key: ObjectKey,
        version: VersionSelector,
        bypass: bool,
        code: CodeCheck<V>,
    ) -> Result<Guarded<DeleteOutcome, V>, StoreError> {
        let mfa = Some(code.serial.clone());
        let op = DeleteObject { bucket, key, version: Some(version), mfa, bypass };
        self.submit(actor, GuardedBy { op, code }).await
    }

    /// Deletes several objects or versions of one bucket in one atomic write
    /// (S3's DeleteObjects): each entry as `delete_object_guarded` would,
    /// with its own outcome; a refused entry (ledgered as the same single
    /// delete would be) does not stop the others. `entries` are 1 to
    /// `MAX_DELETE_ENTRIES`, or nothing is done; an entry named twice is run
    /// and answered once. `bypass` as for `delete_object_guarded`; without a
    /// code, a permanent delete in a bucket with MFA Delete on is refused.
    pub async fn delete_objects(
        &self,
        actor: &Actor,
        bucket: BucketName,
        entries: Vec<DeleteEntry>,
        bypass: bool,
    ) -> Result<Vec<EntryOutcome>, StoreError> {
        let entries = distinct_entries(entries)?;
        self.submit(actor, DeleteObjects { bucket, entries, mfa: None, bypass }).await
    }

    /// `delete_objects` with one code for the whole request (S3's
    /// `x-amz-mfa` on DeleteObjects). Every entry is judged first, as if the
    /// code were good; the writer hands the code to the MFA authority only
    /// if at least one permanent delete passed, and runs the request only if
    /// the authority accepted it, in the same atomic write that spends it. A
    /// request none of whose permanent deletes passed runs without spending
    /// the code; one whose code is refused changes nothing but the verdict.
    pub async fn delete_objects_with_code<V: Send + 'static>(
        &self,
        actor: &Actor,
        bucket: BucketName,
        entries: Vec<DeleteEntry>,
        bypass: bool,
        code: CodeCheck<V>,
    ) -> Result<Guarded<Vec<EntryOutcome>, V>, StoreError> {
        let entries = distinct_entries(entries)?;
        let mfa = Some(code.serial.clone());
        self.submit(actor, GuardedBy { op: DeleteObjects { bucket, entries, mfa, bypass }, code }).await
    }

    /// Returns a version's metadata: the latest when `version` is `None`.
    pub fn head_object(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        version: Option<VersionSelector>,
    ) -> Result<VersionInfo, StoreError> {
        self.bucket(bucket)?;
        let latest = self.latest(bucket, key)?;
        let Some(selector) = version else {
            let record =
                latest.ok_or_else(|| StoreError::NoSuchKey { bucket: bucket.to_string(), key: key.to_string() })?;
            if record.is_delete_marker {
                return Err(StoreError::LatestIsDeleteMarker {
                    key: key.to_string(),
                    version: external_id(record.id, record.is_null),
                });
            }
            let lock = versions::lock(self.backend(), bucket, key.as_str(), record.id)?;
            return Ok(versions::version_info(key.as_str(), &record, true, lock));
        };
        let record = versions::resolve(self.backend(), bucket, key, &selector)?;
        self.info(bucket, key, record, latest)
    }

    /// The version stored under its internal id, whatever the selector that
    /// names it, `null` versions included: for followers of the ledger,
    /// whose entries name every version by its internal id. A delete marker
    /// answers `VersionIsDeleteMarker`, as it does by selector.
    pub fn read_version(&self, bucket: &BucketName, key: &ObjectKey, id: VersionId) -> Result<VersionInfo, StoreError> {
        self.bucket(bucket)?;
        let latest = self.latest(bucket, key)?;
        let record = self.version_record(bucket, key, id)?.ok_or_else(|| StoreError::NoSuchVersion {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version: id.to_string(),
        })?;
        self.info(bucket, key, record, latest)
    }

    /// A named version as callers see it; a delete marker has no metadata.
    fn info(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        record: VersionRecord,
        latest: Option<VersionRecord>,
    ) -> Result<VersionInfo, StoreError> {
        if record.is_delete_marker {
            return Err(StoreError::VersionIsDeleteMarker {
                key: key.to_string(),
                version: external_id(record.id, record.is_null),
            });
        }
        let is_latest = latest.is_some_and(|l| l.id == record.id);
        let lock = versions::lock(self.backend(), bucket, key.as_str(), record.id)?;
        Ok(versions::version_info(key.as_str(), &record, is_latest, lock))
    }

    /// Opens a version for reading; the reader yields verified chunks.
    pub fn read_object(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        version: Option<VersionSelector>,
    ) -> Result<(VersionInfo, ObjectReader), StoreError> {
        let info = self.head_object(bucket, key, version)?;
        self.reader_of(bucket, key, info)
    }

    /// `read_object` of a version by its internal id, the `null` version
    /// included (`read_version`): for a follower of the ledger, whose
    /// entries name versions that way.
    pub fn read_version_object(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        id: VersionId,
    ) -> Result<(VersionInfo, ObjectReader), StoreError> {
        let info = self.read_version(bucket, key, id)?;
        self.reader_of(bucket, key, info)
    }

    fn reader_of(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        info: VersionInfo,
    ) -> Result<(VersionInfo, ObjectReader), StoreError> {
        let record = self.version_record(bucket, key, info.id)?.ok_or_else(|| StoreError::NoSuchVersion {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version: info.version_id.clone(),
        })?;
        let data =
            record.data.ok_or_else(|| StoreError::DataLoss { what: "version has no data reference".to_owned() })?;
        let released = meta::load_bytes_at(self.backend(), &keys::version_key(bucket, key.as_str(), info.id))?;
        let reader = ObjectReader {
            released,
            backend: Arc::clone(&self.inner.backend),
            upload: data.upload,
            chunks: data.chunks,
            next: 0,
            expected: record.sha256,
            expected_size: record.size,
            size: 0,
            hasher: Some(ring::digest::Context::new(&ring::digest::SHA256)),
        };
        Ok((info, reader))
    }

    fn latest(&self, bucket: &BucketName, key: &ObjectKey) -> Result<Option<VersionRecord>, StoreError> {
        let prefix = keys::object_prefix(bucket, key.as_str());
        match self.inner.backend.scan(Keyspace::Versions, &prefix, &prefix).next() {
            Some(entry) => {
                let (_, raw) = entry.map_err(|e| StoreError::backend("reading versions", e))?;
                Ok(Some(VersionRecord::decode(&raw)?))
            }
            None => Ok(None),
        }
    }

    pub(crate) fn version_record(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        id: VersionId,
    ) -> Result<Option<VersionRecord>, StoreError> {
        versions::record(self.backend(), bucket, key, id)
    }

    pub(crate) fn backend(&self) -> &dyn Backend {
        &*self.inner.backend
    }

    // ---- principals ----

    /// Creates a principal with a fresh access key and secret.
    pub async fn create_principal(&self, actor: &Actor, name: &str, role: Role) -> Result<NewPrincipal, StoreError> {
        self.create_principal_with_bypass(actor, name, role, false).await
    }

    /// Creates a principal, granting the right to override GOVERNANCE
    /// retention when `bypass_governance`.
    pub async fn create_principal_with_bypass(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        bypass_governance: bool,
    ) -> Result<NewPrincipal, StoreError> {
        let PreparedPrincipal { access_key, secret, record } = self.prepare_principal(name, role, bypass_governance)?;
        let op = CreatePrincipal { access_key: access_key.clone(), record, s3: None };
        let ledger_sequence = self.submit(actor, op).await?;
        Ok(NewPrincipal { access_key, secret, ledger_sequence })
    }

    /// `create_principal_with_bypass`, with `code` (when given) judged after
    /// the creation itself (`CodeCheck`): the application layer asks for one
    /// before minting an admin or the bypass right on a guarded appliance.
    pub async fn create_principal_checked<V: Send + 'static>(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        bypass_governance: bool,
        code: Option<CodeCheck<V>>,
    ) -> Result<Guarded<NewPrincipal, V>, StoreError> {
        let prepared = self.prepare_principal(name, role, bypass_governance)?;
        self.create_prepared_principal_checked(actor, prepared, None, code).await
    }

    /// Stores a principal `prepare_principal` drew, with its S3 secret
    /// (`s3`, sealed for its access key) in the same write when given, and
    /// `code` (when given) judged after the creation itself (`CodeCheck`).
    pub async fn create_prepared_principal_checked<V: Send + 'static>(
        &self,
        actor: &Actor,
        prepared: PreparedPrincipal,
        s3: Option<SealedSecret>,
        code: Option<CodeCheck<V>>,
    ) -> Result<Guarded<NewPrincipal, V>, StoreError> {
        let PreparedPrincipal { access_key, secret, record } = prepared;
        let op = CreatePrincipal { access_key: access_key.clone(), record, s3 };
        Ok(match self.submit_maybe_guarded(actor, op, code).await? {
            Guarded::Done(ledger_sequence) => Guarded::Done(NewPrincipal { access_key, secret, ledger_sequence }),
            Guarded::CodeRefused(verdict) => Guarded::CodeRefused(verdict),
        })
    }

    /// A new principal's access key, secret and record, not yet stored.
    pub fn prepare_principal(
        &self,
        name: &str,
        role: Role,
        bypass_governance: bool,
    ) -> Result<PreparedPrincipal, StoreError> {
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(StoreError::InvalidArgument(
                "principal name must be 1 to 128 bytes without control characters".to_owned(),
            ));
        }
        let access_key = format!("WB{}", self.random_base32(18)?);
        let secret = self.random_base32(40)?;
        let mut salt = [0u8; 16];
        self.inner.rng.fill(&mut salt).map_err(|_| StoreError::DataLoss { what: "no randomness".to_owned() })?;
        let record = PrincipalRecord {
            name: name.to_owned(),
            role,
            salt,
            secret_hash: secret_hash(&salt, &secret),
            created_at: Timestamp::EPOCH,
            revoked_at: None,
            bypass_governance,
        };
        Ok(PreparedPrincipal { access_key, secret, record: Box::new(record) })
    }

    /// Whether `access_key` holds the right to override GOVERNANCE retention.
    pub fn has_bypass_right(&self, access_key: &str) -> Result<bool, StoreError> {
        match View::get(self.backend(), Keyspace::Principals, access_key.as_bytes())? {
            Some(raw) => {
                let record = PrincipalRecord::decode(&raw)?;
                Ok(record.bypass_governance && record.revoked_at.is_none())
            }
            None => Ok(false),
        }
    }

    /// Revokes a principal; its key stops working at once. Returns the ledger
    /// entry, or `None` when it was already revoked.
    pub async fn revoke_principal(&self, actor: &Actor, access_key: &str) -> Result<Option<u64>, StoreError> {
        self.submit(actor, RevokePrincipal { access_key: access_key.to_owned() }).await
    }

    /// `revoke_principal`, with `code` (when given) judged after the
    /// revocation itself (`CodeCheck`).
    pub async fn revoke_principal_checked<V: Send + 'static>(
        &self,
        actor: &Actor,
        access_key: &str,
        code: Option<CodeCheck<V>>,
    ) -> Result<Guarded<Option<u64>, V>, StoreError> {
        self.submit_maybe_guarded(actor, RevokePrincipal { access_key: access_key.to_owned() }, code).await
    }

    /// Gives principal `access_key` its S3 secret, `sealed` for it by the
    /// caller, with `code` (when given) judged after the change itself
    /// (`CodeCheck`). Admins only; refused when it has one already.
    pub async fn create_s3_key_checked<V: Send + 'static>(
        &self,
        actor: &Actor,
        access_key: &str,
        sealed: SealedSecret,
        code: Option<CodeCheck<V>>,
    ) -> Result<Guarded<u64, V>, StoreError> {
        let op = SetS3Key { access_key: access_key.to_owned(), sealed: Some(sealed) };
        Ok(match self.submit_maybe_guarded(actor, op, code).await? {
            // A creation is always ledgered; `None` is a revocation's answer.
            Guarded::Done(sequence) => Guarded::Done(sequence.unwrap_or_default()),
            Guarded::CodeRefused(verdict) => Guarded::CodeRefused(verdict),
        })
    }

    /// Revokes principal `access_key`'s S3 secret (admins only): the sealed
    /// secret is removed. Answers the ledger entry, `None` when it had none.
    pub async fn revoke_s3_key(&self, actor: &Actor, access_key: &str) -> Result<Option<u64>, StoreError> {
        self.submit(actor, SetS3Key { access_key: access_key.to_owned(), sealed: None }).await
    }

    /// The caller an S3 request signed with `access_key` acts as, and its
    /// sealed S3 secret: `None` for an unknown key, a revoked principal and
    /// a principal without an S3 secret alike.
    pub fn s3_key(&self, access_key: &str) -> Result<Option<(Actor, SealedSecret)>, StoreError> {
        let Some(id) = AccessKeyId::new(access_key) else { return Ok(None) };
        let Some(record) = self.principal(id.as_str())? else { return Ok(None) };
        if record.revoked_at.is_some() {
            return Ok(None);
        }
        let Some(sealed) = meta::load_s3_key(self.backend(), id.as_str())? else { return Ok(None) };
        Ok(Some((Actor { access_key: id.as_str().to_owned(), role: record.role }, SealedSecret::new(sealed))))
    }

    /// Whether principal `access_key` has an S3 secret stored (revoked
    /// principals included: it is unusable then, but still at rest).
    pub fn has_s3_key(&self, access_key: &str) -> Result<bool, StoreError> {
        Ok(meta::load_s3_key(self.backend(), access_key)?.is_some())
    }

    /// The record of the principal `access_key`, if there is one.
    pub fn principal(&self, access_key: &str) -> Result<Option<PrincipalRecord>, StoreError> {
        View::get(self.backend(), Keyspace::Principals, access_key.as_bytes())?
            .map(|raw| PrincipalRecord::decode(&raw))
            .transpose()
            .map_err(StoreError::from)
    }

    /// Returns every principal by access key id; never secrets.
    pub fn principals(&self) -> Result<Vec<(String, PrincipalRecord)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.inner.backend.scan(Keyspace::Principals, b"", b"") {
            let (key, raw) = entry.map_err(|e| StoreError::backend("listing principals", e))?;
            let access_key = String::from_utf8(key)
                .map_err(|_| StoreError::DataLoss { what: "stored access key is not UTF-8".to_owned() })?;
            out.push((access_key, PrincipalRecord::decode(&raw)?));
        }
        Ok(out)
    }

    /// Checks a credential. Unknown keys, revoked keys and wrong secrets all
    /// give `None`; the secret comparison is constant-time.
    pub fn authenticate(&self, access_key: &str, secret: &str) -> Result<Option<Actor>, StoreError> {
        // An unknown or malformed key costs the same HMAC as a known one, so
        // the answer's time does not tell which access keys exist.
        let unknown = || {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[0; 16]);
            let _ = ring::hmac::verify(&key, secret.as_bytes(), &[0; 32]);
            Ok(None)
        };
        let Some(id) = AccessKeyId::new(access_key) else { return unknown() };
        let Some(raw) = View::get(self.backend(), Keyspace::Principals, id.as_str().as_bytes())? else {
            return unknown();
        };
        let record = PrincipalRecord::decode(&raw)?;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &record.salt);
        let matches = ring::hmac::verify(&key, secret.as_bytes(), &record.secret_hash).is_ok();
        if !matches || record.revoked_at.is_some() {
            return Ok(None);
        }
        Ok(Some(Actor { access_key: access_key.to_owned(), role: record.role }))
    }

    /// Creates the first admin when no principal exists yet (first start).
    pub async fn bootstrap_admin(&self) -> Result<Option<NewPrincipal>, StoreError> {
        if self.inner.backend.scan(Keyspace::Principals, b"", b"").next().is_some() {
            return Ok(None);
        }
        self.create_principal(&Actor::system(), "admin", Role::Admin).await.map(Some)
    }

    fn random_base32(&self, len: usize) -> Result<String, StoreError> {
        random_base32(&self.inner.rng, len)
    }

    // ---- ledger ----

    /// Returns the sequence number and hash of the newest ledger entry.
    pub fn ledger_head(&self) -> Result<(u64, Digest), StoreError> {
        meta::load_ledger_head(self.backend())
    }

    /// The root of the ledger's Merkle tree of `size` entries (RFC 9162),
    /// for any size up to the committed head.
    pub fn merkle_root(&self, size: u64) -> Result<Digest, StoreError> {
        let head = self.check_tree_size(size)?;
        crate::merkle::root(&mut crate::tree::StoredTree::new(self.backend(), size, head), size)
    }

    /// Ledger entry `sequence` (its canonical bytes, the Merkle leaf) and its
    /// audit path in the tree of `size` entries: leaf index `sequence - 1`.
    pub fn inclusion_proof(&self, sequence: u64, size: u64) -> Result<InclusionProof, StoreError> {
        let head = self.check_tree_size(size)?;
        if sequence == 0 || sequence > size {
            return Err(StoreError::InvalidArgument(format!(
                "ledger entry {sequence} is not in the tree of the first {size} entries"
            )));
        }
        let raw = View::get(self.backend(), Keyspace::Ledger, &ledger::ledger_key(sequence))?
            .ok_or_else(|| StoreError::DataLoss { what: format!("ledger entry {sequence} is missing") })?;
        let canonical = ledger::split_stored(&raw)
            .map(|(canonical, _)| canonical.to_vec())
            .ok_or_else(|| StoreError::DataLoss { what: format!("ledger entry {sequence} is truncated") })?;
        let mut tree = crate::tree::StoredTree::new(self.backend(), size, head);
        let path = crate::merkle::inclusion_proof(&mut tree, sequence - 1, size)?
            .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        Ok(InclusionProof { leaf_index: sequence - 1, tree_size: size, entry: canonical, path })
    }

    /// The sequence of the ledger entry that wrote version `id` of
    /// `bucket`/`key` (a version or a delete marker; one purged since
    /// included), if the ledger holds one.
    pub fn written_entry(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        id: VersionId,
    ) -> Result<Option<u64>, StoreError> {
        let (head, _) = self.ledger_head()?;
        crate::tree::written_entry(self.backend(), head, bucket.as_str(), key.as_str(), id)
    }

    /// Ledger entries `start..end` (at most `MAX_ENTRIES_PER_READ`; fewer
    /// when the ledger ends first): sequence, canonical bytes, chain hash.
    pub fn entry_bytes(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>, Digest)>, StoreError> {
        let (head, _) = self.ledger_head()?;
        if start == 0 || end <= start || end - start > MAX_ENTRIES_PER_READ {
            return Err(StoreError::InvalidArgument(format!(
                "ask for entries start..end with 1 <= start < end and at most {MAX_ENTRIES_PER_READ} of them"
            )));
        }
        if start > head {
            return Err(StoreError::InvalidArgument(format!("the ledger has {head} entries; {start} is not one yet")));
        }
        let end = end.min(head + 1);
        let mut out = Vec::with_capacity((end - start) as usize);
        for item in self.inner.backend.scan(Keyspace::Ledger, &ledger::ledger_key(start), b"") {
            let (key, raw) = item.map_err(|e| StoreError::backend("reading the ledger", e))?;
            let sequence = start + out.len() as u64;
            if sequence >= end {
                break;
            }
            let stored = ledger::split_stored(&raw).filter(|_| key == ledger::ledger_key(sequence));
            let Some((canonical, hash)) = stored else {
                return Err(StoreError::DataLoss { what: format!("ledger entry {sequence} is missing or truncated") });
            };
            out.push((sequence, canonical.to_vec(), hash));
        }
        if (out.len() as u64) < end - start {
            return Err(StoreError::DataLoss { what: format!("ledger entry {} is missing", start + out.len() as u64) });
        }
        Ok(out)
    }

    /// A tile or entry bundle of the ledger's tree (`tiles.rs`, C2SP
    /// tlog-tiles), once the ledger holds every entry it covers.
    pub fn tile(&self, tile: crate::tiles::Tile) -> Result<Vec<u8>, StoreError> {
        use crate::tiles::Tile;
        let (head, _) = self.ledger_head()?;
        match tile.tree_size_needed() {
            Some(needed) if needed <= head => {}
            _ => {
                return Err(StoreError::InvalidArgument(format!(
                    "{tile} is not in the ledger's tree yet: the ledger has {head} entries"
                )));
            }
        }
        let (first, width) = (tile.first(), u64::from(tile.width()));
        if let Tile::Hashes { level, index, width: 256 } = tile
            && let Some(stored) = meta::load_merkle_tile(self.backend(), level, index)?
        {
            return Ok(stored.iter().flat_map(|d| d.0).collect());
        }
        match tile {
            Tile::Hashes { level: 0, .. } => {
                Ok(crate::tree::leaf_hashes(self.backend(), first, width)?.iter().flat_map(|d| d.0).collect())
            }
            Tile::Hashes { level, .. } => {
                let height = u32::from(level) * crate::tiles::TILE_HEIGHT;
                let mut out = Vec::with_capacity(width as usize * 32);
                for index in first..first + width {
                    let node =
                        meta::load_merkle_node(self.backend(), height, index)?.ok_or_else(|| StoreError::DataLoss {
                            what: format!(
                                "the ledger's Merkle tree has no stored node at height {height}, index {index}"
                            ),
                        })?;
                    out.extend_from_slice(&node.0);
                }
                Ok(out)
            }
            Tile::Entries { .. } => {
                let entries = self.entry_bytes(first + 1, first + 1 + width)?;
                let too_long = entries.iter().find(|(_, entry, _)| entry.len() > crate::tiles::MAX_BUNDLED_ENTRY);
                if let Some((sequence, entry, _)) = too_long {
                    return Err(StoreError::InvalidArgument(format!(
                        "ledger entry {sequence} is {} bytes, more than an entry bundle holds ({}); read it with \
                         GetEntries",
                        entry.len(),
                        crate::tiles::MAX_BUNDLED_ENTRY
                    )));
                }
                Ok(crate::tiles::bundle(entries.iter().map(|(_, entry, _)| entry.as_slice())).expect("lengths checked"))
            }
        }
    }

    /// The proof that the tree of `second` entries extends the tree of
    /// `first` (RFC 9162 §2.1.4): nothing rewritten between them.
    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Digest>, StoreError> {
        let head = self.check_tree_size(second)?;
        let mut tree = crate::tree::StoredTree::new(self.backend(), second, head);
        crate::merkle::consistency_proof(&mut tree, first, second)?
            .map_err(|e| StoreError::InvalidArgument(e.to_string()))
    }

    /// The ledger's head, if it holds the tree of `size`.
    fn check_tree_size(&self, size: u64) -> Result<u64, StoreError> {
        let (head, _) = self.ledger_head()?;
        if size > head {
            return Err(StoreError::InvalidArgument(format!(
                "the ledger has {head} entries; there is no tree of {size} yet"
            )));
        }
        Ok(head)
    }

    /// Returns ledger entries from `from` on, in order, with their stored hashes.
    pub fn ledger_entries(&self, from: u64) -> Result<Vec<(LedgerEntry, Digest)>, StoreError> {
        let start = ledger::ledger_key(from);
        let mut out = Vec::new();
        for entry in self.inner.backend.scan(Keyspace::Ledger, &start, b"") {
            let (_, raw) = entry.map_err(|e| StoreError::backend("reading the ledger", e))?;
            out.push(LedgerEntry::decode_stored(&raw)?);
        }
        Ok(out)
    }

    /// Returns the entries from `from` on, in order, as they are read: for
    /// streaming an audit trail without holding it in memory.
    pub fn ledger_iter(&self, from: u64) -> impl Iterator<Item = Result<(LedgerEntry, Digest), StoreError>> + '_ {
        let start = ledger::ledger_key(from.max(1));
        self.inner.backend.scan(Keyspace::Ledger, &start, b"").map(|item| {
            let (_, raw) = item.map_err(|e| StoreError::backend("reading the ledger", e))?;
            Ok(LedgerEntry::decode_stored(&raw)?)
        })
    }

    // ---- replication progress (`writer/ops/replica.rs`) ----

    /// The ledger sequence replication rule `rule` has copied through (0: none).
    pub fn replica_cursor(&self, rule: &str) -> Result<u64, StoreError> {
        writer::check_rule_name(rule)?;
        meta::load_replica_cursor(self.backend(), rule)
    }

    /// The replica's version id of a version (or marker) `rule` copied.
    pub fn replica_version(
        &self,
        rule: &str,
        bucket: &BucketName,
        key: &ObjectKey,
        id: VersionId,
    ) -> Result<Option<String>, StoreError> {
        writer::check_rule_name(rule)?;
        meta::load_replica_version(self.backend(), rule, &keys::version_key(bucket, key.as_str(), id))
    }

    /// Moves `rule`'s cursor forward to `through` and records the replica
    /// ids of `copied`, in one atomic write; the appliance's replicator
    /// alone calls it (as `Actor::system`).
    pub async fn record_replication(
        &self,
        rule: &str,
        through: u64,
        copied: Vec<Replicated>,
    ) -> Result<(), StoreError> {
        let op = RecordReplication { rule: rule.to_owned(), through, copied };
        self.submit(&Actor::system(), op).await
    }

    /// The copies `rule` recorded, in key order, after `after` (a version
    /// as `(bucket, key, id)`; `None`: from the first), at most `limit`:
    /// `(bucket, key, id, replica version id)`. Delete markers included.
    pub fn replica_copies(
        &self,
        rule: &str,
        after: Option<(&BucketName, &ObjectKey, VersionId)>,
        limit: usize,
    ) -> Result<Vec<(BucketName, ObjectKey, VersionId, String)>, StoreError> {
        writer::check_rule_name(rule)?;
        let after = after.map(|(b, k, id)| keys::version_key(b, k.as_str(), id)).unwrap_or_default();
        let mut out = Vec::new();
        for (version_key, replica_id) in meta::scan_replica_versions(self.backend(), rule, &after, limit)? {
            let malformed = || StoreError::DataLoss { what: "a recorded replica copy names no version".to_owned() };
            let nul = version_key.iter().position(|&b| b == 0).ok_or_else(malformed)?;
            let bucket = std::str::from_utf8(&version_key[..nul])
                .ok()
                .and_then(|b| BucketName::new(b).ok())
                .ok_or_else(malformed)?;
            let (key, id) = keys::decode_version_key(nul + 1, &version_key).ok_or_else(malformed)?;
            let key = ObjectKey::new(&key).map_err(|_| malformed())?;
            out.push((bucket, key, id, replica_id));
        }
        Ok(out)
    }

    /// Where a version's bytes live when they were released locally (the
    /// capacity tier): `None` while they are local.
    pub fn bytes_at(&self, bucket: &BucketName, key: &ObjectKey, id: VersionId) -> Result<Option<BytesAt>, StoreError> {
        meta::load_bytes_at(self.backend(), &keys::version_key(bucket, key.as_str(), id))
    }

    /// Releases the local bytes of a version whose copy `replica_id` on
    /// `rule`'s replica the caller has verified (size, SHA-256, lock, hold):
    /// the appliance's tier pass alone calls it (as `Actor::system`; any
    /// other actor is refused). The writer re-checks that the version exists,
    /// that its bytes are still local and that `replica_id` is the copy the
    /// rule recorded, then removes the chunks, records where the bytes live
    /// and writes a `bytes-released` entry, in one atomic write. Returns the
    /// entry's sequence.
    pub async fn release_bytes(
        &self,
        actor: &Actor,
        rule: &str,
        bucket: BucketName,
        key: ObjectKey,
        id: VersionId,
        replica_id: String,
    ) -> Result<u64, StoreError> {
        self.submit(actor, ReleaseBytes { rule: rule.to_owned(), bucket, key, id, replica_id }).await
    }

    // ---- witnesses (`writer/ops/witness.rs`) ----

    /// Records what witness `witness` said of the checkpoint at `sequence`
    /// (the appliance's witnessing alone calls it; a cosignature the caller
    /// has verified under the witness's configured key).
    pub async fn record_witness(
        &self,
        witness: &str,
        sequence: u64,
        outcome: WitnessOutcome,
    ) -> Result<(), StoreError> {
        writer::check_witness_name(witness)?;
        self.submit(&Actor::system(), RecordWitness { witness: witness.to_owned(), sequence, outcome }).await
    }

    /// The cosignature lines of the checkpoint at `sequence`, by witness.
    pub fn witness_cosignatures(&self, sequence: u64) -> Result<Vec<(String, String)>, StoreError> {
        meta::scan_witness_cosignatures(self.backend(), sequence)
    }

    /// The newest checkpoint `witness` cosigned (its sequence) and when.
    pub fn witness_last(&self, witness: &str) -> Result<Option<(u64, u64)>, StoreError> {
        writer::check_witness_name(witness)?;
        meta::load_witness_last(self.backend(), witness)
    }

    /// Each witness's last refusal.
    pub fn witness_refusals(&self) -> Result<Vec<crate::WitnessRefusal>, StoreError> {
        meta::scan_witness_refusals(self.backend())
    }

    /// Every witness that answered, by name: the newest checkpoint it
    /// cosigned (sequence, timestamp), its last refusal and its first fork
    /// refusal.
    pub fn witnesses(&self) -> Result<Vec<WitnessState>, StoreError> {
        let mut out: std::collections::BTreeMap<String, WitnessState> = std::collections::BTreeMap::new();
        for (name, sequence, timestamp) in meta::scan_witness_last(self.backend())? {
            out.entry(name.clone()).or_insert_with(|| WitnessState::named(name)).cosigned = Some((sequence, timestamp));
        }
        for refusal in meta::scan_witness_refusals(self.backend())? {
            let name = refusal.witness.clone();
            out.entry(name.clone()).or_insert_with(|| WitnessState::named(name)).refusal = Some(refusal);
        }
        for fork in meta::scan_witness_forks(self.backend())? {
            let name = fork.witness.clone();
            out.entry(name.clone()).or_insert_with(|| WitnessState::named(name)).fork = Some(fork);
        }
        Ok(out.into_values().collect())
    }

    /// Signs a checkpoint of the ledger's current head, or returns the one
    /// already signed there. Needs a store opened with a signer.
    pub async fn checkpoint(&self) -> Result<Checkpoint, StoreError> {
        self.submit(&Actor::system(), SignCheckpoint).await
    }

    /// Returns the stored checkpoint at `sequence`.
    pub fn checkpoint_at(&self, sequence: u64) -> Result<Option<Checkpoint>, StoreError> {
        View::get(self.backend(), Keyspace::Checkpoints, &evidence::checkpoint_key(sequence))?
            .map(|raw| Checkpoint::decode(&raw).map_err(StoreError::from))
            .transpose()
    }

    /// Returns the last signed checkpoint, if one was signed (two point
    /// reads: cheap enough for every scrape of the metrics).
    pub fn last_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        match crate::meta::load_last_checkpoint(self.backend())? {
            Some(sequence) => self.checkpoint_at(sequence),
            None => Ok(None),
        }
    }

    /// Returns every stored checkpoint, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.backend.scan(Keyspace::Checkpoints, b"", b"") {
            let (_, raw) = item.map_err(|e| StoreError::backend("reading checkpoints", e))?;
            out.push(Checkpoint::decode(&raw)?);
        }
        Ok(out)
    }

    /// The stored checkpoints signed at entries `after + 1 ..= through`,
    /// oldest first (for a follower copying them in order).
    pub fn checkpoints_between(&self, after: u64, through: u64) -> Result<Vec<Checkpoint>, StoreError> {
        let mut out = Vec::new();
        let start = evidence::checkpoint_key(after.saturating_add(1));
        for item in self.inner.backend.scan(Keyspace::Checkpoints, &start, b"") {
            let (_, raw) = item.map_err(|e| StoreError::backend("reading checkpoints", e))?;
            let checkpoint = Checkpoint::decode(&raw)?;
            if checkpoint.sequence > through {
                break;
            }
            out.push(checkpoint);
        }
        Ok(out)
    }

    /// Verifies everything the ledger attests (see `evidence::verify`).
    /// Reads only; runs beside the writer, reading on to cover what it writes meanwhile.
    pub fn verify_integrity(&self, options: VerifyOptions<'_>) -> Result<IntegrityReport, StoreError> {
        evidence::verify(&*self.inner.backend, options)
    }

    /// Records an integrity check's result in the ledger, as `actor` (the
    /// auditor who asked, or `Actor::system()` for the scrub).
    pub async fn record_integrity(&self, actor: &Actor, report: &IntegrityReport) -> Result<u64, StoreError> {
        let sequence = self.submit(actor, RecordIntegrity { ok: report.is_ok(), detail: report.summary() }).await?;
        let counters = &self.inner.counters;
        let counter = if report.is_ok() { &counters.integrity_passed } else { &counters.integrity_failed };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(sequence)
    }

    /// Integrity verifications recorded since the store opened (the scrub's
    /// and those asked for): how many passed and how many found a divergence.
    pub fn integrity_counts(&self) -> (u64, u64) {
        let counters = &self.inner.counters;
        (
            counters.integrity_passed.load(std::sync::atomic::Ordering::Relaxed),
            counters.integrity_failed.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Recomputes the chain from genesis and compares it with every stored hash
    /// and the recorded head; reports the first divergence as `DataLoss`.
    pub fn verify_ledger(&self) -> Result<LedgerSummary, StoreError> {
        let mut chain = ChainWalker::new();
        for entry in self.inner.backend.scan(Keyspace::Ledger, b"", b"") {
            let (key, raw) = entry.map_err(|e| StoreError::backend("reading the ledger", e))?;
            let (entry, stored_hash) = LedgerEntry::decode_stored(&raw)?;
            // A key that is no sequence number is out of place like a gap.
            let at = <[u8; 8]>::try_from(key.as_slice()).map_or(0, u64::from_be_bytes);
            chain.follow(at, &entry, &stored_hash).map_err(|broken| {
                let what = match broken {
                    ChainBreak::Missing { expected, .. } => {
                        format!("ledger entry {expected} is missing or out of place")
                    }
                    ChainBreak::Altered { sequence } => {
                        format!("ledger entry {sequence} does not match its chain hash")
                    }
                };
                StoreError::DataLoss { what }
            })?;
        }
        let (entries, head) = chain.walked();
        if self.ledger_head()? != (entries, head) {
            return Err(StoreError::DataLoss { what: "recorded ledger head differs from the chain".to_owned() });
        }
        Ok(LedgerSummary { entries, head })
    }
}

/// The most bytes an ETag may have (an MD5 in hex is 32; a multipart one
/// adds `-` and the part count).
pub const MAX_ETAG_BYTES: usize = 64;

/// Checks an S3 ETag as stored (`NewObject::etag`): at most
/// `MAX_ETAG_BYTES`, lower-case hex digits, then optionally one `-` and
/// decimal digits (a multipart upload's part count); no quotes.
pub fn check_etag(etag: &str) -> Result<(), StoreError> {
    let (hex, parts) = match etag.split_once('-') {
        Some((hex, parts)) => (hex, Some(parts)),
        None => (etag, None),
    };
    let well_formed = etag.len() <= MAX_ETAG_BYTES
        && !hex.is_empty()
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && parts.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if well_formed {
        Ok(())
    } else {
        Err(StoreError::InvalidArgument(format!(
            "an ETag is at most {MAX_ETAG_BYTES} bytes of lower-case hex digits, optionally followed by `-` and a part \
             count"
        )))
    }
}

/// A streamed upload in progress. Its chunks are discarded by the writer
/// alone: dropped before its publish is handed over, it hands the writer a
/// discard; after that, the writer discards them if it refuses the publish
/// or the publish's commit fails, since it may be publishing those very
/// chunks while a cancelled caller drops this. Blocking: async callers use
/// the application layer's `AppUpload`, which runs it on blocking threads.
pub struct Upload {
    store: Store,
    upload: u128,
    bucket: BucketName,
    key: ObjectKey,
    object: NewObject,
    hasher: ring::digest::Context,
    buffer: Vec<u8>,
    size: u64,
    chunks: u32,
    /// Set the moment the publish is queued: the chunks are the writer's.
    handed_over: bool,
    /// A write failed after the bytes were counted (a chunk refused for want
    /// of space, or not written): the upload can only be discarded.
    failed: bool,
    /// The disk reserve's ticket for inline bytes queued for publishing.
    space: Option<crate::SpaceTicket>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .field("size", &self.size)
            .field("chunks", &self.chunks)
            .finish_non_exhaustive()
    }
}

impl Upload {
    /// Appends bytes; full chunks are written to the backend (not yet synced,
    /// not yet visible). Blocks on the backend: call it off the async runtime
    /// (`spawn_blocking`, moving the upload in and back out), where a
    /// cancelled caller leaves the upload to be dropped, and so discarded,
    /// on the blocking thread; unless `writes_in_memory`, when it does no IO.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), StoreError> {
        if self.failed {
            return Err(StoreError::InvalidArgument(
                "an earlier write of this upload failed; nothing was stored".into(),
            ));
        }
        let limit = self.store.inner.options.max_object_bytes;
        if self.size + data.len() as u64 > limit {
            return Err(StoreError::TooLarge { limit });
        }
        self.size += data.len() as u64;
        self.hasher.update(data);
        while !data.is_empty() {
            let take = (CHUNK_BYTES - self.buffer.len()).min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buffer.len() == CHUNK_BYTES
                && let Err(err) = self.flush_chunk()
            {
                self.failed = true;
                return Err(err);
            }
        }
        Ok(())
    }

    fn flush_chunk(&mut self) -> Result<(), StoreError> {
        let _space = self.store.check_space(self.buffer.len() as u64)?;
        let mut batch = Batch::new();
        if self.chunks == 0 {
            batch.put(Keyspace::Staging, self.upload.to_be_bytes().to_vec(), Vec::new());
        }
        batch.put(Keyspace::Chunks, keys::chunk_key(self.upload, self.chunks), codec::encode_chunk(&self.buffer));
        self.store
            .backend()
            .commit(&batch, Durability::Buffered)
            .map_err(|e| StoreError::backend("writing a chunk", e))?;
        self.chunks += 1;
        self.buffer.clear();
        Ok(())
    }

    /// Writes the last partial chunk, if the upload is staged in chunks, so
    /// that `finish` does no backend IO of its own. Blocks like `write`.
    pub fn seal(&mut self) -> Result<(), StoreError> {
        if self.needs_seal() {
            self.flush_chunk()?;
        }
        Ok(())
    }

    /// Returns the bytes received so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The SHA-256 of the bytes received so far, for a digest the client
    /// states after the body (which the header's `expected_sha256` cannot).
    pub fn sha256(&self) -> Digest {
        Digest::from_slice(self.hasher.clone().finish().as_ref()).expect("SHA-256 yields 32 bytes")
    }

    /// Sets the S3 ETag stored with the version (`NewObject::etag`), known
    /// only once every byte passed; an ETag that fails `check_etag` is
    /// refused and the one set before (if any) stays.
    pub fn set_etag(&mut self, etag: String) -> Result<(), StoreError> {
        check_etag(&etag)?;
        self.object.etag = Some(etag);
        Ok(())
    }

    /// Returns the bytes held in memory: received, not yet in a chunk.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Whether `write` of `len` more bytes stays in memory: no chunk has
    /// been written and these bytes do not complete one, so the call does
    /// no backend IO (it hashes and copies them).
    pub fn writes_in_memory(&self, len: usize) -> bool {
        self.chunks == 0 && self.buffer.len() + len < CHUNK_BYTES
    }

    /// Whether `seal` has a partial chunk to write (the upload is staged in
    /// chunks and bytes wait after the last one); otherwise it does nothing.
    pub fn needs_seal(&self) -> bool {
        self.chunks > 0 && !self.buffer.is_empty()
    }

    /// Checks the digest and publishes the version durably; writes the last
    /// partial chunk first unless `seal` did (blocking briefly). On any error
    /// nothing is published and the chunks are discarded, by the writer,
    /// before this returns (or, when the writer stops first, by the next
    /// open). Cancelled after the publish was queued, the version may still
    /// be published, whole.
    pub async fn finish(mut self, actor: &Actor) -> Result<WriteAck, StoreError> {
        let put = match self.publication() {
            Ok(put) => put,
            Err(err) => {
                self.discard().await;
                return Err(err);
            }
        };
        let permit = self.store.reserve(writer::queue_cost(&put)).await?;
        let answer = self.store.hand_over(actor, put, Some(permit))?;
        // Set before the next await, so no cancellation falls in between: a
        // caller cancelled from here on (a client gone, a deadline) drops
        // this upload while the writer may be publishing its chunks, so
        // `drop` must leave them alone.
        self.handed_over = true;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// The publish of what was received, once its digest checks out.
    fn publication(&mut self) -> Result<PutVersion, StoreError> {
        let digest = self.sha256();
        check_digest(&self.object, digest)?;
        if self.failed {
            return Err(StoreError::InvalidArgument(
                "an earlier write of this upload failed; nothing was stored".into(),
            ));
        }
        let data = if self.chunks == 0 {
            // Held until the group that writes the bytes answered (`finish` ends).
            self.space = Some(self.store.check_space(self.buffer.len() as u64)?);
            VersionData::Inline(std::mem::take(&mut self.buffer))
        } else {
            if !self.buffer.is_empty() {
                self.flush_chunk()?;
            }
            VersionData::Staged { upload: self.upload, chunks: self.chunks }
        };
        Ok(PutVersion {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            object: std::mem::take(&mut self.object),
            sha256: digest,
            size: self.size,
            data,
        })
    }

    /// Hands the chunks to the writer to discard and waits until they are
    /// gone, or the writer stopped (then the next open discards them).
    async fn discard(mut self) {
        if self.chunks == 0 {
            return;
        }
        self.handed_over = true;
        let discard = DiscardUpload { upload: self.upload, chunks: self.chunks };
        if let Ok(answer) = self.store.hand_over(&Actor::system(), discard, None) {
            let _ = answer.await;
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.handed_over || self.chunks == 0 {
            return;
        }
        // Only the writer discards staged chunks, in a group like any change;
        // the answer is not awaited (no one is left to tell). If the writer
        // has stopped, the upload stays staged and the next open discards it.
        let discard = DiscardUpload { upload: self.upload, chunks: self.chunks };
        if self.store.hand_over(&Actor::system(), discard, None).is_err() {
            tracing::debug!("an abandoned upload is left for the next open to discard");
        }
    }
}

/// Yields a version's bytes chunk by chunk. Each chunk is checked against its
/// own digest before it is returned, and the whole against the version's
/// SHA-256 at the end; corrupt data is never returned.
///
/// A version whose local bytes were released (the capacity tier) says where
/// they live (`released`) and yields no bytes, only an error: the caller
/// reads them from that replica and checks them against `sha256`/`size`
/// before sending any.
pub struct ObjectReader {
    released: Option<BytesAt>,
    backend: Arc<dyn Backend>,
    upload: u128,
    chunks: u32,
    next: u32,
    expected: Digest,
    expected_size: u64,
    size: u64,
    hasher: Option<ring::digest::Context>,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader").field("chunks", &self.chunks).field("next", &self.next).finish_non_exhaustive()
    }
}

impl ObjectReader {
    /// Where the bytes live when they are no longer local (the rule and the
    /// replica's version id); `None`: this reader yields them.
    pub fn released(&self) -> Option<&BytesAt> {
        self.released.as_ref()
    }

    /// The SHA-256 the version's bytes must have (the version record's,
    /// which its ledger entry attests).
    pub fn expected_sha256(&self) -> Digest {
        self.expected
    }

    /// The size the version's bytes must have.
    pub fn expected_size(&self) -> u64 {
        self.expected_size
    }
}

impl Iterator for ObjectReader {
    type Item = Result<Vec<u8>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(at) = &self.released {
            // Never a silent empty body: the caller must read the replica.
            self.hasher.take()?;
            return Some(Err(StoreError::DataLoss {
                what: format!(
                    "the version's bytes live on replication rule `{}`'s replica (version {}), not locally",
                    at.rule, at.replica_id
                ),
            }));
        }
        let hasher = self.hasher.as_mut()?;
        if self.next == self.chunks {
            let hasher = self.hasher.take()?;
            let actual = hasher.finish();
            if actual.as_ref() != self.expected.0 || self.size != self.expected_size {
                return Some(Err(StoreError::DataLoss { what: "version bytes do not match their SHA-256".to_owned() }));
            }
            return None;
        }
        let res = match Backend::get(&*self.backend, Keyspace::Chunks, &keys::chunk_key(self.upload, self.next)) {
            Ok(Some(raw)) => codec::decode_chunk(&raw).map_err(StoreError::from),
            Ok(None) => Err(StoreError::DataLoss { what: format!("chunk {} of the version is missing", self.next) }),
            Err(err) => Err(StoreError::backend("reading a chunk", err)),
        };
        match res {
            Ok(chunk) => {
                hasher.update(&chunk);
                self.size += chunk.len() as u64;
                self.next += 1;
                Some(Ok(chunk))
            }
            Err(err) => {
                self.hasher = None;
                Some(Err(err))
            }
        }
    }
}

/// How far back from the head `check_next_version_id` looks for an entry
/// that names a version.
const ID_CHECK_ENTRIES: u64 = 10_000;

/// The writer issues version ids from the persisted clock mark upwards and
/// does not look each one up: refuse to open when the mark is not above the
/// newest id the ledger names, or new versions could overwrite old ones.
fn check_next_version_id(
    backend: &dyn Backend,
    ledger_sequence: u64,
    last_time: Timestamp,
    last_sequence: u64,
) -> Result<(), StoreError> {
    let next = VersionId::from_parts(u64::try_from(last_time.0).unwrap_or(0), last_sequence);
    let oldest = ledger_sequence.saturating_sub(ID_CHECK_ENTRIES).max(1);
    for sequence in (oldest..=ledger_sequence).rev() {
        // A missing or unreadable entry is integrity verification's to
        // report, on a running appliance: skipped here.
        let Some(raw) = View::get(backend, Keyspace::Ledger, &ledger::ledger_key(sequence))? else { continue };
        let Ok((entry, _)) = LedgerEntry::decode_stored(&raw) else { continue };
        if let Some(id) = entry.version {
            if id >= next {
                return Err(StoreError::DataLoss {
                    what: format!(
                        "the clock mark would issue version id {next} again or below {id}, which ledger entry {sequence} names"
                    ),
                });
            }
            return Ok(());
        }
    }
    Ok(())
}

/// Discards every upload still staged. Safe because the writer removes an
/// upload's staging marker in the same atomic batch that publishes it, and
/// nothing but the writer removes the marker of an upload whose publish was
/// queued: a marker here is an upload whose publish never committed (a crash,
/// or a writer that stopped first), and no writer runs yet to race with.
fn discard_unpublished_uploads(backend: &dyn Backend) -> Result<(), StoreError> {
    let staged: Vec<Vec<u8>> = backend
        .scan(Keyspace::Staging, b"", b"")
        .map(|entry| entry.map(|(key, _)| key))
        .collect::<Result<_, _>>()
        .map_err(|e| StoreError::backend("scanning staged uploads", e))?;
    for key in staged {
        let Ok(upload) = <[u8; 16]>::try_from(key.as_slice()) else { continue };
        let mut batch = Batch::new();
        for entry in backend.scan(Keyspace::Chunks, &upload, &upload) {
            let (chunk_key, _) = entry.map_err(|e| StoreError::backend("scanning staged chunks", e))?;
            batch.delete(Keyspace::Chunks, chunk_key);
        }
        batch.delete(Keyspace::Staging, key);
        backend.commit(&batch, Durability::Synced).map_err(|e| StoreError::backend("discarding an upload", e))?;
        tracing::info!("discarded an upload that never published");
    }
    Ok(())
}

/// `len` random characters of base32 (RFC 4648's alphabet): access keys and secrets.
pub(crate) fn random_base32(rng: &ring::rand::SystemRandom, len: usize) -> Result<String, StoreError> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes).map_err(|_| StoreError::DataLoss { what: "no randomness".to_owned() })?;
    Ok(bytes.iter().map(|b| ALPHABET[usize::from(b & 31)] as char).collect())
}

pub(crate) fn secret_hash(salt: &[u8; 16], secret: &str) -> [u8; 32] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, salt);
    let tag = ring::hmac::sign(&key, secret.as_bytes());
    tag.as_ref().try_into().expect("HMAC-SHA-256 yields 32 bytes")
}

#[cfg(not(wormbox_bench_unhashed))]
fn sha256(data: &[u8]) -> Digest {
    Digest::from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref()).expect("SHA-256 yields 32 bytes")
}

/// The hot path's hashing stubbed out, for the load generator's T5 ratio
/// only (`benches/t5.sh` builds with `RUSTFLAGS=--cfg wormbox_bench_unhashed`
/// in a target directory of its own). Such a build stores versions whose
/// SHA-256 is wrong; no shipped build sets the flag, and a build that has it
/// says so at every open.
#[cfg(wormbox_bench_unhashed)]
fn sha256(data: &[u8]) -> Digest {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&(data.len() as u64).to_be_bytes());
    Digest::from_slice(&bytes).expect("32 bytes")
}

fn check_digest(object: &NewObject, actual: Digest) -> Result<(), StoreError> {
    match object.expected_sha256 {
        Some(expected) if expected != actual => Err(StoreError::ChecksumMismatch { expected, actual }),
        _ => Ok(()),
    }
}

/// The entries of a multi-object delete, each once in the order first
/// named (S3 answers an entry named twice once), if there are 1 to
/// `MAX_DELETE_ENTRIES` of them.
fn distinct_entries(entries: Vec<DeleteEntry>) -> Result<Vec<DeleteEntry>, StoreError> {
    if entries.is_empty() || entries.len() > MAX_DELETE_ENTRIES {
        return Err(StoreError::InvalidArgument(format!(
            "a multi-object delete names 1 to {MAX_DELETE_ENTRIES} objects, not {}",
            entries.len()
        )));
    }
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    Ok(entries.into_iter().filter(|entry| seen.insert(entry.clone())).collect())
}
