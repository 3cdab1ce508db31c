//! What a partition counts: requests proposed and answered, refusals by reason, the log's ring,
//! snapshots taken, sent and installed, and the Raft messages it exchanged with its peers (the
//! stop report's per-partition line, `serve::partition_io::partition_line`).

/// Counters of one partition, read off the hot path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionCounters {
    /// Writes proposed (in batches).
    pub proposed: u64,
    /// EXPIRE_DUE commands proposed (`expiry.rs`), counted in `proposed` too.
    pub expiry_proposals: u64,
    /// Candle ROTATE commands proposed (`candle.rs`), counted in `proposed` too.
    pub rotation_proposals: u64,
    /// Batch entries proposed.
    pub batches: u64,
    /// Writes answered from the client table or the size limits without logging.
    pub answered_now: u64,
    /// Writes refused `BUSY`: the sum of the five below.
    pub busy: u64,
    /// ... because the log's ring had fewer than `SEGMENTS_FREE_MIN` free segments (a snapshot
    /// has not yet let the oldest be recycled).
    pub busy_log_ring: u64,
    /// ... because `proposals_pending_max` requests were waiting.
    pub busy_waiters: u64,
    /// ... because the waiting writes held `inflight_bytes_max` bytes.
    pub busy_window: u64,
    /// ... because Raft held its most proposals not yet in the log.
    pub busy_proposals: u64,
    /// ... because Raft refused or dropped a sealed batch.
    pub busy_raft: u64,
    /// Committed entries applied.
    pub applied: u64,
    /// Writes answered `QUOTA_EXCEEDED` (here, as leader): past their writer's quota
    /// (`projection::owner`).
    pub quota_exceeded: u64,
    /// Snapshots written and checkpointed.
    pub snapshots: u64,
    /// Snapshot attempts that failed (the file could not be written); retried later.
    pub snapshot_failures: u64,
    /// Raft messages with nowhere to go (a group of one voter has no peers to send to).
    pub messages_unrouted: u64,
    /// Raft messages handed to the node for its peers (`take_messages`).
    pub messages_out: u64,
    /// Raft messages from peers stepped into the group.
    pub messages_in: u64,
    /// Raft messages from peers the group refused (`step`: not for this group, unknown peer).
    pub messages_refused: u64,
    /// Vote requests ignored because this node started less than an election timeout ago (the
    /// read lease's rule, `lease.rs`).
    pub votes_ignored_after_start: u64,
    /// Messages dropped because the node did not take them before the outbox filled.
    pub messages_outbox_full: u64,
    /// Snapshots received from the leader and installed (`install.rs`).
    pub snapshots_installed: u64,
    /// Snapshots from the leader dropped: incomplete or damaged chunks, a body that does not
    /// load, one that could not be staged, one that came while a snapshot was being written.
    pub snapshots_refused: u64,
    /// Snapshots streamed to followers whole (their last chunk sent: `chunks.rs`).
    pub snapshots_sent: u64,
    /// Snapshot chunks sent (leader).
    pub snapshot_chunks_sent: u64,
    /// Snapshot chunks received and taken in (follower).
    pub snapshot_chunks_received: u64,
    /// Snapshots a follower did not take in time, reported failed so that raft-rs sends anew.
    pub snapshots_resent: u64,
    /// Snapshot bytes read back from the snapshot store for a follower (after a restart).
    pub snapshots_read_back: u64,
    /// Times the group quiesced (`quiesce.rs`): as leader, or as a follower told so.
    pub quiesced: u64,
    /// Times a quiet group woke for a request or a proposal ...
    pub woken_by_request: u64,
    /// ... for a peer's message ...
    pub woken_by_message: u64,
    /// ... for an expiry or rotation that fell due ...
    pub woken_by_due_work: u64,
    /// ... because its leader's node fell silent or restarted ...
    pub woken_by_leader_lost: u64,
    /// ... because a peer node was back after a silence (a quiet leader catches it up).
    pub woken_by_peer_back: u64,
    /// Time the snapshots took, from their capture to their checkpoint, all of them and the
    /// last one (ns of the node's clock).
    pub snapshot_ns_total: u64,
    pub snapshot_ns_last: u64,
    /// How long this partition's recovery took at the start (ns; the server measures it).
    pub recovery_ns: u64,
}
