//! Binary protocol v1: the byte layout of Vigil's UDP datagrams (docs/PROTOCOL.md is the spec).
//!
//! A datagram is a 16-byte header followed by `count` frames; a frame is a 16-byte frame header
//! followed by `body_len` bytes. All integers are little-endian. Requests and responses share the
//! layout; the response flag and each frame's status tell them apart.
//!
//! Invariants: decoding never panics and never reads past the buffer, whatever the bytes (fuzzed by
//! the property tests at the bottom); encoding never writes past the buffer it is given and reports
//! `NoRoom` instead.

use thiserror::Error;

/// First two bytes of every datagram: "VG".
pub const MAGIC: [u8; 2] = *b"VG";
/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Datagram header length.
pub const HEADER_LEN: usize = 16;
/// Frame header length.
pub const FRAME_HEADER_LEN: usize = 16;
/// Header flag: this datagram is a response.
pub const FLAG_RESPONSE: u8 = 0x01;

/// Opcode 0 is never registered: error frames about the datagram as a whole carry it.
pub const OPCODE_NONE: u8 = 0;

/// Result of one request, carried in each response frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    /// Done; the body is the opcode's answer.
    Ok = 0,
    /// No handler is registered for the opcode.
    UnknownOpcode = 1,
    /// The frame's body length runs past the datagram, or is wrong for the opcode.
    BadLength = 2,
    /// The datagram's version is not one this server speaks; the body is `[min, max]` supported.
    VersionMismatch = 3,
    /// The datagram holds more frames than the server's limit; none was executed.
    TooManyRequests = 4,
    /// The datagram's framing is inconsistent (fewer frames than `count`, trailing bytes, no frames).
    Malformed = 5,
    /// The answer does not fit in one response datagram.
    ResponseTooLarge = 6,
    /// The server is overloaded; retry later.
    Busy = 7,
    /// The body does not parse for this opcode.
    BadRequest = 8,
    /// The key does not exist (KV GET).
    NotFound = 9,
    /// A compare-and-set found another version than the expected one; nothing was written.
    CasMismatch = 10,
    /// The key is longer than the server's limit; nothing was written.
    KeyTooLarge = 11,
    /// The value is longer than the server's limit; nothing was written.
    ValueTooLarge = 12,
    /// A capacity limit (number of keys, bytes stored) is reached; nothing was written.
    Full = 13,
    /// INCR on a value that is not a decimal 64-bit integer; nothing was written.
    NotInteger = 14,
    /// INCR would overflow a signed 64-bit integer; nothing was written.
    Overflow = 15,
    /// The request's sequence number is older than the client's last applied write; not executed.
    Stale = 16,
    /// This node does not lead the key's partition (or none is elected yet); nothing was executed.
    /// Retry, at the leader when the cluster names one.
    NotLeader = 17,
    /// The partition's log device failed, or the write's outcome is unknown because its log
    /// position was lost (a leader change); it may or may not have been applied. Retry with the
    /// same request id: exactly-once clients get the original answer if it was applied.
    Unavailable = 18,
    /// The write's `(client_id, request_id)` is the client's last applied write, but the command
    /// differs from the one applied under it; nothing was executed (the earlier write stands).
    SequenceReused = 19,
    /// The write's request id is further past the client's last applied one than the server's
    /// `kv.sequence_ahead_max`; nothing was executed or recorded.
    SequenceTooFar = 20,
    /// A candle's field failed validation (a phone that is not 11 digits, an unknown city, a
    /// date in the future...); nothing was stored. The client library's `Candle::validate` names
    /// the field and the reason.
    Invalid = 21,
    /// The datagram's credentials were refused: missing where required, an unknown, expired or
    /// revoked key, a wrong MAC, a replayed or out-of-window nonce, or a client id bound to a key
    /// it was not sent with. Nothing in it was executed; the body is one byte, the reason
    /// (`auth::Refusal`, docs/PROTOCOL.md "Authentication").
    AuthFailed = 22,
    /// The sender's role does not allow this opcode (a read-only key writing); not executed.
    Forbidden = 23,
    /// The answer could be larger than 3x the request and the source address has not proven
    /// itself; not executed. The body is a 16-byte address cookie: resend with it (docs/PROTOCOL.md
    /// "Address validation").
    AddressUnproven = 24,
    /// The client's quota of keys or bytes stored would be exceeded; nothing was written.
    QuotaExceeded = 25,
}

impl Status {
    /// The status for a wire byte, or `None` for a byte no status has.
    pub fn from_u8(b: u8) -> Option<Status> {
        Some(match b {
            0 => Status::Ok,
            1 => Status::UnknownOpcode,
            2 => Status::BadLength,
            3 => Status::VersionMismatch,
            4 => Status::TooManyRequests,
            5 => Status::Malformed,
            6 => Status::ResponseTooLarge,
            7 => Status::Busy,
            8 => Status::BadRequest,
            9 => Status::NotFound,
            10 => Status::CasMismatch,
            11 => Status::KeyTooLarge,
            12 => Status::ValueTooLarge,
            13 => Status::Full,
            14 => Status::NotInteger,
            15 => Status::Overflow,
            16 => Status::Stale,
            17 => Status::NotLeader,
            18 => Status::Unavailable,
            19 => Status::SequenceReused,
            20 => Status::SequenceTooFar,
            21 => Status::Invalid,
            22 => Status::AuthFailed,
            23 => Status::Forbidden,
            24 => Status::AddressUnproven,
            25 => Status::QuotaExceeded,
            _ => return None,
        })
    }

    /// Its name as docs/PROTOCOL.md writes it.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::UnknownOpcode => "UNKNOWN_OPCODE",
            Status::BadLength => "BAD_LENGTH",
            Status::VersionMismatch => "VERSION_MISMATCH",
            Status::TooManyRequests => "TOO_MANY_REQUESTS",
            Status::Malformed => "MALFORMED",
            Status::ResponseTooLarge => "RESPONSE_TOO_LARGE",
            Status::Busy => "BUSY",
            Status::BadRequest => "BAD_REQUEST",
            Status::NotFound => "NOT_FOUND",
            Status::CasMismatch => "CAS_MISMATCH",
            Status::KeyTooLarge => "KEY_TOO_LARGE",
            Status::ValueTooLarge => "VALUE_TOO_LARGE",
            Status::Full => "FULL",
            Status::NotInteger => "NOT_INTEGER",
            Status::Overflow => "OVERFLOW",
            Status::Stale => "STALE",
            Status::NotLeader => "NOT_LEADER",
            Status::Unavailable => "UNAVAILABLE",
            Status::SequenceReused => "SEQUENCE_REUSED",
            Status::SequenceTooFar => "SEQUENCE_TOO_FAR",
            Status::Invalid => "INVALID",
            Status::AuthFailed => "AUTH_FAILED",
            Status::Forbidden => "FORBIDDEN",
            Status::AddressUnproven => "ADDRESS_UNPROVEN",
            Status::QuotaExceeded => "QUOTA_EXCEEDED",
        }
    }
}

/// The datagram header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Protocol version.
    pub version: u8,
    /// Flags (`FLAG_RESPONSE`).
    pub flags: u8,
    /// Number of frames that follow.
    pub count: u16,
    /// The client's identity (0: anonymous); echoed in responses.
    pub client_id: u64,
}

impl Header {
    /// True for a response datagram.
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_RESPONSE != 0
    }
}

/// One request or response frame, borrowing its body from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The operation.
    pub opcode: u8,
    /// Raw status byte (0 in requests); see [`Status::from_u8`].
    pub status: u8,
    /// Chosen by the client, echoed in the response.
    pub request_id: u64,
    /// The body.
    pub body: &'a [u8],
}

/// Why a datagram header could not be read.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum HeaderError {
    /// Shorter than the header; dropped unanswered.
    #[error("datagram shorter than the {HEADER_LEN}-byte header")]
    Short,
    /// Not a Vigil datagram; dropped unanswered.
    #[error("bad magic")]
    BadMagic,
}

/// Why a frame could not be read; the rest of the datagram is not read either.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer than 16 bytes left where a frame header should be.
    #[error("truncated frame header")]
    TruncatedHeader,
    /// The frame's `body_len` runs past the datagram; `opcode` and `request_id` are the frame's.
    #[error("frame body of {body_len} bytes runs past the datagram")]
    BodyPastEnd {
        /// The frame's opcode.
        opcode: u8,
        /// The frame's request id.
        request_id: u64,
        /// The body length it claimed.
        body_len: u32,
    },
}

/// Not enough room in the output buffer.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("no room in the datagram buffer")]
pub struct NoRoom;

/// Reads the datagram header.
pub fn decode_header(buf: &[u8]) -> Result<Header, HeaderError> {
    if buf.len() < HEADER_LEN {
        return Err(HeaderError::Short);
    }
    if buf[0..2] != MAGIC {
        return Err(HeaderError::BadMagic);
    }
    Ok(Header {
        version: buf[2],
        flags: buf[3],
        count: u16::from_le_bytes([buf[4], buf[5]]),
        client_id: u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes")),
    })
}

/// Writes a datagram header into `buf[..HEADER_LEN]`.
pub fn encode_header(buf: &mut [u8], h: &Header) -> Result<(), NoRoom> {
    let out = buf.get_mut(..HEADER_LEN).ok_or(NoRoom)?;
    out[0..2].copy_from_slice(&MAGIC);
    out[2] = h.version;
    out[3] = h.flags;
    out[4..6].copy_from_slice(&h.count.to_le_bytes());
    out[6..8].copy_from_slice(&[0, 0]);
    out[8..16].copy_from_slice(&h.client_id.to_le_bytes());
    Ok(())
}

/// Reads the frame at the start of `buf`; returns it and the bytes it took.
pub fn decode_frame(buf: &[u8]) -> Result<(Frame<'_>, usize), FrameError> {
    if buf.len() < FRAME_HEADER_LEN {
        return Err(FrameError::TruncatedHeader);
    }
    let opcode = buf[0];
    let status = buf[1];
    let body_len = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    let request_id = u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
    let rest = &buf[FRAME_HEADER_LEN..];
    let body = usize::try_from(body_len).ok().and_then(|n| rest.get(..n)).ok_or(FrameError::BodyPastEnd {
        opcode,
        request_id,
        body_len,
    })?;
    Ok((Frame { opcode, status, request_id, body }, FRAME_HEADER_LEN + body.len()))
}

/// Writes a frame header for a body of `body_len` bytes into `buf[..FRAME_HEADER_LEN]`.
pub fn encode_frame_header(
    buf: &mut [u8],
    opcode: u8,
    status: u8,
    request_id: u64,
    body_len: usize,
) -> Result<(), NoRoom> {
    let body_len = u32::try_from(body_len).map_err(|_| NoRoom)?;
    let out = buf.get_mut(..FRAME_HEADER_LEN).ok_or(NoRoom)?;
    out[0] = opcode;
    out[1] = status;
    out[2..4].copy_from_slice(&[0, 0]);
    out[4..8].copy_from_slice(&body_len.to_le_bytes());
    out[8..16].copy_from_slice(&request_id.to_le_bytes());
    Ok(())
}

/// Iterates over the frames after a datagram header; stops at the first framing error, which it
/// yields once.
#[derive(Clone, Debug)]
pub struct Frames<'a> {
    rest: &'a [u8],
    left: u16,
    failed: bool,
}

impl<'a> Frames<'a> {
    /// The frames of `datagram`, whose header announced `count` of them and no blocks.
    pub fn new(datagram: &'a [u8], count: u16) -> Self {
        Self::at(datagram, HEADER_LEN, count)
    }

    /// The frames of `datagram` from `offset` on (after its header and blocks).
    pub fn at(datagram: &'a [u8], offset: usize, count: u16) -> Self {
        Self { rest: datagram.get(offset..).unwrap_or(&[]), left: count, failed: false }
    }

    /// Bytes after the last frame read so far (after a full iteration: trailing garbage).
    pub fn remainder(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 || self.failed {
            return None;
        }
        self.left -= 1;
        match decode_frame(self.rest) {
            Ok((frame, used)) => {
                self.rest = &self.rest[used..];
                Some(Ok(frame))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Builds a datagram frame by frame into a caller's buffer (used by clients and by the server for
/// responses). The header's count is written by [`DatagramWriter::finish`].
#[derive(Debug)]
pub struct DatagramWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    count: u16,
    flags: u8,
    version: u8,
    client_id: u64,
}

impl<'a> DatagramWriter<'a> {
    /// Starts a request datagram.
    pub fn request(buf: &'a mut [u8], client_id: u64) -> Result<Self, NoRoom> {
        Self::start(buf, 0, client_id)
    }

    /// Starts a response datagram.
    pub fn response(buf: &'a mut [u8], client_id: u64) -> Result<Self, NoRoom> {
        Self::start(buf, FLAG_RESPONSE, client_id)
    }

    /// Continues a response datagram that a writer over the same buffer finished earlier
    /// (`len` bytes, `count` frames, for `client_id`), to append more frames; `finish` rewrites
    /// the header. Lets a datagram stay sendable between appends (late answers gathered per peer).
    pub fn resume_response(
        buf: &'a mut [u8],
        client_id: u64,
        len: usize,
        count: u16,
    ) -> Result<Self, NoRoom> {
        if len < HEADER_LEN || len > buf.len() {
            return Err(NoRoom);
        }
        Ok(Self { buf, len, count, flags: FLAG_RESPONSE, version: VERSION, client_id })
    }

    /// Starts a request datagram whose header announces the cookie and authentication blocks in
    /// `flags` (`auth::ext::FLAG_COOKIE`, `FLAG_AUTH`): their bytes are left for the caller to
    /// fill after `finish` (`auth::ext::put_cookie`, then `auth::sign`).
    pub fn request_with_blocks(buf: &'a mut [u8], client_id: u64, flags: u8) -> Result<Self, NoRoom> {
        let blocks = crate::auth::ext::extensions_len(flags);
        let mut w = Self::start(
            buf,
            flags & (crate::auth::ext::FLAG_COOKIE | crate::auth::ext::FLAG_AUTH),
            client_id,
        )?;
        if w.buf.len() < HEADER_LEN + blocks {
            return Err(NoRoom);
        }
        w.buf[HEADER_LEN..HEADER_LEN + blocks].fill(0);
        w.len += blocks;
        Ok(w)
    }

    fn start(buf: &'a mut [u8], flags: u8, client_id: u64) -> Result<Self, NoRoom> {
        if buf.len() < HEADER_LEN {
            return Err(NoRoom);
        }
        Ok(Self { buf, len: HEADER_LEN, count: 0, flags, version: VERSION, client_id })
    }

    /// Overrides the version byte (for tests and tools that probe version handling).
    pub fn with_version(mut self, version: u8) -> Self {
        self.version = version;
        self
    }

    /// Appends a frame with `body`.
    pub fn push(&mut self, opcode: u8, status: u8, request_id: u64, body: &[u8]) -> Result<(), NoRoom> {
        let body_out = self.begin_frame(body.len())?;
        body_out.copy_from_slice(body);
        self.commit_frame(opcode, status, request_id, body.len())
    }

    /// Room left for a frame's body after its header, if any.
    pub fn body_room(&self) -> usize {
        self.buf.len().saturating_sub(self.len + FRAME_HEADER_LEN)
    }

    /// The buffer where the next frame's body goes, at most `max` bytes long; write into it, then
    /// call [`DatagramWriter::commit_frame`] with the length written. Lets handlers write answers in place.
    pub fn begin_frame(&mut self, max: usize) -> Result<&mut [u8], NoRoom> {
        if self.count == u16::MAX {
            return Err(NoRoom);
        }
        let start = self.len + FRAME_HEADER_LEN;
        let end = start.checked_add(max).ok_or(NoRoom)?;
        self.buf.get_mut(start..end).ok_or(NoRoom)
    }

    /// Writes the header of the frame whose body (`body_len` bytes) is already in place.
    pub fn commit_frame(
        &mut self,
        opcode: u8,
        status: u8,
        request_id: u64,
        body_len: usize,
    ) -> Result<(), NoRoom> {
        if self.body_room() < body_len || self.count == u16::MAX {
            return Err(NoRoom);
        }
        encode_frame_header(&mut self.buf[self.len..], opcode, status, request_id, body_len)?;
        self.len += FRAME_HEADER_LEN + body_len;
        self.count += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// Writes the header and returns the datagram's length.
    pub fn finish(self) -> usize {
        let header =
            Header { version: self.version, flags: self.flags, count: self.count, client_id: self.client_id };
        encode_header(self.buf, &header).expect("room was checked at start");
        self.len
    }
}

#[cfg(test)]
mod tests;

mod hint;
pub use hint::{LeaderHint, LEADER_HINT_LEN};

/// The opcode registry: every opcode number the protocol assigns, in one place so clients and
/// subsystems agree. The dispatcher itself knows none of them.
pub mod opcode {
    /// PING: empty body, empty answer.
    pub const PING: u8 = 1;
    /// ECHO: the answer's body is the request's body.
    pub const ECHO: u8 = 2;
    /// KV GET: read a key and its version from the projection (no log write).
    pub const GET: u8 = 0x10;
    /// KV SET: write a key's value through the log.
    pub const SET: u8 = 0x11;
    /// KV DEL: delete a key through the log.
    pub const DEL: u8 = 0x12;
    /// KV INCR: add a signed 64-bit delta to a decimal integer value through the log.
    pub const INCR: u8 = 0x13;
    /// KV CAS: write a key's value only if its version is the expected one, through the log.
    pub const CAS: u8 = 0x14;
    /// KV SETX: SET with a condition (NX/XX), the old value in the answer (GET) and an expiry,
    /// through the log.
    pub const SETX: u8 = 0x15;
    /// KV EXPIRE: set a key's expiry (relative or absolute ms, NX/XX/GT/LT), through the log.
    pub const EXPIRE: u8 = 0x16;
    /// KV PERSIST: drop a key's expiry, through the log.
    pub const PERSIST: u8 = 0x17;
    /// KV EXPIRE_DUE: the leader's reclaim of keys past their expiry; a log command only, never
    /// a request (answered `UNKNOWN_OPCODE`).
    pub const EXPIRE_DUE: u8 = 0x18;
    /// KV TTL: read a key's remaining time to live in ms (no log write).
    pub const TTL: u8 = 0x19;
    /// KV KEYS_COUNT: read the number of keys (and keys with an expiry) of one partition (no log
    /// write).
    pub const KEYS_COUNT: u8 = 0x1a;
    /// KV MSET: write several keys of one partition, all or none, through the log (one command).
    pub const MSET: u8 = 0x1b;
    /// KV CAD: delete a key only if its version is the expected one, through the log.
    pub const CAD: u8 = 0x1c;
    /// KV GET_BOUNDED: a GET that a follower may answer, at most `cluster.follower_read_staleness_ms`
    /// stale (the leader answers it as a GET); `NOT_LEADER` and the hint where neither can.
    pub const GET_BOUNDED: u8 = 0x1d;
    /// CANDLE LIGHT: light a candle (a 128-byte slot and its overflow values,
    /// `candle::command`) through the log; the answer is its id.
    pub const CANDLE_LIGHT: u8 = 0x30;
    /// CANDLE GET: read one live candle by id (its slot and overflow values, raw; no log write).
    pub const CANDLE_GET: u8 = 0x31;
    /// CANDLE LIST: read live candles newest first, a page after a cursor id (no log write).
    pub const CANDLE_LIST: u8 = 0x32;
    /// CANDLE COUNT: read the number of live candles of one partition (no log write).
    pub const CANDLE_COUNT: u8 = 0x33;
    /// CANDLE COUNT_CITY: read the number of live candles of one city (no log write).
    pub const CANDLE_COUNT_CITY: u8 = 0x34;
    /// CANDLE COUNT_STATES: read the number of live candles of every state (no log write).
    pub const CANDLE_COUNT_STATES: u8 = 0x35;
    /// CANDLE ROTATE: the leader's drop of the daily buckets past their seven days; a log
    /// command only, never a request (answered `UNKNOWN_OPCODE`).
    pub const CANDLE_ROTATE: u8 = 0x36;
}
