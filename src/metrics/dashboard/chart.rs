//! The dashboard's latency chart: the node's durable-write p50, p99 and p99.9 of each second of
//! the last minute (`History`), as a small inline SVG (no script, no image fetched: the page's
//! content security policy allows neither).
//!
//! The y axis is logarithmic (one decade per grid line), so a 50 us median and a 20 ms tail both
//! show; a second without writes leaves a gap in the lines rather than a drop to zero.
//!
//! Invariants: the SVG holds only numbers and fixed text (nothing from a client); its size is fixed
//! (`WIDTH` x `HEIGHT`), whatever the values.

use super::fmt_us;
use crate::metrics::history::Sample;
use std::collections::VecDeque;
use std::fmt::Write;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 180.0;
/// Room on the left for the axis labels, and below for the time labels.
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 20.0;
const TOP: f64 = 8.0;

/// A line of the chart: its label, its colour, and the quantile it draws.
type Line = (&'static str, &'static str, fn(&Sample) -> f64);

/// The three lines.
const LINES: [Line; 3] =
    [("p50", "#2b8a3e", |s| s.p50_us), ("p99", "#e67700", |s| s.p99_us), ("p99.9", "#c92a2a", |s| s.p999_us)];

/// Writes the chart of `samples` (oldest first), spanning `slots` seconds, into `out`.
pub fn write_chart(out: &mut String, samples: &VecDeque<Sample>, slots: usize) {
    let values = samples.iter().filter(|s| s.writes > 0);
    let lo = values.clone().map(|s| s.p50_us).fold(f64::INFINITY, f64::min);
    let hi = values.map(|s| s.p999_us).fold(0.0, f64::max);
    let _ = write!(
        out,
        r##"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="durable write latency, last {slots} s">"##
    );
    if hi <= 0.0 {
        let _ = write!(
            out,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#666">no durable writes in the last {slots} s</text></svg>"##,
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
        return;
    }
    // Whole decades around the values, at least one.
    let (d_lo, mut d_hi) = (lo.max(1.0).log10().floor(), hi.max(1.0).log10().ceil());
    if d_hi <= d_lo {
        d_hi = d_lo + 1.0;
    }
    let y_of = |us: f64| {
        let f = (us.max(1.0).log10() - d_lo) / (d_hi - d_lo);
        TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - f.clamp(0.0, 1.0))
    };
    write_grid(out, d_lo as i32, d_hi as i32, &y_of, slots);
    let step = (WIDTH - LEFT) / (slots.max(2) - 1) as f64;
    // The newest sample sits at the right edge.
    let first_slot = slots.saturating_sub(samples.len());
    for (label, colour, value) in LINES {
        let mut path = String::new();
        let mut pen_down = false;
        for (i, s) in samples.iter().enumerate() {
            if s.writes == 0 {
                pen_down = false;
                continue;
            }
            let x = LEFT + step * (first_slot + i) as f64;
            // A line starts with a dot (a zero-length step drawn with round caps), so a second
            // alone between two without writes still shows.
            let (verb, dot) = if pen_down { ("L", "") } else { ("M", " h0.01") };
            let _ = write!(path, "{verb}{x:.1},{:.1}{dot} ", y_of(value(s)));
            pen_down = true;
        }
        let _ = write!(
            out,
            r##"<path d="{}" fill="none" stroke="{colour}" stroke-width="1.5" stroke-linecap="round" stroke-linejoin="round"><title>{label}</title></path>"##,
            path.trim_end()
        );
    }
    write_legend(out, samples.iter().rev().find(|s| s.writes > 0));
    out.push_str("</svg>");
}

/// The decade lines with their labels, and the time axis's ends.
fn write_grid(out: &mut String, d_lo: i32, d_hi: i32, y_of: &dyn Fn(f64) -> f64, slots: usize) {
    for d in d_lo..=d_hi {
        let us = 10f64.powi(d);
        let y = y_of(us);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{WIDTH}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end" font-size="11" fill="#555">{}</text>"##,
            LEFT - 4.0,
            y + 4.0,
            fmt_us(us)
        );
    }
    let base = HEIGHT - 4.0;
    let _ = write!(
        out,
        r##"<text x="{LEFT}" y="{base}" font-size="11" fill="#555">-{slots} s</text><text x="{WIDTH}" y="{base}" text-anchor="end" font-size="11" fill="#555">now</text>"##
    );
}

/// The lines' names with the newest second's values.
fn write_legend(out: &mut String, newest: Option<&Sample>) {
    let mut x = LEFT + 8.0;
    for (label, colour, value) in LINES {
        let now = newest.map_or_else(String::new, |s| format!(" {}", fmt_us(value(s))));
        let _ = write!(
            out,
            r##"<rect x="{x}" y="{}" width="10" height="3" fill="{colour}"/><text x="{}" y="{}" font-size="11" fill="#333">{label}{now}</text>"##,
            TOP + 6.0,
            x + 14.0,
            TOP + 10.0
        );
        x += 110.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(writes: u64, p50: f64, p99: f64, p999: f64) -> Sample {
        Sample { writes, p50_us: p50, p99_us: p99, p999_us: p999, ..Sample::default() }
    }

    #[test]
    fn three_lines_over_log_decades_with_gaps_where_no_write_came() {
        let samples: VecDeque<Sample> =
            [sample(10, 50.0, 900.0, 2_000.0), sample(0, 0.0, 0.0, 0.0), sample(10, 60.0, 1_100.0, 5_000.0)]
                .into();
        let mut svg = String::new();
        write_chart(&mut svg, &samples, 60);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<path").count(), 3);
        // A gap: each line starts again (two `M`s) after the second without writes.
        let first_path = &svg[svg.find("<path d=\"").unwrap()..];
        let d = &first_path[9..first_path.find("\" fill").unwrap()];
        assert_eq!(d.matches('M').count(), 2, "{d}");
        // Decades from 10 us to 10 ms.
        for label in ["10 µs", "100 µs", "1.0 ms", "10 ms"] {
            assert!(svg.contains(&format!(">{label}</text>")), "{label} in {svg}");
        }
        assert!(svg.contains("p99.9 5.0 ms"), "the newest values in the legend");
    }

    #[test]
    fn without_writes_it_says_so() {
        let mut svg = String::new();
        write_chart(&mut svg, &VecDeque::new(), 60);
        assert!(svg.contains("no durable writes in the last 60 s"));
    }
}
