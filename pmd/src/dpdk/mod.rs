//! Safe wrappers over DPDK (feature `dpdk`): EAL, mempools, mbufs, ethdev ports and queues, and
//! [`DpdkUdpIo`], the [`crate::PacketIo`] backend over one ethdev queue pair.
//!
//! This module and `ffi/` are the only places with `unsafe`. Invariants kept here:
//! - every owned DPDK object frees itself on drop (mbufs to their pool, pools with
//!   `rte_mempool_free`, ports with stop + close, EAL with `rte_eal_cleanup`), and nothing is freed
//!   while something still uses it: pools and ports hold the [`Eal`] handle, ports hold their pools,
//!   and a pool with mbufs still out is leaked rather than freed;
//! - C return codes become `Result<_, DpdkError>` here, in one place ([`DpdkError`]);
//! - nothing on the per-packet path allocates: bursts use fixed arrays and pre-sized batches.

mod eal;
mod error;
mod mbuf;
mod mempool;
mod port;
mod udp_io;

pub use eal::{Eal, EalConfig, LcoreGuard};
pub use error::DpdkError;
pub use mbuf::Mbuf;
pub use mempool::Mempool;
pub use port::{Port, PortConfig, PortStats, PortStatsReader, RxTxQueue, QUEUE_BURST_MAX};
pub use udp_io::{DpdkRx, DpdkTx, DpdkUdpIo, ARP_TABLE_LEN, BURST_SIZE_MAX};

/// The raw bindings, for what the safe layer does not cover (tests, diagnostics).
pub use dpdk_sys as sys;
