//! The simulator's state and its loop: one step moves the clock, runs the node's life (crashes,
//! restarts), the network's partitions, the clients and the shards; `run` is the seed from start
//! to the final restart.
//!
//! Invariant: one `SplitMix64` drives every choice; containers that are iterated are ordered.

use super::*;

pub(crate) struct Sim {
    pub(crate) seed: u64,
    pub(crate) p: Params,
    pub(crate) trace: bool,
    pub(crate) rng: SplitMix64,
    pub(crate) clock: SimClock,
    pub(crate) net: SimNet,
    pub(crate) placement: Placement,
    pub(crate) shard_addrs: Vec<Peer>,
    pub(crate) shard_eps: Vec<Rc<RefCell<SimEndpoint>>>,
    pub(crate) node: Option<Node>,
    /// While the node is down: the partitions' images, and when it comes back.
    pub(crate) down: Option<(Vec<DownDisk>, u64)>,
    /// Per partition: whether a media fault was injected into it (a refused start is legitimate
    /// then), and what was injected.
    pub(crate) damaged: Vec<bool>,
    pub(crate) damage_log: Vec<Vec<String>>,
    /// Starts refused in a row (transient read errors), since the last start that succeeded.
    pub(crate) refusals_in_row: u32,
    /// Set when a start was refused for good: the node stays down, the seed ends.
    pub(crate) refused: Option<String>,
    pub(crate) restart_at: Option<u64>,
    pub(crate) heal_at: Option<u64>,
    pub(crate) next_crash: usize,
    pub(crate) clients: Vec<Client>,
    pub(crate) keys: Vec<KeyModel>,
    pub(crate) key_by_name: BTreeMap<Vec<u8>, usize>,
    pub(crate) writes: Vec<Write>,
    pub(crate) value_owner: BTreeMap<Vec<u8>, usize>,
    /// (key, version) -> the value it names, from answers and reads.
    pub(crate) versions: BTreeMap<(usize, u64), Vec<u8>>,
    /// Clean class: the plain model (key -> value, version).
    pub(crate) exact: BTreeMap<usize, (Vec<u8>, u64)>,
    /// Each partition's snapshot store, across restarts.
    pub(crate) shelves: Vec<Rc<RefCell<SnapshotShelf>>>,
    pub(crate) step: u64,
    pub(crate) stats: BTreeMap<&'static str, u64>,
    /// Self-test of the checker: devices acknowledge writes before they are durable.
    pub(crate) lie: bool,
}

impl Sim {
    pub(crate) fn new(seed: u64, trace: bool) -> Self {
        let mut rng = SplitMix64::new(seed);
        let p = Params::draw(&mut rng);
        let clock = SimClock::new();
        let net = SimNet::new(p.net, clock.clone(), rng.next_u64());
        let shard_addrs: Vec<Peer> =
            (0..p.shards).map(|i| Peer::from_ip_port(Ipv4Addr::new(10, 0, 0, 1 + i as u8), 9000)).collect();
        let shard_eps = shard_addrs.iter().map(|a| Rc::new(RefCell::new(net.endpoint(*a)))).collect();
        let clients = (0..p.clients)
            .map(|i| Client {
                id: 1000 + i as u64,
                ep: net.endpoint(Peer::from_ip_port(Ipv4Addr::new(10, 0, 1, 1 + i as u8), 7000)),
                next_req: 1,
                cur: None,
                idle_until: 0,
                writes: BTreeMap::new(),
            })
            .collect();
        let mut keys = Vec::new();
        for i in 0..p.registers {
            keys.push(KeyModel { name: format!("reg-{i}").into_bytes(), ..KeyModel::default() });
        }
        for i in 0..p.counters {
            keys.push(KeyModel {
                name: format!("ctr-{i}").into_bytes(),
                counter: true,
                ..KeyModel::default()
            });
        }
        let key_by_name = keys.iter().enumerate().map(|(i, k)| (k.name.clone(), i)).collect();
        let placement = Placement::new(p.partitions, p.shards).expect("valid placement");
        Sim {
            seed,
            trace,
            rng,
            clock,
            net,
            placement,
            shard_addrs,
            shard_eps,
            node: None,
            down: None,
            damaged: vec![false; p.partitions as usize],
            damage_log: vec![Vec::new(); p.partitions as usize],
            refusals_in_row: 0,
            refused: None,
            restart_at: None,
            heal_at: None,
            next_crash: 0,
            clients,
            keys,
            key_by_name,
            writes: Vec::new(),
            value_owner: BTreeMap::new(),
            versions: BTreeMap::new(),
            exact: BTreeMap::new(),
            shelves: (0..p.partitions).map(|_| Rc::default()).collect(),
            step: 0,
            stats: BTreeMap::new(),
            lie: false,
            p,
        }
    }

    pub(crate) fn count(&mut self, what: &'static str, n: u64) {
        *self.stats.entry(what).or_default() += n;
    }

    #[track_caller]
    pub(crate) fn violation(&self, what: String) -> ! {
        panic!(
            "INVARIANT VIOLATED (seed {}, step {}, t {} ns): {what}",
            self.seed,
            self.step,
            self.clock.nanos()
        );
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.nanos()
    }

    // ----- the loop -----

    pub(crate) fn tick(&mut self, issue: bool) {
        let dt = self.rng.range(1_000, self.p.step_ns_max);
        self.clock.advance(dt);
        let now = self.now();
        // The node's life.
        if let Some((_, up_at)) = &self.down {
            if now >= *up_at {
                self.restart();
            } else {
                self.drain_shard_endpoints();
            }
        } else if issue
            && self.next_crash < self.p.crash_steps.len()
            && self.p.crash_steps[self.next_crash] <= self.step
        {
            self.next_crash += 1;
            self.crash("scheduled");
        } else if self.restart_at.is_some_and(|t| now >= t) {
            self.count("unscheduled crashes (after UNAVAILABLE, or crash storms)", 1);
            self.crash("restart after UNAVAILABLE, or a crash storm");
        }
        // Network partitions.
        if self.p.net_partitions && issue {
            match self.heal_at {
                Some(t) if now >= t => {
                    trace!(self, "network heals");
                    self.net.heal();
                    self.heal_at = None;
                }
                None if self.rng.chance(1.0 / 800.0) => {
                    let clients: Vec<Peer> =
                        self.clients.iter().filter(|_| self.rng.chance(0.5)).map(|c| c.ep.addr()).collect();
                    let shards: Vec<Peer> =
                        self.shard_addrs.iter().filter(|_| self.rng.chance(0.6)).copied().collect();
                    if !clients.is_empty() && !shards.is_empty() {
                        trace!(self, "network partition: clients {clients:?} | shards {shards:?}");
                        self.net.partition(&clients, &shards);
                        self.heal_at = Some(now + self.rng.range(500_000, 40_000_000));
                        self.count("network partitions", 1);
                    }
                }
                _ => {}
            }
        }
        for c in 0..self.clients.len() {
            self.client_step(c, issue);
        }
        if let Some(node) = self.node.as_mut() {
            for shard in &mut node.shards {
                let now = Nanos(self.clock.nanos());
                shard.poll_once(now);
            }
        }
        for c in 0..self.clients.len() {
            self.client_receive(c);
        }
        if self.step.is_multiple_of(16) {
            self.scan_projections();
        }
    }

    pub(crate) fn run(&mut self) {
        trace!(self, "seed {} params {:?}", self.seed, self.p);
        match self.start_node(None) {
            Ok(node) => self.node = Some(node),
            Err(r) => self.violation(format!("partition {} does not format: {}", r.partition, r.error)),
        }
        while self.step < self.p.steps && self.refused.is_none() {
            self.tick(true);
            self.step += 1;
        }
        // Drain: no new requests, the network heals; every client must end idle.
        self.net.heal();
        self.heal_at = None;
        let mut n = 0;
        while self.refused.is_none() && (self.clients.iter().any(|c| c.cur.is_some()) || self.down.is_some())
        {
            if n == DRAIN_STEPS_MAX {
                let busy: Vec<_> = self.clients.iter().map(|c| &c.cur).collect();
                self.violation(format!("hang: clients still waiting after {n} drain steps: {busy:?}"));
            }
            self.tick(false);
            self.step += 1;
            n += 1;
        }
        if self.refused.is_none() {
            self.finish();
        }
        self.count_end();
    }

    /// The end of a seed whose node is up: a last power cut and recovery, checked against the
    /// model like every other (retried after a transient read error like every other).
    fn finish(&mut self) {
        if self.p.clean {
            self.compare_exact("end of run");
        }
        self.crash("final");
        self.restart();
        let mut n = 0;
        while self.down.is_some() && self.refused.is_none() {
            if n == DRAIN_STEPS_MAX {
                self.violation(format!("hang: the node is still down after {n} steps of the final restart"));
            }
            self.tick(false);
            self.step += 1;
            n += 1;
        }
        if self.p.clean {
            self.compare_exact("after the final restart");
        }
    }

    /// What the seed did, into its stats.
    fn count_end(&mut self) {
        let unknown = self.writes.iter().filter(|w| w.state == WState::Unknown).count() as u64;
        self.count("writes with unknown outcome at the end", unknown);
        self.count("steps", self.step);
        self.count("virtual ms", self.now() / 1_000_000);
        let nc = self.net.counters();
        self.count("datagrams lost by the network", nc.lost);
        self.count("datagrams duplicated", nc.duplicated);
        self.count("datagrams reordered", nc.reordered);
        self.count("datagrams cut by partitions", nc.partitioned);
        self.count("datagrams dropped at full inboxes", nc.inbox_full);
        self.count(if self.p.clean { "seeds: clean class" } else { "seeds: fault class" }, 1);
        if self.p.small_ring {
            self.count("seeds with a small ring (snapshots, recycling)", 1);
        }
        if self.p.media.any() {
            self.count("seeds with media faults", 1);
        }
        self.count(
            match self.p.shards {
                1 => "seeds with 1 shard",
                2 => "seeds with 2 shards",
                _ => "seeds with 3 shards",
            },
            1,
        );
    }

    /// Clean class: the partitions' projections are exactly the model.
    pub(crate) fn compare_exact(&self, when: &str) {
        let node = self.node.as_ref().expect("running");
        let mut got = BTreeMap::new();
        for kv in &node.kvs {
            for part in kv.borrow().partitions() {
                for (k, v, ver) in part.kv().iter() {
                    got.insert(k.to_vec(), (v.to_vec(), ver));
                }
            }
        }
        let want: BTreeMap<Vec<u8>, (Vec<u8>, u64)> =
            self.exact.iter().map(|(k, v)| (self.keys[*k].name.clone(), v.clone())).collect();
        if got != want {
            self.violation(format!("clean model, {when}: projections {got:?} != model {want:?}"));
        }
    }

    /// Everything the run did, hashed: two runs of one seed must agree.
    pub(crate) fn digest(&self) -> u64 {
        let mut text = format!("{:?}|{}|{:?}", self.stats, self.now(), self.net.counters());
        for w in &self.writes {
            text.push_str(&format!("|{:?}", w));
        }
        text.push_str(&format!("|{:?}", self.versions));
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }
}
