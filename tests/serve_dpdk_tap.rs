//! `vigil serve` on DPDK's `net_tap`: the kernel sees a tap interface, so the kernel's own `ping`
//! must get ICMP echo replies from Vigil's fast-path stack, a kernel UDP client must get ECHO
//! answers, and malformed datagrams must be answered or dropped while valid traffic keeps flowing.
//! Needs root and DPDK: it fails loudly without them (CI runs it as root).

mod common;

use common::*;
use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;
use vigil::wire::opcode;

fn last_core() -> usize {
    std::thread::available_parallelism().map(|n| n.get() - 1).unwrap_or(0)
}

#[test]
fn dpdk_tap_answers_kernel_ping_and_udp_echo() {
    require_root_and_dpdk("dpdk_tap_answers_kernel_ping_and_udp_echo");
    let pid = std::process::id();
    let iface = format!("vgt{}", pid % 100_000);
    let net = 100 + pid % 100;
    let (vigil_ip, host_ip) = (format!("10.79.{net}.1"), format!("10.79.{net}.2"));
    let dir = temp_dir("tap");
    let config = format!(
        r#"
[node]
shards = 1
cores = [{core}]
[net]
backend = "dpdk"
port = 9000
[dpdk]
ip = "{vigil_ip}"
port = "net_tap0"
vdevs = ["net_tap0,iface={iface},mac=02:56:47:00:01:02"]
no_pci = true
no_huge = true
memory_mb = 256
file_prefix = "vigil-test-tap-{pid}"
mbufs_per_shard = 4095
"#,
        core = last_core()
    );
    let server = Server::start(&dir, &config);
    assert!(server.ready_line.contains("backend=dpdk"), "{}", server.ready_line);

    for args in
        [vec!["addr", "add", &format!("{host_ip}/24"), "dev", &iface], vec!["link", "set", &iface, "up"]]
    {
        let st = Command::new("ip").args(&args).status().expect("ip (iproute2) must be installed");
        assert!(st.success(), "ip {args:?} failed");
    }

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

    let (status, out) = server.stop();
    assert!(status.success(), "vigil exited with {status}");
    let io_line = out.lines().find(|l| l.contains("shard 0 io:")).expect("io counters line");
    let count = |name: &str| -> u64 {
        let after = io_line.split(&format!("{name} ")).nth(1).expect(name);
        after.split_whitespace().next().unwrap().parse().unwrap()
    };
    assert!(count("icmp_echo_replies") >= 3, "{io_line}");
    assert!(count("arp_replies") >= 1, "{io_line}");
    let _ = std::fs::remove_dir_all(dir);
}
