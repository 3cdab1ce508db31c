//! Where each partition's log device comes from while a node serves: memory, files in
//! `storage.dir`, regions of a raw block device (`storage.device`), or regions of an NVMe namespace
//! through SPDK (`storage.backend = "spdk"`, built with `--features spdk`).
//!
//! [`prepare`] runs before any thread starts: it locks `storage.dir` and checks the store
//! (`storage::open_for_serve`), and for a raw device holds it open exclusively (`O_EXCL`: no mount,
//! no second node) and checks its label and superblocks (`device_store::verify`). SPDK's
//! environment joins DPDK's EAL when the packet path started one, so an SPDK store is checked in
//! [`LogSource::attach`], called by each packet backend once its EAL is (or is not) up, still before
//! any shard starts. A shard then opens one device handle per partition ([`open_partition`]): its own
//! io_uring, or its own SPDK qpair polled on the shard's core.
//!
//! Invariants: nothing here writes to a log device or creates a store on one (that is only
//! `vigil format`); every refusal names the device and says why; an SPDK controller is polled for
//! admin completions (keep-alive, events) by one thread for as long as any partition uses it.

use super::device_store::{self, OpenDevice};
use super::storage::{self, Manifest, StoreError};
use super::ServeError;
use crate::config::{Config, StorageBackend};
use crate::log::DeviceLayout;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vigil_pmd::block::uring::UringBlockIo;

/// The partitions' log devices, as the shards open them.
#[derive(Clone, Debug)]
pub enum LogSource {
    /// Memory: blank at every start.
    Memory,
    /// `partition-<p>.ual` in `storage.dir`.
    Files(PathBuf),
    /// Regions of a raw block device, held open exclusively while this lives.
    Device {
        /// The device.
        path: PathBuf,
        /// Where each partition's region is.
        layout: DeviceLayout,
        /// The `O_EXCL` handle that keeps the device from being mounted or served by another node.
        _exclusive: Arc<File>,
    },
    /// An SPDK store whose manifest was checked; its device is checked by `attach`.
    SpdkPending(Manifest),
    /// Regions of an NVMe namespace through SPDK.
    #[cfg(feature = "spdk")]
    Spdk(spdk::SpdkLog),
}

/// Locks and checks the store before any thread starts (see the module header); the lock is held
/// as long as the returned guard.
pub fn prepare(config: &Config) -> Result<(Option<storage::DirLock>, LogSource), ServeError> {
    let st = &config.storage;
    if st.backend == StorageBackend::Memory {
        return Ok((None, LogSource::Memory));
    }
    if st.backend == StorageBackend::Spdk && !cfg!(feature = "spdk") {
        return Err(ServeError::Storage(
            "storage.backend = \"spdk\" needs a Vigil built with `--features spdk` (SPDK installed; \
             docs/DEPLOY.md, \"SPDK\"); this one was built without it"
                .into(),
        ));
    }
    let (lock, opened) = storage::open_for_serve(config)?;
    let dir = st.dir.clone().expect("validated: a durable backend has a dir");
    let m = match opened {
        storage::Opened::Created(m) => {
            tracing::info!(
                target: "vigil",
                "storage.dir {} held no store: created store {} ({} partitions, manifest {})",
                dir.display(), m.store_id, m.partitions, storage::MANIFEST
            );
            m
        }
        storage::Opened::Verified(m) => {
            tracing::info!(target: "vigil", "storage.dir {}: store {} ({} partitions), locked", dir.display(), m.store_id, m.partitions);
            m
        }
    };
    let source = match (st.backend, &st.device) {
        (StorageBackend::Spdk, _) => LogSource::SpdkPending(m),
        (_, Some(path)) => {
            let exclusive = open_exclusive(path).map_err(|e| ServeError::Storage(e.to_string()))?;
            let name = path.display().to_string();
            let label = device_store::verify(config, &uring_opener(config, path), &name, &m)?;
            tracing::info!(target: "vigil", "log device {name}: store {}, {} partitions", m.store_id, label.layout.partitions);
            LogSource::Device { path: path.clone(), layout: label.layout, _exclusive: Arc::new(exclusive) }
        }
        _ => LogSource::Files(dir),
    };
    Ok((Some(lock), source))
}

impl LogSource {
    /// Brings an SPDK store up once the packet path settled the EAL (`eal_running`: the DPDK
    /// backend started it, SPDK joins it; else SPDK starts its own): attaches the controller,
    /// checks the device, starts the admin poller. Every other source is returned as it is.
    pub fn attach(self, config: &Config, eal_running: bool) -> Result<LogSource, ServeError> {
        match self {
            #[cfg(feature = "spdk")]
            LogSource::SpdkPending(m) => spdk::attach(config, eal_running, &m).map(LogSource::Spdk),
            #[cfg(not(feature = "spdk"))]
            LogSource::SpdkPending(_) => {
                let _ = (config, eal_running);
                unreachable!("prepare refuses spdk in a build without it")
            }
            other => Ok(other),
        }
    }

    /// The directory of the snapshots (none for memory).
    pub fn snapshot_dir<'a>(&self, config: &'a Config) -> Option<&'a Path> {
        match self {
            LogSource::Memory => None,
            _ => config.storage.dir.as_deref(),
        }
    }
}

/// Opens `path` with `O_EXCL`: for a block device, refused (EBUSY) while it is mounted or another
/// process holds it exclusively.
pub fn open_exclusive(path: &Path) -> Result<File, StoreError> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let device = || path.display().to_string();
    let meta = std::fs::metadata(path)
        .map_err(|e| StoreError::Device { device: device(), reason: format!("cannot be read: {e}") })?;
    if !meta.file_type().is_block_device() {
        return Err(StoreError::Device {
            device: device(),
            reason:
                "is not a block device (storage.device is for a raw device such as /dev/nvme0n1; a log in \
                     files needs only storage.dir)"
                    .into(),
        });
    }
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_EXCL).open(path).map_err(|e| StoreError::Device {
        device: device(),
        reason: if e.raw_os_error() == Some(libc::EBUSY) {
            "is in use (mounted, or held by another process such as another Vigil): unmount it or stop that \
             process; nothing was changed"
                .into()
        } else {
            format!("cannot be opened exclusively: {e}")
        },
    })
}

/// Opens an io_uring handle on the existing file or raw device `path`, at its own size.
pub fn uring_open(config: &Config, path: &Path) -> Result<UringBlockIo, String> {
    UringBlockIo::open(&storage::uring_config(config, path)).map_err(|e| e.to_string())
}

/// Opens new io_uring handles on the raw device `path`.
pub fn uring_opener<'a>(
    config: &'a Config,
    path: &'a Path,
) -> impl Fn() -> Result<UringBlockIo, String> + 'a {
    move || uring_open(config, path)
}

/// `vigil format` for a store whose log is on a device: holds a raw device exclusively while it
/// formats it; for SPDK, starts SPDK's environment (the process's only use of it) first.
pub fn format_device(config: &Config, overwrite: bool) -> Result<Manifest, ServeError> {
    let st = &config.storage;
    match (st.backend, &st.device) {
        (StorageBackend::Spdk, _) => {
            #[cfg(feature = "spdk")]
            return spdk::format(config, overwrite);
            #[cfg(not(feature = "spdk"))]
            return Err(ServeError::Storage(
                "storage.backend = \"spdk\" needs a Vigil built with `--features spdk`".into(),
            ));
        }
        (_, Some(path)) => {
            let _exclusive = open_exclusive(path)?;
            let open = uring_opener(config, path);
            let open: OpenDevice<'_, UringBlockIo> = &open;
            Ok(device_store::format_store(config, open, &path.display().to_string(), overwrite)?)
        }
        _ => unreachable!("format_device is for a log on a device"),
    }
}

#[cfg(feature = "spdk")]
pub mod spdk {
    //! The SPDK side: its environment, the controller, the admin poller, and the format.

    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;
    use vigil_pmd::block::spdk::{SpdkBlockIo, SpdkController, SpdkEnv, SpdkEnvConfig};

    /// How often the admin queue is polled (NVMe/TCP keep-alive is sent from there; its timeout
    /// is 10 s by default).
    const ADMIN_POLL: Duration = Duration::from_millis(100);

    /// An attached namespace and the thread polling its controller's admin queue.
    #[derive(Clone, Debug)]
    pub struct SpdkLog {
        /// The controller, shared by every partition's qpair.
        pub ctrlr: Arc<SpdkController>,
        /// The namespace.
        pub namespace_id: u32,
        /// Where each partition's region is.
        pub layout: DeviceLayout,
        _poller: Arc<AdminPoller>,
    }

    /// Stops and joins its thread when the last `SpdkLog` clone goes.
    #[derive(Debug)]
    struct AdminPoller {
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Drop for AdminPoller {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// How the device is named in messages.
    pub fn device_name(config: &Config) -> String {
        let s = config.storage.spdk.as_ref().expect("validated: spdk has [storage.spdk]");
        format!("{} namespace {}", s.transport_id, s.namespace_id)
    }

    fn env(config: &Config, eal_running: bool) -> Result<SpdkEnv, ServeError> {
        let s = config.storage.spdk.as_ref().expect("validated: spdk has [storage.spdk]");
        let started = if eal_running {
            SpdkEnv::join_running_eal()
        } else {
            SpdkEnv::init(&SpdkEnvConfig {
                name: format!("vigil-{}", std::process::id()),
                no_huge: s.no_huge,
                mem_size_mb: s.mem_size_mb,
            })
        };
        started.map_err(|e| ServeError::Storage(format!("SPDK: {e}")))
    }

    fn connect(config: &Config, env: &SpdkEnv) -> Result<Arc<SpdkController>, ServeError> {
        let s = config.storage.spdk.as_ref().expect("validated");
        SpdkController::connect(env, &s.transport_id).map_err(|e| ServeError::Storage(format!("SPDK: {e}")))
    }

    /// New qpairs on `ctrlr`'s namespace, sized for the log's requests (a segment at most).
    fn opener(config: &Config, ctrlr: Arc<SpdkController>) -> impl Fn() -> Result<SpdkBlockIo, String> + '_ {
        let nsid = config.storage.spdk.as_ref().expect("validated").namespace_id;
        move || {
            SpdkBlockIo::open_on(
                ctrlr.clone(),
                nsid,
                config.storage.queue_depth,
                config.storage.segment_blocks,
            )
            .map_err(|e| e.to_string())
        }
    }

    /// Starts SPDK, attaches the controller, checks the device against the manifest and starts the
    /// admin poller.
    pub fn attach(config: &Config, eal_running: bool, m: &Manifest) -> Result<SpdkLog, ServeError> {
        let env = env(config, eal_running)?;
        let ctrlr = connect(config, &env)?;
        let name = device_name(config);
        let label = device_store::verify(config, &opener(config, ctrlr.clone()), &name, m)?;
        tracing::info!(target: "vigil", "log device {name} (SPDK): store {}, {} partitions", m.store_id, label.layout.partitions);
        let stop = Arc::new(AtomicBool::new(false));
        let (polled, flag) = (ctrlr.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("vigil-spdk-admin".into())
            .spawn(move || {
                let mut failed = false;
                while !flag.load(Ordering::Relaxed) {
                    let rc = polled.process_admin_completions();
                    if rc < 0 && !failed {
                        tracing::error!(target: "vigil", "SPDK: the admin queue of {} failed (rc {rc})", polled.transport_id());
                    }
                    failed = rc < 0;
                    std::thread::sleep(ADMIN_POLL);
                }
            })
            .map_err(|e| ServeError::Storage(format!("SPDK admin poller: {e}")))?;
        let poller = AdminPoller { stop, thread: Some(thread) };
        let namespace_id = config.storage.spdk.as_ref().expect("validated").namespace_id;
        Ok(SpdkLog { ctrlr, namespace_id, layout: label.layout, _poller: Arc::new(poller) })
    }

    /// `vigil format` on the namespace.
    pub fn format(config: &Config, overwrite: bool) -> Result<Manifest, ServeError> {
        let env = env(config, false)?;
        let ctrlr = connect(config, &env)?;
        let open = opener(config, ctrlr);
        Ok(device_store::format_store(config, &open, &device_name(config), overwrite)?)
    }

    /// Partition `p`'s region on a qpair of its own.
    pub fn open_partition(
        config: &Config,
        log: &SpdkLog,
        p: u32,
    ) -> Result<vigil_pmd::block::Region<SpdkBlockIo>, String> {
        let open = opener(config, log.ctrlr.clone());
        device_store::region(&open, &device_name(config), &log.layout, p).map_err(|e| e.to_string())
    }
}
