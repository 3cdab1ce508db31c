//! The FSST text model of a field: a symbol table (up to 255 symbols of 1..=8 bytes, code 255
//! escapes one literal byte), trained on the corpus, stored as data and rebuilt at start.
//!
//! File format (`*.fsst`): a byte `n` (symbols), then `n` symbols as 8 bytes each (little-endian,
//! unused tail bytes zero), then `n` lengths (1..=8), in code order as `fsst-rs` orders them.
//!
//! Encoding and decoding are written here, over the table's symbols, into the caller's buffer:
//! `fsst-rs` returns a fresh `Vec` from `compress` and `decompress`, and its buffer-filling forms
//! (`compress_into`, `decompress_into`) are `unsafe`, which this crate keeps to `ffi/` and `pmd/`.
//! A LIGHT must not allocate, so the crate is used only to train a table. The encoder is the
//! greedy longest match FSST defines (at each position the longest symbol that matches, else an
//! escape), which is what `fsst-rs` computes with its lookup tables: the same codes for the
//! shipped tables (`text::tests::the_hand_written_fsst_coder_writes_what_fsst_rs_writes`).
//!
//! Invariants: neither direction allocates when the output has the room (at most 2 bytes per text
//! byte out of the encoder, the field's limit out of the decoder); decoding never panics and never
//! writes past the field's limit: a dangling escape, a code past the table or a value that decodes
//! to more than the limit is refused.

use fsst::{Compressor, ESCAPE_CODE};

/// Most symbols in a table (code 255 is the escape).
const SYMBOLS_MAX: usize = ESCAPE_CODE as usize;

/// One field's FSST symbol table, with the lookup tables its encoder uses.
pub struct FsstTable {
    raw: Vec<u8>,
    /// Symbols by code: their bytes little-endian in a u64, unused high bytes zero.
    symbols: [u64; SYMBOLS_MAX],
    /// Lengths by code (1..=8; 0 past the table).
    lengths: [u8; SYMBOLS_MAX],
    /// Symbols in the table.
    n: usize,
    /// The code of the one-byte symbol of each byte, or `ESCAPE_CODE`.
    one: [u8; 256],
    /// For each two-byte prefix (`b0 | b1 << 8`), the range `starts[p]..starts[p + 1]` of `long`:
    /// the codes of the symbols of 2..=8 bytes that begin with it, longest first.
    starts: Box<[u16]>,
    long: Box<[u8]>,
}

impl std::fmt::Debug for FsstTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsstTable").field("symbols", &self.n).finish()
    }
}

/// The low `len` bytes of a word.
fn mask(len: usize) -> u64 {
    if len >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * len)) - 1
    }
}

/// Up to 8 bytes of `text` from its start, little-endian, zero past the end.
fn word(text: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    let n = text.len().min(8);
    w[..n].copy_from_slice(&text[..n]);
    u64::from_le_bytes(w)
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
        Self::from_bytes(&raw).expect("fsst-rs trains a table of 1..=8-byte symbols")
    }

    /// A table from its file bytes (shipped data, so a bad file is a build defect: `None`).
    pub fn from_bytes(raw: &[u8]) -> Option<Self> {
        let (&n, rest) = raw.split_first()?;
        let n = usize::from(n);
        if n == SYMBOLS_MAX || rest.len() != n * 9 {
            return None;
        }
        let (syms, lens) = rest.split_at(n * 8);
        let mut symbols = [0u64; SYMBOLS_MAX];
        let mut lengths = [0u8; SYMBOLS_MAX];
        for (code, (s, &len)) in syms.chunks_exact(8).zip(lens).enumerate() {
            if !(1..=8).contains(&len) {
                return None;
            }
            symbols[code] = u64::from_le_bytes(s.try_into().expect("8 bytes")) & mask(usize::from(len));
            lengths[code] = len;
        }
        let (one, starts, long) = index(&symbols[..n], &lengths[..n]);
        Some(Self { raw: raw.to_vec(), symbols, lengths, n, one, starts, long })
    }

    /// The file bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The longest symbol that `text` (not empty) begins with: its code and length.
    fn longest(&self, text: &[u8]) -> Option<(u8, usize)> {
        let w = word(text);
        if text.len() >= 2 {
            let prefix = usize::from(u16::from_le_bytes([text[0], text[1]]));
            let range = usize::from(self.starts[prefix])..usize::from(self.starts[prefix + 1]);
            for &code in &self.long[range] {
                let len = usize::from(self.lengths[usize::from(code)]);
                if len <= text.len() && w & mask(len) == self.symbols[usize::from(code)] {
                    return Some((code, len));
                }
            }
        }
        let code = self.one[usize::from(text[0])];
        (code != ESCAPE_CODE).then_some((code, 1))
    }

    /// Compresses `text` into `out` (cleared first): at most 2 bytes per input byte, so `out`
    /// with that capacity never grows.
    pub fn compress(&self, text: &[u8], out: &mut Vec<u8>) {
        out.clear();
        let mut at = 0;
        while at < text.len() {
            match self.longest(&text[at..]) {
                Some((code, len)) => {
                    out.push(code);
                    at += len;
                }
                None => {
                    out.extend_from_slice(&[ESCAPE_CODE, text[at]]);
                    at += 1;
                }
            }
        }
    }

    /// Decompresses `codes` into `out` (cleared first; `max` bytes of capacity mean it never
    /// grows); `Err` with a reason if the codes are not a value (dangling escape, a code past the
    /// table) or decode to more than `max` bytes.
    pub fn decompress(&self, codes: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), &'static str> {
        out.clear();
        let mut i = 0;
        while i < codes.len() {
            let code = codes[i];
            let bytes = if code == ESCAPE_CODE {
                i += 1;
                let literal = codes.get(i).ok_or("escape code at the end")?;
                std::slice::from_ref(literal)
            } else {
                let code = usize::from(code);
                if code >= self.n {
                    return Err("code past the symbol table");
                }
                &self.symbols[code].to_le_bytes()[..usize::from(self.lengths[code])]
            };
            if out.len() + bytes.len() > max {
                out.clear();
                return Err("decodes past the field's limit");
            }
            out.extend_from_slice(bytes);
            i += 1;
        }
        Ok(())
    }
}

/// The encoder's lookup tables of a symbol table (see [`FsstTable`]'s fields).
fn index(symbols: &[u64], lengths: &[u8]) -> ([u8; 256], Box<[u16]>, Box<[u8]>) {
    let mut one = [ESCAPE_CODE; 256];
    let mut long: Vec<(u16, u8, u8)> = Vec::new(); // (prefix, length, code)
    for (code, (&s, &len)) in symbols.iter().zip(lengths).enumerate() {
        if len == 1 {
            one[(s & 0xFF) as usize] = code as u8;
        } else {
            long.push(((s & 0xFFFF) as u16, len, code as u8));
        }
    }
    // By prefix, then longest first: the first match is the longest.
    long.sort_unstable_by_key(|&(prefix, len, _)| (prefix, std::cmp::Reverse(len)));
    let mut starts = vec![0u16; (1 << 16) + 1];
    for &(prefix, _, _) in &long {
        starts[usize::from(prefix) + 1] += 1;
    }
    for p in 1..starts.len() {
        starts[p] += starts[p - 1];
    }
    let codes: Vec<u8> = long.iter().map(|&(_, _, code)| code).collect();
    (one, starts.into_boxed_slice(), codes.into_boxed_slice())
}
