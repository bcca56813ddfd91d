//! `wormbox principal create|list|revoke`: the appliance's principals.
//!
//! Invariant: a new principal's secret is printed once, in the create reply,
//! and never again; a role outside admin, writer, reader and auditor is
//! refused before any request.

use anyhow::bail;
use clap::Subcommand;
use serde_json::{Value, json};
use wormbox_proto::v1;

use crate::commands::Context;

#[derive(Debug, Subcommand)]
pub(crate) enum PrincipalCommand {
    /// Create a principal; its secret is printed once. An admin or the bypass
    /// right needs --mfa from your own device once an admin has an active device.
    Create {
        name: String,
        /// admin, writer, reader or auditor.
        #[arg(long)]
        role: String,
        /// Grant the right to override GOVERNANCE retention.
        #[arg(long)]
        bypass_governance: bool,
    },
    List,
    /// Revoke a principal's key; an admin's needs --mfa from your own device
    /// once an admin has an active device.
    Revoke {
        access_key_id: String,
    },
}

pub(crate) async fn run(cx: &Context, command: PrincipalCommand) -> anyhow::Result<()> {
    let mut admin = cx.clients.admin();
    match command {
        PrincipalCommand::Create { name, role, bypass_governance } => {
            let role = match role.as_str() {
                "admin" => v1::Role::Admin,
                "writer" => v1::Role::Writer,
                "reader" => v1::Role::Reader,
                "auditor" => v1::Role::Auditor,
                other => bail!("role must be admin, writer, reader or auditor, not `{other}`"),
            };
            let mfa = cx.mfa.optional_code()?;
            let request = v1::CreatePrincipalRequest { name, role: role as i32, bypass_governance, mfa };
            let reply = admin.create_principal(request).await?;
            let reply = reply.into_inner();
            let principal = reply.principal.unwrap_or_default();
            let credential = format!("{}:{}", principal.access_key_id, reply.secret);
            let value = json!({"access_key_id": principal.access_key_id, "credential": credential});
            cx.print(value, format!("credential (shown once): {credential}"));
        }
        PrincipalCommand::List => {
            let reply = admin.list_principals(v1::ListPrincipalsRequest {}).await?.into_inner();
            let role_name = |role: i32| match v1::Role::try_from(role) {
                Ok(v1::Role::Admin) => "admin",
                Ok(v1::Role::Writer) => "writer",
                Ok(v1::Role::Reader) => "reader",
                Ok(v1::Role::Auditor) => "auditor",
                _ => "unknown",
            };
            let text = reply
                .principals
                .iter()
                .map(|p| {
                    let state = if p.revoked { "revoked" } else { "active" };
                    format!("{}  {:8}  {:7}  {}", p.access_key_id, role_name(p.role), state, p.name)
                })
                .collect::<Vec<_>>()
                .join("\n");
            let value = Value::Array(
                        reply
                            .principals
                            .iter()
                            .map(|p| {
                                json!({"access_key_id": p.access_key_id, "name": p.name, "role": role_name(p.role), "revoked": p.revoked})
                            })
                            .collect(),
                    );
            cx.print(value, text);
        }
        PrincipalCommand::Revoke { access_key_id } => {
            let reply = admin
                .revoke_principal(v1::RevokePrincipalRequest {
                    access_key_id: access_key_id.clone(),
                    mfa: cx.mfa.optional_code()?,
                })
                .await?
                .into_inner();
            let value = json!({"revoked": access_key_id, "ledger_sequence": reply.ledger_sequence});
            cx.print(value, format!("revoked {access_key_id}"));
        }
    }
    Ok(())
}
