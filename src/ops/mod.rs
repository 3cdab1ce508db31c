//! The subsystems that own opcodes. Each registers its handlers with the dispatcher at start-up;
//! `register_all` is the one place that lists the stateless ones; the KV subsystem (`kv`) holds a
//! shard's partitions and is registered by `serve` once they are recovered.

pub mod basic;
pub mod candle;
pub mod kv;
pub mod leaders;
pub mod peer_link;

use crate::dispatch::{DispatchError, Dispatcher, Subsystem};

/// Registers every subsystem's handlers.
pub fn register_all(dispatcher: &mut Dispatcher) -> Result<(), DispatchError> {
    basic::Basic.register(dispatcher)
}
