//! The Raft glue: one Raft group per partition over tikv raft-rs's sans-IO `RawNode`, with the log
//! behind a narrow seam so that the Unified Append Log is at once the Raft log and the storage.
//!
//! A shard owns the groups of the partitions with `partition_id % shard_count == shard_id`. Each
//! group is a `RaftGroup` (`group.rs`): the shard feeds it time (`on_time`), peer messages (`step`)
//! and commands (`propose`), and each poll drains one `RaftOutput`: messages to send, committed
//! entries to apply to the projections, reads that may be served, proposals that failed. Nothing in
//! it reads a clock, does I/O or assumes a group of one: peers come in as `step` and go out as
//! `out.messages`, which the cluster layer routes (tagging them with the partition).
//!
//! # The log seam
//!
//! `RaftLogStore` (`store.rs`) is everything the glue needs from a log; `LogStorage`
//! (`storage.rs`) implements raft-rs's `Storage` over any `RaftLogStore`; `MemLogStore`
//! (`mem_store.rs`) is the in-memory implementation whose writes become durable a set number of
//! polls later; `UalRaftStore` (`ual_store.rs`) is the implementation over the UAL described next
//! (what it does not do yet is in its header).
//!
//! How the UAL implements `RaftLogStore` (one UAL per partition):
//! - **Raft index == UAL lsn.** `append` writes each entry as one record {lsn = index, term,
//!   kind = raft entry (Normal / ConfChange / ConfChangeV2), payload = data}; the UAL's own record
//!   kinds that are not Raft entries (if any) must not take lsns, or the equality breaks.
//!   `first_index`/`last_index`/`term`/`entry` read the UAL's index of records; `entry` answers
//!   from memory (the last two segments, a read cache) and says `OnDevice` for any older entry the
//!   log holds; `prefetch` (asynchronous, for raft-rs's `LogTemporarilyUnavailable` and
//!   `on_entries_fetched`) and `load` (blocking, for the reads raft-rs makes synchronously) read
//!   it from the device, checked (checksum, lsn, term) before it is served.
//! - **`truncate_suffix(from)`** is the UAL's `truncate_suffix`: a new leader overwrote an
//!   uncommitted tail. It lowers `durable_lsn()` below `from` at once (the records at and after
//!   `from` no longer count) and makes the truncation durable with the next group commit, so that
//!   recovery never resurrects a truncated record: replay drops records past a durable truncation
//!   point unless they were written after it (records carry their term; a truncation record or a
//!   truncation epoch in the metadata slot both work).
//! - **Hard state** (term, vote, commit) and the current **membership** (`conf_state`) live in a
//!   per-partition metadata slot of the superblock, written alternately to two blocks with a
//!   sequence number and a crc, as part of the group commit after `set_hard_state` /
//!   `set_conf_state`. They are not log records and take no lsn. Only term and vote must be durable
//!   before a message leaves (raft-rs's `must_sync`); the commit index may lag and is only a hint at
//!   recovery.
//! - **Snapshots**: `snapshot_meta` (index, term, conf state) is that of the checkpoint the log
//!   follows; `apply_snapshot` installs a checkpoint received from the leader, drops every record
//!   and restarts the lsn sequence after it; `snapshot(request_index)` hands out the latest
//!   checkpoint (or `SnapshotUnavailable` while one is being taken).
//! - **Durability**: `sync()` seals the records and metadata written since the last call into the
//!   current group-commit batch and returns its number; the UAL's own poll submits the batch to the
//!   block device (write, then flush or FUA); `durable_sync()` is the last batch whose completion
//!   arrived, and `durable_index()` is the UAL's `durable_lsn()`, less what a pending truncation
//!   clobbers.
//!
//! # Reads
//!
//! `is_leader()` tells where writes go. Linearizable reads use ReadIndex (`read_index(ctx)` ->
//! `out.reads` -> serve once `applied_index() >= index`), or, with `ReadMode::Lease`, raft-rs's
//! lease mode: the leader answers from its commit index without a heartbeat round while it heard
//! from a quorum within the election timeout (`check_quorum` is required). The lease is only as
//! safe as the clocks' drift is small compared with the election timeout; `Safe` is the default.
//!
//! Invariants: an entry is applied only once it is durable locally and committed; every message
//! that acknowledges a write (vote, append response) leaves only after that write is durable;
//! committed entries come out in index order, each exactly once per `RaftGroup` lifetime (after a
//! restart, from the applied index given at construction).

mod group;
mod mem_store;
mod output;
mod storage;
mod store;
mod ual_meta;
mod ual_store;

/// raft-rs's message type, as peers exchange it.
pub use ::raft::eraftpb::{ConfState, Message, MessageType};
pub use group::{is_quiesce, quiesce_context, RaftGroup, QUIESCE_CONTEXT};
pub use mem_store::MemLogStore;
pub use output::{
    CommittedEntry, DroppedProposal, ElectionTimeout, ProposalId, RaftCounters, RaftError, RaftGroupConfig,
    RaftOutput, ReadMode, ReadReady,
};
pub use storage::LogStorage;
pub use store::{
    EntryKind, HardStateRecord, LogEntry, RaftLogStore, SnapshotMeta, StoreError, StoreSnapshot,
};
pub use ual_store::{
    StoreReplay, UalRaftStore, ENTRY_DATA_MAX, KIND_CONF_CHANGE, KIND_CONF_CHANGE_V2, KIND_NORMAL,
    RAFT_META_VERSION,
};

#[cfg(test)]
mod lag_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod ual_store_tests;
