//! `wormbox-tokensim`: a software Gemalto-style TOTP token on a byte stream.
//!
//! This package is reserved by the workspace layout; the MFA issue fills it
//! with `SimToken`, its serial line protocol (shared with the authority
//! through `wormbox-token` only) and the `tokensim` binary. It holds no code yet.
