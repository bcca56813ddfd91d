//! Authentication of every call: `authorization: Bearer AKID:SECRET`.
//!
//! Invariant: unknown keys, revoked keys, wrong secrets and malformed headers
//! all get the same answer, and the secret is never logged or echoed.

use tonic::metadata::MetadataMap;
use tonic::{Code, Status};
use wormbox_store::Actor;

use crate::app::App;
use crate::grpc::status::{from_store, with_reason};

/// Returns the authenticated caller, or UNAUTHENTICATED.
pub(crate) fn authenticate(app: &App, metadata: &MetadataMap) -> Result<Actor, Status> {
    let refused = || with_reason(Code::Unauthenticated, "ACCESS_DENIED", "missing or invalid credential");
    let header = metadata.get("authorization").ok_or_else(refused)?.to_str().map_err(|_| refused())?;
    let credential = header.strip_prefix("Bearer ").ok_or_else(refused)?;
    let (access_key, secret) = credential.split_once(':').ok_or_else(refused)?;
    match app.authenticate(access_key, secret) {
        Ok(Some(actor)) => Ok(actor),
        Ok(None) => Err(refused()),
        Err(err) => Err(from_store(&err)),
    }
}
