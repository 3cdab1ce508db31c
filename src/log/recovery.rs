//! Opening the log in two steps: a read-only decision (`Ual::recover`) and its commit
//! (`Recovered::commit`), so that a start that is refused leaves the device byte for byte as it was.
//!
//! `recover` reads both superblock copies and takes the valid one with the higher sequence (a blank
//! device is recovered as an empty log, to be formatted by the commit when `format_if_blank`), then
//! scans forward from its `log_start_block` (`scan.rs`: checksums, lsn contiguity, terms and epochs,
//! dead records, damaged padding, damaged records a snapshot covers, and the torn-tail-or-corruption
//! decision). Corruption of acknowledged records is `LogError::Corruption` with a report that says
//! what would be lost, unless the caller accepted the loss at exactly that lsn
//! (`RecoverOptions::accept_loss_from`, the operator's `vigil repair --accept-loss`). Otherwise
//! the log ends just before the first record that failed: the tail segment's image is loaded with
//! everything after that point zeroed, in memory only.
//!
//! `commit` does every write: the format of a blank device, a superblock with a new epoch (higher
//! than any seen) whose `epoch_first_lsn` is the next lsn (from then on every byte past the cut is
//! dead on the device, whatever is appended later and wherever it lands) carrying the chosen copy's
//! metadata (so a version 1 or 2 device is upgraded to version 3 by its first commit), and, after a
//! cut, the erase of the blocks the writes in flight at a crash can have reached.
//!
//! Invariants: `recover` writes nothing (not even a format); `commit` writes a superblock copy
//! (never the one chosen) and, after a cut, only blocks past the cut that hold no live record; both
//! spin the device (start-up only).

use super::format::{Superblock, SuperblockError};
use super::scan::ScanResult;
use super::{
    BufSlot, CopyState, Geometry, LogError, Lsn, SegmentBuf, Ual, UalConfig, UalCounters, NO_SEGMENT,
};
use std::collections::VecDeque;
use vigil_pmd::block::{BlockBuf, BlockBufPool, BlockIo};
use vigil_pmd::Batch;

/// Why the scan at open stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanStop {
    /// An empty block where the next record would be: the log ended cleanly.
    End,
    /// Every block of the ring held live records (no free segment until a checkpoint).
    RingFull,
    /// A record failing its checksum or with an impossible length: a torn write, cut (or, when
    /// accepted, corruption cut by the operator's repair). With `atomic_write_bytes = 4096` a crash
    /// cannot cause one, so it is cut only where nothing was lost: zero padding with a flipped bit
    /// or two, or damage in an old block image (otherwise the open refuses it as corruption).
    Torn,
    /// A valid record with a higher lsn than the next expected: records in between were lost
    /// (a write landed partly), cut.
    Gap,
    /// A valid record that belongs to an earlier lap of the ring or to a discarded suffix (older
    /// lsn, older epoch, lower term): the log ended there.
    Stale,
}

/// How to recover.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoverOptions {
    /// The lsn the caller's snapshot covers (0: none); the superblock's own `snapshot_lsn` counts
    /// too. Damaged records at or below it are skipped, not fatal: they are never read again.
    pub covered_lsn: Lsn,
    /// The operator accepts losing everything from this lsn on: corruption found at exactly this
    /// lsn is cut like a torn tail (and the commit erases as after one).
    pub accept_loss_from: Option<Lsn>,
}

/// Damaged records a snapshot covers, skipped by the scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SkippedRange {
    /// The first lsn skipped.
    pub first_lsn: Lsn,
    /// The last lsn skipped.
    pub last_lsn: Lsn,
    /// How many lsns were skipped.
    pub records: u64,
    /// Blocks stepped over (from the damaged one to the block where the scan resumed).
    pub blocks: u64,
}

/// Acknowledged records found damaged: what a start refuses, and what a repair would lose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CorruptionReport {
    /// The first lsn that is damaged (the record expected there fails its checksum, or is missing).
    pub first_bad_lsn: Lsn,
    /// The device block (4 KiB units from the start of the device) where it should be.
    pub device_block: u64,
    /// Its byte offset in that block.
    pub offset: u32,
    /// Why this is corruption and not a torn tail.
    pub why: &'static str,
    /// The highest valid lsn found after it (what a repair would lose up to), if any.
    pub highest_valid_after: Option<Lsn>,
    /// Valid records found after it (lost by a repair).
    pub valid_after: u64,
    /// The highest lsn the log says was durable (acknowledged).
    pub durable_watermark: Lsn,
}

impl std::fmt::Display for CorruptionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "record {} (device block {}, offset {}) is damaged and {}; durable up to lsn {}; ",
            self.first_bad_lsn, self.device_block, self.offset, self.why, self.durable_watermark
        )?;
        match self.highest_valid_after {
            Some(h) => write!(
                f,
                "{} valid records follow it up to lsn {h}: accepting the loss cuts lsns {}..={h}",
                self.valid_after, self.first_bad_lsn
            ),
            None => write!(
                f,
                "no valid record follows it: accepting the loss cuts from lsn {}",
                self.first_bad_lsn
            ),
        }
    }
}

/// What `recover` found and `commit` did (or will do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenReport {
    /// The device was blank and is formatted by the commit.
    pub formatted: bool,
    /// The superblock copy used (0 or 1).
    pub superblock_copy: usize,
    /// Its sequence number.
    pub superblock_sequence: u64,
    /// The other copy was invalid (torn, corrupt or blank) and was not considered.
    pub other_copy_invalid: bool,
    /// Records recovered.
    pub records: u64,
    /// The first readable lsn (past a skipped range at the log's start, the first after it).
    pub first_lsn: Lsn,
    /// The last lsn recovered (`first_lsn - 1` if none).
    pub last_lsn: Lsn,
    /// The last record's term.
    pub last_term: u64,
    /// The checkpointed snapshot's lsn the superblock names (0: none).
    pub snapshot_lsn: Lsn,
    /// Why the scan stopped.
    pub stop: ScanStop,
    /// The first lsn cut away when the scan stopped at a torn record or a gap.
    pub truncated_at_lsn: Option<Lsn>,
    /// Non-zero bytes from the cut to the end of its block (what the next tail rewrite erases).
    pub truncated_bytes: u64,
    /// The highest lsn the superblock or a valid record says was durable (0: unknown).
    pub durable_watermark: Lsn,
    /// Damaged records a snapshot covers, skipped.
    pub skipped: Option<SkippedRange>,
    /// Blocks whose zero padding was damaged (stepped over; nothing lost).
    pub padding_damaged_blocks: u64,
    /// Corruption the caller accepted to lose (`accept_loss_from`): cut at its first lsn.
    pub accepted_loss: Option<CorruptionReport>,
    /// The epoch records are appended in from now on.
    pub epoch: u32,
}

/// A log recovered but not yet committed: nothing has been written to the device. `report()` says
/// what was found and what `commit` will cut; dropping it leaves the device as it was.
pub struct Recovered<D: BlockIo> {
    ual: Ual<D>,
    report: OpenReport,
    /// Write the format superblock first (a blank device).
    format: bool,
    /// Erase after a cut from this block.
    cut_block: Option<u64>,
}

impl<D: BlockIo> std::fmt::Debug for Recovered<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recovered").field("report", &self.report).finish()
    }
}

impl<D: BlockIo> Recovered<D> {
    /// What was found, and what `commit` will do (`formatted`, the cut, the new `epoch`).
    pub fn report(&self) -> &OpenReport {
        &self.report
    }

    /// The recovered log, to read before the commit (a partition replays into its projection
    /// first, so a read error refuses the start with nothing written). Reads only: an append or
    /// any other write before `commit` would break the recovery's decision.
    pub(crate) fn log_mut(&mut self) -> &mut Ual<D> {
        &mut self.ual
    }

    /// Gives the device back untouched (a refused start).
    pub fn into_device(self) -> D {
        self.ual.dev
    }

    /// Does every write the recovery decided: the format of a blank device, the new-epoch
    /// superblock, the erase after a cut. The log is then ready to append.
    pub fn commit(self) -> Result<(Ual<D>, OpenReport), LogError> {
        let Recovered { mut ual, report, format, cut_block } = self;
        if format {
            let sb = Superblock { sequence: 1, ..ual.sb };
            ual.write_superblock_blocking(sb)?;
        }
        let sb = ual.sb;
        let new_sb = Superblock {
            sequence: sb.sequence + 1,
            epoch: report.epoch,
            epoch_first_lsn: ual.next_lsn,
            ..sb
        };
        ual.write_superblock_blocking(new_sb)?;
        ual.epoch = report.epoch;
        if let Some(cut_block) = cut_block {
            ual.erase_after_cut(cut_block)?;
        }
        Ok((ual, report))
    }
}

impl<D: BlockIo> Ual<D> {
    /// Opens the log on `dev`: `recover` then `commit` (see the module header), with no snapshot
    /// beyond the superblock's and no loss accepted. Spins the device until done (start-up only).
    /// All memory the log will ever use is allocated here.
    pub fn open(dev: D, cfg: UalConfig) -> Result<(Self, OpenReport), LogError> {
        Self::recover(dev, cfg, RecoverOptions::default())?.commit()
    }

    /// Reads the superblocks and scans the log, writing nothing, and decides what opening it means
    /// (`Recovered::report`); `Recovered::commit` then does the writes. Refused (nothing written):
    /// no valid superblock (or blank without `format_if_blank`), a geometry other than `cfg`'s,
    /// corruption of acknowledged records (`LogError::Corruption`), a device error.
    pub fn recover(dev: D, cfg: UalConfig, opts: RecoverOptions) -> Result<Recovered<D>, LogError> {
        cfg.validate(dev.capacity_blocks())?;
        let mut ual = Self::with_buffers(dev, cfg);
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
        let blank = ual.sb;
        let (chosen, format) = match (decoded[0], decoded[1]) {
            (Ok(a), Ok(b)) => (usize::from(b.sequence > a.sequence), false),
            (Ok(_), Err(_)) => (0, false),
            (Err(_), Ok(_)) => (1, false),
            (Err(SuperblockError::Blank), Err(SuperblockError::Blank)) if cfg.format_if_blank => {
                decoded[0] = Ok(blank);
                (0, true)
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
        if !format {
            for (copy, d) in decoded.iter().enumerate() {
                if let Ok(s) = d {
                    ual.copies[copy] =
                        CopyState { valid: true, sequence: s.sequence, log_start_block: s.log_start_block };
                }
            }
        }
        let other_copy_invalid = decoded[1 - chosen].is_err();
        ual.sb = sb;
        ual.meta.extend_from_slice(&metas[chosen]);
        ual.start_block = sb.log_start_block;
        ual.first_lsn = sb.log_start_lsn;
        ual.snapshot_lsn = sb.snapshot_lsn;
        ual.snapshot_term = sb.snapshot_term;

        let scan = ual.scan(opts)?;
        if let Some(c) = scan.corruption {
            return Err(LogError::Corruption(c));
        }
        ual.apply_scan(&scan)?;
        let epoch = scan.max_epoch.checked_add(1).expect("epoch space exhausted");
        let report = OpenReport {
            formatted: format,
            superblock_copy: chosen,
            superblock_sequence: if format { 1 } else { sb.sequence },
            other_copy_invalid,
            records: scan.records,
            first_lsn: ual.first_lsn(),
            last_lsn: ual.last_lsn(),
            last_term: ual.last_term,
            snapshot_lsn: sb.snapshot_lsn,
            stop: scan.stop,
            truncated_at_lsn: scan.truncated_at_lsn,
            truncated_bytes: scan.truncated_bytes,
            durable_watermark: scan.watermark,
            skipped: scan.skipped,
            padding_damaged_blocks: scan.padding_damaged_blocks,
            accepted_loss: scan.accepted,
            epoch,
        };
        Ok(Recovered { ual, report, format, cut_block: scan.cut_block })
    }

    /// Sets the log's extent from the scan: the tail image cut after the last valid record (in
    /// memory), everything recovered counted durable, the skipped range unreadable.
    fn apply_scan(&mut self, scan: &ScanResult) -> Result<(), LogError> {
        self.cut_tail(scan.tail_pos)?;
        self.next_lsn = scan.next_lsn;
        self.last_term = scan.last_term;
        self.durable_lsn = scan.next_lsn - 1;
        self.prev_segment_last_lsn = scan.next_lsn - 1;
        if let (Some(skipped), Some(blocks)) = (scan.skipped, scan.hole_blocks) {
            self.hole = Some(super::Hole { end_lsn: skipped.last_lsn + 1, blocks });
        }
        Ok(())
    }

    /// A log over `dev` with every buffer allocated and nothing read yet.
    fn with_buffers(dev: D, cfg: UalConfig) -> Self {
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
            durable_lsn: 0,
        };
        Ual {
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
            hole: None,
            tail_pos: 0,
            submitted_pos: 0,
            prev_segment_last_lsn: 0,
            segs: [image(), image()],
            cur: 0,
            cache: image(),
            cache_valid_to: 0,
            fetch: None,
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
        }
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
}

/// How many segments of `segment_blocks` blocks fit a device of `capacity_blocks` (for tools and
/// config checks).
pub fn segments_that_fit(capacity_blocks: u64, segment_blocks: u32) -> u64 {
    capacity_blocks.saturating_sub(super::SUPERBLOCK_BLOCKS) / u64::from(segment_blocks.max(1))
}
