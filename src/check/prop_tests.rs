//! Generated histories: concurrent clients whose operations take effect, one at a time, on Vigil's
//! real KV state machine (`KvProjection::apply_op`, reads from `KvProjection::get`) at an instant
//! chosen inside each operation's interval. Such histories are linearizable by construction (and
//! their answers are Vigil's own, which also tests the model against the projection), so the
//! checker must accept every one; changing one read's answer to a value never written, or to a
//! value that a later completed write overwrote before the read began, must be rejected.

use super::*;
use crate::kv::{KvLimits, KvProjection, Op};
use crate::projection::Applied;
use proptest::prelude::*;

/// SplitMix64: the generator's only source of choices, so a seed replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `pct` percent.
    fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

/// What to generate.
#[derive(Clone, Copy, Debug)]
struct Shape {
    clients: usize,
    keys: usize,
    ops: usize,
    /// Percent of operations refused, timed out before or after taking effect.
    faults: u64,
}

/// A client's operation in flight.
enum Flight {
    Idle,
    /// Sent, not yet applied.
    Sent(OpId),
    /// Applied with this answer, not yet answered.
    Applied(OpId, Outcome),
}

/// The system under test: the real projection, one write per log entry.
struct System {
    kv: KvProjection,
    lsn: u64,
}

impl System {
    /// Applies `op` now; `None` if the projection refused it outright (never with these sizes).
    fn apply(&mut self, op: &KvOp) -> Option<Outcome> {
        let key = op.key();
        let op = match op {
            KvOp::Get { .. } => {
                return Some(match self.kv.get(key) {
                    Some((value, version)) => Outcome::Found { value: value.to_vec(), version },
                    None => Outcome::NotFound,
                });
            }
            KvOp::Set { value, .. } => Op::Set { key, value },
            KvOp::Del { .. } => Op::Del { key },
            KvOp::Incr { delta, .. } => Op::Incr { key, delta: *delta },
            KvOp::Cas { expected_version, value, .. } => {
                Op::Cas { key, expected_version: *expected_version, value }
            }
            KvOp::Cad { expected_version, .. } => Op::Cad { key, expected_version: *expected_version },
        };
        self.lsn += 1;
        Outcome::from_apply(&self.kv.apply_op(Applied::single(self.lsn), &op))
    }
}

/// Draws an operation; CAS and CAD expect the version this client last saw of the key, or 0.
fn draw_op(rng: &mut Rng, shape: &Shape, seen: &[u64], unique: &mut u64) -> KvOp {
    let k = rng.below(shape.keys as u64) as usize;
    let key = format!("key{k}").into_bytes();
    *unique += 1;
    let expected_version = if rng.pct(70) { seen[k] } else { 0 };
    match rng.below(100) {
        0..=34 => KvOp::Get { key },
        35..=54 => KvOp::Set { key, value: format!("v{unique}").into_bytes() },
        55..=59 => KvOp::Set { key, value: rng.below(50).to_string().into_bytes() },
        60..=67 => KvOp::Del { key },
        68..=79 => KvOp::Incr { key, delta: rng.below(7) as i64 - 3 },
        80..=91 => KvOp::Cas { key, expected_version, value: format!("c{unique}").into_bytes() },
        _ => KvOp::Cad { key, expected_version },
    }
}

/// The version an answer shows, if any.
fn version_of(o: &Outcome) -> Option<u64> {
    match o {
        Outcome::Found { version, .. }
        | Outcome::Stored { version }
        | Outcome::Incremented { version, .. } => Some(*version),
        _ => None,
    }
}

/// A linearizable history of `shape` drawn from `seed`.
fn generate(seed: u64, shape: Shape) -> History {
    let mut rng = Rng(seed);
    let mut sys = System { kv: KvProjection::new(KvLimits::small()), lsn: 0 };
    let mut h = History::new();
    let mut flights: Vec<Flight> = (0..shape.clients).map(|_| Flight::Idle).collect();
    let mut seen = vec![vec![0u64; shape.keys]; shape.clients];
    // Writes given up before they took effect: each may still take effect later, or never.
    let mut orphans: Vec<KvOp> = Vec::new();
    let (mut sent, mut unique) = (0usize, 0u64);
    while sent < shape.ops || flights.iter().any(|f| !matches!(f, Flight::Idle)) {
        if !orphans.is_empty() && rng.pct(5) {
            let op = orphans.swap_remove(rng.below(orphans.len() as u64) as usize);
            sys.apply(&op);
        }
        let c = rng.below(shape.clients as u64) as usize;
        flights[c] = match std::mem::replace(&mut flights[c], Flight::Idle) {
            Flight::Idle if sent < shape.ops => {
                sent += 1;
                Flight::Sent(h.invoke(c as u64, draw_op(&mut rng, &shape, &seen[c], &mut unique)))
            }
            Flight::Idle => Flight::Idle,
            Flight::Sent(id) if rng.pct(shape.faults) => {
                h.fail(id).unwrap();
                Flight::Idle
            }
            Flight::Sent(id) if rng.pct(shape.faults) => {
                h.time_out(id).unwrap();
                orphans.push(h.records()[id.0].op.clone());
                Flight::Idle
            }
            Flight::Sent(id) => match sys.apply(&h.records()[id.0].op.clone()) {
                Some(outcome) => Flight::Applied(id, outcome),
                None => panic!("the projection refused {:?}", h.records()[id.0].op),
            },
            Flight::Applied(id, _) if rng.pct(shape.faults) => {
                h.time_out(id).unwrap();
                Flight::Idle
            }
            Flight::Applied(id, outcome) => {
                let k = h.records()[id.0].op.key()[3..].iter().fold(0, |n, d| n * 10 + usize::from(d - b'0'));
                if let Some(v) = version_of(&outcome) {
                    seen[c][k] = v;
                }
                h.complete(id, outcome).unwrap();
                Flight::Idle
            }
        };
    }
    h
}

/// `h` with the answer of operation `id` replaced.
fn with_answer(h: &History, id: usize, outcome: Outcome) -> History {
    let mut out = History::new();
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    for (i, r) in h.records().iter().enumerate() {
        events.push((r.invoked, 0, i));
        match r.fate {
            Fate::Completed { at, .. } | Fate::Failed { at } | Fate::TimedOut { at } => {
                events.push((at, 1, i))
            }
            Fate::Open => {}
        }
    }
    events.sort();
    for (time, kind, i) in events {
        let r = &h.records()[i];
        if kind == 0 {
            assert_eq!(out.invoke_at(time, r.client, r.op.clone()), Ok(OpId(i)));
            continue;
        }
        let result = match &r.fate {
            Fate::Completed { .. } if i == id => out.complete_at(time, OpId(i), outcome.clone()),
            Fate::Completed { outcome, .. } => out.complete_at(time, OpId(i), outcome.clone()),
            Fate::Failed { .. } => out.fail_at(time, OpId(i)),
            Fate::TimedOut { .. } => out.time_out_at(time, OpId(i)),
            Fate::Open => unreachable!(),
        };
        result.unwrap();
    }
    out
}

fn completed(r: &Record) -> Option<(u64, &Outcome)> {
    match &r.fate {
        Fate::Completed { at, outcome } => Some((*at, outcome)),
        _ => None,
    }
}

/// A read that can be made stale: (read, value and version of an older SET that a later write
/// overwrote before the read began). Values of `v` SETs are written once, so nothing brings it back.
fn stale_candidate(h: &History) -> Option<(usize, Vec<u8>, u64)> {
    let rs = h.records();
    let changed = |r: &Record| {
        !r.op.is_read()
            && matches!(completed(r), Some((_, o)) if version_of(o).is_some() || *o == Outcome::Deleted { existed: true })
    };
    for (g, read) in rs.iter().enumerate().filter(|(_, r)| r.op.is_read() && completed(r).is_some()) {
        for old in rs.iter() {
            let (KvOp::Set { key, value }, Some((old_done, Outcome::Stored { version }))) =
                (&old.op, completed(old))
            else {
                continue;
            };
            if key != read.op.key() || !value.starts_with(b"v") || old_done >= read.invoked {
                continue;
            }
            let overwritten = rs.iter().any(|new| {
                new.op.key() == key.as_slice()
                    && changed(new)
                    && new.invoked > old_done
                    && completed(new).is_some_and(|(at, _)| at < read.invoked)
            });
            if overwritten {
                return Some((g, value.clone(), *version));
            }
        }
    }
    None
}

fn assert_rejected(h: &History, what: &str) {
    match check(h, &CheckConfig::default()) {
        CheckResult::NotLinearizable(_) => {}
        other => panic!("{what} was not rejected: {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn generated_histories_pass_and_mutated_ones_fail(
        seed in any::<u64>(),
        clients in 1usize..7,
        keys in 1usize..5,
        ops in 1usize..250,
        faults in 0u64..8,
    ) {
        let h = generate(seed, Shape { clients, keys, ops, faults });
        check(&h, &CheckConfig::default()).expect_linearizable();

        // A read of a value nobody wrote.
        let read = h.records().iter().position(|r| r.op.is_read() && completed(r).is_some());
        if let Some(g) = read {
            let bogus = Outcome::Found { value: b"never written".to_vec(), version: 1 << 40 };
            assert_rejected(&with_answer(&h, g, bogus), "a read of a value never written");
        }
        // A read of a value overwritten before the read began.
        if let Some((g, value, version)) = stale_candidate(&h) {
            assert_rejected(&with_answer(&h, g, Outcome::Found { value, version }), "a stale read");
        }
    }
}

#[test]
fn stale_mutations_are_drawn() {
    // The stale-read mutation above must not pass by never finding a candidate.
    let found = (0..20u64)
        .filter(|&seed| {
            let h = generate(seed, Shape { clients: 4, keys: 2, ops: 150, faults: 3 });
            stale_candidate(&h).is_some()
        })
        .count();
    assert!(found >= 15, "only {found} of 20 histories had a stale-read candidate");
}

#[test]
fn a_thousand_operations_over_ten_keys_check_within_the_budget() {
    for seed in 0..4 {
        let h = generate(seed, Shape { clients: 5, keys: 10, ops: 1_000, faults: 3 });
        let result = check(&h, &CheckConfig::default());
        result.expect_linearizable();
        let CheckResult::Linearizable { keys, ops, .. } = result else { unreachable!() };
        assert_eq!(keys, 10);
        assert!(ops > 900, "{ops} operations checked");
        // A stale read among them is rejected, and explained with a few of the key's operations.
        let (g, value, version) = stale_candidate(&h).expect("a stale-read candidate");
        match check(&with_answer(&h, g, Outcome::Found { value, version }), &CheckConfig::default()) {
            CheckResult::NotLinearizable(v) => {
                assert_eq!(v.blocked, OpId(g), "{v}");
                assert!(v.ops.len() <= 40, "{} operations in the explanation:\n{v}", v.ops.len());
            }
            other => panic!("a stale read was not rejected: {other:?}"),
        }
    }
}

#[test]
fn a_thousand_operations_on_one_key_check_within_the_budget() {
    let h = generate(7, Shape { clients: 5, keys: 1, ops: 1_000, faults: 3 });
    check(&h, &CheckConfig::default()).expect_linearizable();
}
