//! The fields of a candle as a client gives them, owned ([`Candle`]) or borrowed from a request
//! ([`CandleRef`], what the LIGHT path uses), and their validation against the place tables and
//! the limits below, with one error enum, [`CandleError`].
//!
//! Invariants: validation is sans-IO ("today" is a value the caller passes) and allocates
//! nothing, refusals included (an unknown state is kept inline, [`GivenState`]); a candle that passes
//! [`Candle::validate`] fits a slot's fixed fields (birth date in a u16 of days since 1900-01-01,
//! phone in 37 bits, city, state and country as table indexes) and its text joins without
//! ambiguity (no control characters, so the codec's `\n` separator is never part of a value).

use thiserror::Error;

use super::tables::{tables, BRAZIL_NUMERIC};

/// Most bytes of UTF-8 in a name.
pub const NAME_BYTES_MAX: usize = 120;
/// Most bytes in an e-mail address (RFC 5321's path limit).
pub const EMAIL_BYTES_MAX: usize = 254;
/// Most bytes in an address (street, number, complement).
pub const ADDRESS_BYTES_MAX: usize = 160;
/// Most bytes in a neighbourhood.
pub const NEIGHBOURHOOD_BYTES_MAX: usize = 80;
/// Most characters in a prayer intention (the seed's long case).
pub const PRAYER_CHARS_MAX: usize = 800;
/// Most bytes in a prayer intention (800 characters of mostly 1- and 2-byte UTF-8).
pub const PRAYER_BYTES_MAX: usize = 1_600;
/// Smallest 11-digit phone number.
pub const PHONE_MIN: u64 = 10_000_000_000;
/// The first birth date a slot holds.
pub const EPOCH_YEAR: i32 = 1900;

/// The text fields, named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The name.
    Name,
    /// The e-mail address.
    Email,
    /// The address.
    Address,
    /// The neighbourhood.
    Neighbourhood,
    /// The prayer intention.
    Prayer,
    /// The state (UF).
    State,
}

impl Field {
    /// Its name, as `Candle`'s field.
    pub fn name(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Email => "email",
            Field::Address => "address",
            Field::Neighbourhood => "neighbourhood",
            Field::Prayer => "prayer",
            Field::State => "state",
        }
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A calendar date (proleptic Gregorian).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    /// Year.
    pub year: i32,
    /// Month 1..=12.
    pub month: u8,
    /// Day 1..=31.
    pub day: u8,
}

impl Date {
    /// A date; `None` if the month or day does not exist.
    pub fn new(year: i32, month: u8, day: u8) -> Option<Self> {
        let d = Date { year, month, day };
        let dim = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
            2 => 28,
            _ => return None,
        };
        (1..=dim).contains(&day).then_some(d)
    }

    /// Days since 1970-01-01 (negative before), after H. Hinnant's `days_from_civil`.
    pub fn unix_days(self) -> i64 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date `days` after 1970-01-01 (Hinnant's `civil_from_days`).
    pub fn from_unix_days(days: i64) -> Self {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }

    /// Days since 1900-01-01 (the slot's birth-date unit); negative before.
    pub fn days_since_1900(self) -> i64 {
        self.unix_days() - EPOCH_1900_UNIX_DAYS
    }

    /// The date `days` after 1900-01-01.
    pub fn from_days_since_1900(days: u16) -> Self {
        Self::from_unix_days(i64::from(days) + EPOCH_1900_UNIX_DAYS)
    }
}

/// 1900-01-01 in days since the Unix epoch.
const EPOCH_1900_UNIX_DAYS: i64 = -25_567;

/// A candle as the client gives it, before it becomes a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candle {
    /// Who lights it (required).
    pub name: String,
    /// E-mail address, or empty.
    pub email: String,
    /// Date of birth.
    pub birth_date: Date,
    /// 11-digit phone (area code + 9 digits), or `None`.
    pub phone: Option<u64>,
    /// Whether the phone has WhatsApp (false without a phone).
    pub has_whatsapp: bool,
    /// Street address, or empty.
    pub address: String,
    /// Neighbourhood, or empty.
    pub neighbourhood: String,
    /// The municipality's 7-digit IBGE code; `None` abroad.
    pub city: Option<u32>,
    /// The state's UF ("SP"); `None` abroad.
    pub state: Option<String>,
    /// ISO 3166-1 numeric code of the country (76 for Brazil).
    pub country: u16,
    /// The prayer intention, or empty.
    pub prayer: String,
}

/// A candle's fields borrowed from where they were read (a request body, a session's strings, a
/// codec's decode buffers): what validation, encoding and the wire body work on, so a LIGHT
/// copies no text and allocates nothing. [`Candle`] is the owned form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CandleRef<'a> {
    /// Who lights it (required).
    pub name: &'a str,
    /// E-mail address, or empty.
    pub email: &'a str,
    /// Date of birth.
    pub birth_date: Date,
    /// 11-digit phone (area code + 9 digits), or `None`.
    pub phone: Option<u64>,
    /// Whether the phone has WhatsApp (false without a phone).
    pub has_whatsapp: bool,
    /// Street address, or empty.
    pub address: &'a str,
    /// Neighbourhood, or empty.
    pub neighbourhood: &'a str,
    /// The municipality's 7-digit IBGE code; `None` abroad.
    pub city: Option<u32>,
    /// The state's UF ("SP"); `None` abroad.
    pub state: Option<&'a str>,
    /// ISO 3166-1 numeric code of the country (76 for Brazil).
    pub country: u16,
    /// The prayer intention, or empty.
    pub prayer: &'a str,
}

impl<'a> From<&'a Candle> for CandleRef<'a> {
    fn from(c: &'a Candle) -> Self {
        c.view()
    }
}

impl CandleRef<'_> {
    /// The owned candle (allocates its strings: not for the request path).
    pub fn to_candle(&self) -> Candle {
        Candle {
            name: self.name.to_owned(),
            email: self.email.to_owned(),
            birth_date: self.birth_date,
            phone: self.phone,
            has_whatsapp: self.has_whatsapp,
            address: self.address.to_owned(),
            neighbourhood: self.neighbourhood.to_owned(),
            city: self.city,
            state: self.state.map(str::to_owned),
            country: self.country,
            prayer: self.prayer.to_owned(),
        }
    }
}

/// The state text of an [`CandleError::UnknownState`]: its first bytes, kept inline so a refusal
/// allocates nothing either.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GivenState {
    bytes: [u8; GIVEN_STATE_BYTES],
    len: u8,
}

/// Bytes of an unknown state's text an error keeps (cut at a character boundary).
pub const GIVEN_STATE_BYTES: usize = 15;

impl GivenState {
    /// The text (cut to at most [`GIVEN_STATE_BYTES`] bytes).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).expect("cut at a char boundary")
    }
}

impl From<&str> for GivenState {
    fn from(s: &str) -> Self {
        let mut len = s.len().min(GIVEN_STATE_BYTES);
        while !s.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; GIVEN_STATE_BYTES];
        bytes[..len].copy_from_slice(&s.as_bytes()[..len]);
        Self { bytes, len: len as u8 }
    }
}

impl std::fmt::Debug for GivenState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for GivenState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validation or encoding failure; nothing was stored.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CandleError {
    /// The name is empty (or only spaces); the candle was refused.
    #[error("name is empty")]
    EmptyName,
    /// A text field is longer than its limit in bytes of UTF-8; the candle was refused.
    #[error("{field} is {len} bytes, over its limit of {max}")]
    TooLong {
        /// The field.
        field: Field,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The prayer has more than [`PRAYER_CHARS_MAX`] characters; the candle was refused.
    #[error("prayer is {chars} characters, over its limit of {max}")]
    PrayerTooManyChars {
        /// Its length in characters.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// A text field holds a control character (newline, tab, NUL...); the candle was refused.
    #[error("{field} holds a control character")]
    ControlCharacter {
        /// The field.
        field: Field,
    },
    /// A text field's bytes are not UTF-8 (wire decoding); the candle was refused.
    #[error("{field} is not valid UTF-8")]
    BadUtf8 {
        /// The field.
        field: Field,
    },
    /// The e-mail is not `local@domain`; the candle was refused.
    #[error("email is not local@domain")]
    BadEmail,
    /// The phone does not have exactly 11 digits; the candle was refused.
    #[error("phone {phone} does not have 11 digits (area code + 9 digits)")]
    PhoneNotElevenDigits {
        /// The number given.
        phone: u64,
    },
    /// The phone's first two digits are not a Brazilian area code; the candle was refused.
    #[error("phone area code {ddd} is not a Brazilian area code")]
    UnknownAreaCode {
        /// The area code.
        ddd: u8,
    },
    /// WhatsApp was set without a phone; the candle was refused.
    #[error("has_whatsapp is set but there is no phone")]
    WhatsappWithoutPhone,
    /// The birth date is before 1900-01-01; the candle was refused.
    #[error("birth date {0:?} is before 1900-01-01")]
    BornBefore1900(Date),
    /// The birth date is after today; the candle was refused.
    #[error("birth date {born:?} is after today ({today:?})")]
    BornInTheFuture {
        /// The birth date.
        born: Date,
        /// Today, as the caller gave it.
        today: Date,
    },
    /// The IBGE code is not one of the 5,570 municipalities; the candle was refused.
    #[error("city {0} is not an IBGE municipality code")]
    UnknownCity(u32),
    /// The UF is not one of the 27 states; the candle was refused.
    #[error("state {0:?} is not a Brazilian UF")]
    UnknownState(GivenState),
    /// The city lies in another state than the one given; the candle was refused.
    #[error("city {city} is in {city_state}, not in {given}")]
    CityNotInState {
        /// The IBGE code.
        city: u32,
        /// The UF the city is in.
        city_state: &'static str,
        /// The UF given.
        given: &'static str,
    },
    /// A Brazilian candle without a city or state; the candle was refused.
    #[error("a candle from Brazil needs a city and a state")]
    MissingPlace,
    /// A city or state given with a country other than Brazil; the candle was refused.
    #[error("country {0} is not Brazil but a city or state was given")]
    PlaceAbroad(u16),
    /// The ISO numeric code is not in the country table; the candle was refused.
    #[error("country {0} is not an ISO 3166-1 numeric code")]
    UnknownCountry(u16),
    /// A compressed text field is over the overflow value limit (the encoder's bound); refused.
    #[error("compressed {field} is {len} bytes, over the overflow value limit of {max}")]
    OverflowTooLong {
        /// The slot's text field (0 name + e-mail, 1 address, 2 prayer).
        field: usize,
        /// Compressed length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The text model failed to compress (a zstd error); refused.
    #[error("text compression failed: {0}")]
    Compress(super::text::TextError),
}

/// What validation resolved: the slot's fixed fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// Birth date in days since 1900-01-01.
    pub birth_days: u16,
    /// City index or `slot::NO_CITY`.
    pub city: u16,
    /// State index or `slot::NO_STATE`.
    pub state: u8,
    /// Country index.
    pub country: u8,
}

fn check_text(field: Field, s: &str, max: usize) -> Result<(), CandleError> {
    if s.len() > max {
        return Err(CandleError::TooLong { field, len: s.len(), max });
    }
    if s.chars().any(char::is_control) {
        return Err(CandleError::ControlCharacter { field });
    }
    Ok(())
}

impl CandleError {
    /// The field (English name) a validation error is about.
    pub fn field_name(&self) -> &'static str {
        match self {
            CandleError::EmptyName => "name",
            CandleError::TooLong { field, .. }
            | CandleError::ControlCharacter { field }
            | CandleError::BadUtf8 { field } => field.name(),
            CandleError::PrayerTooManyChars { .. } => "prayer",
            CandleError::BadEmail => "email",
            CandleError::PhoneNotElevenDigits { .. } | CandleError::UnknownAreaCode { .. } => "phone",
            CandleError::WhatsappWithoutPhone => "has_whatsapp",
            CandleError::BornBefore1900(_) | CandleError::BornInTheFuture { .. } => "birth_date",
            CandleError::UnknownCity(_) | CandleError::CityNotInState { .. } | CandleError::MissingPlace => {
                "city"
            }
            CandleError::UnknownState(_) => "state",
            CandleError::PlaceAbroad(_) | CandleError::UnknownCountry(_) => "country",
            CandleError::OverflowTooLong { .. } | CandleError::Compress(_) => "candle",
        }
    }
}

impl Candle {
    /// The fields borrowed ([`CandleRef`]).
    pub fn view(&self) -> CandleRef<'_> {
        CandleRef {
            name: &self.name,
            email: &self.email,
            birth_date: self.birth_date,
            phone: self.phone,
            has_whatsapp: self.has_whatsapp,
            address: &self.address,
            neighbourhood: &self.neighbourhood,
            city: self.city,
            state: self.state.as_deref(),
            country: self.country,
            prayer: &self.prayer,
        }
    }

    /// Checks every field against the tables and limits, `today` being the caller's date
    /// ([`CandleRef::validate`]).
    pub fn validate(&self, today: Date) -> Result<Resolved, CandleError> {
        self.view().validate(today)
    }
}

impl CandleRef<'_> {
    /// Checks every field against the tables and limits, `today` being the caller's date.
    /// Allocates nothing, refusal included.
    pub fn validate(&self, today: Date) -> Result<Resolved, CandleError> {
        check_text(Field::Name, self.name, NAME_BYTES_MAX)?;
        if self.name.trim().is_empty() {
            return Err(CandleError::EmptyName);
        }
        check_text(Field::Email, self.email, EMAIL_BYTES_MAX)?;
        self.check_email()?;
        check_text(Field::Address, self.address, ADDRESS_BYTES_MAX)?;
        check_text(Field::Neighbourhood, self.neighbourhood, NEIGHBOURHOOD_BYTES_MAX)?;
        check_text(Field::Prayer, self.prayer, PRAYER_BYTES_MAX)?;
        let chars = self.prayer.chars().count();
        if chars > PRAYER_CHARS_MAX {
            return Err(CandleError::PrayerTooManyChars { chars, max: PRAYER_CHARS_MAX });
        }
        self.check_phone()?;
        let birth_days = self.check_birth(today)?;
        let (city, state, country) = self.check_place()?;
        Ok(Resolved { birth_days, city, state, country })
    }

    fn check_email(&self) -> Result<(), CandleError> {
        if self.email.is_empty() {
            return Ok(());
        }
        let ok = match self.email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@') && !self.email.contains(' ')
            }
            None => false,
        };
        if ok {
            Ok(())
        } else {
            Err(CandleError::BadEmail)
        }
    }

    fn check_phone(&self) -> Result<(), CandleError> {
        let Some(phone) = self.phone else {
            return if self.has_whatsapp { Err(CandleError::WhatsappWithoutPhone) } else { Ok(()) };
        };
        if !(PHONE_MIN..=super::slot::PHONE_MAX).contains(&phone) {
            return Err(CandleError::PhoneNotElevenDigits { phone });
        }
        let ddd = (phone / 1_000_000_000) as u8;
        if tables().ddd_state(ddd).is_none() {
            return Err(CandleError::UnknownAreaCode { ddd });
        }
        Ok(())
    }

    fn check_birth(&self, today: Date) -> Result<u16, CandleError> {
        let born = self.birth_date;
        let days = born.days_since_1900();
        if days < 0 {
            return Err(CandleError::BornBefore1900(born));
        }
        if born > today {
            return Err(CandleError::BornInTheFuture { born, today });
        }
        // Today is before 2079-06-06 for this layout's lifetime; a later today is a new layout.
        u16::try_from(days).map_err(|_| CandleError::BornInTheFuture { born, today })
    }

    fn check_place(&self) -> Result<(u16, u8, u8), CandleError> {
        let t = tables();
        let country = t.country_index(self.country).ok_or(CandleError::UnknownCountry(self.country))?;
        if self.country != BRAZIL_NUMERIC {
            if self.city.is_some() || self.state.is_some() {
                return Err(CandleError::PlaceAbroad(self.country));
            }
            return Ok((super::slot::NO_CITY, super::slot::NO_STATE, country));
        }
        let (Some(code), Some(uf)) = (self.city, self.state) else {
            return Err(CandleError::MissingPlace);
        };
        let state = t.state_index(uf).ok_or_else(|| CandleError::UnknownState(GivenState::from(uf)))?;
        let city = t.city_index(code).ok_or(CandleError::UnknownCity(code))?;
        let city_state = t.cities[usize::from(city)].state;
        if city_state != state {
            return Err(CandleError::CityNotInState {
                city: code,
                city_state: t.states[usize::from(city_state)].uf,
                given: t.states[usize::from(state)].uf,
            });
        }
        Ok((city, state, country))
    }
}

#[cfg(test)]
mod tests;
