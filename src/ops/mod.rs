//! The subsystems that own opcodes. Each registers its handlers with the dispatcher at start-up;
//! `register_all` is the one place that lists them.

pub mod basic;

use crate::dispatch::{DispatchError, Dispatcher, Subsystem};

/// Registers every subsystem's handlers.
pub fn register_all(dispatcher: &mut Dispatcher) -> Result<(), DispatchError> {
    basic::Basic.register(dispatcher)
}
