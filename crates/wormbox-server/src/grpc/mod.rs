//! Server assembly: the Archive, Compliance, Admin and Mfa services, health, reflection (v1
//! and v1alpha, since grpcurl 1.8 speaks only v1alpha), message limits, the
//! receive budget of Ingest and PutObject, and a tracing span per request.
//! Each of our services sees a client's reset of a request stream as an
//! error (`reset`), never as its end. Every call is counted when it ends
//! (`counted`), refusals of the authentication gate included.
//!
//! Invariant: handlers do no blocking store work on the async runtime: scans
//! and backend writes run on blocking threads (`blocking`; upload writes
//! inside `app::AppUpload`).

pub mod admin;
pub mod archive;
mod auth;
pub mod budget;
pub mod compliance;
mod convert;
mod counted;
mod gate;
pub(crate) mod hangup;
pub mod mfa;
mod reset;
pub(crate) mod status;

use std::sync::Arc;

use tonic::Status;
use tonic::service::Routes;
use wormbox_proto::v1::{
    admin_server::AdminServer, archive_server::ArchiveServer, compliance_server::ComplianceServer,
    mfa_server::MfaServer,
};

use crate::grpc::counted::Counted;
use crate::grpc::gate::Authenticated;
use crate::grpc::reset::ResetIsError;
use crate::metrics::Metrics;
use wormbox_app::App;

/// Runs `work` on a blocking thread: store scans and backend writes, which
/// would otherwise hold a runtime thread and every request queued on it.
/// Cancelled, the caller stops waiting; `work` still runs to its end there,
/// and drops what it owns there.
/// It runs in the caller's span, so what it logs names the call's method.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Status> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|e| Status::internal(format!("a blocking task failed: {e}")))
}

/// Builds every service the appliance serves.
pub(crate) async fn routes(
    app: Arc<App>,
    max_message_bytes: usize,
    budget: budget::ReceiveBudget,
    metrics: Arc<Metrics>,
) -> Result<(Routes, tonic_health::server::HealthReporter), tonic_reflection::server::Error> {
    // Answers are allowed 4 MiB, what clients decode by default, even where
    // `max_message_bytes` is smaller: an IngestBatch answer holds one ack per
    // record of its message (up to 512, each with an error message when
    // refused), a few hundred KB at most. Other answers are far smaller.
    let archive = ArchiveServer::new(archive::ArchiveService::new(Arc::clone(&app)))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes.max(4 << 20));
    let archive = budget::Metered::new(archive, budget);
    let compliance = ComplianceServer::new(compliance::ComplianceService::new(Arc::clone(&app)))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    let admin = AdminServer::new(admin::AdminService::new(Arc::clone(&app)))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    let gate = Arc::clone(&app);
    let mfa = MfaServer::new(mfa::MfaService::new(app))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<ArchiveServer<archive::ArchiveService>>().await;
    health_reporter.set_serving::<AdminServer<admin::AdminService>>().await;
    health_reporter.set_serving::<MfaServer<mfa::MfaService>>().await;
    health_reporter.set_serving::<ComplianceServer<compliance::ComplianceService>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(wormbox_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(wormbox_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let mut routes = Routes::builder();
    routes
        .add_service(Counted::new(ResetIsError(Authenticated::new(archive, Arc::clone(&gate))), Arc::clone(&metrics)))
        .add_service(Counted::new(
            ResetIsError(Authenticated::new(compliance, Arc::clone(&gate))),
            Arc::clone(&metrics),
        ))
        .add_service(Counted::new(ResetIsError(Authenticated::new(admin, Arc::clone(&gate))), Arc::clone(&metrics)))
        .add_service(Counted::new(ResetIsError(Authenticated::new(mfa, gate)), Arc::clone(&metrics)))
        .add_service(Counted::new(health, Arc::clone(&metrics)))
        .add_service(Counted::new(reflection_v1, Arc::clone(&metrics)))
        .add_service(Counted::new(reflection_v1alpha, metrics));
    Ok((routes.routes(), health_reporter))
}
