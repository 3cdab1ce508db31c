//! Transmit buffers per deferred write, counted on the in-memory queue pair (`MemIo::allocs`)
//! over a real KV partition on a memory device: after warm-up, a durable SET takes one buffer,
//! the one its late answer goes out in (none for its request: the reply buffer of a datagram
//! with nothing to answer now serves the next request), and the writes of one client that commit
//! together take one buffer for all their answers.

use super::overload::{node, BURST};
use super::peer;
use crate::kv::protocol::{encode_write_body, request_body_len};
use crate::kv::Op;
use crate::wire::{self, opcode, DatagramWriter, Status};
use vigil_pmd::mem::VecRx;
use vigil_pmd::Nanos;

/// Answers a shard may owe: enough that no write in these tests is answered BUSY.
const RESERVED: usize = 64;
/// Rounds of `BURST` writes before counting (the reserve filled, the spare taken).
const WARM_UP_ROUNDS: u64 = 4;
/// Rounds counted.
const ROUNDS: u64 = 50;

/// A datagram of one SET of `key` by `client_id` with request id `id`.
fn set(client_id: u64, id: u64, key: u64) -> Vec<u8> {
    let (key, value) = (format!("key-{key}"), id.to_le_bytes());
    let op = Op::Set { key: key.as_bytes(), value: &value };
    let mut body = vec![0; request_body_len(&op)];
    encode_write_body(&op, &mut body).unwrap();
    let mut buf = vec![0u8; 256];
    let mut w = DatagramWriter::request(&mut buf, client_id).unwrap();
    w.push(opcode::SET, 0, id, &body).unwrap();
    let n = w.finish();
    buf.truncate(n);
    buf
}

/// What a run of durable SETs cost: (writes, transmit buffers taken, late datagrams), counted
/// after warm-up.
struct Cost {
    writes: u64,
    allocs: u64,
    late_datagrams: u64,
}

/// Rounds of `BURST` SET datagrams (one SET each) in one burst; `one_client`: all from one peer
/// and client id, else from `BURST` clients at peers of their own. Each round is polled until
/// every write is answered OK.
fn durable_sets(one_client: bool) -> Cost {
    let mut n = node(1, RESERVED);
    let s = &mut n.shards[0];
    let (mut t, mut counted) = (0u64, Cost { writes: 0, allocs: 0, late_datagrams: 0 });
    for round in 0..WARM_UP_ROUNDS + ROUNDS {
        let (allocs, late, sent) = (s.io.allocs, s.report().shard_counters.late_datagrams, s.io.sent.len());
        for i in 0..BURST as u64 {
            let (port, client, id) = if one_client {
                (5, 1, round * BURST as u64 + i + 1)
            } else {
                (100 + i as u16, 100 + i, round + 1)
            };
            s.io.inbound.push_back(VecRx::new(set(client, id, i), peer(port)));
        }
        let answered = |sent: &[(vigil_pmd::Peer, Vec<u8>)]| -> usize {
            sent.iter().map(|(_, b)| usize::from(wire::decode_header(b).unwrap().count)).sum()
        };
        while answered(&s.io.sent[sent..]) < BURST {
            t += 1;
            assert!(t < 1_000_000, "round {round} never answered");
            s.poll_once(Nanos(t * 1_000));
        }
        for (_, bytes) in &s.io.sent[sent..] {
            let h = wire::decode_header(bytes).unwrap();
            for f in wire::Frames::new(bytes, h.count) {
                assert_eq!(f.unwrap().status, Status::Ok as u8, "round {round}");
            }
        }
        if round >= WARM_UP_ROUNDS {
            counted.writes += BURST as u64;
            counted.allocs += (s.io.allocs - allocs) as u64;
            counted.late_datagrams += s.report().shard_counters.late_datagrams - late;
        }
    }
    let c = s.report().shard_counters;
    assert_eq!((c.tx_no_buffer, c.tx_queue_full, c.late_answers_too_large), (0, 0, 0), "{c:?}");
    counted
}

#[test]
fn a_deferred_write_takes_one_transmit_buffer() {
    let cost = durable_sets(false);
    println!("{} durable SETs from {BURST} clients: {} transmit buffers taken", cost.writes, cost.allocs);
    assert_eq!(cost.late_datagrams, cost.writes, "one answer datagram per write (clients of their own)");
    assert_eq!(cost.allocs, cost.writes, "one buffer per deferred write: its answer's, none for its request");
}

#[test]
fn writes_of_one_client_committed_together_share_one_answer_datagram() {
    let cost = durable_sets(true);
    println!(
        "{} durable SETs from one client: {} answer datagrams, {} transmit buffers taken",
        cost.writes, cost.late_datagrams, cost.allocs
    );
    assert!(cost.late_datagrams * 4 <= cost.writes, "gathered: {} datagrams", cost.late_datagrams);
    assert_eq!(cost.allocs, cost.late_datagrams, "one buffer per answer datagram");
}
