//! The bare-metal deployment scripts (`scripts/deploy/`), run as child processes on this machine.
//!
//! Checked: every script's `--help`; `preflight`'s one line per check and its CPU flags against
//! `/proc/cpuinfo`; `hugepages --dry-run` changing nothing, and a real reserve of a few 2 MiB pages
//! given back by `--undo` (the original count is restored by a guard however the test ends);
//! `bind` failing on an address that does not exist and refusing the default route's device and a
//! disk with a mounted file system, changing nothing; `tune --dry-run` printing the kernel command
//! line for the config's cores; `install --dry-run` printing the units, and `install --root` writing
//! units that `systemd-analyze verify` accepts, then `--uninstall`; shellcheck over the scripts.
//! The log on a device: the SPDK controller taken from `storage.spdk.transport_id`, `bind` refusing
//! the controller of `storage.device`, `preflight`'s lines for a raw device. NVMe controllers this
//! machine lacks are stood for by a fake sysfs tree ([`FakeSys`], `VIGIL_DEPLOY_SYSFS`) and a block
//! device node made with mknod; the root disk stands for a mounted `storage.device`.
//!
//! Nothing is skipped: these tests need root (CI runs as root) and the tools the scripts use; a
//! missing one fails the test with the Debian package to install (scripts/test installs them all).
//! Each script gets its own state directory (`--state-dir`), so the machine's own
//! `/var/lib/vigil/deploy` is never touched. Tests that read or change hugepages and mounts run one
//! at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// Serialises the tests that change or compare hugepages and mounts.
static HUGEPAGES: Mutex<()> = Mutex::new(());

fn hugepages_lock() -> MutexGuard<'static, ()> {
    HUGEPAGES.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What a script printed and how it ended.
struct Run {
    code: i32,
    stdout: String,
}

impl Run {
    /// The `[OK]`/`[WARN]`/`[FAIL]` lines as (status, check name, whole line).
    fn checks(&self) -> Vec<(&str, &str, &str)> {
        self.stdout
            .lines()
            .filter_map(|line| {
                let (status, rest) = ["[OK]", "[WARN]", "[FAIL]"]
                    .iter()
                    .find_map(|tag| line.strip_prefix(tag).map(|rest| (*tag, rest.trim_start())))?;
                let name = rest.split(": ").next().unwrap_or("");
                Some((status, name, line))
            })
            .collect()
    }

    fn has_line(&self, status: &str, needle: &str) -> bool {
        self.stdout.lines().any(|l| l.starts_with(status) && l.contains(needle))
    }
}

/// Runs `scripts/deploy/<name> <args>` in the repository, with the test's vigil binary and its own
/// state directory.
fn deploy(name: &str, args: &[&str], state_dir: &Path) -> Run {
    deploy_on(name, args, state_dir, None)
}

/// [`deploy`] with the device checks reading (and bind writing) the fake sysfs tree `sysfs`.
fn deploy_on(name: &str, args: &[&str], state_dir: &Path, sysfs: Option<&FakeSys>) -> Run {
    let mut cmd = Command::new(repo().join("scripts/deploy").join(name));
    cmd.args(args)
        .current_dir(repo())
        .env("VIGIL_BIN", env!("CARGO_BIN_EXE_vigil"))
        .env("VIGIL_DEPLOY_STATE_DIR", state_dir)
        .env("RUST_BACKTRACE", "0")
        .env_remove("VIGIL_DEPLOY_SYSFS");
    if let Some(sys) = sysfs {
        cmd.env("VIGIL_DEPLOY_SYSFS", &sys.root);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("running scripts/deploy/{name}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    println!("$ scripts/deploy/{name} {}\n{stdout}{stderr}", args.join(" "));
    Run { code: out.status.code().unwrap_or(-1), stdout: stdout + &stderr }
}

/// Fails, loudly, unless the test runs as root.
fn require_root(test: &str) {
    let uid = Command::new("id").arg("-u").output().expect("running id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "\n\n*** {test} NEEDS ROOT (it reserves hugepages, reads device state, runs bind). It is not \
         skipped: run the suite as root, as scripts/test and CI do. ***\n"
    );
}

/// Fails, loudly, unless `tool` is on PATH.
fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output();
    assert!(
        matches!(found, Ok(o) if o.status.success()),
        "\n\n*** `{tool}` is missing: apt-get install -y {package} (scripts/test installs it). ***\n"
    );
}

/// A fresh directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("vigil-deploy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating temp dir");
        TempDir(dir)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    fn str(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A file or a link (the enabled units' links point to /etc/... as seen from the root: dangling here).
fn present(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref()).unwrap_or_default()
}

fn meminfo(key: &str) -> u64 {
    read("/proc/meminfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .strip_prefix(':')
                .map(|v| v.trim().split(' ').next().unwrap_or("").to_string())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} in /proc/meminfo"))
}

/// The hugetlbfs mount points.
fn hugetlbfs_mounts() -> Vec<String> {
    read("/proc/mounts")
        .lines()
        .filter(|l| l.split(' ').nth(2) == Some("hugetlbfs"))
        .map(|l| l.split(' ').nth(1).unwrap_or("").to_string())
        .collect()
}

const NR_2M: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";

/// Every PCI device's driver and driver_override.
fn pci_drivers() -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir("/sys/bus/pci/devices").expect("/sys/bus/pci/devices").flatten() {
        let driver = std::fs::read_link(e.path().join("driver"))
            .map(|p| p.file_name().unwrap_or_default().to_string_lossy().to_string())
            .unwrap_or_else(|_| "none".into());
        out.insert(
            e.file_name().to_string_lossy().to_string(),
            (driver, read(e.path().join("driver_override"))),
        );
    }
    out
}

/// The deepest PCI address in a sysfs path (`/sys/devices/pci0000:00/0000:00:03.0/virtio2`).
fn pci_component(path: &Path) -> Option<String> {
    let is_pci = |s: &str| {
        let b = s.as_bytes();
        b.len() == 12
            && b[4] == b':'
            && b[7] == b':'
            && b[10] == b'.'
            && s.chars().filter(|c| c.is_ascii_hexdigit()).count() == 9
    };
    let real = std::fs::canonicalize(path).ok()?;
    real.components().filter_map(|c| c.as_os_str().to_str()).rfind(|s| is_pci(s)).map(str::to_string)
}

/// Expands a CPU list ("0-2,5").
fn cpulist(text: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<u32>().unwrap()..=b.parse::<u32>().unwrap()),
            None => out.push(part.parse().unwrap()),
        }
    }
    out
}

/// Compresses CPU numbers (sorted) into a list ("0-2,5").
fn cpulist_text(cpus: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        while i + 1 < cpus.len() && cpus[i + 1] == cpus[i] + 1 {
            i += 1;
        }
        parts.push(if start == cpus[i] { start.to_string() } else { format!("{start}-{}", cpus[i]) });
        i += 1;
    }
    parts.join(",")
}

const SCRIPTS: [&str; 6] = ["preflight", "hugepages", "bind", "unbind", "tune", "install"];

#[test]
fn every_script_has_help_naming_dry_run_changes_and_undo() {
    let state = TempDir::new("help");
    for name in SCRIPTS {
        let run = deploy(name, &["--help"], &state.path("state"));
        assert_eq!(run.code, 0, "{name} --help exits 0");
        assert!(run.stdout.starts_with("Usage: scripts/deploy/"), "{name} --help starts with its usage");
        assert!(run.stdout.contains("--dry-run"), "{name} --help mentions --dry-run");
        assert!(
            run.stdout.contains("What it changes") || run.stdout.contains("Changes:"),
            "{name} --help says what it changes"
        );
        assert!(run.stdout.contains("Undo"), "{name} --help says how to undo");
        assert!(run.checks().is_empty(), "{name} --help runs no check");
    }
    let run = deploy("bind", &["--no-such-flag"], &state.path("state"));
    assert_eq!(run.code, 1, "an unknown flag is an error");
    assert!(run.has_line("[FAIL]", "unknown option: --no-such-flag"));
    assert!(!state.path("state").exists(), "--help wrote no state");
}

#[test]
fn preflight_prints_one_line_per_check_and_the_cpu_flags_as_they_are() {
    require_root("preflight_prints_one_line_per_check_and_the_cpu_flags_as_they_are");
    require_tool("lspci", "pciutils");
    require_tool("findmnt", "util-linux");
    let state = TempDir::new("preflight");
    let run = deploy("preflight", &["--config", "config/dev.toml"], &state.path("state"));
    let checks = run.checks();
    let expected = [
        "config",
        "cpu.sse4_2",
        "cpu.avx2",
        "iommu",
        "pci-driver",
        "hugepages",
        "hugepages.mount",
        "numa",
        "nic",
        "nvme",
        "dpdk",
        "spdk",
        "cores",
        "isolcpus",
        "nohz_full",
        "rcu_nocbs",
        "cpufreq",
        "vigil check",
    ];
    for name in expected {
        let n = checks.iter().filter(|(_, n, _)| *n == name).count();
        assert_eq!(n, 1, "preflight prints exactly one line for the check `{name}`");
    }
    for (_, name, line) in &checks {
        assert!(expected.contains(name), "an unexpected check line: {line}");
    }
    for line in run.stdout.lines() {
        let known = line.starts_with("[OK]   ")
            || line.starts_with("[WARN] ")
            || line.starts_with("[FAIL] ")
            || line.starts_with("== ")
            || line.starts_with("       ");
        assert!(known, "every line is a check, a heading or an indented detail: {line:?}");
    }

    let flags: Vec<String> = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("flags"))
        .expect("a flags line in /proc/cpuinfo")
        .split_once(':')
        .unwrap()
        .1
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let has = |f: &str| flags.iter().any(|x| x == f);
    let status = |name: &str| checks.iter().find(|(_, n, _)| *n == name).unwrap().0;
    assert_eq!(
        status("cpu.sse4_2"),
        if has("sse4_2") { "[OK]" } else { "[FAIL]" },
        "SSE4.2 as /proc/cpuinfo says"
    );
    assert_eq!(status("cpu.avx2"), if has("avx2") { "[OK]" } else { "[WARN]" }, "AVX2 as /proc/cpuinfo says");
    assert_eq!(status("vigil check"), "[OK]", "config/dev.toml passes vigil check");
    assert_eq!(status("config"), "[OK]", "config/dev.toml reads with tomllib");
    let fails = checks.iter().filter(|(s, _, _)| *s == "[FAIL]").count();
    assert_eq!(run.code, if fails > 0 { 1 } else { 0 }, "the exit status is 1 exactly when a check failed");
    let iommu_groups = std::fs::read_dir("/sys/kernel/iommu_groups").map(|d| d.count()).unwrap_or(0);
    assert_eq!(status("iommu"), if iommu_groups > 0 { "[OK]" } else { "[WARN]" }, "the IOMMU as sysfs says");
    assert!(!state.path("state").exists(), "preflight wrote no state");

    // The bare-metal example: its NIC gets a line of its own, and its needs are counted.
    let run = deploy("preflight", &["--config", "config/dpdk-pci.toml"], &state.path("state"));
    let checks = run.checks();
    let status = |name: &str| checks.iter().find(|(_, n, _)| *n == name).map(|c| c.0);
    assert_eq!(status("vigil check"), Some("[OK]"), "config/dpdk-pci.toml passes vigil check");
    let nic = "0000:03:00.0";
    let device = format!("device {nic} (nic, from dpdk.port)");
    assert!(status(&device).is_some(), "a line for the config's NIC");
    if !Path::new("/sys/bus/pci/devices").join(nic).exists() {
        assert!(
            run.has_line("[FAIL]", &format!("{device}: no such PCI device")),
            "{nic} is not on this machine"
        );
    }
    assert!(run.stdout.contains("the config needs 1024 MiB (dpdk.memory_mb)"), "its hugepages are counted");
    let fails = checks.iter().filter(|(s, _, _)| *s == "[FAIL]").count();
    assert_eq!(run.code, if fails > 0 { 1 } else { 0 });
    assert!(!state.path("state").exists(), "preflight wrote no state");
}

#[test]
fn hugepages_dry_run_changes_nothing() {
    require_root("hugepages_dry_run_changes_nothing");
    let _serial = hugepages_lock();
    let tmp = TempDir::new("hugepages-dry");
    let (total, mounts) = (meminfo("HugePages_Total"), hugetlbfs_mounts());

    let run = deploy(
        "hugepages",
        &[
            "--dry-run",
            "--config",
            "config/dpdk-pci.toml",
            "--mount",
            &tmp.str("huge"),
            "--persist",
            "--root",
            &tmp.str("root"),
        ],
        &tmp.path("state"),
    );
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("dpdk.memory_mb = 1024 -> 512 pages of 2 MiB"),
        "the count comes from the config"
    );
    let reserved = read(NR_2M).trim().parse::<u64>().unwrap();
    if reserved < 512 {
        assert!(run.stdout.contains(&format!("(dry run) echo 512 > {NR_2M}")), "the reservation is printed");
    }
    assert!(run.stdout.contains("vm.nr_hugepages = 512"), "the sysctl.d file is printed");
    assert_eq!(meminfo("HugePages_Total"), total, "HugePages_Total unchanged");
    assert_eq!(hugetlbfs_mounts(), mounts, "hugetlbfs mounts unchanged");
    for dir in ["huge", "root", "state"] {
        assert!(!tmp.path(dir).exists(), "--dry-run created {dir}");
    }

    let run = deploy("hugepages", &["--config", "config/dev.toml", "--dry-run"], &tmp.path("state"));
    assert_eq!(run.code, 0);
    assert!(
        run.has_line("[OK]", "does not use hugepages (net.backend = kernel, storage.backend = uring)"),
        "nothing needed by the kernel backend"
    );
    // Kernel sockets with the log through SPDK: SPDK's own environment maps its hugepages.
    let spdk = TempDir::new("hugepages-spdk");
    let dev = read(repo().join("config/dev.toml"));
    let config = dev.replacen("backend = \"uring\"", "backend = \"spdk\"", 1).replacen(
        "[storage]",
        "[storage.spdk]\ntransport_id = \"trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:x\"\n\
         namespace_id = 1\nmem_size_mb = 256\n[storage]",
        1,
    );
    std::fs::write(spdk.path("vigil.toml"), config).unwrap();
    let run = deploy("hugepages", &["--config", &spdk.str("vigil.toml"), "--dry-run"], &spdk.path("state"));
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("storage.spdk.mem_size_mb = 256 -> 128 pages of 2 MiB"), "{}", run.stdout);
    assert_eq!(meminfo("HugePages_Total"), total);
}

/// Puts the 2 MiB page count back and unmounts the test's mount, however the test ends.
struct HugepagesGuard {
    original: String,
    mount: PathBuf,
}

impl Drop for HugepagesGuard {
    fn drop(&mut self) {
        if hugetlbfs_mounts().contains(&self.mount.display().to_string()) {
            let _ = Command::new("umount").arg(&self.mount).status();
        }
        if read(NR_2M).trim() != self.original {
            let _ = std::fs::write(NR_2M, format!("{}\n", self.original));
        }
    }
}

#[test]
fn hugepages_reserve_then_undo_restores_the_count_and_the_mounts() {
    require_root("hugepages_reserve_then_undo_restores_the_count_and_the_mounts");
    require_tool("findmnt", "util-linux");
    let _serial = hugepages_lock();
    let tmp = TempDir::new("hugepages");
    let mount = tmp.path("huge");
    let original = read(NR_2M).trim().to_string();
    let _guard = HugepagesGuard { original: original.clone(), mount: mount.clone() };
    let before: u64 = original.parse().expect("nr_hugepages");
    let mounts = hugetlbfs_mounts();
    let want = before + 8; // 16 MiB more than the machine has: a real change, kept tiny
    let want_text = want.to_string();
    let state = tmp.path("state");
    let args = ["--count", want_text.as_str(), "--mount", &mount.display().to_string()];

    let run = deploy("hugepages", &args, &state);
    assert_eq!(run.code, 0, "hugepages --count {want}");
    assert!(run.has_line("[OK]", &format!("reserved {want} x 2 MiB (was {before})")));
    assert_eq!(read(NR_2M).trim(), want_text, "nr_hugepages raised");
    assert_eq!(meminfo("HugePages_Total"), want, "HugePages_Total raised");
    let ours = mounts.is_empty();
    if ours {
        assert!(
            hugetlbfs_mounts().contains(&mount.display().to_string()),
            "a hugetlbfs mounted at {}",
            mount.display()
        );
    } else {
        assert!(run.has_line("[OK]", "already"), "the machine's own hugetlbfs mount is used");
    }
    let state_text = read(state.join("hugepages.state"));
    assert!(
        state_text.contains(&format!("nr {NR_2M} {before}")),
        "the original count is recorded: {state_text}"
    );

    let again = deploy("hugepages", &args, &state);
    assert_eq!(again.code, 0);
    assert!(again.has_line("[OK]", "unchanged"), "a second run changes nothing and says so");
    assert!(
        !again.stdout.contains(&format!("reserved {want} x")) && !again.stdout.contains("mounted hugetlbfs")
    );
    assert_eq!(read(state.join("hugepages.state")), state_text, "the state keeps the original values");

    let undo = deploy("hugepages", &["--undo"], &state);
    assert_eq!(undo.code, 0, "hugepages --undo");
    assert_eq!(read(NR_2M).trim(), original, "nr_hugepages restored");
    assert_eq!(meminfo("HugePages_Total"), before, "HugePages_Total restored");
    assert_eq!(hugetlbfs_mounts(), mounts, "the mounts are as before");
    assert!(!mount.exists() || !ours, "the mount point it created is gone");
    assert!(!state.join("hugepages.state").exists(), "the state is gone once undone");

    let undo = deploy("hugepages", &["--undo"], &state);
    assert_eq!(undo.code, 0);
    assert!(undo.has_line("[OK]", "nothing to undo"));
}

#[test]
fn bind_of_an_address_that_does_not_exist_fails_and_changes_nothing() {
    require_root("bind_of_an_address_that_does_not_exist_fails_and_changes_nothing");
    let tmp = TempDir::new("bind-missing");
    let missing = ["0000:7f:1f.7", "0000:fe:1e.6", "0001:fd:1d.5"]
        .into_iter()
        .find(|a| !Path::new("/sys/bus/pci/devices").join(a).exists())
        .expect("one of the made-up PCI addresses is absent");
    let drivers = pci_drivers();
    let run = deploy("bind", &["--config", "config/dev.toml", "--nic", missing], &tmp.path("state"));
    assert_eq!(run.code, 1, "bind of {missing} fails");
    assert!(
        run.has_line("[FAIL]", &format!("device {missing} (nic, from --nic): no such PCI device")),
        "the message names the device and why"
    );
    assert!(run.stdout.contains("nothing was changed"));
    let run = deploy("bind", &["--config", "config/dev.toml", "--nvme", "04:00"], &tmp.path("state"));
    assert_eq!(run.code, 1);
    assert!(run.has_line("[FAIL]", "device 04:00: not a PCI address"));
    assert_eq!(pci_drivers(), drivers, "no driver or driver_override changed");
    assert!(!tmp.path("state").exists(), "no state recorded");
    let run = deploy("unbind", &[], &tmp.path("state"));
    assert_eq!(run.code, 0);
    assert!(run.has_line("[OK]", "nothing to restore"));
}

#[test]
fn bind_refuses_the_device_of_the_default_route() {
    require_root("bind_refuses_the_device_of_the_default_route");
    require_tool("ip", "iproute2");
    let tmp = TempDir::new("bind-route");
    let route = Command::new("ip").args(["-o", "route", "show", "default"]).output().expect("ip route");
    let route = String::from_utf8_lossy(&route.stdout).to_string();
    let dev = route.split_whitespace().skip_while(|w| *w != "dev").nth(1).map(str::to_string);
    let drivers = pci_drivers();
    let Some(dev) = dev else {
        let run = deploy("bind", &["--config", "config/dev.toml"], &tmp.path("state"));
        assert!(
            run.has_line("[OK]", "default-route: none on this machine"),
            "no default route here, and bind says so"
        );
        return;
    };
    let Some(addr) = pci_component(&Path::new("/sys/class/net").join(&dev).join("device")) else {
        let run = deploy("bind", &["--config", "config/dev.toml"], &tmp.path("state"));
        assert!(
            run.has_line("[OK]", &format!("default-route: dev {dev} is not a PCI device")),
            "the default route's {dev} is not PCI, and bind says so"
        );
        return;
    };
    // The config names it as the DPDK port (as a bare-metal config would).
    let config = tmp.path("route.toml");
    let memif = read(repo().join("config/dpdk-memif.toml"));
    let text = memif
        .replace("port = \"net_memif0\"", &format!("port = \"{addr}\""))
        .replace("no_pci = true", "no_pci = false");
    assert!(text.contains(&addr), "config/dpdk-memif.toml still has port = \"net_memif0\"");
    std::fs::write(&config, text).unwrap();
    let config = config.display().to_string();
    let run = deploy("bind", &["--config", &config], &tmp.path("state"));
    assert_eq!(run.code, 1, "bind refuses {addr}");
    assert!(run.has_line("[OK]", &format!("default-route: dev {dev} on PCI {addr}")));
    assert!(
        run.has_line(
            "[FAIL]",
            &format!(
                "device {addr} (nic, from dpdk.port): refused: it carries the default route (dev {dev})"
            )
        ),
        "the refusal names the device and the reason"
    );
    assert!(run.stdout.contains("nothing was changed"));
    let run =
        deploy("bind", &["--config", "config/dev.toml", "--nic", &addr, "--dry-run"], &tmp.path("state"));
    assert_eq!(run.code, 1, "--dry-run refuses it too");
    assert!(run.has_line("[FAIL]", "refused: it carries the default route"));
    let run = deploy("preflight", &["--config", &config], &tmp.path("state"));
    assert!(run.has_line(
        "[FAIL]",
        &format!("device {addr} (nic, from dpdk.port): bind would refuse it: it carries the default route")
    ));
    assert_eq!(pci_drivers(), drivers, "no driver or driver_override changed");
    assert!(!tmp.path("state").exists(), "no state recorded");
}

/// A PCI disk with something mounted from it (on this kind of VM: the root disk): its name in
/// /sys/block and its controller's PCI address.
fn mounted_pci_disk() -> (String, String) {
    let sources: Vec<String> =
        read("/proc/mounts").lines().filter_map(|l| l.split(' ').next().map(str::to_string)).collect();
    let found = std::fs::read_dir("/sys/block").expect("/sys/block").flatten().find_map(|b| {
        let disk = b.file_name().to_string_lossy().to_string();
        let mounted = sources.iter().any(|s| s.strip_prefix("/dev/").is_some_and(|n| n.starts_with(&disk)));
        if mounted {
            pci_component(&b.path()).map(|addr| (disk, addr))
        } else {
            None
        }
    });
    found.expect(
        "\n\n*** this test needs a PCI disk with a mounted file system (the VM's root disk is one); \
         /sys/block has none here ***\n",
    )
}

#[test]
fn bind_refuses_a_device_with_a_mounted_file_system() {
    require_root("bind_refuses_a_device_with_a_mounted_file_system");
    require_tool("lsblk", "util-linux");
    require_tool("findmnt", "util-linux");
    let tmp = TempDir::new("bind-mounted");
    let (disk, addr) = mounted_pci_disk();
    let drivers = pci_drivers();
    let run = deploy("bind", &["--config", "config/dev.toml", "--nvme", &addr], &tmp.path("state"));
    assert_eq!(run.code, 1, "bind refuses {addr} ({disk})");
    assert!(
        run.has_line(
            "[FAIL]",
            &format!(
                "device {addr} (nvme, from --nvme): refused: it holds a mounted file system (/dev/{disk}"
            )
        ),
        "the refusal names the disk and the mount"
    );
    assert_eq!(pci_drivers(), drivers, "no driver or driver_override changed");
    assert!(!tmp.path("state").exists(), "no state recorded");
}

/// A fake sysfs tree (`VIGIL_DEPLOY_SYSFS`) holding NVMe controllers this machine lacks, in the
/// shape the scripts read: `bus/pci/devices/ADDR` (class, driver, iommu_group, driver_override),
/// each controller's namespace in `block` and `class/block`, `kernel/iommu_groups` (so the IOMMU is
/// on), and `bus/pci/drivers/{nvme,vfio-pci}` (vfio-pci loaded: bind picks it).
struct FakeSys {
    root: PathBuf,
}

impl FakeSys {
    fn new(root: PathBuf) -> FakeSys {
        for dir in [
            "bus/pci/devices",
            "bus/pci/drivers/nvme",
            "bus/pci/drivers/vfio-pci",
            "class/block",
            "block",
            "kernel/iommu_groups",
        ] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        FakeSys { root }
    }

    fn link(&self, target: &str, at: &str) {
        std::os::unix::fs::symlink(target, self.root.join(at))
            .unwrap_or_else(|e| panic!("symlink {at}: {e}"));
    }

    /// An NVMe controller `ctrl` at `addr` on the kernel's nvme driver, alone in IOMMU group
    /// `group`, with one 4 TB namespace, the disk `disk`.
    fn nvme(&self, addr: &str, ctrl: &str, disk: &str, group: u32) {
        let dev = format!("devices/pci0000:7f/{addr}");
        let ns = format!("{dev}/nvme/{ctrl}/{disk}");
        std::fs::create_dir_all(self.root.join(&ns)).unwrap();
        std::fs::create_dir_all(self.root.join(format!("kernel/iommu_groups/{group}/devices"))).unwrap();
        for (file, text) in [("class", "0x010802\n"), ("numa_node", "-1\n"), ("driver_override", "(null)\n")]
        {
            std::fs::write(self.root.join(&dev).join(file), text).unwrap();
        }
        std::fs::write(self.root.join(&ns).join("size"), "7814037168\n").unwrap();
        self.link("../../../bus/pci/drivers/nvme", &format!("{dev}/driver"));
        self.link(&format!("../../../kernel/iommu_groups/{group}"), &format!("{dev}/iommu_group"));
        self.link(&format!("../../../../{dev}"), &format!("kernel/iommu_groups/{group}/devices/{addr}"));
        self.link(&format!("../../../{dev}"), &format!("bus/pci/devices/{addr}"));
        self.link(&format!("../../{ctrl}"), &format!("{ns}/device"));
        self.link(&format!("../{ns}"), &format!("block/{disk}"));
        self.link(&format!("../../{ns}"), &format!("class/block/{disk}"));
    }

    /// Moves the controller at `addr` to `driver` (what a bind leaves).
    fn set_driver(&self, addr: &str, driver: &str) {
        let at = format!("devices/pci0000:7f/{addr}/driver");
        std::fs::remove_file(self.root.join(&at)).unwrap();
        self.link(&format!("../../../bus/pci/drivers/{driver}"), &at);
    }

    /// Every path in the tree with its link target or file contents: what a script changed.
    fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let path = e.path();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                if meta.file_type().is_symlink() {
                    out.insert(path.clone(), format!("-> {}", std::fs::read_link(&path).unwrap().display()));
                } else if meta.is_dir() {
                    out.insert(path.clone(), "dir".into());
                    walk(&path, out);
                } else {
                    out.insert(path.clone(), read(&path));
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.root, &mut out);
        out
    }
}

/// A block device node at `path` (major 7, `minor`: a loop device that is not there), standing for
/// a namespace of a [`FakeSys`] controller: the scripts map it to the tree by its name.
fn block_node(path: &Path, minor: u32) -> String {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let made = Command::new("mknod").arg(path).args(["b", "7", &minor.to_string()]).status();
    assert!(matches!(made, Ok(s) if s.success()), "mknod {} b 7 {minor}", path.display());
    path.display().to_string()
}

/// config/dev.toml with `storage.backend = backend`, `storage.dir` in the test's directory, the
/// `[storage]` lines `extra` and the tables `tables` ([storage.spdk]), written to `path`.
fn storage_config(path: &Path, backend: &str, extra: &str, tables: &str) -> String {
    let dev = read(repo().join("config/dev.toml"));
    let dir = path.with_extension("data");
    let text = dev
        .replacen("backend = \"uring\"     #", &format!("backend = \"{backend}\"     #"), 1)
        .replacen("dir = \"vigil-data\"", &format!("dir = \"{}\"\n{extra}", dir.display()), 1)
        .replacen("\n[candle]", &format!("\n{tables}\n[candle]"), 1);
    for needle in [format!("backend = \"{backend}\"     #"), dir.display().to_string(), "[candle]".into()] {
        assert!(text.contains(&needle), "config/dev.toml no longer has the lines storage_config edits");
    }
    std::fs::write(path, text).unwrap();
    path.display().to_string()
}

/// True when the test's vigil was built without SPDK (`vigil --version` says `SPDK none`).
fn vigil_without_spdk() -> bool {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil")).arg("--version").output().expect("vigil --version");
    String::from_utf8_lossy(&out.stdout).contains("SPDK none")
}

#[test]
fn the_spdk_controller_comes_from_the_config() {
    require_tool("findmnt", "util-linux");
    let tmp = TempDir::new("spdk-config");
    let state = tmp.path("state");
    let sys = FakeSys::new(tmp.path("sys"));
    let addr = "0000:7f:1f.6";
    sys.nvme(addr, "nvme8", "nvme8n1", 43);
    // trtype in another case, the address without its domain: both as SPDK reads them.
    let spdk = "[storage.spdk]\ntransport_id = \"trtype:pcie traddr:7f:1f.6\"\nnamespace_id = 1\n";
    let config = storage_config(&tmp.path("spdk.toml"), "spdk", "", spdk);
    let before = sys.snapshot();
    let device = format!("device {addr} (nvme, from storage.spdk.transport_id)");

    let run = deploy_on("preflight", &["--config", &config], &state, Some(&sys));
    assert!(
        run.has_line("[OK]", &format!("nvme: the log is on NVMe controller {addr} namespace 1 through SPDK")),
        "the nvme line says where the log is"
    );
    assert!(
        run.has_line("[WARN]", &format!("{device}: still on driver nvme: run scripts/deploy/bind")),
        "the controller is checked without --nvme"
    );
    if vigil_without_spdk() {
        assert!(run.has_line("[FAIL]", "spdk: "), "storage.backend = spdk with a vigil built without SPDK");
    }
    let fails = run.checks().iter().filter(|(s, _, _)| *s == "[FAIL]").count();
    assert_eq!(run.code, if fails > 0 { 1 } else { 0 });

    let run = deploy_on("bind", &["--config", &config, "--dry-run"], &state, Some(&sys));
    assert_eq!(run.code, 0, "bind takes the config's controller, no --nvme needed");
    assert!(run.has_line("[OK]", &format!("{device}: free to take: on nvme now, vfio-pci next")));
    assert!(run.has_line("[OK]", &format!("device {addr}: would go from nvme to vfio-pci")));
    let root = sys.root.display();
    assert!(run
        .stdout
        .contains(&format!("(dry run) echo vfio-pci > {root}/bus/pci/devices/{addr}/driver_override")));
    assert_eq!(sys.snapshot(), before, "--dry-run changed nothing");
    assert!(!state.exists(), "--dry-run recorded nothing");

    // Bound (as bind leaves it): ready, and a second bind changes nothing.
    sys.set_driver(addr, "vfio-pci");
    let run = deploy_on("preflight", &["--config", &config], &state, Some(&sys));
    assert!(run.has_line("[OK]", &format!("{device}: bound to vfio-pci, ready for SPDK")));
    let run = deploy_on("bind", &["--config", &config, "--dry-run"], &state, Some(&sys));
    assert_eq!(run.code, 0);
    assert!(run.has_line("[OK]", &format!("{device}: bound to vfio-pci already: unchanged")));

    // An NVMe-oF target is on no controller of this machine: reported, nothing to bind.
    let tcp = "[storage.spdk]\ntransport_id = \"trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 \
               subnqn:nqn.2016-06.io.spdk:cnode1\"\nnamespace_id = 1\n";
    let config = storage_config(&tmp.path("tcp.toml"), "spdk", "", tcp);
    let run = deploy_on("preflight", &["--config", &config], &state, Some(&sys));
    assert!(run.has_line("[OK]", "nvme: the log is on an NVMe-oF target through SPDK (trtype tcp"));
    assert!(!run.stdout.contains("from storage.spdk.transport_id"), "no device line for a remote target");
    let run = deploy_on("bind", &["--config", &config, "--dry-run"], &state, Some(&sys));
    assert_eq!(run.code, 0);
    assert!(run.has_line("[OK]", "bind: nothing to bind"));
    assert!(run.stdout.contains("is a remote target (trtype tcp)"));

    // trtype PCIe with a traddr that is no PCI address: a [FAIL] in both.
    let bad = "[storage.spdk]\ntransport_id = \"trtype:PCIe traddr:04:00\"\nnamespace_id = 1\n";
    let config = storage_config(&tmp.path("bad.toml"), "spdk", "", bad);
    let run = deploy_on("preflight", &["--config", &config], &state, Some(&sys));
    assert!(run.has_line("[FAIL]", "nvme: storage.spdk.transport_id = \"trtype:PCIe traddr:04:00\""));
    let run = deploy_on("bind", &["--config", &config, "--dry-run"], &state, Some(&sys));
    assert_eq!(run.code, 1);
    assert!(run.has_line("[FAIL]", "device 04:00 (nvme, from storage.spdk.transport_id): not a PCI address"));
    assert!(!state.exists(), "nothing recorded");
}

#[test]
fn bind_refuses_the_controller_of_storage_device() {
    require_root("bind_refuses_the_controller_of_storage_device");
    require_tool("lsblk", "util-linux");
    require_tool("findmnt", "util-linux");
    let tmp = TempDir::new("bind-storage-device");
    let state = tmp.path("state");
    let sys = FakeSys::new(tmp.path("sys"));
    let (addr, other) = ("0000:7f:1f.7", "0000:7f:1f.6");
    sys.nvme(addr, "nvme9", "nvme9n1", 42);
    sys.nvme(other, "nvme8", "nvme8n1", 43);
    let dev = block_node(&tmp.path("dev/nvme9n1"), 1000);
    let config = storage_config(&tmp.path("raw.toml"), "uring", &format!("device = \"{dev}\""), "");
    let (before, drivers) = (sys.snapshot(), pci_drivers());
    let reason = format!("it holds storage.device = {dev} (the log, written through io_uring");

    for dry_run in [true, false] {
        let mut args = vec!["--config", config.as_str(), "--nvme", addr];
        if dry_run {
            args.push("--dry-run");
        }
        let run = deploy_on("bind", &args, &state, Some(&sys));
        assert_eq!(run.code, 1, "bind refuses {addr}, which holds storage.device");
        assert!(
            run.has_line("[FAIL]", &format!("device {addr} (nvme, from --nvme): refused: {reason}")),
            "the refusal names the device and the key"
        );
        assert!(run.stdout.contains("nothing was changed"));
    }
    // However it is named.
    let run = deploy_on("bind", &["--config", &config, "--nic", addr, "--dry-run"], &state, Some(&sys));
    assert_eq!(run.code, 1);
    assert!(run.has_line("[FAIL]", &format!("device {addr} (nic, from --nic): refused: {reason}")));
    let run = deploy_on("preflight", &["--config", &config, "--nvme", addr], &state, Some(&sys));
    assert!(
        run.has_line("[FAIL]", &format!("device {addr} (nvme, from --nvme): bind would refuse it: {reason}"))
    );
    assert_eq!(sys.snapshot(), before, "no driver or driver_override changed in the tree");
    assert_eq!(pci_drivers(), drivers, "nor on this machine");
    assert!(!state.exists(), "no state recorded");

    // The other controller holds nothing of the node's.
    let run = deploy_on("bind", &["--config", &config, "--nvme", other, "--dry-run"], &state, Some(&sys));
    assert_eq!(run.code, 0);
    assert!(run.has_line("[OK]", &format!("device {other} (nvme, from --nvme): free to take")));
    assert_eq!(sys.snapshot(), before);
}

#[test]
fn preflight_checks_the_raw_device_of_storage_device() {
    require_root("preflight_checks_the_raw_device_of_storage_device");
    require_tool("lsblk", "util-linux");
    require_tool("findmnt", "util-linux");
    let tmp = TempDir::new("preflight-storage-device");
    let state = tmp.path("state");
    let sys = FakeSys::new(tmp.path("sys"));
    let addr = "0000:7f:1f.7";
    sys.nvme(addr, "nvme9", "nvme9n1", 42);
    let dev = block_node(&tmp.path("dev/nvme9n1"), 1000);
    let config = storage_config(&tmp.path("raw.toml"), "uring", &format!("device = \"{dev}\""), "");
    let line = |run: &Run| -> (String, String) {
        let found: Vec<_> = run.checks().into_iter().filter(|(_, n, _)| *n == "storage.device").collect();
        assert_eq!(found.len(), 1, "one storage.device line");
        (found[0].0.to_string(), found[0].2.to_string())
    };

    let run = deploy_on("preflight", &["--config", &config], &state, Some(&sys));
    assert!(run.has_line(
        "[OK]",
        &format!("nvme: the log is on the raw device storage.device = {dev} through io_uring")
    ));
    let (status, text) = line(&run);
    assert_eq!(status, "[OK]", "{text}");
    assert!(
        text.contains(&format!("storage.device: {dev}: a block device of 3.6 TiB on PCI {addr} (")),
        "{text}"
    );
    assert!(text.contains("driver nvme); nothing mounted from it or stacked on it"), "{text}");

    // Its controller taken from the kernel's nvme driver (by hand: bind refuses it).
    sys.set_driver(addr, "vfio-pci");
    let run = deploy_on("preflight", &["--config", &config], &state, Some(&sys));
    let (status, text) = line(&run);
    assert_eq!(status, "[FAIL]");
    assert!(
        text.contains(&format!("its controller {addr} is on vfio-pci, not the kernel's nvme driver")),
        "{text}"
    );
    assert_eq!(run.code, 1);

    // A device that is not there (as the namespace of a controller on vfio-pci is not), a file.
    let missing = tmp.str("dev/nvme7n1");
    let config_missing =
        storage_config(&tmp.path("missing.toml"), "uring", &format!("device = \"{missing}\""), "");
    let run = deploy_on("preflight", &["--config", &config_missing], &state, Some(&sys));
    let (status, text) = line(&run);
    assert_eq!(status, "[FAIL]");
    assert!(text.contains(&format!("storage.device: {missing} does not exist")), "{text}");
    assert!(text.contains(&format!("on a user-space driver, where it may be: {addr} (vfio-pci)")), "{text}");
    let file = tmp.str("raw.toml");
    let config_file = storage_config(&tmp.path("file.toml"), "uring", &format!("device = \"{file}\""), "");
    let run = deploy_on("preflight", &["--config", &config_file], &state, Some(&sys));
    let (status, text) = line(&run);
    assert_eq!(status, "[FAIL]");
    assert!(text.contains(&format!("storage.device: {file} is not a block device (regular file)")), "{text}");

    // This machine's mounted disk, through the real sysfs: refused by preflight and by bind.
    let (disk, disk_addr) = mounted_pci_disk();
    let root_disk = format!("/dev/{disk}");
    let config_root =
        storage_config(&tmp.path("root.toml"), "uring", &format!("device = \"{root_disk}\""), "");
    let run = deploy("preflight", &["--config", &config_root], &state);
    let (status, text) = line(&run);
    assert_eq!(status, "[FAIL]");
    assert!(text.contains(&format!("storage.device: {root_disk}: a block device of ")), "{text}");
    assert!(text.contains(&format!("on PCI {disk_addr} (")), "{text}");
    assert!(text.contains(&format!("it holds a mounted file system ({root_disk}")), "{text}");
    let run = deploy("bind", &["--config", &config_root, "--nvme", &disk_addr, "--dry-run"], &state);
    assert_eq!(run.code, 1);
    assert!(run.has_line("[FAIL]", &format!("it holds storage.device = {root_disk} (the log")));
    assert!(!state.exists(), "preflight wrote no state");
}

#[test]
fn tune_dry_run_prints_the_command_line_for_the_config_cores() {
    require_root("tune_dry_run_prints_the_command_line_for_the_config_cores");
    let tmp = TempDir::new("tune");
    let online = cpulist(&read("/sys/devices/system/cpu/online"));
    assert!(online.contains(&1), "config/dpdk-memif.toml pins core 1, which is not online here: {online:?}");
    let housekeeping: Vec<u32> = online.iter().copied().filter(|c| *c != 1).collect();
    let irqs = || -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for e in std::fs::read_dir("/proc/irq").unwrap().flatten() {
            m.insert(e.file_name().to_string_lossy().to_string(), read(e.path().join("smp_affinity_list")));
        }
        m.insert("default".into(), read("/proc/irq/default_smp_affinity"));
        m
    };
    let before = irqs();
    let run = deploy("tune", &["--config", "config/dpdk-memif.toml", "--dry-run"], &tmp.path("state"));
    assert_eq!(run.code, 0);
    let line = format!(
        "isolcpus=managed_irq,domain,1 nohz_full=1 rcu_nocbs=1 irqaffinity={}",
        cpulist_text(&housekeeping)
    );
    let cmdline = read("/proc/cmdline");
    if cmdline.contains("nohz_full=") && cmdline.contains("isolcpus=") && cmdline.contains("rcu_nocbs=") {
        assert!(run.has_line("[", "cmdline:"), "the command line is checked");
    } else {
        assert!(run.stdout.contains(&line), "tune prints `{line}`");
        assert!(run.has_line("[WARN]", "cmdline:"), "an unisolated core is a warning");
    }
    assert!(run.stdout.contains("(not edited here)"));
    assert_eq!(irqs(), before, "no IRQ affinity changed");
    assert!(!tmp.path("state").exists(), "no state recorded");

    let run = deploy("tune", &["--config", "config/dev.toml", "--dry-run"], &tmp.path("state"));
    assert_eq!(run.code, 0);
    assert!(run.has_line("[WARN]", "node.cores = []"), "no pinned cores, nothing to isolate");
}

#[test]
fn install_dry_run_prints_the_units_and_writes_nothing() {
    let tmp = TempDir::new("install-dry");
    let root = tmp.str("root");
    let run =
        deploy("install", &["--dry-run", "--root", &root, "--config", "config/dev.toml"], &tmp.path("state"));
    assert_eq!(run.code, 0);
    for needle in [
        "ExecStart=/usr/local/bin/vigil serve --config /etc/vigil/vigil.toml",
        "Requires=vigil-prepare.service",
        "After=vigil-prepare.service",
        "Restart=on-failure",
        "LimitMEMLOCK=infinity",
        "LimitNOFILE=1048576",
        "ExecStart=/usr/local/lib/vigil/scripts/deploy/hugepages --config /etc/vigil/vigil.toml",
        "ExecStart=/usr/local/lib/vigil/scripts/deploy/bind --config /etc/vigil/vigil.toml $VIGIL_BIND_ARGS",
        "ExecStop=/usr/local/lib/vigil/scripts/deploy/unbind",
    ] {
        assert!(run.stdout.contains(needle), "install --dry-run prints `{needle}`");
    }
    assert!(!tmp.path("root").exists(), "--dry-run wrote nothing under the root");
    assert!(!tmp.path("state").exists(), "--dry-run recorded nothing");
}

#[test]
fn install_into_a_root_verifies_with_systemd_and_uninstalls() {
    require_root("install_into_a_root_verifies_with_systemd_and_uninstalls");
    require_tool("systemd-analyze", "systemd");
    require_tool("systemctl", "systemd");
    let tmp = TempDir::new("install");
    let root = tmp.path("root");
    // systemd's own units, so `verify --root` finds sysinit.target, network-online.target, ...
    std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    let cp = Command::new("cp")
        .arg("-a")
        .arg("/usr/lib/systemd/system")
        .arg(root.join("usr/lib/systemd/"))
        .status();
    assert!(matches!(cp, Ok(s) if s.success()), "copying /usr/lib/systemd/system into the test root");
    let root_s = root.display().to_string();
    let state = root.join("var/lib/vigil/deploy");
    let args = ["--root", root_s.as_str(), "--config", "config/dev.toml", "--nvme", "0000:04:00.0"];

    let run = deploy("install", &args, &state);
    assert_eq!(run.code, 0, "install --root");
    for f in [
        "etc/systemd/system/vigil.service",
        "etc/systemd/system/vigil-prepare.service",
        "etc/systemd/system/multi-user.target.wants/vigil.service",
        "etc/systemd/system/multi-user.target.wants/vigil-prepare.service",
        "usr/local/bin/vigil",
        "usr/local/lib/vigil/scripts/lib.sh",
        "usr/local/lib/vigil/scripts/deploy/bind",
        "etc/vigil/vigil.toml",
    ] {
        assert!(present(&root.join(f)), "install wrote {f}");
    }
    assert!(read(root.join("etc/vigil/deploy.env")).contains("VIGIL_BIND_ARGS=--nvme 0000:04:00.0"));

    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={root_s}"))
        .args(["vigil.service", "vigil-prepare.service"])
        .current_dir(&root)
        .output()
        .expect("systemd-analyze verify");
    let said =
        format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
    assert!(verify.status.success(), "systemd-analyze verify refuses the units:\n{said}");
    assert!(said.trim().is_empty(), "systemd-analyze verify has remarks on the units:\n{said}");

    let again = deploy("install", &args, &state);
    assert_eq!(again.code, 0);
    let files: Vec<_> = again.checks().into_iter().filter(|(_, n, _)| n.starts_with("file ")).collect();
    assert!(!files.is_empty());
    for (_, _, line) in files {
        assert!(line.contains("unchanged"), "a second install changes nothing: {line}");
    }

    let undo = deploy("install", &["--uninstall", "--root", &root_s], &state);
    assert_eq!(undo.code, 0, "install --uninstall");
    for f in [
        "etc/systemd/system/vigil.service",
        "etc/systemd/system/vigil-prepare.service",
        "etc/systemd/system/multi-user.target.wants/vigil.service",
        "usr/local/bin/vigil",
        "usr/local/lib/vigil",
        "etc/vigil/deploy.env",
    ] {
        assert!(!present(&root.join(f)), "--uninstall removed {f}");
    }
    assert!(root.join("etc/vigil/vigil.toml").exists(), "--uninstall keeps the config");
    let undo = deploy("install", &["--uninstall", "--root", &root_s], &state);
    assert!(undo.has_line("[OK]", "nothing to remove"));
}

#[test]
fn shellcheck_finds_nothing_in_the_deploy_scripts() {
    require_tool("shellcheck", "shellcheck");
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("scripts/deploy"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files.push(repo().join("scripts/lib.sh"));
    // The guest test's scripts run the deploy scripts: held to the same bar.
    files.extend(["tests/guest/image", "tests/guest/vigil-guest"].map(|f| repo().join(f)));
    let out =
        Command::new("shellcheck").arg("-x").args(&files).current_dir(repo()).output().expect("shellcheck");
    assert!(
        out.status.success(),
        "shellcheck finds something in scripts/deploy/ or tests/guest/:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
