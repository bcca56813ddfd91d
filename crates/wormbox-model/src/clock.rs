//! Time as the archive sees it: a `Timestamp` in microseconds and the `Clock`
//! it comes from.
//!
//! Invariant: policy code reads time only through `Clock`; the one call to the
//! system's wall clock is in `SystemClock`. The `ComplianceClock` never goes
//! back and gains on real time at most its catch-up rate over real running
//! time, however often the process restarts.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

/// Microseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// Returns microseconds since the Unix epoch.
    pub fn as_micros(self) -> i64 {
        self.0
    }

    /// Returns this instant moved forward by `by`, saturating.
    pub fn saturating_add(self, by: Duration) -> Timestamp {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(micros))
    }

    /// Formats as RFC 3339 in UTC with microseconds, e.g. `2026-11-27T00:00:00.000000Z`.
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
    }
}

impl Timestamp {
    /// Parses what `to_rfc3339` writes, with or without fractional seconds
    /// (`2033-01-01T00:00:00Z`), or a bare UTC date (`2033-01-01`).
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        let (date, time) = match text.split_once('T') {
            Some((date, time)) => (date, Some(time.strip_suffix('Z')?)),
            None => (text, None),
        };
        let mut parts = date.splitn(3, '-');
        let year: i64 = parts.next()?.parse().ok()?;
        let month: u32 = parts.next()?.parse().ok()?;
        let day: u32 = parts.next()?.parse().ok()?;
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        let (mut secs, mut micros) = (0i64, 0i64);
        if let Some(time) = time {
            let (hms, fraction) = match time.split_once('.') {
                Some((hms, f)) => (hms, Some(f)),
                None => (time, None),
            };
            let fields: Vec<i64> = hms.split(':').map(|f| f.parse().ok()).collect::<Option<_>>()?;
            let [h, m, sec] = fields.as_slice() else { return None };
            if !(0..24).contains(h) || !(0..60).contains(m) || !(0..60).contains(sec) {
                return None;
            }
            secs = h * 3600 + m * 60 + sec;
            if let Some(f) = fraction {
                if f.is_empty() || f.len() > 6 || !f.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                micros = f.parse::<i64>().ok()? * 10i64.pow(6 - f.len() as u32);
            }
        }
        let days = days_from_civil(year, month, day);
        Some(Timestamp((days * 86_400 + secs).checked_mul(1_000_000)?.checked_add(micros)?))
    }
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days-from-civil, the inverse of `civil_from_days`.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if month > 2 { month - 3 } else { month + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

// Howard Hinnant's days-to-civil algorithm; exact for the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A source of wall-clock time, and of monotonic time to judge it by.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Returns the current wall-clock time (it may jump either way).
    fn now(&self) -> Timestamp;
    /// Returns time elapsed since an arbitrary fixed origin; never jumps.
    fn monotonic(&self) -> Duration;
}

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(clippy::disallowed_methods, reason = "SystemClock is the one sanctioned reader of the wall clock")]
    fn now(&self) -> Timestamp {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Timestamp(i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX))
    }

    fn monotonic(&self) -> Duration {
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        ORIGIN.get_or_init(std::time::Instant::now).elapsed()
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<(Timestamp, Duration)>,
}

impl ManualClock {
    /// Starts the clock at `start`.
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock { now: Mutex::new((start, Duration::ZERO)) }
    }

    /// Lets time pass: wall and monotonic time both move by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        now.0 = now.0.saturating_add(by);
        now.1 = now.1.saturating_add(by);
    }

    /// Sets the wall clock to `to`, either way, without time passing: what
    /// an operator (or an attacker) setting the system clock does.
    pub fn set(&self, to: Timestamp) {
        self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).0 = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).0
    }

    fn monotonic(&self) -> Duration {
        self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).1
    }
}

/// How the compliance clock catches up with a system clock that is ahead of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockPolicy {
    /// Compliance time the clock may gain on top of real time, per
    /// `ClockPolicy::YEAR` of real (monotonic) time while the system clock is
    /// ahead of it: SnapLock's "a week per year". Zero: only an admin's
    /// accept-forward closes a gap.
    pub catch_up_per_year: Duration,
    /// A gap opened by a forward jump of the system clock larger than this
    /// is reported (once per jump); smaller ones are caught up silently.
    pub report_after: Duration,
}

impl ClockPolicy {
    /// The year the catch-up rate is stated over: 365 days of real time.
    pub const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

    fn catch_up_micros(self) -> u128 {
        self.catch_up_per_year.as_micros().min(ClockPolicy::YEAR.as_micros())
    }
}

impl Default for ClockPolicy {
    fn default() -> Self {
        ClockPolicy { catch_up_per_year: Duration::from_secs(7 * 24 * 3600), report_after: Duration::from_secs(60) }
    }
}

/// What the compliance clock has to report about the system clock's lead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockEvent {
    /// The system clock jumped ahead by more than `ClockPolicy::report_after`:
    /// the compliance clock is this far behind and catches up at the policy's rate.
    HeldBack(Duration),
    /// A reported gap is closed: the compliance clock reached the system clock.
    CaughtUp,
}

/// The compliance clock: the time retention is judged by (DESIGN.md
/// invariant 4), as NetApp SnapLock's ComplianceClock keeps it.
///
/// It never moves backwards and advances with real time as the monotonic
/// clock measures it, whatever the system clock does. When the system clock
/// is ahead (it was set forward, or the archive was stopped: downtime earns
/// nothing), it gains on top of real time at most `catch_up_per_year` per year
/// of monotonic time, and only over intervals that begin with the system
/// clock ahead, so no credit is banked; an admin may accept the whole gap at
/// once (`accept_forward`). The catch-up is a rate over real running time
/// and nothing else: a restart resumes from the persisted time with no
/// allowance, so restarting earns nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComplianceClock {
    current: Timestamp,
    last_mono: Duration,
    /// Whether the system clock was ahead at the last observation: the
    /// interval since then may earn catch-up.
    catching_up: bool,
    /// Catch-up earned but below one microsecond, in µs/`YEAR` units.
    carry: u128,
    /// The system clock's lead over the monotonic clock (µs) when a gap was
    /// last reported; `None` when no reported gap is open.
    reported_lead: Option<i128>,
    policy: ClockPolicy,
}

impl ComplianceClock {
    /// Resumes from `persisted` (or starts at `system` on a new archive),
    /// anchored at monotonic time `mono`.
    pub fn resume(
        persisted: Option<Timestamp>,
        system: Timestamp,
        mono: Duration,
        policy: ClockPolicy,
    ) -> ComplianceClock {
        let current = persisted.unwrap_or(system);
        ComplianceClock {
            current,
            last_mono: mono,
            catching_up: system > current,
            carry: 0,
            reported_lead: None,
            policy,
        }
    }

    /// The compliance time at `mono`, given the system clock reads `system`.
    pub fn observe(&mut self, system: Timestamp, mono: Duration) -> Timestamp {
        let mono = mono.max(self.last_mono);
        let elapsed = mono - self.last_mono;
        self.last_mono = mono;
        let floor = self.current.saturating_add(elapsed);
        let mut ceiling = floor;
        if self.catching_up {
            let year = ClockPolicy::YEAR.as_micros();
            let earned = elapsed.as_micros().saturating_mul(self.policy.catch_up_micros()).saturating_add(self.carry);
            self.carry = earned % year;
            ceiling = floor.saturating_add(Duration::from_micros(u64::try_from(earned / year).unwrap_or(u64::MAX)));
        }
        let next = system.min(ceiling).max(floor);
        self.current = next;
        self.catching_up = system > next;
        if !self.catching_up {
            self.carry = 0;
        }
        next
    }

    /// How far the system clock is ahead of the compliance clock, if it is.
    pub fn held_back(&self, system: Timestamp) -> Option<Duration> {
        let ahead = system.0.saturating_sub(self.current.0);
        (ahead > 0).then(|| Duration::from_micros(u64::try_from(ahead).unwrap_or(0)))
    }

    /// When, by a system clock keeping real time, the compliance clock will
    /// have caught up with it; `None` when it has, or never will on its own.
    pub fn caught_up_at(&self, system: Timestamp) -> Option<Timestamp> {
        let gap = self.held_back(system)?;
        let rate = self.policy.catch_up_micros();
        if rate == 0 {
            return None;
        }
        let wait = gap.as_micros().saturating_mul(ClockPolicy::YEAR.as_micros()).div_ceil(rate);
        Some(system.saturating_add(Duration::from_micros(u64::try_from(wait).unwrap_or(u64::MAX))))
    }

    /// What to report after observing `system` at `mono`: a gap opened by a
    /// jump beyond `report_after` (again if the system clock jumps further
    /// while it is open), and the end of a reported gap.
    pub fn report(&mut self, system: Timestamp, mono: Duration) -> Option<ClockEvent> {
        let lead = i128::from(system.0) - i128::try_from(mono.as_micros()).unwrap_or(i128::MAX);
        let threshold = i128::try_from(self.policy.report_after.as_micros()).unwrap_or(i128::MAX);
        match (self.reported_lead, self.held_back(system)) {
            (Some(_), None) => {
                self.reported_lead = None;
                Some(ClockEvent::CaughtUp)
            }
            (Some(at), Some(gap)) if lead > at.saturating_add(threshold) => {
                self.reported_lead = Some(lead);
                Some(ClockEvent::HeldBack(gap))
            }
            (Some(at), Some(_)) => {
                // Set back meanwhile: a later jump is measured from here.
                self.reported_lead = Some(at.min(lead));
                None
            }
            (None, Some(gap)) if gap > self.policy.report_after => {
                self.reported_lead = Some(lead);
                Some(ClockEvent::HeldBack(gap))
            }
            (None, _) => None,
        }
    }

    /// Accepts the system clock's reading as the new compliance time when it
    /// is ahead (never backwards). Returns (from, to).
    pub fn accept_forward(&mut self, system: Timestamp, mono: Duration) -> (Timestamp, Timestamp) {
        let from = self.observe(system, mono);
        let to = from.max(system);
        self.current = to;
        self.catching_up = false;
        self.carry = 0;
        self.reported_lead = None;
        (from, to)
    }

    /// The last compliance time observed.
    pub fn current(&self) -> Timestamp {
        self.current
    }

    /// The policy it keeps.
    pub fn policy(&self) -> ClockPolicy {
        self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

    const START: Timestamp = Timestamp(1_795_737_600_000_000);
    const HOUR: Duration = Duration::from_secs(3600);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// The most the default policy lets the clock gain on real time over `elapsed`.
    fn allowance(elapsed: Duration) -> Duration {
        let year = ClockPolicy::YEAR.as_micros();
        let micros = elapsed.as_micros() * ClockPolicy::default().catch_up_per_year.as_micros() / year;
        Duration::from_micros(u64::try_from(micros).unwrap())
    }

    #[test]
    fn the_compliance_clock_never_goes_back_and_catches_up_with_jumps_only_at_its_rate() {
        let mut c = ComplianceClock::resume(None, START, Duration::ZERO, ClockPolicy::default());
        // Normal operation follows the system clock.
        assert_eq!(c.observe(START.saturating_add(secs(10)), secs(10)), START.saturating_add(secs(10)));
        // Set back a year: keeps advancing at the monotonic rate.
        assert_eq!(c.observe(Timestamp(START.0 - YEAR.as_micros() as i64), secs(20)), START.saturating_add(secs(20)));
        assert_eq!(c.held_back(Timestamp(START.0 - YEAR.as_micros() as i64)), None);
        // Even a small step forward is not followed at once: the interval it
        // happened in earns nothing, the next ones the rate.
        let ahead = |mono: Duration| START.saturating_add(secs(50)).saturating_add(mono);
        assert_eq!(c.observe(ahead(secs(21)), secs(21)), START.saturating_add(secs(21)));
        assert_eq!(c.held_back(ahead(secs(21))), Some(secs(50)));
        let t = c.observe(ahead(secs(1021)), secs(1021));
        assert_eq!(t, START.saturating_add(secs(1021)).saturating_add(allowance(secs(1000))));
        // Ten years forward: an hour later it has gained its allowance for the hour, no more.
        let future = START.saturating_add(10 * YEAR);
        let before = c.observe(future, secs(1022));
        let t = c.observe(future.saturating_add(HOUR), secs(1022) + HOUR);
        let gained = Duration::from_micros(u64::try_from(t.0 - before.0).unwrap()) - HOUR;
        // (Earlier sub-microsecond earnings may add one microsecond.)
        assert!(gained >= allowance(HOUR) && gained <= allowance(HOUR) + Duration::from_micros(1), "{gained:?}");
        assert!(c.held_back(future.saturating_add(HOUR)).unwrap() > 9 * YEAR);
        let eta = c.caught_up_at(future.saturating_add(HOUR)).unwrap();
        assert!(eta > future.saturating_add(500 * YEAR) && eta < future.saturating_add(530 * YEAR), "{eta}");
        // An admin accepts the whole jump at once.
        let now = future.saturating_add(HOUR);
        let (from, to) = c.accept_forward(now, secs(1022) + HOUR);
        assert!(from < to);
        assert_eq!(to, now);
        assert_eq!(c.held_back(to), None);
        assert_eq!(c.caught_up_at(to), None);
        assert_eq!(c.observe(to.saturating_add(secs(1)), secs(1023) + HOUR), to.saturating_add(secs(1)));
    }

    #[test]
    fn a_power_off_is_caught_up_on_its_own_at_a_week_per_year_and_no_faster() {
        // Stopped for an hour with the system clock right: an hour behind.
        let persisted = START;
        let system = |mono: Duration| START.saturating_add(HOUR).saturating_add(mono);
        let mut c =
            ComplianceClock::resume(Some(persisted), system(Duration::ZERO), Duration::ZERO, Default::default());
        assert_eq!(c.held_back(system(Duration::ZERO)), Some(HOUR));
        let eta = c.caught_up_at(system(Duration::ZERO)).unwrap();
        // 3600 s at 7/365 of real time: 187,714.29 s, a little over 52 h.
        assert_eq!(eta, system(Duration::ZERO).saturating_add(Duration::from_micros(187_714_285_715)));
        let mut mono = Duration::ZERO;
        let mut last = persisted;
        while c.held_back(system(mono)).is_some() {
            mono += secs(60);
            let t = c.observe(system(mono), mono);
            assert!(t > last, "never back, never still");
            assert!(t <= persisted.saturating_add(mono).saturating_add(allowance(mono)), "never faster at {mono:?}");
            assert!(t <= system(mono), "never past the system clock");
            last = t;
            assert!(mono < secs(200_000), "caught up in time");
        }
        assert!(mono > secs(187_714) && mono < secs(187_715 + 60), "{mono:?}");
        // Caught up, it follows the system clock exactly.
        assert_eq!(c.observe(system(mono + secs(5)), mono + secs(5)), system(mono + secs(5)));
    }

    #[test]
    fn restarts_earn_nothing_only_real_running_time_does() {
        // The system clock ten years ahead, six restarts, an hour of running
        // each: the gain is the allowance for six hours, nothing per restart.
        let future = START.saturating_add(10 * YEAR);
        let mut persisted = START;
        let mut real = START;
        for restart in 0..6u32 {
            // Each process's monotonic clock starts anywhere.
            let origin = secs(u64::from(restart) * 7919);
            let mut c = ComplianceClock::resume(Some(persisted), future, origin, ClockPolicy::default());
            assert_eq!(c.observe(future, origin), persisted, "a restart grants nothing");
            for minute in 1..=60u64 {
                persisted = c.observe(future.saturating_add(secs(minute * 60)), origin + secs(minute * 60));
            }
            real = real.saturating_add(HOUR);
        }
        let gained = Duration::from_micros(u64::try_from(persisted.0 - real.0).unwrap());
        assert!(gained <= allowance(6 * HOUR), "{gained:?}");
        assert!(gained >= allowance(6 * HOUR).saturating_sub(Duration::from_millis(1)), "{gained:?}");
        // Restarting without running at all gains nothing, however often.
        for _ in 0..100 {
            let mut c = ComplianceClock::resume(Some(persisted), future, secs(5), ClockPolicy::default());
            assert_eq!(c.observe(future, secs(5)), persisted);
        }
    }

    #[test]
    fn idle_time_with_the_clock_right_banks_no_catch_up() {
        let mut c = ComplianceClock::resume(None, START, Duration::ZERO, ClockPolicy::default());
        // A year with nothing to catch up, then a jump: the interval it
        // happened in earns nothing.
        let jumped = START.saturating_add(YEAR).saturating_add(30 * 24 * HOUR);
        assert_eq!(c.observe(jumped, YEAR), START.saturating_add(YEAR));
    }

    #[test]
    fn at_a_rate_of_zero_only_an_admin_closes_the_gap() {
        let policy = ClockPolicy { catch_up_per_year: Duration::ZERO, ..ClockPolicy::default() };
        let mut c = ComplianceClock::resume(Some(START), START.saturating_add(HOUR), Duration::ZERO, policy);
        assert_eq!(c.observe(START.saturating_add(HOUR + YEAR), YEAR), START.saturating_add(YEAR));
        assert_eq!(c.caught_up_at(START.saturating_add(HOUR + YEAR)), None);
        assert_eq!(c.accept_forward(START.saturating_add(HOUR + YEAR), YEAR).1, START.saturating_add(HOUR + YEAR));
    }

    #[test]
    fn a_gap_is_reported_once_per_jump_and_when_it_closes() {
        let mut c = ComplianceClock::resume(None, START, Duration::ZERO, ClockPolicy::default());
        let at = |c: &mut ComplianceClock, lead: Duration, mono: Duration| {
            let system = START.saturating_add(lead).saturating_add(mono);
            c.observe(system, mono);
            c.report(system, mono)
        };
        // A step within report_after is caught up silently.
        assert_eq!(at(&mut c, secs(30), secs(1)), None);
        assert_eq!(at(&mut c, secs(30), secs(2000)), None);
        assert_eq!(c.held_back(START.saturating_add(secs(2030))), None, "30 s closes in about 26 min");
        // A larger jump (an hour on top of the 30 s already caught up):
        // reported once, while the gap closes.
        assert_eq!(at(&mut c, secs(3600), secs(2001)), Some(ClockEvent::HeldBack(secs(3570))));
        assert_eq!(at(&mut c, secs(3600), secs(2002)), None);
        assert_eq!(at(&mut c, secs(3600), secs(9000)), None);
        // Set further ahead meanwhile: a new jump, reported again.
        match at(&mut c, secs(7300), secs(9001)) {
            Some(ClockEvent::HeldBack(gap)) => assert!(gap > secs(7000) && gap < secs(7300), "{gap:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(at(&mut c, secs(7300), secs(9002)), None);
        // Closed: reported once more.
        assert_eq!(at(&mut c, secs(7300), secs(9002) + 60 * 24 * HOUR), Some(ClockEvent::CaughtUp));
        assert_eq!(at(&mut c, secs(7300), secs(9003) + 60 * 24 * HOUR), None);
        // An accepted jump is closed by the acceptance, with no report of its own.
        assert_eq!(at(&mut c, YEAR, secs(1) + 61 * 24 * HOUR), Some(ClockEvent::HeldBack(YEAR - secs(7300))));
        let mono = secs(2) + 61 * 24 * HOUR;
        let system = START.saturating_add(YEAR).saturating_add(mono);
        c.accept_forward(system, mono);
        assert_eq!(c.report(system, mono), None);
        assert_eq!(c.held_back(system), None);
    }

    #[test]
    fn under_any_sequence_of_readings_it_never_goes_back_nor_gains_faster_than_its_rate() {
        // A small deterministic generator: no test dependency needed.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..50 {
            let mut c = ComplianceClock::resume(None, START, Duration::ZERO, ClockPolicy::default());
            let (mut mono, mut last) = (Duration::ZERO, START);
            for _ in 0..500 {
                mono += Duration::from_micros(next() % 10_000_000_000);
                let offset = (next() % (20 * YEAR.as_micros() as u64)) as i64 - 10 * YEAR.as_micros() as i64;
                let system = Timestamp(START.0 + mono.as_micros() as i64 + offset);
                let t = c.observe(system, mono);
                assert!(t >= last, "never back");
                assert!(t >= START.saturating_add(mono), "at least real time");
                assert!(t <= START.saturating_add(mono).saturating_add(allowance(mono)), "never faster");
                last = t;
            }
        }
    }

    #[test]
    fn rfc3339_parses_what_it_prints_and_refuses_nonsense() {
        for micros in [0i64, 1_795_737_600_000_000, 1_795_737_600_123_456, 4_102_444_800_000_000, 951_782_400_000_000] {
            let t = Timestamp(micros);
            assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t), "{t}");
        }
        assert_eq!(Timestamp::parse_rfc3339("2026-11-27"), Some(Timestamp(1_795_737_600_000_000)));
        assert_eq!(Timestamp::parse_rfc3339("2026-11-27T00:00:00Z"), Some(Timestamp(1_795_737_600_000_000)));
        assert_eq!(Timestamp::parse_rfc3339("2026-11-27T00:00:00.5Z"), Some(Timestamp(1_795_737_600_500_000)));
        for bad in [
            "",
            "2026-13-01",
            "2026-02-29",
            "2026-11-27T24:00:00Z",
            "2026-11-27T00:00:00",
            "27/11/2026",
            "2026-11-27T00:00:00.1234567Z",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(Timestamp(1_795_737_600_123_456).to_rfc3339(), "2026-11-27T00:00:00.123456Z");
        assert_eq!(Timestamp(951_782_400_000_000).to_rfc3339(), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp(10));
        assert_eq!(clock.now(), Timestamp(10));
        clock.advance(Duration::from_micros(5));
        assert_eq!(clock.now(), Timestamp(15));
        clock.set(Timestamp(1));
        assert_eq!(clock.now(), Timestamp(1));
    }
}
