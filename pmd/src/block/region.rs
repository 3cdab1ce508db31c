//! A `BlockIo` view of a contiguous range of another backend's blocks: how several partition logs
//! share one raw device or NVMe namespace, each in a region of its own.
//!
//! `Region::new(dev, first, blocks)` shows blocks `first..first + blocks` of `dev` as blocks
//! `0..blocks`. Every request is checked against the region's end before it reaches the device, so
//! a log can never write into its neighbour's region; completions come back with the region's own
//! block numbers.
//!
//! Invariants: the region lies inside the device (checked in `new`); a request past its end is
//! refused with the buffer handed back, exactly as a device refuses one past its own end; nothing
//! else changes (queue depth, durability and completion order are the device's).

use super::{check_range, BlockBuf, BlockIo, Completion, SubmitError};
use crate::Batch;
use thiserror::Error;

/// The region does not fit the device.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("blocks {first}..{end} are past the device's {capacity} blocks")]
pub struct RegionOutOfRange {
    /// First block of the region.
    pub first: u64,
    /// One past its last block.
    pub end: u64,
    /// The device's size in blocks.
    pub capacity: u64,
}

/// Blocks `first..first + blocks` of `D`, seen as a device of `blocks` blocks.
#[derive(Debug)]
pub struct Region<D> {
    dev: D,
    first: u64,
    blocks: u64,
}

impl<D: BlockIo> Region<D> {
    /// The region of `blocks` blocks starting at block `first` of `dev`.
    pub fn new(dev: D, first: u64, blocks: u64) -> Result<Self, RegionOutOfRange> {
        let capacity = dev.capacity_blocks();
        check_range(first, blocks, capacity).map_err(|(first, end)| RegionOutOfRange {
            first,
            end,
            capacity,
        })?;
        Ok(Self { dev, first, blocks })
    }

    /// The device's block where the region starts.
    pub fn first_block(&self) -> u64 {
        self.first
    }

    /// The device underneath.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Translates a request's range, or hands its buffer back as the device would.
    fn place(&self, lba: u64, buf: BlockBuf) -> Result<(u64, BlockBuf), SubmitError> {
        match check_range(lba, buf.blocks(), self.blocks) {
            Ok(()) => Ok((self.first + lba, buf)),
            Err((lba, end)) => Err(SubmitError::OutOfRange { lba, end, capacity: self.blocks, buf }),
        }
    }
}

impl<D: BlockIo> BlockIo for Region<D> {
    fn block_size(&self) -> usize {
        self.dev.block_size()
    }

    fn capacity_blocks(&self) -> u64 {
        self.blocks
    }

    fn queue_depth(&self) -> usize {
        self.dev.queue_depth()
    }

    fn in_flight(&self) -> usize {
        self.dev.in_flight()
    }

    fn submit_write(&mut self, tag: u64, lba: u64, buf: BlockBuf, durable: bool) -> Result<(), SubmitError> {
        // The region lies inside the device (`new`), so the device never refuses a placed range.
        let (at, buf) = self.place(lba, buf)?;
        self.dev.submit_write(tag, at, buf, durable)
    }

    fn submit_read(&mut self, tag: u64, lba: u64, buf: BlockBuf) -> Result<(), SubmitError> {
        let (at, buf) = self.place(lba, buf)?;
        self.dev.submit_read(tag, at, buf)
    }

    fn submit_flush(&mut self, tag: u64) -> Result<(), SubmitError> {
        self.dev.submit_flush(tag)
    }

    fn poll_completions(&mut self, out: &mut Batch<Completion>) -> usize {
        let before = out.len();
        let n = self.dev.poll_completions(out);
        for c in &mut out.as_mut_slice()[before..] {
            // Flushes report block 0 whatever the region.
            if c.lba >= self.first {
                c.lba -= self.first;
            }
        }
        n
    }

    fn wait_fd(&self) -> Option<i32> {
        self.dev.wait_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::memory::{wait_one, MemoryBlockIo};
    use crate::block::BlockOp;

    fn wait(dev: &mut impl BlockIo) -> Completion {
        wait_one(dev, &mut Batch::with_capacity(4))
    }

    #[test]
    fn requests_land_in_the_region_and_report_its_own_blocks() {
        let mut region = Region::new(MemoryBlockIo::new(64, 4), 16, 8).unwrap();
        assert_eq!(region.capacity_blocks(), 8);
        let mut buf = BlockBuf::new(2);
        buf.fill(0xab);
        region.submit_write(7, 6, buf, true).unwrap();
        let c = wait(&mut region);
        assert_eq!((c.tag, c.op, c.lba), (7, BlockOp::Write, 6));
        assert!(c.result.is_ok());
        let bytes = region.device().bytes();
        assert!(bytes[22 * 4096..24 * 4096].iter().all(|&b| b == 0xab));
        assert!(bytes[..22 * 4096].iter().chain(&bytes[24 * 4096..]).all(|&b| b == 0));
        region.submit_read(8, 6, BlockBuf::new(1)).unwrap();
        let c = wait(&mut region);
        assert_eq!(c.lba, 6);
        assert!(c.buf.unwrap().iter().all(|&b| b == 0xab));
    }

    #[test]
    fn a_request_past_the_region_is_handed_back_though_the_device_has_room() {
        let mut region = Region::new(MemoryBlockIo::new(64, 4), 16, 8).unwrap();
        match region.submit_write(1, 7, BlockBuf::new(2), true) {
            Err(SubmitError::OutOfRange { lba: 7, end: 9, capacity: 8, buf }) => assert_eq!(buf.blocks(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(region.in_flight(), 0);
        assert!(region.device().bytes().iter().all(|&b| b == 0), "nothing reached the device");
    }

    #[test]
    fn a_region_past_the_device_is_refused() {
        let e = Region::new(MemoryBlockIo::new(64, 4), 60, 8).unwrap_err();
        assert_eq!(e, RegionOutOfRange { first: 60, end: 68, capacity: 64 });
    }
}
