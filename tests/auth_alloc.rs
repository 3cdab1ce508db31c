//! Heap allocations of access control on the request path (`auth::gate`), counted by this test
//! binary's global allocator: once the gate exists (its replay windows' table sized at start),
//! admitting signed datagrams of clients old and new, refusing forged and replayed ones, and
//! answering unproven sources with cookies allocate nothing.
//!
//! Runs without the test harness (`harness = false` in Cargo.toml): the global allocator counts
//! every thread, and the harness's thread allocates at times while it waits for a test.

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::net::Ipv4Addr;
use vigil::auth::ext::{FLAG_AUTH, FLAG_COOKIE};
use vigil::auth::{Credentials, NodeAuth};
use vigil::config::{Anonymous, AuthConfig, ClientConfig};
use vigil::dispatch::{Answer, Dispatcher, Handler, Request};
use vigil::engine::{Engine, EngineLimits, Outcome};
use vigil::wire::{opcode, DatagramWriter, Status};
use vigil_pmd::{Nanos, Peer};

/// Counts every allocation of this test binary.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const KEY: &str = "4242424242424242424242424242424242424242424242424242424242424242";
/// Client ids the key speaks for: half sign during warm-up, half first during the measurement.
const CLIENTS: u64 = 256;
const ROUNDS: u64 = 200;
const NOW: u64 = 1_800_000_000_000_000_000;

/// A GET stand-in that answers 8 bytes.
struct Small;

impl Handler for Small {
    fn handle(&mut self, _req: &Request<'_>, out: &mut [u8]) -> Result<Answer, Status> {
        out[..8].fill(1);
        Ok(Answer::Now(8))
    }
}

fn main() {
    gate_allocates_nothing_after_start_up();
    println!("test gate_allocates_nothing_after_start_up ... ok");
}

/// A PING (or GET) datagram from `client_id` into `buf`, signed with `nonce` when `client_id` is
/// not 0; returns its length.
fn build(buf: &mut [u8], client_id: u64, op: u8, nonce: u64, cookie: Option<&[u8; 16]>) -> usize {
    let flags = if client_id != 0 { FLAG_AUTH } else { 0 } | if cookie.is_some() { FLAG_COOKIE } else { 0 };
    let mut w = DatagramWriter::request_with_blocks(buf, client_id, flags).unwrap();
    w.push(op, 0, 1, b"k").unwrap();
    let n = w.finish();
    let creds = Credentials::from_hex(1, KEY).unwrap();
    let signer = (client_id != 0).then_some((&creds, NOW / 1_000_000, nonce));
    vigil::auth::seal_request(&mut buf[..n], cookie, signer);
    n
}

fn gate_allocates_nothing_after_start_up() {
    let client = ClientConfig {
        name: "bench".into(),
        key_id: 1,
        client_id: 1,
        client_ids: CLIENTS,
        key: Some(KEY.into()),
        password: None,
        acl: "+@read +@write".into(),
        expires_unix_s: None,
        keys_max: Some(1 << 20),
        bytes_max: None,
    };
    let auth = AuthConfig {
        anonymous: Anonymous::ReadOnly,
        replay_windows_max: CLIENTS as usize,
        clients: vec![client],
        ..AuthConfig::default()
    };
    let auth = NodeAuth::new(&auth, [1; 32]).unwrap();
    let mut d = Dispatcher::new();
    vigil::ops::register_all(&mut d).unwrap();
    d.register(opcode::GET, "small", Box::new(Small)).unwrap();
    let mut engine = Engine::new(d, EngineLimits { requests_per_datagram_max: 8 }).with_gate(auth.gate());
    let (local, remote) =
        (Peer::from_ip_port(Ipv4Addr::LOCALHOST, 9), Peer::from_ip_port(Ipv4Addr::new(192, 0, 2, 9), 9));
    let (mut req, mut resp) = (vec![0u8; 256], vec![0u8; 1472]);
    let mut run = |engine: &mut Engine, req: &[u8], peer: Peer| match engine.handle_datagram(
        req,
        &mut resp,
        peer,
        Nanos(NOW),
    ) {
        Outcome::Reply(n) => resp[..n].to_vec(),
        other => panic!("{other:?}"),
    };
    // Warm-up: half the clients, and a cookie for the remote peer.
    for c in 1..=CLIENTS / 2 {
        let n = build(&mut req, c, opcode::PING, 1, None);
        run(&mut engine, &req[..n], local);
    }
    let n = build(&mut req, 0, opcode::GET, 0, None);
    let answer = run(&mut engine, &req[..n], remote);
    let cookie: [u8; 16] = answer[answer.len() - 16..].try_into().unwrap();

    let region = Region::new(GLOBAL);
    let mut handled = 0u64;
    for round in 0..ROUNDS {
        for c in 1..=CLIENTS {
            // Every client (the second half new in round 0), then the same datagram replayed.
            let n = build(&mut req, c, opcode::PING, 2 + round, None);
            assert!(matches!(
                engine.handle_datagram(&req[..n], &mut resp, local, Nanos(NOW)),
                Outcome::Reply(_)
            ));
            assert!(matches!(
                engine.handle_datagram(&req[..n], &mut resp, local, Nanos(NOW)),
                Outcome::Reply(_)
            ));
            handled += 2;
        }
        for cookie in [None, Some(&cookie)] {
            let n = build(&mut req, 0, opcode::GET, 0, cookie);
            assert!(matches!(
                engine.handle_datagram(&req[..n], &mut resp, remote, Nanos(NOW)),
                Outcome::Reply(_)
            ));
            handled += 1;
        }
    }
    let change = region.change();
    let c = engine.auth_counters();
    println!(
        "{handled} datagrams ({} authenticated, {} replays refused, {} cookies sent): {} allocations, {} reallocations",
        c.authenticated, c.refused[vigil::auth::Refusal::Replayed as usize - 1], c.unproven, change.allocations, change.reallocations
    );
    assert_eq!(change.allocations, 0);
    assert_eq!(change.reallocations, 0);
    assert_eq!(c.refused[vigil::auth::Refusal::Replayed as usize - 1], ROUNDS * CLIENTS);
}
