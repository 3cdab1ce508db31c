//! The client-side body of a candle in protocol v1: what a LIGHT request carries and what a GET
//! answer returns (docs/CANDLES.md has the table). Little-endian, fixed-width numbers and
//! length-prefixed UTF-8 strings, in this order:
//!
//! | bytes | field                                                        |
//! |-------|--------------------------------------------------------------|
//! | 1     | body version ([`WIRE_VERSION`])                              |
//! | 2 + n | name: u16 length, UTF-8                                      |
//! | 2 + n | e-mail: u16 length, UTF-8 (0: none)                          |
//! | 4     | birth date: year u16, month u8, day u8                       |
//! | 8     | phone: u64, 11 digits (0: none)                              |
//! | 1     | flags: bit 0 has WhatsApp, others zero                       |
//! | 2 + n | address: u16 length, UTF-8                                   |
//! | 2 + n | neighbourhood: u16 length, UTF-8                             |
//! | 4     | city: u32 IBGE code (0: none, abroad)                        |
//! | 2     | state: the UF's two ASCII letters (two zero bytes: none)     |
//! | 2     | country: u16 ISO 3166-1 numeric                              |
//! | 2 + n | prayer: u16 length, UTF-8                                    |
//!
//! Invariants: the decoder reads only what it was given and allocates nothing: [`read_ref`]
//! borrows every string from the body (a LIGHT's fields are never copied before they are
//! compressed), and a length is checked against the field's limit before anything is read; a body that
//! is truncated, oversized, has trailing bytes, bad UTF-8 or a date that does not exist is
//! refused with a [`WireError`] that names the field. Semantic checks (tables, phone, dates
//! against today) are [`Candle::validate`]'s, not the wire's.

use thiserror::Error;

use super::fields::{
    Candle, CandleError, CandleRef, Date, Field, ADDRESS_BYTES_MAX, EMAIL_BYTES_MAX, NAME_BYTES_MAX,
    NEIGHBOURHOOD_BYTES_MAX, PRAYER_BYTES_MAX,
};

/// The body version this build writes and reads.
pub const WIRE_VERSION: u8 = 1;
/// Bytes of the fixed-width parts and length prefixes.
const FIXED_BYTES: usize = 1 + 2 * 5 + 4 + 8 + 1 + 4 + 2 + 2;
/// Largest body: every string at its limit.
pub const WIRE_BYTES_MAX: usize = FIXED_BYTES
    + NAME_BYTES_MAX
    + EMAIL_BYTES_MAX
    + ADDRESS_BYTES_MAX
    + NEIGHBOURHOOD_BYTES_MAX
    + PRAYER_BYTES_MAX;

/// Why a body was refused; no candle came of it.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// The body ends inside `at` (a field name or "header").
    #[error("body truncated in {at}")]
    Truncated {
        /// Where it ends.
        at: &'static str,
    },
    /// The first byte is not a body version this build reads.
    #[error("body version {0} is not {WIRE_VERSION}")]
    Version(u8),
    /// A string's length prefix is over its field's limit.
    #[error("{field} length {len} is over its limit of {max}")]
    TooLong {
        /// The field.
        field: Field,
        /// The length prefix.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes follow the last field.
    #[error("{0} trailing bytes after the body")]
    Trailing(usize),
    /// The flags byte has bits other than bit 0.
    #[error("flags {0:#04x} has reserved bits set")]
    Flags(u8),
    /// The birth date does not exist in the calendar.
    #[error("birth date {year}-{month}-{day} does not exist")]
    Date {
        /// Year.
        year: u16,
        /// Month.
        month: u8,
        /// Day.
        day: u8,
    },
    /// The state is not two ASCII letters (nor two zero bytes).
    #[error("state is not two ASCII letters")]
    State,
    /// A string is not UTF-8 ([`CandleError::BadUtf8`] names the field).
    #[error(transparent)]
    Field(#[from] CandleError),
}

/// Appends the body of `c` to `out` ([`write_ref`]).
pub fn write(c: &Candle, out: &mut Vec<u8>) {
    write_ref(&c.view(), out);
}

/// Appends the body of `c` to `out`; strings longer than their limits are the caller's error
/// (validate first): this writes what it is given, with u16 lengths. Allocates only if `out`
/// has less room than [`WIRE_BYTES_MAX`] left.
pub fn write_ref(c: &CandleRef<'_>, out: &mut Vec<u8>) {
    out.push(WIRE_VERSION);
    put_str(out, c.name);
    put_str(out, c.email);
    out.extend_from_slice(&(c.birth_date.year as u16).to_le_bytes());
    out.push(c.birth_date.month);
    out.push(c.birth_date.day);
    out.extend_from_slice(&c.phone.unwrap_or(0).to_le_bytes());
    out.push(u8::from(c.has_whatsapp));
    put_str(out, c.address);
    put_str(out, c.neighbourhood);
    out.extend_from_slice(&c.city.unwrap_or(0).to_le_bytes());
    match c.state.map(str::as_bytes) {
        Some(&[a, b]) => out.extend_from_slice(&[a, b]),
        _ => out.extend_from_slice(&[0, 0]),
    }
    out.extend_from_slice(&c.country.to_le_bytes());
    put_str(out, c.prayer);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).expect("validated lengths fit a u16");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A cursor over a body that refuses to read past its end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, at: &'static str) -> Result<&'a [u8], WireError> {
        if self.rest.len() < n {
            return Err(WireError::Truncated { at });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, at: &'static str) -> Result<[u8; N], WireError> {
        Ok(self.take(N, at)?.try_into().expect("N bytes"))
    }

    fn string(&mut self, field: Field, max: usize) -> Result<&'a str, WireError> {
        let at = field_name(field);
        let len = usize::from(u16::from_le_bytes(self.array(at)?));
        if len > max {
            return Err(WireError::TooLong { field, len, max });
        }
        let bytes = self.take(len, at)?;
        Ok(std::str::from_utf8(bytes).map_err(|_| CandleError::BadUtf8 { field })?)
    }
}

fn field_name(field: Field) -> &'static str {
    match field {
        Field::Name => "name",
        Field::Email => "email",
        Field::Address => "address",
        Field::Neighbourhood => "neighbourhood",
        Field::Prayer => "prayer",
        Field::State => "state",
    }
}

/// Reads a whole body into an owned candle ([`read_ref`], then the strings copied).
pub fn read(body: &[u8]) -> Result<Candle, WireError> {
    read_ref(body).map(|c| c.to_candle())
}

/// Reads a whole body, borrowing its strings; refuses anything [`write`] would not have written.
pub fn read_ref(body: &[u8]) -> Result<CandleRef<'_>, WireError> {
    if body.len() > WIRE_BYTES_MAX {
        return Err(WireError::Trailing(body.len() - WIRE_BYTES_MAX));
    }
    let mut r = Reader { rest: body };
    let [version] = r.array("header")?;
    if version != WIRE_VERSION {
        return Err(WireError::Version(version));
    }
    let name = r.string(Field::Name, NAME_BYTES_MAX)?;
    let email = r.string(Field::Email, EMAIL_BYTES_MAX)?;
    let [y0, y1, month, day] = r.array("birth date")?;
    let year = u16::from_le_bytes([y0, y1]);
    let birth_date = Date::new(i32::from(year), month, day).ok_or(WireError::Date { year, month, day })?;
    let phone = u64::from_le_bytes(r.array("phone")?);
    let [flags] = r.array("flags")?;
    if flags & !1 != 0 {
        return Err(WireError::Flags(flags));
    }
    let address = r.string(Field::Address, ADDRESS_BYTES_MAX)?;
    let neighbourhood = r.string(Field::Neighbourhood, NEIGHBOURHOOD_BYTES_MAX)?;
    let city = u32::from_le_bytes(r.array("city")?);
    let uf = r.take(2, "state")?;
    let state = match *uf {
        [0, 0] => None,
        [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => {
            Some(std::str::from_utf8(uf).expect("ASCII"))
        }
        _ => return Err(WireError::State),
    };
    let country = u16::from_le_bytes(r.array("country")?);
    let prayer = r.string(Field::Prayer, PRAYER_BYTES_MAX)?;
    if !r.rest.is_empty() {
        return Err(WireError::Trailing(r.rest.len()));
    }
    Ok(CandleRef {
        name,
        email,
        birth_date,
        phone: (phone != 0).then_some(phone),
        has_whatsapp: flags & 1 != 0,
        address,
        neighbourhood,
        city: (city != 0).then_some(city),
        state,
        country,
        prayer,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::candle::corpus::Corpus;

    fn body(c: &Candle) -> Vec<u8> {
        let mut out = Vec::new();
        write(c, &mut out);
        out
    }

    #[test]
    fn generated_candles_round_trip_through_the_body() {
        for c in Corpus::new(21).take(2_000) {
            let b = body(&c);
            assert_eq!(read(&b).expect("reads"), c);
            let view = read_ref(&b).expect("reads in place");
            assert_eq!(view, c.view());
            assert!(std::ptr::eq(view.name.as_ptr(), b[3..].as_ptr()), "borrowed from the body, not copied");
            let mut again = Vec::new();
            write_ref(&view, &mut again);
            assert_eq!(again, b);
        }
    }

    #[test]
    fn every_truncation_is_refused_and_trailing_bytes_too() {
        let c = Corpus::new(22).next().expect("one");
        let b = body(&c);
        for n in 0..b.len() {
            assert!(matches!(read(&b[..n]), Err(WireError::Truncated { .. })), "cut at {n}");
        }
        let mut longer = b.clone();
        longer.push(0);
        assert_eq!(read(&longer), Err(WireError::Trailing(1)));
        assert!(matches!(read(&vec![1u8; WIRE_BYTES_MAX + 1]), Err(WireError::Trailing(1))));
        assert_eq!(WIRE_BYTES_MAX, 2_246, "docs/CANDLES.md states it");
    }

    #[test]
    fn bad_fields_are_refused_by_name() {
        let c = Corpus::new(23).next().expect("one");
        let b = body(&c);
        let mut v = b.clone();
        v[0] = 2;
        assert_eq!(read(&v), Err(WireError::Version(2)));
        let mut v = b.clone();
        v[1..3].copy_from_slice(&121u16.to_le_bytes());
        assert_eq!(read(&v), Err(WireError::TooLong { field: Field::Name, len: 121, max: 120 }));
        let mut v = b.clone();
        v[3] = 0xFF;
        assert_eq!(read(&v), Err(WireError::Field(CandleError::BadUtf8 { field: Field::Name })));
        let flags_at = 1 + 2 + c.name.len() + 2 + c.email.len() + 4 + 8;
        let mut v = b.clone();
        v[flags_at] = 2;
        assert_eq!(read(&v), Err(WireError::Flags(2)));
        let date_at = 1 + 2 + c.name.len() + 2 + c.email.len();
        let mut v = b.clone();
        v[date_at + 2] = 13;
        assert!(matches!(read(&v), Err(WireError::Date { month: 13, .. })));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = read(&bytes);
        }
    }
}
