//! The leader hint of a `NOT_LEADER` answer, and the per-partition leader table learned from hints.
//!
//! A `NOT_LEADER` (status 17) answer body is either empty (no leader known: retry later, same
//! request id) or exactly [`HINT_LEN`] bytes, little-endian: `u64` leader node id, the leader's
//! IPv4 address (4 bytes in network order, a.b.c.d), `u16` UDP port, `u32` the key's partition,
//! `u32` partitions in the cluster (docs/PROTOCOL.md).
//!
//! Invariants:
//! - a hint decodes only from a body of exactly 0 or [`HINT_LEN`] bytes; anything else is an error,
//!   never a guess;
//! - the table maps a key to a partition with the server's own placement
//!   ([`vigil::inbox::Placement`], FNV-1a of the key modulo the partition count), never a copy;
//! - the table is sized by the partition count the hints give; a hint with another count (the
//!   cluster was re-created with other partitions) forgets every leader learned before, since
//!   partition numbers then name other key ranges.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use thiserror::Error;
use vigil::inbox::Placement;

/// Bytes of a leader hint.
pub const HINT_LEN: usize = 22;

/// The leader a `NOT_LEADER` answer names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderHint {
    /// The leader's Raft node id.
    pub node_id: u64,
    /// The leader's data-plane address.
    pub address: SocketAddrV4,
    /// The partition of the key the request was about.
    pub partition: u32,
    /// How many partitions the cluster has.
    pub partitions: u32,
}

/// A `NOT_LEADER` body that is neither empty nor a hint.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum HintError {
    /// The body is neither empty nor [`HINT_LEN`] bytes long.
    #[error("a NOT_LEADER body of {0} bytes (expected 0 or {HINT_LEN})")]
    Length(usize),
    /// The hint names a partition count of 0, or a partition at or past the count.
    #[error("a leader hint for partition {partition} of {partitions}")]
    Partition {
        /// The partition named.
        partition: u32,
        /// The partition count named.
        partitions: u32,
    },
}

impl LeaderHint {
    /// Decodes a `NOT_LEADER` body: `Ok(None)` for an empty one (no leader known).
    pub fn decode(body: &[u8]) -> Result<Option<LeaderHint>, HintError> {
        if body.is_empty() {
            return Ok(None);
        }
        let b: &[u8; HINT_LEN] = body.try_into().map_err(|_| HintError::Length(body.len()))?;
        let node_id = u64::from_le_bytes(b[0..8].try_into().expect("8 bytes"));
        let ip = Ipv4Addr::new(b[8], b[9], b[10], b[11]);
        let port = u16::from_le_bytes([b[12], b[13]]);
        let partition = u32::from_le_bytes(b[14..18].try_into().expect("4 bytes"));
        let partitions = u32::from_le_bytes(b[18..22].try_into().expect("4 bytes"));
        if partitions == 0 || partition >= partitions || Placement::new(partitions, 1).is_err() {
            return Err(HintError::Partition { partition, partitions });
        }
        Ok(Some(LeaderHint { node_id, address: SocketAddrV4::new(ip, port), partition, partitions }))
    }

    /// The hint's bytes (for servers and tests).
    pub fn encode(&self) -> [u8; HINT_LEN] {
        let mut b = [0u8; HINT_LEN];
        b[0..8].copy_from_slice(&self.node_id.to_le_bytes());
        b[8..12].copy_from_slice(&self.address.ip().octets());
        b[12..14].copy_from_slice(&self.address.port().to_le_bytes());
        b[14..18].copy_from_slice(&self.partition.to_le_bytes());
        b[18..22].copy_from_slice(&self.partitions.to_le_bytes());
        b
    }
}

/// Which node leads each partition, as far as the hints told.
#[derive(Clone, Debug, Default)]
pub struct LeaderTable {
    placement: Option<Placement>,
    leaders: Vec<Option<SocketAddr>>,
}

impl LeaderTable {
    /// An empty table: every key goes to a seed node until a hint arrives.
    pub fn new() -> Self {
        Self::default()
    }

    /// Partitions the hints gave (0 before the first hint).
    pub fn partitions(&self) -> u32 {
        self.placement.map_or(0, |p| p.partitions())
    }

    /// The partition of `key`, once the partition count is known.
    pub fn partition_of(&self, key: &[u8]) -> Option<u32> {
        self.placement.map(|p| u32::from(p.partition_of(key)))
    }

    /// Records `hint`'s leader for its partition.
    pub fn learn(&mut self, hint: &LeaderHint) {
        if self.partitions() != hint.partitions {
            // Checked by `LeaderHint::decode`; a hand-built hint out of range is ignored.
            let Ok(p) = Placement::new(hint.partitions, 1) else { return };
            self.placement = Some(p);
            self.leaders = vec![None; hint.partitions as usize];
        }
        if let Some(slot) = self.leaders.get_mut(hint.partition as usize) {
            *slot = Some(SocketAddr::V4(hint.address));
        }
    }

    /// The leader learned for `key`'s partition, if any.
    pub fn leader_of(&self, key: &[u8]) -> Option<SocketAddr> {
        let p = self.partition_of(key)?;
        self.leaders.get(p as usize).copied().flatten()
    }

    /// Forgets every partition led by `node` (it stopped answering), so their keys go to the
    /// seeds again until a new hint names their leader.
    pub fn forget_node(&mut self, node: SocketAddr) {
        for slot in &mut self.leaders {
            if *slot == Some(node) {
                *slot = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(partition: u32, partitions: u32, last: u8) -> LeaderHint {
        LeaderHint {
            node_id: 3,
            address: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, last), 9000),
            partition,
            partitions,
        }
    }

    #[test]
    fn a_hint_has_the_documented_layout_and_round_trips() {
        let h = hint(5, 8, 3);
        let b = h.encode();
        assert_eq!(
            b,
            [3, 0, 0, 0, 0, 0, 0, 0, 10, 77, 0, 3, 0x28, 0x23, 5, 0, 0, 0, 8, 0, 0, 0],
            "u64 id, a.b.c.d, u16 port 9000, u32 partition, u32 partitions"
        );
        assert_eq!(LeaderHint::decode(&b), Ok(Some(h)));
        assert_eq!(LeaderHint::decode(&[]), Ok(None));
    }

    #[test]
    fn a_body_of_another_length_or_an_impossible_partition_is_refused() {
        let b = hint(5, 8, 3).encode();
        for len in [1, 8, 21, 23, 64] {
            let body: Vec<u8> = b.iter().copied().cycle().take(len).collect();
            assert_eq!(LeaderHint::decode(&body), Err(HintError::Length(len)), "{len} bytes");
        }
        for (partition, partitions) in [(0, 0), (8, 8), (9, 8), (0, (1 << 16) + 1)] {
            let mut h = hint(0, 1, 3).encode();
            h[14..18].copy_from_slice(&u32::to_le_bytes(partition));
            h[18..22].copy_from_slice(&u32::to_le_bytes(partitions));
            assert_eq!(LeaderHint::decode(&h), Err(HintError::Partition { partition, partitions }));
        }
    }

    #[test]
    fn the_table_places_keys_as_the_server_does_and_learns_per_partition() {
        let mut t = LeaderTable::new();
        assert_eq!(t.leader_of(b"k"), None);
        assert_eq!(t.partition_of(b"k"), None);
        let placement = Placement::new(8, 1).unwrap();
        let p = u32::from(placement.partition_of(b"k"));
        t.learn(&hint(p, 8, 2));
        assert_eq!(t.partition_of(b"k"), Some(p));
        assert_eq!(t.leader_of(b"k"), Some("10.77.0.2:9000".parse().unwrap()));
        // A key of another partition is still unknown.
        let other =
            (0..100u32).map(|i| i.to_string()).find(|k| t.partition_of(k.as_bytes()) != Some(p)).unwrap();
        assert_eq!(t.leader_of(other.as_bytes()), None);
        // A new leader replaces the old; a node that stops answering is forgotten.
        t.learn(&hint(p, 8, 3));
        assert_eq!(t.leader_of(b"k"), Some("10.77.0.3:9000".parse().unwrap()));
        t.forget_node("10.77.0.3:9000".parse().unwrap());
        assert_eq!(t.leader_of(b"k"), None);
        // Another partition count forgets everything learned under the old one.
        t.learn(&hint(p, 8, 2));
        t.learn(&hint(0, 4, 1));
        assert_eq!(t.partitions(), 4);
        let in_zero = Placement::new(4, 1).unwrap().partition_of(b"k") == 0;
        assert_eq!(t.leader_of(b"k"), in_zero.then(|| "10.77.0.1:9000".parse().unwrap()));
    }
}
