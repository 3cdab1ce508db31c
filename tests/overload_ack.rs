//! `vigil serve` on the kernel backend offered far more SETs than it can take, over loopback: every
//! write that took effect was acknowledged to the client (a read-back of every key against the
//! answers), writes answered `BUSY` did not take effect, and the server's counters show no answer
//! dropped for want of a transmit buffer or of room in the tx queue.
//!
//! The client is one kernel UDP socket (the `vigil_pmd` backend: recvmmsg/sendmmsg, and
//! `SO_RXQ_OVFL` counts what the kernel dropped before the client read it). It keeps at most
//! `WINDOW` SETs unanswered, and both sockets' receive buffers hold more datagrams than that, so
//! neither the client nor the server can lose a datagram in its socket: a missing answer can only
//! be one the server never sent. Both drop counts are still checked to be zero (a test that could
//! lose answers of its own would prove nothing).
//!
//! On the code before answers reserved their transmit buffer, the server admitted thousands of
//! writes, and a group commit releasing more answers than its 1,024 pool buffers dropped the rest
//! (`no-buffer`): writes stored and never acknowledged.

mod common;

use common::*;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};
use vigil::kv::protocol::{encode_write_body, parse_answer, request_body_len, Answer};
use vigil::kv::Op;
use vigil::wire::{self, opcode, DatagramWriter, Status};
use vigil_pmd::kernel::{KernelTx, KernelUdpConfig, KernelUdpIo};
use vigil_pmd::{Batch, PacketIo, Peer, RxDatagram, TxDatagram};

/// SETs offered in all.
const WRITES: u64 = 120_000;
/// SETs per request datagram (each answered once it commits, in a datagram of late answers).
const SETS_PER_DATAGRAM: u64 = 4;
/// Requests unanswered at most (answers the client's socket may have to hold).
const WINDOW: u64 = 6_000;
/// GETs unanswered at most during the read-back.
const READ_WINDOW: u64 = 512;
/// `SO_RCVBUF` asked for on both sides: the kernel doubles it, room for ~10,000 small datagrams.
const RECV_BUFFER_BYTES: usize = 4 << 20;
const CLIENT_ID: u64 = 0x0AC0_0001;
/// The whole run, bounded.
const RUN_DEADLINE: Duration = Duration::from_secs(180);
/// With nothing outstanding answered for this long the run stops (answers lost).
const QUIET_DEADLINE: Duration = Duration::from_secs(10);

fn key(i: u64) -> Vec<u8> {
    format!("overload-{i:08}").into_bytes()
}

fn value(i: u64) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v[8..].copy_from_slice(&(!i).to_le_bytes());
    v
}

/// The test's client: one kernel UDP socket with a large receive buffer.
struct Client {
    io: KernelUdpIo,
    server: Peer,
    tx: Batch<KernelTx>,
    sent_datagrams: u64,
}

impl Client {
    fn new(port: u16) -> Self {
        let io = KernelUdpIo::bind(&KernelUdpConfig {
            bind: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
            reuse_port: false,
            burst_size_max: 64,
            datagram_bytes_max: 1472,
            pool_buffers: 256,
            idle_wait: Some(Duration::from_millis(1)),
            recv_buffer_bytes: Some(RECV_BUFFER_BYTES),
            send_buffer_bytes: Some(RECV_BUFFER_BYTES),
        })
        .expect("client socket");
        Self {
            io,
            server: Peer::from_ip_port(Ipv4Addr::LOCALHOST, port),
            tx: Batch::with_capacity(64),
            sent_datagrams: 0,
        }
    }

    /// Queues one request datagram; `frames` writes its frames. Sends when the batch is full.
    fn queue(&mut self, frames: impl FnOnce(&mut DatagramWriter<'_>)) {
        if self.tx.room() == 0 {
            self.flush();
        }
        let mut d = self.io.tx_alloc(&self.server).expect("the client's pool covers a batch");
        let mut w = DatagramWriter::request(d.payload_mut(), CLIENT_ID).unwrap();
        frames(&mut w);
        let n = w.finish();
        d.set_len(n);
        assert!(self.tx.push(d).is_ok());
    }

    /// Sends everything queued (loopback: the send queue drains at once; bounded anyway).
    fn flush(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.tx.is_empty() {
            assert!(Instant::now() < deadline, "the client could not send for 10 s");
            self.sent_datagrams += self.io.tx_burst(&mut self.tx) as u64;
        }
    }

    /// Receives what is there (waiting up to 1 ms when nothing is); calls `on` for each answer
    /// frame: (opcode, status, request id, body).
    fn receive(&mut self, mut on: impl FnMut(u8, u8, u64, &[u8])) {
        let mut rx = Batch::with_capacity(64);
        self.io.rx_burst(&mut rx);
        for d in rx.drain() {
            let bytes = d.payload();
            let h = wire::decode_header(bytes).expect("a response header");
            assert!(h.is_response() && h.client_id == CLIENT_ID, "{h:?}");
            for f in wire::Frames::new(bytes, h.count) {
                let f = f.expect("a response frame");
                on(f.opcode, f.status, f.request_id, f.body);
            }
        }
    }
}

/// What became of each SET, by index: `None` while unanswered.
fn offer_writes(client: &mut Client) -> Vec<Option<Status>> {
    let mut outcome: Vec<Option<Status>> = vec![None; WRITES as usize];
    let (mut next, mut outstanding) = (0u64, 0u64);
    let start = Instant::now();
    let mut last_answer = Instant::now();
    while next < WRITES || outstanding > 0 {
        assert!(start.elapsed() < RUN_DEADLINE, "the run took over {RUN_DEADLINE:?}");
        if next >= WRITES && last_answer.elapsed() > QUIET_DEADLINE {
            break; // answers lost: the checks below say which
        }
        while next < WRITES && outstanding + SETS_PER_DATAGRAM <= WINDOW {
            let first = next;
            client.queue(|w| {
                for i in first..first + SETS_PER_DATAGRAM {
                    let (k, v) = (key(i), value(i));
                    let op = Op::Set { key: &k, value: &v };
                    let mut body = [0u8; 64];
                    let n = request_body_len(&op);
                    encode_write_body(&op, &mut body[..n]).unwrap();
                    w.push(opcode::SET, 0, i, &body[..n]).unwrap();
                }
            });
            next += SETS_PER_DATAGRAM;
            outstanding += SETS_PER_DATAGRAM;
        }
        client.flush();
        client.receive(|op, status, id, _| {
            assert_eq!(op, opcode::SET);
            let slot = &mut outcome[id as usize];
            assert!(slot.is_none(), "SET {id} answered twice");
            *slot = Some(Status::from_u8(status).expect("a known status"));
            outstanding -= 1;
            last_answer = Instant::now();
        });
    }
    outcome
}

/// Reads every key back: `Some(value)` or `None` (NOT_FOUND). GETs answered BUSY are asked again.
fn read_back(client: &mut Client) -> Vec<Option<Vec<u8>>> {
    let mut found: Vec<Option<Option<Vec<u8>>>> = vec![None; WRITES as usize];
    let mut todo: Vec<u64> = (0..WRITES).rev().collect();
    let mut outstanding = 0u64;
    let start = Instant::now();
    while !todo.is_empty() || outstanding > 0 {
        assert!(start.elapsed() < RUN_DEADLINE, "the read-back took over {RUN_DEADLINE:?}");
        while outstanding < READ_WINDOW {
            let Some(i) = todo.pop() else { break };
            client.queue(|w| w.push(opcode::GET, 0, i, &key(i)).unwrap());
            outstanding += 1;
        }
        client.flush();
        let mut again = Vec::new();
        client.receive(|op, status, id, body| {
            assert_eq!(op, opcode::GET);
            outstanding -= 1;
            let slot = &mut found[id as usize];
            assert!(slot.is_none(), "GET {id} answered twice");
            match Status::from_u8(status) {
                Some(Status::Ok) => match parse_answer(opcode::GET, body) {
                    Ok(Answer::Value { value, .. }) => *slot = Some(Some(value.to_vec())),
                    other => panic!("GET {id}: {other:?}"),
                },
                Some(Status::NotFound) => *slot = Some(None),
                Some(Status::Busy) => again.push(id),
                other => panic!("GET {id}: status {other:?}"),
            }
        });
        todo.extend(again);
    }
    found.into_iter().map(|f| f.expect("every GET answered")).collect()
}

/// Lines of the final report: each shard's loop counters, its backend's, and each partition's.
const SHARD_LINE: &str = ": polls ";
const IO_LINE: &str = " io: rx_packets ";
const PARTITION_LINE: &str = ": keys ";

/// Sums a counter over the report's lines that contain `marker`.
fn total(report: &str, marker: &str, name: &str) -> u64 {
    report.lines().filter(|l| l.contains(marker)).map(|l| counter(l, name)).sum()
}

#[test]
fn every_write_that_took_effect_under_overload_was_acknowledged() {
    // Both sockets ask for RECV_BUFFER_BYTES; the kernel grants at most net.core.rmem_max, and
    // with less the window no longer fits the buffers (the test would lose answers of its own).
    let rmem_max: usize =
        std::fs::read_to_string("/proc/sys/net/core/rmem_max").unwrap().trim().parse().unwrap();
    assert!(
        rmem_max >= RECV_BUFFER_BYTES,
        "net.core.rmem_max is {rmem_max}: this test needs {RECV_BUFFER_BYTES} (sysctl -w net.core.rmem_max={RECV_BUFFER_BYTES})"
    );
    let dir = disk_temp_dir("overload-ack");
    let port = free_udp_port();
    let server = Server::start(&dir, &kv_node_config(port, "vigil-data", 1_000_000));
    let mut client = Client::new(port);

    let outcome = offer_writes(&mut client);
    let found = read_back(&mut client);
    let client_dropped = client.io.counters().rx_kernel_dropped;
    let sent = client.sent_datagrams;
    let (status, report) = server.stop();
    assert!(status.success(), "vigil exited with {status}");

    let (mut ok, mut busy, mut unanswered, mut acked_lost, mut done_unacked) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for i in 0..WRITES {
        let stored = &found[i as usize];
        if let Some(v) = stored {
            assert_eq!(v[..], value(i)[..], "key {i} holds another value");
        }
        match (outcome[i as usize], stored.is_some()) {
            (Some(Status::Ok), true) => ok += 1,
            (Some(Status::Ok), false) => acked_lost += 1,
            (Some(Status::Busy), false) => busy += 1,
            (Some(s), true) => panic!("SET {i} answered {s:?} but it took effect"),
            (Some(s), false) => panic!("SET {i} answered {s:?}"),
            (None, true) => done_unacked += 1,
            (None, false) => unanswered += 1,
        }
    }
    eprintln!(
        "{WRITES} SETs: {ok} OK, {busy} BUSY, {unanswered} unanswered and not done, {done_unacked} done and never \
         acknowledged, {acked_lost} acknowledged and lost; client sent {sent} datagrams, its socket dropped \
         {client_dropped}"
    );
    assert_eq!(client_dropped, 0, "the client's socket dropped answers: the test's buffers are too small");
    assert_eq!(done_unacked, 0, "writes took effect and were never acknowledged");
    assert_eq!(acked_lost, 0, "acknowledged writes are missing");
    assert_eq!(unanswered, 0, "requests were never answered");
    assert!(ok > 0, "nothing was written");

    assert_eq!(report.lines().filter(|l| l.contains(SHARD_LINE)).count(), 2, "two shards reported");
    assert_eq!(total(&report, SHARD_LINE, "no-buffer"), 0, "answers dropped for want of a buffer");
    assert_eq!(total(&report, SHARD_LINE, "queue-full"), 0, "answers dropped by a full tx queue");
    let committed = total(&report, PARTITION_LINE, "keys");
    assert_eq!(committed, ok, "the server holds exactly the acknowledged keys");
    // Every datagram the client sent reached Vigil or was counted as dropped by the kernel.
    let (rx, kernel_dropped) =
        (total(&report, IO_LINE, "rx_packets"), total(&report, IO_LINE, "rx_kernel_dropped"));
    eprintln!("server: {rx} datagrams received, {kernel_dropped} dropped by the kernel");
    assert_eq!(kernel_dropped, 0, "the server's socket held more than WINDOW requests");
    assert_eq!(rx, sent, "datagrams lost between the client and the server, uncounted");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The report's counters are found by name (a renamed counter fails here, not silently above).
#[test]
fn counter_parsing_reads_the_report_format() {
    let line = "  shard 0: polls 5 rx 3 | dropped: short 0 no-buffer 7 queue-full 1 unanswered 0";
    assert_eq!(counter(line, "no-buffer"), 7);
    assert_eq!(counter(line, "queue-full"), 1);
    let report =
        format!("{line}\n  shard 1 io: rx_packets 4 rx_kernel_dropped 2\n  shard 0 io: rx_packets 6 x 1");
    assert_eq!(total(&report, IO_LINE, "rx_packets"), 10);
    assert_eq!(total(&report, SHARD_LINE, "no-buffer"), 7);
}
