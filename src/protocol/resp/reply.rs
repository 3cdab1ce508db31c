//! Reply encoding for RESP2 and RESP3 into the caller's `Vec<u8>` (the caller bounds it: it
//! checks the length between replies and stops reading a connection whose output is over its
//! limit). One writer per reply; aggregates are written as a header then their elements.
//!
//! Why hand-written: `redis-protocol`'s encoders take a whole frame tree (`BorrowedFrame::Array(&[..])`)
//! or write into a fixed slice, so a reply of N values needs a slice of N frames built first; this
//! writer streams headers and elements straight into the output. The crate's decoders check every
//! shape in the tests below.
//!
//! RESP2 fallbacks (as Redis writes them for a RESP2 client): null is `$-1` (`*-1` for a null
//! array), a map is a flat array of 2N, a set an array, a double a bulk string, a boolean the
//! integer 1 or 0, a verbatim string a bulk string without its format.
//!
//! Invariant: every method appends exactly one well-formed RESP value (or aggregate header) and
//! never writes a CR or LF inside a simple string or an error (they become spaces, as Redis does).

use std::io::Write;

use super::command_error::CommandError;
use super::request::RespError;

/// The protocol a connection speaks: 2 until HELLO 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RespVersion {
    #[default]
    Resp2,
    Resp3,
}

/// Writes replies into a caller's buffer.
#[derive(Debug)]
pub struct ReplyWriter<'o> {
    out: &'o mut Vec<u8>,
    version: RespVersion,
}

impl<'o> ReplyWriter<'o> {
    /// A writer appending to `out` in `version`.
    pub fn new(out: &'o mut Vec<u8>, version: RespVersion) -> Self {
        Self { out, version }
    }

    /// The protocol being written.
    pub fn version(&self) -> RespVersion {
        self.version
    }

    /// `+text` (CR and LF become spaces).
    pub fn simple(&mut self, text: &[u8]) {
        self.out.push(b'+');
        self.push_line_sanitized(text);
    }

    /// `+OK`.
    pub fn ok(&mut self) {
        self.out.extend_from_slice(b"+OK\r\n");
    }

    /// `-message` (CR and LF become spaces). `message` starts with the error code (`ERR ...`).
    pub fn error(&mut self, message: &[u8]) {
        self.out.push(b'-');
        self.push_line_sanitized(message);
    }

    /// A command's error reply, with Redis's text.
    pub fn command_error(&mut self, error: &CommandError<'_>) {
        self.out.push(b'-');
        let start = self.out.len();
        error.write_message(self.out);
        self.finish_sanitized(start);
    }

    /// A protocol error's reply, with Redis's text (the caller then closes the connection).
    pub fn protocol_error(&mut self, error: &RespError) {
        self.out.push(b'-');
        let start = self.out.len();
        error.write_message(self.out);
        self.finish_sanitized(start);
    }

    /// `:n`.
    pub fn integer(&mut self, n: i64) {
        self.header(b':', n);
    }

    /// `$len` then the bytes.
    pub fn bulk(&mut self, bytes: &[u8]) {
        self.header(b'$', bytes.len() as i64);
        self.out.extend_from_slice(bytes);
        self.out.extend_from_slice(b"\r\n");
    }

    /// A bulk string or null.
    pub fn bulk_or_null(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            Some(bytes) => self.bulk(bytes),
            None => self.null(),
        }
    }

    /// A missing value: RESP2 `$-1`, RESP3 `_`.
    pub fn null(&mut self) {
        match self.version {
            RespVersion::Resp2 => self.out.extend_from_slice(b"$-1\r\n"),
            RespVersion::Resp3 => self.out.extend_from_slice(b"_\r\n"),
        }
    }

    /// A missing aggregate: RESP2 `*-1`, RESP3 `_`.
    pub fn null_array(&mut self) {
        match self.version {
            RespVersion::Resp2 => self.out.extend_from_slice(b"*-1\r\n"),
            RespVersion::Resp3 => self.out.extend_from_slice(b"_\r\n"),
        }
    }

    /// `*len`; `len` elements follow.
    pub fn array(&mut self, len: usize) {
        self.header(b'*', len as i64);
    }

    /// RESP3 `%len`, RESP2 `*2len`; `len` key-value pairs follow.
    pub fn map(&mut self, len: usize) {
        match self.version {
            RespVersion::Resp2 => self.header(b'*', 2 * len as i64),
            RespVersion::Resp3 => self.header(b'%', len as i64),
        }
    }

    /// RESP3 `~len`, RESP2 `*len`; `len` elements follow.
    pub fn set(&mut self, len: usize) {
        match self.version {
            RespVersion::Resp2 => self.header(b'*', len as i64),
            RespVersion::Resp3 => self.header(b'~', len as i64),
        }
    }

    /// RESP3 `=len` with a 3-letter format (`txt`), RESP2 a bulk string of `text`.
    pub fn verbatim(&mut self, format: &[u8; 3], text: &[u8]) {
        match self.version {
            RespVersion::Resp2 => self.bulk(text),
            RespVersion::Resp3 => {
                self.header(b'=', text.len() as i64 + 4);
                self.out.extend_from_slice(format);
                self.out.push(b':');
                self.out.extend_from_slice(text);
                self.out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// RESP3 `,value` (`inf`, `-inf`, `nan`), RESP2 the same text as a bulk string.
    pub fn double(&mut self, value: f64) {
        let start = self.out.len();
        match self.version {
            RespVersion::Resp3 => self.out.push(b','),
            RespVersion::Resp2 => {}
        }
        let text_start = self.out.len();
        if value.is_nan() {
            self.out.extend_from_slice(b"nan");
        } else if value.is_infinite() {
            self.out.extend_from_slice(if value > 0.0 { b"inf" } else { b"-inf" });
        } else {
            // Writing into a Vec cannot fail; `{}` is the shortest text that reads back the same.
            let _ = write!(self.out, "{value}");
        }
        match self.version {
            RespVersion::Resp3 => self.out.extend_from_slice(b"\r\n"),
            RespVersion::Resp2 => {
                // Move the text behind its `$len` header: at most 24 bytes, rotated in place.
                let len = self.out.len() - text_start;
                self.header(b'$', len as i64);
                let header_len = self.out.len() - start - len;
                self.out[start..].rotate_right(header_len);
                self.out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// RESP3 `#t` / `#f`, RESP2 `:1` / `:0`.
    pub fn boolean(&mut self, value: bool) {
        match self.version {
            RespVersion::Resp3 => self.out.extend_from_slice(if value { b"#t\r\n" } else { b"#f\r\n" }),
            RespVersion::Resp2 => self.integer(i64::from(value)),
        }
    }

    fn header(&mut self, kind: u8, n: i64) {
        self.out.push(kind);
        // Writing into a Vec cannot fail.
        let _ = write!(self.out, "{n}");
        self.out.extend_from_slice(b"\r\n");
    }

    fn push_line_sanitized(&mut self, text: &[u8]) {
        let start = self.out.len();
        self.out.extend_from_slice(text);
        self.finish_sanitized(start);
    }

    fn finish_sanitized(&mut self, start: usize) {
        for b in &mut self.out[start..] {
            if *b == b'\r' || *b == b'\n' {
                *b = b' ';
            }
        }
        self.out.extend_from_slice(b"\r\n");
    }
}
