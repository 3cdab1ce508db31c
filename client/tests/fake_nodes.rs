//! The client's leader following and retries against fake nodes: real UDP sockets on loopback,
//! each in a thread, that record every datagram they receive and answer as a test scripts them
//! (a `NOT_LEADER` with a crafted hint, an empty one, silence, an OK answer).
//!
//! What is checked is what goes over the wire: which node each attempt reached, and that a
//! redirected or resent attempt is byte for byte the original datagram (same client id, same
//! request id, same body), which is what makes a retried write exactly-once.

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use vigil::auth::ext;
use vigil::auth::mac;
use vigil::inbox::Placement;
use vigil::wire::{self, DatagramWriter, Frames, Status};
use vigil_client::{Client, ClientConfig, ClientError, Credentials, LeaderHint, Refusal};

/// What a fake node does with a request frame, given its index, opcode, body and the datagram's
/// cookie block: `Some((status, body))` to answer, `None` to stay silent. An `AUTH_FAILED` answers
/// for the whole datagram (opcode 0, request id 0), as a node does.
type Script = Box<dyn FnMut(usize, u8, &[u8], Option<[u8; 16]>) -> Option<(u8, Vec<u8>)> + Send>;

/// A fake node: a socket on loopback and every datagram it received.
struct FakeNode {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeNode {
    /// Starts a node that calls `script(n, opcode, body, cookie)` for its n-th datagram (from 0).
    fn start(mut script: Script) -> FakeNode {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let addr = socket.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (rec, halt) = (Arc::clone(&received), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !halt.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                let d = buf[..n].to_vec();
                let header = wire::decode_header(&d).expect("the client sends valid datagrams");
                let blocks = ext::decode(&d, header.flags).expect("whole blocks");
                let frame = Frames::at(&d, blocks.frames_offset, header.count).next().unwrap().unwrap();
                let index = rec.lock().unwrap().len();
                let answer = script(index, frame.opcode, frame.body, blocks.cookie);
                let (mut op, mut id) = (frame.opcode, frame.request_id);
                rec.lock().unwrap().push(d.clone());
                if let Some((status, body)) = answer {
                    if status == Status::AuthFailed as u8 {
                        (op, id) = (wire::OPCODE_NONE, 0);
                    }
                    let mut out = vec![0u8; 2048];
                    let mut w = DatagramWriter::response(&mut out, header.client_id).unwrap();
                    w.push(op, status, id, &body).unwrap();
                    let len = w.finish();
                    socket.send_to(&out[..len], from).unwrap();
                }
            }
        });
        FakeNode { addr, received, stop, thread: Some(thread) }
    }

    fn received(&self) -> Vec<Vec<u8>> {
        self.received.lock().unwrap().clone()
    }

    fn v4(&self) -> SocketAddrV4 {
        match self.addr {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => unreachable!("bound on 127.0.0.1"),
        }
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// (client id, request id) of a request datagram.
fn ids(d: &[u8]) -> (u64, u64) {
    let h = wire::decode_header(d).unwrap();
    (h.client_id, Frames::new(d, h.count).next().unwrap().unwrap().request_id)
}

const PARTITIONS: u32 = 8;

fn hint_to(node: &FakeNode, key: &[u8]) -> Vec<u8> {
    let partition = u32::from(Placement::new(PARTITIONS, 1).unwrap().partition_of(key));
    let mut body = vec![0u8; vigil_client::LEADER_HINT_LEN];
    LeaderHint { node: 2, address: node.v4(), partition, partitions: PARTITIONS }.encode(&mut body);
    body
}

fn ok_version(v: u64) -> Option<(u8, Vec<u8>)> {
    Some((Status::Ok as u8, v.to_le_bytes().to_vec()))
}

fn config() -> ClientConfig {
    ClientConfig {
        client_id: Some(77),
        timeout: Duration::from_millis(100),
        tries_per_node: 2,
        attempts_max: 12,
        retry_pause: Duration::from_millis(10),
        ..ClientConfig::default()
    }
}

#[test]
fn a_not_leader_hint_sends_the_same_datagram_to_the_leader_and_later_keys_of_its_partition_go_there_first() {
    let leader = FakeNode::start(Box::new(|n, _, _, _| ok_version(100 + n as u64)));
    let hint = hint_to(&leader, b"k");
    let follower = FakeNode::start(Box::new(move |_, _, _, _| Some((Status::NotLeader as u8, hint.clone()))));
    let mut c = Client::with_config(follower.addr, config()).unwrap();

    assert_eq!(c.set(b"k", b"v1").unwrap(), 100, "the leader's answer");
    let (at_follower, at_leader) = (follower.received(), leader.received());
    assert_eq!(at_follower.len(), 1);
    assert_eq!(at_leader.len(), 1);
    assert_eq!(at_leader[0], at_follower[0], "the redirect is the same datagram: same ids, same body");
    assert_eq!(ids(&at_leader[0]), (77, 1));
    assert_eq!(c.leaders().partitions(), PARTITIONS);
    assert_eq!(c.leaders().leader_of(b"k"), Some(leader.addr));
    assert_eq!(c.stats().redirects, 1);

    // The next write of the key goes straight to the leader, under the next request id.
    assert_eq!(c.set(b"k", b"v2").unwrap(), 101);
    assert_eq!(follower.received().len(), 1, "the follower is not asked again");
    assert_eq!(ids(&leader.received()[1]), (77, 2));

    // A key of another partition has no leader known yet: it goes to the seed (which redirects it).
    let other = (0..1000u32)
        .map(|i| format!("key{i}"))
        .find(|k| c.leaders().partition_of(k.as_bytes()) != c.leaders().partition_of(b"k"))
        .unwrap();
    assert_eq!(c.leaders().leader_of(other.as_bytes()), None);
    match c.set(other.as_bytes(), b"x") {
        // The seed's hint names the partition of "k", not this key's: the "leader" answers anyway.
        Ok(v) => assert_eq!(v, 102),
        Err(e) => panic!("{e}"),
    }
    assert_eq!(follower.received().len(), 2, "an unknown partition starts at the seed");
}

#[test]
fn an_empty_not_leader_or_busy_is_retried_with_the_same_ids_after_a_pause() {
    let node = FakeNode::start(Box::new(|n, _, _, _| match n {
        0 | 1 => Some((Status::NotLeader as u8, Vec::new())),
        2 => Some((Status::Busy as u8, Vec::new())),
        _ => ok_version(9),
    }));
    let mut c = Client::with_config(node.addr, config()).unwrap();
    assert_eq!(c.set(b"k", b"v").unwrap(), 9);
    let got = node.received();
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|d| d == &got[0]), "every retry is the same datagram");
    assert_eq!(c.stats().retried, 3);
    assert_eq!(c.leaders().partitions(), 0, "an empty NOT_LEADER teaches nothing");
}

#[test]
fn an_empty_not_leader_moves_on_to_the_next_seed() {
    // A follower that knows no leader (cut off from the others), then one that answers.
    let lost = FakeNode::start(Box::new(|_, _, _, _| Some((Status::NotLeader as u8, Vec::new()))));
    let alive = FakeNode::start(Box::new(|_, _, _, _| ok_version(4)));
    let mut c = Client::with_config([lost.addr, alive.addr].as_slice(), config()).unwrap();
    assert_eq!(c.set(b"k", b"v").unwrap(), 4);
    assert_eq!((lost.received().len(), alive.received().len()), (1, 1));
    assert_eq!(lost.received()[0], alive.received()[0], "the same datagram");
    // The next request starts at the seed that answered.
    assert_eq!(c.set(b"k", b"w").unwrap(), 4);
    assert_eq!(lost.received().len(), 1);
}

#[test]
fn a_timeout_resends_to_the_same_node_then_tries_the_next_seed() {
    // The first node never answers; the second answers OK.
    let silent = FakeNode::start(Box::new(|_, _, _, _| None));
    let alive = FakeNode::start(Box::new(|_, _, _, _| ok_version(5)));
    let mut c = Client::with_config([silent.addr, alive.addr].as_slice(), config()).unwrap();
    assert_eq!(c.set(b"k", b"v").unwrap(), 5);
    let (lost, answered) = (silent.received(), alive.received());
    assert_eq!(lost.len(), 2, "tries_per_node tries at the silent node");
    assert_eq!(answered.len(), 1);
    assert!(lost.iter().all(|d| d == &answered[0]), "the same datagram every time");
    assert_eq!(c.stats().timeouts, 2);

    // A node that drops only the first copy: the resend with the same ids is answered.
    let flaky = FakeNode::start(Box::new(|n, _, _, _| if n == 0 { None } else { ok_version(6) }));
    let mut c = Client::with_config(flaky.addr, config()).unwrap();
    assert_eq!(c.set(b"k", b"v").unwrap(), 6);
    let got = flaky.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], got[1]);
}

#[test]
fn retries_are_bounded_and_a_bad_hint_is_an_error() {
    let silent = FakeNode::start(Box::new(|_, _, _, _| None));
    let mut c = Client::with_config(silent.addr, config()).unwrap();
    match c.get(b"k") {
        Err(ClientError::Exhausted { attempts: 12, last: "timeout", .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(silent.received().len(), 12);

    let liar = FakeNode::start(Box::new(|_, _, _, _| Some((Status::NotLeader as u8, vec![1, 2, 3]))));
    let mut c = Client::with_config(liar.addr, config()).unwrap();
    assert!(matches!(c.set(b"k", b"v"), Err(ClientError::BadHint(_))));
}

/// The request frame and blocks of a datagram the client sent.
fn request_of(d: &[u8]) -> (ext::Extensions, u64, Vec<u8>) {
    let h = wire::decode_header(d).unwrap();
    let blocks = ext::decode(d, h.flags).unwrap();
    let f = Frames::at(d, blocks.frames_offset, h.count).next().unwrap().unwrap();
    (blocks, f.request_id, f.body.to_vec())
}

#[test]
fn address_unproven_is_resent_with_its_cookie_which_later_datagrams_carry_until_a_new_one_is_given() {
    // A node that wants cookie `want` (the first, then after its "restart" another) on a GET.
    let want = Arc::new(Mutex::new([0x11u8; 16]));
    let w = Arc::clone(&want);
    let node = FakeNode::start(Box::new(move |_, op, _, cookie| {
        let want = *w.lock().unwrap();
        match (op, cookie) {
            (wire::opcode::GET, c) if c != Some(want) => Some((Status::AddressUnproven as u8, want.to_vec())),
            (wire::opcode::GET, _) => Some((Status::NotFound as u8, Vec::new())),
            _ => Some((Status::Ok as u8, Vec::new())),
        }
    }));
    let mut c = Client::with_config(node.addr, config()).unwrap();
    assert_eq!(c.get(b"k").unwrap(), None);
    let got = node.received();
    assert_eq!(got.len(), 2, "refused, then resent with the cookie");
    let ((first, id0, body0), (second, id1, body1)) = (request_of(&got[0]), request_of(&got[1]));
    assert_eq!((first.cookie, second.cookie), (None, Some([0x11; 16])));
    assert_eq!((id0, body0), (id1, body1), "the same request");
    assert_eq!(c.cookie(node.addr), Some([0x11; 16]));
    assert_eq!(c.stats().cookies_learnt, 1);

    c.ping().unwrap();
    assert_eq!(request_of(&node.received()[2]).0.cookie, Some([0x11; 16]), "every later datagram");

    *want.lock().unwrap() = [0x22; 16];
    assert_eq!(c.get(b"k").unwrap(), None, "told again: the new cookie is fetched and used");
    let got = node.received();
    assert_eq!(got.len(), 5);
    assert_eq!(request_of(&got[4]).0.cookie, Some([0x22; 16]));
    assert_eq!(c.stats().cookies_learnt, 2);

    // A node that refuses the very cookie it gives: the request ends, no loop.
    let stubborn =
        FakeNode::start(Box::new(|_, _, _, _| Some((Status::AddressUnproven as u8, vec![0x33; 16]))));
    let mut c = Client::with_config(stubborn.addr, config()).unwrap();
    assert!(matches!(c.get(b"k"), Err(ClientError::Server(Status::AddressUnproven))));
    assert_eq!(stubborn.received().len(), 2);
}

#[test]
fn signed_requests_carry_a_valid_mac_and_a_resend_has_a_fresh_nonce_but_the_same_frame() {
    let creds = Credentials::from_hex(7, &"5e".repeat(32)).unwrap();
    let node = FakeNode::start(Box::new(|n, _, _, _| if n == 0 { None } else { ok_version(3) }));
    let signed = ClientConfig { client_id: Some(100_000), credentials: Some(creds), ..config() };
    let mut c = Client::with_config(node.addr, signed).unwrap();
    assert_eq!(c.set(b"k", b"v").unwrap(), 3);
    let got = node.received();
    assert_eq!(got.len(), 2, "the first attempt went unanswered");
    let ((a, id_a, body_a), (b, id_b, body_b)) = (request_of(&got[0]), request_of(&got[1]));
    assert_eq!((id_a, body_a), (id_b, body_b), "the same request id and body: exactly-once");
    let (a, b) = (a.auth.unwrap(), b.auth.unwrap());
    assert_eq!((a.key_id, b.key_id), (7, 7));
    assert_eq!(b.nonce, a.nonce + 1, "a resend is a new datagram");
    assert!(mac::verify(&creds.key, &got[0], a.mac_offset, &a.mac));
    assert!(mac::verify(&creds.key, &got[1], b.mac_offset, &b.mac));
    assert_eq!(ids(&got[1]).0, 100_000);

    let anonymous = ClientConfig { credentials: Some(creds), client_id: None, ..config() };
    assert!(matches!(Client::with_config(node.addr, anonymous), Err(ClientError::NoClientId)));
}

#[test]
fn auth_failed_names_its_reason_and_forbidden_and_quota_are_errors() {
    let node = FakeNode::start(Box::new(|n, _, _, _| match n {
        0 => Some((Status::AuthFailed as u8, vec![Refusal::BadMac as u8])),
        1 => Some((Status::Forbidden as u8, Vec::new())),
        2 => Some((Status::QuotaExceeded as u8, Vec::new())),
        // Every replay window in use: retried after a pause, then answered.
        3 => Some((Status::AuthFailed as u8, vec![Refusal::TooManySessions as u8])),
        _ => ok_version(8),
    }));
    let mut c = Client::with_config(node.addr, config()).unwrap();
    let e = c.set(b"k", b"v").unwrap_err();
    assert!(matches!(e, ClientError::AuthFailed(Some(Refusal::BadMac))), "{e:?}");
    assert!(e.to_string().contains("bad_mac"), "{e}");
    assert!(matches!(c.set(b"k", b"v"), Err(ClientError::Forbidden)));
    assert!(matches!(c.set(b"k", b"v"), Err(ClientError::QuotaExceeded)));
    assert_eq!(c.set(b"k", b"v").unwrap(), 8);
    assert_eq!(c.stats().retried, 1);
}
