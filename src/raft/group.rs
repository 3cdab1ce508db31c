//! `RaftGroup`: one partition's Raft group, a sans-IO state machine over raft-rs's `RawNode`.
//!
//! The shard loop drives it with four calls and reads one output:
//! - `on_time(now)` ticks raft-rs when `now` passes the next tick deadline;
//! - `step(message)` feeds a message from a peer;
//! - `propose(data, ctx)` appends a command (leader only) and returns its `ProposalId`;
//! - `poll(&mut out)` handles at most one raft-rs `Ready`: writes its entries, hard state and
//!   snapshot into the `RaftLogStore`, seals them into a group commit (`store.sync()`), and fills
//!   `out` with what may leave now: messages, committed entries to apply, reads that may be served,
//!   proposals that will never commit.
//!
//! Persist before acknowledging. A `Ready`'s "persisted messages" (every message a follower or
//! candidate sends: votes, append acknowledgements) wait in `unsynced` until the store says the
//! group commit holding that `Ready`'s writes is durable; only then are they put in `out.messages`
//! and is raft-rs told (`on_persist_ready`). The leader's own messages go out at once (raft thesis
//! 10.2.1), but its own log counts towards a quorum only once durable, through the same path.
//! raft-rs yields committed entries only up to the index it was told is persisted, so every entry in
//! `out.committed` is durable locally (asserted against `store.durable_index()`) and on a quorum.
//!
//! Proposals. A proposal is identified by the (term, index) its entry got. Pending proposals wait
//! in a bounded queue ordered by (term, index); when the entry at (t, i) is applied, every pending
//! proposal ordered at or before (t, i) is resolved: the one equal to it committed, the others
//! never will (terms never decrease along the log, so an entry of an older term can no longer
//! commit after index i once (t, i) has) and come out in `out.dropped`.
//!
//! Bounds. Pending proposals, unsynced readies, and what one `poll` puts in `out` are bounded by
//! `RaftGroupConfig`. Messages beyond `messages_per_poll_max` are dropped and counted (Raft is
//! built for lossy networks: a lost message costs a retry, not safety). Committed entries and read
//! states beyond their per-poll bounds wait in backlogs, and no new `Ready` is taken until the
//! backlogs are drained, so the backlogs never hold more than one `Ready`'s worth (itself bounded in
//! bytes by `committed_bytes_per_ready_max`).
//!
//! Entries on the device. The store serves raft-rs from memory only (`RaftLogStore::entry`); an
//! entry held only on the device is fetched as `storage.rs` describes, in one of two ways, because
//! raft-rs 0.7 allows an asynchronous read for some of its reads and not for others:
//! - asynchronously where raft-rs allows it (`GetEntriesContext::can_async`: the appends to a
//!   lagging follower, the one read whose volume is unbounded: a follower may be the whole log
//!   behind): each `poll` first has the store `prefetch` what the waiting reads wanted (a device
//!   read its I/O polling completes) and, once it is in memory, hands their contexts back to
//!   raft-rs (`on_entries_fetched`), which sends the appends then. The shard never waits for it.
//! - synchronously, bounded, where raft-rs cannot defer (committed entries for a `Ready`; pending
//!   membership changes before a campaign; a commit by vote), since raft-rs treats any error
//!   there as fatal: before a `Ready` is taken the first committed entry not yet applied is
//!   `load`ed (one blocking read of one segment), and so is it before a non-leader's tick or
//!   `campaign`, and the entry after the commit index before a vote message. raft-rs then reads
//!   on to the end of that segment (an answer cut short there is its size limit: the next `Ready`
//!   loads the next segment). This read happens only when the applied index trails the commit
//!   index by more than the log keeps in memory: a follower catching up or restarted, or a leader
//!   whose window of writes in flight (`storage.inflight_bytes_max`) is set larger than a
//!   segment. With the default window (at most a segment) a leader's write path never reads the
//!   device.
//!
//! Allocation. raft-rs allocates (`Vec<Entry>`, `Vec<Message>` per `Ready`, a `Vec<u8>` per
//! proposal); this glue adds none of its own on the steady path beyond moving those: committed
//! entries' bytes are moved into `out.committed`, not copied. The queues are allocated at
//! construction.

use super::output::{
    CommittedEntry, DroppedProposal, ElectionTimeout, ProposalId, RaftCounters, RaftError, RaftGroupConfig,
    RaftOutput, ReadMode, ReadReady,
};
use super::storage::LogStorage;
use super::store::{
    EntryKind, HardStateRecord, LogEntry, RaftLogStore, SnapshotMeta, StoreError, StoreSnapshot,
};
use ::raft::eraftpb::{ConfState, Entry, Message, MessageType};
use ::raft::{GetEntriesContext, RawNode, ReadOnlyOption, ReadState, StateRole};
use std::collections::VecDeque;
use vigil_pmd::Nanos;

mod quiet;
pub use quiet::{is_quiesce, quiesce_context, QUIESCE_CONTEXT};

#[derive(Debug)]
struct PendingProposal {
    id: ProposalId,
    ctx: u64,
}

/// A `Ready` written to the store whose messages wait for its group commit.
#[derive(Debug)]
struct UnsyncedReady {
    /// raft-rs's number of the `Ready`.
    number: u64,
    /// The group commit that must be durable; `SYNC_AT_END_OF_POLL` until this poll's `sync()`.
    sync: u64,
    /// Messages to send once durable.
    messages: Vec<Message>,
}

const SYNC_AT_END_OF_POLL: u64 = u64::MAX;

/// One partition's Raft group over a log store `S`.
pub struct RaftGroup<S: RaftLogStore> {
    partition_id: u32,
    node_id: u64,
    config: RaftGroupConfig,
    raw: RawNode<LogStorage<S>>,
    next_tick_at: Option<Nanos>,
    pending: VecDeque<PendingProposal>,
    unsynced: VecDeque<UnsyncedReady>,
    apply_backlog: VecDeque<Entry>,
    read_backlog: VecDeque<ReadState>,
    applied_index: u64,
    /// Contexts of reads whose fetch completed, on their way back to raft-rs (capacity
    /// `storage::FETCH_WAITERS_MAX`, reused).
    fetched: Vec<GetEntriesContext>,
    /// The index whose fetch `prefetch` started (or is waiting on the device for): the waiting
    /// reads wait on the store's I/O alone.
    fetch_started: Option<u64>,
    failed: bool,
    counters: RaftCounters,
}

impl<S: RaftLogStore> std::fmt::Debug for RaftGroup<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftGroup")
            .field("partition_id", &self.partition_id)
            .field("node_id", &self.node_id)
            .field("role", &self.raw.raft.state)
            .field("term", &self.raw.raft.term)
            .field("leader", &self.raw.raft.leader_id)
            .field("commit", &self.raw.raft.raft_log.committed)
            .field("applied", &self.applied_index)
            .field("failed", &self.failed)
            .finish()
    }
}

impl<S: RaftLogStore> RaftGroup<S> {
    /// A group member `node_id` of `partition_id` over `store`.
    ///
    /// A fresh store (no membership) is bootstrapped with `peers` as the voters; a store that has a
    /// membership keeps it and `peers` is not consulted. `applied_index` is the last index the
    /// projections applied durably (0 for none): committed entries after it are output again. The
    /// store must be quiescent (recovered: everything durable).
    pub fn new(
        partition_id: u32,
        node_id: u64,
        peers: &[u64],
        mut store: S,
        config: &RaftGroupConfig,
        applied_index: u64,
        logger: &slog::Logger,
    ) -> Result<Self, RaftError> {
        assert_ne!(node_id, 0, "raft node ids start at 1");
        assert!(config.proposals_pending_max > 0);
        assert!(config.readies_unsynced_max > 0);
        assert!(config.committed_per_poll_max > 0);
        assert!(config.tick_interval_ns > 0);
        assert_eq!(store.durable_index(), store.last_index(), "a new group needs a quiescent store");
        assert!(applied_index >= store.snapshot_meta().index, "projections older than the log's snapshot");
        assert!(applied_index <= store.last_index(), "applied past the end of the log");

        if store.conf_state().voters.is_empty() && store.conf_state().learners.is_empty() {
            assert!(peers.contains(&node_id), "node {node_id} not among the peers {peers:?}");
            assert!(!peers.contains(&0), "raft node ids start at 1");
            let conf_state = ConfState { voters: peers.to_vec(), ..Default::default() };
            store.set_conf_state(&conf_state)?;
        }
        // The commit index in the hard state is written lazily; entries the projections applied were
        // committed, so the hard state may be raised to them (raft-rs refuses applied > commit).
        let hs = store.hard_state();
        if applied_index > hs.commit {
            store.set_hard_state(HardStateRecord { commit: applied_index, ..hs })?;
        }

        let (min_election_tick, max_election_tick) = match config.election_timeout {
            ElectionTimeout::Randomized => (0, 0),
            ElectionTimeout::Fixed(ticks) => {
                assert!(ticks >= config.election_ticks, "fixed election timeout below election_ticks");
                (ticks, ticks + 1)
            }
        };
        let raft_config = ::raft::Config {
            id: node_id,
            election_tick: config.election_ticks,
            heartbeat_tick: config.heartbeat_ticks,
            min_election_tick,
            max_election_tick,
            applied: applied_index,
            max_size_per_msg: config.append_bytes_max,
            max_inflight_msgs: config.appends_in_flight_max,
            check_quorum: config.check_quorum,
            pre_vote: config.pre_vote,
            read_only_option: match config.read_mode {
                ReadMode::Safe => ReadOnlyOption::Safe,
                ReadMode::Lease => ReadOnlyOption::LeaseBased,
            },
            max_uncommitted_size: config.uncommitted_bytes_max,
            max_committed_size_per_ready: config.committed_bytes_per_ready_max,
            ..Default::default()
        };
        let logger = logger.new(slog::o!("partition" => partition_id));
        let raw = RawNode::new(&raft_config, LogStorage::new(store, config.held_bytes_max), &logger)?;
        Ok(Self {
            partition_id,
            node_id,
            config: *config,
            raw,
            next_tick_at: None,
            pending: VecDeque::with_capacity(config.proposals_pending_max),
            unsynced: VecDeque::with_capacity(config.readies_unsynced_max),
            apply_backlog: VecDeque::new(),
            read_backlog: VecDeque::new(),
            applied_index,
            fetched: Vec::with_capacity(super::storage::FETCH_WAITERS_MAX),
            fetch_started: None,
            failed: false,
            counters: RaftCounters::default(),
        })
    }

    /// The partition this group replicates.
    pub fn partition_id(&self) -> u32 {
        self.partition_id
    }

    /// This node's id in the group.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Whether this node is the leader now.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The leader this node knows of, if any.
    pub fn leader_id(&self) -> Option<u64> {
        match self.raw.raft.leader_id {
            0 => None,
            id => Some(id),
        }
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The last index in the log (durable or not).
    pub fn last_index(&self) -> u64 {
        self.raw.raft.raft_log.last_index()
    }

    /// The highest index known committed.
    pub fn commit_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// The last index output in `out.committed` (or skipped as a leader's empty entry, or covered
    /// by an output snapshot).
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Proposals awaiting their outcome.
    pub fn proposals_pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether `propose` would answer `Busy`: `proposals_pending_max` await their outcome.
    pub fn proposals_full(&self) -> bool {
        self.pending.len() >= self.config.proposals_pending_max
    }

    /// When `on_time` will next tick (None before the first call).
    pub fn next_tick_at(&self) -> Option<Nanos> {
        self.next_tick_at
    }

    /// Counters so far.
    pub fn counters(&self) -> RaftCounters {
        RaftCounters { entries_from_held: self.raw.store().held_moved(), ..self.counters }
    }

    /// Payload bytes of appended entries held until applied (`LogStorage::hold`).
    pub fn held_bytes(&self) -> u64 {
        self.raw.store().held_bytes()
    }

    /// The log store.
    pub fn store(&self) -> &S {
        self.raw.store().store()
    }

    /// The log store, to drive its I/O. Writing to it behind the group's back breaks the group.
    pub fn store_mut(&mut self) -> &mut S {
        self.raw.mut_store().store_mut()
    }

    /// Takes the group apart, returning its store (to restart over it).
    pub fn into_store(self) -> S {
        self.raw.raft.r.raft_log.store.into_store()
    }

    /// Whether this leader waits on a snapshot it sent to `peer` (raft-rs sends that follower
    /// nothing else until it caught up or `report_snapshot_failed`).
    pub fn snapshot_pending(&self, peer: u64) -> bool {
        self.is_leader()
            && self.raw.raft.prs().get(peer).is_some_and(|p| p.state == ::raft::ProgressState::Snapshot)
    }

    /// Tells raft-rs the snapshot sent to `peer` was not taken: it probes the follower again and
    /// sends a new snapshot if the log still cannot serve it.
    pub fn report_snapshot_failed(&mut self, peer: u64) {
        self.raw.report_snapshot(peer, ::raft::SnapshotStatus::Failure);
    }

    /// Ticks raft-rs if `now` reached the tick deadline. At most one tick per call: ticks missed
    /// while the shard was stalled are skipped rather than replayed, so a stall of this shard is
    /// not mistaken for a silent leader. Returns whether it ticked.
    pub fn on_time(&mut self, now: Nanos) -> bool {
        let interval = self.config.tick_interval_ns;
        let deadline = *self.next_tick_at.get_or_insert(Nanos(now.0 + interval));
        if now < deadline {
            return false;
        }
        self.tick();
        let next = Nanos(deadline.0 + interval);
        self.next_tick_at = Some(if now >= next { Nanos(now.0 + interval) } else { next });
        true
    }

    /// One raft-rs tick (elections, heartbeats). Normally called through `on_time`.
    /// A tick that cannot read an entry it may need stops the group (`poll` answers `Failed`).
    pub fn tick(&mut self) {
        if !self.is_leader() && self.load_unapplied().is_err() {
            self.failed = true;
            return;
        }
        self.counters.ticks += 1;
        self.raw.tick();
    }

    /// Starts an election now instead of waiting for the election timeout.
    pub fn campaign(&mut self) -> Result<(), RaftError> {
        self.check_running()?;
        self.load_unapplied()?;
        self.raw.campaign()?;
        Ok(())
    }

    /// Loads the first committed entry not yet applied when it is only on the device: raft-rs
    /// reads from there synchronously (committed entries for a `Ready`, membership changes before
    /// a campaign). Blocking, and only when the apply trails what the log keeps in memory.
    fn load_unapplied(&mut self) -> Result<(), RaftError> {
        let next = self.applied_index + 1;
        let held = self.raw.store().holds(next);
        if !held && next <= self.raw.raft.raft_log.committed && next <= self.store().last_index() {
            self.store_mut().load(next)?;
        }
        Ok(())
    }

    /// Hands the reads waiting for a fetch back to raft-rs once the store answers the index they
    /// wanted from memory (or knows it cannot: raft-rs then meets the error and sends a snapshot
    /// instead), after starting the fetch if it is not started yet. Never blocks.
    fn serve_fetches(&mut self) -> Result<(), RaftError> {
        let Some(index) = self.raw.store().fetch_wanted() else { return Ok(()) };
        match self.store_mut().prefetch(index) {
            Ok(false) => {
                self.fetch_started = Some(index);
                return Ok(());
            }
            Ok(true)
            | Err(StoreError::Corrupt { .. })
            | Err(StoreError::Compacted { .. })
            | Err(StoreError::Unavailable { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.fetch_started = None;
        let mut fetched = std::mem::take(&mut self.fetched);
        self.raw.mut_store().take_waiting(&mut fetched);
        for context in fetched.drain(..) {
            self.counters.entries_fetched += 1;
            self.raw.on_entries_fetched(context);
        }
        self.fetched = fetched;
        Ok(())
    }

    /// Appends `data` to the log as the leader. The outcome comes out of a later `poll`: in
    /// `out.committed` with `proposal_ctx == Some(ctx)`, or in `out.dropped`.
    pub fn propose(&mut self, data: &[u8], ctx: u64) -> Result<ProposalId, RaftError> {
        self.check_running()?;
        assert!(!data.is_empty(), "empty entries are reserved for new leaders");
        // The config's limit, or the log's own (a UAL record: `ual_store::ENTRY_DATA_MAX`).
        let max = self.config.proposal_size_max.min(self.store().entry_size_max());
        if data.len() > max {
            return Err(RaftError::TooLarge { len: data.len(), max });
        }
        if !self.is_leader() {
            self.counters.proposals_not_leader += 1;
            return Err(RaftError::NotLeader { leader: self.leader_id() });
        }
        if self.proposals_full() {
            self.counters.proposals_busy += 1;
            return Err(RaftError::Busy);
        }
        let last_before = self.raw.raft.raft_log.last_index();
        match self.raw.propose(Vec::new(), data.to_vec()) {
            Ok(()) => {}
            Err(::raft::Error::ProposalDropped) => return Err(RaftError::ProposalDropped),
            Err(e) => return Err(e.into()),
        }
        let id = ProposalId { term: self.raw.raft.term, index: self.raw.raft.raft_log.last_index() };
        assert_eq!(id.index, last_before + 1, "a leader appends a proposal after its last entry");
        if let Some(back) = self.pending.back() {
            assert!(back.id < id, "pending proposals are ordered by (term, index)");
        }
        self.pending.push_back(PendingProposal { id, ctx });
        self.counters.proposals += 1;
        Ok(id)
    }

    /// Asks for a linearizable read point. It comes out of a later `poll` in `out.reads` with the
    /// same `ctx` and the index the read must observe; raft-rs drops the request without a word if
    /// leadership changes first (or, on a new leader, before it committed an entry of its term), so
    /// the caller times reads out.
    pub fn read_index(&mut self, ctx: u64) -> Result<(), RaftError> {
        self.check_running()?;
        if self.leader_id().is_none() {
            return Err(RaftError::NotLeader { leader: None });
        }
        self.counters.reads += 1;
        self.raw.read_index(ctx.to_le_bytes().to_vec());
        Ok(())
    }

    /// Feeds a message from a peer.
    pub fn step(&mut self, message: Message) -> Result<(), RaftError> {
        self.check_running()?;
        if message.to != self.node_id {
            return Err(RaftError::Misrouted { to: message.to, node: self.node_id });
        }
        let from = message.from;
        self.counters.messages_in += 1;
        let vote = matches!(
            message.get_msg_type(),
            MessageType::MsgRequestVote
                | MessageType::MsgRequestPreVote
                | MessageType::MsgRequestVoteResponse
                | MessageType::MsgRequestPreVoteResponse
        );
        let committed = self.raw.raft.raft_log.committed;
        if vote && message.commit > committed && committed < self.store().last_index() {
            // raft-rs may commit by the vote's commit index and read the entries after ours.
            self.store_mut().load(committed + 1)?;
        }
        match self.raw.step(message) {
            Ok(()) => Ok(()),
            Err(::raft::Error::StepPeerNotFound) => Err(RaftError::UnknownPeer { from }),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether what is left waits only on the store's I/O: no `Ready` to handle, no backlog to
    /// hand out (readies waiting for their sync are I/O). A caller may then sleep until the
    /// store's device completes something.
    pub fn waits_only_on_storage(&self) -> bool {
        self.apply_backlog.is_empty()
            && self.read_backlog.is_empty()
            && !self.raw.has_ready()
            && self.fetch_waits_on_storage()
    }

    /// Whether the reads waiting for a fetch (if any) wait on the store's I/O alone: their fetch
    /// was started and its entry is not in memory yet. Not when it is (the next `poll` hands them
    /// back) nor when it is still to be started (the next `poll` starts it).
    fn fetch_waits_on_storage(&self) -> bool {
        match self.raw.store().fetch_wanted() {
            None => true,
            Some(index) => {
                self.fetch_started == Some(index)
                    && matches!(self.store().entry(index), Err(StoreError::OnDevice { .. }))
            }
        }
    }

    /// Handles durability news and at most one `Ready`, filling `out` (which must be empty).
    pub fn poll(&mut self, out: &mut RaftOutput) -> Result<(), RaftError> {
        assert!(out.is_empty(), "handle and clear the previous output first");
        self.check_running()?;
        if let Err(e) = self.serve_fetches() {
            self.failed = true;
            return Err(e);
        }
        self.release_durable(out);
        self.drain_backlogs(out);
        let backlog_empty = self.apply_backlog.is_empty() && self.read_backlog.is_empty();
        let room = self.unsynced.len() < self.config.readies_unsynced_max;
        if backlog_empty && room && self.raw.has_ready() {
            if let Err(e) = self.load_unapplied().and_then(|()| self.handle_ready(out)) {
                self.failed = true;
                return Err(e);
            }
            self.drain_backlogs(out);
        }
        let sync = self.store_mut().sync();
        for ready in self.unsynced.iter_mut().rev() {
            if ready.sync != SYNC_AT_END_OF_POLL {
                break;
            }
            ready.sync = sync;
        }
        self.release_durable(out);
        Ok(())
    }

    fn check_running(&self) -> Result<(), RaftError> {
        if self.failed {
            return Err(RaftError::Failed);
        }
        Ok(())
    }

    fn handle_ready(&mut self, out: &mut RaftOutput) -> Result<(), RaftError> {
        let mut rd = self.raw.ready();
        self.counters.readies += 1;

        // A leader may send before persisting (raft thesis 10.2.1): its own log counts towards the
        // quorum only once durable, through `on_persist_ready`.
        for message in rd.take_messages() {
            self.push_message(out, message);
        }

        if !rd.snapshot().is_empty() {
            let snapshot = rd.snapshot();
            let metadata = snapshot.get_metadata();
            let snapshot = StoreSnapshot {
                meta: SnapshotMeta {
                    index: metadata.index,
                    term: metadata.term,
                    conf_state: metadata.get_conf_state().clone(),
                },
                data: snapshot.data.clone(),
            };
            self.store_mut().apply_snapshot(&snapshot)?;
            self.raw.mut_store().release_held(u64::MAX);
            self.applied_index = snapshot.meta.index;
            self.resolve_proposals(snapshot.meta.term, snapshot.meta.index, out);
            out.snapshot = Some(snapshot);
        }

        if let Some(first) = rd.entries().first() {
            let first_index = first.index;
            let entries = rd.take_entries();
            let storage = self.raw.mut_store();
            let store = storage.store_mut();
            if first_index <= store.last_index() {
                store.truncate_suffix(first_index)?;
            }
            for e in &entries {
                let entry = LogEntry {
                    index: e.index,
                    term: e.term,
                    kind: EntryKind::from_raft(e.get_entry_type()),
                    data: &e.data,
                };
                store.append(std::slice::from_ref(&entry))?;
            }
            // Applied from these very buffers once committed (`LogStorage::hold`).
            storage.hold(entries);
        }

        if let Some(hs) = rd.hs() {
            let record = HardStateRecord { term: hs.term, vote: hs.vote, commit: hs.commit };
            self.store_mut().set_hard_state(record)?;
        }

        // raft-rs yields committed entries only up to the index it was told is persisted.
        let durable_index = self.store().durable_index();
        for e in rd.take_committed_entries() {
            assert!(e.index <= durable_index, "entry {} committed before it was durable", e.index);
            self.apply_backlog.push_back(e);
        }
        self.read_backlog.extend(rd.take_read_states());

        let must_sync = rd.must_sync();
        let number = rd.number();
        let messages = rd.take_persisted_messages();
        self.raw.advance_append_async(rd);
        // A Ready with nothing that must be durable waits only for the Readies before it.
        let sync = if must_sync { SYNC_AT_END_OF_POLL } else { self.unsynced.back().map_or(0, |r| r.sync) };
        self.unsynced.push_back(UnsyncedReady { number, sync, messages });
        Ok(())
    }

    /// Sends the messages of every `Ready` whose group commit is durable and tells raft-rs.
    fn release_durable(&mut self, out: &mut RaftOutput) {
        let durable_sync = self.store().durable_sync();
        let mut persisted = None;
        while self.unsynced.front().is_some_and(|r| r.sync <= durable_sync) {
            let ready = self.unsynced.pop_front().expect("front exists");
            for message in ready.messages {
                self.push_message(out, message);
            }
            persisted = Some(ready.number);
            self.counters.readies_persisted += 1;
        }
        if let Some(number) = persisted {
            self.raw.on_persist_ready(number);
            self.applied_snapshot_to_raft();
        }
    }

    /// Tells raft-rs the projections hold an installed snapshot once it counts the snapshot as
    /// persisted: until then its applied index is the one before the install, and a campaign in
    /// between would look for unapplied entries the log no longer has (raft-rs panics then: the
    /// cluster simulator found it, seed 859 of 1,000).
    fn applied_snapshot_to_raft(&mut self) {
        let log = &self.raw.raft.raft_log;
        let behind = log.applied < self.applied_index;
        let allowed = self.applied_index <= log.committed.min(log.persisted);
        if behind && allowed {
            self.raw.advance_apply_to(self.applied_index);
        }
    }

    fn push_message(&mut self, out: &mut RaftOutput, message: Message) {
        if out.messages.len() >= self.config.messages_per_poll_max {
            self.counters.messages_overflow += 1;
            return;
        }
        self.counters.messages_out += 1;
        out.messages.push(message);
    }

    fn drain_backlogs(&mut self, out: &mut RaftOutput) {
        let applied_before = self.applied_index;
        while out.committed.len() < self.config.committed_per_poll_max {
            let Some(mut e) = self.apply_backlog.pop_front() else { break };
            assert_eq!(e.index, self.applied_index + 1, "committed entries come in order, once");
            let proposal_ctx = self.resolve_proposals(e.term, e.index, out);
            self.applied_index = e.index;
            self.counters.entries_applied += 1;
            let kind = EntryKind::from_raft(e.get_entry_type());
            if kind == EntryKind::Normal && e.data.is_empty() {
                continue; // a new leader's empty entry
            }
            out.committed.push(CommittedEntry {
                index: e.index,
                term: e.term,
                kind,
                data: std::mem::take(&mut e.data),
                proposal_ctx,
            });
        }
        if self.applied_index > applied_before {
            self.raw.advance_apply_to(self.applied_index);
            self.raw.mut_store().release_held(self.applied_index);
        }
        while out.reads.len() < self.config.reads_per_poll_max {
            let Some(state) = self.read_backlog.pop_front() else { break };
            let ctx_bytes: [u8; 8] = state.request_ctx.as_slice().try_into().expect("our own 8-byte ctx");
            out.reads.push(ReadReady { ctx: u64::from_le_bytes(ctx_bytes), index: state.index });
        }
    }

    /// Resolves pending proposals up to (term, index): returns the ctx of the one at exactly that
    /// position and puts the others, which can no longer commit, in `out.dropped`.
    fn resolve_proposals(&mut self, term: u64, index: u64, out: &mut RaftOutput) -> Option<u64> {
        let at = ProposalId { term, index };
        while self.pending.front().is_some_and(|p| p.id <= at) {
            let p = self.pending.pop_front().expect("front exists");
            if p.id == at {
                return Some(p.ctx);
            }
            self.counters.proposals_dropped += 1;
            out.dropped.push(DroppedProposal { id: p.id, ctx: p.ctx });
        }
        None
    }
}
