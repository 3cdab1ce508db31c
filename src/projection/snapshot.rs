//! The partition's snapshot: the router's client table and each projection's own section, in one
//! checksummed byte string, written in chunks off the shard's thread (`write`) and read back in
//! two streaming passes (`read`).
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
//! Writing (`Router::begin_snapshot`, then `Router::snapshot_chunk` until it says the body is
//! complete): the capture encodes the client table and the small sections at once and starts each
//! large projection's capture (`Projection::begin_capture`: the KV map's cursor, no copy); every
//! section's length is known then, so the header is too. The chunks that follow are filled on the
//! shard, a bounded number at a time, and encoded by the snapshot store (`write::SnapshotEncoder`).
//!
//! Invariants: the encoding is a function of the replicated state and history only: two replicas
//! that applied the same entries since the same snapshot (or since empty) write the same bytes
//! (each projection's section is deterministic; KV's is in slot order, a function of that history,
//! `kv::map`); what a capture's chunks write is the state at the capture, whatever is applied
//! meanwhile; `restore` never panics, checks the header, length and checksum in a first pass
//! before anything else (every single-byte change and every truncation is caught there), then
//! every invariant of the content and the limits, and builds nothing unless all hold; a projection
//! with no section (one added after the snapshot was taken) starts empty; a section for a tag this
//! partition does not run is refused, never skipped.

pub mod read;
pub mod write;

use super::clients::{ClientRecord, ClientTable};
use super::router::Router;
use super::{result, FieldRead, Projection, SectionCapture, SnapshotError};
use crate::kv::{KvLimits, ANONYMOUS_CLIENT};
use read::{check_sealed, SectionReader, SnapshotRead, LOAD_BUFFER_BYTES};
use std::collections::VecDeque;
use std::io::{self, BufReader, SeekFrom};
use write::{SnapshotChunk, SnapshotHeader};

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

/// The versions this build reads under `magic` (`None`: not a snapshot).
fn versions_of(magic: [u8; 4]) -> Option<&'static [u32]> {
    use crate::kv::snapshot::{SNAPSHOT_MAGIC as KV_MAGIC, SNAPSHOT_VERSIONS as KV_VERSIONS};
    match magic {
        SNAPSHOT_MAGIC => Some(&[SNAPSHOT_VERSION]),
        KV_MAGIC => Some(KV_VERSIONS),
        _ => None,
    }
}

/// Checks a partition snapshot's header, length and checksum; returns its applied lsn. A
/// whole-KV snapshot from before the router is checked by its own magic and versions.
pub fn applied_lsn(bytes: &[u8]) -> Result<u64, SnapshotError> {
    applied_lsn_of(&mut io::Cursor::new(bytes))
}

/// `applied_lsn` of a snapshot read from `src` in bounded memory (a file).
pub fn applied_lsn_of(src: &mut dyn SnapshotRead) -> Result<u64, SnapshotError> {
    Ok(check_sealed(src, versions_of)?.applied_lsn)
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
pub(crate) fn read_clients<R: FieldRead + ?Sized>(
    r: &mut R,
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

fn read_digest<R: FieldRead + ?Sized>(r: &mut R) -> Result<Option<u64>, SnapshotError> {
    let known = r.u8()?;
    let digest = r.u64()?;
    match (known, digest) {
        (1, d) => Ok(Some(d)),
        (0, 0) => Ok(None),
        _ => Err(SnapshotError::Invalid("a client's digest is neither known nor 0")),
    }
}

/// A snapshot being written in chunks (`Router::begin_snapshot`): what is left to give.
#[derive(Debug)]
pub(crate) struct Stream {
    /// The client table and the section count, for the first chunk.
    head: Option<Vec<u8>>,
    /// Sections not started yet, in order.
    sections: VecDeque<(u8, SectionCapture)>,
    /// The tag of the chunked section being given, if any.
    current: Option<u8>,
}

impl Router {
    /// The client table's bytes: count and records.
    fn put_clients(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.clients.len() as u64).to_le_bytes());
        for c in self.clients.iter() {
            put_client(out, c);
        }
    }

    /// Captures the partition's state now for a snapshot written in chunks (see the module
    /// header), ending any capture still running; returns the snapshot's header. What the shard
    /// pays now: the client table's encoding and each projection's `begin_capture`.
    pub fn begin_snapshot(&mut self) -> SnapshotHeader {
        let mut head = Vec::with_capacity(9 + self.clients.len() * 64);
        self.put_clients(&mut head);
        let sections = self.begin_captures();
        head.push(u8::try_from(sections.len()).expect("fewer than 255 projections"));
        let sections_len: u64 = sections.iter().map(|(_, s)| 1 + 8 + s.byte_len()).sum();
        let body_len = head.len() as u64 + sections_len;
        self.snapshot_stream = Some(Stream { head: Some(head), sections, current: None });
        SnapshotHeader { applied_lsn: self.applied_lsn(), body_len }
    }

    /// Fills `chunk` (emptied first) with the next piece of the snapshot `begin_snapshot` began;
    /// returns true once the body is complete (the chunk holds its end, or nothing when no
    /// snapshot is being written).
    pub fn snapshot_chunk(&mut self, chunk: &mut SnapshotChunk) -> bool {
        chunk.clear();
        let Some(mut stream) = self.snapshot_stream.take() else { return true };
        let complete = self.fill_chunk(&mut stream, chunk);
        if !complete {
            self.snapshot_stream = Some(stream);
        }
        complete
    }

    /// `snapshot_chunk` with the stream out of `self`: bytes (head, small sections, section
    /// headers) until a chunked section gives blocks, which close the chunk.
    fn fill_chunk(&mut self, stream: &mut Stream, chunk: &mut SnapshotChunk) -> bool {
        if let Some(head) = stream.head.take() {
            chunk.bytes.extend_from_slice(&head);
        }
        loop {
            if let Some(tag) = stream.current {
                let projection = self.projection_mut(tag).expect("a captured projection stays");
                let done = projection.capture_chunk(chunk);
                if done {
                    stream.current = None;
                }
                if !done || !chunk.blocks.is_empty() {
                    return done && stream.sections.is_empty();
                }
            }
            let Some((tag, section)) = stream.sections.pop_front() else { return true };
            chunk.bytes.push(tag);
            chunk.bytes.extend_from_slice(&section.byte_len().to_le_bytes());
            match section {
                SectionCapture::Bytes(bytes) => chunk.bytes.extend_from_slice(&bytes),
                SectionCapture::Chunked { head, .. } => {
                    chunk.bytes.extend_from_slice(&head);
                    stream.current = Some(tag);
                }
            }
        }
    }

    /// Appends the partition's snapshot (see the module header) to `out`, encoded now, as the
    /// chunks of a capture taken now would write it.
    pub fn snapshot(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0u8; SNAPSHOT_HEADER_LEN]);
        self.put_clients(out);
        let count = self.projections().count();
        out.push(u8::try_from(count).expect("fewer than 255 projections"));
        for p in self.projections() {
            out.push(p.tag());
            let len_at = out.len();
            out.extend_from_slice(&[0u8; 8]);
            p.write_snapshot(out);
            let len = (out.len() - len_at - 8) as u64;
            out[len_at..len_at + 8].copy_from_slice(&len.to_le_bytes());
        }
        let body_len = (out.len() - start - SNAPSHOT_HEADER_LEN) as u64;
        let header = SnapshotHeader { applied_lsn: self.applied_lsn(), body_len }.bytes();
        out[start..start + SNAPSHOT_HEADER_LEN].copy_from_slice(&header);
        let crc = checksum(&header, &out[start + SNAPSHOT_HEADER_LEN..]);
        out[start + 24..start + SNAPSHOT_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    }

    /// A router over a KV projection with `kv` limits and `others` (empty), loaded from `bytes`:
    /// a partition snapshot, or a whole-KV snapshot from before the router. Nothing is built
    /// unless the whole snapshot checks.
    pub fn restore(
        bytes: &[u8],
        kv: KvLimits,
        others: Vec<Box<dyn Projection>>,
    ) -> Result<Self, SnapshotError> {
        Self::restore_from(&mut io::Cursor::new(bytes), kv, others)
    }

    /// `restore` from a snapshot read from `src` (a file) in two streaming passes through buffers
    /// of `LOAD_BUFFER_BYTES`: the header, length and checksum first, then the content.
    pub fn restore_from(
        src: &mut dyn SnapshotRead,
        kv: KvLimits,
        others: Vec<Box<dyn Projection>>,
    ) -> Result<Self, SnapshotError> {
        kv.validate().map_err(|_| SnapshotError::Invalid("the KV limits are unusable"))?;
        let sealed = check_sealed(src, versions_of)?;
        src.seek(SeekFrom::Start(SNAPSHOT_HEADER_LEN as u64))
            .map_err(|e| SnapshotError::Io(e.to_string()))?;
        let mut buffered = BufReader::with_capacity(LOAD_BUFFER_BYTES, src);
        let mut body = SectionReader::new(&mut buffered, sealed.body_len);
        let mut router = Router::new(kv, others);
        if sealed.magic == crate::kv::snapshot::SNAPSHOT_MAGIC {
            crate::kv::snapshot::restore_legacy(&mut body, sealed.version, sealed.applied_lsn, &mut router)?;
            return Ok(router);
        }
        let applied_lsn = sealed.applied_lsn;
        let clients = body.u64()?;
        read_clients(&mut body, clients, true, applied_lsn, &mut router.clients)?;
        let sections = body.u8()?;
        let mut seen = [false; 256];
        for _ in 0..sections {
            let tag = body.u8()?;
            let len = body.u64()?;
            if std::mem::replace(&mut seen[usize::from(tag)], true) {
                return Err(SnapshotError::Invalid("a projection has two sections"));
            }
            let projection = router.projection_mut(tag).ok_or(SnapshotError::UnknownProjection(tag))?;
            let mut section = body.section(len)?;
            projection.load_snapshot(&mut section, applied_lsn)?;
            if section.remaining() != 0 {
                return Err(SnapshotError::Invalid("a projection left bytes of its section unread"));
            }
        }
        body.finish().map_err(|_| SnapshotError::Invalid("bytes after the last section"))?;
        router.set_applied_lsn(applied_lsn);
        Ok(router)
    }
}

#[cfg(test)]
mod tests;
