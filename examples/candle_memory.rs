//! Memory of the candle ring at the seed's scale: lights 2,000,000 candles (spread over seven days,
//! about 2% of them with a prayer in the overflow pool) into one `CandleProjection` and prints the
//! process's resident memory (from /proc/self/statm) against 2 M x 128 B plus the overflow bytes.
//!
//! `cargo run --release --example candle_memory [CANDLES]`
//!
//! The slots carry raw text bytes of realistic sizes (the ring never decodes text; the codec's
//! figures are `candle_figures`), so this measures the store, not the compression.

mod candle_support;

use candle_support::{random_slot, Rng};
use vigil::candle::command::{light_len, write_light};
use vigil::candle::ring::{CandleLimits, DAY_NS};
use vigil::candle::CandleProjection;
use vigil::projection::{Applied, ApplyResult, CommandHeader, LogPos, Projection};

/// Resident bytes of this process (Linux).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm (Linux)");
    let pages: u64 = statm.split_whitespace().nth(1).expect("resident field").parse().expect("a number");
    pages * 4096
}

fn main() {
    let candles: u64 = std::env::args().nth(1).map_or(2_000_000, |a| a.parse().expect("CANDLES is a number"));
    let per_day = candles.div_ceil(7);
    let limits = CandleLimits {
        candles_per_day_max: u32::try_from(per_day).expect("fits a u32"),
        overflow_bytes_per_field_day_max: 16 << 20,
        list_page_max: 100,
    };
    let mut p = CandleProjection::new(limits);
    let mut rng = Rng(0x7b7d_957d_12c4_e0a2);
    let rss_before = rss_bytes();
    let mut command = vec![0u8; 4096];
    let mut overflow_bytes = 0u64;
    let mut overflowed = 0u64;
    for i in 0..candles {
        let over = rng.below(50) == 0;
        let lens = [20 + rng.below(12) as usize, 22 + rng.below(12) as usize, 10 + rng.below(20) as usize];
        let s = random_slot(&mut rng, over, |_| lens);
        let prayer = vec![b'p'; 200 + rng.below(600) as usize];
        let values = [None, None, over.then_some(&prayer[..])];
        let len = light_len(&values);
        let header = CommandHeader { kind: 0, client_id: 0, seq: 0 };
        write_light(header, &s, values, &mut command[..len]);
        let day = 20_000 + i / per_day;
        let at = Applied { pos: LogPos::single(i + 1), time_ns: day * DAY_NS + i, ..Default::default() };
        match p.apply(at, &command[..len]) {
            ApplyResult::Lit { .. } => {}
            other => panic!("candle {i}: {other:?}"),
        }
        if over {
            overflowed += 1;
            overflow_bytes += 2 + prayer.len() as u64;
        }
    }
    let rss_after = rss_bytes();
    let slots = candles * 128;
    let floor = slots + overflow_bytes;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!("candles lit:                 {candles} over 7 days ({overflowed} with the prayer in overflow)");
    println!("live:                        {}", p.len());
    println!("slots (N x 128 B):           {:>9.1} MiB", mib(slots));
    println!("overflow values (framed):    {:>9.1} MiB", mib(overflow_bytes));
    println!("floor (slots + overflow):    {:>9.1} MiB", mib(floor));
    println!("ring's blocks and counters:  {:>9.1} MiB", mib(p.ring().memory() as u64));
    println!("process RSS growth:          {:>9.1} MiB", mib(rss_after.saturating_sub(rss_before)));
    println!(
        "RSS growth / floor:          {:>9.3}",
        rss_after.saturating_sub(rss_before) as f64 / floor as f64
    );
    println!("process RSS:                 {:>9.1} MiB", mib(rss_after));
}
