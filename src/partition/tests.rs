//! Tests of a partition over a memory device: a write is answered once committed, retries are
//! answered from the client table, a crash (the device's bytes as they are) loses no acknowledged
//! write, snapshots recycle the log and recovery loads them, and a log that cannot checkpoint
//! refuses writes with BUSY instead of failing.

use super::*;
use crate::kv::protocol::encode_write_body;
use crate::kv::Op;
use crate::log::Ual;
use crate::serve::snapfile::{SnapshotFile, SnapshotWriter};
use crate::wire::opcode;
use vigil_pmd::block::memory::MemoryBlockIo;

fn config(snapshot_every_entries: u64) -> PartitionConfig {
    config_with(snapshot_every_entries)
}

fn config_with(snapshot_every_entries: u64) -> PartitionConfig {
    config_sized(16, snapshot_every_entries)
}

/// Partition 0's snapshot file in `dir`, written inline (`background`: by a writer thread).
fn snap_file(dir: &std::path::Path, background: bool) -> Snapshots {
    let file = SnapshotFile::new(dir, 0);
    if background {
        Some(Box::new(SnapshotWriter::spawn(file, 0).expect("writer thread")))
    } else {
        Some(Box::new(file))
    }
}

/// A one-voter partition over a small log of 8 segments of `segment_blocks` blocks, KV's small
/// limits (for this crate's tests).
pub(crate) fn config_sized(segment_blocks: u32, snapshot_every_entries: u64) -> PartitionConfig {
    PartitionConfig {
        ual: UalConfig {
            segment_blocks,
            segment_count: 8,
            write_blocks_max: 16,
            writes_in_flight_max: 4,
            format_if_blank: true,
            atomic_write_bytes: crate::log::ATOMIC_WRITE_BLOCK,
        },
        raft: RaftGroupConfig::default(),
        kv: KvLimits::small(),
        projections: Default::default(),
        snapshot_every_entries,
        node_id: 1,
        voters: vec![1],
        batch: crate::partition::batch::BatchLimits::default(),
        inflight_bytes_max: u64::from(segment_blocks) * 4096 / 2,
        follower_read_staleness_ns: 0,
        quiesce_idle: true,
    }
}

fn device(cfg: &PartitionConfig) -> MemoryBlockIo {
    MemoryBlockIo::new(cfg.ual.device_blocks(), 16)
}

fn peer() -> Peer {
    crate::dispatch::tests::test_peer()
}

fn waiter(opcode: u8, request_id: u64) -> Waiter {
    Waiter {
        origin: Origin::Client { peer: peer(), client_id: 9, arrived: Nanos(0) },
        opcode,
        request_id,
        owner: Default::default(),
    }
}

fn set_body(key: &[u8], value: &[u8]) -> Vec<u8> {
    let op = Op::Set { key, value };
    let mut out = vec![0; crate::kv::protocol::request_body_len(&op)];
    encode_write_body(&op, &mut out).unwrap();
    out
}

/// Polls until nothing is in flight (bounded: a background snapshot write takes real time);
/// returns every `Done`.
fn settle<D: BlockIo>(p: &mut Partition<D>) -> Vec<Done> {
    let mut done = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    for i in 0.. {
        if !p.poll(Nanos(i), &mut |d| done.push(d)) {
            return done;
        }
        assert!(std::time::Instant::now() < deadline, "partition never settled: {p:?}");
    }
    unreachable!()
}

fn open(cfg: &PartitionConfig, dev: MemoryBlockIo, file: Snapshots) -> Partition<MemoryBlockIo> {
    let (mut p, _) = Partition::open(0, dev, cfg, file).unwrap();
    settle(&mut p);
    assert!(p.serves_reads(), "a single voter leads and catches up at once");
    p
}

fn get(p: &Partition<MemoryBlockIo>, key: &[u8]) -> Result<(u64, Vec<u8>), Status> {
    let mut out = [0u8; 2048];
    let n = p.get(key, &mut out)?;
    Ok((u64::from_le_bytes(out[..8].try_into().unwrap()), out[8..n].to_vec()))
}

#[test]
fn a_write_is_answered_once_committed_and_then_read() {
    let cfg = config(1_000_000);
    let mut p = open(&cfg, device(&cfg), None);
    assert_eq!(p.write(waiter(opcode::SET, 1), 9, &set_body(b"k", b"v1")), WriteOutcome::Later);
    assert_eq!(get(&p, b"k"), Err(Status::NotFound), "not applied before it commits");
    let done = settle(&mut p);
    assert_eq!(done.len(), 1);
    let Ok(ApplyResult::Stored { version }) = done[0].result else { panic!("{done:?}") };
    assert_eq!(done[0].waiter, waiter(opcode::SET, 1));
    assert_eq!(get(&p, b"k"), Ok((version, b"v1".to_vec())));
    assert!(p.raft().store().ual().durable_lsn() >= version >> 16, "answered only once durable");
    // The same request again: the client table answers with the original result, nothing logged;
    // the same request id for another command is refused (issue 8: it got the original answer).
    let proposed = p.counters().proposed;
    assert_eq!(
        p.write(waiter(opcode::SET, 1), 9, &set_body(b"k", b"v1")),
        WriteOutcome::Now(ApplyResult::Stored { version })
    );
    assert_eq!(
        p.write(waiter(opcode::SET, 1), 9, &set_body(b"k", b"other")),
        WriteOutcome::Now(ApplyResult::SequenceReused { last_seq: 1 })
    );
    assert_eq!(p.counters().proposed, proposed);
    assert_eq!(p.write(waiter(opcode::SET, 2), 9, b"\x05"), WriteOutcome::Refused(Status::BadRequest));
    let too_long = vec![b'x'; KvLimits::small().value_bytes_max + 1];
    assert_eq!(
        p.write(waiter(opcode::SET, 3), 9, &set_body(b"k", &too_long)),
        WriteOutcome::Now(ApplyResult::ValueTooLarge)
    );
}

#[test]
fn a_crash_loses_no_acknowledged_write() {
    let cfg = config(1_000_000);
    let mut p = open(&cfg, device(&cfg), None);
    let mut acked = Vec::new();
    for i in 0..200u64 {
        let key = format!("key-{i}");
        assert_eq!(
            p.write(waiter(opcode::SET, i + 1), 9, &set_body(key.as_bytes(), b"value")),
            WriteOutcome::Later
        );
        if i % 7 == 0 {
            for d in settle(&mut p) {
                acked.push(d);
            }
        }
    }
    // The last writes are proposed but never polled: lost or kept, they were never acknowledged.
    let dev = p.into_device();
    let p = open(&cfg, dev, None);
    assert!(!acked.is_empty());
    for d in acked {
        let key = format!("key-{}", d.waiter.request_id - 1);
        let Ok(ApplyResult::Stored { version }) = d.result else { panic!("{d:?}") };
        assert_eq!(get(&p, key.as_bytes()), Ok((version, b"value".to_vec())), "{key}");
    }
}

#[test]
fn snapshots_recycle_the_log_and_recovery_starts_from_them() {
    snapshots_recycle_the_log(false);
}

#[test]
fn snapshots_written_by_the_writer_thread_recycle_the_log_too() {
    snapshots_recycle_the_log(true);
}

fn snapshots_recycle_the_log(background: bool) {
    let dir = std::env::temp_dir().join(format!("vigil-partition-snap-{}-{background}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = config_with(50);
    let file = || snap_file(&dir, background);
    let mut p = open(&cfg, device(&cfg), file());
    // Far more than the 8-segment ring holds without recycling (16 blocks each, ~60 records a block).
    let value = vec![b'v'; 200];
    for i in 0..3000u64 {
        let key = format!("k{}", i % 100);
        assert_eq!(
            p.write(waiter(opcode::SET, i + 1), 9, &set_body(key.as_bytes(), &value)),
            WriteOutcome::Later
        );
        settle(&mut p);
    }
    assert!(p.counters().snapshots >= 3000 / 50 - 1, "{:?}", p.counters());
    assert!(p.raft().store().ual().first_lsn() > 1000, "old segments were recycled");
    let before: Vec<_> = p.kv().iter().map(|(k, v, ver)| (k.to_vec(), v.to_vec(), ver)).collect();
    let (p, report) = Partition::open(0, p.into_device(), &cfg, file()).unwrap();
    assert!(report.snapshot_index.unwrap() > 2900, "{report}");
    let mut p = p;
    settle(&mut p);
    let after: Vec<_> = p.kv().iter().map(|(k, v, ver)| (k.to_vec(), v.to_vec(), ver)).collect();
    assert_eq!(before, after);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_log_that_cannot_checkpoint_refuses_writes_with_busy_and_keeps_serving_reads() {
    let cfg = config(1_000_000);
    // The snapshot file cannot be written (its directory does not exist): no checkpoint, no recycling.
    let missing = std::env::temp_dir().join(format!("vigil-missing-{}/nope", std::process::id()));
    let mut p = open(&cfg, device(&cfg), Some(Box::new(SnapshotFile::new(&missing, 0))));
    let value = vec![b'v'; 500];
    let mut busy = 0;
    let mut last_acked = None;
    for i in 0..5000u64 {
        match p.write(waiter(opcode::SET, i + 1), 9, &set_body(b"k", &value)) {
            WriteOutcome::Later => {
                for d in settle(&mut p) {
                    assert!(d.result.is_ok(), "{d:?}");
                    last_acked = Some(d.waiter.request_id);
                }
            }
            WriteOutcome::Refused(Status::Busy) => busy += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(busy > 0, "the ring filled and writes were refused");
    assert!(p.counters().snapshot_failures > 0);
    assert!(last_acked.is_some());
    assert_eq!(get(&p, b"k").map(|(_, v)| v), Ok(value), "reads still served");
}

#[test]
fn writes_wait_while_applying_lags_a_segment_behind_the_log() {
    // Applying only 4 entries a poll while 40 writes arrive between polls: without back-pressure the
    // entries to apply would fall out of the two segment images in memory, and raft-rs, which reads
    // them back from the store, would find them unavailable (it panics).
    let mut cfg = config(1_000_000);
    cfg.raft.committed_per_poll_max = 4;
    let mut p = open(&cfg, device(&cfg), None);
    let value = vec![b'v'; 300];
    let (mut later, mut busy, mut done) = (0u64, 0u64, 0u64);
    for round in 0..300u64 {
        for i in 0..40u64 {
            let id = round * 40 + i + 1;
            match p.write(waiter(opcode::SET, id), 9, &set_body(format!("k{}", id % 50).as_bytes(), &value)) {
                WriteOutcome::Later => later += 1,
                WriteOutcome::Refused(Status::Busy) => busy += 1,
                other => panic!("{other:?}"),
            }
        }
        p.poll(Nanos(round), &mut |d| {
            assert!(d.result.is_ok(), "{d:?}");
            done += 1;
        });
    }
    done += settle(&mut p).len() as u64;
    assert!(busy > 0, "applying fell behind and writes were refused");
    assert!(later > 1000, "{later}");
    assert_eq!(done, later, "every accepted write was answered");
}

// ---------------------------------------------------------------------------------------------
// Damaged records at start-up: covered ones are skipped, live ones refuse the start with nothing
// written, and the operator's repair cuts them.

use crate::log::tests::shared::Shared;
use repair::{repair, RepairOutcome};

/// The device offset of record `lsn` of a log held in `bytes` (found on a copy, so nothing is
/// written to the original).
fn offset_of(bytes: &[u8], ual: UalConfig, lsn: u64) -> usize {
    let mut dev = MemoryBlockIo::new((bytes.len() / BLOCK_SIZE) as u64, 16);
    dev.bytes_mut().copy_from_slice(bytes);
    let (mut log, _) = Ual::open(dev, ual).unwrap();
    log.device_offset(lsn).unwrap() as usize
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-partition-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `n` keys `k0..` one at a time (each acknowledged before the next).
fn write_keys<D: BlockIo>(p: &mut Partition<D>, n: u64) {
    for i in 0..n {
        let key = format!("k{i}");
        assert_eq!(
            p.write(waiter(opcode::SET, i + 1), 9, &set_body(key.as_bytes(), b"value")),
            WriteOutcome::Later
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut t = 0;
        while p.poll(Nanos(t), &mut |_| {}) {
            t += 1;
            assert!(std::time::Instant::now() < deadline);
        }
    }
}

fn keys<D: BlockIo>(p: &Partition<D>) -> Vec<(Vec<u8>, Vec<u8>, u64)> {
    p.kv().iter().map(|(k, v, ver)| (k.to_vec(), v.to_vec(), ver)).collect()
}

#[test]
fn a_damaged_record_the_snapshot_covers_does_not_stop_the_start() {
    let dir = temp_dir("covered");
    let cfg = config(50);
    let file = || snap_file(&dir, false);
    let shared = Shared::new(device(&cfg));
    let (mut p, _) = Partition::open(0, shared.clone(), &cfg, file()).unwrap();
    write_keys(&mut p, 1030);
    let before = keys(&p);
    let (first, snap) = (p.raft().store().ual().first_lsn(), p.raft().store().ual().snapshot().0);
    drop(p);
    // A record the snapshot covers, blocks away from the first live one.
    assert!(snap > first + 150, "records the snapshot covers are still in the log: {first}..={snap}");
    let covered = first + (snap - first) / 2;
    let at = offset_of(&shared.bytes(), cfg.ual, covered);
    shared.flip(at + 40, 0x10);
    let (mut p, report) = Partition::open(0, shared.clone(), &cfg, file()).expect("covered damage starts");
    assert_eq!(report.log.skipped.map(|s| s.first_lsn), Some(covered), "{report}");
    settle(&mut p);
    assert_eq!(keys(&p), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_damaged_acknowledged_record_refuses_the_start_changes_nothing_and_repair_cuts_it() {
    let dir = temp_dir("corrupt");
    let cfg = config(1_000_000);
    let file = || snap_file(&dir, false);
    let shared = Shared::new(device(&cfg));
    let (mut p, _) = Partition::open(0, shared.clone(), &cfg, file()).unwrap();
    write_keys(&mut p, 200);
    drop(p);
    let bad = 120;
    let at = offset_of(&shared.bytes(), cfg.ual, bad);
    shared.flip(at + 33, 0x01);
    std::fs::write(dir.join("partition-0.snap.tmp"), b"leftover").unwrap();
    let bytes = shared.bytes();
    let err = Partition::open(0, shared.clone(), &cfg, file()).expect_err("refused");
    let PartitionError::Corrupt { partition: 0, report } = &err else { panic!("{err}") };
    assert_eq!(report.first_bad_lsn, bad);
    let line = err.to_string();
    assert!(
        line.contains("partition 0") && line.contains("record 120") && line.contains("vigil repair"),
        "{line}"
    );
    assert!(shared.bytes() == bytes, "a refused start wrote to the log");
    assert!(dir.join("partition-0.snap.tmp").exists(), "a refused start removed the leftover .tmp");
    // The operator looks, then accepts the loss.
    let mut snap = SnapshotFile::new(&dir, 0);
    let found = repair(0, || Ok(shared.clone()), cfg.ual, &cfg, Some(&mut snap), false).unwrap();
    assert!(matches!(found, RepairOutcome::Corrupt(r) if r.first_bad_lsn == bad));
    assert!(shared.bytes() == bytes, "repair without --accept-loss wrote to the log");
    let cut = repair(0, || Ok(shared.clone()), cfg.ual, &cfg, Some(&mut snap), true).unwrap();
    let RepairOutcome::Cut(r, log) = cut else { panic!("{cut:?}") };
    assert_eq!((r.first_bad_lsn, log.last_lsn), (bad, bad - 1));
    let (mut p, _) = Partition::open(0, shared.clone(), &cfg, file()).expect("starts after the repair");
    settle(&mut p);
    assert!(!dir.join("partition-0.snap.tmp").exists());
    // Every key written by an entry before the damaged one is there (entry 1 is the leader's).
    let mut out = [0u8; 64];
    for i in 0..(bad - 2) {
        assert!(p.get(format!("k{i}").as_bytes(), &mut out).is_ok(), "k{i} lost");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_snapshot_that_does_not_belong_to_the_log_is_refused_with_nothing_written() {
    let dir = temp_dir("mismatch");
    let cfg = config(50);
    let file = || snap_file(&dir, false);
    let (mut p, _) = Partition::open(0, device(&cfg), &cfg, file()).unwrap();
    write_keys(&mut p, 120);
    drop(p);
    // A fresh log with that snapshot file: the snapshot covers far more than the log holds.
    let shared = Shared::new(device(&cfg));
    let (p, _) = Partition::open(0, shared.clone(), &cfg, None).unwrap();
    drop(p);
    std::fs::write(dir.join("partition-0.snap.tmp"), b"leftover").unwrap();
    let bytes = shared.bytes();
    let err = Partition::open(0, shared.clone(), &cfg, file()).expect_err("refused");
    assert!(matches!(err, PartitionError::Snapshot { .. }), "{err}");
    assert!(shared.bytes() == bytes, "a refused start wrote to the log");
    assert!(dir.join("partition-0.snap.tmp").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_damaged_or_missing_snapshot_file_is_refused_by_name_with_nothing_written() {
    let dir = temp_dir("snapfile-damage");
    let cfg = config(50);
    let file = || snap_file(&dir, false);
    let shared = Shared::new(device(&cfg));
    let (mut p, _) = Partition::open(0, shared.clone(), &cfg, file()).unwrap();
    // Enough entries that snapshots recycled the log: the snapshot file is needed to start.
    write_keys(&mut p, 1500);
    assert!(p.raft().store().ual().first_lsn() > 100, "the log was recycled");
    let keys = p.kv().len();
    drop(p);
    let path = dir.join("partition-0.snap");
    let good = std::fs::read(&path).unwrap();
    let log = shared.bytes();

    let mut bad = good.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x01;
    std::fs::write(&path, &bad).unwrap();
    let err = Partition::open(0, shared.clone(), &cfg, file()).expect_err("a damaged snapshot is refused");
    assert!(matches!(err, PartitionError::Snapshot { .. }), "{err}");
    assert!(err.to_string().contains("partition-0.snap"), "names the file: {err}");
    assert!(shared.bytes() == log, "a refused start wrote to the log");

    std::fs::remove_file(&path).unwrap();
    let err = Partition::open(0, shared.clone(), &cfg, file()).expect_err("a missing snapshot is refused");
    assert!(err.to_string().contains("partition-0.snap"), "names the file: {err}");
    assert!(shared.bytes() == log, "a refused start wrote to the log");

    std::fs::write(&path, &good).unwrap();
    let (mut p, report) = Partition::open(0, shared, &cfg, file()).unwrap();
    settle(&mut p);
    assert_eq!(p.kv().len(), keys, "{report}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_read_error_during_the_replay_refuses_the_start_with_nothing_written() {
    let dir = temp_dir("replay-read-error");
    let cfg = config(1_000_000);
    let file = || snap_file(&dir, false);
    let shared = Shared::new(device(&cfg));
    let (mut p, _) = Partition::open(0, shared.clone(), &cfg, file()).unwrap();
    write_keys(&mut p, 2500);
    let before = keys(&p);
    let last = p.raft().store().ual().last_lsn();
    drop(p);
    let tail_block = offset_of(&shared.bytes(), cfg.ual, last) / BLOCK_SIZE;
    let segment = cfg.ual.segment_blocks as usize;
    assert!(tail_block >= 2 + 2 * segment, "the log must outgrow the two in-memory segments");
    // The scan reads the first segment (block 2, after the superblocks) once; the replay reads it
    // again, as it is no longer in memory: that second read fails.
    shared.fail_read(2, 1);
    let bytes = shared.bytes();
    let err = Partition::open(0, shared.clone(), &cfg, file()).expect_err("a failed read refuses the start");
    assert!(!shared.read_failure_armed(), "the failing read never happened: {err}");
    assert!(err.to_string().contains("read error"), "{err}");
    assert!(shared.bytes() == bytes, "a start refused by a read error wrote to the log first: {err}");
    let (mut p, report) = Partition::open(0, shared.clone(), &cfg, file()).expect("the next start succeeds");
    settle(&mut p);
    assert_eq!(keys(&p), before, "{report}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pending_says_nothing_when_idle_and_never_device_for_a_device_without_a_descriptor() {
    let cfg = config(1_000_000);
    let mut p = open(&cfg, device(&cfg), None);
    assert_eq!(p.pending(), Pending::Nothing);
    assert_eq!(p.write(waiter(opcode::SET, 1), 9, &set_body(b"k", b"v")), WriteOutcome::Later);
    // The open batch is the partition's own work (the next poll proposes it).
    assert_eq!(p.pending(), Pending::Work);
    settle(&mut p);
    assert_eq!(p.pending(), Pending::Nothing);
}

mod candles;
mod cluster;
mod projections;
mod quotas;

/// Polls at time `t` (ns) until nothing is in flight; returns every `Done`.
fn settle_at<D: BlockIo>(p: &mut Partition<D>, t: u64) -> Vec<Done> {
    let mut done = Vec::new();
    for _ in 0..10_000 {
        if !p.poll(Nanos(t), &mut |d| done.push(d)) {
            return done;
        }
    }
    panic!("partition never settled: {p:?}");
}

/// Key expiry through the partition: relative TTLs from the batch's timestamp, SETX with GET
/// answered with the old value (`Done::value`), TTL read at the request's time, and the leader's
/// EXPIRE_DUE returning an expired key's memory with no write coming.
#[test]
fn keys_expire_by_the_entry_time_and_the_leader_reclaims_them() {
    use crate::kv::{set_flags, Command, Ttl};
    let cfg = config(1_000_000);
    let mut p = open(&cfg, device(&cfg), None);
    let t0: u64 = 1_700_000_000_000; // ms
    let ns = |ms: u64| ms * 1_000_000;
    settle_at(&mut p, ns(t0));
    let setx = |value: &'static [u8], seq| Command {
        client_id: 9,
        seq,
        op: Op::SetX { key: b"k", value, flags: set_flags::GET, ttl: Ttl::RelativeMs(100) },
    };
    assert_eq!(p.write_command(waiter(opcode::SETX, 1), &setx(b"v1", 1)), WriteOutcome::Later);
    let done = settle_at(&mut p, ns(t0));
    assert!(matches!(done[0].result, Ok(ApplyResult::SetX { stored: true, existed: false, .. })), "{done:?}");
    assert_eq!(done[0].value, None);
    assert_eq!(p.write_command(waiter(opcode::SETX, 2), &setx(b"v2", 2)), WriteOutcome::Later);
    let done = settle_at(&mut p, ns(t0 + 10));
    let old = done[0].value.as_deref().expect("the old value comes with the answer");
    assert_eq!(KvProjection::value_of(old), b"v1");
    let mut out = [0u8; 64];
    let n = p.read_kv(opcode::TTL, b"k", t0 + 50, &mut out).unwrap();
    assert_eq!(i64::from_le_bytes(out[..n].try_into().unwrap()), 60, "deadline from the entry's time");
    assert_eq!(p.read_kv(opcode::GET, b"k", t0 + 111, &mut out), Err(Status::NotFound));
    assert_eq!(p.kv().len(), 1, "still in memory");
    settle_at(&mut p, ns(t0 + 200));
    assert_eq!((p.kv().len(), p.kv().expiring()), (0, 0), "reclaimed with no write");
    assert_eq!(p.counters().expiry_proposals, 1);
}
