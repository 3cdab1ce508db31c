//! `vigil serve` as a store, over loopback: the KV opcodes on two shards (half the keys forwarded
//! to the other shard through the inboxes), answers given only once writes are durable, the error
//! answers of bad requests, exactly-once retries, and every write still there after a clean restart
//! (snapshots included). The SIGKILL crash cycles are in `crash_kill.rs`.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};
use vigil::kv::protocol::{encode_write_body, parse_answer, request_body_len, Answer};
use vigil::kv::Op;
use vigil::wire::{opcode, DatagramWriter, Status};

fn config(port: u16, snapshot_every: u64) -> String {
    kv_node_config(port, "vigil-data", snapshot_every)
}

fn body(op: &Op<'_>) -> Vec<u8> {
    let mut out = vec![0; request_body_len(op)];
    encode_write_body(op, &mut out).unwrap();
    out
}

/// A client: one socket, one client id, request ids counting up.
struct Client {
    sock: UdpSocket,
    to: String,
    client_id: u64,
    next_id: u64,
}

impl Client {
    fn new(port: u16, client_id: u64) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        Self { sock, to: format!("127.0.0.1:{port}"), client_id, next_id: 1 }
    }

    /// Sends one datagram of `frames` (opcode, request id, body) and collects one answer per frame,
    /// whatever datagrams they come in (writes are answered in datagrams of their own).
    fn send(&self, frames: &[(u8, u64, Vec<u8>)]) -> BTreeMap<u64, (u8, Status, Vec<u8>)> {
        let mut buf = vec![0u8; 1472];
        let mut w = DatagramWriter::request(&mut buf, self.client_id).unwrap();
        for (op, id, b) in frames {
            w.push(*op, 0, *id, b).unwrap();
        }
        let n = w.finish();
        self.sock.send_to(&buf[..n], &self.to).unwrap();
        let mut got = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut resp = vec![0u8; 2048];
        while got.len() < frames.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no answer to all of {frames:?} in 10 s; got {got:?}");
            self.sock.set_read_timeout(Some(left)).unwrap();
            let n = self.sock.recv(&mut resp).expect("an answer");
            for (op, status, id, b) in answers(&resp[..n]) {
                assert!(
                    got.insert(id, (op, Status::from_u8(status).unwrap(), b)).is_none(),
                    "answered twice: {id}"
                );
            }
        }
        got
    }

    /// One request; retried (same id) while the node answers NOT_LEADER or BUSY.
    fn one(&mut self, op: u8, b: Vec<u8>) -> (Status, Vec<u8>) {
        let id = self.next_id;
        self.next_id += 1;
        self.again(op, id, b)
    }

    fn again(&self, op: u8, id: u64, b: Vec<u8>) -> (Status, Vec<u8>) {
        for _ in 0..100 {
            let (_, status, body) = self.send(&[(op, id, b.clone())]).remove(&id).unwrap();
            if status != Status::NotLeader && status != Status::Busy {
                return (status, body);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("request {id} stayed NOT_LEADER/BUSY");
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> u64 {
        let (status, b) = self.one(opcode::SET, body(&Op::Set { key, value }));
        assert_eq!(status, Status::Ok, "SET {key:?}");
        let Answer::Version(v) = parse_answer(opcode::SET, &b).unwrap() else { panic!() };
        v
    }

    fn get(&mut self, key: &[u8]) -> Option<(Vec<u8>, u64)> {
        let (status, b) = self.one(opcode::GET, key.to_vec());
        match status {
            Status::NotFound => None,
            Status::Ok => match parse_answer(opcode::GET, &b).unwrap() {
                Answer::Value { value, version } => Some((value.to_vec(), version)),
                other => panic!("{other:?}"),
            },
            other => panic!("GET {key:?}: {other:?}"),
        }
    }
}

#[test]
fn two_shards_serve_kv_durably_across_a_restart() {
    let dir = disk_temp_dir("serve-kv");
    let port = free_udp_port();
    let server = Server::start(&dir, &config(port, 100));
    let mut c = Client::new(port, 41);
    let mut model = BTreeMap::new();
    for i in 0..300u32 {
        let key = format!("key-{i}");
        let value = format!("value-{i}-{}", "x".repeat((i % 50) as usize));
        let version = c.set(key.as_bytes(), value.as_bytes());
        model.insert(key, (value.into_bytes(), version));
    }
    for (key, (value, version)) in &model {
        assert_eq!(c.get(key.as_bytes()), Some((value.clone(), *version)), "{key}");
    }

    // INCR, CAS, DEL and their errors.
    let incr = |d: i64| body(&Op::Incr { key: b"counter", delta: d });
    assert_eq!(c.one(opcode::INCR, incr(5)).0, Status::Ok);
    let (status, b) = c.one(opcode::INCR, incr(-2));
    assert_eq!(status, Status::Ok);
    let Answer::Incremented { value: 3, version } = parse_answer(opcode::INCR, &b).unwrap() else {
        panic!("{b:?}")
    };
    let cas = |expected: u64| body(&Op::Cas { key: b"counter", expected_version: expected, value: b"9" });
    assert_eq!(c.one(opcode::CAS, cas(version + 1000)).0, Status::CasMismatch);
    assert_eq!(c.one(opcode::CAS, cas(version)).0, Status::Ok);
    assert_eq!(c.one(opcode::INCR, body(&Op::Incr { key: b"key-1", delta: 1 })).0, Status::NotInteger);
    let (status, b) = c.one(opcode::DEL, b"key-0".to_vec());
    assert_eq!((status, b), (Status::Ok, vec![1]));
    model.remove("key-0");
    assert_eq!(c.get(b"key-0"), None);
    let big = vec![b'v'; 1300];
    assert_eq!(c.one(opcode::SET, body(&Op::Set { key: b"big", value: &big })).0, Status::ValueTooLarge);
    let long_key = vec![b'k'; 300];
    assert_eq!(c.one(opcode::SET, body(&Op::Set { key: &long_key, value: b"v" })).0, Status::KeyTooLarge);
    assert_eq!(c.one(opcode::GET, long_key.clone()).0, Status::KeyTooLarge);
    assert_eq!(
        c.one(opcode::SET, vec![0xff]).0,
        Status::BadRequest,
        "a SET body shorter than its key length"
    );
    assert_eq!(c.one(opcode::INCR, vec![1, 2]).0, Status::BadRequest);

    // Exactly-once: the last write again, same request id, gets the original answer; the same
    // request id with another command is refused (tests/serve_kv_wrong_writes.rs has more).
    let id = c.next_id;
    let v1 = c.set(b"once", b"first");
    assert_eq!(
        c.again(opcode::SET, id, body(&Op::Set { key: b"once", value: b"first" })),
        (Status::Ok, v1.to_le_bytes().to_vec())
    );
    assert_eq!(
        c.again(opcode::SET, id, body(&Op::Set { key: b"once", value: b"second" })),
        (Status::SequenceReused, vec![])
    );
    assert_eq!(c.get(b"once"), Some((b"first".to_vec(), v1)));
    model.insert("once".into(), (b"first".to_vec(), v1));

    // Several frames in one datagram: reads answered in it, writes each in a datagram of their own.
    let frames: Vec<(u8, u64, Vec<u8>)> = (0..6u64)
        .map(|i| {
            let id = c.next_id + i;
            if i % 2 == 0 {
                (opcode::GET, id, b"key-7".to_vec())
            } else {
                (opcode::SET, id, body(&Op::Set { key: format!("multi-{i}").as_bytes(), value: b"m" }))
            }
        })
        .collect();
    c.next_id += 6;
    let got = c.send(&frames);
    assert!(got.values().all(|(_, s, _)| *s == Status::Ok), "{got:?}");

    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
    let forwarded: u64 = out
        .lines()
        .filter_map(|l| l.split("kv: forwarded ").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(forwarded > 50, "about half the requests land on the shard that does not own the key: {out}");
    assert!(out.contains("snapshots "), "{out}");

    // A clean restart: everything is there (snapshots plus the log after them).
    let server = Server::start(&dir, &config(port, 100));
    assert!(server.lines.iter().any(|l| l.contains("recovered: snapshot at")), "{:?}", server.lines);
    let mut c = Client::new(port, 42);
    for (key, (value, version)) in &model {
        assert_eq!(c.get(key.as_bytes()), Some((value.clone(), *version)), "{key} after restart");
    }
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}
