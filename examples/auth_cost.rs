//! What a signed datagram costs, per datagram, on one core (docs/BENCHMARKS.md, "Authentication"):
//! the client's side (`auth::sign`: the 40-byte block and one keyed BLAKE3 over the datagram) and
//! the node's (`Gate::admit`: the blocks, the key, the MAC checked in constant time, the client id,
//! the timestamp and the replay window), for a PING and for a SET of a 16-byte key and value,
//! against a baseline in the same run: the gate admitting the same datagram anonymously.
//!
//!   cargo run --release --example auth_cost [DATAGRAMS]

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Instant;
use vigil::auth::ext::FLAG_AUTH;
use vigil::auth::{self, Credentials, NodeAuth};
use vigil::config::AuthConfig;
use vigil::kv::protocol::{encode_write_body, request_body_len};
use vigil::kv::Op;
use vigil::wire::{self, opcode, DatagramWriter};
use vigil_pmd::{Nanos, Peer};

const KEY: &str = "1f2e3d4c5b6a79880f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778";

/// A request datagram of one frame, with room for the authentication block if `flags` says so.
fn datagram(flags: u8, client_id: u64, op: u8, body: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let mut w = DatagramWriter::request_with_blocks(&mut buf, client_id, flags).unwrap();
    w.push(op, 0, 1, body).unwrap();
    let len = w.finish();
    buf.truncate(len);
    buf
}

fn ns_per(n: u64, t: Instant) -> f64 {
    t.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    let n: u64 = std::env::args().nth(1).map_or(2_000_000, |a| a.parse().expect("a number of datagrams"));
    let config: AuthConfig = toml::from_str(&format!(
        "anonymous = \"read-write\"\n[[clients]]\nname = \"lg\"\nkey_id = 7\nclient_id = 100000\nkey = \"{KEY}\"\nacl = \"+@all\"\n"
    ))
    .unwrap();
    let node = NodeAuth::new(&config, [9; 32]).unwrap();
    let creds = Credentials::from_hex(7, KEY).unwrap();
    let peer = Peer::from_ip_port(Ipv4Addr::LOCALHOST, 40_000);
    let unix_ns = |i: u64| 1_800_000_000_000_000_000 + i;
    let mut set_body = vec![0u8; request_body_len(&Op::Set { key: &[b'k'; 16], value: &[b'v'; 16] })];
    encode_write_body(&Op::Set { key: &[b'k'; 16], value: &[b'v'; 16] }, &mut set_body).unwrap();
    println!("{n} datagrams each; ns per datagram (one core)");
    println!("  {:<28} {:>8} {:>12} {:>14} {:>16}", "", "bytes", "sign", "admit signed", "admit anonymous");
    for (name, op, body) in
        [("PING", opcode::PING, &[][..]), ("SET 16-byte key and value", opcode::SET, &set_body)]
    {
        let mut signed = datagram(FLAG_AUTH, 100_000, op, body);
        let t = Instant::now();
        for i in 0..n {
            auth::sign(black_box(&mut signed), &creds, unix_ns(i) / 1_000_000, i + 1);
        }
        let sign_ns = ns_per(n, t);
        // The gate's cost alone: datagrams signed beforehand, each with its own nonce, in chunks.
        let chunk = 4096u64;
        let mut pre: Vec<Vec<u8>> = (0..chunk).map(|_| signed.clone()).collect();
        let header = wire::decode_header(&signed).unwrap();
        let mut gate = node.gate();
        let mut admit_ns = 0.0;
        let mut nonce = 1u64;
        for _ in 0..n / chunk {
            for d in &mut pre {
                nonce += 1;
                auth::sign(d, &creds, unix_ns(nonce) / 1_000_000, nonce);
            }
            let t = Instant::now();
            for d in &pre {
                black_box(gate.admit(d, &header, &peer, Nanos(unix_ns(nonce))).expect("admitted"));
            }
            admit_ns += t.elapsed().as_nanos() as f64;
        }
        admit_ns /= (n / chunk * chunk) as f64;
        let anonymous = datagram(0, 5, op, body);
        let header = wire::decode_header(&anonymous).unwrap();
        let t = Instant::now();
        for _ in 0..n {
            black_box(
                gate.admit(black_box(&anonymous), &header, &peer, Nanos(unix_ns(0))).expect("admitted"),
            );
        }
        let anon_ns = ns_per(n, t);
        println!(
            "  {name:<28} {:>8} {sign_ns:>12.1} {admit_ns:>14.1} {anon_ns:>16.1}",
            format!("{}/{}", signed.len(), anonymous.len())
        );
    }
}
