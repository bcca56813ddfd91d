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

/// The caller `gate.rs` authenticated from the call's headers, handed to
/// the handler in the request's extensions (which only the server sets) so
/// that a call is verified once.
#[derive(Clone, Debug)]
pub(crate) struct Verified(pub(crate) Actor);

/// Returns the authenticated caller, or UNAUTHENTICATED: the one the gate
/// verified, or, for a call that did not pass it, from its credential.
pub(crate) fn authenticate<T>(app: &App, request: &tonic::Request<T>) -> Result<Actor, Status> {
    match request.extensions().get::<Verified>() {
        Some(Verified(actor)) => Ok(actor.clone()),
        None => verify(app, request.metadata()),
    }
}

/// Verifies the credential in `metadata`.
pub(crate) fn verify(app: &App, metadata: &MetadataMap) -> Result<Actor, Status> {
    let refused = || status(AppError::Unauthenticated);
    let header = metadata.get("authorization").ok_or_else(refused)?.to_str().map_err(|_| refused())?;
    let credential = header.strip_prefix("Bearer ").ok_or_else(refused)?;
    let (access_key, secret) = credential.split_once(':').ok_or_else(refused)?;
    app.authenticate(Credentials::Bearer { access_key, secret }).map_err(status)
}
