//! Reading one load-generator run: its `--json` summary (leniently: any key may be missing, unknown
//! keys are ignored, integers and floats are both accepted) and its `--hist-log` interval log.
//!
//! Invariants: a run always loads when its JSON parses as an object; everything else that is
//! missing or unreadable (no `.hlog`, a corrupt one, no `timeline`) becomes a note on the run, so
//! the report shows what the JSON alone supports and says why the rest is absent. Interval times
//! are seconds from the start of the measured phase (interval 0 starts after the warm-up).

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Latency percentiles from the JSON, nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct JsonLatency {
    /// Samples.
    pub count: Option<u64>,
    /// Smallest.
    pub min: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// 99.9th percentile.
    pub p999: Option<f64>,
    /// 99.99th percentile.
    pub p9999: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
}

/// The numbers the report uses from the JSON summary (`None` where the key is absent).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JsonSummary {
    /// `kernel` or `dpdk`.
    pub backend: Option<String>,
    /// Server address.
    pub server: Option<String>,
    /// `ping`, `echo`, ...
    pub op: Option<String>,
    /// Echo body bytes.
    pub payload_bytes: Option<u64>,
    /// Requests per datagram.
    pub batch: Option<u64>,
    /// Answers were reflected frames (testpmd baseline).
    pub reflector: Option<bool>,
    /// Offered requests per second.
    pub offered_rps: Option<f64>,
    /// OK answers per second in the measured window.
    pub achieved_rps: Option<f64>,
    /// Measured seconds.
    pub duration_s: Option<f64>,
    /// Warm-up seconds.
    pub warmup_s: Option<f64>,
    /// Timeout, ms.
    pub timeout_ms: Option<f64>,
    /// Requests sent (measured phase).
    pub sent: Option<u64>,
    /// OK answers.
    pub received: Option<u64>,
    /// Non-OK answers.
    pub errors: Option<u64>,
    /// Unanswered within the timeout.
    pub timeouts: Option<u64>,
    /// Latency percentiles.
    pub latency_ns: JsonLatency,
    /// Ctrl-C ended the run early.
    pub stopped_early: Option<bool>,
    /// The outstanding ring was too small for rate x timeout.
    pub window_capped: Option<bool>,
}

/// One `timeline` entry: what happened to the requests intended in one interval.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TimelinePoint {
    /// Interval start, seconds from the start of the measured phase.
    pub t_s: f64,
    /// Interval length, seconds.
    pub seconds: f64,
    /// Requests intended in the interval.
    pub offered: Option<f64>,
    /// Requests sent.
    pub sent: Option<f64>,
    /// OK answers.
    pub answered: Option<f64>,
    /// Non-OK answers.
    pub errors: Option<f64>,
    /// Timeouts.
    pub timeouts: Option<f64>,
}

/// One interval of the `.hlog`.
#[derive(Clone, Debug)]
pub struct Interval {
    /// Start, seconds from the start of the measured phase.
    pub t_s: f64,
    /// Length, seconds.
    pub seconds: f64,
    /// Latencies (ns) of the OK answers to requests intended in the interval.
    pub hist: Histogram<u64>,
}

/// A decoded interval log.
#[derive(Clone, Debug)]
pub struct HistLog {
    /// Where it was read from.
    pub path: PathBuf,
    /// Intervals in file order.
    pub intervals: Vec<Interval>,
    /// All intervals added together: the measured phase's latency distribution.
    pub merged: Histogram<u64>,
}

/// A run as the report sees it.
#[derive(Clone, Debug)]
pub struct Run {
    /// Name in legends and tables.
    pub label: String,
    /// The JSON summary file.
    pub json_path: PathBuf,
    /// Numbers from the JSON.
    pub summary: JsonSummary,
    /// Per-interval rates written by the load generator, if the JSON has them.
    pub timeline: Option<Vec<TimelinePoint>>,
    /// The interval log, if found and readable.
    pub hlog: Option<HistLog>,
    /// Why something is missing, for the page and stderr.
    pub notes: Vec<String>,
}

fn f64_at(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64).filter(|x| x.is_finite())
}

fn u64_at(v: &Value, key: &str) -> Option<u64> {
    // Accept 12.0 as well as 12: other writers may emit floats for counts.
    let x = v.get(key)?;
    x.as_u64().or_else(|| x.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f.round() as u64))
}

fn str_at(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl JsonSummary {
    /// The fields of a summary object; absent or mistyped keys are `None`.
    pub fn from_value(v: &Value) -> Self {
        let l = v.get("latency_ns").cloned().unwrap_or(Value::Null);
        Self {
            backend: str_at(v, "backend"),
            server: str_at(v, "server"),
            op: str_at(v, "op"),
            payload_bytes: u64_at(v, "payload_bytes"),
            batch: u64_at(v, "batch"),
            reflector: v.get("reflector").and_then(Value::as_bool),
            offered_rps: f64_at(v, "offered_rps"),
            achieved_rps: f64_at(v, "achieved_rps"),
            duration_s: f64_at(v, "duration_s"),
            warmup_s: f64_at(v, "warmup_s"),
            timeout_ms: f64_at(v, "timeout_ms"),
            sent: u64_at(v, "sent"),
            received: u64_at(v, "received"),
            errors: u64_at(v, "errors"),
            timeouts: u64_at(v, "timeouts"),
            latency_ns: JsonLatency {
                count: u64_at(&l, "count"),
                min: f64_at(&l, "min"),
                p50: f64_at(&l, "p50"),
                p90: f64_at(&l, "p90"),
                p99: f64_at(&l, "p99"),
                p999: f64_at(&l, "p999"),
                p9999: f64_at(&l, "p9999"),
                max: f64_at(&l, "max"),
            },
            stopped_early: v.get("stopped_early").and_then(Value::as_bool),
            window_capped: v.get("window_capped").and_then(Value::as_bool),
        }
    }
}

/// The `timeline` array, skipping entries without a start time or a positive length.
pub fn parse_timeline(v: &Value) -> Option<Vec<TimelinePoint>> {
    let arr = v.get("timeline")?.as_array()?;
    let points: Vec<TimelinePoint> = arr
        .iter()
        .filter_map(|e| {
            let t_s = f64_at(e, "t_s")?;
            let seconds = f64_at(e, "seconds").filter(|s| *s > 0.0)?;
            Some(TimelinePoint {
                t_s,
                seconds,
                offered: f64_at(e, "offered"),
                sent: f64_at(e, "sent"),
                answered: f64_at(e, "answered"),
                errors: f64_at(e, "errors"),
                timeouts: f64_at(e, "timeouts"),
            })
        })
        .collect();
    if points.is_empty() {
        None
    } else {
        Some(points)
    }
}

/// Where a run's interval log is: the JSON's `hist_log` (relative to the JSON's directory when
/// relative), else the JSON path with the extension `.hlog`.
pub fn hlog_path_for(json_path: &Path, v: &Value) -> PathBuf {
    match v.get("hist_log").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        Some(p) => {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_owned()
            } else {
                json_path.parent().unwrap_or(Path::new("")).join(p)
            }
        }
        None => json_path.with_extension("hlog"),
    }
}

/// Seconds beyond which an interval timestamp is taken as absolute (since the epoch) rather than
/// relative to the log's start: about a year.
const ABSOLUTE_TIMESTAMP_S: f64 = 3.2e7;

/// Decodes an HdrHistogram interval log (any serializer the crate reads, V2 deflate included).
/// Tagged intervals are left out when untagged ones exist: tags are separate streams.
pub fn read_hlog(path: &Path) -> Result<HistLog> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut start_time = None;
    let mut raw = Vec::new();
    for entry in IntervalLogIterator::new(&bytes) {
        match entry {
            Ok(LogEntry::StartTime(t)) => start_time = Some(t.as_secs_f64()),
            Ok(LogEntry::BaseTime(_)) => {}
            Ok(LogEntry::Interval(h)) => raw.push((
                h.tag().is_some(),
                h.start_timestamp().as_secs_f64(),
                h.duration().as_secs_f64(),
                h.encoded_histogram().to_owned(),
            )),
            Err(e) => bail!("{}: not an interval log ({e:?})", path.display()),
        }
    }
    let any_untagged = raw.iter().any(|r| !r.0);
    let raw: Vec<_> = raw.into_iter().filter(|r| !any_untagged || !r.0).collect();
    // vigil-loadgen writes timestamps relative to the measured phase; other writers may write them
    // since the epoch, which would put every point decades to the right.
    let origin = match raw.first() {
        Some(first) if first.1 > ABSOLUTE_TIMESTAMP_S => start_time.unwrap_or(first.1),
        _ => 0.0,
    };
    let mut de = Deserializer::new();
    let mut merged = Histogram::<u64>::new(3).expect("3 significant figures is valid");
    let mut intervals = Vec::with_capacity(raw.len());
    for (i, (_, start, seconds, b64)) in raw.into_iter().enumerate() {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .with_context(|| format!("{}: interval {i}: bad base64", path.display()))?;
        let hist: Histogram<u64> = de
            .deserialize(&mut decoded.as_slice())
            .map_err(|e| anyhow::anyhow!("{}: interval {i}: {e:?}", path.display()))?;
        merged.add(&hist).map_err(|e| anyhow::anyhow!("{}: interval {i}: {e:?}", path.display()))?;
        intervals.push(Interval { t_s: start - origin, seconds, hist });
    }
    if intervals.is_empty() {
        bail!("{}: no intervals", path.display());
    }
    Ok(HistLog { path: path.to_owned(), intervals, merged })
}

/// Loads the run whose summary is `json_path`, labelled `label` or else by the file's stem.
pub fn load_run(json_path: &Path, label: Option<&str>) -> Result<Run> {
    let text =
        std::fs::read_to_string(json_path).with_context(|| format!("reading {}", json_path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", json_path.display()))?;
    if !v.is_object() {
        bail!("{}: not a vigil-loadgen summary (expected a JSON object)", json_path.display());
    }
    let label = match label {
        Some(l) => l.to_owned(),
        None => {
            json_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into())
        }
    };
    let mut notes = Vec::new();
    let summary = JsonSummary::from_value(&v);
    let timeline = parse_timeline(&v);
    let hlog_path = hlog_path_for(json_path, &v);
    let hlog = if hlog_path.exists() {
        match read_hlog(&hlog_path) {
            Ok(h) => Some(h),
            Err(e) => {
                notes.push(format!("interval log unreadable, plots use the JSON only: {e:#}"));
                None
            }
        }
    } else {
        notes.push(format!(
            "no interval log ({} not found): the spectrum shows the JSON's percentiles, no latency over time{}",
            hlog_path.display(),
            if timeline.is_some() { "" } else { ", the rate is the run's average" }
        ));
        None
    };
    if summary.stopped_early == Some(true) {
        notes.push("stopped early (Ctrl-C)".into());
    }
    if summary.window_capped == Some(true) {
        notes.push("outstanding ring capped: old requests were counted as timeouts early".into());
    }
    if summary.offered_rps.is_none() || summary.achieved_rps.is_none() {
        notes.push("the JSON lacks offered_rps or achieved_rps".into());
    }
    Ok(Run { label, json_path: json_path.to_owned(), summary, timeline, hlog, notes })
}
