//! The UAL's on-disk layout: record headers and the superblock, encoded and decoded byte by byte
//! (docs/STORAGE.md is the prose version of this file; keep them in step).
//!
//! Everything is little-endian. A record is a 32-byte header followed by its payload, packed into
//! one 4 KiB block (records never span blocks); a record's crc32c covers header bytes 4..32 and
//! the payload, so a torn or stale byte anywhere in it is caught. The superblock is a 128-byte
//! header at the start of block 0 or block 1, its crc32c in its last four bytes, followed (format
//! version 2 and later) by the owner's metadata section: up to `META_MAX` opaque bytes whose length
//! and crc32c sit in the header. Version 1 superblocks (no metadata section) are still read, as an
//! empty one. Version 3 adds the durable watermark: every record says how far the log was durable
//! when it was appended (`durable_behind`, header bytes 29..32) and every superblock write records
//! the durable lsn (`durable_lsn`, bytes 88..96); versions 1 and 2 read as "unknown" (zero).
//!
//! Invariants: `encode_record` computes the checksum before the record can reach a device and
//! `decode_record` verifies it after every read (the paired assertions of DESIGN.md section 6.4);
//! an all-zero header is "nothing here" (a record's lsn is never 0, so a real header never is);
//! decoders never panic on any input (they are fuzz targets).

use vigil_pmd::block::BLOCK_SIZE;

/// Bytes in a record header.
pub const RECORD_HEADER_LEN: usize = 32;
/// The largest payload one record carries (a record fits one block).
pub const PAYLOAD_MAX: usize = BLOCK_SIZE - RECORD_HEADER_LEN;
/// Bytes of the superblock that are meaningful (the rest of its block is zero).
pub const SUPERBLOCK_LEN: usize = 128;
/// "VIGILUAL" read as a little-endian u64.
pub const SUPERBLOCK_MAGIC: u64 = u64::from_le_bytes(*b"VIGILUAL");
/// The format this code writes (it also reads `FORMAT_VERSION_V1` and `FORMAT_VERSION_V2`).
pub const FORMAT_VERSION: u32 = 3;
/// The second format: a metadata section, no durable watermark (records' bytes 29..32 and the
/// superblock's bytes 88..96 are zero, read as "unknown").
pub const FORMAT_VERSION_V2: u32 = 2;
/// The first format: no metadata section (header bytes 80..124 are zero). Read as empty metadata.
pub const FORMAT_VERSION_V1: u32 = 1;
/// Where the metadata section starts in a superblock block (right after the header).
pub const META_OFFSET: usize = SUPERBLOCK_LEN;
/// The most metadata bytes a superblock carries (the rest of its block).
pub const META_MAX: usize = BLOCK_SIZE - META_OFFSET;
/// The device blocks holding the two superblock copies; the log region starts after them.
pub const SUPERBLOCK_BLOCKS: u64 = 2;
/// The largest `durable_behind` value (3 bytes); a distance that does not fit is written as 0.
pub const DURABLE_BEHIND_MAX: u32 = 0xFF_FFFF;

/// The `durable_behind` field of a record appended at `lsn` while the log was durable up to
/// `durable_lsn`: `lsn - durable_lsn + 1`, or 0 ("unknown") when the distance does not fit 3 bytes
/// (a clamped value would claim more than was durable) or `durable_lsn >= lsn` (never, but a claim
/// must never exceed the truth).
#[inline]
pub fn durable_behind(lsn: u64, durable_lsn: u64) -> u32 {
    match lsn.checked_sub(durable_lsn) {
        Some(d) if d >= 1 && d < u64::from(DURABLE_BEHIND_MAX) => d as u32 + 1,
        _ => 0,
    }
}

/// A decoded record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// crc32c over header bytes 4..32 and the payload.
    pub crc: u32,
    /// Payload bytes.
    pub len: u32,
    /// Log sequence number (>= 1).
    pub lsn: u64,
    /// Raft term.
    pub term: u64,
    /// The log epoch it was written in (bumped at every open and truncation).
    pub epoch: u32,
    /// The caller's record kind.
    pub kind: u8,
    /// 0: unknown; else `lsn - durable_lsn_at_append + 1` (see `durable_claim`).
    pub durable_behind: u32,
}

impl RecordHeader {
    /// Header plus payload bytes.
    #[inline]
    pub fn total_len(&self) -> usize {
        RECORD_HEADER_LEN + self.len as usize
    }

    /// The highest lsn this record says was durable when it was appended (0: it says nothing).
    #[inline]
    pub fn durable_claim(&self) -> u64 {
        match self.durable_behind {
            0 => 0,
            v => self.lsn.saturating_sub(u64::from(v - 1)),
        }
    }
}

/// Why a record failed to decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Its length runs past the end of the block.
    Length,
    /// Its checksum does not match (torn, partially written, or corrupt).
    Checksum,
    /// Its lsn is 0 although the checksum matched.
    Reserved,
}

/// What lies at an offset of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Nothing: a zero header, or too little room left for one. The block's records end here.
    Empty,
    /// A record whose checksum verified.
    Record(RecordHeader),
    /// Bytes that are not a valid record.
    Malformed(Malformed),
}

/// What a record header carries besides its length and checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordFields {
    /// Its lsn (>= 1).
    pub lsn: u64,
    /// Its term.
    pub term: u64,
    /// The epoch it is written in.
    pub epoch: u32,
    /// The caller's kind.
    pub kind: u8,
    /// `durable_behind(lsn, durable_lsn_now)`.
    pub durable_behind: u32,
}

/// Writes the record into `dst` (which must hold exactly header + payload) and returns its
/// checksum. The checksum is computed over the bytes as written, before they can reach a device.
#[inline]
pub fn encode_record(dst: &mut [u8], f: RecordFields, payload: &[u8]) -> u32 {
    let RecordFields { lsn, term, epoch, kind, durable_behind } = f;
    debug_assert!(durable_behind <= DURABLE_BEHIND_MAX);
    assert_eq!(dst.len(), RECORD_HEADER_LEN + payload.len());
    assert!(lsn > 0, "lsn 0 is reserved: a zero header means no record");
    let (header, body) = dst.split_at_mut(RECORD_HEADER_LEN);
    header[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[8..16].copy_from_slice(&lsn.to_le_bytes());
    header[16..24].copy_from_slice(&term.to_le_bytes());
    header[24..28].copy_from_slice(&epoch.to_le_bytes());
    header[28] = kind;
    header[29..32].copy_from_slice(&durable_behind.to_le_bytes()[..3]);
    body.copy_from_slice(payload);
    let crc = crc32c::crc32c(&dst[4..]);
    dst[0..4].copy_from_slice(&crc.to_le_bytes());
    crc
}

#[inline]
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

#[inline]
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads the header at `off` of `block` without checking the checksum (for walking records
/// already verified). Panics if fewer than a header's bytes remain.
#[inline]
pub fn peek_header(block: &[u8], off: usize) -> RecordHeader {
    let h = &block[off..off + RECORD_HEADER_LEN];
    RecordHeader {
        crc: u32_at(h, 0),
        len: u32_at(h, 4),
        lsn: u64_at(h, 8),
        term: u64_at(h, 16),
        epoch: u32_at(h, 24),
        kind: h[28],
        durable_behind: u32::from_le_bytes([h[29], h[30], h[31], 0]),
    }
}

/// Decodes and verifies the record at `off` of `block` (one block's bytes).
pub fn decode_record(block: &[u8], off: usize) -> Slot {
    if off + RECORD_HEADER_LEN > block.len() {
        return Slot::Empty;
    }
    let raw = &block[off..off + RECORD_HEADER_LEN];
    if raw.iter().all(|&b| b == 0) {
        return Slot::Empty;
    }
    let h = peek_header(block, off);
    let end = off + RECORD_HEADER_LEN + h.len as usize;
    if h.len as usize > PAYLOAD_MAX || end > block.len() {
        return Slot::Malformed(Malformed::Length);
    }
    if crc32c::crc32c(&block[off + 4..end]) != h.crc {
        return Slot::Malformed(Malformed::Checksum);
    }
    if h.lsn == 0 {
        return Slot::Malformed(Malformed::Reserved);
    }
    Slot::Record(h)
}

/// The superblock: geometry plus the checkpoint. Two copies, written alternately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Bumped by one at every write; on open the valid copy with the higher one wins.
    pub sequence: u64,
    /// Blocks per segment (a power of two).
    pub segment_blocks: u32,
    /// Segments in the log region.
    pub segment_count: u32,
    /// Virtual block (a segment boundary) where the live region starts.
    pub log_start_block: u64,
    /// The lsn of the first record at `log_start_block` (the first readable lsn).
    pub log_start_lsn: u64,
    /// The lsn the latest snapshot covers (0: none).
    pub snapshot_lsn: u64,
    /// The term of `snapshot_lsn`.
    pub snapshot_term: u64,
    /// The current epoch: no record on the device has a higher one.
    pub epoch: u32,
    /// The first lsn of the current epoch: a record of an older epoch with this lsn or a higher
    /// one was discarded (a torn tail cut at open, or `truncate_suffix`).
    pub epoch_first_lsn: u64,
    /// The log's durable lsn when this copy was written (0: unknown, a version 1 or 2 copy): every
    /// record up to it had been written completely, so damage there is corruption, not a torn tail.
    pub durable_lsn: u64,
}

/// Why a superblock copy was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuperblockError {
    /// The block is all zeros (a fresh device).
    Blank,
    /// Not our magic number.
    Magic,
    /// The checksum does not match.
    Checksum,
    /// A format version this code does not read.
    Version(u32),
    /// A block size other than 4096.
    BlockSize(u32),
    /// The metadata section's length is past the block, or its checksum does not match.
    Meta,
}

impl Superblock {
    /// Encodes into the first `SUPERBLOCK_LEN` bytes of `dst` with no metadata and zeroes the rest.
    pub fn encode(&self, dst: &mut [u8]) {
        self.encode_with_meta(dst, &[]);
    }

    /// Encodes the header into the first `SUPERBLOCK_LEN` bytes of `dst` and `meta` (at most
    /// `META_MAX` bytes) right after it, and zeroes the rest. The header's crc covers the metadata's
    /// length and crc.
    pub fn encode_with_meta(&self, dst: &mut [u8], meta: &[u8]) {
        assert!(dst.len() >= META_OFFSET + meta.len());
        assert!(meta.len() <= META_MAX, "metadata of {} bytes exceeds {META_MAX}", meta.len());
        dst.fill(0);
        dst[0..8].copy_from_slice(&SUPERBLOCK_MAGIC.to_le_bytes());
        dst[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        dst[12..16].copy_from_slice(&(BLOCK_SIZE as u32).to_le_bytes());
        dst[16..24].copy_from_slice(&self.sequence.to_le_bytes());
        dst[24..28].copy_from_slice(&self.segment_blocks.to_le_bytes());
        dst[28..32].copy_from_slice(&self.segment_count.to_le_bytes());
        dst[32..40].copy_from_slice(&self.log_start_block.to_le_bytes());
        dst[40..48].copy_from_slice(&self.log_start_lsn.to_le_bytes());
        dst[48..56].copy_from_slice(&self.snapshot_lsn.to_le_bytes());
        dst[56..64].copy_from_slice(&self.snapshot_term.to_le_bytes());
        dst[64..68].copy_from_slice(&self.epoch.to_le_bytes());
        // 68..72 reserved, zero.
        dst[72..80].copy_from_slice(&self.epoch_first_lsn.to_le_bytes());
        dst[80..84].copy_from_slice(&(meta.len() as u32).to_le_bytes());
        dst[84..88].copy_from_slice(&crc32c::crc32c(meta).to_le_bytes());
        dst[88..96].copy_from_slice(&self.durable_lsn.to_le_bytes());
        // 96..124 reserved, zero.
        dst[META_OFFSET..META_OFFSET + meta.len()].copy_from_slice(meta);
        let crc = crc32c::crc32c(&dst[..SUPERBLOCK_LEN - 4]);
        dst[SUPERBLOCK_LEN - 4..SUPERBLOCK_LEN].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decodes and verifies a superblock copy from its block's bytes (metadata included).
    pub fn decode(src: &[u8]) -> Result<Self, SuperblockError> {
        Self::decode_with_meta(src).map(|(sb, _)| sb)
    }

    /// Decodes and verifies a superblock copy and its metadata section (empty for version 1).
    pub fn decode_with_meta(src: &[u8]) -> Result<(Self, &[u8]), SuperblockError> {
        if src.len() < SUPERBLOCK_LEN {
            return Err(SuperblockError::Magic);
        }
        if src.iter().all(|&b| b == 0) {
            return Err(SuperblockError::Blank);
        }
        if u64_at(src, 0) != SUPERBLOCK_MAGIC {
            return Err(SuperblockError::Magic);
        }
        if crc32c::crc32c(&src[..SUPERBLOCK_LEN - 4]) != u32_at(src, SUPERBLOCK_LEN - 4) {
            return Err(SuperblockError::Checksum);
        }
        let version = u32_at(src, 8);
        if !(FORMAT_VERSION_V1..=FORMAT_VERSION).contains(&version) {
            return Err(SuperblockError::Version(version));
        }
        let block_size = u32_at(src, 12);
        if block_size as usize != BLOCK_SIZE {
            return Err(SuperblockError::BlockSize(block_size));
        }
        let meta = if version == FORMAT_VERSION_V1 {
            &src[0..0]
        } else {
            let len = u32_at(src, 80) as usize;
            if len > META_MAX || META_OFFSET + len > src.len() {
                return Err(SuperblockError::Meta);
            }
            let meta = &src[META_OFFSET..META_OFFSET + len];
            if crc32c::crc32c(meta) != u32_at(src, 84) {
                return Err(SuperblockError::Meta);
            }
            meta
        };
        let sb = Self {
            sequence: u64_at(src, 16),
            segment_blocks: u32_at(src, 24),
            segment_count: u32_at(src, 28),
            log_start_block: u64_at(src, 32),
            log_start_lsn: u64_at(src, 40),
            snapshot_lsn: u64_at(src, 48),
            snapshot_term: u64_at(src, 56),
            epoch: u32_at(src, 64),
            epoch_first_lsn: u64_at(src, 72),
            durable_lsn: if version >= FORMAT_VERSION { u64_at(src, 88) } else { 0 },
        };
        Ok((sb, meta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_every_byte_is_covered() {
        let mut block = vec![0u8; BLOCK_SIZE];
        let payload = b"hello, log";
        let n = RECORD_HEADER_LEN + payload.len();
        let f = RecordFields { lsn: 7, term: 3, epoch: 2, kind: 9, durable_behind: durable_behind(7, 4) };
        let crc = encode_record(&mut block[100..100 + n], f, payload);
        let Slot::Record(h) = decode_record(&block, 100) else { panic!("valid record") };
        let want = RecordHeader {
            crc,
            len: payload.len() as u32,
            lsn: 7,
            term: 3,
            epoch: 2,
            kind: 9,
            durable_behind: 4,
        };
        assert_eq!(h, want);
        assert_eq!(h.durable_claim(), 4);
        assert_eq!(&block[100 + RECORD_HEADER_LEN..100 + n], payload);
        for i in 100..100 + n {
            let mut b = block.clone();
            b[i] ^= 0x40;
            assert!(matches!(decode_record(&b, 100), Slot::Malformed(_)), "flip at {i} not caught");
        }
        assert_eq!(decode_record(&block, 100 + n), Slot::Empty);
        assert_eq!(decode_record(&block, BLOCK_SIZE - 31), Slot::Empty);
    }

    #[test]
    fn durable_behind_never_claims_more_than_was_durable() {
        assert_eq!(durable_behind(10, 9), 2);
        assert_eq!(durable_behind(10, 0), 11);
        assert_eq!(durable_behind(10, 10), 0);
        assert_eq!(durable_behind(1 << 40, 1), 0, "a distance past 3 bytes says nothing");
        let h = |lsn, v| RecordHeader { crc: 0, len: 0, lsn, term: 0, epoch: 0, kind: 0, durable_behind: v };
        for (lsn, durable) in [(10u64, 9u64), (10, 0), (5_000_000, 1), (u64::MAX, u64::MAX - 3)] {
            assert!(h(lsn, durable_behind(lsn, durable)).durable_claim() <= durable);
        }
        assert_eq!(h(10, 0).durable_claim(), 0);
    }

    #[test]
    fn a_version_2_superblock_reads_an_unknown_durable_lsn() {
        let sb = Superblock { durable_lsn: 77, ..sample() };
        let mut block = vec![0u8; BLOCK_SIZE];
        sb.encode(&mut block);
        assert_eq!(Superblock::decode(&block).unwrap().durable_lsn, 77);
        block[8..12].copy_from_slice(&FORMAT_VERSION_V2.to_le_bytes());
        let crc = crc32c::crc32c(&block[..SUPERBLOCK_LEN - 4]);
        block[SUPERBLOCK_LEN - 4..SUPERBLOCK_LEN].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(Superblock::decode(&block).unwrap().durable_lsn, 0);
    }

    #[test]
    fn impossible_lengths_are_malformed_not_panics() {
        let mut block = vec![0u8; BLOCK_SIZE];
        block[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_record(&block, 0), Slot::Malformed(Malformed::Length));
        block[12..16].copy_from_slice(&(PAYLOAD_MAX as u32).to_le_bytes());
        assert_eq!(decode_record(&block, 8), Slot::Malformed(Malformed::Length));
    }

    #[test]
    fn superblock_round_trips_and_rejects_damage() {
        let sb = Superblock {
            sequence: 9,
            segment_blocks: 64,
            segment_count: 5,
            log_start_block: 128,
            log_start_lsn: 1000,
            snapshot_lsn: 1200,
            snapshot_term: 4,
            epoch: 3,
            epoch_first_lsn: 900,
            durable_lsn: 1300,
        };
        let mut block = vec![0u8; BLOCK_SIZE];
        sb.encode(&mut block);
        assert_eq!(Superblock::decode(&block), Ok(sb));
        assert_eq!(&block[0..8], b"VIGILUAL");
        for i in 0..SUPERBLOCK_LEN {
            let mut b = block.clone();
            b[i] ^= 1;
            assert!(Superblock::decode(&b).is_err(), "flip at {i} not caught");
        }
        assert_eq!(Superblock::decode(&vec![0u8; BLOCK_SIZE]), Err(SuperblockError::Blank));
    }

    fn sample() -> Superblock {
        Superblock {
            sequence: 3,
            segment_blocks: 8,
            segment_count: 4,
            log_start_block: 0,
            log_start_lsn: 1,
            snapshot_lsn: 0,
            snapshot_term: 0,
            epoch: 2,
            epoch_first_lsn: 5,
            durable_lsn: 0,
        }
    }

    #[test]
    fn superblock_metadata_round_trips_and_every_byte_is_covered() {
        let sb = sample();
        let meta: Vec<u8> = (0..200u32).map(|i| (i * 7) as u8).collect();
        let mut block = vec![0u8; BLOCK_SIZE];
        sb.encode_with_meta(&mut block, &meta);
        assert_eq!(u32_at(&block, 8), FORMAT_VERSION);
        let (got, got_meta) = Superblock::decode_with_meta(&block).unwrap();
        assert_eq!(got, sb);
        assert_eq!(got_meta, &meta[..]);
        for i in (0..SUPERBLOCK_LEN).chain(META_OFFSET..META_OFFSET + meta.len()) {
            let mut b = block.clone();
            b[i] ^= 0x10;
            assert!(Superblock::decode(&b).is_err(), "flip at {i} not caught");
        }
        // A full-size section fits; the header alone says how long it is.
        let big = vec![0xAB; META_MAX];
        sb.encode_with_meta(&mut block, &big);
        assert_eq!(Superblock::decode_with_meta(&block).unwrap().1, &big[..]);
        sb.encode(&mut block);
        assert_eq!(Superblock::decode_with_meta(&block).unwrap().1, &[] as &[u8]);
    }

    #[test]
    fn a_version_1_superblock_is_read_with_empty_metadata_and_others_are_refused() {
        let sb = sample();
        let mut block = vec![0u8; BLOCK_SIZE];
        sb.encode(&mut block);
        let reseal = |b: &mut Vec<u8>, version: u32| {
            b[8..12].copy_from_slice(&version.to_le_bytes());
            let crc = crc32c::crc32c(&b[..SUPERBLOCK_LEN - 4]);
            b[SUPERBLOCK_LEN - 4..SUPERBLOCK_LEN].copy_from_slice(&crc.to_le_bytes());
        };
        reseal(&mut block, FORMAT_VERSION_V1);
        assert_eq!(Superblock::decode_with_meta(&block), Ok((sb, &[] as &[u8])));
        reseal(&mut block, 4);
        assert_eq!(Superblock::decode(&block), Err(SuperblockError::Version(4)));
        // A length past the block is refused, not a panic.
        sb.encode(&mut block);
        block[80..84].copy_from_slice(&(META_MAX as u32 + 1).to_le_bytes());
        let crc = crc32c::crc32c(&block[..SUPERBLOCK_LEN - 4]);
        block[SUPERBLOCK_LEN - 4..SUPERBLOCK_LEN].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(Superblock::decode(&block), Err(SuperblockError::Meta));
    }
}
