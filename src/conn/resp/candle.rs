//! The candle store over RESP (docs/CLIENTS.md, "Candles over RESP"): module-style commands run
//! as the binary protocol's candle opcodes (docs/PROTOCOL.md, "Candles").
//!
//! - `CANDLE.LIGHT field value ...`: the fields are set on the session's candle (English or
//!   Portuguese names, `conn::candle_fields`), validated here at the request's date
//!   (`Candle::validate`, the partition's own check) and, only when valid, sent as one
//!   CANDLE_LIGHT; the reply is the id once durable. An invalid candle is `-ERR <field>: <reason>`
//!   and nothing is sent.
//! - `CANDLE.GET id`, `CANDLE.LIST partition [cursor [count]]`: one read each, replied from its
//!   answer (a candle is its field/value pairs: an array, a map in RESP3).
//! - `CANDLE.COUNT`, `CANDLE.COUNTS STATE`: one CANDLE_COUNT / CANDLE_COUNT_STATES per partition,
//!   summed as their answers come (as DBSIZE sums KEYS_COUNT).
//!
//! Invariants: a LIGHT's candle borrows the request's arguments (nothing copied or allocated on
//! the way to its body, which the session's buffer holds); the text scratch is reused; a state
//! count folds into the session's `states`, which only one command uses at a time (reads run
//! with nothing before them).

use super::{Kind, Ran, State, Style};
use crate::candle::wire;
use crate::conn::candle_fields as fields;
use crate::conn::Cx;
use crate::protocol::resp::{ArgList, ReplyWriter, RespVersion};
use crate::wire::{opcode, Status};
use std::fmt::Write;

/// Entries of a CANDLE_COUNT_STATES answer (27 states, 4 spare, abroad).
pub(super) const STATE_ENTRIES: usize = 32;

/// CANDLE.LIGHT: sets, validates and sends the candle; or replies why it is refused.
pub(super) fn light(st: &mut State, pairs: ArgList<'_>, cx: &mut Cx<'_>) -> Ran {
    st.text.clear();
    st.text.push_str("ERR ");
    let pairs_of = (0..pairs.len() / 2).map(|i| (pairs.get(2 * i), pairs.get(2 * i + 1)));
    let Some(candle) = fields::from_pairs(pairs_of, &mut st.text) else {
        return refuse_text(st, cx);
    };
    if let Err(e) = candle.validate(fields::today(cx.now)) {
        st.text.clear();
        let _ = write!(st.text, "ERR {}: {e}", e.field_name());
        return refuse_text(st, cx);
    }
    st.parts(Kind::CandleId, 1, cx, |body, _| {
        wire::write_ref(&candle, body);
        opcode::CANDLE_LIGHT
    })
}

/// Replies the error in `st.text`, in order (after the commands before it).
fn refuse_text(st: &mut State, cx: &mut Cx<'_>) -> Ran {
    if !st.pending.is_empty() {
        return Ran::Blocked;
    }
    ReplyWriter::new(cx.output, st.version).error(st.text.as_bytes());
    Ran::Done
}

/// A CANDLE_GET request body: the id.
pub(super) fn get_body(body: &mut Vec<u8>, id: u64) -> u8 {
    body.extend_from_slice(&id.to_le_bytes());
    opcode::CANDLE_GET
}

/// A CANDLE_LIST request body; cursor 0 is the newest, count 0 the server's page size.
pub(super) fn list_body(body: &mut Vec<u8>, partition: u16, cursor: u64, count: u16) -> u8 {
    body.extend_from_slice(&partition.to_le_bytes());
    body.extend_from_slice(&(if cursor == 0 { u64::MAX } else { cursor }).to_le_bytes());
    body.extend_from_slice(&(if count == 0 { u16::MAX } else { count }).to_le_bytes());
    opcode::CANDLE_LIST
}

/// A CANDLE_COUNT or CANDLE_COUNT_STATES request body: the partition.
pub(super) fn count_body(body: &mut Vec<u8>, partition: usize, op: u8) -> u8 {
    body.extend_from_slice(&(partition as u16).to_le_bytes());
    op
}

/// Adds a CANDLE_COUNT_STATES answer into `states`.
pub(super) fn add_states(states: &mut [u64; STATE_ENTRIES], body: &[u8]) {
    for (i, n) in states.iter_mut().enumerate() {
        *n += body.get(8 * i..8 * i + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    }
}

/// CANDLE.COUNTS STATE's reply: UF, count for each state with candles (a map in RESP3).
pub(super) fn write_states(w: &mut ReplyWriter<'_>, states: &[u64; STATE_ENTRIES]) {
    let lit =
        || states.iter().enumerate().filter_map(|(i, &n)| Some((fields::uf(i)?, n)).filter(|p| p.1 > 0));
    if w.version() == RespVersion::Resp3 {
        w.map(lit().count());
    } else {
        w.array(2 * lit().count());
    }
    for (uf, n) in lit() {
        w.bulk(uf.as_bytes());
        w.integer(n as i64);
    }
}

/// The reply of CANDLE.GET or CANDLE.LIST from its answer.
pub(super) fn write_read(w: &mut ReplyWriter<'_>, style: Style, status: Status, body: &[u8]) {
    match (style, status) {
        (Style::CandleGet { id }, Status::Ok) => {
            let lit_at = body.get(..4).map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
            write_candle_or_error(w, id, lit_at, body.get(4..).unwrap_or(&[]));
        }
        (Style::CandleGet { .. }, Status::NotFound) => w.null(),
        (Style::CandleList, Status::Ok) => write_list(w, body),
        (_, other) => w.error(status_text(other)),
    }
}

/// CANDLE.LIST's reply: [next cursor or 0, [candle, ...]].
fn write_list(w: &mut ReplyWriter<'_>, body: &[u8]) {
    let n = body.get(..2).map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
    let more = body.get(2).copied().unwrap_or(0) != 0;
    let mut items = Vec::with_capacity(n);
    let mut at = 3;
    for _ in 0..n {
        let Some(head) = body.get(at..at + 14) else { break };
        let id = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        let lit_at = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        let len = usize::from(u16::from_le_bytes([head[12], head[13]]));
        let Some(candle) = body.get(at + 14..at + 14 + len) else { break };
        items.push((id, lit_at, candle));
        at += 14 + len;
    }
    w.array(2);
    w.integer(if more { items.last().map_or(0, |i| i.0 as i64) } else { 0 });
    w.array(items.len());
    for (id, lit_at, candle) in items {
        write_candle_or_error(w, id, lit_at, candle);
    }
}

/// One candle as its field/value pairs, from its client body (an undecodable body, which the
/// server never gives, is an error reply in its place).
fn write_candle_or_error(w: &mut ReplyWriter<'_>, id: u64, lit_at: u32, body: &[u8]) {
    let Ok(c) = wire::read_ref(body) else {
        return w.error(b"ERR the server answered a candle this client cannot read");
    };
    let mut text = String::new();
    let pairs = fields::pairs(id, lit_at, &c, &mut text);
    if w.version() == RespVersion::Resp3 {
        w.map(pairs.len());
    } else {
        w.array(2 * pairs.len());
    }
    for (name, value) in &pairs {
        w.bulk(name.as_bytes());
        w.bulk(value.text().as_bytes());
    }
}

/// The error reply for a candle request's status.
pub(super) fn status_text(status: Status) -> &'static [u8] {
    match status {
        Status::Invalid => b"ERR the server refused the candle's fields (validation at its date)",
        Status::BadRequest => b"ERR the candle's body did not parse",
        Status::Full => b"OOM the day's candles are full (candle.candles_per_day_max); nothing stored",
        Status::ValueTooLarge => b"ERR a text field does not fit the overflow pool's value limit",
        Status::ResponseTooLarge => b"ERR the candle's answer is too large for the connection's buffer",
        Status::NotFound => b"ERR no such partition",
        other => super::status_text(other),
    }
}
