//! `ComplianceService`: Object Lock retention and legal holds.
//!
//! Invariant: every rule is judged by the store inside the writer, in the
//! same atomic write as the change; this file only converts and routes. A
//! code, when given, is spent by the MFA authority before the store judges.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use wormbox_proto::v1::{self, compliance_server::Compliance};
use wormbox_store::retention::S3_HOLD;

use crate::app::App;
use crate::grpc::auth::authenticate;
use crate::grpc::convert;
use crate::grpc::status::{from_mfa, from_store};

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
    fn version_info(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<wormbox_store::VersionInfo, Status> {
        let actor = authenticate(&self.app, metadata)?;
        let bucket = convert::bucket_name(bucket)?;
        let key = convert::object_key(key)?;
        let version = convert::version_selector(version_id)?;
        self.app.head_object(&actor, &bucket, &key, version).map_err(|e| from_store(&e))
    }
}

#[tonic::async_trait]
impl Compliance for ComplianceService {
    async fn put_object_retention(
        &self,
        request: Request<v1::PutObjectRetentionRequest>,
    ) -> Result<Response<v1::PutObjectRetentionResponse>, Status> {
        let actor = authenticate(&self.app, request.metadata())?;
        let r = request.into_inner();
        let bucket = convert::bucket_name(&r.bucket)?;
        let key = convert::object_key(&r.key)?;
        let version = convert::version_selector(&r.version_id)?;
        let retention = convert::retention(r.retention)?;
        let (lock, sequence) = self
            .app
            .set_retention(&actor, bucket, key, version, retention, r.bypass_governance, convert::mfa(&r.mfa))
            .await
            .map_err(|e| from_mfa(&e))?;
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
        let info = self.version_info(request.metadata(), &r.bucket, &r.key, &r.version_id)?;
        Ok(Response::new(v1::GetObjectRetentionResponse { retention: info.retention.map(convert::retention_to_wire) }))
    }

    async fn put_object_legal_hold(
        &self,
        request: Request<v1::PutObjectLegalHoldRequest>,
    ) -> Result<Response<v1::PutObjectLegalHoldResponse>, Status> {
        let actor = authenticate(&self.app, request.metadata())?;
        let r = request.into_inner();
        let bucket = convert::bucket_name(&r.bucket)?;
        let key = convert::object_key(&r.key)?;
        let version = convert::version_selector(&r.version_id)?;
        let case_id = if r.case_id.is_empty() { S3_HOLD.to_owned() } else { r.case_id };
        let (lock, sequence) = self
            .app
            .set_legal_hold(&actor, bucket, key, version, case_id, r.place, r.note)
            .await
            .map_err(|e| from_store(&e))?;
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
        let info = self.version_info(request.metadata(), &r.bucket, &r.key, &r.version_id)?;
        Ok(Response::new(v1::GetObjectLegalHoldResponse { legal_holds: convert::holds_to_wire(&info.legal_holds) }))
    }

    async fn put_bucket_default_retention(
        &self,
        request: Request<v1::PutBucketDefaultRetentionRequest>,
    ) -> Result<Response<v1::PutBucketDefaultRetentionResponse>, Status> {
        let actor = authenticate(&self.app, request.metadata())?;
        let r = request.into_inner();
        let bucket = convert::bucket_name(&r.bucket)?;
        let default = convert::default_retention(r.default_retention)?;
        let (info, sequence) =
            self.app.set_default_retention(&actor, bucket, default).await.map_err(|e| from_store(&e))?;
        Ok(Response::new(v1::PutBucketDefaultRetentionResponse {
            bucket: Some(convert::bucket(&info)),
            ledger_sequence: sequence,
        }))
    }
}
