//! The forward scan at open, and the decision between a torn tail and corruption. Read-only: it
//! reads segments into the log's buffers and fills the block index, and writes nothing.
//!
//! From the chosen superblock's `log_start_block` every record must decode (checksum, length),
//! continue the log (`lsn == expected`), and not go back (term, epoch) nor be dead (an older epoch
//! at or past `epoch_first_lsn`). When one fails at expected lsn `L` in block `P`:
//! - **padding**: the failure is at an offset > 0 and block `P + 1` starts with a valid record of
//!   lsn `L`: the damaged bytes were the block's zero padding (records never span blocks); counted,
//!   the scan goes on;
//! - **covered**: `L <= covered` (the caller's snapshot, or the superblock's, covers it): the scan
//!   resynchronises at the first later block whose first record is valid, not stale, with lsn
//!   `M > L` and `M - 1 <= covered`, and records the skipped range; records `L..M` are never read
//!   again (the snapshot holds their effect);
//! - otherwise it looks past the failure (read-only) for valid, live records with lsn > `L` and
//!   takes the durable watermark `W` (the highest lsn a valid record or the superblock says was
//!   durable). `L <= W`, or such a record beyond the reach of the writes that can have been in
//!   flight at a crash: **corruption** (acknowledged records are damaged); else, when the device
//!   writes 4 KiB blocks whole (`atomic_write_bytes = 4096`), a checksum failure (`Torn`) is
//!   **corruption** too, unless the rest of its block is zero padding with a flipped bit (at most
//!   `PADDING_FLIP_BYTES_MAX` non-zero bytes) or the block provably holds an old image (a valid
//!   stale record follows the failure in it); else a **torn tail**, cut at `L` as always.
//!
//! Why 4096 makes a checksum failure corruption: the log writes whole blocks only, and every block
//! image it writes is self-consistent (valid records, then zeros). A crash leaves each block wholly
//! old or wholly new, so a torn write shows as End, Stale or Gap, never as a failed checksum.
//!
//! Invariants: the block index stays monotonic over skipped blocks; the scan never goes past one
//! full ring from the start; nothing here writes to the device.

use super::format::{decode_record, RecordHeader, Slot, Superblock, RECORD_HEADER_LEN};
use super::recovery::{CorruptionReport, RecoverOptions, ScanStop, SkippedRange};
use super::{BufSlot, LogError, Lsn, Ual, BS, NO_SEGMENT};
use vigil_pmd::block::{BlockIo, BLOCK_SIZE};

/// Non-zero bytes from a checksum failure to its block's end that are still read as zero padding
/// with a flipped bit (or two) rather than a record: a real record header has at least four
/// non-zero bytes (lsn, term, epoch and kind are all >= 1) plus its checksum.
pub(super) const PADDING_FLIP_BYTES_MAX: u64 = 2;

/// Why a checksum failure is corruption on a device that writes 4 KiB blocks whole.
const WHY_CHECKSUM: &str =
    "it fails its checksum, and a crash cannot tear a 4 KiB block (storage.atomic_write_bytes = 4096)";

/// What the scan found.
#[derive(Debug)]
pub(super) struct ScanResult {
    pub tail_pos: u64,
    pub next_lsn: Lsn,
    pub last_term: u64,
    pub max_epoch: u32,
    pub records: u64,
    pub stop: ScanStop,
    pub truncated_at_lsn: Option<Lsn>,
    pub truncated_bytes: u64,
    /// The block where a torn record or a gap was found (cut there).
    pub cut_block: Option<u64>,
    /// The highest lsn the superblock or any valid live record says was durable.
    pub watermark: Lsn,
    /// Covered records that were damaged and skipped.
    pub skipped: Option<SkippedRange>,
    /// Virtual blocks [first, resync) holding no readable record of the log (the skipped range).
    pub hole_blocks: Option<(u64, u64)>,
    /// Blocks whose padding was damaged (the scan stepped over them).
    pub padding_damaged_blocks: u64,
    /// The scan found acknowledged records damaged: the log must not be opened (unless the caller
    /// accepted the loss at exactly this lsn).
    pub corruption: Option<CorruptionReport>,
    /// Corruption at exactly the lsn the caller accepted to lose: cut like a torn tail.
    pub accepted: Option<CorruptionReport>,
}

/// How a record relates to the log scanned so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fit {
    /// The next record of the log.
    Next,
    /// A later lsn, otherwise acceptable: records in between are missing.
    Gap,
    /// An older lap, a discarded suffix, or going back in term or epoch.
    Stale,
}

/// Where a record failed: the scan's stop, the block and offset, the non-zero bytes from there to
/// the block's end, and the block from which a cut erases.
#[derive(Clone, Copy, Debug)]
struct Failure {
    stop: ScanStop,
    block: u64,
    off: usize,
    nonzero: u64,
    cut_block: u64,
    /// Corruption whatever the watermark says, and why.
    corrupt: Option<&'static str>,
}

/// What lies past a failure.
#[derive(Clone, Copy, Debug, Default)]
struct Beyond {
    /// Valid live records with lsn > L.
    count: u64,
    /// The highest of them.
    highest: Option<Lsn>,
    /// The first block holding one.
    first_block: Option<u64>,
    /// The farthest block holding one.
    last_block: Option<u64>,
    /// The highest durable claim among them.
    claim: Lsn,
}

impl ScanResult {
    /// Records the skip of lsns `from..to` from block `vblock` (failure at `off`) to `resync`.
    fn skip(&mut self, from: Lsn, to: Lsn, vblock: u64, off: usize, resync: u64) {
        let first_block = if off == 0 { vblock } else { vblock + 1 };
        let skipped = self.skipped.get_or_insert(SkippedRange {
            first_lsn: from,
            last_lsn: to - 1,
            records: 0,
            blocks: 0,
        });
        skipped.last_lsn = to - 1;
        skipped.records += to - from;
        skipped.blocks += resync - vblock;
        let first_hole = self.hole_blocks.map_or(first_block, |(f, _)| f);
        self.hole_blocks = Some((first_hole, resync));
    }

    fn fit(&self, h: &RecordHeader, sb: &Superblock, last_epoch: u32) -> Fit {
        let dead = h.epoch < sb.epoch && h.lsn >= sb.epoch_first_lsn;
        if h.epoch < last_epoch || dead || h.lsn < self.next_lsn || h.term < self.last_term {
            Fit::Stale
        } else if h.lsn > self.next_lsn {
            Fit::Gap
        } else {
            Fit::Next
        }
    }
}

impl<D: BlockIo> Ual<D> {
    /// The bytes of virtual segment `vseg`: from a segment image or the cache, else read. `main`
    /// (the forward scan) reads into image `vseg % 2`, so the segment before stays in memory;
    /// look-ahead reads go to the cache.
    fn scan_segment(&mut self, vseg: u64, main: bool) -> Result<&[u8], LogError> {
        if let Some(i) = self.segment_index(vseg) {
            return Ok(self.segs[i].bytes());
        }
        if self.cache.vseg == vseg {
            return Ok(self.cache.bytes());
        }
        let lba = self.geo.lba(vseg * self.geo.segment_blocks);
        if main {
            let i = (vseg % 2) as usize;
            self.segs[i].vseg = NO_SEGMENT;
            self.read_blocking(BufSlot::Segment(i), lba)?;
            self.segs[i].vseg = vseg;
            Ok(self.segs[i].bytes())
        } else {
            self.cache.vseg = NO_SEGMENT;
            self.read_blocking(BufSlot::Cache, lba)?;
            self.cache.vseg = vseg;
            Ok(self.cache.bytes())
        }
    }

    /// The bytes of virtual block `vblock`.
    fn scan_block(&mut self, vblock: u64, main: bool) -> Result<&[u8], LogError> {
        let seg_blocks = self.geo.segment_blocks;
        let vseg = vblock / seg_blocks;
        let bytes = self.scan_segment(vseg, main)?;
        let at = ((vblock - vseg * seg_blocks) * BS) as usize;
        Ok(&bytes[at..at + BLOCK_SIZE])
    }

    /// The slot at byte `off` of virtual block `vblock`.
    fn scan_slot(&mut self, vblock: u64, off: usize, main: bool) -> Result<Slot, LogError> {
        Ok(decode_record(self.scan_block(vblock, main)?, off))
    }

    /// Non-zero bytes from `off` to the end of `vblock` (what a cut there erases).
    fn nonzero_from(&mut self, vblock: u64, off: usize) -> Result<u64, LogError> {
        let block = self.scan_block(vblock, true)?;
        Ok(block[off.min(BLOCK_SIZE)..].iter().filter(|&&x| x != 0).count() as u64)
    }

    /// The forward scan from the chosen superblock's start (see the module header).
    pub(super) fn scan(&mut self, opts: RecoverOptions) -> Result<ScanResult, LogError> {
        let sb = self.sb;
        let region = self.geo.region_blocks;
        let end = sb.log_start_block + region;
        let covered = opts.covered_lsn.max(sb.snapshot_lsn);
        let mut r = ScanResult {
            tail_pos: sb.log_start_block * BS,
            next_lsn: sb.log_start_lsn,
            last_term: if sb.snapshot_lsn + 1 == sb.log_start_lsn { sb.snapshot_term } else { 0 },
            max_epoch: sb.epoch,
            records: 0,
            stop: ScanStop::RingFull,
            truncated_at_lsn: None,
            truncated_bytes: 0,
            cut_block: None,
            watermark: sb.durable_lsn,
            skipped: None,
            hole_blocks: None,
            padding_damaged_blocks: 0,
            corruption: None,
            accepted: None,
        };
        let mut last_epoch = 0u32;
        let (mut vblock, mut off) = (sb.log_start_block, 0usize);
        loop {
            if vblock >= end {
                r.stop = ScanStop::RingFull;
                return Ok(r);
            }
            let failure = match self.scan_slot(vblock, off, true)? {
                Slot::Empty if off > 0 => {
                    (vblock, off) = (vblock + 1, 0);
                    continue;
                }
                Slot::Empty => {
                    r.stop = ScanStop::End;
                    return Ok(r);
                }
                Slot::Malformed(_) => ScanStop::Torn,
                Slot::Record(h) => {
                    r.max_epoch = r.max_epoch.max(h.epoch);
                    match r.fit(&h, &sb, last_epoch) {
                        Fit::Stale => {
                            r.stop = ScanStop::Stale;
                            return Ok(r);
                        }
                        Fit::Gap => ScanStop::Gap,
                        Fit::Next => {
                            if off == 0 {
                                self.block_first_lsn[(vblock % region) as usize] = h.lsn;
                            }
                            r.records += 1;
                            r.next_lsn += 1;
                            r.last_term = h.term;
                            r.watermark = r.watermark.max(h.durable_claim());
                            last_epoch = h.epoch;
                            off += h.total_len();
                            r.tail_pos = vblock * BS + off as u64;
                            continue;
                        }
                    }
                }
            };
            let lsn = r.next_lsn;
            if failure == ScanStop::Torn && off > 0 && vblock + 1 < end {
                if let Slot::Record(n) = self.scan_slot(vblock + 1, 0, false)? {
                    if r.fit(&n, &sb, last_epoch) == Fit::Next {
                        r.padding_damaged_blocks += 1;
                        (vblock, off) = (vblock + 1, 0);
                        continue;
                    }
                }
            }
            if lsn <= covered {
                // A gap at a block's start: that block may itself resume the log.
                let from = if off == 0 && failure == ScanStop::Gap { vblock } else { vblock + 1 };
                match self.resync(from, end, &r, &sb, last_epoch)? {
                    Some((resync, m)) if m - 1 <= covered => {
                        for b in if off == 0 { vblock } else { vblock + 1 }..resync {
                            // Monotonic over the hole: no lsn below L is looked up past block P.
                            self.block_first_lsn[(b % region) as usize] = lsn;
                        }
                        r.skip(lsn, m, vblock, off, resync);
                        r.next_lsn = m;
                        (vblock, off) = (resync, 0);
                        continue;
                    }
                    _ => {
                        // No block resumes the log within what the snapshot covers: the first live
                        // lsn, `covered + 1`, is what is missing. Skip the covered ones and decide
                        // about it, the cut (if any) going right after the damaged block.
                        // Live records sharing the damaged block cannot be stepped to (a damaged
                        // length hides where the next record starts, and reads walk a block from
                        // its start): never cut them silently, refuse (found by the simulator,
                        // seed 99239146113420).
                        let mut within = Beyond::default();
                        self.look_within(vblock, off, covered, &sb, &mut within)?;
                        let corrupt = (within.count > 0).then_some(
                            "live records follow it in its block, where they cannot be read past it",
                        );
                        r.skip(lsn, covered + 1, vblock, off, vblock + 1);
                        r.next_lsn = covered + 1;
                        r.tail_pos = (vblock + 1) * BS;
                        let at = Failure {
                            stop: failure,
                            block: vblock,
                            off,
                            // The failed record is covered; what is decided is lsn `covered + 1`.
                            nonzero: 0,
                            cut_block: vblock + 1,
                            corrupt,
                        };
                        let lost = self.decide(&mut r, at, end, opts)?;
                        if lost == 0 && r.corruption.is_none() && r.accepted.is_none() {
                            // Nothing follows: the log simply resumes after the snapshot.
                            (r.stop, r.truncated_at_lsn, r.cut_block) = (ScanStop::End, None, None);
                        }
                        return Ok(r);
                    }
                }
            }
            let nonzero = self.nonzero_from(vblock, off)?;
            let at = Failure { stop: failure, block: vblock, off, nonzero, cut_block: vblock, corrupt: None };
            self.decide(&mut r, at, end, opts)?;
            return Ok(r);
        }
    }

    /// The first block from `from` (before `end`) whose first record is valid and could
    /// continue the log past a hole: (block, its lsn). `None` if the first valid first record met
    /// is stale (the log ended) or there is none.
    fn resync(
        &mut self,
        from: u64,
        end: u64,
        r: &ScanResult,
        sb: &Superblock,
        last_epoch: u32,
    ) -> Result<Option<(u64, Lsn)>, LogError> {
        for b in from..end {
            if let Slot::Record(h) = self.scan_slot(b, 0, false)? {
                return Ok(match r.fit(&h, sb, last_epoch) {
                    Fit::Gap => Some((b, h.lsn)),
                    Fit::Next | Fit::Stale => None,
                });
            }
        }
        Ok(None)
    }

    /// Valid live records with lsn > `lsn` after the failure in `vblock`, up to `end` (the rest of
    /// the ring: corruption may lie anywhere before it; this costs one more read of the ring at a
    /// start after a torn tail, and a checksum only of blocks that may belong to the log).
    fn look_beyond(
        &mut self,
        vblock: u64,
        off: usize,
        end: u64,
        lsn: Lsn,
        sb: &Superblock,
    ) -> Result<Beyond, LogError> {
        let mut found = Beyond::default();
        self.look_within(vblock, off, lsn, sb, &mut found)?;
        for b in vblock + 1..end {
            let mut off = 0;
            while let Slot::Record(h) = self.scan_slot(b, off, false)? {
                let dead = h.epoch < sb.epoch && h.lsn >= sb.epoch_first_lsn;
                if off == 0 && (dead || h.lsn <= lsn) {
                    // An older lap or a discarded suffix: the rest of the block is too (a block's
                    // lsns only grow); no need to verify its every record.
                    break;
                }
                if !dead && h.lsn > lsn {
                    found.count += 1;
                    found.highest = Some(found.highest.map_or(h.lsn, |x| x.max(h.lsn)));
                    found.first_block.get_or_insert(b);
                    found.last_block = Some(b);
                    found.claim = found.claim.max(h.durable_claim());
                }
                off += h.total_len();
            }
        }
        Ok(found)
    }

    /// Valid live records with lsn > `lsn` in the rest of the failing block, from the failure's
    /// offset on. A damaged record's length cannot be trusted, so every byte offset is tried (a
    /// false match needs a CRC-32C collision): the records after a damaged one in its own block
    /// carry durable claims too, and when they cover `lsn`, the damage is corruption, not a torn
    /// write. At most one block's offsets, checked only after a failure.
    fn look_within(
        &mut self,
        vblock: u64,
        mut off: usize,
        lsn: Lsn,
        sb: &Superblock,
        found: &mut Beyond,
    ) -> Result<(), LogError> {
        while off + RECORD_HEADER_LEN <= BLOCK_SIZE {
            match self.scan_slot(vblock, off, false)? {
                Slot::Record(h) if !(h.epoch < sb.epoch && h.lsn >= sb.epoch_first_lsn) && h.lsn > lsn => {
                    found.count += 1;
                    found.highest = Some(found.highest.map_or(h.lsn, |x| x.max(h.lsn)));
                    found.first_block.get_or_insert(vblock);
                    found.last_block = Some(found.last_block.map_or(vblock, |b| b.max(vblock)));
                    found.claim = found.claim.max(h.durable_claim());
                    off += h.total_len();
                }
                _ => off += 1,
            }
        }
        Ok(())
    }

    /// Whether a checksum failure at expected lsn `lsn` (byte `off` of `vblock`, `nonzero` non-zero
    /// bytes from there to the block's end) can only be media damage: the device writes 4 KiB
    /// blocks whole (`atomic_write_bytes`), so a crash leaves a block wholly old or wholly new and
    /// every image the log writes is self-consistent. Not damage to anything: zero padding with at
    /// most `PADDING_FLIP_BYTES_MAX` flipped bytes (no record was there), or a block whose valid
    /// records after the failure are stale (an old lap or a discarded suffix: an old image, whose
    /// damage loses nothing; a new image holding `lsn` has only live records above it after it).
    /// `nonzero` is 0 where the record decided is not the one that failed (the covered path).
    fn checksum_failure_is_damage(
        &mut self,
        failure: ScanStop,
        vblock: u64,
        off: usize,
        nonzero: u64,
        lsn: Lsn,
        sb: &Superblock,
    ) -> Result<bool, LogError> {
        if failure != ScanStop::Torn
            || self.cfg.atomic_write_bytes < BLOCK_SIZE as u32
            || nonzero <= PADDING_FLIP_BYTES_MAX
        {
            return Ok(false);
        }
        Ok(!self.stale_within(vblock, off, lsn, sb)?)
    }

    /// Whether a valid record that is stale for expected lsn `lsn` (lower, or dead by epoch) lies
    /// in `vblock` after byte `off` (every offset tried, as in `look_within`).
    fn stale_within(
        &mut self,
        vblock: u64,
        mut off: usize,
        lsn: Lsn,
        sb: &Superblock,
    ) -> Result<bool, LogError> {
        while off + RECORD_HEADER_LEN <= BLOCK_SIZE {
            match self.scan_slot(vblock, off, false)? {
                Slot::Record(h) if h.lsn < lsn || (h.epoch < sb.epoch && h.lsn >= sb.epoch_first_lsn) => {
                    return Ok(true);
                }
                Slot::Record(h) => off += h.total_len(),
                _ => off += 1,
            }
        }
        Ok(false)
    }

    /// A failure at the expected lsn, not padding and not covered: a torn tail (cut) or
    /// corruption (refused, unless the caller accepts the loss at exactly this lsn).
    /// Returns how many valid live records with a higher lsn follow (what a cut loses).
    fn decide(
        &mut self,
        r: &mut ScanResult,
        at: Failure,
        end: u64,
        opts: RecoverOptions,
    ) -> Result<u64, LogError> {
        let Failure { stop: failure, block: vblock, off, nonzero, cut_block, corrupt } = at;
        let sb = self.sb;
        let lsn = r.next_lsn;
        // Live records with lsn L itself count as lost when L is the first live lsn after damage
        // the snapshot covers (`corrupt` is set only there).
        let above = if corrupt.is_some() { lsn - 1 } else { lsn };
        let beyond = self.look_beyond(vblock, off, end, above, &sb)?;
        let watermark = r.watermark.max(beyond.claim);
        let reach = u64::from(self.cfg.writes_in_flight_max) * u64::from(self.cfg.write_blocks_max);
        let why = if corrupt.is_some() {
            corrupt
        } else if lsn <= watermark {
            Some("it was durable (acknowledged) before")
        } else if beyond.last_block.is_some_and(|b| b >= vblock + reach) {
            Some("valid records follow it beyond the reach of any write in flight at a crash")
        } else if self.checksum_failure_is_damage(failure, vblock, off, nonzero, lsn, &sb)? {
            Some(WHY_CHECKSUM)
        } else {
            None
        };
        r.stop = failure;
        r.cut_block = Some(cut_block);
        r.truncated_at_lsn = Some(lsn);
        r.truncated_bytes = nonzero;
        r.watermark = watermark;
        if let Some(why) = why {
            let report = CorruptionReport {
                first_bad_lsn: lsn,
                device_block: self.geo.lba(vblock),
                offset: off as u32,
                why,
                highest_valid_after: beyond.highest,
                valid_after: beyond.count,
                durable_watermark: watermark,
            };
            if opts.accept_loss_from == Some(lsn) {
                r.accepted = Some(report);
            } else {
                r.corruption = Some(report);
            }
        }
        Ok(beyond.count)
    }
}
