//! The fast-path network stack: just enough Ethernet, ARP, IPv4, ICMP and UDP for a UDP appliance
//! that owns its NIC.
//!
//! [`classify`] looks at one received frame in place and decides: a UDP datagram for us (its payload
//! is handed up without a copy), an ARP request or ICMP echo request for us (the frame is rewritten
//! in place into the reply, to be sent back as is), an ARP reply (a neighbour learned), or a drop with
//! its reason (counted by the caller). [`write_udp_headers`] builds the headers in front of a payload
//! already written at [`UDP_PAYLOAD_OFFSET`].
//!
//! Written by hand rather than with smoltcp or etherparse: the fast path needs in-place rewrite and
//! zero-copy classification of one frame with no sockets, no allocation and no buffering, and the
//! whole stack is a few hundred lines. Invariants: nothing here allocates or panics on any input
//! (fuzzed by the property tests below); every length field is checked against the frame before it
//! is used; IPv4 header and UDP/ICMP checksums are verified on receive and computed on transmit.
//! Not supported, and dropped as `NotForUs`: VLAN tags, IPv4 fragments, IPv6.

pub mod arp;
pub mod checksum;
pub mod icmp;
pub mod ipv4;

use crate::Peer;
use std::net::Ipv4Addr;

/// Ethernet header length (no VLAN tag).
pub const ETH_HDR_LEN: usize = 14;
/// IPv4 header length without options (what we send).
pub const IPV4_HDR_LEN: usize = 20;
/// UDP header length.
pub const UDP_HDR_LEN: usize = 8;
/// Where the UDP payload starts in a frame we build.
pub const UDP_PAYLOAD_OFFSET: usize = ETH_HDR_LEN + IPV4_HDR_LEN + UDP_HDR_LEN;
/// Largest UDP payload in a standard 1500-byte MTU frame.
pub const UDP_PAYLOAD_MAX_MTU1500: usize = 1500 - IPV4_HDR_LEN - UDP_HDR_LEN;
/// Smallest Ethernet frame without FCS; shorter frames we send are padded to it.
pub const ETH_FRAME_MIN: usize = 60;

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// The Ethernet broadcast address.
pub const MAC_BROADCAST: [u8; 6] = [0xFF; 6];

/// Our own addresses on one port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalAddr {
    /// The port's Ethernet address.
    pub mac: [u8; 6],
    /// The IPv4 address we answer for.
    pub ip: Ipv4Addr,
    /// The UDP port whose datagrams are handed up.
    pub udp_port: u16,
}

/// Which reply a frame was rewritten into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    /// An ARP reply for our address.
    Arp,
    /// An ICMP echo reply.
    IcmpEcho,
}

/// Why a frame was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Too short, truncated, or a header field that does not parse.
    Malformed,
    /// A wrong IPv4 header, ICMP or UDP checksum.
    BadChecksum,
    /// Well formed but not ours: another address, port, protocol or EtherType, or a fragment.
    NotForUs,
}

/// What to do with a received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A UDP datagram for our address and port; its payload is `frame[payload_offset..][..payload_len]`.
    Udp {
        /// The sender, where the reply goes.
        peer: Peer,
        /// Offset of the UDP payload in the frame.
        payload_offset: usize,
        /// UDP payload length.
        payload_len: usize,
    },
    /// The frame was rewritten in place into a reply of `len` bytes: send it back as it is.
    ReplyInPlace {
        /// Length of the reply frame.
        len: usize,
        /// What kind of reply it is.
        kind: ReplyKind,
    },
    /// An ARP reply addressed to us: `ip` is at `mac`.
    ArpLearned {
        /// The neighbour's IPv4 address.
        ip: Ipv4Addr,
        /// The neighbour's Ethernet address.
        mac: [u8; 6],
    },
    /// Drop the frame, counting it under this reason.
    Drop(DropReason),
}

/// Classifies one received frame, rewriting it in place when it asks for an ARP or echo reply.
pub fn classify(frame: &mut [u8], local: &LocalAddr) -> Verdict {
    if frame.len() < ETH_HDR_LEN {
        return Verdict::Drop(DropReason::Malformed);
    }
    let dst: [u8; 6] = frame[0..6].try_into().expect("6 bytes");
    // Accept our unicast address, broadcast, and multicast only for ARP's sake; promiscuous
    // virtual ports (memif, tap) deliver everything else too.
    if dst != local.mac && dst != MAC_BROADCAST {
        return Verdict::Drop(DropReason::NotForUs);
    }
    match u16::from_be_bytes([frame[12], frame[13]]) {
        ETHERTYPE_ARP => arp::classify(frame, local),
        ETHERTYPE_IPV4 => ipv4::classify(frame, local),
        _ => Verdict::Drop(DropReason::NotForUs),
    }
}

/// Writes Ethernet, IPv4 and UDP headers (with both checksums) in front of a payload already at
/// `frame[UDP_PAYLOAD_OFFSET..][..payload_len]`; returns the frame length.
///
/// Panics if the frame cannot hold the headers and payload, or the payload exceeds what fits in an
/// IPv4 datagram: both are programmer errors (buffers are sized from config).
pub fn write_udp_headers(frame: &mut [u8], local: &LocalAddr, peer: &Peer, payload_len: usize) -> usize {
    let len = UDP_PAYLOAD_OFFSET + payload_len;
    assert!(frame.len() >= len, "frame buffer shorter than headers + payload");
    assert!(payload_len <= usize::from(u16::MAX) - IPV4_HDR_LEN - UDP_HDR_LEN);
    write_eth_header(frame, peer.mac, local.mac, ETHERTYPE_IPV4);
    ipv4::write_udp(&mut frame[ETH_HDR_LEN..len], local, peer);
    len
}

/// Writes a broadcast ARP request asking who has `target`; returns the frame length (60, padded).
pub fn write_arp_request(frame: &mut [u8], local: &LocalAddr, target: Ipv4Addr) -> usize {
    assert!(frame.len() >= ETH_FRAME_MIN, "frame buffer shorter than a minimum frame");
    write_eth_header(frame, MAC_BROADCAST, local.mac, ETHERTYPE_ARP);
    arp::write(&mut frame[ETH_HDR_LEN..], arp::OP_REQUEST, local.mac, local.ip, [0; 6], target);
    frame[ETH_HDR_LEN + arp::ARP_LEN..ETH_FRAME_MIN].fill(0);
    ETH_FRAME_MIN
}

/// Writes an Ethernet header.
#[inline]
pub fn write_eth_header(frame: &mut [u8], dst: [u8; 6], src: [u8; 6], ethertype: u16) {
    frame[0..6].copy_from_slice(&dst);
    frame[6..12].copy_from_slice(&src);
    frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

/// Turns a received frame around: its source MAC becomes the destination, ours the source.
#[inline]
fn swap_eth_to_reply(frame: &mut [u8], local_mac: [u8; 6]) {
    frame.copy_within(6..12, 0);
    frame[6..12].copy_from_slice(&local_mac);
}

#[cfg(test)]
mod tests;
