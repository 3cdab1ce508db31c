//! Shared helpers for the integration tests that run the real `vigil` binary.
//!
//! Each test writes its own config into a temp directory, starts `vigil serve` as a child process,
//! waits (bounded) for its "ready" line, and stops it by PID with SIGINT when done, so the final
//! counters can be checked. Tests that need DPDK or root call `require_root_and_dpdk`, which fails
//! loudly instead of skipping: CI runs as root and must run them.
#![allow(dead_code)]

/// An SPDK NVMe/TCP target for the SPDK backend's tests (`spdk` feature). Plain std, so not behind
/// `#[cfg(feature = "spdk")]`: the client's tests include this file too, and in a crate without that
/// feature the cfg is an `unexpected_cfgs` error under `-D warnings` (an `allow` on the item does
/// not reach it).
pub mod nvmf;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use vigil::wire::{self, DatagramWriter};

/// Fails the test, loudly, unless it runs as root with DPDK installed.
pub fn require_root_and_dpdk(test: &str) {
    // SAFETY-free check: geteuid through the `id` tool keeps tests free of unsafe.
    let uid = Command::new("id").arg("-u").output().expect("running id -u");
    let uid = String::from_utf8_lossy(&uid.stdout).trim().to_string();
    assert_eq!(
        uid, "0",
        "\n\n*** {test} NEEDS ROOT (DPDK vdevs, tap devices). It is not skipped: run the suite as root, \
         as scripts/test and CI do. ***\n"
    );
    let dpdk = Command::new("pkg-config").args(["--exists", "libdpdk"]).status();
    assert!(
        matches!(dpdk, Ok(s) if s.success()),
        "\n\n*** {test} NEEDS DPDK (apt-get install dpdk libdpdk-dev); scripts/test installs it. ***\n"
    );
}

/// A fresh directory for one test's files.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating temp dir");
    dir
}

/// Removes the EAL runtime directories (`/var/run/dpdk/<file-prefix>`) that this test process's
/// children left: `rte_eal_cleanup` does not, and test prefixes are unique per run.
pub fn remove_dpdk_runtime_dirs() {
    let pid = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/var/run/dpdk") else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("vigil-test-") && name.contains(&pid) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A fresh directory for one test's files on a real filesystem, for backends that open files with
/// O_DIRECT (which tmpfs refuses): under the temp dir unless that is tmpfs, else under cargo's
/// target tmp dir (`CARGO_TARGET_TMPDIR`).
pub fn disk_temp_dir(name: &str) -> PathBuf {
    let base = std::env::temp_dir();
    let fs_type = Command::new("stat").args(["-f", "-c", "%T"]).arg(&base).output();
    let on_tmpfs = matches!(fs_type, Ok(o) if String::from_utf8_lossy(&o.stdout).trim() == "tmpfs");
    let base = if on_tmpfs { PathBuf::from(env!("CARGO_TARGET_TMPDIR")) } else { base };
    let dir = base.join(format!("vigil-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating temp dir");
    dir
}

/// The line of `node_config`'s `[auth]` table: requests without credentials may read and write
/// (loopback only; tests of access control replace it, `serve_tcp_auth.rs`).
pub const ANONYMOUS_READ_WRITE: &str = "anonymous = \"read-write\"";

/// A two-shard node on kernel sockets on loopback `port`, its log and snapshots in `data_dir`
/// (io_uring, durable; relative to the test's directory when relative), with small log segments and
/// a snapshot every `snapshot_every_entries` entries so tests reach recycling and snapshot recovery.
pub fn kv_node_config(port: u16, data_dir: &str, snapshot_every_entries: u64) -> String {
    node_config(port, data_dir, snapshot_every_entries, 2, None)
}

/// `kv_node_config` with `shards` shards and, when given, `partitions` partitions (else one per
/// shard, and no `partitions` key, so a test may add its own).
pub fn node_config(
    port: u16,
    data_dir: &str,
    snapshot_every_entries: u64,
    shards: usize,
    partitions: Option<u32>,
) -> String {
    let partitions = partitions.map_or(String::new(), |p| format!("partitions = {p}\n"));
    format!(
        r#"[node]
shards = {shards}
cores = []
[net]
backend = "kernel"
port = {port}
[kernel]
bind_ip = "127.0.0.1"
idle_wait_us = 200
recv_buffer_bytes = 4194304
[auth]
{ANONYMOUS_READ_WRITE}
[storage]
backend = "uring"
dir = "{data_dir}"
segment_blocks = 256
segment_count = 16
snapshot_every_entries = {snapshot_every_entries}
{partitions}"#
    )
}

/// Runs `cmd` to its end, failing the test with its output unless it succeeds; returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?} (is it installed?): {e}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{stdout}\n{stderr}", out.status);
    stdout.into_owned()
}

/// `run_ok` of the tool `cmd` with `args`.
pub fn run_tool(cmd: &str, args: &[&str]) -> String {
    run_ok(Command::new(cmd).args(args))
}

/// The body of a KV SET of `key` to `value`.
pub fn set_body(key: &[u8], value: &[u8]) -> Vec<u8> {
    let op = vigil::kv::Op::Set { key, value };
    let mut out = vec![0; vigil::kv::protocol::request_body_len(&op)];
    vigil::kv::protocol::encode_write_body(&op, &mut out).unwrap();
    out
}

/// Runs `vigil <args>` in `dir` to its end and returns its exit status and output (stdout then
/// stderr). Bounded: a `vigil` still running after `timeout` (a start that should have been
/// refused) is killed and the test fails.
pub fn run_vigil_to_exit(dir: &Path, args: &[&str], timeout: Duration) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(vigil_bin())
        .current_dir(dir)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning vigil");
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "vigil {args:?} was still running after {timeout:?} (it should have refused and exited):\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("[vigil {args:?}] {text}");
    (out.status, text)
}

/// The embedded dev config (config/dev.toml) on `port`, without its web and metrics ports (9002
/// and 9001 are one each for the whole machine; tests run side by side).
pub fn dev_config(port: u16) -> String {
    let web = "web_listen = [\"127.0.0.1:9002\"]";
    let metrics = "listen = [\"127.0.0.1:9001\"]";
    assert!(vigil::config::DEV_TOML.contains(web), "config/dev.toml names its web port so");
    assert!(vigil::config::DEV_TOML.contains(metrics), "config/dev.toml names its metrics port so");
    vigil::config::DEV_TOML
        .replace("port = 9000", &format!("port = {port}"))
        .replace(web, "web_listen = []")
        .replace(metrics, "listen = []")
}

/// The Python that can import `module` (a PyPI package): $VIGIL_PYTHON, else target/py/bin/python3,
/// the virtual environment scripts/test makes (`ensure_python_packages` in scripts/lib.sh); fails
/// the test, loudly, when it cannot.
pub fn python_with(module: &str) -> PathBuf {
    let python = std::env::var_os("VIGIL_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/py/bin/python3"));
    let ok = Command::new(&python).args(["-c", &format!("import {module}")]).status().map(|s| s.success());
    assert!(
        matches!(ok, Ok(true)),
        "{} cannot import {module}: run scripts/test (it makes target/py with pip install redis blake3) or set VIGIL_PYTHON",
        python.display()
    );
    python
}

/// This machine's address toward its default route: not loopback, and local. A socket bound to it
/// reaches a node on 127.0.0.1 (or on this address) from a source that is not loopback: a source
/// that must prove its address. Fails the test, loudly, on a machine without one.
pub fn non_loopback_address() -> std::net::Ipv4Addr {
    let probe = UdpSocket::bind("0.0.0.0:0").unwrap();
    // connect() on UDP sends nothing: it only picks the route and the source address.
    probe.connect("192.0.2.1:9").expect("this test needs a default route to pick a non-loopback source");
    match probe.local_addr().unwrap().ip() {
        std::net::IpAddr::V4(ip) if !ip.is_loopback() && !ip.is_unspecified() => ip,
        other => panic!("no non-loopback IPv4 address on this machine ({other}): the test cannot run"),
    }
}

/// A port that is free right now on loopback for both UDP and TCP (a node serves both on it).
pub fn free_udp_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A running `vigil serve`; stopped with SIGINT (or killed) when dropped.
pub struct Server {
    pub child: Child,
    pub ready_line: String,
    output: mpsc::Receiver<String>,
    pub lines: Vec<String>,
}

/// The workspace's `vigil` binary: cargo names it to the vigil package's own tests; the other
/// packages' tests (the client's, which include this file) find it next to their directory
/// (`target/<profile>/vigil`, built by `cargo build --workspace --bins`).
pub fn vigil_bin() -> PathBuf {
    if let Some(bin) = option_env!("CARGO_BIN_EXE_vigil") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("the test's path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let bin = dir.join("vigil");
    assert!(
        bin.exists(),
        "\n\n*** {} is missing: `cargo build --workspace --bins` first ***\n",
        bin.display()
    );
    bin
}

/// The path of a binary built from this workspace next to the `vigil` binary.
pub fn workspace_bin(name: &str) -> PathBuf {
    let path = vigil_bin().with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace's binaries first (`cargo build --workspace --bins`; scripts/test does)",
        path.display()
    );
    path
}

impl Server {
    /// Starts `vigil serve --config <dir>/vigil.toml` with `config` as the file's text.
    pub fn start(dir: &Path, config: &str) -> Server {
        let path = dir.join("vigil.toml");
        std::fs::write(&path, config).unwrap();
        // Relative paths in the config (`storage.dir = "vigil-data"`) land in the test's directory.
        let mut child = Command::new(vigil_bin())
            .current_dir(dir)
            .args(["serve", "--config"])
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning vigil");
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let mut server = Server { child, ready_line: String::new(), output: rx, lines: Vec::new() };
        server.ready_line = server.wait_for_line("vigil: ready:", Duration::from_secs(30));
        server
    }

    /// Waits for an output line containing `needle`; panics with everything seen after `timeout`.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(line) => {
                    eprintln!("[vigil] {line}");
                    self.lines.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "no line with {needle:?} within {timeout:?} (exit: {status:?}); output:\n{}",
                        self.lines.join("\n")
                    )
                }
            }
        }
    }

    /// Sends SIGINT by PID, waits (bounded) for exit, and returns the whole output.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-INT", &pid]).status().expect("kill -INT");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "vigil did not exit within 20 s of SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        };
        // Drain what is left of the output.
        while let Ok(line) = self.output.recv_timeout(Duration::from_millis(500)) {
            eprintln!("[vigil] {line}");
            self.lines.push(line);
        }
        let out = self.lines.join("\n");
        (status, out)
    }
}

impl Server {
    /// Kills the process with SIGKILL (no chance to flush or clean up), reaps it, and returns its
    /// exit status and whole output. Drop has nothing left to do afterwards.
    pub fn kill(mut self) -> (std::process::ExitStatus, String) {
        // An error here means it had already exited; `wait` reports how.
        let _ = self.child.kill();
        let status = self.child.wait().expect("reaping vigil after SIGKILL");
        // The pipes close with the process: read to their end (bounded).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(line) => {
                    eprintln!("[vigil] {line}");
                    self.lines.push(line);
                }
                Err(_) => break,
            }
        }
        (status, self.lines.join("\n"))
    }

    /// The output so far, taking in the lines that arrived since the last look without waiting.
    pub fn output_so_far(&mut self) -> String {
        while let Ok(line) = self.output.try_recv() {
            eprintln!("[vigil] {line}");
            self.lines.push(line);
        }
        self.lines.join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A request datagram with the given frames (opcode, request id, body).
pub fn request(frames: &[(u8, u64, &[u8])]) -> Vec<u8> {
    let mut buf = vec![0u8; 65_536];
    let mut w = DatagramWriter::request(&mut buf, 7).unwrap();
    for (op, id, body) in frames {
        w.push(*op, 0, *id, body).unwrap();
    }
    let n = w.finish();
    buf.truncate(n);
    buf
}

/// The answers in a response datagram: (opcode, status, request id, body).
pub fn answers(resp: &[u8]) -> Vec<(u8, u8, u64, Vec<u8>)> {
    let h = wire::decode_header(resp).expect("response header");
    assert!(h.is_response());
    wire::Frames::new(resp, h.count)
        .map(|f| {
            let f = f.expect("response frame");
            (f.opcode, f.status, f.request_id, f.body.to_vec())
        })
        .collect()
}

/// Sends `req` and waits up to `timeout` for one response.
pub fn exchange(sock: &UdpSocket, to: &str, req: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    sock.set_read_timeout(Some(timeout)).unwrap();
    sock.send_to(req, to).unwrap();
    let mut buf = vec![0u8; 65_536];
    match sock.recv(&mut buf) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// Sends the datagram `make` builds (again for each try: a signed datagram is never sent twice)
/// until its one answer is neither `NOT_LEADER` nor `BUSY` (nothing executed: retried after 20 ms),
/// at most 20 s; returns that answer's status and body.
pub fn call_final(sock: &UdpSocket, to: &str, mut make: impl FnMut() -> Vec<u8>) -> (wire::Status, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "no final answer within 20 s");
        let Some(resp) = exchange(sock, to, &make(), Duration::from_secs(2)) else { continue };
        let got = answers(&resp);
        assert_eq!(got.len(), 1, "one answer: {got:?}");
        let status = wire::Status::from_u8(got[0].1).expect("a known status");
        if status != wire::Status::NotLeader && status != wire::Status::Busy {
            return (status, got[0].3.clone());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A tiny deterministic generator (xorshift) so the garbage is reproducible from a printed seed.
pub struct XorShift(pub u64);
impl XorShift {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Sends hostile datagrams interleaved with valid PINGs to `to`, and checks that every PING is
/// answered and that every hostile datagram gets a well-formed error answer or nothing.
/// Returns (valid answered, hostile answered, hostile dropped).
pub fn malformed_traffic_check(sock: &UdpSocket, to: &str, rounds: u64) -> (u64, u64, u64) {
    let seed = 0x5EED_0000_0000_0001u64;
    eprintln!("malformed traffic seed {seed:#x}");
    let mut rng = XorShift(seed);
    let (mut valid, mut hostile_answered, mut hostile_dropped) = (0, 0, 0);
    for round in 0..rounds {
        let hostile = hostile_datagram(&mut rng, round);
        match exchange(sock, to, &hostile, Duration::from_millis(150)) {
            Some(resp) => {
                let got = answers(&resp);
                assert!(!got.is_empty(), "round {round}: an answer without frames");
                hostile_answered += 1;
            }
            None => hostile_dropped += 1,
        }
        let ping = request(&[(wire::opcode::PING, round, b"")]);
        let resp = exchange(sock, to, &ping, Duration::from_secs(2))
            .unwrap_or_else(|| panic!("round {round}: valid PING unanswered after a hostile datagram"));
        assert_eq!(answers(&resp), vec![(wire::opcode::PING, 0, round, vec![])], "round {round}");
        valid += 1;
    }
    (valid, hostile_answered, hostile_dropped)
}

/// One hostile datagram: random bytes, a truncated header, an oversized count, a wrong version,
/// a body length past the end, an unknown opcode, trailing junk.
pub fn hostile_datagram(rng: &mut XorShift, round: u64) -> Vec<u8> {
    let good = request(&[(wire::opcode::ECHO, round, b"payload")]);
    let n = (rng.next_u64() % 200) as usize;
    match round % 7 {
        0 => rng.bytes(n.max(1)),
        1 => good[..(rng.next_u64() as usize % wire::HEADER_LEN)].to_vec(),
        2 => {
            let mut d = good.clone();
            d[4..6].copy_from_slice(&u16::MAX.to_le_bytes());
            d
        }
        3 => {
            let mut d = good.clone();
            d[2] = 2 + (rng.next_u64() % 250) as u8;
            d
        }
        4 => {
            let mut d = good.clone();
            d[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
            d
        }
        5 => request(&[(0xEE, round, b"")]),
        _ => {
            let mut d = good.clone();
            d.extend_from_slice(&rng.bytes(n.max(1)));
            d
        }
    }
}

/// The number after `name ` in `line` (a line of the shutdown report).
pub fn counter(line: &str, name: &str) -> u64 {
    let at = line.find(&format!("{name} ")).unwrap_or_else(|| panic!("no `{name}` in {line:?}"));
    let rest = &line[at + name.len() + 1..];
    rest.split_whitespace().next().unwrap().parse().unwrap_or_else(|_| panic!("`{name}` in {line:?}"))
}

/// The end of a DPDK test node's config: the EAL without PCI or hugepages under `file_prefix`, the
/// pool, and a small log in memory.
/// A one-shard node on DPDK port `port` (created from `vdev`) at `ip`, pinned to `core`, with
/// `dpdk_extra` lines added to its `[dpdk]` table and `dpdk_test_tail`'s settings.
pub fn dpdk_node_config(
    core: usize,
    ip: &str,
    port: &str,
    vdev: &str,
    dpdk_extra: &str,
    file_prefix: &str,
) -> String {
    format!(
        r#"
[node]
shards = 1
cores = [{core}]
[net]
backend = "dpdk"
port = 9000
[dpdk]
ip = "{ip}"
port = "{port}"
vdevs = ["{vdev}"]
{dpdk_extra}{tail}"#,
        tail = dpdk_test_tail(file_prefix)
    )
}

pub fn dpdk_test_tail(file_prefix: &str) -> String {
    format!(
        r#"no_pci = true
no_huge = true
memory_mb = 256
file_prefix = "{file_prefix}"
mbufs_per_shard = 8191
[storage]
backend = "memory"
segment_blocks = 64
segment_count = 4
[auth]
anonymous = "read-write"
protected_mode = false
trusted_sources = ["10.0.0.0/8"]
"#
    )
}

/// One HTTP exchange on loopback `port` with `head` sent as is (the server closes after its
/// answer): the status code and the body; `None` when nothing listens there (yet).
pub fn try_http(port: u16, head: &str) -> Option<(u16, String)> {
    http_exchange(port, head.as_bytes(), Duration::from_secs(10)).map(|(status, _, body)| (status, body))
}

/// One HTTP exchange on loopback `port` with `request` sent as is, read until the server closes
/// (or `timeout` passes without a byte): the status code, the head and the body; `None` when
/// nothing listens there.
pub fn http_exchange(port: u16, request: &[u8], timeout: Duration) -> Option<(u16, String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(timeout)).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Some((status, head.to_string(), body.to_string()))
}

/// A TCP port free on loopback right now.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A node's `/metrics` on loopback `port` (Prometheus text).
pub fn scrape_metrics(port: u16) -> String {
    let (status, body) =
        try_http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").expect("the metrics port");
    assert_eq!(status, 200, "{body}");
    body
}

/// The sum of a metric's samples in Prometheus text whose labels contain every one of `with`.
pub fn metric_sum(text: &str, name: &str, with: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| with.iter().all(|w| l.contains(w)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Runs a program of the `prometheus` package; fails loudly when it is not installed.
pub fn prometheus_tool(name: &str) -> Command {
    let found = Command::new("sh").args(["-c", &format!("command -v {name}")]).output().unwrap();
    assert!(
        found.status.success(),
        "{name} is missing: apt-get install prometheus (scripts/test installs it)"
    );
    Command::new(name)
}

/// Checks a scrape's text with `promtool check metrics`: it must find nothing.
pub fn promtool_check(text: &str, dir: &Path) {
    let path = dir.join("scrape.txt");
    std::fs::write(&path, text).unwrap();
    let out = prometheus_tool("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");
}
