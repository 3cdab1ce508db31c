//! HTTP/1.x requests, sans-IO: a request head parsed by `httparse` (zero-copy, into a bounded
//! header array on the stack), the few headers the KV API reads, and the body framed by
//! `Content-Length`. Responses are written by `response`.
//!
//! Bounds, so that a hostile client costs a bounded amount: at most `HEADERS_MAX` headers, a head
//! of at most `HttpLimits::head_bytes_max` bytes (431 past either), a request target of at most
//! `TARGET_BYTES_MAX` bytes (414), a body of at most `HttpLimits::body_bytes_max` (413: a body
//! longer than the largest datagram cannot be a value anyway). Request bodies must be framed by
//! `Content-Length`: a `Transfer-Encoding` (chunked) is refused with 501 and a PUT without a
//! length with 411 (a PUT carries a value; curl and every client library send a length for a
//! known body). A POST without one has an empty body, as RFC 9112 s. 6.3 says (`curl -X POST`
//! of an admin operation sends none).
//!
//! Invariants: never panics and never reads past its input, whatever the bytes; `Incomplete` only
//! while the request may still become whole within the bounds (a head past its bound is an error
//! at once, not a wait), so a connection's input never holds more than one bounded request; a
//! request is returned only once its body is whole in the input; nothing is allocated.

pub mod response;
pub mod target;

#[cfg(test)]
mod tests;

/// Headers parsed per request, at most (431 past it).
pub const HEADERS_MAX: usize = 32;
/// Bytes of a request head (request line and headers), at most, by default.
pub const HEAD_BYTES_MAX: usize = 8 << 10;
/// Bytes of a request target (path and query), at most (414 past it).
pub const TARGET_BYTES_MAX: usize = 2 << 10;

/// Bounds on one request.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Bytes of the request line and headers.
    pub head_bytes_max: usize,
    /// Bytes of the body.
    pub body_bytes_max: usize,
}

/// The request's method, as far as the API cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD: a GET without its body.
    Head,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
    /// POST.
    Post,
    /// Any other token (answered 405).
    Other,
}

/// What the API reads of a request head; every slice lies in the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head<'a> {
    /// The method.
    pub method: Method,
    /// The request target (path and query, not decoded).
    pub target: &'a [u8],
    /// `x` of `HTTP/1.x`.
    pub minor_version: u8,
    /// The connection stays open after the answer (HTTP/1.1 unless `Connection: close`;
    /// HTTP/1.0 only with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// `Content-Type: application/json`.
    pub json_body: bool,
    /// `Accept` names `application/json`.
    pub accept_json: bool,
    /// The `If-Match` value.
    pub if_match: Option<&'a [u8]>,
    /// The `If-None-Match` value.
    pub if_none_match: Option<&'a [u8]>,
    /// `Connection: upgrade` with `Upgrade: websocket`.
    pub upgrade_websocket: bool,
    /// `Sec-WebSocket-Key`.
    pub websocket_key: Option<&'a [u8]>,
    /// `Sec-WebSocket-Version`.
    pub websocket_version: Option<&'a [u8]>,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    /// The `Authorization` value (the web port's admin operations read a bearer token from it).
    pub authorization: Option<&'a [u8]>,
}

/// What the front of the input holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// Not a whole request yet; `head_done` when its head is whole and its body still coming
    /// (`expect_continue`: the client waits for `100 Continue` before sending it).
    Incomplete {
        /// The head is whole and asked for `100 Continue`.
        expect_continue: bool,
    },
    /// A whole request.
    Request {
        /// Its head.
        head: Head<'a>,
        /// Its body.
        body: &'a [u8],
        /// Bytes it took, head and body.
        consumed: usize,
    },
}

/// A request that cannot be served; each is answered with its status and the connection closes
/// (the stream cannot be resynchronised, or the client is told to stop).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The bytes are not an HTTP/1.x request (or a header is malformed); nothing was run.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The request target is longer than `TARGET_BYTES_MAX`; nothing was run.
    #[error("request target too long")]
    UriTooLong,
    /// More than `HEADERS_MAX` headers, or a head longer than its bound; nothing was run.
    #[error("request header fields too large")]
    HeadersTooLarge,
    /// A body longer than `body_bytes_max`; nothing was run.
    #[error("request body too large")]
    BodyTooLarge,
    /// A PUT or POST without `Content-Length`; nothing was run.
    #[error("length required")]
    LengthRequired,
    /// A `Transfer-Encoding` (chunked bodies are not served); nothing was run.
    #[error("transfer encodings are not implemented")]
    TransferEncoding,
    /// Not HTTP/1.0 or 1.1; nothing was run.
    #[error("HTTP version not supported")]
    Version,
}

impl HttpError {
    /// The status code answering it.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::UriTooLong => 414,
            HttpError::HeadersTooLarge => 431,
            HttpError::BodyTooLarge => 413,
            HttpError::LengthRequired => 411,
            HttpError::TransferEncoding => 501,
            HttpError::Version => 505,
        }
    }
}

/// Parses the request at the front of `input`.
pub fn parse_request<'a>(input: &'a [u8], limits: &HttpLimits) -> Result<Parsed<'a>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            partial_bounds(input, limits)?;
            return Ok(Parsed::Incomplete { expect_continue: false });
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadersTooLarge),
        Err(httparse::Error::Version) => return Err(HttpError::Version),
        Err(_) => return Err(HttpError::BadRequest("malformed request head")),
    };
    if head_len > limits.head_bytes_max {
        return Err(HttpError::HeadersTooLarge);
    }
    let target = req.path.unwrap_or("").as_bytes();
    if target.len() > TARGET_BYTES_MAX {
        return Err(HttpError::UriTooLong);
    }
    let minor_version = req.version.unwrap_or(1);
    let method = method_of(req.method.unwrap_or(""));
    let mut head = Head {
        method,
        target,
        minor_version,
        keep_alive: minor_version >= 1,
        json_body: false,
        accept_json: false,
        if_match: None,
        if_none_match: None,
        upgrade_websocket: false,
        websocket_key: None,
        websocket_version: None,
        expect_continue: false,
        authorization: None,
    };
    let length = read_headers(req.headers, &mut head)?;
    let length = match (length, method) {
        (Some(n), _) => n,
        (None, Method::Put) => return Err(HttpError::LengthRequired),
        (None, _) => 0,
    };
    if length > limits.body_bytes_max {
        return Err(HttpError::BodyTooLarge);
    }
    let end = head_len + length;
    match input.get(head_len..end) {
        Some(body) => Ok(Parsed::Request { head, body, consumed: end }),
        None => Ok(Parsed::Incomplete { expect_continue: head.expect_continue }),
    }
}

/// A partial head that is already past a bound is refused now rather than waited for.
fn partial_bounds(input: &[u8], limits: &HttpLimits) -> Result<(), HttpError> {
    let line_end = input.iter().position(|&b| b == b'\n');
    // The request line alone (method, target, version) past the target's bound and some slack.
    if line_end.is_none() && input.len() > TARGET_BYTES_MAX + 32 {
        return Err(HttpError::UriTooLong);
    }
    if input.len() > limits.head_bytes_max {
        return Err(HttpError::HeadersTooLarge);
    }
    Ok(())
}

fn method_of(m: &str) -> Method {
    match m {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "POST" => Method::Post,
        _ => Method::Other,
    }
}

/// Reads the headers the API uses into `head`; returns the body's length if one is given.
fn read_headers<'a>(
    headers: &[httparse::Header<'a>],
    head: &mut Head<'a>,
) -> Result<Option<usize>, HttpError> {
    let mut length = None;
    let (mut connection_upgrade, mut upgrade_websocket) = (false, false);
    for h in headers {
        let (name, value) = (h.name, trim(h.value));
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(value).ok_or(HttpError::BadRequest("bad Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(HttpError::BadRequest("conflicting Content-Length headers"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::TransferEncoding);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',').map(trim) {
                if token.eq_ignore_ascii_case(b"close") {
                    head.keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    head.keep_alive = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    connection_upgrade = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-type") {
            head.json_body = media_is_json(value);
        } else if name.eq_ignore_ascii_case("accept") {
            head.accept_json |= value.split(|&b| b == b',').any(media_is_json);
        } else if name.eq_ignore_ascii_case("if-match") {
            head.if_match = Some(value);
        } else if name.eq_ignore_ascii_case("if-none-match") {
            head.if_none_match = Some(value);
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade_websocket =
                value.split(|&b| b == b',').map(trim).any(|t| t.eq_ignore_ascii_case(b"websocket"));
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            head.websocket_key = Some(value);
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            head.websocket_version = Some(value);
        } else if name.eq_ignore_ascii_case("authorization") {
            head.authorization = Some(value);
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
        }
    }
    head.upgrade_websocket = connection_upgrade && upgrade_websocket;
    Ok(length)
}

/// A media type (parameters ignored) is `application/json`.
fn media_is_json(value: &[u8]) -> bool {
    let media = value.split(|&b| b == b';').next().map(trim).unwrap_or(&[]);
    media.eq_ignore_ascii_case(b"application/json")
}

/// A decimal `Content-Length` (digits only, at most 19 of them).
fn parse_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// `value` without surrounding spaces and tabs.
pub fn trim(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(start, |e| e + 1);
    &value[start..end.max(start)]
}

/// An entity tag holding a version, `"<n>"` (a weak `W/"<n>"` too: versions are exact either way).
pub fn parse_etag(value: &[u8]) -> Option<u64> {
    let value = trim(value);
    let value = value.strip_prefix(b"W/").unwrap_or(value);
    let inner = value.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if inner.is_empty() || inner.len() > 20 || !inner.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(inner).ok()?.parse().ok()
}
