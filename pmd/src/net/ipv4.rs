//! IPv4 receive checks and UDP demultiplexing, and the IPv4/UDP headers we send.
//!
//! Invariants: a datagram is handed up only if its IPv4 header checksum is right, its total length
//! fits the frame, it is not a fragment, it is addressed to our IP and UDP port, its UDP length fits
//! the IP payload, and its UDP checksum (when the sender set one) is right.

use super::checksum;
use super::{icmp, DropReason, LocalAddr, Verdict, ETH_HDR_LEN, IPV4_HDR_LEN, UDP_HDR_LEN};
use crate::Peer;
use std::net::Ipv4Addr;

/// IP protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;
/// TTL of datagrams we send.
pub const TTL: u8 = 64;

/// A checked IPv4 header's fields the stack uses.
pub(super) struct Header {
    /// Header length in bytes (with options).
    pub header_len: usize,
    /// Total length: header plus payload.
    pub total_len: usize,
    pub protocol: u8,
    pub src: [u8; 4],
}

/// Classifies an IPv4 frame (the EtherType has been checked).
pub(super) fn classify(frame: &mut [u8], local: &LocalAddr) -> Verdict {
    let header = match check_header(&frame[ETH_HDR_LEN..], local) {
        Ok(h) => h,
        Err(reason) => return Verdict::Drop(reason),
    };
    match header.protocol {
        PROTO_UDP => classify_udp(frame, &header, local),
        PROTO_ICMP => icmp::classify(frame, &header, local),
        _ => Verdict::Drop(DropReason::NotForUs),
    }
}

/// Checks an IPv4 header at the start of `ip` (which may carry Ethernet padding after the datagram).
fn check_header(ip: &[u8], local: &LocalAddr) -> Result<Header, DropReason> {
    if ip.len() < IPV4_HDR_LEN {
        return Err(DropReason::Malformed);
    }
    if ip[0] >> 4 != 4 {
        return Err(DropReason::Malformed);
    }
    let header_len = usize::from(ip[0] & 0x0F) * 4;
    let total_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if header_len < IPV4_HDR_LEN || total_len < header_len || total_len > ip.len() {
        return Err(DropReason::Malformed);
    }
    if checksum::checksum(&ip[..header_len]) != 0 {
        return Err(DropReason::BadChecksum);
    }
    // More-fragments set or a non-zero offset: we do not reassemble.
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x3FFF != 0 {
        return Err(DropReason::NotForUs);
    }
    if ip[16..20] != local.ip.octets() {
        return Err(DropReason::NotForUs);
    }
    Ok(Header { header_len, total_len, protocol: ip[9], src: ip[12..16].try_into().expect("4 bytes") })
}

fn classify_udp(frame: &[u8], h: &Header, local: &LocalAddr) -> Verdict {
    let ip = &frame[ETH_HDR_LEN..ETH_HDR_LEN + h.total_len];
    let Some(udp) = ip.get(h.header_len..) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    if udp.len() < UDP_HDR_LEN {
        return Verdict::Drop(DropReason::Malformed);
    }
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len < UDP_HDR_LEN || udp_len > udp.len() {
        return Verdict::Drop(DropReason::Malformed);
    }
    if u16::from_be_bytes([udp[2], udp[3]]) != local.udp_port {
        return Verdict::Drop(DropReason::NotForUs);
    }
    let udp = &udp[..udp_len];
    // A zero UDP checksum means the sender did not compute one (allowed over IPv4).
    if udp[6..8] != [0, 0] {
        let dst = local.ip.octets();
        let acc = checksum::pseudo_header_sum(h.src, dst, PROTO_UDP, udp_len as u16);
        if checksum::finish(checksum::sum(udp, acc)) != 0 {
            return Verdict::Drop(DropReason::BadChecksum);
        }
    }
    let src_mac: [u8; 6] = frame[6..12].try_into().expect("6 bytes");
    Verdict::Udp {
        peer: Peer { mac: src_mac, ip: Ipv4Addr::from(h.src), port: u16::from_be_bytes([udp[0], udp[1]]) },
        payload_offset: ETH_HDR_LEN + h.header_len + UDP_HDR_LEN,
        payload_len: udp_len - UDP_HDR_LEN,
    }
}

/// Writes the IPv4 and UDP headers of `ip` (which spans exactly header + UDP header + payload).
pub(super) fn write_udp(ip: &mut [u8], local: &LocalAddr, peer: &Peer) {
    let total_len = ip.len() as u16;
    let udp_len = total_len - IPV4_HDR_LEN as u16;
    write_header(ip, PROTO_UDP, local.ip, peer.ip);
    let udp = &mut ip[IPV4_HDR_LEN..];
    udp[0..2].copy_from_slice(&local.udp_port.to_be_bytes());
    udp[2..4].copy_from_slice(&peer.port.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    let acc = checksum::pseudo_header_sum(local.ip.octets(), peer.ip.octets(), PROTO_UDP, udp_len);
    let mut sum = checksum::finish(checksum::sum(udp, acc));
    // A computed zero is sent as all ones: zero on the wire means "no checksum".
    if sum == 0 {
        sum = 0xFFFF;
    }
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
}

/// Writes a 20-byte IPv4 header for a datagram of `ip.len()` bytes, checksum included.
pub fn write_header(ip: &mut [u8], protocol: u8, src: Ipv4Addr, dst: Ipv4Addr) {
    let total_len = ip.len() as u16;
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&total_len.to_be_bytes());
    ip[4..6].copy_from_slice(&[0, 0]);
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // don't fragment
    ip[8] = TTL;
    ip[9] = protocol;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let sum = checksum::checksum(&ip[..IPV4_HDR_LEN]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
}
