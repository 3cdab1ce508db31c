//! The zstd text model: a trained dictionary per text field, prepared once for compression and
//! decompression, and the magicless, checksum-free frame parameters both sides use.
//!
//! Invariants: the compressor and decompressor of a version use the same dictionary bytes and
//! the same frame format; a model's version is fixed when it is made and is what slots record.

use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::{DecoderDictionary, EncoderDictionary};
use zstd::zstd_safe::{CParameter, DParameter, FrameFormat};

use crate::candle::slot::TextField;

/// The compression level the dictionaries are prepared at (measured: see docs/CANDLES.md).
pub const ZSTD_LEVEL: i32 = 3;

/// One version of the zstd model.
pub struct ZstdModel {
    version: u8,
    raw: [Vec<u8>; 3],
    encoders: [EncoderDictionary<'static>; 3],
    decoders: [DecoderDictionary<'static>; 3],
}

impl std::fmt::Debug for ZstdModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sizes = self.raw.each_ref().map(Vec::len);
        f.debug_struct("ZstdModel").field("version", &self.version).field("dict_bytes", &sizes).finish()
    }
}

impl ZstdModel {
    /// A model from its three dictionaries (in [`TextField`] order).
    pub fn new(version: u8, dicts: [Vec<u8>; 3]) -> Self {
        Self::at_level(version, dicts, ZSTD_LEVEL)
    }

    /// A model compressing at another level (the training example measures levels with it;
    /// the level changes only the encoder, every level's frames decode alike).
    pub fn at_level(version: u8, dicts: [Vec<u8>; 3], level: i32) -> Self {
        let encoders = dicts.each_ref().map(|d| EncoderDictionary::copy(d, level));
        let decoders = dicts.each_ref().map(|d| DecoderDictionary::copy(d));
        Self { version, raw: dicts, encoders, decoders }
    }

    /// Its version (slot byte 6).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The dictionary bytes of a field (what the model files hold).
    pub fn dictionary(&self, field: TextField) -> &[u8] {
        &self.raw[field.index()]
    }

    /// A compression context for `field`: magicless frames, no checksum, size or dictionary id.
    pub fn compressor(&self, field: TextField) -> Compressor<'_> {
        let mut c =
            Compressor::with_prepared_dictionary(&self.encoders[field.index()]).expect("zstd context");
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

    /// A decompression context for `field`, reading the frames [`ZstdModel::compressor`] writes.
    pub fn decompressor(&self, field: TextField) -> Decompressor<'_> {
        let mut d =
            Decompressor::with_prepared_dictionary(&self.decoders[field.index()]).expect("zstd context");
        d.set_parameter(DParameter::Format(FrameFormat::Magicless)).expect("zstd parameter");
        d
    }
}

/// Trains one dictionary of at most `dict_bytes` from samples of a field's text.
pub fn train(samples: &[Vec<u8>], dict_bytes: usize) -> std::io::Result<Vec<u8>> {
    zstd::dict::from_samples(samples, dict_bytes)
}
