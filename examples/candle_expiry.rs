//! Expiry cost against the number of candles in the bucket: fills one day's bucket of a
//! `CandleProjection` with N candles (2% of them with a prayer in the overflow pool), then times
//! the ROTATE applied at the start of day D+7 that drops it, for N = 1k, 10k, 100k, 1M. The drop
//! moves the bucket's block lists to the ring's spares (no record visited, nothing freed) and frees
//! its counters: it should stay flat while N grows 1000-fold. Also timed: the upkeep that gives the
//! spares back when no bucket needs them, one block (64 KiB or 16 KiB) a call, called by the
//! partition only while no request waits: its total (which grows with the bytes, as any free
//! does) and its longest single call (what an idle poll can take).
//!
//! Baselines, in the same run: the per-record expiry a store without buckets would do, removing
//! the same N candles' ids from a `HashMap<u64, [u8; 128]>` (one 128-byte record each); and the
//! floor of giving the memory back at all, freeing the same bytes (N x 128 B plus the overflow
//! values) held in 64 KiB blocks written in full (`Vec<Box<[u8]>>`): what is left once no record
//! is visited is the allocator and the kernel taking the pages back, which grows with the bytes.
//!
//! `cargo run --release --example candle_expiry [REPEATS]` (default 5; the median is printed)

mod candle_support;

use candle_support::{random_slot, Rng};
use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};
use vigil::candle::command::{light_len, write_light, write_rotate, ROTATE_LEN};
use vigil::candle::ring::{CandleLimits, DAY_NS};
use vigil::candle::CandleProjection;
use vigil::projection::{Applied, ApplyResult, CommandHeader, LogPos, Projection};

/// The day the bucket is filled on (days since 1970-01-01).
const DAY: u64 = 20_000;

/// A projection whose bucket of `DAY` holds `n` candles; the next LSN.
fn filled(n: u64) -> (CandleProjection, u64) {
    let limits = CandleLimits {
        candles_per_day_max: u32::try_from(n).expect("fits a u32"),
        overflow_bytes_per_field_day_max: 16 << 20,
        list_page_max: 100,
    };
    let mut p = CandleProjection::new(limits);
    let mut rng = Rng(0x7b7d_957d_12c4_e0a2);
    let mut command = vec![0u8; 4096];
    let prayer = vec![b'p'; 400];
    for i in 0..n {
        let over = rng.below(50) == 0;
        let s = random_slot(&mut rng, over, |rng| {
            [20 + rng.below(12) as usize, 22 + rng.below(12) as usize, 10 + rng.below(20) as usize]
        });
        let values = [None, None, over.then_some(&prayer[..])];
        let len = light_len(&values);
        write_light(CommandHeader { kind: 0, client_id: 0, seq: 0 }, &s, values, &mut command[..len]);
        let at = Applied { pos: LogPos::single(i + 1), time_ns: DAY * DAY_NS + i, ..Default::default() };
        match p.apply(at, &command[..len]) {
            ApplyResult::Lit { .. } => {}
            other => panic!("candle {i}: {other:?}"),
        }
    }
    assert_eq!(p.len(), n as usize);
    (p, n + 1)
}

/// The time of the ROTATE at the start of day DAY + 7 that drops a bucket of `n` candles; then
/// the total and the longest call of the upkeep that gives its blocks back.
fn drop_time(n: u64) -> (Duration, Duration, Duration) {
    let (mut p, lsn) = filled(n);
    let mut rotate = [0u8; ROTATE_LEN];
    write_rotate(&mut rotate);
    let at = Applied { pos: LogPos::single(lsn), time_ns: (DAY + 7) * DAY_NS, ..Default::default() };
    let start = Instant::now();
    let result = p.apply(at, &rotate);
    let took = start.elapsed();
    assert_eq!(result, ApplyResult::Rotated { buckets: 1 }, "the bucket of {n} candles is dropped");
    assert_eq!(p.len(), 0);
    let (mut total, mut longest) = (Duration::ZERO, Duration::ZERO);
    loop {
        let start = Instant::now();
        let more = p.upkeep();
        let call = start.elapsed();
        total += call;
        longest = longest.max(call);
        if !more {
            break;
        }
    }
    assert_eq!(p.ring().memory(), 0, "every spare given back");
    (took, total, longest)
}

/// The time of removing `n` 128-byte records one by one from a hash map (per-record expiry).
fn per_record_time(n: u64) -> Duration {
    let mut map: HashMap<u64, [u8; 128]> = HashMap::with_capacity(n as usize);
    for i in 0..n {
        map.insert(DAY << 32 | i, [i as u8; 128]);
    }
    let start = Instant::now();
    for i in 0..n {
        black_box(map.remove(&(DAY << 32 | i)));
    }
    drop(map);
    start.elapsed()
}

/// The time of freeing `n` slots' and their overflow values' bytes held in 64 KiB blocks.
fn free_floor_time(n: u64, overflow_bytes: u64) -> Duration {
    let bytes = n * 128 + overflow_bytes;
    let blocks: Vec<Box<[u8]>> =
        (0..bytes.div_ceil(64 << 10)).map(|i| vec![i as u8 | 1; 64 << 10].into_boxed_slice()).collect();
    black_box(&blocks);
    let start = Instant::now();
    drop(blocks);
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let repeats: usize = std::env::args().nth(1).map_or(5, |a| a.parse().expect("REPEATS is a number"));
    println!(
        "| candles in the bucket | drop (ROTATE), median of {repeats} | per candle | per-record baseline \
         (HashMap remove) | per-record / drop | free of the same bytes in 64 KiB blocks | upkeep give-back, \
         total | longest upkeep call |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in [1_000u64, 10_000, 100_000, 1_000_000] {
        let runs: Vec<_> = (0..repeats).map(|_| drop_time(n)).collect();
        let drop = median(runs.iter().map(|r| r.0).collect());
        let give_back = median(runs.iter().map(|r| r.1).collect());
        let longest = median(runs.iter().map(|r| r.2).collect());
        let base = median((0..repeats).map(|_| per_record_time(n)).collect());
        // About 2% of the candles carry a 400-byte prayer in overflow (u16-framed), as `filled`.
        let free = median((0..repeats).map(|_| free_floor_time(n, n / 50 * 402)).collect());
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "| {n} | {:.1} us | {:.3} ns | {:.1} us | {:.0} | {:.1} us | {:.1} us | {:.1} us |",
            us(drop),
            drop.as_secs_f64() * 1e9 / n as f64,
            us(base),
            base.as_secs_f64() / drop.as_secs_f64().max(1e-9),
            us(free),
            us(give_back),
            us(longest)
        );
    }
}
