//! The shard loop: one thread, one queue pair, run to completion batch by batch.
//!
//! Each poll iteration reads the clock once, takes a burst of datagrams from the `PacketIo`, runs
//! each through the engine straight into a transmit buffer addressed to its sender (no copy of the
//! request, one write of the answer), and sends the burst of answers. Nothing here blocks, locks or
//! allocates: batches are sized from config at start-up.
//!
//! After the burst, the shard's service (`ShardService`: its partitions' Raft groups and logs, its
//! cross-shard inbox) runs one step and hands over the answers that became ready (`LateAnswer`:
//! writes whose log entries committed), each sent in a datagram of its own to the request's sender.
//! While the service has work in flight (log writes to reap), the shard does not let the backend
//! sleep when idle.
//!
//! A late answer never waits for a transmit buffer: each request taken over was admitted only with
//! a reservation (`reserve::AnswerReservations`), a buffer the shard holds in its reserve
//! (`ShardLimits::answers_reserved_max`, from `net.answers_reserved_max`), and its answer is written
//! into that buffer. A handler that finds no reservation free answers `BUSY` at once. The reserve is
//! topped up from the backend's pool at the start of each iteration, first with the reply buffers
//! of datagrams that needed no answer now.
//!
//! Invariants: every received datagram is either answered, dropped by the engine (counted there), or
//! dropped for want of a transmit buffer or of room in the tx queue (counted here); a reply that the
//! queue refused is retried once in the same iteration, then dropped and counted, so one stuck queue
//! cannot grow memory or stall receive. Late answers that the queue refuses wait in a backlog for the
//! next iterations; buffers in the reserve plus late answers waiting never exceed
//! `answers_reserved_max`, the backlog's capacity, so a reserved late answer is never dropped (only
//! an answer nobody reserved for can find the backlog full: counted in `tx_queue_full`).

use crate::engine::{Engine, EngineCounters, Outcome};
use crate::wire::{DatagramWriter, Status};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use vigil_pmd::{Batch, Clock, IoCounters, Nanos, PacketIo, Peer, RxDatagram, TxDatagram};

pub mod reserve;

pub use reserve::AnswerReservations;

/// An answer given after its request's datagram was handled: one frame, sent in its own datagram.
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
}

/// Descriptors a shard's idle wait holds without growing (more partitions per shard only grow it
/// once).
const WAIT_FDS_CAPACITY: usize = 16;

/// What a shard runs besides its engine, once per poll iteration.
pub trait ShardService {
    /// Advances to `now` (log I/O, Raft, inbox) and hands each answer that became ready to `emit`.
    /// Returns whether work is in flight that the next iteration should come back for soon.
    fn poll(&mut self, now: Nanos, emit: &mut dyn FnMut(&LateAnswer<'_>)) -> bool;

    /// After `poll` returned true: when the work in flight waits only on I/O that completes on
    /// descriptors, puts them in `out` (which the shard gives empty); the shard then sleeps on
    /// them and its packet queue (where its backend sleeps at all) instead of spinning. Default:
    /// none (spin).
    fn wait_fds(&self, _out: &mut Vec<i32>) {}

    /// Receives the shard's reservations (once, when the service is added): every late answer
    /// the service emits must have taken one when its request was taken over. A service that
    /// ignores them gets its late answers sent from the pool when it has a buffer (counted in
    /// `tx_no_buffer` when not).
    fn attach_reservations(&mut self, _reservations: AnswerReservations) {}
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

/// Sends what the tx queue takes from the front of `late`; the rest waits for the next call.
fn send_some<P: PacketIo>(io: &mut P, late: &mut Batch<P::Tx>, counters: &mut ShardCounters) {
    if !late.is_empty() {
        counters.tx_datagrams += io.tx_burst(late) as u64;
    }
}

/// One shard over a packet backend.
pub struct Shard<P: PacketIo> {
    id: usize,
    io: P,
    engine: Engine,
    rx: Batch<P::Rx>,
    tx: Batch<P::Tx>,
    /// Late answers waiting for the tx queue; capacity `answers_reserved_max`.
    late: Batch<P::Tx>,
    /// Transmit buffers held for late answers (`reserve.len() + late.len() <=
    /// answers_reserved_max`); `reservations` counts them.
    reserve: Vec<P::Tx>,
    reservations: AnswerReservations,
    answers_reserved_max: usize,
    counters: ShardCounters,
    service: Option<Box<dyn ShardService>>,
    /// The service had work in flight after the last iteration.
    service_busy: bool,
    /// ... and, when not empty, it waits only on I/O completing on these descriptors
    /// (`ShardService::wait_fds`).
    wait_fds: Vec<i32>,
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
            late: Batch::with_capacity(limits.answers_reserved_max),
            reserve: Vec::with_capacity(limits.answers_reserved_max),
            reservations: AnswerReservations::new(),
            answers_reserved_max: limits.answers_reserved_max,
            counters: ShardCounters::default(),
            service: None,
            service_busy: false,
            wait_fds: Vec::with_capacity(WAIT_FDS_CAPACITY),
        }
    }

    /// Adds the service run after each burst, handing it the shard's reservations.
    pub fn with_service(mut self, mut service: Box<dyn ShardService>) -> Self {
        service.attach_reservations(self.reservations.clone());
        self.service = Some(service);
        self
    }

    /// The shard's reservations of transmit buffers for late answers.
    pub fn reservations(&self) -> &AnswerReservations {
        &self.reservations
    }

    /// Whether the reserve and the late answers waiting leave room for another buffer.
    #[inline]
    fn reserve_has_room(&self) -> bool {
        self.reserve.len() + self.late.len() < self.answers_reserved_max
    }

    /// Tops the reserve up from the pool. The pool is sized for it (config validation), so this
    /// stops short only while the pool is briefly empty; the next iteration tries again.
    fn refill_reserve(&mut self) {
        let nowhere = Peer::from_ip_port(Ipv4Addr::UNSPECIFIED, 0);
        while self.reserve_has_room() {
            let Some(buf) = self.io.tx_alloc(&nowhere) else { return };
            self.reserve.push(buf);
            self.reservations.add_free();
        }
    }

    /// One iteration at time `now`; returns how many datagrams it received.
    pub fn poll_once(&mut self, now: Nanos) -> usize {
        self.counters.polls += 1;
        if self.service.is_some() {
            self.refill_reserve();
        }
        let received = if self.service_busy && !self.wait_fds.is_empty() {
            self.io.rx_burst_or_wait(&mut self.rx, &self.wait_fds)
        } else if self.service_busy {
            self.io.rx_burst_no_wait(&mut self.rx)
        } else {
            self.io.rx_burst(&mut self.rx)
        };
        if received == 0 {
            self.counters.idle_polls += 1;
        } else {
            self.answer_burst(received, now);
        }
        self.run_service(now);
        received
    }

    /// Runs the service's step and sends the late answers it hands over, each in the buffer
    /// reserved for it. Late answers the tx queue has no room for wait in `late` for the next
    /// iterations instead of being dropped: each one acknowledges a write that is already durable,
    /// and losing it would leave the client unsure.
    fn run_service(&mut self, now: Nanos) {
        let Some(service) = self.service.as_mut() else { return };
        let (io, late, counters) = (&mut self.io, &mut self.late, &mut self.counters);
        let (reserve, reservations) = (&mut self.reserve, &self.reservations);
        send_some(io, late, counters);
        let mut emit = |a: &LateAnswer<'_>| {
            let mut reply = if reservations.use_taken() {
                let mut reply = reserve.pop().expect("every reservation taken is a buffer in the reserve");
                reply.set_peer(&a.peer);
                reply
            } else {
                let Some(reply) = io.tx_alloc(&a.peer) else {
                    counters.tx_no_buffer += 1;
                    return;
                };
                reply
            };
            let mut w =
                DatagramWriter::response(reply.payload_mut(), a.client_id).expect("room for a header");
            if w.push(a.opcode, a.status as u8, a.request_id, a.body).is_err() {
                counters.late_answers_too_large += 1;
                return;
            }
            let len = w.finish();
            reply.set_len(len);
            counters.late_answers += 1;
            if let Err(reply) = late.push(reply) {
                // Only an answer nobody reserved for gets here: reserved ones fit by construction.
                send_some(io, late, counters);
                if late.push(reply).is_err() {
                    // The queue took nothing and the backlog is full: the client will retry.
                    counters.tx_queue_full += 1;
                }
            }
        };
        let busy = service.poll(now, &mut emit);
        send_some(&mut self.io, &mut self.late, &mut self.counters);
        self.service_busy = busy || !self.late.is_empty();
        self.wait_fds.clear();
        // A backend that never sleeps (DPDK) spins anyway: no need to ask each partition.
        if busy && self.late.is_empty() && self.io.sleeps_when_idle() {
            service.wait_fds(&mut self.wait_fds);
        }
    }

    fn answer_burst(&mut self, received: usize, now: Nanos) {
        self.counters.rx_datagrams += received as u64;
        for request in self.rx.drain() {
            let Some(mut reply) = self.io.tx_alloc(&request.peer()) else {
                self.counters.tx_no_buffer += 1;
                continue;
            };
            match self.engine.handle_datagram(request.payload(), reply.payload_mut(), request.peer(), now) {
                Outcome::Reply(n) => {
                    reply.set_len(n);
                    // The tx batch has the rx batch's capacity, so it cannot be full here.
                    assert!(self.tx.push(reply).is_ok(), "tx batch sized to the rx burst");
                }
                // Nothing to send now: the unused buffer refills the reserve (a deferred request
                // takes one buffer, not two).
                Outcome::Drop | Outcome::Later => {
                    let room = self.reserve.len() + self.late.len() < self.answers_reserved_max;
                    if self.service.is_some() && room {
                        self.reserve.push(reply);
                        self.reservations.add_free();
                    }
                }
            }
        }
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
            self.poll_once(clock.now());
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

#[cfg(test)]
mod tests;
