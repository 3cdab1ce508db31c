//! Vigil: a kernel-bypass, log-structured data appliance.
//!
//! This crate is the sans-IO appliance: configuration, the wire codec, the opcode dispatcher and
//! its subsystems, and the shard loop generic over `vigil_pmd::PacketIo` and `vigil_pmd::Clock`.
//! It has no `unsafe`; every device and syscall lives behind the seams in `vigil-pmd`.
#![deny(unsafe_code)]

pub mod auth;
pub mod candle;
pub mod check;
pub mod config;
pub mod conn;
pub mod dispatch;
pub mod engine;
pub mod inbox;
pub mod kv;
pub mod log;
pub mod metrics;
pub mod ops;
pub mod partition;
pub mod peer;
pub mod projection;
pub mod protocol;
pub mod raft;
pub mod serve;
pub mod shard;
pub mod wire;
