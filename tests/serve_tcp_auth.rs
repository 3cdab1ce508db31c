//! Access control on a real `vigil serve`'s TCP side (issue 14, "the same rules on TCP"): two
//! principals, one read-only and one read-write, and no anonymous access. RESP answers NOAUTH,
//! WRONGPASS and NOPERM with Redis's texts and lets the read-write user write; the HTTP API
//! answers 401, 403 and 200 by bearer token; a WebSocket watch is refused 401 before switching
//! protocols and accepted with `access_token`; `/metrics` and the dashboard's API need
//! `admin.read_token`; every refusal is counted in `vigil_auth_refusals_total`, which promtool
//! accepts.

mod common;

use common::{
    disk_temp_dir, free_tcp_port, free_udp_port, http_exchange, metric_sum, node_config, promtool_check,
    Server, ANONYMOUS_READ_WRITE,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const READER: &str = "reader-password-0123456789";
const WRITER: &str = "writer-password-0123456789";
const READ_TOKEN: &str = "metrics-read-token-0123456789";

fn config(port: u16, web: u16, metrics: u16) -> String {
    let base = node_config(port, "data", 1_000_000, 2, None);
    assert!(base.contains(ANONYMOUS_READ_WRITE));
    format!(
        r#"{}
[tcp]
web_listen = ["127.0.0.1:{web}"]
[metrics]
listen = ["127.0.0.1:{metrics}"]
publish_ms = 50
[admin]
read_token = "{READ_TOKEN}"
[[auth.clients]]
name = "reader"
key_id = 1
client_id = 1001
password = "{READER}"
acl = "+@read"
[[auth.clients]]
name = "writer"
key_id = 2
client_id = 2001
password = "{WRITER}"
acl = "+@read +@write"
"#,
        base.replace(ANONYMOUS_READ_WRITE, "anonymous = \"none\"")
    )
}

/// Sends `commands` (inline) on one RESP connection, then QUIT; returns everything it answered.
fn resp(port: u16, commands: &[String]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut text: String = commands.iter().map(|c| format!("{c}\r\n")).collect();
    text.push_str("QUIT\r\n");
    s.write_all(text.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// One HTTP request on `port` (the connection closes after it): status, head and body.
fn http(port: u16, method: &str, path: &str, headers: &str, body: &str) -> (u16, String, String) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    );
    http_exchange(port, request.as_bytes(), Duration::from_secs(10)).expect("connecting")
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

/// A WebSocket upgrade of `/watch?key=k{query}`: the status line's code (the connection stays
/// open once upgraded, so the read stops at its timeout).
fn upgrade(port: u16, query: &str) -> (u16, String) {
    let request = format!(
        "GET /watch?key=k{query} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    let (status, head, _) =
        http_exchange(port, request.as_bytes(), Duration::from_millis(500)).expect("connecting");
    (status, head)
}

#[test]
fn resp_http_websocket_and_metrics_refuse_by_the_same_rules_and_count_it() {
    let dir = disk_temp_dir("serve-tcp-auth");
    let (port, web, metrics) = (free_udp_port(), free_tcp_port(), free_tcp_port());
    let server = Server::start(&dir, &config(port, web, metrics));

    // RESP: nothing before AUTH; a wrong password; the reader may read, not write.
    let out = resp(
        port,
        &[
            "GET k".into(),
            "AUTH reader wrong-password-0123456789".into(),
            format!("AUTH reader {READER}"),
            "SET k v".into(),
            "GET k".into(),
            "ACL WHOAMI".into(),
        ],
    );
    assert_eq!(
        out,
        "-NOAUTH Authentication required.\r\n\
         -WRONGPASS invalid username-password pair or user is disabled.\r\n\
         +OK\r\n\
         -NOPERM User reader has no permissions to run the 'set' command\r\n\
         $-1\r\n\
         $6\r\nreader\r\n\
         +OK\r\n"
    );
    let out = resp(port, &[format!("HELLO 3 AUTH writer {WRITER}"), "SET k v".into(), "GET k".into()]);
    assert!(out.contains("proto") && out.ends_with("+OK\r\n$1\r\nv\r\n+OK\r\n"), "{out}");

    // HTTP: no token 401 with the challenge, the reader's PUT 403, the writer's 204, a read 200.
    let (status, head, _) = http(port, "GET", "/kv/k", "", "");
    assert_eq!(status, 401);
    assert!(head.contains("WWW-Authenticate: Bearer realm=\"vigil\""), "{head}");
    assert_eq!(http(port, "PUT", "/kv/h", &bearer(READER), "x").0, 403);
    assert_eq!(http(port, "PUT", "/kv/h", &bearer(WRITER), "x").0, 204);
    let (status, _, body) = http(port, "GET", "/kv/h", &bearer(READER), "");
    assert_eq!((status, body.as_str()), (200, "x"));

    // WebSocket: refused before the switch without a token; accepted with `access_token`.
    assert_eq!(upgrade(port, "").0, 401);
    let (status, head) = upgrade(port, &format!("&access_token={READER}"));
    assert_eq!(status, 101, "{head}");

    // The web port's operator API and /metrics: the read token (or none: 401).
    assert_eq!(http(web, "GET", "/api/status", "", "").0, 401);
    assert_eq!(http(web, "GET", "/api/status", &bearer(READ_TOKEN), "").0, 200);
    let (status, head, _) = http(metrics, "GET", "/metrics", "", "");
    assert_eq!(status, 401);
    assert!(head.contains("WWW-Authenticate: Bearer"), "{head}");

    // Every refusal counted once, by protocol and reason (the shards publish every 50 ms).
    let want = [
        ("resp", "noauth", 1.0),
        ("resp", "wrongpass", 1.0),
        ("resp", "noperm", 1.0),
        ("http", "unauthorized", 1.0),
        ("http", "forbidden", 1.0),
        ("ws", "unauthorized", 1.0),
        ("web", "unauthorized", 1.0),
        ("metrics", "unauthorized", 1.0),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let (status, _, text) = http(metrics, "GET", "/metrics", &bearer(READ_TOKEN), "");
        assert_eq!(status, 200);
        let got = |p: &str, r: &str| {
            metric_sum(
                &text,
                "vigil_auth_refusals_total",
                &[&format!("protocol=\"{p}\""), &format!("reason=\"{r}\"")],
            )
        };
        if want.iter().all(|&(p, r, n)| got(p, r) == n) {
            break text;
        }
        let seen: Vec<_> = want.iter().map(|&(p, r, _)| (p, r, got(p, r))).collect();
        assert!(Instant::now() < deadline, "refusal counts: {seen:?}\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        metric_sum(&text, "vigil_auth_refusals_total", &["reason=\"forbidden\"", "protocol=\"ws\""]),
        0.0
    );
    promtool_check(&text, &dir);
    let (status, output) = server.stop();
    assert!(status.success(), "{output}");
}

const CAPPED: &str = "capped-password-0123456789";
const SIZED: &str = "sized-password-0123456789";

/// One shard, one partition (so each quota is enforced whole, not as a share), anonymous
/// read-write requests under a quota of one key, and three principals: `capped` (2 keys), `sized`
/// (100 bytes of keys and values) and `writer` (no quota).
fn quota_config(port: u16, web: u16, metrics: u16) -> String {
    let base = node_config(port, "data", 1_000_000, 1, Some(1));
    assert!(base.contains(ANONYMOUS_READ_WRITE));
    format!(
        r#"{}
[tcp]
web_listen = ["127.0.0.1:{web}"]
[metrics]
listen = ["127.0.0.1:{metrics}"]
publish_ms = 50
[[auth.clients]]
name = "capped"
key_id = 1
client_id = 1001
password = "{CAPPED}"
acl = "+@all"
keys_max = 2
[[auth.clients]]
name = "sized"
key_id = 2
client_id = 2001
password = "{SIZED}"
acl = "+@all"
bytes_max = 100
[[auth.clients]]
name = "writer"
key_id = 3
client_id = 3001
password = "{WRITER}"
acl = "+@read +@write"
"#,
        base.replace(ANONYMOUS_READ_WRITE, &format!("{ANONYMOUS_READ_WRITE}\nanonymous_keys_max = 1"))
    )
}

/// What RESP says to a write past the user's quota.
const RESP_QUOTA: &str = "-QUOTA this user's quota of keys or bytes is used up (auth.clients \
                          keys_max/bytes_max, or auth.anonymous_keys_max/anonymous_bytes_max); the \
                          write was not applied\r\n";
/// The body of HTTP's 507 for a write past the principal's quota.
const HTTP_QUOTA: &str = "this principal's quota of keys or bytes is used up (auth.clients \
                          keys_max/bytes_max, or auth.anonymous_keys_max/anonymous_bytes_max); nothing \
                          written\n";

/// Issue 14's quotas on the TCP side of a real node: RESP sessions write for the principal they
/// logged in as, HTTP requests for the one their bearer token names, anonymous requests (RESP,
/// HTTP, the candle page's form) for the anonymous owner; a write past a quota of keys or of bytes
/// is refused with each protocol's QUOTA text and nothing written; an overwrite by another
/// principal moves the key, a delete frees room; every refusal is counted.
#[test]
fn tcp_writes_are_held_to_their_principal_s_quota() {
    let dir = disk_temp_dir("serve-tcp-quota");
    let (port, web, metrics) = (free_udp_port(), free_tcp_port(), free_tcp_port());
    let server = Server::start(&dir, &quota_config(port, web, metrics));

    // RESP, keys: capped holds a and b; c is refused; an overwrite of its own key adds none; a
    // delete frees room.
    let out = resp(
        port,
        &[
            format!("AUTH capped {CAPPED}"),
            "SET a 1".into(),
            "SET b 1".into(),
            "SET c 1".into(),
            "GET c".into(),
            "SET a 22".into(),
            "DEL b".into(),
            "SET c 1".into(),
            "GET c".into(),
        ],
    );
    assert_eq!(
        out,
        format!("+OK\r\n+OK\r\n+OK\r\n{RESP_QUOTA}$-1\r\n+OK\r\n:1\r\n+OK\r\n$1\r\n1\r\n+OK\r\n")
    );
    // Another principal overwrites a: the key is its now, and capped has room for one more.
    let out = resp(port, &[format!("HELLO 2 AUTH writer {WRITER}"), "SET a w".into()]);
    assert!(out.ends_with("+OK\r\n+OK\r\n"), "{out}");
    let out = resp(port, &[format!("AUTH capped {CAPPED}"), "SET d 1".into(), "SET e 1".into()]);
    assert_eq!(out, format!("+OK\r\n+OK\r\n{RESP_QUOTA}+OK\r\n"));

    // HTTP: capped's token is held to the same quota (c and d); 507 with the quota's text.
    let (status, _, body) = http(port, "PUT", "/kv/h", &bearer(CAPPED), "1");
    assert_eq!((status, body.as_str()), (507, HTTP_QUOTA));
    assert_eq!(http(port, "GET", "/kv/h", &bearer(CAPPED), "").0, 404, "nothing written");
    assert_eq!(http(port, "PUT", "/kv/h", &bearer(WRITER), "1").0, 204, "others still write");
    // Bytes: sized holds 2 + 40 and 2 + 40 bytes; a third 42 would pass 100.
    let forty = "x".repeat(40);
    assert_eq!(http(port, "PUT", "/kv/s1", &bearer(SIZED), &forty).0, 204);
    assert_eq!(http(port, "PUT", "/kv/s2", &bearer(SIZED), &forty).0, 204);
    let (status, _, body) = http(port, "PUT", "/kv/s3", &bearer(SIZED), &forty);
    assert_eq!((status, body.as_str()), (507, HTTP_QUOTA));
    let out = resp(port, &[format!("AUTH sized {SIZED}"), format!("SET s3 {forty}"), "DEL s1".into()]);
    assert_eq!(out, format!("+OK\r\n{RESP_QUOTA}:1\r\n+OK\r\n"));
    assert_eq!(http(port, "PUT", "/kv/s3", &bearer(SIZED), &forty).0, 204, "the delete freed 42 bytes");

    // Anonymous requests share one quota of one key, on every protocol.
    assert_eq!(http(port, "PUT", "/kv/anon", "", "1").0, 204);
    let (status, _, body) = http(port, "PUT", "/kv/anon2", "", "1");
    assert_eq!((status, body.as_str()), (507, HTTP_QUOTA));
    assert_eq!(resp(port, &["SET anon3 1".into()]), format!("{RESP_QUOTA}+OK\r\n"));
    // The candle page's visitors are anonymous too (a candle counts as a key).
    let form = "nome=Ana&nascimento=1980-05-01&cidade=Salvador&uf=BA&pedido=Obrigada";
    let (status, _, body) =
        http(web, "POST", "/candles", "Content-Type: application/x-www-form-urlencoded\r\n", form);
    assert_eq!((status, body.as_str()), (507, "A cota de espaço deste acesso acabou: nada foi gravado."));

    // Each refusal counted once: RESP 4, HTTP 3, the page 1.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, text) = http(metrics, "GET", "/metrics", "", "");
        assert_eq!(status, 200);
        let refused = metric_sum(&text, "vigil_auth_refusals_total", &["reason=\"quota_exceeded\""]);
        if refused == 8.0 {
            break;
        }
        assert!(Instant::now() < deadline, "quota refusals counted: {refused}\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, output) = server.stop();
    assert!(status.success(), "{output}");
}
