//! A second, small projection that shows the seam (tests only): named counters, each with the
//! leader's timestamp of its last change. It goes through the same router, batches, exactly-once,
//! replay and snapshots as KV, under its own tag.
//!
//! Command: the common header (kind `ADD`, client id, seq), then `i64 delta, u8 name_len, name`.
//! Result: `Incremented { value, version }`. Read `GET` with the name as body: `i64 value, u64
//! time_ns`. Section: u32 count, then per counter in name order `u8 name_len, name, i64 value,
//! u64 time_ns`.
//!
//! Invariants: deterministic (time only from `Applied`); overflow is a result that changes
//! nothing; a name over `NAME_MAX` is refused before it is logged.

use super::{
    Applied, ApplyResult, CommandHeader, FieldRead, Projection, SectionReader, SnapshotError,
    COMMAND_HEADER_LEN,
};
use crate::kv::Reader;
use crate::wire::Status;
use std::any::Any;
use std::collections::BTreeMap;

/// The counter projection's tag.
pub const TAG_COUNTER: u8 = 2;
/// Its one write: add to a counter.
pub const ADD: u8 = 0x70;
/// Its one read: a counter's value and time.
pub const GET: u8 = 0x71;
/// Longest counter name.
pub const NAME_MAX: usize = 16;

/// Named counters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counters {
    counters: BTreeMap<Vec<u8>, (i64, u64)>,
}

/// Encodes an `ADD` of `delta` to `name` by `client_id`/`seq`.
pub fn add(client_id: u64, seq: u64, name: &[u8], delta: i64) -> Vec<u8> {
    let mut out = vec![0; COMMAND_HEADER_LEN];
    CommandHeader { kind: ADD, client_id, seq }.write(&mut out);
    out.extend_from_slice(&delta.to_le_bytes());
    out.push(u8::try_from(name.len()).expect("test names are short"));
    out.extend_from_slice(name);
    out
}

fn decode(command: &[u8]) -> Option<(i64, &[u8])> {
    let h = CommandHeader::read(command)?;
    let mut r = Reader::new(&command[COMMAND_HEADER_LEN..]);
    let delta = r.i64().ok()?;
    let len = r.u8().ok()?;
    let name = r.bytes(usize::from(len)).ok()?;
    (h.kind == ADD && r.finish().is_ok()).then_some((delta, name))
}

impl Counters {
    /// A counter's value and the time of its last change.
    pub fn get(&self, name: &[u8]) -> Option<(i64, u64)> {
        self.counters.get(name).copied()
    }
}

impl Projection for Counters {
    fn tag(&self) -> u8 {
        TAG_COUNTER
    }

    fn check(&self, command: &[u8]) -> Option<ApplyResult> {
        match decode(command) {
            None => Some(ApplyResult::Malformed),
            Some((_, name)) if name.len() > NAME_MAX => Some(ApplyResult::KeyTooLarge),
            Some(_) => None,
        }
    }

    fn apply(&mut self, at: Applied, command: &[u8]) -> ApplyResult {
        let Some((delta, name)) = decode(command) else { return ApplyResult::Malformed };
        if name.len() > NAME_MAX {
            return ApplyResult::KeyTooLarge;
        }
        let current = self.counters.get(name).map_or(0, |c| c.0);
        let Some(value) = current.checked_add(delta) else { return ApplyResult::Overflow };
        self.counters.insert(name.to_vec(), (value, at.time_ns));
        ApplyResult::Incremented { value, version: at.pos.version() }
    }

    fn read(&self, opcode: u8, body: &[u8], out: &mut [u8]) -> Result<usize, Status> {
        if opcode != GET {
            return Err(Status::BadRequest);
        }
        let (value, time) = self.get(body).ok_or(Status::NotFound)?;
        let out = out.get_mut(..16).ok_or(Status::ResponseTooLarge)?;
        out[..8].copy_from_slice(&value.to_le_bytes());
        out[8..].copy_from_slice(&time.to_le_bytes());
        Ok(16)
    }

    fn write_snapshot(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.counters.len() as u32).to_le_bytes());
        for (name, (value, time)) in &self.counters {
            out.push(name.len() as u8);
            out.extend_from_slice(name);
            out.extend_from_slice(&value.to_le_bytes());
            out.extend_from_slice(&time.to_le_bytes());
        }
    }

    fn load_snapshot(&mut self, r: &mut SectionReader<'_>, _applied_lsn: u64) -> Result<(), SnapshotError> {
        let mut counters = BTreeMap::new();
        for _ in 0..r.u32()? {
            let len = r.u8()?;
            let mut name = Vec::new();
            r.bytes_into(usize::from(len), &mut name)?;
            let value = r.i64()?;
            let time = r.u64()?;
            if name.len() > NAME_MAX || counters.insert(name, (value, time)).is_some() {
                return Err(SnapshotError::Invalid("a counter name too long or twice"));
            }
        }
        r.finish().map_err(|_| SnapshotError::Invalid("bytes after the last counter"))?;
        self.counters = counters;
        Ok(())
    }

    fn len(&self) -> usize {
        self.counters.len()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
