//! What load a run offers, as data: the operation ([`Op`]), what each request carries
//! ([`TrafficSpec`]), the schedule, length, batching and limits ([`LoadSpec`]), and how request
//! ids and client ids are laid out per generator thread and search trial
//! ([`request_id_base`], [`LoadSpec::client_id_of`]), and what the datagrams carry besides
//! (credentials, cookies: [`crate::seal`]). The loop that runs it is [`crate::run`].
//!
//! Invariants: [`LoadSpec::validate`] refuses every spec the loop cannot run, before the clock
//! starts; request ids of different threads and trials never meet (asserted at the bottom of
//! `run.rs`).

use crate::leaders::NODES_MAX;
use crate::seal::{blocks_len, Cookie};
use crate::spec::{KeyDistribution, KeySpec, MalformedSpec, OpKind, OpWeight, ScheduleSpec, SizeRange};
use crate::traffic::{TrafficGen, MALFORMED_DATAGRAM_BYTES_MAX};
use anyhow::{bail, Result};
use std::time::Duration;
use vigil::auth::Credentials;
use vigil::wire::{opcode, FRAME_HEADER_LEN, HEADER_LEN};
use vigil_pmd::Peer;

/// The operation every request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// PING: empty body, empty answer.
    Ping,
    /// ECHO: a body of `--payload-bytes`, answered with the same bytes.
    Echo,
    /// KV SET of `--value-bytes` to a key drawn uniformly from `--keys` (server needs KV).
    Set,
    /// KV GET of a key drawn uniformly from `--keys`; NOT_FOUND counts as `not_found`, not as an
    /// error (server needs KV).
    Get,
    /// KV mix: GET with probability `--read-ratio`, else SET (server needs KV).
    Kv,
}

impl Op {
    /// The wire opcode; `None` for the KV mix (GET and SET).
    pub fn opcode(self) -> Option<u8> {
        match self {
            Op::Ping => Some(opcode::PING),
            Op::Echo => Some(opcode::ECHO),
            Op::Set => Some(opcode::SET),
            Op::Get => Some(opcode::GET),
            Op::Kv => None,
        }
    }

    /// Its name as the CLI and the report spell it.
    pub fn name(self) -> &'static str {
        match self {
            Op::Ping => "ping",
            Op::Echo => "echo",
            Op::Set => "set",
            Op::Get => "get",
            Op::Kv => "kv",
        }
    }

    /// True for the KV operations (set, get, kv).
    pub fn is_kv(self) -> bool {
        matches!(self, Op::Set | Op::Get | Op::Kv)
    }
}

/// Bytes of a KV key from the command line (the key number in zero-padded ASCII decimal).
pub const KV_KEY_BYTES: usize = 16;

/// What the requests carry: the op mix, keys and values ([`TrafficGen`]'s inputs).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrafficSpec {
    /// Operations and their weights.
    pub ops: Vec<OpWeight>,
    /// The key space (ECHO bodies start with a key).
    pub keys: KeySpec,
    /// ECHO value sizes.
    pub values: SizeRange,
    /// Seed of every draw (the same seed sends the same requests).
    pub seed: u64,
}

impl TrafficSpec {
    /// Every request `op`; an ECHO body of exactly `payload_bytes` (a key of up to 8 bytes, then
    /// the value), at least 1. The KV ops: [`TrafficSpec::kv`] with 100 000 keys and 100-byte
    /// values (`Op::Kv` at a 0.9 read ratio).
    pub fn single(op: Op, payload_bytes: usize) -> Self {
        let (kind, key_bytes, value) = match op {
            Op::Ping => (OpKind::Ping, 1, 0),
            Op::Echo => {
                let kb = payload_bytes.clamp(1, 8);
                (OpKind::Echo, kb, payload_bytes.saturating_sub(kb))
            }
            Op::Set => return Self::kv(0.0, 100_000, 100),
            Op::Get => return Self::kv(1.0, 100_000, 100),
            Op::Kv => return Self::kv(0.9, 100_000, 100),
        };
        Self {
            ops: vec![OpWeight { op: kind, weight: 1.0 }],
            keys: KeySpec { count: 1, bytes: key_bytes, distribution: KeyDistribution::Uniform },
            values: SizeRange { min: value, max: value },
            seed: 1,
        }
    }

    /// KV traffic: GET with probability `read_ratio` (in [0, 1]; 1 is GET only, 0 SET only), else
    /// SET of `value_bytes`, keys of [`KV_KEY_BYTES`] drawn uniformly from `0..keys`. A read ratio is
    /// just the two ops' weights.
    pub fn kv(read_ratio: f64, keys: u64, value_bytes: usize) -> Self {
        let mut ops = Vec::new();
        if read_ratio > 0.0 {
            ops.push(OpWeight { op: OpKind::Get, weight: read_ratio });
        }
        if read_ratio < 1.0 {
            ops.push(OpWeight { op: OpKind::Set, weight: 1.0 - read_ratio });
        }
        Self {
            ops,
            keys: KeySpec { count: keys, bytes: KV_KEY_BYTES, distribution: KeyDistribution::Uniform },
            values: SizeRange { min: value_bytes, max: value_bytes },
            seed: 1,
        }
    }

    /// The generator (validates the mix).
    pub fn generator(&self) -> Result<TrafficGen> {
        Ok(TrafficGen::new(&self.ops, &self.keys, self.values, self.seed)?)
    }

    /// `ping`, `echo`, `set` or `get` for a one-op mix, `kv` for a GET/SET mix, else `mix`.
    pub fn name(&self) -> &'static str {
        match self.ops.as_slice() {
            [one] => match one.op {
                OpKind::Ping => "ping",
                OpKind::Echo => "echo",
                OpKind::Set => "set",
                OpKind::Get => "get",
                OpKind::CandleLight => "candle_light",
                OpKind::CandleGet => "candle_get",
            },
            ops if ops.iter().all(|o| matches!(o.op, OpKind::CandleLight | OpKind::CandleGet)) => "candles",
            ops if ops.iter().all(|o| matches!(o.op, OpKind::Get | OpKind::Set)) => "kv",
            _ => "mix",
        }
    }
}

/// Most generator threads (the thread number lives in 14 bits of the request id).
pub const THREADS_MAX: u32 = 1 << 14;

/// Bits of a request id that hold its sequence number in its thread's run.
pub const REQUEST_SEQ_BITS: u32 = 40;

/// The first request id of `thread`'s `trial`-th run; the run's ids are this plus 0, 1, 2, ...
pub const fn request_id_base(thread: u32, trial: u64) -> u64 {
    debug_assert!(thread < THREADS_MAX && trial < 256);
    (((thread as u64) + 1) << 48) | ((trial & 0xff) << REQUEST_SEQ_BITS)
}

/// The client id of one thread's run: `base` with the thread and trial of `id_base` mixed in, so
/// every (thread, trial) is a client of its own whose request ids (sequence numbers for KV writes)
/// only count up by one. Threads sharing a client id would interleave two sequences, and the server
/// would refuse one thread's writes as `STALE` or `SEQUENCE_TOO_FAR`.
pub const fn thread_client_id(base: u64, id_base: u64) -> u64 {
    base ^ (id_base >> 40)
}

/// What load to offer.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// When requests are meant to be sent (the whole run's; threads share it).
    pub schedule: ScheduleSpec,
    /// Measured phase length.
    pub duration: Duration,
    /// Warm-up before it (sent, not latency-recorded).
    pub warmup: Duration,
    /// What each request carries.
    pub traffic: TrafficSpec,
    /// Requests per datagram.
    pub batch: u32,
    /// A request not answered within this (of its intended send time) is a timeout.
    pub timeout: Duration,
    /// Most datagrams built per loop iteration (and the transmit batch's capacity).
    pub burst: usize,
    /// Most datagrams taken per `rx_burst`.
    pub rx_burst: usize,
    /// Accept request frames coming back unchanged as answers (testpmd 5tswap baseline).
    pub reflector: bool,
    /// The client id base every request datagram's client id derives from (with `credentials`:
    /// the first of the run's slice of the key's ids, see [`LoadSpec::client_id_of`]).
    pub client_id: u64,
    /// The key every datagram is signed with, if any.
    pub credentials: Option<Credentials>,
    /// With `credentials`: client ids each thread takes, one per trial (search trials + 1).
    pub trials: u32,
    /// Address cookies to send, per node address (fetched before the run).
    pub cookies: Vec<(Peer, Cookie)>,
    /// Keep interval histograms of the measured phase for the interval log.
    pub interval_log: bool,
    /// Generator threads, each with its own `PacketIo` and a 1/N share of the schedule.
    pub threads: u32,
    /// Malformed datagrams to inject alongside, on their own schedule.
    pub malformed: Option<MalformedSpec>,
    /// Check that OK ECHO answers carry the body sent (`bad_echo` otherwise).
    pub check_echo: bool,
    /// The server's frames-per-datagram limit (oversized malformed datagrams exceed it).
    pub server_requests_max: u16,
    /// The workload file's name, if the run came from one.
    pub workload: Option<String>,
    /// The other nodes of a replicated cluster, beside the peer the run is given (the seed):
    /// where requests go when that one stops answering ([`crate::leaders`]). Empty: one node
    /// (whose `NOT_LEADER` hints are still followed).
    pub cluster: Vec<Peer>,
}

impl Default for LoadSpec {
    /// 1000 PINGs/s, fixed schedule, 10 s after 1 s of warm-up, batch 1, 1 s timeout, one thread.
    fn default() -> Self {
        Self {
            schedule: ScheduleSpec::Fixed { rate: 1000.0 },
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            traffic: TrafficSpec::single(Op::Ping, 0),
            batch: 1,
            timeout: Duration::from_millis(1000),
            burst: 32,
            rx_burst: 64,
            reflector: false,
            client_id: 1,
            credentials: None,
            trials: 1,
            cookies: Vec::new(),
            interval_log: false,
            threads: 1,
            malformed: None,
            check_echo: false,
            server_requests_max: 64,
            workload: None,
            cluster: Vec::new(),
        }
    }
}

impl LoadSpec {
    /// A default spec at a fixed `rate`.
    pub fn fixed(rate: f64) -> Self {
        Self { schedule: ScheduleSpec::Fixed { rate }, ..Self::default() }
    }

    /// A default spec at a fixed `rate`, every request `op` with `payload_bytes` of ECHO body.
    pub fn with_op(rate: f64, op: Op, payload_bytes: usize) -> Self {
        Self { traffic: TrafficSpec::single(op, payload_bytes), ..Self::fixed(rate) }
    }

    /// The largest body a request carries.
    pub fn body_len(&self) -> usize {
        self.traffic.generator().map_or(0, |g| g.body_bytes_max())
    }

    /// The client id of `thread`'s `trial`-th run (`trial` as [`request_id_base`] counts it): with
    /// credentials, `client_id + thread * trials + trial` (all inside the key's range, checked by the
    /// command line), else [`thread_client_id`].
    pub fn client_id_of(&self, thread: u32, trial: u64) -> u64 {
        match self.credentials {
            Some(_) => {
                self.client_id + u64::from(thread) * u64::from(self.trials) + trial % u64::from(self.trials)
            }
            None => thread_client_id(self.client_id, request_id_base(thread, trial)),
        }
    }

    /// Bytes of UDP payload one full datagram needs (the largest bodies, the cookie and
    /// authentication blocks; at least a malformed datagram's when injecting).
    pub fn datagram_len(&self) -> usize {
        let blocks = blocks_len(self.credentials.is_some(), !self.cookies.is_empty());
        let valid = HEADER_LEN + blocks + self.batch as usize * (FRAME_HEADER_LEN + self.body_len());
        if self.malformed.is_some() {
            valid.max(MALFORMED_DATAGRAM_BYTES_MAX)
        } else {
            valid
        }
    }

    /// The nominal offered rate: the rate of a fixed or Poisson schedule, else `None` (the report
    /// then gives the mean over the measured phase).
    pub fn nominal_rate(&self) -> Option<f64> {
        match self.schedule {
            ScheduleSpec::Fixed { rate } | ScheduleSpec::Poisson { rate, .. } => Some(rate),
            _ => None,
        }
    }

    /// Rejects specs the loop cannot run.
    pub fn validate(&self) -> Result<()> {
        self.schedule.validate("schedule")?;
        self.traffic.generator()?;
        if self.server_requests_max == 0 {
            bail!("--server-requests-max must be at least 1");
        }
        if let Some(m) = &self.malformed {
            m.validate("malformed")?;
        }
        if self.batch == 0 || self.batch > u32::from(u16::MAX) {
            bail!("--batch must be between 1 and {}", u16::MAX);
        }
        if self.burst == 0 || self.rx_burst == 0 {
            bail!("--burst must be at least 1");
        }
        if self.duration.is_zero() {
            bail!("--duration must be positive");
        }
        if self.timeout.is_zero() {
            bail!("--timeout-ms must be positive");
        }
        if self.cluster.len() >= NODES_MAX {
            bail!("--cluster: at most {} nodes", NODES_MAX - 1);
        }
        if self.threads == 0 || self.threads >= THREADS_MAX {
            bail!("--threads must be between 1 and {}", THREADS_MAX - 1);
        }
        if self.trials == 0 || self.trials > 256 {
            bail!("trials per thread must be between 1 and 256");
        }
        Ok(())
    }
}
