//! Candle traffic (docs/PROTOCOL.md, "Candles"): the bodies CANDLE_LIGHT sends and the ids
//! CANDLE_GET asks for.
//!
//! [`CandlePool`] holds [`CANDLE_POOL_BODIES`] client bodies (docs/CANDLES.md, "The client body")
//! of candles from Vigil's own seeded generator (`vigil::candle::corpus`), written once by
//! `vigil::candle::wire::write` when the generator is built; request k sends body `k`'s draw from it.
//! [`SeenIds`] keeps the last [`CANDLE_IDS_MAX`] ids that LIGHTs were answered with; a GET asks for
//! one of them.
//!
//! Invariants:
//! - nothing allocates per request: the pool is one byte buffer and its end offsets, filled in
//!   [`CandlePool::generate`]; the id ring is a fixed array of atomics written in place;
//! - every pooled body fits one request datagram, and its GET answer (u32 lit at, then the body)
//!   fits one answer datagram of [`DATAGRAM_BYTES_MAX`]: candles whose body is longer (an
//!   800-character prayer) are skipped while filling, so a GET of a pooled candle is never
//!   `RESPONSE_TOO_LARGE`;
//! - the pool is a pure function of the seed (the corpus is seeded); the ids a GET draws from are
//!   not (they are the server's answers), so a CANDLE_GET's body is not regenerated from k alone.

use crate::workload::DATAGRAM_BYTES_MAX;
use std::sync::atomic::{AtomicU64, Ordering};
use vigil::candle::corpus::Corpus;
use vigil::wire::{FRAME_HEADER_LEN, HEADER_LEN};

/// Candle bodies in the pool a LIGHT draws from.
pub const CANDLE_POOL_BODIES: usize = 4096;
/// Most LIGHT answers (ids) remembered for GETs to ask for.
pub const CANDLE_IDS_MAX: usize = 65_536;
/// Longest body pooled: its GET answer (the u32 lit at, then the body) fits one datagram.
pub const CANDLE_BODY_BYTES_MAX: usize = DATAGRAM_BYTES_MAX - HEADER_LEN - FRAME_HEADER_LEN - 4;
/// Candles drawn per pooled body at most before filling gives up (long ones are skipped; the
/// corpus has few: about 1 in 100 has a prayer past 200 characters).
const DRAWS_PER_BODY_MAX: usize = 4;

/// Pre-generated candle bodies.
#[derive(Debug)]
pub struct CandlePool {
    bytes: Vec<u8>,
    /// End of body i in `bytes` (body i starts at `ends[i - 1]`, or 0).
    ends: Vec<u32>,
    body_max: usize,
    skipped: usize,
}

impl CandlePool {
    /// `bodies` bodies of the corpus seeded with `seed`, those at most [`CANDLE_BODY_BYTES_MAX`]
    /// long. Panics if the corpus gives too few of them (it never does: see `DRAWS_PER_BODY_MAX`).
    pub fn generate(seed: u64, bodies: usize) -> Self {
        let mut corpus = Corpus::new(seed);
        let mut bytes = Vec::with_capacity(bodies * 256);
        let mut ends = Vec::with_capacity(bodies);
        let (mut body_max, mut skipped) = (0, 0);
        for _ in 0..bodies * DRAWS_PER_BODY_MAX {
            if ends.len() == bodies {
                break;
            }
            let start = bytes.len();
            vigil::candle::wire::write(&corpus.candle(), &mut bytes);
            let len = bytes.len() - start;
            if len > CANDLE_BODY_BYTES_MAX {
                bytes.truncate(start);
                skipped += 1;
                continue;
            }
            body_max = body_max.max(len);
            ends.push(u32::try_from(bytes.len()).expect("a pool is far below 4 GiB"));
        }
        assert_eq!(
            ends.len(),
            bodies,
            "the corpus gave too few candles of at most {CANDLE_BODY_BYTES_MAX} B"
        );
        CandlePool { bytes, ends, body_max, skipped }
    }

    /// Bodies in the pool.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True if it holds no body.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Body i (i < len).
    #[inline]
    pub fn body(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    /// The longest body in the pool.
    pub fn body_bytes_max(&self) -> usize {
        self.body_max
    }

    /// Bytes of all bodies (their mean is this over `len`).
    pub fn total_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Candles left out while filling because their body was too long for a datagram.
    pub fn skipped(&self) -> usize {
        self.skipped
    }
}

/// The ids LIGHTs were answered with, the last `capacity` of them, shared by a thread's generator
/// and its answer checker (and safe to share between threads: slots and cursor are atomics).
#[derive(Debug)]
pub struct SeenIds {
    slots: Box<[AtomicU64]>,
    recorded: AtomicU64,
}

impl SeenIds {
    /// Room for `capacity` ids (0: none is kept, every pick is 0).
    pub fn new(capacity: usize) -> Self {
        SeenIds { slots: (0..capacity).map(|_| AtomicU64::new(0)).collect(), recorded: AtomicU64::new(0) }
    }

    /// Remembers `id`, over the oldest one once full.
    #[inline]
    pub fn record(&self, id: u64) {
        if self.slots.is_empty() {
            return;
        }
        let n = self.recorded.fetch_add(1, Ordering::Relaxed);
        self.slots[(n % self.slots.len() as u64) as usize].store(id, Ordering::Relaxed);
    }

    /// Ids remembered (at most the capacity).
    pub fn len(&self) -> usize {
        (self.recorded.load(Ordering::Relaxed) as usize).min(self.slots.len())
    }

    /// True if none is remembered yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One remembered id, chosen by the hash `h` (uniform over those kept); 0, an id Vigil never
    /// issues (docs/PROTOCOL.md: NOT_FOUND), while none is.
    #[inline]
    pub fn pick(&self, h: u64) -> u64 {
        let n = self.len() as u64;
        if n == 0 {
            return 0;
        }
        let i = ((u128::from(h) * u128::from(n)) >> 64) as usize;
        self.slots[i].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_seeded_bounded_and_parses_back() {
        let a = CandlePool::generate(7, 300);
        let b = CandlePool::generate(7, 300);
        assert_eq!((a.len(), a.bytes.len()), (300, b.bytes.len()));
        assert!(a.body_bytes_max() <= CANDLE_BODY_BYTES_MAX);
        for i in 0..a.len() {
            assert_eq!(a.body(i), b.body(i));
            let c = vigil::candle::wire::read(a.body(i)).unwrap();
            assert!(!c.name.is_empty(), "body {i}");
        }
        assert_ne!(CandlePool::generate(8, 10).body(0), a.body(0));
    }

    #[test]
    fn seen_ids_keep_the_last_ones_and_pick_zero_when_empty() {
        let s = SeenIds::new(4);
        assert_eq!((s.len(), s.pick(u64::MAX)), (0, 0));
        for id in 1..=6 {
            s.record(id);
        }
        assert_eq!(s.len(), 4);
        let picked: std::collections::BTreeSet<u64> = (0..64).map(|i| s.pick(i << 58)).collect();
        assert_eq!(picked.into_iter().collect::<Vec<_>>(), [3, 4, 5, 6]);
        let none = SeenIds::new(0);
        none.record(9);
        assert_eq!(none.pick(1), 0);
    }
}
