//! Time as the archive sees it: a `Timestamp` in microseconds and the `Clock`
//! it comes from.
//!
//! Invariant: policy code reads time only through `Clock`; the one call to the
//! system's wall clock is in `SystemClock`.

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

/// How far the compliance clock may follow the system clock forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockPolicy {
    /// The most compliance time may advance per second of monotonic time,
    /// in milliseconds (1000: never faster than real time).
    pub max_rate_ms_per_s: u64,
    /// How far ahead of that the system clock is still followed at once.
    pub tolerance: Duration,
}

impl Default for ClockPolicy {
    fn default() -> Self {
        ClockPolicy { max_rate_ms_per_s: 1000, tolerance: Duration::from_secs(60) }
    }
}

/// The compliance clock: the time retention is judged by (DESIGN.md
/// invariant 4). It never moves backwards: when the system clock is set back
/// it keeps advancing at the rate of the monotonic clock; it follows the
/// system clock forward only up to `policy` from its anchor, so a larger
/// forward jump is held back until an admin accepts it (`accept_forward`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComplianceClock {
    anchor: Timestamp,
    anchor_mono: Duration,
    current: Timestamp,
    last_mono: Duration,
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
        let anchor = persisted.unwrap_or(system);
        ComplianceClock { anchor, anchor_mono: mono, current: anchor, last_mono: mono, policy }
    }

    /// The compliance time at `mono`, given the system clock reads `system`.
    pub fn observe(&mut self, system: Timestamp, mono: Duration) -> Timestamp {
        let mono = mono.max(self.last_mono);
        let floor = self.current.saturating_add(mono - self.last_mono);
        let next = system.min(self.ceiling(mono)).max(floor);
        self.current = next;
        self.last_mono = mono;
        next
    }

    /// How far the system clock is ahead of what is followed, if it is.
    pub fn held_back(&self, system: Timestamp) -> Option<Duration> {
        let ahead = system.0 - self.current.0;
        (ahead > 0 && Timestamp(system.0) > self.ceiling(self.last_mono))
            .then(|| Duration::from_micros(u64::try_from(ahead).unwrap_or(0)))
    }

    /// Accepts the system clock's reading as the new compliance time when it
    /// is ahead (never backwards), re-anchoring there. Returns (from, to).
    pub fn accept_forward(&mut self, system: Timestamp, mono: Duration) -> (Timestamp, Timestamp) {
        let from = self.observe(system, mono);
        let to = from.max(system);
        self.anchor = to;
        self.anchor_mono = mono.max(self.last_mono);
        self.current = to;
        (from, to)
    }

    /// The last compliance time observed.
    pub fn current(&self) -> Timestamp {
        self.current
    }

    fn ceiling(&self, mono: Duration) -> Timestamp {
        let elapsed = mono.saturating_sub(self.anchor_mono);
        let allowed = elapsed.as_micros().saturating_mul(u128::from(self.policy.max_rate_ms_per_s)) / 1000;
        let allowed = Duration::from_micros(u64::try_from(allowed).unwrap_or(u64::MAX));
        self.anchor.saturating_add(allowed).saturating_add(self.policy.tolerance)
    }
}

#[cfg(test)]
mod tests {

    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

    #[test]
    fn the_compliance_clock_never_goes_back_and_holds_big_jumps_forward() {
        let start = Timestamp(1_795_737_600_000_000);
        let mut c = ComplianceClock::resume(None, start, Duration::ZERO, ClockPolicy::default());
        // Normal operation follows the system clock.
        let t = c.observe(start.saturating_add(Duration::from_secs(10)), Duration::from_secs(10));
        assert_eq!(t, start.saturating_add(Duration::from_secs(10)));
        // Set back a year: keeps advancing at the monotonic rate.
        let t = c.observe(Timestamp(start.0 - 31_536_000_000_000), Duration::from_secs(20));
        assert_eq!(t, start.saturating_add(Duration::from_secs(20)));
        // A small step forward (within the tolerance) is followed.
        let t = c.observe(start.saturating_add(Duration::from_secs(70)), Duration::from_secs(21));
        assert_eq!(t, start.saturating_add(Duration::from_secs(70)));
        // Ten years forward: held back, reported.
        let future = start.saturating_add(10 * YEAR);
        let t = c.observe(future, Duration::from_secs(22));
        assert!(t <= start.saturating_add(Duration::from_secs(82)), "{t}");
        assert!(c.held_back(future).is_some());
        // Still held back an hour later.
        let t = c.observe(future.saturating_add(Duration::from_secs(3600)), Duration::from_secs(3622));
        assert!(t < start.saturating_add(Duration::from_secs(3700)));
        // Until accepted.
        let (from, to) = c.accept_forward(future.saturating_add(Duration::from_secs(3600)), Duration::from_secs(3622));
        assert!(from < to);
        assert_eq!(c.held_back(to), None);
        assert_eq!(
            c.observe(to.saturating_add(Duration::from_secs(1)), Duration::from_secs(3623)),
            to.saturating_add(Duration::from_secs(1))
        );
    }

    #[test]
    fn resuming_keeps_the_persisted_value_over_an_earlier_system_clock() {
        let persisted = Timestamp(2_000_000_000_000_000);
        let mut c = ComplianceClock::resume(
            Some(persisted),
            Timestamp(1_000_000_000_000_000),
            Duration::from_secs(5),
            ClockPolicy::default(),
        );
        assert_eq!(
            c.observe(Timestamp(1_000_000_000_000_000), Duration::from_secs(6)),
            persisted.saturating_add(Duration::from_secs(1))
        );
        // A faster policy catches up at its rate, no more.
        let fast = ClockPolicy { max_rate_ms_per_s: 2000, tolerance: Duration::ZERO };
        let mut c = ComplianceClock::resume(Some(persisted), Timestamp(0), Duration::ZERO, fast);
        let far = persisted.saturating_add(YEAR);
        assert_eq!(c.observe(far, Duration::from_secs(100)), persisted.saturating_add(Duration::from_secs(200)));
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
    use super::*;

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
