//! Model-based tests of the router over the KV projection: random command sequences (with
//! retries, stale seqs, garbage entries and restarts from snapshots) applied to a `Router` and to a
//! plain `BTreeMap` model with a simple client table; same answers at every step, byte-identical
//! snapshots across replicas.

use super::*;
use crate::kv::{Command, KvLimits, Op};
use proptest::prelude::*;
use std::collections::BTreeMap;

const LIMITS: KvLimits = KvLimits {
    key_bytes_max: 8,
    value_bytes_max: 32,
    keys_max: 4,
    data_bytes_max: 60,
    dedup_clients_max: 3,
    sequence_ahead_max: AHEAD,
};
/// The window of sequence numbers ahead of a client's last that the tests' projection accepts.
const AHEAD: u64 = 5;

const KEYS: [&[u8]; 6] = [b"a", b"b", b"c", b"d", b"", b"too-long-key"];
const VALUES: [&[u8]; 8] = [
    b"",
    b"1",
    b"-5",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"x",
    b"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvv",
    b"this value is longer than thirty-two",
];
const DELTAS: [i64; 5] = [1, -1, 7, i64::MAX, i64::MIN];

/// A write with owned bytes, so it can be kept and resent.
#[derive(Clone, Debug, PartialEq, Eq)]
enum OwnedOp {
    Set(Vec<u8>, Vec<u8>),
    Del(Vec<u8>),
    Incr(Vec<u8>, i64),
    Cas(Vec<u8>, u64, Vec<u8>),
}

impl OwnedOp {
    fn borrow(&self) -> Op<'_> {
        match self {
            OwnedOp::Set(k, v) => Op::Set { key: k, value: v },
            OwnedOp::Del(k) => Op::Del { key: k },
            OwnedOp::Incr(k, d) => Op::Incr { key: k, delta: *d },
            OwnedOp::Cas(k, e, v) => Op::Cas { key: k, expected_version: *e, value: v },
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum SeqChoice {
    Next,
    Retry,
    Older,
    /// The last seq again, with a fresh command (a reused pair, unless the command happens to be
    /// the same).
    Reuse,
    /// Past the window: `last + AHEAD + 1 + n`.
    Far(u64),
}

#[derive(Clone, Debug)]
enum Step {
    Write {
        client: u64,
        seq: SeqChoice,
        kind: u8,
        key: usize,
        value: usize,
        delta: usize,
        version: u8,
        gap: u64,
    },
    Garbage {
        bytes: Vec<u8>,
        gap: u64,
    },
    Restart,
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        20 => (
            0u64..6,
            prop_oneof![
                6 => Just(SeqChoice::Next),
                3 => Just(SeqChoice::Retry),
                1 => Just(SeqChoice::Older),
                1 => Just(SeqChoice::Reuse),
                1 => prop_oneof![Just(u64::MAX), 0u64..3].prop_map(SeqChoice::Far),
            ],
            0u8..4,
            0..KEYS.len(),
            0..VALUES.len(),
            0..DELTAS.len(),
            0u8..3,
            1u64..4,
        )
            .prop_map(|(client, seq, kind, key, value, delta, version, gap)| Step::Write {
                client,
                seq,
                kind,
                key,
                value,
                delta,
                version,
                gap
            }),
        1 => (proptest::collection::vec(any::<u8>(), 0..24), 1u64..3)
            .prop_map(|(bytes, gap)| Step::Garbage { bytes, gap }),
        1 => Just(Step::Restart),
    ]
}

/// The model: a plain map and a client table searched linearly.
#[derive(Default)]
struct Model {
    map: BTreeMap<Vec<u8>, (Vec<u8>, u64)>,
    /// client -> (last seq, last lsn, result, the command applied under that seq)
    clients: BTreeMap<u64, (u64, u64, ApplyResult, OwnedOp)>,
}

impl Model {
    fn data_bytes(&self) -> usize {
        self.map.iter().map(|(k, (v, _))| k.len() + v.len()).sum()
    }

    fn fits(&self, key: &[u8], value: &[u8]) -> bool {
        let old = self.map.get(key).map(|(v, _)| key.len() + v.len());
        let new_len = self.map.len() + usize::from(old.is_none());
        new_len <= LIMITS.keys_max
            && self.data_bytes() - old.unwrap_or(0) + key.len() + value.len() <= LIMITS.data_bytes_max
    }

    fn apply(&mut self, lsn: u64, client: u64, seq: u64, op: &OwnedOp) -> ApplyResult {
        if client != 0 {
            let last = self.clients.get(&client);
            let last_seq = last.map_or(0, |c| c.0);
            if let Some((_, _, result, applied)) = last.filter(|c| c.0 == seq) {
                if applied != op {
                    return ApplyResult::SequenceReused { last_seq };
                }
                return *result;
            }
            if seq < last_seq {
                return ApplyResult::Stale { last_seq };
            }
            // A client not remembered sets its base; a remembered one has a window ahead.
            if last.is_some() && seq - last_seq > AHEAD {
                return ApplyResult::SequenceTooFar { last_seq };
            }
        }
        let result = self.execute(lsn, op);
        if client != 0 {
            if !self.clients.contains_key(&client) && self.clients.len() == LIMITS.dedup_clients_max {
                let oldest = *self.clients.iter().min_by_key(|(_, (_, l, _, _))| *l).unwrap().0;
                self.clients.remove(&oldest);
            }
            self.clients.insert(client, (seq, lsn, result, op.clone()));
        }
        result
    }

    /// What the client table says of a command that does not decode but has a header: its bytes
    /// differ from any command applied, so the same seq is a reuse.
    fn garbage(&self, client: u64, seq: u64) -> ApplyResult {
        if let Some(&(last_seq, ..)) = self.clients.get(&client).filter(|_| client != 0) {
            if seq == last_seq {
                return ApplyResult::SequenceReused { last_seq };
            }
            if seq < last_seq {
                return ApplyResult::Stale { last_seq };
            }
            if seq - last_seq > AHEAD {
                return ApplyResult::SequenceTooFar { last_seq };
            }
        }
        ApplyResult::Malformed
    }

    fn execute(&mut self, lsn: u64, op: &OwnedOp) -> ApplyResult {
        let (key, value) = match op {
            OwnedOp::Set(k, v) | OwnedOp::Cas(k, _, v) => (k, Some(v)),
            OwnedOp::Del(k) | OwnedOp::Incr(k, _) => (k, None),
        };
        if key.len() > LIMITS.key_bytes_max {
            return ApplyResult::KeyTooLarge;
        }
        if value.is_some_and(|v| v.len() > LIMITS.value_bytes_max) {
            return ApplyResult::ValueTooLarge;
        }
        let version = v(lsn);
        match op {
            OwnedOp::Set(k, v) => {
                if !self.fits(k, v) {
                    return ApplyResult::Full;
                }
                self.map.insert(k.clone(), (v.clone(), version));
                ApplyResult::Stored { version }
            }
            OwnedOp::Del(k) => ApplyResult::Deleted { existed: self.map.remove(k).is_some() },
            OwnedOp::Incr(k, d) => {
                let current = match self.map.get(k) {
                    None => 0,
                    Some((v, _)) => match std::str::from_utf8(v)
                        .ok()
                        .filter(|s| !s.starts_with('+'))
                        .and_then(|s| s.parse::<i64>().ok())
                    {
                        Some(n) => n,
                        None => return ApplyResult::NotInteger,
                    },
                };
                let Some(n) = current.checked_add(*d) else { return ApplyResult::Overflow };
                let text = n.to_string().into_bytes();
                if !self.fits(k, &text) {
                    return ApplyResult::Full;
                }
                self.map.insert(k.clone(), (text, version));
                ApplyResult::Incremented { value: n, version }
            }
            OwnedOp::Cas(k, expected, v) => {
                let current_version = self.map.get(k).map_or(0, |(_, ver)| *ver);
                if current_version != *expected {
                    return ApplyResult::CasMismatch { current_version };
                }
                if !self.fits(k, v) {
                    return ApplyResult::Full;
                }
                self.map.insert(k.clone(), (v.clone(), version));
                ApplyResult::Stored { version }
            }
        }
    }
}

/// Applies `bytes` as the entry at `lsn`; a batch that does not decode, or an entry with no
/// command, answers `Malformed`.
fn apply_bytes(router: &mut Router, lsn: u64, bytes: &[u8]) -> ApplyResult {
    let mut result = ApplyResult::Malformed;
    router.apply_entry(lsn, bytes, &mut |_, r| result = r);
    result
}

fn precheck(router: &Router, cmd: &Command<'_>) -> Option<ApplyResult> {
    let mut bytes = vec![0; cmd.encoded_len()];
    cmd.encode(&mut bytes).unwrap();
    router.precheck(TAG_KV, &bytes)
}

fn snapshot_of(kv: &Router) -> Vec<u8> {
    let mut out = Vec::new();
    kv.snapshot(&mut out);
    out
}

fn assert_same_state(router: &Router, model: &Model) {
    let kv = router.kv();
    let got: Vec<_> = kv.iter().map(|(k, v, n)| (k.to_vec(), (v.to_vec(), n))).collect();
    let want: Vec<_> = model.map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(got, want);
    for key in KEYS {
        assert_eq!(kv.get(key).map(|(v, n)| (v.to_vec(), n)), model.map.get(key).cloned());
    }
    assert_eq!(kv.data_bytes(), model.data_bytes());
    let mut clients: Vec<_> =
        router.clients().map(|c| (c.client_id, (c.last_seq, c.last_lsn, c.result))).collect();
    clients.sort_by_key(|c| c.0);
    let want: Vec<_> = model.clients.iter().map(|(c, (s, l, r, _))| (*c, (*s, *l, *r))).collect();
    assert_eq!(clients, want);
}

/// Runs `steps` against the projection (with restarts), a twin projection without restarts, and
/// the model.
fn run(steps: &[Step]) {
    let mut kv = Router::new(LIMITS, Vec::new());
    let mut twin = Router::new(LIMITS, Vec::new());
    let mut model = Model::default();
    let mut lsn = 0u64;
    // Per client: the last seq issued and the op sent with it.
    let mut sent: BTreeMap<u64, (u64, OwnedOp)> = BTreeMap::new();
    let mut entry = vec![0u8; 256];
    for step in steps {
        match step {
            Step::Write { client, seq: seq_choice, kind, key, value, delta, version, gap } => {
                let seq = seq_choice;
                let key = KEYS[*key].to_vec();
                let expected = match version {
                    0 => 0,
                    1 => model.map.get(&key).map_or(0, |(_, v)| *v),
                    _ => v(lsn),
                };
                let fresh = match kind {
                    0 => OwnedOp::Set(key, VALUES[*value].to_vec()),
                    1 => OwnedOp::Del(key),
                    2 => OwnedOp::Incr(key, DELTAS[*delta]),
                    _ => OwnedOp::Cas(key, expected, VALUES[*value].to_vec()),
                };
                let last = sent.get(client).cloned();
                let (seq, op) = match (seq, last) {
                    (SeqChoice::Retry, Some((s, op))) => (s, op),
                    (SeqChoice::Older, Some((s, _))) if s > 0 => (s - 1, fresh),
                    (SeqChoice::Reuse, Some((s, _))) => (s, fresh),
                    (SeqChoice::Far(n), last) => {
                        let s = last.map_or(0, |l| l.0);
                        (s.saturating_add(AHEAD + 1).saturating_add(*n), fresh)
                    }
                    (_, Some((s, _))) => (s + 1, fresh),
                    (_, None) => (1, fresh),
                };
                if !matches!(seq_choice, SeqChoice::Far(_)) {
                    sent.insert(*client, (seq, op.clone()));
                }
                lsn += gap;
                let cmd = Command { client_id: *client, seq, op: op.borrow() };
                let want = model.apply(lsn, *client, seq, &op);
                // Half the entries go through the log encoding.
                let got = if lsn & 1 == 0 {
                    let n = cmd.encode(&mut entry).unwrap();
                    apply_bytes(&mut kv, lsn, &entry[..n])
                } else {
                    kv.apply_kv(lsn, &cmd)
                };
                assert_eq!(got, want, "lsn {lsn} {cmd:?}");
                assert_eq!(twin.apply_kv(lsn, &cmd), want);
            }
            Step::Garbage { bytes, gap } => {
                lsn += gap;
                let want = match Command::decode(bytes) {
                    Ok(c) => {
                        let op = match c.op {
                            Op::Set { key, value } => OwnedOp::Set(key.to_vec(), value.to_vec()),
                            Op::Del { key } => OwnedOp::Del(key.to_vec()),
                            Op::Incr { key, delta } => OwnedOp::Incr(key.to_vec(), delta),
                            Op::Cas { key, expected_version, value } => {
                                OwnedOp::Cas(key.to_vec(), expected_version, value.to_vec())
                            }
                        };
                        model.apply(lsn, c.client_id, c.seq, &op)
                    }
                    Err(_) => match CommandHeader::read(bytes) {
                        Some(h) if !crate::partition::batch::BatchReader::is_batch(bytes) => model.garbage(h.client_id, h.seq),
                        _ => ApplyResult::Malformed,
                    },
                };
                assert_eq!(apply_bytes(&mut kv, lsn, bytes), want);
                assert_eq!(apply_bytes(&mut twin, lsn, bytes), want);
            }
            Step::Restart => {
                let snap = snapshot_of(&kv);
                kv = Router::restore(&snap, LIMITS, Vec::new()).expect("a fresh snapshot restores");
                assert_eq!(snapshot_of(&kv), snap);
            }
        }
        assert_eq!(kv.applied_lsn(), lsn);
        assert_same_state(&kv, &model);
        assert!(kv.kv().len() <= LIMITS.keys_max);
        assert!(kv.kv().data_bytes() <= LIMITS.data_bytes_max);
    }
    // Replicas fed the same entries, one restarted from snapshots, hold byte-identical state.
    assert_eq!(snapshot_of(&kv), snapshot_of(&twin));
}

/// Issue 8: a write reusing a client's last `(client_id, seq)` with another command got the
/// earlier write's answer and was silently not done. It is refused by its own status.
#[test]
fn a_reused_sequence_with_another_command_is_refused_and_does_nothing() {
    let mut kv = Router::new(LIMITS, Vec::new());
    let first = Command { client_id: 3, seq: 1, op: Op::Set { key: b"a", value: b"1" } };
    assert_eq!(kv.apply_kv(1, &first), ApplyResult::Stored { version: v(1) });
    let other = Command { client_id: 3, seq: 1, op: Op::Set { key: b"b", value: b"2" } };
    let before = snapshot_of(&kv);
    assert_eq!(precheck(&kv, &other), Some(ApplyResult::SequenceReused { last_seq: 1 }));
    assert_eq!(kv.apply_kv(2, &other), ApplyResult::SequenceReused { last_seq: 1 });
    assert_eq!(ApplyResult::SequenceReused { last_seq: 1 }.status(), crate::wire::Status::SequenceReused);
    assert_eq!(kv.kv().get(b"b"), None);
    assert_eq!(kv.counters().sequence_reused, 1);
    // Nothing but the applied lsn moved: the client's record still holds the first write.
    assert_eq!(snapshot_of(&kv)[28..], before[28..]);
    // A true retry still gets the original answer.
    assert_eq!(precheck(&kv, &first), Some(ApplyResult::Stored { version: v(1) }));
    assert_eq!(kv.apply_kv(3, &first), ApplyResult::Stored { version: v(1) });
}

/// Issue 8: one write with a victim's client id and seq 2^64-1 made every later write of the victim
/// STALE. A seq beyond the window is refused and not recorded.
#[test]
fn a_sequence_far_ahead_does_not_lock_the_client_out() {
    let mut kv = Router::new(LIMITS, Vec::new());
    let set = |seq, value| Command { client_id: 4, seq, op: Op::Set { key: b"k", value } };
    assert_eq!(kv.apply_kv(1, &set(1, b"1")), ApplyResult::Stored { version: v(1) });
    assert_eq!(kv.apply_kv(2, &set(u64::MAX, b"evil")), ApplyResult::SequenceTooFar { last_seq: 1 });
    assert_eq!(kv.apply_kv(3, &set(2 + AHEAD, b"evil")), ApplyResult::SequenceTooFar { last_seq: 1 });
    assert_eq!(kv.kv().get(b"k"), Some((&b"1"[..], v(1))));
    assert_eq!(kv.apply_kv(4, &set(2, b"2")), ApplyResult::Stored { version: v(4) });
    assert_eq!(kv.apply_kv(5, &set(2 + AHEAD, b"3")), ApplyResult::Stored { version: v(5) });
    assert_eq!(kv.counters().sequence_too_far, 2);
    // A client not remembered starts where it likes (the load generator: thread and trial in the
    // high bits); its window counts from there.
    let mut kv = Router::new(KvLimits::small(), Vec::new());
    let base = (16_384 << 48) | (255 << 40);
    let loadgen = |seq| Command { client_id: 5, seq, op: Op::Del { key: b"k" } };
    assert_eq!(kv.apply_kv(1, &loadgen(base)), ApplyResult::Deleted { existed: false });
    assert_eq!(kv.apply_kv(2, &loadgen(base + 1000)), ApplyResult::Deleted { existed: false });
    assert_eq!(kv.apply_kv(3, &loadgen(u64::MAX)), ApplyResult::SequenceTooFar { last_seq: base + 1000 });
    let victim = Command { client_id: 6, seq: 1, op: Op::Del { key: b"k" } };
    kv.apply_kv(4, &victim);
    let evil = Command { client_id: 6, seq: u64::MAX, op: Op::Del { key: b"k" } };
    assert_eq!(kv.apply_kv(5, &evil), ApplyResult::SequenceTooFar { last_seq: 1 });
}

/// Applies the writes of `steps` (seq advancing on every other kind, so some are retries).
fn feed(kv: &mut Router, lsn: &mut u64, seqs: &mut [u64; 6], steps: &[Step]) -> Vec<ApplyResult> {
    let mut results = Vec::new();
    for s in steps {
        if let Step::Write { client, kind, key, value, delta, gap, .. } = s {
            *lsn += gap;
            seqs[*client as usize] += u64::from(*kind % 2);
            let op = match kind {
                0 => Op::Set { key: KEYS[*key], value: VALUES[*value] },
                1 => Op::Del { key: KEYS[*key] },
                2 => Op::Incr { key: KEYS[*key], delta: DELTAS[*delta] },
                _ => Op::Cas { key: KEYS[*key], expected_version: v(*lsn / 2), value: VALUES[*value] },
            };
            results.push(kv.apply_kv(*lsn, &Command { client_id: *client, seq: seqs[*client as usize], op }));
        }
    }
    results
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn projection_matches_the_model(steps in proptest::collection::vec(arb_step(), 1..120)) {
        run(&steps);
    }

    /// Snapshot at any point, restore, and both copies behave the same from then on.
    #[test]
    fn restored_projection_behaves_identically(
        before in proptest::collection::vec(arb_step(), 0..60),
        after in proptest::collection::vec(arb_step(), 0..60),
    ) {
        let mut kv = Router::new(LIMITS, Vec::new());
        let mut lsn = 0;
        let mut seqs = [0u64; 6];
        feed(&mut kv, &mut lsn, &mut seqs, &before);
        let snap = snapshot_of(&kv);
        let mut restored = Router::restore(&snap, LIMITS, Vec::new()).unwrap();
        let (mut lsn2, mut seqs2) = (lsn, seqs);
        let a = feed(&mut kv, &mut lsn, &mut seqs, &after);
        let b = feed(&mut restored, &mut lsn2, &mut seqs2, &after);
        prop_assert_eq!(a, b);
        prop_assert_eq!(snapshot_of(&kv), snapshot_of(&restored));
    }

    #[test]
    fn restore_of_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Router::restore(&bytes, LIMITS, Vec::new());
        // Garbage behind a valid header and checksum must not panic either.
        let mut sealed = Vec::from(snapshot::SNAPSHOT_MAGIC);
        sealed.extend_from_slice(&snapshot::SNAPSHOT_VERSION.to_le_bytes());
        sealed.extend_from_slice(&1000u64.to_le_bytes());
        sealed.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&sealed), &bytes);
        sealed.extend_from_slice(&crc.to_le_bytes());
        sealed.extend_from_slice(&bytes);
        let _ = Router::restore(&sealed, LIMITS, Vec::new());
    }
}

#[test]
fn retries_get_the_original_result_and_stale_seqs_are_refused() {
    let mut kv = Router::new(KvLimits::small(), Vec::new());
    let set = |seq, value| Command { client_id: 7, seq, op: Op::Set { key: b"a", value } };
    let anon = |value| Command { client_id: 0, seq: 0, op: Op::Set { key: b"a", value } };
    assert_eq!(kv.apply_kv(1, &set(1, b"x")), ApplyResult::Stored { version: v(1) });
    kv.apply_kv(2, &anon(b"other"));
    // The retry of (7, 1) is answered from the table and does not write again.
    assert_eq!(kv.apply_kv(3, &set(1, b"x")), ApplyResult::Stored { version: v(1) });
    assert_eq!(kv.kv().get(b"a"), Some((&b"other"[..], v(2))));
    assert_eq!(kv.apply_kv(4, &set(3, b"y")), ApplyResult::Stored { version: v(4) });
    assert_eq!(kv.apply_kv(5, &set(2, b"z")), ApplyResult::Stale { last_seq: 3 });
    assert_eq!(kv.kv().get(b"a"), Some((&b"y"[..], v(4))));
    // Error results are remembered too.
    let incr = Command { client_id: 7, seq: 4, op: Op::Incr { key: b"a", delta: 1 } };
    assert_eq!(kv.apply_kv(6, &incr), ApplyResult::NotInteger);
    kv.apply_kv(7, &anon(b"1"));
    assert_eq!(kv.apply_kv(8, &incr), ApplyResult::NotInteger);
    let c = kv.counters();
    assert_eq!((c.duplicates, c.stale), (2, 1));
}

#[test]
fn anonymous_writes_are_never_deduplicated() {
    let mut kv = Router::new(KvLimits::small(), Vec::new());
    let incr = Command { client_id: 0, seq: 0, op: Op::Incr { key: b"n", delta: 1 } };
    kv.apply_kv(1, &incr);
    assert_eq!(kv.apply_kv(2, &incr), ApplyResult::Incremented { value: 2, version: v(2) });
    assert_eq!(kv.clients().count(), 0);
}

#[test]
fn an_evicted_client_is_taken_for_a_new_one() {
    let limits = KvLimits { dedup_clients_max: 2, ..KvLimits::small() };
    let mut kv = Router::new(limits, Vec::new());
    let incr = |c, s| Command { client_id: c, seq: s, op: Op::Incr { key: b"n", delta: 1 } };
    kv.apply_kv(1, &incr(1, 1));
    kv.apply_kv(2, &incr(2, 1));
    // A retry does not count as activity: it changes nothing.
    assert_eq!(kv.apply_kv(3, &incr(1, 1)), ApplyResult::Incremented { value: 1, version: v(1) });
    kv.apply_kv(4, &incr(1, 2)); // client 1 is now the most recently active.
    kv.apply_kv(5, &incr(3, 1)); // evicts client 2 (least recently active).
    assert_eq!(kv.dedup_evictions(), 1);
    assert_eq!(kv.apply_kv(6, &incr(1, 2)), ApplyResult::Incremented { value: 3, version: v(4) });
    // Client 2's retry is taken for a new write and executed again.
    assert_eq!(kv.apply_kv(7, &incr(2, 1)), ApplyResult::Incremented { value: 5, version: v(7) });
}

#[test]
fn garbage_entries_are_malformed_and_advance_the_lsn() {
    let mut kv = Router::new(KvLimits::small(), Vec::new());
    assert_eq!(apply_bytes(&mut kv, 4, b"\xffjunk"), ApplyResult::Malformed);
    assert_eq!(kv.applied_lsn(), 4);
    assert_eq!(kv.counters().malformed, 1);
    let set = Command { client_id: 1, seq: 1, op: Op::Set { key: b"k", value: b"v" } };
    assert_eq!(kv.apply_kv(5, &set), ApplyResult::Stored { version: v(5) });
    // A tag no projection has is malformed too, and recorded nowhere.
    let mut w = crate::partition::batch::BatchWriter::new(Default::default());
    let mut bytes = vec![0; set.encoded_len()];
    set.encode(&mut bytes).unwrap();
    w.push(99, bytes.len(), |b| b.copy_from_slice(&bytes));
    let batch = w.seal(0).to_vec();
    assert_eq!(apply_bytes(&mut kv, 6, &batch), ApplyResult::Malformed);
    assert_eq!(kv.clients().count(), 1);
}

#[test]
#[should_panic(expected = "applied after")]
fn lsns_must_increase() {
    let mut kv = Router::new(KvLimits::small(), Vec::new());
    let del = Command { client_id: 0, seq: 0, op: Op::Del { key: b"a" } };
    kv.apply_kv(2, &del);
    kv.apply_kv(2, &del);
}

/// The digest the router keeps is the one the KV projection kept before exactly-once moved to the
/// router (`kv::Command::digest`, pinned there), so client records in older snapshots still match.
#[test]
fn the_digest_is_the_kv_command_digest() {
    let cmd = Command { client_id: 0x0102, seq: 5, op: Op::Set { key: b"ab", value: b"xyz" } };
    let mut bytes = vec![0; cmd.encoded_len()];
    cmd.encode(&mut bytes).unwrap();
    assert_eq!(xxhash_rust::xxh3::xxh3_64(&bytes), cmd.digest());
    let h = CommandHeader::read(&bytes).unwrap();
    assert_eq!((h.kind, h.client_id, h.seq), (crate::wire::opcode::SET, 0x0102, 5));
}
