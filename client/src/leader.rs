//! The leader hint of a `NOT_LEADER` answer, and the per-partition leader table learned from hints.
//!
//! A `NOT_LEADER` (status 17) answer body is either empty (no leader known: retry later, same
//! request id) or a [`LeaderHint`] of [`LEADER_HINT_LEN`] bytes: the leader's node id and address,
//! the key's partition and the cluster's partition count (docs/PROTOCOL.md). The codec is the
//! server's (`vigil::wire::LeaderHint`); this module tells "empty" from "not a hint".
//!
//! Invariants:
//! - a body that is neither empty nor a well-formed hint is an error, never a guess;
//! - the table maps a key to a partition with the server's own placement
//!   ([`vigil::inbox::Placement`], FNV-1a of the key modulo the partition count), never a copy;
//! - the table is sized by the partition count the hints give; a hint with another count (the
//!   cluster was re-created with other partitions) forgets every leader learned before, since
//!   partition numbers then name other key ranges.

use std::net::SocketAddr;
use thiserror::Error;
use vigil::inbox::Placement;
pub use vigil::wire::{LeaderHint, LEADER_HINT_LEN};

/// A `NOT_LEADER` body that is neither empty nor a hint.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum HintError {
    /// The body is not a well-formed hint: not [`LEADER_HINT_LEN`] bytes, node id 0, port 0, or a
    /// partition at or past the partition count.
    #[error("a NOT_LEADER body of {0} bytes that is not a leader hint")]
    Malformed(usize),
    /// A hint naming more partitions than a cluster can have (`vigil::inbox::PARTITIONS_MAX`).
    #[error("a leader hint for a cluster of {0} partitions")]
    Partitions(u32),
}

/// Reads a `NOT_LEADER` body with the server's own decoder (`vigil::wire::LeaderHint`):
/// `Ok(None)` for an empty one (no leader known: retry later), an error for anything that is not
/// a hint.
pub fn decode_hint(body: &[u8]) -> Result<Option<LeaderHint>, HintError> {
    if body.is_empty() {
        return Ok(None);
    }
    let hint = LeaderHint::decode(body).ok_or(HintError::Malformed(body.len()))?;
    if Placement::new(hint.partitions, 1).is_err() {
        return Err(HintError::Partitions(hint.partitions));
    }
    Ok(Some(hint))
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
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn hint(partition: u32, partitions: u32, last: u8) -> LeaderHint {
        LeaderHint {
            node: u64::from(last),
            address: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, last), 9000),
            partition,
            partitions,
        }
    }

    fn bytes(h: &LeaderHint) -> Vec<u8> {
        let mut b = vec![0u8; LEADER_HINT_LEN];
        assert_eq!(h.encode(&mut b), LEADER_HINT_LEN);
        b
    }

    #[test]
    fn an_empty_body_is_no_leader_and_a_hint_has_the_documented_layout() {
        let h = hint(5, 8, 3);
        let b = bytes(&h);
        assert_eq!(
            b,
            [3, 0, 0, 0, 0, 0, 0, 0, 10, 77, 0, 3, 0x28, 0x23, 5, 0, 0, 0, 8, 0, 0, 0],
            "u64 id, a.b.c.d, u16 port 9000, u32 partition, u32 partitions"
        );
        assert_eq!(decode_hint(&b), Ok(Some(h)));
        assert_eq!(decode_hint(&[]), Ok(None));
    }

    #[test]
    fn a_body_that_is_not_a_hint_is_an_error() {
        let b = bytes(&hint(5, 8, 3));
        for len in [1, 8, 21, 23, 64] {
            let body: Vec<u8> = b.iter().copied().cycle().take(len).collect();
            assert_eq!(decode_hint(&body), Err(HintError::Malformed(len)), "{len} bytes");
        }
        assert_eq!(decode_hint(&bytes(&hint(8, 8, 3))), Err(HintError::Malformed(LEADER_HINT_LEN)));
        assert_eq!(
            decode_hint(&bytes(&hint(0, (1 << 16) + 1, 3))),
            Err(HintError::Partitions((1 << 16) + 1))
        );
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
