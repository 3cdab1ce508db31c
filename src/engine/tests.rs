//! The engine's answers to good, bad and hostile datagrams (docs/PROTOCOL.md, "Errors").

use super::*;
use crate::kv::protocol::{encode_write_body, parse_write, render_result, request_body_len};
use crate::kv::{KvLimits, Op};
use crate::ops;
use crate::projection::Router;
use crate::wire::{opcode, DatagramWriter, Frame};
use proptest::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;

fn engine() -> Engine {
    let mut d = Dispatcher::new();
    ops::register_all(&mut d).unwrap();
    Engine::new(d, EngineLimits { requests_per_datagram_max: 8 })
}

fn request(frames: &[(u8, u64, &[u8])]) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let mut w = DatagramWriter::request(&mut buf, 77).unwrap();
    for (op, id, body) in frames {
        w.push(*op, 0, *id, body).unwrap();
    }
    let n = w.finish();
    buf.truncate(n);
    buf
}

/// Runs `req` and returns the answers as (opcode, status, request_id, body).
/// An answer as (opcode, status, request id, body).
type Answer = (u8, Status, u64, Vec<u8>);

fn run(e: &mut Engine, req: &[u8]) -> Option<Vec<Answer>> {
    let mut resp = vec![0u8; 1472];
    match e.handle_datagram(req, &mut resp, crate::dispatch::tests::test_peer(), Nanos(5)) {
        Outcome::Drop | Outcome::Later => None,
        Outcome::Reply(n) => {
            let resp = &resp[..n];
            let h = wire::decode_header(resp).unwrap();
            assert!(h.is_response());
            assert_eq!(h.version, wire::VERSION);
            let frames: Vec<Frame<'_>> = wire::Frames::new(resp, h.count).map(|f| f.unwrap()).collect();
            Some(
                frames
                    .into_iter()
                    .map(|f| (f.opcode, Status::from_u8(f.status).unwrap(), f.request_id, f.body.to_vec()))
                    .collect(),
            )
        }
    }
}

#[test]
fn ping_and_echo_in_one_datagram_are_answered_in_order() {
    let mut e = engine();
    let got = run(&mut e, &request(&[(opcode::PING, 1, b""), (opcode::ECHO, 2, b"abc")])).unwrap();
    assert_eq!(
        got,
        vec![(opcode::PING, Status::Ok, 1, vec![]), (opcode::ECHO, Status::Ok, 2, b"abc".to_vec())]
    );
    assert_eq!(e.counters().requests, 2);
    assert_eq!(e.counters().answers_ok, 2);
}

#[test]
fn client_id_is_echoed() {
    let mut e = engine();
    let mut resp = [0u8; 256];
    let Outcome::Reply(n) = e.handle_datagram(
        &request(&[(opcode::PING, 1, b"")]),
        &mut resp,
        crate::dispatch::tests::test_peer(),
        Nanos(0),
    ) else {
        panic!("dropped")
    };
    assert_eq!(wire::decode_header(&resp[..n]).unwrap().client_id, 77);
}

#[test]
fn unknown_opcode_is_answered_and_the_rest_still_run() {
    let mut e = engine();
    let got = run(&mut e, &request(&[(250, 1, b""), (opcode::PING, 2, b"")])).unwrap();
    assert_eq!(got[0], (250, Status::UnknownOpcode, 1, vec![]));
    assert_eq!(got[1], (opcode::PING, Status::Ok, 2, vec![]));
}

#[test]
fn short_foreign_and_response_datagrams_are_dropped_and_counted() {
    let mut e = engine();
    assert_eq!(run(&mut e, b"VG\x01"), None);
    assert_eq!(run(&mut e, &[0xAB; 40]), None);
    let mut resp_flagged = request(&[(opcode::PING, 1, b"")]);
    resp_flagged[3] = wire::FLAG_RESPONSE;
    assert_eq!(run(&mut e, &resp_flagged), None);
    let c = e.counters();
    assert_eq!((c.dropped_short, c.dropped_bad_magic, c.dropped_response), (1, 1, 1));
}

#[test]
fn version_mismatch_names_the_supported_range() {
    let mut e = engine();
    let mut req = request(&[(opcode::PING, 1, b"")]);
    req[2] = 9;
    let got = run(&mut e, &req).unwrap();
    assert_eq!(got, vec![(0, Status::VersionMismatch, 0, vec![1, 1])]);
    assert_eq!(e.counters().requests, 0);
}

#[test]
fn too_many_frames_executes_nothing() {
    let mut e = engine();
    let frames: Vec<(u8, u64, &[u8])> = (0..9).map(|i| (opcode::PING, i, &b""[..])).collect();
    let got = run(&mut e, &request(&frames)).unwrap();
    assert_eq!(got, vec![(0, Status::TooManyRequests, 0, 8u16.to_le_bytes().to_vec())]);
    assert_eq!(e.counters().requests, 0);
}

#[test]
fn oversized_count_with_missing_frames_is_malformed_and_runs_nothing() {
    let mut e = engine();
    let mut req = request(&[(opcode::PING, 1, b"")]);
    req[4..6].copy_from_slice(&3u16.to_le_bytes());
    let got = run(&mut e, &req).unwrap();
    assert_eq!(got, vec![(0, Status::Malformed, 0, vec![])]);
    assert_eq!(e.counters().requests, 0);
}

#[test]
fn body_past_end_is_bad_length_for_that_frame_and_runs_nothing() {
    let mut e = engine();
    let mut req = request(&[(opcode::PING, 1, b""), (opcode::ECHO, 2, b"abcdef")]);
    req.truncate(req.len() - 2);
    let got = run(&mut e, &req).unwrap();
    assert_eq!(got, vec![(opcode::ECHO, Status::BadLength, 2, vec![])]);
    assert_eq!(e.counters().requests, 0);
}

#[test]
fn trailing_bytes_and_empty_datagrams_are_malformed_and_run_nothing() {
    let mut e = engine();
    let mut req = request(&[(opcode::PING, 1, b"")]);
    req.extend_from_slice(b"junk");
    let got = run(&mut e, &req).unwrap();
    assert_eq!(got, vec![(0, Status::Malformed, 0, vec![])]);
    let got = run(&mut e, &request(&[])).unwrap();
    assert_eq!(got, vec![(0, Status::Malformed, 0, vec![])]);
    assert_eq!(e.counters().requests, 0);
    assert_eq!(e.counters().framing_errors, 2);
}

/// Issue 8: a SET frame whose `body_len` is 5 bytes short of its body (the last 5 value bytes left
/// after the frame) wrote the first part of the value, then answered MALFORMED. Nothing may run.
#[test]
fn a_set_frame_shorter_than_its_body_writes_nothing() {
    let (mut e, kv) = kv_engine();
    let body = set_body(b"key", b"the whole value");
    let mut req = request(&[(opcode::SET, 1, &body)]);
    let frame = wire::HEADER_LEN;
    req[frame + 4..frame + 8].copy_from_slice(&((body.len() - 5) as u32).to_le_bytes());
    let got = run(&mut e, &req).unwrap();
    assert_eq!(got, vec![(0, Status::Malformed, 0, vec![])]);
    assert_eq!(kv.borrow().kv().get(b"key"), None);
    assert_eq!(kv.borrow().applied_lsn(), 0);
    // The same frame in a well-framed datagram is a SET of the shorter value: it parses exactly.
    req.truncate(req.len() - 5);
    let got = run(&mut e, &req).unwrap();
    assert_eq!(got[0].1, Status::Ok);
    assert_eq!(kv.borrow().kv().get(b"key"), Some((&b"the whole "[..], crate::projection::v(1))));
}

/// A KV handler that applies writes straight to a projection (one lsn per write, no log): the real
/// parser, state machine and renderer, without the Raft pipeline in between.
struct DirectKv(Rc<RefCell<Router>>);

impl crate::dispatch::Handler for DirectKv {
    fn handle(&mut self, req: &Request<'_>, out: &mut [u8]) -> Result<crate::dispatch::Answer, Status> {
        let mut kv = self.0.borrow_mut();
        if req.opcode == opcode::GET {
            return kv.kv().answer_get(req.body, out).map(crate::dispatch::Answer::Now);
        }
        let cmd = parse_write(req.opcode, req.client_id, req.request_id, req.body)
            .map_err(|_| Status::BadRequest)?;
        let lsn = kv.applied_lsn() + 1;
        let result = kv.apply_kv(lsn, &cmd);
        render_result(&result, out).map(crate::dispatch::Answer::Now)
    }
}

fn kv_engine() -> (Engine, Rc<RefCell<Router>>) {
    let kv = Rc::new(RefCell::new(Router::new(KvLimits::small(), Vec::new())));
    let mut d = Dispatcher::new();
    ops::register_all(&mut d).unwrap();
    // Every opcode `parse_write` takes (the mutation test's twin applies whatever parses: a flipped
    // opcode byte can turn INCR 0x13 into CAD 0x1c), and GET.
    for op in [
        opcode::SET,
        opcode::DEL,
        opcode::INCR,
        opcode::CAS,
        opcode::SETX,
        opcode::EXPIRE,
        opcode::PERSIST,
        opcode::MSET,
        opcode::CAD,
        opcode::GET,
    ] {
        d.register(op, "direct-kv", Box::new(DirectKv(kv.clone()))).unwrap();
    }
    (Engine::new(d, EngineLimits { requests_per_datagram_max: 8 }), kv)
}

fn set_body(key: &[u8], value: &[u8]) -> Vec<u8> {
    write_body(&Op::Set { key, value })
}

fn write_body(op: &Op<'_>) -> Vec<u8> {
    let mut out = vec![0u8; request_body_len(op)];
    encode_write_body(op, &mut out).unwrap();
    out
}

fn snapshot_of(kv: &Router) -> Vec<u8> {
    let mut out = Vec::new();
    kv.snapshot(&mut out);
    out
}

/// A request frame as (opcode, request id, body).
type OwnedFrame = (u8, u64, Vec<u8>);

/// The reference reading of a request datagram: `Some(frames)` only if it is a version-1 request
/// whose `count` (1..=8) frames end exactly at its end.
fn strict_frames(req: &[u8]) -> Option<(u64, Vec<OwnedFrame>)> {
    let h = wire::decode_header(req).ok()?;
    if h.is_response() || h.version != wire::VERSION || h.count == 0 || h.count > 8 {
        return None;
    }
    // Blocks announced by the flags come first (a flipped flag bit moves the frames).
    let offset = wire::HEADER_LEN + crate::auth::ext::extensions_len(h.flags);
    let mut frames = wire::Frames::at(req, offset, h.count);
    let out: Vec<_> = frames
        .by_ref()
        .map(|f| f.map(|f| (f.opcode, f.request_id, f.body.to_vec())))
        .collect::<Result<_, _>>()
        .ok()?;
    frames.remainder().is_empty().then_some((h.client_id, out))
}

fn arb_write() -> impl Strategy<Value = (u8, Vec<u8>, Vec<u8>, i64, u64)> {
    (
        prop_oneof![Just(opcode::SET), Just(opcode::DEL), Just(opcode::INCR), Just(opcode::CAS)],
        proptest::collection::vec(any::<u8>(), 0..12),
        proptest::collection::vec(any::<u8>(), 0..40),
        any::<i64>(),
        0u64..4,
    )
}

#[derive(Clone, Debug)]
enum Mutation {
    Truncate(prop::sample::Index),
    Extend(Vec<u8>),
    Flip(prop::sample::Index, u8),
    BodyLen(prop::sample::Index, i8),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        proptest::collection::vec(any::<u8>(), 1..8).prop_map(Mutation::Extend),
        (any::<prop::sample::Index>(), 1u8..).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<prop::sample::Index>(), any::<i8>()).prop_map(|(i, d)| Mutation::BodyLen(i, d)),
    ]
}

fn mutate(req: &mut Vec<u8>, frame_at: &[usize], m: &Mutation) {
    match m {
        Mutation::Truncate(i) => req.truncate(i.index(req.len())),
        Mutation::Extend(bytes) => req.extend_from_slice(bytes),
        Mutation::Flip(i, b) => {
            let i = i.index(req.len());
            req[i] ^= b;
        }
        Mutation::BodyLen(i, d) => {
            let at = frame_at[i.index(frame_at.len())] + 4;
            if at + 4 > req.len() {
                return;
            }
            let len = u32::from_le_bytes(req[at..at + 4].try_into().unwrap());
            req[at..at + 4].copy_from_slice(&len.wrapping_add_signed(i32::from(*d)).to_le_bytes());
        }
    }
}

#[test]
fn a_full_response_leaves_requests_unexecuted_and_counted() {
    let mut e = Engine::new(
        {
            let mut d = Dispatcher::new();
            ops::register_all(&mut d).unwrap();
            d
        },
        EngineLimits { requests_per_datagram_max: 8 },
    );
    // Two 40-byte echoes into a response buffer with room for one answer plus one frame header.
    let body = [1u8; 40];
    let req = request(&[(opcode::ECHO, 1, &body), (opcode::ECHO, 2, &body), (opcode::PING, 3, b"")]);
    let mut resp = [0u8; wire::HEADER_LEN + 2 * wire::FRAME_HEADER_LEN + 40];
    let Outcome::Reply(n) = e.handle_datagram(&req, &mut resp, crate::dispatch::tests::test_peer(), Nanos(0))
    else {
        panic!("dropped")
    };
    let h = wire::decode_header(&resp[..n]).unwrap();
    let statuses: Vec<_> = wire::Frames::new(&resp[..n], h.count).map(|f| f.unwrap().status).collect();
    assert_eq!(statuses, vec![Status::Ok as u8, Status::ResponseTooLarge as u8]);
    assert_eq!(e.counters().unanswered_no_room, 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Random bytes, with and without a valid-looking header, never panic; any answer parses.
    #[test]
    fn garbage_gets_a_well_formed_answer_or_a_drop(
        body in proptest::collection::vec(any::<u8>(), 0..600),
        header_kind in 0u8..3,
        count in any::<u16>(),
    ) {
        let mut req = body;
        if header_kind > 0 && req.len() >= wire::HEADER_LEN {
            req[0..2].copy_from_slice(&wire::MAGIC);
            req[2] = if header_kind == 1 { wire::VERSION } else { req[2] };
            req[3] = 0;
            req[4..6].copy_from_slice(&(count % 12).to_le_bytes());
        }
        let mut e = engine();
        let mut resp = vec![0u8; 1472];
        if let Outcome::Reply(n) = e.handle_datagram(&req, &mut resp, crate::dispatch::tests::test_peer(), Nanos(0)) {
            let h = wire::decode_header(&resp[..n]).unwrap();
            prop_assert!(h.is_response());
            let frames: Vec<_> = wire::Frames::new(&resp[..n], h.count).collect();
            prop_assert!(frames.iter().all(|f| f.is_ok()));
            prop_assert!(!frames.is_empty());
        }
    }

    /// Valid datagrams of PING/ECHO get exactly one OK answer per frame, in order.
    #[test]
    fn valid_requests_are_answered_one_for_one(
        frames in proptest::collection::vec((any::<bool>(), any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..64)), 1..8),
    ) {
        let owned: Vec<(u8, u64, Vec<u8>)> = frames.into_iter()
            .map(|(ping, id, body)| if ping { (opcode::PING, id, vec![]) } else { (opcode::ECHO, id, body) })
            .collect();
        let refs: Vec<(u8, u64, &[u8])> = owned.iter().map(|(o, i, b)| (*o, *i, &b[..])).collect();
        let mut e = engine();
        let got = run(&mut e, &request(&refs)).unwrap();
        let want: Vec<_> = owned.into_iter().map(|(o, i, b)| (o, Status::Ok, i, b)).collect();
        prop_assert_eq!(got, want);
    }

    /// Valid KV write datagrams, truncated, extended, flipped or with a frame length changed: either
    /// the datagram is refused and the state does not change, or it parses exactly (frames and
    /// bodies) and the state is that of applying the commands it parses to.
    #[test]
    fn mutated_writes_are_refused_whole_or_parse_exactly(
        writes in proptest::collection::vec(arb_write(), 1..4),
        mutations in proptest::collection::vec(arb_mutation(), 1..3),
    ) {
        let bodies: Vec<(u8, Vec<u8>)> = writes.iter().map(|(op, key, value, delta, expected)| {
            let op = match *op {
                opcode::SET => Op::Set { key, value },
                opcode::DEL => Op::Del { key },
                opcode::INCR => Op::Incr { key, delta: *delta },
                _ => Op::Cas { key, expected_version: *expected, value },
            };
            (op.opcode(), write_body(&op))
        }).collect();
        let frames: Vec<(u8, u64, &[u8])> =
            bodies.iter().enumerate().map(|(i, (op, b))| (*op, i as u64 + 1, &b[..])).collect();
        let mut req = request(&frames);
        let mut frame_at = vec![wire::HEADER_LEN];
        for (_, b) in &bodies[..bodies.len() - 1] {
            frame_at.push(frame_at.last().unwrap() + wire::FRAME_HEADER_LEN + b.len());
        }
        for m in &mutations {
            if !req.is_empty() {
                mutate(&mut req, &frame_at, m);
            }
        }
        let (mut e, kv) = kv_engine();
        let mut twin = Router::new(KvLimits::small(), Vec::new());
        let before = snapshot_of(&kv.borrow());
        let _ = run(&mut e, &req);
        match strict_frames(&req) {
            None => {
                prop_assert_eq!(snapshot_of(&kv.borrow()), before);
                prop_assert_eq!(e.counters().requests, 0);
            }
            Some((client_id, parsed)) => {
                for (op, id, body) in &parsed {
                    let Ok(cmd) = parse_write(*op, client_id, *id, body) else { continue };
                    // Exact: the command re-encodes to the very body it came from.
                    prop_assert_eq!(&write_body(&cmd.op), body);
                    let lsn = twin.applied_lsn() + 1;
                    twin.apply_kv(lsn, &cmd);
                }
                prop_assert_eq!(snapshot_of(&kv.borrow()), snapshot_of(&twin));
            }
        }
    }
}
