//! What quotas cost where a write is applied, per command, on one core (docs/BENCHMARKS.md,
//! "Quotas"): batches of 256 SETs of 16-byte keys and values (overwrites of 65,536 keys, the
//! steady state, then as many new keys) applied through the partition's router, written by an
//! anonymous client (the baseline: what every write paid before quotas), by a principal without a
//! quota (its key id stamped in each frame and each key's block), and by a principal under a quota
//! (the quota stamped too, and checked against its usage in the KV store and, with the candle
//! store, in the candle ring as well), all in the same run.
//!
//!   cargo run --release --example quota_cost [BATCHES]

use std::time::Instant;
use vigil::candle::projection::CandleProjection;
use vigil::candle::ring::CandleLimits;
use vigil::kv::{Command, KvLimits, Op};
use vigil::partition::batch::{BatchLimits, BatchWriter, TAG_KV};
use vigil::projection::{Owner, Projection, Quota, Router};

const KEYS: u64 = 65_536;
const PER_BATCH: u64 = 256;

/// `count` batches of SETs by `owner`, key `k` for the n-th write `first + n` modulo `keys`.
fn batches(owner: Owner, count: u64, first: u64, keys: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let limits = BatchLimits { bytes_max: 64 << 10, writes_max: PER_BATCH as usize };
    for b in 0..count {
        let mut w = BatchWriter::new(limits);
        for i in 0..PER_BATCH {
            let n = first + b * PER_BATCH + i;
            let key = format!("key-{:012}", n % keys);
            let cmd =
                Command { client_id: 0, seq: 0, op: Op::Set { key: key.as_bytes(), value: &[b'v'; 16] } };
            w.push(TAG_KV, &owner, cmd.encoded_len(), |out| {
                cmd.encode(out).expect("sized");
            });
        }
        out.push(w.seal(1).to_vec());
    }
    out
}

/// ns per command applying `entries` from lsn `first_lsn` on.
fn apply(router: &mut Router, entries: &[Vec<u8>], first_lsn: u64) -> f64 {
    let t = Instant::now();
    for (i, e) in entries.iter().enumerate() {
        router.apply_entry(first_lsn + i as u64, e, &mut |_, r| {
            debug_assert!(r.status() == vigil::wire::Status::Ok, "{r:?}");
        });
    }
    t.elapsed().as_nanos() as f64 / (entries.len() as u64 * PER_BATCH) as f64
}

fn main() {
    let n: u64 = std::env::args().nth(1).map_or(2_000, |a| a.parse().expect("a number of batches"));
    let limits = KvLimits { keys_max: 1 << 22, data_bytes_max: 1 << 30, ..KvLimits::small() };
    let quota = Some(Quota { keys_max: 1 << 21, bytes_max: 1 << 29 });
    let cases = [
        ("anonymous (baseline)", Owner::ANONYMOUS, false),
        ("principal, no quota", Owner { key_id: 7, quota: None }, false),
        ("principal under a quota", Owner { key_id: 7, quota }, false),
        ("principal under a quota, candles", Owner { key_id: 7, quota }, true),
    ];
    println!("{n} batches of {PER_BATCH} SETs each; ns per SET applied (one core)");
    println!("  {:<36} {:>12} {:>12}", "", "overwrites", "new keys");
    for (name, owner, candles) in cases {
        let others: Vec<Box<dyn Projection>> = match candles {
            true => vec![Box::new(CandleProjection::new(CandleLimits::small()))],
            false => Vec::new(),
        };
        let mut router = Router::new(limits, others);
        // The keys exist first (not timed), then overwrites, then as many new keys.
        let fill = batches(owner, KEYS / PER_BATCH, 0, KEYS);
        apply(&mut router, &fill, 1);
        let overwrites = batches(owner, n, 0, KEYS);
        let lsn = fill.len() as u64 + 1;
        let overwrite_ns = apply(&mut router, &overwrites, lsn);
        let new = batches(owner, n, KEYS, u64::MAX);
        let new_ns = apply(&mut router, &new, lsn + n);
        println!("  {name:<36} {overwrite_ns:>12.1} {new_ns:>12.1}");
    }
}
