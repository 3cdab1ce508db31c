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
//! Entries this node appended are also *held* (`hold`), as raft-rs handed them over, until they are
//! applied (or `held_bytes_max` pushes the oldest out): the committed entries of a `Ready` are
//! then the very proposals it holds, not read back from the log. raft-rs 0.7 reads committed
//! entries through `Storage::entries` and owns them as `Vec<u8>`, so the held entry's buffer is
//! *moved* out (no copy, no log lookup or checksum) by the synchronous read that wants it (a
//! `Ready`'s committed entries; `context.can_async()` is false); an asynchronous read (an append
//! to a follower) gets a copy of a held entry. A held entry whose buffer was moved out, or one
//! pushed out, is read from the store like any other: every read path gives the same bytes.
//!
//! Invariant: what raft-rs reads is exactly what the store holds now (durable or not): raft-rs
//! requires a `Ready`'s writes to be readable before `advance_append_async`, and the glue writes
//! them into the store before calling it; the held entries are a copy of the store's last
//! appended entries, cut with it (`hold` after a suffix truncation, `release_held` on a snapshot).

use super::store::{RaftLogStore, StoreError, StoreSnapshot};
use ::raft::eraftpb::{Entry, HardState, Snapshot, SnapshotMetadata};
use ::raft::{GetEntriesContext, RaftState, Storage, StorageError};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

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
    /// Entries appended and not yet applied, in index order, contiguous (see the module header).
    held: RefCell<VecDeque<Held>>,
    /// Payload bytes of the held entries.
    held_bytes: u64,
    /// Most payload bytes held; the oldest held entries go beyond it.
    held_bytes_max: u64,
    /// Held entries moved out whole by synchronous reads (applied without a read-back).
    held_moved: Cell<u64>,
}

/// An appended entry held until applied.
#[derive(Debug)]
struct Held {
    /// The entry; its `data` is empty once `taken`.
    entry: Entry,
    /// Its payload's length (what it counts in `held_bytes` after its buffer left).
    len: u64,
    /// Whether a synchronous read moved its buffer out.
    taken: bool,
}

impl<S: RaftLogStore> LogStorage<S> {
    /// Wraps a store; holds at most `held_bytes_max` payload bytes of appended entries.
    pub fn new(store: S, held_bytes_max: u64) -> Self {
        Self {
            store,
            waiting: RefCell::new(Vec::with_capacity(FETCH_WAITERS_MAX)),
            wanted: Cell::new(None),
            held: RefCell::new(VecDeque::new()),
            held_bytes: 0,
            held_bytes_max,
            held_moved: Cell::new(0),
        }
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

    /// Holds `entries`, just appended to the store (contiguous, ascending): a held suffix from
    /// their first index on was truncated with the store's and goes first.
    pub fn hold(&mut self, entries: Vec<Entry>) {
        let Some(first) = entries.first().map(|e| e.index) else { return };
        let held = self.held.get_mut();
        while held.back().is_some_and(|h| h.entry.index >= first) {
            self.held_bytes -= held.pop_back().expect("back exists").len;
        }
        if held.back().is_some_and(|h| h.entry.index + 1 != first) {
            // Not contiguous (entries in between came from a snapshot): start again.
            held.clear();
            self.held_bytes = 0;
        }
        for entry in entries {
            let len = entry.data.len() as u64;
            self.held_bytes += len;
            held.push_back(Held { entry, len, taken: false });
        }
        while self.held_bytes > self.held_bytes_max {
            self.held_bytes -= held.pop_front().expect("bytes held means entries held").len;
        }
    }

    /// Forgets held entries up to `index` (applied; `u64::MAX`: all of them, a snapshot replaced
    /// the log).
    pub fn release_held(&mut self, index: u64) {
        let held = self.held.get_mut();
        while held.front().is_some_and(|h| h.entry.index <= index) {
            self.held_bytes -= held.pop_front().expect("front exists").len;
        }
    }

    /// Whether the entry at `index` is held whole (a synchronous read of it needs no device read).
    pub fn holds(&self, index: u64) -> bool {
        self.held_len(index).is_some()
    }

    /// Held entries a synchronous read took whole (a `Ready`'s committed entries: applied from
    /// the buffer proposed, not read back).
    pub fn held_moved(&self) -> u64 {
        self.held_moved.get()
    }

    /// Payload bytes held now (buffers moved out count until released).
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes
    }

    /// Where the entry at `index` is in `held`, if it is held whole (not moved out).
    fn held_at(held: &VecDeque<Held>, index: u64) -> Option<usize> {
        let at = usize::try_from(index.checked_sub(held.front()?.entry.index)?).ok()?;
        held.get(at).filter(|h| !h.taken).map(|_| at)
    }

    /// The payload length of the entry at `index` if it is held whole, else `None` (read it from
    /// the store).
    fn held_len(&self, index: u64) -> Option<usize> {
        let held = self.held.borrow();
        Self::held_at(&held, index).map(|at| held[at].entry.data.len())
    }

    /// The held entry at `index` (`held_len` said it is held whole), moved out for a synchronous
    /// read (`take`) or copied.
    fn held_entry(&self, index: u64, take: bool) -> Entry {
        let mut held = self.held.borrow_mut();
        let at = Self::held_at(&held, index).expect("held_len found it");
        let h = &mut held[at];
        if !take {
            return h.entry.clone();
        }
        h.taken = true;
        self.held_moved.set(self.held_moved.get() + 1);
        let mut rest = Entry { term: h.entry.term, index: h.entry.index, ..Default::default() };
        rest.set_entry_type(h.entry.get_entry_type());
        std::mem::replace(&mut h.entry, rest)
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
            if let Some(len) = self.held_len(index) {
                size += entry_size(len);
                if !out.is_empty() && size > max_size {
                    break;
                }
                out.push(self.held_entry(index, !context.can_async()));
                continue;
            }
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
