//! `SimDisk`: a `BlockIo` with seeded latency, reordering, I/O errors, latent sector errors, a
//! volatile write cache and crash-at-any-point, for the deterministic simulator.
//!
//! Model. The disk keeps two images: `durable`, what survives power loss, and `volatile`, what reads
//! see (media plus the device's write cache). `volatile` is stored as `durable` plus the cached
//! content of the dirty blocks (the only ones where the two differ), so a disk is made from an
//! image, and a crash image taken, without copying the whole device more than once. A request gets a seeded latency in `SimClock` time and
//! completes (takes effect and comes out of `poll_completions`) only once `now >= due`; requests due
//! at the same time come out in a seeded order. At completion:
//! - a write lands in `volatile`; with `durable = true` (FUA) also in `durable`, otherwise its blocks
//!   become dirty: they reach `durable` at a later completed flush, or earlier, whenever the cache
//!   chooses to write back (seeded: a real cache may persist any subset of dirty blocks at any time);
//! - a flush persists every block that was dirty when it was submitted (those written by writes that
//!   completed before it), as `BlockIo` promises;
//! - an injected write failure completes with `BlockError::Io` after landing a seeded subset of its
//!   blocks (some, none or all: the device state of a failed write is unknown);
//! - a read copies `volatile`, or fails for a block marked with a latent sector error (or at random).
//!
//! Media faults outside any request (the simulator injects them while a node is down): a latent
//! sector error (`mark_latent_error`: every read of the block fails until it is written again) and
//! a flipped bit (`flip_bit`: bit rot of data the device once acknowledged, in both images: reads
//! and a crash both see it). `written_blocks` names the blocks that hold anything, where records
//! and superblocks can be.
//!
//! `crash` is a power loss: the new disk's image is `durable`, plus a seeded subset of the dirty
//! blocks, plus, for every write still in flight (including one due but not yet polled: nobody saw
//! it complete), nothing, everything, or a torn part: a prefix of its blocks and a sector prefix of
//! the next one, or (with `torn_scatter`) any subset of its sectors, the weakest promise a device
//! makes (a sector is written whole or not at all). The sector (the unit a tear never splits) is
//! `SimDiskFaults::torn_sector_bytes`: 512 by default (`SECTOR_SIZE`), or 4096 for a device that
//! writes a whole 4 KiB block atomically (NVMe with 4 KiB LBAs). The new disk has nothing in flight.
//!
//! Blocking callers (the UAL's `open` spins the device without touching the clock) would wait for
//! ever on virtual time, so after `spin_polls_before_advance` empty polls at one clock reading with
//! requests in flight the disk moves the shared clock to the next due time, as waiting would.
//!
//! Invariants: with every fault off it passes `block::memory::conformance`; every accepted request
//! completes exactly once; the same seed and the same calls give the same completions, bytes and
//! crash images (only ordered containers, one RNG). No `unsafe` here: the simulator needs none.
//! It allocates per request (a test device, never a production path).

use super::{SimClock, SplitMix64};
use crate::block::{
    check_range, BlockBuf, BlockError, BlockIo, BlockOp, Completion, SubmitError, BLOCK_SIZE,
};
use crate::Batch;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// The sector size torn writes are cut at by default (the smallest NVMe/SATA atomic unit).
pub const SECTOR_SIZE: usize = 512;

/// Fault probabilities (each 0..=1). `Default` is every fault off (torn writes, when turned on, cut
/// at `SECTOR_SIZE`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimDiskFaults {
    /// A write completes with `BlockError::Io`, having landed a seeded subset of its blocks.
    pub write_error: f64,
    /// A read completes with `BlockError::Io` (transient).
    pub read_error: f64,
    /// A completed write leaves one of its blocks with a latent sector error (reads of it fail
    /// until it is written again).
    pub latent_on_write: f64,
    /// At each poll, the cache writes one dirty block back to `durable`.
    pub writeback: f64,
    /// At a crash, each dirty block reaches `durable` anyway.
    pub crash_keep_dirty: f64,
    /// At a crash, a write in flight is torn (part of it lands) rather than all-or-nothing.
    pub crash_torn: f64,
    /// Torn writes land any subset of their sectors, not only a prefix.
    pub torn_scatter: bool,
    /// The unit a torn write is cut at, written whole or not at all: a divisor of `BLOCK_SIZE`
    /// (512, the default `SECTOR_SIZE`; 4096: whole blocks only).
    pub torn_sector_bytes: usize,
}

impl Default for SimDiskFaults {
    fn default() -> Self {
        Self {
            write_error: 0.0,
            read_error: 0.0,
            latent_on_write: 0.0,
            writeback: 0.0,
            crash_keep_dirty: 0.0,
            crash_torn: 0.0,
            torn_scatter: false,
            torn_sector_bytes: SECTOR_SIZE,
        }
    }
}

impl SimDiskFaults {
    /// No fault at all (`Default`).
    pub fn none() -> Self {
        Self::default()
    }

    /// Crash damage only: torn in-flight writes, dirty blocks lost or kept, random write-back.
    pub fn crashes() -> Self {
        Self {
            writeback: 0.05,
            crash_keep_dirty: 0.5,
            crash_torn: 0.5,
            torn_scatter: true,
            ..Self::default()
        }
    }

    /// The faults of one seed of a three-node simulator, drawn from `rng`: crash damage (torn at
    /// 4 KiB, the log's atomic unit) in half the seeds; in a third, writes and reads that fail
    /// now and then (the node whose log fails is restarted by the simulator).
    pub fn draw_for_cluster(rng: &mut SplitMix64) -> Self {
        let mut faults = Self::none();
        if rng.chance(0.5) {
            faults = Self { torn_sector_bytes: 4096, ..Self::crashes() };
        }
        if rng.chance(1.0 / 3.0) {
            (faults.write_error, faults.read_error) = (0.002, 0.002);
        }
        faults
    }
}

/// The disk's shape and timing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimDiskConfig {
    /// Device size in blocks.
    pub capacity_blocks: u64,
    /// Most requests in flight.
    pub queue_depth: usize,
    /// Write latency range, ns (inclusive).
    pub write_latency_ns: (u64, u64),
    /// Read latency range, ns (inclusive).
    pub read_latency_ns: (u64, u64),
    /// Flush latency range, ns (inclusive).
    pub flush_latency_ns: (u64, u64),
    /// Empty polls at one clock reading (with requests in flight) before the disk moves the clock
    /// to the next due time itself; 0: never (the caller must advance the clock).
    pub spin_polls_before_advance: u32,
    /// Faults.
    pub faults: SimDiskFaults,
}

impl SimDiskConfig {
    /// An NVMe-ish disk of `capacity_blocks` (10-100 us writes, 1 ms flushes), faults off.
    pub fn new(capacity_blocks: u64) -> Self {
        Self {
            capacity_blocks,
            queue_depth: 32,
            write_latency_ns: (10_000, 100_000),
            read_latency_ns: (5_000, 50_000),
            flush_latency_ns: (100_000, 1_000_000),
            spin_polls_before_advance: 8,
            faults: SimDiskFaults::none(),
        }
    }
}

/// What the disk did, for tests and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimDiskCounters {
    /// Writes completed (including failed ones).
    pub writes: u64,
    /// Reads completed (including failed ones).
    pub reads: u64,
    /// Flushes completed.
    pub flushes: u64,
    /// Writes failed by injection.
    pub write_errors: u64,
    /// Reads failed (latent sector or random).
    pub read_errors: u64,
    /// Of those, failed by a latent sector error (the rest were transient, injected at random).
    pub latent_read_errors: u64,
    /// Bits flipped by `flip_bit`.
    pub bits_flipped: u64,
    /// Latent sector errors created.
    pub latent_marked: u64,
    /// Dirty blocks the cache wrote back on its own.
    pub writebacks: u64,
    /// Times the clock was moved by spinning callers.
    pub clock_jumps: u64,
}

/// What a power loss did to the requests and the cache (returned by `crash_image`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// Writes in flight at the crash.
    pub in_flight_writes: u64,
    /// Of those, landed whole.
    pub landed: u64,
    /// Of those, lost whole.
    pub lost: u64,
    /// Of those, torn (a part landed).
    pub torn: u64,
    /// Dirty (completed, not yet flushed) blocks at the crash.
    pub dirty_blocks: u64,
    /// Of those, kept.
    pub dirty_kept: u64,
}

#[derive(Debug)]
enum Req {
    Write {
        lba: u64,
        buf: BlockBuf,
        durable: bool,
        fail: bool,
    },
    Read {
        lba: u64,
        buf: BlockBuf,
    },
    /// The blocks dirty at submission: this flush makes them durable.
    Flush {
        covers: Vec<u64>,
    },
}

#[derive(Debug)]
struct Pending {
    due: u64,
    /// A seeded tie-break: requests due together come out in this order.
    order: u64,
    tag: u64,
    req: Req,
}

/// The simulated disk.
#[derive(Debug)]
pub struct SimDisk {
    cfg: SimDiskConfig,
    faults: Rc<Cell<SimDiskFaults>>,
    clock: SimClock,
    rng: SplitMix64,
    durable: Vec<u8>,
    /// The dirty blocks: written, maybe not durable yet; their content as reads see it (the
    /// volatile image is `durable` with these blocks on top). Ordered: iteration must be
    /// deterministic.
    dirty: BTreeMap<u64, Box<[u8]>>,
    latent: BTreeSet<u64>,
    pending: Vec<Pending>,
    /// The clock reading of the last poll and how many empty polls happened at it.
    spin_at: u64,
    spin_polls: u32,
    counters: SimDiskCounters,
}

/// A disk's I/O errors turned off (`SimDisk::suspend_errors`) until `resume`.
#[derive(Debug)]
pub struct ErrorsSuspended {
    handle: Rc<Cell<SimDiskFaults>>,
    run: SimDiskFaults,
}

impl ErrorsSuspended {
    /// Turns the errors back on, as they were.
    pub fn resume(self) {
        self.handle.set(self.run);
    }
}

impl SimDisk {
    /// A zeroed disk.
    pub fn new(cfg: SimDiskConfig, clock: SimClock, seed: u64) -> Self {
        let bytes = usize::try_from(cfg.capacity_blocks).expect("fits memory") * BLOCK_SIZE;
        Self::from_image(cfg, clock, seed, vec![0; bytes])
    }

    /// A disk whose durable and visible contents are `image` (whole blocks; sets the capacity).
    pub fn from_image(mut cfg: SimDiskConfig, clock: SimClock, seed: u64, image: Vec<u8>) -> Self {
        assert_eq!(image.len() % BLOCK_SIZE, 0, "an image is whole blocks");
        assert!(cfg.queue_depth > 0, "queue_depth must be at least 1");
        cfg.capacity_blocks = (image.len() / BLOCK_SIZE) as u64;
        Self {
            faults: Rc::new(Cell::new(cfg.faults)),
            cfg,
            clock,
            rng: SplitMix64::new(seed),
            durable: image,
            dirty: BTreeMap::new(),
            latent: BTreeSet::new(),
            pending: Vec::with_capacity(cfg.queue_depth),
            spin_at: 0,
            spin_polls: 0,
            counters: SimDiskCounters::default(),
        }
    }

    /// A handle on the fault settings, shared with the disk: change faults while the disk is owned
    /// by the code under test (e.g. turn write errors on after `open`). Carried over by `crash`.
    pub fn faults_handle(&self) -> Rc<Cell<SimDiskFaults>> {
        Rc::clone(&self.faults)
    }

    /// Turns the injected I/O errors (`write_error`, `read_error`) off until `resume`, the other
    /// faults kept: for a simulator that opens a log whose refusal on a device error it does not
    /// test (tests/sim_shards does), with errors on once it runs.
    pub fn suspend_errors(&self) -> ErrorsSuspended {
        let run = self.faults.get();
        self.faults.set(SimDiskFaults { write_error: 0.0, read_error: 0.0, ..run });
        ErrorsSuspended { handle: self.faults_handle(), run }
    }

    /// The current faults.
    pub fn faults(&self) -> SimDiskFaults {
        self.faults.get()
    }

    /// The clock the disk runs on.
    pub fn clock(&self) -> &SimClock {
        &self.clock
    }

    /// What reads see now (a copy of the whole device: for tests and checks, not per request).
    pub fn volatile_image(&self) -> Vec<u8> {
        let mut img = self.durable.clone();
        for (&lba, data) in &self.dirty {
            img[block_range(lba, 1)].copy_from_slice(data);
        }
        img
    }

    /// Block `lba` as reads see it now.
    fn visible(&self, lba: u64) -> &[u8] {
        match self.dirty.get(&lba) {
            Some(data) => data,
            None => &self.durable[block_range(lba, 1)],
        }
    }

    /// What would survive power loss for sure.
    pub fn durable_image(&self) -> &[u8] {
        &self.durable
    }

    /// Blocks written but not yet durable.
    pub fn dirty_blocks(&self) -> usize {
        self.dirty.len()
    }

    /// Counters so far.
    pub fn counters(&self) -> SimDiskCounters {
        self.counters
    }

    /// Marks `lba` with a latent sector error: reads covering it fail until it is written again.
    pub fn mark_latent_error(&mut self, lba: u64) {
        assert!(lba < self.cfg.capacity_blocks, "block {lba} is past the device");
        self.latent.insert(lba);
    }

    /// The blocks marked with a latent sector error now, in order.
    pub fn latent_blocks(&self) -> Vec<u64> {
        self.latent.iter().copied().collect()
    }

    /// Flips bit `bit` (0 is the lowest bit of the block's first byte) of block `lba` on the media:
    /// bit rot, seen by reads and kept by a crash. Cached (dirty) content is not spared: a flip is
    /// meant for data at rest, while nothing is in flight.
    pub fn flip_bit(&mut self, lba: u64, bit: usize) {
        assert!(lba < self.cfg.capacity_blocks, "block {lba} is past the device");
        assert!(bit < BLOCK_SIZE * 8, "bit {bit} is past the block");
        let byte = lba as usize * BLOCK_SIZE + bit / 8;
        let mask = 1u8 << (bit % 8);
        self.durable[byte] ^= mask;
        if let Some(data) = self.dirty.get_mut(&lba) {
            data[bit / 8] ^= mask;
        }
        self.counters.bits_flipped += 1;
    }

    /// The blocks whose durable content is not all zeros (a blank device is zeros), in order:
    /// where the device's user put anything.
    pub fn written_blocks(&self) -> Vec<u64> {
        self.durable
            .chunks_exact(BLOCK_SIZE)
            .enumerate()
            .filter(|(_, b)| b.iter().any(|&x| x != 0))
            .map(|(i, _)| i as u64)
            .collect()
    }

    /// The earliest due time of a request in flight.
    pub fn next_due(&self) -> Option<u64> {
        self.pending.iter().map(|p| p.due).min()
    }

    /// The image a power loss leaves now (see the module docs), and what happened to each part.
    /// Draws from the disk's RNG, so the crash is part of the seeded run.
    pub fn crash_image(&mut self) -> (Vec<u8>, CrashReport) {
        let img = self.durable.clone();
        self.crash_onto(img)
    }

    /// `crash_image` for a disk that is done with: its durable image becomes the crash image
    /// without a copy (the same draws, so the same image as `crash_image`).
    pub fn into_crash_image(mut self) -> (Vec<u8>, CrashReport) {
        let img = std::mem::take(&mut self.durable);
        self.crash_onto(img)
    }

    /// Lays what a power loss keeps of the cache and of the writes in flight onto `img`, a copy
    /// of the durable image.
    fn crash_onto(&mut self, mut img: Vec<u8>) -> (Vec<u8>, CrashReport) {
        let f = self.faults.get();
        let mut rep = CrashReport { dirty_blocks: self.dirty.len() as u64, ..CrashReport::default() };
        for (&lba, data) in &self.dirty {
            if self.rng.chance(f.crash_keep_dirty) {
                img[block_range(lba, 1)].copy_from_slice(data);
                rep.dirty_kept += 1;
            }
        }
        // `pending` is in submission order (completions are removed in place), so overlapping
        // in-flight writes land in the order they were issued.
        for p in &self.pending {
            let Req::Write { lba, buf, .. } = &p.req else { continue };
            rep.in_flight_writes += 1;
            let base = *lba as usize * BLOCK_SIZE;
            let sector = f.torn_sector_bytes;
            assert!(
                sector > 0 && BLOCK_SIZE.is_multiple_of(sector),
                "torn_sector_bytes {sector} does not divide a block"
            );
            let sectors = buf.len() / sector;
            if self.rng.chance(f.crash_torn) {
                rep.torn += 1;
                if f.torn_scatter && self.rng.chance(0.5) {
                    for s in 0..sectors {
                        if self.rng.chance(0.5) {
                            let r = s * sector..(s + 1) * sector;
                            img[base + r.start..base + r.end].copy_from_slice(&buf[r]);
                        }
                    }
                } else {
                    // A prefix of whole sectors: blocks in order, the last one possibly in part.
                    let keep = self.rng.below(sectors as u64) as usize * sector;
                    img[base..base + keep].copy_from_slice(&buf[..keep]);
                }
            } else if self.rng.chance(0.5) {
                rep.landed += 1;
                img[base..base + buf.len()].copy_from_slice(buf);
            } else {
                rep.lost += 1;
            }
        }
        (img, rep)
    }

    /// Power loss: a fresh disk (nothing in flight, no dirty blocks, latent errors kept: they are
    /// on the media) over `crash_image()`, on the same clock, config and fault handle.
    pub fn crash(mut self) -> SimDisk {
        self.crash_with_report().0
    }

    /// `crash`, also returning what happened.
    pub fn crash_with_report(&mut self) -> (SimDisk, CrashReport) {
        let (img, rep) = self.crash_image();
        let seed = self.rng.next_u64();
        let mut disk = SimDisk::from_image(self.cfg, self.clock.clone(), seed, img);
        disk.faults = Rc::clone(&self.faults);
        disk.latent = self.latent.clone();
        self.pending.clear();
        self.dirty.clear();
        (disk, rep)
    }

    fn admit(&mut self, tag: u64, due_range: (u64, u64), req: Req) {
        let due = self.clock.nanos().saturating_add(self.rng.range(due_range.0, due_range.1));
        let order = self.rng.next_u64();
        self.pending.push(Pending { due, order, tag, req });
    }

    fn check(&self, lba: u64, buf: BlockBuf) -> Result<BlockBuf, SubmitError> {
        if self.pending.len() >= self.cfg.queue_depth {
            return Err(SubmitError::QueueFull(Some(buf)));
        }
        match check_range(lba, buf.blocks(), self.cfg.capacity_blocks) {
            Ok(()) => Ok(buf),
            Err((lba, end)) => {
                Err(SubmitError::OutOfRange { lba, end, capacity: self.cfg.capacity_blocks, buf })
            }
        }
    }

    /// Lands block `i` of a write at `lba` (both images if durable, else marks it dirty).
    fn land_block(&mut self, lba: u64, buf: &BlockBuf, i: u64, durable: bool) {
        let src = &buf[i as usize * BLOCK_SIZE..(i as usize + 1) * BLOCK_SIZE];
        if durable {
            self.durable[block_range(lba + i, 1)].copy_from_slice(src);
            self.dirty.remove(&(lba + i));
        } else {
            self.dirty.insert(lba + i, src.into());
        }
        self.latent.remove(&(lba + i));
    }

    /// Applies a request that has come due and builds its completion.
    fn complete(&mut self, p: Pending) -> Completion {
        let f = self.faults.get();
        match p.req {
            Req::Write { lba, buf, durable, fail } => {
                self.counters.writes += 1;
                let blocks = buf.blocks();
                let result = if fail {
                    self.counters.write_errors += 1;
                    // Unknown device state: each block landed or not.
                    for i in 0..blocks {
                        if self.rng.chance(0.5) {
                            self.land_block(lba, &buf, i, durable);
                        }
                    }
                    Err(BlockError::Io("sim: injected write error".into()))
                } else {
                    for i in 0..blocks {
                        self.land_block(lba, &buf, i, durable);
                    }
                    if self.rng.chance(f.latent_on_write) {
                        self.latent.insert(lba + self.rng.below(blocks));
                        self.counters.latent_marked += 1;
                    }
                    Ok(())
                };
                Completion { tag: p.tag, op: BlockOp::Write, lba, result, buf: Some(buf) }
            }
            Req::Read { lba, mut buf } => {
                self.counters.reads += 1;
                let bad = self.latent.range(lba..lba + buf.blocks()).next().copied();
                let random = self.rng.chance(f.read_error);
                let result = if let Some(b) = bad {
                    self.counters.read_errors += 1;
                    self.counters.latent_read_errors += 1;
                    Err(BlockError::Io(format!("sim: latent sector error at block {b}")))
                } else if random {
                    self.counters.read_errors += 1;
                    Err(BlockError::Io("sim: injected read error".into()))
                } else {
                    for (i, out) in buf.chunks_mut(BLOCK_SIZE).enumerate() {
                        out.copy_from_slice(self.visible(lba + i as u64));
                    }
                    Ok(())
                };
                Completion { tag: p.tag, op: BlockOp::Read, lba, result, buf: Some(buf) }
            }
            Req::Flush { covers } => {
                self.counters.flushes += 1;
                for lba in covers {
                    // Still dirty: persist what the cache holds now (a newer value is fine: the
                    // cache may write back at any time).
                    if let Some(data) = self.dirty.remove(&lba) {
                        self.durable[block_range(lba, 1)].copy_from_slice(&data);
                    }
                }
                Completion { tag: p.tag, op: BlockOp::Flush, lba: 0, result: Ok(()), buf: None }
            }
        }
    }

    /// The cache writes one dirty block back, sometimes.
    fn maybe_writeback(&mut self) {
        let p = self.faults.get().writeback;
        if self.rng.chance(p) && !self.dirty.is_empty() {
            let i = self.rng.below(self.dirty.len() as u64) as usize;
            let lba = *self.dirty.keys().nth(i).expect("index below len");
            let data = self.dirty.remove(&lba).expect("a dirty block");
            self.durable[block_range(lba, 1)].copy_from_slice(&data);
            self.counters.writebacks += 1;
        }
    }
}

fn block_range(lba: u64, blocks: u64) -> std::ops::Range<usize> {
    let start = lba as usize * BLOCK_SIZE;
    start..start + blocks as usize * BLOCK_SIZE
}

impl BlockIo for SimDisk {
    fn block_size(&self) -> usize {
        BLOCK_SIZE
    }

    fn capacity_blocks(&self) -> u64 {
        self.cfg.capacity_blocks
    }

    fn queue_depth(&self) -> usize {
        self.cfg.queue_depth
    }

    fn in_flight(&self) -> usize {
        self.pending.len()
    }

    fn submit_write(&mut self, tag: u64, lba: u64, buf: BlockBuf, durable: bool) -> Result<(), SubmitError> {
        let buf = self.check(lba, buf)?;
        // Decided at submission so the fault is part of the seeded sequence whatever the poll pattern.
        let fail = self.rng.chance(self.faults.get().write_error);
        self.admit(tag, self.cfg.write_latency_ns, Req::Write { lba, buf, durable, fail });
        Ok(())
    }

    fn submit_read(&mut self, tag: u64, lba: u64, buf: BlockBuf) -> Result<(), SubmitError> {
        let buf = self.check(lba, buf)?;
        self.admit(tag, self.cfg.read_latency_ns, Req::Read { lba, buf });
        Ok(())
    }

    fn submit_flush(&mut self, tag: u64) -> Result<(), SubmitError> {
        if self.pending.len() >= self.cfg.queue_depth {
            return Err(SubmitError::QueueFull(None));
        }
        let covers = self.dirty.keys().copied().collect();
        self.admit(tag, self.cfg.flush_latency_ns, Req::Flush { covers });
        Ok(())
    }

    fn poll_completions(&mut self, out: &mut Batch<Completion>) -> usize {
        self.maybe_writeback();
        let now = self.clock.nanos();
        if now != self.spin_at {
            self.spin_at = now;
            self.spin_polls = 0;
        }
        let mut n = 0;
        while out.room() > 0 {
            let now = self.clock.nanos();
            let next = self
                .pending
                .iter()
                .enumerate()
                .filter(|(_, p)| p.due <= now)
                .min_by_key(|(_, p)| (p.due, p.order))
                .map(|(i, _)| i);
            let Some(i) = next else { break };
            // `remove`, not `swap_remove`: `pending` stays in submission order for `crash_image`.
            let p = self.pending.remove(i);
            let c = self.complete(p);
            out.push(c).expect("room checked");
            n += 1;
        }
        if n == 0 && !self.pending.is_empty() && self.cfg.spin_polls_before_advance > 0 {
            self.spin_polls += 1;
            if self.spin_polls >= self.cfg.spin_polls_before_advance {
                // A blocking caller would have waited this long in real time.
                let due = self.next_due().expect("pending is not empty");
                self.clock.set(due.max(now));
                self.counters.clock_jumps += 1;
                self.spin_polls = 0;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests;
