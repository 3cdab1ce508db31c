//! The model of what clients did: every write with its state (pending, acknowledged, given up),
//! each key's writes in issue order and the versions seen of it.
//!
//! Invariant: a value names the one write that produced it (values are unique per write).

use super::*;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WOp {
    Set(Vec<u8>),
    Del,
    Incr(i64),
    Cas(u64, Vec<u8>),
}

impl WOp {
    pub(crate) fn opcode(&self) -> u8 {
        match self {
            WOp::Set(_) => opcode::SET,
            WOp::Del => opcode::DEL,
            WOp::Incr(_) => opcode::INCR,
            WOp::Cas(..) => opcode::CAS,
        }
    }

    /// The value a register holds after this write applied (None: DEL).
    pub(crate) fn value(&self) -> Option<&[u8]> {
        match self {
            WOp::Set(v) | WOp::Cas(_, v) => Some(v),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WState {
    /// Sent, no final answer yet.
    Pending,
    /// A final answer came at `at`; `applied`: it changed the key (OK), else it wrote nothing.
    Acked { at: u64, applied: bool },
    /// The client gave up: it may apply at any time (a datagram may still be in the air).
    Unknown,
}

#[derive(Clone, Debug)]
pub(crate) struct Write {
    pub(crate) key: usize,
    pub(crate) op: WOp,
    pub(crate) client: usize,
    pub(crate) req: u64,
    pub(crate) first_sent: u64,
    pub(crate) state: WState,
    /// The version it got, once an answer or a read told.
    pub(crate) version: Option<u64>,
    /// Its final answer (status, body): every later one must be identical.
    pub(crate) answer: Option<(u8, Vec<u8>)>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct KeyModel {
    pub(crate) name: Vec<u8>,
    pub(crate) counter: bool,
    /// Its writes, in issue order.
    pub(crate) writes: Vec<usize>,
    /// A write to it is in flight.
    pub(crate) locked: bool,
    /// Clean class: GETs of it in flight (writes wait, so the plain model is exact for them).
    pub(crate) readers: u32,
    /// (time seen, the highest version seen by then), appended in time order.
    pub(crate) seen_max: Vec<(u64, u64)>,
    /// The version of the latest observation (0: absent): CAS guesses with it.
    pub(crate) hint: u64,
}

impl KeyModel {
    /// The highest version seen strictly before `t`.
    pub(crate) fn floor(&self, t: u64) -> u64 {
        let i = self.seen_max.partition_point(|&(at, _)| at < t);
        if i == 0 {
            0
        } else {
            self.seen_max[i - 1].1
        }
    }

    pub(crate) fn saw(&mut self, t: u64, version: u64) {
        let max = self.seen_max.last().map_or(0, |&(_, m)| m).max(version);
        self.seen_max.push((t, max));
    }
}

/// A state a register may be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cand {
    Absent,
    /// Written by write `w`, at `version` if known.
    Present {
        w: usize,
        version: Option<u64>,
    },
}

/// What a read returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReadResult {
    Absent,
    Found { version: u64, value: Vec<u8> },
}
