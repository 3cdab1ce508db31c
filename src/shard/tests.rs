//! The shard loop over an in-memory `PacketIo`: answers go to the sender, drops are counted, and
//! under more writes than transmit buffers every committed write is acknowledged (the excess is
//! answered `BUSY` at once).

use super::*;
use crate::dispatch::Dispatcher;
use crate::engine::EngineLimits;
use crate::ops;
use crate::wire::{self, opcode, DatagramWriter, Status};
use std::cell::Cell;
use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::rc::Rc;
use vigil_pmd::mem::{VecRx, VecTx};
use vigil_pmd::Peer;

mod buffers;
mod candles;
mod conn_candles;
mod conns;
mod gathered;
mod latency;
mod overload;

/// A transmit buffer from `MemIo`'s counted pool, given back when dropped (sent or not).
struct PoolTx {
    tx: VecTx,
    free: Rc<Cell<usize>>,
}
impl TxDatagram for PoolTx {
    fn payload_mut(&mut self) -> &mut [u8] {
        self.tx.payload_mut()
    }
    fn set_len(&mut self, len: usize) {
        self.tx.set_len(len)
    }
    fn set_peer(&mut self, peer: &Peer) {
        self.tx.set_peer(peer)
    }
}
impl Drop for PoolTx {
    fn drop(&mut self) {
        self.free.set(self.free.get() + 1);
    }
}

/// A queue pair in memory with a bounded tx queue (`tx_room` datagrams until refilled) and a
/// bounded pool of transmit buffers.
struct MemIo {
    inbound: VecDeque<VecRx>,
    sent: Vec<(Peer, Vec<u8>)>,
    tx_room: usize,
    /// Transmit buffers in the pool.
    buffers: Rc<Cell<usize>>,
    /// How each receive was asked for: `None` plain (or no-wait), `Some(fds)` waiting on `fds`.
    receives: Vec<Option<Vec<i32>>>,
    /// Transmit buffers taken from the pool so far.
    allocs: usize,
}
impl MemIo {
    fn new(tx_room: usize, buffers: usize) -> Self {
        let buffers = Rc::new(Cell::new(buffers));
        Self { inbound: VecDeque::new(), sent: Vec::new(), tx_room, buffers, receives: Vec::new(), allocs: 0 }
    }
}
impl MemIo {
    fn take_inbound(&mut self, batch: &mut Batch<VecRx>) -> usize {
        let mut n = 0;
        while batch.room() > 0 {
            let Some(d) = self.inbound.pop_front() else { break };
            batch.push(d).ok().unwrap();
            n += 1;
        }
        n
    }
}
impl PacketIo for MemIo {
    type Rx = VecRx;
    type Tx = PoolTx;
    fn rx_burst(&mut self, batch: &mut Batch<VecRx>) -> usize {
        self.receives.push(None);
        self.take_inbound(batch)
    }
    fn sleeps_when_idle(&self) -> bool {
        true
    }
    fn rx_burst_or_wait(&mut self, batch: &mut Batch<VecRx>, fds: &[i32]) -> usize {
        self.receives.push(Some(fds.to_vec()));
        self.take_inbound(batch)
    }
    fn tx_alloc(&mut self, peer: &Peer) -> Option<PoolTx> {
        self.buffers.set(self.buffers.get().checked_sub(1)?);
        self.allocs += 1;
        Some(PoolTx { tx: VecTx::new(1472, *peer), free: Rc::clone(&self.buffers) })
    }
    fn tx_burst(&mut self, batch: &mut Batch<PoolTx>) -> usize {
        let n = batch.len().min(self.tx_room);
        self.tx_room -= n;
        for t in batch.consume_front(n) {
            self.sent.push((t.tx.peer, t.tx.bytes().to_vec()));
        }
        n
    }
    fn counters(&self) -> IoCounters {
        IoCounters::default()
    }
}

fn peer(port: u16) -> Peer {
    Peer::from_ip_port(Ipv4Addr::new(10, 0, 0, 9), port)
}

fn ping(id: u64) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    let mut w = DatagramWriter::request(&mut buf, 0).unwrap();
    w.push(opcode::PING, 0, id, b"").unwrap();
    let n = w.finish();
    buf.truncate(n);
    buf
}

/// Transmit buffers reserved for late answers in the tests below that do not set their own.
const RESERVED: usize = 64;

fn shard(io: MemIo, burst: usize) -> Shard<MemIo> {
    let mut d = Dispatcher::new();
    ops::register_all(&mut d).unwrap();
    let limits = ShardLimits { burst_size_max: burst, answers_reserved_max: RESERVED };
    Shard::new(0, io, Engine::new(d, EngineLimits { requests_per_datagram_max: 8 }), limits)
}

#[test]
fn answers_go_back_to_each_sender() {
    let mut io = MemIo::new(100, 100);
    for i in 0..5u16 {
        io.inbound.push_back(VecRx::new(ping(u64::from(i)), peer(1000 + i)));
    }
    let mut s = shard(io, 4);
    assert_eq!(s.poll_once(Nanos(1)), 4);
    assert_eq!(s.poll_once(Nanos(2)), 1);
    assert_eq!(s.poll_once(Nanos(3)), 0);
    assert_eq!(s.io.sent.len(), 5);
    for (i, (p, bytes)) in s.io.sent.iter().enumerate() {
        assert_eq!(p.port, 1000 + i as u16);
        let h = wire::decode_header(bytes).unwrap();
        let f = wire::Frames::new(bytes, h.count).next().unwrap().unwrap();
        assert_eq!((f.status, f.request_id), (Status::Ok as u8, i as u64));
    }
    let c = s.report().shard_counters;
    assert_eq!((c.polls, c.idle_polls, c.rx_datagrams, c.tx_datagrams), (3, 1, 5, 5));
}

#[test]
fn garbage_is_dropped_without_an_answer_and_valid_traffic_flows() {
    let mut io = MemIo::new(100, 100);
    io.inbound.push_back(VecRx::new(vec![1, 2, 3], peer(1)));
    io.inbound.push_back(VecRx::new(ping(7), peer(2)));
    let mut s = shard(io, 8);
    s.poll_once(Nanos(0));
    assert_eq!(s.io.sent.len(), 1);
    assert_eq!(s.io.sent[0].0.port, 2);
    assert_eq!(s.report().engine.dropped_short, 1);
}

#[test]
fn full_tx_queue_and_empty_pool_are_counted_drops() {
    let mut io = MemIo::new(1, 3);
    for i in 0..4 {
        io.inbound.push_back(VecRx::new(ping(i), peer(1)));
    }
    let mut s = shard(io, 8);
    s.poll_once(Nanos(0));
    let c = s.report().shard_counters;
    assert_eq!(c.tx_no_buffer, 1, "four requests, three buffers");
    assert_eq!(c.tx_datagrams, 1, "the queue took one");
    assert_eq!(c.tx_queue_full, 2, "the other two were dropped after a retry");
    assert!(s.tx.is_empty());
}

#[test]
fn run_stops_when_asked() {
    let io = MemIo::new(1, 1);
    let mut s = shard(io, 1);
    let stop = AtomicBool::new(true);
    s.run(&vigil_pmd::MonotonicClock::new(), &stop);
    assert_eq!(s.report().shard_counters.polls, 0);
}

/// Hands out `count` late answers at the first poll, nothing after, each for a client of its
/// own (peer port 7 + request id: none is gathered with another).
struct Burst {
    count: u64,
}
impl ShardService for Burst {
    fn poll(&mut self, _now: Nanos, emit: &mut dyn FnMut(&LateAnswer<'_>)) -> bool {
        for id in 0..std::mem::take(&mut self.count) {
            let a = LateAnswer {
                peer: peer(7 + id as u16),
                client_id: 3,
                opcode: opcode::SET,
                request_id: id,
                status: Status::Ok,
                body: &id.to_le_bytes(),
                arrived: Nanos(0),
            };
            emit(&a);
        }
        false
    }
}

#[test]
fn late_answers_wait_for_a_full_tx_queue_instead_of_being_dropped() {
    let io = MemIo::new(10, 10_000);
    let mut s = shard(io, 4).with_service(Box::new(Reserving::new(500)));
    s.poll_once(Nanos(1));
    assert_eq!(s.io.sent.len(), 10, "the queue took what it had room for");
    assert!(s.service_busy(), "answers waiting keep the shard from idling");
    for t in 2..100 {
        s.io.tx_room = 30;
        s.poll_once(Nanos(t));
    }
    assert_eq!(s.io.sent.len(), 500);
    assert_eq!(s.report().shard_counters.tx_queue_full, 0);
    assert_eq!(s.report().shard_counters.late_answers, 500);
    let mut ids = Vec::new();
    for (p, bytes) in &s.io.sent {
        let h = wire::decode_header(bytes).unwrap();
        assert_eq!((h.client_id, h.count), (3, 1));
        let f = wire::Frames::new(bytes, 1).next().unwrap().unwrap();
        assert_eq!((f.opcode, f.body), (opcode::SET, &f.request_id.to_le_bytes()[..]));
        assert_eq!(*p, peer(7 + f.request_id as u16));
        ids.push(f.request_id);
    }
    ids.sort_unstable();
    assert_eq!(ids, (0..500).collect::<Vec<_>>(), "each answered once");
    assert!(!s.service_busy());
}

#[test]
fn unreserved_late_answers_beyond_the_backlog_are_dropped_and_counted() {
    let io = MemIo::new(0, 10_000);
    let extra = 100;
    let mut s = shard(io, 4).with_service(Box::new(Burst { count: (RESERVED + extra) as u64 }));
    s.poll_once(Nanos(1));
    assert_eq!(s.report().shard_counters.tx_queue_full, extra as u64);
    s.io.tx_room = usize::MAX;
    s.poll_once(Nanos(2));
    assert_eq!(s.io.sent.len(), RESERVED);
}

/// Emits `count` late answers (request ids 0, 1, ...), each once it took a reservation for it:
/// as many per poll as there are reservations free. Each is for a client of its own (peer port
/// 7 + request id), so none is gathered with another and each takes a buffer.
struct Reserving {
    reservations: AnswerReservations,
    count: u64,
    next: u64,
}
impl Reserving {
    fn new(count: u64) -> Self {
        Self { reservations: AnswerReservations::new(), count, next: 0 }
    }
}
impl ShardService for Reserving {
    fn poll(&mut self, _now: Nanos, emit: &mut dyn FnMut(&LateAnswer<'_>)) -> bool {
        while self.next < self.count && self.reservations.try_take() {
            let id = self.next;
            self.next += 1;
            let a = LateAnswer {
                peer: peer(7 + id as u16),
                client_id: 3,
                opcode: opcode::SET,
                request_id: id,
                status: Status::Ok,
                body: &id.to_le_bytes(),
                arrived: Nanos(0),
            };
            emit(&a);
        }
        self.next < self.count
    }
    fn attach_reservations(&mut self, reservations: AnswerReservations) {
        self.reservations = reservations;
    }
}

#[test]
fn reserved_late_answers_use_their_buffers_even_with_the_pool_empty() {
    // The pool holds exactly the reserve: late answers must not need a buffer of their own.
    let io = MemIo::new(0, RESERVED);
    let mut s = shard(io, 4).with_service(Box::new(Reserving::new(1000)));
    s.poll_once(Nanos(1));
    assert_eq!(s.io.buffers.get(), 0, "the reserve took the whole pool");
    assert_eq!(
        s.late.backlog.len(),
        RESERVED,
        "every reservation became a late answer, waiting for the queue"
    );
    assert_eq!(s.report().shard_counters.tx_no_buffer, 0);
    assert_eq!(s.report().shard_counters.tx_queue_full, 0);
    // No reservation is free while the backlog holds every buffer.
    assert_eq!(s.reservations().free(), 0);
    s.io.tx_room = usize::MAX;
    s.poll_once(Nanos(2));
    assert_eq!(s.io.sent.len(), RESERVED);
    for (p, bytes) in &s.io.sent {
        let h = wire::decode_header(bytes).unwrap();
        let f = wire::Frames::new(bytes, h.count).next().unwrap().unwrap();
        assert_eq!(*p, peer(7 + f.request_id as u16), "reserved buffers are addressed when used");
    }
    s.poll_once(Nanos(3));
    assert_eq!(s.reservations().free() + s.reservations().taken(), s.late.reserve.len());
}

/// Always busy; its work waits on descriptor 42 when `device_only`, on itself otherwise.
struct Waiting {
    device_only: bool,
}
impl ShardService for Waiting {
    fn poll(&mut self, _now: Nanos, _emit: &mut dyn FnMut(&LateAnswer<'_>)) -> bool {
        true
    }
    fn wait_fds(&self, out: &mut Vec<i32>) -> bool {
        if self.device_only {
            out.push(42);
        }
        self.device_only
    }
}

#[test]
fn a_service_waiting_only_on_a_device_lets_the_shard_sleep_on_it_instead_of_spinning() {
    let mut s = shard(MemIo::new(10, 100), 4).with_service(Box::new(Waiting { device_only: true }));
    s.poll_once(Nanos(1));
    s.poll_once(Nanos(2));
    assert_eq!(s.io.receives, [None, Some(vec![42])], "the second receive waits on the device too");
    let mut s = shard(MemIo::new(10, 100), 4).with_service(Box::new(Waiting { device_only: false }));
    s.poll_once(Nanos(1));
    s.poll_once(Nanos(2));
    // MemIo's no-wait receive is its plain one (recorded as None): never a wait on descriptors.
    assert_eq!(s.io.receives, [None, None], "work of the service's own never sleeps on descriptors");
}
