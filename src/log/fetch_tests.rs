//! Reads that must not block (`lookup`, `prefetch` completed by `poll`) and the blocking `load`:
//! what they serve, that an asynchronous fill never leaves stale bytes to serve (a truncation or a
//! recycling while it is in flight drops it), and that a blocking read waits for it.

use super::*;
use vigil_pmd::block::memory::MemoryBlockIo;
use vigil_pmd::Nanos;

const NOW: Nanos = Nanos(0);

fn payload(lsn: Lsn) -> Vec<u8> {
    (0..200).map(|i| (lsn as u8).wrapping_mul(31).wrapping_add(i as u8)).collect()
}

/// 4-block segments in a ring of 8, 400 records of 200 bytes (~6 segments), durable: lsn 1 is
/// several segments behind the tail and no longer in memory.
fn filled() -> Ual<MemoryBlockIo> {
    let cfg = UalConfig {
        segment_blocks: 4,
        segment_count: 8,
        write_blocks_max: 4,
        writes_in_flight_max: 2,
        format_if_blank: true,
        atomic_write_bytes: ATOMIC_WRITE_BLOCK,
    };
    let (mut ual, _) = Ual::open(MemoryBlockIo::new(cfg.device_blocks(), 8), cfg).expect("open");
    for lsn in 1..=400u64 {
        loop {
            match ual.append(1 + lsn / 200, 3, &payload(lsn)) {
                Ok(got) => break assert_eq!(got, lsn),
                Err(LogError::Busy) => {
                    ual.flush_step().unwrap();
                    ual.poll(NOW).unwrap();
                }
                Err(e) => panic!("append: {e}"),
            }
        }
    }
    ual.sync_blocking().unwrap();
    assert_eq!(ual.durable_lsn(), 400);
    ual
}

fn ready(ual: &Ual<MemoryBlockIo>, lsn: Lsn) -> Vec<u8> {
    match ual.lookup(lsn) {
        Ok(Lookup::Ready(r)) => {
            assert_eq!(r.meta.lsn, lsn);
            r.payload.to_vec()
        }
        other => panic!("lookup({lsn}): {other:?}"),
    }
}

#[test]
fn prefetch_reads_a_segment_without_blocking_and_lookup_then_serves_it() {
    let mut ual = filled();
    assert!(matches!(ual.lookup(1), Ok(Lookup::OnDevice)));
    assert!(matches!(ual.lookup(401), Err(LogError::Unavailable { .. })));
    let reads = ual.counters().reads;
    assert_eq!(ual.prefetch(1), Ok(false), "submitted");
    assert_eq!(ual.counters().reads, reads + 1);
    assert!(ual.fetch_in_flight());
    // One fill at a time: another segment waits, nothing more is submitted.
    assert_eq!(ual.prefetch(150), Ok(false));
    assert_eq!(ual.counters().reads, reads + 1);
    assert!(matches!(ual.lookup(1), Ok(Lookup::OnDevice)), "not before the completion is polled");
    ual.poll(NOW).unwrap();
    assert!(!ual.fetch_in_flight());
    assert_eq!(ready(&ual, 1), payload(1));
    assert_eq!(ual.prefetch(1), Ok(true));
    // The cache serves only what was durable when it was read.
    ual.cache_valid_to = 1;
    assert!(matches!(ual.lookup(2), Ok(Lookup::OnDevice)));
    // The blocking load re-reads it.
    ual.load(2).unwrap();
    assert_eq!(ready(&ual, 2), payload(2));
    assert_eq!(ual.counters().reads, reads + 2);
}

#[test]
fn a_blocking_read_waits_for_a_fill_in_flight() {
    let mut ual = filled();
    assert_eq!(ual.prefetch(1), Ok(false));
    // The cache's buffer is away with the fill: `read` and `load` wait for it, then read.
    let mut out = Vec::new();
    let meta = ual.read(150, &mut out).unwrap();
    assert_eq!((meta.lsn, &out), (150, &payload(150)));
    ual.load(1).unwrap();
    assert_eq!(ready(&ual, 1), payload(1));
}

#[test]
fn a_fill_that_completes_after_a_truncation_is_dropped() {
    let mut ual = filled();
    assert_eq!(ual.prefetch(1), Ok(false));
    // Blocking: it reaps the fill's completion while it waits, then cuts the tail.
    ual.truncate_suffix(390).unwrap();
    assert!(ual.fetch.is_none());
    assert_eq!(ual.cache.vseg, NO_SEGMENT, "the cache holds nothing a truncation may have changed");
    assert!(matches!(ual.lookup(1), Ok(Lookup::OnDevice)));
    // And a fill whose completion comes only after the new epoch began is dropped too.
    assert_eq!(ual.prefetch(1), Ok(false));
    ual.epoch += 1;
    ual.poll(NOW).unwrap();
    assert_eq!(ual.cache.vseg, NO_SEGMENT);
    ual.epoch -= 1;
    assert_eq!(ual.prefetch(1), Ok(false));
    ual.poll(NOW).unwrap();
    assert_eq!(ready(&ual, 1), payload(1));
}

#[test]
fn a_fill_of_a_segment_recycled_while_in_flight_is_dropped() {
    let mut ual = filled();
    assert_eq!(ual.prefetch(1), Ok(false));
    ual.checkpoint(300, 2).unwrap();
    ual.poll(NOW).unwrap();
    assert!(ual.first_lsn() > 1, "the first segments were recycled");
    assert_eq!(ual.cache.vseg, NO_SEGMENT, "the fill of a recycled segment is not kept");
    assert!(matches!(ual.lookup(1), Err(LogError::Unavailable { .. })));
    assert!(matches!(ual.prefetch(1), Err(LogError::Unavailable { .. })));
}
