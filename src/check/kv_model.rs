//! The sequential specification of one Vigil key, for the linearizability search
//! (`super::linearizability::Model`), written from `crate::kv::projection` and docs/PROTOCOL.md.
//!
//! A key's state ([`Cell`]) is its value and version, or absent, plus the highest version it is
//! known to have had (its `floor`). What each operation does:
//!
//! - GET answers the value and its version, or `NOT_FOUND` when absent; it changes nothing.
//! - SET stores the value; its answer's version becomes the key's version.
//! - DEL removes the key and answers whether it existed.
//! - INCR reads the value as a decimal i64 (`kv::projection::parse_i64`; absent counts as 0),
//!   adds with overflow check and stores the canonical decimal text; `NOT_INTEGER` / `OVERFLOW`
//!   change nothing.
//! - CAS stores if the key's version equals the expected one (0: the key is absent); CAD deletes
//!   if the key exists with that version; otherwise `CAS_MISMATCH` and nothing changes.
//!
//! Versions are log positions (`LogPos::version`), which the model cannot predict, so it takes
//! them from the answers and checks what Vigil promises of them: a write's version is above every
//! version the key had before (versions only grow, even across DEL and re-create, and are never
//! 0), and a GET answers the version of the write whose value it returns. A write that never
//! answered leaves its version unknown (`Version::Unknown`): a later GET fixes it (above the
//! floor), and a CAS against it may or may not match, so the model is nondeterministic there (two
//! successor states). Unknown versions are bounded by the floor only, not by each other: the
//! model accepts a little more than Vigil allows there, never less.
//!
//! Not modelled: expiries (SETX, EXPIRE, PERSIST, keys past their TTL) and MSET; size limits and
//! exactly-once refusals are definite failures the harness records as such. Values are interned
//! ([`Values`]): a canonical decimal i64 is stored as the number (so `SET "10"` and `INCR` to 10
//! are the same state), any other byte string as its number in the table.

use super::history::{KvOp, Outcome};
use super::linearizability::Model;
use crate::kv::projection::{format_i64, parse_i64};
use std::collections::HashMap;

/// An interned value: a canonical decimal i64, or the index of a byte string in [`Values`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Val {
    /// The decimal text of this number (as INCR stores it).
    Int(i64),
    /// Any other bytes, by index.
    Blob(u32),
}

/// The values of one key's sub-history, interned.
#[derive(Clone, Debug, Default)]
pub struct Values {
    blobs: Vec<Vec<u8>>,
    /// INCR's reading of each blob (`parse_i64` accepts non-canonical text such as "007").
    blob_ints: Vec<Option<i64>>,
    index: HashMap<Vec<u8>, u32>,
}

impl Values {
    /// The interned form of `bytes`.
    pub fn intern(&mut self, bytes: &[u8]) -> Val {
        if let Some(n) = parse_i64(bytes) {
            let mut text = [0u8; 20];
            let len = format_i64(n, &mut text);
            if &text[..len] == bytes {
                return Val::Int(n);
            }
        }
        if let Some(&id) = self.index.get(bytes) {
            return Val::Blob(id);
        }
        let id = u32::try_from(self.blobs.len()).expect("fewer than 2^32 values in a history");
        self.blobs.push(bytes.to_vec());
        self.blob_ints.push(parse_i64(bytes));
        self.index.insert(bytes.to_vec(), id);
        Val::Blob(id)
    }

    /// INCR's reading of `v`: `None` if it is not a decimal i64.
    fn as_int(&self, v: Val) -> Option<i64> {
        match v {
            Val::Int(n) => Some(n),
            Val::Blob(id) => self.blob_ints[id as usize],
        }
    }

    /// `v` quoted for a report.
    pub fn render(&self, v: Val) -> String {
        match v {
            Val::Int(n) => format!("\"{n}\""),
            Val::Blob(id) => super::report::quote(&self.blobs[id as usize]),
        }
    }
}

/// A key's version as far as the history tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// Answered by the write or by a read.
    Known(u64),
    /// Written by an operation that never answered; above the floor.
    Unknown,
}

/// One possible state of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cell {
    /// The value and its version; `None`: absent.
    pub value: Option<(Val, Version)>,
    /// The highest version the key is known to have had: every later write's is above it.
    pub floor: u64,
}

impl Cell {
    /// After a write of `v` that answered `version`, if that version can follow this state.
    fn written(self, v: Val, version: u64) -> Option<Cell> {
        (version > self.floor).then_some(Cell { value: Some((v, Version::Known(version))), floor: version })
    }

    /// After a write of `v` that never answered.
    fn written_unknown(self, v: Val) -> Cell {
        Cell { value: Some((v, Version::Unknown)), floor: self.floor }
    }

    fn deleted(self) -> Cell {
        Cell { value: None, floor: self.floor }
    }

    /// This state if its version can be `version` (an unknown one is fixed to it).
    fn with_version(self, version: u64) -> Option<Cell> {
        match self.value {
            Some((_, Version::Known(v))) => (v == version).then_some(self),
            Some((val, Version::Unknown)) => (version > self.floor)
                .then_some(Cell { value: Some((val, Version::Known(version))), floor: version }),
            None => None,
        }
    }

    /// The ways the key's version can compare with `expected` (0 meaning absent): each with the
    /// state refined by the answer. An unknown version may or may not be `expected`.
    fn version_matches(self, expected: u64) -> [Option<(bool, Cell)>; 2] {
        match self.value {
            None => [Some((expected == 0, self)), None],
            Some((_, Version::Known(v))) => [Some((v == expected, self)), None],
            Some((_, Version::Unknown)) => {
                [self.with_version(expected).map(|c| (true, c)), Some((false, self))]
            }
        }
    }
}

/// An operation's input with its values interned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// GET.
    Get,
    /// SET.
    Set(Val),
    /// DEL.
    Del,
    /// INCR by this delta.
    Incr(i64),
    /// CAS: expected version, new value.
    Cas(u64, Val),
    /// CAD: expected version.
    Cad(u64),
}

/// An answer with its values interned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// GET found this value at this version.
    Found(Val, u64),
    /// GET: absent.
    NotFound,
    /// SET, CAS stored at this version.
    Stored(u64),
    /// DEL, CAD: whether the key existed.
    Deleted(bool),
    /// INCR stored this value at this version.
    Incremented(i64, u64),
    /// CAS, CAD: version mismatch.
    CasMismatch,
    /// INCR: not an integer.
    NotInteger,
    /// INCR: overflow.
    Overflow,
}

/// The model of one key's sub-history: its operations (by index) and their answers.
#[derive(Clone, Debug, Default)]
pub struct KeyModel {
    /// The interned values.
    pub values: Values,
    /// Each operation's input and answer (`None`: never completed).
    pub ops: Vec<(Input, Option<Answer>)>,
}

impl KeyModel {
    /// Adds an operation of this key; returns its index.
    pub fn push(&mut self, op: &KvOp, outcome: Option<&Outcome>) -> usize {
        let input = match op {
            KvOp::Get { .. } => Input::Get,
            KvOp::Set { value, .. } => Input::Set(self.values.intern(value)),
            KvOp::Del { .. } => Input::Del,
            KvOp::Incr { delta, .. } => Input::Incr(*delta),
            KvOp::Cas { expected_version, value, .. } => {
                Input::Cas(*expected_version, self.values.intern(value))
            }
            KvOp::Cad { expected_version, .. } => Input::Cad(*expected_version),
        };
        let answer = outcome.map(|o| match o {
            Outcome::Found { value, version } => Answer::Found(self.values.intern(value), *version),
            Outcome::NotFound => Answer::NotFound,
            Outcome::Stored { version } => Answer::Stored(*version),
            Outcome::Deleted { existed } => Answer::Deleted(*existed),
            Outcome::Incremented { value, version } => Answer::Incremented(*value, *version),
            Outcome::CasMismatch => Answer::CasMismatch,
            Outcome::NotInteger => Answer::NotInteger,
            Outcome::Overflow => Answer::Overflow,
        });
        self.ops.push((input, answer));
        self.ops.len() - 1
    }

    /// A state for a report.
    pub fn render(&self, c: &Cell) -> String {
        match c.value {
            None if c.floor == 0 => "absent".to_string(),
            None => format!("absent (last version {})", c.floor),
            Some((v, Version::Known(ver))) => format!("{} v={ver}", self.values.render(v)),
            Some((v, Version::Unknown)) => {
                format!("{} v=? (above {})", self.values.render(v), c.floor)
            }
        }
    }

    fn incr(&self, c: Cell, delta: i64, answer: Option<Answer>, out: &mut Vec<Cell>) {
        let current = match c.value {
            None => Some(0),
            Some((v, _)) => self.values.as_int(v),
        };
        let sum = current.map(|n| n.checked_add(delta));
        match (sum, answer) {
            (Some(Some(n)), None) => out.push(c.written_unknown(Val::Int(n))),
            (Some(Some(n)), Some(Answer::Incremented(m, version))) if n == m => {
                out.extend(c.written(Val::Int(n), version))
            }
            (None, None | Some(Answer::NotInteger)) | (Some(None), None | Some(Answer::Overflow)) => {
                out.push(c)
            }
            _ => {}
        }
    }

    fn cas(&self, c: Cell, expected: u64, v: Val, answer: Option<Answer>, out: &mut Vec<Cell>) {
        for (matched, c) in c.version_matches(expected).into_iter().flatten() {
            match (matched, answer) {
                (true, None) => out.push(c.written_unknown(v)),
                (true, Some(Answer::Stored(version))) => out.extend(c.written(v, version)),
                (false, None | Some(Answer::CasMismatch)) => out.push(c),
                _ => {}
            }
        }
    }

    fn cad(&self, c: Cell, expected: u64, answer: Option<Answer>, out: &mut Vec<Cell>) {
        for (matched, c) in c.version_matches(expected).into_iter().flatten() {
            // An absent key never matches, not even expected version 0.
            let matched = matched && c.value.is_some();
            match (matched, answer) {
                (true, None | Some(Answer::Deleted(true))) => out.push(c.deleted()),
                (false, None | Some(Answer::CasMismatch)) => out.push(c),
                _ => {}
            }
        }
    }
}

impl Model for KeyModel {
    type State = Cell;

    fn init(&self) -> Cell {
        Cell { value: None, floor: 0 }
    }

    fn step(&self, state: &Cell, op: usize, out: &mut Vec<Cell>) {
        let c = *state;
        let (input, answer) = self.ops[op];
        match (input, answer) {
            (Input::Get, None) => out.push(c),
            (Input::Get, Some(Answer::NotFound)) if c.value.is_none() => out.push(c),
            (Input::Get, Some(Answer::Found(v, version))) if c.value.is_some_and(|(cv, _)| cv == v) => {
                out.extend(c.with_version(version))
            }
            (Input::Set(v), None) => out.push(c.written_unknown(v)),
            (Input::Set(v), Some(Answer::Stored(version))) => out.extend(c.written(v, version)),
            (Input::Del, None) => out.push(c.deleted()),
            (Input::Del, Some(Answer::Deleted(existed))) if existed == c.value.is_some() => {
                out.push(c.deleted())
            }
            (Input::Incr(delta), answer) => self.incr(c, delta, answer, out),
            (Input::Cas(expected, v), answer) => self.cas(c, expected, v, answer, out),
            (Input::Cad(expected), answer) => self.cad(c, expected, answer, out),
            _ => {}
        }
    }
}
