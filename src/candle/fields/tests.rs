//! Every validation error, each from a good candle with one field made bad.

use super::*;

pub(crate) fn today() -> Date {
    Date::new(2026, 12, 5).expect("date")
}

pub(crate) fn good() -> Candle {
    Candle {
        name: "Maria Eduarda Gonçalves".into(),
        email: "maria.eduarda@gmail.com".into(),
        birth_date: Date::new(1987, 3, 14).expect("date"),
        phone: Some(11_987_654_321),
        has_whatsapp: true,
        address: "Rua São José, 123".into(),
        neighbourhood: "Jardim América".into(),
        city: Some(3_550_308),
        state: Some("SP".into()),
        country: 76,
        prayer: "Pela saúde da minha mãe".into(),
    }
}

fn err(f: impl FnOnce(&mut Candle)) -> CandleError {
    let mut c = good();
    f(&mut c);
    c.validate(today()).expect_err("must be refused")
}

#[test]
fn a_good_candle_resolves_to_table_indexes() {
    let r = good().validate(today()).expect("valid");
    let t = tables();
    assert_eq!(t.cities[usize::from(r.city)].name, "São Paulo");
    assert_eq!(t.states[usize::from(r.state)].uf, "SP");
    assert_eq!(t.countries[usize::from(r.country)].alpha2, "BR");
    assert_eq!(Date::from_days_since_1900(r.birth_days), good().birth_date);
}

#[test]
fn every_validation_error_names_its_field_and_limit() {
    assert_eq!(err(|c| c.name = "  ".into()), CandleError::EmptyName);
    assert_eq!(
        err(|c| c.name = "a".repeat(121)),
        CandleError::TooLong { field: Field::Name, len: 121, max: NAME_BYTES_MAX }
    );
    assert!(matches!(err(|c| c.email = "x".repeat(255)), CandleError::TooLong { field: Field::Email, .. }));
    assert!(matches!(
        err(|c| c.address = "é".repeat(81)),
        CandleError::TooLong { field: Field::Address, len: 162, max: 160 }
    ));
    assert!(matches!(
        err(|c| c.neighbourhood = "x".repeat(81)),
        CandleError::TooLong { field: Field::Neighbourhood, .. }
    ));
    assert_eq!(err(|c| c.prayer = "a".repeat(801)), CandleError::PrayerTooManyChars { chars: 801, max: 800 });
    assert!(matches!(err(|c| c.prayer = "ç".repeat(801)), CandleError::TooLong { field: Field::Prayer, .. }));
    assert_eq!(err(|c| c.name = "Ana\nMaria".into()), CandleError::ControlCharacter { field: Field::Name });
    assert_eq!(err(|c| c.email = "sem-arroba".into()), CandleError::BadEmail);
    assert_eq!(err(|c| c.email = "a@b@c".into()), CandleError::BadEmail);
    assert_eq!(
        err(|c| c.phone = Some(1_198_765_432)),
        CandleError::PhoneNotElevenDigits { phone: 1_198_765_432 }
    );
    assert_eq!(
        err(|c| c.phone = Some(119_876_543_210)),
        CandleError::PhoneNotElevenDigits { phone: 119_876_543_210 }
    );
    assert_eq!(err(|c| c.phone = Some(20_987_654_321)), CandleError::UnknownAreaCode { ddd: 20 });
    assert_eq!(err(|c| c.phone = None), CandleError::WhatsappWithoutPhone);
    let old = Date::new(1899, 12, 31).expect("date");
    assert_eq!(err(|c| c.birth_date = old), CandleError::BornBefore1900(old));
    let tomorrow = Date::new(2026, 12, 6).expect("date");
    assert_eq!(
        err(|c| c.birth_date = tomorrow),
        CandleError::BornInTheFuture { born: tomorrow, today: today() }
    );
    assert_eq!(err(|c| c.city = Some(3_550_309)), CandleError::UnknownCity(3_550_309));
    assert_eq!(err(|c| c.state = Some("XX".into())), CandleError::UnknownState("XX".into()));
    assert_eq!(
        err(|c| c.state = Some("RJ".into())),
        CandleError::CityNotInState { city: 3_550_308, city_state: "SP", given: "RJ" }
    );
    assert_eq!(err(|c| c.city = None), CandleError::MissingPlace);
    assert_eq!(err(|c| c.country = 620), CandleError::PlaceAbroad(620));
    assert_eq!(err(|c| c.country = 999), CandleError::UnknownCountry(999));
}

#[test]
fn a_candle_from_abroad_has_no_city_or_state() {
    let mut c = good();
    (c.city, c.state, c.country, c.phone, c.has_whatsapp) = (None, None, 620, None, false);
    let r = c.validate(today()).expect("valid");
    assert_eq!((r.city, r.state), (crate::candle::slot::NO_CITY, crate::candle::slot::NO_STATE));
    assert_eq!(tables().countries[usize::from(r.country)].alpha2, "PT");
}

#[test]
fn dates_convert_both_ways_at_the_edges() {
    for (y, m, d, n) in [(1900, 1, 1, 0i64), (1970, 1, 1, 25_567), (2079, 6, 6, 65_535)] {
        let date = Date::new(y, m, d).expect("date");
        assert_eq!(date.days_since_1900(), n);
        if let Ok(n16) = u16::try_from(n) {
            assert_eq!(Date::from_days_since_1900(n16), date);
        }
    }
    assert_eq!(Date::new(2023, 2, 29), None);
    assert!(Date::new(2024, 2, 29).is_some());
    assert_eq!(Date::new(2024, 13, 1), None);
}
