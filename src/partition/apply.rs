//! Applying what the Raft group committed: each entry through the projection router, and each
//! waiting write answered by its position in the batch (`Done`), once the whole entry is applied
//! (a SET with GET takes its old value from the projection while the router still holds it); the
//! change feed notes every result; entries Raft dropped are answered `NOT_LEADER`.
//!
//! Invariants: every waiting write of a batch is answered exactly once, in batch order, by its
//! entry's outcome (`MALFORMED` for what an entry that does not decode leaves unanswered); the
//! window of bytes in flight (`waiting_bytes`) loses each answered write's bytes.

use super::batch::BatchReader;
use super::waiters::Waiters;
use super::{expiry, Done, Partition, Waiter, NO_TOKEN};
use crate::kv::ApplyResult;
use crate::raft::EntryKind;
use crate::wire::Status;
use vigil_pmd::block::BlockIo;

impl<D: BlockIo> Partition<D> {
    /// Applies the entries the last Raft poll committed and answers their writes.
    pub(super) fn apply_committed(&mut self, done: &mut dyn FnMut(Done)) {
        for entry in self.out.committed.drain(..) {
            if entry.kind != EntryKind::Normal {
                continue;
            }
            self.counters.applied += 1;
            // The batch's writes wait in a chain from its proposal context, in batch order.
            let mut next = entry.proposal_ctx.unwrap_or(NO_TOKEN);
            let (waiters, waiting_bytes, feed) = (&mut self.waiters, &mut self.waiting_bytes, &mut self.feed);
            let quota_exceeded = &mut self.counters.quota_exceeded;
            let results = &mut self.results;
            results.clear();
            let decoded = self
                .router
                .apply_entry(entry.index, &entry.data, &mut |index, result| results.push((index, result)));
            // Answered once the whole entry is applied: a SETX with GET takes its old value from
            // the projection, which the router holds while it applies.
            let kv = self.router.kv();
            let sealed_at = BatchReader::new(&entry.data).map_or(0, |b| b.timestamp);
            for &(index, result) in results.iter() {
                feed.note_result(index, result);
                if let Some(waiter) = take_waiter(waiters, waiting_bytes, &mut next) {
                    // Counted where a client is answered: not on followers, not on replay.
                    *quota_exceeded += u64::from(result == ApplyResult::QuotaExceeded);
                    let value = expiry::old_value(kv, entry.index, index, &result);
                    done(Done { waiter, result: Ok(result), value, sealed_at });
                }
            }
            feed.note_expired(|into| self.router.kv_mut().take_expired(into));
            feed.record_entry(entry.index, &entry.data);
            if !decoded {
                answer_chain(waiters, waiting_bytes, next, Ok(ApplyResult::Malformed), done);
            }
        }
        for dropped in &self.out.dropped {
            answer_chain(
                &mut self.waiters,
                &mut self.waiting_bytes,
                dropped.ctx,
                Err(Status::NotLeader),
                done,
            );
        }
    }
}

/// Answers every write of the batch chained from `first` with `result`.
pub(super) fn answer_chain(
    waiters: &mut Waiters<(Waiter, u64, u64)>,
    waiting_bytes: &mut u64,
    mut next: u64,
    result: Result<ApplyResult, Status>,
    done: &mut dyn FnMut(Done),
) {
    while let Some(waiter) = take_waiter(waiters, waiting_bytes, &mut next) {
        done(Done::of(waiter, result));
    }
}

/// Takes the waiting write under `*next` out of the table, and its bytes out of the window, and
/// moves `*next` to the following write of its batch.
pub(super) fn take_waiter(
    waiters: &mut Waiters<(Waiter, u64, u64)>,
    waiting_bytes: &mut u64,
    next: &mut u64,
) -> Option<Waiter> {
    let (waiter, bytes, following) = waiters.take(*next)?;
    *waiting_bytes -= bytes;
    *next = following;
    Some(waiter)
}
