//! One owned packet buffer (`rte_mbuf`), returned to its pool on drop.
//!
//! Invariants: an [`Mbuf`] owns exactly one reference to a valid mbuf; the data slices it hands out
//! cover only the first segment, `[data_off, data_off + data_len)`, within the buffer; lengths are
//! set for single-segment mbufs only (multi-segment ones are dropped by the I/O layer). Field reads
//! go straight to the bindgen struct, so the per-packet path makes no C call except alloc/free.
//!
//! An mbuf must not outlive its pool; pools check for outstanding mbufs and leak themselves rather
//! than free memory an mbuf still points into (see [`super::Mempool`]).

use super::mempool::Mempool;
use std::ptr::NonNull;

/// An owned mbuf.
pub struct Mbuf {
    ptr: NonNull<dpdk_sys::rte_mbuf>,
}

// SAFETY: an Mbuf is the only owner of its mbuf, and freeing an mbuf to its (thread-safe) pool is
// allowed from any thread; nothing in the mbuf is tied to the thread that allocated it.
unsafe impl Send for Mbuf {}
// SAFETY: `&Mbuf` only allows reads of the buffer and header fields.
unsafe impl Sync for Mbuf {}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mbuf").field("len", &self.len()).field("capacity", &self.capacity()).finish()
    }
}

impl Mbuf {
    /// A fresh mbuf from `pool` (data length 0, default headroom), or `None` when the pool is empty.
    #[inline]
    pub fn alloc(pool: &Mempool) -> Option<Mbuf> {
        // SAFETY: the pool is a valid packet-mbuf pool for the duration of the call.
        let ptr = unsafe { dpdk_sys::vigil_rte_pktmbuf_alloc(pool.as_ptr()) };
        NonNull::new(ptr).map(|ptr| Mbuf { ptr })
    }

    /// Takes ownership of a raw mbuf (e.g. one returned by `rte_eth_rx_burst`).
    ///
    /// # Safety
    /// `ptr` must be a valid mbuf that the caller owns (one reference) and hands over: nothing else
    /// may use or free it afterwards, and its pool must outlive the returned `Mbuf`.
    #[inline]
    pub unsafe fn from_raw(ptr: NonNull<dpdk_sys::rte_mbuf>) -> Mbuf {
        Mbuf { ptr }
    }

    /// Gives up ownership, e.g. to hand the mbuf to `rte_eth_tx_burst`; the caller must free it.
    #[inline]
    pub fn into_raw(self) -> NonNull<dpdk_sys::rte_mbuf> {
        let ptr = self.ptr;
        std::mem::forget(self);
        ptr
    }

    /// The raw pointer, still owned by `self`.
    #[inline]
    pub fn as_ptr(&self) -> *mut dpdk_sys::rte_mbuf {
        self.ptr.as_ptr()
    }

    #[inline]
    fn raw(&self) -> &dpdk_sys::rte_mbuf {
        // SAFETY: self owns a valid mbuf; the header is only mutated through &mut self.
        unsafe { self.ptr.as_ref() }
    }

    #[inline]
    fn data_ptr(&self) -> *mut u8 {
        let m = self.raw();
        // SAFETY: data_off is within the buffer of buf_len bytes at buf_addr (DPDK invariant).
        unsafe { m.buf_addr.cast::<u8>().add(usize::from(m.data_off)) }
    }

    /// Bytes of data in the first segment.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.raw().data_len)
    }

    /// True when the first segment holds no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of segments in the chain (1 for everything this crate builds).
    #[inline]
    pub fn segments(&self) -> u16 {
        self.raw().nb_segs
    }

    /// Room from the data start to the end of the buffer: the largest length `set_len` accepts.
    #[inline]
    pub fn capacity(&self) -> usize {
        let m = self.raw();
        usize::from(m.buf_len - m.data_off)
    }

    /// The data of the first segment.
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: [data_ptr, data_ptr + data_len) lies within the buffer; we own the mbuf, and the
        // bytes are only written through &mut self.
        unsafe { std::slice::from_raw_parts(self.data_ptr(), self.len()) }
    }

    /// The data of the first segment, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `data`, and &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr(), self.len()) }
    }

    /// The whole room from the data start to the buffer end (`capacity()` bytes), writable: for
    /// building a frame before `set_len`. Bytes past `len()` are uninitialised garbage from earlier
    /// use of the buffer, never uninitialised memory in Rust's sense (pool memory is zeroed at
    /// creation).
    #[inline]
    pub fn room_mut(&mut self) -> &mut [u8] {
        // SAFETY: [data_ptr, data_ptr + capacity) lies within the buffer (capacity = buf_len -
        // data_off), the pool's memory is initialised, and &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr(), self.capacity()) }
    }

    /// Sets the data length (`data_len` and `pkt_len`) of this single-segment mbuf.
    ///
    /// Panics if `len > capacity()` or the mbuf has more than one segment (programmer errors).
    #[inline]
    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.capacity(), "mbuf length {len} exceeds capacity {}", self.capacity());
        assert_eq!(self.segments(), 1, "set_len on a multi-segment mbuf");
        let len16 = u16::try_from(len).expect("capacity fits in u16");
        // SAFETY: we own the mbuf exclusively (&mut self); a single segment's pkt_len equals its
        // data_len, and len fits the buffer (checked above).
        let m = unsafe { self.ptr.as_mut() };
        m.data_len = len16;
        m.pkt_len = u32::from(len16);
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own one reference to a valid mbuf and give it up here, exactly once.
        unsafe { dpdk_sys::vigil_rte_pktmbuf_free(self.ptr.as_ptr()) };
    }
}
