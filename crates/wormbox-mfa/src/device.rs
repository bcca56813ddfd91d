//! A device record and the pure rules over it: verification with replay
//! protection and lockout, and the two-code search of activation and resync.
//!
//! Invariant: `last_step` only grows, and a code is accepted only for a step
//! above it; so a step, and every earlier one, is spent for good once any
//! code of the device has been accepted. Every candidate step in the window
//! is computed and compared (in constant time) before the verdict is known.

use wormbox_token::{Algorithm, Code, OtpParams, Totp};

use crate::MfaError;

/// Where a device is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceState {
    /// Enrolled, waiting for two consecutive codes.
    Pending,
    /// Usable.
    Active,
    /// Retired for good.
    Deactivated,
    /// Never activated: not activated within the pending time, or another
    /// device of its owner was activated first (see `Authority::activate`).
    Expired,
}

impl DeviceState {
    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Pending => "pending",
            DeviceState::Active => "active",
            DeviceState::Deactivated => "deactivated",
            DeviceState::Expired => "expired",
        }
    }
}

/// Tunables of verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Steps accepted either side of the tracked drift.
    pub window: u64,
    /// How far activation and resync search, in seconds either side.
    pub search_secs: u64,
    /// Failures in a row before a lockout.
    pub max_failures: u32,
    /// The first lockout's length; each further one doubles.
    pub lockout_base_secs: u64,
    /// The longest lockout.
    pub lockout_max_secs: u64,
    /// How long an enrolled device may wait for its activation; after it,
    /// it can only expire (a pending device is a seed someone else chose).
    pub pending_secs: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            window: 1,
            search_secs: 24 * 3600,
            max_failures: 5,
            lockout_base_secs: 60,
            lockout_max_secs: 24 * 3600,
            pending_secs: 24 * 3600,
        }
    }
}

/// A device as stored. The seed is sealed; nothing here is secret otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The serial.
    pub serial: String,
    /// The access key id of the principal whose device it is.
    pub owner: String,
    /// Algorithm, digits, step, T0.
    pub params: OtpParams,
    /// Life-cycle state.
    pub state: DeviceState,
    /// Tracked clock drift of the token, in steps.
    pub drift: i64,
    /// The highest step ever accepted (or used in activation).
    pub last_step: Option<u64>,
    /// Failures in a row.
    pub failures: u32,
    /// Lockouts since the last success.
    pub lockouts: u32,
    /// Unix second until which the device is locked out (0: not locked).
    pub locked_until: u64,
    /// Enrolment time, compliance-clock µs.
    pub created_at: i64,
    /// The seed, sealed by `MasterKey`.
    pub sealed_seed: Vec<u8>,
}

/// The result of checking one code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The code matched an unspent step, now spent.
    Accepted {
        /// The step matched.
        step: u64,
    },
    /// The code matched no step of the window.
    Invalid,
    /// The code matched a spent step.
    Replayed,
    /// The device is locked out.
    LockedOut {
        /// Unix second when the lockout ends.
        until: u64,
    },
}

const FORMAT: u8 = 1;

impl DeviceRecord {
    /// Encodes with a format byte first.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FORMAT];
        put_str(&mut out, &self.serial);
        put_str(&mut out, &self.owner);
        out.push(match self.params.algorithm {
            Algorithm::Sha1 => 1,
            Algorithm::Sha256 => 2,
            Algorithm::Sha512 => 3,
        });
        out.push(self.params.digits);
        out.extend_from_slice(&self.params.step_secs.to_be_bytes());
        out.extend_from_slice(&self.params.t0.to_be_bytes());
        out.push(match self.state {
            DeviceState::Pending => 0,
            DeviceState::Active => 1,
            DeviceState::Deactivated => 2,
            DeviceState::Expired => 3,
        });
        out.extend_from_slice(&self.drift.to_be_bytes());
        match self.last_step {
            None => out.push(0),
            Some(step) => {
                out.push(1);
                out.extend_from_slice(&step.to_be_bytes());
            }
        }
        out.extend_from_slice(&self.failures.to_be_bytes());
        out.extend_from_slice(&self.lockouts.to_be_bytes());
        out.extend_from_slice(&self.locked_until.to_be_bytes());
        out.extend_from_slice(&self.created_at.to_be_bytes());
        put_bytes(&mut out, &self.sealed_seed);
        out
    }

    /// Decodes; anything truncated, trailing or unknown is an error.
    pub fn decode(raw: &[u8]) -> Result<DeviceRecord, MfaError> {
        let mut r = Reader(raw);
        if r.u8()? != FORMAT {
            return Err(corrupt());
        }
        let serial = r.string()?;
        let owner = r.string()?;
        let algorithm = match r.u8()? {
            1 => Algorithm::Sha1,
            2 => Algorithm::Sha256,
            3 => Algorithm::Sha512,
            _ => return Err(corrupt()),
        };
        let digits = r.u8()?;
        let step_secs = r.u64()?;
        let t0 = r.u64()?;
        let state = match r.u8()? {
            0 => DeviceState::Pending,
            1 => DeviceState::Active,
            2 => DeviceState::Deactivated,
            3 => DeviceState::Expired,
            _ => return Err(corrupt()),
        };
        let drift = r.u64()? as i64;
        let last_step = match r.u8()? {
            0 => None,
            1 => Some(r.u64()?),
            _ => return Err(corrupt()),
        };
        let failures = r.u32()?;
        let lockouts = r.u32()?;
        let locked_until = r.u64()?;
        let created_at = r.u64()? as i64;
        let sealed_seed = r.bytes()?.to_vec();
        if !r.0.is_empty() {
            return Err(corrupt());
        }
        let params = OtpParams { algorithm, digits, step_secs, t0 };
        params.validate().map_err(|_| corrupt())?;
        Ok(DeviceRecord {
            serial,
            owner,
            params,
            state,
            drift,
            last_step,
            failures,
            lockouts,
            locked_until,
            created_at,
            sealed_seed,
        })
    }

    /// Checks `code` at unix second `now` and updates the counters. The
    /// caller persists the record whatever the verdict.
    pub fn check(&mut self, totp: &Totp, code: &str, now: u64, policy: &Policy) -> Verdict {
        if self.locked_until > now {
            return Verdict::LockedOut { until: self.locked_until };
        }
        let verdict = match_window(totp, code, now, self.drift, self.last_step, policy.window);
        match verdict {
            Verdict::Accepted { step } => {
                self.last_step = Some(step);
                if let Some(current) = totp.step_at(now) {
                    self.drift = step as i64 - current as i64;
                }
                self.failures = 0;
                self.lockouts = 0;
                self.locked_until = 0;
            }
            _ => self.fail(now, policy),
        }
        verdict
    }

    /// Counts a failure; the `max_failures`-th in a row starts a lockout
    /// twice as long as the previous one.
    pub fn fail(&mut self, now: u64, policy: &Policy) {
        self.failures = self.failures.saturating_add(1);
        if self.failures >= policy.max_failures {
            let factor = 1u64.checked_shl(self.lockouts.min(32)).unwrap_or(u64::MAX);
            let length = policy.lockout_base_secs.saturating_mul(factor).min(policy.lockout_max_secs);
            self.locked_until = now.saturating_add(length);
            self.lockouts = self.lockouts.saturating_add(1);
            self.failures = 0;
        }
    }

    /// Accepts a found activation pair `(s, s+1)`: both steps are spent.
    pub fn accept_pair(&mut self, step: u64, now_step: u64) {
        self.last_step = Some(step + 1);
        self.drift = (step + 1) as i64 - now_step as i64;
        self.failures = 0;
        self.lockouts = 0;
        self.locked_until = 0;
    }
}

/// Compares `code` with every step of `drift ± window` around `now`, without
/// stopping at a match, and judges the match against `last_step`.
pub fn match_window(totp: &Totp, code: &str, now: u64, drift: i64, last_step: Option<u64>, window: u64) -> Verdict {
    let Some(current) = totp.step_at(now) else {
        return Verdict::Invalid;
    };
    let presented = Code::parse(code, totp.params().digits);
    let center = (current as i64).saturating_add(drift).max(0) as u64;
    let mut accepted: Option<u64> = None;
    let mut replayed = false;
    for step in center.saturating_sub(window)..=center.saturating_add(window) {
        let Ok(expected) = totp.code_at_step(step) else { continue };
        let matches = presented.as_ref().is_some_and(|p| p.ct_eq(&expected));
        let fresh = last_step.is_none_or(|last| step > last);
        if matches && fresh && accepted.is_none() {
            accepted = Some(step);
        }
        replayed |= matches && !fresh;
    }
    match (accepted, replayed) {
        (Some(step), _) => Verdict::Accepted { step },
        (None, true) => Verdict::Replayed,
        (None, false) => Verdict::Invalid,
    }
}

/// Finds the single step `s` within `search_secs` of `now` with
/// `code(s) = first` and `code(s+1) = second`, above `last_step`.
pub fn find_pair(
    totp: &Totp,
    first: &Code,
    second: &Code,
    now: u64,
    last_step: Option<u64>,
    search_secs: u64,
) -> Result<u64, MfaError> {
    let current = totp.step_at(now).ok_or(MfaError::Invalid)?;
    let reach = search_secs / totp.params().step_secs.max(1);
    let low = current.saturating_sub(reach).max(last_step.map_or(0, |l| l + 1));
    let high = current.saturating_add(reach);
    if low > high {
        return Err(MfaError::Invalid);
    }
    let mut found = Vec::new();
    let mut previous = totp.code_at_step(low).map_err(|_| MfaError::Invalid)?;
    for step in low..high {
        let next = totp.code_at_step(step + 1).map_err(|_| MfaError::Invalid)?;
        if previous.ct_eq(first) && next.ct_eq(second) {
            found.push(step);
        }
        previous = next;
    }
    match found.as_slice() {
        [step] => Ok(*step),
        // None, or ambiguous: two consecutive codes must name one moment.
        _ => Err(MfaError::Invalid),
    }
}

fn corrupt() -> MfaError {
    MfaError::Corrupt
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MfaError> {
        if self.0.len() < n {
            return Err(corrupt());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, MfaError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, MfaError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().map_err(|_| corrupt())?))
    }
    fn u64(&mut self) -> Result<u64, MfaError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().map_err(|_| corrupt())?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], MfaError> {
        let len = self.u32()? as usize;
        self.take(len)
    }
    fn string(&mut self) -> Result<String, MfaError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| corrupt())
    }
}

#[cfg(test)]
mod tests {
    use wormbox_token::Seed;

    use super::*;

    fn totp() -> Totp {
        Totp::new(&Seed::new(b"12345678901234567890".to_vec()).unwrap(), OtpParams::default()).unwrap()
    }

    fn device() -> DeviceRecord {
        DeviceRecord {
            serial: "GAHT12345678".into(),
            owner: "WBOWNER".into(),
            params: OtpParams::default(),
            state: DeviceState::Active,
            drift: 0,
            last_step: None,
            failures: 0,
            lockouts: 0,
            locked_until: 0,
            created_at: 1,
            sealed_seed: vec![1, 2, 3],
        }
    }

    #[test]
    fn records_round_trip_and_damage_is_detected() {
        let mut d = device();
        d.last_step = Some(7);
        d.drift = -3;
        let raw = d.encode();
        assert_eq!(DeviceRecord::decode(&raw).unwrap(), d);
        for cut in 0..raw.len() {
            assert!(DeviceRecord::decode(&raw[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = raw.clone();
        extra.push(0);
        assert!(DeviceRecord::decode(&extra).is_err());
        let mut future = raw;
        future[0] = 2;
        assert!(DeviceRecord::decode(&future).is_err());
    }

    #[test]
    fn window_boundaries_of_the_test_vectors() {
        let t = totp();
        // Code 287082 is step 1 (t in 30..=59); window ±1.
        for (now, want) in [
            (59, Verdict::Accepted { step: 1 }),
            (60, Verdict::Accepted { step: 1 }),
            (89, Verdict::Accepted { step: 1 }),
            (90, Verdict::Invalid),
            (119, Verdict::Invalid),
            (120, Verdict::Invalid),
        ] {
            assert_eq!(match_window(&t, "287082", now, 0, None, 1), want, "t={now}");
        }
        assert_eq!(match_window(&t, "287082", 0, 0, None, 1), Verdict::Accepted { step: 1 });
        assert_eq!(match_window(&t, "28708", 59, 0, None, 1), Verdict::Invalid);
        assert_eq!(match_window(&t, "2870820", 59, 0, None, 1), Verdict::Invalid);
        assert_eq!(match_window(&t, "", 59, 0, None, 1), Verdict::Invalid);
        // Drift moves the window: 30 steps ahead, the old code is out.
        assert_eq!(match_window(&t, "287082", 59, 30, None, 1), Verdict::Invalid);
    }

    #[test]
    fn replay_and_monotonic_step() {
        let t = totp();
        let p = Policy::default();
        let mut d = device();
        assert_eq!(d.check(&t, "287082", 59, &p), Verdict::Accepted { step: 1 });
        assert_eq!(d.check(&t, "287082", 60, &p), Verdict::Replayed);

        let mut d = device();
        assert_eq!(d.check(&t, "969429", 60, &p), Verdict::Accepted { step: 3 });
        assert_eq!(d.drift, 1);
        // Step 2 was never used but lies at or below the last accepted step.
        assert_eq!(d.check(&t, "359152", 60, &p), Verdict::Replayed);
    }

    #[test]
    fn five_failures_in_a_row_lock_out_for_a_growing_interval() {
        let t = totp();
        let p = Policy::default();
        let mut d = device();
        for _ in 0..4 {
            assert_eq!(d.check(&t, "000000", 1000, &p), Verdict::Invalid);
        }
        assert_eq!(d.locked_until, 0);
        d.check(&t, "000000", 1000, &p);
        assert_eq!(d.locked_until, 1060);
        // Even the right code is refused while locked out.
        let right = t.code_at(1030).unwrap();
        assert_eq!(d.check(&t, right.expose(), 1030, &p), Verdict::LockedOut { until: 1060 });
        for _ in 0..5 {
            d.check(&t, "000000", 1100, &p);
        }
        assert_eq!(d.locked_until, 1100 + 120, "the second lockout is twice as long");
        let right = t.code_at(1300).unwrap();
        assert_eq!(d.check(&t, right.expose(), 1300, &p), Verdict::Accepted { step: 1300 / 30 });
        assert_eq!((d.failures, d.lockouts, d.locked_until), (0, 0, 0));
        // Growth is capped.
        d.lockouts = 60;
        d.failures = 4;
        d.fail(0, &p);
        assert_eq!(d.locked_until, p.lockout_max_secs);
    }

    #[test]
    fn activation_pairs() {
        let t = totp();
        let c = |s: &str| Code::parse(s, 6).unwrap();
        assert_eq!(find_pair(&t, &c("359152"), &c("969429"), 100, None, 3600).unwrap(), 2);
        assert!(find_pair(&t, &c("359152"), &c("338314"), 100, None, 3600).is_err());
        assert!(find_pair(&t, &c("969429"), &c("359152"), 100, None, 3600).is_err());
        // Far away in time, still found within ±24 h.
        assert_eq!(find_pair(&t, &c("359152"), &c("969429"), 80_000, None, 86_400).unwrap(), 2);
        assert!(find_pair(&t, &c("359152"), &c("969429"), 100_000, None, 86_400).is_err());
        // Codes at or below the spent step cannot be used for a resync.
        assert!(find_pair(&t, &c("359152"), &c("969429"), 100, Some(2), 3600).is_err());
        let mut d = device();
        d.accept_pair(2, 3);
        assert_eq!((d.last_step, d.drift), (Some(3), 0));
        assert_eq!(match_window(&t, "969429", 100, d.drift, d.last_step, 1), Verdict::Replayed);
    }
}
