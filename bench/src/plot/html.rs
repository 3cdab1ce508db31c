//! The HTML page: title and date, a how-to-read note, the comparison table and what the inputs
//! lacked, the three charts as inline SVG, then the runs' details and input files.
//!
//! Invariants: one self-contained file (inline CSS and SVG, no script, no external asset), so it
//! can be mailed or checked in and opened anywhere; every input-derived string is escaped.

use super::charts;
use super::input::Run;
use super::svg::escape;
use super::table;
use std::fmt::Write;

const CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1100px;\
color:#222;padding:0 12px;line-height:1.4}\
h1{font-size:1.6em;margin-bottom:0}.meta{color:#666;margin-top:4px}\
.note{background:#f5f7fa;border-left:4px solid #0072B2;padding:8px 14px;margin:16px 0}\
table{border-collapse:collapse;font-size:13px;margin:8px 0 24px}\
th,td{padding:4px 8px;border-bottom:1px solid #ddd;white-space:nowrap}\
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}\
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:6px;vertical-align:-1px}\
.warn{color:#a33}td.path{white-space:normal;word-break:break-all;font-size:12px}\
figure{margin:8px 0 28px}figure svg{width:100%;height:auto;border:1px solid #eee}\
figcaption{color:#555;font-size:13px;margin-top:4px}\
code{background:#f2f2f2;padding:0 3px}";

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), ToString::to_string)
}

/// The whole report page for `runs` (the first is the baseline), titled `title`, stamped
/// `generated` (a date, as given).
pub fn render_html(runs: &[Run], title: &str, generated: &str) -> String {
    let mut o = String::new();
    let t = escape(title);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{t}</title>\n\
         <style>{CSS}</style>\n</head>\n<body>\n<h1>{t}</h1>\n\
         <p class=\"meta\">Generated {} by vigil-report from {} run{}.</p>\n",
        escape(generated),
        runs.len(),
        if runs.len() == 1 { "" } else { "s" }
    );
    o.push_str(
        "<div class=\"note\"><b>How to read this.</b> Each run offered a fixed request rate \
         <i>open loop</i>: requests were scheduled in advance and sent whether or not earlier ones \
         were answered, and each latency is measured from the request's <i>intended</i> send time, \
         so a stalled server shows up as latency (no coordinated omission), not as a politely lower \
         rate. The first run is the <b>baseline</b>: <i>vs base</i> is each run's achieved rate \
         divided by the baseline's. In the percentile plot the x axis is 1/(1&minus;p) on a log \
         scale, so each step right is ten times rarer (90%, 99%, 99.9%, ...); the right edge is the \
         single worst request. Achieved below offered means the system (or the generator) could \
         not keep up; errors and timeouts are not counted as achieved.</div>\n",
    );

    // The comparison table.
    o.push_str("<h2>Summary</h2>\n<table>\n<tr>");
    for (i, h) in table::HEADERS.iter().enumerate() {
        let _ = write!(o, "<th{}>{}</th>", if i == 0 { "" } else { " class=\"num\"" }, escape(h));
    }
    o.push_str("</tr>\n");
    for (i, row) in table::rows(runs).iter().enumerate() {
        o.push_str("<tr>");
        for (j, cell) in row.iter().enumerate() {
            if j == 0 {
                let _ = write!(
                    o,
                    "<td><span class=\"swatch\" style=\"background:{}\"></span>{}</td>",
                    charts::colour(i),
                    escape(cell)
                );
            } else {
                let _ = write!(o, "<td class=\"num\">{}</td>", escape(cell));
            }
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");

    // What the inputs lacked, right under the numbers it qualifies.
    let warnings: Vec<String> = runs
        .iter()
        .flat_map(|r| r.notes.iter().map(move |n| format!("<li>{}: {}</li>", escape(&r.label), escape(n))))
        .collect();
    if !warnings.is_empty() {
        let _ = writeln!(o, "<ul class=\"warn\">\n{}\n</ul>", warnings.join("\n"));
    }

    // The charts.
    let figures = [
        (
            charts::spectrum(runs),
            "Latency at each percentile of the whole measured phase, from the merged interval \
             histograms (runs without an interval log: the JSON's percentiles as points). Lower is better; \
             a curve that bends up late has a short tail.",
        ),
        (
            charts::latency_over_time(runs),
            "Per interval of the interval log (one per second of intended send time): steady lines \
             mean a steady run; a climbing p50 means a queue is building.",
        ),
        (
            charts::rate_over_time(runs),
            "OK answers per second against the rate the schedule intended; the solid line falling \
             below the dashed one is where the system stopped keeping up.",
        ),
    ];
    o.push_str("<h2>Plots</h2>\n");
    for (chart, caption) in figures {
        let _ = write!(
            o,
            "<figure>\n{}<figcaption>{}</figcaption>\n</figure>\n",
            chart.to_svg(),
            escape(caption)
        );
    }
    // The runs: what was measured and which files the report read.
    o.push_str(
        "<h2>Runs</h2>\n<table>\n<tr><th>run</th><th>backend</th><th>server</th><th>op</th>\
                <th class=\"num\">body B</th><th class=\"num\">batch</th><th class=\"num\">measured s</th>\
                <th class=\"num\">warm-up s</th><th class=\"num\">timeout ms</th><th>inputs</th></tr>\n",
    );
    for (i, r) in runs.iter().enumerate() {
        let s = &r.summary;
        let inputs = match &r.hlog {
            Some(h) => format!("{} + {}", r.json_path.display(), h.path.display()),
            None => format!("{} (no interval log)", r.json_path.display()),
        };
        let op = match (&s.op, s.reflector) {
            (Some(op), Some(true)) => format!("{op} (reflector)"),
            (op, _) => opt(op),
        };
        let _ = writeln!(
            o,
            "<tr><td><span class=\"swatch\" style=\"background:{}\"></span>{}{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"path\"><code>{}</code></td></tr>",
            charts::colour(i),
            escape(&r.label),
            if i == 0 { " (baseline)" } else { "" },
            escape(&opt(&s.backend)),
            escape(&opt(&s.server)),
            escape(&op),
            opt(&s.payload_bytes),
            opt(&s.batch),
            s.duration_s.map_or_else(|| "-".into(), |d| format!("{d:.3}")),
            s.warmup_s.map_or_else(|| "-".into(), |d| format!("{d:.3}")),
            opt(&s.timeout_ms),
            escape(&inputs)
        );
    }
    o.push_str("</table>\n");
    let sources: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "<li>{}: rate over time from the {}</li>",
                escape(&r.label),
                escape(charts::rate_source(r))
            )
        })
        .collect();
    let _ = writeln!(o, "<ul>\n{}\n</ul>", sources.join("\n"));
    o.push_str("</body>\n</html>\n");
    o
}
