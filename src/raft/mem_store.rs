//! `MemLogStore`: an in-memory `RaftLogStore` whose writes become durable a set number of polls
//! after they were sealed, so tests exercise the asynchronous persist-before-ack path.
//!
//! It keeps two images of the log: `live` (every write, what reads see) and `durable` (what would
//! survive a crash). Each write is applied to `live` at once and recorded as an operation in the
//! open group commit; `sync()` (one call per `RaftGroup::poll`) ages the sealed group commits,
//! replays the ones old enough onto `durable` in order, and seals the open one. `crash()` throws
//! `live` away and restarts from `durable`, as a power cut would.
//!
//! Invariants: `durable` is always `live` as it was after some prefix of the operations; group
//! commits become durable in the order they were sealed. It allocates freely: it is a test and
//! simulator store, not the hot path.

use super::store::{
    EntryKind, HardStateRecord, LogEntry, RaftLogStore, SnapshotMeta, StoreError, StoreSnapshot,
};
use ::raft::eraftpb::ConfState;
use std::collections::VecDeque;

#[derive(Clone, Debug, PartialEq)]
struct StoredEntry {
    index: u64,
    term: u64,
    kind: EntryKind,
    data: Vec<u8>,
}

/// One state of the log: where it starts, its entries, hard state and membership.
#[derive(Clone, Debug, Default, PartialEq)]
struct Image {
    snapshot: StoreSnapshot,
    /// `entries[i].index == snapshot.meta.index + 1 + i`.
    entries: Vec<StoredEntry>,
    hard_state: HardStateRecord,
    conf_state: ConfState,
}

impl Image {
    fn last_index(&self) -> u64 {
        self.snapshot.meta.index + self.entries.len() as u64
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Truncate(from) => {
                let keep = from - self.snapshot.meta.index - 1;
                self.entries.truncate(keep as usize);
            }
            Op::Append(entries) => {
                assert_eq!(entries[0].index, self.last_index() + 1);
                self.entries.extend(entries.iter().cloned());
            }
            Op::HardState(hs) => self.hard_state = *hs,
            Op::ConfState(cs) => self.conf_state = cs.clone(),
            Op::Snapshot(snapshot) => {
                self.snapshot = snapshot.clone();
                self.entries.clear();
                self.conf_state = snapshot.meta.conf_state.clone();
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Truncate(u64),
    Append(Vec<StoredEntry>),
    HardState(HardStateRecord),
    ConfState(ConfState),
    Snapshot(StoreSnapshot),
}

impl Op {
    /// The lowest index this operation makes non-durable until it is durable itself.
    fn clobbers_from(&self) -> Option<u64> {
        match self {
            Op::Truncate(from) => Some(*from),
            Op::Snapshot(s) => Some(s.meta.index),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct SealedCommit {
    number: u64,
    syncs_left: u32,
    ops: Vec<Op>,
}

/// An in-memory log whose writes become durable `durable_after_syncs` polls after they were
/// sealed (0: durable at the `sync()` that seals them).
#[derive(Debug)]
pub struct MemLogStore {
    live: Image,
    durable: Image,
    open: Vec<Op>,
    sealed: VecDeque<SealedCommit>,
    sync_number: u64,
    durable_number: u64,
    durable_after_syncs: u32,
}

impl MemLogStore {
    /// An empty log (first index 1, no membership: the group bootstraps it).
    pub fn new(durable_after_syncs: u32) -> Self {
        Self {
            live: Image::default(),
            durable: Image::default(),
            open: Vec::new(),
            sealed: VecDeque::new(),
            sync_number: 0,
            durable_number: 0,
            durable_after_syncs,
        }
    }

    /// Changes the delay for group commits sealed from now on.
    pub fn set_durable_after_syncs(&mut self, durable_after_syncs: u32) {
        self.durable_after_syncs = durable_after_syncs;
    }

    /// Makes everything written so far durable at once (a flush that completed).
    pub fn flush_all(&mut self) {
        self.seal();
        while let Some(commit) = self.sealed.pop_front() {
            self.make_durable(commit);
        }
    }

    /// Loses everything not durable, as a power cut would; the store is then quiescent.
    pub fn crash(&mut self) {
        self.open.clear();
        self.sealed.clear();
        self.live = self.durable.clone();
        self.sync_number = self.durable_number;
    }

    /// Group commits sealed but not yet durable.
    pub fn commits_in_flight(&self) -> usize {
        self.sealed.len()
    }

    fn record(&mut self, op: Op) {
        self.live.apply(&op);
        self.open.push(op);
    }

    fn seal(&mut self) {
        if self.open.is_empty() {
            return;
        }
        self.sync_number += 1;
        let ops = std::mem::take(&mut self.open);
        self.sealed.push_back(SealedCommit {
            number: self.sync_number,
            syncs_left: self.durable_after_syncs,
            ops,
        });
    }

    fn make_durable(&mut self, commit: SealedCommit) {
        assert_eq!(commit.number, self.durable_number + 1, "group commits become durable in order");
        for op in &commit.ops {
            self.durable.apply(op);
        }
        self.durable_number = commit.number;
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
}

impl RaftLogStore for MemLogStore {
    fn first_index(&self) -> u64 {
        self.live.snapshot.meta.index + 1
    }

    fn last_index(&self) -> u64 {
        self.live.last_index()
    }

    fn term(&self, index: u64) -> Result<u64, StoreError> {
        let base = &self.live.snapshot.meta;
        if index == base.index {
            return Ok(base.term);
        }
        self.check_index(index)?;
        Ok(self.live.entries[(index - base.index - 1) as usize].term)
    }

    fn entry(&self, index: u64) -> Result<LogEntry<'_>, StoreError> {
        self.check_index(index)?;
        let e = &self.live.entries[(index - self.live.snapshot.meta.index - 1) as usize];
        assert_eq!(e.index, index);
        Ok(LogEntry { index: e.index, term: e.term, kind: e.kind, data: &e.data })
    }

    fn append(&mut self, entries: &[LogEntry<'_>]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        assert_eq!(entries[0].index, self.last_index() + 1, "append must follow the last entry");
        let mut stored = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.index, entries[0].index + i as u64, "appended indexes are consecutive");
            stored.push(StoredEntry { index: e.index, term: e.term, kind: e.kind, data: e.data.to_vec() });
        }
        self.record(Op::Append(stored));
        Ok(())
    }

    fn truncate_suffix(&mut self, from: u64) -> Result<(), StoreError> {
        assert!(from >= self.first_index(), "truncation below the first index");
        assert!(from <= self.last_index() + 1, "truncation past the end");
        if from <= self.last_index() {
            self.record(Op::Truncate(from));
        }
        Ok(())
    }

    fn hard_state(&self) -> HardStateRecord {
        self.live.hard_state
    }

    fn set_hard_state(&mut self, hard_state: HardStateRecord) -> Result<(), StoreError> {
        self.record(Op::HardState(hard_state));
        Ok(())
    }

    fn conf_state(&self) -> &ConfState {
        &self.live.conf_state
    }

    fn set_conf_state(&mut self, conf_state: &ConfState) -> Result<(), StoreError> {
        self.record(Op::ConfState(conf_state.clone()));
        Ok(())
    }

    fn snapshot_meta(&self) -> &SnapshotMeta {
        &self.live.snapshot.meta
    }

    fn snapshot(&self, request_index: u64) -> Result<StoreSnapshot, StoreError> {
        if self.live.snapshot.meta.index < request_index {
            return Err(StoreError::SnapshotUnavailable { request_index });
        }
        Ok(self.live.snapshot.clone())
    }

    fn apply_snapshot(&mut self, snapshot: &StoreSnapshot) -> Result<(), StoreError> {
        self.record(Op::Snapshot(snapshot.clone()));
        Ok(())
    }

    fn sync(&mut self) -> u64 {
        for commit in self.sealed.iter_mut() {
            commit.syncs_left = commit.syncs_left.saturating_sub(1);
        }
        self.seal();
        while self.sealed.front().is_some_and(|c| c.syncs_left == 0) {
            let commit = self.sealed.pop_front().expect("front exists");
            self.make_durable(commit);
        }
        self.sync_number
    }

    fn durable_sync(&self) -> u64 {
        self.durable_number
    }

    fn durable_index(&self) -> u64 {
        let pending = self.sealed.iter().flat_map(|c| c.ops.iter()).chain(self.open.iter());
        let clobbered = pending.filter_map(Op::clobbers_from).min().unwrap_or(u64::MAX);
        self.durable.last_index().min(self.live.last_index()).min(clobbered.saturating_sub(1))
    }
}
