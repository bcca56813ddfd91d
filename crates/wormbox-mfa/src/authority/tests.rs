//! The authority against DESIGN.md's MFA rules, on `MemBackend` with a
//! manual clock: each test tries to break one rule.

use std::sync::Arc;
use std::time::Duration;

use wormbox_model::{Clock, ManualClock, Role, Timestamp};
use wormbox_store::backend::MemBackend;
use wormbox_store::ledger::LedgerOp;
use wormbox_store::{Actor, Store, StoreOptions};
use wormbox_token::{OtpParams, Seed, Totp};

use super::*;

const SEED: &[u8] = b"12345678901234567890";
const SERIAL: &str = "GAHT12345678";
/// 2026-11-27T00:00:00Z, on a 30 s boundary.
const T: i64 = 1_795_737_600;

struct World {
    backend: MemBackend,
    clock: Arc<ManualClock>,
    mfa: Authority,
    admin: Actor,
    owner: Actor,
    other: Actor,
    token: Totp,
}

fn open(backend: &MemBackend, clock: &Arc<ManualClock>) -> Authority {
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let store = Store::open(
        Arc::new(backend.clone()),
        dyn_clock.clone(),
        StoreOptions { max_object_bytes: 1 << 20, ..StoreOptions::default() },
    )
    .unwrap();
    Authority::new(store, MasterKey::from_bytes(&[7; 32]).unwrap(), dyn_clock, Policy::default())
}

async fn world() -> World {
    let backend = MemBackend::new();
    let clock = Arc::new(ManualClock::new(Timestamp(T * 1_000_000)));
    let mfa = open(&backend, &clock);
    let admin = Actor { access_key: "WBADMIN".into(), role: Role::Admin };
    let mut principals = Vec::new();
    for name in ["owner", "other"] {
        let p = mfa.store.create_principal(&Actor::system(), name, Role::Writer).await.unwrap();
        principals.push(Actor { access_key: p.access_key, role: Role::Writer });
    }
    let other = principals.pop().unwrap();
    let owner = principals.pop().unwrap();
    let token = Totp::new(&Seed::new(SEED.to_vec()).unwrap(), OtpParams::default()).unwrap();
    World { backend, clock, mfa, admin, owner, other, token }
}

impl World {
    fn now(&self) -> u64 {
        (self.clock.now().0 / 1_000_000) as u64
    }

    /// The code the token shows `offset` steps from now.
    fn code(&self, offset: i64) -> String {
        let step = self.token.step_at(self.now()).unwrap() as i64 + offset;
        self.token.code_at_step(step as u64).unwrap().expose().to_owned()
    }

    fn advance_steps(&self, n: u64) {
        self.clock.advance(Duration::from_secs(30 * n));
    }

    async fn enroll(&self, serial: &str, owner: &Actor) -> Result<Vec<DeviceInfo>, MfaError> {
        let device =
            Enrollment { serial: serial.into(), params: OtpParams::default(), seed: Seed::new(SEED.to_vec()).unwrap() };
        self.mfa.enroll(&self.admin, &owner.access_key, vec![device], None).await
    }

    async fn active(&self) {
        self.enroll(SERIAL, &self.owner).await.unwrap();
        self.mfa.activate(&self.owner, SERIAL, &self.code(0), &self.code(1)).await.unwrap();
        // Both activation codes are spent; wait for a fresh step.
        self.advance_steps(2);
    }

    async fn verify(&self, mfa: &str) -> Result<Serial, MfaError> {
        let op = Operation { bucket: "b".into(), what: "delete-version key=k".into() };
        self.mfa.verify(&self.owner, &self.owner.access_key, mfa, &op).await
    }

    fn ledger(&self) -> Vec<wormbox_store::ledger::LedgerEntry> {
        self.mfa.store.ledger_entries(1).unwrap().into_iter().map(|(e, _)| e).collect()
    }
}

#[tokio::test]
async fn enrolment_activation_and_one_code_per_operation() {
    let w = world().await;
    let info = w.enroll(SERIAL, &w.owner).await.unwrap();
    assert_eq!(info[0].state, DeviceState::Pending);
    // A pending device is not usable.
    assert!(matches!(w.verify(&format!("{SERIAL} {}", w.code(0))).await, Err(MfaError::Invalid)));
    // Activation needs two consecutive codes.
    let err = w.mfa.activate(&w.owner, SERIAL, &w.code(0), &w.code(2)).await.unwrap_err();
    assert!(matches!(err, MfaError::Invalid));
    let active = w.mfa.activate(&w.owner, SERIAL, &w.code(0), &w.code(1)).await.unwrap();
    assert_eq!(active.state, DeviceState::Active);
    // Neither activation code can ever be used again.
    assert!(matches!(w.verify(&format!("{SERIAL} {}", w.code(1))).await, Err(MfaError::Replayed)));
    w.advance_steps(2);
    let code = w.code(0);
    assert_eq!(w.verify(&format!("{SERIAL} {code}")).await.unwrap().as_str(), SERIAL);
    assert!(matches!(w.verify(&format!("{SERIAL} {code}")).await, Err(MfaError::Replayed)));
    // An earlier code that was never used is spent too.
    assert!(matches!(w.verify(&format!("{SERIAL} {}", w.code(-1))).await, Err(MfaError::Replayed)));

    // Across a restart the step stays spent.
    let reopened = open(&w.backend, &w.clock);
    let op = Operation::default();
    let again = reopened.verify(&w.owner, &w.owner.access_key, &format!("{SERIAL} {code}"), &op).await;
    assert!(matches!(again, Err(MfaError::Replayed)));

    // The ledger names the operation, never the code.
    let entries = w.ledger();
    let accepted: Vec<_> = entries.iter().filter(|e| e.op == LedgerOp::MfaAccepted).collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].detail, "operation=delete-version key=k");
    assert_eq!(accepted[0].bucket, "b");
    assert!(entries.iter().any(|e| e.op == LedgerOp::MfaEnrolled));
    assert!(entries.iter().any(|e| e.op == LedgerOp::MfaActivated));
    assert!(entries.iter().filter(|e| e.op == LedgerOp::MfaRefused).count() >= 4);
    for e in &entries {
        assert!(!e.detail.contains(&code) && !e.key.contains(&code), "{e:?}");
        assert!(!e.detail.contains("1234567890"), "{e:?}");
    }
}

#[tokio::test]
async fn unusable_devices_answer_exactly_like_a_wrong_code() {
    let w = world().await;
    w.active().await;
    w.enroll("GAHT-OTHERS-1", &w.other).await.unwrap();
    let wrong = w.verify(&format!("{SERIAL} 000000")).await.unwrap_err().to_string();
    for mfa in [
        format!("GAHT99999999 {}", w.code(0)),  // unknown serial
        format!("GAHT-OTHERS-1 {}", w.code(0)), // pending, and another principal's
        format!("{SERIAL}  {}", w.code(0)),     // two spaces
        format!("{SERIAL} {}x", w.code(0)),     // not digits
        "garbage".to_owned(),
        String::new(),
    ] {
        assert_eq!(w.verify(&mfa).await.unwrap_err().to_string(), wrong, "{mfa:?}");
    }
    // Another principal's active device is refused for this owner's operation.
    w.mfa.activate(&w.other, "GAHT-OTHERS-1", &w.code(0), &w.code(1)).await.unwrap();
    w.advance_steps(2);
    let op = Operation::default();
    let theirs = w.mfa.verify(&w.other, &w.owner.access_key, &format!("GAHT-OTHERS-1 {}", w.code(0)), &op).await;
    assert_eq!(theirs.unwrap_err().to_string(), wrong);
    // ...and that refusal did not spend or count against their device.
    let fine = w.mfa.verify(&w.other, &w.other.access_key, &format!("GAHT-OTHERS-1 {}", w.code(0)), &op).await;
    assert!(fine.is_ok());
}

#[tokio::test]
async fn lockout_after_five_failures_survives_restart_and_grows() {
    let w = world().await;
    w.active().await;
    for _ in 0..5 {
        assert!(matches!(w.verify(&format!("{SERIAL} 000000")).await, Err(MfaError::Invalid)));
    }
    let right = format!("{SERIAL} {}", w.code(0));
    assert!(matches!(w.verify(&right).await, Err(MfaError::LockedOut { .. })));
    let reopened = open(&w.backend, &w.clock);
    let again = reopened.verify(&w.owner, &w.owner.access_key, &right, &Operation::default()).await;
    assert!(matches!(again, Err(MfaError::LockedOut { .. })));
    let listed = &w.mfa.list(None).unwrap()[0];
    assert!(listed.locked_until > w.now());
    w.clock.advance(Duration::from_secs(61));
    assert!(w.verify(&format!("{SERIAL} {}", w.code(0))).await.is_ok());
    // What the metrics show: every code judged by outcome, one lockout.
    let counts = w.mfa.counts();
    assert_eq!(
        counts,
        crate::VerificationCounts { accepted: 1, invalid: 5, replayed: 0, locked_out: 1, unusable: 0, lockouts: 1 }
    );
    assert!(matches!(w.verify("malformed").await, Err(MfaError::Invalid)));
    assert!(matches!(w.verify(&format!("{SERIAL} {}", w.code(0))).await, Err(MfaError::Replayed)));
    let counts = w.mfa.counts();
    assert_eq!((counts.unusable, counts.replayed), (1, 1));
}

#[tokio::test]
async fn concurrent_requests_with_one_code_exactly_one_wins() {
    let w = world().await;
    w.active().await;
    let mfa = format!("{SERIAL} {}", w.code(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let authority = w.mfa.clone();
        let owner = w.owner.clone();
        let mfa = mfa.clone();
        tasks.push(tokio::spawn(async move {
            authority.verify(&owner, &owner.access_key, &mfa, &Operation::default()).await
        }));
    }
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => wins += 1,
            // Each loser is a failure, so after five the device locks out.
            Err(MfaError::Replayed | MfaError::LockedOut { .. }) => {}
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn resync_fixes_drift_and_never_reuses_codes() {
    let w = world().await;
    w.active().await;
    // The token now runs 10 minutes fast: its codes are out of the window.
    let fast = |offset: i64| w.code(20 + offset);
    assert!(matches!(w.verify(&format!("{SERIAL} {}", fast(0))).await, Err(MfaError::Invalid)));
    let info = w.mfa.resync(&w.owner, SERIAL, &fast(0), &fast(1)).await.unwrap();
    assert_eq!(info.drift_steps, 21);
    // The resync codes are spent; the next one is accepted around the drift.
    assert!(matches!(w.verify(&format!("{SERIAL} {}", fast(1))).await, Err(MfaError::Replayed)));
    w.advance_steps(2);
    assert!(w.verify(&format!("{SERIAL} {}", fast(0))).await.is_ok());
    // Another principal cannot resync it, and answers look like a wrong code.
    let theirs = w.mfa.resync(&w.other, SERIAL, &fast(1), &fast(2)).await;
    assert!(matches!(theirs, Err(MfaError::Invalid)));
}

#[tokio::test]
async fn enrolment_rules() {
    let w = world().await;
    // Only admins enrol; the owner must exist; serials are checked.
    let dev =
        || Enrollment { serial: SERIAL.into(), params: OtpParams::default(), seed: Seed::new(SEED.to_vec()).unwrap() };
    assert!(matches!(
        w.mfa.enroll(&w.owner, &w.owner.access_key, vec![dev()], None).await,
        Err(MfaError::AccessDenied(_))
    ));
    assert!(matches!(w.mfa.enroll(&w.admin, "WBNOBODY", vec![dev()], None).await, Err(MfaError::InvalidArgument(_))));
    assert!(matches!(w.enroll("short", &w.owner).await, Err(MfaError::InvalidArgument(_))));
    // A duplicate serial, in the request or in the store, enrols nothing.
    let before = w.ledger().len();
    assert!(matches!(
        w.mfa.enroll(&w.admin, &w.owner.access_key, vec![dev(), dev()], None).await,
        Err(MfaError::DuplicateSerial(_))
    ));
    w.active().await;
    let before_dup = w.ledger().len();
    let pair = vec![Enrollment { serial: "GAHT-NEW-0001".into(), ..dev() }, dev()];
    let code = format!("{SERIAL} {}", w.code(0));
    let err = w.mfa.enroll(&w.admin, &w.owner.access_key, pair, Some(&code)).await.unwrap_err();
    assert!(matches!(err, MfaError::DuplicateSerial(_)), "{err}");
    assert!(w.mfa.list(None).unwrap().iter().all(|d| d.serial != "GAHT-NEW-0001"));
    assert!(
        w.ledger().len() > before && w.ledger().len() == before_dup,
        "a duplicate is refused before the guard code is looked at, so nothing is recorded"
    );
    // An owner with an active device: a stolen admin key alone cannot add another.
    w.advance_steps(1);
    let new = || vec![Enrollment { serial: "GAHT-NEW-0002".into(), ..dev() }];
    let before_missing = w.ledger().len();
    assert!(matches!(w.mfa.enroll(&w.admin, &w.owner.access_key, new(), None).await, Err(MfaError::Required(_))));
    // The attempt without a code is evidence too: one refused entry, naming the admin and the serial.
    let entries = w.ledger();
    let refusals: Vec<_> = entries[before_missing..].iter().filter(|e| e.op == LedgerOp::MfaRefused).collect();
    assert_eq!(refusals.len(), 1, "a missing guard code writes one refused entry");
    let refused = refusals[0];
    assert_eq!(refused.principal, "WBADMIN");
    assert!(
        refused.detail.contains("reason=missing") && refused.detail.contains("GAHT-NEW-0002"),
        "{}",
        refused.detail
    );
    let bad = format!("{SERIAL} 000000");
    assert!(matches!(w.mfa.enroll(&w.admin, &w.owner.access_key, new(), Some(&bad)).await, Err(MfaError::Invalid)));
    let good = format!("{SERIAL} {}", w.code(0));
    assert_eq!(w.mfa.enroll(&w.admin, &w.owner.access_key, new(), Some(&good)).await.unwrap().len(), 1);
    // Listing shows no seed material.
    let listed = format!("{:?}", w.mfa.list(None).unwrap());
    assert!(!listed.contains("1234567890") && !listed.contains("sealed"));
}

#[tokio::test]
async fn deactivation_needs_a_code_and_is_final() {
    let w = world().await;
    w.active().await;
    let wrong = format!("{SERIAL} 000000");
    assert!(matches!(w.mfa.deactivate(&w.owner, SERIAL, Some(wrong.as_str())).await, Err(MfaError::Invalid)));
    let right = format!("{SERIAL} {}", w.code(0));
    assert!(matches!(w.mfa.deactivate(&w.other, SERIAL, Some(right.as_str())).await, Err(MfaError::Invalid)));
    // No code is `Required`, as everywhere, but only for a caller who may deactivate at all.
    assert!(matches!(w.mfa.deactivate(&w.owner, SERIAL, None).await, Err(MfaError::Required(_))));
    assert!(matches!(w.mfa.deactivate(&w.other, SERIAL, None).await, Err(MfaError::Invalid)));
    let info = w.mfa.deactivate(&w.owner, SERIAL, Some(right.as_str())).await.unwrap();
    assert_eq!(info.state, DeviceState::Deactivated);
    w.advance_steps(1);
    assert!(matches!(w.verify(&format!("{SERIAL} {}", w.code(0))).await, Err(MfaError::Invalid)));
    assert!(matches!(w.mfa.resync(&w.owner, SERIAL, &w.code(0), &w.code(1)).await, Err(MfaError::Invalid)));
    assert!(w.ledger().iter().any(|e| e.op == LedgerOp::MfaDeactivated));
}

#[tokio::test]
async fn pskc_enrolment() {
    let figure6 = include_str!("../../../wormbox-token/testdata/rfc6030-figure6-psk-aes128cbc.xml");
    let psk = pskc::PskcKey::PreShared(zeroize::Zeroizing::new(vec![
        0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12,
    ]));
    let err = Authority::enrollments_from_pskc(figure6, Some(&psk)).unwrap_err();
    assert!(err.to_string().contains("HOTP"), "{err}");
    let totp = figure6.replace("pskc:hotp", "pskc:totp");
    let devices = Authority::enrollments_from_pskc(&totp, Some(&psk)).unwrap();
    assert_eq!(devices[0].serial, "987654321");
    assert_eq!(devices[0].params.digits, 8);
    assert_eq!(devices[0].seed.expose(), SEED);
    let w = world().await;
    let enrolled = w.mfa.enroll(&w.admin, &w.owner.access_key, devices, None).await.unwrap();
    assert_eq!(enrolled[0].serial, "987654321");
    let wrong = pskc::PskcKey::PreShared(zeroize::Zeroizing::new(vec![0; 16]));
    assert!(Authority::enrollments_from_pskc(&totp, Some(&wrong)).is_err());
}

#[tokio::test]
async fn only_the_owner_activates_and_a_pending_device_expires() {
    let w = world().await;
    w.enroll(SERIAL, &w.owner).await.unwrap();
    // The admin who enrolled the seed cannot make it usable (issue 16, finding 3).
    let err = w.mfa.activate(&w.admin, SERIAL, &w.code(0), &w.code(1)).await.unwrap_err();
    assert!(matches!(err, MfaError::Invalid), "{err}");
    assert_eq!(w.mfa.list(None).unwrap()[0].state, DeviceState::Pending);
    // Past the pending time it is listed as expired, and an attempt expires it for good.
    w.clock.advance(Duration::from_secs(Policy::default().pending_secs + 1));
    assert_eq!(w.mfa.list(None).unwrap()[0].state, DeviceState::Expired);
    let err = w.mfa.activate(&w.owner, SERIAL, &w.code(0), &w.code(1)).await.unwrap_err();
    assert!(matches!(err, MfaError::Expired(_)), "{err}");
    let entries = w.ledger();
    let last = entries.last().unwrap();
    assert_eq!((last.op, last.key.as_str()), (LedgerOp::MfaDeactivated, SERIAL));
    assert!(last.detail.starts_with("expired"), "{}", last.detail);
    // The expiry is stored, not only computed.
    let reopened = open(&w.backend, &w.clock);
    assert_eq!(reopened.list(None).unwrap()[0].state, DeviceState::Expired);
    // The token (its serial is printed on it) can be enrolled again, and its owner activates it in time.
    w.enroll(SERIAL, &w.owner).await.unwrap();
    w.mfa.activate(&w.owner, SERIAL, &w.code(0), &w.code(1)).await.unwrap();
    // An active or deactivated device keeps its serial.
    assert!(matches!(w.enroll(SERIAL, &w.owner).await, Err(MfaError::DuplicateSerial(_))));
}

#[tokio::test]
async fn a_first_activation_expires_the_owners_older_pending_devices() {
    let w = world().await;
    // Someone enrols a seed of their choosing for the owner, who has no device yet...
    w.enroll("GAHT-PLANTED-1", &w.owner).await.unwrap();
    w.advance_steps(1);
    // ...then the owner's real token is enrolled and the owner activates it.
    w.enroll(SERIAL, &w.owner).await.unwrap();
    w.mfa.activate(&w.owner, SERIAL, &w.code(0), &w.code(1)).await.unwrap();
    w.advance_steps(2);
    let planted = w.mfa.list(None).unwrap().into_iter().find(|d| d.serial == "GAHT-PLANTED-1").unwrap();
    assert_eq!(planted.state, DeviceState::Expired);
    // Not even its owner can activate it now.
    let err = w.mfa.activate(&w.owner, "GAHT-PLANTED-1", &w.code(0), &w.code(1)).await.unwrap_err();
    assert!(matches!(err, MfaError::Invalid), "{err}");
    // Devices enrolled together (one PSKC file) stay activatable one after the other.
    let pair = ["GAHT-PAIR-0001", "GAHT-PAIR-0002"].map(|s| Enrollment {
        serial: s.into(),
        params: OtpParams::default(),
        seed: Seed::new(SEED.to_vec()).unwrap(),
    });
    let guard = format!("{SERIAL} {}", w.code(0));
    w.mfa.enroll(&w.admin, &w.owner.access_key, pair.into(), Some(&guard)).await.unwrap();
    w.advance_steps(1);
    w.mfa.activate(&w.owner, "GAHT-PAIR-0001", &w.code(0), &w.code(1)).await.unwrap();
    w.advance_steps(2);
    w.mfa.activate(&w.owner, "GAHT-PAIR-0002", &w.code(0), &w.code(1)).await.unwrap();
}

#[tokio::test]
async fn once_an_admin_has_a_device_enrolment_needs_the_callers_own_code() {
    let w = world().await;
    let boss = w.mfa.store.create_principal(&Actor::system(), "boss", Role::Admin).await.unwrap();
    let boss = Actor { access_key: boss.access_key, role: Role::Admin };
    assert!(!w.mfa.admin_guarded().unwrap());
    // The very first admin device needs no code; only its owner activates it.
    let first =
        Enrollment { serial: SERIAL.into(), params: OtpParams::default(), seed: Seed::new(SEED.to_vec()).unwrap() };
    w.mfa.enroll(&boss, &boss.access_key, vec![first], None).await.unwrap();
    assert!(!w.mfa.admin_guarded().unwrap(), "a pending device guards nothing");
    w.mfa.activate(&boss, SERIAL, &w.code(0), &w.code(1)).await.unwrap();
    w.advance_steps(2);
    assert!(w.mfa.admin_guarded().unwrap());
    // Now a stolen admin key alone enrols nothing, for anyone (issue 16, finding 2)...
    let dev = |s: &str| {
        vec![Enrollment { serial: s.into(), params: OtpParams::default(), seed: Seed::new(SEED.to_vec()).unwrap() }]
    };
    for owner in [&boss.access_key, &w.owner.access_key] {
        let err = w.mfa.enroll(&w.admin, owner, dev("GAHT-STOLEN-01"), None).await.unwrap_err();
        assert!(matches!(err, MfaError::Required(_)), "{err}");
    }
    // ...and the code must be the caller's own: the boss's code does not serve another admin key.
    let boss_code = format!("{SERIAL} {}", w.code(0));
    let err = w.mfa.enroll(&w.admin, &w.owner.access_key, dev("GAHT-STOLEN-01"), Some(&boss_code)).await.unwrap_err();
    assert!(matches!(err, MfaError::Invalid), "{err}");
    assert!(w.mfa.list(None).unwrap().iter().all(|d| d.serial != "GAHT-STOLEN-01"));
    w.advance_steps(1);
    let boss_code = format!("{SERIAL} {}", w.code(0));
    w.mfa.enroll(&boss, &w.owner.access_key, dev("GAHT-OWNERS-01"), Some(&boss_code)).await.unwrap();
    // Revoking the boss does not switch the guard off.
    w.mfa.store.revoke_principal(&Actor::system(), &boss.access_key).await.unwrap();
    assert!(w.mfa.admin_guarded().unwrap());
}
