//! The clients: one request outstanding each, resent with the same request id on a timeout or a
//! transient answer (GETs with a new one), given up after `retries_max` attempts; and their
//! answers, handed to the checks.
//!
//! Invariant: writes to one key are serialized across clients (one in flight per key).

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReqKind {
    Get { key: usize },
    Write { w: usize },
}

#[derive(Debug)]
pub(crate) struct Outstanding {
    pub(crate) req: u64,
    pub(crate) kind: ReqKind,
    pub(crate) bytes: Vec<u8>,
    /// When this request id was (last) sent.
    pub(crate) sent_at: u64,
    pub(crate) attempts: u32,
    pub(crate) deadline: u64,
}

pub(crate) struct Client {
    pub(crate) id: u64,
    pub(crate) ep: SimEndpoint,
    pub(crate) next_req: u64,
    pub(crate) cur: Option<Outstanding>,
    pub(crate) idle_until: u64,
    /// Request id -> write, for every write this client sent.
    pub(crate) writes: BTreeMap<u64, usize>,
}

pub(crate) fn encode_request(client_id: u64, op: u8, req: u64, body: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; wire::HEADER_LEN + wire::FRAME_HEADER_LEN + body.len()];
    let mut w = DatagramWriter::request(&mut buf, client_id).expect("room");
    w.push(op, 0, req, body).expect("room");
    let n = w.finish();
    buf.truncate(n);
    buf
}

pub(crate) fn send(ep: &mut SimEndpoint, to: Peer, bytes: &[u8]) {
    let mut tx = ep.tx_alloc(&to).expect("sim endpoints always have buffers");
    tx.payload_mut()[..bytes.len()].copy_from_slice(bytes);
    tx.set_len(bytes.len());
    let mut b = Batch::with_capacity(1);
    b.push(tx).expect("room");
    assert_eq!(ep.tx_burst(&mut b), 1);
}

pub(crate) fn is_transient(s: Status) -> bool {
    matches!(s, Status::Busy | Status::NotLeader | Status::Unavailable)
}

impl Sim {
    // ----- clients -----

    pub(crate) fn client_step(&mut self, c: usize, issue: bool) {
        let now = self.now();
        if let Some(o) = &self.clients[c].cur {
            if now < o.deadline {
                return;
            }
            if o.attempts >= self.p.retries_max {
                let kind = o.kind;
                self.clients[c].cur = None;
                self.clients[c].idle_until = now;
                match kind {
                    ReqKind::Write { w } => {
                        trace!(self, "client {c} gives up write {w}");
                        self.writes[w].state = WState::Unknown;
                        self.keys[self.writes[w].key].locked = false;
                        self.count("writes given up (outcome unknown)", 1);
                        if self.p.clean {
                            self.violation(format!("clean class: write {w} was given up"));
                        }
                    }
                    ReqKind::Get { key } => {
                        if self.p.clean {
                            self.keys[key].readers -= 1;
                        }
                        self.count("GETs given up", 1);
                        if self.p.clean {
                            self.violation("clean class: a GET was given up".into());
                        }
                    }
                }
                return;
            }
            self.retry(c);
            return;
        }
        if issue && now >= self.clients[c].idle_until {
            self.issue(c);
        }
    }

    pub(crate) fn retry(&mut self, c: usize) {
        let now = self.now();
        let shard = self.rng.below(self.p.shards as u64) as usize;
        let timeout = self.p.timeout_ns;
        let client_id = self.clients[c].id;
        let cl = &mut self.clients[c];
        let o = cl.cur.as_mut().expect("outstanding");
        o.attempts += 1;
        if let ReqKind::Get { key } = o.kind {
            // A GET retries under a new id, so its answer's send time is known.
            o.req = cl.next_req;
            cl.next_req += 1;
            o.bytes = encode_request(client_id, opcode::GET, o.req, &self.keys[key].name);
            o.sent_at = now;
        }
        o.deadline = now + timeout;
        send(&mut cl.ep, self.shard_addrs[shard], &o.bytes);
        let (req, attempts) = (o.req, o.attempts);
        self.count("resends", 1);
        trace!(self, "client {c} resends req {req} (attempt {attempts}) to shard {shard}");
    }

    pub(crate) fn pick_key(&mut self, counter: bool, unlocked: bool) -> Option<usize> {
        let range: Vec<usize> = (0..self.keys.len())
            .filter(|&k| self.keys[k].counter == counter)
            .filter(|&k| !(unlocked && self.keys[k].locked))
            .filter(|&k| !(unlocked && self.p.clean && self.keys[k].readers > 0))
            .collect();
        if range.is_empty() {
            return None;
        }
        Some(range[self.rng.below(range.len() as u64) as usize])
    }

    pub(crate) fn issue(&mut self, c: usize) {
        let now = self.now();
        let roll = self.rng.below(100);
        let shard = self.rng.below(self.p.shards as u64) as usize;
        let req = self.clients[c].next_req;
        self.clients[c].next_req += 1;
        let client_id = self.clients[c].id;
        let write_key = if roll >= 35 {
            let counter = roll >= 80;
            self.pick_key(counter, true).map(|k| (k, counter))
        } else {
            None
        };
        let (kind, bytes) = match write_key {
            Some((key, counter)) => {
                let op = if counter {
                    WOp::Incr(self.rng.range(1, 1000) as i64)
                } else {
                    let mut value = format!("{client_id}.{req}.").into_bytes();
                    for _ in 0..self.rng.below(48) {
                        value.push(b'a' + self.rng.below(26) as u8);
                    }
                    match self.rng.below(10) {
                        0..=4 => WOp::Set(value),
                        5 | 6 => WOp::Del,
                        _ => {
                            let hint = self.keys[key].hint;
                            let expected = match self.rng.below(10) {
                                0..=5 => hint,
                                6 | 7 => 0,
                                _ => hint + self.rng.range(1, 3),
                            };
                            WOp::Cas(expected, value)
                        }
                    }
                };
                let name = self.keys[key].name.clone();
                let wop = match &op {
                    WOp::Set(v) => Op::Set { key: &name, value: v },
                    WOp::Del => Op::Del { key: &name },
                    WOp::Incr(d) => Op::Incr { key: &name, delta: *d },
                    WOp::Cas(e, v) => Op::Cas { key: &name, expected_version: *e, value: v },
                };
                let mut body = vec![0u8; DATAGRAM_MAX];
                let n = encode_write_body(&wop, &mut body).expect("fits");
                let bytes = encode_request(client_id, op.opcode(), req, &body[..n]);
                let w = self.writes.len();
                if let Some(v) = op.value() {
                    assert!(self.value_owner.insert(v.to_vec(), w).is_none(), "values are unique");
                }
                trace!(
                    self,
                    "client {c} req {req}: write {w} {op:?} on {:?} via shard {shard}",
                    self.name(key)
                );
                self.writes.push(Write {
                    key,
                    op,
                    client: c,
                    req,
                    first_sent: now,
                    state: WState::Pending,
                    version: None,
                    answer: None,
                });
                self.keys[key].writes.push(w);
                self.keys[key].locked = true;
                self.clients[c].writes.insert(req, w);
                self.count("writes sent", 1);
                (ReqKind::Write { w }, bytes)
            }
            None => {
                // The clean class reads only keys with no write in flight: the model is exact then.
                let key = if self.p.clean {
                    let counter = self.rng.chance(0.3);
                    match self.pick_key(counter, true) {
                        Some(k) => k,
                        None => {
                            self.clients[c].idle_until = now + self.p.think_ns_max / 2 + 1;
                            return;
                        }
                    }
                } else {
                    self.rng.below(self.keys.len() as u64) as usize
                };
                trace!(self, "client {c} req {req}: GET {:?} via shard {shard}", self.name(key));
                if self.p.clean {
                    self.keys[key].readers += 1;
                }
                self.count("GETs sent", 1);
                (ReqKind::Get { key }, encode_request(client_id, opcode::GET, req, &self.keys[key].name))
            }
        };
        let cl = &mut self.clients[c];
        send(&mut cl.ep, self.shard_addrs[shard], &bytes);
        cl.cur = Some(Outstanding {
            req,
            kind,
            bytes,
            sent_at: now,
            attempts: 1,
            deadline: now + self.p.timeout_ns,
        });
    }

    pub(crate) fn client_receive(&mut self, c: usize) {
        let mut b = Batch::with_capacity(64);
        loop {
            b.clear();
            if self.clients[c].ep.rx_burst(&mut b) == 0 {
                return;
            }
            let got: Vec<VecRx> = b.drain().collect();
            for d in got {
                self.on_datagram(c, d.payload());
            }
        }
    }

    pub(crate) fn on_datagram(&mut self, c: usize, bytes: &[u8]) {
        let Ok(h) = wire::decode_header(bytes) else {
            self.violation(format!("client {c} got garbage {bytes:?}"))
        };
        if !h.is_response() || h.client_id != self.clients[c].id || h.count == 0 {
            self.violation(format!("client {c} got a bad response header {h:?}"));
        }
        // Late answers for one client may come gathered, several frames in one datagram.
        let mut frames = wire::Frames::new(bytes, h.count);
        for f in frames.by_ref() {
            let Ok(f) = f else { self.violation(format!("client {c} got an unreadable frame {bytes:?}")) };
            self.on_frame(c, f);
        }
        if !frames.remainder().is_empty() {
            self.violation(format!("client {c} got bytes after the last frame {bytes:?}"));
        }
    }

    /// One answer frame for client `c`.
    fn on_frame(&mut self, c: usize, f: wire::Frame<'_>) {
        let Some(status) = Status::from_u8(f.status) else {
            self.violation(format!("client {c} got unknown status {}", f.status))
        };
        self.count("answers received", 1);
        let now = self.now();
        let current =
            self.clients[c].cur.as_ref().filter(|o| o.req == f.request_id).map(|o| (o.kind, o.sent_at));
        if let Some(w) = self.clients[c].writes.get(&f.request_id).copied() {
            if f.opcode != self.writes[w].op.opcode() {
                self.violation(format!("write {w} answered with opcode {}", f.opcode));
            }
            let is_current = current.is_some();
            trace!(
                self,
                "client {c} req {}: write {w} answered {status:?} {:?}{}",
                f.request_id,
                f.body,
                if is_current { "" } else { " (late)" }
            );
            if is_transient(status) {
                self.count(
                    match status {
                        Status::Busy => "answers BUSY",
                        Status::NotLeader => "answers NOT_LEADER",
                        _ => "answers UNAVAILABLE",
                    },
                    1,
                );
                if status == Status::Unavailable && self.p.restart_on_unavailable && self.restart_at.is_none()
                {
                    // The operator restarts the node whose log failed.
                    self.restart_at = Some(now + self.rng.range(0, 3_000_000));
                }
                if is_current {
                    let backoff = self.rng.range(50_000, 800_000);
                    let o = self.clients[c].cur.as_mut().expect("current");
                    o.deadline = o.deadline.min(now + backoff);
                }
                return;
            }
            self.on_write_answer(w, status, f.body, is_current);
            if is_current {
                self.keys[self.writes[w].key].locked = false;
                self.clients[c].cur = None;
                self.clients[c].idle_until = now + self.rng.range(0, self.p.think_ns_max);
            }
            return;
        }
        let Some((ReqKind::Get { key }, sent_at)) = current else {
            self.count("late GET answers ignored", 1);
            return;
        };
        if f.opcode != opcode::GET {
            self.violation(format!("GET answered with opcode {}", f.opcode));
        }
        trace!(
            self,
            "client {c} req {}: GET {:?} answered {status:?} {:?}",
            f.request_id,
            self.name(key),
            String::from_utf8_lossy(f.body)
        );
        let result = match status {
            Status::Ok => {
                if f.body.len() < 8 {
                    self.violation(format!("GET answer body {:?}", f.body));
                }
                ReadResult::Found {
                    version: u64::from_le_bytes(f.body[..8].try_into().expect("8")),
                    value: f.body[8..].to_vec(),
                }
            }
            Status::NotFound => ReadResult::Absent,
            s if is_transient(s) => {
                self.count("GETs answered transiently", 1);
                let backoff = self.rng.range(50_000, 800_000);
                let o = self.clients[c].cur.as_mut().expect("current");
                o.deadline = o.deadline.min(now + backoff);
                return;
            }
            s => self.violation(format!("GET {:?} answered {s:?}", self.name(key))),
        };
        self.check_read(key, sent_at, now, &result, "client GET", true);
        self.count("GETs checked", 1);
        if self.p.clean {
            self.keys[key].readers -= 1;
        }
        self.clients[c].cur = None;
        self.clients[c].idle_until = now + self.rng.range(0, self.p.think_ns_max);
    }
}
