//! A small hand-written SVG line chart: linear or log10 axes, several series overlaid (colour per
//! run, dash per statistic), a legend under the plot, and a message instead of lines when there is
//! nothing to draw.
//!
//! Invariants: the output is one self-contained `<svg>` element (no scripts, no external fonts or
//! stylesheets, every text escaped), so it can be pasted inline into HTML; a point that cannot be
//! placed (NaN, or <= 0 on a log axis) breaks the line instead of being drawn at a wrong place;
//! points outside the axis range are clamped to its edge so an outlier stays visible.

use std::fmt::Write;

/// How values map onto an axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Evenly spaced values.
    Linear,
    /// Evenly spaced powers of ten (values must be > 0).
    Log10,
}

/// One axis: its range, scale, label and labelled ticks.
#[derive(Clone, Debug)]
pub struct Axis {
    /// Axis title, e.g. `latency (µs)`.
    pub label: String,
    /// Linear or log.
    pub scale: Scale,
    /// Smallest value shown.
    pub min: f64,
    /// Largest value shown.
    pub max: f64,
    /// Tick positions (in data units) and their labels.
    pub ticks: Vec<(f64, String)>,
}

impl Axis {
    /// A linear axis over `[min, max]` widened to round tick values.
    pub fn linear(label: &str, min: f64, max: f64) -> Self {
        let (min, max) = if max > min { (min, max) } else { (min, min + 1.0) };
        let step = nice_step((max - min) / 6.0);
        let lo = (min / step).floor() * step;
        let hi = (max / step).ceil() * step;
        let mut ticks = Vec::new();
        let mut k = 0.0;
        while lo + k * step <= hi + step * 1e-9 {
            let v = lo + k * step;
            ticks.push((v, format_number(v)));
            k += 1.0;
        }
        Self { label: label.to_owned(), scale: Scale::Linear, min: lo, max: hi, ticks }
    }

    /// A log10 axis over `[min, max]` (both > 0) widened to whole decades, ticks at 1, 2, 5 x 10^k
    /// when it spans few decades and at powers of ten otherwise.
    pub fn log(label: &str, min: f64, max: f64) -> Self {
        let min = if min > 0.0 && min.is_finite() { min } else { 1.0 };
        let max = if max > min && max.is_finite() { max } else { min * 10.0 };
        let lo = min.log10().floor() as i32;
        let hi = (max.log10().ceil() as i32).max(lo + 1);
        let mults: &[f64] = if hi - lo <= 3 { &[1.0, 2.0, 5.0] } else { &[1.0] };
        let mut ticks = Vec::new();
        for e in lo..=hi {
            for m in mults {
                let v = m * 10f64.powi(e);
                if v <= 10f64.powi(hi) * 1.000_001 {
                    ticks.push((v, format_number(v)));
                }
            }
        }
        Self { label: label.to_owned(), scale: Scale::Log10, min: 10f64.powi(lo), max: 10f64.powi(hi), ticks }
    }

    /// Where `v` falls on the axis, 0 at `min` and 1 at `max` (clamped), or `None` if it cannot be
    /// placed (NaN, or not positive on a log axis).
    fn fraction(&self, v: f64) -> Option<f64> {
        if !v.is_finite() {
            return None;
        }
        let f = match self.scale {
            Scale::Linear => (v - self.min) / (self.max - self.min),
            Scale::Log10 => {
                if v <= 0.0 {
                    return None;
                }
                (v.log10() - self.min.log10()) / (self.max.log10() - self.min.log10())
            }
        };
        Some(f.clamp(0.0, 1.0))
    }
}

/// A step of 1, 2 or 5 x 10^k close to `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw.is_nan() || raw <= 0.0 || raw.is_infinite() {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    let n = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    n * p
}

/// A compact tick label: `250`, `1.5`, `20k`, `3M`, `0.01`.
pub fn format_number(v: f64) -> String {
    let a = v.abs();
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    };
    if a >= 1e9 {
        format!("{}G", trim(format!("{:.2}", v / 1e9)))
    } else if a >= 1e6 {
        format!("{}M", trim(format!("{:.2}", v / 1e6)))
    } else if a >= 1e4 {
        format!("{}k", trim(format!("{:.2}", v / 1e3)))
    } else if a >= 1.0 || a == 0.0 {
        trim(format!("{v:.2}"))
    } else {
        trim(format!("{v:.4}"))
    }
}

/// How a series' line is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dash {
    /// Continuous line.
    Solid,
    /// Long dashes.
    Dashed,
    /// Dots.
    Dotted,
    /// No line: markers only.
    None,
}

impl Dash {
    fn attr(self) -> &'static str {
        match self {
            Dash::Solid | Dash::None => "",
            Dash::Dashed => " stroke-dasharray=\"7 4\"",
            Dash::Dotted => " stroke-dasharray=\"2 3\"",
        }
    }
}

/// One line (and/or set of markers) on a chart.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// CSS colour.
    pub colour: String,
    /// Line style.
    pub dash: Dash,
    /// Stroke width in px.
    pub width: f64,
    /// Draw a circle at each point.
    pub markers: bool,
    /// (x, y) in data units; a NaN y breaks the line.
    pub points: Vec<(f64, f64)>,
}

/// A chart: axes, series, and the legend built from the series' names.
#[derive(Clone, Debug)]
pub struct Chart {
    /// Unique within the page (names the clip path; HTML ids must not repeat).
    pub id: String,
    /// Title drawn above the plot.
    pub title: String,
    /// Horizontal axis.
    pub x: Axis,
    /// Vertical axis.
    pub y: Axis,
    /// Lines, drawn in order.
    pub series: Vec<Series>,
    /// Shown in the middle of the plot when no series has a point (why it is empty).
    pub empty_message: String,
}

/// Total drawing width in px (the SVG scales to its container through `viewBox`).
const WIDTH: f64 = 960.0;
/// Plot area height in px.
const PLOT_H: f64 = 320.0;
const LEFT: f64 = 78.0;
/// Room right of the plot for the half of the last x tick label that sticks out (`99.9999%`).
const RIGHT: f64 = 40.0;
const TOP: f64 = 38.0;
/// Room under the plot area for tick labels and the x-axis title.
const BELOW: f64 = 54.0;
const LEGEND_ROW: f64 = 20.0;

/// Escapes text for XML/HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

impl Chart {
    /// The chart as one `<svg>` element.
    pub fn to_svg(&self) -> String {
        let plot_w = WIDTH - LEFT - RIGHT;
        // Legend entries laid out left to right, wrapping; widths estimated from the text length
        // (no font metrics without a browser, so generous).
        let legend: Vec<&Series> = self.series.iter().filter(|s| !s.name.is_empty()).collect();
        let mut rows: Vec<Vec<(f64, &Series)>> = vec![Vec::new()];
        let mut cursor = 0.0;
        for s in &legend {
            let w = 40.0 + 7.0 * s.name.chars().count() as f64;
            if cursor + w > plot_w && cursor > 0.0 {
                rows.push(Vec::new());
                cursor = 0.0;
            }
            rows.last_mut().expect("at least one row").push((cursor, s));
            cursor += w;
        }
        let legend_rows = if legend.is_empty() { 0 } else { rows.len() };
        let height = TOP + PLOT_H + BELOW + LEGEND_ROW * legend_rows as f64 + 8.0;

        let mut o = String::new();
        let _ = write!(
            o,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" \
             height=\"{height}\" role=\"img\" aria-label=\"{t}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <title>{t}</title>\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n",
            t = escape(&self.title)
        );
        let _ = writeln!(
            o,
            "<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{}</text>",
            WIDTH / 2.0,
            escape(&self.title)
        );
        let px = |v: f64| self.x.fraction(v).map(|f| LEFT + f * plot_w);
        let py = |v: f64| self.y.fraction(v).map(|f| TOP + (1.0 - f) * PLOT_H);

        // Grid and ticks.
        for (v, label) in &self.x.ticks {
            if let Some(x) = px(*v) {
                let _ = writeln!(
                    o,
                    "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#e3e3e3\"/>\
                     <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                    TOP + PLOT_H,
                    TOP + PLOT_H + 16.0,
                    escape(label)
                );
            }
        }
        for (v, label) in &self.y.ticks {
            if let Some(y) = py(*v) {
                let _ = writeln!(
                    o,
                    "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#e3e3e3\"/>\
                     <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                    LEFT + plot_w,
                    LEFT - 6.0,
                    y + 4.0,
                    escape(label)
                );
            }
        }
        let _ = writeln!(
            o,
            "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_w}\" height=\"{PLOT_H}\" fill=\"none\" stroke=\"#555\"/>"
        );
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            LEFT + plot_w / 2.0,
            TOP + PLOT_H + 38.0,
            escape(&self.x.label)
        );
        let _ = writeln!(
            o,
            "<text transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
            TOP + PLOT_H / 2.0,
            escape(&self.y.label)
        );

        // Series, clipped to the plot area.
        let _ = writeln!(
            o,
            "<clipPath id=\"{id}-area\"><rect x=\"{LEFT}\" y=\"{:.1}\" width=\"{plot_w}\" height=\"{:.1}\"/></clipPath>\n\
             <g clip-path=\"url(#{id}-area)\" fill=\"none\" stroke-linejoin=\"round\">",
            TOP - 4.0,
            PLOT_H + 8.0,
            id = escape(&self.id)
        );
        let mut drawn = 0usize;
        for s in &self.series {
            let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for &(x, y) in &s.points {
                match (px(x), py(y)) {
                    (Some(x), Some(y)) => runs.last_mut().expect("one run").push((x, y)),
                    _ => runs.push(Vec::new()),
                }
            }
            for run in runs.iter().filter(|r| !r.is_empty()) {
                drawn += run.len();
                if s.dash != Dash::None && run.len() > 1 {
                    let pts: Vec<String> = run.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                    let _ = writeln!(
                        o,
                        "<polyline points=\"{}\" stroke=\"{}\" stroke-width=\"{}\"{}/>",
                        pts.join(" "),
                        escape(&s.colour),
                        s.width,
                        s.dash.attr()
                    );
                }
                if s.markers || run.len() == 1 {
                    for (x, y) in run {
                        let _ = writeln!(
                            o,
                            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3.5\" fill=\"{}\" stroke=\"none\"/>",
                            escape(&s.colour)
                        );
                    }
                }
            }
        }
        o.push_str("</g>\n");
        if drawn == 0 {
            let _ = writeln!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#777\" font-size=\"14\">{}</text>",
                LEFT + plot_w / 2.0,
                TOP + PLOT_H / 2.0,
                escape(&self.empty_message)
            );
        }

        // Legend.
        for (r, row) in rows.iter().enumerate().take(legend_rows) {
            let y = TOP + PLOT_H + BELOW + LEGEND_ROW * r as f64 + 6.0;
            for (dx, s) in row {
                let x = LEFT + dx;
                if s.dash == Dash::None {
                    let _ = write!(
                        o,
                        "<circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"3.5\" fill=\"{}\"/>",
                        x + 14.0,
                        escape(&s.colour)
                    );
                } else {
                    let _ = write!(
                        o,
                        "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{}\" \
                         stroke-width=\"{}\"{}/>",
                        x + 28.0,
                        escape(&s.colour),
                        s.width.max(2.0),
                        s.dash.attr()
                    );
                }
                let _ = writeln!(
                    o,
                    "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                    x + 34.0,
                    y + 4.0,
                    escape(&s.name)
                );
            }
        }
        o.push_str("</svg>\n");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_axis_spans_whole_decades() {
        let a = Axis::log("y", 3.0, 4500.0);
        assert_eq!((a.min, a.max), (1.0, 10_000.0));
        assert_eq!(a.ticks.len(), 5, "{:?}", a.ticks);
        assert_eq!(a.fraction(100.0), Some(0.5));
        assert_eq!(a.fraction(0.0), None);
        assert_eq!(a.fraction(1e9), Some(1.0));
    }

    #[test]
    fn linear_axis_has_round_ticks() {
        let a = Axis::linear("x", 0.0, 9.3);
        assert_eq!(a.min, 0.0);
        assert_eq!(a.max, 10.0);
        assert_eq!(a.ticks.first().map(|t| t.1.as_str()), Some("0"));
        assert_eq!(a.ticks.last().map(|t| t.1.as_str()), Some("10"));
    }

    #[test]
    fn numbers_are_compact() {
        assert_eq!(format_number(20_000.0), "20k");
        assert_eq!(format_number(1_500_000.0), "1.5M");
        assert_eq!(format_number(0.01), "0.01");
        assert_eq!(format_number(250.0), "250");
    }

    #[test]
    fn text_is_escaped_and_nan_breaks_lines() {
        let chart = Chart {
            id: "t".into(),
            title: "a <b> & \"c\"".into(),
            x: Axis::linear("x", 0.0, 3.0),
            y: Axis::linear("y", 0.0, 3.0),
            series: vec![Series {
                name: "s<1>".into(),
                colour: "#123456".into(),
                dash: Dash::Solid,
                width: 1.5,
                markers: false,
                points: vec![(0.0, 1.0), (1.0, 2.0), (2.0, f64::NAN), (3.0, 1.0)],
            }],
            empty_message: "none".into(),
        };
        let svg = chart.to_svg();
        assert!(svg.contains("a &lt;b&gt; &amp; &quot;c&quot;"));
        assert!(svg.contains("s&lt;1&gt;"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 1, "the lone point after the gap is a marker");
        assert!(!svg.contains(">none<"));
    }
}
