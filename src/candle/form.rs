//! The candle page's form (`candle::page`): an `application/x-www-form-urlencoded` body read
//! into its fields, turned into a [`Candle`] and checked, every problem given in Portuguese next to
//! the field it concerns.
//!
//! Field by field first (a date that is not a date, a phone that is not 11 digits, a city that the
//! IBGE table does not know in the state given), so several mistakes are shown at once; then
//! `Candle::validate` at the request's date, whose error (the first it finds) is put by its field.
//!
//! Invariants: nothing here panics on any bytes; the values typed are kept as typed (the page
//! shows them back), never trusted for anything but display once escaped.

use super::fields::{Candle, CandleError, Date};
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

impl FormErrors {
    fn set(&mut self, field: usize, message: impl Into<String>) {
        self.0[field].get_or_insert_with(|| message.into());
    }

    fn any(&self) -> bool {
        self.0.iter().any(Option::is_some)
    }
}

impl Form {
    /// Reads an urlencoded body (unknown names ignored; the last of a repeated name wins).
    pub fn parse(body: &[u8]) -> Self {
        let mut form = Form::default();
        for (name, value) in form_urlencoded::parse(body) {
            if name == "whatsapp" {
                form.whatsapp = !value.is_empty();
            } else if let Some(i) = FIELDS.iter().position(|f| f.0 == name) {
                form.values[i] = value.trim().to_string();
            }
        }
        form
    }

    /// The candle the form describes, checked at `today`; or every problem found.
    pub fn candle(&self, today: Date) -> Result<Candle, FormErrors> {
        let mut errors = FormErrors::default();
        let v = |i: usize| self.values[i].as_str();
        let birth = parse_date(v(at::BIRTH));
        if birth.is_none() {
            errors.set(at::BIRTH, "Informe a data de nascimento (dia, mês e ano).");
        }
        let phone = match digits(v(at::PHONE)) {
            None if v(at::PHONE).is_empty() => None,
            Some(n) if (10_000_000_000..=99_999_999_999).contains(&n) => Some(n),
            _ => {
                errors.set(at::PHONE, "O telefone deve ter 11 dígitos: DDD e número.");
                None
            }
        };
        let country = match v(at::COUNTRY) {
            "" => BRAZIL,
            text => text.parse().unwrap_or_else(|_| {
                errors.set(at::COUNTRY, "Informe o país pelo código numérico ISO 3166-1 (Brasil: 76).");
                BRAZIL
            }),
        };
        let state = (!v(at::STATE).is_empty()).then(|| v(at::STATE).to_ascii_uppercase());
        let city = self.city(state.as_deref(), country, &mut errors);
        let candle = Candle {
            name: v(at::NAME).to_string(),
            email: v(at::EMAIL).to_string(),
            birth_date: birth.unwrap_or(Date::from_unix_days(0)),
            phone,
            has_whatsapp: self.whatsapp && phone.is_some(),
            address: v(at::ADDRESS).to_string(),
            neighbourhood: v(at::NEIGHBOURHOOD).to_string(),
            city,
            state,
            country,
            prayer: self.values[at::PRAYER].clone(),
        };
        if let Err(e) = candle.validate(today) {
            let (field, message) = message_of(&e);
            errors.set(field, message);
        }
        if errors.any() {
            return Err(errors);
        }
        Ok(candle)
    }

    /// The city's IBGE code: typed as a code, or as a name within the state given.
    fn city(&self, state: Option<&str>, country: u16, errors: &mut FormErrors) -> Option<u32> {
        let text = self.values[at::CITY].as_str();
        if text.is_empty() {
            if country == BRAZIL {
                errors.set(at::CITY, "Informe a cidade.");
            }
            return None;
        }
        if let Ok(code) = text.parse::<u32>() {
            return Some(code);
        }
        let t = tables();
        let Some(uf) = state.and_then(|s| t.state_index(s)) else {
            errors.set(at::STATE, "Informe o estado (UF) da cidade, por exemplo SP.");
            return None;
        };
        match t.city_by_name(text, uf) {
            Some(index) => t.city(index).map(|c| c.ibge_code),
            None => {
                errors.set(at::CITY, "Não encontramos essa cidade nesse estado; confira o nome.");
                None
            }
        }
    }
}

/// `YYYY-MM-DD` (what a date input sends) or `DD/MM/YYYY` (what people type).
fn parse_date(text: &str) -> Option<Date> {
    let parts: Vec<&str> = text.split(['-', '/']).collect();
    let [a, b, c] = parts.as_slice() else { return None };
    let (y, m, d) = if a.len() == 4 { (a, b, c) } else { (c, b, a) };
    Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

/// The digits of a phone as typed ("(11) 98765-4321"), as a number.
fn digits(text: &str) -> Option<u64> {
    let only: String = text.chars().filter(char::is_ascii_digit).collect();
    if only.is_empty() || text.chars().any(|c| c.is_alphabetic()) {
        return None;
    }
    only.parse().ok()
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
    fn any_bytes_parse_without_panic() {
        for b in [&b"%zz=%%&&=="[..], b"nome=\xff\xfe", b"pedido=a%00b"] {
            let _ = Form::parse(b).candle(today());
        }
    }
}
