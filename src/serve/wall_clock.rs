//! The serving node's clock: Unix-epoch nanoseconds, read from the monotonic clock.
//!
//! Batch timestamps (`partition::batch`) are what projections read as time (`Applied::time_ns`):
//! key expiry compares them with absolute Unix times (EXAT, PXAT) and they must mean the same
//! after a restart. So the clock is anchored once per process to the wall clock
//! (`SystemTime::now()` at the first read, shared by every shard) and advanced from there by the
//! monotonic clock: it never goes back while the process runs, even if the wall clock is stepped;
//! a step shows only at the next start.
//!
//! Invariant: every `now()` of one process is at or after every earlier one, on any thread.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use vigil_pmd::{Clock, Nanos};

/// The process's anchor: a monotonic instant and the Unix time (ns) it stood for.
static ANCHOR: OnceLock<(Instant, u64)> = OnceLock::new();

/// `t` as Unix ns; a wall clock before 1970 is a broken host: time then starts at 0.
pub fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Unix-epoch nanoseconds, advanced monotonically from one anchor per process.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    origin: Instant,
    epoch_ns: u64,
}

impl WallClock {
    /// The process's clock (anchored at its first use).
    pub fn process() -> Self {
        let &(origin, epoch_ns) = ANCHOR.get_or_init(|| (Instant::now(), unix_ns(SystemTime::now())));
        Self { origin, epoch_ns }
    }
}

impl Clock for WallClock {
    #[inline]
    fn now(&self) -> Nanos {
        Nanos(self.epoch_ns + self.origin.elapsed().as_nanos() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_reads_unix_time_and_never_goes_back() {
        let c = WallClock::process();
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
        let a = c.now();
        // Within a minute of the wall clock (the anchor was taken at the first use).
        assert!(a.0.abs_diff(wall) < 60_000_000_000, "{} vs {wall}", a.0);
        let b = WallClock::process().now();
        assert!(b >= a);
    }
}
