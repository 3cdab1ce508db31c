//! The engine with access control: forged client ids, wrong and missing MACs, replays, expired
//! and revoked keys, roles per opcode, and the amplification bound to unproven sources.

use super::*;
use crate::auth::ext::{self, FLAG_AUTH, FLAG_COOKIE};
use crate::auth::{Credentials, NodeAuth, Refusal};
use crate::config::{Anonymous, AuthConfig, ClientConfig};
use crate::dispatch::Handler;
use crate::wire::{opcode, DatagramWriter};
use std::cell::Cell;
use std::net::Ipv4Addr;
use std::rc::Rc;

/// 2027-01-15, in Unix ns: the node's clock in these tests.
const NOW: Nanos = Nanos(1_800_000_000_000_000_000);
const NOW_MS: u64 = NOW.0 / 1_000_000;
const BIG: usize = 1000;

/// Answers every request with `BIG` bytes (a GET of a large value), counting calls.
struct Big(Rc<Cell<u32>>);

impl Handler for Big {
    fn handle(&mut self, _req: &Request<'_>, out: &mut [u8]) -> Result<Answer, Status> {
        self.0.set(self.0.get() + 1);
        out[..BIG].fill(0xab);
        Ok(Answer::Now(BIG))
    }
}

/// A principal speaking for 4 client ids from `client_id` (key: `key_id` in hex).
fn principal(name: &str, key_id: u32, client_id: u64, acl: &str) -> ClientConfig {
    ClientConfig { client_ids: 4, ..crate::config::auth::test_client(name, key_id, client_id, acl) }
}

fn creds(key_id: u32) -> Credentials {
    Credentials::from_hex(key_id, &format!("{key_id:064x}")).unwrap()
}

struct Node {
    engine: Engine,
    auth: NodeAuth,
    calls: Rc<Cell<u32>>,
}

fn node(anonymous: Anonymous, clients: Vec<ClientConfig>) -> Node {
    let auth = AuthConfig { anonymous, clients, ..AuthConfig::default() };
    let auth = NodeAuth::new(&auth, [9; 32]).unwrap();
    let calls = Rc::new(Cell::new(0));
    let mut d = Dispatcher::new();
    crate::ops::register_all(&mut d).unwrap();
    for op in [opcode::GET, opcode::SET, opcode::SETX] {
        d.register(op, "big", Box::new(Big(calls.clone()))).unwrap();
    }
    let engine = Engine::new(d, EngineLimits { requests_per_datagram_max: 8 }).with_gate(auth.gate());
    Node { engine, auth, calls }
}

/// A request datagram of `frames` from `client_id`, signed with `sign` (key id, timestamp, nonce)
/// and carrying `cookie`.
fn datagram(
    client_id: u64,
    frames: &[(u8, &[u8])],
    sign: Option<(u32, u64, u64)>,
    cookie: Option<[u8; 16]>,
) -> Vec<u8> {
    let mut flags = 0;
    if sign.is_some() {
        flags |= FLAG_AUTH;
    }
    if cookie.is_some() {
        flags |= FLAG_COOKIE;
    }
    let mut buf = vec![0u8; 1472];
    let mut w = DatagramWriter::request_with_blocks(&mut buf, client_id, flags).unwrap();
    for (i, (op, body)) in frames.iter().enumerate() {
        w.push(*op, 0, i as u64 + 1, body).unwrap();
    }
    let n = w.finish();
    buf.truncate(n);
    let creds = sign.map(|(key_id, ..)| creds(key_id));
    crate::auth::seal_request(
        &mut buf,
        cookie.as_ref(),
        sign.zip(creds.as_ref()).map(|((_, ts, nonce), c)| (c, ts, nonce)),
    );
    buf
}

type Got = Vec<(u8, Status, Vec<u8>)>;

fn run_from(n: &mut Node, req: &[u8], peer: Peer) -> Option<(Got, usize)> {
    let mut resp = vec![0u8; 1472];
    match n.engine.handle_datagram(req, &mut resp, peer, NOW) {
        Outcome::Drop | Outcome::Later => None,
        Outcome::Reply(len) => {
            let h = wire::decode_header(&resp).unwrap();
            let got = wire::Frames::new(&resp[..len], h.count)
                .map(|f| f.unwrap())
                .map(|f| (f.opcode, Status::from_u8(f.status).unwrap(), f.body.to_vec()))
                .collect();
            Some((got, len))
        }
    }
}

fn local() -> Peer {
    Peer::from_ip_port(Ipv4Addr::LOCALHOST, 4000)
}

fn remote() -> Peer {
    Peer::from_ip_port(Ipv4Addr::new(192, 0, 2, 7), 4000)
}

fn refused(n: &mut Node, req: &[u8], peer: Peer) -> Refusal {
    let (got, _) = run_from(n, req, peer).expect("answered");
    assert_eq!(got.len(), 1, "one frame for the whole datagram: {got:?}");
    let (op, status, body) = &got[0];
    assert_eq!((*op, *status), (wire::OPCODE_NONE, Status::AuthFailed));
    Refusal::from_u8(body[0]).expect("a known refusal byte")
}

fn keyed() -> Node {
    node(Anonymous::None, vec![principal("rw", 1, 100, "+@read +@write"), principal("ro", 2, 200, "+@read")])
}

#[test]
fn a_signed_datagram_runs_and_its_replay_is_refused() {
    let mut n = keyed();
    let d = datagram(100, &[(opcode::SET, b"k")], Some((1, NOW_MS, 7)), None);
    let (got, _) = run_from(&mut n, &d, remote()).unwrap();
    assert_eq!(got[0].1, Status::Ok);
    assert_eq!(refused(&mut n, &d, remote()), Refusal::Replayed);
    assert_eq!(n.calls.get(), 1, "the replay executed nothing");
    let c = n.engine.auth_counters();
    assert_eq!((c.authenticated, c.refused[Refusal::Replayed as usize - 1]), (1, 1));
}

#[test]
fn wrong_and_missing_credentials_execute_nothing() {
    let mut n = keyed();
    let mut d = datagram(100, &[(opcode::SET, b"k")], Some((1, NOW_MS, 1)), None);
    *d.last_mut().unwrap() ^= 1;
    assert_eq!(refused(&mut n, &d, local()), Refusal::BadMac, "a changed body");
    let mut d = datagram(100, &[(opcode::SET, b"k")], Some((1, NOW_MS, 2)), None);
    let mac_at = ext::auth_block_offset(FLAG_AUTH) + 24;
    d[mac_at] ^= 0x80;
    assert_eq!(refused(&mut n, &d, local()), Refusal::BadMac, "a changed MAC");
    // Signed with another key under key id 1.
    let mut d = datagram(100, &[(opcode::SET, b"k")], None, None);
    d[3] |= FLAG_AUTH;
    d.splice(16..16, [0u8; ext::AUTH_BLOCK_LEN]);
    crate::auth::sign(&mut d, &Credentials { key_id: 1, key: [0x55; 32] }, NOW_MS, 3);
    assert_eq!(refused(&mut n, &d, local()), Refusal::BadMac, "another key");
    let d = datagram(100, &[(opcode::SET, b"k")], None, None);
    assert_eq!(refused(&mut n, &d, local()), Refusal::CredentialsRequired, "no MAC at all");
    let d = datagram(100, &[(opcode::SET, b"k")], Some((9, NOW_MS, 4)), None);
    assert_eq!(refused(&mut n, &d, local()), Refusal::UnknownKey);
    let mut d = datagram(100, &[(opcode::SET, b"k")], Some((1, NOW_MS, 5)), None);
    d.truncate(30);
    assert_eq!(refused(&mut n, &d, local()), Refusal::Truncated);
    assert_eq!(n.calls.get(), 0);
}

#[test]
fn a_forged_client_id_is_refused() {
    let mut n = keyed();
    // Key 2 speaks for 200..204 only: it cannot write as client 100.
    let d = datagram(100, &[(opcode::SET, b"k")], Some((2, NOW_MS, 1)), None);
    assert_eq!(refused(&mut n, &d, local()), Refusal::ClientIdNotBound);
    // Anonymous datagrams may not use a bound client id either.
    let mut open = node(Anonymous::ReadWrite, vec![principal("rw", 1, 100, "+@read +@write")]);
    let d = datagram(101, &[(opcode::SET, b"k")], None, None);
    assert_eq!(refused(&mut open, &d, local()), Refusal::ClientIdReserved);
    let d = datagram(555, &[(opcode::SET, b"k")], None, None);
    assert_eq!(run_from(&mut open, &d, local()).unwrap().0[0].1, Status::Ok, "an unbound id is anyone's");
    assert_eq!(n.calls.get(), 0);
}

#[test]
fn stale_timestamps_expired_and_revoked_keys_are_refused() {
    let mut n = keyed();
    let old = NOW_MS - 31_000;
    let d = datagram(100, &[(opcode::PING, b"")], Some((1, old, 1)), None);
    assert_eq!(refused(&mut n, &d, local()), Refusal::StaleTimestamp);
    let d = datagram(100, &[(opcode::PING, b"")], Some((1, NOW_MS + 31_000, 2)), None);
    assert_eq!(refused(&mut n, &d, local()), Refusal::StaleTimestamp, "from the future");

    let mut p = principal("temp", 3, 300, "+@read");
    p.expires_unix_s = Some(NOW.0 / 1_000_000_000);
    let mut e = node(Anonymous::None, vec![p]);
    let d = datagram(300, &[(opcode::PING, b"")], Some((3, NOW_MS, 1)), None);
    assert_eq!(refused(&mut e, &d, local()), Refusal::Expired);

    let revoked = n.auth.keys.load().with_revoked("rw").unwrap();
    n.auth.keys.store(std::sync::Arc::new(revoked));
    let d = datagram(100, &[(opcode::PING, b"")], Some((1, NOW_MS, 3)), None);
    assert_eq!(refused(&mut n, &d, local()), Refusal::Revoked, "at the next datagram, on every shard");
}

#[test]
fn roles_are_enforced_per_opcode() {
    let mut n = keyed();
    let d = datagram(
        200,
        &[(opcode::PING, b""), (opcode::GET, b"k"), (opcode::SET, b"k")],
        Some((2, NOW_MS, 1)),
        None,
    );
    let (got, _) = run_from(&mut n, &d, local()).unwrap();
    let statuses: Vec<Status> = got.iter().map(|g| g.1).collect();
    assert_eq!(statuses, vec![Status::Ok, Status::Ok, Status::Forbidden]);
    assert_eq!(n.calls.get(), 1, "only the GET ran");
    assert_eq!(n.engine.auth_counters().forbidden, 1);

    let mut ro = node(Anonymous::ReadOnly, vec![]);
    let d = datagram(0, &[(opcode::SET, b"k"), (opcode::GET, b"k"), (0xee, b"")], None, None);
    let statuses: Vec<Status> = run_from(&mut ro, &d, local()).unwrap().0.iter().map(|g| g.1).collect();
    assert_eq!(statuses, vec![Status::Forbidden, Status::Ok, Status::UnknownOpcode]);
}

#[test]
fn an_unproven_source_gets_a_cookie_instead_of_a_large_answer() {
    let mut n = node(Anonymous::ReadWrite, vec![principal("rw", 1, 100, "+@read +@write")]);
    let get = datagram(0, &[(opcode::GET, b"k")], None, None);
    let (got, len) = run_from(&mut n, &get, remote()).unwrap();
    assert_eq!(got[0].1, Status::AddressUnproven);
    assert!(len <= 3 * get.len(), "{len} bytes answer {} bytes", get.len());
    assert_eq!(n.calls.get(), 0, "not executed");
    let cookie: [u8; 16] = got[0].2.as_slice().try_into().unwrap();

    // With the cookie, from the same address: answered in full.
    let with = datagram(0, &[(opcode::GET, b"k")], None, Some(cookie));
    let (got, len) = run_from(&mut n, &with, remote()).unwrap();
    assert_eq!((got[0].1, len > BIG), (Status::Ok, true));
    // The cookie proves only the address it was given to.
    let elsewhere = Peer::from_ip_port(Ipv4Addr::new(198, 51, 100, 1), 4000);
    assert_eq!(run_from(&mut n, &with, elsewhere).unwrap().0[0].1, Status::AddressUnproven);
    // Loopback and authenticated datagrams are proven.
    assert_eq!(run_from(&mut n, &get, local()).unwrap().0[0].1, Status::Ok);
    let signed = datagram(100, &[(opcode::GET, b"k")], Some((1, NOW_MS, 1)), None);
    assert_eq!(run_from(&mut n, &signed, remote()).unwrap().0[0].1, Status::Ok);
    // A SETX asking for the old value needs the proof too; a plain one does not.
    let setx_get = datagram(0, &[(opcode::SETX, &[crate::kv::set_flags::GET])], None, None);
    assert_eq!(run_from(&mut n, &setx_get, remote()).unwrap().0[0].1, Status::AddressUnproven);
    let setx = datagram(0, &[(opcode::SETX, &[0])], None, None);
    let before = n.calls.get();
    let _ = run_from(&mut n, &setx, remote());
    assert_eq!(n.calls.get(), before + 1, "executed (its stand-in's big answer is then dropped)");
}

#[test]
fn an_answer_over_the_bound_to_an_unproven_source_is_never_sent() {
    // SET's stand-in here answers 1000 bytes, which no real SET does: the last check drops it.
    let mut n = node(Anonymous::ReadWrite, vec![]);
    let set = datagram(0, &[(opcode::SET, b"k")], None, None);
    assert!(run_from(&mut n, &set, remote()).is_none());
    assert_eq!(n.engine.auth_counters().amplification_dropped, 1);
    assert!(run_from(&mut n, &set, local()).is_some(), "loopback is proven");
}

#[test]
fn too_many_sessions_refuses_new_clients_until_one_goes_idle() {
    let auth = AuthConfig {
        replay_windows_max: 2,
        clients: vec![principal("rw", 1, 100, "+@read +@write")],
        ..AuthConfig::default()
    };
    let auth = NodeAuth::new(&auth, [9; 32]).unwrap();
    let mut d = Dispatcher::new();
    crate::ops::register_all(&mut d).unwrap();
    let mut e = Engine::new(d, EngineLimits { requests_per_datagram_max: 8 }).with_gate(auth.gate());
    let mut send_at = |client: u64, ts: u64, at: Nanos, nonce: u64| {
        let d = datagram(client, &[(opcode::PING, b"")], Some((1, ts, nonce)), None);
        let mut resp = vec![0u8; 1472];
        let Outcome::Reply(n) = e.handle_datagram(&d, &mut resp, local(), at) else { panic!("no answer") };
        let h = wire::decode_header(&resp).unwrap();
        let f = wire::Frames::new(&resp[..n], h.count).next().unwrap().unwrap();
        (Status::from_u8(f.status).unwrap(), f.body.first().copied())
    };
    let mut send = |client: u64, at: Nanos, nonce: u64| send_at(client, at.0 / 1_000_000, at, nonce);
    assert_eq!(send(100, NOW, 1).0, Status::Ok);
    assert_eq!(send(101, NOW, 1).0, Status::Ok);
    assert_eq!(send(102, NOW, 1), (Status::AuthFailed, Some(Refusal::TooManySessions as u8)));
    // 31 s later the first two windows are past the bound: forgotten, room again.
    let later = Nanos(NOW.0 + 31_000_000_000);
    assert_eq!(send(102, later, 1).0, Status::Ok);
    // Client 100's old datagram, sent again, is refused by its timestamp now that its window is gone.
    assert_eq!(send_at(100, NOW_MS, later, 1), (Status::AuthFailed, Some(Refusal::StaleTimestamp as u8)));
}
