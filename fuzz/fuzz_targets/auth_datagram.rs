//! Authenticated datagrams: the cookie and authentication blocks (`auth::ext`) and the gate's
//! admission (`auth::gate`) in front of the engine, from a loopback or an unproven source.
//!
//! The input's first byte picks the source (bit 0: unproven) and whether the harness signs the
//! rest with a real key (bit 1) before flipping the byte the second input byte names (bit 2), so
//! both the accepted path and near-misses of a valid MAC are reached, not only garbage.
//!
//! Checks: nothing panics; an `AUTH_FAILED` answer means no handler ran; no answer to an unproven
//! source is larger than 3x its request; every answer is a well-formed response datagram.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::cell::Cell;
use std::rc::Rc;
use vigil::auth::{Credentials, NodeAuth};
use vigil::config::{Anonymous, AuthConfig, ClientConfig};
use vigil::dispatch::{Answer, Dispatcher, Handler, Request};
use vigil::engine::{Engine, EngineLimits, Outcome};
use vigil::wire::{self, opcode, Status};
use vigil_pmd::{Nanos, Peer};

const NOW: Nanos = Nanos(1_800_000_000_000_000_000);
const KEY_HEX: &str = "1111111111111111111111111111111111111111111111111111111111111111";

/// Answers with as many bytes as the request's first body byte says (up to 255), counting calls.
struct Sized(Rc<Cell<u32>>);

impl Handler for Sized {
    fn handle(&mut self, req: &Request<'_>, out: &mut [u8]) -> Result<Answer, Status> {
        self.0.set(self.0.get() + 1);
        let n = usize::from(req.body.first().copied().unwrap_or(0)).min(out.len());
        out[..n].fill(0x61);
        Ok(Answer::Now(n))
    }
}

fn principal(name: &str, key_id: u32, client_id: u64, acl: &str) -> ClientConfig {
    ClientConfig {
        name: name.into(),
        key_id,
        client_id,
        client_ids: 8,
        key: Some(KEY_HEX.into()),
        password: None,
        acl: acl.into(),
        expires_unix_s: None,
        keys_max: None,
        bytes_max: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let Some((&flip_at, rest)) = rest.split_first() else { return };
    let auth = AuthConfig {
        anonymous: Anonymous::ReadOnly,
        replay_windows_max: 4,
        clients: vec![principal("rw", 1, 100, "+@read +@write"), principal("ro", 2, 200, "+@read")],
        ..AuthConfig::default()
    };
    let auth = NodeAuth::new(&auth, [5; 32]).expect("valid auth config");
    let calls = Rc::new(Cell::new(0));
    let mut d = Dispatcher::new();
    vigil::ops::register_all(&mut d).expect("registers");
    for op in [opcode::GET, opcode::SET, opcode::SETX] {
        d.register(op, "sized", Box::new(Sized(calls.clone()))).expect("registers");
    }
    let mut engine = Engine::new(d, EngineLimits { requests_per_datagram_max: 8 }).with_gate(auth.gate());
    let mut request = rest.to_vec();
    let room = |r: &[u8]| {
        let at = vigil::auth::ext::auth_block_offset(r[3] | vigil::auth::ext::FLAG_AUTH);
        r.len() >= at + vigil::auth::ext::AUTH_BLOCK_LEN
    };
    if mode & 2 != 0 && request.len() >= wire::HEADER_LEN && room(&request) {
        request[3] |= vigil::auth::ext::FLAG_AUTH;
        let creds = Credentials::from_hex(1 + u32::from(mode >> 7), KEY_HEX).expect("hex");
        vigil::auth::sign(&mut request, &creds, NOW.0 / 1_000_000, u64::from(mode));
        if mode & 4 != 0 {
            let i = usize::from(flip_at) % request.len();
            request[i] ^= 0x01;
        }
    }
    let peer = if mode & 1 != 0 {
        Peer::from_ip_port(std::net::Ipv4Addr::new(192, 0, 2, 1), 7)
    } else {
        Peer::from_ip_port(std::net::Ipv4Addr::LOCALHOST, 7)
    };
    let mut resp = [0u8; 1472];
    let before = calls.get();
    if let Outcome::Reply(n) = engine.handle_datagram(&request, &mut resp, peer, NOW) {
        let h = wire::decode_header(&resp[..n]).expect("a response header");
        assert!(h.is_response() && h.count > 0);
        let frames: Vec<_> = wire::Frames::new(&resp[..n], h.count).collect();
        assert!(frames.iter().all(|f| f.is_ok()), "a response frame does not decode");
        let refused = frames.iter().any(|f| f.as_ref().is_ok_and(|f| f.status == Status::AuthFailed as u8));
        if refused {
            assert_eq!(calls.get(), before, "a refused datagram ran a handler");
            assert_eq!(h.count, 1);
        }
        let authenticated = engine.auth_counters().authenticated > 0;
        if mode & 1 != 0 && !authenticated {
            assert!(n <= 3 * request.len(), "{n} bytes to an unproven source for {}", request.len());
        }
    }
});
