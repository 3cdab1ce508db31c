//! Reservations of transmit buffers for answers given later.
//!
//! A request that a handler takes over (`Answer::Later`: a write waiting for its log entry, a
//! request forwarded to another shard) is answered in a datagram of late answers once it is done.
//! So that this answer can always be sent, the shard holds a reserve of transmit buffers
//! (`net.answers_reserved_max` at most, filled from the backend's pool), and a handler takes one
//! reservation before it takes a request over: with none free it answers `BUSY` at once and
//! nothing is proposed. The late answer is written into a reserved buffer, addressed then, or
//! joins a datagram already open for its client in the same iteration: its reservation then
//! returns free (`release_taken`), its buffer staying in the reserve.
//!
//! `AnswerReservations` is the handle the shard and its handlers share (both run on the shard's
//! thread, one after the other): the shard counts the buffers it adds to its reserve (`add_free`)
//! and the late answers it writes into them (`use_taken`, `release_taken`); handlers `try_take`
//! and `give_back`.
//!
//! Invariant: `free + taken` equals the number of buffers in the shard's reserve, so every
//! reservation taken is a buffer held, and a late answer never finds the pool empty.

use std::cell::Cell;
use std::rc::Rc;

#[derive(Debug, Default)]
struct Counts {
    /// Buffers in the reserve that no request has taken.
    free: Cell<usize>,
    /// Buffers in the reserve taken by requests not answered yet.
    taken: Cell<usize>,
}

/// The shared count of a shard's reserved transmit buffers. Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct AnswerReservations(Rc<Counts>);

impl AnswerReservations {
    /// A handle with nothing reserved (every `try_take` fails until a shard adds buffers).
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a reservation for a request about to be taken over; `false` if none is free (the
    /// request must be answered `BUSY` now).
    #[inline]
    pub fn try_take(&self) -> bool {
        let free = self.0.free.get();
        if free == 0 {
            return false;
        }
        self.0.free.set(free - 1);
        self.0.taken.set(self.0.taken.get() + 1);
        true
    }

    /// Gives back a reservation whose request was answered at once after all.
    #[inline]
    pub fn give_back(&self) {
        let taken = self.0.taken.get();
        assert!(taken > 0, "a reservation given back that was never taken");
        self.0.taken.set(taken - 1);
        self.0.free.set(self.0.free.get() + 1);
    }

    /// Reservations free now.
    pub fn free(&self) -> usize {
        self.0.free.get()
    }

    /// Reservations taken by requests not answered yet.
    pub fn taken(&self) -> usize {
        self.0.taken.get()
    }

    /// The shard added a buffer to its reserve.
    #[inline]
    pub(crate) fn add_free(&self) {
        self.0.free.set(self.0.free.get() + 1);
    }

    /// A late answer joined a datagram already holding a buffer (gathered with another answer
    /// for its client): the reservation taken for it returns free, its buffer staying in the
    /// reserve for another request. Nothing if none is taken (an answer nobody reserved for).
    #[inline]
    pub(crate) fn release_taken(&self) {
        let taken = self.0.taken.get();
        if taken > 0 {
            self.0.taken.set(taken - 1);
            self.0.free.set(self.0.free.get() + 1);
        }
    }

    /// A late answer is about to be written: uses one taken reservation (its buffer leaves the
    /// reserve) and returns `true`, or returns `false` if none is taken (an answer nobody reserved
    /// for: a service that does not take reservations).
    #[inline]
    pub(crate) fn use_taken(&self) -> bool {
        let taken = self.0.taken.get();
        if taken == 0 {
            return false;
        }
        self.0.taken.set(taken - 1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_only_what_was_added_and_gives_back() {
        let r = AnswerReservations::new();
        assert!(!r.try_take());
        r.add_free();
        r.add_free();
        let handler = r.clone();
        assert!(handler.try_take());
        assert!(handler.try_take());
        assert!(!handler.try_take());
        handler.give_back();
        assert_eq!((r.free(), r.taken()), (1, 1));
        assert!(r.use_taken());
        assert!(!r.use_taken());
        assert_eq!((r.free(), r.taken()), (1, 0));
        assert!(handler.try_take());
        r.release_taken();
        assert_eq!((r.free(), r.taken()), (1, 0), "a gathered answer's reservation returns free");
        r.release_taken();
        assert_eq!((r.free(), r.taken()), (1, 0), "nothing taken, nothing released");
    }
}
