//! The compliance clock: its status, and an admin's acceptance of a jump.
//!
//! Invariant: accepting a jump needs a code of the admin's own device,
//! spent only when there is a jump to accept (judged first, in the same
//! write, `guard.rs`).

use wormbox_mfa::Operation;
use wormbox_store::{Actor, ClockStatus};

use crate::guard::Guard;
use crate::{Access, App, AppError, MfaCode};

/// AcceptClockForward.
#[derive(Clone, Debug, Default)]
pub struct AcceptClockForward {
    /// `SERIAL CODE` of one of the caller's own devices.
    pub mfa: Option<MfaCode>,
}

impl App {
    /// GetClock.
    pub async fn clock_status(&self, actor: &Actor) -> Result<ClockStatus, AppError> {
        self.authorize(actor, Access::Metadata)?;
        Ok(self.store.clock_status().await?)
    }

    /// AcceptClockForward: an admin, with a code from the admin's own device.
    pub async fn accept_clock_forward(
        &self,
        actor: &Actor,
        request: AcceptClockForward,
    ) -> Result<(ClockStatus, u64), AppError> {
        self.authorize(actor, Access::Admin)?;
        let operation = Operation { bucket: String::new(), what: "accept-clock-forward".to_owned() };
        let guard =
            Guard::Always { why: "accepting a clock jump needs a code from one of your own active MFA devices" };
        self.guarded(actor, guard, request.mfa.as_ref(), operation, |_, code| async move {
            match code {
                Some(code) => self.store.accept_clock_forward_with_code(actor, code).await,
                // `Always` hands a code over or refuses before this runs;
                // were it not, the guard would be broken: a bug, not a verdict.
                None => Ok(wormbox_store::Guarded::CodeRefused(Err(wormbox_mfa::MfaError::Corrupt))),
            }
        })
        .await
    }
}
