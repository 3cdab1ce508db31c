//! Tests of per-principal quotas in the KV projection (`projection::owner`): what counts against
//! whom, that only growth past a quota is refused and nothing of a refused write changes, that
//! keys move between owners, that deletes and expiry give bytes back, and that the owners and
//! their usage survive a snapshot (and a snapshot from before quotas loads as anonymous).

use super::super::command::{Op, Ttl};
use super::super::pairs::{Pairs, PairsWriter};
use super::super::projection::KvProjection;
use super::super::KvLimits;
use crate::projection::owner::ANONYMOUS_OWNER;
use crate::projection::{Applied, ApplyResult, LogPos, Owner, Quota, Usage};
use proptest::prelude::*;

/// Principal `key_id` under a quota of `keys_max` keys and `bytes_max` bytes.
fn under(key_id: u32, keys_max: u64, bytes_max: u64) -> Owner {
    Owner { key_id, quota: Some(Quota { keys_max, bytes_max }) }
}

/// Applies `op` alone in entry `lsn` at `time_ms`, written by `owner`.
fn apply(kv: &mut KvProjection, lsn: u64, time_ms: u64, owner: Owner, op: Op<'_>) -> ApplyResult {
    let at = Applied { pos: LogPos::single(lsn), time_ns: time_ms * 1_000_000, owner, ..Default::default() };
    kv.apply_op(at, &op)
}

fn set<'a>(key: &'a [u8], value: &'a [u8]) -> Op<'a> {
    Op::Set { key, value }
}

fn usage(keys: u64, bytes: u64) -> Usage {
    Usage { keys, bytes }
}

/// Every owner's usage, recomputed from the keys as stored: what `usage` must always equal.
fn recount(kv: &KvProjection) -> Vec<(u32, Usage)> {
    let mut out: Vec<(u32, Usage)> = Vec::new();
    for block in kv.map.iter_blocks() {
        let owner = super::super::map::owner_of(block);
        let bytes =
            (super::super::map::key_of(block).len() + super::super::map::value_of(block).len()) as u64;
        match out.iter_mut().find(|(o, _)| *o == owner) {
            Some((_, u)) => {
                u.keys += 1;
                u.bytes += bytes;
            }
            None => out.push((owner, usage(1, bytes))),
        }
    }
    out.sort_by_key(|(o, _)| *o);
    out
}

fn counted(kv: &KvProjection) -> Vec<(u32, Usage)> {
    kv.usage.iter().collect()
}

#[test]
fn a_key_quota_refuses_the_next_new_key_and_nothing_else() {
    let mut kv = KvProjection::new(KvLimits::small());
    let a = under(7, 2, 1 << 20);
    assert!(matches!(apply(&mut kv, 1, 0, a, set(b"k1", b"v")), ApplyResult::Stored { .. }));
    assert!(matches!(apply(&mut kv, 2, 0, a, set(b"k2", b"v")), ApplyResult::Stored { .. }));
    assert_eq!(apply(&mut kv, 3, 0, a, set(b"k3", b"v")), ApplyResult::QuotaExceeded);
    assert_eq!(kv.get(b"k3"), None, "nothing of a refused write is stored");
    assert_eq!(kv.usage_of(7), usage(2, 6));
    assert!(
        matches!(apply(&mut kv, 4, 0, a, set(b"k1", b"longer")), ApplyResult::Stored { .. }),
        "an overwrite adds no key"
    );
    assert!(matches!(apply(&mut kv, 5, 0, a, Op::Incr { key: b"k2", delta: 1 }), ApplyResult::NotInteger));
    // Others are not limited by it: anonymous, and another principal without a quota.
    assert!(matches!(apply(&mut kv, 6, 0, Owner::ANONYMOUS, set(b"k3", b"v")), ApplyResult::Stored { .. }));
    assert!(matches!(
        apply(&mut kv, 7, 0, Owner { key_id: 8, quota: None }, set(b"k4", b"v")),
        ApplyResult::Stored { .. }
    ));
    // A delete gives the key back.
    assert_eq!(apply(&mut kv, 8, 0, a, Op::Del { key: b"k1" }), ApplyResult::Deleted { existed: true });
    assert_eq!(kv.usage_of(7), usage(1, 3));
    assert!(matches!(
        apply(&mut kv, 9, 0, a, Op::Incr { key: b"n", delta: 5 }),
        ApplyResult::Incremented { .. }
    ));
    assert_eq!(apply(&mut kv, 10, 0, a, Op::Incr { key: b"m", delta: 5 }), ApplyResult::QuotaExceeded);
    assert_eq!(counted(&kv), recount(&kv));
}

#[test]
fn a_byte_quota_counts_keys_and_values_and_refuses_only_growth() {
    let mut kv = KvProjection::new(KvLimits::small());
    let a = under(3, u64::MAX, 10);
    assert!(matches!(apply(&mut kv, 1, 0, a, set(b"ab", b"12345678")), ApplyResult::Stored { .. }));
    assert_eq!(apply(&mut kv, 2, 0, a, set(b"ab", b"123456789")), ApplyResult::QuotaExceeded, "11 > 10");
    assert_eq!(
        apply(&mut kv, 3, 0, a, set(b"c", b"")),
        ApplyResult::QuotaExceeded,
        "a new key of 1 byte: 11"
    );
    assert_eq!(kv.get(b"ab").map(|(v, _)| v), Some(&b"12345678"[..]));
    // The quota lowered below what it holds (a later entry stamped with a smaller one): it may
    // still overwrite with a value no longer, and shrink, but not grow.
    let lowered = under(3, u64::MAX, 4);
    assert!(matches!(apply(&mut kv, 4, 0, lowered, set(b"ab", b"87654321")), ApplyResult::Stored { .. }));
    assert!(matches!(apply(&mut kv, 5, 0, lowered, set(b"ab", b"1234")), ApplyResult::Stored { .. }));
    assert_eq!(apply(&mut kv, 6, 0, lowered, set(b"ab", b"12345")), ApplyResult::QuotaExceeded);
    assert_eq!(kv.usage_of(3), usage(1, 6));
    let cas = Op::Cas { key: b"ab", expected_version: LogPos::single(5).version(), value: b"1" };
    assert!(matches!(apply(&mut kv, 7, 0, lowered, cas), ApplyResult::Stored { .. }));
    assert_eq!(kv.usage_of(3), usage(1, 3));
}

#[test]
fn an_overwrite_by_another_principal_moves_the_key_to_it() {
    let mut kv = KvProjection::new(KvLimits::small());
    let (a, b) = (under(1, 1, 100), under(2, 1, 100));
    assert!(matches!(apply(&mut kv, 1, 0, a, set(b"k", b"aaaa")), ApplyResult::Stored { .. }));
    assert!(matches!(apply(&mut kv, 2, 0, b, set(b"j", b"b")), ApplyResult::Stored { .. }));
    assert_eq!(
        apply(&mut kv, 3, 0, b, set(b"k", b"b")),
        ApplyResult::QuotaExceeded,
        "k would be b's second key"
    );
    assert_eq!(apply(&mut kv, 4, 0, b, Op::Del { key: b"j" }), ApplyResult::Deleted { existed: true });
    assert!(matches!(apply(&mut kv, 5, 0, b, set(b"k", b"bb")), ApplyResult::Stored { .. }));
    assert_eq!((kv.usage_of(1), kv.usage_of(2)), (usage(0, 0), usage(1, 3)));
    assert!(
        matches!(apply(&mut kv, 6, 0, a, set(b"x", b"a")), ApplyResult::Stored { .. }),
        "a's key is free again"
    );
    assert_eq!(counted(&kv), recount(&kv));
    assert!(kv.usage.iter().all(|(_, u)| u.keys > 0), "owners holding nothing are not kept");
}

#[test]
fn an_mset_past_the_quota_stores_none_of_its_pairs() {
    let mut kv = KvProjection::new(KvLimits::small());
    let a = under(5, 3, 1 << 20);
    let body = |pairs: &[(&[u8], &[u8])]| {
        let mut out = Vec::new();
        let mut w = PairsWriter::begin(&mut out);
        pairs.iter().for_each(|(k, v)| assert!(w.push(&mut out, k, v)));
        out
    };
    let two = body(&[(b"a", b"1"), (b"b", b"2")]);
    let op = Op::MSet { pairs: Pairs::parse(&two).unwrap() };
    assert!(matches!(apply(&mut kv, 1, 0, a, op), ApplyResult::Stored { .. }));
    let three = body(&[(b"a", b"9"), (b"c", b"3"), (b"d", b"4")]);
    let op = Op::MSet { pairs: Pairs::parse(&three).unwrap() };
    assert_eq!(apply(&mut kv, 2, 0, a, op), ApplyResult::QuotaExceeded, "4 keys > 3");
    assert_eq!((kv.get(b"a").map(|(v, _)| v), kv.get(b"c")), (Some(&b"1"[..]), None));
    let fits = body(&[(b"a", b"9"), (b"c", b"3")]);
    let op = Op::MSet { pairs: Pairs::parse(&fits).unwrap() };
    assert!(matches!(apply(&mut kv, 3, 0, a, op), ApplyResult::Stored { .. }));
    assert_eq!(kv.usage_of(5), usage(3, 6));
}

#[test]
fn expiry_gives_the_bytes_back_to_the_owner() {
    let mut kv = KvProjection::new(KvLimits::small());
    let a = under(4, 1, 100);
    let ttl = Op::SetX { key: b"k", value: b"v", flags: 0, ttl: Ttl::RelativeMs(10) };
    assert!(matches!(apply(&mut kv, 1, 1000, a, ttl), ApplyResult::SetX { stored: true, .. }));
    assert_eq!(apply(&mut kv, 2, 1005, a, set(b"j", b"v")), ApplyResult::QuotaExceeded);
    assert_eq!(apply(&mut kv, 3, 2000, Owner::ANONYMOUS, Op::ExpireDue), ApplyResult::Reclaimed { keys: 1 });
    assert_eq!(kv.usage_of(4), usage(0, 0));
    assert!(matches!(apply(&mut kv, 4, 2000, a, set(b"j", b"v")), ApplyResult::Stored { .. }));
    assert_eq!(counted(&kv), recount(&kv));
}

#[test]
fn owners_and_usage_survive_a_snapshot_and_old_sections_load_as_anonymous() {
    let mut kv = KvProjection::new(KvLimits::small());
    apply(&mut kv, 1, 1000, under(9, 10, 100), set(b"a", b"1"));
    let ttl = Op::SetX { key: b"b", value: b"22", flags: 0, ttl: Ttl::RelativeMs(60_000) };
    apply(&mut kv, 2, 1000, Owner { key_id: 70000, quota: None }, ttl);
    apply(&mut kv, 3, 1000, Owner::ANONYMOUS, set(b"c", b"333"));
    let mut section = Vec::new();
    kv.write_section(&mut section);
    let loaded = KvProjection::load_section(&section, 3, KvLimits::small()).expect("loads");
    assert_eq!(counted(&loaded), counted(&kv));
    assert_eq!(counted(&loaded), [(ANONYMOUS_OWNER, usage(1, 4)), (9, usage(1, 2)), (70000, usage(1, 3))]);
    assert_eq!(loaded.ttl_ms(b"b", 1000), Some(60_000));
    let mut again = Vec::new();
    loaded.write_section(&mut again);
    assert_eq!(again, section, "the same bytes again");
    // A format 2 section (before quotas): bit 62 of the count clear, no owner fields.
    let mut old = KvProjection::new(KvLimits::small());
    apply(&mut old, 1, 1000, Owner::ANONYMOUS, set(b"a", b"1"));
    let mut v2 = Vec::new();
    old.write_section(&mut v2);
    v2[7] &= !0x40;
    let loaded = KvProjection::load_section(&v2, 1, KvLimits::small()).expect("format 2 loads");
    assert_eq!(counted(&loaded), [(ANONYMOUS_OWNER, usage(1, 2))]);
    // An owner marked but zero is refused, not read as anonymous.
    let mut bad = Vec::new();
    kv.write_section(&mut bad);
    let first_owner = 16 + 2 + 1 + 4 + 1 + 8; // after a's key_len, key, value_len, value, version
    bad[first_owner..first_owner + 4].copy_from_slice(&0u32.to_le_bytes());
    assert!(KvProjection::load_section(&bad, 3, KvLimits::small()).is_err());
}

#[derive(Clone, Debug)]
enum Step {
    Set(u8, u8, u8),
    Del(u8, u8),
    Expiring(u8, u8, u8),
    Tick,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..3, 0u8..12, 0u8..9).prop_map(|(o, k, v)| Step::Set(o, k, v)),
        2 => (0u8..3, 0u8..12).prop_map(|(o, k)| Step::Del(o, k)),
        1 => (0u8..3, 0u8..12, 0u8..9).prop_map(|(o, k, v)| Step::Expiring(o, k, v)),
        1 => Just(Step::Tick),
    ]
}

proptest! {
    /// Whatever the writes, deletes and expiries of three owners under quotas: the usage kept is
    /// the usage recounted from the keys, no write takes an owner past its quota, and a snapshot
    /// loads with the same usage.
    #[test]
    fn usage_is_always_the_recount_and_never_grows_past_a_quota(steps in proptest::collection::vec(step(), 1..120)) {
        let owners = [under(1, 3, 1000), under(2, 100, 20), Owner::ANONYMOUS];
        let mut kv = KvProjection::new(KvLimits::small());
        let mut now = 1000;
        for (n, s) in steps.iter().enumerate() {
            let lsn = n as u64 + 1;
            let (owner, op) = match *s {
                Step::Set(o, k, v) => (owners[usize::from(o)], Op::Set { key: &[b'k', k][..], value: &[b'v'; 8][..usize::from(v)] }),
                Step::Del(o, k) => (owners[usize::from(o)], Op::Del { key: &[b'k', k][..] }),
                Step::Expiring(o, k, v) => (owners[usize::from(o)], Op::SetX { key: &[b'k', k][..], value: &[b'v'; 8][..usize::from(v)], flags: 0, ttl: Ttl::RelativeMs(15) }),
                Step::Tick => {
                    now += 10;
                    (Owner::ANONYMOUS, Op::ExpireDue)
                }
            };
            apply(&mut kv, lsn, now, owner, op);
            prop_assert_eq!(counted(&kv), recount(&kv));
            for o in &owners {
                if let Some(q) = o.quota {
                    prop_assert!(q.allows(kv.usage_of(o.key_id)), "owner {} past its quota", o.key_id);
                }
            }
        }
        let mut section = Vec::new();
        kv.write_section(&mut section);
        let loaded = KvProjection::load_section(&section, steps.len() as u64, KvLimits::small()).unwrap();
        prop_assert_eq!(counted(&loaded), counted(&kv));
    }
}
