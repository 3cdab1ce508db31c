//! The rate controller on the real clock: against a fake `PacketIo` that answers every request
//! at once (no network, no server thread), the generator must offer what the schedule says, within
//! 1% over 5 s, every second of it; and several generator threads, each over its own fake, must
//! together offer the whole schedule with ids that never collide, merged into one report.
//!
//! The tests run one at a time (a lock): each busy-polls a core, and this machine has two.

#[path = "support/answers.rs"]
mod answers;

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Duration;
use vigil::wire::{self, DatagramWriter, Frames};
use vigil_bench::multi::with_workers;
use vigil_bench::progress::Progress;
use vigil_bench::report::Summary;
use vigil_bench::run::{run, LoadSpec, Op};
use vigil_bench::spec::ScheduleSpec;
use vigil_pmd::mem::{VecRx, VecTx};
use vigil_pmd::{Batch, IoCounters, MonotonicClock, PacketIo, Peer};

/// Where answers appear to come from.
const SERVER: Peer = Peer::from_ip_port(std::net::Ipv4Addr::LOCALHOST, 9000);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Answers every request datagram at once (its frames echoed back as OK responses).
#[derive(Default)]
struct AtOnce {
    answers: VecDeque<Vec<u8>>,
    counters: IoCounters,
}

impl PacketIo for AtOnce {
    type Rx = VecRx;
    type Tx = VecTx;

    fn rx_burst(&mut self, batch: &mut Batch<VecRx>) -> usize {
        answers::rx_answers(&mut self.answers, batch, SERVER)
    }

    fn tx_alloc(&mut self, peer: &Peer) -> Option<VecTx> {
        Some(VecTx::new(1472, *peer))
    }

    fn tx_burst(&mut self, batch: &mut Batch<VecTx>) -> usize {
        let n = batch.len();
        for tx in batch.drain() {
            self.counters.tx_datagrams += 1;
            let req = tx.bytes();
            let h = wire::decode_header(req).unwrap();
            let mut out = vec![0u8; 1472];
            let mut w = DatagramWriter::response(&mut out, h.client_id).unwrap();
            for f in Frames::new(req, h.count) {
                let f = f.unwrap();
                w.push(f.opcode, 0, f.request_id, f.body).unwrap();
            }
            let len = w.finish();
            out.truncate(len);
            self.answers.push_back(out);
        }
        n
    }

    fn counters(&self) -> IoCounters {
        self.counters
    }
}

fn peer() -> Peer {
    Peer::from_ip_port([127, 0, 0, 1].into(), 9000)
}

fn per_second(s: &Summary, field: &str) -> Vec<u64> {
    let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
    v["timeline"].as_array().unwrap().iter().map(|p| p[field].as_u64().unwrap()).collect()
}

#[test]
fn the_offered_rate_holds_within_1_percent_over_5_s() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let rate = 50_000.0;
    let spec = LoadSpec {
        duration: Duration::from_secs(5),
        warmup: Duration::from_millis(200),
        ..LoadSpec::with_op(rate, Op::Echo, 16)
    };
    let mut io = AtOnce::default();
    let out = run(&mut io, &MonotonicClock::new(), peer(), &spec, &AtomicBool::new(false)).unwrap();
    let s = Summary::new("fake", "-", &spec, &out);
    eprint!("{}", s.render());
    assert_eq!((s.sent, s.received, s.timeouts), (250_000, 250_000, 0));
    assert!((s.achieved_rps - rate).abs() / rate < 0.01, "achieved {}", s.achieved_rps);
    // Every second: what was actually sent in it is within 1% of the schedule.
    let sent = per_second(&s, "sent");
    assert_eq!(sent.len(), 5);
    for (i, n) in sent.iter().enumerate() {
        assert!((*n as f64 - rate).abs() / rate < 0.01, "second {i}: {sent:?}");
    }
    assert_eq!(per_second(&s, "offered"), vec![50_000; 5]);
}

#[test]
fn poisson_on_the_real_clock_offers_its_mean_rate() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let spec = LoadSpec {
        schedule: ScheduleSpec::Poisson { rate: 20_000.0, seed: 7 },
        duration: Duration::from_secs(3),
        warmup: Duration::ZERO,
        ..LoadSpec::default()
    };
    let mut io = AtOnce::default();
    let out = run(&mut io, &MonotonicClock::new(), peer(), &spec, &AtomicBool::new(false)).unwrap();
    let s = Summary::new("fake", "-", &spec, &out);
    assert!((s.sent as f64 / 3.0 - 20_000.0).abs() / 20_000.0 < 0.02, "{}", s.sent);
    assert_eq!((s.received, s.timeouts), (s.sent, 0));
    assert!((s.achieved_rps - s.sent as f64 / 3.0).abs() / 20_000.0 < 0.01, "{}", s.achieved_rps);
}

#[test]
fn two_threads_share_the_schedule_with_unique_ids_and_merge() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let spec = LoadSpec {
        duration: Duration::from_secs(1),
        warmup: Duration::from_millis(100),
        threads: 2,
        batch: 2,
        interval_log: true,
        ..LoadSpec::with_op(10_000.0, Op::Ping, 0)
    };
    let stop = AtomicBool::new(false);
    let progress = Progress::new(2);
    let clock = MonotonicClock::new();
    let make_io = |_| Ok((AtOnce::default(), ()));
    let (first, second) = with_workers(2, &[], make_io, &clock, peer(), &stop, Some(&progress), |w| {
        let a = w.run(&spec)?;
        let b = w.run(&spec)?;
        Ok((a, b))
    })
    .unwrap();
    for out in [&first, &second] {
        let s = Summary::new("fake", "-", &spec, out);
        assert_eq!(s.threads, 2);
        assert_eq!((s.sent, s.received, s.timeouts, s.unexpected), (10_000, 10_000, 0, 0));
        assert_eq!(s.warmup.sent, 1_000);
        assert_eq!(out.datagrams, 5_500);
        assert_eq!(s.latency_ns.count, 10_000);
        assert_eq!(per_second(&s, "offered"), vec![10_000]);
        assert_eq!(out.accounting.intervals.as_ref().unwrap().hists[0].len(), 10_000);
    }
    // The progress slots saw both threads' totals of the last run.
    let snap = progress.snapshot();
    assert_eq!((snap.sent, snap.answered), (11_000, 11_000));
    assert!(snap.p99_ns.is_some());
}

#[test]
fn ids_are_unique_across_threads_and_trials() {
    use vigil_bench::run::request_id_base;
    let mut bases: Vec<u64> =
        (0..4).flat_map(|t| (0..3).map(move |trial| request_id_base(t, trial))).collect();
    bases.sort_unstable();
    bases.dedup();
    assert_eq!(bases.len(), 12);
    assert!(bases.windows(2).all(|w| w[1] - w[0] >= 1 << 40), "{bases:x?}");
    assert!(bases[0] > 0, "id 0 is a datagram-level error answer");
}
