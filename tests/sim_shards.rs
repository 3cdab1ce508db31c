//! The deterministic whole-node simulator: shards (engine + KV + Raft + UAL) in one thread, driven
//! from a seed, with network and disk faults and crashes, and invariants checked at every step.
//!
//! A seed picks a node (1-3 shards, 1 or 2 partitions per shard, each partition on its own
//! `SimDisk`), a handful of clients on `SimNet`, and a fault mix: packet loss, duplication,
//! reordering and partitions; disk latency, failed writes (they poison a partition's log: its
//! writes answer UNAVAILABLE until a restart), torn and lost in-flight writes and lost cache
//! contents at crashes; power cuts at random steps (every partition's `crash_image()`, a down time
//! in which the node's packets are lost, then `Partition::open` on `SimDisk::from_image` and new
//! shards assembled as `serve::run_shard_on` does). Snapshots go to real files in a per-seed temp
//! dir for some seeds (small `snapshot_every_entries`, a small ring that must recycle), none for
//! the others (a ring large enough that no checkpoint happens, asserted). One seed in four is a
//! crowd (up to 40 clients, tiny inboxes, Raft pending limits and bursts: BUSY everywhere); a
//! restart is sometimes followed at once by another crash (a crash storm). About one seed in seven
//! is the clean class: no fault and no crash at all (until a final, quiescent restart).
//!
//! Clients send SET/DEL/INCR/CAS/GET, one datagram per request, to a random shard (so requests
//! cross shards through the inboxes). Each has at most one request outstanding; a write is resent
//! with the same request id (exactly-once) on a timeout or a BUSY/NOT_LEADER/UNAVAILABLE answer, a
//! GET with a new one; after `retries_max` attempts the client gives up (counted; a write's
//! outcome is then unknown). Writes to one key are serialized across clients (one in flight per
//! key), so the acknowledged writes of a key apply in the order they were issued. Register keys get
//! SET/DEL/CAS with values unique to the write (so a value read names the write that produced it);
//! counter keys get INCR with positive deltas.
//!
//! Invariants (a violation panics with the seed, the step and the rerun command):
//! 1. Durability: every read (a client GET, and after every recovery a GET of every key of the
//!    model straight on the recovered partition) sees the state of the last write acknowledged
//!    before the read was sent, or the outcome of a write still possible (in flight, given up, or
//!    acknowledged after the read was sent); a register value must come from a write of that key
//!    (and must carry the version its acknowledgement gave), a counter lies between the sum of
//!    the acknowledged deltas and the sum of every delta sent. A recovered projection holds no key
//!    the model never wrote.
//! 2. Versions: every (key, version) names one value for ever (across crashes); a write's
//!    version is above every version seen for its key before it was sent; a read's version is at
//!    least every version seen before it was sent, and equals an acknowledged SET's version when
//!    no other write can have intervened. DEL's `existed` and CAS's OK/CAS_MISMATCH must agree with
//!    a possible state before the write.
//! 3. Exactly-once: every final answer to one (client, request id) is identical (retries,
//!    duplicated datagrams, after crashes); the client's current write is never STALE.
//! 4. No panic, no hang: a bounded number of steps, then a drain phase after which every client
//!    is idle (each request answered or given up after bounded retries); a wall-clock watchdog
//!    names a seed that hangs inside the code under test and aborts.
//! 5. Clean class: every GET equals a plain `BTreeMap` model exactly, nothing is given up, and at
//!    the end (and after a final restart) the partitions' projections equal the model, key for key.
//!
//! Besides answers, every 16 steps all partitions' projections are scanned against the model
//! (applied = committed = durable, so they may show nothing older than an acknowledged write).
//! `sim_catches_writes_acknowledged_before_durable` checks the checker: devices that complete
//! durable writes without making them durable must be caught on every one of 24 seeds.
//!
//! This simulator found that `write_blocks_max = 1` livelocked the log (a record that does not fit
//! a submitted, partly filled tail block needs two blocks of staging); `UalConfig::validate` now
//! refuses values below 2, so seeds draw from 2 up.
//!
//! Determinism: one `SplitMix64` per seed (forked for the disks and the network), ordered
//! containers only, Raft's election timeout fixed (single-voter groups elect at once anyway);
//! `sim_is_deterministic` replays seeds and compares digests of everything they did.
//!
//! Seeds: `cargo test --test sim_shards` runs `DEFAULT_SEEDS`; `VIGIL_SIM_SEEDS=n` runs n;
//! `VIGIL_SIM_SEED=x cargo test --test sim_shards -- --nocapture` reruns seed x with a trace of
//! every request, answer, crash and recovery. Stats of what was exercised are printed at the end.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vigil::dispatch::{Dispatcher, Subsystem};
use vigil::engine::{Engine, EngineLimits};
use vigil::inbox::{self, InboxConfig, Placement, Router};
use vigil::kv::protocol::encode_write_body;
use vigil::kv::{KvLimits, Op};
use vigil::log::UalConfig;
use vigil::ops;
use vigil::ops::kv::{Kv, KvService, KvShard};
use vigil::partition::snapfile::SnapshotFile;
use vigil::partition::{Partition, PartitionConfig};
use vigil::raft::{ElectionTimeout, RaftGroupConfig};
use vigil::shard::{Shard, ShardLimits};
use vigil::wire::{self, opcode, DatagramWriter, Status};
use vigil_pmd::block::{BlockBuf, BlockIo, Completion, SubmitError};
use vigil_pmd::mem::{VecRx, VecTx};
use vigil_pmd::sim::{
    SimClock, SimDisk, SimDiskConfig, SimDiskFaults, SimEndpoint, SimNet, SimNetConfig, SplitMix64,
};
use vigil_pmd::{Batch, IoCounters, Nanos, PacketIo, Peer, RxDatagram, TxDatagram};

/// Seeds of a plain `cargo test --test sim_shards`.
const DEFAULT_SEEDS: u64 = 400;
/// Largest datagram (as `net.datagram_bytes_max`).
const DATAGRAM_MAX: usize = 1472;
/// Steps of the drain phase at most (every client must be idle by then).
const DRAIN_STEPS_MAX: u64 = 200_000;
/// Polls a freshly opened partition gets to lead and catch up.
const SETTLE_POLLS_MAX: u32 = 20_000;

/// Numbers each simulation's snapshot directory: tests run in parallel, several on one seed.
static SIM_DIRS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// What all seeds exercised, printed at the end.
    static TOTALS: RefCell<BTreeMap<&'static str, u64>> = const { RefCell::new(BTreeMap::new()) };
}

// ---------------------------------------------------------------------------------------------
// The seed's parameters.

#[derive(Clone, Debug)]
struct Params {
    clean: bool,
    shards: usize,
    partitions: u32,
    clients: usize,
    registers: usize,
    counters: usize,
    steps: u64,
    step_ns_max: u64,
    think_ns_max: u64,
    timeout_ns: u64,
    retries_max: u32,
    net: SimNetConfig,
    net_partitions: bool,
    /// Back-pressure: cross-shard inbox sizes, Raft's pending proposals, the shard burst.
    inbox_capacity: usize,
    inbox_in_flight: usize,
    proposals_pending_max: usize,
    burst: usize,
    disk: SimDiskConfig,
    /// Faults once a partition is open (none while it opens: a device failing at start-up is
    /// another story than a node losing its log while it runs).
    run_faults: SimDiskFaults,
    crash_steps: Vec<u64>,
    restart_on_unavailable: bool,
    down_ns_max: u64,
    /// Some(interval): snapshots to files in the seed's temp dir every `interval` entries.
    snapshot_every: Option<u64>,
    ual: UalConfig,
}

impl Params {
    fn draw(rng: &mut SplitMix64) -> Self {
        let clean = rng.below(7) == 0;
        let shards = 1 + rng.below(3) as usize;
        let partitions = (shards * (1 + rng.below(2) as usize)) as u32;
        // One seed in four is a crowd: many clients, no think time, small queues (BUSY, drops).
        let crowd = rng.chance(0.25);
        let clients = if crowd { 8 + rng.below(33) as usize } else { 2 + rng.below(5) as usize };
        let (inbox_capacity, inbox_in_flight, proposals_pending_max, burst) = if crowd {
            (
                rng.range(1, 16) as usize,
                rng.range(1, 16) as usize,
                rng.range(1, 16) as usize,
                rng.range(1, 32) as usize,
            )
        } else {
            (64, 32, 4096, 32)
        };
        let registers = 2 + rng.below(14) as usize;
        let counters = 1 + rng.below(4) as usize;
        let steps = rng.range(2_000, 8_000);
        let step_ns_max = rng.range(5_000, 60_000);
        let think_ns_max = if crowd { rng.range(0, 50_000) } else { rng.range(0, 300_000) };
        let timeout_ns = rng.range(1_500_000, 4_000_000);
        // The clean class never gives up: BUSY under a crowd is back-pressure, not a fault, and the plain
        // model needs every write's outcome.
        let retries_max = if clean { 1_000 } else { rng.range(10, 40) as u32 };
        let mut net = SimNetConfig {
            delay_ns: (rng.range(5_000, 20_000), rng.range(20_000, 150_000)),
            ..SimNetConfig::default()
        };
        let mut disk = SimDiskConfig::new(0);
        disk.write_latency_ns = (rng.range(5_000, 30_000), rng.range(30_000, 400_000));
        disk.read_latency_ns = (5_000, rng.range(5_000, 100_000));
        disk.flush_latency_ns = (50_000, rng.range(50_000, 1_000_000));
        disk.queue_depth = 8 + rng.below(25) as usize;
        let mut run_faults = SimDiskFaults::none();
        let mut crash_steps = Vec::new();
        let mut net_partitions = false;
        let mut restart_on_unavailable = false;
        if !clean {
            let lossy = rng.chance(0.7);
            net.loss = if lossy { rng.range(0, 100) as f64 / 1000.0 } else { 0.0 };
            net.duplicate = if lossy { rng.range(0, 60) as f64 / 1000.0 } else { 0.0 };
            net.reorder = if rng.chance(0.6) { rng.range(0, 300) as f64 / 1000.0 } else { 0.0 };
            net.reorder_extra_ns = rng.range(50_000, 2_000_000);
            net.inbox_max = if rng.chance(0.2) { rng.range(4, 64) as usize } else { 4096 };
            net_partitions = rng.chance(0.4);
            let crashes = rng.below(5);
            for _ in 0..crashes {
                crash_steps.push(rng.range(1, steps));
            }
            crash_steps.sort_unstable();
            run_faults = SimDiskFaults {
                write_error: if rng.chance(0.4) { rng.range(1, 20) as f64 / 1000.0 } else { 0.0 },
                read_error: if rng.chance(0.2) { rng.range(1, 20) as f64 / 1000.0 } else { 0.0 },
                latent_on_write: 0.0,
                writeback: rng.range(0, 100) as f64 / 1000.0,
                crash_keep_dirty: rng.range(0, 1000) as f64 / 1000.0,
                crash_torn: rng.range(0, 1000) as f64 / 1000.0,
                torn_scatter: rng.chance(0.5),
            };
            restart_on_unavailable = true;
        }
        let down_ns_max = rng.range(0, 5_000_000);
        let with_files = rng.chance(0.5);
        let (snapshot_every, ual) = if with_files {
            // A small ring that must recycle: snapshots to files, checkpoints.
            let ual = UalConfig {
                segment_blocks: 4 << rng.below(2),
                segment_count: 4 + rng.below(5) as u32,
                write_blocks_max: write_blocks_max(rng, 2),
                writes_in_flight_max: 1 + rng.below(4) as u32,
                format_if_blank: true,
            };
            (Some(rng.range(3, 80)), ual)
        } else {
            // No snapshot file: a ring no seed fills halfway (asserted: no checkpoint happens), even
            // when every group commit is a single record padded to its own block (the log pads the
            // tail block while a write of it is in flight).
            let ual = UalConfig {
                segment_blocks: 64,
                segment_count: 64,
                write_blocks_max: write_blocks_max(rng, 3),
                writes_in_flight_max: 1 + rng.below(4) as u32,
                format_if_blank: true,
            };
            (None, ual)
        };
        disk.capacity_blocks = ual.device_blocks();
        Params {
            clean,
            shards,
            partitions,
            clients,
            registers,
            counters,
            steps,
            step_ns_max,
            think_ns_max,
            timeout_ns,
            retries_max,
            net,
            net_partitions,
            inbox_capacity,
            inbox_in_flight,
            proposals_pending_max,
            burst,
            disk,
            run_faults,
            crash_steps,
            restart_on_unavailable,
            down_ns_max,
            snapshot_every,
            ual,
        }
    }

    fn partition_config(&self) -> PartitionConfig {
        PartitionConfig {
            ual: self.ual,
            raft: RaftGroupConfig {
                election_timeout: ElectionTimeout::Fixed(10),
                proposals_pending_max: self.proposals_pending_max,
                ..RaftGroupConfig::default()
            },
            kv: KvLimits::small(),
            snapshot_every_entries: self.snapshot_every.unwrap_or(1 << 40),
            node_id: 1,
            voters: vec![1],
            snapshot_in_background: false,
        }
    }
}

/// `write_blocks_max` for a seed: 2, 4 .. 2^max_log2 (`UalConfig::validate` refuses 1).
fn write_blocks_max(rng: &mut SplitMix64, max_log2: u64) -> u32 {
    1 << rng.range(1, max_log2)
}

// ---------------------------------------------------------------------------------------------
// The shards' packet I/O: the endpoint outlives the shards (a crash rebuilds them, not the NIC).

struct Ep(Rc<RefCell<SimEndpoint>>);

impl PacketIo for Ep {
    type Rx = VecRx;
    type Tx = VecTx;

    fn rx_burst(&mut self, batch: &mut Batch<VecRx>) -> usize {
        self.0.borrow_mut().rx_burst(batch)
    }

    fn tx_alloc(&mut self, peer: &Peer) -> Option<VecTx> {
        self.0.borrow_mut().tx_alloc(peer)
    }

    fn tx_burst(&mut self, batch: &mut Batch<VecTx>) -> usize {
        self.0.borrow_mut().tx_burst(batch)
    }

    fn counters(&self) -> IoCounters {
        self.0.borrow().counters()
    }
}

/// A partition's device: the `SimDisk`, or (`lie`, the checker's self-test only) a disk that
/// completes durable writes without making them durable (into its volatile cache, lost at a
/// crash): the bug "acknowledged before durable" the simulator must catch.
struct SimDev {
    disk: SimDisk,
    lie: bool,
}

impl BlockIo for SimDev {
    fn block_size(&self) -> usize {
        self.disk.block_size()
    }

    fn capacity_blocks(&self) -> u64 {
        self.disk.capacity_blocks()
    }

    fn queue_depth(&self) -> usize {
        self.disk.queue_depth()
    }

    fn in_flight(&self) -> usize {
        self.disk.in_flight()
    }

    fn submit_write(&mut self, tag: u64, lba: u64, buf: BlockBuf, durable: bool) -> Result<(), SubmitError> {
        self.disk.submit_write(tag, lba, buf, durable && !self.lie)
    }

    fn submit_read(&mut self, tag: u64, lba: u64, buf: BlockBuf) -> Result<(), SubmitError> {
        self.disk.submit_read(tag, lba, buf)
    }

    fn submit_flush(&mut self, tag: u64) -> Result<(), SubmitError> {
        self.disk.submit_flush(tag)
    }

    fn poll_completions(&mut self, out: &mut Batch<Completion>) -> usize {
        self.disk.poll_completions(out)
    }
}

/// The running node: its shards and their KV state.
struct Node {
    shards: Vec<Shard<Ep>>,
    kvs: Vec<Rc<RefCell<KvShard<SimDev>>>>,
}

/// Removes the seed's snapshot directory, also when the seed fails.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// The model.

#[derive(Clone, Debug, PartialEq, Eq)]
enum WOp {
    Set(Vec<u8>),
    Del,
    Incr(i64),
    Cas(u64, Vec<u8>),
}

impl WOp {
    fn opcode(&self) -> u8 {
        match self {
            WOp::Set(_) => opcode::SET,
            WOp::Del => opcode::DEL,
            WOp::Incr(_) => opcode::INCR,
            WOp::Cas(..) => opcode::CAS,
        }
    }

    /// The value a register holds after this write applied (None: DEL).
    fn value(&self) -> Option<&[u8]> {
        match self {
            WOp::Set(v) | WOp::Cas(_, v) => Some(v),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WState {
    /// Sent, no final answer yet.
    Pending,
    /// A final answer came at `at`; `applied`: it changed the key (OK), else it wrote nothing.
    Acked { at: u64, applied: bool },
    /// The client gave up: it may apply at any time (a datagram may still be in the air).
    Unknown,
}

#[derive(Clone, Debug)]
struct Write {
    key: usize,
    op: WOp,
    client: usize,
    req: u64,
    first_sent: u64,
    state: WState,
    /// The version it got, once an answer or a read told.
    version: Option<u64>,
    /// Its final answer (status, body): every later one must be identical.
    answer: Option<(u8, Vec<u8>)>,
}

#[derive(Clone, Debug, Default)]
struct KeyModel {
    name: Vec<u8>,
    counter: bool,
    /// Its writes, in issue order.
    writes: Vec<usize>,
    /// A write to it is in flight.
    locked: bool,
    /// Clean class: GETs of it in flight (writes wait, so the plain model is exact for them).
    readers: u32,
    /// (time seen, the highest version seen by then), appended in time order.
    seen_max: Vec<(u64, u64)>,
    /// The version of the latest observation (0: absent): CAS guesses with it.
    hint: u64,
}

impl KeyModel {
    /// The highest version seen strictly before `t`.
    fn floor(&self, t: u64) -> u64 {
        let i = self.seen_max.partition_point(|&(at, _)| at < t);
        if i == 0 {
            0
        } else {
            self.seen_max[i - 1].1
        }
    }

    fn saw(&mut self, t: u64, version: u64) {
        let max = self.seen_max.last().map_or(0, |&(_, m)| m).max(version);
        self.seen_max.push((t, max));
    }
}

/// A state a register may be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cand {
    Absent,
    /// Written by write `w`, at `version` if known.
    Present {
        w: usize,
        version: Option<u64>,
    },
}

/// What a read returned.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ReadResult {
    Absent,
    Found { version: u64, value: Vec<u8> },
}

// ---------------------------------------------------------------------------------------------
// Clients.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReqKind {
    Get { key: usize },
    Write { w: usize },
}

#[derive(Debug)]
struct Outstanding {
    req: u64,
    kind: ReqKind,
    bytes: Vec<u8>,
    /// When this request id was (last) sent.
    sent_at: u64,
    attempts: u32,
    deadline: u64,
}

struct Client {
    id: u64,
    ep: SimEndpoint,
    next_req: u64,
    cur: Option<Outstanding>,
    idle_until: u64,
    /// Request id -> write, for every write this client sent.
    writes: BTreeMap<u64, usize>,
}

fn encode_request(client_id: u64, op: u8, req: u64, body: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; wire::HEADER_LEN + wire::FRAME_HEADER_LEN + body.len()];
    let mut w = DatagramWriter::request(&mut buf, client_id).expect("room");
    w.push(op, 0, req, body).expect("room");
    let n = w.finish();
    buf.truncate(n);
    buf
}

fn send(ep: &mut SimEndpoint, to: Peer, bytes: &[u8]) {
    let mut tx = ep.tx_alloc(&to).expect("sim endpoints always have buffers");
    tx.payload_mut()[..bytes.len()].copy_from_slice(bytes);
    tx.set_len(bytes.len());
    let mut b = Batch::with_capacity(1);
    b.push(tx).expect("room");
    assert_eq!(ep.tx_burst(&mut b), 1);
}

fn is_transient(s: Status) -> bool {
    matches!(s, Status::Busy | Status::NotLeader | Status::Unavailable)
}

// ---------------------------------------------------------------------------------------------
// The simulator.

struct Sim {
    seed: u64,
    p: Params,
    trace: bool,
    rng: SplitMix64,
    clock: SimClock,
    net: SimNet,
    placement: Placement,
    shard_addrs: Vec<Peer>,
    shard_eps: Vec<Rc<RefCell<SimEndpoint>>>,
    node: Option<Node>,
    /// While the node is down: the partitions' images, and when it comes back.
    down: Option<(Vec<Vec<u8>>, u64)>,
    restart_at: Option<u64>,
    heal_at: Option<u64>,
    next_crash: usize,
    clients: Vec<Client>,
    keys: Vec<KeyModel>,
    key_by_name: BTreeMap<Vec<u8>, usize>,
    writes: Vec<Write>,
    value_owner: BTreeMap<Vec<u8>, usize>,
    /// (key, version) -> the value it names, from answers and reads.
    versions: BTreeMap<(usize, u64), Vec<u8>>,
    /// Clean class: the plain model (key -> value, version).
    exact: BTreeMap<usize, (Vec<u8>, u64)>,
    snap_dir: TempDir,
    step: u64,
    stats: BTreeMap<&'static str, u64>,
    /// Self-test of the checker: devices acknowledge writes before they are durable.
    lie: bool,
}

macro_rules! trace {
    ($sim:expr, $($arg:tt)*) => {
        if $sim.trace {
            eprintln!("[step {:>6} t {:>10.3} ms] {}", $sim.step, $sim.clock.nanos() as f64 / 1e6, format!($($arg)*));
        }
    };
}

impl Sim {
    fn new(seed: u64, trace: bool) -> Self {
        let mut rng = SplitMix64::new(seed);
        let p = Params::draw(&mut rng);
        let clock = SimClock::new();
        let net = SimNet::new(p.net, clock.clone(), rng.next_u64());
        let shard_addrs: Vec<Peer> =
            (0..p.shards).map(|i| Peer::from_ip_port(Ipv4Addr::new(10, 0, 0, 1 + i as u8), 9000)).collect();
        let shard_eps = shard_addrs.iter().map(|a| Rc::new(RefCell::new(net.endpoint(*a)))).collect();
        let clients = (0..p.clients)
            .map(|i| Client {
                id: 1000 + i as u64,
                ep: net.endpoint(Peer::from_ip_port(Ipv4Addr::new(10, 0, 1, 1 + i as u8), 7000)),
                next_req: 1,
                cur: None,
                idle_until: 0,
                writes: BTreeMap::new(),
            })
            .collect();
        let mut keys = Vec::new();
        for i in 0..p.registers {
            keys.push(KeyModel { name: format!("reg-{i}").into_bytes(), ..KeyModel::default() });
        }
        for i in 0..p.counters {
            keys.push(KeyModel {
                name: format!("ctr-{i}").into_bytes(),
                counter: true,
                ..KeyModel::default()
            });
        }
        let key_by_name = keys.iter().enumerate().map(|(i, k)| (k.name.clone(), i)).collect();
        let dir = std::env::temp_dir().join(format!(
            "vigil-sim-shards-{}-{}-{seed}",
            std::process::id(),
            SIM_DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let placement = Placement::new(p.partitions, p.shards).expect("valid placement");
        Sim {
            seed,
            trace,
            rng,
            clock,
            net,
            placement,
            shard_addrs,
            shard_eps,
            node: None,
            down: None,
            restart_at: None,
            heal_at: None,
            next_crash: 0,
            clients,
            keys,
            key_by_name,
            writes: Vec::new(),
            value_owner: BTreeMap::new(),
            versions: BTreeMap::new(),
            exact: BTreeMap::new(),
            snap_dir: TempDir(dir),
            step: 0,
            stats: BTreeMap::new(),
            lie: false,
            p,
        }
    }

    fn count(&mut self, what: &'static str, n: u64) {
        *self.stats.entry(what).or_default() += n;
    }

    #[track_caller]
    fn violation(&self, what: String) -> ! {
        panic!(
            "INVARIANT VIOLATED (seed {}, step {}, t {} ns): {what}",
            self.seed,
            self.step,
            self.clock.nanos()
        );
    }

    fn now(&self) -> u64 {
        self.clock.nanos()
    }

    // ----- the node's life -----

    /// Opens every partition (fresh disks, or the images a crash left), checks what each
    /// recovered against the model, and assembles the shards as `serve::run_shard_on` does.
    fn start_node(&mut self, images: Option<Vec<Vec<u8>>>) -> Node {
        let pcfg = self.p.partition_config();
        let total = self.p.partitions;
        let shards = self.p.shards;
        let routers: Vec<Option<Router>> = if shards == 1 {
            vec![None]
        } else {
            let cfg = InboxConfig {
                shards,
                partitions: total,
                inbox_capacity: self.p.inbox_capacity,
                in_flight_max: self.p.inbox_in_flight,
                pool_slots: shards * self.p.inbox_in_flight * 2,
                slot_bytes: (DATAGRAM_MAX + 64).next_power_of_two(),
            };
            inbox::build(&cfg).expect("inbox config").into_iter().map(Some).collect()
        };
        let mut images = images.map(|v| v.into_iter().map(Some).collect::<Vec<_>>());
        let mut node = Node { shards: Vec::new(), kvs: Vec::new() };
        for (id, router) in routers.into_iter().enumerate() {
            let mut partitions = Vec::new();
            for p in (id as u32..total).step_by(shards) {
                let p = p as u16;
                let disk_cfg = SimDiskConfig { faults: SimDiskFaults::none(), ..self.p.disk };
                let seed = self.rng.next_u64();
                let disk = SimDev {
                    lie: self.lie,
                    disk: match images.as_mut() {
                        None => SimDisk::new(disk_cfg, self.clock.clone(), seed),
                        Some(imgs) => SimDisk::from_image(
                            disk_cfg,
                            self.clock.clone(),
                            seed,
                            imgs[usize::from(p)].take().expect("one image per partition"),
                        ),
                    },
                };
                let faults = disk.disk.faults_handle();
                let file = self.p.snapshot_every.map(|_| SnapshotFile::new(&self.snap_dir.0, p));
                let (mut part, report) = match Partition::open(p, disk, &pcfg, file) {
                    Ok(x) => x,
                    Err(e) => self.violation(format!("partition {p} does not recover: {e}")),
                };
                trace!(self, "partition {p} (shard {id}) recovered: {report}");
                if report.snapshot_index.is_some() {
                    self.count("recoveries from a snapshot file", 1);
                }
                if report.log.truncated_at_lsn.is_some() {
                    self.count("recoveries that cut a torn tail", 1);
                }
                self.count("entries replayed at recovery", report.replayed);
                self.settle(&mut part);
                self.check_recovered(&part);
                faults.set(self.p.run_faults);
                partitions.push(part);
            }
            let kv = Rc::new(RefCell::new(KvShard::new(partitions, self.placement, router, DATAGRAM_MAX)));
            let mut d = Dispatcher::new();
            ops::register_all(&mut d).expect("built-ins register");
            Kv(Rc::clone(&kv)).register(&mut d).expect("kv registers");
            let engine = Engine::new(d, EngineLimits { requests_per_datagram_max: 64 });
            // Reservations for late answers: as many as can wait, within reason (a crowd's small
            // limits make them back-pressure too).
            let reserved = (self.p.proposals_pending_max + self.p.inbox_in_flight).min(256);
            let limits = ShardLimits { burst_size_max: self.p.burst, answers_reserved_max: reserved };
            let shard = Shard::new(id, Ep(Rc::clone(&self.shard_eps[id])), engine, limits)
                .with_service(Box::new(KvService(Rc::clone(&kv))));
            node.shards.push(shard);
            node.kvs.push(kv);
        }
        node
    }

    /// Polls a freshly opened partition until it leads and serves reads (bounded, in sim time).
    fn settle(&mut self, part: &mut Partition<SimDev>) {
        for _ in 0..SETTLE_POLLS_MAX {
            if part.serves_reads() {
                return;
            }
            self.clock.advance(10_000);
            let now = Nanos(self.now());
            part.poll(now, &mut |d| panic!("a waiter right after open: {d:?}"));
        }
        self.violation(format!("partition {} never served reads after recovery: {part:?}", part.id()));
    }

    /// Power cut: every partition's device as the crash leaves it; the node stays down a while.
    fn crash(&mut self, why: &str) {
        let Some(node) = self.node.take() else { return };
        trace!(self, "CRASH ({why})");
        self.count("crashes", 1);
        let mut images = vec![Vec::new(); self.p.partitions as usize];
        let Node { shards, kvs } = node;
        drop(shards);
        for kv in kvs {
            let kv = match Rc::try_unwrap(kv) {
                Ok(kv) => kv.into_inner(),
                Err(_) => panic!("the shard's KV state is still shared after the shard is gone"),
            };
            let c = kv.counters();
            self.count("requests forwarded across shards", c.forwarded);
            self.count("forwards refused (BUSY)", c.forward_refused);
            for part in kv.into_partitions() {
                let id = part.id();
                let c = part.counters();
                if self.p.snapshot_every.is_none() && c.snapshots > 0 {
                    panic!(
                        "sim configuration error (seed {}): partition {id} checkpointed without a snapshot file; \
                         make the ring larger",
                        self.seed
                    );
                }
                self.count("snapshots taken", c.snapshots);
                self.count("writes refused BUSY by partitions", c.busy);
                self.count("entries applied", c.applied);
                let mut disk = part.into_device().disk;
                let dc = disk.counters();
                self.count("disk write errors", dc.write_errors);
                self.count("disk read errors", dc.read_errors);
                let (img, rep) = disk.crash_image();
                self.count("writes in flight at crashes", rep.in_flight_writes);
                self.count("torn writes at crashes", rep.torn);
                self.count("in-flight writes lost at crashes", rep.lost);
                self.count("dirty blocks lost at crashes", rep.dirty_blocks - rep.dirty_kept);
                trace!(self, "  partition {id}: {rep:?}");
                images[usize::from(id)] = img;
            }
        }
        // What the NIC had received dies with the process.
        self.drain_shard_endpoints();
        let down = self.rng.range(0, self.p.down_ns_max);
        self.down = Some((images, self.now() + down));
        self.restart_at = None;
    }

    fn drain_shard_endpoints(&mut self) {
        let mut b = Batch::with_capacity(256);
        for ep in &self.shard_eps {
            while ep.borrow_mut().rx_burst(&mut b) > 0 {
                self.stats
                    .entry("datagrams lost while the node was down")
                    .and_modify(|n| *n += b.len() as u64)
                    .or_insert(b.len() as u64);
                b.clear();
            }
        }
    }

    fn restart(&mut self) {
        let (images, _) = self.down.take().expect("down");
        trace!(self, "RESTART");
        let node = self.start_node(Some(images));
        self.node = Some(node);
        self.count("recoveries", 1);
        if self.p.restart_on_unavailable && self.rng.chance(0.15) {
            // A crash storm: power fails again while the fresh node re-commits and serves.
            self.restart_at = Some(self.now() + self.rng.range(0, 300_000));
            self.count("crashes right after a restart", 1);
        }
    }

    /// After recovery, before serving: every model key owned by `part` reads as the model allows,
    /// and the projection holds no key the model never wrote.
    fn check_recovered(&mut self, part: &Partition<SimDev>) {
        let now = self.now();
        let mut out = vec![0u8; 4096];
        for key in 0..self.keys.len() {
            let name = self.keys[key].name.clone();
            if self.placement.partition_of(&name) != part.id() {
                continue;
            }
            let result = match part.get(&name, &mut out) {
                Ok(n) => ReadResult::Found {
                    version: u64::from_le_bytes(out[..8].try_into().expect("8 bytes")),
                    value: out[8..n].to_vec(),
                },
                Err(Status::NotFound) => ReadResult::Absent,
                Err(s) => self.violation(format!(
                    "recovered partition {} answers GET {:?} with {s:?}",
                    part.id(),
                    name
                )),
            };
            self.check_read(key, now, now, &result, "after recovery", true);
            self.count("keys checked after recovery", 1);
        }
        for (k, _, _) in part.kv().iter() {
            if !self.key_by_name.contains_key(k) {
                self.violation(format!("recovered partition {} holds key {k:?} nobody wrote", part.id()));
            }
        }
    }

    /// Every few steps: every model key's state in its partition's projection (applied = committed
    /// = durable) must be one the model allows now, and no other key may exist.
    fn scan_projections(&mut self) {
        let Some(node) = self.node.as_ref() else { return };
        let mut found = Vec::new();
        for kv in &node.kvs {
            for part in kv.borrow().partitions() {
                for (k, v, ver) in part.kv().iter() {
                    match self.key_by_name.get(k) {
                        Some(&key) => {
                            found.push((key, ReadResult::Found { version: ver, value: v.to_vec() }))
                        }
                        None => {
                            self.violation(format!("partition {} holds key {k:?} nobody wrote", part.id()))
                        }
                    }
                }
            }
        }
        let mut results: Vec<ReadResult> = vec![ReadResult::Absent; self.keys.len()];
        for (key, r) in found {
            results[key] = r;
        }
        let now = self.now();
        for (key, r) in results.iter().enumerate() {
            self.check_read(key, now, now, r, "projection scan", false);
        }
        self.count("projection scans", 1);
    }

    // ----- the model's checks -----

    /// Registers: the states key `key` may be in for a read sent at `s` and answered at `r`
    /// (`except`: a write whose own effect is left out). Returns the candidates.
    fn candidates(&self, key: usize, s: u64, r: u64, except: Option<usize>) -> Vec<Cand> {
        let ws = &self.keys[key].writes;
        let cand_of = |w: usize| match self.writes[w].op.value() {
            Some(_) => Cand::Present { w, version: self.writes[w].version },
            None => Cand::Absent,
        };
        let base = ws.iter().rposition(|&w| {
            Some(w) != except && matches!(self.writes[w].state, WState::Acked { at, applied: true } if at < s)
        });
        let mut out = vec![base.map_or(Cand::Absent, |i| cand_of(ws[i]))];
        for &w in ws {
            if Some(w) == except || base.is_some_and(|i| ws[i] == w) || self.writes[w].first_sent >= r {
                continue;
            }
            let maybe = match self.writes[w].state {
                WState::Pending | WState::Unknown => true,
                WState::Acked { at, applied } => applied && at >= s,
            };
            if maybe {
                out.push(cand_of(w));
            }
        }
        out
    }

    /// The version of the last write acknowledged (applied) before `s`, if it has one.
    fn base_version(&self, key: usize, s: u64, except: Option<usize>) -> Option<(usize, u64)> {
        let ws = &self.keys[key].writes;
        let i = ws.iter().rposition(|&w| {
            Some(w) != except && matches!(self.writes[w].state, WState::Acked { at, applied: true } if at < s)
        })?;
        let w = ws[i];
        self.writes[w].version.map(|v| (w, v))
    }

    /// Counters: (sum of deltas acknowledged before `s`, sum of every delta that may have applied
    /// by `r`).
    fn counter_bounds(&self, key: usize, s: u64, r: u64, except: Option<usize>) -> (i64, i64) {
        let (mut lo, mut hi) = (0i64, 0i64);
        for &w in &self.keys[key].writes {
            let WOp::Incr(d) = self.writes[w].op else { continue };
            if Some(w) == except {
                continue;
            }
            match self.writes[w].state {
                WState::Acked { at, applied: true } => {
                    if at < s {
                        lo += d;
                    }
                    hi += d;
                }
                WState::Acked { applied: false, .. } => {}
                WState::Pending | WState::Unknown => {
                    if self.writes[w].first_sent < r {
                        hi += d;
                    }
                }
            }
        }
        (lo, hi)
    }

    /// Records that `key` has `version` holding `value` (checks it never named another value).
    fn learn_version(&mut self, key: usize, version: u64, value: &[u8], at: u64, what: &str) {
        if version == 0 {
            self.violation(format!("{what}: key {:?} has version 0", self.name(key)));
        }
        match self.versions.get(&(key, version)) {
            Some(v) if v.as_slice() != value => self.violation(format!(
                "{what}: key {:?} version {version} holds {:?}, but it held {:?} before",
                self.name(key),
                String::from_utf8_lossy(value),
                String::from_utf8_lossy(v)
            )),
            Some(_) => {}
            None => {
                self.versions.insert((key, version), value.to_vec());
            }
        }
        self.keys[key].saw(at, version);
        self.keys[key].hint = version;
    }

    fn name(&self, key: usize) -> String {
        String::from_utf8_lossy(&self.keys[key].name).into_owned()
    }

    /// A read of `key` sent at `s` and answered at `r` returned `result`.
    fn check_read(&mut self, key: usize, s: u64, r: u64, result: &ReadResult, what: &str, exact: bool) {
        let name = self.name(key);
        if self.keys[key].counter {
            self.check_counter_read(key, s, r, result, what, exact);
            return;
        }
        let cands = self.candidates(key, s, r, None);
        match result {
            ReadResult::Absent => {
                if !cands.contains(&Cand::Absent) {
                    self.violation(format!(
                        "{what}: GET {name:?} is NOT_FOUND, but it must hold one of {}",
                        self.describe(&cands)
                    ));
                }
                self.keys[key].hint = 0;
            }
            ReadResult::Found { version, value } => {
                let floor = self.keys[key].floor(s);
                if *version < floor {
                    self.violation(format!(
                        "{what}: GET {name:?} returned version {version}, but version {floor} was seen before \
                         the read was sent (a durable state went back)"
                    ));
                }
                let Some(&w) = self.value_owner.get(value) else {
                    self.violation(format!(
                        "{what}: GET {name:?} returned {:?}, a value no write produced",
                        String::from_utf8_lossy(value)
                    ))
                };
                if self.writes[w].key != key {
                    self.violation(format!("{what}: GET {name:?} returned the value of another key's write"));
                }
                let ok = cands.iter().any(|c| matches!(c, Cand::Present { w: cw, version: v } if *cw == w && v.is_none_or(|v| v == *version)));
                if !ok {
                    self.violation(format!(
                        "{what}: GET {name:?} returned version {version} value {:?} (write {w}: {:?}), \
                         but it must hold one of {}",
                        String::from_utf8_lossy(value),
                        self.writes[w],
                        self.describe(&cands)
                    ));
                }
                if let Some((bw, bv)) = self.base_version(key, s, None) {
                    if bw != w && *version <= bv {
                        self.violation(format!(
                            "{what}: GET {name:?} returned write {w} at version {version}, not newer than the \
                             acknowledged write {bw} at version {bv}"
                        ));
                    }
                }
                self.set_write_version(w, *version, what);
                self.learn_version(key, *version, value, r, what);
            }
        }
        if self.p.clean && exact {
            let expected = self.exact.get(&key).cloned();
            let got = match result {
                ReadResult::Absent => None,
                ReadResult::Found { version, value } => Some((value.clone(), *version)),
            };
            if got != expected {
                self.violation(format!(
                    "{what}: clean model: GET {name:?} returned {got:?}, the model has {expected:?}"
                ));
            }
        }
    }

    fn check_counter_read(
        &mut self,
        key: usize,
        s: u64,
        r: u64,
        result: &ReadResult,
        what: &str,
        exact: bool,
    ) {
        let name = self.name(key);
        let (lo, hi) = self.counter_bounds(key, s, r, None);
        match result {
            ReadResult::Absent => {
                if lo > 0 {
                    self.violation(format!(
                        "{what}: GET {name:?} is NOT_FOUND after increments of {lo} were acknowledged"
                    ));
                }
                if self.p.clean && exact && self.exact.contains_key(&key) {
                    self.violation(format!("{what}: clean model: GET {name:?} NOT_FOUND, model has it"));
                }
            }
            ReadResult::Found { version, value } => {
                let Some(x) = std::str::from_utf8(value).ok().and_then(|t| t.parse::<i64>().ok()) else {
                    self.violation(format!("{what}: counter {name:?} holds {value:?}, not an integer"))
                };
                if x < lo || x > hi {
                    self.violation(format!(
                        "{what}: counter {name:?} reads {x} at version {version}; acknowledged increments sum \
                         to {lo} and all possible ones to {hi}"
                    ));
                }
                let floor = self.keys[key].floor(s);
                if *version < floor {
                    self.violation(format!(
                        "{what}: counter {name:?} version {version} is below version {floor} seen before"
                    ));
                }
                self.learn_version(key, *version, value, r, what);
                if self.p.clean && exact {
                    let expected = self.exact.get(&key).cloned();
                    if expected != Some((value.clone(), *version)) {
                        self.violation(format!(
                            "{what}: clean model: counter {name:?} reads {x} v{version}, model has {expected:?}"
                        ));
                    }
                }
            }
        }
    }

    fn set_write_version(&mut self, w: usize, version: u64, what: &str) {
        match self.writes[w].version {
            Some(v) if v != version => self.violation(format!(
                "{what}: write {w} ({:?}) is seen at version {version}, but it got version {v}",
                self.writes[w]
            )),
            _ => self.writes[w].version = Some(version),
        }
    }

    fn describe(&self, cands: &[Cand]) -> String {
        let parts: Vec<String> = cands
            .iter()
            .map(|c| match c {
                Cand::Absent => "absent".to_string(),
                Cand::Present { w, version } => format!(
                    "write {w} {:?} v{}",
                    String::from_utf8_lossy(self.writes[*w].op.value().unwrap_or_default()),
                    version.map_or("?".into(), |v| v.to_string())
                ),
            })
            .collect();
        format!("[{}]", parts.join(", "))
    }

    /// A final answer to write `w` arrived (for its current attempt or a late one).
    fn on_write_answer(&mut self, w: usize, status: Status, body: &[u8], current: bool) {
        let now = self.now();
        if status == Status::Stale {
            if current {
                self.violation(format!(
                    "write {w} ({:?}) answered STALE while it is the client's latest",
                    self.writes[w]
                ));
            }
            self.count("late answers STALE", 1);
            return;
        }
        // Exactly-once: the same answer every time.
        let answer = (status as u8, body.to_vec());
        if let Some(prev) = &self.writes[w].answer {
            if *prev != answer {
                self.violation(format!(
                    "exactly-once: write {w} (client {} request {}: {:?}) answered {:?} {:?}, but earlier {:?} {:?}",
                    self.writes[w].client,
                    self.writes[w].req,
                    self.writes[w],
                    status,
                    body,
                    Status::from_u8(prev.0),
                    prev.1
                ));
            }
            self.count("repeated final answers (identical)", 1);
            return;
        }
        self.writes[w].answer = Some(answer);
        let key = self.writes[w].key;
        let (s, r) = (self.writes[w].first_sent, now);
        let name = self.name(key);
        let floor = self.keys[key].floor(s);
        let op = self.writes[w].op.clone();
        let applied = match (&op, status) {
            (WOp::Set(value), Status::Ok) | (WOp::Cas(_, value), Status::Ok) => {
                let Ok(b) = <[u8; 8]>::try_from(body) else {
                    self.violation(format!("SET/CAS answer body {body:?}"))
                };
                let version = u64::from_le_bytes(b);
                if version <= floor {
                    self.violation(format!(
                        "write {w} to {name:?} got version {version}, not above version {floor} seen before it was sent"
                    ));
                }
                if let WOp::Cas(expected, _) = op {
                    let cands = self.candidates(key, s, r, Some(w));
                    let ok = cands.iter().any(|c| match c {
                        Cand::Absent => expected == 0,
                        Cand::Present { version: v, .. } => expected != 0 && v.is_none_or(|v| v == expected),
                    });
                    if !ok {
                        self.violation(format!(
                            "CAS {w} on {name:?} expecting {expected} succeeded, but the key was one of {}",
                            self.describe(&cands)
                        ));
                    }
                }
                self.set_write_version(w, version, "write answer");
                let value = value.clone();
                self.learn_version(key, version, &value, now, "write answer");
                if self.p.clean {
                    self.exact.insert(key, (value, version));
                }
                true
            }
            (WOp::Cas(expected, _), Status::CasMismatch) => {
                let expected = *expected;
                let cands = self.candidates(key, s, r, Some(w));
                let ok = cands.iter().any(|c| match c {
                    Cand::Absent => expected != 0,
                    Cand::Present { version: v, .. } => expected == 0 || v.is_none_or(|v| v != expected),
                });
                if !ok {
                    self.violation(format!(
                        "CAS {w} on {name:?} expecting {expected} answered CAS_MISMATCH, but the key was one of {}",
                        self.describe(&cands)
                    ));
                }
                self.count("CAS mismatches", 1);
                false
            }
            (WOp::Del, Status::Ok) => {
                let existed = match body {
                    [0] => false,
                    [1] => true,
                    _ => self.violation(format!("DEL answer body {body:?}")),
                };
                let cands = self.candidates(key, s, r, Some(w));
                let ok = cands.iter().any(|c| matches!(c, Cand::Present { .. }) == existed);
                if !ok {
                    self.violation(format!(
                        "DEL {w} on {name:?} answered existed={existed}, but the key was one of {}",
                        self.describe(&cands)
                    ));
                }
                self.keys[key].hint = 0;
                if self.p.clean {
                    self.exact.remove(&key);
                }
                true
            }
            (WOp::Incr(delta), Status::Ok) => {
                let delta = *delta;
                if body.len() != 16 {
                    self.violation(format!("INCR answer body {body:?}"));
                }
                let x = i64::from_le_bytes(body[..8].try_into().expect("8"));
                let version = u64::from_le_bytes(body[8..].try_into().expect("8"));
                let (lo, _) = self.counter_bounds(key, s, r, Some(w));
                let (_, hi) = self.counter_bounds(key, s, r, None);
                if x < lo + delta || x > hi {
                    self.violation(format!(
                        "INCR {w} of {name:?} by {delta} answered {x}; acknowledged before it: {lo}, all possible: {hi}"
                    ));
                }
                if version <= floor {
                    self.violation(format!(
                        "INCR {w} of {name:?} got version {version} <= {floor} seen before"
                    ));
                }
                self.set_write_version(w, version, "INCR answer");
                let text = x.to_string().into_bytes();
                self.learn_version(key, version, &text, now, "INCR answer");
                if self.p.clean {
                    self.exact.insert(key, (text, version));
                }
                true
            }
            (op, status) => self.violation(format!("write {w} {op:?} on {name:?} answered {status:?}")),
        };
        match self.writes[w].state {
            WState::Pending => {}
            WState::Unknown => self.count("given-up writes answered late", 1),
            WState::Acked { .. } => unreachable!("answer recorded once"),
        }
        // A write answered after the client gave up stays a possibility (its answer may have raced
        // later writes of the key); one answered while current is settled.
        if current {
            self.writes[w].state = WState::Acked { at: now, applied };
        }
    }

    // ----- clients -----

    fn client_step(&mut self, c: usize, issue: bool) {
        let now = self.now();
        if let Some(o) = &self.clients[c].cur {
            if now < o.deadline {
                return;
            }
            if o.attempts >= self.p.retries_max {
                let kind = o.kind;
                self.clients[c].cur = None;
                self.clients[c].idle_until = now;
                match kind {
                    ReqKind::Write { w } => {
                        trace!(self, "client {c} gives up write {w}");
                        self.writes[w].state = WState::Unknown;
                        self.keys[self.writes[w].key].locked = false;
                        self.count("writes given up (outcome unknown)", 1);
                        if self.p.clean {
                            self.violation(format!("clean class: write {w} was given up"));
                        }
                    }
                    ReqKind::Get { key } => {
                        if self.p.clean {
                            self.keys[key].readers -= 1;
                        }
                        self.count("GETs given up", 1);
                        if self.p.clean {
                            self.violation("clean class: a GET was given up".into());
                        }
                    }
                }
                return;
            }
            self.retry(c);
            return;
        }
        if issue && now >= self.clients[c].idle_until {
            self.issue(c);
        }
    }

    fn retry(&mut self, c: usize) {
        let now = self.now();
        let shard = self.rng.below(self.p.shards as u64) as usize;
        let timeout = self.p.timeout_ns;
        let client_id = self.clients[c].id;
        let cl = &mut self.clients[c];
        let o = cl.cur.as_mut().expect("outstanding");
        o.attempts += 1;
        if let ReqKind::Get { key } = o.kind {
            // A GET retries under a new id, so its answer's send time is known.
            o.req = cl.next_req;
            cl.next_req += 1;
            o.bytes = encode_request(client_id, opcode::GET, o.req, &self.keys[key].name);
            o.sent_at = now;
        }
        o.deadline = now + timeout;
        send(&mut cl.ep, self.shard_addrs[shard], &o.bytes);
        let (req, attempts) = (o.req, o.attempts);
        self.count("resends", 1);
        trace!(self, "client {c} resends req {req} (attempt {attempts}) to shard {shard}");
    }

    fn pick_key(&mut self, counter: bool, unlocked: bool) -> Option<usize> {
        let range: Vec<usize> = (0..self.keys.len())
            .filter(|&k| self.keys[k].counter == counter)
            .filter(|&k| !(unlocked && self.keys[k].locked))
            .filter(|&k| !(unlocked && self.p.clean && self.keys[k].readers > 0))
            .collect();
        if range.is_empty() {
            return None;
        }
        Some(range[self.rng.below(range.len() as u64) as usize])
    }

    fn issue(&mut self, c: usize) {
        let now = self.now();
        let roll = self.rng.below(100);
        let shard = self.rng.below(self.p.shards as u64) as usize;
        let req = self.clients[c].next_req;
        self.clients[c].next_req += 1;
        let client_id = self.clients[c].id;
        let write_key = if roll >= 35 {
            let counter = roll >= 80;
            self.pick_key(counter, true).map(|k| (k, counter))
        } else {
            None
        };
        let (kind, bytes) = match write_key {
            Some((key, counter)) => {
                let op = if counter {
                    WOp::Incr(self.rng.range(1, 1000) as i64)
                } else {
                    let mut value = format!("{client_id}.{req}.").into_bytes();
                    for _ in 0..self.rng.below(48) {
                        value.push(b'a' + self.rng.below(26) as u8);
                    }
                    match self.rng.below(10) {
                        0..=4 => WOp::Set(value),
                        5 | 6 => WOp::Del,
                        _ => {
                            let hint = self.keys[key].hint;
                            let expected = match self.rng.below(10) {
                                0..=5 => hint,
                                6 | 7 => 0,
                                _ => hint + self.rng.range(1, 3),
                            };
                            WOp::Cas(expected, value)
                        }
                    }
                };
                let name = self.keys[key].name.clone();
                let wop = match &op {
                    WOp::Set(v) => Op::Set { key: &name, value: v },
                    WOp::Del => Op::Del { key: &name },
                    WOp::Incr(d) => Op::Incr { key: &name, delta: *d },
                    WOp::Cas(e, v) => Op::Cas { key: &name, expected_version: *e, value: v },
                };
                let mut body = vec![0u8; DATAGRAM_MAX];
                let n = encode_write_body(&wop, &mut body).expect("fits");
                let bytes = encode_request(client_id, op.opcode(), req, &body[..n]);
                let w = self.writes.len();
                if let Some(v) = op.value() {
                    assert!(self.value_owner.insert(v.to_vec(), w).is_none(), "values are unique");
                }
                trace!(
                    self,
                    "client {c} req {req}: write {w} {op:?} on {:?} via shard {shard}",
                    self.name(key)
                );
                self.writes.push(Write {
                    key,
                    op,
                    client: c,
                    req,
                    first_sent: now,
                    state: WState::Pending,
                    version: None,
                    answer: None,
                });
                self.keys[key].writes.push(w);
                self.keys[key].locked = true;
                self.clients[c].writes.insert(req, w);
                self.count("writes sent", 1);
                (ReqKind::Write { w }, bytes)
            }
            None => {
                // The clean class reads only keys with no write in flight: the model is exact then.
                let key = if self.p.clean {
                    let counter = self.rng.chance(0.3);
                    match self.pick_key(counter, true) {
                        Some(k) => k,
                        None => {
                            self.clients[c].idle_until = now + self.p.think_ns_max / 2 + 1;
                            return;
                        }
                    }
                } else {
                    self.rng.below(self.keys.len() as u64) as usize
                };
                trace!(self, "client {c} req {req}: GET {:?} via shard {shard}", self.name(key));
                if self.p.clean {
                    self.keys[key].readers += 1;
                }
                self.count("GETs sent", 1);
                (ReqKind::Get { key }, encode_request(client_id, opcode::GET, req, &self.keys[key].name))
            }
        };
        let cl = &mut self.clients[c];
        send(&mut cl.ep, self.shard_addrs[shard], &bytes);
        cl.cur = Some(Outstanding {
            req,
            kind,
            bytes,
            sent_at: now,
            attempts: 1,
            deadline: now + self.p.timeout_ns,
        });
    }

    fn client_receive(&mut self, c: usize) {
        let mut b = Batch::with_capacity(64);
        loop {
            b.clear();
            if self.clients[c].ep.rx_burst(&mut b) == 0 {
                return;
            }
            let got: Vec<VecRx> = b.drain().collect();
            for d in got {
                self.on_datagram(c, d.payload());
            }
        }
    }

    fn on_datagram(&mut self, c: usize, bytes: &[u8]) {
        let Ok(h) = wire::decode_header(bytes) else {
            self.violation(format!("client {c} got garbage {bytes:?}"))
        };
        if !h.is_response() || h.client_id != self.clients[c].id || h.count != 1 {
            self.violation(format!("client {c} got a bad response header {h:?}"));
        }
        let Some(Ok(f)) = wire::Frames::new(bytes, h.count).next() else {
            self.violation(format!("client {c} got an unreadable frame {bytes:?}"))
        };
        let Some(status) = Status::from_u8(f.status) else {
            self.violation(format!("client {c} got unknown status {}", f.status))
        };
        self.count("answers received", 1);
        let now = self.now();
        let current =
            self.clients[c].cur.as_ref().filter(|o| o.req == f.request_id).map(|o| (o.kind, o.sent_at));
        if let Some(w) = self.clients[c].writes.get(&f.request_id).copied() {
            if f.opcode != self.writes[w].op.opcode() {
                self.violation(format!("write {w} answered with opcode {}", f.opcode));
            }
            let is_current = current.is_some();
            trace!(
                self,
                "client {c} req {}: write {w} answered {status:?} {:?}{}",
                f.request_id,
                f.body,
                if is_current { "" } else { " (late)" }
            );
            if is_transient(status) {
                self.count(
                    match status {
                        Status::Busy => "answers BUSY",
                        Status::NotLeader => "answers NOT_LEADER",
                        _ => "answers UNAVAILABLE",
                    },
                    1,
                );
                if status == Status::Unavailable && self.p.restart_on_unavailable && self.restart_at.is_none()
                {
                    // The operator restarts the node whose log failed.
                    self.restart_at = Some(now + self.rng.range(0, 3_000_000));
                }
                if is_current {
                    let backoff = self.rng.range(50_000, 800_000);
                    let o = self.clients[c].cur.as_mut().expect("current");
                    o.deadline = o.deadline.min(now + backoff);
                }
                return;
            }
            self.on_write_answer(w, status, f.body, is_current);
            if is_current {
                self.keys[self.writes[w].key].locked = false;
                self.clients[c].cur = None;
                self.clients[c].idle_until = now + self.rng.range(0, self.p.think_ns_max);
            }
            return;
        }
        let Some((ReqKind::Get { key }, sent_at)) = current else {
            self.count("late GET answers ignored", 1);
            return;
        };
        if f.opcode != opcode::GET {
            self.violation(format!("GET answered with opcode {}", f.opcode));
        }
        trace!(
            self,
            "client {c} req {}: GET {:?} answered {status:?} {:?}",
            f.request_id,
            self.name(key),
            String::from_utf8_lossy(f.body)
        );
        let result = match status {
            Status::Ok => {
                if f.body.len() < 8 {
                    self.violation(format!("GET answer body {:?}", f.body));
                }
                ReadResult::Found {
                    version: u64::from_le_bytes(f.body[..8].try_into().expect("8")),
                    value: f.body[8..].to_vec(),
                }
            }
            Status::NotFound => ReadResult::Absent,
            s if is_transient(s) => {
                self.count("GETs answered transiently", 1);
                let backoff = self.rng.range(50_000, 800_000);
                let o = self.clients[c].cur.as_mut().expect("current");
                o.deadline = o.deadline.min(now + backoff);
                return;
            }
            s => self.violation(format!("GET {:?} answered {s:?}", self.name(key))),
        };
        self.check_read(key, sent_at, now, &result, "client GET", true);
        self.count("GETs checked", 1);
        if self.p.clean {
            self.keys[key].readers -= 1;
        }
        self.clients[c].cur = None;
        self.clients[c].idle_until = now + self.rng.range(0, self.p.think_ns_max);
    }

    // ----- the loop -----

    fn tick(&mut self, issue: bool) {
        let dt = self.rng.range(1_000, self.p.step_ns_max);
        self.clock.advance(dt);
        let now = self.now();
        // The node's life.
        if let Some((_, up_at)) = &self.down {
            if now >= *up_at {
                self.restart();
            } else {
                self.drain_shard_endpoints();
            }
        } else if issue
            && self.next_crash < self.p.crash_steps.len()
            && self.p.crash_steps[self.next_crash] <= self.step
        {
            self.next_crash += 1;
            self.crash("scheduled");
        } else if self.restart_at.is_some_and(|t| now >= t) {
            self.count("unscheduled crashes (after UNAVAILABLE, or crash storms)", 1);
            self.crash("restart after UNAVAILABLE, or a crash storm");
        }
        // Network partitions.
        if self.p.net_partitions && issue {
            match self.heal_at {
                Some(t) if now >= t => {
                    trace!(self, "network heals");
                    self.net.heal();
                    self.heal_at = None;
                }
                None if self.rng.chance(1.0 / 800.0) => {
                    let clients: Vec<Peer> =
                        self.clients.iter().filter(|_| self.rng.chance(0.5)).map(|c| c.ep.addr()).collect();
                    let shards: Vec<Peer> =
                        self.shard_addrs.iter().filter(|_| self.rng.chance(0.6)).copied().collect();
                    if !clients.is_empty() && !shards.is_empty() {
                        trace!(self, "network partition: clients {clients:?} | shards {shards:?}");
                        self.net.partition(&clients, &shards);
                        self.heal_at = Some(now + self.rng.range(500_000, 40_000_000));
                        self.count("network partitions", 1);
                    }
                }
                _ => {}
            }
        }
        for c in 0..self.clients.len() {
            self.client_step(c, issue);
        }
        if let Some(node) = self.node.as_mut() {
            for shard in &mut node.shards {
                let now = Nanos(self.clock.nanos());
                shard.poll_once(now);
            }
        }
        for c in 0..self.clients.len() {
            self.client_receive(c);
        }
        if self.step.is_multiple_of(16) {
            self.scan_projections();
        }
    }

    fn run(&mut self) {
        trace!(self, "seed {} params {:?}", self.seed, self.p);
        self.node = Some(self.start_node(None));
        while self.step < self.p.steps {
            self.tick(true);
            self.step += 1;
        }
        // Drain: no new requests, the network heals; every client must end idle.
        self.net.heal();
        self.heal_at = None;
        let mut n = 0;
        while self.clients.iter().any(|c| c.cur.is_some()) || self.down.is_some() {
            if n == DRAIN_STEPS_MAX {
                let busy: Vec<_> = self.clients.iter().map(|c| &c.cur).collect();
                self.violation(format!("hang: clients still waiting after {n} drain steps: {busy:?}"));
            }
            self.tick(false);
            self.step += 1;
            n += 1;
        }
        if self.p.clean {
            self.compare_exact("end of run");
        }
        // A last power cut and recovery, checked against the model like every other.
        self.crash("final");
        self.restart();
        if self.p.clean {
            self.compare_exact("after the final restart");
        }
        let unknown = self.writes.iter().filter(|w| w.state == WState::Unknown).count() as u64;
        self.count("writes with unknown outcome at the end", unknown);
        self.count("steps", self.step);
        self.count("virtual ms", self.now() / 1_000_000);
        let nc = self.net.counters();
        self.count("datagrams lost by the network", nc.lost);
        self.count("datagrams duplicated", nc.duplicated);
        self.count("datagrams reordered", nc.reordered);
        self.count("datagrams cut by partitions", nc.partitioned);
        self.count("datagrams dropped at full inboxes", nc.inbox_full);
        self.count(if self.p.clean { "seeds: clean class" } else { "seeds: fault class" }, 1);
        if self.p.snapshot_every.is_some() {
            self.count("seeds with snapshot files", 1);
        }
        self.count(
            match self.p.shards {
                1 => "seeds with 1 shard",
                2 => "seeds with 2 shards",
                _ => "seeds with 3 shards",
            },
            1,
        );
    }

    /// Clean class: the partitions' projections are exactly the model.
    fn compare_exact(&self, when: &str) {
        let node = self.node.as_ref().expect("running");
        let mut got = BTreeMap::new();
        for kv in &node.kvs {
            for part in kv.borrow().partitions() {
                for (k, v, ver) in part.kv().iter() {
                    got.insert(k.to_vec(), (v.to_vec(), ver));
                }
            }
        }
        let want: BTreeMap<Vec<u8>, (Vec<u8>, u64)> =
            self.exact.iter().map(|(k, v)| (self.keys[*k].name.clone(), v.clone())).collect();
        if got != want {
            self.violation(format!("clean model, {when}: projections {got:?} != model {want:?}"));
        }
    }

    /// Everything the run did, hashed: two runs of one seed must agree.
    fn digest(&self) -> u64 {
        let mut text = format!("{:?}|{}|{:?}", self.stats, self.now(), self.net.counters());
        for w in &self.writes {
            text.push_str(&format!("|{:?}", w));
        }
        text.push_str(&format!("|{:?}", self.versions));
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }
}

// ---------------------------------------------------------------------------------------------
// Running seeds.

/// The first `n` seeds of the fixed default sequence.
fn default_seeds(n: u64) -> Vec<u64> {
    let mut g = SplitMix64::new(0x5EED_5AAD);
    (0..n).map(|_| g.next_u64() >> 16).collect()
}

/// `VIGIL_SIM_SEED`, or `VIGIL_SIM_SEEDS` (default `DEFAULT_SEEDS`) of the default sequence.
fn seeds() -> Vec<u64> {
    match std::env::var("VIGIL_SIM_SEED") {
        Ok(s) => vec![s.trim().parse().expect("VIGIL_SIM_SEED is a u64")],
        Err(_) => default_seeds(
            std::env::var("VIGIL_SIM_SEEDS").map_or(DEFAULT_SEEDS, |s| s.trim().parse().expect("a count")),
        ),
    }
}

/// A wall-clock watchdog (it never touches the simulation): a seed running longer than
/// `VIGIL_SIM_SEED_TIMEOUT_S` (default 120 s; seeds take milliseconds) is a hang inside the code
/// under test, which no in-thread check can catch: name the seed and abort.
fn watchdog() -> Arc<Mutex<Option<(u64, Instant)>>> {
    let limit = std::env::var("VIGIL_SIM_SEED_TIMEOUT_S").map_or(120, |s| s.trim().parse().expect("seconds"));
    let current: Arc<Mutex<Option<(u64, Instant)>>> = Arc::new(Mutex::new(None));
    let watched = Arc::clone(&current);
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(250));
        if Arc::strong_count(&watched) == 1 {
            return;
        }
        let running = *watched.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seed, since)) = running {
            if since.elapsed() > Duration::from_secs(limit) {
                // Straight to stderr: the test harness's capture would die with the process.
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** sim_shards: seed {seed} HANGS (over {limit} s of wall time)\n*** rerun: \
                     VIGIL_SIM_SEED={seed} cargo test --test sim_shards sim_shards -- --nocapture\n"
                );
                // No destructor runs at an abort: remove this process's snapshot directories.
                let prefix = format!("vigil-sim-shards-{}-", std::process::id());
                for entry in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
                    if entry.file_name().to_string_lossy().starts_with(&prefix) {
                        let _ = std::fs::remove_dir_all(entry.path());
                    }
                }
                std::process::abort();
            }
        }
    });
    current
}

fn run_seed(seed: u64, trace: bool) -> Sim {
    let mut sim = Sim::new(seed, trace);
    sim.run();
    sim
}

#[test]
fn sim_shards() {
    let trace = std::env::var("VIGIL_SIM_SEED").is_ok();
    let started = Instant::now();
    let seeds = seeds();
    let watch = watchdog();
    for &seed in &seeds {
        *watch.lock().unwrap_or_else(|e| e.into_inner()) = Some((seed, Instant::now()));
        match catch_unwind(AssertUnwindSafe(|| run_seed(seed, trace))) {
            Ok(sim) => TOTALS.with(|t| {
                let mut t = t.borrow_mut();
                for (k, v) in &sim.stats {
                    *t.entry(k).or_default() += v;
                }
            }),
            Err(e) => {
                eprintln!(
                    "\n*** sim_shards failed at seed {seed}\n*** rerun: VIGIL_SIM_SEED={seed} cargo test --test sim_shards \
                     sim_shards -- --nocapture\n"
                );
                std::panic::resume_unwind(e);
            }
        }
    }
    eprintln!("sim_shards: {} seeds in {:.1} s", seeds.len(), started.elapsed().as_secs_f64());
    TOTALS.with(|t| {
        for (k, v) in t.borrow().iter() {
            eprintln!("  {k}: {v}");
        }
    });
}

/// The checker's self-test: with devices that complete durable writes before they are durable
/// (and crashes that lose the volatile cache), acknowledged writes get lost, and every seed must
/// say so. Guards against a checker that passes everything.
#[test]
fn sim_catches_writes_acknowledged_before_durable() {
    let seeds = default_seeds(24);
    let mut missed = Vec::new();
    for &seed in &seeds {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut sim = Sim::new(seed, false);
            sim.lie = true;
            sim.p.run_faults.crash_keep_dirty = 0.0;
            sim.p.run_faults.writeback = 0.0;
            sim.run();
        }));
        let caught = match &outcome {
            Ok(()) => false,
            Err(e) => e.downcast_ref::<String>().is_some_and(|m| m.contains("INVARIANT VIOLATED")),
        };
        if !caught {
            missed.push(seed);
        }
    }
    assert!(missed.is_empty(), "writes acknowledged before durable went unnoticed with seeds {missed:?}");
}

#[test]
fn sim_is_deterministic() {
    let seeds: Vec<u64> = seeds().into_iter().take(3).collect();
    for seed in seeds {
        let a = run_seed(seed, false);
        let b = run_seed(seed, false);
        assert_eq!(
            (a.digest(), a.step, a.now()),
            (b.digest(), b.step, b.now()),
            "seed {seed} ran differently twice: rerun VIGIL_SIM_SEED={seed} cargo test --test sim_shards"
        );
    }
}
