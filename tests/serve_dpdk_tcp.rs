//! TCP clients on a DPDK-owned address through the exception path: Vigil's data port is a
//! `net_tap` whose kernel side the test moves into a network namespace of its own (the client's
//! host), and `dpdk.exception_iface` makes a second tap in the root namespace carrying the port's
//! MAC and IP. A redis-cli in the namespace reaches Vigil's RESP port over TCP: its frames enter the
//! DPDK port, are not the fast path's (TCP), go to the kernel through the exception interface, the
//! acceptor serves them through kernel sockets, and the kernel's answers leave through the DPDK
//! port. The UDP fast path keeps answering beside it (ping). Needs root and DPDK: it fails loudly
//! without them (CI runs it as root).

mod common;

use common::*;
use std::process::Command;

/// Runs `ip args`, asserting success.
fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("ip (iproute2) must be installed");
    assert!(st.success(), "ip {args:?} failed");
}

/// A network namespace this test created, deleted when dropped.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn tcp_clients_reach_a_dpdk_port_through_the_exception_path() {
    require_root_and_dpdk("tcp_clients_reach_a_dpdk_port_through_the_exception_path");
    let cli = Command::new("sh").args(["-c", "command -v redis-cli"]).output().unwrap();
    assert!(cli.status.success(), "redis-cli is missing: install redis-tools (scripts/test does)");
    let pid = std::process::id();
    let (port_iface, exc_iface, ns) =
        (format!("vgm{}", pid % 100_000), format!("vgx{}", pid % 100_000), format!("vigil-tcp-{pid}"));
    let net = 80 + pid as usize % 100;
    let (vigil_ip, client_ip) = (format!("10.81.{net}.1"), format!("10.81.{net}.2"));
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let dir = temp_dir("dpdk-tcp");
    let config = dpdk_node_config(
        cpus - 1,
        &vigil_ip,
        "net_tap0",
        &format!("net_tap0,iface={port_iface},mac=02:56:47:00:03:02"),
        &format!("exception_iface = \"{exc_iface}\"\n"),
        &format!("vigil-test-tcp-{pid}"),
    );
    let server = Server::start(&dir, &config);
    assert!(server.ready_line.contains("exception path"), "{}", server.ready_line);

    // The client's host: a namespace holding the data port's kernel side.
    ip(&["netns", "add", &ns]);
    let _ns = Netns(ns.clone());
    ip(&["link", "set", &port_iface, "netns", &ns]);
    for args in [
        vec!["addr", "add", &format!("{client_ip}/24"), "dev", &port_iface],
        vec!["link", "set", &port_iface, "up"],
        vec!["link", "set", "lo", "up"],
    ] {
        let mut full = vec!["netns", "exec", &ns, "ip"];
        full.extend(args);
        ip(&full);
    }
    let in_ns = |args: &[&str]| -> String {
        let out = Command::new("ip").args(["netns", "exec", &ns]).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    // The fast path still answers ICMP and ARP itself.
    let ping = in_ns(&["ping", "-c", "2", "-i", "0.2", "-W", "2", &vigil_ip]);
    assert!(ping.contains("2 received"), "{ping}");
    // RESP over TCP through the exception path.
    let cli = |args: &[&str]| -> String {
        let mut full = vec!["redis-cli", "-h", &vigil_ip, "-p", "9000"];
        full.extend(args);
        in_ns(&full)
    };
    assert_eq!(cli(&["ping"]), "PONG\n");
    assert_eq!(cli(&["set", "through", "the-kernel"]), "OK\n");
    assert_eq!(cli(&["get", "through"]), "the-kernel\n");
    assert_eq!(cli(&["incrby", "n", "7"]), "7\n");

    let (status, out) = server.stop();
    assert!(status.success(), "vigil exited with {status}: {out}");
    let io_line = out.lines().find(|l| l.contains("shard 0 io:")).expect("io counters line");
    assert!(counter(io_line, "exception_to_kernel") > 0, "{io_line}");
    assert!(counter(io_line, "exception_from_kernel") > 0, "{io_line}");
    assert!(counter(io_line, "icmp_echo_replies") >= 2, "{io_line}");
    assert!(out.contains("tcp acceptor: accepted 4 handed 4"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
    remove_dpdk_runtime_dirs();
}
