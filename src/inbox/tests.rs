//! The fabric: envelope layout, pool generations, back-pressure, exactly-once answers (a model test
//! against plain maps), placement test vectors, and a multi-thread stress run.

use super::*;
use crate::wire::Status;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use vigil_pmd::Batch;

fn config(shards: usize) -> InboxConfig {
    InboxConfig {
        shards,
        partitions: 16,
        inbox_capacity: 4,
        in_flight_max: 8,
        pool_slots: 16,
        slot_bytes: 64,
    }
}

/// A partition owned by `owner`.
fn partition_owned_by(p: &Placement, owner: u8) -> u16 {
    (0..p.partitions() as u16).find(|&q| p.owner(q) == owner).unwrap()
}

/// The test's deterministic request bytes for a correlation id.
fn request_bytes(correlation: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (correlation as u8).wrapping_mul(31).wrapping_add(i as u8)).collect()
}

/// What the owner answers: the request reversed, then the owner's id.
fn answer_body(request: &[u8], owner: u8, out: &mut [u8]) -> usize {
    for (o, b) in out.iter_mut().zip(request.iter().rev()) {
        *o = *b;
    }
    out[request.len()] = owner;
    request.len() + 1
}

/// Drains `r` and serves what came: requests are answered, answers are handed to `on_answer`.
/// Returns how many envelopes were drained.
fn serve(
    r: &mut Router,
    batch: &mut Batch<Envelope>,
    mut on_answer: impl FnMut(&Envelope, Status, &[u8]),
) -> usize {
    let n = r.drain(batch);
    let mut scratch = [0u8; 256];
    let mut request = [0u8; 256];
    for env in batch.drain() {
        match env.kind() {
            Kind::Request => {
                let len = r
                    .with_request(&env, |b| {
                        request[..b.len()].copy_from_slice(b);
                        b.len()
                    })
                    .unwrap();
                let m = answer_body(&request[..len], r.shard(), &mut scratch);
                r.answer(&env, Status::Ok, &scratch[..m]).unwrap();
            }
            Kind::Answer => {
                r.complete(&env, |status, bytes| on_answer(&env, status, bytes)).unwrap();
            }
        }
    }
    n
}

#[test]
fn envelope_is_32_bytes() {
    assert_eq!(std::mem::size_of::<Envelope>(), 32);
    assert_eq!(ENVELOPE_BYTES, 32);
    assert_eq!(std::mem::align_of::<Envelope>(), 8);
}

#[test]
fn one_request_goes_to_its_owner_and_its_answer_comes_back() {
    let mut routers = build(&config(2)).unwrap();
    let mut b1 = routers.pop().unwrap();
    let mut b0 = routers.pop().unwrap();
    let p = partition_owned_by(&b0.placement(), 1);
    let req = b"GET some-key".to_vec();
    b0.forward(p, &req, 4242).unwrap();
    assert_eq!(b0.in_flight(), 1);
    assert_eq!(b0.pool().in_use(), 1);

    let mut batch = Batch::with_capacity(8);
    assert_eq!(b1.drain(&mut batch), 1);
    let env = batch.drain().next().unwrap();
    assert_eq!(env.kind(), Kind::Request);
    assert_eq!(env.src_shard(), 0);
    assert_eq!(env.partition_id(), p);
    assert_eq!(env.sequence(), 4242);
    assert_eq!(env.payload_len() as usize, req.len());
    assert_eq!(b1.with_request(&env, |b| b.to_vec()).unwrap(), req);
    assert_eq!(b1.answer(&env, Status::Ok, b"VALUE").unwrap(), Status::Ok);
    assert_eq!(b1.pool().in_use(), 1, "the answer reuses the request's slot");

    assert_eq!(b0.drain(&mut batch), 1);
    assert_eq!(b0.in_flight(), 0);
    let env = batch.drain().next().unwrap();
    assert_eq!(env.kind(), Kind::Answer);
    assert_eq!(env.src_shard(), 1);
    assert_eq!(env.partition_id(), p);
    assert_eq!(env.sequence(), 4242);
    let got = b0.complete(&env, |s, b| (s, b.to_vec())).unwrap();
    assert_eq!(got, (Status::Ok, b"VALUE".to_vec()));
    assert_eq!(b0.pool().in_use(), 0);

    let c0 = b0.counters();
    let c1 = b1.counters();
    assert_eq!((c0.forwarded, c0.sent, c0.received, c0.answers_completed), (1, 1, 1, 1));
    assert_eq!((c1.requests_received, c1.answers_sent, c1.sent, c1.received), (1, 1, 1, 1));
}

#[test]
fn a_full_inbox_is_busy_and_nothing_is_lost_after_draining() {
    let mut routers = build(&InboxConfig { inbox_capacity: 3, ..config(2) }).unwrap();
    let mut b1 = routers.pop().unwrap();
    let mut b0 = routers.pop().unwrap();
    let p = partition_owned_by(&b0.placement(), 1);
    for c in 0..3 {
        b0.forward(p, &request_bytes(c, 5), c).unwrap();
    }
    let err = b0.forward(p, &request_bytes(3, 5), 3).unwrap_err();
    assert_eq!(err, ForwardError::Busy { owner: 1 });
    assert_eq!(err.client_status(), Status::Busy);
    assert_eq!(b0.pool().in_use(), 3, "the refused request's slot was given back");
    assert_eq!(b0.in_flight(), 3);
    assert_eq!(b0.counters().busy_rejections, 1);

    let mut batch = Batch::with_capacity(2);
    let mut answered = Vec::new();
    while serve(&mut b1, &mut batch, |_, _, _| unreachable!()) > 0 {}
    while serve(&mut b0, &mut batch, |env, s, _| answered.push((env.sequence(), s))) > 0 {}
    assert_eq!(answered, vec![(0, Status::Ok), (1, Status::Ok), (2, Status::Ok)]);
    assert_eq!(b0.pool().in_use(), 0);
    assert_eq!(b0.in_flight(), 0);
    // Room again.
    b0.forward(p, &request_bytes(3, 5), 3).unwrap();
}

#[test]
fn too_many_in_flight_is_busy() {
    let mut routers = build(&InboxConfig { in_flight_max: 2, inbox_capacity: 8, ..config(2) }).unwrap();
    let mut b0 = routers.remove(0);
    let p = partition_owned_by(&b0.placement(), 1);
    b0.forward(p, b"a", 1).unwrap();
    b0.forward(p, b"b", 2).unwrap();
    let err = b0.forward(p, b"c", 3).unwrap_err();
    assert_eq!(err, ForwardError::InFlightFull);
    assert_eq!(err.client_status(), Status::Busy);
    assert_eq!(b0.pool().in_use(), 2);
    assert_eq!(b0.counters().in_flight_full, 1);
}

#[test]
fn a_request_larger_than_a_slot_is_refused_as_bad_length() {
    let mut routers = build(&config(2)).unwrap();
    let mut b0 = routers.remove(0);
    let p = partition_owned_by(&b0.placement(), 1);
    let err = b0.forward(p, &[0u8; 65], 1).unwrap_err();
    assert_eq!(err, ForwardError::TooLarge { len: 65, slot_bytes: 64 });
    assert_eq!(err.client_status(), Status::BadLength);
    assert_eq!(b0.pool().in_use(), 0);
    b0.forward(p, &[0u8; 64], 2).unwrap();
}

#[test]
fn an_answer_larger_than_a_slot_arrives_as_response_too_large() {
    let mut routers = build(&config(2)).unwrap();
    let mut b1 = routers.pop().unwrap();
    let mut b0 = routers.pop().unwrap();
    let p = partition_owned_by(&b0.placement(), 1);
    b0.forward(p, b"big", 9).unwrap();
    let mut batch = Batch::with_capacity(4);
    b1.drain(&mut batch);
    let env = batch.drain().next().unwrap();
    assert_eq!(b1.answer(&env, Status::Ok, &[7u8; 65]).unwrap(), Status::ResponseTooLarge);
    assert_eq!(b1.counters().answers_too_large, 1);
    b0.drain(&mut batch);
    let env = batch.drain().next().unwrap();
    assert_eq!(b0.complete(&env, |s, b| (s, b.len())).unwrap(), (Status::ResponseTooLarge, 0));
}

#[test]
fn a_request_is_answered_and_completed_at_most_once() {
    let mut routers = build(&config(2)).unwrap();
    let mut b1 = routers.pop().unwrap();
    let mut b0 = routers.pop().unwrap();
    let p = partition_owned_by(&b0.placement(), 1);
    b0.forward(p, b"once", 1).unwrap();
    let mut batch = Batch::with_capacity(4);
    b1.drain(&mut batch);
    let request = batch.drain().next().unwrap();
    b1.answer(&request, Status::Ok, b"first").unwrap();
    assert!(matches!(b1.answer(&request, Status::Ok, b"second"), Err(PoolError::Stale { .. })));
    assert!(b1.with_request(&request, |_| ()).is_err(), "the request's bytes are gone once answered");
    assert_eq!(b1.counters().answers_sent, 1);
    assert_eq!(b1.counters().stale_handles, 2);

    assert_eq!(b0.drain(&mut batch), 1, "one answer, not two");
    let answer = batch.drain().next().unwrap();
    assert_eq!(b0.complete(&answer, |_, b| b.to_vec()).unwrap(), b"first");
    assert!(matches!(b0.complete(&answer, |_, _| ()), Err(PoolError::Stale { .. })));
    assert_eq!(b0.counters().answers_completed, 1);
    assert_eq!(b0.pool().in_use(), 0);
}

#[test]
fn drain_takes_answers_first_and_respects_the_batch_room() {
    let mut routers = build(&InboxConfig { inbox_capacity: 8, ..config(2) }).unwrap();
    let mut b1 = routers.pop().unwrap();
    let mut b0 = routers.pop().unwrap();
    let p0 = partition_owned_by(&b0.placement(), 0);
    let p1 = partition_owned_by(&b0.placement(), 1);
    // b0 asks b1 twice; b1 asks b0 three times.
    b0.forward(p1, b"x", 1).unwrap();
    b0.forward(p1, b"y", 2).unwrap();
    for c in 10..13 {
        b1.forward(p0, b"z", c).unwrap();
    }
    let mut batch = Batch::with_capacity(8);
    serve(&mut b1, &mut batch, |_, _, _| unreachable!());
    // b0 now has 2 answers and 3 requests waiting; a batch of 3 takes both answers and one request.
    let mut small = Batch::with_capacity(3);
    assert_eq!(b0.drain(&mut small), 3);
    let kinds: Vec<Kind> = small.as_slice().iter().map(|e| e.kind()).collect();
    assert_eq!(kinds, vec![Kind::Answer, Kind::Answer, Kind::Request]);
}

#[test]
fn pool_exhaustion_is_pool_full_and_slots_come_back() {
    let pool = PayloadPool::new(3, 8);
    let hs: Vec<Handle> = (0..3).map(|i| pool.alloc(&[i; 8]).unwrap()).collect();
    assert_eq!(pool.alloc(b"more"), Err(PoolError::Full));
    assert_eq!(pool.in_use(), 3);
    for (i, h) in hs.iter().enumerate() {
        assert_eq!(pool.with(*h, |b| b.to_vec()).unwrap(), vec![i as u8; 8]);
    }
    pool.free(hs[1]).unwrap();
    assert_eq!(pool.in_use(), 2);
    let h = pool.alloc(b"back").unwrap();
    assert_eq!(h.slot(), hs[1].slot());
    assert_ne!(h.generation(), hs[1].generation());
    assert_eq!(pool.with(h, |b| b.to_vec()).unwrap(), b"back");
    assert_eq!(pool.alloc(&[0; 9]), Err(PoolError::TooLarge { len: 9, slot_bytes: 8 }));
    let c = pool.counters();
    assert_eq!((c.in_use, c.full, c.too_large, c.stale), (3, 1, 1, 0));

    // Through the router: pool full is back-pressure (BUSY).
    let mut routers = build(&InboxConfig { pool_slots: 2, inbox_capacity: 8, ..config(2) }).unwrap();
    let mut b0 = routers.remove(0);
    let p = partition_owned_by(&b0.placement(), 1);
    b0.forward(p, b"a", 1).unwrap();
    b0.forward(p, b"b", 2).unwrap();
    let err = b0.forward(p, b"c", 3).unwrap_err();
    assert_eq!(err, ForwardError::PoolFull);
    assert_eq!(err.client_status(), Status::Busy);
    assert_eq!(b0.counters().pool_full, 1);
    assert_eq!(b0.in_flight(), 2);
}

#[test]
fn generations_catch_double_free_and_stale_handles() {
    let pool = PayloadPool::new(2, 8);
    let h = pool.alloc(b"abc").unwrap();
    pool.free(h).unwrap();
    let stale = PoolError::Stale { slot: h.slot(), generation: h.generation() };
    assert_eq!(pool.free(h), Err(stale), "double free");
    assert_eq!(pool.with(h, |_| ()), Err(stale), "use after free");
    assert_eq!(pool.rewrite(h, b"x"), Err(stale));
    // The slot is reused: the old handle still does not reach the new payload.
    let h2 = pool.alloc(b"new").unwrap();
    let h3 = pool.alloc(b"other").unwrap();
    assert!(h2.slot() == h.slot() || h3.slot() == h.slot());
    assert_eq!(pool.with(h, |_| ()), Err(stale));
    // Rewrite moves the generation on.
    let h2b = pool.rewrite(h2, b"newer").unwrap();
    assert_eq!(h2b.slot(), h2.slot());
    assert!(pool.with(h2, |_| ()).is_err());
    assert_eq!(pool.with(h2b, |b| b.to_vec()).unwrap(), b"newer");
    // A handle from elsewhere.
    let alien = Handle::new(7, 0);
    assert_eq!(pool.free(alien), Err(PoolError::NoSuchSlot { slot: 7, slots: 2 }));
    assert_eq!(pool.counters().stale, 6);
    assert_eq!(pool.in_use(), 2);
    pool.free(h2b).unwrap();
    pool.free(h3).unwrap();
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn config_errors_name_the_field() {
    let good = config(4);
    assert!(good.validate().is_ok());
    let cases: [(InboxConfig, &str); 10] = [
        (InboxConfig { shards: 0, ..good }, "shards"),
        (InboxConfig { shards: 257, ..good }, "shards"),
        (InboxConfig { partitions: 0, ..good }, "partitions"),
        (InboxConfig { partitions: 3, ..good }, "partitions"),
        (InboxConfig { partitions: 65_537, ..good }, "partitions"),
        (InboxConfig { inbox_capacity: 0, ..good }, "inbox_capacity"),
        (InboxConfig { in_flight_max: 0, ..good }, "in_flight_max"),
        (InboxConfig { slot_bytes: 0, ..good }, "slot_bytes"),
        (InboxConfig { slot_bytes: SLOT_BYTES_MAX + 1, ..good }, "slot_bytes"),
        (InboxConfig { pool_slots: 0, ..good }, "pool_slots"),
    ];
    for (cfg, field) in cases {
        let err = cfg.validate().unwrap_err();
        assert_eq!(err.field, field, "{cfg:?}");
        assert!(err.to_string().contains(field));
        assert!(build(&cfg).is_err());
    }
    let too_big = InboxConfig { pool_slots: POOL_BYTES_MAX / 64 + 1, ..good };
    assert_eq!(too_big.validate().unwrap_err().field, "pool_slots");
}

#[test]
fn fnv1a64_matches_the_published_vectors() {
    // From the FNV reference test suite (draft-eastlake-fnv, fnv-1a 64-bit).
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn partition_of_is_stable() {
    // Placement is part of the cluster's contract: these must never change.
    let p = Placement::new(1024, 4).unwrap();
    let vectors: [(&[u8], u16, u8); 6] = [
        (b"", 805, 1),
        (b"a", 140, 0),
        (b"foobar", 1000, 0),
        (b"user:42", 450, 2),
        (b"candle/2024-06-01/br-sp", 361, 1),
        (&[0xff; 16], 85, 1),
    ];
    for (key, partition, owner) in vectors {
        assert_eq!(p.partition_of(key), partition, "{key:?}");
        assert_eq!(p.owner(partition), owner, "{key:?}");
    }
}

#[test]
fn owner_spreads_partitions_evenly_and_keys_spread_over_partitions() {
    for (partitions, shards) in [(1024u32, 3usize), (64, 4), (7, 7), (65_536, 256)] {
        let p = Placement::new(partitions, shards).unwrap();
        let mut per_shard = vec![0u32; shards];
        for q in 0..partitions {
            per_shard[p.owner(q as u16) as usize] += 1;
        }
        let (lo, hi) = (per_shard.iter().min().unwrap(), per_shard.iter().max().unwrap());
        assert!(hi - lo <= 1, "{partitions} over {shards}: {per_shard:?}");
    }
    let p = Placement::new(64, 4).unwrap();
    let mut per_partition = [0u32; 64];
    let keys = 64_000;
    for i in 0..keys {
        per_partition[p.partition_of(format!("key-{i}").as_bytes()) as usize] += 1;
    }
    let mean = keys / 64;
    for (q, n) in per_partition.iter().enumerate() {
        assert!(n.abs_diff(mean) < mean / 10, "partition {q} has {n} keys, mean {mean}");
    }
}

#[test]
fn route_says_local_or_remote() {
    let routers = build(&config(4)).unwrap();
    for r in &routers {
        for k in 0u32..200 {
            let key = k.to_le_bytes();
            let partition = r.placement().partition_of(&key);
            let owner = r.placement().owner(partition);
            let want = if owner == r.shard() {
                Route::Local { partition }
            } else {
                Route::Remote { partition, owner }
            };
            assert_eq!(r.route(&key), want);
        }
    }
}

/// One step of the model test.
#[derive(Clone, Debug)]
enum Op {
    /// A client request for `key` of `len` bytes lands on shard `from`.
    Request { from: usize, key: u8, len: usize },
    /// Shard `shard` runs its drain step with a batch of `room`.
    Drain { shard: usize, room: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..3, any::<u8>(), 0usize..20).prop_map(|(from, key, len)| Op::Request { from, key, len }),
        2 => (0usize..3, 1usize..5).prop_map(|(shard, room)| Op::Drain { shard, room }),
    ]
}

/// Runs `ops` against 3 tiny shards and checks every client request is answered exactly once, with
/// the right bytes, or refused at once with the right status; nothing leaks. Returns how many
/// requests were refused as BUSY.
fn run_model(ops: &[Op]) -> usize {
    const SLOT_BYTES: usize = 16;
    let cfg = InboxConfig {
        shards: 3,
        partitions: 9,
        inbox_capacity: 2,
        in_flight_max: 3,
        pool_slots: 5,
        slot_bytes: SLOT_BYTES,
    };
    let mut routers = build(&cfg).unwrap();
    // correlation -> (origin, expected status, expected body) for requests awaiting an answer.
    let mut outstanding: BTreeMap<u64, (usize, Status, Vec<u8>)> = BTreeMap::new();
    // Every client request's final answer status, exactly once.
    let mut answered: BTreeMap<u64, Status> = BTreeMap::new();
    let mut next = 0u64;
    let complete = |origin: usize,
                    env: &Envelope,
                    status: Status,
                    body: &[u8],
                    outstanding: &mut BTreeMap<u64, (usize, Status, Vec<u8>)>,
                    answered: &mut BTreeMap<u64, Status>| {
        let (want_origin, want_status, want_body) =
            outstanding.remove(&env.sequence()).expect("an answer to an outstanding request");
        assert_eq!(want_origin, origin);
        assert_eq!(status, want_status);
        assert_eq!(body, &want_body[..]);
        assert!(answered.insert(env.sequence(), status).is_none(), "answered twice");
    };
    let drain = |routers: &mut [Router],
                 shard: usize,
                 room: usize,
                 outstanding: &mut BTreeMap<u64, (usize, Status, Vec<u8>)>,
                 answered: &mut BTreeMap<u64, Status>| {
        let mut batch = Batch::with_capacity(room);
        serve(&mut routers[shard], &mut batch, |env, status, body| {
            complete(shard, env, status, body, outstanding, answered)
        })
    };
    for op in ops {
        match *op {
            Op::Request { from, key, len } => {
                let c = next;
                next += 1;
                let req = request_bytes(c, len);
                match routers[from].route(&[key]) {
                    Route::Local { .. } => {
                        answered.insert(c, Status::Ok);
                    }
                    Route::Remote { partition, owner } => match routers[from].forward(partition, &req, c) {
                        Ok(()) => {
                            let mut body = [0u8; 32];
                            let n = answer_body(&req, owner, &mut body);
                            let expect = if n > SLOT_BYTES {
                                (from, Status::ResponseTooLarge, Vec::new())
                            } else {
                                (from, Status::Ok, body[..n].to_vec())
                            };
                            outstanding.insert(c, expect);
                        }
                        Err(e) => {
                            if len > SLOT_BYTES {
                                assert_eq!(e, ForwardError::TooLarge { len, slot_bytes: SLOT_BYTES });
                                assert_eq!(e.client_status(), Status::BadLength);
                            } else {
                                assert_eq!(e.client_status(), Status::Busy, "{e:?}");
                            }
                            answered.insert(c, e.client_status());
                        }
                    },
                }
            }
            Op::Drain { shard, room } => {
                drain(&mut routers, shard, room, &mut outstanding, &mut answered);
            }
        }
        let in_use = routers[0].pool().in_use();
        assert!(in_use <= cfg.pool_slots);
        // Each outstanding request holds exactly one slot, whichever way it is travelling.
        assert_eq!(in_use, outstanding.len());
    }
    // Quiesce: drain every shard until nothing moves.
    loop {
        let mut moved = 0;
        for shard in 0..3 {
            moved += drain(&mut routers, shard, 4, &mut outstanding, &mut answered);
        }
        if moved == 0 {
            break;
        }
    }
    assert!(outstanding.is_empty(), "unanswered: {outstanding:?}");
    assert_eq!(answered.len() as u64, next, "every request answered exactly once");
    assert_eq!(routers[0].pool().in_use(), 0);
    for r in &routers {
        assert_eq!(r.in_flight(), 0);
        let c = r.counters();
        assert_eq!(c.forwarded, c.answers_completed);
        assert_eq!(c.stale_handles, 0);
    }
    let forwarded: u64 = routers.iter().map(|r| r.counters().forwarded).sum();
    let answers: u64 = routers.iter().map(|r| r.counters().answers_sent).sum();
    assert_eq!(forwarded, answers);
    answered.values().filter(|s| **s == Status::Busy).count()
}

#[test]
fn the_model_sees_back_pressure_in_a_burst() {
    // Forty requests from shard 0 before anyone drains: rings, credits and pool all run out.
    let mut ops: Vec<Op> = (0..40).map(|k| Op::Request { from: 0, key: k, len: 4 }).collect();
    ops.extend((0..3).map(|shard| Op::Drain { shard, room: 1 }));
    ops.extend((40..60).map(|k| Op::Request { from: 1, key: k, len: 8 }));
    assert!(run_model(&ops) > 20);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Back-pressure never loses or duplicates: against plain maps, every request is answered once.
    #[test]
    fn every_request_is_answered_exactly_once(ops in proptest::collection::vec(op(), 0..200)) {
        run_model(&ops);
    }
}

#[test]
fn stress_threads_exchange_requests_and_every_one_gets_its_answer() {
    const SHARDS: usize = 4;
    const PER_SHARD: u64 = 25_000;
    let cfg = InboxConfig {
        shards: SHARDS,
        partitions: 64,
        inbox_capacity: 64,
        in_flight_max: 32,
        // Fewer slots than SHARDS * in_flight_max, so the pool runs dry now and then too.
        pool_slots: 96,
        slot_bytes: 256,
    };
    let routers = build(&cfg).unwrap();
    let placement = routers[0].placement();
    let done = AtomicUsize::new(0);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    let reports: Vec<(Router, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = routers
            .into_iter()
            .map(|mut r| {
                let done = &done;
                s.spawn(move || {
                    let me = r.shard();
                    let mut answered = vec![false; PER_SHARD as usize];
                    let mut completed = 0u64;
                    let mut next = 0u64;
                    let mut refused = 0u64;
                    let mut marked = false;
                    let mut batch = Batch::with_capacity(32);
                    let mut req = [0u8; 256];
                    while done.load(Ordering::Acquire) < SHARDS {
                        assert!(Instant::now() < deadline, "shard {me} stuck: {completed}/{PER_SHARD}");
                        // Offer a few new requests to remote partitions.
                        for _ in 0..8 {
                            if next == PER_SHARD {
                                break;
                            }
                            let mut partition = (next.wrapping_mul(7919) % 64) as u16;
                            if placement.owner(partition) == me {
                                partition = (partition + 1) % 64;
                            }
                            let len = 1 + (next % 200) as usize;
                            let bytes = request_bytes(next, len);
                            req[..len].copy_from_slice(&bytes);
                            match r.forward(partition, &req[..len], next) {
                                Ok(()) => next += 1,
                                Err(e) => {
                                    assert_eq!(e.client_status(), Status::Busy);
                                    refused += 1;
                                    break;
                                }
                            }
                        }
                        let moved = serve(&mut r, &mut batch, |env, status, body| {
                            assert_eq!(status, Status::Ok);
                            let c = env.sequence();
                            let want = request_bytes(c, 1 + (c % 200) as usize);
                            let mut expect = [0u8; 256];
                            let n = answer_body(&want, env.src_shard(), &mut expect);
                            assert_eq!(body, &expect[..n], "answer to {c}");
                            assert!(!answered[c as usize], "{c} answered twice");
                            answered[c as usize] = true;
                            completed += 1;
                        });
                        if completed == PER_SHARD && !marked {
                            marked = true;
                            done.fetch_add(1, Ordering::AcqRel);
                        }
                        if moved == 0 {
                            // Two cores may carry four spinning shards: let the others run.
                            std::thread::yield_now();
                        }
                    }
                    assert!(answered.iter().all(|a| *a));
                    (r, refused)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();
    let forwarded: u64 = reports.iter().map(|r| r.0.counters().forwarded).sum();
    let answers: u64 = reports.iter().map(|r| r.0.counters().answers_sent).sum();
    let completed: u64 = reports.iter().map(|r| r.0.counters().answers_completed).sum();
    let refused: u64 = reports.iter().map(|r| r.1).sum();
    assert_eq!(forwarded, SHARDS as u64 * PER_SHARD);
    assert_eq!(answers, forwarded);
    assert_eq!(completed, forwarded);
    assert!(reports.iter().all(|r| r.0.in_flight() == 0 && r.0.counters().stale_handles == 0));
    assert_eq!(reports[0].0.pool().in_use(), 0);
    eprintln!(
        "{forwarded} round trips over {SHARDS} shards in {elapsed:?} ({:.0} ns each), {refused} refused as BUSY",
        elapsed.as_nanos() as f64 / forwarded as f64
    );
    assert!(elapsed < Duration::from_secs(10));
}
