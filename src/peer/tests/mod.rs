//! Tests of the peer layer: helpers shared by the files below.
//!
//! - `roundtrip.rs`: outbox -> inbox, batching per node, fragments reordered and duplicated.
//! - `drops.rs`: every malformed input class counted by its reason; reassembly bounds.
//! - `cluster.rs`: a real three-node raft-rs cluster whose messages all cross the peer layer.
//! - `validate.rs`: each validation check, and the raft-rs panics they keep from being reached.
//! - `prop.rs`: arbitrary bytes and mutations never panic; delivery is exactly-once under shuffles.

mod cluster;
mod drops;
mod prop;
mod roundtrip;
mod validate;

use std::collections::HashMap;

pub(super) use crate::candle::corpus::SplitMix64;
use raft::eraftpb::{ConfState, Entry, Message, MessageType, Snapshot, SnapshotMetadata};

use super::wire::{self, FragmentInfo, Header};
use super::{PeerGroups, PeerInbox, PeerLimits, PeerMessage, PeerOutbox};

pub(super) const CLUSTER: u64 = 0xC1C1;
pub(super) const ME: u64 = 2;
pub(super) const LEADER: u64 = 1;
pub(super) const OTHER: u64 = 3;

/// Groups as a test states them: voters and last index per partition.
#[derive(Clone, Debug, Default)]
pub(super) struct Groups {
    pub voters: HashMap<u32, Vec<u64>>,
    pub last_index: HashMap<u32, u64>,
}

impl Groups {
    /// Partitions `0..n`, voters 1, 2, 3, last index `last`.
    pub fn three(n: u32, last: u64) -> Groups {
        let mut g = Groups::default();
        for p in 0..n {
            g.voters.insert(p, vec![1, 2, 3]);
            g.last_index.insert(p, last);
        }
        g
    }
}

impl PeerGroups for Groups {
    fn is_voter(&self, partition: u32, node: u64) -> bool {
        self.voters.get(&partition).is_some_and(|v| v.contains(&node))
    }

    fn last_index(&self, partition: u32) -> Option<u64> {
        self.last_index.get(&partition).copied()
    }
}

pub(super) fn msg(t: MessageType, from: u64, to: u64, term: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(t);
    m.from = from;
    m.to = to;
    m.term = term;
    m
}

pub(super) fn heartbeat(from: u64, to: u64, term: u64, commit: u64) -> Message {
    let mut m = msg(MessageType::MsgHeartbeat, from, to, term);
    m.commit = commit;
    m
}

/// A MsgAppend of `n` entries of `size` bytes each after (`index`, `log_term`), at `term`.
pub(super) fn append(
    from: u64,
    to: u64,
    term: u64,
    index: u64,
    log_term: u64,
    n: usize,
    size: usize,
) -> Message {
    let mut m = msg(MessageType::MsgAppend, from, to, term);
    m.index = index;
    m.log_term = log_term;
    m.commit = index;
    m.entries = (0..n)
        .map(|i| Entry {
            index: index + 1 + i as u64,
            term,
            data: (0..size).map(|b| (b + i) as u8).collect(),
            ..Default::default()
        })
        .collect();
    m
}

pub(super) fn snapshot_msg(from: u64, to: u64, term: u64, index: u64, voters: Vec<u64>) -> Message {
    let mut m = msg(MessageType::MsgSnapshot, from, to, term);
    let cs = ConfState { voters, ..Default::default() };
    let meta = SnapshotMetadata { index, term, conf_state: Some(cs) };
    m.snapshot = Some(Snapshot { data: vec![7; 100], metadata: Some(meta) });
    m
}

pub(super) fn outbox(limits: PeerLimits, me: u64, peers: &[u64]) -> PeerOutbox {
    PeerOutbox::new(limits, CLUSTER, me, 77, peers).expect("outbox")
}

pub(super) fn inbox(limits: PeerLimits) -> PeerInbox {
    PeerInbox::new(limits, CLUSTER, ME, &[LEADER, OTHER]).expect("inbox")
}

/// Every datagram the outbox has, in order, with its destination.
pub(super) fn drain(out: &mut PeerOutbox, limits: &PeerLimits) -> Vec<(u64, Vec<u8>)> {
    let mut buf = vec![0u8; limits.datagram_bytes_max];
    let mut all = Vec::new();
    while let Some(t) = out.poll_transmit(&mut buf) {
        assert!(t.len <= limits.datagram_bytes_max);
        all.push((t.to, buf[..t.len].to_vec()));
    }
    all
}

/// The header of a datagram from the leader to this node, for crafting inputs.
pub(super) fn header() -> Header {
    Header {
        version: wire::VERSION,
        flags: 0,
        cluster_id: CLUSTER,
        from_node: LEADER,
        to_node: ME,
        incarnation: 5,
        sequence: 0,
        payload_len: 0,
        frame_count: 0,
    }
}

/// A datagram of `frames` under `h` (its lengths and count set here), checksummed.
pub(super) fn craft(mut h: Header, frames: &[(u32, Option<FragmentInfo>, &[u8])]) -> Vec<u8> {
    let mut buf = vec![0u8; 70_000];
    let mut at = wire::HEADER_LEN;
    for (p, f, bytes) in frames {
        at += wire::encode_frame(&mut buf[at..], *p, *f, bytes);
    }
    buf.truncate(at);
    h.payload_len = (at - wire::HEADER_LEN) as u16;
    h.frame_count = frames.len() as u16;
    wire::finish_datagram(&mut buf, &h);
    buf
}

/// A datagram of one whole message `m` of partition `p`, from the leader.
pub(super) fn whole(p: u32, m: &Message) -> Vec<u8> {
    use prost::Message as _;
    craft(header(), &[(p, None, &m.encode_to_vec())])
}

/// Feeds `datagrams` to `inbox` at time `now`; returns what it delivered.
pub(super) fn feed(
    inbox: &mut PeerInbox,
    groups: &Groups,
    datagrams: &[Vec<u8>],
    now: u64,
) -> Vec<PeerMessage> {
    let mut out = Vec::new();
    for d in datagrams {
        inbox.receive(d, now, groups, &mut out);
    }
    out
}

/// A deterministic Fisher-Yates shuffle.
pub(super) fn shuffle<T>(rng: &mut SplitMix64, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}
