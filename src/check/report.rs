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

/// Most rows a report prints whole; past it the report focuses on the blocked operation.
const REPORT_ROWS_MAX: usize = 40;

/// How many of the longest order's last operations a focused report prints.
const FOCUS_PREFIX_OPS: usize = 12;

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
    /// If the history up to this time (when `blocked` answered) already fails, it is the one
    /// explained: operations invoked later are left out, answers that came later are not used
    /// (the table still prints them).
    pub cut_at: Option<u64>,
}

impl Violation {
    /// The operations the report prints: all of them if few, otherwise the blocked one, those
    /// concurrent with it, the last of the longest order and the writes of the value it read.
    fn focus(&self) -> Vec<OpId> {
        if self.ops.len() <= REPORT_ROWS_MAX {
            return self.ops.iter().map(|(id, _)| *id).collect();
        }
        let Some((_, blocked)) = self.ops.iter().find(|(id, _)| *id == self.blocked) else {
            return self.ops.iter().map(|(id, _)| *id).collect();
        };
        let until = match blocked.fate {
            Fate::Completed { at, .. } => at,
            _ => u64::MAX,
        };
        let read = match &blocked.fate {
            Fate::Completed { outcome: Outcome::Found { value, .. }, .. } => Some(value),
            _ => None,
        };
        let tail = &self.prefix[self.prefix.len().saturating_sub(FOCUS_PREFIX_OPS)..];
        self.ops
            .iter()
            .filter(|(id, r)| {
                let ended = match r.fate {
                    Fate::Completed { at, .. } | Fate::Failed { at } => at,
                    Fate::Open | Fate::TimedOut { .. } => u64::MAX,
                };
                let concurrent = r.invoked <= until && ended >= blocked.invoked;
                let wrote_it = matches!((&r.op, read), (KvOp::Set { value, .. } | KvOp::Cas { value, .. }, Some(v)) if value == v);
                *id == self.blocked || concurrent || wrote_it || tail.contains(id)
            })
            .map(|(id, _)| *id)
            .collect()
    }
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
        let shown = self.focus();
        for (id, r) in self.ops.iter().filter(|(id, _)| shown.contains(id)) {
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
        if shown.len() < self.ops.len() {
            writeln!(
                f,
                "  ({} more operations of the explanation not shown: the last {FOCUS_PREFIX_OPS} of the \
                 order below, those concurrent with the one marked * and the writes of what it read are; \
                 Violation::ops has them all)",
                self.ops.len() - shown.len()
            )?;
        }
        if let Some(t) = self.cut_at {
            writeln!(
                f,
                "  (the history up to time {t}, when the one marked * answered, already fails: operations \
                 invoked later are left out, answers that came later are not used)"
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

/// The search steps a shrink may still spend.
struct Spend {
    budget: u64,
    spent: u64,
}

impl Spend {
    /// Whether `ids` still fails; `None` once the budget is gone.
    fn fails(&mut self, history: &History, ids: &[usize]) -> Option<bool> {
        let (fails, steps, exhausted) = failing(history, ids, self.budget.saturating_sub(self.spent));
        self.spent += steps;
        (!exhausted).then_some(fails)
    }
}

/// Drops from `kept` the operations of `candidates` whose removal keeps it failing, in chunks
/// that halve (most operations of a long history are irrelevant: few searches drop them all).
/// `false` once the budget is gone.
fn drop_chunks(history: &History, kept: &mut Vec<usize>, candidates: &[usize], spend: &mut Spend) -> bool {
    let mut left = candidates.to_vec();
    let mut chunk = left.len().div_ceil(2).max(1);
    while !left.is_empty() {
        let mut next = Vec::new();
        for part in left.chunks(chunk) {
            let trial: Vec<usize> = kept.iter().copied().filter(|i| !part.contains(i)).collect();
            match spend.fails(history, &trial) {
                None => return false,
                Some(true) => *kept = trial,
                Some(false) if part.len() > 1 => next.extend_from_slice(part),
                Some(false) => {}
            }
        }
        left = next;
        chunk = chunk.div_ceil(2);
    }
    true
}

/// Shrinks the key's failing sub-history `ids` within `budget` steps.
fn shrink(history: &History, ids: &[usize], budget: u64) -> Vec<usize> {
    let mut kept = ids.to_vec();
    if kept.len() > SHRINK_OPS_MAX {
        return kept;
    }
    let mut spend = Spend { budget, spent: 0 };
    let reads: Vec<usize> = ids.iter().copied().filter(|&i| changes_nothing(&history.records()[i])).collect();
    if !drop_chunks(history, &mut kept, &reads, &mut spend) {
        return kept;
    }
    let writes: Vec<usize> = kept.iter().copied().filter(|i| !reads.contains(i)).collect();
    for w in writes {
        if !(writes_droppable(history, &kept) && unobserved_write(history, &kept, w)) {
            continue;
        }
        let trial: Vec<usize> = kept.iter().copied().filter(|&i| i != w).collect();
        match spend.fails(history, &trial) {
            None => break,
            Some(true) => kept = trial,
            Some(false) => {}
        }
    }
    kept
}

/// The violation of `key`, whose checked records `ids` are not linearizable; the search got
/// deepest before the operation answered at `blocked_at`.
pub(super) fn explain(
    history: &History,
    key: &[u8],
    ids: &[usize],
    blocked_at: u64,
    budget: u64,
) -> Violation {
    // The history up to that answer most likely fails already: later operations need no showing.
    let cut = history.as_of(blocked_at);
    let cut_ids: Vec<usize> =
        ids.iter().copied().filter(|&i| i < cut.len() && super::checked(&cut.records()[i])).collect();
    let (base, base_ids, cut_at) = match failing(&cut, &cut_ids, budget) {
        (true, ..) => (&cut, cut_ids, Some(blocked_at)),
        _ => (history, ids.to_vec(), None),
    };
    let kept = shrink(base, &base_ids, budget);
    // Shrinking keeps only sub-histories that failed within the budget, and the search is
    // deterministic, so the shrunk one fails again; the whole one is the fallback all the same.
    for (base, shown, cut_at) in [(base, kept, cut_at), (history, ids.to_vec(), None)] {
        let sub = KeyHistory::new(base, shown);
        if let Search::NotLinearizable { deepest, .. } = search(&sub.model, &sub.intervals, budget) {
            let mut v = violation(history, key, ids.len(), &sub, &deepest);
            v.cut_at = cut_at;
            return v;
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
        cut_at: None,
    }
}
