//! The `StreamIo` seam: one shard's byte-stream connections (TCP), polled without blocking.
//!
//! An acceptor thread accepts connections, tells their protocol apart and hands each to the shard
//! that will own it ([`Handoff`]); from then on only that shard's poll loop touches it, through its
//! `StreamIo`: `poll` adopts the handed-off connections and reports which ones became readable or
//! writable, `recv` and `send` move bytes without blocking, `close` ends one. The appliance in
//! `src/` parses and answers those bytes sans-IO; the simulator and tests drive the same code over
//! in-memory streams.
//!
//! A connection is named by a [`ConnId`]: its slot in the shard's table and the slot's generation,
//! so a late answer for a connection that closed (its slot since reused) is recognised and
//! dropped. A request that arrived on a connection carries a [`Peer`] made by
//! [`Peer::connection_of`] (its id and protocol tag), so the code that answers requests later
//! (writes waiting for their log entry) sends the answer back to the connection instead of to a
//! UDP address.
//!
//! Invariants: nothing here blocks; readiness is edge-triggered (`Readable` is reported when new
//! bytes arrive, so a reader reads until `WouldBlock` or remembers to come back); `poll` adds at
//! most `out`'s spare capacity of events and leaves the rest for the next call; a closed
//! connection's id is never reported again.

use crate::Peer;
use std::net::Ipv4Addr;

/// A connection of one shard: its slot and the slot's generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId {
    /// The slot in the shard's connection table.
    pub slot: u32,
    /// How many connections used the slot before this one (wrapping).
    pub generation: u16,
}

/// The Ethernet address that marks a [`Peer`] as a connection: a group (multicast) address, which
/// no frame ever carries as its source, so no datagram's peer can look like a connection. Its
/// last byte holds the connection's protocol tag ([`Peer::connection_of`]).
const CONNECTION_MAC: [u8; 6] = [0x03, b'V', b'C', 0, 0, 0];
/// The bytes of `CONNECTION_MAC` that mark a connection (the rest is the protocol tag).
const CONNECTION_MARK: usize = 5;

impl Peer {
    /// The peer of requests that arrived on connection `id`: answers given later go back to it.
    /// Its protocol tag is 0 (none known); see `connection_of`.
    pub const fn connection(id: ConnId) -> Self {
        Self::connection_of(id, 0)
    }

    /// The peer of requests that arrived on connection `id`, which the acceptor tagged `protocol`
    /// (the tag's meaning is the appliance's): the requests, and the records of those answered
    /// later, carry the protocol they came over with no field of their own (metrics count
    /// requests by protocol).
    pub const fn connection_of(id: ConnId, protocol: u8) -> Self {
        let mut mac = CONNECTION_MAC;
        mac[CONNECTION_MARK] = protocol;
        Self { mac, ip: Ipv4Addr::from_bits(id.slot), port: id.generation }
    }

    /// The connection this peer names, if it names one (else it is a UDP address).
    pub fn as_connection(&self) -> Option<ConnId> {
        self.is_connection().then(|| ConnId { slot: self.ip.to_bits(), generation: self.port })
    }

    /// The protocol tag of the connection this peer names (`None`: a UDP address).
    #[inline]
    pub fn connection_protocol(&self) -> Option<u8> {
        self.is_connection().then_some(self.mac[CONNECTION_MARK])
    }

    #[inline]
    fn is_connection(&self) -> bool {
        self.mac[..CONNECTION_MARK] == CONNECTION_MAC[..CONNECTION_MARK]
    }
}

/// What `StreamIo::poll` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// A connection handed to this shard, with the protocol tag the acceptor gave it.
    Opened {
        /// Its id from now on.
        conn: ConnId,
        /// The acceptor's protocol tag (its meaning is the appliance's).
        protocol: u8,
    },
    /// New bytes to read (read until `WouldBlock`).
    Readable(ConnId),
    /// Room to send again after a short send.
    Writable(ConnId),
}

/// How a `recv` went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// This many bytes were read (at least one).
    Data(usize),
    /// Nothing to read now; a later `Readable` says when.
    WouldBlock,
    /// The peer closed its side, or the connection failed: close it.
    Closed,
}

/// How a `send` went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// This many bytes were taken (fewer than given: wait for `Writable` to send the rest).
    Bytes(usize),
    /// The connection failed or is gone: close it.
    Closed,
}

/// Counters every stream backend keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamCounters {
    /// Connections adopted.
    pub opened: u64,
    /// Connections closed.
    pub closed: u64,
    /// Connections refused at hand-off: the shard's table was full.
    pub refused_full: u64,
    /// Bytes read.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
}

/// One shard's connections.
pub trait StreamIo {
    /// Adopts connections handed to this shard and collects readiness, without blocking; adds at
    /// most `out`'s spare capacity of events (the rest come at the next call).
    fn poll(&mut self, out: &mut Vec<StreamEvent>);
    /// Reads into `buf` without blocking.
    fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Received;
    /// Sends from `bytes` without blocking.
    fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Sent;
    /// Closes `conn` (an unknown or stale id is ignored).
    fn close(&mut self, conn: ConnId);
    /// A descriptor that becomes readable when `poll` has something to report, for a shard that
    /// sleeps when idle (`None`: the backend has none; the shard must not sleep for long).
    fn wait_fd(&self) -> Option<i32>;
    /// What it counted.
    fn counters(&self) -> StreamCounters;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_peer_round_trips_and_no_udp_peer_is_a_connection() {
        let id = ConnId { slot: 70_000, generation: 3 };
        assert_eq!(Peer::connection(id).as_connection(), Some(id));
        assert_eq!(Peer::connection_of(id, 3).as_connection(), Some(id));
        assert_eq!(Peer::connection_of(id, 3).connection_protocol(), Some(3));
        assert_eq!(Peer::connection(id).connection_protocol(), Some(0));
        let udp = Peer { mac: [0x02, 0, 0, 0, 0, 1], ip: Ipv4Addr::LOCALHOST, port: 9000 };
        assert_eq!(udp.as_connection(), None);
        assert_eq!(udp.connection_protocol(), None);
        assert_eq!(Peer::from_ip_port(Ipv4Addr::LOCALHOST, 1).as_connection(), None);
    }
}
