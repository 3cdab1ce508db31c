//! The SPDK `BlockIo` backend: one NVMe namespace driven from user space through SPDK's NVMe driver,
//! one I/O queue pair per instance (so one per shard), polled, with no syscalls and no interrupts.
//!
//! Setting up, once per process: [`SpdkEnv::init`] (or [`SpdkEnv::join_running_eal`] when the DPDK
//! packet path already initialised the EAL), then [`SpdkController::connect`] for each controller
//! (a transport ID such as `trtype:PCIe traddr:0000:00:04.0`; the device must be bound to vfio-pci or
//! uio by SPDK's setup script), then [`SpdkBlockIo::open_on`] per shard, each with its own qpair on
//! the shared controller ([`SpdkBlockIo::open`] does both for a single user). A control thread should
//! call [`SpdkController::process_admin_completions`] now and then (asynchronous events, keep-alive).
//!
//! Requests: `submit_*` takes a free slot of a fixed in-flight table and calls
//! `spdk_nvme_ns_cmd_{write,read,flush}` with a C-ABI callback whose `cb_arg` is that slot's fixed
//! ticket (its index plus where to report). The callback, run by SPDK inside
//! `spdk_nvme_qpair_process_completions(qpair, 0)` in `poll_completions`, only records the index and
//! the NVMe status into a preallocated queue; `poll_completions` turns those records into
//! `Completion`s. A durable write carries `SPDK_NVME_IO_FLAGS_FORCE_UNIT_ACCESS` (FUA: the controller
//! completes it only once it is on non-volatile media); a flush is the NVMe Flush command.
//!
//! Buffers: the device DMAs only to memory SPDK can translate to bus addresses (its hugepage heap,
//! or hugepage-backed memory registered with `spdk_mem_register`). A [`BlockBuf`] comes from the
//! Rust global allocator, so it can neither be DMA'd to nor registered (registration wants whole,
//! pinned 2 MiB hugepages). This backend therefore keeps one bounce buffer per slot, allocated once
//! with `spdk_dma_zmalloc` (`queue_depth * io_blocks_max` blocks): a write copies the caller's buffer
//! into its slot's bounce buffer at submission, a read copies out at completion. A 4 KiB `memcpy`
//! costs a fraction of a microsecond against ~10 us for an NVMe write, and it keeps `BlockBuf`
//! backend-neutral; zero copy would need `BlockBufPool` to draw its memory from SPDK's heap.
//!
//! Invariants:
//! - at most `queue_depth` commands in flight, each owning one slot, its ticket and its bounce
//!   buffer until its callback has run; dropping the backend waits for them (bounded), then frees
//!   the qpair (which completes anything left with an abort status) before any memory the callbacks
//!   or the device could touch;
//! - the ticket table, the completion queue (capacity `queue_depth`, never grown) and the bounce
//!   buffers are allocated in `open_on`; submitting and polling never allocate (only an error's
//!   message does);
//! - every accepted request produces exactly one `Completion` (a command SPDK refuses after it was
//!   accepted completes with `BlockError::Io`; one refused for lack of SPDK request objects is handed
//!   back as `QueueFull`);
//! - a qpair is used by one thread at a time (the backend is `Send`, not `Sync`).

use super::memory::io_error;
use super::{check_range, BlockBuf, BlockError, BlockIo, BlockOp, Completion, SubmitError, BLOCK_SIZE};
use crate::Batch;
use spdk_sys as sys;
use std::collections::VecDeque;
use std::ffi::{c_void, CStr, CString};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// How long `Drop` waits for in-flight commands before freeing the qpair aborts them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Set once the SPDK environment is up: `spdk_env_init` (and DPDK's EAL under it) runs once per
/// process and cannot be undone and redone.
static ENV_UP: AtomicBool = AtomicBool::new(false);

/// How to start SPDK's environment (DPDK's EAL underneath).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpdkEnvConfig {
    /// Process name for the EAL (also names its hugepage files).
    pub name: String,
    /// Run without hugepages (`--no-huge`): for development only; NVMe DMA then needs an IOMMU.
    pub no_huge: bool,
    /// Memory the EAL reserves, in MiB (required with `no_huge`).
    pub mem_size_mb: u32,
}

/// Why the SPDK backend could not start; in every case nothing is left attached or allocated by the
/// failing call.
#[derive(Debug, Error)]
pub enum SpdkError {
    /// The environment was already initialised in this process (it can be only once).
    #[error("the SPDK environment is already initialised in this process")]
    EnvAlreadyInitialised,
    /// `spdk_env_init` failed (hugepages missing, permissions, another process's files).
    #[error("spdk_env_init failed (rc {0}): hugepages reserved? running as root? unique name?")]
    EnvInit(i32),
    /// A config string held a NUL byte.
    #[error("{what} contains a NUL byte")]
    Nul {
        /// Which setting.
        what: &'static str,
    },
    /// The transport ID did not parse.
    #[error("bad NVMe transport ID {0:?} (expected e.g. \"trtype:PCIe traddr:0000:00:04.0\")")]
    TransportId(String),
    /// No controller could be attached at that transport ID.
    #[error(
        "cannot attach the NVMe controller at {0:?}: is it bound to vfio-pci/uio (SPDK scripts/setup.sh)?"
    )]
    Connect(String),
    /// The namespace does not exist or is inactive.
    #[error("namespace {nsid} is not active on {trid:?}")]
    Namespace {
        /// The controller's transport ID.
        trid: String,
        /// The namespace ID.
        nsid: u32,
    },
    /// The namespace's format cannot carry 4 KiB blocks (sector larger than or not dividing
    /// [`BLOCK_SIZE`], or metadata interleaved with the data).
    #[error("namespace format unusable: {sector}-byte sectors ({extended} with metadata)")]
    Format {
        /// Data bytes per sector.
        sector: u32,
        /// Bytes per sector including interleaved metadata.
        extended: u32,
    },
    /// `queue_depth` or `io_blocks_max` is 0 (or their product overflows).
    #[error("queue_depth ({queue_depth}) and io_blocks_max ({io_blocks_max}) must be at least 1")]
    Sizes {
        /// As configured.
        queue_depth: u32,
        /// As configured.
        io_blocks_max: u32,
    },
    /// `queue_depth` does not fit the controller's I/O queues (NVMe's CAP.MQES: e.g. 127 for
    /// SPDK's NVMe/TCP target with its default `max_queue_depth` of 128), which would refuse the
    /// queue pair. Nothing was allocated.
    #[error("queue_depth {queue_depth} exceeds what the controller's I/O queues hold ({max}) on {trid:?}")]
    QueueDepth {
        /// The controller's transport ID.
        trid: String,
        /// As configured.
        queue_depth: u32,
        /// The largest that fits.
        max: u32,
    },
    /// `spdk_nvme_ctrlr_alloc_io_qpair` failed (the controller's queue limit reached?).
    #[error("cannot allocate an NVMe I/O queue pair on {0:?}")]
    Qpair(String),
    /// The DMA heap could not hold the bounce buffers.
    #[error("cannot allocate {0} bytes of DMA memory for bounce buffers (raise mem_size_mb or hugepages)")]
    Dma(usize),
}

/// Proof that SPDK's environment is up in this process; needed to attach controllers.
#[derive(Clone, Copy, Debug)]
pub struct SpdkEnv {
    _private: (),
}

impl SpdkEnv {
    /// Starts SPDK's environment (and the DPDK EAL beneath it) once for the process. DPDK pins the
    /// calling thread to the EAL's main core: call this before pinning shard threads.
    pub fn init(cfg: &SpdkEnvConfig) -> Result<Self, SpdkError> {
        let name = CString::new(cfg.name.as_str()).map_err(|_| SpdkError::Nul { what: "SPDK env name" })?;
        if ENV_UP.swap(true, Ordering::SeqCst) {
            return Err(SpdkError::EnvAlreadyInitialised);
        }
        let mut opts = sys::spdk_env_opts::default();
        // SAFETY: `opts` is a valid, writable spdk_env_opts; the init function fills in defaults
        // (its size changes between SPDK releases, which is why bindgen's definition is used).
        unsafe { sys::spdk_env_opts_init(&mut opts) };
        opts.name = name.as_ptr();
        opts.no_huge = cfg.no_huge;
        opts.mem_size = i32::try_from(cfg.mem_size_mb).unwrap_or(i32::MAX);
        // SAFETY: `opts` was initialised by spdk_env_opts_init; `name` outlives the call (SPDK copies
        // the strings it keeps into the EAL's argument vector).
        let rc = unsafe { sys::spdk_env_init(&opts) };
        if rc != 0 {
            ENV_UP.store(false, Ordering::SeqCst);
            return Err(SpdkError::EnvInit(rc));
        }
        Ok(Self { _private: () })
    }

    /// Joins a DPDK EAL this process already initialised (the DPDK packet path) instead of starting
    /// one: `spdk_env_dpdk_post_init`. The EAL must have been started with the hugepage and PCI
    /// settings the NVMe devices need.
    pub fn join_running_eal() -> Result<Self, SpdkError> {
        if ENV_UP.swap(true, Ordering::SeqCst) {
            return Err(SpdkError::EnvAlreadyInitialised);
        }
        // SAFETY: only reads EAL state; the caller promises rte_eal_init has succeeded.
        let rc = unsafe { sys::spdk_env_dpdk_post_init(false) };
        if rc != 0 {
            ENV_UP.store(false, Ordering::SeqCst);
            return Err(SpdkError::EnvInit(rc));
        }
        Ok(Self { _private: () })
    }
}

/// An attached NVMe controller, shared by the backends that each own a qpair on it; detached when
/// the last of them (and the last other `Arc`) is dropped.
#[derive(Debug)]
pub struct SpdkController {
    ctrlr: NonNull<sys::spdk_nvme_ctrlr>,
    trid: String,
}

// SAFETY: the functions called through `&SpdkController` (qpair allocation, namespace queries, admin
// completions) are documented as thread safe in SPDK's nvme.h (they take the controller's lock);
// detach runs in Drop, when no other reference and no qpair (each holds an Arc) is left.
unsafe impl Send for SpdkController {}
// SAFETY: as above.
unsafe impl Sync for SpdkController {}

impl SpdkController {
    /// Probes and attaches the controller at `transport_id` (e.g. `trtype:PCIe traddr:0000:00:04.0`).
    /// Connecting again to a transport ID already attached in this process returns the same SPDK
    /// controller (SPDK counts the references; each `SpdkController` detaches once).
    pub fn connect(_env: &SpdkEnv, transport_id: &str) -> Result<Arc<Self>, SpdkError> {
        let text = CString::new(transport_id).map_err(|_| SpdkError::Nul { what: "transport ID" })?;
        let mut trid = sys::spdk_nvme_transport_id::default();
        // SAFETY: `trid` is a valid, writable transport ID and `text` a NUL-terminated string.
        if unsafe { sys::spdk_nvme_transport_id_parse(&mut trid, text.as_ptr()) } != 0 {
            return Err(SpdkError::TransportId(transport_id.to_owned()));
        }
        // SAFETY: `trid` is initialised; null options with size 0 ask for the driver's defaults.
        let ctrlr = unsafe { sys::spdk_nvme_connect(&trid, std::ptr::null(), 0) };
        let ctrlr = NonNull::new(ctrlr).ok_or_else(|| SpdkError::Connect(transport_id.to_owned()))?;
        Ok(Arc::new(Self { ctrlr, trid: transport_id.to_owned() }))
    }

    /// Reaps admin completions (asynchronous event notifications, keep-alive on fabrics); returns
    /// how many, or a negative errno if the admin queue failed. Call it from a control thread now
    /// and then, never from the shard loop. On NVMe-oF it must run at least every few seconds:
    /// SPDK's host sends Keep Alive only from here (every half of the 10 s default timeout), and a
    /// target that hears none for the timeout drops the controller (SPDK's `nvmf_tgt` does: every
    /// I/O qpair then fails, its commands completing with ENXIO).
    pub fn process_admin_completions(&self) -> i32 {
        // SAFETY: thread safe per SPDK; the controller is attached while self lives.
        unsafe { sys::spdk_nvme_ctrlr_process_admin_completions(self.ctrlr.as_ptr()) }
    }

    /// The transport ID it was attached with.
    pub fn transport_id(&self) -> &str {
        &self.trid
    }
}

impl Drop for SpdkController {
    fn drop(&mut self) {
        // SAFETY: no qpair is left (each backend holds an Arc to us) and nobody else can reach the
        // handle; it is not used after this.
        unsafe { sys::spdk_nvme_detach(self.ctrlr.as_ptr()) };
    }
}

/// Where and how to open one namespace with its own qpair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpdkConfig {
    /// The controller, e.g. `trtype:PCIe traddr:0000:00:04.0` (used by [`SpdkBlockIo::open`]).
    pub transport_id: String,
    /// The namespace ID (usually 1); no default, it names the data.
    pub namespace_id: u32,
    /// Most requests in flight at once.
    pub queue_depth: u32,
    /// The largest request in blocks: sizes each slot's bounce buffer.
    pub io_blocks_max: u32,
}

/// What SPDK's callback reports for one slot.
#[derive(Clone, Copy)]
enum Outcome {
    /// The controller's completion status (the raw NVMe status field).
    Status(sys::spdk_nvme_cpl),
    /// SPDK refused the command after it was accepted (negated errno from `spdk_nvme_ns_cmd_*`).
    Refused(i32),
}

/// Finished slots not yet handed out; written by the C callback, read by `poll_completions`.
struct Reaped {
    done: VecDeque<(u32, Outcome)>,
}

/// A slot's `cb_arg`: fixed in memory for the backend's life.
#[derive(Clone, Copy)]
struct Ticket {
    reaped: *mut Reaped,
    index: u32,
}

/// One entry of the in-flight table.
#[derive(Debug)]
struct Slot {
    tag: u64,
    op: BlockOp,
    lba: u64,
    /// The caller's buffer, returned at completion (reads are copied into it first).
    buf: Option<BlockBuf>,
    busy: bool,
}

/// One NVMe namespace through one SPDK I/O qpair, seen as [`BLOCK_SIZE`] blocks.
pub struct SpdkBlockIo {
    ctrlr: Arc<SpdkController>,
    ns: NonNull<sys::spdk_nvme_ns>,
    qpair: NonNull<sys::spdk_nvme_qpair>,
    /// Sectors per block (4096 / sector size).
    sectors_per_block: u32,
    capacity_blocks: u64,
    io_bytes_max: usize,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// From `Box::into_raw`: only ever reached through raw pointers, since SPDK's callback writes
    /// to it while `&mut self` is held; freed in Drop.
    reaped: NonNull<Reaped>,
    /// From `Box::into_raw` of a boxed slice of `queue_depth` tickets; freed in Drop.
    tickets: NonNull<[Ticket]>,
    /// `queue_depth * io_bytes_max` bytes from `spdk_dma_zmalloc`; freed in Drop.
    bounce: NonNull<u8>,
    /// Times `spdk_nvme_qpair_process_completions` reported a failed qpair.
    qpair_failures: u64,
}

// SAFETY: the qpair, its tickets and bounce buffers are used by whichever single thread owns the
// backend (SPDK requires one thread at a time per qpair, not a particular thread); `&self` methods
// touch none of them, and the backend is not Sync.
unsafe impl Send for SpdkBlockIo {}

impl std::fmt::Debug for SpdkBlockIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpdkBlockIo")
            .field("controller", &self.ctrlr.trid)
            .field("capacity_blocks", &self.capacity_blocks)
            .field("queue_depth", &self.slots.len())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl SpdkBlockIo {
    /// Attaches `cfg.transport_id` and opens `cfg.namespace_id` on it (one backend per controller;
    /// to share a controller between shards use [`SpdkController::connect`] and [`Self::open_on`]).
    pub fn open(env: &SpdkEnv, cfg: &SpdkConfig) -> Result<Self, SpdkError> {
        let ctrlr = SpdkController::connect(env, &cfg.transport_id)?;
        Self::open_on(ctrlr, cfg.namespace_id, cfg.queue_depth, cfg.io_blocks_max)
    }

    /// Opens namespace `namespace_id` of `ctrlr` with a new qpair of `queue_depth` requests of up to
    /// `io_blocks_max` blocks each; everything the backend will ever allocate is allocated here.
    pub fn open_on(
        ctrlr: Arc<SpdkController>,
        namespace_id: u32,
        queue_depth: u32,
        io_blocks_max: u32,
    ) -> Result<Self, SpdkError> {
        let sizes = SpdkError::Sizes { queue_depth, io_blocks_max };
        if queue_depth == 0 || io_blocks_max == 0 {
            return Err(sizes);
        }
        let io_bytes_max = (io_blocks_max as usize).checked_mul(BLOCK_SIZE).ok_or(sizes)?;
        let bounce_bytes = io_bytes_max
            .checked_mul(queue_depth as usize)
            .ok_or(SpdkError::Sizes { queue_depth, io_blocks_max })?;

        // SAFETY: the controller is attached while `ctrlr` lives; get_ns is thread safe.
        let ns = unsafe { sys::spdk_nvme_ctrlr_get_ns(ctrlr.ctrlr.as_ptr(), namespace_id) };
        let not_active = || SpdkError::Namespace { trid: ctrlr.trid.clone(), nsid: namespace_id };
        let ns = NonNull::new(ns).ok_or_else(not_active)?;
        // SAFETY: `ns` is a namespace handle of the attached controller; these are thread-safe queries.
        let (active, sector, extended, sectors) = unsafe {
            (
                sys::spdk_nvme_ns_is_active(ns.as_ptr()),
                sys::spdk_nvme_ns_get_sector_size(ns.as_ptr()),
                sys::spdk_nvme_ns_get_extended_sector_size(ns.as_ptr()),
                sys::spdk_nvme_ns_get_num_sectors(ns.as_ptr()),
            )
        };
        if !active {
            return Err(not_active());
        }
        // A power of two no larger than BLOCK_SIZE (itself a power of two) divides it.
        if !sector.is_power_of_two() || sector as usize > BLOCK_SIZE || extended != sector {
            return Err(SpdkError::Format { sector, extended });
        }
        let sectors_per_block = BLOCK_SIZE as u32 / sector;
        let capacity_blocks = sectors / u64::from(sectors_per_block);

        let mut opts = sys::spdk_nvme_io_qpair_opts::default();
        let opts_size = std::mem::size_of::<sys::spdk_nvme_io_qpair_opts>();
        // SAFETY: `opts` is writable and `opts_size` is its size.
        unsafe { sys::spdk_nvme_ctrlr_get_default_io_qpair_opts(ctrlr.ctrlr.as_ptr(), &mut opts, opts_size) };
        // The default queue size is already the controller's limit (SPDK caps it at CAP.MQES + 1);
        // a larger one is refused only when the queue is created (on fabrics: the Connect command
        // fails with "invalid parameters"), so say why here instead.
        let max = opts.io_queue_size.saturating_sub(1);
        if queue_depth > max {
            return Err(SpdkError::QueueDepth { trid: ctrlr.trid.clone(), queue_depth, max });
        }
        // Room for every slot in the hardware queue, and request objects for the children SPDK
        // creates when it splits a large request at the controller's transfer limit.
        opts.io_queue_size = opts.io_queue_size.max(queue_depth + 1);
        opts.io_queue_requests = opts.io_queue_requests.max(queue_depth.saturating_mul(4));
        // SAFETY: `opts` came from get_default_io_qpair_opts and `opts_size` is its size.
        let qpair = unsafe { sys::spdk_nvme_ctrlr_alloc_io_qpair(ctrlr.ctrlr.as_ptr(), &opts, opts_size) };
        let qpair = NonNull::new(qpair).ok_or_else(|| SpdkError::Qpair(ctrlr.trid.clone()))?;

        // SAFETY: a plain allocation request; a null `unused` argument is what the API requires.
        let bounce = unsafe { sys::spdk_dma_zmalloc(bounce_bytes, BLOCK_SIZE, std::ptr::null_mut()) };
        let Some(bounce) = NonNull::new(bounce.cast::<u8>()) else {
            // SAFETY: the qpair was just allocated, has no commands and is not used again.
            unsafe { sys::spdk_nvme_ctrlr_free_io_qpair(qpair.as_ptr()) };
            return Err(SpdkError::Dma(bounce_bytes));
        };

        let depth = queue_depth as usize;
        let reaped = Box::into_raw(Box::new(Reaped { done: VecDeque::with_capacity(depth) }));
        let tickets: Box<[Ticket]> = (0..queue_depth).map(|index| Ticket { reaped, index }).collect();
        let tickets = NonNull::new(Box::into_raw(tickets)).expect("Box::into_raw is never null");
        Ok(Self {
            ctrlr,
            ns,
            qpair,
            sectors_per_block,
            capacity_blocks,
            io_bytes_max,
            slots: (0..depth)
                .map(|_| Slot { tag: 0, op: BlockOp::Flush, lba: 0, buf: None, busy: false })
                .collect(),
            free: (0..queue_depth).rev().collect(),
            reaped: NonNull::new(reaped).expect("Box::into_raw is never null"),
            tickets,
            bounce,
            qpair_failures: 0,
        })
    }

    /// Times polling found the qpair failed at the transport (its commands then complete with an
    /// abort status, or at Drop).
    pub fn qpair_failures(&self) -> u64 {
        self.qpair_failures
    }

    /// Takes a free slot for a request on `buf` at `lba`, or hands the buffer back.
    fn admit(&self, lba: u64, buf: BlockBuf) -> Result<(u32, BlockBuf), SubmitError> {
        let Some(&slot) = self.free.last() else {
            return Err(SubmitError::QueueFull(Some(buf)));
        };
        if let Err((lba, end)) = check_range(lba, buf.blocks(), self.capacity_blocks) {
            return Err(SubmitError::OutOfRange { lba, end, capacity: self.capacity_blocks, buf });
        }
        assert!(
            buf.len() <= self.io_bytes_max,
            "a {}-byte request exceeds io_blocks_max ({} bytes)",
            buf.len(),
            self.io_bytes_max
        );
        Ok((slot, buf))
    }

    /// Slot `index`'s bounce buffer.
    fn bounce_ptr(&self, index: u32) -> *mut u8 {
        // SAFETY: index < queue_depth, so the offset stays inside the queue_depth * io_bytes_max region.
        unsafe { self.bounce.as_ptr().add(index as usize * self.io_bytes_max) }
    }

    /// Slot `index`'s ticket, as SPDK's `cb_arg`.
    fn cb_arg(&self, index: u32) -> *mut c_void {
        debug_assert!((index as usize) < self.slots.len());
        // SAFETY: index < queue_depth = the tickets slice's length.
        unsafe { self.tickets.as_ptr().cast::<Ticket>().add(index as usize) }.cast()
    }

    /// Marks slot `index` busy with this request (it was admitted: it is the free list's top).
    fn occupy(&mut self, index: u32, tag: u64, op: BlockOp, lba: u64, buf: Option<BlockBuf>) {
        let popped = self.free.pop();
        assert_eq!(popped, Some(index), "admitted slot is the free list's top");
        let slot = &mut self.slots[index as usize];
        assert!(!slot.busy, "a free slot is idle");
        *slot = Slot { tag, op, lba, buf, busy: true };
    }

    /// Deals with `spdk_nvme_ns_cmd_*`'s return code for slot `index`, already occupied: `-ENOMEM`
    /// (no request object free) undoes the submission and hands the buffer back as `QueueFull`; any
    /// other failure completes the accepted request with an error at the next poll.
    fn submitted(&mut self, index: u32, rc: i32) -> Result<(), SubmitError> {
        if rc == 0 {
            return Ok(());
        }
        if rc == -libc::ENOMEM {
            let slot = &mut self.slots[index as usize];
            slot.busy = false;
            let buf = slot.buf.take();
            self.free.push(index);
            return Err(SubmitError::QueueFull(buf));
        }
        // SAFETY: `reaped` is live for self's life and no reference to it is held here.
        unsafe { (*self.reaped.as_ptr()).done.push_back((index, Outcome::Refused(rc))) };
        Ok(())
    }

    /// Turns a finished slot into its completion, copying a read's data out of the bounce buffer.
    fn finish(&mut self, index: u32, outcome: Outcome) -> Completion {
        let bounce = self.bounce_ptr(index);
        let slot = &mut self.slots[index as usize];
        assert!(slot.busy, "completion for idle slot {index}");
        slot.busy = false;
        let result = match outcome {
            Outcome::Refused(rc) => Err(io_error(op_name(slot.op), -rc)),
            Outcome::Status(cpl) => status_result(slot.op, slot.lba, &cpl),
        };
        let mut buf = slot.buf.take();
        if let (BlockOp::Read, Ok(()), Some(b)) = (slot.op, &result, buf.as_mut()) {
            // SAFETY: the command is complete, so the device no longer writes the bounce buffer, which
            // holds b.len() <= io_bytes_max bytes for this slot; `b` is a distinct allocation.
            let data = unsafe { std::slice::from_raw_parts(bounce, b.len()) };
            b.copy_from_slice(data);
        }
        let c = Completion { tag: slot.tag, op: slot.op, lba: slot.lba, result, buf };
        self.free.push(index);
        c
    }
}

fn op_name(op: BlockOp) -> &'static str {
    match op {
        BlockOp::Write => "write",
        BlockOp::Read => "read",
        BlockOp::Flush => "flush",
    }
}

/// Ok, or the NVMe status (type, code and SPDK's description) as an error.
fn status_result(op: BlockOp, lba: u64, cpl: &sys::spdk_nvme_cpl) -> Result<(), BlockError> {
    // SAFETY: both union members are plain 16-bit views of the same status field.
    let raw = unsafe { cpl.__bindgen_anon_1.status_raw };
    let (sc, sct) = ((raw >> 1) & 0xff, (raw >> 9) & 0x7);
    if sc == 0 && sct == 0 {
        return Ok(());
    }
    // SAFETY: as above; SPDK returns a static NUL-terminated string for every status.
    let text = unsafe { CStr::from_ptr(sys::spdk_nvme_cpl_get_status_string(&cpl.__bindgen_anon_1.status)) };
    Err(BlockError::Io(format!(
        "{} at block {lba}: NVMe status type {sct:#x} code {sc:#04x} ({})",
        op_name(op),
        text.to_string_lossy()
    )))
}

/// SPDK's completion callback for every command of this backend.
///
/// # Safety
/// `cb_arg` must be a `Ticket` of a live `SpdkBlockIo` and `cpl` a valid completion entry; SPDK
/// calls this only from `spdk_nvme_qpair_process_completions` or `spdk_nvme_ctrlr_free_io_qpair` on
/// that backend's qpair, both of which the backend calls while its tickets and queue are alive.
unsafe extern "C" fn command_done(cb_arg: *mut c_void, cpl: *const sys::spdk_nvme_cpl) {
    // SAFETY: per the contract, cb_arg points at a live ticket; it is only read.
    let ticket = unsafe { *cb_arg.cast::<Ticket>() };
    // SAFETY: per the contract, cpl is valid for the duration of the call; copied out.
    let cpl = unsafe { *cpl };
    // SAFETY: the queue is live, only reached through this raw pointer while SPDK runs callbacks, and
    // has room: it holds at most one entry per busy slot and was allocated for all of them.
    let reaped = unsafe { &mut *ticket.reaped };
    debug_assert!(reaped.done.len() < reaped.done.capacity());
    reaped.done.push_back((ticket.index, Outcome::Status(cpl)));
}

impl BlockIo for SpdkBlockIo {
    fn block_size(&self) -> usize {
        BLOCK_SIZE
    }

    fn capacity_blocks(&self) -> u64 {
        self.capacity_blocks
    }

    fn queue_depth(&self) -> usize {
        self.slots.len()
    }

    fn in_flight(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    fn submit_write(&mut self, tag: u64, lba: u64, buf: BlockBuf, durable: bool) -> Result<(), SubmitError> {
        let (index, buf) = self.admit(lba, buf)?;
        let bounce = self.bounce_ptr(index);
        // SAFETY: the slot is free, so no command uses its bounce buffer, which has room for
        // buf.len() <= io_bytes_max bytes; `buf` is a distinct allocation.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), bounce, buf.len()) };
        let sectors = buf.blocks() as u32 * self.sectors_per_block;
        let flags = if durable { sys::SPDK_NVME_IO_FLAGS_FORCE_UNIT_ACCESS } else { 0 };
        let cb_arg = self.cb_arg(index);
        self.occupy(index, tag, BlockOp::Write, lba, Some(buf));
        // SAFETY: ns and qpair are live and used by this thread only; the payload is this slot's
        // bounce buffer (SPDK DMA memory) and the ticket behind cb_arg, both untouched until the
        // callback has run (Drop waits for it).
        let rc = unsafe {
            sys::spdk_nvme_ns_cmd_write(
                self.ns.as_ptr(),
                self.qpair.as_ptr(),
                bounce.cast(),
                lba * u64::from(self.sectors_per_block),
                sectors,
                Some(command_done),
                cb_arg,
                flags,
            )
        };
        self.submitted(index, rc)
    }

    fn submit_read(&mut self, tag: u64, lba: u64, buf: BlockBuf) -> Result<(), SubmitError> {
        let (index, buf) = self.admit(lba, buf)?;
        let bounce = self.bounce_ptr(index);
        let sectors = buf.blocks() as u32 * self.sectors_per_block;
        let cb_arg = self.cb_arg(index);
        self.occupy(index, tag, BlockOp::Read, lba, Some(buf));
        // SAFETY: as in submit_write; the device writes the bounce buffer, read only after the callback.
        let rc = unsafe {
            sys::spdk_nvme_ns_cmd_read(
                self.ns.as_ptr(),
                self.qpair.as_ptr(),
                bounce.cast(),
                lba * u64::from(self.sectors_per_block),
                sectors,
                Some(command_done),
                cb_arg,
                0,
            )
        };
        self.submitted(index, rc)
    }

    fn submit_flush(&mut self, tag: u64) -> Result<(), SubmitError> {
        let Some(&index) = self.free.last() else {
            return Err(SubmitError::QueueFull(None));
        };
        let cb_arg = self.cb_arg(index);
        self.occupy(index, tag, BlockOp::Flush, 0, None);
        // SAFETY: ns and qpair are live and used by this thread only; the ticket behind cb_arg lives
        // until the callback has run.
        let rc = unsafe {
            sys::spdk_nvme_ns_cmd_flush(self.ns.as_ptr(), self.qpair.as_ptr(), Some(command_done), cb_arg)
        };
        self.submitted(index, rc)
    }

    fn poll_completions(&mut self, out: &mut Batch<Completion>) -> usize {
        // Unlimited: completions beyond `out`'s room wait in `reaped` (room for every slot), so the
        // hardware queue keeps moving even when the caller takes few at a time.
        // SAFETY: the qpair is live and used by this thread only; the callbacks it runs write only to
        // `reaped`, to which no reference is held across this call.
        let rc = unsafe { sys::spdk_nvme_qpair_process_completions(self.qpair.as_ptr(), 0) };
        if rc < 0 {
            self.qpair_failures += 1;
        }
        let mut done = 0;
        while out.room() > 0 {
            // SAFETY: live queue, no other reference to it while this one is used.
            let Some((index, outcome)) = (unsafe { (*self.reaped.as_ptr()).done.pop_front() }) else { break };
            out.push(self.finish(index, outcome)).expect("room checked");
            done += 1;
        }
        done
    }
}

impl Drop for SpdkBlockIo {
    fn drop(&mut self) {
        // Let in-flight commands finish (bounded), so their data reaches the device and nothing is
        // aborted needlessly; whatever remains is aborted by freeing the qpair below.
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while self.in_flight() > 0 && Instant::now() < deadline {
            // SAFETY: as in poll_completions.
            let rc = unsafe { sys::spdk_nvme_qpair_process_completions(self.qpair.as_ptr(), 0) };
            // SAFETY: as in poll_completions.
            while let Some((index, outcome)) = unsafe { (*self.reaped.as_ptr()).done.pop_front() } {
                drop(self.finish(index, outcome));
            }
            if rc < 0 {
                break;
            }
        }
        // SAFETY: the qpair is not used after this; freeing it completes any command still queued (its
        // callback writes to `reaped`, still alive) and the device DMAs no more into the bounce buffers.
        unsafe { sys::spdk_nvme_ctrlr_free_io_qpair(self.qpair.as_ptr()) };
        // SAFETY: allocated by spdk_dma_zmalloc in open_on; nothing can DMA into it any more.
        unsafe { sys::spdk_dma_free(self.bounce.as_ptr().cast()) };
        // SAFETY: from Box::into_raw in open_on; no callback can run any more, so nothing else points
        // at them; each is freed exactly once, here.
        unsafe {
            drop(Box::from_raw(self.tickets.as_ptr()));
            drop(Box::from_raw(self.reaped.as_ptr()));
        }
        // `ctrlr` (an Arc) is dropped after this, detaching the controller if this was the last user.
    }
}
