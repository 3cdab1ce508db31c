//! HTTP/1.1 responses written into a connection's output: a status line, headers, a body framed by
//! `Content-Length` (every response has one, so keep-alive and pipelining always work).
//!
//! Invariants: writes only append to the caller's buffer; a response is whole once `finish`
//! returns (a writer dropped before then leaves a partial response: callers always finish).

use std::io::Write;

/// The reason phrase of the status codes the API answers.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        303 => "See Other",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}

/// A response being written.
pub struct Response<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Response<'a> {
    /// Starts a response with `status`.
    pub fn start(out: &'a mut Vec<u8>, status: u16) -> Self {
        let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason(status));
        Self { out }
    }

    /// Adds a header.
    pub fn header(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        let _ = write!(self.out, "{name}: {value}\r\n");
        self
    }

    /// Adds `ETag: "<version>"`.
    pub fn etag(&mut self, version: u64) -> &mut Self {
        let _ = write!(self.out, "ETag: \"{version}\"\r\n");
        self
    }

    /// Adds the `Connection` header a client needs: `close` when the connection closes after this
    /// response; `keep-alive` for an HTTP/1.0 client that asked for it.
    pub fn connection(&mut self, close: bool, http10: bool) -> &mut Self {
        if close {
            self.header("Connection", "close");
        } else if http10 {
            self.header("Connection", "keep-alive");
        }
        self
    }

    /// Ends the head and writes `body` (only its length for a HEAD request: `head_only`).
    pub fn finish(self, content_type: Option<&str>, body: &[u8], head_only: bool) {
        if let Some(ct) = content_type {
            let _ = write!(self.out, "Content-Type: {ct}\r\n");
        }
        let _ = write!(self.out, "Content-Length: {}\r\n\r\n", body.len());
        if !head_only {
            self.out.extend_from_slice(body);
        }
    }

    /// Ends the head of a response without a body (`101`, `204`, `304`: no `Content-Length`).
    pub fn finish_empty(self) {
        self.out.extend_from_slice(b"\r\n");
    }
}
