//! The request latency histograms through the shard loop (`metrics::requests`), on a clock that
//! moves a fixed step at each read: requests answered in a pass count from their iteration's clock
//! to the one read after the pass (the datagram burst's being the lease check's read, none of its
//! own), late answers (a durable write, a request forwarded to the shard owning its key) from their
//! iteration to the one that delivers them, on the shard that took the request in, under the
//! protocol it came over; an idle iteration reads the clock once, as before.

use super::conns::node_with;
use super::overload::node;
use super::{peer, ping, shard, MemIo};
use crate::conn::protocol_tag;
use crate::inbox::Placement;
use crate::kv::protocol::{encode_write_body, request_body_len};
use crate::kv::Op;
use crate::metrics::{Latency, Protocol};
use crate::shard::Shard;
use crate::wire::{opcode, DatagramWriter};
use std::cell::Cell;
use vigil_pmd::mem::VecRx;
use vigil_pmd::sim::SimStreams;
use vigil_pmd::{Clock, Nanos};

/// Nanoseconds the clock moves at each read.
const STEP: u64 = 250_000;

/// A clock that moves `STEP` at each read and counts its reads.
struct SteppingClock {
    next: Cell<u64>,
    reads: Cell<u64>,
}

impl SteppingClock {
    fn new() -> Self {
        Self { next: Cell::new(1_000_000_000), reads: Cell::new(0) }
    }

    /// What the next read gives (the `now` of an iteration about to start).
    fn peek(&self) -> u64 {
        self.next.get()
    }
}

impl Clock for SteppingClock {
    fn now(&self) -> Nanos {
        let t = self.next.get();
        self.next.set(t + STEP);
        self.reads.set(self.reads.get() + 1);
        Nanos(t)
    }
}

fn histogram<P: vigil_pmd::PacketIo>(s: &Shard<P>, protocol: Protocol, op: u8) -> (u64, u64) {
    let l: &Latency = s.engine().latencies().get(protocol, op).expect("a registered opcode");
    (l.count(), l.sum_ns())
}

/// A datagram of one SET of `key`, request id `id`.
fn set(key: &[u8], id: u64) -> Vec<u8> {
    let op = Op::Set { key, value: b"v" };
    let mut body = vec![0; request_body_len(&op)];
    encode_write_body(&op, &mut body).unwrap();
    let mut buf = vec![0u8; 256];
    let mut w = DatagramWriter::request(&mut buf, 9).unwrap();
    w.push(opcode::SET, 0, id, &body).unwrap();
    let n = w.finish();
    buf.truncate(n);
    buf
}

#[test]
fn a_burst_counts_each_request_to_one_clock_read_after_its_answers() {
    let mut io = MemIo::new(100, 100);
    for i in 0..5 {
        io.inbound.push_back(VecRx::new(ping(i), peer(1)));
    }
    let mut s = shard(io, 8);
    let clock = SteppingClock::new();
    assert_eq!(s.poll_once_on(&clock), 5);
    assert_eq!(clock.reads.get(), 2, "the iteration's read and one after the burst");
    assert_eq!(histogram(&s, Protocol::Udp, opcode::PING), (5, 5 * STEP));
    assert_eq!(s.poll_once_on(&clock), 0);
    assert_eq!(clock.reads.get(), 3, "an idle iteration reads the clock once");
    assert_eq!(histogram(&s, Protocol::Udp, opcode::PING), (5, 5 * STEP));
}

#[test]
fn with_a_service_the_burst_reuses_the_lease_check_s_read() {
    let mut n = node(1, 64);
    for i in 0..3 {
        n.shards[0].io.inbound.push_back(VecRx::new(ping(i), peer(1)));
    }
    let clock = SteppingClock::new();
    n.shards[0].poll_once_on(&clock);
    assert_eq!(clock.reads.get(), 2, "the iteration's read and the lease check's, none more");
    assert_eq!(histogram(&n.shards[0], Protocol::Udp, opcode::PING), (3, 3 * STEP));
}

/// Polls every shard of `shards` on `clock` until shard 0 sent something; returns the `now` of
/// the iteration of shard 0 that sent it.
fn poll_until_shard_0_sends(shards: &mut [Shard<MemIo>], clock: &SteppingClock) -> u64 {
    for _ in 0..10_000 {
        for (i, s) in shards.iter_mut().enumerate() {
            let now = clock.peek();
            s.poll_once_on(clock);
            if i == 0 && !s.io.sent.is_empty() {
                return now;
            }
        }
    }
    panic!("no answer");
}

#[test]
fn a_durable_write_counts_from_its_iteration_to_the_one_that_answers_it() {
    let mut n = node(1, 64);
    let clock = SteppingClock::new();
    n.shards[0].io.inbound.push_back(VecRx::new(set(b"k", 1), peer(5)));
    let arrived = clock.peek();
    let answered = poll_until_shard_0_sends(&mut n.shards, &clock);
    assert!(answered > arrived, "a durable write is answered in a later iteration");
    assert_eq!(histogram(&n.shards[0], Protocol::Udp, opcode::SET), (1, answered - arrived));
}

/// A key of the two-shard node that shard `shard` owns.
fn key_on_shard(shard: usize) -> String {
    let placement = Placement::new(2, 2).unwrap();
    let owner = |k: &String| usize::from(placement.owner(placement.partition_of(k.as_bytes())));
    (0..).map(|i| format!("key-{i}")).find(|k| owner(k) == shard).unwrap()
}

#[test]
fn a_forwarded_request_counts_once_on_the_shard_that_took_it_in() {
    let mut n = node(2, 64);
    let key = key_on_shard(1);
    let clock = SteppingClock::new();
    n.shards[0].io.inbound.push_back(VecRx::new(set(key.as_bytes(), 1), peer(5)));
    let arrived = clock.peek();
    let answered = poll_until_shard_0_sends(&mut n.shards, &clock);
    assert_eq!(n.kvs[0].borrow().counters().forwarded, 1);
    assert_eq!(histogram(&n.shards[0], Protocol::Udp, opcode::SET), (1, answered - arrived));
    for protocol in Protocol::ALL {
        assert_eq!(histogram(&n.shards[1], protocol, opcode::SET).0, 0, "the owner counts nothing");
    }
}

#[test]
fn connections_count_under_their_protocol() {
    let streams = SimStreams::new(4096, 4096);
    let mut n = node_with(&streams);
    let clock = SteppingClock::new();
    let resp = streams.open(protocol_tag::RESP);
    let binary = streams.open(protocol_tag::BINARY);
    // A key of shard 0's: neither request is forwarded.
    let key = key_on_shard(0);
    streams.client_send(resp, format!("GET {key}\r\nSET {key} 1\r\n").as_bytes());
    let datagram = ping(7);
    let mut framed = (datagram.len() as u32).to_le_bytes().to_vec();
    framed.extend_from_slice(&datagram);
    streams.client_send(binary, &framed);
    let arrived = clock.peek();
    let mut answered = None;
    for _ in 0..10_000 {
        let now = clock.peek();
        for s in &mut n.shards {
            s.poll_once_on(&clock);
        }
        if streams.client_take(resp).ends_with(b"+OK\r\n") {
            answered = Some(now);
            break;
        }
    }
    let answered = answered.expect("the SET was answered");
    let s = &n.shards[0];
    // The GET and the PING were answered in the first iteration's pass over the connections: one
    // read after it.
    assert_eq!(histogram(s, Protocol::Resp, opcode::GET), (1, STEP));
    assert_eq!(histogram(s, Protocol::Tcp, opcode::PING), (1, STEP));
    assert_eq!(histogram(s, Protocol::Resp, opcode::SET), (1, answered - arrived));
    assert_eq!(histogram(s, Protocol::Udp, opcode::GET).0, 0);
    let snapshot = s.engine().latencies().snapshot();
    let labels: Vec<(&str, &str)> = snapshot.iter().map(|r| (r.protocol.name(), r.name)).collect();
    assert_eq!(labels, [("tcp", "ping"), ("resp", "kv.get"), ("resp", "kv.set")], "only what counted");
}
