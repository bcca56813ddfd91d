//! `ComplianceService`: Object Lock retention and legal holds, and the
//! evidence calls (checkpoints, integrity, audit trail, retention report,
//! a replica verified against the archive).
//!
//! Invariant: every rule is judged by the store inside the writer, in the
//! same atomic write as the change; this file only converts and routes. A
//! code, when given, is judged by the MFA authority inside that write, after
//! the change itself, and spent only if the change then runs.
//! The audit trail and the retention report are produced by the
//! application layer (`wormbox-app`'s `reports.rs`) on blocking threads into bounded
//! channels; this file maps each item to its wire message as it is sent.

use std::sync::Arc;

use futures::stream::{BoxStream, StreamExt};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use wormbox_proto::v1::retention_report_part::Part;
use wormbox_proto::v1::{self, compliance_server::Compliance};
use wormbox_store::retention::S3_HOLD;

use crate::grpc::auth::authenticate;
use crate::grpc::convert;
use crate::grpc::status::{invalid, status};
use wormbox_app::{self as app, App};

/// The Compliance gRPC service.
#[derive(Clone, Debug)]
pub struct ComplianceService {
    app: Arc<App>,
}

impl ComplianceService {
    /// Serves `app`.
    pub fn new(app: Arc<App>) -> ComplianceService {
        ComplianceService { app }
    }
}

impl ComplianceService {
    /// The version a Get request names, read as the caller may see it.
    fn version_info<T>(
        &self,
        request: &Request<T>,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<wormbox_store::VersionInfo, Status> {
        let actor = authenticate(&self.app, request)?;
        let bucket = convert::bucket_name(bucket)?;
        let key = convert::object_key(key)?;
        let version = convert::version_selector(version_id)?;
        self.app.head_object(&actor, &app::GetObject { bucket, key, version }).map_err(status)
    }
}

#[tonic::async_trait]
impl Compliance for ComplianceService {
    async fn put_object_retention(
        &self,
        request: Request<v1::PutObjectRetentionRequest>,
    ) -> Result<Response<v1::PutObjectRetentionResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let r = request.into_inner();
        let bucket = convert::bucket_name(&r.bucket)?;
        let key = convert::object_key(&r.key)?;
        let version = convert::version_selector(&r.version_id)?;
        let retention = convert::retention(r.retention)?;
        let (mfa, bypass_governance) = (convert::mfa(&r.mfa), r.bypass_governance);
        let set = app::PutObjectRetention { bucket, key, version, retention, bypass_governance, mfa };
        let (lock, sequence) = self.app.set_retention(&actor, set).await.map_err(status)?;
        Ok(Response::new(v1::PutObjectRetentionResponse {
            retention: lock.retention.map(convert::retention_to_wire),
            ledger_sequence: sequence.unwrap_or(0),
        }))
    }

    async fn get_object_retention(
        &self,
        request: Request<v1::GetObjectRetentionRequest>,
    ) -> Result<Response<v1::GetObjectRetentionResponse>, Status> {
        let r = request.get_ref();
        let info = self.version_info(&request, &r.bucket, &r.key, &r.version_id)?;
        Ok(Response::new(v1::GetObjectRetentionResponse { retention: info.retention.map(convert::retention_to_wire) }))
    }

    async fn put_object_legal_hold(
        &self,
        request: Request<v1::PutObjectLegalHoldRequest>,
    ) -> Result<Response<v1::PutObjectLegalHoldResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let r = request.into_inner();
        let bucket = convert::bucket_name(&r.bucket)?;
        let key = convert::object_key(&r.key)?;
        let version = convert::version_selector(&r.version_id)?;
        let case_id = if r.case_id.is_empty() { S3_HOLD.to_owned() } else { r.case_id };
        let mfa = convert::mfa(&r.mfa);
        let hold = app::PutObjectLegalHold { bucket, key, version, case_id, place: r.place, note: r.note, mfa };
        let (lock, sequence) = self.app.set_legal_hold(&actor, hold).await.map_err(status)?;
        Ok(Response::new(v1::PutObjectLegalHoldResponse {
            legal_holds: convert::holds_to_wire(&lock.holds),
            ledger_sequence: sequence.unwrap_or(0),
        }))
    }

    async fn get_object_legal_hold(
        &self,
        request: Request<v1::GetObjectLegalHoldRequest>,
    ) -> Result<Response<v1::GetObjectLegalHoldResponse>, Status> {
        let r = request.get_ref();
        let info = self.version_info(&request, &r.bucket, &r.key, &r.version_id)?;
        Ok(Response::new(v1::GetObjectLegalHoldResponse { legal_holds: convert::holds_to_wire(&info.legal_holds) }))
    }

    async fn put_bucket_default_retention(
        &self,
        request: Request<v1::PutBucketDefaultRetentionRequest>,
    ) -> Result<Response<v1::PutBucketDefaultRetentionResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let r = request.into_inner();
        let bucket = convert::bucket_name(&r.bucket)?;
        let default = convert::default_retention(r.default_retention)?;
        let set = app::PutBucketDefaultRetention { bucket, default, mfa: convert::mfa(&r.mfa) };
        let (info, sequence) = self.app.set_default_retention(&actor, set).await.map_err(status)?;
        Ok(Response::new(v1::PutBucketDefaultRetentionResponse {
            bucket: Some(convert::bucket(&info)),
            ledger_sequence: sequence,
        }))
    }

    async fn get_checkpoint(
        &self,
        request: Request<v1::GetCheckpointRequest>,
    ) -> Result<Response<v1::GetCheckpointResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let get = app::GetCheckpoint { sequence: request.get_ref().sequence };
        let checkpoint = self.app.checkpoint(&actor, get).await.map_err(status)?;
        let public_key = self.app.public_key();
        let (mut note, note_verifier_key) = self.app.checkpoint_note(&checkpoint).unwrap_or_default();
        let store = self.app.store();
        let cosigned = store.witness_cosignatures(checkpoint.sequence).map_err(status)?;
        let mut cosignatures = Vec::new();
        for (name, line) in cosigned {
            let timestamp = wormbox_witness::cosign::timestamp_of(&line).unwrap_or_default();
            if !note.is_empty() {
                note.push_str(&line);
            }
            cosignatures.push(v1::WitnessCosignature { name, timestamp, line });
        }
        let witnesses = store.witnesses().map_err(status)?.into_iter().map(convert::witness_to_wire).collect();
        Ok(Response::new(v1::GetCheckpointResponse {
            checkpoint: Some(convert::checkpoint_to_wire(&checkpoint, public_key)),
            public_key: public_key.to_vec(),
            note,
            note_verifier_key,
            cosignatures,
            witnesses,
        }))
    }

    async fn verify_integrity(
        &self,
        request: Request<v1::VerifyIntegrityRequest>,
    ) -> Result<Response<v1::VerifyIntegrityResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let r = request.into_inner();
        let extra_checkpoints =
            r.checkpoints.into_iter().map(convert::checkpoint_from_wire).collect::<Result<Vec<_>, _>>()?;
        let from_checkpoint = (r.from_checkpoint != 0).then_some(r.from_checkpoint);
        let verify = app::VerifyIntegrity { from_checkpoint, extra_checkpoints };
        let (report, sequence) = self.app.verify_integrity(&actor, verify).await.map_err(status)?;
        Ok(Response::new(convert::integrity_to_wire(&report, sequence)))
    }

    async fn verify_replica(
        &self,
        request: Request<v1::VerifyReplicaRequest>,
    ) -> Result<Response<v1::VerifyReplicaResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let report = self.app.verify_replica(&actor, &request.get_ref().rule).await.map_err(status)?;
        Ok(Response::new(convert::replica_report_to_wire(&report)))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<v1::GetInclusionProofRequest>,
    ) -> Result<Response<v1::GetInclusionProofResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let r = request.into_inner();
        let of = if r.bucket.is_empty() {
            if r.ledger_sequence == 0 {
                return Err(invalid("name a version (bucket, key, version_id) or a ledger_sequence"));
            }
            app::ProofOf::Entry(r.ledger_sequence)
        } else {
            let version = convert::version_selector(&r.version_id)?
                .ok_or_else(|| invalid("a proof is of one version: give its version_id"))?;
            app::ProofOf::Version {
                bucket: convert::bucket_name(&r.bucket)?,
                key: convert::object_key(&r.key)?,
                version,
            }
        };
        let get = app::GetInclusionProof { of, tree_size: r.tree_size };
        let (proof, checkpoint) = self.app.inclusion_proof(&actor, get).await.map_err(status)?;
        let public_key = self.app.public_key();
        Ok(Response::new(v1::GetInclusionProofResponse {
            ledger_sequence: proof.leaf_index + 1,
            entry: proof.entry,
            path: proof.path.iter().map(|h| h.0.to_vec()).collect(),
            checkpoint: Some(convert::checkpoint_to_wire(&checkpoint, public_key)),
            public_key: public_key.to_vec(),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<v1::GetConsistencyProofRequest>,
    ) -> Result<Response<v1::GetConsistencyProofResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let r = request.into_inner();
        let get = app::GetConsistencyProof { old_size: r.old_size, new_size: r.new_size };
        let (path, old, new) = self.app.consistency_proof(&actor, get).await.map_err(status)?;
        let public_key = self.app.public_key();
        Ok(Response::new(v1::GetConsistencyProofResponse {
            path: path.iter().map(|h| h.0.to_vec()).collect(),
            old: Some(convert::checkpoint_to_wire(&old, public_key)),
            new: Some(convert::checkpoint_to_wire(&new, public_key)),
            public_key: public_key.to_vec(),
        }))
    }

    async fn get_entries(
        &self,
        request: Request<v1::GetEntriesRequest>,
    ) -> Result<Response<v1::GetEntriesResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let r = request.into_inner();
        let entries = self.app.entries(&actor, r.start, r.end).await.map_err(status)?;
        Ok(Response::new(v1::GetEntriesResponse {
            entries: entries
                .into_iter()
                .map(|(sequence, entry, hash)| v1::LedgerEntryBytes { sequence, entry, chain_hash: hash.0.to_vec() })
                .collect(),
        }))
    }

    async fn get_tile(&self, request: Request<v1::GetTileRequest>) -> Result<Response<v1::GetTileResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let data = self.app.tile(&actor, &request.into_inner().path).await.map_err(status)?;
        Ok(Response::new(v1::GetTileResponse { data }))
    }

    type AuditLogStream = BoxStream<'static, Result<v1::AuditEntry, Status>>;

    async fn audit_log(&self, request: Request<v1::AuditLogRequest>) -> Result<Response<Self::AuditLogStream>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let filter = convert::audit_filter(request.into_inner())?;
        let entries = self.app.audit_log(&actor, filter).map_err(status)?;
        let wire = ReceiverStream::new(entries)
            .map(|item| item.map(|(entry, hash)| convert::audit_entry(&entry, &hash)).map_err(status));
        Ok(Response::new(wire.boxed()))
    }

    type RetentionReportStream = BoxStream<'static, Result<v1::RetentionReportPart, Status>>;

    async fn retention_report(
        &self,
        request: Request<v1::RetentionReportRequest>,
    ) -> Result<Response<Self::RetentionReportStream>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let r = request.into_inner();
        let report = app::RetentionReport { bucket: r.bucket, prefix: r.prefix };
        let report = self.app.retention_report(&actor, report).await.map_err(status)?;
        let app::RetentionReportStream { header, before, public_key, parts } = report;
        let wire_header = v1::RetentionReportHeader {
            checkpoint: Some(convert::checkpoint_to_wire(&before, &public_key)),
            public_key,
            now_unix_micros: header.now_unix_micros,
            total_rows: header.total_rows,
            bucket: header.bucket,
            prefix: header.prefix,
        };
        let first = futures::stream::once(std::future::ready(Ok(part(Part::Header(wire_header)))));
        let rest = ReceiverStream::new(parts).map(|item| match item.map_err(status)? {
            app::ReportPart::Row(row) => Ok(part(Part::Row(convert::report_row(&row)))),
            app::ReportPart::Summary(summary) => Ok(part(Part::Summary(convert::report_summary(&summary)?))),
        });
        Ok(Response::new(first.chain(rest).boxed()))
    }
}

fn part(p: Part) -> v1::RetentionReportPart {
    v1::RetentionReportPart { part: Some(p) }
}
