//! Codec round trips (the generator, arbitrary valid Unicode, the seed's long record), the 0xFF
//! path for each text field, and corrupt slots refused without a panic.

use proptest::prelude::*;

use super::*;
use crate::candle::corpus::{Corpus, SplitMix64, CORPUS_TODAY};
use crate::candle::fields::{ADDRESS_BYTES_MAX, NAME_BYTES_MAX, NEIGHBOURHOOD_BYTES_MAX, PRAYER_CHARS_MAX};
use crate::candle::text::Registry;

fn codec() -> TextCodec<'static> {
    TextCodec::new(Registry::builtin())
}

fn base() -> Candle {
    Candle {
        name: "João Gonçalves".into(),
        email: "joao@uol.com.br".into(),
        birth_date: Date::new(1950, 7, 1).expect("date"),
        phone: Some(71_991_234_567),
        has_whatsapp: false,
        address: "Avenida Sete de Setembro, 12".into(),
        neighbourhood: "Centro".into(),
        city: Some(2_927_408),
        state: Some("BA".into()),
        country: 76,
        prayer: "Pela saúde da minha mãe, ç ã é".into(),
    }
}

fn overflow_refs(e: &EncodedCandle) -> [Option<&[u8]>; 3] {
    e.overflow.each_ref().map(|o| o.as_deref())
}

fn round_trip(c: &Candle, codec: &mut TextCodec<'_>) -> EncodedCandle {
    let e = encode(c, CORPUS_TODAY, codec).unwrap_or_else(|err| panic!("{err}: {c:?}"));
    assert_eq!(e.slot.lit_at(), 0, "the ring stamps the lit time");
    let back = decode(&e.slot, overflow_refs(&e), codec).expect("decodes");
    assert_eq!(&back, c);
    e
}

/// Text that compresses badly: letters drawn at random from a wide alphabet.
fn noise(rng: &mut SplitMix64, chars: usize) -> String {
    const ALPHABET: &[char] = &[
        'a', 'q', 'z', 'x', 'ç', 'ã', 'é', 'õ', 'K', 'W', '7', '3', 'ñ', 'ü', 'ß', 'ø', 'ж', 'λ', '中', '日',
        'ő', 'ř', '9', 'Y',
    ];
    (0..chars).map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize]).collect()
}

fn fit(mut s: String, max_bytes: usize) -> String {
    while s.len() > max_bytes {
        s.pop();
    }
    s
}

#[test]
fn a_typical_candle_is_inline_and_round_trips_with_accents() {
    let e = round_trip(&base(), &mut codec());
    assert_eq!(e.overflow, [None, None, None]);
    assert_eq!(e.slot.text_model(), crate::candle::text::CURRENT_MODEL);
}

#[test]
fn each_text_field_takes_the_overflow_path_alone() {
    let mut rng = SplitMix64::new(3);
    let mut codec = codec();
    for f in TextField::ALL {
        let mut c = base();
        match f {
            TextField::NameEmail => c.name = fit(noise(&mut rng, 60), NAME_BYTES_MAX),
            TextField::AddressNeighbourhood => {
                c.address = fit(noise(&mut rng, 90), ADDRESS_BYTES_MAX);
            }
            TextField::Prayer => c.prayer = noise(&mut rng, 200),
        }
        let e = round_trip(&c, &mut codec);
        for g in TextField::ALL {
            assert_eq!(e.overflow[g.index()].is_some(), g == f, "{f:?}: only it moves out");
            assert_eq!(e.slot.overflow_flag(g), g == f);
        }
        let refs = text_fields(&e.slot).expect("parses");
        assert!(matches!(refs[f.index()], TextRef::Overflow { offset: 0, .. }));
    }
}

#[test]
fn all_three_can_be_in_overflow_and_still_round_trip() {
    let mut rng = SplitMix64::new(4);
    let mut c = base();
    c.name = fit(noise(&mut rng, 60), NAME_BYTES_MAX);
    c.email = format!("{}@{}", fit(noise(&mut rng, 60), 120), fit(noise(&mut rng, 60), 120));
    c.address = fit(noise(&mut rng, 80), ADDRESS_BYTES_MAX);
    c.neighbourhood = fit(noise(&mut rng, 40), NEIGHBOURHOOD_BYTES_MAX);
    c.prayer = noise(&mut rng, PRAYER_CHARS_MAX);
    let e = round_trip(&c, &mut codec());
    assert!(e.overflow.iter().all(Option::is_some));
}

#[test]
fn the_seeds_long_record_is_stored_and_read_back_intact() {
    let c = crate::candle::corpus::long_record();
    assert_eq!(c.prayer.chars().count(), 800);
    let e = round_trip(&c, &mut codec());
    assert!(e.overflow[TextField::NameEmail.index()].is_none(), "the long name still fits");
}

#[test]
fn generated_candles_round_trip_and_rarely_overflow() {
    let mut codec = codec();
    let (mut fields_out, n) = (0, 5_000);
    for c in Corpus::new(11).take(n) {
        let e = round_trip(&c, &mut codec);
        fields_out += e.overflow.iter().filter(|o| o.is_some()).count();
    }
    assert!(fields_out * 100 < 2 * 3 * n, "under 2% of fields in overflow: {fields_out}");
}

fn encoded() -> EncodedCandle {
    encode(&base(), CORPUS_TODAY, &mut codec()).expect("encodes")
}

fn refused(slot: Slot, overflow: [Option<&[u8]>; 3]) -> DecodeError {
    decode(&slot, overflow, &mut codec()).expect_err("must be refused")
}

#[test]
fn corrupt_slots_are_refused_by_name() {
    let e = encoded();
    let none = [None, None, None];
    let with = |f: fn(&mut [u8; 128])| {
        let mut s = e.slot;
        f(&mut s.0);
        s
    };
    assert_eq!(refused(with(|b| b[4] = 0), none), DecodeError::NotOccupied);
    assert_eq!(refused(with(|b| b[5] = 9), none), DecodeError::LayoutVersion(9));
    assert_eq!(refused(with(|b| b[7] = 1), none), DecodeError::Reserved);
    assert_eq!(
        refused(with(|b| b[6] = 9), none),
        DecodeError::Text(crate::candle::text::TextError::UnknownModel(9))
    );
    assert_eq!(refused(with(|b| b[19] = 120), none), DecodeError::TextRegion);
    assert_eq!(refused(with(|b| b[127] = 1), none), DecodeError::TextRegion);
    assert_eq!(refused(with(|b| b[4] |= 2), none), DecodeError::FlagMismatch(TextField::NameEmail));
    assert_eq!(
        refused(e.slot, [None, Some(b"x"), None]),
        DecodeError::OverflowUnexpected(TextField::AddressNeighbourhood)
    );
    assert_eq!(refused(with(|b| b[14] |= 0x80), none), DecodeError::Phone);
    assert_eq!(
        refused(with(|b| b[15..17].copy_from_slice(&6000u16.to_le_bytes())), none),
        DecodeError::City(6000)
    );
    assert!(matches!(refused(with(|b| b[17] = (b[17] & !0x1F) | 3), none), DecodeError::State(3)));
}

#[test]
fn overflow_values_must_match_the_tags() {
    let mut c = base();
    c.prayer = noise(&mut SplitMix64::new(9), 300);
    let e = encode(&c, CORPUS_TODAY, &mut codec()).expect("encodes");
    let value = e.overflow[2].clone().expect("prayer out");
    assert_eq!(refused(e.slot, [None, None, None]), DecodeError::OverflowMissing(TextField::Prayer));
    assert_eq!(refused(e.slot, [None, None, Some(&[])]), DecodeError::OverflowLength(TextField::Prayer));
    let mut bad = value.clone();
    bad[value.len() / 2] ^= 0x5A;
    bad.truncate(value.len() - 1);
    assert!(matches!(refused(e.slot, [None, None, Some(&bad)]), DecodeError::Text(_) | DecodeError::Utf8(_)));
}

#[test]
fn every_single_byte_corruption_is_an_error_or_a_candle_never_a_panic() {
    let e = encoded();
    let mut codec = codec();
    for at in 0..SLOT_BYTES_FOR_TEST {
        for bit in 0..8 {
            let mut s = e.slot;
            s.0[at] ^= 1 << bit;
            let _ = decode(&s, [None, None, None], &mut codec);
        }
    }
}

const SLOT_BYTES_FOR_TEST: usize = crate::candle::slot::SLOT_BYTES;

fn text(max_bytes: usize, min_chars: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[^\\p{{Cc}}]{{{min_chars},{max_bytes}}}"))
        .expect("regex")
        .prop_map(move |s| fit(s, max_bytes))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn generated_candles_round_trip_for_any_seed(seed in any::<u64>()) {
        let mut codec = codec();
        for c in Corpus::new(seed).take(20) {
            round_trip(&c, &mut codec);
        }
    }

    #[test]
    fn arbitrary_unicode_within_the_limits_round_trips(
        name in text(NAME_BYTES_MAX, 1),
        address in text(ADDRESS_BYTES_MAX, 0),
        neighbourhood in text(NEIGHBOURHOOD_BYTES_MAX, 0),
        prayer in text(1_600, 0),
    ) {
        let mut c = base();
        prop_assume!(!name.trim().is_empty());
        prop_assume!(prayer.chars().count() <= PRAYER_CHARS_MAX);
        (c.name, c.address, c.neighbourhood, c.prayer) = (name, address, neighbourhood, prayer);
        round_trip(&c, &mut codec());
    }

    #[test]
    fn arbitrary_slot_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 128), ov in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut s = Slot::empty();
        s.0.copy_from_slice(&bytes);
        let mut codec = codec();
        let _ = decode(&s, [None, None, None], &mut codec);
        let _ = decode(&s, [Some(&ov), Some(&ov), Some(&ov)], &mut codec);
    }
}
