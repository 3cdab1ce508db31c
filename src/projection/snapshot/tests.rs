//! The partition snapshot: round trips (KV, the client table, a second projection), every damage
//! refused, and the whole-KV snapshots of older builds still read.

use super::*;
use crate::kv::{Command, KvProjection, Op};
use crate::projection::counter::{self, Counters, TAG_COUNTER};
use crate::projection::{ApplyResult, SnapshotEncoder, SNAPSHOT_CHUNK_BLOCKS, TAG_KV};

fn limits() -> KvLimits {
    KvLimits::small()
}

fn counters() -> Vec<Box<dyn Projection>> {
    vec![Box::new(Counters::default())]
}

fn sample() -> Router {
    let mut r = Router::new(limits(), counters());
    r.apply_kv(1, &Command { client_id: 5, seq: 1, op: Op::Set { key: b"b", value: b"2" } });
    r.apply_kv(2, &Command { client_id: 6, seq: 1, op: Op::Set { key: b"a", value: b"1" } });
    r.apply_kv(3, &Command { client_id: 5, seq: 2, op: Op::Incr { key: b"a", delta: 4 } });
    r.apply_kv(4, &Command { client_id: 7, seq: 9, op: Op::Del { key: b"zz" } });
    r.apply_kv(6, &Command { client_id: 8, seq: 1, op: Op::Incr { key: b"q", delta: i64::MAX } });
    r.apply_kv(7, &Command { client_id: 8, seq: 2, op: Op::Incr { key: b"q", delta: 1 } });
    r.apply_kv(
        8,
        &Command { client_id: 9, seq: 2, op: Op::Cas { key: b"q", expected_version: 1, value: b"" } },
    );
    let mut w = crate::partition::batch::BatchWriter::new(Default::default());
    let add = counter::add(10, 1, b"hits", 3);
    w.push(TAG_COUNTER, &Default::default(), add.len(), |b| b.copy_from_slice(&add));
    let batch = w.seal(77).to_vec();
    assert!(r.apply_entry(9, &batch, &mut |_, _| {}));
    r
}

fn bytes_of(r: &Router) -> Vec<u8> {
    let mut out = Vec::new();
    r.snapshot(&mut out);
    out
}

fn restore(bytes: &[u8]) -> Result<Router, SnapshotError> {
    Router::restore(bytes, limits(), counters())
}

fn kv_of(r: &Router) -> Vec<(Vec<u8>, Vec<u8>, u64)> {
    r.kv().iter().map(|(k, v, n)| (k.to_vec(), v.to_vec(), n)).collect()
}

fn reseal(mut s: Vec<u8>) -> Vec<u8> {
    let crc = checksum(&s[..24], &s[SNAPSHOT_HEADER_LEN..]);
    s[24..28].copy_from_slice(&crc.to_le_bytes());
    s
}

#[test]
fn restore_gives_the_same_state_and_bytes() {
    let r = sample();
    let snap = bytes_of(&r);
    assert_eq!(applied_lsn(&snap).unwrap(), 9);
    let back = restore(&snap).unwrap();
    assert_eq!(kv_of(&back), kv_of(&r));
    assert_eq!(back.clients().collect::<Vec<_>>(), r.clients().collect::<Vec<_>>());
    assert_eq!(back.applied_lsn(), 9);
    assert_eq!(back.get::<Counters>(), r.get::<Counters>());
    assert_eq!(back.get::<Counters>().unwrap().get(b"hits"), Some((3, 77)), "the leader's time");
    assert_eq!(bytes_of(&back), snap);
}

#[test]
fn every_single_byte_flip_and_truncation_is_refused() {
    let snap = bytes_of(&sample());
    for i in 0..snap.len() {
        for bit in 0..8 {
            let mut bad = snap.clone();
            bad[i] ^= 1 << bit;
            assert!(restore(&bad).is_err(), "flip at {i} bit {bit}");
        }
    }
    for len in 0..snap.len() {
        assert!(restore(&snap[..len]).is_err(), "truncated to {len}");
    }
    let mut longer = snap.clone();
    longer.push(0);
    assert!(matches!(restore(&longer), Err(SnapshotError::Length { .. })));
}

#[test]
fn errors_say_what_is_wrong() {
    let snap = bytes_of(&sample());
    let mut bad = snap.clone();
    bad[0] = b'X';
    assert_eq!(restore(&bad).unwrap_err(), SnapshotError::BadMagic);
    let mut bad = snap.clone();
    bad[4] = 3;
    assert_eq!(restore(&bad).unwrap_err(), SnapshotError::Version(3));
    let tight = KvLimits { keys_max: 2, ..limits() };
    assert!(matches!(Router::restore(&snap, tight, counters()), Err(SnapshotError::ExceedsLimits(_))));
    let tight = KvLimits { dedup_clients_max: 2, ..limits() };
    assert!(matches!(Router::restore(&snap, tight, counters()), Err(SnapshotError::ExceedsLimits(_))));
    // A partition without the counter projection refuses its section rather than drop it.
    assert_eq!(
        Router::restore(&snap, limits(), Vec::new()).unwrap_err(),
        SnapshotError::UnknownProjection(TAG_COUNTER)
    );
}

#[test]
fn a_projection_without_a_section_starts_empty() {
    let mut kv_only = Router::new(limits(), Vec::new());
    kv_only.apply_kv(1, &Command { client_id: 1, seq: 1, op: Op::Set { key: b"k", value: b"v" } });
    let back = restore(&bytes_of(&kv_only)).unwrap();
    assert_eq!(back.kv().len(), 1);
    assert!(back.get::<Counters>().unwrap().is_empty());
}

#[test]
fn digests_survive_a_snapshot() {
    let r = sample();
    let mut back = restore(&bytes_of(&r)).unwrap();
    assert!(back.clients().all(|c| c.digest.is_some()));
    // Client 9's last write was seq 2, a CAS of "q" (lsn 8).
    let other = Command { client_id: 9, seq: 2, op: Op::Set { key: b"q", value: b"x" } };
    assert_eq!(back.apply_kv(10, &other), ApplyResult::SequenceReused { last_seq: 2 });
    let same = Command { client_id: 9, seq: 2, op: Op::Cas { key: b"q", expected_version: 1, value: b"" } };
    let original = r.clients().find(|c| c.client_id == 9).unwrap().result;
    assert_eq!(back.apply_kv(11, &same), original);
}

/// A whole-KV snapshot as builds before the router wrote it (`VGKV`, version 1 without digests,
/// version 2 with them).
fn legacy_bytes_of(r: &Router, version: u32) -> Vec<u8> {
    let mut body = Vec::new();
    // Keys in ascending order, as those builds wrote them.
    body.extend_from_slice(&(r.kv().len() as u64).to_le_bytes());
    for (k, v, n) in r.kv().iter() {
        body.extend_from_slice(&(k.len() as u16).to_le_bytes());
        body.extend_from_slice(k);
        body.extend_from_slice(&(v.len() as u32).to_le_bytes());
        body.extend_from_slice(v);
        body.extend_from_slice(&n.to_le_bytes());
    }
    body.extend_from_slice(&(r.clients().count() as u64).to_le_bytes());
    for c in r.clients() {
        if version == 1 {
            for n in [c.client_id, c.last_seq, c.last_lsn] {
                body.extend_from_slice(&n.to_le_bytes());
            }
            result::put(&mut body, &c.result);
        } else {
            put_client(&mut body, c);
        }
    }
    let mut out = Vec::from(crate::kv::snapshot::SNAPSHOT_MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&r.applied_lsn().to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    let crc = checksum(&out, &body);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[test]
fn whole_kv_snapshots_of_older_builds_restore() {
    let mut r = Router::new(limits(), Vec::new());
    r.apply_kv(3, &Command { client_id: 5, seq: 1, op: Op::Set { key: b"b", value: b"2" } });
    r.apply_kv(4, &Command { client_id: 6, seq: 4, op: Op::Incr { key: b"n", delta: 2 } });
    let v2 = restore(&legacy_bytes_of(&r, 2)).unwrap();
    assert_eq!(kv_of(&v2), kv_of(&r));
    assert_eq!(v2.clients().collect::<Vec<_>>(), r.clients().collect::<Vec<_>>());
    assert_eq!(v2.applied_lsn(), 4);
    let mut v1 = restore(&legacy_bytes_of(&r, 1)).unwrap();
    assert_eq!(kv_of(&v1), kv_of(&r));
    assert!(v1.clients().all(|c| c.digest.is_none()));
    // Without a digest, a same-seq write gets the remembered result, whatever its command.
    let original = r.clients().find(|c| c.client_id == 6).unwrap().result;
    let other = Command { client_id: 6, seq: 4, op: Op::Del { key: b"x" } };
    assert_eq!(v1.apply_kv(5, &other), original);
    // Written again, it is a partition snapshot, and restores to the same bytes.
    let again = bytes_of(&v1);
    assert_eq!(&again[..4], b"VGPS");
    assert_eq!(bytes_of(&restore(&again).unwrap()), again);
    // A damaged whole-KV snapshot is refused like any other.
    let mut bad = legacy_bytes_of(&r, 2);
    bad[30] ^= 1;
    assert!(matches!(restore(&bad), Err(SnapshotError::Checksum { .. })));
}

#[test]
fn a_digest_neither_known_nor_zero_is_refused() {
    let snap = bytes_of(&sample());
    // The first client record's `known` byte: after the client count and three u64s.
    let known = SNAPSHOT_HEADER_LEN + 8 + 24;
    assert_eq!(snap[known], 1);
    let mut bad = snap.clone();
    bad[known] = 2;
    assert!(matches!(restore(&reseal(bad)), Err(SnapshotError::Invalid(_))));
}

/// A well-checksummed snapshot whose content breaks an invariant is still refused.
#[test]
fn inconsistent_content_with_a_good_checksum_is_refused() {
    let r = sample();
    let snap = bytes_of(&r);
    // The applied lsn below the keys' versions and the clients' activity.
    let mut bad = snap.clone();
    bad[8..16].copy_from_slice(&1u64.to_le_bytes());
    assert!(matches!(restore(&reseal(bad)), Err(SnapshotError::Invalid(_))));
    // A key twice in the KV section: the second key ("a", one byte long) made the first ("b").
    let mut section = Vec::new();
    r.kv().write_section(&mut section);
    let at = snap.windows(section.len()).position(|w| w == section).unwrap();
    let mut bad = snap.clone();
    let first_key = at + 16 + 2; // after the count (format 2) and the clock
    assert_eq!(bad[first_key], b'b', "slot order: b was set first");
    let second_key = first_key + 1 + 4 + usize::from(bad[first_key + 1]) + 8 + 2;
    assert_eq!(bad[second_key], b'a');
    bad[second_key] = b'b';
    assert!(matches!(restore(&reseal(bad)), Err(SnapshotError::Invalid(_))));
    // A KV section's own loader refuses the same.
    assert!(KvProjection::load_section(&section[..section.len() - 1], 9, limits()).is_err());
    assert_eq!(section.first().copied(), Some(3), "three keys: a, b, q");
    assert_eq!(r.projection(TAG_KV).unwrap().len(), 3);
}

/// Streams a snapshot of `r` as a store does (`SnapshotEncoder`), running `between` after each
/// chunk; returns the bytes or the encoder's error.
fn stream_into<W: std::io::Write + std::io::Seek>(
    r: &mut Router,
    w: W,
    mut between: impl FnMut(&mut Router),
) -> std::io::Result<W> {
    let mut encoder = SnapshotEncoder::begin(w, r.begin_snapshot())?;
    let mut chunk = SnapshotChunk::new();
    loop {
        let complete = r.snapshot_chunk(&mut chunk);
        encoder.put(&chunk);
        between(r);
        if complete {
            return encoder.finish();
        }
    }
}

fn streamed(r: &mut Router, between: impl FnMut(&mut Router)) -> Vec<u8> {
    stream_into(r, std::io::Cursor::new(Vec::new()), between).unwrap().into_inner()
}

/// A capture encodes the state at its time, whatever the router applies between its chunks (the
/// server encodes them on the writer's thread while the shard goes on): the bytes of a snapshot
/// taken then.
#[test]
fn a_capture_encodes_the_state_at_its_time() {
    let mut r = sample();
    let then = bytes_of(&r);
    let mut lsn = 20;
    let encoded = streamed(&mut r, |r| {
        r.apply_kv(lsn, &Command { client_id: 5, seq: lsn, op: Op::Set { key: b"a", value: b"changed" } });
        r.apply_kv(lsn + 1, &Command { client_id: 0, seq: 0, op: Op::Del { key: b"b" } });
        r.apply_kv(lsn + 2, &Command { client_id: 11, seq: lsn, op: Op::Set { key: b"new", value: b"x" } });
        lsn += 3;
    });
    assert_eq!(encoded, then);
    assert_ne!(bytes_of(&r), then);
    // And with many keys, over many chunks, with every kind of change between them.
    let big = KvLimits { keys_max: 1 << 16, ..limits() };
    let mut r = Router::new(big, counters());
    let keys = 2 * SNAPSHOT_CHUNK_BLOCKS as u64 + 5;
    for k in 1..=keys {
        r.apply_kv(k, &Command { client_id: 0, seq: 0, op: Op::Set { key: &k.to_le_bytes(), value: b"v" } });
    }
    let then = bytes_of(&r);
    let mut lsn = keys;
    let encoded = streamed(&mut r, |r| {
        for i in 0..300u64 {
            lsn += 1;
            let key = ((lsn * 7919) % keys + 1).to_le_bytes();
            let op = match i % 3 {
                0 => Op::Set { key: &key, value: b"longer value" },
                1 => Op::Del { key: &key },
                _ => Op::Set { key: b"fresh", value: b"x" },
            };
            r.apply_kv(lsn, &Command { client_id: 0, seq: 0, op });
        }
    });
    assert!(encoded == then, "the chunks give the state at the capture");
    let back = Router::restore(&encoded, big, counters()).unwrap();
    assert!(bytes_of(&back) == then, "a restored map keeps the slot order");
}

/// Expiries too: a capture of keys with and without one, while expiries are set, dropped and keys
/// with one rewritten between chunks, gives the state at the capture (its announced length
/// included), and a restore keeps every expiry.
#[test]
fn a_capture_keeps_the_expiries_at_its_time() {
    use crate::kv::{expire_flags, Ttl};
    let big = KvLimits { keys_max: 1 << 16, ..limits() };
    let mut r = Router::new(big, counters());
    let keys = 2 * SNAPSHOT_CHUNK_BLOCKS as u64 + 5;
    let far = 4_000_000_000_000i64;
    for k in 1..=keys {
        let key = k.to_le_bytes();
        let ttl = if k % 3 == 0 { Ttl::AbsoluteMs(far + k as i64) } else { Ttl::Clear };
        r.apply_kv(
            k,
            &Command { client_id: 0, seq: 0, op: Op::SetX { key: &key, value: b"v", flags: 0, ttl } },
        );
    }
    assert_eq!(r.kv().expiring() as u64, keys / 3);
    let then = bytes_of(&r);
    let mut lsn = keys;
    let encoded = streamed(&mut r, |r| {
        for i in 0..300u64 {
            lsn += 1;
            let key = ((lsn * 7919) % keys + 1).to_le_bytes();
            let op = match i % 4 {
                0 => Op::Expire { key: &key, flags: expire_flags::LT, ttl: Ttl::AbsoluteMs(far - 1) },
                1 => Op::Persist { key: &key },
                2 => Op::SetX { key: &key, value: b"longer value", flags: 0, ttl: Ttl::Keep },
                _ => Op::Del { key: &key },
            };
            r.apply_kv(lsn, &Command { client_id: 0, seq: 0, op });
        }
    });
    assert!(encoded == then, "the chunks give the state at the capture");
    let back = Router::restore(&encoded, big, counters()).unwrap();
    assert!(bytes_of(&back) == then, "a restored map keeps the slot order and the expiries");
    assert_eq!(back.kv().expiring() as u64, keys / 3);
    assert_eq!(back.kv().ttl_ms(&3u64.to_le_bytes(), 0), Some(far + 3));
}

/// The whole snapshot in memory (`snapshot`) and streamed in chunks give the same bytes; a write
/// that fails is an error, never a snapshot that looks whole.
#[test]
fn a_streamed_snapshot_is_the_encoded_one_and_a_failed_write_is_an_error() {
    let mut r = sample();
    assert_eq!(streamed(&mut r, |_| {}), bytes_of(&r));
    /// Accepts `room` bytes, then fails.
    struct Full {
        inner: std::io::Cursor<Vec<u8>>,
        room: usize,
    }
    impl std::io::Write for Full {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.inner.get_ref().len() + b.len() > self.room {
                return Err(std::io::Error::other("disk full"));
            }
            self.inner.write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl std::io::Seek for Full {
        fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
            self.inner.seek(to)
        }
    }
    let full = Full { inner: std::io::Cursor::new(Vec::new()), room: 40 };
    assert!(stream_into(&mut r, full, |_| {}).is_err());
    // A capture abandoned for a new one: the new one is whole.
    r.begin_snapshot();
    assert_eq!(streamed(&mut r, |_| {}), bytes_of(&r));
}

/// A snapshot whose KV section is in ascending key order (what builds before slot order wrote)
/// still loads, and a key twice is refused.
#[test]
fn sorted_kv_sections_of_older_builds_load_and_a_key_twice_is_refused() {
    let r = sample();
    let mut sorted = Vec::new();
    sorted.extend_from_slice(&(r.kv().len() as u64).to_le_bytes());
    for (k, v, n) in r.kv().iter() {
        sorted.extend_from_slice(&(k.len() as u16).to_le_bytes());
        sorted.extend_from_slice(k);
        sorted.extend_from_slice(&(v.len() as u32).to_le_bytes());
        sorted.extend_from_slice(v);
        sorted.extend_from_slice(&n.to_le_bytes());
    }
    let loaded = KvProjection::load_section(&sorted, 9, limits()).unwrap();
    assert_eq!(loaded.iter().collect::<Vec<_>>(), r.kv().iter().collect::<Vec<_>>());
    let mut section = Vec::new();
    loaded.write_section(&mut section);
    // Written back in format 3 (bits 63 and 62 of the count, then the clock: 0, no entry since),
    // entries as they were: no key has an expiry or an owner.
    assert_eq!(section[..8], (r.kv().len() as u64 | 3 << 62).to_le_bytes());
    assert_eq!(section[8..16], [0; 8]);
    assert_eq!(section[16..], sorted[8..], "loaded in file order, written in the same order");
    // The second key made the first's twin (both one byte long: "a" and "b").
    let first = 8 + 2;
    let second = first + 1 + 4 + sorted[first + 1] as usize + 8 + 2;
    assert_eq!((sorted[first], sorted[second]), (b'a', b'b'));
    let mut twice = sorted.clone();
    twice[second] = b'a';
    assert_eq!(
        KvProjection::load_section(&twice, 9, limits()).unwrap_err(),
        SnapshotError::Invalid("a key appears twice")
    );
}

/// A store's read error, in either pass, is an error naming it (`Io`), and nothing is built; a
/// read never asks for more than the load buffer at a time.
#[test]
fn a_read_error_in_either_pass_is_an_error_and_reads_are_bounded() {
    /// Bytes that fail to read once `fail_after` bytes were read in all, recording the largest read.
    struct Failing {
        inner: std::io::Cursor<Vec<u8>>,
        read: usize,
        fail_after: usize,
        largest: usize,
    }
    impl std::io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.largest = self.largest.max(buf.len());
            if self.read >= self.fail_after {
                return Err(std::io::Error::other("bad sector"));
            }
            let room = buf.len().min(self.fail_after - self.read);
            let n = self.inner.read(&mut buf[..room])?;
            self.read += n;
            Ok(n)
        }
    }
    impl std::io::Seek for Failing {
        fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
            self.inner.seek(to)
        }
    }
    let big = KvLimits { keys_max: 1 << 16, ..limits() };
    let mut r = Router::new(big, counters());
    for k in 1..=5000u64 {
        r.apply_kv(
            k,
            &Command { client_id: 0, seq: 0, op: Op::Set { key: &k.to_le_bytes(), value: b"value" } },
        );
    }
    let snap = bytes_of(&r);
    assert!(snap.len() > 2 * read::LOAD_BUFFER_BYTES);
    let open =
        |fail_after| Failing { inner: std::io::Cursor::new(snap.clone()), read: 0, fail_after, largest: 0 };
    let mut whole = open(usize::MAX);
    let back = Router::restore_from(&mut whole, big, counters()).unwrap();
    assert!(bytes_of(&back) == snap);
    assert!(whole.largest <= read::LOAD_BUFFER_BYTES, "a read of {} bytes", whole.largest);
    // In the first pass (the checksum) and in the second (the content).
    for fail_after in [100, snap.len() + 100] {
        let err = Router::restore_from(&mut open(fail_after), big, counters()).unwrap_err();
        assert!(matches!(err, SnapshotError::Io(ref why) if why.contains("bad sector")), "{err}");
    }
}
