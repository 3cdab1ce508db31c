//! Heap allocations on a partition's durable write path, counted by a global allocator (this test
//! binary's own): after warm-up, thousands of durable SETs of existing keys, many per poll
//! iteration, must allocate nothing per write. What allocates is per *entry* (raft-rs copies each
//! entry it is given and hands committed entries back as owned vectors): a batch pays it once for
//! all its writes.
//!
//! The test prints what it counted; it fails if any write allocates on its own (more allocations
//! than `ALLOCS_PER_ENTRY_MAX` per batch entry) or if the writes were not batched.

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use vigil::kv::protocol::{encode_write_body, request_body_len};
use vigil::kv::{KvLimits, Op};
use vigil::log::UalConfig;
use vigil::partition::batch::BatchLimits;
use vigil::partition::{Origin, Partition, PartitionConfig, Waiter, WriteOutcome};
use vigil::raft::RaftGroupConfig;
use vigil::wire::opcode;
use vigil_pmd::block::memory::MemoryBlockIo;
use vigil_pmd::{Nanos, Peer};

/// Counts every allocation of this test binary (`stats_alloc`: a counting wrapper of `System`).
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Keys written over and over (overwrites: a new key would allocate its map slot, once).
const KEYS: u64 = 100;
/// Writes per poll iteration (one batch entry each).
const PER_ITERATION: u64 = 100;
/// Measured writes.
const WRITES: u64 = 20_000;
/// What one batch entry may allocate, whatever number of writes it holds: raft-rs's copies of the
/// entry and its bookkeeping, the committed entry handed back. Measured: 6.
const ALLOCS_PER_ENTRY_MAX: u64 = 40;

fn config() -> PartitionConfig {
    PartitionConfig {
        ual: UalConfig {
            segment_blocks: 256,
            segment_count: 16,
            write_blocks_max: 64,
            writes_in_flight_max: 4,
            format_if_blank: true,
            atomic_write_bytes: 4096,
        },
        raft: RaftGroupConfig::default(),
        kv: KvLimits::small(),
        projections: Default::default(),
        snapshot_every_entries: u64::MAX,
        node_id: 1,
        voters: vec![1],
        batch: BatchLimits::default(),
        inflight_bytes_max: 256 * 4096 / 2,
        follower_read_staleness_ns: 0,
        quiesce_idle: true,
    }
}

fn set_body(key: &[u8], value: &[u8]) -> Vec<u8> {
    let op = Op::Set { key, value };
    let mut out = vec![0; request_body_len(&op)];
    encode_write_body(&op, &mut out).unwrap();
    out
}

/// Writes `count` SETs from `first`, `PER_ITERATION` per poll iteration, and polls until every
/// one is answered; returns the batch entries proposed.
fn write(p: &mut Partition<MemoryBlockIo>, bodies: &[Vec<u8>], first: u64, count: u64, now: &mut u64) -> u64 {
    let peer = Peer::from_ip_port(std::net::Ipv4Addr::LOCALHOST, 1);
    let batches = p.counters().batches;
    let mut answered = 0;
    let mut i = first;
    while answered < count {
        for _ in 0..PER_ITERATION.min(first + count - i) {
            let waiter = Waiter {
                origin: Origin::Client { peer, client_id: 9, arrived: Nanos(0) },
                opcode: opcode::SET,
                request_id: i,
                owner: Default::default(),
            };
            let body = &bodies[(i % KEYS) as usize];
            assert_eq!(p.write(waiter, 9, body), WriteOutcome::Later, "write {i}");
            i += 1;
        }
        *now += 1;
        p.poll(Nanos(*now), &mut |d| {
            assert!(d.result.is_ok(), "{d:?}");
            answered += 1;
        });
    }
    p.counters().batches - batches
}

#[test]
fn durable_writes_allocate_nothing_per_write_after_warm_up() {
    let cfg = config();
    let dev = MemoryBlockIo::new(cfg.ual.device_blocks(), 64);
    let (mut p, _) = Partition::open(0, dev, &cfg, None).expect("open");
    let mut now = 0;
    while !p.serves_reads() {
        now += 1;
        p.poll(Nanos(now), &mut |_| {});
    }
    let bodies: Vec<Vec<u8>> =
        (0..KEYS).map(|k| set_body(format!("key-{k:08}").as_bytes(), b"value-0123456789")).collect();
    // Warm-up: every key exists, every buffer and table has grown to its working size.
    write(&mut p, &bodies, 1, 2_000, &mut now);

    let region = Region::new(GLOBAL);
    let entries = write(&mut p, &bodies, 2_001, WRITES, &mut now);
    let stats = region.change();
    let allocs = (stats.allocations + stats.reallocations) as u64;
    println!(
        "{WRITES} durable writes in {entries} batch entries: {allocs} allocations, {:.3} per write, {:.1} per entry",
        allocs as f64 / WRITES as f64,
        allocs as f64 / entries.max(1) as f64
    );
    assert!(entries * 10 <= WRITES, "the writes were not batched: {entries} entries for {WRITES} writes");
    assert!(
        allocs <= entries * ALLOCS_PER_ENTRY_MAX,
        "{allocs} allocations for {WRITES} writes in {entries} entries: something allocates per write"
    );
}
