//! The Unified Append Log (UAL): at once the Raft log and the storage, on one `BlockIo` device.
//!
//! Records `{lsn, term, kind, len, crc32c}` + payload are packed into 4 KiB blocks of a ring of
//! segments; two alternating superblock copies (blocks 0 and 1) hold the geometry and the
//! checkpoint. docs/STORAGE.md gives the layout byte by byte and the recovery rules.
//!
//! The shard loop drives it without blocking: `append` stages a record into the in-memory image of
//! the current segment (no allocation, no I/O), `flush_step` (once per poll iteration) copies every
//! block touched since the last flush into one pooled buffer and submits ONE durable write for it
//! (group commit), `poll` reaps completions and advances `durable_lsn` (and completes a
//! `prefetch`, the asynchronous read of a segment no longer in memory). Start-up (`open`) and the
//! rare paths (`truncate_suffix`, `read`/`replay`/`load` of segments no longer in memory, `close`)
//! spin the device until their I/O completes.
//!
//! Invariants:
//! - lsns are contiguous from `first_lsn()` to `last_lsn()`; terms never decrease along the log;
//! - `durable_lsn() <= last_lsn()`, and a record is durable only when every write covering it (and
//!   every earlier write) has completed successfully: only then may it be acknowledged;
//! - at most `writes_in_flight_max` log writes are in flight, never two touching the same block
//!   (so the device cannot reorder a rewrite of the tail block behind an older one);
//! - the staged-but-unsubmitted range never exceeds `write_blocks_max` blocks, and no segment is
//!   reused while either superblock copy still names it live (so either copy is always a valid
//!   starting point for recovery);
//! - no record on the device has an epoch above the durable superblock's, and every record of an
//!   older epoch with `lsn >= epoch_first_lsn` is dead: this is what keeps a cut tail cut;
//! - the owner's metadata (`set_meta`: Raft's hard state and membership) travels in every
//!   superblock write; `meta_durable_seq()` is the last `set_meta` number a completed superblock
//!   write carried, and a metadata write is never skipped: an urgent one is submitted by the next
//!   `flush_step` that finds no superblock write in flight;
//! - after a device error the log is poisoned: every call returns `LogError::Io` and
//!   `durable_lsn` never moves again.

mod config;
mod format;
mod label;
mod read;
mod recovery;
mod reset;
mod scan;
mod writer;

#[cfg(test)]
mod fetch_tests;
#[cfg(test)]
pub(crate) mod tests;

pub use config::{LogError, UalConfig, ATOMIC_WRITE_BLOCK, ATOMIC_WRITE_SECTOR};
pub use format::{
    decode_record, durable_behind, encode_record, Malformed, RecordFields, RecordHeader, Slot, Superblock,
    SuperblockError, DURABLE_BEHIND_MAX, FORMAT_VERSION, FORMAT_VERSION_V1, FORMAT_VERSION_V2, META_MAX,
    META_OFFSET, PAYLOAD_MAX, RECORD_HEADER_LEN, SUPERBLOCK_BLOCKS, SUPERBLOCK_LEN, SUPERBLOCK_MAGIC,
};
pub use label::{DeviceLabel, DeviceLayout, LabelError, LABEL_MAGIC, LABEL_VERSION, REGION_ALIGN_BLOCKS};
pub use recovery::{
    segments_that_fit, CorruptionReport, OpenReport, RecoverOptions, Recovered, ScanStop, SkippedRange,
};

use std::collections::VecDeque;
use vigil_pmd::block::{BlockBuf, BlockBufPool, BlockIo, Completion, BLOCK_SIZE};
use vigil_pmd::Batch;

/// A log sequence number: the Raft index. The first record of a fresh log is lsn 1.
pub type Lsn = u64;

const BS: u64 = BLOCK_SIZE as u64;
/// Tag bit of superblock writes.
const TAG_SUPERBLOCK: u64 = 1 << 63;
/// Tag bit of reads.
const TAG_READ: u64 = 1 << 62;
/// Tag bit of the asynchronous read into the read cache (`Ual::prefetch`).
const TAG_FETCH: u64 = 1 << 61;
/// "No segment" in a buffer's tag.
const NO_SEGMENT: u64 = u64::MAX;
/// Polls a blocking helper spins before it declares the device hung.
const SPIN_POLLS_MAX: u64 = 1 << 32;

/// A record's metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    /// Its lsn.
    pub lsn: Lsn,
    /// Its term.
    pub term: u64,
    /// Its kind.
    pub kind: u8,
    /// Its payload length.
    pub len: u32,
}

/// A record borrowed from the log's memory (for `replay`).
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// Its metadata.
    pub meta: RecordMeta,
    /// Its payload.
    pub payload: &'a [u8],
}

/// Where a record stands for a reader that must not block (`Ual::lookup`).
#[derive(Clone, Copy, Debug)]
pub enum Lookup<'a> {
    /// In memory, its checksum and lsn verified.
    Ready(Record<'a>),
    /// In the log, but only on the device: `prefetch` (asynchronous) or `load` (blocking) reads
    /// its segment into the read cache.
    OnDevice,
}

/// Plain counters, read off the hot path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UalCounters {
    /// Records appended.
    pub appends: u64,
    /// Appends refused with `Busy`.
    pub appends_busy: u64,
    /// Appends refused with `Full`.
    pub appends_full: u64,
    /// Log writes submitted.
    pub writes: u64,
    /// Blocks those writes carried.
    pub write_blocks: u64,
    /// Bytes of block tails left empty so that a group commit need not wait for the write in
    /// flight on the tail block (the price of pipelining group commits).
    pub padded_bytes: u64,
    /// Superblock writes submitted.
    pub superblock_writes: u64,
    /// Device reads (segments or superblocks).
    pub reads: u64,
}

/// Ring geometry, in blocks.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    segment_blocks: u64,
    segment_count: u64,
    region_blocks: u64,
}

impl Geometry {
    /// The device block of a virtual block.
    #[inline]
    fn lba(&self, vblock: u64) -> u64 {
        SUPERBLOCK_BLOCKS + vblock % self.region_blocks
    }
    #[inline]
    fn segment_of(&self, vblock: u64) -> u64 {
        vblock / self.segment_blocks
    }
}

/// An in-memory image of one segment (the tail's, or the one before it), or the read cache.
#[derive(Debug)]
struct SegmentBuf {
    buf: Option<BlockBuf>,
    /// The virtual segment it holds, or `NO_SEGMENT`.
    vseg: u64,
}

impl SegmentBuf {
    fn bytes(&self) -> &[u8] {
        self.buf.as_deref().expect("segment buffer is home")
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.buf.as_deref_mut().expect("segment buffer is home")
    }
}

/// The asynchronous read of a segment into the read cache (`Ual::prefetch`), in flight.
#[derive(Clone, Copy, Debug)]
struct Fetch {
    /// The virtual segment being read.
    vseg: u64,
    /// The epoch when it was submitted: a truncation since then makes its bytes stale.
    epoch: u32,
    /// `durable_lsn` when it was submitted: the records up to it were on the device whole.
    valid_to: Lsn,
}

/// A log write in flight.
#[derive(Clone, Copy, Debug)]
struct InFlightWrite {
    tag: u64,
    /// Virtual blocks start..end it covers.
    start: u64,
    end: u64,
    /// Its blocks from here on (up to `end`) held no record when it was submitted and may receive
    /// records while it is in flight; the blocks before are final (the writer pads past a block
    /// an unfinished write covers), so a later write may cover them too with the same bytes.
    mutable_from: u64,
    /// The last lsn it makes durable.
    last_lsn: Lsn,
    done: bool,
}

/// Damaged records a snapshot covers, skipped at open: unreadable, and the live region's start may
/// not move into their blocks (a scan from there would find no record to start with).
#[derive(Clone, Copy, Debug)]
struct Hole {
    /// The first lsn after the skipped range (the first readable one past it).
    end_lsn: Lsn,
    /// Virtual blocks [first, resync) holding no readable record.
    blocks: (u64, u64),
}

/// What a superblock copy on the device says, as far as recycling cares.
#[derive(Clone, Copy, Debug)]
struct CopyState {
    valid: bool,
    sequence: u64,
    log_start_block: u64,
}

/// Where a blocking read lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BufSlot {
    Segment(usize),
    Cache,
    Superblock,
}

/// The Unified Append Log over one device.
pub struct Ual<D: BlockIo> {
    dev: D,
    cfg: UalConfig,
    geo: Geometry,

    // The log's extent.
    /// First readable lsn (the checkpoint's `log_start_lsn`).
    first_lsn: Lsn,
    /// Virtual block where the live region starts (a segment boundary).
    start_block: u64,
    next_lsn: Lsn,
    last_term: u64,
    durable_lsn: Lsn,
    epoch: u32,
    snapshot_lsn: Lsn,
    snapshot_term: u64,
    /// Covered records skipped at open (see `Hole`).
    hole: Option<Hole>,
    /// Virtual byte position where the last record ends (the next one goes here, or at the next
    /// block if it does not fit).
    tail_pos: u64,
    /// Everything before this position has been handed to the device.
    submitted_pos: u64,
    /// The last lsn of the segment before the tail's (covered by the write that finishes it).
    prev_segment_last_lsn: Lsn,

    // Memory, all allocated in `open`.
    /// Images of the tail segment (`segs[cur]`) and the one before it.
    segs: [SegmentBuf; 2],
    cur: usize,
    /// The last segment read from the device for `read`/`replay`/`load`/`prefetch`.
    cache: SegmentBuf,
    /// The highest lsn the cache's bytes may be trusted for by `lookup` (the durable lsn when it
    /// was read: a record after it may have had its write in flight, so its bytes on the device
    /// could still be a previous lap's). 0 for a cache filled by the scan at open.
    cache_valid_to: Lsn,
    /// The asynchronous cache fill in flight, if any (its buffer is then away: `cache.buf` is
    /// `None` and `cache.vseg` is `NO_SEGMENT`).
    fetch: Option<Fetch>,
    /// First lsn of each block of the ring, indexed by `vblock % region_blocks` (valid for the live
    /// region only).
    block_first_lsn: Vec<Lsn>,
    /// Write buffers of 1, 2, 4 .. write_blocks_max blocks.
    pools: Vec<BlockBufPool>,
    in_flight: VecDeque<InFlightWrite>,
    completions: Option<Batch<Completion>>,
    next_tag: u64,

    // Superblock.
    sb: Superblock,
    copies: [CopyState; 2],
    sb_buf: Option<BlockBuf>,
    /// The superblock write in flight: (copy, superblock, the metadata number it carries).
    sb_in_flight: Option<(usize, Superblock, u64)>,
    /// The owner's metadata as last set (capacity `META_MAX`, allocated in `open`).
    meta: Vec<u8>,
    /// Bumped by every `set_meta`.
    meta_seq: u64,
    /// The highest `meta_seq` a completed superblock write carried.
    meta_durable_seq: u64,
    /// An urgent `set_meta` not yet submitted.
    meta_dirty: bool,
    read_done: Option<(u64, BlockBuf, Result<(), String>)>,

    poisoned: Option<String>,
    counters: UalCounters,
}

impl<D: BlockIo> std::fmt::Debug for Ual<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ual")
            .field("first_lsn", &self.first_lsn)
            .field("last_lsn", &self.last_lsn())
            .field("durable_lsn", &self.durable_lsn)
            .field("epoch", &self.epoch)
            .field("tail_pos", &self.tail_pos)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

impl<D: BlockIo> Ual<D> {
    /// The last lsn appended (staged or durable); `first_lsn() - 1` when the log is empty.
    #[inline]
    pub fn last_lsn(&self) -> Lsn {
        self.next_lsn - 1
    }

    /// The highest lsn whose write (and every earlier one) completed: it may be acknowledged.
    #[inline]
    pub fn durable_lsn(&self) -> Lsn {
        self.durable_lsn
    }

    /// The first lsn still readable (records below it were recycled after a checkpoint, or are
    /// damaged records a snapshot covers, skipped at open).
    #[inline]
    pub fn first_lsn(&self) -> Lsn {
        match self.hole {
            Some(h) => self.first_lsn.max(h.end_lsn),
            None => self.first_lsn,
        }
    }

    /// The term of the last record (the snapshot's term when the log is empty after one).
    #[inline]
    pub fn last_term(&self) -> u64 {
        self.last_term
    }

    /// The latest checkpoint's snapshot (lsn, term).
    pub fn snapshot(&self) -> (Lsn, u64) {
        (self.snapshot_lsn, self.snapshot_term)
    }

    /// The current epoch (records appended now carry it).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Counters so far.
    pub fn counters(&self) -> UalCounters {
        self.counters
    }

    /// The device (for inspection in tests and tools).
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Log writes in flight.
    pub fn writes_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether a `prefetch` read is in flight (its completion comes through `poll`).
    pub fn fetch_in_flight(&self) -> bool {
        self.fetch.is_some()
    }

    /// The device under the live log, to damage its bytes behind the log's back (tests).
    #[cfg(test)]
    pub(crate) fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Gives the device back without flushing anything (what a crash leaves behind).
    pub fn into_device(self) -> D {
        self.dev
    }

    /// The owner's metadata as last set (durable or not); empty on a fresh log.
    pub fn meta(&self) -> &[u8] {
        &self.meta
    }

    /// Replaces the owner's metadata (at most `META_MAX` bytes) and returns its number. It takes no
    /// lsn: it travels in the superblock. `urgent`: the next `flush_step` that finds no superblock
    /// write in flight submits one for it; otherwise it waits for the next superblock write that
    /// happens anyway (a lazily persisted hint). Durable once `meta_durable_seq()` reaches the
    /// number. Never blocks, never allocates.
    pub fn set_meta(&mut self, meta: &[u8], urgent: bool) -> Result<u64, LogError> {
        self.check_poisoned()?;
        if meta.len() > META_MAX {
            return Err(LogError::TooLarge { len: meta.len(), max: META_MAX });
        }
        self.meta.clear();
        self.meta.extend_from_slice(meta);
        self.meta_seq += 1;
        self.meta_dirty |= urgent;
        Ok(self.meta_seq)
    }

    /// The number of the last `set_meta`.
    pub fn meta_seq(&self) -> u64 {
        self.meta_seq
    }

    /// The highest `set_meta` number a completed superblock write carried (0: what `open` found).
    pub fn meta_durable_seq(&self) -> u64 {
        self.meta_durable_seq
    }

    /// Submits a superblock write for urgent metadata if there is some and none is in flight.
    /// Returns whether it submitted one.
    pub(crate) fn flush_meta(&mut self) -> Result<bool, LogError> {
        if !self.meta_dirty || self.sb_in_flight.is_some() {
            return Ok(false);
        }
        let sb = Superblock { sequence: self.sb.sequence + 1, ..self.sb };
        match self.submit_superblock(sb) {
            Ok(()) => Ok(true),
            Err(LogError::Busy) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Why the log refuses all work, after a device error (`None` while it works).
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    fn check_poisoned(&self) -> Result<(), LogError> {
        match &self.poisoned {
            Some(why) => Err(LogError::Io(why.clone())),
            None => Ok(()),
        }
    }

    fn poison(&mut self, why: String) -> LogError {
        if self.poisoned.is_none() {
            self.poisoned = Some(why);
        }
        LogError::Io(self.poisoned.clone().expect("just set"))
    }

    fn tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }

    /// The segment image holding `vseg`, if one does.
    fn segment_index(&self, vseg: u64) -> Option<usize> {
        (0..2).find(|&i| self.segs[i].vseg == vseg)
    }

    /// Reaps whatever the device finished; returns how many.
    fn reap(&mut self) -> usize {
        let mut batch = self.completions.take().expect("completion batch is home");
        let n = self.dev.poll_completions(&mut batch);
        for c in batch.drain() {
            self.on_completion(c);
        }
        self.completions = Some(batch);
        n
    }

    fn on_completion(&mut self, c: Completion) {
        if c.tag & TAG_SUPERBLOCK != 0 {
            self.sb_buf = c.buf;
            let (copy, sb, meta_seq) = self.sb_in_flight.take().expect("a superblock write was in flight");
            match c.result {
                Ok(()) => {
                    self.copies[copy] =
                        CopyState { valid: true, sequence: sb.sequence, log_start_block: sb.log_start_block };
                    if self.poisoned.is_none() {
                        self.meta_durable_seq = self.meta_durable_seq.max(meta_seq);
                    }
                }
                Err(e) => {
                    self.copies[copy].valid = false;
                    self.poison(format!("superblock write: {e}"));
                }
            }
        } else if c.tag & TAG_FETCH != 0 {
            self.on_fetch_completion(c);
        } else if c.tag & TAG_READ != 0 {
            let buf = c.buf.expect("reads return their buffer");
            self.read_done = Some((c.tag, buf, c.result.map_err(|e| e.to_string())));
        } else {
            let buf = c.buf.expect("writes return their buffer");
            let class = buf.blocks().trailing_zeros() as usize;
            self.pools[class].put(buf);
            let w =
                self.in_flight.iter_mut().find(|w| w.tag == c.tag).expect("completion of a write we sent");
            w.done = true;
            if let Err(e) = c.result {
                self.poison(format!("log write: {e}"));
            }
            if self.poisoned.is_some() {
                return;
            }
            while let Some(w) = self.in_flight.front() {
                if !w.done {
                    break;
                }
                self.durable_lsn = self.durable_lsn.max(w.last_lsn);
                self.in_flight.pop_front();
            }
        }
    }

    /// The asynchronous cache fill completed: the buffer comes home, and its bytes count as segment
    /// `vseg` unless the log changed under them while the read was in flight (a truncation: a new
    /// epoch; a checkpoint recycled the segment). A failed read poisons the log, as a blocking one
    /// does.
    fn on_fetch_completion(&mut self, c: Completion) {
        self.cache.buf = Some(c.buf.expect("reads return their buffer"));
        let f = self.fetch.take().expect("a fetch was in flight");
        match c.result {
            Ok(()) if f.epoch == self.epoch && f.vseg >= self.geo.segment_of(self.start_block) => {
                self.cache.vseg = f.vseg;
                self.cache_valid_to = f.valid_to;
            }
            Ok(()) => {}
            Err(e) => {
                self.poison(format!("read of segment {}: {e}", f.vseg));
            }
        }
    }

    /// Spins the device until `done(self)` holds; poisons the log if it never does.
    fn spin_until(&mut self, what: &str, done: impl Fn(&Self) -> bool) -> Result<(), LogError> {
        let mut polls = 0u64;
        while !done(self) {
            self.check_poisoned()?;
            if self.reap() == 0 {
                polls += 1;
                if polls >= SPIN_POLLS_MAX {
                    return Err(self.poison(format!("{what}: the device did not complete")));
                }
                std::hint::spin_loop();
            }
        }
        self.check_poisoned()
    }

    fn slot_mut(&mut self, slot: BufSlot) -> &mut Option<BlockBuf> {
        match slot {
            BufSlot::Segment(i) => &mut self.segs[i].buf,
            BufSlot::Cache => &mut self.cache.buf,
            BufSlot::Superblock => &mut self.sb_buf,
        }
    }

    /// Reads `slot`'s buffer's worth of blocks from device block `lba` into it, spinning until done.
    fn read_blocking(&mut self, slot: BufSlot, lba: u64) -> Result<(), LogError> {
        self.check_poisoned()?;
        if slot == BufSlot::Cache {
            // The cache's buffer may be away with an asynchronous fill: wait for it to come home.
            self.spin_until("read", |s| s.fetch.is_none())?;
            self.cache_valid_to = 0;
        }
        let tag = TAG_READ | self.tag();
        let mut buf = self.slot_mut(slot).take().expect("buffer is home");
        let mut polls = 0u64;
        loop {
            match self.dev.submit_read(tag, lba, buf) {
                Ok(()) => break,
                Err(vigil_pmd::block::SubmitError::QueueFull(Some(b))) => {
                    buf = b;
                    if self.reap() == 0 {
                        polls += 1;
                        if polls >= SPIN_POLLS_MAX {
                            *self.slot_mut(slot) = Some(buf);
                            return Err(self.poison("read: the device queue never drained".into()));
                        }
                    }
                }
                Err(e) => panic!("read of block {lba} refused: {e} (geometry was validated)"),
            }
        }
        self.counters.reads += 1;
        self.spin_until("read", |s| s.read_done.is_some())?;
        let (done_tag, buf, result) = self.read_done.take().expect("just completed");
        assert_eq!(done_tag, tag, "one blocking read at a time");
        *self.slot_mut(slot) = Some(buf);
        result.map_err(|e| self.poison(format!("read of block {lba}: {e}")))
    }

    /// Submits a superblock write of `sb` to the copy not holding the newest one.
    fn submit_superblock(&mut self, sb: Superblock) -> Result<(), LogError> {
        assert!(self.sb_in_flight.is_none(), "one superblock write at a time");
        let copy = self.next_copy();
        // Every superblock write records how far the log is durable (the recovery watermark).
        let sb = Superblock { durable_lsn: self.durable_lsn, ..sb };
        let mut buf = self.sb_buf.take().expect("superblock buffer is home");
        sb.encode_with_meta(&mut buf, &self.meta);
        // The copy being overwritten may be torn by a crash: stop trusting it until it completes.
        self.copies[copy].valid = false;
        match self.dev.submit_write(TAG_SUPERBLOCK | self.next_tag, copy as u64, buf, true) {
            Ok(()) => {
                self.counters.superblock_writes += 1;
                self.sb_in_flight = Some((copy, sb, self.meta_seq));
                self.sb = sb;
                self.meta_dirty = false;
                Ok(())
            }
            Err(vigil_pmd::block::SubmitError::QueueFull(Some(b))) => {
                self.sb_buf = Some(b);
                self.copies[copy].valid = true;
                Err(LogError::Busy)
            }
            Err(e) => panic!("superblock write refused: {e}"),
        }
    }

    /// Writes `sb` and spins until it is durable.
    fn write_superblock_blocking(&mut self, sb: Superblock) -> Result<(), LogError> {
        self.spin_until("superblock write", |s| s.sb_in_flight.is_none())?;
        loop {
            match self.submit_superblock(sb) {
                Ok(()) => break,
                Err(LogError::Busy) => {
                    self.reap();
                }
                Err(e) => return Err(e),
            }
        }
        self.spin_until("superblock write", |s| s.sb_in_flight.is_none())
    }

    /// The copy to overwrite next: an invalid one, else the older one.
    fn next_copy(&self) -> usize {
        match (self.copies[0].valid, self.copies[1].valid) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => usize::from(self.copies[1].sequence < self.copies[0].sequence),
        }
    }

    /// The oldest segment either durable superblock copy still names live: the writer may not
    /// reach it again (one lap later).
    /// Segments the writer may still enter before appends fail with `Full`: the ring's free room
    /// until a checkpoint frees more. Owners take a snapshot well before it reaches 0.
    pub fn segments_free(&self) -> u64 {
        (self.reclaim_segment() + self.geo.segment_count).saturating_sub(self.segs[self.cur].vseg + 1)
    }

    /// Whether a superblock write is in flight (`checkpoint` answers `Busy` until it completes).
    pub fn superblock_in_flight(&self) -> bool {
        self.sb_in_flight.is_some()
    }

    /// The segments in the ring.
    pub fn segment_count(&self) -> u64 {
        self.geo.segment_count
    }

    /// Bytes of one segment.
    pub fn segment_size_bytes(&self) -> u64 {
        self.geo.segment_blocks * BLOCK_SIZE as u64
    }

    fn reclaim_segment(&self) -> u64 {
        let start = self
            .copies
            .iter()
            .filter(|c| c.valid)
            .map(|c| c.log_start_block)
            .min()
            .unwrap_or(self.start_block)
            .min(self.start_block);
        self.geo.segment_of(start)
    }
}
