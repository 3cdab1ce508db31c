//! Tests of a partition over a memory device: a write is answered once committed, retries are
//! answered from the client table, a crash (the device's bytes as they are) loses no acknowledged
//! write, snapshots recycle the log and recovery loads them, and a log that cannot checkpoint
//! refuses writes with BUSY instead of failing.

use super::*;
use crate::kv::protocol::encode_write_body;
use crate::kv::Op;
use crate::wire::opcode;
use vigil_pmd::block::memory::MemoryBlockIo;

fn config(snapshot_every_entries: u64) -> PartitionConfig {
    config_with(snapshot_every_entries, false)
}

fn config_with(snapshot_every_entries: u64, snapshot_in_background: bool) -> PartitionConfig {
    PartitionConfig {
        ual: UalConfig {
            segment_blocks: 16,
            segment_count: 8,
            write_blocks_max: 16,
            writes_in_flight_max: 4,
            format_if_blank: true,
        },
        raft: RaftGroupConfig::default(),
        kv: KvLimits::small(),
        snapshot_every_entries,
        node_id: 1,
        voters: vec![1],
        snapshot_in_background,
    }
}

fn device(cfg: &PartitionConfig) -> MemoryBlockIo {
    MemoryBlockIo::new(cfg.ual.device_blocks(), 16)
}

fn peer() -> Peer {
    crate::dispatch::tests::test_peer()
}

fn waiter(opcode: u8, request_id: u64) -> Waiter {
    Waiter { origin: Origin::Client { peer: peer(), client_id: 9 }, opcode, request_id }
}

fn set_body(key: &[u8], value: &[u8]) -> Vec<u8> {
    let op = Op::Set { key, value };
    let mut out = vec![0; crate::kv::protocol::request_body_len(&op)];
    encode_write_body(&op, &mut out).unwrap();
    out
}

/// Polls until nothing is in flight (bounded: a background snapshot write takes real time);
/// returns every `Done`.
fn settle(p: &mut Partition<MemoryBlockIo>) -> Vec<Done> {
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

fn open(cfg: &PartitionConfig, dev: MemoryBlockIo, file: Option<SnapshotFile>) -> Partition<MemoryBlockIo> {
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
    assert!(p.raft().store().ual().durable_lsn() >= version, "answered only once durable");
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
    let cfg = config_with(50, background);
    let file = || Some(SnapshotFile::new(&dir, 0));
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
    let mut p = open(&cfg, device(&cfg), Some(SnapshotFile::new(&missing, 0)));
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
