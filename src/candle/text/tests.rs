//! Two model versions side by side: a slot keeps the version that wrote it and stays readable.

use super::*;
use crate::candle::codec::{decode, encode, field_text};
use crate::candle::corpus::{Corpus, CORPUS_TODAY};
use crate::candle::DecodeError;

fn v2_trained_on_another_seed() -> ZstdModel {
    let mut texts: [Vec<Vec<u8>>; 3] = Default::default();
    let mut buf = Vec::new();
    for c in Corpus::new(99).take(4_000) {
        for f in TextField::ALL {
            field_text(&c, f, &mut buf);
            if !buf.is_empty() {
                texts[f.index()].push(buf.clone());
            }
        }
    }
    ZstdModel::new(2, texts.map(|t| train(&t, 4_096).expect("train")))
}

fn ov(e: &crate::candle::EncodedCandle) -> [Option<&[u8]>; 3] {
    e.overflow.each_ref().map(|o| o.as_deref())
}

fn v1_copy() -> ZstdModel {
    let v1 = Registry::builtin().get(1).expect("v1 shipped");
    ZstdModel::new(1, TextField::ALL.map(|f| v1.dictionary(f).to_vec()))
}

#[test]
fn the_builtin_registry_writes_v1_with_real_dictionaries() {
    let r = Registry::builtin();
    assert_eq!(r.current(), CURRENT_MODEL);
    for f in TextField::ALL {
        assert!(r.get(1).expect("v1").dictionary(f).len() > 1_000, "{f:?} has a trained dictionary");
    }
    assert!(r.get(2).is_none());
}

#[test]
fn slots_of_two_model_versions_are_both_readable() {
    let both = Registry::new(vec![v1_copy(), v2_trained_on_another_seed()], 2);
    let mut old = TextCodec::new(Registry::builtin());
    let mut new = TextCodec::new(&both);
    assert_eq!(new.writer_version(), 2);
    let mut differ = 0;
    for c in Corpus::new(5).take(300) {
        let e1 = encode(&c, CORPUS_TODAY, &mut old).expect("v1");
        let e2 = encode(&c, CORPUS_TODAY, &mut new).expect("v2");
        assert_eq!((e1.slot.text_model(), e2.slot.text_model()), (1, 2));
        differ += usize::from(e1.slot.text_region() != e2.slot.text_region());
        assert_eq!(decode(&e1.slot, ov(&e1), &mut new).expect("v1 read by a v2 build"), c);
        assert_eq!(decode(&e2.slot, ov(&e2), &mut new).expect("v2"), c);
        assert_eq!(
            decode(&e2.slot, ov(&e2), &mut old),
            Err(DecodeError::Text(TextError::UnknownModel(2))),
            "a v1-only build refuses v2 slots by name"
        );
    }
    assert!(differ > 250, "the two versions really are different dictionaries: {differ}");
}

#[test]
fn decompression_is_bounded_by_the_field_limit() {
    let mut codec = TextCodec::new(Registry::builtin());
    let big = vec![b'a'; text_bytes_max(TextField::AddressNeighbourhood) + 1];
    let mut packed = vec![0u8; compressed_bytes_max(TextField::Prayer)];
    // The compressor takes any length (validation bounds it earlier); the decompressor does not.
    let n = codec.compress(TextField::AddressNeighbourhood, &big, &mut packed).expect("compress");
    let mut out = Vec::new();
    codec.decompress(1, TextField::AddressNeighbourhood, &packed[..n], &mut out).expect_err("bound");
    assert!(out.is_empty());
    let ok = &big[1..];
    let n = codec.compress(TextField::AddressNeighbourhood, ok, &mut packed).expect("compress");
    codec.decompress(1, TextField::AddressNeighbourhood, &packed[..n], &mut out).expect("at the limit");
    assert_eq!(out, ok);
    let n = codec.compress(TextField::Prayer, &big, &mut packed).expect("compress");
    assert!(codec.decompress(1, TextField::AddressNeighbourhood, &packed[..n], &mut out).is_err());
    assert!(out.is_empty());
}
