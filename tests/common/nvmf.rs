//! An SPDK NVMe-over-TCP target on loopback for tests: [`NvmfTarget::start`] runs SPDK's `nvmf_tgt`
//! as a child process exporting one malloc bdev (RAM inside the target) as namespace 1 of a fresh
//! subsystem on 127.0.0.1, and dropping the [`NvmfTarget`] stops that process. Vigil's SPDK backend
//! then sees a real NVMe controller (`SpdkController::connect(&env, target.trid())`) on a machine
//! with no NVMe drive, no hugepages, no VFIO/UIO and no root-only PCI access.
//!
//! What it needs (both from an SPDK v24.01 build; SPDK is in no package registry):
//! - `nvmf_tgt`: `$VIGIL_NVMF_TGT`, else `/usr/local/bin/nvmf_tgt` (SPDK's `make install`), else the
//!   first on `PATH`. When `<its dir>/../lib` holds `libspdk_*` it is put first on `LD_LIBRARY_PATH`
//!   (an SPDK installed into /usr/local without rerunning `ldconfig` cannot find its own .so files).
//! - `rpc.py`: `$VIGIL_SPDK_RPC`, the path of `scripts/rpc.py` in an SPDK source tree (e.g.
//!   `/work/spdk-build/scripts/rpc.py`); the tree's `python/` directory (SPDK's Python package) is
//!   put first on `PYTHONPATH`. It runs under `python3`.
//!
//! Neither missing is a skip: the tests that use this are built only with the `spdk` feature, which
//! asks for them, so a missing tool fails the test with how to get it.
//!
//! Invariants:
//! - every target is unique to its process and call: RPC socket, log file, NQN
//!   (`nqn.2016-06.io.spdk:vigil-<pid>-<n>`) and TCP port (a free one on 127.0.0.1, chosen by binding
//!   port 0, retried if the target cannot listen on it); SPDK's CPU-core lock files are off, so
//!   several targets (and other SPDK processes) may run at once;
//! - the target runs on CPU 1 (`-m 0x2`) where there are two CPUs or more, so it does not compete
//!   with a test or shard pinned to CPU 0 (`$VIGIL_NVMF_CPU_MASK` overrides the mask). Its reactor
//!   busy-polls: it takes all of that CPU, shared by every target running at once;
//! - the namespace's data lives in the target's memory: it survives reconnects and new qpairs but
//!   not the target (each `start` begins with zeroed blocks);
//! - start-up is bounded ([`START_TIMEOUT`] for the RPC socket, rpc.py's own timeout for each call)
//!   and fails loudly with the tail of the target's output; `Drop` stops the child by PID (SIGTERM,
//!   then SIGKILL after [`STOP_TIMEOUT`]; SIGKILL at once after a failed start-up, which leaves SPDK
//!   hanging with SIGTERM ignored) and removes its socket, its log (kept, and named on stderr, when
//!   the test is panicking) and its empty DPDK runtime directory.
//!
//! Cost, measured with SPDK v24.01 on a 2-CPU VM: ~2.5 s from spawn to listening (RPC socket
//! ~0.5 s, transport + bdev + subsystem ~0.85 s in one rpc.py run, the listener ~0.85 s in another),
//! SIGTERM ~1.7 s. Without hugepages the target's DPDK heap (`-s`) must hold ~420 MiB of its own
//! pools besides the malloc bdev (480 MiB carries a 64 MiB bdev, 448 does not; too little and it
//! stops starting but does not exit), hence [`TARGET_HEAP_BASE_MIB`] + the bdev's size.
//!
//! For the host side (Vigil's backend), with SPDK's defaults: the target's I/O queues hold 127
//! commands (`max_queue_depth` 128), and it drops a controller whose host sends no keep-alive for
//! 10 s; SPDK's host sends them only from `spdk_nvme_ctrlr_process_admin_completions`
//! (`SpdkController::process_admin_completions`), so a test idle longer than that must call it.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long the target may take to open its RPC socket.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the target may take to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The target's DPDK heap besides the malloc bdev, in MiB (see the module header).
pub const TARGET_HEAP_BASE_MIB: u32 = 512;
/// Seconds rpc.py waits for each answer.
const RPC_TIMEOUT_S: &str = "30";
/// Times a listener is tried on a fresh port (another process may take a port between our probe
/// and the target's bind).
const LISTEN_TRIES: u32 = 5;
/// What a target whose start-up failed logs (SPDK v24.01's app.c) before it hangs.
const START_FAILED: &str = "spdk_app_stop'd on non-zero";
/// Bytes of the target's output shown when it fails.
const LOG_TAIL_BYTES: u64 = 4096;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A running `nvmf_tgt` exporting one malloc bdev over NVMe/TCP on 127.0.0.1; stopped on drop.
pub struct NvmfTarget {
    child: Child,
    trid: String,
    nqn: String,
    port: u16,
    rpc_sock: PathBuf,
    log: PathBuf,
    capacity_bytes: u64,
    block_size: u32,
    /// Start-up failed or hung: SIGTERM would be ignored, so Drop kills it outright.
    stuck: bool,
}

impl NvmfTarget {
    /// Starts a target whose namespace 1 is a `malloc_mib` MiB RAM disk of `block_size`-byte
    /// sectors (512 or 4096 for Vigil, whose blocks are 4 KiB), and waits until it listens.
    /// Panics, with the target's output, if anything fails.
    pub fn start(malloc_mib: u32, block_size: u32) -> NvmfTarget {
        assert!(malloc_mib > 0, "malloc_mib must be at least 1");
        assert!(
            block_size.is_power_of_two() && (512..=4096).contains(&block_size),
            "block_size {block_size} must be a power of two from 512 to 4096"
        );
        let tgt = nvmf_tgt_path();
        let rpc = rpc_script_path();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let name = format!("vigil-nvmf-{pid}-{n}");
        let nqn = format!("nqn.2016-06.io.spdk:vigil-{pid}-{n}");
        let rpc_sock = std::env::temp_dir().join(format!("{name}.sock"));
        assert!(
            rpc_sock.as_os_str().len() < 100,
            "{} is too long for a Unix socket path: set TMPDIR to a shorter directory",
            rpc_sock.display()
        );
        let log = std::env::temp_dir().join(format!("{name}.log"));
        let _ = std::fs::remove_file(&rpc_sock);
        let out = File::create(&log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let err = out.try_clone().expect("cloning the log file handle");

        let mem_mib = (TARGET_HEAP_BASE_MIB + malloc_mib).to_string();
        let mut cmd = Command::new(&tgt);
        cmd.args(["--no-huge", "-s", &mem_mib, "-m", &cpu_mask(), "-u", "-r"])
            .arg(&rpc_sock)
            .args(["--disable-cpumask-locks", "--num-trace-entries", "0"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if let Some(lib) = spdk_lib_dir(&tgt) {
            cmd.env("LD_LIBRARY_PATH", prepend_path(&lib, std::env::var_os("LD_LIBRARY_PATH")));
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
        // From here on a panic drops `target`, which stops the child.
        let mut target = NvmfTarget {
            child,
            trid: String::new(),
            nqn,
            port: 0,
            rpc_sock,
            log,
            capacity_bytes: u64::from(malloc_mib) << 20,
            block_size,
            stuck: false,
        };
        target.wait_for_socket();

        let nqn = target.nqn.clone();
        target
            .rpc(
                &rpc,
                &[
                    "nvmf_create_transport -t TCP".to_string(),
                    format!("bdev_malloc_create -b Malloc0 {malloc_mib} {block_size}"),
                    format!("nvmf_create_subsystem {nqn} -a -s VIGIL{pid:08}{n:04}"),
                    format!("nvmf_subsystem_add_ns {nqn} Malloc0"),
                ],
            )
            .unwrap_or_else(|e| target.fail(&format!("configuring the target: {e}")));

        let mut last_error = String::new();
        for _ in 0..LISTEN_TRIES {
            let port = super::free_tcp_port();
            let listen = format!("nvmf_subsystem_add_listener {nqn} -t tcp -a 127.0.0.1 -s {port}");
            match target.rpc(&rpc, &[listen]) {
                Ok(()) => {
                    target.port = port;
                    break;
                }
                Err(e) => last_error = e,
            }
        }
        if target.port == 0 {
            target.fail(&format!("no listener after {LISTEN_TRIES} ports: {last_error}"));
        }
        target.trid =
            format!("trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{} subnqn:{}", target.port, target.nqn);
        target
    }

    /// The NVMe transport ID of the target's subsystem, for `SpdkController::connect`.
    pub fn trid(&self) -> &str {
        &self.trid
    }

    /// The subsystem's NQN.
    pub fn nqn(&self) -> &str {
        &self.nqn
    }

    /// The TCP port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The target's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The namespace's size in bytes.
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    /// The namespace's sector size in bytes.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// The last bytes of the target's stdout and stderr.
    pub fn log_tail(&self) -> String {
        let Ok(mut f) = File::open(&self.log) else { return String::from("(no log)") };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)));
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Waits (bounded) for the RPC socket, failing if the target exits or hangs first.
    fn wait_for_socket(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.rpc_sock.exists() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.fail(&format!("nvmf_tgt exited ({status}) before opening its RPC socket"));
            }
            // A failed start-up does not exit (and then ignores SIGTERM): it says so in its log.
            if std::fs::read_to_string(&self.log).is_ok_and(|log| log.contains(START_FAILED)) {
                self.stuck = true;
                self.fail("nvmf_tgt failed to start (its output says why: too little memory?)");
            }
            if Instant::now() >= deadline {
                self.stuck = true;
                self.fail(&format!(
                    "nvmf_tgt did not open its RPC socket {} within {START_TIMEOUT:?} (too little \
                     memory for its pools hangs it this way)",
                    self.rpc_sock.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `calls` through one rpc.py process (its script mode: one call a line on stdin).
    fn rpc(&self, rpc: &Path, calls: &[String]) -> Result<(), String> {
        let mut cmd = Command::new("python3");
        cmd.arg(rpc)
            .arg("-s")
            .arg(&self.rpc_sock)
            .args(["-t", RPC_TIMEOUT_S, "-r", "50"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(python) =
            rpc.parent().and_then(Path::parent).map(|p| p.join("python")).filter(|p| p.join("spdk").is_dir())
        {
            cmd.env("PYTHONPATH", prepend_path(&python, std::env::var_os("PYTHONPATH")));
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("running python3 {} (python3 installed?): {e}", rpc.display()))?;
        let script = calls.join("\n") + "\n";
        child.stdin.take().expect("piped stdin").write_all(script.as_bytes()).map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "rpc.py {} failed ({}) on:\n{script}stdout: {}\nstderr: {}",
            rpc.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }

    /// Panics with `what` and the target's output (`self` is then dropped, stopping the target).
    fn fail(&self, what: &str) -> ! {
        panic!(
            "\n\n*** SPDK nvmf_tgt (pid {}, RPC socket {}): {what} ***\n--- its output (tail of {}) ---\n{}\n",
            self.child.id(),
            self.rpc_sock.display(),
            self.log.display(),
            self.log_tail()
        )
    }
}

impl Drop for NvmfTarget {
    fn drop(&mut self) {
        let pid = self.child.id();
        if self.stuck {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Ok(None) = self.child.try_wait() {
                eprintln!("nvmf_tgt (pid {pid}) ignored SIGTERM for {STOP_TIMEOUT:?}: killing it");
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        let _ = std::fs::remove_file(&self.rpc_sock);
        // EAL leaves its (empty, with --no-huge) runtime directory behind; named after the child.
        let _ = std::fs::remove_dir(format!("/var/run/dpdk/spdk_pid{pid}"));
        if std::thread::panicking() {
            eprintln!("nvmf_tgt (pid {pid}) output kept in {}", self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// `nvmf_tgt`: `$VIGIL_NVMF_TGT`, `/usr/local/bin/nvmf_tgt`, or the first on `PATH`.
fn nvmf_tgt_path() -> PathBuf {
    const HOW: &str = "SPDK is in no package registry: build SPDK v24.01 from source against the system \
        DPDK as docs/DEPLOY.md, \"SPDK\", says; `make install` puts nvmf_tgt in /usr/local/bin. Or \
        set VIGIL_NVMF_TGT to its path";
    if let Some(path) = std::env::var_os("VIGIL_NVMF_TGT") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "\n\n*** VIGIL_NVMF_TGT={} is not a file. {HOW} ***\n", path.display());
        return path;
    }
    let installed = PathBuf::from("/usr/local/bin/nvmf_tgt");
    if installed.is_file() {
        return installed;
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("nvmf_tgt")).find(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!("\n\n*** this test needs SPDK's nvmf_tgt, which is not installed. {HOW} ***\n")
        })
}

/// `<nvmf_tgt's dir>/../lib` when it holds SPDK's libraries (`libspdk_*`).
fn spdk_lib_dir(tgt: &Path) -> Option<PathBuf> {
    let lib = tgt.parent()?.parent()?.join("lib");
    let has_spdk = std::fs::read_dir(&lib)
        .ok()?
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("libspdk_"));
    has_spdk.then_some(lib)
}

/// `rpc.py`: `$VIGIL_SPDK_RPC`.
fn rpc_script_path() -> PathBuf {
    const HOW: &str = "set VIGIL_SPDK_RPC to scripts/rpc.py of the SPDK source tree nvmf_tgt was built \
        from (e.g. VIGIL_SPDK_RPC=/work/spdk-build/scripts/rpc.py); its python/ directory next to \
        scripts/ is used as PYTHONPATH";
    let path = std::env::var_os("VIGIL_SPDK_RPC").map(PathBuf::from).unwrap_or_else(|| {
        panic!("\n\n*** this test needs SPDK's rpc.py to configure nvmf_tgt: {HOW} ***\n")
    });
    assert!(path.is_file(), "\n\n*** VIGIL_SPDK_RPC={} is not a file: {HOW} ***\n", path.display());
    path
}

/// The target's core mask: CPU 1 where there is one, else CPU 0; `$VIGIL_NVMF_CPU_MASK` overrides.
fn cpu_mask() -> String {
    if let Ok(mask) = std::env::var("VIGIL_NVMF_CPU_MASK") {
        return mask;
    }
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if cpus >= 2 { "0x2" } else { "0x1" }.to_string()
}

/// `dir` followed by the entries of `existing` (a `PATH`-like variable).
fn prepend_path(dir: &Path, existing: Option<std::ffi::OsString>) -> std::ffi::OsString {
    let mut paths = vec![dir.to_path_buf()];
    if let Some(existing) = existing {
        paths.extend(std::env::split_paths(&existing));
    }
    std::env::join_paths(paths).expect("no ':' in library or Python paths")
}
