//! The memory `BlockIo` backend: a device held in RAM, for tests, benchmarks of the log without a
//! device, and as the base of the simulator's faulty disk.
//!
//! Requests take effect at submission and complete at the next `poll_completions`, in submission
//! order. Invariants: the device buffer and the in-flight queue are allocated once in `new`; at most
//! `queue_depth` requests are in flight; "durable" means nothing more than "written" here, so
//! crash tests use the simulator's disk, which models what a crash loses.

use super::{check_range, BlockBuf, BlockError, BlockIo, BlockOp, Completion, SubmitError, BLOCK_SIZE};
use crate::Batch;
use std::collections::VecDeque;

/// A RAM-backed device.
#[derive(Debug)]
pub struct MemoryBlockIo {
    data: Vec<u8>,
    capacity_blocks: u64,
    queue_depth: usize,
    done: VecDeque<Completion>,
}

impl MemoryBlockIo {
    /// A zeroed device of `capacity_blocks` blocks accepting `queue_depth` requests in flight.
    pub fn new(capacity_blocks: u64, queue_depth: usize) -> Self {
        assert!(queue_depth > 0, "queue_depth must be at least 1");
        let bytes = usize::try_from(capacity_blocks).expect("fits memory") * BLOCK_SIZE;
        Self {
            data: vec![0; bytes],
            capacity_blocks,
            queue_depth,
            done: VecDeque::with_capacity(queue_depth),
        }
    }

    /// The device's bytes (for tests and the simulator).
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// The device's bytes, writable (for the simulator's fault injection).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    fn admit(&self, lba: u64, buf: BlockBuf) -> Result<BlockBuf, SubmitError> {
        if self.done.len() >= self.queue_depth {
            return Err(SubmitError::QueueFull(Some(buf)));
        }
        match check_range(lba, buf.blocks(), self.capacity_blocks) {
            Ok(()) => Ok(buf),
            Err((lba, end)) => Err(SubmitError::OutOfRange { lba, end, capacity: self.capacity_blocks, buf }),
        }
    }

    fn range(lba: u64, buf: &BlockBuf) -> std::ops::Range<usize> {
        let start = lba as usize * BLOCK_SIZE;
        start..start + buf.len()
    }
}

impl BlockIo for MemoryBlockIo {
    fn block_size(&self) -> usize {
        BLOCK_SIZE
    }

    fn capacity_blocks(&self) -> u64 {
        self.capacity_blocks
    }

    fn queue_depth(&self) -> usize {
        self.queue_depth
    }

    fn in_flight(&self) -> usize {
        self.done.len()
    }

    fn submit_write(&mut self, tag: u64, lba: u64, buf: BlockBuf, _durable: bool) -> Result<(), SubmitError> {
        let buf = self.admit(lba, buf)?;
        self.data[Self::range(lba, &buf)].copy_from_slice(&buf);
        self.done.push_back(Completion { tag, op: BlockOp::Write, lba, result: Ok(()), buf: Some(buf) });
        Ok(())
    }

    fn submit_read(&mut self, tag: u64, lba: u64, mut buf: BlockBuf) -> Result<(), SubmitError> {
        buf = self.admit(lba, buf)?;
        let range = Self::range(lba, &buf);
        buf.copy_from_slice(&self.data[range]);
        self.done.push_back(Completion { tag, op: BlockOp::Read, lba, result: Ok(()), buf: Some(buf) });
        Ok(())
    }

    fn submit_flush(&mut self, tag: u64) -> Result<(), SubmitError> {
        if self.done.len() >= self.queue_depth {
            return Err(SubmitError::QueueFull(None));
        }
        self.done.push_back(Completion { tag, op: BlockOp::Flush, lba: 0, result: Ok(()), buf: None });
        Ok(())
    }

    fn poll_completions(&mut self, out: &mut Batch<Completion>) -> usize {
        let mut n = 0;
        while out.room() > 0 {
            let Some(c) = self.done.pop_front() else { break };
            out.push(c).expect("room checked");
            n += 1;
        }
        n
    }
}

/// Shared checks every backend's tests can run (`conformance(&mut backend)`): write, read back,
/// flush, out-of-range and queue-full behaviour. Public so other backends' tests reuse it.
pub fn conformance<B: BlockIo>(dev: &mut B) {
    let mut out = Batch::with_capacity(dev.queue_depth().max(4));
    let mut buf = BlockBuf::new(2);
    buf[..5].copy_from_slice(b"vigil");
    buf[BLOCK_SIZE..BLOCK_SIZE + 3].copy_from_slice(b"end");
    dev.submit_write(1, 3, buf, true).expect("write accepted");
    let c = wait_one(dev, &mut out);
    assert_eq!((c.tag, c.op, c.lba), (1, BlockOp::Write, 3));
    assert_eq!(c.result, Ok(()));
    dev.submit_flush(2).expect("flush accepted");
    let c = wait_one(dev, &mut out);
    assert_eq!((c.tag, c.op, c.result.clone()), (2, BlockOp::Flush, Ok(())));
    dev.submit_read(3, 3, BlockBuf::new(2)).expect("read accepted");
    let c = wait_one(dev, &mut out);
    let got = c.buf.expect("read returns its buffer");
    assert_eq!(&got[..5], b"vigil");
    assert_eq!(&got[BLOCK_SIZE..BLOCK_SIZE + 3], b"end");
    let cap = dev.capacity_blocks();
    match dev.submit_write(4, cap - 1, BlockBuf::new(2), false) {
        Err(SubmitError::OutOfRange { lba, end, capacity, .. }) => {
            assert_eq!((lba, end, capacity), (cap - 1, cap + 1, cap))
        }
        other => panic!("expected OutOfRange, got {other:?}"),
    }
    assert_eq!(dev.in_flight(), 0);
}

/// Polls until one completion arrives (bounded: 10 s), for tests.
pub fn wait_one<B: BlockIo>(dev: &mut B, out: &mut Batch<Completion>) -> Completion {
    super::blocking::next_completion(dev, out, std::time::Duration::from_secs(10))
        .expect("no completion within 10 s")
}

/// Makes an error value for backends that map errno.
pub fn io_error(what: &str, errno: i32) -> BlockError {
    BlockError::Io(format!("{what}: {}", std::io::Error::from_raw_os_error(errno)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_backend_conforms() {
        conformance(&mut MemoryBlockIo::new(16, 4));
    }

    #[test]
    fn queue_full_hands_the_buffer_back() {
        let mut dev = MemoryBlockIo::new(8, 1);
        dev.submit_write(1, 0, BlockBuf::new(1), false).unwrap();
        match dev.submit_write(2, 1, BlockBuf::new(1), false) {
            Err(SubmitError::QueueFull(Some(b))) => assert_eq!(b.blocks(), 1),
            other => panic!("{other:?}"),
        }
        let mut out = Batch::with_capacity(4);
        assert_eq!(dev.poll_completions(&mut out), 1);
        assert_eq!(dev.in_flight(), 0);
    }
}
