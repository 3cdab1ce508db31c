//! `Latency`: a histogram of durations in ns, 1 us to 60 s at 2 significant digits (HDR: the
//! `hdrhistogram` crate), with the running sum Prometheus's `_sum` needs (HDR keeps none).
//! `Latency::coarse` is the same at 1 significant digit (buckets within 1/16 of their value,
//! about 3 KiB instead of 21 KiB), for the many per-opcode histograms (`requests.rs`).
//!
//! Invariants: `record` and `record_n` never allocate (the range is fixed at construction; values
//! past it count in the top bucket, `saturating_record`); `count` and `sum_ns` cover every value
//! recorded.

use hdrhistogram::Histogram;

/// The longest duration told apart (60 s); longer ones count as this.
const HIGHEST_NS: u64 = 60_000_000_000;
/// The shortest told apart from zero (1 us).
const LOWEST_NS: u64 = 1_000;

/// A histogram of durations (see the module header).
#[derive(Clone, Debug)]
pub struct Latency {
    hist: Histogram<u64>,
    sum_ns: u64,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty histogram (2 significant digits).
    pub fn new() -> Self {
        Self::with_digits(2)
    }

    /// An empty histogram at 1 significant digit (see the module header).
    pub fn coarse() -> Self {
        Self::with_digits(1)
    }

    fn with_digits(digits: u8) -> Self {
        let hist = Histogram::new_with_bounds(LOWEST_NS, HIGHEST_NS, digits).expect("valid bounds");
        Self { hist, sum_ns: 0 }
    }

    /// Counts one duration of `ns`.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.hist.saturating_record(ns.max(LOWEST_NS));
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    /// Counts `n` durations of `ns` each.
    #[inline]
    pub fn record_n(&mut self, ns: u64, n: u64) {
        self.hist.saturating_record_n(ns.max(LOWEST_NS), n);
        self.sum_ns = self.sum_ns.saturating_add(ns.saturating_mul(n));
    }

    /// Durations counted.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Their sum, ns.
    pub fn sum_ns(&self) -> u64 {
        self.sum_ns
    }

    /// The duration at quantile `q` (0..=1), ns; 0 when empty.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        if self.hist.is_empty() {
            return 0;
        }
        self.hist.value_at_quantile(q)
    }

    /// Durations counted at most `ns` long (a cumulative bucket; HDR's resolution: within 1%).
    pub fn count_at_most(&self, ns: u64) -> u64 {
        if ns < LOWEST_NS {
            return 0;
        }
        self.hist.count_between(0, ns.min(HIGHEST_NS))
    }

    /// Adds `other`'s durations (several shards into one node-wide histogram).
    pub fn add(&mut self, other: &Latency) {
        self.hist.add(&other.hist).expect("same bounds");
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
    }

    /// The durations counted since `earlier`, an older copy of the same histogram (a window
    /// between two snapshots: the dashboard's quantiles over the last second). Where `earlier`
    /// is not older (it holds counts this one lacks), all of this one.
    pub fn since(&self, earlier: &Latency) -> Latency {
        let mut window = self.clone();
        if window.hist.subtract(&earlier.hist).is_err() {
            return self.clone();
        }
        window.sum_ns = self.sum_ns.saturating_sub(earlier.sum_ns);
        window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_buckets_and_sums_follow_what_was_recorded() {
        let mut l = Latency::new();
        assert_eq!((l.count(), l.quantile_ns(0.99)), (0, 0));
        for us in 1..=100u64 {
            l.record(us * 1_000);
        }
        assert_eq!(l.count(), 100);
        assert_eq!(l.sum_ns(), 5_050_000);
        let p50 = l.quantile_ns(0.5);
        assert!((49_000..=51_000).contains(&p50), "{p50}");
        assert_eq!(l.count_at_most(10_000), 10);
        assert_eq!(l.count_at_most(999), 0);
        l.record(u64::MAX);
        assert_eq!(l.count(), 101, "past the range: counted at the top");
        let mut m = Latency::new();
        m.add(&l);
        assert_eq!(m.count(), 101);
    }

    #[test]
    fn a_window_holds_what_came_after_the_earlier_copy() {
        let mut l = Latency::new();
        for _ in 0..10 {
            l.record(1_000_000);
        }
        let earlier = l.clone();
        for _ in 0..5 {
            l.record(9_000_000);
        }
        let w = l.since(&earlier);
        assert_eq!((w.count(), w.sum_ns()), (5, 45_000_000));
        assert!((8_900_000..=9_100_000).contains(&w.quantile_ns(0.5)));
        assert_eq!(earlier.since(&l).count(), 10, "not older: all of it");
    }

    #[test]
    fn a_coarse_histogram_counts_n_at_once_within_a_sixteenth() {
        let mut c = Latency::coarse();
        c.record_n(1_000_000, 3);
        c.record(3_000_000);
        assert_eq!((c.count(), c.sum_ns()), (4, 6_000_000));
        let p50 = c.quantile_ns(0.5);
        assert!(p50.abs_diff(1_000_000) <= 1_000_000 / 16, "{p50}");
        assert_eq!(c.count_at_most(2_000_000), 3);
        assert_eq!(c.count_at_most(5_000_000), 4);
        // A coarse one adds into a fine one (the node-wide histograms).
        let mut fine = Latency::new();
        fine.add(&c);
        assert_eq!(fine.count(), 4);
    }
}
