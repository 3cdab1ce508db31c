//! The run's summary: built once from a [`RunOutcome`], printed for people and written as JSON for
//! scripts (and the HdrHistogram interval log for plotting).
//!
//! Invariants: the JSON always has the keys scripts rely on (`offered_rps`, `achieved_rps`,
//! `latency_ns` with `p50`/`p90`/`p99`/`p999`/`p9999`/`max`/`mean`, `errors`, `timeouts`, `sent`,
//! `received`, `duration_s`, `batch`, `op`, `backend`), tested below; counts are those of the
//! measured phase (warm-up counts are under `warmup`), so `sent == received + errors + timeouts`;
//! the achieved rate is OK answers that *arrived* inside the measured window divided by its length,
//! which is the server's real throughput even when it cannot keep up with the offered rate.

use crate::accounting::{PhaseCounts, STATUS_SLOTS, UNKNOWN_STATUS_SLOT};
use crate::run::{LoadSpec, RunOutcome};
use anyhow::{Context, Result};
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;
use vigil::wire::Status;

/// Latency percentiles in nanoseconds (all 0 when nothing was recorded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Latencies recorded.
    pub count: u64,
    /// Smallest.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// 99.99th percentile.
    pub p9999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    /// Percentiles of `h`.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            min: h.min(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// Warm-up or measured-phase counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Phase {
    /// Requests sent.
    pub sent: u64,
    /// OK answers within the timeout.
    pub received: u64,
    /// Non-OK answers.
    pub errors: u64,
    /// Unanswered within the timeout.
    pub timeouts: u64,
}

impl From<PhaseCounts> for Phase {
    fn from(p: PhaseCounts) -> Self {
        Self { sent: p.sent, received: p.received, errors: p.errors, timeouts: p.timeouts }
    }
}

/// The backend's counters by name (`IoCounters::named`), as JSON.
pub type Io = BTreeMap<&'static str, u64>;

/// Everything a run reports.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// `kernel` or `dpdk`.
    pub backend: String,
    /// Server address.
    pub server: String,
    /// `ping` or `echo`.
    pub op: String,
    /// Echo body bytes (0 for ping).
    pub payload_bytes: usize,
    /// Requests per datagram.
    pub batch: u32,
    /// Answers accepted were request frames reflected unchanged (testpmd baseline).
    pub reflector: bool,
    /// Offered requests per second.
    pub offered_rps: u64,
    /// OK answers arrived in the measured window / its length.
    pub achieved_rps: f64,
    /// Measured window actually run, seconds.
    pub duration_s: f64,
    /// Warm-up asked for, seconds.
    pub warmup_s: f64,
    /// Timeout, milliseconds.
    pub timeout_ms: u64,
    /// Measured-phase requests sent.
    pub sent: u64,
    /// Measured-phase OK answers.
    pub received: u64,
    /// Measured-phase non-OK answers.
    pub errors: u64,
    /// Measured-phase errors by status name.
    pub errors_by_status: BTreeMap<String, u64>,
    /// Measured-phase timeouts.
    pub timeouts: u64,
    /// Answers nobody waited for (duplicates, unknown ids, answers after eviction).
    pub unexpected: u64,
    /// Datagrams that did not decode or were not responses.
    pub malformed: u64,
    /// Latency of the measured phase's OK answers, from intended send time.
    pub latency_ns: Latency,
    /// Warm-up counts.
    pub warmup: Phase,
    /// Worst lateness of the sender against the schedule, ns (high: the generator could not keep
    /// up and its lateness is in the latencies).
    pub send_lag_max_ns: u64,
    /// Datagrams built.
    pub datagrams: u64,
    /// Datagrams built but never accepted by the backend.
    pub datagrams_unsent: u64,
    /// Outstanding-ring slots.
    pub window: u64,
    /// The ring was smaller than rate x timeout (old requests timed out early).
    pub window_capped: bool,
    /// Ctrl-C ended the run early.
    pub stopped_early: bool,
    /// Backend counters.
    pub io: Io,
}

fn status_name(slot: usize) -> &'static str {
    match u8::try_from(slot).ok().and_then(Status::from_u8) {
        Some(s) if slot != UNKNOWN_STATUS_SLOT => s.name(),
        _ => "UNKNOWN",
    }
}

impl Summary {
    /// The summary of `out`, run with `spec` on `backend` against `server`.
    pub fn new(backend: &str, server: &str, spec: &LoadSpec, out: &RunOutcome) -> Self {
        let a = &out.accounting;
        let duration_s = out.measured_ns as f64 / 1e9;
        let achieved_rps = if out.measured_ns == 0 { 0.0 } else { a.answered_in_window as f64 / duration_s };
        let mut errors_by_status = BTreeMap::new();
        for slot in 0..STATUS_SLOTS {
            if a.errors_by_status[slot] > 0 {
                errors_by_status.insert(status_name(slot).to_owned(), a.errors_by_status[slot]);
            }
        }
        Self {
            backend: backend.to_owned(),
            server: server.to_owned(),
            op: spec.op.name().to_owned(),
            payload_bytes: spec.body_len(),
            batch: spec.batch,
            reflector: spec.reflector,
            offered_rps: spec.rate,
            achieved_rps,
            duration_s,
            warmup_s: spec.warmup.as_secs_f64(),
            timeout_ms: u64::try_from(spec.timeout.as_millis()).unwrap_or(u64::MAX),
            sent: a.measured.sent,
            received: a.measured.received,
            errors: a.measured.errors,
            errors_by_status,
            timeouts: a.measured.timeouts,
            unexpected: a.unexpected,
            malformed: a.malformed,
            latency_ns: Latency::of(&a.latency),
            warmup: a.warmup.into(),
            send_lag_max_ns: out.send_lag_max_ns,
            datagrams: out.datagrams,
            datagrams_unsent: out.datagrams_unsent,
            window: out.window,
            window_capped: out.window_capped,
            stopped_early: out.stopped_early,
            io: out.io.named().into_iter().collect(),
        }
    }

    /// The summary as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a summary always serialises")
    }

    /// Writes the JSON summary to `path`.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let mut s = self.to_json();
        s.push('\n');
        std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
    }

    /// The human-readable summary.
    pub fn render(&self) -> String {
        let us = |ns: u64| ns as f64 / 1e3;
        let l = &self.latency_ns;
        let mut s = String::new();
        let body =
            if self.op == "echo" { format!(" ({} B body)", self.payload_bytes) } else { String::new() };
        s += &format!(
            "vigil-loadgen: {} -> {}, {}{}, batch {}{}, {:.3} s measured after {:.3} s warm-up{}\n",
            self.backend,
            self.server,
            self.op,
            body,
            self.batch,
            if self.reflector { ", reflector" } else { "" },
            self.duration_s,
            self.warmup_s,
            if self.stopped_early { " (stopped early)" } else { "" },
        );
        s += &format!("  offered    {:>12} req/s\n", self.offered_rps);
        s += &format!("  achieved   {:>14.1} req/s\n", self.achieved_rps);
        s += &format!(
            "  sent {}  received {}  errors {}  timeouts {}  unexpected {}  malformed {}\n",
            self.sent, self.received, self.errors, self.timeouts, self.unexpected, self.malformed
        );
        if !self.errors_by_status.is_empty() {
            let list: Vec<String> = self.errors_by_status.iter().map(|(k, v)| format!("{k} {v}")).collect();
            s += &format!("  errors by status: {}\n", list.join(", "));
        }
        s += &format!(
            "  latency us: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  p99.99 {:.1}  max {:.1}  \
             mean {:.1}  ({} samples)\n",
            us(l.p50),
            us(l.p90),
            us(l.p99),
            us(l.p999),
            us(l.p9999),
            us(l.max),
            l.mean / 1e3,
            l.count
        );
        s += &format!(
            "  warm-up: sent {} received {} errors {} timeouts {}; sender lag max {:.1} us; \
             datagrams {} (unsent {})\n",
            self.warmup.sent,
            self.warmup.received,
            self.warmup.errors,
            self.warmup.timeouts,
            us(self.send_lag_max_ns),
            self.datagrams,
            self.datagrams_unsent
        );
        if self.window_capped {
            s += &format!(
                "  note: outstanding ring capped at {} slots: \
                 requests older than {:.3} s counted as timeouts\n",
                self.window,
                self.window as f64 / self.offered_rps as f64
            );
        }
        let io: Vec<String> = self.io.iter().map(|(name, value)| format!("{name} {value}")).collect();
        s += &format!("  io: {}\n", io.join(" "));
        s
    }
}

/// Writes the interval histograms of the measured phase as an HdrHistogram interval log (one
/// interval per second of intended send time, wider on runs over 600 s; plot with HdrHistogram's log tools).
pub fn write_interval_log(path: &Path, out: &RunOutcome) -> Result<()> {
    let Some(iv) = &out.accounting.intervals else {
        return Ok(());
    };
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut serializer = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment("vigil-loadgen latency, ns, by intended send time; interval 0 starts after the warm-up")
        .with_max_value_divisor(1e6)
        .begin_log_with(&mut file, &mut serializer)
        .context("starting the interval log")?;
    let width = Duration::from_nanos(iv.width_ns);
    let intervals = usize::try_from(out.measured_ns.div_ceil(iv.width_ns)).unwrap_or(usize::MAX);
    for (i, h) in iv.hists.iter().enumerate().take(intervals.max(1)) {
        log.write_histogram(h, width * i as u32, width, None)
            .map_err(|e| anyhow::anyhow!("writing the interval log: {e:?}"))?;
    }
    drop(log);
    file.flush().with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::Accounting;
    use crate::rate::Schedule;
    use crate::run::Op;
    use vigil_pmd::Nanos;

    fn outcome() -> (LoadSpec, RunOutcome) {
        let spec = LoadSpec {
            rate: 1000,
            duration: Duration::from_millis(100),
            warmup: Duration::ZERO,
            op: Op::Ping,
            payload_bytes: 0,
            batch: 1,
            timeout: Duration::from_millis(50),
            burst: 8,
            rx_burst: 8,
            reflector: false,
            client_id: 1,
            interval_log: false,
        };
        let s = Schedule::new(Nanos(0), 1000, 1, 0, 100_000_000);
        let mut a = Accounting::new(s, 128, 50_000_000, false);
        a.set_measure_end(Nanos(100_000_000));
        for k in 0..100 {
            a.issue(k);
            if k % 10 == 3 {
                a.on_answer(k, Status::Busy as u8, s.intended(k));
            } else if k != 99 {
                a.on_answer(k, 0, Nanos(s.intended(k).0 + 20_000 + k * 1000));
            }
        }
        a.finish();
        let out = RunOutcome {
            accounting: a,
            io: vigil_pmd::IoCounters::default(),
            measured_ns: 100_000_000,
            stopped_early: false,
            window: 128,
            window_capped: false,
            send_lag_max_ns: 0,
            datagrams: 100,
            datagrams_unsent: 0,
        };
        (spec, out)
    }

    #[test]
    fn json_has_the_keys_scripts_rely_on() {
        let (spec, out) = outcome();
        let sum = Summary::new("kernel", "127.0.0.1:9000", &spec, &out);
        let v: serde_json::Value = serde_json::from_str(&sum.to_json()).unwrap();
        for key in [
            "offered_rps",
            "achieved_rps",
            "latency_ns",
            "errors",
            "timeouts",
            "sent",
            "received",
            "duration_s",
            "batch",
            "op",
            "backend",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        for key in ["p50", "p90", "p99", "p999", "p9999", "max", "mean"] {
            assert!(v["latency_ns"].get(key).is_some(), "missing latency_ns.{key}");
        }
        assert_eq!(v["op"], "ping");
        assert_eq!(v["backend"], "kernel");
        assert_eq!(v["errors"], 10);
        assert_eq!(v["errors_by_status"]["BUSY"], 10);
        assert_eq!(v["timeouts"], 1);
        assert_eq!(v["received"], 89);
        assert_eq!(v["sent"], 100);
        assert!((v["achieved_rps"].as_f64().unwrap() - 890.0).abs() < 1e-6);
        let p50 = v["latency_ns"]["p50"].as_u64().unwrap();
        assert!((60_000..=80_000).contains(&p50), "{p50}");
        assert!(sum.render().contains("timeouts 1"));
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        assert_eq!(Latency::of(&crate::accounting::new_histogram()), Latency::default());
    }

    #[test]
    fn status_names_follow_the_protocol() {
        assert_eq!(status_name(Status::Busy as usize), "BUSY");
        assert_eq!(status_name(UNKNOWN_STATUS_SLOT), "UNKNOWN");
    }
}
