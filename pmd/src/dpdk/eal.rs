//! The DPDK Environment Abstraction Layer: process-wide initialisation, lcore registration of
//! shard threads, and port lookup.
//!
//! Invariants: `rte_eal_init` runs at most once per process (guarded by a static flag: a second
//! [`Eal::init`] is an error, never UB, even after the first failed or was cleaned up); the [`Eal`]
//! handle is reference counted and every pool, port and lcore guard holds a clone, so
//! `rte_eal_cleanup` runs only after the last of them is gone.

use super::error::{check, DpdkError};
use std::ffi::{c_char, c_int, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Set by the first `Eal::init` and never cleared: DPDK cannot initialise twice in one process.
static EAL_INIT_CALLED: AtomicBool = AtomicBool::new(false);

/// What to initialise the EAL with; turned into EAL command-line arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalConfig {
    /// The CPU the calling (main) thread is pinned to (`-l`). Shard threads do not need EAL lcores:
    /// they register with [`Eal::register_current_thread`].
    pub main_lcore: usize,
    /// Skip PCI probing (`--no-pci`): needed wherever the host's own NIC must not be touched, and on
    /// machines without VFIO/UIO.
    pub no_pci: bool,
    /// Use ordinary pages instead of hugepages (`--no-huge`); slower (TLB misses) but needs no setup.
    pub no_huge: bool,
    /// Memory to reserve, in MiB (`-m`); 0 leaves it to DPDK (only valid with hugepages).
    pub memory_mb: u32,
    /// Runtime-directory prefix (`--file-prefix`); must be unique per DPDK process on the host.
    pub file_prefix: String,
    /// Virtual devices (`--vdev`, one per entry), e.g. `net_memif0,role=server,socket=/tmp/v.sock`.
    pub vdevs: Vec<String>,
    /// Further EAL arguments, passed last and verbatim.
    pub extra_args: Vec<String>,
    /// `--log-level` value (e.g. `error`, `lib.eal:debug`), if any.
    pub log_level: Option<String>,
}

impl EalConfig {
    /// The EAL arguments (without the program name) this config stands for.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec!["-l".to_owned(), self.main_lcore.to_string()];
        if self.no_pci {
            args.push("--no-pci".to_owned());
        }
        if self.no_huge {
            args.push("--no-huge".to_owned());
        }
        if self.memory_mb > 0 {
            args.push("-m".to_owned());
            args.push(self.memory_mb.to_string());
        }
        if !self.file_prefix.is_empty() {
            args.push("--file-prefix".to_owned());
            args.push(self.file_prefix.clone());
        }
        for vdev in &self.vdevs {
            args.push("--vdev".to_owned());
            args.push(vdev.clone());
        }
        if let Some(level) = &self.log_level {
            args.push("--log-level".to_owned());
            args.push(level.clone());
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

struct EalInner {
    /// EAL's runtime directory (`/var/run/dpdk/<file-prefix>` for root), which `rte_eal_cleanup`
    /// leaves behind; removed after cleanup so runs do not pile directories up.
    runtime_dir: Option<std::path::PathBuf>,
}

impl Drop for EalInner {
    fn drop(&mut self) {
        // SAFETY: the EAL was initialised (an EalInner exists only after a successful init) and
        // every pool, port and lcore guard holds an Eal clone, so none is left to use it.
        let rc = unsafe { dpdk_sys::rte_eal_cleanup() };
        if rc < 0 {
            eprintln!("vigil-pmd: rte_eal_cleanup failed: {}", DpdkError::from_errno("rte_eal_cleanup", -rc));
        }
        // Only a directory named after our own prefix is removed (never /var/run/dpdk itself).
        if let Some(dir) = &self.runtime_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// EAL's runtime directory, if it is the one named after `file_prefix` (so removing it removes
/// nothing of another process's).
fn runtime_dir(file_prefix: &str) -> Option<std::path::PathBuf> {
    // SAFETY: called after a successful rte_eal_init; the string is owned by EAL and lives as long
    // as the process; it is copied out at once.
    let ptr = unsafe { dpdk_sys::rte_eal_get_runtime_dir() };
    if ptr.is_null() || file_prefix.is_empty() {
        return None;
    }
    // SAFETY: ptr is a NUL-terminated string owned by EAL (checked non-null above).
    let dir = unsafe { std::ffi::CStr::from_ptr(ptr) }.to_str().ok()?;
    let dir = std::path::PathBuf::from(dir);
    (dir.file_name()? == file_prefix).then_some(dir)
}

/// The initialised EAL. Cheap to clone; `rte_eal_cleanup` runs when the last clone (including the
/// ones held by pools, ports and lcore guards) is dropped.
#[derive(Clone)]
pub struct Eal {
    _inner: Arc<EalInner>,
}

impl std::fmt::Debug for Eal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Eal")
    }
}

impl Eal {
    /// Initialises the EAL (`rte_eal_init`) from `config`. Pins the calling thread to
    /// `config.main_lcore`, probes the configured vdevs (their ports then exist).
    ///
    /// Errors: [`DpdkError::AlreadyInitialised`] on any call after the first (DPDK cannot retry or
    /// re-initialise), [`DpdkError::Call`] with `rte_errno` if DPDK refuses.
    pub fn init(config: &EalConfig) -> Result<Eal, DpdkError> {
        if config.file_prefix.contains('/') {
            return Err(DpdkError::InvalidArgument(format!(
                "file_prefix {:?} contains '/'",
                config.file_prefix
            )));
        }
        let mut args = vec!["vigil".to_owned()];
        args.extend(config.to_args());
        let mut c_args = Vec::with_capacity(args.len());
        for a in args {
            c_args.push(
                CString::new(a)
                    .map_err(|e| DpdkError::InvalidArgument(format!("EAL argument with a NUL byte: {e}")))?,
            );
        }
        if EAL_INIT_CALLED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::AlreadyInitialised);
        }
        // The strings are leaked on purpose: EAL may keep pointers into argv (getopt permutes it and
        // some options are stored by reference), and this happens once per process.
        let mut argv: Vec<*mut c_char> = c_args.into_iter().map(CString::into_raw).collect();
        let argc = c_int::try_from(argv.len()).expect("a handful of EAL arguments");
        let argv_ptr = argv.as_mut_ptr();
        std::mem::forget(argv);
        // SAFETY: argv holds argc valid NUL-terminated strings that live for the rest of the process;
        // the static flag ensures this is the only rte_eal_init call in the process.
        let rc = unsafe { dpdk_sys::rte_eal_init(argc, argv_ptr) };
        if rc < 0 {
            return Err(DpdkError::from_rte_errno("rte_eal_init"));
        }
        Ok(Eal { _inner: Arc::new(EalInner { runtime_dir: runtime_dir(&config.file_prefix) }) })
    }

    /// True once `Eal::init` has been called in this process (whether or not it succeeded).
    pub fn init_called() -> bool {
        EAL_INIT_CALLED.load(Ordering::SeqCst)
    }

    /// Registers the calling thread as a (non-EAL) lcore with `rte_thread_register`, so it gets an
    /// lcore id and with it a per-lcore cache in every mempool: without one, each mbuf alloc/free
    /// goes to the pool's shared ring (much slower under contention). Keep the guard on the thread
    /// (it is `!Send`); dropping it unregisters. A thread that already has an lcore id (the main
    /// thread) gets a guard that leaves it registered.
    pub fn register_current_thread(&self) -> Result<LcoreGuard, DpdkError> {
        // SAFETY: no preconditions; reads the calling thread's lcore id.
        let current = unsafe { dpdk_sys::vigil_rte_lcore_id() };
        if current != dpdk_sys::LCORE_ID_ANY {
            return Ok(LcoreGuard {
                lcore_id: current,
                unregister: false,
                _eal: self.clone(),
                _not_send: PhantomData,
            });
        }
        // SAFETY: the EAL is initialised (self exists); registers the calling thread only.
        let rc = unsafe { dpdk_sys::rte_thread_register() };
        if rc < 0 {
            return Err(DpdkError::from_rte_errno("rte_thread_register"));
        }
        // SAFETY: as above.
        let lcore_id = unsafe { dpdk_sys::vigil_rte_lcore_id() };
        Ok(LcoreGuard { lcore_id, unregister: true, _eal: self.clone(), _not_send: PhantomData })
    }

    /// The port id of the ethdev named `name` (a vdev's name, e.g. `net_memif0`, or a PCI address).
    pub fn port_by_name(&self, name: &str) -> Result<u16, DpdkError> {
        let c_name =
            CString::new(name).map_err(|_| DpdkError::InvalidArgument(format!("port name {name:?}")))?;
        let mut port_id = 0u16;
        // SAFETY: c_name is a valid C string and port_id a valid out pointer for the call.
        let rc = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c_name.as_ptr(), &mut port_id) };
        check("rte_eth_dev_get_port_by_name", rc)?;
        Ok(port_id)
    }

    /// How many ethdev ports are available.
    pub fn port_count(&self) -> u16 {
        // SAFETY: the EAL is initialised; the call only reads the device table.
        unsafe { dpdk_sys::rte_eth_dev_count_avail() }
    }

    /// The NUMA socket of the calling thread (0 on single-socket hosts and for unregistered threads
    /// there), for sizing pools near the core that uses them.
    pub fn socket_id(&self) -> i32 {
        // SAFETY: no preconditions; reads a thread-local.
        let s = unsafe { dpdk_sys::rte_socket_id() };
        i32::try_from(s).unwrap_or(dpdk_sys::SOCKET_ID_ANY)
    }
}

/// Proof that the current thread is a registered lcore; unregisters it on drop. `!Send`: it must be
/// dropped on the thread it registered.
pub struct LcoreGuard {
    lcore_id: u32,
    unregister: bool,
    _eal: Eal,
    _not_send: PhantomData<*const ()>,
}

impl std::fmt::Debug for LcoreGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LcoreGuard").field("lcore_id", &self.lcore_id).finish()
    }
}

impl LcoreGuard {
    /// The lcore id this thread has.
    pub fn lcore_id(&self) -> u32 {
        self.lcore_id
    }
}

impl Drop for LcoreGuard {
    fn drop(&mut self) {
        if self.unregister {
            // SAFETY: the guard is !Send, so this runs on the thread that registered; its lcore id
            // was taken by rte_thread_register and is released once.
            unsafe { dpdk_sys::rte_thread_unregister() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_follow_the_config_in_order() {
        let cfg = EalConfig {
            main_lcore: 1,
            no_pci: true,
            no_huge: true,
            memory_mb: 256,
            file_prefix: "t1".into(),
            vdevs: vec!["net_null0".into(), "net_null1".into()],
            extra_args: vec!["--no-telemetry".into()],
            log_level: Some("error".into()),
        };
        assert_eq!(
            cfg.to_args(),
            [
                "-l",
                "1",
                "--no-pci",
                "--no-huge",
                "-m",
                "256",
                "--file-prefix",
                "t1",
                "--vdev",
                "net_null0",
                "--vdev",
                "net_null1",
                "--log-level",
                "error",
                "--no-telemetry"
            ]
        );
    }
}
