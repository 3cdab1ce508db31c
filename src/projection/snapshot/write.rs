//! Writing a partition snapshot in chunks: what the shard hands its snapshot store
//! ([`SnapshotHeader`] first, then [`SnapshotChunk`]s), and what the store runs to turn them into
//! the file's bytes ([`SnapshotEncoder`]), on whatever thread it writes from.
//!
//! A chunk is bytes encoded on the shard (the client table, section headers, small sections)
//! followed by blocks shared with a projection's state (at most [`SNAPSHOT_CHUNK_BLOCKS`], `Arc`
//! pointers, no copy) that the store encodes with the projection's `encode` function as it writes.
//! Chunks are recycled: the store hands each back emptied (`SnapshotStore::spare`), so the buffers'
//! memory is a constant, whatever the number of keys.
//!
//! Invariants: the header names the body's length before any of it is written (every section
//! announces its length at the capture); the encoder refuses (`finish` errs) a body of any other
//! length and keeps the first write error, so a failed or short stream never looks whole; the
//! checksum is that of the bytes written (`crc32c_combine` of the header's and the body's).

use super::{SNAPSHOT_HEADER_LEN, SNAPSHOT_MAGIC, SNAPSHOT_VERSION};
use crate::projection::SnapshotSink;
use std::io::{self, Seek, SeekFrom, Write};
use std::sync::Arc;

/// Blocks a chunk holds at most: 4096 pointers (64 KiB), whatever the map's size. Small enough that
/// filling one costs the shard tens of microseconds, large enough that a million keys take a few
/// hundred chunks.
pub const SNAPSHOT_CHUNK_BLOCKS: usize = 4096;

/// Encodes one shared block of a projection's state into the section's bytes.
pub type BlockEncoder = fn(&[u8], &mut dyn SnapshotSink);

/// The snapshot's header as known at the capture: the lsn it covers and its body's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The lsn of the last entry the snapshot holds.
    pub applied_lsn: u64,
    /// Bytes of the body.
    pub body_len: u64,
}

impl SnapshotHeader {
    /// The header's bytes with the checksum field 0 (the encoder writes it at the end).
    pub fn bytes(&self) -> [u8; SNAPSHOT_HEADER_LEN] {
        let mut h = [0u8; SNAPSHOT_HEADER_LEN];
        h[..4].copy_from_slice(&SNAPSHOT_MAGIC);
        h[4..8].copy_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        h[8..16].copy_from_slice(&self.applied_lsn.to_le_bytes());
        h[16..24].copy_from_slice(&self.body_len.to_le_bytes());
        h
    }
}

/// A piece of a snapshot's body: `bytes`, then each of `blocks` (at most `blocks_max`) as
/// `encode` puts it.
#[derive(Debug)]
pub struct SnapshotChunk {
    pub(crate) bytes: Vec<u8>,
    pub(crate) blocks: Vec<Arc<[u8]>>,
    pub(crate) blocks_max: usize,
    pub(crate) encode: Option<BlockEncoder>,
}

impl Default for SnapshotChunk {
    fn default() -> Self {
        Self::new()
    }
}

impl SnapshotChunk {
    /// An empty chunk of `SNAPSHOT_CHUNK_BLOCKS` blocks.
    pub fn new() -> Self {
        Self::with_blocks_max(SNAPSHOT_CHUNK_BLOCKS)
    }

    /// An empty chunk of at most `blocks_max` blocks (at least 1; the simulator's stores use
    /// small ones, so that a snapshot of a few keys still takes many chunks).
    pub fn with_blocks_max(blocks_max: usize) -> Self {
        let blocks_max = blocks_max.max(1);
        Self { bytes: Vec::new(), blocks: Vec::with_capacity(blocks_max), blocks_max, encode: None }
    }

    /// Empties it for reuse (its buffers stay; the blocks are released).
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.blocks.clear();
        self.encode = None;
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.blocks.is_empty()
    }

    /// Puts its bytes, then its blocks, into `out`.
    pub fn write(&self, out: &mut dyn SnapshotSink) {
        out.put(&self.bytes);
        if let Some(encode) = self.encode {
            for block in &self.blocks {
                encode(block, out);
            }
        }
    }
}

/// Turns a header and chunks into a snapshot written to `w` as they come (see the module header).
#[derive(Debug)]
pub struct SnapshotEncoder<W: Write + Seek> {
    sink: StreamSink<W>,
    header: [u8; SNAPSHOT_HEADER_LEN],
    body_len: u64,
}

impl<W: Write + Seek> SnapshotEncoder<W> {
    /// Writes `header` (its checksum left 0) to `w`, which is at the snapshot's start.
    pub fn begin(mut w: W, header: SnapshotHeader) -> io::Result<Self> {
        let bytes = header.bytes();
        w.write_all(&bytes)?;
        Ok(Self {
            sink: StreamSink { w, crc: 0, len: 0, error: None },
            header: bytes,
            body_len: header.body_len,
        })
    }

    /// Writes `chunk`; the first error is kept for `finish`.
    pub fn put(&mut self, chunk: &SnapshotChunk) {
        chunk.write(&mut self.sink);
    }

    /// Writes the checksum over the header and the body at offset 24; `w` is left at the end.
    /// Fails on any earlier write error and on a body of another length than the header's.
    pub fn finish(self) -> io::Result<W> {
        let Self { sink: StreamSink { mut w, crc: body_crc, len, error }, header, body_len } = self;
        if let Some(e) = error {
            return Err(e);
        }
        if len != body_len {
            return Err(io::Error::other(format!("the chunks gave {len} bytes of a {body_len}-byte body")));
        }
        let crc = crc32c::crc32c_combine(crc32c::crc32c(&header[..24]), body_crc, len as usize);
        w.seek(SeekFrom::Start(24))?;
        w.write_all(&crc.to_le_bytes())?;
        w.seek(SeekFrom::End(0))?;
        Ok(w)
    }
}

/// A sink that writes through to `w`, keeping the body's checksum and length; the first error
/// stops the writing and is kept.
#[derive(Debug)]
struct StreamSink<W: Write> {
    w: W,
    crc: u32,
    len: u64,
    error: Option<io::Error>,
}

impl<W: Write> SnapshotSink for StreamSink<W> {
    fn put(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.w.write_all(bytes) {
            self.error = Some(e);
            return;
        }
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.len += bytes.len() as u64;
    }
}
