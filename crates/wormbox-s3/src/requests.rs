//! S3 requests counted by operation and HTTP status code, for the metrics
//! endpoint (`wormbox_s3_requests_total`).
//!
//! Invariant: label values come from fixed sets: the operation names s3s
//! routes to (recorded by the access check, `auth.rs`, which unsigned
//! requests reach too), `other` for a request that reached no operation
//! (refused before routing, badly signed, unroutable), and HTTP status
//! codes, 499 for a request whose client went away before its answer;
//! nothing a client sends becomes a label. Every request the listener
//! passes to its handler is counted once; what hyper refuses itself (a
//! malformed request line, oversized headers) is not.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Counts of requests answered, by operation and status code.
#[derive(Debug, Default)]
pub struct RequestCounts {
    counts: Mutex<BTreeMap<(String, u16), u64>>,
}

impl RequestCounts {
    pub(crate) fn add(&self, operation: &str, status: u16) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry((operation.to_owned(), status)).or_default() += 1;
    }

    /// `(operation, status code, requests)`, in order.
    pub fn snapshot(&self) -> Vec<(String, u16, u64)> {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.iter().map(|((op, status), n)| (op.clone(), *status, *n)).collect()
    }
}

/// Where the access check writes the operation s3s routed a request to; put
/// in the request's extensions by the listener, read when it answers.
#[derive(Clone, Debug, Default)]
pub(crate) struct OperationSlot(Arc<Mutex<Option<String>>>);

impl OperationSlot {
    pub(crate) fn set(&self, operation: &str) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(operation.to_owned());
    }

    /// The operation, or `other` when the request reached none.
    pub(crate) fn name(&self) -> String {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_else(|| OTHER.to_owned())
    }
}

/// The operation label of a request that reached none.
pub(crate) const OTHER: &str = "other";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_operation_and_status() {
        let counts = RequestCounts::default();
        let slot = OperationSlot::default();
        counts.add(&slot.name(), 403);
        slot.set("PutObject");
        counts.add(&slot.name(), 200);
        counts.add(&slot.name(), 200);
        assert_eq!(counts.snapshot(), vec![("PutObject".to_owned(), 200, 2), ("other".to_owned(), 403, 1)]);
    }
}
