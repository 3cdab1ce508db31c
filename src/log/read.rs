//! The read path: `read`, `read_meta`, `replay` and `locate`, for Raft and for projection replay.
//!
//! An lsn is found through the block index (the first lsn of every block of the live region, kept
//! in memory and rebuilt by the scan at open): a binary search gives its block, a walk over at most
//! one block's headers gives its offset. Bytes come from the in-memory images of the tail segment
//! and the one before it, else from a one-segment read cache filled by a device read: blocking
//! (`read`, `replay`, `load`) or asynchronous (`prefetch` submits it, `poll` completes it, and
//! `lookup` then answers from the cache without blocking).
//!
//! Invariants: every record handed out has had its checksum verified after it was read (paired
//! with the checksum `append` computed) and carries the lsn asked for; `lookup` serves a record
//! from the cache only if it was durable before the cache's read was submitted (so a write still
//! in flight cannot leave a previous lap's bytes there for it), and a cache fill that completes
//! after a truncation or a recycling of its segment is dropped.

use super::format::{decode_record, peek_header, Slot, RECORD_HEADER_LEN};
use super::{BufSlot, Fetch, LogError, Lookup, Lsn, Record, RecordMeta, Ual, BS, NO_SEGMENT, TAG_FETCH};
use vigil_pmd::block::{BlockIo, SubmitError, BLOCK_SIZE};

impl<D: BlockIo> Ual<D> {
    /// Copies the payload of record `lsn` into `out` (cleared first) and returns its metadata.
    /// Blocks on a device read when its segment is not in memory.
    pub fn read(&mut self, lsn: Lsn, out: &mut Vec<u8>) -> Result<RecordMeta, LogError> {
        let mut meta = None;
        self.replay(lsn, lsn, |r| {
            out.clear();
            out.extend_from_slice(r.payload);
            meta = Some(r.meta);
        })?;
        Ok(meta.expect("replay of one lsn yields it"))
    }

    /// The metadata (term, kind, length) of record `lsn`.
    pub fn read_meta(&mut self, lsn: Lsn) -> Result<RecordMeta, LogError> {
        let mut meta = None;
        self.replay(lsn, lsn, |r| meta = Some(r.meta))?;
        Ok(meta.expect("replay of one lsn yields it"))
    }

    /// The term of `lsn`, including the snapshot's lsn just below the log (Raft's `term(idx)`).
    pub fn term_of(&mut self, lsn: Lsn) -> Result<u64, LogError> {
        if lsn == self.snapshot_lsn && lsn + 1 >= self.first_lsn() {
            return Ok(self.snapshot_term);
        }
        Ok(self.read_meta(lsn)?.term)
    }

    /// Record `lsn` if its segment is in memory (the tail segment, the one before it, or the read
    /// cache), checksum verified; `None` when it is outside the log, damaged, or would need a
    /// device read. Never blocks, never allocates: the synchronous read path for Raft's recent
    /// entries. `lookup` tells those cases apart.
    pub fn peek(&self, lsn: Lsn) -> Option<Record<'_>> {
        match self.lookup(lsn) {
            Ok(Lookup::Ready(r)) => Some(r),
            _ => None,
        }
    }

    /// Record `lsn` from memory (the tail segment, the one before it, or the read cache), its
    /// checksum verified and its lsn the one asked for; `Lookup::OnDevice` when it is in the log
    /// but only on the device (`prefetch` or `load` brings it in). Never blocks, never allocates.
    /// `Unavailable` outside the log, `Corrupt` when the bytes in memory do not hold it whole (a
    /// damaged record on the device: never handed out as data), `Io` when poisoned.
    pub fn lookup(&self, lsn: Lsn) -> Result<Lookup<'_>, LogError> {
        self.check_poisoned()?;
        if lsn < self.first_lsn() || lsn > self.last_lsn() {
            return Err(LogError::Unavailable { lsn, first: self.first_lsn(), last: self.last_lsn() });
        }
        let vblock = self.block_of(lsn);
        let vseg = self.geo.segment_of(vblock);
        let bytes = match self.segment_index(vseg) {
            Some(i) => self.segs[i].bytes(),
            None if self.cache.vseg == vseg && lsn <= self.cache_valid_to => self.cache.bytes(),
            None => return Ok(Lookup::OnDevice),
        };
        let at = ((vblock - vseg * self.geo.segment_blocks) * BS) as usize;
        let block = &bytes[at..at + BLOCK_SIZE];
        // Step over the records before it by their headers alone, then verify the one asked for in
        // full, checksum included: one checksum per read, not one per record before it in the
        // block. A damaged header before it can only lead to a failed search or a failed checksum.
        let mut off = 0;
        while off + RECORD_HEADER_LEN <= BLOCK_SIZE {
            let h = peek_header(block, off);
            if h.lsn == 0 || h.lsn > lsn || off + h.total_len() > BLOCK_SIZE {
                break;
            }
            if h.lsn < lsn {
                off += h.total_len();
                continue;
            }
            let Slot::Record(h) = decode_record(block, off) else {
                return Err(LogError::Corrupt { lsn, why: "checksum or length" });
            };
            let payload = &block[off + RECORD_HEADER_LEN..off + h.total_len()];
            let meta = RecordMeta { lsn, term: h.term, kind: h.kind, len: h.len };
            return Ok(Lookup::Ready(Record { meta, payload }));
        }
        Err(LogError::Corrupt { lsn, why: "not found in the block the index names" })
    }

    /// Starts bringing record `lsn`'s segment into the read cache without blocking: one device
    /// read of the segment, submitted now if none is in flight, completed by `poll`. Returns
    /// whether `lookup(lsn)` answers from memory now (`true`: ready; `false`: call again after
    /// `poll`). A record whose write is still in flight is not read until it landed. Never
    /// allocates. Errors as `lookup`'s.
    pub fn prefetch(&mut self, lsn: Lsn) -> Result<bool, LogError> {
        if let Lookup::Ready(_) = self.lookup(lsn)? {
            return Ok(true);
        }
        if self.fetch.is_some() || lsn > self.durable_lsn {
            return Ok(false);
        }
        let vseg = self.geo.segment_of(self.block_of(lsn));
        let lba = self.geo.lba(vseg * self.geo.segment_blocks);
        let tag = TAG_FETCH | self.tag();
        let buf = self.cache.buf.take().expect("cache buffer is home when no fetch is in flight");
        self.cache.vseg = NO_SEGMENT;
        match self.dev.submit_read(tag, lba, buf) {
            Ok(()) => {
                self.counters.reads += 1;
                self.fetch = Some(Fetch { vseg, epoch: self.epoch, valid_to: self.durable_lsn });
            }
            Err(SubmitError::QueueFull(Some(b))) => self.cache.buf = Some(b),
            Err(e) => panic!("read of block {lba} refused: {e} (geometry was validated)"),
        }
        Ok(false)
    }

    /// Brings record `lsn`'s segment into the read cache, blocking on one device read of the
    /// segment (and first on a write of it still in flight) when it is not in memory; then
    /// `lookup(lsn)` answers it. Errors as `lookup`'s.
    pub fn load(&mut self, lsn: Lsn) -> Result<(), LogError> {
        if let Lookup::Ready(_) = self.lookup(lsn)? {
            return Ok(());
        }
        self.spin_until("log write", |s| s.durable_lsn >= lsn)?;
        let vseg = self.geo.segment_of(self.block_of(lsn));
        self.cache.vseg = NO_SEGMENT;
        self.segment_bytes(vseg)?;
        match self.lookup(lsn)? {
            Lookup::Ready(_) => Ok(()),
            Lookup::OnDevice => unreachable!("segment {vseg} was just read"),
        }
    }

    /// Calls `f` with every record from `from` to `to` inclusive, in order; returns how many.
    /// Records staged but not yet durable are included (`to` may be at most `last_lsn()`).
    pub fn replay(&mut self, from: Lsn, to: Lsn, mut f: impl FnMut(Record<'_>)) -> Result<u64, LogError> {
        self.check_poisoned()?;
        if to < from {
            return Ok(0);
        }
        for lsn in [from, to] {
            if lsn < self.first_lsn() || lsn > self.last_lsn() {
                return Err(LogError::Unavailable { lsn, first: self.first_lsn(), last: self.last_lsn() });
            }
        }
        let (mut vblock, mut off) = self.locate(from)?;
        let mut lsn = from;
        let geo = self.geo;
        let seg_blocks = geo.segment_blocks;
        while lsn <= to {
            let vseg = geo.segment_of(vblock);
            let bytes = self.segment_bytes(vseg)?;
            let mut padding = false;
            while lsn <= to && geo.segment_of(vblock) == vseg {
                let at = ((vblock - vseg * seg_blocks) * BS) as usize;
                let block = &bytes[at..at + BLOCK_SIZE];
                match decode_record(block, off) {
                    Slot::Record(h) if h.lsn == lsn => {
                        let body = &block[off + RECORD_HEADER_LEN..off + h.total_len()];
                        let meta = RecordMeta { lsn, term: h.term, kind: h.kind, len: h.len };
                        f(Record { meta, payload: body });
                        lsn += 1;
                        off += h.total_len();
                    }
                    Slot::Empty if off > 0 => {
                        vblock += 1;
                        off = 0;
                    }
                    // Perhaps damaged zero padding (the scan at open stepped over it): decided
                    // below, once the block's bytes are no longer borrowed.
                    Slot::Malformed(_) if off > 0 => {
                        padding = true;
                        break;
                    }
                    Slot::Record(_) => {
                        return Err(LogError::Corrupt { lsn, why: "another lsn in its place" })
                    }
                    Slot::Empty => return Err(LogError::Corrupt { lsn, why: "an empty block in its place" }),
                    Slot::Malformed(_) => return Err(LogError::Corrupt { lsn, why: "checksum or length" }),
                }
            }
            if padding {
                if !self.next_block_starts_with(vblock, lsn) {
                    return Err(LogError::Corrupt { lsn, why: "checksum or length" });
                }
                vblock += 1;
                off = 0;
            }
        }
        Ok(to + 1 - from)
    }

    /// Whether the block after `vblock` is in the log and starts with record `lsn`.
    fn next_block_starts_with(&self, vblock: u64, lsn: Lsn) -> bool {
        let next = vblock + 1;
        next * BS < self.tail_pos && self.block_first_lsn[(next % self.geo.region_blocks) as usize] == lsn
    }

    /// Where record `lsn` (in the log) starts: (virtual block, byte offset in it).
    pub fn locate(&mut self, lsn: Lsn) -> Result<(u64, usize), LogError> {
        assert!(lsn >= self.first_lsn() && lsn <= self.last_lsn(), "locate of lsn {lsn} outside the log");
        let vblock = self.block_of(lsn);
        let vseg = self.geo.segment_of(vblock);
        let seg_blocks = self.geo.segment_blocks;
        let bytes = self.segment_bytes(vseg)?;
        let at = ((vblock - vseg * seg_blocks) * BS) as usize;
        let block = &bytes[at..at + BLOCK_SIZE];
        let mut off = 0;
        while off + RECORD_HEADER_LEN <= BLOCK_SIZE {
            let h = peek_header(block, off);
            if h.lsn == lsn {
                return Ok((vblock, off));
            }
            if h.lsn == 0 || h.lsn > lsn || off + h.total_len() > BLOCK_SIZE {
                break;
            }
            off += h.total_len();
        }
        Err(LogError::Corrupt { lsn, why: "not found in the block the index names" })
    }

    /// The device block and byte offset where record `lsn` starts (for inspection and tests).
    pub fn device_offset(&mut self, lsn: Lsn) -> Result<u64, LogError> {
        let (vblock, off) = self.locate(lsn)?;
        Ok(self.geo.lba(vblock) * BS + off as u64)
    }

    /// The virtual block holding `lsn` (in the log), by binary search over the block index.
    pub(super) fn block_of(&self, lsn: Lsn) -> u64 {
        debug_assert!(lsn >= self.first_lsn && lsn <= self.last_lsn());
        let region = self.geo.region_blocks;
        let (mut lo, mut hi) = (self.start_block, (self.tail_pos - 1) / BS + 1);
        debug_assert!(self.block_first_lsn[(lo % region) as usize] <= lsn);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.block_first_lsn[(mid % region) as usize] <= lsn {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The bytes of segment `vseg` (live), from memory or read into the cache.
    fn segment_bytes(&mut self, vseg: u64) -> Result<&[u8], LogError> {
        if let Some(i) = self.segment_index(vseg) {
            return Ok(self.segs[i].bytes());
        }
        if self.cache.vseg != vseg {
            self.cache.vseg = NO_SEGMENT;
            let lba = self.geo.lba(vseg * self.geo.segment_blocks);
            // Records durable before the read was submitted are on the device whole.
            let valid_to = self.durable_lsn;
            self.read_blocking(BufSlot::Cache, lba)?;
            self.cache.vseg = vseg;
            self.cache_valid_to = valid_to;
        }
        Ok(self.cache.bytes())
    }
}
