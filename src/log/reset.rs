//! Resetting the log to a snapshot received from elsewhere (a Raft follower installing its
//! leader's snapshot): every record is discarded and the log restarts empty after the snapshot's
//! lsn, in one superblock write that is the commit point.
//!
//! Why it is crash-safe (docs/STORAGE.md section 8.1 is the full argument):
//! - before the commit point nothing the old log needs is written: the only earlier write zeroes
//!   the first block of the segment after the tail, and only when no durable superblock copy
//!   names that segment live, so a crash there leaves the old log whole;
//! - the commit point is one durable superblock write carrying the new start (the segment after
//!   the tail), the snapshot (lsn, term), a new epoch whose `epoch_first_lsn` is the snapshot's
//!   lsn + 1, the durable watermark = the snapshot's lsn, and the owner's new metadata (Raft's
//!   hard state and membership, handed to the reset so that they commit together). A
//!   crash tearing it leaves the other copy, the old log, intact: superblock copies alternate;
//! - after it, every record of the old log is either below the new start lsn (stale) or of an
//!   older epoch at or past `epoch_first_lsn` (dead): no scan can read one as part of the new
//!   log; the new start block holds zeros (erased before, or right after when it was not free) or
//!   an older lap's records, which the scan takes as the end of the log;
//! - the same superblock is then written to the other copy, so both copies name the new start and
//!   the whole ring is free again (the writer never enters a segment a durable copy names live).
//!
//! Invariants: blocking (a rare path: it spins the device); needs no record staged beyond what
//! `sync_blocking` makes durable first; never moves the snapshot backwards.

use super::{LogError, Lsn, Superblock, Ual, BS, META_MAX, NO_SEGMENT};
use vigil_pmd::block::BlockIo;

impl<D: BlockIo> Ual<D> {
    /// Discards every record and restarts the log empty after `snapshot_lsn` (the next append gets
    /// `snapshot_lsn + 1`; `last_term()` answers `snapshot_term` until then), recording the
    /// snapshot as the checkpoint. The owner's metadata (`set_meta`, lazy is enough) commits in
    /// the same superblock write. Blocking. Refused below the current snapshot. A crash at any
    /// point leaves the old log and metadata, or the new ones (module header).
    pub fn reset_to_snapshot(
        &mut self,
        snapshot_lsn: Lsn,
        snapshot_term: u64,
        meta: &[u8],
    ) -> Result<(), LogError> {
        self.check_poisoned()?;
        if meta.len() > META_MAX {
            return Err(LogError::TooLarge { len: meta.len(), max: META_MAX });
        }
        if snapshot_lsn < self.snapshot_lsn {
            return Err(LogError::BadLsn {
                lsn: snapshot_lsn,
                why: "the snapshot is older than the current one",
            });
        }
        if snapshot_lsn == 0 {
            return Err(LogError::BadLsn { lsn: snapshot_lsn, why: "a snapshot covers at least lsn 1" });
        }
        // Nothing in flight from here on: no write, no superblock write, no cache fill. (The sync
        // writes the metadata as it was, so the new metadata must come after it.)
        self.sync_blocking()?;
        self.spin_until("read", |s| s.fetch.is_none())?;
        let new_seg = self.segs[self.cur].vseg + 1;
        let start = new_seg * self.geo.segment_blocks;
        let free = new_seg < self.reclaim_segment() + self.geo.segment_count;
        if free {
            // Before the commit point, so that no crash leaves an older lap's debris at the start.
            self.rewrite_blocks_blocking(start, 1)?;
        }
        let sb = Superblock {
            sequence: self.sb.sequence + 1,
            log_start_block: start,
            log_start_lsn: snapshot_lsn + 1,
            snapshot_lsn,
            snapshot_term,
            epoch: self.epoch + 1,
            epoch_first_lsn: snapshot_lsn + 1,
            ..self.sb
        };
        // The superblock records `durable_lsn` as the recovery watermark: nothing past the
        // snapshot is durable in the new log.
        self.durable_lsn = snapshot_lsn;
        self.set_meta(meta, true)?;
        self.write_superblock_blocking(sb)?;
        self.become_empty_after(sb, new_seg);
        // Both copies name the new start: the old log's segments are free for the writer.
        let again = Superblock { sequence: self.sb.sequence + 1, ..sb };
        self.write_superblock_blocking(again)?;
        if !free {
            self.rewrite_blocks_blocking(start, 1)?;
        }
        Ok(())
    }

    /// The in-memory side of a committed reset: an empty log whose tail is the start of `new_seg`.
    fn become_empty_after(&mut self, sb: Superblock, new_seg: u64) {
        self.epoch = sb.epoch;
        self.start_block = sb.log_start_block;
        self.first_lsn = sb.log_start_lsn;
        self.next_lsn = sb.log_start_lsn;
        self.last_term = sb.snapshot_term;
        self.snapshot_lsn = sb.snapshot_lsn;
        self.snapshot_term = sb.snapshot_term;
        self.hole = None;
        self.prev_segment_last_lsn = sb.snapshot_lsn;
        self.tail_pos = sb.log_start_block * BS;
        self.submitted_pos = self.tail_pos;
        self.segs[self.cur].bytes_mut().fill(0);
        self.segs[self.cur].vseg = new_seg;
        self.segs[1 - self.cur].vseg = NO_SEGMENT;
        self.cache.vseg = NO_SEGMENT;
        self.cache_valid_to = 0;
    }
}
