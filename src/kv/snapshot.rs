//! The KV projection's part of a partition snapshot (`crate::projection::snapshot`), and the
//! whole-KV snapshots written before the router existed, still read.
//!
//! The section (`write_section`), format 3: u64 key count with bits 63 and 62 set (the format
//! mark; a count never reaches them), u64 the projection's clock (the latest entry timestamp
//! applied, Unix ms: expiry's "now", part of the replicated state), then per key `u16 key_len
//! (bit 15: an expiry follows the version), key, u32 value_len, value, u64 version (bit 63: an
//! owner follows the expiry), [u64 expires_at, Unix ms], [u32 owner: the key id of the principal
//! that wrote the key last, non-zero]`, in the map's slot order (`kv::map`: a function of the
//! writes the map applied since it was loaded or empty, and a loaded map keeps the file's order,
//! so replicas with the same history write the same bytes). The owners' usage is not written: it
//! is rebuilt from the owners at load. Format 2 (bit 62 clear, written by builds before quotas)
//! has no owner bit and no owner field; it still loads (every key anonymous). Format 1 (bit 63 of
//! the count clear too, written by builds before key expiry) has no expiry bit and no expiry
//! field either; it still loads (no key expires).
//! Builds before slot order wrote the keys in ascending byte order; such sections load the same
//! way (any order loads; a key twice is refused). The partition
//! snapshot around it carries the magic, the applied lsn, the length and the checksum.
//!
//! Written off the shard: `begin_capture` starts the map's capture (`kv::capture`, no copy) and
//! announces the section's length (16 + 14 per key + 8 per key with an expiry + 4 per key with an
//! owner + the keys' and values' bytes, known at the capture); `capture_chunk` hands out the next blocks (a chunk's worth, `SNAPSHOT_CHUNK_BLOCKS`
//! in the server) as they were at the capture, which the snapshot store encodes with `put_block`.
//!
//! A whole-KV snapshot (before the router) has this layout (little-endian):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 4 | magic `VGKV` |
//! | 4 | 4 | format version: 1 or 2 |
//! | 8 | 8 | `applied_lsn`: the lsn of the last entry folded in |
//! | 16 | 8 | `body_len`: bytes after the header |
//! | 24 | 4 | CRC32C (Castagnoli) of bytes 0..24 followed by the body |
//! | 28 | .. | body: the section above (keys sorted), then the client table as the partition snapshot writes it (`u64` count and records); version 1 has no digest in its records |
//!
//! Invariants: the section is a function of the state and its history only (slot order, above);
//! loading never panics, reads the section from a bounded stream (each field's length is checked
//! against the limits before it is read), checks every invariant (lengths, limits, no key twice,
//! versions at or below the applied lsn) and builds nothing unless all hold.

use super::map::{expiry_of, key_of, owner_of, value_of, version_of, KeyMap, KEY_BYTES_LIMIT};
use super::projection::KvProjection;
use super::KvLimits;
use crate::projection::owner::ANONYMOUS_OWNER;
use crate::projection::router::Router;
use crate::projection::snapshot::read_clients;
use crate::projection::{
    FieldRead, SectionCapture, SectionReader, SnapshotChunk, SnapshotError, SnapshotSink, TAG_KV,
};

/// First four bytes of a whole-KV snapshot (before the router).
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"VGKV";
/// Its last format version (client records with digests).
pub const SNAPSHOT_VERSION: u32 = 2;
/// Its first format version: client records without digests.
pub const SNAPSHOT_VERSION_V1: u32 = 1;
/// The versions still read.
pub const SNAPSHOT_VERSIONS: &[u32] = &[SNAPSHOT_VERSION_V1, SNAPSHOT_VERSION];

/// Loads the body of a whole-KV snapshot (before the router) of `version` taken at `lsn` (its
/// checksum verified) into `router`, fresh: its keys into the KV projection, its client table into
/// the router's.
pub(crate) fn restore_legacy(
    body: &mut SectionReader<'_>,
    version: u32,
    lsn: u64,
    router: &mut Router,
) -> Result<(), SnapshotError> {
    let limits = *router.kv().limits();
    let kv = read_keys(body, lsn, limits)?;
    let clients = body.u64()?;
    read_clients(body, clients, version == SNAPSHOT_VERSION, lsn, &mut router.clients)?;
    body.finish().map_err(|_| SnapshotError::Invalid("bytes after the client table"))?;
    *router.projection_mut(TAG_KV).expect("every router runs a KV projection") = Box::new(kv);
    router.set_applied_lsn(lsn);
    Ok(())
}

/// Bytes of a key's entry besides its key and value: the lengths and the version.
const ENTRY_OVERHEAD: u64 = 14;
/// Bit 63 of a section's key count: format 2 (entries may carry an expiry).
const FORMAT_2: u64 = 1 << 63;
/// Bit 62 of a section's key count, with bit 63: format 3 (entries may carry an owner too).
const FORMAT_3: u64 = 1 << 62;
/// Bit 63 of an entry's version in format 3: a u32 owner follows the expiry.
const ENTRY_OWNER: u64 = 1 << 63;
/// Bit 15 of an entry's key length in format 2: a u64 expiry follows the version.
const ENTRY_EXPIRY: u16 = 0x8000;

/// Reads the keys of a section (or of a whole-KV snapshot's body) taken at `lsn`.
fn read_keys(r: &mut SectionReader<'_>, lsn: u64, limits: KvLimits) -> Result<KvProjection, SnapshotError> {
    let head = r.u64()?;
    let format_2 = head & FORMAT_2 != 0;
    let format_3 = format_2 && head & FORMAT_3 != 0;
    let key_count = head & !(FORMAT_2 | if format_2 { FORMAT_3 } else { 0 });
    let now_ms = if format_2 { r.u64()? } else { 0 };
    if key_count > limits.keys_max as u64 {
        return Err(SnapshotError::ExceedsLimits("more keys than keys_max"));
    }
    // No more room than the section's bytes can hold keys (a count is not trusted with memory).
    let room = key_count.min(r.remaining() / ENTRY_OVERHEAD);
    let mut map = KeyMap::with_capacity(usize::try_from(room).expect("at most keys_max"));
    let (mut key, mut value) = (Vec::new(), Vec::new());
    let mut data_bytes = 0usize;
    for _ in 0..key_count {
        let field = r.u16()?;
        let has_expiry = format_2 && field & ENTRY_EXPIRY != 0;
        let key_len = usize::from(if format_2 { field & !ENTRY_EXPIRY } else { field });
        if key_len > limits.key_bytes_max {
            return Err(SnapshotError::ExceedsLimits("a key is longer than key_bytes_max"));
        }
        r.bytes_into(key_len, &mut key)?;
        let value_len = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
        if value_len > limits.value_bytes_max {
            return Err(SnapshotError::ExceedsLimits("a value is longer than value_bytes_max"));
        }
        r.bytes_into(value_len, &mut value)?;
        let version_field = r.u64()?;
        let has_owner = format_3 && version_field & ENTRY_OWNER != 0;
        let version = if format_3 { version_field & !ENTRY_OWNER } else { version_field };
        let expiry = if has_expiry { Some(r.u64()?) } else { None };
        let owner = if has_owner { r.u32()? } else { ANONYMOUS_OWNER };
        if has_owner && owner == ANONYMOUS_OWNER {
            return Err(SnapshotError::Invalid("a key's owner is marked but 0"));
        }
        // A version names a write at or before the applied lsn (`LogPos::version`; versions
        // written before batches existed are the write's lsn, which is below it too).
        if version == 0 || version >> 16 > lsn {
            return Err(SnapshotError::Invalid("a key's version is 0 or above the applied lsn"));
        }
        data_bytes += key.len() + value.len();
        if data_bytes > limits.data_bytes_max {
            return Err(SnapshotError::ExceedsLimits("more data than data_bytes_max"));
        }
        let at = map.lookup(&key);
        if map.value_len(&at).is_some() {
            return Err(SnapshotError::Invalid("a key appears twice"));
        }
        // In the file's order: the map gets the slot order of the map that wrote it.
        map.store(at, &key, &value, version, expiry, owner);
    }
    let mut kv = KvProjection::from_parts(limits, map, data_bytes);
    kv.now_ms = now_ms;
    Ok(kv)
}

/// Puts one key's entry (format 3): `u16 key_len (bit 15: expiry), key, u32 value_len, value, u64
/// version (bit 63: owner), [u64 expiry], [u32 owner]`.
fn put_entry(
    out: &mut dyn SnapshotSink,
    key: &[u8],
    value: &[u8],
    version: u64,
    expiry: Option<u64>,
    owner: u32,
) {
    let key_len = u16::try_from(key.len()).ok().filter(|&n| usize::from(n) <= KEY_BYTES_LIMIT);
    let key_len = key_len.expect("keys are at most key_bytes_max <= 32767");
    let field = if expiry.is_some() { key_len | ENTRY_EXPIRY } else { key_len };
    let value_len = u32::try_from(value.len()).expect("values are at most value_bytes_max");
    let owned = owner != ANONYMOUS_OWNER;
    out.put(&field.to_le_bytes());
    out.put(key);
    out.put(&value_len.to_le_bytes());
    out.put(value);
    out.put(&(if owned { version | ENTRY_OWNER } else { version }).to_le_bytes());
    if let Some(at) = expiry {
        out.put(&at.to_le_bytes());
    }
    if owned {
        out.put(&owner.to_le_bytes());
    }
}

/// Puts the entry of a map block (a chunk's `encode`, run by the snapshot store).
fn put_block(block: &[u8], out: &mut dyn SnapshotSink) {
    put_entry(out, key_of(block), value_of(block), version_of(block), expiry_of(block), owner_of(block));
}

/// Bytes of a KV section of `count` keys, `expiring` of them with an expiry and `owned` with an
/// owner, holding `data_bytes` bytes of keys and values: 8 bytes of count and 8 of clock, then
/// per key its bytes and 14 of lengths and version, 8 more for an expiry, 4 more for an owner.
fn section_len(count: usize, expiring: usize, owned: usize, data_bytes: usize) -> u64 {
    16 + ENTRY_OVERHEAD * count as u64 + 8 * expiring as u64 + 4 * owned as u64 + data_bytes as u64
}

/// The section's first 16 bytes: the count with the format mark, and the clock.
fn section_head(count: usize, now_ms: u64) -> [u8; 16] {
    let mut head = [0u8; 16];
    head[..8].copy_from_slice(&(count as u64 | FORMAT_2 | FORMAT_3).to_le_bytes());
    head[8..].copy_from_slice(&now_ms.to_le_bytes());
    head
}

impl KvProjection {
    /// Appends the KV section of a snapshot (see the module header).
    pub fn write_section(&self, out: &mut Vec<u8>) {
        // One allocation of the section's exact size (growing by doubling would hold up to twice
        // the snapshot, and copy it, while it is written).
        let len = section_len(self.map.len(), self.expiring(), self.owned_keys(), self.data_bytes);
        out.reserve_exact(len as usize);
        out.put(&section_head(self.map.len(), self.now_ms));
        for block in self.map.iter_blocks() {
            put_block(block, out);
        }
    }

    /// Starts the capture of the section for chunks written off the shard (see the module header).
    pub(crate) fn begin_section_capture(&mut self) -> SectionCapture {
        let count = self.map.begin_capture();
        let head = section_head(count, self.now_ms).to_vec();
        // Every key with an expiry is in the index: the count of entries with one at the capture.
        let byte_len = section_len(count, self.expiring(), self.owned_keys(), self.data_bytes);
        SectionCapture::Chunked { byte_len, head }
    }

    /// The next blocks of the capture into `chunk`; true once all were given.
    pub(crate) fn section_chunk(&mut self, chunk: &mut SnapshotChunk) -> bool {
        chunk.encode = Some(put_block);
        self.map.capture_chunk(&mut chunk.blocks, chunk.blocks_max)
    }

    /// A projection with `limits` loaded from a KV section taken at `applied_lsn`.
    pub fn load_section(section: &[u8], applied_lsn: u64, limits: KvLimits) -> Result<Self, SnapshotError> {
        let mut bytes = section;
        let mut r = SectionReader::new(&mut bytes, section.len() as u64);
        Self::read_section(&mut r, applied_lsn, limits)
    }

    /// A projection with `limits` loaded from a KV section taken at `applied_lsn`, read from `r`
    /// to its end.
    pub fn read_section(
        r: &mut SectionReader<'_>,
        applied_lsn: u64,
        limits: KvLimits,
    ) -> Result<Self, SnapshotError> {
        let kv = read_keys(r, applied_lsn, limits)?;
        r.finish().map_err(|_| SnapshotError::Invalid("bytes after the last key"))?;
        Ok(kv)
    }
}
