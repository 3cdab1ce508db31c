//! The engine's answers to good, bad and hostile datagrams (docs/PROTOCOL.md, "Errors").

use super::*;
use crate::ops;
use crate::wire::{opcode, DatagramWriter, Frame};
use proptest::prelude::*;

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
fn oversized_count_with_missing_frames_is_malformed_after_the_good_ones() {
    let mut e = engine();
    let mut req = request(&[(opcode::PING, 1, b"")]);
    req[4..6].copy_from_slice(&3u16.to_le_bytes());
    let got = run(&mut e, &req).unwrap();
    assert_eq!(got, vec![(opcode::PING, Status::Ok, 1, vec![]), (0, Status::Malformed, 0, vec![])]);
}

#[test]
fn body_past_end_is_bad_length_for_that_frame() {
    let mut e = engine();
    let mut req = request(&[(opcode::PING, 1, b""), (opcode::ECHO, 2, b"abcdef")]);
    req.truncate(req.len() - 2);
    let got = run(&mut e, &req).unwrap();
    assert_eq!(
        got,
        vec![(opcode::PING, Status::Ok, 1, vec![]), (opcode::ECHO, Status::BadLength, 2, vec![])]
    );
}

#[test]
fn trailing_bytes_and_empty_datagrams_are_malformed() {
    let mut e = engine();
    let mut req = request(&[(opcode::PING, 1, b"")]);
    req.extend_from_slice(b"junk");
    let got = run(&mut e, &req).unwrap();
    assert_eq!(got, vec![(opcode::PING, Status::Ok, 1, vec![]), (0, Status::Malformed, 0, vec![])]);
    let got = run(&mut e, &request(&[])).unwrap();
    assert_eq!(got, vec![(0, Status::Malformed, 0, vec![])]);
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
}
