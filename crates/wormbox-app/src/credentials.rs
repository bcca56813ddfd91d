//! `Credentials`: how a caller proves who it is, whatever door it came in by.
//!
//! Invariant: every scheme ends in the same answer: an `Actor`, or
//! `AppError::Unauthenticated` for an unknown key, a revoked key and a wrong
//! secret alike; a secret is compared in constant time (by the store) and
//! never logged or echoed.

use wormbox_store::Actor;

use crate::{App, AppError};

/// A credential as a front end parsed it from its request.
///
/// Today there is one scheme, the gRPC bearer secret. An S3 endpoint adds
/// a signature scheme (SigV2/V4: the access key, the string to sign and the
/// signature): verifying it needs the principal's secret itself, not the
/// salted hash the store keeps; that secret is kept sealed, as MFA seeds
/// are, and `App::s3_secret` opens it for the variant to come.
#[derive(Clone, Copy)]
pub enum Credentials<'a> {
    /// `AKID:SECRET`, as gRPC's `authorization: Bearer` carries it.
    Bearer {
        /// The access key id.
        access_key: &'a str,
        /// The secret, as the caller sent it.
        secret: &'a str,
    },
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Bearer { access_key, .. } => {
                f.debug_struct("Bearer").field("access_key", access_key).finish_non_exhaustive()
            }
        }
    }
}

impl App {
    /// The caller `credentials` prove, or `Unauthenticated`.
    pub fn authenticate(&self, credentials: Credentials<'_>) -> Result<Actor, AppError> {
        let found = match credentials {
            Credentials::Bearer { access_key, secret } => self.store.authenticate(access_key, secret)?,
        };
        found.ok_or(AppError::Unauthenticated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let credentials = Credentials::Bearer { access_key: "WBKEY", secret: "s3cr3t-value" };
        let shown = format!("{credentials:?}");
        assert!(shown.contains("WBKEY") && !shown.contains("s3cr3t"), "{shown}");
    }
}
