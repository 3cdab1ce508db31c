//! Packet-mbuf pools (`rte_pktmbuf_pool_create`): where every mbuf comes from.
//!
//! Invariants: a pool is sized once at start-up from config and never grows; it is freed on drop
//! only when no mbuf of it is still out (checked with `rte_mempool_in_use_count`, which counts the
//! per-lcore caches as available): otherwise it is leaked, because freeing it would turn the
//! outstanding mbufs into dangling pointers. Share it with `Arc<Mempool>`; ports and
//! [`super::DpdkUdpIo`] hold such an `Arc`, so a pool outlives the queues that fill it.

use super::eal::Eal;
use super::error::DpdkError;
use std::ffi::CString;
use std::ptr::NonNull;

/// A pool of packet mbufs.
pub struct Mempool {
    ptr: NonNull<dpdk_sys::rte_mempool>,
    size: u32,
    data_room: u16,
    _eal: Eal,
}

// SAFETY: DPDK mempools are thread-safe: gets and puts are lock-free multi-producer/multi-consumer
// ring operations (plus a per-lcore cache owned by the calling lcore), and the pool's metadata is
// immutable after creation. The raw pointer is only freed in Drop, which needs `&mut self`.
unsafe impl Send for Mempool {}
// SAFETY: as above: every operation through `&Mempool` is one DPDK documents as thread-safe.
unsafe impl Sync for Mempool {}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool").field("size", &self.size).field("data_room", &self.data_room).finish()
    }
}

impl Mempool {
    /// Any NUMA socket (for `socket`).
    pub const SOCKET_ANY: i32 = dpdk_sys::SOCKET_ID_ANY;
    /// DPDK's default mbuf data room: 2048 bytes of data plus the 128-byte headroom.
    pub const DEFAULT_DATA_ROOM: u16 = dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;
    /// The headroom DPDK reserves in front of the data in every mbuf.
    pub const HEADROOM: u16 = dpdk_sys::RTE_PKTMBUF_HEADROOM as u16;

    /// Creates a pool of `n_mbufs` mbufs named `name` (unique per process, at most 25 bytes).
    /// `cache_size` is the per-lcore cache (0 for none; at most 512 and `n_mbufs / 1.5`);
    /// `data_room` is each buffer's size including [`Self::HEADROOM`]; `socket` is a NUMA node or
    /// [`Self::SOCKET_ANY`]. `n_mbufs` is best one less than a power of two (DPDK's ring sizing).
    pub fn new(
        eal: &Eal,
        name: &str,
        n_mbufs: u32,
        cache_size: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Mempool, DpdkError> {
        if n_mbufs == 0 {
            return Err(DpdkError::InvalidArgument("a mempool needs at least one mbuf".into()));
        }
        if data_room <= Self::HEADROOM {
            return Err(DpdkError::InvalidArgument(format!(
                "mbuf data room {data_room} leaves no space after the {}-byte headroom",
                Self::HEADROOM
            )));
        }
        let c_name =
            CString::new(name).map_err(|_| DpdkError::InvalidArgument(format!("mempool name {name:?}")))?;
        // SAFETY: the EAL is initialised (eal exists) and c_name is a valid C string; DPDK copies it.
        let ptr = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(c_name.as_ptr(), n_mbufs, cache_size, 0, data_room, socket)
        };
        let ptr = NonNull::new(ptr).ok_or_else(|| DpdkError::from_rte_errno("rte_pktmbuf_pool_create"))?;
        Ok(Mempool { ptr, size: n_mbufs, data_room, _eal: eal.clone() })
    }

    /// The raw pool pointer, for DPDK calls (queue setup, bulk alloc).
    #[inline]
    pub fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.ptr.as_ptr()
    }

    /// How many mbufs the pool holds in all.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Each mbuf's buffer size, headroom included.
    pub fn data_room(&self) -> u16 {
        self.data_room
    }

    /// Mbufs free right now (in the pool's ring or a per-lcore cache). Walks the caches: not for the
    /// per-packet path.
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is valid for self's lifetime; the count is a read-only walk.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Mbufs taken and not yet returned (held by the application, a NIC ring or a driver).
    pub fn in_use(&self) -> u32 {
        // SAFETY: as for `available`.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        let in_use = self.in_use();
        if in_use != 0 {
            // Freeing now would leave `in_use` mbufs pointing into freed memory; leaking a pool at
            // shutdown is harmless by comparison.
            eprintln!(
                "vigil-pmd: mempool dropped with {in_use} mbufs still in use; leaking it instead of freeing"
            );
            return;
        }
        // SAFETY: the pool is valid, no mbuf of it is outstanding, and no port uses it any more
        // (ports hold an Arc<Mempool>, so they were closed before this last reference went away).
        unsafe { dpdk_sys::rte_mempool_free(self.ptr.as_ptr()) };
    }
}
