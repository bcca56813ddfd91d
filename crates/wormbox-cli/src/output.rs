//! What the CLI prints and writes, where more than one command family needs
//! it: the text-or-JSON switch, whole-file writes, and the JSON shapes of the
//! wire types several commands show (retention, legal holds).
//!
//! Invariant: `--json` prints one JSON document (or, for `audit`, one per
//! line) and nothing else on stdout; a file is written whole (a temporary
//! name, synced, renamed) or not at all.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Context as _;
use serde_json::{Value, json};
use wormbox_proto::v1;

/// Prints `value` under `--json`, `text` otherwise.
pub(crate) fn print(json_mode: bool, value: Value, text: String) {
    if json_mode {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

/// Writes `contents` to `path` whole: a temporary file, synced, then renamed.
pub(crate) fn write_whole(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let partial = path.with_extension("partial");
    let mut file = std::fs::File::create(&partial).with_context(|| format!("creating `{}`", partial.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing `{}`", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("renaming to `{}`", path.display()))
}

/// Writes `text` whole to `out`, or to stdout when absent.
pub(crate) fn write_out(out: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match out {
        Some(path) => write_whole(path, text.as_bytes()),
        None => std::io::stdout().write_all(text.as_bytes()).context("writing to stdout"),
    }
}

pub(crate) fn mode_name(mode: i32) -> &'static str {
    match v1::RetentionMode::try_from(mode) {
        Ok(v1::RetentionMode::Governance) => "GOVERNANCE",
        Ok(v1::RetentionMode::Compliance) => "COMPLIANCE",
        _ => "UNKNOWN",
    }
}

pub(crate) fn retention_json(r: &v1::Retention) -> Value {
    json!({"mode": mode_name(r.mode), "retain_until": wormbox_model::Timestamp(r.retain_until_unix_micros).to_rfc3339()})
}

pub(crate) fn hold_json(h: &v1::LegalHold) -> Value {
    json!({
        "case_id": h.case_id,
        "placed_by": h.placed_by,
        "placed_at": wormbox_model::Timestamp(h.placed_at_unix_micros).to_rfc3339(),
        "note": h.note,
    })
}

/// A progress line on stderr, drawn only on a terminal; a total of 0 means
/// unknown, and only the count is shown.
pub(crate) struct Progress {
    what: &'static str,
    total: u64,
    done: u64,
    shown: std::time::Instant,
    draw: bool,
}

impl Progress {
    pub(crate) fn new(what: &'static str, total: u64) -> Progress {
        Progress { what, total, done: 0, shown: std::time::Instant::now(), draw: std::io::stderr().is_terminal() }
    }

    pub(crate) fn step(&mut self, by: u64) {
        self.done += by;
        if self.draw && (self.shown.elapsed().as_millis() >= 100 || self.done == self.total) {
            self.shown = std::time::Instant::now();
            let width = 30u64;
            match (self.done.min(self.total) * width).checked_div(self.total) {
                Some(filled) => {
                    let bar: String = (0..width).map(|n| if n < filled { '#' } else { ' ' }).collect();
                    eprint!("\r[{bar}] {}/{} {}", self.done, self.total, self.what);
                }
                None => eprint!("\r{} {}", self.done, self.what),
            }
            let _ = std::io::stderr().flush();
        }
    }

    /// Moves the count to `done` in all (for callers that report a running total).
    pub(crate) fn reach(&mut self, done: u64) {
        self.step(done - self.done);
    }

    pub(crate) fn finish(&self) {
        if self.draw {
            eprintln!();
        }
    }
}
