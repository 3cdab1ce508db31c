//! The log-entry encoding of KV writes: what a committed entry's payload holds.
//!
//! Layout (little-endian, no padding):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 1 | kind: the opcode number, 0x11 SET, 0x12 DEL, 0x13 INCR, 0x14 CAS, 0x15 SETX, 0x16 EXPIRE, 0x17 PERSIST, 0x18 EXPIRE_DUE, 0x1b MSET, 0x1c CAD |
//! | 1 | 8 | `client_id` (0: anonymous, no exactly-once) |
//! | 9 | 8 | `seq`: the client's sequence number (the request's wire `request_id`) |
//! | 17 | .. | SET: u16 key_len, key, u32 value_len, value |
//! |    |    | DEL: u16 key_len, key |
//! |    |    | INCR: i64 delta, u16 key_len, key |
//! |    |    | CAS: u64 expected_version, u16 key_len, key, u32 value_len, value |
//! |    |    | SETX: u8 flags (bit 0 NX, bit 1 XX, bit 2 GET), u8 ttl kind (0 clear, 1 keep, 2 relative ms, 3 absolute Unix ms), i64 ttl ms, u16 key_len, key, u32 value_len, value |
//! |    |    | EXPIRE: u8 flags (bit 0 NX, bit 1 XX, bit 2 GT, bit 3 LT), u8 kind (2 relative ms, 3 absolute Unix ms), i64 ms, u16 key_len, key |
//! |    |    | PERSIST: u16 key_len, key |
//! |    |    | EXPIRE_DUE: nothing (the leader's reclaim of keys past their expiry, client 0) |
//! |    |    | CAD: u64 expected_version, u16 key_len, key |
//! |    |    | MSET: u16 count (at least 1), then count x (u16 key_len, key, u32 value_len, value) (`super::pairs`) |
//!
//! Invariants: `decode` never panics and never reads past its input, whatever the bytes; it
//! accepts exactly what `encode` writes (no trailing bytes, no unknown kind), so
//! `decode(encode(c)) == c` and every accepted input re-encodes to the same bytes. Limits
//! (key and value sizes) are not checked here but by `apply`, so that the encoding does not depend
//! on configuration. Decoding borrows keys and values from the input: it allocates nothing.
//!
//! Digest: [`Command::digest`] is XXH3-64 (seed 0) of exactly these bytes, computed by streaming
//! the fields (no buffer, no allocation). It is what the client table keeps to tell a retry of a
//! write from another command under the same sequence number, so it must be the same on every
//! replica and every version: it never changes for a given encoding.

use super::pairs::Pairs;
use super::{KvError, Reader, Writer};
use crate::wire::opcode;
use xxhash_rust::xxh3::Xxh3;

/// The client id of anonymous clients: their writes are applied at least once (no dedup).
pub const ANONYMOUS_CLIENT: u64 = 0;

/// Fixed prefix of every command: kind, client id, seq.
pub const COMMAND_HEADER_LEN: usize = 17;

/// SET's condition and GET flags (`Op::SetX`), as logged.
pub mod set_flags {
    /// NX: only if the key does not exist.
    pub const NX: u8 = 1;
    /// XX: only if the key exists.
    pub const XX: u8 = 2;
    /// GET: answer the old value.
    pub const GET: u8 = 4;
    /// Every flag.
    pub const ALL: u8 = NX | XX | GET;
}

/// EXPIRE's conditions (`Op::Expire`), as logged.
pub mod expire_flags {
    /// NX: only if the key has no expiry.
    pub const NX: u8 = 1;
    /// XX: only if the key has an expiry.
    pub const XX: u8 = 2;
    /// GT: only if the new expiry is later (no expiry counts as infinite).
    pub const GT: u8 = 4;
    /// LT: only if the new expiry is earlier.
    pub const LT: u8 = 8;
    /// Every flag.
    pub const ALL: u8 = NX | XX | GT | LT;
}

/// What a write does to a key's expiry. Relative times are resolved when the entry is applied,
/// from the leader's timestamp of the entry (`Applied::time_ns`): the same on every replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// No expiry (an old one is dropped).
    Clear,
    /// The key keeps the expiry it has (KEEPTTL).
    Keep,
    /// This many milliseconds after the entry's time.
    RelativeMs(i64),
    /// At this Unix time in milliseconds.
    AbsoluteMs(i64),
}

impl Ttl {
    fn kind(self) -> u8 {
        match self {
            Ttl::Clear => 0,
            Ttl::Keep => 1,
            Ttl::RelativeMs(_) => 2,
            Ttl::AbsoluteMs(_) => 3,
        }
    }

    fn ms(self) -> i64 {
        match self {
            Ttl::Clear | Ttl::Keep => 0,
            Ttl::RelativeMs(ms) | Ttl::AbsoluteMs(ms) => ms,
        }
    }

    /// Reads a kind and its milliseconds (the kinds `kind` writes); `None` for another kind or
    /// for milliseconds given with Clear or Keep.
    pub(crate) fn from_parts(kind: u8, ms: i64) -> Option<Self> {
        match (kind, ms) {
            (0, 0) => Some(Ttl::Clear),
            (1, 0) => Some(Ttl::Keep),
            (2, ms) => Some(Ttl::RelativeMs(ms)),
            (3, ms) => Some(Ttl::AbsoluteMs(ms)),
            _ => None,
        }
    }

    /// The deadline in Unix ms for an entry applied at `now_ms`: `Some(None)` no expiry, `None`
    /// for Keep (the caller keeps the old one); saturates rather than overflows.
    pub fn deadline_ms(self, now_ms: u64) -> Option<Option<i64>> {
        match self {
            Ttl::Clear => Some(None),
            Ttl::Keep => None,
            Ttl::RelativeMs(ms) => Some(Some((now_ms as i64).saturating_add(ms))),
            Ttl::AbsoluteMs(ms) => Some(Some(ms)),
        }
    }
}

/// A KV write, borrowing its key and value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op<'a> {
    /// Store `value` under `key`.
    Set {
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
    },
    /// Remove `key`.
    Del {
        /// The key.
        key: &'a [u8],
    },
    /// Add `delta` to the decimal integer stored under `key` (a missing key counts as 0).
    Incr {
        /// The key.
        key: &'a [u8],
        /// What to add.
        delta: i64,
    },
    /// Store `value` under `key` if the key's version is `expected_version` (0: the key is absent).
    Cas {
        /// The key.
        key: &'a [u8],
        /// The version the key must have.
        expected_version: u64,
        /// The new value.
        value: &'a [u8],
    },
    /// SET with options: a condition (NX/XX), answering the old value (GET) and an expiry.
    SetX {
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
        /// `set_flags`.
        flags: u8,
        /// The expiry the key gets.
        ttl: Ttl,
    },
    /// Sets a key's expiry (a deadline at or before the entry's time deletes the key), if the
    /// conditions (`expire_flags`) hold.
    Expire {
        /// The key.
        key: &'a [u8],
        /// `expire_flags`.
        flags: u8,
        /// The expiry: `Ttl::RelativeMs` or `Ttl::AbsoluteMs`.
        ttl: Ttl,
    },
    /// Drops a key's expiry.
    Persist {
        /// The key.
        key: &'a [u8],
    },
    /// Deletes keys whose expiry has passed at the entry's time (a bounded number): proposed by
    /// the leader when keys are due and no write comes, so their memory is returned.
    ExpireDue,
    /// Delete `key` if its version is `expected_version` (compare and delete).
    Cad {
        /// The key.
        key: &'a [u8],
        /// The version the key must have.
        expected_version: u64,
    },
    /// Store each value under its key, all or none (keys of one partition; the last of a
    /// repeated key wins), dropping their expiries.
    MSet {
        /// The pairs.
        pairs: Pairs<'a>,
    },
}

impl<'a> Op<'a> {
    /// The wire opcode of this operation (also its kind byte in the log).
    pub fn opcode(&self) -> u8 {
        match self {
            Op::Set { .. } => opcode::SET,
            Op::Del { .. } => opcode::DEL,
            Op::Incr { .. } => opcode::INCR,
            Op::Cas { .. } => opcode::CAS,
            Op::SetX { .. } => opcode::SETX,
            Op::Expire { .. } => opcode::EXPIRE,
            Op::Persist { .. } => opcode::PERSIST,
            Op::ExpireDue => opcode::EXPIRE_DUE,
            Op::MSet { .. } => opcode::MSET,
            Op::Cad { .. } => opcode::CAD,
        }
    }

    /// The key it writes (MSET: its first, which routes it).
    pub fn key(&self) -> &'a [u8] {
        match *self {
            Op::Set { key, .. }
            | Op::Del { key }
            | Op::Incr { key, .. }
            | Op::Cas { key, .. }
            | Op::SetX { key, .. }
            | Op::Expire { key, .. }
            | Op::Persist { key }
            | Op::Cad { key, .. } => key,
            Op::ExpireDue => b"",
            Op::MSet { pairs } => pairs.first_key(),
        }
    }

    /// The value it stores, if any.
    pub fn value(&self) -> Option<&'a [u8]> {
        match *self {
            Op::Set { value, .. } | Op::Cas { value, .. } | Op::SetX { value, .. } => Some(value),
            Op::Del { .. }
            | Op::Incr { .. }
            | Op::Expire { .. }
            | Op::Persist { .. }
            | Op::ExpireDue
            | Op::Cad { .. }
            | Op::MSet { .. } => None,
        }
    }
}

/// One KV write as it is logged: the operation and who asked for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command<'a> {
    /// The client (datagram header's `client_id`); [`ANONYMOUS_CLIENT`] opts out of dedup.
    pub client_id: u64,
    /// The client's sequence number for this write; increasing per client.
    pub seq: u64,
    /// The operation.
    pub op: Op<'a>,
}

fn key_len_u16(key: &[u8]) -> Result<u16, KvError> {
    u16::try_from(key.len()).map_err(|_| KvError::KeyTooLong(key.len()))
}

fn value_len_u32(value: &[u8]) -> Result<u32, KvError> {
    u32::try_from(value.len()).map_err(|_| KvError::ValueTooLong(value.len()))
}

impl<'a> Command<'a> {
    /// Bytes `encode` writes.
    pub fn encoded_len(&self) -> usize {
        COMMAND_HEADER_LEN
            + match self.op {
                Op::Set { key, value } => 2 + key.len() + 4 + value.len(),
                Op::Del { key } => 2 + key.len(),
                Op::Incr { key, .. } => 8 + 2 + key.len(),
                Op::Cas { key, value, .. } => 8 + 2 + key.len() + 4 + value.len(),
                Op::SetX { key, value, .. } => 10 + 2 + key.len() + 4 + value.len(),
                Op::Expire { key, .. } => 10 + 2 + key.len(),
                Op::Persist { key } => 2 + key.len(),
                Op::ExpireDue => 0,
                Op::MSet { pairs } => pairs.encoded_len(),
                Op::Cad { key, .. } => 8 + 2 + key.len(),
            }
    }

    /// Writes the command into `out`; returns the bytes written. Fails (writing nothing) if a key
    /// or value is too long for its length field or `out` is too short.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, KvError> {
        let key_len = key_len_u16(self.op.key())?;
        let value_len = self.op.value().map(value_len_u32).transpose()?;
        let mut w = Writer::new(out, self.encoded_len())?;
        self.emit(key_len, value_len, &mut |b| w.put(b));
        Ok(w.done())
    }

    /// XXH3-64 of the command's encoding (see the module doc). A key or value too long for its
    /// length field (a command that cannot be encoded, so never logged) hashes its length field
    /// saturated.
    pub fn digest(&self) -> u64 {
        let key_len = key_len_u16(self.op.key()).unwrap_or(u16::MAX);
        let value_len = self.op.value().map(|v| value_len_u32(v).unwrap_or(u32::MAX));
        let mut h = Xxh3::new();
        self.emit(key_len, value_len, &mut |b| h.update(b));
        h.digest()
    }

    /// Hands the encoding's fields, in order, to `put`: the one definition of the layout that
    /// both `encode` and `digest` use.
    fn emit(&self, key_len: u16, value_len: Option<u32>, put: &mut dyn FnMut(&[u8])) {
        put(&[self.op.opcode()]);
        put(&self.client_id.to_le_bytes());
        put(&self.seq.to_le_bytes());
        match self.op {
            Op::Set { .. } | Op::Del { .. } | Op::Persist { .. } => {}
            Op::Incr { delta, .. } => put(&delta.to_le_bytes()),
            Op::Cas { expected_version, .. } | Op::Cad { expected_version, .. } => {
                put(&expected_version.to_le_bytes())
            }
            Op::SetX { flags, ttl, .. } | Op::Expire { flags, ttl, .. } => {
                put(&[flags, ttl.kind()]);
                put(&ttl.ms().to_le_bytes());
            }
            Op::ExpireDue => return,
            Op::MSet { pairs } => {
                put(&pairs.count().to_le_bytes());
                put(pairs.bytes());
                return;
            }
        }
        put(&key_len.to_le_bytes());
        put(self.op.key());
        if let (Some(value), Some(value_len)) = (self.op.value(), value_len) {
            put(&value_len.to_le_bytes());
            put(value);
        }
    }

    /// Reads a command from a log entry's payload, borrowing its key and value.
    pub fn decode(bytes: &'a [u8]) -> Result<Command<'a>, KvError> {
        let mut r = Reader::new(bytes);
        let kind = r.u8()?;
        let client_id = r.u64()?;
        let seq = r.u64()?;
        let op = match kind {
            opcode::SET => {
                let key = r.bytes_u16()?;
                Op::Set { key, value: r.bytes_u32()? }
            }
            opcode::DEL => Op::Del { key: r.bytes_u16()? },
            opcode::INCR => {
                let delta = r.i64()?;
                Op::Incr { key: r.bytes_u16()?, delta }
            }
            opcode::CAS => {
                let expected_version = r.u64()?;
                let key = r.bytes_u16()?;
                Op::Cas { key, expected_version, value: r.bytes_u32()? }
            }
            opcode::SETX => {
                let (flags, ttl) = read_ttl(&mut r, set_flags::ALL)?;
                let key = r.bytes_u16()?;
                Op::SetX { key, value: r.bytes_u32()?, flags, ttl }
            }
            opcode::EXPIRE => {
                let (flags, ttl) = read_ttl(&mut r, expire_flags::ALL)?;
                if !matches!(ttl, Ttl::RelativeMs(_) | Ttl::AbsoluteMs(_)) {
                    return Err(KvError::BadField("EXPIRE needs a relative or absolute time"));
                }
                Op::Expire { key: r.bytes_u16()?, flags, ttl }
            }
            opcode::PERSIST => Op::Persist { key: r.bytes_u16()? },
            opcode::EXPIRE_DUE => Op::ExpireDue,
            opcode::MSET => Op::MSet { pairs: Pairs::read(&mut r)? },
            opcode::CAD => {
                let expected_version = r.u64()?;
                Op::Cad { key: r.bytes_u16()?, expected_version }
            }
            other => return Err(KvError::UnknownKind(other)),
        };
        r.finish()?;
        Ok(Command { client_id, seq, op })
    }
}

/// Reads `u8 flags, u8 ttl kind, i64 ms`; flags outside `allowed` or an unknown kind are refused
/// (so every accepted input re-encodes to the same bytes).
pub(crate) fn read_ttl(r: &mut Reader<'_>, allowed: u8) -> Result<(u8, Ttl), KvError> {
    let flags = r.u8()?;
    if flags & !allowed != 0 {
        return Err(KvError::BadField("unknown flag bits"));
    }
    let kind = r.u8()?;
    let ms = r.i64()?;
    let ttl = Ttl::from_parts(kind, ms).ok_or(KvError::BadField("unknown expiry kind"))?;
    Ok((flags, ttl))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(c: Command<'_>) {
        let mut buf = vec![0u8; c.encoded_len()];
        assert_eq!(c.encode(&mut buf), Ok(c.encoded_len()));
        assert_eq!(Command::decode(&buf), Ok(c));
        // One byte short: refused, nothing decoded.
        assert!(c.encode(&mut buf[..c.encoded_len() - 1]).is_err());
        assert!(Command::decode(&buf[..buf.len() - 1]).is_err());
        let mut longer = buf.clone();
        longer.push(0);
        assert_eq!(Command::decode(&longer), Err(KvError::TrailingBytes(1)));
    }

    #[test]
    fn every_kind_round_trips() {
        round_trip(Command { client_id: 7, seq: 1, op: Op::Set { key: b"k", value: b"v" } });
        round_trip(Command { client_id: 0, seq: 0, op: Op::Set { key: b"", value: b"" } });
        round_trip(Command { client_id: u64::MAX, seq: 9, op: Op::Del { key: b"key" } });
        round_trip(Command { client_id: 1, seq: 2, op: Op::Incr { key: b"n", delta: i64::MIN } });
        round_trip(Command {
            client_id: 3,
            seq: 4,
            op: Op::Cas { key: b"c", expected_version: 99, value: b"new" },
        });
        for ttl in [Ttl::Clear, Ttl::Keep, Ttl::RelativeMs(-5), Ttl::AbsoluteMs(i64::MAX)] {
            round_trip(Command {
                client_id: 3,
                seq: 5,
                op: Op::SetX { key: b"k", value: b"v", flags: set_flags::NX | set_flags::GET, ttl },
            });
        }
        round_trip(Command {
            client_id: 0,
            seq: 0,
            op: Op::Expire { key: b"k", flags: expire_flags::XX | expire_flags::GT, ttl: Ttl::RelativeMs(1) },
        });
        round_trip(Command { client_id: 0, seq: 0, op: Op::Persist { key: b"k" } });
        round_trip(Command { client_id: 0, seq: 0, op: Op::ExpireDue });
        round_trip(Command { client_id: 1, seq: 2, op: Op::Cad { key: b"k", expected_version: 7 } });
        let mut body = Vec::new();
        let mut w = crate::kv::PairsWriter::begin(&mut body);
        w.push(&mut body, b"a", b"1");
        w.push(&mut body, b"bc", b"");
        round_trip(Command { client_id: 5, seq: 6, op: Op::MSet { pairs: Pairs::parse(&body).unwrap() } });
    }

    #[test]
    fn digest_is_xxh3_of_the_encoding_and_tells_commands_apart() {
        let c = Command { client_id: 0x0102, seq: 5, op: Op::Set { key: b"ab", value: b"xyz" } };
        let mut buf = [0u8; 64];
        let n = c.encode(&mut buf).unwrap();
        assert_eq!(c.digest(), xxhash_rust::xxh3::xxh3_64(&buf[..n]));
        // Pinned: the digest is kept in snapshots and must never change for a given command.
        assert_eq!(c.digest(), 0x2eac_8b8e_3def_5b6a);
        let other = Command { op: Op::Set { key: b"ab", value: b"xyw" }, ..c };
        assert_ne!(c.digest(), other.digest());
        let del = Command { op: Op::Del { key: b"ab" }, ..c };
        assert_ne!(c.digest(), del.digest());
    }

    #[test]
    fn layout_is_as_documented() {
        let c = Command { client_id: 0x0102, seq: 5, op: Op::Set { key: b"ab", value: b"xyz" } };
        let mut buf = [0u8; 64];
        let n = c.encode(&mut buf).unwrap();
        let expected: &[u8] = &[
            0x11, 0x02, 0x01, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 2, 0, b'a', b'b', 3, 0, 0, 0, b'x',
            b'y', b'z',
        ];
        assert_eq!(&buf[..n], expected);
    }

    #[test]
    fn oversized_fields_and_unknown_kinds_are_refused() {
        let key = vec![0u8; 65536];
        let c = Command { client_id: 1, seq: 1, op: Op::Del { key: &key } };
        assert_eq!(c.encode(&mut vec![0u8; 70000]), Err(KvError::KeyTooLong(65536)));
        let mut buf = [0u8; 32];
        let n = Command { client_id: 1, seq: 1, op: Op::Del { key: b"k" } }.encode(&mut buf).unwrap();
        buf[0] = 0x10; // GET is not a write.
        assert_eq!(Command::decode(&buf[..n]), Err(KvError::UnknownKind(0x10)));
        assert!(matches!(Command::decode(&[]), Err(KvError::Truncated { .. })));
    }

    fn arb_op() -> impl Strategy<Value = (u8, Vec<u8>, Vec<u8>, i64, u64)> {
        (
            0u8..8,
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(any::<u8>(), 0..200),
            any::<i64>(),
            any::<u64>(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn decode_of_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(c) = Command::decode(&bytes) {
                // Whatever decodes re-encodes to the same bytes.
                let mut out = vec![0u8; c.encoded_len()];
                prop_assert_eq!(c.encode(&mut out), Ok(bytes.len()));
                prop_assert_eq!(out, bytes);
            }
        }

        #[test]
        fn decode_of_mutated_commands_never_panics(
            (kind, key, value, delta, version) in arb_op(),
            client_id in any::<u64>(),
            seq in any::<u64>(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let op = match kind {
                0 => Op::Set { key: &key, value: &value },
                1 => Op::Del { key: &key },
                2 => Op::Incr { key: &key, delta },
                3 => Op::Cas { key: &key, expected_version: version, value: &value },
                4 => Op::SetX { key: &key, value: &value, flags: (version as u8) & set_flags::ALL, ttl: Ttl::RelativeMs(delta) },
                5 => Op::Expire { key: &key, flags: (version as u8) & expire_flags::ALL, ttl: Ttl::AbsoluteMs(delta) },
                6 => Op::Persist { key: &key },
                _ => Op::ExpireDue,
            };
            let c = Command { client_id, seq, op };
            let mut buf = vec![0u8; c.encoded_len()];
            c.encode(&mut buf).unwrap();
            prop_assert_eq!(Command::decode(&buf), Ok(c));
            for (i, b) in flips {
                let i = i.index(buf.len());
                buf[i] ^= b;
            }
            let _ = Command::decode(&buf);
            let _ = Command::decode(&buf[..cut.index(buf.len() + 1)]);
        }
    }
}
