//! Text compression for the slot's three text fields, by trained, versioned models.
//!
//! A model ([`ZstdModel`]) is three zstd dictionaries, one per [`TextField`], trained on the
//! generated corpus (`examples/candle_train.rs`) and committed as data under
//! `data/candle/models/vN/`. A slot records the version of the model that wrote it (slot byte 6),
//! and the [`Registry`] maps a version to its model, so a slot written by v1 stays readable after
//! v2 exists: a retrain adds a version, it never replaces one.
//!
//! Frames are zstd's magicless format with no checksum, no content size and no dictionary id:
//! the slot already says which model (and so which dictionary) and how many bytes; the
//! decompressed size is bounded by the field's limit ([`TextField`] → [`text_bytes_max`]), so a
//! corrupt value can never make the decoder allocate more. FSST was measured against it on the
//! same corpus: see `docs/CANDLES.md`.
//!
//! Invariants: a [`TextCodec`] allocates its contexts and scratch once; compressing or
//! decompressing a field allocates nothing (the output goes to caller-owned buffers).

mod zstd_model;

pub use zstd_model::{train, ZstdModel, ZSTD_LEVEL};

use std::sync::OnceLock;

use thiserror::Error;
use zstd::bulk::{Compressor, Decompressor};

use super::fields::{
    ADDRESS_BYTES_MAX, EMAIL_BYTES_MAX, NAME_BYTES_MAX, NEIGHBOURHOOD_BYTES_MAX, PRAYER_BYTES_MAX,
};
use super::slot::TextField;

/// The model version this build writes.
pub const CURRENT_MODEL: u8 = 1;

/// Most bytes a field's text has before compression (the joined fields with their separator).
pub fn text_bytes_max(field: TextField) -> usize {
    match field {
        TextField::NameEmail => NAME_BYTES_MAX + 1 + EMAIL_BYTES_MAX,
        TextField::AddressNeighbourhood => ADDRESS_BYTES_MAX + 1 + NEIGHBOURHOOD_BYTES_MAX,
        TextField::Prayer => PRAYER_BYTES_MAX,
    }
}

/// Most bytes of a compressed field (zstd's bound for the largest text): the overflow value
/// limit the ring can check.
pub fn compressed_bytes_max(field: TextField) -> usize {
    zstd::zstd_safe::compress_bound(text_bytes_max(field))
}

/// A text (de)compression failure.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TextError {
    /// The slot names a model version this build does not know; nothing was decoded.
    #[error("text model version {0} is not in the registry")]
    UnknownModel(u8),
    /// zstd refused the value (corrupt, or its text is over the field's limit); nothing decoded.
    #[error("{field:?}: zstd: {reason}")]
    Zstd {
        /// The field.
        field: TextField,
        /// zstd's message.
        reason: String,
    },
}

/// The models this build can read, by version.
#[derive(Debug)]
pub struct Registry {
    models: Vec<ZstdModel>,
    current: u8,
}

impl Registry {
    /// A registry of these models, writing with `current` (which must be among them).
    pub fn new(models: Vec<ZstdModel>, current: u8) -> Self {
        assert!(models.iter().any(|m| m.version() == current), "the current model is registered");
        Self { models, current }
    }

    /// The models shipped with this build (`data/candle/models/`).
    pub fn builtin() -> &'static Registry {
        static BUILTIN: OnceLock<Registry> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            let v1 = ZstdModel::new(
                1,
                [
                    include_bytes!("../../../data/candle/models/v1/name_email.zdict").to_vec(),
                    include_bytes!("../../../data/candle/models/v1/address.zdict").to_vec(),
                    include_bytes!("../../../data/candle/models/v1/prayer.zdict").to_vec(),
                ],
            );
            Registry::new(vec![v1], CURRENT_MODEL)
        })
    }

    /// The model of a version.
    pub fn get(&self, version: u8) -> Option<&ZstdModel> {
        self.models.iter().find(|m| m.version() == version)
    }

    /// The version new slots are written with.
    pub fn current(&self) -> u8 {
        self.current
    }
}

/// Per-thread compression state over a registry: one zstd context per field and model, made once.
pub struct TextCodec<'r> {
    writer: u8,
    compressors: [Compressor<'r>; 3],
    decompressors: Vec<(u8, [Decompressor<'r>; 3])>,
}

impl std::fmt::Debug for TextCodec<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextCodec").field("writer", &self.writer).finish_non_exhaustive()
    }
}

impl<'r> TextCodec<'r> {
    /// Contexts for every model of `registry`, writing with its current one.
    pub fn new(registry: &'r Registry) -> Self {
        let writer = registry.get(registry.current()).expect("current model registered");
        let compressors = TextField::ALL.map(|f| writer.compressor(f));
        let decompressors = registry
            .models
            .iter()
            .map(|m| (m.version(), TextField::ALL.map(|f| m.decompressor(f))))
            .collect();
        Self { writer: registry.current(), compressors, decompressors }
    }

    /// The model version [`TextCodec::compress`] writes (slot byte 6).
    pub fn writer_version(&self) -> u8 {
        self.writer
    }

    /// Compresses `text` of `field` into `out`; returns the compressed length.
    pub fn compress(&mut self, field: TextField, text: &[u8], out: &mut [u8]) -> Result<usize, TextError> {
        if text.is_empty() {
            return Ok(0);
        }
        self.compressors[field.index()]
            .compress_to_buffer(text, out)
            .map_err(|e| TextError::Zstd { field, reason: e.to_string() })
    }

    /// Decompresses `bytes` of `field`, written by model `version`, into `out` (cleared first);
    /// at most [`text_bytes_max`] bytes come out.
    pub fn decompress(
        &mut self,
        version: u8,
        field: TextField,
        bytes: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TextError> {
        out.clear();
        if bytes.is_empty() {
            return Ok(());
        }
        let (_, d) = self
            .decompressors
            .iter_mut()
            .find(|(v, _)| *v == version)
            .ok_or(TextError::UnknownModel(version))?;
        // The output slice is the bound: zstd stops with an error past the field's limit.
        let max = text_bytes_max(field);
        out.resize(max, 0);
        let r = d[field.index()].decompress_to_buffer(bytes, &mut out[..]);
        match r {
            Ok(n) => {
                out.truncate(n);
                Ok(())
            }
            Err(e) => {
                out.clear();
                Err(TextError::Zstd { field, reason: e.to_string() })
            }
        }
    }
}

#[cfg(test)]
mod tests;
