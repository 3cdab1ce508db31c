//! The peer datagram's byte layout (docs/PROTOCOL.md, "Peer messages (replication)").
//!
//! A datagram is a 48-byte header and `frame_count` frames that end exactly at its end. A frame is
//! an 8-byte frame header (partition, kind, length) and, for a fragment, 12 more bytes (message
//! id, fragment index, fragment count, total length), then `len` bytes of a prost-encoded
//! `eraftpb::Message` (whole, or the fragment's slice of one). All integers are little-endian. The
//! crc32c covers the whole datagram with the crc field taken as zero.
//!
//! Invariants: decoding never panics and never reads past the buffer whatever the bytes; encoding
//! is only ever asked to write what the caller measured to fit (it asserts so).

/// First two bytes of a peer datagram: "VR". The client protocol's are "VG" (src/wire.rs), so the
/// second byte tells a peer datagram from a client request.
pub const MAGIC: [u8; 2] = *b"VR";
/// The peer protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Datagram header length.
pub const HEADER_LEN: usize = 48;
/// Header length of a whole-message frame.
pub const FRAME_HEADER_LEN: usize = 8;
/// Header length of a fragment frame (the frame header and the fragment fields).
pub const FRAGMENT_HEADER_LEN: usize = 20;
/// Frame kind: the frame holds one whole message.
pub const KIND_WHOLE: u8 = 1;
/// Frame kind: the frame holds one fragment of a message.
pub const KIND_FRAGMENT: u8 = 2;
/// Frame kind: a keepalive, no bytes: the sender is alive (`super::liveness`). Its partition is
/// one the sending shard owns, so that it reaches the same shard here.
pub const KIND_KEEPALIVE: u8 = 3;
/// The largest UDP payload over IPv4.
pub const DATAGRAM_BYTES_LIMIT: usize = 65507;
/// The largest `message_bytes_max` the format allows (the total length is a u32; 1 GiB keeps
/// offsets far from overflow).
pub const MESSAGE_BYTES_LIMIT: usize = 1 << 30;

const CRC_AT: usize = 4;

/// The datagram header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Protocol version (`VERSION`).
    pub version: u8,
    /// Flags; none is defined, sent as 0 and ignored.
    pub flags: u8,
    /// The cluster both nodes belong to: a datagram of another cluster is dropped.
    pub cluster_id: u64,
    /// The sending node's Raft id.
    pub from_node: u64,
    /// The receiving node's Raft id.
    pub to_node: u64,
    /// The sender's incarnation (chosen at its start, different at each start): fragments of
    /// two incarnations never mix, since message ids restart with the sender.
    pub incarnation: u64,
    /// The sender's datagram sequence number (wraps); diagnostics only, never enforced.
    pub sequence: u32,
    /// Bytes after the header: must be the datagram's length less `HEADER_LEN`.
    pub payload_len: u16,
    /// Frames that follow.
    pub frame_count: u16,
}

/// The fragment fields of a fragment frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentInfo {
    /// The message's id among its sender incarnation's fragmented messages (wraps).
    pub message_id: u32,
    /// This fragment's position, 0 ..< `count`.
    pub index: u16,
    /// Fragments of the message, at least 2.
    pub count: u16,
    /// The encoded message's length.
    pub total_len: u32,
}

impl FragmentInfo {
    /// The length of every fragment but (possibly) the last: `ceil(total_len / count)`.
    pub fn chunk_len(&self) -> usize {
        (self.total_len as usize).div_ceil(self.count.max(1) as usize)
    }

    /// Where this fragment's bytes start in the message.
    pub fn offset(&self) -> usize {
        self.index as usize * self.chunk_len()
    }

    /// The length this fragment must have; `None` for fields no sender produces (count < 2, an
    /// index past the count, fewer bytes than fragments, an empty last fragment).
    pub fn expected_len(&self) -> Option<usize> {
        let total = self.total_len as usize;
        if self.count < 2 || self.index >= self.count || total < self.count as usize {
            return None;
        }
        let chunk = self.chunk_len();
        let start = self.offset();
        if start >= total {
            return None;
        }
        Some(chunk.min(total - start))
    }
}

/// One frame, borrowing its bytes from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The partition whose Raft group the message belongs to.
    pub partition: u32,
    /// `None` for a whole message or a keepalive, the fragment fields for a fragment.
    pub fragment: Option<FragmentInfo>,
    /// A keepalive frame (no bytes).
    pub keepalive: bool,
    /// The message's bytes (whole) or the fragment's slice.
    pub bytes: &'a [u8],
}

/// Why a datagram was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Shorter than the header.
    Short,
    /// Not `MAGIC`: not a peer datagram.
    BadMagic,
    /// A version this build does not speak.
    BadVersion,
    /// `payload_len` is not the datagram's length less the header.
    BadLength,
    /// The crc32c does not match.
    BadChecksum,
}

/// Why the frames of a datagram were not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// A frame header or body runs past the datagram, or bytes are left after the last frame.
    Framing,
    /// A frame kind other than whole, fragment or keepalive.
    UnknownKind,
    /// An empty message frame, a keepalive with bytes, or fragment fields no sender produces
    /// (see `FragmentInfo::expected_len`).
    BadFragment,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The crc32c of a datagram with its crc field taken as zero.
pub fn checksum(datagram: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&datagram[..CRC_AT]);
    let crc = crc32c::crc32c_append(crc, &[0; 4]);
    crc32c::crc32c_append(crc, &datagram[CRC_AT + 4..])
}

/// Whether `datagram` starts with the peer magic (what a shard checks to route it here).
pub fn is_peer_datagram(datagram: &[u8]) -> bool {
    datagram.len() >= 2 && datagram[..2] == MAGIC
}

/// Reads and checks a datagram's header: magic, version, length, checksum (in that order).
pub fn decode_header(datagram: &[u8]) -> Result<Header, HeaderError> {
    if datagram.len() < HEADER_LEN {
        return Err(HeaderError::Short);
    }
    if datagram[..2] != MAGIC {
        return Err(HeaderError::BadMagic);
    }
    let header = Header {
        version: datagram[2],
        flags: datagram[3],
        cluster_id: u64_at(datagram, 8),
        from_node: u64_at(datagram, 16),
        to_node: u64_at(datagram, 24),
        incarnation: u64_at(datagram, 32),
        sequence: u32_at(datagram, 40),
        payload_len: u16_at(datagram, 44),
        frame_count: u16_at(datagram, 46),
    };
    if header.version != VERSION {
        return Err(HeaderError::BadVersion);
    }
    if header.payload_len as usize != datagram.len() - HEADER_LEN {
        return Err(HeaderError::BadLength);
    }
    if u32_at(datagram, CRC_AT) != checksum(datagram) {
        return Err(HeaderError::BadChecksum);
    }
    Ok(header)
}

/// Writes `header` and the crc into `datagram`, whose frames are already in place after the
/// header; `header.payload_len` must be `datagram.len() - HEADER_LEN`.
pub fn finish_datagram(datagram: &mut [u8], header: &Header) {
    assert_eq!(header.payload_len as usize, datagram.len() - HEADER_LEN, "payload length");
    datagram[..2].copy_from_slice(&MAGIC);
    datagram[2] = header.version;
    datagram[3] = header.flags;
    datagram[4..8].fill(0);
    datagram[8..16].copy_from_slice(&header.cluster_id.to_le_bytes());
    datagram[16..24].copy_from_slice(&header.from_node.to_le_bytes());
    datagram[24..32].copy_from_slice(&header.to_node.to_le_bytes());
    datagram[32..40].copy_from_slice(&header.incarnation.to_le_bytes());
    datagram[40..44].copy_from_slice(&header.sequence.to_le_bytes());
    datagram[44..46].copy_from_slice(&header.payload_len.to_le_bytes());
    datagram[46..48].copy_from_slice(&header.frame_count.to_le_bytes());
    let crc = checksum(datagram);
    datagram[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Writes one frame at the start of `out` and returns its length; `out` must hold it.
pub fn encode_frame(out: &mut [u8], partition: u32, fragment: Option<FragmentInfo>, bytes: &[u8]) -> usize {
    let head = if fragment.is_some() { FRAGMENT_HEADER_LEN } else { FRAME_HEADER_LEN };
    let len = u16::try_from(bytes.len()).expect("a frame's bytes fit a u16");
    assert!(out.len() >= head + bytes.len(), "the caller measured the room");
    out[0..4].copy_from_slice(&partition.to_le_bytes());
    out[4] = if fragment.is_some() { KIND_FRAGMENT } else { KIND_WHOLE };
    out[5] = 0;
    out[6..8].copy_from_slice(&len.to_le_bytes());
    if let Some(f) = fragment {
        out[8..12].copy_from_slice(&f.message_id.to_le_bytes());
        out[12..14].copy_from_slice(&f.index.to_le_bytes());
        out[14..16].copy_from_slice(&f.count.to_le_bytes());
        out[16..20].copy_from_slice(&f.total_len.to_le_bytes());
    }
    out[head..head + bytes.len()].copy_from_slice(bytes);
    head + bytes.len()
}

/// Writes a keepalive frame for `partition` at the start of `out` (at least `FRAME_HEADER_LEN`
/// long) and returns its length.
pub fn encode_keepalive(out: &mut [u8], partition: u32) -> usize {
    out[0..4].copy_from_slice(&partition.to_le_bytes());
    out[4] = KIND_KEEPALIVE;
    out[5..8].fill(0);
    FRAME_HEADER_LEN
}

/// Reads the frame at the start of `rest`; returns it and the bytes after it.
pub fn decode_frame(rest: &[u8]) -> Result<(Frame<'_>, &[u8]), FrameError> {
    if rest.len() < FRAME_HEADER_LEN {
        return Err(FrameError::Framing);
    }
    let partition = u32_at(rest, 0);
    let len = u16_at(rest, 6) as usize;
    if rest[4] == KIND_KEEPALIVE {
        if len != 0 {
            return Err(FrameError::BadFragment);
        }
        let frame = Frame { partition, fragment: None, keepalive: true, bytes: &[] };
        return Ok((frame, &rest[FRAME_HEADER_LEN..]));
    }
    let (fragment, head) = match rest[4] {
        KIND_WHOLE => (None, FRAME_HEADER_LEN),
        KIND_FRAGMENT => {
            if rest.len() < FRAGMENT_HEADER_LEN {
                return Err(FrameError::Framing);
            }
            let f = FragmentInfo {
                message_id: u32_at(rest, 8),
                index: u16_at(rest, 12),
                count: u16_at(rest, 14),
                total_len: u32_at(rest, 16),
            };
            if f.expected_len() != Some(len) {
                return Err(FrameError::BadFragment);
            }
            (Some(f), FRAGMENT_HEADER_LEN)
        }
        _ => return Err(FrameError::UnknownKind),
    };
    if len == 0 {
        return Err(FrameError::BadFragment);
    }
    if rest.len() - head < len {
        return Err(FrameError::Framing);
    }
    let frame = Frame { partition, fragment, keepalive: false, bytes: &rest[head..head + len] };
    Ok((frame, &rest[head + len..]))
}
