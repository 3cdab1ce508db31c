//! The partition's seams to the world outside `src/`: where its snapshots are kept
//! (`SnapshotStore`), and what it has to say (`PartitionEvent`, handed to an `EventSink`). The
//! partition itself reads no clock, starts no thread, opens no file and prints nothing: the server
//! plugs in files, a writer thread and a printer (`serve::snapfile`), the simulator its own store
//! with seeded faults, tests whatever they check.
//!
//! Invariants of a `SnapshotStore`: at most one snapshot is being stored at a time (the partition
//! begins the next only after `poll` handed back the last); a snapshot is `begin`, then chunks
//! (`put`), then `finish`, and the store hands every chunk back emptied (`spare`) once it has
//! written it, so at most `SNAPSHOT_CHUNKS_IN_FLIGHT` chunks exist per snapshot and the memory a
//! snapshot costs does not grow with the state; a snapshot counts only once `poll` reported it
//! stored (`Ok`), and only then may the log be checkpointed past its index; `read` changes nothing
//! (recovery reads before it has decided to start) and gives a reader, so a snapshot is loaded
//! without being held whole in memory; `remove_leftovers` is called once the start is decided.
//! A snapshot received from the leader is staged whole (`stage_received`) before the log is reset
//! to it and promoted (`promote_received`) after: recovery finds it staged when the log says it
//! was installed but the promotion did not happen (a crash between the two).

pub use crate::projection::{SnapshotChunk, SnapshotEncoder, SnapshotHeader, SnapshotRead};
use std::collections::VecDeque;
use std::io;

/// Chunks of one snapshot that exist at once (being filled, queued, or being written): the
/// partition makes no more, and reuses those the store hands back. With `SNAPSHOT_CHUNK_BLOCKS`
/// pointers each, at most 256 KiB of pointers, whatever the number of keys.
pub const SNAPSHOT_CHUNKS_IN_FLIGHT: usize = 4;

/// A snapshot handed back by its store: its index, its bytes if the store has them in memory (a
/// file store streams them to disk and has not), and whether it is stored durably.
pub type Written = (u64, Option<Vec<u8>>, io::Result<()>);

/// Where a partition's snapshots are kept (see the module header).
pub trait SnapshotStore {
    /// What it is, for messages (a file's path).
    fn name(&self) -> String;
    /// The last snapshot stored, to be read from (a file), or `None` if there is none. Changes
    /// nothing.
    fn read(&mut self) -> io::Result<Option<Box<dyn SnapshotRead>>>;
    /// Removes what an interrupted store left behind (a `.tmp` file), which never counted.
    fn remove_leftovers(&mut self) -> io::Result<()>;
    /// Starts storing the snapshot at `index` whose header is `header`, durably: its body follows
    /// in chunks (`put`), then `finish`.
    fn begin(&mut self, index: u64, header: SnapshotHeader);
    /// The next chunk of the body: the store writes it (`SnapshotEncoder::put`, off the shard's
    /// thread where the store has a thread of its own) and hands it back emptied through `spare`.
    fn put(&mut self, chunk: SnapshotChunk);
    /// The body is complete: the store seals and stores the snapshot; the outcome comes out of a
    /// later `poll` (inline stores have it at the next one).
    fn finish(&mut self);
    /// A chunk the store has written, emptied, for the partition to fill again.
    fn spare(&mut self) -> Option<SnapshotChunk>;
    /// A new chunk, while the partition has fewer than `chunks_in_flight_max`: of
    /// `SNAPSHOT_CHUNK_BLOCKS` blocks unless the store wants smaller ones.
    fn new_chunk(&self) -> SnapshotChunk {
        SnapshotChunk::new()
    }
    /// Chunks of one snapshot that may exist at once: `SNAPSHOT_CHUNKS_IN_FLIGHT` unless the
    /// store wants fewer (never more: the partition takes the smaller).
    fn chunks_in_flight_max(&self) -> usize {
        SNAPSHOT_CHUNKS_IN_FLIGHT
    }
    /// The snapshot whose store finished since the last call, if any.
    fn poll(&mut self) -> Option<Written>;
    /// Stores `body`, a whole snapshot received from the leader, durably beside the current one
    /// (a file `.recv`), replacing an earlier one received: it does not count yet. Blocking (a
    /// rare path). Called before the log is reset to it, so that whatever the log says after a
    /// crash, the body it needs is there (docs/REPLICATION.md, "Snapshots to followers").
    fn stage_received(&mut self, body: &[u8]) -> io::Result<()> {
        let _ = body;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this snapshot store cannot take a snapshot from a leader",
        ))
    }
    /// The snapshot `stage_received` stored, if any. Changes nothing.
    fn read_received(&mut self) -> io::Result<Option<Box<dyn SnapshotRead>>> {
        Ok(None)
    }
    /// Makes the received snapshot the current one (renamed over it, durably), once the log was
    /// reset to it. Blocking.
    fn promote_received(&mut self) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this snapshot store cannot take a snapshot from a leader",
        ))
    }
}

/// Something a running partition reports for an operator (the server prints them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionEvent {
    /// The log or the Raft group failed: the partition refuses all work from now on, and this many
    /// waiting writes were answered `UNAVAILABLE`.
    Failed {
        /// Writes that were waiting.
        waiting: usize,
        /// What failed.
        why: String,
    },
    /// A snapshot could not be stored; the log was not checkpointed, and the next attempt comes
    /// after as many entries again.
    SnapshotFailed {
        /// The store (a path).
        store: String,
        /// Why.
        error: String,
    },
    /// The log refused a checkpoint behind a stored snapshot.
    CheckpointRefused {
        /// The snapshot's index.
        index: u64,
        /// Why.
        error: String,
    },
    /// The group's term or the leader this node knows of changed (groups with peers only).
    Leadership {
        /// The term now.
        term: u64,
        /// The leader known in it (0: none yet).
        leader: u64,
    },
}

impl std::fmt::Display for PartitionEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed { waiting, why } => write!(f, "log or raft failed, {waiting} writes fail: {why}"),
            Self::SnapshotFailed { store, error } => write!(f, "cannot write snapshot {store}: {error}"),
            Self::CheckpointRefused { index, error } => write!(f, "checkpoint at {index} refused: {error}"),
            Self::Leadership { term, leader: 0 } => write!(f, "term {term}, no leader known"),
            Self::Leadership { term, leader } => write!(f, "term {term}, leader node {leader}"),
        }
    }
}

/// Where a partition's events go.
pub type EventSink = Box<dyn FnMut(u16, &PartitionEvent)>;

/// Events kept by a partition that has no sink: the last few, for tests and tools to look at.
#[derive(Debug, Default)]
pub struct RecentEvents {
    kept: VecDeque<PartitionEvent>,
    /// Events dropped from the front to keep `RECENT_EVENTS_MAX`.
    pub dropped: u64,
}

/// Events a partition without a sink keeps.
pub const RECENT_EVENTS_MAX: usize = 16;

impl RecentEvents {
    /// Keeps `event`, dropping the oldest beyond `RECENT_EVENTS_MAX`.
    pub fn push(&mut self, event: PartitionEvent) {
        if self.kept.len() == RECENT_EVENTS_MAX {
            self.kept.pop_front();
            self.dropped += 1;
        }
        self.kept.push_back(event);
    }

    /// The events kept, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &PartitionEvent> {
        self.kept.iter()
    }
}
