//! What load to offer, as data: the schedule of intended send times, the traffic mix, the keys and
//! values, and the malformed traffic to inject. Workload files (`bench/workloads/*.toml`, read by
//! [`crate::workload`]) and command-line flags both produce these types; the generator executes them.
//!
//! Invariants: every type here is plain data with serde support (workload TOML uses the same names,
//! in snake_case); `validate` methods reject what cannot run and name the offending field with its
//! path (`schedule.steps[2].rate`), so a bad workload fails before anything is sent.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A spec that cannot run; nothing was sent.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("workload field `{field}`: {reason}")]
pub struct SpecError {
    /// The field's path, e.g. `schedule.steps[1].rate`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Shorthand for a [`SpecError`].
pub fn spec_error(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError { field: field.into(), reason: reason.into() }
}

/// When requests are meant to be sent. Rates are requests per second; durations are seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleSpec {
    /// Evenly spaced at `rate`.
    Fixed {
        /// Requests per second.
        rate: f64,
    },
    /// A Poisson process of mean `rate` (exponential gaps), from a seeded generator.
    Poisson {
        /// Mean requests per second.
        rate: f64,
        /// Seed of the gap generator (runs are reproducible).
        #[serde(default)]
        seed: u64,
    },
    /// A sequence of fixed rates, each held for its duration.
    Step {
        /// The steps, in order.
        steps: Vec<RateStep>,
    },
    /// A rate changing linearly from `from` to `to` over `seconds`.
    Ramp {
        /// Starting requests per second.
        from: f64,
        /// Final requests per second.
        to: f64,
        /// Length of the ramp.
        seconds: f64,
    },
    /// `requests` requests spread evenly within `within` seconds, then `idle` seconds of silence,
    /// repeated for the run's duration (e.g. 35 000 requests within 20 s, then idle).
    Bursts {
        /// Requests per burst.
        requests: u64,
        /// Length of the sending part of a burst.
        within: f64,
        /// Silence after each burst.
        idle: f64,
    },
}

/// One step of a [`ScheduleSpec::Step`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateStep {
    /// Requests per second.
    pub rate: f64,
    /// How long this rate is held.
    pub seconds: f64,
}

/// Requests per second above which a schedule is refused (beyond any link this generator drives).
pub const RATE_MAX: f64 = 1e9;

fn check_rate(field: &str, rate: f64) -> Result<(), SpecError> {
    if !rate.is_finite() || rate <= 0.0 || rate > RATE_MAX {
        return Err(spec_error(field, format!("{rate} is not a rate in (0, {RATE_MAX}] requests/s")));
    }
    Ok(())
}

fn check_seconds(field: &str, s: f64) -> Result<(), SpecError> {
    if !s.is_finite() || s <= 0.0 || s > 86_400.0 {
        return Err(spec_error(field, format!("{s} is not a duration in (0, 86400] seconds")));
    }
    Ok(())
}

impl ScheduleSpec {
    /// Checks every rate and duration; `path` prefixes field names (e.g. `schedule`).
    pub fn validate(&self, path: &str) -> Result<(), SpecError> {
        match self {
            ScheduleSpec::Fixed { rate } | ScheduleSpec::Poisson { rate, .. } => {
                check_rate(&format!("{path}.rate"), *rate)
            }
            ScheduleSpec::Step { steps } => {
                if steps.is_empty() {
                    return Err(spec_error(format!("{path}.steps"), "needs at least one step"));
                }
                for (i, s) in steps.iter().enumerate() {
                    check_rate(&format!("{path}.steps[{i}].rate"), s.rate)?;
                    check_seconds(&format!("{path}.steps[{i}].seconds"), s.seconds)?;
                }
                Ok(())
            }
            ScheduleSpec::Ramp { from, to, seconds } => {
                check_rate(&format!("{path}.from"), *from)?;
                check_rate(&format!("{path}.to"), *to)?;
                check_seconds(&format!("{path}.seconds"), *seconds)
            }
            ScheduleSpec::Bursts { requests, within, idle } => {
                if *requests == 0 {
                    return Err(spec_error(format!("{path}.requests"), "a burst needs at least one request"));
                }
                check_seconds(&format!("{path}.within"), *within)?;
                check_rate(&format!("{path}.requests"), *requests as f64 / within)?;
                if !idle.is_finite() || *idle < 0.0 {
                    return Err(spec_error(format!("{path}.idle"), format!("{idle} is not a duration >= 0")));
                }
                Ok(())
            }
        }
    }

    /// The highest instantaneous rate the schedule asks for (sizes the outstanding window).
    pub fn peak_rate(&self) -> f64 {
        match self {
            ScheduleSpec::Fixed { rate } | ScheduleSpec::Poisson { rate, .. } => *rate,
            ScheduleSpec::Step { steps } => steps.iter().map(|s| s.rate).fold(0.0, f64::max),
            ScheduleSpec::Ramp { from, to, .. } => from.max(*to),
            ScheduleSpec::Bursts { requests, within, .. } => *requests as f64 / within,
        }
    }
}

/// An operation of the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// PING: empty body.
    Ping,
    /// ECHO: body = key then value, answered unchanged.
    Echo,
    /// KV SET (0x11): the key and a value of the drawn size, encoded by
    /// `vigil::kv::protocol::encode_write_body`. Needs a server with the KV subsystem.
    Set,
    /// KV GET (0x10): the key. `NOT_FOUND` (a key never set) is a normal answer, counted as
    /// `not_found`, not as an error. Needs a server with the KV subsystem.
    Get,
    /// CANDLE_LIGHT (0x30): the client body of a generated candle (docs/CANDLES.md), taken from a
    /// pool the generator fills once at start from `vigil::candle::corpus` (keys and values unused).
    /// `INVALID` and `FULL` are answers counted by status, not crashes. Needs the candle store.
    CandleLight,
    /// CANDLE_GET (0x31): a u64 id, one that an earlier LIGHT of the same run was answered with
    /// (id 0, never issued, until one was). `NOT_FOUND` (an expired or unknown id) is counted as
    /// `not_found`, not as an error, as for KV GET. Needs the candle store.
    CandleGet,
}

/// One operation of the mix with its relative weight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpWeight {
    /// The operation.
    pub op: OpKind,
    /// Relative weight (> 0); weights need not sum to anything.
    pub weight: f64,
}

/// How keys are drawn from `0..count`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyDistribution {
    /// Every key equally likely.
    Uniform,
    /// Zipfian with exponent `s` (> 0; 0.99 is YCSB's default): key rank r has weight 1/r^s.
    Zipfian {
        /// The exponent.
        s: f64,
    },
    /// In order: the key number is the request's sequence number in its thread's run (its id's
    /// low [`crate::run::REQUEST_SEQ_BITS`] bits) modulo `count`, so one thread that sends `count`
    /// requests writes every key exactly once (filling a store: bench/memory-per-key.sh).
    Sequential,
}

/// The key space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// Number of distinct keys.
    pub count: u64,
    /// Bytes per key (the key number, zero-padded, in ASCII).
    pub bytes: usize,
    /// How keys are drawn.
    pub distribution: KeyDistribution,
}

/// A size drawn uniformly from `min..=max` bytes (equal for a fixed size).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizeRange {
    /// Smallest.
    pub min: usize,
    /// Largest.
    pub max: usize,
}

/// A kind of malformed datagram to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MalformedKind {
    /// A valid datagram cut short (inside the header or a frame).
    Truncated,
    /// A valid datagram with random bytes flipped (header or frame fields).
    Corrupted,
    /// A valid datagram with another protocol version.
    WrongVersion,
    /// A datagram claiming more frames, or a longer body, than it holds or the server allows.
    Oversized,
}

/// Malformed traffic sent alongside the valid traffic, reported apart from it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MalformedSpec {
    /// Malformed datagrams per second.
    pub rate: f64,
    /// Kinds to rotate through (all four if empty).
    #[serde(default)]
    pub kinds: Vec<MalformedKind>,
}

impl MalformedSpec {
    /// Checks the rate.
    pub fn validate(&self, path: &str) -> Result<(), SpecError> {
        check_rate(&format!("{path}.rate"), self.rate)
    }

    /// The kinds to rotate through.
    pub fn kinds_or_all(&self) -> Vec<MalformedKind> {
        if self.kinds.is_empty() {
            vec![
                MalformedKind::Truncated,
                MalformedKind::Corrupted,
                MalformedKind::WrongVersion,
                MalformedKind::Oversized,
            ]
        } else {
            self.kinds.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_schedules_name_their_field() {
        let cases = [
            (ScheduleSpec::Fixed { rate: 0.0 }, "schedule.rate"),
            (ScheduleSpec::Poisson { rate: f64::NAN, seed: 1 }, "schedule.rate"),
            (ScheduleSpec::Step { steps: vec![] }, "schedule.steps"),
            (
                ScheduleSpec::Step {
                    steps: vec![RateStep { rate: 10.0, seconds: 1.0 }, RateStep { rate: -1.0, seconds: 1.0 }],
                },
                "schedule.steps[1].rate",
            ),
            (ScheduleSpec::Ramp { from: 1.0, to: 2.0, seconds: 0.0 }, "schedule.seconds"),
            (ScheduleSpec::Bursts { requests: 0, within: 1.0, idle: 1.0 }, "schedule.requests"),
            (ScheduleSpec::Bursts { requests: 10, within: 1.0, idle: -1.0 }, "schedule.idle"),
        ];
        for (spec, field) in cases {
            assert_eq!(spec.validate("schedule").unwrap_err().field, field, "{spec:?}");
        }
        assert!(ScheduleSpec::Bursts { requests: 35_000, within: 20.0, idle: 40.0 }.validate("s").is_ok());
    }

    #[test]
    fn peak_rates() {
        assert_eq!(ScheduleSpec::Ramp { from: 5.0, to: 2.0, seconds: 1.0 }.peak_rate(), 5.0);
        assert_eq!(ScheduleSpec::Bursts { requests: 100, within: 2.0, idle: 9.0 }.peak_rate(), 50.0);
    }
}
