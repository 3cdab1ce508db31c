//! Opening the log: superblock choice, the forward scan, cutting the torn tail, the new epoch.
//!
//! `open` reads both superblock copies and takes the valid one with the higher sequence (or formats
//! a blank device), then scans forward from its `log_start_block`, one segment read at a time,
//! verifying every record: checksum, lsn contiguity (the first must be `log_start_lsn`), terms never
//! decreasing, epochs never decreasing, and no record of an older epoch at or past the superblock's
//! `epoch_first_lsn`. An all-zero header ends a block (the writer moved on); an empty block ends the
//! log. The scan stops at the first record that fails, and the log ends just before it: the tail
//! segment's image is loaded with everything after that point zeroed, so the next flush rewrites
//! the tail block without the garbage. Before `open` returns it writes a superblock with a new
//! epoch (higher than any seen) whose `epoch_first_lsn` is the next lsn: from then on every byte
//! past the cut is dead on the device, whatever is appended later and wherever it lands. The chosen
//! copy's metadata section (`Ual::meta`) is kept and carried by that write, so a version-1 device
//! (no metadata section) is upgraded to version 2 by its first open.
//!
//! Invariants: open is read-only until the scan is done; it writes a superblock copy (never the one
//! it chose) and, after a torn cut, only blocks past the cut that hold no live record (the erase);
//! it spins the device (start-up only).

use super::format::{decode_record, Slot, Superblock, SuperblockError};
use super::{
    BufSlot, CopyState, Geometry, LogError, Lsn, SegmentBuf, Ual, UalConfig, UalCounters, BS, NO_SEGMENT,
};
use std::collections::VecDeque;
use vigil_pmd::block::{BlockBuf, BlockBufPool, BlockIo, BLOCK_SIZE};
use vigil_pmd::Batch;

/// Why the scan at open stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanStop {
    /// An empty block where the next record would be: the log ended cleanly.
    End,
    /// Every block of the ring held live records (no free segment until a checkpoint).
    RingFull,
    /// A record failing its checksum or with an impossible length: a torn or corrupt write, cut.
    Torn,
    /// A valid record with a higher lsn than the next expected: records in between were lost
    /// (a write landed partly), cut.
    Gap,
    /// A valid record that belongs to an earlier lap of the ring or to a discarded suffix (older
    /// lsn, older epoch, lower term): the log ended there.
    Stale,
}

/// What `open` found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenReport {
    /// The device was blank and has been formatted.
    pub formatted: bool,
    /// The superblock copy used (0 or 1) and its sequence.
    pub superblock_copy: usize,
    /// Its sequence number.
    pub superblock_sequence: u64,
    /// The other copy was invalid (torn, corrupt or blank) and was not considered.
    pub other_copy_invalid: bool,
    /// Records recovered.
    pub records: u64,
    /// The first readable lsn.
    pub first_lsn: Lsn,
    /// The last lsn recovered (`first_lsn - 1` if none).
    pub last_lsn: Lsn,
    /// The last record's term.
    pub last_term: u64,
    /// Why the scan stopped.
    pub stop: ScanStop,
    /// The first lsn cut away when the scan stopped at a torn record or a gap.
    pub truncated_at_lsn: Option<Lsn>,
    /// Non-zero bytes from the cut to the end of its block (what the next tail rewrite erases).
    pub truncated_bytes: u64,
    /// The epoch records are appended in from now on.
    pub epoch: u32,
}

impl<D: BlockIo> Ual<D> {
    /// Opens the log on `dev`: reads the superblocks, scans and verifies the live region, cuts a
    /// torn tail and starts a new epoch. Spins the device until done (start-up only). All memory the
    /// log will ever use is allocated here.
    pub fn open(dev: D, cfg: UalConfig) -> Result<(Self, OpenReport), LogError> {
        cfg.validate(dev.capacity_blocks())?;
        let segment_blocks = u64::from(cfg.segment_blocks);
        let segment_count = u64::from(cfg.segment_count);
        let geo = Geometry { segment_blocks, segment_count, region_blocks: segment_blocks * segment_count };
        let classes = cfg.write_blocks_max.trailing_zeros() + 1;
        let pools =
            (0..classes).map(|k| BlockBufPool::new(cfg.writes_in_flight_max as usize, 1 << k)).collect();
        let image = || SegmentBuf { buf: Some(BlockBuf::new(segment_blocks as usize)), vseg: NO_SEGMENT };
        let queue_depth = dev.queue_depth().max(1);
        let invalid = CopyState { valid: false, sequence: 0, log_start_block: 0 };
        let blank = Superblock {
            sequence: 0,
            segment_blocks: cfg.segment_blocks,
            segment_count: cfg.segment_count,
            log_start_block: 0,
            log_start_lsn: 1,
            snapshot_lsn: 0,
            snapshot_term: 0,
            epoch: 0,
            epoch_first_lsn: 1,
        };
        let mut ual = Ual {
            dev,
            cfg,
            geo,
            first_lsn: 1,
            start_block: 0,
            next_lsn: 1,
            last_term: 0,
            durable_lsn: 0,
            epoch: 0,
            snapshot_lsn: 0,
            snapshot_term: 0,
            tail_pos: 0,
            submitted_pos: 0,
            prev_segment_last_lsn: 0,
            segs: [image(), image()],
            cur: 0,
            cache: image(),
            block_first_lsn: vec![0; geo.region_blocks as usize],
            pools,
            in_flight: VecDeque::with_capacity(cfg.writes_in_flight_max as usize),
            completions: Some(Batch::with_capacity(queue_depth)),
            next_tag: 0,
            sb: blank,
            copies: [invalid; 2],
            sb_buf: Some(BlockBuf::new(1)),
            sb_in_flight: None,
            meta: Vec::with_capacity(super::META_MAX),
            meta_seq: 0,
            meta_durable_seq: 0,
            meta_dirty: false,
            read_done: None,
            poisoned: None,
            counters: UalCounters::default(),
        };
        ual.drain_foreign_completions();

        let mut decoded = [Err(SuperblockError::Blank); 2];
        let mut metas = [Vec::new(), Vec::new()];
        for (copy, slot) in decoded.iter_mut().enumerate() {
            ual.read_blocking(BufSlot::Superblock, copy as u64)?;
            let bytes = ual.sb_buf.as_deref().expect("home");
            *slot = Superblock::decode_with_meta(bytes).map(|(sb, meta)| {
                metas[copy] = meta.to_vec();
                sb
            });
        }
        let mut formatted = false;
        let chosen = match (decoded[0], decoded[1]) {
            (Ok(a), Ok(b)) => usize::from(b.sequence > a.sequence),
            (Ok(_), Err(_)) => 0,
            (Err(_), Ok(_)) => 1,
            (Err(SuperblockError::Blank), Err(SuperblockError::Blank)) if cfg.format_if_blank => {
                ual.write_superblock_blocking(Superblock { sequence: 1, ..blank })?;
                decoded[0] = Ok(ual.sb);
                formatted = true;
                0
            }
            (Err(a), Err(b)) => {
                return Err(LogError::NoSuperblock(format!("copy 0: {a:?}, copy 1: {b:?}")));
            }
        };
        let sb = decoded[chosen].expect("chosen copy is valid");
        if sb.segment_blocks != cfg.segment_blocks || sb.segment_count != cfg.segment_count {
            return Err(LogError::Config(format!(
                "segment_blocks/segment_count: the device was formatted with {}x{}, the config says {}x{}",
                sb.segment_blocks, sb.segment_count, cfg.segment_blocks, cfg.segment_count
            )));
        }
        for (copy, d) in decoded.iter().enumerate() {
            if let Ok(s) = d {
                ual.copies[copy] =
                    CopyState { valid: true, sequence: s.sequence, log_start_block: s.log_start_block };
            }
        }
        let other_copy_invalid = decoded[1 - chosen].is_err();
        ual.sb = sb;
        ual.meta.extend_from_slice(&metas[chosen]);
        ual.start_block = sb.log_start_block;
        ual.first_lsn = sb.log_start_lsn;
        ual.snapshot_lsn = sb.snapshot_lsn;
        ual.snapshot_term = sb.snapshot_term;

        let scan = ual.scan()?;
        ual.cut_tail(scan.tail_pos)?;
        ual.next_lsn = scan.next_lsn;
        ual.last_term = scan.last_term;
        ual.durable_lsn = scan.next_lsn - 1;
        ual.prev_segment_last_lsn = scan.next_lsn - 1;

        let epoch = scan.max_epoch.checked_add(1).expect("epoch space exhausted");
        let new_sb = Superblock { sequence: sb.sequence + 1, epoch, epoch_first_lsn: scan.next_lsn, ..sb };
        ual.write_superblock_blocking(new_sb)?;
        ual.epoch = epoch;
        if let Some(cut_block) = scan.cut_block {
            ual.erase_after_cut(cut_block)?;
        }

        let report = OpenReport {
            formatted,
            superblock_copy: chosen,
            superblock_sequence: sb.sequence,
            other_copy_invalid,
            records: scan.records,
            first_lsn: ual.first_lsn,
            last_lsn: ual.last_lsn(),
            last_term: ual.last_term,
            stop: scan.stop,
            truncated_at_lsn: scan.truncated_at_lsn,
            truncated_bytes: scan.truncated_bytes,
            epoch,
        };
        Ok((ual, report))
    }

    /// Overwrites the torn writes' leftovers: from the cut block, as far as every write that can
    /// have been in flight at the crash can have reached (`writes_in_flight_max × write_blocks_max`
    /// blocks, across segment boundaries), with the tail image (the valid records, then zeros; a
    /// segment not in memory is all zeros). Never past the ring: the window stops before the first
    /// block of the oldest segment a durable superblock copy names live, one lap on. The leftovers
    /// are already dead (the new epoch), but erasing them means the next open does not report the
    /// same cut again.
    ///
    /// Why the window is enough: the log writes sequentially, each write starting at or after the
    /// block where the one before it ended, so the writes in flight at the crash cover at most
    /// `writes_in_flight_max × write_blocks_max` blocks from the start of the first of them, and the
    /// cut is in one of them (everything before the first landed whole).
    fn erase_after_cut(&mut self, cut_block: u64) -> Result<(), LogError> {
        let reach = u64::from(self.cfg.writes_in_flight_max) * u64::from(self.cfg.write_blocks_max);
        let ring_end = (self.reclaim_segment() + self.geo.segment_count) * self.geo.segment_blocks;
        let end = (cut_block + reach).min(ring_end);
        let write_max = u64::from(self.cfg.write_blocks_max);
        let mut at = cut_block;
        while at < end {
            let seg_end = (self.geo.segment_of(at) + 1) * self.geo.segment_blocks;
            let room = (end - at).min(seg_end - at).min(write_max);
            let blocks = 1u64 << (63 - room.leading_zeros());
            self.rewrite_blocks_blocking(at, blocks)?;
            at += blocks;
        }
        Ok(())
    }

    /// Drops completions of requests a previous owner of the device left in flight.
    fn drain_foreign_completions(&mut self) {
        let mut batch = self.completions.take().expect("home");
        while self.dev.poll_completions(&mut batch) > 0 {
            batch.clear();
        }
        self.completions = Some(batch);
    }

    /// The forward scan from the chosen superblock's start.
    fn scan(&mut self) -> Result<ScanResult, LogError> {
        let sb = self.sb;
        let geo = self.geo;
        let region = geo.region_blocks;
        let start_seg = geo.segment_of(sb.log_start_block);
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
        };
        let mut last_epoch = 0u32;
        let mut i = 0;
        'scan: for vseg in start_seg..start_seg + geo.segment_count {
            self.segs[i].vseg = NO_SEGMENT;
            self.read_blocking(BufSlot::Segment(i), geo.lba(vseg * geo.segment_blocks))?;
            self.segs[i].vseg = vseg;
            let bytes = self.segs[i].buf.as_deref().expect("home");
            for b in 0..geo.segment_blocks {
                let vblock = vseg * geo.segment_blocks + b;
                let block = &bytes[(b * BS) as usize..][..BLOCK_SIZE];
                let mut off = 0;
                loop {
                    let stop = match decode_record(block, off) {
                        Slot::Empty if off > 0 => break,
                        Slot::Empty => ScanStop::End,
                        Slot::Malformed(_) => ScanStop::Torn,
                        Slot::Record(h) => {
                            r.max_epoch = r.max_epoch.max(h.epoch);
                            let dead = h.epoch < sb.epoch && h.lsn >= sb.epoch_first_lsn;
                            if h.epoch < last_epoch || dead || h.lsn < r.next_lsn || h.term < r.last_term {
                                ScanStop::Stale
                            } else if h.lsn > r.next_lsn {
                                ScanStop::Gap
                            } else {
                                if off == 0 {
                                    self.block_first_lsn[(vblock % region) as usize] = h.lsn;
                                }
                                r.records += 1;
                                r.next_lsn += 1;
                                r.last_term = h.term;
                                last_epoch = h.epoch;
                                off += h.total_len();
                                r.tail_pos = vblock * BS + off as u64;
                                continue;
                            }
                        }
                    };
                    r.stop = stop;
                    if matches!(stop, ScanStop::Torn | ScanStop::Gap) {
                        r.cut_block = Some(vblock);
                        r.truncated_at_lsn = Some(r.next_lsn);
                        r.truncated_bytes = block[off..].iter().filter(|&&x| x != 0).count() as u64;
                    }
                    break 'scan;
                }
            }
            i = 1 - i;
        }
        Ok(r)
    }
}

/// What the scan found.
#[derive(Debug)]
struct ScanResult {
    tail_pos: u64,
    next_lsn: Lsn,
    last_term: u64,
    max_epoch: u32,
    records: u64,
    stop: ScanStop,
    truncated_at_lsn: Option<Lsn>,
    truncated_bytes: u64,
    /// The block where a torn record or a gap was found.
    cut_block: Option<u64>,
}

/// How many segments of `segment_blocks` blocks fit a device of `capacity_blocks` (for tools and
/// config checks).
pub fn segments_that_fit(capacity_blocks: u64, segment_blocks: u32) -> u64 {
    capacity_blocks.saturating_sub(super::SUPERBLOCK_BLOCKS) / u64::from(segment_blocks.max(1))
}
