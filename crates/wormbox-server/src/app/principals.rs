//! Principals: create, list, revoke (admins only).
//!
//! Invariant: a secret is returned once, by `create_principal`, and never
//! listed; minting an admin or the bypass right, and revoking an admin, on
//! a guarded appliance need a code from one of the caller's own devices,
//! judged after the change itself (`guard.rs`): a stolen key must not mint
//! power or remove the admins who hold tokens.

use wormbox_mfa::Operation;
use wormbox_model::Role;
use wormbox_store::{Actor, NewPrincipal, PrincipalRecord};

use crate::app::guard::Guard;
use crate::app::{Access, App, AppError, MfaCode};

/// CreatePrincipal.
#[derive(Clone, Debug)]
pub struct CreatePrincipal {
    /// A name for people.
    pub name: String,
    /// The role.
    pub role: Role,
    /// Whether it may override GOVERNANCE retention.
    pub bypass_governance: bool,
    /// `SERIAL CODE` of one of the caller's own devices.
    pub mfa: Option<MfaCode>,
}

/// RevokePrincipal.
#[derive(Clone, Debug)]
pub struct RevokePrincipal {
    /// The principal's access key id.
    pub access_key: String,
    /// `SERIAL CODE` of one of the caller's own devices.
    pub mfa: Option<MfaCode>,
}

impl App {
    /// CreatePrincipal.
    pub async fn create_principal(&self, actor: &Actor, request: CreatePrincipal) -> Result<NewPrincipal, AppError> {
        let CreatePrincipal { name, role, bypass_governance, mfa } = request;
        self.authorize(actor, Access::Admin)?;
        let bypass = if bypass_governance { " bypass-governance" } else { "" };
        let what = format!("create-principal role={}{bypass}", role.as_str());
        let guard = if role == Role::Admin || bypass_governance { Guard::Power } else { Guard::Unguarded };
        let operation = Operation { bucket: String::new(), what };
        self.guarded(actor, guard, mfa.as_ref(), operation, |_, code| {
            self.store.create_principal_checked(actor, &name, role, bypass_governance, code)
        })
        .await
    }

    /// ListPrincipals. Scans: call it off the async runtime.
    pub fn principals(&self, actor: &Actor) -> Result<Vec<(String, PrincipalRecord)>, AppError> {
        self.authorize(actor, Access::Admin)?;
        Ok(self.store.principals()?)
    }

    /// RevokePrincipal.
    pub async fn revoke_principal(&self, actor: &Actor, request: RevokePrincipal) -> Result<Option<u64>, AppError> {
        let RevokePrincipal { access_key, mfa } = request;
        self.authorize(actor, Access::Admin)?;
        let target = self.store.principal(&access_key)?;
        let guard = match target {
            Some(record) if record.role == Role::Admin && record.revoked_at.is_none() => Guard::Power,
            _ => Guard::Unguarded,
        };
        let what = format!("revoke-principal {access_key} role=admin");
        let operation = Operation { bucket: String::new(), what };
        self.guarded(actor, guard, mfa.as_ref(), operation, |_, code| {
            self.store.revoke_principal_checked(actor, &access_key, code)
        })
        .await
    }
}
