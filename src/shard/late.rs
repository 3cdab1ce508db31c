//! The way out for late answers: the reserve of transmit buffers, the datagrams being gathered
//! per client, and the backlog waiting for the tx queue.
//!
//! A late answer joins the datagram open for its client in this iteration (`gather`), or opens
//! one in a buffer taken from the reserve (a request taken over holds a reservation for it), or,
//! when nobody reserved for it, in a buffer from the pool. An answer that joins an open datagram
//! needs no buffer of its own: its reservation returns free and its buffer stays in the reserve.
//! Closed datagrams wait in the backlog until the tx queue takes them.
//!
//! Invariants: `reserve.len() + gather.len() + backlog.len() <= max` (`answers_reserved_max`), the
//! backlog's capacity, so a datagram holding a reserved buffer always finds room in the backlog and
//! a reserved answer is never dropped; `reservations.free() + reservations.taken() ==
//! reserve.len()`; every answer is sent or counted (`tx_no_buffer`, `tx_queue_full`,
//! `late_answers_too_large`).

use super::gather::{Appended, Closed, Gather};
use super::{AnswerReservations, LateAnswer, ShardCounters};
use std::net::Ipv4Addr;
use vigil_pmd::{Batch, PacketIo, Peer, TxDatagram};

/// A shard's late-answer buffers.
#[derive(Debug)]
pub(super) struct LateAnswers<T> {
    /// Datagrams of late answers waiting for the tx queue; capacity `max`.
    pub(super) backlog: Batch<T>,
    /// Transmit buffers held for late answers; `reservations` counts them.
    pub(super) reserve: Vec<T>,
    /// Datagrams being filled in this iteration, one per client.
    pub(super) gather: Gather<T>,
    pub(super) reservations: AnswerReservations,
    max: usize,
}

impl<T: TxDatagram> LateAnswers<T> {
    /// Room for `max` buffers (`answers_reserved_max`), allocated once.
    pub(super) fn new(max: usize) -> Self {
        Self {
            backlog: Batch::with_capacity(max),
            reserve: Vec::with_capacity(max),
            gather: Gather::new(),
            reservations: AnswerReservations::new(),
            max,
        }
    }

    /// Whether the reserve, the open datagrams and the backlog leave room for another buffer.
    #[inline]
    fn has_room(&self) -> bool {
        self.reserve.len() + self.gather.len() + self.backlog.len() < self.max
    }

    /// Whether answers wait for the tx queue.
    pub(super) fn waiting(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Tops the reserve up from the pool. The pool is sized for it (config validation), so this
    /// stops short only while the pool is briefly empty; the next iteration tries again.
    pub(super) fn refill<P: PacketIo<Tx = T>>(&mut self, io: &mut P) {
        let nowhere = Peer::from_ip_port(Ipv4Addr::UNSPECIFIED, 0);
        while self.has_room() {
            let Some(buf) = io.tx_alloc(&nowhere) else { return };
            self.reserve.push(buf);
            self.reservations.add_free();
        }
    }

    /// Sends what the tx queue takes from the front of the backlog; the rest waits.
    pub(super) fn send_some<P: PacketIo<Tx = T>>(&mut self, io: &mut P, counters: &mut ShardCounters) {
        if !self.backlog.is_empty() {
            counters.tx_datagrams += io.tx_burst(&mut self.backlog) as u64;
        }
    }

    /// Adds one late answer: to its client's open datagram, or to a new one.
    pub(super) fn emit<P: PacketIo<Tx = T>>(
        &mut self,
        io: &mut P,
        counters: &mut ShardCounters,
        a: &LateAnswer<'_>,
    ) {
        match self.gather.append(a) {
            Appended::Joined => {
                // No buffer of its own: a reservation taken for it returns free.
                self.reservations.release_taken();
                counters.late_answers += 1;
                return;
            }
            Appended::Full(closed) => self.backlog_push(io, counters, closed),
            Appended::NoneOpen => {}
        }
        let reserved = self.reservations.use_taken();
        let tx = if reserved {
            let mut tx = self.reserve.pop().expect("every reservation taken is a buffer in the reserve");
            tx.set_peer(&a.peer);
            tx
        } else {
            let Some(tx) = io.tx_alloc(&a.peer) else {
                counters.tx_no_buffer += 1;
                return;
            };
            tx
        };
        match self.gather.open(tx, a) {
            Ok(evicted) => {
                counters.late_answers += 1;
                if let Some(closed) = evicted {
                    self.backlog_push(io, counters, closed);
                }
            }
            Err(tx) => {
                counters.late_answers_too_large += 1;
                if reserved {
                    // The buffer goes back to the reserve, free for another request.
                    self.reserve.push(tx);
                    self.reservations.add_free();
                }
            }
        }
    }

    /// Closes every open datagram into the backlog (end of the iteration).
    pub(super) fn close_all<P: PacketIo<Tx = T>>(&mut self, io: &mut P, counters: &mut ShardCounters) {
        let Self { gather, backlog, .. } = self;
        for closed in gather.close_all() {
            backlog_push(backlog, io, counters, closed);
        }
    }

    fn backlog_push<P: PacketIo<Tx = T>>(
        &mut self,
        io: &mut P,
        counters: &mut ShardCounters,
        closed: Closed<T>,
    ) {
        backlog_push(&mut self.backlog, io, counters, closed);
    }
}

/// Puts a closed datagram in the backlog. One holding a reserved buffer always fits (the invariant
/// above); one from the pool may find the backlog full: the queue is offered the front first, then
/// its answers are dropped and counted (the clients will retry).
fn backlog_push<P: PacketIo>(
    backlog: &mut Batch<P::Tx>,
    io: &mut P,
    counters: &mut ShardCounters,
    closed: Closed<P::Tx>,
) {
    counters.late_datagrams += 1;
    let Err(tx) = backlog.push(closed.tx) else { return };
    counters.tx_datagrams += io.tx_burst(backlog) as u64;
    if backlog.push(tx).is_err() {
        counters.tx_queue_full += u64::from(closed.frames);
    }
}
