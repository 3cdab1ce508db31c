//! What the checker says when a key's sub-history is not linearizable: a [`Violation`], printed
//! as a table of the key's operations (invocation and completion times, answers), the longest
//! order the search found and the operation that could not follow it.
//!
//! The explanation is shrunk first (greedily, within the step budget): an operation is dropped if
//! the rest is still not linearizable, trying first the operations that change nothing (reads,
//! CAS mismatches, failed INCRs, DELs of absent keys: dropping them only removes constraints, so
//! what remains is still a true counterexample), then SETs and CASes nothing left reads or
//! compares against (only while no INCR, DEL of a present key or CAD remains, whose answers depend
//! on the writes before them). Writes are kept otherwise, so a shrunk report never blames a read
//! for a value whose write was dropped.
//!
//! Invariants: deterministic (same history, same report); bytes are printed as quoted text when
//! printable, as hex otherwise, cut at [`QUOTE_BYTES_MAX`].

use super::history::{Fate, History, KvOp, OpId, Outcome, Record};
use super::kv_model::Cell;
use super::linearizability::{search, Deepest, Search};
use super::KeyHistory;
use std::fmt;

/// Longest byte string printed whole in a report.
pub const QUOTE_BYTES_MAX: usize = 48;

/// Most operations of a key the explanation is shrunk from (each try is one search).
const SHRINK_OPS_MAX: usize = 2_000;

/// A key whose sub-history is not linearizable, with the operations that show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The key.
    pub key: Vec<u8>,
    /// Operations of the key that were checked.
    pub ops_on_key: usize,
    /// The operations of the explanation (a subset of the key's that is still not
    /// linearizable), in invocation order.
    pub ops: Vec<(OpId, Record)>,
    /// The longest order of explanation operations the search could linearize.
    pub prefix: Vec<OpId>,
    /// The completed operation that could not follow `prefix` (and that no operation concurrent
    /// with it could make possible).
    pub blocked: OpId,
    /// The key's possible states after `prefix`, rendered.
    pub states: Vec<String>,
}

/// Bytes as a quoted string, or hex when not printable ASCII.
pub(crate) fn quote(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(QUOTE_BYTES_MAX)];
    let mut s = if shown.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("{:?}", String::from_utf8_lossy(shown))
    } else {
        let hex: String = shown.iter().map(|b| format!("{b:02x}")).collect();
        format!("0x{hex}")
    };
    if bytes.len() > shown.len() {
        s.push_str(&format!("...({} bytes)", bytes.len()));
    }
    s
}

fn describe_op(op: &KvOp) -> String {
    match op {
        KvOp::Get { .. } => "GET".to_string(),
        KvOp::Set { value, .. } => format!("SET {}", quote(value)),
        KvOp::Del { .. } => "DEL".to_string(),
        KvOp::Incr { delta, .. } => format!("INCR {delta}"),
        KvOp::Cas { expected_version, value, .. } => {
            format!("CAS if v={expected_version} then {}", quote(value))
        }
        KvOp::Cad { expected_version, .. } => format!("CAD if v={expected_version}"),
    }
}

fn describe_outcome(o: &Outcome) -> String {
    match o {
        Outcome::Found { value, version } => format!("found {} v={version}", quote(value)),
        Outcome::NotFound => "NOT_FOUND".to_string(),
        Outcome::Stored { version } => format!("stored v={version}"),
        Outcome::Deleted { existed: true } => "deleted (existed)".to_string(),
        Outcome::Deleted { existed: false } => "deleted (was absent)".to_string(),
        Outcome::Incremented { value, version } => format!("now {value} v={version}"),
        Outcome::CasMismatch => "CAS_MISMATCH".to_string(),
        Outcome::NotInteger => "NOT_INTEGER".to_string(),
        Outcome::Overflow => "OVERFLOW".to_string(),
    }
}

/// When it ended and how, for the table.
fn describe_fate(f: &Fate) -> (String, String) {
    match f {
        Fate::Completed { at, outcome } => (at.to_string(), describe_outcome(outcome)),
        Fate::Open => ("-".to_string(), "(never answered: may take effect or not)".to_string()),
        Fate::TimedOut { at } => ("-".to_string(), format!("(timed out at {at}: may take effect or not)")),
        Fate::Failed { at } => (at.to_string(), "(refused)".to_string()),
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "key {}: not linearizable ({} operations on this key; these {} still are not):",
            quote(&self.key),
            self.ops_on_key,
            self.ops.len()
        )?;
        writeln!(
            f,
            "  {:>7} {:>8} {:>10} {:>10}  {:<34} answer",
            "op", "client", "invoked", "answered", "operation"
        )?;
        for (id, r) in &self.ops {
            let (at, answer) = describe_fate(&r.fate);
            let mark = if *id == self.blocked { "*" } else { " " };
            let op = describe_op(&r.op);
            writeln!(
                f,
                " {mark}{:>7} {:>8} {:>10} {:>10}  {op:<34} {answer}",
                id.to_string(),
                r.client,
                r.invoked,
                at
            )?;
        }
        let prefix: Vec<String> = self.prefix.iter().map(|id| id.to_string()).collect();
        writeln!(f, "longest order found ({} ops): {}", prefix.len(), prefix.join(" "))?;
        writeln!(f, "key after it: {}", self.states.join(" | "))?;
        write!(
            f,
            "cannot follow it: {} (marked *): its answer fits none of these states, and no operation \
             concurrent with it can be placed before it to make it fit",
            self.blocked
        )
    }
}

/// True for a completed operation whose answer says it changed nothing.
fn changes_nothing(r: &Record) -> bool {
    let Fate::Completed { outcome, .. } = &r.fate else { return false };
    match outcome {
        Outcome::Found { .. } | Outcome::NotFound => true,
        Outcome::CasMismatch | Outcome::NotInteger | Outcome::Overflow => true,
        Outcome::Deleted { existed } => !existed && matches!(r.op, KvOp::Del { .. }),
        Outcome::Stored { .. } | Outcome::Incremented { .. } => false,
    }
}

/// True if no operation of `kept` depends on the writes before it (INCR, DEL of a present key,
/// CAD), so a SET or CAS nobody observes may be dropped.
fn writes_droppable(history: &History, kept: &[usize]) -> bool {
    kept.iter().all(|&i| {
        let r = &history.records()[i];
        match (&r.op, &r.fate) {
            (KvOp::Incr { .. } | KvOp::Cad { .. }, _) => false,
            (KvOp::Del { .. }, Fate::Completed { outcome, .. }) => {
                *outcome == Outcome::Deleted { existed: false }
            }
            (KvOp::Del { .. }, _) => false,
            _ => true,
        }
    })
}

/// True if `w` is a SET or CAS that no operation of `kept` reads (its value) or compares against
/// (its version).
fn unobserved_write(history: &History, kept: &[usize], w: usize) -> bool {
    let r = &history.records()[w];
    let (value, version) = match (&r.op, &r.fate) {
        (KvOp::Set { value, .. } | KvOp::Cas { value, .. }, Fate::Completed { outcome, .. }) => match outcome
        {
            Outcome::Stored { version } => (value, Some(*version)),
            _ => return false,
        },
        (KvOp::Set { value, .. } | KvOp::Cas { value, .. }, Fate::Open | Fate::TimedOut { .. }) => {
            (value, None)
        }
        _ => return false,
    };
    kept.iter().filter(|&&i| i != w).all(|&i| {
        let o = &history.records()[i];
        let read_it =
            matches!(&o.fate, Fate::Completed { outcome: Outcome::Found { value: v, .. }, .. } if v == value);
        let compared = match o.op {
            KvOp::Cas { expected_version, .. } | KvOp::Cad { expected_version, .. } => {
                Some(expected_version) == version || version.is_none()
            }
            _ => false,
        };
        !read_it && !compared
    })
}

/// Searches the sub-history `ids`: whether it fails, the steps taken, whether the budget ran out.
fn failing(history: &History, ids: &[usize], budget: u64) -> (bool, u64, bool) {
    let sub = KeyHistory::new(history, ids.to_vec());
    match search(&sub.model, &sub.intervals, budget) {
        Search::NotLinearizable { steps, .. } => (true, steps, false),
        Search::Linearizable { steps, .. } => (false, steps, false),
        Search::Exhausted { steps } => (false, steps, true),
    }
}

/// Shrinks the key's failing sub-history `ids` within `budget` steps.
fn shrink(history: &History, ids: &[usize], budget: u64) -> Vec<usize> {
    let mut kept = ids.to_vec();
    if kept.len() > SHRINK_OPS_MAX {
        return kept;
    }
    let mut spent = 0u64;
    let reads: Vec<usize> = ids.iter().copied().filter(|&i| changes_nothing(&history.records()[i])).collect();
    let writes: Vec<usize> = ids.iter().copied().filter(|i| !reads.contains(i)).collect();
    for (pass, candidates) in [reads, writes].into_iter().enumerate() {
        for c in candidates {
            if pass == 1 && !(writes_droppable(history, &kept) && unobserved_write(history, &kept, c)) {
                continue;
            }
            let trial: Vec<usize> = kept.iter().copied().filter(|&i| i != c).collect();
            let (fails, steps, exhausted) = failing(history, &trial, budget.saturating_sub(spent));
            spent += steps;
            if exhausted {
                return kept;
            }
            if fails {
                kept = trial;
            }
        }
    }
    kept
}

/// The violation of `key`, whose checked records `ids` are not linearizable.
pub(super) fn explain(history: &History, key: &[u8], ids: &[usize], budget: u64) -> Violation {
    let kept = shrink(history, ids, budget);
    // Shrinking keeps only sub-histories that failed within the budget, and the search is
    // deterministic, so the shrunk one fails again; the whole one is the fallback all the same.
    for ids_shown in [kept, ids.to_vec()] {
        let sub = KeyHistory::new(history, ids_shown);
        if let Search::NotLinearizable { deepest, .. } = search(&sub.model, &sub.intervals, budget) {
            return violation(history, key, ids.len(), &sub, &deepest);
        }
    }
    unreachable!("the key's sub-history failed the check, and the search is deterministic");
}

fn violation(
    history: &History,
    key: &[u8],
    ops_on_key: usize,
    sub: &KeyHistory,
    deepest: &Deepest<Cell>,
) -> Violation {
    let id = |i: usize| OpId(sub.ids[i]);
    Violation {
        key: key.to_vec(),
        ops_on_key,
        ops: sub.ids.iter().map(|&i| (OpId(i), history.records()[i].clone())).collect(),
        prefix: deepest.prefix.iter().map(|&i| id(i)).collect(),
        blocked: id(deepest.blocked),
        states: deepest.states.iter().map(|s| sub.model.render(s)).collect(),
    }
}
