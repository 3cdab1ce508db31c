//! The body of a `NOT_LEADER` answer: which node leads the key's partition, where to reach it,
//! and how the cluster places keys, so a client can send each key to its partition's leader.
//!
//! Layout (docs/PROTOCOL.md, "NOT_LEADER and the leader hint"), 22 bytes, little-endian:
//! `u64 leader node id`, `4 bytes IPv4 address` (network order: a.b.c.d), `u16 UDP port`,
//! `u32 partition` (the request's), `u32 partitions` (how many the cluster has; a key's partition
//! is `inbox::Placement::partition_of`). An empty body means no leader is known: retry later
//! with the same request id.
//!
//! Invariants: `decode` accepts exactly what `encode` writes (22 bytes, node id at least 1,
//! partition below partitions, a port other than 0) and nothing else; neither panics.

use std::net::{Ipv4Addr, SocketAddrV4};

/// Bytes of an encoded hint.
pub const LEADER_HINT_LEN: usize = 22;

/// Where a partition's leader is, as the answering node knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderHint {
    /// The leader's node id (`cluster.nodes`).
    pub node: u64,
    /// Its data-plane address.
    pub address: SocketAddrV4,
    /// The partition the request was for.
    pub partition: u32,
    /// How many partitions the cluster has.
    pub partitions: u32,
}

impl LeaderHint {
    /// Writes the hint into `out`; returns its length, or 0 when `out` is too short (the answer
    /// then goes without a hint, which clients treat as "leader unknown").
    pub fn encode(&self, out: &mut [u8]) -> usize {
        let Some(out) = out.get_mut(..LEADER_HINT_LEN) else { return 0 };
        out[0..8].copy_from_slice(&self.node.to_le_bytes());
        out[8..12].copy_from_slice(&self.address.ip().octets());
        out[12..14].copy_from_slice(&self.address.port().to_le_bytes());
        out[14..18].copy_from_slice(&self.partition.to_le_bytes());
        out[18..22].copy_from_slice(&self.partitions.to_le_bytes());
        LEADER_HINT_LEN
    }

    /// Reads a `NOT_LEADER` body: `None` for an empty one (no leader known) or one that is not a
    /// well-formed hint.
    pub fn decode(body: &[u8]) -> Option<LeaderHint> {
        let b: &[u8; LEADER_HINT_LEN] = body.try_into().ok()?;
        let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let node = u64::from_le_bytes(b[0..8].try_into().expect("8 bytes"));
        let ip = Ipv4Addr::new(b[8], b[9], b[10], b[11]);
        let port = u16::from_le_bytes([b[12], b[13]]);
        let (partition, partitions) = (u32_at(14), u32_at(18));
        if node == 0 || port == 0 || partition >= partitions {
            return None;
        }
        Some(LeaderHint { node, address: SocketAddrV4::new(ip, port), partition, partitions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_reads_back_and_nothing_else_reads_as_one() {
        let hint =
            LeaderHint { node: 3, address: "10.77.0.3:9000".parse().unwrap(), partition: 5, partitions: 8 };
        let mut buf = [0u8; 32];
        assert_eq!(hint.encode(&mut buf), LEADER_HINT_LEN);
        assert_eq!(LeaderHint::decode(&buf[..LEADER_HINT_LEN]), Some(hint));
        assert_eq!(&buf[8..14], &[10, 77, 0, 3, 0x28, 0x23]);
        assert_eq!(hint.encode(&mut buf[..21]), 0);
        assert_eq!(LeaderHint::decode(&[]), None);
        assert_eq!(LeaderHint::decode(&buf[..21]), None);
        assert_eq!(LeaderHint::decode(&buf[..23]), None);
        for bad in [LeaderHint { node: 0, ..hint }, LeaderHint { partition: 8, ..hint }] {
            bad.encode(&mut buf);
            assert_eq!(LeaderHint::decode(&buf[..LEADER_HINT_LEN]), None, "{bad:?}");
        }
        LeaderHint { address: "10.77.0.3:0".parse().unwrap(), ..hint }.encode(&mut buf);
        assert_eq!(LeaderHint::decode(&buf[..LEADER_HINT_LEN]), None);
    }
}
