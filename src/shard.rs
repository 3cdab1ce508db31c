//! The shard loop: one thread, one queue pair, run to completion batch by batch.
//!
//! Each poll iteration reads the clock once, takes a burst of datagrams from the `PacketIo`, runs
//! each through the engine straight into a transmit buffer addressed to its sender (no copy of the
//! request, one write of the answer), and sends the burst of answers. Nothing here blocks, locks or
//! allocates: batches are sized from config at start-up.
//!
//! After the burst, the shard's service (`ShardService`: its partitions' Raft groups and logs, its
//! cross-shard inbox) runs one step and hands over the answers that became ready (`LateAnswer`:
//! writes whose log entries committed). Late answers for the same client (peer and client id) in
//! one iteration are gathered into one datagram of several frames, up to the buffer's payload
//! area (`gather`), and every gathered datagram is sent at the end of the iteration. While the
//! service has work in flight (log writes to reap), the shard does not let the backend sleep when
//! idle.
//!
//! The loop gives the engine's latency histograms their times (`metrics::requests`): each pass
//! that answered requests at once (the burst, the connections' pass, their second pass after the
//! service step) is recorded with one clock read after it (the burst's is the lease check's read,
//! made anyway), and each late answer with this iteration's clock minus its request's arrival.
//!
//! One transmit buffer per request, none per deferred answer: the reply buffer of a datagram that
//! needed no answer now (its requests all taken over, or dropped) is kept as the shard's spare and
//! the next request's reply goes into it, so a deferred write costs only the buffer its late
//! answer goes out in (less when its answer is gathered with others).
//!
//! A late answer never waits for a transmit buffer: each request taken over was admitted only with
//! a reservation (`reserve::AnswerReservations`), a buffer the shard holds in its reserve
//! (`ShardLimits::answers_reserved_max`, from `net.answers_reserved_max`), and its answer is written
//! into that buffer or joins a datagram already open for its client (its reservation then returns
//! free). A handler that finds no reservation free answers `BUSY` at once. The reserve is topped up
//! from the backend's pool at the start of each iteration.
//!
//! Invariants: every received datagram is either answered, dropped by the engine (counted there), or
//! dropped for want of a transmit buffer or of room in the tx queue (counted here); a reply that the
//! queue refused is retried once in the same iteration, then dropped and counted, so one stuck queue
//! cannot grow memory or stall receive. Late answers that the queue refuses wait in a backlog for the
//! next iterations; buffers in the reserve, in open datagrams and in the backlog never exceed
//! `answers_reserved_max`, the backlog's capacity, so a reserved late answer is never dropped (only
//! an answer nobody reserved for can find the backlog full: counted in `tx_queue_full`). The shard
//! holds at most `answers_reserved_max` buffers for late answers, a burst of replies and one spare.

use crate::conn::{Connections, ReadGuard};
use crate::engine::{Engine, EngineCounters, Outcome};
use crate::peer;
use crate::wire::Status;
use std::sync::atomic::{AtomicBool, Ordering};
use vigil_pmd::{Batch, Clock, IoCounters, Nanos, PacketIo, Peer, RxDatagram, TxDatagram};

pub mod gather;
mod late;
pub mod reserve;

use late::LateAnswers;
pub use reserve::AnswerReservations;

/// An answer given after its request's datagram was handled: one frame, gathered with the other
/// late answers for its client in this iteration.
#[derive(Clone, Copy, Debug)]
pub struct LateAnswer<'a> {
    /// Where it goes.
    pub peer: Peer,
    /// The client id of the request's datagram.
    pub client_id: u64,
    /// The request's opcode.
    pub opcode: u8,
    /// The request's id.
    pub request_id: u64,
    /// Its status.
    pub status: Status,
    /// Its body (empty unless OK).
    pub body: &'a [u8],
    /// When its shard took the request in (the clock of the iteration that received it): its
    /// latency runs from then (`metrics::requests`).
    pub arrived: Nanos,
}

/// Descriptors a shard's idle wait holds without growing (more partitions per shard only grow it
/// once).
const WAIT_FDS_CAPACITY: usize = 16;

/// What a shard runs besides its engine, once per poll iteration.
pub trait ShardService {
    /// Advances to `now` (log I/O, Raft, inbox) and hands each answer that became ready to `emit`.
    /// Returns whether work is in flight that the next iteration should come back for soon.
    fn poll(&mut self, now: Nanos, emit: &mut dyn FnMut(&LateAnswer<'_>)) -> bool;

    /// After `poll` returned true: whether the work in flight waits only on I/O that completes
    /// on descriptors (put in `out`, which the shard gives empty) or on datagrams from the
    /// shard's packet queue (peers' messages); the shard then sleeps on those and its queue
    /// (where its backend sleeps at all, for at most its idle wait) instead of spinning.
    /// Default: false (spin).
    fn wait_fds(&self, _out: &mut Vec<i32>) -> bool {
        false
    }

    /// Receives the shard's reservations (once, when the service is added): every late answer
    /// the service emits must have taken one when its request was taken over. A service that
    /// ignores them gets its late answers sent from the pool when it has a buffer (counted in
    /// `tx_no_buffer` when not).
    fn attach_reservations(&mut self, _reservations: AnswerReservations) {}

    /// Turns the change feed of the shard's partitions on or off (on while changes are wanted:
    /// WebSocket watchers on this shard, or prefix watchers on another; off, applying records
    /// nothing). Default: no feed.
    fn watch_changes(&mut self, _on: bool) {}

    /// Hands the changes applied since the last call to `sink`, in apply order; returns whether
    /// some were lost (a feed past its bound). Default: none.
    fn drain_changes(&mut self, _sink: &mut dyn FnMut(&crate::partition::feed::Change<'_>)) -> bool {
        false
    }

    /// Takes a received peer datagram (Raft messages from another node: `crate::peer`); returns
    /// false when the service has no peers (the engine then drops it, counted). Default: none.
    fn peer_datagram(&mut self, _datagram: &[u8], _now: Nanos) -> bool {
        false
    }

    /// Until when answers made from now on stay valid (the soonest lease end of what the
    /// service reads from). Default: for ever.
    fn answers_valid_until(&self) -> Nanos {
        Nanos(u64::MAX)
    }

    /// Whether the answers made since the iteration's clock was read may still go out at `now`, a
    /// clock read after they were made (a read answered on a lease that ran out in between must
    /// not): the datagram path's check; connections check the same bound (`conn::ReadGuard`).
    fn answers_still_valid(&self, now: Nanos) -> bool {
        now < self.answers_valid_until()
    }

    /// Where the next peer datagram goes, if one waits to be sent. Default: none.
    fn peer_next(&self) -> Option<Peer> {
        None
    }

    /// Writes the next peer datagram (for `peer_next`) into `buf`; returns its length (0: none).
    fn peer_write(&mut self, _buf: &mut [u8]) -> usize {
        0
    }
}

/// Sizes of a shard's batches and reserve, from config.
#[derive(Clone, Copy, Debug)]
pub struct ShardLimits {
    /// Datagrams per rx or tx burst (`net.burst_size_max`).
    pub burst_size_max: usize,
    /// Transmit buffers reserved for late answers, at most (`net.answers_reserved_max`).
    pub answers_reserved_max: usize,
}

impl ShardLimits {
    /// The limits `net` sets.
    pub fn of(net: &crate::config::NetConfig) -> Self {
        Self { burst_size_max: net.burst_size_max, answers_reserved_max: net.answers_reserved_max }
    }
}

/// The shard's own counters (the engine and the backend keep theirs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardCounters {
    /// Poll iterations.
    pub polls: u64,
    /// Iterations that received nothing.
    pub idle_polls: u64,
    /// Datagrams received.
    pub rx_datagrams: u64,
    /// Answers handed to the queue.
    pub tx_datagrams: u64,
    /// Answers dropped: no transmit buffer.
    pub tx_no_buffer: u64,
    /// Answers dropped: the tx queue stayed full.
    pub tx_queue_full: u64,
    /// Late answers sent (writes answered once committed).
    pub late_answers: u64,
    /// Late answers dropped: they did not fit a datagram (never for KV answers).
    pub late_answers_too_large: u64,
    /// Peer datagrams (Raft messages from other nodes) received and taken by the service.
    pub rx_peer_datagrams: u64,
    /// Peer datagrams handed to the queue.
    pub tx_peer_datagrams: u64,
    /// Peer datagrams not sent this iteration: no transmit buffer (they wait in the outbox).
    pub tx_peer_no_buffer: u64,
    /// Answers dropped unsent: a read lease ran out between the iteration's clock and the clock
    /// read after the burst was answered (`ShardService::answers_still_valid`); clients retry.
    pub tx_lease_lapsed: u64,
    /// Datagrams the late answers went out in (fewer than `late_answers` when answers for one
    /// client were gathered).
    pub late_datagrams: u64,
}

/// Everything a shard counted, for the shutdown report and metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct ShardReport {
    /// The shard's index.
    pub shard: usize,
    /// The loop's counters.
    pub shard_counters: ShardCounters,
    /// The engine's counters.
    pub engine: EngineCounters,
    /// The backend's counters.
    pub io: IoCounters,
}

/// Sends the batch: what the queue refuses is retried once, then dropped and counted.
fn flush<P: PacketIo>(io: &mut P, tx: &mut Batch<P::Tx>, counters: &mut ShardCounters) {
    for _attempt in 0..2 {
        if tx.is_empty() {
            return;
        }
        let sent = io.tx_burst(tx);
        counters.tx_datagrams += sent as u64;
    }
    counters.tx_queue_full += tx.len() as u64;
    tx.clear();
}

/// Sends the peer datagrams the service has waiting, a burst at a time; stops at the first
/// iteration without a transmit buffer (the rest wait in the service's bounded outbox; Raft
/// tolerates their delay or loss).
fn send_peer_datagrams<P: PacketIo>(
    io: &mut P,
    tx: &mut Batch<P::Tx>,
    service: &mut dyn ShardService,
    counters: &mut ShardCounters,
) {
    while let Some(peer) = service.peer_next() {
        let Some(mut datagram) = io.tx_alloc(&peer) else {
            counters.tx_peer_no_buffer += 1;
            break;
        };
        let len = service.peer_write(datagram.payload_mut());
        if len == 0 {
            break;
        }
        datagram.set_len(len);
        counters.tx_peer_datagrams += 1;
        if let Err(datagram) = tx.push(datagram) {
            flush(io, tx, counters);
            assert!(tx.push(datagram).is_ok(), "an empty batch takes one");
        }
    }
    flush(io, tx, counters);
}

/// Records the requests the pass just over answered at once (`metrics::requests`): taken in at
/// `now`, answered by `answered_at` (a clock read made after they were answered), else by one read
/// of `recheck` now, made only if the pass answered any (else by `now`: a simulation's time does
/// not move within an iteration).
fn record_answered(
    engine: &mut Engine,
    now: Nanos,
    answered_at: Option<Nanos>,
    recheck: Option<&dyn Fn() -> Nanos>,
) {
    let latencies = engine.latencies_mut();
    if latencies.has_answered() {
        let at = answered_at.or_else(|| recheck.map(|clock| clock())).unwrap_or(now);
        latencies.record_answered(now, at);
    }
}

/// A transmit buffer addressed to `peer`: the spare one if held, else one from the pool.
#[inline]
fn reply_buffer<P: PacketIo>(spare: &mut Option<P::Tx>, io: &mut P, peer: &Peer) -> Option<P::Tx> {
    match spare.take() {
        Some(mut reply) => {
            reply.set_peer(peer);
            Some(reply)
        }
        None => io.tx_alloc(peer),
    }
}

/// One shard over a packet backend.
pub struct Shard<P: PacketIo> {
    id: usize,
    io: P,
    engine: Engine,
    rx: Batch<P::Rx>,
    tx: Batch<P::Tx>,
    /// A transmit buffer taken for a datagram that needed no answer now (all its requests taken
    /// over, or dropped): the next request's reply goes into it, so a deferred request costs no
    /// buffer of its own. At most one, kept across iterations.
    spare: Option<P::Tx>,
    /// The reserve, the datagrams gathered per client and the backlog of late answers.
    late: LateAnswers<P::Tx>,
    counters: ShardCounters,
    service: Option<Box<dyn ShardService>>,
    /// The service had work in flight after the last iteration.
    service_busy: bool,
    /// ... and it waits only on I/O completing on these descriptors and on the packet queue
    /// (`ShardService::wait_fds`).
    wait_fds: Vec<i32>,
    /// ... when this is set.
    service_sleeps: bool,
    /// The shard's TCP connections, if it serves any (`with_connections`).
    conns: Option<Connections>,
    /// The connections had work after the last iteration.
    conns_busy: bool,
    /// The service's change feed is on (`Connections::watching`).
    feed_on: bool,
}

impl<P: PacketIo> std::fmt::Debug for Shard<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard").field("id", &self.id).field("counters", &self.counters).finish()
    }
}

impl<P: PacketIo> Shard<P> {
    /// A shard with batches of `limits.burst_size_max`; its reserve is filled at the first poll.
    pub fn new(id: usize, io: P, engine: Engine, limits: ShardLimits) -> Self {
        assert!(limits.answers_reserved_max > 0, "answers_reserved_max is validated to be at least 1");
        Self {
            id,
            io,
            engine,
            rx: Batch::with_capacity(limits.burst_size_max),
            tx: Batch::with_capacity(limits.burst_size_max),
            spare: None,
            late: LateAnswers::new(limits.answers_reserved_max),
            counters: ShardCounters::default(),
            service: None,
            service_busy: false,
            wait_fds: Vec::with_capacity(WAIT_FDS_CAPACITY),
            service_sleeps: false,
            conns: None,
            conns_busy: false,
            feed_on: false,
        }
    }

    /// Adds the shard's stream connections, serviced every iteration.
    pub fn with_connections(mut self, conns: Connections) -> Self {
        self.conns = Some(conns);
        self
    }

    /// The shard's connections, if any.
    pub fn connections(&self) -> Option<&Connections> {
        self.conns.as_ref()
    }

    /// Adds the service run after each burst, handing it the shard's reservations.
    pub fn with_service(mut self, mut service: Box<dyn ShardService>) -> Self {
        service.attach_reservations(self.late.reservations.clone());
        self.service = Some(service);
        self
    }

    /// The shard's reservations of transmit buffers for late answers.
    pub fn reservations(&self) -> &AnswerReservations {
        &self.late.reservations
    }

    /// One iteration at time `now`; returns how many datagrams it received.
    pub fn poll_once(&mut self, now: Nanos) -> usize {
        self.poll_once_checked(now, None)
    }

    /// One iteration on `clock`: read once at the start, and again after a burst is answered,
    /// before its answers go out (`ShardService::answers_still_valid`).
    pub fn poll_once_on<C: Clock>(&mut self, clock: &C) -> usize {
        self.poll_once_checked(clock.now(), Some(&|| clock.now()))
    }

    fn poll_once_checked(&mut self, now: Nanos, recheck: Option<&dyn Fn() -> Nanos>) -> usize {
        self.counters.polls += 1;
        if self.service.is_some() {
            self.late.refill(&mut self.io);
        }
        let received = self.receive();
        if received == 0 {
            self.counters.idle_polls += 1;
        } else {
            self.answer_burst(received, now, recheck);
        }
        if let Some(conns) = self.conns.as_mut() {
            let guard = read_guard(self.service.as_deref(), recheck);
            self.conns_busy = conns.poll(&mut self.engine, now, &guard);
            record_answered(&mut self.engine, now, None, recheck);
        }
        self.run_service(now, recheck);
        received
    }

    /// Takes a burst from the packet queue, sleeping when idle only where the backend does and
    /// nothing is in flight, and then also woken by the connections' descriptor.
    fn receive(&mut self) -> usize {
        if self.conns_busy {
            return self.io.rx_burst_no_wait(&mut self.rx);
        }
        if self.service_busy && self.service_sleeps {
            return self.io.rx_burst_or_wait(&mut self.rx, &self.wait_fds);
        }
        if self.service_busy {
            return self.io.rx_burst_no_wait(&mut self.rx);
        }
        match self.conns.as_ref().and_then(Connections::wait_fd) {
            Some(fd) if self.io.sleeps_when_idle() => self.io.rx_burst_or_wait(&mut self.rx, &[fd]),
            _ => self.io.rx_burst(&mut self.rx),
        }
    }

    /// Runs the service's step and sends the late answers it hands over, gathered into one
    /// datagram per client, each datagram in a buffer reserved for one of its answers. Datagrams
    /// the tx queue has no room for wait in the backlog for the next iterations instead of being
    /// dropped: each acknowledges writes that are already durable, and losing one would leave
    /// clients unsure.
    fn run_service(&mut self, now: Nanos, recheck: Option<&dyn Fn() -> Nanos>) {
        let Some(service) = self.service.as_mut() else { return };
        let (io, late, counters, conns) = (&mut self.io, &mut self.late, &mut self.counters, &mut self.conns);
        late.send_some(io, counters);
        // The change feed is on from the step after a watcher's upgrade was answered (in this
        // iteration's `conns.poll`), so it misses no change committed after its 101.
        let watching = conns.as_ref().is_some_and(Connections::watching);
        if watching != self.feed_on {
            service.watch_changes(watching);
            self.feed_on = watching;
        }
        let latencies = self.engine.latencies_mut();
        let busy = service.poll(now, &mut |a: &LateAnswer<'_>| {
            // From its arrival to this iteration, which delivers it (`metrics::requests`).
            latencies.record_late(&a.peer, a.opcode, a.arrived, now);
            match (a.peer.as_connection(), conns.as_mut()) {
                // An answer for a connection: no transmit buffer, so its reservation returns free.
                (Some(id), Some(conns)) => {
                    late.reservations.release_taken();
                    counters.late_answers += 1;
                    conns.deliver(id, a);
                }
                (Some(_), None) => late.reservations.release_taken(), // no connections: cannot happen
                (None, _) => late.emit(io, counters, a),
            }
        });
        if let Some(conns) = self.conns.as_mut() {
            // Watchers (here, and prefix watchers on other shards through the hub) get the changes
            // this step applied; the feed is off while nobody watches.
            if self.feed_on {
                let lost = service.drain_changes(&mut |c| conns.publish(c));
                if lost {
                    conns.watchers_lost_changes();
                }
                conns.changes_done();
            }
            // Sessions that got answers write them out and take their next requests.
            let guard = read_guard(Some(service.as_ref()), recheck);
            conns.service(&mut self.engine, now, &guard);
            record_answered(&mut self.engine, now, None, recheck);
        }
        let (io, late, counters) = (&mut self.io, &mut self.late, &mut self.counters);
        late.close_all(io, counters);
        late.send_some(io, counters);
        send_peer_datagrams(io, &mut self.tx, service.as_mut(), counters);
        self.service_busy = busy || late.waiting();
        self.wait_fds.clear();
        self.service_sleeps = false;
        // A backend that never sleeps (DPDK) spins anyway: no need to ask each partition.
        if busy && !late.waiting() && self.io.sleeps_when_idle() {
            self.service_sleeps = service.wait_fds(&mut self.wait_fds);
            if !self.service_sleeps {
                self.wait_fds.clear();
            }
        }
    }

    fn answer_burst(&mut self, received: usize, now: Nanos, recheck: Option<&dyn Fn() -> Nanos>) {
        self.counters.rx_datagrams += received as u64;
        for request in self.rx.drain() {
            if peer::wire::is_peer_datagram(request.payload()) {
                if let Some(service) = self.service.as_mut() {
                    if service.peer_datagram(request.payload(), now) {
                        self.counters.rx_peer_datagrams += 1;
                        continue;
                    }
                }
            }
            let peer = request.peer();
            let Some(mut reply) = reply_buffer(&mut self.spare, &mut self.io, &peer) else {
                self.counters.tx_no_buffer += 1;
                continue;
            };
            match self.engine.handle_datagram(request.payload(), reply.payload_mut(), peer, now) {
                Outcome::Reply(n) => {
                    reply.set_len(n);
                    // The tx batch has the rx batch's capacity, so it cannot be full here.
                    assert!(self.tx.push(reply).is_ok(), "tx batch sized to the rx burst");
                }
                // Nothing to send now: the unused buffer serves the next request (a deferred
                // request takes no buffer; its answer goes out in a reserved one).
                Outcome::Drop | Outcome::Later => self.spare = Some(reply),
            }
        }
        // The clock read after the burst's answers were made: the lease check's, which the
        // latency histograms reuse (`metrics::requests`).
        let mut answered_at = None;
        if let (Some(recheck), Some(service)) = (recheck, self.service.as_ref()) {
            if !self.tx.is_empty() {
                let at = recheck();
                answered_at = Some(at);
                if !service.answers_still_valid(at) {
                    self.counters.tx_lease_lapsed += self.tx.len() as u64;
                    self.tx.clear();
                }
            }
        }
        record_answered(&mut self.engine, now, answered_at, recheck);
        flush(&mut self.io, &mut self.tx, &mut self.counters);
    }

    /// Whether the service had work in flight after the last iteration.
    pub fn service_busy(&self) -> bool {
        self.service_busy
    }

    /// Polls until `stop` is set, reading `clock` once per iteration.
    pub fn run<C: Clock>(&mut self, clock: &C, stop: &AtomicBool) {
        // Checking the flag every iteration costs one relaxed load of a line that stays in cache.
        while !stop.load(Ordering::Relaxed) {
            self.poll_once_on(clock);
        }
    }

    /// What the shard has counted so far.
    pub fn report(&self) -> ShardReport {
        ShardReport {
            shard: self.id,
            shard_counters: self.counters,
            engine: self.engine.counters(),
            io: self.io.counters(),
        }
    }

    /// The engine (for per-opcode counts).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// The check of answers written to connections: the service's soonest lease end, and the clock
/// to read after answering (none in a simulation driven by `poll_once`, whose time does not
/// move within an iteration).
fn read_guard<'a>(
    service: Option<&dyn ShardService>,
    recheck: Option<&'a dyn Fn() -> Nanos>,
) -> ReadGuard<'a> {
    let valid_until = service.map_or(Nanos(u64::MAX), ShardService::answers_valid_until);
    ReadGuard { valid_until, clock: recheck }
}

#[cfg(test)]
mod tests;
