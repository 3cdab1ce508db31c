//! Wire v1 datagrams: the codec (`wire::decode_header`, `wire::Frames`) and the engine's handling of
//! a whole datagram, with PING/ECHO and the KV opcodes applied straight to a projection.
//!
//! Checks: nothing panics; every answer is a well-formed response datagram; a datagram that does
//! not frame exactly (docs/PROTOCOL.md) changes no KV state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::rc::Rc;
use vigil::dispatch::{Answer, Dispatcher, Handler, Request};
use vigil::engine::{Engine, EngineLimits, Outcome};
use vigil::kv::protocol::{parse_write, render_result};
use vigil::kv::KvLimits;
use vigil::projection::Router;
use vigil::wire::{self, opcode, Status};
use vigil_pmd::{Nanos, Peer};

const FRAMES_MAX: u16 = 8;

/// KV writes applied to the projection at once (one lsn each), reads answered from it.
struct DirectKv(Rc<RefCell<Router>>);

impl Handler for DirectKv {
    fn handle(&mut self, req: &Request<'_>, out: &mut [u8]) -> Result<Answer, Status> {
        let mut kv = self.0.borrow_mut();
        if req.opcode == opcode::GET {
            return kv.kv().answer_get(req.body, out).map(Answer::Now);
        }
        let cmd = parse_write(req.opcode, req.client_id, req.request_id, req.body)
            .map_err(|_| Status::BadRequest)?;
        let lsn = kv.applied_lsn() + 1;
        let result = kv.apply_kv(lsn, &cmd);
        render_result(&result, out).map(Answer::Now)
    }
}

/// True if `d` is a version-1 request of 1..=FRAMES_MAX frames that end exactly at its end.
fn frames_exactly(d: &[u8]) -> bool {
    let Ok(h) = wire::decode_header(d) else { return false };
    if h.is_response() || h.version != wire::VERSION || h.count == 0 || h.count > FRAMES_MAX {
        return false;
    }
    // The blocks a header flag announces come first (the engine skips them without a gate).
    let offset = wire::HEADER_LEN + vigil::auth::ext::extensions_len(h.flags);
    let mut frames = wire::Frames::at(d, offset, h.count);
    frames.by_ref().all(|f| f.is_ok()) && frames.remainder().is_empty()
}

fuzz_target!(|data: &[u8]| {
    let kv = Rc::new(RefCell::new(Router::new(KvLimits::small(), Vec::new())));
    let mut d = Dispatcher::new();
    vigil::ops::register_all(&mut d).expect("registers");
    for op in [opcode::GET, opcode::SET, opcode::DEL, opcode::INCR, opcode::CAS] {
        d.register(op, "kv", Box::new(DirectKv(kv.clone()))).expect("registers");
    }
    let mut engine = Engine::new(d, EngineLimits { requests_per_datagram_max: FRAMES_MAX });
    let mut resp = [0u8; 1472];
    let peer = Peer::from_ip_port(std::net::Ipv4Addr::LOCALHOST, 1);
    if let Outcome::Reply(n) = engine.handle_datagram(data, &mut resp, peer, Nanos(0)) {
        let h = wire::decode_header(&resp[..n]).expect("a response header");
        assert!(h.is_response() && h.count > 0);
        let mut frames = wire::Frames::new(&resp[..n], h.count);
        assert!(frames.by_ref().all(|f| f.is_ok()), "a response frame does not decode");
        assert!(frames.remainder().is_empty(), "bytes after the response's frames");
    }
    if !frames_exactly(data) {
        assert_eq!(kv.borrow().applied_lsn(), 0, "a datagram that does not frame exactly changed state");
        assert_eq!(engine.counters().requests, 0);
    }
});
