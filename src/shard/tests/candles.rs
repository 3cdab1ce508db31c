//! The candle requests of protocol v1 through the shard loop (`ops::candle`), on a two-shard node
//! whose partitions run the candle projection, over a simulated stream connection: LIGHT answers
//! public ids, GET gives back the very candle (decoded on the shard that answers the client, the
//! other shard's raw answer included), LIST pages through a partition newest first, the counts
//! add up, and a candle that fails validation or does not parse is refused with nothing stored.

use super::conns::{framed, node_serving, stream_answers};
use super::overload::Node;
use crate::candle::corpus::Corpus;
use crate::candle::{wire, Candle};
use crate::conn::protocol_tag;
use crate::wire::{opcode, Status};
use vigil_pmd::sim::SimStreams;
use vigil_pmd::{ConnId, Nanos};

/// 2026-11-30, in ns: the request time (validation compares birth dates with its day).
const NOW_NS: u64 = 1_796_000_000 * 1_000_000_000;

type Answers = Vec<(u8, u8, u64, Vec<u8>)>;

/// Sends `frames` (a datagram each) on connection `c` of `streams` and polls until `want`
/// answers are in.
fn ask(
    n: &mut Node,
    (streams, c): (&SimStreams, ConnId),
    frames: &[(u8, u64, &[u8])],
    want: usize,
) -> Answers {
    let input: Vec<u8> = frames.iter().flat_map(|f| framed(std::slice::from_ref(f))).collect();
    streams.client_send(c, &input);
    let mut got = Vec::new();
    for t in 1..200_000u64 {
        for s in &mut n.shards {
            s.poll_once(Nanos(NOW_NS + t * 1_000));
        }
        got.extend(streams.client_take(c));
        if stream_answers(&got).len() >= want {
            let mut answers = stream_answers(&got);
            answers.sort_by_key(|a| a.2);
            return answers;
        }
    }
    panic!("{} of {want} answers", stream_answers(&got).len());
}

fn u64_of(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().unwrap())
}

#[test]
fn lit_candles_are_read_back_listed_and_counted_across_both_shards() {
    // Candles lit through shard 1 (its partition 1: LIGHT stays on the receiving shard), read
    // through shard 0, which asks shard 1 and decodes its raw answers.
    let (streams, streams1) = (SimStreams::new(1 << 16, 1 << 16), SimStreams::new(1 << 16, 1 << 16));
    let mut n = node_serving(&[&streams, &streams1]);
    let (to0, to1) =
        ((&streams, streams.open(protocol_tag::BINARY)), (&streams1, streams1.open(protocol_tag::BINARY)));
    let mut corpus = Corpus::new(11);
    let candles: Vec<Candle> = (0..12).map(|_| corpus.candle()).collect();
    let bodies: Vec<Vec<u8>> = candles
        .iter()
        .map(|c| {
            let mut b = Vec::new();
            wire::write(c, &mut b);
            b
        })
        .collect();
    let frames: Vec<(u8, u64, &[u8])> =
        bodies.iter().enumerate().map(|(i, b)| (opcode::CANDLE_LIGHT, i as u64 + 1, &b[..])).collect();
    let lit = ask(&mut n, to1, &frames[..8], 8);
    let mut lit0 = ask(&mut n, to0, &frames[8..], 4);
    lit0.iter_mut().for_each(|a| a.2 += 8);
    let lit: Answers = lit.into_iter().chain(lit0).collect();
    let ids: Vec<u64> = lit
        .iter()
        .map(|a| {
            assert_eq!(a.1, Status::Ok as u8, "LIGHT {}", a.2);
            u64_of(&a.3)
        })
        .collect();
    let partitions: Vec<u64> = ids.iter().map(|id| id >> 48).collect();
    assert_eq!(partitions, [1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0], "LIGHT runs on the receiving shard");

    // GET each (the other shard's through the inboxes): the same candle, and when it was lit.
    let id_bytes: Vec<[u8; 8]> = ids.iter().map(|id| id.to_le_bytes()).collect();
    let gets: Vec<(u8, u64, &[u8])> =
        id_bytes.iter().enumerate().map(|(i, b)| (opcode::CANDLE_GET, i as u64 + 1, &b[..])).collect();
    for (i, a) in ask(&mut n, to0, &gets, gets.len()).iter().enumerate() {
        assert_eq!(a.1, Status::Ok as u8);
        let lit_at = u32::from_le_bytes(a.3[..4].try_into().unwrap());
        assert_eq!(u64::from(lit_at), NOW_NS / 1_000_000_000, "stamped by the leader's clock");
        assert_eq!(wire::read(&a.3[4..]).unwrap(), candles[i], "candle {i} read back");
    }

    // LIST each partition in pages of 2, COUNT it: every id once, newest first.
    let mut listed = Vec::new();
    let mut total = 0;
    for p in 0..2u16 {
        let mut cursor = u64::MAX;
        loop {
            let mut body = p.to_le_bytes().to_vec();
            body.extend_from_slice(&cursor.to_le_bytes());
            body.extend_from_slice(&2u16.to_le_bytes());
            let a = &ask(&mut n, to0, &[(opcode::CANDLE_LIST, 1, &body)], 1)[0];
            assert_eq!(a.1, Status::Ok as u8);
            let (count, more) = (u16::from_le_bytes([a.3[0], a.3[1]]), a.3[2]);
            let mut at = 3;
            let mut page = Vec::new();
            for _ in 0..count {
                let id = u64_of(&a.3[at..]);
                let len = usize::from(u16::from_le_bytes([a.3[at + 12], a.3[at + 13]]));
                wire::read(&a.3[at + 14..at + 14 + len]).expect("a client body");
                page.push(id);
                at += 14 + len;
            }
            assert!(page.windows(2).all(|w| w[0] > w[1]), "newest first");
            listed.extend(page.iter().copied());
            cursor = *page.last().unwrap_or(&0);
            if more == 0 {
                break;
            }
        }
        let a = &ask(&mut n, to0, &[(opcode::CANDLE_COUNT, 1, &p.to_le_bytes())], 1)[0];
        total += u64_of(&a.3);
    }
    listed.sort_unstable();
    let mut want = ids.clone();
    want.sort_unstable();
    assert_eq!(listed, want);
    assert_eq!(total, ids.len() as u64);
}

#[test]
fn invalid_and_malformed_candles_are_refused_and_nothing_is_stored() {
    let streams = SimStreams::new(1 << 16, 1 << 16);
    let mut n = node_serving(&[&streams]);
    let to0 = (&streams, streams.open(protocol_tag::BINARY));
    let mut c = Corpus::new(5).candle();
    c.phone = Some(123);
    let mut bad = Vec::new();
    wire::write(&c, &mut bad);
    let answers =
        ask(&mut n, to0, &[(opcode::CANDLE_LIGHT, 1, &bad), (opcode::CANDLE_LIGHT, 2, b"\x01\x05")], 2);
    assert_eq!((answers[0].1, answers[1].1), (Status::Invalid as u8, Status::BadRequest as u8));
    for p in 0..2u16 {
        let a = &ask(&mut n, to0, &[(opcode::CANDLE_COUNT, 1, &p.to_le_bytes())], 1)[0];
        assert_eq!(u64_of(&a.3), 0, "partition {p}");
    }
    let a = &ask(&mut n, to0, &[(opcode::CANDLE_GET, 1, &(1u64 << 48 | 5).to_le_bytes())], 1)[0];
    assert_eq!(a.1, Status::NotFound as u8, "an id never issued");
}
