//! `vigil serve` on the kernel-socket backend, over loopback: PING and ECHO, multi-request
//! datagrams, malformed traffic answered or dropped while valid traffic flows, and a clean SIGINT
//! shutdown that prints the final counters.

mod common;

use common::*;
use std::net::UdpSocket;
use std::time::Duration;
use vigil::wire::opcode;

fn kernel_config(port: u16) -> String {
    vigil::config::DEV_TOML.replace("port = 9000", &format!("port = {port}"))
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
