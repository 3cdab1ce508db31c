//! Heap allocations of the request latency histograms' recording (`metrics::requests`), counted by
//! this test binary's global allocator: once the engine exists (its histograms made at start-up,
//! one per protocol and registered opcode), counting requests answered at once over every
//! protocol, recording each pass and recording late answers allocate nothing.
//!
//! Runs without the test harness (`harness = false` in Cargo.toml): the global allocator counts
//! every thread, and the harness's thread allocates at times while it waits for a test.

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::net::Ipv4Addr;
use vigil::conn::protocol_tag;
use vigil::dispatch::{Dispatcher, Request};
use vigil::engine::{Engine, EngineLimits, Outcome};
use vigil::metrics::Protocol;
use vigil::wire::{opcode, DatagramWriter};
use vigil_pmd::{ConnId, Nanos, Peer};

/// Counts every allocation of this test binary.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Passes measured, and requests per pass on each peer.
const PASSES: u64 = 1_000;
const PER_PASS: u64 = 8;

fn main() {
    recording_allocates_nothing_after_start_up();
    println!("test recording_allocates_nothing_after_start_up ... ok");
}

fn recording_allocates_nothing_after_start_up() {
    let mut d = Dispatcher::new();
    vigil::ops::register_all(&mut d).unwrap();
    let mut engine = Engine::new(d, EngineLimits { requests_per_datagram_max: 8 });
    let udp = Peer::from_ip_port(Ipv4Addr::LOCALHOST, 4000);
    let conn = |tag| Peer::connection_of(ConnId { slot: 1, generation: 1 }, tag);
    let peers = [
        udp,
        conn(protocol_tag::BINARY),
        conn(protocol_tag::RESP),
        conn(protocol_tag::HTTP),
        conn(protocol_tag::WEB),
    ];
    let mut datagram = vec![0u8; 64];
    let mut w = DatagramWriter::request(&mut datagram, 1).unwrap();
    w.push(opcode::PING, 0, 1, b"").unwrap();
    let n = w.finish();
    datagram.truncate(n);
    let mut response = vec![0u8; 1472];
    let mut out = vec![0u8; 64];

    let region = Region::new(GLOBAL);
    for pass in 0..PASSES {
        let now = Nanos(pass * 1_000_000);
        for _ in 0..PER_PASS {
            for peer in peers {
                // Datagrams (UDP, and the binary protocol over TCP) and connections' requests.
                assert!(matches!(
                    engine.handle_datagram(&datagram, &mut response, peer, now),
                    Outcome::Reply(_)
                ));
                let owner = Default::default();
                let req = Request {
                    opcode: opcode::PING,
                    request_id: 1,
                    client_id: 0,
                    body: b"",
                    now,
                    peer,
                    owner,
                };
                engine.handle_request(&req, &mut out).unwrap();
            }
        }
        let latencies = engine.latencies_mut();
        assert!(latencies.has_answered());
        latencies.record_answered(now, Nanos(now.0 + 40_000));
        latencies.record_late(&peers[2], opcode::PING, now, Nanos(now.0 + 2_000_000));
    }
    let change = region.change();
    println!(
        "{} requests over {} protocols: {} allocations, {} reallocations",
        PASSES * PER_PASS * 2 * peers.len() as u64,
        peers.len(),
        change.allocations,
        change.reallocations
    );
    assert_eq!(change.allocations, 0);
    assert_eq!(change.reallocations, 0);
    let latencies = engine.latencies();
    assert_eq!(latencies.get(Protocol::Udp, opcode::PING).unwrap().count(), PASSES * PER_PASS * 2);
    assert_eq!(latencies.get(Protocol::Resp, opcode::PING).unwrap().count(), PASSES * (PER_PASS * 2 + 1));
}
