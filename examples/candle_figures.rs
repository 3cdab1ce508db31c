//! The candle codec's figures over generated candles (docs/CANDLES.md): slot bytes, payload bytes
//! used per slot (mean, p50, p99), share of text fields in overflow, overflow bytes per candle,
//! encode and decode rates, and the seed's long record stored and read back intact.
//!
//! `cargo run --release --example candle_figures -- [--candles 1000000] [--seed 7]`

mod candle_support;

use candle_support::arg;
use std::time::{Duration, Instant};

use vigil::candle::corpus::{long_record, Corpus, CORPUS_TODAY};
use vigil::candle::slot::{text_fields, TextRef, TEXT_START};
use vigil::candle::{decode, encode, EncodedCandle, Registry, TextCodec, TextField, SLOT_BYTES};

/// Bytes of the slot in use: the 19 bytes of header and fixed fields, then the text tags, inline
/// values and overflow references.
fn payload_bytes(e: &EncodedCandle) -> usize {
    let refs = text_fields(&e.slot).expect("an encoded slot parses");
    TEXT_START
        + refs
            .iter()
            .map(|r| match r {
                TextRef::Inline(b) => 1 + b.len(),
                TextRef::Overflow { .. } => 4,
            })
            .sum::<usize>()
}

fn ov(e: &EncodedCandle) -> [Option<&[u8]>; 3] {
    e.overflow.each_ref().map(|o| o.as_deref())
}

fn main() {
    let n = arg("--candles", 1_000_000) as usize;
    let seed = arg("--seed", 7);
    let registry = Registry::builtin();
    let mut codec = TextCodec::new(registry);
    let mut corpus = Corpus::new(seed);
    let mut payload = vec![0usize; SLOT_BYTES + 1];
    let (mut out_fields, mut out_per_field, mut out_bytes) = (0usize, [0usize; 3], 0usize);
    let (mut t_enc, mut t_dec) = (Duration::ZERO, Duration::ZERO);
    let batch = 10_000;
    let mut done = 0;
    while done < n {
        let candles: Vec<_> = corpus.by_ref().take(batch.min(n - done)).collect();
        let start = Instant::now();
        let encoded: Vec<EncodedCandle> = candles
            .iter()
            .map(|c| encode(c, CORPUS_TODAY, &mut codec).expect("a generated candle encodes"))
            .collect();
        t_enc += start.elapsed();
        let start = Instant::now();
        for (e, c) in encoded.iter().zip(&candles) {
            let back = decode(&e.slot, ov(e), &mut codec).expect("decodes");
            assert_eq!(&back, c);
        }
        t_dec += start.elapsed();
        for e in &encoded {
            payload[payload_bytes(e)] += 1;
            for f in TextField::ALL {
                if let Some(v) = &e.overflow[f.index()] {
                    out_fields += 1;
                    out_per_field[f.index()] += 1;
                    out_bytes += v.len();
                }
            }
        }
        done += candles.len();
    }
    let total: usize = payload.iter().enumerate().map(|(b, k)| b * k).sum();
    let pct = |p: f64| {
        let want = (p * n as f64).ceil() as usize;
        let mut seen = 0;
        payload.iter().position(|&k| {
            seen += k;
            seen >= want
        })
    };
    println!("candles                      {n} (seed {seed}, text model v{})", registry.current());
    println!("slot bytes                   {SLOT_BYTES}");
    println!(
        "payload bytes used per slot  mean {:.1}, p50 {}, p99 {}, max {}",
        total as f64 / n as f64,
        pct(0.5).expect("p50"),
        pct(0.99).expect("p99"),
        pct(1.0).expect("max")
    );
    println!(
        "text fields in overflow      {:.3}% ({out_fields} of {}; name+email {}, address {}, prayer {})",
        100.0 * out_fields as f64 / (3 * n) as f64,
        3 * n,
        out_per_field[0],
        out_per_field[1],
        out_per_field[2]
    );
    println!("overflow bytes per candle    {:.2} mean", out_bytes as f64 / n as f64);
    println!(
        "encode                       {:.0} candles/s ({:.0} ns each, validation included)",
        n as f64 / t_enc.as_secs_f64(),
        t_enc.as_nanos() as f64 / n as f64
    );
    println!(
        "decode                       {:.0} candles/s ({:.0} ns each)",
        n as f64 / t_dec.as_secs_f64(),
        t_dec.as_nanos() as f64 / n as f64
    );
    long_case(&mut codec);
}

fn long_case(codec: &mut TextCodec<'_>) {
    let c = long_record();
    let e = encode(&c, CORPUS_TODAY, codec).expect("the long record encodes");
    let back = decode(&e.slot, ov(&e), codec).expect("decodes");
    assert_eq!(back, c, "the long record reads back intact");
    let out: Vec<String> = TextField::ALL
        .iter()
        .filter_map(|f| e.overflow[f.index()].as_ref().map(|v| format!("{f:?} {} B", v.len())))
        .collect();
    println!(
        "long record                  {:?} / {:?} / prayer of {} chars: payload {} B in the slot, \
         overflow [{}], read back intact",
        c.name,
        c.address,
        c.prayer.chars().count(),
        payload_bytes(&e),
        out.join(", ")
    );
}
