//! Damaged log records under the real `vigil` binary (kernel sockets on loopback, io_uring logs in a
//! temp dir of its own): a flipped bit in an acknowledged record refuses the start, naming the
//! partition and the lsn, with the log file left byte for byte as it was; `vigil repair` reports it
//! (exit 1) and, with `--accept-loss`, cuts it so the node starts with every key written before the
//! damage; a flipped bit in a record a snapshot covers does not stop the start at all; a flipped bit
//! in the last acknowledged write before a SIGKILL (claimed durable by nothing) refuses the start
//! with `storage.atomic_write_bytes = 4096` and is cut as a torn write with 512.

mod common;

use common::*;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use vigil::config::Config;
use vigil::kv::protocol::{encode_write_body, parse_answer, request_body_len, Answer};
use vigil::kv::Op;
use vigil::log::Ual;
use vigil::wire::{opcode, DatagramWriter, Status};
use vigil_pmd::block::memory::MemoryBlockIo;
use vigil_pmd::block::BLOCK_SIZE;

/// One shard, one partition (every key in partition 0), small segments.
fn config(port: u16, snapshot_every_entries: u64) -> String {
    config_with(port, snapshot_every_entries, 1)
}

/// One shard with `partitions` partitions, small segments.
fn config_with(port: u16, snapshot_every_entries: u64, partitions: u32) -> String {
    node_config(port, "vigil-data", snapshot_every_entries, 1, Some(partitions))
}

/// One request at a time, retried (same id) while the node answers NOT_LEADER or BUSY.
struct Client {
    sock: UdpSocket,
    to: String,
    next_id: u64,
}

impl Client {
    fn new(port: u16) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Self { sock, to: format!("127.0.0.1:{port}"), next_id: 1 }
    }

    fn one(&mut self, op: u8, body: &[u8]) -> (Status, Vec<u8>) {
        let id = self.next_id;
        self.next_id += 1;
        let mut buf = vec![0u8; 1472];
        let mut resp = vec![0u8; 2048];
        for _ in 0..200 {
            let mut w = DatagramWriter::request(&mut buf, 77).unwrap();
            w.push(op, 0, id, body).unwrap();
            let n = w.finish();
            self.sock.send_to(&buf[..n], &self.to).unwrap();
            let n = loop {
                match self.sock.recv(&mut resp) {
                    Ok(n) => break n,
                    // A signal (the test's own children exiting) is not a lost answer.
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => panic!("no answer within 10 s: {e}"),
                }
            };
            let (_, status, got, b) = answers(&resp[..n]).remove(0);
            assert_eq!(got, id);
            let status = Status::from_u8(status).unwrap();
            if status != Status::NotLeader && status != Status::Busy {
                return (status, b);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("request {id} stayed NOT_LEADER/BUSY");
    }

    fn set(&mut self, key: &str, value: &str) {
        let op = Op::Set { key: key.as_bytes(), value: value.as_bytes() };
        let mut b = vec![0; request_body_len(&op)];
        encode_write_body(&op, &mut b).unwrap();
        assert_eq!(self.one(opcode::SET, &b).0, Status::Ok, "SET {key}");
    }

    fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        match self.one(opcode::GET, key.as_bytes()) {
            (Status::NotFound, _) => None,
            (Status::Ok, b) => match parse_answer(opcode::GET, &b).unwrap() {
                Answer::Value { value, .. } => Some(value.to_vec()),
                other => panic!("{other:?}"),
            },
            (s, _) => panic!("GET {key}: {s:?}"),
        }
    }
}

fn value(i: u64) -> String {
    format!("value-{i}")
}

/// Stops the node with SIGTERM and checks it exited cleanly.
fn stop_with_sigterm(server: Server) {
    let pid = server.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut server = server;
    while server.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "vigil did not exit within 20 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
}

/// Runs `vigil <args>` in `dir` to its end (bounded): (exit code, stdout + stderr).
fn run_vigil(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let (status, text) = run_vigil_to_exit(dir, args, Duration::from_secs(60));
    (status.code(), text)
}

/// The log file of partition 0.
fn log_path(dir: &Path) -> PathBuf {
    log_path_of(dir, 0)
}

/// The log file of partition `p`.
fn log_path_of(dir: &Path, p: u16) -> PathBuf {
    dir.join("vigil-data").join(format!("partition-{p}.ual"))
}

/// Opens a copy of partition 0's log (so nothing is written to the file) and gives it to `f`.
fn with_log_copy<T>(dir: &Path, f: impl FnOnce(&mut Ual<MemoryBlockIo>) -> T) -> T {
    with_log_copy_of(dir, 0, f)
}

/// Opens a copy of partition `p`'s log and gives it to `f`.
fn with_log_copy_of<T>(dir: &Path, p: u16, f: impl FnOnce(&mut Ual<MemoryBlockIo>) -> T) -> T {
    let cfg = Config::load(&dir.join("vigil.toml")).unwrap().storage.ual();
    let bytes = std::fs::read(log_path_of(dir, p)).unwrap();
    let mut dev = MemoryBlockIo::new((bytes.len() / BLOCK_SIZE) as u64, 16);
    dev.bytes_mut().copy_from_slice(&bytes);
    let (mut ual, _) = Ual::open(dev, cfg).expect("the log opens before the damage");
    f(&mut ual)
}

/// Flips one bit of the record `lsn` of partition 0's log (in its payload).
fn flip_record(dir: &Path, lsn: u64) {
    flip_record_of(dir, 0, lsn)
}

/// Flips one bit of the record `lsn` of partition `p`'s log (in its payload).
fn flip_record_of(dir: &Path, p: u16, lsn: u64) {
    let at = with_log_copy_of(dir, p, |ual| ual.device_offset(lsn).unwrap()) as usize + 40;
    let mut bytes = std::fs::read(log_path_of(dir, p)).unwrap();
    bytes[at] ^= 0x08;
    std::fs::write(log_path_of(dir, p), &bytes).unwrap();
}

/// Every file of the store directory and its bytes, sorted by name.
fn store_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("vigil-data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        // The lock file holds the pid of the last process that locked the directory.
        .filter(|p| p.is_file() && p.file_name().unwrap() != "vigil.lock")
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn a_flipped_acknowledged_record_refuses_the_start_until_the_operator_accepts_the_loss() {
    let dir = disk_temp_dir("log-faults-live");
    let port = free_udp_port();
    let server = Server::start(&dir, &config(port, 1_000_000));
    let mut c = Client::new(port);
    for i in 0..200 {
        c.set(&format!("k{i}"), &value(i));
    }
    stop_with_sigterm(server);

    let last = with_log_copy(&dir, |ual| ual.last_lsn());
    let bad = last / 2;
    flip_record(&dir, bad);
    let before = std::fs::read(log_path(&dir)).unwrap();

    let (code, out) = run_vigil(&dir, &["serve", "--config", "vigil.toml"]);
    assert_ne!(code, Some(0), "a damaged acknowledged record must refuse the start: {out}");
    assert!(out.contains("partition 0") && out.contains(&format!("record {bad} ")), "{out}");
    assert!(out.contains("vigil repair"), "the refusal says how to repair: {out}");
    assert!(std::fs::read(log_path(&dir)).unwrap() == before, "a refused start changed the log file");

    let (code, out) = run_vigil(&dir, &["repair", "--config", "vigil.toml", "--partition", "0"]);
    assert_eq!(code, Some(1), "repair without --accept-loss reports corruption: {out}");
    assert!(out.contains(&format!("record {bad} ")), "{out}");
    assert!(std::fs::read(log_path(&dir)).unwrap() == before, "repair without --accept-loss wrote");

    let (code, out) =
        run_vigil(&dir, &["repair", "--config", "vigil.toml", "--partition", "0", "--accept-loss"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("cut the log at lsn {bad}")), "{out}");

    let server = Server::start(&dir, &config(port, 1_000_000));
    let mut c = Client::new(port);
    // Entries before the first key's: the group's first entries (at most two).
    for i in 0..bad - 2 {
        assert_eq!(
            c.get(&format!("k{i}")),
            Some(value(i).into_bytes()),
            "k{i} was written before the damage"
        );
    }
    stop_with_sigterm(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_flipped_record_a_snapshot_covers_does_not_stop_the_start() {
    let dir = disk_temp_dir("log-faults-covered");
    let port = free_udp_port();
    let server = Server::start(&dir, &config(port, 100));
    let mut c = Client::new(port);
    for i in 0..650 {
        c.set(&format!("k{i}"), &value(i));
    }
    stop_with_sigterm(server);

    let (first, snapshot) = with_log_copy(&dir, |ual| (ual.first_lsn(), ual.snapshot().0));
    assert!(snapshot > first + 200, "the log still holds records its snapshot covers: {first}..={snapshot}");
    let covered = first + (snapshot - first) / 2;
    flip_record(&dir, covered);

    let server = Server::start(&dir, &config(port, 100));
    assert!(server.lines.iter().any(|l| l.contains("recovered: snapshot at")), "{:?}", server.lines);
    let mut c = Client::new(port);
    for i in 0..650 {
        assert_eq!(c.get(&format!("k{i}")), Some(value(i).into_bytes()), "k{i}");
    }
    stop_with_sigterm(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn one_damaged_partition_stops_the_start_before_any_other_partition_writes() {
    let dir = disk_temp_dir("log-faults-two-partitions");
    let port = free_udp_port();
    let server = Server::start(&dir, &config_with(port, 1_000_000, 2));
    let mut c = Client::new(port);
    for i in 0..200 {
        c.set(&format!("k{i}"), &value(i));
    }
    stop_with_sigterm(server);

    // Partition 0 is whole; partition 1 holds a damaged acknowledged record. Partition 0 is decided
    // first: before the start gate it was committed (a new epoch written) before partition 1 refused.
    let last = with_log_copy_of(&dir, 1, |ual| ual.last_lsn());
    assert!(last > 20, "partition 1 holds writes: {last}");
    flip_record_of(&dir, 1, last / 2);
    let before = store_files(&dir);

    let (code, out) = run_vigil(&dir, &["serve", "--config", "vigil.toml"]);
    assert_ne!(code, Some(0), "a damaged acknowledged record must refuse the start: {out}");
    assert!(out.contains("partition 1"), "{out}");
    let after = store_files(&dir);
    for ((name, a), (_, b)) in before.iter().zip(&after) {
        assert!(a == b, "a refused start changed {name}:\n{out}");
    }
    assert_eq!(before.len(), after.len(), "a refused start added or removed files");
    let _ = std::fs::remove_dir_all(dir);
}

/// The log's last lsn and durable watermark, as a recovery of a copy of partition 0's log finds them.
fn last_and_watermark(dir: &Path) -> (u64, u64) {
    let cfg = Config::load(&dir.join("vigil.toml")).unwrap().storage.ual();
    let bytes = std::fs::read(log_path(dir)).unwrap();
    let mut dev = MemoryBlockIo::new((bytes.len() / BLOCK_SIZE) as u64, 16);
    dev.bytes_mut().copy_from_slice(&bytes);
    let (ual, report) = Ual::open(dev, cfg).expect("the log opens before the damage");
    (ual.last_lsn(), report.durable_watermark)
}

/// Writes acknowledged one by one, then SIGKILL: the last one is claimed durable by no later record
/// and no superblock. A flipped bit in it: with the default `storage.atomic_write_bytes = 4096` the
/// start is refused (a crash cannot tear a 4 KiB block, so a failed checksum is damage), the file
/// unchanged; with 512 the same bytes read as a torn write and are cut (the documented residual).
#[test]
fn a_flipped_bit_in_the_last_acknowledged_write_before_a_kill_refuses_the_start_at_4096() {
    let dir = disk_temp_dir("log-faults-unclaimed");
    let port = free_udp_port();
    let server = Server::start(&dir, &config(port, 1_000_000));
    let mut c = Client::new(port);
    for i in 0..50 {
        c.set(&format!("k{i}"), &value(i));
    }
    server.kill();
    let (last, watermark) = last_and_watermark(&dir);
    assert!(last > watermark, "the last write is claimed durable ({last} <= {watermark}): nothing to test");
    flip_record(&dir, last);
    let before = std::fs::read(log_path(&dir)).unwrap();
    let (code, out) = run_vigil(&dir, &["serve", "--config", "vigil.toml"]);
    assert_ne!(code, Some(0), "a damaged acknowledged write must refuse the start: {out}");
    assert!(out.contains(&format!("record {last} ")) && out.contains("atomic_write_bytes = 4096"), "{out}");
    assert!(std::fs::read(log_path(&dir)).unwrap() == before, "a refused start changed the log file");
    // The same damage with a device trusted only for 512-byte sectors: cut as a torn write.
    let server = Server::start(&dir, &(config(port, 1_000_000) + "atomic_write_bytes = 512\n"));
    let mut c = Client::new(port);
    assert_eq!(c.get("k0"), Some(value(0).into_bytes()));
    assert_eq!(c.get("k49"), None, "at 512 the damaged last write is cut like a torn one");
    stop_with_sigterm(server);
    let _ = std::fs::remove_dir_all(dir);
}
