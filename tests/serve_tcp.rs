//! `vigil serve` on TCP: the binary protocol with a length prefix on the data plane's port, and
//! the acceptor's refusals (a protocol not served is closed).

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use vigil::kv::protocol::{encode_write_body, request_body_len};
use vigil::kv::Op;
use vigil::wire::{opcode, DatagramWriter, Status};

/// One request datagram of `frames`, with its length prefix.
fn framed(client_id: u64, frames: &[(u8, u64, Vec<u8>)]) -> Vec<u8> {
    let mut buf = vec![0u8; 1472];
    let mut w = DatagramWriter::request(&mut buf, client_id).unwrap();
    for (op, id, b) in frames {
        w.push(*op, 0, *id, b).unwrap();
    }
    let n = w.finish();
    let mut out = (n as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&buf[..n]);
    out
}

/// Reads one length-prefixed response datagram and returns its answers.
fn read_answers(s: &mut TcpStream) -> Vec<(u8, u8, u64, Vec<u8>)> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("a length prefix");
    let mut d = vec![0u8; u32::from_le_bytes(len) as usize];
    s.read_exact(&mut d).expect("a datagram");
    answers(&d)
}

#[test]
fn the_binary_protocol_over_tcp_sets_and_gets_durably_and_garbage_is_closed() {
    let dir = disk_temp_dir("serve-tcp");
    let port = free_udp_port();
    let server = Server::start(&dir, &kv_node_config(port, "vigil-data", 100_000));
    assert!(server.ready_line.contains("tcp"), "{}", server.ready_line);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let op = Op::Set { key: b"tcp-key", value: b"tcp-value" };
    let mut body = vec![0; request_body_len(&op)];
    encode_write_body(&op, &mut body).unwrap();
    s.write_all(&framed(7, &[(opcode::SET, 1, body)])).unwrap();
    let a = read_answers(&mut s);
    assert_eq!((a[0].0, a[0].1, a[0].2), (opcode::SET, Status::Ok as u8, 1), "{a:?}");
    // A GET and a PING in one datagram; a GET of a key another shard owns is answered later, in
    // a datagram of its own: collect answers by request id.
    s.write_all(&framed(7, &[(opcode::GET, 2, b"tcp-key".to_vec()), (opcode::PING, 3, Vec::new())])).unwrap();
    let mut got = std::collections::BTreeMap::new();
    while got.len() < 2 {
        for (op, status, id, body) in read_answers(&mut s) {
            assert!(got.insert(id, (op, status, body)).is_none(), "answered twice: {id}");
        }
    }
    assert_eq!(got[&2].1, Status::Ok as u8);
    assert_eq!(&got[&2].2[8..], b"tcp-value", "GET answers version then value");
    assert_eq!(got[&3].1, Status::Ok as u8);

    // A TLS hello is not served: the connection is closed.
    let mut tls = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tls.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tls.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(tls.read(&mut buf).unwrap_or(0), 0, "closed without an answer");

    // A length prefix beyond the datagram limit: one MALFORMED answer, then closed.
    let mut bad = TcpStream::connect(("127.0.0.1", port)).unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    bad.write_all(&[0xff, 0xff, 0, 0, b'V', b'G', 1, 0]).unwrap();
    let a = read_answers(&mut bad);
    assert_eq!(a[0].1, Status::Malformed as u8);
    assert_eq!(bad.read(&mut buf).unwrap_or(0), 0, "closed after the error");
    drop((s, tls, bad));
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
    assert!(out.contains("tcp acceptor: accepted 3 handed 2"), "{out}");
}

#[test]
fn a_start_whose_tcp_port_is_taken_is_refused_before_any_store_is_created() {
    let dir = disk_temp_dir("serve-tcp-taken");
    let port = free_udp_port();
    let _taken = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::fs::write(dir.join("vigil.toml"), kv_node_config(port, "vigil-data", 100_000)).unwrap();
    let (status, out) =
        run_vigil_to_exit(&dir, &["serve", "--config", "vigil.toml"], Duration::from_secs(30));
    assert!(!status.success(), "{out}");
    assert!(out.contains("tcp: cannot listen on") && out.contains("in use"), "{out}");
    assert!(!dir.join("vigil-data").exists(), "a refused start created the store: {out}");
}
