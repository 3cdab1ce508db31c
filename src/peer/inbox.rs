//! `PeerInbox`: received peer datagrams in, validated `(from, partition, Message)` out.
//!
//! Each datagram is checked as a whole first (length, magic, version, checksum, cluster id,
//! destination = this node, sender = a known peer, frames that end exactly at its end); a datagram
//! that fails delivers nothing. Then each frame on its own: a whole message is decoded and
//! validated; a fragment goes to the reassembly, and the message it completes is decoded and
//! validated. A frame that fails drops that message only.
//!
//! Invariants: never panics whatever the bytes; every datagram or message that is not delivered
//! is counted under exactly one `DropReason` (a datagram-level reason counts the datagram, a
//! frame-level reason counts the frame or message); memory is bounded by `PeerLimits` (the
//! reassembly) plus what prost allocates for the messages handed out.

use prost::Message as _;
use raft::eraftpb::Message;

use super::reassembly::{FragmentDrop, Push, Reassembly};
use super::validate::{validate, Invalid, ValidateContext};
use super::wire::{self, Frame, FrameError, HeaderError};
use super::{check_peers, PeerError, PeerGroups, PeerLimits};

/// A message that passed every check: step it into `partition`'s group.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerMessage {
    /// The sending node (also `message.from`).
    pub from: u64,
    /// The partition whose group it is for.
    pub partition: u32,
    /// The message.
    pub message: Message,
}

/// Why a datagram or a message was dropped; one counter each (`DropReason::ALL` order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The datagram does not start with the peer magic.
    BadMagic,
    /// A peer protocol version this build does not speak.
    BadVersion,
    /// The crc32c does not match the bytes.
    BadChecksum,
    /// Shorter than the header, a payload length that is not the datagram's, no frames or more
    /// than the limit, frames that do not end exactly at its end, an unknown frame kind,
    /// fragment fields no sender produces.
    Malformed,
    /// Another cluster's datagram.
    WrongCluster,
    /// A datagram for another node.
    WrongDestination,
    /// A sender that is not one of this node's peers.
    UnknownPeer,
    /// A datagram over `datagram_bytes_max`, or a message over `message_bytes_max`.
    Oversized,
    /// A fragment of a new message while the sender's reassembly slots or the byte budget are
    /// taken.
    ReassemblyFull,
    /// An incomplete message that waited past `reassembly_age_ns_max` (counted per message).
    ReassemblyExpired,
    /// A fragment already received, or one of a message already delivered.
    DuplicateFragment,
    /// A fragment whose count, total length or partition differ from its message's.
    FragmentMismatch,
    /// The bytes are not a prost `eraftpb::Message`.
    Undecodable,
    /// The message failed validation (`PeerInboxCounters::invalid` says which check).
    Invalid,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 14] = [
        DropReason::BadMagic,
        DropReason::BadVersion,
        DropReason::BadChecksum,
        DropReason::Malformed,
        DropReason::WrongCluster,
        DropReason::WrongDestination,
        DropReason::UnknownPeer,
        DropReason::Oversized,
        DropReason::ReassemblyFull,
        DropReason::ReassemblyExpired,
        DropReason::DuplicateFragment,
        DropReason::FragmentMismatch,
        DropReason::Undecodable,
        DropReason::Invalid,
    ];

    /// Its position in `ALL` (its counter).
    pub fn index(self) -> usize {
        DropReason::ALL.iter().position(|r| *r == self).expect("in ALL")
    }

    /// Its name in reports and docs/PROTOCOL.md.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::BadMagic => "bad-magic",
            DropReason::BadVersion => "bad-version",
            DropReason::BadChecksum => "bad-checksum",
            DropReason::Malformed => "malformed",
            DropReason::WrongCluster => "wrong-cluster",
            DropReason::WrongDestination => "wrong-destination",
            DropReason::UnknownPeer => "unknown-peer",
            DropReason::Oversized => "oversized",
            DropReason::ReassemblyFull => "reassembly-full",
            DropReason::ReassemblyExpired => "reassembly-expired",
            DropReason::DuplicateFragment => "duplicate-fragment",
            DropReason::FragmentMismatch => "fragment-mismatch",
            DropReason::Undecodable => "undecodable",
            DropReason::Invalid => "invalid",
        }
    }
}

/// What an inbox received, delivered and dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerInboxCounters {
    /// Datagrams given to `receive`.
    pub datagrams: u64,
    /// Fragments kept for reassembly.
    pub fragments: u64,
    /// Messages completed from fragments.
    pub reassembled: u64,
    /// Messages handed out.
    pub delivered: u64,
    /// Keepalive frames received (`liveness.rs`).
    pub keepalives: u64,
    /// Drops, by `DropReason::index`.
    pub dropped: [u64; DropReason::ALL.len()],
    /// Validation failures, by `Invalid::index` (their sum is `dropped(Invalid)`).
    pub invalid: [u64; Invalid::ALL.len()],
}

impl PeerInboxCounters {
    /// Drops counted under `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()]
    }

    /// Validation failures counted under `reason`.
    pub fn invalid(&self, reason: Invalid) -> u64 {
        self.invalid[reason.index()]
    }

    /// All drops.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

/// The receiving half of the peer layer for one node (or one shard of it).
#[derive(Debug)]
pub struct PeerInbox {
    limits: PeerLimits,
    cluster_id: u64,
    node_id: u64,
    peers: Vec<u64>,
    reassembly: Reassembly,
    liveness: super::Liveness,
    counters: PeerInboxCounters,
}

impl PeerInbox {
    /// An inbox for node `node_id` of cluster `cluster_id` that accepts datagrams from `peers`.
    pub fn new(
        limits: PeerLimits,
        cluster_id: u64,
        node_id: u64,
        peers: &[u64],
    ) -> Result<PeerInbox, PeerError> {
        limits.check()?;
        check_peers(node_id, peers)?;
        Ok(PeerInbox {
            limits,
            cluster_id,
            node_id,
            peers: peers.to_vec(),
            reassembly: Reassembly::new(limits, peers.len()),
            liveness: super::Liveness::new(peers, limits.silence_ns),
            counters: PeerInboxCounters::default(),
        })
    }

    /// The counters so far.
    pub fn counters(&self) -> &PeerInboxCounters {
        &self.counters
    }

    /// The reassembly (its occupancy, for reports and tests).
    pub fn reassembly(&self) -> &Reassembly {
        &self.reassembly
    }

    /// Which peers are alive: every datagram that passed the datagram-level checks counts.
    pub fn liveness(&mut self) -> &mut super::Liveness {
        &mut self.liveness
    }

    /// Drops the incomplete messages past their age bound (also done by each `receive`).
    pub fn tick(&mut self, now_ns: u64) {
        let expired = self.reassembly.expire(now_ns);
        self.counters.dropped[DropReason::ReassemblyExpired.index()] += expired;
    }

    /// Takes one received datagram at time `now_ns`; appends what it delivers to `out`.
    pub fn receive<G: PeerGroups + ?Sized>(
        &mut self,
        datagram: &[u8],
        now_ns: u64,
        groups: &G,
        out: &mut Vec<PeerMessage>,
    ) {
        self.counters.datagrams += 1;
        self.tick(now_ns);
        let (from, incarnation) = match self.check_datagram(datagram) {
            Ok(v) => v,
            Err(reason) => return self.drop(reason),
        };
        self.liveness.heard(from, incarnation, now_ns);
        let peer = self.peers.iter().position(|p| *p == from).expect("check_datagram found it");
        let mut rest = &datagram[wire::HEADER_LEN..];
        while let Ok((frame, after)) = wire::decode_frame(rest) {
            rest = after;
            self.frame(peer, incarnation, &frame, now_ns, groups, out);
        }
    }

    fn drop(&mut self, reason: DropReason) {
        self.counters.dropped[reason.index()] += 1;
    }

    /// The datagram-level checks; returns the sender and its incarnation.
    fn check_datagram(&self, datagram: &[u8]) -> Result<(u64, u64), DropReason> {
        if datagram.len() > self.limits.datagram_bytes_max {
            return Err(DropReason::Oversized);
        }
        let h = wire::decode_header(datagram).map_err(|e| match e {
            HeaderError::Short | HeaderError::BadLength => DropReason::Malformed,
            HeaderError::BadMagic => DropReason::BadMagic,
            HeaderError::BadVersion => DropReason::BadVersion,
            HeaderError::BadChecksum => DropReason::BadChecksum,
        })?;
        if h.cluster_id != self.cluster_id {
            return Err(DropReason::WrongCluster);
        }
        if h.to_node != self.node_id {
            return Err(DropReason::WrongDestination);
        }
        if !self.peers.contains(&h.from_node) {
            return Err(DropReason::UnknownPeer);
        }
        let count = h.frame_count as usize;
        if count == 0 || count > self.limits.frames_per_datagram_max {
            return Err(DropReason::Malformed);
        }
        check_frames(&datagram[wire::HEADER_LEN..], count).map_err(|_| DropReason::Malformed)?;
        Ok((h.from_node, h.incarnation))
    }

    fn frame<G: PeerGroups + ?Sized>(
        &mut self,
        peer: usize,
        incarnation: u64,
        frame: &Frame<'_>,
        now_ns: u64,
        groups: &G,
        out: &mut Vec<PeerMessage>,
    ) {
        let from = self.peers[peer];
        if frame.keepalive {
            self.counters.keepalives += 1;
            return;
        }
        let Some(f) = frame.fragment else {
            return self.deliver(from, frame.partition, frame.bytes, groups, out);
        };
        match self.reassembly.push(peer, incarnation, frame.partition, &f, frame.bytes, now_ns) {
            Push::Incomplete => self.counters.fragments += 1,
            Push::Complete { slot } => {
                self.counters.fragments += 1;
                self.counters.reassembled += 1;
                let (partition, bytes) = self.reassembly.message(slot);
                let result = decode_and_validate(self.node_id, from, partition, bytes, groups);
                self.reassembly.release(slot);
                self.outcome(from, partition, result, out);
            }
            Push::Dropped(why) => self.drop(match why {
                FragmentDrop::Oversized => DropReason::Oversized,
                FragmentDrop::Full => DropReason::ReassemblyFull,
                FragmentDrop::Duplicate => DropReason::DuplicateFragment,
                FragmentDrop::Mismatch => DropReason::FragmentMismatch,
            }),
        }
    }

    fn deliver<G: PeerGroups + ?Sized>(
        &mut self,
        from: u64,
        partition: u32,
        bytes: &[u8],
        groups: &G,
        out: &mut Vec<PeerMessage>,
    ) {
        if bytes.len() > self.limits.message_bytes_max {
            return self.drop(DropReason::Oversized);
        }
        let result = decode_and_validate(self.node_id, from, partition, bytes, groups);
        self.outcome(from, partition, result, out);
    }

    fn outcome(
        &mut self,
        from: u64,
        partition: u32,
        result: Result<Message, Option<Invalid>>,
        out: &mut Vec<PeerMessage>,
    ) {
        match result {
            Ok(message) => {
                self.counters.delivered += 1;
                out.push(PeerMessage { from, partition, message });
            }
            Err(None) => self.drop(DropReason::Undecodable),
            Err(Some(why)) => {
                self.drop(DropReason::Invalid);
                self.counters.invalid[why.index()] += 1;
            }
        }
    }
}

/// Checks that exactly `count` frames end exactly at the end of `payload`.
fn check_frames(payload: &[u8], count: usize) -> Result<(), FrameError> {
    let mut rest = payload;
    for _ in 0..count {
        rest = wire::decode_frame(rest)?.1;
    }
    if rest.is_empty() {
        Ok(())
    } else {
        Err(FrameError::Framing)
    }
}

/// Decodes and validates one message: `Err(None)` if it does not decode.
fn decode_and_validate<G: PeerGroups + ?Sized>(
    node_id: u64,
    from_node: u64,
    partition: u32,
    bytes: &[u8],
    groups: &G,
) -> Result<Message, Option<Invalid>> {
    let message = Message::decode(bytes).map_err(|_| None)?;
    let ctx = ValidateContext { node_id, from_node, partition, groups };
    validate(&message, &ctx).map_err(Some)?;
    Ok(message)
}
