//! `ReadGuard`: whether the answers a connection's session made in this iteration may go out,
//! checked with a clock read after they were made against the soonest lease end of the shard's
//! partitions (the packet path's check is `ShardService::answers_still_valid`).
//!
//! Invariants: the clock is read only when a lease bounds the answers (`valid_until` is not
//! `u64::MAX`); a guard never lets an answer out that a clock read after it was made shows to be
//! past `valid_until`.

use vigil_pmd::Nanos;

/// Whether answers a session made in this iteration may go out: the reads were answered on
/// leases that end at `valid_until` at the soonest, and `clock` read after answering proves they
/// were made before then. A process stopped between the iteration's clock read and an answer
/// could otherwise send a read made after its lease ran out (the packet path checks the same,
/// `ShardService::answers_still_valid`).
#[derive(Clone, Copy)]
pub struct ReadGuard<'a> {
    /// The soonest end of the leases reads were answered on (`u64::MAX`: none needs one).
    pub valid_until: Nanos,
    /// The clock to read after answering; `None`: time does not move within an iteration.
    pub clock: Option<&'a dyn Fn() -> Nanos>,
}

impl ReadGuard<'_> {
    /// No lease to check (tests, and a service without leases).
    pub const NONE: ReadGuard<'static> = ReadGuard { valid_until: Nanos(u64::MAX), clock: None };

    /// Whether answers made up to now may no longer be valid.
    pub(super) fn lapsed(&self) -> bool {
        self.valid_until.0 != u64::MAX && self.clock.is_some_and(|clock| clock() >= self.valid_until)
    }
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
