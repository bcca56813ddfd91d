//! The attack suite: every way found to defeat write-once, MFA Delete or the
//! evidence, tried against a real server; each test is the regression test of
//! one finding (issue 16) and stays here so the class stays closed.

/// A stolen admin key alone cannot lower protection; pending devices are no back door.
mod admin;
/// Who may attempt an operation is judged before any code is looked at.
mod authority;
/// Cancelled uploads never publish a version whose bytes are gone.
mod cancel;
/// Restarts earn a held-back compliance clock nothing; downtime closes on its own at the catch-up rate.
mod clock;
/// User text (case ids, metadata) cannot forge the evidence, and is checked at every entry point.
mod evidence;
/// Floods of Ingest and PutObject wait within the receive budget; nothing grows.
mod flood;
/// A slow loris holds the receive budget only until its message's deadline; callers who may not write hold none.
mod loris;
/// One code for a whole DeleteObjects request, each purge still judged and ledgered.
mod multidelete;
/// The S3 front door inherits Trust: signatures, skew, scope, roles, digests, cut-off and slow bodies, MFA.
mod s3;
/// S3 secrets: admins only, no power minted without a code, shown once, sealed for their own key.
mod s3keys;
/// PSKC cost bounded by the role check, MFA Delete never with Suspended, refusals ledgered.
mod small;
/// Damaged table files are lost data, named by verification; backups cannot hold the disk or the shutdown.
mod storage;

use std::time::Duration;

use wormbox_proto::v1;
use wormbox_test_utils::{SimToken, TOKEN_SEED_BASE32, TestAppliance};
use wormbox_tokensim::Fault;

/// The simulated tokens' time step, in seconds.
const STEP: u64 = 30;
const DAY_MICROS: i64 = 24 * 3600 * 1_000_000;

/// The access key id of a `KEYID:SECRET` credential.
fn key_id(credential: &str) -> String {
    credential.split(':').next().unwrap().to_owned()
}

/// A token enrolled for the principal of `credential` and activated by that
/// principal; the clock is then moved past both activation codes, so the
/// token's current code is usable.
async fn token_for(app: &TestAppliance, credential: &str, serial: &str) -> SimToken {
    let token = SimToken::start(app.shared_clock(), serial, STEP, Fault::None, 0).unwrap();
    let seed = v1::SeedEnrollment {
        serial: serial.into(),
        seed_base32: TOKEN_SEED_BASE32.into(),
        step_seconds: STEP as u32,
        ..Default::default()
    };
    let enroll = v1::EnrollDeviceRequest {
        owner: key_id(credential),
        source: Some(v1::enroll_device_request::Source::Seed(seed)),
        mfa: String::new(),
    };
    app.mfa_as(app.admin_credential()).await.unwrap().enroll_device(enroll).await.unwrap();
    let code = |offset| token.code(app.clock(), offset).split(' ').nth(1).unwrap().to_owned();
    let activate = v1::ActivateDeviceRequest { serial: serial.into(), first_code: code(0), second_code: code(1) };
    app.mfa_as(credential).await.unwrap().activate_device(activate).await.unwrap();
    app.clock().advance(Duration::from_secs(2 * STEP));
    token
}
