//! A partition's side of its peers, in a group with more than one voter: the Raft messages it
//! sends (kept in a bounded outbox until the node takes them, `take_messages`), the messages it
//! receives (`step`), the leader's read lease (`lease.rs`), renewed through Raft's read index, and
//! follower reads with a staleness bound.
//!
//! Follower reads (off unless `follower_read_staleness_ns` > 0): every half bound a follower asks
//! Raft for a read index (raft-rs forwards it to the leader, which confirms its leadership with a
//! quorum first) whose context is the time it asked, `t0`. The index it gets is at least every
//! write the leader acknowledged before it answered, which was after `t0`. So once the follower's
//! projections applied that index, they hold every write acknowledged before `t0`, and a read at
//! `now` is at most `now - t0` stale. A follower answers reads while that is within the bound
//! (`serves_bounded_reads`), on its own clock (a clock that runs slow by r% makes the bound r%
//! looser).
//!
//! The node moves the messages between partitions of different nodes (the simulator directly; the
//! server over the peer datagrams of `crate::peer`). Raft tolerates loss, duplication and
//! reordering of any message, so a full outbox drops (counted) rather than blocks.
//!
//! Invariants: a group of one voter has no `Peers` and sends nothing; vote requests are ignored
//! for one election timeout after the node starts (the lease's rule); the lease is dropped as soon
//! as the node is not the leader.

use super::lease::{duration_ns, Lease, RENEW_EVERY_HEARTBEATS};
use super::Partition;
use crate::raft::{RaftError, RaftGroupConfig};
use raft::eraftpb::{Message, MessageType};
use vigil_pmd::block::BlockIo;
use vigil_pmd::Nanos;

/// Outbox room, in polls' worth of messages (`messages_per_poll_max` each).
const OUTBOX_POLLS: usize = 4;

/// The peers' side of a partition (see the module header).
#[derive(Debug)]
pub(super) struct Peers {
    pub(super) lease: Lease,
    pub(super) outbox: Vec<Message>,
    pub(super) outbox_max: usize,
    /// Snapshots sent and received (`install.rs`, `chunks.rs`).
    pub(super) transfers: super::install::Transfers,
    /// The clock of the node's first poll.
    started_at: Option<Nanos>,
    /// The election timeout (the shortest a randomized one can be).
    pub(super) election_ns: u64,
    /// How often the lease is renewed.
    renew_every_ns: u64,
    /// Follower reads: the staleness bound (0: off), when the last read index was asked, and the
    /// latest confirmed (asked at, index).
    staleness_ns: u64,
    follower_asked_at: Option<Nanos>,
    follower_confirmed: (Nanos, u64),
    /// The (term, leader) last reported as an event.
    reported: (u64, u64),
    /// Whether the group ticks (`quiesce.rs`), and when it last had something to do.
    pub(super) quiet: super::quiesce::Quiet,
    pub(super) active_at: Nanos,
    /// The heartbeat interval.
    pub(super) heartbeat_ns: u64,
    /// Whether an idle group quiesces (`PartitionConfig::quiesce_idle`).
    pub(super) quiesce_idle: bool,
    /// Quiet, and the last `poll` left nothing to do: `poll` returns at once until a message, a
    /// request or a wake-up (`quiesce.rs`).
    pub(super) still: bool,
}

impl Peers {
    pub(super) fn new(config: &RaftGroupConfig, staleness_ns: u64, quiesce_idle: bool) -> Self {
        let outbox_max = config.messages_per_poll_max * OUTBOX_POLLS;
        Self {
            lease: Lease::default(),
            outbox: Vec::with_capacity(outbox_max),
            outbox_max,
            transfers: Default::default(),
            started_at: None,
            election_ns: config.election_ns(),
            renew_every_ns: config.heartbeat_ns() * RENEW_EVERY_HEARTBEATS,
            staleness_ns,
            follower_asked_at: None,
            follower_confirmed: (Nanos(0), 0),
            reported: (0, 0),
            quiet: Default::default(),
            active_at: Nanos(0),
            heartbeat_ns: config.heartbeat_ns(),
            quiesce_idle,
            still: false,
        }
    }

    /// Whether follower reads are on (a staleness bound is configured).
    pub(super) fn follower_reads(&self) -> bool {
        self.staleness_ns > 0
    }

    /// How long without activity before a group counts as idle (`quiesce.rs`).
    pub(super) fn idle_ns(&self) -> u64 {
        self.heartbeat_ns.saturating_mul(super::quiesce::QUIESCE_AFTER_HEARTBEATS)
    }

    /// Whether a vote request must be ignored at `now`: this node started less than an election
    /// timeout ago, so it may have acknowledged a leader's heartbeat it no longer remembers.
    fn just_started(&self, now: Nanos) -> bool {
        self.started_at.is_none_or(|at| now.0 < at.0.saturating_add(self.election_ns))
    }
}

impl<D: BlockIo> Partition<D> {
    /// Moves the last Raft poll's messages to the outbox (or counts them unrouted in a group of
    /// one voter), and extends the lease by the read indexes it confirmed.
    pub(super) fn route_messages(&mut self) {
        let term = self.raft.term();
        let Some(peers) = self.peers.as_mut() else {
            self.counters.messages_unrouted += self.out.messages.len() as u64;
            return;
        };
        peers.started_at.get_or_insert(self.now);
        for m in self.out.messages.drain(..) {
            if m.get_msg_type() == MessageType::MsgSnapshot {
                // Streamed in chunks by `chunks.rs`, never sent whole.
                peers.transfers.chunks.start(m);
            } else if peers.outbox.len() < peers.outbox_max {
                peers.outbox.push(m);
            } else {
                self.counters.messages_outbox_full += 1;
            }
        }
        let lease_ns = duration_ns(peers.election_ns);
        let leader = self.raft.is_leader();
        for read in &self.out.reads {
            if leader {
                peers.lease.confirmed(term, Nanos(read.ctx), read.index, lease_ns);
            } else if read.ctx >= peers.follower_confirmed.0 .0 {
                peers.follower_confirmed = (Nanos(read.ctx), read.index.max(peers.follower_confirmed.1));
            }
        }
        let seen = (term, self.raft.leader_id().unwrap_or(0));
        if peers.reported != seen {
            peers.reported = seen;
            self.report(super::seams::PartitionEvent::Leadership { term: seen.0, leader: seen.1 });
        }
    }

    /// Asks Raft for a read index to renew the lease when one is due (leader only); gives the
    /// lease up when not the leader.
    pub(super) fn renew_lease(&mut self) {
        let (leader, term, now) = (self.raft.is_leader(), self.raft.term(), self.now);
        let Some(peers) = self.peers.as_mut() else { return };
        if peers.quiet != super::quiesce::Quiet::Awake {
            // Quiet: no lease to keep (a leader gave it up), no confirmation to ask.
            return;
        }
        if !leader {
            peers.lease.drop_lease();
            let due =
                peers.follower_asked_at.is_none_or(|at| now.0 >= at.0.saturating_add(peers.staleness_ns / 2));
            // Only while requests come (an idle group must be able to quiesce, `quiesce.rs`): the
            // first bounded read after a lull may find the confirmation too old.
            let wanted = now.0 < peers.active_at.0.saturating_add(peers.idle_ns());
            if peers.staleness_ns > 0 && due && wanted {
                peers.follower_asked_at = Some(now);
                // Refused while no leader is known: no fresh confirmation then, reads age out.
                let _ = self.raft.read_index(now.0);
            }
            return;
        }
        if peers.lease.renewal_due(term, now, peers.renew_every_ns) {
            // Refused only when the group is not running or lost its leader: no lease then.
            let _ = self.raft.read_index(now.0);
        }
    }

    /// Whether this follower answers reads now, at most `follower_read_staleness_ns` stale
    /// (module header); always false on the leader (which answers linearizable reads:
    /// `serves_reads`) and with follower reads off.
    pub fn serves_bounded_reads(&self) -> bool {
        let Some(peers) = self.peers.as_ref().filter(|p| p.staleness_ns > 0) else { return false };
        let (asked_at, index) = peers.follower_confirmed;
        !self.raft.is_leader()
            && index > 0
            && self.now.0.saturating_sub(asked_at.0) <= peers.staleness_ns
            && self.raft.applied_index() >= index
    }

    /// Answers a KV GET (its body: the key) as a follower, at most `follower_read_staleness_ns`
    /// stale, keys past their expiry at `now_ms` absent (`serves_bounded_reads`; `NOT_LEADER`
    /// when it does not).
    pub fn get_bounded(
        &self,
        body: &[u8],
        now_ms: u64,
        out: &mut [u8],
    ) -> Result<usize, crate::wire::Status> {
        if !self.serves_bounded_reads() {
            return Err(crate::wire::Status::NotLeader);
        }
        self.kv().answer_read(crate::wire::opcode::GET, body, now_ms, out)
    }

    /// Takes the messages for the peers (appended to `into`); the node sends each to the node
    /// `message.to`, for this partition.
    pub fn take_messages(&mut self, into: &mut Vec<Message>) {
        if let Some(peers) = self.peers.as_mut() {
            self.counters.messages_out += peers.outbox.len() as u64;
            into.append(&mut peers.outbox);
        }
    }

    /// Steps a message from a peer into the group (already validated by the node: `crate::peer`).
    /// A vote request in the node's first election timeout is ignored (the lease's rule). A
    /// quiescing heartbeat may quiet the group; other messages wake a quiet one (`quiesce.rs`).
    pub fn step(&mut self, mut message: Message) -> Result<(), RaftError> {
        let Some(peers) = self.peers.as_mut() else {
            self.counters.messages_refused += 1;
            return Err(RaftError::UnknownPeer { from: message.from });
        };
        peers.still = false;
        let vote =
            matches!(message.get_msg_type(), MessageType::MsgRequestVote | MessageType::MsgRequestPreVote);
        if vote && peers.just_started(self.now) {
            self.counters.votes_ignored_after_start += 1;
            return Ok(());
        }
        if message.get_msg_type() == MessageType::MsgSnapshot {
            return self.receive_chunk(message);
        }
        let quiesce = Self::unmark_quiesce(&mut message);
        let (kind, seen) = (message.get_msg_type(), (message.from, message.term));
        match self.raft.step(message) {
            Ok(()) => {
                self.counters.messages_in += 1;
                self.after_step(quiesce, kind, seen);
                Ok(())
            }
            Err(e) => {
                self.counters.messages_refused += 1;
                Err(e)
            }
        }
    }
}
