//! The retention report as a page for people: one self-contained HTML file
//! with inline CSS and SVG charts.
//!
//! Invariant: every value from the archive is escaped, so an object key or a
//! case id can never inject markup or script; the page loads nothing.

use std::collections::BTreeMap;
use std::fmt::Write;

use wormbox_model::Timestamp;

use super::{ReportHeader, Row, Summary, checkpoint_span};

/// The most rows the page lists; the CSV and JSON forms have them all.
pub(crate) const MAX_HTML_ROWS: usize = 10_000;

pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn time(micros: i64) -> String {
    Timestamp(micros).to_rfc3339()
}

/// A horizontal bar chart, one bar per entry.
fn bar_chart(title: &str, data: &BTreeMap<String, u64>) -> String {
    if data.is_empty() {
        return format!("<p class=\"empty\">{}: none.</p>\n", escape(title));
    }
    let max = data.values().copied().max().unwrap_or(1).max(1);
    let (label_w, bar_w, row_h) = (160, 420, 22);
    let height = data.len() * row_h + 30;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{}\" height=\"{height}\" \
         aria-label=\"{}\">\n<title>{}</title>\n",
        label_w + bar_w + 80,
        escape(title),
        escape(title)
    );
    for (n, (label, count)) in data.iter().enumerate() {
        let y = 20 + n * row_h;
        let w = (*count as f64 / max as f64 * bar_w as f64).round().max(1.0);
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{}\" y=\"{}\" width=\"{w}\" height=\"{}\" fill=\"#2b6cb0\"/>\
             <text x=\"{}\" y=\"{}\">{count}</text>",
            label_w - 6,
            y + 14,
            escape(label),
            label_w,
            y + 2,
            row_h - 6,
            label_w as f64 + w + 6.0,
            y + 14,
        );
    }
    svg.push_str("</svg>\n");
    format!("<figure><figcaption>{}</figcaption>\n{svg}</figure>\n", escape(title))
}

/// `n` with thousands separators: `1,234,567`.
pub(crate) fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `bytes` with separators, and in binary units beside when large.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{} bytes", grouped(n));
    }
    let (mut value, mut unit) = (n as f64 / 1024.0, 0);
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{} bytes ({value:.1} {})", grouped(n), UNITS[unit])
}

/// A CSS string literal holding `text`: quotes and backslashes escaped, and
/// `<` too, so that no archive value can end the style element.
fn css_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("\\3C "),
            c if c.is_control() => {
                let _ = write!(out, "\\{:X} ", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A long identifier shown by its start, the whole in the cell's tooltip
/// (and in the CSV and JSON forms).
fn abbreviated(full: &str, shown: usize) -> String {
    if full.chars().count() <= shown {
        return format!("<code>{}</code>", escape(full));
    }
    let head: String = full.chars().take(shown).collect();
    format!("<code title=\"{}\">{}…</code>", escape(full), escape(&head))
}

/// A time as a person reads it in a table: to the second, the exact value
/// in the tooltip.
fn short_time(micros: i64) -> String {
    let full = time(micros);
    let shown = format!("{} {}Z", &full[..10], &full[11..19]);
    format!("<span title=\"{}\">{}</span>", escape(&full), escape(&shown))
}

const STYLE: &str = "\
body { font-family: sans-serif; margin: 1.5em; color: #1a202c; max-width: 100%; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.5em; }
p, code { overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #cbd5e0; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
table.first th { font-weight: normal; } table.first td.n { font-weight: bold; }
table.versions { table-layout: fixed; width: 100%; font-size: 0.8em; }
table.versions td { overflow-wrap: anywhere; }
table.versions code { font-size: 0.95em; }
figure { margin: 1em 0; } svg { max-width: 100%; height: auto; }
svg text { font-size: 12px; font-family: sans-serif; }
.empty { color: #718096; }
.status-protected { color: #22543d; } .status-held { color: #744210; }
.status-expired, .status-unprotected { color: #9b2c2c; }
@media print {
  body { margin: 0; font-size: 9pt; }
  table.versions { font-size: 7pt; }
  thead { display: table-header-group; }
  tr, figure { break-inside: avoid; }
  h2 { break-after: avoid; }
}
";

pub(crate) fn retention_page(header: &ReportHeader, rows: &[Row], summary: &Summary) -> String {
    let scope = match (header.bucket.as_str(), header.prefix.as_str()) {
        ("", _) => "all buckets".to_owned(),
        (b, "") => format!("bucket {b}"),
        (b, p) => format!("bucket {b}, keys starting with {p}"),
    };
    let mut out = String::new();
    // Printed on every page (A4 or Letter: the margins fit both), so a page
    // on its own still names the archive state it shows.
    let page_rule = format!(
        "@page {{ margin: 16mm 12mm;\n  @top-left {{ content: {}; font-size: 8pt; }}\n  \
         @top-right {{ content: {}; font-size: 8pt; }}\n  \
         @bottom-right {{ content: \"page \" counter(page) \" of \" counter(pages); font-size: 8pt; }} }}\n",
        css_string(&format!("Wormbox retention report: {scope}")),
        css_string(&format!(
            "checkpoint {} signed {} by key {}",
            header.checkpoint.sequence, header.checkpoint.time, header.checkpoint.key_id
        )),
    );
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Wormbox retention report: {}</title>\n<style>\n{STYLE}{page_rule}</style>\n</head>\n<body>\n\
         <h1>Retention report: {}</h1>\n",
        escape(&scope),
        escape(&scope)
    );
    let purgeable = summary.expired + summary.unprotected;
    out.push_str("<table class=\"first\">\n");
    for (label, value) in [
        ("Versions under retention", grouped(summary.protected)),
        ("Versions under legal hold only (no retention in force)", grouped(summary.held)),
        ("Versions purgeable (retention passed or never set, no hold)", grouped(purgeable)),
        ("Bytes protected (under retention or hold)", bytes(summary.bytes_protected)),
    ] {
        let _ = writeln!(out, "<tr><th>{label}</th><td class=\"n\">{value}</td></tr>");
    }
    out.push_str("</table>\n");
    let _ = write!(
        out,
        "<p>Judged at compliance-clock time {}; {} rows.</p>\n\
         <p>Computed at {}.</p>\n<p>Public key: <code>{}</code></p>\n",
        escape(&time(header.now_unix_micros)),
        grouped(header.total_rows),
        escape(&checkpoint_span(header, summary)),
        escape(&header.public_key),
    );
    out.push_str("<h2>Status</h2>\n<table>\n");
    for (label, value) in [
        ("Retention ends within 30 days", summary.expiring_30_days),
        ("Retention ends within 90 days", summary.expiring_90_days),
        ("Retention ends within 365 days", summary.expiring_365_days),
        ("Expired and not held (purgeable)", summary.expired),
        ("Never retained and not held (purgeable)", summary.unprotected),
        ("Delete markers", summary.delete_markers),
    ] {
        let _ = writeln!(out, "<tr><th>{label}</th><td class=\"n\">{}</td></tr>", grouped(value));
    }
    out.push_str(
        "</table>\n<h2>Versions and bytes per bucket and mode</h2>\n<table>\n\
         <thead><tr><th>Bucket</th><th>Mode</th><th class=\"n\">Versions</th><th class=\"n\">Bytes</th></tr></thead>\n",
    );
    for t in &summary.totals {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&t.bucket),
            escape(&t.mode.to_ascii_lowercase()),
            grouped(t.versions),
            bytes(t.bytes)
        );
    }
    out.push_str(
        "</table>\n<h2>Legal holds per case</h2>\n<table>\n\
         <thead><tr><th>Case</th><th class=\"n\">Versions</th></tr></thead>\n",
    );
    for (case, count) in &summary.holds {
        let _ = writeln!(out, "<tr><td>{}</td><td class=\"n\">{}</td></tr>", escape(case), grouped(*count));
    }
    out.push_str("</table>\n<h2>Charts</h2>\n");
    out.push_str(&bar_chart("Versions whose retention ends, per month", &summary.expirations));
    out.push_str(&bar_chart("Versions held, per case", &summary.holds));
    let _ = writeln!(out, "<h2>Versions</h2>");
    if rows.len() > MAX_HTML_ROWS {
        let _ = writeln!(
            out,
            "<p>The first {} of {} rows; the CSV and JSON forms list them all.</p>",
            grouped(MAX_HTML_ROWS as u64),
            grouped(rows.len() as u64)
        );
    }
    out.push_str(
        "<p>SHA-256 digests show their first 12 hex digits; the whole digest is in each one's tooltip and in the \
         CSV and JSON forms.</p>\n",
    );
    // Fixed column widths (percent of the page) keep the table within
    // the page at 1280 px and on paper; long keys wrap within their column.
    out.push_str(
        "<table class=\"versions\">\n<colgroup><col style=\"width:8%\"><col style=\"width:13%\"><col style=\"width:14%\"><col style=\"width:4.5%\"><col style=\"width:6%\"><col style=\"width:9%\"><col style=\"width:9%\"><col style=\"width:7.5%\"><col style=\"width:9%\"><col style=\"width:6.5%\"><col style=\"width:8.5%\"><col style=\"width:5%\"></colgroup>\n\
         <thead><tr><th>Bucket</th><th>Key</th><th>Version</th><th>Latest</th><th class=\"n\">Size</th>\
         <th>Created</th><th>SHA-256</th><th>Mode</th><th>Retain until</th><th>Holds</th><th>Status</th>\
         <th>Bytes at</th></tr></thead>\n<tbody>\n",
    );
    for row in rows.iter().take(MAX_HTML_ROWS) {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"n\">{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"status-{status}\">{status}</td><td>{}</td></tr>",
            escape(&row.bucket),
            escape(&row.key),
            escape(&row.version_id),
            if row.is_latest { "yes" } else { "" },
            grouped(row.size),
            short_time(row.created_unix_micros),
            if row.sha256.is_empty() { String::new() } else { abbreviated(&row.sha256, 12) },
            escape(&row.mode.to_ascii_lowercase()),
            row.retain_until_unix_micros.map(short_time).unwrap_or_default(),
            escape(&row.legal_holds.join(", ")),
            escape(&row.bytes_location),
            status = row.status.as_str(),
        );
    }
    out.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_and_css_strings_cannot_end_the_style() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(bytes(1536), "1,536 bytes (1.5 KiB)");
        assert_eq!(css_string("a\"b\\c</style>\n"), "\"a\\\"b\\\\c\\3C /style>\\A \"");
        assert_eq!(abbreviated("abcdef", 12), "<code>abcdef</code>");
        assert_eq!(
            abbreviated(&"ab".repeat(32), 12),
            format!("<code title=\"{}\">abababababab…</code>", "ab".repeat(32))
        );
    }

    #[test]
    fn markup_in_archive_values_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        let mut data = BTreeMap::new();
        data.insert("<b>case</b>".to_owned(), 3);
        let svg = bar_chart("holds", &data);
        assert!(svg.contains("&lt;b&gt;case&lt;/b&gt;") && !svg.contains("<b>"), "{svg}");
    }
}
