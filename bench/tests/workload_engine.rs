//! The shipped workloads' traffic, served by the real request engine: every valid request is
//! answered OK with the body [`TrafficGen::echo_matches`] expects, and every malformed datagram is
//! dropped or gets an error, with answers told apart by [`MALFORMED_ID_BIT`].

use std::path::PathBuf;
use vigil::dispatch::Dispatcher;
use vigil::engine::{Engine, EngineLimits, Outcome};
use vigil::wire::{self, DatagramWriter, Status};
use vigil_bench::spec::OpKind;
use vigil_bench::traffic::{is_malformed_id, MalformedGen, TrafficGen, MALFORMED_DATAGRAM_BYTES_MAX};
use vigil_bench::workload::{self, DATAGRAM_BYTES_MAX};
use vigil_pmd::Nanos;

const REQUESTS_PER_DATAGRAM_MAX: u16 = 64;

/// Where the test's requests come from (answers here are read in place, never sent).
const PEER: vigil_pmd::Peer = vigil_pmd::Peer::from_ip_port(std::net::Ipv4Addr::LOCALHOST, 1);

fn engine() -> Engine {
    let mut d = Dispatcher::new();
    vigil::ops::register_all(&mut d).unwrap();
    Engine::new(d, EngineLimits { requests_per_datagram_max: REQUESTS_PER_DATAGRAM_MAX })
}

fn load(name: &str) -> workload::Workload {
    workload::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("workloads").join(format!("{name}.toml")))
        .unwrap()
}

/// Sends `datagrams` datagrams of the workload's batch through the engine; returns (echo, ping)
/// answers seen, all checked.
fn serve_valid(e: &mut Engine, traffic: &mut TrafficGen, batch: u64, datagrams: u64) -> (u64, u64) {
    let (mut req, mut resp) = (vec![0u8; DATAGRAM_BYTES_MAX], vec![0u8; DATAGRAM_BYTES_MAX]);
    let (mut echoes, mut pings) = (0, 0);
    for d in 0..datagrams {
        let mut w = DatagramWriter::request(&mut req, 3).unwrap();
        for k in d * batch..(d + 1) * batch {
            traffic.push_request(k, &mut w).unwrap();
        }
        let n = w.finish();
        let Outcome::Reply(m) = e.handle_datagram(&req[..n], &mut resp, PEER, Nanos(0)) else {
            panic!("dropped")
        };
        let h = wire::decode_header(&resp[..m]).unwrap();
        assert_eq!(u64::from(h.count), batch);
        for (i, f) in wire::Frames::new(&resp[..m], h.count).enumerate() {
            let f = f.unwrap();
            let k = d * batch + i as u64;
            assert_eq!((f.status, f.request_id), (Status::Ok as u8, k));
            assert!(traffic.echo_matches(k, f.body), "request {k}'s answer");
            match traffic.op(k) {
                OpKind::Echo => echoes += 1,
                OpKind::Ping => pings += 1,
                other => panic!("{other:?}: the engine here has no KV or candle handler"),
            }
        }
    }
    (echoes, pings)
}

#[test]
fn echo_mix_answers_check_out() {
    let w = load("echo-mix-zipf");
    let mut traffic = w.traffic().unwrap();
    let (echoes, pings) = serve_valid(&mut engine(), &mut traffic, u64::from(w.batch), 2_000);
    let share = echoes as f64 / (echoes + pings) as f64;
    assert!((share - 0.9).abs() < 0.02, "echo share {share}");
}

#[test]
fn clones_on_other_threads_send_the_same_requests() {
    let w = load("echo-mix-zipf");
    let traffic = w.traffic().unwrap();
    let frame = |g: &mut TrafficGen, k: u64| {
        let mut buf = vec![0u8; DATAGRAM_BYTES_MAX];
        let mut wr = DatagramWriter::request(&mut buf, 1).unwrap();
        g.push_request(k, &mut wr).unwrap();
        let n = wr.finish();
        buf.truncate(n);
        buf
    };
    let mut here = traffic.clone();
    let there = std::thread::spawn({
        let mut g = traffic.clone();
        move || (0..1000).map(|k| frame(&mut g, k)).collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    for (k, bytes) in there.iter().enumerate() {
        assert_eq!(*bytes, frame(&mut here, k as u64));
    }
}

#[test]
fn malformed_workload_injection_never_gets_ok_for_all_frames() {
    let w = load("malformed");
    let spec = w.malformed.clone().unwrap();
    let mut e = engine();
    let mut traffic = w.traffic().unwrap();
    let mut gen = MalformedGen::new(&spec, w.seed, REQUESTS_PER_DATAGRAM_MAX);
    let (mut buf, mut resp) = ([0u8; MALFORMED_DATAGRAM_BYTES_MAX], vec![0u8; DATAGRAM_BYTES_MAX]);
    for i in 0..1000 {
        // Interleave valid traffic: it is unaffected by what came before it.
        serve_valid(&mut e, &mut traffic, u64::from(w.batch), 1);
        let (n, kind) = gen.write(i, &mut buf);
        let Outcome::Reply(m) = e.handle_datagram(&buf[..n], &mut resp, PEER, Nanos(0)) else {
            continue;
        };
        let h = wire::decode_header(&resp[..m]).unwrap();
        let frames: Vec<_> = wire::Frames::new(&resp[..m], h.count).map(Result::unwrap).collect();
        assert!(frames.iter().any(|f| f.status != Status::Ok as u8), "{kind:?} #{i}: all OK");
        assert!(frames.iter().all(|f| f.request_id == 0 || is_malformed_id(f.request_id)));
    }
}
