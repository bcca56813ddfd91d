//! Object Lock rules as pure functions: may this retention change, may this
//! version be purged, judged against the compliance-clock time `now`.
//!
//! Invariant (DESIGN.md invariant 2): COMPLIANCE retention is never
//! shortened, removed or downgraded, by anyone; GOVERNANCE retention is
//! shortened, removed or upgraded only with the bypass right, the request's
//! bypass flag and (when MFA Delete is on) a spent MFA code; extending is
//! always allowed, the same date counting as an extension; a legal hold
//! blocks a purge whatever the retention, and bypass never lifts it.
//!
//! The writer calls these inside the same atomic write as the change, so the
//! state judged is the state changed.

use wormbox_model::Timestamp;

/// The longest retention accepted: 100 years.
pub const MAX_RETENTION_MICROS: i64 = 100 * 366 * 24 * 3600 * 1_000_000;

/// Object Lock retention mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetentionMode {
    /// Shortened or removed only with the bypass right (and MFA when on).
    Governance,
    /// Never shortened, removed or downgraded.
    Compliance,
}

impl RetentionMode {
    /// The S3 spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionMode::Governance => "GOVERNANCE",
            RetentionMode::Compliance => "COMPLIANCE",
        }
    }
}

/// A version's retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// The mode.
    pub mode: RetentionMode,
    /// Protected until this compliance-clock instant (exclusive).
    pub until: Timestamp,
}

impl Retention {
    /// Whether it still protects at `now`.
    pub fn protects_at(&self, now: Timestamp) -> bool {
        self.until > now
    }
}

/// A bucket's default retention period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetentionPeriod {
    /// Whole days.
    Days(u32),
    /// Whole years; a year counts 365 days plus one for every four, so a
    /// default never ends before the calendar date it names.
    Years(u32),
}

/// A bucket's default retention, stamped into new versions that carry none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultRetention {
    /// The mode stamped.
    pub mode: RetentionMode,
    /// How long from the version's creation.
    pub period: RetentionPeriod,
}

impl DefaultRetention {
    /// Checks that the period is 1 day .. 100 years.
    pub fn validate(&self) -> Result<(), LockError> {
        let days = self.days();
        if days == 0 || days * DAY_MICROS > MAX_RETENTION_MICROS {
            return Err(LockError::InvalidDate);
        }
        Ok(())
    }

    fn days(&self) -> i64 {
        match self.period {
            RetentionPeriod::Days(n) => i64::from(n),
            RetentionPeriod::Years(n) => i64::from(n) * 365 + (i64::from(n) + 3) / 4,
        }
    }

    /// The retention of a version created at `created`.
    pub fn retention_from(&self, created: Timestamp) -> Retention {
        Retention { mode: self.mode, until: Timestamp(created.0.saturating_add(self.days() * DAY_MICROS)) }
    }
}

/// Whether replacing a bucket's default retention `old` with `new` lowers
/// the protection of the versions written after it: clearing it, moving
/// from COMPLIANCE to GOVERNANCE, or shortening the period.
pub fn default_lowered(old: Option<DefaultRetention>, new: Option<DefaultRetention>) -> bool {
    match (old, new) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(old), Some(new)) => {
            (old.mode == RetentionMode::Compliance && new.mode != RetentionMode::Compliance) || new.days() < old.days()
        }
    }
}

/// One named legal hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegalHold {
    /// The case it belongs to (S3's ON is the case `s3-legal-hold`).
    pub case_id: String,
    /// The access key id that placed it.
    pub placed_by: String,
    /// When, by the compliance clock.
    pub placed_at: Timestamp,
    /// A note, possibly empty.
    pub note: String,
}

/// The case id S3's legal-hold ON/OFF maps to.
pub const S3_HOLD: &str = "s3-legal-hold";

const DAY_MICROS: i64 = 24 * 3600 * 1_000_000;

/// What a request brings to override GOVERNANCE retention.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Override {
    /// The request set `bypass_governance` and the principal holds the
    /// bypass right (the caller decides both; neither alone counts).
    pub bypass: bool,
    /// The bucket has MFA Delete on.
    pub mfa_required: bool,
    /// The request's MFA code was accepted (and spent).
    pub mfa_verified: bool,
}

/// Why Object Lock refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    /// The retain-until date is not in the future or too far in it.
    #[error("retain-until must lie in the future and at most 100 years ahead")]
    InvalidDate,
    /// A shortening, removal or downgrade that the mode or the request's
    /// rights do not allow.
    #[error("{0}")]
    ShortenDenied(&'static str),
    /// A GOVERNANCE override needs an MFA code because MFA Delete is on.
    #[error("overriding GOVERNANCE retention in a bucket with MFA Delete on needs an MFA code")]
    MfaRequired,
    /// The version is under retention.
    #[error("the version is under {} retention until {}", .0.as_str(), .1.to_rfc3339())]
    Locked(RetentionMode, Timestamp),
    /// The version is under legal hold.
    #[error("the version is under legal hold")]
    Held,
}

fn governance_override(with: Override, what: &'static str) -> Result<(), LockError> {
    if !with.bypass {
        return Err(LockError::ShortenDenied(what));
    }
    if with.mfa_required && !with.mfa_verified {
        return Err(LockError::MfaRequired);
    }
    Ok(())
}

/// Checks a requested retain-until date at `now`.
pub fn check_date(until: Timestamp, now: Timestamp) -> Result<(), LockError> {
    if until <= now || until.0 - now.0 > MAX_RETENTION_MICROS {
        return Err(LockError::InvalidDate);
    }
    Ok(())
}

/// May a version's retention go from `current` to `requested` at `now`?
///
/// A date already past is never a valid setting, but while the version is
/// protected it is first a shortening, and is judged (and refused, and
/// recorded) as one: only a caller who may shorten hears that the date is
/// invalid.
pub fn judge_change(
    current: Option<Retention>,
    requested: Option<Retention>,
    now: Timestamp,
    with: Override,
) -> Result<(), LockError> {
    let past = requested.is_some_and(|r| r.until <= now);
    if let Some(requested) = requested.filter(|_| !past) {
        check_date(requested.until, now)?;
    }
    let Some(current) = current.filter(|c| c.protects_at(now)) else {
        // Nothing protects the version (any more): any valid setting goes.
        return if past { Err(LockError::InvalidDate) } else { Ok(()) };
    };
    judge_protected(current, requested, with)?;
    if past {
        return Err(LockError::InvalidDate);
    }
    Ok(())
}

/// `judge_change` for a version that `current` protects now.
fn judge_protected(current: Retention, requested: Option<Retention>, with: Override) -> Result<(), LockError> {
    match (current.mode, requested) {
        (RetentionMode::Compliance, None) => {
            Err(LockError::ShortenDenied("COMPLIANCE retention cannot be removed, by anyone"))
        }
        (RetentionMode::Compliance, Some(r)) if r.mode == RetentionMode::Governance => {
            Err(LockError::ShortenDenied("COMPLIANCE retention cannot be downgraded to GOVERNANCE, by anyone"))
        }
        (RetentionMode::Compliance, Some(r)) if r.until < current.until => {
            Err(LockError::ShortenDenied("COMPLIANCE retention cannot be shortened, by anyone"))
        }
        (RetentionMode::Compliance, Some(_)) => Ok(()),
        (RetentionMode::Governance, None) => {
            governance_override(with, "removing GOVERNANCE retention needs the bypass right and bypass_governance")
        }
        (RetentionMode::Governance, Some(r)) if r.until < current.until => {
            governance_override(with, "shortening GOVERNANCE retention needs the bypass right and bypass_governance")
        }
        (RetentionMode::Governance, Some(r)) if r.mode == RetentionMode::Compliance => {
            governance_override(with, "changing GOVERNANCE to COMPLIANCE needs the bypass right and bypass_governance")
        }
        (RetentionMode::Governance, Some(_)) => Ok(()),
    }
}

/// May a version with `retention` and `holds` legal holds be purged at `now`?
pub fn judge_purge(
    retention: Option<Retention>,
    holds: usize,
    now: Timestamp,
    with: Override,
) -> Result<(), LockError> {
    if holds > 0 {
        return Err(LockError::Held);
    }
    match retention.filter(|r| r.protects_at(now)) {
        None => Ok(()),
        Some(r) if r.mode == RetentionMode::Compliance => Err(LockError::Locked(r.mode, r.until)),
        Some(r) => governance_override(with, "").map_err(|err| match err {
            LockError::MfaRequired => LockError::MfaRequired,
            _ => LockError::Locked(r.mode, r.until),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_795_737_600_000_000);
    const DAY: i64 = 24 * 3600 * 1_000_000;

    fn at(days: i64) -> Timestamp {
        Timestamp(NOW.0 + days * DAY)
    }

    fn r(mode: RetentionMode, days: i64) -> Retention {
        Retention { mode, until: at(days) }
    }

    /// Every override combination, with its name for failure messages.
    fn overrides() -> Vec<Override> {
        let mut all = Vec::new();
        for bypass in [false, true] {
            for mfa_required in [false, true] {
                for mfa_verified in [false, true] {
                    all.push(Override { bypass, mfa_required, mfa_verified });
                }
            }
        }
        all
    }

    fn may_override(w: Override) -> bool {
        w.bypass && (!w.mfa_required || w.mfa_verified)
    }

    #[test]
    fn the_retention_state_machine_table() {
        use RetentionMode::{Compliance as C, Governance as G};
        // (current, requested, allowed without override, allowed with a full override)
        let table: Vec<(Option<Retention>, Option<Retention>, bool, bool)> = vec![
            // Setting on an unprotected version.
            (None, Some(r(G, 10)), true, true),
            (None, Some(r(C, 10)), true, true),
            (None, None, true, true),
            // Extending, the same date counting as an extension.
            (Some(r(G, 10)), Some(r(G, 20)), true, true),
            (Some(r(G, 10)), Some(r(G, 10)), true, true),
            (Some(r(C, 10)), Some(r(C, 20)), true, true),
            (Some(r(C, 10)), Some(r(C, 10)), true, true),
            // Shortening and removing.
            (Some(r(G, 10)), Some(r(G, 5)), false, true),
            (Some(r(G, 10)), None, false, true),
            (Some(r(C, 10)), Some(r(C, 5)), false, false),
            (Some(r(C, 10)), None, false, false),
            // Mode changes.
            (Some(r(G, 10)), Some(r(C, 10)), false, true),
            (Some(r(G, 10)), Some(r(C, 20)), false, true),
            (Some(r(G, 10)), Some(r(C, 5)), false, true),
            (Some(r(C, 10)), Some(r(G, 10)), false, false),
            (Some(r(C, 10)), Some(r(G, 20)), false, false),
            // Expired retention protects nothing any more.
            (Some(r(C, -1)), None, true, true),
            (Some(r(C, -1)), Some(r(G, 5)), true, true),
            (Some(r(G, 0)), None, true, true),
        ];
        for (current, requested, plain, full) in table {
            for with in overrides() {
                let allowed = judge_change(current, requested, NOW, with).is_ok();
                let want = plain || (full && may_override(with));
                assert_eq!(allowed, want, "{current:?} -> {requested:?} with {with:?}");
            }
        }
    }

    #[test]
    fn refusals_say_why() {
        let full = Override { bypass: true, mfa_required: true, mfa_verified: false };
        let g = Some(r(RetentionMode::Governance, 10));
        assert_eq!(judge_change(g, None, NOW, full), Err(LockError::MfaRequired));
        assert!(matches!(judge_change(g, None, NOW, Override::default()), Err(LockError::ShortenDenied(_))));
        let c = Some(r(RetentionMode::Compliance, 10));
        let all = Override { mfa_verified: true, ..full };
        assert!(matches!(judge_change(c, None, NOW, all), Err(LockError::ShortenDenied(m)) if m.contains("by anyone")));
    }

    #[test]
    fn dates_must_be_in_the_future_and_within_100_years() {
        let g = |until| Some(Retention { mode: RetentionMode::Governance, until });
        assert_eq!(judge_change(None, g(NOW), NOW, Override::default()), Err(LockError::InvalidDate));
        assert_eq!(judge_change(None, g(at(-1)), NOW, Override::default()), Err(LockError::InvalidDate));
        assert!(judge_change(None, g(at(36_500)), NOW, Override::default()).is_ok());
        assert_eq!(judge_change(None, g(at(36_700)), NOW, Override::default()), Err(LockError::InvalidDate));
        // Even an extension must name a valid date.
        let c = Some(r(RetentionMode::Compliance, 10));
        assert_eq!(
            judge_change(c, Some(r(RetentionMode::Compliance, 40_000)), NOW, Override::default()),
            Err(LockError::InvalidDate)
        );
    }

    /// A past date on a protected version is a shortening: refused as one,
    /// so that the attempt is recorded; the date's validity comes after.
    #[test]
    fn a_past_date_on_a_protected_version_is_judged_as_a_shortening() {
        use RetentionMode::{Compliance as C, Governance as G};
        for past in [at(-1), NOW] {
            for requested_mode in [G, C] {
                let requested = Some(Retention { mode: requested_mode, until: past });
                for with in overrides() {
                    let from_compliance = judge_change(Some(r(C, 10)), requested, NOW, with);
                    assert!(matches!(from_compliance, Err(LockError::ShortenDenied(_))), "{from_compliance:?}");
                    let from_governance = judge_change(Some(r(G, 10)), requested, NOW, with);
                    let fits = match &from_governance {
                        Err(LockError::InvalidDate) => may_override(with),
                        Err(LockError::MfaRequired) => with.bypass && !may_override(with),
                        Err(LockError::ShortenDenied(_)) => !with.bypass,
                        _ => false,
                    };
                    assert!(fits, "{requested:?} with {with:?}: {from_governance:?}");
                }
                // Nothing protects the version: the date is merely invalid.
                assert_eq!(judge_change(None, requested, NOW, Override::default()), Err(LockError::InvalidDate));
                assert_eq!(
                    judge_change(Some(r(C, -1)), requested, NOW, Override::default()),
                    Err(LockError::InvalidDate)
                );
            }
        }
    }

    #[test]
    fn purges_by_hold_mode_override_and_clock_position() {
        use RetentionMode::{Compliance as C, Governance as G};
        for with in overrides() {
            for holds in [0usize, 1, 3] {
                for (retention, clock) in [
                    (None, NOW),
                    (Some(r(G, 1)), NOW),
                    (Some(r(G, 1)), at(1)),
                    (Some(r(G, 1)), at(2)),
                    (Some(r(C, 1)), NOW),
                    (Some(r(C, 1)), at(1)),
                    (Some(r(C, 1)), at(2)),
                ] {
                    let protected = retention.filter(|r| r.protects_at(clock));
                    let want = holds == 0
                        && match protected {
                            None => true,
                            Some(r) if r.mode == C => false,
                            Some(_) => may_override(with),
                        };
                    let got = judge_purge(retention, holds, clock, with);
                    assert_eq!(got.is_ok(), want, "{retention:?} holds={holds} at {clock:?} with {with:?}");
                    if holds > 0 {
                        assert_eq!(got, Err(LockError::Held), "bypass never lifts a hold");
                    }
                }
            }
        }
    }
}
