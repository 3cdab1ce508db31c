//! `SimNet`: a seeded datagram network between simulated endpoints, each a `PacketIo`.
//!
//! Every datagram sent gets, from one seeded RNG: lost or not, duplicated or not (the copy gets its
//! own delay), and a delay in `SimClock` time drawn from `delay_ns` (plus, with probability
//! `reorder`, an extra `reorder_extra_ns`, so it overtakes or is overtaken). It becomes receivable by
//! its destination once `now >= deliver_at`; datagrams due together come out in send order.
//! A partition (two sets of endpoints) drops every datagram between the sets, both when sent and
//! when due (a datagram in the air when the cut happens is lost too); `heal` removes partitions.
//! Each endpoint's inbox holds at most `inbox_max` datagrams due and not received; more are dropped
//! and counted, as a NIC ring would.
//!
//! Invariants: the same seed and the same calls give the same deliveries in the same order (ordered
//! containers, one RNG); every datagram sent is counted exactly once as delivered, lost,
//! partitioned, unroutable, overflowed or still in the air (`SimNetCounters::in_air`). Single
//! threaded (`Rc<RefCell>`: the endpoints and the network are one simulated world). No `unsafe`.
//! Allocates per datagram (`VecRx`/`VecTx`): a simulator, not a data path.

use super::{SimClock, SplitMix64};
use crate::mem::{VecRx, VecTx};
use crate::{Batch, IoCounters, PacketIo, Peer};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// Network behaviour (probabilities 0..=1, times in ns).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimNetConfig {
    /// One-way delay range (inclusive).
    pub delay_ns: (u64, u64),
    /// A datagram is dropped.
    pub loss: f64,
    /// A datagram is delivered twice.
    pub duplicate: f64,
    /// A datagram is held back by `reorder_extra_ns` more.
    pub reorder: f64,
    /// The extra delay of a reordered datagram.
    pub reorder_extra_ns: u64,
    /// Largest payload (the `VecTx` buffer size).
    pub mtu: usize,
    /// Most datagrams waiting at one endpoint (due, not yet received).
    pub inbox_max: usize,
}

impl Default for SimNetConfig {
    /// A clean LAN: 10-50 us, no loss, no duplication, no reordering.
    fn default() -> Self {
        Self {
            delay_ns: (10_000, 50_000),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_extra_ns: 200_000,
            mtu: 1472,
            inbox_max: 4096,
        }
    }
}

/// What the network did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimNetCounters {
    /// Datagrams handed to the network by senders.
    pub sent: u64,
    /// Datagrams (copies included) received by an endpoint.
    pub delivered: u64,
    /// Dropped by random loss.
    pub lost: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Held back by the reorder delay.
    pub reordered: u64,
    /// Dropped by a partition (at send or at delivery).
    pub partitioned: u64,
    /// Addressed to no endpoint.
    pub unroutable: u64,
    /// Dropped because the destination's inbox was full.
    pub inbox_full: u64,
    /// Copies scheduled and not yet delivered or dropped.
    pub in_air: u64,
}

#[derive(Debug)]
struct InAir {
    from: Peer,
    to: Peer,
    payload: Vec<u8>,
}

#[derive(Debug)]
struct World {
    cfg: SimNetConfig,
    clock: SimClock,
    rng: SplitMix64,
    /// (deliver_at, sequence) -> datagram: ordered, so delivery order is deterministic.
    air: BTreeMap<(u64, u64), InAir>,
    seq: u64,
    endpoints: HashMap<Peer, usize>,
    inboxes: Vec<std::collections::VecDeque<VecRx>>,
    /// Each partition: the side of each endpoint index (None: not part of it), and whether it
    /// cuts one way only (from side `false` to side `true`).
    partitions: Vec<(Vec<Option<bool>>, bool)>,
    counters: SimNetCounters,
}

impl World {
    fn cut(&self, a: Peer, b: Peer) -> bool {
        let (Some(&i), Some(&j)) = (self.endpoints.get(&a), self.endpoints.get(&b)) else { return false };
        self.partitions.iter().any(|(p, one_way)| match (p[i], p[j]) {
            (Some(false), Some(true)) => true,
            (Some(true), Some(false)) => !one_way,
            _ => false,
        })
    }

    fn send(&mut self, from: Peer, to: Peer, payload: Vec<u8>) {
        self.counters.sent += 1;
        // Draw every choice whatever the outcome, so a fault setting does not shift later draws.
        let lost = self.rng.chance(self.cfg.loss);
        let dup = self.rng.chance(self.cfg.duplicate);
        if !self.endpoints.contains_key(&to) {
            self.counters.unroutable += 1;
            return;
        }
        if self.cut(from, to) {
            self.counters.partitioned += 1;
            return;
        }
        if lost {
            self.counters.lost += 1;
            return;
        }
        if dup {
            self.counters.duplicated += 1;
            self.schedule(from, to, payload.clone());
        }
        self.schedule(from, to, payload);
    }

    fn schedule(&mut self, from: Peer, to: Peer, payload: Vec<u8>) {
        let mut delay = self.rng.range(self.cfg.delay_ns.0, self.cfg.delay_ns.1);
        if self.rng.chance(self.cfg.reorder) {
            delay = delay.saturating_add(self.cfg.reorder_extra_ns);
            self.counters.reordered += 1;
        }
        let at = self.clock.nanos().saturating_add(delay);
        self.seq += 1;
        self.air.insert((at, self.seq), InAir { from, to, payload });
        self.counters.in_air += 1;
    }

    /// Moves every datagram due by now into its destination's inbox.
    fn deliver_due(&mut self) {
        let now = self.clock.nanos();
        while let Some(entry) = self.air.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let d = entry.remove();
            self.counters.in_air -= 1;
            if self.cut(d.from, d.to) {
                self.counters.partitioned += 1;
                continue;
            }
            let i = self.endpoints[&d.to];
            if self.inboxes[i].len() >= self.cfg.inbox_max {
                self.counters.inbox_full += 1;
                continue;
            }
            self.inboxes[i].push_back(VecRx::new(d.payload, d.from));
        }
    }
}

/// The network: create endpoints from it, then drive time with its `SimClock`.
#[derive(Clone, Debug)]
pub struct SimNet {
    world: Rc<RefCell<World>>,
}

impl SimNet {
    /// An empty network on `clock`, seeded with `seed`.
    pub fn new(cfg: SimNetConfig, clock: SimClock, seed: u64) -> Self {
        let world = World {
            cfg,
            clock,
            rng: SplitMix64::new(seed),
            air: BTreeMap::new(),
            seq: 0,
            endpoints: HashMap::new(),
            inboxes: Vec::new(),
            partitions: Vec::new(),
            counters: SimNetCounters::default(),
        };
        Self { world: Rc::new(RefCell::new(world)) }
    }

    /// A new endpoint at `addr`. Panics if the address is taken.
    pub fn endpoint(&self, addr: Peer) -> SimEndpoint {
        let mut w = self.world.borrow_mut();
        let i = w.inboxes.len();
        assert!(w.endpoints.insert(addr, i).is_none(), "address {addr:?} already has an endpoint");
        w.inboxes.push(std::collections::VecDeque::new());
        for (p, _) in &mut w.partitions {
            p.push(None);
        }
        SimEndpoint { world: Rc::clone(&self.world), addr, counters: IoCounters::default() }
    }

    /// Cuts every path between `a` and `b` (both ways) until `heal`. Endpoints must exist.
    pub fn partition(&self, a: &[Peer], b: &[Peer]) {
        self.cut(a, b, false);
    }

    /// Cuts every path from `a` to `b` (one way: `b` still reaches `a`) until `heal`.
    pub fn partition_one_way(&self, a: &[Peer], b: &[Peer]) {
        self.cut(a, b, true);
    }

    fn cut(&self, a: &[Peer], b: &[Peer], one_way: bool) {
        let mut w = self.world.borrow_mut();
        let mut sides = vec![None; w.inboxes.len()];
        for (set, side) in [(a, false), (b, true)] {
            for p in set {
                let i = *w.endpoints.get(p).unwrap_or_else(|| panic!("no endpoint {p:?}"));
                sides[i] = Some(side);
            }
        }
        w.partitions.push((sides, one_way));
    }

    /// Removes every partition.
    pub fn heal(&self) {
        self.world.borrow_mut().partitions.clear();
    }

    /// Changes loss, delay and the rest from now on (datagrams in the air keep their schedule).
    pub fn set_config(&self, cfg: SimNetConfig) {
        self.world.borrow_mut().cfg = cfg;
    }

    /// The counters so far.
    pub fn counters(&self) -> SimNetCounters {
        self.world.borrow().counters
    }

    /// The earliest delivery time of a datagram in the air (for a simulator skipping idle time).
    pub fn next_delivery(&self) -> Option<u64> {
        self.world.borrow().air.keys().next().map(|k| k.0)
    }
}

/// One endpoint's queue pair: a `PacketIo` over `VecRx`/`VecTx`.
#[derive(Debug)]
pub struct SimEndpoint {
    world: Rc<RefCell<World>>,
    addr: Peer,
    counters: IoCounters,
}

impl SimEndpoint {
    /// This endpoint's address (what receivers see as the peer).
    pub fn addr(&self) -> Peer {
        self.addr
    }

    /// Another handle on the same address and queue, with counters of its own: the shards of
    /// one simulated node behind one address, as `SO_REUSEPORT` sockets or RSS queues are (the
    /// handle that polls first takes what arrived).
    pub fn share(&self) -> SimEndpoint {
        SimEndpoint { world: Rc::clone(&self.world), addr: self.addr, counters: IoCounters::default() }
    }

    /// Drops every datagram waiting for this address (a crashed process's socket buffers).
    pub fn discard_waiting(&mut self) -> usize {
        let mut w = self.world.borrow_mut();
        w.deliver_due();
        let i = w.endpoints[&self.addr];
        let n = w.inboxes[i].len();
        w.inboxes[i].clear();
        n
    }
}

impl PacketIo for SimEndpoint {
    type Rx = VecRx;
    type Tx = VecTx;

    fn rx_burst(&mut self, batch: &mut Batch<VecRx>) -> usize {
        let mut w = self.world.borrow_mut();
        w.deliver_due();
        let i = w.endpoints[&self.addr];
        let mut n = 0;
        while batch.room() > 0 {
            let Some(d) = w.inboxes[i].pop_front() else { break };
            batch.push(d).expect("room checked");
            n += 1;
        }
        w.counters.delivered += n as u64;
        self.counters.rx_packets += n as u64;
        self.counters.rx_datagrams += n as u64;
        n
    }

    fn tx_alloc(&mut self, peer: &Peer) -> Option<VecTx> {
        Some(VecTx::new(self.world.borrow().cfg.mtu, *peer))
    }

    fn tx_burst(&mut self, batch: &mut Batch<VecTx>) -> usize {
        let n = batch.len();
        let mut w = self.world.borrow_mut();
        for mut d in batch.drain() {
            d.buf.truncate(d.len);
            w.send(self.addr, d.peer, d.buf);
        }
        self.counters.tx_datagrams += n as u64;
        n
    }

    fn counters(&self) -> IoCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TxDatagram;
    use std::net::Ipv4Addr;

    fn addr(i: u8) -> Peer {
        Peer::from_ip_port(Ipv4Addr::new(10, 0, 0, i), 7000)
    }

    fn send(ep: &mut SimEndpoint, to: Peer, msg: &[u8]) {
        let mut tx = ep.tx_alloc(&to).unwrap();
        tx.payload_mut()[..msg.len()].copy_from_slice(msg);
        tx.set_len(msg.len());
        let mut b = Batch::with_capacity(1);
        b.push(tx).unwrap();
        assert_eq!(ep.tx_burst(&mut b), 1);
    }

    fn recv_all(ep: &mut SimEndpoint) -> Vec<(Vec<u8>, Peer)> {
        let mut b = Batch::with_capacity(64);
        let mut got = Vec::new();
        while ep.rx_burst(&mut b) > 0 {
            got.extend(b.drain().map(|d| (d.payload, d.peer)));
        }
        got
    }

    /// Sends `n` numbered datagrams a -> b under `cfg`, then delivers everything; returns what b got.
    fn run(seed: u64, cfg: SimNetConfig, n: u32) -> (Vec<(Vec<u8>, Peer)>, SimNetCounters) {
        let clock = SimClock::new();
        let net = SimNet::new(cfg, clock.clone(), seed);
        let (mut a, mut b) = (net.endpoint(addr(1)), net.endpoint(addr(2)));
        let mut got = Vec::new();
        for i in 0..n {
            send(&mut a, addr(2), &i.to_le_bytes());
            clock.advance(1_000);
            got.extend(recv_all(&mut b));
        }
        clock.advance(10_000_000);
        got.extend(recv_all(&mut b));
        (got, net.counters())
    }

    #[test]
    fn clean_network_delivers_everything_once_after_the_delay() {
        let clock = SimClock::new();
        let net = SimNet::new(SimNetConfig::default(), clock.clone(), 1);
        let (mut a, mut b) = (net.endpoint(addr(1)), net.endpoint(addr(2)));
        send(&mut a, addr(2), b"hi");
        assert!(recv_all(&mut b).is_empty(), "not before the delay");
        clock.advance(50_000);
        assert_eq!(recv_all(&mut b), vec![(b"hi".to_vec(), addr(1))]);
        let (got, c) = run(1, SimNetConfig::default(), 100);
        assert_eq!(got.len(), 100);
        assert_eq!((c.sent, c.delivered, c.lost, c.duplicated, c.in_air), (100, 100, 0, 0, 0));
    }

    #[test]
    fn same_seed_same_deliveries() {
        let cfg = SimNetConfig { loss: 0.2, duplicate: 0.2, reorder: 0.3, ..SimNetConfig::default() };
        assert_eq!(run(7, cfg, 300), run(7, cfg, 300));
        assert_ne!(run(7, cfg, 300).0, run(8, cfg, 300).0);
    }

    #[test]
    fn loss_duplication_and_reordering_are_counted() {
        let cfg = SimNetConfig { loss: 0.1, duplicate: 0.1, reorder: 0.2, ..SimNetConfig::default() };
        let (got, c) = run(3, cfg, 1000);
        assert_eq!(c.sent, 1000);
        assert!(c.lost > 50 && c.lost < 150, "{c:?}");
        assert!(c.duplicated > 50 && c.duplicated < 150, "{c:?}");
        assert!(c.reordered > 0);
        assert_eq!(c.delivered, got.len() as u64);
        assert_eq!(c.delivered, c.sent - c.lost + c.duplicated);
        assert_eq!(c.in_air, 0);
        let seq: Vec<u32> = got.iter().map(|(p, _)| u32::from_le_bytes(p[..4].try_into().unwrap())).collect();
        assert!(seq.windows(2).any(|w| w[0] > w[1]), "some datagrams overtook others");
    }

    #[test]
    fn partitions_drop_both_ways_and_heal() {
        let clock = SimClock::new();
        let net = SimNet::new(SimNetConfig::default(), clock.clone(), 5);
        let (mut a, mut b, mut c) = (net.endpoint(addr(1)), net.endpoint(addr(2)), net.endpoint(addr(3)));
        send(&mut a, addr(2), b"in the air");
        net.partition(&[addr(1)], &[addr(2)]);
        send(&mut a, addr(2), b"x");
        send(&mut b, addr(1), b"y");
        send(&mut a, addr(3), b"z");
        send(&mut c, addr(9), b"nobody");
        clock.advance(1_000_000);
        assert!(recv_all(&mut b).is_empty());
        assert!(recv_all(&mut a).is_empty());
        assert_eq!(recv_all(&mut c).len(), 1, "c is outside the partition");
        let k = net.counters();
        assert_eq!((k.partitioned, k.unroutable, k.delivered), (3, 1, 1));
        net.heal();
        send(&mut a, addr(2), b"x");
        clock.advance(1_000_000);
        assert_eq!(recv_all(&mut b).len(), 1);
    }

    #[test]
    fn a_one_way_cut_drops_one_direction_only() {
        let clock = SimClock::new();
        let net = SimNet::new(SimNetConfig::default(), clock.clone(), 5);
        let (mut a, mut b) = (net.endpoint(addr(1)), net.endpoint(addr(2)));
        net.partition_one_way(&[addr(1)], &[addr(2)]);
        send(&mut a, addr(2), b"x");
        send(&mut b, addr(1), b"y");
        clock.advance(1_000_000);
        assert!(recv_all(&mut b).is_empty(), "a -> b is cut");
        assert_eq!(recv_all(&mut a).len(), 1, "b -> a is not");
    }

    #[test]
    fn full_inbox_drops_and_counts() {
        let cfg = SimNetConfig { inbox_max: 3, ..SimNetConfig::default() };
        let clock = SimClock::new();
        let net = SimNet::new(cfg, clock.clone(), 5);
        let (mut a, mut b) = (net.endpoint(addr(1)), net.endpoint(addr(2)));
        for _ in 0..5 {
            send(&mut a, addr(2), b"m");
        }
        clock.advance(1_000_000);
        assert_eq!(recv_all(&mut b).len(), 3);
        assert_eq!(net.counters().inbox_full, 2);
        assert_eq!(b.counters().rx_datagrams, 3);
        assert_eq!(a.counters().tx_datagrams, 5);
    }
}
