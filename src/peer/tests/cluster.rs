//! A real three-node raft-rs 0.7 cluster of two groups whose every message crosses a
//! `PeerOutbox` and a `PeerInbox`: elections, appends large enough to be fragmented, a follower's
//! forwarded read index. Validation must refuse none of what raft-rs sends, and the groups commit.

use raft::eraftpb::{ConfState, Message};
use raft::storage::MemStorage;
use raft::{Config, RawNode};

use super::*;

const PARTITIONS: usize = 2;

struct Node {
    id: u64,
    groups: Vec<RawNode<MemStorage>>,
    outbox: PeerOutbox,
    inbox: PeerInbox,
    committed: Vec<u64>,
    reads: usize,
}

/// This node's groups as the inbox sees them.
struct View<'a>(&'a [RawNode<MemStorage>]);

impl PeerGroups for View<'_> {
    fn is_voter(&self, partition: u32, node: u64) -> bool {
        let g = self.0.get(partition as usize);
        g.is_some_and(|g| g.raft.prs().conf().voters().contains(node))
    }

    fn last_index(&self, partition: u32) -> Option<u64> {
        self.0.get(partition as usize).map(|g| g.raft.raft_log.last_index())
    }
}

fn node(id: u64, limits: PeerLimits) -> Node {
    let peers: Vec<u64> = (1..=3).filter(|p| *p != id).collect();
    let groups = (0..PARTITIONS)
        .map(|_| {
            let storage = MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
            let config = Config {
                id,
                election_tick: 50,
                heartbeat_tick: 3,
                max_size_per_msg: 1 << 20,
                max_inflight_msgs: 64,
                ..Default::default()
            };
            RawNode::new(&config, storage, &slog::Logger::root(slog::Discard, slog::o!())).unwrap()
        })
        .collect();
    Node {
        id,
        groups,
        outbox: PeerOutbox::new(limits, CLUSTER, id, id * 1000, &peers).unwrap(),
        inbox: PeerInbox::new(limits, CLUSTER, id, &peers).unwrap(),
        committed: vec![0; PARTITIONS],
        reads: 0,
    }
}

fn send(outbox: &mut PeerOutbox, partition: usize, messages: Vec<Message>) {
    for m in messages {
        outbox.push(partition as u32, &m).unwrap();
    }
}

/// One raft-rs `Ready` of each group: persist, apply, queue the messages.
fn handle_ready(n: &mut Node) {
    for (p, g) in n.groups.iter_mut().enumerate() {
        if !g.has_ready() {
            continue;
        }
        let mut rd = g.ready();
        send(&mut n.outbox, p, rd.take_messages());
        let store = g.raft.raft_log.store.clone();
        n.committed[p] += rd.take_committed_entries().len() as u64;
        store.wl().append(rd.entries()).unwrap();
        if let Some(hs) = rd.hs() {
            store.wl().set_hardstate(hs.clone());
        }
        n.reads += rd.take_read_states().len();
        send(&mut n.outbox, p, rd.take_persisted_messages());
        let mut light = g.advance(rd);
        if let Some(commit) = light.commit_index() {
            store.wl().mut_hard_state().commit = commit;
        }
        send(&mut n.outbox, p, light.take_messages());
        n.committed[p] += light.take_committed_entries().len() as u64;
        g.advance_apply();
    }
}

/// Every datagram of every outbox delivered to its node, and its messages stepped.
fn deliver(nodes: &mut [Node], limits: &PeerLimits) {
    let mut buf = vec![0u8; limits.datagram_bytes_max];
    for from in 0..nodes.len() {
        while let Some(t) = nodes[from].outbox.poll_transmit(&mut buf) {
            let to = nodes.iter().position(|n| n.id == t.to).unwrap();
            let Node { inbox, groups, .. } = &mut nodes[to];
            let mut out = Vec::new();
            inbox.receive(&buf[..t.len], 0, &View(groups), &mut out);
            for m in out {
                let _ = groups[m.partition as usize].step(m.message);
            }
        }
    }
}

fn rounds(nodes: &mut [Node], limits: &PeerLimits, n: usize) {
    for _ in 0..n {
        for node in nodes.iter_mut() {
            node.groups.iter_mut().for_each(|g| {
                g.tick();
            });
            handle_ready(node);
        }
        deliver(nodes, limits);
    }
}

#[test]
fn raft_rs_cluster_over_the_peer_layer_is_never_refused() {
    let limits = PeerLimits::mtu_1500();
    let mut nodes: Vec<Node> = (1..=3).map(|id| node(id, limits)).collect();
    nodes[0].groups[0].campaign().unwrap();
    nodes[1].groups[1].campaign().unwrap();
    rounds(&mut nodes, &limits, 20);
    assert!(nodes[0].groups[0].raft.state == raft::StateRole::Leader);
    assert!(nodes[1].groups[1].raft.state == raft::StateRole::Leader);
    for i in 0..20u8 {
        nodes[0].groups[0].propose(vec![], vec![i; 3000]).unwrap();
        nodes[1].groups[1].propose(vec![], vec![i; 100]).unwrap();
    }
    nodes[2].groups[0].read_index(b"read-1".to_vec());
    rounds(&mut nodes, &limits, 40);
    for n in &nodes {
        let c = n.inbox.counters();
        assert_eq!(c.dropped_total(), 0, "node {}: {c:?}", n.id);
        assert!(n.committed.iter().all(|c| *c >= 21), "node {}: committed {:?}", n.id, n.committed);
    }
    assert_eq!(nodes[2].reads, 1, "the follower's read index came back");
    assert!(nodes[0].outbox.counters().fragmented > 0, "the 3000-byte appends were fragmented");
    assert!(nodes[1].inbox.counters().reassembled > 0);
}
