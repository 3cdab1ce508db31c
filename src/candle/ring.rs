//! The candle ring: seven daily buckets, keyed by day number (days since the Unix epoch of the
//! leader's stamp, `Applied::time_ns`). A candle lit on day D lives until the start of day D+7:
//! it is in the bucket of day D, which sits at index `D % 7` and is dropped whole when the ring's
//! clock reaches day D+7 (`advance`), or replaced by the bucket of day D+7 if a candle comes first.
//!
//! A bucket holds its slots in fixed-size blocks (`Blocks`, 512 slots a block), one overflow pool
//! per text field (values framed by a u16 length, in blocks; the slot's 3-byte offset points at
//! the frame) and its counts by city (the 5,570 IBGE municipalities and one for abroad) and by
//! state (32: the 5-bit state index), kept as it fills, so COUNT and the counts read seven
//! buckets and never a candle. Expiry drops a bucket: its block lists move whole to the ring's
//! spares (`blocks::Spares`), no record visited and nothing freed, and the buckets to come take
//! their blocks from there; the spares past what the ring expects a day to need (the most blocks
//! a held bucket has, less what today's already has) are freed a few at a time when the
//! partition is idle (`release_spares`).
//!
//! A candle's id is `day << 32 | index` (its bucket's day and its place in it): GET finds it in
//! O(1), ids increase along the log (newest first is descending ids), and an id never names
//! another candle: a day is never reused, and an index past the bucket's count or a day the ring
//! no longer holds (or that is past its seven days at the request's time) is not found.
//!
//! Limits (`CandleLimits`): candles per day and overflow bytes per field per day; a LIGHT over
//! either is refused whole (`Full`) before anything changes. Each bucket also counts the candles
//! and bytes (slot and overflow frames) each owner lit that day (`projection::owner`), so a
//! principal's quota sees what it holds in the live buckets and gets it back when they drop.
//!
//! Invariants: every replica and replay holds the same bytes (the lit time and the day come from
//! the entry's stamp, the clock never goes back); a bucket's slots all carry its day; every
//! overflow reference of a stored slot points at a whole frame in its pool; the counts are those
//! of the slots stored.

use super::blocks::{Blocks, Spares};
use super::command::{Light, CITIES};
use super::slot::{text_fields, Slot, TextField, TextRef, OVERFLOW_OFFSET_MAX, SLOT_BYTES};
use crate::projection::{Usage, UsageTable};

/// Days a candle lives.
pub const DAYS: u32 = 7;
/// Nanoseconds in a day.
pub const DAY_NS: u64 = 86_400 * 1_000_000_000;
/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400 * 1_000;
/// Slots in one block of a bucket (64 KiB).
pub const SLOTS_PER_BLOCK: usize = 512;
/// Bytes of one block of a bucket's slots.
pub const SLOT_BLOCK_BYTES: usize = SLOTS_PER_BLOCK * SLOT_BYTES;
/// Bytes of one block of an overflow pool.
pub const POOL_BLOCK_BYTES: usize = 16 * 1024;
/// Counters by city: the IBGE table, then one for candles from abroad (`NO_CITY`).
pub const CITY_COUNTERS: usize = CITIES + 1;
/// Counters by state: every value of the 5-bit state index.
pub const STATE_COUNTERS: usize = 32;

/// The ring's limits (config `[candle]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CandleLimits {
    /// Candles one day's bucket holds; the next LIGHT that day is `Full`.
    pub candles_per_day_max: u32,
    /// Bytes one overflow pool of one day holds (frames included), at most 16 MiB (the slot's
    /// 3-byte offset); a LIGHT whose value does not fit is `Full`.
    pub overflow_bytes_per_field_day_max: u32,
    /// Candles one LIST page gives at most.
    pub list_page_max: u16,
}

impl CandleLimits {
    /// Small limits for tests.
    pub fn small() -> Self {
        Self { candles_per_day_max: 1000, overflow_bytes_per_field_day_max: 64 * 1024, list_page_max: 50 }
    }

    /// Checks the limits can be run with.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.candles_per_day_max == 0 {
            return Err("candles_per_day_max must be at least 1");
        }
        if self.overflow_bytes_per_field_day_max > OVERFLOW_OFFSET_MAX + 1 {
            return Err("overflow_bytes_per_field_day_max is at most 16 MiB (a 3-byte offset)");
        }
        if self.list_page_max == 0 {
            return Err("list_page_max must be at least 1");
        }
        Ok(())
    }
}

/// A candle's id (see the module header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CandleId(pub u64);

impl CandleId {
    /// The id of the candle at `index` of `day`'s bucket.
    pub fn new(day: u32, index: u32) -> Self {
        Self(u64::from(day) << 32 | u64::from(index))
    }

    /// Its day.
    pub fn day(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// Its index in its day's bucket.
    pub fn index(self) -> u32 {
        self.0 as u32
    }
}

/// Why a LIGHT was not stored; nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The day's bucket holds `candles_per_day_max` candles.
    CandlesFull,
    /// The field's overflow pool of the day would pass `overflow_bytes_per_field_day_max`.
    OverflowFull(TextField),
}

/// A candle does not fit the buffer given for it; nothing meaningful was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DoesNotFit;

/// One day's candles.
#[derive(Clone, Debug)]
pub(crate) struct Bucket {
    pub(crate) day: u32,
    pub(crate) count: u32,
    pub(crate) slots: Blocks,
    pub(crate) pools: [Blocks; 3],
    pub(crate) by_city: Box<[u32]>,
    pub(crate) by_state: [u32; STATE_COUNTERS],
    /// The candles and bytes each owner lit this day (`projection::owner`: anonymous included),
    /// by ascending key id: what its quota counts, dropped with the bucket.
    pub(crate) owners: UsageTable,
}

impl Bucket {
    pub(crate) fn new(day: u32) -> Self {
        Self {
            day,
            count: 0,
            slots: Blocks::new(SLOT_BLOCK_BYTES),
            pools: std::array::from_fn(|_| Blocks::new(POOL_BLOCK_BYTES)),
            by_city: vec![0; CITY_COUNTERS].into_boxed_slice(),
            by_state: [0; STATE_COUNTERS],
            owners: UsageTable::default(),
        }
    }

    /// The slot at `index` (`index < count`).
    pub(crate) fn slot(&self, index: u32) -> &[u8; SLOT_BYTES] {
        let at = index as usize * SLOT_BYTES;
        self.slots.slice(at, SLOT_BYTES).expect("a stored slot").try_into().expect("128 bytes")
    }

    /// Counts a stored slot.
    pub(crate) fn count_slot(&mut self, slot: &Slot) {
        self.count += 1;
        self.by_city[city_counter(slot.city())] += 1;
        self.by_state[usize::from(slot.state())] += 1;
    }

    /// Bytes of memory its blocks and counters take.
    pub(crate) fn memory(&self) -> usize {
        self.slots.memory()
            + self.pools.iter().map(Blocks::memory).sum::<usize>()
            + CITY_COUNTERS * 4
            + std::mem::size_of::<Self>()
    }

    /// Writes the candle at `index` (its slot, then each overflow value as its u16-framed bytes
    /// in field order: the LIGHT layout after the header) into `out`; `None` if it does not fit.
    pub(crate) fn write_candle(&self, index: u32, out: &mut [u8]) -> Option<usize> {
        let slot = self.slot(index);
        out.get_mut(..SLOT_BYTES)?.copy_from_slice(slot);
        let mut at = SLOT_BYTES;
        let slot = Slot(*slot);
        let refs = text_fields(&slot).expect("stored slots parse");
        for (field, r) in refs.iter().enumerate() {
            let TextRef::Overflow { offset, .. } = *r else { continue };
            let frame = frame_len(&self.pools[field], offset as usize).expect("stored frames are whole");
            let into = out.get_mut(at..at + frame)?;
            self.pools[field].read(offset as usize, into);
            at += frame;
        }
        Some(at)
    }
}

/// The counter of a city index.
fn city_counter(city: u16) -> usize {
    usize::from(city).min(CITIES)
}

/// The bytes of the frame at `offset` of `pool` (length and value), if it is whole.
pub(crate) fn frame_len(pool: &Blocks, offset: usize) -> Option<usize> {
    let mut len = [0u8; 2];
    if !pool.read(offset, &mut len) {
        return None;
    }
    let frame = 2 + usize::from(u16::from_le_bytes(len));
    (offset + frame <= pool.len()).then_some(frame)
}

/// The seven buckets and the ring's clock (see the module header).
#[derive(Clone, Debug)]
pub struct Ring {
    pub(crate) limits: CandleLimits,
    pub(crate) buckets: [Option<Box<Bucket>>; DAYS as usize],
    /// The latest day of an entry applied (never goes back).
    pub(crate) today: u32,
    /// Slot blocks of dropped buckets, for the buckets to come (not replicated state).
    pub(crate) spare_slots: Spares,
    /// Overflow pool blocks of dropped buckets.
    pub(crate) spare_overflow: Spares,
}

impl Ring {
    /// An empty ring.
    pub fn new(limits: CandleLimits) -> Self {
        Self {
            limits,
            buckets: Default::default(),
            today: 0,
            spare_slots: Spares::new(SLOT_BLOCK_BYTES),
            spare_overflow: Spares::new(POOL_BLOCK_BYTES),
        }
    }

    /// The limits it runs with.
    pub fn limits(&self) -> &CandleLimits {
        &self.limits
    }

    /// The ring's day: the latest of the entries applied.
    pub fn today(&self) -> u32 {
        self.today
    }

    /// Moves the clock to `day` (never back) and drops every bucket past its seven days, its
    /// blocks kept as spares (no record visited, nothing freed); returns how many it dropped.
    pub fn advance(&mut self, day: u32) -> u32 {
        self.today = self.today.max(day);
        let today = self.today;
        let mut dropped = 0;
        for b in &mut self.buckets {
            if let Some(bucket) = b.take_if(|b| !live_on(b.day, today)) {
                let Bucket { slots, pools, .. } = *bucket;
                self.spare_slots.retire(slots);
                for pool in pools {
                    self.spare_overflow.retire(pool);
                }
                dropped += 1;
            }
        }
        dropped
    }

    /// Frees at most `max` spare blocks past those the ring expects to need (module header);
    /// returns how many. Not replicated state: nothing a read, a snapshot or an apply sees.
    pub fn release_spares(&mut self, max: usize) -> usize {
        if self.spare_slots.count() == 0 && self.spare_overflow.count() == 0 {
            return 0; // every idle poll of a ring with nothing to give back: no bucket visited
        }
        let today = self.buckets[(self.today % DAYS) as usize].as_deref().filter(|b| b.day == self.today);
        let slots = |b: &Bucket| b.slots.block_count();
        let overflow = |b: &Bucket| b.pools.iter().map(Blocks::block_count).sum::<usize>();
        let keep = |blocks: &dyn Fn(&Bucket) -> usize| {
            let most = self.buckets.iter().flatten().map(|b| blocks(b)).max().unwrap_or(0);
            most.saturating_sub(today.map_or(0, blocks))
        };
        let (keep_slots, keep_overflow) = (keep(&slots), keep(&overflow));
        let freed = self.spare_slots.release(keep_slots, max);
        freed + self.spare_overflow.release(keep_overflow, max - freed)
    }

    /// Spare blocks kept (slot blocks, overflow blocks).
    pub fn spare_blocks(&self) -> (usize, usize) {
        (self.spare_slots.count(), self.spare_overflow.count())
    }

    /// The Unix ms at which the oldest bucket goes out (`None`: no bucket).
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.buckets.iter().flatten().map(|b| u64::from(b.day + DAYS) * DAY_MS).min()
    }

    /// Stores `light` lit at `lit_secs` by `owner` on the ring's day (after `advance`); returns
    /// its id, or what refused it with nothing changed.
    pub fn light(&mut self, light: &Light<'_>, lit_secs: u32, owner: u32) -> Result<CandleId, Refused> {
        let day = self.today;
        let limits = self.limits;
        let slot_index = (day % DAYS) as usize;
        let bucket = self.buckets[slot_index].get_or_insert_with(|| Box::new(Bucket::new(day)));
        debug_assert_eq!(bucket.day, day, "advance dropped the bucket of day - 7");
        if bucket.count >= limits.candles_per_day_max {
            return Err(Refused::CandlesFull);
        }
        for field in TextField::ALL {
            if let Some(value) = light.overflow[field.index()] {
                let after = bucket.pools[field.index()].len() + 2 + value.len();
                if after > limits.overflow_bytes_per_field_day_max as usize {
                    return Err(Refused::OverflowFull(field));
                }
            }
        }
        let mut slot = Slot(*light.slot);
        slot.set_lit_at(lit_secs);
        for field in TextField::ALL {
            if let Some(value) = light.overflow[field.index()] {
                let pool = &mut bucket.pools[field.index()];
                let offset = pool.len() as u32;
                pool.append(&(value.len() as u16).to_le_bytes(), &mut self.spare_overflow);
                pool.append(value, &mut self.spare_overflow);
                let placed = slot.set_overflow_offset(field, offset);
                debug_assert!(placed, "the parser matched values to overflow tags");
            }
        }
        bucket.slots.append(slot.as_bytes(), &mut self.spare_slots);
        let id = CandleId::new(day, bucket.count);
        bucket.count_slot(&slot);
        bucket.owners.add(owner, Usage { keys: 1, bytes: light_bytes(light) });
        Ok(id)
    }

    /// The candles and bytes `owner` holds in the buckets live on `request_day`.
    pub fn usage_of(&self, owner: u32, request_day: u32) -> Usage {
        self.live(request_day).fold(Usage::default(), |u, b| u.plus(b.owners.get(owner)))
    }

    /// The bucket of `day` if the ring holds it and it is live on `request_day`.
    pub(crate) fn bucket(&self, day: u32, request_day: u32) -> Option<&Bucket> {
        let b = self.buckets[(day % DAYS) as usize].as_deref()?;
        (b.day == day && live_on(day, request_day)).then_some(b)
    }

    /// The live buckets on `request_day`, newest first.
    pub(crate) fn live(&self, request_day: u32) -> impl Iterator<Item = &Bucket> + '_ {
        let mut live: [Option<&Bucket>; DAYS as usize] = [None; DAYS as usize];
        let mut n = 0;
        for b in self.buckets.iter().flatten().filter(|b| live_on(b.day, request_day)) {
            live[n] = Some(b);
            n += 1;
        }
        live[..n].sort_unstable_by_key(|b| std::cmp::Reverse(b.map(|b| b.day)));
        live.into_iter().flatten()
    }

    /// Candles stored (live or not yet dropped).
    pub fn len(&self) -> usize {
        self.buckets.iter().flatten().map(|b| b.count as usize).sum()
    }

    /// Whether no candle is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Candles live on `request_day`.
    pub fn count(&self, request_day: u32) -> u64 {
        self.live(request_day).map(|b| u64::from(b.count)).sum()
    }

    /// Live candles of city index `city` (`NO_CITY`: abroad) on `request_day`.
    pub fn count_city(&self, city: u16, request_day: u32) -> u64 {
        self.live(request_day).map(|b| u64::from(b.by_city[city_counter(city)])).sum()
    }

    /// Live candles by state index on `request_day`.
    pub fn count_states(&self, request_day: u32) -> [u64; STATE_COUNTERS] {
        let mut out = [0u64; STATE_COUNTERS];
        for b in self.live(request_day) {
            for (o, n) in out.iter_mut().zip(b.by_state.iter()) {
                *o += u64::from(*n);
            }
        }
        out
    }

    /// Bytes of memory the buckets and the spare blocks take.
    pub fn memory(&self) -> usize {
        let buckets: usize = self.buckets.iter().flatten().map(|b| b.memory()).sum();
        buckets + self.spare_slots.memory() + self.spare_overflow.memory()
    }

    /// Writes the candle `id` into `out` (see `Bucket::write_candle`) if it is live on
    /// `request_day`: `Ok(None)` if not found.
    pub fn get(&self, id: CandleId, request_day: u32, out: &mut [u8]) -> Result<Option<usize>, DoesNotFit> {
        match self.bucket(id.day(), request_day) {
            Some(b) if id.index() < b.count => b.write_candle(id.index(), out).map(Some).ok_or(DoesNotFit),
            _ => Ok(None),
        }
    }

    /// The ids of live candles on `request_day` below `before`, newest first.
    pub fn ids_before(&self, before: CandleId, request_day: u32) -> impl Iterator<Item = CandleId> + '_ {
        self.live(request_day).filter(move |b| b.day <= before.day()).flat_map(move |b| {
            let end = if b.day == before.day() { before.index().min(b.count) } else { b.count };
            (0..end).rev().map(move |i| CandleId::new(b.day, i))
        })
    }
}

/// Bytes a candle takes in its bucket: its slot and a framed value per overflowing field.
pub fn light_bytes(light: &Light<'_>) -> u64 {
    let overflow: usize = light.overflow.iter().flatten().map(|v| 2 + v.len()).sum();
    (SLOT_BYTES + overflow) as u64
}

/// Whether a bucket of `day` is live on `request_day` (before the start of day + 7).
pub(crate) fn live_on(day: u32, request_day: u32) -> bool {
    request_day < day.saturating_add(DAYS)
}

/// The day of a Unix time in ns.
pub fn day_of_ns(time_ns: u64) -> u32 {
    u32::try_from(time_ns / DAY_NS).unwrap_or(u32::MAX)
}

/// The day of a Unix time in ms.
pub fn day_of_ms(time_ms: u64) -> u32 {
    u32::try_from(time_ms / DAY_MS).unwrap_or(u32::MAX)
}
