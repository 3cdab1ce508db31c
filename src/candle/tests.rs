//! Tests of the candle projection: apply and reads with slots built by `Slot`'s setters (raw text
//! bytes: the ring never decodes text), expiry across day boundaries at the request's time and by
//! rotation, FULL at each limit with nothing applied, the snapshot section (chunked capture while
//! candles keep coming and buckets go out, load, corrupt sections refused), and a model of the
//! ring as a list of candles with days advancing.

use super::command::tests::slot_with;
use super::command::{light_len, write_light, CITIES};
use super::ring::{CandleId, CandleLimits, DAY_MS, DAY_NS};
use super::slot::{Slot, NO_CITY, NO_STATE};
use super::{CandleProjection, TAG_CANDLE};
use crate::projection::{
    Applied, ApplyResult, CommandHeader, LogPos, Projection, SectionReader, SnapshotChunk,
};
use crate::wire::{opcode, Status};
use proptest::prelude::*;

/// A LIGHT of `slot` with `overflow` values.
pub(crate) fn light_bytes(slot: &Slot, overflow: [Option<&[u8]>; 3]) -> Vec<u8> {
    let mut out = vec![0u8; light_len(&overflow)];
    let header = CommandHeader { kind: opcode::CANDLE_LIGHT, client_id: 0, seq: 0 };
    write_light(header, slot, overflow, &mut out);
    out
}

/// A candle of `city`/`state` with a name inline, and the prayer in overflow when given.
pub(crate) fn candle(city: u16, state: u8, prayer: Option<&[u8]>) -> Vec<u8> {
    match prayer {
        Some(p) => {
            light_bytes(&slot_with([Some(b"ana"), Some(b"rua"), None], city, state), [None, None, Some(p)])
        }
        None => light_bytes(&slot_with([Some(b"ana"), Some(b"rua"), Some(b"paz")], city, state), [None; 3]),
    }
}

fn at(lsn: u64, time_ns: u64) -> Applied {
    Applied { pos: LogPos::single(lsn), time_ns, ..Default::default() }
}

fn get(p: &CandleProjection, id: u64, now_ms: u64) -> Result<Vec<u8>, Status> {
    let mut out = [0u8; 8192];
    let n = p.answer_read(opcode::CANDLE_GET, &id.to_le_bytes(), now_ms, &mut out)?;
    Ok(out[..n].to_vec())
}

fn count(p: &CandleProjection, now_ms: u64) -> u64 {
    let mut out = [0u8; 8];
    p.answer_read(opcode::CANDLE_COUNT, &[], now_ms, &mut out).unwrap();
    u64::from_le_bytes(out)
}

fn lit(r: ApplyResult) -> u64 {
    match r {
        ApplyResult::Lit { id } => id,
        other => panic!("{other:?}"),
    }
}

/// A GET answer: the slot, then the overflow values as `u16 len, bytes`.
fn overflow_of(answer: &[u8]) -> Vec<Vec<u8>> {
    let mut rest = &answer[128..];
    let mut values = Vec::new();
    while !rest.is_empty() {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        values.push(rest[2..2 + len].to_vec());
        rest = &rest[2 + len..];
    }
    values
}

const DAY3: u64 = 3 * DAY_NS + 5_000_000_000;

#[test]
fn a_lit_candle_is_stamped_stored_with_its_overflow_and_read_back() {
    let mut p = CandleProjection::new(CandleLimits::small());
    let prayer = "Senhor, olhai por minha família e pela saúde da vovó Conceição".repeat(10);
    let id = lit(p.apply(at(1, DAY3), &candle(42, 25, Some(prayer.as_bytes()))));
    let id2 = lit(p.apply(at(2, DAY3 + 1_000_000_000), &candle(NO_CITY, NO_STATE, None)));
    assert_eq!((CandleId(id).day(), CandleId(id).index()), (3, 0));
    assert_eq!(CandleId(id2), CandleId::new(3, 1));
    let answer = get(&p, id, DAY3 / 1_000_000).unwrap();
    let slot = Slot(answer[..128].try_into().unwrap());
    assert_eq!(u64::from(slot.lit_at()), DAY3 / 1_000_000_000, "the leader's stamp");
    assert_eq!((slot.city(), slot.state()), (42, 25));
    assert_eq!(overflow_of(&answer), vec![prayer.as_bytes().to_vec()]);
    let refs = super::slot::text_fields(&slot).unwrap();
    assert!(matches!(refs[2], super::TextRef::Overflow { offset: 0, .. }), "placed at the pool's start");
    assert_eq!(get(&p, id2, DAY3 / 1_000_000).unwrap().len(), 128, "inline: the slot alone");
    assert_eq!(get(&p, CandleId::new(3, 2).0, DAY3 / 1_000_000), Err(Status::NotFound), "never issued");
    assert_eq!(get(&p, CandleId::new(2, 0).0, DAY3 / 1_000_000), Err(Status::NotFound), "no such day");
    assert_eq!(count(&p, DAY3 / 1_000_000), 2);
    let mut out = [0u8; 8];
    p.answer_read(opcode::CANDLE_COUNT_CITY, &42u16.to_le_bytes(), DAY3 / 1_000_000, &mut out).unwrap();
    assert_eq!(u64::from_le_bytes(out), 1);
    p.answer_read(opcode::CANDLE_COUNT_CITY, &NO_CITY.to_le_bytes(), DAY3 / 1_000_000, &mut out).unwrap();
    assert_eq!(u64::from_le_bytes(out), 1, "abroad");
    let past = (CITIES as u16).to_le_bytes();
    assert_eq!(
        p.answer_read(opcode::CANDLE_COUNT_CITY, &past, DAY3 / 1_000_000, &mut out),
        Err(Status::BadRequest)
    );
    let mut states = [0u8; 256];
    assert_eq!(p.answer_read(opcode::CANDLE_COUNT_STATES, &[], DAY3 / 1_000_000, &mut states), Ok(256));
    let state = |i: usize| u64::from_le_bytes(states[i * 8..i * 8 + 8].try_into().unwrap());
    assert_eq!((state(25), state(usize::from(NO_STATE)), state(0)), (1, 1, 0));
    assert_eq!(p.answer_read(opcode::CANDLE_GET, &[1, 2], 0, &mut out), Err(Status::BadLength));
    assert_eq!(
        p.answer_read(opcode::CANDLE_GET, &id.to_le_bytes(), DAY3 / 1_000_000, &mut out[..8]),
        Err(Status::ResponseTooLarge)
    );
    assert_eq!(p.tag(), TAG_CANDLE);
}

#[test]
fn a_candle_lives_until_the_start_of_its_seventh_day_after_and_its_bucket_goes_whole() {
    let mut p = CandleProjection::new(CandleLimits::small());
    let mut ids = Vec::new();
    for i in 0..600u64 {
        ids.push(lit(p.apply(at(i + 1, DAY3 + i), &candle(7, 3, (i % 3 == 0).then_some(&[9u8; 300][..])))));
    }
    let last_ms_alive = 10 * DAY_MS - 1;
    assert_eq!(count(&p, last_ms_alive), 600, "day 3's candles live through day 9");
    assert!(get(&p, ids[599], last_ms_alive).is_ok());
    assert_eq!(count(&p, 10 * DAY_MS), 0, "invisible at the start of day 10, before any rotation");
    assert_eq!(get(&p, ids[0], 10 * DAY_MS), Err(Status::NotFound));
    assert_eq!(p.len(), 600, "still stored until the ring's clock moves");
    assert!(p.ring().memory() > 600 * 128);
    // A candle on day 9 keeps day 3; one on day 10 drops it (the same bucket index).
    lit(p.apply(at(700, 9 * DAY_NS), &candle(7, 3, None)));
    assert_eq!(p.len(), 601);
    let id = lit(p.apply(at(701, 10 * DAY_NS), &candle(7, 3, None)));
    assert_eq!(CandleId(id), CandleId::new(10, 0));
    assert_eq!(p.len(), 2);
    assert_eq!(get(&p, ids[0], 9 * DAY_MS), Err(Status::NotFound), "an expired id is never another candle");
    assert_eq!(count(&p, 10 * DAY_MS), 2);
    // ROTATE drops what is due without a candle.
    assert_eq!(p.next_expiry_ms(), Some(16 * DAY_MS));
    let rotate = {
        let mut b = [0u8; super::command::ROTATE_LEN];
        super::command::write_rotate(&mut b);
        b
    };
    assert_eq!(p.apply(at(702, 16 * DAY_NS - 1), &rotate), ApplyResult::Rotated { buckets: 0 });
    assert_eq!(p.apply(at(703, 16 * DAY_NS), &rotate), ApplyResult::Rotated { buckets: 1 });
    assert_eq!(p.apply(at(704, 17 * DAY_NS), &rotate), ApplyResult::Rotated { buckets: 1 });
    assert!(p.is_empty());
    assert!(p.ring().spare_blocks().0 >= 2, "the dropped blocks are kept, not freed, by the drop");
    let mut upkeeps = 0;
    while p.upkeep() {
        upkeeps += 1;
    }
    assert!(upkeeps >= 2, "one block given back an upkeep");
    assert_eq!(p.ring().memory(), 0, "no bucket left: every spare given back");
    assert_eq!(p.next_expiry_ms(), None);
    // The clock never goes back: a stale stamp lights on the ring's day.
    let id = lit(p.apply(at(705, DAY3), &candle(1, 1, None)));
    assert_eq!(CandleId(id).day(), 17);
}

#[test]
fn a_steady_week_reuses_the_dropped_day_s_blocks_and_upkeep_keeps_what_a_day_needs() {
    let limits = CandleLimits { candles_per_day_max: 5000, ..CandleLimits::small() };
    let mut p = CandleProjection::new(limits);
    let mut lsn = 0;
    let mut fill_day = |p: &mut CandleProjection, day: u64, n: u64| {
        for i in 0..n {
            lsn += 1;
            lit(p.apply(at(lsn, day * DAY_NS + i), &candle(7, 3, (i % 50 == 0).then_some(&[9u8; 300][..]))));
        }
    };
    for day in 3..10 {
        fill_day(&mut p, day, 2048);
    }
    let week = p.ring().memory();
    // Day 10 drops day 3: its blocks become spares (nothing freed), day 10's candles take them.
    fill_day(&mut p, 10, 1);
    let (slots, overflow) = p.ring().spare_blocks();
    // 2,048 slots fill 4 blocks exactly, and a filled block takes the next at once: 5 a day.
    assert_eq!((slots, overflow), (4, 0), "day 3's 5 slot blocks and its pool block, one of each taken");
    assert_eq!(p.ring().memory(), week, "the drop freed nothing and day 10's first block was a spare");
    assert!(!p.upkeep(), "the spares are what today's bucket is expected to need: none freed");
    assert_eq!(p.ring().spare_blocks(), (4, 0));
    fill_day(&mut p, 10, 2047);
    assert_eq!(p.ring().spare_blocks(), (0, 0), "a day like the one dropped used every spare");
    assert_eq!(p.ring().memory(), week, "a steady week takes no more memory");
    // A candle on day 12 drops days 4 and 5: the spares past what day 12 is expected to need go.
    fill_day(&mut p, 12, 1);
    assert_eq!(p.ring().spare_blocks(), (9, 1));
    let mut upkeeps = 0;
    while p.upkeep() {
        upkeeps += 1;
    }
    assert_eq!(upkeeps, 6, "one block an upkeep");
    assert_eq!(p.ring().spare_blocks(), (4, 0), "kept: what day 12 needs to be like the others");
}

#[test]
fn full_at_each_limit_applies_nothing() {
    let limits =
        CandleLimits { candles_per_day_max: 3, overflow_bytes_per_field_day_max: 100, list_page_max: 10 };
    let mut p = CandleProjection::new(limits);
    lit(p.apply(at(1, DAY3), &candle(1, 1, Some(&[1; 60]))));
    let before = snapshot(&p);
    assert_eq!(p.apply(at(2, DAY3), &candle(1, 1, Some(&[1; 37]))), ApplyResult::Full, "62 + 39 > 100");
    assert_eq!(snapshot(&p), before, "nothing partially applied");
    lit(p.apply(at(3, DAY3), &candle(1, 1, Some(&[1; 36]))));
    lit(p.apply(at(4, DAY3), &candle(1, 1, None)));
    let before = snapshot(&p);
    assert_eq!(p.apply(at(5, DAY3), &candle(1, 1, None)), ApplyResult::Full, "3 candles a day");
    assert_eq!(snapshot(&p), before);
    assert_eq!(count(&p, DAY3 / 1_000_000), 3);
    assert_eq!(
        CandleId(lit(p.apply(at(6, DAY3 + DAY_NS), &candle(1, 1, None)))),
        CandleId::new(4, 0),
        "a new day"
    );
    assert_eq!(p.apply(at(7, DAY3), &[opcode::CANDLE_LIGHT, 0, 0]), ApplyResult::Malformed);
    assert_eq!(p.check(&[opcode::CANDLE_LIGHT, 0, 0]), Some(ApplyResult::Malformed));
    assert_eq!(p.check(&candle(CITIES as u16 - 1, 1, None)), None);
}

#[test]
fn list_pages_newest_first_by_cursor_within_the_page_and_buffer_bounds() {
    let mut p = CandleProjection::new(CandleLimits { list_page_max: 4, ..CandleLimits::small() });
    let mut ids = Vec::new();
    for i in 0..9u64 {
        let day = i / 3;
        ids.push(lit(p.apply(
            at(i + 1, DAY3 + day * DAY_NS),
            &candle(i as u16, 0, (i == 4).then_some(&[5u8; 40][..])),
        )));
    }
    let list = |cursor: u64, limit: u16, room: usize| {
        let mut body = cursor.to_le_bytes().to_vec();
        body.extend_from_slice(&limit.to_le_bytes());
        let mut out = vec![0u8; room];
        let n = p.answer_read(opcode::CANDLE_LIST, &body, 9 * DAY_MS, &mut out)?;
        let (count, more) = (u16::from_le_bytes([out[0], out[1]]), out[2] == 1);
        let mut got = Vec::new();
        let mut at = 3;
        while at < n {
            let id = u64::from_le_bytes(out[at..at + 8].try_into().unwrap());
            let len = get(&p, id, 9 * DAY_MS).unwrap().len();
            got.push(id);
            at += 8 + len;
        }
        assert_eq!(got.len(), usize::from(count));
        Ok::<_, Status>((got, more))
    };
    let newest: Vec<u64> = ids.iter().rev().copied().collect();
    assert_eq!(list(u64::MAX, 100, 4096), Ok((newest[..4].to_vec(), true)), "list_page_max");
    assert_eq!(list(newest[3], 100, 4096), Ok((newest[4..8].to_vec(), true)));
    assert_eq!(list(newest[7], 100, 4096), Ok((newest[8..].to_vec(), false)));
    assert_eq!(list(u64::MAX, 2, 4096), Ok((newest[..2].to_vec(), true)));
    assert_eq!(list(u64::MAX, 100, 3 + 2 * 136), Ok((newest[..2].to_vec(), true)), "what fits the buffer");
    assert_eq!(list(u64::MAX, 100, 100), Err(Status::ResponseTooLarge));
    // Day 5's candles (ids[0..3] are day 3's) are gone at day 10.
    let mut body = u64::MAX.to_le_bytes().to_vec();
    body.extend_from_slice(&100u16.to_le_bytes());
    let mut out = [0u8; 4096];
    p.answer_read(opcode::CANDLE_LIST, &body, 11 * DAY_MS, &mut out).unwrap();
    assert_eq!(u16::from_le_bytes([out[0], out[1]]), 3, "only day 5's candles live on day 11");
}

/// The section `write_snapshot` gives.
fn snapshot(p: &CandleProjection) -> Vec<u8> {
    let mut out = Vec::new();
    p.write_snapshot(&mut out);
    out
}

fn load(bytes: &[u8], limits: CandleLimits) -> Result<CandleProjection, crate::projection::SnapshotError> {
    let mut cursor = std::io::Cursor::new(bytes);
    let mut r = SectionReader::new(&mut cursor, bytes.len() as u64);
    let mut p = CandleProjection::new(limits);
    p.load_snapshot(&mut r, 1)?;
    assert_eq!(r.remaining(), 0);
    Ok(p)
}

/// A section written in chunks of `blocks` blocks, with `between` run after each chunk.
fn chunked(
    p: &mut CandleProjection,
    blocks: usize,
    mut between: impl FnMut(&mut CandleProjection),
) -> Vec<u8> {
    let crate::projection::SectionCapture::Chunked { byte_len, head } = p.begin_capture() else {
        panic!("a ring with blocks is captured in chunks")
    };
    let mut out = head;
    let mut chunk = SnapshotChunk::with_blocks_max(blocks);
    loop {
        chunk.clear();
        let done = p.capture_chunk(&mut chunk);
        chunk.write(&mut out);
        between(p);
        if done {
            break;
        }
    }
    assert_eq!(out.len() as u64, byte_len);
    out
}

#[test]
fn a_chunked_capture_writes_the_ring_at_the_capture_and_loads_back() {
    let limits = CandleLimits { candles_per_day_max: 5000, ..CandleLimits::small() };
    let mut p = CandleProjection::new(limits);
    let mut lsn = 0;
    for i in 0..2500u64 {
        lsn += 1;
        let day = i / 600;
        let prayer = [i as u8; 200];
        let cmd = candle((i % 5570) as u16, (i % 27) as u8, (i % 7 == 0).then_some(&prayer[..]));
        p.apply(at(lsn, DAY3 + day * DAY_NS + i), &cmd);
    }
    let at_capture = snapshot(&p);
    let now_ms = 8 * DAY_MS;
    let sample: Vec<u64> = (3..8u32).flat_map(|d| [0, 1, 7, 599].map(|i| CandleId::new(d, i).0)).collect();
    let answers: Vec<_> = sample.iter().map(|id| get(&p, *id, now_ms)).collect();
    let mut states = [0u8; 256];
    p.answer_read(opcode::CANDLE_COUNT_STATES, &[], now_ms, &mut states).unwrap();
    let full_blocks: usize = p.ring().buckets.iter().flatten().map(|b| b.slots.len() / (512 * 128)).sum();
    assert_eq!(full_blocks, 4, "filled blocks, shared by the capture");
    let mut more = 0;
    let written = chunked(&mut p, 3, |p| {
        lsn += 1;
        more += 1;
        // Candles keep coming and the oldest buckets go out while the chunks are written.
        p.apply(at(lsn, DAY3 + (9 + more / 4) * DAY_NS), &candle(1, 1, Some(&[7; 30])));
    });
    assert!(more > 3, "several chunks");
    assert_eq!(written, at_capture, "the capture is the ring at the capture");
    let loaded = load(&written, limits).unwrap();
    assert_eq!(snapshot(&loaded), at_capture);
    let loaded_answers: Vec<_> = sample.iter().map(|id| get(&loaded, *id, now_ms)).collect();
    assert_eq!(loaded_answers, answers);
    assert_eq!(count(&loaded, now_ms), 2500);
    let mut loaded_states = [0u8; 256];
    loaded.answer_read(opcode::CANDLE_COUNT_STATES, &[], now_ms, &mut loaded_states).unwrap();
    assert_eq!(loaded_states, states, "counts rebuilt from the slots");
}

#[test]
fn corrupt_or_oversized_sections_are_refused() {
    let mut p = CandleProjection::new(CandleLimits::small());
    for i in 0..10u64 {
        p.apply(at(i + 1, DAY3 + i * DAY_NS / 4), &candle(3, 3, Some(&[1; 20])));
    }
    let good = snapshot(&p);
    assert!(load(&good, CandleLimits::small()).is_ok());
    let tight = CandleLimits { candles_per_day_max: 3, ..CandleLimits::small() };
    assert!(matches!(load(&good, tight), Err(crate::projection::SnapshotError::ExceedsLimits(_))));
    assert!(load(&good[..good.len() - 1], CandleLimits::small()).is_err(), "truncated");
    // Every single-byte change either still loads to a valid ring or is refused; none panics.
    for i in 0..good.len() {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut bad = good.clone();
            bad[i] ^= flip;
            let _ = load(&bad, CandleLimits::small());
        }
    }
    // A slot lit on another day than its bucket's.
    let head = 1 + 8 + 1 + 3 * (20 + 2 + 16); // each bucket: its header and its one owner (anonymous)
    let mut bad = good.clone();
    bad[head + 2] ^= 0x10;
    assert!(load(&bad, CandleLimits::small()).is_err());
    // An overflow offset past its pool.
    let mut bad = good.clone();
    let slot = Slot(bad[head..head + 128].try_into().unwrap());
    let super::TextRef::Overflow { marker_at, .. } = super::slot::text_fields(&slot).unwrap()[2] else {
        panic!()
    };
    bad[head + marker_at + 3] = 0x7F;
    assert!(load(&bad, CandleLimits::small()).is_err());
}

#[derive(Clone, Debug)]
enum Step {
    /// A candle of this city (of 4) with this overflow length (0: inline).
    Light(u8, u8),
    /// The clock moves this many hours (the next entry's stamp).
    Hours(u8),
    /// A ROTATE.
    Rotate,
    /// A snapshot written and loaded in place.
    Reload,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..4, prop_oneof![Just(0u8), 1u8..60]).prop_map(|(c, o)| Step::Light(c, o)),
        3 => (0u8..60).prop_map(Step::Hours),
        1 => Just(Step::Rotate),
        1 => Just(Step::Reload),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The ring against a list of candles (id, lit day, city, overflow): the same ids, GET
    /// answers, counts and pages at every step, with days advancing, limits hit and reloads.
    #[test]
    fn the_ring_matches_a_list_of_candles(steps in proptest::collection::vec(step(), 1..120)) {
        let limits = CandleLimits { candles_per_day_max: 6, overflow_bytes_per_field_day_max: 150, list_page_max: 5 };
        let mut p = CandleProjection::new(limits);
        let mut model: Vec<(u64, u32, u16, Vec<u8>)> = Vec::new();
        let mut now_ns = DAY3;
        let mut lsn = 0;
        for s in &steps {
            lsn += 1;
            let today = (now_ns / DAY_NS) as u32;
            match *s {
                Step::Light(city, over) => {
                    let value = vec![city; usize::from(over)];
                    let cmd = candle(u16::from(city), city, (over > 0).then_some(&value[..]));
                    let result = p.apply(at(lsn, now_ns), &cmd);
                    let in_day: Vec<_> = model.iter().filter(|c| c.1 == today).collect();
                    let pool: usize = in_day.iter().filter(|c| !c.3.is_empty()).map(|c| 2 + c.3.len()).sum();
                    let full = in_day.len() >= 6 || (over > 0 && pool + 2 + usize::from(over) > 150);
                    if full {
                        prop_assert_eq!(result, ApplyResult::Full);
                    } else {
                        let id = CandleId::new(today, in_day.len() as u32).0;
                        prop_assert_eq!(result, ApplyResult::Lit { id });
                        model.push((id, today, u16::from(city), value));
                    }
                }
                Step::Hours(h) => now_ns += u64::from(h) * 3_600 * 1_000_000_000,
                Step::Rotate => {
                    let mut b = [0u8; super::command::ROTATE_LEN];
                    super::command::write_rotate(&mut b);
                    let rotated = matches!(p.apply(at(lsn, now_ns), &b), ApplyResult::Rotated { .. });
                    prop_assert!(rotated, "a ROTATE is answered Rotated");
                }
                Step::Reload => {
                    let bytes = snapshot(&p);
                    p = load(&bytes, limits).unwrap();
                    prop_assert_eq!(snapshot(&p), bytes);
                }
            }
            let now_ms = now_ns / 1_000_000;
            let day = (now_ns / DAY_NS) as u32;
            let live: Vec<_> = model.iter().filter(|c| day < c.1 + 7).collect();
            prop_assert_eq!(count(&p, now_ms), live.len() as u64);
            for c in &model {
                let got = get(&p, c.0, now_ms);
                if day < c.1 + 7 {
                    let answer = got.unwrap();
                    let slot = Slot(answer[..128].try_into().unwrap());
                    prop_assert_eq!(slot.city(), c.2);
                    let values = overflow_of(&answer);
                    prop_assert_eq!(values.first().cloned().unwrap_or_default(), c.3.clone());
                } else {
                    prop_assert_eq!(got, Err(Status::NotFound));
                }
            }
            for city in 0..4u16 {
                let mut out = [0u8; 8];
                p.answer_read(opcode::CANDLE_COUNT_CITY, &city.to_le_bytes(), now_ms, &mut out).unwrap();
                prop_assert_eq!(u64::from_le_bytes(out), live.iter().filter(|c| c.2 == city).count() as u64);
            }
            let mut body = u64::MAX.to_le_bytes().to_vec();
            body.extend_from_slice(&100u16.to_le_bytes());
            let mut out = [0u8; 8192];
            p.answer_read(opcode::CANDLE_LIST, &body, now_ms, &mut out).unwrap();
            let first: Vec<u64> = live.iter().rev().take(5).map(|c| c.0).collect();
            prop_assert_eq!(u16::from_le_bytes([out[0], out[1]]) as usize, first.len());
            if let Some(newest) = first.first() {
                prop_assert_eq!(u64::from_le_bytes(out[3..11].try_into().unwrap()), *newest);
            }
        }
    }
}
