//! The open-loop send schedule: when each request was *meant* to be sent.
//!
//! Request `k` belongs to datagram `d = k / batch`, and every request of a datagram shares the
//! datagram's intended send time `start + floor(d * batch * 1e9 / rate)` ns. That is the time of the
//! datagram's first request on the plain per-request schedule `start + k * 1e9 / rate`, so batching
//! keeps the offered request rate and only coarsens the spacing.
//!
//! Invariants (unit-tested against brute force):
//! - the intended time is a pure function of `k`: nothing is stored per request, and a sender that
//!   falls behind still stamps the time it *should* have sent at, so its lateness shows up as latency
//!   rather than as a quietly lower rate (no coordinated omission);
//! - `datagrams_due(now)` is exactly the number of datagrams whose intended time is `<= now`, capped
//!   at the run's total; it is monotonic in `now`;
//! - all arithmetic is integer (u128 intermediates), so there is no floating-point drift over long
//!   runs at high rates.

use vigil_pmd::Nanos;

const NS_PER_S: u128 = 1_000_000_000;

/// The schedule of one run: `total_requests` requests at `rate` per second from `start`, grouped in
/// datagrams of `batch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    start: u64,
    rate: u64,
    batch: u64,
    total_requests: u64,
    warmup_end: u64,
}

impl Schedule {
    /// A schedule of `rate` requests/s starting at `start`, lasting `warmup_ns + duration_ns`, in
    /// datagrams of `batch` requests. Requests whose intended time falls in the first `warmup_ns`
    /// are warm-up requests (not latency-recorded).
    ///
    /// Panics when `rate` or `batch` is zero (the CLI rejects both).
    pub fn new(start: Nanos, rate: u64, batch: u32, warmup_ns: u64, duration_ns: u64) -> Self {
        assert!(rate > 0, "rate must be positive");
        assert!(batch > 0, "batch must be positive");
        let run_ns = u128::from(warmup_ns) + u128::from(duration_ns);
        // Requests with intended time strictly inside [0, run_ns): k * 1e9 / rate < run_ns.
        let total = (run_ns * u128::from(rate)).div_ceil(NS_PER_S);
        Self {
            start: start.0,
            rate,
            batch: u64::from(batch),
            total_requests: u64::try_from(total).unwrap_or(u64::MAX),
            warmup_end: start.0.saturating_add(warmup_ns),
        }
    }

    /// Offered requests per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Requests per datagram.
    pub fn batch(&self) -> u64 {
        self.batch
    }

    /// When the schedule starts.
    pub fn start(&self) -> Nanos {
        Nanos(self.start)
    }

    /// When the warm-up ends and measurement begins.
    pub fn warmup_end(&self) -> Nanos {
        Nanos(self.warmup_end)
    }

    /// Requests in the whole run (warm-up included).
    pub fn total_requests(&self) -> u64 {
        self.total_requests
    }

    /// Datagrams in the whole run (the last may hold fewer than `batch` requests).
    pub fn total_datagrams(&self) -> u64 {
        self.total_requests.div_ceil(self.batch)
    }

    /// The first request id of datagram `d`, and how many requests it holds.
    #[inline]
    pub fn datagram_requests(&self, d: u64) -> (u64, u64) {
        let first = d * self.batch;
        (first, self.batch.min(self.total_requests.saturating_sub(first)))
    }

    /// Intended send time of datagram `d`.
    #[inline]
    pub fn datagram_time(&self, d: u64) -> Nanos {
        let offset = u128::from(d) * u128::from(self.batch) * NS_PER_S / u128::from(self.rate);
        Nanos(self.start.saturating_add(u64::try_from(offset).unwrap_or(u64::MAX)))
    }

    /// Intended send time of request `k` (its datagram's).
    #[inline]
    pub fn intended(&self, k: u64) -> Nanos {
        self.datagram_time(k / self.batch)
    }

    /// True when request `k` is in the measured phase (its intended time is past the warm-up).
    #[inline]
    pub fn is_measured(&self, k: u64) -> bool {
        self.intended(k).0 >= self.warmup_end
    }

    /// How many datagrams are due by `now`: those whose intended time is `<= now`.
    #[inline]
    pub fn datagrams_due(&self, now: Nanos) -> u64 {
        if now.0 < self.start {
            return 0;
        }
        let elapsed = u128::from(now.0 - self.start);
        // floor(d * B * 1e9 / rate) <= e  <=>  d * B * 1e9 < (e + 1) * rate, so the count of such
        // d >= 0 is ceil((e + 1) * rate / (B * 1e9)).
        let per_datagram = u128::from(self.batch) * NS_PER_S;
        let due = ((elapsed + 1) * u128::from(self.rate)).div_ceil(per_datagram);
        u64::try_from(due).unwrap_or(u64::MAX).min(self.total_datagrams())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_covers_warmup_and_duration() {
        let s = Schedule::new(Nanos(0), 2000, 1, 500_000_000, 1_000_000_000);
        assert_eq!(s.total_requests(), 3000);
        assert_eq!(s.total_datagrams(), 3000);
        let s = Schedule::new(Nanos(0), 3, 2, 0, 1_000_000_000);
        assert_eq!(s.total_requests(), 3);
        assert_eq!(s.total_datagrams(), 2);
        assert_eq!(s.datagram_requests(1), (2, 1));
    }

    #[test]
    fn due_matches_brute_force() {
        for &(rate, batch) in &[(1u64, 1u32), (3, 1), (7, 2), (1000, 4), (999_983, 3), (30_000_000, 32)] {
            let s = Schedule::new(Nanos(1_000), rate, batch, 0, 2_000_000_000);
            let times: Vec<u64> = (0..s.total_datagrams().min(5000)).map(|d| s.datagram_time(d).0).collect();
            for probe in [0u64, 999, 1_000, 1_001, 1_500, 333_334_333, 1_000_001_000, 1_999_999_999] {
                let brute = times.iter().filter(|&&t| t <= probe).count() as u64;
                if brute < times.len() as u64 {
                    assert_eq!(
                        s.datagrams_due(Nanos(probe)),
                        brute,
                        "rate {rate} batch {batch} probe {probe}"
                    );
                }
            }
            // Exactly at a datagram's time it is due; one ns before, it is not.
            for d in [0u64, 1, 2, 17, 1000] {
                if d < times.len() as u64 {
                    let t = s.datagram_time(d).0;
                    assert_eq!(s.datagrams_due(Nanos(t)), d + 1);
                    if t > 1_000 {
                        assert!(s.datagrams_due(Nanos(t - 1)) <= d);
                    }
                }
            }
        }
    }

    #[test]
    fn due_is_capped_and_monotonic() {
        let s = Schedule::new(Nanos(0), 100, 1, 0, 1_000_000_000);
        assert_eq!(s.datagrams_due(Nanos(u64::MAX / 2)), 100);
        let mut last = 0;
        for t in (0..1_200_000_000).step_by(3_333_333) {
            let d = s.datagrams_due(Nanos(t));
            assert!(d >= last);
            last = d;
        }
    }

    #[test]
    fn requests_in_a_datagram_share_its_intended_time() {
        let s = Schedule::new(Nanos(10), 1000, 4, 0, 1_000_000_000);
        assert_eq!(s.intended(0), Nanos(10));
        assert_eq!(s.intended(3), Nanos(10));
        // Datagram 1 starts at request 4, whose per-request time is 4 ms.
        assert_eq!(s.intended(4), Nanos(10 + 4_000_000));
        assert_eq!(s.intended(7), Nanos(10 + 4_000_000));
    }

    #[test]
    fn warmup_split_is_by_intended_time() {
        let s = Schedule::new(Nanos(0), 1000, 1, 100_000_000, 1_000_000_000);
        assert!(!s.is_measured(99));
        assert!(s.is_measured(100));
        assert_eq!(s.total_requests(), 1100);
    }

    #[test]
    fn no_drift_at_high_rates_over_long_runs() {
        let s = Schedule::new(Nanos(0), 29_999_999, 1, 0, 3_600_000_000_000);
        let k = s.total_requests() - 1;
        let t = s.intended(k).0;
        assert!(t < 3_600_000_000_000 && t > 3_599_999_999_000);
    }
}
