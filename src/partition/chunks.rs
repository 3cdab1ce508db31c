//! A snapshot's body in chunks: raft-rs makes one `MsgSnapshot` holding the whole body, and a
//! peer message is bounded (`PeerLimits::message_bytes_max`, 4 MiB), so the leader never sends it
//! as it is. It streams the body as chunk messages instead: each a `MsgSnapshot` with the same
//! term, sender and snapshot metadata, at most `chunk_bytes` of the body as its data, and a chunk
//! header as its `context` (`CHUNK_MAGIC`, the transfer's id, the chunk's offset, the body's
//! length; little-endian u64s). The follower reassembles the body and hands the whole message,
//! header removed, to `install.rs`; raft-rs only ever sees whole snapshots.
//!
//! - The leader sends at most `CHUNKS_PER_POLL` chunks per follower per poll, and only while the
//!   outbox has room, so a large snapshot does not crowd out the group's other messages.
//! - A transfer is (term, leader, id): a chunk of a newer one starts over, chunks of an older one
//!   are dropped, duplicates are counted once. A lost chunk leaves the body incomplete; the leader
//!   then reports the snapshot failed and raft-rs sends a new one, a new transfer
//!   (`install.rs`).
//! - The follower holds at most one body, of at most `SNAPSHOT_RECEIVE_BYTES_MAX` bytes.
//!
//! Invariants: a chunk never reaches raft-rs; a body is handed on only once every byte of it
//! arrived, in one transfer.

use super::Partition;
use crate::raft::RaftError;
use raft::eraftpb::{Message, MessageType};
use std::collections::BTreeSet;
use vigil_pmd::block::BlockIo;

/// The first bytes of a chunk's `context`.
pub const CHUNK_MAGIC: [u8; 4] = *b"VSC1";
/// Bytes of a chunk header: magic, transfer id, offset, body length.
pub const CHUNK_HEADER_LEN: usize = 28;
/// Body bytes per chunk unless set otherwise (`Partition::set_snapshot_chunk_bytes`): a quarter
/// of the peer layer's largest message.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// Chunks sent to one follower per poll, at most.
pub const CHUNKS_PER_POLL: usize = 2;
/// The largest snapshot body a follower reassembles.
pub const SNAPSHOT_RECEIVE_BYTES_MAX: u64 = 16 << 30;

/// A snapshot being sent to one follower.
#[derive(Debug)]
struct Sending {
    to: u64,
    id: u64,
    /// The message raft-rs made, its body taken out.
    template: Message,
    body: Vec<u8>,
    offset: usize,
}

/// A snapshot body being reassembled.
#[derive(Debug)]
struct Receiving {
    term: u64,
    from: u64,
    id: u64,
    body: Vec<u8>,
    /// Offsets of the chunks that arrived, and their bytes in all.
    offsets: BTreeSet<u64>,
    got: u64,
}

/// The chunk streams of one partition (see the module header).
#[derive(Debug, Default)]
pub(super) struct Chunks {
    /// Body bytes per chunk (0: `SNAPSHOT_CHUNK_BYTES`).
    chunk_bytes: usize,
    next_id: u64,
    sending: Vec<Sending>,
    receiving: Option<Receiving>,
}

/// A chunk header: (transfer id, offset, body length).
fn decode_header(context: &[u8]) -> Option<(u64, u64, u64)> {
    if context.len() != CHUNK_HEADER_LEN || context[..4] != CHUNK_MAGIC {
        return None;
    }
    let u64_at = |at: usize| u64::from_le_bytes(context[at..at + 8].try_into().expect("8 bytes"));
    Some((u64_at(4), u64_at(12), u64_at(20)))
}

fn encode_header(id: u64, offset: u64, total: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(CHUNK_HEADER_LEN);
    out.extend_from_slice(&CHUNK_MAGIC);
    for v in [id, offset, total] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

impl Chunks {
    /// Starts streaming raft-rs's `MsgSnapshot` `m` (replacing a stream to the same follower).
    pub(super) fn start(&mut self, mut m: Message) {
        let body = m.snapshot.as_mut().map(|s| std::mem::take(&mut s.data)).unwrap_or_default();
        self.next_id += 1;
        self.sending.retain(|s| s.to != m.to);
        self.sending.push(Sending { to: m.to, id: self.next_id, template: m, body, offset: 0 });
    }

    /// Stops every stream (no longer the leader).
    pub(super) fn stop_sending(&mut self) {
        self.sending.clear();
    }

    /// The next chunks, at most `CHUNKS_PER_POLL` per follower and `room` in all, pushed to
    /// `out`; the followers whose last chunk went out go to `finished`.
    fn next_chunks(&mut self, mut room: usize, out: &mut Vec<Message>, finished: &mut Vec<u64>) {
        let chunk_bytes = if self.chunk_bytes == 0 { SNAPSHOT_CHUNK_BYTES } else { self.chunk_bytes };
        for s in &mut self.sending {
            for _ in 0..CHUNKS_PER_POLL {
                if room == 0 || (s.offset == s.body.len() && s.offset > 0) {
                    break;
                }
                let end = (s.offset + chunk_bytes).min(s.body.len());
                let mut chunk = s.template.clone();
                chunk.context = encode_header(s.id, s.offset as u64, s.body.len() as u64);
                if let Some(snapshot) = chunk.snapshot.as_mut() {
                    snapshot.data = s.body[s.offset..end].to_vec();
                }
                out.push(chunk);
                room -= 1;
                s.offset = end;
                if s.offset == s.body.len() {
                    finished.push(s.to);
                    // An empty body is one empty chunk.
                    s.offset = usize::MAX;
                    break;
                }
            }
        }
        self.sending.retain(|s| s.offset != usize::MAX);
    }

    /// Takes chunk `m` in; returns the whole message once its body is complete. `Err`: not a
    /// chunk, or one that does not fit its transfer (dropped).
    fn take(&mut self, mut m: Message) -> Result<Option<Message>, ()> {
        let (id, offset, total) = decode_header(&m.context).ok_or(())?;
        let data = m.snapshot.as_mut().map(|s| std::mem::take(&mut s.data)).ok_or(())?;
        let end = offset.checked_add(data.len() as u64).ok_or(())?;
        if total > SNAPSHOT_RECEIVE_BYTES_MAX || end > total {
            return Err(());
        }
        // A later term is a later leader; in one term, one leader numbers its transfers.
        let newer = match &self.receiving {
            None => true,
            Some(r) => m.term > r.term || (m.term == r.term && m.from == r.from && id > r.id),
        };
        let same = self.receiving.as_ref().is_some_and(|r| (r.term, r.from, r.id) == (m.term, m.from, id));
        if newer {
            self.receiving = Some(Receiving {
                term: m.term,
                from: m.from,
                id,
                body: vec![0; total as usize],
                offsets: BTreeSet::new(),
                got: 0,
            });
        } else if !same {
            return Err(());
        }
        let r = self.receiving.as_mut().expect("set above");
        if r.body.len() as u64 != total {
            return Err(());
        }
        if r.offsets.insert(offset) {
            r.body[offset as usize..end as usize].copy_from_slice(&data);
            r.got += data.len() as u64;
        }
        if r.got < total {
            return Ok(None);
        }
        let r = self.receiving.take().expect("set above");
        m.context = Vec::new();
        if let Some(s) = m.snapshot.as_mut() {
            s.data = r.body;
        }
        Ok(Some(m))
    }
}

impl<D: BlockIo> Partition<D> {
    /// Sets the body bytes per snapshot chunk (at least 1; tests make them small).
    pub fn set_snapshot_chunk_bytes(&mut self, bytes: usize) {
        if let Some(peers) = self.peers.as_mut() {
            peers.transfers.chunks.chunk_bytes = bytes.max(1);
        }
    }

    /// Sends the next chunks of the snapshots being streamed (leader; `install.rs` calls it every
    /// poll) into the outbox, as far as it has room.
    pub(super) fn send_chunks(&mut self) {
        let leader = self.raft.is_leader();
        let Some(peers) = self.peers.as_mut() else { return };
        if !leader {
            peers.transfers.chunks.stop_sending();
            return;
        }
        let room = peers.outbox_max.saturating_sub(peers.outbox.len());
        let mut finished = Vec::new();
        let before = peers.outbox.len();
        peers.transfers.chunks.next_chunks(room, &mut peers.outbox, &mut finished);
        self.counters.snapshot_chunks_sent += (peers.outbox.len() - before) as u64;
        for to in finished {
            self.snapshot_sent(to);
        }
    }

    /// A `MsgSnapshot` from a peer: a chunk, reassembled; a whole snapshot goes on to
    /// `receive_snapshot`.
    pub(super) fn receive_chunk(&mut self, m: Message) -> Result<(), RaftError> {
        debug_assert_eq!(m.get_msg_type(), MessageType::MsgSnapshot);
        let Some(peers) = self.peers.as_mut() else { return Ok(()) };
        let taken = peers.transfers.chunks.take(m);
        if taken.is_ok() {
            self.counters.snapshot_chunks_received += 1;
        }
        match taken {
            Ok(Some(whole)) => self.receive_snapshot(whole),
            Ok(None) => Ok(()),
            Err(()) => {
                self.counters.snapshots_refused += 1;
                Ok(())
            }
        }
    }
}
