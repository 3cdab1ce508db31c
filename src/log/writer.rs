//! The write path: `append` stages, `flush_step` submits one write per iteration, `poll` reaps and
//! advances `durable_lsn`; plus `checkpoint` (recycling) and `truncate_suffix` (Raft conflicts).
//!
//! How the partially filled tail block is rewritten safely: every flush writes whole blocks copied
//! from the in-memory image of the tail segment, starting at the block holding the first byte not
//! yet submitted, so the tail block is written again, whole, each time records are added to it. The
//! bytes already durable in it are rewritten with identical values, so a torn rewrite leaves them
//! intact (the device writes a sector whole or not at all; an identical sector reads the same
//! either way), and the new records are only acknowledged when the write completed. Two writes that
//! touch one block are never in flight together, so no reordering can put an older image of the
//! tail block over a newer one. A write is rounded up to a power of two blocks (the pools' sizes):
//! the extra blocks are zeros ahead of the tail in the same segment (never live data), or, at a
//! segment's end, already-written blocks before the dirty range, rewritten with identical bytes.
//!
//! Invariants: `append` never allocates and never does I/O; `submitted_pos <= tail_pos`; the
//! unsubmitted range spans at most `write_blocks_max` blocks and at most two segments.

use super::format::{durable_behind, encode_record, RecordFields, PAYLOAD_MAX, RECORD_HEADER_LEN};
use super::{InFlightWrite, LogError, Lsn, Ual, BS, NO_SEGMENT};
use vigil_pmd::block::{BlockIo, SubmitError, BLOCK_SIZE};
use vigil_pmd::Nanos;

impl<D: BlockIo> Ual<D> {
    /// Stages one record; it is durable (and may be acknowledged) once `durable_lsn()` reaches
    /// the returned lsn. Never blocks, never allocates.
    #[inline]
    pub fn append(&mut self, term: u64, kind: u8, payload: &[u8]) -> Result<Lsn, LogError> {
        if self.poisoned.is_some() {
            self.check_poisoned()?;
        }
        if payload.len() > PAYLOAD_MAX {
            return Err(LogError::TooLarge { len: payload.len(), max: PAYLOAD_MAX });
        }
        if term < self.last_term {
            return Err(LogError::TermRegression { term, last_term: self.last_term });
        }
        let need = (RECORD_HEADER_LEN + payload.len()) as u64;
        let mut pos = self.tail_pos;
        // A write of the tail block is in flight: leave the block as that write has it (records,
        // then zeros) and go on in the next one, as when a record does not fit, so the next group
        // commit does not have to wait for that write before it can be submitted.
        let pad = !pos.is_multiple_of(BS) && self.block_in_flight(pos / BS);
        if pad {
            pos = (pos / BS + 1) * BS;
        }
        if pos % BS + need > BS {
            pos = (pos / BS + 1) * BS;
        }
        let vblock = pos / BS;
        if vblock + 1 - self.submitted_pos / BS > u64::from(self.cfg.write_blocks_max) {
            self.counters.appends_busy += 1;
            return Err(LogError::Busy);
        }
        let vseg = self.geo.segment_of(vblock);
        if vseg != self.segs[self.cur].vseg {
            self.enter_segment(vseg)?;
        }
        let lsn = self.next_lsn;
        let at = ((vblock % self.geo.segment_blocks) * BS + pos % BS) as usize;
        let image = self.segs[self.cur].buf.as_deref_mut().expect("tail image is home");
        // The record says how far the log was durable as it was appended: damage at or below that
        // lsn is found to be corruption at the next open, not a torn tail.
        let fields = RecordFields {
            lsn,
            term,
            epoch: self.epoch,
            kind,
            durable_behind: durable_behind(lsn, self.durable_lsn),
        };
        encode_record(&mut image[at..at + need as usize], fields, payload);
        if pos & (BS - 1) == 0 {
            self.block_first_lsn[(vblock % self.geo.region_blocks) as usize] = lsn;
        }
        if pad && self.submitted_pos == self.tail_pos {
            // Only the padding lies between, and the write in flight puts its zeros on the device
            // (which also erases whatever a cut left there): nothing more to submit before `pos`.
            // (A record that merely does not fit moves on without this: its block's zeros still have
            // to be written, since after a cut the device may hold dead records there.)
            self.counters.padded_bytes += pos - self.tail_pos;
            self.submitted_pos = pos;
        }
        self.tail_pos = pos + need;
        self.next_lsn = lsn + 1;
        self.last_term = term;
        self.counters.appends += 1;
        Ok(lsn)
    }

    /// Moves the writer into the next segment, reusing the image of the one before the tail's.
    #[cold]
    fn enter_segment(&mut self, vseg: u64) -> Result<(), LogError> {
        assert_eq!(vseg, self.segs[self.cur].vseg + 1, "the writer moves one segment at a time");
        if vseg >= self.reclaim_segment() + self.geo.segment_count {
            self.counters.appends_full += 1;
            return Err(LogError::Full);
        }
        let tail_segment_start = self.segs[self.cur].vseg * self.geo.segment_blocks * BS;
        if self.submitted_pos < tail_segment_start {
            // The image we would reuse still holds unsubmitted records.
            self.counters.appends_busy += 1;
            return Err(LogError::Busy);
        }
        let other = 1 - self.cur;
        self.segs[other].bytes_mut().fill(0);
        self.segs[other].vseg = vseg;
        if self.cache.vseg == vseg {
            self.cache.vseg = NO_SEGMENT;
        }
        self.prev_segment_last_lsn = self.next_lsn - 1;
        self.cur = other;
        Ok(())
    }

    /// Submits everything staged since the last flush: one write, or two when the staged records
    /// cross a segment boundary. Returns the writes submitted; what cannot go now (a write still in
    /// flight on the same blocks, no buffer, a full device queue) stays staged for the next call.
    /// Also submits a superblock write for urgent metadata (`set_meta`) when none is in flight.
    pub fn flush_step(&mut self) -> Result<usize, LogError> {
        self.check_poisoned()?;
        let mut issued = usize::from(self.flush_meta()?);
        while self.submitted_pos < self.tail_pos {
            let first = self.submitted_pos / BS;
            let last = (self.tail_pos - 1) / BS;
            let vseg = self.geo.segment_of(first);
            let seg_start = vseg * self.geo.segment_blocks;
            let seg_end = seg_start + self.geo.segment_blocks;
            let (piece_last, piece_end_pos, covers) = if last >= seg_end {
                (seg_end - 1, seg_end * BS, self.prev_segment_last_lsn)
            } else {
                (last, self.tail_pos, self.next_lsn - 1)
            };
            // Buffers come in powers of two: round up by also covering the final blocks before
            // `first` (same bytes again) rather than empty blocks after the tail, which records
            // will fill while this write is in flight. Forward only at a segment's start.
            let blocks = (piece_last + 1 - first).next_power_of_two();
            let start = (piece_last + 1).saturating_sub(blocks).max(seg_start);
            let end = start + blocks;
            debug_assert!(end <= seg_end);
            let mutable_from = piece_end_pos.div_ceil(BS);
            // Two writes in flight may cover the same block only where its bytes are final in both.
            let clash = |w: &InFlightWrite| !w.done && start.max(w.mutable_from) < end.min(w.end);
            if self.in_flight.len() >= self.cfg.writes_in_flight_max as usize
                || self.dev.in_flight() >= self.dev.queue_depth()
                || self.in_flight.iter().any(clash)
            {
                break;
            }
            let class = blocks.trailing_zeros() as usize;
            let Some(mut buf) = self.pools[class].take() else { break };
            let i = self.segment_index(vseg).expect("the unsubmitted range is in memory");
            let from = ((start - seg_start) * BS) as usize;
            buf.copy_from_slice(&self.segs[i].bytes()[from..from + blocks as usize * BLOCK_SIZE]);
            let tag = self.tag();
            match self.dev.submit_write(tag, self.geo.lba(start), buf, true) {
                Ok(()) => {}
                Err(SubmitError::QueueFull(Some(buf))) => {
                    self.pools[class].put(buf);
                    break;
                }
                Err(e) => panic!("log write refused: {e} (geometry was validated)"),
            }
            self.in_flight.push_back(InFlightWrite {
                tag,
                start,
                end,
                mutable_from,
                last_lsn: covers,
                done: false,
            });
            self.submitted_pos = piece_end_pos;
            self.counters.writes += 1;
            self.counters.write_blocks += blocks;
            issued += 1;
        }
        Ok(issued)
    }

    /// Whether an unfinished write holds records of virtual block `vblock` (its final part).
    fn block_in_flight(&self, vblock: u64) -> bool {
        self.in_flight.iter().any(|w| !w.done && w.start <= vblock && vblock < w.mutable_from)
    }

    /// Reaps finished requests and advances `durable_lsn`; returns how many finished. `now` is
    /// the shard loop's clock reading (kept for the sans-IO shape; the log keeps no timers).
    pub fn poll(&mut self, _now: Nanos) -> Result<usize, LogError> {
        self.check_poisoned()?;
        let n = self.reap();
        self.check_poisoned()?;
        Ok(n)
    }

    /// Flushes everything (records and metadata, lazy or not) and spins until it is durable, then
    /// writes a superblock if its durable watermark is behind (shutdown and rare paths only).
    pub fn sync_blocking(&mut self) -> Result<(), LogError> {
        let mut idle_polls = 0u64;
        loop {
            self.flush_step()?;
            if self.submitted_pos == self.tail_pos && self.in_flight.is_empty() {
                break;
            }
            if self.reap() == 0 {
                idle_polls += 1;
                if idle_polls >= super::SPIN_POLLS_MAX {
                    return Err(self.poison("sync: the device did not complete".into()));
                }
                std::hint::spin_loop();
            }
            self.check_poisoned()?;
        }
        self.spin_until("superblock write", |s| s.sb_in_flight.is_none())?;
        if self.meta_durable_seq < self.meta_seq || self.sb.durable_lsn < self.durable_lsn {
            // Lazy metadata too: after this call everything set is durable. And the superblock's
            // durable watermark covers every record, so after a clean stop damage to any record
            // (the last one included) is told from a torn tail.
            self.meta_dirty = true;
            self.flush_meta()?;
            self.spin_until("superblock write", |s| s.sb_in_flight.is_none())?;
        }
        debug_assert_eq!(self.durable_lsn, self.last_lsn());
        debug_assert_eq!(self.meta_durable_seq, self.meta_seq);
        Ok(())
    }

    /// Syncs and gives the device back (a clean shutdown).
    pub fn close(mut self) -> Result<D, LogError> {
        self.sync_blocking()?;
        Ok(self.dev)
    }

    /// Records that a snapshot covers everything up to `snapshot_lsn` (with its `snapshot_term`):
    /// writes the alternate superblock copy (asynchronously; `Busy` while one is in flight) with the
    /// live region moved up to the segment holding `snapshot_lsn + 1`. Records below the new start
    /// stop being readable at once; their segments are reused once both superblock copies have
    /// moved past them (that is, after this write and the next checkpoint's have completed).
    pub fn checkpoint(&mut self, snapshot_lsn: Lsn, snapshot_term: u64) -> Result<(), LogError> {
        self.check_poisoned()?;
        if self.sb_in_flight.is_some() {
            return Err(LogError::Busy);
        }
        if snapshot_lsn > self.durable_lsn {
            return Err(LogError::BadLsn { lsn: snapshot_lsn, why: "the snapshot is past the durable lsn" });
        }
        if snapshot_lsn < self.snapshot_lsn {
            return Err(LogError::BadLsn {
                lsn: snapshot_lsn,
                why: "the snapshot is older than the current one",
            });
        }
        let tail_seg = self.segs[self.cur].vseg;
        let (mut start_block, mut start_lsn) = if snapshot_lsn >= self.last_lsn() {
            let start = tail_seg * self.geo.segment_blocks;
            (start, self.first_lsn_at_block(start))
        } else {
            let vblock = self.block_of(snapshot_lsn + 1);
            let start = self.geo.segment_of(vblock) * self.geo.segment_blocks;
            (start, self.first_lsn_at_block(start))
        };
        let in_hole = self.hole.is_some_and(|h| h.blocks.0 <= start_block && start_block < h.blocks.1);
        if start_block < self.start_block || in_hole {
            // Never back; and never into blocks of skipped damaged records (no record to start at).
            (start_block, start_lsn) = (self.start_block, self.first_lsn);
        }
        let sb = super::Superblock {
            sequence: self.sb.sequence + 1,
            log_start_block: start_block,
            log_start_lsn: start_lsn,
            snapshot_lsn,
            snapshot_term,
            ..self.sb
        };
        self.submit_superblock(sb)?;
        self.start_block = start_block;
        self.first_lsn = start_lsn;
        self.snapshot_lsn = snapshot_lsn;
        self.snapshot_term = snapshot_term;
        if self.cache.vseg != NO_SEGMENT && self.cache.vseg < self.geo.segment_of(start_block) {
            self.cache.vseg = NO_SEGMENT;
        }
        Ok(())
    }

    /// The lsn of the first record of `vblock` (a block at or before the tail), or `next_lsn` when
    /// the tail has not reached into it.
    fn first_lsn_at_block(&self, vblock: u64) -> Lsn {
        if self.tail_pos <= vblock * BS || self.next_lsn == self.first_lsn {
            self.next_lsn
        } else {
            self.block_first_lsn[(vblock % self.geo.region_blocks) as usize]
        }
    }

    /// Discards every record after `keep_lsn` (a Raft conflict): the next append gets
    /// `keep_lsn + 1`. Blocking (rare path): it first makes the whole log durable, then writes a
    /// superblock with a new epoch whose `epoch_first_lsn` is `keep_lsn + 1`, which makes the
    /// discarded records dead on the device at once; their bytes are overwritten as new records
    /// are written over them. Refused below the snapshot.
    pub fn truncate_suffix(&mut self, keep_lsn: Lsn) -> Result<(), LogError> {
        self.check_poisoned()?;
        if keep_lsn >= self.last_lsn() {
            return Ok(());
        }
        if keep_lsn < self.snapshot_lsn || keep_lsn + 1 < self.first_lsn() {
            return Err(LogError::BadLsn { lsn: keep_lsn, why: "truncation below the snapshot" });
        }
        self.sync_blocking()?;
        let keep_term = if keep_lsn + 1 == self.first_lsn() || keep_lsn == self.snapshot_lsn {
            self.snapshot_term
        } else {
            self.read_meta(keep_lsn)?.term
        };
        let (cut_block, cut_off) = self.locate(keep_lsn + 1)?;
        let sb = super::Superblock {
            sequence: self.sb.sequence + 1,
            epoch: self.epoch + 1,
            epoch_first_lsn: keep_lsn + 1,
            ..self.sb
        };
        // The discarded records are no longer durable: neither the superblock's watermark nor the
        // records appended from now on may claim them.
        self.durable_lsn = self.durable_lsn.min(keep_lsn);
        self.write_superblock_blocking(sb)?;
        self.epoch = sb.epoch;
        self.cut_tail(cut_block * BS + cut_off as u64)?;
        self.next_lsn = keep_lsn + 1;
        self.last_term = keep_term;
        Ok(())
    }

    /// Writes `blocks` (a power of two, at most `write_blocks_max`) blocks from virtual block
    /// `start` (within one segment) from the segment's image, or zeros if it has none, and spins
    /// until the write completes. Needs nothing staged.
    pub(super) fn rewrite_blocks_blocking(&mut self, start: u64, blocks: u64) -> Result<(), LogError> {
        assert!(blocks.is_power_of_two() && blocks <= u64::from(self.cfg.write_blocks_max));
        assert_eq!(self.submitted_pos, self.tail_pos, "rewrite with records staged");
        let vseg = self.geo.segment_of(start);
        assert_eq!(vseg, self.geo.segment_of(start + blocks - 1), "a write stays in its segment");
        self.spin_until("log write", |s| s.in_flight.is_empty())?;
        let class = blocks.trailing_zeros() as usize;
        let mut buf = self.pools[class].take().expect("nothing in flight, so every buffer is home");
        match self.segment_index(vseg) {
            Some(i) => {
                let from = ((start - vseg * self.geo.segment_blocks) * BS) as usize;
                let len = buf.len();
                buf.copy_from_slice(&self.segs[i].bytes()[from..from + len]);
            }
            None => buf.fill(0),
        }
        let tag = self.tag();
        let mut buf = Some(buf);
        while let Some(b) = buf.take() {
            match self.dev.submit_write(tag, self.geo.lba(start), b, true) {
                Ok(()) => {}
                Err(SubmitError::QueueFull(Some(b))) => {
                    buf = Some(b);
                    self.reap();
                }
                Err(e) => panic!("log write refused: {e} (geometry was validated)"),
            }
        }
        let last_lsn = self.durable_lsn;
        self.in_flight.push_back(InFlightWrite {
            tag,
            start,
            end: start + blocks,
            mutable_from: start,
            last_lsn,
            done: false,
        });
        self.counters.writes += 1;
        self.counters.write_blocks += blocks;
        self.spin_until("log write", |s| s.in_flight.is_empty())
    }

    /// Makes the tail image end at virtual byte `pos`: the segment holding it becomes the tail
    /// segment (loaded from the device if not in memory) and everything after `pos` in it is
    /// zeroed. Needs nothing in flight.
    pub(super) fn cut_tail(&mut self, pos: u64) -> Result<(), LogError> {
        assert!(self.in_flight.is_empty(), "cut with writes in flight");
        // The segment of the last byte kept, or of `pos` itself when it starts the live region.
        let keep_block = if pos > self.start_block * BS { (pos - 1) / BS } else { self.start_block };
        let vseg = self.geo.segment_of(keep_block);
        let i = match self.segment_index(vseg) {
            Some(i) => i,
            None => {
                let i = 1 - self.cur;
                self.segs[i].vseg = NO_SEGMENT;
                let lba = self.geo.lba(vseg * self.geo.segment_blocks);
                self.read_blocking(super::BufSlot::Segment(i), lba)?;
                self.segs[i].vseg = vseg;
                i
            }
        };
        let seg_start_pos = vseg * self.geo.segment_blocks * BS;
        let at = (pos - seg_start_pos) as usize;
        self.segs[i].bytes_mut()[at..].fill(0);
        self.cur = i;
        // The other image may hold a later segment's discarded records, or garbage.
        let other = 1 - i;
        if self.segs[other].vseg != vseg.wrapping_sub(1) {
            self.segs[other].vseg = NO_SEGMENT;
        }
        self.cache.vseg = NO_SEGMENT;
        self.tail_pos = pos;
        self.submitted_pos = pos;
        Ok(())
    }
}
