//! Witnesses: parties outside the appliance that cosign its checkpoints
//! only after checking that each one extends the last they saw (the C2SP
//! `tlog-witness` protocol, <https://c2sp.org/tlog-witness>, with Ed25519
//! `cosignature/v1` signatures, <https://c2sp.org/tlog-cosignature>). A log
//! that shows one history to a witness and another to an auditor is caught
//! by whichever holds the other's checkpoint; a ledger rewritten under the
//! appliance's own key is refused by every witness that saw it before.
//!
//! `cosign.rs` is the signature format, `protocol.rs` the add-checkpoint
//! request, `witness.rs` the witness's judgement and its state file,
//! `server.rs` the HTTP service (`wormbox witness serve`), `client.rs` what
//! the appliance sends.
//!
//! Invariant: a witness cosigns a checkpoint only when it is signed by a log
//! it knows and its consistency proof links it to the last one it cosigned
//! for that log, and it records the new one durably before answering; its
//! record never moves backwards.

pub mod client;
pub mod cosign;
pub mod protocol;
pub mod server;
pub mod witness;

pub use client::{Submitted, WitnessClient, WitnessClientError};
pub use cosign::{Cosignature, CosignerKey, WitnessSigner};
pub use protocol::AddCheckpoint;
pub use witness::{Reply, Witness, WitnessError};
