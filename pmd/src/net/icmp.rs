//! ICMP echo (ping) replies, written over the request in place.
//!
//! Invariant: only echo requests (type 8, code 0) with a correct ICMP checksum are answered; the
//! reply keeps identifier, sequence and data, and gets fresh IPv4 and ICMP checksums.

use super::ipv4::{Header, TTL};
use super::{checksum, swap_eth_to_reply, DropReason, LocalAddr, ReplyKind, Verdict, ETH_HDR_LEN};

/// ICMP type of an echo request.
pub const ECHO_REQUEST: u8 = 8;
/// ICMP type of an echo reply.
pub const ECHO_REPLY: u8 = 0;
/// ICMP echo header length (type, code, checksum, identifier, sequence).
pub const ECHO_HDR_LEN: usize = 8;

/// Classifies an ICMP datagram whose IPv4 header has been checked.
pub(super) fn classify(frame: &mut [u8], h: &Header, local: &LocalAddr) -> Verdict {
    let ip = &mut frame[ETH_HDR_LEN..ETH_HDR_LEN + h.total_len];
    let (ip_header, icmp) = ip.split_at_mut(h.header_len);
    if icmp.len() < ECHO_HDR_LEN {
        return Verdict::Drop(DropReason::Malformed);
    }
    if icmp[0] != ECHO_REQUEST || icmp[1] != 0 {
        return Verdict::Drop(DropReason::NotForUs);
    }
    if checksum::checksum(icmp) != 0 {
        return Verdict::Drop(DropReason::BadChecksum);
    }
    icmp[0] = ECHO_REPLY;
    icmp[2..4].copy_from_slice(&[0, 0]);
    let sum = checksum::checksum(icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    // Reply from our address to the sender, keeping any IP options the request carried.
    ip_header.copy_within(12..16, 16);
    ip_header[12..16].copy_from_slice(&local.ip.octets());
    ip_header[8] = TTL;
    ip_header[10..12].copy_from_slice(&[0, 0]);
    let sum = checksum::checksum(ip_header);
    ip_header[10..12].copy_from_slice(&sum.to_be_bytes());
    swap_eth_to_reply(frame, local.mac);
    Verdict::ReplyInPlace { len: ETH_HDR_LEN + h.total_len, kind: ReplyKind::IcmpEcho }
}

/// Writes an ICMP echo request (header and `data`) into `icmp[..ECHO_HDR_LEN + data.len()]`;
/// used by tests and tools that ping a DPDK port.
pub fn write_echo_request(icmp: &mut [u8], id: u16, seq: u16, data: &[u8]) -> usize {
    let len = ECHO_HDR_LEN + data.len();
    icmp[0] = ECHO_REQUEST;
    icmp[1] = 0;
    icmp[2..4].copy_from_slice(&[0, 0]);
    icmp[4..6].copy_from_slice(&id.to_be_bytes());
    icmp[6..8].copy_from_slice(&seq.to_be_bytes());
    icmp[ECHO_HDR_LEN..len].copy_from_slice(data);
    let sum = checksum::checksum(&icmp[..len]);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    len
}
