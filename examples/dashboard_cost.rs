//! What the dashboard costs its thread each second (docs/BENCHMARKS.md, "Dashboard"): one look
//! at the board (`History::push`: each shard's snapshot subtracted from the previous one,
//! histograms included, and the windows added) and one rendering of the page (`render`), for a
//! node of `SHARDS` shards and `PARTITIONS` partitions under write load, against a baseline in the
//! same run: copying the rendered page's bytes once (`memcpy`, what each viewer costs its shard).
//!
//!   cargo run --release --example dashboard_cost [SHARDS] [PARTITIONS]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;
use vigil::metrics::dashboard::{render, NodeView, HISTORY_SECONDS};
use vigil::metrics::history::History;
use vigil::metrics::{PartitionStats, ShardStats};

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("a number"));
    let shards = args.next().unwrap_or(4);
    let partitions = args.next().unwrap_or(64);
    // A second of snapshots: each shard wrote 50,000 times, at 20 us to 5 ms.
    let snapshot = |second: u64| -> Vec<Arc<ShardStats>> {
        (0..shards)
            .map(|shard| {
                let mut s = ShardStats { shard, at_ns: second * 1_000_000_000, ..ShardStats::default() };
                s.engine.requests = second * 50_000;
                for i in 0..second * 2_000 {
                    s.write_latency.record(20_000 + (i * 7_919) % 5_000_000);
                }
                s.partitions = (0..partitions / shards)
                    .map(|p| PartitionStats {
                        id: (shard + p * shards) as u16,
                        is_leader: true,
                        leader: 1,
                        log_segments: 64,
                        log_segment_bytes: 1 << 20,
                        ..PartitionStats::default()
                    })
                    .collect();
                Arc::new(s)
            })
            .collect()
    };
    let seconds: Vec<Vec<Arc<ShardStats>>> = (1..=HISTORY_SECONDS as u64 + 1).map(snapshot).collect();
    let mut history = History::new(HISTORY_SECONDS);
    for (i, latest) in seconds.iter().enumerate() {
        history.push(i as u64 * 1_000_000_000, latest);
    }
    let latest = seconds.last().expect("snapshots");

    let rounds = 200u32;
    // Each round: a history that has seen second i looks at second i + 1 (the first push only
    // remembers the snapshots; it is timed too, so this is an upper bound).
    let t = Instant::now();
    for i in 0..rounds {
        let mut h = History::new(2);
        h.push(0, black_box(&seconds[(i as usize) % 30]));
        h.push(1, black_box(&seconds[(i as usize) % 30 + 1]));
        black_box(h.last());
    }
    let push_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);

    let view = NodeView {
        node_id: 1,
        started_ns: 0,
        now_ns: 61_000_000_000,
        shards_total: shards,
        latest,
        history: &history,
        process: Default::default(),
        config_toml: vigil::config::DEV_TOML,
        admin_on: true,
        disk: None,
    };
    let t = Instant::now();
    let mut bytes = 0;
    for seq in 0..u64::from(rounds) {
        let r = render(black_box(&view), seq);
        bytes = r.page.len();
        black_box(&r);
    }
    let render_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);

    let page = vec![7u8; bytes];
    let mut copy = Vec::with_capacity(bytes);
    let copies = 20_000u32;
    let t = Instant::now();
    for _ in 0..copies {
        copy.clear();
        copy.extend_from_slice(black_box(&page));
        black_box(&copy);
    }
    let copy_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(copies);

    println!("node: {shards} shards, {partitions} partitions, {HISTORY_SECONDS} s of history");
    println!("one look at the board (History::push):  {push_us:9.1} us");
    println!("one rendering ({bytes} bytes):        {render_us:9.1} us");
    println!(
        "the dashboard thread per second:        {:9.1} us = {:.3}% of a core",
        push_us + render_us,
        (push_us + render_us) / 1e4
    );
    println!("baseline, one copy of the page (memcpy): {copy_us:9.2} us (what a viewer costs its shard per second)");
    println!("ratio, thread's second / one copy:      {:9.0}x", (push_us + render_us) / copy_us);
}
