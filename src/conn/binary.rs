//! Protocol v1 over a byte stream: each datagram of docs/PROTOCOL.md preceded by its length.
//!
//! Framing: `u32 len` (little-endian), then `len` bytes holding exactly one request datagram;
//! answers come back the same way, one response datagram per request datagram, and one datagram
//! of one frame per late answer (a write answered once it committed), in whatever order they are
//! ready (answers carry their request ids, as over UDP). Everything else is the engine's: the
//! datagram is run by `Engine::handle_datagram` exactly as if it had come over UDP.
//!
//! Invariants: a length of 0 or above the datagram limit is a framing error that closes the
//! connection after one `MALFORMED` answer (the stream cannot be resynchronised); a datagram is run
//! only once it is whole in the input; an answer is written only when the output has room for it
//! (otherwise the session waits, consuming nothing).

use super::{Cx, Step};
use crate::engine::Outcome;
use crate::shard::LateAnswer;
use crate::wire::{self, DatagramWriter, Status};

/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// One binary-protocol connection's state (none beyond the stream: each datagram stands alone).
#[derive(Debug, Default)]
pub struct BinarySession;

impl BinarySession {
    /// Runs every whole datagram at the front of `input`; returns what it consumed.
    pub fn run(&mut self, input: &[u8], cx: &mut Cx<'_>) -> Step {
        let mut used = 0;
        while let Some(prefix) = input.get(used..used + LEN_PREFIX) {
            let len = u32::from_le_bytes(prefix.try_into().expect("4 bytes")) as usize;
            if len == 0 || len > cx.datagram_bytes_max {
                self.malformed(cx);
                return Step::Close { consumed: used };
            }
            let Some(datagram) = input.get(used + LEN_PREFIX..used + LEN_PREFIX + len) else { break };
            if !cx.output_has_room(LEN_PREFIX + cx.datagram_bytes_max) {
                return Step::Wait { consumed: used, for_output: true };
            }
            let (engine, scratch) = (&mut *cx.engine, &mut *cx.scratch);
            if let Outcome::Reply(n) = engine.handle_datagram(datagram, scratch, cx.peer, cx.now) {
                put_datagram(cx.output, &scratch[..n]);
            }
            used += LEN_PREFIX + len;
        }
        Step::Consumed(used)
    }

    /// Writes a late answer into `output` as a datagram of one frame (built in `scratch`).
    pub fn answer(&mut self, a: &LateAnswer<'_>, output: &mut Vec<u8>, scratch: &mut [u8]) {
        let mut w = DatagramWriter::response(scratch, a.client_id).expect("scratch holds a datagram");
        let body = if a.status == Status::Ok { a.body } else { &[] };
        if w.push(a.opcode, a.status as u8, a.request_id, body).is_ok() {
            let n = w.finish();
            put_datagram(output, &scratch[..n]);
        }
    }

    fn malformed(&mut self, cx: &mut Cx<'_>) {
        let mut w = DatagramWriter::response(cx.scratch, 0).expect("scratch holds a datagram");
        if w.push(wire::OPCODE_NONE, Status::Malformed as u8, 0, &[]).is_ok() {
            let n = w.finish();
            put_datagram(cx.output, &cx.scratch[..n]);
        }
    }
}

fn put_datagram(out: &mut Vec<u8>, datagram: &[u8]) {
    out.extend_from_slice(&(datagram.len() as u32).to_le_bytes());
    out.extend_from_slice(datagram);
}
