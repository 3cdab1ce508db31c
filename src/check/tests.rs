//! Hand-written histories the checker must accept or reject, one per kind of anomaly, and the
//! recorder's refusals.

use super::*;

/// One operation of a hand-written history: who, when invoked, when and how it ended.
struct Op {
    client: ClientId,
    invoked: u64,
    end: End,
    op: KvOp,
}

enum End {
    Done(u64, Outcome),
    Never,
    Refused(u64),
}

fn k() -> Vec<u8> {
    b"k".to_vec()
}

fn set(v: &str) -> KvOp {
    KvOp::Set { key: k(), value: v.as_bytes().to_vec() }
}

fn get() -> KvOp {
    KvOp::Get { key: k() }
}

fn found(v: &str, version: u64) -> Outcome {
    Outcome::Found { value: v.as_bytes().to_vec(), version }
}

fn stored(version: u64) -> Outcome {
    Outcome::Stored { version }
}

fn done(client: ClientId, invoked: u64, at: u64, op: KvOp, outcome: Outcome) -> Op {
    Op { client, invoked, end: End::Done(at, outcome), op }
}

fn never(client: ClientId, invoked: u64, op: KvOp) -> Op {
    Op { client, invoked, end: End::Never, op }
}

/// Records `ops` in time order (invocations before ends at equal times).
fn record(ops: &[Op]) -> History {
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    for (i, o) in ops.iter().enumerate() {
        events.push((o.invoked, 0, i));
        match o.end {
            End::Done(at, _) | End::Refused(at) => events.push((at, 1, i)),
            End::Never => {}
        }
    }
    events.sort();
    let mut h = History::new();
    let mut ids = vec![OpId(0); ops.len()];
    for (time, kind, i) in events {
        let o = &ops[i];
        if kind == 0 {
            ids[i] = h.invoke_at(time, o.client, o.op.clone()).unwrap();
            continue;
        }
        match &o.end {
            End::Done(_, outcome) => h.complete_at(time, ids[i], outcome.clone()).unwrap(),
            End::Refused(_) => h.fail_at(time, ids[i]).unwrap(),
            End::Never => unreachable!(),
        }
    }
    h
}

fn verdict(ops: &[Op]) -> CheckResult {
    check(&record(ops), &CheckConfig::default())
}

fn assert_ok(ops: &[Op]) {
    verdict(ops).expect_linearizable();
}

/// Asserts a violation on key "k" whose blocked operation is `blocked` (index in `ops`, which
/// is its `OpId` when `ops` is in invocation order); returns the report.
fn assert_violation(ops: &[Op], blocked: usize) -> String {
    match verdict(ops) {
        CheckResult::NotLinearizable(v) => {
            assert_eq!(v.key, k());
            let report = v.to_string();
            assert_eq!(v.blocked, OpId(blocked), "{report}");
            report
        }
        other => panic!("expected a violation, got {other:?}"),
    }
}

#[test]
fn empty_and_sequential_histories_are_linearizable() {
    assert_ok(&[]);
    assert_ok(&[
        done(1, 1, 2, get(), Outcome::NotFound),
        done(1, 3, 4, set("a"), stored(10)),
        done(2, 5, 6, get(), found("a", 10)),
        done(1, 7, 8, KvOp::Del { key: k() }, Outcome::Deleted { existed: true }),
        done(2, 9, 10, get(), Outcome::NotFound),
    ]);
}

#[test]
fn stale_read_after_a_completed_write_is_rejected() {
    let report = assert_violation(
        &[
            done(1, 1, 2, set("a"), stored(10)),
            done(1, 3, 4, set("b"), stored(20)),
            done(2, 5, 6, get(), found("a", 10)),
        ],
        2,
    );
    assert!(report.contains("key \"k\""), "{report}");
    assert!(report.contains("found \"a\" v=10"), "{report}");
    assert!(report.contains("\"b\" v=20"), "the state after the prefix: {report}");
}

#[test]
fn a_read_seeing_a_value_then_an_older_one_is_rejected() {
    // SET b runs from 3 to 10, concurrent with both reads: either may see either value, but once
    // a read has seen b, a later read cannot see a again.
    let ops = |first: &str, v1: u64, second: &str, v2: u64| {
        vec![
            done(1, 1, 2, set("a"), stored(10)),
            done(1, 3, 10, set("b"), stored(20)),
            done(2, 4, 5, get(), found(first, v1)),
            done(3, 6, 7, get(), found(second, v2)),
        ]
    };
    assert_ok(&ops("a", 10, "a", 10));
    assert_ok(&ops("a", 10, "b", 20));
    assert_ok(&ops("b", 20, "b", 20));
    assert_violation(&ops("b", 20, "a", 10), 3);
}

#[test]
fn lost_writes_are_rejected() {
    assert_violation(&[done(1, 1, 2, set("a"), stored(10)), done(2, 3, 4, get(), Outcome::NotFound)], 1);
    let incr = || KvOp::Incr { key: k(), delta: 1 };
    let inc = |value, version| Outcome::Incremented { value, version };
    assert_violation(&[done(1, 1, 2, incr(), inc(1, 10)), done(2, 3, 4, incr(), inc(1, 20))], 1);
}

#[test]
fn a_write_that_never_answered_may_or_may_not_have_happened() {
    let base = || vec![done(1, 1, 2, set("a"), stored(10)), never(2, 3, set("b"))];
    let with = |extra: Vec<Op>| base().into_iter().chain(extra).collect::<Vec<_>>();
    assert_ok(&with(vec![done(3, 4, 5, get(), found("a", 10))]));
    // It took effect: a read fixes its version, which must be above the key's last one.
    assert_ok(&with(vec![done(3, 4, 5, get(), found("b", 15))]));
    assert_ok(&with(vec![done(3, 4, 5, get(), found("a", 10)), done(3, 6, 7, get(), found("b", 15))]));
    assert_violation(&with(vec![done(3, 4, 5, get(), found("b", 5))]), 2);
    // Once seen, it cannot be undone.
    assert_violation(
        &with(vec![done(3, 4, 5, get(), found("b", 15)), done(3, 6, 7, get(), found("a", 10))]),
        3,
    );
    // It cannot have taken effect before it was sent.
    assert_violation(
        &[done(1, 1, 2, set("a"), stored(10)), done(3, 3, 4, get(), found("b", 15)), never(2, 5, set("b"))],
        1,
    );
    // Its version is unknown but the next write's must still be above the floor.
    assert_ok(&with(vec![done(3, 4, 5, set("c"), stored(11)), done(3, 6, 7, get(), found("c", 11))]));
    // A timed-out write is the same as an unanswered one; a timed-out read constrains nothing.
    let mut h = record(&base());
    let read = h.invoke(4, get());
    h.time_out(read).unwrap();
    let late = h.invoke(4, get());
    h.complete(late, found("b", 16)).unwrap();
    check(&h, &CheckConfig::default()).expect_linearizable();
}

#[test]
fn concurrent_writes_may_be_read_in_either_order_but_only_one() {
    let ops = |first: (&str, u64), second: (&str, u64)| {
        vec![
            done(1, 1, 10, set("a"), stored(10)),
            done(2, 2, 11, set("b"), stored(20)),
            done(3, 12, 13, get(), found(first.0, first.1)),
            done(4, 14, 15, get(), found(second.0, second.1)),
        ]
    };
    // Versions follow the log order: the write with the higher version went last.
    assert_ok(&ops(("b", 20), ("b", 20)));
    // The history up to the first read's answer already fails: that read is blamed.
    assert_violation(&ops(("a", 10), ("a", 10)), 2);
    assert_violation(&ops(("b", 20), ("a", 10)), 3);
    // With versions in the other order, "a" is the last write.
    let flipped = vec![
        done(1, 1, 10, set("a"), stored(30)),
        done(2, 2, 11, set("b"), stored(20)),
        done(3, 5, 6, get(), found("b", 20)),
        done(4, 12, 13, get(), found("a", 30)),
    ];
    assert_ok(&flipped);
}

#[test]
fn versions_name_one_write_and_only_grow() {
    assert_violation(&[done(1, 1, 2, set("a"), stored(10)), done(2, 3, 4, get(), found("a", 11))], 1);
    assert_violation(&[done(1, 1, 2, set("a"), stored(10)), done(2, 3, 4, set("b"), stored(5))], 1);
    // Even across a delete and re-create.
    assert_violation(
        &[
            done(1, 1, 2, set("a"), stored(10)),
            done(1, 3, 4, KvOp::Del { key: k() }, Outcome::Deleted { existed: true }),
            done(1, 5, 6, set("a"), stored(9)),
        ],
        2,
    );
}

#[test]
fn del_answers_whether_the_key_existed() {
    let del = || KvOp::Del { key: k() };
    assert_ok(&[done(1, 1, 2, del(), Outcome::Deleted { existed: false })]);
    assert_violation(&[done(1, 1, 2, del(), Outcome::Deleted { existed: true })], 0);
    assert_violation(
        &[done(1, 1, 2, set("a"), stored(10)), done(1, 3, 4, del(), Outcome::Deleted { existed: false })],
        1,
    );
}

#[test]
fn incr_follows_vigil_semantics() {
    let incr = |delta| KvOp::Incr { key: k(), delta };
    let inc = |value, version| Outcome::Incremented { value, version };
    assert_ok(&[
        done(1, 1, 2, incr(5), inc(5, 10)),
        done(1, 3, 4, set("007"), stored(11)),
        done(1, 5, 6, incr(1), inc(8, 12)),
        done(1, 7, 8, get(), found("8", 12)),
        done(1, 9, 10, set("x"), stored(13)),
        done(1, 11, 12, incr(1), Outcome::NotInteger),
        done(1, 13, 14, set(&i64::MAX.to_string()), stored(14)),
        done(1, 15, 16, incr(1), Outcome::Overflow),
        done(1, 17, 18, incr(-1), inc(i64::MAX - 1, 15)),
    ]);
    assert_violation(&[done(1, 1, 2, set("x"), stored(10)), done(1, 3, 4, incr(1), inc(1, 11))], 1);
    assert_violation(&[done(1, 1, 2, incr(1), Outcome::NotInteger)], 0);
    // A SET of "10" and an INCR to 10 are the same state.
    assert_ok(&[
        done(1, 1, 2, incr(10), inc(10, 10)),
        done(1, 3, 4, get(), found("10", 10)),
        never(2, 5, incr(1)),
        done(1, 6, 7, get(), found("11", 20)),
    ]);
}

#[test]
fn cas_and_cad_compare_versions() {
    let cas =
        |expected_version, v: &str| KvOp::Cas { key: k(), expected_version, value: v.as_bytes().to_vec() };
    let cad = |expected_version| KvOp::Cad { key: k(), expected_version };
    assert_ok(&[
        done(1, 1, 2, cas(0, "a"), stored(10)),
        done(1, 3, 4, cas(0, "b"), Outcome::CasMismatch),
        done(1, 5, 6, cas(10, "c"), stored(20)),
        done(1, 7, 8, cas(10, "d"), Outcome::CasMismatch),
        done(1, 9, 10, cad(10), Outcome::CasMismatch),
        done(1, 11, 12, cad(20), Outcome::Deleted { existed: true }),
        done(1, 13, 14, cad(0), Outcome::CasMismatch),
        done(1, 15, 16, get(), Outcome::NotFound),
    ]);
    assert_violation(&[done(1, 1, 2, set("a"), stored(10)), done(1, 3, 4, cas(9, "b"), stored(11))], 1);
    assert_violation(
        &[done(1, 1, 2, set("a"), stored(10)), done(1, 3, 4, cas(10, "b"), Outcome::CasMismatch)],
        1,
    );
    assert_violation(&[done(1, 1, 2, cad(0), Outcome::Deleted { existed: true })], 0);
    // Against a write whose version is unknown a CAS may match (which fixes the version) or not;
    // a CAS that never answered may have applied or not.
    let pending = || vec![done(1, 1, 2, set("a"), stored(10)), never(2, 3, set("b"))];
    let with = |extra: Vec<Op>| pending().into_iter().chain(extra).collect::<Vec<_>>();
    assert_ok(&with(vec![done(3, 4, 5, cas(15, "c"), stored(16)), done(3, 6, 7, get(), found("c", 16))]));
    assert_ok(&with(vec![done(3, 4, 5, cas(15, "c"), Outcome::CasMismatch)]));
    assert_ok(&with(vec![never(3, 4, cas(15, "c")), done(3, 5, 6, get(), found("b", 15))]));
    assert_ok(&with(vec![never(3, 4, cas(15, "c")), done(3, 5, 6, get(), found("c", 17))]));
    assert_violation(&with(vec![done(3, 4, 5, cas(7, "c"), stored(16))]), 2);
}

#[test]
fn refused_operations_are_left_out() {
    let refused = Op { client: 2, invoked: 3, end: End::Refused(4), op: set("b") };
    assert_ok(&[done(1, 1, 2, set("a"), stored(10)), refused, done(1, 5, 6, get(), found("a", 10))]);
    let refused = Op { client: 2, invoked: 3, end: End::Refused(4), op: set("b") };
    assert_violation(
        &[done(1, 1, 2, set("a"), stored(10)), refused, done(1, 5, 6, get(), found("b", 20))],
        2,
    );
}

#[test]
fn keys_are_checked_alone_and_the_failing_one_is_named() {
    let mut h = History::new();
    for (key, value) in [(b"k1", b"x"), (b"k2", b"y")] {
        let w = h.invoke(1, KvOp::Set { key: key.to_vec(), value: value.to_vec() });
        h.complete(w, stored(10)).unwrap();
    }
    let r = h.invoke(2, KvOp::Get { key: b"k1".to_vec() });
    h.complete(r, found("x", 10)).unwrap();
    assert!(matches!(check(&h, &CheckConfig::default()), CheckResult::Linearizable { keys: 2, ops: 3, .. }));
    let r = h.invoke(2, KvOp::Get { key: b"k2".to_vec() });
    h.complete(r, found("x", 10)).unwrap();
    match check(&h, &CheckConfig::default()) {
        CheckResult::NotLinearizable(v) => {
            assert_eq!(v.key, b"k2".to_vec());
            assert_eq!(v.blocked, r);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_explanation_keeps_the_operations_that_matter() {
    // A stale read among many good ones and unrelated writes: the report keeps the two writes
    // that make it stale and the read.
    let mut ops = vec![done(1, 1, 2, set("a"), stored(10)), done(1, 3, 4, set("b"), stored(20))];
    for i in 0..30 {
        ops.push(done(2, 5 + 2 * i, 6 + 2 * i, get(), found("b", 20)));
    }
    ops.push(done(3, 100, 101, get(), found("a", 10)));
    for i in 0..10 {
        ops.push(done(1, 102 + 2 * i, 103 + 2 * i, set(&format!("z{i}")), stored(30 + i)));
    }
    let report = assert_violation(&ops, 32);
    let CheckResult::NotLinearizable(v) = verdict(&ops) else { unreachable!() };
    assert_eq!(v.ops_on_key, 43);
    let kept: Vec<OpId> = v.ops.iter().map(|(id, _)| *id).collect();
    assert_eq!(kept, vec![OpId(0), OpId(1), OpId(32)], "{report}");
    assert!(report.contains("43 operations on this key; these 3 still are not"), "{report}");
    // The history up to the stale read's answer already fails: the later writes are cut.
    assert_eq!(v.cut_at, Some(101));
    assert!(report.contains("up to time 101"), "{report}");
}

#[test]
fn an_exhausted_budget_is_unknown_never_a_pass() {
    let ops = [done(1, 1, 2, set("a"), stored(10)), done(2, 3, 4, get(), found("a", 10))];
    let result = check(&record(&ops), &CheckConfig { step_budget: 1 });
    assert!(matches!(&result, CheckResult::Unknown { key, steps: 1 } if *key == k()), "{result:?}");
    assert!(!result.is_linearizable());
    let panic = std::panic::catch_unwind(|| result.expect_linearizable()).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("budget ran out"), "{message}");
}

#[test]
fn the_recorder_refuses_misuse() {
    let mut h = History::new();
    let w = h.invoke(1, set("a"));
    assert!(matches!(h.complete(w, Outcome::NotFound), Err(HistoryError::OutcomeMismatch { .. })));
    assert_eq!(h.complete(OpId(7), stored(1)), Err(HistoryError::UnknownOp(OpId(7))));
    h.complete_at(10, w, stored(1)).unwrap();
    assert_eq!(h.complete(w, stored(1)), Err(HistoryError::AlreadyEnded(w)));
    assert_eq!(h.invoke_at(9, 1, get()), Err(HistoryError::TimeWentBack { time: 9, latest: 10 }));
    assert_eq!(h.invoke(1, get()), OpId(1));
    assert_eq!(h.latest(), 11);
    assert_eq!(h.len(), 2);
}

#[test]
fn a_history_as_of_a_time_leaves_later_operations_out_and_later_answers_open() {
    let h = record(&[
        done(1, 1, 2, set("a"), stored(10)),
        done(2, 3, 9, set("b"), stored(20)),
        Op { client: 3, invoked: 4, end: End::Refused(8), op: set("c") },
        done(4, 5, 6, get(), found("a", 10)),
        done(5, 7, 8, get(), found("b", 20)),
    ]);
    let cut = h.as_of(6);
    let fates: Vec<&Fate> = cut.records().iter().map(|r| &r.fate).collect();
    assert_eq!(fates.len(), 4, "the read invoked at 7 is left out");
    assert!(matches!(fates[0], Fate::Completed { at: 2, .. }));
    assert_eq!(fates[1], &Fate::Open);
    assert_eq!(fates[2], &Fate::Open);
    assert!(matches!(fates[3], Fate::Completed { at: 6, .. }));
    assert_eq!(cut.latest(), 6);
    check(&cut, &CheckConfig::default()).expect_linearizable();
}
