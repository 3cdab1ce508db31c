//! Codecs for the protocols that standard clients speak on the TCP port (DESIGN.md section 2: the
//! room between the shard loop and the engine). Each codec is sans-IO: bytes in, values out, and
//! replies written into a buffer the caller owns and bounds.

pub mod http;
pub mod resp;
pub mod websocket;
