//! Outbox to inbox: batching per destination node, fragments, reordering and duplication.

use prost::Message as _;

use super::*;
use crate::peer::inbox::DropReason;
use crate::peer::wire::{decode_header, HEADER_LEN};
use crate::peer::PeerError;

#[test]
fn many_groups_to_one_node_pack_into_few_datagrams() {
    let limits = PeerLimits::mtu_1500();
    let mut out = outbox(limits, LEADER, &[ME, OTHER]);
    let groups = Groups::three(500, 1000);
    let sent: Vec<(u32, Message)> = (0..500).map(|p| (p, heartbeat(LEADER, ME, 3, 10 + p as u64))).collect();
    let mut frame_bytes = 0;
    for (p, m) in &sent {
        out.push(*p, m).unwrap();
        frame_bytes += wire::FRAME_HEADER_LEN + m.encoded_len();
    }
    let datagrams = drain(&mut out, &limits);
    assert!(out.is_empty());
    // As few as fit: the frames' bytes over the room of one datagram, plus one for the rounding.
    let room = limits.datagram_bytes_max - HEADER_LEN;
    assert!(datagrams.len() <= frame_bytes.div_ceil(room) + 1, "{} datagrams", datagrams.len());
    // docs/PROTOCOL.md, "Batching": 500 frames of 18 bytes in datagrams of 1424 bytes of frames.
    assert_eq!(datagrams.len(), 7);
    for (to, d) in &datagrams {
        assert_eq!(*to, ME);
        assert!(wire::is_peer_datagram(d));
        assert_eq!(decode_header(d).unwrap().to_node, ME);
    }
    let mut inbox = inbox(limits);
    let got = feed(&mut inbox, &groups, &datagrams.into_iter().map(|(_, d)| d).collect::<Vec<_>>(), 0);
    let got: Vec<(u32, Message)> = got.into_iter().map(|m| (m.partition, m.message)).collect();
    assert_eq!(got, sent);
    assert_eq!(inbox.counters().dropped_total(), 0);
    assert_eq!(inbox.counters().delivered, 500);
}

#[test]
fn destinations_take_turns_and_each_gets_its_own() {
    let limits = PeerLimits::mtu_1500();
    let mut out = outbox(limits, 1, &[2, 3]);
    for p in 0..200 {
        out.push(p, &heartbeat(1, 2, 4, 0)).unwrap();
        out.push(p, &heartbeat(1, 3, 4, 0)).unwrap();
    }
    let datagrams = drain(&mut out, &limits);
    let order: Vec<u64> = datagrams.iter().map(|(to, _)| *to).collect();
    assert_eq!(&order[..4], &[2, 3, 2, 3], "round robin");
    for (to, d) in &datagrams {
        assert_eq!(decode_header(d).unwrap().to_node, *to);
    }
    let counted = |node| datagrams.iter().filter(|(to, _)| *to == node).count();
    assert_eq!(counted(2), counted(3));
}

#[test]
fn unknown_destination_too_large_and_full_are_refused() {
    let limits = PeerLimits {
        message_bytes_max: 64 << 10,
        outbox_bytes_per_node_max: 100 << 10,
        ..PeerLimits::mtu_1500()
    };
    let mut out = outbox(limits, 1, &[2, 3]);
    assert_eq!(out.push(0, &heartbeat(1, 9, 1, 0)), Err(PeerError::UnknownPeer { to: 9 }));
    let big = append(1, 2, 1, 0, 0, 1, 70 << 10);
    assert!(matches!(out.push(0, &big), Err(PeerError::TooLarge { .. })));
    let half = append(1, 2, 1, 0, 0, 1, 40 << 10);
    out.push(0, &half).unwrap();
    out.push(0, &half).unwrap();
    assert_eq!(out.push(0, &half), Err(PeerError::Full { to: 2 }));
    // Another destination has its own budget.
    out.push(0, &append(1, 3, 1, 0, 0, 1, 40 << 10)).unwrap();
    let c = out.counters();
    assert_eq!((c.refused_unknown_peer, c.refused_too_large, c.refused_full), (1, 1, 1));
    drain(&mut out, &limits);
    out.push(0, &half).unwrap();
}

/// A 200 KB append goes out as fragments; delivered once whatever the order and duplicates.
#[test]
fn large_append_split_reordered_duplicated_and_reassembled() {
    for (seed, limits) in [(1, PeerLimits::mtu_1500()), (2, PeerLimits::jumbo_9000())] {
        let mut out = outbox(limits, LEADER, &[ME]);
        let big = append(LEADER, ME, 5, 100, 5, 200, 1000);
        assert!(big.encoded_len() > 200_000);
        let hb = heartbeat(LEADER, ME, 5, 50);
        out.push(1, &hb).unwrap();
        out.push(2, &big).unwrap();
        out.push(3, &hb).unwrap();
        let mut datagrams: Vec<Vec<u8>> = drain(&mut out, &limits).into_iter().map(|(_, d)| d).collect();
        let fragments = out.counters().fragments as usize;
        assert_eq!(fragments, big.encoded_len().div_ceil(limits.datagram_bytes_max - HEADER_LEN - 20));
        assert!(datagrams.len() <= fragments + 1, "the heartbeats share the fragments' datagrams");
        let mut rng = SplitMix64::new(seed);
        let dups: Vec<Vec<u8>> = datagrams.iter().step_by(3).cloned().collect();
        datagrams.extend(dups.iter().cloned());
        shuffle(&mut rng, &mut datagrams);
        let mut inbox = inbox(limits);
        let got = feed(&mut inbox, &Groups::three(4, 100), &datagrams, 0);
        let appends: Vec<&PeerMessage> = got.iter().filter(|m| m.partition == 2).collect();
        assert_eq!(appends.len(), 1, "delivered exactly once");
        assert_eq!(appends[0].message, big);
        assert_eq!(got.iter().filter(|m| m.message == hb).count() as u64, 2 + dup_heartbeats(&dups));
        assert_eq!(inbox.reassembly().in_progress(), 0);
        let c = inbox.counters();
        assert_eq!(c.reassembled, 1);
        // Every duplicated fragment was dropped as a duplicate (before or after completion).
        let dup_fragments = dups.iter().filter(|d| decode_header(d).is_ok() && has_fragment(d)).count();
        assert_eq!(c.dropped(DropReason::DuplicateFragment) as usize, dup_fragments);
        assert_eq!(c.dropped_total() as usize, dup_fragments);
    }
}

fn has_fragment(d: &[u8]) -> bool {
    let mut rest = &d[HEADER_LEN..];
    while let Ok((f, after)) = wire::decode_frame(rest) {
        if f.fragment.is_some() {
            return true;
        }
        rest = after;
    }
    false
}

/// Heartbeats ride in datagrams that may be duplicated: a duplicated heartbeat is delivered twice
/// (Raft tolerates duplicates; only fragments are deduplicated).
fn dup_heartbeats(dups: &[Vec<u8>]) -> u64 {
    dups.iter()
        .map(|d| {
            let mut n = 0;
            let mut rest = &d[HEADER_LEN..];
            while let Ok((f, after)) = wire::decode_frame(rest) {
                n += u64::from(f.fragment.is_none());
                rest = after;
            }
            n
        })
        .sum()
}

#[test]
fn snapshot_of_a_megabyte_crosses_in_fragments() {
    let limits = PeerLimits::mtu_1500();
    let mut out = outbox(limits, LEADER, &[ME]);
    let mut snap = snapshot_msg(LEADER, ME, 7, 5000, vec![1, 2, 3]);
    snap.snapshot.as_mut().unwrap().data = vec![0xAB; 1 << 20];
    out.push(9, &snap).unwrap();
    let mut datagrams: Vec<Vec<u8>> = drain(&mut out, &limits).into_iter().map(|(_, d)| d).collect();
    datagrams.reverse();
    let mut inbox = inbox(limits);
    let got = feed(&mut inbox, &Groups::three(10, 0), &datagrams, 0);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message, snap);
}

/// Two incarnations of a sender reuse message ids; their fragments never mix.
#[test]
fn two_incarnations_with_the_same_message_id_do_not_mix() {
    let limits = PeerLimits::mtu_1500();
    let a = append(LEADER, ME, 2, 10, 2, 10, 500);
    let b = append(LEADER, ME, 3, 10, 2, 10, 500);
    let mut out_a = PeerOutbox::new(limits, CLUSTER, LEADER, 100, &[ME]).unwrap();
    let mut out_b = PeerOutbox::new(limits, CLUSTER, LEADER, 101, &[ME]).unwrap();
    out_a.push(0, &a).unwrap();
    out_b.push(0, &b).unwrap();
    let da = drain(&mut out_a, &limits);
    let db = drain(&mut out_b, &limits);
    assert!(da.len() > 2 && da.len() == db.len());
    let mut interleaved = Vec::new();
    for (x, y) in da.iter().zip(db.iter()) {
        interleaved.push(y.1.clone());
        interleaved.push(x.1.clone());
    }
    let mut inbox = inbox(limits);
    let got = feed(&mut inbox, &Groups::three(1, 10), &interleaved, 0);
    let got: Vec<Message> = got.into_iter().map(|m| m.message).collect();
    assert_eq!(got, vec![b, a]);
}

/// After warm-up, the outbox's staging keeps its capacity: no growth from one poll to the next.
#[test]
fn outbox_staging_is_reused_across_polls() {
    let limits = PeerLimits::mtu_1500();
    let mut out = outbox(limits, LEADER, &[ME]);
    let mut buf = vec![0u8; limits.datagram_bytes_max];
    let big = append(LEADER, ME, 5, 100, 5, 20, 1000);
    let mut datagrams = 0;
    let mut kept = Vec::new();
    for _ in 0..5 {
        for p in 0..50 {
            out.push(p, &heartbeat(LEADER, ME, 5, 1)).unwrap();
        }
        out.push(0, &big).unwrap();
        while out.poll_transmit(&mut buf).is_some() {
            datagrams += 1;
        }
        kept.push(out.staging_bytes_kept());
    }
    assert!(kept[0] > 0);
    assert!(kept.iter().all(|k| *k == kept[0]), "the staging grew after the first poll: {kept:?}");
    assert_eq!(out.counters().datagrams, datagrams);
    assert_eq!(out.counters().messages, 5 * 51);
}
