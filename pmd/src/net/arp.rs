//! ARP for IPv4 over Ethernet (RFC 826): answer requests for our address, learn from replies.
//!
//! Invariant: only well-formed Ethernet/IPv4 ARP packets (htype 1, ptype 0x0800, hlen 6, plen 4)
//! are answered or learned from; the reply is written over the request in place.

use super::{swap_eth_to_reply, DropReason, LocalAddr, ReplyKind, Verdict, ETH_HDR_LEN};
use std::net::Ipv4Addr;

/// Length of an Ethernet/IPv4 ARP packet.
pub const ARP_LEN: usize = 28;
/// ARP operation: request.
pub const OP_REQUEST: u16 = 1;
/// ARP operation: reply.
pub const OP_REPLY: u16 = 2;

/// Classifies an ARP frame (the EtherType has been checked).
pub(super) fn classify(frame: &mut [u8], local: &LocalAddr) -> Verdict {
    let Some(arp) = frame.get_mut(ETH_HDR_LEN..ETH_HDR_LEN + ARP_LEN) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    if arp[0..6] != [0, 1, 0x08, 0x00, 6, 4] {
        return Verdict::Drop(DropReason::Malformed);
    }
    let op = u16::from_be_bytes([arp[6], arp[7]]);
    let sender_mac: [u8; 6] = arp[8..14].try_into().expect("6 bytes");
    let sender_ip: [u8; 4] = arp[14..18].try_into().expect("4 bytes");
    let target_ip: [u8; 4] = arp[24..28].try_into().expect("4 bytes");
    if target_ip != local.ip.octets() {
        return Verdict::Drop(DropReason::NotForUs);
    }
    match op {
        OP_REQUEST => {
            write(arp, OP_REPLY, local.mac, local.ip, sender_mac, Ipv4Addr::from(sender_ip));
            swap_eth_to_reply(frame, local.mac);
            // Keep the request's length: it was at least a minimum frame if the sender padded it.
            let len = frame.len().clamp(ETH_HDR_LEN + ARP_LEN, super::ETH_FRAME_MIN);
            Verdict::ReplyInPlace { len, kind: ReplyKind::Arp }
        }
        OP_REPLY => Verdict::ArpLearned { ip: Ipv4Addr::from(sender_ip), mac: sender_mac },
        _ => Verdict::Drop(DropReason::Malformed),
    }
}

/// Writes an Ethernet/IPv4 ARP packet into `buf[..ARP_LEN]`.
pub fn write(
    buf: &mut [u8],
    op: u16,
    sender_mac: [u8; 6],
    sender_ip: Ipv4Addr,
    target_mac: [u8; 6],
    target_ip: Ipv4Addr,
) {
    buf[0..6].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    buf[6..8].copy_from_slice(&op.to_be_bytes());
    buf[8..14].copy_from_slice(&sender_mac);
    buf[14..18].copy_from_slice(&sender_ip.octets());
    buf[18..24].copy_from_slice(&target_mac);
    buf[24..28].copy_from_slice(&target_ip.octets());
}
