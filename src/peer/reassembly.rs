//! Bounded reassembly of fragmented peer messages.
//!
//! A message being reassembled is keyed by (peer, sender incarnation, message id) and holds its
//! declared total length, fragment count and partition; a fragment whose fields disagree with the
//! slot's is dropped, so two messages never mix. Each slot keeps a bitmap of the fragments it has,
//! so duplicates and any order work.
//!
//! Invariants (the bounds): at most `reassembly_per_peer_max` slots per peer; the total length of
//! the messages in progress is at most `reassembly_bytes_max`; the free buffers kept for the next
//! messages add up to at most `reassembly_bytes_max` too (a freed buffer past that is released),
//! so all buffers together hold at most twice that;
//! a slot older than `reassembly_age_ns_max` is dropped the next time time is given. A peer that
//! sends endless first fragments therefore holds at most its slots, each until it expires.

use super::wire::FragmentInfo;
use super::PeerLimits;

/// Ids of the last completed messages remembered per peer, so that a late duplicate fragment of
/// a message already delivered does not start a slot that can only expire. A message duplicated
/// whole by the network after this many later ones may be delivered twice: Raft tolerates
/// duplicated messages, as it tolerates a duplicated datagram of whole messages.
const RECENT_MAX: usize = 16;

/// What a fragment did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Push {
    /// Kept; the message still misses fragments.
    Incomplete,
    /// It completed the message in slot `slot`: read it with `message`, then `release` it.
    Complete {
        /// The slot to read and release.
        slot: usize,
    },
    /// Dropped, for this reason.
    Dropped(FragmentDrop),
}

/// Why a fragment was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragmentDrop {
    /// The message is longer than `message_bytes_max`.
    Oversized,
    /// A new message, but the peer's slots or the byte budget are taken.
    Full,
    /// A fragment this slot already has, or one of a message completed lately.
    Duplicate,
    /// The fragment's count, total length or partition differ from its message's first fragment.
    Mismatch,
}

#[derive(Debug, Default)]
struct Slot {
    active: bool,
    peer: usize,
    incarnation: u64,
    message_id: u32,
    partition: u32,
    count: u16,
    total_len: u32,
    received: u16,
    started_ns: u64,
    have: Vec<u64>,
    buf: Vec<u8>,
}

impl Slot {
    fn has(&self, index: u16) -> bool {
        self.have[index as usize / 64] & (1 << (index % 64)) != 0
    }

    fn mark(&mut self, index: u16) {
        self.have[index as usize / 64] |= 1 << (index % 64);
    }
}

/// The reassembly slots of all peers of one inbox.
#[derive(Debug)]
pub struct Reassembly {
    limits: PeerLimits,
    slots: Vec<Slot>,
    /// Per peer, the (incarnation, message id) of its last completed messages (a ring).
    recent: Vec<[(u64, u32); RECENT_MAX]>,
    recent_next: Vec<usize>,
    /// Total length of the messages in progress.
    bytes_in_use: usize,
    /// Capacity of all slot buffers, in use or kept for the next message.
    bytes_kept: usize,
}

impl Reassembly {
    /// Slots for `peers` peers, none allocated yet.
    pub fn new(limits: PeerLimits, peers: usize) -> Reassembly {
        let slots = (0..peers * limits.reassembly_per_peer_max).map(|_| Slot::default()).collect();
        Reassembly {
            limits,
            slots,
            recent: vec![[(0, u32::MAX); RECENT_MAX]; peers],
            recent_next: vec![0; peers],
            bytes_in_use: 0,
            bytes_kept: 0,
        }
    }

    /// Bytes of the messages being reassembled.
    pub fn bytes_in_use(&self) -> usize {
        self.bytes_in_use
    }

    /// Bytes the slot buffers hold allocated (in use or kept).
    pub fn bytes_kept(&self) -> usize {
        self.bytes_kept
    }

    /// Messages being reassembled.
    pub fn in_progress(&self) -> usize {
        self.slots.iter().filter(|s| s.active).count()
    }

    /// Drops the slots older than the age bound; returns how many.
    pub fn expire(&mut self, now_ns: u64) -> u64 {
        let mut dropped = 0;
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.active && now_ns.saturating_sub(s.started_ns) > self.limits.reassembly_age_ns_max {
                self.free(i);
                dropped += 1;
            }
        }
        dropped
    }

    /// Takes one fragment of partition `partition` from peer number `peer`.
    pub fn push(
        &mut self,
        peer: usize,
        incarnation: u64,
        partition: u32,
        f: &FragmentInfo,
        bytes: &[u8],
        now_ns: u64,
    ) -> Push {
        if f.total_len as usize > self.limits.message_bytes_max {
            return Push::Dropped(FragmentDrop::Oversized);
        }
        debug_assert_eq!(f.expected_len(), Some(bytes.len()), "wire::decode_frame checked it");
        let slot = match self.find(peer, incarnation, f.message_id) {
            Some(slot) => slot,
            None => {
                if self.recently_completed(peer, incarnation, f.message_id) {
                    return Push::Dropped(FragmentDrop::Duplicate);
                }
                match self.open(peer, incarnation, partition, f, now_ns) {
                    Some(slot) => slot,
                    None => return Push::Dropped(FragmentDrop::Full),
                }
            }
        };
        let s = &mut self.slots[slot];
        if s.count != f.count || s.total_len != f.total_len || s.partition != partition {
            return Push::Dropped(FragmentDrop::Mismatch);
        }
        if s.has(f.index) {
            return Push::Dropped(FragmentDrop::Duplicate);
        }
        let at = f.offset();
        s.buf[at..at + bytes.len()].copy_from_slice(bytes);
        s.mark(f.index);
        s.received += 1;
        if s.received == s.count {
            Push::Complete { slot }
        } else {
            Push::Incomplete
        }
    }

    /// The partition and bytes of the completed message in `slot`.
    pub fn message(&self, slot: usize) -> (u32, &[u8]) {
        let s = &self.slots[slot];
        assert!(s.active && s.received == s.count, "read a completed slot only");
        (s.partition, &s.buf[..s.total_len as usize])
    }

    /// Frees a completed slot and remembers its message as delivered.
    pub fn release(&mut self, slot: usize) {
        let s = &self.slots[slot];
        assert!(s.active && s.received == s.count, "release a completed slot only");
        let (peer, key) = (s.peer, (s.incarnation, s.message_id));
        let next = self.recent_next[peer];
        self.recent[peer][next] = key;
        self.recent_next[peer] = (next + 1) % RECENT_MAX;
        self.free(slot);
    }

    fn find(&self, peer: usize, incarnation: u64, message_id: u32) -> Option<usize> {
        self.slots.iter().position(|s| {
            s.active && s.peer == peer && s.incarnation == incarnation && s.message_id == message_id
        })
    }

    fn recently_completed(&self, peer: usize, incarnation: u64, message_id: u32) -> bool {
        self.recent[peer].contains(&(incarnation, message_id))
    }

    /// Opens a slot for a new message, if the peer has one free and the byte budget allows.
    fn open(
        &mut self,
        peer: usize,
        incarnation: u64,
        partition: u32,
        f: &FragmentInfo,
        now_ns: u64,
    ) -> Option<usize> {
        let total = f.total_len as usize;
        let used = self.slots.iter().filter(|s| s.active && s.peer == peer).count();
        if used >= self.limits.reassembly_per_peer_max
            || self.bytes_in_use + total > self.limits.reassembly_bytes_max
        {
            return None;
        }
        // Prefer a free slot whose buffer already holds the message: no allocation.
        let free = |s: &Slot| !s.active;
        let slot = self
            .slots
            .iter()
            .position(|s| free(s) && s.buf.capacity() >= total)
            .or_else(|| self.slots.iter().position(free))?;
        let s = &mut self.slots[slot];
        let cap_before = s.buf.capacity();
        s.buf.clear();
        s.buf.reserve_exact(total);
        s.buf.resize(total, 0);
        let grow = s.buf.capacity() - cap_before;
        s.have.clear();
        s.have.resize((f.count as usize).div_ceil(64), 0);
        s.active = true;
        s.peer = peer;
        s.incarnation = incarnation;
        s.message_id = f.message_id;
        s.partition = partition;
        s.count = f.count;
        s.total_len = f.total_len;
        s.received = 0;
        s.started_ns = now_ns;
        self.bytes_in_use += total;
        self.bytes_kept += grow;
        Some(slot)
    }

    /// Frees a slot; releases its buffer if the kept buffers would exceed the byte budget.
    fn free(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        assert!(s.active, "free an active slot only");
        s.active = false;
        self.bytes_in_use -= s.total_len as usize;
        if self.bytes_kept > self.limits.reassembly_bytes_max {
            self.bytes_kept -= s.buf.capacity();
            s.buf = Vec::new();
        }
    }
}
