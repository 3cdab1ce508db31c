//! The sans-IO request engine: one request datagram in, one response datagram out.
//!
//! `Engine::handle_datagram(request_bytes, response_buffer, now)` is a pure step: it reads the
//! datagram, dispatches each frame in order, writes every answer into the caller's buffer and says
//! whether to send it. It does no I/O, reads no clock and allocates nothing, so the shard loop, the
//! tests and the simulator all drive it the same way.
//!
//! What is answered and what is dropped (docs/PROTOCOL.md, "Errors"):
//! - shorter than a header, wrong magic, or a response flag set: dropped unanswered and counted
//!   (answering garbage would let anyone aim us at a third party; answering a response would let
//!   two servers ping-pong forever);
//! - wrong version: one `VERSION_MISMATCH` frame whose body is `[min, max]` supported;
//! - more frames than `requests_per_datagram_max`: one `TOO_MANY_REQUESTS` frame, nothing executed;
//! - `count == 0`, fewer frames than `count`, or bytes after the last frame: one `MALFORMED` frame,
//!   nothing executed;
//! - a frame whose body runs past the datagram: one `BAD_LENGTH` frame with that frame's opcode and
//!   request id, nothing executed (there is no way to find the next frame);
//! - an unknown opcode: `UNKNOWN_OPCODE` for that frame; the others are executed;
//! - a request its handler takes over (`Answer::Later`: a write waiting for its log entry) gets no
//!   frame here; the handler answers it later in a datagram of late answers (gathered per client by
//!   the shard loop). A datagram all of whose
//!   requests were taken over sends nothing now (`Outcome::Later`).
//!
//! Every request answered here is counted for the latency histograms (`metrics::requests`: the
//! engine counts by protocol and opcode, the shard loop records the pass's duration once the pass
//! is over); one taken over is recorded when its late answer is delivered.
//!
//! Invariants: the whole datagram's framing is checked before any frame runs, so a datagram that does
//! not parse exactly (a body cut short or run long, bytes left over, frames missing) changes nothing:
//! a frame that is shorter than its sender meant cannot be taken for a shorter valid request while
//! the leftover bytes are noticed only afterwards. Every frame that was executed is answered, because
//! before executing a request the
//! engine checks that the response has room for at least an error frame; requests it cannot answer
//! are not executed and are counted in `unanswered_no_room`.

use crate::auth::{self, Admission, Gate};
use crate::dispatch::{Answer, Dispatcher, Request};
use crate::metrics::RequestLatencies;
use crate::projection::Owner;
use crate::wire::{self, DatagramWriter, FrameError, HeaderError, Status};

use vigil_pmd::{Nanos, Peer};

/// Limits the engine enforces.
#[derive(Clone, Copy, Debug)]
pub struct EngineLimits {
    /// Most frames one request datagram may carry.
    pub requests_per_datagram_max: u16,
}

/// Counters of what the engine saw; plain integers, owned by the shard, read off the hot path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// Request datagrams processed (answered or dropped).
    pub datagrams: u64,
    /// Requests executed by a handler.
    pub requests: u64,
    /// Answers with status OK.
    pub answers_ok: u64,
    /// Answers with any error status.
    pub answers_error: u64,
    /// Datagrams dropped: shorter than the header.
    pub dropped_short: u64,
    /// Datagrams dropped: not our magic.
    pub dropped_bad_magic: u64,
    /// Datagrams dropped: a response sent to us.
    pub dropped_response: u64,
    /// Datagrams answered with VERSION_MISMATCH.
    pub version_mismatch: u64,
    /// Datagrams answered with TOO_MANY_REQUESTS.
    pub too_many_requests: u64,
    /// Frames answered with BAD_LENGTH or MALFORMED for framing errors.
    pub framing_errors: u64,
    /// Requests neither executed nor answered: the response datagram was full.
    pub unanswered_no_room: u64,
    /// Requests a handler took over, to answer later in a datagram of late answers.
    pub answers_later: u64,
}

/// What to do with the response buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send the first `n` bytes of the response buffer.
    Reply(usize),
    /// Send nothing (the datagram was dropped and counted).
    Drop,
    /// Send nothing now: every request in it was taken over by a handler that answers later.
    Later,
}

/// The request engine of one shard.
#[derive(Debug)]
pub struct Engine {
    dispatcher: Dispatcher,
    limits: EngineLimits,
    counters: EngineCounters,
    /// The requests' latencies, one histogram per protocol and registered opcode.
    latencies: RequestLatencies,
    /// Access control (`auth::gate`); `None` only for engines that tests and the simulator drive
    /// without it (every datagram then runs with every right, its source proven).
    gate: Option<Gate>,
}

impl Engine {
    /// An engine over a dispatcher whose subsystems are registered (the latency histograms are
    /// made for the opcodes registered now).
    pub fn new(dispatcher: Dispatcher, limits: EngineLimits) -> Self {
        assert!(limits.requests_per_datagram_max > 0);
        let latencies = RequestLatencies::new(dispatcher.registered().map(|(op, name, _)| (op, name)));
        Self { dispatcher, limits, counters: EngineCounters::default(), latencies, gate: None }
    }

    /// This engine with access control: every datagram is admitted by `gate` first.
    pub fn with_gate(mut self, gate: Gate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// The gate's counters (none without a gate).
    pub fn auth_counters(&self) -> auth::AuthCounters {
        self.gate.as_ref().map(Gate::counters).unwrap_or_default()
    }

    /// The requests' latencies.
    pub fn latencies(&self) -> &RequestLatencies {
        &self.latencies
    }

    /// The requests' latencies, to record into (the shard loop gives the times).
    pub fn latencies_mut(&mut self) -> &mut RequestLatencies {
        &mut self.latencies
    }

    /// Counters so far.
    pub fn counters(&self) -> EngineCounters {
        self.counters
    }

    /// The dispatcher (for per-opcode call counts).
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// Processes one request datagram from `peer`, writing its answer into `response`.
    /// `response` must hold at least a header and two frame headers.
    pub fn handle_datagram(
        &mut self,
        request: &[u8],
        response: &mut [u8],
        peer: Peer,
        now: Nanos,
    ) -> Outcome {
        assert!(response.len() >= wire::HEADER_LEN + 2 * wire::FRAME_HEADER_LEN);
        self.counters.datagrams += 1;
        let header = match wire::decode_header(request) {
            Ok(h) => h,
            Err(HeaderError::Short) => {
                self.counters.dropped_short += 1;
                return Outcome::Drop;
            }
            Err(HeaderError::BadMagic) => {
                self.counters.dropped_bad_magic += 1;
                return Outcome::Drop;
            }
        };
        if header.is_response() {
            self.counters.dropped_response += 1;
            return Outcome::Drop;
        }
        let mut w = DatagramWriter::response(response, header.client_id).expect("checked above");
        if header.version != wire::VERSION {
            self.counters.version_mismatch += 1;
            self.answer(
                &mut w,
                wire::OPCODE_NONE,
                0,
                Status::VersionMismatch,
                &[wire::VERSION, wire::VERSION],
            );
        } else if header.count > self.limits.requests_per_datagram_max {
            self.counters.too_many_requests += 1;
            let max = self.limits.requests_per_datagram_max.to_le_bytes();
            self.answer(&mut w, wire::OPCODE_NONE, 0, Status::TooManyRequests, &max);
        } else {
            let admission = match self.admit(request, &header, &peer, now) {
                Ok(a) => a,
                Err(refusal) => {
                    self.answer(&mut w, wire::OPCODE_NONE, 0, Status::AuthFailed, &[refusal as u8]);
                    return Outcome::Reply(w.finish());
                }
            };
            let later = self.run_frames(request, &header, admission, peer, now, &mut w);
            if later > 0 && w.count() == 0 {
                return Outcome::Later;
            }
            let len = w.finish();
            // The bound holds by construction (each opcode that could break it is refused before it
            // runs, and tests/serve_auth.rs measures every one); this keeps it a guarantee.
            if !admission.proven && len > auth::AMPLIFICATION_FACTOR_MAX * request.len() {
                if let Some(g) = self.gate.as_mut() {
                    g.count_amplification_dropped();
                }
                return Outcome::Drop;
            }
            return Outcome::Reply(len);
        }
        Outcome::Reply(w.finish())
    }

    /// Runs one request that came without a datagram (a command read from a connection: the
    /// connection's codec made it), writing an OK answer's body into `out`; counted like a frame.
    /// A `BUSY` is not counted for the latency histograms: the connection's session runs the
    /// request again at the next iteration (`conn::Cx::request`), counted when that run is answered.
    pub fn handle_request(&mut self, req: &Request<'_>, out: &mut [u8]) -> Result<Answer, Status> {
        self.counters.requests += 1;
        let answer = match self.dispatcher.dispatch(req, out) {
            // A connection's codec answers errors by status alone: the body is not for it.
            Ok(Answer::Refused { status, .. }) => Err(status),
            other => other,
        };
        match answer {
            Ok(Answer::Later) => self.counters.answers_later += 1,
            Ok(_) => self.counters.answers_ok += 1,
            Err(_) => self.counters.answers_error += 1,
        }
        if !matches!(answer, Ok(Answer::Later) | Err(Status::Busy)) {
            self.latencies.answered_now(&req.peer, req.opcode);
        }
        answer
    }

    /// The gate's decision (everything allowed and proven without a gate).
    fn admit(
        &mut self,
        request: &[u8],
        header: &wire::Header,
        peer: &Peer,
        now: Nanos,
    ) -> Result<Admission, auth::Refusal> {
        match self.gate.as_mut() {
            Some(g) => g.admit(request, header, peer, now),
            None if header.flags & !wire::FLAG_RESPONSE != 0 => {
                // Without a gate the blocks are still skipped exactly (never parsed as frames).
                let blocks =
                    auth::ext::decode(request, header.flags).map_err(|_| auth::Refusal::Truncated)?;
                Ok(Admission {
                    acl: auth::Acl::ALL,
                    proven: true,
                    frames_offset: blocks.frames_offset,
                    owner: Owner::ANONYMOUS,
                })
            }
            None => Ok(Admission {
                acl: auth::Acl::ALL,
                proven: true,
                frames_offset: wire::HEADER_LEN,
                owner: Owner::ANONYMOUS,
            }),
        }
    }

    /// Checks the framing of the whole datagram, then runs every frame (or none); returns how many
    /// requests were taken over to be answered later. A request its sender may not make
    /// (`FORBIDDEN`), or whose answer could exceed the amplification bound to an unproven source
    /// (`ADDRESS_UNPROVEN`, with a cookie), is answered so and not executed.
    fn run_frames(
        &mut self,
        request: &[u8],
        header: &wire::Header,
        admission: Admission,
        peer: Peer,
        now: Nanos,
        w: &mut DatagramWriter<'_>,
    ) -> usize {
        let (count, client_id, offset) = (header.count, header.client_id, admission.frames_offset);
        if let Err((opcode, request_id, status)) = check_framing(request, offset, count) {
            self.framing_error(w, opcode, request_id, status);
            return 0;
        }
        let mut later = 0;
        for f in wire::Frames::at(request, offset, count).map_while(Result::ok) {
            // Room for at least an error answer, or the request is not executed at all.
            if w.begin_frame(0).is_err() {
                self.counters.unanswered_no_room += 1;
                continue;
            }
            if self.refused_by_gate(&f, admission, &peer, now, w) {
                continue;
            }
            let (opcode, request_id, body, owner) = (f.opcode, f.request_id, f.body, admission.owner);
            let req = Request { opcode, request_id, client_id, body, now, peer, owner };
            later += usize::from(self.execute(&req, w) == Some(Answer::Later));
        }
        later
    }

    /// Answers `f` with `FORBIDDEN` or `ADDRESS_UNPROVEN` when the admission says so (an opcode
    /// no handler has is left to the dispatcher's `UNKNOWN_OPCODE`); true when it did.
    fn refused_by_gate(
        &mut self,
        f: &wire::Frame<'_>,
        admission: Admission,
        peer: &Peer,
        now: Nanos,
        w: &mut DatagramWriter<'_>,
    ) -> bool {
        let Some(gate) = self.gate.as_mut() else { return false };
        if !self.dispatcher.has(f.opcode) {
            return false;
        }
        if !admission.acl.allows(auth::acl::needed_by_opcode(f.opcode)) {
            gate.count_forbidden();
            self.answer(w, f.opcode, f.request_id, Status::Forbidden, &[]);
            return true;
        }
        if !admission.proven && auth::acl::answer_may_amplify(f.opcode, f.body) {
            let cookie = gate.cookie_for(peer, now);
            self.answer(w, f.opcode, f.request_id, Status::AddressUnproven, &cookie);
            return true;
        }
        false
    }

    fn framing_error(&mut self, w: &mut DatagramWriter<'_>, opcode: u8, request_id: u64, status: Status) {
        self.counters.framing_errors += 1;
        self.answer(w, opcode, request_id, status, &[]);
    }

    /// Runs one request; returns how it was answered (`None`: with an error status).
    fn execute(&mut self, req: &Request<'_>, w: &mut DatagramWriter<'_>) -> Option<Answer> {
        self.counters.requests += 1;
        let room = w.body_room();
        let out = w.begin_frame(room).expect("room was checked");
        let answer = self.dispatcher.dispatch(req, out);
        if answer != Ok(Answer::Later) {
            // Answered in this datagram, whatever the status (room for an error frame was checked).
            self.latencies.answered_now(&req.peer, req.opcode);
        }
        match answer {
            Ok(Answer::Now(n)) => {
                self.counters.answers_ok += 1;
                w.commit_frame(req.opcode, Status::Ok as u8, req.request_id, n)
                    .expect("handler wrote within room");
                Some(Answer::Now(n))
            }
            Ok(Answer::Later) => {
                self.counters.answers_later += 1;
                Some(Answer::Later)
            }
            Ok(Answer::Refused { status, len }) => {
                self.counters.answers_error += 1;
                w.commit_frame(req.opcode, status as u8, req.request_id, len)
                    .expect("handler wrote within room");
                None
            }
            Err(status) => {
                self.answer(w, req.opcode, req.request_id, status, &[]);
                None
            }
        }
    }

    /// Appends an error answer, or counts it unanswered if even that does not fit.
    fn answer(
        &mut self,
        w: &mut DatagramWriter<'_>,
        opcode: u8,
        request_id: u64,
        status: Status,
        body: &[u8],
    ) {
        if status != Status::Ok {
            self.counters.answers_error += 1;
        }
        if w.push(opcode, status as u8, request_id, body).is_err() {
            self.counters.unanswered_no_room += 1;
        }
    }
}

/// Checks that the frames after the header and blocks (from `offset`) are exactly `count` well-formed frames ending at the
/// datagram's end; the error is the one answer to send (opcode, request id, status).
fn check_framing(request: &[u8], offset: usize, count: u16) -> Result<(), (u8, u64, Status)> {
    const MALFORMED: (u8, u64, Status) = (wire::OPCODE_NONE, 0, Status::Malformed);
    if count == 0 {
        return Err(MALFORMED);
    }
    let mut frames = wire::Frames::at(request, offset, count);
    for item in frames.by_ref() {
        match item {
            Ok(_) => {}
            Err(FrameError::BodyPastEnd { opcode, request_id, .. }) => {
                return Err((opcode, request_id, Status::BadLength))
            }
            Err(FrameError::TruncatedHeader) => return Err(MALFORMED),
        }
    }
    if frames.remainder().is_empty() {
        Ok(())
    } else {
        Err(MALFORMED)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod auth_tests;
