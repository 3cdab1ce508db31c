//! Raft messages between nodes over the data plane: the peer datagram codec and its sans-IO
//! batching (`PeerOutbox`) and reassembly (`PeerInbox`). docs/PROTOCOL.md, "Peer messages
//! (replication)", is the byte-level spec.
//!
//! A peer datagram travels over the same packet I/O and port as client datagrams; its magic
//! (`VR`) differs from the client protocol's (`VG`) in its second byte, so a shard tells them apart
//! from the first two bytes. Each datagram goes from one node to one node of one cluster and holds
//! frames, each one whole prost-encoded `eraftpb::Message` of one partition's group or one fragment
//! of a message too large for one datagram.
//!
//! - `wire.rs`: the header and frame layouts, encode and decode (never panics, never reads past).
//! - `outbox.rs`: `PeerOutbox` collects `(to, partition, Message)` during a poll and packs them per
//!   destination node into as few datagrams as fit, splitting large messages into fragments.
//! - `inbox.rs`: `PeerInbox` checks each received datagram (magic, version, checksum, cluster,
//!   destination, sender), reassembles fragments (`reassembly.rs`, bounded), decodes, validates
//!   (`validate.rs`) and hands out `(from, partition, Message)`; every drop is counted by reason.
//!
//! Invariants: nothing here reads a clock or does I/O (time comes in as `now` ns); every buffer is
//! bounded by a `PeerLimits` field; a message is handed to the caller only after `validate` passed,
//! so raft-rs's `step` never sees the malformed inputs it would panic on (the ones validation can
//! rule out: `validate.rs` lists them and the ones it cannot).

pub mod inbox;
pub mod liveness;
pub mod outbox;
pub mod reassembly;
pub mod validate;
pub mod wire;

#[cfg(test)]
mod tests;

pub use inbox::{DropReason, PeerInbox, PeerInboxCounters, PeerMessage};
pub use liveness::{Liveness, PeerChange};
pub use outbox::{PeerOutbox, PeerOutboxCounters, Transmit};
pub use validate::{validate, Invalid, ValidateContext, INDEX_MAX, TERM_MAX};

use thiserror::Error;

/// What the peer layer needs to know about this node's Raft groups to validate a message.
pub trait PeerGroups {
    /// Whether `node` is a voter of `partition`'s group as this node knows it; false for a
    /// partition this node does not replicate.
    fn is_voter(&self, partition: u32, node: u64) -> bool;
    /// This node's last Raft log index for `partition` (raft-rs `raft_log.last_index()`, entries
    /// not yet durable included); `None` when this node does not replicate the partition.
    ///
    /// The inbox reads it when it validates, before the caller steps the datagram's earlier
    /// messages. From correct peers that is always safe (a log only loses entries to a leader
    /// that never refers to them); against a buggy peer that truncates our log and refers past
    /// it in one datagram, call `validate` again right before `step`.
    fn last_index(&self, partition: u32) -> Option<u64>;
}

/// The limits of the peer layer; both ends of a link must use the same `datagram_bytes_max` or
/// larger ones on the receiving side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerLimits {
    /// The largest datagram sent or accepted (UDP payload): 1472 for a 1500-byte MTU, up to 8972
    /// for a 9000-byte jumbo frame. 256 ..= 65507.
    pub datagram_bytes_max: usize,
    /// Frames in one datagram, sent or accepted.
    pub frames_per_datagram_max: usize,
    /// The largest encoded `eraftpb::Message` sent or accepted (an append of many entries, a
    /// snapshot chunk): larger ones are refused by the outbox and dropped by the inbox.
    pub message_bytes_max: usize,
    /// Encoded bytes an outbox holds for one destination before `push` answers `Full`.
    pub outbox_bytes_per_node_max: usize,
    /// Messages being reassembled at once from one peer.
    pub reassembly_per_peer_max: usize,
    /// Bytes of messages being reassembled at once, all peers together (also the most the
    /// reassembly buffers keep allocated between messages).
    pub reassembly_bytes_max: usize,
    /// An incomplete message older than this (ns since its first fragment arrived) is dropped.
    pub reassembly_age_ns_max: u64,
    /// A keepalive goes to a peer nothing else went to for this long (ns): the Raft heartbeat
    /// interval (`liveness.rs`).
    pub keepalive_ns: u64,
    /// A peer not heard from for this long (ns) is lost: the shortest election timeout, more
    /// than `keepalive_ns`.
    pub silence_ns: u64,
}

impl PeerLimits {
    /// Limits for a 1500-byte MTU link.
    pub fn mtu_1500() -> PeerLimits {
        PeerLimits {
            datagram_bytes_max: 1472,
            frames_per_datagram_max: 256,
            message_bytes_max: 4 << 20,
            outbox_bytes_per_node_max: 16 << 20,
            reassembly_per_peer_max: 4,
            reassembly_bytes_max: 16 << 20,
            reassembly_age_ns_max: 1_000_000_000,
            keepalive_ns: 20_000_000,
            silence_ns: 100_000_000,
        }
    }

    /// Limits for a 9000-byte jumbo-frame link.
    pub fn jumbo_9000() -> PeerLimits {
        PeerLimits { datagram_bytes_max: 8972, ..PeerLimits::mtu_1500() }
    }

    /// Checks the limits against each other and the wire format.
    pub fn check(&self) -> Result<(), PeerError> {
        let bad = |why| Err(PeerError::BadLimits(why));
        if !(256..=wire::DATAGRAM_BYTES_LIMIT).contains(&self.datagram_bytes_max) {
            return bad("datagram_bytes_max must be 256 ..= 65507");
        }
        if self.frames_per_datagram_max == 0 || self.frames_per_datagram_max > u16::MAX as usize {
            return bad("frames_per_datagram_max must be 1 ..= 65535");
        }
        if self.message_bytes_max == 0 || self.message_bytes_max > wire::MESSAGE_BYTES_LIMIT {
            return bad("message_bytes_max must be 1 ..= 1 GiB");
        }
        let room = self.datagram_bytes_max - wire::HEADER_LEN - wire::FRAGMENT_HEADER_LEN;
        if self.message_bytes_max.div_ceil(room) > u16::MAX as usize {
            return bad("message_bytes_max needs more than 65535 fragments of this datagram size");
        }
        if self.outbox_bytes_per_node_max < self.message_bytes_max {
            return bad("outbox_bytes_per_node_max must hold one message of message_bytes_max");
        }
        if self.reassembly_per_peer_max == 0 {
            return bad("reassembly_per_peer_max must be at least 1");
        }
        if self.reassembly_bytes_max < self.message_bytes_max {
            return bad("reassembly_bytes_max must hold one message of message_bytes_max");
        }
        if self.reassembly_age_ns_max == 0 {
            return bad("reassembly_age_ns_max must be positive");
        }
        if self.keepalive_ns == 0 || self.silence_ns <= self.keepalive_ns {
            return bad("keepalive_ns must be positive and less than silence_ns");
        }
        Ok(())
    }
}

/// Errors of the peer layer's set-up and of `PeerOutbox::push`.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum PeerError {
    /// The limits are inconsistent; nothing was built.
    #[error("bad peer limits: {0}")]
    BadLimits(&'static str),
    /// The peer list names this node, node 0, or a node twice; nothing was built.
    #[error("bad peer list: {0}")]
    BadPeers(&'static str),
    /// The destination is not a known peer; the message was not queued.
    #[error("node {to} is not a known peer")]
    UnknownPeer {
        /// The destination asked for.
        to: u64,
    },
    /// The encoded message is larger than `message_bytes_max`; it was not queued.
    #[error("message of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Its encoded length.
        len: usize,
        /// `message_bytes_max`.
        max: usize,
    },
    /// The destination's queue holds `outbox_bytes_per_node_max` already; the message was not
    /// queued (Raft sends it again).
    #[error("the outbox for node {to} is full")]
    Full {
        /// The destination.
        to: u64,
    },
}

/// Checks a peer list: no node 0, not this node, no duplicate.
pub(crate) fn check_peers(node_id: u64, peers: &[u64]) -> Result<(), PeerError> {
    if node_id == 0 {
        return Err(PeerError::BadPeers("this node's id is 0"));
    }
    for (i, p) in peers.iter().enumerate() {
        if *p == 0 {
            return Err(PeerError::BadPeers("a peer's id is 0"));
        }
        if *p == node_id {
            return Err(PeerError::BadPeers("the peer list names this node"));
        }
        if peers[..i].contains(p) {
            return Err(PeerError::BadPeers("a peer is listed twice"));
        }
    }
    Ok(())
}
