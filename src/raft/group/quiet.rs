//! What quiescing an idle group (`crate::partition`'s `quiesce.rs`) needs from raft-rs: whether a
//! leader's group is at rest, the heartbeat that tells a follower to stop ticking, and the two
//! timer adjustments of a wake-up.
//!
//! Invariants: nothing here changes the log, the term or a vote; the timer adjustments only move
//! raft-rs's `election_elapsed`, which decides when a node campaigns and whether it refuses votes
//! while it believes a leader is alive. A leader's reset only makes it refuse votes longer; a
//! follower's lapse is made only when its leader's node has been silent for an election timeout
//! (so raft-rs would have counted that much itself had it been ticking) or restarted.

use super::RaftGroup;
use crate::raft::RaftLogStore;
use ::raft::eraftpb::{Message, MessageType};

/// The context of a quiescing heartbeat (a leader's heartbeat to a follower that may stop
/// ticking) starts with these 7 bytes, followed by the leader's last index (8 bytes, LE). A read
/// index's context is 8 bytes, so the two never meet.
pub const QUIESCE_CONTEXT: &[u8] = b"quiesce";

/// The context of a quiescing heartbeat from a leader whose log ends at `last`.
pub fn quiesce_context(last: u64) -> Vec<u8> {
    [QUIESCE_CONTEXT, &last.to_le_bytes()].concat()
}

/// The leader's last index a quiescing heartbeat carries; `None` for any other message.
pub fn is_quiesce(m: &Message) -> Option<u64> {
    if m.get_msg_type() != MessageType::MsgHeartbeat || m.context.len() != QUIESCE_CONTEXT.len() + 8 {
        return None;
    }
    let (mark, last) = m.context.split_at(QUIESCE_CONTEXT.len());
    (mark == QUIESCE_CONTEXT).then(|| u64::from_le_bytes(last.try_into().expect("8 bytes")))
}

impl<S: RaftLogStore> RaftGroup<S> {
    /// Whether this node leads a group at rest: everything appended is committed, durable and
    /// applied, every follower heard from since the last quorum check has all of it, no read
    /// index is pending, and nothing waits in a backlog or a `Ready`. A follower not heard from
    /// (down, or cut off) does not hold quiescing up: the group keeps its quorum without it, and
    /// when it comes back its messages wake the leader.
    pub fn at_rest(&self) -> bool {
        let raft = &self.raw.raft;
        let last = raft.raft_log.last_index();
        self.is_leader()
            && raft.raft_log.committed == last
            && self.applied_index == last
            && self.store().durable_index() >= last
            && raft.read_only.pending_read_count() == 0
            && self.pending.is_empty()
            && self.unsynced.is_empty()
            && self.apply_backlog.is_empty()
            && self.read_backlog.is_empty()
            && !self.raw.has_ready()
            && raft
                .prs()
                .iter()
                .all(|(id, pr)| *id == self.node_id || !pr.recent_active || pr.matched == last)
    }

    /// The quiescing heartbeats of a leader at rest, one per other voter, appended to `into`.
    /// Like raft-rs's own heartbeat: the commit index is the follower's match at most (a
    /// follower's log beyond it may differ from the leader's and must not be committed), and
    /// the context `QUIESCE_CONTEXT` and the leader's last index, which a follower must end at to
    /// quiesce (a follower behind keeps ticking, and its campaign wakes the leader).
    pub fn quiesce_heartbeats(&self, into: &mut Vec<Message>) {
        let raft = &self.raw.raft;
        let last = raft.raft_log.last_index();
        for (&to, pr) in raft.prs().iter().filter(|(id, _)| **id != self.node_id) {
            let mut m = Message::default();
            m.set_msg_type(MessageType::MsgHeartbeat);
            m.to = to;
            m.from = self.node_id;
            m.term = raft.term;
            m.commit = pr.matched.min(raft.raft_log.committed);
            m.context = quiesce_context(last);
            into.push(m);
        }
    }

    /// A quiesced leader wakes: its quorum check starts a fresh period, so the followers'
    /// answers to the heartbeats it sends from now on decide it (not the period it was quiet in).
    pub fn restart_quorum_period(&mut self) {
        if self.is_leader() {
            self.raw.raft.election_elapsed = 0;
        }
    }

    /// A quiesced follower whose leader's node fell silent for an election timeout (or
    /// restarted) wakes: raft-rs counts that silence as its own, so it grants votes at once and
    /// campaigns within its randomized timeout's spread, as if it had been ticking.
    pub fn lapse_election_timer(&mut self) {
        if !self.is_leader() {
            let raft = &mut self.raw.raft;
            raft.election_elapsed = raft.election_elapsed.max(raft.election_timeout());
        }
    }
}
