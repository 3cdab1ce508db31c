//! The generator loop against an in-memory `PacketIo` on a virtual clock: deterministic checks of
//! the schedule, the accounting and coordinated omission, with no network and no real time.
//!
//! The fake server answers each request datagram with Vigil's real request engine, `delay` after
//! it was sent (or at the end of a stall window), can drop every n-th datagram, can have a finite
//! capacity (a FIFO queue served at `capacity` datagrams/s, dropping what would wait over 50 ms),
//! and shares the virtual clock with the generator; the clock advances a fixed step at each
//! reading, with an optional one-off jump (the generator thread "descheduled").
//!
//! Also here, on the virtual clock: step, ramp and bursts schedules through the whole loop (counts
//! per phase in the JSON timeline), malformed injection counted apart from valid traffic, and the
//! search against a server of known capacity.
//!
//! KV: a tiny test-only KV handler (GET and SET straight onto a `vigil::projection::Router`, no log,
//! no Raft) registered beside the real engine's ops, so a KV workload runs end to end. Candles: the
//! same with a test-only LIGHT/GET handler on a real candle projection (`support/candles.rs`), so
//! bench/workloads/candles.toml runs end to end, FULL, INVALID and NOT_FOUND included.

#[path = "support/candles.rs"]
mod candles;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use vigil::candle::{CandleLimits, CandleProjection, Date};
use vigil::dispatch::{Answer, Dispatcher, Handler, Request};
use vigil::engine::{Engine, EngineLimits, Outcome};
use vigil::kv::protocol::{parse_write, render_result};
use vigil::kv::KvLimits;
use vigil::projection::Router;
use vigil::wire::{opcode, Status};
use vigil_bench::report::Summary;
use vigil_bench::run::{run, LoadSpec, Op, RunOutcome, TrafficSpec};
use vigil_bench::search::{search, Objective, SearchSpec};
use vigil_bench::spec::{MalformedSpec, RateStep, ScheduleSpec};
use vigil_pmd::mem::{VecRx, VecTx};
use vigil_pmd::{Batch, Clock, IoCounters, Nanos, PacketIo, Peer};

/// Where answers appear to come from.
const SERVER: Peer = Peer::from_ip_port(std::net::Ipv4Addr::LOCALHOST, 9000);

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

struct FakeServer {
    clock: FakeClock,
    delay: u64,
    /// Answers to datagrams arriving in [start, end) are held until `end`.
    stall: Option<(u64, u64)>,
    drop_every: u64,
    /// Datagrams per second the server can serve (0: unlimited).
    capacity: u64,
    free_at: u64,
    seen: u64,
    engine: Engine,
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
            capacity: 0,
            free_at: 0,
            seen: 0,
            engine: {
                let mut d = Dispatcher::new();
                vigil::ops::register_all(&mut d).unwrap();
                Engine::new(d, EngineLimits { requests_per_datagram_max: 64 })
            },
            in_flight: RefCell::new(VecDeque::new()),
            counters: IoCounters::default(),
        }
    }

    /// Also serves KV GET and SET from `kv` (test-only: applied at once, no log, no Raft).
    fn with_kv(mut self, kv: &Rc<RefCell<Router>>) -> Self {
        let mut d = Dispatcher::new();
        vigil::ops::register_all(&mut d).unwrap();
        let h = || Box::new(KvHandler { kv: Rc::clone(kv), lsn: 0 });
        d.register(opcode::GET, "test-kv-get", h()).unwrap();
        d.register(opcode::SET, "test-kv-set", h()).unwrap();
        self.engine = Engine::new(d, EngineLimits { requests_per_datagram_max: 64 });
        self
    }

    /// Also serves CANDLE_LIGHT and CANDLE_GET from `store`, validating at `today` (test-only).
    fn with_candles(mut self, store: &Rc<RefCell<CandleProjection>>, today: Date) -> Self {
        let mut d = Dispatcher::new();
        vigil::ops::register_all(&mut d).unwrap();
        let h = || Box::new(candles::CandleHandler::new(store, today));
        d.register(opcode::CANDLE_LIGHT, "test-candle-light", h()).unwrap();
        d.register(opcode::CANDLE_GET, "test-candle-get", h()).unwrap();
        self.engine = Engine::new(d, EngineLimits { requests_per_datagram_max: 64 });
        self
    }

    /// The real engine's answer, or `None` when it drops the datagram.
    fn answer(&mut self, req: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![0u8; 2048];
        match self.engine.handle_datagram(
            req,
            &mut out,
            vigil_pmd::Peer::from_ip_port(std::net::Ipv4Addr::LOCALHOST, 1),
            Nanos(0),
        ) {
            Outcome::Reply(n) => {
                out.truncate(n);
                Some(out)
            }
            Outcome::Drop | Outcome::Later => None,
        }
    }
}

/// GET and SET straight onto a projection: each SET is applied at once with the next LSN.
struct KvHandler {
    kv: Rc<RefCell<Router>>,
    lsn: u64,
}

impl Handler for KvHandler {
    fn handle(&mut self, req: &Request<'_>, out: &mut [u8]) -> Result<Answer, Status> {
        let mut kv = self.kv.borrow_mut();
        if req.opcode == opcode::GET {
            return kv.kv().answer_get(req.body, out).map(Answer::Now);
        }
        let cmd = parse_write(req.opcode, req.client_id, req.request_id, req.body)
            .map_err(|_| Status::BadRequest)?;
        // LSNs are shared by the GET and SET handlers' projection, so take the next after its own.
        self.lsn = self.lsn.max(kv.applied_lsn()) + 1;
        render_result(&kv.apply_kv(self.lsn, &cmd), out).map(Answer::Now)
    }
}

impl PacketIo for FakeServer {
    type Rx = VecRx;
    type Tx = VecTx;

    fn rx_burst(&mut self, batch: &mut Batch<VecRx>) -> usize {
        let now = self.clock.now.get();
        let mut q = self.in_flight.borrow_mut();
        let mut n = 0;
        while batch.room() > 0 && q.front().is_some_and(|(t, _)| *t <= now) {
            let (_, d) = q.pop_front().unwrap();
            assert!(batch.push(VecRx::new(d, SERVER)).is_ok());
            n += 1;
        }
        self.counters.rx_datagrams += n as u64;
        n
    }

    fn tx_alloc(&mut self, peer: &Peer) -> Option<VecTx> {
        Some(VecTx::new(1472, *peer))
    }

    fn tx_burst(&mut self, batch: &mut Batch<VecTx>) -> usize {
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
            if let Some(service) = 1_000_000_000u64.checked_div(self.capacity) {
                let done = self.free_at.max(now) + service;
                if done - now > 50 * MS {
                    continue; // the queue is full: dropped
                }
                self.free_at = done;
                at = done + self.delay;
            }
            let Some(answer) = self.answer(tx.bytes()) else { continue };
            let mut q = self.in_flight.borrow_mut();
            // Keep delivery order by time (stalled answers go out together at the end).
            let pos = q.iter().rposition(|(t, _)| *t <= at).map_or(0, |p| p + 1);
            q.insert(pos, (at, answer));
        }
        n
    }

    fn counters(&self) -> IoCounters {
        self.counters
    }
}

fn spec(rate: u64, duration_ms: u64, warmup_ms: u64, batch: u32) -> LoadSpec {
    LoadSpec {
        duration: Duration::from_millis(duration_ms),
        warmup: Duration::from_millis(warmup_ms),
        batch,
        timeout: Duration::from_millis(500),
        burst: 32,
        rx_burst: 64,
        client_id: 42,
        interval_log: true,
        check_echo: true,
        ..LoadSpec::with_op(rate as f64, Op::Echo, 16)
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

fn timeline_counts(s: &Summary, field: &str) -> Vec<u64> {
    let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
    v["timeline"].as_array().unwrap().iter().map(|p| p[field].as_u64().unwrap()).collect()
}

fn sched(schedule: ScheduleSpec, duration_ms: u64, warmup_ms: u64) -> LoadSpec {
    LoadSpec { schedule, ..spec(1, duration_ms, warmup_ms, 1) }
}

#[test]
fn step_schedule_offers_each_steps_count_per_second() {
    let clock = FakeClock::new(1_000);
    let mut io = FakeServer::new(&clock, 50_000);
    let steps = vec![RateStep { rate: 1_000.0, seconds: 1.0 }, RateStep { rate: 3_000.0, seconds: 1.0 }];
    let (_, s) = go(&mut io, &clock, &sched(ScheduleSpec::Step { steps }, 3_000, 200));
    // 0.2 s of warm-up at the first step's rate, then 1000, 3000, and 3000 held.
    assert_eq!(s.warmup.sent, 200);
    assert_eq!(timeline_counts(&s, "offered"), vec![1_000, 3_000, 3_000]);
    assert_eq!(timeline_counts(&s, "sent"), vec![1_000, 3_000, 3_000]);
    assert_eq!((s.sent, s.received, s.timeouts), (7_000, 7_000, 0));
    assert_eq!(s.offered_rps, 2_333, "the mean over the measured phase");
    let answered = timeline_counts(&s, "answered");
    assert!(answered[0] >= 999 && answered[1] >= 2_999, "{answered:?}");
}

#[test]
fn ramp_schedule_offers_the_integral_of_its_rate() {
    let clock = FakeClock::new(1_000);
    let mut io = FakeServer::new(&clock, 20_000);
    let ramp = ScheduleSpec::Ramp { from: 1_000.0, to: 3_000.0, seconds: 2.0 };
    let (_, s) = go(&mut io, &clock, &sched(ramp, 3_000, 0));
    // Second 1: 1000 + 500 = 1500 requests; second 2: 2500; then 3000 held.
    let offered = timeline_counts(&s, "offered");
    for (got, want) in offered.iter().zip([1_500i64, 2_500, 3_000]) {
        assert!((*got as i64 - want).abs() <= 1, "{offered:?}");
    }
    assert_eq!(s.sent, offered.iter().sum::<u64>());
    assert_eq!((s.timeouts, s.errors), (0, 0));
}

#[test]
fn bursts_schedule_sends_the_burst_then_nothing() {
    let clock = FakeClock::new(1_000);
    let mut io = FakeServer::new(&clock, 20_000);
    let bursts = ScheduleSpec::Bursts { requests: 2_000, within: 0.5, idle: 1.5 };
    let (_, s) = go(&mut io, &clock, &sched(bursts, 4_000, 0));
    assert_eq!(timeline_counts(&s, "offered"), vec![2_000, 0, 2_000, 0]);
    assert_eq!((s.sent, s.received), (4_000, 4_000));
}

#[test]
fn malformed_injection_is_counted_apart_from_valid_traffic() {
    let clock = FakeClock::new(1_000);
    let mut io = FakeServer::new(&clock, 50_000);
    let spec = LoadSpec {
        malformed: Some(MalformedSpec { rate: 500.0, kinds: vec![] }),
        ..spec(5_000, 1_000, 0, 4)
    };
    let (_, s) = go(&mut io, &clock, &spec);
    assert_eq!((s.sent, s.received, s.errors, s.timeouts, s.unexpected), (5_000, 5_000, 0, 0, 0));
    assert_eq!(s.latency_ns.count, 5_000, "only valid traffic in the latencies");
    assert_eq!(s.malformed_sent, 500);
    let answered: u64 = s.malformed_answered.values().sum();
    assert!(answered > 0, "{:?}", s.malformed_answered);
    // A truncated datagram's whole frames may be answered OK before the error; never all of them.
    let errors = answered - s.malformed_answered.get("OK").copied().unwrap_or(0);
    assert!(errors >= 300, "{:?}", s.malformed_answered);
    assert_eq!(s.bad_echo, 0);
    assert!(s.render().contains("injected malformed: sent 500"));
}

#[test]
fn search_finds_a_known_capacity() {
    // The server serves 30 000 datagrams/s (FIFO, 50 ms queue): above that, loss and latency grow.
    let clock = FakeClock::new(1_000);
    let mut io = FakeServer::new(&clock, 20_000);
    io.capacity = 30_000;
    let base = LoadSpec { timeout: Duration::from_millis(100), ..spec(1_000, 500, 100, 1) };
    let s = SearchSpec {
        objective: Objective { p99_ns: 2_000_000, loss_max: 0.001, achieved_min_ratio: 0.99 },
        min_rate: 0.0,
        max_rate: 64_000.0,
        trial: Duration::from_millis(500),
        steps: 6,
    };
    let peer = Peer::from_ip_port([127, 0, 0, 1].into(), 9000);
    let stop = AtomicBool::new(false);
    let mut seen = Vec::new();
    let (result, best) =
        search(&base, &s, &stop, |t| run(&mut io, &clock, peer, t, &stop), |t| seen.push(t.clone())).unwrap();
    let rates: Vec<f64> = result.trials.iter().map(|t| t.rate).collect();
    // 64000 F, 32000 F, 16000 P, 24000 P, 28000 P, 30000 P (at capacity: no queue growth), 31000 F.
    assert_eq!(
        rates,
        vec![64_000.0, 32_000.0, 16_000.0, 24_000.0, 28_000.0, 30_000.0, 31_000.0],
        "{result:?}"
    );
    assert_eq!(result.best_rate, Some(30_000.0));
    assert_eq!(seen, result.trials);
    assert!(result.trials[0].loss > 0.4 && !result.trials[0].pass);
    assert_eq!(best.accounting.measured.sent, 15_000, "the best trial's outcome is returned");
    let json = serde_json::to_value(&result).unwrap();
    assert_eq!(json["best_rate"], 30_000.0);
    assert_eq!(json["objective"]["p99_ns"], 2_000_000);
    assert!(json["trials"][0].get("achieved_rps").is_some());
}

fn kv_spec(traffic: TrafficSpec, rate: u64, duration_ms: u64) -> LoadSpec {
    LoadSpec { traffic, ..spec(rate, duration_ms, 100, 4) }
}

fn kv_projection() -> Rc<RefCell<Router>> {
    let limits = KvLimits { keys_max: 200_000, data_bytes_max: 64 << 20, ..KvLimits::small() };
    Rc::new(RefCell::new(Router::new(limits, Vec::new())))
}

#[test]
fn kv_workload_runs_with_no_errors_and_counts_not_found_apart() {
    let w = vigil_bench::workload::load(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("workloads/kv-read-heavy.toml"),
    )
    .unwrap();
    let traffic = TrafficSpec { ops: w.ops.clone(), keys: w.keys.clone(), values: w.values, seed: w.seed };
    let clock = FakeClock::new(1_000);
    let kv = kv_projection();
    let mut io = FakeServer::new(&clock, 50_000).with_kv(&kv);
    let (_, s) = go(&mut io, &clock, &kv_spec(traffic, 20_000, 1_000));
    assert_eq!((s.sent, s.received, s.errors, s.timeouts, s.unexpected), (20_000, 20_000, 0, 0, 0));
    assert_eq!(s.op, "kv");
    // About 90% GETs over a zipfian key space with ~2200 SETs so far: hot keys are found, the
    // long tail is not.
    assert!(s.not_found > 1_000 && s.not_found < 18_000, "not_found {}", s.not_found);
    assert_eq!(s.latency_ns.count, 20_000, "NOT_FOUND answers have latencies too");
    let router = kv.borrow();
    let kv = router.kv();
    assert!(kv.len() > 500, "{} keys set", kv.len());
    assert!(kv.iter().all(|(k, v, _)| k.len() == 16 && v.len() == 100));
    assert!(s.render().contains("GET not found"));
    let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
    assert_eq!(json["not_found"], s.not_found);
}

#[test]
fn kv_set_then_get_finds_every_key() {
    // SET every one of 50 keys, then GET them all: no NOT_FOUND once the keys exist.
    let clock = FakeClock::new(1_000);
    let kv = kv_projection();
    let mut io = FakeServer::new(&clock, 50_000).with_kv(&kv);
    let (_, s) = go(&mut io, &clock, &kv_spec(TrafficSpec::kv(0.0, 50, 32), 4_000, 500));
    assert_eq!((s.received, s.errors, s.not_found, s.op.as_str()), (2_000, 0, 0, "set"));
    assert_eq!(kv.borrow().len(), 50);
    let (_, s) = go(&mut io, &clock, &kv_spec(TrafficSpec::kv(1.0, 50, 32), 4_000, 500));
    assert_eq!((s.received, s.errors, s.not_found, s.op.as_str()), (2_000, 0, 0, "get"));
}

#[test]
fn kv_against_a_server_without_kv_is_unknown_opcode_errors() {
    let clock = FakeClock::new(1_000);
    let mut io = FakeServer::new(&clock, 50_000);
    let (_, s) = go(&mut io, &clock, &kv_spec(TrafficSpec::kv(0.9, 1_000, 100), 2_000, 500));
    assert_eq!((s.sent, s.received, s.errors, s.not_found), (1_000, 0, 1_000, 0));
    assert_eq!(s.errors_by_status.get("UNKNOWN_OPCODE"), Some(&1_000));
}

fn candle_workload() -> TrafficSpec {
    let w = vigil_bench::workload::load(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("workloads/candles.toml"),
    )
    .unwrap();
    TrafficSpec { ops: w.ops.clone(), keys: w.keys.clone(), values: w.values, seed: w.seed }
}

fn candle_spec(rate: u64, duration_ms: u64) -> LoadSpec {
    LoadSpec { traffic: candle_workload(), batch: 1, ..spec(rate, duration_ms, 100, 1) }
}

/// The date of `candles::NOW_NS`.
fn candle_today() -> Date {
    Date::from_unix_days((candles::NOW_NS / 86_400_000_000_000) as i64)
}

#[test]
fn candle_workload_lights_then_gets_what_it_lit() {
    let clock = FakeClock::new(1_000);
    let limits = CandleLimits {
        candles_per_day_max: 100_000,
        overflow_bytes_per_field_day_max: 4 << 20,
        list_page_max: 50,
    };
    let store = candles::store(limits);
    let mut io = FakeServer::new(&clock, 50_000).with_candles(&store, candle_today());
    let (_, s) = go(&mut io, &clock, &candle_spec(10_000, 1_000));
    assert_eq!(s.op, "candles");
    assert_eq!(
        (s.sent, s.received, s.errors, s.timeouts, s.unexpected, s.bad_echo),
        (10_000, 10_000, 0, 0, 0, 0)
    );
    // About 20% LIGHTs (of the warm-up's too), all stored; GETs ask for ids already answered, so
    // only those sent before the first LIGHT's answer are NOT_FOUND.
    let lit = store.borrow().ring().count(store.borrow().ring().today());
    assert!((2_000..2_500).contains(&lit), "{lit} lit");
    assert!(s.not_found < 20, "{} GETs not found", s.not_found);
}

#[test]
fn full_invalid_and_not_found_are_counted_outcomes() {
    // A bucket of 100 candles: the LIGHTs after the 100th are FULL, nothing stored.
    let clock = FakeClock::new(1_000);
    let limits = CandleLimits { candles_per_day_max: 100, ..CandleLimits::small() };
    let store = candles::store(limits);
    let mut io = FakeServer::new(&clock, 50_000).with_candles(&store, candle_today());
    let (_, s) = go(&mut io, &clock, &candle_spec(10_000, 500));
    assert_eq!(s.sent, s.received + s.errors);
    assert_eq!(s.timeouts, 0);
    assert_eq!(store.borrow().ring().len(), 100);
    let full = s.errors_by_status.get("FULL").copied().unwrap_or(0);
    assert!(full > 800 && full == s.errors, "{:?}", s.errors_by_status);
    // A server whose date is 1900-01-01: every birth date is in the future, every LIGHT is
    // INVALID, nothing is lit, and every GET (of id 0) is NOT_FOUND, an answer, not an error.
    let store = candles::store(CandleLimits::small());
    let mut io = FakeServer::new(&clock, 50_000).with_candles(&store, Date { year: 1900, month: 1, day: 1 });
    let (_, s) = go(&mut io, &clock, &candle_spec(10_000, 500));
    assert_eq!((s.sent, s.timeouts), (s.received + s.errors, 0));
    let invalid = s.errors_by_status.get("INVALID").copied().unwrap_or(0);
    assert!(invalid > 800 && invalid == s.errors, "{:?}", s.errors_by_status);
    assert_eq!(s.not_found, s.received);
    assert!(store.borrow().ring().is_empty());
}
