//! The candle projection's snapshot section: the ring's clock and its buckets, with their slots
//! and overflow pools as raw bytes. Counts are not written: the load rebuilds them from the slots.
//!
//! Layout (little-endian):
//!
//! | size | field |
//! |-----:|-------|
//! | 1 | section version: 2 |
//! | 8 | the ring's clock: the latest entry stamp applied, ns since the Unix epoch |
//! | 1 | buckets `n` (at most 7), then per bucket, by ascending day: |
//! | 4+4+3x4 | day, candles, and the bytes of each of the three overflow pools |
//! | 2 | owners `m`, then per owner by ascending key id: u32 key id, u32 candles, u64 bytes (what it lit that day, `projection::owner`) |
//! | .. | then per bucket, in the same order: its slots (candles x 128 bytes), then its pools |
//!
//! Version 1 (before quotas) has no owners; it loads with every candle anonymous.
//!
//! Capture without a copy (`begin_section_capture`): everything up to the bucket headers is
//! encoded at the capture (the head); the bytes that follow are the buckets' blocks, the filled
//! ones shared by pointer (they never change: `blocks`) and each partial tail copied (at most
//! 4 x 7 blocks). The chunks hand the blocks over as they come, encoded off the shard's thread.
//!
//! Load (`read_section`) streams the bytes into blocks of the new ring (no buffer of the
//! section), then checks every slot: this layout version, occupied, lit on its bucket's day, a
//! city in the table, a text region that parses with flags that agree, every overflow reference
//! at a whole frame of its pool; the owners' candles and bytes adding up to the bucket's; and the
//! limits. Nothing is kept unless all hold.

use super::blocks::Blocks;
use super::command::{check_text, CITIES};
use super::projection::CandleProjection;
use super::ring::{day_of_ns, frame_len, live_on, Bucket, CandleLimits, Ring, DAYS};
use super::slot::{text_fields, Slot, TextRef, LAYOUT_VERSION, NO_CITY, SLOT_BYTES};
use crate::projection::owner::ANONYMOUS_OWNER;
use crate::projection::{
    FieldRead, SectionCapture, SectionReader, SnapshotChunk, SnapshotError, SnapshotSink, Usage, UsageTable,
};
use std::collections::VecDeque;
use std::sync::Arc;

/// The section's version.
const SECTION_VERSION: u8 = 2;
/// The version before quotas: no owners.
const SECTION_VERSION_V1: u8 = 1;

/// Puts a block's bytes as they are.
fn put_raw(block: &[u8], out: &mut dyn SnapshotSink) {
    out.put(block);
}

impl CandleProjection {
    /// The buckets in section order (ascending day).
    fn buckets_by_day(&self) -> Vec<&Bucket> {
        let mut buckets: Vec<&Bucket> = self.ring.buckets.iter().flatten().map(|b| &**b).collect();
        buckets.sort_unstable_by_key(|b| b.day);
        buckets
    }

    fn write_head(&self, out: &mut Vec<u8>) {
        let buckets = self.buckets_by_day();
        out.push(SECTION_VERSION);
        out.extend_from_slice(&self.now_ns.to_le_bytes());
        out.push(buckets.len() as u8);
        for b in &buckets {
            out.extend_from_slice(&b.day.to_le_bytes());
            out.extend_from_slice(&b.count.to_le_bytes());
            for pool in &b.pools {
                out.extend_from_slice(&(pool.len() as u32).to_le_bytes());
            }
            let owners = u16::try_from(b.owners.len()).expect("at most one owner per candle, 65535 a day");
            out.extend_from_slice(&owners.to_le_bytes());
            for (owner, u) in b.owners.iter() {
                out.extend_from_slice(&owner.to_le_bytes());
                out.extend_from_slice(&(u.keys as u32).to_le_bytes());
                out.extend_from_slice(&u.bytes.to_le_bytes());
            }
        }
    }

    /// The buckets' blocks in section order (filled blocks shared, tails copied).
    fn blocks(&self) -> VecDeque<Arc<[u8]>> {
        let mut blocks = Vec::new();
        for b in self.buckets_by_day() {
            b.slots.capture(&mut blocks);
            for pool in &b.pools {
                pool.capture(&mut blocks);
            }
        }
        blocks.into()
    }

    /// The whole section, encoded now.
    pub(crate) fn write_section(&self, out: &mut Vec<u8>) {
        self.write_head(out);
        for block in self.blocks() {
            out.extend_from_slice(&block);
        }
    }

    /// Starts a capture (see the module header).
    pub(crate) fn begin_section_capture(&mut self) -> SectionCapture {
        let mut head = Vec::new();
        self.write_head(&mut head);
        let blocks = self.blocks();
        if blocks.is_empty() {
            self.capture = None;
            return SectionCapture::Bytes(head);
        }
        let byte_len = head.len() as u64 + blocks.iter().map(|b| b.len() as u64).sum::<u64>();
        self.capture = Some(blocks);
        SectionCapture::Chunked { byte_len, head }
    }

    /// Gives the capture's next blocks; true once all were given.
    pub(crate) fn section_chunk(&mut self, chunk: &mut SnapshotChunk) -> bool {
        let Some(blocks) = self.capture.as_mut() else { return true };
        chunk.encode = Some(put_raw);
        while chunk.blocks.len() < chunk.blocks_max {
            let Some(block) = blocks.pop_front() else { break };
            chunk.blocks.push(block);
        }
        let done = blocks.is_empty();
        if done {
            self.capture = None;
        }
        done
    }

    /// A projection loaded from a section (see the module header).
    pub(crate) fn read_section(
        r: &mut SectionReader<'_>,
        limits: CandleLimits,
    ) -> Result<Self, SnapshotError> {
        let version = r.u8()?;
        if version != SECTION_VERSION && version != SECTION_VERSION_V1 {
            return Err(SnapshotError::Invalid("unknown candle section version"));
        }
        let now_ns = r.u64()?;
        let today = day_of_ns(now_ns);
        let n = r.u8()?;
        if u32::from(n) > DAYS {
            return Err(SnapshotError::Invalid("more than seven candle buckets"));
        }
        let mut headers = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let (day, count) = (r.u32()?, r.u32()?);
            let pools = [r.u32()?, r.u32()?, r.u32()?];
            check_header(&headers, day, count, &pools, today, &limits)?;
            let owners = match version {
                SECTION_VERSION_V1 => anonymous_owners(count, &pools),
                _ => read_owners(r, count, &pools)?,
            };
            headers.push((day, count, pools, owners));
        }
        let mut ring = Ring::new(limits);
        ring.today = today;
        for (day, count, pools, owners) in headers {
            let mut bucket = load_bucket(r, day, count, pools, &mut ring)?;
            bucket.owners = owners;
            ring.buckets[(day % DAYS) as usize] = Some(Box::new(bucket));
        }
        Ok(Self { ring, now_ns, capture: None })
    }
}

/// What a bucket of `count` candles and `pools` overflow bytes holds in all.
fn bucket_usage(count: u32, pools: &[u32; 3]) -> Usage {
    let bytes = u64::from(count) * SLOT_BYTES as u64 + pools.iter().map(|p| u64::from(*p)).sum::<u64>();
    Usage { keys: u64::from(count), bytes }
}

/// The owners of a bucket from before quotas: every candle anonymous.
fn anonymous_owners(count: u32, pools: &[u32; 3]) -> UsageTable {
    let mut owners = UsageTable::default();
    if count > 0 {
        owners.add(ANONYMOUS_OWNER, bucket_usage(count, pools));
    }
    owners
}

/// Reads a bucket's owners and checks them against its `count` candles and `pools` bytes:
/// ascending key ids, at least one candle each, adding up to the bucket.
fn read_owners(r: &mut SectionReader<'_>, count: u32, pools: &[u32; 3]) -> Result<UsageTable, SnapshotError> {
    let n = r.u16()?;
    if u32::from(n) > count {
        return Err(SnapshotError::Invalid("more owners than candles in a bucket"));
    }
    let mut owners = UsageTable::default();
    let mut last = None;
    for _ in 0..n {
        let (owner, candles, bytes) = (r.u32()?, r.u32()?, r.u64()?);
        if last.is_some_and(|o| o >= owner) || candles == 0 {
            return Err(SnapshotError::Invalid("a bucket's owners are not ascending, or one lit nothing"));
        }
        last = Some(owner);
        owners.add(owner, Usage { keys: u64::from(candles), bytes });
    }
    if owners.total() != bucket_usage(count, pools) {
        return Err(SnapshotError::Invalid("a bucket's owners do not add up to its candles and bytes"));
    }
    Ok(owners)
}

fn check_header(
    before: &[(u32, u32, [u32; 3], UsageTable)],
    day: u32,
    count: u32,
    pools: &[u32; 3],
    today: u32,
    limits: &CandleLimits,
) -> Result<(), SnapshotError> {
    if before.last().is_some_and(|(d, _, _, _)| *d >= day) {
        return Err(SnapshotError::Invalid("candle buckets are not in ascending days"));
    }
    if day > today || !live_on(day, today) {
        return Err(SnapshotError::Invalid("a candle bucket is not of the ring's last seven days"));
    }
    if count > limits.candles_per_day_max {
        return Err(SnapshotError::ExceedsLimits("more candles in a day than candles_per_day_max"));
    }
    if pools.iter().any(|p| *p > limits.overflow_bytes_per_field_day_max) {
        return Err(SnapshotError::ExceedsLimits("an overflow pool over overflow_bytes_per_field_day_max"));
    }
    Ok(())
}

fn load_bucket(
    r: &mut SectionReader<'_>,
    day: u32,
    count: u32,
    pools: [u32; 3],
    ring: &mut Ring,
) -> Result<Bucket, SnapshotError> {
    let mut bucket = Bucket::new(day);
    bucket.slots.load(r, count as usize * SLOT_BYTES, &mut ring.spare_slots)?;
    for (pool, len) in bucket.pools.iter_mut().zip(pools) {
        pool.load(r, len as usize, &mut ring.spare_overflow)?;
    }
    for index in 0..count {
        let slot = Slot(*bucket.slot(index));
        check_slot(&slot, day, &bucket.pools)?;
        bucket.count_slot(&slot);
    }
    Ok(bucket)
}

fn check_slot(slot: &Slot, day: u32, pools: &[Blocks; 3]) -> Result<(), SnapshotError> {
    if slot.layout_version() != LAYOUT_VERSION || !slot.occupied() {
        return Err(SnapshotError::Invalid("a candle slot of another layout, or empty"));
    }
    if slot.lit_at() / 86_400 != day {
        return Err(SnapshotError::Invalid("a candle lit on another day than its bucket's"));
    }
    if usize::from(slot.city()) >= CITIES && slot.city() != NO_CITY {
        return Err(SnapshotError::Invalid("a candle's city is outside the table"));
    }
    check_text(slot, false).map_err(|_| SnapshotError::Invalid("a candle's text region does not parse"))?;
    let refs = text_fields(slot).expect("checked");
    for (field, r) in refs.iter().enumerate() {
        if let TextRef::Overflow { offset, .. } = *r {
            if frame_len(&pools[field], offset as usize).is_none() {
                return Err(SnapshotError::Invalid("a candle's overflow reference is not a whole frame"));
            }
        }
    }
    Ok(())
}
