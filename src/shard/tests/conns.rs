//! Stream connections in the shard loop, sans-IO: RESP and the binary protocol over simulated
//! connections (`pmd::sim::SimStreams`) that deliver a byte at a time and take few bytes per send,
//! on a two-shard node with real KV partitions (half the keys on the other shard, answered through
//! the inboxes). Replies come back whole and in request order whatever the split points; a
//! protocol error closes only its connection; the binary protocol's answers match by request id.

use super::overload::{node, Node};
use crate::conn::resp::RespSettings;
use crate::conn::{protocol_tag, ConnLimits, Connections};
use crate::wire::{self, opcode, DatagramWriter, Status};
use vigil_pmd::sim::SimStreams;
use vigil_pmd::{ConnId, Nanos};

const LIMITS: ConnLimits = ConnLimits {
    input_bytes_max: 64 << 10,
    output_bytes_max: 64 << 10,
    datagram_bytes_max: 1472,
    connections_max: 8,
    page_candles_max: 40,
};

fn settings(shards: usize) -> RespSettings {
    RespSettings::for_tests(shards)
}

/// A two-shard node whose shard 0 serves the connections of `streams`.
pub(super) fn node_with(streams: &SimStreams) -> Node {
    node_serving(&[streams])
}

/// A two-shard node whose shard i serves the connections of `streams[i]`.
pub(super) fn node_serving(streams: &[&SimStreams]) -> Node {
    let mut n = node(2, 64);
    for (i, s) in streams.iter().enumerate() {
        let shard = n.shards.remove(i);
        let conns = Connections::new(Box::new((*s).clone()), LIMITS, settings(2));
        n.shards.insert(i, shard.with_connections(conns));
    }
    n
}

/// Polls every shard until `done` or a bound, taking what shard 0 sent to `conn` as it goes (the
/// client reads, so the send window keeps opening).
fn run_until(
    n: &mut Node,
    streams: &SimStreams,
    conn: ConnId,
    mut done: impl FnMut(&[u8]) -> bool,
) -> Vec<u8> {
    let mut got = Vec::new();
    for t in 1..200_000u64 {
        for s in &mut n.shards {
            s.poll_once(Nanos(t * 1_000));
        }
        got.extend(streams.client_take(conn));
        if done(&got) {
            return got;
        }
    }
    panic!("no complete answer; got {:?}", String::from_utf8_lossy(&got));
}

#[test]
fn a_resp_pipeline_split_into_single_bytes_is_answered_whole_and_in_order() {
    let streams = SimStreams::new(1, 5);
    let mut n = node_with(&streams);
    let c = streams.open(protocol_tag::RESP);
    let pipeline = b"SET a 1\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\nINCR n\r\nINCRBY n 41\r\nGET n\r\n\
MGET a n missing\r\nEXISTS a n missing a\r\nDEL a missing\r\nGET a\r\nPING\r\nTTL n\r\n";
    streams.client_send(c, pipeline);
    let want: &[u8] = b"+OK\r\n$1\r\n1\r\n:1\r\n:42\r\n$2\r\n42\r\n*3\r\n$1\r\n1\r\n$2\r\n42\r\n$-1\r\n\
:3\r\n:1\r\n$-1\r\n+PONG\r\n:-1\r\n";
    let got = run_until(&mut n, &streams, c, |g| g.len() >= want.len());
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    // Both shards served some of it: keys on shard 1 went through the inboxes.
    assert!(n.kvs[0].borrow().counters().forwarded > 0, "a key was on the other shard");
    assert!(!streams.server_closed(c));
}

/// MSET of keys on both shards: one MSET request per partition (the other shard's through the
/// inboxes), every key readable after the one +OK; a binary MSET whose keys span partitions is
/// refused whole.
#[test]
fn an_mset_over_both_shards_is_one_request_per_partition_and_all_of_it_is_stored() {
    let streams = SimStreams::new(1, 1 << 16);
    let mut n = node_with(&streams);
    let c = streams.open(protocol_tag::RESP);
    streams.client_send(c, b"MSET a 1 b 2 c 3 d 4 e 5 f 6 a 7\r\n");
    assert_eq!(run_until(&mut n, &streams, c, |g| g.ends_with(b"\r\n")), b"+OK\r\n");
    assert_eq!(n.kvs[0].borrow().counters().forwarded, 1, "the other shard's pairs went as one MSET");
    streams.client_send(c, b"MGET a b c d e f\r\n");
    let want: &[u8] = b"*6\r\n$1\r\n7\r\n$1\r\n2\r\n$1\r\n3\r\n$1\r\n4\r\n$1\r\n5\r\n$1\r\n6\r\n";
    let got = run_until(&mut n, &streams, c, |g| g.len() >= want.len());
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    let big = format!("MSET k {} j 1\r\n", "v".repeat(1025));
    streams.client_send(c, big.as_bytes());
    let got = run_until(&mut n, &streams, c, |g| g.ends_with(b"\r\n"));
    assert!(got.starts_with(b"-ERR value is larger"), "{}", String::from_utf8_lossy(&got));
    streams.client_send(c, b"EXISTS j\r\n");
    assert_eq!(run_until(&mut n, &streams, c, |g| g.ends_with(b"\r\n")), b":0\r\n", "nothing of it stored");
}

#[test]
fn a_protocol_error_closes_its_connection_and_the_others_go_on() {
    let streams = SimStreams::new(3, 1 << 16);
    let mut n = node_with(&streams);
    let (good, bad) = (streams.open(protocol_tag::RESP), streams.open(protocol_tag::RESP));
    streams.client_send(bad, b"*1\r\n$x\r\n");
    streams.client_send(good, b"SET k v\r\n");
    let got = run_until(&mut n, &streams, good, |g| g.ends_with(b"+OK\r\n"));
    assert_eq!(got, b"+OK\r\n");
    assert_eq!(streams.client_take(bad), b"-ERR Protocol error: invalid bulk length\r\n");
    assert!(streams.server_closed(bad), "closed after its error");
    streams.client_send(good, b"GET k\r\nQUIT\r\n");
    let got = run_until(&mut n, &streams, good, |g| g.ends_with(b"+OK\r\n"));
    assert_eq!(got, b"$1\r\nv\r\n+OK\r\n");
    for t in 0..10 {
        n.shards[0].poll_once(Nanos(1_000_000_000 + t));
    }
    assert!(streams.server_closed(good), "QUIT closes once its reply is sent");
}

/// One request datagram of `frames`, with its length prefix.
pub(super) fn framed(frames: &[(u8, u64, &[u8])]) -> Vec<u8> {
    let mut buf = vec![0u8; 1472];
    let mut w = DatagramWriter::request(&mut buf, 9).unwrap();
    for (op, id, b) in frames {
        w.push(*op, 0, *id, b).unwrap();
    }
    let len = w.finish();
    let mut out = (len as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&buf[..len]);
    out
}

/// The answers in the whole length-prefixed response datagrams at the front of a stream:
/// (opcode, status, id, body).
pub(super) fn stream_answers(mut bytes: &[u8]) -> Vec<(u8, u8, u64, Vec<u8>)> {
    let mut out = Vec::new();
    while bytes.len() >= 4 {
        let len = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
        let Some(d) = bytes.get(4..4 + len) else { break };
        let h = wire::decode_header(d).unwrap();
        for f in wire::Frames::new(d, h.count) {
            let f = f.unwrap();
            out.push((f.opcode, f.status, f.request_id, f.body.to_vec()));
        }
        bytes = &bytes[4 + len..];
    }
    out
}

#[test]
fn binary_datagrams_over_a_stream_are_answered_by_request_id() {
    let streams = SimStreams::new(2, 64);
    let mut n = node_with(&streams);
    let c = streams.open(protocol_tag::BINARY);
    let mut set = 0u16.to_le_bytes().to_vec();
    set[0] = 3;
    set.extend_from_slice(b"keyvalue");
    let mut input = framed(&[(opcode::SET, 1, &set), (opcode::PING, 2, b"")]);
    input.extend(framed(&[(opcode::ECHO, 3, b"echo")]));
    streams.client_send(c, &input);
    let got = run_until(&mut n, &streams, c, |g| stream_answers(g).len() >= 3);
    let mut answers = stream_answers(&got);
    answers.sort_by_key(|a| a.2);
    assert_eq!(
        answers.iter().map(|a| (a.0, a.1, a.2)).collect::<Vec<_>>(),
        vec![
            (opcode::SET, Status::Ok as u8, 1),
            (opcode::PING, Status::Ok as u8, 2),
            (opcode::ECHO, Status::Ok as u8, 3)
        ]
    );
    assert_eq!(answers[2].3, b"echo");
    // A length beyond the datagram limit: MALFORMED, then closed.
    streams.client_send(c, &[0xff, 0xff, 0, 0]);
    let got = run_until(&mut n, &streams, c, |g| !g.is_empty());
    assert_eq!(stream_answers(&got)[0].1, Status::Malformed as u8);
    assert!(streams.server_closed(c));
}

/// A binary MSET is one command of one partition: keys of two partitions are `BAD_REQUEST` and
/// nothing of it is stored; one partition's keys are stored at one version.
#[test]
fn a_binary_mset_must_keep_to_one_partition() {
    let streams = SimStreams::new(2, 64);
    let mut n = node_with(&streams);
    let c = streams.open(protocol_tag::BINARY);
    let placement = crate::inbox::Placement::new(2, 2).unwrap();
    let keys: Vec<&[u8]> = vec![b"a", b"b", b"c", b"d", b"e", b"f"];
    let (same, other): (Vec<&[u8]>, Vec<&[u8]>) =
        keys.iter().partition(|k| placement.partition_of(k) == placement.partition_of(b"a"));
    let body = |keys: &[&[u8]]| {
        let mut out = Vec::new();
        let mut w = crate::kv::PairsWriter::begin(&mut out);
        keys.iter().for_each(|k| assert!(w.push(&mut out, k, b"v")));
        out
    };
    let mixed = body(&[same[0], other[0]]);
    let one = body(&same);
    streams.client_send(c, &framed(&[(opcode::MSET, 1, &mixed)]));
    let got = run_until(&mut n, &streams, c, |g| !stream_answers(g).is_empty());
    assert_eq!(stream_answers(&got)[0].1, Status::BadRequest as u8);
    streams.client_send(c, &framed(&[(opcode::MSET, 2, &one), (opcode::GET, 3, other[0])]));
    let got = run_until(&mut n, &streams, c, |g| stream_answers(g).len() >= 2);
    let mut answers = stream_answers(&got);
    answers.sort_by_key(|a| a.2);
    assert_eq!((answers[0].1, answers[1].1), (Status::Ok as u8, Status::NotFound as u8));
    let kv = n.kvs[0].borrow();
    let p = kv.partitions().iter().find(|p| p.id() == placement.partition_of(b"a")).expect("shard 0's");
    let version = u64::from_le_bytes(answers[0].3[..8].try_into().unwrap());
    for k in same {
        assert_eq!(p.kv().get(k), Some((&b"v"[..], version)));
    }
}

#[test]
fn writes_beyond_the_shards_reservations_wait_and_are_all_answered() {
    let streams = SimStreams::new(1 << 16, 1 << 16);
    let mut n = node(1, 8);
    let s0 = n.shards.remove(0);
    n.shards.insert(0, s0.with_connections(Connections::new(Box::new(streams.clone()), LIMITS, settings(1))));
    let conns: Vec<ConnId> = (0..4).map(|_| streams.open(protocol_tag::RESP)).collect();
    let mset = b"MSET a 1 b 2 c 3 d 4 e 5 f 6 g 7 h 8 i 9 j 10\r\n".repeat(16);
    for &c in &conns {
        streams.client_send(c, &mset);
    }
    let want = b"+OK\r\n".repeat(16);
    let mut got = vec![Vec::new(); conns.len()];
    for t in 1..100_000u64 {
        n.shards[0].poll_once(Nanos(t * 1_000));
        for (i, &c) in conns.iter().enumerate() {
            got[i].extend(streams.client_take(c));
        }
        if got.iter().all(|g| g.len() >= want.len()) {
            break;
        }
    }
    for g in &got {
        assert_eq!(String::from_utf8_lossy(g), String::from_utf8_lossy(&want));
    }
    assert!(n.kvs[0].borrow().counters().busy_unreserved > 0, "the reservations ran out on the way");
}

#[test]
fn a_client_that_hangs_up_after_part_of_a_request_is_closed() {
    let streams = SimStreams::new(64, 64);
    let mut n = node_with(&streams);
    let c = streams.open(protocol_tag::RESP);
    // The bytes and the hang-up arrive before the shard reads: one readiness edge for both.
    streams.client_send(c, b"*2\r\n$3\r\nGET");
    streams.client_close(c);
    for t in 1..100u64 {
        n.shards[0].poll_once(Nanos(t * 1_000));
    }
    assert!(streams.server_closed(c), "a half request and a hang-up leave the connection open");
}
