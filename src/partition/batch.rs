//! Batch entries: every write a partition accepts in one poll iteration goes into one Raft entry
//! (one log record), so the cost of an entry (Raft's bookkeeping, a record header, a group commit's
//! share) is paid once per batch instead of once per write.
//!
//! Layout of a batch entry's payload (little-endian, no padding):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 1 | `BATCH_FORMAT` (0xB1): a batch; any other first byte is a single KV command written before batches existed (its first byte is a KV opcode, 0x11..=0x14) |
//! | 1 | 1 | reserved, 0 |
//! | 2 | 2 | `count`: commands in the batch, 1..=`BATCH_WRITES_LIMIT` |
//! | 4 | 8 | `timestamp`: the leader's clock (ns) when it sealed the batch: the only time a projection may read, the same on replay and on every replica |
//! | 12 | .. | `count` times: u8 projection tag, u8 `flags`, u16 `len`, the owner's stamp (`flags` says which fields: `projection::owner`; none when 0), `len` bytes of the command |
//!
//! `flags` is 0 for an anonymous write without a quota (and in every batch written before
//! quotas, when the byte was reserved and zero); otherwise it says that the key id of the
//! principal the leader admitted the write from follows, and the quota of that principal in this
//! partition (`projection::owner`).
//!
//! A write's place in the log is its entry's lsn and its position in the batch (`LogPos`), which
//! makes its version (`LogPos::version`): unique and increasing along the log.
//!
//! Invariants: `BatchReader` never panics and never reads past its input, whatever the bytes; it
//! accepts exactly what `BatchWriter` writes (count matching, reserved byte zero, known flags,
//! nothing trailing); a sealed batch holds 1..=`writes_max` commands and at most `bytes_max` bytes, both
//! from config; the writer allocates only at construction.

use crate::projection::owner::StampError;
pub use crate::projection::LogPos;
use crate::projection::Owner;
use thiserror::Error;

/// First byte of a batch entry.
pub const BATCH_FORMAT: u8 = 0xB1;
/// Bytes of a batch's header.
pub const BATCH_HEADER_LEN: usize = 12;
/// Bytes of each command's frame besides the command and the owner's stamp.
pub const COMMAND_FRAME_LEN: usize = 4;
/// Most bytes of each command's frame besides the command, a stamp included.
pub const COMMAND_FRAME_LEN_MAX: usize = COMMAND_FRAME_LEN + crate::projection::owner::STAMP_BYTES_MAX;
/// The smallest `bytes_max` a batch may have: a header and one small command.
pub const BATCH_BYTES_MIN: usize = 64;
/// The most commands a batch may hold (positions are 16 bits).
pub const BATCH_WRITES_LIMIT: usize = u16::MAX as usize;
pub use crate::projection::TAG_KV;

/// The bounds of a batch, from config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most bytes of a batch entry (header included); at most one log record's payload.
    pub bytes_max: usize,
    /// Most commands in one batch.
    pub writes_max: usize,
}

impl Default for BatchLimits {
    /// One log record's payload, and 256 writes.
    fn default() -> Self {
        Self { bytes_max: crate::raft::ENTRY_DATA_MAX, writes_max: 256 }
    }
}

/// Why a batch entry does not decode.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum BatchError {
    /// Shorter than its header or than a frame says.
    #[error("truncated batch")]
    Truncated,
    /// The header or a frame is not what a writer writes (reserved bytes, a zero count, bytes
    /// after the last command).
    #[error("malformed batch: {0}")]
    Malformed(&'static str),
}

/// Builds one batch entry in a buffer allocated once.
#[derive(Debug)]
pub struct BatchWriter {
    buf: Vec<u8>,
    limits: BatchLimits,
    count: usize,
    /// Where the last command's frame starts (`pop` takes it back).
    last: usize,
    /// Where the last command's bytes start (after its frame and stamp).
    command_at: usize,
}

impl BatchWriter {
    /// A writer for batches within `limits`.
    pub fn new(limits: BatchLimits) -> Self {
        assert!(limits.bytes_max >= BATCH_BYTES_MIN, "batch bytes_max too small");
        assert!((1..=BATCH_WRITES_LIMIT).contains(&limits.writes_max), "batch writes_max out of range");
        let mut buf = Vec::with_capacity(limits.bytes_max);
        buf.resize(BATCH_HEADER_LEN, 0);
        Self { buf, limits, count: 0, last: BATCH_HEADER_LEN, command_at: BATCH_HEADER_LEN }
    }

    /// Commands in the open batch.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the open batch holds nothing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether a command of `len` bytes written for `owner` fits the open batch.
    pub fn fits(&self, owner: &Owner, len: usize) -> bool {
        self.count < self.limits.writes_max
            && self.buf.len() + COMMAND_FRAME_LEN + owner.stamp_len() + len <= self.limits.bytes_max
    }

    /// Whether a command of `len` bytes written for `owner` fits an empty batch (else it can
    /// never be logged).
    pub fn fits_alone(&self, owner: &Owner, len: usize) -> bool {
        BATCH_HEADER_LEN + COMMAND_FRAME_LEN + owner.stamp_len() + len <= self.limits.bytes_max
    }

    /// Appends a command for projection `tag` written for `owner` (stamped into its frame),
    /// written by `encode` into the `len` bytes it gets; returns its position. The caller checked
    /// `fits(owner, len)`.
    pub fn push(&mut self, tag: u8, owner: &Owner, len: usize, encode: impl FnOnce(&mut [u8])) -> u16 {
        assert!(self.fits(owner, len), "push without room");
        let position = self.count as u16;
        self.last = self.buf.len();
        self.buf.extend_from_slice(&[tag, owner.flags()]);
        self.buf.extend_from_slice(&(len as u16).to_le_bytes());
        let stamp_at = self.buf.len();
        self.buf.resize(stamp_at + owner.stamp_len(), 0);
        owner.write_stamp(&mut self.buf[stamp_at..]);
        let at = self.buf.len();
        self.command_at = at;
        self.buf.resize(at + len, 0);
        encode(&mut self.buf[at..]);
        self.count += 1;
        position
    }

    /// The bytes of the last command pushed (empty if none).
    pub fn last_command(&self) -> &[u8] {
        match self.count {
            0 => &[],
            _ => &self.buf[self.command_at..],
        }
    }

    /// Takes the last command pushed back out (a write answered before it is proposed); only the
    /// last one, once.
    pub fn pop(&mut self) {
        assert!(self.count > 0 && self.last >= BATCH_HEADER_LEN, "pop without a command");
        self.buf.truncate(self.last);
        self.count -= 1;
        self.last = 0;
    }

    /// Seals the open batch with the leader's `timestamp` and returns its bytes (the entry's
    /// payload); `clear` starts the next one.
    pub fn seal(&mut self, timestamp: u64) -> &[u8] {
        assert!(self.count > 0, "an empty batch is never sealed");
        self.buf[0] = BATCH_FORMAT;
        self.buf[1] = 0;
        self.buf[2..4].copy_from_slice(&(self.count as u16).to_le_bytes());
        self.buf[4..12].copy_from_slice(&timestamp.to_le_bytes());
        &self.buf
    }

    /// Empties the batch (keeps the buffer).
    pub fn clear(&mut self) {
        self.buf.truncate(BATCH_HEADER_LEN);
        self.count = 0;
        self.last = BATCH_HEADER_LEN;
    }
}

/// One command of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchCommand<'a> {
    /// The projection it is for.
    pub tag: u8,
    /// Its bytes (the projection's own encoding).
    pub bytes: &'a [u8],
    /// Who wrote it and under which quota (the frame's stamp).
    pub owner: Owner,
}

/// A decoded batch entry: its header, and its commands one by one.
#[derive(Clone, Debug)]
pub struct BatchReader<'a> {
    /// Commands in the batch.
    pub count: u16,
    /// The leader's clock when it sealed the batch.
    pub timestamp: u64,
    rest: &'a [u8],
}

impl<'a> BatchReader<'a> {
    /// Whether `payload` is a batch entry (rather than a single KV command from before batches).
    pub fn is_batch(payload: &[u8]) -> bool {
        payload.first() == Some(&BATCH_FORMAT)
    }

    /// Checks the whole batch (every frame, nothing trailing) and returns a reader over it.
    pub fn new(payload: &'a [u8]) -> Result<Self, BatchError> {
        if payload.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Truncated);
        }
        if payload[0] != BATCH_FORMAT || payload[1] != 0 {
            return Err(BatchError::Malformed("not a batch header"));
        }
        let count = u16::from_le_bytes([payload[2], payload[3]]);
        if count == 0 {
            return Err(BatchError::Malformed("an empty batch"));
        }
        let timestamp = u64::from_le_bytes(payload[4..12].try_into().expect("8 bytes"));
        let reader = Self { count, timestamp, rest: &payload[BATCH_HEADER_LEN..] };
        let mut seen = 0u16;
        let mut it = reader.clone();
        while !it.rest.is_empty() {
            it.next_frame()?;
            seen = seen.checked_add(1).ok_or(BatchError::Malformed("more commands than its count"))?;
        }
        if seen != count {
            return Err(BatchError::Malformed("its count does not match its commands"));
        }
        Ok(reader)
    }

    fn next_frame(&mut self) -> Result<BatchCommand<'a>, BatchError> {
        let rest = self.rest;
        if rest.len() < COMMAND_FRAME_LEN {
            return Err(BatchError::Truncated);
        }
        let (owner, stamp_len) = match Owner::read_stamp(rest[1], &rest[COMMAND_FRAME_LEN..]) {
            Ok(read) => read,
            Err(StampError::Truncated) => return Err(BatchError::Truncated),
            Err(StampError::Flags) => return Err(BatchError::Malformed("a frame's flags are unknown")),
        };
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
        let start = COMMAND_FRAME_LEN + stamp_len;
        let end = start + len;
        if rest.len() < end {
            return Err(BatchError::Truncated);
        }
        self.rest = &rest[end..];
        Ok(BatchCommand { tag: rest[0], bytes: &rest[start..end], owner })
    }
}

impl<'a> Iterator for BatchReader<'a> {
    type Item = BatchCommand<'a>;

    /// The next command (`new` checked every frame, so none fails here).
    fn next(&mut self) -> Option<BatchCommand<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        self.next_frame().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::Quota;

    const A: Owner = Owner::ANONYMOUS;
    const OWNED: Owner = Owner { key_id: 3, quota: Some(Quota { keys_max: 10, bytes_max: 1000 }) };

    fn limits() -> BatchLimits {
        BatchLimits { bytes_max: 128, writes_max: 4 }
    }

    #[test]
    fn a_batch_round_trips_and_its_bounds_hold() {
        let mut w = BatchWriter::new(limits());
        assert!(w.is_empty());
        assert_eq!(w.push(TAG_KV, &A, 3, |b| b.copy_from_slice(b"abc")), 0);
        assert_eq!(w.push(7, &A, 0, |_| {}), 1);
        assert!(!w.fits(&A, 128), "bytes bound");
        let bytes = w.seal(42).to_vec();
        let r = BatchReader::new(&bytes).unwrap();
        assert_eq!((r.count, r.timestamp), (2, 42));
        let got: Vec<_> = r.collect();
        assert_eq!(
            got,
            [
                BatchCommand { tag: TAG_KV, bytes: b"abc", owner: A },
                BatchCommand { tag: 7, bytes: b"", owner: A }
            ]
        );
        w.clear();
        for _ in 0..4 {
            w.push(TAG_KV, &A, 1, |b| b[0] = 1);
        }
        assert!(!w.fits(&A, 1), "count bound");
        assert_eq!(w.last_command(), [1]);
        w.pop();
        assert_eq!((w.len(), w.fits(&A, 1)), (3, true));
    }

    #[test]
    fn every_truncation_and_a_wrong_count_are_refused() {
        let mut w = BatchWriter::new(limits());
        w.push(TAG_KV, &A, 5, |b| b.copy_from_slice(b"hello"));
        w.push(TAG_KV, &OWNED, 2, |b| b.copy_from_slice(b"hi"));
        let bytes = w.seal(1).to_vec();
        for n in 0..bytes.len() {
            assert!(BatchReader::new(&bytes[..n]).is_err(), "a batch cut at {n} bytes was accepted");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(BatchReader::new(&extra).is_err(), "trailing bytes");
        let mut count = bytes.clone();
        count[2] = 3;
        assert!(BatchReader::new(&count).is_err());
        let mut flags = bytes;
        flags[BATCH_HEADER_LEN + 1] = 0x04;
        assert_eq!(
            BatchReader::new(&flags).err(),
            Some(BatchError::Malformed("a frame's flags are unknown"))
        );
    }

    #[test]
    fn owners_stamped_into_frames_read_back_and_count_against_the_bound() {
        let mut w = BatchWriter::new(limits());
        w.push(TAG_KV, &OWNED, 3, |b| b.copy_from_slice(b"abc"));
        w.push(TAG_KV, &A, 2, |b| b.copy_from_slice(b"de"));
        w.push(TAG_KV, &Owner { key_id: 9, quota: None }, 1, |b| b[0] = b'f');
        assert_eq!(w.last_command(), b"f");
        let bytes = w.seal(7).to_vec();
        assert_eq!(bytes.len(), BATCH_HEADER_LEN + 3 * COMMAND_FRAME_LEN + 20 + 4 + 6);
        let got: Vec<_> = BatchReader::new(&bytes).unwrap().map(|c| (c.owner, c.bytes.to_vec())).collect();
        assert_eq!(
            got,
            [
                (OWNED, b"abc".to_vec()),
                (A, b"de".to_vec()),
                (Owner { key_id: 9, quota: None }, b"f".to_vec())
            ]
        );
        // The stamp counts against the batch's bytes.
        let mut w = BatchWriter::new(BatchLimits { bytes_max: 64, writes_max: 4 });
        assert!(w.fits_alone(&A, 48) && !w.fits_alone(&OWNED, 48));
        w.push(TAG_KV, &OWNED, 10, |_| {});
        assert!(w.fits(&A, 8) && !w.fits(&OWNED, 8));
    }

    #[test]
    fn versions_grow_along_the_log_and_within_a_batch() {
        let a = LogPos { lsn: 5, index: 65535 }.version();
        let b = LogPos::single(6).version();
        assert!(a < b && LogPos { lsn: 6, index: 1 }.version() > b);
    }
}
