//! The candle projection: the ring (`ring`) behind the partition's projection seam, under
//! `TAG_CANDLE`. It applies LIGHT and ROTATE (`command`), answers the candle reads at the
//! request's time, and writes and loads its snapshot section (`snapshot`).
//!
//! Apply: the entry's stamp (`Applied::time_ns`, the leader's clock) moves the ring's clock
//! (never back), which drops every bucket past its seven days; a LIGHT is then stamped with that
//! clock (its lit time) and stored in today's bucket, its overflow values placed in the pools and
//! their offsets patched into the slot; the answer is its id (`ApplyResult::Lit`), or `Full` with
//! nothing changed, or `QuotaExceeded` when its writer has a quota (`projection::owner`) that one
//! more candle (a key) of its bytes would pass, counting what the writer holds in the live
//! buckets and in the partition's other projections (`Applied::others`). ROTATE does only the first part (`ApplyResult::Rotated`): the leader proposes
//! it when a bucket is due and no write comes (`partition::candle`), so memory comes back and
//! every replica and replay drops the bucket at the same entry.
//!
//! Reads (bodies little-endian; answers written into the caller's buffer, nothing allocated):
//! - `CANDLE_GET`: body `u64 id`; answer the slot (128 bytes) then each overflow value as `u16
//!   len, bytes` in field order (the LIGHT layout after its header); `NOT_FOUND` for an id never
//!   issued, expired or past its seven days at the request's time.
//! - `CANDLE_LIST`: body `u64 cursor, u16 limit`: live candles with ids below the cursor
//!   (`u64::MAX`: from the newest), newest first, at most `min(limit, list_page_max)` and what
//!   fits `out`; answer `u16 n, u8 more` then per candle `u64 id` and its GET answer. The next
//!   page's cursor is the last id given; `more` says whether older live candles remain.
//! - `CANDLE_COUNT`: empty body; answer `u64` live candles.
//! - `CANDLE_COUNT_CITY`: body `u16` city index (`NO_CITY`: abroad; another index past the table
//!   is `BAD_REQUEST`); answer `u64`.
//! - `CANDLE_COUNT_STATES`: empty body; answer 32 `u64`, by state index (`NO_STATE` last).
//!
//! Invariants: apply is a function of the ring, the entry's stamp and the command's bytes; a
//! read at a time past a candle's seven days never sees it, whether or not the ring rotated.

use super::command::{self, CandleCommand, Light, CITIES};
use super::ring::{
    day_of_ms, day_of_ns, light_bytes, CandleId, CandleLimits, DoesNotFit, Refused, Ring, STATE_COUNTERS,
};
use super::slot::NO_CITY;
use crate::projection::{
    Applied, ApplyResult, Projection, SectionCapture, SectionReader, SnapshotChunk, SnapshotError, Usage,
};
use crate::wire::{opcode, Status};
use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;

/// Projection tag of the candle store.
pub const TAG_CANDLE: u8 = 2;

/// Spare blocks (64 KiB or 16 KiB) one upkeep frees at most: a few microseconds of giving pages
/// back, taken only while no request waits.
pub const SPARES_FREED_PER_UPKEEP: usize = 1;

/// The candle projection of one partition (see the module header).
#[derive(Debug)]
pub struct CandleProjection {
    pub(crate) ring: Ring,
    /// The latest entry stamp applied, ns since the Unix epoch.
    pub(crate) now_ns: u64,
    /// The blocks of a snapshot capture still to give (`snapshot`).
    pub(crate) capture: Option<VecDeque<Arc<[u8]>>>,
}

impl CandleProjection {
    /// An empty projection; panics if the limits are invalid (config validates them).
    pub fn new(limits: CandleLimits) -> Self {
        if let Err(e) = limits.validate() {
            panic!("candle limits: {e}");
        }
        Self { ring: Ring::new(limits), now_ns: 0, capture: None }
    }

    /// The ring.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// The Unix ms at which the oldest bucket goes out, if any (the leader proposes a ROTATE
    /// once its clock passes it).
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.ring.next_expiry_ms()
    }

    /// Moves the clock to an entry's stamp and drops the buckets past their days.
    fn advance(&mut self, time_ns: u64) -> u32 {
        self.now_ns = self.now_ns.max(time_ns);
        self.ring.advance(day_of_ns(self.now_ns))
    }

    /// Applies a parsed command at `at` (see the module header).
    pub fn apply_command(&mut self, at: Applied, cmd: &CandleCommand<'_>) -> ApplyResult {
        let dropped = self.advance(at.time_ns);
        match cmd {
            CandleCommand::Rotate(_) => ApplyResult::Rotated { buckets: dropped },
            CandleCommand::Light(light) => {
                if let Some(refused) = self.quota_refuses(&at, light) {
                    return refused;
                }
                let lit_secs = u32::try_from(self.now_ns / 1_000_000_000).unwrap_or(u32::MAX);
                match self.ring.light(light, lit_secs, at.owner.key_id) {
                    Ok(id) => ApplyResult::Lit { id: id.0 },
                    Err(Refused::CandlesFull | Refused::OverflowFull(_)) => ApplyResult::Full,
                }
            }
        }
    }

    /// `QuotaExceeded` if the writer has a quota and one more candle of this LIGHT's bytes, with
    /// what it holds in the live buckets and elsewhere in the partition, would pass it.
    fn quota_refuses(&self, at: &Applied, light: &Light<'_>) -> Option<ApplyResult> {
        let quota = at.owner.quota?;
        let held = self.ring.usage_of(at.owner.key_id, day_of_ns(self.now_ns)).plus(at.others);
        let candle = Usage { keys: 1, bytes: light_bytes(light) };
        quota.refuses(held, candle).then_some(ApplyResult::QuotaExceeded)
    }

    /// Answers a read (see the module header) at `now_ms`, the request's time (Unix ms).
    pub fn answer_read(&self, op: u8, body: &[u8], now_ms: u64, out: &mut [u8]) -> Result<usize, Status> {
        let day = day_of_ms(now_ms);
        match op {
            opcode::CANDLE_GET => {
                let id = CandleId(u64::from_le_bytes(body.try_into().map_err(|_| Status::BadLength)?));
                match self.ring.get(id, day, out) {
                    Ok(Some(n)) => Ok(n),
                    Ok(None) => Err(Status::NotFound),
                    Err(DoesNotFit) => Err(Status::ResponseTooLarge),
                }
            }
            opcode::CANDLE_LIST => self.list(body, day, out),
            opcode::CANDLE_COUNT if body.is_empty() => put_u64s(out, &[self.ring.count(day)]),
            opcode::CANDLE_COUNT_CITY => {
                let city = u16::from_le_bytes(body.try_into().map_err(|_| Status::BadLength)?);
                if usize::from(city) >= CITIES && city != NO_CITY {
                    return Err(Status::BadRequest);
                }
                put_u64s(out, &[self.ring.count_city(city, day)])
            }
            opcode::CANDLE_COUNT_STATES if body.is_empty() => {
                let counts: [u64; STATE_COUNTERS] = self.ring.count_states(day);
                put_u64s(out, &counts)
            }
            opcode::CANDLE_COUNT | opcode::CANDLE_COUNT_STATES => Err(Status::BadLength),
            _ => Err(Status::UnknownOpcode),
        }
    }

    fn list(&self, body: &[u8], day: u32, out: &mut [u8]) -> Result<usize, Status> {
        if body.len() != 10 {
            return Err(Status::BadLength);
        }
        let cursor = CandleId(u64::from_le_bytes(body[..8].try_into().expect("8 bytes")));
        let limit = u16::from_le_bytes([body[8], body[9]]).min(self.ring.limits().list_page_max);
        if out.len() < 3 {
            return Err(Status::ResponseTooLarge);
        }
        let (mut n, mut at, mut more) = (0u16, 3usize, false);
        for id in self.ring.ids_before(cursor, day) {
            if n == limit {
                more = true;
                break;
            }
            let Some(room) = out.get_mut(at + 8..) else {
                more = true;
                break;
            };
            match self.ring.get(id, day, room) {
                Ok(Some(len)) => {
                    out[at..at + 8].copy_from_slice(&id.0.to_le_bytes());
                    at += 8 + len;
                    n += 1;
                }
                Ok(None) => unreachable!("listed ids are live"),
                Err(DoesNotFit) => {
                    more = true;
                    break;
                }
            }
        }
        if n == 0 && more && limit > 0 {
            return Err(Status::ResponseTooLarge);
        }
        out[..2].copy_from_slice(&n.to_le_bytes());
        out[2] = u8::from(more);
        Ok(at)
    }
}

fn put_u64s(out: &mut [u8], values: &[u64]) -> Result<usize, Status> {
    let len = values.len() * 8;
    let out = out.get_mut(..len).ok_or(Status::ResponseTooLarge)?;
    for (chunk, v) in out.chunks_exact_mut(8).zip(values) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    Ok(len)
}

impl Projection for CandleProjection {
    fn tag(&self) -> u8 {
        TAG_CANDLE
    }

    fn check(&self, command: &[u8]) -> Option<ApplyResult> {
        command::parse(command).err().map(|_| ApplyResult::Malformed)
    }

    fn apply(&mut self, at: Applied, command: &[u8]) -> ApplyResult {
        match command::parse(command) {
            Ok(cmd) => self.apply_command(at, &cmd),
            Err(_) => ApplyResult::Malformed,
        }
    }

    fn read(&self, opcode: u8, body: &[u8], out: &mut [u8]) -> Result<usize, Status> {
        // Through the router no request time is known: the last entry's time stands for it.
        self.answer_read(opcode, body, self.now_ns / 1_000_000, out)
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
        _applied_lsn: u64,
    ) -> Result<(), SnapshotError> {
        *self = Self::read_section(section, *self.ring.limits())?;
        Ok(())
    }

    fn upkeep(&mut self) -> bool {
        self.ring.release_spares(SPARES_FREED_PER_UPKEEP) == SPARES_FREED_PER_UPKEEP
    }

    fn usage_of(&self, owner: u32, time_ns: u64) -> Usage {
        self.ring.usage_of(owner, day_of_ns(time_ns.max(self.now_ns)))
    }

    fn len(&self) -> usize {
        self.ring.len()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
