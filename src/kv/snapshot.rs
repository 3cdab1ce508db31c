//! Snapshots of the KV projection: the whole replicated state in one checksummed byte string.
//!
//! Layout (little-endian):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 4 | magic `VGKV` |
//! | 4 | 4 | format version: 2 (this build also reads 1) |
//! | 8 | 8 | `applied_lsn`: the lsn of the last entry folded in |
//! | 16 | 8 | `body_len`: bytes after the header |
//! | 24 | 4 | CRC32C (Castagnoli) of bytes 0..24 followed by the body |
//! | 28 | .. | body |
//!
//! Body: u64 key count, then per key in ascending byte order `u16 key_len, key, u32 value_len,
//! value, u64 version`; then u64 client count, then per client from the least to the most recently
//! active `u64 client_id, u64 last_seq, u64 last_lsn, digest, result` where
//! - a digest (version 2 only) is `u8 known, u64 digest`: known 1 and the XXH3-64 digest of the
//!   last write's command ([`super::Command::digest`]), or known 0 and digest 0 for a record that
//!   came from a version-1 snapshot (which kept none);
//! - a result is a tag byte and its fields: 1 Stored(u64 version), 2 Deleted(u8 existed),
//!   3 Incremented(i64 value, u64 version), 4 CasMismatch(u64 current_version), 5 NotInteger,
//!   6 Overflow, 7 KeyTooLarge, 8 ValueTooLarge, 9 Full.
//!
//! Version 1 is version 2 without the digests. Its records restore with no digest: a retry with
//! the client's last sequence number then gets the remembered result whatever its command (the
//! behaviour before digests), until the client's next write records a digest.
//!
//! Invariants: the encoding is a function of the replicated state only (keys sorted, clients in
//! activity order, no counters, no capacities), so two replicas with the same state write the same
//! bytes. `restore` never panics: it checks the header, the length and the checksum first (every
//! single-byte change and every truncation is caught there), then every invariant of the content
//! and the limits, and restores nothing unless all hold. Restoring a version-2 snapshot then
//! snapshotting gives back the same bytes.

use super::dedup::{ClientRecord, ClientTable};
use super::projection::{ApplyResult, Entry, KvCounters, KvProjection};
use super::{KvError, KvLimits, Reader, ANONYMOUS_CLIENT};
use std::collections::HashMap;

/// First four bytes of a KV snapshot.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"VGKV";
/// The snapshot format version this build writes (and reads).
pub const SNAPSHOT_VERSION: u32 = 2;
/// The previous version, still read: its client records have no digest.
pub const SNAPSHOT_VERSION_V1: u32 = 1;
/// Snapshot header length.
pub const SNAPSHOT_HEADER_LEN: usize = 28;

/// A snapshot's header, checked (magic, version, length, checksum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The format version (1 or 2).
    pub version: u32,
    /// The lsn of the last entry the snapshot holds: replay the log from the next one.
    pub applied_lsn: u64,
    /// Bytes of the body.
    pub body_len: u64,
}

fn put_result(out: &mut Vec<u8>, r: &ApplyResult) {
    match *r {
        ApplyResult::Stored { version } => {
            out.push(1);
            out.extend_from_slice(&version.to_le_bytes());
        }
        ApplyResult::Deleted { existed } => out.extend_from_slice(&[2, u8::from(existed)]),
        ApplyResult::Incremented { value, version } => {
            out.push(3);
            out.extend_from_slice(&value.to_le_bytes());
            out.extend_from_slice(&version.to_le_bytes());
        }
        ApplyResult::CasMismatch { current_version } => {
            out.push(4);
            out.extend_from_slice(&current_version.to_le_bytes());
        }
        ApplyResult::NotInteger => out.push(5),
        ApplyResult::Overflow => out.push(6),
        ApplyResult::KeyTooLarge => out.push(7),
        ApplyResult::ValueTooLarge => out.push(8),
        ApplyResult::Full => out.push(9),
        ApplyResult::Stale { .. }
        | ApplyResult::SequenceReused { .. }
        | ApplyResult::SequenceTooFar { .. }
        | ApplyResult::Malformed => unreachable!("refusals and malformed entries are never recorded"),
    }
}

fn read_result(r: &mut Reader<'_>) -> Result<ApplyResult, KvError> {
    Ok(match r.u8()? {
        1 => ApplyResult::Stored { version: r.u64()? },
        2 => ApplyResult::Deleted {
            existed: match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(KvError::SnapshotInvalid("a DEL result is neither 0 nor 1")),
            },
        },
        3 => {
            let value = r.i64()?;
            ApplyResult::Incremented { value, version: r.u64()? }
        }
        4 => ApplyResult::CasMismatch { current_version: r.u64()? },
        5 => ApplyResult::NotInteger,
        6 => ApplyResult::Overflow,
        7 => ApplyResult::KeyTooLarge,
        8 => ApplyResult::ValueTooLarge,
        9 => ApplyResult::Full,
        _ => return Err(KvError::SnapshotInvalid("unknown result tag in the client table")),
    })
}

fn put_digest(out: &mut Vec<u8>, digest: Option<u64>) {
    out.push(u8::from(digest.is_some()));
    out.extend_from_slice(&digest.unwrap_or(0).to_le_bytes());
}

fn read_digest(r: &mut Reader<'_>) -> Result<Option<u64>, KvError> {
    let known = r.u8()?;
    let digest = r.u64()?;
    match (known, digest) {
        (1, d) => Ok(Some(d)),
        (0, 0) => Ok(None),
        _ => Err(KvError::SnapshotInvalid("a client's digest is neither known nor 0")),
    }
}

fn checksum(header: &[u8], body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&header[..24]), body)
}

/// Reads and checks a snapshot's header against the whole snapshot `bytes`.
pub fn read_header(bytes: &[u8]) -> Result<SnapshotHeader, KvError> {
    let len = bytes.len() as u64;
    let header = bytes
        .get(..SNAPSHOT_HEADER_LEN)
        .ok_or(KvError::SnapshotLength { expected: SNAPSHOT_HEADER_LEN as u64, actual: len })?;
    let mut r = Reader::new(header);
    if r.bytes(4)? != SNAPSHOT_MAGIC {
        return Err(KvError::SnapshotBadMagic);
    }
    let version = r.u32()?;
    if version != SNAPSHOT_VERSION && version != SNAPSHOT_VERSION_V1 {
        return Err(KvError::SnapshotVersion(version));
    }
    let applied_lsn = r.u64()?;
    let body_len = r.u64()?;
    let expected_crc = r.u32()?;
    let body = &bytes[SNAPSHOT_HEADER_LEN..];
    let expected_len = body_len.saturating_add(SNAPSHOT_HEADER_LEN as u64);
    if expected_len != len {
        return Err(KvError::SnapshotLength { expected: expected_len, actual: len });
    }
    let actual = checksum(header, body);
    if actual != expected_crc {
        return Err(KvError::SnapshotChecksum { expected: expected_crc, actual });
    }
    Ok(SnapshotHeader { version, applied_lsn, body_len })
}

impl KvProjection {
    /// Appends the snapshot of the replicated state to `out` (allocates: snapshots are taken off
    /// the hot path).
    pub fn snapshot(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.applied_lsn.to_le_bytes());
        out.extend_from_slice(&[0u8; 12]); // body_len and crc, patched below
        let body_start = out.len();
        out.extend_from_slice(&(self.map.len() as u64).to_le_bytes());
        // Keys in ascending order (`iter` sorts them): the same state always gives the same bytes.
        for (key, value, version) in self.iter() {
            let key_len = u16::try_from(key.len()).expect("keys are at most key_bytes_max <= u16::MAX");
            let value_len = u32::try_from(value.len()).expect("values are at most value_bytes_max");
            out.extend_from_slice(&key_len.to_le_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&value_len.to_le_bytes());
            out.extend_from_slice(value);
            out.extend_from_slice(&version.to_le_bytes());
        }
        out.extend_from_slice(&(self.clients.len() as u64).to_le_bytes());
        for c in self.clients.iter() {
            out.extend_from_slice(&c.client_id.to_le_bytes());
            out.extend_from_slice(&c.last_seq.to_le_bytes());
            out.extend_from_slice(&c.last_lsn.to_le_bytes());
            put_digest(out, c.digest);
            put_result(out, &c.result);
        }
        let body_len = (out.len() - body_start) as u64;
        out[start + 16..start + 24].copy_from_slice(&body_len.to_le_bytes());
        let crc = checksum(&out[start..start + 24], &out[body_start..]);
        out[start + 24..start + 28].copy_from_slice(&crc.to_le_bytes());
        debug_assert!(read_header(&out[start..]).is_ok());
    }

    /// Rebuilds a projection from a snapshot, to run with `limits`; refuses (restoring nothing) a
    /// corrupt snapshot or one that holds more than `limits` allow.
    pub fn restore(bytes: &[u8], limits: KvLimits) -> Result<Self, KvError> {
        limits.validate()?;
        let header = read_header(bytes)?;
        let lsn = header.applied_lsn;
        let mut r = Reader::new(&bytes[SNAPSHOT_HEADER_LEN..]);
        let key_count = r.u64()?;
        if key_count > limits.keys_max as u64 {
            return Err(KvError::SnapshotExceedsLimits("more keys than keys_max"));
        }
        let mut map: HashMap<Box<[u8]>, Entry> = HashMap::with_capacity(key_count as usize);
        let mut data_bytes = 0usize;
        let mut last_key: Option<&[u8]> = None;
        for _ in 0..key_count {
            let key = r.bytes_u16()?;
            let value = r.bytes_u32()?;
            let version = r.u64()?;
            if key.len() > limits.key_bytes_max {
                return Err(KvError::SnapshotExceedsLimits("a key is longer than key_bytes_max"));
            }
            if value.len() > limits.value_bytes_max {
                return Err(KvError::SnapshotExceedsLimits("a value is longer than value_bytes_max"));
            }
            // A version names a write at or before the applied lsn (`LogPos::version`; versions
            // written before batches existed are the write's lsn, which is below it too).
            if version == 0 || version >> 16 > lsn {
                return Err(KvError::SnapshotInvalid("a key's version is 0 or above the applied lsn"));
            }
            if last_key.is_some_and(|last| last >= key) {
                return Err(KvError::SnapshotInvalid("keys are not in strictly ascending order"));
            }
            last_key = Some(key);
            data_bytes += key.len() + value.len();
            if data_bytes > limits.data_bytes_max {
                return Err(KvError::SnapshotExceedsLimits("more data than data_bytes_max"));
            }
            map.insert(key.into(), Entry { value: value.to_vec(), version });
        }
        let client_count = r.u64()?;
        if client_count > limits.dedup_clients_max as u64 {
            return Err(KvError::SnapshotExceedsLimits("more clients than dedup_clients_max"));
        }
        let mut clients = ClientTable::new(limits.dedup_clients_max);
        let mut previous_lsn = 0;
        for _ in 0..client_count {
            let client_id = r.u64()?;
            let last_seq = r.u64()?;
            let last_lsn = r.u64()?;
            let digest = if header.version == SNAPSHOT_VERSION_V1 { None } else { read_digest(&mut r)? };
            let result = read_result(&mut r)?;
            if client_id == ANONYMOUS_CLIENT {
                return Err(KvError::SnapshotInvalid("the anonymous client is in the client table"));
            }
            if clients.get(client_id).is_some() {
                return Err(KvError::SnapshotInvalid("a client appears twice in the client table"));
            }
            // Non-decreasing: one batch entry holds writes of several clients.
            if last_lsn == 0 || last_lsn < previous_lsn || last_lsn > lsn {
                return Err(KvError::SnapshotInvalid("client activity is not increasing up to the lsn"));
            }
            previous_lsn = last_lsn;
            clients.record(ClientRecord { client_id, last_seq, last_lsn, digest, result });
        }
        r.finish().map_err(|_| KvError::SnapshotInvalid("bytes after the client table"))?;
        Ok(Self {
            limits,
            applied_lsn: lsn,
            applied_index: None,
            map,
            data_bytes,
            clients,
            counters: KvCounters::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{Command, Op};

    fn sample() -> KvProjection {
        let mut kv = KvProjection::new(KvLimits::small());
        kv.apply(1, &Command { client_id: 5, seq: 1, op: Op::Set { key: b"b", value: b"2" } });
        kv.apply(2, &Command { client_id: 6, seq: 1, op: Op::Set { key: b"a", value: b"1" } });
        kv.apply(3, &Command { client_id: 5, seq: 2, op: Op::Incr { key: b"a", delta: 4 } });
        kv.apply(4, &Command { client_id: 7, seq: 9, op: Op::Del { key: b"zz" } });
        kv.apply(6, &Command { client_id: 8, seq: 1, op: Op::Incr { key: b"q", delta: i64::MAX } });
        kv.apply(7, &Command { client_id: 8, seq: 2, op: Op::Incr { key: b"q", delta: 1 } });
        kv.apply(
            8,
            &Command { client_id: 9, seq: 2, op: Op::Cas { key: b"q", expected_version: 1, value: b"" } },
        );
        kv
    }

    fn bytes_of(kv: &KvProjection) -> Vec<u8> {
        let mut out = Vec::new();
        kv.snapshot(&mut out);
        out
    }

    #[test]
    fn restore_gives_the_same_state_and_bytes() {
        let kv = sample();
        let snap = bytes_of(&kv);
        assert_eq!(read_header(&snap).unwrap().applied_lsn, 8);
        let back = KvProjection::restore(&snap, KvLimits::small()).unwrap();
        assert_eq!(back.iter().collect::<Vec<_>>(), kv.iter().collect::<Vec<_>>());
        assert_eq!(back.clients().collect::<Vec<_>>(), kv.clients().collect::<Vec<_>>());
        assert_eq!(back.applied_lsn(), 8);
        assert_eq!(back.data_bytes(), kv.data_bytes());
        assert_eq!(bytes_of(&back), snap);
    }

    #[test]
    fn empty_projection_snapshots() {
        let kv = KvProjection::new(KvLimits::small());
        let snap = bytes_of(&kv);
        assert_eq!(snap.len(), SNAPSHOT_HEADER_LEN + 16);
        assert_eq!(bytes_of(&KvProjection::restore(&snap, KvLimits::small()).unwrap()), snap);
    }

    #[test]
    fn every_single_byte_flip_and_truncation_is_refused() {
        let snap = bytes_of(&sample());
        for i in 0..snap.len() {
            for bit in 0..8 {
                let mut bad = snap.clone();
                bad[i] ^= 1 << bit;
                assert!(KvProjection::restore(&bad, KvLimits::small()).is_err(), "flip at {i} bit {bit}");
            }
            let mut bad = snap.clone();
            bad[i] = bad[i].wrapping_add(0x5a);
            assert!(KvProjection::restore(&bad, KvLimits::small()).is_err(), "change at {i}");
        }
        for len in 0..snap.len() {
            assert!(KvProjection::restore(&snap[..len], KvLimits::small()).is_err(), "truncated to {len}");
        }
        let mut longer = snap.clone();
        longer.push(0);
        assert!(matches!(
            KvProjection::restore(&longer, KvLimits::small()),
            Err(KvError::SnapshotLength { .. })
        ));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let snap = bytes_of(&sample());
        let mut bad = snap.clone();
        bad[0] = b'X';
        assert_eq!(KvProjection::restore(&bad, KvLimits::small()).unwrap_err(), KvError::SnapshotBadMagic);
        let mut bad = snap.clone();
        bad[4] = 3;
        assert_eq!(KvProjection::restore(&bad, KvLimits::small()).unwrap_err(), KvError::SnapshotVersion(3));
        let mut bad = snap.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            KvProjection::restore(&bad, KvLimits::small()),
            Err(KvError::SnapshotChecksum { .. })
        ));
        let tight = KvLimits { keys_max: 2, ..KvLimits::small() };
        assert!(matches!(KvProjection::restore(&snap, tight), Err(KvError::SnapshotExceedsLimits(_))));
        let tight = KvLimits { dedup_clients_max: 2, ..KvLimits::small() };
        assert!(matches!(KvProjection::restore(&snap, tight), Err(KvError::SnapshotExceedsLimits(_))));
    }

    #[test]
    fn digests_survive_a_snapshot() {
        let kv = sample();
        let mut back = KvProjection::restore(&bytes_of(&kv), KvLimits::small()).unwrap();
        assert!(back.clients().all(|c| c.digest.is_some()));
        // Client 9's last write was seq 2, a CAS of "q" (lsn 8).
        let other = Command { client_id: 9, seq: 2, op: Op::Set { key: b"q", value: b"x" } };
        assert_eq!(back.apply(9, &other), ApplyResult::SequenceReused { last_seq: 2 });
        let same =
            Command { client_id: 9, seq: 2, op: Op::Cas { key: b"q", expected_version: 1, value: b"" } };
        let original = kv.clients().find(|c| c.client_id == 9).unwrap().result;
        assert_eq!(back.apply(10, &same), original);
    }

    /// A version-1 snapshot as the previous build wrote it: version 2 without the digests.
    fn v1_bytes_of(kv: &KvProjection) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&(kv.len() as u64).to_le_bytes());
        for (key, value, version) in kv.iter() {
            body.extend_from_slice(&(key.len() as u16).to_le_bytes());
            body.extend_from_slice(key);
            body.extend_from_slice(&(value.len() as u32).to_le_bytes());
            body.extend_from_slice(value);
            body.extend_from_slice(&version.to_le_bytes());
        }
        body.extend_from_slice(&(kv.clients().count() as u64).to_le_bytes());
        for c in kv.clients() {
            for n in [c.client_id, c.last_seq, c.last_lsn] {
                body.extend_from_slice(&n.to_le_bytes());
            }
            put_result(&mut body, &c.result);
        }
        let mut out = Vec::from(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION_V1.to_le_bytes());
        out.extend_from_slice(&kv.applied_lsn().to_le_bytes());
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        let crc = checksum(&out, &body);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn version_1_snapshots_restore_without_digests() {
        let kv = sample();
        let v1 = v1_bytes_of(&kv);
        assert_eq!(read_header(&v1).unwrap().version, SNAPSHOT_VERSION_V1);
        let mut back = KvProjection::restore(&v1, KvLimits::small()).unwrap();
        assert_eq!(back.iter().collect::<Vec<_>>(), kv.iter().collect::<Vec<_>>());
        let strip = |c: &ClientRecord| ClientRecord { digest: None, ..*c };
        assert_eq!(back.clients().copied().collect::<Vec<_>>(), kv.clients().map(strip).collect::<Vec<_>>());
        // Written again as version 2 (digests unknown), it restores to the same bytes.
        let v2 = bytes_of(&back);
        assert_eq!(read_header(&v2).unwrap().version, SNAPSHOT_VERSION);
        assert_eq!(bytes_of(&KvProjection::restore(&v2, KvLimits::small()).unwrap()), v2);
        // Without a digest, a same-seq write gets the remembered result, whatever its command.
        let original = kv.clients().find(|c| c.client_id == 9).unwrap().result;
        let other = Command { client_id: 9, seq: 2, op: Op::Set { key: b"q", value: b"x" } };
        assert_eq!(back.apply(9, &other), original);
        // The client's next write records a digest again.
        let next = Command { client_id: 9, seq: 3, op: Op::Del { key: b"q" } };
        back.apply(10, &next);
        let other = Command { client_id: 9, seq: 3, op: Op::Del { key: b"r" } };
        assert_eq!(back.apply(11, &other), ApplyResult::SequenceReused { last_seq: 3 });
    }

    #[test]
    fn a_digest_neither_known_nor_zero_is_refused() {
        let snap = bytes_of(&sample());
        // The first client record's `known` byte: after the keys, the client count and three u64s.
        let kv = sample();
        let keys: usize = kv.iter().map(|(k, v, _)| 2 + k.len() + 4 + v.len() + 8).sum();
        let known = SNAPSHOT_HEADER_LEN + 8 + keys + 8 + 24;
        assert_eq!(snap[known], 1);
        let mut bad = snap.clone();
        bad[known] = 2;
        let crc = checksum(&bad[..24], &bad[SNAPSHOT_HEADER_LEN..]);
        bad[24..28].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(KvProjection::restore(&bad, KvLimits::small()), Err(KvError::SnapshotInvalid(_))));
    }

    /// A well-checksummed snapshot whose content breaks an invariant is still refused.
    #[test]
    fn inconsistent_content_with_a_good_checksum_is_refused() {
        let reseal = |mut s: Vec<u8>| {
            let crc = checksum(&s[..24], &s[SNAPSHOT_HEADER_LEN..]);
            s[24..28].copy_from_slice(&crc.to_le_bytes());
            s
        };
        let snap = bytes_of(&sample());
        // The applied lsn below the keys' versions.
        let mut bad = snap.clone();
        bad[8..16].copy_from_slice(&1u64.to_le_bytes());
        assert!(matches!(
            KvProjection::restore(&reseal(bad), KvLimits::small()),
            Err(KvError::SnapshotInvalid(_))
        ));
        // Keys out of order: swap "a" and "b" (the first two keys, both one byte long).
        let mut bad = snap.clone();
        let first_key = SNAPSHOT_HEADER_LEN + 8 + 2;
        assert_eq!(bad[first_key], b'a');
        bad[first_key] = b'c';
        assert!(matches!(
            KvProjection::restore(&reseal(bad), KvLimits::small()),
            Err(KvError::SnapshotInvalid(_))
        ));
    }
}
