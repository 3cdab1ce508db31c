//! Entries older than the log's memory, served from the device: three voters over `UalRaftStore`
//! with small segments where a follower, partitioned away, falls several segments behind and
//! catches up from the leader's device through raft-rs's asynchronous fetch; and a record damaged
//! on the device answering an error, never data, on every read path (`entry` after an
//! asynchronous `prefetch`, a blocking `load`).

use super::tests::{Cluster, NODES};
use super::*;
use crate::log::{encode_record, RecordFields, UalConfig, RECORD_HEADER_LEN};
use vigil_pmd::block::memory::MemoryBlockIo;
use vigil_pmd::Nanos;

/// 16-block (64 KiB) segments: with 1000-byte entries about 60 to a segment, so a few hundred
/// entries put the tail several segments past an old entry. A 16-segment ring never fills in
/// these tests (no checkpoint is taken: nothing the follower needs is covered by a snapshot).
fn small_segments() -> UalConfig {
    UalConfig {
        segment_blocks: 16,
        segment_count: 16,
        write_blocks_max: 8,
        writes_in_flight_max: 4,
        format_if_blank: true,
        atomic_write_bytes: crate::log::ATOMIC_WRITE_BLOCK,
    }
}

fn fresh() -> UalRaftStore<MemoryBlockIo> {
    super::ual_store_tests::fresh_with(small_segments())
}

/// An entry's bytes, told apart by its number.
fn body(k: u64) -> Vec<u8> {
    let mut b = vec![(k % 251) as u8; 1000];
    b[..8].copy_from_slice(&k.to_le_bytes());
    b
}

/// Entries `1..=n` of term 1 with `body(index)`, durable.
fn filled(n: u64) -> UalRaftStore<MemoryBlockIo> {
    let mut s = fresh();
    for i in 1..=n {
        let data = body(i);
        s.append(&[LogEntry { index: i, term: 1, kind: EntryKind::Normal, data: &data }]).unwrap();
        if i % 16 == 0 {
            s.sync();
        }
    }
    let n = s.sync();
    for _ in 0..100 {
        if s.durable_sync() >= n && s.durable_index() == s.last_index() {
            return s;
        }
        s.sync();
    }
    panic!("never durable: {s:?}");
}

/// A follower partitioned away while the other two commit ~6 segments' worth, then healed: it
/// must receive and apply every entry, in order, with its bytes, served from the leader's device.
/// Over a lossless network the leader keeps its lead throughout; over a lossy one (10% loss, 5%
/// duplicates) leadership may move, and whoever leads serves the follower from its device.
fn falls_behind_and_catches_up(seed: u64, lossy: bool) {
    let restart: fn(UalRaftStore<MemoryBlockIo>) -> UalRaftStore<MemoryBlockIo> =
        |_| unreachable!("no node restarts in this test");
    let (loss, duplicates) = if lossy { (10, 5) } else { (0, 0) };
    let mut c = Cluster::build(seed, |_| fresh(), restart, loss, duplicates);
    let mut committed = Vec::new();
    for k in 1..=5u64 {
        c.commit(&body(k));
        committed.push(body(k));
    }
    let leader = c.elect() as usize - 1;
    let lagging = (leader + 1) % NODES;
    c.run_until(4_000, "the follower has the first entries", |c| c.applied[lagging].len() == 5);

    // Partitioned away: the other two commit ~6 segments' worth without it.
    c.isolated[lagging] = true;
    for k in 6..=400u64 {
        c.commit(&body(k));
        committed.push(body(k));
    }
    let leader = if lossy {
        c.elect() as usize - 1
    } else {
        assert_eq!(c.elect() as usize - 1, leader, "seed {seed}: the leader kept its lead");
        leader
    };
    let behind = c.groups[lagging].store().last_index();
    let store = c.groups[leader].store();
    assert_eq!(store.first_index(), 1, "seed {seed}: no snapshot covers what the follower lacks");
    assert!(
        matches!(store.entry(behind + 1), Err(StoreError::OnDevice { .. })),
        "seed {seed}: the follower's next entry ({}) is no longer in the leader's memory",
        behind + 1
    );
    let reads = |c: &Cluster<UalRaftStore<MemoryBlockIo>>| -> u64 {
        (0..NODES).filter(|&i| i != lagging).map(|i| c.groups[i].store().ual().counters().reads).sum()
    };
    let reads_before = reads(&c);

    // Healed: the follower catches up, every entry in order with its bytes. `run_step` fails the
    // test if any group fails.
    c.isolated[lagging] = false;
    c.run_until(40_000, "the follower caught up", |c| c.applied[lagging].len() == c.applied[leader].len());
    assert!(reads(&c) > reads_before, "seed {seed}: the leader read the follower's entries from its device");
    let fetched: u64 = (0..NODES).map(|i| c.groups[i].counters().entries_fetched).sum();
    assert!(fetched > 0, "seed {seed}: through raft-rs's asynchronous fetch");
    if !lossy {
        assert_eq!(c.elect() as usize - 1, leader, "seed {seed}: the leader never failed or lost its lead");
        assert!(c.groups[leader].counters().entries_fetched > 0, "seed {seed}");
    }
    let got: Vec<(u64, u64, &[u8])> =
        c.applied[lagging].iter().map(|e| (e.index, e.term, &e.data[..])).collect();
    let want: Vec<(u64, u64, &[u8])> =
        c.applied[leader].iter().map(|e| (e.index, e.term, &e.data[..])).collect();
    assert_eq!(got, want, "seed {seed}: the follower applied what the leader did");
    assert_eq!(c.applied_data(lagging), committed, "seed {seed}: every entry, once, in order");
}

#[test]
fn a_follower_several_segments_behind_catches_up_from_the_leaders_device() {
    for seed in 1..=3u64 {
        falls_behind_and_catches_up(seed, false);
    }
}

#[test]
fn a_follower_several_segments_behind_catches_up_over_a_lossy_network() {
    for seed in 11..=14u64 {
        falls_behind_and_catches_up(seed, true);
    }
}

#[test]
fn an_entry_damaged_on_the_device_is_an_error_never_data() {
    let mut s = filled(300);
    // Entry 5 sits in the first segment, 100 in the second: neither is in memory any more.
    assert!(matches!(s.entry(5), Err(StoreError::OnDevice { index: 5 })));
    let at = s.ual_mut().device_offset(5).unwrap() as usize + RECORD_HEADER_LEN + 10;
    // Evict the first segment from the read cache (`device_offset` read it), then damage one byte
    // of entry 5's payload on the device.
    s.load(100).unwrap();
    assert_eq!(s.entry(100).unwrap().data, &body(100)[..]);
    s.ual_mut().device_mut().bytes_mut()[at] ^= 0x01;

    // The asynchronous path: the read is submitted, completed by the store's I/O polling, and
    // what it brought is checked.
    assert_eq!(s.prefetch(5), Ok(false), "a device read is needed and submitted");
    s.poll_io(Nanos(0)).unwrap();
    assert!(matches!(s.prefetch(5), Err(StoreError::Corrupt { index: 5, .. })), "{:?}", s.prefetch(5));
    assert!(matches!(s.entry(5), Err(StoreError::Corrupt { index: 5, .. })));
    // Its neighbours in the same segment are whole and served.
    for i in [4, 6, 30] {
        let e = s.entry(i).unwrap_or_else(|e| panic!("entry {i}: {e}"));
        assert_eq!((e.index, e.term, e.data), (i, 1, &body(i)[..]));
    }
    // raft-rs's view: an error, not entries.
    let storage = LogStorage::new(s, RaftGroupConfig::default().held_bytes_max);
    let got = ::raft::Storage::entries(&storage, 5, 6, None, ::raft::GetEntriesContext::empty(false));
    assert!(got.is_err(), "{got:?}");
    let mut s = storage.into_store();

    // The blocking path, after the cache moved elsewhere.
    s.load(100).unwrap();
    assert!(matches!(s.load(5), Err(StoreError::Corrupt { index: 5, .. })));
    assert!(matches!(s.entry(5), Err(StoreError::Corrupt { index: 5, .. })));

    // One damaged entry does not poison the log: it still appends and serves the rest.
    let data = body(301);
    s.append(&[LogEntry { index: 301, term: 1, kind: EntryKind::Normal, data: &data }]).unwrap();
    assert_eq!(s.entry(301).unwrap().data, &data[..]);
    s.load(200).unwrap();
    assert_eq!(s.entry(200).unwrap().data, &body(200)[..]);
}

#[test]
fn a_record_of_another_term_at_the_index_is_refused() {
    // What a previous lap or a cut tail could leave: a whole, checksum-valid record with the lsn
    // asked for but not the term the log holds for it.
    let mut s = filled(300);
    let at = s.ual_mut().device_offset(7).unwrap() as usize;
    let data = body(7);
    let mut record = vec![0u8; RECORD_HEADER_LEN + data.len()];
    let fields =
        RecordFields { lsn: 7, term: 9, epoch: s.ual().epoch(), kind: KIND_NORMAL, durable_behind: 0 };
    encode_record(&mut record, fields, &data);
    s.load(100).unwrap();
    s.ual_mut().device_mut().bytes_mut()[at..at + record.len()].copy_from_slice(&record);
    assert!(matches!(s.load(7), Err(StoreError::Corrupt { index: 7, .. })), "{:?}", s.load(7));
    assert!(matches!(s.entry(7), Err(StoreError::Corrupt { index: 7, .. })));
    assert_eq!(s.entry(8).unwrap().data, &body(8)[..], "its neighbour is served");
}

#[test]
fn a_leader_whose_apply_trails_past_the_logs_memory_reads_committed_entries_from_the_device() {
    // A window of writes in flight larger than the log's memory: 300 proposals (~5 segments)
    // written before any is applied. raft-rs reads committed entries synchronously; the group
    // loads the first one it will ask for before each `Ready`, and the answer ends where the
    // loaded segment does.
    // Entries held for applying without a read-back would cover them all: hold none.
    let cfg = RaftGroupConfig { proposals_pending_max: 400, held_bytes_max: 0, ..super::tests::config(10) };
    let mut group = RaftGroup::new(9, 1, &[1], fresh(), &cfg, 0, &super::tests::logger()).unwrap();
    let mut out = RaftOutput::new(&cfg);
    let mut applied: Vec<CommittedEntry> = Vec::new();
    let mut now = Nanos(0);
    let mut poll = |group: &mut RaftGroup<UalRaftStore<MemoryBlockIo>>, applied: &mut Vec<CommittedEntry>| {
        now = Nanos(now.0 + super::tests::TICK_NS);
        group.on_time(now);
        group.poll(&mut out).unwrap();
        for e in out.committed.drain(..) {
            assert!(e.index <= group.store().durable_index(), "applied before durable");
            applied.push(e);
        }
        out.clear();
    };
    for _ in 0..200 {
        if group.is_leader() && group.applied_index() == group.store().last_index() {
            break;
        }
        poll(&mut group, &mut applied);
    }
    assert!(group.is_leader());
    let first = group.store().last_index() + 1;
    for k in 0..300u64 {
        group.propose(&body(k), k).unwrap();
    }
    let reads_before = group.store().ual().counters().reads;
    for _ in 0..10_000 {
        if group.applied_index() == group.store().last_index() && group.store().last_index() >= first + 299 {
            break;
        }
        poll(&mut group, &mut applied);
    }
    let got: Vec<(u64, Vec<u8>)> = applied.iter().map(|e| (e.index, e.data.clone())).collect();
    let want: Vec<(u64, Vec<u8>)> = (0..300u64).map(|k| (first + k, body(k))).collect();
    assert_eq!(got, want, "every entry applied once, in order, with its bytes");
    assert!(group.store().ual().counters().reads > reads_before, "read back from the device");
    assert_eq!(group.counters().entries_fetched, 0, "a lone voter sends no appends");
}

/// The same trailing apply with the appended entries held (the default): every committed entry is
/// the buffer raft-rs was given at the append, moved to the apply: no device read, no read-back
/// from the log, and nothing held once applied.
#[test]
fn a_leader_applies_committed_entries_from_the_entries_it_holds_without_reading_them_back() {
    let cfg = RaftGroupConfig { proposals_pending_max: 400, ..super::tests::config(10) };
    let mut group = RaftGroup::new(9, 1, &[1], fresh(), &cfg, 0, &super::tests::logger()).unwrap();
    let mut out = RaftOutput::new(&cfg);
    let mut applied = Vec::new();
    let mut now = Nanos(0);
    let mut poll = |group: &mut RaftGroup<UalRaftStore<MemoryBlockIo>>, applied: &mut Vec<(u64, Vec<u8>)>| {
        now = Nanos(now.0 + super::tests::TICK_NS);
        group.on_time(now);
        group.poll(&mut out).unwrap();
        applied.extend(out.committed.drain(..).map(|e| (e.index, e.data)));
        out.clear();
    };
    while !(group.is_leader() && group.applied_index() == group.store().last_index()) {
        poll(&mut group, &mut applied);
    }
    let first = group.store().last_index() + 1;
    let (reads_before, held_before) =
        (group.store().ual().counters().reads, group.counters().entries_from_held);
    for k in 0..300u64 {
        group.propose(&body(k), k).unwrap();
    }
    while group.applied_index() < first + 299 {
        poll(&mut group, &mut applied);
    }
    let want: Vec<(u64, Vec<u8>)> = (0..300u64).map(|k| (first + k, body(k))).collect();
    assert_eq!(
        applied[applied.len() - 300..],
        want[..],
        "every entry applied once, in order, with its bytes"
    );
    assert_eq!(group.counters().entries_from_held - held_before, 300, "all 300 from the held entries");
    assert_eq!(group.store().ual().counters().reads, reads_before, "no device read");
    assert_eq!(group.held_bytes(), 0, "nothing held once applied");
}

#[test]
fn entries_a_snapshot_covers_answer_compacted_on_every_read_path() {
    let mut s = filled(300);
    s.checkpoint(100, Some(b"image".to_vec())).unwrap();
    s.poll_io(Nanos(0)).unwrap();
    for i in [1, 50, 100] {
        assert!(matches!(s.entry(i), Err(StoreError::Compacted { .. })), "entry {i}");
        assert!(matches!(s.prefetch(i), Err(StoreError::Compacted { .. })), "prefetch {i}");
        assert!(matches!(s.load(i), Err(StoreError::Compacted { .. })), "load {i}");
    }
    // raft-rs hears `Compacted` (and sends the snapshot), even where it could wait for a fetch.
    let storage = LogStorage::new(s, RaftGroupConfig::default().held_bytes_max);
    let got = ::raft::Storage::entries(&storage, 50, 120, None, ::raft::GetEntriesContext::empty(true));
    assert!(matches!(got, Err(::raft::Error::Store(::raft::StorageError::Compacted))), "{got:?}");
    assert_eq!(storage.fetch_wanted(), None, "nothing to fetch");
    // After the snapshot, what the log holds is served, asynchronously: a short answer that ends
    // where memory does, then the rest once fetched.
    let got = ::raft::Storage::entries(&storage, 101, 300, None, ::raft::GetEntriesContext::empty(true));
    assert!(
        matches!(got, Err(::raft::Error::Store(::raft::StorageError::LogTemporarilyUnavailable))),
        "{got:?}"
    );
    assert_eq!(storage.fetch_wanted(), Some(101));
    let mut s = storage.into_store();
    assert_eq!(s.prefetch(101), Ok(false));
    s.poll_io(Nanos(0)).unwrap();
    assert_eq!(s.prefetch(101), Ok(true));
    let storage = LogStorage::new(s, RaftGroupConfig::default().held_bytes_max);
    let got =
        ::raft::Storage::entries(&storage, 101, 300, None, ::raft::GetEntriesContext::empty(true)).unwrap();
    assert!(!got.is_empty() && got.len() < 200, "the segment of 101 only: {}", got.len());
    for (k, e) in got.iter().enumerate() {
        assert_eq!((e.index, &e.data[..]), (101 + k as u64, &body(101 + k as u64)[..]));
    }
}
