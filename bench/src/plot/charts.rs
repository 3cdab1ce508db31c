//! The report's three charts, each overlaying every run (one colour per run, in input order):
//! the percentile spectrum, latency over time, and achieved vs offered rate over time.
//!
//! Invariants: the first run always gets the first colour, so the baseline looks the same in every
//! report; latencies are drawn in µs; a run without an interval log still appears in the spectrum
//! (its JSON percentiles as points) and in the rate chart (its averages), never silently dropped.

use super::input::{Run, TimelinePoint};
use super::svg::{Axis, Chart, Dash, Scale, Series};
use hdrhistogram::Histogram;

/// Okabe-Ito colours (distinguishable with the common colour-vision deficiencies), then a few more.
const PALETTE: [&str; 10] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999933", "#882255",
    "#666666",
];

/// The colour of run `i`.
pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

fn us(ns: f64) -> f64 {
    ns / 1e3
}

/// Label of a 1/(1-p) tick 10^decade: `0%`, `90%`, `99%`, `99.9%`, ...
fn percentile_label(decade: i32) -> String {
    match decade {
        0 => "0%".into(),
        1 => "90%".into(),
        d => format!("99.{}%", "9".repeat(usize::try_from(d - 2).unwrap_or(0))).replace(".%", "%"),
    }
}

/// Sampling density of the spectrum along its log x axis.
const SPECTRUM_POINTS_PER_DECADE: i32 = 20;

fn spectrum_series(h: &Histogram<u64>, decades: i32) -> Vec<(f64, f64)> {
    (0..=decades * SPECTRUM_POINTS_PER_DECADE)
        .map(|i| {
            let x = 10f64.powf(f64::from(i) / f64::from(SPECTRUM_POINTS_PER_DECADE));
            let q = 1.0 - 1.0 / x;
            (x, us(h.value_at_quantile(q) as f64))
        })
        .collect()
}

/// Latency by percentile, x = 1/(1-p) on a log axis (HdrHistogram's percentile plot): the tail
/// gets as much room as the body.
pub fn spectrum(runs: &[Run]) -> Chart {
    // Enough decades to reach the single worst sample of the largest run, at least to 99.999%.
    let most = runs
        .iter()
        .map(|r| r.hlog.as_ref().map_or(r.summary.latency_ns.count.unwrap_or(0), |h| h.merged.len()))
        .max()
        .unwrap_or(0);
    let decades = ((most.max(1) as f64).log10().ceil() as i32).clamp(5, 7);
    let x_max = 10f64.powi(decades);
    let mut series = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        match &r.hlog {
            Some(h) if !h.merged.is_empty() => series.push(Series {
                name: r.label.clone(),
                colour: colour(i).into(),
                dash: Dash::Solid,
                width: 2.0,
                markers: false,
                points: spectrum_series(&h.merged, decades),
            }),
            _ => {
                let l = &r.summary.latency_ns;
                let pts: Vec<(f64, f64)> = [
                    (1.0, l.min),
                    (2.0, l.p50),
                    (10.0, l.p90),
                    (100.0, l.p99),
                    (1e3, l.p999),
                    (1e4, l.p9999),
                    (x_max, l.max),
                ]
                .into_iter()
                .filter_map(|(x, v)| v.filter(|v| *v > 0.0).map(|v| (x, us(v))))
                .collect();
                series.push(Series {
                    name: format!("{} (JSON percentiles)", r.label),
                    colour: colour(i).into(),
                    dash: Dash::Dotted,
                    width: 1.5,
                    markers: true,
                    points: pts,
                });
            }
        }
    }
    let x = Axis {
        label: "percentile".into(),
        scale: Scale::Log10,
        min: 1.0,
        max: x_max,
        ticks: (0..=decades).map(|d| (10f64.powi(d), percentile_label(d))).collect(),
    };
    let (lo, hi) = y_range(&series);
    Chart {
        id: "spectrum".into(),
        title: "Latency by percentile (merged measured intervals)".into(),
        x,
        y: Axis::log("latency (µs)", lo, hi),
        series,
        empty_message: "no latencies recorded".into(),
    }
}

/// Smallest and largest positive y of all series (1..10 when there are none).
fn y_range(series: &[Series]) -> (f64, f64) {
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).filter(|y| y.is_finite() && *y > 0.0);
    let (lo, hi) = ys.fold((f64::INFINITY, 0.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    if hi > 0.0 {
        (lo, hi)
    } else {
        (1.0, 10.0)
    }
}

/// Per-interval p50, p99 and max of every run with an interval log, at each interval's middle.
pub fn latency_over_time(runs: &[Run]) -> Chart {
    let mut series = Vec::new();
    let mut t_max = 0.0f64;
    for (i, r) in runs.iter().enumerate() {
        let Some(h) = &r.hlog else { continue };
        let stat = |f: &dyn Fn(&Histogram<u64>) -> u64| -> Vec<(f64, f64)> {
            h.intervals
                .iter()
                // An interval with no answers has no latency: a gap, not a zero.
                .map(|iv| {
                    (
                        iv.t_s + iv.seconds / 2.0,
                        if iv.hist.is_empty() { f64::NAN } else { us(f(&iv.hist) as f64) },
                    )
                })
                .collect()
        };
        if let Some(last) = h.intervals.iter().map(|iv| iv.t_s + iv.seconds).reduce(f64::max) {
            t_max = t_max.max(last);
        }
        for (name, dash, width, points) in [
            ("p50", Dash::Solid, 2.0, stat(&|h| h.value_at_quantile(0.5))),
            ("p99", Dash::Dashed, 1.5, stat(&|h| h.value_at_quantile(0.99))),
            ("max", Dash::Dotted, 1.5, stat(&|h| h.max())),
        ] {
            series.push(Series {
                name: format!("{} {name}", r.label),
                colour: colour(i).into(),
                dash,
                width,
                markers: false,
                points,
            });
        }
    }
    let (lo, hi) = y_range(&series);
    Chart {
        id: "latency-time".into(),
        title: "Latency over time (per interval: p50 solid, p99 dashed, max dotted)".into(),
        x: Axis::linear("time into the measured phase (s)", 0.0, if t_max > 0.0 { t_max } else { 1.0 }),
        y: Axis::log("latency (µs)", lo, hi),
        series,
        empty_message: "no interval logs: latency over time needs the runs' .hlog files".into(),
    }
}

/// Rate of `f` per second in each timeline interval, at the interval's middle.
fn timeline_rate(t: &[TimelinePoint], f: impl Fn(&TimelinePoint) -> Option<f64>) -> Vec<(f64, f64)> {
    t.iter().map(|p| (p.t_s + p.seconds / 2.0, f(p).map_or(f64::NAN, |v| v / p.seconds))).collect()
}

/// Where a run's rate-over-time numbers come from, for the page's notes.
pub fn rate_source(r: &Run) -> &'static str {
    if r.timeline.is_some() {
        "timeline in the JSON (answered and offered per interval)"
    } else if r.hlog.is_some() {
        "interval log counts (OK answers by intended send time; offered drawn as the constant offered_rps)"
    } else {
        "JSON averages only (offered_rps, achieved_rps)"
    }
}

/// Achieved (solid) and offered (dashed) requests per second over time.
pub fn rate_over_time(runs: &[Run]) -> Chart {
    let mut series = Vec::new();
    let mut t_max = 0.0f64;
    for (i, r) in runs.iter().enumerate() {
        let span = r.summary.duration_s.filter(|d| *d > 0.0);
        let (achieved, offered, achieved_name) = if let Some(t) = &r.timeline {
            if let Some(end) = t.iter().map(|p| p.t_s + p.seconds).reduce(f64::max) {
                t_max = t_max.max(end);
            }
            (timeline_rate(t, |p| p.answered), timeline_rate(t, |p| p.offered), "achieved")
        } else if let Some(h) = &r.hlog {
            let end = h.intervals.iter().map(|iv| iv.t_s + iv.seconds).fold(0.0, f64::max);
            t_max = t_max.max(end);
            let achieved = h
                .intervals
                .iter()
                .map(|iv| (iv.t_s + iv.seconds / 2.0, iv.hist.len() as f64 / iv.seconds.max(1e-9)))
                .collect();
            let start = h.intervals.iter().map(|iv| iv.t_s).fold(f64::INFINITY, f64::min);
            let offered =
                r.summary.offered_rps.map(|o| vec![(start.min(0.0), o), (end, o)]).unwrap_or_default();
            (achieved, offered, "achieved")
        } else {
            // Averages only: flat lines over the measured window.
            let end = span.unwrap_or(1.0);
            t_max = t_max.max(end);
            let flat = |v: Option<f64>| v.map(|v| vec![(0.0, v), (end, v)]).unwrap_or_default();
            (flat(r.summary.achieved_rps), flat(r.summary.offered_rps), "achieved (mean)")
        };
        series.push(Series {
            name: format!("{} {achieved_name}", r.label),
            colour: colour(i).into(),
            dash: Dash::Solid,
            width: 2.0,
            markers: false,
            points: achieved,
        });
        series.push(Series {
            name: format!("{} offered", r.label),
            colour: colour(i).into(),
            dash: Dash::Dashed,
            width: 1.5,
            markers: false,
            points: offered,
        });
    }
    let hi = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|y| y.is_finite())
        .fold(0.0, f64::max);
    Chart {
        id: "rate-time".into(),
        title: "Achieved (solid) vs offered (dashed) rate over time".into(),
        x: Axis::linear("time into the measured phase (s)", 0.0, if t_max > 0.0 { t_max } else { 1.0 }),
        y: Axis::linear("requests per second", 0.0, if hi > 0.0 { hi * 1.05 } else { 1.0 }),
        series,
        empty_message: "no rates in the inputs".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_ticks_read_like_hdrhistogram() {
        let labels: Vec<String> = (0..=5).map(percentile_label).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
    }

    #[test]
    fn spectrum_samples_reach_the_max() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in 1..=10_000u64 {
            h.record(v * 1000).unwrap();
        }
        let pts = spectrum_series(&h, 5);
        assert_eq!(pts.len(), 101);
        assert!((pts[0].1 - 1.0).abs() < 0.01, "{:?}", pts[0]);
        let last = pts.last().unwrap();
        assert!((last.1 - 10_000.0).abs() / 10_000.0 < 0.001, "{last:?}");
        assert!(pts.windows(2).all(|w| w[0].1 <= w[1].1), "monotonic");
    }
}
