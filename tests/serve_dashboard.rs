//! The operators' dashboard and admin API on the web port of a real `vigil serve` (issue 13):
//! the page, its live event stream, the admin operations behind the bearer token (401, 403, 202,
//! 200, 404, 405, 413, 400) and garbage input; then the dashboard in headless Chromium with
//! JavaScript off (the server's page, reloading itself) and on (live: the events replace its live
//! part), screenshots kept under `target/tmp/serve_dashboard/`. Chromium is required: the browser
//! test fails when it is missing.

#[path = "common/browser.rs"]
mod browser;
mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};
use vigil::wire::{opcode, Status};

const TOKEN: &str = "test-admin-token-0123456789";

/// A node of two shards with its web port on `web`, publishing every 50 ms, admin on.
fn start(name: &str) -> (Server, u16, u16, std::path::PathBuf) {
    let dir = disk_temp_dir(name);
    let port = free_udp_port();
    let web = free_tcp_port();
    let config = format!(
        "{}\n[tcp]\nweb_listen = [\"127.0.0.1:{web}\"]\n[metrics]\npublish_ms = 50\n[admin]\ntoken = \"{TOKEN}\"\n",
        kv_node_config(port, "vigil-data", 1_000_000)
    );
    let server = Server::start(&dir, &config);
    // The first rendering may come before the shards' first snapshots ("0 of 2"): wait for both.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !http(web, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .2
        .contains("reporting<b>2 of 2")
    {
        assert!(Instant::now() < deadline, "the dashboard never showed both shards");
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, port, web, dir)
}

/// One HTTP exchange (the connection closed after it): status, head (lowercase) and body. A
/// compaction may take up to its 30 s deadline.
fn http(web: u16, request: &[u8]) -> (u16, String, String) {
    let (status, head, body) = http_exchange(web, request, Duration::from_secs(40)).expect("the web port");
    (status, head.to_ascii_lowercase(), body)
}

/// An admin request: `method` on `/api/admin/<op>` with `auth` as the `Authorization` value.
fn admin(web: u16, method: &str, op: &str, auth: Option<&str>, body: &str) -> (u16, String, Value) {
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let length = if method == "GET" { String::new() } else { format!("Content-Length: {}\r\n", body.len()) };
    let req = format!(
        "{method} /api/admin/{op} HTTP/1.1\r\nHost: x\r\n{auth}{length}Connection: close\r\n\r\n{body}"
    );
    let (status, head, body) = http(web, req.as_bytes());
    (status, head, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// Durable SETs `ids` over UDP (request ids and keys; a client's ids only grow: exactly-once),
/// one at a time, each answered OK.
fn drive_sets(port: u16, ids: std::ops::Range<u64>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = format!("127.0.0.1:{port}");
    for i in ids {
        let key = format!("key-{i}");
        let mut b = (key.len() as u16).to_le_bytes().to_vec();
        b.extend_from_slice(key.as_bytes());
        b.extend_from_slice(b"value");
        // Resent under the same id if no answer comes (exactly-once: applied once), as a
        // client would: a loaded machine may delay one past the timeout.
        let req = request(&[(opcode::SET, i + 1, &b)]);
        let resp = (0..3)
            .find_map(|_| exchange(&sock, &to, &req, Duration::from_secs(5)))
            .expect("an answer within three tries");
        assert_eq!(answers(&resp)[0].1, Status::Ok as u8, "SET {i}");
    }
}

/// The live stream's first `events` event ids, read within 10 s.
fn live_events(web: u16, events: usize) -> Vec<u64> {
    let mut s = TcpStream::connect(("127.0.0.1", web)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /api/live HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let text = String::from_utf8_lossy(&got).to_string();
        let ids: Vec<u64> = text
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .filter_map(|id| id.trim().parse().ok())
            .collect();
        if ids.len() >= events {
            let head = text.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{head}");
            assert!(head.contains("content-type: text/event-stream"), "{head}");
            assert!(text.contains("data: <div class=\"grid\" id=\"node\">"), "an event is the live part");
            return ids;
        }
        assert!(Instant::now() < deadline, "{} events in 10 s: {text}", ids.len());
        let n = s.read(&mut buf).expect("the stream stays open");
        assert!(n > 0, "the stream ended");
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn the_dashboard_its_live_stream_and_the_admin_api_answer_as_documented() {
    let (_server, port, web, _) = start("dashboard-api");
    drive_sets(port, 0..300);

    let (status, head, page) = http(web, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200, "{page}");
    assert!(
        head.contains("content-type: text/html")
            && head.contains("content-security-policy: default-src 'none'")
    );
    for needle in [
        "<main id=\"live\">",
        "shards reporting",
        "id=\"partitions\"",
        "Config in force",
        "/api/admin/snapshot",
    ] {
        assert!(page.contains(needle), "{needle} on the page");
    }
    assert!(!page.contains(TOKEN), "the token is never shown");
    let (status, head, script) =
        http(web, b"GET /dashboard.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(
        status == 200 && head.contains("text/javascript") && script.contains("EventSource(\"/api/live\")")
    );
    let ids = live_events(web, 3);
    assert!(ids.windows(2).all(|w| w[1] > w[0]), "newer renderings: {ids:?}");

    // The token: none (401, with the scheme to use), a wrong one and another scheme (403/401).
    let (status, head, why) = admin(web, "POST", "snapshot", None, "");
    assert_eq!(status, 401, "{why}");
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    assert_eq!(admin(web, "POST", "snapshot", Some("Bearer wrong-token-0123456789"), "").0, 403);
    assert_eq!(admin(web, "POST", "snapshot", Some(&format!("Basic {TOKEN}")), "").0, 401);
    let (status, _, answer) = admin(web, "POST", "snapshot", Some(&bearer()), "");
    assert_eq!((status, answer["operation"].as_str()), (202, Some("snapshot")), "{answer}");

    // A compaction is answered once every partition's snapshot is stored.
    drive_sets(port, 300..500);
    let (status, _, answer) = admin(web, "POST", "compact", Some(&bearer()), "");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["partitions"], 2, "{answer}");
    assert!(answer["snapshots_total"].as_u64().unwrap() >= 2, "{answer}");
    assert!(answer["log_used_bytes_after"].as_u64().is_some(), "{answer}");
    let (_, _, parts) = http(web, b"GET /api/partitions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let parts: Value = serde_json::from_str(&parts).unwrap();
    for p in parts.as_array().unwrap() {
        assert!(p["snapshots"].as_u64().unwrap() >= 1, "every partition took one: {p}");
    }

    // The log filter.
    let (status, _, answer) = admin(web, "GET", "log-level", Some(&bearer()), "");
    assert_eq!((status, answer["filter"].as_str()), (200, Some("info")), "{answer}");
    let (status, _, answer) = admin(web, "PUT", "log-level", Some(&bearer()), "vigil=debug,info");
    assert_eq!((status, answer["filter"].as_str()), (200, Some("vigil=debug,info")), "{answer}");
    let (status, _, answer) = admin(web, "PUT", "log-level", Some(&bearer()), "vigil=[[[");
    assert_eq!(status, 400, "{answer}");
    assert_eq!(admin(web, "PUT", "log-level", Some(&bearer()), "").0, 400);
    assert_eq!(
        admin(web, "GET", "log-level", Some(&bearer()), "").2["filter"],
        "vigil=debug,info",
        "unchanged"
    );

    // Limits, unknown operations, wrong methods, garbage.
    assert_eq!(admin(web, "PUT", "log-level", Some(&bearer()), &"d".repeat(2048)).0, 413);
    assert_eq!(admin(web, "POST", "nothing", Some(&bearer()), "").0, 404);
    let (status, head, _) = admin(web, "DELETE", "snapshot", Some(&bearer()), "");
    assert!(status == 405 && head.contains("allow: post"), "{status} {head}");
    assert_eq!(
        http(web, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").0,
        405
    );
    assert_eq!(http(web, b"GET /api/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").0, 404);
    assert_eq!(http(web, b"\x16\x03\x01\x02\x00garbage\r\n\r\n").0, 400);
    let chunked =
        b"POST /api/admin/snapshot HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(http(web, chunked).0, 501);
    let huge = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    assert_eq!(http(web, huge.as_bytes()).0, 431);
    // Still serving after all that.
    assert_eq!(http(web, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").0, 200);
}

#[test]
fn the_dashboard_in_headless_chromium_with_javascript_off_and_on() {
    let (_server, port, web, dir) = start("dashboard-browser");
    drive_sets(port, 0..300);
    let out = browser::output_dir("serve_dashboard");
    let url = format!("http://127.0.0.1:{web}/");

    // Off: the server's page, whole, with its reload; the script never runs.
    let mut b = browser::Browser::launch(&dir.join("chromium-off"));
    b.call("Emulation.setScriptExecutionDisabled", json!({"value": true}));
    b.call("Page.enable", json!({}));
    b.goto(&url);
    let html = b.html();
    assert!(html.contains("http-equiv=\"refresh\""), "reloads itself without JavaScript");
    assert!(html.contains("reloads every 2 s") && html.contains("data-live=\"off\""));
    assert!(html.contains("<svg class=\"chart\""), "the latency chart");
    assert!(html.contains("2 (2 leading, 0 quiet)"), "{html}");
    // The meta refresh brings a newer page (the uptime moves) with no script run.
    let uptime = "document.querySelector('#node b') && document.querySelector('#node b').textContent";
    let first = b.eval(uptime);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = b.eval(uptime);
        if now != first && now.is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "the page did not reload itself: {first}");
        std::thread::sleep(Duration::from_millis(200));
    }
    b.loaded();
    assert_eq!(b.eval("document.body.getAttribute('data-live')"), json!("off"));
    b.screenshot(&out.join("dashboard-javascript-off.png"));
    drop(b);

    // On: the live stream replaces the live part every second.
    let mut b = browser::Browser::launch(&dir.join("chromium-on"));
    b.call("Page.enable", json!({}));
    b.goto(&url);
    let deadline = Instant::now() + Duration::from_secs(15);
    while b.eval("document.body.getAttribute('data-live')") != json!("on") {
        assert!(Instant::now() < deadline, "no live event reached the page");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(b.eval("document.getElementById('mode').textContent"), json!("live: updated every second"));
    let first = b.eval(uptime);
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.eval(uptime) == first {
        assert!(Instant::now() < deadline, "the live part did not change: {first}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(b.eval("document.querySelectorAll('#partitions tr').length").as_u64().unwrap() >= 3);
    b.screenshot(&out.join("dashboard-javascript-on.png"));
}
