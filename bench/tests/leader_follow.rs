//! The load generator in a (fake) replicated cluster, end to end over the kernel backend: fake
//! nodes are loopback `UdpSocket`s in threads that record every request frame they get and answer
//! as a follower (`NOT_LEADER` with a leader hint for the key's partition), a leader (OK) or a dead
//! node (nothing).
//!
//! Checked: a request answered `NOT_LEADER` is resent to the leader as the same frame under the
//! same client id (exactly-once), counted in `not_leader_redirects`, and still ends as exactly one
//! of received, error or timeout; once a partition's leader is known its keys go there directly;
//! with `--cluster` a node that never answers is given up for the next one, and what waited on it
//! is resent there.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use vigil::inbox::Placement;
use vigil::wire::{self, opcode, DatagramWriter, Frames, LeaderHint, Status, LEADER_HINT_LEN};
use vigil_bench::backend::run_kernel_to;
use vigil_bench::report::Summary;
use vigil_bench::run::{LoadSpec, Op};
use vigil_pmd::Peer;

/// The generators busy-poll a core: one test at a time (as tests/loopback_udp.rs).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const PARTITIONS: u32 = 4;

#[derive(Clone, Copy)]
enum Role {
    /// Answers every request OK (SET: a version; GET: NOT_FOUND).
    Leader,
    /// Answers every KV request NOT_LEADER naming the leader at this address.
    Follower(SocketAddrV4),
    /// Never answers.
    Dead,
}

/// One frame a fake node received: (client id, request id, opcode, body).
type Seen = (u64, u64, u8, Vec<u8>);

struct FakeNode {
    addr: SocketAddrV4,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The key of a SET or GET body.
fn key_of(op: u8, body: &[u8]) -> &[u8] {
    match op {
        opcode::SET => &body[2..2 + usize::from(u16::from_le_bytes([body[0], body[1]]))],
        _ => body,
    }
}

impl FakeNode {
    fn start(role: Role) -> FakeNode {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let SocketAddr::V4(addr) = sock.local_addr().unwrap() else { unreachable!() };
        let (seen, stop) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(false)));
        let (seen2, stop2) = (Arc::clone(&seen), Arc::clone(&stop));
        let placement = Placement::new(PARTITIONS, 1).unwrap();
        let thread = std::thread::spawn(move || {
            let (mut buf, mut out) = (vec![0u8; 65_536], vec![0u8; 65_536]);
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
                let req = &buf[..n];
                let h = wire::decode_header(req).unwrap();
                let mut w = DatagramWriter::response(&mut out, h.client_id).unwrap();
                for f in Frames::new(req, h.count) {
                    let f = f.unwrap();
                    seen2.lock().unwrap().push((h.client_id, f.request_id, f.opcode, f.body.to_vec()));
                    match role {
                        Role::Leader if f.opcode == opcode::SET => w
                            .push(f.opcode, Status::Ok as u8, f.request_id, &f.request_id.to_le_bytes())
                            .unwrap(),
                        Role::Leader => w.push(f.opcode, Status::NotFound as u8, f.request_id, &[]).unwrap(),
                        Role::Follower(leader) => {
                            let partition = u32::from(placement.partition_of(key_of(f.opcode, f.body)));
                            let hint =
                                LeaderHint { node: 1, address: leader, partition, partitions: PARTITIONS };
                            let mut body = [0u8; LEADER_HINT_LEN];
                            hint.encode(&mut body);
                            w.push(f.opcode, Status::NotLeader as u8, f.request_id, &body).unwrap()
                        }
                        Role::Dead => {}
                    }
                }
                if w.count() > 0 {
                    let len = w.finish();
                    sock.send_to(&out[..len], from).unwrap();
                }
            }
        });
        FakeNode { addr, seen, stop, thread: Some(thread) }
    }

    fn stop(mut self) -> Vec<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn kv_spec(rate: f64, secs: f64) -> LoadSpec {
    LoadSpec {
        duration: Duration::from_secs_f64(secs),
        warmup: Duration::from_millis(200),
        timeout: Duration::from_millis(200),
        client_id: 7,
        ..LoadSpec::with_op(rate, Op::Kv, 0)
    }
}

#[test]
fn not_leader_answers_are_resent_to_the_hinted_leader_with_the_same_ids_and_counted() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let leader = FakeNode::start(Role::Leader);
    let follower = FakeNode::start(Role::Follower(leader.addr));
    let spec = kv_spec(2_000.0, 1.0);
    let out = run_kernel_to(follower.addr, &spec, &AtomicBool::new(false)).unwrap();
    let s = Summary::new("kernel", &follower.addr.to_string(), &spec, &out);
    eprint!("{}", s.render());
    let (at_follower, at_leader) = (follower.stop(), leader.stop());

    assert_eq!(s.errors, 0, "no NOT_LEADER counted as an error: {:?}", s.errors_by_status);
    assert_eq!(s.timeouts, 0);
    assert_eq!(s.sent, s.received, "every request ends answered");
    let a = &out.accounting;
    let redirected = a.leaders.not_leader_redirects;
    assert_eq!(redirected, at_follower.len() as u64, "every request the follower refused was redirected");
    assert!(redirected >= 1);
    assert!(
        at_follower.len() * 20 < at_leader.len(),
        "once a partition's leader is known its keys go there: {} at the follower, {} at the leader",
        at_follower.len(),
        at_leader.len()
    );
    assert!(
        at_follower.iter().all(|f| at_leader.contains(f)),
        "a redirect is the same frame under the same ids"
    );
    let json = s.to_json();
    assert!(json.contains(&format!("\"not_leader_redirects\": {}", s.not_leader_redirects)), "{json}");
    assert!(s.render().contains("not_leader_redirects"));
}

#[test]
fn a_cluster_node_that_never_answers_is_left_for_the_next() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dead = FakeNode::start(Role::Dead);
    let alive = FakeNode::start(Role::Leader);
    let spec = LoadSpec {
        cluster: vec![Peer::from_ip_port(*alive.addr.ip(), alive.addr.port())],
        ..kv_spec(1_000.0, 1.0)
    };
    let out = run_kernel_to(dead.addr, &spec, &AtomicBool::new(false)).unwrap();
    let s = Summary::new("kernel", "cluster", &spec, &out);
    eprint!("{}", s.render());
    let (lost, answered) = (dead.stop(), alive.stop());
    assert_eq!(s.leader_failovers, 1, "the dead seed was given up, once");
    assert!(!lost.is_empty() && !answered.is_empty());
    // Everything sent to the dead node before a quarter of the timeout passed was resent to the
    // live one when it was given up, and answered there: nothing timed out.
    assert_eq!(out.accounting.leaders.failover_resends, lost.len() as u64);
    assert!(lost.iter().all(|f| answered.contains(f)), "each resent as the same frame under the same ids");
    assert_eq!((s.timeouts, s.errors), (0, 0));
    assert_eq!(s.sent, s.received);
}
