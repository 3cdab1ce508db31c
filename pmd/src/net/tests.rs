//! Unit and property tests of the fast-path stack: round trips, truncation at every length,
//! corrupted bytes, and random garbage (never a panic, always a verdict).

use super::*;
use proptest::prelude::*;

const A_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xA];
const B_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xB];

fn a() -> LocalAddr {
    LocalAddr { mac: A_MAC, ip: Ipv4Addr::new(10, 0, 0, 1), udp_port: 9000 }
}
fn b() -> LocalAddr {
    LocalAddr { mac: B_MAC, ip: Ipv4Addr::new(10, 0, 0, 2), udp_port: 40000 }
}
fn peer_of(l: &LocalAddr) -> Peer {
    Peer { mac: l.mac, ip: l.ip, port: l.udp_port }
}

/// A UDP frame from B to A carrying `payload`.
fn udp_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; UDP_PAYLOAD_OFFSET + payload.len()];
    frame[UDP_PAYLOAD_OFFSET..].copy_from_slice(payload);
    let len = write_udp_headers(&mut frame, &b(), &peer_of(&a()), payload.len());
    assert_eq!(len, frame.len());
    frame
}

fn icmp_echo_frame(data: &[u8]) -> Vec<u8> {
    let icmp_len = icmp::ECHO_HDR_LEN + data.len();
    let mut frame = vec![0u8; ETH_HDR_LEN + IPV4_HDR_LEN + icmp_len];
    write_eth_header(&mut frame, A_MAC, B_MAC, ETHERTYPE_IPV4);
    icmp::write_echo_request(&mut frame[ETH_HDR_LEN + IPV4_HDR_LEN..], 7, 3, data);
    ipv4::write_header(&mut frame[ETH_HDR_LEN..], ipv4::PROTO_ICMP, b().ip, a().ip);
    frame
}

#[test]
fn udp_round_trip_hands_up_payload_and_peer() {
    let mut frame = udp_frame(b"hello");
    match classify(&mut frame, &a()) {
        Verdict::Udp { peer, payload_offset, payload_len } => {
            assert_eq!(peer, peer_of(&b()));
            assert_eq!(&frame[payload_offset..payload_offset + payload_len], b"hello");
        }
        v => panic!("unexpected verdict {v:?}"),
    }
}

#[test]
fn udp_with_ethernet_padding_is_accepted_at_its_ip_length() {
    let mut frame = udp_frame(b"x");
    frame.resize(ETH_FRAME_MIN, 0xEE);
    assert!(matches!(classify(&mut frame, &a()), Verdict::Udp { payload_len: 1, .. }));
}

#[test]
fn udp_zero_checksum_means_none_and_is_accepted() {
    let mut frame = udp_frame(b"abc");
    frame[ETH_HDR_LEN + IPV4_HDR_LEN + 6..][..2].copy_from_slice(&[0, 0]);
    assert!(matches!(classify(&mut frame, &a()), Verdict::Udp { .. }));
}

#[test]
fn udp_bad_checksum_is_dropped() {
    let mut frame = udp_frame(b"abc");
    *frame.last_mut().unwrap() ^= 0x01;
    assert_eq!(classify(&mut frame, &a()), Verdict::Drop(DropReason::BadChecksum));
}

#[test]
fn ipv4_bad_header_checksum_is_dropped() {
    let mut frame = udp_frame(b"abc");
    frame[ETH_HDR_LEN + 8] ^= 0x10; // TTL
    assert_eq!(classify(&mut frame, &a()), Verdict::Drop(DropReason::BadChecksum));
}

#[test]
fn other_port_ip_mac_and_fragments_are_not_for_us() {
    let frame = udp_frame(b"abc");
    let mut other_port = a();
    other_port.udp_port = 1;
    assert_eq!(classify(&mut frame.clone(), &other_port), Verdict::Drop(DropReason::NotForUs));
    let mut other_ip = a();
    other_ip.ip = Ipv4Addr::new(10, 9, 9, 9);
    assert_eq!(classify(&mut frame.clone(), &other_ip), Verdict::Drop(DropReason::NotForUs));
    let mut other_mac = a();
    other_mac.mac = [0x02, 1, 1, 1, 1, 1];
    assert_eq!(classify(&mut frame.clone(), &other_mac), Verdict::Drop(DropReason::NotForUs));
    // Set more-fragments and fix the header checksum.
    let mut frag = frame.clone();
    frag[ETH_HDR_LEN + 6] |= 0x20;
    let ip = &mut frag[ETH_HDR_LEN..ETH_HDR_LEN + IPV4_HDR_LEN];
    ip[10..12].copy_from_slice(&[0, 0]);
    let sum = checksum::checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(classify(&mut frag, &a()), Verdict::Drop(DropReason::NotForUs));
}

#[test]
fn arp_request_for_us_becomes_a_reply_in_place() {
    let mut frame = vec![0u8; ETH_FRAME_MIN];
    assert_eq!(write_arp_request(&mut frame, &b(), a().ip), ETH_FRAME_MIN);
    match classify(&mut frame, &a()) {
        Verdict::ReplyInPlace { len, kind: ReplyKind::Arp } => assert_eq!(len, ETH_FRAME_MIN),
        v => panic!("unexpected verdict {v:?}"),
    }
    assert_eq!(frame[0..6], B_MAC);
    assert_eq!(frame[6..12], A_MAC);
    // The reply, seen by B, teaches B where A is.
    assert_eq!(classify(&mut frame, &b()), Verdict::ArpLearned { ip: a().ip, mac: A_MAC });
}

#[test]
fn arp_request_for_someone_else_is_not_for_us() {
    let mut frame = vec![0u8; ETH_FRAME_MIN];
    write_arp_request(&mut frame, &b(), Ipv4Addr::new(10, 0, 0, 77));
    assert_eq!(classify(&mut frame, &a()), Verdict::Drop(DropReason::NotForUs));
}

#[test]
fn icmp_echo_request_becomes_a_valid_reply_in_place() {
    let data = b"ping payload 0123456789";
    let mut frame = icmp_echo_frame(data);
    let len = frame.len();
    assert_eq!(classify(&mut frame, &a()), Verdict::ReplyInPlace { len, kind: ReplyKind::IcmpEcho });
    let ip = &frame[ETH_HDR_LEN..];
    assert_eq!(checksum::checksum(&ip[..IPV4_HDR_LEN]), 0, "IPv4 checksum");
    assert_eq!(ip[12..16], a().ip.octets());
    assert_eq!(ip[16..20], b().ip.octets());
    let icmp = &ip[IPV4_HDR_LEN..];
    assert_eq!(icmp[0], icmp::ECHO_REPLY);
    assert_eq!(checksum::checksum(icmp), 0, "ICMP checksum");
    assert_eq!(&icmp[4..8], &[0, 7, 0, 3]);
    assert_eq!(&icmp[icmp::ECHO_HDR_LEN..], data);
    assert_eq!(frame[0..6], B_MAC);
}

#[test]
fn icmp_with_bad_checksum_is_dropped_unanswered() {
    let mut frame = icmp_echo_frame(b"abcd");
    *frame.last_mut().unwrap() ^= 0xFF;
    assert_eq!(classify(&mut frame, &a()), Verdict::Drop(DropReason::BadChecksum));
}

#[test]
fn unknown_ethertype_is_not_for_us() {
    let mut frame = udp_frame(b"abc");
    frame[12..14].copy_from_slice(&0x86DDu16.to_be_bytes());
    assert_eq!(classify(&mut frame, &a()), Verdict::Drop(DropReason::NotForUs));
}

#[test]
fn every_truncation_of_valid_frames_is_dropped_not_accepted() {
    let udp = udp_frame(b"some payload bytes");
    let echo = icmp_echo_frame(b"echo data");
    for full in [udp, echo] {
        for cut in 0..full.len() {
            let mut frame = full[..cut].to_vec();
            let v = classify(&mut frame, &a());
            assert!(matches!(v, Verdict::Drop(_)), "cut at {cut}: {v:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn udp_round_trip_any_payload(payload in proptest::collection::vec(any::<u8>(), 0..1472)) {
        let mut frame = udp_frame(&payload);
        match classify(&mut frame, &a()) {
            Verdict::Udp { peer, payload_offset, payload_len } => {
                prop_assert_eq!(peer, peer_of(&b()));
                prop_assert_eq!(&frame[payload_offset..payload_offset + payload_len], &payload[..]);
            }
            v => prop_assert!(false, "unexpected verdict {:?}", v),
        }
    }

    #[test]
    fn random_garbage_never_panics(mut frame in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = classify(&mut frame, &a());
    }

    #[test]
    fn garbage_behind_a_valid_ethernet_header_never_panics(
        body in proptest::collection::vec(any::<u8>(), 0..200),
        ethertype in prop_oneof![Just(ETHERTYPE_IPV4), Just(ETHERTYPE_ARP)],
    ) {
        let mut frame = vec![0u8; ETH_HDR_LEN];
        write_eth_header(&mut frame, A_MAC, B_MAC, ethertype);
        frame.extend_from_slice(&body);
        let _ = classify(&mut frame, &a());
    }

    #[test]
    fn single_byte_corruption_is_never_handed_up_with_wrong_bytes(
        payload in proptest::collection::vec(any::<u8>(), 1..64),
        pos in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let clean = udp_frame(&payload);
        let mut frame = clean.clone();
        let i = pos.index(frame.len());
        frame[i] ^= flip;
        if let Verdict::Udp { payload_offset, payload_len, peer } = classify(&mut frame, &a()) {
            // A flip may only survive where no check covers it: the Ethernet source MAC (the
            // reply goes to whoever sent it), or a field the checksums vouch for consistently.
            let got = &frame[payload_offset..payload_offset + payload_len];
            prop_assert!(got == &payload[..] || i < ETH_HDR_LEN,
                "corrupted byte {} handed up: peer {:?}", i, peer);
        }
    }
}
