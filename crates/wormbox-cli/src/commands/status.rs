//! `wormbox status`: the appliance on one screen (Admin.GetStatus) for an
//! operator or a compliance officer: build and uptime, the data disk and its
//! reserve, the ledger and its last checkpoint, the compliance clock, the
//! scrub, each replication rule's lag and MFA lockouts.
//!
//! Invariant: it prints what the appliance answered, every figure labelled;
//! what the appliance does not know yet (no checkpoint, no scrub finished
//! since the start) is said, not shown as zero.

use serde_json::{Value, json};
use wormbox_model::Timestamp;
use wormbox_proto::v1;

use crate::commands::Context;
use crate::commands::checkpoint::checkpoint_file;
use crate::commands::replica::rule_json;

/// `1.50 GiB`: bytes for a person (the progress bars' own formatting).
fn size(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

/// `3d 4h 12m`, `12m 5s`: a duration for a person.
fn span(seconds: u64) -> String {
    let (d, h, m, s) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h {m}m"),
    }
}

/// Said of the writer's figures when it did not answer.
const STUCK: &str = "the archive's writer did not answer within 2 s (a stuck disk or a full write queue)";

fn time(micros: i64) -> String {
    Timestamp(micros).to_rfc3339()
}

fn text(s: &v1::GetStatusResponse) -> String {
    let mut lines = vec![format!("wormbox {}, up {}", s.version, span(s.uptime_seconds))];
    let disk = s.disk.unwrap_or_default();
    let writes = if disk.writes_refused {
        "NEW DATA REFUSED: the disk is within its reserve (DISK_FULL); free or add space".to_owned()
    } else {
        "new data taken".to_owned()
    };
    lines.push(format!(
        "disk         {} available of {}; reserve {}; {writes}",
        size(disk.available_bytes),
        size(disk.total_bytes),
        size(disk.reserve_bytes)
    ));
    let checkpoint = match &s.last_checkpoint {
        Some(c) => format!(
            "last checkpoint at entry {} signed {} ({} entries since)",
            c.sequence,
            time(c.time_unix_micros),
            s.ledger_sequence.saturating_sub(c.sequence)
        ),
        None => "no checkpoint signed yet".to_owned(),
    };
    lines.push(format!("ledger       sequence {}; {checkpoint}", s.ledger_sequence));
    match s.clock {
        Some(clock) => {
            let state = match clock.held_back_seconds {
                0 => "in step with the system clock".to_owned(),
                behind => format!("HELD BACK {} behind the system clock (catching up)", span(behind)),
            };
            lines.push(format!("clock        compliance {}; {state}", time(clock.compliance_unix_micros)));
        }
        None => lines.push(format!("clock        unknown: {STUCK}")),
    }
    let scrub = s.scrub.clone().unwrap_or_default();
    let every = match scrub.interval_seconds {
        0 => "turned off".to_owned(),
        n => format!("every {}", span(n)),
    };
    let last = match &scrub.last {
        Some(l) => format!(
            "last ended {}: {} ({})",
            time(l.finished_unix_micros),
            if l.ok { "ok" } else { "DIVERGENCES FOUND" },
            l.summary
        ),
        None => "none finished since the start".to_owned(),
    };
    let running = match scrub.running_since_unix_micros {
        0 => String::new(),
        since => format!("; running since {}, {} read", time(since), size(scrub.bytes_read)),
    };
    lines.push(format!("scrub        {every}; {last}{running}"));
    if !s.writer_responsive {
        lines.push(format!("replication  unknown: {STUCK}"));
    } else if s.replication.is_empty() {
        lines.push("replication  no rules".to_owned());
    }
    for r in &s.replication {
        let failing = if r.last_error.is_empty() { String::new() } else { format!("; FAILING: {}", r.last_error) };
        lines.push(format!(
            "replication  {}: {} entries behind ({}){failing}",
            r.name,
            r.lag_entries,
            span(r.lag_seconds)
        ));
    }
    lines.push(format!(
        "mfa          {} device(s) locked out now; {} lockout(s) since the start",
        s.devices_locked_out, s.lockouts
    ));
    lines.join("\n")
}

fn json_of(s: &v1::GetStatusResponse) -> Value {
    let disk = s.disk.unwrap_or_default();
    let scrub = s.scrub.clone().unwrap_or_default();
    json!({
        "version": s.version,
        "uptime_seconds": s.uptime_seconds,
        "disk": {
            "total_bytes": disk.total_bytes,
            "available_bytes": disk.available_bytes,
            "reserve_bytes": disk.reserve_bytes,
            "writes_refused": disk.writes_refused,
        },
        "ledger_sequence": s.ledger_sequence,
        "last_checkpoint": s.last_checkpoint.as_ref().map(checkpoint_file),
        "writer_responsive": s.writer_responsive,
        "clock": s.clock.map(|clock| json!({
            "compliance": time(clock.compliance_unix_micros),
            "system": time(clock.system_unix_micros),
            "held_back_seconds": clock.held_back_seconds,
        })),
        "scrub": {
            "interval_seconds": scrub.interval_seconds,
            "running_since": (scrub.running_since_unix_micros != 0).then(|| time(scrub.running_since_unix_micros)),
            "bytes_read": scrub.bytes_read,
            "finished": scrub.finished,
            "failed": scrub.failed,
            "errors": scrub.errors,
            "last": scrub.last.as_ref().map(|l| json!({
                "finished": time(l.finished_unix_micros),
                "ok": l.ok,
                "summary": l.summary,
                "versions_checked": l.versions_checked,
                "divergences": l.divergences,
                "ledger_sequence": l.ledger_sequence,
            })),
        },
        "replication": s.replication.iter().map(rule_json).collect::<Vec<_>>(),
        "devices_locked_out": s.devices_locked_out,
        "lockouts": s.lockouts,
    })
}

/// `wormbox status`.
pub(crate) async fn run(cx: &Context) -> anyhow::Result<()> {
    let status = cx.clients.admin().get_status(v1::GetStatusRequest {}).await?.into_inner();
    cx.print(json_of(&status), text(&status));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_spans_read_as_a_person_says_them() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(3 << 29), "1.50 GiB");
        assert_eq!(span(59), "59s");
        assert_eq!(span(3_725), "1h 2m");
        assert_eq!(span(90_061), "1d 1h 1m");
    }
}
