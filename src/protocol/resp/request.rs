//! Request framing: a RESP multibulk (`*N\r\n` then N `$len\r\n<bytes>\r\n`, what every client
//! sends in RESP2 and RESP3 alike) or an inline command (`PING\r\n`, split by [`super::inline`]),
//! from a buffer that may hold part of a request, several pipelined ones, or garbage.
//!
//! Why hand-written: the `redis-protocol` crate's decoders build a `Vec` of frames per array
//! (`RangeFrame::Array(Vec<RangeFrame>)`), one allocation per request, and parse no inline commands;
//! here the arguments go into a caller-owned [`ArgTable`] allocated once. The crate is the oracle of
//! the differential property test (`tests_diff.rs`).
//!
//! Invariants: the parser never panics and never reads past `buf`; it returns `Incomplete` only while
//! the request, as far as it is known, fits the limits (so a connection buffer of
//! `request_bytes_max` bytes always makes progress); a header line is searched for within
//! `inline_bytes_max` bytes only; on `Incomplete` or an error, the argument table holds nothing to
//! execute. Every error is one Redis closes the connection after (`setProtocolError` in redis
//! `networking.c`): the stream cannot be resynchronised.

use thiserror::Error;

use super::args::ArgTable;
use super::inline;
use super::number::{parse_i64, parse_len};

/// Bounds on one request (named limits; the server wires them to its config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RespLimits {
    /// Most arguments in one request, the command name included (the `ArgTable`'s capacity).
    pub args_max: usize,
    /// Longest bulk argument, in bytes (Redis's `proto-max-bulk-len`).
    pub arg_bytes_max: usize,
    /// Longest inline request line and longest count line, in bytes (Redis's
    /// `PROTO_INLINE_MAX_SIZE`, 64 KiB).
    pub inline_bytes_max: usize,
    /// Most bytes of one whole request, framing included.
    pub request_bytes_max: usize,
}

impl RespLimits {
    /// Checks that the limits are usable together; the error names the offending limit. The
    /// server calls it when it reads its config (a bad config fails fast).
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.args_max == 0 || self.arg_bytes_max == 0 || self.inline_bytes_max == 0 {
            return Err("args_max, arg_bytes_max and inline_bytes_max must be at least 1");
        }
        if u32::try_from(self.request_bytes_max).is_err() {
            return Err("request_bytes_max must be under 4 GiB");
        }
        if self.inline_bytes_max > self.request_bytes_max {
            return Err("inline_bytes_max must not exceed request_bytes_max");
        }
        Ok(())
    }
}

/// What the buffer starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole request yet: read more bytes and parse again from the same start.
    Incomplete,
    /// A request of at least one argument, now in the `ArgTable`; it spans `buf[..consumed]`.
    Request {
        /// Bytes the request took; the next one starts there.
        consumed: usize,
    },
    /// A request without arguments (an empty inline line, `*0\r\n`, `*-1\r\n`): Redis skips it
    /// without a reply. Drop `buf[..consumed]` and parse on.
    Empty {
        /// Bytes to drop.
        consumed: usize,
    },
}

/// A request that cannot be framed. The argument table holds nothing to execute; Redis replies
/// with the error's text and closes the connection, and so must the caller ([`Self::closes_connection`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum RespError {
    /// The `*` count is not an integer, or is over `i32::MAX`. Nothing was consumed.
    #[error("ERR Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// The `*` count is over `args_max`. Nothing was consumed.
    #[error("ERR Protocol error: invalid multibulk length")]
    TooManyArgs,
    /// No `\r` within `inline_bytes_max` bytes after `*`. Nothing was consumed.
    #[error("ERR Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    /// No `\r` within `inline_bytes_max` bytes after an argument's start. Nothing was consumed.
    #[error("ERR Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// An argument does not start with `$` (the byte it starts with). Nothing was consumed.
    #[error("ERR Protocol error: expected '$', got '{}'", char::from(*.0))]
    ExpectedDollar(u8),
    /// A `$` length is not an integer, negative, or over `arg_bytes_max`. Nothing was consumed.
    #[error("ERR Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// A count line's `\r` or an argument's bytes are not followed by `\n` / `\r\n` (Redis skips
    /// two bytes unchecked; Vigil refuses, so a desynchronised stream is never executed).
    #[error("ERR Protocol error: invalid bulk length")]
    MissingCrlf,
    /// The request's declared bytes exceed `request_bytes_max` (Vigil's bound; Redis closes such a
    /// client at `client-query-buffer-limit`). Nothing was consumed.
    #[error("ERR Protocol error: too big request")]
    RequestTooBig,
    /// An inline line (or one of its arguments) is longer than the limits, or has more than
    /// `args_max` arguments. Nothing was consumed.
    #[error("ERR Protocol error: too big inline request")]
    TooBigInline,
    /// An inline line has an unterminated quote, or a closing quote not followed by a space.
    #[error("ERR Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
}

impl RespError {
    /// Whether the connection must be closed after the error reply: always, as in Redis (the rest
    /// of the stream cannot be framed).
    pub fn closes_connection(&self) -> bool {
        true
    }

    /// The error reply's text (no `-`, no CRLF), exactly as Redis writes it: for
    /// `ExpectedDollar`, the raw byte (a CR or LF becomes a space, as `addReplyErrorFormat` does).
    pub fn write_message(&self, out: &mut Vec<u8>) {
        match *self {
            RespError::ExpectedDollar(byte) => {
                out.extend_from_slice(b"ERR Protocol error: expected '$', got '");
                out.push(if byte == b'\r' || byte == b'\n' { b' ' } else { byte });
                out.push(b'\'');
            }
            ref other => {
                use std::io::Write;
                // Writing into a Vec cannot fail.
                let _ = write!(out, "{other}");
            }
        }
    }
}

/// Frames the request at the start of `buf` into `args` (cleared first). See [`Parsed`].
pub fn parse_request(buf: &[u8], args: &mut ArgTable, limits: &RespLimits) -> Result<Parsed, RespError> {
    args.clear();
    let result = match buf.first() {
        None => Ok(Parsed::Incomplete),
        Some(b'*') => parse_multibulk(buf, args, limits),
        Some(_) => inline::parse_inline(buf, args, limits),
    };
    if !matches!(result, Ok(Parsed::Request { .. })) {
        args.clear();
    }
    result
}

/// A header line's end: the index of its `\r`, `\n` present after it.
enum Line {
    Incomplete,
    EndsAt(usize),
    TooLong,
}

/// Finds the `\r` ending the line that starts at `start`, within `inline_bytes_max` bytes.
fn find_line(buf: &[u8], start: usize, limits: &RespLimits) -> Line {
    let window_end = buf.len().min(start.saturating_add(limits.inline_bytes_max).saturating_add(1));
    match buf[start..window_end].iter().position(|&b| b == b'\r') {
        Some(at) if start + at + 1 < buf.len() => Line::EndsAt(start + at),
        Some(_) => Line::Incomplete,
        None if buf.len() - start > limits.inline_bytes_max => Line::TooLong,
        None => Line::Incomplete,
    }
}

fn parse_multibulk(buf: &[u8], args: &mut ArgTable, limits: &RespLimits) -> Result<Parsed, RespError> {
    let cr = match find_line(buf, 0, limits) {
        Line::Incomplete => return Ok(Parsed::Incomplete),
        Line::TooLong => return Err(RespError::TooBigMultibulkCount),
        Line::EndsAt(cr) => cr,
    };
    let count = match parse_i64(&buf[1..cr]) {
        Some(n) if n <= i64::from(i32::MAX) => n,
        _ => return Err(RespError::InvalidMultibulkLength),
    };
    if buf[cr + 1] != b'\n' {
        return Err(RespError::MissingCrlf);
    }
    if count <= 0 {
        return Ok(Parsed::Empty { consumed: cr + 2 });
    }
    if count as u64 > limits.args_max as u64 {
        return Err(RespError::TooManyArgs);
    }
    let mut pos = cr + 2;
    for _ in 0..count {
        match parse_bulk(buf, pos, limits)? {
            Some((data, len)) => {
                args.push_buf(data, len);
                pos = data + len + 2;
            }
            None => return Ok(Parsed::Incomplete),
        }
    }
    Ok(Parsed::Request { consumed: pos })
}

/// One `$len\r\n<bytes>\r\n` at `pos`: `Some((data offset, len))`, or `None` while incomplete.
fn parse_bulk(buf: &[u8], pos: usize, limits: &RespLimits) -> Result<Option<(usize, usize)>, RespError> {
    let cr = match find_line(buf, pos, limits) {
        Line::Incomplete => return Ok(None),
        Line::TooLong => return Err(RespError::TooBigBulkCount),
        Line::EndsAt(cr) => cr,
    };
    if buf[pos] != b'$' {
        return Err(RespError::ExpectedDollar(buf[pos]));
    }
    let len = match parse_len(&buf[pos + 1..cr]) {
        Some(len) if len <= limits.arg_bytes_max as u64 => len as usize,
        _ => return Err(RespError::InvalidBulkLength),
    };
    if buf[cr + 1] != b'\n' {
        return Err(RespError::MissingCrlf);
    }
    let data = cr + 2;
    let end = data + len + 2;
    if end > limits.request_bytes_max {
        return Err(RespError::RequestTooBig);
    }
    if buf.len() < end {
        return Ok(None);
    }
    if &buf[end - 2..end] != b"\r\n" {
        return Err(RespError::MissingCrlf);
    }
    Ok(Some((data, len)))
}
