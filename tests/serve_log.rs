//! The node's log (issue 13): one line per event, at `log.level` or as `RUST_LOG` filters, and
//! nothing per request at the default level.

mod common;

use common::{
    answers, disk_temp_dir, exchange, free_udp_port, kv_node_config, request, run_vigil_to_exit, Server,
};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;
use vigil::wire::{opcode, Status};

/// Log lines (`<timestamp> <LEVEL> vigil: ...`) of `level` in `output`.
fn log_lines<'a>(output: &'a str, level: &str) -> Vec<&'a str> {
    output.lines().filter(|l| l.contains(&format!(" {level} vigil: "))).collect()
}

fn drive(port: u16) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = format!("127.0.0.1:{port}");
    for i in 0..300u64 {
        let key = format!("k{i}");
        let mut body = (key.len() as u16).to_le_bytes().to_vec();
        body.extend_from_slice(key.as_bytes());
        body.extend_from_slice(b"v");
        let (op, b) = if i % 2 == 0 { (opcode::PING, Vec::new()) } else { (opcode::SET, body) };
        let resp =
            exchange(&sock, &to, &request(&[(op, i + 1, &b)]), Duration::from_secs(5)).expect("an answer");
        assert_eq!(answers(&resp)[0].1, Status::Ok as u8);
    }
}

#[test]
fn at_the_default_level_the_start_is_logged_and_requests_are_not() {
    let dir = disk_temp_dir("serve-log-info");
    let port = free_udp_port();
    let server = Server::start(&dir, &kv_node_config(port, "data", 1_000_000));
    drive(port);
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
    let info = log_lines(&out, "INFO");
    assert!(info.iter().any(|l| l.contains("created store")), "{out}");
    assert_eq!(
        info.iter().filter(|l| l.contains(") recovered: ")).count(),
        2,
        "one line per partition: {out}"
    );
    // 300 requests later: nothing but the start's lines (every line is an event of the start).
    assert!(info.len() <= 4, "lines beyond the start's: {info:#?}");
    assert!(log_lines(&out, "WARN").is_empty() && log_lines(&out, "ERROR").is_empty(), "{out}");
    assert!(out.contains("vigil: ready: "), "the ready line is there whatever the level");
}

#[test]
fn log_level_warn_keeps_only_warnings_and_rust_log_overrides_the_config() {
    let dir = disk_temp_dir("serve-log-warn");
    let port = free_udp_port();
    let config = format!("{}[log]\nlevel = \"warn\"\n", kv_node_config(port, "data", 1_000_000));
    let server = Server::start(&dir, &config);
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
    assert!(log_lines(&out, "INFO").is_empty(), "{out}");
    assert!(out.contains("vigil: ready: "));
    // The same config with RUST_LOG=vigil=info: the start's lines are back.
    let path = dir.join("vigil.toml");
    let mut child = Command::new(common::vigil_bin())
        .current_dir(&dir)
        .env("RUST_LOG", "vigil=info")
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let _ = child.wait();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(log_lines(&err, "INFO").iter().any(|l| l.contains(") recovered: ")), "{err}");
}

#[test]
fn an_unknown_level_is_refused_naming_the_key() {
    let dir = disk_temp_dir("serve-log-bad");
    let port = free_udp_port();
    std::fs::write(
        dir.join("vigil.toml"),
        format!("{}[log]\nlevel = \"loud\"\n", kv_node_config(port, "data", 1_000_000)),
    )
    .unwrap();
    let (status, out) =
        run_vigil_to_exit(&dir, &["serve", "--config", "vigil.toml"], Duration::from_secs(20));
    assert!(!status.success(), "{out}");
    assert!(out.contains("log.level") && out.contains("loud"), "{out}");
    assert!(!dir.join("data").exists(), "a refused start creates nothing");
}
