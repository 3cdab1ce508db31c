//! [`DpdkUdpIo`]: the [`PacketIo`] backend over one DPDK queue pair, with the [`crate::net`] fast
//! path answering ARP and ICMP echo on its own.
//!
//! Received UDP datagrams stay in their mbuf ([`DpdkRx`] borrows the payload in place: zero copy);
//! transmit buffers are mbufs from the pool whose payload area starts after the 42 bytes of
//! Ethernet/IPv4/UDP headers, which are written at `tx_burst` ([`DpdkTx`]).
//!
//! The exception path (`set_exception`): a port that also carries TCP clients hands every frame the
//! fast path does not serve, for our Ethernet address or a group address (TCP and other IPv4
//! traffic for us, ARP replies (after learning them), IPv6 and its neighbour discovery), to a
//! kernel interface behind a second port (a `net_tap` carrying the same MAC and IP), and sends
//! what the kernel writes there out of the data port unchanged. The kernel's TCP stack then serves
//! TCP clients on the DPDK-owned address, through ordinary sockets (the acceptor). Frames for other
//! Ethernet addresses (a promiscuous virtual port sees them) are still dropped.
//!
//! Invariants: nothing here allocates per packet (mbuf pointer arrays live on the stack, the
//! pending-reply batch and the ARP table are fixed-size and made in `new`); every received frame is
//! either handed up, turned into a reply, or dropped and counted under exactly one reason;
//! `rx_burst` takes at most `burst_size_max` frames from the queue and hands up at most
//! `batch.room()` datagrams; replies the pending batch cannot hold are dropped and counted in
//! `tx_dropped`.

use super::mbuf::Mbuf;
use super::mempool::Mempool;
use super::port::{PortStats, RxTxQueue, QUEUE_BURST_MAX};
use super::DpdkError;
use crate::net::{self, DropReason, LocalAddr, ReplyKind, Verdict};
use crate::{Batch, IoCounters, PacketIo, Peer, RxDatagram, TxDatagram};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// Entries in the per-queue ARP table (oldest replaced first when full).
pub const ARP_TABLE_LEN: usize = 16;
/// Unresolved addresses a queue watches its received datagrams for (see `DpdkUdpIo::tx_alloc`).
const ARP_WANTED_LEN: usize = 4;
/// An unresolved address is asked for by ARP once every this many datagrams sent to it.
const ARP_ASK_EVERY: u64 = 64;

/// Default and largest useful `burst_size_max`: one `rte_eth_rx_burst` call's worth per chunk is
/// [`QUEUE_BURST_MAX`]; bigger bursts are done in several calls.
pub const BURST_SIZE_MAX: usize = 512;

/// Link-level replies (ARP, ICMP echo) waiting for room in the transmit ring.
const PENDING_REPLIES_MAX: usize = 64;

/// A received UDP datagram, its payload read in place from the mbuf.
pub struct DpdkRx {
    mbuf: Mbuf,
    payload_offset: usize,
    payload_len: usize,
    peer: Peer,
}

impl std::fmt::Debug for DpdkRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkRx").field("peer", &self.peer).field("payload_len", &self.payload_len).finish()
    }
}

impl RxDatagram for DpdkRx {
    #[inline]
    fn payload(&self) -> &[u8] {
        &self.mbuf.data()[self.payload_offset..][..self.payload_len]
    }

    #[inline]
    fn peer(&self) -> Peer {
        self.peer
    }
}

/// A datagram being built in an mbuf: the payload area follows the headers' 42 bytes.
pub struct DpdkTx {
    mbuf: Mbuf,
    peer: Peer,
    payload_len: usize,
    payload_max: usize,
}

impl std::fmt::Debug for DpdkTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkTx").field("peer", &self.peer).field("payload_len", &self.payload_len).finish()
    }
}

impl DpdkTx {
    /// Where the datagram goes.
    pub fn peer(&self) -> Peer {
        self.peer
    }
}

impl TxDatagram for DpdkTx {
    #[inline]
    fn payload_mut(&mut self) -> &mut [u8] {
        let max = self.payload_max;
        &mut self.mbuf.room_mut()[net::UDP_PAYLOAD_OFFSET..][..max]
    }

    #[inline]
    fn set_len(&mut self, len: usize) {
        assert!(len <= self.payload_max, "payload length {len} exceeds the area of {}", self.payload_max);
        self.payload_len = len;
    }

    /// The peer of a received request carries its MAC; headers are written at `tx_burst`.
    #[inline]
    fn set_peer(&mut self, peer: &Peer) {
        self.peer = *peer;
    }
}

/// A UDP endpoint on one DPDK queue pair.
pub struct DpdkUdpIo {
    queue: RxTxQueue,
    pool: Arc<Mempool>,
    local: LocalAddr,
    burst_size_max: usize,
    payload_max: usize,
    pending: Batch<Mbuf>,
    arp_table: [(Ipv4Addr, [u8; 6]); ARP_TABLE_LEN],
    arp_len: usize,
    arp_next: usize,
    /// Addresses this queue sent to without knowing their MAC (see `tx_alloc`): learned from the
    /// next datagram or ARP reply from them that this queue receives.
    arp_wanted: [Ipv4Addr; ARP_WANTED_LEN],
    arp_wanted_len: usize,
    /// Datagrams sent to the broadcast MAC for want of the peer's (an ARP request every
    /// `ARP_ASK_EVERY` of them).
    tx_unresolved: u64,
    counters: IoCounters,
    rx_multi_segment: u64,
    /// The exception interface's queue pair, if this port has one.
    exception: Option<RxTxQueue>,
    /// Frames for the kernel, sent at the end of `rx_burst`.
    to_kernel: Batch<Mbuf>,
    /// Frames from the kernel, sent out of the data port.
    from_kernel: Batch<Mbuf>,
}

impl std::fmt::Debug for DpdkUdpIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkUdpIo")
            .field("queue", &self.queue)
            .field("local", &self.local)
            .field("counters", &self.counters)
            .finish()
    }
}

impl DpdkUdpIo {
    /// A UDP endpoint on `queue`, answering for `local`, taking transmit mbufs from `pool` (the
    /// receive queue's pool is fine). `burst_size_max` bounds the datagrams one `rx_burst` hands up
    /// (1..=[`BURST_SIZE_MAX`]). The largest payload is that of a 1500-byte MTU (1472 bytes), or
    /// less if the pool's buffers are smaller; see [`Self::set_payload_max`].
    pub fn new(queue: RxTxQueue, pool: Arc<Mempool>, local: LocalAddr, burst_size_max: usize) -> Self {
        assert!(burst_size_max > 0, "burst_size_max must be at least 1");
        assert!(burst_size_max <= BURST_SIZE_MAX, "burst_size_max {burst_size_max} exceeds {BURST_SIZE_MAX}");
        let room = usize::from(pool.data_room() - Mempool::HEADROOM);
        assert!(room >= net::ETH_FRAME_MIN, "mbuf data room {room} cannot hold a minimum frame");
        let payload_max = net::UDP_PAYLOAD_MAX_MTU1500.min(room - net::UDP_PAYLOAD_OFFSET);
        Self {
            queue,
            pool,
            local,
            burst_size_max,
            payload_max,
            pending: Batch::with_capacity(PENDING_REPLIES_MAX),
            arp_table: [(Ipv4Addr::UNSPECIFIED, [0; 6]); ARP_TABLE_LEN],
            arp_len: 0,
            arp_next: 0,
            arp_wanted: [Ipv4Addr::UNSPECIFIED; ARP_WANTED_LEN],
            arp_wanted_len: 0,
            tx_unresolved: 0,
            counters: IoCounters::default(),
            rx_multi_segment: 0,
            exception: None,
            to_kernel: Batch::with_capacity(QUEUE_BURST_MAX),
            from_kernel: Batch::with_capacity(QUEUE_BURST_MAX),
        }
    }

    /// Hands the frames the fast path does not serve to the kernel through `queue` (this shard's
    /// queue pair on the exception interface's port) and sends the kernel's frames out (see the
    /// module header).
    pub fn set_exception(&mut self, queue: RxTxQueue) {
        self.exception = Some(queue);
    }

    /// Whether an unserved frame goes to the kernel: the exception path is on and the frame is for
    /// our Ethernet address or a group (broadcast, multicast) address.
    #[inline]
    fn for_kernel(&self, frame: &[u8]) -> bool {
        self.exception.is_some() && frame.len() >= 6 && (frame[..6] == self.local.mac || frame[0] & 1 == 1)
    }

    /// Queues `mbuf` for the kernel, sending a full batch at once; counts what cannot go.
    fn hand_to_kernel(&mut self, mbuf: Mbuf) {
        if let Err(mbuf) = self.to_kernel.push(mbuf) {
            self.flush_exception();
            if self.to_kernel.push(mbuf).is_err() {
                self.counters.exception_dropped += 1;
            }
        }
    }

    /// Sends the frames queued for the kernel (what the ring refuses is dropped and counted), then
    /// moves what the kernel sent out of the data port.
    fn flush_exception(&mut self) {
        let Some(exc) = self.exception.as_mut() else { return };
        if !self.to_kernel.is_empty() {
            let sent = exc.tx_burst(&mut self.to_kernel);
            self.counters.exception_to_kernel += sent as u64;
            self.counters.exception_dropped += self.to_kernel.len() as u64;
            self.to_kernel.clear();
        }
        if self.from_kernel.is_empty() {
            exc.rx_burst(&mut self.from_kernel);
        }
        if !self.from_kernel.is_empty() {
            let sent = self.queue.tx_burst(&mut self.from_kernel);
            self.counters.exception_from_kernel += sent as u64;
            // What the data port refuses waits for the next call (the batch keeps it).
        }
    }

    /// Sets the largest payload `tx_alloc` offers (e.g. `mtu - 28` for a port with a larger MTU),
    /// clamped to what the pool's buffers hold after the headers.
    pub fn set_payload_max(&mut self, payload_max: usize) {
        let room = usize::from(self.pool.data_room() - Mempool::HEADROOM);
        self.payload_max = payload_max.min(room - net::UDP_PAYLOAD_OFFSET);
    }

    /// The largest payload a transmit buffer offers.
    pub fn payload_max(&self) -> usize {
        self.payload_max
    }

    /// Our addresses.
    pub fn local(&self) -> LocalAddr {
        self.local
    }

    /// Multi-segment frames received and dropped (also counted in `rx_malformed`): we only handle
    /// frames that fit one mbuf.
    pub fn rx_multi_segment(&self) -> u64 {
        self.rx_multi_segment
    }

    /// The port's counters (all queues).
    pub fn port_stats(&self) -> Result<PortStats, DpdkError> {
        self.queue.port_stats()
    }

    /// The Ethernet address learned for `ip` from an ARP reply, if any.
    pub fn arp_lookup(&self, ip: Ipv4Addr) -> Option<[u8; 6]> {
        self.arp_table[..self.arp_len].iter().find(|(known, _)| *known == ip).map(|&(_, mac)| mac)
    }

    /// Broadcasts an ARP request for `target`; the reply is learned by a later `rx_burst` (then
    /// see [`Self::arp_lookup`]). Returns false if no mbuf could be had or the queue refused it.
    pub fn send_arp_request(&mut self, target: Ipv4Addr) -> bool {
        let Some(mut mbuf) = Mbuf::alloc(&self.pool) else {
            self.counters.tx_alloc_failed += 1;
            return false;
        };
        let len = net::write_arp_request(mbuf.room_mut(), &self.local, target);
        mbuf.set_len(len);
        if self.pending.push(mbuf).is_err() {
            self.counters.tx_dropped += 1;
            return false;
        }
        self.flush_pending();
        true
    }

    /// Sends `frame` (a whole Ethernet frame, FCS excluded) as it is, through the same queue as
    /// link-level replies: for tools and tests (pings, crafted or malformed frames). Copies it into
    /// a fresh mbuf; returns false if no mbuf could be had, the frame does not fit one, or the
    /// pending queue is full.
    pub fn send_raw_frame(&mut self, frame: &[u8]) -> bool {
        let Some(mut mbuf) = Mbuf::alloc(&self.pool) else {
            self.counters.tx_alloc_failed += 1;
            return false;
        };
        if frame.len() > mbuf.capacity() {
            return false;
        }
        mbuf.room_mut()[..frame.len()].copy_from_slice(frame);
        mbuf.set_len(frame.len());
        if self.pending.push(mbuf).is_err() {
            self.counters.tx_dropped += 1;
            return false;
        }
        self.flush_pending();
        true
    }

    /// Learns `ip`'s MAC from a datagram it sent, if this queue wants it.
    fn learn_wanted(&mut self, ip: Ipv4Addr, mac: [u8; 6]) {
        if self.arp_wanted[..self.arp_wanted_len].contains(&ip) {
            self.learn(ip, mac);
        }
    }

    /// The MAC to send to `ip` when it is not in the table: broadcast (the IPv4 header still names
    /// the one host that takes the datagram), asking by ARP now and then and watching received
    /// datagrams for it.
    fn unresolved(&mut self, ip: Ipv4Addr) -> [u8; 6] {
        if self.tx_unresolved.is_multiple_of(ARP_ASK_EVERY) {
            self.send_arp_request(ip);
        }
        self.tx_unresolved += 1;
        let wanted = &self.arp_wanted[..self.arp_wanted_len];
        if !wanted.contains(&ip) && self.arp_wanted_len < ARP_WANTED_LEN {
            self.arp_wanted[self.arp_wanted_len] = ip;
            self.arp_wanted_len += 1;
        }
        net::MAC_BROADCAST
    }

    fn learn(&mut self, ip: Ipv4Addr, mac: [u8; 6]) {
        if let Some(i) = self.arp_wanted[..self.arp_wanted_len].iter().position(|w| *w == ip) {
            self.arp_wanted_len -= 1;
            self.arp_wanted.swap(i, self.arp_wanted_len);
        }
        if let Some(entry) = self.arp_table[..self.arp_len].iter_mut().find(|(known, _)| *known == ip) {
            entry.1 = mac;
            return;
        }
        if self.arp_len < ARP_TABLE_LEN {
            self.arp_table[self.arp_len] = (ip, mac);
            self.arp_len += 1;
        } else {
            self.arp_table[self.arp_next] = (ip, mac);
            self.arp_next = (self.arp_next + 1) % ARP_TABLE_LEN;
        }
    }

    /// Sends queued link-level replies; those the ring refuses wait for the next call.
    fn flush_pending(&mut self) {
        if !self.pending.is_empty() {
            self.queue.tx_burst(&mut self.pending);
        }
    }

    /// Classifies one received frame; returns the datagram to hand up, if it is one.
    #[inline]
    fn handle_frame(&mut self, mut mbuf: Mbuf) -> Option<DpdkRx> {
        self.counters.rx_packets += 1;
        if mbuf.segments() != 1 {
            self.rx_multi_segment += 1;
            self.counters.rx_malformed += 1;
            return None;
        }
        match net::classify(mbuf.data_mut(), &self.local) {
            Verdict::Udp { peer, payload_offset, payload_len } => {
                self.counters.rx_datagrams += 1;
                if self.arp_wanted_len > 0 {
                    self.learn_wanted(peer.ip, peer.mac);
                }
                Some(DpdkRx { mbuf, payload_offset, payload_len, peer })
            }
            Verdict::ReplyInPlace { len, kind } => {
                match kind {
                    ReplyKind::Arp => self.counters.arp_replies += 1,
                    ReplyKind::IcmpEcho => self.counters.icmp_echo_replies += 1,
                }
                // Pad runts to the Ethernet minimum: real NICs would, virtual links do not.
                let padded = len.max(net::ETH_FRAME_MIN);
                if padded > len {
                    mbuf.room_mut()[len..padded].fill(0);
                }
                mbuf.set_len(padded);
                if self.pending.push(mbuf).is_err() {
                    self.counters.tx_dropped += 1;
                }
                None
            }
            Verdict::ArpLearned { ip, mac } => {
                self.learn(ip, mac);
                // The kernel behind the exception interface learns its neighbours from them too.
                if self.exception.is_some() {
                    self.hand_to_kernel(mbuf);
                }
                None
            }
            Verdict::Drop(DropReason::NotForUs) if self.for_kernel(mbuf.data()) => {
                self.hand_to_kernel(mbuf);
                None
            }
            Verdict::Drop(reason) => {
                match reason {
                    DropReason::Malformed => self.counters.rx_malformed += 1,
                    DropReason::BadChecksum => self.counters.rx_bad_checksum += 1,
                    DropReason::NotForUs => self.counters.rx_not_for_us += 1,
                }
                None
            }
        }
    }
}

impl PacketIo for DpdkUdpIo {
    type Rx = DpdkRx;
    type Tx = DpdkTx;

    fn rx_burst(&mut self, batch: &mut Batch<DpdkRx>) -> usize {
        let mut ptrs = [std::ptr::null_mut(); QUEUE_BURST_MAX];
        let mut added = 0;
        let mut taken = 0;
        // Each frame taken can add at most one datagram, so asking for at most the room left keeps
        // every push below in bounds; counting frames taken (not datagrams added) bounds the work
        // of one call even under a flood of frames that are not ours.
        loop {
            let want = batch.room().min(self.burst_size_max - taken).min(QUEUE_BURST_MAX);
            if want == 0 {
                break;
            }
            let got = self.queue.rx_burst_raw(&mut ptrs[..want]);
            taken += got;
            for &p in &ptrs[..got] {
                let p = std::ptr::NonNull::new(p).expect("rte_eth_rx_burst returned a null mbuf");
                // SAFETY: rx_burst handed us ownership of this mbuf; its pool is kept alive by the
                // port, which the queue holds.
                let mbuf = unsafe { Mbuf::from_raw(p) };
                if let Some(rx) = self.handle_frame(mbuf) {
                    if batch.push(rx).is_err() {
                        unreachable!("at most batch.room() frames were taken");
                    }
                    added += 1;
                }
            }
            if got < want {
                break;
            }
        }
        self.flush_pending();
        self.flush_exception();
        added
    }

    fn tx_alloc(&mut self, peer: &Peer) -> Option<DpdkTx> {
        let Some(mbuf) = Mbuf::alloc(&self.pool) else {
            self.counters.tx_alloc_failed += 1;
            return None;
        };
        let mut peer = *peer;
        // A peer known only by IP (a client addressing a server, a node addressing another from
        // its config): the MAC ARP learned, else broadcast until it is learned.
        if peer.mac == [0; 6] {
            peer.mac = match self.arp_lookup(peer.ip) {
                Some(mac) => mac,
                None => self.unresolved(peer.ip),
            };
        }
        Some(DpdkTx { mbuf, peer, payload_len: 0, payload_max: self.payload_max })
    }

    fn tx_burst(&mut self, batch: &mut Batch<DpdkTx>) -> usize {
        // Link-level replies go first so a busy sender cannot starve them.
        self.flush_pending();
        let mut ptrs = [std::ptr::null_mut(); QUEUE_BURST_MAX];
        let mut total = 0;
        while !batch.is_empty() {
            let n = batch.len().min(QUEUE_BURST_MAX);
            for (slot, tx) in ptrs.iter_mut().zip(&mut batch.as_mut_slice()[..n]) {
                // Rewriting the headers of a datagram left over from a refused burst is harmless
                // (same bytes) and cheaper than tracking which ones are done.
                let frame_len =
                    net::write_udp_headers(tx.mbuf.room_mut(), &self.local, &tx.peer, tx.payload_len);
                let padded = frame_len.max(net::ETH_FRAME_MIN);
                if padded > frame_len {
                    tx.mbuf.room_mut()[frame_len..padded].fill(0);
                }
                tx.mbuf.set_len(padded);
                *slot = tx.mbuf.as_ptr();
            }
            // SAFETY: each pointer is a valid single-segment mbuf owned by the batch, its frame and
            // lengths set; the taken ones are released from the batch below without freeing them.
            let sent = unsafe { self.queue.tx_burst_raw(&mut ptrs[..n]) };
            for tx in batch.consume_front(sent) {
                let _ = tx.mbuf.into_raw();
            }
            self.counters.tx_datagrams += sent as u64;
            total += sent;
            if sent < n {
                break;
            }
        }
        total
    }

    fn counters(&self) -> IoCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn endpoints_and_datagrams_move_to_shard_threads() {
        assert_send::<DpdkUdpIo>();
        assert_send::<DpdkRx>();
        assert_send::<DpdkTx>();
        assert_send::<RxTxQueue>();
    }
}
