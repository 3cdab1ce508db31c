//! The data directory keeps what was acknowledged, whatever the operator does to it, with the real
//! binary on loopback: a second server on the same directory or the same port is refused; a
//! truncated, emptied, deleted or zeroed log file is refused by name and left as it was (never
//! extended, recreated or formatted); a changed partition count is refused naming both values;
//! files without a manifest are refused until adopted; `vigil check` reports what a start would
//! refuse, including limits the stored data already exceeds and sizes the machine cannot allocate.
//! A log on a raw block device (`storage.device`, a loop device here) is made only by `vigil format`,
//! which refuses a device holding data or in use; a start refuses a device of another store or
//! with a damaged label, and leaves it as it was.

mod common;
#[path = "common/loopdev.rs"]
mod loopdev;

use common::*;
use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vigil::kv::protocol::{encode_write_body, parse_answer, request_body_len, Answer};
use vigil::kv::Op;
use vigil::wire::{opcode, DatagramWriter, Status};

/// A two-shard node on `port` with its store in `data` (absolute), snapshots every `snapshot_every`.
fn config(port: u16, data: &Path, snapshot_every: u64) -> String {
    kv_node_config(port, &data.display().to_string(), snapshot_every)
}

/// `config` with `line` added to the `[storage]` table.
fn with_storage(config: &str, line: &str) -> String {
    config.replacen("[storage]", &format!("[storage]\n{line}"), 1)
}

/// Runs `vigil <args> --config <dir>/<name>` with `config` to its end (bounded: a server that
/// starts is killed and the test fails) and returns its exit status and output.
fn run_to_exit(dir: &Path, name: &str, config: &str, args: &[&str]) -> (std::process::ExitStatus, String) {
    let path = dir.join(name);
    std::fs::write(&path, config).unwrap();
    let path = path.display().to_string();
    let args: Vec<&str> = args.iter().copied().chain(["--config", path.as_str()]).collect();
    run_vigil_to_exit(dir, &args, Duration::from_secs(30))
}

/// A start that must be refused: non-zero exit, never "ready"; returns the output.
fn refused_start(dir: &Path, config: &str) -> String {
    let (status, out) = run_to_exit(dir, "refused.toml", config, &["serve"]);
    assert!(!status.success(), "the start was not refused:\n{out}");
    assert!(!out.contains("vigil: ready:"), "{out}");
    out
}

/// Every file of `dir` but the lock file, with its bytes.
fn snapshot_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "vigil.lock")
        .map(|e| (e.file_name().to_string_lossy().to_string(), std::fs::read(e.path()).unwrap()))
        .collect()
}

fn assert_unchanged(dir: &Path, before: &BTreeMap<String, Vec<u8>>) {
    let after = snapshot_dir(dir);
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&after), names(before), "the refused start changed the directory's files");
    for (name, bytes) in before {
        assert!(after[name] == *bytes, "the refused start changed {name}");
    }
}

/// One SET, retried (same request id) while the node answers NOT_LEADER or BUSY; returns the version.
fn set(port: u16, client: u64, id: u64, key: &str, value: &str) -> u64 {
    let op = Op::Set { key: key.as_bytes(), value: value.as_bytes() };
    let mut body = vec![0; request_body_len(&op)];
    encode_write_body(&op, &mut body).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for _ in 0..100 {
        let mut buf = vec![0u8; 1472];
        let mut w = DatagramWriter::request(&mut buf, client).unwrap();
        w.push(opcode::SET, 0, id, &body).unwrap();
        let n = w.finish();
        sock.send_to(&buf[..n], ("127.0.0.1", port)).unwrap();
        let mut resp = vec![0u8; 2048];
        // A lost datagram or a slow machine: send again (same request id: exactly once).
        let Ok(n) = sock.recv(&mut resp) else { continue };
        let (_, status, _, b) = answers(&resp[..n]).remove(0);
        match Status::from_u8(status).unwrap() {
            Status::Ok => {
                let Answer::Version(v) = parse_answer(opcode::SET, &b).unwrap() else { panic!("{b:?}") };
                return v;
            }
            Status::NotLeader | Status::Busy => std::thread::sleep(Duration::from_millis(20)),
            other => panic!("SET {key}: {other:?}"),
        }
    }
    panic!("SET {key} stayed unanswered, NOT_LEADER or BUSY")
}

/// GET: the value, or None when NOT_FOUND.
fn get(port: u16, key: &str) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for _ in 0..100 {
        let req = request(&[(opcode::GET, 1, key.as_bytes())]);
        sock.send_to(&req, ("127.0.0.1", port)).unwrap();
        let mut resp = vec![0u8; 2048];
        // A lost datagram or a slow machine: send again (same request id: exactly once).
        let Ok(n) = sock.recv(&mut resp) else { continue };
        let (_, status, _, b) = answers(&resp[..n]).remove(0);
        match Status::from_u8(status).unwrap() {
            Status::Ok => match parse_answer(opcode::GET, &b).unwrap() {
                Answer::Value { value, .. } => return Some(value.to_vec()),
                other => panic!("{other:?}"),
            },
            Status::NotFound => return None,
            Status::NotLeader | Status::Busy => std::thread::sleep(Duration::from_millis(20)),
            other => panic!("GET {key}: {other:?}"),
        }
    }
    panic!("GET {key} stayed unanswered, NOT_LEADER or BUSY")
}

/// Starts a node on a fresh store in `<work>/data`, writes `keys` keys, stops it cleanly.
fn store_with_keys(name: &str, keys: u32, snapshot_every: u64) -> (PathBuf, PathBuf, u16) {
    let work = disk_temp_dir(name);
    let data = work.join("data");
    let port = free_udp_port();
    let server = Server::start(&work, &config(port, &data, snapshot_every));
    for i in 0..keys {
        set(port, 5, u64::from(i) + 1, &format!("key-{i}"), &format!("value-{i}"));
    }
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
    (work, data, port)
}

#[test]
fn a_second_server_on_the_same_directory_is_refused_naming_the_holder() {
    let work = disk_temp_dir("store-two-dirs");
    let data = work.join("data");
    let first = Server::start(&work, &config(free_udp_port(), &data, 1_000_000));
    let before = snapshot_dir(&data);
    let out = refused_start(&work, &config(free_udp_port(), &data, 1_000_000));
    let pid = first.child.id().to_string();
    assert!(
        out.contains(&pid) && out.contains("vigil.lock"),
        "names the holder pid {pid} and the lock file: {out}"
    );
    assert_unchanged(&data, &before);
    let (status, out) = first.stop();
    assert!(status.success(), "{out}");
    // The lock goes with the process: the directory serves again.
    let again = Server::start(&work, &config(free_udp_port(), &data, 1_000_000));
    let (status, out) = again.stop();
    assert!(status.success(), "{out}");
    let _ = std::fs::remove_dir_all(work);
}

#[test]
fn a_port_already_served_is_not_joined_through_reuseport() {
    let work = disk_temp_dir("store-two-ports");
    let port = free_udp_port();
    let first = Server::start(&work, &config(port, &work.join("data-a"), 1_000_000));
    let out = refused_start(&work, &config(port, &work.join("data-b"), 1_000_000));
    assert!(out.contains(&format!("127.0.0.1:{port}")) && out.contains("in use"), "{out}");
    assert!(
        !work.join("data-b").join("vigil-store.toml").exists(),
        "a start refused for its port created a store"
    );
    let (status, out) = first.stop();
    assert!(status.success(), "{out}");
    let _ = std::fs::remove_dir_all(work);
}

#[test]
fn a_truncated_emptied_deleted_or_zeroed_log_is_refused_and_left_as_it_was() {
    let (work, data, port) = store_with_keys("store-damaged-log", 40, 1_000_000);
    let log = data.join("partition-1.ual");
    let size = std::fs::metadata(&log).unwrap().len();
    let cfg = config(port, &data, 1_000_000);
    let original = std::fs::read(&log).unwrap();
    // Truncated in the middle of a block, emptied, deleted: each refused naming the file and sizes.
    let damages: [(&str, Option<u64>); 3] =
        [("truncated", Some(40 * 4096 + 1000)), ("emptied", Some(0)), ("deleted", None)];
    for (what, len) in damages {
        match len {
            Some(len) => std::fs::File::options().write(true).open(&log).unwrap().set_len(len).unwrap(),
            None => std::fs::remove_file(&log).unwrap(),
        }
        let before = snapshot_dir(&data);
        let out = refused_start(&work, &cfg);
        let actual = len.map_or("is missing".to_string(), |l| format!("is {l} bytes"));
        assert!(
            out.contains("partition-1.ual") && out.contains(&actual) && out.contains(&size.to_string()),
            "{what}: names the file, its size ({actual}) and the expected {size}: {out}"
        );
        assert_unchanged(&data, &before);
        std::fs::write(&log, &original).unwrap();
    }
    // The right size but all zeros: the log refuses it (no superblock), nothing is formatted.
    std::fs::write(&log, vec![0u8; size as usize]).unwrap();
    let before = snapshot_dir(&data);
    let out = refused_start(&work, &cfg);
    assert!(out.contains("partition-1.ual") && out.contains("no valid superblock"), "{out}");
    assert_unchanged(&data, &before);
    // Restored, everything is there.
    std::fs::write(&log, &original).unwrap();
    let server = Server::start(&work, &cfg);
    for i in 0..40 {
        assert_eq!(get(port, &format!("key-{i}")), Some(format!("value-{i}").into_bytes()), "key-{i}");
    }
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
    let _ = std::fs::remove_dir_all(work);
}

#[test]
fn a_changed_partition_count_is_refused_naming_both_values() {
    let (work, data, port) = store_with_keys("store-partitions", 20, 1_000_000);
    let before = snapshot_dir(&data);
    let out = refused_start(&work, &with_storage(&config(port, &data, 1_000_000), "partitions = 4"));
    assert!(out.contains("storage.partitions") && out.contains(" 4 ") && out.contains("with 2"), "{out}");
    assert_unchanged(&data, &before);
    let out = refused_start(
        &work,
        &config(port, &data, 1_000_000).replace("segment_count = 16", "segment_count = 32"),
    );
    assert!(out.contains("storage.segment_count") && out.contains("32") && out.contains("16"), "{out}");
    assert_unchanged(&data, &before);
    let (status, out) = run_to_exit(
        &work,
        "check.toml",
        &with_storage(&config(port, &data, 1_000_000), "partitions = 4"),
        &["check"],
    );
    assert!(!status.success(), "vigil check must fail: {out}");
    assert!(out.contains("FAIL") && out.contains("storage.partitions"), "{out}");
    let _ = std::fs::remove_dir_all(work);
}

#[test]
fn store_files_without_a_manifest_are_refused_until_adopted() {
    let (work, data, port) = store_with_keys("store-adopt", 30, 10);
    let cfg = config(port, &data, 10);
    std::fs::remove_file(data.join("vigil-store.toml")).expect("the store has a manifest");
    let before = snapshot_dir(&data);
    let out = refused_start(&work, &cfg);
    assert!(out.contains("no manifest") && out.contains("vigil format --adopt"), "{out}");
    assert_unchanged(&data, &before);
    // Plain format refuses a directory with store files; adopt with another count is refused too.
    let (status, out) = run_to_exit(&work, "format.toml", &cfg, &["format"]);
    assert!(!status.success() && out.contains("already holds store files"), "{out}");
    let (status, out) =
        run_to_exit(&work, "format.toml", &with_storage(&cfg, "partitions = 3"), &["format", "--adopt"]);
    assert!(!status.success() && out.contains("partition-2.ual"), "{out}");
    assert_unchanged(&data, &before);
    let (status, out) = run_to_exit(&work, "format.toml", &cfg, &["format", "--adopt"]);
    assert!(status.success() && out.contains("adopted store"), "{out}");
    let server = Server::start(&work, &cfg);
    for i in 0..30 {
        assert_eq!(get(port, &format!("key-{i}")), Some(format!("value-{i}").into_bytes()), "key-{i}");
    }
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
    let _ = std::fs::remove_dir_all(work);
}

#[test]
fn format_creates_a_store_that_serves() {
    let work = disk_temp_dir("store-format");
    let data = work.join("data");
    let port = free_udp_port();
    let cfg = config(port, &data, 1_000_000);
    let (status, out) = run_to_exit(&work, "format.toml", &cfg, &["format"]);
    assert!(status.success() && out.contains("created store"), "{out}");
    let manifest = std::fs::read_to_string(data.join("vigil-store.toml")).unwrap();
    for field in [
        "format_version = 1",
        "store_id = ",
        "partitions = 2",
        "segment_blocks = 256",
        "segment_count = 16",
        "created_by = \"vigil ",
    ] {
        assert!(manifest.contains(field), "manifest lacks {field}: {manifest}");
    }
    let server = Server::start(&work, &cfg);
    set(port, 9, 1, "k", "v");
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
    let (status, out) = run_to_exit(&work, "check.toml", &cfg, &["check"]);
    assert!(status.success() && out.contains("superblock valid"), "{out}");
    let _ = std::fs::remove_dir_all(work);
}

#[test]
fn check_reports_limits_the_stored_data_already_exceeds() {
    let (work, data, port) = store_with_keys("store-check-limits", 60, 10);
    let tight = config(port, &data, 10).replace("[storage]", "[kv]\nkeys_max = 5\n[storage]");
    let (status, out) = run_to_exit(&work, "check.toml", &tight, &["check"]);
    assert!(!status.success(), "vigil check must fail: {out}");
    assert!(out.contains("FAIL") && out.contains("kv.keys_max = 5") && out.contains(".snap"), "{out}");
    let _ = std::fs::remove_dir_all(work);
}

#[test]
fn check_refuses_sizes_the_machine_cannot_allocate() {
    let work = disk_temp_dir("store-check-sizes");
    let base = config(free_udp_port(), &work.join("data"), 1_000_000);
    let cases = [
        (
            base.replace("[storage]", "[kv]\ndedup_clients_max = 4000000000\n[storage]"),
            "kv.dedup_clients_max",
        ),
        (
            base.replace("idle_wait_us = 200", "idle_wait_us = 200\npool_buffers = 100000000000"),
            "kernel.pool_buffers",
        ),
    ];
    for (cfg, key) in cases {
        let (status, out) = run_to_exit(&work, "check.toml", &cfg, &["check"]);
        assert!(!status.success() && out.contains(key), "vigil check must refuse naming {key}: {out}");
    }
    let _ = std::fs::remove_dir_all(work);
}

#[test]
fn a_node_listed_at_an_address_it_does_not_serve_is_refused_before_the_store_is_touched() {
    let (work, data, port) = store_with_keys("store-cluster", 10, 1_000_000);
    let before = snapshot_dir(&data);
    let other = port.wrapping_add(1).max(1024);
    let cluster = format!(
        "\n[cluster]\nnode_id = 1\nnodes = [\n  {{ id = 1, address = \"127.0.0.1:{other}\" }},\n  \
         {{ id = 2, address = \"127.0.0.2:{port}\" }},\n  {{ id = 3, address = \"127.0.0.3:{port}\" }},\n]\n"
    );
    let out = refused_start(&work, &format!("{}{cluster}", config(port, &data, 1_000_000)));
    assert!(out.contains("cluster.nodes") && out.contains(&format!("127.0.0.1:{other}")), "{out}");
    assert_unchanged(&data, &before);
    let misplaced = format!("{}{cluster}", config(port, &data, 1_000_000));
    let (status, out) = run_to_exit(&work, "misplaced.toml", &misplaced, &["check"]);
    assert!(!status.success() && out.contains("FAIL") && out.contains("cluster.nodes"), "{out}");
    // Listed where it serves, it is a node of a three-node cluster (checked by `vigil check`).
    let listed = misplaced.replace(&format!("127.0.0.1:{other}"), &format!("127.0.0.1:{port}"));
    let (status, out) = run_to_exit(&work, "listed.toml", &listed, &["check"]);
    assert!(status.success() && out.contains("voters [1, 2, 3]"), "{out}");
    let _ = std::fs::remove_dir_all(work);
}

/// Writes `bytes` at `offset` of a block device through the device (so the log's O_DIRECT reads
/// see them) and syncs.
fn write_device(dev: &Path, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(dev).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
}

/// The device's first `len` bytes, read around any page cache.
fn read_device(dev: &Path, len: usize) -> Vec<u8> {
    use std::io::Read;
    let mut out = vec![0u8; len];
    std::fs::File::open(dev).unwrap().read_exact(&mut out).unwrap();
    out
}

#[test]
fn a_store_on_a_raw_device_is_made_only_by_format_and_refuses_what_is_not_its_own() {
    let work = disk_temp_dir("store-device");
    let (a, b) = (
        loopdev::LoopDevice::attach(&work.join("a.img"), 48 << 20),
        loopdev::LoopDevice::attach(&work.join("b.img"), 48 << 20),
    );
    let port = free_udp_port();
    let on = |data: &str, dev: &Path| {
        with_storage(&config(port, &work.join(data), 100_000), &format!("device = \"{}\"", dev.display()))
    };
    // A start never creates a store on a device: refused, the device and directory untouched.
    let out = refused_start(&work, &on("data-a", a.path()));
    assert!(out.contains("vigil format"), "{out}");
    assert!(read_device(a.path(), 1 << 20).iter().all(|&x| x == 0), "the refused start wrote to the device");
    assert!(!work.join("data-a").join("vigil-store.toml").exists());
    // Format refuses a device holding something else (here: bytes where a file system would be).
    write_device(a.path(), 1024, b"not a vigil store");
    let (status, out) = run_to_exit(&work, "a.toml", &on("data-a", a.path()), &["format"]);
    assert!(!status.success() && out.contains("--overwrite-device"), "{out}");
    assert_eq!(&read_device(a.path(), 2048)[1024..1041], b"not a vigil store", "a refused format wrote");
    let (status, out) =
        run_to_exit(&work, "a.toml", &on("data-a", a.path()), &["format", "--overwrite-device"]);
    assert!(status.success(), "{out}");
    let label = read_device(a.path(), 4096);
    assert_eq!(&label[..8], b"VIGILDEV");
    // It serves and keeps what it acknowledged across a restart; check reads the label.
    let server = Server::start(&work, &on("data-a", a.path()));
    let v = set(port, 5, 1, "on-the-device", "kept");
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
    let (status, out) = run_to_exit(&work, "a.toml", &on("data-a", a.path()), &["check"]);
    assert!(status.success() && out.contains("label of store"), "{out}");
    let server = Server::start(&work, &on("data-a", a.path()));
    assert_eq!(get(port, "on-the-device").as_deref(), Some(&b"kept"[..]), "version {v}");
    // A second node on the same device (another directory) is refused: the device is held.
    let (status, out) = run_to_exit(&work, "a2.toml", &on("data-a2", a.path()), &["format"]);
    assert!(!status.success() && out.contains("in use"), "{out}");
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
    // Another store's device is refused by id, a damaged label by checksum; both left as they were.
    let (status, out) = run_to_exit(&work, "b.toml", &on("data-b", b.path()), &["format"]);
    assert!(status.success(), "{out}");
    let b_before = read_device(b.path(), 2 << 20);
    let out = refused_start(&work, &on("data-a", b.path()));
    assert!(out.contains("the wrong device"), "{out}");
    assert!(read_device(b.path(), 2 << 20) == b_before, "the refused start wrote to the other device");
    let mut damaged = label.clone();
    damaged[40] ^= 1;
    write_device(a.path(), 0, &damaged);
    let out = refused_start(&work, &on("data-a", a.path()));
    assert!(out.contains("fails its checksum"), "{out}");
    write_device(a.path(), 0, &label);
    // A changed partition count is refused by the manifest, naming both values.
    let out = refused_start(&work, &with_storage(&on("data-a", a.path()), "partitions = 4"));
    assert!(out.contains("`storage.partitions` is 4"), "{out}");
    let server = Server::start(&work, &on("data-a", a.path()));
    assert_eq!(get(port, "on-the-device").as_deref(), Some(&b"kept"[..]));
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
}
