//! `wormbox principal create|list|revoke|s3-key`: the appliance's principals
//! and their S3 secrets.
//!
//! Invariant: a new principal's secret (and an S3 secret) is printed once,
//! in the create reply, and never again; a role outside admin, writer,
//! reader and auditor is refused before any request.

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
        /// Also give it an S3 secret (printed once; its S3 access key id is
        /// its access key id).
        #[arg(long)]
        s3: bool,
    },
    List,
    /// Revoke a principal's key; an admin's needs --mfa from your own device
    /// once an admin has an active device.
    Revoke {
        access_key_id: String,
    },
    /// A principal's S3 secret (one at a time).
    #[command(subcommand)]
    S3Key(S3KeyCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum S3KeyCommand {
    /// Give a principal an S3 secret, printed once; an admin's or a bypass
    /// holder's needs --mfa from your own device once an admin has an
    /// active device. Refused while it has one: revoke that first.
    Create { access_key_id: String },
    /// Remove a principal's S3 secret.
    Revoke { access_key_id: String },
}

pub(crate) async fn run(cx: &Context, command: PrincipalCommand) -> anyhow::Result<()> {
    let mut admin = cx.clients.admin();
    match command {
        PrincipalCommand::Create { name, role, bypass_governance, s3 } => {
            let role = match role.as_str() {
                "admin" => v1::Role::Admin,
                "writer" => v1::Role::Writer,
                "reader" => v1::Role::Reader,
                "auditor" => v1::Role::Auditor,
                other => bail!("role must be admin, writer, reader or auditor, not `{other}`"),
            };
            let mfa = cx.mfa.optional_code()?;
            let request = v1::CreatePrincipalRequest { name, role: role as i32, bypass_governance, mfa, s3 };
            let reply = admin.create_principal(request).await?;
            let reply = reply.into_inner();
            let principal = reply.principal.unwrap_or_default();
            let credential = format!("{}:{}", principal.access_key_id, reply.secret);
            let mut value = json!({"access_key_id": principal.access_key_id, "credential": credential});
            let mut text = format!("credential (shown once): {credential}");
            if s3 {
                value["s3_secret_access_key"] = json!(reply.s3_secret);
                text.push_str(&format!(
                    "\nS3 access key id: {}\nS3 secret access key (shown once): {}",
                    principal.access_key_id, reply.s3_secret
                ));
            }
            cx.print(value, text);
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
                    let s3 = if p.has_s3_key { "s3" } else { "--" };
                    format!("{}  {:8}  {:7}  {:2}  {}", p.access_key_id, role_name(p.role), state, s3, p.name)
                })
                .collect::<Vec<_>>()
                .join("\n");
            let value = Value::Array(
                        reply
                            .principals
                            .iter()
                            .map(|p| {
                                json!({"access_key_id": p.access_key_id, "name": p.name, "role": role_name(p.role), "revoked": p.revoked, "has_s3_key": p.has_s3_key})
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
        PrincipalCommand::S3Key(S3KeyCommand::Create { access_key_id }) => {
            let request = v1::CreateS3KeyRequest { access_key_id, mfa: cx.mfa.optional_code()? };
            let reply = admin.create_s3_key(request).await?.into_inner();
            let value = json!({
                "access_key_id": reply.access_key_id,
                "s3_secret_access_key": reply.secret,
                "ledger_sequence": reply.ledger_sequence,
            });
            let text = format!(
                "S3 access key id: {}\nS3 secret access key (shown once): {}",
                reply.access_key_id, reply.secret
            );
            cx.print(value, text);
        }
        PrincipalCommand::S3Key(S3KeyCommand::Revoke { access_key_id }) => {
            let request = v1::RevokeS3KeyRequest { access_key_id: access_key_id.clone() };
            let reply = admin.revoke_s3_key(request).await?.into_inner();
            let value = json!({"s3_key_revoked": access_key_id, "ledger_sequence": reply.ledger_sequence});
            let text = if reply.ledger_sequence == 0 {
                format!("{access_key_id} had no S3 key")
            } else {
                format!("revoked the S3 key of {access_key_id}")
            };
            cx.print(value, text);
        }
    }
    Ok(())
}
