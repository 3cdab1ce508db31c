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
//! Invariants: every received datagram is either answered, dropped by the engine (counted there), or
//! dropped for want of a transmit buffer or of room in the tx queue (counted here); a reply that the
//! queue refused is retried once in the same iteration, then dropped and counted, so one stuck queue
//! cannot grow memory or stall receive. Late answers (acknowledgements of durable writes) that the
//! queue refuses wait in a bounded backlog (`LATE_ANSWERS_QUEUED_MAX`) for the next iterations; only
//! when that is full too are they dropped and counted (`tx_queue_full`).

use crate::engine::{Engine, EngineCounters, Outcome};
use crate::wire::{DatagramWriter, Status};
use std::sync::atomic::{AtomicBool, Ordering};
use vigil_pmd::{Batch, Clock, IoCounters, Nanos, PacketIo, Peer, RxDatagram, TxDatagram};

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

/// What a shard runs besides its engine, once per poll iteration.
pub trait ShardService {
    /// Advances to `now` (log I/O, Raft, inbox) and hands each answer that became ready to `emit`.
    /// Returns whether work is in flight that the next iteration should come back for soon.
    fn poll(&mut self, now: Nanos, emit: &mut dyn FnMut(&LateAnswer<'_>)) -> bool;
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

/// Late answers waiting for room in the tx queue, at most.
pub const LATE_ANSWERS_QUEUED_MAX: usize = 2048;

/// One shard over a packet backend.
pub struct Shard<P: PacketIo> {
    id: usize,
    io: P,
    engine: Engine,
    rx: Batch<P::Rx>,
    tx: Batch<P::Tx>,
    /// Late answers waiting for the tx queue (`LATE_ANSWERS_QUEUED_MAX`).
    late: Batch<P::Tx>,
    counters: ShardCounters,
    service: Option<Box<dyn ShardService>>,
    /// The service had work in flight after the last iteration.
    service_busy: bool,
}

impl<P: PacketIo> std::fmt::Debug for Shard<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard").field("id", &self.id).field("counters", &self.counters).finish()
    }
}

impl<P: PacketIo> Shard<P> {
    /// A shard with batches of `burst_size_max`.
    pub fn new(id: usize, io: P, engine: Engine, burst_size_max: usize) -> Self {
        Self {
            id,
            io,
            engine,
            rx: Batch::with_capacity(burst_size_max),
            tx: Batch::with_capacity(burst_size_max),
            late: Batch::with_capacity(LATE_ANSWERS_QUEUED_MAX),
            counters: ShardCounters::default(),
            service: None,
            service_busy: false,
        }
    }

    /// Adds the service run after each burst.
    pub fn with_service(mut self, service: Box<dyn ShardService>) -> Self {
        self.service = Some(service);
        self
    }

    /// One iteration at time `now`; returns how many datagrams it received.
    pub fn poll_once(&mut self, now: Nanos) -> usize {
        self.counters.polls += 1;
        let received = if self.service_busy {
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

    /// Runs the service's step and sends the late answers it hands over. Late answers the tx queue
    /// has no room for wait in `late` for the next iterations instead of being dropped: each one
    /// acknowledges a write that is already durable, and losing it would leave the client unsure.
    fn run_service(&mut self, now: Nanos) {
        let Some(service) = self.service.as_mut() else { return };
        let (io, late, counters) = (&mut self.io, &mut self.late, &mut self.counters);
        send_some(io, late, counters);
        let mut emit = |a: &LateAnswer<'_>| {
            let Some(mut reply) = io.tx_alloc(&a.peer) else {
                counters.tx_no_buffer += 1;
                return;
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
                Outcome::Drop | Outcome::Later => {}
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
