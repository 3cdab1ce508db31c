//! The candle commands as proposed and logged: LIGHT (a candle to store) and ROTATE (the
//! leader's drop of expired daily buckets), each after the 17-byte `CommandHeader` whose kind is
//! its opcode (`wire::opcode::CANDLE_LIGHT`, `CANDLE_ROTATE`).
//!
//! LIGHT layout (little-endian):
//!
//! | bytes        | field                                                                      |
//! |--------------|----------------------------------------------------------------------------|
//! | 0..17        | `CommandHeader`: kind `CANDLE_LIGHT`, client id, sequence number            |
//! | 17..145      | the 128-byte slot (`candle::slot`), lit time 0, overflow offsets 0          |
//! | 145..        | for each text field whose tag is 0xFF, in field order: u16 length, bytes    |
//!
//! ROTATE is the header alone (kind `CANDLE_ROTATE`).
//!
//! The parser borrows the command's bytes (no copy) and refuses anything the projection could not
//! store as it is: a slot of another layout version, not marked occupied, with a lit time or an
//! overflow offset already set, overflow flags that disagree with the tags, a text region that
//! does not parse, a city index outside the IBGE table, an overflow value missing, empty or over
//! [`OVERFLOW_VALUE_MAX`], and trailing bytes. So every replica either stores the same candle or
//! answers `Malformed`, and nothing a client sends can make apply panic.

use super::slot::{text_fields, Slot, TextRef, LAYOUT_VERSION, NO_CITY, SLOT_BYTES};
use crate::projection::{CommandHeader, COMMAND_HEADER_LEN};
use crate::wire::opcode;

/// Municipalities in the IBGE table (`candle::tables`): a slot's city index is below it, or
/// `NO_CITY`.
pub const CITIES: usize = 5570;
/// Longest overflow value in bytes (a compressed text field that did not fit inline): an
/// 800-character prayer is at most 3,200 bytes of UTF-8 even uncompressed. A whole LIGHT must
/// also fit one batch entry alone (`storage.batch_bytes_max`, default 4064: the partition answers
/// `VALUE_TOO_LARGE` otherwise), which one such value with the slot does.
pub const OVERFLOW_VALUE_MAX: usize = 3200;
/// Bytes of a LIGHT command with no overflow value.
pub const LIGHT_FIXED_LEN: usize = COMMAND_HEADER_LEN + SLOT_BYTES;
/// Bytes of a ROTATE command.
pub const ROTATE_LEN: usize = COMMAND_HEADER_LEN;

/// Why a candle command does not parse; nothing was applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Shorter than its header and slot; nothing was read past it.
    #[error("the command is {0} bytes, shorter than its header and slot")]
    Truncated(usize),
    /// The header's kind is not a candle command.
    #[error("kind {0:#04x} is not a candle command")]
    Kind(u8),
    /// The slot's layout version is not this build's.
    #[error("slot layout version {0} is not supported")]
    LayoutVersion(u8),
    /// The slot is not marked occupied.
    #[error("the slot is not marked occupied")]
    NotOccupied,
    /// The lit time is set; only apply stamps it.
    #[error("the slot's lit time is set ({0}); it must be 0")]
    LitTimeSet(u32),
    /// The text region's tags run past the slot.
    #[error("the slot's text region does not parse")]
    TextRegion,
    /// The overflow flag bits disagree with the text tags.
    #[error("the slot's overflow flags disagree with its text tags")]
    OverflowFlags,
    /// An overflow reference already carries an offset; only apply places it.
    #[error("text field {0}'s overflow offset is set; it must be 0")]
    OffsetSet(usize),
    /// The city index is neither in the IBGE table nor `NO_CITY`.
    #[error("city index {0} is outside the table of {CITIES}")]
    City(u16),
    /// An overflow value the tags announce is missing or cut short.
    #[error("text field {0}'s overflow value is missing or truncated")]
    OverflowMissing(usize),
    /// An overflow value is empty or longer than `OVERFLOW_VALUE_MAX`.
    #[error("text field {field}'s overflow value is {len} bytes (1..={OVERFLOW_VALUE_MAX})")]
    OverflowLength {
        /// The field.
        field: usize,
        /// Its length.
        len: usize,
    },
    /// Bytes follow the last overflow value (or the header of a ROTATE).
    #[error("{0} bytes follow the command")]
    Trailing(usize),
}

/// A parsed LIGHT, borrowing the command's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Light<'a> {
    /// Its header.
    pub header: CommandHeader,
    /// The slot as proposed.
    pub slot: &'a [u8; SLOT_BYTES],
    /// The overflow value of each text field in its pool (`None`: inline).
    pub overflow: [Option<&'a [u8]>; 3],
}

/// A parsed candle command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CandleCommand<'a> {
    /// Store a candle.
    Light(Light<'a>),
    /// Drop the buckets past their seven days.
    Rotate(CommandHeader),
}

/// Bytes of a LIGHT of `slot` with `overflow` values.
pub fn light_len(overflow: &[Option<&[u8]>; 3]) -> usize {
    LIGHT_FIXED_LEN + overflow.iter().flatten().map(|v| 2 + v.len()).sum::<usize>()
}

/// Writes a LIGHT (`header.kind` is set to `CANDLE_LIGHT`) into `out`, which must be exactly
/// `light_len(&overflow)` bytes; returns that length. The values are written as given: `parse`
/// says whether they agree with the slot.
pub fn write_light(
    header: CommandHeader,
    slot: &Slot,
    overflow: [Option<&[u8]>; 3],
    out: &mut [u8],
) -> usize {
    let len = light_len(&overflow);
    assert_eq!(out.len(), len, "out is sized by light_len");
    CommandHeader { kind: opcode::CANDLE_LIGHT, ..header }.write(out);
    out[COMMAND_HEADER_LEN..LIGHT_FIXED_LEN].copy_from_slice(slot.as_bytes());
    let mut at = LIGHT_FIXED_LEN;
    for value in overflow.iter().flatten() {
        let n = u16::try_from(value.len()).expect("an overflow value fits a u16 length");
        out[at..at + 2].copy_from_slice(&n.to_le_bytes());
        out[at + 2..at + 2 + value.len()].copy_from_slice(value);
        at += 2 + value.len();
    }
    len
}

/// Writes a ROTATE into `out` (`ROTATE_LEN` bytes).
pub fn write_rotate(out: &mut [u8]) {
    CommandHeader { kind: opcode::CANDLE_ROTATE, client_id: 0, seq: 0 }.write(out);
}

/// Parses a candle command (see the module header).
pub fn parse(command: &[u8]) -> Result<CandleCommand<'_>, CommandError> {
    let header = CommandHeader::read(command).ok_or(CommandError::Truncated(command.len()))?;
    match header.kind {
        opcode::CANDLE_LIGHT => parse_light(header, command).map(CandleCommand::Light),
        opcode::CANDLE_ROTATE if command.len() == ROTATE_LEN => Ok(CandleCommand::Rotate(header)),
        opcode::CANDLE_ROTATE => Err(CommandError::Trailing(command.len() - ROTATE_LEN)),
        kind => Err(CommandError::Kind(kind)),
    }
}

fn parse_light(header: CommandHeader, command: &[u8]) -> Result<Light<'_>, CommandError> {
    let slot: &[u8; SLOT_BYTES] = command
        .get(COMMAND_HEADER_LEN..LIGHT_FIXED_LEN)
        .ok_or(CommandError::Truncated(command.len()))?
        .try_into()
        .expect("128 bytes");
    let overflowing = check_slot(&Slot(*slot))?;
    let mut rest = &command[LIGHT_FIXED_LEN..];
    let mut overflow = [None; 3];
    for (field, value) in overflow.iter_mut().enumerate() {
        if !overflowing[field] {
            continue;
        }
        let (len, tail) = match rest {
            [a, b, tail @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), tail),
            _ => return Err(CommandError::OverflowMissing(field)),
        };
        if len == 0 || len > OVERFLOW_VALUE_MAX {
            return Err(CommandError::OverflowLength { field, len });
        }
        let bytes = tail.get(..len).ok_or(CommandError::OverflowMissing(field))?;
        *value = Some(bytes);
        rest = &tail[len..];
    }
    if !rest.is_empty() {
        return Err(CommandError::Trailing(rest.len()));
    }
    Ok(Light { header, slot, overflow })
}

/// Checks a proposed slot's fixed fields and text region; returns which fields overflow.
fn check_slot(slot: &Slot) -> Result<[bool; 3], CommandError> {
    if slot.layout_version() != LAYOUT_VERSION {
        return Err(CommandError::LayoutVersion(slot.layout_version()));
    }
    if !slot.occupied() {
        return Err(CommandError::NotOccupied);
    }
    if slot.lit_at() != 0 {
        return Err(CommandError::LitTimeSet(slot.lit_at()));
    }
    if usize::from(slot.city()) >= CITIES && slot.city() != NO_CITY {
        return Err(CommandError::City(slot.city()));
    }
    check_text(slot, true)
}

/// Checks the text region of `slot` and that the overflow flags agree with its tags (and, when
/// `unplaced`, that no overflow offset is set yet); returns which fields overflow.
pub(crate) fn check_text(slot: &Slot, unplaced: bool) -> Result<[bool; 3], CommandError> {
    let refs = text_fields(slot).ok_or(CommandError::TextRegion)?;
    let mut synced = *slot;
    synced.sync_overflow_flags();
    if synced.0[4] != slot.0[4] {
        return Err(CommandError::OverflowFlags);
    }
    let mut overflowing = [false; 3];
    for (field, r) in refs.iter().enumerate() {
        if let TextRef::Overflow { offset, .. } = *r {
            if unplaced && offset != 0 {
                return Err(CommandError::OffsetSet(field));
            }
            overflowing[field] = true;
        }
    }
    Ok(overflowing)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::candle::slot::OVERFLOW_MARKER;

    /// A slot with raw text bytes (`None`: that field overflows), city and state set.
    pub(crate) fn slot_with(texts: [Option<&[u8]>; 3], city: u16, state: u8) -> Slot {
        let mut s = Slot::empty();
        s.set_city(city);
        s.set_place(state, 76);
        s.set_birth_days(30_000);
        s.set_phone(11_987_654_321, true);
        let mut at = 0;
        for t in texts {
            let region = s.text_region_mut();
            match t {
                Some(bytes) => {
                    region[at] = bytes.len() as u8;
                    region[at + 1..at + 1 + bytes.len()].copy_from_slice(bytes);
                    at += 1 + bytes.len();
                }
                None => {
                    region[at] = OVERFLOW_MARKER;
                    at += 4;
                }
            }
        }
        s.sync_overflow_flags();
        s
    }

    fn header() -> CommandHeader {
        CommandHeader { kind: opcode::CANDLE_LIGHT, client_id: 7, seq: 3 }
    }

    fn light(slot: &Slot, overflow: [Option<&[u8]>; 3]) -> Vec<u8> {
        let mut out = vec![0u8; light_len(&overflow)];
        write_light(header(), slot, overflow, &mut out);
        out
    }

    #[test]
    fn a_light_round_trips_without_a_copy() {
        let slot = slot_with([Some(b"maria"), None, None], 3, 4);
        let prayer = vec![b'p'; 900];
        let bytes = light(&slot, [None, Some(b"rua"), Some(&prayer)]);
        assert_eq!(bytes.len(), LIGHT_FIXED_LEN + 5 + 902);
        let CandleCommand::Light(l) = parse(&bytes).unwrap() else { panic!() };
        assert_eq!(l.header, header());
        assert_eq!(l.slot, slot.as_bytes());
        assert_eq!(l.overflow, [None, Some(&b"rua"[..]), Some(&prayer[..])]);
        assert!(std::ptr::eq(l.slot.as_ptr(), bytes[17..].as_ptr()), "borrowed, not copied");
        let mut rotate = [0u8; ROTATE_LEN];
        write_rotate(&mut rotate);
        assert!(matches!(parse(&rotate), Ok(CandleCommand::Rotate(_))));
    }

    #[test]
    fn malformed_lights_are_refused() {
        let inline = slot_with([Some(b"a"), Some(b"b"), Some(b"c")], 0, 0);
        let over = slot_with([Some(b"a"), None, Some(b"c")], 0, 0);
        let ok = light(&over, [None, Some(b"xy"), None]);
        assert!(parse(&ok).is_ok());
        assert_eq!(parse(&ok[..100]), Err(CommandError::Truncated(100)));
        assert_eq!(parse(&ok[..ok.len() - 1]), Err(CommandError::OverflowMissing(1)));
        assert_eq!(parse(&ok[..LIGHT_FIXED_LEN + 1]), Err(CommandError::OverflowMissing(1)));
        let mut trailing = ok.clone();
        trailing.push(0);
        assert_eq!(parse(&trailing), Err(CommandError::Trailing(1)));
        // An overflow value for an inline field is a trailing value.
        assert_eq!(parse(&light(&inline, [Some(b"x"), None, None])), Err(CommandError::Trailing(3)));
        let long = vec![0u8; OVERFLOW_VALUE_MAX + 1];
        assert_eq!(
            parse(&light(&over, [None, Some(&long), None])),
            Err(CommandError::OverflowLength { field: 1, len: OVERFLOW_VALUE_MAX + 1 })
        );
        assert_eq!(
            parse(&light(&over, [None, Some(b""), None])),
            Err(CommandError::OverflowLength { field: 1, len: 0 })
        );
        let mut bad = over;
        bad.0[5] = 9;
        assert_eq!(parse(&light(&bad, [None, Some(b"x"), None])), Err(CommandError::LayoutVersion(9)));
        let mut bad = over;
        bad.set_lit_at(5);
        assert_eq!(parse(&light(&bad, [None, Some(b"x"), None])), Err(CommandError::LitTimeSet(5)));
        let mut bad = over;
        bad.0[4] &= !1;
        assert_eq!(parse(&light(&bad, [None, Some(b"x"), None])), Err(CommandError::NotOccupied));
        let mut bad = over;
        bad.0[4] = 1;
        assert_eq!(parse(&light(&bad, [None, Some(b"x"), None])), Err(CommandError::OverflowFlags));
        let mut bad = over;
        assert!(bad.set_overflow_offset(crate::candle::TextField::AddressNeighbourhood, 3));
        assert_eq!(parse(&light(&bad, [None, Some(b"x"), None])), Err(CommandError::OffsetSet(1)));
        let mut bad = inline;
        bad.set_city(CITIES as u16);
        assert_eq!(parse(&light(&bad, [None; 3])), Err(CommandError::City(CITIES as u16)));
        let mut bad = inline;
        bad.text_region_mut()[0] = 200;
        assert_eq!(parse(&light(&bad, [None; 3])), Err(CommandError::TextRegion));
        let mut wrong_kind = ok.clone();
        wrong_kind[0] = opcode::SET;
        assert_eq!(parse(&wrong_kind), Err(CommandError::Kind(opcode::SET)));
        let mut rotate = vec![0u8; ROTATE_LEN + 1];
        write_rotate(&mut rotate);
        assert_eq!(parse(&rotate), Err(CommandError::Trailing(1)));
    }
}
