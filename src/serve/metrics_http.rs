//! The Prometheus endpoint: `GET /metrics` on `metrics.listen` (9001 in the dev config), served
//! by a thread of its own off the shards' path. Each scrape loads the shards' latest snapshots
//! from the `StatsBoard` (the shards publish every `metrics.publish_ms`; a scrape never waits for
//! or asks a shard), reads the process's memory from `/proc/self/status`, and encodes them
//! (`metrics::prom`).
//!
//! With `admin.read_token` set, a request must carry `Authorization: Bearer <admin.read_token or
//! admin.token>` (Prometheus: `authorization: credentials:` in the scrape config): 401 otherwise,
//! counted in `vigil_auth_refusals_total{protocol="metrics"}`.
//!
//! One request per connection, answered and closed: `GET /metrics` is 200 (OpenMetrics when the
//! client's `Accept` asks for it, as Prometheus's scraper does, else the Prometheus text format:
//! `metrics::prom::to_prometheus_text`); `GET` of anything else
//! 404; another method 405; a head over `metrics.request_bytes_max` 431; bytes that are not an
//! HTTP request 400; a client that sends nothing for `READ_TIMEOUT` is dropped.
//!
//! Invariants: the listeners are bound before the store is touched (a refused port creates
//! nothing); the thread stops within `ACCEPT_POLL` of the stop flag; a client can hold the thread
//! for at most `READ_TIMEOUT` + `WRITE_TIMEOUT`.

use super::wall_clock::unix_ns;
use super::ServeError;
use crate::config::Config;
use crate::metrics::admin::read_allowed;
use crate::metrics::prom::{self, PortReport, ProcessStats};
use crate::metrics::StatsBoard;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// How often the thread looks at its listeners and the stop flag when nobody connects.
const ACCEPT_POLL: Duration = Duration::from_millis(20);
/// How long a client may take to send its request, and to take the answer.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a scrape reads the DPDK port's counters, once the DPDK backend registered a reader
/// (`None` on the kernel backend). The backend empties it before its port goes.
pub(super) type PortSource = Arc<std::sync::Mutex<Option<Box<dyn Fn() -> Option<PortReport> + Send>>>>;

/// The endpoint's listeners, bound; `start` serves them.
pub(super) struct MetricsServing {
    listeners: Vec<TcpListener>,
    addrs: Vec<SocketAddr>,
    board: StatsBoard,
    port: PortSource,
    request_bytes_max: usize,
    /// `admin.read_token` and `admin.token`: what a scrape must carry (none when the first is empty).
    read_token: String,
    admin_token: String,
    /// Scrapes refused 401 (this thread's own count: the endpoint is no shard's).
    unauthorized: u64,
}

/// The running endpoint: its thread, and when every shard was serving (for
/// `vigil_start_duration_seconds`).
pub(super) struct MetricsRunning {
    thread: JoinHandle<()>,
    ready_at_ns: Arc<AtomicU64>,
}

/// Binds `metrics.listen`, to serve `board` and `port`; `None` when the endpoint is off.
pub(super) fn prepare(
    config: &Config,
    board: StatsBoard,
    port: PortSource,
) -> Result<Option<MetricsServing>, ServeError> {
    let m = &config.metrics;
    if !m.enabled() {
        return Ok(None);
    }
    let mut listeners = Vec::new();
    for addr in &m.listen {
        let l = TcpListener::bind(addr)
            .map_err(|e| ServeError::Metrics(format!("metrics.listen: cannot listen on {addr}: {e}")))?;
        l.set_nonblocking(true).map_err(|e| ServeError::Metrics(format!("metrics.listen {addr}: {e}")))?;
        listeners.push(l);
    }
    let addrs = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
    Ok(Some(MetricsServing {
        listeners,
        addrs,
        board,
        port,
        request_bytes_max: m.request_bytes_max,
        read_token: config.admin.read_token.clone(),
        admin_token: config.admin.token.clone(),
        unauthorized: 0,
    }))
}

impl MetricsServing {
    /// The addresses served, for the ready line.
    pub(super) fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Starts the endpoint's thread; it stops once `stop` is set.
    pub(super) fn start(
        self,
        stop: Arc<AtomicBool>,
        started: SystemTime,
    ) -> Result<MetricsRunning, ServeError> {
        let ready_at_ns = Arc::new(AtomicU64::new(0));
        let ready = Arc::clone(&ready_at_ns);
        let thread = std::thread::Builder::new()
            .name("vigil-metrics".into())
            .spawn(move || self.run(&stop, started, &ready))
            .map_err(|e| ServeError::Metrics(format!("cannot spawn the metrics thread: {e}")))?;
        Ok(MetricsRunning { thread, ready_at_ns })
    }

    fn run(mut self, stop: &AtomicBool, started: SystemTime, ready_at_ns: &AtomicU64) {
        while !stop.load(Ordering::Relaxed) {
            let mut served = false;
            for i in 0..self.listeners.len() {
                if let Ok((stream, _)) = self.listeners[i].accept() {
                    served = true;
                    self.answer(stream, started, ready_at_ns.load(Ordering::Relaxed));
                }
            }
            if !served {
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }

    /// Reads one request from `stream` and answers it (errors of the client's socket end it).
    fn answer(&mut self, mut stream: TcpStream, started: SystemTime, ready_at_ns: u64) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        let head = read_head(&mut stream, self.request_bytes_max);
        let refused = match &head {
            Ok(Head::Get { authorization, .. } | Head::Other { authorization }) => {
                !read_allowed(authorization.as_deref(), &self.read_token, &self.admin_token)
            }
            Err(_) => false,
        };
        let (status, content_type, body) = match head {
            _ if refused => {
                self.unauthorized += 1;
                (
                    "401 Unauthorized",
                    "text/plain",
                    "the metrics need `Authorization: Bearer <admin.read_token>`\n".into(),
                )
            }
            Ok(Head::Get { path, openmetrics, .. }) if path == "/metrics" => {
                let mut body = String::new();
                let port = self.port.lock().ok().and_then(|source| source.as_ref().and_then(|read| read()));
                let mut process = process_stats(started, ready_at_ns);
                process.metrics_unauthorized = self.unauthorized;
                match prom::render(self.board.latest(), process, port, &mut body) {
                    Ok(()) if openmetrics => ("200 OK", prom::CONTENT_TYPE, body),
                    Ok(()) => ("200 OK", prom::CONTENT_TYPE_TEXT, prom::to_prometheus_text(&body)),
                    Err(_) => ("500 Internal Server Error", "text/plain", "encoding failed\n".into()),
                }
            }
            Ok(Head::Get { .. }) => {
                ("404 Not Found", "text/plain", "not found: the metrics are at /metrics\n".into())
            }
            Ok(Head::Other { .. }) => ("405 Method Not Allowed", "text/plain", "only GET /metrics\n".into()),
            Err(Refusal::TooLarge) => {
                ("431 Request Header Fields Too Large", "text/plain", "request head too large\n".into())
            }
            Err(Refusal::Malformed) => ("400 Bad Request", "text/plain", "not an HTTP request\n".into()),
            Err(Refusal::Gone) => return,
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
            body.len(),
            match &status[..3] {
                "405" => "Allow: GET\r\n",
                "401" => "WWW-Authenticate: Bearer realm=\"vigil\"\r\n",
                _ => "",
            }
        );
        let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes()));
    }
}

impl MetricsRunning {
    /// Records that every shard is serving now.
    pub(super) fn mark_ready(&self) {
        self.ready_at_ns.store(unix_ns(SystemTime::now()), Ordering::Relaxed);
    }

    /// Waits for the thread (after the stop flag was set).
    pub(super) fn finish(self) {
        let _ = self.thread.join();
    }
}

/// What a request's head asked: a GET of a path (and whether it accepts OpenMetrics), or
/// another method; with its `Authorization` value.
enum Head {
    Get { path: String, openmetrics: bool, authorization: Option<Vec<u8>> },
    Other { authorization: Option<Vec<u8>> },
}

/// Why a request was not read.
enum Refusal {
    TooLarge,
    Malformed,
    /// The client went away or sent nothing in time.
    Gone,
}

/// Reads a request head of at most `max` bytes.
fn read_head(stream: &mut TcpStream, max: usize) -> Result<Head, Refusal> {
    let mut buf = vec![0u8; max];
    let mut len = 0;
    loop {
        if len == buf.len() {
            return Err(Refusal::TooLarge);
        }
        let n = stream.read(&mut buf[len..]).map_err(|_| Refusal::Gone)?;
        if n == 0 {
            return Err(Refusal::Gone);
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                let path = req.path.unwrap_or("").split('?').next().unwrap_or("").to_string();
                let accept = req.headers.iter().find(|h| h.name.eq_ignore_ascii_case("accept"));
                let openmetrics =
                    accept.is_some_and(|h| prom::wants_openmetrics(&String::from_utf8_lossy(h.value)));
                let authorization = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("authorization"))
                    .map(|h| h.value.to_vec());
                return Ok(if req.method == Some("GET") {
                    Head::Get { path, openmetrics, authorization }
                } else {
                    Head::Other { authorization }
                });
            }
            Ok(httparse::Status::Partial) => continue,
            Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooLarge),
            Err(_) => return Err(Refusal::Malformed),
        }
    }
}

/// The process's memory (from `/proc/self/status`) and start times.
pub(super) fn process_stats(started: SystemTime, ready_at_ns: u64) -> ProcessStats {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let start_ns = unix_ns(started);
    ProcessStats {
        resident_bytes: kib("VmRSS:"),
        virtual_bytes: kib("VmSize:"),
        start_time_s: start_ns as f64 / 1e9,
        start_duration_s: ready_at_ns.saturating_sub(start_ns) as f64 / 1e9,
        metrics_unauthorized: 0,
    }
}
