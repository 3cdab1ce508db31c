//! Quiescing idle groups (`partition/quiesce.rs`) in the three-replica simulator, one behaviour
//! per test, on a lossless network with short delays and no random faults.

use super::*;

/// A simulator whose group elected a leader on a quiet network; returns it and the leader's id.
fn elected(seed: u64) -> (Sim, u64) {
    let mut sim = Sim::with(seed, false, false, true);
    sim.random_faults = false;
    sim.net = Net { delay_max_ns: 200_000, ..Net::default() };
    for _ in 0..2_000 {
        sim.tick(false);
        if let Some(id) = leader(&sim) {
            return (sim, id);
        }
    }
    panic!("no leader elected");
}

fn leader(sim: &Sim) -> Option<u64> {
    sim.nodes
        .iter()
        .filter_map(|n| n.part.as_ref())
        .find(|p| p.raft().is_leader())
        .map(|p| p.raft().node_id())
}

fn part(sim: &Sim, id: u64) -> &Partition<SimDisk> {
    sim.nodes[(id - 1) as usize].part.as_ref().expect("up")
}

fn all_quiet(sim: &Sim) -> bool {
    sim.nodes.iter().filter_map(|n| n.part.as_ref()).all(|p| p.is_quiet())
}

/// Ticks until `done` holds (at most `steps`); the steps it took.
fn until(sim: &mut Sim, steps: u64, done: impl Fn(&Sim) -> bool) -> Option<u64> {
    (1..=steps).find(|_| {
        sim.tick(false);
        done(sim)
    })
}

/// A request arrives at node `id` now (as the shard tells the partition).
fn arrive(sim: &mut Sim, id: u64) {
    let t = sim.t();
    let node = sim.node(id);
    let now = node.local_clock(t);
    node.part.as_mut().expect("up").observe_time(now);
}

/// Cuts node `id` off from the others, both ways.
fn isolate(sim: &mut Sim, id: u64) {
    for o in (1..=NODES).filter(|&n| n != id) {
        sim.net.cut.insert((id, o));
        sim.net.cut.insert((o, id));
    }
}

/// A client's SET of `k` at node `id`.
fn set_k(sim: &mut Sim, id: u64) -> WriteOutcome {
    let waiter = Waiter {
        origin: Origin::Client { peer: peer(), client_id: 9, arrived: Nanos(0) },
        opcode: opcode::SET,
        request_id: 1,
        owner: Default::default(),
    };
    sim.node(id).part.as_mut().expect("up").write(waiter, 9, &set_body(b"k", b"v"))
}

fn messages_out(sim: &Sim) -> u64 {
    sim.nodes.iter().filter_map(|n| n.part.as_ref()).map(|p| p.counters().messages_out).sum()
}

#[test]
fn an_idle_group_quiesces_and_then_sends_only_keepalives() {
    let (mut sim, _) = elected(1);
    let took = until(&mut sim, 1_000, all_quiet).expect("the idle group quiesces");
    assert!(took >= QUIESCE_AFTER_HEARTBEATS * 20, "not before the idle time: {took} steps");
    assert!(sim.nodes.iter().filter_map(|n| n.part.as_ref()).all(|p| p.reads_valid_until().is_none()));
    let (messages, datagrams) = (messages_out(&sim), sim.stats.datagrams);
    for _ in 0..1_000 {
        sim.tick(false);
    }
    assert!(all_quiet(&sim), "nothing woke it");
    assert_eq!(messages_out(&sim), messages, "no Raft message in a second of quiet");
    let keepalives = sim.stats.datagrams - datagrams;
    // Six directed pairs, one keepalive each per 20 ms heartbeat interval (and a step's slack).
    assert!((240..=310).contains(&keepalives), "{keepalives} datagrams in a second");
    let leader = leader(&sim).expect("still a leader");
    assert!(!part(&sim, leader).serves_reads(), "a quiet leader holds no lease");
}

#[test]
fn a_read_on_a_quiet_leader_waits_for_a_fresh_lease() {
    let (mut sim, id) = elected(2);
    until(&mut sim, 1_000, all_quiet).expect("quiesces");
    let term = part(&sim, id).raft().term();
    arrive(&mut sim, id);
    assert!(!part(&sim, id).is_quiet(), "the request woke it");
    assert!(!part(&sim, id).serves_reads(), "no lease until a quorum confirmed one");
    let took = until(&mut sim, 100, |s| part(s, id).serves_reads()).expect("the lease is renewed");
    assert!(took <= 5, "one round trip: {took} steps");
    // The reads it answers are valid until the lease's end, within a lease of now.
    let t = sim.t();
    let now = sim.node(id).local_clock(t);
    let until = part(&sim, id).reads_valid_until().expect("it serves reads");
    assert!(until > now && until.0 <= now.0 + 80_000_000, "{until:?} against {now:?}");
    assert_eq!(part(&sim, id).raft().term(), term, "the same leadership");
    assert!(
        sim.nodes.iter().filter_map(|n| n.part.as_ref()).all(|p| !p.is_quiet()),
        "the renewal woke the followers"
    );
}

#[test]
fn a_write_on_a_quiet_group_commits_and_the_group_quiesces_again() {
    let (mut sim, id) = elected(3);
    until(&mut sim, 1_000, all_quiet).expect("quiesces");
    let index = part(&sim, id).raft().commit_index();
    assert_eq!(set_k(&mut sim, id), WriteOutcome::Later);
    until(&mut sim, 100, |s| {
        s.nodes.iter().filter_map(|n| n.part.as_ref()).all(|p| p.raft().applied_index() > index)
    })
    .expect("committed and applied everywhere");
    until(&mut sim, 1_000, all_quiet).expect("quiet again");
    assert!(part(&sim, id).counters().quiesced >= 2);
}

#[test]
fn followers_of_a_quiet_leader_cut_off_elect_another_and_it_never_serves_a_read() {
    let (mut sim, old) = elected(4);
    until(&mut sim, 1_000, all_quiet).expect("quiesces");
    isolate(&mut sim, old);
    let mut served = 0;
    let took = until(&mut sim, 2_000, |s| leader_other_than(s, old)).expect("a new leader");
    // The old leader, asked every step, never had a lease since it quiesced.
    for _ in 0..200 {
        arrive(&mut sim, old);
        served += u32::from(part(&sim, old).serves_reads());
        sim.tick(false);
    }
    assert_eq!(served, 0, "the cut-off old leader served reads");
    // Silence after 100 ms of missed keepalives, then an election timeout at most.
    assert!(took <= 450, "the followers took {took} steps to elect");
    let woken: u64 =
        (1..=NODES).filter(|&n| n != old).map(|n| part(&sim, n).counters().woken_by_leader_lost).sum();
    assert!(woken >= 1, "a follower woke for the silence: {woken}");
}

fn leader_other_than(sim: &Sim, old: u64) -> bool {
    sim.nodes.iter().filter(|n| n.id != old).filter_map(|n| n.part.as_ref()).any(|p| p.raft().is_leader())
}

#[test]
fn a_quiet_leader_that_restarts_at_once_wakes_its_followers() {
    let (mut sim, old) = elected(5);
    until(&mut sim, 1_000, all_quiet).expect("quiesces");
    // Down for 10 ms: far less than the silence that would wake them; the new incarnation does.
    sim.crash_for(old, 10);
    until(&mut sim, 2_000, |s| {
        s.nodes.iter().filter_map(|n| n.part.as_ref()).any(|p| p.raft().is_leader() && !p.is_quiet())
            || (1..=NODES).filter(|&n| n != old).any(|n| {
                s.nodes[(n - 1) as usize].part.as_ref().is_some_and(|p| p.counters().woken_by_leader_lost > 0)
            })
    })
    .expect("woken");
    let woken: u64 =
        (1..=NODES).filter(|&n| n != old).map(|n| part(&sim, n).counters().woken_by_leader_lost).sum();
    assert!(woken >= 1, "the restart woke a follower");
    until(&mut sim, 2_000, |s| leader(s).is_some()).expect("a leader again");
}

#[test]
fn a_follower_behind_the_quiescing_heartbeat_does_not_quiesce() {
    let (mut sim, id) = elected(6);
    until(&mut sim, 1_000, all_quiet).expect("quiesces");
    let follower = (1..=NODES).find(|&n| n != id).expect("a follower");
    let p = sim.node(follower).part.as_mut().expect("up");
    p.observe_time(Nanos(0));
    let (term, commit) = (p.raft().term(), p.raft().commit_index());
    assert!(!p.is_quiet(), "the request woke it");
    let mut m = raft::eraftpb::Message::default();
    m.set_msg_type(raft::eraftpb::MessageType::MsgHeartbeat);
    // A leader whose log ends past this one's: the follower keeps ticking.
    (m.to, m.from, m.term, m.commit) = (follower, id, term, commit);
    m.context = crate::raft::quiesce_context(commit + 1);
    p.step(m).expect("stepped");
    assert!(!p.is_quiet(), "a follower whose log does not end at the leader's commit index keeps ticking");
}

#[test]
fn a_deposed_leader_that_quiesced_cut_off_catches_up_when_the_others_are_back() {
    let (mut sim, old) = elected(7);
    until(&mut sim, 1_000, all_quiet).expect("quiesces");
    isolate(&mut sim, old);
    until(&mut sim, 2_000, |s| leader_other_than(s, old)).expect("a new leader");
    let new = (1..=NODES).find(|&n| n != old && part(&sim, n).raft().is_leader()).expect("a new leader");
    assert_eq!(set_k(&mut sim, new), WriteOutcome::Later);
    let others_quiet = |s: &Sim| (1..=NODES).filter(|&n| n != old).all(|n| part(s, n).is_quiet());
    until(&mut sim, 2_000, others_quiet).expect("the new group quiesces without the old leader");
    assert!(
        part(&sim, old).is_quiet() && part(&sim, old).raft().is_leader(),
        "the old leader is still quiet, deposed"
    );
    sim.net.cut.clear();
    let target = part(&sim, new).raft().last_index();
    let caught_up = |s: &Sim| {
        let p = part(s, old);
        !p.raft().is_leader() && p.raft().applied_index() >= target
    };
    until(&mut sim, 1_000, caught_up)
        .expect("the old leader follows and catches up once the others are back");
    let back: u64 = (1..=NODES).map(|n| part(&sim, n).counters().woken_by_peer_back).sum();
    assert!(back >= 1, "a quiet leader woke for a peer back");
}
