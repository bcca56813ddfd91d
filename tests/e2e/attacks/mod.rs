//! The attack suite: every way found to defeat write-once, MFA Delete or the
//! evidence, tried against a real server; each test is the regression test of
//! one finding (issue 16) and stays here so the class stays closed.

/// Who may attempt an operation is judged before any code is looked at.
mod authority;
/// Cancelled uploads never publish a version whose bytes are gone.
mod cancel;
/// PSKC cost bounded by the role check, MFA Delete never with Suspended, refusals ledgered.
mod small;
/// Damaged table files are lost data, named by verification; backups cannot hold the disk or the shutdown.
mod storage;
