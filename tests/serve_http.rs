//! `vigil serve` speaking HTTP/1.1 on its TCP port: the REST API for the KV store driven by `curl`
//! (GET/PUT/DELETE, ETag, If-Match and If-None-Match, JSON, keep-alive, HTTP/1.0), pipelined
//! requests answered in order, and bad input answered and closed without disturbing another
//! connection.
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

fn http_config(port: u16) -> String {
    node_config(port, "vigil-data", 100_000, 2, None)
}

#[test]
fn curl_drives_the_kv_api_with_etags_conditions_and_keep_alive() {
    let dir = disk_temp_dir("serve-http");
    let port = free_udp_port();
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

    // DELETE, then the key is gone.
    assert_eq!(curl(port, &["-X", "DELETE"], "/kv/greeting").status, 204);
    assert_eq!(curl(port, &["-X", "DELETE"], "/kv/greeting").status, 404);
    assert_eq!(curl(port, &[], "/kv/greeting").status, 404);

    // Codes for what is not served.
    let post = curl(port, &["-X", "POST", "--data-binary", "x"], "/kv/k");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow").as_deref(), Some("GET, HEAD, PUT, DELETE"));
    assert_eq!(curl(port, &[], "/nope").status, 404);
    assert_eq!(curl(port, &[], "/watch?key=k").status, 501);
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

fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("the server closes the connection");
    all
}

#[test]
fn pipelined_requests_are_answered_in_order_and_bad_input_closes_only_its_connection() {
    let dir = disk_temp_dir("serve-http-pipe");
    let port = free_udp_port();
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
        b"GET /kv/p7 HTTP/1.1\r\n\r\nDELETE /kv/p7 HTTP/1.1\r\n\r\nGET /kv/p7 HTTP/1.1\r\n",
    );
    batch.extend_from_slice(b"Connection: close\r\n\r\n");
    pipe.write_all(&batch).unwrap();
    let all = read_to_close(&mut pipe);
    let text = String::from_utf8_lossy(&all);
    let statuses: Vec<&str> = text.match_indices("HTTP/1.1 ").map(|(at, _)| &text[at + 9..at + 12]).collect();
    let mut want = vec!["204"; 20];
    want.extend(["200", "204", "404"]);
    assert_eq!(statuses, want, "{text}");
    assert!(text.contains("\r\n\r\nv7HTTP/1.1 204"), "the GET saw the PUT before it: {text}");

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
