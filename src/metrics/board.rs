//! `StatsBoard`: each shard's latest `ShardStats`, for the metrics thread and the dashboard.
//!
//! One `ArcSwap` slot per shard. A shard builds a snapshot on its own thread every
//! `metrics.publish_ms` and stores it (a pointer swap); a reader loads the latest of each slot.
//! Neither waits for the other: the shard never takes a lock and never reads what readers hold,
//! and a reader never sees half a snapshot. (`arc_swap` is the well-kept crate for this; a
//! seqlock over plain memory would need `unsafe`, which `src/` does not hold.)
//!
//! Invariants: one slot per shard, made once; a slot only ever moves to a newer snapshot of its
//! shard.

use super::ShardStats;
use arc_swap::ArcSwapOption;
use std::sync::Arc;

/// The shards' latest snapshots (see the module header). Cloned into each shard's thread.
#[derive(Clone, Debug)]
pub struct StatsBoard {
    slots: Arc<[ArcSwapOption<ShardStats>]>,
}

impl StatsBoard {
    /// A board for `shards` shards, none published yet.
    pub fn new(shards: usize) -> Self {
        Self { slots: (0..shards).map(|_| ArcSwapOption::empty()).collect() }
    }

    /// Publishes shard `stats.shard`'s snapshot (ignored for a shard the board has no slot for).
    pub fn publish(&self, stats: ShardStats) {
        if let Some(slot) = self.slots.get(stats.shard) {
            slot.store(Some(Arc::new(stats)));
        }
    }

    /// Every shard's latest snapshot, in shard order (shards not published yet left out).
    pub fn latest(&self) -> Vec<Arc<ShardStats>> {
        self.slots.iter().filter_map(|s| s.load_full()).collect()
    }

    /// Shards on the board.
    pub fn shards(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_sees_each_shard_s_latest_snapshot() {
        let board = StatsBoard::new(2);
        assert!(board.latest().is_empty());
        let stats = |shard, at_ns| ShardStats { shard, at_ns, ..ShardStats::default() };
        board.publish(stats(1, 5));
        board.publish(stats(0, 6));
        board.publish(stats(1, 7));
        board.publish(stats(9, 8));
        let latest: Vec<(usize, u64)> = board.latest().iter().map(|s| (s.shard, s.at_ns)).collect();
        assert_eq!(latest, vec![(0, 6), (1, 7)]);
    }
}
