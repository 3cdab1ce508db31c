//! Checking client histories for linearizability against Vigil's KV semantics: the oracle of the
//! replication tests (the deterministic simulator and the three-node tests record what their
//! clients saw, and this says whether one sequential order of the operations explains it).
//!
//! - [`history`]: the recorder a harness fills from one thread ([`History::invoke`],
//!   [`History::complete`], [`History::fail`], [`History::time_out`]) on logical times.
//! - [`kv_model`]: the sequential specification of one key (GET, SET, DEL, INCR, CAS, CAD, with
//!   versions), written from `crate::kv::projection`.
//! - [`linearizability`]: Wing & Gong's search with Lowe's memoization, for any [`Model`].
//! - `report`: what a failure says (the key, its operations with times and answers, the longest
//!   order found and the operation that could not follow it), with the explanation shrunk to the
//!   operations that matter.
//!
//! [`check`] splits the history by key (P-compositionality: linearizability is local, and keys of
//! the KV model are independent objects), checks each key's sub-history alone, and answers
//! [`CheckResult`]. The search is exponential in the worst case, so it is bounded by
//! [`CheckConfig::step_budget`]: past it the answer is `Unknown`, which a test must treat as a
//! failure (never as a pass).
//!
//! Why our own checker rather than a crate: no maintained Rust port of Porcupine exists on
//! crates.io; `stateright`'s `LinearizabilityTester` records histories of its own actor model
//! checker (no separate invocation/completion times of a real system, no operations that never
//! answer, no budget, no per-key split), and `lincheck` tests in-process data structures under
//! loom. The algorithm is small (one file) and Porcupine's is the reference it follows.
//!
//! Invariants: pure code (no clock, no threads, no I/O, no randomness); the same history and
//! configuration always give the same answer and report; keys are checked in byte order.

pub mod history;
pub mod kv_model;
pub mod linearizability;
mod report;

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;

pub use history::{ClientId, Fate, History, HistoryError, KvOp, OpId, Outcome, Record};
pub use linearizability::Model;
pub use report::Violation;

use kv_model::KeyModel;
use linearizability::{search, Interval, Search};
use std::collections::BTreeMap;

/// The default search budget: far above what usual histories take (1,000 operations over 10 keys
/// at concurrency 5: about a thousand steps; on one key: a few thousand; 2,000 operations from 40
/// clients on 3 keys with 8% of them unanswered: up to 20 million), low enough that a pathological
/// history ends in about 20 s (some 2.5 million steps a second in the dev profile).
pub const STEP_BUDGET_DEFAULT: u64 = 50_000_000;

/// How hard to look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckConfig {
    /// Most search steps over all keys (and again, at most, for shrinking a failure's
    /// explanation); past it the answer is [`CheckResult::Unknown`].
    pub step_budget: u64,
}

impl Default for CheckConfig {
    fn default() -> Self {
        Self { step_budget: STEP_BUDGET_DEFAULT }
    }
}

/// The checker's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// Every key's sub-history has a linearization.
    Linearizable {
        /// Keys checked.
        keys: usize,
        /// Operations checked (refused ones and unanswered reads left out).
        ops: usize,
        /// Search steps taken.
        steps: u64,
    },
    /// A key's sub-history has none: the report says which and why.
    NotLinearizable(Box<Violation>),
    /// The budget ran out while checking `key`: nothing is known about it (or the keys after it).
    Unknown {
        /// The key being checked.
        key: Vec<u8>,
        /// Steps taken.
        steps: u64,
    },
}

impl CheckResult {
    /// True only for [`CheckResult::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, CheckResult::Linearizable { .. })
    }

    /// Panics with the full report unless the history is linearizable (`Unknown` included).
    #[track_caller]
    pub fn expect_linearizable(&self) {
        match self {
            CheckResult::Linearizable { .. } => {}
            CheckResult::NotLinearizable(v) => panic!("history is not linearizable:\n{v}"),
            CheckResult::Unknown { key, steps } => panic!(
                "linearizability unknown: the search budget ran out after {steps} steps on key {} \
                 (raise CheckConfig::step_budget or make the history smaller; never a pass)",
                report::quote(key)
            ),
        }
    }
}

/// One key's sub-history prepared for the search: record indices, the model, the intervals.
struct KeyHistory {
    ids: Vec<usize>,
    model: KeyModel,
    intervals: Vec<Interval>,
}

impl KeyHistory {
    /// The sub-history of the records `ids` (all of one key, none refused or an unanswered read).
    fn new(history: &History, ids: Vec<usize>) -> Self {
        let mut model = KeyModel::default();
        let mut intervals = Vec::with_capacity(ids.len());
        for &i in &ids {
            let r = &history.records()[i];
            let (completed, outcome) = match &r.fate {
                Fate::Completed { at, outcome } => (Some(*at), Some(outcome)),
                _ => (None, None),
            };
            model.push(&r.op, outcome);
            intervals.push(Interval { invoked: r.invoked, completed });
        }
        Self { ids, model, intervals }
    }
}

/// Whether a record takes part in the check: refused operations did nothing and unanswered
/// reads constrain nothing.
fn checked(r: &Record) -> bool {
    match r.fate {
        Fate::Failed { .. } => false,
        Fate::Open | Fate::TimedOut { .. } => !r.op.is_read(),
        Fate::Completed { .. } => true,
    }
}

/// The records that take part in the check, grouped by key (in byte order).
fn by_key(history: &History) -> BTreeMap<&[u8], Vec<usize>> {
    let mut keys: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
    for (i, r) in history.records().iter().enumerate() {
        if checked(r) {
            keys.entry(r.op.key()).or_default().push(i);
        }
    }
    keys
}

/// Checks `history` for linearizability against the KV model, each key alone.
pub fn check(history: &History, config: &CheckConfig) -> CheckResult {
    let keys = by_key(history);
    let (mut steps, mut ops) = (0u64, 0usize);
    for (key, ids) in &keys {
        ops += ids.len();
        let sub = KeyHistory::new(history, ids.clone());
        match search(&sub.model, &sub.intervals, config.step_budget - steps) {
            Search::Linearizable { steps: s, .. } => steps += s,
            Search::Exhausted { steps: s } => {
                return CheckResult::Unknown { key: key.to_vec(), steps: steps + s };
            }
            Search::NotLinearizable { deepest, .. } => {
                let blocked_at = sub.intervals[deepest.blocked].completed.unwrap_or(u64::MAX);
                let violation = report::explain(history, key, ids, blocked_at, config.step_budget);
                return CheckResult::NotLinearizable(Box::new(violation));
            }
        }
    }
    CheckResult::Linearizable { keys: keys.len(), ops, steps }
}
