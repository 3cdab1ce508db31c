//! Measures the two text models the issue names on the generated corpus, per slot text field:
//! zstd with the shipped trained dictionaries (v1) against FSST (a symbol table trained on the
//! same kind of samples, `fsst-rs`): mean compressed bytes, share over the 106 bytes a single
//! field can have inline, and encode/decode ns. docs/CANDLES.md records the result and the choice.
//!
//! `cargo run --release --example candle_compare -- [--train 200000] [--measure 100000]`

mod candle_support;

use candle_support::arg;
use std::time::Instant;

use vigil::candle::codec::field_text;
use vigil::candle::corpus::Corpus;
use vigil::candle::{Registry, TextCodec, TextField};

fn samples(seed: u64, n: usize) -> [Vec<Vec<u8>>; 3] {
    let mut out: [Vec<Vec<u8>>; 3] = Default::default();
    let mut buf = Vec::new();
    for c in Corpus::new(seed).take(n) {
        for f in TextField::ALL {
            field_text(c.view(), f, &mut buf);
            if !buf.is_empty() {
                out[f.index()].push(buf.clone());
            }
        }
    }
    out
}

#[derive(Default)]
struct Tally {
    bytes: usize,
    over: usize,
    enc_ns: u128,
    dec_ns: u128,
    n: usize,
}

impl Tally {
    fn line(&self, what: &str, raw: f64) {
        let n = self.n as f64;
        println!(
            "  {what:5} {:6.1} B mean (raw {raw:5.1} B), {:5.2}% over 106 B, encode {:5.0} ns, decode {:5.0} ns",
            self.bytes as f64 / n,
            100.0 * self.over as f64 / n,
            self.enc_ns as f64 / n,
            self.dec_ns as f64 / n
        );
    }
}

fn main() {
    let train_n = arg("--train", 200_000) as usize;
    let measure_n = arg("--measure", 100_000) as usize;
    // The same seed the shipped v1 dictionaries were trained with (examples/candle_train.rs).
    let train = samples(2063, train_n);
    let test = samples(4242, measure_n);
    // Model v1 is zstd for every field: its contexts measure zstd.
    let mut zstd = TextCodec::writing(Registry::builtin(), 1);
    let mut out = Vec::new();
    let mut back = Vec::new();
    for f in TextField::ALL {
        let i = f.index();
        let refs: Vec<&[u8]> = train[i].iter().map(Vec::as_slice).collect();
        let fsst = fsst::Compressor::train(&refs);
        let fsst_dec = fsst.decompressor();
        let (mut z, mut s) = (Tally::default(), Tally::default());
        let raw: usize = test[i].iter().map(Vec::len).sum();
        for t in &test[i] {
            let start = Instant::now();
            zstd.compress(f, t, &mut out).expect("zstd");
            let n = out.len();
            z.enc_ns += start.elapsed().as_nanos();
            let start = Instant::now();
            zstd.decompress(1, f, &out, &mut back).expect("zstd back");
            z.dec_ns += start.elapsed().as_nanos();
            assert_eq!(&back, t);
            (z.bytes, z.over, z.n) = (z.bytes + n, z.over + usize::from(n > 106), z.n + 1);
            let start = Instant::now();
            let c = fsst.compress(t);
            s.enc_ns += start.elapsed().as_nanos();
            let start = Instant::now();
            let d = fsst_dec.decompress(&c);
            s.dec_ns += start.elapsed().as_nanos();
            assert_eq!(&d, t);
            let n = c.len();
            (s.bytes, s.over, s.n) = (s.bytes + n, s.over + usize::from(n > 106), s.n + 1);
        }
        println!("{f:?} ({} non-empty values):", test[i].len());
        let raw = raw as f64 / test[i].len() as f64;
        z.line("zstd", raw);
        s.line("fsst", raw);
    }
}
