//! Peer datagrams (`peer::PeerInbox`: header, checksum, frames, reassembly, prost decoding,
//! validation). The input is a sequence of datagrams, each behind a 2-byte little-endian length
//! and a byte that advances the clock (so reassembly expiry runs too).
//!
//! Checks: nothing panics; every delivered message passes `peer::validate` for its sender and
//! partition; the liveness the inbox keeps reports only known peers; sent again through a `PeerOutbox` and a fresh `PeerInbox`, it comes out equal (the
//! codec round-trips whatever it accepts); the reassembly stays within its byte bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::peer::{validate, PeerGroups, PeerInbox, PeerLimits, PeerOutbox, ValidateContext};

const CLUSTER: u64 = 0xC1C1;
const ME: u64 = 2;
const PEERS: [u64; 2] = [1, 3];

/// Partitions 0..8, voters 1, 2, 3, last index 100.
struct Groups;

impl PeerGroups for Groups {
    fn is_voter(&self, partition: u32, node: u64) -> bool {
        partition < 8 && (1..=3).contains(&node)
    }

    fn last_index(&self, partition: u32) -> Option<u64> {
        (partition < 8).then_some(100)
    }
}

fn limits() -> PeerLimits {
    PeerLimits { reassembly_bytes_max: 4 << 20, message_bytes_max: 1 << 20, ..PeerLimits::mtu_1500() }
}

fuzz_target!(|data: &[u8]| {
    let limits = limits();
    let mut inbox = PeerInbox::new(limits, CLUSTER, ME, &PEERS).expect("inbox");
    let mut out = Vec::new();
    let mut rest = data;
    let mut now = 0u64;
    while rest.len() >= 3 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 3);
        now += u64::from(rest[2]) * 10_000_000;
        inbox.receive(&rest[3..3 + len], now, &Groups, &mut out);
        inbox.liveness().take_changes(now, &mut |change| {
            let (vigil::peer::PeerChange::Lost(node) | vigil::peer::PeerChange::Back(node)) = change;
            assert!(PEERS.contains(&node), "a change of node {node}");
        });
        rest = &rest[3 + len..];
        assert!(inbox.reassembly().bytes_in_use() <= limits.reassembly_bytes_max);
    }
    let c = inbox.counters();
    assert_eq!(c.delivered as usize, out.len());
    for m in &out {
        let ctx = ValidateContext { node_id: ME, from_node: m.from, partition: m.partition, groups: &Groups };
        assert!(validate(&m.message, &ctx).is_ok(), "delivered a message that fails validation");
    }
    // Whatever was delivered crosses an outbox and a fresh inbox unchanged.
    let mut again = Vec::new();
    for from in PEERS {
        let mut outbox = PeerOutbox::new(limits, CLUSTER, from, 9, &[ME]).expect("outbox");
        let mut fresh = PeerInbox::new(limits, CLUSTER, ME, &PEERS).expect("inbox");
        let sent: Vec<_> = out.iter().filter(|m| m.from == from).collect();
        for m in &sent {
            outbox.push(m.partition, &m.message).expect("a delivered message fits");
        }
        let mut buf = vec![0u8; limits.datagram_bytes_max];
        while let Some(t) = outbox.poll_transmit(&mut buf) {
            fresh.receive(&buf[..t.len], 0, &Groups, &mut again);
        }
        assert_eq!(fresh.counters().dropped_total(), 0, "a re-sent message was dropped");
    }
    let key = |m: &&vigil::peer::PeerMessage| m.from;
    let mut first: Vec<_> = out.iter().collect();
    first.sort_by_key(key);
    let mut second: Vec<_> = again.iter().collect();
    second.sort_by_key(key);
    assert_eq!(first, second, "the codec does not round-trip what it accepted");
});
