//! The candle store over HTTP (docs/CLIENTS.md, "Candles over HTTP"), on the REST API's port:
//!
//! - `POST /candles` with a JSON object of the fields (`name`, `email`, `birth_date`
//!   "YYYY-MM-DD", `phone`, `has_whatsapp`, `address`, `neighbourhood`, `city` (IBGE code),
//!   `state` (UF), `country` (ISO numeric, default 76), `prayer`): validated here at the request's
//!   date (`Candle::validate`, the partition's own check), then one CANDLE_LIGHT; `201 {"id": n}`
//!   with `Location: /candles/<id>` once durable; `422 {"field", "error"}` when a field is wrong
//!   (nothing sent); 400 when the body is not a JSON object.
//! - `GET /candles/<id>`: 200 with the candle as JSON (with `id` and `lit_at`, Unix seconds), 404.
//! - `GET /candles?partition=P[&cursor=C][&count=N]`: one CANDLE_LIST; 200
//!   `{"next": C, "candles": [...]}`, newest first (`next` 0 on the last page).
//! - `GET /candles/count`: `{"live": n, "by_state": {"SP": n, ...}}`: one CANDLE_COUNT and one
//!   CANDLE_COUNT_STATES per partition, summed as their answers come.
//!
//! Ordering is the session's (`conn::http`): a LIGHT is a write (pipelined, answered in order),
//! the reads run with nothing before them, so at most one count is in flight per connection and
//! its sums live in the session (`Counts`).
//!
//! Invariants: a refused candle sends nothing; every request is answered exactly once; a count
//! refused BUSY part-way resumes from the part it stopped at.

use super::{Cx, HttpSession};
use super::{Kind, Ran, Reply};
use crate::candle::wire;
use crate::conn::candle_fields as fields;
use crate::conn::candle_json::{self, Borrowed, Owned};
use crate::dispatch::Answer;
use crate::protocol::http::{Head, HttpLimits, Method};
use crate::shard::LateAnswer;
use crate::wire::{opcode, Status};
use std::io::Write;

/// Largest JSON body of `POST /candles` (the fields at their limits, escaped).
pub const CANDLE_JSON_BYTES_MAX: usize = 16 << 10;
/// Entries of a CANDLE_COUNT_STATES answer (27 states, 4 spare, abroad).
const STATE_ENTRIES: usize = 32;

/// A `GET /candles/count` in flight: its sums and how far it got.
#[derive(Debug)]
pub(super) struct Counts {
    first_id: u64,
    /// Requests dispatched (2 per partition); `resume` past 0 after a BUSY.
    issued: u64,
    outstanding: u32,
    live: u64,
    states: [u64; STATE_ENTRIES],
    error: Option<Status>,
}

impl Default for Counts {
    fn default() -> Self {
        Self { first_id: 0, issued: 0, outstanding: 0, live: 0, states: [0; STATE_ENTRIES], error: None }
    }
}

/// The limits a request's framing is held to: a `POST /candles` body may pass a datagram.
pub(super) fn limits_for(input: &[u8], limits: &HttpLimits) -> HttpLimits {
    let mut l = *limits;
    if input.starts_with(b"POST /candles ") {
        l.body_bytes_max = l.body_bytes_max.max(CANDLE_JSON_BYTES_MAX);
    }
    l
}

impl HttpSession {
    /// Runs a request under `/candles`.
    pub(super) fn candles(&mut self, head: &Head<'_>, path: &[u8], body: &[u8], cx: &mut Cx<'_>) -> Ran {
        match (path, head.method) {
            (b"/candles", Method::Post) => self.light(head, body, cx),
            (b"/candles", Method::Get | Method::Head) => self.list(head, cx),
            (b"/candles", _) => {
                self.local(head, cx, |o, r| super::method_not_allowed(o, r, "GET, HEAD, POST"))
            }
            (b"/candles/count", Method::Get | Method::Head) => self.count(head, cx),
            (_, Method::Get | Method::Head) => {
                let id = path.strip_prefix(b"/candles/").and_then(|s| std::str::from_utf8(s).ok());
                match id.and_then(|s| s.parse::<u64>().ok()) {
                    Some(id) => self.get_candle(head, id, cx),
                    None => self.local(head, cx, |o, r| r.text(o, 404, "no such candle: /candles/<id>\n")),
                }
            }
            _ => self.local(head, cx, |o, r| super::method_not_allowed(o, r, "GET, HEAD")),
        }
    }

    /// `POST /candles`: parse, validate, send. A usual body is read borrowed (`candle_json`: no
    /// allocation); what that way does not take is read as a `serde_json::Value` (`light_owned`),
    /// which answers it as it always did.
    fn light(&mut self, head: &Head<'_>, body: &[u8], cx: &mut Cx<'_>) -> Ran {
        let Borrowed::Candle(c) = candle_json::read(body) else {
            return self.light_owned(head, body, cx);
        };
        if let Err(e) = c.validate(fields::today(cx.now)) {
            return self.unprocessable(head, e.field_name(), &e.to_string(), cx);
        }
        self.body.clear();
        wire::write_ref(&c, &mut self.body);
        self.write(opcode::CANDLE_LIGHT, Kind::CandleLight, head, cx)
    }

    /// `POST /candles` read the owned way: a `serde_json::Value`, its members set in its order.
    fn light_owned(&mut self, head: &Head<'_>, body: &[u8], cx: &mut Cx<'_>) -> Ran {
        let c = match candle_json::read_owned(body) {
            Ok(c) => c,
            Err(Owned::NotAnObject) => {
                return self.local(head, cx, |o, r| {
                    r.text(o, 400, "the body must be a JSON object of the candle's fields\n")
                })
            }
            Err(Owned::Field { field, why }) => return self.unprocessable(head, &field, why, cx),
        };
        if let Err(e) = c.validate(fields::today(cx.now)) {
            return self.unprocessable(head, e.field_name(), &e.to_string(), cx);
        }
        self.body.clear();
        wire::write(&c, &mut self.body);
        self.write(opcode::CANDLE_LIGHT, Kind::CandleLight, head, cx)
    }

    /// 422 with the field and why, in order.
    fn unprocessable(&mut self, head: &Head<'_>, field: &str, error: &str, cx: &mut Cx<'_>) -> Ran {
        self.local(head, cx, |o, r| {
            let json = serde_json::json!({ "field": field, "error": error }).to_string();
            r.start(o, 422).finish(Some("application/json"), json.as_bytes(), r.head_only);
        })
    }

    /// `GET /candles/<id>`.
    fn get_candle(&mut self, head: &Head<'_>, id: u64, cx: &mut Cx<'_>) -> Ran {
        if !self.pending.is_empty() {
            return Ran::Blocked;
        }
        self.body.clear();
        self.body.extend_from_slice(&id.to_le_bytes());
        self.read(opcode::CANDLE_GET, Kind::CandleGet { id }, head, cx)
    }

    /// `GET /candles?partition=P[&cursor=C][&count=N]`.
    fn list(&mut self, head: &Head<'_>, cx: &mut Cx<'_>) -> Ran {
        if !self.pending.is_empty() {
            return Ran::Blocked;
        }
        let query = crate::protocol::http::target::split(head.target).1;
        let number = |name: &[u8]| {
            let v = crate::protocol::http::target::query_param(query, name)?;
            std::str::from_utf8(v).ok()?.parse::<u64>().ok()
        };
        let Some(partition) = number(b"partition").and_then(|p| u16::try_from(p).ok()) else {
            let text = "a list names its partition: /candles?partition=P[&cursor=C][&count=N]\n";
            return self.local(head, cx, |o, r| r.text(o, 400, text));
        };
        let cursor = number(b"cursor").filter(|&c| c != 0).unwrap_or(u64::MAX);
        let count =
            number(b"count").filter(|&n| n != 0).map_or(u16::MAX, |n| n.min(u64::from(u16::MAX)) as u16);
        self.body.clear();
        self.body.extend_from_slice(&partition.to_le_bytes());
        self.body.extend_from_slice(&cursor.to_le_bytes());
        self.body.extend_from_slice(&count.to_le_bytes());
        self.read(opcode::CANDLE_LIST, Kind::CandleList, head, cx)
    }

    /// A candle read (GET or LIST, its body in `body`): answered now, or pushed to be answered
    /// when its answer comes (it is at the head then).
    fn read(&mut self, op: u8, kind: Kind, head: &Head<'_>, cx: &mut Cx<'_>) -> Ran {
        let req_id = self.next_id;
        let (status, n) = match self.dispatch(op, cx) {
            Err(Status::Busy) => return Ran::Busy,
            Ok(Answer::Later) => {
                self.push(req_id, kind, head);
                return Ran::Done;
            }
            Ok(Answer::Now(n)) => (Status::Ok, n),
            Err(status) | Ok(Answer::Refused { status, .. }) => (status, 0),
        };
        write_read(cx.output, Reply::of(head), kind, status, &cx.scratch[..n]);
        Ran::Done
    }

    /// `GET /candles/count`: a COUNT and a COUNT_STATES per partition.
    fn count(&mut self, head: &Head<'_>, cx: &mut Cx<'_>) -> Ran {
        if !self.pending.is_empty() {
            return Ran::Blocked;
        }
        let requests = 2 * u64::from(self.partitions.max(1));
        if self.counts.issued == 0 {
            self.counts = Counts { first_id: self.next_id, ..Counts::default() };
        }
        while self.counts.issued < requests {
            let (partition, i) = ((self.counts.issued / 2) as u16, self.counts.issued);
            let op = if i % 2 == 0 { opcode::CANDLE_COUNT } else { opcode::CANDLE_COUNT_STATES };
            self.body.clear();
            self.body.extend_from_slice(&partition.to_le_bytes());
            match self.dispatch(op, cx) {
                Err(Status::Busy) => return Ran::Busy,
                Ok(Answer::Later) => self.counts.outstanding += 1,
                Ok(Answer::Now(n)) => fold(&mut self.counts, op, Status::Ok, &cx.scratch[..n]),
                Err(status) | Ok(Answer::Refused { status, .. }) => fold(&mut self.counts, op, status, &[]),
            }
            self.counts.issued += 1;
        }
        if self.counts.outstanding == 0 {
            write_counts(cx.output, Reply::of(head), &self.counts, &mut self.json);
            self.counts.issued = 0;
        } else {
            self.push(self.counts.first_id, Kind::CandleCount, head);
        }
        Ran::Done
    }

    /// Takes a late answer if it is a candle read's (a GET's, or part of the count in flight).
    pub(super) fn candle_answer(&mut self, a: &LateAnswer<'_>, output: &mut Vec<u8>) -> bool {
        let c = &self.counts;
        if c.outstanding > 0 && (c.first_id..c.first_id + c.issued).contains(&a.request_id) {
            fold(&mut self.counts, a.opcode, a.status, a.body);
            self.counts.outstanding -= 1;
            // Complete once every part was dispatched (its entry is pushed then); a count still
            // resuming after BUSY completes in `count`.
            let done = self.pending.front().is_some_and(|p| p.kind == Kind::CandleCount);
            if self.counts.outstanding == 0 && done {
                let p = self.pending.pop_front().expect("front exists");
                write_counts(output, p.reply, &self.counts, &mut self.json);
                self.counts.issued = 0;
                self.reply_ready(output);
            }
            return true;
        }
        let Some(at) = self.pending.iter().position(|p| p.id == a.request_id) else { return false };
        let kind = self.pending[at].kind;
        if !matches!(kind, Kind::CandleGet { .. } | Kind::CandleList) {
            return false;
        }
        // Reads run only with nothing before them: this one is at the head.
        let p = self.pending.remove(at).expect("found");
        write_read(output, p.reply, kind, a.status, a.body);
        self.reply_ready(output);
        true
    }
}

/// Adds one count answer to the sums (the first error is kept).
fn fold(c: &mut Counts, op: u8, status: Status, body: &[u8]) {
    let at = |i: usize| {
        body.get(8 * i..8 * i + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    match (op, status) {
        (opcode::CANDLE_COUNT, Status::Ok) => c.live += at(0),
        (opcode::CANDLE_COUNT_STATES, Status::Ok) => {
            c.states.iter_mut().enumerate().for_each(|(i, n)| *n += at(i))
        }
        (_, status) => {
            c.error.get_or_insert(status);
        }
    }
}

/// The count's response: the sums, or 503 when a partition could not answer.
fn write_counts(out: &mut Vec<u8>, reply: Reply, c: &Counts, json: &mut Vec<u8>) {
    if let Some(status) = c.error {
        return write_refusal(out, reply, status);
    }
    json.clear();
    let _ = write!(json, "{{\"live\":{},\"by_state\":{{", c.live);
    let mut first = true;
    for (i, &n) in c.states.iter().enumerate() {
        let Some(uf) = fields::uf(i).filter(|_| n > 0) else { continue };
        let _ = write!(json, "{}\"{uf}\":{n}", if first { "" } else { "," });
        first = false;
    }
    json.extend_from_slice(b"}}");
    reply.start(out, 200).finish(Some("application/json"), json, reply.head_only);
}

/// A LIGHT's response: 201 with the id and its location, or why it was refused.
pub(super) fn write_lit(out: &mut Vec<u8>, reply: Reply, status: Status, id: u64) {
    if status != Status::Ok {
        return write_refusal(out, reply, status);
    }
    // `{"id":<u64>}` is at most 28 bytes: written on the stack, not into a `String`.
    let mut json = [0u8; 32];
    let mut w = &mut json[..];
    let _ = write!(w, "{{\"id\":{id}}}");
    let len = 32 - w.len();
    let mut r = reply.start(out, 201);
    r.header("Location", format_args!("/candles/{id}"));
    r.finish(Some("application/json"), &json[..len], reply.head_only);
}

/// A candle read's response: the candle (GET) or the page (LIST) as JSON, or the refusal.
fn write_read(out: &mut Vec<u8>, reply: Reply, kind: Kind, status: Status, body: &[u8]) {
    if status != Status::Ok {
        return write_refusal(out, reply, status);
    }
    let json = match kind {
        Kind::CandleGet { id } => {
            let lit_at = body.get(..4).map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
            candle_json(id, lit_at, body.get(4..).unwrap_or(&[]))
        }
        _ => list_json(body),
    };
    match json {
        Some(json) => reply.start(out, 200).finish(
            Some("application/json"),
            json.to_string().as_bytes(),
            reply.head_only,
        ),
        None => reply.text(out, 500, "the server answered a candle this client cannot read\n"),
    }
}

/// A CANDLE_LIST answer as `{"next": cursor or 0, "candles": [...]}`.
fn list_json(body: &[u8]) -> Option<serde_json::Value> {
    let n = usize::from(u16::from_le_bytes(body.get(..2)?.try_into().ok()?));
    let more = *body.get(2)? != 0;
    let (mut at, mut candles, mut last) = (3, Vec::with_capacity(n), 0);
    for _ in 0..n {
        let head = body.get(at..at + 14)?;
        last = u64::from_le_bytes(head[..8].try_into().ok()?);
        let lit_at = u32::from_le_bytes(head[8..12].try_into().ok()?);
        let len = usize::from(u16::from_le_bytes([head[12], head[13]]));
        candles.push(candle_json(last, lit_at, body.get(at + 14..at + 14 + len)?)?);
        at += 14 + len;
    }
    Some(serde_json::json!({ "next": if more { last } else { 0 }, "candles": candles }))
}

/// One candle as a JSON object: its fields, `id` and `lit_at`.
fn candle_json(id: u64, lit_at: u32, body: &[u8]) -> Option<serde_json::Value> {
    let c = wire::read_ref(body).ok()?;
    let mut text = String::new();
    let mut obj = serde_json::Map::new();
    for (name, value) in fields::pairs(id, lit_at, &c, &mut text) {
        obj.insert(name.to_owned(), value.json(name));
    }
    Some(serde_json::Value::Object(obj))
}

/// A candle request's refusal as a status code.
fn write_refusal(out: &mut Vec<u8>, reply: Reply, status: Status) {
    let (code, text) = match status {
        Status::NotFound => (404, "no such candle (never lit, or its seven days are over)\n"),
        Status::Invalid => {
            let json = br#"{"field":"candle","error":"the server refused the candle's fields at its date"}"#;
            return reply.start(out, 422).finish(Some("application/json"), json, reply.head_only);
        }
        Status::BadRequest | Status::BadLength => (400, "the candle's body did not parse\n"),
        Status::Full => (507, "the day's candles are full (candle.candles_per_day_max); nothing stored\n"),
        Status::ValueTooLarge => (413, "a text field does not fit the overflow pool's value limit\n"),
        other => return super::write_failure(out, reply, other),
    };
    reply.text(out, code, text);
}
