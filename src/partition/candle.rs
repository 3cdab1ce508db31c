//! The partition's side of the candle store (`crate::candle`): LIGHT commands in, candle reads
//! at the request's time, and the leader's ROTATE proposal that drops the daily buckets past
//! their seven days when no write comes.
//!
//! ROTATE is proposed by the leader, serving, with nothing waiting and no batch open, when the
//! candle projection's oldest bucket goes out before the clock of the last `poll`; its waiter is
//! `Origin::Internal` (answered to nobody), and while it waits no other is proposed. Applying it
//! moves the ring's clock to the entry's stamp, which drops the due buckets; followers and
//! replays apply the same entry: the same drop at the same place in the log.

use super::{Origin, Partition, Waiter, WriteOutcome};
use crate::candle::command::{write_rotate, ROTATE_LEN};
use crate::candle::{CandleProjection, TAG_CANDLE};
use crate::wire::{opcode, Status};
use vigil_pmd::block::BlockIo;

impl<D: BlockIo> Partition<D> {
    /// The candle projection, if this partition runs one.
    pub fn candles(&self) -> Option<&CandleProjection> {
        self.router.projection(TAG_CANDLE)?.as_any().downcast_ref::<CandleProjection>()
    }

    /// Starts a candle write: `command` is a LIGHT as `candle::command::write_light` writes it
    /// (its header's client id and sequence number make it exactly-once). A command that does
    /// not parse is answered `Malformed` now, nothing logged; with no candle projection it is
    /// refused `UNKNOWN_OPCODE`.
    pub fn light(&mut self, waiter: Waiter, command: &[u8]) -> WriteOutcome {
        if self.candles().is_none() {
            return WriteOutcome::Refused(Status::UnknownOpcode);
        }
        if command.first() != Some(&opcode::CANDLE_LIGHT) {
            return WriteOutcome::Refused(Status::BadRequest);
        }
        self.propose(waiter, TAG_CANDLE, command.len(), &mut |out| out.copy_from_slice(command))
    }

    /// Answers a candle read (`candle::projection`'s bodies) at `now_ms` (the request's time,
    /// Unix ms) into `out` (leader only, past the read barrier: `NOT_LEADER` before).
    pub fn read_candles(&self, op: u8, body: &[u8], now_ms: u64, out: &mut [u8]) -> Result<usize, Status> {
        if !self.serves_reads() {
            return Err(Status::NotLeader);
        }
        let candles = self.candles().ok_or(Status::UnknownOpcode)?;
        candles.answer_read(op, body, now_ms, out)
    }

    /// Whether a candle bucket is due to rotate out at the partition's clock.
    pub(super) fn rotation_due(&self) -> bool {
        let now_ms = self.now.0 / 1_000_000;
        self.candles().and_then(CandleProjection::next_expiry_ms).is_some_and(|at| at <= now_ms)
    }

    /// Proposes a ROTATE when a bucket is due and nothing else is going on (module header).
    pub(super) fn propose_rotation(&mut self) {
        if !self.rotation_due()
            || !self.serves_reads()
            || !self.waiters.is_empty()
            || self.open_chain.is_some()
        {
            return;
        }
        let waiter = Waiter {
            origin: Origin::Internal,
            opcode: opcode::CANDLE_ROTATE,
            request_id: 0,
            owner: crate::projection::Owner::ANONYMOUS,
        };
        let outcome = self.propose(waiter, TAG_CANDLE, ROTATE_LEN, &mut |out| write_rotate(out));
        if outcome == WriteOutcome::Later {
            self.counters.rotation_proposals += 1;
        }
    }
}
