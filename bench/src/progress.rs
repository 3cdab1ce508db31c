//! The live progress line: each generator thread publishes a few counters and a coarse latency
//! histogram through atomics; a separate printer thread sums them once a second and writes one line
//! to stderr (`\r`-updated on a terminal, one line per second otherwise).
//!
//! Invariants:
//! - the generator side never allocates, locks or blocks: every slot has exactly one writer (its
//!   thread), which publishes with relaxed load + store (no read-modify-write, no lock prefix);
//!   the printer only reads, so a line may mix counts a few ms apart, which is fine for a display;
//! - the live p99 comes from a log-linear histogram of 16 sub-buckets per power of two (about 6%
//!   resolution, reported as the bucket's upper bound): good enough to watch, never used in the
//!   report, whose percentiles come from the HDR histograms;
//! - the printer stops promptly (it sleeps in short steps) and prints a final newline on a terminal.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Buckets of the live latency histogram (covers every u64).
pub const LIVE_BUCKETS: usize = 1024;

/// The bucket of latency `v` ns: exact below 16, then 16 sub-buckets per power of two.
#[inline]
pub fn bucket_of(v: u64) -> usize {
    if v < 16 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as usize;
    (e - 3) * 16 + ((v >> (e - 4)) & 15) as usize
}

/// The largest value in bucket `b`.
pub fn bucket_upper(b: usize) -> u64 {
    if b < 16 {
        return b as u64;
    }
    let (e, sub) = (b / 16 + 3, (b % 16) as u64);
    ((16 + sub) << (e - 4)) + ((1u64 << (e - 4)) - 1)
}

/// One generator thread's published state.
#[derive(Debug)]
pub struct ProgressSlot {
    /// Requests stamped and queued (all phases).
    pub sent: AtomicU64,
    /// OK answers (all phases).
    pub answered: AtomicU64,
    /// Non-OK answers.
    pub errors: AtomicU64,
    /// Timeouts counted so far.
    pub timeouts: AtomicU64,
    /// The measured phase has begun on this thread.
    pub measuring: AtomicBool,
    live: Box<[AtomicU64]>,
}

impl Default for ProgressSlot {
    fn default() -> Self {
        Self {
            sent: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            measuring: AtomicBool::new(false),
            live: (0..LIVE_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl ProgressSlot {
    /// Counts one measured latency. Single writer: load + store, no atomic read-modify-write.
    #[inline]
    pub fn record_latency(&self, v: u64) {
        let c = &self.live[bucket_of(v)];
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Publishes the thread's running totals.
    #[inline]
    pub fn publish(&self, sent: u64, answered: u64, errors: u64, timeouts: u64) {
        self.sent.store(sent, Ordering::Relaxed);
        self.answered.store(answered, Ordering::Relaxed);
        self.errors.store(errors, Ordering::Relaxed);
        self.timeouts.store(timeouts, Ordering::Relaxed);
    }

    /// Starts a new run on this slot (a search trial): counters and histogram back to zero.
    pub fn reset(&self) {
        self.publish(0, 0, 0, 0);
        self.measuring.store(false, Ordering::Relaxed);
        for c in self.live.iter() {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// What every thread has published, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Requests sent.
    pub sent: u64,
    /// OK answers.
    pub answered: u64,
    /// Non-OK answers.
    pub errors: u64,
    /// Timeouts.
    pub timeouts: u64,
    /// Live p99 of the measured phase so far (ns), if any latency was recorded.
    pub p99_ns: Option<u64>,
    /// Some thread is in its measured phase.
    pub measuring: bool,
}

/// The slots of every generator thread.
#[derive(Debug, Default)]
pub struct Progress {
    slots: Vec<Arc<ProgressSlot>>,
}

impl Progress {
    /// Slots for `threads` generator threads.
    pub fn new(threads: usize) -> Self {
        Self { slots: (0..threads).map(|_| Arc::new(ProgressSlot::default())).collect() }
    }

    /// Thread `i`'s slot.
    pub fn slot(&self, i: usize) -> Arc<ProgressSlot> {
        Arc::clone(&self.slots[i])
    }

    /// Resets every slot (before a search trial).
    pub fn reset(&self) {
        self.slots.iter().for_each(|s| s.reset());
    }

    /// The sum over all threads.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        let mut hist = [0u64; LIVE_BUCKETS];
        for slot in &self.slots {
            s.sent += slot.sent.load(Ordering::Relaxed);
            s.answered += slot.answered.load(Ordering::Relaxed);
            s.errors += slot.errors.load(Ordering::Relaxed);
            s.timeouts += slot.timeouts.load(Ordering::Relaxed);
            s.measuring |= slot.measuring.load(Ordering::Relaxed);
            for (h, c) in hist.iter_mut().zip(slot.live.iter()) {
                *h += c.load(Ordering::Relaxed);
            }
        }
        let total: u64 = hist.iter().sum();
        if total > 0 {
            let want = (total as f64 * 0.99).ceil() as u64;
            let mut acc = 0;
            for (b, &c) in hist.iter().enumerate() {
                acc += c;
                if acc >= want {
                    s.p99_ns = Some(bucket_upper(b));
                    break;
                }
            }
        }
        s
    }
}

/// Formats a progress line from two snapshots `dt` apart.
pub fn line(prev: &Snapshot, now: &Snapshot, dt: Duration, elapsed: Duration) -> String {
    let secs = dt.as_secs_f64().max(1e-9);
    let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
    let p99 = match now.p99_ns {
        Some(ns) => format!("{:.1} us", ns as f64 / 1e3),
        None => "-".to_owned(),
    };
    format!(
        "[{:>6.1} s{}] sent {:>10.0}/s answered {:>10.0}/s | sent {} answered {} errors {} timeouts {} | p99 {}",
        elapsed.as_secs_f64(),
        if now.measuring { "" } else { " warm-up" },
        rate(prev.sent, now.sent),
        rate(prev.answered, now.answered),
        now.sent,
        now.answered,
        now.errors,
        now.timeouts,
        p99
    )
}

/// The printer thread: prints a line every `every` until stopped.
#[derive(Debug)]
pub struct Printer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Printer {
    /// Starts printing `progress` to stderr every `every`.
    pub fn start(progress: Arc<Progress>, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("loadgen-progress".into())
            .spawn(move || {
                let tty = std::io::stderr().is_terminal();
                let t0 = Instant::now();
                let (mut prev, mut prev_t) = (progress.snapshot(), t0);
                let mut printed = false;
                while !stop2.load(Ordering::Relaxed) {
                    let next = prev_t + every;
                    while Instant::now() < next && !stop2.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    if stop2.load(Ordering::Relaxed) {
                        break;
                    }
                    let (now, now_t) = (progress.snapshot(), Instant::now());
                    let l = line(&prev, &now, now_t - prev_t, now_t - t0);
                    let mut err = std::io::stderr().lock();
                    // A display: a failed write is not worth stopping the run for.
                    let _ = if tty { write!(err, "\r{l}\x1b[K") } else { writeln!(err, "{l}") };
                    let _ = err.flush();
                    printed = true;
                    (prev, prev_t) = (now, now_t);
                }
                if tty && printed {
                    let _ = writeln!(std::io::stderr());
                }
            })
            .expect("spawning the progress thread");
        Self { stop, thread: Some(thread) }
    }

    /// Stops the printer and waits for it.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Printer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_bound_their_values() {
        let mut last = 0;
        for v in (1u64..100_000).chain([1 << 40, u64::MAX / 3, u64::MAX]) {
            let b = bucket_of(v);
            assert!(b < LIVE_BUCKETS && b >= last, "{v}");
            assert!(bucket_upper(b) >= v, "{v}");
            assert!(b == 0 || bucket_upper(b - 1) < v, "{v}");
            // About 6% resolution.
            assert!(bucket_upper(b) as f64 <= v as f64 * 1.07 + 1.0, "{v}");
            last = b;
        }
    }

    #[test]
    fn snapshot_sums_threads_and_finds_p99() {
        let p = Progress::new(2);
        let (a, b) = (p.slot(0), p.slot(1));
        for _ in 0..990 {
            a.record_latency(1_000);
        }
        for _ in 0..10 {
            b.record_latency(1_000_000);
        }
        a.publish(10, 5, 1, 0);
        b.publish(20, 7, 0, 2);
        let s = p.snapshot();
        assert_eq!((s.sent, s.answered, s.errors, s.timeouts), (30, 12, 1, 2));
        let p99 = s.p99_ns.unwrap();
        assert!((1_000..1_100).contains(&p99), "{p99}");
        let l = line(&Snapshot::default(), &s, Duration::from_secs(1), Duration::from_secs(3));
        assert!(l.contains("sent 30") && l.contains("p99 1.0"), "{l}");
        p.reset();
        assert_eq!(p.snapshot(), Snapshot::default());
    }
}
