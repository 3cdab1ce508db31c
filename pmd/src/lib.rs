//! Vigil's I/O layer: the narrow seams the sans-IO appliance in `src/` is generic over, and their
//! real implementations.
//!
//! - [`PacketIo`]: bursts of UDP datagrams in and out. Backends: DPDK ethdev queues (`dpdk` feature,
//!   any PMD: memif, tap, af_packet, ring, null, real NICs) with the fast-path stack of [`net`]
//!   answering ARP and ICMP echo on its own, and kernel UDP sockets with recvmmsg/sendmmsg
//!   ([`kernel`]), the fallback where DPDK cannot start.
//! - [`block::BlockIo`]: asynchronous block storage for the log (submit, then poll completions):
//!   io_uring with O_DIRECT on a file or raw device ([`block::uring`], the default), memory
//!   ([`block::memory`]), and SPDK's NVMe driver behind the `spdk` feature.
//! - [`StreamIo`]: one shard's TCP connections, handed over by an acceptor thread and polled
//!   without blocking ([`tcp`]: non-blocking sockets under epoll).
//! - [`Clock`]: monotonic time, read once per poll and passed down as a value.
//!
//! Invariants: this crate and `ffi/` are the only places with `unsafe`; every owned DPDK object frees
//! itself on drop; no backend allocates on the per-packet path (buffers come from pools sized at
//! start-up from config).
#![warn(missing_docs)]

pub mod batch;
pub mod block;
pub mod clock;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod kernel;
pub mod malloc;
pub mod mem;
pub mod net;
pub mod packet_io;
pub mod sim;
pub mod stream;
pub mod tcp;

pub use batch::Batch;
pub use clock::{Clock, MonotonicClock, Nanos};
pub use packet_io::{IoCounters, PacketIo, Peer, RxDatagram, TxDatagram};
pub use stream::{ConnId, Received, Sent, StreamCounters, StreamEvent, StreamIo};
