//! The candle store (seed 000, DESIGN.md section 5): virtual candles that live exactly seven days,
//! each a 128-byte slot ([`slot`]) with its text compressed inline by a trained, versioned model,
//! or moved to a per-field overflow pool when it does not fit. A projection on the partition's seam
//! folds them into a ring of seven daily buckets, so expiry drops a whole day at once.
//!
//! Invariants: a slot's bytes are the same on every replica and every replay (the lit time comes
//! from the leader's stamp, never a local clock); a slot records the text model version that wrote
//! it, so records stay readable after a retrain.

mod blocks;
pub mod command;
pub mod form;
pub mod page;
pub mod projection;
pub mod ring;
pub mod slot;
mod snapshot;

pub use projection::{CandleProjection, TAG_CANDLE};
pub use ring::{CandleId, CandleLimits};
pub use slot::{Slot, TextField, TextRef, SLOT_BYTES};

pub mod codec;
pub mod corpus;
pub mod fields;
pub mod tables;
pub mod text;
pub mod wire;

pub use codec::{decode, decode_ref, encode, encode_ref, DecodeError, EncodedCandle, EncodedRef};
pub use fields::{Candle, CandleError, CandleRef, Date};
pub use text::{Registry, TextCodec};

#[cfg(test)]
mod quota_tests;
#[cfg(test)]
mod tests;
