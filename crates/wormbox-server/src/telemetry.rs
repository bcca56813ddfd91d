//! Tracing set-up for `wormboxd`: an env filter from `WORMBOX_LOG`, else the
//! config's `[log] filter`, written as text or as JSON lines (`[log]
//! format`); a gRPC call's lines carry its span (method, request id).
//!
//! Invariant: logs are diagnostics, never the audit trail (that is the ledger);
//! no secret, credential, MFA code or object byte is ever a field. s3s logs
//! whole requests (every header, `x-amz-mfa` among them) and SigV2's string
//! to sign at debug level, so its target is held at `info` whatever the
//! filter asks (`filter`).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; later calls are ignored (tests start many servers).
pub fn init(default_filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_env("WORMBOX_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(held(filter)).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(true).try_init(),
    };
}

/// The filter `spec` asks for (as `[log] filter` or `WORMBOX_LOG`), with s3s
/// held at `info`.
pub fn filter(spec: &str) -> EnvFilter {
    held(EnvFilter::new(spec))
}

/// `filter` with s3s at `info`, whatever it said of s3s: its debug events
/// carry request headers (MFA codes) and SigV2's string to sign.
fn held(filter: EnvFilter) -> EnvFilter {
    filter.add_directive("s3s=info".parse().expect("a valid directive"))
}
