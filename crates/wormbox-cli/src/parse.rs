//! The retention syntax the operator types, parsed into wire types: a
//! version's `MODE:UNTIL` and a bucket's default `MODE:Nd` / `MODE:Ny`.
//!
//! Invariant: text that does not parse is refused with an error naming the
//! expected form, before any request is sent.

use anyhow::{Context as _, bail};
use wormbox_proto::v1;

fn parse_mode(text: &str) -> anyhow::Result<v1::RetentionMode> {
    match text.to_ascii_lowercase().as_str() {
        "governance" => Ok(v1::RetentionMode::Governance),
        "compliance" => Ok(v1::RetentionMode::Compliance),
        other => bail!("retention mode must be governance or compliance, not `{other}`"),
    }
}

/// `MODE:UNTIL`, UNTIL an RFC 3339 instant or a UTC date.
pub(crate) fn parse_retention(text: &str) -> anyhow::Result<v1::Retention> {
    let (mode, until) = text.split_once(':').context("retention is MODE:UNTIL, e.g. compliance:2033-01-01")?;
    let until = wormbox_model::Timestamp::parse_rfc3339(until)
        .with_context(|| format!("`{until}` is not a date (YYYY-MM-DD) or an RFC 3339 instant"))?;
    Ok(v1::Retention { mode: parse_mode(mode)? as i32, retain_until_unix_micros: until.as_micros() })
}

/// `MODE:Nd` or `MODE:Ny`.
pub(crate) fn parse_default_retention(text: &str) -> anyhow::Result<v1::DefaultRetention> {
    let (mode, period) = text.split_once(':').context("default retention is MODE:Nd or MODE:Ny, e.g. compliance:7y")?;
    let bad = || anyhow::anyhow!("`{period}` is not a period like 30d or 7y");
    let (number, unit) = period.split_at(period.len().saturating_sub(1));
    let n: u32 = number.parse().map_err(|_| bad())?;
    let (days, years) = match unit {
        "d" => (n, 0),
        "y" => (0, n),
        _ => return Err(bad()),
    };
    Ok(v1::DefaultRetention { mode: parse_mode(mode)? as i32, days, years })
}
