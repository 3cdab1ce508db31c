//! The `BlockIo` seam: asynchronous, block-granular storage for the Unified Append Log.
//!
//! A backend owns one device (an NVMe namespace through SPDK, a file or raw device through io_uring
//! with O_DIRECT, memory, or the simulator's disk). Requests are submitted with a caller-chosen tag
//! and complete later, in any order, through `poll_completions`; the caller polls once per shard-loop
//! iteration, so nothing blocks. Buffers move into the backend with the request and come back in its
//! completion: the device may DMA into or out of them while the request is in flight, so nobody else
//! may touch them, and ownership says so.
//!
//! Durability: a write submitted with `durable = true` completes only once the device says the data
//! survives power loss (FUA, `RWF_DSYNC`, or a write followed by a completed flush); a completed
//! `submit_flush` makes every write that completed before it was submitted durable. Only then may the
//! log acknowledge anything to a client.
//!
//! Invariants: at most `queue_depth()` requests are in flight (a submit beyond that is refused with
//! the buffer handed back, never queued without bound); every accepted request completes exactly once;
//! buffers are `block_size()`-aligned whole blocks; nothing allocates per request after start-up
//! (buffers come from a [`BlockBufPool`] sized from config).

pub mod blocking;
mod buf;
pub mod memory;
pub mod region;
#[cfg(feature = "spdk")]
pub mod spdk;
pub mod uring;

pub use buf::{BlockBuf, BlockBufPool};
pub use region::{Region, RegionOutOfRange};

use thiserror::Error;

/// The block size every backend exposes: the UAL's unit of I/O and alignment.
pub const BLOCK_SIZE: usize = 4096;

/// What a completed request was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockOp {
    /// A write of the buffer at `lba`.
    Write,
    /// A read into the buffer from `lba`.
    Read,
    /// A cache flush.
    Flush,
}

/// Why a request failed; the device state for its blocks is unknown (a failed write may have
/// written some, all or none of its blocks).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum BlockError {
    /// The device reported an I/O error (errno or NVMe status).
    #[error("device I/O error: {0}")]
    Io(String),
    /// The request reached past the end of the device.
    #[error("blocks {lba}..{end} are past the device's {capacity} blocks")]
    OutOfRange {
        /// First block.
        lba: u64,
        /// One past the last block.
        end: u64,
        /// Device size in blocks.
        capacity: u64,
    },
}

/// A finished request.
#[derive(Debug)]
pub struct Completion {
    /// The tag given at submission.
    pub tag: u64,
    /// What it was.
    pub op: BlockOp,
    /// The first block (0 for flushes).
    pub lba: u64,
    /// The outcome.
    pub result: Result<(), BlockError>,
    /// The buffer, returned (None for flushes).
    pub buf: Option<BlockBuf>,
}

/// A request the backend did not accept; nothing was started and the buffer is handed back.
#[derive(Debug, Error)]
pub enum SubmitError {
    /// `queue_depth()` requests are already in flight.
    #[error("queue full")]
    QueueFull(Option<BlockBuf>),
    /// The request reaches past the device's end.
    #[error("out of range: blocks {lba}..{end} of {capacity}")]
    OutOfRange {
        /// First block.
        lba: u64,
        /// One past the last block.
        end: u64,
        /// Device size in blocks.
        capacity: u64,
        /// The buffer, handed back.
        buf: BlockBuf,
    },
}

/// One storage device (or file) seen as an array of `BLOCK_SIZE` blocks.
pub trait BlockIo {
    /// Block size in bytes (always [`BLOCK_SIZE`] today).
    fn block_size(&self) -> usize;
    /// Device size in blocks.
    fn capacity_blocks(&self) -> u64;
    /// Most requests in flight at once.
    fn queue_depth(&self) -> usize;
    /// Requests in flight now.
    fn in_flight(&self) -> usize;
    /// Writes `buf` (whole blocks) at `lba`; with `durable`, completes only once it is durable.
    fn submit_write(&mut self, tag: u64, lba: u64, buf: BlockBuf, durable: bool) -> Result<(), SubmitError>;
    /// Reads `buf.len()` bytes (whole blocks) from `lba` into `buf`.
    fn submit_read(&mut self, tag: u64, lba: u64, buf: BlockBuf) -> Result<(), SubmitError>;
    /// Makes every write completed before this call durable.
    fn submit_flush(&mut self, tag: u64) -> Result<(), SubmitError>;
    /// Moves finished requests into `out` (at most `out.room()`); returns how many. Never blocks.
    fn poll_completions(&mut self, out: &mut crate::Batch<Completion>) -> usize;

    /// A file descriptor that becomes readable when a request in flight completes, for a caller
    /// with nothing else to do to sleep on (with its other sources) instead of spinning; `None`
    /// (the default) for devices that complete without the kernel (memory, SPDK), which are
    /// polled.
    fn wait_fd(&self) -> Option<i32> {
        None
    }
}

/// Checks that `blocks` blocks at `lba` fit a device of `capacity` blocks.
pub fn check_range(lba: u64, blocks: u64, capacity: u64) -> Result<(), (u64, u64)> {
    let end = lba.saturating_add(blocks);
    if end > capacity {
        Err((lba, end))
    } else {
        Ok(())
    }
}
