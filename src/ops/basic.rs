//! PING and ECHO: the liveness and round-trip opcodes, with no state.
//!
//! Invariants: PING takes an empty body (anything else is `BAD_LENGTH`) and answers an empty body;
//! ECHO answers its body byte for byte, or `RESPONSE_TOO_LARGE` if the answer cannot fit.

use crate::dispatch::{Answer, DispatchError, Dispatcher, Handler, Request, Subsystem};
use crate::wire::{opcode, Status};

/// The PING/ECHO subsystem.
#[derive(Debug)]
pub struct Basic;

impl Subsystem for Basic {
    fn register(self, d: &mut Dispatcher) -> Result<(), DispatchError> {
        d.register(opcode::PING, "ping", Box::new(Ping))?;
        d.register(opcode::ECHO, "echo", Box::new(Echo))
    }
}

struct Ping;

impl Handler for Ping {
    fn handle(&mut self, req: &Request<'_>, _out: &mut [u8]) -> Result<Answer, Status> {
        if !req.body.is_empty() {
            return Err(Status::BadLength);
        }
        Ok(Answer::Now(0))
    }
}

struct Echo;

impl Handler for Echo {
    fn handle(&mut self, req: &Request<'_>, out: &mut [u8]) -> Result<Answer, Status> {
        let dst = out.get_mut(..req.body.len()).ok_or(Status::ResponseTooLarge)?;
        dst.copy_from_slice(req.body);
        Ok(Answer::Now(req.body.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_pmd::Nanos;

    fn req(opcode: u8, body: &[u8]) -> Request<'_> {
        Request {
            opcode,
            request_id: 1,
            client_id: 0,
            body,
            now: Nanos(0),
            peer: crate::dispatch::tests::test_peer(),
            owner: Default::default(),
        }
    }

    #[test]
    fn ping_answers_empty_and_rejects_a_body() {
        let mut d = Dispatcher::new();
        Basic.register(&mut d).unwrap();
        assert_eq!(d.dispatch(&req(opcode::PING, b""), &mut [0u8; 4]), Ok(Answer::Now(0)));
        assert_eq!(d.dispatch(&req(opcode::PING, b"x"), &mut [0u8; 4]), Err(Status::BadLength));
    }

    #[test]
    fn echo_copies_and_refuses_what_does_not_fit() {
        let mut d = Dispatcher::new();
        Basic.register(&mut d).unwrap();
        let mut out = [0u8; 5];
        assert_eq!(d.dispatch(&req(opcode::ECHO, b"hello"), &mut out), Ok(Answer::Now(5)));
        assert_eq!(&out, b"hello");
        assert_eq!(d.dispatch(&req(opcode::ECHO, b"hello!"), &mut out), Err(Status::ResponseTooLarge));
    }
}
