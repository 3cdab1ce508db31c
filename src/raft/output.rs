//! What a `RaftGroup` is configured with and what it hands out: its config (`RaftGroupConfig`, read
//! mode, election timeout), the output of a poll (`RaftOutput`: messages, committed entries,
//! dropped proposals, reads ready), its errors and counters. Plain data, split from `group.rs`,
//! which holds the state machine.

use super::store::{EntryKind, StoreError, StoreSnapshot};
use ::raft::eraftpb::Message;

/// How a linearizable read is confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// ReadIndex: the leader confirms it is still leader with a heartbeat round to a quorum before
    /// answering (one RTT, no clock assumption).
    Safe,
    /// Leader lease: the leader answers from its commit index while it heard from a quorum within
    /// the election timeout (no RTT; assumes bounded clock drift). Requires `check_quorum`.
    Lease,
}

/// How long a follower waits for a leader before campaigning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionTimeout {
    /// raft-rs picks a random timeout in `[election_ticks, 2 * election_ticks)` at each election,
    /// from its own thread RNG (not reproducible).
    Randomized,
    /// Always this many ticks (at least `election_ticks`). The caller draws a distinct value per
    /// node from its own seeded RNG, which keeps simulations reproducible.
    Fixed(usize),
}

/// Limits and timing of one group. None of it is hardware-specific.
#[derive(Clone, Copy, Debug)]
pub struct RaftGroupConfig {
    /// Nanoseconds between raft-rs ticks.
    pub tick_interval_ns: u64,
    /// Ticks without a leader before a follower campaigns (the minimum, see `election_timeout`).
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats; less than `election_ticks`.
    pub heartbeat_ticks: usize,
    /// How the election timeout is drawn.
    pub election_timeout: ElectionTimeout,
    /// A leader steps down when it has not heard from a quorum for an election timeout.
    pub check_quorum: bool,
    /// Campaign only after a pre-vote round shows the candidate could win (a rejoining partitioned
    /// node does not disrupt a working leader).
    pub pre_vote: bool,
    /// How linearizable reads are confirmed.
    pub read_mode: ReadMode,
    /// Largest command one proposal may carry, in bytes; the store's `entry_size_max()` lowers it
    /// (4064 bytes over the UAL: one record).
    pub proposal_size_max: usize,
    /// Proposals awaiting their outcome; beyond this `propose` answers `Busy`.
    pub proposals_pending_max: usize,
    /// `Ready`s written but not yet durable; beyond this `poll` waits for the store.
    pub readies_unsynced_max: usize,
    /// Messages one `poll` may output; more are dropped and counted.
    pub messages_per_poll_max: usize,
    /// Committed entries one `poll` may output; more wait for the next poll.
    pub committed_per_poll_max: usize,
    /// Read states one `poll` may output; more wait for the next poll.
    pub reads_per_poll_max: usize,
    /// Bytes of entries in one append message (raft-rs `max_size_per_msg`).
    pub append_bytes_max: u64,
    /// Append messages in flight to one follower (raft-rs `max_inflight_msgs`).
    pub appends_in_flight_max: usize,
    /// Bytes of entries proposed but not committed; beyond this proposals are dropped.
    pub uncommitted_bytes_max: u64,
    /// Bytes of committed entries one `Ready` may carry.
    pub committed_bytes_per_ready_max: u64,
    /// Payload bytes of appended entries held in memory until applied, so that committed entries
    /// are applied from the proposals themselves, not read back from the log (`LogStorage`);
    /// beyond it the oldest are read back.
    pub held_bytes_max: u64,
}

impl RaftGroupConfig {
    /// A leader's heartbeat interval, in ns.
    pub fn heartbeat_ns(&self) -> u64 {
        self.tick_interval_ns * self.heartbeat_ticks as u64
    }

    /// The shortest election timeout, in ns.
    pub fn election_ns(&self) -> u64 {
        self.tick_interval_ns * self.election_ticks as u64
    }
}

impl Default for RaftGroupConfig {
    /// Timing for a data-centre network: a tick every 10 ms, heartbeats every 20 ms, elections after
    /// 100-200 ms of silence.
    fn default() -> Self {
        Self {
            tick_interval_ns: 10_000_000,
            election_ticks: 10,
            heartbeat_ticks: 2,
            election_timeout: ElectionTimeout::Randomized,
            check_quorum: true,
            pre_vote: true,
            read_mode: ReadMode::Safe,
            proposal_size_max: 1 << 20,
            proposals_pending_max: 4096,
            readies_unsynced_max: 64,
            messages_per_poll_max: 1024,
            committed_per_poll_max: 1024,
            reads_per_poll_max: 1024,
            append_bytes_max: 1 << 20,
            appends_in_flight_max: 256,
            uncommitted_bytes_max: 64 << 20,
            committed_bytes_per_ready_max: 16 << 20,
            held_bytes_max: 16 << 20,
        }
    }
}

/// Which log position a proposal's entry got: it committed iff the entry applied at `index` has
/// `term`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProposalId {
    /// The leader's term when it accepted the proposal (compared first).
    pub term: u64,
    /// The entry's index.
    pub index: u64,
}

/// A committed entry to apply to the projections, in log order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedEntry {
    /// Raft index.
    pub index: u64,
    /// Raft term.
    pub term: u64,
    /// What it carries. Membership changes are for the cluster layer, which decodes them and has
    /// raft-rs apply them; this session proposes none.
    pub kind: EntryKind,
    /// The command.
    pub data: Vec<u8>,
    /// The `ctx` given to `propose`, when this node proposed it and still waited for it.
    pub proposal_ctx: Option<u64>,
}

/// A proposal that will never commit: its log position went to another entry. (Also used, rarely,
/// for proposals a snapshot received from a new leader covers, whose outcome the snapshot hides.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DroppedProposal {
    /// Where it had been appended.
    pub id: ProposalId,
    /// The `ctx` given to `propose`.
    pub ctx: u64,
}

/// A linearizable read that may be served once `applied_index() >= index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadReady {
    /// The `ctx` given to `read_index`.
    pub ctx: u64,
    /// The commit index the read must observe.
    pub index: u64,
}

/// What one `poll` hands to the shard. Allocated once per group from its config; `poll` requires
/// it empty (call `clear` after handling it).
#[derive(Debug)]
pub struct RaftOutput {
    /// Messages to send to peers (`message.to` names the node; the caller adds the partition).
    pub messages: Vec<Message>,
    /// Committed entries to apply, in log order, each exactly once.
    pub committed: Vec<CommittedEntry>,
    /// Proposals that will never commit.
    pub dropped: Vec<DroppedProposal>,
    /// Reads that may be served once the projections applied their index.
    pub reads: Vec<ReadReady>,
    /// A snapshot from the leader to install in the projections before applying anything after
    /// it (the log now starts after `snapshot.meta.index`).
    pub snapshot: Option<StoreSnapshot>,
}

impl RaftOutput {
    /// Buffers sized from `config`.
    pub fn new(config: &RaftGroupConfig) -> Self {
        Self {
            messages: Vec::with_capacity(config.messages_per_poll_max),
            committed: Vec::with_capacity(config.committed_per_poll_max),
            dropped: Vec::with_capacity(config.proposals_pending_max),
            reads: Vec::with_capacity(config.reads_per_poll_max),
            snapshot: None,
        }
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.committed.is_empty()
            && self.dropped.is_empty()
            && self.reads.is_empty()
            && self.snapshot.is_none()
    }

    /// Empties it, keeping the buffers.
    pub fn clear(&mut self) {
        self.messages.clear();
        self.committed.clear();
        self.dropped.clear();
        self.reads.clear();
        self.snapshot = None;
    }
}

/// What a Raft group refused or failed to do.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    /// This node is not the leader; nothing was proposed. `leader` is the node to retry at, when
    /// known.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader, if this node knows one.
        leader: Option<u64>,
    },
    /// `proposals_pending_max` proposals await their outcome; nothing was proposed.
    #[error("too many proposals pending")]
    Busy,
    /// The command is larger than `proposal_size_max`; nothing was proposed.
    #[error("proposal of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The command's size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// raft-rs refused the proposal (a leadership transfer is under way, or uncommitted bytes are
    /// over `uncommitted_bytes_max`); nothing was appended.
    #[error("proposal dropped by raft")]
    ProposalDropped,
    /// The message is addressed to another node; it was ignored.
    #[error("message for node {to} delivered to node {node}")]
    Misrouted {
        /// The addressee.
        to: u64,
        /// This node.
        node: u64,
    },
    /// A response from a node that is not in the group; it was ignored.
    #[error("response from unknown peer {from}")]
    UnknownPeer {
        /// The sender.
        from: u64,
    },
    /// raft-rs rejected a message or the configuration; the message was ignored (for a
    /// configuration, no group was made).
    #[error("raft: {0}")]
    Raft(#[from] ::raft::Error),
    /// The log store failed while a `Ready` was being written: the group's in-memory state ran ahead
    /// of its log, so it refuses all further work (`Failed`); rebuild it from the store's durable
    /// state.
    #[error("log store: {0}")]
    Store(#[from] StoreError),
    /// An earlier store failure stopped this group; nothing was done.
    #[error("group stopped after a log store failure")]
    Failed,
}

/// Counters of one group, read off the hot path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RaftCounters {
    /// raft-rs ticks.
    pub ticks: u64,
    /// `Ready`s handled.
    pub readies: u64,
    /// `Ready`s whose writes became durable.
    pub readies_persisted: u64,
    /// Proposals accepted.
    pub proposals: u64,
    /// Proposals refused: not the leader.
    pub proposals_not_leader: u64,
    /// Proposals refused: too many pending.
    pub proposals_busy: u64,
    /// Accepted proposals that will never commit.
    pub proposals_dropped: u64,
    /// Entries applied (including leaders' empty entries, which are not output).
    pub entries_applied: u64,
    /// Messages output.
    pub messages_out: u64,
    /// Messages dropped: more than `messages_per_poll_max` in one poll.
    pub messages_overflow: u64,
    /// Messages stepped in.
    pub messages_in: u64,
    /// Read requests accepted.
    pub reads: u64,
    /// raft-rs reads of entries held only on the device handed back after their asynchronous
    /// fetch (`on_entries_fetched`): appends to a lagging follower.
    pub entries_fetched: u64,
    /// Entries raft-rs took whole from the entries this node appended and held (`LogStorage`):
    /// committed entries applied from the proposal's own buffer, with no read-back from the log.
    pub entries_from_held: u64,
}
