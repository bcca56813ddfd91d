//! `AdminService`: principals and the compliance clock. Only the `admin` role
//! passes `App`'s checks (GetClock is open to every role).
//!
//! Invariant: a secret is returned exactly once, by CreatePrincipal, and
//! never listed or logged.

use std::sync::Arc;
use tonic::{Request, Response, Status};
use wormbox_proto::v1::{self, admin_server::Admin};

use std::io::Read;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::app::App;
use crate::backup::Snapshot;
use crate::grpc::auth::authenticate;
use crate::grpc::convert;
use crate::grpc::status::{from_backup, from_mfa, from_store, invalid};

/// The Admin gRPC service.
#[derive(Clone, Debug)]
pub struct AdminService {
    app: Arc<App>,
}

impl AdminService {
    /// Serves `app`.
    pub fn new(app: Arc<App>) -> AdminService {
        AdminService { app }
    }
}

/// The size of the data parts a backup is streamed in.
const BACKUP_PART_BYTES: usize = 1 << 20;

#[tonic::async_trait]
impl Admin for AdminService {
    type BackupStream = ReceiverStream<Result<v1::BackupChunk, Status>>;

    async fn backup(&self, request: Request<v1::BackupRequest>) -> Result<Response<Self::BackupStream>, Status> {
        let actor = authenticate(&self.app, request.metadata())?;
        let snapshot = self.app.backup(&actor).await.map_err(|e| from_backup(&e))?;
        tracing::info!(
            ledger_sequence = snapshot.manifest().ledger_sequence,
            files = snapshot.manifest().files.len(),
            principal = %actor.access_key,
            "streaming a backup"
        );
        // Few parts in flight: the copy is read as the client takes it.
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || stream_snapshot(&snapshot, &tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn create_principal(
        &self,
        request: Request<v1::CreatePrincipalRequest>,
    ) -> Result<Response<v1::CreatePrincipalResponse>, Status> {
        let actor = authenticate(&self.app, request.metadata())?;
        let request = request.into_inner();
        let role = wormbox_proto::role_from_wire(request.role)
            .ok_or_else(|| invalid("role must be ADMIN, WRITER, READER or AUDITOR"))?;
        let created = self
            .app
            .create_principal(&actor, &request.name, role, request.bypass_governance)
            .await
            .map_err(|e| from_store(&e))?;
        Ok(Response::new(v1::CreatePrincipalResponse {
            principal: Some(v1::Principal {
                access_key_id: created.access_key,
                name: request.name,
                role: wormbox_proto::role_to_wire(role) as i32,
                revoked: false,
                created_at_unix_micros: 0,
                bypass_governance: request.bypass_governance,
            }),
            secret: created.secret,
            ledger_sequence: created.ledger_sequence,
        }))
    }

    async fn list_principals(
        &self,
        request: Request<v1::ListPrincipalsRequest>,
    ) -> Result<Response<v1::ListPrincipalsResponse>, Status> {
        let actor = authenticate(&self.app, request.metadata())?;
        let principals = self.app.principals(&actor).map_err(|e| from_store(&e))?;
        Ok(Response::new(v1::ListPrincipalsResponse {
            principals: principals
                .into_iter()
                .map(|(access_key_id, record)| v1::Principal {
                    access_key_id,
                    name: record.name,
                    role: wormbox_proto::role_to_wire(record.role) as i32,
                    revoked: record.revoked_at.is_some(),
                    created_at_unix_micros: record.created_at.as_micros(),
                    bypass_governance: record.bypass_governance,
                })
                .collect(),
        }))
    }

    async fn revoke_principal(
        &self,
        request: Request<v1::RevokePrincipalRequest>,
    ) -> Result<Response<v1::RevokePrincipalResponse>, Status> {
        let actor = authenticate(&self.app, request.metadata())?;
        let access_key = request.into_inner().access_key_id;
        let sequence = self.app.revoke_principal(&actor, &access_key).await.map_err(|e| from_store(&e))?;
        Ok(Response::new(v1::RevokePrincipalResponse { ledger_sequence: sequence.unwrap_or(0) }))
    }

    async fn get_clock(&self, request: Request<v1::GetClockRequest>) -> Result<Response<v1::GetClockResponse>, Status> {
        let actor = authenticate(&self.app, request.metadata())?;
        let status = self.app.clock_status(&actor).await.map_err(|e| from_store(&e))?;
        Ok(Response::new(v1::GetClockResponse {
            system_unix_micros: status.system.as_micros(),
            compliance_unix_micros: status.compliance.as_micros(),
            held_back_seconds: status.held_back.map_or(0, |d| d.as_secs()),
        }))
    }

    async fn accept_clock_forward(
        &self,
        request: Request<v1::AcceptClockForwardRequest>,
    ) -> Result<Response<v1::AcceptClockForwardResponse>, Status> {
        let actor = authenticate(&self.app, request.metadata())?;
        let mfa = convert::mfa(&request.get_ref().mfa);
        let (status, sequence) = self.app.accept_clock_forward(&actor, mfa).await.map_err(|e| from_mfa(&e))?;
        Ok(Response::new(v1::AcceptClockForwardResponse {
            compliance_unix_micros: status.compliance.as_micros(),
            ledger_sequence: sequence,
        }))
    }
}

/// Sends every file of the snapshot, then its manifest; stops when the client
/// goes away. The snapshot (and with it the staged copy) is dropped by the caller.
fn stream_snapshot(snapshot: &Snapshot, tx: &mpsc::Sender<Result<v1::BackupChunk, Status>>) {
    use v1::backup_chunk::Part;
    let send = |part: Part| tx.blocking_send(Ok(v1::BackupChunk { part: Some(part) })).is_ok();
    let fail = |what: String| {
        tracing::error!(error = %what, "backup stream failed");
        let _ = tx.blocking_send(Err(Status::internal("the backup could not be read; see the server log")));
    };
    let manifest = snapshot.manifest();
    for file in &manifest.files {
        let part = v1::BackupFile { path: file.path.clone(), size: file.size, sha256: file.sha256.clone() };
        if !send(Part::File(part)) {
            return;
        }
        let path = snapshot.dir().join(&file.path);
        let mut reader = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => return fail(format!("{}: {e}", path.display())),
        };
        loop {
            let mut buf = vec![0u8; BACKUP_PART_BYTES];
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if !send(Part::Data(buf)) {
                        return;
                    }
                }
                Err(e) => return fail(format!("{}: {e}", path.display())),
            }
        }
    }
    match serde_json::to_string_pretty(manifest) {
        Ok(json) => {
            let _ = send(Part::ManifestJson(json));
        }
        Err(e) => fail(e.to_string()),
    }
}
