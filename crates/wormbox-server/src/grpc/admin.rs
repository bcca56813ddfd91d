//! `AdminService`: principals and the compliance clock. Only the `admin` role
//! passes `App`'s checks (GetClock is open to every role).
//!
//! Invariant: a secret is returned exactly once, by CreatePrincipal, and
//! never listed or logged.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use wormbox_proto::v1::{self, admin_server::Admin};

use crate::app::App;
use crate::grpc::auth::authenticate;
use crate::grpc::status::{from_mfa, from_store, invalid};

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

#[tonic::async_trait]
impl Admin for AdminService {
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
        let (status, sequence) =
            self.app.accept_clock_forward(&actor, &request.get_ref().mfa).await.map_err(|e| from_mfa(&e))?;
        Ok(Response::new(v1::AcceptClockForwardResponse {
            compliance_unix_micros: status.compliance.as_micros(),
            ledger_sequence: sequence,
        }))
    }
}
