//! Failover as a client sees it: three `vigil serve` nodes on loopback (durable io_uring logs in
//! a directory on disk), one client writing one key in a loop (each write answered once a quorum
//! has it durably), and `KILLS` times: the leader of that key's partition killed with SIGKILL,
//! then the time from the kill to the first write acknowledged by another node; the killed node
//! restarted on its log and given time to catch up before the next round.
//!
//! First, a steady part: `STEADY_SECONDS` of writes with every node up, then every node stopped
//! for its report: the bytes of peer datagrams per acknowledged write (the three nodes' `peer:
//! out ... bytes` together, heartbeats and the first election included, over the writes). The
//! kills then run on the same logs.
//!
//! ```text
//! cargo build --release -p vigil -p vigil-client --examples
//! target/release/examples/failover [KILLS] [TICK_MS] [DIR]     # defaults 20, 10, /var/tmp
//! ```
//!
//! Prints the distribution (min, p50, p90, max) and the bytes per write. Ends only the processes
//! it started, by PID.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vigil_client::{Client, ClientConfig};

const NODES: usize = 3;
const KEY: &[u8] = b"failover-key";
const STEADY_SECONDS: u64 = 3;

/// A node's process and the lines it printed.
struct Node {
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
}

impl Node {
    fn start(vigil: &Path, dir: &Path) -> Node {
        let mut child = Command::new(vigil)
            .current_dir(dir)
            .args(["serve", "--config", "vigil.toml"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting vigil");
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap().push(line);
                }
            });
        }
        let node = Node { child, output };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !node.printed("vigil: ready:") {
            assert!(Instant::now() < deadline, "no ready line:\n{}", node.output.lock().unwrap().join("\n"));
            std::thread::sleep(Duration::from_millis(20));
        }
        node
    }

    fn printed(&self, needle: &str) -> bool {
        self.output.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// SIGKILL (no report: a killed process prints nothing more).
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGINT, wait, and the peer bytes its stop report gives.
    fn stop(mut self) -> u64 {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(200));
        let lines = self.output.lock().unwrap();
        lines.iter().filter_map(|l| peer_bytes(l)).sum()
    }
}

/// The `bytes N` of a `shard S peer: out messages M datagrams D bytes N ...` line.
fn peer_bytes(line: &str) -> Option<u64> {
    let rest = line.split_once(" peer: out ")?.1;
    let after = rest.split_once(" bytes ")?.1;
    after.split_whitespace().next()?.parse().ok()
}

fn config(id: usize, ports: &[u16], tick_ms: u64) -> String {
    let nodes: String = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("  {{ id = {}, address = \"127.0.0.1:{p}\" }},\n", i + 1))
        .collect();
    format!(
        "[node]\nshards = 1\ncores = []\n[net]\nbackend = \"kernel\"\nport = {port}\n[kernel]\nbind_ip = \"127.0.0.1\"\n\
         idle_wait_us = 200\n[tcp]\nenabled = false\n[auth]\nanonymous = \"read-write\"\n[storage]\nbackend = \"uring\"\ndir = \"data\"\nsegment_blocks = 256\n\
         segment_count = 16\nsnapshot_every_entries = 100000000\n[cluster]\ntick_ms = {tick_ms}\nnode_id = {id}\nnodes = [\n{nodes}]\n",
        port = ports[id - 1]
    )
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// What the writer saw last: when, and which node answered.
#[derive(Clone, Copy)]
struct Ack {
    at: Instant,
    from: SocketAddr,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kills: usize = args.get(1).map_or(20, |a| a.parse().expect("KILLS"));
    let tick_ms: u64 = args.get(2).map_or(10, |a| a.parse().expect("TICK_MS"));
    let base = PathBuf::from(args.get(3).map_or("/var/tmp", String::as_str))
        .join(format!("vigil-failover-{}", std::process::id()));
    let vigil = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("vigil");
    assert!(vigil.exists(), "{} missing: cargo build --release -p vigil", vigil.display());
    let ports: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
    let addrs: Vec<SocketAddr> = ports.iter().map(|p| SocketAddr::from(([127, 0, 0, 1], *p))).collect();
    let dirs: Vec<PathBuf> = (1..=NODES).map(|i| base.join(format!("node{i}"))).collect();
    for (i, dir) in dirs.iter().enumerate() {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("vigil.toml"), config(i + 1, &ports, tick_ms)).unwrap();
    }
    // The steady part: writes with every node up, then every node stopped for its report.
    let nodes: Vec<Node> = dirs.iter().map(|d| Node::start(&vigil, d)).collect();
    let (last, acked, stop, writer) = start_writer(&addrs);
    std::thread::sleep(Duration::from_secs(STEADY_SECONDS));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let steady_writes = acked.load(Ordering::Relaxed);
    let steady_bytes: u64 = nodes.into_iter().map(Node::stop).sum();
    drop(last);

    // The kills, on the same logs.
    let mut nodes: Vec<Option<Node>> = dirs.iter().map(|d| Some(Node::start(&vigil, d))).collect();
    let (last, _acked, stop, writer) = start_writer(&addrs);
    std::thread::sleep(Duration::from_secs(1));
    let mut failovers = Vec::new();
    for round in 0..kills {
        let leader = last.lock().unwrap().expect("writes are acknowledged").from;
        let victim = addrs.iter().position(|a| *a == leader).expect("a node answered");
        let killed_at = Instant::now();
        nodes[victim].take().unwrap().kill();
        let deadline = killed_at + Duration::from_secs(30);
        let failover = loop {
            let ack = last.lock().unwrap().expect("acks");
            if ack.at > killed_at && ack.from != leader {
                break ack.at - killed_at;
            }
            assert!(Instant::now() < deadline, "round {round}: no write acknowledged 30 s after the kill");
            std::thread::sleep(Duration::from_micros(200));
        };
        println!(
            "round {:2}: killed node {} (the leader); the first write acknowledged by another node came {:.1} ms later",
            round + 1,
            victim + 1,
            failover.as_secs_f64() * 1e3
        );
        failovers.push(failover);
        nodes[victim] = Some(Node::start(&vigil, &dirs[victim]));
        std::thread::sleep(Duration::from_millis(1500));
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    nodes.into_iter().flatten().for_each(|n| {
        n.stop();
    });
    let _ = std::fs::remove_dir_all(&base);

    failovers.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = |q: f64| ms(failovers[((failovers.len() - 1) as f64 * q).round() as usize]);
    println!(
        "failover over {} kills (tick {tick_ms} ms, elections after {}-{} ms of silence): min {:.1} ms, p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        failovers.len(),
        tick_ms * 10,
        tick_ms * 20,
        at(0.0),
        at(0.5),
        at(0.9),
        at(1.0)
    );
    println!(
        "steady: {steady_writes} writes acknowledged in {STEADY_SECONDS} s ({:.0}/s, one client, one write at a time); \
         {steady_bytes} bytes of peer datagrams sent by the three nodes: {:.0} per write (heartbeats and the first election included)",
        steady_writes as f64 / STEADY_SECONDS as f64,
        steady_bytes as f64 / steady_writes.max(1) as f64
    );
}

type Writer = (Arc<Mutex<Option<Ack>>>, Arc<AtomicU64>, Arc<AtomicBool>, std::thread::JoinHandle<()>);

/// A client writing `KEY` in a loop: the last acknowledgement, the count, the stop flag.
fn start_writer(addrs: &[SocketAddr]) -> Writer {
    let last = Arc::new(Mutex::new(None::<Ack>));
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (l, a, s, addrs) = (last.clone(), acked.clone(), stop.clone(), addrs.to_vec());
    let writer = std::thread::spawn(move || {
        let config = ClientConfig {
            timeout: Duration::from_millis(20),
            tries_per_node: 1,
            attempts_max: 100_000,
            retry_pause: Duration::from_millis(2),
            ..ClientConfig::default()
        };
        let mut client = Client::with_config(&addrs[..], config).expect("a client");
        let mut n = 0u64;
        while !s.load(Ordering::Relaxed) {
            n += 1;
            let id = client.next_request_id();
            let body = [&(KEY.len() as u16).to_le_bytes()[..], KEY, &n.to_le_bytes()].concat();
            if let Ok(reply) = client.execute(id, vigil::wire::opcode::SET, Some(KEY), &body) {
                if reply.status == vigil::wire::Status::Ok as u8 {
                    a.fetch_add(1, Ordering::Relaxed);
                    *l.lock().unwrap() = Some(Ack { at: Instant::now(), from: reply.from });
                }
            }
        }
    });
    (last, acked, stop, writer)
}
