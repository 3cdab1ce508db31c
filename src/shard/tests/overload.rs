//! More writes than transmit buffers: shards with real KV partitions (a memory device each) behind
//! the in-memory queue pair, offered far more SETs than their reservations allow. Every write that
//! committed is acknowledged, the excess is answered `BUSY` at once (nothing proposed), and no
//! answer is dropped for want of a buffer, also while the tx queue is nearly full and when the
//! write was forwarded to another shard.

use super::{peer, MemIo};
use crate::dispatch::Dispatcher;
use crate::engine::{Engine, EngineLimits};
use crate::inbox::{self, InboxConfig, Placement, Router};
use crate::kv::protocol::{encode_write_body, request_body_len};
use crate::kv::Op;
use crate::ops::kv::{Kv, KvService, KvShard};
use crate::partition::{Partition, PartitionConfig};
use crate::shard::{Shard, ShardLimits};
use crate::wire::{self, opcode, DatagramWriter, Status};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use vigil_pmd::block::memory::MemoryBlockIo;
use vigil_pmd::mem::VecRx;
use vigil_pmd::{Nanos, PacketIo};

const CLIENT_ID: u64 = 77;
pub(super) const BURST: usize = 16;
const SETS_PER_DATAGRAM: usize = 4;
const DATAGRAM_MAX: usize = 1472;

fn partition_config() -> PartitionConfig {
    let mut cfg = crate::partition::tests::config_sized(256, 1_000_000);
    let limits = crate::candle::CandleLimits::small();
    cfg.projections = cfg
        .projections
        .with(std::sync::Arc::new(move || Box::new(crate::candle::CandleProjection::new(limits))));
    cfg
}

fn open_partition(id: u16) -> Partition<MemoryBlockIo> {
    let cfg = partition_config();
    let dev = MemoryBlockIo::new(cfg.ual.device_blocks(), 16);
    let (mut p, _) = Partition::open(id, dev, &cfg, None).unwrap();
    for i in 0..10_000 {
        if p.serves_reads() {
            return p;
        }
        p.poll(Nanos(i), &mut |_| {});
    }
    panic!("a single voter leads at once");
}

pub(super) struct Node {
    pub(super) shards: Vec<Shard<MemIo>>,
    pub(super) kvs: Vec<Rc<RefCell<KvShard<MemoryBlockIo>>>>,
}

/// `shards` shards with one partition each; each shard's pool holds `reserved` buffers for late
/// answers and a burst of replies, no more.
pub(super) fn node(shards: usize, reserved: usize) -> Node {
    let routers: Vec<Option<Router>> = if shards == 1 {
        vec![None]
    } else {
        let cfg = InboxConfig {
            shards,
            partitions: shards as u32,
            inbox_capacity: 256,
            in_flight_max: 256,
            pool_slots: shards * 512,
            slot_bytes: 2048,
        };
        inbox::build(&cfg).unwrap().into_iter().map(Some).collect()
    };
    let placement = Placement::new(shards as u32, shards).unwrap();
    let mut node = Node { shards: Vec::new(), kvs: Vec::new() };
    for (id, router) in routers.into_iter().enumerate() {
        let kv = Rc::new(RefCell::new(KvShard::new(
            vec![open_partition(id as u16)],
            placement,
            router,
            DATAGRAM_MAX,
        )));
        let mut d = Dispatcher::new();
        crate::ops::register_all(&mut d).unwrap();
        crate::dispatch::Subsystem::register(Kv(Rc::clone(&kv)), &mut d).unwrap();
        let engine = Engine::new(d, EngineLimits { requests_per_datagram_max: 8 });
        let io = MemIo::new(usize::MAX, reserved + BURST);
        let limits = ShardLimits { burst_size_max: BURST, answers_reserved_max: reserved };
        node.shards
            .push(Shard::new(id, io, engine, limits).with_service(Box::new(KvService(Rc::clone(&kv)))));
        node.kvs.push(kv);
    }
    node
}

fn key(i: u64) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

/// A datagram of SETs `first..first + SETS_PER_DATAGRAM`, each with its index as request id.
fn sets(first: u64) -> Vec<u8> {
    let mut buf = vec![0u8; DATAGRAM_MAX];
    let mut w = DatagramWriter::request(&mut buf, CLIENT_ID).unwrap();
    for i in first..first + SETS_PER_DATAGRAM as u64 {
        let (key, value) = (key(i), i.to_le_bytes());
        let op = Op::Set { key: &key, value: &value };
        let mut body = vec![0; request_body_len(&op)];
        encode_write_body(&op, &mut body).unwrap();
        w.push(opcode::SET, 0, i, &body).unwrap();
    }
    let n = w.finish();
    buf.truncate(n);
    buf
}

/// Every answer frame shard 0 sent, by request id (each must come once).
fn answers(sent: &[(vigil_pmd::Peer, Vec<u8>)]) -> HashMap<u64, u8> {
    let mut by_id = HashMap::new();
    for (to, bytes) in sent {
        assert_eq!(*to, peer(5));
        let h = wire::decode_header(bytes).unwrap();
        assert_eq!(h.client_id, CLIENT_ID);
        for f in wire::Frames::new(bytes, h.count) {
            let f = f.unwrap();
            assert!(
                by_id.insert(f.request_id, f.status).is_none(),
                "request {} answered twice",
                f.request_id
            );
        }
    }
    by_id
}

/// Offers `writes` SETs to shard 0 at once, polls every shard until all is quiet (the tx queue
/// taking `tx_room` datagrams per poll), and checks that each write was either committed and
/// acknowledged OK or answered BUSY and not done.
fn offer_more_writes_than_buffers(shards: usize, tx_room: usize) {
    let reserved = 24;
    let writes = 400u64;
    let mut n = node(shards, reserved);
    for first in (0..writes).step_by(SETS_PER_DATAGRAM) {
        n.shards[0].io.inbound.push_back(VecRx::new(sets(first), peer(5)));
    }
    let mut quiet = 0;
    for t in 1..100_000 {
        let mut busy = false;
        for s in &mut n.shards {
            s.io.tx_room = tx_room;
            busy |= s.poll_once(Nanos(t * 1_000)) > 0 || s.service_busy() || !s.io.inbound.is_empty();
        }
        quiet = if busy { 0 } else { quiet + 1 };
        if quiet == 10 {
            break;
        }
    }
    assert_eq!(quiet, 10, "the node never went quiet");

    let by_id = answers(&n.shards[0].io.sent);
    if tx_room == usize::MAX {
        assert_eq!(by_id.len() as u64, writes, "every write answered exactly once");
    }
    let mut ok = 0;
    let mut busy = 0;
    for id in 0..writes {
        let stored = n.kvs.iter().any(|kv| kv.borrow().partitions()[0].kv().get(&key(id)).is_some());
        match by_id.get(&id) {
            Some(&s) if s == Status::Ok as u8 => {
                assert!(stored, "write {id} acknowledged but not stored");
                ok += 1;
            }
            Some(&s) if s == Status::Busy as u8 => {
                assert!(!stored, "write {id} answered BUSY but done");
                busy += 1;
            }
            Some(&s) => panic!("write {id}: unexpected status {s}"),
            // An immediate reply the full tx queue refused twice (counted in tx_queue_full): only
            // ever a refusal, never a write that was done.
            None => assert!(!stored, "write {id} was done and never acknowledged"),
        }
    }
    let keys: usize = n.kvs.iter().map(|kv| kv.borrow().partitions()[0].kv().len()).sum();
    assert_eq!(keys, ok, "every committed write was acknowledged");
    assert!(busy > 0 && ok >= reserved, "{ok} OK and {busy} BUSY of {writes}: the excess answered BUSY");
    assert!(n.kvs[0].borrow().counters().busy_unreserved > 0);
    for s in &n.shards {
        let c = s.report().shard_counters;
        assert_eq!((c.tx_no_buffer, c.late_answers_too_large), (0, 0), "{c:?}");
        if tx_room == usize::MAX {
            assert_eq!(c.tx_queue_full, 0, "{c:?}");
        }
        assert_eq!(s.reservations().taken(), 0, "shard {}: a reservation outlived its answer", s.id);
        // No buffer leaked: the pool holds all but the reserve.
        let spare = usize::from(s.spare.is_some());
        assert_eq!(s.io.buffers.get() + s.late.reserve.len() + spare, reserved + BURST, "shard {}", s.id);
        assert_eq!(s.io.counters().tx_alloc_failed, 0);
    }
    if shards > 1 {
        assert!(n.kvs[0].borrow().counters().forwarded > 0);
        assert!(!n.kvs[1].borrow().partitions()[0].kv().is_empty(), "forwarded writes were done");
    }
}

#[test]
fn more_writes_than_buffers_every_committed_write_is_acknowledged_the_rest_busy() {
    offer_more_writes_than_buffers(1, usize::MAX);
}

#[test]
fn a_nearly_full_tx_queue_delays_late_answers_but_drops_none() {
    offer_more_writes_than_buffers(1, 3);
}

#[test]
fn forwarded_writes_reserve_on_the_shard_that_received_them() {
    offer_more_writes_than_buffers(2, 5);
}
