//! Access control on the binary protocol through a real `vigil serve` (issue 14): forged client
//! ids, wrong and missing MACs, replays, expired keys and roles change nothing and are counted;
//! the amplification bound holds on every opcode from a source that has not proven its address;
//! a node that would serve anonymous requests beyond loopback refuses to start.
//!
//! The unproven source is this machine's own non-loopback address (the one its default route
//! uses): datagrams from it reach the node on loopback with a source that is not loopback. A
//! machine without one fails the test loudly.

mod common;

use common::*;
use std::net::UdpSocket;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vigil::auth::ext::{self, FLAG_AUTH, FLAG_COOKIE};
use vigil::auth::{Credentials, Refusal};
use vigil::wire::{opcode, DatagramWriter, Status};

const RW_KEY: &str = "0101010101010101010101010101010101010101010101010101010101010101";
const RO_KEY: &str = "0202020202020202020202020202020202020202020202020202020202020202";

fn config(port: u16, dir: &str, metrics_port: u16) -> String {
    format!(
        r#"[node]
shards = 1
cores = []
[net]
backend = "kernel"
port = {port}
[kernel]
bind_ip = "127.0.0.1"
idle_wait_us = 200
[tcp]
enabled = false
[storage]
backend = "uring"
dir = "{dir}"
segment_blocks = 256
segment_count = 16
[metrics]
listen = ["127.0.0.1:{metrics_port}"]
publish_ms = 50
[auth]
anonymous = "read-write"
[[auth.clients]]
name = "writer"
key_id = 1
client_id = 1000
client_ids = 4
key = "{RW_KEY}"
acl = "+@read +@write"
[[auth.clients]]
name = "reader"
key_id = 2
client_id = 2000
key = "{RO_KEY}"
acl = "+@read"
[[auth.clients]]
name = "gone"
key_id = 3
client_id = 3000
key = "{RO_KEY}"
acl = "+@all"
expires_unix_s = 1000000000
"#
    )
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// A client's nonces: a counter from the Unix time in ns, as the clients keep it.
struct Nonces(u64);

impl Nonces {
    fn new() -> Self {
        Nonces(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64)
    }
    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// One request datagram: `frames` from `client_id`, with a cookie and signed by `sign`.
fn datagram(
    client_id: u64,
    frames: &[(u8, &[u8])],
    cookie: Option<[u8; 16]>,
    sign: Option<(&Credentials, u64)>,
) -> Vec<u8> {
    let flags = if cookie.is_some() { FLAG_COOKIE } else { 0 } | if sign.is_some() { FLAG_AUTH } else { 0 };
    let mut buf = vec![0u8; 1472];
    let mut w = DatagramWriter::request_with_blocks(&mut buf, client_id, flags).unwrap();
    for (i, (op, body)) in frames.iter().enumerate() {
        w.push(*op, 0, i as u64 + 1, body).unwrap();
    }
    let n = w.finish();
    buf.truncate(n);
    vigil::auth::seal_request(&mut buf, cookie.as_ref(), sign.map(|(creds, nonce)| (creds, now_ms(), nonce)));
    buf
}

fn refusal(answer: (Status, Vec<u8>)) -> Refusal {
    assert_eq!(answer.0, Status::AuthFailed, "{answer:?}");
    Refusal::from_u8(answer.1[0]).expect("a refusal byte")
}

#[test]
fn forged_ids_bad_macs_replays_and_roles_change_nothing() {
    let dir = disk_temp_dir("serve-auth");
    let (port, metrics_port) = (free_udp_port(), free_tcp_port());
    let data = dir.join("data");
    let _server = Server::start(&dir, &config(port, data.to_str().unwrap(), metrics_port));
    let to = format!("127.0.0.1:{port}");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let writer = Credentials::from_hex(1, RW_KEY).unwrap();
    let reader = Credentials::from_hex(2, RO_KEY).unwrap();
    let mut nonces = Nonces::new();
    let get = |sock: &UdpSocket| call_final(sock, &to, || datagram(0, &[(opcode::GET, b"k")], None, None));

    // The writer's signed SET.
    let set_v1 = set_body(b"k", b"v1");
    let (status, _) = call_final(&sock, &to, || {
        datagram(1000, &[(opcode::SET, &set_v1)], None, Some((&writer, nonces.next())))
    });
    assert_eq!(status, Status::Ok);
    let signed =
        datagram(1001, &[(opcode::SET, &set_body(b"k", b"v2"))], None, Some((&writer, nonces.next())));
    assert_eq!(call_final(&sock, &to, || signed.clone()).0, Status::Ok);
    // The same datagram again: refused before anything is parsed.
    assert_eq!(refusal(call_final(&sock, &to, || signed.clone())), Refusal::Replayed);

    let evil = set_body(b"k", b"evil");
    // An anonymous datagram that claims the writer's client id.
    assert_eq!(
        refusal(call_final(&sock, &to, || datagram(1000, &[(opcode::SET, &evil)], None, None))),
        Refusal::ClientIdReserved
    );
    // The reader's key claiming the writer's id; the reader writing as itself.
    let forged = || datagram(1000, &[(opcode::SET, &evil)], None, Some((&reader, nonces.0 + 7)));
    assert_eq!(refusal(call_final(&sock, &to, forged)), Refusal::ClientIdNotBound);
    let (status, _) = call_final(&sock, &to, || {
        datagram(2000, &[(opcode::SET, &evil)], None, Some((&reader, nonces.0 + 8)))
    });
    assert_eq!(status, Status::Forbidden);
    // A changed byte, a wrong key, an unknown key, an expired key.
    let mut tampered =
        datagram(1002, &[(opcode::SET, &set_body(b"k", b"v3"))], None, Some((&writer, nonces.next())));
    *tampered.last_mut().unwrap() = b'X';
    assert_eq!(refusal(call_final(&sock, &to, || tampered.clone())), Refusal::BadMac);
    let wrong = Credentials { key_id: 1, key: [7; 32] };
    assert_eq!(
        refusal(call_final(&sock, &to, || datagram(1000, &[(opcode::SET, &evil)], None, Some((&wrong, 1))))),
        Refusal::BadMac
    );
    let unknown = Credentials { key_id: 99, key: [7; 32] };
    assert_eq!(
        refusal(call_final(&sock, &to, || datagram(
            1000,
            &[(opcode::SET, &evil)],
            None,
            Some((&unknown, 1))
        ))),
        Refusal::UnknownKey
    );
    let expired = Credentials::from_hex(3, RO_KEY).unwrap();
    assert_eq!(
        refusal(call_final(&sock, &to, || datagram(
            3000,
            &[(opcode::SET, &evil)],
            None,
            Some((&expired, 1))
        ))),
        Refusal::Expired
    );
    // A signed datagram an hour old.
    let mut old = datagram(1000, &[(opcode::SET, &evil)], None, None);
    old[3] |= FLAG_AUTH;
    old.splice(16..16, [0u8; ext::AUTH_BLOCK_LEN]);
    vigil::auth::sign(&mut old, &writer, now_ms() - 3_600_000, nonces.next());
    assert_eq!(refusal(call_final(&sock, &to, || old.clone())), Refusal::StaleTimestamp);

    // Nothing of it was written.
    let (status, body) = get(&sock);
    assert_eq!((status, &body[8..]), (Status::Ok, &b"v2"[..]));

    // Every refusal is counted by reason.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape_metrics(metrics_port);
        let count = |reason: &str| {
            metric_sum(
                &text,
                "vigil_auth_refusals_total",
                &["protocol=\"udp\"", &format!("reason=\"{reason}\"")],
            )
        };
        let seen = [
            "replayed",
            "client_id_reserved",
            "client_id_not_bound",
            "forbidden",
            "unknown_key",
            "expired",
            "stale_timestamp",
        ]
        .iter()
        .all(|r| count(r) >= 1.0)
            && count("bad_mac") >= 2.0;
        if seen {
            break;
        }
        assert!(Instant::now() < deadline, "refusals not counted by reason:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every opcode, with bodies of several shapes, sent anonymously from an unproven source: no
/// response datagram is larger than 3x the request it answers; a GET of a large value gets a
/// cookie instead, and with the cookie the value.
#[test]
fn no_answer_to_an_unproven_source_exceeds_three_times_its_request() {
    let dir = disk_temp_dir("serve-auth-amplification");
    let (port, metrics_port) = (free_udp_port(), free_tcp_port());
    let data = dir.join("data");
    let _server = Server::start(&dir, &config(port, data.to_str().unwrap(), metrics_port));
    let to = format!("127.0.0.1:{port}");
    let local = UdpSocket::bind("127.0.0.1:0").unwrap();
    let big = vec![b'x'; 1000];
    assert_eq!(
        call_final(&local, &to, || datagram(0, &[(opcode::SET, &set_body(b"big", &big))], None, None)).0,
        Status::Ok
    );

    let unproven = UdpSocket::bind((non_loopback_address(), 0)).unwrap();

    // The large value: a cookie first, then with the cookie the value.
    let get = datagram(0, &[(opcode::GET, b"big")], None, None);
    let resp = exchange(&unproven, &to, &get, Duration::from_secs(5)).expect("an answer");
    let got = answers(&resp);
    assert_eq!(Status::from_u8(got[0].1), Some(Status::AddressUnproven));
    assert!(resp.len() <= 3 * get.len());
    let cookie: [u8; 16] = got[0].3.as_slice().try_into().expect("a 16-byte cookie");
    let with = datagram(0, &[(opcode::GET, b"big")], Some(cookie), None);
    let resp = exchange(&unproven, &to, &with, Duration::from_secs(5)).expect("an answer");
    let got = answers(&resp);
    assert_eq!((Status::from_u8(got[0].1), &got[0].3[8..]), (Some(Status::Ok), &big[..]));

    // Every opcode: each request has an id of its own; an answer datagram (late answers of one
    // client may be gathered) is held to 3x the requests it answers.
    let mut rng = XorShift(0x05ee_da11);
    let mut sent: Vec<usize> = vec![0];
    let (mut worst, mut answered) = (0.0f64, 0);
    let mut drain = |sent: &[usize], quiet: Duration| {
        unproven.set_read_timeout(Some(quiet)).unwrap();
        let mut buf = vec![0u8; 65_536];
        while let Ok(n) = unproven.recv(&mut buf) {
            let asked: usize = answers(&buf[..n]).iter().map(|a| sent[a.2 as usize]).sum();
            assert!(n <= 3 * asked, "{n} bytes answer {asked} bytes: {:?}", answers(&buf[..n]));
            worst = worst.max(n as f64 / asked as f64);
            answered += 1;
        }
    };
    for op in 1..=255u8 {
        let tail = [&[4u8][..], &[0; 11], &[3, 0], b"big", b"z"].concat();
        for body in [vec![], b"big".to_vec(), rng.bytes(9), set_body(b"big", b"y"), tail] {
            let mut buf = vec![0u8; 1472];
            let mut w = DatagramWriter::request(&mut buf, 0).unwrap();
            w.push(op, 0, sent.len() as u64, &body).unwrap();
            let n = w.finish();
            sent.push(n);
            unproven.send_to(&buf[..n], &to).unwrap();
        }
        drain(&sent, Duration::from_millis(30));
    }
    drain(&sent, Duration::from_millis(500));
    assert!(answered > 255, "most requests are answered ({answered})");
    eprintln!("largest answer/request ratio to an unproven source: {worst:.2}");

    // A signed GET from the same source needs no cookie (the loop above deleted the key).
    let writer = Credentials::from_hex(1, RW_KEY).unwrap();
    let signed = datagram(1000, &[(opcode::GET, b"big")], None, Some((&writer, Nonces::new().next())));
    let got = answers(&exchange(&unproven, &to, &signed, Duration::from_secs(5)).expect("an answer"));
    assert!(matches!(Status::from_u8(got[0].1), Some(Status::Ok | Status::NotFound)), "{got:?}");
}

#[test]
fn anonymous_access_beyond_loopback_is_refused_at_start() {
    let dir = temp_dir("serve-auth-protected");
    let text = dev_config(free_udp_port()).replace("bind_ip = \"127.0.0.1\"", "bind_ip = \"0.0.0.0\"");
    std::fs::write(dir.join("vigil.toml"), &text).unwrap();
    let (status, out) =
        run_vigil_to_exit(&dir, &["check", "--config", "vigil.toml"], Duration::from_secs(30));
    assert!(!status.success(), "{out}");
    assert!(
        out.contains("auth.anonymous") && out.contains("0.0.0.0") && out.contains("protected_mode"),
        "{out}"
    );
    let (status, out) =
        run_vigil_to_exit(&dir, &["serve", "--config", "vigil.toml"], Duration::from_secs(30));
    assert!(!status.success(), "{out}");
    assert!(out.contains("auth.anonymous"), "{out}");
    assert!(!dir.join("vigil-data").exists(), "a refused start created nothing");
}

/// The admin API adds a principal (the node draws its key) and revokes one; both last across a
/// restart (`auth-clients.toml` in the data directory), the added one's quota included (listed,
/// and enforced after the restart); a quota of 0 is refused.
#[test]
fn principals_added_and_revoked_through_the_admin_api_last_across_restarts() {
    let dir = disk_temp_dir("serve-auth-admin");
    let (port, metrics_port, web_port) = (free_udp_port(), free_tcp_port(), free_tcp_port());
    let data = dir.join("data");
    let token = "admin-token-0123456789abcdef";
    let text = config(port, data.to_str().unwrap(), metrics_port).replace(
        "[tcp]\nenabled = false\n",
        &format!("[tcp]\nweb_listen = [\"127.0.0.1:{web_port}\"]\n[admin]\ntoken = \"{token}\"\n"),
    );
    let to = format!("127.0.0.1:{port}");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let admin = |method: &str, path: &str, body: &str| {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (status, _, body) =
            http_exchange(web_port, req.as_bytes(), Duration::from_secs(10)).expect("the web port");
        (status, serde_json::from_str::<serde_json::Value>(&body).expect("a JSON answer"))
    };
    let set_key = |creds: &Credentials, client: u64, key: &[u8], value: &[u8]| {
        let body = set_body(key, value);
        let mut nonces = Nonces::new();
        call_final(&sock, &to, || {
            datagram(client, &[(opcode::SET, &body)], None, Some((creds, nonces.next())))
        })
    };
    let set = |creds: &Credentials, client: u64, value: &[u8]| set_key(creds, client, b"k", value);
    let server = Server::start(&dir, &text);
    let (status, refused) = admin(
        "POST",
        "/api/admin/clients",
        r#"{"name":"app","client_id":5000,"acl":"+@read +@write","keys_max":0}"#,
    );
    assert_eq!(status, 409, "a quota of 0 is refused: {refused}");
    assert!(refused["error"].as_str().unwrap().contains("keys_max must be at least 1"), "{refused}");
    let (status, added) = admin(
        "POST",
        "/api/admin/clients",
        r#"{"name":"app","client_id":5000,"client_ids":4,"acl":"+@read +@write","keys_max":1,"bytes_max":4096}"#,
    );
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["persisted"], true);
    let key_id = added["client"]["key_id"].as_u64().unwrap() as u32;
    assert!(key_id > 3, "a key id above those in use: {key_id}");
    let app = Credentials::from_hex(key_id, added["client"]["key"].as_str().unwrap()).unwrap();
    assert_eq!(set(&app, 5000, b"from-app").0, Status::Ok);
    let (status, listed) = admin("GET", "/api/admin/clients", "");
    assert_eq!(status, 200);
    assert!(!listed.to_string().contains(added["client"]["key"].as_str().unwrap()), "a list shows no secret");
    let quota_of = |listed: &serde_json::Value, name: &str| {
        let c = listed["clients"].as_array().unwrap().iter().find(|c| c["name"] == name).cloned();
        c.map(|c| (c["keys_max"].clone(), c["bytes_max"].clone()))
    };
    assert_eq!(quota_of(&listed, "app"), Some((1.into(), 4096.into())), "{listed}");
    assert_eq!(quota_of(&listed, "reader"), Some((serde_json::Value::Null, serde_json::Value::Null)));
    assert_eq!(
        admin("POST", "/api/admin/clients", r#"{"name":"app","client_id":6000,"acl":"+@read"}"#).0,
        409
    );
    // The writer of the config is revoked.
    let writer = Credentials::from_hex(1, RW_KEY).unwrap();
    assert_eq!(set(&writer, 1000, b"w").0, Status::Ok);
    assert_eq!(admin("DELETE", "/api/admin/clients/writer", "").0, 200);
    assert_eq!(refusal(set(&writer, 1000, b"w2")), Refusal::Revoked);
    // The JSON API counts it (and the dashboard lists it with the errors).
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin("GET", "/api/shards", "").1[0]["auth"]["refused"]["revoked"].as_u64() != Some(1) {
        assert!(Instant::now() < deadline, "{}", admin("GET", "/api/shards", "").1);
        std::thread::sleep(Duration::from_millis(50));
    }

    server.stop();
    let _server = Server::start(&dir, &text);
    assert_eq!(refusal(set(&writer, 1000, b"w3")), Refusal::Revoked, "still revoked after a restart");
    // Another of its client ids: each write here has request id 1.
    assert_eq!(set(&app, 5001, b"again").0, Status::Ok, "the added principal is still there");
    // Its quota too (one key, and the writer's overwrite took k from it before): k is its one key.
    assert_eq!(quota_of(&admin("GET", "/api/admin/clients", "").1, "app"), Some((1.into(), 4096.into())));
    assert_eq!(set_key(&app, 5002, b"k2", b"two").0, Status::QuotaExceeded, "its quota lasted");
    assert_eq!(admin("DELETE", "/api/admin/clients/app", "").0, 200);
    assert_eq!(refusal(set(&app, 5003, b"gone")), Refusal::Revoked);
    assert_eq!(admin("DELETE", "/api/admin/clients/app", "").0, 404);
    let without_token = "GET /api/admin/clients HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_eq!(http_exchange(web_port, without_token.as_bytes(), Duration::from_secs(10)).unwrap().0, 401);
}
