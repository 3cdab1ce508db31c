//! Text compression for the slot's three text fields, by trained, versioned models.
//!
//! A model ([`TextModel`]) has one coder per [`TextField`]: a zstd dictionary ([`ZstdDict`]) or an
//! FSST symbol table ([`FsstTable`]), trained on the generated corpus
//! (`examples/candle_train.rs`) and committed as data under `data/candle/models/vN/`. A slot
//! records the version of the model that wrote it (slot byte 6), and the [`Registry`] maps a
//! version to its model, so a slot written by v1 stays readable after v2 exists: a retrain adds a
//! version, it never replaces one. v1 is zstd for all three fields; v2 (current) is FSST for
//! name + e-mail and address + neighbourhood and zstd for the prayer, the choice measured by
//! `examples/candle_compare.rs` (docs/CANDLES.md): FSST is 5 bytes smaller and 4x faster on the
//! short fields (zstd's frame costs ~5 bytes), zstd 16 bytes smaller on prayers.
//!
//! zstd frames are the magicless format with no checksum, no content size and no dictionary id:
//! the slot already says which model and how many bytes. Decompressed sizes are bounded by the
//! field's limit ([`text_bytes_max`]), so a corrupt value never makes the decoder allocate more.
//!
//! Invariants: a [`TextCodec`] makes its zstd contexts and its buffers once; both coders write
//! into those buffers (zstd through its reused context and prepared dictionary, FSST by this
//! crate's own coder, `fsst_model`), so encoding or decoding a candle allocates nothing.

mod fsst_model;
mod zstd_model;

pub use fsst_model::FsstTable;
pub use zstd_model::{ZstdDict, ZSTD_LEVEL};

use std::sync::OnceLock;

use thiserror::Error;
use zstd::bulk::{Compressor, Decompressor};

use super::fields::{
    ADDRESS_BYTES_MAX, EMAIL_BYTES_MAX, NAME_BYTES_MAX, NEIGHBOURHOOD_BYTES_MAX, PRAYER_BYTES_MAX,
};
use super::slot::TextField;

/// The model version this build writes.
pub const CURRENT_MODEL: u8 = 2;

/// Most bytes a field's text has before compression (the joined fields with their separator).
pub fn text_bytes_max(field: TextField) -> usize {
    match field {
        TextField::NameEmail => NAME_BYTES_MAX + 1 + EMAIL_BYTES_MAX,
        TextField::AddressNeighbourhood => ADDRESS_BYTES_MAX + 1 + NEIGHBOURHOOD_BYTES_MAX,
        TextField::Prayer => PRAYER_BYTES_MAX,
    }
}

/// Most bytes of a compressed field (the larger of zstd's bound and FSST's two bytes per byte
/// for the largest text): the overflow value limit the ring can check.
pub fn compressed_bytes_max(field: TextField) -> usize {
    let n = text_bytes_max(field);
    zstd::zstd_safe::compress_bound(n).max(2 * n)
}

/// A text (de)compression failure.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TextError {
    /// The slot names a model version this build does not know; nothing was decoded.
    #[error("text model version {0} is not in the registry")]
    UnknownModel(u8),
    /// zstd or FSST refused the value (corrupt, or its text is over the field's limit); nothing
    /// was decoded.
    #[error("{field:?}: {reason}")]
    Corrupt {
        /// The field.
        field: TextField,
        /// zstd's message.
        reason: String,
    },
}

/// How one field of a model compresses.
#[derive(Debug)]
pub enum FieldModel {
    /// A zstd dictionary.
    Zstd(ZstdDict),
    /// An FSST symbol table (boxed: its 2 KiB of symbols would size every variant).
    Fsst(Box<FsstTable>),
}

impl FieldModel {
    /// The model file bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            FieldModel::Zstd(d) => d.as_bytes(),
            FieldModel::Fsst(t) => t.as_bytes(),
        }
    }
}

/// One version of the text model: a coder per field.
#[derive(Debug)]
pub struct TextModel {
    version: u8,
    fields: [FieldModel; 3],
}

impl TextModel {
    /// A model from its three field coders (in [`TextField`] order).
    pub fn new(version: u8, fields: [FieldModel; 3]) -> Self {
        Self { version, fields }
    }

    /// Its version (slot byte 6).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The coder of a field.
    pub fn field(&self, field: TextField) -> &FieldModel {
        &self.fields[field.index()]
    }
}

macro_rules! model_file {
    ($path:literal) => {
        include_bytes!(concat!("../../../data/candle/models/", $path)).to_vec()
    };
}

fn fsst(raw: Vec<u8>) -> FieldModel {
    FieldModel::Fsst(Box::new(FsstTable::from_bytes(&raw).expect("a shipped FSST table parses")))
}

/// The models this build can read, by version.
#[derive(Debug)]
pub struct Registry {
    models: Vec<TextModel>,
    current: u8,
}

impl Registry {
    /// A registry of these models, writing with `current` (which must be among them).
    pub fn new(models: Vec<TextModel>, current: u8) -> Self {
        assert!(models.iter().any(|m| m.version() == current), "the current model is registered");
        Self { models, current }
    }

    /// The models shipped with this build (`data/candle/models/`).
    pub fn builtin() -> &'static Registry {
        static BUILTIN: OnceLock<Registry> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            let v1 = TextModel::new(
                1,
                [
                    FieldModel::Zstd(ZstdDict::new(model_file!("v1/name_email.zdict"))),
                    FieldModel::Zstd(ZstdDict::new(model_file!("v1/address.zdict"))),
                    FieldModel::Zstd(ZstdDict::new(model_file!("v1/prayer.zdict"))),
                ],
            );
            let v2 = TextModel::new(
                2,
                [
                    fsst(model_file!("v2/name_email.fsst")),
                    fsst(model_file!("v2/address.fsst")),
                    FieldModel::Zstd(ZstdDict::new(model_file!("v2/prayer.zdict"))),
                ],
            );
            Registry::new(vec![v1, v2], CURRENT_MODEL)
        })
    }

    /// The model of a version.
    pub fn get(&self, version: u8) -> Option<&TextModel> {
        self.models.iter().find(|m| m.version() == version)
    }

    /// The version new slots are written with.
    pub fn current(&self) -> u8 {
        self.current
    }
}

/// One model's zstd contexts (none for its FSST fields).
struct Contexts<'r> {
    model: &'r TextModel,
    compressors: [Option<Compressor<'r>>; 3],
    decompressors: [Option<Decompressor<'r>>; 3],
}

impl<'r> Contexts<'r> {
    fn new(model: &'r TextModel) -> Self {
        let zstd = |f: TextField| match model.field(f) {
            FieldModel::Zstd(d) => Some(d),
            FieldModel::Fsst(_) => None,
        };
        Self {
            model,
            compressors: TextField::ALL.map(|f| zstd(f).map(ZstdDict::compressor)),
            decompressors: TextField::ALL.map(|f| zstd(f).map(ZstdDict::decompressor)),
        }
    }
}

/// Per-thread compression state over a registry: the zstd contexts of every model and the
/// buffers a candle's texts are (de)compressed in, all made once, at start.
pub struct TextCodec<'r> {
    writer: usize,
    versions: Vec<Contexts<'r>>,
    /// A field's text before compression ([`text_bytes_max`] of the prayer: the largest).
    scratch_text: Vec<u8>,
    /// Each field's compressed value ([`compressed_bytes_max`]).
    scratch_compressed: [Vec<u8>; 3],
    /// Each field's decompressed text ([`text_bytes_max`]).
    scratch_decoded: [Vec<u8>; 3],
}

impl std::fmt::Debug for TextCodec<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextCodec").field("writer", &self.writer_version()).finish_non_exhaustive()
    }
}

impl<'r> TextCodec<'r> {
    /// Contexts for every model of `registry`, writing with its current one.
    pub fn new(registry: &'r Registry) -> Self {
        Self::writing(registry, registry.current())
    }

    /// Contexts for every model of `registry`, writing with `version` (a registered one).
    pub fn writing(registry: &'r Registry, version: u8) -> Self {
        let versions: Vec<Contexts<'r>> = registry.models.iter().map(Contexts::new).collect();
        let writer = versions
            .iter()
            .position(|c| c.model.version() == version)
            .expect("the writing version is registered");
        let scratch_text = Vec::with_capacity(text_bytes_max(TextField::Prayer));
        let scratch_compressed = TextField::ALL.map(|f| Vec::with_capacity(compressed_bytes_max(f)));
        let scratch_decoded = TextField::ALL.map(|f| Vec::with_capacity(text_bytes_max(f)));
        Self { writer, versions, scratch_text, scratch_compressed, scratch_decoded }
    }

    /// The model version [`TextCodec::compress`] writes (slot byte 6).
    pub fn writer_version(&self) -> u8 {
        self.versions[self.writer].model.version()
    }

    /// Compresses `text` of `field` into `out` (cleared first); an empty text stays empty.
    pub fn compress(&mut self, field: TextField, text: &[u8], out: &mut Vec<u8>) -> Result<(), TextError> {
        compress_with(&mut self.versions[self.writer], field, text, out)
    }

    /// Compresses each field's text, as `fill` writes it into the buffer it is given, into the
    /// codec's own buffers, and lends them: a candle's encoding allocates nothing (texts within
    /// their fields' limits fit the buffers as made).
    pub fn compress_fields(
        &mut self,
        mut fill: impl FnMut(TextField, &mut Vec<u8>),
    ) -> Result<&[Vec<u8>; 3], TextError> {
        let ctx = &mut self.versions[self.writer];
        for f in TextField::ALL {
            fill(f, &mut self.scratch_text);
            compress_with(ctx, f, &self.scratch_text, &mut self.scratch_compressed[f.index()])?;
        }
        Ok(&self.scratch_compressed)
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
        decompress_with(self.contexts(version)?, field, bytes, out)
    }

    /// Decompresses the three fields of a slot written by model `version` into the codec's own
    /// buffers and lends the texts (nothing allocated).
    pub fn decompress_fields(&mut self, version: u8, bytes: [&[u8]; 3]) -> Result<[&[u8]; 3], TextError> {
        let ctx = self
            .versions
            .iter_mut()
            .find(|c| c.model.version() == version)
            .ok_or(TextError::UnknownModel(version))?;
        for f in TextField::ALL {
            decompress_with(ctx, f, bytes[f.index()], &mut self.scratch_decoded[f.index()])?;
        }
        Ok(self.scratch_decoded.each_ref().map(Vec::as_slice))
    }

    fn contexts(&mut self, version: u8) -> Result<&mut Contexts<'r>, TextError> {
        self.versions
            .iter_mut()
            .find(|c| c.model.version() == version)
            .ok_or(TextError::UnknownModel(version))
    }
}

/// Compresses with one model's contexts (see [`TextCodec::compress`]).
fn compress_with(
    ctx: &mut Contexts<'_>,
    field: TextField,
    text: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), TextError> {
    out.clear();
    if text.is_empty() {
        return Ok(());
    }
    match (ctx.model.field(field), &mut ctx.compressors[field.index()]) {
        (FieldModel::Fsst(t), _) => {
            t.compress(text, out);
            Ok(())
        }
        (FieldModel::Zstd(_), Some(c)) => {
            // The context and its prepared dictionary are reused; the frame goes straight into
            // `out`, whose capacity (`compressed_bytes_max`) is zstd's bound for the field.
            out.resize(zstd::zstd_safe::compress_bound(text.len()), 0);
            let n = c
                .compress_to_buffer(text, &mut out[..])
                .map_err(|e| TextError::Corrupt { field, reason: format!("zstd: {e}") })?;
            out.truncate(n);
            Ok(())
        }
        (FieldModel::Zstd(_), None) => unreachable!("zstd fields have contexts"),
    }
}

/// Decompresses with one model's contexts (see [`TextCodec::decompress`]).
fn decompress_with(
    ctx: &mut Contexts<'_>,
    field: TextField,
    bytes: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), TextError> {
    out.clear();
    if bytes.is_empty() {
        return Ok(());
    }
    let max = text_bytes_max(field);
    match (ctx.model.field(field), &mut ctx.decompressors[field.index()]) {
        (FieldModel::Fsst(t), _) => t
            .decompress(bytes, max, out)
            .map_err(|reason| TextError::Corrupt { field, reason: reason.into() }),
        (FieldModel::Zstd(_), Some(d)) => {
            // The output slice is the bound: zstd stops with an error past the field's limit.
            out.resize(max, 0);
            match d.decompress_to_buffer(bytes, &mut out[..]) {
                Ok(n) => {
                    out.truncate(n);
                    Ok(())
                }
                Err(e) => {
                    out.clear();
                    Err(TextError::Corrupt { field, reason: format!("zstd: {e}") })
                }
            }
        }
        (FieldModel::Zstd(_), None) => unreachable!("zstd fields have contexts"),
    }
}

#[cfg(test)]
mod tests;
