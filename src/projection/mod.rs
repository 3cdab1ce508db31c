//! Projections: the state machines folded from a partition's log, and the seam between them and the
//! partition (`Projection`), with what they share: a write's place in the log (`LogPos`, which is
//! also its version), the time the leader stamped on its entry (`Applied`), the common header of
//! every command (`CommandHeader`), the result type (`result`), the client table that makes
//! writes exactly-once for every projection (`clients`), and the router that sends each committed
//! command to its projection (`router`) and writes and loads the partition's snapshot
//! (`snapshot`).
//!
//! The seam: a projection applies a committed command at its log position with the leader's
//! timestamp and returns its result; checks a command before it is proposed; answers reads; and
//! writes and loads its own section of the partition's snapshot. It never sees client ids, sequence
//! numbers or retries (the router decides those), never reads a clock (time comes in `Applied`),
//! and is told nothing but bytes, so every replica and every replay folds the same state.
//!
//! Invariants: versions are unique and increase along the log, so a key's version names exactly
//! one write (CAS relies on it); a command's first byte is its kind, an opcode unique across
//! projections, so a command digest never matches a command of another projection.

pub mod clients;
pub mod owner;
pub mod result;
pub mod router;
pub mod snapshot;

#[cfg(test)]
pub(crate) mod counter;

pub use owner::{Owner, Quota, Usage, UsageTable};
pub use result::ApplyResult;
pub use router::{Router, RouterCounters};
pub use snapshot::read::{FieldRead, SectionReader, SnapshotRead};
pub use snapshot::write::{SnapshotChunk, SnapshotEncoder, SnapshotHeader, SNAPSHOT_CHUNK_BLOCKS};

use crate::wire::Status;
use std::any::Any;
use std::sync::Arc;

/// Projection tag of the KV store (`crate::kv`).
pub const TAG_KV: u8 = 1;

/// Bytes of the header every command starts with: kind (u8), client id (u64), sequence number
/// (u64), little-endian.
pub const COMMAND_HEADER_LEN: usize = 17;

/// Where a write sits in the log: its entry's lsn and its position in the entry's batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPos {
    /// The entry's lsn (Raft index).
    pub lsn: u64,
    /// The write's position in the batch (0 for a single-command entry).
    pub index: u16,
}

impl LogPos {
    /// The position of a write alone in its entry.
    pub fn single(lsn: u64) -> Self {
        Self { lsn, index: 0 }
    }

    /// The write's version: `lsn * 65536 + index`, unique and increasing along the log (a key's
    /// version names exactly one write).
    pub fn version(&self) -> u64 {
        self.lsn << 16 | u64::from(self.index)
    }
}

/// Where and when a committed command is applied: its log position, the leader's clock (ns)
/// when it sealed the entry, the only time a projection may read (0 for entries written before
/// batches carried one), and who wrote it under which quota (`owner`, stamped by the leader).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Its place in the log.
    pub pos: LogPos,
    /// The leader's timestamp of its entry, in nanoseconds.
    pub time_ns: u64,
    /// Who wrote it and the quota it runs under (anonymous and unlimited for entries written
    /// before quotas).
    pub owner: Owner,
    /// What the owner holds in the partition's other projections (the router fills it in when
    /// the owner has a quota, so that one quota covers everything it stores).
    pub others: Usage,
}

impl Applied {
    /// A command alone in its entry at `lsn`, with no timestamp (tests, entries from before batches).
    pub fn single(lsn: u64) -> Self {
        Self { pos: LogPos::single(lsn), ..Default::default() }
    }
}

/// The header every command starts with, read by the router for exactly-once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandHeader {
    /// The command's kind: its opcode, unique across projections.
    pub kind: u8,
    /// The client (0: anonymous, no exactly-once).
    pub client_id: u64,
    /// The client's sequence number for this write.
    pub seq: u64,
}

impl CommandHeader {
    /// Reads the header of `command`; `None` if it is shorter than one.
    pub fn read(command: &[u8]) -> Option<Self> {
        let h = command.get(..COMMAND_HEADER_LEN)?;
        let u64_at = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().expect("8 bytes"));
        Some(Self { kind: h[0], client_id: u64_at(1), seq: u64_at(9) })
    }

    /// Writes the header into the first `COMMAND_HEADER_LEN` bytes of `out`.
    pub fn write(&self, out: &mut [u8]) {
        out[0] = self.kind;
        out[1..9].copy_from_slice(&self.client_id.to_le_bytes());
        out[9..17].copy_from_slice(&self.seq.to_le_bytes());
    }
}

/// Why a snapshot (the partition's, or one projection's section of it) does not load; nothing was
/// loaded.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// Not a snapshot this build knows (bad magic).
    #[error("not a snapshot (bad magic)")]
    BadMagic,
    /// A format version this build does not read.
    #[error("snapshot format version {0} is not supported")]
    Version(u32),
    /// The length differs from what the header announces, or a field runs past the end.
    #[error("snapshot length {actual} differs from the {expected} bytes expected")]
    Length {
        /// Bytes expected.
        expected: u64,
        /// Bytes found.
        actual: u64,
    },
    /// The checksum does not match the content.
    #[error("snapshot checksum mismatch: header says {expected:08x}, content gives {actual:08x}")]
    Checksum {
        /// CRC32C from the header.
        expected: u32,
        /// CRC32C computed.
        actual: u32,
    },
    /// The checksum matched but the content breaks an invariant (a buggy writer).
    #[error("snapshot is inconsistent: {0}")]
    Invalid(&'static str),
    /// The content exceeds this node's limits.
    #[error("snapshot exceeds the limits: {0}")]
    ExceedsLimits(&'static str),
    /// Reading the snapshot failed (its store's I/O error).
    #[error("cannot read the snapshot: {0}")]
    Io(String),
    /// A section names a projection this partition does not have.
    #[error("snapshot has a section for projection tag {0}, which this partition does not run")]
    UnknownProjection(u8),
}

impl From<crate::kv::KvError> for SnapshotError {
    fn from(e: crate::kv::KvError) -> Self {
        use crate::kv::KvError as K;
        match e {
            K::SnapshotBadMagic => Self::BadMagic,
            K::SnapshotVersion(v) => Self::Version(v),
            K::SnapshotLength { expected, actual } => Self::Length { expected, actual },
            K::SnapshotChecksum { expected, actual } => Self::Checksum { expected, actual },
            K::SnapshotInvalid(why) => Self::Invalid(why),
            K::SnapshotExceedsLimits(why) => Self::ExceedsLimits(why),
            K::Truncated { offset, needed, len } => {
                Self::Length { expected: (offset + needed) as u64, actual: len as u64 }
            }
            K::TrailingBytes(_) => Self::Invalid("bytes after the last field"),
            _ => Self::Invalid("undecodable field"),
        }
    }
}

/// A state machine folded from a partition's log (see the module header).
pub trait Projection: Any + Send + std::fmt::Debug {
    /// Its tag: what a batch frame names to reach it.
    fn tag(&self) -> u8;

    /// What applying `command` would certainly give without changing anything (a size over a
    /// limit, a command that does not decode), so the write is answered at once and not logged;
    /// `None`: it must be logged and applied.
    fn check(&self, command: &[u8]) -> Option<ApplyResult>;

    /// Applies a committed `command` (header included) at `at`. Deterministic: the result and the
    /// new state depend only on the state, `at` and the bytes. A command that does not decode is
    /// `Malformed` and changes nothing.
    fn apply(&mut self, at: Applied, command: &[u8]) -> ApplyResult;

    /// Answers a read request (`opcode`, `body`) into `out`; returns its length.
    fn read(&self, opcode: u8, body: &[u8], out: &mut [u8]) -> Result<usize, Status>;

    /// Appends its section of a snapshot (its whole replicated state, deterministic bytes).
    fn write_snapshot(&self, out: &mut Vec<u8>);

    /// Starts a capture of its state now for a section written later, off the shard's thread, in
    /// chunks ([`Projection::capture_chunk`]), so the shard pays neither for the encoding nor for a
    /// copy of the state. The default encodes the section now: right for a small projection.
    fn begin_capture(&mut self) -> SectionCapture {
        let mut section = Vec::new();
        self.write_snapshot(&mut section);
        SectionCapture::Bytes(section)
    }

    /// Fills `chunk` (empty) with the next part of the section a `SectionCapture::Chunked` capture
    /// began; returns true once the whole section was given. The bytes the chunks put are exactly
    /// the `byte_len` the capture announced, and those `write_snapshot` gave at the capture.
    fn capture_chunk(&mut self, chunk: &mut SnapshotChunk) -> bool {
        let _ = chunk;
        true
    }

    /// Loads its section of a snapshot taken at `applied_lsn` into this empty projection, reading
    /// it from `section` (a reader bounded to the section; the checksum was verified before), to
    /// its end; on an error nothing is loaded and the projection stays empty.
    fn load_snapshot(
        &mut self,
        section: &mut SectionReader<'_>,
        applied_lsn: u64,
    ) -> Result<(), SnapshotError>;

    /// Upkeep that is not replicated state: gives back a bounded amount of the memory it keeps
    /// for reuse (the candle ring's spare blocks, `candle::blocks`). The partition calls it from
    /// `poll` when no request waits; it changes nothing a read, a snapshot or an apply sees.
    /// Returns whether more may be left to do (the partition then polls again rather than sleep).
    fn upkeep(&mut self) -> bool {
        false
    }

    /// The keys or records `owner` (a key id, `projection::owner`) holds here, and their bytes,
    /// counted against its quota; at `time_ns` (what has expired by then need not count). The
    /// default holds nothing for anyone: a projection that stores nobody's data.
    fn usage_of(&self, owner: u32, time_ns: u64) -> Usage {
        let _ = (owner, time_ns);
        Usage::default()
    }

    /// Keys or records it holds (reports).
    fn len(&self) -> usize;

    /// Whether it holds nothing.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Itself, to be downcast to its type (`Router::get`).
    fn as_any(&self) -> &dyn Any;
    /// The projection as `Any`, to change it as its own type (the partition turns KV's record of
    /// expired keys on and off for watchers).
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// Where a snapshot's bytes go as they are encoded: a buffer, or a file written as it goes (so a
/// snapshot never needs its own size in memory).
pub trait SnapshotSink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

impl SnapshotSink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A projection's section captured for a snapshot (`Projection::begin_capture`).
#[derive(Debug)]
pub enum SectionCapture {
    /// The section, encoded at the capture.
    Bytes(Vec<u8>),
    /// A section given later by `Projection::capture_chunk`: `head` first (encoded at the capture),
    /// then the chunks; `byte_len` bytes in all, head included.
    Chunked {
        /// Bytes in the section.
        byte_len: u64,
        /// Its first bytes.
        head: Vec<u8>,
    },
}

impl SectionCapture {
    /// Bytes in the section.
    pub fn byte_len(&self) -> u64 {
        match self {
            Self::Bytes(b) => b.len() as u64,
            Self::Chunked { byte_len, .. } => *byte_len,
        }
    }
}

/// Makes an empty projection (one per partition, at every start).
pub type ProjectionMaker = Arc<dyn Fn() -> Box<dyn Projection> + Send + Sync>;

/// The projections a partition runs besides KV (which every partition has), as makers: the same on
/// every replica.
#[derive(Clone, Default)]
pub struct ProjectionSet {
    makers: Vec<ProjectionMaker>,
}

impl std::fmt::Debug for ProjectionSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tags: Vec<u8> = self.makers.iter().map(|m| m().tag()).collect();
        f.debug_struct("ProjectionSet").field("tags", &tags).finish()
    }
}

impl ProjectionSet {
    /// Adds a projection.
    pub fn with(mut self, maker: ProjectionMaker) -> Self {
        self.makers.push(maker);
        self
    }

    /// Empty projections, one per maker.
    pub fn make(&self) -> Vec<Box<dyn Projection>> {
        self.makers.iter().map(|m| m()).collect()
    }
}

/// The version of a write alone in its entry at `lsn` (tests).
#[cfg(test)]
pub(crate) fn v(lsn: u64) -> u64 {
    LogPos::single(lsn).version()
}
