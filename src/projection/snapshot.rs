//! The partition's snapshot: the router's client table and each projection's own section, in one
//! checksummed byte string.
//!
//! Layout (little-endian):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 4 | magic `VGPS` |
//! | 4 | 4 | format version: 1 |
//! | 8 | 8 | `applied_lsn`: the lsn of the last entry folded in |
//! | 16 | 8 | `body_len`: bytes after the header |
//! | 24 | 4 | CRC32C (Castagnoli) of bytes 0..24 followed by the body |
//! | 28 | .. | body |
//!
//! Body: u64 client count, then per client from the least to the most recently active `u64
//! client_id, u64 last_seq, u64 last_lsn, u8 known, u64 digest` (known 0 and digest 0: a record
//! that came from a version-1 KV snapshot, which kept no digest) and its result
//! (`result::put`); then u8 section count, then per projection `u8 tag, u64 len, len bytes` of the
//! projection's own section (`Projection::write_snapshot`), in the router's order (KV first).
//!
//! Snapshots written before the router existed are whole-KV snapshots (magic `VGKV`, versions 1
//! and 2, with the client table inside): `restore` still reads them (`kv::snapshot::restore_legacy`).
//!
//! Invariants: the encoding is a function of the replicated state only (two replicas with the same
//! state write the same bytes); `restore` never panics, checks the header, length and checksum
//! before anything else (every single-byte change and every truncation is caught there), then
//! every invariant of the content and the limits, and builds nothing unless all hold; a projection
//! with no section (one added after the snapshot was taken) starts empty; a section for a tag this
//! partition does not run is refused, never skipped.

use super::clients::{ClientRecord, ClientTable};
use super::router::Router;
use super::{result, Projection, SectionSource, SnapshotError, SnapshotSink};
use crate::kv::{KvLimits, Reader, ANONYMOUS_CLIENT};
use std::io::{self, Seek, SeekFrom, Write};

/// First four bytes of a partition snapshot.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"VGPS";
/// The format version this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;
/// Header length (the same for the whole-KV snapshots of older builds).
pub const SNAPSHOT_HEADER_LEN: usize = 28;

/// CRC32C of a header's first 24 bytes followed by the body.
pub(crate) fn checksum(header: &[u8], body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&header[..24]), body)
}

/// Checks a partition snapshot's header, length and checksum; returns its applied lsn. A
/// whole-KV snapshot from before the router is checked by its own magic and versions.
pub fn applied_lsn(bytes: &[u8]) -> Result<u64, SnapshotError> {
    use crate::kv::snapshot::{SNAPSHOT_MAGIC as KV_MAGIC, SNAPSHOT_VERSIONS as KV_VERSIONS};
    let (magic, versions) = match bytes.get(..4) {
        Some(m) if m == KV_MAGIC => (KV_MAGIC, KV_VERSIONS),
        _ => (SNAPSHOT_MAGIC, &[SNAPSHOT_VERSION][..]),
    };
    Ok(read_sealed(bytes, magic, versions)?.1)
}

/// Checks a sealed snapshot (this header layout, under `magic`, at one of `versions`): header,
/// length and checksum. Returns (version, applied lsn, body).
pub(crate) fn read_sealed<'a>(
    bytes: &'a [u8],
    magic: [u8; 4],
    versions: &[u32],
) -> Result<(u32, u64, &'a [u8]), SnapshotError> {
    let len = bytes.len() as u64;
    let header = bytes
        .get(..SNAPSHOT_HEADER_LEN)
        .ok_or(SnapshotError::Length { expected: SNAPSHOT_HEADER_LEN as u64, actual: len })?;
    let mut r = Reader::new(header);
    if r.bytes(4)? != magic {
        return Err(SnapshotError::BadMagic);
    }
    let version = r.u32()?;
    if !versions.contains(&version) {
        return Err(SnapshotError::Version(version));
    }
    let applied_lsn = r.u64()?;
    let body_len = r.u64()?;
    let expected_crc = r.u32()?;
    let body = &bytes[SNAPSHOT_HEADER_LEN..];
    let expected_len = body_len.saturating_add(SNAPSHOT_HEADER_LEN as u64);
    if expected_len != len {
        return Err(SnapshotError::Length { expected: expected_len, actual: len });
    }
    let actual = checksum(header, body);
    if actual != expected_crc {
        return Err(SnapshotError::Checksum { expected: expected_crc, actual });
    }
    Ok((version, applied_lsn, body))
}

/// Writes a client record (`result::put` for its result).
pub(crate) fn put_client(out: &mut Vec<u8>, c: &ClientRecord) {
    out.extend_from_slice(&c.client_id.to_le_bytes());
    out.extend_from_slice(&c.last_seq.to_le_bytes());
    out.extend_from_slice(&c.last_lsn.to_le_bytes());
    out.push(u8::from(c.digest.is_some()));
    out.extend_from_slice(&c.digest.unwrap_or(0).to_le_bytes());
    result::put(out, &c.result);
}

/// Reads the client table (`count` records, `with_digests` unless they come from a version-1 KV
/// snapshot) into `clients`, checking its invariants against `applied_lsn`.
pub(crate) fn read_clients(
    r: &mut Reader<'_>,
    count: u64,
    with_digests: bool,
    applied_lsn: u64,
    clients: &mut ClientTable,
) -> Result<(), SnapshotError> {
    if count > clients.capacity() as u64 {
        return Err(SnapshotError::ExceedsLimits("more clients than dedup_clients_max"));
    }
    let mut previous_lsn = 0;
    for _ in 0..count {
        let client_id = r.u64()?;
        let last_seq = r.u64()?;
        let last_lsn = r.u64()?;
        let digest = if with_digests { read_digest(r)? } else { None };
        let result = result::read(r)?;
        if client_id == ANONYMOUS_CLIENT {
            return Err(SnapshotError::Invalid("the anonymous client is in the client table"));
        }
        if clients.get(client_id).is_some() {
            return Err(SnapshotError::Invalid("a client appears twice in the client table"));
        }
        // Non-decreasing: one batch entry holds writes of several clients.
        if last_lsn == 0 || last_lsn < previous_lsn || last_lsn > applied_lsn {
            return Err(SnapshotError::Invalid("client activity is not increasing up to the lsn"));
        }
        previous_lsn = last_lsn;
        clients.record(ClientRecord { client_id, last_seq, last_lsn, digest, result });
    }
    Ok(())
}

fn read_digest(r: &mut Reader<'_>) -> Result<Option<u64>, SnapshotError> {
    let known = r.u8()?;
    let digest = r.u64()?;
    match (known, digest) {
        (1, d) => Ok(Some(d)),
        (0, 0) => Ok(None),
        _ => Err(SnapshotError::Invalid("a client's digest is neither known nor 0")),
    }
}

/// The partition's state captured at one applied lsn (`Router::capture`): the client table
/// (small: encoded at the capture) and each projection's `SectionSource`. `encode` writes the
/// snapshot, on whatever thread holds it.
pub struct SnapshotCapture {
    applied_lsn: u64,
    clients: Vec<u8>,
    sections: Vec<(u8, Box<dyn SectionSource>)>,
}

impl std::fmt::Debug for SnapshotCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotCapture").field("applied_lsn", &self.applied_lsn).finish()
    }
}

impl SnapshotCapture {
    /// The lsn of the last entry it holds.
    pub fn applied_lsn(&self) -> u64 {
        self.applied_lsn
    }

    /// Bytes of the snapshot's body (known before it is written: each section says its length).
    fn body_len(&self) -> u64 {
        let sections: u64 = self.sections.iter().map(|(_, s)| 1 + 8 + s.byte_len()).sum();
        self.clients.len() as u64 + 1 + sections
    }

    /// The header with its checksum field 0, and the body's length.
    fn header(&self) -> ([u8; SNAPSHOT_HEADER_LEN], u64) {
        let body_len = self.body_len();
        let mut h = [0u8; SNAPSHOT_HEADER_LEN];
        h[..4].copy_from_slice(&SNAPSHOT_MAGIC);
        h[4..8].copy_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        h[8..16].copy_from_slice(&self.applied_lsn.to_le_bytes());
        h[16..24].copy_from_slice(&body_len.to_le_bytes());
        (h, body_len)
    }

    /// Puts the body: the client table, then each section with its tag and length.
    fn put_body(self, out: &mut dyn SnapshotSink) {
        out.put(&self.clients);
        out.put(&[u8::try_from(self.sections.len()).expect("fewer than 255 projections")]);
        for (tag, section) in self.sections {
            out.put(&[tag]);
            out.put(&section.byte_len().to_le_bytes());
            section.write(out);
        }
    }

    /// Encodes the snapshot (see the module header) into a buffer of its size: `write_to` a
    /// buffer, which takes every write.
    pub fn encode(self) -> Vec<u8> {
        let size = SNAPSHOT_HEADER_LEN + self.body_len() as usize;
        let mut out = io::Cursor::new(Vec::with_capacity(size));
        self.write_to(&mut out).expect("a buffer takes every write, and each section writes its length");
        out.into_inner()
    }

    /// Writes the snapshot to `w` as it encodes it, never holding more of it than `w` buffers: the
    /// header (its checksum left 0), the body, then the checksum over both, written at offset 24.
    pub fn write_to<W: Write + Seek>(self, w: &mut W) -> io::Result<()> {
        let (header, body_len) = self.header();
        w.write_all(&header)?;
        let mut sink = StreamSink { w, crc: 0, len: 0, error: None };
        self.put_body(&mut sink);
        let StreamSink { w, crc: body_crc, len, error } = sink;
        if let Some(e) = error {
            return Err(e);
        }
        if len != body_len {
            return Err(io::Error::other(format!("a section wrote {len} bytes of a {body_len}-byte body")));
        }
        let crc = crc32c::crc32c_combine(crc32c::crc32c(&header[..24]), body_crc, len as usize);
        w.seek(SeekFrom::Start(24))?;
        w.write_all(&crc.to_le_bytes())?;
        w.seek(SeekFrom::End(0))?;
        Ok(())
    }
}

/// A sink that writes through to `w`, keeping the body's checksum and length; the first error
/// stops the writing and is kept for `write_to` to return.
struct StreamSink<'a, W: Write> {
    w: &'a mut W,
    crc: u32,
    len: u64,
    error: Option<io::Error>,
}

impl<W: Write> SnapshotSink for StreamSink<'_, W> {
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

impl Router {
    /// Captures the partition's state now for a snapshot encoded later (`SnapshotCapture::encode`,
    /// on the snapshot writer's thread): what the shard pays is each projection's `capture`.
    pub fn capture(&self) -> SnapshotCapture {
        let mut clients = Vec::with_capacity(8 + self.clients.len() * 64);
        clients.extend_from_slice(&(self.clients.len() as u64).to_le_bytes());
        for c in self.clients.iter() {
            put_client(&mut clients, c);
        }
        let sections = self.projections().map(|p| (p.tag(), p.capture())).collect();
        SnapshotCapture { applied_lsn: self.applied_lsn(), clients, sections }
    }

    /// Appends the partition's snapshot (see the module header) to `out`, encoded now.
    pub fn snapshot(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.capture().encode());
    }

    /// A router over a KV projection with `kv` limits and `others` (empty), loaded from `bytes`:
    /// a partition snapshot, or a whole-KV snapshot from before the router. Nothing is built
    /// unless the whole snapshot checks.
    pub fn restore(
        bytes: &[u8],
        kv: KvLimits,
        others: Vec<Box<dyn Projection>>,
    ) -> Result<Self, SnapshotError> {
        kv.validate().map_err(|_| SnapshotError::Invalid("the KV limits are unusable"))?;
        let mut router = Router::new(kv, others);
        if bytes.get(..4) == Some(&crate::kv::snapshot::SNAPSHOT_MAGIC[..]) {
            crate::kv::snapshot::restore_legacy(bytes, &mut router)?;
            return Ok(router);
        }
        let (_, applied_lsn, body) = read_sealed(bytes, SNAPSHOT_MAGIC, &[SNAPSHOT_VERSION])?;
        let mut r = Reader::new(body);
        let clients = r.u64()?;
        read_clients(&mut r, clients, true, applied_lsn, &mut router.clients)?;
        let sections = r.u8()?;
        let mut seen = [false; 256];
        for _ in 0..sections {
            let tag = r.u8()?;
            let section = r.bytes_u64()?;
            if std::mem::replace(&mut seen[usize::from(tag)], true) {
                return Err(SnapshotError::Invalid("a projection has two sections"));
            }
            let projection = router.projection_mut(tag).ok_or(SnapshotError::UnknownProjection(tag))?;
            projection.load_snapshot(section, applied_lsn)?;
        }
        r.finish().map_err(|_| SnapshotError::Invalid("bytes after the last section"))?;
        router.set_applied_lsn(applied_lsn);
        Ok(router)
    }
}

#[cfg(test)]
mod tests;
