//! The command line: every flag, its default and its help text, and the conversion into a
//! [`LoadSpec`] (and, in search mode, a [`SearchSpec`]).
//!
//! A run is described either by flags (`--rate`, `--schedule`, `--op`, ...) or by a workload file
//! (`--workload`), whose values flags given explicitly override (`--duration`, `--warmup`,
//! `--timeout-ms`, `--batch`, `--rate` for a fixed or Poisson schedule, `--seed`).
//!
//! Invariants: everything a run needs is validated here or in [`LoadSpec::validate`] before any
//! backend starts (a bad flag never leaves a half-initialised EAL behind); durations are given in
//! (fractional) seconds and must be finite and non-negative.

use crate::run::{LoadSpec, Op, TrafficSpec};
use crate::search::{Objective, SearchSpec, ACHIEVED_MIN_RATIO};
use crate::spec::{KeyDistribution, MalformedKind, MalformedSpec, RateStep, ScheduleSpec};
use anyhow::{bail, Context, Result};
use clap::{ArgAction, Parser, ValueEnum};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;
use vigil_pmd::Peer;

/// Which packet backend carries the requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// Kernel UDP socket (recvmmsg/sendmmsg); needs nothing special.
    Kernel,
    /// DPDK ethdev queue (memif, tap, af_packet, ...); needs the `dpdk` build feature.
    Dpdk,
}

impl BackendKind {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Kernel => "kernel",
            BackendKind::Dpdk => "dpdk",
        }
    }
}

/// The schedule kinds the command line can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScheduleKind {
    /// Evenly spaced at --rate.
    Fixed,
    /// Poisson arrivals of mean --rate (exponential gaps, seeded by --seed).
    Poisson,
    /// Fixed rates held in turn: --steps RATE:SECONDS,RATE:SECONDS,...
    Step,
    /// A linear ramp: --ramp FROM:TO:SECONDS.
    Ramp,
    /// Bursts: --bursts REQUESTS:WITHIN:IDLE (REQUESTS evenly within WITHIN s, then IDLE s).
    Bursts,
}

/// The order of the keys the KV ops write and read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeyOrder {
    /// Drawn uniformly from `0..--keys`.
    Uniform,
    /// Request i of a thread's run carries key i modulo --keys: one thread sending --keys
    /// requests writes every key exactly once (to fill a store).
    Sequential,
}

/// An Ethernet address written `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl std::str::FromStr for Mac {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(format!("{s:?} is not a MAC address like 02:00:00:00:00:01"));
        }
        let mut mac = [0u8; 6];
        for (b, p) in mac.iter_mut().zip(parts) {
            *b = u8::from_str_radix(p, 16).map_err(|_| format!("{s:?}: bad byte {p:?}"))?;
        }
        Ok(Mac(mac))
    }
}

/// Open-loop UDP load generator for Vigil's binary protocol v1.
///
/// Offers `--rate` requests per second on a fixed schedule that never waits for answers, and
/// measures each answer's latency from the request's *intended* send time (no coordinated
/// omission): a stalled server or a generator that falls behind shows up as latency, not as a
/// quietly lower rate. Prints p50/p90/p99/p99.9/p99.99/max, offered vs achieved rate, errors and
/// timeouts; `--json` writes the same for scripts. Ctrl-C stops early and still reports (twice:
/// exit at once).
#[derive(Parser, Debug, Clone)]
#[command(name = "vigil-loadgen", version, about, long_about)]
pub struct Cli {
    /// Packet backend.
    #[arg(long, value_enum, default_value_t = BackendKind::Kernel)]
    pub backend: BackendKind,

    /// Server address (IPv4:port). With DPDK, its MAC is resolved by ARP unless --server-mac.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub server: SocketAddrV4,

    /// The nodes of a replicated cluster, `IP:PORT,IP:PORT,...` (or `--target IP:PORT` repeated):
    /// the first is the seed (instead of --server), each request goes to its key's partition
    /// leader once a NOT_LEADER hint named it, and a node silent for a timeout is left for the
    /// next. With DPDK, every node's MAC is resolved by ARP.
    #[arg(long, alias = "target", value_delimiter = ',')]
    pub cluster: Vec<SocketAddrV4>,

    /// Offered load, requests per second (open loop); the mean rate with --schedule poisson.
    /// Needed for fixed and poisson, unless a --workload gives it.
    #[arg(long)]
    pub rate: Option<f64>,

    /// Schedule of intended send times.
    #[arg(long, value_enum, default_value_t = ScheduleKind::Fixed)]
    pub schedule: ScheduleKind,

    /// --schedule step: `RATE:SECONDS,RATE:SECONDS,...` (the last rate is held after the last step).
    #[arg(long)]
    pub steps: Option<String>,

    /// --schedule ramp: `FROM:TO:SECONDS` (requests/s; `TO` is held after the ramp).
    #[arg(long)]
    pub ramp: Option<String>,

    /// --schedule bursts: `REQUESTS:WITHIN:IDLE` (REQUESTS evenly within WITHIN s, then IDLE s).
    #[arg(long)]
    pub bursts: Option<String>,

    /// Seed of the Poisson gaps and of the traffic's draws.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Run a workload file (bench/workloads/*.toml); flags given explicitly override its values.
    #[arg(long)]
    pub workload: Option<PathBuf>,

    /// Measured phase, seconds (fractions allowed) [default: 10].
    #[arg(long)]
    pub duration: Option<f64>,

    /// Warm-up before the measured phase, seconds: sent at the schedule's initial rate, latencies
    /// not recorded [default: 1].
    #[arg(long)]
    pub warmup: Option<f64>,

    /// Operation each request carries. set, get and kv are KV requests: the server must run the
    /// KV subsystem (a server without it answers UNKNOWN_OPCODE). kv mixes GET and SET by
    /// --read-ratio, e.g. `--op kv --read-ratio 0.9 --keys 100000 --value-bytes 100`; a GET of a key
    /// never set is answered NOT_FOUND, reported as `not_found`, not as an error.
    #[arg(long, value_enum, default_value_t = Op::Ping)]
    pub op: Op,

    /// ECHO body size in bytes (ignored for ping and the KV ops).
    #[arg(long, default_value_t = 64)]
    pub payload_bytes: usize,

    /// --op kv: the share of GETs, in [0, 1] (the rest are SETs) [default: 0.9].
    #[arg(long)]
    pub read_ratio: Option<f64>,

    /// --op set|get|kv: distinct keys, drawn uniformly (16-byte zero-padded decimal keys)
    /// [default: 100000].
    #[arg(long)]
    pub keys: Option<u64>,

    /// --op set|get|kv: the order of the keys [default: uniform].
    #[arg(long, value_enum)]
    pub key_order: Option<KeyOrder>,

    /// --op set|kv: bytes of each SET's value [default: 100].
    #[arg(long)]
    pub value_bytes: Option<usize>,

    /// Requests per datagram; all requests of a datagram share its intended send time [default: 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub batch: Option<u32>,

    /// A request not answered within this many ms of its intended send time is a timeout
    /// [default: 1000].
    #[arg(long)]
    pub timeout_ms: Option<u64>,

    /// Inject this many malformed datagrams per second beside the valid traffic (counted apart).
    #[arg(long)]
    pub malformed_rate: Option<f64>,

    /// Kinds of malformed datagrams to inject, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_parser = parse_malformed_kind)]
    pub malformed_kinds: Vec<MalformedKind>,

    /// The server's requests-per-datagram limit (`net.requests_per_datagram_max`): oversized
    /// malformed datagrams exceed it.
    #[arg(long, default_value_t = 64)]
    pub server_requests_max: u16,

    /// Check every OK ECHO answer's body against the one sent (mismatches: `bad_echo`).
    #[arg(long)]
    pub check_echo: bool,

    /// Generator threads, each with its own socket (kernel) or queue pair (DPDK) and a 1/N share
    /// of the schedule.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: u32,

    /// Pin generator thread i to the i-th of these CPUs (comma-separated, one per thread).
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,

    /// No progress line on stderr.
    #[arg(long, short)]
    pub quiet: bool,

    /// Search mode: bisect over the offered rate for the highest rate whose trial has p99 at most
    /// this many microseconds (and loss <= --search-loss-max, achieved >= 99% of offered).
    #[arg(long, help_heading = "Search")]
    pub search_p99_us: Option<f64>,

    /// Search: highest tolerated loss, (timeouts + errors) / sent.
    #[arg(long, help_heading = "Search", default_value_t = 0.001)]
    pub search_loss_max: f64,

    /// Search: lower end of the range (requests/s).
    #[arg(long, help_heading = "Search", default_value_t = 0.0)]
    pub search_min_rate: f64,

    /// Search: upper end of the range, tried first (default: --rate).
    #[arg(long, help_heading = "Search")]
    pub search_max_rate: Option<f64>,

    /// Search: measured seconds per trial (each after --warmup).
    #[arg(long, help_heading = "Search", default_value_t = 2.0)]
    pub search_trial_s: f64,

    /// Search: bisection steps after the first trial.
    #[arg(long, help_heading = "Search", default_value_t = 7)]
    pub search_steps: u32,

    /// Most datagrams sent per loop iteration (bounds how long receiving can be starved when the
    /// sender is behind).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=512))]
    pub burst: u32,

    /// Write the summary as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Write per-second latency histograms of the measured phase (HdrHistogram interval log) here
    /// (wider intervals on runs over 600 s).
    #[arg(long)]
    pub hist_log: Option<PathBuf>,

    /// Pin the generator thread to this CPU (with DPDK: also the EAL main lcore); with --threads N
    /// and no --cores, threads go to this CPU and the next N - 1.
    #[arg(long)]
    pub core: Option<usize>,

    /// Accept the request frames themselves coming back as answers (baseline against
    /// `dpdk-testpmd --forward-mode=5tswap`, which reflects requests unchanged).
    #[arg(long)]
    pub reflector: bool,

    /// Client id base (default: the process id): each generator thread and trial sends as a
    /// client of its own, this id with its thread and trial mixed into the low bits. With
    /// --credentials: the first of the run's client ids (threads x trials of them, consecutive,
    /// inside the key's range; default: a slice of the range chosen by the process id).
    #[arg(long)]
    pub client_id: Option<u64>,

    /// Sign every datagram (docs/PROTOCOL.md, "Authentication") with the key of this file: the
    /// node's `[[auth.clients]]` entry for the load generator, copied from its config (`key_id`,
    /// `key`, `client_id`, `client_ids`; the fields alone or under `[[auth.clients]]`). Each
    /// thread and search trial takes a client id of the key's range.
    #[arg(long)]
    pub credentials: Option<PathBuf>,

    /// DPDK: a virtual device, e.g. `net_memif0,role=client,socket=/tmp/vigil-memif.sock`
    /// (repeatable). The first one's name is the port used unless --port.
    #[arg(long, help_heading = "DPDK")]
    pub vdev: Vec<String>,

    /// DPDK: the ethdev name to use (default: the first --vdev's name, else port 0).
    #[arg(long, help_heading = "DPDK")]
    pub port: Option<String>,

    /// DPDK: EAL runtime-directory prefix (default `vigil-loadgen-<pid>`).
    #[arg(long, help_heading = "DPDK")]
    pub file_prefix: Option<String>,

    /// DPDK: run without hugepages (`--no-huge false` to use them).
    #[arg(long, help_heading = "DPDK", default_value_t = true, action = ArgAction::Set)]
    pub no_huge: bool,

    /// DPDK: EAL memory in MiB (`-m`).
    #[arg(long, help_heading = "DPDK", default_value_t = 256)]
    pub memory_mb: u32,

    /// DPDK: mbufs in the pool (best 2^n - 1).
    #[arg(long, help_heading = "DPDK", default_value_t = 8191)]
    pub mbufs: u32,

    /// DPDK: our IPv4 address on the port.
    #[arg(long, help_heading = "DPDK", default_value = "10.0.0.2")]
    pub local_ip: Ipv4Addr,

    /// DPDK: our UDP port.
    #[arg(long, help_heading = "DPDK", default_value_t = 40000)]
    pub local_port: u16,

    /// DPDK: the server's MAC; skips ARP (needed with --reflector against testpmd, which answers
    /// no ARP; without it a reflector run uses the broadcast address).
    #[arg(long, help_heading = "DPDK")]
    pub server_mac: Option<Mac>,

    /// DPDK: seconds to wait for the link to come up.
    #[arg(long, help_heading = "DPDK", default_value_t = 10.0)]
    pub link_timeout: f64,

    /// DPDK: seconds to keep asking the server's MAC by ARP (every 100 ms) before giving up.
    #[arg(long, help_heading = "DPDK", default_value_t = 5.0)]
    pub arp_timeout: f64,

    /// DPDK: EAL log level (e.g. `warning`, `lib.eal:debug`).
    #[arg(long, help_heading = "DPDK", default_value = "warning")]
    pub eal_log_level: String,

    /// DPDK: further EAL argument, passed verbatim (repeatable, e.g. `--eal-arg=--no-telemetry`).
    #[arg(long, help_heading = "DPDK", allow_hyphen_values = true)]
    pub eal_arg: Vec<String>,
}

/// Seconds from the command line as a `Duration`.
pub fn seconds(flag: &str, s: f64) -> Result<Duration> {
    if !s.is_finite() || s < 0.0 {
        bail!("--{flag} must be a non-negative number of seconds, got {s}");
    }
    Duration::try_from_secs_f64(s).with_context(|| format!("--{flag} {s}"))
}

fn parse_malformed_kind(s: &str) -> Result<MalformedKind, String> {
    serde_json::from_value(serde_json::Value::String(s.replace('-', "_")))
        .map_err(|_| format!("{s:?}: one of truncated, corrupted, wrong_version, oversized"))
}

/// `A:B:C` as numbers.
fn triple(flag: &str, s: &str) -> Result<(f64, f64, f64)> {
    let v: Vec<&str> = s.split(':').collect();
    let num =
        |x: &str| x.trim().replace('_', "").parse::<f64>().with_context(|| format!("--{flag} {s:?}: {x:?}"));
    match v.as_slice() {
        [a, b, c] => Ok((num(a)?, num(b)?, num(c)?)),
        _ => bail!("--{flag} {s:?}: expected three numbers separated by ':'"),
    }
}

impl Cli {
    /// The traffic of a run without a workload file: --op, and the KV flags for the KV ops.
    fn traffic(&self) -> Result<TrafficSpec> {
        let kv_flags = self.read_ratio.is_some()
            || self.keys.is_some()
            || self.value_bytes.is_some()
            || self.key_order.is_some();
        if !self.op.is_kv() {
            if kv_flags {
                bail!("--read-ratio, --keys, --key-order and --value-bytes need --op set, get or kv");
            }
            return Ok(TrafficSpec::single(self.op, self.payload_bytes));
        }
        let read_ratio = match (self.op, self.read_ratio) {
            (Op::Kv, r) => r.unwrap_or(0.9),
            (_, Some(_)) => bail!("--read-ratio needs --op kv (--op set and get are 0 and 1)"),
            (Op::Set, None) => 0.0,
            (_, None) => 1.0,
        };
        if !(0.0..=1.0).contains(&read_ratio) {
            bail!("--read-ratio {read_ratio} is not in [0, 1]");
        }
        if self.op == Op::Get && self.value_bytes.is_some() {
            bail!("--value-bytes needs --op set or kv (GET carries no value)");
        }
        let mut spec =
            TrafficSpec::kv(read_ratio, self.keys.unwrap_or(100_000), self.value_bytes.unwrap_or(100));
        if self.key_order == Some(KeyOrder::Sequential) {
            spec.keys.distribution = KeyDistribution::Sequential;
        }
        Ok(spec)
    }

    /// The schedule the flags ask for (`None` when they ask for none and a workload gives it).
    fn flag_schedule(&self) -> Result<Option<ScheduleSpec>> {
        let need = |flag: &Option<String>, name: &str| {
            flag.clone().with_context(|| format!("--schedule {name} needs --{name}"))
        };
        let seed = self.seed.unwrap_or(1);
        // In search mode the rate is the trial's; --search-max-rate stands in for a missing --rate.
        let rate = self.rate.or(self.search_p99_us.and(self.search_max_rate));
        Ok(Some(match self.schedule {
            ScheduleKind::Fixed => match rate {
                Some(rate) => ScheduleSpec::Fixed { rate },
                None => return Ok(None),
            },
            ScheduleKind::Poisson => match rate {
                Some(rate) => ScheduleSpec::Poisson { rate, seed },
                None => return Ok(None),
            },
            ScheduleKind::Step => {
                let mut steps = Vec::new();
                for part in need(&self.steps, "steps")?.split(',') {
                    let (r, secs) = part
                        .split_once(':')
                        .with_context(|| format!("--steps: {part:?} is not RATE:SECONDS"))?;
                    let num = |x: &str| {
                        x.trim().replace('_', "").parse::<f64>().with_context(|| format!("--steps {part:?}"))
                    };
                    steps.push(RateStep { rate: num(r)?, seconds: num(secs)? });
                }
                ScheduleSpec::Step { steps }
            }
            ScheduleKind::Ramp => {
                let (from, to, seconds) = triple("ramp", &need(&self.ramp, "ramp")?)?;
                ScheduleSpec::Ramp { from, to, seconds }
            }
            ScheduleKind::Bursts => {
                let (requests, within, idle) = triple("bursts", &need(&self.bursts, "bursts")?)?;
                if requests < 1.0 || requests.fract() != 0.0 {
                    bail!("--bursts: {requests} is not a whole number of requests");
                }
                ScheduleSpec::Bursts { requests: requests as u64, within, idle }
            }
        }))
    }

    /// The load this command line asks for (validated).
    pub fn load_spec(&self) -> Result<LoadSpec> {
        let mut spec = LoadSpec::default();
        let mut duration_s = 10.0;
        let mut warmup_s = 1.0;
        let mut timeout_ms = 1000;
        let mut batch = 1;
        let flag_schedule = self.flag_schedule()?;
        if let Some(path) = &self.workload {
            let w = crate::workload::load(path)?;
            let mut schedule = w.schedule.clone();
            if self.schedule != ScheduleKind::Fixed && flag_schedule.is_some() {
                bail!("--schedule with --workload: the workload file gives the schedule");
            }
            if let Some(rate) = self.rate {
                schedule = match schedule {
                    ScheduleSpec::Fixed { .. } => ScheduleSpec::Fixed { rate },
                    ScheduleSpec::Poisson { seed, .. } => ScheduleSpec::Poisson { rate, seed },
                    other => bail!("--rate cannot override the workload's {other:?} schedule"),
                };
            }
            spec.schedule = schedule;
            spec.traffic =
                TrafficSpec { ops: w.ops.clone(), keys: w.keys.clone(), values: w.values, seed: w.seed };
            spec.malformed = w.malformed.clone();
            spec.workload = Some(w.name.clone());
            (duration_s, warmup_s, timeout_ms, batch) = (w.duration_s, w.warmup_s, w.timeout_ms, w.batch);
        } else {
            spec.schedule = match flag_schedule {
                Some(s) => s,
                None => bail!("--rate is required (or a --workload file, or --schedule step|ramp|bursts)"),
            };
            if self.op == Op::Echo && self.payload_bytes == 0 {
                bail!("--op echo needs --payload-bytes of at least 1");
            }
            spec.traffic = self.traffic()?;
        }
        if let Some(seed) = self.seed {
            spec.traffic.seed = seed;
        }
        if let Some(rate) = self.malformed_rate {
            spec.malformed = Some(MalformedSpec { rate, kinds: self.malformed_kinds.clone() });
        } else if !self.malformed_kinds.is_empty() {
            match &mut spec.malformed {
                Some(m) => m.kinds = self.malformed_kinds.clone(),
                None => bail!("--malformed-kinds needs --malformed-rate (or a workload with [malformed])"),
            }
        }
        spec.duration = seconds("duration", self.duration.unwrap_or(duration_s))?;
        spec.warmup = seconds("warmup", self.warmup.unwrap_or(warmup_s))?;
        spec.timeout = Duration::from_millis(self.timeout_ms.unwrap_or(timeout_ms));
        spec.batch = self.batch.unwrap_or(batch);
        spec.burst = self.burst as usize;
        spec.rx_burst = 64;
        spec.reflector = self.reflector;
        spec.client_id = self.client_id.unwrap_or(u64::from(std::process::id()));
        if let Some(path) = &self.credentials {
            let auth = crate::seal::RunAuth::load(path)?;
            // A search runs its first trial and up to --search-steps more, each under new ids.
            spec.trials = if self.search_p99_us.is_some() { self.search_steps.min(255) + 1 } else { 1 };
            let needed = u64::from(self.threads) * u64::from(spec.trials);
            spec.client_id = auth.slice(needed, self.client_id)?;
            spec.credentials = Some(auth.credentials);
        }
        spec.interval_log = self.hist_log.is_some();
        spec.threads = self.threads;
        spec.check_echo = self.check_echo;
        spec.server_requests_max = self.server_requests_max;
        spec.cluster = self.cluster.iter().skip(1).map(|a| Peer::from_ip_port(*a.ip(), a.port())).collect();
        spec.validate()?;
        if spec.datagram_len() > 65_507 {
            bail!(
                "a datagram of {} requests needs {} bytes, more than UDP carries",
                spec.batch,
                spec.datagram_len()
            );
        }
        let cores = self.cores()?;
        if !cores.is_empty() && cores.len() != spec.threads as usize {
            bail!("--cores lists {} CPUs for --threads {}: give one per thread", cores.len(), spec.threads);
        }
        Ok(spec)
    }

    /// The node the run starts at: the first `--cluster` node, else `--server`.
    pub fn seed(&self) -> SocketAddrV4 {
        self.cluster.first().copied().unwrap_or(self.server)
    }

    /// The nodes the run sends to, as the report names them.
    pub fn targets(&self) -> String {
        match self.cluster.as_slice() {
            [] => self.server.to_string(),
            nodes => nodes.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","),
        }
    }

    /// The CPUs to pin generator threads to (one per thread), or none.
    pub fn cores(&self) -> Result<Vec<usize>> {
        if !self.cores.is_empty() {
            return Ok(self.cores.clone());
        }
        Ok(match self.core {
            Some(c) => (0..self.threads as usize).map(|i| c + i).collect(),
            None => Vec::new(),
        })
    }

    /// The search this command line asks for, if any (for `spec`, already built).
    pub fn search_spec(&self, spec: &LoadSpec) -> Result<Option<SearchSpec>> {
        let Some(p99_us) = self.search_p99_us else { return Ok(None) };
        if !(p99_us.is_finite() && p99_us > 0.0) {
            bail!("--search-p99-us must be positive");
        }
        if !(0.0..=1.0).contains(&self.search_loss_max) {
            bail!("--search-loss-max must be a fraction in [0, 1]");
        }
        let max_rate = match (self.search_max_rate, spec.nominal_rate()) {
            (Some(r), _) => r,
            (None, Some(r)) => r,
            (None, None) => bail!("search mode needs --search-max-rate (or --rate)"),
        };
        if self.search_steps > 64 {
            bail!("--search-steps {} is more than bisection can use", self.search_steps);
        }
        Ok(Some(SearchSpec {
            objective: Objective {
                p99_ns: (p99_us * 1e3).round() as u64,
                loss_max: self.search_loss_max,
                achieved_min_ratio: ACHIEVED_MIN_RATIO,
            },
            min_rate: self.search_min_rate,
            max_rate,
            trial: seconds("search-trial-s", self.search_trial_s)?,
            steps: self.search_steps,
        }))
    }

    /// The EAL file prefix to use.
    pub fn file_prefix(&self) -> String {
        self.file_prefix.clone().unwrap_or_else(|| format!("vigil-loadgen-{}", std::process::id()))
    }

    /// The ethdev name to use, if one is known.
    pub fn port_name(&self) -> Option<String> {
        self.port.clone().or_else(|| self.vdev.first().map(|v| v.split(',').next().unwrap_or(v).to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn cluster_nodes_come_as_one_list_or_as_repeated_targets_and_the_first_is_the_seed() {
        let nodes = ["10.77.0.1:9000", "10.77.0.2:9000", "10.77.0.3:9000"];
        let list =
            Cli::try_parse_from(["vigil-loadgen", "--rate", "10", "--cluster", &nodes.join(",")]).unwrap();
        let repeated = Cli::try_parse_from([
            "vigil-loadgen",
            "--rate",
            "10",
            "--target",
            nodes[0],
            "--target",
            nodes[1],
            "--target",
            nodes[2],
        ])
        .unwrap();
        for cli in [&list, &repeated] {
            assert_eq!(cli.seed(), nodes[0].parse().unwrap());
            assert_eq!(cli.targets(), nodes.join(","));
            let spec = cli.load_spec().unwrap();
            let others: Vec<String> = spec.cluster.iter().map(|p| format!("{}:{}", p.ip, p.port)).collect();
            assert_eq!(others, nodes[1..]);
        }
        let alone =
            Cli::try_parse_from(["vigil-loadgen", "--rate", "10", "--server", "10.0.0.9:9000"]).unwrap();
        assert_eq!(
            (alone.seed(), alone.targets()),
            ("10.0.0.9:9000".parse().unwrap(), "10.0.0.9:9000".to_owned())
        );
        assert!(alone.load_spec().unwrap().cluster.is_empty());
        assert!(
            Cli::try_parse_from(["vigil-loadgen", "--rate", "10", "--cluster", "10.77.0.1"]).is_err(),
            "a port is needed"
        );
    }

    #[test]
    fn defaults_and_spec() {
        let cli = Cli::try_parse_from(["vigil-loadgen", "--rate", "5000"]).unwrap();
        assert_eq!(cli.server, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(cli.backend, BackendKind::Kernel);
        assert!(cli.no_huge);
        assert_eq!(cli.local_ip, Ipv4Addr::new(10, 0, 0, 2));
        let spec = cli.load_spec().unwrap();
        assert_eq!(spec.duration, Duration::from_secs(10));
        assert_eq!(spec.warmup, Duration::from_secs(1));
        assert_eq!(spec.timeout, Duration::from_millis(1000));
        assert_eq!(spec.batch, 1);
        assert!(cli.file_prefix().starts_with("vigil-loadgen-"));
    }

    #[test]
    fn rate_is_required_and_bad_values_rejected() {
        assert!(Cli::try_parse_from(["vigil-loadgen"]).unwrap().load_spec().is_err());
        assert!(Cli::try_parse_from(["vigil-loadgen", "--rate", "1", "--batch", "0"]).is_err());
        let cli = Cli::try_parse_from(["vigil-loadgen", "--rate", "0"]).unwrap();
        assert!(cli.load_spec().is_err());
        let cli = Cli::try_parse_from(["vigil-loadgen", "--rate", "1", "--duration=-1"]).unwrap();
        assert!(cli.load_spec().is_err());
        let cli = Cli::try_parse_from([
            "vigil-loadgen",
            "--rate",
            "1",
            "--op",
            "echo",
            "--payload-bytes",
            "1400",
            "--batch",
            "64",
        ])
        .unwrap();
        assert!(cli.load_spec().is_err(), "89 KiB datagram");
        let cli =
            Cli::try_parse_from(["vigil-loadgen", "--rate", "1", "--threads", "2", "--cores", "0"]).unwrap();
        assert!(cli.load_spec().is_err(), "one core for two threads");
    }

    #[test]
    fn kv_ops_from_flags() {
        use crate::spec::OpKind;
        let spec = |args: &[&str]| {
            let mut v = vec!["vigil-loadgen", "--rate", "1000"];
            v.extend_from_slice(args);
            Cli::try_parse_from(v).unwrap().load_spec()
        };
        let s =
            spec(&["--op", "kv", "--read-ratio", "0.8", "--keys", "5000", "--value-bytes", "200"]).unwrap();
        let t = &s.traffic;
        assert_eq!(t.name(), "kv");
        assert_eq!(t.ops.iter().map(|o| o.op).collect::<Vec<_>>(), [OpKind::Get, OpKind::Set]);
        assert!((t.ops[0].weight - 0.8).abs() < 1e-12 && (t.ops[1].weight - 0.2).abs() < 1e-12);
        assert_eq!((t.keys.count, t.values.min, t.values.max), (5000, 200, 200));
        assert_eq!(s.body_len(), 2 + 16 + 200);
        let t = spec(&["--op", "kv"]).unwrap().traffic;
        assert_eq!((t.ops[0].weight, t.keys.count, t.values.max), (0.9, 100_000, 100));
        assert_eq!(spec(&["--op", "set"]).unwrap().traffic.name(), "set");
        assert_eq!(spec(&["--op", "get", "--keys", "10"]).unwrap().traffic.name(), "get");
        assert_eq!(spec(&["--op", "kv", "--read-ratio", "1"]).unwrap().traffic.name(), "get");
        assert_eq!(t.keys.distribution, KeyDistribution::Uniform);
        let t = spec(&["--op", "set", "--keys", "10", "--key-order", "sequential"]).unwrap().traffic;
        assert_eq!((t.keys.count, &t.keys.distribution), (10, &KeyDistribution::Sequential));
        let t = spec(&["--op", "set", "--key-order", "uniform"]).unwrap().traffic;
        assert_eq!(t.keys.distribution, KeyDistribution::Uniform);
        for bad in [
            &["--op", "kv", "--read-ratio", "1.5"][..],
            &["--op", "kv", "--read-ratio", "NaN"],
            &["--op", "get", "--read-ratio", "0.5"],
            &["--op", "get", "--value-bytes", "10"],
            &["--op", "ping", "--keys", "10"],
            &["--op", "ping", "--key-order", "sequential"],
            &["--op", "kv", "--keys", "0"],
            &["--op", "set", "--value-bytes", "70000"],
        ] {
            assert!(spec(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn schedules_threads_and_search() {
        let spec = |args: &[&str]| {
            let mut v = vec!["vigil-loadgen"];
            v.extend_from_slice(args);
            Cli::try_parse_from(v).unwrap().load_spec()
        };
        let s = spec(&["--rate", "500", "--schedule", "poisson", "--seed", "9"]).unwrap();
        assert_eq!(s.schedule, ScheduleSpec::Poisson { rate: 500.0, seed: 9 });
        let s = spec(&["--schedule", "step", "--steps", "100:1,2_000:0.5"]).unwrap();
        assert_eq!(
            s.schedule,
            ScheduleSpec::Step {
                steps: vec![RateStep { rate: 100.0, seconds: 1.0 }, RateStep { rate: 2000.0, seconds: 0.5 }]
            }
        );
        let s = spec(&["--schedule", "ramp", "--ramp", "10:20:3"]).unwrap();
        assert_eq!(s.schedule, ScheduleSpec::Ramp { from: 10.0, to: 20.0, seconds: 3.0 });
        let s = spec(&["--schedule", "bursts", "--bursts", "35000:20:40", "--threads", "2"]).unwrap();
        assert_eq!(s.schedule, ScheduleSpec::Bursts { requests: 35_000, within: 20.0, idle: 40.0 });
        assert_eq!(s.threads, 2);
        assert!(spec(&["--schedule", "ramp"]).is_err());
        assert!(spec(&["--schedule", "bursts", "--bursts", "1.5:1:1"]).is_err());
        let s = spec(&[
            "--rate",
            "100",
            "--malformed-rate",
            "10",
            "--malformed-kinds",
            "truncated,wrong-version",
        ])
        .unwrap();
        assert_eq!(s.malformed.unwrap().kinds, vec![MalformedKind::Truncated, MalformedKind::WrongVersion]);

        let cli =
            Cli::try_parse_from(["vigil-loadgen", "--rate", "5000", "--search-p99-us", "250", "--core", "1"])
                .unwrap();
        let s = cli.load_spec().unwrap();
        let search = cli.search_spec(&s).unwrap().unwrap();
        assert_eq!((search.max_rate, search.min_rate, search.steps), (5000.0, 0.0, 7));
        assert_eq!(search.objective.p99_ns, 250_000);
        assert_eq!(search.objective.loss_max, 0.001);
        assert_eq!(search.trial, Duration::from_secs(2));
        assert_eq!(cli.cores().unwrap(), vec![1]);
    }

    #[test]
    fn workload_files_with_overrides() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let path = dir.join("malformed.toml");
        let cli =
            Cli::try_parse_from(["vigil-loadgen", "--workload", path.to_str().unwrap(), "--duration", "2"])
                .unwrap();
        let s = cli.load_spec().unwrap();
        assert_eq!(s.workload.as_deref(), Some("malformed"));
        assert_eq!(s.duration, Duration::from_secs(2));
        assert_eq!(s.schedule, ScheduleSpec::Fixed { rate: 20_000.0 });
        assert_eq!(s.malformed.as_ref().unwrap().rate, 1_000.0);
        let cli = Cli::try_parse_from(["vigil-loadgen", "--workload", path.to_str().unwrap(), "--rate", "7"])
            .unwrap();
        assert_eq!(cli.load_spec().unwrap().schedule, ScheduleSpec::Fixed { rate: 7.0 });
        let ramp = dir.join("ramp.toml");
        let cli = Cli::try_parse_from(["vigil-loadgen", "--workload", ramp.to_str().unwrap(), "--rate", "7"])
            .unwrap();
        assert!(cli.load_spec().is_err(), "--rate cannot override a ramp");
    }

    #[test]
    fn credentials_give_each_thread_and_trial_an_id_in_the_keys_range() {
        let dir = std::env::temp_dir().join(format!("vigil-loadgen-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("loadgen.toml");
        let key = "1f2e3d4c5b6a79880f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778";
        std::fs::write(
            &file,
            format!(
                "[[auth.clients]]\nname = \"lg\"\nkey_id = 7\nclient_id = 1000\nclient_ids = 24\nkey = \"{key}\"\nacl = \"+@all\"\n"
            ),
        )
        .unwrap();
        let parse = |extra: &[&str]| {
            let mut v = vec!["vigil-loadgen", "--rate", "100", "--credentials", file.to_str().unwrap()];
            v.extend_from_slice(extra);
            Cli::try_parse_from(v).unwrap().load_spec()
        };
        let s = parse(&["--threads", "4", "--client-id", "1000"]).unwrap();
        assert_eq!((s.credentials.map(|c| c.key_id), s.trials), (Some(7), 1));
        let ids: Vec<u64> = (0..4).map(|t| s.client_id_of(t, 0)).collect();
        assert_eq!(ids, [1000, 1001, 1002, 1003]);
        assert!(s.datagram_len() >= 16 + 40 + 16, "room for the authentication block");
        // A search: 2 threads x (1 + 3 steps) trials = 8 ids.
        let s = parse(&[
            "--threads",
            "2",
            "--search-p99-us",
            "500",
            "--search-steps",
            "3",
            "--client-id",
            "1016",
        ])
        .unwrap();
        let ids: Vec<u64> = (0..2)
            .flat_map(|t| (0..4).map(move |trial| (t, trial)))
            .map(|(t, tr)| s.client_id_of(t, tr))
            .collect();
        assert_eq!(ids, (1016..1024).collect::<Vec<_>>());
        let e = parse(&["--threads", "25"]).unwrap_err().to_string();
        assert!(e.contains("needs 25 client ids"), "{e}");
        assert!(parse(&["--threads", "2", "--client-id", "1023"]).is_err(), "past the range's end");
        let auto = parse(&["--threads", "3"]).unwrap();
        assert!((1000..=1021).contains(&auto.client_id));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dpdk_flags() {
        let cli = Cli::try_parse_from([
            "vigil-loadgen",
            "--rate",
            "1",
            "--backend",
            "dpdk",
            "--vdev",
            "net_memif0,role=client,socket=/tmp/x.sock",
            "--no-huge",
            "false",
            "--server-mac",
            "02:00:00:00:00:0a",
            "--eal-arg=--no-telemetry",
        ])
        .unwrap();
        assert_eq!(cli.port_name().as_deref(), Some("net_memif0"));
        assert!(!cli.no_huge);
        assert_eq!(cli.server_mac, Some(Mac([2, 0, 0, 0, 0, 10])));
        assert_eq!(cli.eal_arg, vec!["--no-telemetry"]);
        assert!("02:00".parse::<Mac>().is_err());
    }
}
