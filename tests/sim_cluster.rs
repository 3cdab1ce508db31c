//! The deterministic whole-cluster simulator: three nodes, each with its shards (engine, KV,
//! Raft, UAL on `SimDisk`s, cross-shard inboxes, peer links, the leader table) as `vigil serve`
//! assembles them, all in one thread on one simulated network, driven from a seed.
//!
//! Where `src/partition/tests/cluster.rs` runs three replicas of one partition and moves their
//! peer datagrams itself, this runs the serving path whole: clients' request datagrams go to a
//! node's address and reach whichever of its shards polls first (as `SO_REUSEPORT` or RSS
//! spread them), peer datagrams take the same way and are handed to the owning shard through
//! the cross-shard inbox, `NOT_LEADER` answers carry the leader hint from the node's table.
//!
//! A seed draws 1 or 2 shards per node (every node the same, as a cluster must), 1 or 2
//! partitions per shard, message loss (0-3%), duplication (0-2%) and delay, and a fault schedule
//! for the first `FAULT_STEPS` steps: crashes of a whole node (every partition's disk taken as a
//! power cut leaves it, torn and lost writes in half the seeds, then reopened), pauses (a node
//! not polled while time runs, as SIGSTOP), and network partitions (one node cut off both
//! ways). Each node's clock runs at its own rate (within 4.5% of the reference) from its own
//! offset, and has a fixed, distinct election timeout (raft-rs's randomized one comes from its
//! own thread RNG; fixed ones keep a seed replayable).
//!
//! Clients (one request at a time each) SET and GET a handful of keys, following the hints, and
//! resend a write with the same request id after a timeout; every invocation and answer goes
//! into a history that `vigil::check` must find linearizable. After the faults stop and the
//! network heals, every key is read once more (joining the history), and every node must hold
//! the same value for every key in every partition.
//!
//! `cargo test --test sim_cluster` runs `DEFAULT_SEEDS`; `VIGIL_CLUSTER_SIM_SEEDS=n` runs n;
//! `VIGIL_CLUSTER_SIM_SEED=x cargo test --test sim_cluster -- --nocapture` replays seed x with a
//! trace.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use vigil::check::{check, CheckConfig, CheckResult, History, KvOp, OpId, Outcome};
use vigil::dispatch::{Dispatcher, Subsystem};
use vigil::engine::{Engine, EngineLimits};
use vigil::inbox::{self, InboxConfig, Placement};
use vigil::kv::KvLimits;
use vigil::log::UalConfig;
use vigil::ops::kv::{Kv, KvService, KvShard};
use vigil::ops::leaders::Leaders;
use vigil::ops::peer_link::{PeerLink, PeerLinkConfig};
use vigil::partition::{Partition, PartitionConfig};
use vigil::peer::PeerLimits;
use vigil::raft::{ElectionTimeout, RaftGroupConfig};
use vigil::shard::{Shard, ShardLimits};
use vigil::wire::{self, opcode, DatagramWriter, LeaderHint, Status};
use vigil_pmd::mem::VecRx;
use vigil_pmd::sim::{
    NodeClock, SimClock, SimDisk, SimDiskConfig, SimDiskFaults, SimEndpoint, SimNet, SimNetConfig, SplitMix64,
};
use vigil_pmd::{Batch, PacketIo, Peer, RxDatagram, TxDatagram};

const DEFAULT_SEEDS: u64 = 300;
const NODES: u64 = 3;
const CLIENTS: u64 = 3;
const KEYS: u64 = 6;
/// One step of the reference clock.
const STEP_NS: u64 = 1_000_000;
/// Steps with faults and new requests.
const FAULT_STEPS: u64 = 2_500;
/// Steps after the faults for every client to finish and every key to be read.
const HEAL_STEPS_MAX: u64 = 6_000;
/// A client's wait for one attempt's answer.
const TIMEOUT_NS: u64 = 150_000_000;
/// Attempts before a client gives an operation up while faults go on (its outcome unknown).
const ATTEMPTS_MAX: u32 = 30;
const DATAGRAM_MAX: usize = 1472;
const CLUSTER_ID: u64 = 0x5151;

/// A partition's settings on node `id`: three voters, a ring no run fills (snapshots to
/// followers are the partition simulator's), its fixed election timeout.
fn partition_config(id: u64, election_ticks: usize) -> PartitionConfig {
    let ual = UalConfig {
        segment_blocks: 256,
        segment_count: 8,
        write_blocks_max: 16,
        writes_in_flight_max: 4,
        format_if_blank: true,
        atomic_write_bytes: vigil::log::ATOMIC_WRITE_BLOCK,
    };
    PartitionConfig {
        ual,
        raft: RaftGroupConfig {
            election_timeout: ElectionTimeout::Fixed(election_ticks),
            ..RaftGroupConfig::default()
        },
        kv: KvLimits::small(),
        projections: Default::default(),
        snapshot_every_entries: u64::MAX,
        node_id: id,
        voters: (1..=NODES).collect(),
        batch: Default::default(),
        inflight_bytes_max: 256 * 4096 / 2,
        follower_read_staleness_ns: 0,
        quiesce_idle: true,
    }
}

fn node_addr(id: u64) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 9, 0, id as u8), 9000)
}

fn peer_of(a: SocketAddrV4) -> Peer {
    Peer::from_ip_port(*a.ip(), a.port())
}

/// A running node: its shards and their KV state.
struct Running {
    shards: Vec<Shard<SimEndpoint>>,
    kvs: Vec<Rc<RefCell<KvShard<SimDisk>>>>,
}

struct Node {
    id: u64,
    election_ticks: usize,
    running: Option<Running>,
    /// The disks' crash images while down.
    images: Vec<Vec<u8>>,
    ep: SimEndpoint,
    down_until: u64,
    paused_until: u64,
    incarnation: u64,
    clock: NodeClock,
}

/// One client's operation in flight.
struct Pending {
    op: OpId,
    request_id: u64,
    code: u8,
    body: Vec<u8>,
    key: Vec<u8>,
    write: bool,
    sent_at: u64,
    attempts: u32,
}

struct Client {
    id: u64,
    ep: SimEndpoint,
    next_request: u64,
    target: u64,
    /// Leader per partition, from hints.
    leaders: BTreeMap<u32, u64>,
    partitions: Option<u32>,
    pending: Option<Pending>,
    idle_until: u64,
}

#[derive(Default, Debug)]
struct Stats {
    acked: u64,
    reads: u64,
    given_up: u64,
    redirects: u64,
    crashes: u64,
    pauses: u64,
    cuts: u64,
    converge_steps: u64,
    /// Times partitions quiesced, and quiet followers woken by their leader's node's silence or
    /// restart (counted at the end of a seed, on the nodes up then).
    quiesced: u64,
    woken_leader_lost: u64,
    /// Nodes restarted because a partition's log failed a write or a read.
    disk_failures: u64,
}

struct Sim {
    seed: u64,
    trace: bool,
    rng: SplitMix64,
    clock: SimClock,
    net: SimNet,
    disk: SimDiskConfig,
    shards: usize,
    partitions: u32,
    nodes: Vec<Node>,
    clients: Vec<Client>,
    history: History,
    time: u64,
    step: u64,
    heal_at: u64,
    stats: Stats,
    /// Now and then every client stops until this step, for long enough that idle groups
    /// quiesce, while the faults go on.
    lull_until: u64,
}

impl Sim {
    fn new(seed: u64, trace: bool) -> Sim {
        let mut rng = SplitMix64::new(seed);
        let clock = SimClock::new();
        let net_cfg = SimNetConfig {
            loss: [0.0, 0.01, 0.03][rng.below(3) as usize],
            duplicate: [0.0, 0.02][rng.below(2) as usize],
            delay_ns: (50_000, [300_000, 2_000_000, 6_000_000][rng.below(3) as usize]),
            ..SimNetConfig::default()
        };
        let net = SimNet::new(net_cfg, clock.clone(), rng.next_u64());
        let shards = 1 + rng.below(2) as usize;
        let partitions = (shards as u64 * (1 + rng.below(2))) as u32;
        let mut disk = SimDiskConfig::new(partition_config(1, 10).ual.device_blocks());
        // Crash damage in half the seeds, failing I/O in a third (the node is restarted:
        // `restart_failed`).
        disk.faults = SimDiskFaults::draw_for_cluster(&mut rng);
        let base = 10 + rng.below(4) as usize;
        let mut offsets = [0usize, 3, 6];
        rng.shuffle(&mut offsets);
        let nodes: Vec<Node> = (1..=NODES)
            .map(|id| Node {
                id,
                election_ticks: base + offsets[(id - 1) as usize],
                running: None,
                images: Vec::new(),
                ep: net.endpoint(peer_of(node_addr(id))),
                down_until: 0,
                paused_until: 0,
                incarnation: 0,
                clock: NodeClock { rate: 0.955 + rng.below(91) as f64 / 1000.0, offset: rng.below(1 << 40) },
            })
            .collect();
        let clients = (1..=CLIENTS)
            .map(|id| Client {
                id: 100 + id,
                ep: net.endpoint(Peer::from_ip_port(Ipv4Addr::new(10, 9, 1, id as u8), 7000)),
                next_request: 1,
                target: 1 + rng.below(NODES),
                leaders: BTreeMap::new(),
                partitions: None,
                pending: None,
                idle_until: 0,
            })
            .collect();
        let mut sim = Sim {
            seed,
            trace,
            rng,
            clock,
            net,
            disk,
            shards,
            partitions,
            nodes,
            clients,
            history: History::new(),
            time: 0,
            step: 0,
            heal_at: 0,
            stats: Stats::default(),
            lull_until: 0,
        };
        for i in 0..sim.nodes.len() {
            sim.start(i);
        }
        sim
    }

    fn log(&self, what: impl FnOnce() -> String) {
        if self.trace {
            eprintln!("[step {:>5}] {}", self.step, what());
        }
    }

    /// Starts node `i` on blank disks or its crash images, assembled as `serve` does.
    fn start(&mut self, i: usize) {
        let (shards, partitions) = (self.shards, self.partitions);
        let routers: Vec<_> = if shards == 1 {
            vec![None]
        } else {
            let cfg = InboxConfig {
                shards,
                partitions,
                inbox_capacity: 1024,
                in_flight_max: 256,
                pool_slots: shards * 512,
                slot_bytes: (DATAGRAM_MAX + 64).next_power_of_two(),
            };
            inbox::build(&cfg).expect("inbox config").into_iter().map(Some).collect()
        };
        let node = &mut self.nodes[i];
        node.incarnation += 1;
        node.ep.discard_waiting();
        let cfg = partition_config(node.id, node.election_ticks);
        let nodes: Vec<(u64, SocketAddrV4)> = (1..=NODES).map(|id| (id, node_addr(id))).collect();
        let leaders = Leaders::new(partitions, &nodes);
        let placement = Placement::new(partitions, shards).expect("placement");
        let mut images: Vec<Option<Vec<u8>>> =
            std::mem::take(&mut node.images).into_iter().map(Some).collect();
        images.resize(partitions as usize, None);
        let mut running = Running { shards: Vec::new(), kvs: Vec::new() };
        for (s, router) in routers.into_iter().enumerate() {
            let mut parts = Vec::new();
            for p in (s as u32..partitions).step_by(shards) {
                let seed = self.rng.next_u64();
                let device = match images[p as usize].take() {
                    Some(image) => SimDisk::from_image(self.disk, self.clock.clone(), seed, image),
                    None => SimDisk::new(self.disk, self.clock.clone(), seed),
                };
                // Device errors strike once it runs (a refused start is tests/sim_shards').
                let errors = device.suspend_errors();
                let (part, _) = Partition::open(p as u16, device, &cfg, None).unwrap_or_else(|e| {
                    panic!("seed {}: node {} partition {p} does not open: {e}", self.seed, i + 1)
                });
                errors.resume();
                parts.push(part);
            }
            let link = PeerLink::new(&PeerLinkConfig {
                limits: PeerLimits::mtu_1500(),
                cluster_id: CLUSTER_ID,
                node_id: node.id,
                incarnation: node.incarnation,
                peers: nodes.iter().filter(|(id, _)| *id != node.id).copied().collect(),
                voters: (1..=NODES).collect(),
            })
            .expect("peer link");
            let kv = KvShard::new(parts, placement, router, DATAGRAM_MAX)
                .with_cluster(leaders.clone(), Some(link));
            let kv = Rc::new(RefCell::new(kv));
            let mut d = Dispatcher::new();
            vigil::ops::register_all(&mut d).expect("built-ins register");
            Kv(Rc::clone(&kv)).register(&mut d).expect("kv registers");
            let engine = Engine::new(d, EngineLimits { requests_per_datagram_max: 64 });
            let limits = ShardLimits { burst_size_max: 32, answers_reserved_max: 256 };
            let shard = Shard::new(s, node.ep.share(), engine, limits)
                .with_service(Box::new(KvService(Rc::clone(&kv))));
            running.shards.push(shard);
            running.kvs.push(kv);
        }
        node.running = Some(running);
    }

    /// A power cut of node `i`: every partition's disk as the cut leaves it.
    fn crash(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let Some(running) = node.running.take() else { return };
        drop(running.shards);
        let mut images: Vec<(u16, Vec<u8>)> = Vec::new();
        for kv in running.kvs {
            let kv = Rc::try_unwrap(kv).unwrap_or_else(|_| panic!("a crashed shard's state is still shared"));
            for part in kv.into_inner().into_partitions() {
                let id = part.id();
                images.push((id, part.into_device().into_crash_image().0));
            }
        }
        images.sort_by_key(|(id, _)| *id);
        node.images = images.into_iter().map(|(_, image)| image).collect();
        node.down_until = self.step + 100 + self.rng.below(800);
        self.log(|| format!("crash node {} until {}", i + 1, self.nodes[i].down_until));
    }

    /// A node one of whose partitions' log failed (a device error: it refuses all work) is
    /// restarted, as an operator would: stopped as a crash leaves it, up again later.
    fn restart_failed(&mut self, i: usize) {
        let Some(running) = self.nodes[i].running.as_ref() else { return };
        let failed =
            running.kvs.iter().any(|kv| kv.borrow().partitions().iter().any(|p| p.failure().is_some()));
        if failed {
            self.stats.disk_failures += 1;
            self.log(|| format!("node {}'s log failed: restarting it", i + 1));
            self.crash(i);
        }
    }

    fn fault(&mut self) {
        if !self.rng.chance(0.004) {
            return;
        }
        let i = self.rng.below(NODES) as usize;
        match self.rng.below(3) {
            0 if self.nodes[i].running.is_some() => {
                self.stats.crashes += 1;
                self.crash(i);
            }
            1 => {
                // Mostly a leader: a deposed leader that wakes up must not serve what it held.
                let i = match self.rng.chance(0.7) {
                    true => self.leading_node().unwrap_or(i),
                    false => i,
                };
                self.nodes[i].paused_until = self.step + 50 + self.rng.below(600);
                self.stats.pauses += 1;
                self.log(|| format!("pause node {} until {}", i + 1, self.nodes[i].paused_until));
            }
            _ if self.heal_at <= self.step => {
                let cut = peer_of(node_addr(i as u64 + 1));
                let others: Vec<Peer> =
                    (1..=NODES).filter(|n| *n != i as u64 + 1).map(|n| peer_of(node_addr(n))).collect();
                let mut others = others;
                others.extend(self.clients.iter().map(|c| c.ep.addr()));
                // A third of the cuts go one way only (asymmetric: the node hears the others, or
                // they hear it, but not both).
                let one_way = self.rng.below(3);
                match one_way {
                    0 => self.net.partition_one_way(&[cut], &others),
                    1 => self.net.partition_one_way(&others, &[cut]),
                    _ => self.net.partition(&[cut], &others),
                }
                self.heal_at = self.step + 100 + self.rng.below(900);
                self.stats.cuts += 1;
                let how = ["from the others", "to the others", "both ways"][one_way as usize];
                self.log(|| format!("cut node {} {how} until {}", i + 1, self.heal_at));
            }
            _ => {}
        }
    }

    /// A node that leads some partition now, if one does.
    fn leading_node(&self) -> Option<usize> {
        self.nodes.iter().position(|n| {
            n.running.as_ref().is_some_and(|r| {
                r.kvs.iter().any(|kv| kv.borrow().partitions().iter().any(|p| p.raft().is_leader()))
            })
        })
    }

    fn tick(&mut self, faults: bool) {
        if faults {
            self.fault();
            if self.step >= self.lull_until && self.rng.chance(0.002) {
                self.lull_until = self.step + 150 + self.rng.below(600);
                self.log(|| format!("lull until step {}", self.lull_until));
            }
        }
        if self.heal_at == self.step {
            self.net.heal();
        }
        let t = self.clock.nanos();
        for i in 0..self.nodes.len() {
            if self.nodes[i].running.is_none() && self.nodes[i].down_until <= self.step {
                self.start(i);
                self.log(|| format!("restart node {}", i + 1));
            }
            let node = &mut self.nodes[i];
            if node.paused_until > self.step {
                continue;
            }
            let now = node.clock.at(t);
            if let Some(running) = node.running.as_mut() {
                for shard in &mut running.shards {
                    shard.poll_once(now);
                }
            }
            self.restart_failed(i);
        }
        for c in 0..self.clients.len() {
            self.client_step(c, faults);
        }
        self.step += 1;
        self.clock.set(self.clock.nanos().max(t + STEP_NS));
    }

    // ----- clients -----

    fn client_step(&mut self, c: usize, faults: bool) {
        self.client_receive(c);
        let t = self.clock.nanos();
        let client = &mut self.clients[c];
        match client.pending.as_mut() {
            Some(p) if t >= p.sent_at + TIMEOUT_NS => {
                if faults && p.attempts >= ATTEMPTS_MAX {
                    let op = p.op;
                    client.pending = None;
                    self.time += 1;
                    self.history.time_out_at(self.time, op).expect("open");
                    self.stats.given_up += 1;
                    return;
                }
                // Same node once more, then the next one (same request id).
                if p.attempts % 2 == 0 {
                    client.target = 1 + client.target % NODES;
                }
                self.send(c);
            }
            Some(_) => {}
            None if faults && t >= client.idle_until && self.step >= self.lull_until => self.invoke(c),
            None => {}
        }
    }

    fn invoke(&mut self, c: usize) {
        let key = format!("k{}", self.rng.below(KEYS)).into_bytes();
        let write = self.rng.chance(0.6);
        let client = &mut self.clients[c];
        let request_id = client.next_request;
        client.next_request += 1;
        let (op, code, body) = if write {
            let value = format!("c{}-{request_id}", client.id).into_bytes();
            let mut body = (key.len() as u16).to_le_bytes().to_vec();
            body.extend_from_slice(&key);
            body.extend_from_slice(&value);
            (KvOp::Set { key: key.clone(), value }, opcode::SET, body)
        } else {
            (KvOp::Get { key: key.clone() }, opcode::GET, key.clone())
        };
        self.time += 1;
        let id = self.history.invoke_at(self.time, client.id, op).expect("times never go back");
        client.pending =
            Some(Pending { op: id, request_id, code, body, key, write, sent_at: 0, attempts: 0 });
        self.send(c);
    }

    /// Sends client `c`'s pending request to the node it thinks leads the key's partition.
    fn send(&mut self, c: usize) {
        let t = self.clock.nanos();
        let client = &mut self.clients[c];
        let Some(p) = client.pending.as_mut() else { return };
        let by_hint = client.partitions.and_then(|n| {
            let partition = Placement::new(n, 1).ok()?.partition_of(&p.key);
            client.leaders.get(&u32::from(partition)).copied()
        });
        // Half the reads go first to any node, as a client that knows no leader sends them: the
        // nodes, not the clients, must keep reads from being stale.
        let anywhere = !p.write && p.attempts == 0 && self.rng.chance(0.5);
        let to = match anywhere {
            true => 1 + self.rng.below(NODES),
            false => by_hint.filter(|_| p.attempts % 3 != 2).unwrap_or(client.target),
        };
        let mut buf = [0u8; DATAGRAM_MAX];
        let mut w = DatagramWriter::request(&mut buf, client.id).expect("room");
        w.push(p.code, 0, p.request_id, &p.body).expect("fits");
        let len = w.finish();
        let mut tx = client.ep.tx_alloc(&peer_of(node_addr(to))).expect("a sim buffer");
        tx.payload_mut()[..len].copy_from_slice(&buf[..len]);
        tx.set_len(len);
        let mut batch = Batch::with_capacity(1);
        batch.push(tx).expect("room");
        client.ep.tx_burst(&mut batch);
        p.sent_at = t;
        p.attempts += 1;
    }

    fn client_receive(&mut self, c: usize) {
        let mut batch: Batch<VecRx> = Batch::with_capacity(64);
        self.clients[c].ep.rx_burst(&mut batch);
        for rx in batch.drain() {
            let datagram = rx.payload();
            let Ok(header) = wire::decode_header(datagram) else { continue };
            for f in wire::Frames::new(datagram, header.count).map_while(Result::ok) {
                let status = Status::from_u8(f.status).unwrap_or(Status::Malformed);
                self.answer(c, f.request_id, status, f.body);
            }
        }
    }

    fn answer(&mut self, c: usize, request_id: u64, status: Status, body: &[u8]) {
        let client = &mut self.clients[c];
        let Some(p) = client.pending.as_ref().filter(|p| p.request_id == request_id) else { return };
        let version = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
        let outcome = match status {
            Status::Ok if p.write => Outcome::Stored { version: version(body) },
            Status::Ok => Outcome::Found { value: body[8..].to_vec(), version: version(body) },
            Status::NotFound if !p.write => Outcome::NotFound,
            Status::NotLeader => {
                if let Some(hint) = LeaderHint::decode(body) {
                    client.partitions = Some(hint.partitions);
                    client.leaders.insert(hint.partition, hint.node);
                    client.target = hint.node;
                    self.stats.redirects += 1;
                } else {
                    client.target = 1 + client.target % NODES;
                }
                // Resent at the next step (to the hint) under the same request id.
                let p = client.pending.as_mut().expect("matched");
                p.sent_at = self.clock.nanos().saturating_sub(TIMEOUT_NS - 2 * STEP_NS);
                return;
            }
            Status::Busy | Status::Unavailable => return,
            // STALE or SEQUENCE_REUSED for a retry: it may have applied; unknown.
            _ => {
                let op = p.op;
                client.pending = None;
                self.time += 1;
                self.history.time_out_at(self.time, op).expect("open");
                return;
            }
        };
        let (op, write) = (p.op, p.write);
        client.pending = None;
        client.idle_until = self.clock.nanos() + self.rng.below(5) * STEP_NS;
        self.time += 1;
        self.history.complete_at(self.time, op, outcome).expect("open");
        if write {
            self.stats.acked += 1;
        } else {
            self.stats.reads += 1;
        }
    }

    // ----- the run -----

    fn run(&mut self) {
        for _ in 0..FAULT_STEPS {
            self.tick(true);
        }
        self.net.heal();
        self.heal_at = 0;
        // The disks stop failing I/O (a node restarted for it mid-heal would never settle).
        (self.disk.faults.write_error, self.disk.faults.read_error) = (0.0, 0.0);
        for running in self.nodes.iter().filter_map(|n| n.running.as_ref()) {
            for kv in &running.kvs {
                for part in kv.borrow().partitions() {
                    let _ = part.raft().store().ual().device().suspend_errors();
                }
            }
        }
        for n in &mut self.nodes {
            n.paused_until = 0;
            n.down_until = n.down_until.min(self.step);
        }
        let mut left = HEAL_STEPS_MAX;
        while self.clients.iter().any(|c| c.pending.is_some()) && left > 0 {
            self.tick(false);
            left -= 1;
        }
        assert!(left > 0, "seed {}: clients still waiting after the heal: {:?}", self.seed, self.stats);
        // The final read of every key joins the history.
        for k in 0..KEYS {
            let key = format!("k{k}").into_bytes();
            self.time += 1;
            let op = self.history.invoke_at(self.time, 0, KvOp::Get { key: key.clone() }).expect("ok");
            self.clients[0].pending = Some(Pending {
                op,
                request_id: self.clients[0].next_request,
                code: opcode::GET,
                body: key.clone(),
                key,
                write: false,
                sent_at: 0,
                attempts: 0,
            });
            self.clients[0].next_request += 1;
            self.send(0);
            let mut left = HEAL_STEPS_MAX;
            while self.clients[0].pending.is_some() && left > 0 {
                self.tick(false);
                left -= 1;
            }
            assert!(left > 0, "seed {}: the final read of k{k} is unanswered", self.seed);
        }
    }

    /// Every node's projections agree, key by key, within `HEAL_STEPS_MAX` steps of the final
    /// reads (followers learn the last commit index with the next heartbeat, a restarted node
    /// catches up entry batch by entry batch).
    fn converge(&mut self) {
        for waited in 0..HEAL_STEPS_MAX {
            if self.nodes.iter().any(|n| n.running.is_none()) {
                // Restarted for a failed disk as the heal began: back soon.
                self.tick(false);
                continue;
            }
            let values = self.replica_values();
            if values.iter().all(|v| *v == values[0]) {
                self.stats.converge_steps = waited;
                self.count_quiescing();
                return;
            }
            self.tick(false);
        }
        let values = self.replica_values();
        for (i, v) in values.iter().enumerate().skip(1) {
            assert_eq!(*v, values[0], "seed {}: node {} differs from node 1", self.seed, i + 1);
        }
    }

    fn count_quiescing(&mut self) {
        for node in &self.nodes {
            for kv in &node.running.as_ref().expect("every node is up at the end").kvs {
                for part in kv.borrow().partitions() {
                    self.stats.quiesced += part.counters().quiesced;
                    self.stats.woken_leader_lost += part.counters().woken_by_leader_lost;
                }
            }
        }
    }

    /// Each node's value of every key (by what its partitions' projections hold).
    fn replica_values(&self) -> Vec<BTreeMap<Vec<u8>, Option<Vec<u8>>>> {
        let mut seen: Vec<BTreeMap<Vec<u8>, Option<Vec<u8>>>> = Vec::new();
        for node in &self.nodes {
            let running = node.running.as_ref().expect("every node is up at the end");
            let mut values = BTreeMap::new();
            for kv in &running.kvs {
                for part in kv.borrow().partitions() {
                    for k in 0..KEYS {
                        let key = format!("k{k}").into_bytes();
                        let mut out = [0u8; 256];
                        match part.kv().answer_read(opcode::GET, &key, 0, &mut out) {
                            Ok(n) => {
                                values.insert(key, Some(out[8..n].to_vec()));
                            }
                            Err(_) => {
                                values.entry(key).or_insert(None);
                            }
                        }
                    }
                }
            }
            seen.push(values);
        }
        seen
    }
}

fn run_seed(seed: u64, trace: bool) -> Stats {
    let mut sim = Sim::new(seed, trace);
    sim.run();
    match check(&sim.history, &CheckConfig::default()) {
        CheckResult::Linearizable { .. } => {}
        other => panic!("seed {seed}: not linearizable: {other:?}\nrerun: VIGIL_CLUSTER_SIM_SEED={seed} cargo test --test sim_cluster -- --nocapture"),
    }
    sim.converge();
    sim.stats
}

#[test]
fn whole_clusters_stay_linearizable_through_crashes_pauses_and_cuts() {
    if let Ok(seed) = std::env::var("VIGIL_CLUSTER_SIM_SEED") {
        let stats = run_seed(seed.parse().expect("a seed"), true);
        eprintln!("{stats:?}");
        return;
    }
    let seeds: u64 =
        std::env::var("VIGIL_CLUSTER_SIM_SEEDS").map_or(DEFAULT_SEEDS, |s| s.parse().expect("a count"));
    let mut total = Stats::default();
    for seed in 0..seeds {
        let s = run_seed(seed, false);
        total.acked += s.acked;
        total.reads += s.reads;
        total.given_up += s.given_up;
        total.redirects += s.redirects;
        total.crashes += s.crashes;
        total.pauses += s.pauses;
        total.cuts += s.cuts;
        total.converge_steps = total.converge_steps.max(s.converge_steps);
        total.quiesced += s.quiesced;
        total.woken_leader_lost += s.woken_leader_lost;
        total.disk_failures += s.disk_failures;
    }
    eprintln!("sim_cluster: {seeds} seeds: {total:?}");
    assert!(total.acked > seeds * 20, "too few writes acknowledged: {total:?}");
    assert!(total.crashes > 0 && total.pauses > 0 && total.cuts > 0 && total.redirects > 0, "{total:?}");
    assert!(
        total.quiesced > seeds && total.woken_leader_lost > 0,
        "idle groups quiesced and woke: {total:?}"
    );
    assert!(total.disk_failures > 0, "disks failed writes or reads: {total:?}");
}
