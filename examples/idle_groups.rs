//! What idle replicated partitions cost: N partitions, each a Raft group of three replicas on
//! three nodes (one thread, memory devices, a lossless network with no delay), their Raft messages
//! carried as peer datagrams (`vigil::peer`). After the groups elect their leaders, nothing is
//! written or read for SECONDS of simulated time; the example counts the Raft messages, peer
//! datagrams and bytes the nodes exchange per simulated second, and the CPU time one simulated
//! second takes (all three nodes on this one thread), by message type.
//!
//! The baseline in the same run is the same count with one partition: the cost per group.
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

fn node(id: u64, partitions: u16) -> Node {
    let mut config = Config::dev();
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

/// One step of every node at `t`: deliver, poll, send. Counts what was sent when `counts` is given.
fn step(nodes: &mut [Node], queue: &mut Vec<(u64, Vec<u8>)>, t: u64, mut counts: Option<&mut Counts>) {
    let mut messages = Vec::new();
    for (to, datagram) in std::mem::take(queue) {
        let node = &mut nodes[(to - 1) as usize];
        node.inbox.receive(&datagram, t, &Groups(&node.parts), &mut messages);
        for m in messages.drain(..) {
            let _ = node.parts[m.partition as usize].step(m.message);
        }
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; PeerLimits::mtu_1500().datagram_bytes_max];
    for node in nodes.iter_mut() {
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
        while let Some(tx) = node.outbox.poll_transmit(&mut buf) {
            if let Some(c) = counts.as_deref_mut() {
                c.datagrams += 1;
                c.bytes += tx.len as u64;
            }
            queue.push((tx.to, buf[..tx.len].to_vec()));
        }
    }
}

/// Runs `partitions` idle groups for `seconds` after their elections; what one simulated second cost.
fn measure(partitions: u16, seconds: u64) -> Counts {
    let mut nodes: Vec<Node> = (1..=NODES).map(|id| node(id, partitions)).collect();
    let mut queue = Vec::new();
    let mut t = 1_000_000_000u64;
    for _ in 0..3_000 {
        step(&mut nodes, &mut queue, t, None);
        t += STEP_NS;
    }
    let leaders: usize = nodes.iter().map(|n| n.parts.iter().filter(|p| p.serves_reads()).count()).sum();
    assert_eq!(leaders, usize::from(partitions), "every group elected a leader that holds its lease");
    let mut counts = Counts::default();
    let start = Instant::now();
    for _ in 0..seconds * 1_000 {
        step(&mut nodes, &mut queue, t, Some(&mut counts));
        t += STEP_NS;
    }
    counts.cpu = start.elapsed();
    counts
}

fn main() {
    let mut args = std::env::args().skip(1);
    let partitions: u16 = args.next().map_or(300, |a| a.parse().expect("PARTITIONS is a number"));
    let seconds: u64 = args.next().map_or(5, |a| a.parse().expect("SECONDS is a number"));
    let one = measure(1, seconds);
    let many = measure(partitions, seconds);
    let per_s = |n: u64| n as f64 / seconds as f64;
    println!("| idle groups (3 replicas each) | Raft messages/s | peer datagrams/s | bytes/s | CPU per simulated second |");
    println!("|---:|---:|---:|---:|---:|");
    for (n, c) in [(1u16, &one), (partitions, &many)] {
        println!(
            "| {n} | {:.0} | {:.0} | {:.0} | {:.1} ms |",
            per_s(c.messages),
            per_s(c.datagrams),
            per_s(c.bytes),
            c.cpu.as_secs_f64() * 1e3 / seconds as f64
        );
    }
    println!();
    println!("messages/s by type with {partitions} groups:");
    for (kind, n) in &many.by_type {
        println!("  {kind:<28} {:.0} ({:.1} per group)", per_s(*n), per_s(*n) / f64::from(partitions));
    }
}
