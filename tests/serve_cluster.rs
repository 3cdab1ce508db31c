//! Three real `vigil serve` processes on loopback form one cluster: every partition a Raft group
//! of three voters, Raft messages in peer datagrams over the nodes' UDP data plane.
//!
//! Clients (three threads, one request at a time each, six keys) SET unique values and GET them,
//! following the `NOT_LEADER` hint (`wire::LeaderHint`) to the partition's leader and resending a
//! write with the same request id after a timeout (exactly-once). Meanwhile the test kills the
//! node that leads with SIGKILL and restarts it on its log, then pauses a node (SIGSTOP) past an
//! election timeout and resumes it. Afterwards a final read of every key joins the history, and
//! `vigil::check` must find the whole history linearizable: an acknowledged write lost, or a
//! stale read served by a deposed leader, would make it fail. Every node must then hold every
//! key with its value, read through its own leader's answer.
//!
//! The namespace version (real links cut with `ip link`, `scripts/cluster`) is
//! tests/cluster_netns.rs; this one needs nothing but loopback.

mod common;

use common::{disk_temp_dir, free_udp_port, Server};
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vigil::check::{check, CheckConfig, CheckResult, History, KvOp, OpId, Outcome};
use vigil::wire::{self, opcode, DatagramWriter, LeaderHint, Status};

const NODES: usize = 3;
const KEYS: usize = 6;
const CLIENTS: u64 = 3;
/// One try's wait for an answer.
const TRY_TIMEOUT: Duration = Duration::from_millis(250);
/// A client gives an operation up (its outcome unknown) after this long.
const OP_DEADLINE: Duration = Duration::from_secs(4);

fn node_config(id: usize, ports: &[u16], data: &str) -> String {
    let nodes: String = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("  {{ id = {}, address = \"127.0.0.1:{p}\" }},\n", i + 1))
        .collect();
    let node = common::kv_node_config(ports[id - 1], data, 1_000_000);
    format!(
        r#"{node}[cluster]
tick_ms = 50
follower_read_staleness_ms = 300
node_id = {id}
nodes = [
{nodes}]
"#,
    )
}

/// Starts a node in each of `dirs` (created) with its config.
fn start_nodes(dirs: &[PathBuf], configs: &[String]) -> Vec<Option<Server>> {
    dirs.iter()
        .zip(configs)
        .map(|(dir, cfg)| {
            std::fs::create_dir_all(dir).unwrap();
            Some(Server::start(dir, cfg))
        })
        .collect()
}

/// The history, and the one clock its times come from (so they never go back across threads).
struct Recorder {
    history: History,
    time: u64,
}

impl Recorder {
    fn invoke(&mut self, client: u64, op: KvOp) -> OpId {
        self.time += 1;
        self.history.invoke_at(self.time, client, op).expect("times never go back")
    }

    fn complete(&mut self, op: OpId, outcome: Outcome) {
        self.time += 1;
        self.history.complete_at(self.time, op, outcome).expect("an open operation");
    }

    fn time_out(&mut self, op: OpId) {
        self.time += 1;
        self.history.time_out_at(self.time, op).expect("an open operation");
    }
}

/// What one client counted.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    acked_writes: u64,
    reads: u64,
    redirects: u64,
    no_leader: u64,
    timeouts: u64,
    given_up: u64,
}

/// A blocking client that follows leader hints (a test's own: it must see every answer).
struct Client {
    id: u64,
    socket: UdpSocket,
    nodes: Vec<SocketAddr>,
    /// The node last known to lead each partition (by hint), else the node last tried.
    leaders: BTreeMap<u32, SocketAddr>,
    partitions: Option<u32>,
    next_request: u64,
    counts: Counts,
    /// The node that gave the last answer.
    answered_by: Option<SocketAddr>,
}

impl Client {
    fn new(id: u64, nodes: &[SocketAddr]) -> Client {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(TRY_TIMEOUT)).unwrap();
        Client {
            id,
            socket,
            nodes: nodes.to_vec(),
            leaders: BTreeMap::new(),
            partitions: None,
            next_request: 1,
            counts: Counts::default(),
            answered_by: None,
        }
    }

    fn target(&self, key: &[u8], attempt: usize) -> SocketAddr {
        let by_hint = self.partitions.and_then(|n| {
            let p = vigil::inbox::Placement::new(n, 1).ok()?.partition_of(key);
            self.leaders.get(&u32::from(p)).copied()
        });
        by_hint.unwrap_or(self.nodes[(self.id as usize + attempt) % self.nodes.len()])
    }

    /// Runs one request to an answer other than NOT_LEADER/BUSY; `None` when given up.
    fn run(&mut self, op: u8, key: &[u8], body: &[u8], stop_at: Instant) -> Option<(Status, Vec<u8>)> {
        let request_id = self.next_request;
        self.next_request += 1;
        let mut buf = vec![0u8; 2048];
        let mut w = DatagramWriter::request(&mut buf, self.id).unwrap();
        w.push(op, 0, request_id, body).unwrap();
        let len = w.finish();
        let datagram = buf[..len].to_vec();
        let (mut attempt, mut to) = (0usize, self.target(key, 0));
        let mut answer = [0u8; 2048];
        while Instant::now() < stop_at {
            self.socket.send_to(&datagram, to).unwrap();
            let deadline = Instant::now() + TRY_TIMEOUT;
            let got = loop {
                match self.socket.recv_from(&mut answer) {
                    Ok((n, _)) => {
                        if let Some(a) = frame_for(&answer[..n], request_id) {
                            break Some(a);
                        }
                        // An older try's late answer: keep waiting for ours.
                        if Instant::now() >= deadline {
                            break None;
                        }
                    }
                    Err(_) => break None,
                }
            };
            let Some((status, body)) = got else {
                self.counts.timeouts += 1;
                attempt += 1;
                // Same node twice, then the others (same request id: exactly-once).
                if attempt % 2 == 0 {
                    to = self.nodes[(self.id as usize + attempt / 2) % self.nodes.len()];
                }
                continue;
            };
            match status {
                Status::NotLeader => match LeaderHint::decode(&body) {
                    Some(hint) => {
                        self.counts.redirects += 1;
                        let leader = SocketAddr::V4(hint.address);
                        self.partitions = Some(hint.partitions);
                        self.leaders.insert(hint.partition, leader);
                        if leader == to {
                            // The node leads but does not serve yet (a new leader's lease, a
                            // restart catching up): ask it again shortly.
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        to = leader;
                    }
                    None => {
                        self.counts.no_leader += 1;
                        attempt += 1;
                        to = self.nodes[(self.id as usize + attempt) % self.nodes.len()];
                        std::thread::sleep(Duration::from_millis(20));
                    }
                },
                Status::Busy => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    self.answered_by = Some(to);
                    return Some((status, body));
                }
            }
        }
        self.counts.given_up += 1;
        None
    }
}

/// The answer frame with `request_id` in a response datagram, if it holds one.
fn frame_for(datagram: &[u8], request_id: u64) -> Option<(Status, Vec<u8>)> {
    let header = wire::decode_header(datagram).ok()?;
    wire::Frames::new(datagram, header.count)
        .map_while(Result::ok)
        .find(|f| f.request_id == request_id)
        .map(|f| (Status::from_u8(f.status).unwrap_or(Status::Malformed), f.body.to_vec()))
}

fn set_body(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut b = (key.len() as u16).to_le_bytes().to_vec();
    b.extend_from_slice(key);
    b.extend_from_slice(value);
    b
}

/// One GET or SET, recorded.
fn operate(
    client: &mut Client,
    rec: &Mutex<Recorder>,
    key: &[u8],
    write: Option<Vec<u8>>,
    patience: Duration,
) {
    let stop_at = Instant::now() + patience;
    let (op, code, body) = match &write {
        Some(v) => (KvOp::Set { key: key.to_vec(), value: v.clone() }, opcode::SET, set_body(key, v)),
        None => (KvOp::Get { key: key.to_vec() }, opcode::GET, key.to_vec()),
    };
    let id = rec.lock().unwrap().invoke(client.id, op);
    let answer = client.run(code, key, &body, stop_at);
    let mut rec = rec.lock().unwrap();
    let version = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().expect("an 8-byte version"));
    match answer {
        Some((Status::Ok, b)) if write.is_some() => {
            client.counts.acked_writes += 1;
            rec.complete(id, Outcome::Stored { version: version(&b) })
        }
        Some((Status::Ok, b)) => {
            client.counts.reads += 1;
            rec.complete(id, Outcome::Found { value: b[8..].to_vec(), version: version(&b) })
        }
        Some((Status::NotFound, _)) if write.is_none() => {
            client.counts.reads += 1;
            rec.complete(id, Outcome::NotFound)
        }
        // Given up, or a retry told STALE / SEQUENCE_REUSED / UNAVAILABLE: it may have applied.
        _ => rec.time_out(id),
    }
}

/// The node (0-based) whose answer came from the leader of `key`'s partition, asking node 0.
fn leader_of(key: &[u8], nodes: &[SocketAddr]) -> Option<usize> {
    let mut c = Client::new(99, nodes);
    let got = c.run(opcode::GET, key, key, Instant::now() + Duration::from_secs(5));
    eprintln!("leader of {:?}: {:?} after {:?}", String::from_utf8_lossy(key), c.answered_by, c.counts);
    got?;
    nodes.iter().position(|n| Some(*n) == c.answered_by)
}

/// A GET_BOUNDED sent to `node` alone (no hint followed): its value, or the status it refused
/// with after a second of retries.
fn bounded_get(node: SocketAddr, key: &[u8]) -> Result<Option<Vec<u8>>, Status> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(TRY_TIMEOUT)).unwrap();
    let mut last = Status::Unavailable;
    for request_id in 1..=20u64 {
        let mut buf = vec![0u8; 2048];
        let mut w = DatagramWriter::request(&mut buf, 77).unwrap();
        w.push(opcode::GET_BOUNDED, 0, request_id, key).unwrap();
        let len = w.finish();
        socket.send_to(&buf[..len], node).unwrap();
        let mut answer = [0u8; 2048];
        if let Ok((n, _)) = socket.recv_from(&mut answer) {
            match frame_for(&answer[..n], request_id) {
                Some((Status::Ok, body)) => return Ok(Some(body[8..].to_vec())),
                Some((Status::NotFound, _)) => return Ok(None),
                Some((status, _)) => last = status,
                None => {}
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(last)
}

/// Keys per partition from a stop report's `partition P: keys K ...` lines.
fn partition_keys(report: &str) -> BTreeMap<u16, u64> {
    report
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("partition ")?;
            let (p, rest) = rest.split_once(": keys ")?;
            Some((p.parse().ok()?, rest.split_whitespace().next()?.parse().ok()?))
        })
        .collect()
}

/// Stops the nodes and fails with their reports.
fn fail_with_reports(servers: Vec<Option<Server>>, why: &str) -> ! {
    let reports: Vec<String> = servers.into_iter().flatten().map(|s| s.stop().1).collect();
    panic!("{why}; the nodes' reports:\n{}", reports.join("\n-----\n"))
}

fn signal(server: &Server, sig: &str) {
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success());
}

#[test]
fn three_nodes_keep_every_acknowledged_write_through_a_kill_a_restart_and_a_pause() {
    let work = disk_temp_dir("cluster3");
    let ports: Vec<u16> = (0..NODES).map(|_| free_udp_port()).collect();
    let nodes: Vec<SocketAddr> = ports.iter().map(|p| SocketAddr::from(([127, 0, 0, 1], *p))).collect();
    let dirs: Vec<PathBuf> = (1..=NODES).map(|i| work.join(format!("node{i}"))).collect();
    let configs: Vec<String> = (1..=NODES).map(|i| node_config(i, &ports, "data")).collect();
    let mut servers = start_nodes(&dirs, &configs);

    let rec = Arc::new(Mutex::new(Recorder { history: History::new(), time: 0 }));
    let stop = Arc::new(AtomicBool::new(false));
    let keys: Vec<Vec<u8>> = (0..KEYS).map(|k| format!("key-{k}").into_bytes()).collect();
    let clients: Vec<_> = (1..=CLIENTS)
        .map(|id| {
            let (rec, stop, keys, nodes) = (rec.clone(), stop.clone(), keys.clone(), nodes.clone());
            std::thread::spawn(move || {
                let mut c = Client::new(id, &nodes);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = &keys[((id * 7 + n * 5) as usize) % KEYS];
                    let write = (n % 3 != 2).then(|| format!("c{id}-{n}").into_bytes());
                    operate(&mut c, &rec, key, write, OP_DEADLINE);
                    n += 1;
                }
                c.counts
            })
        })
        .collect();

    // Faults: the leader of key-0's partition killed, then restarted on its log; then another
    // node paused past an election timeout, then resumed.
    std::thread::sleep(Duration::from_millis(1500));
    let Some(victim) = leader_of(&keys[0], &nodes) else {
        fail_with_reports(servers, "no leader of key-0 within 5 s")
    };
    eprintln!("killing node {} (leads key-0's partition)", victim + 1);
    let (_, out) = servers[victim].take().unwrap().kill();
    assert!(out.contains("vigil: ready:"), "{out}");
    std::thread::sleep(Duration::from_millis(2000));
    eprintln!("restarting node {}", victim + 1);
    servers[victim] = Some(Server::start(&dirs[victim], &configs[victim]));
    std::thread::sleep(Duration::from_millis(1500));
    let Some(paused) = leader_of(&keys[1], &nodes) else {
        fail_with_reports(servers, "no leader of key-1 within 5 s")
    };
    eprintln!("pausing node {} (leads key-1's partition)", paused + 1);
    signal(servers[paused].as_ref().unwrap(), "-STOP");
    std::thread::sleep(Duration::from_millis(1500));
    signal(servers[paused].as_ref().unwrap(), "-CONT");
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let counts: Vec<Counts> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    eprintln!("clients: {counts:?}");

    // The final read of every key, on its leader, joins the history.
    let mut last = Client::new(50, &nodes);
    for key in &keys {
        operate(&mut last, &rec, key, None, Duration::from_secs(10));
    }
    let acked: u64 = counts.iter().map(|c| c.acked_writes).sum();
    assert!(acked >= 30, "too few writes acknowledged to mean anything: {counts:?}");
    if last.counts.reads != KEYS as u64 {
        fail_with_reports(servers, &format!("final reads unanswered: {:?}", last.counts));
    }
    let history = rec.lock().unwrap().history.clone();
    match check(&history, &CheckConfig::default()) {
        CheckResult::Linearizable { keys, ops, steps } => {
            eprintln!(
                "linearizable: {ops} operations on {keys} keys ({steps} steps); {acked} writes acknowledged"
            )
        }
        other => panic!("the history is not linearizable: {other:?}"),
    }

    // Followers answer GET_BOUNDED within their bound: once the writes stopped for longer than
    // it, every node, leader or not, gives each key's last value (the final reads' answers).
    std::thread::sleep(Duration::from_millis(600));
    let finals: Vec<_> = history.records().iter().rev().take(KEYS).cloned().collect();
    for (i, node) in nodes.iter().enumerate() {
        for record in &finals {
            let (KvOp::Get { key }, vigil::check::Fate::Completed { outcome, .. }) =
                (&record.op, &record.fate)
            else {
                panic!("the final reads completed: {record:?}")
            };
            let got = bounded_get(*node, key);
            let want = match outcome {
                Outcome::Found { value, .. } => Some(value.clone()),
                _ => None,
            };
            assert_eq!(
                got,
                Ok(want),
                "node {} answers GET_BOUNDED {:?}",
                i + 1,
                String::from_utf8_lossy(key)
            );
        }
    }

    // Every node holds the same keys in every partition: the followers applied what the leader
    // did (given a few heartbeats to learn the last commit), as their stop reports say.
    std::thread::sleep(Duration::from_millis(500));
    let mut key_counts = Vec::new();
    for (i, s) in servers.into_iter().enumerate() {
        let (status, out) = s.unwrap().stop();
        assert!(status.success(), "node {} did not stop cleanly:\n{out}", i + 1);
        assert!(out.contains("peer: out messages"), "node {} reports its peer link:\n{out}", i + 1);
        key_counts.push(partition_keys(&out));
    }
    assert_eq!(key_counts[0].len(), 2, "two partitions: {key_counts:?}");
    assert!(key_counts.iter().all(|k| *k == key_counts[0]), "replicas differ: {key_counts:?}");
    assert_eq!(key_counts[0].values().sum::<u64>(), KEYS as u64, "{key_counts:?}");
    let _ = std::fs::remove_dir_all(work);
}

/// A node down while the leader's log recycles past what it has comes back and catches up by
/// snapshot: afterwards it makes a quorum with one other node (the old leader killed), and
/// every key reads back with its last acknowledged value.
#[test]
fn a_node_down_while_the_log_recycles_catches_up_by_snapshot() {
    let work = disk_temp_dir("cluster3-snap");
    let ports: Vec<u16> = (0..NODES).map(|_| free_udp_port()).collect();
    let nodes: Vec<SocketAddr> = ports.iter().map(|p| SocketAddr::from(([127, 0, 0, 1], *p))).collect();
    let dirs: Vec<PathBuf> = (1..=NODES).map(|i| work.join(format!("node{i}"))).collect();
    // A 2 MiB ring, a snapshot every 200 entries: 3 MB of writes recycle it.
    let configs: Vec<String> = (1..=NODES)
        .map(|i| {
            node_config(i, &ports, "data")
                .replace("shards = 2", "shards = 1")
                .replace("segment_blocks = 256", "segment_blocks = 64")
                .replace("segment_count = 16", "segment_count = 8")
                .replace("snapshot_every_entries = 1000000", "snapshot_every_entries = 200")
        })
        .collect();
    let mut servers = start_nodes(&dirs, &configs);
    let leader = leader_of(b"w-0", &nodes).expect("a leader within 5 s");
    let down = (leader + 1) % NODES;
    eprintln!("node {} leads; stopping node {} (SIGKILL)", leader + 1, down + 1);
    servers[down].take().unwrap().kill();

    let mut client = Client::new(7, &nodes);
    let mut last: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let value = vec![b'v'; 1000];
    for i in 0..3_000u32 {
        let key = format!("w-{}", i % 50).into_bytes();
        let mut v = value.clone();
        v[..4].copy_from_slice(&i.to_le_bytes());
        let answer =
            client.run(opcode::SET, &key, &set_body(&key, &v), Instant::now() + Duration::from_secs(10));
        assert!(matches!(answer, Some((Status::Ok, _))), "SET {i}: {answer:?}");
        last.insert(key, v);
    }
    eprintln!("restarting node {}", down + 1);
    servers[down] = Some(Server::start(&dirs[down], &configs[down]));
    std::thread::sleep(Duration::from_secs(3));
    let leader = leader_of(b"w-0", &nodes).expect("a leader");
    assert_ne!(leader, down, "the node that was down cannot lead before it caught up");
    eprintln!("killing the leader, node {}: the restarted node must make the quorum", leader + 1);
    servers[leader].take().unwrap().kill();
    for (key, value) in &last {
        let answer = client.run(opcode::GET, key, key, Instant::now() + Duration::from_secs(20));
        match answer {
            Some((Status::Ok, body)) => {
                assert_eq!(&body[8..], &value[..], "{}", String::from_utf8_lossy(key))
            }
            other => fail_with_reports(servers, &format!("GET {}: {other:?}", String::from_utf8_lossy(key))),
        }
    }
    let (status, out) = servers[down].take().unwrap().stop();
    assert!(status.success(), "{out}");
    let installed: u64 = out
        .lines()
        .filter_map(|l| {
            l.split_once(" installed ").and_then(|(_, r)| r.split_whitespace().next()?.parse::<u64>().ok())
        })
        .sum();
    assert!(installed >= 1, "the restarted node installed no snapshot:\n{out}");
    for s in servers.into_iter().flatten() {
        let (status, out) = s.stop();
        assert!(status.success(), "{out}");
    }
    let _ = std::fs::remove_dir_all(work);
}

/// Sums a counter named `name` over a stop report's partition lines.
fn partition_counter(report: &str, name: &str) -> u64 {
    let key = format!(" {name} ");
    report
        .lines()
        .filter(|l| l.trim().starts_with("partition "))
        .filter_map(|l| {
            l.split_once(key.as_str()).and_then(|(_, r)| r.split_whitespace().next()?.parse::<u64>().ok())
        })
        .sum()
}

#[test]
fn idle_groups_quiesce_and_a_quiet_leader_killed_is_replaced() {
    let work = disk_temp_dir("cluster3-quiet");
    let ports: Vec<u16> = (0..NODES).map(|_| free_udp_port()).collect();
    let nodes: Vec<SocketAddr> = ports.iter().map(|p| SocketAddr::from(([127, 0, 0, 1], *p))).collect();
    let dirs: Vec<PathBuf> = (1..=NODES).map(|i| work.join(format!("node{i}"))).collect();
    let configs: Vec<String> = (1..=NODES).map(|i| node_config(i, &ports, "data")).collect();
    let mut servers = start_nodes(&dirs, &configs);
    let mut client = Client::new(8, &nodes);
    let keys: Vec<Vec<u8>> = (0..24).map(|k| format!("quiet-{k}").into_bytes()).collect();
    for key in &keys {
        let answer =
            client.run(opcode::SET, key, &set_body(key, key), Instant::now() + Duration::from_secs(10));
        if !matches!(answer, Some((Status::Ok, _))) {
            fail_with_reports(servers, &format!("SET {}: {answer:?}", String::from_utf8_lossy(key)));
        }
    }
    let leader = leader_of(&keys[0], &nodes).expect("a leader");
    // Idle for four times the quiescing delay (5 heartbeats of 2 ticks of 50 ms): every group
    // quiesces; then the leader of key 0's partition dies while its groups are quiet.
    std::thread::sleep(Duration::from_secs(2));
    eprintln!("killing node {} (SIGKILL) while its groups are quiet", leader + 1);
    servers[leader].take().unwrap().kill();
    let started = Instant::now();
    for key in &keys {
        match client.run(opcode::GET, key, key, Instant::now() + Duration::from_secs(20)) {
            Some((Status::Ok, body)) => assert_eq!(&body[8..], &key[..]),
            other => fail_with_reports(servers, &format!("GET {}: {other:?}", String::from_utf8_lossy(key))),
        }
    }
    eprintln!("every key read back {:?} after the kill", started.elapsed());
    let reports: Vec<String> = servers
        .into_iter()
        .flatten()
        .map(|s| {
            let (status, out) = s.stop();
            assert!(status.success(), "{out}");
            out
        })
        .collect();
    let quiesced: u64 = reports.iter().map(|r| partition_counter(r, "quiesced")).sum();
    let woken: u64 = reports.iter().map(|r| partition_counter(r, "woken-by-leader-lost")).sum();
    assert!(quiesced > 0, "no group quiesced:\n{}", reports.join("\n-----\n"));
    assert!(woken > 0, "no quiet follower woke for its dead leader:\n{}", reports.join("\n-----\n"));
    let _ = std::fs::remove_dir_all(work);
}
