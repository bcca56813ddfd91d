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

pub(crate) fn retention_page(header: &ReportHeader, rows: &[Row], summary: &Summary) -> String {
    let scope = match (header.bucket.as_str(), header.prefix.as_str()) {
        ("", _) => "all buckets".to_owned(),
        (b, "") => format!("bucket {b}"),
        (b, p) => format!("bucket {b}, keys starting with {p}"),
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>Wormbox retention report: {scope}</title>\n<style>\n\
         body {{ font-family: sans-serif; margin: 2em; color: #1a202c; }}\n\
         table {{ border-collapse: collapse; margin: 1em 0; }}\n\
         th, td {{ border: 1px solid #cbd5e0; padding: 0.25em 0.6em; text-align: left; }}\n\
         td.n {{ text-align: right; }}\n code {{ word-break: break-all; }}\n\
         svg text {{ font-size: 12px; font-family: sans-serif; }}\n .empty {{ color: #718096; }}\n\
         </style>\n</head>\n<body>\n<h1>Retention report: {scope}</h1>\n",
        scope = escape(&scope)
    );
    let _ = write!(
        out,
        "<p>Judged at compliance-clock time {}; {} rows.</p>\n\
         <p>Computed at {}.</p>\n<p>Public key: <code>{}</code></p>\n",
        escape(&time(header.now_unix_micros)),
        header.total_rows,
        escape(&checkpoint_span(header, summary)),
        escape(&header.public_key),
    );
    out.push_str("<h2>Versions and bytes per bucket and mode</h2>\n<table>\n<tr><th>Bucket</th><th>Mode</th><th>Versions</th><th>Bytes</th></tr>\n");
    for t in &summary.totals {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&t.bucket),
            escape(&t.mode),
            t.versions,
            t.bytes
        );
    }
    out.push_str("</table>\n<h2>Status</h2>\n<table>\n");
    for (label, value) in [
        ("Retention ends within 30 days", summary.expiring_30_days),
        ("Retention ends within 90 days", summary.expiring_90_days),
        ("Retention ends within 365 days", summary.expiring_365_days),
        ("Expired and not held (purgeable)", summary.expired),
        ("Never retained and not held (purgeable)", summary.unprotected),
        ("Delete markers", summary.delete_markers),
    ] {
        let _ = writeln!(out, "<tr><th>{label}</th><td class=\"n\">{value}</td></tr>");
    }
    out.push_str("</table>\n<h2>Legal holds per case</h2>\n<table>\n<tr><th>Case</th><th>Versions</th></tr>\n");
    for (case, count) in &summary.holds {
        let _ = writeln!(out, "<tr><td>{}</td><td class=\"n\">{count}</td></tr>", escape(case));
    }
    out.push_str("</table>\n<h2>Charts</h2>\n");
    out.push_str(&bar_chart("Versions whose retention ends, per month", &summary.expirations));
    out.push_str(&bar_chart("Versions held, per case", &summary.holds));
    let _ = writeln!(out, "<h2>Versions</h2>");
    if rows.len() > MAX_HTML_ROWS {
        let _ = writeln!(
            out,
            "<p>The first {MAX_HTML_ROWS} of {} rows; the CSV and JSON forms list them all.</p>",
            rows.len()
        );
    }
    out.push_str(
        "<table>\n<tr><th>Bucket</th><th>Key</th><th>Version</th><th>Latest</th><th>Size</th><th>Created</th>\
         <th>SHA-256</th><th>Mode</th><th>Retain until</th><th>Holds</th><th>Status</th><th>Bytes at</th></tr>\n",
    );
    for row in rows.iter().take(MAX_HTML_ROWS) {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"n\">{}</td><td>{}</td>\
             <td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&row.bucket),
            escape(&row.key),
            escape(&row.version_id),
            if row.is_latest { "yes" } else { "" },
            row.size,
            escape(&time(row.created_unix_micros)),
            escape(&row.sha256),
            escape(&row.mode),
            row.retain_until_unix_micros.map(time).map(|t| escape(&t)).unwrap_or_default(),
            escape(&row.legal_holds.join(", ")),
            row.status.as_str(),
            escape(&row.bytes_location),
        );
    }
    out.push_str("</table>\n</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
