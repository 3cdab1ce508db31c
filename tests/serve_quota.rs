//! Per-principal quotas through a running node (docs/SECURITY.md, "Quotas"): a principal's keys
//! are refused `QUOTA_EXCEEDED` past its share in each partition, on whichever shard the datagram
//! lands (the owner and its quota travel with forwarded requests); others' writes still pass; a
//! delete frees room; each refusal is counted; and after a restart (the usage rebuilt from the
//! log and the snapshot) the same keys stand and the quota still holds.

mod common;

use common::*;
use std::net::UdpSocket;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vigil::auth::Credentials;
use vigil::inbox::Placement;
use vigil::wire::{opcode, DatagramWriter, Status};

const KEY: &str = "0303030303030303030303030303030303030303030303030303030303030303";
/// Partitions of the node, and the principal's node-wide quota of keys: 2 per partition.
const PARTITIONS: u32 = 4;
const KEYS_MAX: u64 = 8;

/// A node of 2 shards and 4 partitions with metrics, and the tenant: a principal under a quota.
fn config(port: u16, dir: &str, metrics_port: u16) -> String {
    let node = node_config(port, dir, 5, 2, Some(PARTITIONS));
    format!(
        r#"{node}[metrics]
listen = ["127.0.0.1:{metrics_port}"]
publish_ms = 50
[[auth.clients]]
name = "tenant"
key_id = 5
client_id = 5000
key = "{KEY}"
acl = "+@read +@write"
keys_max = {KEYS_MAX}
"#
    )
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The tenant's client: its credentials and a nonce counter from the Unix time in ns.
struct Tenant {
    creds: Credentials,
    nonce: u64,
    seq: u64,
}

impl Tenant {
    fn new() -> Self {
        let nonce = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
        Tenant { creds: Credentials::from_hex(5, KEY).unwrap(), nonce, seq: 0 }
    }

    /// One signed request of `op` with `body` (a fresh sequence number, so never a retry).
    fn datagram(&mut self, op: u8, body: &[u8]) -> Vec<u8> {
        self.nonce += 1;
        self.seq += 1;
        let mut buf = vec![0u8; 1472];
        let mut w = DatagramWriter::request_with_blocks(&mut buf, 5000, vigil::auth::ext::FLAG_AUTH).unwrap();
        w.push(op, 0, self.seq, body).unwrap();
        let n = w.finish();
        buf.truncate(n);
        vigil::auth::seal_request(&mut buf, None, Some((&self.creds, now_ms(), self.nonce)));
        buf
    }
}

fn anonymous(op: u8, body: &[u8]) -> Vec<u8> {
    request(&[(op, 1, body)])
}

/// The keys the tenant writes, and which of them its quota lets in: the first two of each
/// partition (keys spread by FNV-1a, as the node places them).
fn keys() -> (Vec<String>, Vec<bool>) {
    let placement = Placement::new(PARTITIONS, 2).unwrap();
    let keys: Vec<String> = (0..40).map(|i| format!("tenant-{i}")).collect();
    let mut per_partition = [0u64; PARTITIONS as usize];
    let fits = keys
        .iter()
        .map(|k| {
            let n = &mut per_partition[usize::from(placement.partition_of(k.as_bytes()))];
            *n += 1;
            *n <= KEYS_MAX / u64::from(PARTITIONS)
        })
        .collect();
    assert!(per_partition.iter().all(|&n| n > 2), "every partition is tried past its share");
    (keys, fits)
}

#[test]
fn a_principal_past_its_quota_is_refused_and_others_still_write() {
    let dir = disk_temp_dir("serve-quota");
    let (port, metrics_port) = (free_udp_port(), free_tcp_port());
    let data = dir.join("data");
    let cfg = config(port, data.to_str().unwrap(), metrics_port);
    let server = Server::start(&dir, &cfg);
    let to = format!("127.0.0.1:{port}");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut tenant = Tenant::new();
    let (keys, fits) = keys();

    for (key, fits) in keys.iter().zip(&fits) {
        let set = set_body(key.as_bytes(), b"value");
        let (status, _) = call_final(&sock, &to, || tenant.datagram(opcode::SET, &set));
        let want = if *fits { Status::Ok } else { Status::QuotaExceeded };
        assert_eq!(status, want, "{key}");
    }
    let refused = fits.iter().filter(|f| !**f).count() as f64;
    // The store is not full for anyone else.
    assert_eq!(call_final(&sock, &to, || anonymous(opcode::SET, &set_body(b"other", b"v"))).0, Status::Ok);
    // An overwrite of its own key grows nothing: it passes.
    let first = &keys[0];
    let set = set_body(first.as_bytes(), b"VALUE");
    assert_eq!(call_final(&sock, &to, || tenant.datagram(opcode::SET, &set)).0, Status::Ok);
    // A delete frees room in its partition: the next refused key of that partition now fits.
    assert_eq!(call_final(&sock, &to, || tenant.datagram(opcode::DEL, first.as_bytes())).0, Status::Ok);
    let placement = Placement::new(PARTITIONS, 2).unwrap();
    let home = placement.partition_of(first.as_bytes());
    let next = keys
        .iter()
        .zip(&fits)
        .find(|(k, f)| !**f && placement.partition_of(k.as_bytes()) == home)
        .map(|(k, _)| k.clone())
        .unwrap();
    let set = set_body(next.as_bytes(), b"value");
    assert_eq!(call_final(&sock, &to, || tenant.datagram(opcode::SET, &set)).0, Status::Ok);

    // Each refusal is counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape_metrics(metrics_port);
        let n = metric_sum(&text, "vigil_auth_refusals_total", &["reason=\"quota_exceeded\""]);
        if n == refused {
            break;
        }
        assert!(Instant::now() < deadline, "{n} quota refusals counted, {refused} made:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // After a restart the usage is rebuilt: the same keys stand and the quota still holds.
    let (status, output) = server.stop();
    assert!(status.success(), "{output}");
    let _server = Server::start(&dir, &cfg);
    let get = |key: &str| call_final(&sock, &to, || anonymous(opcode::GET, key.as_bytes())).0;
    for (key, fits) in keys.iter().zip(&fits) {
        let want = if key == first {
            Status::NotFound
        } else if *fits || *key == next {
            Status::Ok
        } else {
            Status::NotFound
        };
        assert_eq!(get(key), want, "{key}");
    }
    let refused_key = keys.iter().zip(&fits).find(|(k, f)| !**f && **k != next).map(|(k, _)| k).unwrap();
    let set = set_body(refused_key.as_bytes(), b"value");
    assert_eq!(call_final(&sock, &to, || tenant.datagram(opcode::SET, &set)).0, Status::QuotaExceeded);
}
