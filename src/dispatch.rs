//! The opcode dispatcher: a flat 256-slot table from opcode to handler.
//!
//! Subsystems register their own handlers at start-up (`Subsystem::register`); this module imports
//! none of them, so adding a subsystem never touches the dispatcher. Lookup is one index into an
//! array, with no hashing and no allocation.
//!
//! A handler answers at once (`Answer::Now`, the body written in place) or takes the request over
//! (`Answer::Later`): a write that must first reach the log is answered when it commits, in a
//! datagram of late answers addressed to `Request::peer` (the shard loop's deferred answers,
//! gathered per client).
//!
//! Invariants: slot 0 (`wire::OPCODE_NONE`) is never registered; an opcode is registered at most
//! once (a second registration is a start-up error naming both owners); handlers are called only
//! with bodies that the codec has already bounds-checked.

use crate::wire::{self, Status};
use thiserror::Error;
use vigil_pmd::{Nanos, Peer};

/// One request as a handler sees it.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The opcode it was dispatched on.
    pub opcode: u8,
    /// The client's request id.
    pub request_id: u64,
    /// The datagram's client id.
    pub client_id: u64,
    /// The request body.
    pub body: &'a [u8],
    /// The time of the poll iteration that received it.
    pub now: Nanos,
    /// Who sent it: where an answer given later goes.
    pub peer: Peer,
    /// The principal it was admitted from and its node-wide quota (`projection::owner`): its
    /// writes are stamped with it.
    pub owner: crate::projection::Owner,
}

/// How a handler answered a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// OK, with this many body bytes written into `out`.
    Now(usize),
    /// The handler took the request over and answers it later in a datagram of late answers (a write
    /// waiting for its log entry to commit); nothing goes into this response datagram for it.
    Later,
    /// Refused now with `status` (never `OK`), with this many body bytes written into `out`: an
    /// error that carries something for the client (`NOT_LEADER` and its leader hint). Answers
    /// that have no room for a body (connections' codecs) see it as `Err(status)`.
    Refused {
        /// The error status.
        status: Status,
        /// Body bytes written into `out`.
        len: usize,
    },
}

/// Executes requests for one or more opcodes.
pub trait Handler {
    /// Handles `req`, writing the answer's body into `out` (the room left in the response datagram);
    /// returns how it answered, or the error status to answer with now (and an empty body).
    fn handle(&mut self, req: &Request<'_>, out: &mut [u8]) -> Result<Answer, Status>;
}

/// A part of the appliance that owns some opcodes.
pub trait Subsystem {
    /// Registers the subsystem's handlers.
    fn register(self, dispatcher: &mut Dispatcher) -> Result<(), DispatchError>;
}

/// Why a registration failed; the dispatcher is unchanged.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DispatchError {
    /// The opcode already has a handler.
    #[error("opcode {opcode} is registered twice: by {first} and by {second}")]
    AlreadyRegistered {
        /// The opcode.
        opcode: u8,
        /// Who registered it first.
        first: &'static str,
        /// Who tried again.
        second: &'static str,
    },
    /// Opcode 0 is reserved for datagram-level errors.
    #[error("opcode 0 is reserved and cannot be registered (by {owner})")]
    Reserved {
        /// Who tried.
        owner: &'static str,
    },
}

struct Slot {
    name: &'static str,
    handler: Box<dyn Handler>,
    calls: u64,
}

/// The opcode table.
pub struct Dispatcher {
    slots: [Option<Slot>; 256],
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.registered().map(|(op, name, _)| (op, name))).finish()
    }
}

impl Default for Dispatcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Dispatcher {
    /// An empty table.
    pub fn new() -> Self {
        Self { slots: std::array::from_fn(|_| None) }
    }

    /// Registers `handler` for `opcode` under the name `name` (for counters and errors).
    pub fn register(
        &mut self,
        opcode: u8,
        name: &'static str,
        handler: Box<dyn Handler>,
    ) -> Result<(), DispatchError> {
        if opcode == wire::OPCODE_NONE {
            return Err(DispatchError::Reserved { owner: name });
        }
        let slot = &mut self.slots[usize::from(opcode)];
        if let Some(existing) = slot {
            return Err(DispatchError::AlreadyRegistered { opcode, first: existing.name, second: name });
        }
        *slot = Some(Slot { name, handler, calls: 0 });
        Ok(())
    }

    /// Dispatches one request; `UnknownOpcode` if nobody registered its opcode.
    #[inline]
    pub fn dispatch(&mut self, req: &Request<'_>, out: &mut [u8]) -> Result<Answer, Status> {
        match &mut self.slots[usize::from(req.opcode)] {
            Some(slot) => {
                slot.calls += 1;
                slot.handler.handle(req, out)
            }
            None => Err(Status::UnknownOpcode),
        }
    }

    /// True when a handler is registered for `opcode`.
    #[inline]
    pub fn has(&self, opcode: u8) -> bool {
        self.slots[usize::from(opcode)].is_some()
    }

    /// The registered opcodes with their names and call counts.
    pub fn registered(&self) -> impl Iterator<Item = (u8, &'static str, u64)> + '_ {
        self.slots.iter().enumerate().filter_map(|(op, s)| s.as_ref().map(|s| (op as u8, s.name, s.calls)))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A peer for requests built by tests.
    pub(crate) fn test_peer() -> Peer {
        Peer::from_ip_port(std::net::Ipv4Addr::LOCALHOST, 1)
    }

    struct Fixed(usize);
    impl Handler for Fixed {
        fn handle(&mut self, _: &Request<'_>, out: &mut [u8]) -> Result<Answer, Status> {
            out[..self.0].fill(7);
            Ok(Answer::Now(self.0))
        }
    }

    fn req(opcode: u8) -> Request<'static> {
        Request {
            opcode,
            request_id: 1,
            client_id: 0,
            body: b"",
            now: Nanos(0),
            peer: test_peer(),
            owner: Default::default(),
        }
    }

    #[test]
    fn dispatches_to_the_registered_handler_and_counts() {
        let mut d = Dispatcher::new();
        d.register(9, "nine", Box::new(Fixed(3))).unwrap();
        let mut out = [0u8; 8];
        assert_eq!(d.dispatch(&req(9), &mut out), Ok(Answer::Now(3)));
        assert_eq!(&out[..3], &[7, 7, 7]);
        assert_eq!(d.registered().collect::<Vec<_>>(), vec![(9, "nine", 1)]);
    }

    #[test]
    fn unknown_opcode_is_an_error_status() {
        let mut d = Dispatcher::new();
        assert_eq!(d.dispatch(&req(200), &mut [0u8; 4]), Err(Status::UnknownOpcode));
        assert_eq!(d.dispatch(&req(0), &mut [0u8; 4]), Err(Status::UnknownOpcode));
    }

    #[test]
    fn double_and_reserved_registrations_are_refused() {
        let mut d = Dispatcher::new();
        d.register(5, "a", Box::new(Fixed(0))).unwrap();
        assert_eq!(
            d.register(5, "b", Box::new(Fixed(0))),
            Err(DispatchError::AlreadyRegistered { opcode: 5, first: "a", second: "b" })
        );
        assert_eq!(d.register(0, "z", Box::new(Fixed(0))), Err(DispatchError::Reserved { owner: "z" }));
    }
}
