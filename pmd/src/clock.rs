//! Time as a value: the `Clock` seam.
//!
//! The shard loop reads the clock once per poll iteration and passes the reading down; nothing below
//! it reads time itself, so the simulator can drive it with a virtual clock.

use std::time::Instant;

/// Nanoseconds on a monotonic clock, from an arbitrary origin fixed per clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nanos(pub u64);

impl Nanos {
    /// Time elapsed since `earlier`, zero if `earlier` is later.
    #[inline]
    pub fn saturating_since(self, earlier: Nanos) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// A monotonic clock.
pub trait Clock {
    /// The current time.
    fn now(&self) -> Nanos;
}

/// The process's monotonic clock (`CLOCK_MONOTONIC` through `std::time::Instant`, a vDSO read).
#[derive(Clone, Copy, Debug)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        Self { origin: Instant::now() }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> Nanos {
        Nanos(self.origin.elapsed().as_nanos() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_never_goes_back() {
        let c = MonotonicClock::new();
        let a = c.now();
        let b = c.now();
        assert!(b >= a);
        assert_eq!(a.saturating_since(b), 0);
    }
}
