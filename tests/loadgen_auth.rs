//! `vigil-loadgen` against a real `vigil serve` that checks credentials and addresses:
//! - signed (`--credentials`, the node's `[[auth.clients]]` entry as a file) with two threads: every
//!   SET answered, none refused; the same run under a wrong key or without credentials: every
//!   datagram refused `AUTH_FAILED`, counted by reason in the report;
//! - anonymous from an unproven source (the node on this machine's non-loopback address, protected
//!   mode off): the load generator fetches its address cookie before the run and every GET carries
//!   it, so none is answered `ADDRESS_UNPROVEN`. A machine without a non-loopback address fails
//!   that test, loudly.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

const KEY: &str = "6d6f6e6b6579206b657920666f722074686520766967696c206c6f616467656e";

fn entry(key: &str) -> String {
    format!(
        "[[auth.clients]]\nname = \"loadgen\"\nkey_id = 7\nclient_id = 100000\nclient_ids = 64\nkey = \"{key}\"\nacl = \"+@read +@write\"\n"
    )
}

/// Runs the load generator with `args` (and a JSON report in `dir`); its summary and stderr.
fn loadgen(dir: &Path, args: &[&str]) -> (serde_json::Value, String) {
    let json = dir.join("report.json");
    let out = Command::new(workspace_bin("vigil-loadgen"))
        // A durable SET can wait on a slow fsync for a while on a shared VM: a generous timeout.
        .args(["--rate", "500", "--duration", "1", "--warmup", "0.2", "--timeout-ms", "5000", "--quiet"])
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("running vigil-loadgen");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "vigil-loadgen failed: {stderr}\n{}", String::from_utf8_lossy(&out.stdout));
    let summary = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (summary, stderr)
}

#[test]
fn signed_runs_are_answered_and_wrong_or_missing_keys_refused_and_counted() {
    let dir = disk_temp_dir("loadgen-auth");
    let port = free_udp_port();
    let anonymous = "anonymous = \"read-write\"";
    let dev = dev_config(port);
    assert!(dev.contains(anonymous), "the dev config lets anonymous requests in so");
    let config = format!("{}\n{}", dev.replace(anonymous, "anonymous = \"none\""), entry(KEY));
    let server = Server::start(&dir, &config);
    let to = format!("127.0.0.1:{port}");
    let creds = dir.join("loadgen.toml");
    std::fs::write(&creds, entry(KEY)).unwrap();
    let set = ["--op", "set", "--keys", "100", "--value-bytes", "8", "--threads", "2", "--server", &to];

    let (s, _) = loadgen(&dir, &[&set[..], &["--credentials", creds.to_str().unwrap()]].concat());
    assert_eq!(s["signed"], true);
    assert_eq!((s["sent"].as_u64(), s["received"].as_u64()), (Some(500), Some(500)), "{s}");
    assert_eq!(s["errors"], 0, "{s}");
    assert!(s["refused_datagrams"].as_object().unwrap().is_empty(), "{s}");

    let wrong = dir.join("wrong.toml");
    std::fs::write(&wrong, entry(&"0".repeat(64))).unwrap();
    let (s, _) = loadgen(&dir, &[&set[..], &["--credentials", wrong.to_str().unwrap()]].concat());
    assert_eq!(s["received"], 0, "{s}");
    assert_eq!(s["refused_datagrams"]["bad_mac"], 600, "every datagram, warm-up included: {s}");

    let (s, _) = loadgen(&dir, &set);
    assert_eq!((s["signed"].as_bool(), s["received"].as_u64()), (Some(false), Some(0)), "{s}");
    assert_eq!(s["refused_datagrams"]["credentials_required"], 600, "{s}");
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unproven_source_fetches_its_cookie_before_the_run_and_every_get_carries_it() {
    let ip = non_loopback_address();
    let dir = disk_temp_dir("loadgen-cookie");
    let port = free_udp_port();
    let (bind, anonymous) = ("bind_ip = \"127.0.0.1\"", "anonymous = \"read-write\"");
    let dev = dev_config(port);
    assert!(dev.contains(bind) && dev.contains(anonymous), "the dev config binds loopback, anonymous on");
    let config = dev
        .replace(bind, &format!("bind_ip = \"{ip}\""))
        .replace(anonymous, "anonymous = \"read-write\"\nprotected_mode = false");
    let server = Server::start(&dir, &config);
    let to = format!("{ip}:{port}");
    let (s, stderr) = loadgen(&dir, &["--op", "get", "--keys", "100", "--server", &to]);
    assert!(stderr.contains("gave this source an address cookie"), "{stderr}");
    assert_eq!((s["sent"].as_u64(), s["received"].as_u64()), (Some(500), Some(500)), "{s}");
    assert_eq!(s["errors"], 0, "no ADDRESS_UNPROVEN: {s}");
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
