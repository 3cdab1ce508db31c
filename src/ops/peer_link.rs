//! A shard's end of the peer links: the Raft messages of its partitions to and from the other
//! nodes, as peer datagrams (`crate::peer`) over the shard's own packet queue.
//!
//! Sending: after each poll the shard's partitions hand over their messages (`collect`); the
//! outbox packs them per destination node, all partitions together, and the shard loop writes
//! each datagram into a transmit buffer addressed to that node (`next_destination`,
//! `write_next`).
//!
//! Liveness: each shard sends its peer shards a keepalive when nothing else went to them for a
//! heartbeat interval, and wakes its quiesced groups whose leader's node fell silent or
//! restarted (`collect`; `peer::Liveness`, `partition`'s `quiesce.rs`).
//!
//! Receiving: a datagram with the peer magic goes to `receive`, which checks, reassembles and
//! validates it (`PeerInbox`) and steps each message into its partition. A datagram from shard
//! `s` of a node holds only partitions that shard `s` owns there, so with the same shard count on
//! every node (docs/REPLICATION.md) all its frames belong to one shard here too: the shard that
//! got it (the NIC's or the kernel's hash chose it) looks at the first frame's partition and
//! hands the datagram to the owner through the cross-shard inbox when it is not its own
//! (`KvShard::peer_datagram`). A frame for a partition this shard does not hold fails validation
//! (not a voter here) and is counted.
//!
//! Invariants: nothing reaches `Partition::step` that `peer::validate` did not pass; every buffer
//! is bounded by `PeerLimits` (the outbox and reassembly) or by the partitions' own outboxes;
//! a message the outbox refuses is counted and dropped (Raft sends again).

use crate::inbox::Placement;
use crate::partition::Partition;
use crate::peer::{wire, PeerError, PeerGroups, PeerInbox, PeerLimits, PeerMessage, PeerOutbox};
use raft::eraftpb::Message;
use std::net::SocketAddrV4;
use vigil_pmd::block::BlockIo;
use vigil_pmd::{Nanos, Peer};

/// What a shard's peer link counted, besides its inbox's and outbox's own counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerLinkCounters {
    /// Messages stepped into a partition.
    pub stepped: u64,
    /// Messages the partition's Raft group refused at `step` (counted there too).
    pub step_refused: u64,
    /// Messages the outbox refused (full, too large): dropped, Raft sends again.
    pub outbox_refused: u64,
    /// Datagrams handed to the owner shard through the cross-shard inbox.
    pub handed_over: u64,
    /// Datagrams dropped: the cross-shard inbox or pool was full.
    pub hand_over_refused: u64,
}

/// The cluster as one shard's peer link sees it.
#[derive(Clone, Debug)]
pub struct PeerLinkConfig {
    /// The peer datagram limits (`datagram_bytes_max` is the data plane's).
    pub limits: PeerLimits,
    /// The cluster's id (every datagram carries it; another cluster's are dropped).
    pub cluster_id: u64,
    /// This node's id.
    pub node_id: u64,
    /// This start's incarnation (differs at each start of the process).
    pub incarnation: u64,
    /// The other voters: id and data-plane address.
    pub peers: Vec<(u64, SocketAddrV4)>,
    /// Every voter of every partition's group, this node included.
    pub voters: Vec<u64>,
}

/// One shard's peer link (see the module header).
#[derive(Debug)]
pub struct PeerLink {
    inbox: PeerInbox,
    outbox: PeerOutbox,
    peers: Vec<(u64, Peer)>,
    voters: Vec<u64>,
    datagram_bytes_max: usize,
    received: Vec<PeerMessage>,
    outgoing: Vec<Message>,
    counters: PeerLinkCounters,
}

/// The partitions of one shard, as the peer inbox asks about them.
struct Groups<'a, D: BlockIo> {
    partitions: &'a [Partition<D>],
    placement: Placement,
    voters: &'a [u64],
}

impl<D: BlockIo> Groups<'_, D> {
    fn get(&self, partition: u32) -> Option<&Partition<D>> {
        let p = u16::try_from(partition).ok().filter(|p| u32::from(*p) < self.placement.partitions())?;
        let held = self.partitions.get(usize::from(p) / self.placement.shards())?;
        (held.id() == p).then_some(held)
    }
}

impl<D: BlockIo> PeerGroups for Groups<'_, D> {
    fn is_voter(&self, partition: u32, node: u64) -> bool {
        self.get(partition).is_some() && self.voters.contains(&node)
    }

    fn last_index(&self, partition: u32) -> Option<u64> {
        self.get(partition).map(|p| p.raft().last_index())
    }
}

impl PeerLink {
    /// A link for one shard of node `config.node_id`.
    pub fn new(config: &PeerLinkConfig) -> Result<Self, PeerError> {
        let ids: Vec<u64> = config.peers.iter().map(|(id, _)| *id).collect();
        let c = config;
        Ok(Self {
            inbox: PeerInbox::new(c.limits, c.cluster_id, c.node_id, &ids)?,
            outbox: PeerOutbox::new(c.limits, c.cluster_id, c.node_id, c.incarnation, &ids)?,
            peers: c.peers.iter().map(|(id, a)| (*id, Peer::from_ip_port(*a.ip(), a.port()))).collect(),
            voters: c.voters.clone(),
            datagram_bytes_max: c.limits.datagram_bytes_max,
            received: Vec::new(),
            outgoing: Vec::new(),
            counters: PeerLinkCounters::default(),
        })
    }

    /// The partition of a peer datagram's first frame, if it has a well-formed one: where the
    /// whole datagram belongs (module header). Checks nothing else (`receive` does).
    pub fn first_partition(datagram: &[u8]) -> Option<u32> {
        let frames = datagram.get(wire::HEADER_LEN..)?;
        wire::decode_frame(frames).ok().map(|(frame, _)| frame.partition)
    }

    /// Takes a datagram at `now`: steps each message that passes every check into its partition
    /// (of `partitions`, this shard's, at `partition / shards`).
    pub fn receive<D: BlockIo>(
        &mut self,
        datagram: &[u8],
        now: Nanos,
        partitions: &mut [Partition<D>],
        placement: Placement,
    ) {
        let groups = Groups { partitions, placement, voters: &self.voters };
        self.inbox.receive(datagram, now.0, &groups, &mut self.received);
        for m in self.received.drain(..) {
            // Validated above: the partition is this shard's.
            let at = m.partition as usize / placement.shards();
            match partitions[at].step(m.message) {
                Ok(()) => self.counters.stepped += 1,
                Err(_) => self.counters.step_refused += 1,
            }
        }
    }

    /// After the partitions' poll at `now`: tells the partitions which peer nodes were lost or
    /// are back (`peer::Liveness`; quiet groups wake: `Partition::peer_change`), moves the messages `partitions` produced
    /// into the outbox, and queues keepalives for the peers nothing else goes to.
    pub fn collect<D: BlockIo>(&mut self, partitions: &mut [Partition<D>], now: Nanos) {
        self.inbox.liveness().take_changes(now.0, &mut |change| {
            for p in partitions.iter_mut() {
                p.peer_change(change);
            }
        });
        for p in partitions.iter_mut() {
            p.take_messages(&mut self.outgoing);
            for m in self.outgoing.drain(..) {
                if self.outbox.push(u32::from(p.id()), &m).is_err() {
                    self.counters.outbox_refused += 1;
                }
            }
        }
        if let Some(first) = partitions.first() {
            self.outbox.keep_alive(now.0, u32::from(first.id()));
        }
    }

    /// Where the next datagram goes, if one waits.
    pub fn next_destination(&self) -> Option<Peer> {
        let to = self.outbox.next_destination()?;
        self.peers.iter().find(|(id, _)| *id == to).map(|(_, peer)| *peer)
    }

    /// Writes the next datagram (for `next_destination`) into `buf`; returns its length (0 when
    /// nothing waits or `buf` is shorter than a datagram).
    pub fn write_next(&mut self, buf: &mut [u8]) -> usize {
        if buf.len() < self.datagram_bytes_max() {
            return 0;
        }
        self.outbox.poll_transmit(buf).map_or(0, |t| t.len)
    }

    /// The largest datagram the link sends.
    pub fn datagram_bytes_max(&self) -> usize {
        self.datagram_bytes_max
    }

    /// What the link counted: its inbox's, its outbox's and its own counters.
    pub fn counters(
        &self,
    ) -> (crate::peer::PeerInboxCounters, crate::peer::PeerOutboxCounters, PeerLinkCounters) {
        (self.inbox.counters().clone(), self.outbox.counters().clone(), self.counters)
    }

    /// Counts a datagram handed to the owner shard, or refused by the cross-shard inbox.
    pub fn count_hand_over(&mut self, ok: bool) {
        if ok {
            self.counters.handed_over += 1;
        } else {
            self.counters.hand_over_refused += 1;
        }
    }

    /// One line for the stop report: what went out and came in, and every drop by reason.
    pub fn report_line(&self) -> String {
        let (i, o, c) = (self.inbox.counters(), self.outbox.counters(), self.counters);
        let mut line = format!(
            "peer: out messages {} datagrams {} bytes {} fragments {} keepalives {} refused {} | in datagrams {} \
             delivered {} keepalives {} stepped {} step-refused {} handed-over {} hand-over-refused {}",
            o.messages,
            o.datagrams,
            o.bytes,
            o.fragments,
            o.keepalives,
            c.outbox_refused,
            i.datagrams,
            i.delivered,
            i.keepalives,
            c.stepped,
            c.step_refused,
            c.handed_over,
            c.hand_over_refused
        );
        for reason in crate::peer::DropReason::ALL {
            let n = i.dropped(reason);
            if n > 0 {
                line.push_str(&format!(" dropped-{} {n}", reason.name()));
            }
        }
        line
    }
}
