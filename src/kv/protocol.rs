//! The KV opcodes on the wire: request bodies in, answer bodies out (docs/PROTOCOL.md, "KV").
//!
//! Request bodies (little-endian; "rest" is every byte up to the end of the body):
//!
//! | opcode | body |
//! |-------:|------|
//! | 0x10 GET  | key (rest) |
//! | 0x11 SET  | u16 key_len, key, value (rest) |
//! | 0x12 DEL  | key (rest) |
//! | 0x13 INCR | i64 delta, key (rest) |
//! | 0x14 CAS  | u64 expected_version, u16 key_len, key, value (rest) |
//! | 0x15 SETX | u8 flags (bit 0 NX, 1 XX, 2 GET), u8 ttl kind (0 clear, 1 keep, 2 relative ms, 3 absolute Unix ms), i64 ms (0 for kinds 0 and 1), u16 key_len, key, value (rest) |
//! | 0x16 EXPIRE | u8 flags (bit 0 NX, 1 XX, 2 GT, 3 LT), u8 kind (2 relative ms, 3 absolute Unix ms), i64 ms, key (rest) |
//! | 0x17 PERSIST | key (rest) |
//! | 0x19 TTL | key (rest) |
//! | 0x1a KEYS_COUNT | u16 partition |
//! | 0x1c CAD | u64 expected_version, key (rest) |
//! | 0x1b MSET | u16 count (at least 1), then count x (u16 key_len, key, u32 value_len, value); every key of one partition (else `BAD_REQUEST`), all stored or none |
//!
//! Exactly-once: a write's sequence number is the frame's `request_id`, its client the datagram's
//! `client_id`. A client that wants exactly-once uses a non-zero client id and strictly increasing
//! request ids for its writes, and resends a write with the same request id; client 0 is anonymous
//! (at least once).
//!
//! Answer bodies (status OK; errors have an empty body):
//!
//! | opcode | answer |
//! |-------:|--------|
//! | GET  | u64 version, value (rest); `NOT_FOUND` if absent |
//! | SET, CAS, MSET | u64 version: the key's (MSET: every key's) new version |
//! | DEL  | u8: 1 if the key existed and was deleted, 0 if it did not exist |
//! | CAD  | u8 1: deleted; `CAS_MISMATCH` (empty body) if the key's version is another or it is absent |
//! | INCR | i64 new value, u64 version |
//! | SETX | u8 bits (bit 0: stored, bit 1: the key existed), u64 the key's version now (0: absent), then with GET and an existing key its old value (rest) |
//! | EXPIRE, PERSIST | u8: 1 if the expiry was set (or the key deleted: a time already past) / dropped, 0 if not (absent key, condition false) |
//! | TTL  | i64 remaining ms, -1 if the key has no expiry; `NOT_FOUND` if absent or expired |
//! | KEYS_COUNT | u64 keys, u64 keys with an expiry (keys expired but not yet reclaimed count) |
//!
//! Rendering writes into the caller's buffer (the room left in the response datagram) and
//! allocates nothing; the functions return what a `dispatch::Handler` returns.

use super::command::{expire_flags, read_ttl, set_flags, Command, Op, Ttl};
use super::pairs::Pairs;
use super::projection::{ApplyResult, KvProjection};
use super::{KvError, Reader, Writer};
use crate::wire::{opcode, Status};

/// Reads the body of a KV write request (SET, DEL, INCR, CAS) into the command to log.
pub fn parse_write(opcode: u8, client_id: u64, request_id: u64, body: &[u8]) -> Result<Command<'_>, KvError> {
    let mut r = Reader::new(body);
    let op = match opcode {
        opcode::SET => {
            let key = r.bytes_u16()?;
            Op::Set { key, value: r.rest() }
        }
        opcode::DEL => Op::Del { key: r.rest() },
        opcode::INCR => {
            let delta = r.i64()?;
            Op::Incr { key: r.rest(), delta }
        }
        opcode::CAS => {
            let expected_version = r.u64()?;
            let key = r.bytes_u16()?;
            Op::Cas { key, expected_version, value: r.rest() }
        }
        opcode::SETX => {
            let (flags, ttl) = read_ttl(&mut r, set_flags::ALL)?;
            let key = r.bytes_u16()?;
            Op::SetX { key, value: r.rest(), flags, ttl }
        }
        opcode::EXPIRE => {
            let (flags, ttl) = read_ttl(&mut r, expire_flags::ALL)?;
            if !matches!(ttl, Ttl::RelativeMs(_) | Ttl::AbsoluteMs(_)) {
                return Err(KvError::BadField("EXPIRE needs a relative or absolute time"));
            }
            Op::Expire { key: r.rest(), flags, ttl }
        }
        opcode::PERSIST => Op::Persist { key: r.rest() },
        opcode::MSET => Op::MSet { pairs: Pairs::read(&mut r)? },
        opcode::CAD => {
            let expected_version = r.u64()?;
            Op::Cad { key: r.rest(), expected_version }
        }
        other => return Err(KvError::NotAWrite(other)),
    };
    r.finish()?;
    Ok(Command { client_id, seq: request_id, op })
}

/// Reads the body of a GET request: the key.
pub fn parse_get(body: &[u8]) -> &[u8] {
    body
}

/// Bytes the request body of `op` takes.
pub fn request_body_len(op: &Op<'_>) -> usize {
    match op {
        Op::Set { key, value } => 2 + key.len() + value.len(),
        Op::Del { key } => key.len(),
        Op::Incr { key, .. } => 8 + key.len(),
        Op::Cas { key, value, .. } => 8 + 2 + key.len() + value.len(),
        Op::SetX { key, value, .. } => 10 + 2 + key.len() + value.len(),
        Op::Expire { key, .. } => 10 + key.len(),
        Op::Persist { key } => key.len(),
        Op::ExpireDue => 0,
        Op::MSet { pairs } => pairs.encoded_len(),
        Op::Cad { key, .. } => 8 + key.len(),
    }
}

/// The `u8 flags, u8 kind, i64 ms` of a SETX or EXPIRE body.
fn ttl_head(flags: u8, ttl: Ttl) -> [u8; 10] {
    let (kind, ms) = match ttl {
        Ttl::Clear => (0u8, 0i64),
        Ttl::Keep => (1, 0),
        Ttl::RelativeMs(ms) => (2, ms),
        Ttl::AbsoluteMs(ms) => (3, ms),
    };
    let mut out = [0u8; 10];
    out[0] = flags;
    out[1] = kind;
    out[2..].copy_from_slice(&ms.to_le_bytes());
    out
}

/// Writes the request body of `op` (for clients, tools and tests); returns its length. The frame's
/// opcode is `op.opcode()`.
pub fn encode_write_body(op: &Op<'_>, out: &mut [u8]) -> Result<usize, KvError> {
    let key_len = u16::try_from(op.key().len()).map_err(|_| KvError::KeyTooLong(op.key().len()))?;
    let mut w = Writer::new(out, request_body_len(op))?;
    match *op {
        Op::Set { key, value } => {
            w.put(&key_len.to_le_bytes());
            w.put(key);
            w.put(value);
        }
        Op::Del { key } => w.put(key),
        Op::Incr { key, delta } => {
            w.put(&delta.to_le_bytes());
            w.put(key);
        }
        Op::Cas { key, expected_version, value } => {
            w.put(&expected_version.to_le_bytes());
            w.put(&key_len.to_le_bytes());
            w.put(key);
            w.put(value);
        }
        Op::SetX { key, value, flags, ttl } => {
            w.put(&ttl_head(flags, ttl));
            w.put(&key_len.to_le_bytes());
            w.put(key);
            w.put(value);
        }
        Op::Expire { key, flags, ttl } => {
            w.put(&ttl_head(flags, ttl));
            w.put(key);
        }
        Op::Persist { key } => w.put(key),
        Op::ExpireDue => {}
        Op::Cad { key, expected_version } => {
            w.put(&expected_version.to_le_bytes());
            w.put(key);
        }
        Op::MSet { pairs } => {
            w.put(&pairs.count().to_le_bytes());
            w.put(pairs.bytes());
        }
    }
    Ok(w.done())
}

fn write_answer(out: &mut [u8], parts: &[&[u8]]) -> Result<usize, Status> {
    let needed = parts.iter().map(|p| p.len()).sum();
    let mut w = Writer::new(out, needed).map_err(|_| Status::ResponseTooLarge)?;
    for p in parts {
        w.put(p);
    }
    Ok(w.done())
}

/// Renders the result of a write into its answer body; `Err` is the error status (empty body),
/// `ResponseTooLarge` if `out` is too short.
pub fn render_result(result: &ApplyResult, out: &mut [u8]) -> Result<usize, Status> {
    render_result_with(result, None, out)
}

/// `render_result`, with the old value a SETX with GET returns (`None`: none, or not kept: a
/// retry answered from the client table).
pub fn render_result_with(result: &ApplyResult, old: Option<&[u8]>, out: &mut [u8]) -> Result<usize, Status> {
    match *result {
        ApplyResult::SetX { stored, version, existed } => {
            let bits = u8::from(stored) | u8::from(existed) << 1;
            write_answer(out, &[&[bits], &version.to_le_bytes(), old.unwrap_or(&[])])
        }
        ApplyResult::Changed { changed } => write_answer(out, &[&[u8::from(changed)]]),
        ApplyResult::Reclaimed { keys } => write_answer(out, &[&keys.to_le_bytes()]),
        ApplyResult::Stored { version } => write_answer(out, &[&version.to_le_bytes()]),
        ApplyResult::Deleted { existed } => write_answer(out, &[&[u8::from(existed)]]),
        ApplyResult::Incremented { value, version } => {
            write_answer(out, &[&value.to_le_bytes(), &version.to_le_bytes()])
        }
        other => Err(other.status()),
    }
}

/// Renders a GET's outcome: `Some((value, version))` → OK with `u64 version, value`; `None` →
/// `NOT_FOUND`.
pub fn render_get(found: Option<(&[u8], u64)>, out: &mut [u8]) -> Result<usize, Status> {
    match found {
        Some((value, version)) => write_answer(out, &[&version.to_le_bytes(), value]),
        None => Err(Status::NotFound),
    }
}

/// Whether `op` is a KV read (answered from the projection, no log write).
pub fn is_read(op: u8) -> bool {
    matches!(op, opcode::GET | opcode::TTL | opcode::KEYS_COUNT)
}

impl KvProjection {
    /// Answers a GET request body from the projection at its own time (tests, tools).
    pub fn answer_get(&self, body: &[u8], out: &mut [u8]) -> Result<usize, Status> {
        self.answer_read(opcode::GET, body, self.now_ms(), out)
    }

    /// Answers a read request (GET, TTL, KEYS_COUNT) at `now_ms` (the request's time, Unix ms;
    /// keys past their expiry then are absent) from the projection (no log, no allocation):
    /// `KEY_TOO_LARGE` for a key over the limit, `NOT_FOUND`, or OK with the answer body.
    pub fn answer_read(&self, op: u8, body: &[u8], now_ms: u64, out: &mut [u8]) -> Result<usize, Status> {
        if op == opcode::KEYS_COUNT {
            let keys = self.len() as u64;
            return write_answer(out, &[&keys.to_le_bytes(), &(self.expiring() as u64).to_le_bytes()]);
        }
        let key = parse_get(body);
        if key.len() > self.limits().key_bytes_max {
            return Err(Status::KeyTooLarge);
        }
        match op {
            opcode::GET => render_get(self.get_at(key, now_ms), out),
            opcode::TTL => match self.ttl_ms(key, now_ms) {
                Some(ms) => write_answer(out, &[&ms.to_le_bytes()]),
                None => Err(Status::NotFound),
            },
            _ => Err(Status::BadRequest),
        }
    }
}

/// A client's reading of a KV answer (for tools and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer<'a> {
    /// GET: the value and its version.
    Value {
        /// The value.
        value: &'a [u8],
        /// Its version.
        version: u64,
    },
    /// SET or CAS: the new version.
    Version(u64),
    /// DEL: whether the key existed.
    Deleted(bool),
    /// INCR: the new value and version.
    Incremented {
        /// The new value.
        value: i64,
        /// The new version.
        version: u64,
    },
    /// SETX: whether it stored, whether the key existed, its version now, its old value (GET).
    SetX {
        /// The value was stored.
        stored: bool,
        /// The key existed before.
        existed: bool,
        /// The key's version now (0: absent).
        version: u64,
        /// The old value (empty without GET or when absent).
        old: &'a [u8],
    },
    /// EXPIRE, PERSIST: whether the expiry changed.
    Changed(bool),
    /// TTL: remaining ms, -1 without expiry.
    Ttl(i64),
    /// KEYS_COUNT: keys and keys with an expiry.
    Count {
        /// Keys.
        keys: u64,
        /// Keys with an expiry.
        expiring: u64,
    },
}

/// Reads the OK answer body of `opcode`.
pub fn parse_answer(opcode: u8, body: &[u8]) -> Result<Answer<'_>, KvError> {
    let mut r = Reader::new(body);
    let answer = match opcode {
        opcode::GET => {
            let version = r.u64()?;
            Answer::Value { version, value: r.rest() }
        }
        opcode::SET | opcode::CAS => Answer::Version(r.u64()?),
        opcode::DEL => Answer::Deleted(r.u8()? != 0),
        opcode::INCR => {
            let value = r.i64()?;
            Answer::Incremented { value, version: r.u64()? }
        }
        opcode::SETX => {
            let bits = r.u8()?;
            let version = r.u64()?;
            Answer::SetX { stored: bits & 1 != 0, existed: bits & 2 != 0, version, old: r.rest() }
        }
        opcode::EXPIRE | opcode::PERSIST => Answer::Changed(r.u8()? != 0),
        opcode::TTL => Answer::Ttl(r.i64()?),
        opcode::KEYS_COUNT => {
            let keys = r.u64()?;
            Answer::Count { keys, expiring: r.u64()? }
        }
        other => return Err(KvError::NotAWrite(other)),
    };
    r.finish()?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::KvLimits;
    use crate::projection::v;
    use proptest::prelude::*;

    fn body(op: &Op<'_>) -> Vec<u8> {
        let mut out = vec![0u8; request_body_len(op)];
        assert_eq!(encode_write_body(op, &mut out), Ok(out.len()));
        out
    }

    #[test]
    fn request_bodies_round_trip_with_request_id_as_seq() {
        let ops = [
            Op::Set { key: b"key", value: b"value" },
            Op::Set { key: b"", value: b"" },
            Op::Del { key: b"key" },
            Op::Incr { key: b"n", delta: -3 },
            Op::Cas { key: b"c", expected_version: 42, value: b"v" },
        ];
        for op in ops {
            let b = body(&op);
            assert_eq!(parse_write(op.opcode(), 9, 77, &b), Ok(Command { client_id: 9, seq: 77, op }));
        }
    }

    #[test]
    fn request_layouts_are_as_documented() {
        assert_eq!(body(&Op::Set { key: b"ab", value: b"xy" }), b"\x02\x00abxy");
        assert_eq!(body(&Op::Del { key: b"ab" }), b"ab");
        assert_eq!(body(&Op::Incr { key: b"n", delta: 1 }), b"\x01\0\0\0\0\0\0\0n");
        assert_eq!(
            body(&Op::Cas { key: b"k", expected_version: 2, value: b"v" }),
            b"\x02\0\0\0\0\0\0\0\x01\x00kv"
        );
    }

    #[test]
    fn expiry_request_layouts_and_answers_are_as_documented() {
        use crate::kv::{expire_flags, set_flags};
        let setx = Op::SetX {
            key: b"k",
            value: b"v",
            flags: set_flags::NX | set_flags::GET,
            ttl: Ttl::RelativeMs(5),
        };
        assert_eq!(body(&setx), b"\x05\x02\x05\0\0\0\0\0\0\0\x01\x00kv");
        assert_eq!(parse_write(opcode::SETX, 1, 2, &body(&setx)).unwrap().op, setx);
        let expire = Op::Expire { key: b"k", flags: expire_flags::GT, ttl: Ttl::AbsoluteMs(7) };
        assert_eq!(body(&expire), b"\x04\x03\x07\0\0\0\0\0\0\0k");
        assert_eq!(parse_write(opcode::EXPIRE, 1, 2, &body(&expire)).unwrap().op, expire);
        assert_eq!(body(&Op::Persist { key: b"k" }), b"k");
        // Unknown flag bits, a kind EXPIRE cannot take, a Keep with milliseconds: refused.
        assert!(parse_write(opcode::SETX, 1, 1, b"\x08\x00\0\0\0\0\0\0\0\0\x00\x00").is_err());
        assert!(parse_write(opcode::EXPIRE, 1, 1, b"\x00\x01\0\0\0\0\0\0\0\0k").is_err());
        assert!(parse_write(opcode::SETX, 1, 1, b"\x00\x01\x01\0\0\0\0\0\0\0\x00\x00").is_err());
        assert!(parse_write(opcode::EXPIRE_DUE, 1, 1, b"").is_err(), "not a request");
        let mut out = [0u8; 32];
        let r = ApplyResult::SetX { stored: false, version: v(3), existed: true };
        let n = render_result_with(&r, Some(b"old"), &mut out).unwrap();
        assert_eq!(
            parse_answer(opcode::SETX, &out[..n]),
            Ok(Answer::SetX { stored: false, existed: true, version: v(3), old: b"old" })
        );
        let n = render_result(&ApplyResult::Changed { changed: true }, &mut out).unwrap();
        assert_eq!(parse_answer(opcode::EXPIRE, &out[..n]), Ok(Answer::Changed(true)));
        let mut kv = KvProjection::new(KvLimits::small());
        kv.apply(1, &Command { client_id: 0, seq: 0, op: Op::Set { key: b"a", value: b"1" } });
        let n = kv.answer_read(opcode::TTL, b"a", 0, &mut out).unwrap();
        assert_eq!(parse_answer(opcode::TTL, &out[..n]), Ok(Answer::Ttl(-1)));
        assert_eq!(kv.answer_read(opcode::TTL, b"b", 0, &mut out), Err(Status::NotFound));
        let n = kv.answer_read(opcode::KEYS_COUNT, &[0, 0], 0, &mut out).unwrap();
        assert_eq!(parse_answer(opcode::KEYS_COUNT, &out[..n]), Ok(Answer::Count { keys: 1, expiring: 0 }));
    }

    #[test]
    fn bad_request_bodies_are_errors() {
        assert!(matches!(parse_write(opcode::SET, 1, 1, b"\x05\x00ab"), Err(KvError::Truncated { .. })));
        assert!(matches!(parse_write(opcode::INCR, 1, 1, b"\x01"), Err(KvError::Truncated { .. })));
        assert!(matches!(parse_write(opcode::CAS, 1, 1, b""), Err(KvError::Truncated { .. })));
        assert_eq!(parse_write(opcode::GET, 1, 1, b""), Err(KvError::NotAWrite(opcode::GET)));
    }

    #[test]
    fn answers_render_in_place() {
        let mut out = [0u8; 32];
        let n = render_result(&ApplyResult::Stored { version: v(7) }, &mut out).unwrap();
        assert_eq!(parse_answer(opcode::SET, &out[..n]), Ok(Answer::Version(v(7))));
        let n = render_result(&ApplyResult::Deleted { existed: true }, &mut out).unwrap();
        assert_eq!(&out[..n], &[1]);
        let n = render_result(&ApplyResult::Incremented { value: -5, version: v(3) }, &mut out).unwrap();
        assert_eq!(
            parse_answer(opcode::INCR, &out[..n]),
            Ok(Answer::Incremented { value: -5, version: v(3) })
        );
        assert_eq!(
            render_result(&ApplyResult::CasMismatch { current_version: v(1) }, &mut out),
            Err(Status::CasMismatch)
        );
        assert_eq!(render_result(&ApplyResult::Stale { last_seq: 1 }, &mut out), Err(Status::Stale));
        assert_eq!(render_result(&ApplyResult::Full, &mut out), Err(Status::Full));
        assert_eq!(render_result(&ApplyResult::Malformed, &mut out), Err(Status::BadRequest));
        assert_eq!(
            render_result(&ApplyResult::Stored { version: v(7) }, &mut out[..7]),
            Err(Status::ResponseTooLarge)
        );
    }

    #[test]
    fn get_answers_from_the_projection() {
        let mut kv = KvProjection::new(KvLimits { key_bytes_max: 4, ..KvLimits::small() });
        let mut out = [0u8; 16];
        assert_eq!(kv.answer_get(b"k", &mut out), Err(Status::NotFound));
        assert_eq!(kv.answer_get(b"kkkkk", &mut out), Err(Status::KeyTooLarge));
        kv.apply(3, &Command { client_id: 0, seq: 0, op: Op::Set { key: b"k", value: b"hello" } });
        let n = kv.answer_get(b"k", &mut out).unwrap();
        assert_eq!(
            parse_answer(opcode::GET, &out[..n]),
            Ok(Answer::Value { value: b"hello", version: v(3) })
        );
        assert_eq!(kv.answer_get(b"k", &mut out[..12]), Err(Status::ResponseTooLarge));
    }

    proptest! {
        #[test]
        fn request_parsing_never_panics(
            op in 0x10u8..0x1b,
            body in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            if let Ok(c) = parse_write(op, 1, 2, &body) {
                prop_assert_eq!(c.op.opcode(), op);
                let mut out = vec![0u8; request_body_len(&c.op)];
                prop_assert_eq!(encode_write_body(&c.op, &mut out), Ok(body.len()));
                prop_assert_eq!(out, body.clone());
            }
            let _ = parse_answer(op, &body);
        }
    }
}
