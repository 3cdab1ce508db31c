//! The router's model test at the partition: two projections (KV and the test counter) written
//! from several clients through batches, with retries, snapshots and crashes, against a model;
//! exactly-once holds across all of them (a retried counter ADD would count twice), and replay
//! gives back the same state, the leader's timestamps included.

use super::*;
use crate::projection::counter::{self, Counters, TAG_COUNTER};
use crate::projection::TAG_KV;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Debug)]
enum Step {
    /// Client `c` sets key `k` to value `v` (a new sequence number).
    Set(u64, u8, u8),
    /// Client `c` adds `d` to counter `n`.
    Add(u64, u8, i8),
    /// Client `c` sends its last write again.
    Retry(u64),
    /// Every waiting write is answered.
    Settle,
    /// A snapshot now.
    Snapshot,
    /// The process dies after everything was answered; the partition restarts from its device
    /// and snapshot file.
    Crash,
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1u64..4, 0u8..6, any::<u8>()).prop_map(|(c, k, v)| Step::Set(c, k, v)),
        6 => (1u64..4, 0u8..3, any::<i8>()).prop_map(|(c, n, d)| Step::Add(c, n, d)),
        3 => (1u64..4).prop_map(Step::Retry),
        3 => Just(Step::Settle),
        1 => Just(Step::Snapshot),
        1 => Just(Step::Crash),
    ]
}

fn counters_config() -> PartitionConfig {
    let maker: crate::projection::ProjectionMaker = Arc::new(|| Box::new(Counters::default()));
    PartitionConfig { projections: Default::default(), ..config_with(7) }.with_projection(maker)
}

impl PartitionConfig {
    fn with_projection(mut self, maker: crate::projection::ProjectionMaker) -> Self {
        self.projections = self.projections.with(maker);
        self
    }
}

/// A client's last write: its sequence number, projection and bytes.
type Sent = (u64, u8, Vec<u8>);

#[derive(Default)]
struct Model {
    kv: BTreeMap<Vec<u8>, Vec<u8>>,
    counters: BTreeMap<Vec<u8>, i64>,
}

fn kv_command(client: u64, seq: u64, key: u8, value: u8) -> Vec<u8> {
    let (key, value) = ([b'k', key], [value; 3]);
    let cmd = Command { client_id: client, seq, op: Op::Set { key: &key, value: &value } };
    let mut out = vec![0; cmd.encoded_len()];
    cmd.encode(&mut out).unwrap();
    out
}

fn propose(p: &mut Partition<MemoryBlockIo>, client: u64, sent: &Sent) -> WriteOutcome {
    let (seq, tag, bytes) = sent;
    let w = Waiter {
        origin: Origin::Client { peer: peer(), client_id: client, arrived: Nanos(0) },
        opcode: 0,
        request_id: *seq,
        owner: Default::default(),
    };
    p.propose(w, *tag, bytes.len(), &mut |out| out.copy_from_slice(bytes))
}

/// What the model says of a write once applied (the first time).
fn model_apply(m: &mut Model, tag: u8, bytes: &[u8]) {
    if tag == TAG_KV {
        let cmd = Command::decode(bytes).unwrap();
        let Op::Set { key, value } = cmd.op else { unreachable!() };
        m.kv.insert(key.to_vec(), value.to_vec());
    } else {
        let delta = i64::from_le_bytes(bytes[17..25].try_into().unwrap());
        let name = bytes[26..].to_vec();
        let value = m.counters.get(&name).copied().unwrap_or(0) + delta;
        m.counters.insert(name, value);
    }
}

/// The KV pairs and the counters of a partition.
type State = (Vec<(Vec<u8>, Vec<u8>)>, Option<Counters>);

fn state(p: &Partition<MemoryBlockIo>) -> State {
    let kv = p.kv().iter().map(|(k, v, _)| (k.to_vec(), v.to_vec())).collect();
    (kv, p.router().get::<Counters>().cloned())
}

fn run(steps: &[Step], name: &str) {
    let dir = temp_dir(name);
    let cfg = counters_config();
    let file = || snap_file(&dir, false);
    let mut p = open(&cfg, device(&cfg), file());
    let mut model = Model::default();
    let mut last: BTreeMap<u64, Sent> = BTreeMap::new();
    let mut seqs: BTreeMap<u64, u64> = BTreeMap::new();
    // Writes told `Later`, by (client, seq): what they were, and how many times they were sent.
    let mut waiting: BTreeMap<(u64, u64), (u8, Vec<u8>, usize)> = BTreeMap::new();
    let mut answers: BTreeMap<(u64, u64), ApplyResult> = BTreeMap::new();
    let on_done = |d: Done,
                   waiting: &mut BTreeMap<_, (u8, Vec<u8>, usize)>,
                   model: &mut Model,
                   answers: &mut BTreeMap<_, _>| {
        let Origin::Client { client_id, .. } = d.waiter.origin else { unreachable!() };
        let key = (client_id, d.waiter.request_id);
        let (tag, bytes, sends) = waiting.get_mut(&key).expect("one answer per send");
        let (tag, bytes) = (*tag, bytes.clone());
        *sends -= 1;
        if *sends == 0 {
            waiting.remove(&key);
        }
        let result = d.result.expect("a single voter applies every write");
        // The first answer applied it; a retry sent while it waited gets the same answer.
        if let Some(first) = answers.get(&key) {
            assert_eq!(*first, result, "a retry gets the original answer");
            return;
        }
        model_apply(model, tag, &bytes);
        if let ApplyResult::Incremented { value, .. } = result {
            assert_eq!(model.counters[&bytes[26..]], value, "the counter's result is its new value");
        }
        answers.insert(key, result);
    };
    for step in steps {
        let sent = match step {
            Step::Set(c, k, v) => {
                let seq = *seqs.entry(*c).and_modify(|s| *s += 1).or_insert(1);
                Some((*c, (seq, TAG_KV, kv_command(*c, seq, *k, *v))))
            }
            Step::Add(c, n, d) => {
                let seq = *seqs.entry(*c).and_modify(|s| *s += 1).or_insert(1);
                Some((*c, (seq, TAG_COUNTER, counter::add(*c, seq, &[b'n', *n], i64::from(*d)))))
            }
            Step::Retry(c) => last.get(c).cloned().map(|s| (*c, s)),
            _ => None,
        };
        if let Some((client, sent)) = sent {
            let key = (client, sent.0);
            match propose(&mut p, client, &sent) {
                // A retry of a write still waiting joins the batch again; the router answers it
                // from the client table when it applies (a write is waited for once, by its key).
                WriteOutcome::Later => waiting.entry(key).or_insert((sent.1, sent.2.clone(), 0)).2 += 1,
                // A retry of an applied write: the remembered answer, nothing logged.
                WriteOutcome::Now(result) => assert_eq!(Some(&result), answers.get(&key), "{key:?}"),
                WriteOutcome::Refused(s) => panic!("refused {s:?}"),
            }
            last.insert(client, sent);
        }
        match step {
            Step::Settle | Step::Snapshot | Step::Crash => {
                for d in settle(&mut p) {
                    on_done(d, &mut waiting, &mut model, &mut answers);
                }
                assert!(waiting.is_empty());
            }
            _ => {}
        }
        if matches!(step, Step::Snapshot) {
            p.snapshot_now();
            settle(&mut p);
        }
        if matches!(step, Step::Crash) {
            let before = state(&p);
            p = open(&cfg, p.into_device(), file());
            assert_eq!(state(&p), before, "replay gives back the same state, timestamps included");
        }
    }
    for d in settle(&mut p) {
        on_done(d, &mut waiting, &mut model, &mut answers);
    }
    let (kv, counters) = state(&p);
    assert_eq!(kv, model.kv.into_iter().collect::<Vec<_>>());
    let counters = counters.unwrap();
    for (name, value) in &model.counters {
        assert_eq!(counters.get(name).map(|c| c.0), Some(*value));
        let mut out = [0u8; 16];
        assert_eq!(p.read(TAG_COUNTER, counter::GET, name, &mut out), Ok(16));
        assert_eq!(i64::from_le_bytes(out[..8].try_into().unwrap()), *value);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn two_projections_through_batches_retries_snapshots_and_crashes_match_the_model(
        steps in proptest::collection::vec(arb_step(), 1..80)
    ) {
        run(&steps, "two-projections");
    }
}

/// Time reaches a projection only as the leader's stamp in the entry: the counter keeps the clock
/// of the poll that sealed its batch, and a replay (another clock entirely) keeps it.
#[test]
fn the_leaders_timestamp_is_the_only_time_a_projection_sees() {
    let dir = temp_dir("timestamp");
    let cfg = counters_config();
    let mut p = open(&cfg, device(&cfg), snap_file(&dir, false));
    p.poll(Nanos(5_000), &mut |_| {});
    let add = counter::add(1, 1, b"n", 2);
    assert_eq!(propose(&mut p, 1, &(1, TAG_COUNTER, add)), WriteOutcome::Later);
    let mut t = 5_000;
    while p.poll(Nanos(t), &mut |_| {}) {
        t += 1;
    }
    let stamped = p.router().get::<Counters>().unwrap().get(b"n").unwrap();
    assert_eq!(stamped.0, 2);
    assert!((5_000..=t).contains(&stamped.1), "{stamped:?}");
    let p = open(&cfg, p.into_device(), snap_file(&dir, false));
    assert_eq!(p.router().get::<Counters>().unwrap().get(b"n"), Some(stamped));
    std::fs::remove_dir_all(&dir).unwrap();
}
