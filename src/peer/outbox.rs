//! `PeerOutbox`: Raft messages in during a poll, datagrams out, packed per destination node.
//!
//! `push(partition, message)` encodes the message (prost) at once into its destination's staging
//! buffer; `poll_transmit(buf)` then writes the next datagram straight into the caller's buffer
//! (a DPDK mbuf, a sendmmsg slot): as many whole messages of that destination, all partitions
//! together, as fit `datagram_bytes_max`; a message larger than one datagram goes out as
//! fragments of equal length (the last may be shorter), one after the other. Destinations take
//! turns, one datagram each.
//!
//! Invariants: a destination's staged bytes never exceed `outbox_bytes_per_node_max`; a message
//! over `message_bytes_max` is refused, never sent; every datagram holds at least one frame and
//! at most `frames_per_datagram_max`, and at most `datagram_bytes_max` bytes; the staging buffers
//! keep their capacity, so after warm-up nothing is allocated per message.

use std::collections::VecDeque;

use prost::Message as _;
use raft::eraftpb::Message;

use super::wire::{self, FragmentInfo, Header};
use super::{check_peers, PeerError, PeerLimits};

/// One datagram written by `poll_transmit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The node to send it to.
    pub to: u64,
    /// Its length at the start of the caller's buffer.
    pub len: usize,
}

/// What an outbox sent and refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerOutboxCounters {
    /// Messages queued.
    pub messages: u64,
    /// Messages sent as fragments.
    pub fragmented: u64,
    /// Fragments written.
    pub fragments: u64,
    /// Keepalive frames queued (`keep_alive`).
    pub keepalives: u64,
    /// Datagrams written.
    pub datagrams: u64,
    /// Bytes of datagrams written.
    pub bytes: u64,
    /// Messages refused: over `message_bytes_max`.
    pub refused_too_large: u64,
    /// Messages refused: the destination's staging was full.
    pub refused_full: u64,
    /// Messages refused: not for a known peer.
    pub refused_unknown_peer: u64,
}

/// One staged message.
#[derive(Clone, Copy, Debug)]
struct Staged {
    partition: u32,
    start: usize,
    len: usize,
    /// A keepalive frame (no bytes: `keep_alive`).
    keepalive: bool,
}

/// The fragmenting of the message at the head of a destination's queue.
#[derive(Clone, Copy, Debug)]
struct Fragmenting {
    message_id: u32,
    next: u16,
    count: u16,
}

#[derive(Debug)]
struct Dest {
    node: u64,
    bytes: Vec<u8>,
    queue: VecDeque<Staged>,
    fragmenting: Option<Fragmenting>,
    /// A datagram went to it since the last `keep_alive`, and when `keep_alive` last saw one go.
    sent: bool,
    sent_at: Option<u64>,
}

/// The sending half of the peer layer for one node (or one shard of it).
#[derive(Debug)]
pub struct PeerOutbox {
    limits: PeerLimits,
    cluster_id: u64,
    node_id: u64,
    incarnation: u64,
    sequence: u32,
    next_message_id: u32,
    dests: Vec<Dest>,
    next_dest: usize,
    counters: PeerOutboxCounters,
}

impl PeerOutbox {
    /// An outbox for node `node_id` of cluster `cluster_id`, this start's `incarnation` (a value
    /// that differs at each start of the process, e.g. the start time), sending to `peers`.
    pub fn new(
        limits: PeerLimits,
        cluster_id: u64,
        node_id: u64,
        incarnation: u64,
        peers: &[u64],
    ) -> Result<PeerOutbox, PeerError> {
        limits.check()?;
        check_peers(node_id, peers)?;
        let dests = peers
            .iter()
            .map(|&node| Dest {
                node,
                bytes: Vec::new(),
                queue: VecDeque::new(),
                fragmenting: None,
                sent: false,
                sent_at: None,
            })
            .collect();
        Ok(PeerOutbox {
            limits,
            cluster_id,
            node_id,
            incarnation,
            sequence: 0,
            next_message_id: 0,
            dests,
            next_dest: 0,
            counters: PeerOutboxCounters::default(),
        })
    }

    /// The counters so far.
    pub fn counters(&self) -> &PeerOutboxCounters {
        &self.counters
    }

    /// Bytes the staging buffers hold allocated (they keep their capacity from poll to poll).
    pub fn staging_bytes_kept(&self) -> usize {
        self.dests.iter().map(|d| d.bytes.capacity()).sum()
    }

    /// Whether nothing waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.dests.iter().all(|d| d.queue.is_empty())
    }

    /// Queues `message` of `partition`'s group for `message.to`.
    pub fn push(&mut self, partition: u32, message: &Message) -> Result<(), PeerError> {
        let to = message.to;
        let Some(d) = self.dests.iter_mut().find(|d| d.node == to) else {
            self.counters.refused_unknown_peer += 1;
            return Err(PeerError::UnknownPeer { to });
        };
        let len = message.encoded_len();
        if len > self.limits.message_bytes_max {
            self.counters.refused_too_large += 1;
            return Err(PeerError::TooLarge { len, max: self.limits.message_bytes_max });
        }
        let staged_len = d.bytes.len() - d.queue.front().map_or(d.bytes.len(), |s| s.start);
        if staged_len + len > self.limits.outbox_bytes_per_node_max {
            self.counters.refused_full += 1;
            return Err(PeerError::Full { to });
        }
        let start = d.bytes.len();
        message.encode(&mut d.bytes).expect("a Vec grows");
        debug_assert_eq!(d.bytes.len() - start, len);
        d.queue.push_back(Staged { partition, start, len, keepalive: false });
        self.counters.messages += 1;
        Ok(())
    }

    /// Queues a keepalive frame (for `partition`, one the sending shard owns) for each peer that
    /// nothing went to for `keepalive_ns` before `now_ns` and nothing waits for (`liveness.rs`).
    /// Called once per poll; a peer sent to since the last call counts as sent to now.
    pub fn keep_alive(&mut self, now_ns: u64, partition: u32) {
        let every = self.limits.keepalive_ns;
        for d in &mut self.dests {
            if std::mem::take(&mut d.sent) {
                d.sent_at = Some(now_ns);
            } else if d.queue.is_empty() && d.sent_at.is_none_or(|at| now_ns.saturating_sub(at) >= every) {
                let start = d.bytes.len();
                d.queue.push_back(Staged { partition, start, len: 0, keepalive: true });
                d.sent_at = Some(now_ns);
                self.counters.keepalives += 1;
            }
        }
    }

    /// The node the next `poll_transmit` writes a datagram for (a packet backend that resolves
    /// the link address when it allocates the buffer needs it first); `None` when nothing waits.
    pub fn next_destination(&self) -> Option<u64> {
        self.next_index().map(|i| self.dests[i].node)
    }

    fn next_index(&self) -> Option<usize> {
        let n = self.dests.len();
        (0..n).map(|k| (self.next_dest + k) % n).find(|&i| !self.dests[i].queue.is_empty())
    }

    /// Writes the next datagram into `buf` (at least `datagram_bytes_max` long) and says where it
    /// goes; `None` when nothing waits.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        assert!(buf.len() >= self.limits.datagram_bytes_max, "a buffer of datagram_bytes_max");
        let n = self.dests.len();
        let i = self.next_index()?;
        self.next_dest = (i + 1) % n;
        let buf = &mut buf[..self.limits.datagram_bytes_max];
        let (len, frames) = self.fill(i, buf);
        assert!(frames > 0, "a fresh datagram holds at least one frame");
        let header = Header {
            version: wire::VERSION,
            flags: 0,
            cluster_id: self.cluster_id,
            from_node: self.node_id,
            to_node: self.dests[i].node,
            incarnation: self.incarnation,
            sequence: self.sequence,
            payload_len: u16::try_from(len - wire::HEADER_LEN).expect("a datagram fits u16"),
            frame_count: u16::try_from(frames).expect("frames_per_datagram_max fits u16"),
        };
        wire::finish_datagram(&mut buf[..len], &header);
        self.sequence = self.sequence.wrapping_add(1);
        self.counters.datagrams += 1;
        self.counters.bytes += len as u64;
        let d = &mut self.dests[i];
        d.sent = true;
        if d.queue.is_empty() {
            d.bytes.clear();
        }
        Some(Transmit { to: d.node, len })
    }

    /// Packs destination `i`'s queue into `buf` after the header; returns the length and frames.
    fn fill(&mut self, i: usize, buf: &mut [u8]) -> (usize, usize) {
        let room_fragment = self.limits.datagram_bytes_max - wire::HEADER_LEN - wire::FRAGMENT_HEADER_LEN;
        let room_whole = self.limits.datagram_bytes_max - wire::HEADER_LEN - wire::FRAME_HEADER_LEN;
        let mut at = wire::HEADER_LEN;
        let mut frames = 0;
        while frames < self.limits.frames_per_datagram_max {
            let d = &self.dests[i];
            let Some(&item) = d.queue.front() else { break };
            let bytes = &d.bytes[item.start..item.start + item.len];
            if item.keepalive {
                if at + wire::FRAME_HEADER_LEN > buf.len() {
                    break;
                }
                at += wire::encode_keepalive(&mut buf[at..], item.partition);
                self.dests[i].queue.pop_front();
            } else if item.len <= room_whole {
                if at + wire::FRAME_HEADER_LEN + item.len > buf.len() {
                    break;
                }
                at += wire::encode_frame(&mut buf[at..], item.partition, None, bytes);
                self.dests[i].queue.pop_front();
            } else {
                let f = self.fragment_of(i, item.len, room_fragment);
                let (offset, flen) = (f.offset(), f.expected_len().expect("a valid fragment"));
                if at + wire::FRAGMENT_HEADER_LEN + flen > buf.len() {
                    break;
                }
                let bytes = &self.dests[i].bytes[item.start + offset..item.start + offset + flen];
                at += wire::encode_frame(&mut buf[at..], item.partition, Some(f), bytes);
                self.counters.fragments += 1;
                self.advance_fragment(i);
            }
            frames += 1;
        }
        (at, frames)
    }

    /// The next fragment of the message at the head of destination `i`, starting its
    /// fragmenting (a new message id) if it has not started.
    fn fragment_of(&mut self, i: usize, len: usize, room: usize) -> FragmentInfo {
        if self.dests[i].fragmenting.is_none() {
            let count = u16::try_from(len.div_ceil(room)).expect("PeerLimits::check bounds the count");
            self.dests[i].fragmenting =
                Some(Fragmenting { message_id: self.next_message_id, next: 0, count });
            self.next_message_id = self.next_message_id.wrapping_add(1);
            self.counters.fragmented += 1;
        }
        let f = self.dests[i].fragmenting.expect("set above");
        FragmentInfo {
            message_id: f.message_id,
            index: f.next,
            count: f.count,
            total_len: u32::try_from(len).expect("message_bytes_max fits u32"),
        }
    }

    fn advance_fragment(&mut self, i: usize) {
        let d = &mut self.dests[i];
        let f = d.fragmenting.as_mut().expect("fragmenting");
        f.next += 1;
        if f.next == f.count {
            d.fragmenting = None;
            d.queue.pop_front();
        }
    }
}
