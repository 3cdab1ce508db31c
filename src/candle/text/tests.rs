//! Two model versions side by side: a slot keeps the version that wrote it and stays readable.

use super::*;
use crate::candle::codec::{decode, encode};
use crate::candle::corpus::{Corpus, CORPUS_TODAY};
use crate::candle::{DecodeError, EncodedCandle};

fn ov(e: &EncodedCandle) -> [Option<&[u8]>; 3] {
    e.overflow.each_ref().map(|o| o.as_deref())
}

/// A registry as a build before v2 had it: v1 only.
fn v1_only() -> Registry {
    let v1 = Registry::builtin().get(1).expect("v1 shipped");
    let dict = |f| FieldModel::Zstd(ZstdDict::new(v1.field(f).as_bytes().to_vec()));
    Registry::new(vec![TextModel::new(1, TextField::ALL.map(dict))], 1)
}

#[test]
fn the_builtin_registry_ships_v1_and_writes_v2_with_real_models() {
    let r = Registry::builtin();
    assert_eq!(r.current(), 2);
    for v in [1, 2] {
        for f in TextField::ALL {
            let bytes = r.get(v).expect("shipped").field(f).as_bytes().len();
            assert!(bytes > 500, "v{v} {f:?} is a trained model ({bytes} B)");
        }
    }
    assert!(matches!(r.get(2).expect("v2").field(TextField::NameEmail), FieldModel::Fsst(_)));
    assert!(matches!(r.get(2).expect("v2").field(TextField::Prayer), FieldModel::Zstd(_)));
    assert!(r.get(3).is_none());
}

#[test]
fn slots_of_two_model_versions_are_both_readable() {
    let r = Registry::builtin();
    let old_build = v1_only();
    let mut v1 = TextCodec::writing(r, 1);
    let mut v2 = TextCodec::new(r);
    let mut old = TextCodec::new(&old_build);
    assert_eq!((v1.writer_version(), v2.writer_version()), (1, 2));
    let mut differ = 0;
    for c in Corpus::new(5).take(300) {
        let e1 = encode(&c, CORPUS_TODAY, &mut old).expect("v1 by a v1-only build");
        assert_eq!(e1, encode(&c, CORPUS_TODAY, &mut v1).expect("v1"), "same bytes");
        let e2 = encode(&c, CORPUS_TODAY, &mut v2).expect("v2");
        assert_eq!((e1.slot.text_model(), e2.slot.text_model()), (1, 2));
        differ += usize::from(e1.slot.text_region() != e2.slot.text_region());
        assert_eq!(decode(&e1.slot, ov(&e1), &mut v2).expect("v1 read by a v2 build"), c);
        assert_eq!(decode(&e2.slot, ov(&e2), &mut v2).expect("v2"), c);
        assert_eq!(
            decode(&e2.slot, ov(&e2), &mut old),
            Err(DecodeError::Text(TextError::UnknownModel(2))),
            "a v1-only build refuses v2 slots by name"
        );
    }
    assert!(differ > 250, "the two versions really are different models: {differ}");
}

#[test]
fn decompression_is_bounded_by_the_field_limit() {
    for writer in [1, 2] {
        let mut codec = TextCodec::writing(Registry::builtin(), writer);
        let f = TextField::AddressNeighbourhood;
        let big = vec![b'a'; text_bytes_max(f) + 1];
        let mut packed = Vec::new();
        let mut out = Vec::new();
        // The compressor takes any length (validation bounds it earlier); the decompressor does not.
        codec.compress(f, &big, &mut packed).expect("compress");
        codec.decompress(writer, f, &packed, &mut out).expect_err("over the bound");
        assert!(out.is_empty());
        codec.compress(f, &big[1..], &mut packed).expect("compress");
        codec.decompress(writer, f, &packed, &mut out).expect("at the limit");
        assert_eq!(out, &big[1..]);
    }
}

#[test]
fn fsst_codes_ending_in_an_escape_are_refused_not_panicked_on() {
    let mut codec = TextCodec::new(Registry::builtin());
    let mut out = Vec::new();
    for bad in [&[0xFF][..], &[1, 2, 0xFF], &[0xFF, 0x41, 0xFF]] {
        let r = codec.decompress(2, TextField::NameEmail, bad, &mut out);
        assert!(matches!(r, Err(TextError::Corrupt { .. })), "{bad:?}");
    }
}

/// fsst-rs's own coder over a shipped table, rebuilt from its file as the crate orders it.
fn fsst_rs(table: &FsstTable) -> fsst::Compressor {
    let raw = table.as_bytes();
    let n = usize::from(raw[0]);
    let (syms, lens) = raw[1..].split_at(n * 8);
    let symbols: Vec<fsst::Symbol> =
        syms.chunks_exact(8).map(|c| fsst::Symbol::from_slice(c.try_into().expect("8"))).collect();
    fsst::Compressor::rebuild_from(&symbols, lens)
}

#[test]
fn the_hand_written_fsst_coder_writes_what_fsst_rs_writes() {
    let model = Registry::builtin().get(2).expect("v2");
    let mut rng = crate::candle::corpus::SplitMix64::new(17);
    let mut text = Vec::new();
    let (mut ours, mut back) = (Vec::new(), Vec::new());
    let mut values = 0;
    for f in [TextField::NameEmail, TextField::AddressNeighbourhood] {
        let FieldModel::Fsst(table) = model.field(f) else { panic!("v2 {f:?} is FSST") };
        let theirs = fsst_rs(table);
        let mut check = |text: &[u8]| {
            table.compress(text, &mut ours);
            assert_eq!(ours, theirs.compress(text), "{f:?}: {:?}", String::from_utf8_lossy(text));
            assert!(ours.len() <= 2 * text.len());
            table.decompress(&ours, text.len(), &mut back).expect("decodes");
            assert_eq!(back, text);
            assert_eq!(theirs.decompressor().decompress(&ours), text, "fsst-rs reads ours");
        };
        for c in Corpus::new(41).take(5_000) {
            crate::candle::codec::field_text(c.view(), f, &mut text);
            check(&text);
            values += 1;
        }
        // Bytes the corpus never has: escapes, short tails, every length up to a word and past.
        for len in 0..40 {
            let noise: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
            check(&noise);
        }
    }
    assert_eq!(values, 10_000);
}

#[test]
fn fsst_codes_past_the_table_or_the_limit_are_refused() {
    let model = Registry::builtin().get(2).expect("v2");
    let FieldModel::Fsst(table) = model.field(TextField::NameEmail) else { panic!("FSST") };
    let n = table.as_bytes()[0];
    let mut out = Vec::new();
    if n < 255 {
        assert!(table.decompress(&[n], 100, &mut out).is_err(), "code {n} is past the table");
    }
    table.compress(b"Maria da Silva\nmaria@gmail.com", &mut out);
    let codes = out.clone();
    assert!(table.decompress(&codes, 29, &mut out).is_err(), "one byte over the limit");
    assert!(out.is_empty());
    table.decompress(&codes, 30, &mut out).expect("at the limit");
    assert_eq!(out, b"Maria da Silva\nmaria@gmail.com");
}
