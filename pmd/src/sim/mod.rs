//! The deterministic simulator's devices, in the spirit of TigerBeetle's VOPR: a virtual clock
//! ([`SimClock`]), a disk with seeded latency, faults and crash-at-any-point ([`SimDisk`]), and a
//! network with seeded delay, loss, duplication, reordering and partitions ([`SimNet`]), byte-stream
//! connections delivered in chunks of any size ([`SimStreams`]), all driven
//! by one seed through [`SplitMix64`].
//!
//! Invariants: nothing here reads real time or an unseeded RNG, and every container that is iterated
//! is ordered, so a seed replays bit for bit; time moves only when the simulator (or a spinning
//! caller, see [`SimDisk`]) moves the shared clock. No `unsafe`: plain safe Rust throughout.
//! Devices here allocate per request or datagram: test infrastructure, never a production path.

mod clock;
pub mod disk;
pub mod net;
mod rng;
pub mod streams;

pub use clock::{NodeClock, SimClock};
pub use disk::{
    CrashReport, ErrorsSuspended, SimDisk, SimDiskConfig, SimDiskCounters, SimDiskFaults, SECTOR_SIZE,
};
pub use net::{SimEndpoint, SimNet, SimNetConfig, SimNetCounters};
pub use rng::SplitMix64;
pub use streams::SimStreams;
