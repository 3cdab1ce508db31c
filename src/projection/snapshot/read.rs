//! Reading a snapshot from its store in two streaming passes, in bounded memory: `check_sealed`
//! verifies the header, the length and the checksum (reading the body once through a
//! `LOAD_BUFFER_BYTES` buffer, building nothing); only then is the body parsed, from the start
//! again, through a [`SectionReader`]: a reader bounded to the body, and to each section inside it,
//! from which every projection loads its section (`Projection::load_snapshot`).
//!
//! Invariants: nothing here reads past the region it is bounded to (a field that would is a
//! `Length` error); a short read of the store is an error, never a partial value; the memory used is
//! the buffer plus what a caller asks `bytes_into` for (the loaders check a field's length against
//! their limits before they read it).

use super::SNAPSHOT_HEADER_LEN;
use crate::kv::Reader;
use crate::projection::SnapshotError;
use std::io::{self, Read, Seek, SeekFrom};

/// Bytes buffered while a snapshot is read.
pub const LOAD_BUFFER_BYTES: usize = 64 << 10;

/// Where a stored snapshot is read from: a file, or bytes in memory.
pub trait SnapshotRead: Read + Seek + Send {}

impl<T: Read + Seek + Send> SnapshotRead for T {}

fn io_error(e: &io::Error) -> SnapshotError {
    SnapshotError::Io(e.to_string())
}

/// What the header of a sealed snapshot says, once its length and checksum held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sealed {
    pub(crate) magic: [u8; 4],
    pub(crate) version: u32,
    pub(crate) applied_lsn: u64,
    pub(crate) body_len: u64,
}

/// The first pass (see the module header): the header, then `magic_versions(magic)` (the versions
/// this build reads under that magic, `None`: not a snapshot), the length, the checksum. Leaves
/// `src` anywhere.
pub(crate) fn check_sealed(
    src: &mut dyn SnapshotRead,
    magic_versions: impl Fn([u8; 4]) -> Option<&'static [u32]>,
) -> Result<Sealed, SnapshotError> {
    let len = src.seek(SeekFrom::End(0)).map_err(|e| io_error(&e))?;
    if len < SNAPSHOT_HEADER_LEN as u64 {
        return Err(SnapshotError::Length { expected: SNAPSHOT_HEADER_LEN as u64, actual: len });
    }
    src.seek(SeekFrom::Start(0)).map_err(|e| io_error(&e))?;
    let mut header = [0u8; SNAPSHOT_HEADER_LEN];
    src.read_exact(&mut header).map_err(|e| io_error(&e))?;
    let mut r = Reader::new(&header);
    let magic: [u8; 4] = r.bytes(4)?.try_into().expect("4 bytes");
    let versions = magic_versions(magic).ok_or(SnapshotError::BadMagic)?;
    let version = r.u32()?;
    if !versions.contains(&version) {
        return Err(SnapshotError::Version(version));
    }
    let applied_lsn = r.u64()?;
    let body_len = r.u64()?;
    let expected_crc = r.u32()?;
    let expected_len = body_len.saturating_add(SNAPSHOT_HEADER_LEN as u64);
    if expected_len != len {
        return Err(SnapshotError::Length { expected: expected_len, actual: len });
    }
    let actual = body_checksum(src, &header, body_len)?;
    if actual != expected_crc {
        return Err(SnapshotError::Checksum { expected: expected_crc, actual });
    }
    Ok(Sealed { magic, version, applied_lsn, body_len })
}

/// CRC32C of the header's first 24 bytes and the `body_len` bytes that follow in `src` (read
/// through one buffer of `LOAD_BUFFER_BYTES`).
fn body_checksum(src: &mut dyn SnapshotRead, header: &[u8], body_len: u64) -> Result<u32, SnapshotError> {
    let mut crc = crc32c::crc32c(&header[..24]);
    let mut buf = vec![0u8; LOAD_BUFFER_BYTES];
    let mut left = body_len;
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        src.read_exact(&mut buf[..n]).map_err(|e| io_error(&e))?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        left -= n as u64;
    }
    Ok(crc)
}

/// Fixed-size fields read from a snapshot, whatever holds it (a slice, or a stream).
pub trait FieldRead {
    /// Fills `out` with the next bytes.
    fn fill(&mut self, out: &mut [u8]) -> Result<(), SnapshotError>;

    /// The next `n` bytes into `out` (replacing what it held).
    fn bytes_into(&mut self, n: usize, out: &mut Vec<u8>) -> Result<(), SnapshotError>;

    /// Fails if any byte of the region is left.
    fn finish(&self) -> Result<(), SnapshotError>;

    /// A byte.
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        let mut b = [0u8; 1];
        self.fill(&mut b)?;
        Ok(b[0])
    }

    /// A little-endian u16.
    fn u16(&mut self) -> Result<u16, SnapshotError> {
        let mut b = [0u8; 2];
        self.fill(&mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// A little-endian u32.
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        let mut b = [0u8; 4];
        self.fill(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// A little-endian u64.
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        let mut b = [0u8; 8];
        self.fill(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// A little-endian i64.
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        let mut b = [0u8; 8];
        self.fill(&mut b)?;
        Ok(i64::from_le_bytes(b))
    }
}

impl FieldRead for Reader<'_> {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), SnapshotError> {
        out.copy_from_slice(self.bytes(out.len())?);
        Ok(())
    }

    fn bytes_into(&mut self, n: usize, out: &mut Vec<u8>) -> Result<(), SnapshotError> {
        out.clear();
        out.extend_from_slice(self.bytes(n)?);
        Ok(())
    }

    fn finish(&self) -> Result<(), SnapshotError> {
        Ok(Reader::finish(self)?)
    }
}

/// A reader of `len` bytes of a stream (the body of a snapshot, or one section of it): reads past
/// them are `Length` errors, I/O errors are `Io`.
pub struct SectionReader<'a> {
    inner: &'a mut dyn Read,
    len: u64,
    offset: u64,
}

impl std::fmt::Debug for SectionReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SectionReader").field("len", &self.len).field("offset", &self.offset).finish()
    }
}

impl<'a> SectionReader<'a> {
    /// The next `len` bytes of `inner`.
    pub fn new(inner: &'a mut dyn Read, len: u64) -> Self {
        Self { inner, len, offset: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> u64 {
        self.len - self.offset
    }

    /// A reader of the next `len` bytes, which this one then counts as read (a reader of the
    /// section must read them all: check `remaining` after it).
    pub fn section(&mut self, len: u64) -> Result<SectionReader<'_>, SnapshotError> {
        self.claim(len)?;
        Ok(SectionReader { inner: &mut *self.inner, len, offset: 0 })
    }

    /// Counts `n` more bytes read, if the region has them.
    fn claim(&mut self, n: u64) -> Result<(), SnapshotError> {
        if n > self.remaining() {
            return Err(SnapshotError::Length { expected: self.offset.saturating_add(n), actual: self.len });
        }
        self.offset += n;
        Ok(())
    }
}

impl FieldRead for SectionReader<'_> {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), SnapshotError> {
        self.claim(out.len() as u64)?;
        self.inner.read_exact(out).map_err(|e| io_error(&e))
    }

    fn bytes_into(&mut self, n: usize, out: &mut Vec<u8>) -> Result<(), SnapshotError> {
        self.claim(n as u64)?;
        out.clear();
        out.resize(n, 0);
        self.inner.read_exact(out).map_err(|e| io_error(&e))
    }

    fn finish(&self) -> Result<(), SnapshotError> {
        match self.remaining() {
            0 => Ok(()),
            _ => Err(SnapshotError::Invalid("bytes after the last field")),
        }
    }
}
