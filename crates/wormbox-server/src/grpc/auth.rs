//! Authentication of every call: `authorization: Bearer AKID:SECRET`, parsed
//! here into `Credentials` and verified by the application layer.
//!
//! Invariant: unknown keys, revoked keys, wrong secrets and malformed headers
//! all get the same answer, and the secret is never logged or echoed.

use tonic::Status;
use tonic::metadata::MetadataMap;
use wormbox_store::Actor;

use crate::grpc::status::status;
use wormbox_app::{App, AppError, Credentials};

/// Returns the authenticated caller, or UNAUTHENTICATED.
pub(crate) fn authenticate(app: &App, metadata: &MetadataMap) -> Result<Actor, Status> {
    let refused = || status(AppError::Unauthenticated);
    let header = metadata.get("authorization").ok_or_else(refused)?.to_str().map_err(|_| refused())?;
    let credential = header.strip_prefix("Bearer ").ok_or_else(refused)?;
    let (access_key, secret) = credential.split_once(':').ok_or_else(refused)?;
    app.authenticate(Credentials::Bearer { access_key, secret }).map_err(status)
}
