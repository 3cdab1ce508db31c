//! The zstd text model of a field: a trained dictionary, prepared once for compression and
//! decompression, and the magicless, checksum-free frame parameters both sides use.
//!
//! Invariants: the compressor and decompressor of a field use the same dictionary bytes and the
//! same frame format; the level changes only the encoder (every level's frames decode alike).

use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::{DecoderDictionary, EncoderDictionary};
use zstd::zstd_safe::{CParameter, DParameter, FrameFormat};

/// The compression level the dictionaries are prepared at (measured: see docs/CANDLES.md).
pub const ZSTD_LEVEL: i32 = 3;

/// One field's zstd dictionary, prepared both ways.
pub struct ZstdDict {
    raw: Vec<u8>,
    encoder: EncoderDictionary<'static>,
    decoder: DecoderDictionary<'static>,
}

impl std::fmt::Debug for ZstdDict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdDict").field("bytes", &self.raw.len()).finish()
    }
}

impl ZstdDict {
    /// A dictionary prepared at [`ZSTD_LEVEL`].
    pub fn new(raw: Vec<u8>) -> Self {
        Self::at_level(raw, ZSTD_LEVEL)
    }

    /// A dictionary prepared at another level (the training example measures levels with it).
    pub fn at_level(raw: Vec<u8>, level: i32) -> Self {
        let encoder = EncoderDictionary::copy(&raw, level);
        let decoder = DecoderDictionary::copy(&raw);
        Self { raw, encoder, decoder }
    }

    /// Trains a dictionary of at most `dict_bytes` from samples of a field's text.
    pub fn train(samples: &[Vec<u8>], dict_bytes: usize) -> std::io::Result<Vec<u8>> {
        zstd::dict::from_samples(samples, dict_bytes)
    }

    /// The dictionary bytes (what the model file holds).
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// A compression context: magicless frames, no checksum, content size or dictionary id.
    pub fn compressor(&self) -> Compressor<'_> {
        let mut c = Compressor::with_prepared_dictionary(&self.encoder).expect("zstd context");
        for p in [
            CParameter::Format(FrameFormat::Magicless),
            CParameter::ChecksumFlag(false),
            CParameter::ContentSizeFlag(false),
            CParameter::DictIdFlag(false),
        ] {
            c.set_parameter(p).expect("zstd parameter");
        }
        c
    }

    /// A decompression context reading the frames [`ZstdDict::compressor`] writes.
    pub fn decompressor(&self) -> Decompressor<'_> {
        let mut d = Decompressor::with_prepared_dictionary(&self.decoder).expect("zstd context");
        d.set_parameter(DParameter::Format(FrameFormat::Magicless)).expect("zstd parameter");
        d
    }
}
