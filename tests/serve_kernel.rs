//! `vigil serve` on the kernel-socket backend, over loopback: PING and ECHO, multi-request
//! datagrams, malformed traffic answered or dropped while valid traffic flows, and a clean SIGINT
//! shutdown that prints the final counters.

mod common;

use common::*;
use std::net::UdpSocket;
use std::time::Duration;
use vigil::wire::opcode;

fn kernel_config(port: u16) -> String {
    dev_config(port)
}

#[test]
fn kernel_backend_serves_ping_echo_and_survives_garbage() {
    let dir = temp_dir("kernel");
    let port = free_udp_port();
    let server = Server::start(&dir, &kernel_config(port));
    assert!(server.ready_line.contains("backend=kernel"), "{}", server.ready_line);
    let to = format!("127.0.0.1:{port}");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();

    let resp =
        exchange(&sock, &to, &request(&[(opcode::PING, 1, b"")]), Duration::from_secs(5)).expect("PING");
    assert_eq!(answers(&resp), vec![(opcode::PING, 0, 1, vec![])]);

    let body = vec![0xA5u8; 1000];
    let req = request(&[(opcode::ECHO, 2, &body), (opcode::PING, 3, b""), (0x7F, 4, b"")]);
    let resp = exchange(&sock, &to, &req, Duration::from_secs(5)).expect("ECHO");
    assert_eq!(
        answers(&resp),
        vec![(opcode::ECHO, 0, 2, body.clone()), (opcode::PING, 0, 3, vec![]), (0x7F, 1, 4, vec![])]
    );

    let (valid, answered, dropped) = malformed_traffic_check(&sock, &to, 70);
    assert_eq!(valid, 70);
    assert!(answered > 0 && dropped > 0, "both answers and drops expected: {answered} {dropped}");

    let (status, out) = server.stop();
    assert!(status.success(), "vigil exited with {status}");
    assert!(out.contains("final counters"), "{out}");
    // 1 + 70 valid PINGs, plus one in the multi-request datagram.
    assert!(out.contains("ping: 72 calls"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_config_fails_fast_naming_the_key() {
    let dir = temp_dir("badconfig");
    let path = dir.join("bad.toml");
    std::fs::write(&path, vigil::config::DEV_TOML.replace("burst_size_max = 32", "burst_size_max = 0"))
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("net.burst_size_max"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn two_kernel_shards_share_the_port_with_reuseport() {
    let dir = temp_dir("kernel2");
    let port = free_udp_port();
    let config = kernel_config(port).replace("shards = 1", "shards = 2");
    let server = Server::start(&dir, &config);
    assert!(server.ready_line.contains("shards=2"), "{}", server.ready_line);
    let to = format!("127.0.0.1:{port}");
    // Many client sockets, so the kernel's reuseport hash spreads them over both shards.
    for i in 0..32u64 {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let resp = exchange(&sock, &to, &request(&[(opcode::PING, i, b"")]), Duration::from_secs(5))
            .unwrap_or_else(|| panic!("client {i} unanswered"));
        assert_eq!(answers(&resp), vec![(opcode::PING, 0, i, vec![])]);
    }
    let (status, out) = server.stop();
    assert!(status.success());
    assert!(out.contains("shard 0:") && out.contains("shard 1:"), "{out}");
    assert!(out.contains("ping: 32 calls"), "summed over shards:\n{out}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A DPDK config whose device EAL cannot create: with `fallback = "kernel"` the node says why and
/// serves on kernel sockets; without it, it fails with the DPDK error.
fn unstartable_dpdk_config(port: u16, fallback: &str) -> String {
    format!(
        r#"
[node]
shards = 1
cores = [0]
[net]
backend = "dpdk"
fallback = "{fallback}"
port = {port}
[kernel]
bind_ip = "127.0.0.1"
[dpdk]
ip = "10.77.0.1"
port = "net_bogus0"
vdevs = ["net_bogus0"]
no_pci = true
no_huge = true
memory_mb = 128
file_prefix = "vigil-test-fallback-{pid}"
[auth]
anonymous = "read-write"
protected_mode = false
[storage]
backend = "memory"
segment_blocks = 64
segment_count = 4
"#,
        pid = std::process::id()
    )
}

#[test]
fn dpdk_that_cannot_start_falls_back_to_kernel_sockets_saying_why() {
    let dir = temp_dir("fallback");
    let port = free_udp_port();
    let server = Server::start(&dir, &unstartable_dpdk_config(port, "kernel"));
    assert!(server.ready_line.contains("backend=kernel-fallback"), "{}", server.ready_line);
    assert!(server.lines.iter().any(|l| l.contains("DPDK could not start")), "{:?}", server.lines);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let resp = exchange(
        &sock,
        &format!("127.0.0.1:{port}"),
        &request(&[(opcode::PING, 5, b"")]),
        Duration::from_secs(5),
    )
    .expect("PING over the fallback");
    assert_eq!(answers(&resp), vec![(opcode::PING, 0, 5, vec![])]);
    let (status, _) = server.stop();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn dpdk_that_cannot_start_without_fallback_fails_with_the_reason() {
    let dir = temp_dir("nofallback");
    let path = dir.join("vigil.toml");
    std::fs::write(&path, unstartable_dpdk_config(free_udp_port(), "none")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dpdk backend") && err.contains("EAL init failed"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
