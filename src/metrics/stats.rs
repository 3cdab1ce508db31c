//! `ShardStats`: a copy of what one shard counted and the state of its partitions, taken on the
//! shard's own thread between two iterations (`collect`) and published to the `StatsBoard`.
//!
//! Invariants: a snapshot copies plain counters and reads state through `&` only (taking one
//! never changes what the shard does); it allocates (its vectors, the histograms' copies: of the
//! request histograms only those that counted something), which is why a shard takes one every
//! `metrics.publish_ms`, never per request.

use super::{Latency, RequestStats};
use crate::conn::ConnCounters;
use crate::engine::EngineCounters;
use crate::ops::kv::{KvShard, KvShardCounters};
use crate::ops::peer_link::PeerLinkCounters;
use crate::partition::{Partition, PartitionCounters};
use crate::peer::{PeerInboxCounters, PeerOutboxCounters};
use crate::shard::{Shard, ShardCounters};
use vigil_pmd::block::BlockIo;
use vigil_pmd::{IoCounters, PacketIo, StreamCounters};

/// One partition's state and counters.
#[derive(Clone, Debug, Default)]
pub struct PartitionStats {
    /// The partition.
    pub id: u16,
    /// Keys in its KV projection.
    pub keys: u64,
    /// What it counted.
    pub counters: PartitionCounters,
    /// Raft: term, commit index, applied index, the leader known (0: none), whether this node
    /// leads, whether the group is quiesced.
    pub term: u64,
    pub commit: u64,
    pub applied: u64,
    pub leader: u64,
    pub is_leader: bool,
    pub quiet: bool,
    /// Raft ticks, readies and proposals.
    pub raft_ticks: u64,
    pub raft_proposals: u64,
    /// The log: records appended, writes and their blocks, superblock writes, device reads.
    pub log_appends: u64,
    pub log_writes: u64,
    pub log_write_blocks: u64,
    pub log_superblock_writes: u64,
    pub log_reads: u64,
    /// The log's position (last and durable lsn) and ring (segments free of all).
    pub log_last_lsn: u64,
    pub log_durable_lsn: u64,
    pub log_segments_free: u64,
    pub log_segments: u64,
    /// Bytes of one segment.
    pub log_segment_bytes: u64,
    /// Requests waiting for their entry.
    pub waiting: u64,
}

/// A shard's peer link counters (a replicated node only).
#[derive(Clone, Debug, Default)]
pub struct PeerStats {
    /// Its inbox's, outbox's and own counters.
    pub inbox: PeerInboxCounters,
    pub outbox: PeerOutboxCounters,
    pub link: PeerLinkCounters,
}

/// A shard's snapshot (see the module header).
#[derive(Clone, Debug, Default)]
pub struct ShardStats {
    /// The shard.
    pub shard: usize,
    /// When it was taken, on the shard's clock (Unix ns).
    pub at_ns: u64,
    /// The loop's, the engine's and the packet backend's counters.
    pub shard_counters: ShardCounters,
    pub engine: EngineCounters,
    pub io: IoCounters,
    /// Requests executed, by opcode: (opcode, name, count).
    pub opcodes: Vec<(u8, &'static str, u64)>,
    /// The KV subsystem's counters, and the forwarded requests waiting for their answer.
    pub kv: KvShardCounters,
    pub forwards_in_flight: u64,
    /// Envelopes waiting in its cross-shard inbox when the snapshot was taken.
    pub inbox_depth: u64,
    /// Its TCP connections' counters, when it serves TCP.
    pub conns: Option<(ConnCounters, StreamCounters)>,
    /// Its peer link's, in a replicated node.
    pub peer: Option<PeerStats>,
    /// Its partitions.
    pub partitions: Vec<PartitionStats>,
    /// Durable writes, from their batch's seal to their answer.
    pub write_latency: Latency,
    /// Requests from their shard taking them in to their answer, by protocol and opcode (those
    /// that counted something; `metrics::requests`).
    pub requests: Vec<RequestStats>,
    /// Access control's counters: admitted and refused datagrams (`auth::gate`).
    pub auth: crate::auth::AuthCounters,
}

impl ShardStats {
    /// A snapshot of `shard` and its KV subsystem `kv` at `now_ns`.
    pub fn collect<P: PacketIo, D: BlockIo>(shard: &Shard<P>, kv: &KvShard<D>, now_ns: u64) -> Self {
        let report = shard.report();
        Self {
            shard: report.shard,
            at_ns: now_ns,
            shard_counters: report.shard_counters,
            engine: report.engine,
            io: report.io,
            opcodes: shard.engine().dispatcher().registered().collect(),
            kv: kv.counters(),
            forwards_in_flight: kv.forwards_in_flight() as u64,
            inbox_depth: kv.inbox_depth() as u64,
            conns: shard.connections().map(|c| c.counters()),
            peer: kv.peer_link().map(|l| {
                let (inbox, outbox, link) = l.counters();
                PeerStats { inbox, outbox, link }
            }),
            partitions: kv.partitions().iter().map(PartitionStats::of).collect(),
            write_latency: kv.write_latency().clone(),
            requests: shard.engine().latencies().snapshot(),
            auth: shard.engine().auth_counters(),
        }
    }
}

impl ShardStats {
    /// Every drop the shard's loop, engine and packet backend counted, by reason (one list for
    /// the metrics and the dashboard).
    pub fn drops(&self) -> [(&'static str, u64); 14] {
        let (c, e, io) = (&self.shard_counters, &self.engine, &self.io);
        [
            ("tx_no_buffer", c.tx_no_buffer),
            ("tx_queue_full", c.tx_queue_full),
            ("lease_lapsed", c.tx_lease_lapsed),
            ("late_answer_too_large", c.late_answers_too_large),
            ("short", e.dropped_short),
            ("bad_magic", e.dropped_bad_magic),
            ("response", e.dropped_response),
            ("unanswered_no_room", e.unanswered_no_room),
            ("rx_malformed", io.rx_malformed),
            ("rx_bad_checksum", io.rx_bad_checksum),
            ("rx_not_for_us", io.rx_not_for_us),
            ("rx_kernel_dropped", io.rx_kernel_dropped),
            ("tx_dropped", io.tx_dropped),
            ("tx_alloc_failed", io.tx_alloc_failed),
        ]
    }

    /// Every drop, all reasons together.
    pub fn drops_total(&self) -> u64 {
        self.drops().iter().map(|(_, n)| n).sum()
    }
}

/// Every partition of a node's shard snapshots, summed (the JSON API's status, the dashboard,
/// a compaction's answer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionTotals {
    /// Partitions, those this node leads, those quiesced.
    pub partitions: u64,
    pub leading: u64,
    pub quiet: u64,
    /// Keys, log bytes in use and in the rings, snapshots stored.
    pub keys: u64,
    pub log_used_bytes: u64,
    pub log_ring_bytes: u64,
    pub snapshots: u64,
}

impl PartitionTotals {
    /// The totals of `shards`' partitions.
    pub fn of(shards: &[std::sync::Arc<ShardStats>]) -> Self {
        let mut t = Self::default();
        for p in shards.iter().flat_map(|s| s.partitions.iter()) {
            t.partitions += 1;
            t.leading += u64::from(p.is_leader);
            t.quiet += u64::from(p.quiet);
            t.keys += p.keys;
            t.log_used_bytes += p.log_used_bytes();
            t.log_ring_bytes += p.log_ring_bytes();
            t.snapshots += p.counters.snapshots;
        }
        t
    }
}

impl PartitionStats {
    /// Bytes of its log ring in use (segments not free).
    pub fn log_used_bytes(&self) -> u64 {
        self.log_segments.saturating_sub(self.log_segments_free) * self.log_segment_bytes
    }

    /// Bytes of its whole log ring.
    pub fn log_ring_bytes(&self) -> u64 {
        self.log_segments * self.log_segment_bytes
    }

    /// `p`'s state and counters now.
    pub fn of<D: BlockIo>(p: &Partition<D>) -> Self {
        let raft = p.raft();
        let ual = raft.store().ual();
        let (rc, uc) = (raft.counters(), ual.counters());
        Self {
            id: p.id(),
            keys: p.kv().len() as u64,
            counters: p.counters(),
            term: raft.term(),
            commit: raft.commit_index(),
            applied: raft.applied_index(),
            leader: raft.leader_id().unwrap_or(0),
            is_leader: raft.is_leader(),
            quiet: p.is_quiet(),
            raft_ticks: rc.ticks,
            raft_proposals: rc.proposals,
            log_appends: uc.appends,
            log_writes: uc.writes,
            log_write_blocks: uc.write_blocks,
            log_superblock_writes: uc.superblock_writes,
            log_reads: uc.reads,
            log_last_lsn: ual.last_lsn(),
            log_durable_lsn: ual.durable_lsn(),
            log_segments_free: ual.segments_free(),
            log_segments: ual.segment_count(),
            log_segment_bytes: ual.segment_size_bytes(),
            waiting: p.waiting() as u64,
        }
    }
}
