//! The KV subsystem of one shard: the GET/SET/DEL/INCR/CAS handlers, the shard's partitions, and
//! the cross-shard forwarding between them.
//!
//! A request's key decides its partition (`inbox::Placement`: FNV-1a of the key modulo the
//! partitions) and the partition its shard (`partition % shards`). On the owning shard a GET is
//! answered at once from the projection and a write is proposed to the partition's Raft group and
//! answered when it commits (`Answer::Later`, then a `LateAnswer` from `ShardService::poll`). On
//! another shard the request is forwarded through the inbox fabric (32-byte envelopes, the frame in
//! a pool slot): the owner runs it and answers through the inbox, and the origin sends the answer
//! to the client. A full inbox, pool or in-flight table is `BUSY` at once: back-pressure, never a
//! wait.
//!
//! A request is taken over only with a reservation of the transmit buffer its late answer will go
//! out in (`shard::AnswerReservations`, handed over by the shard loop): a client's write before it
//! is proposed, any request before it is forwarded (on the shard that owns the client's datagram;
//! the owner answers it through the inbox, which needs no buffer). With none free the request is
//! answered `BUSY` at once and nothing is proposed or forwarded; a reservation taken for a write
//! that was answered at once after all is given back.
//!
//! Forwarding lives in `kv/forward.rs` (request payload: `[opcode u8][client_id u64 LE]
//! [request_id u64 LE][owner flags u8][owner stamp, 20 bytes][body]`), peer datagrams and the burst's lease check in
//! `kv/peer_traffic.rs`.
//!
//! The handlers and the shard's service step share one `KvShard` through `Rc<RefCell<_>>`: both run
//! on the shard's thread, one after the other, so a borrow is never contended.
//!
//! Invariants: every request taken over (`Answer::Later`) holds one reservation and is answered
//! exactly once: by its partition's `Done`, or by the owner's inbox answer; the forwarded table is
//! bounded by the router's in-flight limit.

use crate::dispatch::{Answer, DispatchError, Dispatcher, Handler, Request, Subsystem};
use crate::inbox::{Envelope, Kind, Placement, Route, Router};
use crate::kv::protocol::{is_read, parse_get, parse_write, render_result, render_result_with};
use crate::kv::{Command, Op};
use crate::ops::candle::{self as candle_ops, CandleOps, CandleRequest};
use crate::ops::leaders::Leaders;
use crate::ops::peer_link::PeerLink;
use crate::partition::waiters::Waiters;
use crate::partition::{Done, Origin, Partition, Pending, Waiter, WriteOutcome};
use crate::projection::{ApplyResult, Owner};
use crate::shard::{AnswerReservations, LateAnswer, ShardService};
use crate::wire::{opcode, Status};
use std::cell::RefCell;
use std::rc::Rc;
use vigil_pmd::block::BlockIo;
use vigil_pmd::{Batch, Nanos, Peer};

mod forward;
mod peer_traffic;

use forward::Forwarded;

/// Bytes before the body in a forwarded request: opcode, client id, request id, the owner's
/// stamp flags and its stamp (`projection::owner`, always its largest size).
const FORWARD_HEADER_LEN: usize = 18 + crate::projection::owner::STAMP_BYTES_MAX;
/// The opcode of a forwarded peer datagram (0 is never a client's: `wire::OPCODE_NONE`).
const PEER_DATAGRAM: u8 = crate::wire::OPCODE_NONE;
/// Largest KV answer body (INCR: value and version).
const ANSWER_BYTES_MAX: usize = 16;
/// Largest candle answer decoded for a client (the room of a TCP connection's answer; a UDP
/// datagram takes what fits it).
const CLIENT_ANSWER_BYTES_MAX: usize = 64 << 10;

/// Counters of the KV subsystem of one shard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvShardCounters {
    /// Requests forwarded to their owner shard.
    pub forwarded: u64,
    /// Forwards refused (inbox, pool or in-flight table full): answered BUSY.
    pub forward_refused: u64,
    /// Forwarded requests run here for another shard.
    pub served_for_others: u64,
    /// Inbox answers or requests whose slot was stale (counted, ignored).
    pub stale: u64,
    /// Requests answered `BUSY` at once: no transmit buffer was left to reserve for their late
    /// answer (`net.answers_reserved_max`); nothing was proposed or forwarded.
    pub busy_unreserved: u64,
}

/// The KV state of one shard.
pub struct KvShard<D: BlockIo> {
    /// This shard's partitions, at `partition / shards`.
    partitions: Vec<Partition<D>>,
    placement: Placement,
    router: Option<Router>,
    forwarded: Waiters<Forwarded>,
    envelopes: Batch<Envelope>,
    /// Scratch: a forwarded request being encoded or read.
    scratch: Vec<u8>,
    /// Scratch: an answer body.
    answer: Vec<u8>,
    /// The shard loop's reservations for late answers (none until the service is attached).
    reservations: AnswerReservations,
    /// The latest request or poll time (Unix ms with the server's clock): what reads forwarded
    /// from another shard compare expiries with.
    now_ms: u64,
    counters: KvShardCounters,
    /// The candle requests' codec and buffers (`ops::candle`).
    candles: CandleOps,
    /// A candle answer decoded for its client (a forwarded GET or LIST answered raw).
    client_answer: Vec<u8>,
    /// Who leads each partition of the node, for `NOT_LEADER` hints (shared by the shards).
    leaders: Leaders,
    /// The Raft messages to and from the other nodes (a replicated cluster only).
    peers: Option<PeerLink>,
    /// Peer datagrams handed to their owner shard whose receipt this shard has not collected.
    peer_handed_over: usize,
    /// How long this shard's durable writes took, from their batch's seal to their answer
    /// (`metrics`).
    write_latency: crate::metrics::Latency,
}

impl<D: BlockIo> std::fmt::Debug for KvShard<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvShard")
            .field("partitions", &self.partitions)
            .field("counters", &self.counters)
            .finish()
    }
}

impl<D: BlockIo> KvShard<D> {
    /// A shard's KV state over its opened partitions (each `p` with `owner(p)` = this shard, in
    /// ascending order), with the shard's end of the inbox fabric when there are several shards.
    /// `request_bytes_max` bounds a forwarded request (a datagram's payload).
    pub fn new(
        partitions: Vec<Partition<D>>,
        placement: Placement,
        router: Option<Router>,
        request_bytes_max: usize,
    ) -> Self {
        let in_flight = router.as_ref().map_or(1, |r| r.pool().slots().max(1));
        let burst = router.as_ref().map_or(1, |r| r.pool().slots().clamp(1, 1024));
        Self {
            partitions,
            placement,
            router,
            forwarded: Waiters::new(in_flight),
            envelopes: Batch::with_capacity(burst),
            scratch: vec![0; FORWARD_HEADER_LEN + request_bytes_max],
            answer: vec![0; request_bytes_max.max(ANSWER_BYTES_MAX)],
            reservations: AnswerReservations::new(),
            now_ms: 0,
            counters: KvShardCounters::default(),
            candles: CandleOps::new(),
            client_answer: vec![0; CLIENT_ANSWER_BYTES_MAX],
            leaders: Leaders::new(placement.partitions(), &[]),
            peers: None,
            peer_handed_over: 0,
            write_latency: crate::metrics::Latency::new(),
        }
    }

    /// Joins the shard to its cluster: the node's table of leaders (for `NOT_LEADER` hints) and,
    /// when the partitions replicate, the shard's peer link.
    pub fn with_cluster(mut self, leaders: Leaders, peers: Option<PeerLink>) -> Self {
        self.leaders = leaders;
        self.peers = peers;
        self
    }

    /// The shard's peer link, if the partitions replicate.
    pub fn peer_link(&self) -> Option<&PeerLink> {
        self.peers.as_ref()
    }

    /// The shard's partitions.
    pub fn partitions(&self) -> &[Partition<D>] {
        &self.partitions
    }

    /// Starts a snapshot of every partition now (the admin API's snapshot and compaction); each
    /// completes with later polls, and its checkpoint frees the log behind it.
    pub fn snapshot_now(&mut self) {
        for p in &mut self.partitions {
            p.snapshot_now();
        }
    }

    /// Whether a partition's snapshot is still being stored or waits for its checkpoint.
    pub fn snapshots_in_progress(&self) -> bool {
        self.partitions.iter().any(|p| p.snapshot_in_progress())
    }

    /// Whether every partition serves reads (leads, and has re-applied its log after recovery).
    pub fn serves_reads(&self) -> bool {
        self.partitions.iter().all(|p| p.serves_reads())
    }

    /// Counters so far.
    pub fn counters(&self) -> KvShardCounters {
        self.counters
    }

    /// Requests this shard forwarded to others (or handed over) whose answer it waits for.
    pub fn forwards_in_flight(&self) -> usize {
        self.router.as_ref().map_or(0, |r| r.in_flight())
    }

    /// Envelopes waiting in this shard's cross-shard inbox now.
    pub fn inbox_depth(&self) -> usize {
        self.router.as_ref().map_or(0, |r| r.inbox_depth())
    }

    /// How long this shard's durable writes took, from their batch's seal to their answer.
    pub fn write_latency(&self) -> &crate::metrics::Latency {
        &self.write_latency
    }

    /// The inbox router, if the node has several shards.
    pub fn router(&self) -> Option<&Router> {
        self.router.as_ref()
    }

    /// Takes the shard's state apart into its partitions.
    pub fn into_partitions(self) -> Vec<Partition<D>> {
        self.partitions
    }

    fn local(&mut self, partition: u16) -> &mut Partition<D> {
        let shards = self.placement.shards();
        let p = &mut self.partitions[usize::from(partition) / shards];
        assert_eq!(p.id(), partition, "partitions are held at partition / shards");
        p
    }

    fn route(&self, key: &[u8]) -> Route {
        match &self.router {
            Some(r) => r.route(key),
            None => Route::Local { partition: self.placement.partition_of(key) },
        }
    }

    /// Where a partition-named request runs; `NOT_FOUND` for a partition the node does not have.
    fn route_partition(&self, partition: u16) -> Result<Route, Status> {
        if u32::from(partition) >= self.placement.partitions() {
            return Err(Status::NotFound);
        }
        if self.partitions.iter().any(|p| p.id() == partition) {
            Ok(Route::Local { partition })
        } else {
            Ok(Route::Remote { partition, owner: self.placement.owner(partition) })
        }
    }

    /// Where a request runs: by its key, or (KEYS_COUNT) by the partition it names. An MSET
    /// whose keys are not all of one partition is `BAD_REQUEST` (it is one command in one log).
    fn route_request(&self, request: &KvRequest<'_>) -> Result<Route, Status> {
        if let KvRequest::Candle(c) = request {
            return match (c, c.partition()) {
                (CandleRequest::Light { body, .. }, _) => {
                    let at = candle_ops::light_index(self.partitions.len(), body);
                    Ok(Route::Local { partition: self.partitions[at].id() })
                }
                (_, Some(partition)) => self.route_partition(partition),
                (_, None) => Err(Status::BadRequest),
            };
        }
        if let KvRequest::Write(Command { op: Op::MSet { pairs }, .. }) = request {
            let first = self.placement.partition_of(pairs.first_key());
            if pairs.iter().any(|(key, _)| self.placement.partition_of(key) != first) {
                return Err(Status::BadRequest);
            }
        }
        let KvRequest::Count(partition) = *request else { return Ok(self.route(request.key())) };
        if u32::from(partition) >= self.placement.partitions() {
            return Err(Status::BadRequest);
        }
        if self.partitions.iter().any(|p| p.id() == partition) {
            Ok(Route::Local { partition })
        } else {
            Ok(Route::Remote { partition, owner: self.placement.owner(partition) })
        }
    }

    /// Handles a client request on this shard.
    fn handle(&mut self, req: &Request<'_>, out: &mut [u8]) -> Result<Answer, Status> {
        self.now_ms = self.now_ms.max(req.now.0 / 1_000_000);
        let parsed = KvRequest::parse(req.opcode, req.client_id, req.request_id, req.body)?;
        match self.route_request(&parsed)? {
            Route::Local { partition } => {
                self.local(partition).observe_time(req.now);
                let origin = Origin::Client { peer: req.peer, client_id: req.client_id, arrived: req.now };
                let owner = self.owner_here(req.owner);
                let waiter = Waiter { origin, opcode: req.opcode, request_id: req.request_id, owner };
                let answer = self.run_local(partition, waiter, &parsed, out);
                self.with_hint(partition, answer, out)
            }
            Route::Remote { partition, .. } => self.forward(partition, req),
        }
    }

    /// A `NOT_LEADER` refusal with the partition's leader hint in `out` (when one is known).
    fn with_hint(
        &self,
        partition: u16,
        answer: Result<Answer, Status>,
        out: &mut [u8],
    ) -> Result<Answer, Status> {
        match answer {
            Err(Status::NotLeader) => Ok(Answer::Refused {
                status: Status::NotLeader,
                len: self.leaders.write_hint(partition, out),
            }),
            other => other,
        }
    }

    /// `owner` with its node-wide quota turned into a partition's share of it (`Quota::share`).
    fn owner_here(&self, owner: Owner) -> Owner {
        owner.in_partition_of(u16::try_from(self.placement.partitions()).unwrap_or(u16::MAX))
    }

    /// Takes a reservation for a late answer; `BUSY` (counted) if none is free.
    fn reserve(&mut self) -> Result<(), Status> {
        if self.reservations.try_take() {
            Ok(())
        } else {
            self.counters.busy_unreserved += 1;
            Err(Status::Busy)
        }
    }

    /// Runs a request on a partition of this shard; `Later` if a write was proposed. A client's
    /// write is proposed only with a reservation for its answer; a forwarded one is answered
    /// through the inbox and needs none.
    fn run_local(
        &mut self,
        partition: u16,
        waiter: Waiter,
        request: &KvRequest<'_>,
        out: &mut [u8],
    ) -> Result<Answer, Status> {
        let now_ms = self.now_ms;
        let cmd = match request {
            KvRequest::Read(op, body) => {
                return self.local(partition).read_kv(*op, body, now_ms, out).map(Answer::Now)
            }
            KvRequest::BoundedRead(key) => {
                let p = self.local(partition);
                let answer = match p.serves_reads() {
                    true => p.read_kv(opcode::GET, key, now_ms, out),
                    false => p.get_bounded(key, now_ms, out),
                };
                return answer.map(Answer::Now);
            }
            KvRequest::Count(_) => {
                return self.local(partition).read_kv(opcode::KEYS_COUNT, &[], now_ms, out).map(Answer::Now)
            }
            KvRequest::Write(cmd) => cmd,
            KvRequest::Candle(c) => return self.run_candle(partition, waiter, c, out),
        };
        let reserved = matches!(waiter.origin, Origin::Client { .. });
        if reserved {
            self.reserve()?;
        }
        let outcome = self.local(partition).write_command(waiter, cmd);
        if reserved && outcome != WriteOutcome::Later {
            self.reservations.give_back();
        }
        match outcome {
            WriteOutcome::Later => Ok(Answer::Later),
            WriteOutcome::Now(result) => render_result(&result, out).map(Answer::Now),
            WriteOutcome::Refused(status) => Err(status),
        }
    }

    /// Runs a candle request on a partition of this shard (`ops::candle`): a LIGHT is proposed
    /// (with a reservation for a client's answer), a read answered now: decoded for a client,
    /// raw (with public ids) for the shard that forwarded it.
    fn run_candle(
        &mut self,
        partition: u16,
        waiter: Waiter,
        request: &CandleRequest<'_>,
        out: &mut [u8],
    ) -> Result<Answer, Status> {
        let now_ms = self.now_ms;
        if let CandleRequest::Light { body, client_id, seq } = *request {
            let reserved = matches!(waiter.origin, Origin::Client { .. });
            if reserved {
                self.reserve()?;
            }
            let shards = self.placement.shards();
            let p = &mut self.partitions[usize::from(partition) / shards];
            let outcome = match self.candles.light_command(body, client_id, seq, now_ms) {
                Ok(command) => p.light(waiter, command),
                Err(status) => WriteOutcome::Refused(status),
            };
            if reserved && outcome != WriteOutcome::Later {
                self.reservations.give_back();
            }
            return match outcome {
                WriteOutcome::Later => Ok(Answer::Later),
                WriteOutcome::Now(result) => render_candle(&result, partition, out).map(Answer::Now),
                WriteOutcome::Refused(status) => Err(status),
            };
        }
        let op = candle_ops::read_opcode(request);
        let mut body = [0u8; 12];
        let body_len = candle_ops::ring_body(request, &mut body)?;
        let shards = self.placement.shards();
        let p = &self.partitions[usize::from(partition) / shards];
        let len = p.read_candles(op, &body[..body_len], now_ms, self.candles.raw_buffer())?;
        self.candles.publish_ids(op, partition, len)?;
        let (raw, mut ops) = self.candles.split_raw(len);
        if matches!(waiter.origin, Origin::Forwarded(_)) {
            let dst = out.get_mut(..len).ok_or(Status::ResponseTooLarge)?;
            dst.copy_from_slice(raw);
            return Ok(Answer::Now(len));
        }
        ops.for_client(op, raw, out).map(Answer::Now)
    }

    /// One step: the inbox, then every partition. Late answers go to `emit`.
    fn poll(&mut self, now: Nanos, emit: &mut dyn FnMut(&LateAnswer<'_>)) -> bool {
        self.now_ms = self.now_ms.max(now.0 / 1_000_000);
        self.drain_inbox(now, emit);
        let mut busy = false;
        let Self { partitions, router, answer, leaders, write_latency, .. } = self;
        for p in partitions.iter_mut() {
            let partition = p.id();
            busy |= p.poll(now, &mut |d: Done| {
                if d.sealed_at > 0 && d.result.is_ok() && d.waiter.origin != Origin::Internal {
                    write_latency.record(now.0.saturating_sub(d.sealed_at));
                }
                deliver(router.as_mut(), leaders, answer, partition, &d, emit)
            });
            leaders.set(partition, p.leader_hint().unwrap_or(0));
        }
        if let Some(link) = self.peers.as_mut() {
            link.collect(&mut self.partitions, now);
        }
        busy || self.waits_on_other_shards()
    }

    /// Whether a request forwarded to another shard waits for its answer. Receipts of peer
    /// datagrams handed over do not count: nobody waits for them, and spinning to collect them
    /// at once would keep the shard that receives a node's peer traffic busy all the time (the
    /// next iteration collects them, after at most an idle wait).
    fn waits_on_other_shards(&self) -> bool {
        self.router.as_ref().is_some_and(|r| r.in_flight() > self.peer_handed_over)
    }

    /// Whether the work in flight waits only on the partitions' log devices (their descriptors
    /// go to `out`) and on peers' datagrams: none waits on another shard's answer and no
    /// partition has work of its own. False leaves `out` to be ignored.
    fn wait_fds(&self, out: &mut Vec<i32>) -> bool {
        // A forwarded request's answer comes through the cross-shard inbox, which wakes nobody:
        // spin for it, except in a replicated node, where the owner's answer waits on peers for
        // milliseconds anyway and an idle wait (`kernel.idle_wait_us`) costs little beside it.
        if self.waits_on_other_shards() && self.peers.is_none() {
            return false;
        }
        for p in &self.partitions {
            match p.pending() {
                Pending::Nothing | Pending::Peers => {}
                Pending::Device(fd) => out.push(fd),
                Pending::Work => return false,
            }
        }
        true
    }
}

/// Sends a finished write's answer: to the client, or back to the shard that forwarded it.
fn deliver(
    router: Option<&mut Router>,
    leaders: &Leaders,
    buf: &mut [u8],
    partition: u16,
    done: &Done,
    emit: &mut dyn FnMut(&LateAnswer<'_>),
) {
    let old = done.value.as_deref().map(crate::kv::KvProjection::value_of);
    let (status, body): (Status, &[u8]) = match done.result {
        Ok(result @ ApplyResult::Lit { .. }) => match render_candle(&result, partition, buf) {
            Ok(n) => (Status::Ok, &buf[..n]),
            Err(status) => (status, &[]),
        },
        Ok(result) => match render_result_with(&result, old, buf) {
            Ok(n) => (Status::Ok, &buf[..n]),
            Err(status) => (status, &[]),
        },
        Err(Status::NotLeader) => {
            let n = leaders.write_hint(partition, buf);
            (Status::NotLeader, &buf[..n])
        }
        Err(status) => (status, &[]),
    };
    let w = &done.waiter;
    match w.origin {
        Origin::Internal => {}
        Origin::Client { peer, client_id, arrived } => emit(&LateAnswer {
            peer,
            client_id,
            opcode: w.opcode,
            request_id: w.request_id,
            status,
            body,
            arrived,
        }),
        Origin::Forwarded(env) => {
            let router = router.expect("a forwarded request came through a router");
            // A stale slot means the origin is gone (it cannot be, short of a bug); nothing to send.
            let _ = router.answer(&env, status, body);
        }
    }
}

/// A LIGHT's result as its answer: the candle's public id.
fn render_candle(result: &ApplyResult, partition: u16, out: &mut [u8]) -> Result<usize, Status> {
    match *result {
        ApplyResult::Lit { id } => {
            let dst = out.get_mut(..8).ok_or(Status::ResponseTooLarge)?;
            dst.copy_from_slice(&candle_ops::public_id(partition, id).to_le_bytes());
            Ok(8)
        }
        other => Err(other.status()),
    }
}

/// A KV request, parsed once: where it goes and what it runs both come from this.
enum KvRequest<'a> {
    /// A read (GET, TTL) of this key.
    Read(u8, &'a [u8]),
    /// A GET a follower may answer within its staleness bound (GET_BOUNDED) of this key.
    BoundedRead(&'a [u8]),
    /// KEYS_COUNT of this partition.
    Count(u16),
    /// A write, as it will be logged.
    Write(Command<'a>),
    /// A candle request (`ops::candle`).
    Candle(CandleRequest<'a>),
}

impl<'a> KvRequest<'a> {
    /// Parses a frame's body; `BAD_REQUEST` if it does not parse for its opcode.
    fn parse(op: u8, client_id: u64, request_id: u64, body: &'a [u8]) -> Result<Self, Status> {
        if op == opcode::KEYS_COUNT {
            let partition: [u8; 2] = body.try_into().map_err(|_| Status::BadRequest)?;
            return Ok(KvRequest::Count(u16::from_le_bytes(partition)));
        }
        if is_read(op) {
            return Ok(KvRequest::Read(op, parse_get(body)));
        }
        if op == opcode::GET_BOUNDED {
            return Ok(KvRequest::BoundedRead(parse_get(body)));
        }
        if candle_ops::is_candle(op) {
            return CandleRequest::parse(op, client_id, request_id, body).map(KvRequest::Candle);
        }
        parse_write(op, client_id, request_id, body).map(KvRequest::Write).map_err(|_| Status::BadRequest)
    }

    /// The key it is placed by.
    fn key(&self) -> &'a [u8] {
        match self {
            KvRequest::Read(_, key) | KvRequest::BoundedRead(key) => key,
            KvRequest::Count(_) | KvRequest::Candle(_) => b"",
            KvRequest::Write(cmd) => cmd.op.key(),
        }
    }
}

/// The KV subsystem: registers GET, SET, DEL, INCR and CAS over a shared `KvShard`.
pub struct Kv<D: BlockIo>(pub Rc<RefCell<KvShard<D>>>);

impl<D: BlockIo + 'static> Subsystem for Kv<D> {
    fn register(self, d: &mut Dispatcher) -> Result<(), DispatchError> {
        for (op, name) in [
            (opcode::GET, "kv.get"),
            (opcode::GET_BOUNDED, "kv.get_bounded"),
            (opcode::SET, "kv.set"),
            (opcode::DEL, "kv.del"),
            (opcode::INCR, "kv.incr"),
            (opcode::CAS, "kv.cas"),
            (opcode::SETX, "kv.setx"),
            (opcode::EXPIRE, "kv.expire"),
            (opcode::PERSIST, "kv.persist"),
            (opcode::TTL, "kv.ttl"),
            (opcode::KEYS_COUNT, "kv.keys_count"),
            (opcode::MSET, "kv.mset"),
            (opcode::CANDLE_LIGHT, "candle.light"),
            (opcode::CANDLE_GET, "candle.get"),
            (opcode::CANDLE_LIST, "candle.list"),
            (opcode::CANDLE_COUNT, "candle.count"),
            (opcode::CANDLE_COUNT_CITY, "candle.count_city"),
            (opcode::CANDLE_COUNT_STATES, "candle.count_states"),
            (opcode::CAD, "kv.cad"),
        ] {
            d.register(op, name, Box::new(KvHandler(Rc::clone(&self.0))))?;
        }
        Ok(())
    }
}

struct KvHandler<D: BlockIo>(Rc<RefCell<KvShard<D>>>);

impl<D: BlockIo> Handler for KvHandler<D> {
    fn handle(&mut self, req: &Request<'_>, out: &mut [u8]) -> Result<Answer, Status> {
        self.0.borrow_mut().handle(req, out)
    }
}

/// The shard's service step over the shared `KvShard`.
pub struct KvService<D: BlockIo>(pub Rc<RefCell<KvShard<D>>>);

impl<D: BlockIo> ShardService for KvService<D> {
    fn poll(&mut self, now: Nanos, emit: &mut dyn FnMut(&LateAnswer<'_>)) -> bool {
        self.0.borrow_mut().poll(now, emit)
    }

    fn wait_fds(&self, out: &mut Vec<i32>) -> bool {
        self.0.borrow().wait_fds(out)
    }

    fn attach_reservations(&mut self, reservations: AnswerReservations) {
        self.0.borrow_mut().reservations = reservations;
    }

    fn peer_datagram(&mut self, datagram: &[u8], now: Nanos) -> bool {
        self.0.borrow_mut().peer_datagram(datagram, now)
    }

    fn answers_valid_until(&self) -> Nanos {
        self.0.borrow().reads_valid_until()
    }

    fn peer_next(&self) -> Option<Peer> {
        self.0.borrow().peer_next()
    }

    fn peer_write(&mut self, buf: &mut [u8]) -> usize {
        self.0.borrow_mut().peer_write(buf)
    }

    // The change feed for WebSocket watchers (partition::feed; conn::watch).
    fn watch_changes(&mut self, on: bool) {
        self.0.borrow_mut().partitions.iter_mut().for_each(|p| p.watch_changes(on));
    }

    fn drain_changes(&mut self, sink: &mut dyn FnMut(&crate::partition::feed::Change<'_>)) -> bool {
        self.0.borrow_mut().partitions.iter_mut().fold(false, |lost, p| p.feed.drain(sink) | lost)
    }
}
