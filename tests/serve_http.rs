//! `vigil serve` speaking HTTP/1.1 on its TCP port: the REST API for the KV store driven by `curl`
//! (GET/PUT/DELETE, ETag, If-Match and If-None-Match, JSON, keep-alive, HTTP/1.0), pipelined
//! requests answered in order, and bad input answered and closed without disturbing another
//! connection; WebSocket watchers (a `tungstenite` client) receiving each committed change, pushed,
//! in order.
//!
//! Needs `curl` (scripts/lib.sh installs it); a missing one fails the test, it is never skipped.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

/// What curl got: the status, the head (lower-cased names) and the body.
struct Got {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

fn curl(port: u16, args: &[&str], path: &str) -> Got {
    let found = Command::new("sh").args(["-c", "command -v curl"]).output().expect("sh");
    assert!(found.status.success(), "curl is missing: install it (scripts/lib.sh's VIGIL_PACKAGES has it)");
    let url = format!("http://127.0.0.1:{port}{path}");
    let out = Command::new("curl")
        .args(["-s", "-S", "-i", "--max-time", "10"])
        .args(args)
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "curl {args:?} {url}: {}", String::from_utf8_lossy(&out.stderr));
    split_response(&out.stdout)
}

fn split_response(raw: &[u8]) -> Got {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a whole head") + 4;
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    Got { status, head, body: raw[end..].to_vec() }
}

/// A port free for UDP and TCP below the ephemeral range (32768 and up on Linux), so that the
/// many short client connections these tests make (each on an ephemeral port) cannot take it
/// between the choice and the server's bind.
fn server_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 1000) as u16 * 10;
    loop {
        let port = base + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 2000;
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        if udp.is_ok() && tcp.is_ok() {
            return port;
        }
    }
}

fn http_config(port: u16) -> String {
    node_config(port, "vigil-data", 100_000, 2, None)
}

#[test]
fn curl_drives_the_kv_api_with_etags_conditions_and_keep_alive() {
    let dir = disk_temp_dir("serve-http");
    let port = server_port();
    let _server = Server::start(&dir, &http_config(port));

    let health = curl(port, &[], "/health");
    assert_eq!(health.status, 200);

    // PUT then GET: raw bytes, the ETag is the version.
    let put = curl(port, &["-X", "PUT", "--data-binary", "olá"], "/kv/greeting");
    assert_eq!(put.status, 204, "{}", put.head);
    let etag = put.header("etag").expect("PUT answers an ETag");
    let got = curl(port, &[], "/kv/greeting");
    assert_eq!((got.status, got.body.as_slice()), (200, "olá".as_bytes()));
    assert_eq!(got.header("etag"), Some(etag.clone()));
    assert_eq!(got.header("content-type").as_deref(), Some("application/octet-stream"));
    let head = curl(port, &["-I"], "/kv/greeting");
    assert_eq!((head.status, head.header("content-length").as_deref()), (200, Some("4")));

    // JSON both ways.
    let json = curl(port, &["-H", "Accept: application/json"], "/kv/greeting");
    let v: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(v["key"], "greeting");
    assert_eq!(v["value"], "olá");
    assert_eq!(format!("\"{}\"", v["version"]), etag);
    let put = curl(
        port,
        &[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            r#"{"value":"a \"quoted\" word"}"#,
        ],
        "/kv/j",
    );
    assert_eq!(put.status, 204);
    assert_eq!(curl(port, &[], "/kv/j").body, br#"a "quoted" word"#);
    let bad_json =
        curl(port, &["-X", "PUT", "-H", "Content-Type: application/json", "--data-binary", "{"], "/kv/j");
    assert_eq!(bad_json.status, 400);

    // Conditions: 304 for the current version, CAS by If-Match, create-only by If-None-Match: *.
    assert_eq!(curl(port, &["-H", &format!("If-None-Match: {etag}")], "/kv/greeting").status, 304);
    let stale = curl(port, &["-X", "PUT", "-H", "If-Match: \"1\"", "--data-binary", "x"], "/kv/greeting");
    assert_eq!(stale.status, 412);
    assert_eq!(curl(port, &[], "/kv/greeting").body, "olá".as_bytes(), "a failed CAS wrote nothing");
    let cas = curl(
        port,
        &["-X", "PUT", "-H", &format!("If-Match: {etag}"), "--data-binary", "hej"],
        "/kv/greeting",
    );
    assert_eq!(cas.status, 204);
    assert_ne!(cas.header("etag"), Some(etag.clone()));
    assert_eq!(curl(port, &[], "/kv/greeting").body, b"hej");
    let exists = curl(port, &["-X", "PUT", "-H", "If-None-Match: *", "--data-binary", "y"], "/kv/greeting");
    assert_eq!(exists.status, 412);
    let created = curl(port, &["-X", "PUT", "-H", "If-None-Match: *", "--data-binary", "y"], "/kv/fresh");
    assert_eq!(created.status, 201);

    // Keys are percent-decoded: "a b/c" is one key.
    assert_eq!(curl(port, &["-X", "PUT", "--data-binary", "sp"], "/kv/a%20b%2Fc").status, 204);
    assert_eq!(curl(port, &[], "/kv/a%20b%2Fc").body, b"sp");
    assert_eq!(curl(port, &[], "/kv/a%zz").status, 400);

    // DELETE, conditional (If-Match) or not, then the key is gone.
    let gone = curl(port, &["-X", "PUT", "--data-binary", "g"], "/kv/gone").header("etag").expect("an ETag");
    let stale = curl(port, &["-X", "DELETE", "-H", "If-Match: \"1\""], "/kv/gone");
    assert_eq!(stale.status, 412);
    assert_eq!(curl(port, &["-X", "DELETE", "-H", &format!("If-Match: {gone}")], "/kv/gone").status, 204);
    assert_eq!(curl(port, &[], "/kv/gone").status, 404);
    assert_eq!(curl(port, &["-X", "DELETE"], "/kv/greeting").status, 204);
    assert_eq!(curl(port, &["-X", "DELETE"], "/kv/greeting").status, 404);
    assert_eq!(curl(port, &[], "/kv/greeting").status, 404);

    // Codes for what is not served.
    let post = curl(port, &["-X", "POST", "--data-binary", "x"], "/kv/k");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow").as_deref(), Some("GET, HEAD, PUT, DELETE"));
    assert_eq!(curl(port, &[], "/nope").status, 404);
    let chunked =
        curl(port, &["-X", "PUT", "-H", "Transfer-Encoding: chunked", "--data-binary", "x"], "/kv/k");
    assert_eq!(chunked.status, 501);
    let big = "v".repeat(4096);
    assert_eq!(curl(port, &["-X", "PUT", "--data-binary", &big], "/kv/k").status, 413);

    // Keep-alive: two transfers in one curl run share one connection.
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\\n"])
        .args([url("/kv/fresh"), url("/kv/a%20b%2Fc")])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200 1\n200 0\n",
        "the second request reused the connection"
    );

    // HTTP/1.0: answered and closed.
    let old = curl(port, &["-0"], "/kv/fresh");
    assert_eq!((old.status, old.header("connection").as_deref()), (200, Some("close")));
}

/// The candle store through curl: POST /candles (201, Location), GET of that location, the count
/// by state, a 422 naming the field, a 400 for a body that is not JSON, a 404.
#[test]
fn curl_posts_reads_and_counts_candles() {
    let dir = disk_temp_dir("serve-http-candles");
    let port = server_port();
    let _server = Server::start(&dir, &http_config(port));
    let json = |extra: &str| {
        format!(
            r#"{{"name":"Maria Eduarda Gonçalves","birth_date":"1980-05-17","phone":11987654321,"has_whatsapp":true,"city":3550308,"state":"SP","prayer":"Pela saúde da minha mãe"{extra}}}"#
        )
    };
    let post = |body: &str| {
        curl(port, &["-X", "POST", "-H", "Content-Type: application/json", "--data-binary", body], "/candles")
    };
    let lit = post(&json(""));
    assert_eq!(lit.status, 201, "{}", String::from_utf8_lossy(&lit.body));
    let location = lit.header("location").expect("a Location");
    let body: serde_json::Value = serde_json::from_slice(&lit.body).unwrap();
    assert_eq!(location, format!("/candles/{}", body["id"]));

    let got = curl(port, &[], &location);
    assert_eq!(got.status, 200);
    let candle: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(candle["id"], body["id"]);
    assert_eq!(candle["name"], "Maria Eduarda Gonçalves");
    assert_eq!(candle["prayer"], "Pela saúde da minha mãe");
    assert_eq!((candle["city"].as_u64(), candle["has_whatsapp"].as_bool()), (Some(3550308), Some(true)));
    assert!(candle["lit_at"].as_u64().is_some_and(|t| t > 1_700_000_000), "{candle}");
    let partition = body["id"].as_u64().unwrap() >> 48;
    let page = curl(port, &[], &format!("/candles?partition={partition}"));
    let page: serde_json::Value = serde_json::from_slice(&page.body).unwrap();
    assert_eq!((page["next"].as_u64(), &page["candles"][0]), (Some(0), &candle), "{page}");

    let bad = post(r#"{"name":"Ana","birth_date":"1990-01-01","phone":123,"city":3550308,"state":"SP"}"#);
    assert_eq!(bad.status, 422);
    let why: serde_json::Value = serde_json::from_slice(&bad.body).unwrap();
    assert_eq!(why["field"], "phone", "{why}");
    assert_eq!(post("{not json").status, 400);
    assert_eq!(curl(port, &[], "/candles/12345").status, 404);

    let count = curl(port, &[], "/candles/count");
    assert_eq!(count.status, 200);
    let count: serde_json::Value = serde_json::from_slice(&count.body).unwrap();
    assert_eq!(count, serde_json::json!({"live": 1, "by_state": {"SP": 1}}));
}

fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("the server closes the connection");
    all
}

#[test]
fn pipelined_requests_are_answered_in_order_and_bad_input_closes_only_its_connection() {
    let dir = disk_temp_dir("serve-http-pipe");
    let port = server_port();
    let _server = Server::start(&dir, &http_config(port));
    let addr = format!("127.0.0.1:{port}");

    // A keep-alive connection that stays open through the others' trouble.
    let mut steady = TcpStream::connect(&addr).unwrap();
    steady.write_all(b"PUT /kv/steady HTTP/1.1\r\nContent-Length: 2\r\n\r\nok").unwrap();

    // Writes and reads pipelined in one send: answers in request order; the GETs see the writes.
    let mut pipe = TcpStream::connect(&addr).unwrap();
    let mut batch = Vec::new();
    for i in 0..20 {
        batch.extend_from_slice(
            format!("PUT /kv/p{i} HTTP/1.1\r\nContent-Length: 2\r\n\r\nv{}", i % 10).as_bytes(),
        );
    }
    batch.extend_from_slice(
        b"GET /kv/p7 HTTP/1.1\r\n\r\nDELETE /kv/p7 HTTP/1.1\r\n\r\nHEAD /kv/p7 HTTP/1.1\r\n\r\nGET /kv/p7 HTTP/1.1\r\n",
    );
    batch.extend_from_slice(b"Connection: close\r\n\r\n");
    pipe.write_all(&batch).unwrap();
    let all = read_to_close(&mut pipe);
    let text = String::from_utf8_lossy(&all);
    let statuses: Vec<&str> = text.match_indices("HTTP/1.1 ").map(|(at, _)| &text[at + 9..at + 12]).collect();
    let mut want = vec!["204"; 20];
    want.extend(["200", "204", "404", "404"]);
    assert_eq!(statuses, want, "{text}");
    assert!(text.contains("\r\n\r\nv7HTTP/1.1 204"), "the GET saw the PUT before it: {text}");
    assert!(text.contains("Content-Length: 12\r\n\r\nHTTP/1.1 404"), "a HEAD's answer has no body: {text}");

    // Garbage, an oversized head, a truncated request: answered (or closed) and closed.
    for bad in [&b"GET /\x00 HTTP/1.1\r\n\r\n"[..], b"PUT /kv/x HTTP/1.1\r\nContent-Length: zz\r\n\r\n"] {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(bad).unwrap();
        let got = read_to_close(&mut s);
        assert!(got.starts_with(b"HTTP/1.1 400 "), "{}", String::from_utf8_lossy(&got));
    }
    let mut s = TcpStream::connect(&addr).unwrap();
    let huge = format!("GET /kv/x HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "p".repeat(16 << 10));
    let _ = s.write_all(huge.as_bytes());
    let got = read_to_close(&mut s);
    assert!(got.starts_with(b"HTTP/1.1 431 "), "{}", String::from_utf8_lossy(&got));
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"PUT /kv/half HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(read_to_close(&mut s).is_empty(), "a truncated request is not answered");

    // The steady connection was untouched: its PUT was answered, and it goes on.
    steady.write_all(b"GET /kv/steady HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    let got = String::from_utf8_lossy(&read_to_close(&mut steady)).to_string();
    assert!(got.starts_with("HTTP/1.1 204 "), "{got}");
    assert!(got.ends_with("\r\n\r\nok"), "{got}");
    assert_eq!(curl(port, &[], "/kv/half").status, 404, "nothing of the truncated request was applied");
}

fn ws_connect(port: u16, query: &str) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let url = format!("ws://127.0.0.1:{port}/watch?{query}");
    let (ws, response) = tungstenite::client(url.as_str(), stream).expect("the upgrade is accepted");
    assert_eq!(response.status(), 101);
    ws
}

/// The next change pushed to `ws` (pongs skipped), as JSON.
fn next_change(ws: &mut tungstenite::WebSocket<TcpStream>) -> serde_json::Value {
    loop {
        match ws.read().expect("a frame before the timeout") {
            tungstenite::Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            tungstenite::Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn put(port: u16, key: &str, value: &str) -> u16 {
    curl(port, &["-X", "PUT", "--data-binary", value], &format!("/kv/{key}")).status
}

#[test]
fn watchers_receive_each_committed_change_in_order_and_bad_frames_close_only_their_connection() {
    let dir = disk_temp_dir("serve-http-watch");
    let port = server_port();
    let server = Server::start(&dir, &http_config(port));

    let mut watcher = ws_connect(port, "key=w");
    let mut other = ws_connect(port, "key=other");
    // Writes from another connection (and another protocol path: curl), to the key and beside it.
    for i in 0..20 {
        assert_eq!(put(port, "w", &format!("v{i}")), 204);
        assert_eq!(put(port, "w2", "not watched"), 204);
    }
    assert_eq!(curl(port, &["-X", "DELETE"], "/kv/w").status, 204);
    let mut last_version = 0u64;
    for i in 0..20 {
        let c = next_change(&mut watcher);
        assert_eq!(
            (c["key"].as_str(), c["value"].as_str()),
            (Some("w"), Some(format!("v{i}").as_str())),
            "{c}"
        );
        let version = c["version"].as_u64().unwrap();
        assert!(version > last_version, "versions grow in commit order");
        last_version = version;
    }
    let deleted = next_change(&mut watcher);
    assert_eq!((deleted["key"].as_str(), deleted["deleted"].as_bool()), (Some("w"), Some(true)));

    // Ping is answered; the ETag a GET gives is the version pushed.
    watcher.send(tungstenite::Message::Ping(b"hi".to_vec())).unwrap();
    match watcher.read().unwrap() {
        tungstenite::Message::Pong(p) => assert_eq!(p, b"hi"),
        other => panic!("{other:?}"),
    }
    assert_eq!(put(port, "w", "again"), 204);
    let c = next_change(&mut watcher);
    let etag = curl(port, &[], "/kv/w").header("etag").unwrap();
    assert_eq!(etag, format!("\"{}\"", c["version"]));

    // A client frame that is not masked breaks the protocol: close 1002, for that connection only.
    let mut raw = TcpStream::connect(("127.0.0.1", port)).unwrap();
    raw.write_all(
        b"GET /watch?key=other HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    raw.write_all(&[0x81, 0x01, b'x']).unwrap();
    let got = read_to_close(&mut raw);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
    assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{text}");
    assert!(got.ends_with(&[0x88, 0x02, 0x03, 0xEA]), "a close frame with 1002: {got:?}");
    assert_eq!(put(port, "other", "still served"), 204);
    assert_eq!(next_change(&mut other)["value"], "still served");

    // Not a watch: no upgrade (426), a watch after another request (400).
    assert_eq!(curl(port, &[], "/watch?key=w").status, 426);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(
        b"GET /health HTTP/1.1\r\n\r\nGET /watch?key=w HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nGET /x HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let text = String::from_utf8_lossy(&read_to_close(&mut s)).to_string();
    assert!(text.contains("HTTP/1.1 400 ") && !text.contains(" 101 "), "{text}");

    // A prefix watch on this node of two shards sees the keys of both (changes applied on the
    // other shard come through the hub), each key in commit order.
    let mut prefix = ws_connect(port, "prefix=p%3A");
    let keys: Vec<String> = (0..16).map(|i| format!("p:{i}")).collect();
    for round in 0..3 {
        for key in &keys {
            assert_eq!(put(port, key, &format!("{round}")), 204);
        }
    }
    assert_eq!(put(port, "q:1", "not watched"), 204);
    let mut rounds = std::collections::HashMap::new();
    for _ in 0..3 * keys.len() {
        let c = next_change(&mut prefix);
        let key = c["key"].as_str().unwrap().to_string();
        let value: u32 = c["value"].as_str().unwrap().parse().unwrap();
        let seen = rounds.entry(key.clone()).or_insert(0u32);
        assert_eq!(value, *seen, "{key}: in commit order");
        *seen += 1;
    }
    assert_eq!(rounds.len(), keys.len(), "every key, from both shards");

    watcher.close(None).unwrap();
    drop(other);
    drop(prefix);
    let (_, report) = server.stop();
    assert!(report.contains("watchers "), "{report}");
}

#[test]
fn a_prefix_watch_on_a_node_of_one_shard_sees_every_matching_key() {
    let dir = disk_temp_dir("serve-http-prefix");
    let port = server_port();
    let _server = Server::start(&dir, &node_config(port, "vigil-data", 100_000, 1, Some(4)));
    let mut ws = ws_connect(port, "prefix=user%3A");
    for (key, value) in [("user:1", "ann"), ("item:1", "no"), ("user:2", "bob"), ("user:1", "ann2")] {
        assert_eq!(put(port, key, value), 204);
    }
    assert_eq!(
        curl(port, &["-X", "PUT", "--data-binary", "41", "-H", "If-None-Match: *"], "/kv/user:n").status,
        201
    );
    let seen: Vec<(String, String)> = (0..4)
        .map(|_| next_change(&mut ws))
        .map(|c| (c["key"].as_str().unwrap().to_string(), c["value"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        seen,
        [("user:1", "ann"), ("user:2", "bob"), ("user:1", "ann2"), ("user:n", "41")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
    );
}

#[test]
fn a_watcher_that_does_not_read_is_closed_with_1008_not_given_unbounded_memory() {
    let dir = disk_temp_dir("serve-http-slow");
    let port = server_port();
    let mut config = http_config(port);
    config.push_str("[tcp]\noutput_bytes_max = 65536\n");
    let server = Server::start(&dir, &config);
    // A watcher that reads nothing while about 20 MB of changes are pushed: past what the kernel's
    // socket buffers hold, its queue passes tcp.output_bytes_max.
    let mut slow = ws_connect(port, "key=hot");
    let value = "x".repeat(1000); // under kv.value_bytes_max (1 KiB)
    let mut writer = TcpStream::connect(("127.0.0.1", port)).unwrap();
    writer.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let request = format!("PUT /kv/hot HTTP/1.1\r\nContent-Length: {}\r\n\r\n{value}", value.len());
    let mut answers = Vec::new();
    for _ in 0..200 {
        writer.write_all(request.repeat(100).as_bytes()).unwrap();
        let mut seen = 0;
        while seen < 100 {
            let mut buf = [0u8; 65536];
            // A signal (another test's child exiting) may interrupt the read: read again.
            let n = match writer.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => other.unwrap(),
            };
            assert!(n > 0, "the writer's connection closed");
            answers.extend_from_slice(&buf[..n]);
            seen = String::from_utf8_lossy(&answers).matches("HTTP/1.1 204 ").count();
        }
        answers.clear();
    }
    // What was queued before the bound arrives in order, then a close with 1008.
    let mut last = 0u64;
    let code = loop {
        match slow.read() {
            Ok(tungstenite::Message::Text(t)) => {
                let c: serde_json::Value = serde_json::from_str(&t).unwrap();
                let v = c["version"].as_u64().unwrap();
                assert!(v > last, "in commit order");
                last = v;
            }
            Ok(tungstenite::Message::Close(frame)) => break frame.map(|f| u16::from(f.code)),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(code, Some(1008));
    let (_, report) = server.stop();
    assert!(report.contains("watchers-closed-slow 1"), "{report}");
}
