//! The command line: every flag, its default and its help text, and the conversion into a
//! [`LoadSpec`].
//!
//! Invariants: everything a run needs is validated here or in [`LoadSpec::validate`] before any
//! backend starts (a bad flag never leaves a half-initialised EAL behind); durations are given in
//! (fractional) seconds and must be finite and non-negative.

use crate::run::{LoadSpec, Op};
use anyhow::{bail, Context, Result};
use clap::{ArgAction, Parser, ValueEnum};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

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

    /// Offered load, requests per second (open loop).
    #[arg(long)]
    pub rate: u64,

    /// Measured phase, seconds (fractions allowed).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,

    /// Warm-up before the measured phase, seconds: sent at the same rate, latencies not recorded.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,

    /// Operation each request carries.
    #[arg(long, value_enum, default_value_t = Op::Ping)]
    pub op: Op,

    /// ECHO body size in bytes (ignored for ping).
    #[arg(long, default_value_t = 64)]
    pub payload_bytes: usize,

    /// Requests per datagram; all requests of a datagram share its intended send time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub batch: u32,

    /// A request not answered within this many ms of its intended send time is a timeout.
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,

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

    /// Pin the generator thread to this CPU (with DPDK: the EAL main lcore).
    #[arg(long)]
    pub core: Option<usize>,

    /// Accept the request frames themselves coming back as answers (baseline against
    /// `dpdk-testpmd --forward-mode=5tswap`, which reflects requests unchanged).
    #[arg(long)]
    pub reflector: bool,

    /// Client id carried in every datagram header (default: the process id).
    #[arg(long)]
    pub client_id: Option<u64>,

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

impl Cli {
    /// The load this command line asks for (validated).
    pub fn load_spec(&self) -> Result<LoadSpec> {
        let spec = LoadSpec {
            rate: self.rate,
            duration: seconds("duration", self.duration)?,
            warmup: seconds("warmup", self.warmup)?,
            op: self.op,
            payload_bytes: self.payload_bytes,
            batch: self.batch,
            timeout: Duration::from_millis(self.timeout_ms),
            burst: self.burst as usize,
            rx_burst: 64,
            reflector: self.reflector,
            client_id: self.client_id.unwrap_or(u64::from(std::process::id())),
            interval_log: self.hist_log.is_some(),
        };
        spec.validate()?;
        if spec.datagram_len() > 65_507 {
            bail!(
                "a datagram of {} requests needs {} bytes, more than UDP carries",
                spec.batch,
                spec.datagram_len()
            );
        }
        Ok(spec)
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
        assert!(Cli::try_parse_from(["vigil-loadgen"]).is_err());
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
