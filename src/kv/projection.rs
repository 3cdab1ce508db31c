//! The KV state machine: applies committed commands in log order, serves reads.
//!
//! State: the applied lsn, the key map ([`super::map::KeyMap`]: key to value and version, one heap
//! block per key, indexed by a hash table with the standard library's keyed SipHash, so no hash
//! flooding), and the byte count of keys plus values. A hash table does one hash and about one key
//! comparison per lookup, where a B-tree did a pointer chase and a `memcmp` per level. Nothing
//! depends on the hash table's order: `iter` sorts the keys, and snapshots are in the map's slot
//! order, a function of the writes applied (`super::map`), so they stay deterministic; lookups by
//! `&[u8]` allocate nothing.
//!
//! Semantics of `apply_op(pos, op)` (the router calls it in log order, for commands that passed
//! exactly-once, `crate::projection::router`):
//! - the operation runs; every outcome, errors included, is a result (never a panic), and a write
//!   sets the key's version to `pos.version()`;
//! - error results (`KeyTooLarge`, `ValueTooLarge`, `QuotaExceeded`, `Full`, `NotInteger`,
//!   `Overflow`, `CasMismatch`) leave the map unchanged.
//!
//! Quotas (`projection::owner`, `quota.rs`): each key belongs to the principal that wrote it last;
//! a write that would take its writer past the quota stamped in its entry is `QuotaExceeded`.
//!
//! Allocation: reads and the dedup check allocate nothing. A write of a new key copies the key and
//! the value into one owned heap block (unavoidable: the entry outlives the log buffer) and may grow
//! the map (its capacity doubles, amortized). Overwriting a key with a value of the same length
//! copies it in place, so steady-state overwrites of same-size values allocate nothing; a value of
//! another length takes a new block of exactly its size. DEL frees the key's block.

use super::command::{Command, Op};
use super::expiry::{ExpiryIndex, RECLAIM_PER_COMMAND, RECLAIM_PER_TICK};
use super::map::{key_of, owner_of, value_of, KeyMap};
use super::pairs::Pairs;
use super::KvLimits;
pub use crate::projection::ApplyResult;
#[cfg(test)]
use crate::projection::LogPos;
use crate::projection::{
    Applied, Projection, SectionCapture, SectionReader, SnapshotChunk, SnapshotError, TAG_KV,
};
use crate::projection::{Owner, Usage, UsageTable};
use crate::wire::Status;
use std::any::Any;

/// The KV projection of one partition.
#[derive(Clone, Debug)]
pub struct KvProjection {
    pub(crate) limits: KvLimits,
    pub(crate) map: KeyMap,
    pub(crate) data_bytes: usize,
    /// The keys that have an expiry (`expiry`).
    pub(crate) expiries: ExpiryIndex,
    /// The latest entry timestamp applied, Unix ms (`expiry`).
    pub(crate) now_ms: u64,
    /// Old blocks SETX with GET answers with, by the write's version; for the entry being applied.
    pub(crate) returned: Vec<(u64, std::sync::Arc<[u8]>)>,
    /// While someone watches changes (`record_expired`): the keys expiry deleted in the entry
    /// being applied, with the index of the command whose apply deleted them (`take_expired`).
    pub(crate) expired: Option<Vec<(u16, Box<[u8]>)>>,
    /// The index in its entry of the command being applied.
    pub(crate) applying: u16,
    /// Who wrote the command being applied, and its quota (`Applied::owner`).
    pub(crate) writing: Owner,
    /// What that writer holds in the partition's other projections (`Applied::others`).
    pub(crate) writer_elsewhere: Usage,
    /// Keys and bytes held per owner key id (anonymous included).
    pub(crate) usage: UsageTable,
}

/// Longest decimal i64: "-9223372036854775808".
const I64_DECIMAL_MAX: usize = 20;

/// Parses a decimal i64: an optional '-', then 1 to 19 ASCII digits (leading zeros allowed), and
/// nothing else (no '+', no spaces). `None` if it is not one or does not fit.
pub fn parse_i64(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        n = n.checked_mul(10)?;
        n = if negative { n.checked_sub(d)? } else { n.checked_add(d)? };
    }
    Some(n)
}

/// Writes `n` in decimal into `buf`; returns the length.
pub fn format_i64(n: i64, buf: &mut [u8; I64_DECIMAL_MAX]) -> usize {
    let mut tmp = [0u8; I64_DECIMAL_MAX];
    let mut i = tmp.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        tmp[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        tmp[i] = b'-';
    }
    let len = tmp.len() - i;
    buf[..len].copy_from_slice(&tmp[i..]);
    len
}

impl KvProjection {
    /// An empty projection; panics if the limits are invalid (validate them with
    /// [`KvLimits::validate`] when reading configuration).
    pub fn new(limits: KvLimits) -> Self {
        if let Err(e) = limits.validate() {
            panic!("{e}");
        }
        Self::from_parts(limits, KeyMap::default(), 0)
    }

    /// A projection over a loaded map (its expiry index and owners' usage rebuilt from its
    /// blocks).
    pub(crate) fn from_parts(limits: KvLimits, map: KeyMap, data_bytes: usize) -> Self {
        let expiries = super::expiry::index_of(&map);
        let mut usage = UsageTable::default();
        for block in map.iter_blocks() {
            let bytes = (key_of(block).len() + value_of(block).len()) as u64;
            usage.add(owner_of(block), Usage { keys: 1, bytes });
        }
        Self {
            limits,
            map,
            data_bytes,
            expiries,
            now_ms: 0,
            returned: Vec::new(),
            expired: None,
            applying: 0,
            writing: Owner::ANONYMOUS,
            writer_elsewhere: Usage::default(),
            usage,
        }
    }

    /// The limits it runs with.
    pub fn limits(&self) -> &KvLimits {
        &self.limits
    }

    /// Keys stored.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Bytes of keys plus values stored.
    pub fn data_bytes(&self) -> usize {
        self.data_bytes
    }

    /// A key's value and version if it is visible at the projection's time (the last entry's);
    /// allocates nothing.
    pub fn get(&self, key: &[u8]) -> Option<(&[u8], u64)> {
        self.get_at(key, self.now_ms)
    }

    /// Every key with its value and version, in key order (sorts: tests, tools).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8], u64)> + '_ {
        self.map.iter_sorted()
    }

    /// The result a write would get from the size limits alone, if it fails them: handlers may
    /// answer such writes at once instead of logging them (`apply` would give the same result).
    pub fn check_sizes(limits: &KvLimits, op: &Op<'_>) -> Option<ApplyResult> {
        if let Op::MSet { pairs } = op {
            return pairs.iter().find_map(|(key, value)| Self::check_pair(limits, key, Some(value)));
        }
        Self::check_pair(limits, op.key(), op.value())
    }

    fn check_pair(limits: &KvLimits, key: &[u8], value: Option<&[u8]>) -> Option<ApplyResult> {
        if key.len() > limits.key_bytes_max {
            return Some(ApplyResult::KeyTooLarge);
        }
        match value {
            Some(v) if v.len() > limits.value_bytes_max => Some(ApplyResult::ValueTooLarge),
            _ => None,
        }
    }

    /// Applies the committed operation at `at` (see the module doc); a write's version is
    /// `at.pos.version()`, its time `at.time_ns`. The router calls it in log order, after
    /// exactly-once. Keys past their expiry at the entry's time are deleted first (a bounded
    /// number, `expiry`).
    pub fn apply_op(&mut self, at: Applied, op: &Op<'_>) -> ApplyResult {
        // Old values are kept for the entry being applied only (its answers are rendered after it).
        if self.returned.first().is_some_and(|(version, _)| version >> 16 != at.pos.lsn) {
            self.returned.clear();
        }
        self.advance(at.time_ns);
        self.applying = at.pos.index;
        self.writing = at.owner;
        self.writer_elsewhere = at.others;
        if let Op::ExpireDue = op {
            return ApplyResult::Reclaimed { keys: self.reclaim(RECLAIM_PER_TICK) };
        }
        self.reclaim(RECLAIM_PER_COMMAND);
        if let Some(refused) = Self::check_sizes(&self.limits, op) {
            return refused;
        }
        match op {
            Op::MSet { pairs } => pairs.iter().for_each(|(key, _)| self.drop_if_expired(key)),
            _ => self.drop_if_expired(op.key()),
        }
        self.execute(at.pos.version(), op)
    }

    /// Applies `cmd` alone in the entry at `lsn`, ignoring its client (tests of the fold itself;
    /// exactly-once is the router's).
    #[cfg(test)]
    pub(crate) fn apply(&mut self, lsn: u64, cmd: &Command<'_>) -> ApplyResult {
        self.apply_op(Applied::single(lsn), &cmd.op)
    }

    /// Applies `cmd` alone in the entry at `lsn` stamped `time_ms` (tests of expiry).
    #[cfg(test)]
    pub(crate) fn apply_at(&mut self, lsn: u64, time_ms: u64, cmd: &Command<'_>) -> ApplyResult {
        let at = Applied { pos: LogPos::single(lsn), time_ns: time_ms * 1_000_000, ..Default::default() };
        self.apply_op(at, &cmd.op)
    }

    fn execute(&mut self, version: u64, op: &Op<'_>) -> ApplyResult {
        match *op {
            Op::Set { key, value } => match self.store(key, value, version, Some(None)) {
                Ok(()) => ApplyResult::Stored { version },
                Err(full) => full,
            },
            Op::Del { key } => ApplyResult::Deleted { existed: self.remove_key(key) },
            Op::SetX { key, value, flags, ttl } => self.set_x(version, key, value, flags, ttl),
            Op::Expire { key, flags, ttl } => self.expire(key, flags, ttl),
            Op::Persist { key } => self.persist(key),
            Op::ExpireDue => ApplyResult::Reclaimed { keys: self.reclaim(RECLAIM_PER_TICK) },
            Op::MSet { pairs } => self.mset(version, pairs),
            Op::Cad { key, expected_version } => {
                let current_version = self.map.get(key).map_or(0, |(_, version)| version);
                if current_version == 0 || current_version != expected_version {
                    return ApplyResult::CasMismatch { current_version };
                }
                ApplyResult::Deleted { existed: self.remove_key(key) }
            }
            Op::Incr { key, delta } => {
                let current = match self.map.get(key) {
                    None => 0,
                    Some((value, _)) => match parse_i64(value) {
                        Some(n) => n,
                        None => return ApplyResult::NotInteger,
                    },
                };
                let Some(value) = current.checked_add(delta) else {
                    return ApplyResult::Overflow;
                };
                let mut text = [0u8; I64_DECIMAL_MAX];
                let len = format_i64(value, &mut text);
                if len > self.limits.value_bytes_max {
                    return ApplyResult::ValueTooLarge;
                }
                // INCR keeps the key's expiry, as in Redis.
                match self.store(key, &text[..len], version, None) {
                    Ok(()) => ApplyResult::Incremented { value, version },
                    Err(full) => full,
                }
            }
            Op::Cas { key, expected_version, value } => {
                let current_version = self.map.get(key).map_or(0, |(_, version)| version);
                if current_version != expected_version {
                    return ApplyResult::CasMismatch { current_version };
                }
                match self.store(key, value, version, Some(None)) {
                    Ok(()) => ApplyResult::Stored { version },
                    Err(full) => full,
                }
            }
        }
    }

    /// MSET: every pair stored at `version` with no expiry, or `Full` with nothing changed. The
    /// room is checked first against an upper bound of what the pairs add (a key absent from the
    /// map counts as new each time it is named; a value counts only when it grows its key), so no
    /// pair can find the store full once the first is stored.
    fn mset(&mut self, version: u64, pairs: Pairs<'_>) -> ApplyResult {
        let me = self.writing.key_id;
        let (mut new_keys, mut added) = (0usize, 0usize);
        // What the writer's usage gains, bounded the same way: a key it does not own counts whole.
        let (mut mine_keys, mut mine_bytes) = (0u64, 0u64);
        for (key, value) in pairs.iter() {
            match self.map.entry(key) {
                Some(old) => {
                    added += value.len().saturating_sub(old.value.len());
                    if old.owner == me {
                        mine_bytes += value.len().saturating_sub(old.value.len()) as u64;
                    } else {
                        mine_keys += 1;
                        mine_bytes += (key.len() + value.len()) as u64;
                    }
                }
                None => {
                    new_keys += 1;
                    added += key.len() + value.len();
                    mine_keys += 1;
                    mine_bytes += (key.len() + value.len()) as u64;
                }
            }
        }
        if let Some(refused) = self.quota_refuses(mine_keys, mine_bytes) {
            return refused;
        }
        if self.map.len() + new_keys > self.limits.keys_max
            || self.data_bytes + added > self.limits.data_bytes_max
        {
            return ApplyResult::Full;
        }
        for (key, value) in pairs.iter() {
            let stored = self.store(key, value, version, Some(None));
            debug_assert!(stored.is_ok(), "room and quota were checked for every pair");
        }
        ApplyResult::Stored { version }
    }

    /// Stores `value` under `key` at `version` with the expiry `expiry` (`None`: the key keeps
    /// the one it has) for the writer of the command being applied, or `Err(QuotaExceeded)` or
    /// `Err(Full)` with nothing changed.
    pub(crate) fn store(
        &mut self,
        key: &[u8],
        value: &[u8],
        version: u64,
        expiry: Option<Option<u64>>,
    ) -> Result<(), ApplyResult> {
        // One lookup: the limits are checked at the place it found, before the map changes.
        let at = self.map.lookup(key);
        let old = self.map.entry_at(&at).map(|e| (e.value.len(), e.owner, e.expiry));
        let owner = self.writing.key_id;
        let (keys, bytes) = match old {
            Some((old_len, o, _)) if o == owner => (0, value.len().saturating_sub(old_len)),
            _ => (1, key.len() + value.len()),
        };
        if let Some(refused) = self.quota_refuses(keys, bytes as u64) {
            return Err(refused);
        }
        let data_bytes = match old {
            Some((old_len, _, _)) => self.data_bytes - old_len + value.len(),
            None if self.map.len() >= self.limits.keys_max => return Err(ApplyResult::Full),
            None => self.data_bytes + key.len() + value.len(),
        };
        if data_bytes > self.limits.data_bytes_max {
            return Err(ApplyResult::Full);
        }
        let old_expiry = old.and_then(|o| o.2);
        let new = expiry.unwrap_or(old_expiry);
        self.map.store(at, key, value, version, new, owner);
        self.expiries.change(key, old_expiry, new);
        self.data_bytes = data_bytes;
        if let Some((old_len, old_owner, _)) = old {
            self.usage_remove(old_owner, key.len() + old_len);
        }
        self.usage_add(owner, key.len() + value.len());
        Ok(())
    }
}

impl Projection for KvProjection {
    fn tag(&self) -> u8 {
        TAG_KV
    }

    fn check(&self, command: &[u8]) -> Option<ApplyResult> {
        match Command::decode(command) {
            Ok(cmd) => Self::check_sizes(&self.limits, &cmd.op),
            Err(_) => Some(ApplyResult::Malformed),
        }
    }

    fn apply(&mut self, at: Applied, command: &[u8]) -> ApplyResult {
        match Command::decode(command) {
            Ok(cmd) => self.apply_op(at, &cmd.op),
            Err(_) => ApplyResult::Malformed,
        }
    }

    fn read(&self, op: u8, body: &[u8], out: &mut [u8]) -> Result<usize, Status> {
        // Through the router no request time is known: the last entry's time stands for it.
        self.answer_read(op, body, self.now_ms, out)
    }

    fn write_snapshot(&self, out: &mut Vec<u8>) {
        self.write_section(out);
    }

    fn begin_capture(&mut self) -> SectionCapture {
        self.begin_section_capture()
    }

    fn capture_chunk(&mut self, chunk: &mut SnapshotChunk) -> bool {
        self.section_chunk(chunk)
    }

    fn load_snapshot(
        &mut self,
        section: &mut SectionReader<'_>,
        applied_lsn: u64,
    ) -> Result<(), SnapshotError> {
        *self = Self::read_section(section, applied_lsn, self.limits)?;
        Ok(())
    }

    fn usage_of(&self, owner: u32, _time_ns: u64) -> Usage {
        // Keys past their expiry count until reclaimed (a few per write, the rest by the
        // leader's EXPIRE_DUE): moments.
        KvProjection::usage_of(self, owner)
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::v;

    fn limits() -> KvLimits {
        KvLimits {
            key_bytes_max: 8,
            value_bytes_max: 32,
            keys_max: 3,
            data_bytes_max: 64,
            dedup_clients_max: 2,
            sequence_ahead_max: 1000,
        }
    }

    fn anon(op: Op<'_>) -> Command<'_> {
        Command { client_id: crate::kv::ANONYMOUS_CLIENT, seq: 0, op }
    }

    #[test]
    fn set_get_and_versions_are_lsns() {
        let mut kv = KvProjection::new(limits());
        assert_eq!(kv.get(b"a"), None);
        assert_eq!(
            kv.apply(5, &anon(Op::Set { key: b"a", value: b"1" })),
            ApplyResult::Stored { version: v(5) }
        );
        assert_eq!(kv.get(b"a"), Some((&b"1"[..], v(5))));
        assert_eq!(
            kv.apply(9, &anon(Op::Set { key: b"a", value: b"22" })),
            ApplyResult::Stored { version: v(9) }
        );
        assert_eq!(kv.get(b"a"), Some((&b"22"[..], v(9))));
        assert_eq!(kv.data_bytes(), 3);
        assert_eq!(kv.len(), 1);
    }

    #[test]
    fn del_reports_whether_the_key_existed() {
        let mut kv = KvProjection::new(limits());
        kv.apply(1, &anon(Op::Set { key: b"a", value: b"1" }));
        assert_eq!(kv.apply(2, &anon(Op::Del { key: b"a" })), ApplyResult::Deleted { existed: true });
        assert_eq!(kv.apply(3, &anon(Op::Del { key: b"a" })), ApplyResult::Deleted { existed: false });
        assert_eq!(kv.get(b"a"), None);
        assert_eq!(kv.data_bytes(), 0);
    }

    #[test]
    fn incr_starts_at_zero_refuses_text_and_overflow() {
        let mut kv = KvProjection::new(limits());
        let incr = |delta| anon(Op::Incr { key: b"n", delta });
        assert_eq!(kv.apply(1, &incr(5)), ApplyResult::Incremented { value: 5, version: v(1) });
        assert_eq!(kv.apply(2, &incr(-7)), ApplyResult::Incremented { value: -2, version: v(2) });
        assert_eq!(kv.get(b"n"), Some((&b"-2"[..], v(2))));
        kv.apply(3, &anon(Op::Set { key: b"n", value: b"9223372036854775806" }));
        assert_eq!(kv.apply(4, &incr(1)), ApplyResult::Incremented { value: i64::MAX, version: v(4) });
        assert_eq!(kv.apply(5, &incr(1)), ApplyResult::Overflow);
        assert_eq!(kv.get(b"n"), Some((&b"9223372036854775807"[..], v(4))));
        kv.apply(6, &anon(Op::Set { key: b"n", value: b"-9223372036854775808" }));
        assert_eq!(kv.apply(7, &incr(-1)), ApplyResult::Overflow);
        let mut lsn = 7;
        for text in [&b"abc"[..], b"", b"-", b"+1", b" 1", b"1 ", b"9223372036854775808", b"1.5"] {
            lsn += 1;
            kv.apply(lsn, &anon(Op::Set { key: b"t", value: text }));
            let before = kv.get(b"t").map(|(v, n)| (v.to_vec(), n));
            assert_eq!(kv.apply(100 + lsn, &anon(Op::Incr { key: b"t", delta: 1 })), ApplyResult::NotInteger);
            assert_eq!(kv.get(b"t").map(|(v, n)| (v.to_vec(), n)), before);
        }
        kv.apply(1000, &anon(Op::Set { key: b"z", value: b"007" }));
        assert_eq!(
            kv.apply(1001, &anon(Op::Incr { key: b"z", delta: 0 })),
            ApplyResult::Incremented { value: 7, version: v(1001) }
        );
    }

    #[test]
    fn cas_compares_versions_and_zero_means_absent() {
        let mut kv = KvProjection::new(limits());
        let cas = |version, value| anon(Op::Cas { key: b"c", expected_version: version, value });
        assert_eq!(kv.apply(1, &cas(3, b"x")), ApplyResult::CasMismatch { current_version: 0 });
        assert_eq!(kv.get(b"c"), None);
        assert_eq!(kv.apply(2, &cas(0, b"x")), ApplyResult::Stored { version: v(2) });
        assert_eq!(kv.apply(3, &cas(0, b"y")), ApplyResult::CasMismatch { current_version: v(2) });
        assert_eq!(kv.apply(4, &cas(v(2), b"y")), ApplyResult::Stored { version: v(4) });
        assert_eq!(kv.get(b"c"), Some((&b"y"[..], v(4))));
    }

    #[test]
    fn limits_are_error_results_and_change_nothing() {
        let mut kv = KvProjection::new(limits());
        assert_eq!(kv.apply(1, &anon(Op::Set { key: b"123456789", value: b"" })), ApplyResult::KeyTooLarge);
        assert_eq!(kv.apply(2, &anon(Op::Set { key: b"k", value: &[0; 33] })), ApplyResult::ValueTooLarge);
        assert_eq!(kv.apply(3, &anon(Op::Del { key: b"123456789" })), ApplyResult::KeyTooLarge);
        assert_eq!(
            kv.apply(4, &anon(Op::Cas { key: b"k", expected_version: 0, value: &[0; 33] })),
            ApplyResult::ValueTooLarge
        );
        // keys_max = 3.
        for (i, k) in [b"a", b"b", b"c"].iter().enumerate() {
            assert!(matches!(
                kv.apply(10 + i as u64, &anon(Op::Set { key: *k, value: b"" })),
                ApplyResult::Stored { .. }
            ));
        }
        assert_eq!(kv.apply(20, &anon(Op::Set { key: b"d", value: b"" })), ApplyResult::Full);
        assert_eq!(kv.apply(21, &anon(Op::Incr { key: b"d", delta: 1 })), ApplyResult::Full);
        // data_bytes_max = 64: a + 32 = 33, b + 31 = 32 -> 65 > 64.
        assert!(matches!(
            kv.apply(22, &anon(Op::Set { key: b"a", value: &[1; 32] })),
            ApplyResult::Stored { .. }
        ));
        assert_eq!(kv.apply(23, &anon(Op::Set { key: b"b", value: &[1; 31] })), ApplyResult::Full);
        assert_eq!(kv.get(b"b"), Some((&b""[..], v(11))));
        assert_eq!(kv.data_bytes(), 35);
        assert_eq!(kv.len(), 3);
        assert!(kv.get(b"d").is_none());
    }

    #[test]
    fn decimal_round_trips() {
        let mut buf = [0u8; I64_DECIMAL_MAX];
        for n in [0, 1, -1, 10, -10, i64::MAX, i64::MIN, 1234567890] {
            let len = format_i64(n, &mut buf);
            assert_eq!(&buf[..len], n.to_string().as_bytes());
            assert_eq!(parse_i64(&buf[..len]), Some(n));
        }
        assert_eq!(parse_i64(b"-9223372036854775809"), None);
        assert_eq!(parse_i64(b"-0"), Some(0));
    }
}
