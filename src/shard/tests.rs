//! The shard loop over an in-memory `PacketIo`: answers go to the sender, drops are counted.

use super::*;
use crate::dispatch::Dispatcher;
use crate::engine::EngineLimits;
use crate::ops;
use crate::wire::{self, opcode, DatagramWriter, Status};
use std::collections::VecDeque;
use std::net::Ipv4Addr;
use vigil_pmd::mem::{VecRx, VecTx};
use vigil_pmd::Peer;

/// A queue pair in memory with a bounded tx queue and a bounded buffer count.
#[derive(Default)]
struct MemIo {
    inbound: VecDeque<VecRx>,
    sent: Vec<(Peer, Vec<u8>)>,
    tx_room: usize,
    buffers_left: usize,
}
impl PacketIo for MemIo {
    type Rx = VecRx;
    type Tx = VecTx;
    fn rx_burst(&mut self, batch: &mut Batch<VecRx>) -> usize {
        let mut n = 0;
        while batch.room() > 0 {
            let Some(d) = self.inbound.pop_front() else { break };
            batch.push(d).ok().unwrap();
            n += 1;
        }
        n
    }
    fn tx_alloc(&mut self, peer: &Peer) -> Option<VecTx> {
        self.buffers_left = self.buffers_left.checked_sub(1)?;
        Some(VecTx::new(1472, *peer))
    }
    fn tx_burst(&mut self, batch: &mut Batch<VecTx>) -> usize {
        let n = batch.len().min(self.tx_room);
        self.tx_room -= n;
        for t in batch.consume_front(n) {
            self.sent.push((t.peer, t.bytes().to_vec()));
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

fn shard(io: MemIo, burst: usize) -> Shard<MemIo> {
    let mut d = Dispatcher::new();
    ops::register_all(&mut d).unwrap();
    Shard::new(0, io, Engine::new(d, EngineLimits { requests_per_datagram_max: 8 }), burst)
}

#[test]
fn answers_go_back_to_each_sender() {
    let mut io = MemIo { tx_room: 100, buffers_left: 100, ..Default::default() };
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
    let mut io = MemIo { tx_room: 100, buffers_left: 100, ..Default::default() };
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
    let mut io = MemIo { tx_room: 1, buffers_left: 3, ..Default::default() };
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
    let io = MemIo { tx_room: 1, buffers_left: 1, ..Default::default() };
    let mut s = shard(io, 1);
    let stop = AtomicBool::new(true);
    s.run(&vigil_pmd::MonotonicClock::new(), &stop);
    assert_eq!(s.report().shard_counters.polls, 0);
}

/// Hands out `count` late answers at the first poll, nothing after.
struct Burst {
    count: u64,
}
impl ShardService for Burst {
    fn poll(&mut self, _now: Nanos, emit: &mut dyn FnMut(&LateAnswer<'_>)) -> bool {
        for id in 0..std::mem::take(&mut self.count) {
            let a = LateAnswer {
                peer: peer(7),
                client_id: 3,
                opcode: opcode::SET,
                request_id: id,
                status: Status::Ok,
                body: &id.to_le_bytes(),
            };
            emit(&a);
        }
        false
    }
}

#[test]
fn late_answers_wait_for_a_full_tx_queue_instead_of_being_dropped() {
    let io = MemIo { tx_room: 10, buffers_left: 10_000, ..Default::default() };
    let mut s = shard(io, 4).with_service(Box::new(Burst { count: 500 }));
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
    for (i, (p, bytes)) in s.io.sent.iter().enumerate() {
        assert_eq!(*p, peer(7));
        let h = wire::decode_header(bytes).unwrap();
        assert_eq!((h.client_id, h.count), (3, 1));
        let f = wire::Frames::new(bytes, 1).next().unwrap().unwrap();
        assert_eq!((f.opcode, f.request_id, f.body), (opcode::SET, i as u64, &(i as u64).to_le_bytes()[..]));
    }
    assert!(!s.service_busy());
}

#[test]
fn late_answers_beyond_the_backlog_are_dropped_and_counted() {
    let io = MemIo { tx_room: 0, buffers_left: 10_000, ..Default::default() };
    let extra = 100;
    let mut s =
        shard(io, 4).with_service(Box::new(Burst { count: (LATE_ANSWERS_QUEUED_MAX + extra) as u64 }));
    s.poll_once(Nanos(1));
    assert_eq!(s.report().shard_counters.tx_queue_full, extra as u64);
    s.io.tx_room = usize::MAX;
    s.poll_once(Nanos(2));
    assert_eq!(s.io.sent.len(), LATE_ANSWERS_QUEUED_MAX);
}
