//! The shard loop: one thread, one queue pair, run to completion batch by batch.
//!
//! Each poll iteration reads the clock once, takes a burst of datagrams from the `PacketIo`, runs
//! each through the engine straight into a transmit buffer addressed to its sender (no copy of the
//! request, one write of the answer), and sends the burst of answers. Nothing here blocks, locks or
//! allocates: batches are sized from config at start-up.
//!
//! Invariants: every received datagram is either answered, dropped by the engine (counted there), or
//! dropped for want of a transmit buffer or of room in the tx queue (counted here); a reply that the
//! queue refused is retried once in the same iteration, then dropped and counted, so one stuck queue
//! cannot grow memory or stall receive.

use crate::engine::{Engine, EngineCounters, Outcome};
use std::sync::atomic::{AtomicBool, Ordering};
use vigil_pmd::{Batch, Clock, IoCounters, Nanos, PacketIo, RxDatagram, TxDatagram};

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

/// One shard over a packet backend.
pub struct Shard<P: PacketIo> {
    id: usize,
    io: P,
    engine: Engine,
    rx: Batch<P::Rx>,
    tx: Batch<P::Tx>,
    counters: ShardCounters,
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
            counters: ShardCounters::default(),
        }
    }

    /// One iteration at time `now`; returns how many datagrams it received.
    pub fn poll_once(&mut self, now: Nanos) -> usize {
        self.counters.polls += 1;
        let received = self.io.rx_burst(&mut self.rx);
        if received == 0 {
            self.counters.idle_polls += 1;
            return 0;
        }
        self.counters.rx_datagrams += received as u64;
        for request in self.rx.drain() {
            let Some(mut reply) = self.io.tx_alloc(&request.peer()) else {
                self.counters.tx_no_buffer += 1;
                continue;
            };
            match self.engine.handle_datagram(request.payload(), reply.payload_mut(), now) {
                Outcome::Reply(n) => {
                    reply.set_len(n);
                    // The tx batch has the rx batch's capacity, so it cannot be full here.
                    assert!(self.tx.push(reply).is_ok(), "tx batch sized to the rx burst");
                }
                Outcome::Drop => {}
            }
        }
        self.flush_tx();
        received
    }

    fn flush_tx(&mut self) {
        for _attempt in 0..2 {
            if self.tx.is_empty() {
                return;
            }
            let sent = self.io.tx_burst(&mut self.tx);
            self.counters.tx_datagrams += sent as u64;
        }
        self.counters.tx_queue_full += self.tx.len() as u64;
        self.tx.clear();
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
