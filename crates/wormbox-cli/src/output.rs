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

/// `--quiet`: no progress bars, whatever stderr is.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns progress bars off for the whole run (`--quiet`).
pub(crate) fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

/// A progress bar on stderr (`indicatif`), with the rate and, when the
/// total is known, the time left; drawn only when stderr is a terminal and
/// `--quiet` is not given, so a script's output and logs stay clean. A
/// command that moves or checks bytes for more than a second draws one.
#[derive(Clone)]
pub(crate) struct Progress {
    bar: indicatif::ProgressBar,
    bytes: bool,
}

/// The bar's look: bytes or items, with a bar and the time left once the
/// total is known, a spinner and the time spent before.
fn style(bytes: bool, total_known: bool) -> Option<indicatif::ProgressStyle> {
    let template = match (bytes, total_known) {
        (true, true) => "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes}  {binary_bytes_per_sec}  {eta} left",
        (true, false) => "{spinner} {msg} {binary_bytes}  {binary_bytes_per_sec}  {elapsed}",
        (false, true) => "{msg} [{bar:30}] {human_pos}/{human_len}  {per_sec}  {eta} left",
        (false, false) => "{spinner} {msg} {human_pos}  {per_sec}  {elapsed}",
    };
    indicatif::ProgressStyle::with_template(template).ok().map(|s| s.progress_chars("=> "))
}

impl Progress {
    /// Counts bytes of `what` (a short verb phrase), `total` when known.
    pub(crate) fn bytes(what: &'static str, total: Option<u64>) -> Progress {
        Progress::with(what, total, true)
    }

    /// Counts items (rows, entries) of `what`, `total` when known.
    pub(crate) fn items(what: &'static str, total: Option<u64>) -> Progress {
        Progress::with(what, total, false)
    }

    /// A spinner with the time spent, for a wait on the appliance whose
    /// progress the client cannot see (an integrity check runs there).
    pub(crate) fn waiting(what: &'static str) -> Progress {
        let progress = Progress::with(what, None, false);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg}  {elapsed}") {
            progress.bar.set_style(style);
        }
        progress.bar.enable_steady_tick(std::time::Duration::from_millis(200));
        progress
    }

    /// A bar that draws nothing: where it would mix with what the command
    /// writes to the same terminal (`get` without `--output`).
    pub(crate) fn off() -> Progress {
        Progress { bar: indicatif::ProgressBar::hidden(), bytes: true }
    }

    fn with(what: &'static str, total: Option<u64>, bytes: bool) -> Progress {
        let drawn = !QUIET.load(std::sync::atomic::Ordering::Relaxed) && std::io::stderr().is_terminal();
        let target = match drawn {
            true => indicatif::ProgressDrawTarget::stderr_with_hz(10),
            false => indicatif::ProgressDrawTarget::hidden(),
        };
        let bar = indicatif::ProgressBar::with_draw_target(total, target);
        if let Some(style) = style(bytes, total.is_some()) {
            bar.set_style(style);
        }
        bar.set_message(what);
        Progress { bar, bytes }
    }

    /// The total, once known: the spinner becomes a bar with the time left.
    pub(crate) fn set_total(&self, total: u64) {
        if self.bar.length() != Some(total) {
            self.bar.set_length(total);
            if let Some(style) = style(self.bytes, true) {
                self.bar.set_style(style);
            }
        }
    }

    /// `by` more done.
    pub(crate) fn step(&self, by: u64) {
        self.bar.inc(by);
    }

    /// `done` in all (for callers that report a running total).
    pub(crate) fn reach(&self, done: u64) {
        self.bar.set_position(done);
    }

    /// Leaves the bar where it is, with the amount and the rate: at its end
    /// only when all of it was done (a cut-off stream shows where it stopped).
    pub(crate) fn finish(&self) {
        self.bar.abandon();
    }
}
