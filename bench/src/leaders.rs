//! Following the leaders of a replicated cluster: where each request goes, and the resends that
//! `NOT_LEADER` answers ask for.
//!
//! A [`Leaders`] is one generator thread's view of the cluster: its nodes (the seed first, then
//! the other `--cluster` targets, then any node a hint named), a per-partition leader table learned
//! from `NOT_LEADER` hints (`vigil::wire::LeaderHint`, the key's partition by the server's own
//! `vigil::inbox::Placement`), and a bounded queue of resends:
//! - a request answered `NOT_LEADER` with a hint is resent at once to the node the hint names, the
//!   same frame under the same client id and request id (exactly-once), counted in
//!   `not_leader_redirects`; later requests for that partition's keys go straight to that node;
//! - one answered `NOT_LEADER` without a hint (that node knows no leader) is resent to the next
//!   node after [`retry_pause`] (20 ms, or half the request's age when longer), counted in
//!   `not_leader_retries`;
//! - a node that has answered nothing for `silence_ns` (a quarter of the timeout) while a request
//!   to it waited is given up as a leader: its partitions are forgotten, the seed moves to the
//!   next node (`failovers`), and the requests still waiting on it are resent to the new seed
//!   (`failover_resends`), so a killed or cut-off leader's keys reach a live node, whose hint then
//!   names the new leader.
//!
//! The request keeps its place in the outstanding ring and its intended send time, so a
//! redirected request's latency includes the redirect, and it still ends as exactly one of
//! received, error or timeout.
//!
//! Invariants: nothing allocates after [`Leaders::new`] (the node list, the table for the largest
//! partition count and the resend queue are sized there); at most [`RESENDS_MAX`] resends wait
//! at once and at most [`NODES_MAX`] nodes are known: a hint past either limit leaves its answer
//! counted as the error it is.

use crate::accounting::Accounting;
use crate::run::encode_with;
use crate::seal::Sealer;
use crate::traffic::TrafficGen;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use vigil::inbox::{Placement, PARTITIONS_MAX};
use vigil::wire::LeaderHint;
use vigil_pmd::{Batch, Nanos, PacketIo, Peer, TxDatagram};

/// Most nodes one thread tracks (the targets and the nodes hints name).
pub const NODES_MAX: usize = 64;
/// Most resends waiting at once per generator thread.
pub const RESENDS_MAX: usize = 8192;
/// The pause before resending a request answered `NOT_LEADER` without a hint (10-50 ms is what
/// docs/PROTOCOL.md asks for).
pub const RETRY_PAUSE_NS: u64 = 20_000_000;

/// The pause before resending a request that has waited since `intended` and was just told no
/// leader is known: [`RETRY_PAUSE_NS`], or half its age when longer. Every waiting request is
/// retried, so without the growth an election would get (timeout / pause) datagrams per request
/// offered in it (50 at 1 s and 20 ms) just when the nodes have least time for them; with it,
/// about 10.
pub fn retry_pause(intended: u64, now: u64) -> u64 {
    RETRY_PAUSE_NS.max(now.saturating_sub(intended) / 2)
}

/// A node index as the outstanding ring keeps it (below [`NODES_MAX`], so it fits).
#[inline]
pub fn node_byte(node: usize) -> u8 {
    u8::try_from(node).expect("NODES_MAX fits u8")
}

/// A request to send again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resend {
    /// Its request id.
    pub k: u64,
    /// The node it goes to (an index into the node list).
    pub node: usize,
    /// Not before this time.
    pub not_before: u64,
}

/// What leader following did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaderCounts {
    /// Requests answered `NOT_LEADER` with a hint and resent to the leader it named.
    pub not_leader_redirects: u64,
    /// Requests answered `NOT_LEADER` without a hint and resent to the same node after a pause.
    pub not_leader_retries: u64,
    /// Nodes given up as leaders after a timeout without an answer.
    pub failovers: u64,
    /// Requests waiting on a node given up, resent to the next.
    pub failover_resends: u64,
}

impl LeaderCounts {
    /// Adds another thread's counts.
    pub fn add(&mut self, o: &LeaderCounts) {
        self.not_leader_redirects += o.not_leader_redirects;
        self.not_leader_retries += o.not_leader_retries;
        self.failovers += o.failovers;
        self.failover_resends += o.failover_resends;
    }
}

/// One thread's view of the cluster (see the module header).
#[derive(Debug)]
pub struct Leaders {
    nodes: Vec<Peer>,
    seed: usize,
    placement: Option<Placement>,
    /// Per partition: the leader's node index + 1, 0 when unknown.
    table: Vec<u8>,
    /// Per node: when the oldest send since its last answer went out, 0 when none is waiting.
    silent_since: Vec<u64>,
    /// Redirects to a named leader: due at once, in arrival order.
    redirects: VecDeque<Resend>,
    /// Retries after a pause, earliest first: `(not_before, k, node)`.
    retries: BinaryHeap<Reverse<(u64, u64, usize)>>,
    silence_ns: u64,
    /// The node given up last, until [`Leaders::take_given_up`].
    given_up: Option<usize>,
    /// What it did.
    pub counts: LeaderCounts,
}

impl Leaders {
    /// The cluster of `targets` (the seed first; at least one), giving a node up after
    /// `silence_ns` without an answer while a request to it waits.
    pub fn new(targets: &[Peer], silence_ns: u64) -> Self {
        assert!(!targets.is_empty(), "at least one target");
        let mut nodes = Vec::with_capacity(NODES_MAX);
        nodes.extend(targets.iter().take(NODES_MAX).copied());
        Self {
            nodes,
            seed: 0,
            placement: None,
            table: vec![0; PARTITIONS_MAX as usize],
            silent_since: vec![0; NODES_MAX],
            redirects: VecDeque::with_capacity(RESENDS_MAX),
            retries: BinaryHeap::with_capacity(RESENDS_MAX),
            silence_ns,
            given_up: None,
            counts: LeaderCounts::default(),
        }
    }

    /// The node with index `i`.
    pub fn node(&self, i: usize) -> Peer {
        self.nodes[i]
    }

    /// Nodes known.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The index of the node at `peer`'s address, if known.
    pub fn index_of(&self, peer: &Peer) -> Option<usize> {
        self.nodes.iter().position(|n| n.ip == peer.ip && n.port == peer.port)
    }

    /// Where a request about `key` (`None`: no key, e.g. PING) goes at `now`: its partition's
    /// leader if known, else the seed; a node silent for a whole timeout is given up first.
    pub fn route(&mut self, key: Option<&[u8]>, now: u64) -> usize {
        let node = key.and_then(|k| self.leader_of(k)).unwrap_or(self.seed);
        let since = self.silent_since[node];
        if since != 0 && now.saturating_sub(since) > self.silence_ns && self.nodes.len() > 1 {
            self.give_up(node);
            return key.and_then(|k| self.leader_of(k)).unwrap_or(self.seed);
        }
        node
    }

    fn leader_of(&self, key: &[u8]) -> Option<usize> {
        let p = self.placement?.partition_of(key);
        match self.table[usize::from(p)] {
            0 => None,
            i => Some(usize::from(i) - 1),
        }
    }

    /// Forgets `node` as a leader and moves the seed past it.
    fn give_up(&mut self, node: usize) {
        self.counts.failovers += 1;
        let mark = u8::try_from(node + 1).expect("NODES_MAX fits u8");
        for slot in &mut self.table {
            if *slot == mark {
                *slot = 0;
            }
        }
        self.silent_since[node] = 0;
        if self.seed == node {
            self.seed = (self.seed + 1) % self.nodes.len();
        }
        self.given_up = Some(node);
    }

    /// The node given up since the last call, if any: the caller resends what waits on it
    /// ([`Leaders::resend_stranded`]).
    pub fn take_given_up(&mut self) -> Option<usize> {
        self.given_up.take()
    }

    /// Queues request `k`, left waiting on a node given up, for the seed; `false` when the
    /// resend queue is full (it then times out).
    pub fn resend_stranded(&mut self, k: u64, now: u64) -> bool {
        if self.resends_waiting() >= RESENDS_MAX {
            return false;
        }
        self.counts.failover_resends += 1;
        self.redirects.push_back(Resend { k, node: self.seed, not_before: now });
        true
    }

    /// A datagram went to `node` at `now`.
    #[inline]
    pub fn sent(&mut self, node: usize, now: u64) {
        if self.silent_since[node] == 0 {
            self.silent_since[node] = now.max(1);
        }
    }

    /// A datagram came from `from`.
    #[inline]
    pub fn heard(&mut self, from: &Peer) {
        if let Some(i) = self.index_of(from) {
            self.silent_since[i] = 0;
        }
    }

    /// Request `k`, meant to be sent at `intended`, was answered `NOT_LEADER` with `body` by
    /// `from` at `now`: learns the hint and queues the resend. `false`: the answer stands as an
    /// error (a body that is not a hint, the node or resend limits reached).
    pub fn not_leader(&mut self, k: u64, intended: u64, body: &[u8], from: &Peer, now: u64) -> bool {
        if self.resends_waiting() >= RESENDS_MAX {
            return false;
        }
        let from_index = self.index_of(from);
        if body.is_empty() {
            // This node knows no leader: the next node, after a pause (a follower cut off from
            // the others knows none, they may; during an election none does, and the pause
            // paces the rounds).
            let Some(from) = from_index else { return false };
            let node = (from + 1) % self.nodes.len();
            self.counts.not_leader_retries += 1;
            self.retries.push(Reverse((now + retry_pause(intended, now), k, node)));
            return true;
        }
        let Some(hint) = LeaderHint::decode(body) else { return false };
        if self.placement.map(|p| p.partitions()) != Some(hint.partitions) {
            // Another count renames every partition: forget them.
            let Ok(placement) = Placement::new(hint.partitions, 1) else { return false };
            self.placement = Some(placement);
            self.table.fill(0);
        }
        // A node no target listed goes by address alone: the backend finds its MAC (DPDK: by ARP,
        // broadcast until then); a listed one keeps the MAC resolved for it.
        let leader = Peer::from_ip_port(*hint.address.ip(), hint.address.port());
        let Some(node) = self.index_of(&leader).or_else(|| self.add_node(leader)) else { return false };
        self.table[hint.partition as usize] = u8::try_from(node + 1).expect("NODES_MAX fits u8");
        // A node naming itself is behind on its own news: give it the pause.
        self.counts.not_leader_redirects += 1;
        if Some(node) == from_index {
            self.retries.push(Reverse((now + retry_pause(intended, now), k, node)));
        } else {
            self.redirects.push_back(Resend { k, node, not_before: now });
        }
        true
    }

    fn add_node(&mut self, peer: Peer) -> Option<usize> {
        if self.nodes.len() >= NODES_MAX {
            return None;
        }
        self.nodes.push(peer);
        Some(self.nodes.len() - 1)
    }

    /// The next resend due at `now`, if any: redirects first, in arrival order, then the
    /// retries whose pause is over, earliest first.
    #[inline]
    pub fn next_resend(&mut self, now: u64) -> Option<Resend> {
        if let Some(r) = self.redirects.pop_front() {
            return Some(r);
        }
        match self.retries.peek() {
            Some(Reverse((not_before, _, _))) if *not_before <= now => {
                let Reverse((not_before, k, node)) = self.retries.pop().expect("peeked");
                Some(Resend { k, node, not_before })
            }
            _ => None,
        }
    }

    /// Sends the resends due at `now` (requests answered `NOT_LEADER`), each alone in a datagram:
    /// the same frame as first sent (request `k` regenerated from `k`: same id, same body), under
    /// the same client id, to the node the hint named, sealed anew by `sealer` (that node's cookie,
    /// a fresh nonce). A request no longer outstanding (evicted as a timeout meanwhile) is not
    /// resent.
    #[inline]
    pub fn resend_due<P: PacketIo>(
        &mut self,
        io: &mut P,
        tx_batch: &mut Batch<P::Tx>,
        acct: &mut Accounting,
        traffic: &mut TrafficGen,
        sealer: &mut Sealer,
        now: Nanos,
    ) {
        while tx_batch.room() > 0 {
            let Some(r) = self.next_resend(now.0) else { return };
            if !acct.is_outstanding(r.k) {
                continue;
            }
            let Some(mut tx) = io.tx_alloc(&self.node(r.node)) else {
                self.requeue(r);
                return;
            };
            let len = encode_with(tx.payload_mut(), sealer, r.node, traffic, r.k, 1, now)
                .expect("datagram size was checked against the buffer before the run");
            tx.set_len(len);
            self.sent(r.node, now.0);
            acct.sent_to(r.k, node_byte(r.node));
            if tx_batch.push(tx).is_err() {
                unreachable!("room was checked");
            }
        }
    }

    /// Puts back a resend [`Leaders::next_resend`] gave that could not go out yet (no transmit
    /// buffer): it goes first next time.
    pub fn requeue(&mut self, r: Resend) {
        self.redirects.push_front(r);
    }

    /// Resends still waiting.
    pub fn resends_waiting(&self) -> usize {
        self.redirects.len() + self.retries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn peer(last: u8) -> Peer {
        Peer::from_ip_port(Ipv4Addr::new(10, 77, 0, last), 9000)
    }

    fn hint(key: &[u8], leader: u8) -> [u8; 22] {
        let partition = u32::from(Placement::new(4, 1).unwrap().partition_of(key));
        let address = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, leader), 9000);
        let mut b = [0u8; 22];
        LeaderHint { node: u64::from(leader), address, partition, partitions: 4 }.encode(&mut b);
        b
    }

    #[test]
    fn a_hint_redirects_at_once_and_routes_the_partition_afterwards() {
        let mut l = Leaders::new(&[peer(1), peer(2), peer(3)], 1_000);
        assert_eq!(l.route(Some(b"k"), 10), 0, "the seed until a hint");
        assert!(l.not_leader(7, 0, &hint(b"k", 3), &peer(1), 10));
        assert_eq!(l.next_resend(10), Some(Resend { k: 7, node: 2, not_before: 10 }));
        assert_eq!(l.route(Some(b"k"), 11), 2);
        assert_eq!(l.route(None, 11), 0, "no key: the seed");
        assert_eq!(l.counts.not_leader_redirects, 1);
        // A leader no target listed is added.
        assert!(l.not_leader(8, 0, &hint(b"k", 9), &peer(3), 12));
        assert_eq!(l.node(3), peer(9));
        assert_eq!(l.route(Some(b"k"), 12), 3);
    }

    #[test]
    fn an_empty_not_leader_retries_the_next_node_after_the_pause_and_a_bad_body_is_an_error() {
        let mut l = Leaders::new(&[peer(1), peer(2)], 1_000);
        assert!(l.not_leader(5, 0, &[], &peer(2), 100));
        assert_eq!(l.next_resend(100), None, "not before the pause");
        assert_eq!(
            l.next_resend(100 + RETRY_PAUSE_NS),
            Some(Resend { k: 5, node: 0, not_before: 100 + RETRY_PAUSE_NS })
        );
        assert_eq!(retry_pause(0, 10), RETRY_PAUSE_NS);
        assert_eq!(retry_pause(0, 10 * RETRY_PAUSE_NS), 5 * RETRY_PAUSE_NS, "half the age once longer");
        let mut alone = Leaders::new(&[peer(1)], 1_000);
        assert!(alone.not_leader(5, 0, &[], &peer(1), 100));
        assert_eq!(alone.next_resend(u64::MAX).map(|r| r.node), Some(0), "one node: the same node");
        assert_eq!(l.counts.not_leader_retries, 1);
        assert!(!l.not_leader(6, 0, &[1, 2, 3], &peer(2), 100));
        assert!(!l.not_leader(6, 0, &[], &peer(7), 100), "an unknown node's empty NOT_LEADER");
        let mut too_many = hint(b"k", 2);
        too_many[18..22].copy_from_slice(&((1u32 << 16) + 1).to_le_bytes());
        assert!(!l.not_leader(6, 0, &too_many, &peer(2), 100), "more partitions than a cluster has");
    }

    #[test]
    fn a_paused_retry_never_holds_back_a_redirect_and_retries_come_out_earliest_first() {
        let mut l = Leaders::new(&[peer(1), peer(2), peer(3)], 1_000_000_000);
        // An old request (age 1 s) told "no leader": its pause is half a second.
        assert!(l.not_leader(1, 0, &[], &peer(1), 1_000_000_000));
        // A young one told the same: 20 ms.
        assert!(l.not_leader(2, 1_000_000_000, &[], &peer(1), 1_000_000_000));
        // Then a hint: due at once, ahead of both.
        assert!(l.not_leader(3, 1_000_000_000, &hint(b"k", 3), &peer(1), 1_000_000_000));
        assert_eq!(l.next_resend(1_000_000_000).map(|r| r.k), Some(3));
        assert_eq!(l.next_resend(1_000_000_000), None);
        assert_eq!(l.next_resend(1_020_000_000).map(|r| r.k), Some(2));
        assert_eq!(l.next_resend(1_020_000_000), None);
        assert_eq!(l.next_resend(1_500_000_000).map(|r| (r.k, r.node)), Some((1, 1)));
        assert_eq!(l.resends_waiting(), 0);
        // A node naming itself as leader gets the pause too.
        assert!(l.not_leader(4, 1_500_000_000, &hint(b"k", 3), &peer(3), 1_500_000_000));
        assert_eq!(l.next_resend(1_500_000_000), None);
        assert_eq!(l.next_resend(1_520_000_000).map(|r| (r.k, r.node)), Some((4, 2)));
    }

    #[test]
    fn a_node_silent_for_a_timeout_is_given_up_and_an_answer_keeps_it() {
        let mut l = Leaders::new(&[peer(1), peer(2), peer(3)], 1_000);
        assert!(l.not_leader(1, 0, &hint(b"k", 2), &peer(1), 0));
        assert_eq!(l.route(Some(b"k"), 10), 1);
        l.sent(1, 10);
        l.heard(&peer(2));
        l.sent(1, 500);
        assert_eq!(l.route(Some(b"k"), 1_400), 1, "answered at 10: silent only since 500");
        assert_eq!(l.route(Some(b"k"), 1_600), 0, "silent past the timeout: back to the seed");
        assert_eq!(l.counts.failovers, 1);
        // The seed itself silent: the next node becomes the seed.
        l.sent(0, 2_000);
        assert_eq!(l.route(None, 3_100), 1);
        assert_eq!(l.counts.failovers, 2);
        // One node alone is never given up.
        let mut one = Leaders::new(&[peer(1)], 1_000);
        one.sent(0, 1);
        assert_eq!(one.route(None, 5_000), 0);
        assert_eq!(one.counts.failovers, 0);
    }
}
