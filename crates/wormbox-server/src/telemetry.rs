//! Tracing set-up for `wormboxd`: an env filter from `WORMBOX_LOG`, else the
//! config's `[log] filter`.
//!
//! Invariant: logs are diagnostics, never the audit trail (that is the ledger);
//! no secret, credential, MFA code or object byte is ever a field. `s3s` logs
//! whole requests (headers included, so an `x-amz-mfa` code) at debug level:
//! it is held at info whatever the filter asks.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Directive;

/// What no filter may lower: `s3s`'s debug events carry request headers.
const CLAMPED: &str = "s3s=info";

/// The filter `wanted` asks for, with `CLAMPED` on top.
fn filter(wanted: EnvFilter) -> EnvFilter {
    wanted.add_directive(CLAMPED.parse::<Directive>().expect("a valid directive"))
}

/// Installs the global subscriber; later calls are ignored (tests start many servers).
pub fn init(default_filter: &str) {
    let wanted = EnvFilter::try_from_env("WORMBOX_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt().with_env_filter(filter(wanted)).with_writer(std::io::stderr).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3s_is_held_at_info_even_when_debug_is_asked_for() {
        for asked in ["debug", "trace", "s3s=trace", "debug,s3s=debug", "warn"] {
            let shown = filter(EnvFilter::new(asked)).to_string();
            assert!(shown.contains("s3s=info"), "{asked}: {shown}");
            assert!(!shown.contains("s3s=debug") && !shown.contains("s3s=trace"), "{asked}: {shown}");
        }
    }
}
