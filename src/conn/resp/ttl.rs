//! The RESP executor's keyspace commands beyond plain GET/SET: SET with NX/XX/GET and an expiry,
//! GETSET, EXPIRE/PEXPIRE, PERSIST, TTL/PTTL, DBSIZE and INFO's keyspace: their request bodies
//! (the binary protocol's SETX, EXPIRE, PERSIST, TTL and KEYS_COUNT, docs/PROTOCOL.md) and the
//! Redis replies their answers give.
//!
//! Relative expiries travel relative: the partition resolves them with the leader's timestamp of
//! the entry (`kv::expiry`). The connection only checks, as Redis does, that the deadline they
//! give from the request's time does not overflow (`ERR invalid expire time`).

use crate::kv::{expire_flags, set_flags};
use crate::protocol::resp::options::{ExpireCondition, Expiry, SetCondition, SetTtl};
use crate::protocol::resp::{CommandError, ReplyWriter};
use crate::wire::{opcode, Status};

/// How a command answered by one request replies, written when its answer comes (it is at the
/// head of the connection's pipeline then).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Style {
    /// GET: the value, or nil.
    Get,
    /// SET with NX/XX/GET, GETSET: with GET the old value (or nil), else OK (or nil when the
    /// condition failed).
    SetX {
        /// The command asked for the old value.
        get: bool,
    },
    /// TTL / PTTL: the remaining time (s rounded, or ms), -1 without expiry, -2 absent.
    Ttl {
        /// PTTL.
        millis: bool,
    },
    /// CANDLE.GET (`resp::candle`): the candle's pairs, or nil.
    CandleGet {
        /// The id asked for (the answer does not carry it).
        id: u64,
    },
    /// CANDLE.LIST: [next cursor, candles].
    CandleList,
}

/// The `u8 flags, u8 kind, i64 ms` head of a SETX or EXPIRE body.
fn put_ttl_head(body: &mut Vec<u8>, flags: u8, kind: u8, ms: i64) {
    body.push(flags);
    body.push(kind);
    body.extend_from_slice(&ms.to_le_bytes());
}

/// The kind byte and milliseconds of an expiry (2 relative, 3 absolute).
fn expiry_parts(e: Expiry) -> (u8, i64) {
    match e {
        Expiry::RelativeMs(ms) => (2, ms),
        Expiry::AbsoluteMs(ms) => (3, ms),
    }
}

/// Redis's overflow check of a deadline from the request's time.
pub(super) fn check_expiry(
    e: Expiry,
    now_ms: u64,
    command: &'static str,
) -> Result<(), CommandError<'static>> {
    match e.deadline_ms(now_ms as i64) {
        Some(_) => Ok(()),
        None => Err(CommandError::InvalidExpire { command }),
    }
}

/// A SETX request body: `u8 flags, u8 ttl kind, i64 ms, u16 key_len, key, value`.
pub(super) fn setx_body(
    body: &mut Vec<u8>,
    key: &[u8],
    value: &[u8],
    condition: SetCondition,
    get: bool,
    ttl: SetTtl,
) -> u8 {
    let mut flags = match condition {
        SetCondition::Always => 0,
        SetCondition::IfAbsent => set_flags::NX,
        SetCondition::IfPresent => set_flags::XX,
    };
    if get {
        flags |= set_flags::GET;
    }
    let (kind, ms) = match ttl {
        SetTtl::Clear => (0, 0),
        SetTtl::Keep => (1, 0),
        SetTtl::Expire(e) => expiry_parts(e),
    };
    put_ttl_head(body, flags, kind, ms);
    body.extend_from_slice(&(key.len().min(u16::MAX as usize) as u16).to_le_bytes());
    body.extend_from_slice(key);
    body.extend_from_slice(value);
    opcode::SETX
}

/// An EXPIRE request body: `u8 flags, u8 kind, i64 ms, key`.
pub(super) fn expire_body(body: &mut Vec<u8>, key: &[u8], expiry: Expiry, c: ExpireCondition) -> u8 {
    let flags = [
        (c.nx, expire_flags::NX),
        (c.xx, expire_flags::XX),
        (c.gt, expire_flags::GT),
        (c.lt, expire_flags::LT),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .fold(0, |acc, (_, bit)| acc | bit);
    let (kind, ms) = expiry_parts(expiry);
    put_ttl_head(body, flags, kind, ms);
    body.extend_from_slice(key);
    opcode::EXPIRE
}

/// A KEYS_COUNT request body: the partition.
pub(super) fn count_body(body: &mut Vec<u8>, partition: usize) -> u8 {
    body.extend_from_slice(&(partition as u16).to_le_bytes());
    opcode::KEYS_COUNT
}

/// Writes the reply of a single-request command from its answer.
pub(super) fn write_streamed(w: &mut ReplyWriter<'_>, style: Style, status: Status, body: &[u8]) {
    match (style, status) {
        (Style::CandleGet { .. } | Style::CandleList, _) => super::candle::write_read(w, style, status, body),
        (Style::Get, Status::Ok) => w.bulk(body.get(8..).unwrap_or(&[])),
        (Style::Get | Style::SetX { .. }, Status::NotFound) => w.null(),
        (Style::SetX { get }, Status::Ok) => {
            let bits = body.first().copied().unwrap_or(0);
            let (stored, existed) = (bits & 1 != 0, bits & 2 != 0);
            match (get, existed, stored) {
                (true, true, _) => w.bulk(body.get(9..).unwrap_or(&[])),
                (true, false, _) | (false, _, false) => w.null(),
                (false, _, true) => w.ok(),
            }
        }
        (Style::Ttl { millis }, Status::Ok) => {
            let ms = body.get(..8).map_or(-1, |b| i64::from_le_bytes(b.try_into().expect("8 bytes")));
            // Redis rounds seconds to the nearest: (ms + 500) / 1000.
            w.integer(if ms < 0 || millis { ms } else { (ms + 500) / 1000 })
        }
        (Style::Ttl { .. }, Status::NotFound) => w.integer(-2),
        (_, other) => w.error(super::status_text(other)),
    }
}

/// The `(keys, expiring)` of a KEYS_COUNT answer.
pub(super) fn count_of(body: &[u8]) -> (i64, i64) {
    let at = |i: usize| body.get(i..i + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    (at(0) as i64, at(8) as i64)
}
