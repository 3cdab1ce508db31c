//! `SimClock`: virtual time, moved only by the simulator.
//!
//! Clones share one reading (an `Rc<Cell>`), so the simulated devices and the code under test see
//! the same `now`. Single-threaded by design (the whole simulated cluster runs on one thread).
//!
//! Invariant: time never goes back (`set` to an earlier time panics).

use crate::{Clock, Nanos};
use std::cell::Cell;
use std::rc::Rc;

/// A shared virtual monotonic clock starting at 0.
#[derive(Clone, Debug, Default)]
pub struct SimClock {
    now: Rc<Cell<u64>>,
}

impl SimClock {
    /// A clock reading 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time forward by `ns`.
    pub fn advance(&self, ns: u64) {
        self.now.set(self.now.get().saturating_add(ns));
    }

    /// Sets the time to `ns`; panics if that is in the past (a monotonic clock).
    pub fn set(&self, ns: u64) {
        assert!(ns >= self.now.get(), "SimClock::set({ns}) goes back from {}", self.now.get());
        self.now.set(ns);
    }

    /// The reading in nanoseconds.
    pub fn nanos(&self) -> u64 {
        self.now.get()
    }
}

/// One simulated node's own clock against the reference time: its offset and its rate (a node's
/// clock that runs 2% fast has rate 1.02). Offsets never matter to Vigil (it compares intervals
/// on one clock only); rates are bounded by the read lease's drift margin.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NodeClock {
    /// Its reading at reference time 0.
    pub offset: u64,
    /// Its rate against the reference.
    pub rate: f64,
}

impl NodeClock {
    /// Its reading at reference time `t` (ns).
    pub fn at(&self, t: u64) -> Nanos {
        Nanos(self.offset + (t as f64 * self.rate) as u64)
    }
}

impl Clock for SimClock {
    fn now(&self) -> Nanos {
        Nanos(self.now.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_time() {
        let a = SimClock::new();
        let b = a.clone();
        a.advance(5);
        assert_eq!(b.now(), Nanos(5));
        b.set(9);
        assert_eq!(a.nanos(), 9);
    }

    #[test]
    #[should_panic(expected = "goes back")]
    fn set_refuses_the_past() {
        let c = SimClock::new();
        c.set(10);
        c.set(3);
    }
}
