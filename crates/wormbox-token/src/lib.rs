//! What the MFA authority and a token share, and nothing more: the OTP
//! arithmetic (HOTP, RFC 4226; TOTP, RFC 6238 with any step and T0) and the
//! token's serial-line protocol, plus the client-side ways of reading a code.
//!
//! # The serial-line protocol
//!
//! ASCII lines ending CR LF (a bare LF is accepted), at most 64 bytes before
//! the line ending. The host sends one request and the token answers with
//! exactly one line; the token never speaks unasked.
//!
//! | request | response |
//! |---|---|
//! | `PING` | `OK PONG` |
//! | `ID` | `OK ID <serial> <model> <firmware>` |
//! | `INFO` | `OK INFO ALG=SHA1 DIGITS=6 STEP=30` |
//! | `OTP` | `OK OTP <code>`: the code of the current step; asking again in the same step shows the same code, like a display token |
//! | anything else | `ERR 400 BAD-COMMAND` |
//! | a line over 64 bytes | `ERR 400 LINE-TOO-LONG`, and the rest of it up to the next newline is discarded |
//!
//! A token may also answer `ERR 503 <REASON>` (for example `LOW-BATTERY`)
//! when it cannot show a code. It never reveals its seed, never accepts a
//! time, and knows nothing about replay: that is the authority's job.
//!
//! Invariant: a `Seed` or a `Code` never appears in `Debug` output, and both
//! are wiped from memory when dropped.

pub mod otp;
pub mod protocol;
pub mod pskc;
pub mod source;

pub use otp::{Algorithm, Code, OtpError, OtpParams, Seed, Totp};
pub use protocol::{LineError, LineReader, MAX_LINE, Request, Response};
pub use source::{MfaCode, SourceError, TokenSource};
