//! The MFA authority: the only code that sees seeds. It enrols devices (from
//! a seed or a PSKC document), activates and resynchronises them with two
//! consecutive codes, and verifies `SERIAL CODE` strings for guarded
//! operations: one code, one operation.
//!
//! Invariants (DESIGN.md, MFA and invariant 6):
//! - a code accepted once is never accepted again: the accepted step and all
//!   earlier ones are spent, durably (with the ledger entry naming the
//!   operation) before or in the same atomic write as the guarded operation,
//!   across restarts;
//! - a code is looked at only after the caller's right to the operation (and,
//!   for the store's operations, everything else that needs no code) was
//!   judged, so a request refused for its own sake spends no code and
//!   charges no device a failure (DESIGN.md invariant 9);
//! - unknown serials, pending or deactivated devices, and devices of another
//!   principal answer exactly like a wrong code;
//! - a seed leaves this crate only sealed, and neither seeds nor codes appear
//!   in any error, log line or ledger entry.

pub mod authority;
pub mod device;
pub mod seal;
pub mod serial;

pub use authority::{Authority, CodeVerdict, DeviceInfo, Enrollment, Operation, VerificationCounts};
pub use device::{DeviceRecord, DeviceState, Policy, Verdict};
pub use seal::MasterKey;
pub use serial::Serial;
use wormbox_store::StoreError;

/// Why the authority said no.
#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    /// The code is wrong, malformed, or names a device that cannot be used.
    #[error("the MFA code is not valid")]
    Invalid,
    /// The code (or a later one) was already used.
    #[error("the MFA code was already used")]
    Replayed,
    /// Too many failures in a row.
    #[error("the MFA device is locked out after repeated failures; try again after unix time {until}")]
    LockedOut {
        /// Unix second the lockout ends.
        until: u64,
    },
    /// An MFA code is needed for this request.
    #[error("{0}")]
    Required(String),
    /// The pending device can no longer be activated: its pending time ran
    /// out, or its owner activated another device first.
    #[error("MFA device `{0}` has expired without being activated: an admin enrols the token again")]
    Expired(String),
    /// A request field is wrong.
    #[error("{0}")]
    InvalidArgument(String),
    /// The caller may not do this.
    #[error("{0}")]
    AccessDenied(String),
    /// A serial is already enrolled.
    #[error("device serial `{0}` is already enrolled")]
    DuplicateSerial(String),
    /// A PSKC document was refused.
    #[error(transparent)]
    Pskc(#[from] wormbox_token::pskc::PskcError),
    /// The master key file is missing, loose or damaged.
    #[error("MFA master key: {0}")]
    KeyFile(String),
    /// A sealed seed failed to open (wrong master key or damage).
    #[error("a sealed MFA seed failed to open: wrong master key or damaged record")]
    Sealing,
    /// A stored device record is damaged.
    #[error("a stored MFA device record is damaged")]
    Corrupt,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
