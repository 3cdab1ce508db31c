//! `LogStorage`: raft-rs's `Storage` trait over any `RaftLogStore`.
//!
//! raft-rs reads the log through `Storage` (entries for appends to followers and for committed
//! entries, terms for log matching, the initial state at start) and never writes through it: the
//! glue writes each `Ready` into the store itself. This adapter only translates: raft-rs's
//! `Entry` and `HardState` on one side, the store's borrowed `LogEntry` and `HardStateRecord` on
//! the other, and the errors between them.
//!
//! Invariant: what raft-rs reads is exactly what the store holds now (durable or not): raft-rs
//! requires a `Ready`'s writes to be readable before `advance_append_async`, and the glue writes
//! them into the store before calling it.

use super::store::{RaftLogStore, StoreError, StoreSnapshot};
use ::raft::eraftpb::{Entry, HardState, Snapshot, SnapshotMetadata};
use ::raft::{GetEntriesContext, RaftState, Storage, StorageError};

/// raft-rs's view of a `RaftLogStore`.
#[derive(Debug)]
pub struct LogStorage<S: RaftLogStore> {
    store: S,
}

impl<S: RaftLogStore> LogStorage<S> {
    /// Wraps a store.
    pub fn new(store: S) -> Self {
        Self { store }
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
        StoreError::Unavailable { .. } => StorageError::Unavailable,
        StoreError::SnapshotUnavailable { .. } => StorageError::SnapshotTemporarilyUnavailable,
        StoreError::TooLarge { .. } | StoreError::Unsupported(_) | StoreError::Device(_) => {
            StorageError::Other(Box::new(e))
        }
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
        _context: GetEntriesContext,
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
            let e = self.store.entry(index).map_err(to_raft_error)?;
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
