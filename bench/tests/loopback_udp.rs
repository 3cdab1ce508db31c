//! End to end over the kernel backend: the real generator loop, a real `KernelUdpIo` socket and a
//! tiny echo responder on a loopback std `UdpSocket` in a thread, answering each request datagram
//! with the same frames marked as a response (built with `vigil::wire`).
//!
//! The tests run one at a time (a lock): the generator busy-polls a core, and on a 2-vCPU machine two
//! of them at once would starve the responders and measure the scheduler instead.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use vigil::wire::{self, DatagramWriter, Frames, Status};
use vigil_bench::backend::run_kernel_to;
use vigil_bench::report::Summary;
use vigil_bench::run::{LoadSpec, Op};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Responder {
    addr: SocketAddrV4,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Responder {
    /// Answers every request; once, after `stall_after` datagrams, sleeps `stall` first. Frames with
    /// an id divisible by `busy_every` (if non-zero) are answered BUSY.
    fn start(stall_after: Option<u64>, stall: Duration, busy_every: u64) -> Self {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let addr = match sock.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            other => panic!("{other}"),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            let mut out = vec![0u8; 65_536];
            let mut seen = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
                seen += 1;
                if stall_after == Some(seen) {
                    std::thread::sleep(stall);
                }
                let req = &buf[..n];
                let h = wire::decode_header(req).unwrap();
                let mut w = DatagramWriter::response(&mut out, h.client_id).unwrap();
                for f in Frames::new(req, h.count) {
                    let f = f.unwrap();
                    let busy = busy_every > 0 && f.request_id.is_multiple_of(busy_every);
                    let status = if busy { Status::Busy } else { Status::Ok };
                    w.push(f.opcode, status as u8, f.request_id, if busy { &[] } else { f.body }).unwrap();
                }
                let len = w.finish();
                sock.send_to(&out[..len], from).unwrap();
            }
            seen
        });
        Self { addr, stop, thread: Some(thread) }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

fn spec(rate: u64, secs: f64, op: Op, batch: u32) -> LoadSpec {
    LoadSpec {
        rate,
        duration: Duration::from_secs_f64(secs),
        warmup: Duration::from_millis(200),
        op,
        payload_bytes: 32,
        batch,
        timeout: Duration::from_millis(1000),
        burst: 32,
        rx_burst: 64,
        reflector: false,
        client_id: 7,
        interval_log: false,
    }
}

fn run(r: &Responder, spec: &LoadSpec) -> Summary {
    let out = run_kernel_to(r.addr, spec, &AtomicBool::new(false)).unwrap();
    let s = Summary::new("kernel", &r.addr.to_string(), spec, &out);
    eprint!("{}", s.render());
    s
}

#[test]
fn loopback_2000_rps_for_1s_all_answered_at_the_offered_rate() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = Responder::start(None, Duration::ZERO, 0);
    let s = run(&r, &spec(2_000, 1.0, Op::Echo, 1));
    let seen = r.stop();
    assert_eq!(seen, 2_400);
    assert_eq!((s.sent, s.timeouts, s.errors, s.unexpected, s.malformed), (2_000, 0, 0, 0, 0));
    assert_eq!(s.received, 2_000);
    assert!((s.achieved_rps - 2_000.0).abs() / 2_000.0 <= 0.02, "achieved {}", s.achieved_rps);
    assert!(s.latency_ns.p50 > 0 && s.latency_ns.p50 < 50_000_000, "{:?}", s.latency_ns);
}

#[test]
fn loopback_stall_of_100ms_shows_in_the_tail_not_in_the_rate() {
    // The coordinated-omission test: the responder stops for 100 ms once, mid measured phase. A
    // closed-loop generator would just send less meanwhile; this one keeps offering 2000/s, and
    // the queued requests' latencies from their intended times carry the stall.
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = Responder::start(Some(1_000), Duration::from_millis(100), 0);
    let s = run(&r, &spec(2_000, 1.0, Op::Ping, 1));
    r.stop();
    assert_eq!((s.timeouts, s.errors), (0, 0));
    assert!(s.latency_ns.max >= 100_000_000, "{:?}", s.latency_ns);
    assert!(s.latency_ns.p999 >= 95_000_000, "{:?}", s.latency_ns);
    assert!((s.achieved_rps - 2_000.0).abs() / 2_000.0 <= 0.02, "achieved {}", s.achieved_rps);
}

#[test]
fn loopback_batches_and_error_statuses() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = Responder::start(None, Duration::ZERO, 10);
    let s = run(&r, &spec(4_000, 0.5, Op::Echo, 4));
    r.stop();
    assert_eq!(s.sent, 2_000);
    assert_eq!(s.errors, 200);
    assert_eq!(s.errors_by_status.get("BUSY"), Some(&200));
    assert_eq!((s.received, s.timeouts), (1_800, 0));
}

#[test]
fn no_server_means_timeouts() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // A bound socket that never answers.
    let sink = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = match sink.local_addr().unwrap() {
        std::net::SocketAddr::V4(a) => a,
        other => panic!("{other}"),
    };
    let mut spec = spec(1_000, 0.2, Op::Ping, 1);
    spec.warmup = Duration::ZERO;
    spec.timeout = Duration::from_millis(100);
    let out = run_kernel_to(addr, &spec, &AtomicBool::new(false)).unwrap();
    let s = Summary::new("kernel", &addr.to_string(), &spec, &out);
    assert_eq!((s.sent, s.received, s.timeouts), (200, 0, 200));
    assert_eq!(s.achieved_rps, 0.0);
}

#[test]
fn the_binary_prints_and_writes_json() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = Responder::start(None, Duration::ZERO, 0);
    let json = std::env::temp_dir().join(format!("vigil-loadgen-test-{}.json", std::process::id()));
    let hlog = json.with_extension("hlog");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil-loadgen"))
        .args(["--server", &r.addr.to_string(), "--rate", "1000", "--duration", "0.5", "--warmup", "0.1"])
        .args(["--op", "echo", "--payload-bytes", "8", "--batch", "2", "--json"])
        .arg(&json)
        .arg("--hist-log")
        .arg(&hlog)
        .output()
        .unwrap();
    r.stop();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("achieved") && stdout.contains("p99.9"), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_file(&json).ok();
    assert_eq!(v["sent"], 500);
    assert_eq!(v["received"], 500);
    assert_eq!(v["timeouts"], 0);
    assert_eq!(v["batch"], 2);
    assert_eq!(v["op"], "echo");
    assert_eq!(v["backend"], "kernel");
    assert!(v["latency_ns"]["p50"].as_u64().unwrap() > 0);
    let log = std::fs::read_to_string(&hlog).unwrap();
    std::fs::remove_file(&hlog).ok();
    assert!(log.lines().any(|l| l.starts_with("0.000,1.000,")), "{log}");
}
