//! The record codec: a validated [`Candle`] to a 128-byte [`Slot`] (plus the values of text fields
//! that do not fit inline) and back.
//!
//! Encoding joins name and e-mail, and address and neighbourhood, with a `\n` (validation refuses
//! control characters, so the split is unambiguous), compresses each of the three texts with the
//! registry's current model, and places them in the 109-byte text region: inline (tag = length)
//! when they fit, else the tag 0xFF and a 3-byte offset (left 0: the projection fills it) with the
//! value returned in [`EncodedCandle::overflow`]. Of the placements that fit, the one that moves
//! the fewest fields out and keeps the most bytes inline wins.
//!
//! The request path uses the borrowed forms: [`encode_ref`] takes a [`CandleRef`] (read from the
//! body without a copy) and lends the slot's overflow values from the codec's own buffers
//! ([`EncodedRef`]); [`decode_ref`] lends the texts the same way. Neither allocates. [`encode`]
//! and [`decode`] are the owned forms, for tools and tests.
//!
//! Invariants: `decode(encode(c)) == c` for every valid candle; decoding never panics on any
//! bytes: a slot or overflow value that is not what `encode` writes is a [`DecodeError`]; the lit
//! time and overflow offsets are not the codec's (the ring stamps them).

use thiserror::Error;

use super::fields::{Candle, CandleError, CandleRef, Date};
use super::slot::{
    text_fields, Slot, TextField, TextRef, LAYOUT_VERSION, NO_CITY, NO_STATE, OVERFLOW_MARKER, PHONE_MAX,
    TEXT_REGION_BYTES,
};
use super::tables::tables;
use super::text::{TextCodec, TextError};

/// Largest value a tag can say inline.
const INLINE_MAX: usize = OVERFLOW_MARKER as usize - 1;
/// Bytes an overflow reference takes in the region (marker + 3-byte offset).
const OVERFLOW_REF_BYTES: usize = 4;
/// Largest overflow value the codec writes or reads (the ring's framing is a u16 length).
pub const OVERFLOW_VALUE_MAX: usize = u16::MAX as usize;

/// A candle as a slot and the values of its text fields that went to their overflow pools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedCandle {
    /// The slot (lit time 0, overflow offsets 0).
    pub slot: Slot,
    /// Per text field, in [`TextField`] order: its compressed value if it is in overflow.
    pub overflow: [Option<Vec<u8>>; 3],
}

/// A candle as a slot and the values of its fields in overflow, lent by the codec that encoded it
/// (its buffers: valid until the codec is used again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodedRef<'c> {
    /// The slot (lit time 0, overflow offsets 0).
    pub slot: Slot,
    /// Per text field, in [`TextField`] order: its compressed value if it is in overflow.
    pub overflow: [Option<&'c [u8]>; 3],
}

impl EncodedRef<'_> {
    /// The owned form (copies the overflow values).
    pub fn to_encoded(&self) -> EncodedCandle {
        EncodedCandle { slot: self.slot, overflow: self.overflow.map(|v| v.map(<[u8]>::to_vec)) }
    }
}

/// Why a slot or its overflow values could not be decoded; nothing was returned.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The slot's occupied flag is clear.
    #[error("the slot is not occupied")]
    NotOccupied,
    /// The layout version byte is not this build's.
    #[error("layout version {0} is not {LAYOUT_VERSION}")]
    LayoutVersion(u8),
    /// The reserved byte or unused flag bits are not zero.
    #[error("reserved bits are set")]
    Reserved,
    /// The text region's tags run past the slot, or its tail is not zero.
    #[error("the text region does not parse")]
    TextRegion,
    /// A field's overflow flag disagrees with its tag.
    #[error("{0:?}: overflow flag and tag disagree")]
    FlagMismatch(TextField),
    /// A field in overflow has no value given.
    #[error("{0:?}: overflow value missing")]
    OverflowMissing(TextField),
    /// A value was given for an inline field.
    #[error("{0:?}: overflow value given for an inline field")]
    OverflowUnexpected(TextField),
    /// An overflow value is empty or over [`OVERFLOW_VALUE_MAX`].
    #[error("{0:?}: overflow value length out of range")]
    OverflowLength(TextField),
    /// The text model could not decompress a field.
    #[error(transparent)]
    Text(#[from] TextError),
    /// A decompressed field is not UTF-8.
    #[error("{0:?}: not UTF-8")]
    Utf8(TextField),
    /// A joined field lacks its separator.
    #[error("{0:?}: no separator")]
    Separator(TextField),
    /// The phone bits hold a number that is not 11 digits, or WhatsApp without a phone.
    #[error("phone bits are not a phone")]
    Phone,
    /// The city index is past the table.
    #[error("city index {0} is not in the table")]
    City(u16),
    /// The state index is past the table, or disagrees with the city's.
    #[error("state index {0} is not the city's state")]
    State(u8),
    /// The country index is past the table, or a place is given abroad.
    #[error("country index {0} does not fit the place")]
    Country(u8),
}

/// Validates `candle` against `today` and encodes it with the codec's current model (the owned
/// form of [`encode_ref`]: the overflow values are copied out).
pub fn encode(candle: &Candle, today: Date, codec: &mut TextCodec<'_>) -> Result<EncodedCandle, CandleError> {
    encode_ref(&candle.view(), today, codec).map(|e| e.to_encoded())
}

/// Validates `candle` against `today` and encodes it with the codec's current model; the
/// overflow values are lent from the codec's buffers. Allocates nothing, refusals included.
pub fn encode_ref<'c>(
    candle: &CandleRef<'_>,
    today: Date,
    codec: &'c mut TextCodec<'_>,
) -> Result<EncodedRef<'c>, CandleError> {
    let r = candle.validate(today)?;
    let mut slot = Slot::empty();
    slot.set_text_model(codec.writer_version());
    slot.set_birth_days(r.birth_days);
    slot.set_phone(candle.phone.unwrap_or(0), candle.has_whatsapp);
    slot.set_city(r.city);
    slot.set_place(r.state, r.country);
    let compressed =
        codec.compress_fields(|f, text| field_text(*candle, f, text)).map_err(CandleError::Compress)?;
    for f in TextField::ALL {
        let n = compressed[f.index()].len();
        if n > OVERFLOW_VALUE_MAX {
            return Err(CandleError::OverflowTooLong { field: f.index(), len: n, max: OVERFLOW_VALUE_MAX });
        }
    }
    let out = place(compressed);
    write_region(&mut slot, compressed, out);
    let overflow = TextField::ALL.map(|f| out[f.index()].then_some(compressed[f.index()].as_slice()));
    Ok(EncodedRef { slot, overflow })
}

/// The text of a slot field: the client fields it joins (what the model compresses and trains on).
pub fn field_text(c: CandleRef<'_>, field: TextField, out: &mut Vec<u8>) {
    out.clear();
    let (a, b) = match field {
        TextField::NameEmail => (c.name, Some(c.email)),
        TextField::AddressNeighbourhood => (c.address, Some(c.neighbourhood)),
        TextField::Prayer => (c.prayer, None),
    };
    out.extend_from_slice(a.as_bytes());
    if let Some(b) = b {
        // Both empty joins to nothing (no frame at all); else the separator is always there.
        if !(a.is_empty() && b.is_empty()) {
            out.push(b'\n');
            out.extend_from_slice(b.as_bytes());
        }
    }
}

/// Which fields go to overflow: the fewest, then the most bytes kept inline.
fn place(compressed: &[Vec<u8>; 3]) -> [bool; 3] {
    let mut best: Option<([bool; 3], usize, usize)> = None;
    for mask in 0u8..8 {
        let out = [mask & 1 != 0, mask & 2 != 0, mask & 4 != 0];
        let mut used = 0;
        let mut inline = 0;
        let mut ok = true;
        for (i, c) in compressed.iter().enumerate() {
            if out[i] {
                used += OVERFLOW_REF_BYTES;
            } else if c.len() > INLINE_MAX {
                ok = false;
            } else {
                used += 1 + c.len();
                inline += c.len();
            }
        }
        if !ok || used > TEXT_REGION_BYTES {
            continue;
        }
        let moved = mask.count_ones() as usize;
        let better = match best {
            None => true,
            Some((_, m, keep)) => moved < m || (moved == m && inline > keep),
        };
        if better {
            best = Some((out, moved, inline));
        }
    }
    best.expect("all three in overflow always fits (12 of 109 bytes)").0
}

fn write_region(slot: &mut Slot, compressed: &[Vec<u8>; 3], out: [bool; 3]) {
    let region = slot.text_region_mut();
    let mut at = 0;
    for (i, c) in compressed.iter().enumerate() {
        if out[i] {
            region[at] = OVERFLOW_MARKER;
            at += OVERFLOW_REF_BYTES;
        } else {
            region[at] = c.len() as u8;
            region[at + 1..at + 1 + c.len()].copy_from_slice(c);
            at += 1 + c.len();
        }
    }
    slot.sync_overflow_flags();
}

/// Decodes a slot and its overflow values (given for exactly the fields the slot has in
/// overflow) into the candle that was encoded (the owned form of [`decode_ref`]).
pub fn decode(
    slot: &Slot,
    overflow: [Option<&[u8]>; 3],
    codec: &mut TextCodec<'_>,
) -> Result<Candle, DecodeError> {
    decode_ref(slot, overflow, codec).map(|c| c.to_candle())
}

/// Decodes a slot and its overflow values into the candle that was encoded, its texts lent from
/// the codec's buffers (valid until the codec is used again). Allocates nothing for a slot that
/// decodes.
pub fn decode_ref<'c>(
    slot: &Slot,
    overflow: [Option<&[u8]>; 3],
    codec: &'c mut TextCodec<'_>,
) -> Result<CandleRef<'c>, DecodeError> {
    check_header(slot)?;
    let refs = text_fields(slot).ok_or(DecodeError::TextRegion)?;
    check_region_tail(slot, &refs)?;
    let mut bytes: [&[u8]; 3] = [&[]; 3];
    for f in TextField::ALL {
        bytes[f.index()] = field_bytes(slot, f, refs[f.index()], overflow[f.index()])?;
    }
    let texts = codec.decompress_fields(slot.text_model(), bytes)?;
    let mut strs: [&str; 3] = [""; 3];
    for f in TextField::ALL {
        strs[f.index()] = std::str::from_utf8(texts[f.index()]).map_err(|_| DecodeError::Utf8(f))?;
    }
    let [name_email, address_nb, prayer] = strs;
    let (name, email) = split(name_email, TextField::NameEmail)?;
    let (address, neighbourhood) = split(address_nb, TextField::AddressNeighbourhood)?;
    let (phone, has_whatsapp) = decode_phone(slot)?;
    let (city, state, country) = decode_place(slot)?;
    Ok(CandleRef {
        name,
        email,
        birth_date: Date::from_days_since_1900(slot.birth_days()),
        phone,
        has_whatsapp,
        address,
        neighbourhood,
        city,
        state,
        country,
        prayer,
    })
}

fn check_header(slot: &Slot) -> Result<(), DecodeError> {
    let b = slot.as_bytes();
    if !slot.occupied() {
        return Err(DecodeError::NotOccupied);
    }
    if slot.layout_version() != LAYOUT_VERSION {
        return Err(DecodeError::LayoutVersion(slot.layout_version()));
    }
    if b[4] & !0b1111 != 0 || b[7] != 0 {
        return Err(DecodeError::Reserved);
    }
    Ok(())
}

fn check_region_tail(slot: &Slot, refs: &[TextRef<'_>; 3]) -> Result<(), DecodeError> {
    let used: usize = refs
        .iter()
        .map(|r| match r {
            TextRef::Inline(b) => 1 + b.len(),
            TextRef::Overflow { .. } => OVERFLOW_REF_BYTES,
        })
        .sum();
    if slot.text_region()[used..].iter().any(|&b| b != 0) {
        return Err(DecodeError::TextRegion);
    }
    Ok(())
}

fn field_bytes<'a>(
    slot: &'a Slot,
    f: TextField,
    r: TextRef<'a>,
    given: Option<&'a [u8]>,
) -> Result<&'a [u8], DecodeError> {
    let in_overflow = matches!(r, TextRef::Overflow { .. });
    if slot.overflow_flag(f) != in_overflow {
        return Err(DecodeError::FlagMismatch(f));
    }
    match (r, given) {
        (TextRef::Inline(b), None) => Ok(b),
        (TextRef::Inline(_), Some(_)) => Err(DecodeError::OverflowUnexpected(f)),
        (TextRef::Overflow { .. }, None) => Err(DecodeError::OverflowMissing(f)),
        (TextRef::Overflow { .. }, Some(v)) => {
            if v.is_empty() || v.len() > OVERFLOW_VALUE_MAX {
                return Err(DecodeError::OverflowLength(f));
            }
            Ok(v)
        }
    }
}

fn split(joined: &str, f: TextField) -> Result<(&str, &str), DecodeError> {
    if joined.is_empty() {
        return Ok(("", ""));
    }
    joined.split_once('\n').ok_or(DecodeError::Separator(f))
}

fn decode_phone(slot: &Slot) -> Result<(Option<u64>, bool), DecodeError> {
    let spare = slot.as_bytes()[14] & 0b1100_0000;
    let (number, whatsapp) = slot.phone();
    match number {
        _ if spare != 0 => Err(DecodeError::Phone),
        0 if whatsapp => Err(DecodeError::Phone),
        0 => Ok((None, false)),
        n if (super::fields::PHONE_MIN..=PHONE_MAX).contains(&n) => Ok((Some(n), whatsapp)),
        _ => Err(DecodeError::Phone),
    }
}

fn decode_place(slot: &Slot) -> Result<(Option<u32>, Option<&'static str>, u16), DecodeError> {
    let t = tables();
    if slot.as_bytes()[18] & 0xE0 != 0 {
        return Err(DecodeError::Reserved);
    }
    let country = t.country(slot.country()).ok_or(DecodeError::Country(slot.country()))?;
    let brazil = country.numeric == super::tables::BRAZIL_NUMERIC;
    match (slot.city(), slot.state()) {
        (NO_CITY, NO_STATE) if !brazil => Ok((None, None, country.numeric)),
        (NO_CITY, NO_STATE) => Err(DecodeError::Country(slot.country())),
        (_, _) if !brazil => Err(DecodeError::Country(slot.country())),
        (c, s) => {
            let city = t.city(c).ok_or(DecodeError::City(c))?;
            if city.state != s {
                return Err(DecodeError::State(s));
            }
            let uf = t.states[usize::from(s)].uf;
            Ok((Some(city.ibge_code), Some(uf), country.numeric))
        }
    }
}

#[cfg(test)]
mod tests;
