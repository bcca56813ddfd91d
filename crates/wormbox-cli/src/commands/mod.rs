//! The CLI's commands, one file per family: each holds its clap arguments
//! (a `Subcommand` enum or an `Args` struct), the function that runs them and
//! the formatting of what they print. `main.rs` only parses, connects and
//! dispatches; a new command goes into its family's file (or a new file here)
//! and gets one variant, with its help text, in `main.rs`'s `Command`.
//!
//! Invariant: a command talks to the appliance only through the `Context`'s
//! clients, reads a code only through its `Mfa`, and prints only through
//! `Context::print` (or, for files and streams, `output`), so `--json`,
//! `--mfa` and the credential mean the same for every command.

use clap::Args;
use serde_json::Value;

use crate::client::{Clients, Mfa};

pub(crate) mod admin;
pub(crate) mod audit;
pub(crate) mod backup;
pub(crate) mod bucket;
pub(crate) mod checkpoint;
pub(crate) mod clock;
pub(crate) mod delete_objects;
pub(crate) mod export;
pub(crate) mod hold;
pub(crate) mod mfa;
pub(crate) mod object;
pub(crate) mod principal;
pub(crate) mod proof;
pub(crate) mod replica;
pub(crate) mod report;
pub(crate) mod retention;
pub(crate) mod status;
pub(crate) mod verify;
pub(crate) mod witness;

/// What every online command runs with: the connection, the `--mfa` source
/// and the output mode.
pub(crate) struct Context {
    pub(crate) clients: Clients,
    pub(crate) mfa: Mfa,
    pub(crate) json: bool,
}

impl Context {
    /// Prints `value` under `--json`, `text` otherwise.
    pub(crate) fn print(&self, value: Value, text: String) {
        crate::output::print(self.json, value, text);
    }
}

/// A version named on the command line: bucket and key, and the version id
/// (the latest version when absent).
#[derive(Debug, Args)]
pub(crate) struct VersionArgs {
    pub(crate) bucket: String,
    pub(crate) key: String,
    #[arg(long)]
    pub(crate) version_id: Option<String>,
}
