//! A shard's stream connections (TCP on port 9000): bytes in, requests through the engine, bytes
//! out, sans-IO over the `StreamIo` seam.
//!
//! The acceptor (`serve::acceptor`) tells each connection's protocol from its first bytes and hands
//! it to a shard; from then on the shard's loop services it here, between its packet bursts:
//! `poll` adopts new connections and reads those that became readable, each protocol's session
//! parses what arrived and runs the requests through the same `Engine` as datagrams (with
//! `Peer::connection` as their peer), and answers go into the connection's output and out with
//! `send`. Writes answered later (once their log entry committed) come back through
//! `deliver`, which hands them to their session by the connection id inside the peer.
//!
//! Limits (`ConnLimits`, from config): bytes buffered per connection on input (a request that does
//! not fit is an error: the connection is told and closed) and on output (past it the session stops
//! taking requests until the client reads: back-pressure through TCP, never unbounded memory; late
//! answers of requests already taken still go in, so none is lost: they are bounded by the
//! requests in flight); connections per shard are the backend's table.
//!
//! Invariants: a connection's requests run in the order they arrived and, per protocol, their
//! answers leave in the order the protocol promises (RESP: request order; binary: by request id);
//! nothing here blocks; buffers are allocated when a connection opens (never per request) and
//! freed when it closes; a late answer for a connection that is gone is counted and dropped.

pub mod auth;
pub mod binary;
mod buffers;
pub mod candle_fields;
pub mod candle_json;
mod guard;
use buffers::{flush, read_some, trim, READ_CHUNK};
pub use guard::ReadGuard;
pub mod detect;
pub mod http;
pub mod hub;
pub mod resp;
#[cfg(test)]
mod resp_auth_tests;
mod resp_local;
pub mod watch;
mod watchers;
pub mod web;
pub mod web_ops;
#[cfg(test)]
mod web_ops_tests;

use crate::dispatch::{Answer, Request};
use crate::engine::Engine;
use crate::protocol::http::{HttpLimits, HEAD_BYTES_MAX};
use crate::protocol::resp::ArgTable;
use crate::shard::LateAnswer;
use crate::wire::Status;
pub use auth::{AuthRefusals, TcpAuth};
use binary::BinarySession;
use http::HttpSession;
use hub::WatchHub;
use resp::{RespSession, RespSettings};
use std::sync::Arc;
use vigil_pmd::{ConnId, Nanos, Peer, StreamEvent, StreamIo};
use web::WebSession;

/// Protocol tags the acceptor gives connections.
pub mod protocol_tag {
    /// Protocol v1 datagrams, each preceded by its length.
    pub const BINARY: u8 = 1;
    /// RESP2/RESP3 (redis-cli, redis-benchmark, Redis client libraries).
    pub const RESP: u8 = 2;
    /// HTTP/1.x (the REST API for the KV store).
    pub const HTTP: u8 = 3;
    /// HTTP/1.x from a browser on the web port (the dashboard, the candle page, the operators' API): no detection.
    pub const WEB: u8 = 4;
}

/// Limits of a shard's connections, from config.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Bytes of unparsed input a connection may hold (its largest request).
    pub input_bytes_max: usize,
    /// Bytes of unsent output past which a connection's session takes no more requests.
    pub output_bytes_max: usize,
    /// Largest datagram (the binary protocol's frames, and the engine's answer scratch).
    pub datagram_bytes_max: usize,
    /// Connections per shard (the `StreamIo` table's size).
    pub connections_max: usize,
    /// Candles the web port's page shows (`tcp.page_candles_max`).
    pub page_candles_max: usize,
}

/// What a session did with its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// It consumed this many bytes and can take more when they come.
    Consumed(usize),
    /// It consumed this many bytes and waits before it takes more: for answers it owes (run it
    /// again after `deliver`) or, `for_output`, for its output to drain below the limit.
    Wait {
        /// Bytes consumed.
        consumed: usize,
        /// It waits for output room, not for answers.
        for_output: bool,
    },
    /// It consumed this many bytes and was refused for now (the shard's window of writes in
    /// flight is full): run it again at the next poll.
    Retry {
        /// Bytes consumed.
        consumed: usize,
    },
    /// It consumed this many bytes; the connection closes once its output is sent (QUIT, or an
    /// error the stream cannot recover from).
    Close {
        /// Bytes consumed.
        consumed: usize,
    },
}

/// What a session runs requests with.
pub struct Cx<'a> {
    /// The shard's engine.
    pub engine: &'a mut Engine,
    /// The connection's peer (`Peer::connection_of`: its id and protocol tag).
    pub peer: Peer,
    /// The poll iteration's time.
    pub now: Nanos,
    /// The connection's output.
    pub output: &'a mut Vec<u8>,
    /// Scratch for one answer (a datagram for the binary protocol; `STREAM_ANSWER_BYTES_MAX` for
    /// the other sessions).
    pub scratch: &'a mut [u8],
    /// Largest datagram.
    pub datagram_bytes_max: usize,
    /// Output bytes past which sessions wait.
    pub output_bytes_max: usize,
    /// Who may do what (`conn::auth`).
    pub auth: &'a TcpAuth,
    /// The shard's count of refused requests.
    pub refusals: &'a mut AuthRefusals,
    /// Who the session's requests are for, and their quota (`projection::owner`): the
    /// anonymous owner until the session sets the one its request was admitted as
    /// (`conn::auth`). Unused by the binary protocol, whose datagrams the gate admits.
    pub owner: crate::projection::Owner,
}

impl Cx<'_> {
    /// Whether `bytes` more fit under the output limit.
    pub fn output_has_room(&self, bytes: usize) -> bool {
        self.output.len() + bytes <= self.output_bytes_max
    }

    /// Runs one request of this connection (anonymous: no client id) through the engine, its
    /// answer's body into `scratch`, under request id `*next_id`, which moves on unless the answer
    /// is BUSY (the same request is tried again under the same id).
    pub fn request(&mut self, next_id: &mut u64, opcode: u8, body: &[u8]) -> Result<Answer, Status> {
        let req = Request {
            opcode,
            request_id: *next_id,
            client_id: crate::kv::ANONYMOUS_CLIENT,
            body,
            now: self.now,
            peer: self.peer,
            owner: self.owner,
        };
        let answer = self.engine.handle_request(&req, self.scratch);
        if answer != Err(Status::Busy) {
            *next_id += 1;
        }
        answer
    }
}

/// A connection's protocol state.
#[derive(Debug)]
enum Session {
    Binary(BinarySession),
    Resp(Box<RespSession>),
    Http(Box<HttpSession>),
    Web(Box<WebSession>),
}

impl Session {
    /// Its protocol tag, which its requests' peer carries (`Peer::connection_of`: the latency
    /// histograms count by protocol, `metrics::requests`).
    fn protocol(&self) -> u8 {
        match self {
            Session::Binary(_) => protocol_tag::BINARY,
            Session::Resp(_) => protocol_tag::RESP,
            Session::Http(_) => protocol_tag::HTTP,
            Session::Web(_) => protocol_tag::WEB,
        }
    }
}

/// One connection.
#[derive(Debug)]
struct Conn {
    id: ConnId,
    session: Session,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Bytes of `output` already sent.
    sent: usize,
    /// The stream may hold bytes not read yet (edge-triggered readiness: read until WouldBlock).
    readable: bool,
    /// The session waits for answers: run it again after `deliver`.
    waiting: bool,
    /// The session waits for its output to drain: run it again once sent.
    waiting_output: bool,
    /// The session was refused for now (BUSY): run it again at the next poll.
    retry: bool,
    /// Close once the output is sent.
    closing: bool,
    /// The peer is gone: close now.
    dead: bool,
    /// In the work list.
    queued: bool,
    /// In the watchers list (an upgraded WebSocket watcher).
    watcher: bool,
    /// In the ticking list (a web session serving a live stream or waiting for a compaction).
    ticking: bool,
}

/// Counters of a shard's connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnCounters {
    /// Connections opened.
    pub opened: u64,
    /// Connections closed (by either side).
    pub closed: u64,
    /// Connections closed for a request larger than `input_bytes_max`.
    pub closed_input_too_large: u64,
    /// Connections closed for a protocol error or by request (QUIT).
    pub closed_by_session: u64,
    /// Late answers for a connection that was already gone.
    pub answers_for_closed: u64,
    /// Connections handed over with a protocol tag this build does not serve.
    pub unknown_protocol: u64,
    /// Connections closed because a read lease ran out while their answers were made (the
    /// process stopped mid-iteration, `ReadGuard`): the answers were not sent, the client retries.
    pub closed_lease_lapsed: u64,
    /// WebSocket watchers opened (upgrades).
    pub watchers_opened: u64,
    /// Change frames queued to watchers.
    pub watch_frames: u64,
    /// Watchers closed (1008) for not reading fast enough: their queue passed `output_bytes_max`.
    pub watchers_closed_slow: u64,
    /// Watchers closed (1011) because their shard's change feed lost changes.
    pub watchers_closed_lost: u64,
    /// Requests refused by access control, by protocol and reason.
    pub auth_refusals: AuthRefusals,
}

/// A shard's connections over its `StreamIo`.
pub struct Connections {
    io: Box<dyn StreamIo>,
    limits: ConnLimits,
    resp: RespSettings,
    /// The arguments of the RESP request being run, for every connection of the shard.
    resp_args: ArgTable,
    conns: Vec<Option<Conn>>,
    events: Vec<StreamEvent>,
    work: Vec<u32>,
    scratch: Vec<u8>,
    /// Where `recv` reads into before the bytes join a connection's input.
    read_buf: Vec<u8>,
    counters: ConnCounters,
    /// The WebSocket watchers (`watch`): while empty, the shard's change feed is off.
    watchers: Vec<ConnId>,
    /// A change's frame, written once and copied to each matching watcher, and its payload.
    frame: Vec<u8>,
    json: Vec<u8>,
    /// Changes for, and from, prefix watchers on other shards (`hub`); this shard's index there.
    hub: Arc<WatchHub>,
    shard: usize,
    /// The operators' JSON API's view of the node, when the web port serves it.
    ops: Option<Arc<crate::metrics::api::OpsView>>,
    /// This shard's prefix watchers (counted in the hub).
    prefix_watchers: usize,
    /// Web sessions run again every `web_ops::TICK_NS` (live streams, compactions waited for),
    /// and when next.
    ticking: Vec<ConnId>,
    next_tick_ns: u64,
    /// The records of this poll's changes for other shards, and those taken from the hub.
    outbox: Vec<u8>,
    inbox: Vec<u8>,
}

/// Room for one answer of a RESP or HTTP request (a candle, or a page of them, is not bound by a
/// datagram); the binary protocol's answers stay within `datagram_bytes_max`.
pub const STREAM_ANSWER_BYTES_MAX: usize = 64 << 10;

/// Events taken from the backend per poll.
const EVENTS_PER_POLL_MAX: usize = 1024;

impl Connections {
    /// Connections over `io` with `limits`; allocates the table and the event list once.
    pub fn new(io: Box<dyn StreamIo>, limits: ConnLimits, resp: RespSettings) -> Self {
        Self {
            io,
            limits,
            resp_args: ArgTable::new(&resp.limits),
            resp,
            conns: (0..limits.connections_max).map(|_| None).collect(),
            events: Vec::with_capacity(2 * EVENTS_PER_POLL_MAX),
            work: Vec::with_capacity(limits.connections_max),
            scratch: vec![0; limits.datagram_bytes_max.max(STREAM_ANSWER_BYTES_MAX)],
            read_buf: vec![0; READ_CHUNK],
            counters: ConnCounters::default(),
            watchers: Vec::new(),
            frame: Vec::new(),
            json: Vec::new(),
            hub: Arc::new(WatchHub::new(1)),
            shard: 0,
            ops: None,
            prefix_watchers: 0,
            ticking: Vec::new(),
            next_tick_ns: 0,
            outbox: Vec::new(),
            inbox: Vec::new(),
        }
    }

    /// Serves the operators' JSON API on the web port from `ops`.
    pub fn with_ops(mut self, ops: Option<Arc<crate::metrics::api::OpsView>>) -> Self {
        self.ops = ops;
        self
    }

    /// Shares `hub` with the node's other shards, as shard `shard` (without it a node is taken to
    /// have one shard: prefix watchers see only this shard's changes).
    pub fn with_hub(mut self, hub: Arc<WatchHub>, shard: usize) -> Self {
        self.hub = hub;
        self.shard = shard;
        self
    }

    /// What was counted, with the backend's counters.
    pub fn counters(&self) -> (ConnCounters, vigil_pmd::StreamCounters) {
        (self.counters, self.io.counters())
    }

    /// The descriptor to sleep on besides the packet queue.
    pub fn wait_fd(&self) -> Option<i32> {
        self.io.wait_fd()
    }

    /// Adopts, reads, runs and writes what is ready; returns whether anything happened.
    pub fn poll(&mut self, engine: &mut Engine, now: Nanos, guard: &ReadGuard<'_>) -> bool {
        self.events.clear();
        self.io.poll(&mut self.events);
        let busy = !self.events.is_empty() || !self.work.is_empty();
        for i in 0..self.events.len() {
            match self.events[i] {
                StreamEvent::Opened { conn, protocol } => self.open(conn, protocol),
                StreamEvent::Readable(conn) => self.mark(conn, |c| c.readable = true),
                StreamEvent::Writable(conn) => self.mark(conn, |_| {}),
            }
        }
        // Not `busy`: a live stream alone does not keep the shard from sleeping when idle.
        if !self.ticking.is_empty() && now.0 >= self.next_tick_ns {
            self.next_tick_ns = now.0.saturating_add(web_ops::TICK_NS);
            for i in 0..self.ticking.len() {
                self.mark(self.ticking[i], |_| {});
            }
        }
        self.service(engine, now, guard);
        busy
    }

    /// Hands a late answer to its connection's session (the peer names the connection). The
    /// session only records it (output, its pipeline): it runs no request here, since this is
    /// called from inside the shard's service step; `service` runs the sessions afterwards.
    pub fn deliver(&mut self, id: ConnId, a: &LateAnswer<'_>) {
        let Some(conn) = self.conns.get_mut(id.slot as usize).and_then(Option::as_mut).filter(|c| c.id == id)
        else {
            self.counters.answers_for_closed += 1;
            return;
        };
        match &mut conn.session {
            Session::Binary(s) => {
                s.answer(a, &mut conn.output, &mut self.scratch[..self.limits.datagram_bytes_max])
            }
            Session::Resp(s) => s.answer(a, &mut conn.output),
            Session::Http(s) => s.answer(a, &mut conn.output),
            Session::Web(s) => s.answer(a, &mut conn.output),
        }
        conn.waiting = false;
        self.mark(id, |_| {});
    }

    /// Runs the work list (after `poll`, and after the shard's service delivered answers).
    pub fn service(&mut self, engine: &mut Engine, now: Nanos, guard: &ReadGuard<'_>) {
        let mut i = 0;
        while i < self.work.len() {
            let slot = self.work[i];
            i += 1;
            let keep = self.service_one(slot, engine, now, guard);
            if let Some(conn) = self.conns[slot as usize].as_mut() {
                conn.queued = keep;
            }
            if !keep {
                self.work.swap_remove(i - 1);
                i -= 1;
            }
        }
    }

    fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.get_mut(id.slot as usize)?.as_mut().filter(|c| c.id == id)
    }

    fn mark(&mut self, id: ConnId, f: impl FnOnce(&mut Conn)) {
        let Some(conn) = self.get_mut(id) else { return };
        f(conn);
        if !conn.queued {
            conn.queued = true;
            self.work.push(id.slot);
        }
    }

    fn open(&mut self, id: ConnId, protocol: u8) {
        let session = match protocol {
            protocol_tag::BINARY => Session::Binary(BinarySession),
            protocol_tag::RESP => Session::Resp(Box::new(RespSession::new(self.counters.opened + 1))),
            protocol_tag::HTTP => {
                Session::Http(Box::new(HttpSession::new().with_partitions(self.resp.partitions())))
            }
            protocol_tag::WEB => Session::Web(Box::default()),
            _ => {
                self.counters.unknown_protocol += 1;
                self.io.close(id);
                return;
            }
        };
        let Some(slot) = self.conns.get_mut(id.slot as usize) else {
            self.io.close(id);
            return;
        };
        self.counters.opened += 1;
        *slot = Some(Conn {
            id,
            session,
            // Grown as bytes come and go (see `IDLE_KEEP_BYTES`).
            input: Vec::new(),
            output: Vec::new(),
            sent: 0,
            readable: false,
            waiting: false,
            waiting_output: false,
            retry: false,
            closing: false,
            dead: false,
            queued: false,
            watcher: false,
            ticking: false,
        });
    }

    /// Services one connection; returns whether it stays in the work list (more to do without a
    /// new event: output left to send is not, the backend reports `Writable`).
    fn service_one(&mut self, slot: u32, engine: &mut Engine, now: Nanos, guard: &ReadGuard<'_>) -> bool {
        let Some(conn) = self.conns[slot as usize].as_mut() else { return false };
        let id = conn.id;
        read_some(self.io.as_mut(), conn, self.limits.input_bytes_max, &mut self.read_buf);
        conn.retry = false;
        if !conn.dead && !conn.closing {
            let before = conn.output.len();
            let node = (&self.resp, &mut self.resp_args, self.ops.as_deref());
            run_session(conn, engine, now, &mut self.scratch, &self.limits, node, &mut self.counters);
            if conn.output.len() > before && guard.lapsed() {
                // What this pass answered is not sent (what earlier passes answered is); the
                // connection closes, so the client knows to retry (`ReadGuard`).
                conn.output.truncate(before);
                conn.dead = true;
                self.counters.closed_lease_lapsed += 1;
            }
        }
        let watch = match &conn.session {
            Session::Http(s) => s.watch().map(|w| w.prefix),
            _ => None,
        };
        if let (false, Some(prefix)) = (conn.watcher, watch) {
            conn.watcher = true;
            self.watchers.push(id);
            self.counters.watchers_opened += 1;
            if prefix {
                self.prefix_watchers += 1;
                self.hub.count(self.shard, true);
            }
        }
        let ticks = matches!(&conn.session, Session::Web(s) if s.ticks());
        if ticks != conn.ticking {
            conn.ticking = ticks;
            if ticks {
                self.ticking.push(id);
            } else {
                self.ticking.retain(|t| *t != id);
            }
        }
        flush(self.io.as_mut(), conn);
        let done_sending = conn.sent == conn.output.len();
        trim(&mut conn.input);
        trim(&mut conn.output);
        if conn.dead || (conn.closing && done_sending) {
            if conn.watcher {
                self.watchers.retain(|w| *w != id);
                if watch == Some(true) {
                    self.prefix_watchers -= 1;
                    self.hub.count(self.shard, false);
                }
            }
            if conn.ticking {
                self.ticking.retain(|t| *t != id);
            }
            self.conns[slot as usize] = None;
            self.io.close(id);
            self.counters.closed += 1;
            return false;
        }
        // Waiting for output room that the send just made: run again. (Output still unsent comes
        // back with `Writable`.)
        if (conn.waiting_output && done_sending) || conn.retry {
            return true;
        }
        // Input left to read (the stream is not drained) and room to take it: come back.
        conn.readable
            && conn.input.len() < self.limits.input_bytes_max
            && !conn.waiting
            && !conn.waiting_output
    }
}

/// Runs the session over the input; drops what it consumed.
fn run_session(
    conn: &mut Conn,
    engine: &mut Engine,
    now: Nanos,
    scratch: &mut [u8],
    limits: &ConnLimits,
    // The node's settings: RESP's, its argument table, the web port's JSON API view.
    (resp, resp_args, ops): (&RespSettings, &mut ArgTable, Option<&crate::metrics::api::OpsView>),
    counters: &mut ConnCounters,
) {
    // Output already sent is dropped first, so the output limit counts what is unsent.
    if conn.sent > 0 {
        conn.output.drain(..conn.sent);
        conn.sent = 0;
    }
    // The binary protocol answers in datagrams: its answers stay within one.
    let scratch = match conn.session {
        Session::Binary(_) => &mut scratch[..limits.datagram_bytes_max],
        _ => scratch,
    };
    let mut cx = Cx {
        engine,
        peer: Peer::connection_of(conn.id, conn.session.protocol()),
        now,
        output: &mut conn.output,
        scratch,
        datagram_bytes_max: limits.datagram_bytes_max,
        output_bytes_max: limits.output_bytes_max,
        auth: &resp.auth,
        refusals: &mut counters.auth_refusals,
        // Until the session names a principal (RESP, HTTP: at each request's check); the binary
        // protocol's datagrams carry theirs through the engine's gate, and the web port's
        // candle page is anonymous.
        owner: resp.auth.anonymous_owner,
    };
    let step = match &mut conn.session {
        Session::Binary(s) => s.run(&conn.input, &mut cx),
        Session::Resp(s) => s.run(&conn.input, resp_args, resp, &mut cx),
        Session::Http(s) => s.run(&conn.input, &http_limits(limits), resp.pipeline_max, &mut cx),
        Session::Web(s) => {
            let (max, partitions) = (limits.page_candles_max, resp.partitions());
            s.run(&conn.input, &web_limits(limits), max, partitions, ops, &mut cx)
        }
    };
    let consumed = match step {
        Step::Consumed(n) => {
            (conn.waiting, conn.waiting_output) = (false, false);
            n
        }
        Step::Wait { consumed, for_output } => {
            (conn.waiting, conn.waiting_output) = (!for_output, for_output);
            consumed
        }
        Step::Retry { consumed } => {
            (conn.waiting, conn.waiting_output, conn.retry) = (false, false, true);
            consumed
        }
        Step::Close { consumed } => {
            conn.closing = true;
            counters.closed_by_session += 1;
            consumed
        }
    };
    conn.input.drain(..consumed);
    if conn.input.len() >= limits.input_bytes_max && !conn.waiting && !conn.waiting_output && !conn.closing {
        // A request larger than the input limit: nothing more can be parsed from this stream.
        counters.closed_input_too_large += 1;
        conn.closing = true;
    }
}

/// An HTTP request's bounds: its head within `HEAD_BYTES_MAX` and the input limit, its body no
/// larger than a datagram (a larger one cannot be a value).
/// A browser's form is small: a candle's fields, urlencoded.
fn web_limits(limits: &ConnLimits) -> HttpLimits {
    HttpLimits {
        head_bytes_max: HEAD_BYTES_MAX.min(limits.input_bytes_max),
        body_bytes_max: WEB_FORM_BYTES_MAX,
    }
}

/// Bytes of a form posted to the web port: a candle's fields percent-encoded (each byte of an
/// 800-character prayer may take 9).
const WEB_FORM_BYTES_MAX: usize = 16 << 10;

fn http_limits(limits: &ConnLimits) -> HttpLimits {
    HttpLimits {
        head_bytes_max: HEAD_BYTES_MAX.min(limits.input_bytes_max),
        body_bytes_max: limits.datagram_bytes_max,
    }
}

// Tested with the shard loop and real partitions: src/shard/tests/conns.rs.
