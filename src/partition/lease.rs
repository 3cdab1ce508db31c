//! The leader's read lease, for groups with peers: a leader answers reads from its projections only
//! while no other node can have been elected, so a deposed leader that has not heard of its
//! successor never serves a stale value.
//!
//! How it is earned: every `RENEW_EVERY_HEARTBEATS` heartbeat intervals the leader asks Raft for a
//! read index (`RaftGroup::read_index`) whose context is the time it asked, `t0`. Raft answers it
//! once a quorum acknowledged a heartbeat sent after `t0`. Each of those voters reset its election
//! timer when it got that heartbeat (after `t0`), and with `check_quorum` raft-rs ignores vote and
//! pre-vote requests while its timer runs (a node that restarted, which forgot its timer, refuses
//! votes for one election timeout after it starts: `Partition::step`). Any new leader needs one of
//! those voters (quorums intersect), so none can be elected before `t0` + the election timeout on
//! that voter's clock. The lease runs until `t0 + election timeout x LEASE_FRACTION` on the
//! leader's clock, and reads need the projections to have applied the read index too.
//!
//! The clock bound: the lease is safe while the leader's clock and any voter's clock run at rates
//! that differ by less than `CLOCK_RATE_DRIFT_MAX` (10%): with a lease of 80% of the election
//! timeout, 0.8 x 1.1 x 1.1 < 1. Clock offsets do not matter (only intervals on one clock are
//! compared). docs/REPLICATION.md says the same for operators.
//!
//! Invariants: `until` only grows within a term and is reset by a new term; a lease is never
//! extended by an answer to a request sent before the one that last extended it (answers carry
//! their own `t0`).

use vigil_pmd::Nanos;

/// The share of the election timeout a lease lasts, from the time its renewal was asked.
pub const LEASE_FRACTION: f64 = 0.8;
/// The largest difference of clock rates between two nodes the lease is safe under (10%).
pub const CLOCK_RATE_DRIFT_MAX: f64 = 0.1;
/// Renewals are asked every this many heartbeat intervals while leading: 2 (40 ms with the default
/// 10 ms tick) inside a lease of 80 ms leaves a renewal half a lease for its round trip, and costs
/// each idle group a quarter of its messages where 1 cost half (`examples/idle_groups`).
pub const RENEW_EVERY_HEARTBEATS: u64 = 2;

/// The lease of a leader (see the module header).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Lease {
    /// The term it was earned in.
    term: u64,
    /// Reads are served before this time (on this node's clock).
    until: Nanos,
    /// ... once the projections applied this index (the commit index at the renewal).
    index: u64,
    /// When the last renewal was asked, if in this term.
    asked_at: Option<Nanos>,
    /// When the first renewal of this term was asked: a read index asked before (as a follower,
    /// answered by the previous leader) proves nothing about this leadership.
    term_start: Nanos,
}

impl Lease {
    /// Whether a read may be answered now, with the projections at `applied`, in `term`.
    pub(super) fn holds(&self, term: u64, now: Nanos, applied: u64) -> bool {
        self.term == term && now < self.until && applied >= self.index
    }

    /// Whether a renewal should be asked now (`every_ns` after the last one).
    pub(super) fn renewal_due(&mut self, term: u64, now: Nanos, every_ns: u64) -> bool {
        if self.term != term {
            *self = Lease { term, term_start: now, ..Lease::default() };
        }
        match self.asked_at {
            Some(at) if now.0 < at.0.saturating_add(every_ns) => false,
            _ => {
                self.asked_at = Some(now);
                true
            }
        }
    }

    /// Raft confirmed the renewal asked at `asked_at` with read index `index`, in `term`: the lease
    /// runs until `asked_at + duration_ns`.
    pub(super) fn confirmed(&mut self, term: u64, asked_at: Nanos, index: u64, duration_ns: u64) {
        if self.term != term || asked_at < self.term_start {
            return;
        }
        let until = Nanos(asked_at.0.saturating_add(duration_ns));
        if until > self.until {
            self.until = until;
            self.index = self.index.max(index);
        }
    }

    /// Until when reads are served (on this node's clock), in the lease's term.
    pub(super) fn until(&self) -> Nanos {
        self.until
    }

    /// Gives the lease up (the group stepped down, or failed).
    pub(super) fn drop_lease(&mut self) {
        *self = Lease::default();
    }
}

/// The lease's length for an election timeout of `election_ns`.
pub(super) fn duration_ns(election_ns: u64) -> u64 {
    (election_ns as f64 * LEASE_FRACTION) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_runs_from_when_it_was_asked_and_only_in_its_term() {
        let mut l = Lease::default();
        assert!(!l.holds(1, Nanos(0), 0));
        assert!(l.renewal_due(1, Nanos(100), 20));
        assert!(!l.renewal_due(1, Nanos(110), 20), "one renewal in flight an interval");
        l.confirmed(1, Nanos(100), 7, 80);
        assert!(!l.holds(1, Nanos(150), 6), "the projections must reach the read index");
        assert!(l.holds(1, Nanos(179), 7));
        assert!(!l.holds(1, Nanos(180), 7), "from the ask, not from the answer");
        assert!(!l.holds(2, Nanos(150), 7), "another term");
        l.confirmed(1, Nanos(90), 9, 80);
        assert!(l.holds(1, Nanos(179), 7), "an older renewal never shortens it nor raises the index");
        assert!(l.renewal_due(2, Nanos(150), 20), "a new term starts over");
        assert!(!l.holds(2, Nanos(151), 100));
        l.confirmed(1, Nanos(150), 1, 80);
        assert!(!l.holds(2, Nanos(160), 100), "an answer of the old term counts for nothing");
        l.confirmed(2, Nanos(149), 1, 80);
        assert!(!l.holds(2, Nanos(160), 100), "nor one asked before this leadership's first renewal");
        l.confirmed(2, Nanos(150), 1, 80);
        assert!(l.holds(2, Nanos(160), 100));
    }

    #[test]
    fn the_fraction_covers_the_drift_bound_both_ways() {
        let worst = LEASE_FRACTION * (1.0 + CLOCK_RATE_DRIFT_MAX) * (1.0 + CLOCK_RATE_DRIFT_MAX);
        assert!(worst < 1.0, "{worst}");
        assert_eq!(duration_ns(100), 80);
    }
}
