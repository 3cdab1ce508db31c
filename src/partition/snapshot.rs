//! A partition's snapshots and what it reports: when a snapshot is due, handing it to the
//! snapshot store (`seams::SnapshotStore`), checkpointing the log only once the store reports it
//! durable, and the events an operator should see (`seams::PartitionEvent`).
//!
//! Invariants: the log is checkpointed past index `i` only after a snapshot covering `i` was
//! stored; one snapshot is stored at a time; a failed store is counted and retried after as many
//! entries again, never at every poll.

use super::seams::{EventSink, PartitionEvent};
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
            let Some((index, data, result)) = self.snapshots.as_mut().and_then(|s| s.poll()) else {
                return;
            };
            self.snapshot_in_flight = None;
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

    /// Captures the projections at `index` (what the shard pays: `Projection::capture`) and hands
    /// the capture to the store, which encodes and writes it.
    fn take_snapshot(&mut self, index: u64) {
        let capture = self.router.capture();
        // Whatever the outcome, the next attempt comes after as many entries again, not at every poll.
        self.snapshot_index = index;
        match &mut self.snapshots {
            None => self.checkpoint(index, Some(capture.encode())),
            Some(store) => {
                store.submit(index, capture);
                self.snapshot_in_flight = Some(index);
            }
        }
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
            Ok(()) => self.counters.snapshots += 1,
            Err(e) => {
                self.counters.snapshot_failures += 1;
                self.report(PartitionEvent::CheckpointRefused { index, error: e.to_string() });
            }
        }
    }
}
