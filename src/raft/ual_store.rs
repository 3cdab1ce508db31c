//! `UalRaftStore`: the Unified Append Log as a partition's Raft log (`RaftLogStore` over `Ual<D>`,
//! one UAL per partition), as the header of `crate::raft` lays out.
//!
//! - **Entries.** Raft index == UAL lsn: each entry is one record {lsn = index, term, kind
//!   (`KIND_NORMAL` / `KIND_CONF_CHANGE` / `KIND_CONF_CHANGE_V2`), payload = data}. A record holds at
//!   most `ENTRY_DATA_MAX` (= `log::PAYLOAD_MAX`, 4064) bytes: `entry_size_max()` says so and
//!   `RaftGroup::propose` refuses larger commands with `RaftError::TooLarge` before anything is
//!   appended; `append` refuses them too (`StoreError::TooLarge`, nothing appended).
//! - **Hard state and membership** live in the UAL's metadata section (in the superblock, written
//!   alternately with a sequence number and crc: docs/STORAGE.md section 2); they take no lsn. A
//!   change of term, vote or membership is *urgent*: the next `flush_step` writes a superblock for
//!   it and the group commit sealed after it counts as durable only once that write completed. A
//!   change of the commit index alone is *lazy*: it rides the next superblock write (it is only a
//!   hint at recovery, clamped to the recovered log).
//! - **Durability.** `sync()` seals the writes since the previous call into group commit `n` =
//!   {the last lsn then, the metadata number needed}, calls the UAL's `flush_step` (one log write,
//!   and a superblock write when metadata is urgent) and reaps completions; `n` is durable
//!   (`durable_sync()`) once `durable_lsn()` reached its lsn and `meta_durable_seq()` its metadata
//!   number, and every earlier one is. `durable_index()` is the UAL's `durable_lsn()`, which a
//!   truncation lowers at once. The shard loop may also call `poll_io` between polls.
//! - **Reads.** `entry` never blocks. It answers from the *backfill* (owned copies of the entries
//!   after the projections' applied index, read by `new` at start-up so a restarted node can
//!   re-yield them) or from the UAL's memory (`Ual::lookup`: the tail segment, the one before it,
//!   the read cache). Any other entry the log still holds answers `StoreError::OnDevice`, and
//!   `prefetch` (an asynchronous read of its segment into the read cache, completed by `poll_io`)
//!   or `load` (the same read, blocking) brings it in: the Raft glue uses the first for appends to
//!   a lagging follower and the second for the few reads raft-rs makes synchronously
//!   (`storage.rs` and `group.rs` say how). Whatever comes from the device is checked before it is
//!   served: its checksum and lsn by the UAL, its kind and its term against the term runs here; a
//!   damaged record, or one a previous lap or a truncated tail left there, answers
//!   `StoreError::Corrupt`, never data. Entries a snapshot covers (below `first_index`) answer
//!   `Compacted`, so raft-rs sends a snapshot instead. `term` is answered from an in-memory list
//!   of term runs, rebuilt at `new`.
//! - **Snapshots.** `checkpoint(index, data)` records a snapshot the projections took (the UAL's
//!   `checkpoint`: the log's start moves up, segments are recycled) and, in a group with peers,
//!   keeps its bytes in memory for `snapshot()` (a group of one voter keeps none: nobody could ask,
//!   and at a million keys they would be a third of the process's memory); the snapshot's
//!   membership goes to the metadata section. After a restart, or with a snapshot store that
//!   keeps the bytes in a file, the (index, term, membership) are known but the bytes are not:
//!   `snapshot()` answers `SnapshotUnavailable` and notes the request (`take_snapshot_wanted`),
//!   and the partition reads the bytes back from its snapshot store (`set_snapshot_data`);
//!   raft-rs asks again at the follower's next heartbeat answer. `apply_snapshot` (a follower
//!   installing a leader's snapshot) is the UAL's `reset_to_snapshot`: every entry dropped, the
//!   log restarting after the snapshot's index, and the hard state (commit = the snapshot's
//!   index) and the snapshot's membership committed in the same superblock write, so a crash
//!   leaves the old log and metadata or the new ones; durable when it returns.
//! - **Damaged entries a snapshot covers** are skipped by the UAL's recovery (docs/STORAGE.md
//!   section 6): its `first_lsn()` is then past them, and the one pass at start-up replays from
//!   there; they are never read again.
//! - **Blocking.** `truncate_suffix` (the UAL's, rare), `append` under back-pressure (`Busy`: it
//!   flushes and polls until the staging area has room), `load` and `new` spin the device.
//!
//! Invariants: `term` never decreases along the runs; the backfill is contiguous and ends at or
//! before `last_index()`; group commits become durable in order and `durable_sync()` never exceeds
//! the last number `sync()` returned.

use super::store::{
    EntryKind, HardStateRecord, LogEntry, RaftLogStore, SnapshotMeta, StoreError, StoreSnapshot,
};
use super::ual_meta::{conf_len, decode_meta, encode_meta, META_HEADER_LEN};
use crate::log::{LogError, Lookup, Lsn, Record, Ual, META_MAX, PAYLOAD_MAX};
use ::raft::eraftpb::ConfState;
use std::collections::VecDeque;
use vigil_pmd::block::BlockIo;
use vigil_pmd::Nanos;

/// The largest entry data one Raft entry may carry in a UAL store (one record's payload).
pub const ENTRY_DATA_MAX: usize = PAYLOAD_MAX;
/// Record kind of a normal entry.
pub const KIND_NORMAL: u8 = 1;
/// Record kind of a `ConfChange` entry.
pub const KIND_CONF_CHANGE: u8 = 2;
/// Record kind of a `ConfChangeV2` entry.
pub const KIND_CONF_CHANGE_V2: u8 = 3;
/// Version of the metadata section's layout (its first 4 bytes).
pub const RAFT_META_VERSION: u32 = 1;
/// Polls an append under back-pressure spins before it gives up.
const BUSY_POLLS_MAX: u64 = 1 << 32;

fn kind_byte(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::Normal => KIND_NORMAL,
        EntryKind::ConfChange => KIND_CONF_CHANGE,
        EntryKind::ConfChangeV2 => KIND_CONF_CHANGE_V2,
    }
}

fn kind_of(byte: u8) -> Option<EntryKind> {
    match byte {
        KIND_NORMAL => Some(EntryKind::Normal),
        KIND_CONF_CHANGE => Some(EntryKind::ConfChange),
        KIND_CONF_CHANGE_V2 => Some(EntryKind::ConfChangeV2),
        _ => None,
    }
}

fn device_error(e: LogError) -> StoreError {
    StoreError::Device(e.to_string())
}

// ---------------------------------------------------------------------------------------------

/// Whether the membership is exactly one voter and nobody else.
fn is_single_voter(c: &ConfState) -> bool {
    c.voters.len() == 1 && c.learners.is_empty() && c.voters_outgoing.is_empty() && c.learners_next.is_empty()
}

/// What recovery hands each replayed entry to: (lsn, payload).
type ApplyFn<'a> = &'a mut dyn FnMut(u64, &[u8]);

/// A group commit sealed by `sync()`.
#[derive(Clone, Copy, Debug)]
struct Sealed {
    number: u64,
    /// `durable_lsn()` must reach this.
    last_lsn: Lsn,
    /// `meta_durable_seq()` must reach this (0: no urgent metadata).
    meta_seq: u64,
}

/// An entry copied out of the log (the backfill).
#[derive(Clone, Debug)]
struct OwnedEntry {
    term: u64,
    kind: EntryKind,
    data: Vec<u8>,
}

/// What `UalRaftStore::replay` read from a log not yet committed: everything the store is built of
/// (`UalRaftStore::assemble`) besides the log itself.
#[derive(Debug)]
pub struct StoreReplay {
    hard_state: HardStateRecord,
    conf_state: ConfState,
    snapshot: SnapshotMeta,
    terms: Vec<(u64, u64)>,
    backfill_first: u64,
    backfill: VecDeque<OwnedEntry>,
    /// The index the projections hold after the replay.
    applied: u64,
}

impl StoreReplay {
    /// The index the projections hold after the replay: the `applied_index` to give the
    /// `RaftGroup`.
    pub fn applied_index(&self) -> u64 {
        self.applied
    }
}

/// A partition's Raft log over its Unified Append Log.
pub struct UalRaftStore<D: BlockIo> {
    ual: Ual<D>,
    hard_state: HardStateRecord,
    conf_state: ConfState,
    snapshot: SnapshotMeta,
    /// The bytes of the snapshot `snapshot` describes, when this process took it.
    snapshot_data: Option<Vec<u8>>,
    /// (first index, term) of each run of equal terms, ascending.
    terms: Vec<(u64, u64)>,
    /// Entries `backfill_first ..` copied out of the log at `new`.
    backfill_first: u64,
    backfill: VecDeque<OwnedEntry>,
    /// Something was written since the last `sync()`.
    open_dirty: bool,
    /// The metadata number the open group commit needs durable (0: none).
    open_meta_seq: u64,
    sealed: VecDeque<Sealed>,
    sync_number: u64,
    /// The highest group commit known durable and dropped from `sealed`.
    retired_number: u64,
    /// Scratch for encoding the metadata section (capacity `META_MAX`).
    meta_buf: Vec<u8>,
    /// Raft asked for a snapshot at or past this index that the store had no bytes for.
    snapshot_wanted: std::cell::Cell<Option<u64>>,
    /// Snapshots installed (`apply_snapshot`).
    counters_installed: u64,
    /// The first device error, if any (the log is poisoned).
    error: Option<String>,
}

impl<D: BlockIo> std::fmt::Debug for UalRaftStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UalRaftStore")
            .field("ual", &self.ual)
            .field("hard_state", &self.hard_state)
            .field("snapshot_index", &self.snapshot.index)
            .field("sync_number", &self.sync_number)
            .field("error", &self.error)
            .finish()
    }
}

impl<D: BlockIo> UalRaftStore<D> {
    /// A store over an opened (recovered) log. `applied_index` is the projections' last applied
    /// index (what the `RaftGroup` will be given): the entries after it are copied into the backfill
    /// so they can be re-yielded whatever segment they are in. Reads the whole log once (start-up).
    pub fn new(ual: Ual<D>, applied_index: u64) -> Result<Self, LogError> {
        Self::build(ual, applied_index, None)
    }

    /// Recovery in one pass over the log: a store over an opened log whose projections hold
    /// everything up to `applied_from` (a snapshot's index, or 0). Every normal entry after
    /// `applied_from` up to the recovered commit index is handed to `apply` in order (lsn, payload;
    /// empty payloads, a new leader's no-op entries, and membership entries are skipped), and the
    /// entries after the commit index go to the backfill, to be re-yielded by Raft once committed
    /// again. Returns the store and the index the projections now hold (the `applied_index` to give
    /// the `RaftGroup`).
    pub fn recover(
        mut ual: Ual<D>,
        applied_from: u64,
        apply: &mut dyn FnMut(u64, &[u8]),
    ) -> Result<(Self, u64), LogError> {
        let replayed = Self::replay(&mut ual, applied_from, apply)?;
        let applied = replayed.applied_index();
        Ok((Self::assemble(ual, replayed), applied))
    }

    /// The read-only half of `recover`, over a log whose recovery is not committed yet
    /// (`log::Recovered::log_mut`): replays into the projections and gathers what the store needs,
    /// reading the log and writing nothing, so a read error here refuses a start before the
    /// log's new epoch is written. `assemble` then builds the store over the committed log (a
    /// commit changes the epoch and erases past the cut, never a record this read).
    pub fn replay(
        ual: &mut Ual<D>,
        applied_from: u64,
        apply: &mut dyn FnMut(u64, &[u8]),
    ) -> Result<StoreReplay, LogError> {
        Self::scan_log(ual, applied_from, Some(apply))
    }

    /// The store over `ual` (the log `replay` read, now committed) and what `replay` gathered.
    pub fn assemble(ual: Ual<D>, replayed: StoreReplay) -> Self {
        let StoreReplay { hard_state, conf_state, snapshot, terms, backfill_first, backfill, applied: _ } =
            replayed;
        Self {
            ual,
            hard_state,
            conf_state,
            snapshot,
            snapshot_data: None,
            terms,
            backfill_first,
            backfill,
            open_dirty: false,
            open_meta_seq: 0,
            sealed: VecDeque::new(),
            sync_number: 0,
            retired_number: 0,
            meta_buf: Vec::with_capacity(META_MAX),
            snapshot_wanted: std::cell::Cell::new(None),
            counters_installed: 0,
            error: None,
        }
    }

    /// The commit index recorded in the log's metadata, clamped to what the log holds: a lower bound
    /// of what was committed (acknowledged writes may lie after it; Raft commits them again).
    pub fn recovered_commit(&self) -> u64 {
        self.hard_state.commit
    }

    fn build(mut ual: Ual<D>, applied_index: u64, apply: Option<ApplyFn<'_>>) -> Result<Self, LogError> {
        let replayed = Self::scan_log(&mut ual, applied_index, apply)?;
        Ok(Self::assemble(ual, replayed))
    }

    /// Reads the metadata and every record after the snapshot: the term runs, the backfill, and
    /// (with `apply`) the replay into the projections. Reads only.
    fn scan_log(
        ual: &mut Ual<D>,
        applied_index: u64,
        mut apply: Option<ApplyFn<'_>>,
    ) -> Result<StoreReplay, LogError> {
        let (mut hard_state, conf_state, snapshot_conf) =
            decode_meta(ual.meta()).map_err(|why| LogError::Corrupt { lsn: 0, why })?;
        let (snapshot_index, snapshot_term) = ual.snapshot();
        let last = ual.last_lsn();
        // The commit index is persisted lazily (it may be ahead of records that did not make it, or
        // behind the snapshot): it is a hint, clamped to what the log holds.
        hard_state.commit = hard_state.commit.clamp(snapshot_index, last.max(snapshot_index));
        if apply.is_some() && is_single_voter(&conf_state) {
            // A lone voter's durable log is committed: it wrote every entry as leader, and on its
            // election it commits all of them anyway. Replay applies them all in this one pass
            // instead of having Raft re-yield them from memory.
            hard_state.commit = last.max(snapshot_index);
        }
        let mut terms: Vec<(u64, u64)> = vec![(snapshot_index, snapshot_term)];
        let mut backfill = VecDeque::new();
        // Replaying, the projections end at the commit index: only what follows is re-yielded.
        let applied_after =
            if apply.is_some() { hard_state.commit.max(applied_index) } else { applied_index };
        let backfill_first = (applied_after + 1).max(snapshot_index + 1);
        let commit = hard_state.commit;
        let mut bad_kind = None;
        // Records between the log's (segment-aligned) start and the snapshot are compacted.
        let replay_from = (snapshot_index + 1).max(ual.first_lsn());
        if replay_from <= last {
            ual.replay(replay_from, last, |r| {
                if terms.last().map(|&(_, t)| t) != Some(r.meta.term) {
                    terms.push((r.meta.lsn, r.meta.term));
                }
                let Some(kind) = kind_of(r.meta.kind) else {
                    bad_kind.get_or_insert(r.meta.lsn);
                    return;
                };
                if r.meta.lsn >= backfill_first {
                    backfill.push_back(OwnedEntry { term: r.meta.term, kind, data: r.payload.to_vec() });
                } else if let Some(apply) = apply.as_mut() {
                    let normal = kind == EntryKind::Normal && !r.payload.is_empty();
                    if normal && r.meta.lsn > applied_index && r.meta.lsn <= commit {
                        apply(r.meta.lsn, r.payload);
                    }
                }
            })?;
        }
        if let Some(lsn) = bad_kind {
            return Err(LogError::Corrupt { lsn, why: "a record kind that is not a raft entry" });
        }
        let snapshot = SnapshotMeta { index: snapshot_index, term: snapshot_term, conf_state: snapshot_conf };
        let applied = hard_state.commit.max(applied_index);
        Ok(StoreReplay { hard_state, conf_state, snapshot, terms, backfill_first, backfill, applied })
    }

    /// The log.
    pub fn ual(&self) -> &Ual<D> {
        &self.ual
    }

    /// The log, to reach its device behind the store's back (tests).
    #[cfg(test)]
    pub(crate) fn ual_mut(&mut self) -> &mut Ual<D> {
        &mut self.ual
    }

    /// Gives the log back without flushing anything (`into_device()` on it is what a crash leaves).
    pub fn into_ual(self) -> Ual<D> {
        self.ual
    }

    /// Drives the log's I/O between polls: submits what is staged and reaps completions.
    pub fn poll_io(&mut self, now: Nanos) -> Result<(), LogError> {
        let result = self.ual.flush_step().and_then(|_| self.ual.poll(now).map(|_| ()));
        if let Err(e) = &result {
            self.error.get_or_insert_with(|| e.to_string());
        }
        self.retire();
        result
    }

    /// Drops the backfill's copies of entries up to `index` (the projections applied them).
    pub fn trim_backfill(&mut self, index: u64) {
        while self.backfill_first <= index && self.backfill.pop_front().is_some() {
            self.backfill_first += 1;
        }
    }

    /// Records that the projections durably took a snapshot `data` covering everything up to
    /// `index` (committed, applied and durable): the log may drop what it covers. Asynchronous (the
    /// UAL's `checkpoint`); `Busy` while a superblock write is in flight: retry after `poll_io`.
    /// Assumes the membership did not change after `index` (it records the current one as the
    /// snapshot's).
    pub fn checkpoint(&mut self, index: u64, data: Option<Vec<u8>>) -> Result<(), LogError> {
        let term = self.term(index).map_err(|_| LogError::BadLsn { lsn: index, why: "not in the log" })?;
        let previous = self.ual.meta().to_vec();
        encode_meta(&self.hard_state, &self.conf_state, &self.conf_state, &mut self.meta_buf);
        self.ual.set_meta(&self.meta_buf, false)?;
        if let Err(e) = self.ual.checkpoint(index, term) {
            self.ual.set_meta(&previous, false)?;
            return Err(e);
        }
        self.snapshot = SnapshotMeta { index, term, conf_state: self.conf_state.clone() };
        // Only a peer that the log can no longer serve needs the bytes: a group of one voter
        // keeps none (a snapshot's size again in memory, for nobody; the file has them).
        self.snapshot_data = data.filter(|_| !is_single_voter(&self.conf_state));
        let keep_from = self.terms.partition_point(|&(first, _)| first <= index).saturating_sub(1);
        self.terms.drain(..keep_from);
        self.terms[0] = (index, term);
        self.trim_backfill(index);
        if self.hard_state.commit < index {
            self.hard_state.commit = index;
        }
        Ok(())
    }

    /// The index Raft asked a snapshot for since the last call, when the store had no bytes to
    /// give (after a restart, or when the snapshot store keeps them in a file): the owner reads
    /// them back and hands them over (`set_snapshot_data`), or takes a new snapshot.
    pub fn take_snapshot_wanted(&self) -> Option<u64> {
        self.snapshot_wanted.take()
    }

    /// The bytes of the snapshot at `index` (the one the log follows), for followers; ignored
    /// when the log follows another one by now, or in a group of one voter.
    pub fn set_snapshot_data(&mut self, index: u64, data: Vec<u8>) {
        if index == self.snapshot.index && !is_single_voter(&self.conf_state) {
            self.snapshot_data = Some(data);
        }
    }

    /// Whether the store holds the bytes of the snapshot the log follows.
    pub fn has_snapshot_data(&self) -> bool {
        self.snapshot_data.is_some()
    }

    /// Snapshots received from a leader and installed (`apply_snapshot`).
    pub fn snapshots_installed(&self) -> u64 {
        self.counters_installed
    }

    fn check_index(&self, index: u64) -> Result<(), StoreError> {
        let first_index = self.first_index();
        if index < first_index {
            return Err(StoreError::Compacted { index, first_index });
        }
        let last_index = self.last_index();
        if index > last_index {
            return Err(StoreError::Unavailable { index, last_index });
        }
        Ok(())
    }

    fn check_error(&self) -> Result<(), StoreError> {
        match &self.error {
            Some(e) => Err(StoreError::Device(e.clone())),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: LogError) -> StoreError {
        self.error.get_or_insert_with(|| e.to_string());
        device_error(e)
    }

    /// Encodes and stages the metadata section; `urgent` when the open group commit needs it.
    fn write_meta(&mut self, urgent: bool) -> Result<(), StoreError> {
        encode_meta(&self.hard_state, &self.conf_state, &self.snapshot.conf_state, &mut self.meta_buf);
        let seq = match self.ual.set_meta(&self.meta_buf, urgent) {
            Ok(seq) => seq,
            Err(LogError::TooLarge { len, max }) => return Err(StoreError::TooLarge { len, max }),
            Err(e) => return Err(self.fail(e)),
        };
        if urgent {
            self.open_meta_seq = seq;
        }
        self.open_dirty = true;
        Ok(())
    }

    /// Appends one record, flushing and polling while the staging area is full.
    fn append_one(&mut self, e: &LogEntry<'_>) -> Result<(), StoreError> {
        let mut polls = 0u64;
        loop {
            match self.ual.append(e.term, kind_byte(e.kind), e.data) {
                Ok(lsn) => {
                    assert_eq!(lsn, e.index, "raft index == UAL lsn");
                    return Ok(());
                }
                Err(LogError::Busy) => {
                    polls += 1;
                    if polls >= BUSY_POLLS_MAX {
                        return Err(self.fail(LogError::Io("append: the staging area never drained".into())));
                    }
                    if let Err(e) = self.ual.flush_step().and_then(|_| self.ual.poll(Nanos(0))) {
                        return Err(self.fail(e));
                    }
                }
                Err(LogError::TooLarge { len, max }) => return Err(StoreError::TooLarge { len, max }),
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    /// Entry `index` from the backfill, if it holds it.
    fn backfilled(&self, index: u64) -> Option<LogEntry<'_>> {
        let e = self.backfill.get(index.checked_sub(self.backfill_first)? as usize)?;
        Some(LogEntry { index, term: e.term, kind: e.kind, data: &e.data })
    }

    /// Record `index` as an entry, once its kind is a raft entry's and its term the one the term
    /// runs hold for it: a checksum-valid record of another term at that lsn (left by a previous
    /// lap or a truncated tail) is not this entry, and is refused rather than served.
    fn checked<'a>(&self, index: u64, r: Record<'a>) -> Result<LogEntry<'a>, StoreError> {
        let Some(kind) = kind_of(r.meta.kind) else {
            return Err(StoreError::Corrupt { index, why: "a record kind that is not a raft entry" });
        };
        if self.term(index)? != r.meta.term {
            return Err(StoreError::Corrupt { index, why: "a term other than the log's for this index" });
        }
        Ok(LogEntry { index, term: r.meta.term, kind, data: r.payload })
    }

    /// A read's `LogError` as the store's: a damaged record is `Corrupt` (the log is not
    /// poisoned: the entry alone cannot be served), a device failure poisons the store.
    fn read_error(&self, index: u64, e: LogError) -> StoreError {
        match e {
            LogError::Corrupt { why, .. } => StoreError::Corrupt { index, why },
            LogError::Unavailable { .. } => StoreError::Unavailable { index, last_index: self.last_index() },
            e => device_error(e),
        }
    }

    /// The outcome of a `prefetch` or `load`: an entry read into memory is checked as `entry`
    /// checks it.
    fn after_read<T>(&mut self, index: u64, result: Result<T, LogError>) -> Result<T, StoreError> {
        match result {
            Ok(v) => {
                if let Ok(Lookup::Ready(r)) = self.ual.lookup(index) {
                    self.checked(index, r)?;
                }
                Ok(v)
            }
            Err(e @ LogError::Io(_)) => Err(self.fail(e)),
            Err(e) => Err(self.read_error(index, e)),
        }
    }

    /// Drops sealed group commits that are durable.
    fn retire(&mut self) {
        while let Some(s) = self.sealed.front() {
            if !self.is_durable(s) {
                break;
            }
            self.retired_number = s.number;
            self.sealed.pop_front();
        }
    }

    fn is_durable(&self, s: &Sealed) -> bool {
        self.ual.durable_lsn() >= s.last_lsn && self.ual.meta_durable_seq() >= s.meta_seq
    }
}

impl<D: BlockIo> RaftLogStore for UalRaftStore<D> {
    fn first_index(&self) -> u64 {
        self.snapshot.index + 1
    }

    fn last_index(&self) -> u64 {
        self.ual.last_lsn().max(self.snapshot.index)
    }

    fn term(&self, index: u64) -> Result<u64, StoreError> {
        if index == self.snapshot.index {
            return Ok(self.snapshot.term);
        }
        self.check_index(index)?;
        let run = self.terms.partition_point(|&(first, _)| first <= index) - 1;
        Ok(self.terms[run].1)
    }

    fn entry(&self, index: u64) -> Result<LogEntry<'_>, StoreError> {
        self.check_index(index)?;
        if let Some(e) = self.backfilled(index) {
            return Ok(e);
        }
        match self.ual.lookup(index) {
            Ok(Lookup::Ready(r)) => self.checked(index, r),
            Ok(Lookup::OnDevice) => Err(StoreError::OnDevice { index }),
            Err(e) => Err(self.read_error(index, e)),
        }
    }

    fn prefetch(&mut self, index: u64) -> Result<bool, StoreError> {
        self.check_index(index)?;
        if self.backfilled(index).is_some() {
            return Ok(true);
        }
        let result = self.ual.prefetch(index);
        self.after_read(index, result)
    }

    fn load(&mut self, index: u64) -> Result<(), StoreError> {
        self.check_index(index)?;
        if self.backfilled(index).is_some() {
            return Ok(());
        }
        let result = self.ual.load(index);
        self.after_read(index, result)
    }

    fn append(&mut self, entries: &[LogEntry<'_>]) -> Result<(), StoreError> {
        self.check_error()?;
        let Some(first) = entries.first() else { return Ok(()) };
        assert_eq!(first.index, self.last_index() + 1, "append must follow the last entry");
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.index, first.index + i as u64, "appended indexes are consecutive");
            if e.data.len() > ENTRY_DATA_MAX {
                return Err(StoreError::TooLarge { len: e.data.len(), max: ENTRY_DATA_MAX });
            }
        }
        for e in entries {
            self.append_one(e)?;
            if self.terms.last().map(|&(_, t)| t) != Some(e.term) {
                self.terms.push((e.index, e.term));
            }
            self.open_dirty = true;
        }
        Ok(())
    }

    fn truncate_suffix(&mut self, from: u64) -> Result<(), StoreError> {
        self.check_error()?;
        assert!(from >= self.first_index(), "truncation below the first index");
        assert!(from <= self.last_index() + 1, "truncation past the end");
        if from > self.last_index() {
            return Ok(());
        }
        // Blocking: the UAL makes the whole log durable, then writes a superblock with a new epoch
        // (carrying the metadata), so every group commit sealed so far is durable afterwards.
        if let Err(e) = self.ual.truncate_suffix(from - 1) {
            return Err(self.fail(e));
        }
        for s in self.sealed.iter_mut() {
            s.last_lsn = s.last_lsn.min(from - 1);
        }
        while self.terms.len() > 1 && self.terms.last().is_some_and(|&(first, _)| first >= from) {
            self.terms.pop();
        }
        if from < self.backfill_first {
            self.backfill.clear();
            self.backfill_first = from;
        } else {
            self.backfill.truncate((from - self.backfill_first) as usize);
        }
        self.open_dirty = true;
        Ok(())
    }

    fn hard_state(&self) -> HardStateRecord {
        self.hard_state
    }

    fn set_hard_state(&mut self, hard_state: HardStateRecord) -> Result<(), StoreError> {
        self.check_error()?;
        let urgent = hard_state.term != self.hard_state.term || hard_state.vote != self.hard_state.vote;
        self.hard_state = hard_state;
        self.write_meta(urgent)
    }

    fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    fn set_conf_state(&mut self, conf_state: &ConfState) -> Result<(), StoreError> {
        self.check_error()?;
        let len = META_HEADER_LEN + conf_len(conf_state) + conf_len(&self.snapshot.conf_state);
        if len > META_MAX {
            return Err(StoreError::TooLarge { len, max: META_MAX });
        }
        self.conf_state = conf_state.clone();
        self.write_meta(true)
    }

    fn snapshot_meta(&self) -> &SnapshotMeta {
        &self.snapshot
    }

    fn snapshot(&self, request_index: u64) -> Result<StoreSnapshot, StoreError> {
        match &self.snapshot_data {
            Some(data) if self.snapshot.index >= request_index => {
                Ok(StoreSnapshot { meta: self.snapshot.clone(), data: data.clone() })
            }
            _ => {
                // The owner brings the bytes (`snapshot_wanted`, `set_snapshot_data`); raft-rs
                // asks again at the follower's next heartbeat answer.
                self.snapshot_wanted.set(Some(request_index));
                Err(StoreError::SnapshotUnavailable { request_index })
            }
        }
    }

    fn apply_snapshot(&mut self, snapshot: &StoreSnapshot) -> Result<(), StoreError> {
        self.check_error()?;
        let meta = &snapshot.meta;
        if meta.index < self.snapshot.index {
            return Err(StoreError::Compacted { index: meta.index, first_index: self.first_index() });
        }
        // The hard state commits with the reset, in its one superblock write: the commit index
        // covers the snapshot (it is committed), term and vote stay what they were.
        let hard_state =
            HardStateRecord { commit: self.hard_state.commit.max(meta.index), ..self.hard_state };
        let len = META_HEADER_LEN + 2 * conf_len(&meta.conf_state);
        if len > META_MAX {
            return Err(StoreError::TooLarge { len, max: META_MAX });
        }
        encode_meta(&hard_state, &meta.conf_state, &meta.conf_state, &mut self.meta_buf);
        if let Err(e) = self.ual.reset_to_snapshot(meta.index, meta.term, &self.meta_buf) {
            return Err(self.fail(e));
        }
        self.hard_state = hard_state;
        self.conf_state = meta.conf_state.clone();
        self.snapshot = meta.clone();
        // Kept to serve a follower in turn, should this node lead (never in a group of one voter).
        self.snapshot_data = Some(snapshot.data.clone()).filter(|_| !is_single_voter(&self.conf_state));
        self.snapshot_wanted.set(None);
        self.terms.clear();
        self.terms.push((meta.index, meta.term));
        self.backfill.clear();
        self.backfill_first = meta.index + 1;
        // The reset was durable when it returned; the group commits sealed before it cover no
        // record any more.
        for s in self.sealed.iter_mut() {
            s.last_lsn = s.last_lsn.min(meta.index);
        }
        self.counters_installed += 1;
        self.open_dirty = true;
        Ok(())
    }

    fn sync(&mut self) -> u64 {
        if self.open_dirty {
            self.sync_number += 1;
            self.sealed.push_back(Sealed {
                number: self.sync_number,
                last_lsn: self.ual.last_lsn(),
                meta_seq: self.open_meta_seq,
            });
            self.open_dirty = false;
            self.open_meta_seq = 0;
        }
        if self.error.is_none() {
            let _ = self.poll_io(Nanos(0));
        }
        self.sync_number
    }

    fn durable_sync(&self) -> u64 {
        let mut durable = self.retired_number;
        for s in &self.sealed {
            if !self.is_durable(s) {
                break;
            }
            durable = s.number;
        }
        durable
    }

    fn durable_index(&self) -> u64 {
        self.ual.durable_lsn()
    }

    fn entry_size_max(&self) -> usize {
        ENTRY_DATA_MAX
    }
}
