//! Property tests: no input panics the inbox; what it delivers passed validation; under any
//! order, duplication and loss each message is delivered at most once, and all without loss.

use proptest::prelude::*;

use super::*;
use crate::peer::validate::{validate, ValidateContext};

/// A datagram with a correct header and checksum around arbitrary frame bytes.
fn checksummed(frame_count: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8; wire::HEADER_LEN];
    d.extend_from_slice(payload);
    let mut h = header();
    h.frame_count = frame_count;
    h.payload_len = payload.len() as u16;
    wire::finish_datagram(&mut d, &h);
    d
}

fn check_delivered(got: &[PeerMessage], groups: &Groups) {
    for m in got {
        let ctx = ValidateContext { node_id: ME, from_node: m.from, partition: m.partition, groups };
        assert!(validate(&m.message, &ctx).is_ok());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let groups = Groups::three(4, 100);
        let mut inbox = inbox(PeerLimits::mtu_1500());
        let got = feed(&mut inbox, &groups, &[bytes], 0);
        check_delivered(&got, &groups);
        prop_assert_eq!(inbox.counters().delivered + inbox.counters().dropped_total() >= 1, true);
    }

    #[test]
    fn arbitrary_frames_under_a_good_header_never_panic(
        count in 0u16..6,
        payload in proptest::collection::vec(any::<u8>(), 0..1400),
        now in any::<u64>(),
    ) {
        let groups = Groups::three(4, 100);
        let mut inbox = inbox(PeerLimits::mtu_1500());
        let got = feed(&mut inbox, &groups, &[checksummed(count, &payload)], now);
        check_delivered(&got, &groups);
    }

    /// A real datagram with bytes changed (the checksum fixed or not) never panics.
    #[test]
    fn mutated_datagrams_never_panic(
        at in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        fix_crc in any::<bool>(),
    ) {
        let limits = PeerLimits::mtu_1500();
        let mut out = outbox(limits, LEADER, &[ME]);
        out.push(1, &append(LEADER, ME, 3, 7, 2, 3, 40)).unwrap();
        out.push(2, &heartbeat(LEADER, ME, 3, 5)).unwrap();
        out.push(3, &snapshot_msg(LEADER, ME, 3, 9, vec![1, 2, 3])).unwrap();
        let (_, mut d) = drain(&mut out, &limits).remove(0);
        for (i, b) in at {
            let i = i % d.len();
            d[i] = b;
        }
        if fix_crc {
            let crc = wire::checksum(&d);
            d[4..8].copy_from_slice(&crc.to_le_bytes());
        }
        let groups = Groups::three(4, 100);
        let mut inbox = inbox(limits);
        let got = feed(&mut inbox, &groups, &[d], 0);
        check_delivered(&got, &groups);
    }

    /// Fragmented and whole messages, datagrams shuffled, duplicated and lost: nothing is
    /// delivered twice or mixed; without loss, everything is delivered.
    #[test]
    fn shuffled_duplicated_lost_datagrams_deliver_at_most_once(
        sizes in proptest::collection::vec(0usize..6000, 1..12),
        seed in any::<u64>(),
        dup_pct in 0u64..50,
        loss_pct in 0u64..30,
    ) {
        // Slots for every message at once: a shuffle may interleave all of them.
        let limits = PeerLimits { reassembly_per_peer_max: 16, ..PeerLimits::mtu_1500() };
        let mut out = outbox(limits, LEADER, &[ME]);
        let sent: Vec<Message> = sizes
            .iter()
            .enumerate()
            .map(|(i, s)| append(LEADER, ME, 3, 10 * i as u64 + 1, 2, 1, *s))
            .collect();
        for m in &sent {
            out.push(1, m).unwrap();
        }
        let mut rng = SplitMix64::new(seed);
        let mut ds = Vec::new();
        for (_, d) in drain(&mut out, &limits) {
            if !rng.percent(loss_pct) {
                ds.push(d.clone());
            }
            if rng.percent(dup_pct) {
                ds.push(d);
            }
        }
        shuffle(&mut rng, &mut ds);
        let groups = Groups::three(4, 100);
        let mut inbox = inbox(limits);
        let got = feed(&mut inbox, &groups, &ds, 0);
        for m in &got {
            prop_assert!(sent.contains(&m.message), "delivered a message never sent");
        }
        let fragmented: Vec<&Message> = sent.iter().filter(|m| {
            use prost::Message as _;
            m.encoded_len() > limits.datagram_bytes_max - wire::HEADER_LEN - wire::FRAME_HEADER_LEN
        }).collect();
        for m in &fragmented {
            prop_assert!(got.iter().filter(|g| &&g.message == m).count() <= 1, "a fragmented message delivered twice");
        }
        if loss_pct == 0 {
            for m in &sent {
                prop_assert!(got.iter().any(|g| &g.message == m), "a message was lost without loss");
            }
        }
    }
}
