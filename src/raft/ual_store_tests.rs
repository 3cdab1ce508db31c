//! Tests of `UalRaftStore`: the store alone (entries, hard state, group commits, truncation, crash
//! at each step through `into_device()`), one `RaftGroup` over a memory device (elect, commit only
//! once the UAL write completed, crash and restart from the device's bytes), three nodes over UAL
//! stores with a follower crash-restarted from its device bytes, and one node over io_uring on a
//! real file.

use super::tests::{config, logger, Cluster, NODES, TICK_NS};
use super::*;
use crate::log::{Ual, UalConfig, PAYLOAD_MAX};
use vigil_pmd::block::memory::MemoryBlockIo;
use vigil_pmd::block::BlockIo;
use vigil_pmd::Nanos;

fn ual_config() -> UalConfig {
    UalConfig {
        segment_blocks: 64,
        segment_count: 4,
        write_blocks_max: 16,
        writes_in_flight_max: 4,
        format_if_blank: true,
        atomic_write_bytes: crate::log::ATOMIC_WRITE_BLOCK,
    }
}

fn fresh() -> UalRaftStore<MemoryBlockIo> {
    fresh_with(ual_config())
}

/// A store over a fresh log of `cfg` on a memory device (also the lagging-follower tests').
pub(super) fn fresh_with(cfg: UalConfig) -> UalRaftStore<MemoryBlockIo> {
    let (ual, _) = Ual::open(MemoryBlockIo::new(cfg.device_blocks(), 16), cfg).unwrap();
    UalRaftStore::new(ual, 0).unwrap()
}

/// What a power cut leaves: the device's bytes as they are, reopened and recovered.
fn crash(store: UalRaftStore<MemoryBlockIo>, applied_index: u64) -> UalRaftStore<MemoryBlockIo> {
    reopen(store.into_ual().into_device(), applied_index)
}

fn reopen(dev: MemoryBlockIo, applied_index: u64) -> UalRaftStore<MemoryBlockIo> {
    let (ual, _) = Ual::open(dev, ual_config()).unwrap();
    UalRaftStore::new(ual, applied_index).unwrap()
}

fn entry(index: u64, term: u64, data: &[u8]) -> LogEntry<'_> {
    LogEntry { index, term, kind: EntryKind::Normal, data }
}

/// Syncs until group commit `n` is durable (bounded).
fn settle(s: &mut UalRaftStore<MemoryBlockIo>) {
    let n = s.sync();
    for _ in 0..100 {
        if s.durable_sync() >= n && s.durable_index() == s.last_index() {
            return;
        }
        s.sync();
    }
    panic!("group commit {n} never durable: {s:?}");
}

// ---------------------------------------------------------------------------------------------
// The store alone

#[test]
fn entries_and_hard_state_become_durable_with_their_group_commit() {
    let mut s = fresh();
    assert_eq!((s.first_index(), s.last_index(), s.term(0)), (1, 0, Ok(0)));
    s.append(&[entry(1, 1, b"a"), entry(2, 1, b"b")]).unwrap();
    s.set_hard_state(HardStateRecord { term: 1, vote: 1, commit: 0 }).unwrap();
    assert_eq!((s.last_index(), s.durable_index(), s.durable_sync()), (2, 0, 0));
    assert_eq!(s.entry(2).unwrap().data, b"b");
    assert_eq!(s.term(2), Ok(1));
    // Sealed, submitted (a log write and a superblock write) and, the memory device answering at
    // once, reaped by the same call; the UAL write is what made it durable.
    let writes = (s.ual().counters().writes, s.ual().counters().superblock_writes);
    assert_eq!(s.sync(), 1);
    assert_eq!(
        (s.ual().counters().writes, s.ual().counters().superblock_writes),
        (writes.0 + 1, writes.1 + 1),
        "one log write and one superblock write for the group commit"
    );
    assert_eq!((s.durable_sync(), s.durable_index()), (1, 2));
    assert_eq!(s.sync(), 1, "nothing new: the same number");
    // Entries alone need no superblock write.
    s.append(&[entry(3, 1, b"c")]).unwrap();
    assert_eq!(s.durable_index(), 2);
    assert_eq!(s.sync(), 2);
    assert_eq!(s.ual().counters().superblock_writes, writes.1 + 1);
    assert_eq!((s.durable_sync(), s.durable_index()), (2, 3));
    let r = crash(s, 0);
    assert_eq!(r.hard_state(), HardStateRecord { term: 1, vote: 1, commit: 0 });
    assert_eq!((r.last_index(), r.entry(1).unwrap().data), (3, &b"a"[..]));
}

#[test]
fn a_crash_at_each_step_keeps_exactly_what_was_durable() {
    // Staged only: nothing survives.
    let mut s = fresh();
    s.append(&[entry(1, 1, b"a")]).unwrap();
    s.set_hard_state(HardStateRecord { term: 1, vote: 1, commit: 0 }).unwrap();
    let r = crash(s, 0);
    assert_eq!((r.last_index(), r.hard_state()), (0, HardStateRecord::default()));

    // Durable, then more staged: the durable part survives.
    let mut s = fresh();
    s.append(&[entry(1, 1, b"a")]).unwrap();
    s.set_hard_state(HardStateRecord { term: 1, vote: 1, commit: 0 }).unwrap();
    settle(&mut s);
    s.append(&[entry(2, 2, b"b")]).unwrap();
    s.set_hard_state(HardStateRecord { term: 2, vote: 3, commit: 1 }).unwrap();
    let r = crash(s, 0);
    assert_eq!((r.last_index(), r.hard_state()), (1, HardStateRecord { term: 1, vote: 1, commit: 0 }));

    // A commit-only change is lazy: no superblock write for it, but it rides the next one and is
    // clamped to the recovered log.
    let mut s = fresh();
    s.append(&[entry(1, 1, b"a"), entry(2, 1, b"b")]).unwrap();
    s.set_hard_state(HardStateRecord { term: 1, vote: 1, commit: 0 }).unwrap();
    settle(&mut s);
    let writes = s.ual().counters().superblock_writes;
    s.set_hard_state(HardStateRecord { term: 1, vote: 1, commit: 2 }).unwrap();
    settle(&mut s);
    assert_eq!(s.ual().counters().superblock_writes, writes, "commit alone writes no superblock");
    s.set_conf_state(&ConfState { voters: vec![1, 2, 3], ..Default::default() }).unwrap();
    settle(&mut s);
    let r = crash(s, 0);
    assert_eq!(r.hard_state().commit, 2);
    assert_eq!(r.conf_state().voters, vec![1, 2, 3]);
}

#[test]
fn truncation_lowers_the_durable_index_at_once_and_stays_truncated_after_a_crash() {
    let mut s = fresh();
    s.append(&[entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c")]).unwrap();
    settle(&mut s);
    s.truncate_suffix(2).unwrap();
    assert_eq!((s.last_index(), s.durable_index()), (1, 1));
    s.append(&[entry(2, 2, b"B")]).unwrap();
    assert_eq!(s.durable_index(), 1, "the replacement is not durable yet");
    assert_eq!((s.term(1), s.term(2)), (Ok(1), Ok(2)));
    assert!(matches!(s.term(3), Err(StoreError::Unavailable { .. })));
    let r = crash(s, 0);
    assert_eq!(r.last_index(), 1, "old 2 and 3 are dead, new 2 was never written");
    let mut s = r;
    s.append(&[entry(2, 2, b"B")]).unwrap();
    settle(&mut s);
    let r = crash(s, 0);
    assert_eq!((r.last_index(), r.entry(2).unwrap().data, r.term(2)), (2, &b"B"[..], Ok(2)));
}

#[test]
fn oversized_entries_are_refused_before_anything_is_written() {
    let mut s = fresh();
    assert_eq!(s.entry_size_max(), PAYLOAD_MAX);
    let big = vec![1u8; ENTRY_DATA_MAX + 1];
    let fits = vec![2u8; ENTRY_DATA_MAX];
    assert_eq!(
        s.append(&[entry(1, 1, &fits), entry(2, 1, &big)]),
        Err(StoreError::TooLarge { len: ENTRY_DATA_MAX + 1, max: ENTRY_DATA_MAX })
    );
    assert_eq!(s.last_index(), 0);
    s.append(&[entry(1, 1, &fits)]).unwrap();
    assert_eq!(s.entry(1).unwrap().data.len(), ENTRY_DATA_MAX);
}

#[test]
fn entries_after_the_applied_index_are_served_after_a_restart_from_any_segment() {
    let mut s = fresh();
    let body = [9u8; 1500];
    // ~2 records a block, 64-block segments: 400 entries span 3+ segments.
    for i in 1..=400u64 {
        s.append(&[entry(i, 1 + i / 100, &body)]).unwrap();
        if i % 20 == 0 {
            s.sync();
        }
    }
    settle(&mut s);
    let mut r = crash(s, 10);
    for i in 11..=400 {
        let e = r.entry(i).unwrap_or_else(|e| panic!("entry {i}: {e}"));
        assert_eq!((e.index, e.term, e.data), (i, 1 + i / 100, &body[..]));
    }
    assert_eq!(r.term(5), Ok(1), "terms of every index come from memory");
    assert!(matches!(r.entry(1), Err(StoreError::OnDevice { index: 1 })), "old and applied: not kept");
    // ...but still in the log: a blocking load brings its segment into the read cache.
    r.load(1).unwrap();
    assert_eq!(r.entry(1).unwrap().data, &body[..]);
}

#[test]
fn recovery_replays_past_damaged_entries_the_snapshot_covers() {
    let mut s = fresh();
    s.set_conf_state(&ConfState { voters: vec![1], ..Default::default() }).unwrap();
    let body = vec![7u8; 900];
    for i in 1..=40u64 {
        s.append(&[entry(i, 2, &body)]).unwrap();
        settle(&mut s);
    }
    s.checkpoint(30, Some(b"image".to_vec())).unwrap();
    settle(&mut s);
    // Entry 10 (4 to a block: 9..=12) is damaged; the snapshot at 30 covers it.
    let mut ual = s.into_ual();
    let at = ual.device_offset(10).unwrap() as usize + 100;
    let mut dev = ual.into_device();
    dev.bytes_mut()[at] ^= 0x20;
    let (ual, report) = Ual::open(dev, ual_config()).expect("covered damage opens");
    assert_eq!(report.skipped.map(|r| (r.first_lsn, r.last_lsn)), Some((10, 12)));
    let mut applied = Vec::new();
    let (r, applied_index) = UalRaftStore::recover(ual, 30, &mut |lsn, _| applied.push(lsn)).unwrap();
    assert_eq!(applied, (31..=40).collect::<Vec<_>>());
    assert_eq!(
        (applied_index, r.last_index(), r.term(40), r.entry(35).unwrap().data),
        (40, 40, Ok(2), &body[..])
    );
}

#[test]
fn checkpoint_moves_the_snapshot_and_survives_a_restart_without_its_bytes() {
    let mut s = fresh();
    s.set_conf_state(&ConfState { voters: vec![1, 2, 3], ..Default::default() }).unwrap();
    for i in 1..=10u64 {
        s.append(&[entry(i, 2, b"x")]).unwrap();
    }
    settle(&mut s);
    s.checkpoint(6, Some(b"image".to_vec())).unwrap();
    assert_eq!((s.first_index(), s.snapshot_meta().index, s.snapshot_meta().term), (7, 6, 2));
    assert_eq!(s.snapshot(5).unwrap().data, b"image");
    assert!(matches!(s.entry(6), Err(StoreError::Compacted { .. })));
    assert_eq!(s.term(6), Ok(2));
    settle(&mut s);
    let mut r = crash(s, 6);
    assert_eq!((r.first_index(), r.snapshot_meta().index, r.snapshot_meta().term), (7, 6, 2));
    assert_eq!(r.snapshot_meta().conf_state.voters, vec![1, 2, 3]);
    assert_eq!(r.take_snapshot_wanted(), None);
    assert!(matches!(r.snapshot(6), Err(StoreError::SnapshotUnavailable { .. })));
    assert_eq!(r.entry(7).unwrap().data, b"x");
    // The owner hears that a follower wanted it and brings the bytes back (from its file).
    assert_eq!(r.take_snapshot_wanted(), Some(6));
    assert_eq!(r.take_snapshot_wanted(), None);
    r.set_snapshot_data(5, b"older".to_vec());
    assert!(!r.has_snapshot_data(), "not the snapshot the log follows");
    r.set_snapshot_data(6, b"image".to_vec());
    assert_eq!(r.snapshot(6).unwrap().data, b"image");
}

/// A follower's log of 10 entries (term 2), hard state (term 3, vote 2, commit 5), membership
/// 1, 2, 3, all durable.
fn follower_log() -> UalRaftStore<MemoryBlockIo> {
    let mut s = fresh();
    s.set_conf_state(&ConfState { voters: vec![1, 2, 3], ..Default::default() }).unwrap();
    for i in 1..=10u64 {
        s.append(&[entry(i, 2, b"x")]).unwrap();
    }
    s.set_hard_state(HardStateRecord { term: 3, vote: 2, commit: 5 }).unwrap();
    settle(&mut s);
    s
}

fn received(index: u64, term: u64) -> StoreSnapshot {
    let conf_state = ConfState { voters: vec![1, 2, 3], learners: vec![4], ..Default::default() };
    StoreSnapshot { meta: SnapshotMeta { index, term, conf_state }, data: b"leader's image".to_vec() }
}

/// What a store that installed `received(index, 3)` must say, before and after a restart.
fn check_installed(s: &UalRaftStore<MemoryBlockIo>, index: u64) {
    assert_eq!((s.first_index(), s.last_index(), s.term(index)), (index + 1, index, Ok(3)));
    assert_eq!(s.snapshot_meta(), &received(index, 3).meta);
    assert_eq!(s.conf_state(), &received(index, 3).meta.conf_state);
    assert_eq!(s.hard_state(), HardStateRecord { term: 3, vote: 2, commit: index });
    assert!(matches!(s.entry(index), Err(StoreError::Compacted { .. })));
}

#[test]
fn apply_snapshot_replaces_the_log_durably_with_the_hard_state_and_membership() {
    // Beyond the log, and inside it over entries of another term (a conflicting history).
    for index in [30, 8] {
        let mut s = follower_log();
        s.apply_snapshot(&received(index, 3)).unwrap();
        check_installed(&s, index);
        assert_eq!(s.durable_index(), index, "durable when it returns");
        assert_eq!(s.snapshot(index).unwrap().data, b"leader's image", "kept to serve followers in turn");
        assert_eq!(s.snapshots_installed(), 1);
        // A crash right after it: the snapshot, the hard state and the membership, nothing older.
        let mut r = crash(s, index);
        check_installed(&r, index);
        // The log goes on after the snapshot, across a restart.
        for i in index + 1..=index + 5 {
            r.append(&[entry(i, 3, b"y")]).unwrap();
        }
        settle(&mut r);
        let r = crash(r, index);
        assert_eq!((r.first_index(), r.last_index(), r.term(index + 5)), (index + 1, index + 5, Ok(3)));
        assert_eq!(r.entry(index + 3).unwrap().data, b"y");
    }
}

#[test]
fn apply_snapshot_refuses_an_older_snapshot_and_changes_nothing() {
    let mut s = follower_log();
    s.checkpoint(5, None).unwrap();
    settle(&mut s);
    assert!(matches!(s.apply_snapshot(&received(4, 2)), Err(StoreError::Compacted { .. })));
    assert_eq!((s.first_index(), s.last_index(), s.snapshot_meta().index), (6, 10, 5));
    assert_eq!(s.entry(8).unwrap().data, b"x");
}

/// A group of one voter keeps no snapshot bytes in memory: nobody could ask for them (the memory
/// benchmark found them a third of the process at a million keys).
#[test]
fn a_single_voter_keeps_no_snapshot_bytes() {
    let mut s = fresh();
    s.set_conf_state(&ConfState { voters: vec![1], ..Default::default() }).unwrap();
    for i in 1..=10u64 {
        s.append(&[entry(i, 2, b"x")]).unwrap();
    }
    settle(&mut s);
    s.checkpoint(6, Some(b"image".to_vec())).unwrap();
    assert_eq!((s.first_index(), s.snapshot_meta().index), (7, 6));
    assert!(matches!(s.snapshot(6), Err(StoreError::SnapshotUnavailable { .. })));
}

// ---------------------------------------------------------------------------------------------
// One node

struct Single<D: BlockIo> {
    group: RaftGroup<UalRaftStore<D>>,
    out: RaftOutput,
    now: Nanos,
    applied: Vec<CommittedEntry>,
}

impl<D: BlockIo> Single<D> {
    fn new(store: UalRaftStore<D>, applied_index: u64) -> Self {
        let cfg = config(10);
        let group = RaftGroup::new(7, 1, &[1], store, &cfg, applied_index, &logger()).unwrap();
        Self { group, out: RaftOutput::new(&cfg), now: Nanos(0), applied: Vec::new() }
    }

    fn advance(&mut self) {
        self.now = Nanos(self.now.0 + TICK_NS);
        self.group.on_time(self.now);
        self.group.poll(&mut self.out).unwrap();
        for e in self.out.committed.drain(..) {
            let store = self.group.store();
            assert!(e.index <= store.durable_index(), "applied before durable");
            assert!(e.index <= store.ual().durable_lsn(), "applied before the UAL write completed");
            if let Some(last) = self.applied.last() {
                assert!(e.index > last.index, "out of order or twice");
            }
            self.applied.push(e);
        }
        self.out.clear();
    }

    /// Polls until `done`; gives up after `polls_max` polls and 10 s (a real device's writes take
    /// real time, however fast the polls go).
    fn run_until(&mut self, polls_max: usize, mut done: impl FnMut(&Self) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut polls = 0;
        while !done(self) {
            assert!(
                polls < polls_max || std::time::Instant::now() < deadline,
                "not done after {polls} polls: {:?}",
                self.group
            );
            self.advance();
            polls += 1;
        }
    }

    fn elect(&mut self) {
        self.run_until(200, |s| {
            s.group.is_leader() && s.group.applied_index() == s.group.store().last_index()
        });
    }
}

/// Elect, commit 20, crash with two more staged, restart from the device bytes.
/// `reopen(device, applied_index)` recovers a store from what the crash left.
fn single_node_scenario<D: BlockIo>(store: UalRaftStore<D>, reopen: impl FnOnce(D, u64) -> UalRaftStore<D>) {
    let mut s = Single::new(store, 0);
    s.elect();
    assert_eq!(s.group.term(), 1);
    let big = vec![0u8; ENTRY_DATA_MAX + 1];
    assert!(matches!(
        s.group.propose(&big, 0),
        Err(RaftError::TooLarge { len, max: ENTRY_DATA_MAX }) if len == ENTRY_DATA_MAX + 1
    ));
    // A proposal is not applied at the poll that writes it: the UAL write completes later.
    let id = s.group.propose(b"first", 1).unwrap();
    s.group.poll(&mut s.out).unwrap();
    assert!(s.out.committed.is_empty(), "applied in the poll that submitted it");
    s.out.clear();
    s.run_until(20, |s| s.applied.iter().any(|e| e.index == id.index));
    for i in 0..19u64 {
        // A real device may hold them long enough to fill the pending table: wait for room.
        while let Err(e) = s.group.propose(&i.to_le_bytes(), i) {
            assert!(matches!(e, RaftError::Busy), "{e}");
            s.advance();
        }
        s.advance();
    }
    s.run_until(100, |s| s.applied.len() == 20);
    let term = s.group.term();
    let applied_durably = s.applied[9].index;
    let tail: Vec<Vec<u8>> = s.applied[10..].iter().map(|e| e.data.clone()).collect();
    // Two more, written into the UAL's staging image but never flushed: they must vanish.
    s.group.propose(b"lost-1", 100).unwrap();
    s.group.propose(b"lost-2", 101).unwrap();
    let dev = s.group.into_store().into_ual().into_device();

    let mut r = Single::new(reopen(dev, applied_durably), applied_durably);
    assert_eq!(r.group.term(), term, "term recovered from the metadata section");
    assert!(r.group.store().hard_state().vote == 1);
    r.elect();
    assert!(r.group.term() > term);
    let replayed: Vec<Vec<u8>> = r.applied.iter().map(|e| e.data.clone()).collect();
    assert_eq!(replayed, tail, "exactly the committed entries after the applied index, in order");
    assert_eq!(r.applied[0].index, applied_durably + 1);
    let id = r.group.propose(b"after", 1).unwrap();
    r.run_until(50, |r| r.applied.last().is_some_and(|e| e.data == b"after"));
    assert_eq!(r.applied.last().unwrap().index, id.index);
}

#[test]
fn single_node_over_a_memory_device_commits_after_the_write_and_recovers_from_its_bytes() {
    single_node_scenario(fresh(), |dev: MemoryBlockIo, applied_index| {
        // Only the bytes cross the crash: a new device holding a copy of them.
        let mut copy = MemoryBlockIo::new(ual_config().device_blocks(), 16);
        copy.bytes_mut().copy_from_slice(dev.bytes());
        reopen(copy, applied_index)
    });
}

#[test]
fn single_node_over_io_uring_on_a_real_file() {
    use vigil_pmd::block::uring::{DurableMode, UringBlockIo, UringConfig};
    // A test never passes by not running: without a real filesystem or io_uring it fails.
    let dir = scratch_dir().expect("no scratch directory on a real filesystem (set VIGIL_BLOCK_TEST_DIR)");
    /// Removes the file however the test ends.
    struct Scratch(std::path::PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let path = dir.join(format!("vigil-ualraft-{}.img", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let _scratch = Scratch(path.clone());
    let cfg = ual_config();
    let ucfg = UringConfig {
        path: path.clone(),
        create_blocks: Some(cfg.device_blocks()),
        queue_depth: 16,
        durable_mode: DurableMode::Dsync,
    };
    let dev = UringBlockIo::open(&ucfg).unwrap_or_else(|e| panic!("io_uring unavailable here: {e}"));
    let (ual, report) = Ual::open(dev, cfg).unwrap();
    assert!(report.formatted);
    single_node_scenario(UalRaftStore::new(ual, 0).unwrap(), |dev, applied_index| {
        drop(dev); // closes the file without flushing anything more: what a crash leaves
        let dev = UringBlockIo::open(&UringConfig { create_blocks: None, ..ucfg.clone() }).unwrap();
        let (ual, _) = Ual::open(dev, cfg).unwrap();
        UalRaftStore::new(ual, applied_index).unwrap()
    });
}

/// A directory on a real filesystem (io_uring with O_DIRECT refuses tmpfs): the first of
/// `VIGIL_BLOCK_TEST_DIR`, `/var/tmp` and the system temp dir that is not a memory filesystem.
fn scratch_dir() -> Option<std::path::PathBuf> {
    let candidates = [
        std::env::var_os("VIGIL_BLOCK_TEST_DIR").map(std::path::PathBuf::from),
        Some(std::path::PathBuf::from("/var/tmp")),
        Some(std::env::temp_dir()),
    ];
    candidates.into_iter().flatten().find(|dir| {
        std::fs::create_dir_all(dir).is_ok()
            && std::process::Command::new("stat")
                .args(["-f", "-c", "%T"])
                .arg(dir)
                .output()
                .map(|o| !matches!(String::from_utf8_lossy(&o.stdout).trim(), "tmpfs" | "ramfs"))
                .unwrap_or(false)
    })
}

// ---------------------------------------------------------------------------------------------
// Three nodes

/// The shared three-node cluster over UAL stores on memory devices: a crash reopens the node's
/// device bytes, with its projections rebuilt from the log (applied index 0); 10% loss, no
/// duplicates.
fn ual_cluster(seed: u64) -> Cluster<UalRaftStore<MemoryBlockIo>> {
    let restart: fn(UalRaftStore<MemoryBlockIo>) -> UalRaftStore<MemoryBlockIo> =
        |store| reopen(store.into_ual().into_device(), 0);
    Cluster::build(seed, |_| fresh(), restart, 10, 0)
}

#[test]
fn three_nodes_over_ual_stores_replicate_and_a_follower_restarts_from_its_device_bytes() {
    for seed in 1..=4u64 {
        let mut c = ual_cluster(seed);
        let mut committed = Vec::new();
        for k in 0..10u32 {
            let data = format!("a{k}").into_bytes();
            c.commit(&data);
            committed.push(data);
        }
        let leader = c.elect() as usize - 1;
        let follower = (leader + 1) % NODES;
        c.crash_restart(follower);
        for k in 0..10u32 {
            let data = format!("b{k}").into_bytes();
            c.commit(&data);
            committed.push(data);
        }
        c.run_until(8_000, "everyone caught up", |c| {
            (0..NODES).all(|i| c.applied_data(i).iter().filter(|d| committed.contains(d)).count() == 20)
        });
        for i in 0..NODES {
            let order: Vec<Vec<u8>> =
                c.applied_data(i).into_iter().filter(|d| committed.contains(d)).collect();
            assert_eq!(order, committed, "seed {seed}: node {}", i + 1);
        }
        let restarted = c.groups[follower].store();
        assert!(restarted.hard_state().term >= 1);
        assert_eq!(restarted.conf_state().voters, vec![1, 2, 3], "membership recovered");
    }
}
