//! The `PacketIo` seam: bursts of UDP datagrams in and out of one shard's queue.
//!
//! A backend owns one receive/transmit queue pair (a DPDK ethdev queue, a kernel socket, the
//! simulator's network). Received datagrams own their bytes (an mbuf in DPDK mode, a pooled slot in
//! kernel mode) and give them back to their pool on drop, so the payload is read in place: zero copy.
//! Replies are written straight into a transmit buffer taken from the backend (`tx_alloc`), again
//! without a copy; the backend adds the Ethernet/IPv4/UDP headers (DPDK) or the socket address (kernel)
//! at `tx_burst`.
//!
//! Invariants: `rx_burst` adds at most `batch.room()` datagrams; `tx_burst` takes datagrams from the
//! front of the batch and leaves the ones the queue had no room for, so the caller decides whether to
//! retry or drop (and count) them; nothing here allocates per packet.

use crate::Batch;
use std::net::Ipv4Addr;

/// Where a datagram came from, and so where its reply goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The peer's Ethernet address (all zero on backends without a link layer of their own).
    pub mac: [u8; 6],
    /// The peer's IPv4 address.
    pub ip: Ipv4Addr,
    /// The peer's UDP port.
    pub port: u16,
}

impl Peer {
    /// A peer known only by IP address and port (kernel sockets).
    pub const fn from_ip_port(ip: Ipv4Addr, port: u16) -> Self {
        Self { mac: [0; 6], ip, port }
    }
}

/// A received datagram. Dropping it returns its buffer to the backend's pool.
pub trait RxDatagram {
    /// The UDP payload.
    fn payload(&self) -> &[u8];
    /// Who sent it.
    fn peer(&self) -> Peer;
}

/// A datagram being built for transmission. Dropping it unsent returns its buffer to the pool.
pub trait TxDatagram {
    /// The whole writable payload area (its length is the largest payload this buffer can carry).
    fn payload_mut(&mut self) -> &mut [u8];
    /// Sets how many bytes of the payload area are sent. Panics if `len` exceeds the area.
    fn set_len(&mut self, len: usize);
    /// Re-addresses it to `peer` (a buffer reserved ahead of time, then filled with an answer for
    /// the peer of the request it was reserved for).
    fn set_peer(&mut self, peer: &Peer);
}

/// Counters every backend keeps; read off the hot path (at shutdown, by metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoCounters {
    /// Frames or datagrams taken from the queue.
    pub rx_packets: u64,
    /// UDP datagrams handed to the caller.
    pub rx_datagrams: u64,
    /// Datagrams given to the queue for transmission.
    pub tx_datagrams: u64,
    /// Datagrams the caller asked to send that the queue refused (ring full) and that were dropped.
    pub tx_dropped: u64,
    /// ARP requests answered (DPDK backend).
    pub arp_replies: u64,
    /// ICMP echo requests answered (DPDK backend).
    pub icmp_echo_replies: u64,
    /// Frames dropped: too short, truncated, or with a header field that does not parse.
    pub rx_malformed: u64,
    /// Frames dropped for a bad IPv4 header or UDP checksum.
    pub rx_bad_checksum: u64,
    /// Frames dropped because they are not for us (other address, port, protocol or EtherType).
    pub rx_not_for_us: u64,
    /// Transmit buffers that could not be had (pool empty).
    pub tx_alloc_failed: u64,
    /// Datagrams the kernel dropped before the backend saw them (its socket's receive queue was
    /// full: `SO_RXQ_OVFL`, kernel backend); the count as of the last datagram received.
    pub rx_kernel_dropped: u64,
    /// Frames the fast path does not serve (TCP, other UDP ports, ARP replies, IPv6) handed to the
    /// kernel's exception interface (DPDK backend with `dpdk.exception_iface`).
    pub exception_to_kernel: u64,
    /// Frames the kernel sent through the exception interface, sent out of the port.
    pub exception_from_kernel: u64,
    /// Exception frames dropped: a ring was full either way.
    pub exception_dropped: u64,
}

impl IoCounters {
    /// Every counter with its name, in declaration order: the one list that reports, JSON and
    /// metrics are built from.
    pub fn named(&self) -> [(&'static str, u64); 14] {
        [
            ("rx_packets", self.rx_packets),
            ("rx_datagrams", self.rx_datagrams),
            ("tx_datagrams", self.tx_datagrams),
            ("tx_dropped", self.tx_dropped),
            ("arp_replies", self.arp_replies),
            ("icmp_echo_replies", self.icmp_echo_replies),
            ("rx_malformed", self.rx_malformed),
            ("rx_bad_checksum", self.rx_bad_checksum),
            ("rx_not_for_us", self.rx_not_for_us),
            ("tx_alloc_failed", self.tx_alloc_failed),
            ("rx_kernel_dropped", self.rx_kernel_dropped),
            ("exception_to_kernel", self.exception_to_kernel),
            ("exception_from_kernel", self.exception_from_kernel),
            ("exception_dropped", self.exception_dropped),
        ]
    }
}

/// `name value` pairs separated by spaces, e.g. `rx_packets 10 rx_datagrams 9 ...`.
impl std::fmt::Display for IoCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, value)) in self.named().iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{name} {value}")?;
        }
        Ok(())
    }
}

/// One shard's packet queue pair.
pub trait PacketIo {
    /// A received datagram.
    type Rx: RxDatagram;
    /// A datagram under construction.
    type Tx: TxDatagram;

    /// Receives up to `batch.room()` datagrams into `batch`; returns how many were added.
    /// Never blocks. Link-level work (ARP, ICMP echo) is done here and not surfaced.
    fn rx_burst(&mut self, batch: &mut Batch<Self::Rx>) -> usize;

    /// As `rx_burst`, but never waits for traffic even where the backend is configured to sleep
    /// when idle (the kernel backend's `idle_wait`): the caller has other work in flight (log
    /// writes to reap) that a sleep would delay.
    fn rx_burst_no_wait(&mut self, batch: &mut Batch<Self::Rx>) -> usize {
        self.rx_burst(batch)
    }

    /// Whether `rx_burst_or_wait` may sleep at all (the kernel backend with an `idle_wait`): a
    /// caller that gets `false` need not work out which descriptors it could wait on.
    fn sleeps_when_idle(&self) -> bool {
        false
    }

    /// As `rx_burst`, but where the backend sleeps when idle (the kernel backend's `idle_wait`)
    /// it also wakes when one of `fds` becomes readable: the caller's only work in flight is I/O
    /// that completes on those descriptors (a log write through io_uring), so sleeping lets the
    /// kernel (and, on a VM, the host) complete it sooner than a spinning CPU would. Backends that
    /// never sleep poll as `rx_burst_no_wait` does.
    fn rx_burst_or_wait(&mut self, batch: &mut Batch<Self::Rx>, fds: &[i32]) -> usize {
        let _ = fds;
        self.rx_burst_no_wait(batch)
    }

    /// A transmit buffer addressed to `peer`, or `None` when the pool is empty (counted).
    fn tx_alloc(&mut self, peer: &Peer) -> Option<Self::Tx>;

    /// Sends datagrams from the front of `batch`; returns how many were taken. Those left were
    /// refused by a full queue; the caller retries or drops them.
    fn tx_burst(&mut self, batch: &mut Batch<Self::Tx>) -> usize;

    /// The backend's counters so far.
    fn counters(&self) -> IoCounters;
}
