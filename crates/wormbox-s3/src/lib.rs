//! The S3 front door: S3's REST API (SigV4 and SigV2 signatures, path-style
//! and virtual-host-style addressing, S3's XML) over the same application
//! layer as gRPC, so that both enforce the same rules and write the same
//! ledger. `s3s` parses and signs; this crate turns each S3 operation into
//! the `App` call gRPC makes and maps `AppError` to S3's error codes
//! (`error.rs`, the one place).
//!
//! Invariant: a request is answered only for a principal whose S3 secret
//! verified its signature (`auth.rs`); anonymous requests, unknown keys,
//! another region, a skewed date and a wrong signature are refused before
//! the application layer is called, so they write nothing. Every operation
//! not listed in `service.rs` answers `NotImplemented`. No body is held
//! whole in memory: uploads pass to the store in chunks of at most
//! `CHUNK_BYTES` (`objects.rs`), downloads stream from a blocking reader.
//!
//! Files: `auth.rs` (secrets, region, clock skew, the caller), `host.rs`
//! (addressing), `server.rs` (the listener and the HTTP wrapper),
//! `chunked.rs` (the aws-chunked guard on request bodies), `service.rs`
//! (the `S3` trait: routing each operation to its subject's file),
//! `convert.rs` (what the operations share), one file per subject
//! (`buckets.rs`, `objects.rs`, `copy.rs`, `multipart.rs`, `listing.rs`,
//! `locks.rs`, `acl.rs`), and `error.rs`.
#![warn(missing_docs)]

mod acl;
mod auth;
mod buckets;
mod chunked;
mod convert;
mod copy;
mod error;
mod host;
mod listing;
mod locks;
mod multipart;
mod objects;
mod requests;
mod server;
mod service;

use std::sync::Arc;
use std::time::Duration;

use wormbox_app::App;
use wormbox_model::Clock;

pub use crate::requests::RequestCounts;
pub use crate::server::{AddressSlot, PerAddress, S3Server, serve};

/// The region this endpoint answers as, unless configured otherwise.
pub const DEFAULT_REGION: &str = "us-east-1";

/// How the S3 endpoint is set up (`[s3]` in `wormboxd.toml`).
#[derive(Clone, Debug)]
pub struct S3Options {
    /// The region clients must sign for (SigV4's credential scope).
    pub region: String,
    /// The domain of virtual-host-style addressing (`BUCKET.DOMAIN`); path
    /// style is always served.
    pub domain: Option<String>,
    /// The largest object a single PutObject may store.
    pub max_object_bytes: u64,
    /// How long a connection may take to send a request's head (and a TLS
    /// handshake); then it is closed.
    pub header_timeout: Duration,
    /// How long a request body may send nothing; then the request fails
    /// and nothing of it is stored.
    pub body_idle: Duration,
    /// Connections served at once from one client address (an IPv4
    /// address, or an IPv6 /64), of `MAX_CONNECTIONS`.
    pub max_connections_per_address: usize,
}

/// How long a request's head may take, unless configured otherwise.
pub const DEFAULT_HEADER_TIMEOUT: Duration = server::HEADER_TIMEOUT;
/// How long a request body may stall, unless configured otherwise.
pub const DEFAULT_BODY_IDLE: Duration = objects::BODY_IDLE;
/// Connections the S3 listener serves at once.
pub const MAX_CONNECTIONS: usize = server::MAX_CONNECTIONS;
/// Connections served at once from one client address, unless configured
/// otherwise.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = server::MAX_CONNECTIONS_PER_ADDRESS;

impl Default for S3Options {
    fn default() -> S3Options {
        S3Options {
            region: DEFAULT_REGION.to_owned(),
            domain: None,
            max_object_bytes: 5 << 30,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_idle: DEFAULT_BODY_IDLE,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
        }
    }
}

/// The S3 service over `app`: `s3s` with this crate's operations, auth and
/// addressing. `clock` is the real time SigV2 dates are checked against
/// (SigV4's are checked by `s3s` against the system's).
pub fn service(app: Arc<App>, options: &S3Options, clock: Arc<dyn Clock>) -> s3s::service::S3Service {
    let wormbox = convert::Wormbox::new(Arc::clone(&app), options.clone());
    let mut builder = s3s::service::S3ServiceBuilder::new(wormbox);
    builder.set_auth(auth::Auth::new(Arc::clone(&app)));
    builder.set_access(auth::Access::new(app, options.region.clone(), clock));
    builder.set_host(host::Host::new(options.domain.clone()));
    let mut config = s3s::config::S3Config::default();
    // S3's own XML bodies are small; a bigger one is refused unread.
    config.xml_max_body_size = XML_MAX_BODY_BYTES;
    // Browser form uploads are refused by the wrapper; nothing is buffered for them.
    config.post_object_max_file_size = 0;
    config.presigned_url_max_skew_time_secs = auth::MAX_SKEW.as_secs() as u32;
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(config))));
    builder.build()
}

/// The largest XML request body (a DeleteObjects of 1000 long keys fits).
pub const XML_MAX_BODY_BYTES: usize = 2 << 20;
