//! The log seam: what the Raft glue needs from a durable log, and nothing more.
//!
//! `RaftLogStore` is the whole contract between a partition's Raft group and its log. The Unified
//! Append Log implements it (see the module header of `crate::raft` for how); `MemLogStore` is the
//! in-memory implementation for tests and the simulator. `LogStorage` (in `storage.rs`) adapts any
//! implementation to raft-rs's `Storage` trait.
//!
//! Writes are asynchronously durable. Every write (`truncate_suffix`, `append`, `set_hard_state`,
//! `set_conf_state`, `apply_snapshot`) is readable at once and becomes durable later: `sync()` seals
//! everything written since the previous call into one group commit and returns its number without
//! waiting; `durable_sync()` says which group commits have reached stable storage.
//!
//! Invariants every implementation keeps:
//! - the log is contiguous: every index in `first_index()..=last_index()` holds exactly one entry,
//!   and `term()` never decreases with the index;
//! - group commits become durable in the order they were sealed: `durable_sync()` never exceeds the
//!   last number `sync()` returned and never decreases, and when it reaches `n` every write made
//!   before the `sync()` that returned `n` is durable;
//! - `durable_index()` is the highest index whose entry is durable with the contents the log holds
//!   now: a truncation lowers it at once to below the truncation point, and it climbs again only
//!   when the replacement entries are durable;
//! - a store handed to a new `RaftGroup` is quiescent (as after recovery): everything it holds is
//!   durable.

use ::raft::eraftpb::{ConfState, EntryType};

/// What an entry carries, as the log records it (raft-rs's `EntryType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// An application command (or the empty entry a new leader appends: `data` is empty).
    Normal,
    /// A membership change, `ConfChange` encoded by raft-rs.
    ConfChange,
    /// A joint-consensus membership change, `ConfChangeV2` encoded by raft-rs.
    ConfChangeV2,
}

impl EntryKind {
    /// The raft-rs type of this kind.
    pub fn to_raft(self) -> EntryType {
        match self {
            EntryKind::Normal => EntryType::EntryNormal,
            EntryKind::ConfChange => EntryType::EntryConfChange,
            EntryKind::ConfChangeV2 => EntryType::EntryConfChangeV2,
        }
    }

    /// The kind of a raft-rs entry type.
    pub fn from_raft(entry_type: EntryType) -> Self {
        match entry_type {
            EntryType::EntryNormal => EntryKind::Normal,
            EntryType::EntryConfChange => EntryKind::ConfChange,
            EntryType::EntryConfChangeV2 => EntryKind::ConfChangeV2,
        }
    }
}

/// One log entry, borrowed from wherever it lives (a raft-rs message, the store's memory).
///
/// raft-rs entries also have a `context` field; the glue always proposes with an empty context and
/// the store does not keep it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogEntry<'a> {
    /// Raft index (the UAL's lsn).
    pub index: u64,
    /// Raft term in which a leader created the entry.
    pub term: u64,
    /// What the entry carries.
    pub kind: EntryKind,
    /// The command bytes.
    pub data: &'a [u8],
}

/// The Raft hard state: what a node must not forget across a restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HardStateRecord {
    /// The latest term this node has seen.
    pub term: u64,
    /// The node voted for in `term`, 0 for none.
    pub vote: u64,
    /// The highest index known committed (may lag: it is recovered, not relied on).
    pub commit: u64,
}

/// Where the log starts: the last index and term a snapshot covers, and the membership then.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SnapshotMeta {
    /// The last index the snapshot covers (0 for a log that never had one).
    pub index: u64,
    /// The term of that index.
    pub term: u64,
    /// The membership as of `index`.
    pub conf_state: ConfState,
}

/// A snapshot: its metadata and the projections' checkpoint bytes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreSnapshot {
    /// What it covers.
    pub meta: SnapshotMeta,
    /// The state machine's image as of `meta.index` (opaque to the log).
    pub data: Vec<u8>,
}

/// What can go wrong in a log store.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// The index is below `first_index()`: a snapshot replaced it. Nothing changed.
    #[error("log index {index} compacted (first index {first_index})")]
    Compacted {
        /// The index asked for.
        index: u64,
        /// The first index still held.
        first_index: u64,
    },
    /// The index is past `last_index()`, or not in the log although after the snapshot (damaged
    /// records a snapshot covers, skipped at open). Nothing changed.
    #[error("log index {index} unavailable (last index {last_index})")]
    Unavailable {
        /// The index asked for.
        index: u64,
        /// The last index held.
        last_index: u64,
    },
    /// The entry is in the log but only on the device, not in memory: `prefetch` (asynchronous)
    /// or `load` (blocking) brings it in. Nothing changed.
    #[error("log index {index} is on the device, not in memory")]
    OnDevice {
        /// The index asked for.
        index: u64,
    },
    /// The entry read back from the device is damaged: its checksum, lsn, kind or term is not the
    /// one the log holds for it. Nothing changed; the entry cannot be served (never as data).
    #[error("log index {index} is damaged on the device: {why}")]
    Corrupt {
        /// The index asked for.
        index: u64,
        /// What was wrong.
        why: &'static str,
    },
    /// No snapshot at or past the requested index exists yet (a checkpoint is being taken). Nothing
    /// changed; raft-rs asks again later.
    #[error("no snapshot at or after index {request_index} yet")]
    SnapshotUnavailable {
        /// The index the snapshot must reach.
        request_index: u64,
    },
    /// An entry's data (or the membership) is larger than the log can store in one piece. Nothing
    /// changed.
    #[error("{len} bytes exceed the log's limit of {max}")]
    TooLarge {
        /// The size given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The store cannot do this (yet). Nothing changed.
    #[error("not supported by this log store: {0}")]
    Unsupported(&'static str),
    /// The device failed. The write in progress may be partly applied in memory and is not
    /// durable; the group must stop and recover from what is durable.
    #[error("log device failed: {0}")]
    Device(String),
}

/// What a Raft group needs from its log. Indexes are Raft indexes (the UAL's lsns).
pub trait RaftLogStore {
    /// The first index whose entry is readable: the snapshot index + 1 (1 for a fresh log).
    fn first_index(&self) -> u64;

    /// The last index written, durable or not; the snapshot index when the log is empty.
    fn last_index(&self) -> u64;

    /// The term of `index`, for `index` in `first_index() - 1 ..= last_index()` (the snapshot's
    /// term for `first_index() - 1`).
    fn term(&self, index: u64) -> Result<u64, StoreError>;

    /// The entry at `index`, for `index` in `first_index()..=last_index()`, from memory: never
    /// blocks. `OnDevice` when it is held only on the device (`prefetch` / `load` bring it in),
    /// `Corrupt` when what was read back is damaged.
    fn entry(&self, index: u64) -> Result<LogEntry<'_>, StoreError>;

    /// Starts bringing entry `index` into memory without blocking (an asynchronous device read
    /// the store's I/O polling completes); returns whether `entry(index)` answers from memory now.
    /// A store that holds everything in memory answers `true`.
    fn prefetch(&mut self, index: u64) -> Result<bool, StoreError> {
        let _ = index;
        Ok(true)
    }

    /// Brings entry `index` into memory, blocking on a device read (bounded: one segment) when it
    /// is held only on the device. For the reads raft-rs makes synchronously (committed entries
    /// to apply, pending membership changes before a campaign).
    fn load(&mut self, index: u64) -> Result<(), StoreError> {
        let _ = index;
        Ok(())
    }

    /// Appends entries after the last one. Panics unless `entries[0].index == last_index() + 1`
    /// and the indexes are consecutive: the caller truncates first.
    fn append(&mut self, entries: &[LogEntry<'_>]) -> Result<(), StoreError>;

    /// Removes every entry at or after `from` (`first_index() <= from <= last_index() + 1`) and
    /// lowers `durable_index()` below `from`.
    fn truncate_suffix(&mut self, from: u64) -> Result<(), StoreError>;

    /// The latest hard state written (durable or not).
    fn hard_state(&self) -> HardStateRecord;

    /// Writes a new hard state.
    fn set_hard_state(&mut self, hard_state: HardStateRecord) -> Result<(), StoreError>;

    /// The current membership: the latest snapshot's, or the last set.
    fn conf_state(&self) -> &ConfState;

    /// Writes a new membership (bootstrap, or a membership change applied).
    fn set_conf_state(&mut self, conf_state: &ConfState) -> Result<(), StoreError>;

    /// Where the log starts: the metadata of the snapshot it follows.
    fn snapshot_meta(&self) -> &SnapshotMeta;

    /// A snapshot whose index is at least `request_index`, for a follower that fell behind the
    /// compacted log.
    fn snapshot(&self, request_index: u64) -> Result<StoreSnapshot, StoreError>;

    /// Replaces the log with a received snapshot: every entry is dropped, the log starts after
    /// `snapshot.meta.index`, the membership becomes the snapshot's, and `durable_index()` stays
    /// below `snapshot.meta.index` until the snapshot is durable.
    fn apply_snapshot(&mut self, snapshot: &StoreSnapshot) -> Result<(), StoreError>;

    /// Seals every write since the previous call into one group commit and returns its number
    /// (the previous number when nothing was written). Does not wait: the writes reach the device
    /// when the store's I/O is polled. The glue calls this once per `RaftGroup::poll`.
    fn sync(&mut self) -> u64;

    /// The highest group commit (a number `sync()` returned) that is durable; 0 for none.
    fn durable_sync(&self) -> u64;

    /// The highest index whose entry is durable with the contents the log holds now.
    fn durable_index(&self) -> u64;

    /// The largest `data` one entry may carry (`RaftGroup::propose` refuses larger commands).
    fn entry_size_max(&self) -> usize {
        usize::MAX
    }
}
