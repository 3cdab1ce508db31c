//! Three nodes whose data planes are DPDK `net_af_packet` ports: Raft's peer datagrams and the
//! clients' requests both go through the poll-mode path (the fast-path UDP/IPv4/ARP stack,
//! resolving peers' MACs from their configured addresses).
//!
//! The test builds a bridge with a veth pair per node (the DPDK end unaddressed, its peer a
//! bridge port) and gives the bridge an address for the clients in the root namespace. It writes
//! keys following the `NOT_LEADER` hints, kills the node that leads with SIGKILL, writes more on
//! the new leader, and reads every acknowledged value back. Needs root and DPDK: fails loudly
//! without them.

mod common;

use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};
use vigil::wire::{self, opcode, DatagramWriter, LeaderHint, Status};

/// Removes the bridge and the veth pairs when the test ends, however it ends.
struct Links(Vec<String>);
impl Drop for Links {
    fn drop(&mut self) {
        for link in &self.0 {
            let _ = Command::new("ip").args(["link", "del", link]).status();
        }
    }
}

fn node_config(id: usize, ips: &[String], iface: &str, prefix: &str) -> String {
    let nodes: String = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| format!("  {{ id = {}, address = \"{ip}:9000\" }},\n", i + 1))
        .collect();
    // Poll-mode shards spin: on a machine with fewer cores than nodes, two share one.
    let core = (id - 1) % std::thread::available_parallelism().map_or(1, |n| n.get());
    let vdev = format!("net_af_packet0,iface={iface}");
    let node = dpdk_node_config(core, &ips[id - 1], "net_af_packet0", &vdev, "", &format!("{prefix}-{id}"));
    format!("{node}[cluster]\ntick_ms = 50\nnode_id = {id}\nnodes = [\n{nodes}]\n")
}

/// Sends one request, following hints, until it is answered (at most `patience`).
fn call(
    socket: &UdpSocket,
    nodes: &[SocketAddr],
    start: usize,
    request_id: u64,
    op: u8,
    body: &[u8],
    patience: Duration,
) -> (Status, Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let mut w = DatagramWriter::request(&mut buf, 4242).unwrap();
    w.push(op, 0, request_id, body).unwrap();
    let len = w.finish();
    let datagram = buf[..len].to_vec();
    let (deadline, mut to, mut attempt) = (Instant::now() + patience, nodes[start], start);
    while Instant::now() < deadline {
        socket.send_to(&datagram, to).unwrap();
        let mut answer = [0u8; 2048];
        let got = socket.recv_from(&mut answer).ok().and_then(|(n, _)| {
            let header = wire::decode_header(&answer[..n]).ok()?;
            wire::Frames::new(&answer[..n], header.count)
                .map_while(Result::ok)
                .find(|f| f.request_id == request_id)
                .map(|f| (Status::from_u8(f.status).unwrap_or(Status::Malformed), f.body.to_vec()))
        });
        match got {
            Some((Status::NotLeader, hint)) => match LeaderHint::decode(&hint) {
                Some(h) if SocketAddr::V4(h.address) != to => to = SocketAddr::V4(h.address),
                _ => std::thread::sleep(Duration::from_millis(20)),
            },
            Some((Status::Busy, _)) => std::thread::sleep(Duration::from_millis(10)),
            Some((status, body)) => return (status, body, to),
            None => {
                attempt += 1;
                to = nodes[attempt % nodes.len()];
            }
        }
    }
    panic!("request {request_id} (opcode {op:#x}) unanswered within {patience:?}");
}

fn set_body(key: &[u8], value: &[u8]) -> Vec<u8> {
    [&(key.len() as u16).to_le_bytes()[..], key, value].concat()
}

#[test]
fn three_dpdk_nodes_replicate_over_af_packet_ports_and_survive_a_leader_kill() {
    require_root_and_dpdk("three_dpdk_nodes_replicate_over_af_packet_ports_and_survive_a_leader_kill");
    let pid = std::process::id();
    let tag = pid % 10_000;
    let net = 100 + pid % 100;
    let bridge = format!("vgcb{tag}");
    let ips: Vec<String> = (1..=3).map(|n| format!("10.82.{net}.{n}")).collect();
    let client_ip = format!("10.82.{net}.254");
    let mut links = Links(vec![bridge.clone()]);
    run_tool("ip", &["link", "add", &bridge, "type", "bridge"]);
    run_tool("ip", &["addr", "add", &format!("{client_ip}/24"), "dev", &bridge]);
    run_tool("ip", &["link", "set", &bridge, "up"]);
    let mut ifaces = Vec::new();
    for n in 1..=3 {
        let (dpdk_end, bridge_end) = (format!("vgc{n}a{tag}"), format!("vgc{n}b{tag}"));
        run_tool("ip", &["link", "add", &dpdk_end, "type", "veth", "peer", "name", &bridge_end]);
        links.0.push(dpdk_end.clone());
        run_tool("ip", &["link", "set", &bridge_end, "master", &bridge]);
        for link in [&dpdk_end, &bridge_end] {
            run_tool("ip", &["link", "set", link, "up"]);
            // veth and bridges offload transmit checksums nobody computes on a virtual link; the
            // fast-path stack would rightly drop those datagrams (docs/BENCHMARKS.md).
            run_tool("ethtool", &["-K", link, "tx", "off"]);
        }
        ifaces.push(dpdk_end);
    }
    run_tool("ethtool", &["-K", &bridge, "tx", "off"]);

    let prefix = format!("vigil-test-dpdk-cluster-{pid}");
    let dirs: Vec<_> = (1..=3).map(|n| temp_dir(&format!("dpdk-cluster-{n}"))).collect();
    let configs: Vec<String> = (1..=3).map(|n| node_config(n, &ips, &ifaces[n - 1], &prefix)).collect();
    let mut servers: Vec<Option<Server>> =
        dirs.iter().zip(&configs).map(|(dir, cfg)| Some(Server::start(dir, cfg))).collect();
    for s in servers.iter().flatten() {
        assert!(s.ready_line.contains("backend=dpdk"), "{}", s.ready_line);
    }

    let nodes: Vec<SocketAddr> = ips.iter().map(|ip| format!("{ip}:9000").parse().unwrap()).collect();
    let socket = UdpSocket::bind(format!("{client_ip}:0")).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut acked = Vec::new();
    let mut request_id = 0;
    let mut write = |range: std::ops::Range<u32>, acked: &mut Vec<(Vec<u8>, Vec<u8>)>| {
        let mut leader = None;
        for i in range {
            let (key, value) = (format!("key-{i}").into_bytes(), format!("value-{i}").into_bytes());
            request_id += 1;
            let (status, _, from) = call(
                &socket,
                &nodes,
                i as usize % 3,
                request_id,
                opcode::SET,
                &set_body(&key, &value),
                Duration::from_secs(20),
            );
            assert_eq!(status, Status::Ok, "SET key-{i}");
            acked.push((key, value));
            leader = Some(from);
        }
        leader.expect("a write")
    };
    let leader = write(0..40, &mut acked);
    let victim = nodes.iter().position(|n| *n == leader).unwrap();
    eprintln!("killing node {} (it answered the last write)", victim + 1);
    let (_, out) = servers[victim].take().unwrap().kill();
    assert!(out.contains("vigil: ready:"), "{out}");
    write(40..80, &mut acked);

    // Every acknowledged write is there, read on the leaders of the surviving nodes.
    let survivors: Vec<SocketAddr> =
        nodes.iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, n)| *n).collect();
    for (i, (key, value)) in acked.iter().enumerate() {
        let (status, body, _) =
            call(&socket, &survivors, i % 2, 10_000 + i as u64, opcode::GET, key, Duration::from_secs(20));
        assert_eq!(status, Status::Ok, "GET {}", String::from_utf8_lossy(key));
        assert_eq!(&body[8..], &value[..], "GET {}", String::from_utf8_lossy(key));
    }
    for (i, s) in servers.into_iter().enumerate() {
        let Some(s) = s else { continue };
        let (status, out) = s.stop();
        assert!(status.success(), "node {} did not stop cleanly:\n{out}", i + 1);
        assert!(out.contains("peer: out messages"), "node {} reports its peer link:\n{out}", i + 1);
    }
    drop(links);
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
    remove_dpdk_runtime_dirs();
}
