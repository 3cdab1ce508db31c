//! The FSST text model of a field: a symbol table (up to 255 symbols of 1..=8 bytes, code 255
//! escapes one literal byte), trained on the corpus, stored as data and rebuilt at start.
//!
//! File format (`*.fsst`): a byte `n` (symbols), then `n` symbols as 8 bytes each (little-endian,
//! unused tail bytes zero), then `n` lengths (1..=8), in code order as `fsst-rs` orders them.
//!
//! Invariants: decoding never panics and never writes past the field's limit: a value whose codes
//! end in a dangling escape is refused before `fsst-rs` sees it (it would assert), the output
//! buffer is the crate's stated bound (8 bytes per code, plus 8), and the decoded length is checked
//! against the limit afterwards.

use fsst::{Compressor, Symbol, ESCAPE_CODE};

/// One field's FSST symbol table.
pub struct FsstTable {
    compressor: Compressor,
    raw: Vec<u8>,
}

impl std::fmt::Debug for FsstTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsstTable").field("symbols", &self.compressor.n_symbols()).finish()
    }
}

impl FsstTable {
    /// Trains a table on samples of a field's text.
    pub fn train(samples: &[Vec<u8>]) -> Self {
        let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
        let compressor = Compressor::train(&refs);
        let mut raw = vec![compressor.n_symbols() as u8];
        for s in compressor.symbol_table() {
            raw.extend_from_slice(&s.to_u64().to_le_bytes());
        }
        raw.extend_from_slice(compressor.symbol_lengths());
        Self { compressor, raw }
    }

    /// A table from its file bytes (shipped data, so a bad file is a build defect: `None`, and
    /// `fsst-rs` itself asserts its code order).
    pub fn from_bytes(raw: &[u8]) -> Option<Self> {
        let (&n, rest) = raw.split_first()?;
        let n = usize::from(n);
        if n == usize::from(ESCAPE_CODE) || rest.len() != n * 9 {
            return None;
        }
        let (syms, lens) = rest.split_at(n * 8);
        if lens.iter().any(|&l| !(1..=8).contains(&l)) {
            return None;
        }
        let symbols: Vec<Symbol> =
            syms.chunks_exact(8).map(|c| Symbol::from_slice(c.try_into().expect("8"))).collect();
        let compressor = Compressor::rebuild_from(&symbols, lens);
        Some(Self { compressor, raw: raw.to_vec() })
    }

    /// The file bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// Compresses `text` into `out` (cleared first): at most 2 bytes per input byte.
    pub fn compress(&self, text: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.compressor.compress(text));
    }

    /// Decompresses `codes` into `out` (cleared first); `Err` with a reason if the codes are not
    /// a value (dangling escape) or decode to more than `max` bytes.
    pub fn decompress(&self, codes: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), String> {
        out.clear();
        if codes.len() > 2 * max {
            return Err(format!("{} code bytes cannot be at most {max} text bytes", codes.len()));
        }
        let mut i = 0;
        while i < codes.len() {
            i += if codes[i] == ESCAPE_CODE { 2 } else { 1 };
        }
        if i != codes.len() {
            return Err("escape code at the end".into());
        }
        let decoded = self.compressor.decompressor().decompress(codes);
        if decoded.len() > max {
            return Err(format!("{} bytes decoded, over the limit of {max}", decoded.len()));
        }
        out.extend_from_slice(&decoded);
        Ok(())
    }
}
