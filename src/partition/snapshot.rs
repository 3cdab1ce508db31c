//! A partition's snapshots and what it reports: when a snapshot is due, handing it to the
//! snapshot store (`seams::SnapshotStore`) in chunks, checkpointing the log only once the store
//! reports it durable, and the events an operator should see (`seams::PartitionEvent`).
//!
//! A snapshot is captured at one applied index (`Router::begin_snapshot`: no copy of the state),
//! then pumped: at each poll the partition fills the chunks it may (new ones up to
//! `SNAPSHOT_CHUNKS_IN_FLIGHT`, then those the store hands back) from the capture and puts them,
//! while it goes on applying entries (the capture gives the state at its index whatever is applied
//! meanwhile); once the body is complete it tells the store to finish.
//!
//! Invariants: the log is checkpointed past index `i` only after a snapshot covering `i` was
//! stored; one snapshot is stored at a time; at most `SNAPSHOT_CHUNKS_IN_FLIGHT` chunks exist for
//! it, and none is kept once it is stored; a failed store is counted and retried after as many
//! entries again, never at every poll.

use super::seams::{EventSink, PartitionEvent, SnapshotChunk, SnapshotStore, SNAPSHOT_CHUNKS_IN_FLIGHT};
use super::{Events, Partition};
use vigil_pmd::block::BlockIo;

impl<D: BlockIo> Partition<D> {
    /// Hands `event` to the sink, or keeps it.
    pub(super) fn report(&mut self, event: PartitionEvent) {
        match &mut self.events {
            Events::Sink(sink) => sink(self.id, &event),
            Events::Kept(kept) => kept.push(event),
        }
    }

    /// Sends every later event to `sink` (the server prints them) instead of keeping the last few.
    pub fn set_event_sink(&mut self, sink: EventSink) {
        self.events = Events::Sink(sink);
    }

    /// The last events kept (none once a sink is set), oldest first.
    pub fn recent_events(&self) -> Vec<PartitionEvent> {
        match &self.events {
            Events::Sink(_) => Vec::new(),
            Events::Kept(kept) => kept.iter().cloned().collect(),
        }
    }

    /// Takes a snapshot when one is due, stores it, and checkpoints the log behind it.
    pub(super) fn maybe_snapshot(&mut self) {
        if let Some((index, data)) = self.checkpoint_pending.take() {
            self.checkpoint(index, data);
            return;
        }
        if self.snapshot_in_flight.is_some() {
            self.pump_chunks();
            let Some((index, data, result)) = self.snapshots.as_mut().and_then(|s| s.poll()) else {
                return;
            };
            self.snapshot_in_flight = None;
            self.snapshot_pump = ChunkPump::default();
            // Chunks handed back after the last fill are dropped: none is kept between snapshots.
            if let Some(store) = self.snapshots.as_mut() {
                while store.spare().is_some() {}
            }
            match result {
                Ok(()) => self.checkpoint(index, data),
                Err(e) => self.snapshot_failed(&e),
            }
            return;
        }
        let index = self.router.applied_lsn();
        if index <= self.snapshot_index {
            return;
        }
        let ual = self.raft.store().ual();
        let ring_half_used = ual.segments_free() * 2 < ual.segment_count();
        if index - self.snapshot_index < self.snapshot_every_entries && !ring_half_used {
            return;
        }
        self.take_snapshot(index);
    }

    /// Takes a snapshot of everything applied now (operators and benchmarks; the shard takes them on
    /// its own schedule). Its checkpoint completes with later polls.
    pub fn snapshot_now(&mut self) {
        let index = self.router.applied_lsn();
        if index > self.snapshot_index && !self.snapshot_in_progress() {
            self.take_snapshot(index);
        }
    }

    /// Whether a snapshot is being stored or waits for its checkpoint.
    pub fn snapshot_in_progress(&self) -> bool {
        self.checkpoint_pending.is_some() || self.snapshot_in_flight.is_some()
    }

    /// Captures the projections at `index` (what the shard pays: `Projection::begin_capture`),
    /// begins the store's snapshot and hands it the first chunks; a partition without a store
    /// encodes it now, whole, for the log store to keep.
    pub(super) fn take_snapshot(&mut self, index: u64) {
        // Whatever the outcome, the next attempt comes after as many entries again, not at every poll.
        self.snapshot_index = index;
        self.snapshot_started_at = self.now;
        let Some(store) = self.snapshots.as_mut() else {
            let mut bytes = Vec::new();
            self.router.snapshot(&mut bytes);
            self.checkpoint(index, Some(bytes));
            return;
        };
        let header = self.router.begin_snapshot();
        store.begin(index, header);
        self.snapshot_in_flight = Some(index);
        self.snapshot_pump = ChunkPump::default();
        self.pump_chunks();
    }

    /// Fills and puts every chunk it may now (see the module header); finishes the store's
    /// snapshot once the body is complete.
    fn pump_chunks(&mut self) {
        let Some(store) = self.snapshots.as_mut() else { return };
        pump(&mut self.snapshot_pump, &mut **store, |chunk| self.router.snapshot_chunk(chunk));
    }

    fn snapshot_failed(&mut self, e: &std::io::Error) {
        self.counters.snapshot_failures += 1;
        let store = self.snapshots.as_ref().map_or_else(String::new, |s| s.name());
        self.report(PartitionEvent::SnapshotFailed { store, error: e.to_string() });
    }

    /// Checkpoints the log behind the snapshot at `index`; `data`, its bytes when the store kept
    /// them in memory (a group with peers keeps them to serve followers).
    fn checkpoint(&mut self, index: u64, data: Option<Vec<u8>>) {
        // The log refuses a checkpoint while a superblock write is in flight: keep the snapshot
        // for a later poll rather than hand it over.
        if self.raft.store().ual().superblock_in_flight() {
            self.checkpoint_pending = Some((index, data));
            return;
        }
        match self.raft.store_mut().checkpoint(index, data) {
            Ok(()) => {
                let took = self.now.0.saturating_sub(self.snapshot_started_at.0);
                let c = &mut self.counters;
                (c.snapshots, c.snapshot_ns_last) = (c.snapshots + 1, took);
                c.snapshot_ns_total = c.snapshot_ns_total.saturating_add(took);
            }
            Err(e) => {
                self.counters.snapshot_failures += 1;
                self.report(PartitionEvent::CheckpointRefused { index, error: e.to_string() });
            }
        }
    }
}

/// How far the chunks of the snapshot being stored got.
#[derive(Debug, Default)]
pub(super) struct ChunkPump {
    /// Chunks made for it (at most `SNAPSHOT_CHUNKS_IN_FLIGHT`).
    made: usize,
    /// Whether the whole body was put and the store told to finish.
    complete: bool,
}

/// Fills chunks with `fill` (true: the body is complete) and puts them into `store` while one is
/// to be had: one the store handed back, or a new one while fewer than `SNAPSHOT_CHUNKS_IN_FLIGHT`
/// (or the store's `chunks_in_flight_max`, if fewer) exist.
fn pump(
    state: &mut ChunkPump,
    store: &mut dyn SnapshotStore,
    mut fill: impl FnMut(&mut SnapshotChunk) -> bool,
) {
    let in_flight_max = store.chunks_in_flight_max().clamp(1, SNAPSHOT_CHUNKS_IN_FLIGHT);
    while !state.complete {
        let mut chunk = match store.spare() {
            Some(chunk) => chunk,
            None if state.made < in_flight_max => {
                state.made += 1;
                store.new_chunk()
            }
            None => return,
        };
        state.complete = fill(&mut chunk);
        store.put(chunk);
        if state.complete {
            store.finish();
        }
    }
}
