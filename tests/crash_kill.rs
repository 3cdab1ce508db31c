//! Crash test with the real binary: clients write to `vigil serve` under load and record every
//! acknowledged write; the test kills `vigil` with SIGKILL at a random moment while writes are in
//! flight, restarts it on the same data directory, and checks that every acknowledged write is
//! there, with its value and the version its answer carried.
//!
//! Each cycle:
//! 1. start `vigil` on the same data dir and wait (bounded) for its ready line (after recovery);
//! 2. exactly-once across crashes: resend the probe writes of the last cycles (one write per probe
//!    client, so it is that client's last write) with their original client and request ids: the
//!    answer must be the original version; resend each writer's last acknowledged write of the
//!    previous cycle and a few random ones: the original version or `STALE` (a later write of that
//!    client to the same partition was applied), never a new version;
//! 3. read back every write acknowledged so far (GET: same value, same version); read the writes
//!    that were in flight at a kill: absent or present with the value sent, and once a restart has
//!    shown either, it stays so (recovered state never changes across later crashes);
//! 4. one probe write (synchronous, resent with the same id until answered, then once more: same
//!    version);
//! 5. two writer threads (two clients, strictly increasing request ids, one SET per datagram, up to
//!    32 in flight each, at a random rate) and one RESP writer (SETs pipelined on a TCP connection
//!    to the same port, `crash_kill/resp.rs`) write new keys (each key once) for a random 100–600 ms;
//!    then SIGKILL, and what was still unanswered becomes "unknown". `BUSY` and `NOT_LEADER` (nothing
//!    executed) are written again under a new request id; any other error answer (`STALE`,
//!    `UNAVAILABLE`, ...) fails the test.
//!
//! Access control is on as in production (docs/SECURITY.md): one principal speaks for every
//! client id the writers and probes use, and every datagram with a client id is signed (a fresh
//! nonce per send, resends included); reads go anonymously (client id 0), as RESP does.
//!
//! A failure names the seed, the cycle, what is missing or changed, and the server's output (the
//! killed run's and the current one's); the data dir is kept for inspection. Any "panicked" line in
//! the server's output fails the test too.
//!
//! After the last cycle: start, verify everything, stop with SIGINT (exit 0), start again and
//! verify once more (recovery after a clean stop), stop.
//!
//! The same test runs with the log in files in the data directory (the default), on a raw block
//! device (a loop device over a file: `storage.device`, created with `vigil format`), and, built
//! with `--features spdk`, on an NVMe namespace through SPDK (`tests/common/nvmf.rs`).
//!
//! `VIGIL_CRASH_SEED=x` (decimal or 0x hex) replays the random choices (kill delays, values, which
//! writes are resent; the timing of the kills is still the machine's); `VIGIL_CRASH_CYCLES=n` runs
//! `n` cycles instead of 20.

mod common;
#[path = "common/loopdev.rs"]
mod loopdev;
#[path = "crash_kill/resp.rs"]
mod resp;

use common::*;
use std::cell::Cell;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::UdpSocket;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use vigil::kv::protocol::{encode_write_body, parse_answer, Answer};
use vigil::kv::Op;
use vigil::wire::{self, opcode, DatagramWriter, Status};

const DEFAULT_CYCLES: usize = 20;
/// Writer threads per cycle, one client id each.
const WRITERS: usize = 2;
/// Writes in flight per writer.
const WRITE_WINDOW: usize = 32;
/// Each cycle's writers send at most this many writes per second each, drawn from this range: some
/// cycles trickle, some load the group commit. The cap also keeps the verification, which reads
/// everything acknowledged so far after every restart, from growing too fast.
const WRITE_RATES: std::ops::RangeInclusive<u64> = 500..=8000;
/// GETs in flight while verifying.
const READ_WINDOW: usize = 64;
/// Probe clients get ids from here on (writers: `cycle * WRITERS + w + 1`).
const PROBE_CLIENT_BASE: u64 = 1 << 32;
/// How many of the latest probes are resent after each restart (few, so that their clients stay
/// well within the server's `dedup_clients_max`).
const PROBES_RESENT: usize = 8;
/// Acknowledged writes of the previous cycle resent after each restart.
const WRITES_RESENT: usize = 6;
/// Bounds on everything that waits.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const VERIFY_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a run keeps the node's log.
enum LogPlace {
    /// One file per partition in the data directory.
    Files,
    /// A raw block device (`storage.device`).
    Device(PathBuf),
    /// An NVMe namespace through SPDK, by transport ID (`storage.backend = "spdk"`).
    #[cfg_attr(not(feature = "spdk"), allow(dead_code))]
    Spdk(String),
}

/// Small segments and frequent snapshots: kills land before, during and after snapshots and segment
/// recycling, and recovery loads snapshots (with the exactly-once table) as well as replaying.
fn config(port: u16, data: &Path, place: &LogPlace) -> String {
    let node = kv_node_config(port, &data.display().to_string(), 1500);
    let uring = "backend = \"uring\"\n";
    assert!(node.contains(uring));
    let node = match place {
        LogPlace::Files => node,
        LogPlace::Device(dev) => node.replace(uring, &format!("{uring}device = \"{}\"\n", dev.display())),
        LogPlace::Spdk(trid) => format!(
            "{}[storage.spdk]\ntransport_id = \"{trid}\"\nnamespace_id = 1\nno_huge = true\nmem_size_mb = 512\n",
            node.replace(uring, "backend = \"spdk\"\n")
        ),
    };
    // kv_node_config's anonymous read-write, plus the principal every writer and probe signs with.
    format!(
        "{node}[[auth.clients]]\nname = \"crash-writers\"\nkey_id = 1\nclient_id = 1\nclient_ids = {}\n\
         key = \"{KEY_HEX}\"\nacl = \"+@read +@write\"\n",
        1u64 << 62
    )
}

/// The writers' MAC key.
const KEY_HEX: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";

/// splitmix64: seeds the sub-generators (a zero xorshift state would stay zero).
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) | 1
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={v:?}: {e}")))
}

/// One write as sent.
#[derive(Clone, Debug)]
struct Write {
    key: Vec<u8>,
    value: Vec<u8>,
    client_id: u64,
    request_id: u64,
}

impl Write {
    fn body(&self) -> Vec<u8> {
        let op = Op::Set { key: &self.key, value: &self.value };
        let mut body = vec![0u8; vigil::kv::protocol::request_body_len(&op)];
        encode_write_body(&op, &mut body).expect("encoding a SET body");
        body
    }

    fn name(&self) -> String {
        format!(
            "{:?} (client {}, request {}, {} value bytes)",
            String::from_utf8_lossy(&self.key),
            self.client_id,
            self.request_id,
            self.value.len()
        )
    }
}

/// A write that was acknowledged with `version`.
#[derive(Clone, Debug)]
struct Acked {
    write: Write,
    version: u64,
    cycle: usize,
}

/// A write sent but never answered (in flight at a kill): it may or may not have been applied.
/// `seen` is what the first restart after it showed: `Some(Some(version))` present,
/// `Some(None)` absent.
#[derive(Clone, Debug)]
struct Unknown {
    write: Write,
    cycle: usize,
    seen: Option<Option<u64>>,
}

/// One answer frame and the client id of its datagram.
#[derive(Debug)]
struct Reply {
    client_id: u64,
    opcode: u8,
    status: u8,
    request_id: u64,
    body: Vec<u8>,
}

/// `BUSY` and `NOT_LEADER` (a partition still catching up after a restart): nothing was executed,
/// retry after a short pause.
fn retry_later(status: u8) -> bool {
    status == Status::Busy as u8 || status == Status::NotLeader as u8
}

fn status_name(s: u8) -> String {
    Status::from_u8(s).map_or_else(|| format!("status {s}"), |s| s.name().to_string())
}

/// A UDP client socket: one frame per datagram out, the frames of one datagram in.
struct Client {
    sock: UdpSocket,
    to: String,
    buf: Vec<u8>,
    timeout: Duration,
    creds: vigil::auth::Credentials,
    /// The next nonce: from the Unix time in ns at the client's start, one per signed datagram.
    nonce: u64,
}

impl Client {
    fn new(to: &str, timeout: Duration) -> Client {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("binding a client socket");
        sock.set_read_timeout(Some(timeout)).unwrap();
        let creds = vigil::auth::Credentials::from_hex(1, KEY_HEX).expect("a valid key");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        Client {
            sock,
            to: to.to_string(),
            buf: vec![0u8; 65_536],
            timeout,
            creds,
            nonce: now.as_nanos() as u64,
        }
    }

    fn set_timeout(&mut self, timeout: Duration) {
        if timeout != self.timeout {
            self.sock.set_read_timeout(Some(timeout.max(Duration::from_millis(1)))).unwrap();
            self.timeout = timeout;
        }
    }

    /// Sends one request frame in its own datagram. A send error (the server is gone) is not a
    /// failure of the test: the request is simply unanswered.
    /// A datagram with a client id is signed (a new nonce each time: a resend is a new datagram).
    fn send(&mut self, client_id: u64, op: u8, request_id: u64, body: &[u8]) {
        let mut out = [0u8; 2048];
        let flags = if client_id == 0 { 0 } else { vigil::auth::ext::FLAG_AUTH };
        let mut w = DatagramWriter::request_with_blocks(&mut out, client_id, flags).unwrap();
        w.push(op, 0, request_id, body).expect("a request frame fits a datagram");
        let n = w.finish();
        if client_id != 0 {
            self.nonce += 1;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
            vigil::auth::sign(&mut out[..n], &self.creds, now.as_millis() as u64, self.nonce);
        }
        let _ = self.sock.send_to(&out[..n], &self.to);
    }

    /// The frames of the next datagram within the read timeout: `Ok(vec![])` if none came,
    /// `Err` for a datagram that is not a well-formed response.
    fn recv(&mut self) -> Result<Vec<Reply>, String> {
        let n = match self.sock.recv(&mut self.buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return Ok(vec![]),
            // ICMP port unreachable while the server is down, EINTR: nothing came.
            Err(_) => return Ok(vec![]),
        };
        let d = &self.buf[..n];
        let h = wire::decode_header(d).map_err(|e| format!("bad response header ({e:?}): {d:02x?}"))?;
        if !h.is_response() {
            return Err(format!("a datagram without the RESPONSE flag: {d:02x?}"));
        }
        let mut replies = Vec::new();
        for f in wire::Frames::new(d, h.count) {
            let f = f.map_err(|e| format!("bad response frame ({e:?}): {d:02x?}"))?;
            replies.push(Reply {
                client_id: h.client_id,
                opcode: f.opcode,
                status: f.status,
                request_id: f.request_id,
                body: f.body.to_vec(),
            });
        }
        Ok(replies)
    }

    /// One request answered synchronously: resent with the same request id until an answer other
    /// than `BUSY` or `NOT_LEADER` comes (for a write with a client id that is what exactly-once is
    /// for), within `CALL_TIMEOUT`.
    fn call(&mut self, client_id: u64, op: u8, request_id: u64, body: &[u8]) -> Result<Reply, String> {
        let deadline = Instant::now() + CALL_TIMEOUT;
        self.set_timeout(Duration::from_millis(20));
        let mut resend_at = Instant::now();
        let mut busy = 0;
        loop {
            let now = Instant::now();
            if now > deadline {
                return Err(format!(
                    "no answer to opcode {op:#x} client {client_id} request {request_id} within \
                     {CALL_TIMEOUT:?} ({busy} BUSY or NOT_LEADER)"
                ));
            }
            if now >= resend_at {
                self.send(client_id, op, request_id, body);
                resend_at = now + Duration::from_millis(300);
            }
            for r in self.recv()? {
                // Late answers to earlier calls are skipped.
                if r.request_id != request_id || r.client_id != client_id || r.opcode != op {
                    continue;
                }
                if retry_later(r.status) {
                    busy += 1;
                    resend_at = Instant::now() + Duration::from_millis(5);
                    continue;
                }
                return Ok(r);
            }
        }
    }
}

/// The SET answer's version, or why there is none.
fn set_version(r: &Reply) -> Result<u64, String> {
    if r.status != Status::Ok as u8 {
        return Err(status_name(r.status));
    }
    match parse_answer(opcode::SET, &r.body) {
        Ok(Answer::Version(v)) if v != 0 => Ok(v),
        other => Err(format!("a SET answer that does not parse: {other:?} from {:02x?}", r.body)),
    }
}

/// A GET's outcome: the version and value, or `None` for `NOT_FOUND`.
type Found = Option<(u64, Vec<u8>)>;

/// GETs `keys` with up to `READ_WINDOW` in flight, one per datagram, anonymous; a GET unanswered
/// for 500 ms or answered `BUSY` is asked again under a new request id. `None`: `NOT_FOUND`.
fn get_many(to: &str, keys: &[&[u8]]) -> Result<Vec<Found>, String> {
    let deadline = Instant::now() + VERIFY_TIMEOUT;
    let mut c = Client::new(to, Duration::from_millis(5));
    let mut results: Vec<Option<Found>> = vec![None; keys.len()];
    let mut todo: Vec<usize> = (0..keys.len()).rev().collect();
    let mut in_flight: HashMap<u64, (usize, Instant)> = HashMap::new();
    let mut next_id = 1u64;
    let mut done = 0;
    while done < keys.len() {
        let now = Instant::now();
        if now > deadline {
            return Err(format!("reading {} keys: {done} answered within {VERIFY_TIMEOUT:?}", keys.len()));
        }
        let expired: Vec<u64> = in_flight
            .iter()
            .filter(|(_, (_, sent))| now.duration_since(*sent) > Duration::from_millis(500))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let (i, _) = in_flight.remove(&id).unwrap();
            todo.push(i);
        }
        while in_flight.len() < READ_WINDOW {
            let Some(i) = todo.pop() else { break };
            if results[i].is_some() {
                continue;
            }
            c.send(0, opcode::GET, next_id, keys[i]);
            in_flight.insert(next_id, (i, Instant::now()));
            next_id += 1;
        }
        for r in c.recv()? {
            let Some((i, _)) = in_flight.remove(&r.request_id) else { continue };
            if results[i].is_some() {
                continue;
            }
            if r.opcode != opcode::GET {
                return Err(format!("a GET answered with opcode {:#x}", r.opcode));
            }
            let got = match Status::from_u8(r.status) {
                Some(Status::Ok) => match parse_answer(opcode::GET, &r.body) {
                    Ok(Answer::Value { value, version }) => Some((version, value.to_vec())),
                    other => return Err(format!("a GET answer that does not parse: {other:?}")),
                },
                Some(Status::NotFound) => None,
                Some(Status::Busy | Status::NotLeader) => {
                    todo.push(i);
                    continue;
                }
                _ => {
                    return Err(format!(
                        "GET {:?} answered {}",
                        String::from_utf8_lossy(keys[i]),
                        status_name(r.status)
                    ))
                }
            };
            results[i] = Some(got);
            done += 1;
        }
    }
    Ok(results.into_iter().map(|r| r.unwrap()).collect())
}

/// What one writer thread saw.
#[derive(Default)]
struct WriterReport {
    acked: Vec<Write>,
    versions: Vec<u64>,
    unknown: Vec<Write>,
    busy: u64,
    in_flight_at_stop: usize,
    problems: Vec<String>,
}

/// Writes new keys at up to `rate` a second with up to `WRITE_WINDOW` in flight until `stop` (set
/// right after the kill), then reads what answers the socket still holds for 300 ms.
fn writer(
    to: &str,
    cycle: usize,
    w: usize,
    seed: u64,
    rate: u64,
    stop: &AtomicBool,
    gauge: &AtomicUsize,
) -> WriterReport {
    let client_id = (cycle * WRITERS + w + 1) as u64;
    let mut rng = XorShift(mix(seed ^ ((cycle as u64) << 8) ^ w as u64));
    let mut c = Client::new(to, Duration::from_millis(2));
    let hard_deadline = Instant::now() + Duration::from_secs(30);
    let mut rep = WriterReport::default();
    let mut pending: HashMap<u64, Write> = HashMap::new();
    let mut retry: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let (mut next_request, mut n, mut sent) = (1u64, 0u64, 0u64);
    let mut drain_until: Option<Instant> = None;
    let started = Instant::now();
    loop {
        let now = Instant::now();
        match drain_until {
            None if stop.load(Ordering::SeqCst) || now > hard_deadline => {
                rep.in_flight_at_stop = pending.len();
                drain_until = Some(now + Duration::from_millis(300));
            }
            None => {
                let allowed = started.elapsed().as_micros() as u64 * rate / 1_000_000 + 1;
                while pending.len() < WRITE_WINDOW && sent < allowed {
                    sent += 1;
                    let (key, value) = retry.pop().unwrap_or_else(|| {
                        n += 1;
                        let key = format!("k-{cycle}-{w}-{n}").into_bytes();
                        let mut value = format!("v-{cycle}-{w}-{n}-").into_bytes();
                        let extra = (rng.next_u64() % 120) as usize;
                        value.extend(rng.bytes(extra));
                        (key, value)
                    });
                    let write = Write { key, value, client_id, request_id: next_request };
                    next_request += 1;
                    c.send(client_id, opcode::SET, write.request_id, &write.body());
                    pending.insert(write.request_id, write);
                }
            }
            Some(until) if now > until || pending.is_empty() => break,
            Some(_) => {}
        }
        gauge.store(pending.len(), Ordering::SeqCst);
        let replies = match c.recv() {
            Ok(r) => r,
            Err(e) => {
                rep.problems.push(format!("client {client_id}: {e}"));
                continue;
            }
        };
        for r in replies {
            let Some(write) = pending.remove(&r.request_id) else {
                rep.problems.push(format!(
                    "client {client_id}: an answer to request {} that is not in flight ({}, opcode {:#x})",
                    r.request_id,
                    status_name(r.status),
                    r.opcode
                ));
                continue;
            };
            if r.client_id != client_id || r.opcode != opcode::SET {
                rep.problems.push(format!(
                    "{}: answered for client {} with opcode {:#x}",
                    write.name(),
                    r.client_id,
                    r.opcode
                ));
                continue;
            }
            if retry_later(r.status) {
                // Not executed: written again under a new request id (not after the kill).
                rep.busy += 1;
                if drain_until.is_none() {
                    retry.push((write.key, write.value));
                }
                continue;
            }
            match set_version(&r) {
                Ok(v) => {
                    rep.acked.push(write);
                    rep.versions.push(v);
                }
                Err(e) => rep.problems.push(format!("{}: {e}", write.name())),
            }
        }
    }
    gauge.store(0, Ordering::SeqCst);
    let mut unknown: Vec<Write> = pending.into_values().collect();
    unknown.sort_by_key(|w| w.request_id);
    rep.unknown = unknown;
    rep
}

/// Everything the test knows about the store.
#[derive(Default)]
struct Model {
    acked: Vec<Acked>,
    probes: Vec<Acked>,
    unknown: Vec<Unknown>,
    resent_original: u64,
    resent_stale: u64,
    unknown_present: u64,
    /// Of `acked`, written over RESP.
    resp_acked: usize,
}

impl Model {
    /// After a restart: exactly-once resends, then every acknowledged write, then the unknowns.
    /// Returns the problems found (empty: all good) and a summary.
    fn check(&mut self, to: &str, cycle: usize, rng: &mut XorShift) -> (Vec<String>, String) {
        let mut problems = Vec::new();
        let mut c = Client::new(to, Duration::from_millis(20));

        let first_probe = self.probes.len().saturating_sub(PROBES_RESENT);
        for p in &self.probes[first_probe..] {
            let w = &p.write;
            match c.call(w.client_id, opcode::SET, w.request_id, &w.body()).and_then(|r| set_version(&r)) {
                Ok(v) if v == p.version => {}
                Ok(v) => problems.push(format!(
                    "probe {} of cycle {} resent: version {v}, was {} (executed twice)",
                    w.name(),
                    p.cycle,
                    p.version
                )),
                Err(e) => problems.push(format!("probe {} of cycle {} resent: {e}", w.name(), p.cycle)),
            }
        }

        // Each writer's last acknowledged write (the original answer unless a later write of its
        // client to the same partition was applied), then random ones (mostly STALE).
        // (RESP writes, client 0, are anonymous: nothing to resend.)
        let previous: Vec<&Acked> =
            self.acked.iter().filter(|a| a.cycle + 1 == cycle && a.write.client_id != 0).collect();
        let mut resend: Vec<&Acked> = Vec::new();
        for a in &previous {
            match resend.iter_mut().find(|r| r.write.client_id == a.write.client_id) {
                Some(r) if r.write.request_id < a.write.request_id => *r = a,
                Some(_) => {}
                None => resend.push(a),
            }
        }
        for _ in 0..WRITES_RESENT.min(previous.len()) {
            resend.push(previous[(rng.next_u64() % previous.len() as u64) as usize]);
        }
        for a in resend {
            let w = &a.write;
            let r = c.call(w.client_id, opcode::SET, w.request_id, &w.body());
            match r.map(|r| (Status::from_u8(r.status), set_version(&r))) {
                Ok((_, Ok(v))) if v == a.version => self.resent_original += 1,
                Ok((Some(Status::Stale), _)) => self.resent_stale += 1,
                Ok((_, Ok(v))) => problems.push(format!(
                    "{} of cycle {} resent: version {v}, was {} (executed twice)",
                    w.name(),
                    a.cycle,
                    a.version
                )),
                Ok((_, Err(e))) | Err(e) => {
                    problems.push(format!("{} of cycle {} resent: {e}", w.name(), a.cycle))
                }
            }
        }

        let known: Vec<&Acked> = self.acked.iter().chain(&self.probes).collect();
        let keys: Vec<&[u8]> = known
            .iter()
            .map(|a| &a.write.key[..])
            .chain(self.unknown.iter().map(|u| &u.write.key[..]))
            .collect();
        let got = match get_many(to, &keys) {
            Ok(got) => got,
            Err(e) => {
                problems.push(e);
                return (problems, String::new());
            }
        };
        let (got_known, got_unknown) = got.split_at(known.len());
        for (a, g) in known.iter().zip(got_known) {
            let w = &a.write;
            match g {
                None => problems.push(format!(
                    "LOST: {} acknowledged in cycle {} with version {}: NOT_FOUND",
                    w.name(),
                    a.cycle,
                    a.version
                )),
                // A RESP write (client 0) was answered +OK without a version: its value is checked.
                Some((v, value)) if (a.write.client_id != 0 && *v != a.version) || *value != w.value => {
                    problems.push(format!(
                        "CHANGED: {} acknowledged in cycle {} with version {}: version {v}, value {}",
                        w.name(),
                        a.cycle,
                        a.version,
                        if *value == w.value { "as written".to_string() } else { format!("{value:02x?}") }
                    ))
                }
                Some(_) => {}
            }
        }
        let mut newly_present = 0;
        for (u, g) in self.unknown.iter_mut().zip(got_unknown) {
            let now = g.as_ref().map(|(v, _)| *v);
            if let Some((_, value)) = g {
                if *value != u.write.value {
                    problems.push(format!(
                        "CORRUPT: {} sent in cycle {} (unanswered) reads back {value:02x?}",
                        u.write.name(),
                        u.cycle
                    ));
                }
            }
            match u.seen {
                None => {
                    u.seen = Some(now);
                    newly_present += u64::from(now.is_some());
                }
                Some(seen) if seen != now => problems.push(format!(
                    "RECOVERED STATE CHANGED: {} sent in cycle {} (unanswered) was {} after an earlier \
                     restart, is {} now",
                    u.write.name(),
                    u.cycle,
                    seen.map_or("absent".to_string(), |v| format!("present with version {v}")),
                    now.map_or("absent".to_string(), |v| format!("present with version {v}"))
                )),
                Some(_) => {}
            }
        }
        self.unknown_present += newly_present;
        let summary = format!(
            "verified {} acked + {} probes + {} unknown ({} of the last kill's present), {} probes resent",
            self.acked.len(),
            self.probes.len(),
            self.unknown.len(),
            newly_present,
            self.probes.len() - first_probe
        );
        (problems, summary)
    }

    /// This cycle's probe: one write of its own client, answered (resent with the same id until
    /// it is), then resent once more: the same version.
    fn probe(&mut self, to: &str, cycle: usize) -> Result<(), String> {
        let mut c = Client::new(to, Duration::from_millis(20));
        let write = Write {
            key: format!("probe-{cycle}").into_bytes(),
            value: format!("probe value of cycle {cycle}").into_bytes(),
            client_id: PROBE_CLIENT_BASE + cycle as u64,
            request_id: 1,
        };
        let body = write.body();
        let v1 = set_version(&c.call(write.client_id, opcode::SET, 1, &body)?)
            .map_err(|e| format!("probe {}: {e}", write.name()))?;
        let v2 = set_version(&c.call(write.client_id, opcode::SET, 1, &body)?)
            .map_err(|e| format!("probe {} resent: {e}", write.name()))?;
        if v1 != v2 {
            return Err(format!("probe {} resent in the same run: version {v2}, was {v1}", write.name()));
        }
        self.probes.push(Acked { write, version: v1, cycle });
        Ok(())
    }
}

/// Prints how to replay when the test fails, whatever panics.
struct FailureNote {
    seed: u64,
    cycle: Cell<usize>,
    dir: PathBuf,
}

impl Drop for FailureNote {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "\ncrash_kill FAILED in cycle {}: replay with VIGIL_CRASH_SEED={:#x}; data dir kept at {}\n",
                self.cycle.get(),
                self.seed,
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn fail(note: &FailureNote, what: &str, problems: &[String], output: &str) -> ! {
    let shown: Vec<&String> = problems.iter().take(30).collect();
    panic!(
        "seed {:#x}, cycle {}: {what}: {} problem(s):\n  {}\nvigil output:\n{output}",
        note.seed,
        note.cycle.get(),
        problems.len(),
        shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  ")
    );
}

/// A thread of `vigil` that panicked (a shard, say) may leave the process up but deaf: fail on it
/// whatever the clients saw.
fn no_panic(note: &FailureNote, when: &str, output: &str) {
    let panics: Vec<String> = output.lines().filter(|l| l.contains("panicked")).map(String::from).collect();
    if !panics.is_empty() {
        fail(note, &format!("vigil panicked ({when})"), &panics, output);
    }
}

#[test]
fn acknowledged_writes_survive_sigkill_at_random_moments() {
    let dir = disk_temp_dir("crash-kill");
    crash_test(&dir, &LogPlace::Files, DEFAULT_CYCLES);
}

/// The log on a raw block device: a loop device over a file (root; fails without one).
#[test]
fn acknowledged_writes_survive_sigkill_with_the_log_on_a_raw_block_device() {
    let dir = disk_temp_dir("crash-kill-device");
    let dev = loopdev::LoopDevice::attach(&dir.join("device.img"), 64 << 20);
    crash_test(&dir, &LogPlace::Device(dev.path().to_path_buf()), DEVICE_CYCLES);
}

/// The log on an NVMe namespace through SPDK's driver: SPDK's `nvmf_tgt` exporting a RAM namespace
/// over NVMe/TCP on loopback (`tests/common/nvmf.rs`), which outlives every kill of Vigil. Built
/// with `--features spdk` only (SPDK installed, `VIGIL_SPDK_RPC` naming its rpc.py).
#[cfg(feature = "spdk")]
#[test]
fn acknowledged_writes_survive_sigkill_with_the_log_through_spdk() {
    let dir = disk_temp_dir("crash-kill-spdk");
    let target = common::nvmf::NvmfTarget::start(64, 4096);
    crash_test(&dir, &LogPlace::Spdk(target.trid().to_string()), DEVICE_CYCLES);
    drop(target);
}

/// Kills with the log on a device (fewer: the files run covers the log's logic, these its device).
const DEVICE_CYCLES: usize = 8;

/// The crash test in `dir` with the log at `place` (a device store is made with `vigil format`
/// first).
fn crash_test(dir: &Path, place: &LogPlace, default_cycles: usize) {
    let seed = env_u64("VIGIL_CRASH_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        mix(t.as_nanos() as u64 ^ u64::from(std::process::id()))
    });
    let cycles = env_u64("VIGIL_CRASH_CYCLES").map_or(default_cycles, |n| n as usize);
    eprintln!("crash_kill: seed {seed:#x}, {cycles} cycles (replay: VIGIL_CRASH_SEED={seed:#x})");
    let started = Instant::now();

    let dir = dir.to_path_buf();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let note = FailureNote { seed, cycle: Cell::new(0), dir: dir.clone() };
    let port = free_udp_port();
    let to = format!("127.0.0.1:{port}");
    let cfg = config(port, &data, place);
    if !matches!(place, LogPlace::Files) {
        std::fs::write(dir.join("vigil.toml"), &cfg).unwrap();
        let (status, out) =
            run_vigil_to_exit(&dir, &["format", "--config", "vigil.toml"], Duration::from_secs(60));
        assert!(status.success(), "vigil format: {out}");
    }
    let mut rng = XorShift(mix(seed));
    let mut model = Model::default();
    let (mut sent_total, mut cycles_in_flight, mut busy_total) = (0usize, 0usize, 0u64);
    let mut last_output = String::new();

    for cycle in 0..cycles {
        note.cycle.set(cycle);
        let t0 = Instant::now();
        let mut server = Server::start(&dir, &cfg);
        let ready = t0.elapsed();
        let t1 = Instant::now();
        let (problems, summary) = model.check(&to, cycle, &mut rng);
        let checked = t1.elapsed();
        if !problems.is_empty() {
            let output =
                format!("--- before the restart:\n{last_output}\n--- now:\n{}", server.output_so_far());
            fail(&note, "after a restart", &problems, &output);
        }
        if let Err(e) = model.probe(&to, cycle) {
            fail(&note, "probe write", &[e], &server.output_so_far());
        }

        let run = Duration::from_millis(100 + rng.next_u64() % 501);
        let rate = WRITE_RATES.start() + rng.next_u64() % (WRITE_RATES.end() - WRITE_RATES.start() + 1);
        let stop = AtomicBool::new(false);
        let gauges: Vec<AtomicUsize> = (0..=WRITERS).map(|_| AtomicUsize::new(0)).collect();
        let mut resp_rng = XorShift(mix(seed ^ ((cycle as u64) << 16) ^ 0x5e5));
        let (reports, resp_report, in_flight, status, output) = std::thread::scope(|s| {
            let handles: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let (to, stop, gauge) = (&to, &stop, &gauges[w]);
                    s.spawn(move || writer(to, cycle, w, seed, rate, stop, gauge))
                })
                .collect();
            let (stop_ref, gauge, resp_rng) = (&stop, &gauges[WRITERS], &mut resp_rng);
            let resp_handle =
                s.spawn(move || resp::resp_writer(port, cycle, resp_rng, rate, stop_ref, gauge));
            std::thread::sleep(run);
            let in_flight: usize = gauges.iter().map(|g| g.load(Ordering::SeqCst)).sum();
            let (status, output) = server.kill();
            stop.store(true, Ordering::SeqCst);
            let reports: Vec<WriterReport> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            let resp_report = resp_handle.join().unwrap();
            (reports, resp_report, in_flight, status, output)
        });
        last_output = output;
        no_panic(&note, "before the kill", &last_output);
        if status.signal() != Some(libc::SIGKILL) {
            fail(&note, "vigil exited by itself before the kill", &[format!("{status}")], &last_output);
        }
        let problems: Vec<String> =
            reports.iter().flat_map(|r| r.problems.clone()).chain(resp_report.problems.clone()).collect();
        if !problems.is_empty() {
            fail(&note, "while writing", &problems, &last_output);
        }
        let (mut acked, mut unknown) = (0, 0);
        for r in reports {
            acked += r.acked.len();
            unknown += r.unknown.len();
            busy_total += r.busy;
            sent_total += r.acked.len() + r.unknown.len();
            for (write, version) in r.acked.into_iter().zip(r.versions) {
                model.acked.push(Acked { write, version, cycle });
            }
            model.unknown.extend(r.unknown.into_iter().map(|write| Unknown { write, cycle, seen: None }));
        }
        acked += resp_report.acked.len();
        unknown += resp_report.unknown.len();
        busy_total += resp_report.busy;
        sent_total += resp_report.acked.len() + resp_report.unknown.len();
        model.resp_acked += resp_report.acked.len();
        model.acked.extend(resp_report.acked.into_iter().map(|write| Acked { write, version: 0, cycle }));
        model.unknown.extend(resp_report.unknown.into_iter().map(|write| Unknown {
            write,
            cycle,
            seen: None,
        }));
        cycles_in_flight += usize::from(in_flight > 0);
        eprintln!(
            "crash_kill cycle {cycle}: ready in {} ms, {summary} in {} ms; wrote {} ms at {rate}/s per \
             writer: {acked} acked, {unknown} unanswered, {in_flight} in flight at the kill",
            ready.as_millis(),
            checked.as_millis(),
            run.as_millis()
        );
    }

    // The end: recover once more, verify, stop cleanly; recover after the clean stop and verify.
    for round in ["after the last kill", "after a clean stop"] {
        note.cycle.set(cycles);
        let mut server = Server::start(&dir, &cfg);
        let (problems, summary) = model.check(&to, cycles, &mut rng);
        if !problems.is_empty() {
            let output =
                format!("--- before the restart:\n{last_output}\n--- now:\n{}", server.output_so_far());
            fail(&note, round, &problems, &output);
        }
        eprintln!("crash_kill {round}: {summary}");
        let (status, output) = server.stop();
        no_panic(&note, round, &output);
        assert!(status.success(), "seed {seed:#x}: vigil exited with {status} on SIGINT:\n{output}");
        last_output = output;
    }

    let acked = model.acked.len();
    eprintln!(
        "crash_kill: {cycles} kills in {:.1} s: {sent_total} writes sent, {acked} acknowledged (all \
         found), {} unanswered ({} of them applied), {busy_total} BUSY or NOT_LEADER; \
         {cycles_in_flight} kills with writes in flight; resent after restarts: {} probes, {} writes \
         answered with the original version and {} STALE; {} of the acknowledged over RESP",
        started.elapsed().as_secs_f64(),
        model.unknown.len(),
        model.unknown_present,
        model.probes.len(),
        model.resent_original,
        model.resent_stale,
        model.resp_acked
    );
    assert!(acked > 100, "seed {seed:#x}: only {acked} writes acknowledged over {cycles} cycles");
    assert!(model.resp_acked > 10, "seed {seed:#x}: only {} RESP writes acknowledged", model.resp_acked);
    assert!(cycles_in_flight > 0, "seed {seed:#x}: no kill happened with writes in flight");
    drop(note);
}
