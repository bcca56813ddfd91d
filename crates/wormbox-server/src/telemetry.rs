//! Tracing set-up for `wormboxd`: an env filter from `WORMBOX_LOG`, else the
//! config's `[log] filter`.
//!
//! Invariant: logs are diagnostics, never the audit trail (that is the ledger);
//! no secret, credential or object byte is ever a field.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; later calls are ignored (tests start many servers).
pub fn init(default_filter: &str) {
    let filter = EnvFilter::try_from_env("WORMBOX_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
