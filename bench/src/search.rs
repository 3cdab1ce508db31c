//! Search mode (RFC 2544 / NDR style): the highest offered rate whose trial meets the objective,
//! by bisection between a minimum and a maximum rate.
//!
//! A trial at rate `r` runs the spec's schedule scaled to `r` (fixed or Poisson) for `trial`
//! seconds (after the spec's warm-up) and passes when its measured-phase p99 latency is at most
//! the objective, its loss `(timeouts + errors) / sent` at most `loss_max`, and its achieved rate
//! at least 99% of the rate it offered. The first trial is at the maximum (done if it passes);
//! then each step halves the interval between the best passing rate (initially the minimum) and
//! the lowest failing one.
//!
//! Invariants: the trial runner is called with a fresh spec each time but the caller keeps one
//! backend for the whole search (EAL initialises once per process); a stop request ends the search
//! after the current trial, keeping what was found; the search is a pure function of the trial
//! outcomes (tested with a fake server of known capacity).

use crate::report::Latency;
use crate::run::{LoadSpec, RunOutcome};
use crate::spec::ScheduleSpec;
use anyhow::{bail, Result};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The achieved rate must be at least this share of the offered one.
pub const ACHIEVED_MIN_RATIO: f64 = 0.99;

/// What the search looks for.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Objective {
    /// Highest acceptable p99 latency, ns.
    pub p99_ns: u64,
    /// Highest acceptable loss, a fraction of the requests sent.
    pub loss_max: f64,
    /// Lowest acceptable achieved / offered.
    pub achieved_min_ratio: f64,
}

/// How to search.
#[derive(Clone, Debug)]
pub struct SearchSpec {
    /// Pass criteria.
    pub objective: Objective,
    /// Lower end of the range (a rate assumed to pass; 0 by default).
    pub min_rate: f64,
    /// Upper end of the range, tried first.
    pub max_rate: f64,
    /// Measured seconds per trial.
    pub trial: Duration,
    /// Bisection steps after the first trial.
    pub steps: u32,
}

/// One trial's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trial {
    /// Offered requests/s.
    pub rate: f64,
    /// OK answers arrived in the window / its length.
    pub achieved_rps: f64,
    /// Measured-phase p99, ns.
    pub p99_ns: u64,
    /// `(timeouts + errors) / sent`.
    pub loss: f64,
    /// It met the objective.
    pub pass: bool,
}

/// The search's result, as the JSON's `search` object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SearchResult {
    /// The pass criteria.
    pub objective: Objective,
    /// Every trial, in the order run.
    pub trials: Vec<Trial>,
    /// The highest passing rate, if any trial passed.
    pub best_rate: Option<f64>,
}

impl Trial {
    /// Judges `out`, a trial offered at `rate`.
    pub fn judge(rate: f64, out: &RunOutcome, objective: &Objective) -> Self {
        let a = &out.accounting;
        let secs = out.measured_ns as f64 / 1e9;
        let achieved_rps = if secs > 0.0 { a.answered_in_window as f64 / secs } else { 0.0 };
        // What this trial actually offered in its window (a Poisson trial offers its rate only on
        // average): the measured phase's requests over its length.
        let offered = if secs > 0.0 { a.measured.sent as f64 / secs } else { rate };
        let m = a.measured;
        let loss = if m.sent == 0 { 1.0 } else { (m.timeouts + m.errors) as f64 / m.sent as f64 };
        let p99_ns = Latency::of(&a.latency).p99;
        let pass = m.sent > 0
            && !a.latency.is_empty()
            && p99_ns <= objective.p99_ns
            && loss <= objective.loss_max
            && achieved_rps >= objective.achieved_min_ratio * offered;
        Self { rate, achieved_rps, p99_ns, loss, pass }
    }
}

/// The spec of a trial at `rate`.
pub fn trial_spec(base: &LoadSpec, s: &SearchSpec, rate: f64) -> Result<LoadSpec> {
    let schedule = match &base.schedule {
        ScheduleSpec::Fixed { .. } => ScheduleSpec::Fixed { rate },
        ScheduleSpec::Poisson { seed, .. } => ScheduleSpec::Poisson { rate, seed: *seed },
        other => bail!("search needs a fixed or poisson schedule, not {other:?}"),
    };
    Ok(LoadSpec { schedule, duration: s.trial, ..base.clone() })
}

/// Runs the search; `run_trial(spec)` runs one trial on the caller's backend. Returns the result
/// and the outcome of the best passing trial (else of the last trial run).
pub fn search(
    base: &LoadSpec,
    s: &SearchSpec,
    stop: &AtomicBool,
    mut run_trial: impl FnMut(&LoadSpec) -> Result<RunOutcome>,
    mut on_trial: impl FnMut(&Trial),
) -> Result<(SearchResult, RunOutcome)> {
    if !(s.max_rate.is_finite() && s.max_rate > 0.0 && s.min_rate >= 0.0 && s.min_rate < s.max_rate) {
        bail!(
            "search range: need 0 <= --search-min-rate < --search-max-rate, got {} .. {}",
            s.min_rate,
            s.max_rate
        );
    }
    let mut trials = Vec::new();
    let mut best: Option<(f64, RunOutcome)> = None;
    let mut last: Option<RunOutcome> = None;
    let (mut lo, mut hi) = (s.min_rate, s.max_rate);
    let mut rate = s.max_rate;
    for step in 0..=s.steps {
        if step > 0 {
            rate = ((lo + hi) / 2.0).round();
            if rate <= lo || rate >= hi {
                break; // the interval is down to a request per second
            }
        }
        let out = run_trial(&trial_spec(base, s, rate)?)?;
        let t = Trial::judge(rate, &out, &s.objective);
        on_trial(&t);
        trials.push(t.clone());
        if t.pass {
            lo = rate;
            best = Some((rate, out));
            if step == 0 {
                break;
            }
        } else {
            hi = rate;
            last = Some(out);
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    let best_rate = best.as_ref().map(|b| b.0);
    let out = match (best, last) {
        (Some((_, o)), _) | (None, Some(o)) => o,
        (None, None) => bail!("the search ran no trial"),
    };
    Ok((SearchResult { objective: s.objective.clone(), trials, best_rate }, out))
}
