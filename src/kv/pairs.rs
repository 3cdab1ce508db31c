//! MSET's key-value pairs: one write of several keys of one partition, as one command in the log
//! (so a Redis MSET of ten keys is one request, one log command and one answer per partition, not
//! ten).
//!
//! Layout (the request body of opcode MSET and the command's bytes after its header are the same):
//! `u16 count`, then `count` times `u16 key_len, key, u32 value_len, value`, little-endian.
//!
//! Invariants: a [`Pairs`] exists only over bytes that parse exactly (`count` pairs, at least
//! one, nothing after them), so iterating it never fails and never reads past its input;
//! re-encoding gives the same bytes. Keys may repeat (the last one wins, as in Redis).

use super::{KvError, Reader};

/// Bytes of the count before the pairs.
pub const PAIRS_HEAD_LEN: usize = 2;
/// Bytes of one pair's length fields.
pub const PAIR_OVERHEAD: usize = 6;

/// The validated pairs of an MSET, borrowing their bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pairs<'a> {
    count: u16,
    /// The pairs' bytes (after the count).
    bytes: &'a [u8],
}

impl<'a> Pairs<'a> {
    /// Reads `u16 count` and exactly `count` pairs from `r` (at least one), leaving `r` after them.
    pub(crate) fn read(r: &mut Reader<'a>) -> Result<Self, KvError> {
        let count = r.u16()?;
        if count == 0 {
            return Err(KvError::BadField("MSET needs at least one pair"));
        }
        let start = r.consumed();
        for _ in 0..count {
            r.bytes_u16()?;
            r.bytes_u32()?;
        }
        Ok(Self { count, bytes: r.consumed_since(start) })
    }

    /// Parses a whole buffer of pairs (`u16 count` first): nothing may follow them.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, KvError> {
        let mut r = Reader::new(bytes);
        let pairs = Self::read(&mut r)?;
        r.finish()?;
        Ok(pairs)
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Never true: a `Pairs` holds at least one pair.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The count as logged.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// The pairs' bytes after the count.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Bytes of the whole encoding, count included.
    pub fn encoded_len(&self) -> usize {
        PAIRS_HEAD_LEN + self.bytes.len()
    }

    /// The first key (what routes the command to its partition).
    pub fn first_key(&self) -> &'a [u8] {
        self.iter().next().map_or(&[], |(k, _)| k)
    }

    /// The pairs in order.
    pub fn iter(&self) -> PairIter<'a> {
        PairIter { r: Reader::new(self.bytes), left: self.count }
    }
}

/// Iterator over validated pairs.
#[derive(Debug)]
pub struct PairIter<'a> {
    r: Reader<'a>,
    left: u16,
}

impl<'a> Iterator for PairIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Validated when the `Pairs` was made: these reads cannot fail.
        let key = self.r.bytes_u16().ok()?;
        let value = self.r.bytes_u32().ok()?;
        Some((key, value))
    }
}

/// Appends MSET pairs to `out` one at a time (a request body or a test's command), then fixes the
/// count in front.
#[derive(Debug)]
pub struct PairsWriter {
    start: usize,
    count: u16,
}

impl PairsWriter {
    /// Starts the pairs at the end of `out` (writes the count's place).
    pub fn begin(out: &mut Vec<u8>) -> Self {
        let start = out.len();
        out.extend_from_slice(&[0, 0]);
        Self { start, count: 0 }
    }

    /// Appends one pair; false (nothing appended) when the count, the key or the value would not
    /// fit its length field.
    pub fn push(&mut self, out: &mut Vec<u8>, key: &[u8], value: &[u8]) -> bool {
        let (Ok(klen), Ok(vlen)) = (u16::try_from(key.len()), u32::try_from(value.len())) else {
            return false;
        };
        if self.count == u16::MAX {
            return false;
        }
        out.extend_from_slice(&klen.to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&vlen.to_le_bytes());
        out.extend_from_slice(value);
        self.count += 1;
        out[self.start..self.start + 2].copy_from_slice(&self.count.to_le_bytes());
        true
    }

    /// Pairs appended so far.
    pub fn count(&self) -> u16 {
        self.count
    }
}

/// Bytes one pair adds to an MSET body.
pub fn pair_len(key: &[u8], value: &[u8]) -> usize {
    PAIR_OVERHEAD + key.len() + value.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = PairsWriter::begin(&mut out);
        for (k, v) in pairs {
            assert!(w.push(&mut out, k, v));
        }
        out
    }

    #[test]
    fn pairs_round_trip_in_order_with_repeats() {
        let input: [(&[u8], &[u8]); 3] = [(b"a", b"1"), (b"", b""), (b"a", b"22")];
        let bytes = encode(&input);
        assert_eq!(&bytes[..2], &3u16.to_le_bytes());
        let pairs = Pairs::parse(&bytes).expect("parses");
        assert_eq!(pairs.len(), 3);
        assert_eq!(pairs.first_key(), b"a");
        assert_eq!(pairs.encoded_len(), bytes.len());
        assert!(pairs.iter().eq(input.iter().copied()));
    }

    #[test]
    fn bad_pairs_are_refused() {
        assert!(Pairs::parse(&[0, 0]).is_err(), "no pair");
        assert!(Pairs::parse(&[]).is_err());
        let bytes = encode(&[(b"k", b"v")]);
        assert!(Pairs::parse(&bytes[..bytes.len() - 1]).is_err(), "truncated");
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Pairs::parse(&longer), Err(KvError::TrailingBytes(1)));
        let mut more = bytes;
        more[0] = 2;
        assert!(Pairs::parse(&more).is_err(), "count over the pairs");
    }

    proptest! {
        #[test]
        fn parsing_garbage_never_panics_and_what_parses_re_encodes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = Pairs::parse(&bytes) {
                let items: Vec<_> = p.iter().collect();
                prop_assert_eq!(items.len(), p.len());
                prop_assert_eq!(encode(&items), bytes);
            }
        }
    }
}

/// MSET in the KV projection: all or nothing, the last of a repeated key wins, expiries dropped.
#[cfg(test)]
mod apply_tests {
    use super::*;
    use crate::kv::{ApplyResult, Command, KvLimits, KvProjection, Op, Ttl};

    fn pairs_body(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = PairsWriter::begin(&mut out);
        pairs.iter().for_each(|(k, v)| assert!(w.push(&mut out, k, v)));
        out
    }

    fn mset(kv: &mut KvProjection, lsn: u64, pairs: &[(&[u8], &[u8])]) -> ApplyResult {
        let body = pairs_body(pairs);
        let op = Op::MSet { pairs: Pairs::parse(&body).expect("valid") };
        kv.apply_at(lsn, 1000, &Command { client_id: 0, seq: 0, op })
    }

    #[test]
    fn every_pair_is_stored_at_one_version_and_the_last_repeat_wins() {
        let mut kv = KvProjection::new(KvLimits::small());
        let ttl = Op::SetX { key: b"a", value: b"old", flags: 0, ttl: Ttl::RelativeMs(60_000) };
        kv.apply_at(1, 1000, &Command { client_id: 0, seq: 0, op: ttl });
        let r = mset(&mut kv, 2, &[(b"a", b"1"), (b"b", b"2"), (b"a", b"3")]);
        assert_eq!(r, ApplyResult::Stored { version: 2 << 16 });
        assert_eq!(kv.get(b"a"), Some((&b"3"[..], 2 << 16)));
        assert_eq!(kv.get(b"b"), Some((&b"2"[..], 2 << 16)));
        assert_eq!(kv.ttl_ms(b"a", 1000), Some(-1), "MSET drops the expiry, as SET does");
        assert_eq!(kv.data_bytes(), 4);
    }

    #[test]
    fn a_pair_over_a_limit_or_no_room_for_all_stores_none() {
        let limits = KvLimits { keys_max: 3, ..KvLimits::small() };
        let mut kv = KvProjection::new(limits);
        mset(&mut kv, 1, &[(b"a", b"1"), (b"b", b"2")]);
        let before: Vec<_> = kv.iter().map(|(k, v, ver)| (k.to_vec(), v.to_vec(), ver)).collect();
        assert_eq!(mset(&mut kv, 2, &[(b"c", b"3"), (b"d", b"4")]), ApplyResult::Full);
        let long = vec![b'x'; limits.value_bytes_max + 1];
        assert_eq!(mset(&mut kv, 3, &[(b"a", b"9"), (b"e", &long)]), ApplyResult::ValueTooLarge);
        let after: Vec<_> = kv.iter().map(|(k, v, ver)| (k.to_vec(), v.to_vec(), ver)).collect();
        assert_eq!(before, after, "nothing of a refused MSET is stored");
        assert_eq!(mset(&mut kv, 4, &[(b"a", b"8"), (b"c", b"3")]), ApplyResult::Stored { version: 4 << 16 });
    }
}
