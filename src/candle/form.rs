//! The candle page's form (`candle::page`): an `application/x-www-form-urlencoded` body read
//! into its fields, turned into a [`Candle`] and checked, every problem given in Portuguese next to
//! the field it concerns.
//!
//! Field by field first (a date that is not a date, a phone that is not 11 digits, a city that the
//! IBGE table does not know in the state given), so several mistakes are shown at once; then
//! `Candle::validate` at the request's date, whose error (the first it finds) is put by its field.
//!
//! A web session keeps one [`Form`] and reads each post into it ([`Form::parse_into`]: the
//! urlencoded body decoded by hand into the form's own strings, which keep their capacity), and
//! [`Form::candle_ref`] borrows the candle from it: a good form allocates nothing on its way to
//! its client body; a form with mistakes allocates its messages.
//!
//! Invariants: nothing here panics on any bytes; the values typed are kept as typed (the page
//! shows them back), never trusted for anything but display once escaped.

use super::fields::{
    Candle, CandleError, CandleRef, Date, ADDRESS_BYTES_MAX, EMAIL_BYTES_MAX, NAME_BYTES_MAX,
    NEIGHBOURHOOD_BYTES_MAX, PRAYER_BYTES_MAX,
};
use super::page::FIELDS;
use super::tables::tables;

/// Positions of the fields in [`FIELDS`].
mod at {
    pub const NAME: usize = 0;
    pub const EMAIL: usize = 1;
    pub const BIRTH: usize = 2;
    pub const PHONE: usize = 3;
    pub const ADDRESS: usize = 4;
    pub const NEIGHBOURHOOD: usize = 5;
    pub const CITY: usize = 6;
    pub const STATE: usize = 7;
    pub const COUNTRY: usize = 8;
    pub const PRAYER: usize = 9;
}

/// Bytes a form keeps room for in each of its short fields (date, phone, city name, UF, country).
pub const SHORT_VALUE_BYTES: usize = 64;

/// Bytes a form keeps room for in each field (as [`FIELDS`]): a text field's limit, else
/// [`SHORT_VALUE_BYTES`]. A longer value is refused by validation, after its string grew.
pub const VALUE_BYTES: [usize; 10] = [
    NAME_BYTES_MAX,
    EMAIL_BYTES_MAX,
    SHORT_VALUE_BYTES,
    SHORT_VALUE_BYTES,
    ADDRESS_BYTES_MAX,
    NEIGHBOURHOOD_BYTES_MAX,
    SHORT_VALUE_BYTES,
    SHORT_VALUE_BYTES,
    SHORT_VALUE_BYTES,
    PRAYER_BYTES_MAX,
];

/// Brazil's ISO 3166-1 numeric code.
pub const BRAZIL: u16 = 76;

/// The form as posted: each field's text (as [`FIELDS`]) and the WhatsApp box.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Form {
    /// Values, as [`FIELDS`].
    pub values: [String; 10],
    /// The WhatsApp box was ticked.
    pub whatsapp: bool,
}

/// What is wrong with a form: a message per field (as [`FIELDS`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FormErrors(pub Box<[Option<String>; 10]>);

/// Notes `message` for `field` (the first one stays), making the errors at the first mistake.
fn flag(errors: &mut Option<FormErrors>, field: usize, message: impl Into<String>) {
    errors.get_or_insert_with(FormErrors::default).0[field].get_or_insert_with(|| message.into());
}

impl Form {
    /// An empty form with room for each field at its limit ([`VALUE_BYTES`]): a session's, made
    /// when its connection opens.
    pub fn with_capacity() -> Self {
        Self { values: VALUE_BYTES.map(String::with_capacity), whatsapp: false }
    }

    /// Reads an urlencoded body (unknown names ignored; the last of a repeated name wins).
    pub fn parse(body: &[u8]) -> Self {
        let mut form = Form::default();
        form.parse_into(body, &mut Vec::new());
        form
    }

    /// Reads an urlencoded body into this form (as [`Form::parse`]), its strings reused;
    /// `scratch` holds a value while it is decoded. Allocates only to grow them.
    pub fn parse_into(&mut self, body: &[u8], scratch: &mut Vec<u8>) {
        self.values.iter_mut().for_each(String::clear);
        self.whatsapp = false;
        for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &pair[..0]),
            };
            percent_decode(name, scratch);
            let field = if scratch.as_slice() == b"whatsapp" {
                None
            } else {
                match FIELDS.iter().position(|f| f.0.as_bytes() == scratch.as_slice()) {
                    Some(i) => Some(i),
                    None => continue,
                }
            };
            percent_decode(value, scratch);
            // What `form_urlencoded` does with bytes that are not UTF-8: replaced, lossily.
            let value = String::from_utf8_lossy(scratch);
            match field {
                None => self.whatsapp = !value.is_empty(),
                Some(i) => {
                    self.values[i].clear();
                    self.values[i].push_str(value.trim());
                }
            }
        }
    }

    /// The candle the form describes, checked at `today`; or every problem found.
    pub fn candle(&self, today: Date) -> Result<Candle, FormErrors> {
        self.candle_ref(today).map(|c| c.to_candle())
    }

    /// The candle the form describes, borrowing the form's values, checked at `today`; or every
    /// problem found. Allocates nothing for a good form.
    pub fn candle_ref(&self, today: Date) -> Result<CandleRef<'_>, FormErrors> {
        let mut errors = None;
        let v = |i: usize| self.values[i].as_str();
        let birth = parse_date(v(at::BIRTH));
        if birth.is_none() {
            flag(&mut errors, at::BIRTH, "Informe a data de nascimento (dia, mês e ano).");
        }
        let phone = match digits(v(at::PHONE)) {
            None if v(at::PHONE).is_empty() => None,
            Some(n) if (10_000_000_000..=99_999_999_999).contains(&n) => Some(n),
            _ => {
                flag(&mut errors, at::PHONE, "O telefone deve ter 11 dígitos: DDD e número.");
                None
            }
        };
        let country = match v(at::COUNTRY) {
            "" => BRAZIL,
            text => text.parse().unwrap_or_else(|_| {
                flag(
                    &mut errors,
                    at::COUNTRY,
                    "Informe o país pelo código numérico ISO 3166-1 (Brasil: 76).",
                );
                BRAZIL
            }),
        };
        // A known UF in any case is the table's ("pe": "PE"); another is kept for validation to refuse.
        let state = (!v(at::STATE).is_empty()).then(|| {
            let typed = v(at::STATE);
            tables().states.iter().map(|s| s.uf).find(|uf| uf.eq_ignore_ascii_case(typed)).unwrap_or(typed)
        });
        let city = self.city(state, country, &mut errors);
        let candle = CandleRef {
            name: v(at::NAME),
            email: v(at::EMAIL),
            birth_date: birth.unwrap_or(Date::from_unix_days(0)),
            phone,
            has_whatsapp: self.whatsapp && phone.is_some(),
            address: v(at::ADDRESS),
            neighbourhood: v(at::NEIGHBOURHOOD),
            city,
            state,
            country,
            prayer: v(at::PRAYER),
        };
        if let Err(e) = candle.validate(today) {
            let (field, message) = message_of(&e);
            flag(&mut errors, field, message);
        }
        match errors {
            Some(errors) => Err(errors),
            None => Ok(candle),
        }
    }

    /// The city's IBGE code: typed as a code, or as a name within the state given.
    fn city(&self, state: Option<&str>, country: u16, errors: &mut Option<FormErrors>) -> Option<u32> {
        let text = self.values[at::CITY].as_str();
        if text.is_empty() {
            if country == BRAZIL {
                flag(errors, at::CITY, "Informe a cidade.");
            }
            return None;
        }
        if let Ok(code) = text.parse::<u32>() {
            return Some(code);
        }
        let t = tables();
        let Some(uf) = state.and_then(|s| t.state_index(s)) else {
            flag(errors, at::STATE, "Informe o estado (UF) da cidade, por exemplo SP.");
            return None;
        };
        match t.city_by_name(text, uf) {
            Some(index) => t.city(index).map(|c| c.ibge_code),
            None => {
                flag(errors, at::CITY, "Não encontramos essa cidade nesse estado; confira o nome.");
                None
            }
        }
    }
}

/// `YYYY-MM-DD` (what a date input sends) or `DD/MM/YYYY` (what people type).
fn parse_date(text: &str) -> Option<Date> {
    let mut parts = text.split(['-', '/']);
    let (a, b, c) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (y, m, d) = if a.len() == 4 { (a, b, c) } else { (c, b, a) };
    Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

/// The digits of a phone as typed ("(11) 98765-4321"), as a number.
fn digits(text: &str) -> Option<u64> {
    if text.chars().any(|c| c.is_alphabetic()) {
        return None;
    }
    let mut n: Option<u64> = None;
    for d in text.bytes().filter(u8::is_ascii_digit) {
        n = Some(n.unwrap_or(0).checked_mul(10)?.checked_add(u64::from(d - b'0'))?);
    }
    n
}

/// Decodes an urlencoded name or value into `out` (cleared first): `+` is a space, `%XX` a byte,
/// a `%` not followed by two hex digits itself (as `form_urlencoded` does).
fn percent_decode(bytes: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                match (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            _ => out.push(b),
        }
        i += 1;
    }
}

/// The field a validation error concerns (`CandleError::field_name`, placed on the form) and
/// what to tell the reader, in Portuguese.
pub fn message_of(e: &CandleError) -> (usize, String) {
    let field = match e.field_name() {
        "name" => at::NAME,
        "email" => at::EMAIL,
        "birth_date" => at::BIRTH,
        "phone" | "has_whatsapp" => at::PHONE,
        "address" => at::ADDRESS,
        "neighbourhood" => at::NEIGHBOURHOOD,
        "city" => at::CITY,
        "state" => at::STATE,
        "country" => at::COUNTRY,
        _ => at::PRAYER,
    };
    let text = match e {
        CandleError::EmptyName => "Informe seu nome.".into(),
        CandleError::TooLong { max, .. } => format!("Texto longo demais: no máximo {max} bytes."),
        CandleError::PrayerTooManyChars { max, .. } => {
            format!("O pedido pode ter no máximo {max} caracteres.")
        }
        CandleError::ControlCharacter { .. } | CandleError::BadUtf8 { .. } => {
            "O texto tem caracteres que não podem ser guardados.".into()
        }
        CandleError::BadEmail => "Confira o e-mail: nome@provedor.".into(),
        CandleError::PhoneNotElevenDigits { .. } => "O telefone deve ter 11 dígitos: DDD e número.".into(),
        CandleError::UnknownAreaCode { ddd } => format!("O DDD {ddd} não existe."),
        CandleError::WhatsappWithoutPhone => "Informe o telefone do WhatsApp.".into(),
        CandleError::BornBefore1900(_) => "A data de nascimento deve ser depois de 1900.".into(),
        CandleError::BornInTheFuture { .. } => "A data de nascimento está no futuro.".into(),
        CandleError::UnknownCity(_) => "Esse código de cidade não existe no IBGE.".into(),
        CandleError::UnknownState(_) => "Esse estado não existe; use a sigla, como SP.".into(),
        CandleError::CityNotInState { city_state, .. } => format!("Essa cidade fica em {city_state}."),
        CandleError::MissingPlace => "Informe a cidade e o estado.".into(),
        CandleError::PlaceAbroad(_) => "Fora do Brasil, deixe a cidade e o estado em branco.".into(),
        CandleError::UnknownCountry(_) => "Esse código de país não existe.".into(),
        CandleError::OverflowTooLong { .. } | CandleError::Compress(_) => {
            "O texto é longo demais para ser guardado.".into()
        }
    };
    (field, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        Date::new(2026, 12, 5).unwrap()
    }

    fn body(pairs: &[(&str, &str)]) -> Vec<u8> {
        form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish().into_bytes()
    }

    #[test]
    fn a_good_form_is_a_candle_with_its_city_found_by_name() {
        let form = Form::parse(&body(&[
            ("nome", "Maria Eduarda Gonçalves"),
            ("email", "maria@exemplo.com.br"),
            ("nascimento", "1990-03-14"),
            ("telefone", "(81) 98765-4321"),
            ("whatsapp", "1"),
            ("endereco", "Rua da Aurora, 12"),
            ("bairro", "Boa Vista"),
            ("cidade", "Recife"),
            ("uf", "pe"),
            ("pedido", "Pela saúde da minha mãe"),
        ]));
        let c = form.candle(today()).expect("valid");
        assert_eq!(c.phone, Some(81_987_654_321));
        assert!(c.has_whatsapp);
        assert_eq!(c.city, Some(2_611_606), "Recife's IBGE code");
        assert_eq!(c.state.as_deref(), Some("PE"));
        assert_eq!(c.country, BRAZIL);
        assert_eq!(c.prayer, "Pela saúde da minha mãe");
    }

    #[test]
    fn every_problem_is_told_by_its_field_in_portuguese() {
        let form = Form::parse(&body(&[
            ("nome", "Ana"),
            ("nascimento", "31/02/1990"),
            ("telefone", "1234"),
            ("cidade", "Atlantis"),
            ("uf", "SP"),
        ]));
        let e = form.candle(today()).unwrap_err();
        assert!(e.0[at::BIRTH].as_deref().unwrap().contains("data de nascimento"));
        assert!(e.0[at::PHONE].as_deref().unwrap().contains("11 dígitos"));
        assert!(e.0[at::CITY].as_deref().unwrap().contains("Não encontramos"));
        let future = Form::parse(&body(&[
            ("nome", "Ana"),
            ("nascimento", "2030-01-01"),
            ("cidade", "3550308"),
            ("uf", "SP"),
        ]));
        let e = future.candle(today()).unwrap_err();
        assert_eq!(e.0[at::BIRTH].as_deref(), Some("A data de nascimento está no futuro."));
        let empty = Form::parse(b"");
        let e = empty.candle(today()).unwrap_err();
        assert!(e.0[at::NAME].is_some() || e.0[at::BIRTH].is_some());
    }

    #[test]
    fn the_hand_written_reading_is_form_urlencoded_s() {
        let bodies: [&[u8]; 7] = [
            b"nome=Jo%C3%A3o+da+Silva&uf=pe&pedido=a%2Bb%25c%zz%4&nome=Ana",
            b"=x&&nome&cidade=Recife=PE&whatsapp=&whatsapp=on",
            b"pedido=%FF%FEx&bairro=+Boa+Viagem+",
            b"%6Eome=Bia&telefone=(81)%2098765-4321",
            b"",
            b"&&&",
            b"nome=%",
        ];
        for body in bodies {
            let mut expected = Form::default();
            for (name, value) in form_urlencoded::parse(body) {
                if name == "whatsapp" {
                    expected.whatsapp = !value.is_empty();
                } else if let Some(i) = FIELDS.iter().position(|f| f.0 == name) {
                    expected.values[i] = value.trim().to_string();
                }
            }
            assert_eq!(Form::parse(body), expected, "{}", String::from_utf8_lossy(body));
            let mut reused = Form::parse(b"nome=Outra&whatsapp=1&pedido=antes");
            reused.parse_into(body, &mut Vec::new());
            assert_eq!(reused, expected, "a reused form holds only the new post");
        }
        assert_eq!(digits("(81) 98765-4321"), Some(81_987_654_321));
        assert_eq!(digits("99999999999999999999999"), None, "overflow is not a number");
        assert_eq!(parse_date("14/03/1990"), Date::new(1990, 3, 14));
        assert_eq!(parse_date("1990-03-14-1"), None);
    }

    #[test]
    fn any_bytes_parse_without_panic() {
        for b in [&b"%zz=%%&&=="[..], b"nome=\xff\xfe", b"pedido=a%00b"] {
            let _ = Form::parse(b).candle(today());
        }
    }
}
