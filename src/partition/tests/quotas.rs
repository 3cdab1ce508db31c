//! Quotas through a partition (`projection::owner`): the owner and the quota in force travel in
//! the log with each write, so a restart (the log replayed, from a snapshot or from the start)
//! folds exactly the keys and refusals the leader answered, with no quota config at all.

use super::*;
use crate::projection::{Owner, Quota, Usage};

/// A write of `key` by principal 7 under a quota of two keys.
fn write_owned(p: &mut Partition<MemoryBlockIo>, id: u64, key: &[u8]) -> WriteOutcome {
    let owner = Owner { key_id: 7, quota: Some(Quota { keys_max: 2, bytes_max: 1 << 20 }) };
    p.write(Waiter { owner, ..waiter(opcode::SET, id) }, 9, &set_body(key, b"value"))
}

fn results(done: &[Done]) -> Vec<(u64, Result<ApplyResult, Status>)> {
    done.iter().map(|d| (d.waiter.request_id, d.result)).collect()
}

fn quota_survives(snapshot_every_entries: u64) {
    let cfg = config(snapshot_every_entries);
    let mut p = open(&cfg, device(&cfg), None);
    let mut answered = Vec::new();
    for (id, key) in [(1, &b"a"[..]), (2, b"b"), (3, b"c")] {
        assert_eq!(write_owned(&mut p, id, key), WriteOutcome::Later);
        answered.extend(results(&settle(&mut p)));
    }
    assert!(matches!(
        answered[..2],
        [(1, Ok(ApplyResult::Stored { .. })), (2, Ok(ApplyResult::Stored { .. }))]
    ));
    assert_eq!(answered[2], (3, Ok(ApplyResult::QuotaExceeded)));
    assert_eq!(p.counters().quota_exceeded, 1);
    // Anonymous writes are not the principal's: they pass.
    assert_eq!(p.write(waiter(opcode::SET, 4), 9, &set_body(b"c", b"anon")), WriteOutcome::Later);
    settle(&mut p);
    let before = keys(&p);
    let usage = p.kv().usage_of(7);
    assert_eq!(usage, Usage { keys: 2, bytes: 12 });
    let dev = p.into_device();
    let p = open(&cfg, dev, None);
    assert_eq!(keys(&p), before, "the same keys after the log is replayed");
    assert_eq!(p.kv().usage_of(7), usage, "and the same usage: the quota came from the log");
    assert_eq!(get(&p, b"c").map(|(_, v)| v), Ok(b"anon".to_vec()));
}

#[test]
fn quotas_stamped_in_the_log_give_the_same_state_after_a_restart() {
    quota_survives(1_000_000);
}

#[test]
fn quotas_give_the_same_state_after_a_restart_from_a_snapshot() {
    let dir = temp_dir("quota-snapshot");
    let cfg = config(2);
    let mut p = open(&cfg, device(&cfg), snap_file(&dir, false));
    for (id, key) in [(1, &b"a"[..]), (2, b"b"), (3, b"c"), (4, b"d")] {
        write_owned(&mut p, id, key);
        settle(&mut p);
    }
    assert!(p.counters().snapshots > 0, "a snapshot was taken");
    let before = (keys(&p), p.kv().usage_of(7));
    let dev = p.into_device();
    let p = open(&cfg, dev, snap_file(&dir, false));
    assert_eq!((keys(&p), p.kv().usage_of(7)), before);
    let _ = std::fs::remove_dir_all(&dir);
}
