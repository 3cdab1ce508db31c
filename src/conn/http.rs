//! An HTTP/1.1 connection: the REST API for the KV store (docs/CLIENTS.md), requests parsed by
//! `protocol::http` and run as the binary protocol's KV opcodes through `Engine::handle_request`,
//! with this connection's `Peer::connection` as their peer.
//!
//! - `GET /kv/{key}` (and HEAD): 200 with the value (`application/octet-stream`, or JSON
//!   `{"key","value","version"}` when `Accept` names `application/json`), `ETag: "<version>"`;
//!   `If-None-Match` naming the current version: 304; 404 when absent.
//! - `PUT /kv/{key}`: the body is the value (or `{"value": "..."}` with `Content-Type:
//!   application/json`); `If-Match: "<n>"` makes it a CAS on version n (412 on another version),
//!   `If-None-Match: *` a create (CAS on version 0: 412 when the key exists, 201 when created);
//!   otherwise 204 with the new ETag. Answered once durable, like every write.
//! - `DELETE /kv/{key}`: 204, or 404 when there was no key; `If-Match: "<n>"` deletes only at
//!   version n (the binary protocol's CAD; 412 on another version or no key).
//! - `GET /` or `/health`: a small JSON status. Keys are percent-decoded.
//! - `/candles`: the candle store (`POST /candles`, `GET /candles/<id>`, `GET /candles/count`,
//!   `GET /candles?partition=P`),
//!   in `http_candles.rs`.
//! - `GET /watch?key=K` or `?prefix=P` with a WebSocket upgrade: from then on the connection is a
//!   watcher (`conn::watch`) and its input is WebSocket frames.
//!
//! Ordering, as for RESP (conn::resp): responses leave in request order. Writes are dispatched as
//! soon as they are parsed, while earlier ones wait for their log entries; every other request
//! waits until the requests before it are answered, so a GET after a PUT on the same connection
//! sees it. `pending` holds the requests whose answers are not all in, oldest first; a write's
//! answer is kept in its entry until the entries before it are answered.
//!
//! Limits: `protocol::http`'s (head, headers, body), `tcp.pipeline_max` requests in flight, and the
//! connection's output bound (past it nothing more is parsed until the client reads). A request
//! that cannot be framed is answered with its status and `Connection: close`, then the
//! connection closes; a request that parses but is wrong (bad key escape, unknown path) is
//! answered and the connection goes on.
//!
//! Invariants: every request parsed is answered exactly once, in order; nothing is allocated per
//! request once a connection's buffers (request body, key, JSON scratch, pipeline) have grown to
//! their use; a connection asked to close (`Connection: close`, HTTP/1.0) parses nothing more and
//! closes once its responses are out.

use super::auth;
use super::watch::{self, Watch};
use super::{Cx, Step};
use crate::dispatch::Answer;
use crate::protocol::http::response::Response;
use crate::protocol::http::{parse_etag, parse_request, target, Head, HttpError, HttpLimits, Method, Parsed};
use crate::protocol::websocket;
use crate::shard::LateAnswer;
use crate::wire::{opcode, Status};
use std::collections::VecDeque;

#[path = "http_auth.rs"]
mod auth_checks;
#[path = "http_candles.rs"]
mod candles;

/// What a request in flight answers once its answer is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A GET answered later (a key another shard owns): written as it comes (it is at the head).
    Get { json: bool, head_only: bool, not_modified_if: Option<u64> },
    /// A PUT (SET or CAS): 204 with the ETag, or 201 for a create.
    Put { create: bool },
    /// A DELETE: 204, or 404.
    Delete,
    /// `POST /candles`: 201 with the id (`candles`).
    CandleLight,
    /// `GET /candles/<id>` answered later: written as it comes (it is at the head).
    CandleGet { id: u64 },
    /// `GET /candles?partition=P...` answered later: written as it comes (it is at the head).
    CandleList,
    /// `GET /candles/count` with answers still to come (the session's `counts`).
    CandleCount,
}

/// A request whose answer is not in, or not written yet.
#[derive(Debug)]
struct Pending {
    id: u64,
    kind: Kind,
    reply: Reply,
    /// The answer once in: its status and the number it carries (version, or DEL's `existed`).
    answer: Option<(Status, u64)>,
}

/// How running one request went.
enum Ran {
    /// Answered or in flight: consume it.
    Done,
    /// Must wait for the requests before it (not consumed).
    Blocked,
    /// Refused for now (BUSY before anything was proposed): try again at the next poll.
    Busy,
}

/// One HTTP connection.
#[derive(Debug, Default)]
pub struct HttpSession {
    pending: VecDeque<Pending>,
    next_id: u64,
    /// A request body being built (the KV opcode's).
    body: Vec<u8>,
    /// The key of the request being run (decoded), and of the GET in flight.
    key: Vec<u8>,
    /// A JSON body being written (its length goes in the head first).
    json: Vec<u8>,
    /// `100 Continue` was sent for the request at the front of the input.
    continue_sent: bool,
    /// A request asked for the connection to close: nothing more is parsed.
    closing: bool,
    /// Requests taken so far (a watch must be the first).
    taken: u64,
    /// The connection was upgraded to a WebSocket watcher.
    watch: Option<Watch>,
    /// Partitions of the node (a candle count asks each).
    partitions: u16,
    /// The candle count in flight.
    counts: candles::Counts,
}

impl HttpSession {
    /// A new connection's session.
    pub fn new() -> Self {
        Self { next_id: 1, partitions: 1, ..Self::default() }
    }

    /// A session on a node of `partitions` partitions (candle counts ask each).
    pub fn with_partitions(mut self, partitions: u16) -> Self {
        self.partitions = partitions;
        self
    }

    /// Runs the requests at the front of `input`, at most `pipeline_max` in flight; returns what
    /// it consumed.
    pub fn run(&mut self, input: &[u8], limits: &HttpLimits, pipeline_max: usize, cx: &mut Cx<'_>) -> Step {
        let mut used = 0;
        loop {
            if self.watch.is_some() {
                return match watch::run_frames(&input[used..], cx) {
                    Step::Consumed(n) => Step::Consumed(used + n),
                    Step::Close { consumed } => Step::Close { consumed: used + consumed },
                    other => other,
                };
            }
            if self.closing {
                return match self.pending.is_empty() {
                    true => Step::Close { consumed: used },
                    false => Step::Wait { consumed: used, for_output: false },
                };
            }
            if self.pending.len() >= pipeline_max {
                return Step::Wait { consumed: used, for_output: false };
            }
            // Room for a response of the largest value (a soft bound, as for RESP: headers and JSON
            // escapes may pass it by a little; `tcp.output_bytes_max` is at least two datagrams).
            if !cx.output_has_room(cx.datagram_bytes_max) {
                return Step::Wait { consumed: used, for_output: true };
            }
            let limits = candles::limits_for(&input[used..], limits);
            let (head, body, consumed) = match parse_request(&input[used..], &limits) {
                Ok(Parsed::Request { head, body, consumed }) => (head, body, consumed),
                Ok(Parsed::Incomplete { expect_continue }) => {
                    // An interim response goes out only after every earlier final one.
                    if expect_continue && !self.continue_sent && self.pending.is_empty() {
                        Response::start(cx.output, 100).finish_empty();
                        self.continue_sent = true;
                    }
                    return Step::Consumed(used);
                }
                Err(e) => {
                    if !self.pending.is_empty() {
                        return Step::Wait { consumed: used, for_output: false };
                    }
                    refuse(cx.output, &e);
                    return Step::Close { consumed: used };
                }
            };
            match self.request(&head, body, cx) {
                Ran::Done => {
                    used += consumed;
                    self.taken += 1;
                    self.continue_sent = false;
                    self.closing = !head.keep_alive;
                }
                Ran::Blocked => return Step::Wait { consumed: used, for_output: false },
                Ran::Busy => return Step::Retry { consumed: used },
            }
        }
    }

    /// What the connection watches, once upgraded.
    pub fn watch(&self) -> Option<&Watch> {
        self.watch.as_ref()
    }

    /// Takes a late answer for one of its requests (never runs a request: see `Connections`).
    pub fn answer(&mut self, a: &LateAnswer<'_>, output: &mut Vec<u8>) {
        if self.candle_answer(a, output) {
            return;
        }
        let Some(at) = self.pending.iter().position(|p| p.id == a.request_id) else { return };
        let p = &mut self.pending[at];
        if let Kind::Get { json, head_only, not_modified_if } = p.kind {
            // GETs run only with nothing before them: this one is at the head.
            let reply = p.reply;
            self.pending.remove(at);
            write_get(
                output,
                &mut self.json,
                &self.key,
                a.status,
                a.body,
                (json, head_only, not_modified_if),
                reply,
            );
        } else {
            p.answer = Some((a.status, number_of(a.opcode, a.body)));
        }
        self.reply_ready(output);
    }

    fn request(&mut self, head: &Head<'_>, body: &[u8], cx: &mut Cx<'_>) -> Ran {
        let is_write = matches!(head.method, Method::Put | Method::Delete);
        let (path, query) = target::split(head.target);
        if path == b"/watch" {
            return self.upgrade(head, query, cx);
        }
        // The status page needs nothing; the store's resources their method's category.
        let needed = match path {
            b"/" | b"/health" => crate::auth::Acl::NONE,
            _ => auth::needed_by_method(head.method),
        };
        match cx.auth.check_request(head.authorization, None, needed, cx.now.0 / 1_000_000_000) {
            // Each request stands alone: its writes are for the principal its token names.
            Ok(owner) => cx.owner = owner,
            Err(refused) => return self.refuse_auth(head, refused, false, cx),
        }
        if path == b"/candles" || path.starts_with(b"/candles/") {
            return self.candles(head, path, body, cx);
        }
        let Some(raw_key) = path.strip_prefix(b"/kv/") else {
            return self.local(head, cx, |out, reply| match (path, head.method) {
                (b"/" | b"/health", Method::Get | Method::Head) => {
                    let body = br#"{"status":"ok","server":"vigil"}"#;
                    reply.start(out, 200).finish(Some("application/json"), body, head.method == Method::Head);
                }
                (b"/" | b"/health", _) => method_not_allowed(out, reply, "GET, HEAD"),
                _ => reply.text(out, 404, "no such resource: the API is /kv/{key} and /candles\n"),
            });
        };
        if !is_write && !self.pending.is_empty() {
            return Ran::Blocked;
        }
        self.key.clear();
        if !target::percent_decode(raw_key, &mut self.key) {
            return self
                .local(head, cx, |out, reply| reply.text(out, 400, "bad percent-escape in the key\n"));
        }
        match head.method {
            Method::Get | Method::Head => self.get(head, cx),
            Method::Put => self.put(head, body, cx),
            Method::Delete => self.delete(head, cx),
            _ => self.local(head, cx, |out, reply| method_not_allowed(out, reply, "GET, HEAD, PUT, DELETE")),
        }
    }

    /// `GET /watch?key=K` (or `?prefix=P`) with a WebSocket upgrade: 101, and the connection is a
    /// watcher from the next byte on. Only as the connection's first request: the acceptor handed
    /// the connection to the shard that owns the key it names (`conn::watch`).
    fn upgrade(&mut self, head: &Head<'_>, query: &[u8], cx: &mut Cx<'_>) -> Ran {
        let mut pattern = Vec::new();
        let (key, prefix) = (target::query_param(query, b"key"), target::query_param(query, b"prefix"));
        let is_prefix = key.is_none() && prefix.is_some();
        if head.method == Method::Get {
            if let Some(ran) = self.refuse_watcher(head, query, cx) {
                return ran;
            }
        }
        let refusal: Option<(u16, &str)> = if head.method != Method::Get {
            Some((405, "a watch is a GET with a WebSocket upgrade\n"))
        } else if !head.upgrade_websocket || head.websocket_version != Some(b"13") {
            Some((426, "a watch needs a WebSocket (version 13) upgrade\n"))
        } else if !head.websocket_key.is_some_and(websocket::key_is_valid) {
            Some((400, "bad Sec-WebSocket-Key\n"))
        } else if self.taken > 0 || !self.pending.is_empty() {
            Some((400, "a watch must be the connection's first request\n"))
        } else if !key.or(prefix).is_some_and(|v| target::query_decode(v, &mut pattern)) {
            Some((400, "a watch names ?key=K or ?prefix=P\n"))
        } else {
            None
        };
        if let Some((code, text)) = refusal {
            return self.local(head, cx, |out, reply| {
                let mut r = reply.start(out, code);
                if code == 426 {
                    r.header("Upgrade", "websocket").header("Sec-WebSocket-Version", 13);
                }
                r.finish(Some("text/plain; charset=utf-8"), text.as_bytes(), reply.head_only);
            });
        }
        let accept = websocket::accept_key(head.websocket_key.unwrap_or_default());
        let mut r = Response::start(cx.output, 101);
        r.header("Upgrade", "websocket").header("Connection", "Upgrade");
        r.header("Sec-WebSocket-Accept", std::str::from_utf8(&accept).unwrap_or_default());
        r.finish_empty();
        self.watch = Some(Watch { pattern, prefix: is_prefix });
        Ran::Done
    }

    /// A response given here (no request to run), in order: waits for the requests before it.
    fn local(&mut self, head: &Head<'_>, cx: &mut Cx<'_>, f: impl FnOnce(&mut Vec<u8>, Reply)) -> Ran {
        if !self.pending.is_empty() {
            return Ran::Blocked;
        }
        f(cx.output, Reply::of(head));
        Ran::Done
    }

    fn get(&mut self, head: &Head<'_>, cx: &mut Cx<'_>) -> Ran {
        let shape = (head.accept_json, head.method == Method::Head, head.if_none_match.and_then(parse_etag));
        let id = self.next_id;
        self.body.clear();
        self.body.extend_from_slice(&self.key);
        match self.dispatch(opcode::GET, cx) {
            Err(Status::Busy) => Ran::Busy,
            Ok(Answer::Later) => {
                let kind = Kind::Get { json: shape.0, head_only: shape.1, not_modified_if: shape.2 };
                self.push(id, kind, head);
                Ran::Done
            }
            Ok(Answer::Now(n)) => {
                write_get(
                    cx.output,
                    &mut self.json,
                    &self.key,
                    Status::Ok,
                    &cx.scratch[..n],
                    shape,
                    Reply::of(head),
                );
                Ran::Done
            }
            Err(status) | Ok(Answer::Refused { status, .. }) => {
                write_get(cx.output, &mut self.json, &self.key, status, &[], shape, Reply::of(head));
                Ran::Done
            }
        }
    }

    fn put(&mut self, head: &Head<'_>, body: &[u8], cx: &mut Cx<'_>) -> Ran {
        let expected = match (head.if_match, head.if_none_match) {
            (Some(m), _) => match parse_etag(m) {
                Some(v) if v > 0 => Some(v),
                _ => {
                    return self
                        .local(head, cx, |o, r| r.text(o, 400, "If-Match takes one version: \"<n>\"\n"))
                }
            },
            (None, Some(b"*")) => Some(0),
            (None, Some(_)) => {
                return self.local(head, cx, |o, r| r.text(o, 400, "If-None-Match on PUT takes only *\n"))
            }
            (None, None) => None,
        };
        self.body.clear();
        let op = match expected {
            Some(v) => {
                self.body.extend_from_slice(&v.to_le_bytes());
                opcode::CAS
            }
            None => opcode::SET,
        };
        self.body.extend_from_slice(&(self.key.len().min(u16::MAX as usize) as u16).to_le_bytes());
        self.body.extend_from_slice(&self.key);
        if head.json_body {
            if let Err(text) = json_value(body, &mut self.body) {
                return self.local(head, cx, |o, r| r.text(o, 400, text));
            }
        } else {
            self.body.extend_from_slice(body);
        }
        self.write(op, Kind::Put { create: expected == Some(0) }, head, cx)
    }

    fn delete(&mut self, head: &Head<'_>, cx: &mut Cx<'_>) -> Ran {
        if head.if_none_match.is_some() {
            return self.local(head, cx, |o, r| r.text(o, 400, "DELETE takes If-Match, not If-None-Match\n"));
        }
        self.body.clear();
        let op = match head.if_match.map(parse_etag) {
            None => opcode::DEL,
            Some(Some(v)) if v > 0 => {
                self.body.extend_from_slice(&v.to_le_bytes());
                opcode::CAD
            }
            Some(_) => {
                return self.local(head, cx, |o, r| r.text(o, 400, "If-Match takes one version: \"<n>\"\n"))
            }
        };
        self.body.extend_from_slice(&self.key);
        self.write(op, Kind::Delete, head, cx)
    }

    /// Dispatches the write built in `body`; its answer is written in order.
    fn write(&mut self, op: u8, kind: Kind, head: &Head<'_>, cx: &mut Cx<'_>) -> Ran {
        let id = self.next_id;
        let answer = match self.dispatch(op, cx) {
            Err(Status::Busy) => return Ran::Busy,
            Ok(Answer::Later) => None,
            Ok(Answer::Now(n)) => Some((Status::Ok, number_of(op, &cx.scratch[..n]))),
            Err(status) | Ok(Answer::Refused { status, .. }) => Some((status, 0)),
        };
        self.push(id, kind, head);
        self.pending.back_mut().expect("pushed").answer = answer;
        self.reply_ready(cx.output);
        Ran::Done
    }

    fn push(&mut self, id: u64, kind: Kind, head: &Head<'_>) {
        let reply = Reply::of(head);
        self.pending.push_back(Pending { id, kind, reply, answer: None });
    }

    /// One request through the engine, its body in `body`; its id is the next one (kept for the
    /// retry when the answer is BUSY).
    fn dispatch(&mut self, op: u8, cx: &mut Cx<'_>) -> Result<Answer, Status> {
        cx.request(&mut self.next_id, op, &self.body)
    }

    /// Writes the answers at the front whose answers are in.
    fn reply_ready(&mut self, output: &mut Vec<u8>) {
        while let Some((status, number)) = self.pending.front().and_then(|p| p.answer) {
            let p = self.pending.pop_front().expect("front exists");
            let reply = p.reply;
            match (p.kind, status) {
                (Kind::Put { create }, Status::Ok) => {
                    let mut r = reply.start(output, if create { 201 } else { 204 });
                    r.etag(number);
                    if create {
                        r.finish(None, &[], false);
                    } else {
                        r.finish_empty();
                    }
                }
                (Kind::Delete, Status::Ok) if number == 1 => reply.start(output, 204).finish_empty(),
                (Kind::Delete, Status::Ok | Status::NotFound) => reply.text(output, 404, "no such key\n"),
                (Kind::CandleLight, status) => candles::write_lit(output, reply, status, number),
                (_, status) => write_failure(output, reply, status),
            }
        }
    }
}

/// What every response of a request carries: whether the connection closes after it, and
/// whether the client speaks HTTP/1.0.
#[derive(Clone, Copy, Debug)]
struct Reply {
    close: bool,
    http10: bool,
    /// A HEAD request: every response to it has a head only (its `Content-Length` still says
    /// what a GET would get).
    head_only: bool,
}

impl Reply {
    fn of(head: &Head<'_>) -> Self {
        Self {
            close: !head.keep_alive,
            http10: head.minor_version == 0,
            head_only: head.method == Method::Head,
        }
    }

    fn start(self, out: &mut Vec<u8>, status: u16) -> Response<'_> {
        let mut r = Response::start(out, status);
        r.connection(self.close, self.http10);
        r
    }

    fn text(self, out: &mut Vec<u8>, status: u16, text: &str) {
        self.start(out, status).finish(Some("text/plain; charset=utf-8"), text.as_bytes(), self.head_only);
    }
}

fn method_not_allowed(out: &mut Vec<u8>, reply: Reply, allow: &str) {
    let mut r = reply.start(out, 405);
    r.header("Allow", allow);
    r.finish(Some("text/plain; charset=utf-8"), b"method not allowed\n", reply.head_only);
}

/// A request that cannot be framed: its status, then the connection closes.
fn refuse(out: &mut Vec<u8>, e: &HttpError) {
    let mut text = [0u8; 96];
    let n = {
        let mut w = &mut text[..];
        let _ = std::io::Write::write_fmt(&mut w, format_args!("{e}\n"));
        96 - w.len()
    };
    Reply { close: true, http10: false, head_only: false }.start(out, e.status()).finish(
        Some("text/plain; charset=utf-8"),
        &text[..n],
        false,
    );
}

/// The number a write's answer carries: SET/CAS the new version, DEL whether the key existed.
fn number_of(op: u8, body: &[u8]) -> u64 {
    match op {
        opcode::DEL | opcode::CAD => u64::from(body.first().copied().unwrap_or(0)),
        _ => body.get(..8).map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes"))),
    }
}

/// A GET's response: `shape` is (JSON, HEAD, the version `If-None-Match` named).
fn write_get(
    out: &mut Vec<u8>,
    json: &mut Vec<u8>,
    key: &[u8],
    status: Status,
    body: &[u8],
    (as_json, head_only, not_modified_if): (bool, bool, Option<u64>),
    reply: Reply,
) {
    if status != Status::Ok {
        return match status {
            Status::NotFound => reply.text(out, 404, "no such key\n"),
            other => write_failure(out, reply, other),
        };
    }
    let version = body.get(..8).map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let value = body.get(8..).unwrap_or(&[]);
    if not_modified_if == Some(version) {
        let mut r = reply.start(out, 304);
        r.etag(version);
        return r.finish_empty();
    }
    if !as_json {
        let mut r = reply.start(out, 200);
        r.etag(version);
        return r.finish(Some("application/octet-stream"), value, head_only);
    }
    let (Ok(key), Ok(value)) = (std::str::from_utf8(key), std::str::from_utf8(value)) else {
        return reply.text(out, 406, "the key or value is not UTF-8: ask for application/octet-stream\n");
    };
    json.clear();
    json.extend_from_slice(b"{\"key\":");
    let _ = serde_json::to_writer(&mut *json, key);
    json.extend_from_slice(b",\"value\":");
    let _ = serde_json::to_writer(&mut *json, value);
    let _ = std::io::Write::write_fmt(json, format_args!(",\"version\":{version}}}"));
    let mut r = reply.start(out, 200);
    r.etag(version);
    r.finish(Some("application/json"), json, head_only);
}

/// A store's refusal as a status code.
fn write_failure(out: &mut Vec<u8>, reply: Reply, status: Status) {
    let (code, text): (u16, &str) = match status {
        Status::CasMismatch => (412, "the key's version is not the one If-Match or If-None-Match named\n"),
        Status::KeyTooLarge | Status::BadLength => (414, "the key is larger than kv.key_bytes_max\n"),
        Status::ValueTooLarge => (413, "the value is larger than kv.value_bytes_max\n"),
        Status::Full => (507, "the store is full (kv.keys_max or kv.data_bytes_max); nothing written\n"),
        // 507 as RFC 4918 s. 11.5 uses it for quotas; the text tells it from FULL.
        Status::QuotaExceeded => (
            507,
            "this principal's quota of keys or bytes is used up (auth.clients keys_max/bytes_max, \
             or auth.anonymous_keys_max/anonymous_bytes_max); nothing written\n",
        ),
        Status::Busy => (503, "too many writes in flight on the key's shard; nothing written, retry\n"),
        Status::NotLeader => (503, "this node does not lead the key's partition now; retry\n"),
        Status::Unavailable => (503, "the key's partition is unavailable (its log failed)\n"),
        _ => (500, "internal error\n"),
    };
    let mut r = reply.start(out, code);
    if code == 503 {
        r.header("Retry-After", 1);
    }
    r.finish(Some("text/plain; charset=utf-8"), text.as_bytes(), reply.head_only);
}

/// The value of a JSON body `{"value": "..."}`, appended to `out`.
fn json_value(body: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
    #[derive(serde::Deserialize)]
    struct Put<'a> {
        #[serde(borrow)]
        value: std::borrow::Cow<'a, str>,
    }
    let put: Put<'_> =
        serde_json::from_slice(body).map_err(|_| "the JSON body must be {\"value\": \"<string>\"}\n")?;
    out.extend_from_slice(put.value.as_bytes());
    Ok(())
}

#[cfg(test)]
#[path = "http_tests.rs"]
pub(crate) mod tests;
