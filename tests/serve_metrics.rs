//! The Prometheus endpoint of a real `vigil serve` (`metrics.listen`, issue 13): its counters agree
//! with what the test drove, a live scrape passes `promtool check metrics`, a real Prometheus
//! server (Debian's `prometheus`, started here on loopback) scrapes it and a PromQL query returns
//! the rate the test drove, the request latency histograms count each request once under its
//! protocol and opcode, and the endpoint answers bad requests with clear errors.
//!
//! `promtool` and `prometheus` come with the `prometheus` package (scripts/test installs it); a
//! machine without them fails these tests loudly.

mod common;

use common::{
    answers, disk_temp_dir, exchange, free_tcp_port, free_udp_port, metric_sum, node_config, prometheus_tool,
    promtool_check, request, scrape_metrics, try_http, Server,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::Stdio;
use std::time::{Duration, Instant};
use vigil::wire::{opcode, Status};

/// A node of two shards with its metrics endpoint on `metrics_port`, publishing every 50 ms.
fn config(port: u16, metrics_port: u16) -> String {
    format!(
        "{}[metrics]\nlisten = [\"127.0.0.1:{metrics_port}\"]\npublish_ms = 50\n",
        node_config(port, "data", 1_000_000, 2, None)
    )
}

/// One HTTP exchange with `head` sent as is: the status code and the body.
fn http(port: u16, head: &str) -> (u16, String) {
    try_http(port, head).expect("connecting")
}

/// Sends `n` requests of `op` (bodies from `body(i)`) one at a time and checks each answer's
/// status.
fn drive(port: u16, op: u8, n: u64, body: impl Fn(u64) -> Vec<u8>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = format!("127.0.0.1:{port}");
    for i in 0..n {
        let b = body(i);
        let resp =
            exchange(&sock, &to, &request(&[(op, i + 1, &b)]), Duration::from_secs(5)).expect("an answer");
        assert_eq!(answers(&resp)[0].1, Status::Ok as u8, "request {i}");
    }
}

fn set_body(i: u64) -> Vec<u8> {
    let key = format!("key-{i}").into_bytes();
    let mut b = (key.len() as u16).to_le_bytes().to_vec();
    b.extend_from_slice(&key);
    b.extend_from_slice(b"value");
    b
}

/// A child process killed and reaped when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_counters_agree_with_what_was_driven_and_promtool_finds_nothing() {
    let dir = disk_temp_dir("serve-metrics");
    let (port, metrics_port) = (free_udp_port(), free_tcp_port());
    let server = Server::start(&dir, &config(port, metrics_port));
    assert!(
        server.ready_line.contains(&format!("metrics [127.0.0.1:{metrics_port}]")),
        "{}",
        server.ready_line
    );
    drive(port, opcode::PING, 300, |_| Vec::new());
    drive(port, opcode::SET, 200, set_body);
    std::thread::sleep(Duration::from_millis(300)); // more than a publish interval
    let text = scrape_metrics(metrics_port);
    assert_eq!(metric_sum(&text, "vigil_requests_total", &["opcode=\"ping\""]), 300.0);
    assert_eq!(metric_sum(&text, "vigil_requests_total", &["opcode=\"kv.set\""]), 200.0);
    assert_eq!(metric_sum(&text, "vigil_keys", &[]), 200.0);
    assert_eq!(metric_sum(&text, "vigil_writes_proposed_total", &[]), 200.0);
    assert_eq!(metric_sum(&text, "vigil_write_latency_seconds_count", &[]), 200.0);
    assert_eq!(metric_sum(&text, "vigil_write_latency_seconds_bucket", &["le=\"+Inf\""]), 200.0);
    // Every datagram was answered: 500 in, at least 500 answers out (pings now, writes late).
    assert!(metric_sum(&text, "vigil_rx_datagrams_total", &[]) >= 500.0);
    assert_eq!(metric_sum(&text, "vigil_raft_is_leader", &[]), 2.0, "one leader per partition");
    assert!(metric_sum(&text, "process_resident_memory_bytes", &[]) > 0.0);
    assert!(metric_sum(&text, "vigil_recovery_duration_seconds", &[]) > 0.0);
    assert!(metric_sum(&text, "vigil_start_duration_seconds", &[]) > 0.0);
    promtool_check(&text, &dir);
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
}

/// Sends `m` SETs over one RESP connection (this test's own client), each answered `+OK`.
fn resp_sets(port: u16, m: u64) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    for i in 0..m {
        let key = format!("resp-{i}");
        s.write_all(format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$1\r\nv\r\n", key.len()).as_bytes()).unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "+OK\r\n", "SET {i}");
    }
}

/// A histogram family's series in Prometheus text: by their labels other than `le`, the
/// buckets (in the order written) and the count.
fn histograms(text: &str, name: &str) -> BTreeMap<String, (Vec<(String, f64)>, f64)> {
    let mut out: BTreeMap<String, (Vec<(String, f64)>, f64)> = BTreeMap::new();
    let value = |l: &str| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(&format!("{name}_bucket{{le=\"")) {
            let (le, rest) = rest.split_once("\",").unwrap();
            let labels = rest.split_once('}').unwrap().0.to_string();
            out.entry(labels).or_default().0.push((le.to_string(), value(line)));
        } else if let Some(rest) = line.strip_prefix(&format!("{name}_count{{")) {
            let labels = rest.split_once('}').unwrap().0.to_string();
            out.entry(labels).or_default().1 = value(line);
        }
    }
    out
}

#[test]
fn request_latency_histograms_count_each_request_under_its_protocol_and_opcode() {
    let dir = disk_temp_dir("serve-metrics-requests");
    let (port, metrics_port) = (free_udp_port(), free_tcp_port());
    let server = Server::start(&dir, &config(port, metrics_port));
    let (pings, sets) = (300, 120);
    drive(port, opcode::PING, pings, |_| Vec::new());
    resp_sets(port, sets);
    std::thread::sleep(Duration::from_millis(300)); // more than a publish interval
    let text = scrape_metrics(metrics_port);
    let family = "vigil_request_duration_seconds";
    let count = |with: &[&str]| metric_sum(&text, &format!("{family}_count"), with);
    assert_eq!(count(&["protocol=\"udp\"", "opcode=\"ping\""]), pings as f64, "{text}");
    assert_eq!(count(&["protocol=\"resp\"", "opcode=\"kv.set\""]), sets as f64);
    assert_eq!(count(&["protocol=\"udp\"", "opcode=\"kv.set\""]), 0.0, "each request under its own protocol");
    assert_eq!(count(&[]), (pings + sets) as f64, "each request counted once (forwarded ones too)");
    // Durable writes took time (their log write at least).
    let sum = |with: &[&str]| metric_sum(&text, &format!("{family}_sum"), with);
    assert!(sum(&["opcode=\"kv.set\""]) > 0.0);
    let series = histograms(&text, family);
    assert!(!series.is_empty());
    for (labels, (buckets, count)) in &series {
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{labels}: buckets not monotone: {buckets:?}");
        let (le, last) = buckets.last().unwrap();
        assert_eq!((le.as_str(), *last), ("+Inf", *count), "{labels}: +Inf is the count");
        assert!(
            labels.contains("shard=\"") && labels.contains("protocol=\"") && labels.contains("opcode=\"")
        );
    }
    promtool_check(&text, &dir);
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
}

#[test]
fn bad_requests_get_clear_errors_and_the_endpoint_goes_on() {
    let dir = disk_temp_dir("serve-metrics-bad");
    let (port, metrics_port) = (free_udp_port(), free_tcp_port());
    let server = Server::start(&dir, &config(port, metrics_port));
    assert_eq!(http(metrics_port, "GET / HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(http(metrics_port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").0, 405);
    assert_eq!(http(metrics_port, "\x16\x03\x01 garbage, not http\r\n\r\n").0, 400);
    let huge = format!("GET /metrics HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(20_000));
    assert_eq!(http(metrics_port, &huge).0, 431);
    // A client that connects and says nothing is dropped after the read timeout; meanwhile and
    // after, others are served.
    let _silent = TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
    let started = Instant::now();
    assert!(scrape_metrics(metrics_port).contains("vigil_polls_total"));
    assert!(started.elapsed() < Duration::from_secs(5));
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
}

#[test]
fn a_prometheus_server_scrapes_the_node_and_promql_returns_the_rate_driven() {
    let dir = disk_temp_dir("serve-metrics-prometheus");
    let (port, metrics_port, prom_port) = (free_udp_port(), free_tcp_port(), free_tcp_port());
    let server = Server::start(&dir, &config(port, metrics_port));
    let prom_config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: vigil\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
    );
    std::fs::write(dir.join("prometheus.yml"), prom_config).unwrap();
    let prom = prometheus_tool("prometheus")
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting prometheus");
    // Stopped by its PID however the test ends (a failed assertion included).
    let prom = KillOnDrop(prom);
    // Prometheus takes seconds to start on a busy machine: drive only once it scraped the node.
    let up = |prom_port| {
        let url = format!(
            "/api/v1/query?query={}",
            form_urlencoded::byte_serialize(b"up{job=\"vigil\"}").collect::<String>()
        );
        try_http(prom_port, &format!("GET {url} HTTP/1.0\r\n\r\n"))
            .is_some_and(|(_, body)| body.contains("\"1\"]"))
    };
    let waited = Instant::now();
    while !up(prom_port) {
        assert!(waited.elapsed() < Duration::from_secs(60), "prometheus did not scrape the node within 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    // 200 PINGs a second for 10 s; then the rate Prometheus computes over seconds 3 to 8 of it
    // (inside the run: no edge of the run in its window), against what was sent in those seconds.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = format!("127.0.0.1:{port}");
    let (start, wall_start) = (Instant::now(), std::time::SystemTime::now());
    let mut sent_at = Vec::new();
    while start.elapsed() < Duration::from_secs(10) {
        let due = (start.elapsed().as_secs_f64() * 200.0) as usize;
        while sent_at.len() < due {
            let id = sent_at.len() as u64 + 1;
            exchange(&sock, &to, &request(&[(opcode::PING, id, &[])]), Duration::from_secs(2)).expect("pong");
            sent_at.push(start.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_secs(2)); // the last scrapes land
    let in_window = sent_at.iter().filter(|t| (3.0..8.0).contains(*t)).count() as f64 / 5.0;
    let at = wall_start.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64() + 8.0;
    let query = "sum(rate(vigil_requests_total{opcode=\"ping\"}[5s]))";
    let url = format!(
        "/api/v1/query?query={}&time={at:.3}",
        form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>()
    );
    let (status, body) = http(prom_port, &format!("GET {url} HTTP/1.0\r\n\r\n"));
    drop(prom);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"));
    let rate: f64 = v["data"]["result"][0]["value"][1].as_str().and_then(|s| s.parse().ok()).unwrap_or(0.0);
    eprintln!("PromQL {query} at second 8 = {rate}; sent in seconds 3..8: {in_window}/s");
    assert!(in_window > 100.0, "the test could not drive its rate: {in_window}/s");
    // Prometheus extrapolates a rate from the samples its window holds (1 s apart): within 25%.
    assert!(
        (rate - in_window).abs() <= in_window * 0.25,
        "PromQL {query} = {rate}, sent {in_window}/s: {body}"
    );
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
}

#[test]
fn the_web_port_answers_the_json_api_from_the_shards_snapshots() {
    let dir = disk_temp_dir("serve-web-api");
    let (port, web) = (free_udp_port(), free_tcp_port());
    let config = format!(
        "{}[tcp]\nweb_listen = [\"127.0.0.1:{web}\"]\n[metrics]\npublish_ms = 50\n",
        node_config(port, "data", 1_000_000, 2, None)
    );
    let server = Server::start(&dir, &config);
    drive(port, opcode::SET, 20, set_body);
    std::thread::sleep(Duration::from_millis(300));
    let get = |path: &str| http(web, &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    let json = |path: &str| -> serde_json::Value {
        let (status, body) = get(path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    };
    let status = json("/api/status");
    assert_eq!((status["shards"].as_u64(), status["partitions"].as_u64()), (Some(2), Some(2)), "{status}");
    assert_eq!(status["keys"], 20, "{status}");
    assert_eq!(status["partitions_leading"], 2, "{status}");
    let shards = json("/api/shards");
    assert_eq!(shards.as_array().map(Vec::len), Some(2));
    let writes: u64 =
        shards.as_array().unwrap().iter().map(|s| s["write_latency_us"]["count"].as_u64().unwrap()).sum();
    assert_eq!(writes, 20);
    let parts = json("/api/partitions");
    assert!(parts
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["is_leader"] == true && p["term"].as_u64() >= Some(1)));
    let config = json("/api/config");
    assert_eq!(config["net"]["port"], port);
    assert_eq!(get("/api/nothing").0, 404);
    assert_eq!(
        http(web, "POST /api/status HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").0,
        405
    );
    assert_eq!(http(web, "\x01\x02 not http\r\n\r\n").0, 400);
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
}
