//! The bare-metal-like guest test (issue 15; docs/DEPLOY.md, "The guest test"): a Debian guest
//! under QEMU (TCG) with the devices of a real machine: a virtual IOMMU (q35, intel-iommu), an
//! emulated NVMe drive, a virtio NIC for its management and an e1000 NIC for Vigil, on a tap only
//! this host reaches. At its first boot the guest runs what an operator runs
//! (`tests/guest/vigil-guest`): `scripts/deploy/preflight`, `hugepages`, `bind` (the e1000 to
//! vfio-pci; the NVMe drive stays on the kernel's nvme driver), `vigil format` (the log on the raw
//! NVMe drive, through io_uring), `install`, then `systemctl start vigil` on DPDK's e1000 PMD. The
//! host then writes through the tap (durable SETs, each acknowledged, and the load generator's rate
//! searches of PING and SET against `dpdk-testpmd` reflecting on the same NIC earlier in the same
//! boot), cuts the guest's power (SIGKILL to QEMU), boots it again (systemd starts Vigil: the units
//! are enabled) and reads every acknowledged write back. It writes more, has the guest SIGKILL Vigil
//! alone (a command on the guest's second serial port), waits for systemd's restart to serve, and
//! reads every acknowledged write back again.
//!
//! SPDK against io_uring, optional (SPDK is in no package registry, so its build comes from the
//! host, by hand: docs/DEPLOY.md, "SPDK"): with `VIGIL_GUEST_SPDK_VIGIL=/path/to/vigil` (a vigil
//! built with `--features spdk`, e.g. `target/spdk/release/vigil`) the guest gets a second emulated
//! NVMe drive (`0000:00:06.0`, serial vigil-nvme2, its own image, the same options as the first; the
//! node keeps its log on /dev/nvme0n1), that binary and `vigil-loadgen`. At the end the host sends
//! `compare-logs`: the guest stops vigil.service and runs `tests/guest/compare-logs` (the log on the
//! second drive through io_uring, then through SPDK after `bind --nvme`, the same durable SETs at
//! the same rates, a restart of the SPDK node, `unbind`); the host prints the table with the
//! ratios. Without the variable the test says in one line that the comparison did not run.
//!
//! It takes minutes (two boots under TCG), so it is `#[ignore]`d in the suite and run on its own by
//! `.ci/run` after it: `cargo test --test guest -- --ignored --nocapture`. It needs root (tap,
//! QEMU, debootstrap) and fails loudly without it. The guest's root file system is built once by
//! `tests/guest/image` (debootstrap, cached under /var/cache/vigil-guest).

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::UdpSocket;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vigil::wire::{opcode, Status};

const HOST_IP: &str = "10.231.0.1";
const GUEST: &str = "10.231.0.2:9000";
/// How long a boot may take to serve (TCG: the kernel, the deploy scripts, DPDK's start).
const BOOT_TIMEOUT: Duration = Duration::from_secs(600);
/// Durable SETs written one at a time, each acknowledged before the next: before the power cut.
const ACKED_WRITES: u64 = 300;
/// More of them after it, before Vigil alone is killed.
const ACKED_WRITES_BEFORE_KILL: u64 = 200;
/// How long systemd's restart of Vigil may take to serve (RestartSec=5, then Vigil's start).
const RESTART_TIMEOUT: Duration = Duration::from_secs(180);
/// The SPDK-built vigil for the io_uring-against-SPDK comparison (see the header).
const SPDK_VIGIL_ENV: &str = "VIGIL_GUEST_SPDK_VIGIL";
/// How long the comparison may take in the guest (two nodes, two formats, a restart, five loads).
const COMPARE_TIMEOUT: Duration = Duration::from_secs(420);
/// Seconds dpdk-testpmd reflects on the NIC before Vigil starts: the baseline's search fits in it.
const TESTPMD_SECONDS: u32 = 30;
/// The rate searches' first trial and ceiling, requests/s.
const SEARCH_CEILING: f64 = 50_000.0;
/// The rate searches' bound on p99 (TCG: milliseconds, not microseconds) and their first trial.
const SEARCH: [&str; 12] = [
    "--search-p99-us",
    "50000",
    "--rate",
    "50000",
    "--search-steps",
    "6",
    "--search-trial-s",
    "1",
    "--warmup",
    "0.5",
    "--duration",
    "1",
];

/// The tap device between the host and the guest's Vigil NIC; removed when dropped.
struct Tap(String);

impl Tap {
    fn up() -> Tap {
        let name = format!("vgt{}", std::process::id() % 100_000);
        let _ = Command::new("ip").args(["link", "del", &name]).output();
        run_tool("ip", &["tuntap", "add", "dev", &name, "mode", "tap"]);
        run_tool("ip", &["addr", "add", &format!("{HOST_IP}/24"), "dev", &name]);
        run_tool("ip", &["link", "set", &name, "up"]);
        Tap(name)
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

/// A running guest: its QEMU process, its serial console's file and its control port (the
/// second serial port, a unix socket here, /dev/ttyS1 there).
struct Guest {
    qemu: Child,
    console: PathBuf,
    control: PathBuf,
    control_conn: Option<UnixStream>,
    booted: Instant,
}

impl Guest {
    /// Boots the guest of `dir` (its `root.img`, `nvme.img` and the kernel of `rootfs`), the
    /// console into `console-<n>.log`, the control port on `ctl-<n>.sock`.
    fn boot(dir: &Path, rootfs: &Path, tap: &Tap, n: u32) -> Guest {
        // The comparison's second NVMe drive, when its image is there (make_images).
        let second = dir.join("nvme2.img").exists();
        let console = dir.join(format!("console-{n}.log"));
        let control = dir.join(format!("ctl-{n}.sock"));
        let drive =
            |file: &str, id: &str| format!("file={},if=none,id={id},format=raw", dir.join(file).display());
        let qemu = Command::new("qemu-system-x86_64")
            .args(["-machine", "q35", "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2", "-m", "2048"])
            .arg("-kernel")
            .arg(rootfs.join("vmlinuz"))
            .arg("-initrd")
            .arg(rootfs.join("initrd.img"))
            .args([
                "-append",
                "root=/dev/vda rw console=ttyS0 intel_iommu=on iommu=pt net.ifnames=0 panic=-1",
            ])
            .args(["-device", "intel-iommu,intremap=on,caching-mode=on"])
            .args(["-drive", &drive("root.img", "root"), "-device", "virtio-blk-pci,drive=root"])
            .args(["-drive", &format!("{},cache=writeback", drive("nvme.img", "nvm"))])
            .args(["-device", "nvme,serial=vigil-nvme,drive=nvm"])
            .args(if second {
                vec![
                    "-drive".to_string(),
                    format!("{},cache=writeback", drive("nvme2.img", "nvm2")),
                    "-device".to_string(),
                    "nvme,serial=vigil-nvme2,drive=nvm2,addr=06.0".to_string(),
                ]
            } else {
                vec![]
            })
            .args(["-netdev", "user,id=mgmt", "-device", "virtio-net-pci,netdev=mgmt"])
            .args(["-netdev", &format!("tap,id=data,ifname={},script=no,downscript=no", tap.0)])
            .args(["-device", "e1000,netdev=data,mac=52:54:00:23:10:02,addr=05.0"])
            .args(["-display", "none", "-no-reboot", "-serial"])
            .arg(format!("file:{}", console.display()))
            .arg("-chardev")
            .arg(format!("socket,id=ctl,path={},server=on,wait=off", control.display()))
            .args(["-device", "isa-serial,chardev=ctl"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting qemu-system-x86_64 (tests/guest/image installs it)");
        Guest { qemu, console, control, control_conn: None, booted: Instant::now() }
    }

    /// Sends `line` to the guest's control port (read by `vigil-guest`); the connection stays
    /// open for the guest's life.
    fn command(&mut self, line: &str) {
        if self.control_conn.is_none() {
            let conn = UnixStream::connect(&self.control)
                .unwrap_or_else(|e| panic!("the guest's control port {}: {e}", self.control.display()));
            self.control_conn = Some(conn);
        }
        let conn = self.control_conn.as_mut().unwrap();
        conn.write_all(format!("{line}\n").as_bytes()).expect("writing to the guest's control port");
    }

    fn console_text(&self) -> String {
        std::fs::read(&self.console).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// Waits for `needle` on the console; fails with the console's text if QEMU exits or the time
    /// runs out.
    fn wait_for(&mut self, needle: &str, timeout: Duration) {
        self.wait_for_nth(needle, 1, timeout)
    }

    /// Waits for the `n`th occurrence of `needle` on the console (as `wait_for`).
    fn wait_for_nth(&mut self, needle: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.console_text();
            if text.matches(needle).count() >= n {
                return;
            }
            if let Ok(Some(status)) = self.qemu.try_wait() {
                let mut err = String::new();
                let _ = self.qemu.stderr.take().map(|mut e| e.read_to_string(&mut err));
                panic!("QEMU exited ({status}) before {needle:?} (#{n}):\n{err}\n--- console ---\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} (#{n}) within {timeout:?}:\n--- console ---\n{text}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Cuts the power: SIGKILL to QEMU, nothing flushed by the guest.
    fn power_cut(mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }
}

/// The guest's disk images in `dir`: its root file system (the cached Debian tree plus Vigil, the
/// deploy scripts, the config and the boot unit) and a blank NVMe drive (the log's, raw); with
/// `spdk_vigil`, that binary, `vigil-loadgen`, `compare-logs` and a second blank NVMe drive.
fn make_images(dir: &Path, rootfs: &Path, spdk_vigil: Option<&Path>) {
    let stage = dir.join("stage");
    run_ok(Command::new("cp").arg("-a").arg(rootfs).arg(&stage));
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let put = |from: &Path, to: &str, mode: u32| {
        let to = stage.join(to.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, &to).unwrap_or_else(|e| panic!("{} -> {}: {e}", from.display(), to.display()));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    put(&vigil_bin(), "/usr/local/bin/vigil", 0o755);
    for entry in std::fs::read_dir(repo.join("scripts/deploy")).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        put(&entry.path(), &format!("/opt/vigil/scripts/deploy/{name}"), 0o755);
    }
    put(&repo.join("scripts/lib.sh"), "/opt/vigil/scripts/lib.sh", 0o644);
    put(&repo.join("tests/guest/vigil.toml"), "/etc/vigil/vigil.toml", 0o644);
    put(&repo.join("tests/guest/vigil-guest"), "/usr/local/sbin/vigil-guest", 0o755);
    if let Some(spdk) = spdk_vigil {
        put(spdk, "/usr/local/bin/vigil-spdk", 0o755);
        put(&loadgen_bin(), "/usr/local/bin/vigil-loadgen", 0o755);
        put(&repo.join("tests/guest/compare-logs"), "/usr/local/sbin/compare-logs", 0o755);
        run_ok(Command::new("truncate").args(["-s", "1G"]).arg(dir.join("nvme2.img")));
    }
    std::fs::write(stage.join("etc/vigil/testpmd-seconds"), format!("{TESTPMD_SECONDS}\n")).unwrap();
    let unit = "[Unit]\nDescription=Vigil guest test (tests/guest/vigil-guest)\nAfter=local-fs.target systemd-udev-settle.service\n\n[Service]\nType=simple\nExecStart=/usr/local/sbin/vigil-guest\nStandardOutput=tty\nStandardError=tty\nTTYPath=/dev/ttyS0\nLimitMEMLOCK=infinity\n\n[Install]\nWantedBy=multi-user.target\n";
    let units = stage.join("etc/systemd/system");
    std::fs::create_dir_all(units.join("multi-user.target.wants")).unwrap();
    std::fs::write(units.join("vigil-guest.service"), unit).unwrap();
    std::os::unix::fs::symlink(
        "../vigil-guest.service",
        units.join("multi-user.target.wants/vigil-guest.service"),
    )
    .unwrap();
    // The console is the test's: no login prompt on it.
    std::os::unix::fs::symlink("/dev/null", units.join("serial-getty@ttyS0.service")).unwrap();
    std::fs::write(stage.join("etc/hostname"), "vigil-guest\n").unwrap();
    run_ok(
        Command::new("mkfs.ext4").args(["-q", "-F", "-d"]).arg(&stage).arg(dir.join("root.img")).arg("3G"),
    );
    std::fs::remove_dir_all(&stage).unwrap();
    run_ok(Command::new("truncate").args(["-s", "1G"]).arg(dir.join("nvme.img")));
}

/// The load generator for the guest: the release build when there is one (TCG makes a debug one
/// the bottleneck), else the tests' (debug) one.
fn loadgen_bin() -> PathBuf {
    let debug = workspace_bin("vigil-loadgen");
    let release = debug.parent().and_then(Path::parent).map(|t| t.join("release/vigil-loadgen"));
    release.filter(|r| r.exists()).unwrap_or(debug)
}

/// One load of the comparison: "VIGIL-GUEST: compare: result <log> <rate> achieved=.. p50_us=..
/// p99_us=.. sent=.. timeouts=.. errors=..".
struct CompareRun {
    log: String,
    rate: u64,
    achieved: f64,
    p50_us: f64,
    p99_us: f64,
    sent: u64,
    lost: u64,
}

fn compare_runs(console: &str) -> Vec<CompareRun> {
    console
        .lines()
        .filter_map(|l| l.split("VIGIL-GUEST: compare: result ").nth(1))
        .map(|r| {
            let mut words = r.split_whitespace();
            let log = words.next().unwrap_or("?").to_string();
            let rate = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
            let fields: std::collections::HashMap<&str, f64> = words
                .filter_map(|w| w.split_once('='))
                .filter_map(|(k, v)| v.parse().ok().map(|v| (k, v)))
                .collect();
            let f =
                |k: &str| *fields.get(k).unwrap_or_else(|| panic!("{k} missing in the result line {r:?}"));
            CompareRun {
                log,
                rate,
                achieved: f("achieved"),
                p50_us: f("p50_us"),
                p99_us: f("p99_us"),
                sent: f("sent") as u64,
                lost: (f("timeouts") + f("errors")) as u64,
            }
        })
        .collect()
}

/// The comparison's results from the console: prints the table, checks both logs ran every rate,
/// lost nothing at the lowest, and that the SPDK node's restart found its keys.
fn report_comparison(console: &str) {
    let from = console.find("VIGIL-GUEST: compare:").unwrap_or(0);
    println!("--- the guest's console during compare-logs\n{}", &console[from..]);
    assert!(
        console.contains("VIGIL-GUEST: compare: done") && !console.contains("VIGIL-GUEST: compare: FAILED"),
        "compare-logs failed:\n{}",
        &console[from..]
    );
    let runs = compare_runs(console);
    let rates: std::collections::BTreeSet<u64> = runs.iter().map(|r| r.rate).collect();
    let lowest = *rates.iter().next().expect("no compare result lines");
    println!(
        "durable SETs, one shard, kernel sockets on 127.0.0.1 in the guest (TCG), the log on the same \
         emulated NVMe drive:"
    );
    println!("| offered | log | achieved | p50 | p99 | lost | SPDK / io_uring: achieved, p50, p99 |");
    println!("|---:|---|---:|---:|---:|---:|---|");
    for rate in &rates {
        let of = |log: &str| {
            runs.iter()
                .find(|r| r.rate == *rate && r.log == log)
                .unwrap_or_else(|| panic!("no {log} run at {rate}/s"))
        };
        let (u, s) = (of("uring"), of("spdk"));
        for r in [u, s] {
            let ratio = if r.log == "spdk" {
                format!(
                    "{:.2}, {:.2}, {:.2}",
                    s.achieved / u.achieved,
                    s.p50_us / u.p50_us,
                    s.p99_us / u.p99_us
                )
            } else {
                String::new()
            };
            let name = if r.log == "spdk" { "SPDK (vfio-pci)" } else { "io_uring, raw /dev/nvme1n1" };
            println!(
                "| {rate}/s | {name} | {:.0}/s | {:.0} us | {:.0} us | {} of {} | {ratio} |",
                r.achieved, r.p50_us, r.p99_us, r.lost, r.sent
            );
        }
        if *rate == lowest {
            assert!(
                u.lost == 0 && s.lost == 0,
                "writes lost at {rate}/s: io_uring {}, SPDK {}",
                u.lost,
                s.lost
            );
        }
        assert!(u.achieved > 0.0 && s.achieved > 0.0, "a run at {rate}/s achieved nothing");
    }
    let restart = console
        .lines()
        .find_map(|l| l.split("VIGIL-GUEST: compare: spdk restart: ").nth(1))
        .expect("no spdk restart line");
    let field = |k: &str| -> String {
        restart
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")).map(str::to_string))
            .unwrap_or_default()
    };
    assert!(
        field("keys") == field("reported_at_stop")
            && field("keys") != "0"
            && field("not_found") == "0"
            && field("errors") == "0"
            && field("timeouts") == "0"
            && field("gets") != "0",
        "the SPDK node's restart did not find every key it reported, or a GET failed: {restart}"
    );
    println!("SPDK node restarted on its store: {restart}");
}

/// The SET of key `g-<i>` (value `v-<i>`) as request `i + 1` of the test's client.
fn set_request(i: u64) -> Vec<u8> {
    request(&[(opcode::SET, i + 1, &set_body(format!("g-{i}").as_bytes(), format!("v-{i}").as_bytes()))])
}

/// The highest rate a search found ("best N req/s" in the load generator's report; 0 when none
/// passed).
fn best_rate(report: &str) -> f64 {
    let best = report.split("best ").nth(1).and_then(|r| r.split(' ').next());
    best.and_then(|n| n.parse().ok()).unwrap_or(0.0)
}

/// Reads keys `g-0` .. `g-<n-1>` back from the guest: each must hold the value its acknowledged SET
/// wrote (`after`: what happened since, for the message).
fn read_back(sock: &UdpSocket, n: u64, after: &str) {
    for i in 0..n {
        let get = || request(&[(opcode::GET, 1, format!("g-{i}").as_bytes())]);
        let (status, body) = call_final(sock, GUEST, get);
        assert_eq!(status, Status::Ok, "g-{i} was acknowledged before {after} and is gone");
        assert_eq!(&body[8..], format!("v-{i}").as_bytes(), "g-{i} after {after}");
    }
}

/// A rate search of `op` (with its `extra` flags) against the guest: its report and best rate.
fn search(op: &str, extra: &[&str]) -> (String, f64) {
    let mut flags = SEARCH.to_vec();
    flags.extend_from_slice(extra);
    let out = Command::new(workspace_bin("vigil-loadgen"))
        .args(["--server", GUEST, "--op", op])
        .args(&flags)
        .output()
        .expect("running vigil-loadgen");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "vigil-loadgen --op {op} search failed:\n{text}");
    let best = best_rate(&text);
    (text, best)
}

#[test]
#[ignore = "boots a QEMU guest twice (minutes): .ci/run runs it on its own, `cargo test --test guest -- --ignored`"]
fn a_guest_on_real_pci_devices_keeps_every_acknowledged_write_across_a_power_cut_and_a_vigil_restart() {
    require_root_and_dpdk("the guest test");
    let image = run_ok(&mut Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guest/image")));
    println!("{image}");
    let rootfs = PathBuf::from(image.lines().last().expect("the image script prints the path").trim());
    let spdk_vigil = std::env::var_os(SPDK_VIGIL_ENV).map(PathBuf::from);
    if let Some(spdk) = &spdk_vigil {
        assert!(spdk.is_file(), "{SPDK_VIGIL_ENV}={}: no such file", spdk.display());
    }
    let dir = disk_temp_dir("guest");
    make_images(&dir, &rootfs, spdk_vigil.as_deref());
    let tap = Tap::up();

    let mut guest = Guest::boot(&dir, &rootfs, &tap, 1);
    // The baseline first: testpmd on the NIC Vigil then takes, answering no ARP (a static entry).
    guest.wait_for("Press enter to exit", BOOT_TIMEOUT);
    let (mac, ip) = ("52:54:00:23:10:02", GUEST.split(':').next().unwrap());
    run_tool("ip", &["neigh", "replace", ip, "lladdr", mac, "dev", &tap.0, "nud", "permanent"]);
    let (testpmd_report, testpmd_rate) = search("ping", &["--reflector"]);
    println!("--- load generator against dpdk-testpmd (5tswap) on the guest's NIC\n{testpmd_report}");
    guest.wait_for("vigil: ready:", BOOT_TIMEOUT);
    let first_boot = guest.booted.elapsed();
    let console = guest.console_text();
    let deploy = console.find("VIGIL-GUEST: first boot:").unwrap_or(0);
    println!(
        "--- the guest's console at its first boot, from the deploy steps to Vigil serving\n{}",
        &console[deploy..]
    );
    let steps = [
        "step preflight exit",
        "step hugepages exit 0",
        "step bind exit 0",
        "step format exit 0",
        "step install exit 0",
        "step start exit 0",
    ];
    for step in steps {
        assert!(console.contains(step), "the guest did not run {step:?}:\n{console}");
    }
    assert!(
        console.contains("nic: \tKernel driver in use: vfio-pci"),
        "the NIC is not on vfio-pci:\n{console}"
    );
    // The config names only the NIC: the NVMe drive stays the kernel's, the log on it raw.
    assert!(
        console.contains("nvme: \tKernel driver in use: nvme"),
        "the NVMe drive left the nvme driver:\n{console}"
    );
    assert!(console.contains("log device /dev/nvme0n1: store"), "the log is not on /dev/nvme0n1:\n{console}");
    // Asked for the management NIC (the default route's), bind refused and changed nothing.
    assert!(
        console.contains("step bind-management exit") && !console.contains("step bind-management exit 0"),
        "bind did not refuse the management NIC:\n{console}"
    );

    let sock = UdpSocket::bind(format!("{HOST_IP}:0")).unwrap();
    for i in 0..ACKED_WRITES {
        let (status, _) = call_final(&sock, GUEST, || set_request(i));
        assert_eq!(status, Status::Ok, "SET g-{i}");
    }
    let (ping, ping_rate) = search("ping", &[]);
    let (set, set_rate) = search("set", &["--keys", "1000"]);
    println!("--- load generator against Vigil in the same boot: PING\n{ping}\n--- durable SET\n{set}");
    assert!(testpmd_rate > 0.0 && ping_rate > 0.0 && set_rate > 0.0, "a search found no rate");
    // A search that passed its first trial found only its ceiling: the rate is at least that.
    let at_least =
        |rate: f64| if rate >= SEARCH_CEILING { format!(">= {rate:.0}") } else { format!("{rate:.0}") };
    println!(
        "highest rates with p99 <= 50 ms under TCG (the search's ceiling {SEARCH_CEILING}/s): testpmd \
         reflecting {}/s, Vigil PING {}/s ({:.2} of testpmd), durable SET {}/s ({:.2})",
        at_least(testpmd_rate),
        at_least(ping_rate),
        ping_rate / testpmd_rate,
        at_least(set_rate),
        set_rate / testpmd_rate
    );

    guest.power_cut();
    let mut guest = Guest::boot(&dir, &rootfs, &tap, 2);
    guest.wait_for("vigil: ready:", BOOT_TIMEOUT);
    let second_boot = guest.booted.elapsed();
    guest.wait_for("VIGIL-GUEST: vigil.service is enabled", BOOT_TIMEOUT);
    let console = guest.console_text();
    assert!(
        !console.contains("step format")
            && !console.contains("step start")
            && console.contains("nvme: \tKernel driver in use: nvme"),
        "the second boot formatted, started Vigil itself (not systemd), or the NVMe drive left the nvme \
         driver:\n{console}"
    );
    read_back(&sock, ACKED_WRITES, "the power cut");

    // Vigil alone: more acknowledged writes, then SIGKILL from inside the guest; systemd restarts it.
    let total = ACKED_WRITES + ACKED_WRITES_BEFORE_KILL;
    for i in ACKED_WRITES..total {
        let (status, _) = call_final(&sock, GUEST, || set_request(i));
        assert_eq!(status, Status::Ok, "SET g-{i}");
    }
    let killed = Instant::now();
    guest.command("kill-vigil");
    guest.wait_for("VIGIL-GUEST: kill-vigil: SIGKILL", RESTART_TIMEOUT);
    guest.wait_for_nth("vigil: ready:", 2, RESTART_TIMEOUT);
    let restart = killed.elapsed();
    let console = guest.console_text();
    let since_boot = console.find("VIGIL-GUEST: first boot:").unwrap_or(0);
    println!(
        "--- the guest's console after the power cut, to Vigil serving again after the kill\n{}",
        &console[since_boot..]
    );
    read_back(&sock, total, "Vigil was killed and restarted");
    println!(
        "boot to serving: {:.1} s (first boot: the store formatted on /dev/nvme0n1, the units installed, after \
         {TESTPMD_SECONDS} s of testpmd), {:.1} s (after the power cut: the units started at boot, recovery); \
         restart to serving after SIGKILL to Vigil: {:.1} s (systemd's RestartSec=5 included); {total} \
         acknowledged writes read back",
        first_boot.as_secs_f64(),
        second_boot.as_secs_f64(),
        restart.as_secs_f64()
    );
    if spdk_vigil.is_some() {
        guest.command("compare-logs");
        guest.wait_for("VIGIL-GUEST: compare-logs exit", COMPARE_TIMEOUT);
        report_comparison(&guest.console_text());
    } else {
        println!(
            "SPDK against io_uring: not run ({SPDK_VIGIL_ENV} is not set: SPDK is in no package registry, \
             so the comparison needs a vigil built with --features spdk by hand, docs/DEPLOY.md \"SPDK\")"
        );
    }
    drop(guest);
    drop(tap);
    let _ = std::fs::remove_dir_all(&dir);
}
