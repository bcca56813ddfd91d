//! `ArchiveService`: authenticate, convert, call `App`, convert back.
//!
//! Invariant: handlers hold no rules of their own beyond a stream's framing,
//! and a PutObject body is handed to the store for publishing only once the
//! stream ended cleanly and its end message (or header digest), when given,
//! matches what arrived. Streams are bounded: every Ingest record and
//! PutObject message holds its bytes of the receive budget (`budget.rs`)
//! until it is answered, an Ingest stream has at most `MAX_IN_FLIGHT` records
//! awaiting durability or their acknowledgement (IngestBatch: one message's
//! worth more, and two answers of at most `MAX_BATCH_RECORDS` acks waiting
//! for the client), and a GetObject stream at
//! most a few chunks in memory. Listings run on blocking threads, and so do
//! upload writes, inside `AppUpload`, which keeps the cancellation rules.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use futures::stream::{FuturesOrdered, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use wormbox_proto::v1::{self, archive_server::Archive};
use wormbox_proto::{MAX_BATCH_METADATA_ENTRIES, MAX_BATCH_RECORDS};
use wormbox_store::{Actor, DeleteEntry, ListObjectsParams, ListVersionsParams, MAX_DELETE_ENTRIES, StoreError};

use crate::grpc::auth::authenticate;
use crate::grpc::blocking;
use crate::grpc::budget::{ReceiveBudget, Tickets};
use crate::grpc::convert::{self, optional};
use crate::grpc::status::{invalid, reason_of, status};
use wormbox_app::{self as app, Access, App, AppError, AppUpload};

/// Records of one Ingest or IngestBatch stream that may await durability or
/// the sending of their acknowledgement at once (an IngestBatch stream may
/// exceed it by the records of its last message).
const MAX_IN_FLIGHT: usize = 512;

/// The Archive gRPC service.
#[derive(Clone, Debug)]
pub struct ArchiveService {
    app: Arc<App>,
}

impl ArchiveService {
    /// Serves `app`.
    pub fn new(app: Arc<App>) -> ArchiveService {
        ArchiveService { app }
    }
}

/// Whether a PutObject body is the one the client says it finished: its end
/// message, when it sends one, must match what arrived. A client's reset is
/// already an error (`reset.rs`); a stream without an end message that ends
/// cleanly is taken whole, as DESIGN.md's PutObject (header, then chunks)
/// has it, which is what a client that resets with NO_ERROR (hyper reads it
/// as the end of the body) also gets: the whole messages it chose to send.
fn check_end(upload: &AppUpload, end: Option<v1::PutObjectEnd>) -> Result<(), Status> {
    let Some(end) = end else {
        return Ok(());
    };
    let size = upload.size().map_err(status)?;
    if end.size != size {
        return Err(invalid(format!(
            "PutObject's end message states {} bytes but {size} arrived: nothing was stored",
            end.size,
        )));
    }
    if !end.sha256.is_empty() {
        let expected = convert::digest(&end.sha256, "the end message's sha256")?;
        let actual = upload.sha256().map_err(status)?;
        if expected != actual {
            return Err(status(StoreError::ChecksumMismatch { expected, actual }));
        }
    }
    Ok(())
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Stores one record; `budget`, the record's share of the receive budget,
/// goes back once it is stored (before a sync rule's wait for the replica).
/// A record stored whose replica copy is not confirmed in time is answered
/// with its version id and ledger sequence beside its `REPLICA_PENDING`
/// error: it stands, and is not to be sent again.
fn ingest_one(
    app: Arc<App>,
    actor: Actor,
    record: v1::IngestRecord,
    budget: OwnedSemaphorePermit,
) -> BoxFuture<v1::IngestAck> {
    Box::pin(async move {
        let sequence = record.sequence;
        let mut budget = Some(budget);
        let res = async {
            let bucket = convert::bucket_name(&record.bucket).map_err(|s| (s, None))?;
            let key = convert::object_key_owned(record.key).map_err(|s| (s, None))?;
            let user_metadata =
                convert::user_metadata(record.user_metadata, record.skipped_metadata).map_err(|s| (s, None))?;
            let object = convert::new_object(
                record.content_type,
                user_metadata,
                &record.expected_sha256,
                record.retention,
                String::new(),
            )
            .map_err(|s| (s, None))?;
            let put = app::PutObject { bucket, key, object };
            let stored = || drop(budget.take());
            app.ingest(&actor, app::Ingest { put, data: record.data }, stored).await.map_err(|err| match err {
                AppError::ReplicaPending(ref p) => {
                    let stored = (p.version_id.clone(), p.sequence);
                    (status(err), Some(stored))
                }
                err => (status(err), None),
            })
        }
        .await;
        drop(budget);
        match res {
            Ok(ack) => v1::IngestAck {
                sequence,
                version_id: ack.version_id,
                sha256: ack.sha256.0.to_vec(),
                ledger_sequence: ack.ledger_sequence,
                error: None,
            },
            Err((status, stored)) => {
                let (version_id, ledger_sequence) = stored.unwrap_or_default();
                v1::IngestAck {
                    sequence,
                    version_id,
                    ledger_sequence,
                    error: Some(v1::IngestError { reason: reason_of(&status), message: status.message().to_owned() }),
                    ..v1::IngestAck::default()
                }
            }
        }
    })
}

impl ArchiveService {
    /// What an Ingest or IngestBatch stream needs, once its caller is known
    /// to be allowed to write: a caller who may not takes none of the
    /// receive budget, since its stream is not read at all (each record is
    /// judged again when stored).
    fn ingest_stream<M>(&self, request: Request<Streaming<M>>) -> Result<IngestStream<M>, Status> {
        let actor = authenticate(&self.app, &request)?;
        self.app.authorize(&actor, Access::Write).map_err(status)?;
        let tickets = Tickets::of(&request)?;
        Ok((Arc::clone(&self.app), actor, tickets, request.into_inner()))
    }
}

/// The service, the caller, the stream's receive budget tickets, the stream.
type IngestStream<M> = (Arc<App>, Actor, Tickets, Streaming<M>);

/// Serves an Ingest or IngestBatch stream: takes each message with its share
/// of the receive budget to `store`, which starts storing its records and
/// says how many it holds, and sends the answers in the messages' order.
/// The next message is read only while fewer than `MAX_IN_FLIGHT` records
/// await durability or the sending of their answer (a message counts at
/// least one, so that empty messages cannot pile up answers a client does
/// not read); records go on being stored, returning their budget, while a
/// client is slow to read. A message `store` refuses, or a failed read, ends
/// the stream with that error once the messages before it are answered.
async fn drive_ingest<M, R>(
    mut input: Streaming<M>,
    tickets: Tickets,
    tx: mpsc::Sender<Result<R, Status>>,
    store: impl Fn(M, OwnedSemaphorePermit) -> Result<(usize, BoxFuture<R>), Status>,
) where
    M: Send + 'static,
    R: Send + 'static,
    Streaming<M>: futures::Stream<Item = Result<M, Status>>,
{
    let mut pending = FuturesOrdered::new();
    let mut answered = VecDeque::new();
    let mut in_flight = 0;
    let mut input_done = false;
    let mut input_error = None;
    loop {
        tokio::select! {
            biased;
            room = tx.reserve(), if !answered.is_empty() => match room {
                Ok(room) => {
                    let (records, answer) = answered.pop_front().expect("not empty");
                    in_flight -= records;
                    room.send(Ok(answer));
                }
                Err(_) => return,
            },
            Some(done) = pending.next(), if !pending.is_empty() => answered.push_back(done),
            message = input.message(), if !input_done && in_flight < MAX_IN_FLIGHT => {
                let stored = match message {
                    Ok(Some(message)) => tickets.take().and_then(|budget| store(message, budget)).map(Some),
                    Ok(None) => Ok(None),
                    Err(status) => Err(status),
                };
                match stored {
                    Ok(Some((records, answer))) => {
                        let records = records.max(1);
                        in_flight += records;
                        pending.push_back(async move { (records, answer.await) });
                    }
                    Ok(None) => input_done = true,
                    Err(status) => {
                        input_done = true;
                        input_error = Some(status);
                    }
                }
            }
            else => break,
        }
    }
    if let Some(status) = input_error {
        let _ = tx.send(Err(status)).await;
    }
}

#[tonic::async_trait]
impl Archive for ArchiveService {
    async fn create_bucket(
        &self,
        request: Request<v1::CreateBucketRequest>,
    ) -> Result<Response<v1::CreateBucketResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let bucket = convert::bucket_name(&request.get_ref().bucket)?;
        let create = app::CreateBucket { bucket, object_lock: request.get_ref().object_lock };
        let (info, ledger_sequence) = self.app.create_bucket(&actor, create).await.map_err(status)?;
        Ok(Response::new(v1::CreateBucketResponse { bucket: Some(convert::bucket(&info)), ledger_sequence }))
    }

    async fn get_bucket(
        &self,
        request: Request<v1::GetBucketRequest>,
    ) -> Result<Response<v1::GetBucketResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let bucket = convert::bucket_name(&request.get_ref().bucket)?;
        let info = self.app.bucket(&actor, &app::GetBucket { bucket }).map_err(status)?;
        Ok(Response::new(v1::GetBucketResponse { bucket: Some(convert::bucket(&info)) }))
    }

    async fn list_buckets(
        &self,
        request: Request<v1::ListBucketsRequest>,
    ) -> Result<Response<v1::ListBucketsResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let app = Arc::clone(&self.app);
        let buckets = blocking(move || app.buckets(&actor)).await?.map_err(status)?;
        Ok(Response::new(v1::ListBucketsResponse { buckets: buckets.iter().map(convert::bucket).collect() }))
    }

    async fn delete_bucket(
        &self,
        request: Request<v1::DeleteBucketRequest>,
    ) -> Result<Response<v1::DeleteBucketResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let bucket = convert::bucket_name(&request.get_ref().bucket)?;
        let ledger_sequence = self.app.delete_bucket(&actor, app::DeleteBucket { bucket }).await.map_err(status)?;
        Ok(Response::new(v1::DeleteBucketResponse { ledger_sequence }))
    }

    async fn put_bucket_versioning(
        &self,
        request: Request<v1::PutBucketVersioningRequest>,
    ) -> Result<Response<v1::PutBucketVersioningResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let request = request.into_inner();
        let bucket = convert::bucket_name(&request.bucket)?;
        let state = wormbox_proto::versioning_from_wire(request.status)
            .ok_or_else(|| invalid("status must be UNVERSIONED, ENABLED or SUSPENDED"))?;
        let mfa_delete = convert::mfa_delete(request.mfa_delete)?;
        let change = app::PutBucketVersioning { bucket, state, mfa_delete, mfa: convert::mfa(&request.mfa) };
        let (info, sequence) = self.app.set_versioning(&actor, change).await.map_err(status)?;
        Ok(Response::new(v1::PutBucketVersioningResponse {
            bucket: Some(convert::bucket(&info)),
            ledger_sequence: sequence.unwrap_or(0),
        }))
    }

    async fn put_object(
        &self,
        request: Request<Streaming<v1::PutObjectRequest>>,
    ) -> Result<Response<v1::PutObjectResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        // Before the first message is read: a caller who may not write takes
        // none of the receive budget.
        self.app.authorize(&actor, Access::Write).map_err(status)?;
        let tickets = Tickets::of(&request)?;
        let budget = ReceiveBudget::of(&request)?;
        let mut stream = request.into_inner();
        let header = match stream.message().await? {
            Some(v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Header(header)) }) => header,
            Some(_) => return Err(invalid("the first PutObject message must be the header")),
            None => return Err(invalid("PutObject stream ended before its header")),
        };
        drop(tickets.take()?);
        let bucket = convert::bucket_name(&header.bucket)?;
        let key = convert::object_key(&header.key)?;
        let object = convert::new_object(
            header.content_type,
            convert::user_metadata(header.user_metadata, header.skipped_metadata)?,
            &header.expected_sha256,
            header.retention,
            header.legal_hold,
        )?;
        let mut upload = self.app.begin_upload(&actor, app::PutObject { bucket, key, object }).map_err(status)?;
        // The budget of the chunk the upload keeps in memory, until it is
        // published or dropped; taken while this call holds no other budget.
        let buffer = budget.reserve_chunk().await?;
        // A stream error (a client reset, see `reset`, or a broken
        // connection) drops the upload, which discards its chunks: nothing
        // is published.
        let mut end = None;
        while let Some(message) = stream.message().await? {
            // The message's bytes are answered once they are in the upload.
            let _message = tickets.take()?;
            match (message.part, &end) {
                (Some(v1::put_object_request::Part::Data(data)), None) => {
                    upload.write(data).await.map_err(status)?;
                }
                (Some(v1::put_object_request::Part::End(stated)), None) => end = Some(stated),
                (Some(v1::put_object_request::Part::Data(_) | v1::put_object_request::Part::End(_)), Some(_)) => {
                    return Err(invalid("PutObject's end message must be its last"));
                }
                (Some(v1::put_object_request::Part::Header(_)), _) => {
                    return Err(invalid("PutObject carries exactly one header"));
                }
                (None, _) => return Err(invalid("PutObject message has no part")),
            }
        }
        check_end(&upload, end)?;
        // The chunk's budget returns once the version is stored: a sync
        // rule's wait for the replica holds none of it.
        let ack = upload.finish(&actor, move || drop(buffer)).await.map_err(status)?;
        Ok(Response::new(v1::PutObjectResponse {
            version_id: ack.version_id,
            sha256: ack.sha256.0.to_vec(),
            size: ack.size,
            ledger_sequence: ack.ledger_sequence,
        }))
    }

    type IngestStream = ReceiverStream<Result<v1::IngestAck, Status>>;

    async fn ingest(
        &self,
        request: Request<Streaming<v1::IngestRecord>>,
    ) -> Result<Response<Self::IngestStream>, Status> {
        let (app, actor, tickets, input) = self.ingest_stream(request)?;
        let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
        tokio::spawn(drive_ingest(input, tickets, tx, move |record: v1::IngestRecord, mut budget| {
            // Admitted at what a message of its length may hold; it keeps
            // what it does hold until stored and returns the rest now.
            let held = record.held_bytes().min(budget.num_permits());
            let held = budget.split(held).expect("no more than the permit holds");
            drop(budget);
            Ok((1, ingest_one(Arc::clone(&app), actor.clone(), record, held)))
        }));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type IngestBatchStream = ReceiverStream<Result<v1::IngestBatchResponse, Status>>;

    async fn ingest_batch(
        &self,
        request: Request<Streaming<v1::IngestBatchRequest>>,
    ) -> Result<Response<Self::IngestBatchStream>, Status> {
        let (app, actor, tickets, input) = self.ingest_stream(request)?;
        // Two answers wait for the client at most: each holds up to
        // MAX_BATCH_RECORDS acks, where Ingest's hold one.
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(drive_ingest(input, tickets, tx, move |batch: v1::IngestBatchRequest, mut budget| {
            // Records beyond the limit were counted, not kept, while the
            // message was decoded (`wormbox_proto::v1::IngestBatchRequest`).
            let sent = batch.sent();
            if sent > MAX_BATCH_RECORDS {
                return Err(invalid(format!(
                    "an IngestBatch message holds {sent} records, at most {MAX_BATCH_RECORDS} are accepted: \
                     none of its records was stored"
                )));
            }
            if batch.too_many_names() {
                return Err(invalid(format!(
                    "an IngestBatch message's records carry more than {MAX_BATCH_METADATA_ENTRIES} user metadata \
                     names in all: none of its records was stored (send fewer records per message)"
                )));
            }
            let acks: Vec<_> = batch
                .records
                .into_iter()
                .map(|record| {
                    // Each record holds what it holds until stored, as
                    // through Ingest.
                    let share = record.held_bytes().min(budget.num_permits());
                    let share = budget.split(share).expect("no more than the permit holds");
                    ingest_one(Arc::clone(&app), actor.clone(), record, share)
                })
                .collect();
            // The rest is framing, fields the decoder skipped and what the
            // admission counted for structures the message does not hold:
            // returned now, not after a sync rule's wait.
            drop(budget);
            let answer: BoxFuture<v1::IngestBatchResponse> =
                Box::pin(async move { v1::IngestBatchResponse { acks: futures::future::join_all(acks).await } });
            Ok((sent, answer))
        }));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type GetObjectStream = ReceiverStream<Result<v1::GetObjectResponse, Status>>;

    async fn get_object(
        &self,
        request: Request<v1::GetObjectRequest>,
    ) -> Result<Response<Self::GetObjectStream>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let request = request.into_inner();
        let bucket = convert::bucket_name(&request.bucket)?;
        let key = convert::object_key(&request.key)?;
        let version = convert::version_selector(&request.version_id)?;
        let get = app::GetObject { bucket, key, version };
        let (info, reader) = self.app.read_object(&actor, &get).await.map_err(status)?;
        let (tx, rx) = mpsc::channel(2);
        let metadata =
            v1::GetObjectResponse { part: Some(v1::get_object_response::Part::Metadata(convert::version(&info))) };
        tokio::task::spawn_blocking(move || {
            if tx.blocking_send(Ok(metadata)).is_err() {
                return;
            }
            for chunk in reader {
                let message = chunk
                    .map(|data| v1::GetObjectResponse { part: Some(v1::get_object_response::Part::Data(data)) })
                    .map_err(status);
                let failed = message.is_err();
                if tx.blocking_send(message).is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn head_object(
        &self,
        request: Request<v1::HeadObjectRequest>,
    ) -> Result<Response<v1::HeadObjectResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let request = request.into_inner();
        let bucket = convert::bucket_name(&request.bucket)?;
        let key = convert::object_key(&request.key)?;
        let version = convert::version_selector(&request.version_id)?;
        let info = self.app.head_object(&actor, &app::GetObject { bucket, key, version }).map_err(status)?;
        Ok(Response::new(v1::HeadObjectResponse { version: Some(convert::version(&info)) }))
    }

    async fn delete_object(
        &self,
        request: Request<v1::DeleteObjectRequest>,
    ) -> Result<Response<v1::DeleteObjectResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let request = request.into_inner();
        let bucket = convert::bucket_name(&request.bucket)?;
        let key = convert::object_key(&request.key)?;
        let version = convert::version_selector(&request.version_id)?;
        let mfa = convert::mfa(&request.mfa);
        let delete = app::DeleteObject { bucket, key, version, mfa, bypass_governance: request.bypass_governance };
        let outcome = self.app.delete_object(&actor, delete).await.map_err(status)?;
        Ok(Response::new(v1::DeleteObjectResponse {
            version_id: outcome.version_id.unwrap_or_default(),
            delete_marker: outcome.delete_marker,
            ledger_sequence: outcome.ledger_sequence.unwrap_or(0),
        }))
    }

    async fn delete_objects(
        &self,
        request: Request<v1::DeleteObjectsRequest>,
    ) -> Result<Response<v1::DeleteObjectsResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let request = request.into_inner();
        let bucket = convert::bucket_name(&request.bucket)?;
        // Counted before any entry is parsed (entries past the limit were
        // counted, not kept, when the request was decoded); one bad entry
        // refuses them all.
        const { assert!(wormbox_proto::MAX_DELETE_OBJECTS == MAX_DELETE_ENTRIES) };
        if request.named() == 0 || request.named() > MAX_DELETE_ENTRIES {
            return Err(invalid(format!(
                "DeleteObjects names 1 to {MAX_DELETE_ENTRIES} objects, not {}",
                request.named()
            )));
        }
        let mut entries = Vec::with_capacity(request.objects.len());
        for (index, object) in request.objects.iter().enumerate() {
            let bad = |status: Status| invalid(format!("object {index}: {}", status.message()));
            let key = convert::object_key(&object.key).map_err(bad)?;
            let version = convert::version_selector(&object.version_id).map_err(bad)?;
            entries.push(DeleteEntry { key, version });
        }
        let mfa = convert::mfa(&request.mfa);
        let delete = app::DeleteObjects { bucket, entries, mfa, bypass_governance: request.bypass_governance };
        let each = self.app.delete_objects(&actor, delete).await.map_err(status)?;
        let mut response = v1::DeleteObjectsResponse::default();
        for outcome in each {
            let key = outcome.entry.key.to_string();
            let version_id = outcome.entry.version.map(|v| v.to_string()).unwrap_or_default();
            match outcome.result {
                Ok(_) if request.quiet => {}
                Ok(done) => response.deleted.push(v1::DeletedObject {
                    key,
                    version_id,
                    delete_marker: done.delete_marker,
                    delete_marker_version_id: if done.delete_marker {
                        done.version_id.unwrap_or_default()
                    } else {
                        String::new()
                    },
                    ledger_sequence: done.ledger_sequence.unwrap_or(0),
                }),
                Err(err) => {
                    let refused = status(err);
                    response.errors.push(v1::DeleteObjectError {
                        key,
                        version_id,
                        reason: reason_of(&refused),
                        message: refused.message().to_owned(),
                    });
                }
            }
        }
        Ok(Response::new(response))
    }

    async fn list_object_versions(
        &self,
        request: Request<v1::ListObjectVersionsRequest>,
    ) -> Result<Response<v1::ListObjectVersionsResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let request = request.into_inner();
        let bucket = convert::bucket_name(&request.bucket)?;
        let params = ListVersionsParams {
            prefix: request.prefix,
            delimiter: optional(request.delimiter),
            key_marker: optional(request.key_marker),
            version_id_marker: optional(request.version_id_marker),
            max_keys: request.max_keys as usize,
        };
        let list = app::ListObjectVersions { bucket, params };
        let app = Arc::clone(&self.app);
        let page = blocking(move || app.list_versions(&actor, &list)).await?.map_err(status)?;
        let (markers, versions): (Vec<_>, Vec<_>) = page.entries.iter().partition(|v| v.is_delete_marker);
        Ok(Response::new(v1::ListObjectVersionsResponse {
            versions: versions.into_iter().map(convert::version).collect(),
            delete_markers: markers.into_iter().map(convert::version).collect(),
            common_prefixes: page.common_prefixes,
            is_truncated: page.is_truncated,
            next_key_marker: page.next_key_marker.unwrap_or_default(),
            next_version_id_marker: page.next_version_id_marker.unwrap_or_default(),
        }))
    }

    async fn list_objects(
        &self,
        request: Request<v1::ListObjectsRequest>,
    ) -> Result<Response<v1::ListObjectsResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let request = request.into_inner();
        let bucket = convert::bucket_name(&request.bucket)?;
        // The continuation token is the last key or prefix the page looked
        // at (a page may end early, after a bounded scan); it wins over
        // start_after when both are given, as in S3.
        let start_after = optional(request.continuation_token).or(optional(request.start_after));
        let params = ListObjectsParams {
            prefix: request.prefix,
            delimiter: optional(request.delimiter),
            start_after,
            max_keys: request.max_keys as usize,
        };
        let list = app::ListObjects { bucket, params };
        let app = Arc::clone(&self.app);
        let page = blocking(move || app.list_objects(&actor, &list)).await?.map_err(status)?;
        Ok(Response::new(v1::ListObjectsResponse {
            objects: page.objects.iter().map(convert::version).collect(),
            common_prefixes: page.common_prefixes,
            is_truncated: page.is_truncated,
            next_continuation_token: page.next_start_after.unwrap_or_default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use wormbox_proto::RECORD_HELD_BYTES;

    use super::*;

    /// The decoded record and its conversion take up to about 1.2 KiB of
    /// what the receive budget counts for a record (`RECORD_HELD_BYTES`,
    /// measured in wormbox-proto's `tests/held_bytes.rs`); the task that
    /// ingests it must fit beside them.
    #[tokio::test]
    async fn the_task_ingesting_a_record_fits_in_what_the_budget_counts_for_it() {
        let appliance = wormbox_test_utils::TestAppliance::start().await.unwrap();
        let app = Arc::clone(appliance.server().app());
        let budget = Arc::new(tokio::sync::Semaphore::new(1)).acquire_owned().await.unwrap();
        let task = ingest_one(app, Actor::system(), v1::IngestRecord::default(), budget);
        let size = std::mem::size_of_val(&*task);
        assert!(size + 1536 <= RECORD_HELD_BYTES, "the ingest task takes {size} bytes");
    }
}
