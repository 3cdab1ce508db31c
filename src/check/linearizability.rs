//! The linearizability search of one sub-history (one key): Wing & Gong's backtracking search
//! with Lowe's memoization, as Porcupine does it ("Testing for Linearizability", Lowe 2017;
//! "Faster linearizability checking via P-compositionality", Horn & Kroening 2015).
//!
//! The operations become call and return entries in one list sorted by time. The search walks it
//! from the head: at a call entry it tries to linearize that operation now (the model must accept
//! its answer from the current state), removes ("lifts") its call and return entries and starts
//! again from the head; at a return entry the operation it closes should already have been
//! linearized, so the last choice is undone (backtrack) and the search goes on after it. A cache of
//! (set of linearized operations, model state) pairs already explored cuts the search: two paths
//! that linearized the same operations into the same state have the same future.
//!
//! Generalizations of the textbook search, both as in Porcupine:
//! - **nondeterministic models**: a step may lead to several states (a write that never answered
//!   may or may not have matched a CAS), so the search state is a set of model states (the
//!   powerset construction); an operation fits when at least one state accepts it;
//! - **operations that never completed**: their return entry sits after every other entry, so
//!   they may be linearized anywhere after their invocation; once every completed operation is
//!   linearized the rest may be placed at the end, where nothing observes them (the same as never
//!   taking effect), so the search stops there. The model must accept such an operation (with no
//!   answer) from every state.
//!
//! Invariants: the search is deterministic (the cache is only asked for membership); it takes at
//! most `budget` steps (one per entry visited) and says `Exhausted` rather than guess; entries
//! with equal times sort calls before returns, so operations that touch at an instant count as
//! concurrent (the permissive reading: a check never fails on a tie of the clock).

use std::collections::HashSet;
use std::hash::Hash;

/// A sequential specification: the states of one object and how each recorded operation moves
/// them. Operations are named by their index in the sub-history; the model holds their inputs and
/// answers.
pub trait Model {
    /// One state of the object.
    type State: Clone + Ord + Hash;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Pushes onto `out` every state `op` can lead to from `state` while giving its recorded
    /// answer (nothing if the answer is impossible there). An operation that never completed has
    /// no answer and must lead to at least one state from every state.
    fn step(&self, state: &Self::State, op: usize, out: &mut Vec<Self::State>);
}

/// When an operation was invoked and, if it ever was, completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// Its invocation time.
    pub invoked: u64,
    /// Its completion time; `None`: it never completed.
    pub completed: Option<u64>,
}

/// The deepest point the search reached in a sub-history that is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deepest<S> {
    /// The longest sequence of operations it could linearize (indices), in order.
    pub prefix: Vec<usize>,
    /// The completed operation that had to come next and fits no state reachable by the prefix
    /// (nor could any operation concurrent with it be placed first and help).
    pub blocked: usize,
    /// The model states after the prefix.
    pub states: Vec<S>,
}

/// The answer of [`search`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Search<S> {
    /// A linearization exists; `order` is one (completed operations, and those of the others
    /// it placed).
    Linearizable {
        /// Operations in linearization order.
        order: Vec<usize>,
        /// Steps taken.
        steps: u64,
    },
    /// No order works.
    NotLinearizable {
        /// Where the search got deepest.
        deepest: Deepest<S>,
        /// Steps taken.
        steps: u64,
    },
    /// The budget ran out first: nothing is known.
    Exhausted {
        /// Steps taken (the budget).
        steps: u64,
    },
}

const NIL: usize = usize::MAX;

/// The sorted call/return entries as a doubly linked list that can lift an operation out and put
/// it back (in reverse order of lifting). Node `2 * op` is the call of `op`, `2 * op + 1` its
/// return; the head sentinel is node `2 * n`.
struct Entries {
    next: Vec<usize>,
    prev: Vec<usize>,
    head: usize,
}

impl Entries {
    fn new(intervals: &[Interval]) -> Self {
        let n = intervals.len();
        let mut order: Vec<usize> = (0..2 * n).collect();
        // Never-completed returns last; then by time, calls before returns, then by operation.
        order.sort_by_key(|&node| {
            let it = &intervals[node / 2];
            match (node % 2, it.completed) {
                (0, _) => (false, it.invoked, 0, node),
                (_, Some(at)) => (false, at, 1, node),
                (_, None) => (true, 0, 1, node),
            }
        });
        let head = 2 * n;
        let mut next = vec![NIL; 2 * n + 1];
        let mut prev = vec![NIL; 2 * n + 1];
        let mut last = head;
        for node in order {
            next[last] = node;
            prev[node] = last;
            last = node;
        }
        Self { next, prev, head }
    }

    fn first(&self) -> usize {
        self.next[self.head]
    }

    fn unlink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = node;
        if n != NIL {
            self.prev[n] = node;
        }
    }

    fn lift(&mut self, op: usize) {
        self.unlink(2 * op);
        self.unlink(2 * op + 1);
    }

    fn unlift(&mut self, op: usize) {
        self.relink(2 * op + 1);
        self.relink(2 * op);
    }
}

/// The set of operations linearized so far, as bits (part of the cache key).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Self(vec![0; n.div_ceil(64)])
    }

    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// Every state `op` leads to from any state of `states`, sorted and without repeats.
fn step_all<M: Model>(model: &M, states: &[M::State], op: usize) -> Vec<M::State> {
    let mut out = Vec::new();
    for s in states {
        model.step(s, op, &mut out);
    }
    out.sort();
    out.dedup();
    out
}

/// Decides whether the operations `intervals` (answers and inputs inside `model`) are
/// linearizable with respect to `model`, in at most `budget` steps.
pub fn search<M: Model>(model: &M, intervals: &[Interval], budget: u64) -> Search<M::State> {
    let mut entries = Entries::new(intervals);
    let mut linearized = Bits::new(intervals.len());
    let mut seen: HashSet<(Bits, Vec<M::State>)> = HashSet::new();
    // The choices made: each linearized operation with the states before it.
    let mut calls: Vec<(usize, Vec<M::State>)> = Vec::new();
    let mut states = vec![model.init()];
    let mut deepest: Option<Deepest<M::State>> = None;
    let mut steps = 0u64;
    let mut node = entries.first();
    loop {
        if node == NIL {
            return Search::Linearizable { order: calls.iter().map(|c| c.0).collect(), steps };
        }
        if steps >= budget {
            return Search::Exhausted { steps };
        }
        steps += 1;
        let op = node / 2;
        if node.is_multiple_of(2) {
            let after = step_all(model, &states, op);
            if !after.is_empty() {
                linearized.set(op);
                if seen.insert((linearized.clone(), after.clone())) {
                    calls.push((op, std::mem::replace(&mut states, after)));
                    entries.lift(op);
                    node = entries.first();
                    continue;
                }
                linearized.clear(op);
            }
            node = entries.next[node];
            continue;
        }
        if intervals[op].completed.is_none() {
            // Every completed operation is linearized; the rest go at the end, unobserved.
            return Search::Linearizable { order: calls.iter().map(|c| c.0).collect(), steps };
        }
        if deepest.as_ref().is_none_or(|d| calls.len() > d.prefix.len()) {
            let prefix = calls.iter().map(|c| c.0).collect();
            deepest = Some(Deepest { prefix, blocked: op, states: states.clone() });
        }
        let Some((undo, before)) = calls.pop() else {
            let deepest = deepest.expect("recorded just above");
            return Search::NotLinearizable { deepest, steps };
        };
        states = before;
        linearized.clear(undo);
        entries.unlift(undo);
        node = entries.next[2 * undo];
    }
}
