//! Trains the candle text model (three zstd dictionaries) on the generated corpus and writes
//! them to `data/candle/models/vN/`. Reproducible: a fixed seed and sample count give the same
//! files.
//!
//! `cargo run --release --example candle_train -- [--version 1] [--samples 200000]
//!  [--dict-bytes 16384] [--seed 2063]`

use std::path::PathBuf;

use vigil::candle::codec::field_text;
use vigil::candle::corpus::Corpus;
use vigil::candle::text::{train, ZstdModel};
use vigil::candle::TextField;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let version = arg("--version", 1) as u8;
    let samples = arg("--samples", 200_000) as usize;
    let dict_bytes = arg("--dict-bytes", 16_384) as usize;
    let seed = arg("--seed", 2063);
    let mut texts: [Vec<Vec<u8>>; 3] = Default::default();
    let mut buf = Vec::new();
    for c in Corpus::new(seed).take(samples) {
        for f in TextField::ALL {
            field_text(&c, f, &mut buf);
            if !buf.is_empty() {
                texts[f.index()].push(buf.clone());
            }
        }
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("data/candle/models/v{version}"));
    std::fs::create_dir_all(&dir)?;
    let names = ["name_email", "address", "prayer"];
    let mut dicts: [Vec<u8>; 3] = Default::default();
    for f in TextField::ALL {
        dicts[f.index()] = train(&texts[f.index()], dict_bytes)?;
        std::fs::write(dir.join(format!("{}.zdict", names[f.index()])), &dicts[f.index()])?;
    }
    for level in [1, 3, 6, 9, 19] {
        println!("level {level}:");
        report(&ZstdModel::at_level(version, dicts.clone(), level), seed.wrapping_add(1));
    }
    println!("wrote {}", dir.display());
    Ok(())
}

/// Mean compressed bytes per field on a fresh sample (a different seed than training).
fn report(model: &ZstdModel, seed: u64) {
    let mut comps = TextField::ALL.map(|f| model.compressor(f));
    let mut out = vec![0u8; 4096];
    let mut buf = Vec::new();
    let (mut raw, mut packed) = ([0usize; 3], [0usize; 3]);
    let n = 20_000;
    let mut ns = [0u128; 3];
    for c in Corpus::new(seed).take(n) {
        for f in TextField::ALL {
            field_text(&c, f, &mut buf);
            raw[f.index()] += buf.len();
            if !buf.is_empty() {
                let t = std::time::Instant::now();
                packed[f.index()] +=
                    comps[f.index()].compress_to_buffer(&buf, &mut out[..]).expect("compress");
                ns[f.index()] += t.elapsed().as_nanos();
            }
        }
    }
    for f in TextField::ALL {
        let i = f.index();
        println!(
            "  {f:?}: dict {} B, text {:.1} B -> {:.1} B mean over {n}, {:.0} ns to compress",
            model.dictionary(f).len(),
            raw[i] as f64 / n as f64,
            packed[i] as f64 / n as f64,
            ns[i] as f64 / n as f64
        );
    }
}
