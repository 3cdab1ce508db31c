//! The KV projection: a deterministic fold of committed log entries into a key-value map.
//!
//! The projection is a pure state machine, independent of Raft and of storage: the pipeline (or the
//! simulator) hands it committed entries in log order as `(lsn, Command)` and gets an [`ApplyResult`]
//! back, which [`protocol`] renders into a wire answer. Reads ([`KvProjection::get`]) are served
//! from the projection without going through the log.
//!
//! - [`command`]: the log-entry encoding of KV writes ([`Command`]: SET, DEL, INCR, CAS, SETX,
//!   EXPIRE, PERSIST, EXPIRE_DUE, each with the client's id and sequence number for exactly-once).
//! - [`expiry`]: key expiry (deadlines from the entries' timestamps, the expiry index, reclaim
//!   without a scan).
//! - [`protocol`]: the wire request bodies of the KV opcodes (docs/PROTOCOL.md) and the
//!   rendering of answers into a caller's buffer.
//! - `map`: the key map under the projection (one heap block per key, a hash index of 4-byte
//!   slot numbers); `capture`: a snapshot's cursor over it, with the pre-images of what changed.
//! - [`projection`]: the state machine ([`KvProjection::apply_op`]), and its side of the
//!   projection seam (`crate::projection::Projection`, tag `TAG_KV`). Exactly-once (the client
//!   table) is the router's, shared by all projections (`crate::projection::router`).
//! - [`snapshot`]: its deterministic section of the partition's snapshot, and the whole-KV
//!   snapshots of older builds.
//!
//! Invariants:
//! - Determinism: the state and every result are a function of the sequence of `(lsn, entry
//!   timestamp, command)` applied and of the [`KvLimits`]; nothing reads a clock (time is the
//!   entries' timestamps; reads compare expiries with the request's time, changing nothing), an RNG or a hash seed. All replicas of a
//!   partition must therefore run with the same limits (they are part of the replicated
//!   configuration, like the partition's membership).
//! - Versions: a key's version is the lsn of the entry that last wrote it. LSNs are unique and
//!   increasing, so a version is never reused (no ABA for CAS), and 0 is never a version: CAS with
//!   expected version 0 means "only if the key does not exist".
//! - Bounded: at most `keys_max` keys and `data_bytes_max` bytes of keys plus values; at most
//!   `dedup_clients_max` clients remembered. Hitting a limit is an error result, never a panic.
//! - Decoders (commands, request bodies, snapshots) never panic and never read past their input.

mod capture;
pub mod command;
pub mod expiry;
mod map;
pub mod pairs;
pub mod projection;
pub mod protocol;
mod quota;
pub mod snapshot;

pub use command::{expire_flags, set_flags, Command, Op, Ttl, ANONYMOUS_CLIENT};
pub use map::KEY_BYTES_LIMIT;
pub use pairs::{Pairs, PairsWriter};
pub use projection::{ApplyResult, KvProjection};

use thiserror::Error;

/// The limits of one KV projection; fixed at start-up and the same on every replica.
///
/// Memory bound: the map holds at most `keys_max` keys whose keys and values add up to at most
/// `data_bytes_max` bytes, each in one heap block of exactly its key and value plus 10 bytes; each
/// key also costs at most [`KEY_OVERHEAD_BYTES_MAX`] more (the block's header and allocator
/// overhead, its 16-byte slot with the slot vector's growth slack, the index's bucket while it
/// grows). So the heap used by the map stays below `data_bytes_max + keys_max *
/// KEY_OVERHEAD_BYTES_MAX` bytes (about 60 bytes per key above the data in practice: ~92 per key
/// for 16-byte keys and values at 1 M keys, docs/BENCHMARKS.md "Memory per key"), plus
/// `dedup_clients_max * CLIENT_RECORD_BYTES` bytes for the client table (allocated once, at
/// creation). A snapshot costs no memory per key: the shard hands the snapshot writer's thread
/// chunks of the map's blocks (shared, copy-on-write; `KvProjection::begin_capture`), at most
/// `SNAPSHOT_CHUNKS_IN_FLIGHT` of `SNAPSHOT_CHUNK_BLOCKS` pointers, plus the pre-images of the keys
/// written while it runs. A key with an expiry costs 8 more bytes in its block and an entry of the
/// expiry index (`expiry`: a copy of the key in a B-tree node, about the key's length plus 40
/// bytes); keys without one pay nothing for expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvLimits {
    /// Longest key in bytes (at most 32767: the map's key length field keeps a bit for expiry).
    pub key_bytes_max: usize,
    /// Longest value in bytes (at most `u32::MAX`).
    pub value_bytes_max: usize,
    /// Most keys stored at once (the key map numbers its slots with `u32`: at most 2^32, the
    /// maximum of `kv.keys_max` in the config).
    pub keys_max: usize,
    /// Most bytes of keys plus values stored at once.
    pub data_bytes_max: usize,
    /// Most clients whose last write is remembered for exactly-once (at least 1).
    pub dedup_clients_max: usize,
    /// How far past a remembered client's last applied sequence number a new write's sequence
    /// number may be (at least 1); beyond it the write is refused (`SEQUENCE_TOO_FAR`), so that one
    /// forged datagram cannot make a client's later writes stale.
    pub sequence_ahead_max: u64,
}

/// The most bytes a key costs beyond its key and value bytes (`KvLimits`' memory bound): its block's
/// 8-byte version and 2-byte key length, its two 8-byte reference counts (blocks are shared with
/// snapshot captures) and the allocator's chunk header and rounding (up to 49 in all), its 16-byte
/// slot in a vector that may hold twice as many slots as keys after it grew (32), the index's
/// 4-byte entry and control byte over up to 2.3 buckets per key, old and new table together while
/// it grows (18).
pub const KEY_OVERHEAD_BYTES_MAX: u64 = 100;

/// Bytes the client table allocates per remembered client (its slot with the record and command
/// digest, and its share of the hash index), for memory estimates.
pub const CLIENT_RECORD_BYTES: u64 = 112;

/// The default of [`KvLimits::sequence_ahead_max`]: 2^24 (16,777,216) ahead of a client's last
/// applied write. No client has that many writes in flight, and pushing a client's sequence to the
/// end of the space takes 2^40 forged writes (docs/PROTOCOL.md, "Exactly-once writes").
pub const SEQUENCE_AHEAD_MAX_DEFAULT: u64 = 1 << 24;

impl KvLimits {
    /// Small limits for tests and the simulator.
    pub const fn small() -> Self {
        Self {
            key_bytes_max: 64,
            value_bytes_max: 1024,
            keys_max: 1024,
            data_bytes_max: 1 << 20,
            dedup_clients_max: 64,
            sequence_ahead_max: SEQUENCE_AHEAD_MAX_DEFAULT,
        }
    }

    /// Checks that the limits are usable; the error names the field.
    pub fn validate(&self) -> Result<(), KvError> {
        if self.key_bytes_max > map::KEY_BYTES_LIMIT {
            // Bit 15 of a block's key length says whether it carries an expiry (`map`).
            return Err(KvError::BadLimits("key_bytes_max must be at most 32767"));
        }
        if u32::try_from(self.value_bytes_max).is_err() {
            return Err(KvError::BadLimits("value_bytes_max must be at most 4294967295"));
        }
        if self.keys_max == 0 {
            return Err(KvError::BadLimits("keys_max must be at least 1"));
        }
        if self.dedup_clients_max == 0 {
            return Err(KvError::BadLimits("dedup_clients_max must be at least 1"));
        }
        if u32::try_from(self.dedup_clients_max).is_err() {
            return Err(KvError::BadLimits("dedup_clients_max must be below 4294967295"));
        }
        if self.sequence_ahead_max == 0 {
            return Err(KvError::BadLimits("sequence_ahead_max must be at least 1"));
        }
        Ok(())
    }
}

/// Errors of the KV layer: decoding commands, request bodies and snapshots, encoding into a buffer.
/// Results of applying a command are not errors but [`ApplyResult`]s.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum KvError {
    /// The input ended before the field being read; nothing was decoded and no state changed.
    #[error("truncated: {needed} bytes needed at offset {offset}, input is {len} bytes")]
    Truncated {
        /// Where the field starts.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Length of the input.
        len: usize,
    },
    /// Bytes follow the last field; nothing was decoded and no state changed.
    #[error("{0} trailing bytes after the last field")]
    TrailingBytes(usize),
    /// The command's kind byte is none of SET, DEL, INCR, CAS; nothing was decoded.
    #[error("unknown command kind 0x{0:02x}")]
    UnknownKind(u8),
    /// The opcode is not a KV write (SET, DEL, INCR, CAS); nothing was decoded.
    #[error("opcode 0x{0:02x} is not a KV write")]
    NotAWrite(u8),
    /// A key is longer than the encoding can carry (65535 bytes); nothing was written.
    #[error("key of {0} bytes does not fit the 16-bit length field")]
    KeyTooLong(usize),
    /// A value is longer than the encoding can carry (4 GiB - 1); nothing was written.
    #[error("value of {0} bytes does not fit the 32-bit length field")]
    ValueTooLong(usize),
    /// The output buffer is shorter than the encoding; the buffer's content is unspecified.
    #[error("output buffer too small: {needed} bytes needed")]
    NoRoom {
        /// Bytes the encoding needs.
        needed: usize,
    },
    /// A field holds a value the encoding does not define (unknown flag bits or expiry kind);
    /// nothing was decoded.
    #[error("bad field: {0}")]
    BadField(&'static str),
    /// The limits are unusable; no projection was created.
    #[error("bad KV limits: {0}")]
    BadLimits(&'static str),
    /// The snapshot does not start with the KV snapshot magic; nothing was restored.
    #[error("not a KV snapshot (bad magic)")]
    SnapshotBadMagic,
    /// The snapshot's format version is not one this build reads; nothing was restored.
    #[error("KV snapshot format version {0} is not supported")]
    SnapshotVersion(u32),
    /// The snapshot's length differs from the length its header announces; nothing was restored.
    #[error("KV snapshot length {actual} differs from the {expected} bytes its header announces")]
    SnapshotLength {
        /// Length from the header.
        expected: u64,
        /// Length found.
        actual: u64,
    },
    /// The snapshot's checksum does not match its content; nothing was restored.
    #[error("KV snapshot checksum mismatch: header says {expected:08x}, content gives {actual:08x}")]
    SnapshotChecksum {
        /// CRC32C from the header.
        expected: u32,
        /// CRC32C computed.
        actual: u32,
    },
    /// The snapshot's checksum matched but its content breaks an invariant (written by a buggy
    /// writer); nothing was restored.
    #[error("KV snapshot is inconsistent: {0}")]
    SnapshotInvalid(&'static str),
    /// The snapshot holds more than the given limits allow; nothing was restored.
    #[error("KV snapshot exceeds the limits: {0}")]
    SnapshotExceedsLimits(&'static str),
}

/// Little-endian cursor over an input that never panics: every read checks the length first.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], KvError> {
        let truncated = KvError::Truncated { offset: self.pos, needed: n, len: self.buf.len() };
        let end = self.pos.checked_add(n).ok_or(truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(truncated)?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], KvError> {
        let b = self.bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, KvError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, KvError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, KvError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, KvError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, KvError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A u16 length then that many bytes.
    pub(crate) fn bytes_u16(&mut self) -> Result<&'a [u8], KvError> {
        let n = self.u16()?;
        self.bytes(usize::from(n))
    }

    /// A u32 length then that many bytes.
    pub(crate) fn bytes_u32(&mut self) -> Result<&'a [u8], KvError> {
        let n = self.u32()?;
        self.bytes(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Everything not read yet.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        out
    }

    /// Bytes read so far.
    pub(crate) fn consumed(&self) -> usize {
        self.pos
    }

    /// The bytes read since `start` (a value of `consumed`).
    pub(crate) fn consumed_since(&self, start: usize) -> &'a [u8] {
        &self.buf[start..self.pos]
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Fails if any byte is left.
    pub(crate) fn finish(&self) -> Result<(), KvError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(KvError::TrailingBytes(n)),
        }
    }
}

/// Little-endian writer into a caller's fixed buffer; the caller checks the total length first.
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    /// A writer over `buf`, which must hold `needed` bytes.
    pub(crate) fn new(buf: &'a mut [u8], needed: usize) -> Result<Self, KvError> {
        let buf = buf.get_mut(..needed).ok_or(KvError::NoRoom { needed })?;
        Ok(Self { buf, pos: 0 })
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) {
        self.buf[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }

    /// Bytes written; asserts the caller's length computation was exact.
    pub(crate) fn done(self) -> usize {
        assert_eq!(self.pos, self.buf.len(), "encoded length differs from the computed length");
        self.pos
    }
}
