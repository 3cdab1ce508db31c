//! Workloads as data: one TOML file (`bench/workloads/*.toml`) says what load to offer — the
//! schedule, the op mix, keys and values, batching, durations and malformed injection — so a run is
//! described by a file that can be reviewed, versioned and replayed, not by a long command line.
//!
//! Invariants: [`parse`] and [`load`] return only workloads that passed [`Workload::validate`], so
//! a bad file fails before anything is sent; every error is a [`SpecError`] naming the offending
//! field by its path (`schedule.steps[1].rate`, `ops[0].op`, `batch`), whether TOML, serde or a
//! range check found it; unknown keys are errors, never ignored (a typo must not silently fall back
//! to a default).

use crate::spec::{spec_error, KeySpec, MalformedSpec, OpWeight, ScheduleSpec, SizeRange, SpecError};
use crate::traffic::TrafficGen;
use serde::Deserialize;
use std::path::Path;
use vigil::wire::{FRAME_HEADER_LEN, HEADER_LEN};

/// Largest request datagram a workload may build: the server's default `net.datagram_bytes_max`
/// (one 1500-byte MTU frame less the IPv4 and UDP headers).
pub const DATAGRAM_BYTES_MAX: usize = 1472;
/// Most requests per datagram a workload may ask for.
pub const BATCH_MAX: u32 = 1024;
/// Longest per-request timeout, in milliseconds.
pub const TIMEOUT_MS_MAX: u64 = 60_000;

/// A workload file's contents.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Short name, used in reports.
    pub name: String,
    /// What the workload is for.
    pub description: Option<String>,
    /// When requests are meant to be sent.
    pub schedule: ScheduleSpec,
    /// The operation mix.
    pub ops: Vec<OpWeight>,
    /// The key space (ECHO bodies start with a key).
    pub keys: KeySpec,
    /// ECHO value sizes, in bytes.
    pub values: SizeRange,
    /// Requests per datagram (default 1).
    #[serde(default = "default_batch")]
    pub batch: u32,
    /// Measured phase length, in seconds.
    pub duration_s: f64,
    /// Warm-up before it, sent but not latency-recorded, in seconds (default 1).
    #[serde(default = "default_warmup_s")]
    pub warmup_s: f64,
    /// A request not answered within this (of its intended send time) is a timeout (default 1000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Malformed datagrams to inject beside the valid traffic (none by default).
    pub malformed: Option<MalformedSpec>,
    /// Seed of every draw of the traffic (default 1): the same seed sends the same requests.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_batch() -> u32 {
    1
}

fn default_warmup_s() -> f64 {
    1.0
}

fn default_timeout_ms() -> u64 {
    1000
}

fn default_seed() -> u64 {
    1
}

impl Workload {
    /// Checks everything a run needs, naming the first bad field: the schedule, the traffic mix
    /// (via [`TrafficGen::new`]), the malformed spec, `batch` in 1..=1024, `duration_s > 0`,
    /// `warmup_s >= 0`, `timeout_ms` in 1..=60000, and that a full datagram of the largest bodies
    /// fits [`DATAGRAM_BYTES_MAX`] (`values.max` if even one request does not, else `batch`).
    pub fn validate(&self) -> Result<(), SpecError> {
        self.schedule.validate("schedule")?;
        let traffic = TrafficGen::new(&self.ops, &self.keys, self.values, self.seed)?;
        if let Some(m) = &self.malformed {
            m.validate("malformed")?;
        }
        if self.batch == 0 || self.batch > BATCH_MAX {
            return Err(spec_error("batch", format!("{} is not in 1..={BATCH_MAX}", self.batch)));
        }
        if !self.duration_s.is_finite() || self.duration_s <= 0.0 || self.duration_s > 86_400.0 {
            return Err(spec_error(
                "duration_s",
                format!("{} is not a duration in (0, 86400] seconds", self.duration_s),
            ));
        }
        if !self.warmup_s.is_finite() || self.warmup_s < 0.0 || self.warmup_s > 86_400.0 {
            return Err(spec_error(
                "warmup_s",
                format!("{} is not a duration in [0, 86400] seconds", self.warmup_s),
            ));
        }
        if self.timeout_ms == 0 || self.timeout_ms > TIMEOUT_MS_MAX {
            return Err(spec_error(
                "timeout_ms",
                format!("{} is not in 1..={TIMEOUT_MS_MAX}", self.timeout_ms),
            ));
        }
        let frame_max = FRAME_HEADER_LEN + traffic.body_bytes_max();
        if HEADER_LEN + frame_max > DATAGRAM_BYTES_MAX {
            return Err(spec_error(
                "values.max",
                format!(
                    "a request of {} body bytes (key {} + value {}) does not fit a \
                     {DATAGRAM_BYTES_MAX}-byte datagram",
                    traffic.body_bytes_max(),
                    self.keys.bytes,
                    self.values.max
                ),
            ));
        }
        let datagram_max = HEADER_LEN + self.batch as usize * frame_max;
        if datagram_max > DATAGRAM_BYTES_MAX {
            return Err(spec_error(
                "batch",
                format!(
                    "{} requests of up to {} body bytes need {datagram_max} bytes; a datagram holds \
                     {DATAGRAM_BYTES_MAX} (at most {} such requests)",
                    self.batch,
                    traffic.body_bytes_max(),
                    (DATAGRAM_BYTES_MAX - HEADER_LEN) / frame_max
                ),
            ));
        }
        Ok(())
    }

    /// The traffic generator for this workload's mix (already validated by [`parse`]/[`load`]).
    pub fn traffic(&self) -> Result<TrafficGen, SpecError> {
        TrafficGen::new(&self.ops, &self.keys, self.values, self.seed)
    }
}

/// Fields holding an internally tagged enum: an unknown `kind` there is reported as `<field>.kind`
/// (serde reports the enum itself, which would not say which key to fix).
const TAGGED_FIELDS: [&str; 2] = ["schedule", "keys.distribution"];

/// Parses a workload from TOML and validates it. A TOML or serde error becomes a [`SpecError`]
/// whose field is the path serde was at (`ops[1].op`; the key itself for unknown and missing keys;
/// `<toml>` for a syntax error) and whose reason is the message, with its line where known.
pub fn parse(text: &str) -> Result<Workload, SpecError> {
    let workload: Workload =
        serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| serde_error(text, &e))?;
    workload.validate()?;
    Ok(workload)
}

/// Reads and parses a workload file; a file that cannot be read is an error on field `<file>`.
pub fn load(path: &Path) -> Result<Workload, SpecError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| spec_error("<file>", format!("cannot read {}: {e}", path.display())))?;
    parse(&text).map_err(|e| SpecError { reason: format!("{} ({})", e.reason, path.display()), ..e })
}

fn serde_error(text: &str, e: &serde_path_to_error::Error<toml::de::Error>) -> SpecError {
    let inner = e.inner();
    let message = inner.message().trim_end();
    let path = e.path().to_string();
    let mut field = if path == "." { String::new() } else { path };
    // Unknown and missing keys are reported at their parent; name the key itself.
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    if let Some(key) = named {
        // serde_path_to_error already ends the path with an unknown key, not with a missing one.
        if field.is_empty() {
            field = key.to_string();
        } else if field.rsplit('.').next() != Some(key) {
            field = format!("{field}.{key}");
        }
    } else if message.starts_with("unknown variant") && TAGGED_FIELDS.contains(&field.as_str()) {
        field.push_str(".kind");
    }
    if field.is_empty() {
        field = "<toml>".to_string();
    }
    let reason = match inner.span() {
        Some(span) => {
            let line = 1 + text[..span.start.min(text.len())].matches('\n').count();
            format!("{message} (line {line})")
        }
        None => message.to_string(),
    };
    spec_error(field, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{KeyDistribution, OpKind};

    const MINIMAL: &str = r#"
        name = "m"
        duration_s = 5
        ops = [{ op = "ping", weight = 1 }]
        keys = { count = 10, bytes = 8, distribution = { kind = "uniform" } }
        values = { min = 0, max = 0 }
        [schedule]
        kind = "fixed"
        rate = 1000
    "#;

    #[test]
    fn defaults_fill_what_is_left_out() {
        let w = parse(MINIMAL).unwrap();
        assert_eq!(w.batch, 1);
        assert_eq!(w.warmup_s, 1.0);
        assert_eq!(w.timeout_ms, 1000);
        assert_eq!(w.seed, 1);
        assert_eq!(w.malformed, None);
        assert_eq!(w.description, None);
        assert_eq!(w.schedule, ScheduleSpec::Fixed { rate: 1000.0 });
        assert_eq!(w.ops, vec![OpWeight { op: OpKind::Ping, weight: 1.0 }]);
        assert_eq!(w.keys.distribution, KeyDistribution::Uniform);
    }

    #[test]
    fn syntax_errors_say_where() {
        let e = parse("name = \n").unwrap_err();
        assert_eq!(e.field, "<toml>");
        assert!(e.reason.contains("line 1"), "{}", e.reason);
    }

    #[test]
    fn a_missing_file_is_a_file_error() {
        let e = load(Path::new("/nonexistent/workload.toml")).unwrap_err();
        assert_eq!(e.field, "<file>");
    }
}
