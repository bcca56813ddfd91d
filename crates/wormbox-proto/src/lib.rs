//! Generated gRPC code for `proto/wormbox/v1`, and conversions between wire
//! enums and `wormbox-model` types. No behaviour lives here, except the
//! messages decoded by hand so that what they cost is bounded while they
//! are decoded (`bounded.rs`: `IngestBatchRequest`, `DeleteObjectsRequest`,
//! `AuditLogRequest`, and the user metadata of `IngestRecord` and
//! `PutObjectHeader`).
//!
//! Invariant: generated types stop at `wormbox-server` and `wormbox-cli`;
//! library crates never see them.

/// The `wormbox.v1` package.
pub mod v1 {
    #![allow(missing_docs, unreachable_pub, missing_debug_implementations, clippy::all)]
    tonic::include_proto!("wormbox.v1");

    pub use crate::bounded::{
        AuditLogRequest, DeleteObjectsRequest, IngestBatchRequest, IngestRecord, PutObjectHeader,
    };
}

mod bounded;

pub use bounded::{
    MAX_AUDIT_KINDS, MAX_BATCH_METADATA_ENTRIES, MAX_BATCH_RECORDS, MAX_DELETE_OBJECTS, METADATA_ENTRY_HELD_BYTES,
    Metered, RECORD_HELD_BYTES, held_bytes_bound,
};

/// The encoded descriptor set of the whole API, for reflection and the
/// API-surface test.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/wormbox_descriptor.bin"));

/// The `google.rpc.ErrorInfo` domain of every error the appliance returns.
pub const ERROR_DOMAIN: &str = "wormbox.v1";

use wormbox_model::{Role, VersioningState};

/// Converts a wire versioning status; `UNSPECIFIED` and unknown values are `None`.
pub fn versioning_from_wire(status: i32) -> Option<VersioningState> {
    match v1::VersioningStatus::try_from(status).ok()? {
        v1::VersioningStatus::Unspecified => None,
        v1::VersioningStatus::Unversioned => Some(VersioningState::Unversioned),
        v1::VersioningStatus::Enabled => Some(VersioningState::Enabled),
        v1::VersioningStatus::Suspended => Some(VersioningState::Suspended),
    }
}

/// Converts a versioning state to the wire.
pub fn versioning_to_wire(state: VersioningState) -> v1::VersioningStatus {
    match state {
        VersioningState::Unversioned => v1::VersioningStatus::Unversioned,
        VersioningState::Enabled => v1::VersioningStatus::Enabled,
        VersioningState::Suspended => v1::VersioningStatus::Suspended,
    }
}

/// Converts a wire role; `UNSPECIFIED` and unknown values are `None`.
pub fn role_from_wire(role: i32) -> Option<Role> {
    match v1::Role::try_from(role).ok()? {
        v1::Role::Unspecified => None,
        v1::Role::Admin => Some(Role::Admin),
        v1::Role::Writer => Some(Role::Writer),
        v1::Role::Reader => Some(Role::Reader),
        v1::Role::Auditor => Some(Role::Auditor),
    }
}

/// Converts a role to the wire.
pub fn role_to_wire(role: Role) -> v1::Role {
    match role {
        Role::Admin => v1::Role::Admin,
        Role::Writer => v1::Role::Writer,
        Role::Reader => v1::Role::Reader,
        Role::Auditor => v1::Role::Auditor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_and_unspecified_is_refused() {
        for state in [VersioningState::Unversioned, VersioningState::Enabled, VersioningState::Suspended] {
            assert_eq!(versioning_from_wire(versioning_to_wire(state) as i32), Some(state));
        }
        for role in [Role::Admin, Role::Writer, Role::Reader, Role::Auditor] {
            assert_eq!(role_from_wire(role_to_wire(role) as i32), Some(role));
        }
        assert_eq!(versioning_from_wire(0), None);
        assert_eq!(versioning_from_wire(99), None);
        assert_eq!(role_from_wire(0), None);
    }
}

/// Client-side credential: adds `authorization: Bearer AKID:SECRET` to every call.
#[derive(Clone)]
pub struct BearerAuth {
    header: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.write_str("BearerAuth(..)")
    }
}

impl BearerAuth {
    /// Takes a credential `AKID:SECRET`; `None` if it is not printable ASCII
    /// of that shape.
    pub fn new(credential: &str) -> Option<BearerAuth> {
        let credential = credential.trim();
        if !credential.contains(':') {
            return None;
        }
        let header = format!("Bearer {credential}").parse().ok()?;
        Some(BearerAuth { header })
    }
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert("authorization", self.header.clone());
        Ok(request)
    }
}

/// An Archive client that authenticates every call.
pub type ArchiveClient = v1::archive_client::ArchiveClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerAuth>,
>;

/// An Admin client that authenticates every call.
pub type AdminClient = v1::admin_client::AdminClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerAuth>,
>;

/// An Mfa client that authenticates every call.
pub type MfaClient =
    v1::mfa_client::MfaClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerAuth>>;

/// A Compliance client that authenticates every call.
pub type ComplianceClient = v1::compliance_client::ComplianceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerAuth>,
>;
