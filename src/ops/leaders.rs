//! The node's view of who leads each partition, shared by its shards: each shard records the
//! leader its own partitions' Raft groups know after every poll, and any shard writes the leader
//! hint (`wire::LeaderHint`) into a `NOT_LEADER` answer for any partition, its own or another
//! shard's (a request forwarded within the node and refused by the owner is answered by the
//! shard the client sent it to).
//!
//! One relaxed atomic per partition: a hint is advice (a client that follows a stale one gets
//! another `NOT_LEADER` and a newer hint), so no ordering is needed, and a shard only stores when
//! the value changed, so the line is written once per leader change, not per poll.
//!
//! Invariants: a hint is written only for a leader that is a node of the cluster with an address
//! (`cluster.nodes`); 0 means no leader known; the table has one slot per partition, made once.

use crate::wire::LeaderHint;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Who leads each partition, and where the nodes are (see the module header).
#[derive(Clone, Debug)]
pub struct Leaders {
    leaders: Arc<[AtomicU64]>,
    nodes: Arc<[(u64, SocketAddrV4)]>,
}

impl Leaders {
    /// A table for `partitions` partitions, no leader known yet, over the cluster's `nodes` (id
    /// and data-plane address; none for a node alone, whose answers then carry no hint).
    pub fn new(partitions: u32, nodes: &[(u64, SocketAddrV4)]) -> Self {
        Self { leaders: (0..partitions).map(|_| AtomicU64::new(0)).collect(), nodes: nodes.into() }
    }

    /// Records that `partition`'s leader is `leader` (0: none known).
    pub fn set(&self, partition: u16, leader: u64) {
        if let Some(slot) = self.leaders.get(usize::from(partition)) {
            if slot.load(Ordering::Relaxed) != leader {
                slot.store(leader, Ordering::Relaxed);
            }
        }
    }

    /// The leader recorded for `partition` (0: none known).
    pub fn leader(&self, partition: u16) -> u64 {
        self.leaders.get(usize::from(partition)).map_or(0, |s| s.load(Ordering::Relaxed))
    }

    /// Writes the hint for `partition` into `out`; returns its length (0: no leader known, or
    /// not one with an address).
    pub fn write_hint(&self, partition: u16, out: &mut [u8]) -> usize {
        let node = self.leader(partition);
        let Some(&(_, address)) = self.nodes.iter().find(|(id, _)| *id == node && node != 0) else {
            return 0;
        };
        let partitions = self.leaders.len() as u32;
        LeaderHint { node, address, partition: u32::from(partition), partitions }.encode(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::LEADER_HINT_LEN;

    #[test]
    fn a_hint_names_the_recorded_leader_and_only_a_known_one() {
        let nodes = [(1, "10.0.0.1:9000".parse().unwrap()), (2, "10.0.0.2:9001".parse().unwrap())];
        let leaders = Leaders::new(4, &nodes);
        let mut out = [0u8; 64];
        assert_eq!(leaders.write_hint(1, &mut out), 0, "no leader yet");
        leaders.set(1, 2);
        let other_shard = leaders.clone();
        assert_eq!(other_shard.write_hint(1, &mut out), LEADER_HINT_LEN);
        let hint = LeaderHint::decode(&out[..LEADER_HINT_LEN]).unwrap();
        assert_eq!((hint.node, hint.address.port(), hint.partition, hint.partitions), (2, 9001, 1, 4));
        leaders.set(1, 7);
        assert_eq!(leaders.write_hint(1, &mut out), 0, "node 7 has no address");
        leaders.set(9, 1);
        assert_eq!(leaders.leader(9), 0, "no partition 9: ignored");
        assert_eq!(Leaders::new(4, &[]).write_hint(0, &mut out), 0, "a node alone gives no hint");
    }
}
