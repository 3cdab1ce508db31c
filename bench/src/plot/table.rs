//! The comparison table: one row per run, formatted once and shared by the HTML and the plain-text
//! outputs so both always show the same numbers.
//!
//! Invariants: the first run is the baseline (ratio 1.00 when it has an achieved rate); a missing
//! number is `-`, never 0; latencies are µs from the JSON summary (the loadgen's own percentiles,
//! so the table matches what `vigil-loadgen` printed).

use super::input::Run;

/// Column headers.
pub const HEADERS: [&str; 14] = [
    "run",
    "offered/s",
    "achieved/s",
    "vs base",
    "sent",
    "received",
    "errors",
    "timeouts",
    "p50 µs",
    "p90 µs",
    "p99 µs",
    "p99.9 µs",
    "p99.99 µs",
    "max µs",
];

fn count(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn rate(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

fn micros(ns: Option<f64>) -> String {
    ns.map_or_else(|| "-".into(), |ns| format!("{:.1}", ns / 1e3))
}

/// The table's cells, one row per run, in [`HEADERS`] order.
pub fn rows(runs: &[Run]) -> Vec<Vec<String>> {
    let base = runs.first().and_then(|r| r.summary.achieved_rps).filter(|b| *b > 0.0);
    runs.iter()
        .map(|r| {
            let s = &r.summary;
            let l = &s.latency_ns;
            let ratio = match (s.achieved_rps, base) {
                (Some(a), Some(b)) => format!("{:.2}x", a / b),
                _ => "-".into(),
            };
            vec![
                r.label.clone(),
                s.offered_rps.map_or_else(|| "-".into(), |v| format!("{v:.0}")),
                rate(s.achieved_rps),
                ratio,
                count(s.sent),
                count(s.received),
                count(s.errors),
                count(s.timeouts),
                micros(l.p50),
                micros(l.p90),
                micros(l.p99),
                micros(l.p999),
                micros(l.p9999),
                micros(l.max),
            ]
        })
        .collect()
}

/// The table as aligned plain text (label left-aligned, numbers right-aligned), then each run's
/// notes.
pub fn render_text(runs: &[Run]) -> String {
    let rows = rows(runs);
    let mut widths: Vec<usize> = HEADERS.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                // `{:>w$}` pads by chars, and `µ` is one char, so columns stay aligned.
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        parts.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(&HEADERS.map(str::to_owned));
    for row in &rows {
        out += &line(row);
    }
    for r in runs {
        for n in &r.notes {
            out += &format!("note: {}: {n}\n", r.label);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::input::{JsonSummary, Run};

    fn run(label: &str, achieved: Option<f64>) -> Run {
        Run {
            label: label.into(),
            json_path: "x.json".into(),
            summary: JsonSummary { achieved_rps: achieved, offered_rps: Some(1000.0), ..Default::default() },
            timeline: None,
            hlog: None,
            notes: vec![],
        }
    }

    #[test]
    fn ratios_are_against_the_first_run_and_missing_is_a_dash() {
        let r = rows(&[run("base", Some(1000.0)), run("new", Some(1500.0)), run("old", None)]);
        assert_eq!(r[0][3], "1.00x");
        assert_eq!(r[1][3], "1.50x");
        assert_eq!(r[2][3], "-");
        assert_eq!(r[2][2], "-");
        assert_eq!(r[0][8], "-");
    }

    #[test]
    fn text_columns_line_up() {
        let t = render_text(&[run("a", Some(1.0)), run("a-much-longer-label", Some(123_456.7))]);
        let lens: Vec<usize> = t.lines().map(|l| l.chars().count()).collect();
        assert_eq!(lens.len(), 3);
        // Rows end with the max column, right-aligned: same length whatever the content.
        assert!(lens.iter().all(|l| *l == lens[0]), "{t}");
    }
}
