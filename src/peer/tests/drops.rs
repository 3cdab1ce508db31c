//! Every malformed input class is dropped and counted under its reason; the reassembly's bounds.

use prost::Message as _;

use super::*;
use crate::peer::inbox::DropReason;
use crate::peer::validate::Invalid;
use crate::peer::wire::HEADER_LEN;

/// Feeds one datagram to a fresh inbox; asserts nothing came out and exactly `reason` counted.
fn dropped_as(reason: DropReason, datagram: &[u8]) {
    let mut inbox = inbox(PeerLimits::mtu_1500());
    let got = feed(&mut inbox, &Groups::three(4, 100), &[datagram.to_vec()], 0);
    assert!(got.is_empty(), "{reason:?}: delivered {got:?}");
    assert_eq!(inbox.counters().dropped(reason), 1, "{reason:?}: {:?}", inbox.counters());
    assert_eq!(inbox.counters().dropped_total(), 1, "{reason:?}: {:?}", inbox.counters());
}

/// Recomputes the crc after a test changed the bytes.
fn refinish(d: &mut [u8]) {
    let crc = wire::checksum(d);
    d[4..8].copy_from_slice(&crc.to_le_bytes());
}

fn hb() -> Vec<u8> {
    heartbeat(LEADER, ME, 3, 1).encode_to_vec()
}

fn frag(id: u32, index: u16, count: u16, total: u32) -> FragmentInfo {
    FragmentInfo { message_id: id, index, count, total_len: total }
}

#[test]
fn a_good_datagram_is_delivered() {
    let mut inbox = inbox(PeerLimits::mtu_1500());
    let got = feed(&mut inbox, &Groups::three(4, 100), &[craft(header(), &[(1, None, &hb())])], 0);
    assert_eq!(got.len(), 1);
    assert_eq!(inbox.counters().dropped_total(), 0);
}

#[test]
fn datagram_level_drops_are_counted_by_reason() {
    let good = craft(header(), &[(1, None, &hb())]);

    let mut client = good.clone();
    client[..2].copy_from_slice(b"VG");
    dropped_as(DropReason::BadMagic, &client);

    let mut h = header();
    h.version = 2;
    dropped_as(DropReason::BadVersion, &craft(h, &[(1, None, &hb())]));

    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 0x40;
    dropped_as(DropReason::BadChecksum, &flipped);
    let mut flipped_header = good.clone();
    flipped_header[20] ^= 1;
    dropped_as(DropReason::BadChecksum, &flipped_header);

    dropped_as(DropReason::Malformed, &good[..HEADER_LEN - 1]);
    dropped_as(DropReason::Malformed, &good[..good.len() - 1]);
    dropped_as(DropReason::Malformed, &craft(header(), &[]));

    let mut h = header();
    h.cluster_id = CLUSTER + 1;
    dropped_as(DropReason::WrongCluster, &craft(h, &[(1, None, &hb())]));

    let mut h = header();
    h.to_node = OTHER;
    dropped_as(DropReason::WrongDestination, &craft(h, &[(1, None, &hb())]));

    let mut h = header();
    h.from_node = 9;
    dropped_as(DropReason::UnknownPeer, &craft(h, &[(1, None, &hb())]));

    let big = vec![1u8; 1500];
    dropped_as(DropReason::Oversized, &craft(header(), &[(1, None, &big)]));
}

/// Framing errors drop the whole datagram, the good frames in it too.
#[test]
fn bad_framing_drops_the_whole_datagram() {
    let mut trailing = craft(header(), &[(1, None, &hb()), (2, None, &hb())]);
    // Claim one frame only: the second is now trailing bytes.
    trailing[46] = 1;
    refinish(&mut trailing);
    dropped_as(DropReason::Malformed, &trailing);

    let mut kind = craft(header(), &[(1, None, &hb()), (2, None, &hb())]);
    kind[HEADER_LEN + 4] = 7;
    refinish(&mut kind);
    dropped_as(DropReason::Malformed, &kind);

    // Fragment fields no sender produces: a count of 1, an index past the count, a wrong length.
    let part = [5u8; 10];
    dropped_as(DropReason::Malformed, &craft(header(), &[(1, Some(frag(0, 0, 1, 10)), &part)]));
    dropped_as(DropReason::Malformed, &craft(header(), &[(1, Some(frag(0, 2, 2, 20)), &part)]));
    dropped_as(DropReason::Malformed, &craft(header(), &[(1, Some(frag(0, 0, 2, 30)), &part)]));
    // More frames than the limit.
    let mut inbox = inbox(PeerLimits { frames_per_datagram_max: 8, ..PeerLimits::mtu_1500() });
    let frames: Vec<(u32, Option<FragmentInfo>, &[u8])> = (0..9).map(|_| (1, None, &part[..1])).collect();
    feed(&mut inbox, &Groups::three(4, 100), &[craft(header(), &frames)], 0);
    assert_eq!(inbox.counters().dropped(DropReason::Malformed), 1);
}

#[test]
fn frame_level_drops_are_counted_by_reason() {
    dropped_as(DropReason::Undecodable, &craft(header(), &[(1, None, &[0xFF; 12])]));
    // A message over message_bytes_max, announced by its fragments' total length.
    let total = (PeerLimits::mtu_1500().message_bytes_max + 1) as u32;
    let f = frag(1, 0, 5000, total);
    let part = vec![0u8; f.expected_len().unwrap()];
    dropped_as(DropReason::Oversized, &craft(header(), &[(1, Some(f), &part)]));
    // Valid protobuf, refused by validation: counted as invalid, and by which check.
    let mut inbox = inbox(PeerLimits::mtu_1500());
    let wrong_to = heartbeat(LEADER, OTHER, 3, 1);
    let got = feed(&mut inbox, &Groups::three(4, 100), &[whole(1, &wrong_to)], 0);
    assert!(got.is_empty());
    assert_eq!(inbox.counters().dropped(DropReason::Invalid), 1);
    assert_eq!(inbox.counters().invalid(Invalid::WrongTo), 1);
}

/// One bad frame drops its message only; the datagram's other frames are delivered.
#[test]
fn a_bad_message_does_not_take_its_neighbours() {
    let mut inbox = inbox(PeerLimits::mtu_1500());
    let bad = heartbeat(LEADER, ME, 0, 1).encode_to_vec();
    let d = craft(header(), &[(1, None, &hb()), (2, None, &[0xFF; 3]), (3, None, &bad), (4, None, &hb())]);
    let groups = Groups::three(5, 100);
    let got = feed(&mut inbox, &groups, &[d], 0);
    assert_eq!(got.iter().map(|m| m.partition).collect::<Vec<_>>(), vec![1, 4]);
    assert_eq!(inbox.counters().dropped(DropReason::Undecodable), 1);
    assert_eq!(inbox.counters().invalid(Invalid::BadTerm), 1);
}

#[test]
fn fragment_drops_duplicate_mismatch_full_expired() {
    let limits = PeerLimits { reassembly_per_peer_max: 2, ..PeerLimits::mtu_1500() };
    let mut inbox = inbox(limits);
    let groups = Groups::three(4, 100);
    let part = [1u8; 50];
    let d = |id, index, p| craft(header(), &[(p, Some(frag(id, index, 3, 150)), &part[..])]);
    feed(&mut inbox, &groups, &[d(1, 0, 1)], 0);
    feed(&mut inbox, &groups, &[d(1, 0, 1)], 0);
    assert_eq!(inbox.counters().dropped(DropReason::DuplicateFragment), 1);
    // Same id, another partition or total length: never mixed into the first message.
    feed(&mut inbox, &groups, &[d(1, 1, 2)], 0);
    let other_total = craft(header(), &[(1, Some(frag(1, 1, 2, 100)), &part[..])]);
    feed(&mut inbox, &groups, &[other_total], 0);
    assert_eq!(inbox.counters().dropped(DropReason::FragmentMismatch), 2);
    feed(&mut inbox, &groups, &[d(2, 0, 1)], 0);
    feed(&mut inbox, &groups, &[d(3, 0, 1)], 0);
    assert_eq!(inbox.counters().dropped(DropReason::ReassemblyFull), 1);
    assert_eq!(inbox.reassembly().in_progress(), 2);
    // Past the age bound both go at the next datagram; the new message gets a slot.
    let later = limits.reassembly_age_ns_max + 1;
    feed(&mut inbox, &groups, &[d(3, 0, 1)], later);
    assert_eq!(inbox.counters().dropped(DropReason::ReassemblyExpired), 2);
    assert_eq!(inbox.reassembly().in_progress(), 1);
    inbox.tick(2 * later + 1);
    assert_eq!(inbox.counters().dropped(DropReason::ReassemblyExpired), 3);
    assert_eq!(inbox.reassembly().in_progress(), 0);
    assert_eq!(inbox.reassembly().bytes_in_use(), 0);
}

/// A peer that sends endless first fragments of new messages holds at most its slots: memory
/// stays bounded, the other peer still gets through, and so does the sender once they expire.
#[test]
fn endless_first_fragments_cannot_grow_memory() {
    let limits = PeerLimits { reassembly_bytes_max: 4 << 20, ..PeerLimits::mtu_1500() };
    let mut inbox = inbox(limits);
    let groups = Groups::three(4, 100);
    let total = 3 << 20;
    for id in 0..10_000u32 {
        let f = frag(id, 0, 4000, total);
        let part = vec![9u8; f.expected_len().unwrap()];
        feed(&mut inbox, &groups, &[craft(header(), &[(1, Some(f), &part)])], id as u64);
        assert!(inbox.reassembly().in_progress() <= limits.reassembly_per_peer_max);
        assert!(inbox.reassembly().bytes_in_use() <= limits.reassembly_bytes_max);
        assert!(inbox.reassembly().bytes_kept() <= 2 * limits.reassembly_bytes_max);
    }
    // The byte budget (4 MiB) admits one 3 MiB message: the rest were refused.
    assert_eq!(inbox.reassembly().in_progress(), 1);
    assert_eq!(inbox.counters().dropped(DropReason::ReassemblyFull), 9_999);
    // The other peer's small fragmented message still fits the remaining budget.
    let mut out = PeerOutbox::new(limits, CLUSTER, OTHER, 1, &[ME]).unwrap();
    let m = append(OTHER, ME, 4, 10, 4, 3, 1000);
    out.push(2, &m).unwrap();
    let ds: Vec<Vec<u8>> = drain(&mut out, &limits).into_iter().map(|(_, d)| d).collect();
    let got = feed(&mut inbox, &groups, &ds, 10_000);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message, m);
    // Once the flood's slot expires, the leader's real message is reassembled.
    let mut out = PeerOutbox::new(limits, CLUSTER, LEADER, 2, &[ME]).unwrap();
    let m = append(LEADER, ME, 4, 10, 4, 3, 1000);
    out.push(2, &m).unwrap();
    let ds: Vec<Vec<u8>> = drain(&mut out, &limits).into_iter().map(|(_, d)| d).collect();
    let got = feed(&mut inbox, &groups, &ds, 10_000 + limits.reassembly_age_ns_max + 1);
    assert_eq!(got.len(), 1);
    assert_eq!(inbox.counters().dropped(DropReason::ReassemblyExpired), 1);
}
