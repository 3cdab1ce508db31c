//! A partition: one Raft group over its own Unified Append Log, and the projections folded from it
//! behind their router (`crate::projection::Router`: KV, and whatever `PartitionConfig::projections`
//! adds). This is where a write becomes durable before it is answered. It knows no projection's
//! commands: it carries bytes tagged for a projection (`propose`; `write` is the KV wire's way in).
//!
//! The life of a write (`propose`): the command is encoded into the open batch, then checked by
//! its projection and the router's client table (a size over a limit, or a retry of an applied
//! write, is answered at once and taken back out of the batch); otherwise it waits under a token
//! that indexes the bounded `Waiters` table. Nothing is answered then. Each `poll` drives the log's
//! I/O and the Raft group; a committed entry (durable in the local log, and on a quorum) is applied
//! through the router and, if someone waits for it, handed out as `Done` with its `ApplyResult`.
//! Reads (`read`, `get`) are answered from the projection on the leader, without going through the log:
//! every acknowledged write was applied before it was acknowledged. A new leader answers reads only
//! once it applied its own first entry (the read barrier): entries of earlier terms, which may have
//! been acknowledged before a crash, are committed and applied by then.
//!
//! Recovery (`open`, in `recovery.rs`): read the partition's snapshot file when there is one (read-only), recover the
//! UAL without writing (`Ual::recover`, told what the snapshot covers, so damaged records below it
//! are skipped), check that the two belong together, and only then commit the log (the new epoch,
//! a torn tail cut) and remove a leftover snapshot `.tmp`: a refused start changes nothing on disk.
//! Damaged acknowledged records refuse the start (`PartitionError::Corrupt`, with the repair to
//! run: `repair`). One pass over the log, still before anything is written, applies every entry
//! after the snapshot up to the recovered commit index (`UalRaftStore::replay`), reporting its
//! progress as values (the server draws a bar); Raft re-commits what follows. Snapshots (`maybe_snapshot`) are taken every
//! `snapshot_every_entries` applied entries, or when half the log's ring is in use, captured
//! without a copy and handed to the snapshot store in bounded chunks over the next polls
//! (`snapshot.rs`; `seams::SnapshotStore`: a file the server writes on a thread, the simulator's
//! own), and only once it is stored checkpointed into the log, which recycles the segments they
//! cover.
//!
//! Sans-IO: no clock reads (time comes in as `Nanos`), no threads, files or printing here; the
//! snapshot store and the event sink (`seams`) are the seams the server and the simulator fill.
//!
//! The writes proposed and not yet answered are kept to `inflight_bytes_max` bytes of log (`BUSY`
//! beyond), set by config independently of the segment size. Raft reads committed entries back
//! from the log store to apply them; the store serves any entry the log holds, from memory or, for
//! entries older than the tail segment and the one before it, by a device read (`crate::raft`'s
//! `RaftGroup` header says when that read blocks). A window of at most one segment keeps
//! everything not yet applied in memory.
//!
//! Invariants: every waiting request gets exactly one `Done` (its result, `NOT_LEADER` if its log
//! position went to another entry, `UNAVAILABLE` if the log failed); nothing is applied that is not
//! committed; a snapshot file never covers less than the log's start; proposals stop (`BUSY`)
//! before the log's ring fills, so a full log never fails the Raft group.

mod apply;
pub mod batch;
mod counters;
use apply::answer_chain;
mod candle;
mod chunks;
mod expiry;
pub mod feed;
mod install;
pub mod lease;
mod peers;
mod quiesce;
mod recovery;
pub mod repair;
pub mod seams;
mod snapshot;
pub mod waiters;

pub use counters::PartitionCounters;
pub use quiesce::QUIESCE_AFTER_HEARTBEATS;
pub(crate) use recovery::{load_snapshot, recover_error};
pub use recovery::{PartitionRecovery, ProgressFn, RecoveryReport, Snapshots, PROGRESS_EVERY_ENTRIES};

use crate::inbox::Envelope;
use crate::kv::protocol::parse_write;
use crate::kv::{ApplyResult, Command, KvLimits, KvProjection};
use crate::log::{CorruptionReport, LogError, UalConfig};
use crate::projection::Owner;
use crate::projection::{ProjectionSet, Router};
use crate::raft::{RaftError, RaftGroup, RaftGroupConfig, RaftLogStore, RaftOutput, UalRaftStore};
use crate::wire::Status;
use batch::{BatchLimits, BatchWriter, BATCH_HEADER_LEN, COMMAND_FRAME_LEN_MAX, TAG_KV};
use peers::Peers;
use seams::{EventSink, PartitionEvent, RecentEvents, SnapshotStore};
use std::collections::VecDeque;
use thiserror::Error;
use vigil_pmd::block::BlockIo;
use vigil_pmd::{Nanos, Peer};
use waiters::Waiters;

/// The token after the last write of a batch's chain.
const NO_TOKEN: u64 = u64::MAX;
/// Free segments below which proposals are refused with `BUSY` until a snapshot frees some.
const SEGMENTS_FREE_MIN: u64 = 2;
/// Bytes a log record takes besides its payload.
const RECORD_HEADER_LEN: usize = crate::log::RECORD_HEADER_LEN;
#[cfg(test)]
const BLOCK_SIZE: usize = vigil_pmd::block::BLOCK_SIZE;

/// How a partition runs; the same on every replica.
#[derive(Clone, Debug)]
pub struct PartitionConfig {
    /// The log's geometry.
    pub ual: UalConfig,
    /// Raft timing and bounds.
    pub raft: RaftGroupConfig,
    /// KV limits (their `dedup_clients_max` and `sequence_ahead_max` bound the client table of
    /// every projection).
    pub kv: KvLimits,
    /// The projections besides KV (none in a server today; the tests add a counter).
    pub projections: ProjectionSet,
    /// Take a snapshot after this many entries applied since the last one.
    pub snapshot_every_entries: u64,
    /// This node's Raft id, and the group's voters (a fresh log is bootstrapped with them).
    pub node_id: u64,
    /// The voters of a fresh group.
    pub voters: Vec<u64>,
    /// The bounds of one batch entry (the writes of one poll iteration).
    pub batch: BatchLimits,
    /// Bytes of log the writes proposed and not yet answered may take (`BUSY` beyond):
    /// `storage.inflight_bytes_max`.
    pub inflight_bytes_max: u64,
    /// Follower reads (`Partition::serves_bounded_reads`): a follower answers reads at most this
    /// stale (ns, on its own clock); 0: off, only the leader answers reads.
    pub follower_read_staleness_ns: u64,
    /// Idle groups with peers stop ticking (`quiesce.rs`): `cluster.quiesce_idle`.
    pub quiesce_idle: bool,
}

/// Where a partition's events go: a sink the server plugs in, or kept (the last few) for tests.
enum Events {
    Sink(EventSink),
    Kept(RecentEvents),
}

/// Who waits for a write's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A client of this shard.
    Client {
        /// Where the answer goes.
        peer: Peer,
        /// The client id of its datagram.
        client_id: u64,
        /// When the shard took the request in (its iteration's clock): the answer's latency runs
        /// from then (`metrics::requests`).
        arrived: Nanos,
    },
    /// Another shard forwarded it; the answer goes back through the inbox.
    Forwarded(Envelope),
    /// The partition itself (the leader's EXPIRE_DUE, `expiry.rs`, and candle ROTATE,
    /// `candle.rs`): nobody to answer.
    Internal,
}

/// A request waiting for its entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiter {
    /// Who to answer.
    pub origin: Origin,
    /// The request's opcode.
    pub opcode: u8,
    /// The request's id.
    pub request_id: u64,
    /// Who it is for and the quota it runs under in this partition (stamped into the log with
    /// its command).
    pub owner: Owner,
}

/// A waiting request's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Done {
    /// The request.
    pub waiter: Waiter,
    /// What applying its entry gave, or the status it failed with.
    pub result: Result<ApplyResult, Status>,
    /// The key's old block (`kv::map`), for a SETX with GET whose key existed: its answer carries
    /// the old value (a pointer, shared; no copy).
    pub value: Option<std::sync::Arc<[u8]>>,
    /// When its batch was sealed (the batch's timestamp, ns on the leader's clock); 0 when it was
    /// refused without one. The write's latency from then to its answer is the metrics'.
    pub sealed_at: u64,
}

impl Done {
    /// An outcome with no old value and no batch.
    pub fn of(waiter: Waiter, result: Result<ApplyResult, Status>) -> Self {
        Self { waiter, result, value: None, sealed_at: 0 }
    }
}

/// What a partition's work in flight waits on (`Partition::pending`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    /// Nothing is in flight.
    Nothing,
    /// Only completions of the log device, which make this descriptor readable.
    Device(i32),
    /// Only messages from peers (acknowledgements, the lease's read index, heartbeats): they
    /// arrive on the node's packet queue, and the next tick is at most a tick interval away, so
    /// the shard may sleep on its queue (for at most its idle wait) rather than spin.
    Peers,
    /// Work the next `poll` does itself.
    Work,
}

/// What `write` did with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Proposed; its `Done` comes out of a later `poll`.
    Later,
    /// Answered now without logging (a size limit, or a retry the client table remembers).
    Now(ApplyResult),
    /// Refused now with this status; nothing was logged.
    Refused(Status),
}

/// Why a partition could not be opened; nothing is running.
#[derive(Debug, Error)]
pub enum PartitionError {
    /// The log could not be opened or read.
    #[error("partition {partition}: log: {source}")]
    Log {
        /// The partition.
        partition: u16,
        /// What the log said.
        source: LogError,
    },
    /// Acknowledged records of the log are damaged (not a torn tail). Nothing was written: the log
    /// and the snapshot file are as they were.
    #[error(
        "partition {partition}: the log is corrupt: {report}. Nothing was changed. To start anyway, \
         losing lsns from {} on, run `vigil repair --config FILE --partition {partition} --accept-loss`",
        report.first_bad_lsn
    )]
    Corrupt {
        /// The partition.
        partition: u16,
        /// What is damaged and what a repair would lose.
        report: CorruptionReport,
    },
    /// The snapshot file could not be read, or does not restore.
    #[error("partition {partition}: snapshot {path}: {reason}")]
    Snapshot {
        /// The partition.
        partition: u16,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The Raft group could not be built over the recovered log.
    #[error("partition {partition}: raft: {source}")]
    Raft {
        /// The partition.
        partition: u16,
        /// What raft said.
        source: RaftError,
    },
}

/// One partition of this node: its Raft group, its log, its projection, its waiting requests.
pub struct Partition<D: BlockIo> {
    id: u16,
    raft: RaftGroup<UalRaftStore<D>>,
    router: Router,
    /// Makes the projections afresh (a snapshot from the leader is loaded into new ones).
    projection_set: ProjectionSet,
    out: RaftOutput,
    /// Requests waiting for their entry: each with its share of the log bytes and the token of
    /// the next write of its batch (`NO_TOKEN` for the last), so a batch is a chain from its
    /// first write's token, the batch's proposal context.
    waiters: Waiters<(Waiter, u64, u64)>,
    /// The batch being filled in this poll iteration, and its chain (first and last tokens).
    batch: BatchWriter,
    open_chain: Option<(u64, u64)>,
    /// Batches Raft refused after their writes were told `Later`: answered by the next `poll`.
    refused: VecDeque<(u64, Status)>,
    /// The clock at the last `poll`: the timestamp a batch sealed now carries.
    now: Nanos,
    /// Log bytes of the entries waiting (proposed, not yet applied), and their bound.
    waiting_bytes: u64,
    waiting_bytes_max: u64,
    /// Where snapshots are stored (`None`: nowhere, the log store keeps the last one in memory,
    /// for devices that do not persist).
    snapshots: Option<Box<dyn SnapshotStore>>,
    /// The index of the snapshot being stored, if any.
    snapshot_in_flight: Option<u64>,
    /// Its chunks: how many exist, whether the body was all handed over (`snapshot.rs`).
    snapshot_pump: snapshot::ChunkPump,
    events: Events,
    snapshot_every_entries: u64,
    /// The index of the last snapshot taken (or loaded).
    snapshot_index: u64,
    /// When the snapshot being taken was captured (its duration, `counters.snapshot_ns_*`).
    snapshot_started_at: Nanos,
    /// A snapshot written to its file whose checkpoint the log refused for now (`Busy`).
    checkpoint_pending: Option<(u64, Option<Vec<u8>>)>,
    /// (term, index): as leader in `term`, reads wait until `index` (its first entry) is applied.
    read_barrier: (u64, u64),
    /// The group's peers' side: messages out, the read lease (`None`: a group of one voter).
    peers: Option<Peers>,
    /// The results of the entry being applied, by position in its batch (reused; `poll`).
    results: Vec<(u16, ApplyResult)>,
    /// The projections' upkeep has more to do (`Projection::upkeep`): poll again, do not sleep.
    upkeep_pending: bool,
    counters: PartitionCounters,
    /// The changes applied since the shard last took them, while it has watchers (`feed`).
    pub feed: feed::ChangeFeed,
}

impl<D: BlockIo> std::fmt::Debug for Partition<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("id", &self.id)
            .field("raft", &self.raft)
            .field("keys", &self.router.len())
            .field("waiting", &self.waiters.len())
            .field("counters", &self.counters)
            .finish()
    }
}

impl<D: BlockIo> Partition<D> {
    /// Makes everything the log holds durable and records the durable position in its superblock
    /// (a clean stop: afterwards damage to any record is told from a torn tail), then stops the
    /// snapshot writer. For a shutdown after the last answers went out.
    pub fn close(self) -> Result<(), PartitionError> {
        let id = self.id;
        let Partition { raft, snapshots, .. } = self;
        // The writer thread is joined. A snapshot whose chunks were still being handed over is
        // abandoned: its `.tmp` never counted, and the log was never checkpointed past the last
        // snapshot stored, so the next start loads that one and replays the rest.
        drop(snapshots);
        raft.into_store()
            .into_ual()
            .close()
            .map(drop)
            .map_err(|source| PartitionError::Log { partition: id, source })
    }

    /// The partition's id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Turns the change feed on or off (the shard has WebSocket watchers, or no longer), with the
    /// KV projection's record of the keys expiry deletes.
    pub fn watch_changes(&mut self, on: bool) {
        self.feed.set_on(on);
        self.router.kv_mut().record_expired(on);
    }

    /// The KV projection.
    pub fn kv(&self) -> &KvProjection {
        self.router.kv()
    }

    /// The projections and the client table.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The Raft group.
    pub fn raft(&self) -> &RaftGroup<UalRaftStore<D>> {
        &self.raft
    }

    /// Counters so far.
    pub fn counters(&self) -> PartitionCounters {
        self.counters
    }

    /// Why the partition refuses all work, after its log's device failed (`None` while it
    /// works): only a restart, which recovers the log, brings it back.
    pub fn failure(&self) -> Option<&str> {
        self.raft.store().ual().poisoned()
    }

    /// Records how long this partition's recovery took (the server measures it).
    pub fn note_recovery_ns(&mut self, ns: u64) {
        self.counters.recovery_ns = ns;
    }

    /// Requests waiting for their entry.
    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }

    /// Takes the partition apart without flushing anything: its device as a crash leaves it.
    pub fn into_device(self) -> D {
        self.raft.into_store().into_ual().into_device()
    }

    /// Whether reads may be served: leader, past its read barrier, and (in a group with peers)
    /// holding its read lease at the latest time the node gave (`poll`, `observe_time`: the shard
    /// gives each request's iteration clock before it reads, so a process paused between two
    /// iterations does not read on a lease that ran out while it slept).
    pub fn serves_reads(&self) -> bool {
        let (term, index) = self.read_barrier;
        let leads = self.raft.is_leader() && term == self.raft.term() && self.raft.applied_index() >= index;
        leads && self.peers.as_ref().is_none_or(|p| p.lease.holds(term, self.now, self.raft.applied_index()))
    }

    /// Until when the reads this partition serves now stay valid, on this node's clock: its
    /// lease's end (`u64::MAX` for a group of one voter, which needs none); `None` when it serves
    /// none. An answer may go out after that time only if a clock read after it was made proves
    /// it was made before then.
    pub fn reads_valid_until(&self) -> Option<Nanos> {
        if !self.serves_reads() {
            return None;
        }
        Some(self.peers.as_ref().map_or(Nanos(u64::MAX), |p| p.lease.until()))
    }

    /// A request for the partition arrives at `now`: moves the partition's clock forward to it
    /// (never back), so reads check the lease at it rather than at the last `poll`, and wakes a
    /// quiesced group (`quiesce.rs`: a read needs the lease a quiet leader gave up).
    pub fn observe_time(&mut self, now: Nanos) {
        self.now = self.now.max(now);
        self.note_activity();
    }

    /// The leader this node knows of (itself included), for a `NOT_LEADER` answer's hint.
    pub fn leader_hint(&self) -> Option<u64> {
        self.raft.leader_id()
    }

    /// Answers a read (`opcode`, `body`) of projection `tag` into `out` (leader only, past the
    /// read barrier: `NOT_LEADER` before, which clients retry).
    pub fn read(&self, tag: u8, opcode: u8, body: &[u8], out: &mut [u8]) -> Result<usize, Status> {
        if !self.serves_reads() {
            return Err(Status::NotLeader);
        }
        self.router.read(tag, opcode, body, out)
    }

    /// Answers a KV GET body into `out` (see `read`).
    pub fn get(&self, body: &[u8], out: &mut [u8]) -> Result<usize, Status> {
        self.read(TAG_KV, crate::wire::opcode::GET, body, out)
    }

    /// Starts a write (see the module header).
    pub fn write(&mut self, waiter: Waiter, client_id: u64, body: &[u8]) -> WriteOutcome {
        match parse_write(waiter.opcode, client_id, waiter.request_id, body) {
            Ok(cmd) => self.write_command(waiter, &cmd),
            Err(_) => WriteOutcome::Refused(Status::BadRequest),
        }
    }

    /// Starts a KV write already parsed into the command to log (`cmd.seq` is the request id).
    pub fn write_command(&mut self, waiter: Waiter, cmd: &Command<'_>) -> WriteOutcome {
        if let Some(result) = KvProjection::check_sizes(self.kv().limits(), &cmd.op) {
            self.counters.answered_now += 1;
            return WriteOutcome::Now(result);
        }
        self.propose(waiter, TAG_KV, cmd.encoded_len(), &mut |out| {
            cmd.encode(out).expect("sized by encoded_len, lengths checked by check_sizes");
        })
    }

    /// Starts a write of `len` bytes for projection `tag`, which `encode` writes (the command,
    /// its `CommandHeader` first): it joins the batch of this poll iteration, proposed as one
    /// entry by the next `poll` (or at once when the batch is full), unless its projection or the
    /// client table answer it now.
    pub fn propose(
        &mut self,
        waiter: Waiter,
        tag: u8,
        len: usize,
        encode: &mut dyn FnMut(&mut [u8]),
    ) -> WriteOutcome {
        self.note_activity();
        let owner = waiter.owner;
        if !self.batch.fits_alone(&owner, len) {
            return WriteOutcome::Now(ApplyResult::ValueTooLarge);
        }
        if !self.batch.fits(&owner, len) {
            self.seal_batch();
        }
        self.batch.push(tag, &owner, len, encode);
        // Checked in place, in the batch: the projection's limits, then a retry of the client's
        // last write (same command), or a refusal of the client table (stale, reused or too far
        // ahead sequence number): answered now, taken back out, nothing logged.
        if let Some(result) = self.router.precheck(tag, self.batch.last_command()) {
            self.batch.pop();
            self.counters.answered_now += 1;
            return WriteOutcome::Now(result);
        }
        let bytes = Self::window_bytes(len);
        if let Err(status) = self.admit(bytes) {
            self.batch.pop();
            return WriteOutcome::Refused(status);
        }
        let token = self.waiters.insert((waiter, bytes, NO_TOKEN)).expect("admit checked not full");
        self.waiting_bytes += bytes;
        self.open_chain = match self.open_chain {
            None => Some((token, token)),
            Some((first, last)) => {
                self.waiters.get_mut(last).expect("the chain's last write waits").2 = token;
                Some((first, token))
            }
        };
        self.counters.proposed += 1;
        WriteOutcome::Later
    }

    /// Log bytes a command of `len` bytes may take: a batch record may pad the rest of a block it
    /// does not fit (records never span blocks), so twice its bytes bound it.
    fn window_bytes(len: usize) -> u64 {
        (2 * (len + COMMAND_FRAME_LEN_MAX) + BATCH_HEADER_LEN + RECORD_HEADER_LEN) as u64
    }

    /// Whether a write taking `bytes` of the window, staged as the batch's last command, may wait
    /// for its entry: leader, room in the waiters, the window and the log's ring, and Raft's
    /// proposals.
    fn admit(&mut self, bytes: u64) -> Result<(), Status> {
        if !self.raft.is_leader() {
            return Err(Status::NotLeader);
        }
        let c = &mut self.counters;
        let reason = if self.raft.store().ual().segments_free() < SEGMENTS_FREE_MIN {
            &mut c.busy_log_ring
        } else if self.waiters.is_full() {
            &mut c.busy_waiters
        } else if self.waiting_bytes > 0 && self.waiting_bytes + bytes > self.waiting_bytes_max {
            &mut c.busy_window
        } else if self.batch.len() == 1 && self.raft.proposals_full() {
            &mut c.busy_proposals
        } else {
            return Ok(());
        };
        *reason += 1;
        c.busy += 1;
        Err(Status::Busy)
    }

    /// Proposes the open batch as one entry, stamped with the clock of the last `poll`. A batch
    /// Raft refuses is answered by the next `poll` (its writes were told `Later`).
    fn seal_batch(&mut self) {
        let Some((first, _)) = self.open_chain.take() else { return };
        let payload = self.batch.seal(self.now.0);
        match self.raft.propose(payload, first) {
            Ok(_) => self.counters.batches += 1,
            Err(e) => {
                let status = self.refusal(&e);
                self.refused.push_back((first, status));
            }
        }
        self.batch.clear();
    }

    /// Whether the open batch is proposed now: no log write is in flight (one in flight holds it
    /// open, see `poll`).
    fn batch_due(&self) -> bool {
        self.raft.store().ual().writes_in_flight() == 0
    }

    fn refusal(&mut self, e: &RaftError) -> Status {
        match e {
            RaftError::Busy | RaftError::ProposalDropped => {
                self.counters.busy += 1;
                self.counters.busy_raft += 1;
                Status::Busy
            }
            RaftError::NotLeader { .. } => Status::NotLeader,
            RaftError::TooLarge { .. } => Status::ValueTooLarge,
            _ => Status::Unavailable,
        }
    }

    /// Drives the log and the Raft group one step, applies what committed and hands each waiting
    /// request whose outcome is known to `done`. Returns whether work is in flight (requests
    /// waiting, log writes not yet complete).
    pub fn poll(&mut self, now: Nanos, done: &mut dyn FnMut(Done)) -> bool {
        if self.stays_still(now) {
            return false;
        }
        self.now = now;
        // Group commit across iterations: while a log write is in flight the batch stays open
        // (it fills up to its bounds, sealed at once when full), since its entry could not reach
        // the device before that write completes anyway; the first poll that finds the log idle
        // proposes it. Fewer, fuller entries: less Raft work, less log per write.
        if self.batch_due() {
            self.seal_batch();
        }
        while let Some((first, status)) = self.refused.pop_front() {
            answer_chain(&mut self.waiters, &mut self.waiting_bytes, first, Err(status), done);
        }
        if !self.is_quiet() {
            self.raft.on_time(now);
        }
        let io = self.raft.store_mut().poll_io(now);
        let polled = io
            .map_err(|e| e.to_string())
            .and_then(|()| self.raft.poll(&mut self.out).map_err(|e| e.to_string()));
        if let Err(why) = polled {
            self.fail(&why, done);
            return false;
        }
        self.route_messages();
        if let Some(snapshot) = self.out.snapshot.take() {
            self.install_snapshot(snapshot);
        }
        self.apply_committed(done);
        self.out.clear();
        if self.raft.is_leader() && self.read_barrier.0 != self.raft.term() {
            // Set at the first poll of a leadership: its empty first entry is in the log by then.
            self.read_barrier = (self.raft.term(), self.raft.last_index());
        }
        self.renew_lease();
        self.propose_expiry();
        self.propose_rotation();
        // Upkeep only while no request waits: it must not add to a request's latency.
        self.upkeep_pending = self.waiters.is_empty() && self.router.upkeep();
        let applied = self.raft.applied_index();
        self.raft.store_mut().trim_backfill(applied);
        self.maybe_snapshot();
        self.serve_snapshots();
        self.quiesce_or_wake();
        self.busy()
    }

    /// Whether work is in flight (what `poll` returns).
    fn busy(&self) -> bool {
        let ual = self.raft.store().ual();
        // A quiet leader has no lease until a request wakes it (`quiesce.rs`): not work.
        let catching_up = self.raft.is_leader() && !self.serves_reads() && !self.is_quiet();
        let log_busy =
            ual.writes_in_flight() > 0 || ual.durable_lsn() < ual.last_lsn() || ual.fetch_in_flight();
        catching_up
            || log_busy
            || !self.waiters.is_empty()
            || self.snapshot_in_progress()
            || self.upkeep_pending
    }

    /// What the work left after the last `poll` waits on: nothing, only the log device's
    /// completions (readable on its descriptor: the shard may sleep on it rather than spin), or
    /// something the next `poll` must do itself.
    pub fn pending(&self) -> Pending {
        if !self.busy() {
            return Pending::Nothing;
        }
        let ual = self.raft.store().ual();
        // A device read for a lagging follower (`Ual::prefetch`) completes on the same descriptor.
        let io_in_flight = ual.writes_in_flight() > 0 || ual.superblock_in_flight() || ual.fetch_in_flight();
        // An open batch waits for the log write in flight (the first poll after it completes
        // proposes it): device work too.
        // A leader without its read lease waits for the renewal's round trip when it has peers;
        // alone, for its own log to catch up.
        let catching_up = self.raft.is_leader() && !self.serves_reads() && self.peers.is_none();
        let own_work = (self.open_chain.is_some() && self.batch_due())
            || !self.refused.is_empty()
            || self.checkpoint_pending.is_some()
            || self.snapshot_in_flight.is_some()
            || self.upkeep_pending
            || catching_up
            || !self.raft.waits_only_on_storage();
        match ual.device().wait_fd() {
            _ if own_work => Pending::Work,
            Some(fd) if io_in_flight => Pending::Device(fd),
            _ if !io_in_flight && self.peers.is_some() => Pending::Peers,
            _ => Pending::Work,
        }
    }

    /// The log failed: the group refuses all work; every waiting request hears `UNAVAILABLE`.
    fn fail(&mut self, why: &str, done: &mut dyn FnMut(Done)) {
        if !self.waiters.is_empty() {
            self.report(PartitionEvent::Failed { waiting: self.waiters.len(), why: why.to_string() });
        }
        self.waiters.drain(|(waiter, _, _)| done(Done::of(waiter, Err(Status::Unavailable))));
        self.waiting_bytes = 0;
        self.refused.clear();
        self.open_chain = None;
        self.batch.clear();
    }
}

#[cfg(test)]
pub(crate) mod tests;
