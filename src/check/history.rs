//! The client history a test harness records: each operation's invocation and completion, on
//! logical times, for the linearizability checker (`super::check`).
//!
//! A harness drives the system from one thread and calls [`History::invoke`] when a client sends
//! an operation and [`History::complete`] when its answer arrives (or the `_at` forms with the
//! simulator's clock). What an operation became decides what the checker does with it:
//!
//! - **completed** with an [`Outcome`]: it took effect exactly once, at one instant between its
//!   invocation and its completion, and answered that outcome;
//! - **failed** ([`History::fail`]): the system answered a definite refusal (`BUSY`, `FULL`,
//!   `KEY_TOO_LARGE`, a `NOT_LEADER` from a node that never proposed it, ...): it certainly did not
//!   take effect, so it is left out. Only a refusal given before the write reached the log is
//!   definite: a `NOT_LEADER` answered to a write that waited in a lost term (its entry may still
//!   commit under the next leader), or `STALE` / `SEQUENCE_REUSED` to a retry (the first try may
//!   have applied), say nothing of the write's fate: record those as timed out. Recording a write
//!   that did happen as failed makes the checker reject a correct history;
//! - **never completed** (no call, or [`History::time_out`], which only says so explicitly): a write
//!   may have taken effect at any instant after its invocation, or never, with an answer nobody saw;
//!   a read that was never answered constrains nothing and is left out.
//!
//! Invariants: times never go backwards (each `_at` time is at least the latest one recorded;
//! the plain forms take the latest time plus one, so every event has its own instant); an operation
//! is completed, failed or timed out at most once, after its invocation; an outcome matches its
//! operation's kind ([`Outcome::fits`]). A call that would break one is refused with a
//! [`HistoryError`] and records nothing.

use crate::projection::ApplyResult;
use thiserror::Error;

/// Names a client of the system under test (the wire `client_id`, or any harness number): only
/// for the report, the checker does not use it (a client may even have several operations open).
pub type ClientId = u64;

/// Names one recorded operation: its index in the history, in invocation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub usize);

impl std::fmt::Display for OpId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A KV operation as a client sent it (docs/PROTOCOL.md, the KV opcodes). Expiries (SETX, EXPIRE,
/// PERSIST) and MSET are not modelled: a checked history must not use them on its keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvOp {
    /// GET: answers the value and its version, or `NOT_FOUND`.
    Get {
        /// The key.
        key: Vec<u8>,
    },
    /// SET: stores the value, answers the key's new version.
    Set {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// DEL: removes the key, answers whether it existed.
    Del {
        /// The key.
        key: Vec<u8>,
    },
    /// INCR: adds `delta` to the decimal i64 stored under the key (absent counts as 0), answers
    /// the new value and version, or `NOT_INTEGER` / `OVERFLOW` with nothing written.
    Incr {
        /// The key.
        key: Vec<u8>,
        /// What to add.
        delta: i64,
    },
    /// CAS: stores the value if the key's version is `expected_version` (0: the key is absent),
    /// answers the new version, or `CAS_MISMATCH` with nothing written.
    Cas {
        /// The key.
        key: Vec<u8>,
        /// The version the key must have (0: absent).
        expected_version: u64,
        /// The new value.
        value: Vec<u8>,
    },
    /// CAD: deletes the key if its version is `expected_version` (an absent key never matches),
    /// answers deleted, or `CAS_MISMATCH` with nothing changed.
    Cad {
        /// The key.
        key: Vec<u8>,
        /// The version the key must have.
        expected_version: u64,
    },
}

impl KvOp {
    /// The key it reads or writes.
    pub fn key(&self) -> &[u8] {
        match self {
            KvOp::Get { key }
            | KvOp::Set { key, .. }
            | KvOp::Del { key }
            | KvOp::Incr { key, .. }
            | KvOp::Cas { key, .. }
            | KvOp::Cad { key, .. } => key,
        }
    }

    /// True for GET, which changes nothing.
    pub fn is_read(&self) -> bool {
        matches!(self, KvOp::Get { .. })
    }
}

/// What the system answered to a completed operation. Definite refusals that change nothing
/// whatever the state (`BUSY`, `FULL`, ...) are not outcomes: record them with [`History::fail`]
/// (see the module doc for the refusals that are not definite).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// GET found the key with this value and version.
    Found {
        /// The value read.
        value: Vec<u8>,
        /// Its version.
        version: u64,
    },
    /// GET: `NOT_FOUND`.
    NotFound,
    /// SET or CAS stored; the key's version is now `version`.
    Stored {
        /// The key's new version.
        version: u64,
    },
    /// DEL ran (`existed`: the key was there); CAD deleted (`existed` is then true).
    Deleted {
        /// Whether the key existed.
        existed: bool,
    },
    /// INCR stored `value` at `version`.
    Incremented {
        /// The new value.
        value: i64,
        /// The key's new version.
        version: u64,
    },
    /// CAS or CAD: the key's version was not the expected one; nothing changed.
    CasMismatch,
    /// INCR: the stored value is not a decimal i64; nothing changed.
    NotInteger,
    /// INCR: the sum overflows i64; nothing changed.
    Overflow,
}

impl Outcome {
    /// Whether `self` is an answer `op` can get at all (a GET answers `Found` or `NotFound`, ...).
    pub fn fits(&self, op: &KvOp) -> bool {
        match op {
            KvOp::Get { .. } => matches!(self, Outcome::Found { .. } | Outcome::NotFound),
            KvOp::Set { .. } => matches!(self, Outcome::Stored { .. }),
            KvOp::Del { .. } => matches!(self, Outcome::Deleted { .. }),
            KvOp::Incr { .. } => {
                matches!(self, Outcome::Incremented { .. } | Outcome::NotInteger | Outcome::Overflow)
            }
            KvOp::Cas { .. } => matches!(self, Outcome::Stored { .. } | Outcome::CasMismatch),
            KvOp::Cad { .. } => {
                matches!(self, Outcome::Deleted { existed: true } | Outcome::CasMismatch)
            }
        }
    }
}

impl Outcome {
    /// The outcome of a KV write as the projection applied it (`crate::kv::KvProjection::apply_op`,
    /// for harnesses that see apply results rather than wire answers); `None` for results that
    /// are no outcome of the model: size and room refusals (`FULL`, `KEY_TOO_LARGE`,
    /// `VALUE_TOO_LARGE`: definite, record them with [`History::fail`]), exactly-once refusals
    /// (`STALE`, `SEQUENCE_REUSED`: a retry's, the first try may have applied: record a time-out)
    /// and results of operations the model leaves out (SETX, EXPIRE, ...).
    pub fn from_apply(result: &ApplyResult) -> Option<Outcome> {
        match *result {
            ApplyResult::Stored { version } => Some(Outcome::Stored { version }),
            ApplyResult::Deleted { existed } => Some(Outcome::Deleted { existed }),
            ApplyResult::Incremented { value, version } => Some(Outcome::Incremented { value, version }),
            ApplyResult::CasMismatch { .. } => Some(Outcome::CasMismatch),
            ApplyResult::NotInteger => Some(Outcome::NotInteger),
            ApplyResult::Overflow => Some(Outcome::Overflow),
            _ => None,
        }
    }
}

/// What became of a recorded operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Invoked, no answer yet (at check time: never answered, see the module doc).
    Open,
    /// Invoked and explicitly given up (a timeout): the same as `Open` for the checker.
    TimedOut {
        /// When the harness gave up (for the report only).
        at: u64,
    },
    /// Answered a definite refusal: it did not take effect; left out of the check.
    Failed {
        /// When the refusal arrived.
        at: u64,
    },
    /// Answered `outcome` at `at`.
    Completed {
        /// When the answer arrived.
        at: u64,
        /// The answer.
        outcome: Outcome,
    },
}

/// One recorded operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Who sent it.
    pub client: ClientId,
    /// What was sent.
    pub op: KvOp,
    /// When it was sent.
    pub invoked: u64,
    /// What became of it.
    pub fate: Fate,
}

/// A misuse of the recorder (a harness bug); nothing was recorded.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum HistoryError {
    /// No operation has this id; nothing was recorded.
    #[error("no operation {0} in the history")]
    UnknownOp(OpId),
    /// The operation already completed, failed or timed out; nothing was recorded.
    #[error("operation {0} already ended")]
    AlreadyEnded(OpId),
    /// The time is before the latest time recorded; nothing was recorded.
    #[error("time {time} is before the latest recorded time {latest}")]
    TimeWentBack {
        /// The time given.
        time: u64,
        /// The latest time recorded.
        latest: u64,
    },
    /// The outcome is not an answer this operation can get; nothing was recorded.
    #[error("outcome {outcome:?} does not fit operation {id} ({op:?})")]
    OutcomeMismatch {
        /// The operation.
        id: OpId,
        /// What it is.
        op: KvOp,
        /// The outcome given.
        outcome: Outcome,
    },
}

/// The recorded history: operations in invocation order, on one logical clock.
#[derive(Clone, Debug, Default)]
pub struct History {
    records: Vec<Record>,
    latest: u64,
}

impl History {
    /// An empty history at time 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `client` sent `op`, at the latest time plus one.
    pub fn invoke(&mut self, client: ClientId, op: KvOp) -> OpId {
        let time = self.latest + 1;
        self.invoke_at(time, client, op).expect("the next logical time is never in the past")
    }

    /// Records that `client` sent `op` at `time` (the simulator's clock).
    pub fn invoke_at(&mut self, time: u64, client: ClientId, op: KvOp) -> Result<OpId, HistoryError> {
        self.advance(time)?;
        self.records.push(Record { client, op, invoked: time, fate: Fate::Open });
        Ok(OpId(self.records.len() - 1))
    }

    /// Records that operation `id` answered `outcome`, at the latest time plus one.
    pub fn complete(&mut self, id: OpId, outcome: Outcome) -> Result<(), HistoryError> {
        self.complete_at(self.latest + 1, id, outcome)
    }

    /// Records that operation `id` answered `outcome` at `time`.
    pub fn complete_at(&mut self, time: u64, id: OpId, outcome: Outcome) -> Result<(), HistoryError> {
        let record = self.open(id, time)?;
        if !outcome.fits(&record.op) {
            return Err(HistoryError::OutcomeMismatch { id, op: record.op.clone(), outcome });
        }
        self.end(time, id, Fate::Completed { at: time, outcome });
        Ok(())
    }

    /// Records that operation `id` was refused (did certainly not take effect), at the latest
    /// time plus one.
    pub fn fail(&mut self, id: OpId) -> Result<(), HistoryError> {
        self.fail_at(self.latest + 1, id)
    }

    /// Records that operation `id` was refused at `time`.
    pub fn fail_at(&mut self, time: u64, id: OpId) -> Result<(), HistoryError> {
        self.open(id, time)?;
        self.end(time, id, Fate::Failed { at: time });
        Ok(())
    }

    /// Records that the harness gave up on operation `id` (it may still take effect, any time).
    pub fn time_out(&mut self, id: OpId) -> Result<(), HistoryError> {
        self.time_out_at(self.latest + 1, id)
    }

    /// Records that the harness gave up on operation `id` at `time`.
    pub fn time_out_at(&mut self, time: u64, id: OpId) -> Result<(), HistoryError> {
        self.open(id, time)?;
        self.end(time, id, Fate::TimedOut { at: time });
        Ok(())
    }

    /// The operations recorded, in invocation order (`OpId(i)` is the `i`-th).
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Operations recorded.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The latest time recorded.
    pub fn latest(&self) -> u64 {
        self.latest
    }

    /// The history as it stood at `time`: operations invoked later left out, and those that
    /// ended later still open (a prefix of a linearizable history is linearizable, so a prefix that
    /// is not shows a violation with fewer operations). `OpId`s are unchanged.
    pub fn as_of(&self, time: u64) -> History {
        let records = self
            .records
            .iter()
            .take_while(|r| r.invoked <= time)
            .map(|r| {
                let ended = match r.fate {
                    Fate::Open => None,
                    Fate::TimedOut { at } | Fate::Failed { at } | Fate::Completed { at, .. } => Some(at),
                };
                let fate = if ended.is_some_and(|at| at > time) { Fate::Open } else { r.fate.clone() };
                Record { fate, ..r.clone() }
            })
            .collect();
        History { records, latest: time.min(self.latest) }
    }

    /// Checks `time` and the operation's state; returns the operation if it is still open.
    fn open(&self, id: OpId, time: u64) -> Result<&Record, HistoryError> {
        let record = self.records.get(id.0).ok_or(HistoryError::UnknownOp(id))?;
        if record.fate != Fate::Open {
            return Err(HistoryError::AlreadyEnded(id));
        }
        if time < self.latest {
            return Err(HistoryError::TimeWentBack { time, latest: self.latest });
        }
        Ok(record)
    }

    fn end(&mut self, time: u64, id: OpId, fate: Fate) {
        self.latest = time;
        self.records[id.0].fate = fate;
    }

    fn advance(&mut self, time: u64) -> Result<(), HistoryError> {
        if time < self.latest {
            return Err(HistoryError::TimeWentBack { time, latest: self.latest });
        }
        self.latest = time;
        Ok(())
    }
}
