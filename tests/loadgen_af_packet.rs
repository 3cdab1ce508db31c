//! The load generator over a DPDK `net_af_packet` port: a veth pair this test creates, Vigil on
//! kernel sockets bound to one end's address, `vigil-loadgen --backend dpdk` on the other end.
//! The generator resolves Vigil's MAC by ARP through the kernel, answers the kernel's ARP for its
//! own address, and every PING must come back. Needs root and DPDK: fails loudly without them.

mod common;

use common::*;
use std::process::Command;

/// Deletes the veth pair (both ends) when the test ends, however it ends.
struct Veth(String);
impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("ip (iproute2) must be installed");
    assert!(st.success(), "ip {args:?} failed");
}

#[test]
fn loadgen_on_af_packet_drives_vigil_over_a_veth_pair() {
    require_root_and_dpdk("loadgen_on_af_packet_drives_vigil_over_a_veth_pair");
    let pid = std::process::id();
    let (a, b) = (format!("vga{}", pid % 100_000), format!("vgb{}", pid % 100_000));
    let net = 100 + pid % 100;
    let (vigil_ip, gen_ip) = (format!("10.80.{net}.1"), format!("10.80.{net}.2"));
    ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
    let _veth = Veth(a.clone());
    ip(&["addr", "add", &format!("{vigil_ip}/24"), "dev", &a]);
    ip(&["link", "set", &a, "up"]);
    ip(&["link", "set", &b, "up"]);
    // veth "offloads" transmit checksums that nobody then computes: the kernel's replies would reach
    // the af_packet port with partial UDP checksums, which the fast-path stack rightly counts as
    // rx_bad_checksum. Real NICs compute them; on veth, turn the offload off (docs/BENCHMARKS.md).
    let st =
        Command::new("ethtool").args(["-K", &a, "tx", "off"]).output().expect("ethtool must be installed");
    assert!(st.status.success(), "ethtool -K {a} tx off: {}", String::from_utf8_lossy(&st.stderr));

    let dir = temp_dir("afpacket");
    let port = free_udp_port();
    // A veth pair only this test reaches: anonymous access on it, the generator's network trusted.
    let lab = format!(
        "anonymous = \"read-write\"\nprotected_mode = false\ntrusted_sources = [\"10.80.{net}.0/24\"]"
    );
    let config = dev_config(port)
        .replace("bind_ip = \"127.0.0.1\"", &format!("bind_ip = \"{vigil_ip}\""))
        .replacen("anonymous = \"read-write\"", &lab, 1);
    let server = Server::start(&dir, &config);

    let json = dir.join("afpacket.json");
    let out = Command::new(workspace_bin("vigil-loadgen"))
        .args(["--backend", "dpdk", "--vdev", &format!("net_af_packet0,iface={b}")])
        .args(["--file-prefix", &format!("vigil-test-lg-afp-{pid}"), "--memory-mb", "256"])
        .args(["--server", &format!("{vigil_ip}:{port}"), "--local-ip", &gen_ip])
        .args(["--rate", "5000", "--duration", "1", "--warmup", "0.3", "--quiet", "--json"])
        .arg(&json)
        .output()
        .expect("running vigil-loadgen");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}\n{stderr}");
    assert!(out.status.success(), "vigil-loadgen failed: {}", out.status);
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(s["sent"], 5000, "{s}");
    assert_eq!(s["received"], 5000, "{s}");
    assert_eq!((s["errors"].as_u64(), s["timeouts"].as_u64()), (Some(0), Some(0)), "{s}");

    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
    assert!(out.contains("ping: 6500 calls"), "5000 measured + 1500 warm-up PINGs:\n{out}");
    let _ = std::fs::remove_dir_all(dir);
    remove_dpdk_runtime_dirs();
}
