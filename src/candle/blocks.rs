//! An append-only byte store in fixed-size blocks: a daily bucket's slots (128 bytes each, so a
//! slot never spans two blocks) and each of its overflow pools (values framed by a u16 length,
//! which may span blocks); and `Spares`, the blocks of dropped stores kept for the stores to come.
//!
//! Filled blocks are frozen (pushed to `full`) and never change again while the store lives; only
//! the tail block being filled is written, and it is never shared. So a snapshot capture holds the
//! filled blocks by pointer and copies only the tail's bytes (`capture`), and the state written is
//! the state at the capture whatever is appended or dropped afterwards.
//!
//! Expiry without per-record work and without freeing (`Spares`): a dropped store's block list is
//! moved whole into the spares (O(1), no block visited, nothing freed: freeing 128 MiB of blocks
//! takes milliseconds of page release, a stall a poll-mode core must not take at midnight), and a
//! store takes its next block from the spares before the allocator, so a steady day reuses the
//! memory of the day that went out (no allocation, no page faults). A spare still held by a
//! snapshot capture is not reused: its last holder frees it. Spares the ring does not expect to
//! need are freed a bounded number at a time when the partition is idle (`Spares::release`).
//!
//! Invariants: `len` bytes are stored: `full.len() * block_bytes` in the frozen blocks and the
//! rest (`tail_len < block_bytes`) at the start of `tail`; a reused block's bytes past what was
//! appended are stale and never read (every read is bounded by `len`, a capture copies `tail_len`).
//! The next tail is taken when the first byte goes in or when an append fills the block before
//! it, so all of a store's growth (the block and the `full` list's room) happens in the append
//! that grows `memory` (what `tests/candle_alloc` tells apart from per-request allocation).

use crate::projection::{FieldRead, SnapshotError};
use std::sync::Arc;

/// An append-only byte store (see the module header).
#[derive(Clone, Debug)]
pub(crate) struct Blocks {
    block_bytes: usize,
    full: Vec<Arc<[u8]>>,
    /// The block being filled (unique: never captured by pointer).
    tail: Option<Arc<[u8]>>,
    tail_len: usize,
}

impl Blocks {
    /// An empty store of `block_bytes` blocks (no memory yet).
    pub(crate) fn new(block_bytes: usize) -> Self {
        assert!(block_bytes > 0);
        Self { block_bytes, full: Vec::new(), tail: None, tail_len: 0 }
    }

    /// Bytes stored.
    pub(crate) fn len(&self) -> usize {
        self.full.len() * self.block_bytes + self.tail_len
    }

    /// Blocks it holds (the tail's included).
    pub(crate) fn block_count(&self) -> usize {
        self.full.len() + usize::from(self.tail.is_some())
    }

    /// Bytes of memory the blocks take (the tail's whole block counted).
    pub(crate) fn memory(&self) -> usize {
        self.block_count() * self.block_bytes
    }

    /// Appends `bytes`, taking each new block from `spares` first, freezing each block it fills.
    pub(crate) fn append(&mut self, mut bytes: &[u8], spares: &mut Spares) {
        debug_assert_eq!(spares.block_bytes, self.block_bytes, "spares of another block size");
        while !bytes.is_empty() {
            let n = self.fill_tail(bytes.len(), spares);
            let at = self.tail_len;
            self.tail_mut()[at..at + n].copy_from_slice(&bytes[..n]);
            self.advance_tail(n, spares);
            bytes = &bytes[n..];
        }
    }

    /// Makes sure a tail block exists; how many of `want` bytes fit in it.
    fn fill_tail(&mut self, want: usize, spares: &mut Spares) -> usize {
        if self.tail.is_none() {
            self.tail = Some(spares.take().unwrap_or_else(|| Spares::fresh(self.block_bytes)));
        }
        want.min(self.block_bytes - self.tail_len)
    }

    fn tail_mut(&mut self) -> &mut [u8] {
        let tail = self.tail.as_mut().expect("fill_tail made one");
        Arc::get_mut(tail).expect("the tail block is never shared")
    }

    /// Counts `n` bytes written into the tail; freezes it when full and takes the next one.
    fn advance_tail(&mut self, n: usize, spares: &mut Spares) {
        self.tail_len += n;
        if self.tail_len == self.block_bytes {
            self.full.push(self.tail.take().expect("a tail was written"));
            self.tail_len = 0;
            self.fill_tail(0, spares);
        }
    }

    /// The bytes stored in block `block` (its filled part).
    fn block(&self, block: usize) -> &[u8] {
        match self.full.get(block) {
            Some(b) => b,
            None => self.tail.as_deref().map_or(&[], |t| &t[..self.tail_len]),
        }
    }

    /// The `len` bytes at `at` when they lie in one block (a slot always does).
    pub(crate) fn slice(&self, at: usize, len: usize) -> Option<&[u8]> {
        let (block, offset) = (at / self.block_bytes, at % self.block_bytes);
        if offset + len > self.block_bytes || at + len > self.len() {
            return None;
        }
        self.block(block).get(offset..offset + len)
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

    /// The blocks as a snapshot writes them: the frozen ones shared, the tail's bytes copied (if
    /// any).
    pub(crate) fn capture(&self, into: &mut Vec<Arc<[u8]>>) {
        into.extend(self.full.iter().cloned());
        if self.tail_len > 0 {
            into.push(Arc::from(self.block(self.full.len())));
        }
    }

    /// Appends `len` bytes read from `r`, block by block (a snapshot's load: no buffer but the
    /// blocks themselves, taken from `spares` first).
    pub(crate) fn load<R: FieldRead + ?Sized>(
        &mut self,
        r: &mut R,
        mut len: usize,
        spares: &mut Spares,
    ) -> Result<(), SnapshotError> {
        while len > 0 {
            let n = self.fill_tail(len, spares);
            let at = self.tail_len;
            r.fill(&mut self.tail_mut()[at..at + n])?;
            self.advance_tail(n, spares);
            len -= n;
        }
        Ok(())
    }
}

/// Blocks of one size given back by dropped stores (see the module header). Each dropped store's
/// blocks are kept as they were moved in; blocks are taken from the newest, freed from the oldest.
#[derive(Clone, Debug)]
pub(crate) struct Spares {
    block_bytes: usize,
    retired: Vec<Retired>,
    /// Blocks in `retired`.
    count: usize,
}

/// One dropped store's blocks.
#[derive(Clone, Debug)]
struct Retired {
    full: Vec<Arc<[u8]>>,
    tail: Option<Arc<[u8]>>,
}

impl Retired {
    fn pop(&mut self) -> Option<Arc<[u8]>> {
        self.tail.take().or_else(|| self.full.pop())
    }

    fn is_empty(&self) -> bool {
        self.tail.is_none() && self.full.is_empty()
    }
}

impl Spares {
    /// No spares, for blocks of `block_bytes`.
    pub(crate) fn new(block_bytes: usize) -> Self {
        Self { block_bytes, retired: Vec::new(), count: 0 }
    }

    /// A new zeroed block from the allocator.
    fn fresh(block_bytes: usize) -> Arc<[u8]> {
        // Collected straight into the Arc (a trusted length): one allocation, no copy of a Vec.
        std::iter::repeat_n(0u8, block_bytes).collect()
    }

    /// Blocks kept.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Bytes of memory the kept blocks take.
    pub(crate) fn memory(&self) -> usize {
        self.count * self.block_bytes
    }

    /// Keeps the blocks of a dropped store: its block list moved whole, no block visited.
    pub(crate) fn retire(&mut self, blocks: Blocks) {
        debug_assert_eq!(blocks.block_bytes, self.block_bytes, "blocks of another size");
        let retired = Retired { full: blocks.full, tail: blocks.tail };
        if !retired.is_empty() {
            self.count += retired.full.len() + usize::from(retired.tail.is_some());
            self.retired.push(retired);
        }
    }

    /// A block to write, not shared with anything (a spare a capture still holds is let go: the
    /// capture frees it); `None` when none is kept.
    pub(crate) fn take(&mut self) -> Option<Arc<[u8]>> {
        while let Some(newest) = self.retired.last_mut() {
            let Some(mut block) = newest.pop() else {
                self.retired.pop();
                continue;
            };
            self.count -= 1;
            if Arc::get_mut(&mut block).is_some() {
                return Some(block);
            }
        }
        None
    }

    /// Frees spares while more than `keep` are kept, at most `max` of them; returns how many.
    pub(crate) fn release(&mut self, keep: usize, max: usize) -> usize {
        let mut freed = 0;
        while self.count > keep && freed < max {
            let Some(oldest) = self.retired.first_mut() else { break };
            if oldest.pop().is_some() {
                self.count -= 1;
                freed += 1;
            }
            if oldest.is_empty() {
                self.retired.remove(0);
            }
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_span_blocks_and_reads_copy_across_them() {
        let mut spares = Spares::new(8);
        let mut b = Blocks::new(8);
        b.append(b"abcdef", &mut spares);
        b.append(b"ghijklmnopq", &mut spares);
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
        b.append(b"rs", &mut spares);
        assert_eq!(captured[2].len(), 1, "the capture's tail does not see later appends");
    }

    #[test]
    fn a_dropped_store_s_blocks_are_reused_and_stale_bytes_never_read() {
        let mut spares = Spares::new(8);
        let mut old = Blocks::new(8);
        old.append(b"0123456789abcdefXY", &mut spares);
        let pointers: Vec<*const u8> =
            old.full.iter().map(|b| b.as_ptr()).chain(old.tail.iter().map(|t| t.as_ptr())).collect();
        spares.retire(old);
        assert_eq!((spares.count(), spares.memory()), (3, 24));
        let mut new = Blocks::new(8);
        new.append(b"abc", &mut spares);
        assert_eq!(new.len(), 3);
        assert!(pointers.contains(&new.tail.as_ref().unwrap().as_ptr()), "a spare was reused");
        let mut out = [0u8; 4];
        assert!(!new.read(0, &mut out), "the stale bytes past the length are not readable");
        let mut captured = Vec::new();
        new.capture(&mut captured);
        assert_eq!(&*captured[0], b"abc", "a capture copies the written bytes only");
        new.append(b"defghijklmnopqrstuvwxyz", &mut spares);
        assert_eq!(spares.count(), 0, "all three taken");
        assert_eq!(new.block_count(), 4, "then one from the allocator");
        let mut all = [0u8; 26];
        assert!(new.read(0, &mut all));
        assert_eq!(&all, b"abcdefghijklmnopqrstuvwxyz");
    }

    #[test]
    fn a_spare_a_capture_holds_is_not_reused_and_release_keeps_what_it_is_told() {
        let mut spares = Spares::new(4);
        let mut old = Blocks::new(4);
        old.append(b"abcdefgh", &mut spares);
        let mut captured = Vec::new();
        old.capture(&mut captured);
        spares.retire(old);
        assert_eq!(spares.count(), 3, "two filled blocks and the next tail, taken when they filled");
        assert!(spares.take().is_some_and(|b| b.len() == 4), "the empty tail was not captured");
        assert!(spares.take().is_none(), "both filled blocks are held by the capture");
        assert_eq!(spares.count(), 0);
        assert_eq!(&*captured[0], b"abcd", "the capture still reads its bytes");
        let stores: Vec<Blocks> = (0..3)
            .map(|_| {
                let mut b = Blocks::new(4);
                b.append(b"0123456789", &mut spares);
                b
            })
            .collect();
        for b in stores {
            spares.retire(b);
        }
        assert_eq!(spares.count(), 9);
        assert_eq!(spares.release(5, 2), 2, "at most two a call");
        assert_eq!(spares.release(5, 10), 2, "down to five kept");
        assert_eq!(spares.release(5, 10), 0);
        assert_eq!(spares.release(0, 10), 5);
        assert!(spares.take().is_none());
    }
}
