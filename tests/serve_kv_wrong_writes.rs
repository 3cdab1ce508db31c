//! Wrong writes through `vigil serve` over loopback (issue 8): a SET frame shorter than its body
//! writes nothing, a reused (client id, sequence) pair with another command is refused by its own
//! status instead of getting the earlier answer, and one datagram with a huge sequence number does not
//! make a client's later writes stale.

mod common;

use common::*;
use std::net::UdpSocket;
use std::time::Duration;
use vigil::kv::protocol::{encode_write_body, request_body_len};
use vigil::kv::Op;
use vigil::wire::{self, opcode, DatagramWriter, Status};

fn body(op: &Op<'_>) -> Vec<u8> {
    let mut out = vec![0; request_body_len(op)];
    encode_write_body(op, &mut out).unwrap();
    out
}

fn datagram(client_id: u64, op: u8, request_id: u64, body: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 1472];
    let mut w = DatagramWriter::request(&mut buf, client_id).unwrap();
    w.push(op, 0, request_id, body).unwrap();
    let n = w.finish();
    buf.truncate(n);
    buf
}

/// Sends `req` until its one answer is neither NOT_LEADER nor BUSY; returns (status, body).
fn call(sock: &UdpSocket, to: &str, req: &[u8]) -> (Status, Vec<u8>) {
    call_final(sock, to, || req.to_vec())
}

fn set(sock: &UdpSocket, to: &str, client: u64, seq: u64, key: &[u8], value: &[u8]) -> Status {
    call(sock, to, &datagram(client, opcode::SET, seq, &body(&Op::Set { key, value }))).0
}

fn get(sock: &UdpSocket, to: &str, key: &[u8]) -> Option<Vec<u8>> {
    match call(sock, to, &datagram(0, opcode::GET, 1, key)) {
        (Status::Ok, b) => Some(b[8..].to_vec()),
        (Status::NotFound, _) => None,
        other => panic!("GET {key:?}: {other:?}"),
    }
}

#[test]
fn wrong_writes_change_nothing() {
    let dir = disk_temp_dir("serve-kv-wrong-writes");
    let port = free_udp_port();
    let server = Server::start(&dir, &kv_node_config(port, "vigil-data", 1000));
    let to = format!("127.0.0.1:{port}");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();

    // A SET frame whose body_len is 5 bytes short of its body: MALFORMED, and no truncated value.
    let mut short = datagram(0, opcode::SET, 1, &body(&Op::Set { key: b"short", value: b"the whole value" }));
    let len_at = wire::HEADER_LEN + 4;
    let body_len = u32::from_le_bytes(short[len_at..len_at + 4].try_into().unwrap());
    short[len_at..len_at + 4].copy_from_slice(&(body_len - 5).to_le_bytes());
    let resp = exchange(&sock, &to, &short, Duration::from_secs(2)).expect("an answer");
    assert_eq!(answers(&resp), vec![(0, Status::Malformed as u8, 0, vec![])]);
    assert_eq!(get(&sock, &to, b"short"), None);

    // The same sequence number for another command: refused, the first write stands.
    assert_eq!(set(&sock, &to, 51, 1, b"reused", b"first"), Status::Ok);
    assert_eq!(set(&sock, &to, 51, 1, b"reused", b"second"), Status::SequenceReused);
    assert_eq!(set(&sock, &to, 51, 1, b"other-key", b"first"), Status::SequenceReused);
    assert_eq!(get(&sock, &to, b"reused"), Some(b"first".to_vec()));
    assert_eq!(get(&sock, &to, b"other-key"), None);
    // A true retry still gets the original answer.
    assert_eq!(set(&sock, &to, 51, 1, b"reused", b"first"), Status::Ok);

    // One datagram with the victim's client id and sequence 2^64-1 does not lock the victim out.
    assert_eq!(set(&sock, &to, 52, 1, b"victim", b"1"), Status::Ok);
    assert_eq!(set(&sock, &to, 52, u64::MAX, b"victim", b"evil"), Status::SequenceTooFar);
    assert_eq!(set(&sock, &to, 52, 2, b"victim", b"2"), Status::Ok);
    assert_eq!(get(&sock, &to, b"victim"), Some(b"2".to_vec()));

    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}
