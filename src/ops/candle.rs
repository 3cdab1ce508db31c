//! The candle store's requests on a shard (docs/PROTOCOL.md, "Candles"): their parsing, where
//! they run, and the translation between what clients send and see (a candle's client body,
//! public ids) and what the partition stores and answers (a LIGHT command of a slot and its
//! overflow values, ring ids, raw slots).
//!
//! A LIGHT runs on one of the receiving shard's own partitions, picked by the body's bytes (so a
//! retry lands where the first try did; never forwarded, so a candle's body is never bound by an
//! inbox slot): the body is decoded, validated at the request's date, encoded into its slot with
//! the current text model and proposed; its answer is the public id. Reads name a partition (or
//! an id, which carries it) and run on its owner, like KEYS_COUNT; the owner answers GET and LIST
//! raw, with public ids, and the shard that answers the client decodes the slots into client
//! bodies (`for_client`), so what crosses the inboxes is the compact form.
//!
//! Public id: partition (16 bits) << 48 | day (16 bits) << 32 | index in the day's bucket; the ring
//! id is the day (u32) << 32 | index, and days fit 16 bits until 2149.
//!
//! Invariants: nothing here panics on any bytes; a read's answer is written only into the buffer
//! given; a forwarded read is answered raw and decoded once, at the origin. After start-up a
//! LIGHT allocates nothing from its body to its command (the body is read in place, the codec's
//! contexts and buffers are the shard's, the command buffer is [`LIGHT_COMMAND_BYTES_MAX`]), and
//! neither does decoding a GET or LIST answer (`tests/candle_alloc.rs`).

use crate::candle::command::{light_len, write_light, LIGHT_FIXED_LEN};
use crate::candle::slot::{Slot, TextField, SLOT_BYTES};
use crate::candle::text::compressed_bytes_max;
use crate::candle::{self, tables, wire, CandleRef, Date, TextCodec};
use crate::projection::CommandHeader;
use crate::wire::{opcode, Status};
use xxhash_rust::xxh3::xxh3_64;

/// Bits of a public id below its partition.
const PARTITION_SHIFT: u32 = 48;
/// Bytes of a raw answer read from a partition of this shard (a LIST page's slots and values).
pub const RAW_ANSWER_BYTES: usize = 64 << 10;

/// Largest LIGHT command the encoder writes: the header and slot, and each text field in overflow
/// at the codec's bound for it (the shard's command buffer is this, made once).
pub fn light_command_bytes_max() -> usize {
    LIGHT_FIXED_LEN + TextField::ALL.iter().map(|&f| 2 + compressed_bytes_max(f)).sum::<usize>()
}

/// A candle request, parsed once.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CandleRequest<'a> {
    /// LIGHT: the client body, with the request's client id and id (the command's header).
    Light { body: &'a [u8], client_id: u64, seq: u64 },
    /// GET of a public id.
    Get(u64),
    /// LIST of a partition after a public-id cursor.
    List { partition: u16, cursor: u64, limit: u16 },
    /// COUNT, COUNT_STATES of a partition.
    Count { op: u8, partition: u16 },
    /// COUNT_CITY of a partition: the IBGE code (0: abroad).
    CountCity { partition: u16, ibge: u32 },
}

/// Whether `op` is a candle request.
pub(crate) fn is_candle(op: u8) -> bool {
    (opcode::CANDLE_LIGHT..=opcode::CANDLE_COUNT_STATES).contains(&op)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl<'a> CandleRequest<'a> {
    /// Parses a candle request; `BAD_LENGTH` for a body of the wrong size.
    pub(crate) fn parse(op: u8, client_id: u64, seq: u64, body: &'a [u8]) -> Result<Self, Status> {
        let exact = |n: usize| if body.len() == n { Ok(()) } else { Err(Status::BadLength) };
        Ok(match op {
            opcode::CANDLE_LIGHT => CandleRequest::Light { body, client_id, seq },
            opcode::CANDLE_GET => {
                exact(8)?;
                CandleRequest::Get(u64_at(body, 0).ok_or(Status::BadLength)?)
            }
            opcode::CANDLE_LIST => {
                exact(12)?;
                let partition = u16_at(body, 0).ok_or(Status::BadLength)?;
                let cursor = u64_at(body, 2).ok_or(Status::BadLength)?;
                let limit = u16_at(body, 10).ok_or(Status::BadLength)?;
                CandleRequest::List { partition, cursor, limit }
            }
            opcode::CANDLE_COUNT | opcode::CANDLE_COUNT_STATES => {
                exact(2)?;
                CandleRequest::Count { op, partition: u16_at(body, 0).ok_or(Status::BadLength)? }
            }
            opcode::CANDLE_COUNT_CITY => {
                exact(6)?;
                let partition = u16_at(body, 0).ok_or(Status::BadLength)?;
                CandleRequest::CountCity { partition, ibge: u32_at(body, 2).ok_or(Status::BadLength)? }
            }
            _ => return Err(Status::UnknownOpcode),
        })
    }

    /// The partition a read names (`None` for LIGHT, which picks one of the shard's own).
    pub(crate) fn partition(&self) -> Option<u16> {
        match *self {
            CandleRequest::Light { .. } => None,
            CandleRequest::Get(id) => Some((id >> PARTITION_SHIFT) as u16),
            CandleRequest::List { partition, .. }
            | CandleRequest::Count { partition, .. }
            | CandleRequest::CountCity { partition, .. } => Some(partition),
        }
    }
}

/// The public id of ring id `ring` in `partition`.
pub fn public_id(partition: u16, ring: u64) -> u64 {
    u64::from(partition) << PARTITION_SHIFT | (ring >> 32 & 0xFFFF) << 32 | (ring & 0xFFFF_FFFF)
}

/// The ring id a public id names (`u64::MAX`, a cursor from the newest, stays itself).
pub fn ring_id(public: u64) -> u64 {
    if public == u64::MAX {
        return u64::MAX;
    }
    (public >> 32 & 0xFFFF) << 32 | (public & 0xFFFF_FFFF)
}

/// Which of a shard's `count` partitions (by position) a LIGHT with `body` runs on.
pub(crate) fn light_index(count: usize, body: &[u8]) -> usize {
    (xxh3_64(body) % count.max(1) as u64) as usize
}

/// A shard's candle state: the text codec (zstd contexts and text buffers, made once) and the
/// buffers a LIGHT is encoded into ([`light_command_bytes_max`]), a raw answer read from
/// ([`RAW_ANSWER_BYTES`]) and a client body written into (`wire::WIRE_BYTES_MAX`).
pub struct CandleOps {
    codec: TextCodec<'static>,
    command: Vec<u8>,
    raw: Vec<u8>,
    body: Vec<u8>,
}

impl std::fmt::Debug for CandleOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandleOps").finish_non_exhaustive()
    }
}

impl Default for CandleOps {
    fn default() -> Self {
        Self::new()
    }
}

impl CandleOps {
    /// A shard's candle state over the built-in text models.
    pub fn new() -> Self {
        Self {
            codec: TextCodec::new(candle::Registry::builtin()),
            command: Vec::with_capacity(light_command_bytes_max()),
            raw: vec![0; RAW_ANSWER_BYTES],
            body: Vec::with_capacity(wire::WIRE_BYTES_MAX),
        }
    }

    /// The LIGHT command for a client body at `now_ms` (the request's time: the date validation
    /// compares the birth date with), borrowed until the next call. Allocates nothing: the body
    /// is read in place, encoded in the codec's buffers and written into the command buffer.
    pub fn light_command(
        &mut self,
        body: &[u8],
        client_id: u64,
        seq: u64,
        now_ms: u64,
    ) -> Result<&[u8], Status> {
        let c = wire::read_ref(body).map_err(|_| Status::BadRequest)?;
        let today = Date::from_unix_days((now_ms / 86_400_000) as i64);
        let encoded = candle::encode_ref(&c, today, &mut self.codec).map_err(|e| match e {
            candle::CandleError::OverflowTooLong { .. } => Status::ValueTooLarge,
            candle::CandleError::Compress(_) => Status::Malformed,
            _ => Status::Invalid,
        })?;
        let len = light_len(&encoded.overflow);
        // Within the capacity made at start: the codec's values are at most their bounds.
        self.command.resize(len, 0);
        let header = CommandHeader { kind: opcode::CANDLE_LIGHT, client_id, seq };
        write_light(header, &encoded.slot, encoded.overflow, &mut self.command);
        Ok(&self.command)
    }

    /// The raw answer buffer a read on this shard's partition is written into.
    pub(crate) fn raw_buffer(&mut self) -> &mut [u8] {
        &mut self.raw
    }

    /// The raw answer read (`len` bytes) beside the rest of the state, to translate it.
    pub(crate) fn split_raw(&mut self, len: usize) -> (&[u8], RawReader<'_>) {
        (&self.raw[..len], RawReader { codec: &mut self.codec, body: &mut self.body })
    }

    /// Rewrites a raw GET or LIST answer (in `raw_buffer`, `len` bytes) of `partition` with public
    /// ids, in place; other answers are left as they are.
    pub(crate) fn publish_ids(&mut self, op: u8, partition: u16, len: usize) -> Result<(), Status> {
        if op != opcode::CANDLE_LIST {
            return Ok(());
        }
        let raw = &mut self.raw[..len];
        let n = u16_at(raw, 0).ok_or(Status::Malformed)?;
        let mut at = 3;
        for _ in 0..n {
            let ring = u64_at(raw, at).ok_or(Status::Malformed)?;
            raw[at..at + 8].copy_from_slice(&public_id(partition, ring).to_le_bytes());
            at += 8 + raw_candle_len(&raw[at + 8..]).ok_or(Status::Malformed)?;
        }
        Ok(())
    }

    /// Translates a raw answer of `op` into the client's answer in `out` (`RawReader::for_client`).
    pub fn for_client(&mut self, op: u8, raw: &[u8], out: &mut [u8]) -> Result<usize, Status> {
        RawReader { codec: &mut self.codec, body: &mut self.body }.for_client(op, raw, out)
    }
}

/// Decodes raw candle answers for clients, with a shard's codec and body buffer.
pub(crate) struct RawReader<'a> {
    codec: &'a mut TextCodec<'static>,
    body: &'a mut Vec<u8>,
}

impl RawReader<'_> {
    /// Translates a raw answer of `op` (GET, LIST: slots and overflow values; the counts as
    /// they are, COUNT_STATES by state index) into the client's answer in `out`.
    pub(crate) fn for_client(&mut self, op: u8, raw: &[u8], out: &mut [u8]) -> Result<usize, Status> {
        match op {
            opcode::CANDLE_GET => {
                let (lit_at, _) = self.body_of_raw(raw)?;
                put(out, 0, &[&lit_at.to_le_bytes(), self.body])
            }
            opcode::CANDLE_LIST => self.list_to_client(raw, out),
            _ => put(out, 0, &[raw]),
        }
    }

    fn list_to_client(&mut self, raw: &[u8], out: &mut [u8]) -> Result<usize, Status> {
        let n = u16_at(raw, 0).ok_or(Status::Malformed)?;
        let mut more = *raw.get(2).ok_or(Status::Malformed)?;
        let (mut given, mut at, mut w) = (0u16, 3usize, 3usize);
        for _ in 0..n {
            let id = u64_at(raw, at).ok_or(Status::Malformed)?;
            let (lit_at, len) = self.body_of_raw(&raw[at + 8..])?;
            at += 8 + len;
            let body_len = (self.body.len() as u16).to_le_bytes();
            match put(out, w, &[&id.to_le_bytes(), &lit_at.to_le_bytes(), &body_len, self.body]) {
                Ok(end) => w = end,
                // What does not fit waits for the next page (its cursor: the last id given).
                Err(_) if given > 0 => {
                    more = 1;
                    break;
                }
                Err(status) => return Err(status),
            }
            given += 1;
        }
        put(out, 0, &[&given.to_le_bytes(), &[more]])?;
        Ok(w)
    }

    /// Decodes one raw candle (a slot and its overflow values) into `body` as its client body;
    /// returns its lit time and raw length.
    fn body_of_raw(&mut self, raw: &[u8]) -> Result<(u32, usize), Status> {
        let (c, lit_at, len) = decode_raw(self.codec, raw)?;
        self.body.clear();
        wire::write_ref(&c, self.body);
        Ok((lit_at, len))
    }
}

/// Decodes one raw candle (a slot and its overflow values), its texts lent by `codec`; also its
/// lit time and length.
fn decode_raw<'c>(
    codec: &'c mut TextCodec<'static>,
    raw: &[u8],
) -> Result<(CandleRef<'c>, u32, usize), Status> {
    let len = raw_candle_len(raw).ok_or(Status::Malformed)?;
    let slot = Slot(raw[..SLOT_BYTES].try_into().map_err(|_| Status::Malformed)?);
    let mut overflow: [Option<&[u8]>; 3] = [None; 3];
    let mut at = SLOT_BYTES;
    for f in TextField::ALL {
        if slot.overflow_flag(f) {
            let n = usize::from(u16_at(raw, at).ok_or(Status::Malformed)?);
            overflow[f.index()] = Some(&raw[at + 2..at + 2 + n]);
            at += 2 + n;
        }
    }
    let c = candle::decode_ref(&slot, overflow, codec).map_err(|_| Status::Malformed)?;
    Ok((c, slot.lit_at(), len))
}

/// Bytes of the raw candle at the start of `raw`: its slot and its overflow values.
fn raw_candle_len(raw: &[u8]) -> Option<usize> {
    let slot = Slot(raw.get(..SLOT_BYTES)?.try_into().ok()?);
    let mut at = SLOT_BYTES;
    for f in TextField::ALL {
        if slot.overflow_flag(f) {
            at += 2 + usize::from(u16_at(raw, at)?);
        }
    }
    (at <= raw.len()).then_some(at)
}

/// Writes `parts` into `out` from `at`; returns the end, or `RESPONSE_TOO_LARGE`.
fn put(out: &mut [u8], at: usize, parts: &[&[u8]]) -> Result<usize, Status> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let dst = out.get_mut(at..at + len).ok_or(Status::ResponseTooLarge)?;
    let mut w = 0;
    for p in parts {
        dst[w..w + p.len()].copy_from_slice(p);
        w += p.len();
    }
    Ok(at + len)
}

/// The ring's read body for a request (`into`: at least 12 bytes); its length.
pub(crate) fn ring_body(request: &CandleRequest<'_>, into: &mut [u8; 12]) -> Result<usize, Status> {
    match *request {
        CandleRequest::Get(id) => {
            into[..8].copy_from_slice(&ring_id(id).to_le_bytes());
            Ok(8)
        }
        CandleRequest::List { cursor, limit, .. } => {
            into[..8].copy_from_slice(&ring_id(cursor).to_le_bytes());
            into[8..10].copy_from_slice(&limit.to_le_bytes());
            Ok(10)
        }
        CandleRequest::Count { .. } => Ok(0),
        CandleRequest::CountCity { ibge, .. } => {
            let city = match ibge {
                0 => candle::slot::NO_CITY,
                code => tables::tables().city_index(code).ok_or(Status::NotFound)?,
            };
            into[..2].copy_from_slice(&city.to_le_bytes());
            Ok(2)
        }
        CandleRequest::Light { .. } => Err(Status::BadRequest),
    }
}

/// The ring's opcode for a read request.
pub(crate) fn read_opcode(request: &CandleRequest<'_>) -> u8 {
    match *request {
        CandleRequest::Get(_) => opcode::CANDLE_GET,
        CandleRequest::List { .. } => opcode::CANDLE_LIST,
        CandleRequest::Count { op, .. } => op,
        CandleRequest::CountCity { .. } => opcode::CANDLE_COUNT_CITY,
        CandleRequest::Light { .. } => opcode::CANDLE_LIGHT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_ids_carry_the_partition_and_give_back_the_ring_id() {
        let ring = (20_000u64 << 32) | 77;
        let public = public_id(3, ring);
        assert_eq!(public >> 48, 3);
        assert_eq!(ring_id(public), ring);
        assert_eq!(ring_id(u64::MAX), u64::MAX);
        let body = public.to_le_bytes();
        let r = CandleRequest::parse(opcode::CANDLE_GET, 0, 0, &body).unwrap();
        assert_eq!(r.partition(), Some(3));
    }

    #[test]
    fn the_command_buffer_holds_the_largest_light() {
        assert_eq!(light_command_bytes_max(), 4_583, "docs/CANDLES.md states it");
        let mut ops = CandleOps::new();
        let mut c = crate::candle::corpus::long_record();
        c.name = "ж".repeat(60);
        c.address = "中".repeat(53);
        // 800 characters of 2 bytes in an order zstd finds no use for.
        c.prayer = (0..800u32).filter_map(|i| char::from_u32(0x400 + (i * 7_919 + i * i) % 255)).collect();
        let mut body = Vec::new();
        wire::write(&c, &mut body);
        let capacity = ops.command.capacity();
        let now_ms = 1_767_225_600_000; // 2026-01-01
        let command = ops.light_command(&body, 1, 1, now_ms).expect("lit");
        assert!(command.len() <= light_command_bytes_max());
        let Ok(crate::candle::command::CandleCommand::Light(light)) = crate::candle::command::parse(command)
        else {
            panic!("a LIGHT")
        };
        assert!(light.overflow.iter().all(Option::is_some), "every field in overflow");
        assert_eq!(ops.command.capacity(), capacity, "within the buffer made at start");
    }

    #[test]
    fn bodies_of_the_wrong_size_are_refused() {
        for (op, len) in [
            (opcode::CANDLE_GET, 7),
            (opcode::CANDLE_LIST, 11),
            (opcode::CANDLE_COUNT, 3),
            (opcode::CANDLE_COUNT_CITY, 5),
            (opcode::CANDLE_COUNT_STATES, 0),
        ] {
            assert_eq!(CandleRequest::parse(op, 0, 0, &vec![0; len]).err(), Some(Status::BadLength), "{op}");
        }
        assert_eq!(CandleRequest::parse(0x36, 0, 0, &[]).err(), Some(Status::UnknownOpcode));
    }
}
