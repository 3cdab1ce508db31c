//! Writes the seed corpora of the fuzz targets (fuzz/README.md): a few valid inputs per target,
//! built with Vigil's own encoders, so each target starts from inputs that get past its checksums
//! and length fields.
//!
//!     cargo run --example fuzz_seeds -- fuzz/corpus      # what `scripts/fuzz --seeds` runs
//!
//! Each file is named `seed-<name>`; rerunning overwrites them and leaves other corpus files alone.

use raft::eraftpb::{ConfState, Entry, Message, MessageType, Snapshot, SnapshotMetadata};
use std::path::{Path, PathBuf};
use vigil::kv::protocol::{encode_write_body, request_body_len};
use vigil::kv::{expire_flags, set_flags, Command, KvLimits, Op, Ttl};
use vigil::log::{encode_record, RecordFields, Superblock, RECORD_HEADER_LEN};
use vigil::partition::batch::{BatchLimits, BatchWriter, TAG_KV};
use vigil::peer::{PeerLimits, PeerOutbox};
use vigil::projection::{Owner, Quota, Router};
use vigil::wire::{opcode, DatagramWriter};

const OPS: [Op<'static>; 8] = [
    Op::Set { key: b"key", value: b"value" },
    Op::Set { key: b"", value: b"" },
    Op::Del { key: b"key" },
    Op::Incr { key: b"n", delta: -3 },
    Op::Cas { key: b"c", expected_version: 42, value: b"v" },
    Op::SetX {
        key: b"t",
        value: b"v",
        flags: set_flags::NX | set_flags::GET,
        ttl: Ttl::AbsoluteMs(4_000_000_000_000),
    },
    Op::Expire { key: b"key", flags: expire_flags::GT, ttl: Ttl::RelativeMs(1000) },
    Op::Persist { key: b"t" },
];

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("seed-{name}")), bytes)
}

fn body(op: &Op<'_>) -> Vec<u8> {
    let mut out = vec![0u8; request_body_len(op)];
    encode_write_body(op, &mut out).expect("room");
    out
}

fn datagram(client_id: u64, frames: &[(u8, u64, &[u8])]) -> Vec<u8> {
    let mut buf = vec![0u8; 1472];
    let mut w = DatagramWriter::request(&mut buf, client_id).expect("room");
    for (op, id, body) in frames {
        w.push(*op, 0, *id, body).expect("room");
    }
    let n = w.finish();
    buf.truncate(n);
    buf
}

fn wire_seeds(dir: &Path) -> std::io::Result<()> {
    write(dir, "wire_datagram", "ping", &datagram(0, &[(opcode::PING, 1, b"")]))?;
    write(
        dir,
        "wire_datagram",
        "echo-ping",
        &datagram(7, &[(opcode::ECHO, 1, b"abc"), (opcode::PING, 2, b"")]),
    )?;
    let bodies: Vec<(u8, Vec<u8>)> = OPS.iter().map(|op| (op.opcode(), body(op))).collect();
    let frames: Vec<(u8, u64, &[u8])> =
        bodies.iter().enumerate().map(|(i, (op, b))| (*op, i as u64 + 1, &b[..])).collect();
    write(dir, "wire_datagram", "kv-writes", &datagram(9, &frames))?;
    write(dir, "wire_datagram", "kv-get", &datagram(9, &[(opcode::GET, 1, b"key")]))
}

/// `auth_datagram` inputs: a mode byte (bit 0 unproven source, bit 1 signed by the harness, bit 2
/// one byte flipped after signing), the byte to flip, then a datagram with room for its blocks.
fn auth_seeds(dir: &Path) -> std::io::Result<()> {
    use vigil::auth::ext::{FLAG_AUTH, FLAG_COOKIE};
    let with_blocks = |client_id: u64, flags: u8, frames: &[(u8, u64, &[u8])]| {
        let mut buf = vec![0u8; 1472];
        let mut w = DatagramWriter::request_with_blocks(&mut buf, client_id, flags).expect("room");
        for (op, id, b) in frames {
            w.push(*op, 0, *id, b).expect("room");
        }
        let n = w.finish();
        buf.truncate(n);
        buf
    };
    let set = body(&Op::Set { key: b"k", value: b"v" });
    let signed_set = with_blocks(100, FLAG_AUTH, &[(opcode::SET, 1, &set), (opcode::GET, 2, &[200])]);
    for (name, mode, flip) in [("signed", 2u8, 0u8), ("signed-unproven", 3, 0), ("signed-flipped", 6, 40)] {
        write(dir, "auth_datagram", name, &[&[mode, flip][..], &signed_set].concat())?;
    }
    let get = with_blocks(0, 0, &[(opcode::GET, 1, &[255])]);
    write(dir, "auth_datagram", "anonymous-get-unproven", &[&[1u8, 0][..], &get].concat())?;
    let cookie = with_blocks(0, FLAG_COOKIE, &[(opcode::GET, 1, &[255])]);
    write(dir, "auth_datagram", "cookie-get-unproven", &[&[1u8, 0][..], &cookie].concat())
}

fn kv_seeds(dir: &Path) -> std::io::Result<()> {
    for (i, op) in OPS.iter().enumerate() {
        let mut request = vec![op.opcode() - 0x10];
        request.extend_from_slice(&body(op));
        write(dir, "kv_request", &format!("op{i}"), &request)?;
        let cmd = Command { client_id: 7, seq: i as u64 + 1, op: *op };
        let mut entry = vec![0u8; cmd.encoded_len()];
        cmd.encode(&mut entry).expect("room");
        write(dir, "kv_command", &format!("op{i}"), &entry)?;
    }
    let mut batch = BatchWriter::new(BatchLimits::default());
    for (i, op) in OPS.iter().enumerate() {
        let cmd = Command { client_id: 7, seq: i as u64 + 1, op: *op };
        // Every kind of owner stamp: anonymous, a principal, a principal under a quota.
        let quota = Some(Quota { keys_max: 100, bytes_max: 1 << 20 });
        let owner = [Owner::ANONYMOUS, Owner { key_id: 3, quota: None }, Owner { key_id: 4, quota }][i % 3];
        batch.push(TAG_KV, &owner, cmd.encoded_len(), |out| {
            cmd.encode(out).expect("sized");
        });
    }
    let stamped = batch.seal(1_000_000).to_vec();
    write(dir, "batch_entry", "all-ops", &stamped)?;
    let mut kv = Router::new(KvLimits::small(), Vec::new());
    let mut snap = Vec::new();
    kv.snapshot(&mut snap);
    write(dir, "kv_snapshot", "empty", &snap)?;
    for (i, op) in OPS.iter().enumerate() {
        kv.apply_kv(i as u64 + 1, &Command { client_id: 1 + i as u64 % 2, seq: i as u64 + 1, op: *op });
    }
    snap.clear();
    kv.snapshot(&mut snap);
    write(dir, "kv_snapshot", "some-keys-and-clients", &snap)?;
    // Keys of principals, some under a quota (format 3: owners in the section).
    kv.apply_entry(OPS.len() as u64 + 1, &stamped, &mut |_, _| {});
    snap.clear();
    kv.snapshot(&mut snap);
    write(dir, "kv_snapshot", "keys-with-owners", &snap)
}

fn log_seeds(dir: &Path) -> std::io::Result<()> {
    const BLOCK: usize = 4096;
    let mut block = vec![0u8; BLOCK];
    let mut off = 0;
    for (lsn, payload) in [(1u64, &b"first"[..]), (2, b""), (3, &[7u8; 100][..])] {
        let end = off + RECORD_HEADER_LEN + payload.len();
        encode_record(
            &mut block[off..end],
            RecordFields { lsn, term: 1, epoch: 1, kind: 1, durable_behind: 0 },
            payload,
        );
        off = end;
    }
    for (name, at) in [("block-first", 0u16), ("block-second", (RECORD_HEADER_LEN + 5) as u16)] {
        let mut input = at.to_le_bytes().to_vec();
        input.extend_from_slice(&block);
        write(dir, "log_record", name, &input)?;
    }
    let sb = Superblock {
        sequence: 3,
        segment_blocks: 8,
        segment_count: 4,
        log_start_block: 0,
        log_start_lsn: 1,
        snapshot_lsn: 0,
        snapshot_term: 0,
        epoch: 2,
        epoch_first_lsn: 5,
        durable_lsn: 2,
    };
    let mut copy = vec![0u8; BLOCK];
    sb.encode(&mut copy);
    write(dir, "superblock", "plain", &copy)?;
    sb.encode_with_meta(&mut copy, b"partition metadata");
    write(dir, "superblock", "with-meta", &copy)?;
    let ual = vigil::config::Config::dev().storage.ual();
    let label = vigil::log::DeviceLabel {
        store_id: *b"0123456789abcdef",
        segment_blocks: ual.segment_blocks,
        segment_count: ual.segment_count,
        layout: vigil::log::DeviceLayout::new(4, &ual),
    };
    write(dir, "superblock", "device-label", &label.encode())
}

fn config_seeds(dir: &Path) -> std::io::Result<()> {
    let configs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
    for name in ["dev.toml", "dpdk-memif.toml", "dpdk-tap.toml", "dpdk-pci.toml"] {
        write(dir, "config", name, &std::fs::read(configs.join(name))?)?;
    }
    Ok(())
}

/// RESP streams: the first byte is the split point the target feeds the stream in two reads at.
fn resp_seeds(dir: &Path) -> std::io::Result<()> {
    let streams: [(&str, &[u8]); 4] = [
        ("multibulk", b"\x05*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
        ("inline", b"\x03PING\r\nset k \"a b\\x41\" ex 10\r\nmget a 'b c'\n"),
        ("introspect", b"\x10COMMAND DOCS get\r\nCOMMAND INFO set nosuch\r\nCOMMAND COUNT\r\nhello 3\r\n"),
        ("errors", b"\x01nosuch a b\r\nexpire k 1 nx xx\r\n*1\r\nx\r\n"),
    ];
    for (name, bytes) in streams {
        write(dir, "resp_request", name, bytes)?;
    }
    Ok(())
}

/// TCP connections: read size, send window, then the stream (RESP, or length-prefixed datagrams).
fn tcp_seeds(dir: &Path) -> std::io::Result<()> {
    let mut binary = vec![3u8, 7];
    let ping = {
        let mut buf = vec![0u8; 64];
        let mut w = vigil::wire::DatagramWriter::request(&mut buf, 1).expect("room");
        w.push(vigil::wire::opcode::ECHO, 0, 1, b"hi").expect("room");
        let n = w.finish();
        buf.truncate(n);
        buf
    };
    binary.extend_from_slice(&(ping.len() as u32).to_le_bytes());
    binary.extend_from_slice(&ping);
    // The web port (a first byte with its top bit set): the dashboard, its live stream, the JSON
    // API and the admin operations with the target's token (`FUZZ_TOKEN`) and without.
    let web_ops: &[u8] = b"\x85\x40GET / HTTP/1.1\r\n\r\nGET /api/status HTTP/1.1\r\n\r\nPOST /api/admin/snapshot HTTP/1.1\r\nAuthorization: Bearer fuzz-admin-token-0123\r\n\r\nPUT /api/admin/log-level HTTP/1.1\r\nAuthorization: Bearer fuzz-admin-token-0123\r\nContent-Length: 5\r\n\r\ndebugPOST /api/admin/compact HTTP/1.1\r\nAuthorization: Bearer wrong\r\n\r\nPOST /api/admin/compact HTTP/1.1\r\nAuthorization: Bearer fuzz-admin-token-0123\r\n\r\n";
    let web_live: &[u8] = b"\x83\x40GET /api/live HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    let streams: [(&str, &[u8]); 4] = [
        ("resp", b"\x02\x05*1\r\n$4\r\nPING\r\nECHO hello\r\nSET k v\r\nQUIT\r\n"),
        ("binary", &binary),
        ("web_ops", web_ops),
        ("web_live", web_live),
    ];
    for (name, bytes) in streams {
        write(dir, "tcp_connection", name, bytes)?;
    }
    Ok(())
}

/// HTTP streams: the first byte is the split point the target feeds the stream in two reads at.
fn http_seeds(dir: &Path) -> std::io::Result<()> {
    let streams: [(&str, &[u8]); 5] = [
        (
            "pipelined",
            b"\x14PUT /kv/a%20b HTTP/1.1\r\nContent-Length: 3\r\nIf-Match: \"7\"\r\n\r\nabcGET /kv/a HTTP/1.1\r\nAccept: application/json\r\n\r\n",
        ),
        ("close", b"\x05DELETE /kv/k HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /health HTTP/1.1\r\nConnection: close\r\n\r\n"),
        (
            "upgrade",
            b"\x30GET /watch?key=a+b HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        ),
        ("refused", b"\x02PUT /kv/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("admin", b"\x09POST /api/admin/snapshot HTTP/1.1\r\nAuthorization: Bearer fuzz-admin-token-0123\r\n\r\n"),
    ];
    for (name, bytes) in streams {
        write(dir, "http_request", name, bytes)?;
    }
    Ok(())
}

/// Candle slots with their overflow values (the `candle_slot` layout) and client bodies.
fn candle_seeds(dir: &Path) -> std::io::Result<()> {
    use vigil::candle::corpus::{Corpus, CORPUS_TODAY};
    use vigil::candle::{encode, wire, Registry, TextCodec};
    let mut codec = TextCodec::new(Registry::builtin());
    let mut corpus = Corpus::new(2063);
    let mut long = corpus.next().expect("a candle");
    // Letters that no dictionary predicts, so the prayer takes the overflow path.
    long.prayer = (0..300u32).filter_map(|i| char::from_u32(0xC0 + (i * 37) % 63)).collect();
    let candles = [corpus.next().expect("a candle"), corpus.next().expect("a candle"), long];
    for (i, c) in candles.iter().enumerate() {
        let e = encode(c, CORPUS_TODAY, &mut codec).expect("a generated candle encodes");
        let mut slot = e.slot.as_bytes().to_vec();
        for o in &e.overflow {
            match o {
                Some(v) => {
                    slot.push(1);
                    slot.extend_from_slice(&(v.len() as u16).to_le_bytes());
                    slot.extend_from_slice(v);
                }
                None => slot.push(0),
            }
        }
        write(dir, "candle_slot", &format!("candle-{i}"), &slot)?;
        let mut body = Vec::new();
        wire::write(c, &mut body);
        write(dir, "candle_wire", &format!("candle-{i}"), &body)?;
        let overflow: [Option<&[u8]>; 3] = [0, 1, 2].map(|f| e.overflow[f].as_deref());
        let mut command = vec![0u8; vigil::candle::command::light_len(&overflow)];
        let header = vigil::projection::CommandHeader { kind: 0, client_id: 7, seq: i as u64 + 1 };
        vigil::candle::command::write_light(header, &e.slot, overflow, &mut command);
        write(dir, "candle_command", &format!("light-{i}"), &command)?;
    }
    let form =
        "nome=Maria+Eduarda&email=maria%40exemplo.com.br&nascimento=1990-03-14&telefone=%2881%29+98765-4321&\
whatsapp=1&endereco=Rua+da+Aurora%2C+12&bairro=Boa+Vista&cidade=Recife&uf=PE&pais=76&pedido=Pela+sa%C3%BAde";
    write(dir, "candle_form", "recife", form.as_bytes())?;
    write(dir, "candle_form", "abroad", b"nome=John&nascimento=01/02/1970&pais=826&pedido=peace")?;
    let json = r#"{"name":"Maria Eduarda","email":"maria@exemplo.com.br","birth_date":"1990-03-14","phone":"81987654321","whatsapp":true,"address":"Rua da Aurora, 12","neighbourhood":"Boa Vista","city":2611606,"state":"PE","country":76,"prayer":"Pela saúde"}"#;
    write(dir, "candle_json", "recife", json.as_bytes())?;
    write(dir, "candle_json", "escaped", br#"{"name":"Jo\u00e3o","birth_date":"1970-02-01","country":826}"#)?;
    Ok(())
}

/// A Raft message of `t` from node 1 to node 2 at term 3 (what `peer_datagram` accepts).
fn raft_message(t: MessageType) -> Message {
    let mut m = Message { from: 1, to: 2, term: 3, ..Default::default() };
    m.set_msg_type(t);
    m
}

/// The peer datagrams node 1 sends node 2 for `messages`, each behind the `peer_datagram`
/// target's 2-byte length and clock byte.
fn peer_input(messages: &[(u32, Message)]) -> Vec<u8> {
    peer_input_with(messages, false)
}

/// As `peer_input`, a keepalive frame first when `keepalive`.
fn peer_input_with(messages: &[(u32, Message)], keepalive: bool) -> Vec<u8> {
    let limits = PeerLimits::mtu_1500();
    let mut outbox = PeerOutbox::new(limits, 0xC1C1, 1, 9, &[2, 3]).expect("outbox");
    if keepalive {
        outbox.keep_alive(0, 6);
    }
    for (partition, m) in messages {
        outbox.push(*partition, m).expect("queued");
    }
    let mut buf = vec![0u8; limits.datagram_bytes_max];
    let mut input = Vec::new();
    while let Some(t) = outbox.poll_transmit(&mut buf) {
        input.extend_from_slice(&(t.len as u16).to_le_bytes());
        input.push(0);
        input.extend_from_slice(&buf[..t.len]);
    }
    input
}

fn peer_seeds(dir: &Path) -> std::io::Result<()> {
    let mut heartbeat = raft_message(MessageType::MsgHeartbeat);
    heartbeat.commit = 5;
    let mut vote = raft_message(MessageType::MsgRequestVote);
    (vote.index, vote.log_term) = (7, 2);
    let small = [(0, heartbeat.clone()), (1, vote), (2, raft_message(MessageType::MsgAppendResponse))];
    write(dir, "peer_datagram", "heartbeat-vote-ack", &peer_input(&small))?;
    let mut append = raft_message(MessageType::MsgAppend);
    (append.index, append.log_term, append.commit) = (10, 2, 10);
    append.entries = (0..4)
        .map(|i| Entry { index: 11 + i, term: 3, data: vec![i as u8; 1200], ..Default::default() })
        .collect();
    write(dir, "peer_datagram", "fragmented-append", &peer_input(&[(3, append), (4, heartbeat)]))?;
    let mut snapshot = raft_message(MessageType::MsgSnapshot);
    let conf_state = ConfState { voters: vec![1, 2, 3], ..Default::default() };
    let metadata = SnapshotMetadata { conf_state: Some(conf_state), index: 50, term: 3 };
    snapshot.snapshot = Some(Snapshot { data: vec![7; 2000], metadata: Some(metadata) });
    write(dir, "peer_datagram", "snapshot", &peer_input(&[(5, snapshot)]))?;
    let mut quiesce = raft_message(MessageType::MsgHeartbeat);
    quiesce.commit = 5;
    quiesce.context = vigil::raft::quiesce_context(5);
    write(dir, "peer_datagram", "keepalive-quiesce", &peer_input_with(&[(6, quiesce)], true))
}

fn hint_seeds(dir: &Path) -> std::io::Result<()> {
    let hint = vigil::wire::LeaderHint {
        node: 3,
        address: std::net::SocketAddrV4::new(std::net::Ipv4Addr::new(10, 77, 0, 3), 9000),
        partition: 5,
        partitions: 8,
    };
    let mut body = [0u8; vigil::wire::LEADER_HINT_LEN];
    hint.encode(&mut body);
    write(dir, "leader_hint", "node-3-partition-5", &body)?;
    write(dir, "leader_hint", "empty", &[])
}

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into()));
    wire_seeds(&dir)?;
    auth_seeds(&dir)?;
    kv_seeds(&dir)?;
    log_seeds(&dir)?;
    config_seeds(&dir)?;
    resp_seeds(&dir)?;
    tcp_seeds(&dir)?;
    http_seeds(&dir)?;
    candle_seeds(&dir)?;
    peer_seeds(&dir)?;
    hint_seeds(&dir)?;
    println!("seed corpora written under {}", dir.display());
    Ok(())
}
