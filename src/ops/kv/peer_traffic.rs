//! The KV subsystem's side of replication: peer datagrams received by this shard (stepped into
//! its partitions, or handed to the shard that owns theirs), peer datagrams to send, and the
//! lease bound of the answers it makes (`reads_valid_until`).
//!
//! Invariants: a peer datagram is stepped only on the shard that owns its partitions; nothing is
//! answered to a peer datagram.

use super::*;

impl<D: BlockIo> KvShard<D> {
    /// The earliest time a read this shard answers now may stop being valid: the soonest end of
    /// the leases its partitions serve reads on (`u64::MAX` when none needs one: a group of one
    /// voter's answer does not depend on the time). Answers made before it, proven by a clock
    /// read after they were made, may go out; after it a lease ran out in between (the process
    /// was paused mid-iteration) and they must not.
    pub fn reads_valid_until(&self) -> Nanos {
        self.partitions.iter().filter_map(Partition::reads_valid_until).min().unwrap_or(Nanos(u64::MAX))
    }

    /// A peer datagram this shard's queue received (`ops::peer_link`): stepped here when its
    /// partitions are this shard's, else handed to their owner through the cross-shard inbox
    /// (no reservation: nobody is answered). Returns false on a node whose partitions do not
    /// replicate (the engine then answers it as a foreign datagram).
    pub fn peer_datagram(&mut self, datagram: &[u8], now: Nanos) -> bool {
        if self.peers.is_none() {
            return false;
        }
        let owner = PeerLink::first_partition(datagram)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| u32::from(*p) < self.placement.partitions())
            .map(|p| (p, usize::from(self.placement.owner(p))));
        let elsewhere = |owner| self.router.as_ref().is_some_and(|r| usize::from(r.shard()) != owner);
        match owner {
            Some((partition, owner)) if elsewhere(owner) => self.hand_over(partition, datagram),
            // Its own, or malformed: the peer inbox checks and counts it.
            _ => self.receive_peer(datagram, now),
        }
        true
    }

    pub(super) fn receive_peer(&mut self, datagram: &[u8], now: Nanos) {
        if let Some(link) = self.peers.as_mut() {
            link.receive(datagram, now, &mut self.partitions, self.placement);
        }
    }

    fn hand_over(&mut self, partition: u16, datagram: &[u8]) {
        let len = FORWARD_HEADER_LEN + datagram.len();
        let waiting = Forwarded {
            peer: Peer::from_ip_port(std::net::Ipv4Addr::UNSPECIFIED, 0),
            client_id: 0,
            opcode: PEER_DATAGRAM,
            request_id: 0,
            owner: Owner::ANONYMOUS,
            arrived: Nanos(0), // no answer to time
        };
        let ok = len <= self.scratch.len() && self.forward_bytes(partition, waiting, datagram, len).is_ok();
        self.peer_handed_over += usize::from(ok);
        if let Some(link) = self.peers.as_mut() {
            link.count_hand_over(ok);
        }
    }

    /// The next peer datagram's destination, if one waits.
    pub fn peer_next(&self) -> Option<Peer> {
        self.peers.as_ref()?.next_destination()
    }

    /// Writes the next peer datagram into `buf`; its length (0: none).
    pub fn peer_write(&mut self, buf: &mut [u8]) -> usize {
        self.peers.as_mut().map_or(0, |l| l.write_next(buf))
    }
}
