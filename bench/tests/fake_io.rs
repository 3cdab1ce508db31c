//! The generator loop against an in-memory `PacketIo` on a virtual clock: deterministic checks of
//! the schedule, the accounting and coordinated omission, with no network and no real time.
//!
//! The fake server answers each request datagram `delay` after it was sent (or at the end of a
//! stall window), can drop every n-th datagram, and shares the virtual clock with the generator;
//! the clock advances a fixed step at each reading, with an optional one-off jump (the generator
//! thread "descheduled").

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use vigil::wire::{self, DatagramWriter, Frames};
use vigil_bench::report::Summary;
use vigil_bench::run::{run, LoadSpec, Op, RunOutcome};
use vigil_pmd::{Batch, Clock, IoCounters, Nanos, PacketIo, Peer, RxDatagram, TxDatagram};

const MS: u64 = 1_000_000;

#[derive(Clone)]
struct FakeClock {
    now: Rc<Cell<u64>>,
    step: u64,
    jump_at: u64,
    jump: Rc<Cell<u64>>,
}

impl FakeClock {
    fn new(step: u64) -> Self {
        Self { now: Rc::new(Cell::new(1_000)), step, jump_at: u64::MAX, jump: Rc::new(Cell::new(0)) }
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Nanos {
        let mut t = self.now.get() + self.step;
        if t >= self.jump_at && self.jump.get() > 0 {
            t += self.jump.replace(0);
        }
        self.now.set(t);
        Nanos(t)
    }
}

struct Rx(Vec<u8>);
impl RxDatagram for Rx {
    fn payload(&self) -> &[u8] {
        &self.0
    }
    fn peer(&self) -> Peer {
        Peer::from_ip_port([127, 0, 0, 1].into(), 9000)
    }
}

struct Tx(Vec<u8>, usize);
impl TxDatagram for Tx {
    fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
    fn set_len(&mut self, len: usize) {
        assert!(len <= self.0.len());
        self.1 = len;
    }
}

struct FakeServer {
    clock: FakeClock,
    delay: u64,
    /// Answers to datagrams arriving in [start, end) are held until `end`.
    stall: Option<(u64, u64)>,
    drop_every: u64,
    seen: u64,
    in_flight: RefCell<VecDeque<(u64, Vec<u8>)>>,
    counters: IoCounters,
}

impl FakeServer {
    fn new(clock: &FakeClock, delay: u64) -> Self {
        Self {
            clock: clock.clone(),
            delay,
            stall: None,
            drop_every: 0,
            seen: 0,
            in_flight: RefCell::new(VecDeque::new()),
            counters: IoCounters::default(),
        }
    }

    fn answer(req: &[u8]) -> Vec<u8> {
        let h = wire::decode_header(req).unwrap();
        assert!(!h.is_response());
        let mut out = vec![0u8; 2048];
        let mut w = DatagramWriter::response(&mut out, h.client_id).unwrap();
        for f in Frames::new(req, h.count) {
            let f = f.unwrap();
            w.push(f.opcode, 0, f.request_id, f.body).unwrap();
        }
        let n = w.finish();
        out.truncate(n);
        out
    }
}

impl PacketIo for FakeServer {
    type Rx = Rx;
    type Tx = Tx;

    fn rx_burst(&mut self, batch: &mut Batch<Rx>) -> usize {
        let now = self.clock.now.get();
        let mut q = self.in_flight.borrow_mut();
        let mut n = 0;
        while batch.room() > 0 && q.front().is_some_and(|(t, _)| *t <= now) {
            let (_, d) = q.pop_front().unwrap();
            assert!(batch.push(Rx(d)).is_ok());
            n += 1;
        }
        self.counters.rx_datagrams += n as u64;
        n
    }

    fn tx_alloc(&mut self, _peer: &Peer) -> Option<Tx> {
        Some(Tx(vec![0u8; 1472], 0))
    }

    fn tx_burst(&mut self, batch: &mut Batch<Tx>) -> usize {
        let now = self.clock.now.get();
        let n = batch.len();
        for tx in batch.drain() {
            self.seen += 1;
            self.counters.tx_datagrams += 1;
            if self.drop_every > 0 && self.seen.is_multiple_of(self.drop_every) {
                continue;
            }
            let mut at = now + self.delay;
            if let Some((s, e)) = self.stall {
                if now >= s && now < e {
                    at = at.max(e);
                }
            }
            let mut q = self.in_flight.borrow_mut();
            // Keep delivery order by time (stalled answers go out together at the end).
            let pos = q.iter().position(|(t, _)| *t > at).unwrap_or(q.len());
            q.insert(pos, (at, Self::answer(&tx.0[..tx.1])));
        }
        n
    }

    fn counters(&self) -> IoCounters {
        self.counters
    }
}

fn spec(rate: u64, duration_ms: u64, warmup_ms: u64, batch: u32) -> LoadSpec {
    LoadSpec {
        rate,
        duration: Duration::from_millis(duration_ms),
        warmup: Duration::from_millis(warmup_ms),
        op: Op::Echo,
        payload_bytes: 16,
        batch,
        timeout: Duration::from_millis(500),
        burst: 32,
        rx_burst: 64,
        reflector: false,
        client_id: 42,
        interval_log: true,
    }
}

fn go(io: &mut FakeServer, clock: &FakeClock, spec: &LoadSpec) -> (RunOutcome, Summary) {
    let peer = Peer::from_ip_port([127, 0, 0, 1].into(), 9000);
    let out = run(io, clock, peer, spec, &AtomicBool::new(false)).unwrap();
    let sum = Summary::new("fake", "127.0.0.1:9000", spec, &out);
    (out, sum)
}

#[test]
fn every_request_answered_at_the_offered_rate() {
    let clock = FakeClock::new(1_000);
    let mut io = FakeServer::new(&clock, 50_000);
    let spec = spec(10_000, 1_000, 100, 1);
    let (out, s) = go(&mut io, &clock, &spec);
    assert_eq!(s.sent, 10_000);
    assert_eq!(s.warmup.sent, 1_000);
    assert_eq!((s.received, s.errors, s.timeouts, s.unexpected, s.malformed), (10_000, 0, 0, 0, 0));
    assert!((s.achieved_rps - 10_000.0).abs() / 10_000.0 < 0.005, "{}", s.achieved_rps);
    // 50 us of server delay plus at most a few 1 us clock steps.
    assert!(s.latency_ns.p50 >= 50_000 && s.latency_ns.max < 60_000, "{:?}", s.latency_ns);
    assert_eq!(out.io.tx_datagrams, 11_000);
    assert_eq!(out.accounting.intervals.as_ref().unwrap().hists[0].len(), 10_000);
}

#[test]
fn batching_keeps_the_request_rate() {
    let clock = FakeClock::new(1_000);
    let mut io = FakeServer::new(&clock, 20_000);
    let (out, s) = go(&mut io, &clock, &spec(8_000, 500, 0, 8));
    assert_eq!(s.sent, 4_000);
    assert_eq!(out.datagrams, 500);
    assert_eq!(s.received, 4_000);
    assert_eq!(s.timeouts, 0);
}

#[test]
fn a_server_stall_shows_as_latency_not_as_a_lower_rate() {
    let clock = FakeClock::new(1_000);
    let mut io = FakeServer::new(&clock, 50_000);
    // Stall 100 ms in the middle of the measured phase (it starts at t = 1000 + 100 ms).
    io.stall = Some((500 * MS, 600 * MS));
    let (_, s) = go(&mut io, &clock, &spec(2_000, 1_000, 100, 1));
    assert_eq!((s.received, s.timeouts), (2_000, 0));
    assert!(s.latency_ns.max >= 100 * MS, "{:?}", s.latency_ns);
    assert!(s.latency_ns.p999 >= 99 * MS, "{:?}", s.latency_ns);
    // 200 of 2000 requests waited: p90 sits at the edge, p50 is untouched.
    assert!(s.latency_ns.p50 < MS, "{:?}", s.latency_ns);
    assert!((s.achieved_rps - 2_000.0).abs() / 2_000.0 < 0.02, "{}", s.achieved_rps);
}

#[test]
fn a_stalled_generator_measures_its_own_lateness() {
    // The generator thread loses 100 ms at t = 500 ms: requests due meanwhile go out late, stamped
    // with their intended times, so their latency includes the 100 ms.
    let mut clock = FakeClock::new(1_000);
    clock.jump_at = 500 * MS;
    clock.jump.set(100 * MS);
    let mut io = FakeServer::new(&clock, 50_000);
    let (out, s) = go(&mut io, &clock, &spec(2_000, 1_000, 100, 1));
    assert_eq!((s.sent, s.received, s.timeouts), (2_000, 2_000, 0));
    assert!(s.latency_ns.max >= 100 * MS, "{:?}", s.latency_ns);
    assert!(out.send_lag_max_ns >= 99 * MS, "{}", out.send_lag_max_ns);
}

#[test]
fn lost_datagrams_are_timeouts_and_counts_balance() {
    let clock = FakeClock::new(1_000);
    let mut io = FakeServer::new(&clock, 50_000);
    io.drop_every = 10;
    let (_, s) = go(&mut io, &clock, &spec(5_000, 400, 0, 1));
    assert_eq!(s.sent, 2_000);
    assert_eq!(s.timeouts, 200);
    assert_eq!(s.sent, s.received + s.errors + s.timeouts);
}

#[test]
fn stop_flag_ends_early_and_still_accounts() {
    let clock = FakeClock::new(1_000);
    let mut io = FakeServer::new(&clock, 50_000);
    let stop = AtomicBool::new(true);
    let spec = spec(1_000, 1_000, 0, 1);
    let out = run(&mut io, &clock, Peer::from_ip_port([127, 0, 0, 1].into(), 9000), &spec, &stop).unwrap();
    assert!(out.stopped_early);
    let a = &out.accounting;
    assert_eq!(a.measured.sent, a.measured.received + a.measured.errors + a.measured.timeouts);
}
