//! `vigil-bench`: Vigil's open-loop load generator (`vigil-loadgen`) as a library, so its schedule,
//! accounting and generator loop are unit- and integration-testable without a network.
//!
//! Modules, from the inside out: [`rate`] (intended send times), [`outstanding`] (which answers are
//! still expected), [`accounting`] (latency from intended time, errors, timeouts), [`run`] (the
//! generator loop over any `PacketIo`; what it runs, [`load`]), [`report`] (summary, JSON, interval log), [`cli`] and
//! [`backend`] (flags, and the kernel/DPDK set-up); [`leaders`] (where each request goes in a
//! replicated cluster, and the resends `NOT_LEADER` hints ask for); [`spec`] and [`workload`] (what load to offer, as
//! data), [`traffic`] (each request's content, and malformed datagrams), [`candles`] (the
//! candle bodies LIGHT sends and the ids GET asks for) and [`seal`] (credentials, client ids in a
//! key's range, address cookies, the per-datagram MAC).
//!
//! Invariants: no `unsafe` (forbidden below); nothing allocates inside the send/receive loop.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod accounting;
pub mod backend;
pub mod candles;
pub mod cli;
pub mod leaders;
pub mod load;
pub mod multi;
pub mod outstanding;
pub mod plot;
pub mod progress;
pub mod rate;
pub mod report;
pub mod run;
pub mod seal;
pub mod search;
pub mod spec;
pub mod traffic;
pub mod workload;
