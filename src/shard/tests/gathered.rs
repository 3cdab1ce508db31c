//! Late answers gathered per client: the answers one poll of the service hands over for the same
//! peer and client id leave in one datagram of several frames, decodable and in order; a datagram
//! that is full continues in the next one; more clients than the table of open datagrams are
//! all answered; a gathered answer's reservation returns free.

use super::{peer, shard, MemIo};
use crate::shard::gather::OPEN_DATAGRAMS_MAX;
use crate::shard::{AnswerReservations, LateAnswer, ShardService};
use crate::wire::{self, opcode, Status};
use vigil_pmd::{Nanos, Peer};

/// At the first poll, emits one late answer per `(peer, client_id)` in `to`, in that order
/// (request ids 0, 1, ...), each with a reservation taken for it first, as a KV write has.
struct Scripted {
    to: Vec<(Peer, u64)>,
    body_len: usize,
    reservations: AnswerReservations,
}

impl Scripted {
    fn new(to: Vec<(Peer, u64)>, body_len: usize) -> Self {
        Self { to, body_len, reservations: AnswerReservations::new() }
    }
}

impl ShardService for Scripted {
    fn poll(&mut self, _now: Nanos, emit: &mut dyn FnMut(&LateAnswer<'_>)) -> bool {
        let body = vec![0xab; self.body_len];
        for (id, (peer, client_id)) in std::mem::take(&mut self.to).into_iter().enumerate() {
            assert!(self.reservations.try_take(), "the reserve covers the script");
            let a = LateAnswer {
                peer,
                client_id,
                opcode: opcode::SET,
                request_id: id as u64,
                status: Status::Ok,
                body: &body,
                arrived: Nanos(0),
            };
            emit(&a);
        }
        false
    }
    fn attach_reservations(&mut self, reservations: AnswerReservations) {
        self.reservations = reservations;
    }
}

/// Each datagram sent: (peer, client id, request ids of its frames in order); every frame checked
/// to decode, to be a SET answer and to end exactly at the datagram's end.
fn datagrams(sent: &[(Peer, Vec<u8>)]) -> Vec<(Peer, u64, Vec<u64>)> {
    sent.iter()
        .map(|(p, bytes)| {
            let h = wire::decode_header(bytes).expect("a header");
            assert!(h.is_response());
            let mut frames = wire::Frames::new(bytes, h.count);
            let ids = frames
                .by_ref()
                .map(|f| {
                    let f = f.expect("a decodable frame");
                    assert_eq!((f.opcode, f.status), (opcode::SET, Status::Ok as u8));
                    f.request_id
                })
                .collect();
            assert!(frames.remainder().is_empty(), "no bytes after the last frame");
            (*p, h.client_id, ids)
        })
        .collect()
}

fn run(script: Vec<(Peer, u64)>, body_len: usize) -> super::Shard<MemIo> {
    let mut s =
        shard(MemIo::new(usize::MAX, 10_000), 4).with_service(Box::new(Scripted::new(script, body_len)));
    s.poll_once(Nanos(1));
    s
}

#[test]
fn late_answers_for_one_client_leave_in_one_datagram_in_order() {
    let (a, b) = (peer(1), peer(2));
    // Interleaved: client 3 at a, client 3 at b, client 4 at a (another client behind a).
    let script: Vec<(Peer, u64)> = (0..12).map(|i| [(a, 3), (b, 3), (a, 4)][i % 3]).collect();
    let s = run(script, 8);
    let got = datagrams(&s.io.sent);
    assert_eq!(
        got,
        [(a, 3, vec![0, 3, 6, 9]), (b, 3, vec![1, 4, 7, 10]), (a, 4, vec![2, 5, 8, 11])],
        "one datagram per client, its frames in the order answered"
    );
    let c = s.report().shard_counters;
    assert_eq!((c.late_answers, c.late_datagrams, c.tx_datagrams), (12, 3, 3));
    // Three buffers went out; the nine gathered answers' reservations returned free.
    let r = s.reservations();
    assert_eq!((r.taken(), r.free()), (0, s.late.reserve.len()));
    assert_eq!(s.late.reserve.len(), super::RESERVED - 3);
}

#[test]
fn a_full_datagram_continues_in_the_next_one_in_order() {
    let body_len = 100;
    let per_datagram = (1472 - wire::HEADER_LEN) / (wire::FRAME_HEADER_LEN + body_len);
    let answers = 2 * per_datagram + 3;
    let s = run(vec![(peer(9), 5); answers], body_len);
    let got = datagrams(&s.io.sent);
    let sizes: Vec<usize> = got.iter().map(|(_, _, ids)| ids.len()).collect();
    assert_eq!(sizes, [per_datagram, per_datagram, 3], "filled up to the payload area");
    let ids: Vec<u64> = got.into_iter().flat_map(|(_, _, ids)| ids).collect();
    assert_eq!(ids, (0..answers as u64).collect::<Vec<_>>(), "in order across datagrams");
    assert!(s.io.sent.iter().all(|(_, bytes)| bytes.len() <= 1472));
}

#[test]
fn more_clients_than_open_datagrams_are_all_answered_once() {
    // Every client once (the table overflows: the oldest datagrams leave early), then the ten
    // newest again (their datagrams are still open: gathered).
    let clients = OPEN_DATAGRAMS_MAX + 8;
    let client = |k: usize| (peer(100 + k as u16), 1);
    let script: Vec<(Peer, u64)> = (0..clients).chain((clients - 10..clients).rev()).map(client).collect();
    let answers = script.len();
    let s = run(script.clone(), 8);
    let got = datagrams(&s.io.sent);
    assert_eq!(got.len(), clients, "one datagram per client");
    let mut ids: Vec<u64> = Vec::new();
    for (p, _, frames) in &got {
        for &id in frames {
            assert_eq!(*p, script[id as usize].0, "answer {id} went to its own peer");
        }
        assert!(frames.windows(2).all(|w| w[0] < w[1]), "in order within a datagram");
        ids.extend(frames);
    }
    ids.sort_unstable();
    assert_eq!(ids, (0..answers as u64).collect::<Vec<_>>(), "every answer sent once");
    let c = s.report().shard_counters;
    assert_eq!(
        (c.late_answers, c.late_datagrams, c.tx_queue_full, c.tx_no_buffer),
        (answers as u64, clients as u64, 0, 0)
    );
}
