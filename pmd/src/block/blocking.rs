//! One request at a time, waited for: how start-up code (formatting a device, reading its label,
//! checking superblocks before anything is written) uses a `BlockIo` that the hot path drives
//! asynchronously.
//!
//! Invariants: the device must have nothing else in flight (a completion for another tag is a
//! caller's bug and reported as an error, never silently consumed as ours); a request that does
//! not complete within [`WAIT_MAX`] is reported as an I/O error, and its buffer stays with the
//! device (which is then not fit for further use).

use super::{BlockBuf, BlockError, BlockIo, Completion, SubmitError};
use crate::Batch;
use std::time::{Duration, Instant};

/// How long one request may take before it is given up on.
pub const WAIT_MAX: Duration = Duration::from_secs(30);

const TAG: u64 = u64::MAX - 1;

/// Reads `blocks` blocks at `lba`.
pub fn read(dev: &mut impl BlockIo, lba: u64, blocks: usize) -> Result<BlockBuf, BlockError> {
    let submitted = dev.submit_read(TAG, lba, BlockBuf::new(blocks));
    let c = wait(dev, submitted)?;
    c.result?;
    c.buf.ok_or_else(|| BlockError::Io("a read completed without its buffer".into()))
}

/// Writes `buf` at `lba` (durably with `durable`).
pub fn write(dev: &mut impl BlockIo, lba: u64, buf: BlockBuf, durable: bool) -> Result<(), BlockError> {
    let submitted = dev.submit_write(TAG, lba, buf, durable);
    wait(dev, submitted)?.result
}

fn wait(dev: &mut impl BlockIo, submitted: Result<(), SubmitError>) -> Result<Completion, BlockError> {
    match submitted {
        Ok(()) => {}
        Err(SubmitError::OutOfRange { lba, end, capacity, .. }) => {
            return Err(BlockError::OutOfRange { lba, end, capacity })
        }
        Err(SubmitError::QueueFull(_)) => return Err(BlockError::Io("the device's queue is full".into())),
    }
    let mut out = Batch::with_capacity(1);
    let c = next_completion(dev, &mut out, WAIT_MAX)
        .ok_or_else(|| BlockError::Io(format!("no completion within {} s", WAIT_MAX.as_secs())))?;
    if c.tag != TAG {
        return Err(BlockError::Io(format!("a completion for another request (tag {})", c.tag)));
    }
    Ok(c)
}

/// The next completion (one already in `out` first), polling the device until one arrives or
/// `within` has passed.
pub fn next_completion(
    dev: &mut impl BlockIo,
    out: &mut Batch<Completion>,
    within: Duration,
) -> Option<Completion> {
    let deadline = Instant::now() + within;
    loop {
        if dev.poll_completions(out) > 0 || !out.is_empty() {
            return out.consume_front(1).next();
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_micros(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::memory::MemoryBlockIo;

    #[test]
    fn a_write_reads_back_and_out_of_range_is_an_error() {
        let mut dev = MemoryBlockIo::new(8, 2);
        let mut buf = BlockBuf::new(1);
        buf.fill(7);
        write(&mut dev, 3, buf, true).unwrap();
        assert!(read(&mut dev, 3, 1).unwrap().iter().all(|&b| b == 7));
        assert_eq!(read(&mut dev, 7, 2).unwrap_err(), BlockError::OutOfRange { lba: 7, end: 9, capacity: 8 });
    }
}
