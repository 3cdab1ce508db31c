//! What the RESP and HTTP candle commands share: the field names clients use (English, as in
//! [`Candle`], and the Portuguese ones RESP also takes), dates as `YYYY-MM-DD`, the request's
//! date for validation, the field a [`CandleError`] is about, and a candle's fields as the
//! (name, value) text pairs both protocols reply with.
//!
//! Invariants: validation here is `Candle::validate` at the request's date (`cx.now`), the same
//! check the partition makes, so a candle refused here would have been refused there; nothing
//! here does I/O. [`set_ref`] fills a borrowed [`CandleRef`] from the request's own bytes (a
//! known UF is the table's `&'static str`), so a LIGHT's fields are never copied.

use crate::candle::tables::{tables, BRAZIL_NUMERIC};
use crate::candle::{Candle, CandleRef, Date};
use std::fmt::Write;
use vigil_pmd::Nanos;

/// Nanoseconds in a day.
const DAY_NS: u64 = 86_400 * 1_000_000_000;

/// A candle's fields, as clients name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldName {
    Name,
    Email,
    Birth,
    Phone,
    Whatsapp,
    Address,
    Neighbourhood,
    City,
    State,
    Country,
    Prayer,
}

impl FieldName {
    /// The field a client names (either language, any case).
    pub fn parse(name: &[u8]) -> Option<Self> {
        const NAMES: &[(&str, FieldName)] = &[
            ("name", FieldName::Name),
            ("nome", FieldName::Name),
            ("email", FieldName::Email),
            ("birth", FieldName::Birth),
            ("birth_date", FieldName::Birth),
            ("nascimento", FieldName::Birth),
            ("phone", FieldName::Phone),
            ("telefone", FieldName::Phone),
            ("whatsapp", FieldName::Whatsapp),
            ("has_whatsapp", FieldName::Whatsapp),
            ("address", FieldName::Address),
            ("endereco", FieldName::Address),
            ("neighbourhood", FieldName::Neighbourhood),
            ("bairro", FieldName::Neighbourhood),
            ("city", FieldName::City),
            ("cidade", FieldName::City),
            ("state", FieldName::State),
            ("uf", FieldName::State),
            ("country", FieldName::Country),
            ("pais", FieldName::Country),
            ("prayer", FieldName::Prayer),
            ("pedido", FieldName::Prayer),
        ];
        NAMES.iter().find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name)).map(|&(_, f)| f)
    }

    /// The English name (the JSON key, and what errors name).
    pub fn english(self) -> &'static str {
        match self {
            FieldName::Name => "name",
            FieldName::Email => "email",
            FieldName::Birth => "birth_date",
            FieldName::Phone => "phone",
            FieldName::Whatsapp => "has_whatsapp",
            FieldName::Address => "address",
            FieldName::Neighbourhood => "neighbourhood",
            FieldName::City => "city",
            FieldName::State => "state",
            FieldName::Country => "country",
            FieldName::Prayer => "prayer",
        }
    }
}

/// An empty candle (no name yet, born 1900-01-01, Brazil), to be filled field by field.
pub fn blank() -> Candle {
    Candle {
        name: String::new(),
        email: String::new(),
        birth_date: Date { year: 1900, month: 1, day: 1 },
        phone: None,
        has_whatsapp: false,
        address: String::new(),
        neighbourhood: String::new(),
        city: None,
        state: None,
        country: BRAZIL_NUMERIC,
        prayer: String::new(),
    }
}

/// Empties `c` back to [`blank`], keeping its strings' capacity.
pub fn clear(c: &mut Candle) {
    for s in [&mut c.name, &mut c.email, &mut c.address, &mut c.neighbourhood, &mut c.prayer] {
        s.clear();
    }
    c.birth_date = Date { year: 1900, month: 1, day: 1 };
    (c.phone, c.has_whatsapp, c.city, c.state, c.country) = (None, false, None, None, BRAZIL_NUMERIC);
}

/// An empty borrowed candle (as [`blank`]), to be filled field by field with [`set_ref`].
pub fn blank_ref() -> CandleRef<'static> {
    CandleRef {
        name: "",
        email: "",
        birth_date: Date { year: 1900, month: 1, day: 1 },
        phone: None,
        has_whatsapp: false,
        address: "",
        neighbourhood: "",
        city: None,
        state: None,
        country: BRAZIL_NUMERIC,
        prayer: "",
    }
}

/// A field's value, parsed from its text.
enum Value<'a> {
    Text(&'a str),
    Birth(Date),
    Phone(Option<u64>),
    Whatsapp(bool),
    City(Option<u32>),
    /// A known UF (the table's, in capitals), or the text as given.
    State(Option<&'a str>),
    Country(u16),
}

fn parse_value(field: FieldName, value: &str) -> Result<Value<'_>, &'static str> {
    let number = |v: &str| v.trim().parse::<u64>().map_err(|_| "not a decimal number");
    Ok(match field {
        FieldName::Name
        | FieldName::Email
        | FieldName::Address
        | FieldName::Neighbourhood
        | FieldName::Prayer => Value::Text(value),
        FieldName::Birth => Value::Birth(parse_date(value).ok_or("not a YYYY-MM-DD date")?),
        FieldName::Phone if value.is_empty() => Value::Phone(None),
        FieldName::Phone => Value::Phone(Some(number(value)?)),
        FieldName::Whatsapp => Value::Whatsapp(match value {
            "1" | "true" | "yes" | "sim" => true,
            "0" | "false" | "no" | "nao" | "não" | "" => false,
            _ => return Err("not 0 or 1"),
        }),
        FieldName::City if value.is_empty() => Value::City(None),
        FieldName::City => Value::City(Some(u32::try_from(number(value)?).map_err(|_| "not an IBGE code")?)),
        FieldName::State if value.is_empty() => Value::State(None),
        FieldName::State => Value::State(Some(known_uf(value).unwrap_or(value))),
        FieldName::Country => Value::Country(u16::try_from(number(value)?).map_err(|_| "not an ISO code")?),
    })
}

/// The table's UF of a state given in any case ("sp": "SP").
fn known_uf(value: &str) -> Option<&'static str> {
    tables().states.iter().map(|s| s.uf).find(|uf| uf.eq_ignore_ascii_case(value))
}

/// Sets one field from its text; the error says what was wrong with the value.
pub fn set(c: &mut Candle, field: FieldName, value: &str) -> Result<(), &'static str> {
    // A field given twice keeps its last value (as HSET does).
    let text = |s: &mut String, t: &str| {
        s.clear();
        s.push_str(t);
    };
    match parse_value(field, value)? {
        Value::Text(t) => match field {
            FieldName::Name => text(&mut c.name, t),
            FieldName::Email => text(&mut c.email, t),
            FieldName::Address => text(&mut c.address, t),
            FieldName::Neighbourhood => text(&mut c.neighbourhood, t),
            _ => text(&mut c.prayer, t),
        },
        Value::Birth(d) => c.birth_date = d,
        Value::Phone(p) => c.phone = p,
        Value::Whatsapp(w) => c.has_whatsapp = w,
        Value::City(city) => c.city = city,
        Value::State(uf) => c.state = uf.map(str::to_ascii_uppercase),
        Value::Country(n) => c.country = n,
    }
    Ok(())
}

/// Sets one field of a borrowed candle from its text, which it borrows (as [`set`]; an unknown
/// state is kept as given, for the error to name). Allocates nothing.
pub fn set_ref<'a>(c: &mut CandleRef<'a>, field: FieldName, value: &'a str) -> Result<(), &'static str> {
    match parse_value(field, value)? {
        Value::Text(t) => match field {
            FieldName::Name => c.name = t,
            FieldName::Email => c.email = t,
            FieldName::Address => c.address = t,
            FieldName::Neighbourhood => c.neighbourhood = t,
            _ => c.prayer = t,
        },
        Value::Birth(d) => c.birth_date = d,
        Value::Phone(p) => c.phone = p,
        Value::Whatsapp(w) => c.has_whatsapp = w,
        Value::City(city) => c.city = city,
        Value::State(uf) => c.state = uf,
        Value::Country(n) => c.country = n,
    }
    Ok(())
}

/// Sets a numeric field of a borrowed candle from a JSON number (as [`set_ref`] with its decimal
/// text); `Err` for a field whose value is text (a name given as a number is for the owned way).
pub fn set_number(c: &mut CandleRef<'_>, field: FieldName, n: u64) -> Result<(), &'static str> {
    match field {
        FieldName::Phone => c.phone = Some(n),
        FieldName::City => c.city = Some(u32::try_from(n).map_err(|_| "not an IBGE code")?),
        FieldName::Country => c.country = u16::try_from(n).map_err(|_| "not an ISO code")?,
        FieldName::Whatsapp if n <= 1 => c.has_whatsapp = n == 1,
        FieldName::Whatsapp => return Err("not 0 or 1"),
        FieldName::Birth => return Err("not a YYYY-MM-DD date"),
        _ => return Err("a text field given as a number"),
    }
    Ok(())
}

/// The candle that (name, value) pairs set, borrowing their values (RESP's `CANDLE.LIGHT`
/// arguments); on a bad name or value, `None` with what was wrong written into `why` (appended).
/// Allocates nothing but the message of a refusal.
pub fn from_pairs<'a>(
    pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    why: &mut String,
) -> Option<CandleRef<'a>> {
    let mut candle = blank_ref();
    for (name, value) in pairs {
        let Some(field) = FieldName::parse(name) else {
            let _ = write!(why, "unknown candle field '{}'", String::from_utf8_lossy(name));
            return None;
        };
        let Ok(value) = std::str::from_utf8(value) else {
            let _ = write!(why, "{}: not UTF-8", field.english());
            return None;
        };
        if let Err(e) = set_ref(&mut candle, field, value) {
            let _ = write!(why, "{}: {e}", field.english());
            return None;
        }
    }
    Some(candle)
}

/// A `YYYY-MM-DD` date that exists.
pub fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r.clone()].iter().all(u8::is_ascii_digit).then(|| &s[r]);
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(0..4)?.parse().ok()?;
    Date::new(year, digits(5..7)?.parse().ok()?, digits(8..10)?.parse().ok()?)
}

/// The request's date (UTC), which validation compares birth dates with.
pub fn today(now: Nanos) -> Date {
    Date::from_unix_days((now.0 / DAY_NS) as i64)
}

/// The UF of state index `i` (in `data/candle/states.csv` order).
pub fn uf(i: usize) -> Option<&'static str> {
    tables().states.get(i).map(|s| s.uf)
}

/// A candle's fields as text, in reply order: id, lit_at, then [`Candle`]'s fields (an absent
/// phone, city or state is empty text). `text` is scratch for the numbers.
pub fn pairs<'a>(
    id: u64,
    lit_at: u32,
    c: &CandleRef<'a>,
    text: &'a mut String,
) -> [(&'static str, PairValue<'a>); 13] {
    text.clear();
    let mut num = |n: Option<u64>| {
        let start = text.len();
        if let Some(n) = n {
            let _ = write!(text, "{n}");
        }
        start..text.len()
    };
    let ranges = [
        num(Some(id)),
        num(Some(u64::from(lit_at))),
        num(c.phone),
        num(c.city.map(u64::from)),
        num(Some(u64::from(c.country))),
    ];
    let birth = {
        let start = text.len();
        let d = c.birth_date;
        let _ = write!(text, "{:04}-{:02}-{:02}", d.year, d.month, d.day);
        start..text.len()
    };
    let t: &'a str = text;
    [
        ("id", PairValue::Number(&t[ranges[0].clone()])),
        ("lit_at", PairValue::Number(&t[ranges[1].clone()])),
        ("name", PairValue::Text(c.name)),
        ("email", PairValue::Text(c.email)),
        ("birth_date", PairValue::Text(&t[birth])),
        ("phone", PairValue::Number(&t[ranges[2].clone()])),
        ("has_whatsapp", PairValue::Bool(c.has_whatsapp)),
        ("address", PairValue::Text(c.address)),
        ("neighbourhood", PairValue::Text(c.neighbourhood)),
        ("city", PairValue::Number(&t[ranges[3].clone()])),
        ("state", PairValue::Text(c.state.unwrap_or(""))),
        ("country", PairValue::Number(&t[ranges[4].clone()])),
        ("prayer", PairValue::Text(c.prayer)),
    ]
}

/// A field's value in a reply.
#[derive(Clone, Copy, Debug)]
pub enum PairValue<'a> {
    /// Text (a JSON string).
    Text(&'a str),
    /// A decimal number, or empty when absent (a JSON number or null).
    Number(&'a str),
    /// A flag (RESP: 0/1, JSON: a boolean).
    Bool(bool),
}

impl PairValue<'_> {
    /// The value as RESP replies give it (and clients send it): text and numbers as they are, a
    /// flag as `1` or `0`.
    pub fn text(&self) -> &str {
        match *self {
            PairValue::Text(t) | PairValue::Number(t) => t,
            PairValue::Bool(b) => {
                if b {
                    "1"
                } else {
                    "0"
                }
            }
        }
    }

    /// The value of field `name` as the HTTP API gives it: a string, a number (null when absent),
    /// a boolean; an absent state is null.
    pub fn json(&self, name: &str) -> serde_json::Value {
        match *self {
            PairValue::Text("") if name == "state" => serde_json::Value::Null,
            PairValue::Text(t) => serde_json::Value::from(t),
            PairValue::Number(t) => t.parse::<u64>().map_or(serde_json::Value::Null, serde_json::Value::from),
            PairValue::Bool(b) => serde_json::Value::Bool(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candle::corpus::Corpus;

    #[test]
    fn dates_parse_only_when_they_exist_and_fields_in_both_languages() {
        assert_eq!(parse_date("1990-02-28"), Date::new(1990, 2, 28));
        for bad in ["1990-02-30", "1990-2-28", "19900228", "abcd-ef-gh", "1990-02-28x"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert_eq!(FieldName::parse(b"NASCIMENTO"), Some(FieldName::Birth));
        assert_eq!(FieldName::parse(b"bairro"), Some(FieldName::Neighbourhood));
        assert_eq!(FieldName::parse(b"colour"), None);
        let mut c = blank();
        set(&mut c, FieldName::Name, "Ana").unwrap();
        set(&mut c, FieldName::Name, "Bia").unwrap();
        assert_eq!(c.name, "Bia", "the last value wins");
        assert_eq!(set(&mut c, FieldName::Phone, "11x"), Err("not a decimal number"));
        assert_eq!(set(&mut c, FieldName::Whatsapp, "2"), Err("not 0 or 1"));
        assert_eq!(today(Nanos(1_796_000_000 * 1_000_000_000)), Date::new(2026, 11, 30).unwrap());
        let mut r = blank_ref();
        set_ref(&mut r, FieldName::State, "pe").unwrap();
        assert_eq!(r.state, Some("PE"), "a known UF in any case is the table's");
        set(&mut c, FieldName::State, "pe").unwrap();
        assert_eq!(c.state.as_deref(), Some("PE"));
        set_ref(&mut r, FieldName::State, "Pernambuco").unwrap();
        assert_eq!(r.state, Some("Pernambuco"), "an unknown one is kept for the error to name");
    }

    #[test]
    fn a_candle_set_field_by_field_from_its_pairs_is_the_same_candle() {
        for c in Corpus::new(3).take(200) {
            let mut text = String::new();
            let mut back = blank();
            let mut back_ref = blank_ref();
            let values: Vec<(&str, String)> = pairs(1, 2, &c.view(), &mut text)
                .into_iter()
                .skip(2)
                .map(|(name, value)| (name, value.text().to_owned()))
                .collect();
            for (name, v) in &values {
                let field = FieldName::parse(name.as_bytes()).unwrap();
                set(&mut back, field, v).unwrap();
                set_ref(&mut back_ref, field, v).unwrap();
            }
            assert_eq!(back, c);
            assert_eq!(back_ref, c.view());
            clear(&mut back);
            assert_eq!(back, blank());
        }
    }
}
