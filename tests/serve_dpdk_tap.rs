//! `vigil serve` on DPDK's `net_tap`: the kernel sees a tap interface, so the kernel's own `ping`
//! must get ICMP echo replies from Vigil's fast-path stack, a kernel UDP client must get ECHO
//! answers, and malformed datagrams must be answered or dropped while valid traffic keeps flowing.
//! With two shards, each queue pair of the port is served by its own shard.
//! Needs root and DPDK: it fails loudly without them (CI runs it as root).

mod common;

use common::*;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use vigil::wire::opcode;

/// A running node on a fresh, configured tap interface.
struct TapNode {
    server: Server,
    vigil_ip: String,
    host_ip: String,
    dir: PathBuf,
}

/// Starts `vigil serve` with `shards` shards on a tap interface of its own, pinned to the last
/// cores, and gives the interface the host's address.
fn start_tap_node(name: &str, shards: usize) -> TapNode {
    start_tap_node_with(name, shards, "")
}

/// `start_tap_node` with `extra` appended to the config.
fn start_tap_node_with(name: &str, shards: usize, extra: &str) -> TapNode {
    let pid = std::process::id();
    let iface = format!("vg{name}{}", pid % 10_000);
    let net = 100 + (pid as usize + shards) % 100;
    let (vigil_ip, host_ip) = (format!("10.79.{net}.1"), format!("10.79.{net}.2"));
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    assert!(
        cpus >= shards,
        "\n\n*** {name} needs {shards} CPUs (one per shard); this machine has {cpus} ***\n"
    );
    let cores: Vec<String> = (cpus - shards..cpus).map(|c| c.to_string()).collect();
    let dir = temp_dir(name);
    let config = format!(
        r#"
[node]
shards = {shards}
cores = [{cores}]
[net]
backend = "dpdk"
port = 9000
[dpdk]
ip = "{vigil_ip}"
port = "net_tap0"
vdevs = ["net_tap0,iface={iface},mac=02:56:47:00:01:02"]
{tail}"#,
        tail = dpdk_test_tail(&format!("vigil-test-{name}-{pid}")),
        cores = cores.join(", ")
    ) + extra;
    let server = Server::start(&dir, &config);
    assert!(server.ready_line.contains("backend=dpdk"), "{}", server.ready_line);
    assert!(server.ready_line.contains(&format!("shards={shards}")), "{}", server.ready_line);
    for args in
        [vec!["addr", "add", &format!("{host_ip}/24"), "dev", &iface], vec!["link", "set", &iface, "up"]]
    {
        let st = Command::new("ip").args(&args).status().expect("ip (iproute2) must be installed");
        assert!(st.success(), "ip {args:?} failed");
    }
    TapNode { server, vigil_ip, host_ip, dir }
}

#[test]
fn dpdk_tap_answers_kernel_ping_and_udp_echo() {
    require_root_and_dpdk("dpdk_tap_answers_kernel_ping_and_udp_echo");
    let metrics_port = free_tcp_port();
    let metrics = format!("[metrics]\nlisten = [\"127.0.0.1:{metrics_port}\"]\npublish_ms = 50\n");
    let TapNode { server, vigil_ip, host_ip, dir } = start_tap_node_with("t1", 1, &metrics);

    let ping = Command::new("ping")
        .args(["-c", "3", "-i", "0.2", "-W", "2", &vigil_ip])
        .output()
        .expect("ping (iputils-ping) must be installed: scripts/test installs it");
    let ping_out = String::from_utf8_lossy(&ping.stdout);
    eprintln!("{ping_out}");
    assert!(ping.status.success(), "kernel ping got no replies from the DPDK port:\n{ping_out}");
    assert!(ping_out.contains("3 received"), "{ping_out}");

    let sock = UdpSocket::bind(format!("{host_ip}:0")).unwrap();
    let to = format!("{vigil_ip}:9000");
    let body = b"through the tap and back".to_vec();
    let resp = exchange(&sock, &to, &request(&[(opcode::ECHO, 11, &body)]), Duration::from_secs(5))
        .expect("ECHO answer over the tap");
    assert_eq!(answers(&resp), vec![(opcode::ECHO, 0, 11, body)]);

    let (valid, answered, dropped) = malformed_traffic_check(&sock, &to, 35);
    assert_eq!(valid, 35);
    assert!(answered > 0 && dropped > 0, "{answered} answered, {dropped} dropped");

    // The port's counters, read from DPDK by the metrics thread while the shard polls.
    let text = scrape_metrics(metrics_port);
    let rx = metric_sum(&text, "vigil_port_packets_total", &["direction=\"rx\""]);
    let tx = metric_sum(&text, "vigil_port_packets_total", &["direction=\"tx\""]);
    assert!(rx >= 3.0 + 1.0 + 35.0 && tx >= 3.0, "the tap port counted {rx} frames in, {tx} out:\n{text}");
    assert!(text.contains("vigil_port_xstats_total{name="), "the driver's xstats:\n{text}");

    let (status, out) = server.stop();
    assert!(status.success(), "vigil exited with {status}");
    let io_line = out.lines().find(|l| l.contains("shard 0 io:")).expect("io counters line");
    assert!(counter(io_line, "icmp_echo_replies") >= 3, "{io_line}");
    assert!(counter(io_line, "arp_replies") >= 1, "{io_line}");
    let _ = std::fs::remove_dir_all(dir);
    remove_dpdk_runtime_dirs();
}

/// Two shards, two queue pairs on one tap port: flows from many client sockets are spread over the
/// queues by the kernel's tap queue selection, and each shard answers the datagrams of its queue.
#[test]
fn dpdk_tap_two_shards_each_answer_their_queue() {
    require_root_and_dpdk("dpdk_tap_two_shards_each_answer_their_queue");
    let TapNode { server, vigil_ip, host_ip, dir } = start_tap_node("t2", 2);
    let to = format!("{vigil_ip}:9000");
    for i in 0..64u64 {
        let sock = UdpSocket::bind(format!("{host_ip}:0")).unwrap();
        let resp = exchange(&sock, &to, &request(&[(opcode::PING, i, b"")]), Duration::from_secs(5))
            .unwrap_or_else(|| panic!("flow {i} unanswered"));
        assert_eq!(answers(&resp), vec![(opcode::PING, 0, i, vec![])]);
    }
    let (status, out) = server.stop();
    assert!(status.success(), "vigil exited with {status}");
    let requests = |shard: usize| -> u64 {
        let line = out.lines().find(|l| l.contains(&format!("shard {shard}: polls"))).expect("shard line");
        counter(line, "requests")
    };
    let (r0, r1) = (requests(0), requests(1));
    assert_eq!(r0 + r1, 64, "{out}");
    assert!(r0 > 0 && r1 > 0, "64 flows all landed on one queue ({r0}, {r1}):\n{out}");
    let _ = std::fs::remove_dir_all(dir);
    remove_dpdk_runtime_dirs();
}
