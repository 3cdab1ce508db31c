//! The candle store at the partition: LIGHT through the log with the leader's stamp, reads at the
//! request's time, the leader's ROTATE with no write coming, a restart in the middle of a day
//! (snapshot + log give back the same ids, GET answers and counts), and the log segments that
//! held only expired candles recycled once a snapshot covers them.

use super::*;
use crate::candle::command::tests::slot_with;
use crate::candle::command::{light_len, write_light};
use crate::candle::ring::{CandleId, CandleLimits, DAY_MS, DAY_NS};
use crate::candle::CandleProjection;
use crate::projection::{CommandHeader, Projection};
use std::sync::Arc;

fn candle_config(snapshot_every_entries: u64) -> PartitionConfig {
    let limits = CandleLimits { candles_per_day_max: 10_000, ..CandleLimits::small() };
    let maker: crate::projection::ProjectionMaker = Arc::new(move || Box::new(CandleProjection::new(limits)));
    let mut cfg = config_with(snapshot_every_entries);
    cfg.projections = cfg.projections.with(maker);
    cfg
}

/// A LIGHT from client 9 with sequence number `seq`, of city `city`, its prayer in overflow when
/// `seq` is a multiple of 3.
fn light_command(seq: u64, city: u16) -> Vec<u8> {
    let prayer = [seq as u8; 150];
    let (slot, overflow) = if seq.is_multiple_of(3) {
        (slot_with([Some(b"jo"), Some(b"av"), None], city, 7), [None, None, Some(&prayer[..])])
    } else {
        (slot_with([Some(b"jo"), Some(b"av"), Some(b"amem")], city, 7), [None; 3])
    };
    let mut out = vec![0u8; light_len(&overflow)];
    write_light(CommandHeader { kind: 0, client_id: 9, seq }, &slot, overflow, &mut out);
    out
}

fn light_waiter(seq: u64) -> Waiter {
    Waiter {
        origin: Origin::Client { peer: peer(), client_id: 9, arrived: Nanos(0) },
        opcode: opcode::CANDLE_LIGHT,
        request_id: seq,
        owner: Default::default(),
    }
}

/// Polls from `t` (ns) until nothing is in flight; returns every `Done` and the clock reached.
fn settle_at(p: &mut Partition<MemoryBlockIo>, mut t: u64) -> (Vec<Done>, u64) {
    let mut done = Vec::new();
    for _ in 0..100_000 {
        if !p.poll(Nanos(t), &mut |d| done.push(d)) {
            return (done, t);
        }
        t += 1;
    }
    panic!("partition never settled: {p:?}");
}

/// Lights candle `seq` at `t` and waits for its id.
fn light(p: &mut Partition<MemoryBlockIo>, seq: u64, t: u64) -> u64 {
    p.poll(Nanos(t), &mut |_| {});
    assert_eq!(p.light(light_waiter(seq), &light_command(seq, (seq % 11) as u16)), WriteOutcome::Later);
    let (mut done, _) = settle_at(p, t);
    // A ROTATE proposed on the way answers nobody (the shard drops internal answers).
    done.retain(|d| d.waiter.origin != Origin::Internal);
    match done.as_slice() {
        [Done { result: Ok(ApplyResult::Lit { id }), .. }] => *id,
        other => panic!("{other:?}"),
    }
}

/// What the clients see at `now_ms`: GET of each id, COUNT, the counts by state, the first page.
fn view(p: &Partition<MemoryBlockIo>, ids: &[u64], now_ms: u64) -> Vec<Result<Vec<u8>, Status>> {
    let mut out = vec![0u8; 16 * 1024];
    let mut read =
        |op: u8, body: &[u8]| p.read_candles(op, body, now_ms, &mut out).map(|n| out[..n].to_vec());
    let mut seen: Vec<_> = ids.iter().map(|id| read(opcode::CANDLE_GET, &id.to_le_bytes())).collect();
    seen.push(read(opcode::CANDLE_COUNT, &[]));
    seen.push(read(opcode::CANDLE_COUNT_STATES, &[]));
    seen.push(read(opcode::CANDLE_COUNT_CITY, &3u16.to_le_bytes()));
    let mut page = u64::MAX.to_le_bytes().to_vec();
    page.extend_from_slice(&50u16.to_le_bytes());
    seen.push(read(opcode::CANDLE_LIST, &page));
    seen
}

fn section(p: &Partition<MemoryBlockIo>) -> Vec<u8> {
    let mut out = Vec::new();
    p.candles().unwrap().write_snapshot(&mut out);
    out
}

const DAY3: u64 = 3 * DAY_NS + 3_600 * 1_000_000_000;

#[test]
fn a_light_is_stamped_by_the_leader_and_a_retry_gets_the_same_id() {
    let cfg = candle_config(1_000_000);
    let mut p = open(&cfg, device(&cfg), None);
    let id = light(&mut p, 1, DAY3);
    assert_eq!(CandleId(id), CandleId::new(3, 0));
    // The same request again: the client table's answer, nothing logged.
    assert_eq!(p.light(light_waiter(1), &light_command(1, 1)), WriteOutcome::Now(ApplyResult::Lit { id }));
    assert_eq!(
        p.light(light_waiter(2), &[opcode::CANDLE_LIGHT, 1]),
        WriteOutcome::Now(ApplyResult::Malformed)
    );
    assert_eq!(p.light(light_waiter(2), &[opcode::SET; 40]), WriteOutcome::Refused(Status::BadRequest));
    let seen = view(&p, &[id], DAY3 / 1_000_000);
    let slot = crate::candle::Slot(seen[0].as_ref().unwrap()[..128].try_into().unwrap());
    assert!((DAY3 / 1_000_000_000..DAY3 / 1_000_000_000 + 1).contains(&u64::from(slot.lit_at())));
    assert_eq!(p.read_candles(opcode::CANDLE_COUNT, &[], 10 * DAY_MS, &mut [0; 8]), Ok(8));
    let plain = open(&config(1_000_000), device(&config(1_000_000)), None);
    assert!(plain.candles().is_none());
    assert_eq!(plain.read_candles(opcode::CANDLE_COUNT, &[], 0, &mut [0; 8]), Err(Status::UnknownOpcode));
}

#[test]
fn the_leader_rotates_out_expired_buckets_with_no_write_coming() {
    let cfg = candle_config(1_000_000);
    let mut p = open(&cfg, device(&cfg), None);
    let ids: Vec<u64> = (1..=5).map(|seq| light(&mut p, seq, DAY3 + seq)).collect();
    let (_, t) = settle_at(&mut p, DAY3 + 100);
    assert_eq!(p.candles().unwrap().len(), 5);
    assert_eq!(p.counters().rotation_proposals, 0, "nothing due yet");
    // Days pass with no write: the first poll past the start of day 10 proposes a ROTATE.
    let (done, _) = settle_at(&mut p, t.max(10 * DAY_NS));
    let internal = |d: &Done| d.waiter.origin == Origin::Internal && d.waiter.opcode == opcode::CANDLE_ROTATE;
    assert!(done.len() == 1 && internal(&done[0]), "the ROTATE answers nobody: {done:?}");
    assert_eq!(done[0].result, Ok(ApplyResult::Rotated { buckets: 1 }));
    assert_eq!(p.counters().rotation_proposals, 1);
    let candles = p.candles().unwrap();
    assert!(candles.is_empty() && candles.ring().memory() == 0, "the bucket's memory is back");
    assert_eq!(view(&p, &ids[..1], 10 * DAY_MS)[0], Err(Status::NotFound));
    settle_at(&mut p, 11 * DAY_NS);
    assert_eq!(p.counters().rotation_proposals, 1, "nothing more is due");
}

#[test]
fn a_restart_in_the_middle_of_a_day_gives_back_the_same_ids_answers_and_counts() {
    let dir = temp_dir("candles-restart");
    let cfg = candle_config(1_000_000);
    let file = || snap_file(&dir, false);
    let mut p = open(&cfg, device(&cfg), file());
    let mut ids: Vec<u64> = (1..=700).map(|seq| light(&mut p, seq, DAY3 + seq * 1_000)).collect();
    // Candles of the day before, in the snapshot; then more of day 3 in the log only.
    p.snapshot_now();
    settle_at(&mut p, DAY3 + 10_000_000);
    assert_eq!(p.counters().snapshots, 1);
    ids.extend((701..=900).map(|seq| light(&mut p, seq, DAY3 + 20_000_000 + seq * 1_000)));
    let now_ms = DAY3 / 1_000_000 + 60_000;
    let before = view(&p, &ids, now_ms);
    let section_before = section(&p);
    let p2 = open(&cfg, p.into_device(), file());
    assert_eq!(view(&p2, &ids, now_ms), before, "same GET answers, counts and pages");
    assert_eq!(section(&p2), section_before, "the same ring, byte for byte");
    let mut p2 = p2;
    assert_eq!(CandleId(light(&mut p2, 901, DAY3 + 900_000_000)), CandleId::new(3, 900), "ids go on");
    assert_eq!(view(&p2, &ids[..1], 10 * DAY_MS)[0], Err(Status::NotFound), "and still expire");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn log_segments_that_hold_only_expired_candles_are_recycled() {
    let dir = temp_dir("candles-recycle");
    let cfg = candle_config(40);
    let file = || snap_file(&dir, false);
    let mut p = open(&cfg, device(&cfg), file());
    let mut seq = 0;
    let mut last_lsn_of_day = Vec::new();
    // Twelve days of candles, far more than the 8-segment ring holds without recycling.
    for day in 3..15u64 {
        for _ in 0..150 {
            seq += 1;
            light(&mut p, seq, day * DAY_NS + seq);
        }
        last_lsn_of_day.push((day, p.raft().applied_index()));
    }
    let first_lsn = p.raft().store().ual().first_lsn();
    let today = 14;
    for (day, lsn) in &last_lsn_of_day {
        if day + 7 <= today {
            assert!(*lsn < first_lsn, "day {day}'s candles expired and their segments were recycled");
        }
    }
    let candles = p.candles().unwrap();
    assert_eq!(candles.len(), 7 * 150, "only the last seven days are kept");
    assert!(p.counters().snapshots > 10, "{:?}", p.counters());
    let before = section(&p);
    let p = open(&cfg, p.into_device(), file());
    assert_eq!(section(&p), before, "recovered from the last snapshot and the log after it");
    assert_eq!(p.candles().unwrap().ring().today(), 14);
    std::fs::remove_dir_all(&dir).unwrap();
}
