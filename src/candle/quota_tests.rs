//! Quotas in the candle store (`projection::owner`): a candle counts as one key of its slot's and
//! overflow frames' bytes for the principal that lit it; what it holds elsewhere in the partition
//! counts too (`Applied::others`); a bucket's candles come back to their owners when the bucket
//! goes out; and the owners survive a snapshot (one from before quotas loads as anonymous).

use super::ring::{CandleLimits, DAY_NS};
use super::tests::candle;
use super::CandleProjection;
use crate::projection::owner::ANONYMOUS_OWNER;
use crate::projection::{Applied, ApplyResult, LogPos, Owner, Projection, Quota, SectionReader, Usage};

const DAY3: u64 = 3 * DAY_NS + 5_000_000_000;

fn by(lsn: u64, time_ns: u64, owner: Owner) -> Applied {
    Applied { pos: LogPos::single(lsn), time_ns, owner, ..Default::default() }
}

fn under(key_id: u32, keys_max: u64, bytes_max: u64) -> Owner {
    Owner { key_id, quota: Some(Quota { keys_max, bytes_max }) }
}

fn is_lit(r: ApplyResult) -> bool {
    matches!(r, ApplyResult::Lit { .. })
}

fn reload(p: &CandleProjection) -> CandleProjection {
    let mut bytes = Vec::new();
    p.write_snapshot(&mut bytes);
    let mut cursor = std::io::Cursor::new(&bytes[..]);
    let mut r = SectionReader::new(&mut cursor, bytes.len() as u64);
    let mut loaded = CandleProjection::new(CandleLimits::small());
    loaded.load_snapshot(&mut r, 1).expect("loads");
    loaded
}

#[test]
fn a_principal_lights_up_to_its_quota_and_gets_it_back_when_the_day_goes_out() {
    let mut p = CandleProjection::new(CandleLimits::small());
    let a = under(4, 2, 1 << 20);
    assert!(is_lit(p.apply(by(1, DAY3, a), &candle(1, 1, None))));
    assert!(is_lit(p.apply(by(2, DAY3, a), &candle(1, 1, Some(&[7; 30])))));
    assert_eq!(p.apply(by(3, DAY3, a), &candle(1, 1, None)), ApplyResult::QuotaExceeded);
    assert_eq!(p.ring().len(), 2, "nothing of a refused candle is stored");
    assert_eq!(p.usage_of(4, DAY3), Usage { keys: 2, bytes: 128 + 128 + 32 });
    // Others are not limited by it.
    assert!(is_lit(p.apply(by(4, DAY3, Owner::ANONYMOUS), &candle(1, 1, None))));
    assert!(is_lit(p.apply(by(5, DAY3, under(5, 1, 1 << 20)), &candle(1, 1, None))));
    // Seven days on the day goes out and its candles with it.
    let later = DAY3 + 7 * DAY_NS;
    assert_eq!(p.usage_of(4, later), Usage::default(), "nothing held once its day is past");
    assert!(is_lit(p.apply(by(6, later, a), &candle(1, 1, None))));
    assert_eq!(p.usage_of(4, later), Usage { keys: 1, bytes: 128 });
}

#[test]
fn bytes_and_what_the_writer_holds_elsewhere_count() {
    let mut p = CandleProjection::new(CandleLimits::small());
    let a = under(4, 100, 300);
    assert!(is_lit(p.apply(by(1, DAY3, a), &candle(1, 1, Some(&[7; 30])))));
    assert_eq!(
        p.apply(by(2, DAY3, a), &candle(1, 1, Some(&[7; 30]))),
        ApplyResult::QuotaExceeded,
        "320 > 300"
    );
    assert!(is_lit(p.apply(by(3, DAY3, a), &candle(1, 1, None))), "288 <= 300");
    // Three keys held in KV: the fourth key would pass a quota of 3 whatever the store.
    let b = under(6, 4, 1 << 20);
    let mut at = by(4, DAY3, b);
    at.others = Usage { keys: 3, bytes: 10 };
    assert!(is_lit(p.apply(at, &candle(1, 1, None))));
    let mut at = by(5, DAY3, b);
    at.others = Usage { keys: 3, bytes: 10 };
    assert_eq!(p.apply(at, &candle(1, 1, None)), ApplyResult::QuotaExceeded);
}

#[test]
fn owners_survive_a_snapshot_and_a_section_from_before_quotas_loads_as_anonymous() {
    let mut p = CandleProjection::new(CandleLimits::small());
    p.apply(by(1, DAY3, under(9, 10, 1 << 20)), &candle(1, 1, Some(&[7; 30])));
    p.apply(by(2, DAY3, Owner { key_id: 3, quota: None }), &candle(1, 1, None));
    p.apply(by(3, DAY3 + DAY_NS, Owner::ANONYMOUS), &candle(1, 1, None));
    let loaded = reload(&p);
    for owner in [9, 3, ANONYMOUS_OWNER] {
        assert_eq!(loaded.usage_of(owner, DAY3 + DAY_NS), p.usage_of(owner, DAY3 + DAY_NS), "owner {owner}");
    }
    assert_eq!(loaded.usage_of(9, DAY3), Usage { keys: 1, bytes: 160 });
    // Version 1: the same buckets without their owners.
    let mut v2 = Vec::new();
    p.write_snapshot(&mut v2);
    let mut v1 = vec![1u8];
    v1.extend_from_slice(&v2[1..10]);
    let mut at = 10;
    for _ in 0..v2[9] {
        v1.extend_from_slice(&v2[at..at + 20]);
        let owners = usize::from(u16::from_le_bytes([v2[at + 20], v2[at + 21]]));
        at += 22 + 16 * owners;
    }
    v1.extend_from_slice(&v2[at..]);
    let mut cursor = std::io::Cursor::new(&v1[..]);
    let mut r = SectionReader::new(&mut cursor, v1.len() as u64);
    let mut old = CandleProjection::new(CandleLimits::small());
    old.load_snapshot(&mut r, 1).expect("version 1 loads");
    assert_eq!(old.usage_of(ANONYMOUS_OWNER, DAY3 + DAY_NS), Usage { keys: 3, bytes: 3 * 128 + 32 });
    // Owners that do not add up to the bucket are refused.
    let mut bad = v2.clone();
    let first_owner_bytes = 10 + 22 + 8; // the first bucket's first owner: its u64 bytes
    bad[first_owner_bytes] ^= 1;
    let mut cursor = std::io::Cursor::new(&bad[..]);
    let mut r = SectionReader::new(&mut cursor, bad.len() as u64);
    assert!(CandleProjection::new(CandleLimits::small()).load_snapshot(&mut r, 1).is_err());
}
