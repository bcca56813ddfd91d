//! The caller is authenticated before a byte of its request is decoded.
//! tonic decodes a unary request whole before the handler runs: an empty
//! entry of a repeated field is two bytes on the wire and a struct of tens
//! of bytes decoded, so a 4 MiB DeleteObjects request with a wrong
//! credential made the server build about 100 MiB before the handler
//! refused it, and anyone who could reach the port could send a hundred at
//! once on one connection.
//!
//! Invariant: a call to an appliance service (Archive, Compliance, Admin,
//! Mfa) whose credential does not authenticate is answered UNAUTHENTICATED
//! from its headers alone: its body is never read, decoded or metered.
//! The verified caller goes to the handler in the request's extensions
//! (`auth::Verified`), so a call is verified once; a handler reached
//! without the gate verifies the credential itself. Health and reflection
//! are outside it, as before.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use tonic::body::Body;
use tonic::codegen::{Service, http};
use tonic::metadata::MetadataMap;
use tonic::server::NamedService;
use wormbox_app::App;

use crate::grpc::auth::{Verified, verify};

/// `inner`, for authenticated callers only.
#[derive(Clone, Debug)]
pub(crate) struct Authenticated<S> {
    inner: S,
    app: Arc<App>,
}

impl<S> Authenticated<S> {
    pub(crate) fn new(inner: S, app: Arc<App>) -> Authenticated<S> {
        Authenticated { inner, app }
    }
}

impl<S: NamedService> NamedService for Authenticated<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Authenticated<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<http::Response<Body>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // Only the one header is copied: the credential is all the gate reads.
        let mut headers = http::HeaderMap::new();
        if let Some(value) = request.headers().get(http::header::AUTHORIZATION) {
            headers.insert(http::header::AUTHORIZATION, value.clone());
        }
        match verify(&self.app, &MetadataMap::from_headers(headers)) {
            Ok(actor) => {
                request.extensions_mut().insert(Verified(actor));
                Either::Left(self.inner.call(request))
            }
            Err(status) => Either::Right(ready(Ok(status.into_http()))),
        }
    }
}
