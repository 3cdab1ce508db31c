//! Which requests are still waiting for an answer, without per-request allocation.
//!
//! A ring of `window` slots (a power of two): slot `k & (window - 1)` holds `(k, intended_ns)` while
//! request `k` is outstanding and [`EMPTY`] otherwise. The intended send time lives here, next to
//! the id, because schedules such as Poisson or a ramp have no closed form from `k` back to its
//! time. Requests are issued in increasing id order, so issuing `k` can only find the slot held by
//! `k - window` (or an older id never issued in this slot): that request has been outstanding for
//! `window` requests, which at the peak offered rate is at least the timeout when
//! `window >= rate * timeout` (see [`window_for`]), so it is a timeout.
//!
//! Invariants:
//! - an answer is accepted once: completing `k` clears its slot, so a duplicate (or an answer for an
//!   id never issued, or already evicted) returns `false` and is the caller's `unexpected`;
//! - `outstanding()` equals issued minus completed minus evicted at all times;
//! - nothing allocates after [`Outstanding::new`].

/// Marks a free slot. Request ids never reach it (that would be 2^64 requests).
pub const EMPTY: u64 = u64::MAX;

/// Largest ring: 2^24 slots (256 MiB). Beyond it, requests older than `window / rate` count as
/// timed out even if the timeout is longer; [`window_for`] reports that.
pub const WINDOW_MAX: u64 = 1 << 24;

/// The ring size for `rate` requests/s and a timeout of `timeout_ns`: the smallest power of two
/// holding every request that can be outstanding within the timeout, plus one batch of slack,
/// capped at [`WINDOW_MAX`]. Returns the size and whether it was capped.
pub fn window_for(rate: u64, timeout_ns: u64, batch: u32) -> (u64, bool) {
    let need = u128::from(rate) * u128::from(timeout_ns) / 1_000_000_000 + u128::from(batch) + 1;
    let capped = need > u128::from(WINDOW_MAX);
    let need = u64::try_from(need.min(u128::from(WINDOW_MAX))).expect("capped");
    (need.next_power_of_two().min(WINDOW_MAX), capped)
}

/// The outstanding-request ring.
#[derive(Debug)]
pub struct Outstanding {
    /// `(id, intended_ns)`; `id == EMPTY` marks a free slot.
    slots: Vec<(u64, u64)>,
    mask: u64,
    outstanding: u64,
    /// Per slot: the node (an index of [`crate::leaders::Leaders`]) the request last went to.
    nodes: Vec<u8>,
}

impl Outstanding {
    /// A ring of `window` slots; `window` must be a power of two.
    pub fn new(window: u64) -> Self {
        assert!(window.is_power_of_two(), "window {window} is not a power of two");
        let len = usize::try_from(window).expect("window fits in memory");
        Self { slots: vec![(EMPTY, 0); len], mask: window - 1, outstanding: 0, nodes: vec![0; len] }
    }

    /// Ring size.
    pub fn window(&self) -> u64 {
        self.mask + 1
    }

    /// Requests issued and neither answered nor evicted.
    pub fn outstanding(&self) -> u64 {
        self.outstanding
    }

    /// Marks `k`, meant to be sent at `intended_ns`, outstanding. Returns the `(id, intended_ns)`
    /// it evicted, still unanswered after `window` requests: a timeout for the caller to count.
    #[inline]
    pub fn issue(&mut self, k: u64, intended_ns: u64) -> Option<(u64, u64)> {
        let i = (k & self.mask) as usize;
        let old = std::mem::replace(&mut self.slots[i], (k, intended_ns));
        self.nodes[i] = 0;
        self.outstanding += 1;
        if old.0 == EMPTY {
            None
        } else {
            self.outstanding -= 1;
            Some(old)
        }
    }

    /// Takes an answer for `k`: its intended send time if `k` was outstanding (its slot is now
    /// free), `None` for a duplicate or unknown id.
    #[inline]
    pub fn complete(&mut self, k: u64) -> Option<u64> {
        if k == EMPTY {
            return None;
        }
        let slot = &mut self.slots[(k & self.mask) as usize];
        if slot.0 == k {
            slot.0 = EMPTY;
            self.outstanding -= 1;
            Some(slot.1)
        } else {
            None
        }
    }

    /// Whether `k` is still waiting for its answer (issued, neither answered nor evicted).
    #[inline]
    pub fn is_outstanding(&self, k: u64) -> bool {
        self.intended(k).is_some()
    }

    /// The intended send time of `k` while it waits for its answer.
    #[inline]
    pub fn intended(&self, k: u64) -> Option<u64> {
        let slot = self.slots[(k & self.mask) as usize];
        (k != EMPTY && slot.0 == k).then_some(slot.1)
    }

    /// Records that `k` (if still outstanding) went to node `node`.
    #[inline]
    pub fn sent_to(&mut self, k: u64, node: u8) {
        let i = (k & self.mask) as usize;
        if k != EMPTY && self.slots[i].0 == k {
            self.nodes[i] = node;
        }
    }

    /// Calls `f(k)` for every outstanding request that last went to `node`, until `f` returns
    /// `false` (a scan of the whole ring: for rare events, such as a node given up).
    pub fn each_sent_to(&self, node: u8, mut f: impl FnMut(u64) -> bool) {
        for (slot, &n) in self.slots.iter().zip(&self.nodes) {
            if slot.0 != EMPTY && n == node && !f(slot.0) {
                return;
            }
        }
    }

    /// Empties the ring, calling `f` with each `(id, intended_ns)` still outstanding (the
    /// end-of-run timeouts).
    pub fn drain(&mut self, mut f: impl FnMut(u64, u64)) {
        for slot in &mut self.slots {
            if slot.0 != EMPTY {
                let (k, t) = std::mem::replace(slot, (EMPTY, 0));
                f(k, t);
            }
        }
        self.outstanding = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_a_power_of_two_covering_rate_times_timeout() {
        assert_eq!(window_for(2000, 1_000_000_000, 1), (2048, false));
        assert_eq!(window_for(2047, 1_000_000_000, 1), (4096, false));
        assert_eq!(window_for(1, 1_000_000_000, 1), (4, false));
        let (w, capped) = window_for(30_000_000, 1_000_000_000, 1);
        assert_eq!(w, WINDOW_MAX);
        assert!(capped);
    }

    #[test]
    fn answer_once_then_duplicate_is_rejected() {
        let mut o = Outstanding::new(8);
        assert_eq!(o.issue(0, 100), None);
        assert_eq!(o.issue(1, 150), None);
        assert_eq!(o.outstanding(), 2);
        assert_eq!(o.complete(1), Some(150));
        assert_eq!(o.complete(1), None, "duplicate");
        assert_eq!(o.complete(5), None, "never issued");
        assert_eq!(o.complete(EMPTY), None);
        assert_eq!(o.outstanding(), 1);
    }

    #[test]
    fn overwriting_an_outstanding_slot_reports_a_timeout() {
        let mut o = Outstanding::new(4);
        for k in 0..4 {
            assert_eq!(o.issue(k, k * 10), None);
        }
        assert!(o.complete(1).is_some());
        assert_eq!(o.issue(4, 40), Some((0, 0)), "0 still outstanding after a full window");
        assert_eq!(o.issue(5, 50), None, "1 was answered");
        assert_eq!(o.complete(0), None, "an evicted request's late answer is unexpected");
        assert_eq!(o.complete(4), Some(40));
        assert_eq!(o.outstanding(), 3); // 2, 3, 5
    }

    #[test]
    fn requests_are_found_by_the_node_they_last_went_to() {
        let mut o = Outstanding::new(8);
        for k in 0..6 {
            o.issue(k, 1000 + k);
            o.sent_to(k, (k % 2) as u8);
        }
        o.sent_to(4, 1);
        o.complete(1);
        let mut at_one = Vec::new();
        o.each_sent_to(1, |k| {
            at_one.push(k);
            true
        });
        assert_eq!(at_one, vec![3, 4, 5]);
        let mut first = Vec::new();
        o.each_sent_to(1, |k| {
            first.push(k);
            false
        });
        assert_eq!(first, vec![3], "stops when told");
        o.issue(9, 2000);
        o.each_sent_to(0, |k| {
            assert_ne!(k, 1, "answered");
            true
        });
        o.sent_to(77, 1); // not outstanding: ignored
    }

    #[test]
    fn drain_yields_every_outstanding_id() {
        let mut o = Outstanding::new(8);
        for k in 0..6 {
            o.issue(k, 1000 + k);
        }
        o.complete(2);
        let mut left = Vec::new();
        o.drain(|k, t| left.push((k, t)));
        left.sort_unstable();
        assert_eq!(left, vec![(0, 1000), (1, 1001), (3, 1003), (4, 1004), (5, 1005)]);
        assert_eq!(o.outstanding(), 0);
        assert_eq!(o.complete(0), None);
    }
}
