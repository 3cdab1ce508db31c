//! What idle replicated partitions cost: N partitions, each a Raft group of three replicas on
//! three nodes (one thread, memory devices, a lossless network with no delay), their Raft messages
//! carried as peer datagrams (`vigil::peer`). After the groups elect their leaders, nothing is
//! written or read for SECONDS of simulated time; the example counts the Raft messages, peer
//! datagrams and bytes the nodes exchange per simulated second, and the CPU time one simulated
//! second takes (all three nodes on this one thread), by message type.
//!
//! It runs twice: with idle groups quiesced (the default, `cluster.quiesce_idle`: they stop
//! ticking, one keepalive per peer pair watches the leaders) and awake (the baseline in the same
//! run: every group heartbeats and renews its lease), each with one partition and with N. Then,
//! quiesced: how long a read on a quiet leader waits for its lease, and how long the groups of a
//! leader whose node goes silent take to elect new leaders, against the same with awake groups.
//! Nothing is asserted: issue 12 asks that thousands of idle partitions cost little, and this is
//! the measurement (docs/REPLICATION.md, "Idle groups").
//!
//! `cargo run --release --example idle_groups [PARTITIONS] [SECONDS]` (defaults 300 and 5)

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use vigil::config::Config;
use vigil::partition::Partition;
use vigil::peer::{PeerGroups, PeerInbox, PeerLimits, PeerOutbox};
use vigil_pmd::block::memory::MemoryBlockIo;
use vigil_pmd::Nanos;

const NODES: u64 = 3;
const STEP_NS: u64 = 1_000_000;

/// Every partition of a node: voters 1..=3, the log end of each.
struct Groups<'a>(&'a [Partition<MemoryBlockIo>]);

impl PeerGroups for Groups<'_> {
    fn is_voter(&self, partition: u32, node: u64) -> bool {
        (partition as usize) < self.0.len() && (1..=NODES).contains(&node)
    }

    fn last_index(&self, partition: u32) -> Option<u64> {
        self.0.get(partition as usize).map(|p| p.raft().last_index())
    }
}

struct Node {
    parts: Vec<Partition<MemoryBlockIo>>,
    outbox: PeerOutbox,
    inbox: PeerInbox,
}

#[derive(Default)]
struct Counts {
    messages: u64,
    datagrams: u64,
    bytes: u64,
    by_type: BTreeMap<String, u64>,
    cpu: Duration,
}

fn node(id: u64, partitions: u16, quiesce: bool) -> Node {
    let mut config = Config::dev();
    config.cluster.quiesce_idle = quiesce;
    config.storage.segment_blocks = 64;
    config.storage.segment_count = 4;
    config.cluster.node_id = id;
    config.cluster.replicas = (1..=NODES).collect();
    config.cluster.nodes = (1..=NODES)
        .map(|n| vigil::config::PeerConfig { id: n, address: format!("10.88.0.{n}:9000").parse().unwrap() })
        .collect();
    let mut cfg = vigil::serve::partition_config(&config);
    cfg.ual.format_if_blank = true;
    let parts = (0..partitions)
        .map(|p| {
            let dev = MemoryBlockIo::new(cfg.ual.device_blocks(), 16);
            Partition::open(p, dev, &cfg, None).expect("a fresh replica opens").0
        })
        .collect();
    let peers: Vec<u64> = (1..=NODES).filter(|&n| n != id).collect();
    let limits = PeerLimits::mtu_1500();
    Node {
        parts,
        outbox: PeerOutbox::new(limits, 1, id, 1, &peers).expect("peers"),
        inbox: PeerInbox::new(limits, 1, id, &peers).expect("peers"),
    }
}

/// One step of every node at `t`: deliver, poll, send (nothing to or from node `silent`, if
/// any). Counts what was sent when `counts` is given.
fn step(
    nodes: &mut [Node],
    queue: &mut Vec<(u64, Vec<u8>)>,
    t: u64,
    silent: Option<u64>,
    mut counts: Option<&mut Counts>,
) {
    let mut messages = Vec::new();
    for (to, datagram) in std::mem::take(queue) {
        if silent == Some(to) {
            continue;
        }
        let node = &mut nodes[(to - 1) as usize];
        node.inbox.receive(&datagram, t, &Groups(&node.parts), &mut messages);
        for m in messages.drain(..) {
            let _ = node.parts[m.partition as usize].step(m.message);
        }
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; PeerLimits::mtu_1500().datagram_bytes_max];
    for (i, node) in nodes.iter_mut().enumerate() {
        if silent == Some(i as u64 + 1) {
            continue;
        }
        let Node { parts, inbox, .. } = node;
        inbox.liveness().take_changes(t, &mut |change| parts.iter_mut().for_each(|p| p.peer_change(change)));
        for (p, part) in node.parts.iter_mut().enumerate() {
            part.poll(Nanos(t), &mut |_| {});
            part.take_messages(&mut out);
            for m in out.drain(..) {
                if let Some(c) = counts.as_deref_mut() {
                    c.messages += 1;
                    *c.by_type.entry(format!("{:?}", m.get_msg_type())).or_default() += 1;
                }
                node.outbox.push(p as u32, &m).expect("a known peer");
            }
        }
        node.outbox.keep_alive(t, 0);
        while let Some(tx) = node.outbox.poll_transmit(&mut buf) {
            if let Some(c) = counts.as_deref_mut() {
                c.datagrams += 1;
                c.bytes += tx.len as u64;
            }
            queue.push((tx.to, buf[..tx.len].to_vec()));
        }
    }
}

/// What one run measured.
struct Run {
    /// One simulated second of idle groups.
    idle: Counts,
    /// Simulated ms from a read's arrival at a leader to the leader serving reads.
    read_wait_ms: u64,
    /// Simulated ms from node 1 going silent until every group it led has a new leader (`None`:
    /// node 1 led no group).
    failover_ms: Option<u64>,
}

fn leaders(nodes: &[Node]) -> usize {
    nodes.iter().map(|n| n.parts.iter().filter(|p| p.raft().is_leader()).count()).sum()
}

/// Runs `partitions` idle groups (quiesced or awake) for `seconds` after their elections, then a
/// read on one leader, then node 1 silent.
fn measure(partitions: u16, seconds: u64, quiesce: bool) -> Run {
    let mut nodes: Vec<Node> = (1..=NODES).map(|id| node(id, partitions, quiesce)).collect();
    let mut queue = Vec::new();
    let mut t = 1_000_000_000u64;
    for _ in 0..3_000 {
        step(&mut nodes, &mut queue, t, None, None);
        t += STEP_NS;
    }
    assert_eq!(leaders(&nodes), usize::from(partitions), "every group elected a leader");
    let mut idle = Counts::default();
    let start = Instant::now();
    for _ in 0..seconds * 1_000 {
        step(&mut nodes, &mut queue, t, None, Some(&mut idle));
        t += STEP_NS;
    }
    idle.cpu = start.elapsed();
    // A read arrives at the leader of the last partition: how long until it may be answered.
    let (n, p) = nodes
        .iter()
        .enumerate()
        .find_map(|(n, node)| {
            node.parts.last().filter(|p| p.raft().is_leader()).map(|_| (n, node.parts.len() - 1))
        })
        .expect("a leader");
    let arrived = t;
    nodes[n].parts[p].observe_time(Nanos(t));
    while !nodes[n].parts[p].serves_reads() {
        step(&mut nodes, &mut queue, t, None, None);
        t += STEP_NS;
        nodes[n].parts[p].observe_time(Nanos(t));
    }
    let read_wait_ms = (t - arrived) / 1_000_000;
    // Node 1 falls silent: how long until no group lacks a leader among nodes 2 and 3.
    let silent_at = t;
    let led: Vec<usize> =
        (0..nodes[0].parts.len()).filter(|&p| nodes[0].parts[p].raft().is_leader()).collect();
    let others_lead = |nodes: &[Node], p: usize| nodes[1..].iter().any(|n| n.parts[p].raft().is_leader());
    while !led.iter().all(|&p| others_lead(&nodes, p)) {
        step(&mut nodes, &mut queue, t, Some(1), None);
        t += STEP_NS;
        assert!(t - silent_at < 10_000_000_000, "groups elect new leaders within 10 s");
    }
    let failover_ms = (!led.is_empty()).then_some((t - silent_at) / 1_000_000);
    Run { idle, read_wait_ms, failover_ms }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let partitions: u16 = args.next().map_or(300, |a| a.parse().expect("PARTITIONS is a number"));
    let seconds: u64 = args.next().map_or(5, |a| a.parse().expect("SECONDS is a number"));
    let runs: Vec<(u16, bool, Run)> = [(1, false), (partitions, false), (1, true), (partitions, true)]
        .into_iter()
        .map(|(n, quiesce)| (n, quiesce, measure(n, seconds, quiesce)))
        .collect();
    let per_s = |n: u64| n as f64 / seconds as f64;
    println!(
        "| idle groups (3 replicas each) | groups | Raft messages/s | peer datagrams/s | bytes/s | \
         CPU per simulated second | read on a leader waits | failover of node 1's groups |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (n, quiesce, r) in &runs {
        let c = &r.idle;
        println!(
            "| {} | {n} | {:.0} | {:.0} | {:.0} | {:.1} ms | {} ms | {} |",
            if *quiesce { "quiesced" } else { "awake (baseline)" },
            per_s(c.messages),
            per_s(c.datagrams),
            per_s(c.bytes),
            c.cpu.as_secs_f64() * 1e3 / seconds as f64,
            r.read_wait_ms,
            r.failover_ms.map_or("(node 1 led none)".to_string(), |ms| format!("{ms} ms"))
        );
    }
    for (n, quiesce, r) in runs.iter().filter(|(n, _, _)| *n == partitions) {
        println!();
        println!("messages/s by type, {n} groups, {}:", if *quiesce { "quiesced" } else { "awake" });
        for (kind, k) in &r.idle.by_type {
            println!("  {kind:<28} {:.0} ({:.2} per group)", per_s(*k), per_s(*k) / f64::from(*n));
        }
    }
}
