//! The KV projection's part of a partition snapshot (`crate::projection::snapshot`), and the
//! whole-KV snapshots written before the router existed, still read.
//!
//! The section (`write_section`): u64 key count, then per key in ascending byte order `u16
//! key_len, key, u32 value_len, value, u64 version`. The partition snapshot around it carries the
//! magic, the applied lsn, the length and the checksum.
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
//! | 28 | .. | body: the section above, then the client table as the partition snapshot writes it (`u64` count and records); version 1 has no digest in its records |
//!
//! Invariants: the section is a function of the state only (keys sorted); loading never panics,
//! checks every invariant (lengths, limits, order, versions at or below the applied lsn) and
//! builds nothing unless all hold.

use super::map::{Capture, KeyMap};
use super::projection::KvProjection;
use super::{KvLimits, Reader};
use crate::projection::router::Router;
use crate::projection::snapshot::{read_clients, read_sealed};
use crate::projection::{SectionSource, SnapshotError, SnapshotSink, TAG_KV};

/// First four bytes of a whole-KV snapshot (before the router).
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"VGKV";
/// Its last format version (client records with digests).
pub const SNAPSHOT_VERSION: u32 = 2;
/// Its first format version: client records without digests.
pub const SNAPSHOT_VERSION_V1: u32 = 1;
/// The versions still read.
pub const SNAPSHOT_VERSIONS: &[u32] = &[SNAPSHOT_VERSION_V1, SNAPSHOT_VERSION];

/// Loads a whole-KV snapshot (before the router) into `router`, fresh: its keys into the KV
/// projection, its client table into the router's.
pub(crate) fn restore_legacy(bytes: &[u8], router: &mut Router) -> Result<(), SnapshotError> {
    let (version, lsn, body) = read_sealed(bytes, SNAPSHOT_MAGIC, SNAPSHOT_VERSIONS)?;
    let limits = *router.kv().limits();
    let mut r = Reader::new(body);
    let kv = read_keys(&mut r, lsn, limits)?;
    let clients = r.u64()?;
    read_clients(&mut r, clients, version == SNAPSHOT_VERSION, lsn, &mut router.clients)?;
    r.finish().map_err(|_| SnapshotError::Invalid("bytes after the client table"))?;
    *router.projection_mut(TAG_KV).expect("every router runs a KV projection") = Box::new(kv);
    router.set_applied_lsn(lsn);
    Ok(())
}

/// Reads the keys of a section (or of a whole-KV snapshot's body) taken at `lsn`.
fn read_keys(r: &mut Reader<'_>, lsn: u64, limits: KvLimits) -> Result<KvProjection, SnapshotError> {
    let key_count = r.u64()?;
    if key_count > limits.keys_max as u64 {
        return Err(SnapshotError::ExceedsLimits("more keys than keys_max"));
    }
    let mut map = KeyMap::with_capacity(key_count as usize);
    let mut data_bytes = 0usize;
    let mut last_key: Option<&[u8]> = None;
    for _ in 0..key_count {
        let key = r.bytes_u16()?;
        let value = r.bytes_u32()?;
        let version = r.u64()?;
        if key.len() > limits.key_bytes_max {
            return Err(SnapshotError::ExceedsLimits("a key is longer than key_bytes_max"));
        }
        if value.len() > limits.value_bytes_max {
            return Err(SnapshotError::ExceedsLimits("a value is longer than value_bytes_max"));
        }
        // A version names a write at or before the applied lsn (`LogPos::version`; versions
        // written before batches existed are the write's lsn, which is below it too).
        if version == 0 || version >> 16 > lsn {
            return Err(SnapshotError::Invalid("a key's version is 0 or above the applied lsn"));
        }
        if last_key.is_some_and(|last| last >= key) {
            return Err(SnapshotError::Invalid("keys are not in strictly ascending order"));
        }
        last_key = Some(key);
        data_bytes += key.len() + value.len();
        if data_bytes > limits.data_bytes_max {
            return Err(SnapshotError::ExceedsLimits("more data than data_bytes_max"));
        }
        map.set(key, value, version);
    }
    Ok(KvProjection { limits, map, data_bytes })
}

/// Puts a KV section of `count` keys, in the order `keys` gives (ascending).
fn put_keys<'a>(
    out: &mut dyn SnapshotSink,
    count: usize,
    keys: impl Iterator<Item = (&'a [u8], &'a [u8], u64)>,
) {
    out.put(&(count as u64).to_le_bytes());
    for (key, value, version) in keys {
        let key_len = u16::try_from(key.len()).expect("keys are at most key_bytes_max <= u16::MAX");
        let value_len = u32::try_from(value.len()).expect("values are at most value_bytes_max");
        out.put(&key_len.to_le_bytes());
        out.put(key);
        out.put(&value_len.to_le_bytes());
        out.put(value);
        out.put(&version.to_le_bytes());
    }
}

/// Bytes of a KV section of `count` keys holding `data_bytes` bytes of keys and values: 8 bytes of
/// count, then per key its bytes and 14 of lengths and version.
fn section_len(count: usize, data_bytes: usize) -> usize {
    8 + 14 * count + data_bytes
}

/// The KV projection captured for a snapshot ([`KvProjection::capture_section`]): written (sorted
/// and encoded) on whichever thread holds it, to the bytes `write_section` gave at the capture.
#[derive(Debug)]
pub struct KvSection(Capture);

impl SectionSource for KvSection {
    fn byte_len(&self) -> u64 {
        section_len(self.0.len(), self.0.data_bytes()) as u64
    }

    fn write(self: Box<Self>, out: &mut dyn SnapshotSink) {
        let mut capture = self.0;
        let count = capture.len();
        put_keys(out, count, capture.sorted());
    }
}

impl KvProjection {
    /// Appends the KV section of a snapshot (see the module header).
    pub fn write_section(&self, out: &mut Vec<u8>) {
        // One allocation of the section's exact size (growing by doubling would hold up to twice
        // the snapshot, and copy it, while it is written).
        out.reserve_exact(section_len(self.map.len(), self.data_bytes));
        // Keys in ascending order (`iter` sorts them): the same state always gives the same bytes.
        put_keys(out, self.map.len(), self.iter());
    }

    /// The KV section's source for a snapshot encoded on the writer's thread: the map's blocks,
    /// shared (copy-on-write), 16 bytes a key on the shard.
    pub(crate) fn capture_section(&self) -> KvSection {
        KvSection(self.map.capture())
    }

    /// A projection with `limits` loaded from a KV section taken at `applied_lsn`.
    pub fn load_section(section: &[u8], applied_lsn: u64, limits: KvLimits) -> Result<Self, SnapshotError> {
        let mut r = Reader::new(section);
        let kv = read_keys(&mut r, applied_lsn, limits)?;
        r.finish().map_err(|_| SnapshotError::Invalid("bytes after the last key"))?;
        Ok(kv)
    }
}
