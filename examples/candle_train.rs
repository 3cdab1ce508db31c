//! Trains a candle text model on the generated corpus and writes it to `data/candle/models/vN/`.
//! Reproducible: a fixed seed and sample count give the same files.
//!
//! v1: a zstd dictionary per field. v2 (current): FSST symbol tables for name + e-mail and
//! address + neighbourhood, a zstd dictionary for the prayer (the choice `candle_compare` measures).
//!
//! `cargo run --release --example candle_train -- --version 2 [--samples 200000]
//!  [--dict-bytes 16384] [--seed 2063]`

mod candle_support;

use candle_support::arg;
use std::path::PathBuf;

use vigil::candle::codec::field_text;
use vigil::candle::corpus::Corpus;
use vigil::candle::text::{FieldModel, FsstTable, TextModel, ZstdDict};
use vigil::candle::TextField;

const NAMES: [&str; 3] = ["name_email", "address", "prayer"];

fn main() -> anyhow::Result<()> {
    let version = arg("--version", 2) as u8;
    let samples = arg("--samples", 200_000) as usize;
    let dict_bytes = arg("--dict-bytes", 16_384) as usize;
    let seed = arg("--seed", 2063);
    let mut texts: [Vec<Vec<u8>>; 3] = Default::default();
    let mut buf = Vec::new();
    for c in Corpus::new(seed).take(samples) {
        for f in TextField::ALL {
            field_text(c.view(), f, &mut buf);
            if !buf.is_empty() {
                texts[f.index()].push(buf.clone());
            }
        }
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("data/candle/models/v{version}"));
    std::fs::create_dir_all(&dir)?;
    let fsst_fields: &[TextField] = match version {
        1 => &[],
        2 => &[TextField::NameEmail, TextField::AddressNeighbourhood],
        v => anyhow::bail!("no plan for model v{v}: add one here"),
    };
    let mut fields = Vec::new();
    for f in TextField::ALL {
        let samples = &texts[f.index()];
        let (model, ext) = if fsst_fields.contains(&f) {
            (FieldModel::Fsst(Box::new(FsstTable::train(samples))), "fsst")
        } else {
            (FieldModel::Zstd(ZstdDict::new(ZstdDict::train(samples, dict_bytes)?)), "zdict")
        };
        std::fs::write(dir.join(format!("{}.{ext}", NAMES[f.index()])), model.as_bytes())?;
        if let FieldModel::Zstd(d) = &model {
            for level in [1, 3, 9, 19] {
                let at = FieldModel::Zstd(ZstdDict::at_level(d.as_bytes().to_vec(), level));
                report(f, &at, &format!("zstd level {level}"), seed.wrapping_add(1));
            }
        } else {
            report(f, &model, "fsst", seed.wrapping_add(1));
        }
        fields.push(model);
    }
    let fields: [FieldModel; 3] = fields.try_into().expect("three fields");
    let _model = TextModel::new(version, fields);
    println!("wrote {}", dir.display());
    Ok(())
}

/// Mean compressed bytes of a field on a fresh sample (a different seed than training).
fn report(f: TextField, model: &FieldModel, what: &str, seed: u64) {
    let mut zc = match model {
        FieldModel::Zstd(d) => Some(d.compressor()),
        FieldModel::Fsst(_) => None,
    };
    let mut out = vec![0u8; 8192];
    let mut fout = Vec::new();
    let mut buf = Vec::new();
    let (mut raw, mut packed, mut ns, mut n) = (0usize, 0usize, 0u128, 0usize);
    for c in Corpus::new(seed).take(20_000) {
        field_text(c.view(), f, &mut buf);
        if buf.is_empty() {
            continue;
        }
        let t = std::time::Instant::now();
        packed += match (&mut zc, model) {
            (Some(c), _) => c.compress_to_buffer(&buf, &mut out[..]).expect("compress"),
            (None, FieldModel::Fsst(t)) => {
                t.compress(&buf, &mut fout);
                fout.len()
            }
            (None, FieldModel::Zstd(_)) => unreachable!("zstd has a context"),
        };
        ns += t.elapsed().as_nanos();
        raw += buf.len();
        n += 1;
    }
    println!(
        "{f:?} {what}: model {} B, text {:.1} B -> {:.1} B mean over {n}, {:.0} ns to compress",
        model.as_bytes().len(),
        raw as f64 / n as f64,
        packed as f64 / n as f64,
        ns as f64 / n as f64
    );
}
