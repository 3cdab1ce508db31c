//! The run's summary: built once from a [`RunOutcome`], printed for people and written as JSON for
//! scripts (and the HdrHistogram interval log for plotting).
//!
//! Invariants: the JSON always has the keys scripts rely on (`offered_rps`, `achieved_rps`,
//! `latency_ns` with `p50`/`p90`/`p99`/`p999`/`p9999`/`max`/`mean`, `errors`, `timeouts`, `sent`,
//! `received`, `duration_s`, `batch`, `op`, `backend`), tested below; counts are those of the
//! measured phase (warm-up counts are under `warmup`), so `sent == received + errors + timeouts`;
//! the achieved rate is OK answers that *arrived* inside the measured window divided by its length,
//! which is the server's real throughput even when it cannot keep up with the offered rate.
//! Newer keys: `timeline` (per-interval offered/sent/answered/errors/timeouts, the `.hlog`'s grid),
//! `schedule`, `threads`, `workload`, `hist_log`, `search` (null outside search mode),
//! `malformed_sent`/`malformed_answered` (injected traffic, never in `latency_ns`), `bad_echo` and
//! `not_found` (KV GETs answered `NOT_FOUND`, counted in `received`), `not_leader_redirects`,
//! `not_leader_retries`, `leader_failovers` and `failover_resends` (leader following in a replicated cluster),
//! `refused_datagrams` (whole datagrams refused `AUTH_FAILED`, by reason; their requests are
//! timeouts), `signed` (whether the run signed its datagrams).
//! `offered_rps` stays an integer: the schedule's rate (fixed, Poisson), else the mean offered over
//! the measured phase.

use crate::accounting::{PhaseCounts, TimelineBin, STATUS_SLOTS, UNKNOWN_STATUS_SLOT};
use crate::run::{LoadSpec, RunOutcome};
use crate::search::SearchResult;
use crate::spec::ScheduleSpec;
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
    /// Offered requests per second (the schedule's rate, or its mean over the measured phase).
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
    /// The schedule (as in a workload file).
    pub schedule: ScheduleSpec,
    /// Generator threads.
    pub threads: u32,
    /// The workload file's name, if the run came from one.
    pub workload: Option<String>,
    /// The interval log written (`--hist-log`), if any.
    pub hist_log: Option<String>,
    /// One entry per interval of the measured phase (the `.hlog`'s intervals).
    pub timeline: Vec<TimelinePoint>,
    /// Injected malformed datagrams sent.
    pub malformed_sent: u64,
    /// Answers to injected malformed datagrams, by status name.
    pub malformed_answered: BTreeMap<String, u64>,
    /// OK ECHO answers whose body differed from the one sent (when checked).
    pub bad_echo: u64,
    /// Measured KV GETs answered `NOT_FOUND`: counted in `received`, never in `errors`.
    pub not_found: u64,
    /// Whole datagrams refused `AUTH_FAILED` (any phase), by refusal name.
    pub refused_datagrams: BTreeMap<String, u64>,
    /// The run signed its datagrams (`--credentials`).
    pub signed: bool,
    /// Requests answered `NOT_LEADER` with a leader hint and resent to that leader (their latency
    /// includes the redirect; each still ends as one of received, errors or timeouts).
    pub not_leader_redirects: u64,
    /// Requests answered `NOT_LEADER` without a hint (no leader yet) and resent after a pause.
    pub not_leader_retries: u64,
    /// Nodes given up as leaders after a quarter of the timeout without any answer (a killed or
    /// cut-off leader).
    pub leader_failovers: u64,
    /// Requests waiting on a node given up, resent to the next node.
    pub failover_resends: u64,
    /// The search (search mode only): objective, trials, best rate.
    pub search: Option<SearchResult>,
}

/// One interval of the timeline.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// Start of the interval, seconds from the start of the measured phase.
    pub t_s: f64,
    /// Its length, seconds.
    pub seconds: f64,
    /// The counts.
    #[serde(flatten)]
    pub counts: TimelineBin,
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
        let by_status = |counts: &[u64; STATUS_SLOTS]| {
            let mut m = BTreeMap::new();
            for (slot, &c) in counts.iter().enumerate() {
                if c > 0 {
                    m.insert(status_name(slot).to_owned(), c);
                }
            }
            m
        };
        let errors_by_status = by_status(&a.errors_by_status);
        let offered_rps = match spec.nominal_rate() {
            Some(r) => r.round() as u64,
            None if duration_s > 0.0 => (a.measured.sent as f64 / duration_s).round() as u64,
            None => 0,
        };
        let tl = &a.timeline;
        // Intervals the (possibly stopped-early) measured window reached.
        let reached = usize::try_from(out.measured_ns.div_ceil(tl.width_ns)).unwrap_or(usize::MAX).max(1);
        let timeline = tl
            .bins
            .iter()
            .enumerate()
            .take(reached)
            .map(|(i, b)| {
                let t0 = i as u64 * tl.width_ns;
                let len = tl.width_ns.min(out.measured_ns.saturating_sub(t0)).max(1);
                TimelinePoint { t_s: t0 as f64 / 1e9, seconds: len as f64 / 1e9, counts: *b }
            })
            .collect();
        Self {
            backend: backend.to_owned(),
            server: server.to_owned(),
            op: spec.traffic.name().to_owned(),
            payload_bytes: spec.body_len(),
            batch: spec.batch,
            reflector: spec.reflector,
            offered_rps,
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
            schedule: spec.schedule.clone(),
            threads: out.threads,
            workload: spec.workload.clone(),
            hist_log: None,
            timeline,
            malformed_sent: a.injected.sent,
            malformed_answered: by_status(&a.injected.answered_by_status),
            bad_echo: a.bad_echo,
            not_found: a.not_found,
            refused_datagrams: a
                .refused_datagrams
                .iter()
                .enumerate()
                .filter(|(_, &c)| c > 0)
                .map(|(b, &c)| {
                    let name = u8::try_from(b).ok().and_then(vigil::auth::Refusal::from_u8);
                    (name.map_or("unknown", |r| r.name()).to_owned(), c)
                })
                .collect(),
            signed: spec.credentials.is_some(),
            not_leader_redirects: a.leaders.not_leader_redirects,
            not_leader_retries: a.leaders.not_leader_retries,
            leader_failovers: a.leaders.failovers,
            failover_resends: a.leaders.failover_resends,
            search: None,
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
            if self.op != "ping" { format!(" ({} B body max)", self.payload_bytes) } else { String::new() };
        s += &format!(
            "vigil-loadgen: {} -> {}, {}{}, batch {}{}{}, {:.3} s measured after {:.3} s warm-up{}\n",
            self.backend,
            self.server,
            self.op,
            body,
            self.batch,
            if self.reflector { ", reflector" } else { "" },
            if self.signed { ", signed" } else { "" },
            self.duration_s,
            self.warmup_s,
            if self.stopped_early { " (stopped early)" } else { "" },
        );
        s += &format!(
            "  offered    {:>12} req/s ({}, {} thread{})\n",
            self.offered_rps,
            schedule_name(&self.schedule),
            self.threads,
            if self.threads == 1 { "" } else { "s" }
        );
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
        if self.malformed_sent > 0 || !self.malformed_answered.is_empty() {
            let list: Vec<String> = self.malformed_answered.iter().map(|(k, v)| format!("{k} {v}")).collect();
            s += &format!(
                "  injected malformed: sent {}  answered: {} (not in the latencies above)\n",
                self.malformed_sent,
                if list.is_empty() { "none".to_owned() } else { list.join(", ") }
            );
        }
        if !self.refused_datagrams.is_empty() {
            let list: Vec<String> = self.refused_datagrams.iter().map(|(k, v)| format!("{k} {v}")).collect();
            s += &format!(
                "  datagrams refused AUTH_FAILED: {} (their requests count as timeouts)\n",
                list.join(", ")
            );
        }
        if self.not_found > 0 {
            s += &format!("  GET not found: {} (answered, not errors)\n", self.not_found);
        }
        if self.not_leader_redirects + self.not_leader_retries + self.leader_failovers > 0 {
            s += &format!(
                "  leader following: not_leader_redirects {}  not_leader_retries {}  failovers {} (resent {}; latency includes them)\n",
                self.not_leader_redirects, self.not_leader_retries, self.leader_failovers, self.failover_resends
            );
        }
        if self.bad_echo > 0 {
            s += &format!("  bad echo bodies: {}\n", self.bad_echo);
        }
        let io: Vec<String> = self.io.iter().map(|(name, value)| format!("{name} {value}")).collect();
        s += &format!("  io: {}\n", io.join(" "));
        if let Some(search) = &self.search {
            s += &format!(
                "  search (p99 <= {:.1} us, loss <= {}, achieved >= {:.0}% of offered): {} trials, best {}\n",
                search.objective.p99_ns as f64 / 1e3,
                search.objective.loss_max,
                search.objective.achieved_min_ratio * 100.0,
                search.trials.len(),
                match search.best_rate {
                    Some(r) => format!("{r:.0} req/s (the summary above is that trial's)"),
                    None => "none passed (the summary above is the last trial's)".to_owned(),
                }
            );
        }
        s
    }
}

fn schedule_name(s: &ScheduleSpec) -> String {
    match s {
        ScheduleSpec::Fixed { .. } => "fixed".to_owned(),
        ScheduleSpec::Poisson { seed, .. } => format!("poisson, seed {seed}"),
        ScheduleSpec::Step { steps } => format!("{} steps", steps.len()),
        ScheduleSpec::Ramp { from, to, seconds } => format!("ramp {from}..{to} over {seconds} s"),
        ScheduleSpec::Bursts { requests, within, idle } => {
            format!("bursts of {requests} within {within} s, idle {idle} s")
        }
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
    use vigil_pmd::Nanos;

    fn outcome() -> (LoadSpec, RunOutcome) {
        let spec = LoadSpec {
            duration: Duration::from_millis(100),
            warmup: Duration::ZERO,
            timeout: Duration::from_millis(50),
            burst: 8,
            rx_burst: 8,
            ..LoadSpec::fixed(1000.0)
        };
        let mut a = Accounting::new(Nanos(0), Nanos(0), 100_000_000, 128, 50_000_000, false);
        for k in 1..=100 {
            let intended = Nanos((k - 1) * 1_000_000);
            a.issue(k, intended, intended);
            if k % 10 == 3 {
                a.on_answer(k, Status::Busy as u8, intended);
            } else if k != 100 {
                a.on_answer(k, 0, Nanos(intended.0 + 20_000 + (k - 1) * 1000));
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
            threads: 1,
        };
        (spec, out)
    }

    /// Every status the protocol has (QUOTA_EXCEEDED, the newest, included) is counted and
    /// named on its own, never as UNKNOWN.
    #[test]
    fn every_status_is_counted_and_named_on_its_own() {
        let mut known = 0;
        for byte in 0..=u8::MAX {
            let Some(status) = Status::from_u8(byte) else { continue };
            known += 1;
            let slot = crate::accounting::status_slot(byte);
            assert_eq!(slot, usize::from(byte), "{}", status.name());
            assert_eq!(status_name(slot), status.name());
        }
        assert!(known > 20, "{known} statuses");
        assert_eq!(
            status_name(crate::accounting::status_slot(Status::QuotaExceeded as u8)),
            "QUOTA_EXCEEDED"
        );
        assert_eq!(status_name(UNKNOWN_STATUS_SLOT), "UNKNOWN");
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
        // The newer keys.
        assert_eq!(v["threads"], 1);
        assert_eq!(v["schedule"]["kind"], "fixed");
        assert_eq!(v["schedule"]["rate"], 1000.0);
        assert!(v["workload"].is_null() && v["hist_log"].is_null() && v["search"].is_null());
        let tl = v["timeline"].as_array().unwrap();
        assert_eq!(tl.len(), 1);
        assert_eq!(tl[0]["t_s"], 0.0);
        assert!((tl[0]["seconds"].as_f64().unwrap() - 0.1).abs() < 1e-9);
        assert_eq!(tl[0]["offered"], 100);
        assert_eq!(tl[0]["sent"], 100);
        assert_eq!(tl[0]["answered"], 89);
        assert_eq!(tl[0]["errors"], 10);
        assert_eq!(tl[0]["timeouts"], 1);
        assert_eq!(v["malformed_sent"], 0);
        assert_eq!(v["bad_echo"], 0);
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
