//! `LogStorage`: raft-rs's `Storage` trait over any `RaftLogStore`.
//!
//! raft-rs reads the log through `Storage` (entries for appends to followers and for committed
//! entries, terms for log matching, the initial state at start) and never writes through it: the
//! glue writes each `Ready` into the store itself. This adapter only translates: raft-rs's
//! `Entry` and `HardState` on one side, the store's borrowed `LogEntry` and `HardStateRecord` on
//! the other, and the errors between them.
//!
//! Entries held only on the device (`StoreError::OnDevice`) are fetched the way raft-rs 0.7 offers:
//! - a read raft-rs allows to be asynchronous (`context.can_async()`: entries for an append to a
//!   follower) answers `LogTemporarilyUnavailable` and keeps the context; the group then has the
//!   store `prefetch` the index the contexts wanted (an asynchronous device read the store's I/O
//!   polling completes) and, once it answers from memory, hands each context back to raft-rs
//!   (`RawNode::on_entries_fetched`), which asks again. The shard never waits for it.
//! - a read raft-rs makes synchronously (committed entries for a `Ready`, pending membership
//!   changes before a campaign) cannot wait: the group `load`s its first index beforehand
//!   (`RaftGroup`'s header says when), and an entry after the first that is still on the device
//!   ends the answer early, which raft-rs takes as its size limit and asks for the rest later.
//!
//! Invariant: what raft-rs reads is exactly what the store holds now (durable or not): raft-rs
//! requires a `Ready`'s writes to be readable before `advance_append_async`, and the glue writes
//! them into the store before calling it.

use super::store::{RaftLogStore, StoreError, StoreSnapshot};
use ::raft::eraftpb::{Entry, HardState, Snapshot, SnapshotMetadata};
use ::raft::{GetEntriesContext, RaftState, Storage, StorageError};
use std::cell::{Cell, RefCell};

/// Reads answered `LogTemporarilyUnavailable` kept for `on_entries_fetched` at once. raft-rs makes
/// one per append it could not send (a few per lagging follower: one per send attempt, and a
/// heartbeat response makes another); past this one is dropped, which only delays that follower
/// until its next heartbeat response asks again.
pub const FETCH_WAITERS_MAX: usize = 16;

/// raft-rs's view of a `RaftLogStore`.
#[derive(Debug)]
pub struct LogStorage<S: RaftLogStore> {
    store: S,
    /// The contexts of reads answered `LogTemporarilyUnavailable` (at most `FETCH_WAITERS_MAX`).
    /// raft-rs reads through `&self`, hence the cells.
    waiting: RefCell<Vec<GetEntriesContext>>,
    /// The lowest index those reads wanted, until `take_waiting`.
    wanted: Cell<Option<u64>>,
}

impl<S: RaftLogStore> LogStorage<S> {
    /// Wraps a store.
    pub fn new(store: S) -> Self {
        Self { store, waiting: RefCell::new(Vec::with_capacity(FETCH_WAITERS_MAX)), wanted: Cell::new(None) }
    }

    /// The index reads waiting for a fetch wanted (`None`: no read waits).
    pub fn fetch_wanted(&self) -> Option<u64> {
        self.wanted.get()
    }

    /// Moves the waiting reads' contexts into `into` (for `on_entries_fetched`) and forgets the
    /// wanted index.
    pub fn take_waiting(&mut self, into: &mut Vec<GetEntriesContext>) {
        into.append(self.waiting.get_mut());
        self.wanted.set(None);
    }

    /// Keeps `context` until the fetch of `index` completes.
    fn wait_for(&self, index: u64, context: GetEntriesContext) {
        let mut waiting = self.waiting.borrow_mut();
        if waiting.len() < FETCH_WAITERS_MAX {
            waiting.push(context);
        }
        self.wanted.set(Some(self.wanted.get().map_or(index, |w| w.min(index))));
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, to write a `Ready` into it or to drive its I/O.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Unwraps the store.
    pub fn into_store(self) -> S {
        self.store
    }
}

/// The size raft-rs's limits count an entry as: its payload plus a protobuf header's worth.
pub(crate) fn entry_size(data_len: usize) -> u64 {
    data_len as u64 + 16
}

/// A raft-rs entry holding a copy of a store entry.
pub(crate) fn to_raft_entry(e: &super::store::LogEntry<'_>) -> Entry {
    let mut entry = Entry { term: e.term, index: e.index, data: e.data.to_vec(), ..Default::default() };
    entry.set_entry_type(e.kind.to_raft());
    entry
}

/// A raft-rs snapshot holding a copy of a store snapshot.
pub(crate) fn to_raft_snapshot(s: &StoreSnapshot) -> Snapshot {
    Snapshot {
        data: s.data.clone(),
        metadata: Some(SnapshotMetadata {
            conf_state: Some(s.meta.conf_state.clone()),
            index: s.meta.index,
            term: s.meta.term,
        }),
    }
}

fn to_raft_error(e: StoreError) -> ::raft::Error {
    let storage_error = match e {
        StoreError::Compacted { .. } => StorageError::Compacted,
        // A synchronous read of an entry still on the device: the group `load`s first, so this is a
        // bug, and raft-rs treats it as fatal.
        StoreError::Unavailable { .. } | StoreError::OnDevice { .. } => StorageError::Unavailable,
        StoreError::SnapshotUnavailable { .. } => StorageError::SnapshotTemporarilyUnavailable,
        StoreError::TooLarge { .. }
        | StoreError::Unsupported(_)
        | StoreError::Device(_)
        | StoreError::Corrupt { .. } => StorageError::Other(Box::new(e)),
    };
    ::raft::Error::Store(storage_error)
}

impl<S: RaftLogStore> Storage for LogStorage<S> {
    fn initial_state(&self) -> ::raft::Result<RaftState> {
        let hs = self.store.hard_state();
        let hard_state = HardState { term: hs.term, vote: hs.vote, commit: hs.commit };
        Ok(RaftState::new(hard_state, self.store.conf_state().clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> ::raft::Result<Vec<Entry>> {
        let max_size = max_size.into().unwrap_or(u64::MAX);
        let first_index = self.store.first_index();
        if low < first_index {
            return Err(to_raft_error(StoreError::Compacted { index: low, first_index }));
        }
        assert!(high <= self.store.last_index() + 1, "entries [{low}, {high}) past the last index");
        let mut out = Vec::with_capacity((high - low) as usize);
        let mut size = 0u64;
        for index in low..high {
            let e = match self.store.entry(index) {
                Ok(e) => e,
                // A short answer: raft-rs takes it as the size limit and asks for the rest later.
                Err(StoreError::OnDevice { .. }) if !out.is_empty() => break,
                Err(StoreError::OnDevice { index }) if context.can_async() => {
                    self.wait_for(index, context);
                    return Err(::raft::Error::Store(StorageError::LogTemporarilyUnavailable));
                }
                Err(e) => return Err(to_raft_error(e)),
            };
            size += entry_size(e.data.len());
            // Always at least one entry, then stop before exceeding the limit.
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(to_raft_entry(&e));
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> ::raft::Result<u64> {
        self.store.term(idx).map_err(to_raft_error)
    }

    fn first_index(&self) -> ::raft::Result<u64> {
        Ok(self.store.first_index())
    }

    fn last_index(&self) -> ::raft::Result<u64> {
        Ok(self.store.last_index())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> ::raft::Result<Snapshot> {
        let s = self.store.snapshot(request_index).map_err(to_raft_error)?;
        assert!(s.meta.index >= request_index, "store returned an older snapshot than asked for");
        Ok(to_raft_snapshot(&s))
    }
}
