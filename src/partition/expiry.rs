//! The partition's side of key expiry (`kv::expiry`): reads at the request's time, the old value a
//! SETX with GET answers with, and the leader's EXPIRE_DUE proposal that returns the memory of
//! expired keys when no write comes.
//!
//! EXPIRE_DUE is proposed by the leader, serving, with nothing waiting and no batch open, when the
//! KV projection's earliest expiry is before the clock of the last `poll`; its waiter is
//! `Origin::Internal` (answered to nobody), and while it waits no other is proposed. Applying it
//! deletes the keys due at its entry's timestamp (a bounded number; the next one follows at a
//! later poll while keys are still due). Followers and replays apply the same entries: the same
//! deletions.

use super::{Origin, Partition, Waiter, WriteOutcome};
use crate::kv::{ApplyResult, Command, KvProjection, Op, ANONYMOUS_CLIENT};
use crate::projection::{LogPos, TAG_KV};
use crate::wire::{opcode, Status};
use std::sync::Arc;
use vigil_pmd::block::BlockIo;

/// The old block a SETX with GET at (`lsn`, `index`) returned, if the key existed.
pub(super) fn old_value(kv: &KvProjection, lsn: u64, index: u16, result: &ApplyResult) -> Option<Arc<[u8]>> {
    match result {
        ApplyResult::SetX { existed: true, .. } => kv.returned(LogPos { lsn, index }.version()).cloned(),
        _ => None,
    }
}

impl<D: BlockIo> Partition<D> {
    /// Answers a KV read (GET, TTL, KEYS_COUNT) at `now_ms` (the request's time, Unix ms) into
    /// `out` (leader only, past the read barrier: `NOT_LEADER` before, which clients retry).
    pub fn read_kv(&self, op: u8, body: &[u8], now_ms: u64, out: &mut [u8]) -> Result<usize, Status> {
        if !self.serves_reads() {
            return Err(Status::NotLeader);
        }
        self.kv().answer_read(op, body, now_ms, out)
    }

    /// Whether keys are past their expiry at the partition's clock.
    pub(super) fn expiry_due(&self) -> bool {
        let now_ms = self.now.0 / 1_000_000;
        self.kv().next_expiry_ms().is_some_and(|at| at < now_ms)
    }

    /// Proposes an EXPIRE_DUE when keys are due and nothing else is going on (module header).
    pub(super) fn propose_expiry(&mut self) {
        if !self.expiry_due() || !self.serves_reads() || !self.waiters.is_empty() || self.open_chain.is_some()
        {
            return;
        }
        let cmd = Command { client_id: ANONYMOUS_CLIENT, seq: 0, op: Op::ExpireDue };
        let waiter = Waiter {
            origin: Origin::Internal,
            opcode: opcode::EXPIRE_DUE,
            request_id: 0,
            owner: crate::projection::Owner::ANONYMOUS,
        };
        let outcome = self.propose(waiter, TAG_KV, cmd.encoded_len(), &mut |out| {
            cmd.encode(out).expect("sized by encoded_len");
        });
        if outcome == WriteOutcome::Later {
            self.counters.expiry_proposals += 1;
        }
    }
}
