//! The JSON body of `POST /candles` read into a borrowed [`CandleRef`], without building a
//! `serde_json::Value`: each member is visited as it is parsed and its string borrowed from the
//! body, so a well-formed candle allocates nothing on its way to its client body.
//!
//! The borrowed reading takes what a client usually sends: an object whose members are known
//! field names (`candle_fields::FieldName`), each once, with strings that need no unescaping
//! (UTF-8 as it is: `serde_json` and browsers write "ç" raw), unsigned numbers, booleans or null.
//! Anything else (an escaped string, a negative or fractional number, a field named twice, an
//! unknown name, a value that is an array or an object, a bad value, bad JSON) gives
//! [`Borrowed::No`], and the caller reads the body the owned way (`http_candles`), which answers
//! it exactly as before. So both ways give the same candle for what the borrowed one accepts.
//!
//! Invariants: nothing here panics on any bytes; a `Candle` is only ever set from members read
//! whole; the result is the candle or `No`, never part of one.

use crate::candle::{Candle, CandleRef};
use crate::conn::candle_fields::{self as fields, FieldName};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use std::fmt;

/// What the borrowed reading made of a body.
#[derive(Debug, PartialEq, Eq)]
pub enum Borrowed<'a> {
    /// The candle, its strings in the body.
    Candle(CandleRef<'a>),
    /// Not read this way: read it the owned way (see the module header).
    No,
}

/// Reads a `POST /candles` body the borrowed way (see the module header).
pub fn read(body: &[u8]) -> Borrowed<'_> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut candle = fields::blank_ref();
    let read = de::Deserializer::deserialize_map(&mut de, CandleVisitor { candle: &mut candle });
    match (read, de.end()) {
        (Ok(true), Ok(())) => Borrowed::Candle(candle),
        _ => Borrowed::No,
    }
}

/// Why the owned reading refused a body (the HTTP answer: 400, or 422 naming the field).
#[derive(Debug, PartialEq, Eq)]
pub enum Owned {
    /// Not a JSON object.
    NotAnObject,
    /// A member is not a field, or not a value the field takes.
    Field {
        /// The member's name (a field's English name once known).
        field: String,
        /// Why.
        why: &'static str,
    },
}

/// Reads a `POST /candles` body the owned way: a `serde_json::Value`, its members set in its
/// order (what any body the borrowed way does not take gets; not validated yet).
pub fn read_owned(body: &[u8]) -> Result<Candle, Owned> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Err(Owned::NotAnObject);
    };
    let mut c = fields::blank();
    let mut text = String::new();
    for (key, value) in &map {
        let Some(field) = FieldName::parse(key.as_bytes()) else {
            return Err(Owned::Field { field: key.clone(), why: "unknown field" });
        };
        let refused = |why| Owned::Field { field: field.english().to_string(), why };
        text.clear();
        match value {
            serde_json::Value::String(s) => text.push_str(s),
            serde_json::Value::Number(n) => {
                let _ = std::fmt::Write::write_fmt(&mut text, format_args!("{n}"));
            }
            serde_json::Value::Bool(b) => text.push_str(if *b { "1" } else { "0" }),
            serde_json::Value::Null => {}
            _ => return Err(refused("not a string, number or boolean")),
        }
        fields::set(&mut c, field, &text).map_err(refused)?;
    }
    Ok(c)
}

/// Visits the object's members into `candle`; `Ok(false)` if one is not read this way.
struct CandleVisitor<'c, 'a> {
    candle: &'c mut CandleRef<'a>,
}

impl<'de: 'a, 'a> Visitor<'de> for CandleVisitor<'_, 'a> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of a candle's fields")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<bool, M::Error> {
        let mut seen = 0u32;
        let mut ok = true;
        while let Some(field) = map.next_key_seed(KeySeed)? {
            // Once a member is not read this way, the rest are only walked (the JSON must end well).
            let Some(field) = field.filter(|&f| ok && seen & bit(f) == 0) else {
                map.next_value::<IgnoredAny>()?;
                ok = false;
                continue;
            };
            seen |= bit(field);
            ok = map.next_value_seed(ValueSeed { field, candle: self.candle })?;
        }
        Ok(ok)
    }
}

/// A field's bit in the set of those seen.
fn bit(field: FieldName) -> u32 {
    1 << field as u32
}

/// A member's name: the field it names (`None`: unknown, or a name that needed unescaping).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<FieldName>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Option<FieldName>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(FieldName::parse(v.as_bytes()))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A member's value, set into `candle` as its field's; `false` if it is not read this way.
struct ValueSeed<'c, 'a> {
    field: FieldName,
    candle: &'c mut CandleRef<'a>,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for ValueSeed<'_, 'a> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for ValueSeed<'_, 'a> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number, boolean or null")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<bool, E> {
        Ok(fields::set_ref(self.candle, self.field, v).is_ok())
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<bool, E> {
        Ok(fields::set_number(self.candle, self.field, n).is_ok())
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<bool, E> {
        Ok(fields::set_ref(self.candle, self.field, if b { "1" } else { "0" }).is_ok())
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(fields::set_ref(self.candle, self.field, "").is_ok())
    }

    // What the owned way reads (or refuses) alike: left to it.
    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_seq<S: de::SeqAccess<'de>>(self, mut seq: S) -> Result<bool, S::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<bool, M::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candle::corpus::{long_record, Corpus};
    use crate::conn::candle_fields::{blank, pairs, set};

    /// The owned way, as `http_candles` reads a body: a `Value`, its members set in its order.
    fn owned(body: &[u8]) -> Option<crate::candle::Candle> {
        let serde_json::Value::Object(map) = serde_json::from_slice(body).ok()? else { return None };
        let mut c = blank();
        for (key, value) in &map {
            let field = FieldName::parse(key.as_bytes())?;
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
                serde_json::Value::Null => String::new(),
                _ => return None,
            };
            set(&mut c, field, &text).ok()?;
        }
        Some(c)
    }

    fn json_of(c: &crate::candle::Candle) -> Vec<u8> {
        let mut text = String::new();
        let mut obj = serde_json::Map::new();
        for (name, value) in pairs(0, 0, &c.view(), &mut text).into_iter().skip(2) {
            obj.insert(name.to_owned(), value.json(name));
        }
        serde_json::to_vec(&obj).unwrap()
    }

    #[test]
    fn generated_candles_read_borrowed_as_the_owned_way_reads_them() {
        for c in Corpus::new(9).take(500).chain([long_record()]) {
            let body = json_of(&c);
            assert_eq!(read(&body), Borrowed::Candle(c.view()), "{}", String::from_utf8_lossy(&body));
            assert_eq!(owned(&body).as_ref(), Some(&c));
        }
    }

    #[test]
    fn what_the_borrowed_way_does_not_take_is_left_to_the_owned_way() {
        for body in [
            &br#"{"name": "Jo\u00e3o", "birth_date": "1990-01-01"}"#[..],
            br#"{"name": "Ana", "nome": "Bia"}"#,
            br#"{"name": "Ana", "name": "Bia"}"#,
            br#"{"name": "Ana", "colour": "red"}"#,
            br#"{"name": 12}"#,
            br#"{"phone": -1}"#,
            br#"{"phone": 1.5}"#,
            br#"{"city": [1]}"#,
            br#"{"city": {"a": 1}}"#,
            br#"{"phone": "abc"}"#,
            br#"{"name": "Ana"} x"#,
            br#"["name"]"#,
            br#"{"name": "#,
            b"",
            b"\xff",
        ] {
            assert_eq!(read(body), Borrowed::No, "{}", String::from_utf8_lossy(body));
        }
        let Borrowed::Candle(c) = read(
            br#"{"nome": "Ana", "telefone": 81987654321, "whatsapp": true, "uf": "pe", "cidade": null}"#,
        ) else {
            panic!("read")
        };
        assert_eq!(
            (c.name, c.phone, c.has_whatsapp, c.state, c.city),
            ("Ana", Some(81_987_654_321), true, Some("PE"), None)
        );
    }
}
