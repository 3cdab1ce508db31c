//! The projection router (seed 003: "ProjectionRouter.apply(entry) -> updates KV/Queue/Stream/TS"):
//! a partition's projections, the client table that makes every projection's writes exactly-once,
//! and the fold of committed entries into them.
//!
//! An entry's payload is a batch (`partition::batch`: each command framed with its projection's
//! tag, the leader's timestamp once), a single KV command written before batches existed, or empty
//! (a new leader's entry). Each command is applied at its `LogPos` with the batch's timestamp:
//! 1. its header (`CommandHeader`) gives the client and sequence number; for a named client the
//!    client table classifies it by the XXH3-64 digest of the command's bytes (`clients`): a retry
//!    of the client's last applied write gets its remembered result, a stale, reused or too-far
//!    sequence number is refused; none of these reach the projection or change anything;
//! 2. otherwise the projection its tag names applies it, and its result is recorded in the client
//!    table (errors too; `Malformed` never: a command that does not decode did nothing).
//!
//! The digest is that of the command's bytes, header included: for KV it is exactly the digest the
//! KV projection kept before exactly-once moved here (`kv::Command::digest`), so client records in
//! older snapshots still recognise retries.
//!
//! Invariants: every replica and every replay routes the same bytes the same way (an unknown tag,
//! a short command or an undecodable batch is `Malformed`, never a panic); projections see their
//! commands in log order; the applied lsn only grows, and every entry, whatever it held, ends
//! applied (a snapshot taken after it covers it); nothing here allocates per command.

use super::clients::{ClientRecord, ClientTable, Verdict};
use super::{Applied, ApplyResult, CommandHeader, LogPos, Owner, Projection, Usage, TAG_KV};
use crate::kv::{KvLimits, KvProjection, ANONYMOUS_CLIENT};
use crate::partition::batch::BatchReader;
use crate::wire::Status;
use xxhash_rust::xxh3::xxh3_64;

/// Tag slots: a tag indexes this table of positions in `projections`.
const NO_SLOT: u8 = u8::MAX;

/// Counters of the fold; plain integers, not replicated (not in snapshots).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouterCounters {
    /// Commands executed by a projection (not retries, not refused).
    pub executed: u64,
    /// Retries answered from the client table.
    pub duplicates: u64,
    /// Stale sequence numbers refused.
    pub stale: u64,
    /// Writes refused because their `(client_id, seq)` was the last applied write of another command.
    pub sequence_reused: u64,
    /// Writes refused because their seq was too far ahead of the client's last.
    pub sequence_too_far: u64,
    /// Commands that named no projection or did not decode, and batches that did not decode.
    pub malformed: u64,
}

/// A partition's projections and client table (see the module header).
pub struct Router {
    projections: Vec<Box<dyn Projection>>,
    slots: [u8; 256],
    pub(crate) clients: ClientTable,
    sequence_ahead_max: u64,
    applied_lsn: u64,
    counters: RouterCounters,
    /// The snapshot being written in chunks, if any (`super::snapshot`).
    pub(super) snapshot_stream: Option<super::snapshot::Stream>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("projections", &self.projections)
            .field("clients", &self.clients.len())
            .field("applied_lsn", &self.applied_lsn)
            .finish()
    }
}

impl Router {
    /// A router over a KV projection with `kv` limits (whose `dedup_clients_max` and
    /// `sequence_ahead_max` bound the client table of every projection) and `others`. Panics if two
    /// projections share a tag (a programming error).
    pub fn new(kv: KvLimits, others: Vec<Box<dyn Projection>>) -> Self {
        let mut projections: Vec<Box<dyn Projection>> = vec![Box::new(KvProjection::new(kv))];
        projections.extend(others);
        let mut slots = [NO_SLOT; 256];
        for (i, p) in projections.iter().enumerate() {
            assert!(slots[usize::from(p.tag())] == NO_SLOT, "two projections with tag {}", p.tag());
            slots[usize::from(p.tag())] = u8::try_from(i).expect("fewer than 255 projections");
        }
        Self {
            projections,
            slots,
            clients: ClientTable::new(kv.dedup_clients_max),
            sequence_ahead_max: kv.sequence_ahead_max,
            applied_lsn: 0,
            counters: RouterCounters::default(),
            snapshot_stream: None,
        }
    }

    /// The projection with `tag`.
    pub fn projection(&self, tag: u8) -> Option<&dyn Projection> {
        let slot = self.slots[usize::from(tag)];
        self.projections.get(usize::from(slot)).map(|p| &**p)
    }

    pub(crate) fn projection_mut(&mut self, tag: u8) -> Option<&mut Box<dyn Projection>> {
        let slot = self.slots[usize::from(tag)];
        self.projections.get_mut(usize::from(slot))
    }

    /// Starts every projection's capture for a snapshot, in order (KV first).
    pub(super) fn begin_captures(&mut self) -> std::collections::VecDeque<(u8, super::SectionCapture)> {
        self.projections.iter_mut().map(|p| (p.tag(), p.begin_capture())).collect()
    }

    /// The projection of type `T`, if this router runs one.
    pub fn get<T: Projection>(&self) -> Option<&T> {
        self.projections.iter().find_map(|p| p.as_any().downcast_ref::<T>())
    }

    /// The KV projection (every router has one, under `TAG_KV`: one lookup, no scan).
    pub fn kv(&self) -> &KvProjection {
        self.projection(TAG_KV)
            .and_then(|p| p.as_any().downcast_ref::<KvProjection>())
            .expect("every router runs a KV projection")
    }

    /// The KV projection, to change (its record of expired keys for watchers).
    pub fn kv_mut(&mut self) -> &mut KvProjection {
        self.projection_mut(TAG_KV)
            .and_then(|p| p.as_any_mut().downcast_mut::<KvProjection>())
            .expect("every router runs a KV projection")
    }

    /// Every projection's upkeep (`Projection::upkeep`); whether more may be left to do.
    pub fn upkeep(&mut self) -> bool {
        self.projections.iter_mut().fold(false, |more, p| p.upkeep() | more)
    }

    /// Every projection, KV first.
    pub fn projections(&self) -> impl Iterator<Item = &dyn Projection> + '_ {
        self.projections.iter().map(|p| &**p)
    }

    /// The lsn of the last entry applied (0: none).
    pub fn applied_lsn(&self) -> u64 {
        self.applied_lsn
    }

    pub(crate) fn set_applied_lsn(&mut self, lsn: u64) {
        self.applied_lsn = lsn;
    }

    /// Counters so far.
    pub fn counters(&self) -> RouterCounters {
        self.counters
    }

    /// The client table's records, least recently active first.
    pub fn clients(&self) -> impl Iterator<Item = &ClientRecord> + '_ {
        self.clients.iter()
    }

    /// Clients evicted from the client table so far.
    pub fn dedup_evictions(&self) -> u64 {
        self.clients.evictions()
    }

    /// Keys or records in all projections.
    pub fn len(&self) -> usize {
        self.projections.iter().map(|p| p.len()).sum()
    }

    /// Whether every projection is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What a write of `command` for projection `tag` gets without being logged, if that is
    /// decided now: the projection's own check (sizes, decoding), then the client table (a retry's
    /// remembered result, a stale, reused or too-far sequence number). `None`: log it.
    pub fn precheck(&self, tag: u8, command: &[u8]) -> Option<ApplyResult> {
        let Some(projection) = self.projection(tag) else { return Some(ApplyResult::Malformed) };
        if let Some(result) = projection.check(command) {
            return Some(result);
        }
        match self.verdict(command)?.0 {
            Verdict::Execute => None,
            Verdict::Duplicate(result) | Verdict::Refuse(result) => Some(result),
        }
    }

    /// The client table's verdict on `command`, with what recording it needs: its header and, for
    /// a named client, its digest (`None`: it has no header).
    fn verdict(&self, command: &[u8]) -> Option<(Verdict, CommandHeader, u64)> {
        let h = CommandHeader::read(command)?;
        if h.client_id == ANONYMOUS_CLIENT {
            return Some((Verdict::Execute, h, 0));
        }
        let digest = xxh3_64(command);
        Some((self.clients.classify(h.client_id, h.seq, digest, self.sequence_ahead_max), h, digest))
    }

    /// Answers a read of projection `tag` (leader only: the partition checks).
    pub fn read(&self, tag: u8, opcode: u8, body: &[u8], out: &mut [u8]) -> Result<usize, Status> {
        match self.projection(tag) {
            Some(p) => p.read(opcode, body, out),
            None => Err(Status::BadRequest),
        }
    }

    /// Applies the committed entry at `lsn` (a batch, a single KV command from before batches, or
    /// empty) and hands `(position, result)` of each command to `on_result`, in order. Returns
    /// `false` if the payload is a batch that does not decode (no command was applied; the caller
    /// answers its writes `Malformed`). Panics if `lsn` is not above the last entry applied.
    pub fn apply_entry(
        &mut self,
        lsn: u64,
        payload: &[u8],
        on_result: &mut dyn FnMut(u16, ApplyResult),
    ) -> bool {
        assert!(lsn > self.applied_lsn, "entry {lsn} applied after entry {}", self.applied_lsn);
        let decoded = self.apply_commands(lsn, payload, on_result);
        self.applied_lsn = lsn;
        decoded
    }

    fn apply_commands(
        &mut self,
        lsn: u64,
        payload: &[u8],
        on_result: &mut dyn FnMut(u16, ApplyResult),
    ) -> bool {
        if payload.is_empty() {
            return true;
        }
        if !BatchReader::is_batch(payload) {
            on_result(0, self.apply_command(Applied::single(lsn), TAG_KV, payload));
            return true;
        }
        let Ok(batch) = BatchReader::new(payload) else {
            self.counters.malformed += 1;
            return false;
        };
        let time_ns = batch.timestamp;
        for (index, command) in batch.enumerate() {
            let others = self.held_elsewhere(command.tag, &command.owner, time_ns);
            let pos = LogPos { lsn, index: index as u16 };
            let at = Applied { pos, time_ns, owner: command.owner, others };
            let result = self.apply_command(at, command.tag, command.bytes);
            on_result(at.pos.index, result);
        }
        true
    }

    /// What `owner` holds in every projection but `tag`'s, when it has a quota (one quota covers
    /// all it stores); nothing to count otherwise.
    fn held_elsewhere(&self, tag: u8, owner: &Owner, time_ns: u64) -> Usage {
        if owner.quota.is_none() {
            return Usage::default();
        }
        let others = self.projections.iter().filter(|p| p.tag() != tag);
        others.fold(Usage::default(), |held, p| held.plus(p.usage_of(owner.key_id, time_ns)))
    }

    /// Applies `cmd` as the single KV command of the entry at `lsn`, exactly-once included
    /// (tools, tests, fuzzing: it allocates the command's encoding, so not for the hot path).
    pub fn apply_kv(&mut self, lsn: u64, cmd: &crate::kv::Command<'_>) -> ApplyResult {
        let mut bytes = vec![0u8; cmd.encoded_len()];
        if cmd.encode(&mut bytes).is_err() {
            // A key or value longer than its length field: it could never be logged.
            return ApplyResult::ValueTooLarge;
        }
        let mut result = ApplyResult::Malformed;
        self.apply_entry(lsn, &bytes, &mut |_, r| result = r);
        result
    }

    /// Applies one committed command (see the module header).
    fn apply_command(&mut self, at: Applied, tag: u8, command: &[u8]) -> ApplyResult {
        let Some((verdict, h, digest)) = self.verdict(command) else { return self.malformed() };
        match verdict {
            Verdict::Execute => {}
            Verdict::Duplicate(result) => {
                self.counters.duplicates += 1;
                return result;
            }
            Verdict::Refuse(result) => {
                match result {
                    ApplyResult::SequenceReused { .. } => self.counters.sequence_reused += 1,
                    ApplyResult::SequenceTooFar { .. } => self.counters.sequence_too_far += 1,
                    _ => self.counters.stale += 1,
                }
                return result;
            }
        }
        let Some(projection) = self.projection_mut(tag) else { return self.malformed() };
        let result = projection.apply(at, command);
        if result == ApplyResult::Malformed {
            return self.malformed();
        }
        self.counters.executed += 1;
        if h.client_id != ANONYMOUS_CLIENT {
            let record = ClientRecord {
                client_id: h.client_id,
                last_seq: h.seq,
                last_lsn: at.pos.lsn,
                digest: Some(digest),
                result,
            };
            self.clients.record(record);
        }
        result
    }

    fn malformed(&mut self) -> ApplyResult {
        self.counters.malformed += 1;
        ApplyResult::Malformed
    }
}
