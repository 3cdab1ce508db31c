//! The client against a real single-node `vigil serve` (kernel sockets on loopback, a durable store
//! in a fresh directory), started as a child process like tests/common does.
//!
//! Covers the KV operations, a request resent by hand with the same request id (the original
//! answer, nothing written twice; another body under the same id is refused), and the library's
//! own resend after a lost answer: a proxy between client and node drops the node's first answer
//! to an INCR, the client times out and resends the same datagram, and the node answers from its
//! client table: the counter is incremented once.
//!
//! The node is started by `node::Node` (vigil's own test helpers).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use vigil_client::{opcode, Client, ClientConfig, ClientError, Status};

mod node;
use node::Node;

fn config() -> ClientConfig {
    ClientConfig { timeout: Duration::from_millis(500), ..ClientConfig::default() }
}

#[test]
fn set_get_del_incr_cas_against_a_real_node() {
    let node = Node::start("kv");
    let mut c = Client::with_config(node.addr, config()).unwrap();
    c.ping().unwrap();
    assert_eq!(c.get(b"greeting").unwrap(), None);
    let v1 = c.set(b"greeting", b"hello").unwrap();
    let got = c.get(b"greeting").unwrap().unwrap();
    assert_eq!((got.value.as_slice(), got.version), (&b"hello"[..], v1));

    assert_eq!(c.cas(b"greeting", v1 + 1, b"nope").unwrap(), None, "a wrong version writes nothing");
    let v2 = c.cas(b"greeting", v1, b"hi").unwrap().expect("the right version");
    assert!(v2 > v1);
    assert_eq!(c.get(b"greeting").unwrap().unwrap().value, b"hi");
    assert_eq!(c.cas(b"fresh", 0, b"new").unwrap().map(|v| v > v2), Some(true), "0: only if absent");

    assert_eq!(c.incr(b"n", 5).unwrap().0, 5);
    assert_eq!(c.incr(b"n", -7).unwrap().0, -2);
    assert!(matches!(c.incr(b"greeting", 1), Err(ClientError::Server(Status::NotInteger))));

    assert!(c.del(b"greeting").unwrap());
    assert!(!c.del(b"greeting").unwrap());
    assert_eq!(c.get(b"greeting").unwrap(), None);
    assert_eq!(c.stats().redirects, 0, "one node leads everything");
}

#[test]
fn a_request_resent_with_the_same_id_gets_its_original_answer_and_writes_once() {
    let node = Node::start("same-id");
    let mut c = Client::with_config(node.addr, config()).unwrap();
    let body = |value: &[u8]| {
        let mut b = vec![1u8, 0, b'k'];
        b.extend_from_slice(value);
        b
    };
    let id = c.next_request_id();
    let first = c.execute(id, opcode::SET, Some(b"k"), &body(b"one")).unwrap();
    assert_eq!(first.status, Status::Ok as u8);
    let again = c.execute(id, opcode::SET, Some(b"k"), &body(b"one")).unwrap();
    assert_eq!(again, first, "the same status and version: answered from the client table");

    // Another write in between, then the old id again: STALE, nothing written.
    let id2 = c.next_request_id();
    let v2 = c.execute(id2, opcode::SET, Some(b"k"), &body(b"two")).unwrap();
    assert_eq!(v2.status, Status::Ok as u8);
    let v2 = u64::from_le_bytes(v2.body.try_into().unwrap());
    let stale = c.execute(id, opcode::SET, Some(b"k"), &body(b"one")).unwrap();
    assert_eq!(stale.status, Status::Stale as u8);
    let now = c.get(b"k").unwrap().unwrap();
    assert_eq!((now.value.as_slice(), now.version), (&b"two"[..], v2));

    // The last write's id under another body: SEQUENCE_REUSED, the earlier write stands.
    let reused = c.execute(id2, opcode::SET, Some(b"k"), &body(b"three")).unwrap();
    assert!(reused.status == Status::SequenceReused as u8, "{reused:?}");
    assert_eq!(c.get(b"k").unwrap().unwrap().value, b"two");
}

/// A UDP proxy between one client and a node that drops the node's first `drop_answers` answers.
struct LossyProxy {
    addr: SocketAddr,
    dropped: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LossyProxy {
    fn start(node: SocketAddr, drop_answers: u32) -> LossyProxy {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        front.set_nonblocking(true).unwrap();
        back.set_nonblocking(true).unwrap();
        let addr = front.local_addr().unwrap();
        let (dropped, stop) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicBool::new(false)));
        let (d, s) = (Arc::clone(&dropped), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            let mut client = None;
            while !s.load(Ordering::Relaxed) {
                let mut idle = true;
                if let Ok((n, from)) = front.recv_from(&mut buf) {
                    client = Some(from);
                    back.send_to(&buf[..n], node).unwrap();
                    idle = false;
                }
                if let Ok((n, _)) = back.recv_from(&mut buf) {
                    idle = false;
                    if d.load(Ordering::Relaxed) < drop_answers {
                        d.fetch_add(1, Ordering::Relaxed);
                    } else if let Some(c) = client {
                        front.send_to(&buf[..n], c).unwrap();
                    }
                }
                if idle {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        LossyProxy { addr, dropped, stop, thread: Some(thread) }
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

#[test]
fn a_lost_answer_is_resent_by_the_library_with_the_same_id_and_the_write_applies_once() {
    let node = Node::start("lost-answer");
    let proxy = LossyProxy::start(node.addr, 1);
    let mut c =
        Client::with_config(proxy.addr, ClientConfig { timeout: Duration::from_millis(300), ..config() })
            .unwrap();
    let (value, version) = c.incr(b"counter", 1).unwrap();
    assert_eq!(proxy.dropped.load(Ordering::Relaxed), 1, "the node's first answer was lost");
    assert_eq!(c.stats().timeouts, 1);
    assert_eq!(c.stats().sent, 2, "one resend");
    assert_eq!(value, 1, "the resent INCR was answered from the client table, not added twice");

    let mut direct = Client::with_config(node.addr, config()).unwrap();
    let now = direct.get(b"counter").unwrap().unwrap();
    assert_eq!((now.value.as_slice(), now.version), (&b"1"[..], version));
}
