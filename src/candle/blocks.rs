//! An append-only byte store in fixed-size blocks: a daily bucket's slots (128 bytes each, so a
//! slot never spans two blocks) and each of its overflow pools (values framed by a u16 length,
//! which may span blocks).
//!
//! Filled blocks are frozen into `Arc<[u8]>` and never change again; only the tail block being
//! filled is mutable, and it is never shared. So a snapshot capture holds the filled blocks by
//! pointer and copies only the tail (`capture`), and the state written is the state at the
//! capture whatever is appended or dropped afterwards. Dropping the store frees its blocks whole:
//! no per-record work.
//!
//! Invariants: `len` bytes are stored: `full.len() * block_bytes` in the frozen blocks and the
//! rest in `tail` (`tail.len() < block_bytes`); the tail's capacity is one block, reserved when
//! the first byte goes in or when an append fills the block before it.

use crate::projection::{FieldRead, SnapshotError};
use std::sync::Arc;

/// An append-only byte store (see the module header).
#[derive(Clone, Debug)]
pub(crate) struct Blocks {
    block_bytes: usize,
    full: Vec<Arc<[u8]>>,
    tail: Vec<u8>,
}

impl Blocks {
    /// An empty store of `block_bytes` blocks (no memory yet).
    pub(crate) fn new(block_bytes: usize) -> Self {
        assert!(block_bytes > 0);
        Self { block_bytes, full: Vec::new(), tail: Vec::new() }
    }

    /// Bytes stored.
    pub(crate) fn len(&self) -> usize {
        self.full.len() * self.block_bytes + self.tail.len()
    }

    /// Bytes of memory the blocks take (the tail's whole reservation counted).
    pub(crate) fn memory(&self) -> usize {
        self.full.len() * self.block_bytes + self.tail.capacity()
    }

    /// Appends `bytes`, freezing each block it fills.
    pub(crate) fn append(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.tail.capacity() == 0 {
                self.tail.reserve_exact(self.block_bytes);
            }
            let n = bytes.len().min(self.block_bytes - self.tail.len());
            self.tail.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.tail.len() == self.block_bytes {
                self.freeze_tail();
                // The next block is taken with the freeze, so a store grows at one append and
                // every other append allocates nothing (`tests/candle_alloc.rs` checks it).
                self.tail.reserve_exact(self.block_bytes);
            }
        }
    }

    fn freeze_tail(&mut self) {
        let tail = std::mem::take(&mut self.tail);
        self.full.push(Arc::from(tail.into_boxed_slice()));
    }

    /// The `len` bytes at `at` when they lie in one block (a slot always does).
    pub(crate) fn slice(&self, at: usize, len: usize) -> Option<&[u8]> {
        let (block, offset) = (at / self.block_bytes, at % self.block_bytes);
        if offset + len > self.block_bytes || at + len > self.len() {
            return None;
        }
        let bytes: &[u8] = match self.full.get(block) {
            Some(b) => b,
            None => &self.tail,
        };
        bytes.get(offset..offset + len)
    }

    /// Copies the bytes at `at..at + out.len()` into `out`; false (nothing meaningful copied) if
    /// they run past the end.
    pub(crate) fn read(&self, mut at: usize, out: &mut [u8]) -> bool {
        if at + out.len() > self.len() {
            return false;
        }
        let mut done = 0;
        while done < out.len() {
            let n = (out.len() - done).min(self.block_bytes - at % self.block_bytes);
            let part = self.slice(at, n).expect("within one block and the length");
            out[done..done + n].copy_from_slice(part);
            done += n;
            at += n;
        }
        true
    }

    /// The blocks as a snapshot writes them: the frozen ones shared, the tail copied (if any).
    pub(crate) fn capture(&self, into: &mut Vec<Arc<[u8]>>) {
        into.extend(self.full.iter().cloned());
        if !self.tail.is_empty() {
            into.push(Arc::from(&self.tail[..]));
        }
    }

    /// Appends `len` bytes read from `r`, block by block (a snapshot's load: no buffer but the
    /// blocks themselves).
    pub(crate) fn load<R: FieldRead + ?Sized>(
        &mut self,
        r: &mut R,
        mut len: usize,
    ) -> Result<(), SnapshotError> {
        while len > 0 {
            if self.tail.capacity() == 0 {
                self.tail.reserve_exact(self.block_bytes);
            }
            let at = self.tail.len();
            let n = len.min(self.block_bytes - at);
            self.tail.resize(at + n, 0);
            r.fill(&mut self.tail[at..])?;
            len -= n;
            if self.tail.len() == self.block_bytes {
                self.freeze_tail();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_span_blocks_and_reads_copy_across_them() {
        let mut b = Blocks::new(8);
        b.append(b"abcdef");
        b.append(b"ghijklmnopq");
        assert_eq!(b.len(), 17);
        assert_eq!(b.full.len(), 2);
        assert_eq!(b.slice(8, 8), Some(&b"ijklmnop"[..]));
        assert_eq!(b.slice(6, 4), None, "spans two blocks");
        let mut out = [0u8; 11];
        assert!(b.read(4, &mut out));
        assert_eq!(&out, b"efghijklmno");
        assert!(!b.read(10, &mut out), "past the end");
        let mut captured = Vec::new();
        b.capture(&mut captured);
        let all: Vec<u8> = captured.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(all, b"abcdefghijklmnopq");
        assert!(Arc::ptr_eq(&captured[0], &b.full[0]), "filled blocks are shared, not copied");
        b.append(b"rs");
        assert_eq!(captured[2].len(), 1, "the capture's tail does not see later appends");
    }
}
