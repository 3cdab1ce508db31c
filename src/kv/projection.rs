//! The KV state machine: applies committed commands in log order, serves reads.
//!
//! State: the applied lsn, a hash map from key to (value, version), the byte count of keys plus
//! values, and the client table ([`super::dedup`]). A hash map with the standard library's keyed
//! SipHash (random keys per process: clients choose the keys, so no hash flooding) does one hash
//! and about one key comparison per lookup, where a B-tree did a pointer chase and a `memcmp` per
//! level (a third of a shard's time under durable SETs). Nothing depends on its order: `iter` and
//! snapshots sort the keys, so snapshots stay deterministic; lookups by `&[u8]` allocate nothing.
//!
//! Semantics of `apply(lsn, command)`:
//! - the lsn must be above the last applied one (a programmer error otherwise: the pipeline feeds
//!   committed entries once, in order; gaps are fine, other entries use lsns too);
//! - a non-anonymous command is first classified by the client table ([`super::dedup`]): a retry of
//!   the client's last applied write (same seq, same command digest) returns the stored result; the
//!   same seq with another command returns `SequenceReused`, an older seq `Stale`, a seq more than
//!   `sequence_ahead_max` past the client's last `SequenceTooFar`; none of these changes anything;
//! - otherwise the operation runs; every outcome, errors included, is a result (never a panic), is
//!   recorded in the client table, and a write sets the key's version to `lsn`;
//! - error results (`KeyTooLarge`, `ValueTooLarge`, `Full`, `NotInteger`, `Overflow`,
//!   `CasMismatch`) leave the map unchanged.
//!
//! Allocation: reads and the dedup check allocate nothing. A write of a new key copies the key and
//! the value into owned heap memory (unavoidable: the entry outlives the log buffer) and may grow
//! the table (its capacity doubles, amortized). Overwriting a key reuses its value buffer when the new value fits and is
//! at least half its capacity, so steady-state overwrites of same-size values allocate nothing.
//! DEL frees the key's memory.

use super::command::{Command, Op, ANONYMOUS_CLIENT};
use super::dedup::{Check, ClientRecord, ClientTable, Verdict};
use super::KvLimits;
use crate::projection::LogPos;
use crate::wire::Status;
use std::collections::HashMap;

/// The outcome of applying one command; small and `Copy` so the client table can keep it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyResult {
    /// SET or CAS stored the value; the key's version is now `version` (`LogPos::version` of the
    /// write: its entry's lsn times 65536 plus its position in the batch).
    Stored {
        /// The key's new version.
        version: u64,
    },
    /// DEL ran; `existed` says whether the key was there (and is now gone).
    Deleted {
        /// Whether a key was removed.
        existed: bool,
    },
    /// INCR stored `value`; the key's version is now `version`.
    Incremented {
        /// The new value.
        value: i64,
        /// The key's new version.
        version: u64,
    },
    /// CAS found version `current_version` (0: absent), not the expected one; nothing changed.
    CasMismatch {
        /// The key's version now, 0 if it does not exist.
        current_version: u64,
    },
    /// INCR on a value that is not a decimal i64; nothing changed.
    NotInteger,
    /// INCR would overflow i64; nothing changed.
    Overflow,
    /// The key is longer than `key_bytes_max`; nothing changed.
    KeyTooLarge,
    /// The value is longer than `value_bytes_max`; nothing changed.
    ValueTooLarge,
    /// `keys_max` or `data_bytes_max` would be exceeded; nothing changed.
    Full,
    /// The seq is older than the client's last applied one (`last_seq`); nothing changed.
    Stale {
        /// The client's last applied seq.
        last_seq: u64,
    },
    /// The client's last applied write has this seq (`last_seq`) but another command: the pair was
    /// reused; nothing changed, nothing recorded.
    SequenceReused {
        /// The client's last applied seq.
        last_seq: u64,
    },
    /// The seq is more than `sequence_ahead_max` past the client's last applied one (`last_seq`,
    /// 0 for a client not remembered); nothing changed, nothing recorded.
    SequenceTooFar {
        /// The client's last applied seq.
        last_seq: u64,
    },
    /// The log entry is not a KV command (see [`KvProjection::apply_entry`]); nothing changed.
    Malformed,
}

impl ApplyResult {
    /// The wire status this result is answered with.
    pub fn status(&self) -> Status {
        match self {
            ApplyResult::Stored { .. } | ApplyResult::Deleted { .. } | ApplyResult::Incremented { .. } => {
                Status::Ok
            }
            ApplyResult::CasMismatch { .. } => Status::CasMismatch,
            ApplyResult::NotInteger => Status::NotInteger,
            ApplyResult::Overflow => Status::Overflow,
            ApplyResult::KeyTooLarge => Status::KeyTooLarge,
            ApplyResult::ValueTooLarge => Status::ValueTooLarge,
            ApplyResult::Full => Status::Full,
            ApplyResult::Stale { .. } => Status::Stale,
            ApplyResult::SequenceReused { .. } => Status::SequenceReused,
            ApplyResult::SequenceTooFar { .. } => Status::SequenceTooFar,
            ApplyResult::Malformed => Status::BadRequest,
        }
    }
}

/// Counters of what `apply` did; plain integers, not part of the replicated state (not in
/// snapshots), so they may differ between replicas.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvCounters {
    /// Commands executed (not retries, not stale).
    pub executed: u64,
    /// Retries answered from the client table.
    pub duplicates: u64,
    /// Stale seqs refused.
    pub stale: u64,
    /// Writes refused because their `(client_id, seq)` was the last applied write of another command.
    pub sequence_reused: u64,
    /// Writes refused because their seq was too far ahead of the client's last.
    pub sequence_too_far: u64,
    /// Log entries that did not decode as KV commands.
    pub malformed: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) value: Vec<u8>,
    pub(crate) version: u64,
}

/// The KV projection of one partition.
#[derive(Clone, Debug)]
pub struct KvProjection {
    pub(crate) limits: KvLimits,
    pub(crate) applied_lsn: u64,
    /// The position within `applied_lsn`'s batch of the last write applied; `None` once the whole
    /// entry is (`entry_applied`, or a projection restored from a snapshot).
    pub(crate) applied_index: Option<u16>,
    pub(crate) map: HashMap<Box<[u8]>, Entry>,
    pub(crate) data_bytes: usize,
    pub(crate) clients: ClientTable,
    pub(crate) counters: KvCounters,
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
        Self {
            limits,
            applied_lsn: 0,
            applied_index: None,
            map: HashMap::new(),
            data_bytes: 0,
            clients: ClientTable::new(limits.dedup_clients_max),
            counters: KvCounters::default(),
        }
    }

    /// The limits it runs with.
    pub fn limits(&self) -> &KvLimits {
        &self.limits
    }

    /// The lsn of the last applied entry (0: none).
    pub fn applied_lsn(&self) -> u64 {
        self.applied_lsn
    }

    /// Keys stored.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes of keys plus values stored.
    pub fn data_bytes(&self) -> usize {
        self.data_bytes
    }

    /// Counters so far.
    pub fn counters(&self) -> KvCounters {
        self.counters
    }

    /// Clients evicted from the client table so far.
    pub fn dedup_evictions(&self) -> u64 {
        self.clients.evictions()
    }

    /// A key's value and version; allocates nothing.
    pub fn get(&self, key: &[u8]) -> Option<(&[u8], u64)> {
        self.map.get(key).map(|e| (e.value.as_slice(), e.version))
    }

    /// Every key with its value and version, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8], u64)> + '_ {
        let mut entries: Vec<(&[u8], &Entry)> = self.map.iter().map(|(k, e)| (&**k, e)).collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        entries.into_iter().map(|(k, e)| (k, e.value.as_slice(), e.version))
    }

    /// The client table's records, least recently active first.
    pub fn clients(&self) -> impl Iterator<Item = &ClientRecord> + '_ {
        self.clients.iter()
    }

    /// What the client table says of a write `seq` from `client_id` before its command is known
    /// (always `New` for the anonymous client): `Stale` for an older seq, else `New`; it never says
    /// `Duplicate` (a same-seq write may be another command). [`KvProjection::precheck`] says more.
    pub fn client_check(&self, client_id: u64, seq: u64) -> Check {
        if client_id == ANONYMOUS_CLIENT {
            return Check::New;
        }
        self.clients.check(client_id, seq)
    }

    /// What `apply` would answer `cmd` without executing it, if the client table decides it (a
    /// retry's stored result, `Stale`, `SequenceReused`, `SequenceTooFar`): a handler may answer such
    /// writes at once instead of logging them. `None`: it would be executed.
    pub fn precheck(&self, cmd: &Command<'_>) -> Option<ApplyResult> {
        match self.verdict(cmd) {
            Verdict::Execute => None,
            Verdict::Duplicate(result) | Verdict::Refuse(result) => Some(result),
        }
    }

    fn verdict(&self, cmd: &Command<'_>) -> Verdict {
        if cmd.client_id == ANONYMOUS_CLIENT {
            return Verdict::Execute;
        }
        self.clients.classify(cmd.client_id, cmd.seq, cmd.digest(), self.limits.sequence_ahead_max)
    }

    /// The result a write would get from the size limits alone, if it fails them: handlers may
    /// answer such writes at once instead of logging them (`apply` would give the same result).
    pub fn check_sizes(limits: &KvLimits, op: &Op<'_>) -> Option<ApplyResult> {
        if op.key().len() > limits.key_bytes_max {
            return Some(ApplyResult::KeyTooLarge);
        }
        match op.value() {
            Some(v) if v.len() > limits.value_bytes_max => Some(ApplyResult::ValueTooLarge),
            _ => None,
        }
    }

    /// Applies the committed log entry at `lsn` whose payload is one KV command (an entry written
    /// before batches existed; batches are routed by the partition, `partition::router`), and
    /// marks the entry applied.
    pub fn apply_entry(&mut self, lsn: u64, payload: &[u8]) -> ApplyResult {
        let result = self.apply_bytes(LogPos::single(lsn), payload);
        self.entry_applied(lsn);
        result
    }

    /// Applies the command whose encoding is `bytes` at `pos`: decodes it and applies it, or, if it
    /// is not a KV command, only advances and returns `Malformed` (every replica sees the same
    /// bytes, so every replica does the same).
    pub fn apply_bytes(&mut self, pos: LogPos, bytes: &[u8]) -> ApplyResult {
        match Command::decode(bytes) {
            Ok(cmd) => self.apply_at(pos, &cmd),
            Err(_) => {
                self.advance(pos);
                self.counters.malformed += 1;
                ApplyResult::Malformed
            }
        }
    }

    /// Applies the committed command alone in its entry at `lsn` (see `apply_at`).
    pub fn apply(&mut self, lsn: u64, cmd: &Command<'_>) -> ApplyResult {
        let result = self.apply_at(LogPos::single(lsn), cmd);
        self.entry_applied(lsn);
        result
    }

    /// Applies the committed command at `pos` (see the module doc for the semantics); a write's
    /// version is `pos.version()`. Panics if `pos` is not after the last position applied.
    pub fn apply_at(&mut self, pos: LogPos, cmd: &Command<'_>) -> ApplyResult {
        self.advance(pos);
        let lsn = pos.lsn;
        match self.verdict(cmd) {
            Verdict::Execute => {}
            Verdict::Duplicate(result) => {
                self.counters.duplicates += 1;
                return result;
            }
            Verdict::Refuse(result) => {
                match result {
                    ApplyResult::SequenceReused { .. } => self.counters.sequence_reused += 1,
                    ApplyResult::SequenceTooFar { .. } => self.counters.sequence_too_far += 1,
                    _ => self.counters.stale += 1,
                }
                return result;
            }
        }
        let result = self.execute(pos.version(), &cmd.op);
        self.counters.executed += 1;
        if cmd.client_id != ANONYMOUS_CLIENT {
            let digest = Some(cmd.digest());
            let record =
                ClientRecord { client_id: cmd.client_id, last_seq: cmd.seq, last_lsn: lsn, digest, result };
            self.clients.record(record);
        }
        result
    }

    /// Marks the entry at `lsn` applied as a whole (what a snapshot taken now covers), whether or
    /// not it held KV commands.
    pub fn entry_applied(&mut self, lsn: u64) {
        assert!(lsn >= self.applied_lsn, "entry {lsn} applied after entry {}", self.applied_lsn);
        self.applied_lsn = lsn;
        self.applied_index = None;
    }

    fn advance(&mut self, pos: LogPos) {
        let after = pos.lsn > self.applied_lsn
            || (pos.lsn == self.applied_lsn && self.applied_index.is_some_and(|i| pos.index > i));
        assert!(after, "{pos:?} applied after lsn {} position {:?}", self.applied_lsn, self.applied_index);
        self.applied_lsn = pos.lsn;
        self.applied_index = Some(pos.index);
    }

    fn execute(&mut self, version: u64, op: &Op<'_>) -> ApplyResult {
        if let Some(refused) = Self::check_sizes(&self.limits, op) {
            return refused;
        }
        match *op {
            Op::Set { key, value } => match self.store(key, value, version) {
                Ok(()) => ApplyResult::Stored { version },
                Err(full) => full,
            },
            Op::Del { key } => match self.map.remove(key) {
                Some(e) => {
                    self.data_bytes -= key.len() + e.value.len();
                    ApplyResult::Deleted { existed: true }
                }
                None => ApplyResult::Deleted { existed: false },
            },
            Op::Incr { key, delta } => {
                let current = match self.map.get(key) {
                    None => 0,
                    Some(e) => match parse_i64(&e.value) {
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
                match self.store(key, &text[..len], version) {
                    Ok(()) => ApplyResult::Incremented { value, version },
                    Err(full) => full,
                }
            }
            Op::Cas { key, expected_version, value } => {
                let current_version = self.map.get(key).map_or(0, |e| e.version);
                if current_version != expected_version {
                    return ApplyResult::CasMismatch { current_version };
                }
                match self.store(key, value, version) {
                    Ok(()) => ApplyResult::Stored { version },
                    Err(full) => full,
                }
            }
        }
    }

    /// Stores `value` under `key` at `version`, or `Err(Full)` with nothing changed.
    fn store(&mut self, key: &[u8], value: &[u8], version: u64) -> Result<(), ApplyResult> {
        if let Some(e) = self.map.get_mut(key) {
            let data_bytes = self.data_bytes - e.value.len() + value.len();
            if data_bytes > self.limits.data_bytes_max {
                return Err(ApplyResult::Full);
            }
            if value.len() <= e.value.capacity() && e.value.capacity() / 2 <= value.len() {
                e.value.clear();
                e.value.extend_from_slice(value);
            } else {
                e.value = value.to_vec();
            }
            e.version = version;
            self.data_bytes = data_bytes;
            return Ok(());
        }
        let data_bytes = self.data_bytes + key.len() + value.len();
        if self.map.len() >= self.limits.keys_max || data_bytes > self.limits.data_bytes_max {
            return Err(ApplyResult::Full);
        }
        self.map.insert(key.into(), Entry { value: value.to_vec(), version });
        self.data_bytes = data_bytes;
        Ok(())
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

    fn set<'a>(client_id: u64, seq: u64, key: &'a [u8], value: &'a [u8]) -> Command<'a> {
        Command { client_id, seq, op: Op::Set { key, value } }
    }

    fn anon(op: Op<'_>) -> Command<'_> {
        Command { client_id: ANONYMOUS_CLIENT, seq: 0, op }
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
        assert_eq!(kv.applied_lsn(), 9);
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
        for text in [&b"abc"[..], b"", b"-", b"+1", b" 1", b"1 ", b"9223372036854775808", b"1.5"] {
            kv.apply(8 + kv.applied_lsn(), &anon(Op::Set { key: b"t", value: text }));
            let before = kv.get(b"t").map(|(v, n)| (v.to_vec(), n));
            assert_eq!(
                kv.apply(100 + kv.applied_lsn(), &anon(Op::Incr { key: b"t", delta: 1 })),
                ApplyResult::NotInteger
            );
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
    fn retries_get_the_original_result_and_stale_seqs_are_refused() {
        let mut kv = KvProjection::new(limits());
        assert_eq!(kv.apply(1, &set(7, 1, b"a", b"x")), ApplyResult::Stored { version: v(1) });
        kv.apply(2, &anon(Op::Set { key: b"a", value: b"other" }));
        // The retry of (7, 1) is answered from the table and does not write again.
        assert_eq!(kv.apply(3, &set(7, 1, b"a", b"x")), ApplyResult::Stored { version: v(1) });
        assert_eq!(kv.get(b"a"), Some((&b"other"[..], v(2))));
        assert_eq!(kv.apply(4, &set(7, 3, b"a", b"y")), ApplyResult::Stored { version: v(4) });
        assert_eq!(kv.apply(5, &set(7, 2, b"a", b"z")), ApplyResult::Stale { last_seq: 3 });
        assert_eq!(kv.get(b"a"), Some((&b"y"[..], v(4))));
        // Error results are remembered too.
        assert_eq!(
            kv.apply(6, &Command { client_id: 7, seq: 4, op: Op::Incr { key: b"a", delta: 1 } }),
            ApplyResult::NotInteger
        );
        kv.apply(7, &anon(Op::Set { key: b"a", value: b"1" }));
        assert_eq!(
            kv.apply(8, &Command { client_id: 7, seq: 4, op: Op::Incr { key: b"a", delta: 1 } }),
            ApplyResult::NotInteger
        );
        let c = kv.counters();
        assert_eq!((c.duplicates, c.stale), (2, 1));
    }

    #[test]
    fn anonymous_writes_are_never_deduplicated() {
        let mut kv = KvProjection::new(limits());
        let incr = anon(Op::Incr { key: b"n", delta: 1 });
        kv.apply(1, &incr);
        assert_eq!(kv.apply(2, &incr), ApplyResult::Incremented { value: 2, version: v(2) });
        assert_eq!(kv.clients().count(), 0);
    }

    #[test]
    fn an_evicted_client_is_taken_for_a_new_one() {
        let mut kv = KvProjection::new(limits()); // dedup_clients_max = 2
        let incr = |c, s| Command { client_id: c, seq: s, op: Op::Incr { key: b"n", delta: 1 } };
        kv.apply(1, &incr(1, 1));
        kv.apply(2, &incr(2, 1));
        // A retry does not count as activity: it changes nothing.
        assert_eq!(kv.apply(3, &incr(1, 1)), ApplyResult::Incremented { value: 1, version: v(1) });
        kv.apply(4, &incr(1, 2)); // client 1 is now the most recently active.
        kv.apply(5, &incr(3, 1)); // evicts client 2 (least recently active).
        assert_eq!(kv.dedup_evictions(), 1);
        assert_eq!(kv.apply(6, &incr(1, 2)), ApplyResult::Incremented { value: 3, version: v(4) });
        // Client 2's retry is taken for a new write and executed again.
        assert_eq!(kv.apply(7, &incr(2, 1)), ApplyResult::Incremented { value: 5, version: v(7) });
    }

    #[test]
    fn garbage_entries_are_malformed_and_advance_the_lsn() {
        let mut kv = KvProjection::new(limits());
        assert_eq!(kv.apply_entry(4, b"\xffjunk"), ApplyResult::Malformed);
        assert_eq!(kv.applied_lsn(), 4);
        let mut buf = [0u8; 64];
        let n = set(1, 1, b"k", b"v").encode(&mut buf).unwrap();
        assert_eq!(kv.apply_entry(5, &buf[..n]), ApplyResult::Stored { version: v(5) });
    }

    #[test]
    #[should_panic(expected = "applied after")]
    fn lsns_must_increase() {
        let mut kv = KvProjection::new(limits());
        kv.apply(2, &anon(Op::Del { key: b"a" }));
        kv.apply(2, &anon(Op::Del { key: b"a" }));
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
