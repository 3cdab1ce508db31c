//! Quiescing idle groups: a group with peers that has nothing to do stops ticking, so thousands
//! of idle partitions cost neither Raft messages nor timer work (TiKV's hibernate regions,
//! CockroachDB's quiesced ranges).
//!
//! When: a leader whose group is at rest (`RaftGroup::at_rest`: everything committed, durable and
//! applied, every follower it heard from caught up, no read pending), with no request, proposal
//! or peer message (other than heartbeat answers) for `QUIESCE_AFTER_HEARTBEATS` heartbeat
//! intervals, no expiry or rotation due and nothing else in flight, sends each follower a
//! quiescing heartbeat (`raft::QUIESCE_CONTEXT`) and stops ticking. A follower that steps one
//! stops ticking too if it agrees: same term and leader, its log ends at the leader's commit
//! index, and has committed it. A follower that does not agree keeps ticking, hears nothing,
//! and campaigns; its pre-vote wakes the leader, which ignores it (its lease rule) and
//! heartbeats again.
//!
//! The lease: a leader gives up its read lease when it quiesces (`serves_reads` is false while
//! quiet). A quiesced follower does not tick, so raft-rs's election timer would not run out, but
//! a follower wakes on a message from any candidate and would vote once its timer ran on without
//! heartbeats from a leader that sends none: only a leader that confirmed its lease after waking
//! answers reads.
//!
//! Waking, any of:
//! - a request for the partition arrives (`observe_time`), or a write is proposed: a read finds
//!   no lease and is answered `NOT_LEADER` with this node as the hint, the renewal goes out at
//!   once, and the client's retry finds the lease (one round trip). On a follower only with
//!   follower reads on (`note_activity`);
//! - a peer message for the group is stepped (anything but a heartbeat answer on the leader, and
//!   the quiescing heartbeat itself on a follower);
//! - a key's expiry or a candle rotation falls due (the leader proposes it, with a lease);
//! - on a follower: the leader's node fell silent for an election timeout, or restarted
//!   (`peer_change`, from the node's keepalives: `crate::peer`'s `Liveness`). raft-rs is told
//!   the silence (`RaftGroup::lapse_election_timer`) so the follower campaigns as soon as a
//!   ticking one would have;
//! - on a leader: a peer node is back after a silence, or restarted (it may lag, or have
//!   missed a term: a leader that quiesced without it, or a deposed leader that quiesced cut off
//!   from the others, would otherwise both stay quiet).
//!
//! Invariants: a quiet group never answers a linearizable read; a quiet group's log, term and vote
//! change only by stepping messages (which wake it); a leader wakes with a fresh quorum-check
//! period (`RaftGroup::restart_quorum_period`).

use super::Partition;
use crate::peer::PeerChange;
use crate::raft::is_quiesce;
use raft::eraftpb::{Message, MessageType};
use vigil_pmd::block::BlockIo;

/// A leader quiesces after this many heartbeat intervals with nothing to do (100 ms with the
/// default 10 ms tick): long enough that a steady trickle of requests keeps a group awake.
pub const QUIESCE_AFTER_HEARTBEATS: u64 = 5;

/// Whether a group ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Quiet {
    /// Ticking, as Raft normally does.
    #[default]
    Awake,
    /// Leading a quiesced group.
    Leading,
    /// Following `leader` in a quiesced group.
    Following {
        /// The leader's node.
        leader: u64,
    },
}

/// Why a group woke (counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wake {
    Request,
    Message,
    Due,
    LeaderLost,
    PeerBack,
}

impl<D: BlockIo> Partition<D> {
    /// Whether the group is quiesced (not ticking). Always false for a group of one voter.
    pub fn is_quiet(&self) -> bool {
        self.peers.as_ref().is_some_and(|p| p.quiet != Quiet::Awake)
    }

    /// Something happened that keeps the group awake (a request, a proposal): wakes it if quiet.
    /// A quiet follower wakes only with follower reads on (it asks the leader for a read index,
    /// which wakes the leader too); with them off it can only refuse the request, and waking it
    /// alone would only have it campaign against a leader that sends nothing.
    pub(super) fn note_activity(&mut self) {
        let now = self.now;
        let Some(peers) = self.peers.as_mut() else { return };
        peers.active_at = now;
        let wake = match peers.quiet {
            Quiet::Awake => false,
            Quiet::Leading => true,
            Quiet::Following { .. } => peers.follower_reads(),
        };
        if wake {
            self.wake(Wake::Request);
        }
    }

    /// A peer node's liveness changed (`peer::Liveness`): a quiet follower whose leader's node
    /// is lost wakes (and counts the silence as its own election timeout); a quiet leader wakes
    /// when a peer is back, which may have missed entries or a term while it was away (it, or
    /// this node, was cut off or down).
    pub fn peer_change(&mut self, change: PeerChange) {
        let Some(quiet) = self.peers.as_ref().map(|p| p.quiet) else { return };
        match (change, quiet) {
            (PeerChange::Lost(node), Quiet::Following { leader }) if leader == node => {
                self.raft.lapse_election_timer();
                self.wake(Wake::LeaderLost);
            }
            (PeerChange::Back(_), Quiet::Leading) => self.wake(Wake::PeerBack),
            _ => {}
        }
    }

    /// Before a message from a peer is stepped: takes the quiescing mark off a quiescing
    /// heartbeat (raft-rs would echo it in its answer) and returns the leader's last index it
    /// carried, if it was one.
    pub(super) fn unmark_quiesce(message: &mut Message) -> Option<u64> {
        let quiesce = is_quiesce(message);
        if quiesce.is_some() {
            message.context.clear();
        }
        quiesce
    }

    /// After a message from a peer was stepped: a quiescing heartbeat (`quiesce`: the leader's
    /// last index, from `from` in `term`) quiets a follower that agrees (module header: its log
    /// ends there and is committed there); any other message wakes a quiet group, except a
    /// heartbeat answer on the leader.
    pub(super) fn after_step(&mut self, quiesce: Option<u64>, kind: MessageType, (from, term): (u64, u64)) {
        let Some(quiet) = self.peers.as_ref().map(|p| p.quiet) else { return };
        if let Some(leader_last) = quiesce {
            let raft = &self.raft;
            let agrees = !raft.is_leader()
                && raft.term() == term
                && raft.leader_id() == Some(from)
                && raft.last_index() == leader_last
                && raft.commit_index() == leader_last;
            if agrees && quiet == Quiet::Awake {
                self.counters.quiesced += 1;
                self.peers.as_mut().expect("checked").quiet = Quiet::Following { leader: from };
            }
            return;
        }
        // Heartbeats, their answers and a read index's answer are Raft keeping itself up, not
        // work: they do not keep a group awake (a follower's read index is asked only while
        // requests come, `renew_lease`), and a heartbeat answer does not wake a quiet leader. A
        // heartbeat wakes a quiet follower: its leader woke.
        let upkeep = matches!(
            kind,
            MessageType::MsgHeartbeat | MessageType::MsgHeartbeatResponse | MessageType::MsgReadIndexResp
        );
        if !upkeep {
            self.peers.as_mut().expect("checked").active_at = self.now;
        }
        let answer = kind == MessageType::MsgHeartbeatResponse && self.raft.is_leader();
        if !answer && quiet != Quiet::Awake {
            self.wake(Wake::Message);
        }
    }

    /// At the start of a `poll` at `now`: whether the group is quiet with nothing to do, so the
    /// poll may return at once (no tick, no I/O, no Raft `Ready`: the last poll found none and
    /// nothing has been stepped or proposed since). A quiet leader whose expiry or rotation fell
    /// due wakes instead.
    pub(super) fn stays_still(&mut self, now: vigil_pmd::Nanos) -> bool {
        if !self.peers.as_ref().is_some_and(|p| p.still) {
            return false;
        }
        self.now = now;
        if self.raft.is_leader() && self.internal_work_due() {
            self.wake(Wake::Due);
            return false;
        }
        true
    }

    /// At the end of a `poll`: wakes a quiet leader whose expiry or rotation fell due; quiesces
    /// an awake leader at rest that has been idle long enough (module header).
    pub(super) fn quiesce_or_wake(&mut self) {
        let Some(peers) = self.peers.as_ref() else { return };
        let leader = self.raft.is_leader();
        match peers.quiet {
            Quiet::Leading if leader && self.internal_work_due() => self.wake(Wake::Due),
            Quiet::Awake if peers.quiesce_idle && leader => {
                // Cheapest first: most polls of an awake leader are of a group that is not idle.
                let idle = self.now.0 >= peers.active_at.0.saturating_add(peers.idle_ns());
                let rests = || self.waiters.is_empty() && !self.busy() && self.raft.at_rest();
                if idle && !self.internal_work_due() && rests() {
                    self.quiesce();
                }
            }
            _ => {}
        }
        let still = self.is_quiet() && !self.busy() && self.raft.waits_only_on_storage();
        if let Some(peers) = self.peers.as_mut() {
            peers.still = still;
        }
    }

    /// Sends the quiescing heartbeats, gives the lease up and stops ticking.
    fn quiesce(&mut self) {
        let peers = self.peers.as_mut().expect("a leader with peers");
        let room = peers.outbox_max - peers.outbox.len();
        let before = peers.outbox.len();
        self.raft.quiesce_heartbeats(&mut peers.outbox);
        if peers.outbox.len() - before > room {
            // No room for them all: stay awake, try again at a later poll.
            peers.outbox.truncate(before);
            return;
        }
        peers.lease.drop_lease();
        peers.quiet = Quiet::Leading;
        self.counters.quiesced += 1;
    }

    fn wake(&mut self, why: Wake) {
        let Some(peers) = self.peers.as_mut() else { return };
        peers.quiet = Quiet::Awake;
        peers.still = false;
        peers.active_at = self.now;
        self.raft.restart_quorum_period();
        let c = &mut self.counters;
        match why {
            Wake::Request => c.woken_by_request += 1,
            Wake::Message => c.woken_by_message += 1,
            Wake::Due => c.woken_by_due_work += 1,
            Wake::LeaderLost => c.woken_by_leader_lost += 1,
            Wake::PeerBack => c.woken_by_peer_back += 1,
        }
    }

    /// Whether a key's expiry or a candle rotation is due (proposed by the leader, `expiry.rs`,
    /// `candle.rs`).
    fn internal_work_due(&self) -> bool {
        self.expiry_due() || self.rotation_due()
    }
}
