//! Principals: create, list, revoke (admins only); their S3 secrets.
//!
//! Invariant: a secret is returned once, by `create_principal` (and an S3
//! secret by `create_s3_key`), and never listed; minting an admin or the
//! bypass right, giving an S3 secret to an admin or a holder of the bypass
//! right, and revoking an admin, on a guarded appliance need a code from one
//! of the caller's own devices, judged after the change itself
//! (`guard.rs`): a stolen key must not mint power or remove the admins who
//! hold tokens.
//!
//! An S3 secret is drawn here and sealed under the appliance's master key
//! (as MFA seeds are) for the purpose `s3:<access key>`, so that a sealed
//! secret moved to another access key does not open: S3 signatures need the
//! secret itself, where the gRPC bearer secret is kept as a salted hash.

use ring::rand::SecureRandom;
use wormbox_mfa::Operation;
use wormbox_model::Role;
use wormbox_store::{Actor, NewPrincipal, PrincipalRecord, SealedSecret, StoreError};
use zeroize::Zeroizing;

use crate::guard::Guard;
use crate::{Access, App, AppError, MfaCode};

/// CreatePrincipal.
#[derive(Clone, Debug)]
pub struct CreatePrincipal {
    /// A name for people.
    pub name: String,
    /// The role.
    pub role: Role,
    /// Whether it may override GOVERNANCE retention.
    pub bypass_governance: bool,
    /// Whether it gets an S3 secret too, in the same write.
    pub s3: bool,
    /// `SERIAL CODE` of one of the caller's own devices.
    pub mfa: Option<MfaCode>,
}

/// What CreatePrincipal answers, once: the principal with its bearer
/// secret, and its S3 secret when one was asked for.
pub struct CreatedPrincipal {
    /// The principal and its gRPC bearer secret.
    pub principal: NewPrincipal,
    /// Its S3 secret, if it was created with one.
    pub s3_secret: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for CreatedPrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedPrincipal")
            .field("access_key", &self.principal.access_key)
            .field("s3", &self.s3_secret.is_some())
            .finish_non_exhaustive()
    }
}

/// CreateS3Key.
#[derive(Clone, Debug)]
pub struct CreateS3Key {
    /// The principal's access key id (its S3 access key id too).
    pub access_key: String,
    /// `SERIAL CODE` of one of the caller's own devices.
    pub mfa: Option<MfaCode>,
}

/// RevokeS3Key.
#[derive(Clone, Debug)]
pub struct RevokeS3Key {
    /// The principal's access key id.
    pub access_key: String,
}

/// A new S3 secret, returned once. `Debug` never shows the secret.
pub struct NewS3Key {
    /// The access key id it signs with.
    pub access_key: String,
    /// The secret.
    pub secret: Zeroizing<String>,
    /// The `s3-key-created` ledger entry.
    pub ledger_sequence: u64,
}

impl std::fmt::Debug for NewS3Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewS3Key")
            .field("access_key", &self.access_key)
            .field("ledger_sequence", &self.ledger_sequence)
            .finish_non_exhaustive()
    }
}

/// A principal as ListPrincipals answers it.
#[derive(Clone, Debug)]
pub struct ListedPrincipal {
    /// The access key id.
    pub access_key: String,
    /// Its record (the secret only as a salted hash).
    pub record: PrincipalRecord,
    /// Whether an S3 secret is stored for it.
    pub has_s3_key: bool,
}

/// What an S3 secret is sealed for: its own access key, so that a sealed
/// secret moved to another key does not open.
fn s3_purpose(access_key: &str) -> String {
    format!("s3:{access_key}")
}

/// Characters of an S3 secret: as many as a gRPC bearer secret has.
const S3_SECRET_CHARS: usize = 40;

/// A fresh S3 secret: 40 base32 characters (200 bits).
fn draw_s3_secret() -> Result<Zeroizing<String>, AppError> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bytes = Zeroizing::new([0u8; S3_SECRET_CHARS]);
    ring::rand::SystemRandom::new()
        .fill(bytes.as_mut())
        .map_err(|_| AppError::Internal("no system randomness for an S3 secret".to_owned()))?;
    Ok(Zeroizing::new(bytes.iter().map(|b| ALPHABET[usize::from(b & 31)] as char).collect()))
}

/// Why a principal's S3 key is guarded like minting it: an admin's or a
/// bypass holder's key carries power.
fn s3_key_guard(record: Option<&PrincipalRecord>) -> (Guard<'static>, String) {
    match record {
        Some(r) if r.role == Role::Admin || r.bypass_governance => {
            let bypass = if r.bypass_governance { " bypass-governance" } else { "" };
            (Guard::Power, format!("role={}{bypass}", r.role.as_str()))
        }
        Some(r) => (Guard::Unguarded, format!("role={}", r.role.as_str())),
        None => (Guard::Unguarded, String::new()),
    }
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
    /// CreatePrincipal; with `s3`, its S3 secret is sealed and stored in
    /// the same write, under the same code.
    pub async fn create_principal(
        &self,
        actor: &Actor,
        request: CreatePrincipal,
    ) -> Result<CreatedPrincipal, AppError> {
        let CreatePrincipal { name, role, bypass_governance, s3, mfa } = request;
        self.authorize(actor, Access::Admin)?;
        let bypass = if bypass_governance { " bypass-governance" } else { "" };
        let with_s3 = if s3 { " s3" } else { "" };
        let what = format!("create-principal role={}{bypass}{with_s3}", role.as_str());
        let guard = if role == Role::Admin || bypass_governance { Guard::Power } else { Guard::Unguarded };
        let operation = Operation { bucket: String::new(), what };
        let prepared = self.store.prepare_principal(&name, role, bypass_governance)?;
        let (s3_secret, sealed) = if s3 {
            let secret = draw_s3_secret()?;
            let sealed = self.seal_s3_secret(prepared.access_key(), &secret)?;
            (Some(secret), Some(sealed))
        } else {
            (None, None)
        };
        let principal = self
            .guarded(actor, guard, mfa.as_ref(), operation, |_, code| {
                self.store.create_prepared_principal_checked(actor, prepared, sealed, code)
            })
            .await?;
        Ok(CreatedPrincipal { principal, s3_secret })
    }

    /// CreateS3Key: gives an existing principal an S3 secret, returned once.
    /// One at a time: a principal that has one must have it revoked first.
    pub async fn create_s3_key(&self, actor: &Actor, request: CreateS3Key) -> Result<NewS3Key, AppError> {
        let CreateS3Key { access_key, mfa } = request;
        self.authorize(actor, Access::Admin)?;
        let target = self.store.principal(&access_key)?;
        let (guard, role) = s3_key_guard(target.as_ref());
        let operation = Operation { bucket: String::new(), what: format!("create-s3-key {access_key} {role}") };
        let secret = draw_s3_secret()?;
        let sealed = self.seal_s3_secret(&access_key, &secret)?;
        let ledger_sequence = self
            .guarded(actor, guard, mfa.as_ref(), operation, |_, code| {
                self.store.create_s3_key_checked(actor, &access_key, sealed, code)
            })
            .await?;
        Ok(NewS3Key { access_key, secret, ledger_sequence })
    }

    /// RevokeS3Key: the principal's S3 secret is removed (it only lowers
    /// access: no code). `None` when it had none.
    pub async fn revoke_s3_key(&self, actor: &Actor, request: RevokeS3Key) -> Result<Option<u64>, AppError> {
        self.authorize(actor, Access::Admin)?;
        Ok(self.store.revoke_s3_key(actor, &request.access_key).await?)
    }

    /// The caller an S3 request signed with `access_key` acts as, and the
    /// secret its signature is checked with: `None` for an unknown key, a
    /// revoked principal and a principal without an S3 secret alike. A
    /// sealed secret that does not open for this key (moved from another
    /// key, or sealed under another master key) is an error, never a secret.
    pub fn s3_secret(&self, access_key: &str) -> Result<Option<(Actor, Zeroizing<String>)>, AppError> {
        let Some((actor, sealed)) = self.store.s3_key(access_key)? else { return Ok(None) };
        let plain = self.mfa.open_secret(&s3_purpose(&actor.access_key), sealed.as_bytes())?;
        let secret = std::str::from_utf8(&plain)
            .map_err(|_| StoreError::DataLoss { what: format!("the S3 secret of `{access_key}` is not text") })?;
        Ok(Some((actor, Zeroizing::new(secret.to_owned()))))
    }

    /// The caller an S3 request signed with `access_key` acts as, once its
    /// signature was checked with `s3_secret`'s secret; `None` as there.
    pub fn s3_actor(&self, access_key: &str) -> Result<Option<Actor>, AppError> {
        Ok(self.store.s3_key(access_key)?.map(|(actor, _)| actor))
    }

    fn seal_s3_secret(&self, access_key: &str, secret: &str) -> Result<SealedSecret, AppError> {
        Ok(SealedSecret::new(self.mfa.seal_secret(&s3_purpose(access_key), secret.as_bytes())?))
    }

    /// ListPrincipals. Scans: call it off the async runtime.
    pub fn principals(&self, actor: &Actor) -> Result<Vec<ListedPrincipal>, AppError> {
        self.authorize(actor, Access::Admin)?;
        let mut out = Vec::new();
        for (access_key, record) in self.store.principals()? {
            let has_s3_key = self.store.has_s3_key(&access_key)?;
            out.push(ListedPrincipal { access_key, record, has_s3_key });
        }
        Ok(out)
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
