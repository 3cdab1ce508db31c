//! Tests of key expiry: examples of Redis's semantics, and a model of the KV projection with time
//! steps (visibility, replay, snapshot round trips with expiries, reclaim).

use super::super::command::{expire_flags as ef, set_flags as sf, Command, Op, Ttl};
use super::super::projection::KvProjection;
use super::super::KvLimits;
use crate::projection::{Applied, ApplyResult, LogPos};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn anon(op: Op<'_>) -> Command<'_> {
    Command { client_id: 0, seq: 0, op }
}

fn setx<'a>(key: &'a [u8], value: &'a [u8], flags: u8, ttl: Ttl) -> Command<'a> {
    anon(Op::SetX { key, value, flags, ttl })
}

#[test]
fn a_key_expires_at_its_deadline_and_is_reclaimed() {
    let mut kv = KvProjection::new(KvLimits::small());
    let r = kv.apply_at(1, 1000, &setx(b"k", b"v", 0, Ttl::RelativeMs(100)));
    assert_eq!(r, ApplyResult::SetX { stored: true, version: 1 << 16, existed: false });
    assert_eq!(kv.get_at(b"k", 1100), Some((&b"v"[..], 1 << 16)), "live at its deadline");
    assert_eq!(kv.ttl_ms(b"k", 1040), Some(60));
    assert_eq!(kv.get_at(b"k", 1101), None, "gone past it");
    assert_eq!(kv.ttl_ms(b"k", 1101), None);
    assert_eq!((kv.len(), kv.expiring()), (1, 1), "not reclaimed before an entry past it");
    assert_eq!(kv.apply_at(2, 1200, &anon(Op::ExpireDue)), ApplyResult::Reclaimed { keys: 1 });
    assert_eq!((kv.len(), kv.expiring(), kv.data_bytes()), (0, 0, 0));
}

/// For watchers: every key expiry deletes is named, with the command whose apply deleted it
/// (reclaim before a write, the write's own key found expired, EXPIRE into the past,
/// EXPIRE_DUE); nothing is kept while not recording.
#[test]
fn keys_deleted_by_expiry_are_named_while_recording() {
    let mut kv = KvProjection::new(KvLimits::small());
    let mut got = Vec::new();
    kv.apply_at(1, 1000, &setx(b"a", b"1", 0, Ttl::RelativeMs(10)));
    kv.apply_at(2, 1000, &setx(b"b", b"2", 0, Ttl::RelativeMs(10)));
    kv.apply_at(3, 2000, &anon(Op::ExpireDue));
    kv.take_expired(&mut got);
    assert!(got.is_empty(), "nothing kept while not recording");
    kv.record_expired(true);
    kv.apply_at(4, 2000, &setx(b"c", b"3", 0, Ttl::RelativeMs(10)));
    kv.apply_at(5, 2000, &setx(b"d", b"4", 0, Ttl::RelativeMs(10)));
    kv.apply_at(6, 2000, &setx(b"e", b"5", 0, Ttl::RelativeMs(1_000)));
    let at = Applied { pos: LogPos { lsn: 7, index: 3 }, time_ns: 3_000_000_000, ..Default::default() };
    kv.apply_op(at, &Op::Set { key: b"x", value: b"y" });
    kv.apply_at(8, 3000, &anon(Op::Expire { key: b"e", flags: 0, ttl: Ttl::AbsoluteMs(1) }));
    kv.take_expired(&mut got);
    let named: Vec<(u16, &[u8])> = got.iter().map(|(i, k)| (*i, &k[..])).collect();
    assert_eq!(named, [(3, &b"c"[..]), (3, &b"d"[..]), (0, &b"e"[..])]);
    kv.take_expired(&mut got);
    assert_eq!(got.len(), 3, "taken once");
}

#[test]
fn set_options_follow_redis() {
    let mut kv = KvProjection::new(KvLimits::small());
    let t = 10_000;
    // NX on an absent key stores; on a present one not.
    assert!(matches!(
        kv.apply_at(1, t, &setx(b"k", b"1", sf::NX, Ttl::Clear)),
        ApplyResult::SetX { stored: true, .. }
    ));
    assert!(matches!(
        kv.apply_at(2, t, &setx(b"k", b"2", sf::NX, Ttl::Clear)),
        ApplyResult::SetX { stored: false, existed: true, .. }
    ));
    // XX on an absent key does nothing.
    assert!(matches!(
        kv.apply_at(3, t, &setx(b"x", b"2", sf::XX, Ttl::Clear)),
        ApplyResult::SetX { stored: false, existed: false, version: 0 }
    ));
    assert_eq!(kv.get_at(b"x", t), None);
    // GET keeps the old block for the answer.
    kv.apply_at(4, t, &setx(b"k", b"3", sf::GET, Ttl::RelativeMs(50)));
    let old = kv.returned(LogPos::single(4).version()).expect("kept");
    assert_eq!(KvProjection::value_of(old), b"1");
    // KEEPTTL keeps the deadline; a plain SET drops it; INCR keeps it.
    kv.apply_at(5, t + 10, &setx(b"k", b"4", 0, Ttl::Keep));
    assert_eq!(kv.ttl_ms(b"k", t + 10), Some(40));
    kv.apply_at(6, t + 10, &setx(b"k", b"5", 0, Ttl::RelativeMs(1000)));
    kv.apply_at(7, t + 20, &anon(Op::Incr { key: b"k", delta: 1 }));
    assert_eq!(kv.ttl_ms(b"k", t + 20), Some(990));
    assert_eq!(kv.get_at(b"k", t + 20), Some((&b"6"[..], LogPos::single(7).version())));
    kv.apply_at(8, t + 20, &anon(Op::Set { key: b"k", value: b"7" }));
    assert_eq!(kv.ttl_ms(b"k", t + 20), Some(-1));
    // An absolute time in the past deletes the key (and stores nothing).
    kv.apply_at(9, t + 30, &setx(b"k", b"8", 0, Ttl::AbsoluteMs(5)));
    assert_eq!((kv.get_at(b"k", t + 30), kv.len()), (None, 0));
    // NX on an expired key stores: expired keys are absent to writes.
    kv.apply_at(10, t + 40, &setx(b"e", b"1", 0, Ttl::RelativeMs(1)));
    assert!(matches!(
        kv.apply_at(11, t + 50, &setx(b"e", b"2", sf::NX, Ttl::Clear)),
        ApplyResult::SetX { stored: true, existed: false, .. }
    ));
    assert_eq!(kv.expiring(), 0);
}

#[test]
fn expire_conditions_and_persist_follow_redis() {
    let mut kv = KvProjection::new(KvLimits::small());
    let t = 1_000_000;
    let expire = |flags, ms| anon(Op::Expire { key: b"k", flags, ttl: Ttl::RelativeMs(ms) });
    assert_eq!(kv.apply_at(1, t, &expire(0, 100)), ApplyResult::Changed { changed: false }, "absent");
    kv.apply_at(2, t, &anon(Op::Set { key: b"k", value: b"v" }));
    assert_eq!(kv.apply_at(3, t, &expire(ef::XX, 100)), ApplyResult::Changed { changed: false });
    assert_eq!(
        kv.apply_at(4, t, &expire(ef::GT, 100)),
        ApplyResult::Changed { changed: false },
        "none is infinite"
    );
    assert_eq!(kv.apply_at(5, t, &expire(ef::LT, 100)), ApplyResult::Changed { changed: true });
    assert_eq!(kv.apply_at(6, t, &expire(ef::NX, 200)), ApplyResult::Changed { changed: false });
    assert_eq!(kv.apply_at(7, t, &expire(ef::GT, 50)), ApplyResult::Changed { changed: false });
    assert_eq!(kv.apply_at(8, t, &expire(ef::GT | ef::XX, 300)), ApplyResult::Changed { changed: true });
    assert_eq!(kv.ttl_ms(b"k", t), Some(300));
    assert_eq!(kv.apply_at(9, t, &anon(Op::Persist { key: b"k" })), ApplyResult::Changed { changed: true });
    assert_eq!(kv.apply_at(10, t, &anon(Op::Persist { key: b"k" })), ApplyResult::Changed { changed: false });
    assert_eq!((kv.ttl_ms(b"k", t), kv.expiring()), (Some(-1), 0));
    // A deadline not after the entry's time deletes the key, and counts as set.
    assert_eq!(kv.apply_at(11, t, &expire(0, 0)), ApplyResult::Changed { changed: true });
    assert_eq!(kv.len(), 0);
}

#[test]
fn writes_reclaim_due_keys_a_bounded_number_at_a_time() {
    let mut kv = KvProjection::new(KvLimits::small());
    for i in 0..20u8 {
        kv.apply_at(1 + u64::from(i), 100, &setx(&[i], b"v", 0, Ttl::RelativeMs(10)));
    }
    assert_eq!(kv.len(), 20);
    kv.apply_at(100, 200, &anon(Op::Set { key: b"other", value: b"v" }));
    assert_eq!(kv.len(), 21 - super::RECLAIM_PER_COMMAND, "at most RECLAIM_PER_COMMAND per command");
    kv.apply_at(101, 200, &anon(Op::ExpireDue));
    assert_eq!((kv.len(), kv.expiring(), kv.next_expiry_ms()), (1, 0, None));
}

/// One step of the model test.
#[derive(Clone, Debug)]
enum Step {
    Set(u8, u8),
    SetX(u8, u8, u8, u8, i16),
    Expire(u8, u8, bool, i16),
    Persist(u8),
    Del(u8),
    Incr(u8, i8),
    Advance(u8),
    Tick,
    /// Continue from the projection's own snapshot, loaded.
    Reload,
}

fn step() -> impl Strategy<Value = Step> {
    let key = 0u8..6;
    prop_oneof![
        3 => (key.clone(), any::<u8>()).prop_map(|(k, v)| Step::Set(k, v % 3)),
        4 => (key.clone(), any::<u8>(), 0u8..8, 0u8..4, -50i16..200).prop_map(|(k, v, f, t, ms)| Step::SetX(k, v % 3, f, t, ms)),
        3 => (key.clone(), 0u8..16, any::<bool>(), -50i16..200).prop_map(|(k, f, abs, ms)| Step::Expire(k, f, abs, ms)),
        1 => key.clone().prop_map(Step::Persist),
        1 => key.clone().prop_map(Step::Del),
        1 => (key, any::<i8>()).prop_map(|(k, d)| Step::Incr(k, d)),
        3 => (0u8..120).prop_map(Step::Advance),
        1 => Just(Step::Tick),
        1 => Just(Step::Reload),
    ]
}

/// The model: key -> (value, version, expiry), with Redis's rules written plainly.
#[derive(Default)]
struct Model {
    keys: BTreeMap<Vec<u8>, (Vec<u8>, u64, Option<u64>)>,
}

impl Model {
    fn visible(&self, k: &[u8], now: u64) -> Option<&(Vec<u8>, u64, Option<u64>)> {
        self.keys.get(k).filter(|(_, _, e)| e.is_none_or(|e| now <= e))
    }

    fn drop_expired(&mut self, k: &[u8], now: u64) {
        if self.visible(k, now).is_none() {
            self.keys.remove(k);
        }
    }

    /// The deadline of `ttl` at `now` (None: Keep), saturating at 0.
    fn deadline(ttl: Ttl, now: u64) -> Option<Option<u64>> {
        match ttl {
            Ttl::Clear => Some(None),
            Ttl::Keep => None,
            Ttl::RelativeMs(ms) => Some(Some((now as i64 + ms).max(0) as u64)),
            Ttl::AbsoluteMs(ms) => Some(Some(ms.max(0) as u64)),
        }
    }

    fn apply(&mut self, op: &Op<'_>, version: u64, now: u64) {
        let k = op.key().to_vec();
        self.drop_expired(&k, now);
        match *op {
            Op::Set { value, .. } => {
                self.keys.insert(k, (value.to_vec(), version, None));
            }
            Op::Del { .. } => {
                self.keys.remove(&k);
            }
            Op::Incr { delta, .. } => {
                let (n, e) = match self.keys.get(&k) {
                    None => (0, None),
                    Some((v, _, e)) => {
                        match std::str::from_utf8(v).ok().and_then(|s| s.parse::<i64>().ok()) {
                            Some(n) => (n, *e),
                            None => return,
                        }
                    }
                };
                if let Some(n) = n.checked_add(i64::from(delta as i8)) {
                    self.keys.insert(k, (n.to_string().into_bytes(), version, e));
                }
            }
            Op::SetX { value, flags, ttl, .. } => {
                let existed = self.keys.get(&k).cloned();
                if (flags & sf::NX != 0 && existed.is_some()) || (flags & sf::XX != 0 && existed.is_none()) {
                    return;
                }
                let expiry = match Self::deadline(ttl, now) {
                    None => existed.and_then(|e| e.2),
                    Some(Some(d)) if d <= now => {
                        self.keys.remove(&k);
                        return;
                    }
                    Some(e) => e,
                };
                self.keys.insert(k, (value.to_vec(), version, expiry));
            }
            Op::Expire { flags, ttl, .. } => {
                let Some(cur) = self.keys.get(&k).map(|e| e.2) else { return };
                let new = match ttl {
                    Ttl::RelativeMs(ms) => now as i64 + ms,
                    Ttl::AbsoluteMs(ms) => ms,
                    _ => unreachable!(),
                };
                let holds = if flags & ef::NX != 0 {
                    cur.is_none()
                } else if flags & ef::XX != 0 && cur.is_none() {
                    false
                } else if flags & ef::GT != 0 {
                    cur.is_some_and(|c| new > c as i64)
                } else if flags & ef::LT != 0 {
                    cur.is_none_or(|c| new < c as i64)
                } else {
                    true
                };
                if !holds {
                    return;
                }
                if new <= now as i64 {
                    self.keys.remove(&k);
                } else {
                    self.keys.get_mut(&k).expect("present").2 = Some(new as u64);
                }
            }
            Op::Persist { .. } => {
                if let Some(e) = self.keys.get_mut(&k) {
                    e.2 = None;
                }
            }
            Op::Cas { .. } | Op::ExpireDue | Op::MSet { .. } => {}
            Op::Cad { expected_version, .. } => {
                if self.keys.get(&k).is_some_and(|(_, v, _)| *v == expected_version) {
                    self.keys.remove(&k);
                }
            }
        }
    }
}

fn section(kv: &KvProjection) -> Vec<u8> {
    let mut out = Vec::new();
    kv.write_section(&mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The projection agrees with the model at every step (GET and TTL at the entry's time and
    /// after), a replay of the same entries gives the same snapshot bytes, a projection loaded
    /// from its own snapshot goes on identically, and the index always matches the keys.
    #[test]
    fn the_projection_follows_the_model_with_time(steps in proptest::collection::vec(step(), 1..80)) {
        let limits = KvLimits::small();
        let mut kv = KvProjection::new(limits);
        let mut model = Model::default();
        let mut entries: Vec<(Applied, Vec<u8>)> = Vec::new();
        let mut now = 1_000u64;
        let mut lsn = 0u64;
        for s in &steps {
            let op = match *s {
                Step::Advance(dt) => {
                    now += u64::from(dt);
                    continue;
                }
                Step::Reload => {
                    let bytes = section(&kv);
                    let loaded = KvProjection::load_section(&bytes, lsn.max(1), limits).unwrap();
                    prop_assert_eq!(section(&loaded), bytes.clone());
                    prop_assert_eq!(loaded.now_ms(), kv.now_ms(), "the clock is in the section");
                    kv = loaded;
                    continue;
                }
                Step::Set(k, v) => Op::Set { key: std::slice::from_ref(&b"abcdef"[usize::from(k)]), value: &b"xyz"[..usize::from(v)] },
                Step::SetX(k, v, f, t, ms) => Op::SetX {
                    key: std::slice::from_ref(&b"abcdef"[usize::from(k)]),
                    value: &b"xyz"[..usize::from(v)],
                    flags: f & sf::ALL,
                    ttl: Ttl::from_parts(t, if t < 2 { 0 } else if t == 3 { now as i64 + i64::from(ms) } else { i64::from(ms) }).unwrap(),
                },
                Step::Expire(k, f, abs, ms) => {
                    let flags = [0, ef::NX, ef::XX, ef::GT, ef::LT, ef::XX | ef::GT, ef::XX | ef::LT][usize::from(f) % 7];
                    let ttl = if abs { Ttl::AbsoluteMs(now as i64 + i64::from(ms)) } else { Ttl::RelativeMs(i64::from(ms)) };
                    Op::Expire { key: std::slice::from_ref(&b"abcdef"[usize::from(k)]), flags, ttl }
                }
                Step::Persist(k) => Op::Persist { key: std::slice::from_ref(&b"abcdef"[usize::from(k)]) },
                Step::Del(k) => Op::Del { key: std::slice::from_ref(&b"abcdef"[usize::from(k)]) },
                Step::Incr(k, d) => Op::Incr { key: std::slice::from_ref(&b"abcdef"[usize::from(k)]), delta: i64::from(d) },
                Step::Tick => Op::ExpireDue,
            };
            lsn += 1;
            let at = Applied { pos: LogPos::single(lsn), time_ns: now * 1_000_000, ..Default::default() };
            let cmd = anon(op);
            let mut bytes = vec![0u8; cmd.encoded_len()];
            cmd.encode(&mut bytes).unwrap();
            entries.push((at, bytes));
            kv.apply_op(at, &op);
            model.apply(&op, at.pos.version(), now);
            prop_assert_eq!(kv.expiring(), kv.map.iter_blocks().filter(|b| super::super::map::expiry_of(b).is_some()).count());
            for later in [now, now + 1, now + 50, now + 500] {
                for k in b"abcdef".chunks(1) {
                    let want = model.visible(k, later).map(|(v, n, _)| (v.clone(), *n));
                    let got = kv.get_at(k, later).map(|(v, n)| (v.to_vec(), n));
                    prop_assert_eq!(got, want, "GET {:?} at {}", k, later);
                    let want_ttl = model.visible(k, later).map(|(_, _, e)| e.map_or(-1, |e| (e - later) as i64));
                    prop_assert_eq!(kv.ttl_ms(k, later), want_ttl, "TTL {:?} at {}", k, later);
                }
            }
        }
        // A replay of the same entries from empty writes the same snapshot.
        let mut replay = KvProjection::new(limits);
        for (at, bytes) in &entries {
            let cmd = Command::decode(bytes).unwrap();
            replay.apply_op(*at, &cmd.op);
        }
        // (A reload keeps the layout, slot order: the same bytes with or without one.)
        prop_assert_eq!(section(&replay), section(&kv));
    }
}
