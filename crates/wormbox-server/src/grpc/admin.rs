//! `AdminService`: principals, the compliance clock, backups and the
//! replication status. Only the `admin` role passes `App`'s checks (GetClock
//! is open to every role, GetReplicationStatus to auditors too).
//!
//! Invariant: a secret is returned exactly once, by CreatePrincipal (an S3
//! secret by CreatePrincipal with `s3` or by CreateS3Key), and never listed
//! or logged.
//!
//! Invariant: a backup stream ends when its client goes away, takes nothing
//! for the send timeout, or the server stops; the staged copy is removed
//! before the slot is given up, and a stream the client stopped reading is
//! ended by closing its connection (see `hangup`).

use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};
use wormbox_proto::v1::{self, admin_server::Admin};

use std::io::Read;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::grpc::auth::authenticate;
use crate::grpc::convert;
use crate::grpc::hangup::Hangup;
use crate::grpc::status::{invalid, status};
use wormbox_app::backup::Snapshot;
use wormbox_app::{self as app, App};

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
        let actor = authenticate(&self.app, &request)?;
        // Absent only on a connection not accepted through `hangup::incoming`.
        let hangup = request.extensions().get::<Hangup>().cloned();
        let snapshot = self.app.backup(&actor).await.map_err(status)?;
        tracing::info!(
            ledger_sequence = snapshot.manifest().ledger_sequence,
            files = snapshot.manifest().files.len(),
            principal = %actor.access_key,
            "streaming a backup"
        );
        // Few parts in flight: the copy is read as the client takes it.
        let (tx, rx) = mpsc::channel(4);
        let mut outlet = Outlet {
            tx,
            runtime: tokio::runtime::Handle::current(),
            timeout: snapshot.send_timeout(),
            stopping: snapshot.stopping(),
        };
        tokio::task::spawn_blocking(move || {
            // The staged copy, and with it the slot, is gone when this returns.
            let ended = stream_snapshot(snapshot, &mut outlet);
            if let Err(why @ (Ended::Stalled | Ended::Stopping)) = ended {
                tracing::warn!(why = why.as_str(), "backup ended before the client took it all; its copy is removed");
                // What is queued for the client can leave only when it
                // reads: closing the connection is what ends the stream.
                if let Some(hangup) = hangup {
                    hangup.hang_up();
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn create_principal(
        &self,
        request: Request<v1::CreatePrincipalRequest>,
    ) -> Result<Response<v1::CreatePrincipalResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let request = request.into_inner();
        let role = wormbox_proto::role_from_wire(request.role)
            .ok_or_else(|| invalid("role must be ADMIN, WRITER, READER or AUDITOR"))?;
        let create = app::CreatePrincipal {
            name: request.name.clone(),
            role,
            bypass_governance: request.bypass_governance,
            s3: request.s3,
            mfa: convert::mfa(&request.mfa),
        };
        let created = self.app.create_principal(&actor, create).await.map_err(status)?;
        let has_s3_key = created.s3_secret.is_some();
        Ok(Response::new(v1::CreatePrincipalResponse {
            principal: Some(v1::Principal {
                access_key_id: created.principal.access_key,
                name: request.name,
                role: wormbox_proto::role_to_wire(role) as i32,
                revoked: false,
                created_at_unix_micros: 0,
                bypass_governance: request.bypass_governance,
                has_s3_key,
            }),
            secret: created.principal.secret,
            ledger_sequence: created.principal.ledger_sequence,
            s3_secret: created.s3_secret.map(|s| s.to_string()).unwrap_or_default(),
        }))
    }

    async fn create_s3_key(
        &self,
        request: Request<v1::CreateS3KeyRequest>,
    ) -> Result<Response<v1::CreateS3KeyResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let request = request.into_inner();
        let create = app::CreateS3Key { access_key: request.access_key_id, mfa: convert::mfa(&request.mfa) };
        let created = self.app.create_s3_key(&actor, create).await.map_err(status)?;
        Ok(Response::new(v1::CreateS3KeyResponse {
            access_key_id: created.access_key,
            secret: created.secret.to_string(),
            ledger_sequence: created.ledger_sequence,
        }))
    }

    async fn revoke_s3_key(
        &self,
        request: Request<v1::RevokeS3KeyRequest>,
    ) -> Result<Response<v1::RevokeS3KeyResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let revoke = app::RevokeS3Key { access_key: request.into_inner().access_key_id };
        let sequence = self.app.revoke_s3_key(&actor, revoke).await.map_err(status)?;
        Ok(Response::new(v1::RevokeS3KeyResponse { ledger_sequence: sequence.unwrap_or(0) }))
    }

    async fn list_principals(
        &self,
        request: Request<v1::ListPrincipalsRequest>,
    ) -> Result<Response<v1::ListPrincipalsResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let app = Arc::clone(&self.app);
        let principals = super::blocking(move || app.principals(&actor)).await?.map_err(status)?;
        Ok(Response::new(v1::ListPrincipalsResponse {
            principals: principals
                .into_iter()
                .map(|app::ListedPrincipal { access_key, record, has_s3_key }| v1::Principal {
                    access_key_id: access_key,
                    name: record.name,
                    role: wormbox_proto::role_to_wire(record.role) as i32,
                    revoked: record.revoked_at.is_some(),
                    created_at_unix_micros: record.created_at.as_micros(),
                    bypass_governance: record.bypass_governance,
                    has_s3_key,
                })
                .collect(),
        }))
    }

    async fn revoke_principal(
        &self,
        request: Request<v1::RevokePrincipalRequest>,
    ) -> Result<Response<v1::RevokePrincipalResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let request = request.into_inner();
        let revoke = app::RevokePrincipal { access_key: request.access_key_id, mfa: convert::mfa(&request.mfa) };
        let sequence = self.app.revoke_principal(&actor, revoke).await.map_err(status)?;
        Ok(Response::new(v1::RevokePrincipalResponse { ledger_sequence: sequence.unwrap_or(0) }))
    }

    async fn get_clock(&self, request: Request<v1::GetClockRequest>) -> Result<Response<v1::GetClockResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let clock = self.app.clock_status(&actor).await.map_err(status)?;
        Ok(Response::new(convert::clock_to_wire(&clock)))
    }

    async fn get_replication_status(
        &self,
        request: Request<v1::GetReplicationStatusRequest>,
    ) -> Result<Response<v1::GetReplicationStatusResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let rules = self.app.replication_status(&actor).await.map_err(status)?;
        Ok(Response::new(v1::GetReplicationStatusResponse {
            rules: rules.iter().map(convert::replica_status_to_wire).collect(),
        }))
    }

    async fn get_status(
        &self,
        request: Request<v1::GetStatusRequest>,
    ) -> Result<Response<v1::GetStatusResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let s = self.app.status(&actor).await.map_err(status)?;
        Ok(Response::new(convert::appliance_status_to_wire(&s, self.app.public_key())))
    }

    async fn accept_clock_forward(
        &self,
        request: Request<v1::AcceptClockForwardRequest>,
    ) -> Result<Response<v1::AcceptClockForwardResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let accept = app::AcceptClockForward { mfa: convert::mfa(&request.get_ref().mfa) };
        let (clock, sequence) = self.app.accept_clock_forward(&actor, accept).await.map_err(status)?;
        Ok(Response::new(v1::AcceptClockForwardResponse {
            compliance_unix_micros: clock.compliance.as_micros(),
            ledger_sequence: sequence,
        }))
    }
}

/// Why a backup stream ended before its manifest was taken.
#[derive(Debug)]
enum Ended {
    /// The client went away.
    Gone,
    /// The client took nothing for the send timeout.
    Stalled,
    /// The server is stopping.
    Stopping,
    /// The staged copy could not be read (logged; the client was told, if it was reading).
    Failed,
}

impl Ended {
    fn as_str(&self) -> &'static str {
        match self {
            Ended::Gone => "the client went away",
            Ended::Stalled => "the client took nothing for the send timeout",
            Ended::Stopping => "the server is stopping",
            Ended::Failed => "the staged copy could not be read",
        }
    }
}

/// Where the streaming thread hands parts to the client's stream.
#[derive(Debug)]
struct Outlet {
    tx: mpsc::Sender<Result<v1::BackupChunk, Status>>,
    /// The server's runtime, whose timers the blocking thread waits with.
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    stopping: watch::Receiver<bool>,
}

impl Outlet {
    /// Hands one message over, waiting (on this blocking thread) until the
    /// transport takes it, the client has taken nothing for the timeout, or
    /// the server stops.
    fn send(&mut self, message: Result<v1::BackupChunk, Status>) -> Result<(), Ended> {
        let Outlet { tx, runtime, timeout, stopping } = self;
        runtime.block_on(async {
            tokio::select! {
                // A stopping server ends the stream even while the client reads.
                biased;
                _ = stopping.wait_for(|stop| *stop) => Err(Ended::Stopping),
                sent = tokio::time::timeout(*timeout, tx.send(message)) => match sent {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(Ended::Gone),
                    Err(_) => Err(Ended::Stalled),
                },
            }
        })
    }
}

/// Sends every file of the snapshot, then its manifest; stops when the client
/// goes away or stalls, or the server stops. The snapshot (and with it the
/// staged copy and the slot) is dropped before the manifest is sent, or on
/// the way out.
fn stream_snapshot(snapshot: Snapshot, outlet: &mut Outlet) -> Result<(), Ended> {
    use v1::backup_chunk::Part;
    let chunk = |part: Part| Ok(v1::BackupChunk { part: Some(part) });
    let fail = |outlet: &mut Outlet, what: String| {
        tracing::error!(error = %what, "backup stream failed");
        let _ = outlet.send(Err(Status::internal("the backup could not be read; see the server log")));
        Err(Ended::Failed)
    };
    let manifest = snapshot.manifest();
    for file in &manifest.files {
        let entry = v1::BackupFile { path: file.path.clone(), size: file.size, sha256: file.sha256.clone() };
        outlet.send(chunk(Part::File(entry)))?;
        let path = snapshot.dir().join(&file.path);
        let mut reader = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => return fail(outlet, format!("{}: {e}", path.display())),
        };
        loop {
            let mut buf = vec![0u8; BACKUP_PART_BYTES];
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    outlet.send(chunk(Part::Data(buf)))?;
                }
                Err(e) => return fail(outlet, format!("{}: {e}", path.display())),
            }
        }
    }
    let json = serde_json::to_string_pretty(manifest);
    // Every byte of the copy is handed over: it goes, and the slot with it,
    // before the manifest tells the client that the backup is complete, so
    // that the client's next backup finds the slot free.
    drop(snapshot);
    match json {
        Ok(json) => outlet.send(chunk(Part::ManifestJson(json))),
        Err(e) => fail(outlet, e.to_string()),
    }
}
