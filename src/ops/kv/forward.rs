//! The cross-shard half of the KV subsystem: a request whose partition another shard of this
//! node owns is forwarded to it through the inbox fabric and answered back through it; a peer
//! datagram for another shard's partitions rides the same path (`PEER_DATAGRAM`), with no answer
//! for anyone.
//!
//! Forwarded request payload: `[opcode u8][client_id u64 LE][request_id u64 LE][owner flags u8]
//! [owner stamp: 20 bytes, zero past what the flags use][body]` (`projection::owner`; the quota is
//! the node-wide one, the owner shard takes its partition's share).
//!
//! Invariants: every forwarded client request holds one reservation and is answered exactly once
//! (the owner's answer through the inbox); the forwarded table is bounded by the router's
//! in-flight limit; a handed-over peer datagram is counted in `peer_handed_over` until its
//! receipt is collected.

use super::*;

/// A client request forwarded to another shard, waiting for its answer.
#[derive(Clone, Copy, Debug)]
pub(super) struct Forwarded {
    pub(super) peer: Peer,
    pub(super) client_id: u64,
    pub(super) opcode: u8,
    pub(super) request_id: u64,
    /// Who the request is for (`Request::owner`).
    pub(super) owner: Owner,
    /// When this shard took the request in: its latency runs from then (`metrics::requests`;
    /// counted here, not on the owner).
    pub(super) arrived: Nanos,
}

impl<D: BlockIo> KvShard<D> {
    /// Forwards a request to the shard that owns its partition, with a reservation for the answer
    /// it will send on to the client.
    pub(super) fn forward(&mut self, partition: u16, req: &Request<'_>) -> Result<Answer, Status> {
        let len = FORWARD_HEADER_LEN + req.body.len();
        if len > self.scratch.len() {
            return Err(Status::BadLength);
        }
        self.reserve()?;
        let answer = self.forward_reserved(partition, req, len);
        if answer.is_err() {
            self.reservations.give_back();
        }
        answer
    }

    fn forward_reserved(&mut self, partition: u16, req: &Request<'_>, len: usize) -> Result<Answer, Status> {
        let waiting = Forwarded {
            peer: req.peer,
            client_id: req.client_id,
            opcode: req.opcode,
            request_id: req.request_id,
            owner: req.owner,
            arrived: req.now,
        };
        match self.forward_bytes(partition, waiting, req.body, len) {
            Ok(()) => {
                self.counters.forwarded += 1;
                Ok(Answer::Later)
            }
            Err(status) => {
                self.counters.forward_refused += 1;
                Err(status)
            }
        }
    }

    /// Sends `waiting`'s request with `body` (`len` bytes with the header) to `partition`'s
    /// owner shard; the status to answer when the inbox, the pool or the in-flight table is full.
    pub(super) fn forward_bytes(
        &mut self,
        partition: u16,
        waiting: Forwarded,
        body: &[u8],
        len: usize,
    ) -> Result<(), Status> {
        let router = self.router.as_mut().expect("a remote route needs a router");
        let buf = &mut self.scratch[..len];
        buf[0] = waiting.opcode;
        buf[1..9].copy_from_slice(&waiting.client_id.to_le_bytes());
        buf[9..17].copy_from_slice(&waiting.request_id.to_le_bytes());
        buf[17] = waiting.owner.flags();
        buf[18..FORWARD_HEADER_LEN].fill(0);
        waiting.owner.write_stamp(&mut buf[18..FORWARD_HEADER_LEN]);
        buf[FORWARD_HEADER_LEN..].copy_from_slice(body);
        let Ok(token) = self.forwarded.insert(waiting) else { return Err(Status::Busy) };
        router.forward(partition, buf, token).map_err(|e| {
            self.forwarded.take(token).expect("just inserted");
            e.client_status()
        })
    }

    pub(super) fn drain_inbox(&mut self, now: Nanos, emit: &mut dyn FnMut(&LateAnswer<'_>)) {
        let Some(router) = self.router.as_mut() else { return };
        self.envelopes.clear();
        if router.drain(&mut self.envelopes) == 0 {
            return;
        }
        for i in 0..self.envelopes.len() {
            let env = self.envelopes.as_slice()[i];
            match env.kind() {
                Kind::Request => self.serve_forwarded(&env, now),
                Kind::Answer => self.complete_forwarded(&env, emit),
            }
        }
    }

    /// Runs a request another shard forwarded here and answers it now, or when it commits.
    fn serve_forwarded(&mut self, env: &Envelope, now: Nanos) {
        self.counters.served_for_others += 1;
        let router = self.router.as_mut().expect("draining needs a router");
        let scratch = &mut self.scratch;
        let Ok(len) = router.with_request(env, |bytes| {
            let n = bytes.len().min(scratch.len());
            scratch[..n].copy_from_slice(&bytes[..n]);
            n
        }) else {
            self.counters.stale += 1;
            return;
        };
        let request = std::mem::take(&mut self.scratch);
        let mut answer = std::mem::take(&mut self.answer);
        let status_and_len = match decode_forwarded(&request[..len]) {
            None => Err(Status::Malformed),
            Some((PEER_DATAGRAM, _, _, _, datagram)) => {
                self.receive_peer(datagram, now);
                Ok(Answer::Now(0))
            }
            Some((op, client_id, request_id, owner, body)) => {
                self.local(env.partition_id()).observe_time(now);
                let owner = self.owner_here(owner);
                let waiter = Waiter { origin: Origin::Forwarded(*env), opcode: op, request_id, owner };
                KvRequest::parse(op, client_id, request_id, body)
                    .and_then(|parsed| self.run_local(env.partition_id(), waiter, &parsed, &mut answer))
            }
        };
        let router = self.router.as_mut().expect("draining needs a router");
        let sent = match status_and_len {
            Ok(Answer::Later) => Ok(Status::Ok),
            Ok(Answer::Now(n)) => router.answer(env, Status::Ok, &answer[..n]),
            Ok(Answer::Refused { status, len }) => router.answer(env, status, &answer[..len]),
            Err(status) => router.answer(env, status, &[]),
        };
        if sent.is_err() {
            self.counters.stale += 1;
        }
        self.scratch = request;
        self.answer = answer;
    }

    /// Sends the owner's answer to a forwarded request on to its client.
    fn complete_forwarded(&mut self, env: &Envelope, emit: &mut dyn FnMut(&LateAnswer<'_>)) {
        let router = self.router.as_mut().expect("draining needs a router");
        let Some(f) = self.forwarded.take(env.sequence()) else {
            self.counters.stale += 1;
            let _ = router.complete(env, |_, _| ());
            return;
        };
        if f.opcode == PEER_DATAGRAM {
            // A peer datagram handed over: its owner took it; nothing goes to anyone.
            self.peer_handed_over -= 1;
            let _ = router.complete(env, |_, _| ());
            return;
        }
        let (candles, client_answer, leaders) = (&mut self.candles, &mut self.client_answer, &self.leaders);
        let done = router.complete(env, |status, body| {
            // A candle read is answered raw by its owner: decoded here, for the client.
            let (status, body) = match (status, f.opcode) {
                (Status::Ok, opcode::CANDLE_GET | opcode::CANDLE_LIST) => {
                    match candles.for_client(f.opcode, body, client_answer) {
                        Ok(n) => (Status::Ok, &client_answer[..n]),
                        Err(status) => (status, &[][..]),
                    }
                }
                // Refused by the owner with no hint: this shard reads the node's table.
                (Status::NotLeader, _) if body.is_empty() => {
                    let n = leaders.write_hint(env.partition_id(), client_answer);
                    (status, &client_answer[..n])
                }
                _ => (status, body),
            };
            emit(&LateAnswer {
                peer: f.peer,
                client_id: f.client_id,
                opcode: f.opcode,
                request_id: f.request_id,
                status,
                body,
                arrived: f.arrived,
            })
        });
        if done.is_err() {
            self.counters.stale += 1;
        }
    }
}

fn decode_forwarded(bytes: &[u8]) -> Option<(u8, u64, u64, Owner, &[u8])> {
    if bytes.len() < FORWARD_HEADER_LEN {
        return None;
    }
    let client_id = u64::from_le_bytes(bytes[1..9].try_into().ok()?);
    let request_id = u64::from_le_bytes(bytes[9..17].try_into().ok()?);
    let (owner, _) = Owner::read_stamp(bytes[17], &bytes[18..FORWARD_HEADER_LEN]).ok()?;
    Some((bytes[0], client_id, request_id, owner, &bytes[FORWARD_HEADER_LEN..]))
}
