//! The S3 client's errors: what the server refused (its status, S3 error code,
//! message and request id), what failed on the way, what could not be read.
//!
//! Invariant: no error carries the secret key, a signature or object bytes;
//! a refusal keeps the server's own code so callers match on it, not on text.

use std::fmt;

/// Why an S3 request failed.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The server answered with an error status.
    #[error("{0}")]
    Service(Box<ServiceError>),
    /// The request did not get an answer: connection, TLS, timeout or a body
    /// that could not be sent or read.
    #[error("S3 transport: {0}")]
    Transport(String),
    /// The request took longer than the configured timeout.
    #[error("S3 request timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The server's answer could not be read as S3 XML or headers.
    #[error("S3 response unreadable: {0}")]
    Xml(String),
    /// The client's configuration is unusable (endpoint, CA file).
    #[error("S3 client configuration: {0}")]
    Config(String),
    /// The caller's input cannot make a valid request (no bytes were sent).
    #[error("S3 request invalid: {0}")]
    Invalid(String),
    /// A body's bytes did not match the length or SHA-256 declared for it;
    /// the upload was cut short, so the server completed no object.
    #[error("S3 upload body: {0}")]
    Body(String),
}

/// An error answer of the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceError {
    /// The HTTP status.
    pub status: u16,
    /// The S3 error code (`AccessDenied`, `NoSuchKey`, ...), when the server
    /// sent an XML error (HEAD answers have no body: then it is derived from
    /// the status, e.g. `NotFound`).
    pub code: String,
    /// The server's message, if any.
    pub message: String,
    /// The server's request id (`x-amz-request-id` or `<RequestId>`), if any.
    pub request_id: Option<String>,
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S3 refused: {} {}", self.status, self.code)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request {id})")?;
        }
        Ok(())
    }
}

impl S3Error {
    /// The server's error answer, if this is one.
    pub fn service(&self) -> Option<&ServiceError> {
        match self {
            S3Error::Service(e) => Some(e),
            _ => None,
        }
    }

    /// The S3 error code, if the server answered with one.
    pub fn code(&self) -> Option<&str> {
        self.service().map(|e| e.code.as_str())
    }

    /// The HTTP status, if the server answered.
    pub fn status(&self) -> Option<u16> {
        self.service().map(|e| e.status)
    }
}
