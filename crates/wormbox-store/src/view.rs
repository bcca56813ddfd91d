//! `View`: one way to read stored state, whoever holds it.
//!
//! Invariant: `Store`'s reads see the backend's committed state and the
//! writer's rules see their transaction (its own changes, then the groups
//! still being committed, then the backend); both read through this trait, so
//! a lookup (`versions`, `meta`) is written once and means the same in both.

use crate::StoreError;
use crate::backend::{Backend, Keyspace};

/// Reads one value of a keyspace.
pub(crate) trait View {
    /// The value stored under `key` in `space`, or `None`.
    fn get(&self, space: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
}

/// The committed state.
impl<B: Backend + ?Sized> View for B {
    fn get(&self, space: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Backend::get(self, space, key).map_err(|e| StoreError::backend("read", e))
    }
}
