//! The MFA preamble of every guarded operation, in one function: whose
//! devices the code must come from, what happens without one, and the
//! authority's verdict when the store refused the code.
//!
//! Invariant: rights are judged before codes (DESIGN.md invariant 9). A code
//! is handed to the store as a `CodeCheck`, which the writer runs only after
//! the operation passed every rule that needs no code, in the same atomic
//! write as the operation; a missing code that is needed is `MFA_REQUIRED`
//! and, where the caller could have given one, a ledger entry.

use std::future::Future;

use wormbox_mfa::{CodeVerdict, Operation, authority};
use wormbox_model::BucketName;
use wormbox_store::{Actor, CodeCheck, Guarded, Lowering, StoreError};

use crate::{App, AppError};

/// An MFA code as a request carries it: `SERIAL CODE` for a guarded
/// operation, a bare code to activate or resync a device. `Debug` never
/// shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct MfaCode(String);

impl MfaCode {
    /// Takes the request's text as it is: the authority parses it strictly
    /// and answers `MFA_INVALID` for anything malformed.
    pub fn new(text: impl Into<String>) -> MfaCode {
        MfaCode(text.into())
    }

    /// The text, for the authority.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for MfaCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MfaCode(..)")
    }
}

/// Whose code an operation takes, and what it does without one.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Guard<'a> {
    /// None: the operation raises protection (placing a legal hold), and a
    /// code sent with it is not looked at.
    Unguarded,
    /// The bucket owner's (MFA Delete): without a code, the store judges
    /// whether one was needed.
    BucketOwner(&'a BucketName),
    /// One of the caller's own devices, for a change that could lower
    /// protection: without one, once the appliance is guarded (an admin has
    /// an active device), the change may lower nothing (`Lowering::NeedsCode`).
    Lowering,
    /// One of the caller's own devices, for a change that mints or removes
    /// administrative power (an admin, the bypass right): needed once the
    /// appliance is guarded.
    Power,
    /// One of the caller's own devices, always; `why` is the refusal without one.
    Always {
        /// What the caller is told when the code is missing.
        why: &'static str,
    },
}

const POWER_WHY: &str =
    "an admin has an active MFA device: this change needs a code from one of your own active MFA devices";

impl App {
    /// Runs a guarded operation: `run` gets whether the change may lower
    /// protection and the code to hand to the store (none when the request
    /// carried none), and answers the store's verdict; a code the writer
    /// refused is answered with the authority's reason (invalid, replayed,
    /// locked out).
    pub(crate) async fn guarded<T, F, Fut>(
        &self,
        actor: &Actor,
        guard: Guard<'_>,
        mfa: Option<&MfaCode>,
        operation: Operation,
        run: F,
    ) -> Result<T, AppError>
    where
        F: FnOnce(Lowering, Option<CodeCheck<CodeVerdict>>) -> Fut,
        Fut: Future<Output = Result<Guarded<T, CodeVerdict>, StoreError>>,
    {
        let (lowering, code) = match (mfa.map(MfaCode::as_str), guard) {
            (_, Guard::Unguarded) => (Lowering::Allowed, None),
            (Some(mfa), Guard::BucketOwner(bucket)) => {
                let owner = self.store.bucket(bucket)?.owner;
                (Lowering::Allowed, Some(self.mfa.check_code(&owner, mfa, &operation)))
            }
            (Some(mfa), Guard::Lowering | Guard::Power | Guard::Always { .. }) => {
                (Lowering::Allowed, Some(self.mfa.check_code(&actor.access_key, mfa, &operation)))
            }
            (None, Guard::BucketOwner(_)) => (Lowering::Allowed, None),
            (None, Guard::Lowering) if self.mfa.admin_guarded()? => (Lowering::NeedsCode, None),
            (None, Guard::Lowering) => (Lowering::Allowed, None),
            (None, Guard::Power) if self.mfa.admin_guarded()? => {
                return Err(self.mfa.missing_code(actor, &operation, POWER_WHY).await.into());
            }
            (None, Guard::Power) => (Lowering::Allowed, None),
            (None, Guard::Always { why }) => return Err(self.mfa.missing_code(actor, &operation, why).await.into()),
        };
        match run(lowering, code).await? {
            Guarded::Done(done) => Ok(done),
            Guarded::CodeRefused(verdict) => Err(authority::refusal(verdict).into()),
        }
    }
}
