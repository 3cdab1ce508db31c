//! Raw DPDK bindings: bindgen output over `wrapper.h` (generated into `OUT_DIR`, never checked in)
//! plus `vigil_rte_*` wrappers from `shim.c` for DPDK's `static inline` fast-path functions.
//!
//! Everything here is `unsafe` and mirrors the C API one to one; the safe layer is
//! `vigil_pmd::dpdk`. Invariants the C API expects (EAL initialised before anything else, mbufs
//! and pools valid, one thread per queue) are the caller's to keep.

#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    unsafe_op_in_unsafe_fn,
    rustdoc::all,
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks
)]
mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

pub use bindings::*;

extern "C" {
    /// `rte_eth_rx_burst`: receives up to `nb_pkts` frames from `port_id`/`queue_id` into `rx_pkts`;
    /// returns how many were stored. The caller owns the returned mbufs.
    ///
    /// # Safety
    /// The port must be started, the queue set up, `rx_pkts` valid for `nb_pkts` writes, and no other
    /// thread may poll the same queue concurrently.
    pub fn vigil_rte_eth_rx_burst(
        port_id: u16,
        queue_id: u16,
        rx_pkts: *mut *mut rte_mbuf,
        nb_pkts: u16,
    ) -> u16;

    /// `rte_eth_tx_burst`: queues up to `nb_pkts` frames for transmission; returns how many were
    /// taken. Ownership of the taken mbufs (the first n) passes to the driver; the rest stay the
    /// caller's.
    ///
    /// # Safety
    /// The port must be started, the queue set up, `tx_pkts` valid for `nb_pkts` reads of valid
    /// mbufs, and no other thread may use the same queue concurrently.
    pub fn vigil_rte_eth_tx_burst(
        port_id: u16,
        queue_id: u16,
        tx_pkts: *mut *mut rte_mbuf,
        nb_pkts: u16,
    ) -> u16;

    /// `rte_pktmbuf_alloc`: one reset mbuf from `mp`, or null when the pool is empty.
    ///
    /// # Safety
    /// `mp` must be a valid packet-mbuf pool.
    pub fn vigil_rte_pktmbuf_alloc(mp: *mut rte_mempool) -> *mut rte_mbuf;

    /// `rte_pktmbuf_alloc_bulk`: `count` mbufs into `mbufs`, all or none; 0 on success.
    ///
    /// # Safety
    /// `mp` must be a valid packet-mbuf pool and `mbufs` valid for `count` writes.
    pub fn vigil_rte_pktmbuf_alloc_bulk(
        mp: *mut rte_mempool,
        mbufs: *mut *mut rte_mbuf,
        count: core::ffi::c_uint,
    ) -> core::ffi::c_int;

    /// `rte_pktmbuf_free`: returns the mbuf (all segments) to its pool; null is ignored.
    ///
    /// # Safety
    /// `m` must be null or an mbuf the caller owns; it must not be used afterwards.
    pub fn vigil_rte_pktmbuf_free(m: *mut rte_mbuf);

    /// `rte_pktmbuf_free_bulk`: frees `count` mbufs (null entries are skipped).
    ///
    /// # Safety
    /// `mbufs` must be valid for `count` reads of null or owned mbufs, none used afterwards.
    pub fn vigil_rte_pktmbuf_free_bulk(mbufs: *mut *mut rte_mbuf, count: core::ffi::c_uint);

    /// `rte_pktmbuf_mtod`: pointer to the first data byte of the first segment.
    ///
    /// # Safety
    /// `m` must be a valid mbuf.
    pub fn vigil_rte_pktmbuf_mtod(m: *mut rte_mbuf) -> *mut core::ffi::c_void;

    /// `rte_pktmbuf_data_len`: bytes in the first segment.
    ///
    /// # Safety
    /// `m` must be a valid mbuf.
    pub fn vigil_rte_pktmbuf_data_len(m: *const rte_mbuf) -> u16;

    /// `rte_pktmbuf_pkt_len`: bytes in all segments.
    ///
    /// # Safety
    /// `m` must be a valid mbuf.
    pub fn vigil_rte_pktmbuf_pkt_len(m: *const rte_mbuf) -> u32;

    /// Sets `data_len` and `pkt_len` of a single-segment mbuf to `len`.
    ///
    /// # Safety
    /// `m` must be a valid single-segment mbuf and `len` at most headroom-adjusted buffer room
    /// (`data_len` + tailroom).
    pub fn vigil_rte_pktmbuf_set_len(m: *mut rte_mbuf, len: u16);

    /// `rte_pktmbuf_headroom`: bytes before the data start.
    ///
    /// # Safety
    /// `m` must be a valid mbuf.
    pub fn vigil_rte_pktmbuf_headroom(m: *const rte_mbuf) -> u16;

    /// `rte_pktmbuf_tailroom`: bytes after the data end of the last segment.
    ///
    /// # Safety
    /// `m` must be a valid mbuf.
    pub fn vigil_rte_pktmbuf_tailroom(m: *const rte_mbuf) -> u16;

    /// Number of segments in the chain.
    ///
    /// # Safety
    /// `m` must be a valid mbuf.
    pub fn vigil_rte_pktmbuf_nb_segs(m: *const rte_mbuf) -> u16;

    /// `rte_pktmbuf_append`: grows the data by `len` at the tail; returns the start of the new bytes
    /// or null if there is not enough tailroom.
    ///
    /// # Safety
    /// `m` must be a valid mbuf the caller owns.
    pub fn vigil_rte_pktmbuf_append(m: *mut rte_mbuf, len: u16) -> *mut core::ffi::c_char;

    /// `rte_pktmbuf_adj`: removes `len` bytes from the front; returns the new data start or null.
    ///
    /// # Safety
    /// `m` must be a valid mbuf the caller owns.
    pub fn vigil_rte_pktmbuf_adj(m: *mut rte_mbuf, len: u16) -> *mut core::ffi::c_char;

    /// `rte_pktmbuf_prepend`: grows the data by `len` at the front; returns the new data start or
    /// null if there is not enough headroom.
    ///
    /// # Safety
    /// `m` must be a valid mbuf the caller owns.
    pub fn vigil_rte_pktmbuf_prepend(m: *mut rte_mbuf, len: u16) -> *mut core::ffi::c_char;

    /// `rte_pktmbuf_reset`: restores a single-segment mbuf's fields (lengths zero, default headroom).
    ///
    /// # Safety
    /// `m` must be a valid mbuf the caller owns.
    pub fn vigil_rte_pktmbuf_reset(m: *mut rte_mbuf);

    /// The calling thread's `rte_errno` (a per-lcore TLS variable, so only readable through C).
    ///
    /// # Safety
    /// Always safe to call; `unsafe` only because it is foreign.
    pub fn vigil_rte_errno() -> core::ffi::c_int;

    /// `rte_lcore_id`: the calling thread's lcore id, or `LCORE_ID_ANY` for unregistered threads.
    ///
    /// # Safety
    /// Always safe to call; `unsafe` only because it is foreign.
    pub fn vigil_rte_lcore_id() -> core::ffi::c_uint;
}
