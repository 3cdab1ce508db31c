//! The projection router: applies a committed entry by sending each of its commands to the
//! projection its tag names (`batch::TAG_KV` is the KV store, the only one so far), at its place
//! in the log (`LogPos`), and hands each command's result out by position.
//!
//! Invariants: every replica and every replay routes the same bytes the same way (an unknown tag
//! or an undecodable batch is `Malformed`, never a panic); a projection sees its commands in log
//! order, and every entry, whatever it held, ends marked applied in the projection (so a snapshot
//! taken after it covers it).

use super::batch::{BatchReader, LogPos, TAG_KV};
use crate::kv::{ApplyResult, KvProjection};

/// Applies the committed entry at `lsn` (its payload: a batch, a single KV command from before
/// batches, or empty: a new leader's entry) and hands `(position, result)` of each command to
/// `on_result`, in order. Returns `false` if the payload is a batch that does not decode (no
/// command was applied; the caller answers its writes `Malformed`).
pub fn apply_entry(
    kv: &mut KvProjection,
    lsn: u64,
    payload: &[u8],
    on_result: &mut dyn FnMut(u16, ApplyResult),
) -> bool {
    let decoded = apply_commands(kv, lsn, payload, on_result);
    kv.entry_applied(lsn);
    decoded
}

/// The commands of the entry at `lsn`, each to its projection; `false` for a batch that does not
/// decode (nothing applied).
fn apply_commands(
    kv: &mut KvProjection,
    lsn: u64,
    payload: &[u8],
    on_result: &mut dyn FnMut(u16, ApplyResult),
) -> bool {
    if payload.is_empty() {
        return true;
    }
    if !BatchReader::is_batch(payload) {
        on_result(0, kv.apply_bytes(LogPos::single(lsn), payload));
        return true;
    }
    let Ok(batch) = BatchReader::new(payload) else { return false };
    for (index, command) in batch.enumerate() {
        let pos = LogPos { lsn, index: index as u16 };
        let result = match command.tag {
            TAG_KV => kv.apply_bytes(pos, command.bytes),
            _ => ApplyResult::Malformed,
        };
        on_result(pos.index, result);
    }
    true
}
