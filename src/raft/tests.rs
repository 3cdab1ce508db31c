//! Tests of the Raft glue: the in-memory store, one node alone, restart, and three nodes in one
//! thread over a lossy, reordering in-memory network driven by a seeded RNG.

use super::*;
use vigil_pmd::Nanos;

pub(super) fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

pub(super) const TICK_NS: u64 = 1_000_000;

pub(super) fn config(election_ticks_fixed: usize) -> RaftGroupConfig {
    RaftGroupConfig {
        tick_interval_ns: TICK_NS,
        election_ticks: 10,
        heartbeat_ticks: 2,
        election_timeout: ElectionTimeout::Fixed(election_ticks_fixed),
        proposals_pending_max: 16,
        readies_unsynced_max: 8,
        messages_per_poll_max: 64,
        committed_per_poll_max: 4,
        reads_per_poll_max: 4,
        ..RaftGroupConfig::default()
    }
}

/// splitmix64: the tests' only source of randomness, seeded so failures replay.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn entry(index: u64, term: u64, data: &[u8]) -> LogEntry<'_> {
    LogEntry { index, term, kind: EntryKind::Normal, data }
}

// ---------------------------------------------------------------------------------------------
// MemLogStore and LogStorage

#[test]
fn mem_store_writes_become_durable_after_the_set_number_of_syncs() {
    let mut s = MemLogStore::new(2);
    s.append(&[entry(1, 1, b"a"), entry(2, 1, b"b")]).unwrap();
    s.set_hard_state(HardStateRecord { term: 1, vote: 1, commit: 0 }).unwrap();
    assert_eq!(s.last_index(), 2);
    assert_eq!(s.durable_index(), 0);
    assert_eq!(s.sync(), 1); // sealed
    assert_eq!(s.durable_sync(), 0);
    assert_eq!(s.sync(), 1);
    assert_eq!(s.durable_sync(), 0);
    assert_eq!(s.sync(), 1);
    assert_eq!(s.durable_sync(), 1);
    assert_eq!(s.durable_index(), 2);
    assert_eq!(s.entry(2).unwrap().data, b"b");
    assert_eq!(s.term(2), Ok(1));
    assert_eq!(s.term(0), Ok(0));
    assert!(matches!(s.term(3), Err(StoreError::Unavailable { .. })));
}

#[test]
fn mem_store_truncation_lowers_the_durable_index_until_the_replacement_is_durable() {
    let mut s = MemLogStore::new(1);
    s.append(&[entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c")]).unwrap();
    s.sync();
    s.sync();
    assert_eq!(s.durable_index(), 3);
    s.truncate_suffix(2).unwrap();
    s.append(&[entry(2, 2, b"B")]).unwrap();
    assert_eq!(s.durable_index(), 1, "the old entries 2 and 3 no longer count");
    s.sync();
    assert_eq!(s.durable_index(), 1);
    s.sync();
    assert_eq!(s.durable_index(), 2);
    assert_eq!(s.last_index(), 2);
    assert_eq!(s.entry(2).unwrap().data, b"B");
    s.crash();
    assert_eq!(s.last_index(), 2);
    assert_eq!(s.term(2), Ok(2));
}

#[test]
fn mem_store_crash_loses_what_was_not_durable() {
    let mut s = MemLogStore::new(5);
    s.append(&[entry(1, 1, b"a")]).unwrap();
    s.flush_all();
    s.append(&[entry(2, 1, b"b")]).unwrap();
    s.set_hard_state(HardStateRecord { term: 2, vote: 1, commit: 1 }).unwrap();
    s.sync();
    s.crash();
    assert_eq!(s.last_index(), 1);
    assert_eq!(s.hard_state(), HardStateRecord::default());
    assert_eq!(s.durable_index(), s.last_index());
}

#[test]
fn log_storage_limits_entries_by_size_but_returns_at_least_one() {
    use ::raft::{GetEntriesContext, Storage};
    let mut s = MemLogStore::new(0);
    let big = vec![7u8; 100];
    s.append(&[entry(1, 1, &big), entry(2, 1, &big), entry(3, 1, &big)]).unwrap();
    let storage = LogStorage::new(s, RaftGroupConfig::default().held_bytes_max);
    let all = storage.entries(1, 4, None, GetEntriesContext::empty(false)).unwrap();
    assert_eq!(all.len(), 3);
    let one = storage.entries(1, 4, 1, GetEntriesContext::empty(false)).unwrap();
    assert_eq!(one.len(), 1);
    let two = storage.entries(1, 4, 250, GetEntriesContext::empty(false)).unwrap();
    assert_eq!(two.len(), 2);
    assert_eq!(two[1].index, 2);
    assert_eq!(two[1].data, big);
}

// ---------------------------------------------------------------------------------------------
// One node

/// One group driven by hand: each `advance` is one tick and one poll.
struct Single {
    group: RaftGroup<MemLogStore>,
    out: RaftOutput,
    now: Nanos,
    applied: Vec<CommittedEntry>,
    dropped: Vec<DroppedProposal>,
}

impl Single {
    fn new(store: MemLogStore, applied_index: u64) -> Self {
        let cfg = config(10);
        let group = RaftGroup::new(7, 1, &[1], store, &cfg, applied_index, &logger()).unwrap();
        Self { group, out: RaftOutput::new(&cfg), now: Nanos(0), applied: Vec::new(), dropped: Vec::new() }
    }

    fn poll(&mut self) {
        self.group.poll(&mut self.out).unwrap();
        assert!(self.out.messages.is_empty(), "a group of one has no one to talk to");
        for e in self.out.committed.drain(..) {
            assert!(e.index <= self.group.store().durable_index(), "applied before durable");
            if let Some(last) = self.applied.last() {
                assert!(e.index > last.index, "out of order or twice");
            }
            self.applied.push(e);
        }
        self.dropped.append(&mut self.out.dropped);
        self.out.clear();
    }

    /// One tick's worth of time, then one poll.
    fn advance(&mut self) {
        self.now = Nanos(self.now.0 + TICK_NS);
        self.group.on_time(self.now);
        self.poll();
    }

    fn run_until(&mut self, polls_max: usize, mut done: impl FnMut(&Self) -> bool) -> usize {
        for polls in 0..polls_max {
            if done(self) {
                return polls;
            }
            self.advance();
        }
        panic!("not done after {polls_max} polls: {:?}", self.group);
    }

    fn elect(&mut self) {
        // Leader, and its own empty entry (which commits everything before it) applied.
        self.run_until(100, |s| {
            s.group.is_leader() && s.group.applied_index() == s.group.store().last_index()
        });
    }
}

#[test]
fn single_node_becomes_leader_after_an_election_timeout_of_ticks() {
    let mut s = Single::new(MemLogStore::new(2), 0);
    assert!(!s.group.is_leader());
    assert!(matches!(s.group.propose(b"x", 1), Err(RaftError::NotLeader { leader: None })));
    // The first on_time only sets the deadline.
    for _ in 0..10 {
        s.advance();
        assert!(!s.group.is_leader(), "leader before the election timeout: {:?}", s.group);
    }
    s.run_until(5, |s| s.group.is_leader());
    assert_eq!(s.group.leader_id(), Some(1));
    assert_eq!(s.group.term(), 1);
}

#[test]
fn on_time_ticks_at_most_once_per_call_and_skips_a_stall() {
    let mut s = Single::new(MemLogStore::new(0), 0);
    assert!(!s.group.on_time(Nanos(0)));
    assert_eq!(s.group.next_tick_at(), Some(Nanos(TICK_NS)));
    assert!(!s.group.on_time(Nanos(TICK_NS - 1)));
    assert!(s.group.on_time(Nanos(TICK_NS)));
    assert_eq!(s.group.next_tick_at(), Some(Nanos(2 * TICK_NS)));
    // A stall of 50 ticks: one tick, and the deadline moves past now.
    assert!(s.group.on_time(Nanos(52 * TICK_NS)));
    assert_eq!(s.group.next_tick_at(), Some(Nanos(53 * TICK_NS)));
    assert_eq!(s.group.counters().ticks, 2);
}

#[test]
fn proposals_commit_only_once_the_store_made_them_durable() {
    let mut s = Single::new(MemLogStore::new(0), 0);
    s.elect();
    // The device stalls: nothing proposed now may be applied, however long we poll.
    s.group.store_mut().set_durable_after_syncs(1_000_000);
    let ids: Vec<ProposalId> = (0..3u64).map(|i| s.group.propose(&[b'p', i as u8], i).unwrap()).collect();
    for _ in 0..50 {
        s.advance();
    }
    assert!(s.applied.is_empty(), "applied before durable: {:?}", s.applied);
    assert_eq!(s.group.commit_index(), ids[0].index - 1);
    assert_eq!(s.group.store().durable_index(), ids[0].index - 1);
    // The flush completes: now they commit and apply, in order, with their ctx.
    s.group.store_mut().flush_all();
    s.run_until(20, |s| s.applied.len() == 3);
    for (i, e) in s.applied.iter().enumerate() {
        assert_eq!(e.index, ids[i].index);
        assert_eq!(e.term, ids[i].term);
        assert_eq!(e.data, [b'p', i as u8]);
        assert_eq!(e.proposal_ctx, Some(i as u64));
    }
}

#[test]
fn with_a_slow_store_nothing_applies_before_the_delay() {
    const DELAY: u32 = 3;
    let mut s = Single::new(MemLogStore::new(DELAY), 0);
    s.elect();
    let id = s.group.propose(b"slow", 9).unwrap();
    let mut polls = 0;
    while s.applied.is_empty() {
        s.poll();
        polls += 1;
        assert!(polls < 20);
    }
    // Poll 1 writes and seals it, poll 1 + DELAY makes it durable (and commits it: a quorum of one),
    // the poll after yields it.
    assert_eq!(polls, DELAY as usize + 2);
    assert_eq!(s.applied[0].index, id.index);
}

#[test]
fn committed_entries_come_out_in_order_exactly_once_and_pending_is_bounded() {
    let mut s = Single::new(MemLogStore::new(1), 0);
    s.elect();
    let mut next = 0u64;
    let mut busy = 0;
    while next < 200 {
        // Propose until the pending table is full.
        loop {
            match s.group.propose(&next.to_le_bytes(), next) {
                Ok(_) => next += 1,
                Err(RaftError::Busy) => {
                    busy += 1;
                    break;
                }
                Err(e) => panic!("{e}"),
            }
            if next == 200 {
                break;
            }
        }
        assert!(s.group.proposals_pending() <= 16);
        s.poll();
    }
    s.run_until(200, |s| s.applied.len() == 200);
    assert!(busy > 0, "the pending bound was never reached");
    for (i, e) in s.applied.iter().enumerate() {
        assert_eq!(e.data, (i as u64).to_le_bytes());
        assert_eq!(e.proposal_ctx, Some(i as u64));
    }
    for w in s.applied.windows(2) {
        assert_eq!(w[1].index, w[0].index + 1);
    }
    assert!(s.dropped.is_empty());
    assert_eq!(s.group.proposals_pending(), 0);
}

#[test]
fn restart_recovers_hard_state_and_log_and_reapplies_after_the_applied_index() {
    let mut s = Single::new(MemLogStore::new(2), 0);
    s.elect();
    for i in 0..20u64 {
        s.group.propose(&i.to_le_bytes(), i).unwrap();
        s.poll();
    }
    s.run_until(100, |s| s.applied.len() == 20);
    let term = s.group.term();
    let applied_durably = s.applied[9].index; // the projections' last checkpoint
    let tail: Vec<Vec<u8>> = s.applied[10..].iter().map(|e| e.data.clone()).collect();
    // Two more the device never made durable: they were never acknowledged and must vanish.
    s.group.store_mut().set_durable_after_syncs(1_000_000);
    s.group.propose(b"lost-1", 100).unwrap();
    s.group.propose(b"lost-2", 101).unwrap();
    s.poll();
    let mut store = s.group.into_store();
    store.crash();
    store.set_durable_after_syncs(2);

    let mut r = Single::new(store, applied_durably);
    assert_eq!(r.group.term(), term, "term recovered from the hard state");
    assert!(!r.group.is_leader());
    r.elect();
    assert!(r.group.term() > term);
    let replayed: Vec<Vec<u8>> = r.applied.iter().map(|e| e.data.clone()).collect();
    assert_eq!(replayed, tail, "exactly the entries after the applied index, in order");
    assert!(r.applied.iter().all(|e| e.proposal_ctx.is_none()), "no proposals survive a restart");
    assert_eq!(r.applied[0].index, applied_durably + 1);
    // And it goes on.
    let id = r.group.propose(b"after", 1).unwrap();
    r.run_until(50, |r| r.applied.last().is_some_and(|e| e.data == b"after"));
    assert_eq!(r.applied.last().unwrap().index, id.index);
}

#[test]
fn oversized_and_misrouted_input_is_refused_without_effect() {
    let mut s = Single::new(MemLogStore::new(0), 0);
    s.elect();
    let big = vec![0u8; (1 << 20) + 1];
    assert!(matches!(s.group.propose(&big, 1), Err(RaftError::TooLarge { .. })));
    let m = Message { to: 2, from: 3, ..Default::default() };
    assert!(matches!(s.group.step(m), Err(RaftError::Misrouted { to: 2, node: 1 })));
    assert_eq!(s.group.proposals_pending(), 0);
}

#[test]
fn read_index_on_a_single_leader_is_ready_at_the_commit_index() {
    let mut s = Single::new(MemLogStore::new(1), 0);
    s.elect();
    s.group.propose(b"w", 1).unwrap();
    s.run_until(20, |s| s.applied.len() == 1);
    s.group.read_index(42).unwrap();
    s.group.poll(&mut s.out).unwrap();
    assert_eq!(s.out.reads, vec![ReadReady { ctx: 42, index: s.group.commit_index() }]);
    assert!(s.group.applied_index() >= s.out.reads[0].index);
}

// ---------------------------------------------------------------------------------------------
// Three nodes in one thread

pub(super) const NODES: usize = 3;

/// Three groups over any store and a network that loses, delays and so reorders messages, driven
/// by one seed. Shared by the in-memory store's tests and the UAL store's (`ual_store_tests.rs`).
pub(super) struct Cluster<S: RaftLogStore> {
    pub(super) seed: u64,
    pub(super) rng: Rng,
    pub(super) groups: Vec<RaftGroup<S>>,
    configs: Vec<RaftGroupConfig>,
    outs: Vec<RaftOutput>,
    /// (deliver at step, message)
    in_flight: Vec<(u64, Message)>,
    pub(super) isolated: [bool; NODES],
    loss_percent: u64,
    duplicate_percent: u64,
    step: u64,
    now: Nanos,
    pub(super) applied: Vec<Vec<CommittedEntry>>,
    dropped: Vec<Vec<DroppedProposal>>,
    reads: Vec<Vec<ReadReady>>,
    /// What a power loss leaves of a node's store, reopened.
    restart: fn(S) -> S,
}

impl Cluster<MemLogStore> {
    /// Over in-memory stores that become durable after 1 to 3 syncs; 15% loss, 5% duplicates.
    fn new(seed: u64) -> Self {
        let restart: fn(MemLogStore) -> MemLogStore = |mut store| {
            store.crash();
            store
        };
        Cluster::build(seed, |rng| MemLogStore::new(1 + rng.below(3) as u32), restart, 15, 5)
    }
}

impl<S: RaftLogStore> Cluster<S> {
    /// Three nodes over stores from `make_store`, restarted through `restart` after a crash.
    pub(super) fn build(
        seed: u64,
        mut make_store: impl FnMut(&mut Rng) -> S,
        restart: fn(S) -> S,
        loss_percent: u64,
        duplicate_percent: u64,
    ) -> Self {
        let mut rng = Rng(seed);
        let peers = [1u64, 2, 3];
        // Distinct fixed election timeouts, drawn from the seed.
        let mut timeouts = [10usize, 14, 18];
        for i in (1..NODES).rev() {
            timeouts.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut groups = Vec::new();
        let mut configs = Vec::new();
        let mut outs = Vec::new();
        for (i, &id) in peers.iter().enumerate() {
            let cfg = config(timeouts[i]);
            let store = make_store(&mut rng);
            groups.push(RaftGroup::new(3, id, &peers, store, &cfg, 0, &logger()).unwrap());
            outs.push(RaftOutput::new(&cfg));
            configs.push(cfg);
        }
        Self {
            seed,
            rng,
            groups,
            configs,
            outs,
            in_flight: Vec::new(),
            isolated: [false; NODES],
            loss_percent,
            duplicate_percent,
            step: 0,
            now: Nanos(0),
            applied: vec![Vec::new(); NODES],
            dropped: vec![Vec::new(); NODES],
            reads: vec![Vec::new(); NODES],
            restart,
        }
    }

    /// Half a tick: every node gets the time and one poll, then due messages are delivered.
    pub(super) fn run_step(&mut self) {
        self.step += 1;
        self.now = Nanos(self.now.0 + TICK_NS / 2);
        for i in 0..NODES {
            self.groups[i].on_time(self.now);
            self.groups[i].poll(&mut self.outs[i]).unwrap();
            let out = &mut self.outs[i];
            for m in out.messages.drain(..) {
                let to = m.to as usize - 1;
                let lost = self.rng.below(100) < self.loss_percent;
                if self.isolated[i] || self.isolated[to] || lost {
                    continue;
                }
                if self.rng.below(100) < self.duplicate_percent {
                    let delay = 1 + self.rng.below(8);
                    self.in_flight.push((self.step + delay, m.clone()));
                }
                let delay = 1 + self.rng.below(4);
                self.in_flight.push((self.step + delay, m));
            }
            for e in out.committed.drain(..) {
                assert!(e.index <= self.groups[i].store().durable_index(), "seed {}", self.seed);
                if let Some(last) = self.applied[i].last() {
                    assert!(e.index > last.index, "seed {}: out of order or twice", self.seed);
                }
                self.applied[i].push(e);
            }
            self.dropped[i].append(&mut out.dropped);
            self.reads[i].append(&mut out.reads);
            out.clear();
        }
        let step = self.step;
        let mut due = Vec::new();
        self.in_flight.retain(|(at, m)| {
            if *at <= step {
                due.push(m.clone());
                false
            } else {
                true
            }
        });
        for m in due {
            let to = m.to as usize - 1;
            if self.isolated[to] {
                continue;
            }
            self.groups[to].step(m).unwrap_or_else(|e| panic!("seed {}: step: {e}", self.seed));
        }
        self.check_prefixes();
    }

    /// Node `i` loses power and restarts from what its store made durable; its projections are
    /// rebuilt from the log (applied index 0).
    pub(super) fn crash_restart(&mut self, i: usize) {
        let group = self.groups.remove(i);
        let id = group.node_id();
        let store = (self.restart)(group.into_store());
        let restarted = RaftGroup::new(3, id, &[1, 2, 3], store, &self.configs[i], 0, &logger()).unwrap();
        self.groups.insert(i, restarted);
        self.applied[i].clear();
        self.dropped[i].clear();
    }

    /// Every node's applied sequence is a prefix of every longer one.
    fn check_prefixes(&self) {
        for a in 0..NODES {
            for b in a + 1..NODES {
                let n = self.applied[a].len().min(self.applied[b].len());
                for k in 0..n {
                    let (x, y) = (&self.applied[a][k], &self.applied[b][k]);
                    assert!(
                        x.index == y.index && x.term == y.term && x.data == y.data,
                        "seed {}: nodes {} and {} diverge at {k}: {x:?} vs {y:?}",
                        self.seed,
                        a + 1,
                        b + 1
                    );
                }
            }
        }
    }

    pub(super) fn run_until(&mut self, steps_max: u64, what: &str, mut done: impl FnMut(&Self) -> bool) {
        for _ in 0..steps_max {
            if done(self) {
                return;
            }
            self.run_step();
        }
        panic!("seed {}: no {what} after {steps_max} steps: {:?}", self.seed, self.groups);
    }

    /// The one leader all live nodes agree on, if any.
    fn agreed_leader(&self) -> Option<u64> {
        let live: Vec<&RaftGroup<S>> =
            (0..NODES).filter(|&i| !self.isolated[i]).map(|i| &self.groups[i]).collect();
        let leader = live.iter().find(|g| g.is_leader())?.node_id();
        live.iter().all(|g| g.leader_id() == Some(leader)).then_some(leader)
    }

    pub(super) fn elect(&mut self) -> u64 {
        self.run_until(2_000, "agreed leader", |c| c.agreed_leader().is_some());
        self.agreed_leader().expect("just checked")
    }

    pub(super) fn applied_data(&self, node: usize) -> Vec<Vec<u8>> {
        self.applied[node].iter().map(|e| e.data.clone()).collect()
    }

    /// Proposes `data` until it commits on the leader, retrying when leadership moves.
    pub(super) fn commit(&mut self, data: &[u8]) {
        for _attempt in 0..20 {
            let leader = self.elect() as usize - 1;
            let ctx = self.rng.next();
            match self.groups[leader].propose(data, ctx) {
                Ok(_) => {}
                Err(RaftError::NotLeader { .. }) | Err(RaftError::ProposalDropped) => continue,
                Err(e) => panic!("seed {}: {e}", self.seed),
            }
            let mut outcome = None;
            self.run_until(4_000, "outcome", |c| {
                if c.applied[leader].iter().any(|e| e.proposal_ctx == Some(ctx)) {
                    outcome = Some(true);
                } else if c.dropped[leader].iter().any(|d| d.ctx == ctx) {
                    outcome = Some(false);
                }
                outcome.is_some()
            });
            if outcome == Some(true) {
                return;
            }
        }
        panic!("seed {}: could not commit {:?}", self.seed, data);
    }
}

fn three_nodes_scenario(seed: u64) {
    let mut c = Cluster::new(seed);

    // A leader is elected, and a follower refuses a proposal, naming it.
    let leader = c.elect();
    let follower = (0..NODES).find(|&i| i as u64 + 1 != leader).unwrap();
    match c.groups[follower].propose(b"nope", 0) {
        Err(RaftError::NotLeader { leader: Some(l) }) => assert_eq!(l, leader, "seed {seed}"),
        other => panic!("seed {seed}: follower proposal gave {other:?}"),
    }

    // Proposals on the leader commit on all three.
    let mut committed: Vec<Vec<u8>> = Vec::new();
    for k in 0..10u32 {
        let data = format!("a{k}").into_bytes();
        c.commit(&data);
        committed.push(data);
    }
    c.run_until(4_000, "all three applied", |c| {
        (0..NODES).all(|i| c.applied_data(i).iter().filter(|d| committed.contains(d)).count() == 10)
    });

    // A linearizable read on a follower: forwarded to the leader, confirmed by a heartbeat round,
    // and answered with an index at or past everything committed before the read began.
    let committed_before = c.groups[leader as usize - 1].commit_index();
    let mut read = None;
    for attempt in 0..20u64 {
        if c.groups[follower].read_index(attempt).is_err() {
            c.run_step();
            continue;
        }
        let deadline = c.step + 200;
        c.run_until(400, "read or timeout", |c| !c.reads[follower].is_empty() || c.step >= deadline);
        if let Some(r) = c.reads[follower].first() {
            read = Some(*r);
            break;
        }
    }
    let read = read.unwrap_or_else(|| panic!("seed {seed}: no read answered"));
    assert!(read.index >= committed_before, "seed {seed}: stale read index {read:?}");

    // Kill the leader: it hears nothing and nothing it says arrives. What it accepts now never
    // commits.
    let old = leader as usize - 1;
    c.isolated[old] = true;
    let mut doomed = Vec::new();
    for k in 0..3u64 {
        if let Ok(id) = c.groups[old].propose(format!("doomed{k}").as_bytes(), 1_000 + k) {
            doomed.push(id);
        }
    }
    let new_leader = c.elect();
    assert_ne!(new_leader, leader, "seed {seed}");
    for k in 0..10u32 {
        let data = format!("b{k}").into_bytes();
        c.commit(&data);
        committed.push(data);
        if k == 4 {
            // One of the two live nodes loses power: everything it acknowledged was durable, so
            // nothing committed is lost.
            let live: Vec<usize> = (0..NODES).filter(|&i| i != old).collect();
            let victim = live[c.rng.below(2) as usize];
            c.crash_restart(victim);
        }
    }

    // Heal: the old leader learns the new log, truncates its uncommitted tail, and its doomed
    // proposals come out as dropped.
    c.isolated[old] = false;
    c.run_until(8_000, "everyone caught up", |c| {
        (0..NODES).all(|i| c.applied_data(i).iter().filter(|d| committed.contains(d)).count() == 20)
            && (0..NODES).all(|i| c.applied[i].len() == c.applied[0].len())
    });
    for id in &doomed {
        assert!(c.dropped[old].iter().any(|d| d.id == *id), "seed {seed}: {id:?} not dropped");
    }
    for i in 0..NODES {
        let data = c.applied_data(i);
        assert!(!data.iter().any(|d| d.starts_with(b"doomed")), "seed {seed}: a doomed entry applied");
        // Exactly once, in the order they were acknowledged.
        let order: Vec<&Vec<u8>> = data.iter().filter(|d| committed.contains(d)).collect();
        assert_eq!(order, committed.iter().collect::<Vec<_>>(), "seed {seed}: node {}", i + 1);
    }
    c.check_prefixes();
}

#[test]
fn three_nodes_elect_replicate_fail_over_and_never_lose_or_reorder_committed_entries() {
    let seeds: Vec<u64> = match std::env::var("VIGIL_RAFT_SEED") {
        Ok(s) => vec![s.parse().expect("VIGIL_RAFT_SEED is a u64")],
        Err(_) => (1..=16).collect(),
    };
    for seed in seeds {
        three_nodes_scenario(seed);
    }
}
