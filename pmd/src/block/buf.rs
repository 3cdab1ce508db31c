//! Block-aligned I/O buffers and their pool.
//!
//! O_DIRECT and NVMe DMA need buffers aligned to the block size, which `Vec<u8>` does not promise,
//! so `BlockBuf` allocates with an explicit `Layout` (the reason this lives in `pmd/`, where `unsafe`
//! is allowed). Invariants: the pointer is non-null, `BLOCK_SIZE`-aligned, owns `len` initialised
//! bytes (zeroed at allocation), and `len` is a non-zero multiple of `BLOCK_SIZE`.

use super::BLOCK_SIZE;
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;

/// An owned, `BLOCK_SIZE`-aligned buffer of whole blocks.
pub struct BlockBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: BlockBuf owns its allocation exclusively (like Box<[u8]>); moving it to another thread
// moves that ownership, and &BlockBuf only gives shared reads.
unsafe impl Send for BlockBuf {}
// SAFETY: shared references only allow reads of initialised bytes.
unsafe impl Sync for BlockBuf {}

impl std::fmt::Debug for BlockBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockBuf").field("len", &self.len).finish()
    }
}

impl BlockBuf {
    /// A zeroed buffer of `blocks` blocks. Panics if `blocks` is 0 or the allocation fails
    /// (buffers are allocated at start-up, where running out of memory is fatal).
    pub fn new(blocks: usize) -> Self {
        assert!(blocks > 0, "a block buffer holds at least one block");
        let len = blocks.checked_mul(BLOCK_SIZE).expect("block buffer size overflows");
        let layout = Self::layout(len);
        // SAFETY: layout has a non-zero size (blocks > 0) and a valid power-of-two alignment.
        let raw = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        Self { ptr, len }
    }

    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len, BLOCK_SIZE).expect("BLOCK_SIZE is a power of two")
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a buffer holds at least one block.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Its length in blocks.
    pub fn blocks(&self) -> u64 {
        (self.len / BLOCK_SIZE) as u64
    }

    /// The raw pointer, for backends handing the buffer to a device.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl std::ops::Deref for BlockBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr owns len initialised bytes (zeroed at allocation) for as long as self lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for BlockBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref, and &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for BlockBuf {
    fn drop(&mut self) {
        // SAFETY: ptr was allocated in `new` with exactly this layout and is freed once, here.
        unsafe { dealloc(self.ptr.as_ptr(), Self::layout(self.len)) }
    }
}

/// A fixed set of equal-sized buffers allocated at start-up; taking and returning never allocates.
#[derive(Debug)]
pub struct BlockBufPool {
    free: Vec<BlockBuf>,
    count: usize,
    blocks_each: usize,
}

impl BlockBufPool {
    /// `count` buffers of `blocks_each` blocks.
    pub fn new(count: usize, blocks_each: usize) -> Self {
        let free = (0..count).map(|_| BlockBuf::new(blocks_each)).collect();
        Self { free, count, blocks_each }
    }

    /// A buffer, or None when all are out.
    pub fn take(&mut self) -> Option<BlockBuf> {
        self.free.pop()
    }

    /// Gives a buffer back. Panics on a buffer of another size or one too many (a programmer error).
    pub fn put(&mut self, buf: BlockBuf) {
        assert_eq!(buf.len(), self.blocks_each * BLOCK_SIZE, "buffer from another pool");
        assert!(self.free.len() < self.count, "more buffers returned than the pool owns");
        self.free.push(buf);
    }

    /// Buffers available now.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Blocks per buffer.
    pub fn blocks_each(&self) -> usize {
        self.blocks_each
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_zeroed_and_writable() {
        let mut b = BlockBuf::new(3);
        assert_eq!(b.len(), 3 * BLOCK_SIZE);
        assert_eq!(b.as_mut_ptr() as usize % BLOCK_SIZE, 0);
        assert!(b.iter().all(|&x| x == 0));
        b[BLOCK_SIZE * 3 - 1] = 7;
        assert_eq!(b[BLOCK_SIZE * 3 - 1], 7);
        assert_eq!(b.blocks(), 3);
    }

    #[test]
    fn pool_hands_out_and_takes_back_without_growing() {
        let mut p = BlockBufPool::new(2, 1);
        let a = p.take().unwrap();
        let b = p.take().unwrap();
        assert!(p.take().is_none());
        p.put(a);
        p.put(b);
        assert_eq!(p.available(), 2);
    }

    #[test]
    #[should_panic(expected = "another pool")]
    fn pool_refuses_foreign_buffers() {
        let mut p = BlockBufPool::new(1, 1);
        p.put(BlockBuf::new(2));
    }
}
