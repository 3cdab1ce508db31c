//! A partition's change feed: the KV changes its applied entries made (key, version, value or
//! deleted), kept for the shard to publish to its WebSocket watchers (`conn::watch`) after the
//! poll that applied them.
//!
//! Zero cost when nobody watches: the feed is off until the shard turns it on (it has watchers),
//! and off it records nothing (one branch per applied entry). On, it decodes each applied entry's
//! KV commands again (the router already applied them; the feed reads the same bytes) and copies
//! the changes into one byte buffer, cleared when drained: at most `FEED_BYTES_MAX` bytes and
//! `FEED_CHANGES_MAX` changes between two drains (the shard drains every poll). A change that does
//! not fit is not kept and the feed is marked `lost` until drained: the watchers are then told
//! that they missed changes (closed), never silently given a gap.
//!
//! Invariants: changes come out in apply order (commit order, per partition: per key); only
//! writes that changed a value are changes (SET and SET with options that stored, CAS that stored,
//! INCR, DEL of a key that existed); nothing is allocated once the buffers have grown to their
//! bounds. Keys deleted by expiry (reclaimed at apply, by the leader's EXPIRE_DUE, or by an EXPIRE
//! whose deadline has passed) are deletions too: the KV projection names them while the feed is on
//! (`KvProjection::record_expired`), with the command whose apply deleted them. Not changes
//! (documented in docs/CLIENTS.md): a key's expiry set or cleared (EXPIRE, PERSIST).

use crate::kv::{ApplyResult, Command, Op};
use crate::partition::batch::{BatchReader, TAG_KV};
use crate::projection::LogPos;

/// Bytes of keys and values kept between two drains.
pub const FEED_BYTES_MAX: usize = 1 << 20;
/// Changes kept between two drains.
pub const FEED_CHANGES_MAX: usize = 8192;

/// One change, its bytes in the feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change<'a> {
    /// The key.
    pub key: &'a [u8],
    /// Its version after the write (for a DEL, the delete's own log position).
    pub version: u64,
    /// Its value after the write (INCR's in decimal), or `None`: deleted.
    pub value: Option<&'a [u8]>,
}

#[derive(Clone, Copy, Debug)]
struct Span {
    key: (usize, usize),
    value: Option<(usize, usize)>,
    version: u64,
}

/// The changes of the entries applied since the last drain.
#[derive(Debug, Default)]
pub struct ChangeFeed {
    on: bool,
    bytes: Vec<u8>,
    spans: Vec<Span>,
    /// Results of the entry being applied, by command index.
    results: Vec<ApplyResult>,
    /// Keys expiry deleted while the entry was applied, by the index of the command whose apply
    /// deleted them (`note_expired`).
    expired: Vec<(u16, Box<[u8]>)>,
    lost: bool,
}

impl ChangeFeed {
    /// Turns recording on or off (off drops what is kept).
    pub fn set_on(&mut self, on: bool) {
        self.on = on;
        if !on {
            self.clear();
            self.expired.clear();
        }
    }

    /// Whether it records.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Notes the result of command `index` of the entry being applied (only while on).
    pub fn note_result(&mut self, index: u16, result: ApplyResult) {
        if self.on && usize::from(index) == self.results.len() {
            self.results.push(result);
        }
    }

    /// The keys expiry deleted while the entry being applied was (`KvProjection::take_expired`).
    pub fn note_expired(&mut self, take: impl FnOnce(&mut Vec<(u16, Box<[u8]>)>)) {
        if self.on {
            take(&mut self.expired);
        }
    }

    /// Records the changes of the entry at `lsn` just applied (its results and expired keys
    /// noted first): per command, the keys its apply found expired and deleted, then its own
    /// change, so each key's changes come in the order they were made.
    pub fn record_entry(&mut self, lsn: u64, payload: &[u8]) {
        if !self.on {
            return;
        }
        let mut expired = std::mem::take(&mut self.expired);
        let mut next_expired = 0;
        if !payload.is_empty() && !BatchReader::is_batch(payload) {
            let result = self.results.first().copied();
            self.record_expired(LogPos { lsn, index: 0 }, &expired, &mut next_expired);
            self.record(LogPos { lsn, index: 0 }, payload, result);
        } else if let Ok(batch) = BatchReader::new(payload) {
            for (index, command) in batch.enumerate() {
                if command.tag == TAG_KV {
                    let pos = LogPos { lsn, index: index as u16 };
                    self.record_expired(pos, &expired, &mut next_expired);
                    let result = self.results.get(index).copied();
                    self.record(pos, command.bytes, result);
                }
            }
        }
        expired.clear();
        self.expired = expired;
        self.results.clear();
    }

    /// Records as deletions the expired keys of the command at `pos` (and of any before it).
    fn record_expired(&mut self, pos: LogPos, expired: &[(u16, Box<[u8]>)], next: &mut usize) {
        while let Some((index, key)) = expired.get(*next).filter(|(i, _)| *i <= pos.index) {
            debug_assert!(*index <= pos.index);
            self.push_change(key, None, pos.version());
            *next += 1;
        }
    }

    fn record(&mut self, pos: LogPos, command: &[u8], result: Option<ApplyResult>) {
        let Ok(cmd) = Command::decode(command) else { return };
        if let (Op::MSet { pairs }, Some(ApplyResult::Stored { version })) = (cmd.op, result) {
            pairs.iter().for_each(|(key, value)| self.push_change(key, Some(value), version));
            return;
        }
        let mut digits = [0u8; 20];
        let (key, value, version): (&[u8], Option<&[u8]>, u64) = match (cmd.op, result) {
            (
                Op::Set { key, value, .. } | Op::Cas { key, value, .. },
                Some(ApplyResult::Stored { version }),
            ) => (key, Some(value), version),
            (Op::SetX { key, value, .. }, Some(ApplyResult::SetX { stored: true, version, .. })) => {
                (key, Some(value), version)
            }
            (Op::Del { key, .. } | Op::Cad { key, .. }, Some(ApplyResult::Deleted { existed: true })) => {
                (key, None, pos.version())
            }
            (Op::Incr { key, .. }, Some(ApplyResult::Incremented { value, version })) => {
                let n = decimal(value, &mut digits);
                (key, Some(&digits[..n]), version)
            }
            _ => return,
        };
        self.push_change(key, value, version);
    }

    /// Keeps one change, or marks the feed `lost` when it does not fit.
    fn push_change(&mut self, key: &[u8], value: Option<&[u8]>, version: u64) {
        let need = key.len() + value.map_or(0, <[u8]>::len);
        if self.spans.len() >= FEED_CHANGES_MAX || self.bytes.len() + need > FEED_BYTES_MAX {
            self.lost = true;
            return;
        }
        let k = self.push(key);
        let v = value.map(|v| self.push(v));
        self.spans.push(Span { key: k, value: v, version });
    }

    fn push(&mut self, bytes: &[u8]) -> (usize, usize) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        (start, self.bytes.len())
    }

    /// Hands every change kept to `sink`, in order, then forgets them; returns whether some were
    /// lost since the last drain (watchers must be told).
    pub fn drain(&mut self, sink: &mut dyn FnMut(&Change<'_>)) -> bool {
        for s in &self.spans {
            let change = Change {
                key: &self.bytes[s.key.0..s.key.1],
                version: s.version,
                value: s.value.map(|(a, b)| &self.bytes[a..b]),
            };
            sink(&change);
        }
        let lost = self.lost;
        self.clear();
        lost
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
        self.results.clear();
        self.lost = false;
    }
}

/// `n` in decimal into `out`; returns its length.
fn decimal(n: i64, out: &mut [u8; 20]) -> usize {
    let mut w = &mut out[..];
    let _ = std::io::Write::write_fmt(&mut w, format_args!("{n}"));
    20 - w.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::ANONYMOUS_CLIENT;

    fn encoded(op: Op<'_>) -> Vec<u8> {
        let cmd = Command { client_id: ANONYMOUS_CLIENT, seq: 0, op };
        let mut bytes = vec![0u8; cmd.encoded_len()];
        cmd.encode(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn only_writes_that_changed_the_store_are_changes_and_off_records_nothing() {
        let mut feed = ChangeFeed::default();
        let set = encoded(Op::Set { key: b"k", value: b"v" });
        feed.note_result(0, ApplyResult::Stored { version: 7 });
        feed.record_entry(1, &set);
        assert!(!feed.drain(&mut |_| panic!("off")));
        feed.set_on(true);
        feed.note_result(0, ApplyResult::Stored { version: 7 << 16 });
        feed.record_entry(7, &set);
        let del = encoded(Op::Del { key: b"k" });
        feed.note_result(0, ApplyResult::Deleted { existed: true });
        feed.record_entry(8, &del);
        feed.note_result(0, ApplyResult::Deleted { existed: false });
        feed.record_entry(9, &del);
        feed.note_result(0, ApplyResult::Incremented { value: -12, version: 10 << 16 });
        feed.record_entry(10, &encoded(Op::Incr { key: b"n", delta: -12 }));
        let mut seen = Vec::new();
        let lost = feed.drain(&mut |c| seen.push((c.key.to_vec(), c.version, c.value.map(<[u8]>::to_vec))));
        assert!(!lost);
        assert_eq!(
            seen,
            [
                (b"k".to_vec(), 7 << 16, Some(b"v".to_vec())),
                (b"k".to_vec(), 8 << 16, None),
                (b"n".to_vec(), 10 << 16, Some(b"-12".to_vec())),
            ]
        );
    }

    #[test]
    fn an_mset_is_a_change_of_each_of_its_keys() {
        let mut feed = ChangeFeed::default();
        feed.set_on(true);
        let mut body = Vec::new();
        let mut w = crate::kv::PairsWriter::begin(&mut body);
        w.push(&mut body, b"a", b"1");
        w.push(&mut body, b"b", b"2");
        let mset = encoded(Op::MSet { pairs: crate::kv::Pairs::parse(&body).unwrap() });
        feed.note_result(0, ApplyResult::Stored { version: 4 << 16 });
        feed.record_entry(4, &mset);
        let mut seen = Vec::new();
        feed.drain(&mut |c| seen.push((c.key.to_vec(), c.version, c.value.map(<[u8]>::to_vec))));
        assert_eq!(
            seen,
            [(b"a".to_vec(), 4 << 16, Some(b"1".to_vec())), (b"b".to_vec(), 4 << 16, Some(b"2".to_vec()))]
        );
    }

    #[test]
    fn a_set_with_options_that_stored_is_a_change_and_one_that_did_not_is_not() {
        use crate::kv::Ttl;
        let mut feed = ChangeFeed::default();
        feed.set_on(true);
        let setx = encoded(Op::SetX { key: b"t", value: b"v", flags: 0, ttl: Ttl::RelativeMs(1_000) });
        feed.note_result(0, ApplyResult::SetX { stored: true, version: 3 << 16, existed: false });
        feed.record_entry(3, &setx);
        feed.note_result(0, ApplyResult::SetX { stored: false, version: 0, existed: true });
        feed.record_entry(4, &setx);
        let mut seen = Vec::new();
        feed.drain(&mut |c| seen.push((c.key.to_vec(), c.version, c.value.map(<[u8]>::to_vec))));
        assert_eq!(seen, [(b"t".to_vec(), 3 << 16, Some(b"v".to_vec()))]);
    }

    #[test]
    fn keys_expiry_deleted_come_before_the_change_of_the_command_that_deleted_them() {
        let mut feed = ChangeFeed::default();
        feed.set_on(true);
        let limits = crate::partition::batch::BatchLimits { bytes_max: 4064, writes_max: 16 };
        let mut batch = crate::partition::batch::BatchWriter::new(limits);
        for key in [&b"x"[..], b"b"] {
            let cmd = encoded(Op::Set { key, value: b"v" });
            batch.push(TAG_KV, &Default::default(), cmd.len(), |out| out.copy_from_slice(&cmd));
        }
        let payload = batch.seal(0).to_vec();
        feed.note_result(0, ApplyResult::Stored { version: 5 << 16 });
        feed.note_result(1, ApplyResult::Stored { version: (5 << 16) | 1 });
        feed.note_expired(|into| into.extend([(0, b"a".to_vec().into()), (1, b"b".to_vec().into())]));
        feed.record_entry(5, &payload);
        let mut seen = Vec::new();
        feed.drain(&mut |c| seen.push((c.key.to_vec(), c.value.is_some())));
        assert_eq!(
            seen,
            [(b"a".to_vec(), false), (b"x".to_vec(), true), (b"b".to_vec(), false), (b"b".to_vec(), true)]
        );
    }
}
