//! Access control for the data plane (docs/SECURITY.md): who sent a request, what they may do,
//! and how much the node may send to where it came from.
//!
//! - [`acl`]: roles as Redis ACL categories, and which category each binary opcode needs;
//! - [`ext`]: the byte layout of a datagram's cookie and authentication blocks;
//! - [`mac`]: the keyed-BLAKE3 MAC over an authenticated datagram;
//! - [`replay`]: the per-(key, client) nonce window that refuses a datagram seen before;
//! - [`cookie`]: the address cookies that prove a source address (the amplification bound);
//! - [`keys`]: the node's principals, built from `[auth]` (and the admin API), shared by the
//!   shards behind an `ArcSwap`;
//! - [`gate`]: one shard's admission of a datagram: the decision and its counters.
//!
//! Everything here is sans-IO: the clock and the cookie secret come in as values.
//!
//! Invariants: a datagram that fails admission executes nothing; the MAC is checked before any
//! frame is parsed; an answer to a source that has not proven its address is never larger than
//! [`AMPLIFICATION_FACTOR_MAX`] times the request (checked per datagram by the engine).

pub mod acl;
pub mod cookie;
pub mod ext;
pub mod gate;
pub mod keys;
pub mod mac;
pub mod replay;

pub use acl::Acl;
pub use gate::{Admission, AuthCounters, Gate, Refusal};
pub use keys::{KeyTable, Principal, SharedKeys};

/// Most bytes sent to an unproven source per byte it sent (QUIC's and DNS cookies' rule).
pub const AMPLIFICATION_FACTOR_MAX: usize = 3;
