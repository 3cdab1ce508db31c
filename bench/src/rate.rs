//! The open-loop send schedule: when each request was *meant* to be sent, from a
//! [`ScheduleSpec`] (fixed, Poisson, step, ramp, bursts).
//!
//! A run is `warmup + duration` long. The schedule's own time axis starts at the end of the
//! warm-up (so a ramp or a step sequence lines up with the measured phase and its timeline); the
//! warm-up offers the schedule's *initial* rate (fixed: its rate; Poisson: Poisson at its rate;
//! step: the first step's rate; ramp: `from`; bursts: the in-burst rate `requests / within`).
//! Fixed and Poisson have no phases, so their warm-up is simply their first seconds. After its
//! end a step sequence holds its last rate and a ramp holds `to`; bursts repeat.
//!
//! Requests are numbered globally `j = 0, 1, 2, ...` in time order; with `N` generator threads
//! thread `i` takes `j = i, i + N, i + 2N, ...` (interleaved, so together they offer the exact
//! schedule), except Poisson, where each thread runs its own Poisson process at `rate / N` with its
//! own seed (a sum of independent Poisson processes is a Poisson process of the summed rate).
//! A thread groups its consecutive requests into datagrams of `batch`; every request of a datagram
//! shares the datagram's intended send time, that of its first request.
//!
//! Invariants (unit-tested):
//! - intended times are non-decreasing in `j`, and computed from `j` in closed form for every
//!   deterministic kind (fixed uses integer arithmetic, u128 intermediates: no drift over long
//!   runs at high rates; step, ramp and bursts use f64 per segment, error far below 1 ns), so they
//!   are generated incrementally with nothing stored per request;
//! - no request is scheduled at or after the end of the run; the last datagram may be partial;
//! - a sender that falls behind still stamps the time it *should* have sent at (the caller keeps
//!   it next to the request id in the outstanding ring), so its lateness shows as latency.

use crate::spec::ScheduleSpec;

const NS_PER_S: f64 = 1e9;

/// The requests/s a schedule offers at the start of the measured phase (the warm-up rate).
pub fn initial_rate(spec: &ScheduleSpec) -> f64 {
    match spec {
        ScheduleSpec::Fixed { rate } | ScheduleSpec::Poisson { rate, .. } => *rate,
        ScheduleSpec::Step { steps } => steps.first().map_or(1.0, |s| s.rate),
        ScheduleSpec::Ramp { from, .. } => *from,
        ScheduleSpec::Bursts { requests, within, .. } => *requests as f64 / within,
    }
}

/// The schedule with every rate multiplied by `f` (used by the search, which scales a schedule to
/// each trial's rate).
pub fn scaled(spec: &ScheduleSpec, f: f64) -> ScheduleSpec {
    match spec {
        ScheduleSpec::Fixed { rate } => ScheduleSpec::Fixed { rate: rate * f },
        ScheduleSpec::Poisson { rate, seed } => ScheduleSpec::Poisson { rate: rate * f, seed: *seed },
        ScheduleSpec::Step { steps } => ScheduleSpec::Step {
            steps: steps
                .iter()
                .map(|s| crate::spec::RateStep { rate: s.rate * f, seconds: s.seconds })
                .collect(),
        },
        ScheduleSpec::Ramp { from, to, seconds } => {
            ScheduleSpec::Ramp { from: from * f, to: to * f, seconds: *seconds }
        }
        ScheduleSpec::Bursts { requests, within, idle } => ScheduleSpec::Bursts {
            requests: ((*requests as f64 * f).round() as u64).max(1),
            within: *within,
            idle: *idle,
        },
    }
}

/// A small, fast, seedable generator (SplitMix64): reproducible Poisson gaps without a dependency.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1]: never 0, so `-ln(u)` is finite.
    #[inline]
    pub fn next_open01(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Closed-form time of global request `j` for the deterministic kinds, or the Poisson state.
#[derive(Clone, Debug)]
enum Source {
    /// `j * 1e12 / rate_milli` ns (integer; `rate_milli` = requests per 1000 s).
    Fixed { rate_milli: u128 },
    /// Incremental: each request `Exp(rate)` after the previous one.
    Poisson { mean_gap_ns: f64, rng: SplitMix64, t: f64 },
    /// Warm-up at `warm_rate` for `warm_count` requests, then the phased part from `warmup_ns`.
    Phased { warm_rate: f64, warm_count: u64, warmup_ns: f64, phases: Phases },
}

#[derive(Clone, Debug)]
enum Phases {
    /// Segments of fixed rate: (first global index after the warm-up, start offset s, rate).
    Steps(Vec<(u64, f64, f64)>),
    /// Rate from `from` to `to` over `secs`, then `to`.
    Ramp { from: f64, to: f64, secs: f64 },
    /// `requests` evenly within `within`, then `idle`, repeated.
    Bursts { requests: u64, within: f64, period: f64 },
}

impl Phases {
    /// Seconds after the warm-up at which the `m`-th request of the phased part is due.
    fn offset_s(&self, m: u64) -> f64 {
        match self {
            Phases::Steps(segs) => {
                // The segment holding m: the last whose first index is <= m (segs[0].0 == 0).
                let i = segs.partition_point(|s| s.0 <= m) - 1;
                let (first, start, rate) = segs[i];
                start + (m - first) as f64 / rate
            }
            Phases::Ramp { from, to, secs } => {
                let (from, to, secs) = (*from, *to, *secs);
                // Requests by time t <= secs: from*t + a*t^2 with a = (to - from) / (2 secs).
                let a = (to - from) / (2.0 * secs);
                let ramp_total = (from + to) / 2.0 * secs;
                let m = m as f64;
                if m < ramp_total {
                    // Solve a t^2 + from t - m = 0 in the form that is stable for a -> 0.
                    let disc = (from * from + 4.0 * a * m).max(0.0);
                    2.0 * m / (from + disc.sqrt())
                } else {
                    secs + (m - ramp_total) / to
                }
            }
            Phases::Bursts { requests, within, period } => {
                let (c, r) = (m / requests, m % requests);
                c as f64 * period + r as f64 * within / *requests as f64
            }
        }
    }
}

/// One thread's stream of intended send times, grouped into datagrams.
#[derive(Clone, Debug)]
pub struct Arrivals {
    source: Source,
    /// This thread's first global index and the stride (thread count); Poisson: (0, 1).
    first: u64,
    stride: u64,
    batch: u64,
    run_ns: u64,
    /// The next local request's global index (deterministic kinds).
    next_local: u64,
    /// The next request's intended offset, already computed.
    pending: u64,
}

impl Arrivals {
    /// Thread `thread` of `threads`' share of `spec` over a run of `warmup_ns + duration_ns`, in
    /// datagrams of `batch` requests. `spec` must be valid (see [`ScheduleSpec::validate`]).
    pub fn new(
        spec: &ScheduleSpec,
        thread: u32,
        threads: u32,
        batch: u32,
        warmup_ns: u64,
        duration_ns: u64,
    ) -> Self {
        assert!(threads > 0 && thread < threads, "thread {thread} of {threads}");
        assert!(batch > 0, "batch must be positive");
        let run_ns = warmup_ns.saturating_add(duration_ns);
        let warm_s = warmup_ns as f64 / NS_PER_S;
        let phased = |phases: Phases| {
            let warm_rate = initial_rate(spec);
            Source::Phased {
                warm_rate,
                warm_count: (warm_s * warm_rate).ceil() as u64,
                warmup_ns: warmup_ns as f64,
                phases,
            }
        };
        let (source, first, stride) = match spec {
            ScheduleSpec::Fixed { rate } => {
                let rate_milli = ((rate * 1000.0).round() as u128).max(1);
                (Source::Fixed { rate_milli }, u64::from(thread), u64::from(threads))
            }
            ScheduleSpec::Poisson { rate, seed } => {
                // A distinct, reproducible stream per thread.
                let mut rng = SplitMix64::new(seed ^ u64::from(thread).wrapping_mul(0xA24B_AED4_963E_E407));
                rng.next_u64();
                let mean_gap_ns = NS_PER_S * f64::from(threads) / rate;
                (Source::Poisson { mean_gap_ns, rng, t: 0.0 }, 0, 1)
            }
            ScheduleSpec::Step { steps } => {
                let mut segs = Vec::with_capacity(steps.len());
                let (mut first, mut start) = (0u64, 0.0f64);
                for s in steps {
                    segs.push((first, start, s.rate));
                    // Requests of this step: those at start + n / rate < start + seconds.
                    first += (s.seconds * s.rate).ceil() as u64;
                    start += s.seconds;
                }
                (phased(Phases::Steps(segs)), u64::from(thread), u64::from(threads))
            }
            ScheduleSpec::Ramp { from, to, seconds } => (
                phased(Phases::Ramp { from: *from, to: *to, secs: *seconds }),
                u64::from(thread),
                u64::from(threads),
            ),
            ScheduleSpec::Bursts { requests, within, idle } => (
                phased(Phases::Bursts { requests: *requests, within: *within, period: within + idle }),
                u64::from(thread),
                u64::from(threads),
            ),
        };
        let mut a =
            Self { source, first, stride, batch: u64::from(batch), run_ns, next_local: first, pending: 0 };
        a.pending = a.advance();
        a
    }

    /// Intended offset (ns from the run's start) of global request `j` (deterministic kinds).
    fn time_of(&self, j: u64) -> u64 {
        match &self.source {
            Source::Fixed { rate_milli } => {
                let t = u128::from(j) * 1_000_000_000_000 / rate_milli;
                u64::try_from(t).unwrap_or(u64::MAX)
            }
            Source::Phased { warm_rate, warm_count, warmup_ns, phases } => {
                let t = if j < *warm_count {
                    j as f64 * NS_PER_S / warm_rate
                } else {
                    warmup_ns + phases.offset_s(j - warm_count) * NS_PER_S
                };
                // `as` saturates: a time past u64 is past the run's end anyway.
                t as u64
            }
            Source::Poisson { .. } => unreachable!("Poisson times are incremental"),
        }
    }

    /// Computes the next request's offset and moves past it.
    #[inline]
    fn advance(&mut self) -> u64 {
        if let Source::Poisson { mean_gap_ns, rng, t } = &mut self.source {
            let now = *t;
            *t += -rng.next_open01().ln() * *mean_gap_ns;
            return now as u64;
        }
        let j = self.next_local;
        self.next_local = j.saturating_add(self.stride);
        self.time_of(j)
    }

    /// The run's length (warm-up included), ns.
    pub fn run_ns(&self) -> u64 {
        self.run_ns
    }

    /// Offset of the next datagram's intended send time, if any is left.
    #[inline]
    pub fn peek(&self) -> Option<u64> {
        (self.pending < self.run_ns).then_some(self.pending)
    }

    /// The next datagram: its intended offset (ns from the run's start) and how many requests it
    /// holds (`batch`, or fewer for the last one); `None` once the run's schedule is exhausted.
    #[inline]
    pub fn next_datagram(&mut self) -> Option<(u64, u64)> {
        let t0 = self.peek()?;
        let mut n = 1;
        self.pending = self.advance();
        while n < self.batch && self.pending < self.run_ns {
            n += 1;
            self.pending = self.advance();
        }
        Some((t0, n))
    }

    /// This thread's first global request index (for tests).
    pub fn first_index(&self) -> u64 {
        self.first
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::RateStep;

    const S: u64 = 1_000_000_000;

    fn all(
        spec: &ScheduleSpec,
        thread: u32,
        threads: u32,
        batch: u32,
        warm: u64,
        dur: u64,
    ) -> Vec<(u64, u64)> {
        let mut a = Arrivals::new(spec, thread, threads, batch, warm, dur);
        std::iter::from_fn(|| a.next_datagram()).collect()
    }

    fn requests(d: &[(u64, u64)]) -> u64 {
        d.iter().map(|x| x.1).sum()
    }

    fn count_in(d: &[(u64, u64)], from: u64, to: u64) -> u64 {
        d.iter().filter(|x| x.0 >= from && x.0 < to).map(|x| x.1).sum()
    }

    #[test]
    fn fixed_matches_the_closed_form_and_covers_the_run() {
        let f = ScheduleSpec::Fixed { rate: 2000.0 };
        let d = all(&f, 0, 1, 1, S / 2, S);
        assert_eq!(requests(&d), 3000);
        assert_eq!(d[1], (500_000, 1));
        let d = all(&ScheduleSpec::Fixed { rate: 3.0 }, 0, 1, 2, 0, S);
        assert_eq!(d, vec![(0, 2), (666_666_666, 1)]);
        // Datagram d's time is that of request d * batch on the per-request schedule.
        let d = all(&ScheduleSpec::Fixed { rate: 1000.0 }, 0, 1, 4, 0, S);
        assert_eq!(d[1].0, 4_000_000);
    }

    #[test]
    fn no_drift_at_high_rates_over_long_runs() {
        let a = Arrivals::new(&ScheduleSpec::Fixed { rate: 29_999_999.0 }, 0, 1, 1, 0, 3600 * S);
        let j = 29_999_999u64 * 3600 - 1;
        let t = a.time_of(j);
        assert!(t < 3600 * S && t > 3600 * S - 1_000, "{t}");
    }

    #[test]
    fn threads_interleave_into_exactly_the_single_thread_schedule() {
        for spec in [
            ScheduleSpec::Fixed { rate: 999.0 },
            ScheduleSpec::Ramp { from: 100.0, to: 900.0, seconds: 0.5 },
            ScheduleSpec::Bursts { requests: 7, within: 0.1, idle: 0.05 },
        ] {
            let one = all(&spec, 0, 1, 1, S / 10, S);
            let mut merged: Vec<(u64, u64)> = (0..3).flat_map(|i| all(&spec, i, 3, 1, S / 10, S)).collect();
            merged.sort_unstable();
            assert_eq!(merged, one, "{spec:?}");
        }
    }

    #[test]
    fn times_are_monotonic_and_inside_the_run() {
        for spec in [
            ScheduleSpec::Poisson { rate: 5000.0, seed: 3 },
            ScheduleSpec::Step {
                steps: vec![
                    RateStep { rate: 100.0, seconds: 0.25 },
                    RateStep { rate: 3000.0, seconds: 0.25 },
                ],
            },
            ScheduleSpec::Ramp { from: 3000.0, to: 10.0, seconds: 0.7 },
            ScheduleSpec::Bursts { requests: 100, within: 0.1, idle: 0.2 },
        ] {
            let d = all(&spec, 0, 1, 3, S / 5, S);
            assert!(d.windows(2).all(|w| w[0].0 <= w[1].0), "{spec:?}");
            assert!(d.iter().all(|x| x.0 < 6 * S / 5 && (1..=3).contains(&x.1)), "{spec:?}");
        }
    }

    #[test]
    fn poisson_mean_rate_and_exponential_gaps() {
        let d = all(&ScheduleSpec::Poisson { rate: 20_000.0, seed: 42 }, 0, 1, 1, 0, 5 * S);
        let n = requests(&d) as f64;
        assert!((n / 5.0 - 20_000.0).abs() / 20_000.0 < 0.02, "{n}");
        let gaps: Vec<f64> = d.windows(2).map(|w| (w[1].0 - w[0].0) as f64).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        let cv = var.sqrt() / mean;
        assert!((cv - 1.0).abs() < 0.03, "coefficient of variation {cv}");
        // Reproducible from the seed; another seed differs.
        assert_eq!(d, all(&ScheduleSpec::Poisson { rate: 20_000.0, seed: 42 }, 0, 1, 1, 0, 5 * S));
        assert_ne!(d, all(&ScheduleSpec::Poisson { rate: 20_000.0, seed: 43 }, 0, 1, 1, 0, 5 * S));
    }

    #[test]
    fn step_sends_each_steps_count_and_holds_the_last_rate() {
        let spec = ScheduleSpec::Step {
            steps: vec![RateStep { rate: 1000.0, seconds: 0.5 }, RateStep { rate: 4000.0, seconds: 0.25 }],
        };
        // 0.2 s of warm-up at the first rate, then 0.5 s at 1000, 0.25 s at 4000, 0.25 s held.
        let w = S / 5;
        let d = all(&spec, 0, 1, 1, w, S);
        assert_eq!(count_in(&d, 0, w), 200);
        assert_eq!(count_in(&d, w, w + S / 2), 500);
        assert_eq!(count_in(&d, w + S / 2, w + 3 * S / 4), 1000);
        assert_eq!(count_in(&d, w + 3 * S / 4, w + S), 1000);
    }

    #[test]
    fn ramp_counts_follow_the_integral() {
        // 1000 -> 3000 over 1 s: 2000 requests in the ramp, then 3000/s.
        let spec = ScheduleSpec::Ramp { from: 1000.0, to: 3000.0, seconds: 1.0 };
        let d = all(&spec, 0, 1, 1, 0, 2 * S);
        assert_eq!(count_in(&d, 0, S), 2000);
        assert_eq!(count_in(&d, S, 2 * S), 3000);
        // The first half second: 1000 * 0.5 + 1000 * 0.25 = 750.
        let first_half = count_in(&d, 0, S / 2) as i64;
        assert!((first_half - 750).abs() <= 1, "{first_half}");
        // Batched, the same requests.
        assert_eq!(requests(&all(&spec, 0, 1, 8, 0, 2 * S)), 5000);
    }

    #[test]
    fn bursts_send_the_burst_then_nothing() {
        let spec = ScheduleSpec::Bursts { requests: 100, within: 0.2, idle: 0.3 };
        let d = all(&spec, 0, 1, 1, 0, 2 * S);
        for c in 0..4 {
            let start = c * S / 2;
            assert_eq!(count_in(&d, start, start + S / 5), 100, "burst {c}");
            assert_eq!(count_in(&d, start + S / 5, start + S / 2), 0, "idle {c}");
        }
        assert_eq!(requests(&d), 400);
    }

    #[test]
    fn scaling_multiplies_rates() {
        assert_eq!(scaled(&ScheduleSpec::Fixed { rate: 10.0 }, 2.5), ScheduleSpec::Fixed { rate: 25.0 });
        assert_eq!(initial_rate(&ScheduleSpec::Bursts { requests: 10, within: 2.0, idle: 1.0 }), 5.0);
    }
}
