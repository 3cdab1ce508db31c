//! UAL append throughput on one core, in memory: 64-byte entries appended 1000 at a time, then one
//! `flush_step` (one group-commit write) and one `poll` (its completion), over `MemoryBlockIo`.
//! Reported in elements (appends) per second, next to the baseline measured in the same run: a
//! plain memcpy of the same 1000 x 64 bytes into a buffer.
//!
//! "Durable" here means the memory device's completion (it has no power to lose); the figure is
//! the log's CPU cost per append (header, crc32c, staging, the copy into the write buffer, the
//! device's copy), not a device's. Checkpoints every ~100k records recycle the ring, as a
//! snapshotting shard would.
//!
//! Run: `cargo bench --bench ual_append` (add `-- --quick` for a short run).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;
use vigil::log::{LogError, Ual, UalConfig};
use vigil_pmd::block::memory::MemoryBlockIo;
use vigil_pmd::Nanos;

const BATCH: usize = 1000;
const ENTRY: usize = 64;
const CHECKPOINT_EVERY: u64 = 100_000;

fn ual_append(c: &mut Criterion) {
    let cfg = UalConfig {
        segment_blocks: 256,
        segment_count: 64,
        write_blocks_max: 64,
        writes_in_flight_max: 4,
        format_if_blank: true,
        atomic_write_bytes: vigil::log::ATOMIC_WRITE_BLOCK,
    };
    let dev = MemoryBlockIo::new(cfg.device_blocks(), 64);
    let (mut ual, _) = Ual::open(dev, cfg).expect("open the log");
    let entries: Vec<[u8; ENTRY]> = (0..BATCH).map(|i| [i as u8; ENTRY]).collect();

    let mut group = c.benchmark_group("ual_append");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(30).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));

    group.bench_function("memcpy_64B_x1000_baseline", |b| {
        let mut buf = vec![0u8; BATCH * ENTRY];
        b.iter(|| {
            for (i, e) in entries.iter().enumerate() {
                buf[i * ENTRY..(i + 1) * ENTRY].copy_from_slice(black_box(e));
            }
            black_box(&mut buf);
        })
    });

    group.bench_function("ual_append_64B_x1000_flush_poll", |b| {
        b.iter(|| {
            for e in &entries {
                loop {
                    match ual.append(1, 0, black_box(e)) {
                        Ok(_) => break,
                        Err(LogError::Busy | LogError::Full) => {
                            ual.flush_step().expect("flush");
                            ual.poll(Nanos(0)).expect("poll");
                            let _ = ual.checkpoint(ual.durable_lsn(), 1);
                            ual.poll(Nanos(0)).expect("poll");
                        }
                        Err(e) => panic!("append: {e}"),
                    }
                }
            }
            ual.flush_step().expect("flush");
            ual.poll(Nanos(0)).expect("poll");
            if ual.durable_lsn() - ual.snapshot().0 >= CHECKPOINT_EVERY {
                let _ = ual.checkpoint(ual.durable_lsn(), 1);
            }
            black_box(ual.durable_lsn())
        })
    });
    group.finish();
    let c = ual.counters();
    eprintln!(
        "ual: {} appends, {} writes ({:.1} appends/write, {:.1} blocks/write), {} busy, {} full",
        c.appends,
        c.writes,
        c.appends as f64 / c.writes.max(1) as f64,
        c.write_blocks as f64 / c.writes.max(1) as f64,
        c.appends_busy,
        c.appends_full
    );
}

criterion_group!(benches, ual_append);
criterion_main!(benches);
